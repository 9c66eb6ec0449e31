"""rules.py with the shipped schemes: who is offered which scheme, and why not."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diversion_cli.config import load_config
from diversion_cli.rules import CaseFacts, PriorReferral, Verdict, decide, lookback_since, one_shot_used

FAST = settings(max_examples=200, deadline=None, database=None)
CFG = load_config(None)
SCHEMES = list(CFG.schemes.values())
NOW = datetime(2026, 6, 1, 12, 0)
STATUSES = ("offered", "accepted", "completed", "failed", "declined", "voided")


def case(age: int = 30, classes: tuple[str, ...] = ("B",), days_ago: int = 1, **kw) -> CaseFacts:
    return CaseFacts(occurred_at=NOW - timedelta(days=days_ago), age=age, drug_classes=classes, **kw)


def prior(status: str, scheme: str = "dep-adult", when: datetime | None = None, n: int = 1) -> PriorReferral:
    """An earlier referral as the store reports it (group from the shipped scheme)."""
    when = when or NOW - timedelta(days=400)
    diverted = when + timedelta(days=1) if status in ("accepted", "completed", "failed") else None
    return PriorReferral(
        id=f"R-{when.year}-{n:06d}", scheme=scheme, one_shot_group=CFG.schemes[scheme].one_shot_group,
        status=status, offered_at=when.isoformat(timespec="seconds"),
        diverted_at=diverted.isoformat(timespec="seconds") if diverted else None)


def with_lookback(scheme, years: int):
    """The scheme with another look-back (Scheme is a dataclass or a NamedTuple)."""
    if dataclasses.is_dataclass(scheme):
        return dataclasses.replace(scheme, lookback_years=years)
    return scheme._replace(lookback_years=years)


def codes(verdict: Verdict) -> list[str]:
    return [r.code for r in verdict.reasons]


def refused_for(verdict: Verdict, code: str) -> list[str | None]:
    return [r.scheme for r in verdict.reasons if r.code == code]


# --- which scheme ----------------------------------------------------------

def test_shipped_schemes_in_configured_order():
    assert [s.key for s in SCHEMES] == ["dep-adult", "dep-youth", "checkpoint"]


@pytest.mark.parametrize("age", [18, 30, 110])
def test_adult_gets_the_adult_workshop(age):
    verdict = decide(SCHEMES, [], NOW, case=case(age))
    assert verdict.eligible and verdict.scheme == "dep-adult"
    assert codes(verdict) == ["ELIGIBLE"]
    assert verdict.reasons[0].scheme == "dep-adult"


@pytest.mark.parametrize("age", [10, 15, 17])
def test_youth_gets_the_youth_pathway(age):
    verdict = decide(SCHEMES, [], NOW, case=case(age))
    assert verdict.eligible and verdict.scheme == "dep-youth"


@pytest.mark.parametrize("classes", [("A",), ("B",), ("C",), ("A", "B", "C"), ("A", "A")])
def test_every_drug_class_covered(classes):
    assert decide(SCHEMES, [], NOW, case=case(30, classes)).scheme == "dep-adult"


def test_age_9_not_covered():
    verdict = decide(SCHEMES, [], NOW, case=case(9))
    assert not verdict.eligible and verdict.scheme is None
    assert set(codes(verdict)) == {"AGE_OUT_OF_RANGE"}
    assert "9" in verdict.reasons[0].message


def test_age_out_of_range_hidden_when_another_scheme_takes_the_age():
    verdict = decide(SCHEMES, [], NOW, case=case(30, supply_suspected=True))
    assert "AGE_OUT_OF_RANGE" not in codes(verdict)


def test_person_check_without_a_case_uses_dob():
    verdict = decide(SCHEMES, [], NOW, dob=date(2011, 1, 1))
    assert verdict.eligible and verdict.scheme == "dep-youth"
    assert "aged 15" in verdict.reasons[0].message


# --- the case --------------------------------------------------------------

@pytest.mark.parametrize("age", [15, 30])
def test_supply_suspected_refused(age):
    verdict = decide(SCHEMES, [], NOW, case=case(age, supply_suspected=True), supervisor_approved=True)
    assert not verdict.eligible and verdict.scheme is None
    assert "SUPPLY_SUSPECTED" in codes(verdict)


def test_co_offence_excluded_from_adult_workshop():
    verdict = decide(SCHEMES, [], NOW, case=case(30, co_offences=("theft",)), requested="dep-adult")
    assert not verdict.eligible
    assert refused_for(verdict, "CO_OFFENCE") == ["dep-adult"]
    assert "theft" in verdict.reasons[0].message
    # a supervisor cannot override an exclusion
    approved = decide(SCHEMES, [], NOW, case=case(30, co_offences=("theft",)), requested="dep-adult",
                      supervisor_approved=True)
    assert not approved.eligible


def test_co_offence_at_checkpoint_needs_a_supervisor():
    verdict = decide(SCHEMES, [], NOW, case=case(30, co_offences=("theft",)))
    assert not verdict.eligible
    assert "SUPERVISOR_DECISION_NEEDED" in codes(verdict)
    assert "CO_OFFENCE" in codes(verdict)


def test_co_offence_with_supervisor_approval_goes_to_checkpoint():
    verdict = decide(SCHEMES, [], NOW, case=case(30, co_offences=("theft",)), supervisor_approved=True)
    assert verdict.eligible and verdict.scheme == "checkpoint"


def test_youth_co_offence_needs_a_supervisor_then_youth_pathway():
    refused = decide(SCHEMES, [], NOW, case=case(15, co_offences=("criminal damage",)))
    assert not refused.eligible and "SUPERVISOR_DECISION_NEEDED" in codes(refused)
    approved = decide(SCHEMES, [], NOW, case=case(15, co_offences=("criminal damage",)), supervisor_approved=True)
    assert approved.scheme == "dep-youth"


def test_refusal_reasons_name_only_schemes_that_take_the_age():
    adult = decide(SCHEMES, [], NOW, case=case(30, co_offences=("theft",)))
    assert refused_for(adult, "SUPERVISOR_DECISION_NEEDED") == ["checkpoint"]
    youth = decide(SCHEMES, [], NOW, case=case(15, co_offences=("theft",)))
    assert "CO_OFFENCE" not in codes(youth)  # dep-adult's exclusion does not apply to a 15-year-old
    assert all(r.scheme == "dep-youth" for r in youth.reasons)


@pytest.mark.parametrize("days_ago, eligible", [(0, True), (89, True), (90, True), (91, False), (400, False)])
def test_offence_older_than_90_days_refused(days_ago, eligible):
    verdict = decide(SCHEMES, [], NOW, case=case(30, days_ago=days_ago))
    assert verdict.eligible is eligible
    if not eligible:
        assert "OFFENCE_TOO_OLD" in codes(verdict)
        assert f"{days_ago} days" in verdict.reasons[0].message


def test_offence_age_counts_calendar_days_not_hours():
    late = CaseFacts(datetime(2026, 3, 3, 23, 59), 30, ("B",))  # 90 calendar days before NOW's date
    assert decide(SCHEMES, [], NOW, case=late).eligible
    early = CaseFacts(datetime(2026, 3, 2, 0, 1), 30, ("B",))
    assert "OFFENCE_TOO_OLD" in codes(decide(SCHEMES, [], NOW, case=early))


# --- history ----------------------------------------------------------------

@pytest.mark.parametrize("status", ["offered", "accepted"])
@pytest.mark.parametrize("age, scheme", [(30, "dep-adult"), (30, "checkpoint"), (15, "dep-youth"),
                                         (30, "dep-youth")])
def test_open_referral_blocks_everything(status, age, scheme):
    history = [prior(status, scheme, when=NOW - timedelta(days=3))]
    verdict = decide(SCHEMES, history, NOW, case=case(age), supervisor_approved=True)
    assert not verdict.eligible and verdict.scheme is None
    assert codes(verdict) == ["OPEN_REFERRAL"]
    assert history[0].id in verdict.reasons[0].message
    # asking for another scheme by name does not get round it
    for key in CFG.schemes:
        assert codes(decide(SCHEMES, history, NOW, case=case(age), requested=key)) == ["OPEN_REFERRAL"]


@pytest.mark.parametrize("status", ["completed", "failed"])
@pytest.mark.parametrize("earlier", ["dep-adult", "checkpoint"])
def test_earlier_adult_diversion_uses_the_one_shot(status, earlier):
    history = [prior(status, earlier)]
    verdict = decide(SCHEMES, history, NOW, case=case(30), supervisor_approved=True)
    assert not verdict.eligible and verdict.scheme is None
    assert "ONE_SHOT_USED" in codes(verdict)
    assert history[0].id in verdict.reasons[0].message


@pytest.mark.parametrize("status", ["accepted", "completed", "failed"])
def test_diverted_statuses_count_as_one_shot_used(status):
    history = [prior(status, "dep-adult")]
    for key in ("dep-adult", "checkpoint"):
        assert one_shot_used(CFG.schemes[key], history, NOW) == history[0]
    assert one_shot_used(CFG.schemes["dep-youth"], history, NOW) is None


@pytest.mark.parametrize("status", ["declined", "voided"])
def test_declined_or_voided_referral_does_not_count(status):
    history = [prior(status, "dep-adult"), prior(status, "checkpoint", n=2)]
    assert one_shot_used(CFG.schemes["dep-adult"], history, NOW) is None
    verdict = decide(SCHEMES, history, NOW, case=case(30))
    assert verdict.eligible and verdict.scheme == "dep-adult"


@pytest.mark.parametrize("status", ["completed", "failed"])
def test_youth_diversion_does_not_block_an_adult_scheme(status):
    history = [prior(status, "dep-youth", when=NOW - timedelta(days=5 * 365))]
    verdict = decide(SCHEMES, history, NOW, case=case(19))
    assert verdict.eligible and verdict.scheme == "dep-adult"
    # but the youth pathway itself is attendable once
    again = decide(SCHEMES, history, NOW, case=case(16), requested="dep-youth")
    assert not again.eligible and "ONE_SHOT_USED" in codes(again)


def test_adult_diversion_blocks_the_other_adult_scheme():
    history = [prior("completed", "dep-adult")]
    verdict = decide(SCHEMES, history, NOW, case=case(30), requested="checkpoint", supervisor_approved=True)
    assert not verdict.eligible and "ONE_SHOT_USED" in codes(verdict)


def test_one_shot_reason_said_once_across_schemes():
    history = [prior("completed", "dep-adult")]
    verdict = decide(SCHEMES, history, NOW, case=case(30))
    assert codes(verdict).count("ONE_SHOT_USED") == 1


def test_reasons_are_deduplicated():
    verdict = decide(SCHEMES, [prior("failed", "checkpoint")], NOW,
                     case=case(30, supply_suspected=True))
    pairs = [(r.code, r.message) for r in verdict.reasons]
    assert len(pairs) == len(set(pairs))
    assert codes(verdict).count("SUPPLY_SUSPECTED") == 1
    assert codes(verdict).count("ONE_SHOT_USED") == 1


def test_all_reasons_given_not_just_the_first():
    verdict = decide(SCHEMES, [prior("completed", "dep-adult")], NOW,
                     case=case(30, supply_suspected=True, co_offences=("theft",), days_ago=120))
    assert {"ONE_SHOT_USED", "SUPPLY_SUSPECTED", "CO_OFFENCE", "OFFENCE_TOO_OLD"} <= set(codes(verdict))


# --- look-back ----------------------------------------------------------------

LOOKBACK = [with_lookback(s, 2) for s in SCHEMES]


def test_lookback_diversion_3_years_ago_does_not_count():
    history = [prior("completed", "dep-adult", when=NOW - timedelta(days=3 * 365))]
    assert not decide(SCHEMES, history, NOW, case=case(30)).eligible  # lifetime rule
    verdict = decide(LOOKBACK, history, NOW, case=case(30))
    assert verdict.eligible and verdict.scheme == "dep-adult"


def test_lookback_diversion_1_year_ago_counts():
    history = [prior("completed", "dep-adult", when=NOW - timedelta(days=365))]
    verdict = decide(LOOKBACK, history, NOW, case=case(30))
    assert not verdict.eligible
    assert "ONE_SHOT_USED" in codes(verdict)
    assert "2 years" in next(r.message for r in verdict.reasons if r.code == "ONE_SHOT_USED")


def test_lookback_measured_from_diversion_not_offer():
    offered = NOW.replace(year=NOW.year - 2) - timedelta(days=10)  # offered just outside the window
    history = [PriorReferral("R-2024-000001", "dep-adult", "adult", "completed",
                             offered.isoformat(timespec="seconds"),
                             (offered + timedelta(days=20)).isoformat(timespec="seconds"))]
    assert one_shot_used(LOOKBACK[0], history, NOW) == history[0]


def test_lookback_since():
    assert lookback_since(SCHEMES[0], NOW) is None
    assert lookback_since(LOOKBACK[0], NOW) == "2024-06-01T12:00:00"
    assert lookback_since(LOOKBACK[0], datetime(2028, 2, 29, 9, 0)) == "2026-02-28T09:00:00"


# --- requested scheme -----------------------------------------------------------

def test_requested_scheme_honoured():
    verdict = decide(SCHEMES, [], NOW, case=case(30), requested="checkpoint")
    assert verdict.eligible and verdict.scheme == "checkpoint"


def test_requested_scheme_that_does_not_take_the_age_refused():
    verdict = decide(SCHEMES, [], NOW, case=case(30), requested="dep-youth")
    assert not verdict.eligible
    assert refused_for(verdict, "AGE_OUT_OF_RANGE") == ["dep-youth"]


def test_requested_unknown_scheme_gives_no_scheme():
    verdict = decide(SCHEMES, [], NOW, case=case(30), requested="no-such-scheme")
    assert not verdict.eligible and codes(verdict) == ["NO_SCHEME"]


def test_verdict_reasons_as_dicts():
    verdict = decide(SCHEMES, [], NOW, case=case(30))
    assert verdict.reasons_as_dicts() == [{"code": "ELIGIBLE", "message": verdict.reasons[0].message,
                                           "scheme": "dep-adult"}]


# --- properties -------------------------------------------------------------

HISTORY = st.lists(
    st.builds(
        lambda status, scheme, days, n: prior(status, scheme, when=NOW - timedelta(days=days), n=n),
        st.sampled_from(STATUSES), st.sampled_from(list(CFG.schemes)), st.integers(1, 40 * 365),
        st.integers(1, 999_999)),
    max_size=4)


@FAST
@given(age=st.integers(10, 110),
       classes=st.lists(st.sampled_from("ABC"), max_size=3).map(tuple),
       supply=st.booleans(),
       co_offences=st.lists(st.sampled_from(["theft", "criminal damage", "common assault"]), max_size=2).map(tuple),
       days_ago=st.integers(0, 400),
       history=HISTORY,
       lookback=st.integers(0, 10),
       now=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)),
       approved=st.booleans(),
       requested=st.sampled_from([None, *CFG.schemes]))
def test_decide_never_raises_and_verdicts_are_well_formed(age, classes, supply, co_offences, days_ago, history,
                                                          lookback, now, approved, requested):
    schemes = [with_lookback(s, lookback) for s in SCHEMES]
    facts = CaseFacts(now - timedelta(days=days_ago), age, classes, supply, co_offences)
    verdict = decide(schemes, history, now, case=facts, requested=requested, supervisor_approved=approved)
    assert verdict.reasons
    pairs = [(r.code, r.message) for r in verdict.reasons]
    assert len(pairs) == len(set(pairs))
    if verdict.eligible:
        assert [r.code for r in verdict.reasons] == ["ELIGIBLE"]
        chosen = CFG.schemes[verdict.scheme]
        assert verdict.reasons[0].scheme == verdict.scheme
        assert requested in (None, verdict.scheme)
        assert chosen.min_age <= age <= chosen.max_age
        assert set(classes) <= set(chosen.drug_classes)
        assert not supply  # every shipped scheme excludes supply
        assert days_ago <= chosen.max_days_since_offence
        assert not co_offences or (chosen.co_offence == "supervisor" and approved)
        # referrals made after `now` (history back-filled later) do not count against the case
        assert not any(p.status in ("offered", "accepted") and p.offered_at <= now.isoformat() for p in history)
        assert one_shot_used(with_lookback(chosen, lookback), history, now) is None
    else:
        assert verdict.scheme is None
        assert "ELIGIBLE" not in codes(verdict)
        if any(p.status in ("offered", "accepted") and p.offered_at <= now.isoformat() for p in history):
            assert codes(verdict) == ["OPEN_REFERRAL"]


@FAST
@given(age=st.integers(18, 110), history=HISTORY)
def test_a_completed_or_failed_adult_diversion_always_blocks_adults_for_life(age, history):
    diverted = [p for p in history if p.status in ("completed", "failed") and p.one_shot_group == "adult"]
    verdict = decide(SCHEMES, history, NOW, case=case(age), supervisor_approved=True)
    if diverted:
        assert not verdict.eligible
