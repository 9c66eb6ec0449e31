"""Is this the same person? Name normalisation, phonetic keys and near-match
reasons. Pure: the store fetches candidates (same or day/month-swapped date of
birth, through an index); this module says which of them look like the person.

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
    shorter, longer = sorted((a, b), key=len)
    if len(shorter) >= 2 and (longer.startswith(shorter) or (len(shorter) >= 3 and longer[:3] == shorter[:3])):
        return "may be a short form"  # Mo/Mohammed, Danny/Daniel
    if a.isascii() and b.isascii() and (sound_key(a) == sound_key(b) or jellyfish.nysiis(a) == jellyfish.nysiis(b)):
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


def near_match_reasons(new: NameAndBirth, surname: str, forenames: str, dob: date) -> list[str]:
    """Why a stored person (surname, forenames, dob) may be `new` under another
    spelling; empty if they do not look alike or are an exact match."""
    new_s, new_f = new.surname_norm, first_forename(new.forenames_norm)
    old_s, old_f = normalise(surname), first_forename(normalise(forenames))
    reasons = []
    if dob == new.dob:
        reasons.append("same date of birth")
    elif dob == swapped_day_month(new.dob):
        reasons.append("day and month of birth swapped")
    else:
        return []
    surname_like, forename_like = similar(new_s, old_s), similar(new_f, old_f)
    if surname_like and forename_like:
        if surname_like == forename_like == "same":
            if new.forenames_norm == normalise(forenames) and dob == new.dob:
                return []  # exact: the same person, not a near match
            reasons.append("same surname and first forename")
        else:
            reasons.append(f"surname {surname_like}, forename {forename_like}")
        return reasons
    if similar(new_s, old_f) and similar(new_f, old_s):
        reasons.append("forename and surname swapped")
        return reasons
    return []
