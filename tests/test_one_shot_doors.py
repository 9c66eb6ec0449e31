"""The side doors around the one-shot rule (issue 9), each tried through the
real CLI: the attempt is refused with its exit code and message and nothing is
written (the database dumped before and after), and the legitimate way through
works and is recorded."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

import diversion_cli.store as store_module
from diversion_cli.store import Store
from helpers import ENCRYPTED, as_json, connect, counts, db_file, record, refer, run, sub


def dump(path: Path | None = None) -> list[str]:
    """Every row of every table, as text: equal before and after means nothing was written."""
    conn = connect(path or db_file())
    try:
        return list(conn.iterdump()) if not ENCRYPTED else [
            repr(tuple(row)) for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                                        "ORDER BY name").fetchall()
            for row in conn.execute(f'SELECT * FROM "{name}"')]
    finally:
        conn.close()


def files_beside(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir())


# ---- door 1: a missing database is not an empty record ---------------------------------

NEEDS_A_DATABASE = [
    ["check", "--surname", "Smith", "--forename", "John", "--dob", "14/02/1990"],
    ["check", "P-000001"],
    ["record", "--surname", "Smith", "--forename", "John", "--dob", "14/02/1990", "--substance", "weed", "--refer"],
    ["refer", "I-000001"],
    ["outcome", "R-2026-000001", "accepted"],
    ["condition", "R-2026-000001", "1", "met"],
    ["referral", "R-2026-000001"],
    ["referrals"],
    ["letter", "R-2026-000001", "--kind", "offer"],
    ["report", "--month", "2026-10"],
    ["export", "incidents"],
    ["audit", "log"],
    ["audit", "verify"],
    ["db", "status"],
    ["db", "check"],
    ["db", "upgrade"],
    ["void", "I-000001", "--reason", "typo"],
    ["amend", "person", "P-000001", "--surname", "Smyth", "--reason", "typo"],
    ["db", "erase-person", "P-000001", "--confirm", "P-000001", "--reason", "SAR-1"],
]


@pytest.mark.no_database
@pytest.mark.parametrize("args", NEEDS_A_DATABASE, ids=lambda a: " ".join(a[:2]))
def test_every_command_on_a_missing_database_exits_4_and_creates_nothing(args):
    before = files_beside(db_file())
    result = run(*args)
    assert result.exit_code == 4, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert result.stderr == (f"error: no database at {db_file()}: create one with `diversion db init`, "
                             f"or check --db / DIVERSION_DB\n")
    assert files_beside(db_file()) == before


@pytest.mark.no_database
def test_import_backup_and_restore_on_a_missing_database_create_nothing(tmp_path):
    csv_file = tmp_path / "rows.csv"
    csv_file.write_text("surname,forenames,dob,occurred_at,substances\nSmith,John,1990-02-14,2026-10-01 10:00,weed\n")
    for args in (["import", csv_file], ["import", "--dry-run", csv_file], ["db", "backup", tmp_path / "b.db"],
                 ["db", "restore", csv_file, "--yes"]):
        result = run(*args)
        assert result.exit_code in (3, 4), (args, result.stderr)
    assert not db_file().exists() and not (tmp_path / "b.db").exists()


@pytest.mark.no_database
def test_a_mistyped_db_path_is_never_an_eligible_nobody(tmp_path):
    """The attack in the issue: a typo in --db must not clear someone already diverted."""
    real = db_file()
    assert run("db", "init").exit_code == 0
    smith = record(surname="Smith", forename="John", dob="14/02/1990")
    offer = refer(smith["incident_id"])
    assert run("outcome", offer["id"], "accepted").exit_code == 0
    typo = tmp_path / "diversoin.db"
    checked = run("--db", typo, "check", "--surname", "Smith", "--forename", "John", "--dob", "14/02/1990")
    assert checked.exit_code == 4 and "ELIGIBLE" not in checked.stdout
    offered = run("--db", typo, "record", "--surname", "Smith", "--forename", "John", "--dob", "14/02/1990",
                  "--substance", "weed", "--refer")
    assert offered.exit_code == 4
    assert not typo.exists()
    assert counts(real)["referrals"] == 1


@pytest.mark.no_database
def test_db_init_creates_an_owner_only_database_in_an_owner_only_directory(tmp_path, monkeypatch):
    target = tmp_path / "new" / "force.db"
    result = sub("--db", target, "db", "init", script=True)  # the installed console script
    assert result.returncode == 0, result.stderr
    assert str(target) in result.stdout
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert stat.S_IMODE(target.parent.stat().st_mode) == 0o700
    assert counts(target) == {"people": 0, "incidents": 0, "referrals": 0, "decisions": 0}
    assert run("--db", target, "audit", "verify").exit_code == 0


@pytest.mark.no_database
def test_db_init_uses_diversion_db_and_the_default_path(tmp_path, monkeypatch):
    assert run("db", "init").exit_code == 0
    assert db_file().exists()
    monkeypatch.delenv("DIVERSION_DB")
    assert run("db", "init").exit_code == 0
    default = tmp_path / "data" / "diversion" / "diversion.db"  # XDG_DATA_HOME from conftest
    assert run("db", "path").stdout.strip() == str(default)
    assert default.exists()


def test_db_init_over_an_existing_database_is_refused_and_changes_nothing():
    record()
    before = dump()
    result = run("db", "init")
    assert result.exit_code == 1
    assert "already exists" in result.stderr and result.stdout == ""
    assert dump() == before


@pytest.mark.no_database
def test_db_init_never_follows_a_symlink_or_overwrites_a_file(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    os.symlink(victim, db_file())
    assert run("db", "init").exit_code == 1
    assert victim.read_text() == "keep me"


@pytest.mark.no_database
@pytest.mark.parametrize("args", [["check", "P-000001"], ["referrals"], ["report", "--month", "2026-10"],
                                  ["audit", "verify"], ["db", "check"], ["db", "status"], ["export"],
                                  ["record", "--surname", "A", "--forename", "B", "--dob", "1990-01-01",
                                   "--substance", "weed"]])
def test_an_empty_file_is_not_a_database_and_is_left_untouched(args):
    path = db_file()
    path.touch(mode=0o644)
    os.chmod(path, 0o644)
    result = run(*args)
    assert result.exit_code == 4, (result.stdout, result.stderr)
    assert "is not a diversion database" in result.stderr
    assert path.stat().st_size == 0 and stat.S_IMODE(path.stat().st_mode) == 0o644
    assert files_beside(path) == [path.name]


def test_db_check_on_a_torn_backup_writes_nothing_to_it(tmp_path):
    record()
    backup = tmp_path / "backup.db"
    assert run("db", "backup", backup).exit_code == 0
    data = backup.read_bytes()
    backup.write_bytes(data[: len(data) // 3])
    torn = backup.read_bytes()
    result = run("--db", backup, "db", "check")
    assert result.exit_code == 4, (result.stdout, result.stderr)
    assert backup.read_bytes() == torn


@pytest.mark.no_database
def test_a_reader_never_upgrades_an_older_schema_a_writer_or_db_upgrade_does(monkeypatch):
    path = db_file()
    with monkeypatch.context() as m:
        m.setattr(store_module, "MIGRATIONS", store_module.MIGRATIONS[:5])  # as an earlier diversion left it
        Store.create(path).close()
    before = path.read_bytes()
    result = run("check", "P-000001")
    assert result.exit_code == 4 and "diversion db upgrade" in result.stderr
    assert path.read_bytes() == before
    upgraded = run("db", "upgrade")
    assert upgraded.exit_code == 0, upgraded.stderr
    assert f"schema version {store_module.LATEST}" in upgraded.stdout
    assert run("check", "P-000001").exit_code == 3
    assert run("audit", "verify").exit_code == 0


def test_reading_commands_leave_the_file_byte_for_byte_alone():
    out = record()
    offer = refer(out["incident_id"])
    path = db_file()
    conn = connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    before = path.read_bytes()
    for args in (["check", out["person_id"]], ["referrals"], ["referral", offer["id"]], ["audit", "log"],
                 ["audit", "verify"], ["db", "status"], ["db", "check"], ["export"],
                 ["letter", offer["id"], "--kind", "offer"]):
        assert run(*args).exit_code == (1 if args[0] == "check" else 0), args  # an open referral: not eligible
    wal = Path(f"{path}-wal")
    assert path.read_bytes() == before
    assert not wal.exists() or wal.stat().st_size == 0
