"""SQLite and PostgreSQL side by side on the ~1.2 M-incident database (issue 11).
Prints medians and ratios; a benchmark, not a test.

    .venv/bin/python benchmarks/bench_postgres.py [--runs 15] [--report-runs 7] [--verify-runs 1]

Built once and reused (under bench-work/, and the server database bench_desk):
  - a copy of the compacted SQLite database (default /work/main/bench-work/desk-compact.db,
    never written; the copy takes the benchmark's desk writes);
  - the PostgreSQL database, filled by the product's own path: CREATE DATABASE,
    `diversion db init`, `diversion db migrate-to` from the copy, timed (the figures
    are kept in bench-work/bench_postgres-NAME-migration.json and printed on every run).

Measured, the engines alternating so the machine's noise hits both alike:
 1. `check` and `record` as whole processes vs a bare Typer app (bench_desk.py's),
    and what `import psycopg` costs a process on its own (vs `python -c pass`);
 2. the monthly report in-process, cold (report cache emptied first) and warm: wall,
    this process's CPU, and on PostgreSQL the server's CPU as well (the query runs there);
 3. `audit verify` as a whole process (wall);
 4. `db status` of both, and size on disk per incident.

The first run takes ~20 minutes to migrate (most of it the server verifying the copied
trail); `audit verify` on the server takes ~7 minutes (`--skip verify` leaves it out).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_desk import BARE, WORK, compile_bytecode  # same folder: run as a script

from diversion_cli.store.postgres.transfer import TABLES

BIN = Path(sys.executable).parent / "diversion"


def psql(sql: str, dbname: str = "postgres") -> str:
    done = subprocess.run(["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-d", dbname, "-c", sql],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"psql -d {dbname}: {done.stderr.strip()}")
    return done.stdout.strip()


def diversion(db: str, *args: str, env: dict) -> subprocess.CompletedProcess:
    done = subprocess.run([str(BIN), "--db", db, *args], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"diversion --db {db} {' '.join(args)} exited {done.returncode}: {done.stderr.strip()}")
    return done


def migration_record(name: str) -> Path:
    return WORK / f"bench_postgres-{name}-migration.json"


def missing_guards_added(copy: Path) -> None:
    """The data set was built before migration 10 gained its change-count insert guards
    (`*_counted`, commit 816be30 edited that migration in place), so `audit verify`, and with
    it `db migrate-to`, refuses it ("the trigger ... is missing"). The copy gets exactly the
    triggers today's migrations define and it lacks; any other difference stops here."""
    from diversion_cli.store.audit import _schema, expected_schema

    with sqlite3.connect(copy) as conn:
        expected, found = expected_schema(), _schema(conn)
        same = lambda a, b: " ".join((a or "").split()) == " ".join((b or "").split())  # noqa: E731
        differ = [key for key in expected.keys() & found.keys() if not same(expected[key], found[key])]
        extra = found.keys() - expected.keys()
        missing = sorted(expected.keys() - found.keys())
        if differ or extra or any(kind != "trigger" for kind, _ in missing):
            raise SystemExit(f"{copy}: its schema is not today's beyond missing triggers: differ {differ}, "
                             f"extra {sorted(extra)}, missing {missing}")
        for key in missing:
            conn.execute(expected[key])
            print(f"added the {key[0]} {key[1]} to {copy.name} (defined by migration 10 today; "
                  f"the data set predates it)", file=sys.stderr)


def verify_env(env: dict, work_mem: str) -> dict:
    """The environment of a process that runs the audit verify on the server (`audit verify`,
    and `db migrate-to`, which verifies what it copied). Its check that every person has a salt,
    `id NOT IN (SELECT person_id FROM audit_salts)`, is planned by PostgreSQL as a scan of the
    whole salts list per person unless that list fits in work_mem as a hash table (default
    4MB: ~100,000 people): with a million people it ran for hours (the first migration was
    cancelled after 4 minutes on it, its cost estimate 5.9e9). A larger work_mem for these
    processes alone lets the product's own query run hashed."""
    return {**env, "PGOPTIONS": f"-c work_mem={work_mem}"} if work_mem else env


def build(source: Path, copy: Path, name: str, env: dict) -> None:
    """The SQLite copy, then the server database filled from it by `db migrate-to` (timed)."""
    if not copy.exists():
        t = time.perf_counter()
        shutil.copyfile(source, copy)
        print(f"copied {source} to {copy} in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    url = f"postgresql:///{name}"
    if psql(f"SELECT count(*) FROM pg_database WHERE datname = '{name}'") == "0":
        psql(f"CREATE DATABASE {name}")
    if psql("SELECT to_regclass('migrations') IS NOT NULL", name) == "f":
        diversion(url, "db", "init", env=env)
    if psql("SELECT count(*) FROM incidents", name) != "0":
        return
    missing_guards_added(copy)
    with sqlite3.connect(copy) as conn:
        rows = {table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in TABLES}
    load = os.getloadavg()[0]
    t = time.perf_counter()
    done = diversion(str(copy), "db", "migrate-to", url, env=env)  # env: verify_env's
    elapsed = time.perf_counter() - t
    figures = {"seconds": elapsed, "rows": rows, "load": load, "said": done.stdout.strip(),
               "PGOPTIONS": env.get("PGOPTIONS"),
               "at": time.strftime("%Y-%m-%d %H:%M")}
    migration_record(name).write_text(json.dumps(figures, indent=1))
    print(f"migrated in {elapsed:.0f} s", file=sys.stderr)


def timed(cmd: list[str], env: dict, ok=(0, 1)) -> tuple[float, float]:
    """(wall s, CPU s) of one child process (its own CPU: a server's work is not in it)."""
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status) not in ok:
            err.seek(0)
            raise SystemExit(f"{cmd[:5]} failed ({os.waitstatus_to_exitcode(status)}): {err.read().decode()[-300:]}")
    return wall, usage.ru_utime + usage.ru_stime


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


# ---- 1. the desk, whole processes ---------------------------------------------------

def letters(n: int, width: int) -> str:
    return "".join("abcdefghijklmnopqrstuvwxyz"[n // 26**i % 26] for i in range(width))


def desk(dbs: dict[str, str], max_id: int, runs: int, env: dict) -> dict[str, float]:
    """Median wall s of each process; every run goes round all of them, starting one
    further along each time, so no engine always follows the same neighbour."""
    import random

    rng = random.Random(11)
    bare = WORK / "bare_typer.py"
    bare.write_text(BARE)
    tag = letters(time.time_ns() // 1000, 4)  # names are spelt in letters: this run's, then the record's
    commands = {"python -c pass": lambda n: [sys.executable, "-c", "pass"],
                "import psycopg": lambda n: [sys.executable, "-c", "import psycopg"],
                "bare Typer app": lambda n: [sys.executable, str(bare), "noop"]}
    for engine, db in dbs.items():
        commands[f"check ({engine})"] = lambda n, db=db: [str(BIN), "--db", db, "check",
                                                           f"P-{rng.randint(1, max_id):06d}"]
        commands[f"record ({engine})"] = lambda n, db=db, engine=engine: [
            str(BIN), "--db", db, "record", "--surname", f"Bench{engine.capitalize()}{tag}{letters(n, 3)}",
            "--forename", "Desk", "--dob", f"19{rng.randint(50, 99)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}",
            "--substance", "weed", "--location", "benchmark", "--not-duplicate"]
    for make in commands.values():  # page cache, .pyc files, the server's buffers
        timed(make(runs), env)
    samples: dict[str, list[float]] = {name: [] for name in commands}
    names = list(commands)
    for n in range(runs):
        shift = n % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].append(timed(commands[name](n), env, ok=(0,) if name.startswith("record") else (0, 1))[0])
    return {name: statistics.median(s) for name, s in samples.items()}


# ---- 2. the monthly report, in-process ----------------------------------------------

def cpu_seconds(pid: int) -> float:
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9  # time on a CPU, ns


def reaped_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[13]) + int(fields[14])  # cutime, cstime: children that have exited


def postmaster() -> int | None:
    data = psql("SHOW data_directory")
    try:
        return int(Path(data, "postmaster.pid").read_text().split()[0])
    except OSError:
        return None


def report_once(db: str, month: str, master: int | None) -> tuple[float, float, float, float]:
    """(wall, this process's CPU, the server backend's CPU, CPU of server processes that
    exited meanwhile) in s, to open the store, build the monthly report and render it as
    JSON. The server figures: the backend serving this connection (read from /proc: the
    server is on this machine), and parallel workers, which exit when done and are counted
    in the postmaster's children's time (with any other session that ended meanwhile)."""
    from diversion_cli import report_format, reports
    from diversion_cli.operations import Workspace

    tick = os.sysconf("SC_CLK_TCK")
    reaped = reaped_ticks(master) if master else 0
    ws = Workspace(db=db)
    t0, c0 = time.perf_counter(), time.process_time()
    tables, meta = reports.make_report(ws, month=month)
    report_format.render(tables, "json", meta, None)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    server = workers = 0.0
    if db.startswith("postgresql:"):
        backend = ws.reader().conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        server = cpu_seconds(backend)
        ws.close()
        workers = (reaped_ticks(master) - reaped) / tick if master else float("nan")
    else:
        ws.close()
    return wall, cpu, server, workers


def empty_cache(db: str) -> None:
    if db.startswith("postgresql:"):
        psql("DELETE FROM report_cache", db.rsplit("/", 1)[1])
    else:
        with sqlite3.connect(db) as conn:
            conn.execute("DELETE FROM report_cache")


def report_timings(dbs: dict[str, str], month: str, runs: int) -> dict[str, tuple[float, ...]]:
    master = postmaster()
    for db in dbs.values():
        report_once(db, month, master)  # page cache, server buffers
    timings: dict[str, list[tuple[float, ...]]] = {}
    for n in range(runs):
        for engine, db in list(dbs.items())[:: 1 if n % 2 == 0 else -1]:
            empty_cache(db)
            timings.setdefault(f"{engine} cold", []).append(report_once(db, month, master))
            timings.setdefault(f"{engine} warm", []).append(report_once(db, month, master))
    return {state: tuple(statistics.median(s) for s in zip(*samples)) for state, samples in timings.items()}


def main() -> None:
    compile_bytecode()
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--report-runs", type=int, default=7)
    parser.add_argument("--verify-runs", type=int, default=1)
    parser.add_argument("--source", default="/work/main/bench-work/desk-compact.db")
    parser.add_argument("--pg-name", default="bench_desk")
    parser.add_argument("--month", default="2026-10")
    parser.add_argument("--work-mem", default="64MB", help="for the processes that verify the trail on the "
                        "server (verify_env); '' for the server's default")
    parser.add_argument("--skip", default="", help="comma-separated: desk, reports, verify")
    parser.add_argument("--build-only", action="store_true")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    WORK.mkdir(exist_ok=True)
    env = {**os.environ, "DIVERSION_OFFICER": "9999", "NO_COLOR": "1"}
    env.pop("DIVERSION_DB", None)
    copy = WORK / Path(args.source).name
    build(Path(args.source), copy, args.pg_name, verify_env(env, args.work_mem))
    if args.build_only:
        return
    dbs = {"sqlite": str(copy), "postgres": f"postgresql:///{args.pg_name}"}
    print(f"{time.strftime('%Y-%m-%d %H:%M')}; {os.cpu_count()} cores, shared: {load()}")

    if migration_record(args.pg_name).exists():
        moved = json.loads(migration_record(args.pg_name).read_text())
        rows = sum(moved["rows"].values())
        print(f"migration (`db migrate-to`, {moved['at']}, at load {moved['load']:.2f}): {rows:,} rows in "
              f"{moved['seconds']:.0f} s, {rows / moved['seconds']:,.0f} rows/s over all {len(moved['rows'])} "
              f"tables ({moved['rows']['incidents'] / moved['seconds']:,.0f} incidents/s; "
              f"{moved['rows']['audit_entries']:,} of the rows are audit entries), including the audit verify "
              f"before (SQLite) and after (server); PGOPTIONS {moved.get('PGOPTIONS')}")

    print("db status:")
    sizes = {}
    for engine, db in dbs.items():
        info = json.loads(diversion(db, "db", "status", "--json", env=env).stdout)
        sizes[engine] = (info["size_bytes"], info["counts"]["incidents"])
        shown = {k: v for k, v in info.items() if k not in ("path", "mode")}
        print(f"  {engine:<9} {json.dumps(shown)}")
    pg_size = int(psql(f"SELECT pg_database_size('{args.pg_name}')"))
    print(f"size: SQLite file {sizes['sqlite'][0] / 1e6:,.0f} MB ({sizes['sqlite'][0] / sizes['sqlite'][1]:,.0f} "
          f"bytes per incident), PostgreSQL pg_database_size {pg_size / 1e6:,.0f} MB "
          f"({pg_size / sizes['postgres'][1]:,.0f} bytes per incident): {pg_size / sizes['sqlite'][0]:.2f}x")

    if "desk" not in skip:
        desk_figures(dbs, copy, args.runs, env)
    if "reports" not in skip:
        report_figures(dbs, args.month, args.report_runs)
    if "verify" not in skip:
        verify_figures(dbs, args.verify_runs, env, args.work_mem)


def desk_figures(dbs: dict[str, str], copy: Path, runs: int, env: dict) -> None:
    with sqlite3.connect(copy) as conn:
        max_id = conn.execute("SELECT max(id) FROM people").fetchone()[0]
    med = desk(dbs, max_id, runs, env)
    bare = med["bare Typer app"]
    print(f"1. whole processes, {runs} rotated runs each, medians ({load()}):")
    for name, seconds in med.items():
        against = (f"ratio to bare Typer {seconds / bare:.2f}x" if name not in ("bare Typer app", "python -c pass")
                   else "")
        if name == "import psycopg":
            against = f"the import costs {(seconds - med['python -c pass']) * 1000:.1f} ms"
        print(f"  {name:<20} {seconds * 1000:7.1f} ms   {against}")
    for what in ("check", "record"):
        print(f"  {what}: postgres / sqlite {med[f'{what} (postgres)'] / med[f'{what} (sqlite)']:.2f}x; "
              f"postgres target <= 1.5x bare")



def report_figures(dbs: dict[str, str], month: str, runs: int) -> None:
    timings = report_timings(dbs, month, runs)
    print(f"2. monthly report {month} in-process, open + build + render as JSON, median of "
          f"{runs} each, engines alternating ({load()}):")
    for state, (wall, cpu, server, workers) in timings.items():
        extra = (f", server backend CPU {server * 1000:6.0f} ms, server processes ended meanwhile "
                 f"{workers * 1000:4.0f} ms" if state.startswith("postgres") else "")
        print(f"  {state:<14} wall {wall * 1000:8.1f} ms, this process's CPU {cpu * 1000:7.1f} ms{extra}")
    for state in ("cold", "warm"):
        print(f"  {state}: postgres / sqlite wall {timings[f'postgres {state}'][0] / timings[f'sqlite {state}'][0]:.2f}x")



def verify_figures(dbs: dict[str, str], runs: int, env: dict, work_mem: str) -> None:
    verify: dict[str, list[tuple[float, float]]] = {engine: [] for engine in dbs}
    for n in range(runs):
        for engine, db in list(dbs.items())[:: 1 if n % 2 == 0 else -1]:
            verify[engine].append(timed([str(BIN), "--db", db, "audit", "verify"], verify_env(env, work_mem)
                                        if engine == "postgres" else env, ok=(0,)))
    print(f"3. audit verify, whole process, median of {runs} ({load()}; on PostgreSQL with "
          f"{verify_env(env, work_mem).get('PGOPTIONS') or 'the default work_mem'}):")
    for engine, samples in verify.items():
        wall, cpu = (statistics.median(s) for s in zip(*samples))
        print(f"  {engine:<9} wall {wall:7.1f} s (the process's own CPU {cpu:6.1f} s)")
    print(f"  postgres / sqlite wall {statistics.median(s[0] for s in verify['postgres']) / statistics.median(s[0] for s in verify['sqlite']):.2f}x")


if __name__ == "__main__":
    main()
