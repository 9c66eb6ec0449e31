"""Pulling the plug: real `diversion` processes killed with SIGKILL mid-write.

One database file takes `record ... --refer`, `outcome ...` and a ~2,000-row
`import` (sample_data/generate.py --people 1800), each run as its own OS
process and killed after a random delay. After every kill the database must
pass `PRAGMA integrity_check`, `diversion audit verify` must exit 0, and the
operation must be entirely there or entirely absent.

Where a kill lands matters more than how many there are: a process killed
while Python is still importing proves nothing. So each process imports the
package first and waits at a gate (the next one warms up while the current
one runs); the random delay (0-300 ms from a seeded random.Random, capped at
1.1x the operation's measured run time so most kills land inside it, and
moved to the end of an operation that takes longer) starts when the gate
opens. An import spends its first second checking rows and writes nothing
until it commits, so its delay starts when its write-ahead log
starts to grow, capped at 0.4x the measured commit-to-exit time: those kills
land in the commit, the checkpoint after it, or just after. Imports come last,
from a backup taken before them: when one commits, `diversion db restore` puts
the file back, so the same file can be imported (and killed) again, and
`audit verify` is not left reading 10,000 more entries after every kill.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import ENCRYPTED, connect, db_file, record, run

pytestmark = pytest.mark.xdist_group("timing")  # never beside the race tests (pyproject's addopts)



SEED = int(os.environ.get("DIVERSION_CRASH_SEED", "20261128"))
KILLS = 40
IMPORT_KILLS = 8          # wanted from the import phase (it ends early once an import commits)
# Seconds: on a slow machine the imports start after the first whatever the count, and the loop
# stops at the second (and says so) rather than run on. Encrypted files are slower to open.
RECORD_PHASE_BUDGET = 55.0 if ENCRYPTED else 35.0
TIME_BUDGET = 110.0 if ENCRYPTED else 80.0
MAX_DELAY = 0.300
REPO = Path(__file__).resolve().parent.parent
TABLES = ("people", "incidents", "incident_substances", "incident_co_offences", "decisions", "referrals",
          "referral_conditions", "audit_entries", "audit_transactions", "audit_pending")

# Imports everything, says it is ready, waits for the go file, which holds the arguments.
LAUNCHER = r"""
import json, os, sys, time
from diversion_cli.cli import main
import diversion_cli.operations, diversion_cli.store, diversion_cli.rules, diversion_cli.identity
import diversion_cli.bulk, diversion_cli.admin, diversion_cli.config, csv, dateutil.relativedelta
ready, go = sys.argv[1], sys.argv[2]
open(ready, "w").close()
limit = time.monotonic() + 120
while not os.path.exists(go):
    if time.monotonic() > limit:
        sys.exit(99)
    time.sleep(0.0005)
sys.argv = ["diversion"] + json.load(open(go))
main()
"""


class Gate:
    """A `diversion` process warmed up and waiting; `release(args)` lets it run ARGS."""

    def __init__(self, workdir: Path):
        self.dir = workdir / f"gate-{time.monotonic_ns()}"
        self.dir.mkdir()
        self.proc = subprocess.Popen([sys.executable, "-c", LAUNCHER, str(self.dir / "ready"), str(self.dir / "go")],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=os.environ.copy())

    def release(self, args: list[str]) -> float:
        limit = time.monotonic() + 60
        while not (self.dir / "ready").exists():
            if self.proc.poll() is not None:
                raise AssertionError(f"launcher died: {self.proc.communicate()}")
            assert time.monotonic() < limit, "launcher never got ready"
            time.sleep(0.002)
        tmp = self.dir / "go.tmp"
        tmp.write_text(json.dumps([str(a) for a in args]))
        tmp.rename(self.dir / "go")  # atomic: the process never reads half the arguments
        return time.monotonic()

    def kill_after(self, delay: float, start: float) -> bool:
        """SIGKILL at start + delay unless it has finished; True if it was killed."""
        while time.monotonic() < start + delay:
            if self.proc.poll() is not None:
                return False
            time.sleep(0.0005)
        if self.proc.poll() is not None:
            return False
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        return True

    def finish(self) -> tuple[int, str, str]:
        out, err = self.proc.communicate(timeout=120)
        return self.proc.returncode, out, err

    def discard(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.communicate(timeout=30)


class Pool:
    """Always one warm process waiting, so start-up is paid while the previous attempt runs."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.spare = Gate(workdir)

    def take(self) -> Gate:
        gate, self.spare = self.spare, Gate(self.workdir)
        return gate

    def close(self) -> None:
        self.spare.discard()


def _wal_size(db: Path) -> int:
    try:
        return os.path.getsize(f"{db}-wal")
    except FileNotFoundError:
        return 0


def _wait_for_wal(gate: Gate, db: Path, wal0: int) -> float:
    while _wal_size(db) <= wal0 and gate.proc.poll() is None:
        time.sleep(0.0005)
    return time.monotonic()


def _using(target):
    """(connection, whether to close it): a path opens one; an open connection is reused
    (opening an encrypted file derives its key, which is slow)."""
    return (connect(target), True) if isinstance(target, (str, Path)) else (target, False)


def _counts(target) -> dict:
    conn, own = _using(target)
    try:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
    finally:
        if own:
            conn.close()


def _query(target, sql: str, params=()) -> list[dict]:
    conn, own = _using(target)
    try:
        return [dict(r) for r in conn.execute(sql, params)]
    finally:
        if own:
            conn.close()


def _delta(before: dict, after: dict) -> dict:
    return {t: after[t] - before[t] for t in TABLES if after[t] != before[t]}


def _integrity(conn) -> str:
    return "; ".join(r[0] for r in conn.execute("PRAGMA integrity_check"))


def _name(n: int) -> str:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return "".join(letters[(n // 26 ** k) % 26] for k in range(3))


def _unique_dob(n: int) -> str:
    """A birth date of its own for each n (day after the 12th: no day/month swap meets
    another), so no two Crash people are near matches held up by the one-shot checks."""
    return f"{1940 + (n // 192) % 60}-{1 + (n // 16) % 12:02d}-{13 + n % 16}"


def _record_args(db: Path, n: int) -> list[str]:
    return ["--db", db, "record", "--surname", f"Crash{_name(n)}", "--forename", "Kit",
            "--dob", _unique_dob(n), "--substance", "weed", "--substance", "coke",
            "--location", "Temple Meads", "--new-person", "--refer"]


def _importable(csv_file: Path, workdir: Path) -> list[str]:
    """Drop any generated row today's importer refuses (so a refused import is never
    mistaken for a killed one); returns what was dropped and why."""
    dropped: list[str] = []
    for attempt in range(6):
        dry = workdir / f"dry{attempt}.db"
        subprocess.run([sys.executable, "-m", "diversion_cli", "--db", str(dry), "db", "init"], check=True,
                       capture_output=True, timeout=60)
        done = subprocess.run([sys.executable, "-m", "diversion_cli", "--db", str(dry),
                               "import", "--dry-run", str(csv_file)], capture_output=True, text=True, timeout=120)
        if done.returncode == 0:
            return dropped
        bad = {int(n): why for n, why in re.findall(r"line (\d+): (.*)", done.stderr)}
        assert bad, done.stderr
        lines = csv_file.read_text(encoding="utf-8").splitlines(keepends=True)
        dropped += [f"line {n}: {why}" for n, why in sorted(bad.items())]
        csv_file.write_text("".join(line for i, line in enumerate(lines, 1) if i not in bad), encoding="utf-8")
    raise AssertionError(f"the generated CSV does not import: {dropped[:5]}")


def _calibrate(pool: Pool, args: list[str], db: Path, from_wal: bool = False) -> float:
    """How long the operation runs once released (or once its WAL starts to grow)."""
    gate = pool.take()
    wal0 = _wal_size(db)
    start = gate.release(args)
    if from_wal:
        start = _wait_for_wal(gate, db, wal0)
    gate.proc.wait(timeout=120)
    took = time.monotonic() - start
    code, out, err = gate.finish()
    assert code == 0, (args, out, err)
    return took


def _announce(config, line: str) -> None:
    """Show a line in pytest's output even when output is captured (with -v only: -q output
    stays free of figures printed mid-run)."""
    if config.option.verbose <= 0:
        return
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:
        print(line)
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(line)


@pytest.mark.sqlite_only("times kills by the file's write-ahead log and checks file backups; on a server, "
                          "test_server.py kills desks mid-write")
def test_killed_writes_are_all_or_nothing_and_the_trail_stays_sound(tmp_path, pytestconfig):
    rng = random.Random(SEED)
    _announce(pytestconfig, f"\ncrash test seed {SEED} (set DIVERSION_CRASH_SEED to replay)")
    db = db_file()
    csv_file = tmp_path / "import.csv"
    subprocess.run([sys.executable, str(REPO / "sample_data" / "generate.py"), "--people", "1800", "--out",
                    str(csv_file)], check=True, capture_output=True, timeout=60)
    pool = Pool(tmp_path)
    try:
        dropped = _importable(csv_file, tmp_path)
        if dropped:
            _announce(pytestconfig, f"dropped {len(dropped)} generated row(s) the importer refuses: "
                                    f"{dropped[:3]}")
        import_rows = sum(1 for _ in csv_file.open(encoding="utf-8")) - 1
        assert 1900 <= import_rows <= 2100, import_rows
        _kill_loop(rng, pool, db, csv_file, import_rows, tmp_path, lambda line: _announce(pytestconfig, line))
    finally:
        pool.close()


def _kill_loop(rng: random.Random, pool: Pool, db: Path, csv_file: Path, import_rows: int, tmp_path: Path,
               say=print):
    # ---- calibration: what each operation writes, and how long it runs ------------------
    record("--refer", surname="Calib", forename="Carl", dob="1980-05-05")
    before = _counts(db)
    t_record = _calibrate(pool, _record_args(db, 100_000), db)
    record_effect = _delta(before, _counts(db))
    assert record_effect == {"people": 1, "incidents": 1, "incident_substances": 2, "decisions": 1,
                             "referrals": 1, "audit_entries": 6, "audit_transactions": 1}, record_effect
    t_record = min(t_record, _calibrate(pool, _record_args(db, 100_001), db))  # the first run is often slow
    refs = [r["id"] for r in _query(db, "SELECT id FROM referrals WHERE status = 'offered' ORDER BY id")]
    t_outcome = min(_calibrate(pool, ["--db", db, "outcome", ref, "accepted"], db) for ref in refs[:2])
    scratch = tmp_path / "scratch.db"
    assert run("db", "backup", scratch).exit_code == 0
    scratch_conn = connect(scratch)  # a backup is one self-contained file; the import is timed from its WAL
    scratch_conn.execute("PRAGMA journal_mode = WAL")
    scratch_conn.close()
    scratch_before = _counts(scratch)
    t_commit = _calibrate(pool, ["--db", scratch, "import", csv_file], scratch, from_wal=True)
    import_effect = _delta(scratch_before, _counts(scratch))
    assert import_effect["incidents"] == import_rows, import_effect
    # (offset, width): a random 0-300 ms window, shifted to end at 1.1x the run time when an
    # operation takes longer than that (e.g. an encrypted file's key derivation on every open)
    windows = {op: (max(0.0, reach - MAX_DELAY), min(MAX_DELAY, reach)) for op, reach in (
        ("record", 1.1 * t_record), ("outcome", 1.1 * t_outcome),
        ("import", 0.4 * t_commit))}  # an import's kills land in the commit or the checkpoint after it
    say(f"calibrated: record runs {t_record * 1000:.0f} ms, outcome {t_outcome * 1000:.0f} ms, an import's "
          f"commit {t_commit * 1000:.0f} ms; an import adds {import_effect}")

    # ---- the kill loop ------------------------------------------------------------------
    kills = attempts = 0
    landed = {"absent": 0, "present": 0, "absent_after_wal_writes": 0}
    per_op = {"record": [0, 0], "outcome": [0, 0], "import": [0, 0]}  # [killed, finished]
    failures: list[str] = []
    import_commits = 0
    pre_import = tmp_path / "pre-import.db"
    started = time.monotonic()
    while per_op["import"][0] < IMPORT_KILLS and time.monotonic() - started < TIME_BUDGET:
        attempts += 1
        import_phase = (kills - per_op["import"][0] >= KILLS - IMPORT_KILLS
                        or time.monotonic() - started > RECORD_PHASE_BUDGET)
        op = "import" if import_phase else rng.choice(("record", "record", "outcome"))
        if op == "import" and not pre_import.exists():
            assert run("db", "backup", pre_import).exit_code == 0
        target_row = expected = None
        conn = connect(db)
        if op == "outcome":
            open_refs = _query(conn, "SELECT * FROM referrals WHERE pathway = 'workshop' AND status IN "
                                     "('offered', 'accepted') AND person_id IN (SELECT id FROM people "
                                     "WHERE surname LIKE 'Crash%' OR surname LIKE 'Spare%' OR surname = 'Calib') "
                                     "ORDER BY id")
            if not open_refs:
                record("--refer", "--new-person", surname=f"Spare{_name(attempts)}", forename="Sid",
                       dob=_unique_dob(5000 + attempts))
                open_refs = _query(conn, "SELECT * FROM referrals WHERE status = 'offered' "
                                         "ORDER BY id DESC LIMIT 1")
            target_row = rng.choice(open_refs)
            expected = "accepted" if target_row["status"] == "offered" else "completed"
            args = ["--db", db, "outcome", target_row["id"], expected]
        elif op == "record":
            args = _record_args(db, attempts)
        else:
            args = ["--db", db, "import", csv_file]

        before = _counts(conn)
        conn.close()  # nothing of ours holds the file open while the process runs
        wal0 = _wal_size(db)
        gate = pool.take()
        start = gate.release(args)
        if op == "import":  # the delay starts when the commit starts writing
            start = _wait_for_wal(gate, db, wal0)
        offset, width = windows[op]
        delay = offset + rng.uniform(0, width)
        killed = gate.kill_after(delay, start)
        code, out, err = gate.finish()
        wal_written = _wal_size(db) > wal0
        kills += killed
        per_op[op][0 if killed else 1] += 1
        if not killed and op != "import":  # the machine got faster than calibrated (another test ended)
            offset, width = windows[op]
            windows[op] = (offset * 0.85, max(0.01, width * 0.85))
        where = f"attempt {attempts} ({op}, delay {delay * 1000:.0f} ms, {'killed' if killed else f'exit {code}'})"

        # ---- the database is sound ----
        conn = connect(db)  # the first to open it after the kill: it recovers the WAL
        integrity = _integrity(conn)
        if integrity != "ok":
            failures.append(f"{where}: integrity_check: {integrity}")
            conn.close()
            break
        verified = run("audit", "verify")
        if verified.exit_code != 0:
            failures.append(f"{where}: audit verify exit {verified.exit_code}: {verified.stderr.strip()}")
        if not killed and code != 0:
            failures.append(f"{where}: finished with exit {code}: {err.strip()[:300]}")
        if "Traceback" in err:
            failures.append(f"{where}: traceback: {err[-300:]}")

        # ---- and the operation is all there or not there at all ----
        change = _delta(before, _counts(conn))
        if op == "record":
            surname = args[args.index("--surname") + 1]
            people = _query(conn, "SELECT id FROM people WHERE surname = ?", (surname,))
            if not people:
                if change:
                    failures.append(f"{where}: no person recorded yet rows changed: {change}")
            else:
                pid = people[0]["id"]
                incidents = _query(conn, "SELECT id FROM incidents WHERE person_id = ?", (pid,))
                iid = incidents[0]["id"] if len(incidents) == 1 else -1
                pieces = (len(people), len(incidents),
                          len(_query(conn, "SELECT 1 FROM incident_substances WHERE incident_id = ?", (iid,))),
                          len(_query(conn, "SELECT 1 FROM decisions WHERE incident_id = ?", (iid,))),
                          len(_query(conn, "SELECT 1 FROM referrals WHERE incident_id = ? AND status = 'offered'",
                                     (iid,))),
                          len(_query(conn, "SELECT 1 FROM audit_entries WHERE person_id = ?", (pid,))))
                if change != record_effect or pieces != (1, 1, 2, 1, 1, 6):
                    failures.append(f"{where}: partial record: {change}, pieces {pieces}")
        elif op == "outcome":
            now_row = _query(conn, "SELECT * FROM referrals WHERE id = ?", (target_row["id"],))[0]
            if now_row == target_row:
                if change:
                    failures.append(f"{where}: referral unchanged yet rows changed: {change}")
            else:
                last = _query(conn, "SELECT entity_id, action, old FROM audit_entries ORDER BY seq DESC LIMIT 1")[0]
                moved = {k for k in now_row if now_row[k] != target_row[k]}
                stamped = now_row["diverted_at"] if expected == "accepted" else now_row["closed_at"]
                if not (now_row["status"] == expected and change == {"audit_entries": 1, "audit_transactions": 1}
                        and stamped and (last["entity_id"], last["action"]) == (target_row["id"], "u")
                        and json.loads(last["old"])["status"] == target_row["status"]
                        and moved <= {"status", "diverted_at", "closed_at", "outcome_code", "updated_at",
                                      "updated_by", "reason"}):
                    failures.append(f"{where}: partial outcome: {change}, moved {sorted(moved)}, {now_row}")
        else:
            if change == import_effect:
                import_commits += 1
            elif change:
                failures.append(f"{where}: partial import: {change} (all of it would be {import_effect})")
        unaudited = _query(conn, "SELECT count(*) AS n FROM incidents i WHERE NOT EXISTS (SELECT 1 FROM audit_entries a "
                                 "WHERE a.entity = 'i' AND a.entity_id = CAST(i.id AS TEXT))")[0]["n"]
        if unaudited:
            failures.append(f"{where}: {unaudited} incident(s) without an audit entry")
        if killed:
            landed["present" if change else "absent"] += 1
            landed["absent_after_wal_writes"] += bool(wal_written and not change)
        conn.close()
        if op == "import" and change:
            restored = run("db", "restore", pre_import, "--yes")
            assert restored.exit_code == 0, restored.stderr
            assert _counts(db) == before, "restore did not bring back the pre-import state"

    elapsed = time.monotonic() - started
    summary = (f"seed {SEED}: {kills} kills in {attempts} attempts ({elapsed:.0f} s); [killed, finished] by op "
               f"{per_op}; killed with the write absent {landed['absent']} (of which after WAL writes "
               f"{landed['absent_after_wal_writes']}), present {landed['present']}; imports committed (then "
               f"restored): {import_commits}; {len(failures)} failure(s)")
    say(summary)
    assert not failures, summary + "\n" + "\n".join(failures[:20])
    assert kills >= KILLS * 3 // 4, "too few kills landed: " + summary
    assert per_op["import"][0] >= IMPORT_KILLS // 2, "too few imports were killed: " + summary
    assert landed["absent"] > 0, "no kill landed before a commit: " + summary
    assert landed["present"] + per_op["record"][1] + per_op["outcome"][1] > 0, "nothing ever committed: " + summary
