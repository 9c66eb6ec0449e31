"""Trust under attack (issue 15): what an adversary got through, tried again
through real commands: ids reused after an erasure, a schema edited behind
verify's back, a rewritten chain, and the anchors that catch it."""

from __future__ import annotations

import pytest

from helpers import as_json, connect, record, refer, run


def _erase(person_id: str, *extra: str):
    result = run("db", "erase-person", person_id, "--confirm", person_id, "--reason", "SAR-2026-0042", *extra)
    assert result.exit_code == 0, result.stderr
    return result


def test_ids_are_never_issued_twice_after_an_erasure():
    record(surname="First", forename="Fay", dob="1980-01-01")
    second = record("--refer", surname="Second", forename="Sam", dob="1981-01-01")
    assert second["person_id"] == "P-000002" and second["referral_id"].endswith("-000001")
    _erase("P-000002", "--override-retention")
    third = record("--refer", surname="Third", forename="Tia", dob="1982-01-01")
    assert third["person_id"] == "P-000003" and third["incident_id"] == "I-000003"
    assert third["referral_id"].endswith("000002")
    # the new person inherits nobody's history, the trail verifies, and they can be erased in turn
    history = as_json(run("audit", "log", "--person", "P-000003", "--json"))
    assert history and all("Tia" in (e["new"] or "") or e["entity"] != "person" for e in history)
    assert all(e["person_id"] == 3 for e in history)
    assert run("audit", "verify").exit_code == 0
    _erase("P-000003", "--override-retention")
    assert run("audit", "verify").exit_code == 0


def test_import_after_an_erasure_does_not_reuse_ids(tmp_path):
    record(surname="First", forename="Fay", dob="1980-01-01")
    record(surname="Second", forename="Sam", dob="1981-01-01")
    _erase("P-000002")
    rows = tmp_path / "rows.csv"
    rows.write_text("surname,forenames,dob,occurred_at,substances\nNew,Ned,1990-01-01,2026-10-01 10:00,weed\n",
                    encoding="utf-8")
    assert run("import", rows).exit_code == 0
    conn = connect()
    ids = conn.execute("SELECT id FROM people ORDER BY id").fetchall()
    conn.close()
    assert [r[0] for r in ids] == [1, 3]
    assert run("audit", "verify").exit_code == 0


def test_a_database_erased_before_the_upgrade_does_not_reissue_the_erased_id():
    record(surname="First", forename="Fay", dob="1980-01-01")
    record(surname="Second", forename="Sam", dob="1981-01-01")
    _erase("P-000002")
    conn = connect()  # back to how the last release left the file: no record of issued ids
    for statement in ("DROP TRIGGER issued_people", "DROP TRIGGER issued_incidents", "DROP TRIGGER issued_referrals",
                      "DROP TABLE issued_ids", "DELETE FROM migrations WHERE version = 8"):
        conn.execute(statement)
    conn.close()
    assert run("db", "upgrade").exit_code == 0
    assert record(surname="Third", forename="Tia", dob="1982-01-01")["person_id"] == "P-000003"
    assert run("audit", "verify").exit_code == 0
