"""Trust under attack (issue 15): what an adversary got through, tried again
through real commands: ids reused after an erasure, a schema edited behind
verify's back, a rewritten chain, and the anchors that catch it."""

from __future__ import annotations

import pytest

from pathlib import Path

from helpers import ON_SERVER, as_json, connect, count_rows, counts, db_file, record, refer, run, tamper


def _on_server(conn) -> bool:
    return getattr(conn, "engine", "sqlite") == "postgres"


def _snapshot(conn, table: str) -> str:
    """The SQL of a row X's snapshot text, as the audit trigger digests it, on this engine."""
    if _on_server(conn):
        from diversion_cli.store.postgres.schema import snapshot

        return snapshot(table, "X")
    from diversion_cli.store.migrations import TRAIL

    return f"CAST({TRAIL[table][3]} AS BLOB)"


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


# ---- verify does not trust the schema -------------------------------------------------

SCHEMA_EDITS = {
    "one-shot trigger dropped": ("DROP TRIGGER referrals_one_shot", "trigger referrals_one_shot is missing"),
    "one-open index dropped": ("DROP INDEX referrals_one_open", "index referrals_one_open is missing"),
    "audit trigger dropped": ("DROP TRIGGER audit_referrals_update", "trigger audit_referrals_update is missing"),
    "one-shot trigger disabled": ("ALTER TABLE referrals DISABLE TRIGGER referrals_one_shot",
                                  "trigger referrals_one_shot on referrals is disabled"),
    "audit trigger disabled": ("ALTER TABLE referrals DISABLE TRIGGER audit_referrals",
                               "trigger audit_referrals on referrals is disabled"),
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
# the same edits in PostgreSQL's words, by the owner of the tables with psql (the triggers are named per table)
SERVER_EDITS = {
    "one-shot trigger dropped": ("DROP TRIGGER referrals_one_shot ON referrals",
                                 "trigger referrals_one_shot on referrals is missing"),
    "audit trigger dropped": ("DROP TRIGGER audit_referrals ON referrals",
                              "trigger audit_referrals on referrals is missing"),
    "extra trigger": ("CREATE TRIGGER sneaky AFTER INSERT ON people FOR EACH ROW WHEN (false) "
                      "EXECUTE FUNCTION diversion_refuse('never')",
                      "trigger sneaky on people is not one diversion defines"),
}
ON_ONE_ENGINE = {"one-shot trigger disabled": pytest.mark.postgres_only("SQLite has no DISABLE TRIGGER"),
                 "audit trigger disabled": pytest.mark.postgres_only("SQLite has no DISABLE TRIGGER")}


@pytest.mark.plain_file
@pytest.mark.parametrize("edit", [pytest.param(e, marks=ON_ONE_ENGINE.get(e, ())) for e in SCHEMA_EDITS],
                         ids=list(SCHEMA_EDITS))
def test_verify_names_a_schema_changed_outside_diversion(edit):
    out = record(surname="Schema", forename="Sid", dob="1980-01-01")
    refer(out["incident_id"])
    sql, named = (SERVER_EDITS if ON_SERVER else SCHEMA_EDITS).get(edit, SCHEMA_EDITS[edit])
    tamper(sql)
    result = run("audit", "verify")
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert named in result.stderr


@pytest.mark.plain_file
@pytest.mark.parametrize("sql", [
    "UPDATE erasures SET reason = 'routine tidy-up', erased_by = '1'",
    "INSERT INTO erasures VALUES (42, '2026-01-01T00:00:00', '1234', 'made up')",
])
def test_an_erasure_edited_or_forged_outside_diversion_is_named(sql):
    record(surname="Gone", forename="Gil", dob="1980-01-01")
    _erase("P-000001")
    assert run("audit", "verify").exit_code == 0
    tamper(sql)
    result = run("audit", "verify")
    assert result.exit_code == 1 and "erasure of person" in result.stderr


# ---- a consistent rewrite of the chain, and the anchor that catches it --------------------

def _without_guards(conn, tables: list[str], edit) -> None:
    """What an adversary with the file can do: drop the guard triggers, edit, put them back
    exactly as they were (so the schema check has nothing to see). On a server, the owner of the
    tables switches their triggers off and on again."""
    if _on_server(conn):
        for table in tables:
            conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        try:
            edit(conn)
        finally:
            for table in tables:
                conn.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
        return
    guards = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name IN (%s)"
                          % ",".join("?" * len(tables)), tables).fetchall()
    for name, _ in guards:
        conn.execute(f"DROP TRIGGER {name}")
    edit(conn)
    for _, sql in guards:
        conn.execute(sql)


def _rechain(conn, first_seq: int) -> None:
    """Recompute every transaction hash from the one sealing `first_seq` on: no secret stands in the way."""
    from diversion_cli.store.audit import GENESIS, _texts, chain_hash

    transaction_text, entries_text = _texts(conn)  # the engine's texts, as sealing builds them

    prev = conn.execute("SELECT hash FROM audit_transactions WHERE last_seq < ? ORDER BY last_seq DESC LIMIT 1",
                        (first_seq,)).fetchone()
    prev = prev[0] if prev else GENESIS
    rows = conn.execute(
        f"SELECT t.last_seq, {transaction_text}, {entries_text.format(after='t.after', upto='t.last_seq')} "
        f"FROM (SELECT *, lag(last_seq, 1, 0) OVER (ORDER BY last_seq) AS after FROM audit_transactions) t "
        f"WHERE t.last_seq >= ? ORDER BY t.last_seq", (first_seq,)).fetchall()
    for last_seq, text, entries in rows:
        prev = chain_hash(prev, text, entries)
        conn.execute("UPDATE audit_transactions SET hash = ? WHERE last_seq = ?", (prev, last_seq))


def test_a_rewritten_chain_verifies_alone_but_not_against_an_anchor_taken_before(tmp_path):
    record(surname="Truth", forename="Tom", dob="1980-01-01")
    record(surname="Other", forename="Olga", dob="1981-01-01", substance="coke")
    anchors = tmp_path / "anchors.log"
    taken = run("audit", "anchor", "--append-to", anchors)
    assert taken.exit_code == 0 and taken.stdout.startswith("diversion-anchor ")
    assert anchors.read_text() == taken.stdout

    conn = connect()
    first = conn.execute("SELECT min(seq) FROM audit_entries WHERE entity = 'p' AND entity_id = '1'").fetchone()[0]

    def forge(c):
        c.execute("UPDATE people SET surname = 'Forged' WHERE id = 1")
        c.execute(f"UPDATE audit_entries SET digest = (SELECT diversion_digest(s.salt, {_snapshot(c, 'people')}) "
                  f"FROM people X JOIN audit_salts s ON s.person_id = X.id WHERE X.id = 1) WHERE seq = ?", (first,))
        _rechain(c, first)

    _without_guards(conn, ["people", "audit_entries", "audit_transactions"], forge)
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
        c.execute("DELETE FROM audit_entries WHERE seq >= ?", (cut_from,))
        c.execute("DELETE FROM audit_transactions WHERE last_seq >= ?", (cut_from,))
        c.execute("DELETE FROM audit_salts WHERE person_id = 2")

    _without_guards(conn, ["people", "incidents", "incident_substances", "decisions", "audit_entries",
                           "audit_transactions", "audit_salts"], cut)
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
@pytest.mark.sqlite_only("a server's text column refuses bytes that are not text (and NUL) whatever the triggers")
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

    record(surname="First", forename="Fay", dob="1980-01-01")
    record(surname="Second", forename="Sam", dob="1981-01-01")
    _erase("P-000002")
    if ON_SERVER:  # the table's triggers off, as its owner can (the server's equivalent of the shell's setting)
        tamper("", "ALTER TABLE issued_ids DISABLE TRIGGER USER; UPDATE issued_ids SET last = 0; "
                   "ALTER TABLE issued_ids ENABLE TRIGGER USER")
    else:
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
    record(surname="First", forename="Fay", dob="1980-01-01")
    _erase("P-000001")
    tamper("DROP INDEX audit_entries_person")
    result = run("audit", "verify")
    assert result.exit_code == 1 and "index audit_entries_person is missing" in result.stderr


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


# ---- what an adversary got past the lean trail, closed -----------------------------------

ALL_AUDITED = ["people", "incidents", "incident_substances", "incident_co_offences", "decisions", "referrals",
               "referral_conditions", "audit_entries", "audit_transactions", "audit_salts", "audit_conversions",
               "issued_ids", "bulk_load"]


def test_a_reason_cannot_swallow_an_entry_nor_an_entry_hide_before_the_first(tmp_path):
    from diversion_cli.store.audit import ENTRY_TEXT

    first = record("--refer", surname="Honest", forename="Hal", dob="1980-01-01")
    victim = record(surname="Victim", forename="Vic", dob="1981-01-01")
    anchors = tmp_path / "anchors.log"
    assert run("audit", "anchor", "--append-to", anchors).exit_code == 0
    conn = connect()
    seq, tx = conn.execute("SELECT e.seq, t.last_seq FROM audit_entries e JOIN audit_transactions t "
                           "ON t.last_seq = (SELECT min(last_seq) FROM audit_transactions WHERE last_seq >= e.seq) "
                           "WHERE e.entity = 'p' AND e.entity_id = '2'").fetchone()
    referral = first["referral_id"]

    def absorb(c):  # a diversion for the victim, hidden as an entry numbered before the first
        c.execute("INSERT INTO referrals SELECT 'R-2026-000050', 2, 2, scheme, pathway, one_shot_group, "
                  "lookback_since, 'completed', provider, appointment, deadline, offered_at, offered_by, "
                  "offered_at, offered_at, 22, reason, updated_at, updated_by FROM referrals WHERE id = ?", (referral,))
        entry_text = ("diversion_entry_text(e.seq, e.action, e.entity, e.entity_id, e.person_id, e.digest, "
                      "e.old_digest)") if _on_server(c) else ENTRY_TEXT
        entry = c.execute(f"SELECT {entry_text} FROM audit_entries e WHERE seq = ?", (seq,)).fetchone()[0]
        c.execute("UPDATE audit_transactions SET reason = coalesce(reason, '') || ? WHERE last_seq = ?", (entry, tx))
        c.execute(f"UPDATE audit_entries SET seq = -1, entity = 'r', entity_id = 'R-2026-000050', digest = "
                  f"(SELECT diversion_digest(s.salt, {_snapshot(c, 'referrals')}) FROM referrals X "
                  f"JOIN audit_salts s ON s.person_id = X.person_id WHERE X.id = 'R-2026-000050') WHERE seq = ?",
                  (seq,))

    try:
        _without_guards(conn, ALL_AUDITED, absorb)
    except Exception as exc:  # the database itself refuses an entry numbered 0 or below
        assert ("violates check constraint" if ON_SERVER else "CHECK constraint failed") in str(exc)
        conn.close()
        return
    conn.close()
    assert run("audit", "verify").exit_code == 1
    assert run("audit", "verify", "--anchors", anchors).exit_code == 1
    assert victim


def test_a_forged_conversion_record_does_not_silence_an_anchor(tmp_path):
    record(surname="Truth", forename="Tom", dob="1980-01-01")
    anchors = tmp_path / "anchors.log"
    assert run("audit", "anchor", "--append-to", anchors).exit_code == 0
    conn = connect()
    first = conn.execute("SELECT min(seq) FROM audit_entries WHERE entity = 'p' AND entity_id = '1'").fetchone()[0]

    def forge(c):
        c.execute("UPDATE people SET surname = 'Forged' WHERE id = 1")
        c.execute(f"UPDATE audit_entries SET digest = (SELECT diversion_digest(s.salt, {_snapshot(c, 'people')}) "
                  f"FROM people X JOIN audit_salts s ON s.person_id = X.id WHERE X.id = 1) WHERE seq = ?",
                  (first,))
        c.execute("INSERT INTO audit_conversions VALUES (999, 'ab', '2026-01-01T00:00:00')")
        _rechain(c, first)

    _without_guards(conn, ALL_AUDITED, forge)
    conn.close()
    result = run("audit", "verify", "--anchors", anchors)
    assert result.exit_code == 1, (result.stdout, result.stderr)


def test_a_decision_resting_on_a_row_changed_behind_the_triggers_is_refused():
    out = record("--supply-suspected", surname="Sup", forename="Sam", dob="1980-01-01")
    assert out["eligible"] is False
    conn = connect()
    _without_guards(conn, ["incidents"], lambda c: c.execute("UPDATE incidents SET supply_suspected = 0"))
    conn.close()
    result = run("refer", out["incident_id"])
    assert result.exit_code == 4 and "changed outside diversion" in result.stderr
    assert count_rows(None, "referrals") == 0


def test_an_id_freed_behind_the_triggers_is_not_taken_again_by_the_next_record():
    record(surname="One", forename="Ona", dob="1980-01-01")
    record(surname="Two", forename="Tia", dob="1981-01-01")
    conn = connect()
    _without_guards(conn, ["decisions"], lambda c: c.execute("DELETE FROM decisions WHERE id = 2"))
    conn.close()
    before = counts()
    result = run("record", "--surname", "Three", "--forename", "Theo", "--dob", "1982-01-01", "--substance", "weed")
    if ON_SERVER:  # the server's identity column never hands an id out twice: the record takes a new one
        assert result.exit_code == 0, result.stderr
        conn = connect()
        taken = [r[0] for r in conn.execute("SELECT id FROM decisions ORDER BY id")]
        conn.close()
        assert 2 not in taken and len(taken) == before["decisions"] + 1
    else:
        assert result.exit_code == 4 and "decision 2" in result.stderr and "deleted outside diversion" in result.stderr
        assert counts() == before
    verify = run("audit", "verify")
    assert verify.exit_code == 1 and "decision 2" in verify.stderr and "deleted outside diversion" in verify.stderr


def test_a_desk_that_waited_for_another_desks_upgrade_still_seals_its_writes():
    from datetime import datetime

    from diversion_cli.store import Store

    record(surname="Before", forename="Bea", dob="1980-01-01")

    class LateDesk(Store):
        """Read the schema version before the other desk's upgrade committed."""
        told = False

        def schema_version(self) -> int:
            if not LateDesk.told:
                LateDesk.told = True
                return 8
            return super().schema_version()

    store = LateDesk.open(db_file(), write=True)
    with store.transaction("record", "1234"):
        store.insert_person(surname="Late", forenames="Lou", dob="1990-01-01", pnc=None, gender=None, ethnicity=None,
                            surname_norm="late", forenames_norm="lou", at=datetime.now(),
                            officer="1234")
    store.close()
    assert count_rows(None, "audit_pending") == 0
    assert run("audit", "verify").exit_code == 0


@pytest.mark.sqlite_only("the write-ahead log is a SQLite file's; a server's is its own")
def test_erasure_empties_the_write_ahead_log_or_says_another_desk_holds_it():
    a = record(surname="Gonewal", forename="Gina", dob="1980-01-01")
    b = record(surname="Heldwal", forename="Hugo", dob="1981-01-01")
    result = _erase(a["person_id"])
    assert "write-ahead log" not in result.stderr
    wal = Path(f"{db_file()}-wal")
    assert not wal.exists() or b"Gonewal" not in wal.read_bytes()
    assert b"Gonewal" not in db_file().read_bytes()
    reader = connect()
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM people").fetchone()  # another desk in the middle of a read
    try:
        result = run("db", "erase-person", b["person_id"], "--confirm", b["person_id"], "--reason", "SAR-2",
                     env={"DIVERSION_BUSY_TIMEOUT": "0.2"})
    finally:
        reader.close()
    assert result.exit_code == 0 and "write-ahead log" in result.stderr


@pytest.mark.parametrize("args", [["--person", ""], ["--referral", ""], ["--limit", "99999999999999999999"]])
def test_audit_log_with_an_empty_filter_or_an_absurd_limit_is_bad_input(args):
    record()
    result = run("audit", "log", *args)
    assert result.exit_code == 2 and "Traceback" not in result.stderr


def test_an_anchor_of_an_empty_trail_is_not_counted_as_checked(tmp_path):
    record()
    anchors = tmp_path / "anchors.log"
    anchors.write_text("diversion-anchor 2026-01-01T00:00:00 entry=0 hash=" + "0" * 64 + "\n")
    result = as_json(run("audit", "verify", "--anchors", anchors, "--json"))
    assert result["anchors_checked"] == 0


def test_audit_log_says_when_a_row_was_deleted_behind_the_triggers():
    out = record("--refer")
    conn = connect()
    _without_guards(conn, ["referrals", "referral_conditions"],
                    lambda c: c.execute("DELETE FROM referrals WHERE id = ?", (out["referral_id"],)))
    conn.close()
    shown = as_json(run("audit", "log", "--referral", out["referral_id"], "--json"))
    assert shown and all(e["note"] and "outside diversion" in e["note"] for e in shown)


def _snapshot_of_person_1() -> str:
    from diversion_cli.store.audit import _trail

    conn = connect()
    try:
        _code, _ident, _person, snap = _trail(conn, "people")
        return conn.execute(f"SELECT {snap} FROM people t WHERE t.id = 1").fetchone()[0]
    finally:
        conn.close()


PENDING = "INSERT INTO audit_pending (action, entity, entity_id, person_id, before, old, new) VALUES "


@pytest.mark.plain_file
@pytest.mark.parametrize("forgery", [
    "('d', 'p', '1', 1, '{\"surname\":\"X\"}', '{\"surname\":\"X\"}', NULL)",  # a delete of someone on record
    "('u', 'p', '1', 1, '{\"surname\":\"Smith\"}', '{\"surname\":\"Smith\",\"pnc\":\"99/123456X\"}', {now})",
    "('i', 'p', '1', 1, NULL, NULL, {now})",  # an insert of a row the trail says exists
    "('d', 'z', '1', 1, '{{}}', '{{\"secret\":\"x\"}}', NULL)",  # an entity no table has
    "('b', 'p', '1', 1, NULL, '{{\"surname\":\"Evil\"}}', {now})",  # a baseline: a migration's alone
], ids=["delete", "lying-old-values", "insert-over-existing", "unknown-entity", "baseline"])
def test_a_waiting_change_written_by_hand_is_never_accepted_into_the_trail(forgery):
    """A forged entry in audit_pending is named by verify; `audit accept` refuses to seal it (the
    adversary's forms, each once sealed), so the trail never records a change that did not happen."""
    record(surname="Still", forename="Here", dob="1980-01-01")
    now = "'" + _snapshot_of_person_1().replace("'", "''") + "'"
    tamper(PENDING + forgery.replace("{now}", now).replace("{{", "{").replace("}}", "}"))
    assert run("audit", "verify").exit_code == 1
    before = counts(None, ("people", "audit_entries", "audit_transactions", "audit_pending"))
    accepted = run("audit", "accept", "--reason", "DBA fix")
    assert accepted.exit_code == 4 and "waiting changes by hand" in accepted.stderr, accepted.stderr
    assert counts(None, ("people", "audit_entries", "audit_transactions", "audit_pending")) == before


@pytest.mark.plain_file
def test_an_entry_added_to_the_trail_by_hand_is_never_sealed_into_an_officers_transaction():
    """An entry inserted straight into audit_entries at the next number waited for the next
    honest write to chain it under that officer's name; now every write refuses while it waits."""
    record(surname="Still", forename="Here", dob="1980-01-01")
    tamper("INSERT INTO audit_entries (seq, action, entity, entity_id, person_id, digest, old, old_digest) "
           "SELECT max(seq) + 1, 'u', 'p', '1', 1, NULL, '{\"surname\":\"Forged\"}', NULL FROM audit_entries")
    before = counts(None, ("incidents", "audit_entries", "audit_transactions"))
    result = run("record", "--surname", "Next", "--forename", "Nia", "--dob", "1985-05-05", "--substance", "weed")
    assert result.exit_code == 4 and "added to the audit trail outside diversion" in result.stderr
    assert counts(None, ("incidents", "audit_entries", "audit_transactions")) == before
    assert run("audit", "verify").exit_code == 1
