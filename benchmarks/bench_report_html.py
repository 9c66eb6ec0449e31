"""The HTML report against the JSON one (issue 14: HTML <= 2x JSON). Prints medians and
ratios; a benchmark, not a test.

    .venv/bin/python benchmarks/bench_report_html.py [--runs 9] [--db bench-work/desk-1000000.db] [--month 2026-10]

Without --db (or when the file is missing) it imports sample_data/incidents.csv into a
temporary database and reports its busiest month. Timed, each as a median:
1. in-process, the report built once, then rendered as JSON and as HTML;
2. whole processes, `diversion report --format json` vs `--format html`, without and with
   --suppress 5 (secondary suppression runs for both formats alike).
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def wall(cmd: list[str], env: dict) -> float:
    start = time.perf_counter()
    result = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{cmd[:6]} exited {result.returncode}: {result.stderr[-400:]}")
    return elapsed


def sample_database(folder: Path, env: dict) -> Path:
    db = folder / "sample.db"
    for args in (["db", "init"], ["import", str(ROOT / "sample_data" / "incidents.csv")]):
        subprocess.run([str(BIN / "diversion"), "--db", str(db), *args], env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return db


def busiest_month(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT substr(occurred_at, 1, 7) AS m FROM incidents GROUP BY m "
                            "ORDER BY count(*) DESC LIMIT 1").fetchone()[0]


def in_process(db: Path, month: str, runs: int) -> dict[str, float]:
    from diversion_cli import report_format, reports
    from diversion_cli.operations import Workspace

    ws = Workspace(db=str(db))
    tables, meta = reports.make_report(ws, month=month, by="age_band")
    out = {}
    for fmt in ("json", "html"):
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            report_format.render(tables, fmt, meta, None, ws.config)
            times.append(time.perf_counter() - t0)
        out[fmt] = statistics.median(times) * 1000
    ws.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--db")
    parser.add_argument("--month")
    args = parser.parse_args()
    env = {**os.environ, "DIVERSION_OFFICER": "9999", "NO_COLOR": "1"}
    env.pop("DIVERSION_DB", None)
    with tempfile.TemporaryDirectory() as work:
        db = Path(args.db) if args.db and Path(args.db).exists() else sample_database(Path(work), env)
        month = args.month or busiest_month(db)
        with sqlite3.connect(db) as conn:
            incidents = conn.execute("SELECT count(*) FROM incidents").fetchone()[0]
        print(f"database {db.name}: {incidents:,} incidents; report month {month}, by age band")
        rendered = in_process(db, month, args.runs)
        print(f"render only, in-process (median of {args.runs}): json {rendered['json']:.2f} ms, "
              f"html {rendered['html']:.2f} ms")
        for extra in ([], ["--suppress", "5"]):
            medians = {}
            for fmt in ("json", "html"):
                cmd = [str(BIN / "diversion"), "--db", str(db), "report", "--month", month, "--by", "age_band",
                       "--format", fmt, *extra]
                wall(cmd, env)  # the report cache and the OS page cache warm
                medians[fmt] = statistics.median(wall(cmd, env) for _ in range(args.runs)) * 1000
            label = " ".join(extra) or "no suppression"
            print(f"whole process, {label} (median of {args.runs}): json {medians['json']:.0f} ms, "
                  f"html {medians['html']:.0f} ms: html/json {medians['html'] / medians['json']:.2f}x (target <= 2x)")


if __name__ == "__main__":
    main()
