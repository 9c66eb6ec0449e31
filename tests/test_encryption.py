"""Encryption at rest (the optional SQLCipher extra): both key forms work, the
file is unreadable without the key, and a wrong key is a clear exit 4."""

from __future__ import annotations

import importlib.util
import os

import pytest

from helpers import sub

pytestmark = [pytest.mark.skipif(importlib.util.find_spec("sqlcipher3") is None,
                                reason="the encryption extra is not installed"),
              pytest.mark.sqlite_only("SQLCipher encrypts a file; a server's data at rest is its own (disk or "
                                      "tablespace encryption) and its connections are TLS")]

RAW_KEY = "5f" * 32


@pytest.mark.no_database
@pytest.mark.parametrize("key", ["a passphrase, not hex", RAW_KEY])
def test_encrypted_database_round_trip_and_wrong_key(db_path, key):
    env = {**os.environ, "DIVERSION_DB_KEY": key}
    assert sub("db", "init", env=env).returncode == 0
    made = sub("record", "--surname", "Cipher", "--forename", "Ann", "--dob", "1991-03-04", "--substance", "weed",
               env=env)
    assert made.returncode == 0, made.stderr
    assert b"SQLite format 3" not in db_path.read_bytes()[:16]     # not a plain SQLite file
    seen = sub("check", "--surname", "Cipher", "--forename", "Ann", "--dob", "1991-03-04", "--json", env=env)
    assert seen.returncode == 0 and '"Cipher"' in seen.stdout
    wrong = sub("check", "P-000001", env={**env, "DIVERSION_DB_KEY": "not the key"})
    assert wrong.returncode == 4 and "DIVERSION_DB_KEY" in wrong.stderr and "Traceback" not in wrong.stderr
    missing = {k: v for k, v in env.items() if k != "DIVERSION_DB_KEY"}
    assert sub("check", "P-000001", env=missing).returncode == 4
