"""Which figures of a published report to withhold so that no small count can be worked out.

Primary suppression hides every count below the threshold N (and any rate or sum built on
one). That alone is not enough: "Still open 34" beside "Adult open 31" gives the youth
figure away. So a report is modelled as counts ("nodes") tied by the equations a reader
knows hold between them: a row's measures (offered = accepted + declined + still offered),
a total and its parts (all = youth + adult = the sum of the ethnicity groups = ...), the
completion rate's denominator, outcome codes and the schemes that close with them, the
trend's months inside the period, the cost table's sums. A count shown as `<N` is safe when
another set of whole numbers fits all of that and everything shown (`<N`: 0 to N-1; `*`: at
least N; never negative) with that count different; an integer-programming solver looks for
one. While a count has none, one more figure is withheld (`*`), chosen from the equations
around it. Withholding only widens what fits, so a count once proved safe stays safe, and
the loop ends.
"""

from __future__ import annotations

from collections import defaultdict
from fractions import Fraction
from typing import NamedTuple

from diversion_cli.reports import AGE_BANDS, GENDER_NAMES, Change, Column, Rate, RelativeRate, Table

# the measures of a set of incidents: the ones a measures row shows, the completion rate's
# denominator, and the counts a reader cannot see but knows exist (and are never negative)
SHOWN_MEASURES = ("incidents", "eligible", "offered", "accepted", "completed", "failed", "declined", "open",
                  "overdue", "closed")
HIDDEN_MEASURES = ("ineligible", "not_offered", "still_offered", "in_progress", "open_in_time")
MEASURES = SHOWN_MEASURES + HIDDEN_MEASURES
REFERRAL_MEASURES = ("offered", "accepted", "completed", "failed", "declined", "open", "overdue", "closed",
                     "still_offered", "in_progress", "open_in_time")
# a row's own equations, each as (total, parts)
ROW_EQUATIONS = (
    ("incidents", ("eligible", "ineligible")),
    ("incidents", ("offered", "not_offered")),
    ("offered", ("accepted", "declined", "still_offered")),
    ("accepted", ("completed", "failed", "in_progress")),
    ("open", ("still_offered", "in_progress")),
    ("open", ("overdue", "open_in_time")),
    ("closed", ("completed", "failed")),
)
SUMMARY_ROWS = {"Incidents recorded": "incidents", "Eligible at record": "eligible", "Offered a diversion": "offered",
                "Accepted": "accepted", "Take-up rate (accepted / offered)": ("accepted", "offered"),
                "Completed": "completed", "Failed": "failed",
                "Completion rate (completed / closed)": ("completed", "closed"), "Declined": "declined",
                "Still open": "open", "Overdue (open past deadline)": "overdue"}
RATE_PARTS = {"take_up": ("accepted", "offered"), "completion": ("completed", "closed")}
YOUTH_BAND = AGE_BANDS[0][2]
AGE_RANGES = {label: (low, high) for low, high, label in AGE_BANDS}
PRIMARY, SECONDARY = "primary", "secondary"
OTHER_AREA = "Other area"  # a location in none of the configured areas
CLEANUP_LIMIT = 40  # counts whose proof a figure shown again may be re-proved for


class Node(NamedTuple):
    population: tuple  # ("all",), ("age_band", "10–17"), ("ethnicity", "White"), ("trend", "2026-10"), ...
    measure: str


class Plan:
    """Each shown cell's state: shown, PRIMARY (a count below N in it) or SECONDARY (withheld
    so that one cannot be worked out)."""

    def __init__(self, cells: dict, hidden: dict):
        self._cells, self._hidden = cells, hidden

    def state(self, table: str, row: int, column: str) -> str | None:
        states = {self._hidden.get(node) for node in self._cells.get((table, row, column), ())}
        return PRIMARY if PRIMARY in states else SECONDARY if SECONDARY in states else None

    def nodes(self, table: str, row: int, column: str) -> tuple:
        return self._cells.get((table, row, column), ())


class _Model:
    def __init__(self, threshold: int):
        self.threshold = threshold
        self.cells: dict[tuple, tuple] = {}       # (table, row, column) -> the nodes the cell shows
        self.values: dict = {}                   # node -> value, for every node a cell shows
        self.money: set = set()                  # nodes that are amounts, not counts (may be negative)
        self.fixed: dict = {}                    # node -> value a reader knows without a cell
        self.equations: list[dict] = []          # {node: coefficient}, each summing to zero
        self.places: dict = {}                   # node -> the places of a scheme in an age group (unshown)

    def show(self, where: tuple, nodes: tuple, values: tuple) -> None:
        self.cells[where] = nodes
        for node, value in zip(nodes, values):
            self.values[node] = value

    def total(self, total, parts, coefficients=None) -> None:
        equation: dict = defaultdict(Fraction)
        equation[total] -= 1
        for part, c in zip(parts, coefficients or [1] * len(parts)):
            equation[part] += Fraction(c)
        self.equations.append({n: c for n, c in equation.items() if c})

    def population(self, population: tuple) -> None:
        for total, parts in ROW_EQUATIONS:
            self.total(Node(population, total), [Node(population, p) for p in parts])

    def partition(self, whole: tuple, parts: list[tuple], measures=MEASURES) -> None:
        for m in measures:
            self.total(Node(whole, m), [Node(p, m) for p in parts])


def complete(tables: list[Table], meta: dict, config) -> list[Table]:
    """The tables with a row for every group of a closed list (age bands, genders, ethnicity
    groups, configured areas, schemes, the outcome codes the schemes close with), zero or not: a missing
    row would tell a reader that a count is 0, and the rest of a total what the suppressed part
    is. A location breakdown is first grouped by area."""
    if config is None:
        return tables
    genders = [g for g in GENDER_NAMES.values()]
    ethnicities = list(dict.fromkeys([*config.ethnicity_groups.values(), "Not recorded"]))
    closed_lists = {"age_band": [label for _, _, label in AGE_BANDS], "gender": genders, "ethnicity": ethnicities}
    closed_lists["location"] = [*config.areas, OTHER_AREA, "Not recorded"]
    # every scheme in scope, and no scheme: a missing scheme's row would say its counts are 0
    closed_lists["scheme"] = [meta["scheme"]] if meta.get("scheme") else [*config.schemes, "none"]
    # every officer on record, whatever the period: an empty table would say every count is 0
    if meta.get("officers_on_record") is not None:
        closed_lists["officer"] = meta["officers_on_record"]
    out = []
    for t in tables:
        if t.key == "breakdown" and meta.get("by") == "location":
            t = _by_area(t, config)
        if t.key == "breakdown" and meta.get("by") in closed_lists:
            t = _with_rows(t, "group", closed_lists[meta["by"]], lambda group: {
                "group": group, **{c.key: Rate(0, 0) if c.key in RATE_PARTS else 0 for c in t.columns[1:]}})
            if meta["by"] == "location":  # in the configuration's order: a row's place says nothing
                t = t._replace(rows=sorted(t.rows, key=lambda row: closed_lists["location"].index(row["group"])))
        elif t.key == "equity":
            white = next((r for r in t.rows if r["dimension"] == "Ethnicity"
                          and r["group"] == config.ethnicity_groups.get("W", "White")), None)
            shown = {(r["dimension"], r["group"]) for r in t.rows}
            rows = []
            for dimension, groups in (("Ethnicity", ethnicities), ("Gender", genders)):
                rows += [r for r in t.rows if r["dimension"] == dimension]
                rows += [_equity_zero(dimension, g, white) for g in groups if (dimension, g) not in shown]
            t = t._replace(rows=rows)
        elif t.key == "outcome_codes":
            codes = sorted({c for s in config.schemes.values() for c in (s.completion_outcome, s.failure_outcome)})
            t = _with_rows(t, "code", [str(c) for c in codes], lambda code: {
                "code": code, "meaning": config.outcome_codes.get(int(code), "?"), "count": 0})
            t = t._replace(rows=sorted(t.rows, key=lambda row: int(row["code"])))
        out.append(t)
    return out


def _by_area(table: Table, config) -> Table:
    """The location breakdown by the configured area each location lies in (as a pseudonymised
    export gives it): a location is typed free text and may name a person or a home."""
    areas: dict = {}
    for row in table.rows:
        group = row["group"] if row["group"] == "Not recorded" else config.area(row["group"]) or OTHER_AREA
        area = areas.setdefault(group, {"group": group})
        for key, value in row.items():
            if isinstance(value, Rate):
                before = area.get(key, Rate(0, 0))
                area[key] = Rate(before.numerator + value.numerator, before.denominator + value.denominator)
            elif key != "group":
                area[key] = area.get(key, 0) + value
    note = (f"Locations are grouped by the areas of the configuration ([areas]); one in none of them counts "
            f"under {OTHER_AREA}.")
    return table._replace(title="By area", columns=(Column("group", "Area"), *table.columns[1:]),
                          rows=list(areas.values()), notes=(*table.notes, note))


def _with_rows(table: Table, key: str, groups: list[str], zero_row) -> Table:
    shown = {row[key] for row in table.rows}
    return table._replace(rows=table.rows + [zero_row(g) for g in groups if g not in shown])


def _equity_zero(dimension: str, group: str, white: dict | None) -> dict:
    none = Rate(0, 0)
    row = {"dimension": dimension, "group": group, "incidents": 0, "offer_rate": none, "divert_rate": none,
           "offer_rri": "", "divert_rri": ""}
    if dimension == "Ethnicity":
        row["offer_rri"] = RelativeRate(none, white["offer_rate"] if white else none)
        row["divert_rri"] = RelativeRate(none, white["divert_rate"] if white else none)
    return row


def plan(tables: list[Table], meta: dict, threshold: int, config=None) -> Plan:
    model = _model(tables, meta, threshold, config)
    hidden = {node: PRIMARY for node, value in model.values.items()
              if node not in model.money and value < threshold}
    if threshold < 2:  # '<1' says the count is 0: there is nothing left to protect
        return Plan(model.cells, hidden)
    place_cost, net = Node(("cost",), "place_cost"), Node(("cost",), "net")
    if place_cost in model.values and any(n < threshold for n in model.places.values()):
        # a scheme's places in an age group below N: the place cost would give them away
        hidden.update({place_cost: SECONDARY, net: SECONDARY})
    protected = [n for n, state in hidden.items() if state == PRIMARY and n not in model.fixed]
    reader = _Reader(model)
    proofs: dict = {}  # protected node -> counts that fit the report with it different
    given_away: set = set()  # pinned by what the report cannot withhold
    loosely: set = set()  # free only if a reader takes * to mean "withheld", not "at least N"
    guesses: list = []  # withheld without knowing that alone would free the count it was for
    while True:
        reader.show(hidden)
        pinned = None
        for node in protected:
            if node in proofs or node in given_away or node in loosely:
                continue
            proof = reader.alternative(node)
            if proof is None:
                pinned = node
                break
            _record(proofs, proof, protected, model)
        if pinned is None:
            break
        withhold, freed = _to_withhold(reader, hidden, pinned)
        if not freed and _free_when_loose(reader, hidden, pinned):
            loosely.add(pinned)  # pinned only by reading each * as at least N: see the README
            continue
        if withhold is None:
            given_away.add(pinned)
        else:
            hidden[withhold] = SECONDARY  # a proof stays one: withholding only widens what fits
            if not freed:
                guesses.append(withhold)
    # show again each figure withheld on a guess that turned out not to be needed (latest first)
    for node in guesses[::-1]:
        del hidden[node]
        reader.show(hidden)
        broken = [target for target, proof in proofs.items()
                  if any(n in reader.known and abs(v - reader.known[n]) > 1e-6 for n, v in proof.items())]
        kept = {t: p for t, p in proofs.items() if t not in broken}
        if len(broken) > CLEANUP_LIMIT:  # too dear to prove again: stays withheld
            hidden[node] = SECONDARY
            continue
        for target in broken:
            if target in kept:
                continue
            proof = reader.alternative(target)
            if proof is None:
                hidden[node] = SECONDARY
                break
            _record(kept, proof, broken, model)
        else:
            if all(_free_when_loose(reader, hidden, n) for n in loosely):
                proofs = kept
            else:
                hidden[node] = SECONDARY
    _withhold_money_of_withheld(model, hidden)
    return Plan(model.cells, hidden)


def _withhold_money_of_withheld(model: _Model, hidden: dict) -> None:
    """A sum of money is withheld with any count it is built from, so that a report never shows
    the count as withheld beside the sum it can be read from (withholding more is always safe)."""
    base = {Node(("cost",), "avoided"): [Node(("all",), "completed")],
            Node(("cost",), "place_cost"): [Node(("all",), "accepted")]}
    for money, counts in base.items():
        if any(n in hidden for n in counts):
            hidden.setdefault(money, SECONDARY)
    if any(n in hidden for n in base):
        hidden.setdefault(Node(("cost",), "net"), SECONDARY)


def _record(proofs: dict, proof: dict, protected, model: _Model) -> None:
    """One alternative proves every protected count it moves."""
    for node in protected:
        if node in proof and abs(proof[node] - model.values[node]) > 0.5:
            proofs.setdefault(node, proof)


# ---- the model: what a reader knows ---------------------------------------------------

def _model(tables: list[Table], meta: dict, threshold: int, config) -> _Model:
    model = _Model(threshold)
    by = meta.get("by")
    everyone = ("all",)
    populations = {everyone}
    for t in tables:
        builder = _BUILDERS.get(t.key)
        if builder:
            builder(model, t, by, populations, meta, config)
        else:  # a table the model does not know: each count stands alone
            for i, row in enumerate(t.rows):
                for c in t.columns:
                    _show_value(model, (t.key, i, c.key), row.get(c.key), lambda part: Node((t.key, i, c.key), part))
    for population in populations:
        model.population(population)
    return model


def _show_value(model: _Model, where: tuple, value, node_of) -> None:
    """Cells built from counts: a count, a Rate (numerator, denominator), a Change of two counts."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, int):
        model.show(where, (node_of("count"),), (value,))
    elif isinstance(value, Rate):
        model.show(where, (node_of("numerator"), node_of("denominator")), tuple(value))
    elif isinstance(value, Change):
        model.show(where, (node_of("before"), node_of("after")), tuple(value))


def _measure_row(model: _Model, table: str, i: int, row: dict, columns, population: tuple) -> None:
    for c in columns:
        value = row.get(c.key)
        if c.key in RATE_PARTS:
            parts = RATE_PARTS[c.key]
            model.show((table, i, c.key), tuple(Node(population, p) for p in parts), tuple(value))
        elif c.key in SHOWN_MEASURES:
            model.show((table, i, c.key), (Node(population, c.key),), (value,))


def _summary(model, t, by, populations, meta, config):
    for i, row in enumerate(t.rows):
        measure, value = SUMMARY_ROWS[row["measure"]], row["value"]
        if isinstance(measure, tuple):
            model.show((t.key, i, "value"), tuple(Node(("all",), m) for m in measure), tuple(value))
        else:
            model.show((t.key, i, "value"), (Node(("all",), measure),), (value,))


def _adult_youth(model, t, by, populations, meta, config):
    groups = []
    for i, row in enumerate(t.rows):
        youth = row["group"].startswith("Youth")
        population = ("age_band", YOUTH_BAND) if youth else ("adult",)
        groups.append(population)
        _measure_row(model, t.key, i, row, t.columns, population)
        _none_in_scope(model, population, (10, 17) if youth else (18, 110), row, meta, config)
    populations.update(groups)
    model.partition(("all",), groups)


def _breakdown(model, t, by, populations, meta, config):
    groups = []
    for i, row in enumerate(t.rows):
        population = (by, row["group"])
        groups.append(population)
        _measure_row(model, t.key, i, row, t.columns, population)
        if by == "age_band":
            _none_in_scope(model, population, AGE_RANGES[row["group"]], row, meta, config)
        if by == "scheme" and row["group"] == "none" and row["offered"] == 0:
            # incidents under no scheme were never referred: a reader knows that much unshown
            model.fixed.update({Node(population, m): 0 for m in REFERRAL_MEASURES})
    populations.update(groups)
    if by not in ("substance", "drug_class"):  # an incident with two substances counts under each
        model.partition(("all",), groups)


def _none_in_scope(model: _Model, population: tuple, ages: tuple, row: dict, meta: dict, config) -> None:
    """An age group the --scheme of the report does not take (the youth in a report on an
    adult scheme) has none of anything, and a reader of the config knows it: its counts are
    fixed, not protected (they tell nothing about the records)."""
    scheme = config.schemes.get(meta.get("scheme") or "") if config else None
    if scheme and (ages[1] < scheme.min_age or ages[0] > scheme.max_age) and row["incidents"] == 0:
        model.fixed.update({Node(population, m): 0 for m in MEASURES})


def _equity(model, t, by, populations, meta, config):
    groups = defaultdict(list)
    white = config.ethnicity_groups.get("W", "White") if config else "White"
    for i, row in enumerate(t.rows):
        population = (row["dimension"].lower(), row["group"])
        groups[population[0]].append(population)
        incidents, offered, accepted = (Node(population, m) for m in ("incidents", "offered", "accepted"))
        model.show((t.key, i, "incidents"), (incidents,), (row["incidents"],))
        model.show((t.key, i, "offer_rate"), (offered, incidents), tuple(row["offer_rate"]))
        model.show((t.key, i, "divert_rate"), (accepted, incidents), tuple(row["divert_rate"]))
        reference = ("ethnicity", white)
        for column, measure in (("offer_rri", "offered"), ("divert_rri", "accepted")):
            if isinstance(row.get(column), RelativeRate):
                rri = row[column]
                model.show((t.key, i, column), (Node(population, measure), incidents, Node(reference, measure),
                                                Node(reference, "incidents")),
                           (*rri.group, *rri.reference))
    for parts in groups.values():
        populations.update(parts)
        model.partition(("all",), parts)


def _scheme_groups(by, t_rows_groups, config, meta: dict) -> list[tuple]:
    """The populations that split diversions by scheme: the breakdown's rows when it is by
    scheme, else the --scheme the report is for, else each configured scheme (a reader of the
    published config knows no other)."""
    if by == "scheme":
        return t_rows_groups
    if meta.get("scheme"):
        return [("scheme", meta["scheme"])]
    return [("scheme", key) for key in (config.schemes if config else ())]


def _scheme_of(population: tuple, config):
    return config.schemes.get(population[1]) if config else None


def _outcome_codes(model, t, by, populations, meta, config):
    shown = {}
    for i, row in enumerate(t.rows):
        node = Node(("outcome", row["code"]), "count")
        model.show((t.key, i, "count"), (node,), (row["count"],))
        shown[row["code"]] = node
    schemes = _scheme_groups(by, [p for p in populations if p[0] == "scheme"], config, meta)
    closing = {(scheme.completion_outcome, scheme.failure_outcome) if scheme else (22, 1)
               for scheme in (_scheme_of(p, config) for p in schemes)}
    feeds = defaultdict(list)  # code -> the counts that close with it
    if len(closing) == 1 and by != "scheme":  # every scheme closes alike: completed and failed
        completion, failure = closing.pop()
        feeds[str(completion)].append(Node(("all",), "completed"))
        feeds[str(failure)].append(Node(("all",), "failed"))
    else:
        model.partition(("all",), schemes, ("completed", "failed"))
        for population in schemes:
            scheme = _scheme_of(population, config)
            feeds[str(scheme.completion_outcome if scheme else 22)].append(Node(population, "completed"))
            feeds[str(scheme.failure_outcome if scheme else 1)].append(Node(population, "failed"))
    for code, parts in feeds.items():
        # a code with no row is a count of 0, which the reader knows
        node = shown.get(code) or Node(("outcome", code), "count")
        if code not in shown:
            model.fixed[node] = 0
        model.total(node, parts)
    for code, node in shown.items():
        if code not in feeds:
            model.total(node, [])


def _trend(model, t, by, populations, meta, config):
    months = []
    for i, row in enumerate(t.rows):
        month = ("trend", row["month"])
        months.append(month)
        for column in ("incidents", "offered", "completed"):
            model.show((t.key, i, column), (Node(month, column),), (row[column],))
        if isinstance(row.get("change"), Change):
            model.show((t.key, i, "change"), (Node(months[-2], "incidents"), Node(month, "incidents")),
                       tuple(row["change"]))
    start, end = meta["period"]["from"], meta["period"]["to"]
    inside = [m for m in months if start[:7] <= m[1] <= end[:7]]
    # the trend's months add up to the period's incidents when the period starts on a month's
    # first day inside the trend (a month's row counts from its first day)
    if start.endswith("-01") and inside and inside[0][1] == start[:7]:
        model.total(Node(("all",), "incidents"), [Node(m, "incidents") for m in inside])


def _reoffending(model, t, by, populations, meta, config):
    for i, row in enumerate(t.rows):
        cohort = ("cohort", row["cohort"], row["group"])
        people = Node(cohort, "people")
        if isinstance(row["people"], int):
            model.show((t.key, i, "people"), (people,), (row["people"],))
        for column in ("within_6", "within_12"):
            if isinstance(row[column], Rate):
                model.show((t.key, i, column), (Node(cohort, column), people), tuple(row[column]))


def _cost(model, t, by, populations, meta, config):
    everyone = ("all",)
    avoided, place_cost, net = (Node(("cost",), m) for m in ("avoided", "place_cost", "net"))
    model.money.update((avoided, place_cost, net))
    # rows in reports.py's order: completed, unit cost, court cost avoided, places, their cost, net
    completed, unit, saved, places, spent, kept = (row["value"] for row in t.rows)
    model.show((t.key, 0, "value"), (Node(everyone, "completed"),), (completed,))
    model.show((t.key, 1, "value"), (), ())  # a unit cost from the config: a constant, not a count
    model.show((t.key, 2, "value"), (avoided,), (saved.amount,))
    model.show((t.key, 3, "value"), (Node(everyone, "accepted"),), (places,))
    model.show((t.key, 4, "value"), (place_cost,), (spent.amount,))
    model.show((t.key, 5, "value"), (net,), (kept.amount,))
    model.total(avoided, [Node(everyone, "completed")], [unit.amount])
    model.total(avoided, [net, place_cost])
    schemes = _scheme_groups(by, [p for p in populations if p[0] == "scheme"], config, meta)
    model.partition(everyone, schemes, ("accepted",))
    # the place cost is built from counts no table shows: each scheme's places in each age group
    # it takes (a reader knows from the config that the youth scheme takes only the youth, and
    # what each place costs); a scheme's places are its age groups' places, an age group's places
    # every scheme's that takes it
    ages = {True: ("age_band", YOUTH_BAND), False: ("adult",)}
    of_scheme, of_age = defaultdict(list), defaultdict(list)
    for key, youth, _, count in spent.parts:
        node = Node(("scheme", key, ages[youth]), "accepted")
        model.places[node] = count
        of_scheme[key].append(node)
        of_age[youth].append(node)
    model.total(place_cost, list(model.places), [cost for _, _, cost, _ in spent.parts])
    for key, nodes in of_scheme.items():
        model.total(Node(("scheme", key), "accepted"), nodes)
    if sum(model.places.values()) == places:  # every place is in a configured scheme in scope
        for youth, population in ages.items():
            model.total(Node(population, "accepted"), of_age[youth])
_BUILDERS = {"summary": _summary, "adult_youth": _adult_youth, "breakdown": _breakdown, "equity": _equity,
             "outcome_codes": _outcome_codes, "trend": _trend, "reoffending": _reoffending, "cost": _cost}


# ---- the reader: what can be worked out --------------------------------------------------
#
# A suppressed count is safe when a second set of counts exists, whole numbers within what
# each mark says, that fits every equation and every figure shown and differs in that count.
# An integer-programming solver (HiGHS) looks for the greatest and least value the count can
# take; one such solution proves the count cannot be pinned down by any reasoning, and stays
# a proof when more is withheld (that only widens what fits).

def _known(model: _Model, hidden: dict) -> dict:
    """The value of every node some cell shows in full."""
    known = dict(model.fixed)
    for nodes in model.cells.values():
        if not any(n in hidden for n in nodes):
            for n in nodes:
                known[n] = model.values[n]
    return known


class _Reader:
    """The report as a reader has it, as one integer program over every node the equations
    hold: a shown node is fixed to its value, a withheld one bounded by what its mark says.
    `show(hidden)` moves the bounds to another choice of what to withhold."""

    def __init__(self, model: _Model):
        import numpy as np

        self.model, self.np = model, np
        self.columns: dict = {}
        starts, indices, values = [], [], []
        for equation in model.equations:
            starts.append(len(indices))
            for n, c in equation.items():
                indices.append(self.columns.setdefault(n, len(self.columns)))
                values.append(float(c))
        self.solver = solver = _solver()
        width = len(self.columns)
        solver.addVars(width, np.zeros(width), np.zeros(width))
        counts = [i for n, i in self.columns.items() if n not in model.money]
        solver.changeColsIntegrality(len(counts), np.array(counts, dtype=np.int32),
                                     np.ones(len(counts), dtype=np.uint8))  # a count is a whole number
        zeros = np.zeros(len(starts))
        solver.addRows(len(starts), zeros, zeros, len(indices), np.array(starts, dtype=np.int32),
                       np.array(indices, dtype=np.int32), np.array(values))
        self.hidden: dict = {}
        self.known: dict = {}
        self.loose = False  # read * as "withheld", not as "at least N"

    def show(self, hidden: dict) -> None:
        np = self.np
        self.hidden, self.known = hidden, _known(self.model, hidden)
        # the unknowns that equations tie together: a change in one part leaves the others as
        # they truly are, so an alternative need only be whole numbers in its own part
        parent: dict = {}

        def root(n):
            while parent.setdefault(n, n) != n:
                parent[n] = parent[parent[n]]
                n = parent[n]
            return n

        for equation in self.model.equations:
            unknown = [n for n in equation if n not in self.known]
            for n in unknown[1:]:
                parent[root(n)] = root(unknown[0])
        self.part_of = {n: root(n) for n in parent}
        spans = [(self.known[n], self.known[n]) if n in self.known else self.bounds(n) for n in self.columns]
        self.solver.changeColsBounds(len(spans), np.arange(len(spans), dtype=np.int32),
                                     np.array([lo for lo, _ in spans], dtype=float),
                                     np.array([hi for _, hi in spans], dtype=float))

    def bounds(self, node) -> tuple[float, float]:
        big = 1e9  # in place of no bound at all: HiGHS treats 1e20 as infinite
        if node in self.model.money:
            return -1e20, 1e20
        state = self.hidden.get(node)
        if state == PRIMARY:
            return 0, self.model.threshold - 1
        if state == SECONDARY and not self.loose:
            return self.model.threshold, big
        return 0, big

    def alternative(self, node) -> dict | None:
        """Counts that fit all the report shows with `node` different from its true value, or
        None when there are none (the node is pinned down)."""
        column = self.columns.get(node)
        low, high = self.bounds(node)
        if column is None:  # in no equation: anything within its mark fits
            return {node: low if self.model.values[node] != low else high} if high - low >= 1 else None
        truth = self.model.values[node]
        optimal = highspy().HighsModelStatus.kOptimal
        try:
            for lo, hi in ((truth + 1, high), (low, truth - 1)):
                if lo > hi:
                    continue
                self.solver.changeColBounds(column, lo, hi)
                found = self._solve(optimal, self.part_of.get(node))
                if found is not None:
                    return found
        finally:
            self.solver.changeColBounds(column, low, high)
        return None


    def _solve(self, optimal, part) -> dict | None:
        """The unknowns of `part` in a solution in whole numbers (with the rest as they truly
        are), from the linear relaxation when that gives one (it mostly does, and fast), else
        from the integer program."""
        for relaxed in (True, False):
            self.solver.setOptionValue("solve_relaxation", relaxed)
            self.solver.run()
            if self.solver.getModelStatus() != optimal:
                return None  # no solution at all, or (relaxed) none even in fractions
            values = self.solver.getSolution().col_value
            solution = {n: values[self.columns[n]] for n, p in self.part_of.items() if p == part}
            if all(abs(v - round(v)) < 1e-6 for n, v in solution.items() if n not in self.model.money):
                return solution
        return None


def highspy():
    import highspy as module

    return module


def _solver():
    """A silent HiGHS instance (its first one prints a banner straight to stdout)."""
    import os
    import sys

    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 1)
            solver = highspy().Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)
    solver.setOptionValue("output_flag", False)
    solver.setOptionValue("mip_rel_gap", 1e9)  # any alternative will do: stop at the first found
    return solver


# ---- choosing what else to withhold -----------------------------------------------------

def _free_when_loose(reader: _Reader, hidden: dict, node) -> bool:
    reader.loose = True
    try:
        reader.show(hidden)
        return reader.alternative(node) is not None
    finally:
        reader.loose = False
        reader.show(hidden)


def _to_withhold(reader: _Reader, hidden: dict, target, tries: int = 4) -> tuple:
    """The shown figure to withhold for `target`, and whether withholding it is known to let
    `target` move: of those in the equations around it (the ones with the fewest unknowns
    first), the first that does; failing that the first of them. None if none is tied to it."""
    candidates = _candidates(reader.model, target, reader.known)
    try:
        for candidate in candidates[:tries]:
            reader.show({**hidden, candidate: SECONDARY})
            if reader.alternative(target) is not None:
                return candidate, True
    finally:
        reader.show(hidden)
    return (candidates[0] if candidates else None), False


def _candidates(model: _Model, target, known: dict) -> list:
    cells_showing = defaultdict(int)
    for nodes in model.cells.values():
        for n in nodes:
            cells_showing[n] += 1

    def preference(n):
        # a count before a sum of money, then the one fewest cells show (a rate's denominator
        # before a count of its own), a part before the grand total, then the smallest
        return n in model.money, cells_showing[n], n.population == ("all",), abs(model.values[n]), str(n)

    ordered, seen, frontier = [], {target}, {target}
    while frontier:
        equations = sorted((e for e in model.equations if not frontier.isdisjoint(e)),
                           key=lambda e: sum(n not in known for n in e))
        for equation in equations:
            # a count the config fixes is known however much is withheld: never a candidate
            found = [n for n in equation if n in known and n in model.values and n not in model.fixed
                     and n not in ordered]
            ordered += sorted(found, key=preference)
        frontier = {n for e in equations for n in e if n not in known and n not in seen}
        seen |= frontier
    return ordered
