"""The store: every line of SQL in diversion lives in this package.

SQLite is the embedded default. Writes run in `BEGIN IMMEDIATE` transactions,
so two desks serialise on the write lock; a desk that waits past the busy
timeout gets StoreUnusable (exit 4) and nothing is written. The file and its
journal are created owner-only.
"""

from __future__ import annotations

import hashlib  # (the interpreter has loaded it before any command gets here)
import os
import sqlite3
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path

from diversion_cli.errors import BadInput, Refused, StoreUnusable
from diversion_cli.store.migrations import CONVERT_TRAIL, ENTITY_CODES, LATEST, MIGRATIONS

AUDIT_FROM = 3  # the migration that created the audit trail (and audit_pending)
TRAIL_FROM = 9  # the migration that made the trail lean: what is sealed now
BULK_LOAD_FROM = 5  # the migration that added the bulk-load flag
CORRECTION_FROM = 7  # the migration that added the correction flag

MIGRATIONS_TABLE = "CREATE TABLE migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
DEFAULT_BUSY_TIMEOUT = 10.0  # seconds a desk waits for another desk's write


def default_db_path() -> Path:
    """The per-user data file used when neither --db nor DIVERSION_DB is set."""
    base = os.environ.get("XDG_DATA_HOME") or (Path.home() / ".local" / "share")
    return Path(base) / "diversion" / "diversion.db"


def resolve_target(target: str | None):
    """The database to use: a SQLite file's Path, or a PostgresTarget (store/postgres)."""
    chosen = target or os.environ.get("DIVERSION_DB")
    if not chosen:
        return default_db_path()
    from diversion_cli.store import postgres

    if postgres.is_target(chosen):
        return postgres.PostgresTarget(chosen)
    if "://" in chosen:
        raise BadInput("db", f"{chosen.split('://')[0]}:// databases are not supported: give a SQLite file path "
                             f"or a postgresql:// URL")
    return Path(chosen).expanduser()


def is_server(target) -> bool:
    """Whether the target is a database server (PostgreSQL) rather than a file."""
    return not isinstance(target, Path)


MAX_BUSY_TIMEOUT = 3600.0  # an hour: past that a desk is not waiting, it is stuck


def busy_timeout() -> float:
    """Seconds a desk waits for another's write: DIVERSION_BUSY_TIMEOUT, 0 to an hour."""
    raw = os.environ.get("DIVERSION_BUSY_TIMEOUT")
    if not raw:
        return DEFAULT_BUSY_TIMEOUT
    try:
        seconds = float(raw)
    except ValueError:
        raise BadInput("DIVERSION_BUSY_TIMEOUT", f"{raw!r} is not a number of seconds") from None
    if not 0 <= seconds <= MAX_BUSY_TIMEOUT:  # also refuses nan and inf
        raise BadInput("DIVERSION_BUSY_TIMEOUT", f"{raw!r} must be a number of seconds from 0 to "
                                                 f"{MAX_BUSY_TIMEOUT:g}")
    return seconds


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") if moment else None


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


def database_errors() -> tuple[type, ...]:
    """The exception classes of every database driver in use (for except clauses)."""
    import sys

    from diversion_cli.store.postgres import driver_errors

    cipher = sys.modules.get("sqlcipher3.dbapi2")
    return (sqlite3.Error, *((cipher.Error,) if cipher else ()), *driver_errors()[0])


def integrity_errors() -> tuple[type, ...]:
    import sys

    from diversion_cli.store.postgres import driver_errors

    cipher = sys.modules.get("sqlcipher3.dbapi2")
    return (sqlite3.IntegrityError, *((cipher.IntegrityError,) if cipher else ()), *driver_errors()[1])


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


DIGEST_BYTES = 16  # a row digest: SHA-256 cut to 128 bits (the chain's hashes are whole)


def digest(salt: bytes | None, text: str | bytes | None) -> bytes | None:
    """A row snapshot's SHA-256, salted with its person's salt, cut to 128 bits: the SQL
    function diversion_digest, which SQL gives the snapshot's UTF-8 bytes (CAST AS BLOB:
    no decoding and encoding again, a third of the cost of checking a row). 128 bits keep
    a forger 2^128 tries from a row that matches a digest already sealed; a digest per
    trail entry is most of the trail's weight, so the full 256 would cost ~80 bytes an
    incident (the chain itself keeps full SHA-256)."""
    if text is None:
        return None
    data = text if isinstance(text, bytes) else text.encode()
    return hashlib.sha256((salt or b"") + data).digest()[:DIGEST_BYTES]


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


class Store:
    """One open SQLite database."""

    def __init__(self, path: Path, conn):
        self.path = path
        self.conn = conn
        self._audit_context: tuple | None = None
        self._audited = False  # writes are sealed into the trail (migration 9 on)
        self._accepting = False  # this transaction enters changes made outside diversion, openly
        self._fresh: dict[str, tuple] = {}  # report figures computed in this snapshot, to keep

    # ---- opening -------------------------------------------------------

    engine = "sqlite"

    @classmethod
    def create(cls, path: Path) -> Store:
        """Create a new database (owner-only) and build its schema: `diversion db init`,
        the only way a database comes into being."""
        path = resolve_target(str(path)) if isinstance(path, str) else path
        if is_server(path):
            from diversion_cli.store import postgres

            return postgres.store_class().create(path)
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
        path = resolve_target(str(path)) if isinstance(path, str) else path
        if is_server(path):
            from diversion_cli.store import postgres

            return postgres.store_class().open(path, write)
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

    def close(self) -> None:
        self.conn.close()

    def schema_version(self) -> int:
        return self.conn.execute("SELECT coalesce(max(version), 0) FROM migrations").fetchone()[0]

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

    # ---- transactions --------------------------------------------------

    @contextmanager
    def transaction(self, operation: str, officer: str, reason: str | None = None,
                    accept_outside_changes: bool = False):
        """A write transaction holding the database write lock from the start.
        Every change in it is sealed into the audit trail, stamped with the
        operation, the officer and the reason, before it commits. It refuses to
        start while a change made outside diversion waits unsealed: sealing it
        here would launder it under this officer's name."""
        try:
            self._begin_write()
            if not accept_outside_changes:
                self._refuse_outside_changes()
        except BaseException as exc:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            if isinstance(exc, self._errors()[0]):
                raise self._unusable(exc) from None
            raise
        self._audit_context = (_iso(datetime.now()), officer, operation, reason)
        self._accepting = accept_outside_changes
        try:
            yield self
            self.seal_audit()
            self.conn.execute("COMMIT")
        except BaseException as exc:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            errors, integrity = self._errors()
            if isinstance(exc, integrity):
                raise refusal_for(exc) from None
            if isinstance(exc, errors):
                raise self._unusable(exc) from None
            raise
        finally:
            self._audit_context = None

    # ---- what differs between engines (store/postgres overrides these) ----------

    def _begin_write(self) -> None:
        """Open a write transaction holding the write lock from its first statement."""
        self.conn.execute("BEGIN IMMEDIATE")

    def _begin_read(self) -> None:
        """Open a transaction that reads one consistent state."""
        self.conn.execute("BEGIN")

    def _errors(self) -> tuple[tuple[type, ...], tuple[type, ...]]:
        """(the driver's errors, its integrity errors)."""
        return database_errors(), integrity_errors()

    def _unusable(self, exc: Exception) -> StoreUnusable:
        return _unusable(exc, self.path)

    def accept_outside_changes(self) -> int:
        """Inside a transaction opened with accept_outside_changes: clear flags set outside
        diversion; returns how many waiting changes the commit will seal (and flags cleared)."""
        waiting = self.conn.execute("SELECT count(*) FROM audit_pending").fetchone()[0]
        for flag in ("bulk_load", "correction"):
            waiting += self.conn.execute(f"DELETE FROM {flag}").rowcount
        return waiting

    def refuse_unaudited(self, person_id: int) -> None:
        """Before a decision about this person: everything of theirs it may read (their record,
        incidents with substances and other offences, decisions, referrals and conditions) must
        be what the trail says (a change made with the triggers switched off is caught here,
        not after the decision rests on it)."""
        if not self._audited:
            return
        from diversion_cli.store import audit

        incidents = "t.incident_id IN (SELECT id FROM incidents WHERE person_id = ?)"
        for table, where in (("people", "t.id = ?"), ("incidents", "t.person_id = ?"), ("incident_substances", incidents),
                             ("incident_co_offences", incidents), ("decisions", incidents),  # (by index)
                             ("referrals", "t.person_id = ?"),
                             ("referral_conditions", "t.referral_id IN (SELECT id FROM referrals WHERE person_id = ?)")):
            changed = audit.first_unaudited(self.conn, table, where, (person_id,))
            if changed:
                raise StoreUnusable(f"{changed}; run `diversion audit verify`. Nothing was written")

    def note(self, text: str) -> None:
        """Add to the reason this transaction's changes are entered in the trail with
        (e.g. the officer's statement that let a referral through)."""
        at, officer, operation, reason = self._audit_context
        self._audit_context = (at, officer, operation, f"{reason}; {text}" if reason else text)

    def _refuse_outside_changes(self, version: int | None = None) -> None:
        if not self._audited and version is None:
            return
        if self.conn.execute("SELECT EXISTS (SELECT 1 FROM audit_pending)").fetchone()[0]:
            raise StoreUnusable("changes made outside diversion are pending: run `diversion audit verify`; "
                                "nothing was written")
        version = self.schema_version() if version is None else version
        for flag, since in (("bulk_load", BULK_LOAD_FROM), ("correction", CORRECTION_FROM)):
            if version >= since and self.conn.execute(f"SELECT EXISTS (SELECT 1 FROM {flag})").fetchone()[0]:
                raise StoreUnusable(f"the {flag.replace('_', '-')} flag was set outside diversion: run "
                                    f"`diversion audit verify`; nothing was written")

    def seal_audit(self) -> None:
        """Seal the changes made so far in this transaction (bulk loads call it per batch)."""
        if self._audited:
            from diversion_cli.store import audit  # hashlib: only writes and verification need it

            at, officer, operation, reason = self._audit_context
            try:
                audit.seal(self.conn, at, officer, operation, reason, accepting=self._accepting)
            except audit.Problem as problem:
                raise StoreUnusable(f"{problem}; run `diversion audit verify`. Nothing was written") from None

    def _all(self, sql: str, params=()) -> list[dict]:
        try:
            return [dict(row) for row in self.conn.execute(sql, params)]
        except self._errors()[0] as exc:
            raise self._unusable(exc) from None

    def _one(self, sql: str, params=()) -> dict | None:
        rows = self._all(sql, params)
        return rows[0] if rows else None

    # ---- people --------------------------------------------------------

    def person(self, person_id: int) -> dict | None:
        return self._one("SELECT * FROM people WHERE id = ?", (person_id,))

    def person_by_pnc(self, pnc: str) -> dict | None:
        return self._one("SELECT * FROM people WHERE pnc = ?", (pnc,))

    def people_named(self, surname_norm: str, forenames_norm: str, dob: str) -> list[dict]:
        return self._all("SELECT * FROM people WHERE dob = ? AND surname_norm = ? AND forenames_norm = ? "
                         "ORDER BY id", (dob, surname_norm, forenames_norm))

    def same_person(self, pnc: str | None, surname_norm: str, forenames_norm: str, dob: str) -> tuple | None:
        """(id, pnc, surname_norm, forenames_norm, dob) of the person with this PNC, else of
        the first with these names and date of birth and no other PNC; one query (the bulk
        loader asks for every row)."""
        return self.conn.execute(
            "SELECT id, pnc, surname_norm, forenames_norm, dob FROM (SELECT *, 0 AS rank FROM people "
            "WHERE pnc = :pnc UNION ALL SELECT *, 1 FROM people WHERE dob = :dob AND surname_norm = :s "
            "AND forenames_norm = :f AND (pnc IS NULL OR :pnc IS NULL OR pnc = :pnc)) AS found ORDER BY rank, id LIMIT 1",
            {"pnc": pnc, "dob": dob, "s": surname_norm, "f": forenames_norm}).fetchone()

    def people_born_on(self, dobs: list[str]) -> list[dict]:
        """Candidates for near matching, each with whether they have been diverted or have an open referral."""
        marks = ",".join("?" * len(dobs))
        return self._all(
            f"SELECT p.*, EXISTS (SELECT 1 FROM referrals r WHERE r.person_id = p.id "
            f"AND r.status IN ('accepted', 'completed', 'failed')) AS diverted, "
            f"EXISTS (SELECT 1 FROM referrals r WHERE r.person_id = p.id "
            f"AND r.status IN ('offered', 'accepted')) AS open_referral "
            f"FROM people p WHERE p.dob IN ({marks}) ORDER BY p.id", dobs)

    def insert_person(self, *, surname, forenames, dob, pnc, gender, ethnicity, surname_norm,
                      forenames_norm, at: datetime, officer: str) -> int:
        person_id = self._next_id("people", "person")
        self.conn.execute(
            "INSERT INTO people (id, surname, forenames, dob, pnc, gender, ethnicity, surname_norm, "
            "forenames_norm, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (person_id, surname, forenames, dob, pnc, gender, ethnicity, surname_norm, forenames_norm, _iso(at),
             officer))
        return person_id

    def fill_person_gaps(self, person_id: int, pnc: str | None, gender: str | None, ethnicity: str | None) -> None:
        """Add details learnt at a later arrest without overwriting recorded ones."""
        # the same statement as a bulk load's: a person with nothing new is not touched
        # (no audit entry, no report months re-stamped)
        self.conn.execute(BATCH_SQL["person_gaps"], (pnc, gender, ethnicity, person_id))

    # ---- incidents and decisions ----------------------------------------

    def insert_incident(self, *, person_id: int, occurred_at: datetime, age: int, location, quantity,
                        supply_suspected: bool, substances: list[tuple[str, str, str]],
                        co_offences: list[str], at: datetime, officer: str) -> int:
        incident_id = self._next_id("incidents", "incident")
        self.conn.execute(
            "INSERT INTO incidents (id, person_id, occurred_at, age, location, quantity, supply_suspected, "
            "recorded_at, recorded_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (incident_id, person_id, _iso(occurred_at), age, location, quantity, int(supply_suspected), _iso(at),
             officer))
        self.conn.executemany(
            "INSERT INTO incident_substances (incident_id, position, substance, drug_class, entered_as) "
            "VALUES (?, ?, ?, ?, ?)",
            [(incident_id, i, key, cls, entered) for i, (key, cls, entered) in enumerate(substances)])
        self.conn.executemany(
            "INSERT INTO incident_co_offences (incident_id, position, description) VALUES (?, ?, ?)",
            [(incident_id, i, text) for i, text in enumerate(co_offences)])
        return incident_id

    def incident(self, incident_id: int) -> dict | None:
        row = self._one("SELECT * FROM incidents WHERE id = ?", (incident_id,))
        if row:
            self._attach_incident_details([row])
        return row

    def incidents_of(self, person_id: int) -> list[dict]:
        rows = self._all("SELECT * FROM incidents WHERE person_id = ? ORDER BY occurred_at, id", (person_id,))
        self._attach_incident_details(rows)
        return rows

    def incidents_between(self, person_id: int, start: datetime, end: datetime) -> list[dict]:
        """A person's live (not voided) incidents that occurred in [start, end]."""
        rows = self._all("SELECT * FROM incidents WHERE person_id = ? AND occurred_at >= ? AND occurred_at <= ? "
                         "AND voided_at IS NULL ORDER BY occurred_at, id", (person_id, _iso(start), _iso(end)))
        self._attach_incident_details(rows)
        return rows

    def _attach_incident_details(self, rows: list[dict]) -> None:
        if not rows:
            return
        ids = [r["id"] for r in rows]
        marks = ",".join("?" * len(ids))
        by_id = {r["id"]: r for r in rows}
        for r in rows:
            r["substances"], r["co_offences"], r["decision"] = [], [], None
        for s in self._all(f"SELECT * FROM incident_substances WHERE incident_id IN ({marks}) "
                           f"ORDER BY incident_id, position", ids):
            by_id[s["incident_id"]]["substances"].append(
                {"substance": s["substance"], "drug_class": s["drug_class"], "entered_as": s["entered_as"]})
        for c in self._all(f"SELECT * FROM incident_co_offences WHERE incident_id IN ({marks}) "
                           f"ORDER BY incident_id, position", ids):
            by_id[c["incident_id"]]["co_offences"].append(c["description"])
        for d in self._all(f"SELECT * FROM decisions WHERE incident_id IN ({marks}) ORDER BY id", ids):
            by_id[d["incident_id"]]["decision"] = d  # the latest decision wins; reasons stay JSON text

    def insert_decision(self, *, person_id: int, incident_id: int | None, stage: str, eligible: bool,
                        scheme: str | None, reasons: list[dict], fingerprint: str, at: datetime,
                        officer: str) -> int:
        import json

        cur = self.conn.execute(
            "INSERT INTO decisions (person_id, incident_id, stage, eligible, scheme, reasons, "
            "config_fingerprint, taken_at, taken_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (person_id, incident_id, stage, int(eligible), scheme, json.dumps(reasons, ensure_ascii=False),
             fingerprint, _iso(at), officer))
        return cur.fetchone()[0]

    # ---- referrals -----------------------------------------------------

    def referrals_of(self, person_id: int) -> list[dict]:
        return self._all("SELECT * FROM referrals WHERE person_id = ? ORDER BY offered_at, id", (person_id,))

    def referral(self, referral_id: str) -> dict | None:
        return self._one("SELECT * FROM referrals WHERE id = ?", (referral_id,))

    def live_referral_for_incident(self, incident_id: int) -> dict | None:
        return self._one("SELECT * FROM referrals WHERE incident_id = ? AND status NOT IN ('voided', 'declined')",
                         (incident_id,))

    def next_referral_id(self, year: int) -> str:
        """The next R-YYYY-NNNNNN; call inside a write transaction so it cannot be taken twice."""
        row = self.conn.execute("SELECT max(id) FROM referrals WHERE id >= ? AND id < ?",
                                (f"R-{year}-", f"R-{year}-:")).fetchone()
        last = int(row[0].rsplit("-", 1)[1]) if row[0] else 0
        referral_id = f"R-{year}-{max(last, self._issued(f'R-{year}')) + 1:06d}"
        self._never_issued("referral", referral_id)
        return referral_id

    def _issued(self, kind: str) -> int:
        """The highest id of this kind ever issued, erased or not (migration 8)."""
        row = self.conn.execute("SELECT last FROM issued_ids WHERE kind = ?", (kind,)).fetchone()
        return row[0] if row else 0

    def insert_referral(self, *, referral_id: str, person_id: int, incident_id: int, scheme: str, pathway: str,
                        one_shot_group: str, lookback_since: str | None, provider: str,
                        appointment: datetime | None, deadline: datetime, at: datetime, officer: str,
                        conditions: list[tuple[str, str, datetime]]) -> None:
        self.conn.execute(
            "INSERT INTO referrals (id, person_id, incident_id, scheme, pathway, one_shot_group, lookback_since, "
            "status, provider, appointment, deadline, offered_at, offered_by, updated_at, updated_by) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, 'offered', ?, ?, ?, ?, ?, ?, ?)",
            (referral_id, person_id, incident_id, scheme, pathway, one_shot_group, lookback_since, provider,
             _iso(appointment), _iso(deadline), _iso(at), officer, _iso(at), officer))
        self.conn.executemany(
            "INSERT INTO referral_conditions (referral_id, position, key, description, due) VALUES (?, ?, ?, ?, ?)",
            [(referral_id, i, key, text, _iso(due)) for i, (key, text, due) in enumerate(conditions)])

    def set_referral_status(self, referral_id: str, status: str, *, at: datetime, officer: str,
                            reason: str | None = None, outcome_code: int | None = None) -> None:
        diverted = status == "accepted"
        closing = status in ("completed", "failed", "declined", "voided")
        self.conn.execute(
            "UPDATE referrals SET status = ?, reason = coalesce(?, reason), "
            "diverted_at = CASE WHEN ? THEN ? ELSE diverted_at END, "
            "closed_at = CASE WHEN ? THEN ? ELSE closed_at END, "
            "outcome_code = coalesce(?, outcome_code), updated_at = ?, updated_by = ? WHERE id = ?",
            (status, reason, diverted, _iso(at), closing, _iso(at), outcome_code, _iso(at), officer, referral_id))

    def correct_referral(self, referral_id: str, status: str, *, at: datetime, officer: str, reason: str,
                         outcome_code: int | None, closed_at: datetime | None) -> None:
        """A supervisor's correction of a closed referral (migration 7): the correction
        flag exists only inside this statement's transaction."""
        self.conn.execute("INSERT INTO correction (active) VALUES (1)")
        try:
            self.conn.execute(
                "UPDATE referrals SET status = ?, reason = ?, outcome_code = ?, closed_at = coalesce(?, closed_at), "
                "updated_at = ?, updated_by = ? WHERE id = ?",
                (status, reason, outcome_code, _iso(closed_at), _iso(at), officer, referral_id))
        finally:
            self.conn.execute("DELETE FROM correction")

    def conditions_of(self, referral_id: str) -> list[dict]:
        return self._all("SELECT * FROM referral_conditions WHERE referral_id = ? ORDER BY position",
                         (referral_id,))

    def set_condition(self, referral_id: str, position: int, status: str, *, at: datetime, officer: str,
                      note: str | None) -> None:
        self.conn.execute(
            "UPDATE referral_conditions SET status = ?, recorded_at = ?, recorded_by = ?, note = ? "
            "WHERE referral_id = ? AND position = ?",
            (status, _iso(at), officer, note, referral_id, position))

    # ---- audit and administration ------------------------------------------

    def verify_audit(self) -> dict:
        """Raises audit.Problem naming the first bad entry or row."""
        from diversion_cli.store import audit

        result = audit.verify(self.conn, reopen=lambda: connect(self.path))
        result["report_cache_checked"] = self.check_report_cache()
        return result

    def check_anchors(self, anchors: list[tuple[int, str, int, str]]) -> None:
        from diversion_cli.store import audit

        audit.check_anchors(self.conn, anchors)

    def audit_entries(self, person_id: int | None = None, referral_id: str | None = None,
                      limit: int = 200) -> list[dict]:
        """The most recent `limit` entries (oldest first), whole rows before and after each."""
        from diversion_cli.store import audit

        where, params = [], []
        if person_id is not None:
            where.append("e.person_id = ?")
            params.append(person_id)
        if referral_id is not None:  # the referral and its conditions
            where.append("((e.entity = 'r' AND e.entity_id = ?) OR (e.entity = 'c' AND e.entity_id > ? "
                         "AND e.entity_id < ?))")
            params += [referral_id, referral_id + "/", referral_id + "0"]
        sql = ("SELECT e.seq, t.at, t.officer, t.operation, t.reason, e.action, e.entity, e.entity_id, e.person_id, "
               "e.old, e.old_digest FROM audit_entries e JOIN audit_transactions t ON t.last_seq = "
               "(SELECT min(last_seq) FROM audit_transactions WHERE last_seq >= e.seq)"
               + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY e.seq DESC LIMIT ?")
        return audit.history(self.conn, list(reversed(self._all(sql, (*params, limit)))))

    def void_incident(self, incident_id: int, at: datetime, reason: str) -> None:
        self.conn.execute("UPDATE incidents SET voided_at = ?, void_reason = ? WHERE id = ?",
                          (_iso(at), reason, incident_id))

    def amend_incident(self, incident_id: int, changes: dict) -> None:
        allowed = {"occurred_at", "age", "location", "quantity", "supply_suspected"}
        assert set(changes) <= allowed, changes
        sets = ", ".join(f"{column} = ?" for column in changes)
        self.conn.execute(f"UPDATE incidents SET {sets} WHERE id = ?", (*changes.values(), incident_id))

    def amend_person(self, person_id: int, changes: dict) -> None:
        allowed = {"surname", "forenames", "dob", "pnc", "gender", "ethnicity", "surname_norm", "forenames_norm"}
        assert set(changes) <= allowed, changes
        sets = ", ".join(f"{column} = ?" for column in changes)
        self.conn.execute(f"UPDATE people SET {sets} WHERE id = ?", (*changes.values(), person_id))

    def erase_person(self, person_id: int, at: datetime, officer: str, reason: str) -> dict:
        """Delete everything about one person and blank their audit snapshots.
        The trail keeps the digests and the ids, so it still verifies."""
        c = self.conn
        c.execute("INSERT INTO erasures (person_id, erased_at, erased_by, reason) VALUES (?, ?, ?, ?)",
                  (person_id, _iso(at), officer, reason))
        referrals = "SELECT id FROM referrals WHERE person_id = ?"
        incidents = "SELECT id FROM incidents WHERE person_id = ?"
        removed = {
            "conditions": c.execute(f"DELETE FROM referral_conditions WHERE referral_id IN ({referrals})",
                                    (person_id,)).rowcount,
            "referrals": c.execute("DELETE FROM referrals WHERE person_id = ?", (person_id,)).rowcount,
            "decisions": c.execute("DELETE FROM decisions WHERE person_id = ?", (person_id,)).rowcount,
            "substances": c.execute(f"DELETE FROM incident_substances WHERE incident_id IN ({incidents})",
                                    (person_id,)).rowcount,
            "co_offences": c.execute(f"DELETE FROM incident_co_offences WHERE incident_id IN ({incidents})",
                                     (person_id,)).rowcount,
            "incidents": c.execute("DELETE FROM incidents WHERE person_id = ?", (person_id,)).rowcount,
            "people": c.execute("DELETE FROM people WHERE id = ?", (person_id,)).rowcount,
        }
        c.execute("DELETE FROM report_cache")  # cached figures were computed with them in
        self.seal_audit()
        # the trail keeps ids and digests; without the salt, no digest can confirm a guess
        c.execute("UPDATE audit_entries SET old = NULL WHERE person_id = ? AND old IS NOT NULL", (person_id,))
        c.execute("DELETE FROM audit_salts WHERE person_id = ?", (person_id,))
        return removed

    def integrity_check(self) -> list[str]:
        """SQLite's integrity check, then, for a backup, how the file differs from the
        record of what it held when it was taken (store/backup.py); ["ok"] if all is well."""
        from diversion_cli.store import backup

        return [row[0] for row in self.conn.execute("PRAGMA integrity_check")] + backup.manifest_problems(self.conn)

    def status(self) -> dict:
        counts = {}
        for table in ("people", "incidents", "referrals", "decisions"):
            counts[table] = self.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        counts["audit_entries"], counts["audit_transactions"] = self.conn.execute(
            "SELECT (SELECT coalesce(max(seq), 0) FROM audit_entries), (SELECT count(*) FROM audit_transactions)"
        ).fetchone()
        last = self.conn.execute("SELECT at, officer, operation FROM audit_transactions "
                                 "ORDER BY last_seq DESC LIMIT 1").fetchone()
        open_referrals = self.conn.execute(
            "SELECT count(*) FROM referrals WHERE status IN ('offered', 'accepted')").fetchone()[0]
        return {"schema_version": self.schema_version(), "counts": counts, "open_referrals": open_referrals,
                "last_write": {"at": last[0], "officer": last[1], "operation": last[2]} if last else None}

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

    # ---- analytics: per-month totals that reports.py regroups ------------------
    # An incident is counted by its person's gender and ethnicity, the verdict at
    # record and its latest live referral, each one seek in a covering index
    # (migration 10). The verdict comes as 'eligible:scheme' and the referral as
    # 'status:scheme:outcome code' (reports.py splits them): one seek each, where
    # separate columns would cost a join back to the row.
    VERDICT = ("(SELECT d.eligible || ':' || coalesce(d.scheme, '') FROM decisions d "
               "WHERE d.incident_id = i.id AND d.stage = 'record' ORDER BY d.id DESC LIMIT 1)")
    REFERRAL = ("(SELECT r.status || ':' || r.scheme || ':' || coalesce(CAST(r.outcome_code AS TEXT), '') FROM referrals r "
                "WHERE r.incident_id = i.id AND r.status != 'voided' ORDER BY r.offered_at DESC LIMIT 1)")
    PROFILE = f"CASE WHEN i.age < 18 THEN 1 ELSE 0 END, p.ethnicity, p.gender, {VERDICT}, {REFERRAL}"
    # A breakdown's own group column and the join it needs (by scheme, gender or
    # ethnicity, reports.py regroups the profile instead). An incident counts once
    # under each of its substances, and once under each of its drug classes.
    BREAKDOWNS = {
        "substance": ("s.substance", "LEFT JOIN incident_substances s ON s.incident_id = i.id"),
        "drug_class": ("s.drug_class", "LEFT JOIN incident_substances s ON s.incident_id = i.id AND s.position = "
                                       "(SELECT min(s2.position) FROM incident_substances s2 "
                                       "WHERE s2.incident_id = i.id AND s2.drug_class IS s.drug_class)"),
        "age_band": ("i.age", ""),
        "location": ("i.location", ""),
        "officer": ("i.recorded_by", ""),
    }
    IN_PERIOD = "i.occurred_at >= :s AND i.occurred_at < :e AND i.voided_at IS NULL"

    def _counted(self, by: str) -> tuple[str, str, str]:
        """(columns, joins, GROUP BY clause) that incidents are counted by."""
        if not by:
            return self.PROFILE, "JOIN people p INDEXED BY people_profile ON p.id = i.person_id", "1, 2, 3, 4, 5"
        group, join = self.BREAKDOWNS[by]
        return f"{self.VERDICT}, {self.REFERRAL}, {group}", join, "1, 2, 3"

    def incident_totals(self, start: str, end: str, by: str = "") -> list[tuple]:
        """Incidents that occurred in [start, end), voided ones left out, counted per
        group: (youth, ethnicity, gender, verdict, referral, incidents, first occurred_at),
        the first so that groups keep the order they appear in; for a breakdown `by`
        (BREAKDOWNS): (verdict, referral, group, incidents). Memory and the cache hold
        a row per group, never one per incident."""
        columns, join, groups = self._counted(by)
        first = "" if by else ", min(i.occurred_at)"
        return [tuple(row) for row in self.conn.execute(
            f"SELECT {columns}, count(*){first} FROM incidents i {join} WHERE {self.IN_PERIOD} GROUP BY {groups}",
            {"s": start, "e": end})]

    def overdue_totals(self, start: str, end: str, now: str, by: str = "") -> list[tuple]:
        """The incidents of [start, end) whose latest live referral is open past its
        deadline at `now`, grouped as incident_totals (without the first). Never
        cached, as it moves with the clock; found from the open referrals, which are
        few (referrals_queue)."""
        columns, join, groups = self._counted(by)
        return [tuple(row) for row in self.conn.execute(f"""
            SELECT {columns}, count(*)
            FROM referrals o INDEXED BY referrals_queue CROSS JOIN incidents i ON i.id = o.incident_id {join}
            WHERE o.status IN ('offered', 'accepted') AND o.deadline < :now AND {self.IN_PERIOD}
              AND o.id = (SELECT r.id FROM referrals r WHERE r.incident_id = i.id AND r.status != 'voided'
                             ORDER BY r.offered_at DESC LIMIT 1)
            GROUP BY {groups}""", {"s": start, "e": end, "now": now})]

    def month_activity(self, start: str, end: str, scheme: str = "") -> dict[str, int]:
        """Incidents recorded, referrals offered and diversions completed in [start, end),
        for one scheme if given (an incident counts under the scheme of its referral,
        or else the one it was found eligible for, as in incident_totals)."""
        incidents = "SELECT count(*) FROM incidents i WHERE occurred_at >= :s AND occurred_at < :e AND voided_at IS NULL"
        if scheme:
            incidents += """ AND coalesce(
                (SELECT r.scheme FROM referrals r WHERE r.incident_id = i.id AND r.status != 'voided'
                 ORDER BY r.offered_at DESC LIMIT 1),
                (SELECT d.scheme FROM decisions d WHERE d.id = (SELECT max(d2.id) FROM decisions d2
                 WHERE d2.incident_id = i.id AND d2.stage = 'record'))) = :scheme"""
        in_scheme = " AND +scheme = :scheme" if scheme else ""
        return dict(zip(("incidents", "offered", "completed"), self.conn.execute(f"""
            SELECT ({incidents}),
                   (SELECT count(*) FROM referrals WHERE offered_at >= :s AND offered_at < :e
                    AND +status != 'voided'{in_scheme}),
                   (SELECT count(*) FROM referrals WHERE closed_at >= :s AND closed_at < :e
                    AND +status = 'completed'{in_scheme})""", {"s": start, "e": end, "scheme": scheme}).fetchone()))

    # the end of a re-offending window: N months on, the day carried over (31 August + 6 months
    # is 3 March); PostgreSQL's diversion_add_months is the same definition
    ADD_MONTHS = "strftime('%Y-%m-%dT%H:%M:%S', since, '+{} months')"

    def reoffending(self, start: str, end: str, watched: str, scheme: str = "") -> dict[str, tuple[int, int, int]]:
        """One cohort: people diverted in [start, end), and people eligible but not
        diverted then (for one scheme if given: diverted on it, or found eligible for
        it). Per group: (people, with a new incident within 6 months, within 12
        months; 0 unless the cohort has been `watched` for '12' months)."""
        # each member's first later incident (one seek in incidents_person, made once: a
        # materialised step, not an expression repeated in each use) decides both windows;
        # the window's end is worked out only for those who came back
        within = f"count(CASE WHEN next IS NOT NULL AND next <= {self.ADD_MONTHS} THEN 1 END)"
        tail = f""", watched AS MATERIALIZED (
                       SELECT c.since, (SELECT min(j.occurred_at) FROM incidents j
                                        WHERE j.person_id = c.person_id AND j.occurred_at > c.since
                                          AND j.voided_at IS NULL) AS next
                       FROM cohort c)
                   SELECT count(*), {within.format(6)}, CASE WHEN :with_12 = 1 THEN {within.format(12)} ELSE 0 END
                   FROM watched"""
        cohorts = {
            # one entry per diversion (a person is diverted at most once per one-shot scope)
            "diverted": """SELECT person_id, diverted_at AS since FROM referrals
                           WHERE diverted_at >= :s AND diverted_at < :e
                             AND +status IN ('accepted', 'completed', 'failed')
                             AND (:scheme = '' OR scheme = :scheme)""",
            # each person's first incident of the month that was eligible when recorded and
            # did not lead to a diversion, by someone not diverted before it. (A later
            # diversion does not take them out: that would hide exactly the people who
            # came back.)
            "eligible, not diverted": """
                SELECT i.person_id, min(i.occurred_at) AS since
                FROM incidents i
                WHERE i.occurred_at >= :s AND i.occurred_at < :e AND i.voided_at IS NULL
                  -- first what rules most incidents out (most led to a diversion): checked in this order
                  AND NOT EXISTS (SELECT 1 FROM referrals r WHERE r.incident_id = i.id
                                  AND r.status IN ('accepted', 'completed', 'failed'))
                  AND (SELECT CASE WHEN d.eligible = 1 AND (:scheme = '' OR d.scheme = :scheme) THEN 1 END
                       FROM decisions d
                       WHERE d.incident_id = i.id AND d.stage = 'record' ORDER BY d.id DESC LIMIT 1) = 1
                  AND NOT EXISTS (SELECT 1 FROM referrals r WHERE r.person_id = i.person_id
                                  AND r.status IN ('accepted', 'completed', 'failed')
                                  AND r.diverted_at < i.occurred_at)
                GROUP BY i.person_id""",
        }
        params = {"s": start, "e": end, "with_12": int(watched == "12"), "scheme": scheme}
        return {group: tuple(self.conn.execute(f"WITH cohort AS ({cohort}){tail}", params).fetchone())
                for group, cohort in cohorts.items()}

    # ---- the report cache (migrations 6 and 10) -----------------------------------

    @contextmanager
    def snapshot(self):
        """Read a report's figures from one consistent state of the file, then keep
        what was computed for next time (best effort: a busy or read-only file
        just means no cache)."""
        self._fresh = {}
        self._begin_read()
        try:
            yield self
        finally:
            if self.conn.in_transaction:
                self.conn.execute("COMMIT")
        self._keep_fresh()

    # What the cache may hold: kind -> the query that computes it from its arguments.
    CACHED = {"facts": "incident_totals", "trend": "month_activity", "reoffending": "reoffending"}
    # Part of every key: change it whenever a query above changes what it returns, so
    # figures cached by an older diversion are never read (and are cleared out).
    CACHE_FORMAT = "v2"
    # An entry's stamp: the changes counted in the months of the dates it reads (any
    # change: month_changes) and in the months of the diversions it reads (only changes
    # to a diversion: diversion_changes, migration 10). Both only go up.
    STAMP = ("SELECT (SELECT coalesce(sum(changes), 0) FROM month_changes WHERE month BETWEEN ? AND ?) "
             "+ (SELECT coalesce(sum(changes), 0) FROM diversion_changes WHERE month BETWEEN ? AND ?)")
    NO_MONTHS = ("1", "0")  # an empty BETWEEN

    @classmethod
    def _months_read(cls, kind: str, args: list[str]) -> tuple[str, str, str, str]:
        """The months (YYYY-MM, inclusive) of the dates the query of a cache entry reads,
        then those of the diversions it reads, from its key alone, so a report and
        `audit verify` always agree on whether an entry is current. Raises ValueError
        for a key no report would write."""
        def month(day: str, plus: int = 0) -> str:
            n = int(day[:4]) * 12 + int(day[5:7]) - 1 + plus
            return f"{n // 12:04d}-{n % 12 + 1:02d}"

        dates = [date.fromisoformat(a).isoformat() for a in args[:2]]
        if kind == "facts" and len(args) == 3 and (args[2] == "" or args[2] in cls.BREAKDOWNS):
            start, end = dates
            return month(start), month(end, -1 if end.endswith("-01") else 0), *cls.NO_MONTHS
        if kind == "trend" and len(args) == 3:
            return month(dates[0]), month(dates[0]), *cls.NO_MONTHS
        if kind == "reoffending" and len(args) == 4 and args[2] in ("6", "12"):
            # the cohort's incidents, diversions and the new incidents of its window (SQLite
            # takes '+6 months' from the 31st into the month after the sixth); and any
            # diversion before the cohort, which takes a person out of the comparison group
            return month(dates[0]), month(dates[0], int(args[2]) + 1), "0000-00", month(dates[0])
        raise ValueError(kind)

    def figures(self, kind: str, *args: str):
        """incident_totals, month_activity or reoffending(*args), from the cache if
        none of the months they read has changed since they were computed."""
        import json

        key = ":".join((self.CACHE_FORMAT, kind, *args))
        months = self._months_read(kind, list(args))
        stamp = self.conn.execute(self.STAMP, months).fetchone()[0]
        row = self.conn.execute("SELECT value FROM report_cache WHERE key = ? AND stamp = ?", (key, stamp)).fetchone()
        if row is not None:
            try:
                cached = json.loads(row[0])
            except ValueError:
                cached = None  # not what diversion writes: computed afresh (`audit verify` names it)
            if isinstance(cached, list if kind == "facts" else dict):
                return cached
        value = getattr(self, self.CACHED[kind])(*args)  # tuples where the cache gives lists: read alike
        self._fresh[key] = (months, stamp, _json(value))
        return value

    def check_report_cache(self) -> int:
        """Recompute every entry that reports would still use; raises audit.Problem
        if one differs (it was edited outside diversion). Returns how many."""
        from diversion_cli.store.audit import Problem

        checked = 0
        for key, stamp, value in self.conn.execute("SELECT key, stamp, value FROM report_cache").fetchall():
            version, _, rest = key.partition(":")
            if version != self.CACHE_FORMAT:
                continue  # an older diversion's: never read
            kind, *args = rest.split(":")
            try:
                months = self._months_read(kind, args)
            except (ValueError, IndexError):
                raise Problem(f"the report cache entry {key} does not match the records: diversion never "
                              f"writes such a key, it was added outside diversion") from None
            current = self.conn.execute(self.STAMP, months).fetchone()[0]
            if stamp > current:  # counts only go up: a stamp from the future waits to be read
                raise Problem(f"the report cache entry {key} is stamped ahead of the records: it was added "
                              f"outside diversion")
            if current != stamp:
                continue  # stale: never read again, replaced when next computed
            if _json(getattr(self, self.CACHED[kind])(*args)) != value:
                raise Problem(f"the report cache entry {key} does not match the records: it was edited "
                              f"outside diversion")
            checked += 1
        return checked

    def _keep_fresh(self) -> None:
        fresh, self._fresh = self._fresh, {}
        if not fresh:
            return
        try:
            self.conn.execute("PRAGMA busy_timeout = 200")  # never hold a report up behind a writer
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.execute("DELETE FROM report_cache WHERE key NOT LIKE ?", (self.CACHE_FORMAT + ":%",))
            # only what is still current: a change (an erasure above all) that landed after
            # the report read its figures must not leave them behind
            current = [(key, stamp, value) for key, (months, stamp, value) in fresh.items()
                       if self.conn.execute(self.STAMP, months).fetchone()[0] == stamp]
            self.conn.executemany("INSERT OR REPLACE INTO report_cache (key, stamp, value) VALUES (?, ?, ?)",
                                  current)
            self.conn.execute("COMMIT")
        except database_errors():
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
        finally:
            self.conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout() * 1000)}")

    EXPORT_VIEWS = {"incidents": ("incidents_view", "occurred_at"), "referrals": ("referrals_view", "offered_at")}

    def export_rows(self, what: str, start: str | None, end: str | None):
        """(column names, row iterator) over an analyst view, streamed."""
        view, column = self.EXPORT_VIEWS[what]
        where, params = [], []
        if start:
            where.append(f"{column} >= ?")
            params.append(start)
        if end:
            where.append(f"{column} < ?")
            params.append(end)
        sql = f"SELECT * FROM {view}" + (" WHERE " + " AND ".join(where) if where else "") + f" ORDER BY {column}"
        cursor = self.conn.execute(sql, params)
        return [d[0] for d in cursor.description], cursor

    def next_row_ids(self) -> tuple[int, int]:
        """The next person and incident ids never issued before, erasures included (inside a write
        transaction)."""
        return self._next_id("people", "person"), self._next_id("incidents", "incident")

    def _next_id(self, table: str, kind: str) -> int:
        last = self.conn.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()[0]
        issued = max(last, self._issued(kind)) + 1
        self._never_issued(kind, str(issued))
        return issued

    def _never_issued(self, entity: str, entity_id: str) -> None:
        """An id about to be issued must not be in the trail already: if it is, the record of
        issued ids was lowered outside diversion (one index look-up)."""
        if self._audited and self.conn.execute("SELECT 1 FROM audit_entries WHERE entity = ? AND entity_id = ? LIMIT 1",
                                               (ENTITY_CODES[entity], entity_id)).fetchone():
            raise StoreUnusable(f"{entity} id {entity_id} was issued before (it is in the audit trail): the record "
                                f"of issued ids was changed outside diversion; run `diversion audit verify`. "
                                f"Nothing was written")

    @contextmanager
    def bulk_load(self):
        """Inside a write transaction: hold the per-row insert triggers off (migration 5);
        insert_batch enters the rows in the trail and the month stamps itself."""
        self.conn.execute("INSERT INTO bulk_load (active) VALUES (1)")
        # the rows each batch writes to referrals (found by id: PostgreSQL has no rowid)
        self.conn.execute("CREATE TEMP TABLE IF NOT EXISTS batch_referrals (id TEXT PRIMARY KEY)")
        try:
            yield self
        finally:
            # (a PostgreSQL transaction that failed takes nothing more: its rollback clears the flag)
            if self.conn.in_transaction and not getattr(self.conn, "failed", False):
                self.conn.execute("DELETE FROM bulk_load")

    def insert_batch(self, batch: dict[str, list[tuple]]) -> None:
        """Write one batch of a bulk load (inside bulk_load()). Raises Refused if the
        database's constraints refuse a row."""
        from diversion_cli.store import audit

        c = self.conn
        decisions_before = c.execute("SELECT coalesce(max(id), 0) FROM decisions").fetchone()[0]
        c.execute("DELETE FROM batch_referrals")
        c.executemany("INSERT INTO batch_referrals (id) VALUES (?)", [(row[0],) for row in batch.get("referrals", ())])
        people, incidents = batch["people"], batch["incidents"]
        person_ids = (people[0][0], people[-1][0]) if people else (0, -1)
        incident_ids = (incidents[0][0], incidents[-1][0]) if incidents else (0, -1)
        inserted = {  # how to find this batch's rows, for their trail entries
            "people": ("t.id BETWEEN ? AND ?", person_ids),
            "incidents": ("t.id BETWEEN ? AND ?", incident_ids),
            "incident_substances": ("t.incident_id BETWEEN ? AND ?", incident_ids),
            "incident_co_offences": ("t.incident_id BETWEEN ? AND ?", incident_ids),
            "decisions": ("t.id > ?", (decisions_before,)),
            "referrals": ("t.id IN (SELECT id FROM batch_referrals)", ()),
            "referral_conditions": ("t.referral_id IN (SELECT id FROM batch_referrals)", ()),
        }
        try:
            for table, sql in BATCH_SQL.items():
                rows = batch.get(table)
                if rows:
                    c.executemany(sql, rows)
                    rows.clear()
                    if table == "people":  # their digests are salted
                        c.execute("INSERT INTO audit_salts (person_id, salt) SELECT id, randomblob(16) FROM people "
                                  "WHERE id BETWEEN ? AND ?", person_ids)
                    if table in inserted:  # entered before any later update of the same rows
                        if table == "decisions":  # the one id a bulk load takes from the table itself
                            reused = audit.still_standing(c, table, *inserted[table])
                            if reused:
                                raise StoreUnusable(f"{reused}; run `diversion audit verify`. Nothing was written")
                        audit.enter_inserted(c, table, *inserted[table])
        except integrity_errors() as exc:
            raise refusal_for(exc) from None
        marks = {"first_person": person_ids[0], "last_person": person_ids[1], "first": incident_ids[0],
                 "last": incident_ids[1]}
        for months in MONTHS_OF_BATCH:
            c.execute(months, marks)
        c.execute(IDS_OF_BATCH, marks)

    def referral_queue(self, statuses: tuple[str, ...], due_before: str | None) -> list[dict]:
        """Referrals in the given states, joined with the person, most urgent first."""
        marks = ",".join("?" * len(statuses))
        params: list = list(statuses)
        where = f"r.status IN ({marks})"
        if due_before:
            where += " AND r.deadline < ?"
            params.append(due_before)
        return self._all(
            f"SELECT r.*, p.surname, p.forenames, i.occurred_at FROM referrals r "
            f"JOIN people p ON p.id = r.person_id JOIN incidents i ON i.id = r.incident_id "
            f"WHERE {where} ORDER BY r.deadline, r.id", params)

    # ---- the desk's look-ups (issue 13) ------------------------------------

    def people_by_surname(self, surname_norm: str, forenames_start: str = "", dob: str | None = None,
                          limit: int = 50) -> list[dict]:
        """People with this surname whose first forenames start so, each with their last incident."""
        start = forenames_start.replace("!", "!!").replace("%", "!%").replace("_", "!_")
        return self._all(
            "SELECT p.*, i.id AS last_incident, i.occurred_at AS last_incident_at FROM people p "
            "LEFT JOIN incidents i ON i.id = (SELECT i2.id FROM incidents i2 WHERE i2.person_id = p.id "
            "ORDER BY i2.occurred_at DESC, i2.id DESC LIMIT 1) WHERE p.surname_norm = ? "
            "AND p.forenames_norm LIKE ? ESCAPE '!' AND (? IS NULL OR p.dob = ?) "
            "ORDER BY p.forenames_norm, p.dob, p.id LIMIT ?",
            (surname_norm, start + "%", dob, dob, limit))

    def incidents_since(self, since: datetime, officer: str | None = None, location: str | None = None,
                        limit: int = 500) -> list[dict]:
        """Incidents that occurred from `since`, newest first, each with its person, its
        current decision and its live referral; optionally one officer's, or at a place."""
        rows = self._all(
            "SELECT i.*, p.surname, p.forenames, p.dob, p.pnc, r.id AS referral_id, r.status AS referral_status "
            "FROM incidents i JOIN people p ON p.id = i.person_id "
            "LEFT JOIN referrals r ON r.id = (SELECT r2.id FROM referrals r2 WHERE r2.incident_id = i.id "
            "AND r2.status != 'voided' ORDER BY r2.offered_at DESC LIMIT 1) "
            "WHERE i.occurred_at >= ? AND (? IS NULL OR i.recorded_by = ?) "
            "AND (? IS NULL OR instr(lower(i.location), lower(?)) > 0) "
            "ORDER BY i.occurred_at DESC, i.id DESC LIMIT ?",
            (_iso(since), officer, officer, location, location, limit))
        self._attach_incident_details(rows)
        return rows

    def decisions_of_incident(self, incident_id: int) -> list[dict]:
        return self._all("SELECT * FROM decisions WHERE incident_id = ? ORDER BY id", (incident_id,))

    def referrals_of_incident(self, incident_id: int) -> list[dict]:
        return self._all("SELECT * FROM referrals WHERE incident_id = ? ORDER BY offered_at, id", (incident_id,))

    def replace_incident_substances(self, incident_id: int, substances: list[tuple[str, str, str]]) -> None:
        """An amendment: the substances as corrected (the old rows stay in the audit trail)."""
        self.conn.execute("DELETE FROM incident_substances WHERE incident_id = ?", (incident_id,))
        self.conn.executemany(
            "INSERT INTO incident_substances (incident_id, position, substance, drug_class, entered_as) "
            "VALUES (?, ?, ?, ?, ?)",
            [(incident_id, i, key, cls, entered) for i, (key, cls, entered) in enumerate(substances)])

    def replace_incident_co_offences(self, incident_id: int, co_offences: list[str]) -> None:
        self.conn.execute("DELETE FROM incident_co_offences WHERE incident_id = ?", (incident_id,))
        self.conn.executemany(
            "INSERT INTO incident_co_offences (incident_id, position, description) VALUES (?, ?, ?)",
            [(incident_id, i, text) for i, text in enumerate(co_offences)])


# Bulk loading (import): rows arrive as tuples in these column orders and are
# written with executemany, parents before children.
BATCH_SQL = {
    "people": "INSERT INTO people (id, surname, forenames, dob, pnc, gender, ethnicity, surname_norm, "
              "forenames_norm, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    # fills what was missing; only touches (and audits) a person when something was
    "person_gaps": "UPDATE people SET pnc = coalesce(pnc, ?1), gender = coalesce(gender, ?2), "
                   "ethnicity = coalesce(ethnicity, ?3) WHERE id = ?4 AND ((pnc IS NULL AND ?1 IS NOT NULL) "
                   "OR (gender IS NULL AND ?2 IS NOT NULL) OR (ethnicity IS NULL AND ?3 IS NOT NULL))",
    "incidents": "INSERT INTO incidents (id, person_id, occurred_at, age, location, quantity, supply_suspected, "
                 "recorded_at, recorded_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "incident_substances": "INSERT INTO incident_substances (incident_id, position, substance, drug_class, "
                           "entered_as) VALUES (?, ?, ?, ?, ?)",
    "incident_co_offences": "INSERT INTO incident_co_offences (incident_id, position, description) "
                            "VALUES (?, ?, ?)",
    "decisions": "INSERT INTO decisions (person_id, incident_id, stage, eligible, scheme, reasons, "
                 "config_fingerprint, taken_at, taken_by) VALUES (?, ?, 'record', ?, ?, ?, ?, ?, ?)",
    "referrals": "INSERT INTO referrals (id, person_id, incident_id, scheme, pathway, one_shot_group, "
                 "lookback_since, status, provider, appointment, deadline, offered_at, offered_by, diverted_at, "
                 "closed_at, outcome_code, reason, updated_at, updated_by) "
                 "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "referral_conditions": "INSERT INTO referral_conditions (referral_id, position, key, description, due, "
                           "status, recorded_at, recorded_by, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
}


def _json(value) -> str:
    import json

    return json.dumps(value, separators=(",", ":"))


# The months a batch touched, counted for the report cache (migrations 6 and 10)
# in a statement each instead of by a trigger per row.
MONTHS_OF_BATCH = ("""
INSERT INTO month_changes (month, changes)
SELECT month, count(*) FROM (
    SELECT substr(occurred_at, 1, 7) AS month FROM incidents WHERE id BETWEEN :first AND :last
    UNION ALL SELECT substr(offered_at, 1, 7) FROM referrals WHERE id IN (SELECT id FROM batch_referrals)
    UNION ALL SELECT substr(diverted_at, 1, 7) FROM referrals WHERE id IN (SELECT id FROM batch_referrals)
    UNION ALL SELECT substr(closed_at, 1, 7) FROM referrals WHERE id IN (SELECT id FROM batch_referrals)
) AS touched WHERE month IS NOT NULL GROUP BY month
ON CONFLICT (month) DO UPDATE SET changes = month_changes.changes + excluded.changes""", """
INSERT INTO diversion_changes (month, changes)
SELECT substr(diverted_at, 1, 7), count(*) FROM referrals WHERE id IN (SELECT id FROM batch_referrals)
AND diverted_at IS NOT NULL
GROUP BY 1
ON CONFLICT (month) DO UPDATE SET changes = diversion_changes.changes + excluded.changes""")


# The highest ids a batch issued (migration 8's per-row triggers are held off in a bulk load).
IDS_OF_BATCH = """
INSERT INTO issued_ids (kind, last)
SELECT kind, max(n) FROM (
    SELECT 'person' AS kind, id AS n FROM people WHERE id BETWEEN :first_person AND :last_person
    UNION ALL SELECT 'incident', id FROM incidents WHERE id BETWEEN :first AND :last
    UNION ALL SELECT substr(id, 1, 6), CAST(substr(id, 8) AS INTEGER) FROM referrals
              WHERE id IN (SELECT id FROM batch_referrals)
) AS issued GROUP BY kind
ON CONFLICT (kind) DO UPDATE SET last = max(issued_ids.last, excluded.last)"""


def refusal_for(exc: Exception) -> Refused:
    text = str(exc)
    if "one_shot_used" in text:
        return Refused("refused by the database: this person has already had their diversion (one-shot rule)")
    if "referrals_one_open" in text or "referrals.person_id" in text:  # (SQLite names the column)
        return Refused("refused by the database: this person already has an open referral")
    if "incident_void" in text:
        return Refused("refused by the database: the incident is void")
    if "illegal_transition" in text:
        return Refused("refused by the database: that status change is not allowed")
    if "referrals.incident_id" in text or "referrals_one_per_incident" in text:
        return Refused("refused by the database: this incident already has a live referral")
    if "people.pnc" in text or "people_pnc_key" in text:
        return Refused("refused by the database: another person already has that PNC ID")
    return Refused(f"refused by the database: {text}")


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
