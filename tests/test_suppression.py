"""Secondary suppression: no count shown as <N can be worked out from what a report shows.

The reader here is an attacker written apart from diversion_cli/suppression.py: it reads the
JSON a user would publish, writes down every relation a careful reader knows between its
figures (from domain.md and the report's own notes), and asks an integer-programming solver
(HiGHS) for the least and greatest value each suppressed count can take. A count whose least
and greatest are equal has been recovered.
"""

from __future__ import annotations

import json
import shutil
from collections import defaultdict
from contextlib import contextmanager
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import db_file, run
from test_reports import COLUMNS, FULL_RANGE, MONTHS, add_referral, at, fixture_db, write_csv  # noqa: F401 (a fixture)

highspy = pytest.importorskip("highspy")  # in the test extra; skipped only where it cannot install

SUMMARY = {"Incidents recorded": "incidents", "Eligible at record": "eligible", "Offered a diversion": "offered",
           "Accepted": "accepted", "Completed": "completed", "Failed": "failed", "Declined": "declined",
           "Still open": "open", "Overdue (open past deadline)": "overdue"}
COUNTS = ("incidents", "eligible", "offered", "accepted", "completed", "failed", "declined", "open", "overdue")
# what every referral status adds up to, per group of incidents (status offered, accepted,
# completed, failed, declined; voided ones are left out of the report)
GROUP_RELATIONS = (
    ("offered", ("accepted", "declined", "~still_offered")),
    ("accepted", ("completed", "failed", "~in_progress")),
    ("open", ("~still_offered", "~in_progress")),
    ("open", ("overdue", "~open_in_time")),
    ("incidents", ("eligible", "~ineligible")),
    ("incidents", ("offered", "~not_offered")),
    ("closed", ("completed", "failed")),
)
UNIT_COSTS = {"prosecution": 2280, "dep-adult": 110, "dep-youth": 150, "checkpoint": 480}  # schemes.toml
YOUTH = "age_band=10–17"  # the youth pathway is the first age band
# the age group each scheme takes (schemes.toml: ages): the youth scheme takes only the youth
SCHEME_AGES = {"dep-adult": "adult", "dep-youth": YOUTH, "checkpoint": "adult"}


class Reader:
    """Unknowns, what the report says of each, and the relations between them."""

    def __init__(self, threshold: int):
        self.threshold = threshold
        self.h = highspy.Highs()
        self.h.setOptionValue("output_flag", False)
        self.vars: dict = {}
        self.suppressed: dict = {}   # name -> the value the attacker must not find (checked afterwards)
        self.groups: set = set()

    def var(self, name: str, money: bool = False):
        if name not in self.vars:
            if money:
                self.vars[name] = self.h.addVariable(lb=-1e9, ub=1e9)
            else:
                self.vars[name] = self.h.addIntegral(lb=0, ub=1e6)
            if not money and "." in name:
                self.groups.add(name.rsplit(".", 1)[0])
        return self.vars[name]

    def sees(self, name: str, shown, money: bool = False) -> None:
        """A cell as published: a number, '<N' (0 to N-1) or '*' (withheld)."""
        x = self.var(name, money)
        if shown == f"<{self.threshold}":
            self.h.addConstr(x <= self.threshold - 1)
            self.suppressed[name] = None
        elif shown == "*":
            pass  # withheld: the README does not tell a reader that * is at least N
        elif isinstance(shown, (int, float)):
            if money:  # amounts are shown to the pound
                self.h.addConstr(x >= shown - 0.5)
                self.h.addConstr(x <= shown + 0.5)
            else:
                self.h.addConstr(x == shown)
        else:
            raise AssertionError(f"{name}: unexpected cell {shown!r}")

    def sees_rate(self, numerator: str, denominator: str, cell: dict) -> None:
        if cell["rate"] is None or isinstance(cell["numerator"], int):
            self.sees(numerator, cell["numerator"])
            self.sees(denominator, cell["denominator"])
        # '<N' says one of the two is below N and '*' says nothing: nothing to add

    def equal(self, total: str, parts: list[str], coefficients: list[float] | None = None,
              money: tuple = ()) -> None:
        expr = -self.var(total, total in money)
        for part, c in zip(parts, coefficients or [1] * len(parts)):
            expr = expr + c * self.var(part, part in money)
        self.h.addConstr(expr == 0)

    def range_of(self, name: str) -> tuple[float, float]:
        x = self.vars[name]
        found = []
        for sense in (self.h.minimize, self.h.maximize):
            sense(x)
            assert self.h.getModelStatus() == highspy.HighsModelStatus.kOptimal, self.h.getModelStatus()
            found.append(self.h.val(x))
        return tuple(found)


def read_report(report: dict, threshold: int) -> Reader:
    r = Reader(threshold)
    tables = {t["key"]: t for t in report["tables"]}
    by = report["by"]
    for row in tables["summary"]["rows"]:
        if row["measure"] in SUMMARY:
            r.sees(f"all.{SUMMARY[row['measure']]}", row["value"])
        elif row["measure"].startswith("Take-up"):
            r.sees_rate("all.accepted", "all.offered", row["value"])
        else:
            r.sees_rate("all.completed", "all.closed", row["value"])

    def measures_row(group: str, row: dict) -> None:
        for m in COUNTS:
            r.sees(f"{group}.{m}", row[m])
        r.sees_rate(f"{group}.accepted", f"{group}.offered", row["take_up"])
        r.sees_rate(f"{group}.completed", f"{group}.closed", row["completion"])

    ages = tables["adult_youth"]["rows"]
    youth = YOUTH
    measures_row(youth, ages[0])
    measures_row("adult", ages[1])
    partitions = [[youth, "adult"]]
    if "breakdown" in tables:
        groups = [f"{by}={row['group']}" for row in tables["breakdown"]["rows"]]
        for group, row in zip(groups, tables["breakdown"]["rows"]):
            measures_row(group, row)
        if by not in ("substance", "drug_class"):  # an incident with two substances counts under each
            partitions.append(groups)
    equity = defaultdict(list)
    for row in tables["equity"]["rows"]:
        group = f"{row['dimension'].lower()}={row['group']}"
        equity[row["dimension"]].append(group)
        r.sees(f"{group}.incidents", row["incidents"])
        r.sees_rate(f"{group}.offered", f"{group}.incidents", row["offer_rate"])
        r.sees_rate(f"{group}.accepted", f"{group}.incidents", row["divert_rate"])
    partitions += equity.values()
    # every scheme of the default config closes a completion as 22 and a failure as 1
    codes = {row["code"]: row["count"] for row in tables["outcome_codes"]["rows"]}
    assert set(codes) <= {"1", "22"}, codes
    for code, measure in (("22", "completed"), ("1", "failed")):
        r.sees(f"code {code}", codes.get(code, 0))  # unsuppressed, a code with no row is 0
        r.equal(f"code {code}", [f"all.{measure}"])
    # trend months inside the period add up to its incidents
    trend = tables["trend"]["rows"]
    for row in trend:
        r.sees(f"month {row['month']}", row["incidents"])
    start, end = report["period"]["from"], report["period"]["to"]
    inside = [f"month {row['month']}" for row in trend if start[:7] <= row["month"] <= end[:7]]
    if start.endswith("-01") and inside and inside[0] == f"month {start[:7]}":
        r.equal("all.incidents", inside)
    # the cost table: avoided = unit cost x completed; net = avoided - the places' cost
    cost = [row["value"] for row in tables["cost"]["rows"]]
    money = ("avoided", "place cost", "net")
    r.sees("all.completed", cost[0])
    r.sees("avoided", cost[2]["amount"], money=True)
    r.sees("all.accepted", cost[3])
    r.sees("place cost", cost[4]["amount"], money=True)
    r.sees("net", cost[5]["amount"], money=True)
    r.equal("avoided", ["all.completed"], [UNIT_COSTS["prosecution"]], money)
    r.equal("avoided", ["net", "place cost"], money=money)
    in_scope = [report["scheme"]] if report["scheme"] else list(SCHEME_AGES)  # --scheme: no other counts
    schemes = ([f"scheme={row['group']}" for row in tables["breakdown"]["rows"]] if by == "scheme"
               else [f"scheme={key}" for key in in_scope])
    r.equal("place cost", [f"{s}.accepted" for s in schemes], [UNIT_COSTS.get(s[7:], 0) for s in schemes], money)
    r.equal("all.accepted", [f"{s}.accepted" for s in schemes])
    # an age group's places are those of the schemes that take it (none, in a report on one
    # scheme that does not)
    for group in (youth, "adult"):
        r.equal(f"{group}.accepted", [f"scheme={key}.accepted" for key in in_scope if SCHEME_AGES[key] == group])
    # incidents under no scheme were never referred (domain.md): none of a referral's counts
    for m in ("offered", "accepted", "completed", "failed", "declined", "open", "overdue", "closed"):
        r.equal(f"scheme=none.{m}", [])
        r.suppressed.pop(f"scheme=none.{m}", None)
    if report["scheme"]:
        # the age group the report's scheme does not take has none of anything: the config says
        # so, not the figures, so its counts are not the reader's to recover
        outside = youth if SCHEME_AGES[report["scheme"]] == "adult" else "adult"
        for m in COUNTS:
            r.equal(f"{outside}.{m}", [])
        bands = ("age_band=",) if outside == "adult" else ()  # the adult bands, with --by age_band

        def outside_scope(name: str) -> bool:
            return name.startswith(f"{outside}.") or (name.startswith(bands) and not name.startswith(f"{youth}."))
        r.suppressed = {name: v for name, v in r.suppressed.items() if not outside_scope(name)}
    # re-offending: each rate's counts
    for row in tables["reoffending"]["rows"]:
        cohort = f"cohort {row['cohort']} {row['group']}"
        if row["people"] != "not yet":
            r.sees(f"{cohort}.people", row["people"])
        for column in ("within_6", "within_12"):
            if isinstance(row[column], dict):
                r.sees_rate(f"{cohort}.{column}", f"{cohort}.people", row[column])
    for parts in partitions:
        for m in (*COUNTS, "closed", "~still_offered", "~in_progress", "~open_in_time", "~ineligible",
                  "~not_offered"):
            r.equal(f"all.{m}", [f"{p}.{m}" for p in parts])
    for group in sorted(r.groups):
        if group.startswith(("all", "age_band", "adult", "ethnicity", "gender")) or group.startswith(f"{by}="):
            for total, parts in GROUP_RELATIONS:
                r.equal(f"{group}.{total}", [f"{group}.{p}" for p in parts])
    return r


def recovered(report: dict, threshold: int) -> dict[str, float]:
    """Every suppressed count the reader can pin down, with its value."""
    reader = read_report(report, threshold)
    found = {}
    for name in reader.suppressed:
        low, high = reader.range_of(name)
        if round(low) == round(high):
            found[name] = round(low)
    return found


def report(*args: str) -> dict:
    result = run("report", "--format", "json", *args)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def primary_only(full: dict, threshold: int) -> dict:
    """The report as it was published before secondary suppression: each count below N, and
    each rate built on one, as <N; everything else as it is."""
    mark = f"<{threshold}"

    def hide(value):
        if isinstance(value, bool) or value is None:
            return value
        if isinstance(value, int):
            return mark if value < threshold else value
        if isinstance(value, dict) and "numerator" in value:
            if min(value["numerator"], value["denominator"]) < threshold:
                return {"numerator": mark, "denominator": mark, "rate": mark}
        if isinstance(value, dict) and "amount" in value:
            return value
        return value

    out = json.loads(json.dumps(full))
    for t in out["tables"]:
        t["rows"] = [{k: hide(v) for k, v in row.items()} for row in t["rows"]]
    return out


# ---- on the fixture ------------------------------------------------------------------------

def test_the_reader_recovers_counts_from_primary_suppression_alone(fixture_db):
    """The attacker is real: shown only primary suppression, it finds the counts the issue
    names (13 closed - 10 completed = 3 failed; 24 incidents - adults = the youth)."""
    found = recovered(primary_only(report(*FULL_RANGE, "--by", "age_band"), 5), 5)
    assert found["all.failed"] == 3
    assert found["age_band=10–17.incidents"] == 4
    assert found["code 1"] == 3


@pytest.mark.parametrize("by", [None, "age_band", "gender", "ethnicity", "scheme", "substance", "officer"])
@pytest.mark.parametrize("threshold", [3, 5])
def test_no_suppressed_count_can_be_recovered_on_the_fixture(fixture_db, by, threshold):
    args = [*FULL_RANGE, "--suppress", str(threshold), *(["--by", by] if by else [])]
    rep = report(*args)
    assert recovered(rep, threshold) == {}
    assert any(cell == f"<{threshold}" for t in rep["tables"] for row in t["rows"] for cell in row.values())


def test_withheld_figures_are_marked_and_explained(fixture_db):
    rep = report(*FULL_RANGE, "--by", "age_band", "--suppress", "5")
    summary = {r["measure"]: r["value"] for r in next(t for t in rep["tables"] if t["key"] == "summary")["rows"]}
    assert summary["Completion rate (completed / closed)"]["rate"] == "*"    # 10/13 gives away 3 failed
    assert summary["Completed"] == 10 and summary["Failed"] == "<5"
    text = run("report", *FULL_RANGE, "--suppress", "5", "--format", "markdown").stdout
    assert "counts below 5 shown as <5, and figures they could be worked out from as \\*" in text


def test_one_month_report_hides_the_youth_through_the_trend(fixture_db):
    """A month's incidents are also the trend's last month: the two are withheld together."""
    rep = report("--month", FULL_RANGE[3][:7], "--suppress", "5")
    assert recovered(rep, 5) == {}


# ---- on generated data ----------------------------------------------------------------------

AGES = (12, 16, 17, 19, 23, 29, 37, 48, 61)
ETHNICITIES = ("W1", "W2", "B1", "B2", "A1", "A3", "M1", "O2", "NS", "")
STATUSES = ("", "offered", "accepted", "completed", "failed", "declined")
SURNAMES = ("Abbott", "Baxter", "Carver", "Dunmore", "Ellery", "Fairweather", "Goddard", "Hollis", "Ingram", "Jessop",
            "Kettering", "Lomax", "Mortimer", "Norbury", "Oakley", "Pilbeam", "Quayle", "Rutherford", "Sowerby",
            "Thistlewood", "Underhill", "Villiers", "Wetherby", "Yardley", "Zouch", "Ashcombe", "Blenkinsop",
            "Cholmondeley", "Drinkwater", "Entwistle", "Featherstone", "Grimshaw", "Hepplewhite", "Illingworth",
            "Jellicoe", "Kingsnorth", "Lightfoot", "Merriweather", "Nettleship", "Ormerod")  # far apart: no near matches


@st.composite
def incidents(draw):
    rows = []
    for k in range(draw(st.integers(min_value=3, max_value=40))):
        age = draw(st.sampled_from(AGES))
        month = draw(st.integers(min_value=1, max_value=3))
        when = MONTHS[month].replace(day=draw(st.integers(min_value=1, max_value=14)))
        excluded = draw(st.sampled_from(("", "", "", "", "co", "supply")))
        status = "" if excluded else draw(st.sampled_from(STATUSES))
        scheme = ""
        if status:
            scheme = "dep-youth" if age < 18 else draw(st.sampled_from(("dep-adult", "dep-adult", "checkpoint")))
        row = {c: "" for c in COLUMNS}
        row.update(surname=SURNAMES[k], forenames="Sam", dob=f"{when.year - age}-01-01",
                   gender=draw(st.sampled_from("MFXU")), ethnicity=draw(st.sampled_from(ETHNICITIES)),
                   occurred_at=at(when, 10), substances=draw(st.sampled_from(("cannabis", "cocaine", "mdma",
                                                                               "cannabis;cocaine"))),
                   quantity="1 wrap", location=draw(st.sampled_from(("Broadmead", "Easton"))),
                   co_offences="theft from a shop" if excluded == "co" else "",
                   supply_suspected="yes" if excluded == "supply" else "",
                   recorded_by=draw(st.sampled_from(("4471", "5120"))))
        if status:
            add_referral(row, when, scheme, status)
        rows.append(row)
    return rows


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(rows=incidents(), threshold=st.sampled_from((3, 5)),
       by=st.sampled_from((None, "age_band", "gender", "ethnicity", "scheme", "location", "officer", "drug_class")),
       scheme=st.sampled_from((None, None, "checkpoint", "dep-youth")))
def test_no_suppressed_count_can_be_recovered_on_generated_data(tmp_path_factory, server, empty_database, rows,
                                                               threshold, by, scheme):
    work = tmp_path_factory.mktemp("generated")
    with example_database(work, server, empty_database) as db:
        env = {"DIVERSION_DB": db}
        result = run("import", write_csv(work / "generated.csv", rows), env=env)
        assert result.exit_code == 0, result.stderr
        args = [*FULL_RANGE, "--suppress", str(threshold), *(["--by", by] if by else []),
                *(["--scheme", scheme] if scheme else [])]
        result = run("report", "--format", "json", *args, env=env)
        assert result.exit_code == 0, result.stderr
        assert recovered(json.loads(result.stdout), threshold) == {}


@contextmanager
def example_database(work, server, template: str):
    """Each generated example starts from the empty database: a copy of the file, or a
    database made from the template on the test server (conftest's `server`, `empty_database`)."""
    if server is None:
        shutil.copyfile(db_file(), work / "diversion.db")
        yield str(work / "diversion.db")
        return
    name = f"{template}_{work.name}"
    server.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
    try:
        url = urlsplit(str(db_file()))
        yield f"{url.scheme}://{url.netloc}/{name}" + (f"?{url.query}" if url.query else "")
    finally:
        server.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_a_scheme_with_no_incidents_keeps_its_row_so_adult_zeros_stay_hidden(tmp_path):
    """Found by the generated-data test: three youth incidents, none referred, by scheme. With
    only the youth scheme's row shown, the missing adult schemes said adult accepted = 0."""
    rows = [{**{c: "" for c in COLUMNS}, "surname": name, "forenames": "Sam", "dob": "2014-01-01",
             "occurred_at": "2026-09-01 10:00", "substances": "cannabis"} for name in ("Abbott", "Baxter", "Cole")]
    assert run("import", write_csv(tmp_path / "rows.csv", rows)).exit_code == 0
    result = run("report", "--format", "json", "--month", "2026-09", "--by", "scheme", "--suppress", "3")
    assert result.exit_code == 0, result.stderr
    assert recovered(json.loads(result.stdout), 3) == {}


# ---- money: the cost table's sums are built from counts no table shows -----------------------

def incident(k: int, age: int, scheme: str, status: str, location: str = "Broadmead") -> dict:
    """One incident of the second month, referred to `scheme` with `status` ('' for none)."""
    when = MONTHS[2].replace(day=1 + k % 14)
    row = {c: "" for c in COLUMNS}
    row.update(surname=SURNAMES[k % len(SURNAMES)], forenames=("Sam", "Robin")[k // len(SURNAMES)],
               dob=f"{when.year - age}-01-01",
               gender="M", ethnicity="W1", occurred_at=at(when, 10), substances="cannabis", quantity="1 wrap",
               location=location, recorded_by="4471")
    if status:
        row.update(scheme=scheme, referral_status=status, offered_at=at(when, 12))
        if status in ("accepted", "completed"):
            row["accepted_at"] = at(when + timedelta(days=1), 9)
        if status == "completed":
            row["closed_at"] = at(when + timedelta(days=10), 15)
            if scheme == "checkpoint":
                row["approved_by"] = "9001"
        if status == "declined":
            row["closed_at"] = at(when + timedelta(days=1), 9)
    return row


def load(tmp_path, rows: list[dict]) -> None:
    result = run("import", write_csv(tmp_path / "money.csv", rows))
    assert result.exit_code == 0, result.stderr


def cost_of(rep: dict) -> dict:
    return {row["item"]: row["value"] for row in next(t for t in rep["tables"] if t["key"] == "cost")["rows"]}


def test_place_cost_of_one_scheme_report_gives_away_its_places_unless_withheld(tmp_path):
    """Issue (a): a checkpoint-only report with one place: '<5' places beside a place cost of
    £480 is one place, since the reader knows a checkpoint place costs £480."""
    load(tmp_path, [incident(k, 30, "checkpoint" if k == 0 else "dep-adult", "accepted" if k < 8 else "")
                    for k in range(12)])
    month = ("--month", f"{MONTHS[2]:%Y-%m}")
    rep = report(*month, "--scheme", "checkpoint", "--suppress", "5")
    full = report(*month, "--scheme", "checkpoint")
    assert recovered(primary_only(full, 5), 5)["all.accepted"] == 1  # the reader is real
    cost = cost_of(rep)
    assert cost["Diversion places used (accepted, completed or failed)"] == "<5"
    assert cost["− cost of those places (config, per scheme)"]["amount"] == "*"
    assert cost["= estimated net cost kept out of court"]["amount"] == "*"
    assert recovered(rep, 5) == {}


@pytest.mark.parametrize("by", [None, "scheme"])
def test_place_cost_does_not_give_away_the_youth_scheme(tmp_path, by):
    """Issue (b): 4 youth places (150 each) among 37 checkpoint (480) and 3 adult course (110):
    the place cost and the places have one solution, and the youth scheme takes only the youth."""
    rows = ([incident(k, 15, "dep-youth", "accepted") for k in range(4)]
            + [incident(k, 30, "checkpoint", "accepted") for k in range(4, 41)]
            + [incident(k, 30, "dep-adult", "accepted") for k in range(41, 44)]
            + [incident(k, 15, "dep-youth", "declined") for k in range(44, 46)])
    load(tmp_path, rows)
    args = ("--month", f"{MONTHS[2]:%Y-%m}", *(["--by", by] if by else []))
    found = recovered(primary_only(report(*args), 5), 5)
    assert found["age_band=10–17.accepted"] == 4
    rep = report(*args, "--suppress", "5")
    assert recovered(rep, 5) == {}
    # within one report a count withheld is never shown as a sum it is built from
    cost = cost_of(rep)
    if cost["Diversion places used (accepted, completed or failed)"] in ("*", "<5"):
        assert cost["− cost of those places (config, per scheme)"]["amount"] == "*"


def test_court_cost_is_withheld_with_the_completions_it_is_built_from(tmp_path):
    """Issue (c): 'Prosecutions avoided *' beside '= court cost avoided £...' is the count again."""
    rows = ([incident(k, 15, "dep-youth", "completed") for k in range(3)]
            + [incident(k, 30, "dep-adult", "completed") for k in range(3, 20)]
            + [incident(k, 30, "checkpoint", "accepted") for k in range(20, 30)])
    load(tmp_path, rows)
    rep = report("--month", f"{MONTHS[2]:%Y-%m}", "--suppress", "5")
    assert recovered(rep, 5) == {}
    cost = cost_of(rep)
    if cost["Prosecutions avoided (completed diversions)"] in ("*", "<5"):
        assert cost["= court cost avoided"]["amount"] == "*"
        assert cost["= estimated net cost kept out of court"]["amount"] == "*"


# ---- locations: typed free text is published only as its configured area ----------------------

AREAS = '[areas]\n"Town centre" = ["Broadmead", "High St"]\n"Harbourside" = ["Cumberland Basin"]\n'


def test_a_suppressed_location_breakdown_shows_areas_not_what_was_typed(tmp_path, monkeypatch):
    config = tmp_path / "force.toml"
    config.write_text(AREAS, encoding="utf-8")
    monkeypatch.setenv("DIVERSION_CONFIG", str(config))
    home = "outside 12 Acacia Avenue, home of J Bloggs"
    load(tmp_path, [incident(k, 30, "dep-adult", "accepted" if k % 2 else "",
                             location=(home if k == 0 else "Broadmead" if k < 7 else "2 High St"))
                    for k in range(12)])
    month = ("--month", f"{MONTHS[2]:%Y-%m}")
    rep = report(*month, "--by", "location", "--suppress", "5")
    breakdown = next(t for t in rep["tables"] if t["key"] == "breakdown")
    assert [row["group"] for row in breakdown["rows"]] == ["Town centre", "Harbourside", "Other area",
                                                           "Not recorded"]
    assert [row["incidents"] for row in breakdown["rows"]][0] == 11
    assert any("areas of the configuration" in note for note in breakdown["notes"])
    assert recovered(rep, 5) == {}
    for fmt in ("json", "csv", "markdown", "html", "table"):
        text = run("report", *month, "--by", "location", "--suppress", "5", "--format", fmt).stdout
        assert "Acacia" not in text and "Bloggs" not in text, fmt
    assert "Acacia" in run("report", *month, "--by", "location", "--format", "json").stdout  # unsuppressed: as typed


def test_place_cost_is_shown_when_every_scheme_has_n_places_in_each_age_group_it_takes(tmp_path):
    rows = ([incident(k, 15, "dep-youth", "accepted") for k in range(6)]
            + [incident(k, 30, "checkpoint", "accepted") for k in range(6, 13)]
            + [incident(k, 30, "dep-adult", "accepted") for k in range(13, 21)]
            + [incident(k, 15, "dep-youth", "declined") for k in range(21, 26)]
            + [incident(k, 30, "dep-adult", "declined") for k in range(26, 31)])
    load(tmp_path, rows)
    rep = report("--month", f"{MONTHS[2]:%Y-%m}", "--suppress", "5")
    assert cost_of(rep)["− cost of those places (config, per scheme)"]["amount"] == 6 * 150 + 7 * 480 + 8 * 110
    assert recovered(rep, 5) == {}
