"""`diversion report` against a small hand-computed fixture.

The fixture (24 incidents over the last three complete months) is written as
an import CSV with dates relative to today, so every figure below stays the
same whenever the test runs. Every expected number is a literal worked out by
hand from the table in FIXTURE, with the arithmetic in a comment; nothing is
recomputed with the code under test.
"""

from __future__ import annotations

import calendar
import csv
import io
import json
import os
import stat
from datetime import date, timedelta
from pathlib import Path

import pytest

from helpers import NO_DATABASE_AT, connect, database_there, run

COLUMNS = ("surname", "forenames", "dob", "pnc", "gender", "ethnicity", "occurred_at", "substances", "quantity",
           "location", "co_offences", "supply_suspected", "recorded_by", "scheme", "referral_status",
           "offered_at", "accepted_at", "closed_at", "outcome_reason", "approved_by")


# ---- dates relative to today ---------------------------------------------------

def add_months(day: date, months: int) -> date:
    m0 = day.month - 1 + months
    year, month = day.year + m0 // 12, m0 % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


TODAY = date.today()
THIS_MONTH = TODAY.replace(day=1)
M1, M2, M3 = (add_months(THIS_MONTH, -3), add_months(THIS_MONTH, -2), add_months(THIS_MONTH, -1))  # M3 = last
MONTHS = {1: M1, 2: M2, 3: M3}


def ym(day: date) -> str:
    return f"{day:%Y-%m}"


def month_label(day: date) -> str:
    return f"{calendar.month_name[day.month]} {day.year}"


def month_end(day: date) -> date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def pnc(year: int, serial: int) -> str:
    """A valid PNC ID by the domain.md formula (independent of the package)."""
    yy, s7 = f"{year % 100:02d}", f"{serial:07d}"
    return f"{year}/{s7}{'ZABCDEFGHJKLMNPQRTUVWXY'[int(yy + s7) % 23]}"


def at(day: date, hour: int = 10) -> str:
    return f"{day:%Y-%m-%d} {hour:02d}:00"


# ---- the fixture ----------------------------------------------------------------
# Schemes: dep-adult (18+, co-offence excluded), dep-youth (10-17, co-offence needs
# a supervisor), checkpoint (18+, named in the row). dob is 1 January of (year - age),
# so the age at any incident that year is exactly `age`.
#
#  #  month surname     age  sex eth  substances           notes                      referral
#  1  M1    Adams       28   M   W1   weed (cannabis)                                 dep-adult completed
#  2  M1    Brown       22   F   W2   coke (cocaine)                                  dep-adult completed
#  3  M1    Chowdhury   40   M   A3   cannabis; cocaine    two substances             dep-adult completed
#  4  M1    Davis       19   M   B1   cannabis                                        dep-adult failed
#  5  M1    Evans       16   F   W1   cannabis             youth                      dep-youth completed
#  6  M1    Fox         50   M   W9   ketamine                                        dep-adult declined
#  7  M1    Green       27   M   M1   mdma                 offered day 3 of M1        dep-adult offered (OVERDUE)
#  8  M1    Hussain     35   M   A2   cannabis             co-offence -> ineligible   -
#  9  M1    Irwin       60   M   NS   heroin               supply -> ineligible       -
# 10  M2    Jones       24   F   B2   cannabis                                        dep-adult completed
# 11  M2    Khan        29   M   A1   cocaine              4-month contract           checkpoint accepted (open)
# 12  M2    Lewis       15   F   M3   cannabis             youth                      dep-youth failed
# 13  M2    Morgan      45   M   W1   speed (amphetamine)                             dep-adult completed
# 14  M2    Nwosu       33   F   B2   cannabis                                        dep-adult declined
# 15  M2    Owen        17   X   W1   cannabis             youth, co-offence -> inel. -
# 16  M2    Patel       26   F   A1   mdma                                            dep-adult completed
# 17  M2    Quinn       38   M   O2   cannabis             eligible, never offered    -
# 18  M3    Adams again 28/29 M  W1   cannabis             one shot used -> inel.     -
# 19  M3    Roberts     21   M   W1   cannabis                                        dep-adult completed
# 20  M3    Singh       44   F   A9   cannabis                                        dep-adult failed
# 21  M3    Taylor      31   M   W3   cocaine              offered day 25 of M3       dep-adult offered (not overdue)
# 22  M3    Udeh        23   M   B9   cannabis                                        checkpoint completed
# 23  M3    Vance       12   F   W1   cannabis             youth, offered day 20      dep-youth accepted (not overdue)
# 24  M3    Walker      55   U   --   benzos               no ethnicity recorded      dep-adult completed

FIXTURE = [
    # (surname, forenames, age, pnc serial, gender, ethnicity, month, day, substances, co_offence, supply,
    #  scheme, status)
    ("Adams", "Alan", 28, 1234561, "M", "W1", 1, 2, "weed", "", "", "dep-adult", "completed"),
    ("Brown", "Beth", 22, None, "F", "W2", 1, 3, "coke", "", "", "dep-adult", "completed"),
    ("Chowdhury", "Chand", 40, None, "M", "A3", 1, 4, "cannabis;cocaine", "", "", "dep-adult", "completed"),
    ("Davis", "Dwayne", 19, None, "M", "B1", 1, 5, "cannabis", "", "", "dep-adult", "failed"),
    ("Evans", "Ella", 16, None, "F", "W1", 1, 6, "cannabis", "", "", "dep-youth", "completed"),
    ("Fox", "Frank", 50, None, "M", "W9", 1, 7, "ketamine", "", "", "dep-adult", "declined"),
    ("Green", "Gary", 27, None, "M", "M1", 1, 3, "mdma", "", "", "dep-adult", "offered"),
    ("Hussain", "Hamid", 35, None, "M", "A2", 1, 9, "cannabis", "theft from a shop", "", "", ""),
    ("Irwin", "Ian", 60, None, "M", "NS", 1, 10, "heroin", "", "yes", "", ""),
    ("Jones", "Jade", 24, None, "F", "B2", 2, 2, "cannabis", "", "", "dep-adult", "completed"),
    ("Khan", "Kamal", 29, 7654321, "M", "A1", 2, 3, "cocaine", "", "", "checkpoint", "accepted"),
    ("Lewis", "Lily", 15, None, "F", "M3", 2, 4, "cannabis", "", "", "dep-youth", "failed"),
    ("Morgan", "Mark", 45, None, "M", "W1", 2, 5, "speed", "", "", "dep-adult", "completed"),
    ("Nwosu", "Nkem", 33, None, "F", "B2", 2, 6, "cannabis", "", "", "dep-adult", "declined"),
    ("Owen", "Olly", 17, None, "X", "W1", 2, 7, "cannabis", "criminal damage", "", "", ""),
    ("Patel", "Priya", 26, None, "F", "A1", 2, 8, "mdma", "", "", "dep-adult", "completed"),
    ("Quinn", "Quentin", 38, None, "M", "O2", 2, 9, "cannabis", "", "", "", ""),
    ("Adams", "Alan", 28, 1234561, "M", "W1", 3, 2, "cannabis", "", "", "", ""),
    ("Roberts", "Rhys", 21, None, "M", "W1", 3, 3, "cannabis", "", "", "dep-adult", "completed"),
    ("Singh", "Sunita", 44, None, "F", "A9", 3, 4, "cannabis", "", "", "dep-adult", "failed"),
    ("Taylor", "Tom", 31, None, "M", "W3", 3, 24, "cocaine", "", "", "dep-adult", "offered"),
    ("Udeh", "Uche", 23, None, "M", "B9", 3, 6, "cannabis", "", "", "checkpoint", "completed"),
    ("Vance", "Vicky", 12, None, "F", "W1", 3, 19, "cannabis", "", "", "dep-youth", "accepted"),
    ("Walker", "Will", 55, None, "U", "", 3, 8, "benzodiazepines", "", "", "dep-adult", "completed"),
]


def fixture_rows(location: str = "Broadmead", months: dict[int, date] = MONTHS) -> list[dict]:
    """The fixture as import rows; `months` places its three months (default: the last three)."""
    rows, first_year = [], {}
    for (surname, forenames, age, serial, gender, eth, month, day, subs, co, supply, scheme, status) in FIXTURE:
        when = months[month].replace(day=day)
        # the same person keeps the date of birth of their first row
        birth_year = first_year.setdefault((surname, forenames), when.year - age)
        row = {c: "" for c in COLUMNS}
        row.update(surname=surname, forenames=forenames, dob=f"{birth_year}-01-01",
                   pnc=pnc(birth_year + 16, serial) if serial else "", gender=gender, ethnicity=eth,
                   occurred_at=at(when, 10), substances=subs, quantity="1 wrap", location=location,
                   co_offences=co, supply_suspected=supply, recorded_by="4471")
        if scheme:
            add_referral(row, when, scheme, status)
        rows.append(row)
    return rows


def add_referral(row: dict, when: date, scheme: str, status: str) -> None:
    """The referral columns of an import row: offered two hours after the incident,
    accepted the next day, closed ten days on (declined: the next day)."""
    row.update(scheme=scheme, referral_status=status, offered_at=at(when, 12))
    if status in ("accepted", "completed", "failed"):
        row["accepted_at"] = at(when + timedelta(days=1), 9)
    if status in ("completed", "failed"):
        row["closed_at"] = at(when + timedelta(days=10), 15)
    if scheme == "checkpoint" and status == "completed":
        row["approved_by"] = "9001"  # a contract closed in 10 days: an approved early completion
    if status == "declined":
        row["closed_at"] = at(when + timedelta(days=1), 9)


def write_csv(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return path


def import_rows(tmp_path: Path, rows: list[dict], name: str = "fixture.csv") -> None:
    result = run("import", write_csv(tmp_path / name, rows))
    assert result.exit_code == 0, (result.stdout, result.stderr)


@pytest.fixture
def fixture_db(tmp_path):
    import_rows(tmp_path, fixture_rows())
    return tmp_path


FULL_RANGE = ("--from", M1.isoformat(), "--to", month_end(M3).isoformat())


def report_json(*args: str) -> dict:
    result = run("report", "--format", "json", *args)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout)


def table(report: dict, key: str) -> dict:
    found = [t for t in report["tables"] if t["key"] == key]
    assert len(found) == 1, [t["key"] for t in report["tables"]]
    return found[0]


def rate(num, den) -> dict:
    """The JSON form of a rate, with its value worked out from the hand counts."""
    return {"numerator": num, "denominator": den, "rate": None if den == 0 else pytest.approx(num / den, abs=1e-4)}


MEASURE_KEYS = ("incidents", "eligible", "offered", "accepted", "take_up", "completed", "failed", "completion",
                "declined", "open", "overdue")


def measures(incidents, eligible, offered, accepted, completed, failed, declined, open_, overdue) -> dict:
    """A measures row; take-up = accepted/offered and completion = completed/(completed+failed)."""
    return {"incidents": incidents, "eligible": eligible, "offered": offered, "accepted": accepted,
            "take_up": rate(accepted, offered), "completed": completed, "failed": failed,
            "completion": rate(completed, completed + failed), "declined": declined, "open": open_,
            "overdue": overdue}


def rows_by_group(t: dict) -> dict:
    out = {}
    for row in t["rows"]:
        assert row["group"] not in out, f"duplicate group {row['group']}"
        out[row["group"]] = {k: row[k] for k in MEASURE_KEYS}
    return out


# ---- the summary ----------------------------------------------------------------

def test_summary_over_the_three_months(fixture_db):
    rep = report_json(*FULL_RANGE)
    assert rep["period"] == {"from": M1.isoformat(), "to": month_end(M3).isoformat(),
                             "label": f"{M1.isoformat()} to {month_end(M3).isoformat()}"}
    summary = {r["measure"]: r["value"] for r in table(rep, "summary")["rows"]}
    assert summary == {
        "Incidents recorded": 24,                       # 9 (M1) + 8 (M2) + 7 (M3)
        "Eligible at record": 20,                       # 24 - 4 ineligible (#8 co-offence, #9 supply,
                                                        #   #15 youth co-offence, #18 one shot used)
        "Offered a diversion": 19,                      # 7 (M1: #1-7) + 6 (M2: #10-14, #16) + 6 (M3: #19-24)
        "Accepted": 15,                                 # 10 completed + 3 failed + 2 accepted
        "Take-up rate (accepted / offered)": rate(15, 19),
        "Completed": 10,                                # #1 2 3 5 10 13 16 19 22 24
        "Failed": 3,                                    # #4 12 20
        "Completion rate (completed / closed)": rate(10, 13),  # 10 / (10 + 3)
        "Declined": 2,                                  # #6 14
        "Still open": 4,                                # offered #7 21 + accepted #11 23
        "Overdue (open past deadline)": 1,              # #7 only (offered day 3 of M1, 56-day deadline)
    }


def test_summary_for_one_month(fixture_db):
    rep = report_json("--month", ym(M1))
    assert rep["period"]["from"] == M1.isoformat()
    assert rep["period"]["to"] == month_end(M1).isoformat()
    assert rep["period"]["label"] == month_label(M1)
    summary = {r["measure"]: r["value"] for r in table(rep, "summary")["rows"]}
    assert summary == {
        "Incidents recorded": 9,                        # #1-9
        "Eligible at record": 7,                        # 9 - #8 - #9
        "Offered a diversion": 7,                       # #1-7
        "Accepted": 5,                                  # completed #1 2 3 5 + failed #4
        "Take-up rate (accepted / offered)": rate(5, 7),
        "Completed": 4,
        "Failed": 1,
        "Completion rate (completed / closed)": rate(4, 5),
        "Declined": 1,                                  # #6
        "Still open": 1,                                # #7
        "Overdue (open past deadline)": 1,              # #7
    }
    ay = rows_by_group(table(rep, "adult_youth"))
    assert ay == {
        "Youth (10–17)": measures(1, 1, 1, 1, 1, 0, 0, 0, 0),      # #5 completed
        "Adult (18+)": measures(8, 6, 6, 4, 3, 1, 1, 1, 1),        # #1-4, #6-9
    }


def test_last_month_is_m3(fixture_db):
    rep = report_json("--month", "last")
    assert rep["period"]["label"] == month_label(M3)
    summary = {r["measure"]: r["value"] for r in table(rep, "summary")["rows"]}
    assert summary["Incidents recorded"] == 7          # #18-24
    assert summary["Eligible at record"] == 6          # 7 - #18
    assert summary["Offered a diversion"] == 6         # #19-24
    assert summary["Accepted"] == 5                    # completed #19 22 24 + failed #20 + accepted #23
    assert summary["Completion rate (completed / closed)"] == rate(3, 4)
    assert summary["Still open"] == 2                  # #21 offered, #23 accepted
    assert summary["Overdue (open past deadline)"] == 0


def test_adult_and_youth_rows(fixture_db):
    ay = rows_by_group(table(report_json(*FULL_RANGE), "adult_youth"))
    assert ay == {
        # youth: #5 completed, #12 failed, #15 ineligible, #23 accepted
        #   incidents 4, eligible 3, offered 3, accepted 3 (c+f+a), completed 1, failed 1, declined 0, open 1
        "Youth (10–17)": measures(4, 3, 3, 3, 1, 1, 0, 1, 0),
        # adult: the other 20; eligible 20-3 (#8 #9 #18) = 17; offered 19-3 = 16;
        #   accepted 15-3 = 12; completed 10-1 = 9; failed 3-1 = 2; declined 2; open 4-1 = 3; overdue 1
        "Adult (18+)": measures(20, 17, 16, 12, 9, 2, 2, 3, 1),
    }


# ---- breakdowns -------------------------------------------------------------------

def test_by_substance_counts_a_two_substance_incident_under_each(fixture_db):
    t = table(report_json(*FULL_RANGE, "--by", "substance"), "breakdown")
    assert any("counts once under each" in n for n in t["notes"]), t["notes"]
    groups = rows_by_group(t)
    assert groups == {
        # cannabis: #1 3 4 5 8 10 12 14 15 17 18 19 20 22 23 = 15; ineligible #8 15 18 -> 12;
        #   offered #1 3 4 5 10 12 14 19 20 22 23 = 11: completed #1 3 5 10 19 22 = 6, failed #4 12 20 = 3,
        #   declined #14 = 1, accepted #23 = 1 -> accepted 6+3+1 = 10; open 1
        "Cannabis": measures(15, 12, 11, 10, 6, 3, 1, 1, 0),
        # cocaine: #2 c, #3 c, #11 accepted, #21 offered -> accepted 3, open 2
        "Cocaine": measures(4, 4, 4, 3, 2, 0, 0, 2, 0),
        # mdma: #7 offered (overdue), #16 completed
        "MDMA (ecstasy)": measures(2, 2, 2, 1, 1, 0, 0, 1, 1),
        "Ketamine": measures(1, 1, 1, 0, 0, 0, 1, 0, 0),             # #6 declined
        "Heroin": measures(1, 0, 0, 0, 0, 0, 0, 0, 0),               # #9 supply, ineligible
        "Amphetamine (speed)": measures(1, 1, 1, 1, 1, 0, 0, 0, 0),  # #13 completed
        "Benzodiazepines": measures(1, 1, 1, 1, 1, 0, 0, 0, 0),      # #24 completed
    }
    # 15 + 4 + 2 + 1 + 1 + 1 + 1 = 25 = 24 incidents + 1 for #3's second substance
    assert [r["group"] for r in t["rows"]] == ["Cannabis", "Cocaine", "MDMA (ecstasy)", "Amphetamine (speed)",
                                               "Benzodiazepines", "Heroin", "Ketamine"]


def test_by_drug_class(fixture_db):
    t = table(report_json(*FULL_RANGE, "--by", "drug_class"), "breakdown")
    assert any("counts once under each" in n for n in t["notes"]), t["notes"]
    assert rows_by_group(t) == {
        # B: cannabis 15 + ketamine #6 + amphetamine #13 = 17; eligible 12+1+1 = 14; offered 11+1+1 = 13;
        #   completed 6+0+1 = 7; failed 3; declined 1+1 = 2; accepted 7+3+1 = 11; open 1 (#23)
        "Class B": measures(17, 14, 13, 11, 7, 3, 2, 1, 0),
        # A: #2 c, #3 c, #7 offered/overdue, #9 ineligible, #11 accepted, #16 c, #21 offered
        #   eligible 6, offered 6, accepted 4 (#2 3 11 16), completed 3, open 3 (#7 11 21)
        "Class A": measures(7, 6, 6, 4, 3, 0, 0, 3, 1),
        "Class C": measures(1, 1, 1, 1, 1, 0, 0, 0, 0),              # #24
    }


def test_by_ethnicity(fixture_db):
    t = table(report_json(*FULL_RANGE, "--by", "ethnicity"), "breakdown")
    assert rows_by_group(t) == {
        # White: #1 c, #2 c, #5 c, #6 d, #13 c, #15 inel, #18 inel, #19 c, #21 o, #23 a
        "White": measures(10, 8, 8, 6, 5, 0, 1, 2, 0),
        # Asian: #3 c, #8 inel, #11 a, #16 c, #20 f
        "Asian": measures(5, 4, 4, 4, 2, 1, 0, 1, 0),
        # Black: #4 f, #10 c, #14 d, #22 c
        "Black": measures(4, 4, 4, 3, 2, 1, 1, 0, 0),
        # Mixed: #7 o (overdue), #12 f
        "Mixed": measures(2, 2, 2, 1, 0, 1, 0, 1, 1),
        "Other": measures(1, 1, 0, 0, 0, 0, 0, 0, 0),                # #17 eligible, not offered
        "Not stated": measures(1, 0, 0, 0, 0, 0, 0, 0, 0),           # #9 NS, ineligible
        "Not recorded": measures(1, 1, 1, 1, 1, 0, 0, 0, 0),         # #24 blank ethnicity
    }


def test_by_age_band(fixture_db):
    t = table(report_json(*FULL_RANGE, "--by", "age_band"), "breakdown")
    groups = rows_by_group(t)
    assert groups == {
        "10–17": measures(4, 3, 3, 3, 1, 1, 0, 1, 0),                # = the youth row
        # 18-24: #2 c (22), #4 f (19), #10 c (24), #19 c (21), #22 c (23)
        "18–24": measures(5, 5, 5, 5, 4, 1, 0, 0, 0),
        # 25-34: #1 c, #7 o, #11 a, #14 d, #16 c, #18 inel, #21 o
        "25–34": measures(7, 6, 6, 3, 2, 0, 1, 3, 1),
        # 35-44: #3 c (40), #8 inel (35), #17 not offered (38), #20 f (44)
        "35–44": measures(4, 3, 2, 2, 1, 1, 0, 0, 0),
        "45–54": measures(2, 2, 2, 1, 1, 0, 1, 0, 0),                # #6 d (50), #13 c (45)
        "55+": measures(2, 1, 1, 1, 1, 0, 0, 0, 0),                  # #9 inel (60), #24 c (55)
    }
    # youngest first (other breakdowns: largest first)
    assert [r["group"] for r in t["rows"]] == ["10–17", "18–24", "25–34", "35–44", "45–54", "55+"]


# ---- equity, outcome codes, cost, trend ------------------------------------------

def test_equity_rates_and_relative_rate_index(fixture_db):
    t = table(report_json(*FULL_RANGE), "equity")
    got = {(r["dimension"], r["group"]): r for r in t["rows"]}
    # (incidents, offered, diverted, offer RRI, diversion RRI); White: offered 8/10 = 0.8, diverted 6/10 = 0.6
    expected = {
        ("Ethnicity", "White"): (10, 8, 6, 1.0, 1.0),
        ("Ethnicity", "Asian"): (5, 4, 4, 1.0, 1.3333),        # 0.8/0.8; 0.8/0.6
        ("Ethnicity", "Black"): (4, 4, 3, 1.25, 1.25),         # 1.0/0.8; 0.75/0.6
        ("Ethnicity", "Mixed"): (2, 2, 1, 1.25, 0.8333),       # 1.0/0.8; 0.5/0.6
        ("Ethnicity", "Other"): (1, 0, 0, 0.0, 0.0),
        ("Ethnicity", "Not stated"): (1, 0, 0, 0.0, 0.0),
        ("Ethnicity", "Not recorded"): (1, 1, 1, 1.25, 1.6667),  # 1/0.8; 1/0.6
        # gender: M = #1 3 4 6 7 8 9 11 13 17 18 19 21 22 (14), offered 10 (not #8 9 17 18),
        #   diverted 7 (offered minus #6 declined, #7 21 still offered)
        ("Gender", "Male"): (14, 10, 7, None, None),
        # F = #2 5 10 12 14 16 20 23 (8), all offered; diverted all but #14 declined
        ("Gender", "Female"): (8, 8, 7, None, None),
        ("Gender", "Other"): (1, 0, 0, None, None),            # #15 (X)
        ("Gender", "Not stated"): (1, 1, 1, None, None),       # #24 (U)
    }
    assert set(got) == set(expected)
    for key, (n, offered, diverted, offer_rri, divert_rri) in expected.items():
        row = got[key]
        assert row["incidents"] == n, key
        assert row["offer_rate"] == rate(offered, n), key
        assert row["divert_rate"] == rate(diverted, n), key
        if offer_rri is None:
            assert row["offer_rri"] in ("", None) and row["divert_rri"] in ("", None), key
        else:
            assert row["offer_rri"] == pytest.approx(offer_rri, abs=1e-4), key
            assert row["divert_rri"] == pytest.approx(divert_rri, abs=1e-4), key
    # ethnicity rows come first, largest group first
    assert [r["group"] for r in t["rows"][:4]] == ["White", "Asian", "Black", "Mixed"]
    assert "White" in " ".join(t["notes"])


def test_outcome_code_counts(fixture_db):
    rows = table(report_json(*FULL_RANGE), "outcome_codes")["rows"]
    assert rows == [
        {"code": "1", "meaning": "Charged / summonsed", "count": 3},    # failed #4 12 20
        {"code": "22", "meaning": rows[1]["meaning"], "count": 10},    # completed (all schemes close as 22)
    ]
    assert rows[1]["meaning"].startswith("Diversionary")


def test_cost_estimate_from_config_unit_costs(fixture_db):
    rows = table(report_json(*FULL_RANGE), "cost")["rows"]
    values = [r["value"] for r in rows]
    assert values == [
        10,                                                  # completed diversions
        {"amount": 2280, "currency": "GBP"},                 # costs.prosecution
        {"amount": 22800, "currency": "GBP"},                # 10 x 2280
        15,                                                  # places: accepted 2 + completed 10 + failed 3
        # dep-adult: completed #1 2 3 10 13 16 19 24 + failed #4 20 = 10 x 110 = 1100
        # dep-youth: #5 c, #12 f, #23 a = 3 x 150 = 450; checkpoint: #11 a, #22 c = 2 x 480 = 960
        {"amount": 2510, "currency": "GBP"},                 # 1100 + 450 + 960
        {"amount": 20290, "currency": "GBP"},                # 22800 - 2510
    ]
    t = table(report_json(*FULL_RANGE), "cost")
    assert "ESTIMATE" in t["title"]


def test_trend_counts_each_month(fixture_db):
    rows = {r["month"]: r for r in table(report_json(*FULL_RANGE), "trend")["rows"]}
    assert len(rows) == 12 and ym(M3) in rows and ym(add_months(M3, -11)) in rows
    assert [rows[ym(m)]["incidents"] for m in (M1, M2, M3)] == [9, 8, 7]
    assert [rows[ym(m)]["offered"] for m in (M1, M2, M3)] == [7, 6, 6]   # every offer in its incident's month
    assert rows[ym(add_months(M1, -1))]["incidents"] == 0


def test_scheme_filter(fixture_db):
    rep = report_json(*FULL_RANGE, "--scheme", "checkpoint")
    summary = {r["measure"]: r["value"] for r in table(rep, "summary")["rows"]}
    # #11 accepted and #22 completed name checkpoint; every other incident was offered (or decided) otherwise
    assert summary["Incidents recorded"] == 2
    assert summary["Accepted"] == 2
    assert summary["Completed"] == 1
    assert summary["Still open"] == 1


def test_scheme_keys_are_case_insensitive(fixture_db):
    lower = report_json(*FULL_RANGE, "--scheme", "checkpoint")
    upper = report_json(*FULL_RANGE, "--scheme", "CHECKPOINT")
    assert upper["scheme"] == "checkpoint"
    assert upper["tables"] == lower["tables"]
    unknown = run("report", *FULL_RANGE, "--scheme", "NOWHERE")
    assert unknown.exit_code == 2 and "not a configured scheme" in unknown.stderr


# ---- suppression -------------------------------------------------------------------

def test_suppression_in_json(fixture_db):
    rep = report_json(*FULL_RANGE, "--by", "age_band", "--suppress", "5")
    assert rep["suppress_below"] == 5
    summary = {r["measure"]: r["value"] for r in table(rep, "summary")["rows"]}
    assert summary["Incidents recorded"] == 24
    assert summary["Still open"] == "<5"                     # 4 = N - 1
    assert summary["Failed"] == "<5"                         # 3
    assert summary["Completed"] == 10
    # 10/13 would give the 3 failed away (13 - 10): withheld as * (secondary suppression)
    assert summary["Completion rate (completed / closed)"] == {"numerator": "*", "denominator": "*", "rate": "*"}
    rows = {r["group"]: r for r in table(rep, "breakdown")["rows"]}
    band = rows["18–24"]                                     # 5 incidents, 5/5 taken up, 4 completed
    assert band["incidents"] == band["offered"] == band["eligible"] == 5   # = N: shown
    # 5 accepted of 5 offered would show that 0 declined and 0 are still offered: withheld
    assert band["accepted"] == "*"
    assert band["take_up"]["rate"] == "*"
    assert band["completed"] == "<5"                         # 4
    assert band["completion"]["rate"] == "<5"                # 4/5: numerator below N
    assert rows["10–17"]["incidents"] == "<5"                # 4
    assert rows["10–17"]["take_up"]["rate"] == "<5"          # 3/3: below N
    assert rows["25–34"]["take_up"]["rate"] == "<5"          # 3/6: numerator below N
    equity = {(r["dimension"], r["group"]): r for r in table(rep, "equity")["rows"]}
    assert equity[("Ethnicity", "White")]["offer_rate"] == rate(8, 10)
    assert equity[("Ethnicity", "Asian")]["incidents"] == 5
    assert equity[("Ethnicity", "Asian")]["offer_rate"]["rate"] == "<5"     # 4/5
    assert equity[("Ethnicity", "Asian")]["offer_rri"] == "<5"              # built on 4/5
    codes = {r["code"]: r["count"] for r in table(rep, "outcome_codes")["rows"]}
    assert codes == {"1": "<5", "22": 10}


def test_suppression_threshold_is_exact(fixture_db):
    """--suppress 4: a count of 4 is shown, 3 is hidden."""
    rep = report_json(*FULL_RANGE, "--suppress", "4")
    summary = {r["measure"]: r["value"] for r in table(rep, "summary")["rows"]}
    assert summary["Still open"] == 4                        # = N
    assert summary["Failed"] == "<4"                         # 3 = N - 1
    assert summary["Declined"] == "<4"                       # 2
    equity = {(r["dimension"], r["group"]): r for r in table(rep, "equity")["rows"]}
    assert equity[("Ethnicity", "Black")]["offer_rate"] == rate(4, 4)
    assert equity[("Ethnicity", "Black")]["offer_rri"] == pytest.approx(1.25, abs=1e-4)  # 4/4 vs 8/10
    assert equity[("Ethnicity", "Black")]["divert_rate"]["rate"] == "<4"                 # 3/4
    assert equity[("Ethnicity", "Black")]["divert_rri"] == "<4"


def test_suppression_in_csv(fixture_db):
    result = run("report", *FULL_RANGE, "--by", "age_band", "--format", "csv", "--suppress", "5")
    assert result.exit_code == 0, result.stderr
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == ["table", "row", "column", "value", "numerator", "denominator"]
    cells = {(r[0], r[1], r[2]): r[3:] for r in rows[1:]}
    assert cells[("summary", "Incidents recorded", "Value")] == ["24", "", ""]
    assert cells[("summary", "Still open", "Value")] == ["<5", "", ""]            # 4
    assert cells[("breakdown", "18–24", "Incidents")] == ["5", "", ""]            # = N
    assert cells[("breakdown", "18–24", "Accepted")] == ["*", "", ""]             # 5 of 5: would show 0 declined
    assert cells[("breakdown", "18–24", "Completed")] == ["<5", "", ""]           # 4
    assert cells[("breakdown", "18–24", "Take-up")] == ["*", "", ""]              # 5/5, withheld with it
    assert cells[("breakdown", "18–24", "Completion")] == ["<5", "", ""]          # 4/5
    value, num, den = cells[("summary", "Take-up rate (accepted / offered)", "Value")]
    assert float(value) == pytest.approx(15 / 19, abs=1e-4) and (num, den) == ("15", "19")
    assert "<5" not in (num, den)


def _markdown_table(text: str, title: str) -> list[list[str]]:
    lines = text.splitlines()
    start = lines.index(f"## {title}")
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return rows


def test_suppression_in_markdown(fixture_db):
    result = run("report", *FULL_RANGE, "--by", "age_band", "--format", "markdown", "--suppress", "5")
    assert result.exit_code == 0, result.stderr
    text = result.stdout
    assert "<5" in text and "counts below 5 shown as <5" in text
    rows = _markdown_table(text, "By age band")
    header, body = rows[0], {r[0]: dict(zip(rows[0], r)) for r in rows[2:]}
    assert header[:6] == ["Age Band", "Incidents", "Eligible", "Offered", "Accepted", "Take-up"]
    band = body["18–24"]
    assert band["Incidents"] == band["Offered"] == "5"
    assert band["Accepted"] == band["Take-up"] == "\\*"    # 5 of 5 offered would show 0 declined
    assert band["Completed"] == "<5"
    assert band["Completion"] == "<5"
    assert body["10–17"]["Incidents"] == "<5"
    assert body["25–34"]["Incidents"] == "7"
    assert body["25–34"]["Take-up"] == "<5"                  # 3/6
    summary = {r[0]: r[1] for r in _markdown_table(text, f"Summary: incidents from {FULL_RANGE[1]} to "
                                                         f"{FULL_RANGE[3]}")[2:]}
    assert summary["Incidents recorded"] == "24"
    assert summary["Completion rate (completed / closed)"] == "\\*"    # 10/13 would show 3 failed
    assert summary["Still open"] == "<5"


def test_markdown_without_suppression_shows_every_count(fixture_db):
    result = run("report", *FULL_RANGE, "--by", "age_band", "--format", "markdown")
    assert result.exit_code == 0, result.stderr
    assert "<5" not in result.stdout
    rows = _markdown_table(result.stdout, "By age band")
    body = {r[0]: dict(zip(rows[0], r)) for r in rows[2:]}
    assert body["18–24"]["Completion"] == "80% (4/5)"
    assert body["10–17"]["Incidents"] == "4"


# ---- --month parsing ---------------------------------------------------------------

@pytest.mark.parametrize("text", ["2026-10", "Oct 2026", "October 2026", "october  2026", "2026-10 "])
def test_month_forms(text):
    rep = report_json("--month", text)
    assert rep["period"] == {"from": "2026-10-01", "to": "2026-10-31", "label": "October 2026"}


def test_month_last_and_default_are_the_last_complete_month():
    last = add_months(THIS_MONTH, -1)
    expected = {"from": last.isoformat(), "to": month_end(last).isoformat(), "label": month_label(last)}
    assert report_json("--month", "last")["period"] == expected
    assert report_json()["period"] == expected


def test_future_month_is_refused():
    future = add_months(THIS_MONTH, 1)
    result = run("report", "--month", ym(future), "--format", "json")
    assert result.exit_code == 2
    assert "month" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("text", ["garbage", "2026-13", "Octember 2026", "13/2026", "2026"])
def test_garbage_month_is_refused(text):
    result = run("report", "--month", text, "--format", "json")
    assert result.exit_code == 2, result.stdout
    assert "month" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_month_and_range_together_are_refused():
    result = run("report", "--month", "2026-10", "--from", "2026-10-01", "--to", "2026-10-31")
    assert result.exit_code == 2


@pytest.mark.no_database
def test_reading_a_report_never_creates_the_database(db_path):
    result = run("report", "--month", "2026-10", "--format", "json")
    assert result.exit_code == 4 and result.stdout == "" and NO_DATABASE_AT in result.stderr
    assert not database_there(db_path)


# ---- --output ------------------------------------------------------------------------

def test_output_file_is_owner_only(fixture_db):
    out = fixture_db / "report.json"
    result = run("report", *FULL_RANGE, "--format", "json", "--output", out)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert {r["measure"]: r["value"] for r in table(json.loads(out.read_text()), "summary")["rows"]}[
        "Incidents recorded"] == 24


def test_output_file_already_readable_by_others_becomes_owner_only(fixture_db):
    out = fixture_db / "report.md"
    out.write_text("old")
    os.chmod(out, 0o644)
    result = run("report", *FULL_RANGE, "--format", "markdown", "--output", out, "--force")
    assert result.exit_code == 0, result.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert out.read_text().startswith("# Diversion report")


# ---- re-offending ------------------------------------------------------------------------

def test_reoffending_6_and_12_months(tmp_path):
    cohort = add_months(THIS_MONTH, -13)       # fully observable for 12 months by now

    def person(surname, forenames, day, scheme="", status="", reoffend_after_months=None):
        when = cohort.replace(day=day)
        row = {c: "" for c in COLUMNS}
        row.update(surname=surname, forenames=forenames, dob=f"{when.year - 30}-01-01", gender="M",
                   ethnicity="W1", occurred_at=at(when, 10), substances="cannabis", recorded_by="4471")
        if scheme:
            row.update(scheme=scheme, referral_status=status, offered_at=at(when, 12),
                       accepted_at=at(when + timedelta(days=2), 10),
                       closed_at=at(when + timedelta(days=20), 10))
        rows = [row]
        if reoffend_after_months:
            again = dict(row, occurred_at=at(add_months(when + timedelta(days=2), reoffend_after_months), 9),
                         scheme="", referral_status="", offered_at="", accepted_at="", closed_at="")
            rows.append(again)
        return rows

    rows = (person("Ashdown", "Arthur", 3, "dep-adult", "completed", reoffend_after_months=3)
            + person("Blackmore", "Ben", 4, "dep-adult", "completed", reoffend_after_months=8)
            + person("Cartwright", "Carl", 5, "dep-adult", "failed")
            + person("Dunmore", "Dan", 6, reoffend_after_months=2))   # eligible, never offered
    rows.sort(key=lambda r: r["occurred_at"])
    import_rows(tmp_path, rows)

    rep = report_json("--month", ym(cohort))
    t = table(rep, "reoffending")
    got = {(r["cohort"], r["group"]): r for r in t["rows"]}
    assert len(t["rows"]) == 2                                   # the month's cohort only, 2 groups
    assert f"The period's cohort only: {month_label(cohort)}." in t["notes"]
    diverted = got[(month_label(cohort), "diverted")]
    # Ashdown re-offends 3 months after diversion, Blackmore 8, Cartwright never
    assert diverted["people"] == 3
    assert diverted["within_6"] == rate(1, 3)
    assert diverted["within_12"] == rate(2, 3)
    comparison = got[(month_label(cohort), "eligible, not diverted")]
    assert comparison["people"] == 1                             # Dunmore
    assert comparison["within_6"] == rate(1, 1)
    assert comparison["within_12"] == rate(1, 1)
    for scheme, diverted_people, comparison_people in (("dep-adult", 3, 1), ("dep-youth", 0, 0)):
        only = table(report_json("--month", ym(cohort), "--scheme", scheme), "reoffending")
        by = {(r["cohort"], r["group"]): r for r in only["rows"]}
        assert by[(month_label(cohort), "diverted")]["people"] == diverted_people
        assert by[(month_label(cohort), "eligible, not diverted")]["people"] == comparison_people
    two = table(report_json("--from", add_months(cohort, -1).isoformat(), "--to", month_end(cohort).isoformat()),
                "reoffending")
    assert [r["cohort"] for r in two["rows"]] == [month_label(add_months(cohort, -1))] * 2 + [month_label(cohort)] * 2
    earlier = {(r["cohort"], r["group"]): r for r in two["rows"]}[(month_label(add_months(cohort, -1)), "diverted")]
    assert earlier["people"] == 0
    assert earlier["within_12"]["denominator"] == 0 and earlier["within_12"]["rate"] is None

    # A range that starts mid-month: that month's cohort is only its days inside the range.
    # Diverted (accepted) on day 5 Ashdown, day 6 Blackmore, day 7 Cartwright.
    part = table(report_json("--from", cohort.replace(day=6).isoformat(), "--to", month_end(cohort).isoformat()),
                 "reoffending")
    label = f"{cohort.replace(day=6).isoformat()} to {month_end(cohort).isoformat()}"
    got = {(r["cohort"], r["group"]): r for r in part["rows"]}
    assert (got[(label, "diverted")]["people"], got[(label, "diverted")]["within_12"]) == (2, rate(1, 2))

    # The last 12 complete months: the newest cohort cannot be observed yet.
    last = add_months(THIS_MONTH, -1)
    t = table(report_json("--from", add_months(last, -11).isoformat(), "--to", month_end(last).isoformat()),
              "reoffending")
    got = {(r["cohort"], r["group"]): r for r in t["rows"]}
    assert len(t["rows"]) == 24                                  # 12 monthly cohorts x 2 groups
    newest = got[(month_label(last), "diverted")]
    assert newest["within_6"] == "not yet" and newest["within_12"] == "not yet"
    # the oldest cohort in that report (12 months back) is observable at 6 months, not yet at 12
    oldest = got[(month_label(add_months(last, -11)), "diverted")]
    assert isinstance(oldest["within_6"], dict)
    assert oldest["within_12"] == "not yet"
    assert any("Not yet observable" in n and month_label(last) in n for n in t["notes"])


# ---- table format ----------------------------------------------------------------------

def test_table_format_renders_every_section(fixture_db):
    result = run("report", *FULL_RANGE, "--by", "substance")
    assert result.exit_code == 0, result.stderr
    text = result.stdout
    for title in ("Diversion report", "Summary: incidents from", "Adult and youth", "By substance",
                  "Home Office outcome codes", "Equity: who is offered and diverted", "Re-offending",
                  "Last 12 months", "Cost kept out of court (ESTIMATE)"):
        assert title in text, title
    assert "MDMA (ecstasy)" in text and "£22,800" in text
    assert "\x1b[" not in text                                   # not a terminal: plain text


def test_table_format_shows_rich_markup_in_data_literally(tmp_path):
    rows = fixture_rows(location="[bold]x[/bold]")
    import_rows(tmp_path, rows)
    for fmt in ("table", "markdown", "csv"):
        result = run("report", *FULL_RANGE, "--by", "location", "--format", fmt)
        assert result.exit_code == 0, (fmt, result.stderr)
        assert "[bold]x[/bold]" in result.stdout, fmt


# ---- known bugs (strict xfail: they flip to failures when fixed) --------------------------

def test_voided_incident_leaves_the_figures(fixture_db):
    conn = connect()
    try:
        (incident_id,) = conn.execute("SELECT i.id FROM incidents i JOIN people p ON p.id = i.person_id "
                                      "WHERE p.surname = 'Irwin'").fetchone()
    finally:
        conn.close()
    result = run("void", f"I-{incident_id:06d}", "--reason", "recorded twice")
    assert result.exit_code == 0, result.stderr
    rep = report_json(*FULL_RANGE, "--by", "substance")
    summary = {r["measure"]: r["value"] for r in table(rep, "summary")["rows"]}
    assert summary["Incidents recorded"] == 23          # 24 - Irwin's (#9, heroin, no referral)
    assert summary["Eligible at record"] == 20          # #9 was not eligible: unchanged
    assert "Heroin" not in rows_by_group(table(rep, "breakdown"))
    trend = {r["month"]: r["incidents"] for r in table(rep, "trend")["rows"]}
    assert trend[ym(M1)] == 8                           # 9 - 1


def test_suppressed_trend_change_is_hidden(fixture_db):
    rep = report_json(*FULL_RANGE, "--suppress", "10")
    rows = {r["month"]: r for r in table(rep, "trend")["rows"]}
    # M1 9, M2 8, M3 7 incidents: all below 10, so the month-on-month change built on them is hidden too
    for month in (M2, M3):
        assert rows[ym(month)]["incidents"] == "<10"
        assert rows[ym(month)]["change"] in ("<10", "", None), rows[ym(month)]


def test_csv_trend_rows_are_named_by_month(fixture_db):
    result = run("report", *FULL_RANGE, "--format", "csv")
    assert result.exit_code == 0, result.stderr
    trend = [r for r in csv.reader(io.StringIO(result.stdout)) if r[0] == "trend"]
    names = {r[1] for r in trend}
    assert ym(M2) in names and ym(M3) in names
    assert {r[2] for r in trend} == {"Incidents", "Change", "Offered", "Completed"}


# ---- one scheme: every section follows --scheme ------------------------------------------

def test_scheme_filter_reaches_the_trend_and_re_offending(fixture_db):
    youth = report_json("--month", ym(M3), "--scheme", "dep-youth")
    trend = {r["month"]: r for r in table(youth, "trend")["rows"]}
    for month in (M1, M2, M3):
        # the trend's per-month count (its own query) agrees with each month's filtered summary
        summary = {r["measure"]: r["value"] for r in
                   table(report_json("--month", ym(month), "--scheme", "dep-youth"), "summary")["rows"]}
        assert trend[ym(month)]["incidents"] == summary["Incidents recorded"]
        assert trend[ym(month)]["offered"] == summary["Offered a diversion"]
    # Evans (dep-youth) completed in M1; Lewis failed, Vance is still on it
    assert [trend[ym(m)]["completed"] for m in (M1, M2, M3)] == [1, 0, 0]
    everyone = {r["month"]: r for r in table(report_json("--month", ym(M3)), "trend")["rows"]}
    assert everyone[ym(M1)]["completed"] > 1 and everyone[ym(M1)]["incidents"] > trend[ym(M1)]["incidents"]
