"""Analyst reports: take-up, completion, breakdowns, re-offending, equity,
trend and cost, as tables that can be published.

A report is a list of Tables. Cells are plain counts, `Rate`s (which carry
their numerator and denominator, so a reader can check them) or text.
Suppression and formatting happen in report_format.py, never here.
"""

from __future__ import annotations

import calendar
from collections import Counter
from datetime import date, datetime, timedelta
from typing import NamedTuple

from diversion_cli.errors import BadInput

DIMENSIONS = ("substance", "drug_class", "scheme", "age_band", "gender", "ethnicity", "location", "officer")
AGE_BANDS = ((10, 17, "10–17"), (18, 24, "18–24"), (25, 34, "25–34"), (35, 44, "35–44"), (45, 54, "45–54"),
             (55, 110, "55+"))
GENDER_NAMES = {"M": "Male", "F": "Female", "X": "Other", "U": "Not stated", None: "Not recorded"}
OPEN = ("offered", "accepted")
DIVERTED = ("accepted", "completed", "failed")
SPARK = "▁▂▃▄▅▆▇█"


class Rate(NamedTuple):
    numerator: int
    denominator: int

    @property
    def value(self) -> float | None:
        return self.numerator / self.denominator if self.denominator else None


class RelativeRate(NamedTuple):
    """A group's rate over the reference group's rate (the relative rate index)."""

    group: Rate
    reference: Rate

    @property
    def value(self) -> float | None:
        g, r = self.group.value, self.reference.value
        return g / r if g is not None and r else None


class Money(NamedTuple):
    amount: float
    currency: str
    basis: int  # the count it was built from, for suppression
    # a place cost's hidden counts: (scheme, youth, cost of a place, places) for every scheme
    # in scope and age group it takes, zero or not (suppression.py models them; none is shown)
    parts: tuple = ()


class Change(NamedTuple):
    """Month-on-month change of a count; hidden when either count is suppressed."""

    before: int
    after: int

    def text(self) -> str:
        if not self.before:
            return "—" if not self.after else "new"
        return f"{(self.after - self.before) / self.before:+.0%}"


class Column(NamedTuple):
    key: str
    label: str


class Table(NamedTuple):
    key: str
    title: str
    columns: tuple[Column, ...]
    rows: list[dict]
    notes: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()                      # the columns that name a row
    charts: tuple[tuple[str, tuple[int, ...]], ...] = ()  # (label, counts) drawn as sparklines


class Period(NamedTuple):
    start: date
    end: date  # inclusive
    label: str

    @property
    def start_iso(self) -> str:
        return self.start.isoformat()

    @property
    def end_iso_exclusive(self) -> str:
        return (self.end + timedelta(days=1)).isoformat()


# ---- periods ------------------------------------------------------------------

def month_period(year: int, month: int) -> Period:
    last = calendar.monthrange(year, month)[1]
    return Period(date(year, month, 1), date(year, month, last), f"{calendar.month_name[month]} {year}")


def last_complete_month(today: date) -> Period:
    first = today.replace(day=1) - timedelta(days=1)
    return month_period(first.year, first.month)


def parse_month(text: str, today: date) -> Period:
    """'2026-10', 'Oct 2026', 'October 2026', 'last' (the last complete month), 'this'."""
    value = " ".join((text or "").split()).lower()
    if value in ("", "last"):
        return last_complete_month(today)
    if value == "this":
        return month_period(today.year, today.month)
    import re

    m = re.fullmatch(r"([0-9]{4})-([0-9]{1,2})", value) or re.fullmatch(r"([0-9]{1,2})/([0-9]{4})", value)
    if m:
        a, b = m.groups()
        year, month = (int(a), int(b)) if len(a) == 4 else (int(b), int(a))
    else:
        m = re.fullmatch(r"([a-z]+)\.? ([0-9]{4})", value)
        names = {n.lower(): i for i, n in enumerate(calendar.month_name) if n}
        names.update({n.lower(): i for i, n in enumerate(calendar.month_abbr) if n})
        names["sept"] = 9
        if not m or m.group(1) not in names:
            raise BadInput("month", f"{text[:40]!r} is not a month (use YYYY-MM, 'Oct 2026' or 'last')")
        year, month = int(m.group(2)), names[m.group(1)]
    if not 1 <= month <= 12 or not 1900 <= year <= 2999:
        raise BadInput("month", f"{text[:40]!r} is not a month")
    if date(year, month, 1) > today:
        raise BadInput("month", f"{text!r} is in the future")
    return month_period(year, month)


def range_period(start: date, end: date) -> Period:
    if end < start:
        raise BadInput("to", f"{end} is before --from {start}")
    return Period(start, end, f"{start} to {end}")


# ---- the report ----------------------------------------------------------------

class Tally(NamedTuple):
    """How many of the period's incidents are of one kind, as the store counted them:
    who (youth, ethnicity code, gender), the verdict at record, the latest live
    referral, and whether it is open past its deadline now."""

    youth: bool
    ethnicity: str | None
    gender: str | None
    eligible: bool
    scheme: str | None  # the referral's scheme, or else the one found eligible for
    status: str | None
    outcome_code: int | None
    overdue: bool
    incidents: int

    @property
    def kind(self) -> tuple:
        return self.eligible, self.status, self.overdue


def _verdict(text: str | None) -> tuple[bool, str | None]:
    """The store's 'eligible:scheme' ('1:dep-adult'); None when there is no verdict."""
    if text is None:
        return False, None
    eligible, _, scheme = text.partition(":")
    return eligible == "1", scheme or None


def _referral(text: str | None) -> tuple[str | None, str | None, int | None]:
    """The store's 'status:scheme:outcome code' ('completed:dep-adult:1'); None when
    the incident has no live referral."""
    if text is None:
        return None, None, None
    status, rest = text.split(":", 1)
    scheme, _, code = rest.rpartition(":")
    return status, scheme, int(code) if code else None


def _summed(rows: list, overdue_rows: list, first_seen: bool) -> list[tuple[tuple, bool, int]]:
    """(group key, overdue, incidents): the store's per-month rows summed over the
    period, the overdue incidents moved out into their own entries. With
    `first_seen` (rows end with the first occurrence), in the order the keys first
    appear, which is the order the groups of the equity table keep."""
    totals: dict[tuple, list] = {}
    for row in rows:
        key, n, first = (tuple(row[:-2]), row[-2], row[-1]) if first_seen else (tuple(row[:-1]), row[-1], "")
        entry = totals.setdefault(key, [first, 0])
        entry[0], entry[1] = min(entry[0], first), entry[1] + n
    overdue = {tuple(row[:-1]): row[-1] for row in overdue_rows}
    summed = []
    for key, (_, n) in sorted(totals.items(), key=lambda item: item[1][0]):
        late = overdue.get(key, 0)
        summed.append((key, False, n - late))
        if late:
            summed.append((key, True, late))
    return summed


def _tallies(rows: list, overdue_rows: list, scheme: str | None) -> list[Tally]:
    tallies = []
    for (youth, ethnicity, gender, verdict, referral), overdue, n in _summed(rows, overdue_rows, True):
        eligible, decided = _verdict(verdict)
        status, referred, code = _referral(referral)
        chosen = referred or decided
        if n and not (scheme and chosen != scheme):
            tallies.append(Tally(bool(youth), ethnicity, gender, eligible, chosen, status, code, overdue, n))
    return tallies


# Every measure of a set of incidents follows from how many there are of each
# kind: (eligible at record, referral status, overdue). So each table counts
# kinds per group and derives its measures from those few counts.

def _per_group(counts) -> dict:
    """{group: {kind: count}} from ((group, kind), count) pairs, groups in order of first appearance."""
    grouped: dict = {}
    for (group, kind), n in counts:
        kinds = grouped.setdefault(group, {})
        kinds[kind] = kinds.get(kind, 0) + n
    return grouped


def _measures(kinds: dict) -> dict:
    m = dict.fromkeys(("incidents", "eligible", "offered", "accepted", "completed", "failed", "declined", "open",
                       "overdue"), 0)
    for (eligible, status, overdue), n in kinds.items():
        m["incidents"] += n
        m["eligible"] += n if eligible else 0
        if status:
            m["offered"] += n
            m["accepted"] += n if status in DIVERTED else 0
            if status in ("completed", "failed", "declined"):
                m[status] += n
            m["open"] += n if status in OPEN else 0
            m["overdue"] += n if overdue else 0
    m["take_up"] = Rate(m["accepted"], m["offered"])
    m["completion"] = Rate(m["completed"], m["completed"] + m["failed"])
    return m


MEASURE_COLUMNS = (
    Column("incidents", "Incidents"), Column("eligible", "Eligible"), Column("offered", "Offered"),
    Column("accepted", "Accepted"), Column("take_up", "Take-up"), Column("completed", "Completed"),
    Column("failed", "Failed"), Column("completion", "Completion"), Column("declined", "Declined"),
    Column("open", "Open"), Column("overdue", "Overdue"),
)


def age_band(age: int) -> str:
    return next(label for low, high, label in AGE_BANDS if low <= age <= high)


def _group_name(value, by: str, config) -> str:
    """The row a breakdown counts an incident under, from the store's group column."""
    if by == "substance":
        return "—" if value is None else config.substances[value].label if value in config.substances else value
    if by == "drug_class":  # no class yet: a substance awaiting analysis (counted apart until amended)
        return "Awaiting analysis" if value is None else f"Class {value}"
    if by == "scheme":
        return value or "none"
    if by == "age_band":
        return age_band(value)
    if by == "gender":
        return GENDER_NAMES.get(value, value)
    if by == "ethnicity":
        return config.ethnicity_group(value) if value else "Not recorded"
    if by == "location":
        return value or "Not recorded"
    return value


def build_report(store, config, period: Period, now: datetime, scheme: str | None = None,
                 by: str | None = None) -> list[Table]:
    if by is not None and by not in DIMENSIONS:
        raise BadInput("by", f"{by!r} is not one of {', '.join(DIMENSIONS)}")
    if scheme is not None:
        config.scheme(scheme)
    with store.snapshot():
        return _tables(store, config, period, now, scheme, by)


def _month_slices(period: Period) -> list[tuple[str, str]]:
    """[start, end) ISO dates covering the period one calendar month (or part of one) at a time."""
    slices, start, stop = [], period.start, period.end + timedelta(days=1)
    while start < stop:
        end = min(_add_months(start.replace(day=1), 1), stop)
        slices.append((start.isoformat(), end.isoformat()))
        start = end
    return slices


def _month_key(day: date) -> str:
    return f"{day:%Y-%m}"


def _tables(store, config, period: Period, now: datetime, scheme: str | None, by: str | None) -> list[Table]:
    now_iso = now.isoformat(timespec="seconds")
    # a calendar month at a time: a month's totals are cached once, for its monthly
    # report and for every range that covers it; what is overdue moves with the
    # clock, so it is counted afresh every time
    slices = _month_slices(period)
    rows = [row for start, end in slices for row in store.figures("facts", start, end, "")]
    tallies = _tallies(rows, store.overdue_totals(period.start_iso, period.end_iso_exclusive, now_iso), scheme)
    tables = [_summary(tallies, period), _adult_youth(tallies)]
    if by:
        tables.append(_breakdown(_breakdown_counts(store, config, period, slices, now_iso, scheme, by, tallies),
                                 by))
    tables.append(_outcome_codes(tallies, config))
    tables.append(_equity(tallies, config))
    tables.append(_reoffending(store, period, now, scheme or ""))
    tables.append(_trend(store, period, scheme or ""))
    tables.append(_cost(tallies, config, scheme))
    return tables


def _regroup(tallies: list[Tally], group_of) -> dict:
    """{group: {kind: incidents}}, group_of(tally) naming each tally's group."""
    return _per_group(((group_of(t), t.kind), t.incidents) for t in tallies)


def _summary(tallies: list[Tally], period: Period) -> Table:
    m = _measures(_regroup(tallies, lambda _t: "all").get("all", {}))
    rows = [
        {"measure": "Incidents recorded", "value": m["incidents"]},
        {"measure": "Eligible at record", "value": m["eligible"]},
        {"measure": "Offered a diversion", "value": m["offered"]},
        {"measure": "Accepted", "value": m["accepted"]},
        {"measure": "Take-up rate (accepted / offered)", "value": m["take_up"]},
        {"measure": "Completed", "value": m["completed"]},
        {"measure": "Failed", "value": m["failed"]},
        {"measure": "Completion rate (completed / closed)", "value": m["completion"]},
        {"measure": "Declined", "value": m["declined"]},
        {"measure": "Still open", "value": m["open"]},
        {"measure": "Overdue (open past deadline)", "value": m["overdue"]},
    ]
    return Table("summary", f"Summary: incidents from {period.label}",
                 (Column("measure", "Measure"), Column("value", "Value")), rows,
                 ("Cohort: incidents that occurred in the period, followed to their referral's current state. "
                  "Voided incidents are left out.",), labels=("measure",))


def _adult_youth(tallies: list[Tally]) -> Table:
    groups = _regroup(tallies, lambda t: t.youth)
    rows = [{"group": label, **_measures(groups.get(youth, {}))}
            for label, youth in (("Youth (10–17)", True), ("Adult (18+)", False))]
    return Table("adult_youth", "Adult and youth", (Column("group", "Group"), *MEASURE_COLUMNS), rows,
                 labels=("group",))


def _breakdown_counts(store, config, period: Period, slices: list[tuple[str, str]], now_iso: str,
                      scheme: str | None, by: str, tallies: list[Tally]) -> dict:
    """{group: {kind: incidents}} of a breakdown: regrouped from the tallies when they
    hold the group (scheme, gender, ethnicity), else counted by the store."""
    if by in ("scheme", "gender", "ethnicity"):
        return _regroup(tallies, lambda t: _group_name(getattr(t, by), by, config))
    rows = [row for start, end in slices for row in store.figures("facts", start, end, by)]
    overdue = store.overdue_totals(period.start_iso, period.end_iso_exclusive, now_iso, by)
    counts = []
    for (verdict, referral, group), late, n in _summed(rows, overdue, False):
        eligible, decided = _verdict(verdict)
        status, referred, _ = _referral(referral)
        if n and not (scheme and (referred or decided) != scheme):
            counts.append(((_group_name(group, by, config), (eligible, status, late)), n))
    return _per_group(counts)


AGE_ORDER = {label: n for n, (_, _, label) in enumerate(AGE_BANDS)}


def _breakdown(grouped: dict, by: str) -> Table:
    measured = [{"group": g, **_measures(k)} for g, k in grouped.items()]
    # age bands youngest first; any other groups largest first
    rows = sorted(measured, key=(lambda row: AGE_ORDER[row["group"]]) if by == "age_band" else
                  (lambda row: (-row["incidents"], row["group"])))
    notes = []
    if by in ("substance", "drug_class"):
        notes.append(f"An incident with more than one {by.replace('_', ' ')} counts once under each, "
                     f"so the rows add up to more than the incidents.")
    return Table("breakdown", f"By {by.replace('_', ' ')}", (Column("group", by.replace("_", " ").title()),
                                                             *MEASURE_COLUMNS), rows, tuple(notes),
                 labels=("group",))


def _outcome_codes(tallies: list[Tally], config) -> Table:
    counts = Counter()
    for t in tallies:
        if t.outcome_code is not None:
            counts[t.outcome_code] += t.incidents
    rows = [{"code": str(code), "meaning": config.outcome_codes.get(code, "?"), "count": n}
            for code, n in sorted(counts.items())]
    return Table("outcome_codes", "Home Office outcome codes of closed diversions",
                 (Column("code", "Code"), Column("meaning", "Meaning"), Column("count", "Count")), rows,
                 labels=("code", "meaning"))


def _equity(tallies: list[Tally], config) -> Table:
    groups = {**_regroup(tallies, lambda t: ("Ethnicity", _group_name(t.ethnicity, "ethnicity", config))),
              **_regroup(tallies, lambda t: ("Gender", _group_name(t.gender, "gender", config)))}

    def rates(kinds_of_group):
        m = _measures(kinds_of_group)
        return m["incidents"], Rate(m["offered"], m["incidents"]), Rate(m["accepted"], m["incidents"])

    white = config.ethnicity_groups.get("W", "White")
    _, ref_offer, ref_divert = rates(groups.get(("Ethnicity", white), {}))
    measured = [(kind, name, *rates(k)) for (kind, name), k in groups.items()]
    rows = []
    for kind, name, incidents, offer, divert in sorted(measured, key=lambda m: (m[0] != "Ethnicity", -m[2])):
        rows.append({"dimension": kind, "group": name, "incidents": incidents, "offer_rate": offer,
                     "divert_rate": divert,
                     "offer_rri": RelativeRate(offer, ref_offer) if kind == "Ethnicity" else "",
                     "divert_rri": RelativeRate(divert, ref_divert) if kind == "Ethnicity" else ""})
    return Table("equity", "Equity: who is offered and diverted",
                 (Column("dimension", "Dimension"), Column("group", "Group"), Column("incidents", "Incidents"),
                  Column("offer_rate", "Offered"), Column("divert_rate", "Diverted"),
                  Column("offer_rri", "Offer RRI"), Column("divert_rri", "Diversion RRI")), rows,
                 ("RRI: relative rate index, the group's rate divided by the White group's rate "
                  "(1.00 = same rate; the standard disproportionality measure).",), labels=("dimension", "group"))


def _add_months(day: date, months: int) -> date:
    month0 = day.month - 1 + months
    year, month = day.year + month0 // 12, month0 % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def _cohorts(period: Period) -> list[Period]:
    """The period's monthly cohorts; a month the period cuts short keeps only its days inside it."""
    cohorts = []
    for start, end in _month_slices(period):
        first, last = date.fromisoformat(start), date.fromisoformat(end) - timedelta(days=1)
        month = month_period(first.year, first.month)
        cohorts.append(month if (first, last) == (month.start, month.end) else Period(first, last, f"{first} to {last}"))
    return cohorts


def _reoffending(store, period: Period, now: datetime, scheme: str) -> Table:
    """The monthly diversion cohorts inside the period."""
    cohorts = _cohorts(period)

    def observed(cohort: Period, months: int) -> bool:
        return _add_months(cohort.end + timedelta(days=1), months) <= now.date()

    results = {}
    for cohort in cohorts:  # cohorts younger than 6 months are not computed at all
        if observed(cohort, 6):
            months = 12 if observed(cohort, 12) else 6
            # figures of a watched cohort depend on nothing after its window: kept once computed
            results[cohort] = store.figures("reoffending", cohort.start_iso, cohort.end_iso_exclusive, str(months),
                                            scheme)
    rows, not_observed = [], []
    for cohort in cohorts:
        observed6, observed12 = observed(cohort, 6), observed(cohort, 12)
        if not observed12:
            not_observed.append(cohort.label)
        for group in ("diverted", "eligible, not diverted"):
            size, within6, within12 = results.get(cohort, {}).get(group, (0, 0, 0))
            rows.append({"cohort": cohort.label, "group": group, "people": size if observed6 else "not yet",
                         "within_6": Rate(within6, size) if observed6 else "not yet",
                         "within_12": Rate(within12, size) if observed12 else "not yet"})
    inside = (f"The period's cohort only: {cohorts[0].label}." if len(cohorts) == 1 else
              f"The period's cohorts only, one a month, {cohorts[0].label} to {cohorts[-1].label} (a month the "
              f"period cuts short counts only its days inside the period).")
    notes = [inside, "Share of each monthly cohort with a new recorded incident within 6 and 12 months of "
                     "the diversion (or, for the comparison group, of the eligible incident). Cohorts younger "
                     "than 6 months are not counted yet."]
    if not_observed:
        notes.append("Not yet observable for 12 months: " + ", ".join(not_observed) + ".")
    return Table("reoffending", "Re-offending of the period's cohorts",
                 (Column("cohort", "Cohort"), Column("group", "Group"), Column("people", "People"),
                  Column("within_6", "Within 6 months"), Column("within_12", "Within 12 months")), rows,
                 tuple(notes), labels=("cohort", "group"))


def sparkline(values: list[int]) -> str:
    top = max(values) if values else 0
    if not top:
        return SPARK[0] * len(values)
    return "".join(SPARK[min(len(SPARK) - 1, round(v / top * (len(SPARK) - 1)))] for v in values)


def _trend(store, period: Period, scheme: str) -> Table:
    first = _add_months(period.end.replace(day=1), -11)
    end_excl = period.end + timedelta(days=1)  # a range report may end mid-month
    months = [_add_months(first, k) for k in range(12)]
    rows, previous = [], None
    for m in months:
        key = _month_key(m)
        stop = min(_add_months(m, 1), end_excl)
        counts = store.figures("trend", m.isoformat(), stop.isoformat(), scheme)
        row = {"month": key, "incidents": counts.get("incidents", 0), "offered": counts.get("offered", 0),
               "completed": counts.get("completed", 0)}
        row["change"] = "" if previous is None else Change(previous["incidents"], row["incidents"])
        rows.append(row)
        previous = row
    charts = tuple((label, tuple(r[key] for r in rows))
                   for key, label in (("incidents", "Incidents"), ("offered", "Offered"), ("completed", "Completed")))
    return Table("trend", "Last 12 months",
                 (Column("month", "Month"), Column("incidents", "Incidents"), Column("change", "Change"),
                  Column("offered", "Offered"), Column("completed", "Completed")), rows,
                 ("Offered and completed are counted in the month they happened; change is incidents "
                  "month on month.",), labels=("month",), charts=charts)


def _cost(tallies: list[Tally], config, scheme: str | None) -> Table:
    costs = config.costs
    currency = str(costs.get("currency", "GBP"))
    prosecution = float(costs.get("prosecution", 0))
    by_status = Counter()
    for t in tallies:
        if t.status in DIVERTED:
            by_status[t.status, t.scheme] += t.incidents
    completed = sum(n for (status, _), n in by_status.items() if status == "completed")
    places = sum(by_status.values())
    place_cost = sum(config.schemes[scheme].cost_per_place * n for (_, scheme), n in by_status.items()
                     if scheme in config.schemes)
    avoided = prosecution * completed
    places_of = Counter()
    for t in tallies:
        if t.status in DIVERTED:
            places_of[t.scheme, t.youth] += t.incidents
    in_scope = [scheme] if scheme else list(config.schemes)
    parts = tuple((key, youth, config.schemes[key].cost_per_place, places_of[key, youth]) for key in in_scope
                  for youth in (True, False) if _takes(config.schemes[key], youth))
    rows = [
        {"item": "Prosecutions avoided (completed diversions)", "value": completed},
        {"item": "× cost of a prosecution (config)", "value": Money(prosecution, currency, completed)},
        {"item": "= court cost avoided", "value": Money(avoided, currency, completed)},
        {"item": "Diversion places used (accepted, completed or failed)", "value": places},
        {"item": "− cost of those places (config, per scheme)", "value": Money(place_cost, currency, places, parts)},
        {"item": "= estimated net cost kept out of court", "value": Money(avoided - place_cost, currency,
                                                                           min(completed, places))},
    ]
    return Table("cost", "Cost kept out of court (ESTIMATE)", (Column("item", "Item"), Column("value", "Value")),
                 rows, ("An estimate from the unit costs in the configuration, not an accounting figure. "
                        "Failed diversions still go to court and are counted as places used.",), labels=("item",))


def _takes(scheme, youth: bool) -> bool:
    """Whether a scheme's ages reach into the youth (10–17) or the adult (18+) group."""
    return scheme.min_age <= 17 if youth else scheme.max_age >= 18


def make_report(ws, month: str | None = None, start: str | None = None, end: str | None = None,
                scheme: str | None = None, by: str | None = None) -> tuple[list[Table], dict]:
    """The analysts' report for a month (default: the last complete one) or a date range."""
    from diversion_cli import values

    now = ws.clock()
    if month and (start or end):
        raise BadInput("month", "give --month or --from/--to, not both")
    if start or end:
        if not (start and end):
            raise BadInput("from" if not start else "to", "--from and --to go together")
        period = range_period(values.parse_date(start, "from"), values.parse_date(end, "to"))
    else:
        period = parse_month(month or "last", now.date())
    if scheme is not None:
        scheme = scheme.lower()  # scheme keys are lower case (config.py); CHECKPOINT means checkpoint
    store = ws.reader()
    tables = build_report(store, ws.config, period, now, scheme=scheme, by=by)
    meta = {"period": {"from": period.start.isoformat(), "to": period.end.isoformat(), "label": period.label},
            "scheme": scheme, "by": by, "generated_at": now.isoformat(timespec="minutes"),
            "config_fingerprint": ws.config.fingerprint}
    if by == "officer":  # for suppression: the closed list of groups (a missing officer's row would say 0)
        meta[ON_RECORD] = store.officers_on_record()
    return tables, meta


ON_RECORD = "officers_on_record"  # (meta only suppression reads: never printed)
