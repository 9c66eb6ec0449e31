"""Backups while desks write: `diversion db backup` of a database over 200 MB,
idle and with six desks recording at once. Prints medians and the ratio
(target <= 2x idle); a benchmark, not a test.

    .venv/bin/python benchmarks/bench_backup.py [--runs 5] [--people 45000] [--writers 6] [--pace 0]
                                                [--desk-nice 0]

The database (~230 MB at 45,000 people) is built once under bench-work/
(`db init`, then `import` of sample_data/generate.py output) and reused. Each
writer is a process that runs `diversion record` (a new person each time) in a
loop until it is told to stop, or after --max-records or 15 minutes, waiting
--pace seconds between records (default 0: as fast as it can). Every backup is
timed as a whole process, including its own checks of the copy, in wall time
and in the CPU time it used: on a machine with fewer cores than desks, six
tight loops of `diversion record` take most of the CPU, and the CPU time shows
whether the backup did more work or only waited its turn for a core.
--desk-nice runs the desks at a lower CPU priority, so that on such a machine
the wall time shows what the desks do to the backup through the database (the
write lock, the WAL, restarts) rather than its share of the cores. Everything
is local files; nothing goes over a network.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench_desk import BIN, WORK, compile_bytecode, drop_refused_rows  # same folder: run as a script

ROOT = Path(__file__).resolve().parent.parent

# One desk: `diversion record` in a loop, a new person each time, until the stop file appears.
DESK = r"""
import os, subprocess, sys, time
binary, db, stop, ready, tag, max_records, pace = sys.argv[1:8]
letters = "abcdefghijklmnopqrstuvwxyz"
n, deadline = 0, time.monotonic() + 900
while not os.path.exists(stop) and n < int(max_records) and time.monotonic() < deadline:
    forename = "".join(letters[(n // 26 ** k) % 26] for k in range(4))
    done = subprocess.run([binary, "--db", db, "record", "--surname", "Benchdesk" + tag, "--forename",
                           "W" + forename, "--dob", f"19{50 + n % 40}-03-{10 + n % 18}", "--substance", "weed",
                           "--location", "benchmark", "--new-person"], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"record exited {done.returncode}: {done.stderr[-300:]}")
    n += 1
    if n == 1:
        open(ready, "w").close()
    time.sleep(float(pace))
print(n)
"""


def build(people: int, db: Path, env: dict) -> None:
    csv_path = WORK / f"backup-people-{people}.csv"
    if not csv_path.exists():
        subprocess.run([sys.executable, str(ROOT / "sample_data" / "generate.py"), "--people", str(people),
                        "--start", "2016-01-01", "--caught-again", "0.2", "--out", str(csv_path)], check=True)
    subprocess.run([str(BIN), "--db", str(db), "db", "init"], check=True, env=env)
    drop_refused_rows(csv_path, db, env)
    t = time.perf_counter()
    subprocess.run([str(BIN), "--db", str(db), "import", str(csv_path)], check=True, env=env)
    print(f"imported {csv_path.name} in {time.perf_counter() - t:.0f} s", file=sys.stderr)


def timed_backup(db: Path, target: Path, env: dict) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of one `db backup` process."""
    t = time.perf_counter()
    proc = subprocess.Popen([str(BIN), "--db", str(db), "db", "backup", str(target)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - t
    err = proc.stderr.read().decode()
    proc.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"db backup exited {os.waitstatus_to_exitcode(status)}: {err[-400:]}")
    target.unlink()
    return elapsed, usage.ru_utime + usage.ru_stime


def incidents(db: Path) -> int:
    from diversion_cli.store import connect

    conn = connect(db)
    try:
        return conn.execute("SELECT count(*) FROM incidents").fetchone()[0]
    finally:
        conn.close()


def main() -> None:
    compile_bytecode()
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--people", type=int, default=45_000)
    parser.add_argument("--writers", type=int, default=6)
    parser.add_argument("--max-records", type=int, default=5_000, help="per writer, a bound on the loop")
    parser.add_argument("--pace", type=float, default=0.0, help="seconds each desk waits between records")
    parser.add_argument("--desk-nice", type=int, default=0, help="CPU niceness of the desks (0-19)")
    args = parser.parse_args()
    WORK.mkdir(exist_ok=True)
    db = WORK / f"backup-{args.people}.db"
    env = {**os.environ, "DIVERSION_OFFICER": "9999", "NO_COLOR": "1"}
    env.pop("DIVERSION_DB", None)
    if not db.exists():
        build(args.people, db, env)
    size = db.stat().st_size
    target = WORK / "bench-backup-copy.db"
    target.unlink(missing_ok=True)

    timed_backup(db, target, env)  # warm the page cache once
    idle = [timed_backup(db, target, env) for _ in range(args.runs)]

    stop = WORK / "bench-backup-stop"
    stop.unlink(missing_ok=True)
    ready = [WORK / f"bench-backup-ready-{n}" for n in range(args.writers)]
    for path in ready:
        path.unlink(missing_ok=True)
    before = incidents(db)
    desks = [subprocess.Popen([sys.executable, "-c", DESK, str(BIN), str(db), str(stop), str(ready[n]),
                               "abcdefghijklmnopqrstuvwxyz"[n], str(args.max_records), str(args.pace)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              preexec_fn=lambda: os.nice(args.desk_nice))
             for n in range(args.writers)]
    try:
        while not all(path.exists() for path in ready):
            if any(desk.poll() is not None for desk in desks):
                raise SystemExit(f"a desk stopped: {[d.communicate() for d in desks if d.poll() is not None]}")
            time.sleep(0.05)
        started = time.perf_counter()
        busy = [timed_backup(db, target, env) for _ in range(args.runs)]
        window = time.perf_counter() - started
    finally:
        stop.touch()
        results = [desk.communicate(timeout=120) for desk in desks]
        stop.unlink(missing_ok=True)
        for path in ready:
            path.unlink(missing_ok=True)
    if any(desk.returncode != 0 for desk in desks):
        raise SystemExit(f"a desk failed: {[err[-300:] for _, err in results if err]}")
    recorded = incidents(db) - before
    wall = {k: statistics.median(t for t, _ in v) for k, v in (("idle", idle), ("busy", busy))}
    cpu = {k: statistics.median(c for _, c in v) for k, v in (("idle", idle), ("busy", busy))}
    desks = f"{args.writers} desks recording" + (f" every {args.pace:g} s" if args.pace else "") \
        + (f" at nice {args.desk_nice}" if args.desk_nice else "")
    print(f"database: {size / 1e6:,.0f} MB, {before:,} incidents; {args.runs} backups each, whole process "
          f"(the copy and its checks); {os.cpu_count()} CPUs")
    for label, key, runs in (("idle", "idle", idle), (desks, "busy", busy)):
        print(f"{label:<34} median {wall[key]:6.2f} s wall, {cpu[key]:5.2f} s CPU   "
              f"(wall: {', '.join(f'{t:.2f}' for t, _ in runs)})")
    print(f"ratio {wall['busy'] / wall['idle']:.2f}x wall (target <= 2x), {cpu['busy'] / cpu['idle']:.2f}x CPU; "
          f"the desks recorded {recorded:,} incidents while the backups ran ({recorded / window:.1f}/s)")


if __name__ == "__main__":
    main()
