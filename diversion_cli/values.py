"""Parsing and validation of the values people type. Pure functions: each
returns a clean value or raises BadInput naming the field."""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime, timedelta

from diversion_cli.errors import BadInput

PNC_CHECK_LETTERS = "ZABCDEFGHJKLMNPQRTUVWXY"  # domain.md: no I, O or S
# [0-9], not \d: other scripts' digits must not make an ID that matches no record
_PNC = re.compile(r"^([0-9]{2}|[0-9]{4})/([0-9]{1,7})([A-Z])$")
_OFFICER = re.compile(r"^[A-Z]{0,4}[0-9]{1,8}$")
_HAS_YEAR = re.compile(r"[0-9]{4}")
_NUMERIC_DATE = re.compile(r"^([0-9]{1,2})[/.-]([0-9]{1,2})[/.-]([0-9]{4})(?:[ T]+(.*))?$")
# A date that starts with its year is read year-month-day and nothing else: dateutil
# would read "1995-15-03" as 15 March, a silent guess on a record that decides prosecution.
# Patterns, not compiled here: re compiles and caches them on first use, off the import path.
_YEAR_FIRST_START = r"[0-9]{4}(?:\s*[-/.]\s*|\s+)[0-9]{1,2}(?![0-9])"
_YEAR_FIRST_ANYWHERE = r"[0-9]{4}(?:\s*[-/.]\s*|\s+)[0-9]{1,2}(?:\s*[-/.]\s*|\s+)[0-9]{1,2}(?![0-9:])"
_YEAR_FIRST = r"([0-9]{4})(?:\s*[-/.]\s*|\s+)([0-9]{1,2})(?:\s*[-/.]\s*|\s+)([0-9]{1,2})(?:(?:\s*T\s*|\s+)(.+))?"
_COMPACT_DATE = r"([0-9]{4})([0-9]{2})([0-9]{2})"  # YYYYMMDD
# English whatever the locale: %a and %b follow LC_TIME, and letters must read the same everywhere.
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# Joiners are part of standard spelling in some scripts (Persian ZWNJ, Indic ZWJ).
_JOINERS = str.maketrans("", "", "\u200c\u200d")
# Clock skew allowed between desks before a time counts as "in the future".
FUTURE_TOLERANCE = timedelta(minutes=5)
MAX_TEXT = 500
MAX_NAME = 100
GENDERS = {"m": "M", "male": "M", "f": "F", "female": "F", "x": "X", "other": "X",
           "non-binary": "X", "u": "U", "unknown": "U", "not stated": "U"}


def now() -> datetime:
    return datetime.now().replace(microsecond=0)


def pnc_check_letter(year2: str, serial7: str) -> str:
    return PNC_CHECK_LETTERS[int(year2 + serial7) % 23]


def parse_pnc(text: str, today: date | None = None) -> str:
    """Canonical `YYYY/NNNNNNNC` from the canonical or the short form."""
    raw = re.sub(r"\s+", "", text or "").upper()
    m = _PNC.match(raw)
    if not m:
        raise BadInput("pnc", f"{text!r} is not a PNC ID (expected YYYY/NNNNNNNC, e.g. 1979/0123456T)")
    year, serial, check = m.groups()
    serial7 = serial.zfill(7)
    if len(year) == 2:
        this_year = (today or date.today()).year
        century = 1900 if int(year) > this_year % 100 else 2000
        year = str(century + int(year))
    if not 1900 <= int(year) <= (today or date.today()).year:
        raise BadInput("pnc", f"{text!r} has an impossible year {year}")
    expected = pnc_check_letter(year[2:], serial7)
    if check != expected:
        raise BadInput("pnc", f"{text!r} has the wrong check letter (mistyped ID?)")
    return f"{year}/{serial7}{check}"


def _reject_control(field: str, text: str) -> None:
    # isprintable() is False for control, format, surrogate, private-use and
    # unassigned characters (and separators other than the space we keep).
    if not text.translate(_JOINERS).isprintable():
        raise BadInput(field, "contains control or unprintable characters")


def clean_name(text: str | None, field: str) -> str:
    """A name as the person spells it: any script, quotes and punctuation
    allowed, but at least one letter and no control characters."""
    value = " ".join((text or "").split())
    if not value:
        raise BadInput(field, "is empty")
    _reject_control(field, value)
    if len(value) > MAX_NAME:
        raise BadInput(field, f"is longer than {MAX_NAME} characters")
    # Any script's digits (Smith2, J0hn, Smith٣): a typo or a test record, never a spelling.
    if any(unicodedata.category(ch).startswith("N") for ch in value):
        raise BadInput(field, f"{value!r} contains digits (a name is spelt in letters)")
    if not any(unicodedata.category(ch).startswith("L") for ch in value):
        raise BadInput(field, f"{value!r} has no letters")
    return value


def clean_text(text: str | None, field: str, required: bool = False) -> str | None:
    value = " ".join((text or "").split())
    if not value:
        if required:
            raise BadInput(field, "is empty")
        return None
    _reject_control(field, value)
    if len(value) > MAX_TEXT:
        raise BadInput(field, f"is longer than {MAX_TEXT} characters")
    return value


def parse_officer(text: str | None) -> str:
    value = re.sub(r"\s+", "", text or "").upper()
    if not _OFFICER.match(value):
        raise BadInput("officer", f"{text!r} is not a collar number (digits, optionally after a letter prefix)")
    return value


def parse_gender(text: str | None) -> str | None:
    if text is None or not text.strip():
        return None
    code = GENDERS.get(text.strip().lower())
    if code is None:
        raise BadInput("gender", f"{text!r} is not one of M, F, X (other), U (not stated)")
    return code


def parse_ethnicity(text: str | None, codes: dict[str, str]) -> str | None:
    if text is None or not text.strip():
        return None
    code = text.strip().upper()
    if code not in codes:
        raise BadInput("ethnicity", f"{text!r} is not a self-defined ethnicity code ({', '.join(codes)})")
    return code


def _parse_moment(text: str, field: str, dayfirst: bool = True) -> datetime:
    value = (text or "").strip()
    if value.startswith("'"):  # a spreadsheet's mark for "this cell is text"
        value = value[1:].strip()
    if not value:
        raise BadInput(field, "is empty")
    lowered = value.lower()
    if lowered == "now":
        return now()
    if lowered == "today":
        return datetime.combine(date.today(), datetime.min.time())
    if lowered == "yesterday":
        return datetime.combine(date.today() - timedelta(days=1), datetime.min.time())
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        pass
    # A four-digit year is required: "01/02/03" is too ambiguous for a record
    # that decides prosecution, and dateutil would guess silently.
    if not _HAS_YEAR.search(value):
        raise BadInput(field, f"{value!r} is not a date (use YYYY-MM-DD or DD/MM/YYYY)")
    if value.isdigit():  # YYYYMMDD that fromisoformat refused, or digits that are no date
        compact = re.fullmatch(_COMPACT_DATE, value)
        if compact:
            return _calendar_moment(*compact.groups(), None, value, field, "YYYY-MM-DD")
        raise BadInput(field, f"{value!r} is not a date (use YYYY-MM-DD or DD/MM/YYYY)")
    if re.match(_YEAR_FIRST_START, value):  # YYYY-MM-DD strictly: never fall back to day second
        year_first = re.fullmatch(_YEAR_FIRST, value)
        if not year_first:
            raise BadInput(field, f"{value!r} is not a date (use YYYY-MM-DD or DD/MM/YYYY)")
        return _calendar_moment(*year_first.groups(), value, field, "YYYY-MM-DD")
    numeric = _NUMERIC_DATE.match(value)
    if numeric:  # DD/MM/YYYY strictly: never fall back to month first
        day, month, year, rest = numeric.groups()
        return _calendar_moment(year, month, day, rest, value, field, "DD/MM/YYYY")
    if re.search(_YEAR_FIRST_ANYWHERE, value):  # "on 1995-04-03": dateutil would read it year-day-month
        raise BadInput(field, f"{value!r} is not a date (use YYYY-MM-DD or DD/MM/YYYY on its own)")
    from dateutil import parser as dateutil_parser  # slow import: only for worded dates

    try:
        # Parsed against two different defaults: any part the text left out shows
        # up as a difference, and a date with a part missing is refused.
        first = dateutil_parser.parse(value, dayfirst=dayfirst, default=datetime(2000, 1, 1))
        second = dateutil_parser.parse(value, dayfirst=dayfirst, default=datetime(2001, 2, 2))
    except (ValueError, OverflowError):
        raise BadInput(field, f"{value!r} is not a valid date") from None
    if first.date() != second.date():
        raise BadInput(field, f"{value!r} is not a whole date (give day, month and year)")
    return first.replace(tzinfo=None)


def _calendar_moment(year: str, month: str, day: str, clock: str | None, value: str, field: str,
                     form: str) -> datetime:
    """The moment numbered exactly as `form` says, or BadInput saying which part is wrong."""
    y, m, d = int(year), int(month), int(day)
    try:
        moment = datetime(y, m, d)
    except ValueError:
        if y < 1:
            problem = f"year {year}?"
        elif not 1 <= m <= 12:
            problem = f"month {m}?"
        else:
            problem = f"{MONTHS[m - 1]} {y} has no day {d}"
        raise BadInput(field, f"{value!r} is not a valid date ({form}: {problem})") from None
    if clock:
        try:
            time_of_day = datetime.strptime(clock.strip(), "%H:%M" if clock.count(":") == 1 else "%H:%M:%S")
        except ValueError:
            raise BadInput(field, f"{value!r} has an unreadable time (use HH:MM)") from None
        moment = moment.replace(hour=time_of_day.hour, minute=time_of_day.minute, second=time_of_day.second)
    return moment


def parse_datetime(text: str, field: str = "when", allow_future: bool = False,
                   current: datetime | None = None) -> datetime:
    moment = _parse_moment(text, field).replace(microsecond=0)
    if moment.tzinfo is not None:
        moment = moment.astimezone().replace(tzinfo=None)
    if not allow_future and moment > (current or now()) + FUTURE_TOLERANCE:
        raise BadInput(field, f"{moment:%Y-%m-%d %H:%M} is in the future")
    if moment.year < 1900:
        raise BadInput(field, f"{moment:%Y-%m-%d} is too far in the past")
    return moment


def parse_date(text: str, field: str = "dob", allow_future: bool = False, today: date | None = None) -> date:
    moment = _parse_moment(text, field)
    if (moment.hour, moment.minute, moment.second) != (0, 0, 0):
        raise BadInput(field, f"{text!r} should be a date without a time")
    if not allow_future and moment.date() > (today or date.today()):
        raise BadInput(field, f"{moment:%Y-%m-%d} is in the future")
    if moment.year < 1900:
        raise BadInput(field, f"{moment:%Y-%m-%d} is too far in the past")
    return moment.date()


def date_in_words(day: date) -> str:
    """The date as a desk officer reads it aloud, e.g. "Mon 12 Jan 2026"."""
    return f"{WEEKDAYS[day.weekday()]} {day.day} {MONTHS[day.month - 1]} {day.year}"


def moment_in_words(moment: datetime) -> str:
    """The date and time to the minute, e.g. "Mon 12 Jan 2026 03:00"."""
    return f"{date_in_words(moment)} {moment:%H:%M}"


def age_on(dob: date, day: date) -> int:
    return day.year - dob.year - ((day.month, day.day) < (dob.month, dob.day))


def check_age(dob: date, when: datetime, at: str = "the incident") -> int:
    """Age at the incident (or `at` another moment); outside 10–110 is an input error (domain.md)."""
    if dob > when.date():
        raise BadInput("dob", f"{dob} is after {at} ({when:%Y-%m-%d})")
    age = age_on(dob, when.date())
    if age < 10:
        raise BadInput("dob", f"age {age} at {at} is below the age of criminal responsibility (10)")
    if age > 110:
        raise BadInput("dob", f"age {age} at {at} is not plausible")
    return age


# Human-friendly ids. People and incidents are numbered; referrals carry the year.
def format_person_id(n: int) -> str:
    return f"P-{n:06d}"


def format_incident_id(n: int) -> str:
    return f"I-{n:06d}"


def _parse_numbered(text: str, prefix: str, field: str) -> int:
    raw = (text or "").strip().upper()
    m = re.fullmatch(rf"(?:{prefix}-?)?0*([0-9]{{1,12}})", raw)
    if not m:
        what = field.replace("_", " ")
        raise BadInput(field, f"{text!r} is not {'an' if what[0] in 'aeiou' else 'a'} {what} (like {prefix}-000123)")
    return int(m.group(1))


def parse_person_id(text: str) -> int:
    return _parse_numbered(text, "P", "person_id")


def parse_incident_id(text: str) -> int:
    return _parse_numbered(text, "I", "incident_id")


def parse_referral_id(text: str) -> str:
    raw = (text or "").strip().upper()
    m = re.fullmatch(r"R-?([0-9]{4})-?([0-9]{1,9})", raw)
    if not m:
        raise BadInput("referral_id", f"{text!r} is not a referral id (like R-2026-000123)")
    return f"R-{m.group(1)}-{int(m.group(2)):06d}"


def looks_like_pnc(text: str) -> bool:
    return "/" in (text or "")


def spreadsheet_safe(value):
    """Text that a spreadsheet would run as a formula (=, +, -, @) gets a leading
    apostrophe in CSV files; numbers and other text are left alone."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
