"""Eligibility: given the facts of a case, the person's referral history and
the configured schemes, a verdict with every reason. Pure: no I/O, no clock
(the caller passes `now`), so a supervisor or a test can replay any decision.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import NamedTuple

from diversion_cli.config import Scheme
from diversion_cli.values import age_on

DIVERTED = ("accepted", "completed", "failed")  # the one shot has been used
OPEN = ("offered", "accepted")


class Reason(NamedTuple):
    code: str
    message: str
    scheme: str | None = None

    def as_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "scheme": self.scheme}


class CaseFacts(NamedTuple):
    """What was recorded about one possession incident."""

    occurred_at: datetime
    age: int
    drug_classes: tuple[str | None, ...]  # None: a substance awaiting analysis
    supply_suspected: bool = False
    co_offences: tuple[str, ...] = ()


class PriorReferral(NamedTuple):
    id: str
    scheme: str
    one_shot_group: str
    status: str
    offered_at: str
    diverted_at: str | None


class Verdict(NamedTuple):
    eligible: bool
    scheme: str | None
    reasons: tuple[Reason, ...] = ()

    def reasons_as_dicts(self) -> list[dict]:
        return [r.as_dict() for r in self.reasons]


def one_shot_used(scheme: Scheme, history: list[PriorReferral], now: datetime) -> PriorReferral | None:
    """The earlier diversion that uses up this scheme's one shot, if any."""
    since = lookback_since(scheme, now)
    as_of = now.isoformat(timespec="seconds")
    for prior in history:
        if prior.status not in DIVERTED or prior.offered_at > as_of:
            continue  # not a diversion, or one that came after the case (back-filled history)
        if scheme.one_shot_group != "*" and prior.one_shot_group != scheme.one_shot_group:
            continue
        if since is not None and (prior.diverted_at or prior.offered_at) < since:
            continue
        return prior
    return None


def lookback_since(scheme: Scheme, now: datetime) -> str | None:
    """ISO start of the look-back window, None for a lifetime one shot. The
    store's trigger checks the same window, so both layers agree."""
    if not scheme.lookback_years:
        return None
    try:
        start = now.replace(year=now.year - scheme.lookback_years)
    except ValueError:  # 29 February
        start = now.replace(year=now.year - scheme.lookback_years, day=28)
    return start.isoformat(timespec="seconds")


def _scheme_reasons(scheme: Scheme, case: CaseFacts | None, age: int, history: list[PriorReferral],
                    now: datetime, supervisor_approved: bool) -> list[Reason]:
    key = scheme.key
    reasons = []
    if not scheme.min_age <= age <= scheme.max_age:
        reasons.append(Reason("AGE_OUT_OF_RANGE",
                              f"{scheme.name} takes ages {scheme.min_age}–{scheme.max_age}; the person is {age}.", key))
    used = one_shot_used(scheme, history, now)
    if used:
        span = "" if not scheme.lookback_years else f" within the last {scheme.lookback_years} years"
        reasons.append(Reason("ONE_SHOT_USED",
                              f"Already diverted{span} ({used.id}, {used.scheme}, {used.status}, "
                              f"{(used.diverted_at or used.offered_at)[:10]}): the one shot is used; dealt with as normal.", key))
    if case is None:
        return reasons
    # decided on what is known: a substance awaiting analysis has no class yet (domain.md)
    uncovered = sorted({c for c in case.drug_classes if c} - set(scheme.drug_classes))
    if uncovered:
        reasons.append(Reason("DRUG_CLASS_NOT_COVERED",
                              f"{scheme.name} does not take class {', '.join(uncovered)} drugs.", key))
    if case.supply_suspected and scheme.exclude_supply:
        reasons.append(Reason("SUPPLY_SUSPECTED",
                              "Possession with intent to supply is suspected: not a personal-use case.", key))
    if case.co_offences:
        listed = "; ".join(case.co_offences)
        if scheme.co_offence == "exclude":
            reasons.append(Reason("CO_OFFENCE", f"Caught with another offence ({listed}): excluded.", key))
        elif scheme.co_offence == "supervisor" and not supervisor_approved:
            reasons.append(Reason("SUPERVISOR_DECISION_NEEDED",
                                  f"Caught with another offence ({listed}): needs a supervisor's decision.", key))
    if scheme.max_days_since_offence is not None:
        days = (now.date() - case.occurred_at.date()).days
        if days > scheme.max_days_since_offence:
            reasons.append(Reason("OFFENCE_TOO_OLD",
                                  f"The offence is {days} days old; {scheme.name} takes offences up to "
                                  f"{scheme.max_days_since_offence} days old.", key))
    return reasons


def decide(schemes: list[Scheme], history: list[PriorReferral], now: datetime, *,
           case: CaseFacts | None = None, dob: date | None = None,
           requested: str | None = None, supervisor_approved: bool = False) -> Verdict:
    """The verdict for a case (or, with no case, for the person as of `now`).

    Schemes are tried in configured order; the first that takes the case is
    the one offered. With `requested`, only that scheme is considered.
    """
    as_of = now.isoformat(timespec="seconds")
    open_referral = next((p for p in history if p.status in OPEN and p.offered_at <= as_of), None)
    if open_referral:
        return Verdict(False, None, (Reason(
            "OPEN_REFERRAL",
            f"Already has an open referral {open_referral.id} ({open_referral.scheme}, "
            f"{open_referral.status} {open_referral.offered_at[:10]}): only one at a time."),))
    age = case.age if case else age_on(dob, now.date()) if dob else None
    candidates = [s for s in schemes if requested in (None, s.key)]
    refusals: list[Reason] = []
    for scheme in candidates:
        reasons = _scheme_reasons(scheme, case, age, history, now, supervisor_approved)
        if not reasons:
            why = [f"aged {age}"]
            if case:
                known = sorted({c for c in case.drug_classes if c})
                awaiting = None in case.drug_classes
                why.append(("class " + ", ".join(known) if known else "class not known")
                           + (" (a substance awaits analysis)" if awaiting else ""))
            why.append("no earlier diversion counts against it")
            return Verdict(True, scheme.key, (Reason(
                "ELIGIBLE", f"Eligible for {scheme.name}: {'; '.join(why)}.", scheme.key),))
        refusals.extend(reasons)
    # Schemes that cannot take this age at all are not the reason for a refusal,
    # unless no scheme takes it.
    fitting = {s.key for s in candidates if s.min_age <= age <= s.max_age}
    shown, seen = [], set()
    for r in refusals:
        if (fitting and r.scheme not in fitting) or (r.code, r.message) in seen:
            continue  # one earlier diversion can bar several schemes: say it once
        seen.add((r.code, r.message))
        shown.append(r)
    if not candidates:
        shown = [Reason("NO_SCHEME", "No configured scheme applies.")]
    return Verdict(False, None, tuple(shown))
