"""The side doors around the one-shot rule (issue 9), each tried through the
real CLI: the attempt is refused with its exit code and message and nothing is
written (the database dumped before and after), and the legitimate way through
works and is recorded."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

import diversion_cli.store.sqlite as store_module  # (the engine that migrates a file)
from diversion_cli.store import Store
from helpers import (ENCRYPTED, ON_SERVER, as_json, connect, counts, database_there, db_file, outside_sql, record,
                     refer, run, sub)


def dump(path: Path | None = None) -> list[str]:
    """Every row of every table, as text: equal before and after means nothing was written."""
    conn = connect(path or db_file())
    try:
        if ON_SERVER:
            tables = [name for (name,) in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = "
                                                       "current_schema() ORDER BY tablename")]
            return [f"{name}: {row}" for name in tables
                    for (row,) in conn.execute(f'SELECT t::text FROM "{name}" t ORDER BY 1')]
        return list(conn.iterdump()) if not ENCRYPTED else [
            repr(tuple(row)) for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                                        "ORDER BY name").fetchall()
            for row in conn.execute(f'SELECT * FROM "{name}"')]
    finally:
        conn.close()


def what_is_there(db: Path | str) -> list[str]:
    """The files beside a database file; on a server, what the database holds (tables, views,
    sequences, functions): a command that creates nothing leaves either as it was."""
    if not ON_SERVER:
        return sorted(p.name for p in db.parent.iterdir())
    conn = connect(db)
    try:
        return [name for (name,) in conn.execute(
            "SELECT relname FROM pg_class WHERE relnamespace = current_schema()::regnamespace UNION ALL "
            "SELECT proname FROM pg_proc WHERE pronamespace = current_schema()::regnamespace ORDER BY 1")]
    finally:
        conn.close()


def no_database_at(db: Path | str) -> str:
    """The refusal of a command given no diversion database (on a server: a database without its schema)."""
    if ON_SERVER:
        return (f"error: no database at {db} (no diversion schema): create one with `diversion db init` (in an "
                f"empty database), or check --db / DIVERSION_DB\n")
    return f"error: no database at {db}: create one with `diversion db init`, or check --db / DIVERSION_DB\n"


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
    before = what_is_there(db_file())
    result = run(*args)
    assert result.exit_code == 4, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert result.stderr == no_database_at(db_file())
    assert what_is_there(db_file()) == before


@pytest.mark.no_database
def test_import_backup_and_restore_on_a_missing_database_create_nothing(tmp_path):
    csv_file = tmp_path / "rows.csv"
    csv_file.write_text("surname,forenames,dob,occurred_at,substances\nSmith,John,1990-02-14,2026-10-01 10:00,weed\n")
    for args in (["import", csv_file], ["import", "--dry-run", csv_file], ["db", "backup", tmp_path / "b.db"],
                 ["db", "restore", csv_file, "--yes"]):
        result = run(*args)
        # (on a server, the file commands are refused, exit 1, before any database is looked for)
        file_command = ON_SERVER and args[0] == "db"
        assert result.exit_code in ((1,) if file_command else (3, 4)), (args, result.stderr)
    assert not database_there(db_file()) and not (tmp_path / "b.db").exists()


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


@pytest.mark.postgres_only("a database name on a server (a mistyped file path is the test above)")
def test_a_mistyped_database_name_on_the_server_is_never_an_eligible_nobody():
    smith = record(surname="Smith", forename="John", dob="14/02/1990")
    offer = refer(smith["incident_id"])
    assert run("outcome", offer["id"], "accepted").exit_code == 0
    typo = f"{db_file()}x"
    checked = run("--db", typo, "check", "--surname", "Smith", "--forename", "John", "--dob", "14/02/1990")
    assert checked.exit_code == 4 and "ELIGIBLE" not in checked.stdout, (checked.stdout, checked.stderr)
    offered = run("--db", typo, "record", "--surname", "Smith", "--forename", "John", "--dob", "14/02/1990",
                  "--substance", "weed", "--refer")
    assert offered.exit_code == 4
    conn = connect()
    made = conn.execute("SELECT count(*) FROM pg_database WHERE datname = ?", (typo.rsplit("/", 1)[1],)).fetchone()[0]
    conn.close()
    assert made == 0 and counts()["referrals"] == 1


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
    assert database_there(db_file())
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


@pytest.mark.sqlite_only("a symlink is a file's: a server's database is named, not a path")
@pytest.mark.no_database
def test_db_init_never_follows_a_symlink_or_overwrites_a_file(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    os.symlink(victim, db_file())
    assert run("db", "init").exit_code == 1
    assert victim.read_text() == "keep me"


@pytest.mark.sqlite_only("an empty file: on a server, an empty database is the missing-database case above")
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
    assert what_is_there(path) == [path.name]


@pytest.mark.sqlite_only("a torn backup file: on a server, backups are pg_dump's (db backup is refused)")
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


@pytest.mark.sqlite_only("an earlier release's SQLite schema: the PostgreSQL schema has had one version so far")
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

    def read_everything():
        for args in (["check", out["person_id"]], ["referrals"], ["referral", offer["id"]], ["audit", "log"],
                     ["audit", "verify"], ["db", "status"], ["db", "check"], ["export"],
                     ["letter", offer["id"], "--kind", "offer"]):
            assert run(*args).exit_code == (1 if args[0] == "check" else 0), args  # an open referral: not eligible

    if ON_SERVER:  # no file to compare: every row of every table stays as it was
        before = dump()
        read_everything()
        assert dump() == before
        return
    conn = connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    before = path.read_bytes()
    read_everything()
    wal = Path(f"{path}-wal")
    assert path.read_bytes() == before
    assert not wal.exists() or wal.stat().st_size == 0


# ---- door 2: a PNC identifies; a conflict is never resolved silently ---------------------

def _pnc_smith() -> dict:
    return record("--pnc", "1990/0123456K", surname="Smith", forename="John", dob="14/02/1990")


def test_a_pnc_typed_with_someone_elses_name_is_refused_showing_both():
    _pnc_smith()
    before = dump()
    result = run("record", "--pnc", "1990/0123456K", "--surname", "Brown", "--forename", "Mike", "--dob",
                 "01/06/1975", "--substance", "weed", "--refer")
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert "belongs to P-000001 (SMITH, John, born Wed 14 Feb 1990)" in result.stderr
    assert "surname typed 'Brown', recorded 'Smith'" in result.stderr
    assert "date of birth typed Sun 1 Jun 1975" in result.stderr and "--person P-000001" in result.stderr
    assert dump() == before


def test_a_confirmed_pnc_conflict_goes_on_and_says_what_differs():
    _pnc_smith()
    result = run("record", "--json", "--person", "P-000001", "--pnc", "1990/0123456K", "--surname", "Smyth",
                 "--forename", "John", "--dob", "14/02/1990", "--substance", "coke")
    assert result.exit_code == 0, result.stderr
    out = as_json(result)
    assert out["person_id"] == "P-000001"
    confirmed = [r for r in out["reasons"] if r["code"] == "IDENTITY_CONFIRMED"]
    assert len(confirmed) == 1 and "surname typed 'Smyth', recorded 'Smith'" in confirmed[0]["message"]
    assert "amend person" in confirmed[0]["message"]
    # kept with the decision and with the trail entries of the write it let through
    conn = connect()
    stored = conn.execute("SELECT reasons FROM decisions WHERE incident_id = 2").fetchone()[0]
    reasons = {row[0] for row in conn.execute("SELECT reason FROM audit_log WHERE operation = 'record' "
                                              "AND entity = 'incident' AND entity_id = '2'")}
    conn.close()
    assert "IDENTITY_CONFIRMED" in stored
    assert any(r and "Smyth" in r for r in reasons)
    # nothing about the person was changed: correcting is amend person's job
    assert as_json(run("check", "P-000001", "--json"))["person"]["surname"] == "Smith"


def test_an_import_row_naming_someone_else_under_a_pnc_is_a_problem_line(tmp_path):
    _pnc_smith()
    before = dump()
    rows = tmp_path / "rows.csv"
    rows.write_text("surname,forenames,dob,pnc,occurred_at,substances\n"
                    "Brown,Mike,1975-06-01,1990/0123456K,2026-10-01 10:00,weed\n", encoding="utf-8")
    result = run("import", rows)
    assert result.exit_code == 2 and "line 2: pnc: 1990/0123456K belongs to P-000001" in result.stderr
    assert dump() == before


# ---- door 3: refer sees near matches too ---------------------------------------------

def _failed_obrien() -> dict:
    out = record(surname="O'Brien", forename="Sean", dob="03/03/1993")
    offer = refer(out["incident_id"])
    for status in ("accepted", "failed"):
        assert run("outcome", offer["id"], status).exit_code == 0
    return out


def test_refer_stops_at_a_near_match_who_failed_a_diversion():
    _failed_obrien()
    other = record("--new-person", surname="OBrien", forename="Sean", dob="03/03/1993")
    assert other["eligible"] is True  # a different record: the rules alone would let him through
    before = dump()
    result = run("refer", other["incident_id"])
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert "possible same person already diverted or referred: P-000001 (O'BRIEN, Sean" in result.stderr
    assert "--not-same-as" in result.stderr
    assert dump() == before


def test_record_refer_stops_at_a_near_match_even_for_a_known_person():
    _failed_obrien()
    other = record("--new-person", surname="OBrien", forename="Sean", dob="03/03/1993")
    before = dump()
    result = run("record", "--person", other["person_id"], "--substance", "coke", "--refer")
    assert result.exit_code == 1 and "P-000001" in result.stderr
    assert dump() == before


def test_stating_not_the_same_person_lets_the_referral_through_and_is_recorded():
    _failed_obrien()
    other = record("--new-person", surname="OBrien", forename="Sean", dob="03/03/1993")
    wrong = run("refer", other["incident_id"], "--not-same-as", "P-000099")
    assert wrong.exit_code == 2 and "P-000099 is not a possible same person" in wrong.stderr
    result = run("refer", other["incident_id"], "--not-same-as", "P-000001", "--json")
    assert result.exit_code == 0, result.stderr
    statement = [r for r in as_json(result)["reasons"] if r["code"] == "NOT_SAME_PERSON"]
    assert len(statement) == 1 and "stated this is not P-000001" in statement[0]["message"]
    conn = connect()
    decision = conn.execute("SELECT reasons FROM decisions WHERE stage = 'refer' ORDER BY id DESC").fetchone()[0]
    trail = [r[0] for r in conn.execute("SELECT reason FROM audit_log WHERE operation = 'refer' AND reason IS NOT NULL")]
    conn.close()
    assert "NOT_SAME_PERSON" in decision
    assert trail and all("not P-000001" in (r or "") for r in trail)


def test_an_import_referral_row_for_a_near_match_of_a_diverted_person_is_a_problem_line(tmp_path):
    _failed_obrien()
    before = dump()
    header = "surname,forenames,dob,occurred_at,substances,scheme,referral_status,offered_at"
    row = "OBrien,Sean,1993-03-03,2026-10-01 10:00,weed,dep-adult,offered,2026-10-01 12:00"
    rows = tmp_path / "rows.csv"
    rows.write_text(f"{header}\n{row}\n", encoding="utf-8")
    result = run("import", rows)
    assert result.exit_code == 2 and "line 2: not_same_as: possible same person" in result.stderr
    assert dump() == before
    rows.write_text(f"{header},not_same_as\n{row},P-000001\n", encoding="utf-8")
    assert run("import", rows).exit_code == 0


def test_closed_history_of_a_near_match_is_imported_as_it_happened(tmp_path):
    """A past diversion under another spelling is recorded, not refused: refusing it
    would leave that record looking eligible."""
    _failed_obrien()
    rows = tmp_path / "rows.csv"
    rows.write_text("surname,forenames,dob,occurred_at,substances,scheme,referral_status,offered_at,accepted_at,"
                    "closed_at\nOBrien,Sean,1993-03-03,2026-08-01 10:00,weed,dep-adult,completed,2026-08-01 12:00,"
                    "2026-08-02 10:00,2026-08-20 10:00\n", encoding="utf-8")
    assert run("import", rows).exit_code == 0
    assert run("check", "--surname", "OBrien", "--forename", "Sean", "--dob", "1993-03-03").exit_code == 1


def test_two_spellings_in_one_import_cannot_both_be_diverted(tmp_path):
    rows = tmp_path / "rows.csv"
    rows.write_text("surname,forenames,dob,occurred_at,substances,scheme,referral_status,offered_at,accepted_at,"
                    "closed_at\n"
                    "O'Brien,Sean,1993-03-03,2026-08-01 10:00,weed,dep-adult,completed,2026-08-01 12:00,"
                    "2026-08-02 10:00,2026-08-20 10:00\n"
                    "OBrien,Sean,1993-03-03,2026-10-01 10:00,weed,dep-adult,offered,2026-10-01 12:00,,\n",
                    encoding="utf-8")
    result = run("import", rows)
    assert result.exit_code == 2 and "line 3: not_same_as" in result.stderr
    assert counts()["people"] == 0


# ---- door 4: look-alike letters are the same letters --------------------------------------

def test_a_surname_in_look_alike_cyrillic_letters_meets_the_diverted_person():
    okoro = record(surname="Okoro", forename="Daniel", dob="14/02/1999")
    offer = refer(okoro["incident_id"])
    assert run("outcome", offer["id"], "accepted").exit_code == 0
    before = dump()
    lookalike = "\u041ek\u043er\u043e"  # Cyrillic О and о among Latin k and r
    result = run("record", "--surname", lookalike, "--forename", "Daniel", "--dob", "14/02/1999",
                 "--substance", "weed", "--refer")
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert "P-000001" in result.stderr and "look-alike letters" in result.stderr
    assert dump() == before
    checked = as_json(run("check", "--surname", lookalike, "--forename", "Daniel", "--dob", "14/02/1999", "--json"))
    assert [m["id"] for m in checked["possible_matches"]] == ["P-000001"]


def test_a_name_mixing_alphabets_is_flagged_at_the_desk():
    result = run("record", "--surname", "\u041ekoro", "--forename", "Ada", "--dob", "01/01/1990",
                 "--substance", "weed")
    assert result.exit_code == 0
    assert "mixes Cyrillic and Latin letters" in result.stderr
    out = as_json(run("record", "--json", "--surname", "\u041ekoro", "--forename", "Ada", "--dob", "01/01/1990",
                      "--substance", "coke"))
    assert any("Cyrillic" in w for w in out["warnings"])


@pytest.mark.parametrize("surname", ["Smith2", "J0nes", "Smith\u0663"])
def test_digits_in_a_name_are_refused_not_dropped(surname):
    before = dump()
    result = run("record", "--surname", surname, "--forename", "John", "--dob", "01/01/1990", "--substance", "weed")
    assert result.exit_code == 2 and result.stderr.startswith("error: surname:") and "digits" in result.stderr
    assert dump() == before


# ---- door 5: a contract runs its course ---------------------------------------------

def _running_contract() -> str:
    out = record(surname="Lee", forename="Sam", dob="1985-05-05")
    offer = refer(out["incident_id"], "--scheme", "checkpoint")
    assert run("outcome", offer["id"], "accepted").exit_code == 0
    return offer["id"]


def test_a_condition_running_to_the_end_cannot_be_met_on_day_one():
    ref = _running_contract()
    before = dump()
    for key in ("no-reoffend", "navigator-meetings"):
        result = run("condition", ref, key, "met")
        assert result.exit_code == 1, (result.stdout, result.stderr)
        assert "runs to the end of the contract: it can be marked met from" in result.stderr
    assert dump() == before
    assert run("condition", ref, "drug-awareness", "met").exit_code == 0  # a course may be done early


def test_an_early_completion_needs_a_supervisor_and_a_reason_and_is_recorded():
    ref = _running_contract()
    half = run("condition", ref, "no-reoffend", "met", "--supervisor", "5678")
    assert half.exit_code == 2 and "--reason" in half.stderr
    for key in ("drug-awareness", "no-reoffend", "navigator-meetings"):
        extra = [] if key == "drug-awareness" else ["--supervisor", "5678", "--reason", "moved out of area"]
        result = run("condition", ref, key, "met", *extra, "--json")
        assert result.exit_code == 0, result.stderr
    assert as_json(result)["closed_as"] == "completed"
    conn = connect()
    notes = [r[0] for r in conn.execute("SELECT note FROM referral_conditions WHERE key != 'drug-awareness'")]
    trail = [r[0] for r in conn.execute("SELECT reason FROM audit_log WHERE operation = 'condition met' "
                                        "AND entity = 'condition'")]
    conn.close()
    assert all("approved by supervisor 5678: moved out of area" in n for n in notes)
    assert sum("supervisor 5678" in (r or "") for r in trail) == 2


# ---- door 6: the same arrest is not two incidents -----------------------------------------

def test_the_same_arrest_recorded_twice_is_refused():
    first = record("--when", "2026-11-28 14:30", surname="Twin", forename="Tess", dob="1999-12-31")
    before = dump()
    result = run("record", "--when", "2026-11-28 14:55", "--surname", "Twin", "--forename", "Tess", "--dob",
                 "31/12/1999", "--substance", "cannabis", "--substance", "coke")
    assert result.exit_code == 1
    assert f"likely the same arrest as {first['incident_id']} (Sat 28 Nov 2026 14:30, cannabis" in result.stderr
    assert dump() == before
    # outside 30 minutes, or nothing in common: a different incident
    assert run("record", "--when", "2026-11-28 15:01", "--person", first["person_id"],
               "--substance", "weed").exit_code == 0
    assert run("record", "--when", "2026-11-28 14:40", "--person", first["person_id"],
               "--substance", "ketamine").exit_code == 0


def test_a_different_incident_within_30_minutes_is_stated_and_recorded():
    first = record("--when", "2026-11-28 14:30", surname="Twin", forename="Tess", dob="1999-12-31")
    result = run("record", "--json", "--when", "2026-11-28 14:45", "--person", first["person_id"],
                 "--substance", "weed", "--not-duplicate")
    assert result.exit_code == 0, result.stderr
    stated = [r for r in as_json(result)["reasons"] if r["code"] == "NOT_DUPLICATE"]
    assert len(stated) == 1 and first["incident_id"] in stated[0]["message"]


def test_desks_racing_to_record_one_arrest_record_it_once(tmp_path):
    from test_races import _describe, race

    record(surname="Seed", forename="Row", dob="1960-01-01")
    args = ["record", "--surname", "Twin", "--forename", "Tess", "--dob", "1999-12-31", "--substance", "weed",
            "--when", "2026-11-28 14:30"]
    results = race(tmp_path, [args for _ in range(4)])
    assert sorted(r.returncode for r in results) == [0, 1, 1, 1], _describe(results)
    assert counts()["incidents"] == 2


def test_an_import_row_repeating_a_row_of_the_same_file_is_a_problem_line(tmp_path):
    rows = tmp_path / "rows.csv"
    rows.write_text("surname,forenames,dob,occurred_at,substances\n"
                    "Twin,Tess,1999-12-31,2026-10-01 10:00,weed\n"
                    "TWIN,Tess,31/12/1999,2026-10-01 10:20,cannabis\n", encoding="utf-8")
    result = run("import", rows)
    assert result.exit_code == 2 and "line 3: occurred_at: likely the same arrest" in result.stderr
    assert counts()["incidents"] == 0


# ---- door 7: a wrong closing outcome is corrected, not lived with -------------------------

def _completed() -> tuple[dict, str]:
    out = record(surname="Wrong", forename="Closed", dob="1980-08-08")
    offer = refer(out["incident_id"])
    for status in ("accepted", "completed"):
        assert run("outcome", offer["id"], status).exit_code == 0
    return out, offer["id"]


def test_a_closed_referral_cannot_be_changed_without_a_supervisor():
    _, ref = _completed()
    before = dump()
    for args in (["failed"], ["voided", "--reason", "wrong person"], ["failed", "--reason", "did not attend"]):
        result = run("outcome", ref, *args)
        assert result.exit_code == 1, (args, result.stderr)
        assert "--supervisor" in result.stderr
    assert dump() == before


def test_a_supervisor_corrects_completed_to_failed_and_the_wrong_state_stays_in_the_trail():
    out, ref = _completed()
    result = run("outcome", ref, "failed", "--supervisor", "5678", "--reason", "did not attend", "--json")
    assert result.exit_code == 0, result.stderr
    data = as_json(result)
    assert data["corrected_from"] == "completed" and data["outcome_code"] == 1
    assert run("letter", ref, "--kind", "completion").exit_code == 1
    assert run("letter", ref, "--kind", "failure").exit_code == 0
    log = as_json(run("audit", "log", "--referral", ref, "--json"))
    statuses = [json.loads(e["new"])["status"] for e in log if e["entity"] == "referral" and e["new"]]
    assert statuses[-2:] == ["completed", "failed"]
    assert "corrected from completed by supervisor 5678: did not attend" in log[-1]["reason"]
    assert run("check", out["person_id"]).exit_code == 1  # still diverted: the one shot is used
    assert run("audit", "verify").exit_code == 0


def test_a_voided_correction_frees_the_one_shot_and_the_report_follows():
    out, ref = _completed()
    month = as_json(run("--db", db_file(), "check", out["person_id"], "--json"))["referrals"][0]["offered_at"][:7]
    report = as_json(run("report", "--month", month, "--format", "json"))
    result = run("outcome", ref, "voided", "--supervisor", "5678", "--reason", "wrong person arrested")
    assert result.exit_code == 0, result.stderr
    assert run("check", out["person_id"]).exit_code == 0
    after = as_json(run("report", "--month", month, "--format", "json"))
    assert after != report
    assert run("audit", "verify").exit_code == 0


def test_the_database_itself_refuses_a_closed_referral_changing_outside_a_correction():
    _, ref = _completed()
    conn = connect()
    with pytest.raises(Exception, match="illegal_transition"):
        conn.execute("UPDATE referrals SET status = 'failed' WHERE id = ?", (ref,))
    conn.close()


# ---- door 8: an outside edit is never laundered --------------------------------------------

@pytest.mark.plain_file
def test_a_write_refuses_to_start_while_an_outside_edit_is_pending():
    record(surname="Smith", forename="John", dob="14/02/1990")
    outside_sql("UPDATE people SET surname = 'Forged' WHERE id = 1;")
    before = dump()
    result = run("--officer", "4471", "record", "--surname", "New", "--forename", "Nell", "--dob", "1990-01-01",
                 "--substance", "weed")
    assert result.exit_code == 4
    assert "changes made outside diversion are pending: run `diversion audit verify`" in result.stderr
    assert dump() == before
    verify = run("audit", "verify")
    assert verify.exit_code == 1 and "outside diversion" in verify.stderr


def test_a_returning_person_with_nothing_new_is_not_touched():
    first = record("--pnc", "1990/0123456K", "--gender", "M", surname="Smith", forename="John", dob="14/02/1990")
    conn = connect()
    person_entries = conn.execute("SELECT count(*) FROM audit_log WHERE entity = 'person'").fetchone()[0]
    stamps = dict(conn.execute("SELECT month, changes FROM month_changes").fetchall())
    conn.close()
    again = record("--person", first["person_id"], "--pnc", "1990/0123456K", "--gender", "M",
                   "--when", "2026-06-15 10:00", substance="coke")
    conn = connect()
    assert conn.execute("SELECT count(*) FROM audit_log WHERE entity = 'person'").fetchone()[0] == person_entries
    after = dict(conn.execute("SELECT month, changes FROM month_changes").fetchall())
    conn.close()
    assert again["person_id"] == first["person_id"]
    assert {m: n for m, n in after.items() if stamps.get(m) != n} == {"2026-06": 3}  # only the new incident's month


# ---- door 9: dates say what they mean ---------------------------------------------------------

@pytest.mark.parametrize("dob", ["1995-15-03", "1995/15/03", "1995.15.03"])
def test_a_year_first_date_with_month_15_is_refused(dob):
    before = dump()
    result = run("record", "--surname", "Date", "--forename", "Dan", "--dob", dob, "--substance", "weed")
    assert result.exit_code == 2 and result.stderr.startswith("error: dob:") and "month 15" in result.stderr
    assert dump() == before


def test_check_applies_records_age_rule():
    from datetime import date, timedelta

    yesterday = (date.today() - timedelta(days=1)).strftime("%d/%m/%Y")
    result = run("check", "--surname", "Baby", "--forename", "Bo", "--dob", yesterday)
    assert result.exit_code == 2 and "below the age of criminal responsibility" in result.stderr
    assert "ELIGIBLE" not in result.stdout


def test_desk_output_says_dates_in_words():
    out = run("record", "--surname", "Words", "--forename", "Wes", "--dob", "05/03/1990", "--when",
              "2026-01-12 03:00", "--substance", "weed")
    assert "at Mon 12 Jan 2026 03:00" in out.stdout and "born Mon 5 Mar 1990" in out.stdout
    checked = run("check", "P-000001")
    assert "Mon 12 Jan 2026 03:00" in checked.stdout and "born Mon 5 Mar 1990" in checked.stdout


@pytest.mark.plain_file
def test_outside_changes_are_accepted_only_openly_and_then_writes_go_on():
    record(surname="Smith", forename="John", dob="14/02/1990")
    assert run("audit", "accept", "--reason", "nothing to accept").exit_code == 1
    outside_sql("UPDATE people SET surname = 'Smyth' WHERE id = 1;")
    no_reason = run("audit", "accept")
    assert no_reason.exit_code == 2
    accepted = run("--officer", "9001", "audit", "accept", "--reason", "DBA fix INC-2231")
    assert accepted.exit_code == 0, accepted.stderr
    assert "accepted 1 change(s)" in accepted.stdout
    assert run("audit", "verify").exit_code == 0
    entry = as_json(run("audit", "log", "--person", "P-000001", "--json"))[-1]
    assert (entry["officer"], entry["operation"]) == ("9001", "accept outside changes")
    # (a server also says whose change it was: the login that made it)
    assert entry["reason"] == "DBA fix INC-2231" + (f"; made by login {entry['login']}" if ON_SERVER else "")
    assert record(surname="New", forename="Nell", dob="1990-01-01")["person_id"] == "P-000002"


# ---- what an adversary tried next (each a second diversion or a crash before the fix) ----------

def _diverted_matthews() -> dict:
    out = record("--pnc", "2016/5403964R", surname="Matthews", forename="Lewis", dob="17/08/2006")
    offer = refer(out["incident_id"])
    for status in ("accepted", "completed"):
        assert run("outcome", offer["id"], status).exit_code == 0
    return out


@pytest.mark.parametrize("extra", [["--pnc", "2016/1234567N"], ["--new-person"]], ids=["another PNC", "new person"])
def test_the_same_name_and_birth_date_under_another_record_is_a_possible_same_person(extra):
    _diverted_matthews()
    before = dump()
    result = run("record", "--surname", "Matthews", "--forename", "Lewis", "--dob", "2006-08-17", *extra,
                 "--substance", "weed", "--refer")
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert "P-000001" in result.stderr and "same name and date of birth" in result.stderr
    assert dump() == before


@pytest.mark.parametrize("surname, forename", [
    ("\u041c\u0410\u0422\u0422\u041d\u0415WS", "Lewis"),   # capital Cyrillic М А Т Т Н Е
    ("Smith-Matthews", "Lewis"),                           # a double-barrelled name, new part first
    ("Matthews", "James Lewis"),                           # a first forename added
    ("Matthews", "Louis"),                                 # sounds the same
])
def test_variants_an_adversary_used_meet_the_diverted_person(surname, forename):
    _diverted_matthews()
    before = dump()
    result = run("record", "--surname", surname, "--forename", forename, "--dob", "17/08/2006",
                 "--substance", "weed", "--refer")
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert "P-000001" in result.stderr
    assert dump() == before


@pytest.mark.parametrize("dob", ["on 1995-04-03", "Mon 1995-04-03", "at 1995/04/03", "of 1995 15 03"])
def test_a_year_first_date_inside_other_words_is_refused(dob):
    result = run("check", "--surname", "Zqxv", "--forename", "Pqr", "--dob", dob)
    assert result.exit_code == 2 and result.stderr.startswith("error: dob:")


def test_a_spreadsheets_text_mark_before_a_date_is_read_as_written(tmp_path):
    rows = tmp_path / "rows.csv"
    rows.write_text("surname,forenames,dob,occurred_at,substances\nMark,Ann,'1995-04-03,'2026-05-04 10:00,weed\n",
                    encoding="utf-8")
    assert run("import", rows).exit_code == 0
    person = as_json(run("check", "P-000001", "--json"))
    assert person["person"]["dob"] == "1995-04-03" and person["incidents"][0]["occurred_at"] == "2026-05-04T10:00:00"


@pytest.mark.plain_file
def test_a_change_made_with_the_triggers_off_stops_the_next_decision_about_that_person():
    out = _diverted_matthews()
    change = "UPDATE referrals SET status = 'voided' WHERE person_id = 1;"
    outside_sql(f".dbconfig enable_trigger off\n{change}",
                f"ALTER TABLE referrals DISABLE TRIGGER USER; {change} ALTER TABLE referrals ENABLE TRIGGER USER;")
    before = dump()
    for args in (["record", "--person", out["person_id"], "--substance", "coke", "--refer"],
                 ["refer", out["incident_id"]]):
        result = run(*args)
        assert result.exit_code == 4, (args, result.stdout, result.stderr)
        assert "changed outside diversion" in result.stderr and "audit verify" in result.stderr
    assert dump() == before


def test_a_supervisor_cannot_approve_their_own_change():
    _, ref = _completed()
    result = run("--officer", "5678", "outcome", ref, "voided", "--supervisor", "5678", "--reason", "oops")
    assert result.exit_code == 1 and "approves another officer's change" in result.stderr
    contract = _running_contract()
    early = run("--officer", "5678", "condition", contract, "no-reoffend", "met", "--supervisor", "5678",
                "--reason", "ok")
    assert early.exit_code == 1


def test_an_imported_contract_cannot_complete_before_its_end(tmp_path):
    rows = tmp_path / "rows.csv"
    rows.write_text("surname,forenames,dob,occurred_at,substances,scheme,referral_status,offered_at,accepted_at,"
                    "closed_at\nEarly,Eddie,1990-05-20,2026-07-28 10:00,weed,checkpoint,completed,2026-07-28 12:00,"
                    "2026-07-29 10:00,2026-07-30 10:00\n", encoding="utf-8")
    result = run("import", rows)
    assert result.exit_code == 2 and "line 2: closed_at:" in result.stderr and "2026-11-28" in result.stderr
    assert counts()["incidents"] == 0


def test_inputs_that_once_crashed_are_bad_input(tmp_path):
    assert run("referrals", "--due-within", "99999999999").exit_code == 2
    nested = tmp_path / "deep.json"
    nested.write_text("[" * 100_000 + "]" * 100_000)
    result = run("import", nested)
    assert result.exit_code == 2 and "nested too deeply" in result.stderr


def test_refusals_name_birth_dates_in_words():
    _failed_obrien()
    other = record("--new-person", surname="OBrien", forename="Sean", dob="03/03/1993")
    assert "born Wed 3 Mar 1993" in run("refer", other["incident_id"]).stderr
    nobody = as_json(run("check", "--surname", "Nobody", "--forename", "Here", "--dob", "01/01/2000", "--json"))
    assert "born Sat 1 Jan 2000" in nobody["reasons"][0]["message"]
