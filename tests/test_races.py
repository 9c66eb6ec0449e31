"""Desks racing each other: real OS processes released at the same moment,
and the database's own guarantees tested directly with sqlite3."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from diversion_cli.store import integrity_errors

from helpers import ON_SERVER, SCRIPT, connect, count_rows, counts, db_file, hold_write_lock, record

pytestmark = pytest.mark.xdist_group("timing")  # never beside the crash test (pyproject's addopts)



# Each racer imports everything first, says it is ready, then waits for the
# start file: the race is on the database, not on interpreter start-up.
LAUNCHER = r"""
import os, sys, time
from diversion_cli.cli import main
import diversion_cli.operations
ready, go = sys.argv[1], sys.argv[2]
open(ready, "w").close()
limit = time.monotonic() + 30
while not os.path.exists(go):
    if time.monotonic() > limit:
        sys.exit(99)
    time.sleep(0.0005)
sys.argv = ["diversion"] + sys.argv[3:]
main()
"""


def race(tmp_path: Path, commands: list[list[str]], env: dict | None = None,
         after_go=None, settle: bool = True) -> list[subprocess.CompletedProcess]:
    """Start one process per command, wait until all are ready, release them together."""
    if settle and (ON_SERVER or db_file().exists()):
        # one desk opens the file first, so the schema is the one the racers'
        # code expects and they race on the data, not on migrating it
        subprocess.run([sys.executable, "-m", "diversion_cli", "check", "P-000001"], capture_output=True,
                       env=os.environ.copy() if env is None else env, timeout=60)
    gate = tmp_path / f"gate-{time.monotonic_ns()}"
    gate.mkdir()
    go = gate / "go"
    procs = []
    for n, args in enumerate(commands):
        procs.append(subprocess.Popen(
            [sys.executable, "-c", LAUNCHER, str(gate / f"ready-{n}"), str(go), *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=os.environ.copy() if env is None else env))
    limit = time.monotonic() + 30
    while not all((gate / f"ready-{n}").exists() for n in range(len(commands))):
        assert time.monotonic() < limit, "racers never got ready"
        assert all(p.poll() is None for p in procs), [p.communicate() for p in procs if p.poll() is not None]
        time.sleep(0.005)
    go.touch()
    if after_go:
        after_go(procs)
    results = []
    for p, args in zip(procs, commands):
        out, err = p.communicate(timeout=60)
        results.append(subprocess.CompletedProcess(args, p.returncode, out, err))
    return results


def _describe(results) -> str:
    return "\n".join(f"rc={r.returncode} {r.args} stdout={r.stdout[:200]!r} stderr={r.stderr!r}" for r in results)


# ---- (1) eight desks refer the same person at once ---------------------------

N = 8


def test_only_one_of_eight_simultaneous_referrals_for_one_person_wins(tmp_path):
    first = record(surname="Race", forename="Rita", dob="1990-09-09")
    incidents = [first["incident_id"]] + [  # separate arrests, hours apart
        record("--person", first["person_id"], "--when", _hours_ago(n + 1), substance="coke")["incident_id"]
        for n in range(N - 1)]
    assert len(set(incidents)) == N

    results = race(tmp_path, [["refer", i] for i in incidents])

    codes = sorted(r.returncode for r in results)
    assert codes == [0] + [1] * (N - 1), _describe(results)
    for r in results:
        assert "Traceback" not in r.stderr
        if r.returncode == 1:
            assert "open referral" in r.stderr.lower(), r.stderr
            assert r.stdout == ""
    conn = connect()
    rows = conn.execute("SELECT id, person_id, status FROM referrals").fetchall()
    conn.close()
    assert len(rows) == 1, [dict(r) for r in rows]
    assert rows[0]["status"] == "offered"
    winner = next(r for r in results if r.returncode == 0)
    assert rows[0]["id"] in winner.stdout


@pytest.mark.postgres_only("issue 11's bar for the shared server; on a file the 8- and 5-desk races above "
                          "test the same write lock")
def test_twenty_desks_refer_one_person_and_exactly_one_referral_is_made(tmp_path):
    """Issue 11's bar for the shared server (and the file holds it too): 20 processes at once."""
    first = record(surname="Twenty", forename="Rhys", dob="1988-08-08")
    incidents = [first["incident_id"]] + [record("--person", first["person_id"], "--when", _hours_ago(n + 1),
                                                 substance="coke")["incident_id"] for n in range(19)]
    results = race(tmp_path, [["refer", i] for i in incidents])
    assert sorted(r.returncode for r in results) == [0] + [1] * 19, _describe(results)
    assert all("Traceback" not in r.stderr for r in results)
    assert count_rows(None, "referrals") == 1


@pytest.mark.postgres_only("issue 11's bar for the shared server; on a file the 8- and 5-desk races above "
                          "test the same write lock")
def test_twenty_desks_record_and_refer_the_same_new_person_make_one_person_and_one_referral(tmp_path):
    """READ COMMITTED alone let 20 desks create the same new person 2-3 times, each referred: the
    write lock every desk takes first makes the later desks find the person the first created."""
    record(surname="Seed", forename="Row", dob="1960-01-01")
    results = race(tmp_path, [["record", "--surname", "Newman", "--forename", "Nia", "--dob", "1995-05-15",
                               "--substance", "weed", "--refer", "--when", _hours_ago(n + 1)] for n in range(20)])
    assert all(r.returncode == 0 for r in results), _describe(results)
    conn = connect()
    people = conn.execute("SELECT count(*) FROM people WHERE surname = 'Newman'").fetchone()[0]
    referrals = conn.execute("SELECT count(*) FROM referrals r JOIN people p ON p.id = r.person_id "
                             "WHERE p.surname = 'Newman'").fetchone()[0]
    conn.close()
    assert (people, referrals) == (1, 1)
    assert count_rows(None, "incidents") == 21


def test_simultaneous_record_and_refer_for_one_person_makes_one_referral(tmp_path):
    person = record(surname="Race", forename="Ravi", dob="1991-10-10")["person_id"]
    results = race(tmp_path, [["record", "--person", person, "--substance", "weed", "--refer", "--json",
                               "--when", _hours_ago(n + 1)] for n in range(5)])
    assert all(r.returncode == 0 for r in results), _describe(results)
    assert count_rows(None, "incidents") == 6
    assert count_rows(None, "referrals") == 1


# ---- (2) the database itself refuses what the rules refuse -------------------

def _insert_referral(conn, ref_id: str, person: int, incident: int, status: str = "offered",
                     group: str = "adult", lookback_since: str | None = None, at: datetime | None = None) -> None:
    at = at or datetime.now().replace(microsecond=0)
    diverted = at.isoformat() if status in ("accepted", "completed", "failed") else None
    closed = (at + timedelta(days=10)).isoformat() if status in ("completed", "failed", "declined", "voided") else None
    conn.execute(
        "INSERT INTO referrals (id, person_id, incident_id, scheme, pathway, one_shot_group, lookback_since, "
        "status, provider, deadline, offered_at, offered_by, diverted_at, closed_at, updated_at, updated_by) "
        "VALUES (?, ?, ?, 'dep-adult', 'workshop', ?, ?, ?, 'Provider', ?, ?, '1234', ?, ?, ?, '1234')",
        (ref_id, person, incident, group, lookback_since, status, (at + timedelta(days=56)).isoformat(),
         at.isoformat(), diverted, closed, at.isoformat()))


def _hours_ago(n: int) -> str:
    return (datetime.now() - timedelta(hours=n)).strftime("%Y-%m-%d %H:%M")


@pytest.fixture
def person_with_incidents():
    """A person (id 1) with incidents 1, 2 and 3, written through the CLI."""
    out = record(surname="Db", forename="Layer", dob="1970-01-01")
    for n in range(2):
        record("--person", out["person_id"], "--when", _hours_ago(n + 1))
    conn = connect()
    yield conn
    conn.close()


def test_database_refuses_a_second_open_referral(person_with_incidents):
    conn = person_with_incidents
    _insert_referral(conn, "R-2026-000001", 1, 1, "offered")
    with pytest.raises(integrity_errors(), match="UNIQUE|referrals"):
        _insert_referral(conn, "R-2026-000002", 1, 2, "offered")
    conn.execute("UPDATE referrals SET status = 'accepted', diverted_at = offered_at WHERE id = 'R-2026-000001'")
    with pytest.raises(integrity_errors()):
        _insert_referral(conn, "R-2026-000002", 1, 2, "offered", group="youth")
    assert count_rows(None, "referrals") == 1


def test_database_refuses_a_second_live_referral_for_one_incident(person_with_incidents):
    conn = person_with_incidents
    _insert_referral(conn, "R-2026-000001", 1, 1, "declined")
    _insert_referral(conn, "R-2026-000002", 1, 1, "offered")  # a declined offer does not block
    conn.execute("UPDATE referrals SET status = 'voided', closed_at = offered_at WHERE id = 'R-2026-000002'")
    _insert_referral(conn, "R-2026-000003", 1, 1, "offered")
    assert count_rows(None, "referrals") == 3


def test_database_one_shot_trigger(person_with_incidents):
    conn = person_with_incidents
    three_years_ago = datetime.now().replace(microsecond=0) - timedelta(days=3 * 365)
    _insert_referral(conn, "R-2023-000001", 1, 1, "completed", group="adult", at=three_years_ago)

    with pytest.raises(integrity_errors(), match="one_shot_used"):
        _insert_referral(conn, "R-2026-000001", 1, 2, "offered", group="adult")
    with pytest.raises(integrity_errors(), match="one_shot_used"):
        _insert_referral(conn, "R-2026-000001", 1, 2, "offered", group="*")
    # a look-back window that starts after the old diversion lets a new one in
    since = (three_years_ago + timedelta(days=365)).isoformat()
    _insert_referral(conn, "R-2026-000001", 1, 2, "offered", group="adult", lookback_since=since)
    assert count_rows(None, "referrals") == 2


def test_database_one_shot_window_that_covers_the_old_diversion_still_refuses(person_with_incidents):
    conn = person_with_incidents
    one_year_ago = datetime.now().replace(microsecond=0) - timedelta(days=365)
    _insert_referral(conn, "R-2025-000001", 1, 1, "failed", group="adult", at=one_year_ago)
    since = (one_year_ago - timedelta(days=365)).isoformat()
    with pytest.raises(integrity_errors(), match="one_shot_used"):
        _insert_referral(conn, "R-2026-000001", 1, 2, "offered", group="adult", lookback_since=since)
    # another programme's shot is a separate one; a declined offer never counts
    _insert_referral(conn, "R-2026-000001", 1, 2, "offered", group="youth")
    assert count_rows(None, "referrals") == 2


def test_database_refuses_illegal_transitions(person_with_incidents):
    conn = person_with_incidents
    _insert_referral(conn, "R-2026-000001", 1, 1, "completed")
    with pytest.raises(integrity_errors(), match="illegal_transition"):
        conn.execute("UPDATE referrals SET status = 'accepted' WHERE id = 'R-2026-000001'")
    _insert_referral(conn, "R-2026-000002", 1, 2, "offered", group="youth")
    with pytest.raises(integrity_errors(), match="illegal_transition"):
        conn.execute("UPDATE referrals SET status = 'completed', diverted_at = offered_at, "
                     "closed_at = offered_at WHERE id = 'R-2026-000002'")


# ---- (3) many desks writing different people: no lost writes ---------------

def test_many_simultaneous_records_of_different_people_all_land(tmp_path):
    record(surname="Seed", forename="Row", dob="1960-01-01")  # the file exists and is migrated
    before = counts()
    many = 10
    commands = [["record", "--surname", f"Parallel{chr(65 + n)}", "--forename", "Pat",
                 "--dob", f"19{70 + n}-03-0{1 + n % 9}", "--substance", "weed"] for n in range(many)]
    results = race(tmp_path, commands)
    assert all(r.returncode == 0 for r in results), _describe(results)
    assert count_rows(None, "people") == before["people"] + many
    assert count_rows(None, "incidents") == before["incidents"] + many
    assert count_rows(None, "decisions") == before["decisions"] + many


def test_simultaneous_records_of_the_same_new_person_make_one_person(tmp_path):
    record(surname="Seed", forename="Row", dob="1960-01-01")
    results = race(tmp_path, [["record", "--surname", "Twin", "--forename", "Tess", "--dob", "1999-12-31",
                               "--substance", "weed", "--when", _hours_ago(n)] for n in range(5)])
    assert all(r.returncode == 0 for r in results), _describe(results)
    conn = connect()
    people = conn.execute("SELECT id FROM people WHERE surname = 'Twin'").fetchall()
    incidents = conn.execute("SELECT count(*) FROM incidents i JOIN people p ON p.id = i.person_id "
                             "WHERE p.surname = 'Twin'").fetchone()[0]
    conn.close()
    assert len(people) == 1
    assert incidents == 5


@pytest.mark.sqlite_only("a PostgreSQL database gets its whole schema from `db init`: desks never migrate it")
def test_desks_opening_a_new_database_at_once_all_succeed(tmp_path):
    # Regression (fixed in 032d0e9): Store._migrate read the schema version outside
    # the migration's write transaction, so desks meeting a new or just-upgraded
    # database all applied the same migration and all but one exited 4.
    # The file is set up as Store.open leaves it before migrating (WAL on, an empty
    # `migrations` table); holding the write lock while the desks start makes them
    # all read "version 0" before any can migrate, deterministically.
    path = db_file()
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
    os.close(fd)
    holder = connect(path)
    holder.execute("PRAGMA journal_mode = WAL")
    holder.execute("CREATE TABLE IF NOT EXISTS migrations "
                   "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)")
    holder.execute("BEGIN IMMEDIATE")

    def release_once_they_queue(procs):
        # wait until every racer has the file open (then it reads the version at
        # once and queues for the write lock), so a loaded machine cannot hide the bug
        limit = time.monotonic() + 10
        while time.monotonic() < limit and not all(_has_open(p.pid, path) for p in procs):
            time.sleep(0.01)
        time.sleep(0.5)
        holder.execute("ROLLBACK")

    commands = [["record", "--surname", f"First{chr(65 + n)}", "--forename", "Day",
                 "--dob", f"198{n}-01-01", "--substance", "weed"] for n in range(4)]
    try:
        results = race(tmp_path, commands, after_go=release_once_they_queue, settle=False)
    finally:
        holder.close()
    assert all(r.returncode == 0 for r in results), _describe(results)
    assert count_rows(path, "people") == 4


@pytest.mark.no_database
def test_racing_db_inits_make_one_database(tmp_path):
    assert ON_SERVER or not db_file().exists()
    results = race(tmp_path, [["db", "init"] for _ in range(6)], settle=False)
    codes = sorted(r.returncode for r in results)
    assert codes == [0, 1, 1, 1, 1, 1], _describe(results)
    assert all("already exists" in r.stderr for r in results if r.returncode == 1), _describe(results)
    if not ON_SERVER:  # (on a server, access is its roles')
        assert stat.S_IMODE(db_file().stat().st_mode) == 0o600
    assert record(surname="Dawn", forename="Ed", dob="1975-05-05")["person_id"] == "P-000001"


def _has_open(pid: int, path: Path) -> bool:
    """Whether process `pid` has `path` open (Linux /proc; elsewhere assume it has after a moment)."""
    fds = Path(f"/proc/{pid}/fd")
    if not fds.is_dir():
        time.sleep(0.5)
        return True
    target = str(path.resolve())
    try:
        return any(os.readlink(fd) == target for fd in fds.iterdir())
    except OSError:  # the process ended or an fd closed while we looked
        return True


# ---- (4) a desk holding the write lock --------------------------------------

def test_locked_database_gives_exit_4_and_writes_nothing():
    record(surname="Seed", forename="Row", dob="1960-01-01")
    before = counts()
    holder = connect(db_file())
    hold_write_lock(holder)
    try:
        env = {**os.environ, "DIVERSION_BUSY_TIMEOUT": "0.5"}
        started = time.monotonic()
        result = subprocess.run(
            [str(SCRIPT), "record", "--surname", "Blocked", "--forename", "Bea", "--dob", "1990-01-01",
             "--substance", "weed"], capture_output=True, text=True, env=env, timeout=60)
        took = time.monotonic() - started
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.returncode == 4, (result.stdout, result.stderr)
    assert result.stderr.startswith("error:")
    assert "busy" in result.stderr.lower() or "locked" in result.stderr.lower()
    assert "nothing was written" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert took < 8, took  # gave up near the 0.5 s timeout, not the 10 s default
    assert counts() == before


def test_locked_database_refer_gives_exit_4_too():
    out = record(surname="Seed", forename="Row", dob="1960-01-01")
    holder = connect(db_file())
    hold_write_lock(holder)
    try:
        env = {**os.environ, "DIVERSION_BUSY_TIMEOUT": "0.5"}
        result = subprocess.run([sys.executable, "-m", "diversion_cli", "refer", out["incident_id"]],
                                capture_output=True, text=True, env=env, timeout=60)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.returncode == 4, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert count_rows(None, "referrals") == 0
