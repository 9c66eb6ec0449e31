"""A substance seized but not yet identified (domain.md): recorded as such, decided on what
is known, counted apart in reports until the lab result is recorded; and a void incident
never takes a diversion, whatever the desk does (migration 11)."""

from __future__ import annotations

import pytest

from helpers import as_json, connect, count_rows, outside_sql, record, run


def test_an_unidentified_substance_is_recorded_decided_on_what_is_known_and_counted_apart():
    out = record(substance="unknown powder", surname="Lab", forename="Lee", dob="1990-01-01")
    assert out["eligible"] is True
    reasons = " ".join(r["message"] for r in out["reasons"])
    assert "awaits analysis" in reasons
    conn = connect()
    assert [tuple(r) for r in conn.execute("SELECT substance, drug_class FROM incident_substances")] == [
        ("awaiting-analysis", None)]
    conn.close()
    shown = run("incident", out["incident_id"], "--json")
    assert shown.exit_code == 0
    occurred = as_json(shown)["occurred_at"][:7]
    by_class = as_json(run("report", "--month", occurred, "--by", "drug_class", "--format", "json"))
    breakdown = next(t for t in by_class["tables"] if t["key"] == "breakdown")
    assert [row["group"] for row in breakdown["rows"]] == ["Awaiting analysis"]
    by_substance = as_json(run("report", "--month", occurred, "--by", "substance", "--format", "json"))
    breakdown = next(t for t in by_substance["tables"] if t["key"] == "breakdown")
    assert [row["group"] for row in breakdown["rows"]] == ["Unknown, awaiting analysis"]
    # the lab result is recorded, and the incident is counted under its class from then on
    assert run("amend", "incident", out["incident_id"], "--substance", "cocaine", "--reason",
               "lab result LAB-77").exit_code == 0
    by_class = as_json(run("report", "--month", occurred, "--by", "drug_class", "--format", "json"))
    breakdown = next(t for t in by_class["tables"] if t["key"] == "breakdown")
    assert [row["group"] for row in breakdown["rows"]] == ["Class A"]
    assert run("audit", "verify").exit_code == 0


def test_a_known_class_beside_an_unknown_substance_still_decides():
    out = record("--substance", "unknown", "--refer", substance="cocaine", surname="Two", forename="Tom",
                 dob="1990-01-01")
    assert out["eligible"] is True
    assert "class A" in " ".join(r["message"] for r in out["reasons"])


@pytest.mark.plain_file
def test_the_database_refuses_a_referral_of_a_void_incident():
    out = record("--refer", surname="Void", forename="Vi", dob="1990-01-01")
    assert run("outcome", out["referral_id"], "voided", "--reason", "wrong").exit_code == 0
    assert run("void", out["incident_id"], "--reason", "recorded twice").exit_code == 0
    result = run("refer", out["incident_id"])
    assert result.exit_code == 1 and "void" in result.stderr
    slipped = outside_sql("INSERT INTO referrals SELECT 'R-2026-000099', person_id, incident_id, scheme, pathway, "
                          "one_shot_group, lookback_since, 'offered', provider, appointment, deadline, offered_at, "
                          "offered_by, NULL, NULL, NULL, NULL, updated_at, updated_by FROM referrals LIMIT 1;",
                          check=False)
    assert slipped.returncode != 0 and "incident_void" in slipped.stderr, slipped.stderr
    assert count_rows(None, "referrals") == 1
