"""The PostgreSQL engine: one shared record for a force's custody suites.

Everything that differs from the SQLite default is here: connecting (psycopg 3,
imported only for a postgresql:// target), the dialect (the store writes SQL once;
`translate` turns its few SQLite forms into PostgreSQL's), the schema
(schema.py, with catalog.py for verify's schema check), the store itself
(store.py: how writes serialise, what the server does instead of files), and
`db migrate-to` (transfer.py).

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

from diversion_cli.errors import BadInput, NotPermitted, StoreUnusable

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
        if "permission denied for database" in said:  # the DBA's `db roles init`: only the groups connect
            raise NotPermitted(f"{target}: this login may not connect to the database (it holds no diversion "
                               f"role): an admin grants one with `diversion db roles grant LOGIN ROLE`") from None
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


# the server's own refusals of a login (schema.py: audit_transactions_signed)
_REFUSED_LOGIN = {
    "officer_not_yours": "this login's writes are stamped with its own collar number, and the one given is "
                         "another's; nothing was written",
    "login_has_no_officer": "this login has no collar number on this server: an admin maps it with `diversion db "
                            "roles grant LOGIN ROLE --officer N`; nothing was written",
    "changes_unsealed": "a change must be sealed into the audit trail in the transaction that makes it (diversion "
                        "does; a login's own SQL cannot leave one waiting); nothing was written",
    "stamped_with_another_officer": "a login writes in its own officer's name only; nothing was written",
    "person_amended_by_an_admin": "a person's recorded details are changed only by an admin's amendment (a later "
                                  "arrest may fill in what is missing); nothing was written",
    "early_completion_by_a_supervisor": "a condition that runs to the end of the contract is met early only by a "
                                        "supervisor; nothing was written",
    "written_with_its_parent": "an incident's substances and other offences, and a referral's conditions, are "
                               "written with it (or by an admin's amendment); nothing was written",
    "flag_left_set": "the import's and the correction's flags live only inside the transaction that sets them; "
                     "nothing was written",
    "voided_by_a_supervisor": "voiding a referral (which gives the one shot back) is a supervisor's; nothing was "
                              "written",
    "login_not_yours": "a transaction must name the login that makes it; nothing was written",
}


def unusable(exc: Exception, target) -> StoreUnusable | NotPermitted:
    """The one line a failing server gets (never the query, which could hold personal data)."""
    import psycopg.errors as e

    if isinstance(exc, (e.LockNotAvailable, e.QueryCanceled, e.SerializationFailure, e.DeadlockDetected)):
        return StoreUnusable(f"the database {target} is busy (another desk is writing); nothing was written, "
                             f"try again")
    if isinstance(exc, e.InsufficientPrivilege):
        said = _first_line(exc)
        return NotPermitted(_REFUSED_LOGIN.get(said, f"the database {target} refused this login ({said}): its "
                                                     f"role may not do this; nothing was written"))
    if isinstance(exc, e.UndefinedTable):
        return StoreUnusable(f"the database {target} is not a diversion database or its schema was changed "
                             f"({_first_line(exc)}); nothing was written")
    return StoreUnusable(f"the database {target} failed ({exc.__class__.__name__}: {_first_line(exc)}); "
                         f"nothing was written")


# ---- the store ---------------------------------------------------------------------


def store_class():
    """The PostgresStore class (imported only for a server target)."""
    from diversion_cli.store.postgres.store import PostgresStore

    return PostgresStore
