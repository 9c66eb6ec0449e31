"""Report figures pinned byte for byte: the JSON of every table, for several
months, ranges, --scheme, every --by and --suppress, on three data sets (the
hand-computed fixture of test_reports.py placed in fixed months, the sample
data, and three years of generated data for re-offending), at a fixed clock.

The files under tests/golden/reports/ were written by the report code as it
was before reports aggregated in SQL; any change to a figure, a row's order or
a note shows here as a diff. A deliberate change is written again with

    DIVERSION_WRITE_GOLDENS=1 .venv/bin/python -m pytest -q tests/test_report_golden.py

and committed on its own, saying why. Each report is made twice, with the
cache emptied first and then from what the first computed: both must match.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from datetime import date, datetime
from pathlib import Path

import pytest

from diversion_cli import report_format, reports
from diversion_cli.operations import Workspace
from diversion_cli.store import Store
from helpers import connect, sub
from test_reports import fixture_rows, write_csv

HERE = Path(__file__).parent
GOLDEN = HERE / "golden" / "reports"
WRITE = os.environ.get("DIVERSION_WRITE_GOLDENS") == "1"

NOW = datetime(2026, 11, 20, 10, 0)
LATER = datetime(2027, 11, 20, 10, 0)  # every fixture cohort watched for 12 months, open referrals overdue
FIXTURE_MONTHS = {1: date(2026, 8, 1), 2: date(2026, 9, 1), 3: date(2026, 10, 1)}
FIXTURE_RANGE = ("--from", "2026-08-01", "--to", "2026-10-31")
SAMPLE_RANGE = ("--from", "2026-03-01", "--to", "2026-10-31")
YEAR_2025 = ("--from", "2025-01-01", "--to", "2025-12-31")

CASES = {  # data set -> [(name, clock, arguments)]
    "fixture": [
        ("month-1", NOW, ("--month", "2026-08")),
        ("month-2", NOW, ("--month", "2026-09")),
        ("month-3", NOW, ("--month", "last")),
        ("range", NOW, FIXTURE_RANGE),
        *((f"range-by-{by}", NOW, (*FIXTURE_RANGE, "--by", by)) for by in reports.DIMENSIONS),
        ("month-2-dep-adult", NOW, ("--month", "2026-09", "--scheme", "dep-adult")),
        ("range-checkpoint-by-scheme", NOW, (*FIXTURE_RANGE, "--scheme", "checkpoint", "--by", "scheme")),
        ("range-CHECKPOINT-by-scheme", NOW, (*FIXTURE_RANGE, "--scheme", "CHECKPOINT", "--by", "scheme")),
        ("range-by-ethnicity-suppress-5", NOW, (*FIXTURE_RANGE, "--by", "ethnicity", "--suppress", "5")),
        ("later-range", LATER, FIXTURE_RANGE),
        ("later-month-1", LATER, ("--month", "2026-08")),
        ("later-range-dep-youth-by-age_band", LATER, (*FIXTURE_RANGE, "--scheme", "dep-youth", "--by", "age_band")),
    ],
    "sample": [
        ("month-march", NOW, ("--month", "2026-03")),
        ("month-last", NOW, ("--month", "last")),
        ("range", NOW, SAMPLE_RANGE),
        *((f"range-by-{by}", NOW, (*SAMPLE_RANGE, "--by", by)) for by in reports.DIMENSIONS),
        ("range-dep-adult-by-age_band", NOW, (*SAMPLE_RANGE, "--scheme", "dep-adult", "--by", "age_band")),
        ("range-by-drug_class-suppress-5", NOW, (*SAMPLE_RANGE, "--by", "drug_class", "--suppress", "5")),
        ("part-months", NOW, ("--from", "2026-04-15", "--to", "2026-06-10", "--by", "gender")),
    ],
    "three-years": [
        ("month", NOW, ("--month", "2025-06")),
        ("year", NOW, YEAR_2025),
        ("year-by-substance", NOW, (*YEAR_2025, "--by", "substance")),
        ("year-checkpoint", NOW, (*YEAR_2025, "--scheme", "checkpoint")),
        ("all-time-by-age_band-suppress-10", NOW, ("--from", "2024-01-01", "--to", "2026-10-31", "--by",
                                                    "age_band", "--suppress", "10")),
        ("part-months-by-officer", NOW, ("--from", "2024-11-20", "--to", "2025-02-03", "--by", "officer")),
    ],
}


def _csv_of(name: str, folder: Path) -> Path:
    if name == "fixture":
        return write_csv(folder / "fixture.csv", fixture_rows(months=FIXTURE_MONTHS))
    if name == "sample":
        return HERE.parent / "sample_data" / "incidents.csv"
    # generate.py --people 1500 --start 2024-01-01 --end 2026-11-01 --caught-again 0.2 (seed 2026), kept
    # here so a change to the generator does not move these figures
    return HERE / "golden" / "three-years.csv"


@pytest.fixture(scope="module")
def databases(tmp_path_factory) -> dict[str, Path]:
    """Each data set imported once (a subprocess: the per-test environment is not set up yet)."""
    folder = tmp_path_factory.mktemp("golden")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIVERSION_")}
    env.update(XDG_CONFIG_HOME=str(folder / "config"), DIVERSION_OFFICER="4471")
    if os.environ.get("DIVERSION_DB_KEY"):
        env["DIVERSION_DB_KEY"] = os.environ["DIVERSION_DB_KEY"]
    made = {}
    for name in CASES:
        db = folder / f"{name}.db"
        Store.create(db).close()
        result = sub("--db", db, "import", _csv_of(name, folder), env=env, timeout=300)
        assert result.returncode == 0, result.stderr
        made[name] = db
    return made


def _report(db: Path, now: datetime, args: tuple[str, ...]) -> str:
    options = dict(zip(args[::2], args[1::2]))
    ws = Workspace(db=str(db), clock=lambda: now)
    try:
        tables, meta = reports.make_report(ws, month=options.get("--month"), start=options.get("--from"),
                                           end=options.get("--to"), scheme=options.get("--scheme"),
                                           by=options.get("--by"))
        text = report_format.render(tables, "json", meta, int(options["--suppress"]) if "--suppress" in options
                                    else None)
    finally:
        ws.close()
    # the default configuration's fingerprint moves with its reference data, which is not a figure
    return re.sub(r'"config_fingerprint": "[^"]*"', '"config_fingerprint": "(default)"', text)


def _empty_cache(db: Path) -> None:
    conn = connect(db)
    try:
        conn.execute("DELETE FROM report_cache")
        conn.commit()
    finally:
        conn.close()


@pytest.mark.parametrize("dataset,name,now,args", [(d, *case) for d, cases in CASES.items() for case in cases],
                         ids=[f"{d}-{case[0]}" for d, cases in CASES.items() for case in cases])
def test_report_matches_its_golden_file(databases, dataset, name, now, args):
    db = databases[dataset]
    golden = GOLDEN / dataset / f"{name}.json"
    _empty_cache(db)
    cold = _report(db, now, args)
    warm = _report(db, now, args)
    if WRITE:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(cold, encoding="utf-8")
    assert golden.exists(), f"no golden file {golden}: write it with DIVERSION_WRITE_GOLDENS=1"
    expected = golden.read_text(encoding="utf-8")
    assert cold == expected
    assert warm == expected
