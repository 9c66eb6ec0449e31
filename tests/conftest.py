"""Every test gets its own database file and no stray configuration."""

import os
import shutil
from pathlib import Path

import pytest


def pytest_collection_modifyitems(config, items):
    """On an encrypted run (DIVERSION_DB_KEY set) the sqlite3 shell cannot open the files."""
    if not os.environ.get("DIVERSION_DB_KEY"):
        return
    skip = pytest.mark.skip(reason="uses the plain sqlite3 shell on the file; the database is encrypted")
    for item in items:
        if item.get_closest_marker("plain_file"):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def empty_database(tmp_path_factory) -> Path:
    """One database made by `db init`'s code path; each test gets a copy (building the
    schema per test would cost a second on every ten tests)."""
    from diversion_cli.store import Store

    path = tmp_path_factory.mktemp("template") / "empty.db"
    Store.create(path).close()
    return path


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch, empty_database, request):
    """DIVERSION_DB points at a fresh, initialised database, unless the test is
    marked `no_database` (then nothing exists at that path)."""
    db = tmp_path / "diversion.db"
    if not request.node.get_closest_marker("no_database"):
        shutil.copyfile(empty_database, db)
        os.chmod(db, 0o600)
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
