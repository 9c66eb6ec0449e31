"""Every test gets its own database and no stray configuration.

The suite runs on the embedded SQLite default; with DIVERSION_TEST_POSTGRES set to a
server URL a login may create databases on (e.g. postgresql:///postgres), the same
suite runs on PostgreSQL: each test gets its own database there, made from a template
that `db init`'s code path built. A test that applies to one engine only is marked
`sqlite_only` / `postgres_only` with its reason."""

import itertools
import os
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import pytest

POSTGRES = os.environ.get("DIVERSION_TEST_POSTGRES")


def pytest_collection_modifyitems(config, items):
    """On an encrypted run (DIVERSION_DB_KEY set) the sqlite3 shell cannot open the files;
    tests of one engine skip on the other, saying why."""
    encrypted = os.environ.get("DIVERSION_DB_KEY")
    for item in items:
        if encrypted and item.get_closest_marker("plain_file"):
            item.add_marker(pytest.mark.skip(reason="uses the plain sqlite3 shell on the file; the database is "
                                                    "encrypted"))
        only = item.get_closest_marker("postgres_only" if not POSTGRES else "sqlite_only")
        if only:
            item.add_marker(pytest.mark.skip(reason=only.args[0] if only.args else "for the other engine"))


def _server_url(name: str) -> str:
    parts = urlsplit(POSTGRES)
    return f"{parts.scheme}://{parts.netloc}/{name}" + (f"?{parts.query}" if parts.query else "")


@pytest.fixture(scope="session")
def server():
    """An administrative connection to the test server (DIVERSION_TEST_POSTGRES), or None."""
    if not POSTGRES:
        yield None
        return
    import psycopg

    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="session")
def empty_database(tmp_path_factory, server, worker_id) -> Path | str:
    """One database made by `db init`'s code path; each test gets a copy (building the
    schema per test would cost a second on every ten tests)."""
    from diversion_cli.store import Store, resolve_target

    if server is None:
        path = tmp_path_factory.mktemp("template") / "empty.db"
        Store.create(path).close()
        yield path
        return
    name = f"diversion_test_{worker_id}_{os.getpid()}"
    server.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    server.execute(f"CREATE DATABASE {name}")
    Store.create(resolve_target(_server_url(name))).close()
    yield name
    left, _LEFT[:] = list(_LEFT), []
    for database in left:  # (a second refusal leaves it: the next run's names differ)
        _drop(server, database)
    server.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


_numbers = itertools.count(1)


@pytest.fixture
def database(tmp_path, server, empty_database, request):
    """The test's own database: a file, or a database on the test server."""
    blank = request.node.get_closest_marker("no_database")
    if server is None:
        db = tmp_path / "diversion.db"
        if not blank:
            shutil.copyfile(empty_database, db)
            os.chmod(db, 0o600)
        yield db
        return
    name = f"{empty_database}_{next(_numbers)}"
    server.execute(f"CREATE DATABASE {name}" + ("" if blank else f" TEMPLATE {empty_database}"))
    yield _server_url(name)
    _drop(server, name)


def _drop(server, name: str) -> None:
    """Drop a test's database; one an autovacuum worker is in (which a login that is not a
    superuser may not interrupt) is left for the session's end."""
    import psycopg

    try:
        server.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    except psycopg.errors.InsufficientPrivilege:
        _LEFT.append(name)


_LEFT: list[str] = []


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch, database, request):
    """DIVERSION_DB points at a fresh, initialised database, unless the test is
    marked `no_database` (then nothing is at that path: no file, or an empty database)."""
    db = database
    monkeypatch.setenv("DIVERSION_DB", str(db))
    monkeypatch.setenv("DIVERSION_OFFICER", "1234")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for name in ("DIVERSION_CONFIG", "NO_COLOR", "DIVERSION_DEBUG", "DIVERSION_BUSY_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    return db


@pytest.fixture
def db_path(isolated_env) -> Path:
    return isolated_env
