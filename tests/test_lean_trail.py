"""The lean audit trail (migration 9): a file written by the last release (tests/fixtures,
made by diversion at schema 8 with records, referrals, a supervisor's correction, amendments,
a void, an import and three erasures) is verified, converted and reads the same; a broken
old trail is never converted; the new trail's shape is what verify relies on."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from helpers import as_json, connect, db_file, record, run

FIXTURES = Path(__file__).resolve().parent / "fixtures"
# a plain SQLite file from the last release (test_audit checks the lean trail's shape on both engines)
pytestmark = [pytest.mark.no_database, pytest.mark.plain_file,
              pytest.mark.sqlite_only("converts a SQLite file from the last release: a server starts at the "
                                      "current schema, with the lean trail")]


def release_8(sql: str = "") -> Path:
    """The last release's file at DIVERSION_DB, optionally changed with `sql` first (raw, as
    someone with the sqlite3 shell would)."""
    path = db_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(FIXTURES / "release-8.db", path)
    path.chmod(0o600)
    if sql:
        import sqlite3

        conn = sqlite3.connect(path, isolation_level=None)
        conn.executescript(sql)
        conn.close()
    return path


def schema_version() -> int:
    conn = connect()
    try:
        return conn.execute("SELECT max(version) FROM migrations").fetchone()[0]
    finally:
        conn.close()


def comparable(entries: list[dict]) -> list[dict]:
    assert all(e.get("note") is None for e in entries)  # every row is what the trail says
    # (a file's entries name no login: the key came with the server's roles)
    return [{**{k: v for k, v in e.items() if k not in ("note", "login")}, "old": json.loads(e["old"]) if e["old"] else None,
             "new": json.loads(e["new"]) if e["new"] else None} for e in entries]


def test_the_last_releases_file_is_converted_and_its_history_reads_the_same():
    release_8()
    upgraded = run("db", "upgrade")
    assert upgraded.exit_code == 0, upgraded.stderr
    from diversion_cli.store.migrations import LATEST

    assert schema_version() == LATEST
    verified = run("audit", "verify", "--json")
    assert verified.exit_code == 0, verified.stderr
    before = json.loads((FIXTURES / "release-8-audit-log.json").read_text())
    after = as_json(run("audit", "log", "--json"))
    # the same entries, with the whole row before and after each change rebuilt from the
    # live rows and the changed columns the lean trail keeps; erased people's stay blank
    assert comparable(after[:len(before)]) == comparable(before)
    # the conversion itself is the one entry after them, sealed by the upgrade
    [conversion] = after[len(before):]
    assert (conversion["entity"], conversion["action"], conversion["operation"]) == \
        ("trail_conversion", "baseline", "migration 9")
    anchor = (FIXTURES / "release-8-anchor.txt").read_text().split("hash=")[1].strip()
    assert json.loads(conversion["new"]) | {"converted_at": None} == \
        {"old_last_entry": len(before), "old_head_hash": anchor, "converted_at": None}
    assert anchor in conversion["reason"]


def test_an_anchor_taken_before_the_upgrade_is_checked_against_the_old_head_it_recorded(tmp_path):
    release_8()
    assert run("db", "upgrade").exit_code == 0
    anchors = tmp_path / "anchors.log"
    old = (FIXTURES / "release-8-anchor.txt").read_text()
    anchors.write_text(old)
    assert run("audit", "verify", "--anchors", anchors).exit_code == 0
    # one the old head does not answer for fails, naming why: a conversion record can be forged
    earlier = old.replace("entry=75", "entry=40")
    anchors.write_text(earlier)
    result = run("audit", "verify", "--anchors", anchors)
    assert result.exit_code == 1 and "before its conversion" in result.stderr
    forged = old.replace(old.split("hash=")[1].strip(), "ab" * 32)
    anchors.write_text(forged)
    result = run("audit", "verify", "--anchors", anchors)
    assert result.exit_code == 1 and "rewritten" in result.stderr
    # and anchors taken after it are checked against the new chain
    anchors.write_text("")
    assert run("audit", "anchor", "--append-to", anchors).exit_code == 0
    record(surname="After", forename="Ada", dob="1990-01-01")
    assert run("audit", "verify", "--anchors", anchors).exit_code == 0


@pytest.mark.parametrize("edit", [
    "DROP TRIGGER audit_log_no_update; UPDATE audit_log SET officer = '9999' WHERE seq = 20",
    "DROP TRIGGER audit_log_no_update; UPDATE audit_log SET new = replace(new, 'Smith', 'Brown') WHERE seq = 1",
    "DROP TRIGGER audit_log_no_delete; DELETE FROM audit_log WHERE seq = 30",
    "INSERT INTO audit_pending (action, entity, entity_id, person_id, referral_id, old, new) "
    "VALUES ('update', 'person', '1', 1, NULL, '{}', '{}')",
])
def test_a_broken_old_trail_is_never_converted(edit):
    path = release_8(edit)
    before = path.read_bytes()
    result = run("db", "upgrade")
    assert result.exit_code == 4, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert path.read_bytes() == before
    assert run("record", "--surname", "New", "--forename", "Nia", "--dob", "1990-01-01",
               "--substance", "cannabis").exit_code == 4  # a writer would upgrade: refused the same way
    assert path.read_bytes() == before


def test_an_id_erased_before_issued_ids_were_kept_is_not_issued_again():
    # as the release before the last left the file: no record of issued ids (migration 8);
    # the highest person (9) and incident were erased
    release_8("DROP TRIGGER issued_people; DROP TRIGGER issued_incidents; DROP TRIGGER issued_referrals; "
              "DROP TRIGGER issued_ids_only_up; DROP TRIGGER issued_ids_kept; DROP TABLE issued_ids; "
              "DELETE FROM migrations WHERE version = 8;")
    assert run("db", "upgrade").exit_code == 0
    out = record(surname="Third", forename="Tia", dob="1982-01-01")
    assert (out["person_id"], out["incident_id"]) == ("P-000010", "I-000010")
    assert run("audit", "verify").exit_code == 0


def test_after_the_upgrade_desks_write_and_erase_in_the_new_trail():
    release_8()
    assert run("db", "upgrade").exit_code == 0
    out = record("--refer", surname="Newer", forename="Nat", dob="1991-01-01")
    assert run("outcome", out["referral_id"], "accepted").exit_code == 0
    assert run("amend", "person", "P-000001", "--surname", "Smithe", "--reason", "typo").exit_code == 0
    assert run("db", "erase-person", "P-000003", "--confirm", "P-000003", "--reason", "SAR-1",
               "--override-retention").exit_code == 0
    assert run("audit", "verify").exit_code == 0
    history = as_json(run("audit", "log", "--person", "P-000001", "--json"))
    surnames = [(json.loads(e["old"])["surname"], json.loads(e["new"])["surname"]) for e in history
                if e["entity"] == "person" and e["action"] == "update"]
    assert surnames == [("Smith", "Smyth"), ("Smyth", "Smithe")]


def test_the_trail_keeps_no_copy_of_what_the_live_row_holds():
    release_8()
    assert run("db", "upgrade").exit_code == 0
    record(surname="Lean", forename="Lee", dob="1990-01-01")
    conn = connect()
    try:
        inserts = conn.execute("SELECT count(*), count(old), min(length(digest)) FROM audit_entries "
                               "WHERE action = 'i'").fetchone()
        update = conn.execute("SELECT old FROM audit_entries WHERE action = 'u' AND entity = 'p' "
                              "ORDER BY seq DESC LIMIT 1").fetchone()[0]
        contexts = conn.execute("SELECT count(*) FROM audit_transactions").fetchone()[0]
        entries = conn.execute("SELECT count(*) FROM audit_entries").fetchone()[0]
    finally:
        conn.close()
    assert inserts[0] > 0 and inserts[1] == 0 and inserts[2] == 16  # an insert: a digest, no copy
    assert json.loads(update) == {"surname": "Jones", "surname_norm": "jones"}  # only what changed, as it was
    assert contexts < entries  # who, when and why once per transaction


def test_compact_gives_back_the_space_the_old_trail_took_and_keeps_everything():
    path = release_8()
    assert run("db", "upgrade").exit_code == 0
    before = as_json(run("audit", "log", "--json"))
    conn = connect()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    upgraded = path.stat().st_size
    result = run("db", "compact")
    assert result.exit_code == 0, result.stderr
    assert "MB ->" in result.stdout
    assert path.stat().st_size < upgraded
    assert run("audit", "verify").exit_code == 0
    assert as_json(run("audit", "log", "--json")) == before


@pytest.mark.parametrize("edit, named", [
    ("INSERT INTO bulk_load VALUES (1); INSERT INTO referrals SELECT 'R-2026-000009', 1, 1, scheme, pathway, "
     "one_shot_group, lookback_since, status, provider, appointment, deadline, offered_at, offered_by, diverted_at, "
     "closed_at, outcome_code, reason, updated_at, updated_by FROM referrals WHERE id = 'R-2026-000001'; "
     "DELETE FROM bulk_load;", "referral R-2026-000009 is not in its audit trail"),
    ("DROP TRIGGER audit_people_update; UPDATE people SET surname = 'Forged' WHERE id = 1; {trigger};",
     "person 1 differs from its last audited state"),
])
def test_an_upgrade_never_launders_a_row_the_old_trail_does_not_vouch_for(edit, named):
    import sqlite3

    conn = sqlite3.connect(FIXTURES / "release-8.db")
    trigger = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'audit_people_update'").fetchone()[0]
    conn.close()
    path = release_8(edit.replace("{trigger}", trigger))
    before = path.read_bytes()
    result = run("db", "upgrade")
    assert result.exit_code == 4 and named in result.stderr, result.stderr
    assert path.read_bytes() == before


def test_an_old_file_with_changes_waiting_says_to_deal_with_them_with_the_diversion_that_wrote_it():
    release_8("INSERT INTO audit_pending (action, entity, entity_id, person_id, referral_id, old, new) "
              "VALUES ('update', 'person', '1', 1, NULL, '{}', '{}')")
    result = run("db", "upgrade")
    assert result.exit_code == 4 and "with the diversion that wrote it" in result.stderr


def test_an_old_file_whose_schema_was_edited_gets_one_line_not_a_database_error():
    release_8("DROP TRIGGER audit_people_update;")
    result = run("db", "upgrade")
    assert result.exit_code == 4 and "changed outside diversion" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
