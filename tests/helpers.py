"""Small helpers shared by the CLI tests: run the app in-process, run the
installed command as a real process, and look at the database directly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import typer.testing
from typer.testing import CliRunner

from diversion_cli.cli import app

# The console script pip installed next to this interpreter (.venv/bin/diversion).
SCRIPT = Path(sys.executable).parent / ("diversion.exe" if os.name == "nt" else "diversion")
SUBPROCESS_TIMEOUT = 60


# typer's CliRunner builds the app's click command tree (every command's parameters) again on
# every invoke: ~0.1 s, more than most commands take. The tree never changes: build it once
# for the whole run (the commands themselves run as before).
_BUILT: dict[int, tuple] = {}
_build = typer.testing._get_command


def _built_once(typer_app):
    if id(typer_app) not in _BUILT:
        _BUILT[id(typer_app)] = (typer_app, _build(typer_app))
    return _BUILT[id(typer_app)][1]


typer.testing._get_command = _built_once


def run(*args: str, input: str | None = None, env: dict | None = None, catch_exceptions: bool = False):
    """Invoke `diversion ARGS` in-process; stdout and stderr stay separate."""
    return CliRunner().invoke(app, [str(a) for a in args], input=input, env=env, catch_exceptions=catch_exceptions)


def sub(*args: str, script: bool = False, env: dict | None = None, input: str | None = None,
        timeout: float = SUBPROCESS_TIMEOUT) -> subprocess.CompletedProcess:
    """Run diversion as a real OS process (`python -m diversion_cli`, or the console script)."""
    command = [str(SCRIPT)] if script else [sys.executable, "-m", "diversion_cli"]
    return subprocess.run(command + [str(a) for a in args], capture_output=True, text=True, input=input,
                          env=os.environ.copy() if env is None else env, timeout=timeout)


def db_file() -> Path | str:
    """The database the autouse fixture points DIVERSION_DB at (on a PostgreSQL run, its URL)."""
    db = os.environ["DIVERSION_DB"]
    return db if "://" in db else Path(db)


ENCRYPTED = bool(os.environ.get("DIVERSION_DB_KEY"))  # the suite is also run on SQLCipher files


ON_SERVER = bool(os.environ.get("DIVERSION_TEST_POSTGRES"))  # the suite is also run on PostgreSQL


def connect(db: Path | str | None = None):
    """A direct connection to the database (a file unlocked with DIVERSION_DB_KEY when set, or
    the test's PostgreSQL database: the same execute() with SQLite's placeholders)."""
    from diversion_cli.store import connect as store_connect, resolve_target

    target = resolve_target(str(db or os.environ["DIVERSION_DB"]))
    if not isinstance(target, Path):
        from diversion_cli.store import postgres

        return postgres.connect(target, timeout=10)
    return store_connect(target, timeout=10)


def hold_write_lock(conn) -> None:
    """Take the write lock every desk queues for, as another desk mid-write holds it."""
    if getattr(conn, "engine", "sqlite") == "postgres":
        from diversion_cli.store.postgres import WRITE_LOCK

        conn.execute("BEGIN")
        conn.execute(f"SELECT pg_advisory_xact_lock({WRITE_LOCK})")
    else:
        conn.execute("BEGIN IMMEDIATE")


def count_rows(db: Path | str | None, table: str) -> int:
    """Rows in `table`; 0 if the database file does not exist (without creating it)."""
    path = db or db_file()
    if not ON_SERVER and not Path(path).exists():
        return 0
    conn = connect(path)
    try:
        return conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
    except Exception as exc:
        if "no such table" in str(exc) or "does not exist" in str(exc):
            return 0
        raise
    finally:
        conn.close()


def counts(db: Path | str | None = None, tables=("people", "incidents", "referrals", "decisions")) -> dict:
    return {t: count_rows(db, t) for t in tables}


def as_json(result) -> dict | list:
    """stdout of a --json command, parsed (whatever the runner type)."""
    return json.loads(result.stdout)


def assert_one_line_error(result, field: str) -> None:
    """The error boundary's promise: one line `error: FIELD...` on stderr, no traceback."""
    err = result.stderr
    assert "Traceback" not in err and "Traceback" not in result.stdout
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one error line, got: {err!r}"
    assert lines[0].startswith(f"error: {field}"), lines[0]


def record(*extra: str, surname: str = "Smith", forename: str = "John", dob: str = "14/02/1990",
           substance: str = "weed") -> dict:
    """Record an incident through the CLI and return its --json output (must succeed)."""
    args = ["record", "--json", "--substance", substance, *extra]
    if "--person" not in extra:
        args += ["--surname", surname, "--forename", forename, "--dob", dob]
    result = run(*args)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return as_json(result)


def refer(incident_id: str, *extra: str) -> dict:
    result = run("refer", incident_id, "--json", *extra)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return as_json(result)


def referral_row(referral_id: str, db: Path | None = None) -> dict:
    conn = connect(db)
    try:
        row = conn.execute("SELECT * FROM referrals WHERE id = ?", (referral_id,)).fetchone()
        return dict(row) if row else None
    finally:
        conn.close()


def shell(sql: str, postgres: str | None = None, db: Path | str | None = None) -> subprocess.CompletedProcess:
    """Run SQL outside diversion, as someone holding the database would: with the sqlite3 shell
    on a file, or with psql as the owner of the tables on a server (`postgres`: the same edit in
    PostgreSQL's words, where they differ). Each statement stands alone; the first error stops."""
    import shutil

    import pytest

    target = str(db or db_file())
    if "://" in target:
        command, text = [shutil.which("psql") or "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", target], \
            postgres or sql
    else:
        if shutil.which("sqlite3") is None:
            pytest.skip("the sqlite3 shell is not installed")
        command, text = [shutil.which("sqlite3"), "-bail", target], sql
    return subprocess.run(command, input=text, capture_output=True, text=True, timeout=30)


def tamper(sql: str, postgres: str | None = None, db: Path | str | None = None) -> None:
    """shell(), which must succeed."""
    done = shell(sql, postgres, db)
    assert done.returncode == 0, done.stderr


def all_rows(db: Path | str | None = None) -> tuple:
    """Every row of every table of a server database, as text, to see that nothing changed."""
    conn = connect(db)
    try:
        tables = [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
                                             "ORDER BY tablename")]
        return tuple((t, sorted(map(repr, conn.execute(f'SELECT * FROM "{t}"')))) for t in tables)
    finally:
        conn.close()


def outside_sql(sql: str, postgres: str | None = None, db: Path | str | None = None,
                check: bool = True) -> subprocess.CompletedProcess:
    """Run SQL outside diversion, as someone with the database's password would: the sqlite3
    shell on a file (`sql`, dot-commands allowed), psql as the tables' owner on a server
    (`postgres`, or the same `sql`), in one transaction."""
    target = str(db or db_file())
    if ON_SERVER:
        command = ["psql", "-X", "-q", "-1", "-v", "ON_ERROR_STOP=1", "-d", target]
        text = postgres if postgres is not None else sql
    else:
        command, text = ["sqlite3", target], sql
    return subprocess.run(command, input=text, capture_output=True, text=True, check=check,
                          timeout=SUBPROCESS_TIMEOUT)


# how a command given no diversion database says so (a server's database exists, without the schema)
NO_DATABASE_AT = "no database at"


def database_there(db: Path | str | None = None) -> bool:
    """A database file exists; on a server (where a `no_database` test's database is an empty
    one), the database holds something: a table, view, sequence or function."""
    db = db or db_file()
    if not ON_SERVER:
        return Path(db).exists()
    conn = connect(db)
    try:
        return conn.execute("SELECT EXISTS (SELECT 1 FROM pg_class WHERE relnamespace = "
                            "current_schema()::regnamespace) OR EXISTS (SELECT 1 FROM pg_proc "
                            "WHERE pronamespace = current_schema()::regnamespace)").fetchone()[0]
    finally:
        conn.close()


def schema_version() -> int:
    """The schema version this diversion writes on the test's engine (a server's has its own history)."""
    if ON_SERVER:
        from diversion_cli.store.postgres.schema import VERSION

        return VERSION
    from diversion_cli.store.migrations import LATEST

    return LATEST
