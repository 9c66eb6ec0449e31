"""The audit trail, corrections, erasure and database administration.

Every write must leave sealed entries naming the officer, the operation and
the old and new values; `audit verify` must notice any change made behind
diversion's back (made here with the real `sqlite3` shell on a file, `psql` as
the tables' owner on a PostgreSQL server); corrections never
overwrite silently; erasure leaves no name behind; backups and restores are
consistent; a newer schema is refused without touching the file.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from helpers import (ON_SERVER, all_rows, as_json, connect, count_rows, counts, db_file, record, refer, run, shell, sub,
                     tamper)

# Tampering is done with the sqlite3 shell on the raw file (psql on a server): not possible on an encrypted run.
plain_file = pytest.mark.plain_file

TABLES = ("people", "incidents", "incident_substances", "incident_co_offences", "decisions", "referrals",
          "referral_conditions", "audit_entries", "audit_transactions", "audit_pending")
REPO = Path(__file__).resolve().parent.parent


# ---- helpers -------------------------------------------------------------------

# what the owner of the tables does on the server before editing the trail (SQLite: DROP TRIGGER name)
UNGUARD_UPDATE = "DROP TRIGGER audit_entries_no_update ON audit_entries"
UNGUARD_DELETE = "DROP TRIGGER audit_entries_no_delete ON audit_entries"


def nothing_there() -> bool:
    """No database file was made (on a server: the empty database was given no table)."""
    if ON_SERVER:
        conn = connect()
        try:
            return conn.execute("SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace"
                                ).fetchone()[0] == 0
        finally:
            conn.close()
    return not db_file().exists()


def all_counts(db: Path | None = None) -> dict:
    return counts(db, TABLES)


def last_seq() -> int:
    if isinstance(db_file(), Path) and not db_file().exists():
        return 0
    conn = connect()
    try:
        return conn.execute("SELECT coalesce(max(seq), 0) FROM audit_entries").fetchone()[0]
    finally:
        conn.close()


def entries(after: int = 0, **match) -> list[dict]:
    """Entries after `after` (with every field in `match` equal), as `audit log` reads them:
    the whole row before and after each change, rebuilt from the lean trail."""
    from diversion_cli.store import Store

    store = Store.open(db_file())
    try:
        found = store.audit_entries(limit=10 ** 9)
    finally:
        store.close()
    out = []
    for e in found:
        if e["seq"] > after and all(e[k] == v for k, v in match.items()):
            e["old_json"] = json.loads(e["old"]) if e["old"] else None
            e["new_json"] = json.loads(e["new"]) if e["new"] else None
            out.append(e)
    return out


def audit_table_dump(db: Path | None = None) -> list[tuple]:
    conn = connect(db)
    try:
        return [tuple(r) for table, key in (("audit_entries", "seq"), ("audit_transactions", "last_seq"))
                for r in conn.execute(f"SELECT * FROM {table} ORDER BY {key}")]
    finally:
        conn.close()


def sealing(seq: int) -> str:
    """The start of verify's line naming the transaction that seals entry `seq`."""
    conn = connect()
    try:
        last = conn.execute("SELECT min(last_seq) FROM audit_transactions WHERE last_seq >= ?", (seq,)).fetchone()[0]
        first = conn.execute("SELECT coalesce(max(last_seq), 0) + 1 FROM audit_transactions WHERE last_seq < ?",
                             (seq,)).fetchone()[0]
    finally:
        conn.close()
    return f"sealing entries {first}–{last} "


def verify(*global_opts: str):
    return run(*global_opts, "audit", "verify")


def assert_verify_fails(*fragments: str) -> str:
    result = verify()
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def seq_of(entity: str, entity_id: str, action: str = "insert") -> int:
    found = entries(entity=entity, entity_id=entity_id, action=action)
    assert found, (entity, entity_id, action)
    return found[0]["seq"]


def num(ident: str) -> int:
    return int(ident.split("-")[-1])


def write_csv(path: Path, rows: list[dict]) -> Path:
    columns = ("surname", "forenames", "dob", "pnc", "gender", "ethnicity", "occurred_at", "substances",
               "quantity", "location", "co_offences", "supply_suspected", "recorded_by", "scheme",
               "referral_status", "offered_at", "accepted_at", "closed_at", "outcome_reason")
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow(row)
    return path


@pytest.fixture
def busy_history(tmp_path):
    """A database written by every kind of write diversion makes (no erasure)."""
    a = record("--refer", "--location", "Stokes Croft", surname="Smith", forename="John", dob="14/02/1990")
    assert run("outcome", a["referral_id"], "accepted").exit_code == 0
    b = record("--scheme", "checkpoint", "--refer", surname="Okafor", forename="Chi", dob="02/03/1988",
               substance="coke")
    assert run("outcome", b["referral_id"], "accepted").exit_code == 0
    assert run("condition", b["referral_id"], "drug-awareness", "met").exit_code == 0
    c = record("--co-offence", "criminal damage", surname="Nowak", forename="Ola", dob="05/06/1977")
    assert run("void", c["incident_id"], "--reason", "entered twice").exit_code == 0
    assert run("amend", "person", a["person_id"], "--surname", "Smyth", "--reason", "passport").exit_code == 0
    assert run("amend", "incident", a["incident_id"], "--location", "Cabot Circus",
               "--reason", "wrong street").exit_code == 0
    csv_file = write_csv(tmp_path / "few.csv", [
        {"surname": "Imported", "forenames": "Ian", "dob": "1985-01-01", "occurred_at": "2026-03-02 14:00",
         "substances": "weed", "location": "Easton"},
        {"surname": "Imported", "forenames": "Iris", "dob": "1986-01-01", "occurred_at": "2026-03-03 14:00",
         "substances": "coke;mandy", "co_offences": "theft from a shop"}])
    assert run("import", csv_file).exit_code == 0
    return {"a": a, "b": b, "c": c}


# ---- every write leaves entries with officer, operation, old and new -------------

def test_record_leaves_an_insert_entry_for_every_row_with_officer_and_new_values():
    before = last_seq()
    result = run("--officer", "PC5678", "record", "--json", "--surname", "Smith", "--forename", "John",
                 "--dob", "14/02/1990", "--substance", "weed", "--substance", "coke", "--location", "Broadmead",
                 "--co-offence", "theft from a shop")
    assert result.exit_code == 0, result.stderr
    out = as_json(result)
    new = entries(before)
    by_entity = {}
    for e in new:
        by_entity.setdefault(e["entity"], []).append(e)
        assert e["officer"] == "PC5678"
        assert "record" in e["operation"]
        assert e["action"] == "insert" and e["old"] is None and e["new_json"] is not None
    assert by_entity["person"][0]["new_json"]["surname"] == "Smith"
    assert by_entity["person"][0]["entity_id"] == str(num(out["person_id"]))
    incident = by_entity["incident"][0]
    assert incident["entity_id"] == str(num(out["incident_id"]))
    assert incident["new_json"]["location"] == "Broadmead"
    assert incident["person_id"] == num(out["person_id"])
    assert sorted(s["new_json"]["substance"] for s in by_entity["substance"]) == ["cannabis", "cocaine"]
    assert by_entity["co_offence"][0]["new_json"]["description"] == "theft from a shop"
    assert len(by_entity["decision"]) == 1
    # one entry per row written, nothing more and nothing missing
    c = all_counts()
    assert len(new) == c["people"] + c["incidents"] + c["incident_substances"] + c["incident_co_offences"] \
        + c["decisions"]
    assert c["audit_pending"] == 0


def test_refer_outcome_and_condition_leave_update_entries_with_old_and_new_status():
    person = record(surname="Okafor", forename="Chi", dob="02/03/1988")
    before = last_seq()
    offer = refer(person["incident_id"], "--scheme", "checkpoint")
    ref_id = offer["id"]
    inserted = entries(before)
    assert {e["entity"] for e in inserted} >= {"referral", "decision", "condition"}
    assert all(e["operation"] == "refer" or "refer" in e["operation"] for e in inserted)
    referral_entry = next(e for e in inserted if e["entity"] == "referral")
    assert referral_entry["referral_id"] == ref_id and referral_entry["new_json"]["status"] == "offered"
    assert all(e["referral_id"] == ref_id for e in inserted if e["entity"] == "condition")

    before = last_seq()
    assert run("--officer", "777", "outcome", ref_id, "accepted", "--reason", "signed the contract").exit_code == 0
    [update] = entries(before)
    assert (update["action"], update["entity"], update["entity_id"]) == ("update", "referral", ref_id)
    assert update["officer"] == "777" and "accepted" in update["operation"]
    assert update["reason"] == "signed the contract"
    assert update["old_json"]["status"] == "offered" and update["new_json"]["status"] == "accepted"
    assert update["old_json"]["diverted_at"] is None and update["new_json"]["diverted_at"]

    before = last_seq()
    assert run("--officer", "888", "condition", ref_id, "drug-awareness", "met", "--note", "went").exit_code == 0
    [cond] = entries(before)
    assert (cond["action"], cond["entity"], cond["officer"]) == ("update", "condition", "888")
    assert cond["old_json"]["status"] == "pending" and cond["new_json"]["status"] == "met"
    assert cond["new_json"]["note"] == "went" and cond["old_json"]["note"] is None
    assert "condition" in cond["operation"]


def test_import_leaves_an_entry_for_every_imported_row_stamped_with_the_importing_officer(tmp_path):
    rows = [{"surname": "Imp", "forenames": f"{name}", "dob": "1985-01-01", "occurred_at": "2026-03-02 14:00",
             "substances": "weed", "location": "Easton", "recorded_by": "1001"}
            for name in ("Ann", "Bob", "Cy", "Di")]
    rows[1].update(scheme="dep-adult", referral_status="completed", offered_at="2026-03-03 10:00",
                   accepted_at="2026-03-04 10:00", closed_at="2026-03-20 10:00")
    before = last_seq()
    result = run("--officer", "4321", "import", write_csv(tmp_path / "in.csv", rows))
    assert result.exit_code == 0, result.stderr
    new = entries(before)
    assert {e["officer"] for e in new} == {"4321"}
    assert {e["operation"] for e in new} == {"import"}
    assert all("in.csv" in (e["reason"] or "") for e in new)
    incidents = [e for e in new if e["entity"] == "incident"]
    assert len(incidents) == count_rows(None, "incidents") == 4
    assert [e["new_json"]["location"] for e in incidents] == ["Easton"] * 4
    assert len([e for e in new if e["entity"] == "person"]) == 4
    assert [e["new_json"]["status"] for e in new if e["entity"] == "referral"] == ["completed"]
    assert verify().exit_code == 0


def test_void_and_amendments_record_old_and_new_values_and_the_reason():
    a = record(surname="Smith", forename="John", dob="14/02/1990", substance="weed")
    before = last_seq()
    assert run("--officer", "55", "void", a["incident_id"], "--reason", "entered twice").exit_code == 0
    [void] = entries(before)
    assert (void["action"], void["entity"], void["officer"], void["reason"]) == \
        ("update", "incident", "55", "entered twice")
    assert void["old_json"]["voided_at"] is None and void["new_json"]["voided_at"]
    assert void["new_json"]["void_reason"] == "entered twice"

    b = record(surname="Jones", forename="Amy", dob="01/03/1985", substance="coke")
    before = last_seq()
    assert run("--officer", "66", "amend", "person", b["person_id"], "--surname", "Jonas", "--dob", "02/03/1985",
               "--reason", "passport seen").exit_code == 0
    [amend] = entries(before)
    assert (amend["action"], amend["entity"], amend["officer"], amend["reason"]) == \
        ("update", "person", "66", "passport seen")
    assert "amend" in amend["operation"]
    assert (amend["old_json"]["surname"], amend["new_json"]["surname"]) == ("Jones", "Jonas")
    assert (amend["old_json"]["dob"], amend["new_json"]["dob"]) == ("1985-03-01", "1985-03-02")
    conn = connect()
    assert tuple(conn.execute("SELECT surname, dob FROM people WHERE id = ?", (num(b["person_id"]),)).fetchone()) == \
        ("Jonas", "1985-03-02")
    conn.close()

    before = last_seq()
    assert run("amend", "incident", b["incident_id"], "--location", "Cabot Circus", "--quantity", "2 g",
               "--reason", "wrong street").exit_code == 0
    [inc] = entries(before)
    assert (inc["old_json"]["location"], inc["new_json"]["location"]) == (None, "Cabot Circus")
    assert (inc["old_json"]["quantity"], inc["new_json"]["quantity"]) == (None, "2 g")
    assert verify().exit_code == 0


def test_erasure_leaves_delete_entries_stamped_with_officer_and_reason():
    a = record(surname="Gone", forename="Gina", dob="14/02/1990")
    before = last_seq()
    result = run("--officer", "99", "db", "erase-person", a["person_id"], "--confirm", a["person_id"],
                 "--reason", "SAR-2026-0042")
    assert result.exit_code == 0, result.stderr
    new = entries(before)
    assert {e["entity"] for e in new} == {"person", "incident", "substance", "decision"}
    assert all(e["action"] == "delete" and e["officer"] == "99" and e["reason"] == "SAR-2026-0042"
               and "erase" in e["operation"] for e in new)
    assert all(e["new"] is None for e in new)
    conn = connect()
    try:  # a delete keeps the row's digest and no digest of a row that stands
        raw = conn.execute("SELECT digest, old, old_digest FROM audit_entries WHERE seq > ?", (before,)).fetchall()
    finally:
        conn.close()
    assert raw and all(digest is None and old is None and old_digest for digest, old, old_digest in raw)


def test_the_trail_keeps_no_copy_of_what_the_live_row_holds(busy_history):
    """The lean trail (test_lean_trail converts an old file to it): an insert keeps a digest and no
    copy, an update only the columns it changed, as they were; who, when and why once per transaction."""
    conn = connect()
    try:
        inserts = conn.execute("SELECT count(*), count(old), min(length(digest)), max(length(digest)) "
                               "FROM audit_entries WHERE action = 'i'").fetchone()
        [amended] = entries(operation="amend person", action="update")
        old = conn.execute("SELECT old FROM audit_entries WHERE seq = ?", (amended["seq"],)).fetchone()[0]
        contexts = conn.execute("SELECT count(*) FROM audit_transactions").fetchone()[0]
        total = conn.execute("SELECT count(*) FROM audit_entries").fetchone()[0]
    finally:
        conn.close()
    assert inserts[0] > 0 and inserts[1] == 0 and inserts[2] == inserts[3] == 16
    assert json.loads(old) == {"surname": "Smith", "surname_norm": "smith"}
    assert contexts < total


def test_nothing_is_left_unsealed_and_every_row_has_an_entry(busy_history):
    c = all_counts()
    assert c["audit_pending"] == 0
    conn = connect()
    try:
        missing = conn.execute(
            "SELECT count(*) FROM incidents i WHERE NOT EXISTS (SELECT 1 FROM audit_entries a "
            "WHERE a.entity = 'i' AND a.entity_id = CAST(i.id AS TEXT))").fetchone()[0]
        operations = {r[0] for r in conn.execute("SELECT DISTINCT operation FROM audit_log")}
    finally:
        conn.close()
    assert missing == 0
    for word in ("record", "refer", "accepted", "condition", "void", "amend person", "amend incident", "import"):
        assert any(word in op for op in operations), (word, operations)


# ---- verify on an untouched database and on tampered ones ---------------------------

def test_verify_and_db_check_pass_on_an_untouched_database(busy_history):
    result = verify()
    assert result.exit_code == 0, result.stderr
    assert "ok" in result.stdout
    assert str(last_seq()) in result.stdout.replace(",", "")
    check = run("db", "check")
    assert check.exit_code == 0, check.stderr
    assert "integrity ok" in check.stdout
    # and as a real process
    assert sub("audit", "verify").returncode == 0


@pytest.mark.no_database
def test_verify_on_a_missing_database_is_unusable_and_creates_nothing():
    result = verify()
    assert result.exit_code == 4 and "no database at" in result.stderr
    assert nothing_there()


@plain_file
def test_editing_a_data_row_with_the_shell_is_detected(busy_history):
    tamper("UPDATE people SET surname = 'Forged' WHERE id = 1")
    line = assert_verify_fails("person 1")
    assert "outside diversion" in line
    assert run("db", "check").exit_code == 1


@plain_file
@pytest.mark.parametrize("postgres", [
    "DROP TRIGGER audit_incidents ON incidents",
    pytest.param("ALTER TABLE incidents DISABLE TRIGGER audit_incidents",
                 marks=pytest.mark.postgres_only("SQLite has no ALTER TABLE ... DISABLE TRIGGER"))])
def test_editing_a_data_row_after_dropping_its_audit_trigger_is_detected(busy_history, postgres):
    edit = "UPDATE incidents SET location = 'Elsewhere' WHERE id = 1"
    tamper(f"DROP TRIGGER audit_incidents_update; {edit}", f"{postgres}; {edit}")
    assert_verify_fails("incident 1", "outside diversion")


@plain_file
def test_editing_a_data_row_and_emptying_the_pending_table_is_detected(busy_history):
    tamper("UPDATE referrals SET status = 'completed', closed_at = '2026-01-01T00:00:00', outcome_code = 22 "
           f"WHERE id = '{busy_history['a']['referral_id']}'; DELETE FROM audit_pending;")
    assert_verify_fails(f"referral {busy_history['a']['referral_id']}", "outside diversion")


@plain_file
@pytest.mark.parametrize("table, column, value", [
    ("audit_entries", "person_id", "person_id + 1"), ("audit_entries", "entity_id", "entity_id || '0'"),
    ("audit_entries", "digest", "randomblob(32)"), ("audit_entries", "action", "'b'"),
    ("audit_transactions", "officer", "'9999'"), ("audit_transactions", "reason", "'nothing to see'"),
    ("audit_transactions", "at", "'2020-01-01T00:00:00'"), ("audit_transactions", "operation", "'import'")])
def test_editing_the_trail_after_dropping_its_guard_names_the_transaction(busy_history, table, column, value):
    seq = seq_of("incident", str(num(busy_history["a"]["incident_id"])))
    where = f"seq = {seq}" if table == "audit_entries" else \
        f"last_seq = (SELECT min(last_seq) FROM audit_transactions WHERE last_seq >= {seq})"
    guard = "audit_entries_no_update" if table == "audit_entries" else "audit_transactions_no_change"
    edit = f"UPDATE {table} SET {column} = {value} WHERE {where}"
    tamper(f"DROP TRIGGER {guard}; {edit}",
           f"DROP TRIGGER {guard} ON {table}; {edit.replace('randomblob(32)', 'sha256(digest)')}")
    assert_verify_fails(sealing(seq), "edited")


@plain_file
def test_of_two_edited_transactions_the_first_is_named(busy_history):
    last = last_seq()
    first = last // 3
    edit = f"UPDATE audit_entries SET person_id = 99 WHERE seq IN ({first}, {last - 1})"
    tamper(f"DROP TRIGGER audit_entries_no_update; {edit}", f"{UNGUARD_UPDATE}; {edit}")
    assert_verify_fails(sealing(first))


@plain_file
def test_editing_old_values_is_named_by_their_entry(busy_history):
    [amend] = entries(operation="amend person", action="update")
    edit = f"UPDATE audit_entries SET old = replace(old, 'Smith', 'Brown') WHERE seq = {amend['seq']}"
    tamper(f"DROP TRIGGER audit_entries_no_update; {edit}", f"{UNGUARD_UPDATE}; {edit}")
    assert_verify_fails(f"entry {amend['seq']} (person", "old values")


@plain_file
def test_editing_old_values_and_their_digest_is_detected_by_the_chain(busy_history):
    [amend] = entries(operation="amend person", action="update")
    seq = amend["seq"]
    conn = connect()
    old, salt = conn.execute("SELECT e.old, s.salt FROM audit_entries e JOIN audit_salts s USING (person_id) "
                             "WHERE e.seq = ?", (seq,)).fetchone()
    conn.close()
    forged = old.replace("Smith", "Brown")
    digest = hashlib.sha256(bytes(salt) + forged.encode()).hexdigest()[:32]
    edit = f"UPDATE audit_entries SET old = '{forged}', old_digest = DIGEST WHERE seq = {seq}"
    tamper(f"DROP TRIGGER audit_entries_no_update; {edit.replace('DIGEST', f'x{digest!r}')}",
           f"{UNGUARD_UPDATE}; {edit.replace('DIGEST', f'decode({digest!r}, {chr(39)}hex{chr(39)})')}")
    assert_verify_fails(sealing(seq), "edited")


@plain_file
def test_deleting_a_trail_entry_after_dropping_its_guard_names_its_transaction(busy_history):
    seq = last_seq() // 2
    edit = f"DELETE FROM audit_entries WHERE seq = {seq}"
    tamper(f"DROP TRIGGER audit_entries_no_delete; {edit}", f"{UNGUARD_DELETE}; {edit}")
    assert_verify_fails(sealing(seq))


@plain_file
def test_deleting_the_last_trail_entry_is_detected(busy_history):
    seq = last_seq()
    edit = f"DELETE FROM audit_entries WHERE seq = {seq}"
    tamper(f"DROP TRIGGER audit_entries_no_delete; {edit}", f"{UNGUARD_DELETE}; {edit}")
    assert_verify_fails(sealing(seq))


@plain_file
def test_deleting_the_last_transaction_with_its_entries_is_detected(busy_history):
    edit = ("DELETE FROM audit_entries WHERE seq > (SELECT max(last_seq) FROM audit_transactions WHERE last_seq < "
           "(SELECT max(last_seq) FROM audit_transactions)); "
           "DELETE FROM audit_transactions WHERE last_seq = (SELECT max(last_seq) FROM audit_transactions);")
    tamper(f"DROP TRIGGER audit_entries_no_delete; DROP TRIGGER audit_transactions_no_delete; {edit}",
           f"{UNGUARD_DELETE}; DROP TRIGGER audit_transactions_no_change ON audit_transactions; {edit}")
    # the chain that is left is whole: the rows its entries spoke for are what is caught
    assert_verify_fails("outside diversion")


@plain_file
def test_an_entry_slipped_in_after_the_last_transaction_is_detected(busy_history):
    tamper("INSERT INTO audit_entries (action, entity, entity_id, person_id) VALUES ('i', 'p', '999', 999)",
           # no rowid to number it on the server: the next seq, by hand
           "INSERT INTO audit_entries (seq, action, entity, entity_id, person_id) "
           "SELECT max(seq) + 1, 'i', 'p', '999', 999 FROM audit_entries")
    assert_verify_fails("never sealed")


@plain_file
def test_swapping_two_entries_is_detected_at_their_transaction(busy_history):
    k = last_seq() // 2
    edit = (f"UPDATE audit_entries SET seq = seq + 1000000 WHERE seq IN ({k}, {k + 1}); "
            f"UPDATE audit_entries SET seq = {k + 1} WHERE seq = {k + 1000000}; "
            f"UPDATE audit_entries SET seq = {k} WHERE seq = {k + 1000001};")
    tamper(f"DROP TRIGGER audit_entries_no_update; {edit}", f"{UNGUARD_UPDATE}; {edit}")
    assert_verify_fails(sealing(k))


@plain_file
@pytest.mark.parametrize("sql, postgres, named", [
    ("DROP TRIGGER audit_referral_conditions_delete; DELETE FROM referral_conditions WHERE position = 0",
     "DROP TRIGGER audit_referral_conditions ON referral_conditions; "
     "DELETE FROM referral_conditions WHERE position = 0", "condition"),
    ("DROP TRIGGER audit_incident_co_offences_delete; DELETE FROM incident_co_offences",
     "ALTER TABLE incident_co_offences DISABLE TRIGGER audit_incident_co_offences; DELETE FROM incident_co_offences",
     "co_offence"),
    ("DROP TRIGGER audit_people_delete; PRAGMA foreign_keys = OFF; DELETE FROM people WHERE id = 3",
     # the foreign keys are triggers too on the server: the owner (a superuser here) switches them all off
     "DROP TRIGGER audit_people ON people; ALTER TABLE people DISABLE TRIGGER ALL; DELETE FROM people WHERE id = 3",
     "person 3"),
])
def test_deleting_an_audited_row_after_dropping_its_triggers_is_detected(busy_history, sql, postgres, named):
    if ON_SERVER and "TRIGGER ALL" in postgres and not _superuser():
        # the foreign keys' own triggers are the server's: only a superuser may switch them off, so the
        # owner's delete is refused; the audit trigger it dropped on the way is named
        done = shell(sql, postgres)
        assert done.returncode != 0 and "permission denied" in done.stderr, done.stderr
        assert_verify_fails("audit_people", "dropped outside diversion")
        return
    tamper(sql, postgres)
    assert_verify_fails(named, "deleted outside diversion")


def _superuser() -> bool:
    conn = connect()
    try:
        return conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0]
    finally:
        conn.close()


@plain_file
@pytest.mark.parametrize("sql", [
    "UPDATE audit_transactions SET officer = '9999'",
    "UPDATE audit_entries SET person_id = 7 WHERE seq = 2",
    "UPDATE audit_entries SET old = NULL WHERE old IS NOT NULL",
    "DELETE FROM audit_entries WHERE seq = 2",
    "DELETE FROM audit_entries",
    "DELETE FROM audit_transactions",
])
def test_the_database_itself_refuses_to_change_the_trail(busy_history, sql):
    before = audit_table_dump()
    done = shell(sql)
    assert done.returncode != 0
    assert "append_only" in done.stderr
    assert audit_table_dump() == before
    assert verify().exit_code == 0


@plain_file
def test_blanking_a_living_persons_history_through_a_forged_erasure_is_detected(busy_history):
    tamper("INSERT INTO erasures VALUES (1, '2026-01-01T00:00:00', '1', 'forged'); "  # all the guard allows
           "UPDATE audit_entries SET old = NULL WHERE person_id = 1; DELETE FROM erasures;")
    assert count_rows(None, "people") >= 1
    assert verify().exit_code == 1


@plain_file
def test_editing_the_matching_keys_behind_diversions_back_is_detected(busy_history):
    tamper("UPDATE people SET surname_norm = 'zz', forenames_norm = 'zz' WHERE id = 1; "
           "DELETE FROM audit_pending;")
    assert verify().exit_code == 1


# ---- audit log -------------------------------------------------------------------

def test_audit_log_for_a_person_shows_their_history_and_the_amendment(busy_history):
    a = busy_history["a"]
    result = run("audit", "log", "--person", a["person_id"])
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    change = [line for line in lines if "surname" in line and "->" in line]
    assert change and "'Smith'" in change[0] and "'Smyth'" in change[0]
    assert change[0].index("Smith") < change[0].index("Smyth")
    location = [line for line in lines if "location" in line and "->" in line]
    assert location and location[0].index("Stokes Croft") < location[0].index("Cabot Circus")
    assert any("passport" in line for line in lines)
    assert any(f"referral {a['referral_id']}" in line for line in lines)
    assert not any("Okafor" in line or "Nowak" in line for line in lines)

    data = as_json(run("audit", "log", "--person", a["person_id"], "--json"))
    assert data and {e["person_id"] for e in data} == {num(a["person_id"])}
    assert [e["seq"] for e in data] == sorted(e["seq"] for e in data)
    mine = entries(person_id=num(a["person_id"]))
    assert [e["seq"] for e in data] == [e["seq"] for e in mine]


def test_audit_log_for_a_referral_shows_its_status_changes(busy_history):
    b = busy_history["b"]
    result = run("audit", "log", "--referral", b["referral_id"])
    assert result.exit_code == 0, result.stderr
    assert "'offered' -> 'accepted'" in result.stdout
    assert "'pending' -> 'met'" in result.stdout
    data = as_json(run("audit", "log", "--referral", b["referral_id"], "--json"))
    assert {e["referral_id"] for e in data} == {b["referral_id"]}
    assert busy_history["a"]["referral_id"] not in result.stdout


def test_audit_log_with_a_malformed_id_is_bad_input():
    record()
    assert run("audit", "log", "--person", "not-an-id").exit_code == 2
    assert run("audit", "log", "--referral", "R-??").exit_code == 2


# ---- corrections ---------------------------------------------------------------

def test_void_needs_a_reason_and_writes_nothing_without_one():
    a = record()
    before = all_counts()
    for args in (["void", a["incident_id"]], ["void", a["incident_id"], "--reason", "   "]):
        result = run(*args)
        assert result.exit_code == 2, result.stderr
        assert "reason" in result.stderr
    assert all_counts() == before
    conn = connect()
    assert conn.execute("SELECT voided_at FROM incidents").fetchone()[0] is None
    conn.close()


def test_voided_incident_stays_visible_in_check():
    a = record(surname="Void", forename="Vic", dob="1990-01-01")
    assert run("void", a["incident_id"], "--reason", "wrong person").exit_code == 0
    data = as_json(run("check", a["person_id"], "--json"))
    assert [i["id"] for i in data["incidents"]] == [a["incident_id"]]
    text = run("check", a["person_id"])
    assert a["incident_id"] in text.stdout
    again = run("void", a["incident_id"], "--reason", "twice")
    assert again.exit_code == 1 and "already void" in again.stderr
    assert run("void", "I-999999", "--reason", "x").exit_code == 3
    assert run("void", "nonsense", "--reason", "x").exit_code == 2


def test_void_is_refused_while_a_live_referral_exists():
    a = record("--refer")
    before = all_counts()
    result = run("void", a["incident_id"], "--reason", "wrong")
    assert result.exit_code == 1
    assert a["referral_id"] in result.stderr
    assert all_counts() == before
    assert run("outcome", a["referral_id"], "voided", "--reason", "wrong person").exit_code == 0
    assert run("void", a["incident_id"], "--reason", "wrong person").exit_code == 0
    assert verify().exit_code == 0


def test_amend_needs_a_reason_and_something_to_change():
    a = record()
    before = all_counts()
    assert run("amend", "person", a["person_id"], "--surname", "X").exit_code == 2
    assert run("amend", "person", a["person_id"], "--reason", "nothing").exit_code == 2
    assert run("amend", "incident", a["incident_id"], "--reason", "nothing").exit_code == 2
    assert run("amend", "person", "P-999999", "--surname", "Y", "--reason", "r").exit_code == 3
    assert all_counts() == before


# ---- erasure ---------------------------------------------------------------------

NAME = ("Quetzalcoatl", "Wilhelmina")


def _person_to_erase(*extra: str) -> dict:
    a = record(*extra, "--location", "Zanzibar Wharf", surname=NAME[0], forename=NAME[1], dob="14/02/1990")
    assert run("amend", "person", a["person_id"], "--forename", NAME[1] + " Jane", "--reason", "typo").exit_code == 0
    return a


def test_erasure_needs_confirm_with_the_same_id():
    a = _person_to_erase()
    other = record(surname="Keep", forename="Kim", dob="1980-01-01")
    before = all_counts()
    for extra in ([], ["--confirm", other["person_id"]], ["--confirm", "garbage"]):
        result = run("db", "erase-person", a["person_id"], "--reason", "SAR-1", *extra)
        assert result.exit_code == 2, (extra, result.stderr)
    assert run("db", "erase-person", a["person_id"], "--confirm", a["person_id"]).exit_code == 2  # no reason
    assert all_counts() == before


def test_erasure_refuses_a_person_with_a_diversion_unless_retention_is_overridden():
    a = _person_to_erase("--refer")
    assert run("outcome", a["referral_id"], "accepted").exit_code == 0
    before = all_counts()
    result = run("db", "erase-person", a["person_id"], "--confirm", a["person_id"], "--reason", "SAR-1")
    assert result.exit_code == 1
    assert a["referral_id"] in result.stderr
    assert all_counts() == before
    result = run("db", "erase-person", a["person_id"], "--confirm", a["person_id"], "--reason", "SAR-1",
                 "--override-retention")
    assert result.exit_code == 0, result.stderr
    assert count_rows(None, "referrals") == 0
    assert verify().exit_code == 0


def test_after_erasure_the_person_is_gone_the_trail_verifies_and_no_name_remains(tmp_path):
    a = _person_to_erase()
    keep = record(surname="Keep", forename="Kim", dob="1980-01-01", substance="coke")
    result = run("db", "erase-person", a["person_id"], "--confirm", a["person_id"], "--reason", "SAR-7")
    assert result.exit_code == 0, result.stderr
    assert run("check", a["person_id"]).exit_code == 3
    assert run("check", "--surname", NAME[0], "--forename", NAME[1], "--dob", "14/02/1990").exit_code == 0
    assert verify().exit_code == 0, verify().stderr
    assert run("db", "check").exit_code == 0
    # the other person is untouched
    assert as_json(run("check", keep["person_id"], "--json"))["person"]["surname"] == "Keep"
    conn = connect()
    try:
        pid = num(a["person_id"])
        assert conn.execute("SELECT count(*) FROM people WHERE id = ?", (pid,)).fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM incidents WHERE person_id = ?", (pid,)).fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM decisions WHERE person_id = ?", (pid,)).fetchone()[0] == 0
        snapshots = conn.execute("SELECT old, NULL FROM audit_entries").fetchall()
        mine = conn.execute("SELECT count(*) FROM audit_entries WHERE person_id = ?", (pid,)).fetchone()[0]
    finally:
        conn.close()
    assert mine > 0  # the trail keeps the entries ...
    for old, new in snapshots:  # ... but not the name or the place
        for text in (old or "", new or ""):
            assert NAME[0] not in text and NAME[1] not in text and "Zanzibar" not in text
    # and no name in the bytes of the database file either (a server's data files are not diversion's to
    # read: a deleted row stays in its page until the server vacuums and reuses it)
    for path in () if ON_SERVER else (db_file(), Path(f"{db_file()}-wal")):
        if path.exists():
            raw = path.read_bytes()
            assert NAME[0].encode() not in raw and NAME[1].encode() not in raw, path


def test_the_trail_of_an_erased_person_cannot_confirm_a_guessed_identity():
    from diversion_cli import identity
    from diversion_cli.store.migrations import SNAPSHOTS
    from diversion_cli.store.postgres.schema import snapshot as server_snapshot

    snapshot = server_snapshot("people", "X") if ON_SERVER else SNAPSHOTS["people"][4]  # the same text on both

    a = record(surname=NAME[0], forename=NAME[1], dob="14/02/1990")
    surname_norm, forenames_norm = identity.normalise(NAME[0]), identity.normalise(NAME[1])
    conn = connect()
    try:
        # the person's insert entry says when (to within a second or two) and by whom: all a guesser needs
        at, officer, stored, salt = conn.execute(
            "SELECT t.at, t.officer, e.digest, s.salt FROM audit_entries e JOIN audit_salts s USING (person_id) "
            "JOIN audit_transactions t ON t.last_seq >= e.seq WHERE e.entity = 'p' AND e.action = 'i' "
            "ORDER BY t.last_seq LIMIT 1").fetchone()
        sealed = datetime.fromisoformat(at)
        guesses = [conn.execute(
            f"SELECT {snapshot} FROM (SELECT ? AS surname, ? AS forenames, ? AS dob, NULL AS pnc, "
            f"NULL AS gender, NULL AS ethnicity, ? AS created_at, ? AS created_by, ? AS surname_norm, "
            f"? AS forenames_norm) AS X",
            (NAME[0], NAME[1], "1990-02-14", (sealed - timedelta(seconds=back)).isoformat(timespec="seconds"),
             officer, surname_norm, forenames_norm)).fetchone()[0] for back in range(10)]
    finally:
        conn.close()
    # with the person's salt, the guesser confirms the snapshot exactly ...
    assert stored in {hashlib.sha256(salt + g.encode()).digest()[:16] for g in guesses}
    assert run("db", "erase-person", a["person_id"], "--confirm", a["person_id"], "--reason", "SAR-9").exit_code == 0
    conn = connect()
    try:
        digests = {r[0] for r in conn.execute("SELECT old_digest FROM audit_entries WHERE entity = 'p' "
                                              "AND action = 'd' UNION SELECT digest FROM audit_entries "
                                              "WHERE entity = 'p' AND action = 'i'")}
        salts = conn.execute("SELECT count(*) FROM audit_salts").fetchone()[0]
    finally:
        conn.close()
    # ... but the erasure took the salt, and the digests left behind cannot confirm a guess without it
    assert salts == 0 and digests  # (the row deleted is the row inserted: one digest)
    assert not digests & {hashlib.sha256(g.encode()).digest()[:16] for g in guesses}


# ---- db status / check / newer schema ----------------------------------------------

def test_db_status_shows_schema_version_and_counts(busy_history):
    from helpers import schema_version

    LATEST = schema_version()
    data = as_json(run("db", "status", "--json"))
    assert data["schema_version"] == LATEST
    direct = all_counts()
    for table in ("people", "incidents", "referrals", "decisions", "audit_entries", "audit_transactions"):
        assert data["counts"][table] == direct[table], table
    text = run("db", "status")
    assert text.exit_code == 0
    assert f"schema version: {LATEST}" in text.stdout
    assert f"incidents:      {direct['incidents']}" in text.stdout
    assert f"audit_entries:  {direct['audit_entries']:,}" in text.stdout


@pytest.mark.no_database
def test_db_status_without_a_database_creates_nothing():
    assert run("db", "status").exit_code == 4
    assert nothing_there()


def _file_state(path: Path | str) -> tuple:
    """The file's bytes (and its write-ahead log's), or on a server every row of every table."""
    if ON_SERVER:
        return all_rows()
    return tuple(p.read_bytes() if p.exists() else None for p in (path, Path(f"{path}-wal")))


@plain_file
@pytest.mark.parametrize("args", [
    ["db", "status"], ["db", "check"], ["audit", "verify"], ["check", "P-000001"],
    ["record", "--surname", "New", "--forename", "Nell", "--dob", "1990-01-01", "--substance", "weed"],
    ["outcome", "R-2026-000001", "accepted"], ["db", "backup", "{tmp}/copy.db"],
])
def test_a_database_from_a_newer_diversion_is_refused_and_left_untouched(tmp_path, args):
    if ON_SERVER and args[:2] == ["db", "backup"]:
        pytest.skip("db backup is refused on a server whatever its schema (test_backup.py)")
    record("--refer")
    tamper("INSERT INTO migrations VALUES (999, 'from the future', '2030-01-01T00:00:00')")
    before = _file_state(db_file())
    result = run(*[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert result.exit_code == 4, (result.stdout, result.stderr)
    assert "upgrade" in result.stderr.lower()
    assert "Traceback" not in result.stderr
    assert _file_state(db_file()) == before
    assert not (tmp_path / "copy.db").exists()


@plain_file
def test_a_newer_database_is_refused_by_a_real_process_too():
    from helpers import schema_version

    LATEST = schema_version()
    record()
    tamper(f"INSERT INTO migrations VALUES ({LATEST + 1}, 'next', '2030-01-01T00:00:00')")
    before = _file_state(db_file())
    done = sub("db", "status")
    assert done.returncode == 4 and "upgrade" in done.stderr.lower()
    assert _file_state(db_file()) == before


@plain_file
@pytest.mark.sqlite_only("a file's journal mode: a server has none to leave")
def test_a_newer_database_not_in_wal_mode_is_left_untouched():
    record()
    tamper("INSERT INTO migrations VALUES (999, 'future', '2030-01-01T00:00:00'); PRAGMA journal_mode = DELETE;")
    before = _file_state(db_file())
    result = run("db", "status")
    assert result.exit_code == 4
    assert _file_state(db_file()) == before


# ---- backup and restore ----------------------------------------------------------

BACKUP_IS_A_FILES = ("db backup/restore copy a SQLite file; a server's backups are pg_dump's "
                     "(test_backup tests the refusal)")

WRITER = r"""
import os, sys, time
from diversion_cli.operations import RecordRequest, Workspace, record_incident
stop, ready = sys.argv[1], sys.argv[2]
n, limit = 0, time.monotonic() + 60
letters = "abcdefghijklmnopqrstuvwxyz"
while not os.path.exists(stop) and time.monotonic() < limit:
    ws = Workspace(officer="4242")
    name = "".join(letters[(n // 26 ** k) % 26] for k in range(4))
    record_incident(ws, RecordRequest(surname="Loop", forename="W" + name, dob=f"19{50 + n % 40}-01-0{1 + n % 9}",
                                      substances=["weed"], location=f"loop {n}", new_person=True))
    ws.close()
    n += 1
    if n == 3:
        open(ready, "w").close()
print(n)
"""


@pytest.mark.sqlite_only(BACKUP_IS_A_FILES)
def test_backup_while_another_process_writes_is_private_consistent_and_verifies(tmp_path):
    record()
    stop, ready = tmp_path / "stop", tmp_path / "ready"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(stop), str(ready)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        limit = time.monotonic() + 30
        while not ready.exists():
            assert writer.poll() is None, writer.communicate()
            assert time.monotonic() < limit, "the writer never got going"
            time.sleep(0.01)
        before = count_rows(None, "incidents")
        target = tmp_path / "backup.db"
        done = sub("db", "backup", target)
        time.sleep(0.3)
    finally:
        stop.touch()
        out, err = writer.communicate(timeout=60)
    assert writer.returncode == 0, err
    assert done.returncode == 0, done.stderr
    assert count_rows(None, "incidents") > before  # the writer really was writing around the backup
    assert (target.stat().st_mode & 0o777) == 0o600
    conn = connect(target)
    try:
        assert [r[0] for r in conn.execute("PRAGMA integrity_check")] == ["ok"]
    finally:
        conn.close()
    backed_up = count_rows(target, "incidents")
    assert backed_up >= before
    assert count_rows(target, "audit_pending") == 0
    result = run("--db", str(target), "audit", "verify")
    assert result.exit_code == 0, result.stderr
    assert sub("--db", str(target), "audit", "verify").returncode == 0


@pytest.mark.sqlite_only(BACKUP_IS_A_FILES)
def test_backup_onto_an_existing_file_is_refused_and_leaves_it_alone(tmp_path):
    record()
    target = tmp_path / "exists.db"
    target.write_bytes(b"precious")
    result = run("db", "backup", target)
    assert result.exit_code == 2
    assert "exists" in result.stderr
    assert target.read_bytes() == b"precious"


@pytest.mark.sqlite_only(BACKUP_IS_A_FILES)
@pytest.mark.no_database
def test_backup_of_a_missing_database_is_unusable_and_creates_nothing(tmp_path):
    assert run("db", "backup", tmp_path / "b.db").exit_code == 4
    assert not db_file().exists() and not (tmp_path / "b.db").exists()


@pytest.mark.sqlite_only(BACKUP_IS_A_FILES)
def test_restore_brings_back_the_backed_up_state(tmp_path):
    first = record(surname="Before", forename="Bea", dob="1990-01-01")
    target = tmp_path / "backup.db"
    assert run("db", "backup", target).exit_code == 0
    later = record(surname="After", forename="Al", dob="1991-01-01", substance="coke")
    assert run("check", later["person_id"]).exit_code == 0

    refused = run("db", "restore", target)
    assert refused.exit_code == 2
    assert "--yes" in refused.stderr
    assert run("check", later["person_id"]).exit_code == 0  # nothing replaced

    result = run("db", "restore", target, "--yes")
    assert result.exit_code == 0, result.stderr
    assert run("check", later["person_id"]).exit_code == 3
    assert as_json(run("check", first["person_id"], "--json"))["person"]["surname"] == "Before"
    assert count_rows(None, "incidents") == 1
    assert verify().exit_code == 0
    # and the restored database takes new writes and still verifies
    record(surname="Again", forename="Ann", dob="1992-01-01")
    assert verify().exit_code == 0


@pytest.mark.sqlite_only(BACKUP_IS_A_FILES)
@plain_file
def test_restore_refuses_a_backup_whose_trail_was_tampered_with(tmp_path):
    record()
    target = tmp_path / "backup.db"
    assert run("db", "backup", target).exit_code == 0
    record(surname="Stay", forename="Sam", dob="1991-01-01")
    assert shell("UPDATE people SET surname = 'Forged' WHERE id = 1", db=target).returncode == 0
    before = all_counts()
    result = run("db", "restore", target, "--yes")
    assert result.exit_code == 1 and "does not hold what it held" in result.stderr  # its record of what it held
    assert all_counts() == before
    # a forger who also rewrites that record is stopped by the backup's audit trail
    from diversion_cli.store.backup import digest, held

    conn = connect(target)
    try:
        conn.execute("DELETE FROM audit_pending")
        conn.execute(f"PRAGMA user_version = {digest(held(conn))}")
    finally:
        conn.close()
    result = run("db", "restore", target, "--yes")
    assert result.exit_code == 1 and "audit trail is broken" in result.stderr, result.stderr
    assert all_counts() == before
    assert run("db", "restore", tmp_path / "nothing.db", "--yes").exit_code == 3


# ---- verify must stay usable on a real-sized trail ---------------------------------

def test_verify_of_two_bulk_imports_takes_seconds_not_minutes(tmp_path):
    # one synthetic population in two files (two unrelated ones would meet people who are near
    # matches of each other, which an import rightly refuses to divert)
    whole = tmp_path / "gen.csv"
    subprocess.run([sys.executable, str(REPO / "sample_data" / "generate.py"), "--people", "3600",
                    "--seed", "11", "--out", str(whole)], check=True, capture_output=True)
    header, *rows = whole.read_text(encoding="utf-8").splitlines(keepends=True)
    for part in (rows[: len(rows) // 2], rows[len(rows) // 2:]):
        half = tmp_path / "half.csv"
        half.write_text(header + "".join(part), encoding="utf-8")
        result = run("import", half)
        assert result.exit_code == 0, result.stderr
    started = time.monotonic()
    result = verify()
    elapsed = time.monotonic() - started
    assert result.exit_code == 0
    assert elapsed < 4.0, f"audit verify took {elapsed:.1f} s"


def test_erasing_a_person_with_a_contract_blanks_every_snapshot_of_theirs(busy_history):
    b = busy_history["b"]
    result = run("db", "erase-person", b["person_id"], "--confirm", b["person_id"], "--reason", "court order",
                 "--override-retention")
    assert result.exit_code == 0, result.stderr
    assert verify().exit_code == 0
    conn = connect()
    try:
        left = conn.execute("SELECT seq, entity FROM audit_entries WHERE old LIKE '%Okafor%' "
                            "OR (person_id = ? AND old IS NOT NULL)", (num(b["person_id"]),)).fetchall()
        salted = conn.execute("SELECT count(*) FROM audit_salts WHERE person_id = ?", (num(b["person_id"]),)).fetchone()
        conditions = conn.execute("SELECT count(*) FROM referral_conditions").fetchone()[0]
    finally:
        conn.close()
    assert [tuple(r) for r in left] == []
    assert salted[0] == 0
    assert conditions == 0
    assert run("audit", "log", "--referral", b["referral_id"]).exit_code == 0


@pytest.mark.parametrize("args", [["--person", "P-000999"], ["--referral", "R-2026-000999"]])
def test_audit_log_for_an_id_never_on_record_is_not_found(args):
    record()
    result = run("audit", "log", *args)
    assert result.exit_code == 3 and result.stderr.startswith("error: no ")


@plain_file
def test_a_row_changed_behind_the_triggers_backs_is_never_laundered_by_a_later_change():
    out = record("--refer")
    edit = f"UPDATE referrals SET provider = 'Forged & Co' WHERE id = '{out['referral_id']}'"
    if ON_SERVER:  # the trigger switched off, the referral changed, the trigger on again
        tamper("", f"ALTER TABLE referrals DISABLE TRIGGER audit_referrals; {edit}; "
                   "ALTER TABLE referrals ENABLE TRIGGER audit_referrals;")
    else:  # the trigger dropped, the referral changed, the trigger put back exactly as it was
        conn = connect()
        trigger = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'audit_referrals_update'").fetchone()[0]
        conn.close()
        tamper(f"DROP TRIGGER audit_referrals_update; {edit}; {trigger};")
    before = all_counts()
    result = run("outcome", out["referral_id"], "accepted")
    assert result.exit_code == 4, (result.stdout, result.stderr)
    assert f"referral {out['referral_id']} differs from its last audited state" in result.stderr
    assert all_counts() == before
    trail = entries()  # the trail never takes the forged row as its own, nor shows it as what was written
    assert "Forged" not in str(trail)
    assert all(e["note"] and "changed outside diversion" in e["note"] for e in trail
               if e["entity_id"] == out["referral_id"])
    shown = run("audit", "log", "--referral", out["referral_id"])
    assert shown.exit_code == 0 and "Forged" not in shown.stdout and "changed outside diversion" in shown.stdout
    assert_verify_fails(f"referral {out['referral_id']}", "outside diversion")
