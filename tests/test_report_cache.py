"""The report cache.

Triggers count changes per calendar month (month_changes), and changes to
diversions per month of the diversion (diversion_changes); a report keeps the
per-month totals it computed (report_cache) with the sum of those counts over
the months they were read from, and reuses them only while that sum is
unchanged. Covered here: a second report is served from the cache and is
identical; voids, amendments, backdated imports and erasure reach cached
months; a change in a month an entry does not read leaves it current (a desk
write today leaves a cohort whose window has closed alone); the re-offending
comparison group keeps people diverted later; `audit verify` and `db check`
catch a cache entry edited behind diversion's back; a report is not held up by
a writer; the triggers bump the right months.

Fixture data and report helpers come from test_reports.py (dates relative to
today, so every figure below is fixed whenever the suite runs).
"""

from __future__ import annotations

import calendar
import json
import time
from datetime import date, timedelta

import pytest

from diversion_cli.store import Store, resolve_target
from helpers import ON_SERVER, as_json, connect, db_file, hold_write_lock, run, sub
from test_reports import (COLUMNS, FULL_RANGE, M1, M2, M3, THIS_MONTH, add_months, at, fixture_rows, import_rows,
                          month_label, rate, report_json, table, ym)


@pytest.fixture
def fixture_db(tmp_path):
    import_rows(tmp_path, fixture_rows())
    return tmp_path


# ---- small helpers ----------------------------------------------------------------

def query(sql: str, *params) -> list[tuple]:
    conn = connect()
    try:
        return [tuple(row) for row in conn.execute(sql, params)]
    finally:
        conn.close()


def execute(sql: str, *params) -> None:
    conn = connect()  # autocommit, on both engines: each statement commits as it runs
    try:
        conn.execute(sql, params)
    finally:
        conn.close()


def cache() -> dict[str, tuple]:
    """report_cache as {key: (stamp, value)}."""
    return {k: tuple(rest) for k, *rest in query("SELECT key, stamp, value FROM report_cache")}


def key(*parts) -> str:
    """A report_cache key: the cache format, the kind, then the arguments of its query."""
    return ":".join((Store.CACHE_FORMAT, *map(str, parts)))


def cache_key(kind: str, *args) -> str:
    """The one cached key of `kind` whose arguments begin with `args` (the arguments
    after those, such as --scheme, are not pinned down here)."""
    prefix = key(kind, *args)
    found = [k for k in cache() if k == prefix or k.startswith(prefix + ":")]
    assert len(found) == 1, (prefix, sorted(cache()))
    return found[0]


def month_changes() -> dict[str, int]:
    return dict(query("SELECT month, changes FROM month_changes"))


def diversion_changes() -> dict[str, int]:
    return dict(query("SELECT month, changes FROM diversion_changes"))


def moved(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """The months whose change count moved, and by how much."""
    return {m: after.get(m, 0) - before.get(m, 0) for m in sorted({*before, *after})
            if after.get(m, 0) != before.get(m, 0)}


def person_id(surname: str) -> str:
    (pid,) = query("SELECT id FROM people WHERE surname = ?", surname)
    return f"P-{pid[0]:06d}"


def incident_id(surname: str, month: date) -> str:
    (iid,) = query("SELECT i.id FROM incidents i JOIN people p ON p.id = i.person_id "
                   "WHERE p.surname = ? AND substr(i.occurred_at, 1, 7) = ?", surname, ym(month))
    return f"I-{iid[0]:06d}"


def ok(*args: str) -> str:
    result = run(*args)
    assert result.exit_code == 0, (args, result.stdout, result.stderr)
    return result.stdout


def summary(rep: dict) -> dict:
    return {r["measure"]: r["value"] for r in table(rep, "summary")["rows"]}


def equity(rep: dict) -> dict:
    return {(r["dimension"], r["group"]): r for r in table(rep, "equity")["rows"]}


def cohort(rep: dict, month: date, group: str) -> dict:
    return {(r["cohort"], r["group"]): r for r in table(rep, "reoffending")["rows"]}[(month_label(month), group)]


def without_timestamp(rep: dict) -> dict:
    return {k: v for k, v in rep.items() if k != "generated_at"}


def incident(surname: str, day: date, hour: int = 10, **referral: str) -> dict:
    """One import row: an adult (born 1990) with cannabis, eligible for dep-adult."""
    row = dict.fromkeys(COLUMNS, "")
    row.update(surname=surname, forenames="Sam", dob="1990-01-01", gender="M", ethnicity="W1",
               occurred_at=at(day, hour), substances="cannabis", recorded_by="4471", **referral)
    return row


def diverted(surname: str, day: date, accepted: date | None = None, status: str = "completed") -> dict:
    """An incident on `day`, offered dep-adult at noon, accepted (= diverted) at 09:00 on
    `accepted` (default the next day) and closed ten days after that."""
    accepted = accepted or day + timedelta(days=1)
    return incident(surname, day, scheme="dep-adult", referral_status=status, offered_at=at(day, 12),
                    accepted_at=at(accepted, 9), closed_at=at(accepted + timedelta(days=10), 15))


# ---- cached and identical ------------------------------------------------------------

YEAR_TO_M3 = ("--from", add_months(M3, -11).isoformat(), "--to", (THIS_MONTH - timedelta(days=1)).isoformat())


def test_second_report_is_served_from_the_cache_and_identical(fixture_db, monkeypatch):
    first = report_json(*YEAR_TO_M3, "--by", "substance")
    entries = cache()
    changes = month_changes()
    for month in (add_months(M3, -k) for k in range(12)):                      # each stamped with its month
        for by in ("", "substance"):
            assert entries[key("facts", month, add_months(month, 1), by)][0] == changes.get(ym(month), 0)
        assert entries[cache_key("trend", month, add_months(month, 1))][0] == changes.get(ym(month), 0)
    assert sum(row[-1] for row in json.loads(entries[key("facts", M3, THIS_MONTH, "substance")][1])) == 7
    # the 12 cohorts end at M3 = this month - 1; those 7..12 months back have been watched 6 months, none 12
    for start in (add_months(THIS_MONTH, -k) for k in range(7, 13)):
        cache_key("reoffending", start, add_months(start, 1), 6)
    assert len(entries) == 2 * 12 + 12 + 6

    def recomputed(*_args):
        raise AssertionError("figures recomputed although no month changed")

    with monkeypatch.context() as patch:
        for name in ("incident_totals", "month_activity", "reoffending"):
            patch.setattr(Store, name, recomputed)
        second = report_json(*YEAR_TO_M3, "--by", "substance")
    assert without_timestamp(second) == without_timestamp(first)
    assert summary(second)["Incidents recorded"] == 24
    assert cache() == entries

    verify = ok("audit", "verify")
    assert "42 cached report figures match the records" in verify


def test_the_cache_holds_totals_per_group_not_a_row_per_incident(tmp_path):
    month = add_months(THIS_MONTH, -2)
    alike = [incident(f"Alike{chr(65 + k)}", month.replace(day=1 + k)) for k in range(12)]   # one group
    import_rows(tmp_path, alike + [diverted("Other", month.replace(day=20))])
    report_json("--month", ym(month), "--by", "officer")
    # the groups, in whatever order the database grouped them (SQLite's and PostgreSQL's differ)
    profile = sorted(json.loads(cache()[key("facts", month, add_months(month, 1), "")][1]), key=json.dumps)
    # (youth, ethnicity, gender, verdict, referral, incidents, first occurrence)
    assert profile == sorted([[0, "W1", "M", "1:dep-adult", None, 12, f"{month}T10:00:00"],
                              [0, "W1", "M", "1:dep-adult", "completed:dep-adult:22", 1,
                               f"{month.replace(day=20)}T10:00:00"]], key=json.dumps)
    by_officer = sorted(json.loads(cache()[key("facts", month, add_months(month, 1), "officer")][1]), key=json.dumps)
    assert by_officer == sorted([["1:dep-adult", None, "4471", 12],
                                 ["1:dep-adult", "completed:dep-adult:22", "4471", 1]], key=json.dumps)


# ---- changes reach cached months ----------------------------------------------------------

def test_voiding_an_incident_of_a_cached_month_shows_on_the_next_report(fixture_db):
    before = report_json("--month", ym(M3))
    assert summary(before)["Incidents recorded"] == 7
    assert summary(before)["Eligible at record"] == 6        # #18 (Adams again) was not eligible
    ok("void", incident_id("Adams", M3), "--reason", "recorded twice")

    after = report_json("--month", ym(M3))
    assert summary(after)["Incidents recorded"] == 6
    assert summary(after)["Eligible at record"] == 6
    assert {r["month"]: r["incidents"] for r in table(after, "trend")["rows"]}[ym(M3)] == 6
    assert cache()[key("facts", M3, THIS_MONTH, "")][0] == month_changes()[ym(M3)]   # kept under the new stamp


def test_amending_gender_changes_the_cached_equity_table(fixture_db):
    # M3: #18 Adams M, #19 Roberts M, #20 Singh F, #21 Taylor M, #22 Udeh M, #23 Vance F, #24 Walker U
    before = equity(report_json("--month", ym(M3)))
    assert before[("Gender", "Male")]["incidents"] == 4
    assert before[("Gender", "Female")]["incidents"] == 2
    ok("amend", "person", person_id("Roberts"), "--gender", "F", "--reason", "recorded wrongly")

    after = equity(report_json("--month", ym(M3)))
    assert after[("Gender", "Male")]["incidents"] == 3
    assert after[("Gender", "Female")]["incidents"] == 3
    assert after[("Gender", "Female")]["divert_rate"] == rate(3, 3)   # Singh f, Vance a, Roberts c


def test_moving_an_incident_between_cached_months(fixture_db):
    assert summary(report_json("--month", ym(M1)))["Incidents recorded"] == 9
    assert summary(report_json("--month", ym(M2)))["Incidents recorded"] == 8
    ok("amend", "incident", incident_id("Quinn", M2), "--when", at(M1.replace(day=9)), "--reason", "wrong month")
    assert summary(report_json("--month", ym(M1)))["Incidents recorded"] == 10
    assert summary(report_json("--month", ym(M2)))["Incidents recorded"] == 7


def test_scheme_figures_are_cached_apart(fixture_db):
    def trend_m3(*args):
        return {r["month"]: r for r in table(report_json("--month", ym(M3), *args), "trend")["rows"]}[ym(M3)]

    everyone = trend_m3()
    # M3: 7 incidents, offered #19-24, completed (closed in M3) #19 22 24
    assert (everyone["incidents"], everyone["offered"], everyone["completed"]) == (7, 6, 3)
    checkpoint = trend_m3("--scheme", "checkpoint")
    assert (checkpoint["incidents"], checkpoint["offered"], checkpoint["completed"]) == (1, 1, 1)   # #22 Udeh
    assert cache_key("trend", M3, THIS_MONTH, "checkpoint")
    assert len([k for k in cache() if k.startswith(key("trend", M3, THIS_MONTH))]) == 2
    assert trend_m3() == everyone


# ---- as narrow as the facts ---------------------------------------------------------------

def _computing(patch, name: str) -> list[tuple]:
    """Record the arguments of every computation of `name` (a Store query) from now on."""
    calls, original = [], getattr(Store, name)

    def counting(self, *args):
        calls.append(args)
        return original(self, *args)

    patch.setattr(Store, name, counting)
    return calls


def test_an_edit_in_another_month_leaves_a_month_current_and_one_in_it_does_not(fixture_db, monkeypatch):
    report_json("--month", ym(M3))
    entry = key("facts", M3, THIS_MONTH, "")
    stamp = cache()[entry][0]
    ok("void", incident_id("Irwin", M1), "--reason", "recorded twice")          # August, say: not M3
    with monkeypatch.context() as patch:
        computed = _computing(patch, "incident_totals")
        assert summary(report_json("--month", ym(M3)))["Incidents recorded"] == 7
    assert computed == []                                                       # served from the cache
    assert cache()[entry][0] == stamp
    ok("void", incident_id("Adams", M3), "--reason", "recorded twice")          # in M3: recomputed
    with monkeypatch.context() as patch:
        computed = _computing(patch, "incident_totals")
        assert summary(report_json("--month", ym(M3)))["Incidents recorded"] == 6
    assert computed == [(M3.isoformat(), THIS_MONTH.isoformat(), "")]
    assert "match the records" in ok("audit", "verify")


def test_a_cohort_reads_its_window_and_the_diversions_before_it(tmp_path, monkeypatch):
    """A cohort watched for 12 months and closed: a desk write today, or a change to a
    later diversion, leaves its figures current; a change to a diversion before it (which
    decides who is in its comparison group) does not."""
    start = add_months(THIS_MONTH, -15)                  # its window ends with the month before last
    rows = [diverted("Earlier", add_months(start, -2).replace(day=3)), incident("Before", add_months(start, -1)),
            diverted("Ashdown", start.replace(day=3)), diverted("Later", add_months(THIS_MONTH, -1).replace(day=3))]
    import_rows(tmp_path, rows)
    # an import counts its diversions per batch, by the month each was accepted (the day after)
    assert diversion_changes() == {ym(add_months(start, -2)): 1, ym(start): 1, ym(add_months(THIS_MONTH, -1)): 1}
    cohort_args = (start.isoformat(), add_months(start, 1).isoformat(), "12", "")

    def recomputed_after(*args: str) -> bool:
        ok(*args)
        with monkeypatch.context() as patch:
            computed = _computing(patch, "reoffending")
            assert cohort(report_json("--month", ym(start)), start, "diverted")["people"] == 1
        return cohort_args in computed

    report_json("--month", ym(start))
    assert cache_key("reoffending", start, add_months(start, 1), 12)
    assert not recomputed_after("record", "--surname", "Newman", "--forename", "Nia", "--dob", "1991-05-05",
                                "--substance", "weed")
    assert not recomputed_after("void", incident_id("Before", add_months(start, -1)), "--reason", "recorded twice")
    (later,), (earlier,) = (query("SELECT r.id FROM referrals r JOIN people p ON p.id = r.person_id "
                                  "WHERE p.surname = ?", name)[0] for name in ("Later", "Earlier"))
    assert not recomputed_after("outcome", later, "failed", "--supervisor", "5678", "--reason", "did not attend")
    before = diversion_changes()
    assert recomputed_after("outcome", earlier, "failed", "--supervisor", "5678", "--reason", "did not attend")
    assert moved(before, diversion_changes()) == {ym(add_months(start, -2)): 1}
    assert "match the records" in ok("audit", "verify")


# ---- re-offending ------------------------------------------------------------------------

def test_backdated_import_reaches_a_cached_reoffending_cohort(tmp_path):
    start = add_months(THIS_MONTH, -13)               # watched for 12 months by now
    rows = [diverted("Ashdown", start.replace(day=3)),
            incident("Ashdown", add_months(start.replace(day=4), 3)),        # back 3 months after
            diverted("Blackmore", start.replace(day=5))]                     # not back (yet)
    import_rows(tmp_path, sorted(rows, key=lambda r: r["occurred_at"]))
    before = cohort(report_json("--month", ym(start)), start, "diverted")
    assert (before["people"], before["within_6"], before["within_12"]) == (2, rate(1, 2), rate(1, 2))
    assert cache_key("reoffending", start, add_months(start, 1), 12)

    # found later: Blackmore was back two months after the diversion (day 6 of the cohort month)
    import_rows(tmp_path, [incident("Blackmore", add_months(start.replace(day=6), 2))], name="backdated.csv")
    assert query("SELECT count(*) FROM people WHERE surname = 'Blackmore'") == [(1,)]
    after = cohort(report_json("--month", ym(start)), start, "diverted")
    assert (after["people"], after["within_6"], after["within_12"]) == (2, rate(2, 2), rate(2, 2))


def test_import_filling_in_an_ethnicity_reaches_a_cached_month(fixture_db):
    # Walker (#24, M3) has no ethnicity; a backdated M2 row for him brings one, and M3 only hears of it
    # through the person's update
    before = equity(report_json("--month", ym(M3)))
    assert before[("Ethnicity", "Not recorded")]["incidents"] == 1
    assert before[("Ethnicity", "Black")]["incidents"] == 1            # #22 Udeh
    (walker,) = [r for r in fixture_rows() if r["surname"] == "Walker"]
    import_rows(fixture_db, [dict(walker, ethnicity="B1", occurred_at=at(M2.replace(day=20)), scheme="",
                                  referral_status="", offered_at="", accepted_at="", closed_at="")],
                name="walker.csv")
    after = equity(report_json("--month", ym(M3)))
    assert ("Ethnicity", "Not recorded") not in after
    assert after[("Ethnicity", "Black")]["incidents"] == 2


def test_comparison_group_keeps_someone_diverted_later(tmp_path):
    start = add_months(THIS_MONTH, -13)
    later = add_months(start, 2)
    rows = [incident("Dunmore", start.replace(day=6)),              # eligible, not offered
            diverted("Dunmore", later.replace(day=6))]              # back, and diverted this time
    import_rows(tmp_path, rows)
    rep = report_json("--from", start.isoformat(), "--to", (add_months(later, 1) - timedelta(days=1)).isoformat())

    comparison = cohort(rep, start, "eligible, not diverted")
    assert comparison["people"] == 1
    assert comparison["within_6"] == rate(1, 1)
    assert comparison["within_12"] == rate(1, 1)
    assert cohort(rep, start, "diverted")["people"] == 0
    diversion = cohort(rep, later, "diverted")
    assert (diversion["people"], diversion["within_6"]) == (1, rate(0, 1))
    # the incident that led to the diversion is not a comparison incident
    assert cohort(rep, later, "eligible, not diverted")["people"] == 0


def _overflowing_cohort() -> date:
    """A cohort month 8-12 months back (watched 6 months, not 12) with 31 days whose month
    six later is shorter (Mar, May, Aug, Oct, Dec): any five months in a row hold one."""
    for back in range(8, 13):
        month = add_months(THIS_MONTH, -back)
        later = add_months(month, 6)
        if calendar.monthrange(month.year, month.month)[1] == 31 > calendar.monthrange(later.year, later.month)[1]:
            return month
    raise AssertionError("unreachable")


def test_reoffending_window_past_the_stamped_months(tmp_path):
    start = _overflowing_cohort()
    last_day = start.replace(day=31)
    import_rows(tmp_path, [diverted("Overton", last_day - timedelta(days=1), accepted=last_day)])
    assert cohort(report_json("--month", ym(start)), start, "diverted")["within_6"] == rate(0, 1)

    # day 31 09:00 + 6 months is, to SQLite, 09:00 on the 1st of the month after the sixth
    back = add_months(start, 7)
    import_rows(tmp_path, [incident("Overton", back, hour=8)], name="back.csv")
    cached = cohort(report_json("--month", ym(start)), start, "diverted")
    execute("DELETE FROM report_cache")                          # safe to empty at any time
    fresh = cohort(report_json("--month", ym(start)), start, "diverted")
    assert fresh["within_6"] == rate(1, 1)
    assert cached == fresh
    assert run("audit", "verify").exit_code == 0


# ---- a tampered cache entry ------------------------------------------------------------

def _tamper_facts(**columns) -> str:
    """Leave the last group out of the cached totals of `report --month M3`; returns the key."""
    facts = key("facts", M3, THIS_MONTH, "")
    (value,) = query("SELECT value FROM report_cache WHERE key = ?", facts)[0]
    rows = json.loads(value)
    assert sum(row[-2] for row in rows) == 7                  # (..., incidents, first occurrence)
    sets = ", ".join(f"{c} = ?" for c in ("value", *columns))
    execute(f"UPDATE report_cache SET {sets} WHERE key = ?",
            json.dumps(rows[:-1], separators=(",", ":")), *columns.values(), facts)
    return facts


def _assert_names_the_entry(result, key: str) -> None:
    err = result.stderr
    assert "Traceback" not in err + result.stdout
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert f"report cache entry {key} does not match the records" in lines[0], lines[0]


def test_audit_verify_and_db_check_catch_an_edited_cache_entry(fixture_db):
    report_json("--month", ym(M3))
    assert run("audit", "verify").exit_code == 0
    facts = _tamper_facts()

    verify = run("audit", "verify")
    assert verify.exit_code == 1
    _assert_names_the_entry(verify, facts)
    check = run("db", "check")
    assert check.exit_code != 0
    _assert_names_the_entry(check, facts)


def test_a_stale_entry_is_neither_read_nor_checked(fixture_db):
    report_json("--month", ym(M3))
    _tamper_facts()
    ok("amend", "person", person_id("Taylor"), "--ethnicity", "W1", "--reason", "confirmed")  # M3 changes
    assert "cached report figures match the records" in ok("audit", "verify")   # stale: skipped
    assert summary(report_json("--month", ym(M3)))["Incidents recorded"] == 7   # recomputed, not 6
    assert run("audit", "verify").exit_code == 0


def test_entries_of_an_older_cache_format_are_neither_checked_nor_kept(fixture_db):
    report_json("--month", ym(M3))
    old = f"facts:{M2}:{M3}"                                   # a key written before keys carried a format
    execute("INSERT INTO report_cache (key, stamp, value) VALUES (?, ?, '[]')", old, month_changes()[ym(M2)])
    assert run("audit", "verify").exit_code == 0               # never read, so nothing to check
    assert summary(report_json("--month", ym(M2)))["Incidents recorded"] == 8   # not the empty list
    assert old not in cache()                                  # cleared when M2's figures were kept


def test_audit_verify_and_reports_agree_on_which_entries_count(fixture_db):
    """Whether an entry is current follows from its key and stamp alone, for reports and
    verify alike: an edited entry made to look stale is not read either."""
    report_json("--month", ym(M3))
    stamp = month_changes()[ym(M3)]
    facts = _tamper_facts(stamp=stamp - 1)                      # edited, and made to look stale
    assert run("audit", "verify").exit_code == 0                # skipped as stale ...
    assert summary(report_json("--month", ym(M3)))["Incidents recorded"] == 7   # ... and not read: recomputed
    assert cache()[facts][0] == stamp
    _tamper_facts(stamp=stamp)                                  # edited, stamp left current: caught
    verify = run("audit", "verify")
    assert verify.exit_code == 1
    _assert_names_the_entry(verify, facts)


def test_audit_verify_names_an_added_entry_with_a_malformed_key(fixture_db):
    report_json("--month", ym(M3))
    stamp = month_changes()[ym(M3)]
    execute("INSERT INTO report_cache (key, stamp, value) VALUES (?, ?, '[]')", key("facts", M3), stamp)
    verify = run("audit", "verify")
    assert verify.exit_code == 1
    lines = [line for line in verify.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and f"report cache entry {key('facts', M3)}" in lines[0], verify.stderr


# ---- a writer does not hold a report up --------------------------------------------------

def test_a_report_is_not_held_up_by_a_writer(fixture_db):
    assert cache() == {}
    writer = connect()
    try:
        hold_write_lock(writer)
        started = time.monotonic()
        result = sub("report", "--format", "json", *FULL_RANGE, timeout=30)
        took = time.monotonic() - started
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert result.returncode == 0, result.stderr
    assert took < 5, f"the report waited {took:.1f}s for the writer (busy timeout 10s)"
    assert summary(json.loads(result.stdout))["Incidents recorded"] == 24
    assert cache() == {}                                 # nothing kept while the lock was held

    result = sub("report", "--format", "json", *FULL_RANGE)
    assert result.returncode == 0, result.stderr
    assert summary(json.loads(result.stdout))["Incidents recorded"] == 24
    for month in (M1, M2, M3):                           # a month at a time
        assert cache_key("facts", month, add_months(month, 1))


def test_a_range_reuses_the_months_monthly_reports_cached(fixture_db, monkeypatch):
    monthly = summary(report_json("--month", ym(M2)))["Incidents recorded"]
    read = []
    original = Store.incident_totals

    def counting(self, start, end, by=""):
        read.append((start, end))
        return original(self, start, end, by)

    with monkeypatch.context() as patch:
        patch.setattr(Store, "incident_totals", counting)
        whole = summary(report_json(*FULL_RANGE))["Incidents recorded"]
    assert read == [(M1.isoformat(), M2.isoformat()), (M3.isoformat(), THIS_MONTH.isoformat())]  # M2 cached
    assert whole == 24 and monthly == 8


# ---- erasure -------------------------------------------------------------------------------

def _erase(surname: str):
    who = person_id(surname)
    return run("db", "erase-person", who, "--confirm", who, "--reason", "SAR-2026-0042", "--override-retention")


def test_erasure_empties_the_cache(fixture_db):
    before = report_json("--month", ym(M3))
    assert summary(before)["Incidents recorded"] == 7
    assert ("Gender", "Not stated") in equity(before)            # Walker (#24, U, no ethnicity)
    assert cache()
    result = _erase("Walker")
    assert result.exit_code == 0, result.stderr
    assert cache() == {}

    after = report_json("--month", ym(M3))
    assert summary(after)["Incidents recorded"] == 6
    assert ("Gender", "Not stated") not in equity(after)
    assert ("Ethnicity", "Not recorded") not in equity(after)


def test_erasure_during_a_report_leaves_nothing_of_them_in_the_cache(fixture_db, monkeypatch):
    engine = Store.engine_for(resolve_target(str(db_file())))  # each engine keeps figures its own way
    keep = engine._keep_fresh

    def erase_first(self):                       # the report has read its figures; the erasure lands now
        erased = sub("db", "erase-person", person_id("Walker"), "--confirm", person_id("Walker"), "--reason",
                     "SAR-2026-0042", "--override-retention")
        assert erased.returncode == 0, erased.stderr
        keep(self)

    with monkeypatch.context() as patch:
        patch.setattr(engine, "_keep_fresh", erase_first)
        report_json("--month", ym(M3))
    assert query("SELECT count(*) FROM people WHERE surname = 'Walker'") == [(0,)]
    (live,) = query("SELECT count(*) FROM incidents WHERE substr(occurred_at, 1, 7) = ?", ym(M3))[0]
    assert live == 6
    for k, (_, value) in cache().items():
        if k.startswith(key("facts", M3)):
            incidents = sum(row[-2] for row in json.loads(value))
            assert incidents == live, f"{k} still counts Walker's incident"


# ---- the triggers ----------------------------------------------------------------------------

def test_voiding_bumps_only_the_incident_month(fixture_db):
    before = month_changes()
    ok("void", incident_id("Irwin", M1), "--reason", "recorded twice")
    assert moved(before, month_changes()) == {ym(M1): 1}


def test_referring_bumps_the_incident_month_and_the_offer_month(fixture_db):
    before = month_changes()
    ok("refer", incident_id("Quinn", M2))                           # offered now
    assert set(moved(before, month_changes())) == {ym(M2), ym(THIS_MONTH)}


def test_a_referral_row_bumps_each_of_its_months_once(fixture_db):
    quinn = int(incident_id("Quinn", M2)[2:])
    (row,) = query("SELECT * FROM referrals LIMIT 1")
    columns = [c[0] for c in query("SELECT column_name FROM information_schema.columns WHERE table_name = 'referrals' "
                                   "AND table_schema = current_schema() ORDER BY ordinal_position")] if ON_SERVER \
        else [c[1] for c in query("PRAGMA table_info(referrals)")]
    referral = dict(zip(columns, row))
    (pid,) = query("SELECT person_id FROM incidents WHERE id = ?", quinn)[0]
    referral.update(id="R-2026-999999", person_id=pid, incident_id=quinn, status="completed",
                    offered_at=f"{M3}T12:00:00", diverted_at=f"{M3.replace(day=2)}T09:00:00",
                    closed_at=f"{THIS_MONTH}T15:00:00")
    before = month_changes()
    execute(f"INSERT INTO referrals ({', '.join(referral)}) VALUES ({', '.join('?' * len(referral))})",
            *referral.values())
    # incident month M2; offered and diverted both in M3 (once); closed this month
    assert moved(before, month_changes()) == {ym(M2): 1, ym(M3): 1, ym(THIS_MONTH): 1}


def test_only_a_change_to_a_diversion_bumps_its_diversion_month(fixture_db):
    before = diversion_changes()
    offer = as_json(run("refer", incident_id("Quinn", M2), "--json"))
    assert moved(before, diversion_changes()) == {}                      # offered: nobody diverted yet
    ok("outcome", offer["id"], "accepted")
    assert moved(before, diversion_changes()) == {ym(THIS_MONTH): 1}     # diverted today


def test_amending_ethnicity_bumps_every_month_the_person_has_incidents(fixture_db):
    before = month_changes()
    ok("amend", "person", person_id("Adams"), "--ethnicity", "W2", "--reason", "self-defined")
    assert moved(before, month_changes()) == {ym(M1): 1, ym(M3): 1}     # #1 in M1, #18 in M3; none in M2
    before = month_changes()
    ok("amend", "person", person_id("Adams"), "--surname", "Addams", "--reason", "spelling")
    assert moved(before, month_changes()) == {}                          # the name is in no report


# ---- migration 10 --------------------------------------------------------------------------------

@pytest.mark.no_database
@pytest.mark.plain_file
@pytest.mark.sqlite_only("upgrades a SQLite file from the last release: a server starts at the current schema")
def test_upgrading_a_file_made_before_migration_10():
    import shutil
    from pathlib import Path

    from diversion_cli.store.migrations import LATEST
    from helpers import db_file, record

    path = db_file()  # the last release's file (tests/fixtures), with figures cached in its format
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(__file__).resolve().parent / "fixtures" / "release-8.db", path)
    execute("INSERT INTO report_cache (key, stamp, value) VALUES ('v1:facts:2026-01-01:2026-02-01:', 1, '[]')")
    assert query("SELECT max(version) FROM migrations") == [(8,)]
    assert run("report", "--month", "this").exit_code == 4                  # a reader refuses an older schema
    assert f"schema version {LATEST}" in ok("db", "upgrade")
    assert cache() == {}                                                   # figures of the old format dropped
    assert diversion_changes() == {}                                       # counted from the upgrade on
    assert summary(report_json("--month", "2026-10"))["Incidents recorded"] == 4  # (two erased, one void)
    assert "match the records" in ok("audit", "verify")                    # the schema is migration 10's
    out = record("--refer", surname="Later", forename="Lia", dob="1990-03-04")
    ok("outcome", out["referral_id"], "accepted")
    assert diversion_changes() == {ym(THIS_MONTH): 1}


def test_figures_planted_ahead_of_the_records_are_named_and_counts_never_go_down():
    from helpers import record

    record(surname="Now", forename="Nia", dob="1990-03-04")
    report_json("--month", "this")
    [(entry, stamp)] = [(k, v[0]) for k, v in cache().items() if ":trend:" in k][-1:]
    # waiting for the count to catch up with it, a planted figure would be read as current
    execute("UPDATE report_cache SET stamp = stamp + 3, value = '{\"incidents\": 57}' WHERE key = ?", entry)
    result = run("audit", "verify")
    assert result.exit_code == 1 and "stamped ahead of the records" in result.stderr
    execute("DELETE FROM report_cache")
    execute("INSERT INTO diversion_changes VALUES ('2026-01', 2) ON CONFLICT DO NOTHING")
    for sql in ("UPDATE month_changes SET changes = 0", "DELETE FROM month_changes",
                "UPDATE diversion_changes SET changes = 0", "DELETE FROM diversion_changes"):
        with pytest.raises(Exception, match="change_counts_only_go_up"):
            execute(sql)
    assert stamp >= 0
