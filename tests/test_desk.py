"""The custody desk at a terminal (issue 13): record asks for every fact the decision
rests on and offers the referral there and then; check prompts and searches by name;
incidents are listed and shown; an incident's facts are amended and decided again.
Prompts are driven through a real pseudo-terminal."""

from __future__ import annotations

import os
import signal
import sys
import time
from datetime import datetime, timedelta

import pytest

from helpers import as_json, assert_one_line_error, connect, count_rows, record, run
from test_interactive import Terminal

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")


def _describe_person(term: Terminal, surname: str = "Ahmed", forename: str = "Sara") -> None:
    term.expect("PNC ID")
    term.send("")
    term.expect("Surname")
    term.send(surname)
    term.expect("Forename")
    term.send(forename)
    term.expect("Date of birth")
    term.send("14/02/1990")
    term.expect("Gender")
    term.send("F")


def test_record_asks_every_fact_shows_ethnicity_meanings_and_refers_at_the_desk(db_path):
    term = Terminal("record", "--when", "now", "--location", "Broadmead")
    _describe_person(term)
    term.expect("ethnicity code (Enter to skip)")
    assert "A2  Asian – Pakistani" in term.seen and "NS  Not stated" in term.seen
    term.send("A2")
    term.expect("Substance")
    term.send("weed")
    term.expect("Quantity")
    term.send("3.5 g")
    term.expect("Is intent to supply suspected?")
    term.send("n")
    term.expect("Another offence")
    term.send("")
    term.expect("Refer now to Drug Education Programme (adult) (Example Drug Service), to complete by")
    term.send("y")
    assert term.finish() == 0, term.seen
    assert "offered: Drug Education Programme (adult)" in term.seen and "deadline:" in term.seen
    conn = connect(db_path)
    incident = conn.execute("SELECT quantity, supply_suspected FROM incidents").fetchone()
    referral = conn.execute("SELECT scheme, status FROM referrals").fetchone()
    conn.close()
    assert tuple(incident) == ("3.5 g", 0) and tuple(referral) == ("dep-adult", "offered")


def test_supply_and_other_offences_asked_at_the_desk_decide_the_case(db_path):
    term = Terminal("record", "--when", "now", "--location", "Broadmead", "--ethnicity", "W1")
    _describe_person(term, "Baker", "Tom")
    term.expect("Substance")
    term.send("coke")
    term.expect("Quantity")
    term.send("")
    term.expect("Is intent to supply suspected? [y/N]")
    term.send("maybe")
    term.expect("answer y or n")                    # our words, and asked again
    term.send("y")
    term.expect("Another offence")
    term.send("theft from a shop")
    term.expect("Any other offence")
    term.send("criminal damage")
    term.expect("Any other offence")
    term.send("")
    assert term.finish() == 0, term.seen
    assert "NOT ELIGIBLE" in term.seen and "SUPPLY_SUSPECTED" in term.seen and "Refer now" not in term.seen
    conn = connect(db_path)
    offences = [r[0] for r in conn.execute("SELECT description FROM incident_co_offences ORDER BY position")]
    supply = conn.execute("SELECT supply_suspected FROM incidents").fetchone()[0]
    conn.close()
    assert offences == ["theft from a shop", "criminal damage"] and supply == 1
    assert count_rows(db_path, "referrals") == 0


def test_declining_the_referral_at_the_desk_writes_the_incident_only(db_path):
    term = Terminal("record", "--surname", "Cole", "--forename", "Ann", "--gender", "F", "--ethnicity", "W1",
                    "--substance", "weed", "--when", "now", "--location", "Broadmead")
    term.expect("PNC ID")
    term.send("")
    term.expect("Date of birth")
    term.send("14/02/1990")
    term.expect("Refer now")
    term.send("n")
    assert term.finish() == 0, term.seen
    assert "diversion refer I-000001" in term.seen
    assert count_rows(db_path, "incidents") == 1 and count_rows(db_path, "referrals") == 0


def test_a_record_given_as_flags_at_a_terminal_is_not_asked_to_refer(db_path):
    term = Terminal("record", "--surname", "Cole", "--forename", "Ann", "--dob", "1990-02-14",
                    "--substance", "weed", "--when", "now", "--location", "Broadmead")
    assert term.finish() == 0, term.seen
    assert "ELIGIBLE" in term.seen and "Refer now" not in term.seen
    assert count_rows(db_path, "referrals") == 0


# ---- check: at a terminal, and by part of a name -----------------------------------------

def test_check_at_a_terminal_asks_for_the_name_and_gives_the_verdict(db_path):
    record("--refer", surname="Smith", forename="John", dob="14/02/1990")
    term = Terminal("check")
    term.expect("Surname")
    term.send("Smith")
    term.expect("Forename")
    term.send("John")
    term.expect("Date of birth")
    term.send("14/02/1990")
    term.expect("= Wed 14 Feb 1990")
    assert term.finish() == 1, term.seen             # not eligible: an open referral
    assert "NOT ELIGIBLE" in term.seen and "OPEN_REFERRAL" in term.seen


def test_check_at_a_terminal_with_only_a_surname_lists_candidates(db_path):
    record(surname="Smith", forename="John", dob="14/02/1990")
    term = Terminal("check")
    term.expect("Surname")
    term.send("smith")
    term.expect("Forename")
    term.send("")
    term.expect("Check which?")
    assert "P-000001  SMITH, John  born Wed 14 Feb 1990" in term.seen and "last incident I-000001" in term.seen
    term.send("p-000001")
    assert term.finish() == 0, term.seen
    assert "ELIGIBLE" in term.seen and "Incidents (1):" in term.seen


def test_check_at_a_terminal_can_stop_at_the_list(db_path):
    record(surname="Smith", forename="John", dob="14/02/1990")
    term = Terminal("check")
    term.expect("Surname")
    term.send("Smith")
    term.expect("Forename")
    term.send("Jo")
    term.expect("Date of birth")
    term.send("")
    term.expect("Check which?")
    term.send("")
    assert term.finish() == 0, term.seen
    assert "Incidents (" not in term.seen


def test_check_by_surname_lists_candidates_with_birth_date_pnc_and_last_incident(db_path):
    record("--pnc", "1990/0123456K", surname="Smith", forename="John", dob="14/02/1990")
    record("--when", "2026-11-01 10:00", surname="Smith", forename="Joanne", dob="01/03/1985")
    record("--when", "2026-11-20 22:15", surname="Smith", forename="Joanne", dob="01/03/1985", substance="coke")
    record(surname="Smith", forename="Peter", dob="02/02/1970")
    record(surname="Smithson", forename="John", dob="14/02/1990")
    result = run("check", "--surname", "SMITH", "--forename", "jo")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2                           # John and Joanne; not Peter, not Smithson
    assert lines[0].startswith("P-000002  SMITH, Joanne  born Fri 1 Mar 1985")
    assert "last incident I-000003 Fri 20 Nov 2026 22:15" in lines[0]
    assert lines[1].startswith("P-000001  SMITH, John") and "PNC 1990/0123456K" in lines[1]
    listed = as_json(run("check", "--surname", "Smith", "--json"))
    assert [c["id"] for c in listed["candidates"]] == ["P-000002", "P-000001", "P-000003"]
    assert listed["candidates"][1]["pnc"] == "1990/0123456K"
    assert listed["candidates"][0]["last_incident"] == {"id": "I-000003", "occurred_at": "2026-11-20T22:15:00"}
    assert listed["more"] is False
    born = as_json(run("check", "--surname", "Smith", "--dob", "02/02/1970", "--json"))
    assert [c["id"] for c in born["candidates"]] == ["P-000003"]


def test_check_by_a_surname_nobody_has_is_not_found(db_path):
    result = run("check", "--surname", "Nobody")
    assert result.exit_code == 3 and result.stdout == ""
    assert "No one on record fits that name." in result.stderr


def test_check_by_forename_alone_is_bad_input(db_path):
    result = run("check", "--forename", "John")
    assert result.exit_code == 2
    assert_one_line_error(result, "surname")


# ---- incidents and incident ----------------------------------------------------------------

def test_incidents_lists_recent_ones_newest_first_and_filters(db_path):
    env_other = {"DIVERSION_OFFICER": "5678"}
    record("--when", "2026-11-29 23:40", "--location", "Stokes Croft", surname="Able", forename="Ann")
    assert run("record", "--surname", "Baker", "--forename", "Bob", "--dob", "1980-01-01", "--substance", "coke",
               "--when", "2026-11-30 01:10", "--location", "Cabot Circus", "--supply-suspected",
               env=env_other).exit_code == 0
    record("--when", "2026-10-01 12:00", "--location", "STOKES CROFT", surname="Cole", forename="Cat")
    listed = as_json(run("incidents", "--since", "2026-11-01", "--json"))
    assert [i["id"] for i in listed] == ["I-000002", "I-000001"]      # newest first; October's left out
    assert listed[0]["name"] == "Baker, Bob" and listed[0]["eligible_at_record"] is False
    assert listed[0]["recorded_by"] == "5678" and listed[1]["recorded_by"] == "1234"
    mine = as_json(run("incidents", "--since", "2026-09-01", "--officer", "5678", "--json"))
    assert [i["id"] for i in mine] == ["I-000002"]
    there = as_json(run("incidents", "--since", "2026-09-01", "--location", "stokes croft", "--json"))
    assert [i["id"] for i in there] == ["I-000001", "I-000003"]
    text = run("incidents", "--since", "2026-11-01")
    assert text.exit_code == 0
    assert text.stdout.splitlines()[0].startswith("I-000002  Mon 30 Nov 2026 01:10  P-000002  Baker, Bob  "
                                                  "cocaine (A)  at Cabot Circus  by 5678  not eligible")


def test_incidents_default_to_the_last_week(db_path):
    record("--when", "now")
    assert run("incidents", "--json").stdout.count('"id": "I-') == 1
    empty = run("incidents", "--officer", "9999")
    assert empty.exit_code == 0 and empty.stdout == "" and "No incidents match." in empty.stderr


def test_incidents_refuses_bad_filters(db_path):
    result = run("incidents", "--since", "31/02/2026")
    assert result.exit_code == 2
    assert_one_line_error(result, "since")
    result = run("incidents", "--officer", "not a collar")
    assert result.exit_code == 2
    assert_one_line_error(result, "officer")


def test_incident_shows_the_person_facts_decision_and_referral(db_path):
    made = record("--refer", "--quantity", "2 g", "--location", "Broadmead", "--when", "now")
    shown = run("incident", made["incident_id"])
    assert shown.exit_code == 0, shown.stderr
    out = shown.stdout
    assert "P-000001  SMITH, John" in out and "cannabis (B), 2 g" in out and "location:    Broadmead" in out
    assert "current decision (record" in out and "ELIGIBLE: Eligible for Drug Education Programme (adult)" in out
    assert f"Referral {made['referral_id']}  dep-adult  offered" in out
    view = as_json(run("incident", made["incident_id"], "--json"))
    assert view["person"]["id"] == "P-000001" and view["quantity"] == "2 g"
    assert [d["eligible"] for d in view["decisions"]] == [True]
    assert view["decisions"][0]["reasons"][0]["code"] == "ELIGIBLE"
    assert [r["id"] for r in view["referrals"]] == [made["referral_id"]]


def test_incident_unknown_or_malformed_id(db_path):
    missing = run("incident", "I-000042")
    assert missing.exit_code == 3 and "no incident I-000042" in missing.stderr
    bad = run("incident", "X-1")
    assert bad.exit_code == 2


# ---- amend incident: the facts the decision rests on -----------------------------------------

def _decisions(db_path, incident_id: int = 1) -> list[tuple[int, str]]:
    conn = connect(db_path)
    rows = [(r[0], r[1]) for r in conn.execute("SELECT eligible, reasons FROM decisions WHERE incident_id = ? "
                                                "ORDER BY id", (incident_id,))]
    conn.close()
    return rows


def test_amending_supply_decides_again_beside_the_old_decision(db_path):
    made = record("--refer")
    result = run("amend", "incident", made["incident_id"], "--supply-suspected", "--reason", "deal bags found")
    assert result.exit_code == 0, result.stderr
    assert "I-000001 amended (supply_suspected): deal bags found" in result.stdout
    assert "Decided again: NOT ELIGIBLE (was ELIGIBLE)" in result.stdout and "SUPPLY_SUSPECTED" in result.stdout
    assert f"referral {made['referral_id']} is offered but the incident is no longer eligible" in result.stderr
    decisions = _decisions(db_path)
    assert [eligible for eligible, _ in decisions] == [1, 0]          # the old decision is kept as it was
    assert "DECIDED_AGAIN" in decisions[1][1] and "deal bags found" in decisions[1][1]
    view = as_json(run("incident", made["incident_id"], "--json"))
    assert view["supply_suspected"] is True and view["eligible_at_record"] is False
    back = run("amend", "incident", "I-000001", "--no-supply-suspected", "--reason", "bags were empty",
               "--json")
    assert back.exit_code == 0, back.stderr
    again = as_json(back)["decision"]
    assert again["eligible"] is True and again["was_eligible"] is False   # its own referral does not count
    assert [e for e, _ in _decisions(db_path)] == [1, 0, 1]


def test_amending_substances_and_other_offences(db_path):
    made = record(substance="weed")
    result = run("amend", "incident", made["incident_id"], "--substance", "crack", "--substance", "weed",
                 "--co-offence", "theft from a shop", "--reason", "search record corrected", "--json")
    assert result.exit_code == 0, result.stderr
    amended = as_json(result)
    assert amended["changed"] == ["substances", "co_offences"]
    assert amended["decision"]["eligible"] is False
    assert [r["code"] for r in amended["decision"]["reasons"]][:1] == ["CO_OFFENCE"]
    view = as_json(run("incident", "I-000001", "--json"))
    assert [(s["substance"], s["drug_class"]) for s in view["substances"]] == [("crack", "A"), ("cannabis", "B")]
    assert view["co_offences"] == ["theft from a shop"]
    cleared = as_json(run("amend", "incident", "I-000001", "--no-co-offence", "--reason", "theft was someone "
                          "else's", "--json"))
    assert cleared["changed"] == ["co_offences"] and cleared["decision"]["eligible"] is True
    assert as_json(run("incident", "I-000001", "--json"))["co_offences"] == []
    log = run("audit", "log", "--person", "P-000001")
    assert "amend incident         delete   co_offence 1/0" in log.stdout


def test_amending_only_the_location_takes_no_new_decision(db_path):
    made = record("--location", "Broadmead")
    result = run("amend", "incident", made["incident_id"], "--location", "Cabot Circus", "--reason", "wrong street")
    assert result.exit_code == 0 and "Decided again" not in result.stdout
    assert len(_decisions(db_path)) == 1


def test_amend_incident_refusals_write_nothing(db_path):
    made = record()
    before = _decisions(db_path)
    no_reason = run("amend", "incident", made["incident_id"], "--supply-suspected")
    assert no_reason.exit_code == 2
    assert_one_line_error(no_reason, "reason")
    unknown = run("amend", "incident", made["incident_id"], "--substance", "weeed", "--reason", "x")
    assert unknown.exit_code == 2 and "did you mean 'weed'" in unknown.stderr
    legal = run("amend", "incident", made["incident_id"], "--substance", "legal high", "--reason", "x")
    assert legal.exit_code == 1 and "not a controlled drug" in legal.stderr
    same = run("amend", "incident", made["incident_id"], "--substance", "weed", "--reason", "x")
    assert same.exit_code == 2 and "nothing to change" in same.stderr
    both = run("amend", "incident", made["incident_id"], "--co-offence", "theft", "--no-co-offence",
               "--reason", "x")
    assert both.exit_code == 2
    missing = run("amend", "incident", "I-000099", "--supply-suspected", "--reason", "x")
    assert missing.exit_code == 3
    assert _decisions(db_path) == before and count_rows(db_path, "incident_co_offences") == 0


def test_a_supervisor_approves_a_co_offence_on_amendment(db_path):
    made = record(dob="14/02/2010", surname="Young", forename="Yan")    # youth scheme: co-offence needs approval
    result = as_json(run("amend", "incident", made["incident_id"], "--co-offence", "criminal damage",
                         "--reason", "added from the custody record", "--json"))
    assert result["decision"]["eligible"] is False
    assert "SUPERVISOR_DECISION_NEEDED" in [r["code"] for r in result["decision"]["reasons"]]
    approved = as_json(run("amend", "incident", made["incident_id"], "--co-offence", "criminal damage (minor)",
                           "--supervisor", "5678", "--reason", "supervisor reviewed", "--json"))
    assert approved["decision"]["eligible"] is True
    assert "SUPERVISOR_APPROVED" in [r["code"] for r in approved["decision"]["reasons"]]


# ---- what a tester found at the desk ------------------------------------------------------

def test_a_void_incident_cannot_be_referred(db_path):
    made = record(surname="Young", forename="Yan", dob="14/02/2010", substance="weed")
    assert run("amend", "incident", made["incident_id"], "--co-offence", "theft", "--reason", "x").exit_code == 0
    assert run("void", made["incident_id"], "--reason", "recorded twice").exit_code == 0
    result = run("refer", made["incident_id"], "--supervisor", "5678")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [f"error: {made['incident_id']} is void"]   # before any rule's reasons
    assert count_rows(db_path, "referrals") == 0


def test_a_supervisor_is_another_officer_and_their_approval_is_kept(db_path):
    youth = ("--co-offence", "criminal damage")                # youth scheme: a co-offence needs approval
    myself = run("record", "--surname", "Young", "--forename", "Yan", "--dob", "14/02/2010", "--substance",
                 "weed", *youth, "--refer", "--supervisor", "1234")
    assert myself.exit_code == 1
    assert_one_line_error(myself, "supervisor: 1234 is the officer making the change")
    assert count_rows(db_path, "incidents") == 0
    made = record(*youth, "--supervisor", "5678", surname="Young", forename="Yan", dob="14/02/2010")
    assert made["eligible"] is True
    kept = [r for r in made["reasons"] if r["code"] == "SUPERVISOR_APPROVED"]
    assert len(kept) == 1 and "5678" in kept[0]["message"]
    assert "SUPERVISOR_APPROVED" in _decisions(db_path)[0][1]
    refused = run("refer", made["incident_id"], "--supervisor", "1234")
    assert refused.exit_code == 1
    assert_one_line_error(refused, "supervisor: 1234 is the officer making the change")
    offered = as_json(run("refer", made["incident_id"], "--supervisor", "5678", "--json"))
    assert "SUPERVISOR_APPROVED" in [r["code"] for r in offered["reasons"]]
    trail = as_json(run("audit", "log", "--person", made["person_id"], "--json"))
    reasons = {e["operation"]: e["reason"] for e in trail}
    assert "supervisor 5678" in reasons["record"] and "supervisor 5678" in reasons["refer"]


@pytest.mark.parametrize("interrupt", ["ctrl-d", "ctrl-c"])
def test_interrupting_the_referral_question_says_the_incident_is_recorded(db_path, interrupt):
    term = Terminal("record", "--surname", "Cole", "--forename", "Ann", "--gender", "F", "--ethnicity", "W1",
                    "--substance", "weed", "--when", "now", "--location", "Broadmead")
    term.expect("PNC ID")
    term.send("")
    term.expect("Date of birth")
    term.send("14/02/1990")
    term.expect("Refer now")
    time.sleep(0.5)  # the officer's key comes once the question waits for an answer
    if interrupt == "ctrl-d":
        os.write(term.master, b"\x04")
    else:
        term.proc.send_signal(signal.SIGINT)        # what Ctrl-C at the officer's keyboard sends
    assert term.finish() == 0, term.seen
    assert "nothing was written" not in term.seen
    assert "I-000001 is recorded, not referred; refer later with: diversion refer I-000001" in term.seen
    assert count_rows(db_path, "incidents") == 1 and count_rows(db_path, "referrals") == 0


def test_amending_when_to_after_the_recording_is_refused(db_path):
    made = record("--when", "2026-11-28 14:30")
    soon = (datetime.now() + timedelta(minutes=3)).strftime("%Y-%m-%d %H:%M")   # not yet "in the future"
    later = run("amend", "incident", made["incident_id"], "--when", soon, "--reason", "typo")
    assert later.exit_code == 2
    assert_one_line_error(later, "when")
    assert "after the incident was recorded" in later.stderr
    assert as_json(run("incident", made["incident_id"], "--json"))["occurred_at"] == "2026-11-28T14:30:00"
    assert len(_decisions(db_path)) == 1


def test_amending_when_into_the_same_arrest_is_refused_unless_stated_different(db_path):
    first = record("--when", "2026-11-28 14:30")
    second = record("--when", "2026-11-28 18:00", "--quantity", "2 g")
    itself = run("amend", "incident", first["incident_id"], "--when", "2026-11-28 14:35", "--reason", "custody "
                 "record time")
    assert itself.exit_code == 0, itself.stderr                       # its own old time is no duplicate
    same = run("amend", "incident", second["incident_id"], "--when", "2026-11-28 14:45", "--reason", "typo")
    assert same.exit_code == 1
    assert_one_line_error(same, "likely the same arrest as I-000001")
    assert "amend it with --not-duplicate" in same.stderr
    assert as_json(run("incident", second["incident_id"], "--json"))["occurred_at"] == "2026-11-28T18:00:00"
    stated = run("amend", "incident", second["incident_id"], "--when", "2026-11-28 14:45", "--not-duplicate",
                 "--reason", "typo", "--json")
    assert stated.exit_code == 0, stated.stderr
    kept = [r for r in as_json(stated)["decision"]["reasons"] if r["code"] == "NOT_DUPLICATE"]
    assert len(kept) == 1 and "different incident from I-000001" in kept[0]["message"]
    trail = as_json(run("audit", "log", "--person", second["person_id"], "--json"))
    assert any("different incident from I-000001" in (e["reason"] or "") for e in trail
               if e["operation"] == "amend incident")


def _codes(result) -> list[str]:
    return [r["code"] for r in as_json(result)["decision"]["reasons"]]


def test_deciding_again_keeps_what_officers_stated_for_the_old_decision(db_path):
    youth = ("--co-offence", "criminal damage", "--supervisor", "5678")   # youth scheme: approval needed
    record("--when", "2026-11-28 14:30", *youth, surname="Young", forename="Yan", dob="14/02/2010")
    made = record("--when", "2026-11-28 14:50", "--not-duplicate", *youth, surname="Young", forename="Yan",
                  dob="14/02/2010")
    assert made["eligible"] is True
    stated = {r["code"]: r["message"] for r in made["reasons"] if r["code"] in ("NOT_DUPLICATE",
                                                                                "SUPERVISOR_APPROVED")}
    assert len(stated) == 2
    supply = run("amend", "incident", made["incident_id"], "--supply-suspected", "--reason", "bags", "--json")
    assert supply.exit_code == 0, supply.stderr
    back = run("amend", "incident", made["incident_id"], "--no-supply-suspected", "--reason", "empty", "--json")
    assert back.exit_code == 0, back.stderr
    assert as_json(back)["decision"]["eligible"] is True                 # the approval still stands
    kept = {r["code"]: r["message"] for r in as_json(back)["decision"]["reasons"] if r["code"] in stated}
    assert kept == stated and _codes(back).count("SUPERVISOR_APPROVED") == 1
    other = run("amend", "incident", made["incident_id"], "--co-offence", "theft", "--reason", "x", "--json")
    assert other.exit_code == 0, other.stderr
    assert as_json(other)["decision"]["eligible"] is False               # approved offences, not these
    assert "NOT_DUPLICATE" in _codes(other) and "SUPERVISOR_APPROVED" not in _codes(other)


def test_amend_incident_refuses_supply_suspected_and_not_together(db_path):
    made = record()
    both = run("amend", "incident", made["incident_id"], "--supply-suspected", "--no-supply-suspected",
               "--reason", "x")
    assert both.exit_code == 2
    assert_one_line_error(both, "supply-suspected")
    assert len(_decisions(db_path)) == 1


@pytest.mark.no_database
def test_amend_incident_help_says_an_unset_when_is_unchanged():
    shown = run("amend", "incident", "--help")
    assert shown.exit_code == 0
    when = shown.stdout[shown.stdout.index("--when"):shown.stdout.index("--location")]
    assert "unchanged if not given" in " ".join(when.split()) and "default now" not in when


def test_amend_incident_refuses_a_supervisor_the_change_does_not_need(db_path):
    made = record("--quantity", "2 g")
    for change in (("--quantity", "5g"), ("--supply-suspected",)):        # no decision, or no other offence
        needless = run("amend", "incident", made["incident_id"], *change, "--supervisor", "5678", "--reason", "x")
        assert needless.exit_code == 2
        assert_one_line_error(needless, "supervisor")
    view = as_json(run("incident", made["incident_id"], "--json"))
    assert view["quantity"] == "2 g" and view["supply_suspected"] is False and len(_decisions(db_path)) == 1


def test_a_date_of_birth_too_young_to_record_is_asked_again_at_once(db_path):
    term = Terminal("record", "--surname", "Cole", "--forename", "Ann", "--gender", "F", "--ethnicity", "W1",
                    "--substance", "weed", "--when", "now", "--location", "Broadmead")
    term.expect("PNC ID")
    term.send("")
    term.expect("Date of birth")
    term.send(f"14/02/{datetime.now().year - 6}")
    term.expect("below the age of criminal responsibility")
    term.send("14/02/1990")
    term.expect("Refer now")
    assert term.seen.count("Date of birth") == 2                    # asked again, not refused at the end
    term.send("n")
    assert term.finish() == 0, term.seen
    assert count_rows(db_path, "incidents") == 1


def test_an_empty_substance_at_the_desk_says_one_is_required(db_path):
    term = Terminal("record", "--surname", "Cole", "--forename", "Ann", "--dob", "14/02/1990", "--when", "now",
                    "--location", "Broadmead")
    term.expect("Substance")
    term.send("")
    term.expect("an answer is required here")
    term.send("weed")
    term.expect("Quantity")
    term.send("")
    term.expect("Is intent to supply suspected?")
    term.send("")
    term.expect("Another offence")
    term.send("")
    term.expect("Refer now")
    term.send("n")
    assert term.finish() == 0, term.seen
    assert count_rows(db_path, "incidents") == 1


def test_a_malformed_incident_id_is_named_in_plain_english(db_path):
    bad = run("incident", "X-1")
    assert bad.exit_code == 2
    assert_one_line_error(bad, "incident_id: 'X-1' is not an incident id (like I-000123)")
    assert "is not a person id" in run("check", "X-1").stderr


@pytest.mark.no_database
def test_report_help_does_not_call_by_repeatable():
    shown = run("report", "--help")
    assert shown.exit_code == 0
    by = " ".join(shown.stdout[shown.stdout.index("--by DIMENSION"):shown.stdout.index("--format FORMAT")].split())
    assert "one dimension" in by and "repeatable" not in by
    assert "[repeatable]" in " ".join(run("amend", "incident", "--help").stdout.split())   # a list option still is
