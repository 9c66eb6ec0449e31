"""Every test gets its own database file and no stray configuration."""

import os
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


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    db = tmp_path / "diversion.db"
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
