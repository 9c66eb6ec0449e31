"""identity.py: near matches between a new arrest and stored people are
surfaced with reasons; exact and unrelated records give no reasons."""

from __future__ import annotations

import unicodedata
from datetime import date, timedelta

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from diversion_cli.identity import (
    NameAndBirth,
    first_forename,
    near_match_reasons,
    normalise,
    similar,
    sound_key,
    swapped_day_month,
)

FAST = settings(max_examples=200, deadline=None, database=None)
DOB = date(1990, 3, 5)
SWAPPED = date(1990, 5, 3)


def reasons(new: tuple[str, str, date], old: tuple[str, str, date]) -> list[str]:
    return near_match_reasons(NameAndBirth(*new), *old)


# --- near matches -----------------------------------------------------------

@pytest.mark.parametrize("new_surname, old_surname", [("Smith", "Smyth"), ("Smyth", "Smith"),
                                                      ("Thompson", "Thomson"), ("Reid", "Reed")])
def test_surname_spelt_differently_is_a_near_match(new_surname, old_surname):
    got = reasons((new_surname, "John", DOB), (old_surname, "John", DOB))
    assert got[0] == "same date of birth"
    assert len(got) == 2 and "surname" in got[1] and "forename same" in got[1]


@pytest.mark.parametrize("new_forename, old_forename", [
    ("Mohammed", "Muhammad"), ("Muhammad", "Mohammed"), ("Mohamed", "Muhammad"),
    ("Mohammad", "Mohammed"), ("Jon", "John"),
])
def test_forename_spelt_differently_is_a_near_match(new_forename, old_forename):
    got = reasons(("Khan", new_forename, DOB), ("Khan", old_forename, DOB))
    assert got[0] == "same date of birth"
    assert len(got) == 2 and "surname same" in got[1] and "forename" in got[1]


def test_forename_and_surname_swapped():
    got = reasons(("Smith", "John", DOB), ("John", "Smith", DOB))
    assert got == ["same date of birth", "forename and surname swapped"]


def test_swapped_names_with_a_spelling_difference():
    got = reasons(("Ahmed", "Mohammed", DOB), ("Muhammad", "Ahmed", DOB))
    assert got == ["same date of birth", "forename and surname swapped"]


def test_day_and_month_of_birth_swapped():
    got = reasons(("Smith", "John", DOB), ("Smith", "John", SWAPPED))
    assert got[0] == "day and month of birth swapped"
    assert len(got) == 2


def test_day_and_month_swapped_and_spelling():
    got = reasons(("Smith", "John", DOB), ("Smyth", "John", SWAPPED))
    assert got[0] == "day and month of birth swapped"
    assert "surname" in got[1]


def test_extra_forename_is_a_near_match_not_exact():
    got = reasons(("Smith", "John Paul", DOB), ("Smith", "John", DOB))
    assert got == ["same date of birth", "same surname and first forename"]


def test_exact_match_returns_nothing():
    assert reasons(("Smith", "John", DOB), ("Smith", "John", DOB)) == []


def test_exact_match_ignores_case_punctuation_and_spacing():
    assert reasons(("O'Brien", "Mary Ann", DOB), ("o brien", "MARY  ANN", DOB)) == []


@pytest.mark.parametrize("other_dob", [date(1991, 3, 5), DOB + timedelta(days=1), date(1990, 3, 6),
                                       date(1990, 4, 5)])
def test_different_dob_returns_nothing(other_dob):
    assert reasons(("Smith", "John", DOB), ("Smith", "John", other_dob)) == []
    assert reasons(("Smith", "John", DOB), ("Smyth", "John", other_dob)) == []


@pytest.mark.parametrize("old", [("Jones", "Mary"), ("Patel", "Priya"), ("Smith", "Mary"), ("Jones", "John"),
                                 ("Wang", "Xiaoming")])
def test_unrelated_names_return_nothing(old):
    assert reasons(("Smith", "John", DOB), (*old, DOB)) == []


def test_day_equal_to_month_or_over_12_has_no_swap():
    assert swapped_day_month(date(1990, 3, 5)) == date(1990, 5, 3)
    assert swapped_day_month(date(1990, 12, 1)) == date(1990, 1, 12)
    assert swapped_day_month(date(1990, 3, 3)) is None
    assert swapped_day_month(date(1990, 3, 13)) is None
    assert swapped_day_month(date(1990, 1, 31)) is None


def test_day_over_12_only_matches_same_dob():
    dob = date(1990, 3, 13)
    assert reasons(("Smith", "John", dob), ("Smyth", "John", dob))[0] == "same date of birth"
    assert reasons(("Smith", "John", dob), ("Smith", "John", date(1990, 3, 31))) == []


# --- accents and scripts ----------------------------------------------------

@pytest.mark.parametrize("accented, plain", [("Zoë", "Zoe"), ("ZOË", "zoe"), ("José", "Jose"),
                                             ("Nguyễn", "Nguyen"), ("Brontë", "bronte"), ("Ångström", "angstrom"),
                                             ("Łukasz", "łukasz")])
def test_accents_are_normalised(accented, plain):
    assert normalise(accented) == normalise(plain)


def test_composed_and_decomposed_spellings_match():
    composed = unicodedata.normalize("NFC", "Zoë")
    decomposed = unicodedata.normalize("NFD", "Zoë")
    assert composed != decomposed
    assert normalise(composed) == normalise(decomposed) == "zoe"


def test_accented_and_plain_spelling_is_the_same_person():
    assert reasons(("Brown", "Zoë", DOB), ("Brown", "Zoe", DOB)) == []
    assert reasons(("Brown", "Zoë", DOB), ("Brown", "Zoe", SWAPPED)) == [
        "day and month of birth swapped", "same surname and first forename"]


def test_normalise_drops_punctuation_and_case():
    assert normalise("  O'Brien-SMITH ") == "o brien smith"
    assert normalise("Mary   Ann") == "mary ann"
    assert normalise("'-.") == ""
    assert normalise("Straße") == "strasse"


@pytest.mark.parametrize("surname, forenames", [
    ("محمد", "علي"), ("王", "小明"), ("Петров", "Иван"), ("Παπαδόπουλος", "Γιώργος"), ("שפירא", "דוד"),
    ("Nguyễn", "Thị Minh"), ("김", "민준"), ("शर्मा", "राम"),
])
def test_non_latin_names_handled(surname, forenames):
    new = (surname, forenames, DOB)
    assert reasons(new, new) == []
    assert reasons(new, ("Smith", "John", DOB)) == []
    assert reasons(new, (forenames, surname, DOB)) == ["same date of birth", "forename and surname swapped"]
    assert reasons(new, (surname, forenames, SWAPPED)) == [
        "day and month of birth swapped", "same surname and first forename"]
    assert sound_key(normalise(surname))  # a key, never empty


def test_non_latin_spelling_variant_flagged():
    got = reasons(("Иванов", "Иван", DOB), ("Иванова", "Иван", DOB))
    assert got[0] == "same date of birth" and "surname" in got[1]


def test_sound_key_latin_is_phonetic_other_scripts_literal():
    assert sound_key("smith") == sound_key("smyth")
    assert sound_key("mohammed") == sound_key("muhammad")
    assert sound_key("иванов") == "иванов"
    assert sound_key("mary ann") == sound_key("maryann")


def test_normalise_keeps_vowel_signs_that_change_the_name():
    assert normalise("राम") != normalise("रीमा")


def test_first_forename_and_similar():
    assert first_forename("john paul") == "john"
    assert first_forename("") == ""
    assert similar("", "smith") is None
    assert similar("smith", "smith") == "same"
    assert similar("smith", "jones") is None


# --- properties -------------------------------------------------------------

NAMES = st.text(alphabet=st.characters(categories=["L", "M", "Zs", "Pd", "Po"]), min_size=0, max_size=20)
LATIN = st.text(alphabet="abcdefghijklmnopqrstuvwxyzé' -", min_size=1, max_size=12)
DATES = st.dates(min_value=date(1920, 1, 1), max_value=date(2016, 12, 31))


@FAST
@given(NAMES, NAMES, DATES, NAMES, NAMES, DATES)
def test_near_match_reasons_never_raises_and_is_well_formed(s1, f1, d1, s2, f2, d2):
    got = near_match_reasons(NameAndBirth(s1, f1, d1), s2, f2, d2)
    assert isinstance(got, list) and all(isinstance(r, str) for r in got)
    if got:
        assert len(got) == 2
        assert got[0] in ("same date of birth", "day and month of birth swapped")


@FAST
@given(st.one_of(LATIN, NAMES), st.one_of(LATIN, NAMES), DATES, st.one_of(LATIN, NAMES),
       st.one_of(LATIN, NAMES), DATES)
def test_near_match_is_symmetric(s1, f1, d1, s2, f2, d2):
    one_way = near_match_reasons(NameAndBirth(s1, f1, d1), s2, f2, d2)
    other_way = near_match_reasons(NameAndBirth(s2, f2, d2), s1, f1, d1)
    assert bool(one_way) == bool(other_way)


@FAST
@given(NAMES, NAMES, DATES)
def test_same_record_is_never_a_near_match(surname, forenames, dob):
    assert near_match_reasons(NameAndBirth(surname, forenames, dob), surname, forenames, dob) == []


SWAPPABLE = st.builds(date, st.integers(1920, 2016), st.integers(1, 12), st.integers(1, 12)).filter(
    lambda d: d.day != d.month)
NAMED = st.tuples(NAMES, st.characters(categories=["L"]), NAMES).map("".join)  # at least one letter


@FAST
@given(NAMED, NAMED, SWAPPABLE)
def test_day_month_swap_of_a_named_person_is_always_flagged(surname, forenames, dob):
    assume(normalise(surname) and normalise(forenames))
    swapped = swapped_day_month(dob)
    assert swapped is not None and swapped != dob
    got = near_match_reasons(NameAndBirth(surname, forenames, dob), surname, forenames, swapped)
    assert got == ["day and month of birth swapped", "same surname and first forename"]


@FAST
@given(NAMES, NAMES, DATES, NAMES, NAMES, DATES)
def test_unrelated_dob_never_matches(s1, f1, d1, s2, f2, d2):
    assume(d2 != d1 and d2 != swapped_day_month(d1))
    assert near_match_reasons(NameAndBirth(s1, f1, d1), s2, f2, d2) == []


@FAST
@given(st.text(max_size=30))
def test_normalise_output_is_clean(name):
    out = normalise(name)
    assert out == out.strip() and "  " not in out
    # letters, and the marks that are part of letters in non-Latin scripts
    assert all(ch == " " or unicodedata.category(ch)[0] in "LM" for ch in out)
    assert normalise(name.upper()) == normalise(name.lower()) or not name.isascii()
