"""Custody-desk speed: `diversion check` and `diversion record` against a bare
Typer app, whole process, on a database of ~1,000,000 people and ~1,200,000
incidents. Prints medians and ratios; it is a benchmark, not a test.

    .venv/bin/python benchmarks/bench_desk.py [--runs 21] [--people 1000000]

The database is built once under bench-work/ (synthetic data from
sample_data/generate.py, loaded with `diversion import`) and reused.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench-work"
BIN = Path(sys.executable).parent / "diversion"
BARE = '''import typer
app = typer.Typer()
@app.command()
def noop():
    """Does nothing."""
@app.command()
def other():
    """Keeps Typer in multi-command mode, like diversion."""
app()
'''


def build(people: int, db: Path, env: dict) -> None:
    csv_path = WORK / f"people-{people}.csv"
    if not csv_path.exists():
        t = time.perf_counter()
        subprocess.run([sys.executable, str(ROOT / "sample_data" / "generate.py"), "--people", str(people),
                        "--start", "2016-01-01", "--caught-again", "0.2", "--out", str(csv_path)], check=True)
        print(f"generated {csv_path.name} in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    subprocess.run([str(BIN), "--db", str(db), "db", "init"], check=True, env=env)
    without_open_referrals(csv_path)
    t = time.perf_counter()
    subprocess.run([str(BIN), "--db", str(db), "import", str(csv_path)], check=True, env=env)
    elapsed = time.perf_counter() - t
    rows = sum(1 for _ in csv_path.open()) - 1
    print(f"imported {rows:,} rows in {elapsed:.0f} s ({rows / elapsed:,.0f} rows/s)", file=sys.stderr)


def without_open_referrals(csv_path: Path) -> None:
    """Synthetic names repeat far more than real ones: among a million generated people some
    open referrals are near matches of someone already diverted, which an import refuses
    without a not_same_as statement. The benchmark imports those incidents without their
    (open) referral; closed history is imported as it happened."""
    import csv

    with csv_path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        columns, rows = reader.fieldnames, list(reader)
    referral = ("scheme", "referral_status", "offered_at", "accepted_at", "closed_at", "outcome_reason")
    opened = 0
    for row in rows:
        if row.get("scheme") and row.get("referral_status") in ("offered", "accepted"):
            row.update({c: "" for c in referral if c in row})
            opened += 1
    with csv_path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    print(f"{opened} open referrals imported as plain incidents", file=sys.stderr)


def timed(cmd: list[str], env: dict, ok=(0, 1)) -> float:
    t = time.perf_counter()
    done = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - t
    if done.returncode not in ok:
        raise SystemExit(f"{cmd[:3]} failed ({done.returncode}): {done.stderr.decode()[-300:]}")
    return elapsed


def compile_bytecode() -> None:
    """pip compiles an installed package's bytecode; an editable install under
    PYTHONDONTWRITEBYTECODE would otherwise recompile every module on every run."""
    import compileall

    import diversion_cli

    compileall.compile_dir(Path(diversion_cli.__file__).parent, quiet=1)


def main() -> None:
    compile_bytecode()
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--people", type=int, default=1_000_000)
    args = parser.parse_args()
    WORK.mkdir(exist_ok=True)
    db = WORK / f"desk-{args.people}.db"
    env = {**os.environ, "DIVERSION_OFFICER": "9999", "NO_COLOR": "1"}
    env.pop("DIVERSION_DB", None)
    if not db.exists():
        build(args.people, db, env)
    import sqlite3

    with sqlite3.connect(db) as conn:
        people, incidents = conn.execute("SELECT (SELECT count(*) FROM people), "
                                         "(SELECT count(*) FROM incidents)").fetchone()
        max_id = conn.execute("SELECT max(id) FROM people").fetchone()[0]
    bare = WORK / "bare_typer.py"
    bare.write_text(BARE)
    rng = random.Random(7)
    samples = {"bare": [], "check": [], "record": []}
    # warm the page cache and the .pyc files once, then interleave so noise hits all alike
    timed([sys.executable, str(bare), "noop"], env)
    timed([str(BIN), "--db", str(db), "check", f"P-{rng.randint(1, max_id):06d}"], env)
    for n in range(args.runs):
        samples["bare"].append(timed([sys.executable, str(bare), "noop"], env))
        samples["check"].append(timed([str(BIN), "--db", str(db), "check", f"P-{rng.randint(1, max_id):06d}"], env))
        samples["record"].append(timed(
            [str(BIN), "--db", str(db), "record", "--surname", f"Bench{'abcdefghijklmnopqrstuvwxyz'[n % 26]}"
             f"{'abcdefghijklmnopqrstuvwxyz'[n // 26 % 26]}", "--forename", "Desk",
             "--dob", f"19{rng.randint(50, 99)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}", "--substance", "weed",
             "--location", "benchmark", "--not-duplicate"], env, ok=(0,)))  # names repeat across benchmark runs
    med = {k: statistics.median(v) for k, v in samples.items()}
    print(f"database: {people:,} people, {incidents:,} incidents ({db.stat().st_size / 1e6:,.0f} MB); "
          f"{args.runs} interleaved runs each, medians")
    print(f"bare Typer app        {med['bare'] * 1000:7.1f} ms")
    print(f"diversion check ID    {med['check'] * 1000:7.1f} ms   ratio {med['check'] / med['bare']:.2f}x "
          f"(target <= 1.25x)")
    print(f"diversion record      {med['record'] * 1000:7.1f} ms   ratio {med['record'] / med['bare']:.2f}x "
          f"(target <= 1.35x)")


if __name__ == "__main__":
    main()
