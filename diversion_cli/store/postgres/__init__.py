"""The PostgreSQL engine: one shared record for a force's custody suites.

Everything that differs from the SQLite default is here: connecting (psycopg 3,
imported only for a postgresql:// target), the dialect (the store writes SQL once;
`translate` turns its few SQLite forms into PostgreSQL's), the schema
(schema.py), how writes serialise, and what the server does instead of files
(backups, compaction, integrity).

Writes serialise on one transaction-scoped advisory lock taken first thing in
every write transaction, so a desk's reads and its writes see every earlier
desk's commit (READ COMMITTED alone let 20 desks create the same new person
twice or three times, each referred). A desk that cannot get the lock within
DIVERSION_BUSY_TIMEOUT gets exit 4 with nothing written. Reports and
`audit verify` read one REPEATABLE READ snapshot.
"""

from __future__ import annotations

import functools
import itertools
import os
import re
from urllib.parse import unquote, urlsplit

from diversion_cli.errors import BadInput, Refused, StoreUnusable

ENGINE = "postgres"
SCHEMES = ("postgresql://", "postgres://")
# every writer takes this lock first (pg_advisory_xact_lock): "diversion" as a 64-bit key
WRITE_LOCK = int.from_bytes(b"diversio", "big") >> 1


class PostgresTarget:
    """A postgresql:// URL (libpq's; its password, if any, must come from PGPASSWORD,
    ~/.pgpass or a service file: never the command line)."""

    def __init__(self, url: str):
        try:
            parts = urlsplit(url)
            password = parts.password
        except ValueError as exc:
            raise BadInput("db", f"not a valid postgresql:// URL ({exc})") from None
        # (libpq decodes %-escapes in a key and forgives case and spaces: pass%77ord, PASSWORD, password =)
        keys = [unquote(pair.split("=", 1)[0]).strip().lower() for pair in re.split(r"[&;]", parts.query) if pair]
        if password is not None or any(key.startswith("pass") for key in keys):
            raise BadInput("db", "a password in the database URL would show in the process list and shell "
                                 "history: give it with PGPASSWORD, ~/.pgpass or a service file (README)")
        self.url = url

    def __str__(self) -> str:
        """The URL without its query (the connection settings stay out of messages)."""
        return self.url.split("?", 1)[0]

    def __eq__(self, other) -> bool:
        return isinstance(other, PostgresTarget) and other.url == self.url

    def __hash__(self) -> int:
        return hash(self.url)


def is_target(chosen: str) -> bool:
    return chosen.startswith(SCHEMES)


def looks_meant(chosen: str) -> bool:
    """A mistyped server target (postgresql:db, postgresql//host/db, a libpq `host=... dbname=...`
    string), which would otherwise be taken for a file path."""
    return re.match(r"postgres(ql)?[:/]", chosen, re.IGNORECASE) is not None \
        or re.search(r"(^|\s)(host|dbname|user|service)=", chosen) is not None


# ---- the dialect ---------------------------------------------------------------------

_LITERAL = re.compile(r"('(?:[^']|'')*')")
_REWRITES = [
    (re.compile(r"\bINDEXED BY \w+\s*"), ""),  # SQLite's index hints: PostgreSQL plans alone
    (re.compile(r"(?<=[\s(])\+(?=[a-z_])"), ""),  # `+col`, which keeps SQLite off an index
    (re.compile(r"\bCROSS JOIN\b"), "JOIN"),  # SQLite's way to fix the join order
    (re.compile(r"\bIS NOT (?!NULL\b|DISTINCT\b|TRUE\b|FALSE\b)"), "IS DISTINCT FROM "),
    (re.compile(r"\bIS (?!NOT\b|NULL\b|DISTINCT\b|TRUE\b|FALSE\b)"), "IS NOT DISTINCT FROM "),
    (re.compile(r" AS BLOB\)"), " AS text)"),  # a snapshot's bytes: diversion_digest takes the text
    (re.compile(r"\binstr\("), "strpos("),
    (re.compile(r"\brandomblob\(16\)"), "uuid_send(gen_random_uuid())"),
    (re.compile(r"\bmax\(issued_ids\.last, excluded\.last\)"), "greatest(issued_ids.last, excluded.last)"),
]
_NUMBERED = re.compile(r"\?(\d+)")
_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


@functools.lru_cache(maxsize=1024)
def translate(sql: str) -> tuple[str, str]:
    """(PostgreSQL text, placeholder style) of a statement written for SQLite: its
    `?`, `?N` and `:name` placeholders become psycopg's, `%` is escaped, and the
    SQLite forms above are rewritten (never inside a string literal)."""
    parts = _LITERAL.split(sql)
    style = "none"
    for i in range(0, len(parts), 2):  # the even parts are outside literals
        text = parts[i].replace("%", "%%")
        for pattern, replacement in _REWRITES:
            text = pattern.sub(replacement, text)
        if _NUMBERED.search(text):
            text, style = _NUMBERED.sub(r"%(p\1)s", text), "numbered"
        elif "?" in text:
            text, style = text.replace("?", "%s"), "positional"
        elif _NAMED.search(text):
            text, style = _NAMED.sub(r"%(\1)s", text), "named"
        parts[i] = text
    for i in range(1, len(parts), 2):
        parts[i] = parts[i].replace("%", "%%")
    return "".join(parts), style


def _params(style: str, params):
    if style == "numbered" and params is not None and not isinstance(params, dict):
        return {f"p{i}": value for i, value in enumerate(params, 1)}
    if isinstance(params, (list, tuple)):
        return tuple(params)
    return params


class Row(tuple):
    """A result row read by position or by column name, as sqlite3.Row is."""

    def __new__(cls, values, names: dict[str, int]):
        row = super().__new__(cls, values)
        row._names = names
        return row

    def __getitem__(self, key):
        if isinstance(key, str):
            return tuple.__getitem__(self, self._names[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._names)


def _row_factory(cursor):
    names = {d.name: i for i, d in enumerate(cursor.description or ())}
    return lambda values: Row(values, names)


_STREAMS = itertools.count(1)


class Connection:
    """A psycopg connection that speaks as the store's sqlite3 connection does:
    execute(sql, params) with SQLite's placeholders, rows by index or name,
    explicit BEGIN/COMMIT (autocommit between them)."""

    engine = ENGINE

    def __init__(self, raw):
        self.raw = raw

    def execute(self, sql: str, params=None):
        text, style = translate(sql)
        cursor = self.raw.cursor()
        if params is None and style == "none":
            cursor.execute(text.replace("%%", "%"))
        else:
            cursor.execute(text, _params(style, params))
        return cursor

    def stream(self, sql: str, params=None, rows: int = 2000):
        """execute() for a long result, read from the server `rows` at a time (a plain cursor holds
        all of it in memory: the chain texts of a million-incident trail, a whole export). Outside a
        transaction the cursor is WITH HOLD, so it outlives the statement's own commit."""
        text, style = translate(sql)
        cursor = self.raw.cursor(name=f"diversion_{next(_STREAMS)}", withhold=not self.in_transaction)
        cursor.itersize = rows
        if params is None and style == "none":
            cursor.execute(text.replace("%%", "%"))
        else:
            cursor.execute(text, _params(style, params))
        return cursor

    def executemany(self, sql: str, rows):
        text, style = translate(sql)
        cursor = self.raw.cursor()
        rows = [_params(style, r) for r in rows]
        if rows:
            cursor.executemany(text, rows)
        return cursor

    @property
    def failed(self) -> bool:
        """A statement failed in the open transaction: it takes nothing more but ROLLBACK."""
        from psycopg.pq import TransactionStatus

        return self.raw.info.transaction_status == TransactionStatus.INERROR

    @property
    def in_transaction(self) -> bool:
        from psycopg.pq import TransactionStatus

        return self.raw.info.transaction_status != TransactionStatus.IDLE

    def close(self) -> None:
        self.raw.close()


def driver_errors() -> tuple[tuple[type, ...], tuple[type, ...]]:
    """(every psycopg error, its integrity errors) once psycopg is loaded, else empty."""
    import sys

    psycopg = sys.modules.get("psycopg")
    return ((psycopg.Error,), (psycopg.IntegrityError,)) if psycopg else ((), ())


def connect(target: PostgresTarget, timeout: float | None = None) -> Connection:
    """A connection to the server (libpq reads PGPASSWORD, ~/.pgpass, PGSERVICE, PGSSLMODE...)."""
    try:
        import psycopg
    except ImportError:
        raise StoreUnusable("this is a postgresql:// database, and PostgreSQL support is not installed: "
                            "pip install 'diversion[postgres]'") from None
    import logging

    from diversion_cli.store import busy_timeout

    # psycopg logs what it ignores while unwinding (a pipeline cut short by Ctrl-C): not the officer's business
    logging.getLogger("psycopg").propagate = False
    logging.getLogger("psycopg").addHandler(logging.NullHandler())
    seconds = busy_timeout() if timeout is None else timeout
    try:
        # (libpq's own settings win: a connect_timeout in the URL, or PGCONNECT_TIMEOUT)
        wait = {} if "connect_timeout" in target.url or os.environ.get("PGCONNECT_TIMEOUT") else \
            {"connect_timeout": 10}
        raw = psycopg.connect(target.url, autocommit=True, cursor_factory=psycopg.ClientCursor,
                              row_factory=_row_factory, application_name="diversion", **wait)
    except psycopg.Error as exc:
        said = _first_line(exc)
        if "?" in target.url and target.url.split("?", 1)[1] in said or "URI query" in said:
            said = "its settings after ? are not ones libpq knows"  # (its words would repeat the query)
        raise StoreUnusable(f"cannot connect to the database server {target}: {said}") from None
    conn = Connection(raw)
    # waits for another desk's lock end after the busy timeout (exit 4, nothing written)
    # (0 is "no timeout" to PostgreSQL; a desk told 0 means "do not wait")
    conn.execute(f"SET lock_timeout = '{max(1, int(seconds * 1000))}ms'")
    return conn


def _interrupted(exc: BaseException | None) -> bool:
    """Whether a driver error is psycopg's answer to Ctrl-C (the statement cancelled for the user,
    or the connection's state lost while a KeyboardInterrupt was being handled)."""
    while exc is not None:
        if isinstance(exc, KeyboardInterrupt) or "due to user request" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else exc.__class__.__name__


def unusable(exc: Exception, target) -> StoreUnusable:
    """The one line a failing server gets (never the query, which could hold personal data)."""
    import psycopg.errors as e

    if isinstance(exc, (e.LockNotAvailable, e.QueryCanceled, e.SerializationFailure, e.DeadlockDetected)):
        return StoreUnusable(f"the database {target} is busy (another desk is writing); nothing was written, "
                             f"try again")
    if isinstance(exc, e.InsufficientPrivilege):
        return StoreUnusable(f"the database {target} refused this login: {_first_line(exc)}; nothing was written")
    if isinstance(exc, e.UndefinedTable):
        return StoreUnusable(f"the database {target} is not a diversion database or its schema was changed "
                             f"({_first_line(exc)}); nothing was written")
    return StoreUnusable(f"the database {target} failed ({exc.__class__.__name__}: {_first_line(exc)}); "
                         f"nothing was written")


# ---- the store ---------------------------------------------------------------------


def _store_class():
    from diversion_cli.store.base import Store

    class PostgresStore(Store):
        """The store on a PostgreSQL server: what differs from SQLite's."""

        engine = ENGINE
        ADD_MONTHS = "diversion_add_months(since, {})"  # schema.py: SQLite's definition

        @classmethod
        def create(cls, target: PostgresTarget) -> Store:
            """`db init` on a server: build the schema in the database the force's DBA made
            (an empty one: never over tables that are there)."""
            from datetime import datetime

            from diversion_cli.store import _iso
            from diversion_cli.store.postgres import schema

            conn = connect(target)
            try:
                conn.execute("BEGIN")
                conn.execute(f"SELECT pg_advisory_xact_lock({WRITE_LOCK})")
                there = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()").fetchone()[0]
                if there:
                    raise Refused(f"something already exists at {target} (it holds tables): `diversion db init` "
                                  f"never creates a database over it (give it an empty database)")
                here = conn.execute("SELECT current_schema()").fetchone()[0]
                if here is None:
                    raise Refused(f"{target} has no schema to create diversion's tables in (check the login's "
                                  f"search_path)")
                # the functions keep this search path (schema.ddl): the schema's tables, never a temporary one
                conn.execute(f"SET LOCAL search_path = {_identifier(here)}, pg_temp")
                conn.raw.execute(schema.ddl())
                conn.execute("INSERT INTO migrations VALUES (?, ?, ?)",
                             (schema.VERSION, "PostgreSQL schema", _iso(datetime.now())))
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                conn.close()
                if isinstance(exc, driver_errors()[0]):
                    raise unusable(exc, target) from None
                raise
            return cls._ready(target, conn, write=True)

        @classmethod
        def open(cls, target: PostgresTarget, write: bool = False) -> Store:
            return cls._ready(target, connect(target), write)

        @classmethod
        def _ready(cls, target, conn, write: bool, new: bool = False) -> Store:
            store = cls(target, conn)
            try:
                store._diversion_schema()
                store._audited = True
            except BaseException as exc:
                conn.close()
                if isinstance(exc, driver_errors()[0]):
                    raise unusable(exc, target) from None
                raise
            return store

        def _diversion_schema(self) -> int:
            if self.conn.execute("SELECT to_regclass('migrations')").fetchone()[0] is None:
                raise StoreUnusable(f"no database at {self.path} (no diversion schema): create one with `diversion db init` "
                                    f"(in an empty database), or check --db / DIVERSION_DB")
            from diversion_cli.store.postgres import schema

            version = self.schema_version()
            if version > schema.VERSION:  # as on a file: the desk's diversion is the one out of date
                raise StoreUnusable(f"the database {self.path} has schema version {version}, newer than this "
                                    f"diversion understands ({schema.VERSION}); upgrade diversion before using it")
            if version != schema.VERSION:
                raise StoreUnusable(f"the database {self.path} has schema version {version}; this diversion "
                                    f"needs {schema.VERSION} on PostgreSQL")
            return version

        def _begin_write(self) -> None:
            self.conn.execute("BEGIN")
            self.conn.execute(f"SELECT pg_advisory_xact_lock({WRITE_LOCK})")

        def _begin_read(self) -> None:
            self.conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")

        def _errors(self) -> tuple[tuple[type, ...], tuple[type, ...]]:
            return driver_errors()

        def _unusable(self, exc: Exception) -> BaseException:
            if _interrupted(exc):  # Ctrl-C reached psycopg mid-statement: the officer's, exit 130
                return KeyboardInterrupt()
            return unusable(exc, self.path)

        def integrity_check(self) -> list[str]:
            """The server keeps its own pages (checksums, WAL): what diversion can check is that
            its schema is whole and no index is left invalid by a failed build."""
            invalid = [f"index {row[0]} is invalid: REINDEX it" for row in self.conn.execute(
                "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema() "
                "AND NOT (i.indisvalid AND i.indisready)")]
            return invalid or ["ok"]

        def status(self) -> dict:
            info = super().status()
            info["size_bytes"] = self.conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
            info["server"] = self.conn.execute("SHOW server_version").fetchone()[0]
            info["warnings"] = self.logging_warnings()
            return info

        # what the server's log would hold of a failing or slow statement (its values: names,
        # dates of birth), and the setting that keeps them out (README, "A shared server")
        SAFE_LOGGING = {"log_min_error_statement": ("log", "fatal", "panic"), "log_statement": ("none",),
                        "log_min_duration_statement": ("-1",),
                        # an error's DETAIL line holds the values (Key (pnc)=(...) already exists)
                        "log_error_verbosity": ("terse",)}

        def logging_warnings(self) -> list[str]:
            found = {name: self.conn.execute(f"SHOW {name}").fetchone()[0] for name in self.SAFE_LOGGING}
            return [f"the server logs statements with their values ({name} = {value}): personal data would reach "
                    f"its log; set it to {self.SAFE_LOGGING[name][-1]} for this database (README)"
                    for name, value in found.items() if value not in self.SAFE_LOGGING[name]]

        def after_erasure(self) -> str | None:
            # the server keeps dead row versions until their space is reused, and its WAL until
            # recycled (and archived WAL and backups for as long as they are kept)
            return ("the erased rows are gone from every table, but the server keeps their old versions in its data "
                    "files until the space is reused, and in its WAL, WAL archive and backups until they expire: "
                    "a DBA runs VACUUM FULL on people, incidents, incident_substances, incident_co_offences, "
                    "decisions, referrals, referral_conditions, audit_entries and audit_pending at a quiet time "
                    "(README, 'A shared server')")

        def _keep_fresh(self) -> None:
            fresh, self._fresh = self._fresh, {}
            if not fresh:
                return
            errors = driver_errors()[0]
            try:
                self.conn.execute("BEGIN")
                self.conn.execute("SET LOCAL lock_timeout = '200ms'")  # never hold a report up behind a writer
                self.conn.execute(f"SELECT pg_advisory_xact_lock({WRITE_LOCK})")
                self.conn.execute("DELETE FROM report_cache WHERE key NOT LIKE ?", (self.CACHE_FORMAT + ":%",))
                current = [(key, stamp, value) for key, (months, stamp, value) in fresh.items()
                           if self.conn.execute(self.STAMP, months).fetchone()[0] == stamp]
                self.conn.executemany("INSERT INTO report_cache (key, stamp, value) VALUES (?, ?, ?) ON CONFLICT "
                                      "(key) DO UPDATE SET stamp = excluded.stamp, value = excluded.value", current)
                self.conn.execute("COMMIT")
            except errors:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")

        def verify_audit(self) -> dict:
            from diversion_cli.store import audit

            result = audit.verify(self.conn, reopen=lambda: connect(self.path))
            result["report_cache_checked"] = self.check_report_cache()
            return result

    return PostgresStore


@functools.cache
def store_class():
    return _store_class()
