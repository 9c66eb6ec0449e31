"""Analyst speed: the monthly report and bulk import. Prints medians and
ratios; a benchmark, not a test.

    .venv/bin/python benchmarks/bench_analyst.py [--runs 9] [--db bench-work/desk-1000000.db]

1. `report --month` in-process (build + render) on the big database
   (built by bench_desk.py: ~1,000,000 people, ~1,200,000 incidents), with
   the report cache cold, holding last month's figures, and warm.
2. The same report as a whole process (cache warm) vs a bare Typer app.
3. `diversion import` vs `sqlite-utils insert` of the same CSV (no
   validation) at growing sizes, in rows/s, with each process's peak memory,
   to show memory stays flat as the file grows (the import streams).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench_desk import ROOT, WORK, compile_bytecode  # same folder: run as a script

BIN = Path(sys.executable).parent


def run(cmd: list[str], env: dict) -> tuple[float, int]:
    """Wall seconds and peak RSS (MB) of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    err = proc.stderr.read().decode()
    proc.stderr.close()
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{cmd[:4]} exited {code}: {err[-400:]}")
    return elapsed, usage.ru_maxrss // 1024


def report_in_process(db: Path, month: str, runs: int) -> dict[str, float]:
    """Median ms of build + render of the month's report, in three states of the
    report cache (migration 6):
      cold       the cache emptied first: every figure computed from the rows;
      new month  the cache holding what the previous month's report computed, as
                 when an analyst runs this month's report after last month's;
      warm       the same report again, nothing changed since."""
    import sqlite3

    from diversion_cli import report_format, reports
    from diversion_cli.operations import Workspace

    year, mon = map(int, month.split("-"))
    previous = f"{year - (mon == 1)}-{12 if mon == 1 else mon - 1:02d}"

    def empty_cache():
        with sqlite3.connect(db) as conn:
            conn.execute("DELETE FROM report_cache")

    def timed(which: str) -> float:
        ws = Workspace(db=str(db))
        t0 = time.perf_counter()
        tables, meta = reports.make_report(ws, month=which)
        report_format.render(tables, "json", meta, None)
        elapsed = time.perf_counter() - t0
        ws.close()
        return elapsed

    timed(month)  # migrates the file if needed, warms the OS page cache
    cold, new_month, warm = [], [], []
    for _ in range(runs):
        empty_cache()
        cold.append(timed(month))
        empty_cache()
        timed(previous)
        new_month.append(timed(month))
        warm.append(timed(month))
    return {"cold": statistics.median(cold) * 1000, "new month": statistics.median(new_month) * 1000,
            "warm": statistics.median(warm) * 1000}


def main() -> None:
    compile_bytecode()
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--db", default=str(WORK / "desk-1000000.db"))
    parser.add_argument("--month", default="2026-10")
    parser.add_argument("--sizes", default="10000,40000,160000")
    args = parser.parse_args()
    env = {**os.environ, "DIVERSION_OFFICER": "9999", "NO_COLOR": "1"}
    env.pop("DIVERSION_DB", None)
    db = Path(args.db)
    if db.exists():
        import sqlite3

        with sqlite3.connect(db) as conn:
            incidents = conn.execute("SELECT count(*) FROM incidents").fetchone()[0]
            month_rows = conn.execute("SELECT count(*) FROM incidents WHERE occurred_at >= ? AND occurred_at < ?",
                                      (args.month + "-01", args.month + "-32")).fetchone()[0]
        timings = report_in_process(db, args.month, args.runs)
        print(f"database: {incidents:,} incidents; report month {args.month} has {month_rows:,}")
        print(f"report in-process, build + render (median of {args.runs}; target <= 100 ms): "
              + ", ".join(f"{state} {ms:.1f} ms" for state, ms in timings.items()))
        bare = WORK / "bare_typer.py"
        if not bare.exists():
            raise SystemExit("run benchmarks/bench_desk.py first (it writes the bare Typer app)")
        whole, base = [], []
        for _ in range(args.runs):
            base.append(run([sys.executable, str(bare), "noop"], env)[0])
            whole.append(run([str(BIN / "diversion"), "--db", str(db), "report", "--month", args.month,
                              "--format", "json"], env)[0])
        print(f"report whole process {statistics.median(whole) * 1000:.0f} ms vs bare Typer "
              f"{statistics.median(base) * 1000:.0f} ms: ratio {statistics.median(whole) / statistics.median(base):.2f}x")
    else:
        print(f"(no {db}: run benchmarks/bench_desk.py to build it; skipping the report timings)")

    print("import vs sqlite-utils insert (same CSV; ours validates every row, applies the rules, "
          "writes 7 tables and the audit trail):")
    for size in (int(s) for s in args.sizes.split(",")):
        csv_path = WORK / f"import-{size}.csv"
        if not csv_path.exists():
            subprocess.run([sys.executable, str(ROOT / "sample_data" / "generate.py"), "--people",
                            str(int(size / 1.19)), "--start", "2016-01-01", "--caught-again", "0.2",
                            "--out", str(csv_path)], check=True, stderr=subprocess.DEVNULL)
        rows = sum(1 for _ in csv_path.open()) - 1
        ours_db, theirs_db = WORK / f"import-{size}.db", WORK / f"import-{size}-su.db"
        for f in (ours_db, theirs_db, Path(f"{ours_db}-wal"), Path(f"{ours_db}-shm")):
            f.unlink(missing_ok=True)
        subprocess.run([str(BIN / "diversion"), "--db", str(ours_db), "db", "init"], check=True, env=env,
                       stdout=subprocess.DEVNULL)
        ours_t, ours_mem = run([str(BIN / "diversion"), "--db", str(ours_db), "import", str(csv_path)], env)
        theirs_t, theirs_mem = run([str(BIN / "sqlite-utils"), "insert", str(theirs_db), "incidents",
                                    str(csv_path), "--csv"], env)
        print(f"  {rows:>8,} rows: ours {rows / ours_t:>8,.0f} rows/s ({ours_mem} MB peak), sqlite-utils "
              f"{rows / theirs_t:>8,.0f} rows/s ({theirs_mem} MB peak): ratio {theirs_t / ours_t:.2f}x")


if __name__ == "__main__":
    main()
