"""A referral's whole life through the CLI: offer, accept or decline,
complete or fail, contracts and their conditions, letters, the work queue,
and the force's config deciding the one-shot look-back."""

from __future__ import annotations

import re
import stat
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from helpers import as_json, connect, count_rows, counts, record, refer, referral_row, run

import diversion_cli

SHIPPED_SCHEMES = Path(diversion_cli.__file__).parent / "data" / "schemes.toml"
REFERRAL_ID = re.compile(r"R-\d{4}-\d{6}")


def _status(referral_id: str) -> dict:
    result = run("referral", referral_id, "--json")
    assert result.exit_code == 0, result.stderr
    return as_json(result)


def _check(person_id: str, *config: str):
    return run(*config, "check", person_id, "--json")


# ---- the happy path --------------------------------------------------------

def test_record_refer_accept_complete_and_completion_letter():
    out = record(surname="Smith", forename="John")
    offer = refer(out["incident_id"])
    assert REFERRAL_ID.fullmatch(offer["id"])
    assert offer["scheme"] == "dep-adult"
    assert offer["provider"] and offer["deadline"] and offer["requirements"]
    assert _status(offer["id"])["status"] == "offered"

    accepted = run("outcome", offer["id"], "accepted", "--json")
    assert accepted.exit_code == 0, accepted.stderr
    assert as_json(accepted)["referral"]["status"] == "accepted"

    done = run("outcome", offer["id"], "completed")
    assert done.exit_code == 0, done.stderr
    assert "22" in done.stdout
    row = referral_row(offer["id"])
    assert (row["status"], row["outcome_code"]) == ("completed", 22)
    assert row["diverted_at"] and row["closed_at"]

    letter = run("letter", offer["id"], "--kind", "completion")
    assert letter.exit_code == 0, letter.stderr
    assert "dropped" in letter.stdout
    assert offer["id"] in letter.stdout
    assert "John Smith" in letter.stdout

    # the one shot is now used
    assert _check(out["person_id"]).exit_code == 1


def test_completion_letter_html_escapes_the_name(tmp_path):
    out = record(surname="<b>Evil</b>", forename="Amy & Co")
    offer = refer(out["incident_id"])
    run("outcome", offer["id"], "accepted")
    run("outcome", offer["id"], "completed")

    target = tmp_path / "letter.html"
    result = run("letter", offer["id"], "--kind", "completion", "--output", str(target))
    assert result.exit_code == 0, result.stderr
    html = target.read_text(encoding="utf-8")
    assert "<b>Evil</b>" not in html
    assert "&lt;b&gt;Evil&lt;/b&gt;" in html
    assert "Amy &amp; Co" in html
    assert "dropped" in html and offer["id"] in html
    assert stat.S_IMODE(target.stat().st_mode) == 0o600

    printed = run("letter", offer["id"], "--kind", "completion", "--format", "html")
    assert printed.exit_code == 0
    assert "<b>Evil" not in printed.stdout and "&lt;b&gt;Evil" in printed.stdout


def test_record_refer_in_one_step_prints_the_referral_id():
    result = run("record", "--surname", "Khan", "--forename", "Aisha", "--dob", "1995-07-01",
                 "--substance", "coke", "--refer")
    assert result.exit_code == 0, result.stderr
    ids = REFERRAL_ID.findall(result.stdout)
    assert ids, result.stdout
    row = referral_row(ids[0])
    assert row is not None and row["status"] == "offered"

    as_script = run("record", "--json", "--surname", "Jones", "--forename", "Bo", "--dob", "1996-07-01",
                    "--substance", "mandy", "--refer")
    data = as_json(as_script)
    assert REFERRAL_ID.fullmatch(data["referral_id"])
    assert data["referral_id"] != ids[0]
    assert count_rows(None, "referrals") == 2


def test_record_refer_when_not_eligible_offers_nothing():
    out = record()
    offer = refer(out["incident_id"])
    run("outcome", offer["id"], "accepted")
    run("outcome", offer["id"], "failed")
    result = run("record", "--json", "--person", out["person_id"], "--substance", "coke", "--refer")
    data = as_json(result)
    assert data["eligible"] is False and data["referral_id"] is None
    assert count_rows(None, "referrals") == 1


# ---- declined and failed ---------------------------------------------------

def test_declined_offer_leaves_the_person_eligible_for_a_new_incident():
    out = record()
    first = refer(out["incident_id"])
    declined = run("outcome", first["id"], "declined", "--reason", "wants to go to court")
    assert declined.exit_code == 0, declined.stderr

    assert _check(out["person_id"]).exit_code == 0
    again = record("--person", out["person_id"], substance="coke")
    assert again["eligible"] is True
    second = refer(again["incident_id"])
    assert second["id"] != first["id"]
    assert referral_row(first["id"])["status"] == "declined"
    assert referral_row(second["id"])["status"] == "offered"


def test_failed_diversion_uses_the_one_shot():
    out = record()
    offer = refer(out["incident_id"])
    run("outcome", offer["id"], "accepted")
    failed = run("outcome", offer["id"], "failed", "--json")
    assert failed.exit_code == 0, failed.stderr
    data = as_json(failed)
    assert data["referral"]["status"] == "failed"
    assert data["outcome_code"] == 1
    assert data["returned_to_normal_process"] is True

    check = _check(out["person_id"])
    assert check.exit_code == 1
    assert "ONE_SHOT_USED" in [r["code"] for r in as_json(check)["reasons"]]

    later = record("--person", out["person_id"], substance="coke")
    before = counts()
    refused = run("refer", later["incident_id"])
    assert refused.exit_code == 1
    assert "ONE_SHOT_USED" in refused.stderr
    assert counts() == before

    failure_letter = run("letter", offer["id"], "--kind", "failure")
    assert failure_letter.exit_code == 0 and offer["id"] in failure_letter.stdout


def test_open_referral_blocks_a_second_one():
    out = record()
    refer(out["incident_id"])
    later = record("--person", out["person_id"], substance="coke")
    refused = run("refer", later["incident_id"])
    assert refused.exit_code == 1
    assert "OPEN_REFERRAL" in refused.stderr
    again = run("refer", out["incident_id"])
    assert again.exit_code == 1
    assert count_rows(None, "referrals") == 1


# ---- contracts (Checkpoint) -----------------------------------------------

def _contract() -> tuple[dict, dict]:
    out = record(surname="Lee", forename="Sam", dob="1985-05-05")
    offer = refer(out["incident_id"], "--scheme", "checkpoint")
    assert offer["scheme"] == "checkpoint"
    assert len(offer["conditions"]) >= 2
    assert run("outcome", offer["id"], "accepted").exit_code == 0
    return out, offer


def _contract_run_its_course(tmp_path) -> tuple[str, str]:
    """(person id, referral id) of a contract accepted five months ago: every condition is due."""
    start = (datetime.now() - timedelta(days=150)).strftime("%Y-%m-%d 10:00")
    rows = tmp_path / "contract.csv"
    rows.write_text("surname,forenames,dob,occurred_at,substances,scheme,referral_status,offered_at,accepted_at\n"
                    f"Lee,Sam,1985-05-05,{start},cocaine,checkpoint,accepted,{start},{start}\n", encoding="utf-8")
    assert run("import", rows).exit_code == 0
    person = as_json(run("check", "--surname", "Lee", "--forename", "Sam", "--dob", "1985-05-05", "--json"))
    return person["person"]["id"], person["referrals"][0]["id"]


def test_contract_breach_fails_the_contract_with_outcome_1():
    out, offer = _contract()
    keys = [c["key"] for c in offer["conditions"]]
    assert keys[1] == "drug-awareness"  # due within 42 days: may be met early
    met = run("condition", offer["id"], keys[1], "met", "--json")
    assert met.exit_code == 0, met.stderr
    assert as_json(met)["closed_as"] is None
    assert _status(offer["id"])["status"] == "accepted"

    breached = run("condition", offer["id"], keys[0], "breached", "--note", "arrested again", "--json")
    assert breached.exit_code == 0, breached.stderr
    assert as_json(breached)["closed_as"] == "failed"
    view = _status(offer["id"])
    assert (view["status"], view["outcome_code"]) == ("failed", 1)
    assert [c["status"] for c in view["conditions"][:2]] == ["breached", "met"]
    assert _check(out["person_id"]).exit_code == 1


def test_contract_completes_with_outcome_22_when_every_condition_is_met(tmp_path):
    _, referral_id = _contract_run_its_course(tmp_path)
    keys = [c["key"] for c in _status(referral_id)["conditions"]]
    # completing by hand before the conditions are met is refused
    early = run("outcome", referral_id, "completed")
    assert early.exit_code == 1
    assert _status(referral_id)["status"] == "accepted"
    for n, key in enumerate(keys, 1):
        # conditions can be named by key or by number
        result = run("condition", referral_id, str(n) if n == 1 else key, "met")
        assert result.exit_code == 0, result.stderr
    view = _status(referral_id)
    assert (view["status"], view["outcome_code"]) == ("completed", 22)
    letter = run("letter", referral_id, "--kind", "completion")
    assert letter.exit_code == 0 and "dropped" in letter.stdout


def test_condition_on_a_workshop_referral_is_refused():
    out = record()
    offer = refer(out["incident_id"])
    run("outcome", offer["id"], "accepted")
    result = run("condition", offer["id"], "1", "met")
    assert result.exit_code == 1
    assert referral_row(offer["id"])["status"] == "accepted"


# ---- illegal moves ---------------------------------------------------------

def test_completed_referral_cannot_go_back_to_accepted():
    out = record()
    offer = refer(out["incident_id"])
    run("outcome", offer["id"], "accepted")
    run("outcome", offer["id"], "completed")
    before = referral_row(offer["id"])
    result = run("outcome", offer["id"], "accepted")
    assert result.exit_code == 1
    assert "completed" in result.stderr and "closed" in result.stderr
    assert "Traceback" not in result.stderr
    assert referral_row(offer["id"]) == before


def test_offered_referral_cannot_jump_to_completed_and_the_allowed_moves_are_named():
    out = record()
    offer = refer(out["incident_id"])
    result = run("outcome", offer["id"], "completed")
    assert result.exit_code == 1
    for allowed in ("accepted", "declined", "voided"):
        assert allowed in result.stderr
    assert referral_row(offer["id"])["status"] == "offered"


def test_outcome_dated_before_the_offer_is_bad_input():
    out = record()
    offer = refer(out["incident_id"])
    before = referral_row(offer["id"])
    yesterday = (datetime.now() - timedelta(days=1)).strftime("%Y-%m-%d %H:%M")
    result = run("outcome", offer["id"], "accepted", "--when", yesterday)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: when")
    assert referral_row(offer["id"]) == before


@pytest.mark.parametrize("args, code", [
    (("outcome", "R-2026-999999", "accepted"), 3),
    (("outcome", "R-2026-000001", "finished"), 2),
    (("outcome", "not-an-id", "accepted"), 2),
    (("outcome", "R-2026-000001", "voided"), 2),  # voiding needs a reason
    (("letter", "R-2026-999999", "--kind", "completion"), 3),
    (("letter", "R-2026-000001", "--kind", "apology"), 2),
    (("refer", "I-000999"), 3),
])
def test_outcome_and_letter_errors(args, code):
    out = record()
    refer(out["incident_id"])
    before = counts()
    snapshot = referral_row(_first_referral_id())
    result = run(*args)
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert result.stderr.startswith("error:") and "Traceback" not in result.stderr
    assert counts() == before
    assert referral_row(_first_referral_id()) == snapshot


def _first_referral_id() -> str:
    conn = connect()
    try:
        return conn.execute("SELECT min(id) FROM referrals").fetchone()[0]
    finally:
        conn.close()


def test_completion_letter_for_a_referral_not_completed_is_refused():
    out = record()
    offer = refer(out["incident_id"])
    result = run("letter", offer["id"], "--kind", "completion")
    assert result.exit_code == 1
    assert "offered" in result.stderr
    assert result.stdout == ""
    run("outcome", offer["id"], "accepted")
    assert run("letter", offer["id"], "--kind", "completion").exit_code == 1
    assert run("letter", offer["id"], "--kind", "offer").exit_code == 0


# ---- the work queue ----------------------------------------------------------

def _write_config(path: Path, **scheme_overrides) -> Path:
    """The shipped schemes file with `key.option = value` lines changed."""
    text = SHIPPED_SCHEMES.read_text(encoding="utf-8")
    for dotted, value in scheme_overrides.items():
        scheme, option = dotted.split("__")
        header = f"[schemes.{scheme}]\n"
        assert header in text
        head, rest = text.split(header, 1)
        body, sep, tail = rest.partition("\n[")
        new_body, n = re.subn(rf"(?m)^{option}\s*=.*$", f"{option} = {value}", body)
        assert n == 1, (scheme, option)
        text = head + header + new_body + sep + tail
    path.write_text(text, encoding="utf-8")
    return path


def test_work_queue_overdue_due_within_and_json(tmp_path):
    short = _write_config(tmp_path / "short.toml", **{"dep-adult__deadline_days": 3})
    late = refer(record(surname="Late", forename="Lou", dob="1980-01-01")["incident_id"])
    soon = run("--config", str(short), "refer",
               record(surname="Soon", forename="Sue", dob="1981-01-01")["incident_id"], "--json")
    assert soon.exit_code == 0, soon.stderr
    soon = as_json(soon)
    later = refer(record(surname="Later", forename="Len", dob="1982-01-01")["incident_id"])
    closed = refer(record(surname="Done", forename="Dan", dob="1983-01-01")["incident_id"])
    run("outcome", closed["id"], "accepted")
    run("outcome", closed["id"], "completed")
    # nothing in the CLI can age a referral: move its deadline into the past directly
    conn = connect()
    past = (datetime.now() - timedelta(days=2)).replace(microsecond=0).isoformat()
    conn.execute("UPDATE referrals SET deadline = ? WHERE id = ?", (past, late["id"]))
    conn.close()

    everything = as_json(run("referrals", "--json"))
    assert [r["id"] for r in everything] == [late["id"], soon["id"], later["id"]]  # most urgent first

    overdue = run("referrals", "--overdue", "--json")
    assert overdue.exit_code == 0
    rows = as_json(overdue)
    assert [r["id"] for r in rows] == [late["id"]]
    assert rows[0]["overdue"] is True and rows[0]["days_left"] < 0
    assert rows[0]["name"] == "Late, Lou"

    within = [r["id"] for r in as_json(run("referrals", "--due-within", "7", "--json"))]
    assert soon["id"] in within and later["id"] not in within and closed["id"] not in within
    wide = [r["id"] for r in as_json(run("referrals", "--due-within", "90", "--json"))]
    assert set(wide) == {late["id"], soon["id"], later["id"]}

    done = [r["id"] for r in as_json(run("referrals", "--status", "completed", "--json"))]
    assert done == [closed["id"]]

    text = run("referrals", "--overdue")
    assert "OVERDUE" in text.stdout and late["id"] in text.stdout and soon["id"] not in text.stdout

    assert run("referrals", "--due-within", "-1").exit_code == 2
    assert run("referrals", "--status", "lost").exit_code == 2


# ---- config decides the look-back ------------------------------------------

def _history_three_years_ago(tmp_path) -> tuple[dict, dict]:
    """A person diverted (completed) three years ago, and a new incident today."""
    three_years = (datetime.now() - timedelta(days=3 * 365 + 2)).replace(microsecond=0)
    # `refer` and `outcome` stamp the present (an outcome may not predate its offer),
    # so the old diversion comes in as history, through `import`.
    at, done = three_years.strftime("%Y-%m-%d %H:%M"), (three_years + timedelta(days=20)).strftime("%Y-%m-%d %H:%M")
    history = tmp_path / "history.csv"
    history.write_text("surname,forenames,dob,occurred_at,substances,scheme,referral_status,offered_at,accepted_at,"
                       f"closed_at\nWard,Kim,1980-04-04,{at},cannabis,dep-adult,completed,{at},{at},{done}\n",
                       encoding="utf-8")
    assert run("import", history).exit_code == 0
    old = as_json(run("check", "--surname", "Ward", "--forename", "Kim", "--dob", "1980-04-04", "--json"))
    old = {"person_id": old["person"]["id"]}
    new = record("--person", old["person_id"], substance="coke")
    return old, new


def test_two_year_lookback_makes_a_person_diverted_three_years_ago_eligible_again(tmp_path):
    config = _write_config(tmp_path / "force.toml", **{"dep-adult__lookback_years": 2})
    old, new = _history_three_years_ago(tmp_path)
    person = old["person_id"]

    shipped = _check(person)
    assert shipped.exit_code == 1
    assert "ONE_SHOT_USED" in [r["code"] for r in as_json(shipped)["reasons"]]
    assert new["eligible"] is False  # recorded under the shipped lifetime rule
    refused = run("refer", new["incident_id"])
    assert refused.exit_code == 1 and "ONE_SHOT_USED" in refused.stderr

    local = _check(person, "--config", str(config))
    assert local.exit_code == 0, local.stdout
    schemes = as_json(run("--config", str(config), "schemes", "--json"))["schemes"]
    assert any("within 2 years" in " ".join(s["rules"]) for s in schemes if s["key"] == "dep-adult")

    offered = run("--config", str(config), "refer", new["incident_id"], "--json")
    assert offered.exit_code == 0, offered.stderr
    row = referral_row(as_json(offered)["id"])
    assert row["status"] == "offered" and row["lookback_since"] is not None
    assert count_rows(None, "referrals") == 2


def test_lookback_config_via_environment(tmp_path, monkeypatch):
    config = _write_config(tmp_path / "force.toml", **{"dep-adult__lookback_years": 2})
    old, _ = _history_three_years_ago(tmp_path)
    assert _check(old["person_id"]).exit_code == 1
    monkeypatch.setenv("DIVERSION_CONFIG", str(config))
    assert _check(old["person_id"]).exit_code == 0
    # a look-back longer than the gap still counts the old diversion
    longer = _write_config(tmp_path / "longer.toml", **{"dep-adult__lookback_years": 5})
    monkeypatch.setenv("DIVERSION_CONFIG", str(longer))
    assert _check(old["person_id"]).exit_code == 1


def test_missing_config_file_is_bad_input(tmp_path):
    record()
    result = run("--config", str(tmp_path / "nope.toml"), "check", "P-000001")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: config")


@pytest.mark.parametrize("when", [
    (datetime.now() - timedelta(days=5)).strftime("%Y-%m-%d 10:00"),   # before the offer
    (datetime.now() + timedelta(days=400)).strftime("%Y-%m-%d 10:00"),  # after the deadline
])
def test_record_refer_with_an_impossible_appointment_writes_nothing(when):
    record(surname="Other", forename="Person", dob="1980-01-01")
    before = counts()
    result = run("record", "--surname", "Khan", "--forename", "Aisha", "--dob", "1995-07-01",
                 "--substance", "coke", "--refer", "--appointment", when)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stderr.startswith("error: appointment")
    assert counts() == before  # the incident is not left behind without its referral
