"""The custody desk at a terminal (issue 13): record asks for every fact the decision
rests on and offers the referral there and then; check prompts and searches by name;
incidents are listed and shown; an incident's facts are amended and decided again.
Prompts are driven through a real pseudo-terminal."""

from __future__ import annotations

import json
import sys

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
    term.expect("Is intent to supply suspected?")
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
    term = Terminal("record", "--surname", "Cole", "--forename", "Ann", "--dob", "1990-02-14", "--gender", "F",
                    "--ethnicity", "W1", "--substance", "weed", "--when", "now", "--location", "Broadmead")
    term.expect("Refer now")
    term.send("n")
    assert term.finish() == 0, term.seen
    assert "diversion refer I-000001" in term.seen
    assert count_rows(db_path, "incidents") == 1 and count_rows(db_path, "referrals") == 0
