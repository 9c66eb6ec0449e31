"""Imports enter their rows in the audit trail per batch, with the per-row insert
triggers held off by the bulk_load flag (migration 5). What must still hold:
every imported row has its entry, later changes continue from it, the flag
never outlives an import, and a flag or rows slipped in from outside are caught.
"""

from __future__ import annotations

from test_audit import assert_verify_fails, entries, last_seq, verify, write_csv

from helpers import connect, count_rows, hold_write_lock, run

PERSON = {"surname": "Ingram", "forenames": "Isla", "dob": "1985-01-01", "occurred_at": "2026-03-02 14:00",
          "substances": "weed", "location": "Easton"}


def import_rows(tmp_path, rows, name="in.csv"):
    return run("import", write_csv(tmp_path / name, rows))


def flag_rows() -> int:
    return count_rows(None, "bulk_load")


def test_the_flag_is_gone_after_an_import_and_after_a_refused_one(tmp_path):
    assert import_rows(tmp_path, [PERSON]).exit_code == 0
    assert flag_rows() == 0
    bad = dict(PERSON, forenames="Ivo", dob="31/02/1985")
    result = import_rows(tmp_path, [dict(PERSON, forenames="Ada"), bad], "bad.csv")
    assert result.exit_code == 2
    assert flag_rows() == 0 and count_rows(None, "incidents") == 1
    assert verify().exit_code == 0


def test_a_flag_committed_outside_diversion_is_caught(tmp_path):
    assert import_rows(tmp_path, [PERSON]).exit_code == 0
    conn = connect()
    conn.execute("INSERT INTO bulk_load (active) VALUES (1)")
    conn.close()
    assert_verify_fails("bulk-load flag")


def test_rows_slipped_in_with_the_triggers_held_off_are_caught(tmp_path):
    assert import_rows(tmp_path, [PERSON]).exit_code == 0
    conn = connect()
    hold_write_lock(conn)
    conn.execute("INSERT INTO bulk_load (active) VALUES (1)")
    # diversion numbers its rows itself (a PostgreSQL key has no automatic value), so the forger does too
    conn.execute("INSERT INTO incidents (id, person_id, occurred_at, age, recorded_at, recorded_by) "
                 "VALUES (2, 1, '2026-03-05T10:00:00', 41, '2026-03-05T10:00:00', '9')")
    conn.execute("DELETE FROM bulk_load")
    conn.execute("COMMIT")
    assert conn.execute("SELECT count(*) FROM audit_pending").fetchone()[0] == 0  # the triggers really were off
    conn.close()
    assert_verify_fails("incident 2")


def test_a_change_after_an_import_continues_from_the_imported_snapshot(tmp_path):
    assert import_rows(tmp_path, [PERSON]).exit_code == 0
    [imported] = entries(0, entity="person")
    before = last_seq()
    assert run("amend", "person", "P-000001", "--surname", "Ingham", "--reason", "typo").exit_code == 0
    [update] = entries(before, entity="person")
    assert update["old_json"] == imported["new_json"]
    assert update["new_json"]["surname"] == "Ingham"
    assert verify().exit_code == 0


def test_the_same_person_again_is_only_updated_when_the_import_adds_something(tmp_path):
    assert import_rows(tmp_path, [PERSON]).exit_code == 0
    before = last_seq()
    again = dict(PERSON, occurred_at="2026-04-02 14:00")
    assert import_rows(tmp_path, [again], "again.csv").exit_code == 0
    assert [e for e in entries(before) if e["entity"] == "person"] == []   # nothing new about her
    assert count_rows(None, "people") == 1
    before = last_seq()
    with_gender = dict(PERSON, occurred_at="2026-05-02 14:00", gender="F")
    assert import_rows(tmp_path, [with_gender], "gender.csv").exit_code == 0
    [update] = [e for e in entries(before) if e["entity"] == "person"]
    assert update["action"] == "update"
    assert update["old_json"]["gender"] is None and update["new_json"]["gender"] == "F"
    assert verify().exit_code == 0


def test_an_import_counts_the_months_it_touched_for_the_report_cache(tmp_path):
    rows = [PERSON, dict(PERSON, forenames="Ada", occurred_at="2026-05-30 23:00", scheme="dep-adult",
                         referral_status="completed", offered_at="2026-06-01 10:00",
                         accepted_at="2026-06-02 10:00", closed_at="2026-07-15 10:00")]
    assert import_rows(tmp_path, rows).exit_code == 0
    conn = connect()
    months = dict(conn.execute("SELECT month, changes FROM month_changes").fetchall())
    conn.close()
    assert set(months) == {"2026-03", "2026-05", "2026-06", "2026-07"}
    assert all(n >= 1 for n in months.values())
