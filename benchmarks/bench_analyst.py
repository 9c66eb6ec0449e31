"""Analyst speed: reports and bulk import. Prints medians and ratios; a
benchmark, not a test.

    .venv/bin/python benchmarks/bench_analyst.py [--runs 9] [--db bench-work/desk-1000000.db]

1. Reports in-process (build + render as JSON) on the big database (built by
   bench_desk.py: ~1,000,000 people, ~1,200,000 incidents):
     monthly    cold (report cache emptied first) and warm (nothing changed since);
     one year   a twelve-month range, cold and warm;
     desk write warm after one desk write today (`diversion record`), the
                common case on a live system;
     all time   cold, in a fresh process, with that process's peak memory.
2. The monthly report as a whole process (cache warm) vs a bare Typer app.
3. `diversion import` vs `sqlite-utils insert` of the same CSV (no validation)
   at growing sizes: CPU time (user + sys) per row, runs paired (ours and
   theirs alternately, the order swapped each pair) and the median of the
   per-pair ratios; and each process's peak memory, to show it stays flat as
   the file grows (the import streams).

Peak memory is measured through /usr/bin/time (%M): wait4's ru_maxrss of a
child forked from this (large) process starts at this process's own peak, which
a fork passes on; `time` is small, and the child it forks reports its own.
The launcher is checked first on processes of known size.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from bench_desk import ROOT, WORK, compile_bytecode  # same folder: run as a script

BIN = Path(sys.executable).parent
TIME = "/usr/bin/time"


def run(cmd: list[str], env: dict) -> tuple[float, float, float, str]:
    """(wall s, CPU s of the child and its children, peak MB, stdout) of one child process."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err, \
            tempfile.NamedTemporaryFile("r", suffix=".peak") as peak:
        start = time.perf_counter()
        proc = subprocess.Popen([TIME, "-f", "%M", "-o", peak.name, *cmd], env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)  # rusage of `time`, which includes the child it waited for
        wall = time.perf_counter() - start
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            err.seek(0)
            raise SystemExit(f"{cmd[:4]} exited {code}: {err.read()[-400:]}")
        out.seek(0)
        peak_mb = int(peak.read().split()[-1]) / 1024  # %M is in kilobytes
        return wall, usage.ru_utime + usage.ru_stime, peak_mb, out.read()


def check_launcher(env: dict) -> None:
    """Peak memory of processes of known size, read through the launcher, beside what
    wait4 says of the same process forked from here (this process is large by now)."""
    ballast = bytearray(150 * 2**20)  # make the inherited peak plain to see
    ballast[::4096] = b"x" * len(ballast[::4096])
    for label, cmd in (("/bin/true", ["/bin/true"]),
                       ("python -c pass", [sys.executable, "-c", "pass"]),
                       ("python holding 100 MB", [sys.executable, "-c",
                                                  "b = bytearray(100 * 2**20); b[::4096] = b'x' * len(b[::4096])"])):
        _, _, peak_mb, _ = run(cmd, env)
        proc = subprocess.Popen(cmd, env=env)
        _, _, usage = os.wait4(proc.pid, 0)
        print(f"  {label:<22} {peak_mb:6.1f} MB through {TIME} (wait4 from here: {usage.ru_maxrss / 1024:.1f} MB)")
    del ballast


# ---- reports ---------------------------------------------------------------------------

def report_once(db: Path, args: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds to build and render one report in this process (CPU time as
    well: on a shared machine, wall time also counts waiting for a core)."""
    from diversion_cli import report_format, reports
    from diversion_cli.operations import Workspace

    options = dict(zip(args[::2], args[1::2]))
    ws = Workspace(db=str(db))
    t0, c0 = time.perf_counter(), time.process_time()
    tables, meta = reports.make_report(ws, month=options.get("--month"), start=options.get("--from"),
                                       end=options.get("--to"))
    report_format.render(tables, "json", meta, None)
    elapsed = time.perf_counter() - t0, time.process_time() - c0
    ws.close()
    return elapsed


def empty_cache(db: Path) -> None:
    import sqlite3

    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM report_cache")


def desk_write(db: Path, env: dict) -> None:
    """One incident recorded today, at the desk, for a new person (a date of birth of
    their own, so no near match is asked about)."""
    born = date(1950, 1, 1) + timedelta(days=int(time.time() * 1000) % 18000)
    subprocess.run([str(BIN / "diversion"), "--db", str(db), "record", "--surname", "Benchmark", "--forename",
                    "Desk", "--dob", born.isoformat(), "--substance", "weed"], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def report_timings(db: Path, month: str, year: tuple[str, str], runs: int,
                   env: dict) -> dict[str, tuple[float, float]]:
    """Median wall and CPU ms of each state; the desk writes go into the database (a new
    person each)."""
    monthly, yearly = ["--month", month], ["--from", year[0], "--to", year[1]]
    subprocess.run([str(BIN / "diversion"), "--db", str(db), "db", "upgrade"], env=env, check=True,
                   stdout=subprocess.DEVNULL)  # reports read only: an older schema is brought up to date first
    report_once(db, monthly)  # warms the OS page cache
    timings: dict[str, list[tuple[float, float]]] = {}
    for _ in range(runs):
        for name, args in (("monthly", monthly), ("one year", yearly)):
            empty_cache(db)
            timings.setdefault(f"{name} cold", []).append(report_once(db, args))
            timings.setdefault(f"{name} warm", []).append(report_once(db, args))
        desk_write(db, env)
        timings.setdefault("monthly warm after a desk write today", []).append(report_once(db, monthly))
    return {state: tuple(statistics.median(s) * 1000 for s in zip(*seconds)) for state, seconds in timings.items()}


def all_time_cold(db: Path, period: tuple[str, str], runs: int, env: dict) -> tuple[float, float, float]:
    """(median wall ms, median CPU ms, highest peak MB) of the all-time report, cold, each
    in a fresh process."""
    wall, cpu, peaks = [], [], []
    for _ in range(runs):
        empty_cache(db)
        _, _, peak_mb, out = run([sys.executable, __file__, "--report-once", str(db), "--from", period[0],
                                  "--to", period[1]], env)
        wall.append(float(out.split()[0]))
        cpu.append(float(out.split()[1]))
        peaks.append(peak_mb)
    return statistics.median(wall) * 1000, statistics.median(cpu) * 1000, max(peaks)


# ---- import ------------------------------------------------------------------------------

def import_csv(size: int, env: dict) -> Path:
    """A generated CSV of about `size` rows that the import takes whole: rows it refuses (the
    generator's random names can make a near match of someone already diverted) are left out."""
    import re

    csv_path = WORK / f"import-{size}.csv"
    if csv_path.exists():
        return csv_path
    subprocess.run([sys.executable, str(ROOT / "sample_data" / "generate.py"), "--people", str(int(size / 1.19)),
                    "--start", "2016-01-01", "--caught-again", "0.2", "--out", str(csv_path)], check=True,
                   stderr=subprocess.DEVNULL)
    scratch = WORK / f"import-{size}-check.db"
    scratch.unlink(missing_ok=True)
    subprocess.run([str(BIN / "diversion"), "--db", str(scratch), "db", "init"], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    check = subprocess.run([str(BIN / "diversion"), "--db", str(scratch), "import", "--dry-run", str(csv_path)],
                           env=env, capture_output=True, text=True)
    refused = {int(n) for n in re.findall(r"^\s*line (\d+):", check.stderr, re.MULTILINE)}
    if refused:
        lines = csv_path.read_text().splitlines(keepends=True)
        csv_path.write_text("".join(line for n, line in enumerate(lines, 1) if n not in refused))
        print(f"  (left out {len(refused)} generated row(s) the import refuses: {sorted(refused)})")
    for f in (scratch, Path(f"{scratch}-wal"), Path(f"{scratch}-shm")):
        f.unlink(missing_ok=True)
    return csv_path


def import_pairs(size: int, pairs: int, env: dict) -> None:
    csv_path = import_csv(size, env)
    rows = sum(1 for _ in csv_path.open()) - 1
    ratios, ours_cpu, theirs_cpu, ours_peak, theirs_peak = [], [], [], [], []
    for pair in range(pairs):
        ours_db, theirs_db = WORK / f"import-{size}.db", WORK / f"import-{size}-su.db"
        for f in (ours_db, theirs_db, *(Path(f"{d}{s}") for d in (ours_db, theirs_db) for s in ("-wal", "-shm"))):
            f.unlink(missing_ok=True)
        subprocess.run([str(BIN / "diversion"), "--db", str(ours_db), "db", "init"], check=True, env=env,
                       stdout=subprocess.DEVNULL)
        ours_cmd = [str(BIN / "diversion"), "--db", str(ours_db), "import", str(csv_path)]
        theirs_cmd = [str(BIN / "sqlite-utils"), "insert", str(theirs_db), "incidents", str(csv_path), "--csv"]
        measured = {}
        for who, cmd in (("ours", ours_cmd), ("theirs", theirs_cmd))[:: 1 if pair % 2 == 0 else -1]:
            measured[who] = run(cmd, env)
        ours, theirs = measured["ours"], measured["theirs"]
        ours_cpu.append(ours[1])
        theirs_cpu.append(theirs[1])
        ours_peak.append(ours[2])
        theirs_peak.append(theirs[2])
        ratios.append(ours[1] / theirs[1])
    print(f"  {rows:>8,} rows: CPU per row ours {statistics.median(ours_cpu) / rows * 1e6:6.1f} µs, sqlite-utils "
          f"{statistics.median(theirs_cpu) / rows * 1e6:6.1f} µs; median of {pairs} paired ratios "
          f"{statistics.median(ratios):.2f}x (pairs {', '.join(f'{r:.2f}' for r in ratios)}); peak memory ours "
          f"{max(ours_peak):.0f} MB, sqlite-utils {max(theirs_peak):.0f} MB")


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--report-once":  # the child of all_time_cold
        print(*report_once(Path(sys.argv[2]), sys.argv[3:]))
        return
    compile_bytecode()
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--db", default=str(WORK / "desk-1000000.db"))
    parser.add_argument("--month", default="2026-10")
    parser.add_argument("--all-time-runs", type=int, default=3)
    parser.add_argument("--sizes", default="10000,40000,160000")
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--skip", default="", help="comma-separated: reports, import")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    env = {**os.environ, "DIVERSION_OFFICER": "9999", "NO_COLOR": "1"}
    env.pop("DIVERSION_DB", None)
    WORK.mkdir(exist_ok=True)
    db = Path(args.db)
    print("peak memory launcher, on processes of known size:")
    check_launcher(env)
    if "reports" in skip:
        pass
    elif db.exists():
        import sqlite3

        with sqlite3.connect(db) as conn:
            incidents, first = conn.execute("SELECT count(*), min(occurred_at) FROM incidents").fetchone()
            month_rows = conn.execute("SELECT count(*) FROM incidents WHERE occurred_at >= ? AND occurred_at < ?",
                                      (args.month + "-01", args.month + "-32")).fetchone()[0]
        month_start = date.fromisoformat(args.month + "-01")
        month_end = (month_start + timedelta(days=31)).replace(day=1) - timedelta(days=1)
        year = ((month_end + timedelta(days=1)).replace(year=month_end.year - 1).isoformat(), month_end.isoformat())
        print(f"database: {incidents:,} incidents; report month {args.month} has {month_rows:,}; one year "
              f"{year[0]} to {year[1]}; all time {first[:10]} to {month_end}")
        timings = report_timings(db, args.month, year, args.runs, env)
        print(f"reports in-process, build + render as JSON (median of {args.runs}; wall, and CPU time):")
        for state, (wall, cpu) in timings.items():
            print(f"  {state:<40} {wall:8.1f} ms  (CPU {cpu:7.1f} ms)")
        wall, cpu, peak = all_time_cold(db, (first[:10], month_end.isoformat()), args.all_time_runs, env)
        print(f"  {'all time cold (fresh process)':<40} {wall:8.1f} ms  (CPU {cpu:7.1f} ms), peak memory "
              f"{peak:.0f} MB (median of {args.all_time_runs}, highest peak)")
        bare = WORK / "bare_typer.py"
        if bare.exists():
            whole, base = [], []
            for _ in range(args.runs):
                base.append(run([sys.executable, str(bare), "noop"], env)[0])
                whole.append(run([str(BIN / "diversion"), "--db", str(db), "report", "--month", args.month,
                                  "--format", "json"], env)[0])
            print(f"report whole process {statistics.median(whole) * 1000:.0f} ms vs bare Typer "
                  f"{statistics.median(base) * 1000:.0f} ms: ratio "
                  f"{statistics.median(whole) / statistics.median(base):.2f}x")
        else:
            print(f"(no {bare}: run benchmarks/bench_desk.py to write it; skipping the whole-process ratio)")
    else:
        print(f"(no {db}: run benchmarks/bench_desk.py to build it; skipping the report timings)")

    if "import" not in skip:
        print("import vs sqlite-utils insert (same CSV; ours validates every row, applies the rules, "
              "writes 7 tables and the audit trail):")
        for size in (int(s) for s in args.sizes.split(",")):
            import_pairs(size, args.pairs, env)


if __name__ == "__main__":
    main()
