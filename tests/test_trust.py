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
                      "DROP TABLE issued_ids",
                      # nor what migration 10 added (it runs again after 8)
                      "DROP INDEX people_profile", "DROP TRIGGER diversions_referrals_insert",
                      "DROP TRIGGER diversions_referrals_update", "DROP TRIGGER diversions_referrals_delete",
                      "DROP TABLE diversion_changes", "DELETE FROM migrations WHERE version >= 8"):
        conn.execute(statement)
    conn.close()
    assert run("db", "upgrade").exit_code == 0
    assert record(surname="Third", forename="Tia", dob="1982-01-01")["person_id"] == "P-000003"
    assert run("audit", "verify").exit_code == 0


# ---- verify does not trust the schema -------------------------------------------------

SCHEMA_EDITS = {
    "one-shot trigger dropped": ("DROP TRIGGER referrals_one_shot", "trigger referrals_one_shot is missing"),
    "one-open index dropped": ("DROP INDEX referrals_one_open", "index referrals_one_open is missing"),
    "audit trigger dropped": ("DROP TRIGGER audit_referrals_update", "trigger audit_referrals_update is missing"),
    "view shows failed as completed": (
        "DROP VIEW referrals_view; CREATE VIEW referrals_view AS SELECT r.id AS referral_id, "
        "replace(r.status, 'failed', 'completed') AS status FROM referrals r",
        "view referrals_view differs"),
    "incidents filtered": (
        "DROP VIEW incidents_view; CREATE VIEW incidents_view AS SELECT * FROM incidents WHERE id > 1",
        "view incidents_view differs"),
    "extra trigger": ("CREATE TRIGGER sneaky AFTER INSERT ON people BEGIN SELECT 1; END",
                      "trigger sneaky is not one diversion defines"),
}


@pytest.mark.plain_file
@pytest.mark.parametrize("edit", SCHEMA_EDITS, ids=list(SCHEMA_EDITS))
def test_verify_names_a_schema_changed_outside_diversion(edit):
    import subprocess

    from helpers import db_file

    out = record(surname="Schema", forename="Sid", dob="1980-01-01")
    refer(out["incident_id"])
    sql, named = SCHEMA_EDITS[edit]
    subprocess.run(["sqlite3", str(db_file()), sql], check=True)
    result = run("audit", "verify")
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert named in result.stderr


@pytest.mark.plain_file
@pytest.mark.parametrize("sql", [
    "UPDATE erasures SET reason = 'routine tidy-up', erased_by = '1'",
    "INSERT INTO erasures VALUES (42, '2026-01-01T00:00:00', '1234', 'made up')",
])
def test_an_erasure_edited_or_forged_outside_diversion_is_named(sql):
    import subprocess

    from helpers import db_file

    record(surname="Gone", forename="Gil", dob="1980-01-01")
    _erase("P-000001")
    assert run("audit", "verify").exit_code == 0
    subprocess.run(["sqlite3", str(db_file()), sql], check=True)
    result = run("audit", "verify")
    assert result.exit_code == 1 and "erasure of person" in result.stderr


# ---- a consistent rewrite of the chain, and the anchor that catches it --------------------

def _without_guards(conn, tables: list[str], edit) -> None:
    """What an adversary with the file can do: drop the guard triggers, edit, put them back
    exactly as they were (so the schema check has nothing to see)."""
    guards = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name IN (%s)"
                          % ",".join("?" * len(tables)), tables).fetchall()
    for name, _ in guards:
        conn.execute(f"DROP TRIGGER {name}")
    edit(conn)
    for _, sql in guards:
        conn.execute(sql)


def _rechain(conn, first_seq: int) -> None:
    """Recompute every hash from `first_seq` on: no secret stands in the way."""
    from diversion_cli.store.audit import GENESIS, chain_hash, digest

    prev = conn.execute("SELECT hash FROM audit_log WHERE seq = ?", (first_seq - 1,)).fetchone()
    prev = prev[0] if prev else GENESIS
    rows = conn.execute("SELECT seq, at, officer, operation, reason, action, entity, entity_id, person_id, "
                        "referral_id, old, new, salt FROM audit_log WHERE seq >= ? ORDER BY seq", (first_seq,))
    for (seq, at, officer, operation, reason, action, entity, entity_id, person_id, referral_id, old, new,
         salt) in rows.fetchall():
        od, nd = digest(salt, old), digest(salt, new)
        current = chain_hash(prev, seq, at, officer, operation, reason, action, entity, entity_id, person_id,
                             referral_id, od, nd)
        conn.execute("UPDATE audit_log SET old_digest = ?, new_digest = ?, prev_hash = ?, hash = ? WHERE seq = ?",
                     (od, nd, prev, current, seq))
        prev = current


def test_a_rewritten_chain_verifies_alone_but_not_against_an_anchor_taken_before(tmp_path):
    record(surname="Truth", forename="Tom", dob="1980-01-01")
    record(surname="Other", forename="Olga", dob="1981-01-01", substance="coke")
    anchors = tmp_path / "anchors.log"
    taken = run("audit", "anchor", "--append-to", anchors)
    assert taken.exit_code == 0 and taken.stdout.startswith("diversion-anchor ")
    assert anchors.read_text() == taken.stdout

    conn = connect()
    first = conn.execute("SELECT min(seq) FROM audit_log WHERE entity = 'person' AND entity_id = '1'").fetchone()[0]

    def forge(c):
        c.execute("UPDATE people SET surname = 'Forged' WHERE id = 1")
        old = c.execute("SELECT new FROM audit_log WHERE seq = ?", (first,)).fetchone()[0]
        c.execute("UPDATE audit_log SET new = ? WHERE seq = ?", (old.replace("Truth", "Forged"), first))
        _rechain(c, first)

    _without_guards(conn, ["people", "audit_log"], forge)
    conn.close()
    alone = run("audit", "verify", "--json")
    assert alone.exit_code == 0, alone.stderr  # what verify cannot prove on its own (README)
    result = run("audit", "verify", "--anchors", anchors)
    assert result.exit_code == 1 and "the trail was rewritten" in result.stderr


def test_a_trail_cut_short_is_caught_by_the_anchor(tmp_path):
    record(surname="Keep", forename="Kay", dob="1980-01-01")
    cut_from = as_json(run("audit", "verify", "--json"))["head"]["entry"] + 1
    record(surname="Drop", forename="Dan", dob="1981-01-01", substance="coke")
    anchors = tmp_path / "anchors.log"
    anchors.write_text("# anchors of the custody suite\n")
    assert run("audit", "anchor", "--append-to", anchors).exit_code == 0

    conn = connect()

    def cut(c):
        for table in ("decisions", "incident_substances", "incidents", "people"):
            column = "incident_id" if table == "incident_substances" else "person_id" if table in (
                "decisions", "incidents") else "id"
            c.execute(f"DELETE FROM {table} WHERE {column} = 2")
        c.execute("DELETE FROM audit_log WHERE seq >= ?", (cut_from,))

    _without_guards(conn, ["people", "incidents", "incident_substances", "decisions", "audit_log"], cut)
    conn.close()
    assert run("audit", "verify").exit_code == 0
    result = run("audit", "verify", "--anchors", anchors)
    assert result.exit_code == 1 and "entries were deleted" in result.stderr


def test_an_anchor_file_that_is_not_one_is_bad_input(tmp_path):
    bad = tmp_path / "anchors.log"
    bad.write_text("diversion-anchor yesterday entry=x hash=nope\n")
    result = run("audit", "verify", "--anchors", bad)
    assert result.exit_code == 2 and "anchors.log:1: not an anchor line" in result.stderr


@pytest.mark.plain_file
def test_binary_data_written_into_a_text_column_is_named_not_a_database_failure():
    import subprocess

    from helpers import db_file

    record(surname="Blob", forename="Bea", dob="1980-01-01")
    subprocess.run(["sqlite3", "-cmd", ".dbconfig enable_trigger off", str(db_file()),
                    "UPDATE people SET surname = x'00ff' WHERE id = 1"], check=True)  # its audit trigger refuses a BLOB
    result = run("audit", "verify")
    assert result.exit_code == 1 and "person 1 holds binary data" in result.stderr


# ---- a second adversary's findings ------------------------------------------------------------

def test_the_record_of_issued_ids_only_goes_up():
    record(surname="First", forename="Fay", dob="1980-01-01")
    conn = connect()
    for sql in ("UPDATE issued_ids SET last = 0", "DELETE FROM issued_ids"):
        with pytest.raises(Exception, match="issued_ids_only_go_up"):
            conn.execute(sql)
    conn.close()


@pytest.mark.plain_file
def test_issued_ids_lowered_with_the_triggers_off_stop_the_next_write_and_fail_verify():
    import subprocess

    from helpers import counts, db_file

    record(surname="First", forename="Fay", dob="1980-01-01")
    record(surname="Second", forename="Sam", dob="1981-01-01")
    _erase("P-000002")
    subprocess.run(["sqlite3", "-cmd", ".dbconfig enable_trigger off", str(db_file()),
                    "UPDATE issued_ids SET last = 0"], check=True)
    before = counts()
    result = run("record", "--surname", "Third", "--forename", "Tia", "--dob", "1982-01-01", "--substance", "weed")
    assert result.exit_code == 4 and "was issued before" in result.stderr
    assert counts() == before
    verify = run("audit", "verify")
    assert verify.exit_code == 1 and "record of issued" in verify.stderr


@pytest.mark.plain_file
def test_a_dropped_index_is_named_not_a_database_failure():
    import subprocess

    from helpers import db_file

    record(surname="First", forename="Fay", dob="1980-01-01")
    _erase("P-000001")
    subprocess.run(["sqlite3", str(db_file()), "DROP INDEX audit_log_person"], check=True)
    result = run("audit", "verify")
    assert result.exit_code == 1 and "index audit_log_person is missing" in result.stderr


def test_help_to_a_full_or_closed_stdout_is_not_a_traceback():
    import subprocess
    import sys

    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "diversion_cli", "--help"], stdout=full,
                              stderr=subprocess.PIPE, text=True, timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    closed = subprocess.run(f"{sys.executable} -m diversion_cli audit verify >&-", shell=True,
                            stderr=subprocess.PIPE, text=True, timeout=60)
    assert "Traceback" not in closed.stderr and "internal error" not in closed.stderr, closed.stderr


def test_an_empty_anchors_file_proves_nothing_and_says_so(tmp_path):
    empty = tmp_path / "anchors.log"
    empty.write_text("")
    result = run("audit", "verify", "--anchors", empty)
    assert result.exit_code == 2 and "holds no anchor lines" in result.stderr
