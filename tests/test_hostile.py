"""Hostile input: arbitrary text in every option a desk officer or a script can fill.

Hypothesis feeds record, check, refer, outcome, report and import text of every
kind: control characters and NUL (fine in-process; the OS forbids NUL in a
real argv), lone surrogates (what Python makes of undecodable bytes in argv),
10,000-character strings, SQL fragments, Rich markup, date-like strings. For
every input: no traceback and no internal error (exit 70), an exit code from
the documented set {0, 1, 2, 3}, nothing written unless the exit is 0 (and
never by a read-only command), and text accepted into a record printed back
exactly as stored: markup shown, never interpreted.
"""

from __future__ import annotations

import csv
import json
import os
import re
import stat
import unicodedata
from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import connect, database_there, db_file, record, refer, run

EXAMPLES = int(os.environ.get("DIVERSION_HOSTILE_EXAMPLES", "120"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.data_too_large, HealthCheck.large_base_example,
                                           HealthCheck.filter_too_much])
ALLOWED_EXITS = {0, 1, 2, 3}
TABLES = ("people", "incidents", "incident_substances", "incident_co_offences", "decisions", "referrals",
          "referral_conditions", "audit_entries", "audit_transactions", "audit_pending")
TALLY: Counter = Counter()  # examples and invocations per test, reported at the end of the module


@pytest.fixture(scope="module", autouse=True)
def _report_tally(request):
    yield
    if request.config.option.verbose <= 0:  # -q output stays free of figures printed mid-run
        return
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    total = sum(n for (kind, _), n in TALLY.items() if kind == "inputs")
    lines = [f"hostile inputs generated: {total} examples, "
             f"{sum(n for (kind, _), n in TALLY.items() if kind == 'calls')} CLI invocations"]
    lines += [f"  {name}: {n}" for (kind, name), n in sorted(TALLY.items()) if kind == "inputs"]
    lines.append("  exit codes: " + ", ".join(f"{name} x{n}" for (kind, name), n in sorted(TALLY.items())
                                               if kind == "exits"))
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:
        print("\n".join(lines))
        return
    with capture.global_and_fixture_disabled():
        for line in lines:
            reporter.write_line(line)



# ---- strategies ---------------------------------------------------------------------

SQL = ["'; DROP TABLE people;--", "Robert'); DROP TABLE incidents;--", "\" OR 1=1 --", "' OR ''='",
       "1; DELETE FROM referrals", "%", "_", "%_%", "\\", "NULL", "null", "None", "' UNION SELECT * FROM audit_log--",
       "x' AND sqlite_version()='", "ATTACH DATABASE '/tmp/x.db' AS x;--", "P-000001' OR '1'='1", "I-1 OR 1=1",
       "R-2026-000001';--"]
MARKUP = ["[bold red]x[/]", "[link=file:///etc/passwd]here[/link]", "[link=file:///etc/passwd]", "[/]", "[",
          "]", "[red]", "[bold]", "\\[bold]", ":smile:", "[blink]O'Neil[/blink]", "${surname}", "{0}", "{}",
          "%s%s%n", "<script>alert(1)</script>", "&amp;&lt;", "[[double]]", "[b]Smith[/b]"]
DATES = ["2026-13-01", "31/02/2024", "29/02/2023", "29/02/2024", "0000-00-00", "9999-12-31", "1899-12-31",
         "1900-01-01", "2026-10", "Oct 2026", "October 2026", "last", "now", "today", "yesterday", "tomorrow",
         "1/1/1", "01/02/03", "2024-02-29T24:00", "2026-11-28 25:61", "2026-11-28T14:30+05:00",
         "2026-11-28T14:30:00Z", "１２/０１/２０２０", "٢٠٢٠-٠١-٠١", "1e10", "-1", "0", "99999-01-01", "2026-W01",
         "28/11/2026 14:30", "2026-11-28 14:30", "14/02/1990", "1990-02-14", "2/14/1990", "14.02.1990",
         "14-02-1990 99:99", "Feb 30 2024", "the 5th of November 1605", "2026", "12", "Jan", "last month",
         "2026-00", "2026-1", "2026/10", "10/2026", "2026-10-01T00:00:00.123456", "+002026-01-01", "2026-10 ",
         " 2026-10", "\t2026-10\n", "1990-02-14\x00", "2026-02-30", "2026-11-28 14:30 extra", "3000-01-01",
         "31/12/9999 23:59", "01/01/10000"]
WEIRD = ["", " ", "  \t  ", "\n", "\x00", "a\x00b", "\r\n", "\x1b[31mred\x1b[0m", "\u202eevil", "\u200b",
         "\ufeffBOM", "é", "e\u0301", "ß", "İ", "ǅ", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "🙂", "Ω" * 120, "-", "--", "--help",
         "-h", "--json", "P-000001", "I-000001", "R-2026-000001", "1979/0123456T", "79/123456T", "weed",
         "cannabis", "coke", "M", "f", "W1", "ns", "accepted", "completed", "voided", "table", "csv", "json",
         "markdown", "substance", "location", "officer", "5", "0", "-5", "99999999999999999999", "1.5", "NaN",
         "inf", "\udcff", "abc\udc80def"]
FRAGMENTS = SQL + MARKUP + DATES + WEIRD


def _fmt_moment(moment: datetime, fmt: str) -> str:
    try:
        return moment.strftime(fmt)
    except ValueError:
        return moment.isoformat()


date_like = st.builds(_fmt_moment, st.datetimes(min_value=datetime(1800, 1, 1), max_value=datetime(2300, 1, 1)),
                      st.sampled_from(["%Y-%m-%d", "%d/%m/%Y", "%d/%m/%Y %H:%M", "%Y-%m-%dT%H:%M:%S", "%b %Y",
                                       "%Y-%m", "%d %B %Y", "%m/%d/%Y", "%Y%m%d", "%d.%m.%Y", "%B %d, %Y %I%p"]))
huge = st.builds(lambda piece, n: (piece * n)[:10_000], st.text(min_size=1, max_size=4),
                 st.integers(min_value=500, max_value=10_000))
surrogates = st.text(st.characters(min_codepoint=0xDC80, max_codepoint=0xDCFF), min_size=1, max_size=4)
hostile = st.one_of(
    st.text(max_size=40),                                      # any code point but surrogates: controls, NUL
    st.text(st.characters(max_codepoint=0x7F), max_size=40),   # ASCII incl. control characters
    st.sampled_from(FRAGMENTS),
    st.builds(lambda a, b, c: a + b + c, st.sampled_from(FRAGMENTS), st.text(max_size=8), st.sampled_from(FRAGMENTS)),
    date_like,
    huge,
    st.builds(lambda a, s: a + s, st.sampled_from(["Smith", "2026-10", "weed", ""]), surrogates),
)
# Text the package should accept as it is: printable, any script, markup and SQL included.
printable = st.one_of(
    st.text(st.characters(blacklist_categories=("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")), min_size=1, max_size=60),
    st.sampled_from(MARKUP + SQL),
    st.builds(lambda a, b: a + " " + b, st.sampled_from(MARKUP + SQL), st.text(st.characters(
        blacklist_categories=("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")), max_size=20)),
).filter(lambda s: s.strip())
file_safe = hostile.map(lambda s: s.encode("utf-8", "surrogatepass").decode("utf-8", "replace"))


# ---- invoking and checking -----------------------------------------------------------

_WATCHING: dict[Path, object] = {}  # the test's database -> the one connection that counts its rows


@pytest.fixture(autouse=True)
def _one_counting_connection():
    """Rows are counted before and after every command over one connection held through the
    test. Opening and closing one each time cost most of a command's time: closing the last
    connection to a WAL file checkpoints it, and the next to open it rebuilds its index.
    (The commands run beside an open connection, as beside another desk's.)"""
    yield
    for conn in _WATCHING.values():
        conn.close()
    _WATCHING.clear()


def _counts() -> dict | None:
    path = db_file()
    if not database_there(path):
        return None
    if path not in _WATCHING:
        _WATCHING[path] = connect(path)
    return {t: _WATCHING[path].execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}


def invoke(test: str, args: list[str], writes: bool = True, allowed=ALLOWED_EXITS):
    """Run the CLI in-process and hold it to the contract; returns the result."""
    TALLY["calls", test] += 1
    before = _counts()
    result = run(*args, catch_exceptions=True)
    shown = f"args={[a[:200] for a in args]!r}\nexit={result.exit_code}\nstdout={result.stdout[-1500:]!r}\n" \
            f"stderr={result.stderr[-1500:]!r}"
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        import traceback

        raise AssertionError("unexpected exception " + "".join(
            traceback.format_exception(result.exception))[-3000:] + "\n" + shown)
    assert "Traceback" not in result.stdout and "Traceback" not in result.stderr, shown
    assert "internal error" not in result.stderr, shown
    assert result.exit_code in allowed, shown
    TALLY["exits", f"{test} exit {result.exit_code}"] += 1
    after = _counts()
    if result.exit_code != 0 or not writes:
        assert after == before, f"rows changed on exit {result.exit_code}: {before} -> {after}\n{shown}"
    if result.exit_code == 0 and "--json" in args and "--help" not in args:
        json.loads(result.stdout)
    return result


def clean(text: str) -> str:
    """What the package stores for free text: whitespace runs collapsed, ends trimmed."""
    return " ".join(text.split())


@pytest.fixture
def seeded():
    """A few people, incidents and referrals in every state, to aim hostile ids at."""
    a = record("--pnc", "1979/0123456T", surname="Smith", forename="John", dob="14/02/1990")
    offer = refer(a["incident_id"])
    assert run("outcome", offer["id"], "accepted").exit_code == 0
    b = record(surname="O'Neil", forename="Siobhán", dob="01/03/1985", substance="coke")
    offer_b = refer(b["incident_id"])
    c = record(surname="Nowak", forename="Ola", dob="05/06/2009", substance="mandy")
    d = record("--scheme", "checkpoint", "--refer", surname="Okafor", forename="Chi", dob="02/03/1988")
    last_month = (date.today().replace(day=1) - timedelta(days=3)).strftime("%d/%m/%Y 14:00")
    e = record("--when", last_month, "--location", "[bold red]Broadmead[/]", surname="Lee", forename="Kim",
               dob="1970-07-07")
    return {"people": [x["person_id"] for x in (a, b, c, d, e)],
            "incidents": [x["incident_id"] for x in (a, b, c, d, e)],
            "referrals": [offer["id"], offer_b["id"], d["referral_id"]], "pncs": ["1979/0123456T"]}


def mixed(valid: list[str], valid_share: int = 1):
    """A value the command should take (valid_share times in valid_share + 1), else hostile text."""
    return st.integers(0, valid_share).flatmap(lambda n: st.sampled_from(valid) if n else hostile)


def _id_or_hostile(ids: list[str]):
    return st.one_of(st.sampled_from(ids), hostile,
                     st.builds(lambda i, t: i + t, st.sampled_from(ids), st.sampled_from(["", " ", "\x00", "x", "0"])),
                     st.sampled_from([i.lower() for i in ids] + [i.replace("-", "") for i in ids]))


# ---- record -------------------------------------------------------------------------

RECORD_FIELDS = ("--surname", "--forename", "--dob", "--when", "--pnc", "--substance", "--location", "--quantity",
                 "--co-offence", "--ethnicity", "--gender")
RECORD_BASE = {"--surname": "Hostile", "--forename": "Hank", "--dob": "14/02/1990", "--substance": "weed"}
FREE_TEXT = ("--surname", "--forename", "--location", "--quantity", "--co-offence")


_RECENT = date.today() - timedelta(days=3)
VALID = {"--dob": ["14/02/1990", "1990-02-14", "14 Feb 1990", "29/02/1996"],
         "--when": ["now", "yesterday", _RECENT.strftime("%d/%m/%Y 10:00"), _RECENT.strftime("%Y-%m-%dT23:59")],
         "--pnc": ["1979/0123456T", "79/123456T", ""], "--substance": ["weed", "coke", "cannabis resin", " MDMA "],
         "--ethnicity": ["W1", "ns", "b2", ""], "--gender": ["m", "Female", "not stated", ""]}


@st.composite
def record_fields(draw) -> dict:
    """One to four options set to hostile text; free text mostly to text that should be
    accepted, the rest often to a valid value, so that many records get written."""
    chosen = draw(st.lists(st.sampled_from(RECORD_FIELDS), min_size=1, max_size=4, unique=True))
    fields = {}
    for flag in chosen:
        if flag in FREE_TEXT:
            strategy = st.one_of(printable, printable, hostile)
        else:
            strategy = st.one_of(hostile, st.sampled_from(VALID[flag]))
        fields[flag] = draw(strategy, label=flag)
    return fields


@SETTINGS
@given(fields=record_fields(), extra_substance=st.one_of(st.none(), hostile),
       extra_co=st.one_of(st.none(), printable, hostile),
       as_json=st.booleans())
def test_record_with_hostile_options(fields, extra_substance, extra_co, as_json):
    TALLY["inputs", "record"] += 1
    values = {**RECORD_BASE, **fields}
    args = ["record", "--new-person"] + (["--json"] if as_json else [])
    args += [f"{flag}={value}" for flag, value in values.items()]
    if extra_substance is not None:
        args.append(f"--substance={extra_substance}")
    if extra_co is not None:
        args.append(f"--co-offence={extra_co}")
    result = invoke("record", args)
    if result.exit_code != 0:
        assert result.stdout == "" or not as_json, result.stdout
        return
    # accepted: what was stored is printed back exactly, markup and all
    if as_json:
        person_id = json.loads(result.stdout)["person_id"]
    else:
        assert f"{clean(values['--surname']).upper()}, {clean(values['--forename'])}" in result.stdout
        person_id = result.stdout.split(" for ", 1)[1].split()[0]
    shown = invoke("record", ["check", person_id, "--json"], writes=False)
    data = json.loads(shown.stdout)
    assert data["person"]["surname"] == clean(values["--surname"])
    assert data["person"]["forenames"] == clean(values["--forename"])
    incident = data["incidents"][-1]
    for flag, key in (("--location", "location"), ("--quantity", "quantity")):
        if flag in values:
            assert incident[key] == (clean(values[flag]) or None), (flag, incident[key])
    entered = [clean(values["--substance"])] + ([clean(extra_substance)] if extra_substance is not None else [])
    assert {s["entered_as"] for s in incident["substances"]} <= set(entered)
    co = [clean(c) for c in ([values["--co-offence"]] if "--co-offence" in values else [])
          + ([extra_co] if extra_co is not None else [])]
    assert incident["co_offences"] == co
    plain = invoke("record", ["check", person_id], writes=False)
    assert f"{clean(values['--surname']).upper()}, {clean(values['--forename'])}" in plain.stdout


def _has_letter(text: str) -> bool:
    import unicodedata

    return any(unicodedata.category(ch).startswith("L") for ch in text)


@SETTINGS
@given(surname=printable, forename=printable, location=printable, quantity=printable, co_offence=printable)
def test_printable_text_of_any_script_is_accepted_and_echoed_exactly(surname, forename, location, quantity,
                                                                     co_offence):
    TALLY["inputs", "record (printable text)"] += 1
    result = invoke("record (printable text)", [
        "record", "--json", "--new-person", "--dob=1990-02-14", "--substance=weed", f"--surname={surname}",
        f"--forename={forename}", f"--location={location}", f"--quantity={quantity}", f"--co-offence={co_offence}"])
    names_ok = all(_has_letter(clean(n)) and len(clean(n)) <= 100  # a name is letters: digits refused (exit 2)
                   and not any(unicodedata.category(ch).startswith("N") for ch in n) for n in (surname, forename))
    if not (names_ok and all(len(clean(t)) <= 500 for t in (location, quantity, co_offence))):
        assert result.exit_code == 2, result.stderr
        return
    assert result.exit_code == 0, result.stderr
    person_id = json.loads(result.stdout)["person_id"]
    data = json.loads(invoke("record (printable text)", ["check", "--json", "--", person_id], writes=False).stdout)
    assert (data["person"]["surname"], data["person"]["forenames"]) == (clean(surname), clean(forename))
    incident = data["incidents"][-1]
    assert (incident["location"], incident["quantity"], incident["co_offences"]) == \
        (clean(location), clean(quantity), [clean(co_offence)])
    plain = invoke("record (printable text)", ["check", "--", person_id], writes=False)
    assert f"{clean(surname).upper()}, {clean(forename)}" in plain.stdout


def test_markup_in_every_text_field_is_printed_literally():
    loc, name, fore = "[link=file:///etc/passwd]here[/link]", "[bold red]Smith[/]", "[blink]Jo[/blink]"
    last_month = (date.today().replace(day=1) - timedelta(days=3))
    out = run("record", "--surname", name, "--forename", fore, "--dob", "14/02/1990", "--substance", "weed",
              "--location", loc, "--quantity", "[red]2 g[/red]", "--co-offence", "[i]theft[/i]",
              "--when", last_month.strftime("%d/%m/%Y 10:00"))
    assert out.exit_code == 0, out.stderr
    assert f"{name.upper()}, {fore}" in out.stdout
    data = json.loads(run("check", "P-000001", "--json").stdout)
    assert (data["person"]["surname"], data["person"]["forenames"]) == (name, fore)
    assert data["incidents"][0]["location"] == loc
    assert data["incidents"][0]["quantity"] == "[red]2 g[/red]"
    assert data["incidents"][0]["co_offences"] == ["[i]theft[/i]"]
    plain = run("check", "P-000001")
    assert f"{name.upper()}, {fore}" in plain.stdout
    # the report is drawn with Rich: the location must come out as typed there too
    for fmt in ("table", "markdown", "csv", "json"):
        report = run("report", "--month", last_month.strftime("%Y-%m"), "--by", "location", "--format", fmt)
        assert report.exit_code == 0, (fmt, report.stderr)
        assert loc in report.stdout.replace("\\/", "/"), (fmt, report.stdout[:2000])


# ---- check ----------------------------------------------------------------------------

@SETTINGS
@given(data=st.data())
def test_check_by_id_or_name_with_hostile_text(seeded, data):
    TALLY["inputs", "check"] += 1
    if data.draw(st.booleans(), label="by id"):
        known = seeded["people"] + seeded["pncs"]
        ident = data.draw(st.integers(0, 1).flatmap(lambda n: st.sampled_from(known) if n else _id_or_hostile(known)),
                          label="ID")
        args = ["check"] + (["--json"] if data.draw(st.booleans()) else []) + ["--", ident]
    else:
        surname = data.draw(st.one_of(st.sampled_from(["Smith", "O'Neil", "smyth"]), hostile), label="surname")
        forename = data.draw(st.one_of(st.sampled_from(["John", "Siobhan"]), hostile), label="forename")
        dob = data.draw(st.one_of(st.sampled_from(["14/02/1990", "1985-03-01"]), hostile), label="dob")
        args = ["check", f"--surname={surname}", f"--forename={forename}", f"--dob={dob}"]
        if data.draw(st.booleans()):
            args.append("--json")
    invoke("check", args, writes=False)


@pytest.mark.no_database
@SETTINGS
@given(ident=hostile)
def test_check_never_creates_the_database(ident):
    TALLY["inputs", "check (no database)"] += 1
    for args in (["check", "--", ident], ["check", f"--surname={ident}", "--forename=Jo", "--dob=1990-01-01"]):
        result = invoke("check (no database)", args, writes=False, allowed=(2, 4))
        assert result.exit_code == 2 or "no database at" in result.stderr
    assert not database_there()


# ---- refer and outcome ----------------------------------------------------------------

@SETTINGS
@given(data=st.data())
def test_refer_with_hostile_ids_and_options(seeded, data):
    TALLY["inputs", "refer"] += 1
    incident = data.draw(st.integers(0, 2).flatmap(
        lambda n: st.sampled_from(seeded["incidents"]) if n else _id_or_hostile(seeded["incidents"])),
        label="INCIDENT_ID")
    args = ["refer"]
    if data.draw(st.booleans()):
        args.append("--json")
    if data.draw(st.booleans()):
        args.append(f"--scheme={data.draw(st.one_of(st.sampled_from(['dep-adult', 'checkpoint']), hostile))}")
    if data.draw(st.booleans()):
        args.append(f"--appointment={data.draw(hostile)}")
    invoke("refer", args + ["--", incident])


STATUSES = ["accepted", "declined", "completed", "failed", "voided", "offered", "ACCEPTED", " accepted "]


@SETTINGS
@given(data=st.data())
def test_outcome_with_hostile_ids_status_when_and_reason(seeded, data):
    TALLY["inputs", "outcome"] += 1
    referral = data.draw(st.integers(0, 2).flatmap(
        lambda n: st.sampled_from(seeded["referrals"]) if n else _id_or_hostile(seeded["referrals"])),
        label="REFERRAL_ID")
    status = data.draw(mixed(STATUSES, 2), label="STATUS")
    args = ["outcome"]
    if data.draw(st.booleans()):
        args.append(f"--when={data.draw(mixed(['now', 'today', VALID['--when'][2]]), label='when')}")
    if data.draw(st.booleans()):
        args.append(f"--reason={data.draw(st.one_of(printable, hostile), label='reason')}")
    if data.draw(st.booleans()):
        args.append("--json")
    result = invoke("outcome", args + ["--", referral, status])
    if result.exit_code == 0 and "--json" in args:
        reason = next((a.split("=", 1)[1] for a in args if a.startswith("--reason=")), None)
        if reason is not None and clean(reason):
            assert json.loads(result.stdout)["referral"]["reason"] == clean(reason)


# ---- report ---------------------------------------------------------------------------

_LAST_MONTH = (date.today().replace(day=1) - timedelta(days=3))
REPORT_VALID = {"--month": ["last", "this", _LAST_MONTH.strftime("%Y-%m"), _LAST_MONTH.strftime("%b %Y"), "2026-01"],
                "--from": ["2026-01-01", "01/06/2026", "yesterday"], "--to": ["today", "yesterday", "2026-12-31"],
                "--by": ["substance", "drug_class", "scheme", "age_band", "gender", "ethnicity", "location",
                         "officer"],
                "--format": ["table", "json", "csv", "markdown"], "--suppress": ["1", "5", "100"],
                "--scheme": ["dep-adult", "dep-youth", "checkpoint"]}


@st.composite
def report_options(draw) -> list[str]:
    chosen = draw(st.lists(st.sampled_from(sorted(REPORT_VALID)), max_size=4, unique=True))
    return [f"{flag}={draw(mixed(REPORT_VALID[flag]), label=flag)}" for flag in chosen]


@SETTINGS
@given(options=report_options())
def test_report_with_hostile_options_never_writes(seeded, options):
    TALLY["inputs", "report"] += 1
    invoke("report", ["report"] + options, writes=False)


# ---- import ---------------------------------------------------------------------------

IMPORT_COLUMNS = ("surname", "forenames", "dob", "pnc", "gender", "ethnicity", "occurred_at", "substances",
                  "quantity", "location", "co_offences", "supply_suspected", "recorded_by", "scheme",
                  "referral_status", "offered_at", "accepted_at", "closed_at", "outcome_reason")
IMPORT_BASE = {"surname": "Imp", "forenames": "Ida", "dob": "1985-01-01", "occurred_at": "2026-03-02 14:00",
               "substances": "weed", "location": "Easton"}


@pytest.fixture
def files(tmp_path):
    counter = iter(range(10**9))
    return lambda: tmp_path / f"hostile-{next(counter)}.csv"


@SETTINGS
@given(rows=st.lists(st.dictionaries(st.sampled_from(IMPORT_COLUMNS), file_safe, max_size=4), min_size=1,
                     max_size=3),
       header=st.one_of(st.none(), st.lists(st.one_of(st.sampled_from(IMPORT_COLUMNS), file_safe), max_size=5)),
       raw=st.one_of(st.none(), st.binary(max_size=300)))
def test_import_of_a_csv_with_hostile_cells(files, rows, header, raw):
    TALLY["inputs", "import"] += 1
    path = files()
    if raw is not None:
        path.write_bytes(raw)
    else:
        columns = list(IMPORT_COLUMNS) if header is None else header
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(columns)
            for row in rows:
                full = {**IMPORT_BASE, **row}
                writer.writerow([full.get(c, "") for c in columns])
    before = _counts()
    result = invoke("import", ["import", str(path)])
    if result.exit_code == 0 and raw is None and header is None:
        after = _counts()
        assert after["incidents"] - (before or {"incidents": 0})["incidents"] == len(rows)
        conn = connect()
        try:
            stored = conn.execute("SELECT location FROM incidents ORDER BY id DESC LIMIT ?", (len(rows),)).fetchall()
        finally:
            conn.close()
        expected = [clean({**IMPORT_BASE, **row}.get("location", "")) or None for row in reversed(rows)]
        assert [s[0] for s in stored] == expected


# ---- issue 15: JSON, config, environment, output files, Markdown, pseudonym keys ---------------

FEWER = settings(SETTINGS, max_examples=max(EXAMPLES // 4, 10))  # each example runs a command or two
JSON_KEYS = st.one_of(st.sampled_from(IMPORT_COLUMNS), file_safe)
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), file_safe),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(JSON_KEYS, inner, max_size=3)),
    max_leaves=8)


@st.composite
def hostile_json(draw) -> str:
    """A JSON import file: rows that may be valid, odd values, and the shapes that once crashed
    (a 4,300-digit number, 200,000-deep nesting, a key twice, a cut-off file)."""
    rows = draw(st.lists(st.dictionaries(JSON_KEYS, json_values, max_size=4).map(lambda r: {**IMPORT_BASE, **r}),
                         max_size=3))
    text = json.dumps(rows, ensure_ascii=draw(st.booleans()))
    twist = draw(st.sampled_from(["none", "digits", "deep", "deep-in-object", "duplicate", "cut", "trailing",
                                  "not-a-list", "bytes"]))
    depth = draw(st.sampled_from([10, 990, 1010, 5_000, 200_000]))
    if twist == "digits":
        text = '[{"occurred_at": ' + "9" * draw(st.integers(4000, 6000)) + "}]"
    elif twist == "deep":
        text = "[" * depth + "]" * depth
    elif twist == "deep-in-object":
        text = '[{"surname": ' + "[" * depth + "]" * depth + "}]"
    elif twist == "duplicate":
        text = '[{"surname": "A", "surname": "B", "occurred_at": "2026-03-02 14:00", "substances": "weed"}]'
    elif twist == "cut":
        text = text[:draw(st.integers(0, max(len(text) - 1, 0)))]
    elif twist == "trailing":
        text += draw(st.sampled_from([",", "]", "{}", "x", " [] "]))
    elif twist == "not-a-list":
        text = json.dumps(draw(json_values))
    elif twist == "bytes":
        text = draw(st.binary(max_size=200)).decode("latin-1")
    return text


@FEWER
@given(text=hostile_json())
def test_import_of_hostile_json(files, text):
    TALLY["inputs", "import (json)"] += 1
    path = files().with_suffix(".json")
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    invoke("import (json)", ["import", str(path)])


TOML_VALUES = ["nan", "+nan", "-nan", "inf", "+inf", "-inf", "1e308", "-1e308", "1e-308", "-0.0", "0", "-1",
               "true", "1979-05-27T07:32:00Z", "07:32:00", '"text"', "''", "[]", "{}", "[[]]", '["High St"]',
               "3000000", "9" * 19, "9" * 400, "9" * 5000, "0x7fffffffffffffff", "[" * 3000 + "]" * 3000,
               "{ a = " * 2000 + "1" + " }" * 2000, '"' + "x" * 10_000 + '"']
TOML_SETTINGS = ["[costs]\nprosecution", "[costs]\ncaution", "[costs]\ncurrency", "[areas]\n\"Town\"",
                 "[force]\nname", "[schemes.dep-adult]\ndeadline_days", "[schemes.dep-adult]\nworkshop_hours",
                 "[schemes.dep-adult]\ncost_per_place", "[schemes.dep-adult]\nmax_days_since_offence",
                 "[schemes.dep-adult]\nlookback_years", "[schemes.dep-adult]\nages", "[outcome_codes]\n22",
                 "deep"]


@FEWER
@given(setting=st.sampled_from(TOML_SETTINGS), value=st.one_of(st.sampled_from(TOML_VALUES), hostile),
       command=st.sampled_from([["schemes", "--json"], ["report", "--format", "json"], ["report", "--format", "csv"]]))
def test_config_with_hostile_values(tmp_path_factory, setting, value, command):
    """A force file with one hostile value: exit 0 or a config error (2), and never NaN in JSON."""
    TALLY["inputs", "config"] += 1
    shipped = (Path(__file__).resolve().parent.parent / "diversion_cli" / "data" / "schemes.toml").read_text()
    if setting.startswith("[schemes."):  # one scheme's setting changed, the rest of the shipped file kept
        table, key = setting.split("\n")
        head, _, rest = shipped.partition(table + "\n")
        rest = "\n".join(line for line in rest.split("\n") if not line.startswith(key + " ="))
        text = f"{head}{table}\n{key} = {value}\n{rest}"
    elif setting == "deep":
        text = f"x = {value}\n"
    else:
        text = f"{setting} = {value}\n"
    path = tmp_path_factory.mktemp("config") / "force.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    result = invoke("config", ["--config", str(path), *command], writes=False, allowed={0, 2})
    if result.exit_code == 2:
        assert result.stderr.startswith("error: config:") and result.stdout == "", result.stderr
    elif "json" in command:
        json.loads(result.stdout, parse_constant=lambda name: pytest.fail(f"{name} in the JSON"))


def _float_or_none(text: str):
    try:
        return float(text)
    except ValueError:
        return None


@FEWER
@given(value=st.one_of(hostile, st.floats().map(repr), st.integers(-10**6, 10**400).map(str),
                       st.sampled_from(["nan", "NaN", "inf", "-inf", "1e308", "1e-308", "3600", "3600.0001", "0",
                                        "-0", " 5 ", "1_0", "0x10", "∞", "５"])))
def test_busy_timeout_from_the_environment(value):
    """DIVERSION_BUSY_TIMEOUT: a number of seconds from 0 to 3600 (empty: the default), else exit 2."""
    TALLY["inputs", "DIVERSION_BUSY_TIMEOUT"] += 1
    try:
        os.environ["DIVERSION_BUSY_TIMEOUT"] = value
    except (ValueError, UnicodeError):  # a NUL or a lone surrogate cannot be in the environment at all
        return
    try:
        result = invoke("DIVERSION_BUSY_TIMEOUT", ["referrals", "--json"], writes=False, allowed={0, 2})
    finally:
        del os.environ["DIVERSION_BUSY_TIMEOUT"]
    seconds = _float_or_none(value) if value else 10.0
    assert (result.exit_code == 0) == (seconds is not None and 0 <= seconds <= 3600), result.stderr


OUTPUT_KINDS = ["new", "existing", "symlink to a file", "dangling symlink", "symlink to a directory", "fifo",
                "directory", "device", "missing directory", "hostile name"]


def _output_target(base, kind: str, name: str):
    """Make an output target of this kind in `base`; returns its path and what must survive."""
    precious = base / "precious.txt"
    precious.write_text("the only copy")
    target = base / "out.txt"
    if kind == "existing":
        target.write_text("yesterday's extract")
    elif kind == "symlink to a file":
        target.symlink_to(precious)
    elif kind == "dangling symlink":
        target.symlink_to(base / "nowhere" / "x")
    elif kind == "symlink to a directory":
        target.symlink_to(base)
    elif kind == "fifo":
        os.mkfifo(target)
    elif kind == "directory":
        target.mkdir()
    elif kind == "device" and os.geteuid() == 0:
        os.mknod(target, 0o20666, os.makedev(1, 3))
    elif kind == "device":
        target = Path("/dev/null")
    elif kind == "missing directory":
        target = base / "no such dir" / "out.txt"
    elif kind == "hostile name":
        target = base / (name.replace("/", "_").replace("\x00", "_")[:200] or "_")
    return target


@FEWER
@given(kind=st.sampled_from(OUTPUT_KINDS), command=st.sampled_from(["report", "export", "letter"]),
       force=st.booleans(), name=file_safe)
def test_output_targets(seeded, tmp_path_factory, kind, command, force, name):
    """--output: a new file, or an existing regular one with --force, is written (0600); anything
    else is refused with exit 2, and nothing already there is changed or left behind."""
    TALLY["inputs", "--output"] += 1
    base = tmp_path_factory.mktemp("out")
    target = _output_target(base, kind, name)
    before = {p.name: (p.lstat().st_mode, p.lstat().st_ino, p.lstat().st_size) for p in base.iterdir()}
    args = {"report": ["report", "--format", "markdown"], "export": ["export", "incidents"],
            "letter": ["letter", seeded["referrals"][0], "--kind", "offer"]}[command]
    result = invoke("--output", args + ["--output", str(target)] + (["--force"] if force else []),
                    writes=False, allowed={0, 2})
    writable = kind in ("new", "hostile name") or (kind == "existing" and force)
    if kind == "hostile name" and result.exit_code == 2:  # e.g. a name too long for the file system
        writable = False
    assert (result.exit_code == 0) == writable, result.stderr
    assert (base / "precious.txt").read_text() == "the only copy"
    after = {p.name: (p.lstat().st_mode, p.lstat().st_ino, p.lstat().st_size) for p in base.iterdir()}
    if writable:
        assert stat.S_IMODE(target.lstat().st_mode) == 0o600 and stat.S_ISREG(target.lstat().st_mode)
        assert {k: v for k, v in after.items() if k != target.name} == \
            {k: v for k, v in before.items() if k != target.name}
    else:
        assert result.stderr.startswith("error: output:"), result.stderr
        assert after == before
    assert stat.S_IMODE(os.stat("/dev/null").st_mode) == 0o666


def _markdown_renderer():
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark").enable("table")
    md.validateLink = lambda url: True  # as permissive as the worst renderer: javascript: links pass
    return md


HTML_BITS = ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "<a href='javascript:x'>", "</td>",
             "<!--", "<?php", "<!DOCTYPE", "<https://evil.example>", "[x](javascript:alert(1))", "![i](x.png)",
             "[x]: javascript:y", "&lt;script&gt;", "&#60;", "\\", "\\|", "|", "`<b>`", "<5", "a < b > c"]
markdown_text = st.one_of(printable, st.sampled_from(HTML_BITS),
                          st.lists(st.one_of(st.sampled_from(HTML_BITS), printable), max_size=4).map("".join))


@SETTINGS
@given(cells=st.lists(markdown_text, min_size=1, max_size=4), title=markdown_text, note=markdown_text)
def test_markdown_report_never_runs_in_a_renderer(cells, title, note):
    """Whatever a location, label or note holds, the rendered Markdown has only the report's own
    tags (tables, headings, emphasis), and every row keeps its cells."""
    from diversion_cli import report_format
    from diversion_cli.reports import Column, Table

    TALLY["inputs", "markdown"] += 1
    table = Table("t", title, (Column("where", note), Column("n", "Incidents")),
                  [{"where": c, "n": 1} for c in cells], notes=(note,), labels=("where",))
    meta = {"period": {"label": title, "from": "2026-01-01", "to": "2026-01-31"}, "scheme": note,
            "generated_at": "2026-02-01T00:00:00", "config_fingerprint": "0" * 16}
    text = report_format.render([table], "markdown", meta, None)
    rendered = _markdown_renderer().render(text)
    tags = set(re.findall(r"<\s*/?\s*([a-zA-Z][a-zA-Z0-9]*)", rendered))
    assert tags <= {"h1", "h2", "p", "em", "table", "thead", "tbody", "tr", "th", "td"}, (tags, text)
    assert rendered.count("<td") == 2 * len(cells), text


@FEWER
@given(key=st.one_of(hostile, printable, st.builds(lambda unit, n: unit * n, st.text(min_size=1, max_size=12),
                                                    st.integers(1, 400))))
def test_pseudonym_keys(seeded, key):
    """A key passes only with MIN_KEY_BITS by the documented count; a repeated unit of one to
    three characters never does; a refused key writes nothing out."""
    from diversion_cli.bulk import MIN_KEY_BITS, key_bits

    TALLY["inputs", "pseudonym key"] += 1
    try:
        os.environ["DIVERSION_PSEUDONYM_KEY"] = key
    except (ValueError, UnicodeError):
        return
    try:
        result = invoke("pseudonym key", ["export", "incidents", "--pseudonymise"], writes=False, allowed={0, 2})
    finally:
        del os.environ["DIVERSION_PSEUDONYM_KEY"]
    strong = key_bits(key) >= MIN_KEY_BITS
    assert (result.exit_code == 0) == strong, result.stderr
    if not strong:
        assert result.stdout == "" and "DIVERSION_PSEUDONYM_KEY" in result.stderr
    if any(len(key) % p == 0 and key == key[:p] * (len(key) // p) for p in (1, 2, 3)):
        assert not strong, key                    # however many times a short unit is repeated
