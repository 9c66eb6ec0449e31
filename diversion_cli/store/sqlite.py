"""The SQLite engine, the embedded default: one file, opened with the standard
sqlite3 (or SQLCipher when DIVERSION_DB_KEY is set), brought up to date by the
numbered migrations (store/migrations.py). Writes run in `BEGIN IMMEDIATE`
transactions, so two desks serialise on the write lock; a desk that waits past the
busy timeout gets StoreUnusable (exit 4) and nothing is written. The file and its
journal are created owner-only.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
import sqlite3
from datetime import datetime
from pathlib import Path

from diversion_cli.errors import Refused, StoreUnusable
from diversion_cli.store.base import Store
from diversion_cli.store.common import _iso, busy_timeout, database_errors, digest, integrity_errors
from diversion_cli.store.migrations import CONVERT_TRAIL, LATEST, MIGRATIONS

AUDIT_FROM = 3  # the migration that created the audit trail (and audit_pending)
TRAIL_FROM = 9  # the migration that made the trail lean: what is sealed now

MIGRATIONS_TABLE = "CREATE TABLE migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"

KEY_ENV = "DIVERSION_DB_KEY"  # set: the file is a SQLCipher-encrypted database


def driver():
    """The DB-API module: the standard sqlite3, or SQLCipher when a key is given."""
    if not os.environ.get(KEY_ENV):
        return sqlite3
    try:
        from sqlcipher3 import dbapi2
    except ImportError:
        raise StoreUnusable(f"{KEY_ENV} is set but encryption is not installed: "
                            f"pip install 'diversion[encryption]'") from None
    return dbapi2


def connect(path: Path | str, timeout: float | None = None):
    """A connection to the file, unlocked with the key if one is given."""
    db = driver()
    conn = db.connect(str(path), timeout=busy_timeout() if timeout is None else timeout, isolation_level=None,
                      check_same_thread=False)
    key = os.environ.get(KEY_ENV)
    if key:
        conn.execute("PRAGMA cipher_log_level = NONE")  # a wrong key is our message, not SQLCipher's log
        if len(key) == 64 and all(c in "0123456789abcdefABCDEF" for c in key):
            # a 256-bit raw key: no key derivation, so a desk command stays fast
            conn.execute(f"PRAGMA key = \"x'{key}'\"")
        else:  # a passphrase: SQLCipher derives the key (PBKDF2, ~0.1 s per command)
            conn.execute("PRAGMA key = '" + key.replace("'", "''") + "'")
    conn.row_factory = db.Row
    conn.create_function("diversion_digest", 2, digest, deterministic=True)  # the audit trail's (audit.py)
    return conn

def _unusable(exc: Exception, path: Path) -> StoreUnusable:
    text = str(exc).lower()
    if "locked" in text or "busy" in text:
        return StoreUnusable(f"the database {path} is busy (another desk is writing); nothing was written, try again")
    if "not a database" in text and os.environ.get(KEY_ENV):
        return StoreUnusable(f"the database {path} cannot be opened: wrong {KEY_ENV}, or not an encrypted database")
    if "not a database" in text:
        return StoreUnusable(f"the database {path} cannot be read: it is damaged, or encrypted "
                             f"(set {KEY_ENV}); a damaged file is restored from a backup")
    if "malformed" in text or "corrupt" in text:
        return StoreUnusable(f"the database {path} is damaged ({exc}); restore it from a backup")
    if "readonly" in text or "unable to open" in text:
        return StoreUnusable(f"the database {path} cannot be written or opened ({exc}); even a reader needs to "
                             f"create the -wal and -shm files beside it: check the folder's permissions")
    return StoreUnusable(f"the database {path} failed: {exc}")


class SqliteStore(Store):
    """One open SQLite database file."""

    engine = "sqlite"
    # the end of a re-offending window: N months on, the day carried over (31 August + 6 months
    # is 3 March); PostgreSQL's diversion_add_months is the same definition
    ADD_MONTHS = "strftime('%Y-%m-%dT%H:%M:%S', since, '+{} months')"

    @classmethod
    def create(cls, path: Path) -> Store:
        """Create a new file (owner-only) and build its schema: `diversion db init`."""
        _create_owner_only(path)
        try:
            conn = connect(path)
            conn.execute("PRAGMA journal_mode = WAL")  # persistent: set once, here
        except database_errors() as exc:
            raise _unusable(exc, path) from None
        return cls._ready(path, conn, write=True, new=True)

    @classmethod
    def open(cls, path: Path, write: bool = False) -> Store:
        """Open an existing database. A missing file is never an empty record: exit 4,
        nothing created. Reading never writes: only a write brings an older schema up
        to date; a reader is told to (`diversion db upgrade`)."""
        try:
            path.stat()
        except FileNotFoundError:
            raise StoreUnusable(f"no database at {path}: create one with `diversion db init`, "
                                f"or check --db / DIVERSION_DB") from None
        except OSError as exc:  # a directory on the way that this user may not enter
            raise StoreUnusable(f"cannot reach the database at {path}: {exc.strerror}") from None
        try:
            conn = connect(path)
        except database_errors() as exc:
            raise _unusable(exc, path) from None
        return cls._ready(path, conn, write)

    @classmethod
    def _ready(cls, path: Path, conn, write: bool, new: bool = False) -> Store:
        store = cls(path, conn)
        try:
            version = 0 if new else store._diversion_schema()  # before anything below could write to the file
            conn.execute("PRAGMA foreign_keys = ON")
            if write:
                conn.execute("PRAGMA synchronous = FULL")
                # a bulk import's transaction must not spill dirty pages mid-way (a ceiling, not an allocation)
                conn.execute("PRAGMA cache_size = -65536")
                store._migrate()
            elif version < LATEST:
                raise StoreUnusable(f"the database {path} has schema version {version}; this diversion needs "
                                    f"{LATEST}: run `diversion db upgrade` (or any command that writes)")
            else:
                store._audited = True
        except database_errors() as exc:
            conn.close()
            raise _unusable(exc, path) from None
        except StoreUnusable:
            conn.close()
            raise
        return store

    def _diversion_schema(self) -> int:
        """The schema version of a diversion database; StoreUnusable for any other file
        (an empty or torn file, another program's database) or a newer diversion's."""
        known = self.conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'migrations'")
        if not known.fetchone():
            raise StoreUnusable(f"{self.path} is not a diversion database (empty, torn or another program's "
                                f"file); nothing was written to it")
        version = self.schema_version()
        if version > LATEST:
            raise StoreUnusable(f"the database {self.path} has schema version {version}, newer than this "
                                f"diversion understands ({LATEST}); upgrade diversion before using it")
        return version

    def _migrate(self) -> None:
        self.conn.execute(MIGRATIONS_TABLE.replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS"))
        current = self.schema_version()
        self._audited = current >= TRAIL_FROM
        if current >= LATEST:
            return
        self.upgraded_from = current
        if current >= AUDIT_FROM:
            # an upgrade must not seal a change made outside diversion under "system"
            self.conn.execute("BEGIN")
            try:
                self._refuse_outside_changes(current)
            except StoreUnusable:
                raise StoreUnusable(f"the database {self.path} cannot be upgraded: changes made outside diversion "
                                    f"are waiting in it. Deal with them first with the diversion that wrote it "
                                    f"(`audit verify`, then `audit accept` or `db restore`); nothing was "
                                    f"changed") from None
            finally:
                self.conn.execute("ROLLBACK")
        for version, name, sql in MIGRATIONS:
            if version <= current:
                continue
            # (the baseline migration 3 takes waits in audit_pending until migration 9 seals it)
            with self.transaction(f"migration {version}", "system", accept_outside_changes=True):
                if self.schema_version() >= version:
                    continue  # another desk applied it while we waited for the lock
                # executescript would commit; run the statements one by one instead
                before, _, after = sql.partition(CONVERT_TRAIL)
                try:
                    for statement in _statements(before):
                        self.conn.execute(statement)
                    converted = self._convert_trail() if after else False
                    for statement in _statements(after):
                        self.conn.execute(statement)
                except database_errors() as exc:
                    raise StoreUnusable(f"the database {self.path} cannot be upgraded to schema {version} ({exc}): "
                                        f"its schema was changed outside diversion; nothing was changed") from None
                if after and (converted or current >= AUDIT_FROM):  # the file had a trail
                    self._check_converted()
                self.conn.execute("INSERT INTO migrations VALUES (?, ?, ?)",
                                  (version, name, _iso(datetime.now())))
                self._audited = version >= TRAIL_FROM
        # (another desk may have applied them while this one waited for the lock)
        self._audited = self.schema_version() >= TRAIL_FROM

    def _convert_trail(self) -> bool:
        """Migration 9: carry the old trail over (store/audit.py), saying so in its entry;
        whether there was one."""
        from diversion_cli.store import audit

        try:
            converted = audit.convert_legacy_trail(self.conn)
        except audit.Problem as problem:
            raise StoreUnusable(f"the database {self.path} cannot be upgraded: {problem}. Nothing was "
                                f"changed") from None
        if converted:
            self.note(f"the old audit trail ({converted['entries']} entries, head hash {converted['head_hash']}) "
                      f"was verified and converted")
        return bool(converted)

    def _check_converted(self) -> None:
        """After converting a trail: every row is in it and is what it says. A row added or
        changed behind the old trail's back would otherwise be laundered in as a baseline."""
        from diversion_cli.store import audit
        from diversion_cli.store.migrations import TRAIL

        stray = self.conn.execute("SELECT entity, entity_id FROM audit_pending WHERE action = 'b' "
                                  "AND entity != 'v' LIMIT 1").fetchone()
        problem = f"{audit.ENTITY_NAMES.get(stray[0], stray[0])} {stray[1]} is not in its audit trail: it was " \
                  f"added outside diversion" if stray else None
        for table in TRAIL:
            if problem is None and table != "audit_conversions":
                problem = audit.first_unaudited(self.conn, table)
        if problem:
            raise StoreUnusable(f"the database {self.path} cannot be upgraded: {problem}. Nothing was changed")

    def _begin_write(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def _begin_read(self) -> None:
        self.conn.execute("BEGIN")

    def _errors(self) -> tuple[tuple[type, ...], tuple[type, ...]]:
        return database_errors(), integrity_errors()

    def _unusable(self, exc: Exception) -> StoreUnusable:
        return _unusable(exc, self.path)

    def verify_audit(self) -> dict:
        """Raises audit.Problem naming the first bad entry or row."""
        from diversion_cli.store import audit

        result = audit.verify(self.conn, reopen=lambda: connect(self.path))
        result["report_cache_checked"] = self.check_report_cache()
        return result

    def integrity_check(self) -> list[str]:
        """SQLite's integrity check, then, for a backup, how the file differs from the
        record of what it held when it was taken (store/backup.py); ["ok"] if all is well."""
        from diversion_cli.store import backup

        return [row[0] for row in self.conn.execute("PRAGMA integrity_check")] + backup.manifest_problems(self.conn)

    def after_erasure(self) -> str | None:
        # the pages that held them stay in the write-ahead log until it is folded into the file
        return None if self.fold_journal() else (
            "another desk has the database open, so the erased details stay in its write-ahead log until every "
            "desk has closed it: run `diversion db compact` at a quiet time")

    def fold_journal(self) -> bool:
        """Copy the write-ahead log into the file and empty it; False if a reader kept it from
        finishing (what it held stays in the log until then)."""
        try:
            busy, logged, copied = self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except database_errors():
            return False
        return not busy and logged == copied

    def compact(self) -> None:
        """VACUUM (it takes the write lock for as long as it runs), then fold the WAL back in."""
        try:
            self.conn.execute("VACUUM")
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except database_errors() as exc:
            raise _unusable(exc, self.path) from None

    def backup_to(self, target: Path) -> dict:
        """A consistent, verified copy at `target` while other desks keep writing; returns
        what it holds (the backup's manifest). How: store/backup.py."""
        from diversion_cli.store import backup

        return backup.take(self.conn, target)

    @contextmanager
    def _briefly_locked(self):
        self.conn.execute("PRAGMA busy_timeout = 200")  # never hold a report up behind a writer
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            yield
        finally:
            self.conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout() * 1000)}")


def _statements(sql: str) -> list[str]:
    """Split a migration into statements, keeping trigger bodies whole."""
    statements, buffer = [], []
    for line in sql.splitlines(keepends=True):
        buffer.append(line)
        chunk = "".join(buffer)
        if sqlite3.complete_statement(chunk):
            if chunk.strip():
                statements.append(chunk)
            buffer = []
    if "".join(buffer).strip():
        statements.append("".join(buffer))
    return statements

def _create_owner_only(path: Path) -> None:
    """Create the file mode 0600 (and its directory 0700) before SQLite opens it;
    SQLite gives its -wal and -shm files the same mode as the database. Never
    over anything already there (O_EXCL: also refuses a symlink)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        os.close(fd)
    except FileExistsError:
        raise Refused(f"something already exists at {path}: `diversion db init` never creates a database "
                      f"over it") from None
    except OSError as exc:
        raise StoreUnusable(f"cannot create the database {path}: {exc.strerror}") from None
