"""Backups and restores under attack, through real processes (issue 15, items 2, 3, 10).

- A backup killed part-way, truncated or torn never restores: the live
  database keeps everything, and a restore killed part-way leaves the old
  database whole.
- A backup takes one snapshot while several desks keep writing, and finishes.
- A full or failing disk under `record`, `refer`, `import` or `db backup`
  is exit 4, loses nothing, and the next command works once there is room.
  Two ways of filling the disk: a file-size limit on the process
  (RLIMIT_FSIZE: writes past it fail, as a disk that cannot grow the files),
  and, where user namespaces allow, a real small filesystem (tmpfs, ENOSPC).
"""

from __future__ import annotations

import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import ENCRYPTED, all_rows, SUBPROCESS_TIMEOUT, connect, db_file, record, run, sub

REPO = Path(__file__).resolve().parent.parent
A_FILES_BACKUP = pytest.mark.sqlite_only("db backup/restore copy a SQLite file: a server's backups are pg_dump's "
                                         "(the refusal is tested below)")
PEOPLE = 4000  # ~19 MB: more than the 4096 pages the old backup copied per step


# ---- helpers -------------------------------------------------------------------

@pytest.fixture(scope="module")
def medium_db(tmp_path_factory) -> Path:
    """A database of some thousands of imported incidents, made by db init and import."""
    work = tmp_path_factory.mktemp("medium")
    history = work / "history.csv"
    subprocess.run([sys.executable, str(REPO / "sample_data" / "generate.py"), "--people", str(PEOPLE),
                    "--seed", "11", "--start", "2024-01-01", "--out", str(history)], check=True, capture_output=True)
    env = {k: v for k, v in os.environ.items() if k not in ("DIVERSION_DB", "DIVERSION_CONFIG")}
    env.update(DIVERSION_OFFICER="1234", XDG_CONFIG_HOME=str(work / "config"), HOME=str(work))
    db = work / "medium.db"
    assert sub("--db", db, "db", "init", env=env).returncode == 0
    done = sub("--db", db, "import", history, env=env)
    assert done.returncode == 0, done.stderr
    assert not Path(f"{db}-wal").exists()  # every connection closed: the file alone is the database
    return db


def use(medium_db: Path) -> Path:
    """Make the test's live database a copy of the medium one."""
    shutil.copyfile(medium_db, db_file())
    return db_file()


def state(db: Path | None = None) -> dict:
    """The rows of every table and the last audit entry: what 'nothing lost' compares."""
    from diversion_cli.store.backup import held

    conn = connect(db)
    try:
        return held(conn)
    finally:
        conn.close()


def checks_clean(db: Path | None = None) -> None:
    """Integrity, the whole audit trail and (for a backup) what it held."""
    done = run("--db", db or db_file(), "db", "check")
    assert done.exit_code == 0, done.stderr


def leftovers(directory: Path, name: str) -> list[Path]:
    return sorted(directory.glob(f".{name}.*partial"))


def one_line_error(done: subprocess.CompletedProcess) -> str:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert "Traceback" not in done.stderr and len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    return lines[0]


# ---- item 2: a torn backup never restores ------------------------------------------

@A_FILES_BACKUP
def test_a_backup_killed_part_way_never_appears_and_what_it_leaves_is_never_restored(medium_db, tmp_path):
    live = use(medium_db)
    before = state()
    rng = random.Random(15)
    refused = 0
    for attempt in range(3):
        target = tmp_path / f"backup-{attempt}.db"
        proc = subprocess.Popen([sys.executable, "-m", "diversion_cli", "db", "backup", str(target)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        limit = time.monotonic() + SUBPROCESS_TIMEOUT
        while not leftovers(tmp_path, target.name) and proc.poll() is None:
            assert time.monotonic() < limit
            time.sleep(0.0005)
        # the first kill lands as the copy starts; the others somewhere in the copy or its checks
        time.sleep(0 if attempt == 0 else rng.uniform(0, 0.15))
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=SUBPROCESS_TIMEOUT)
        if target.exists():  # it had finished: then it is whole
            assert proc.returncode in (0, -signal.SIGKILL)
            checks_clean(target)
            continue
        for partial in leftovers(tmp_path, target.name):
            done = sub("db", "restore", partial, "--yes")
            if done.returncode == 0:  # killed after its checks, just before its rename: a whole backup
                assert state() == before
                continue
            assert done.returncode in (1, 4), done.stderr
            assert "live database is unchanged" in one_line_error(done)
            refused += 1
            assert state() == before
            partial.unlink()
        if refused:
            break
    assert refused >= 1, "no kill landed while the backup was being written"
    assert state(live) == before  # a backup only reads the live file


CUTS = {
    "empty": lambda data: b"",
    "first page only": lambda data: data[:4096],
    "a third": lambda data: data[: len(data) // 3],
    "all but the last page": lambda data: data[:-4096],
    "last quarter zeroed": lambda data: data[: len(data) * 3 // 4 // 4096 * 4096]
                                        + bytes(len(data) - len(data) * 3 // 4 // 4096 * 4096),
    "a page in the middle zeroed": lambda data: data[:len(data) // 8192 * 4096] + bytes(4096)
                                                + data[len(data) // 8192 * 4096 + 4096:],
}


@A_FILES_BACKUP
def test_a_torn_or_truncated_backup_is_refused_and_the_live_database_keeps_everything(medium_db, tmp_path):
    use(medium_db)
    whole = tmp_path / "whole.db"
    assert run("db", "backup", whole).exit_code == 0
    record(surname="Later", forename="Lena", dob="1993-03-03")  # the live database moves on
    before = state()
    data = whole.read_bytes()
    for name, cut in CUTS.items():
        torn = tmp_path / f"torn-{name.replace(' ', '-')}.db"
        torn.write_bytes(cut(data))
        os.chmod(torn, 0o600)
        checked = run("--db", torn, "db", "check")
        assert checked.exit_code in (1, 4), (name, checked.stdout)
        restored = sub("db", "restore", torn, "--yes") if name == "a third" else run("db", "restore", torn, "--yes")
        code = restored.returncode if name == "a third" else restored.exit_code
        assert code in (1, 4), (name, restored.stdout, restored.stderr)
        assert "the live database is unchanged" in restored.stderr, (name, restored.stderr)
        assert state() == before, name
    assert not leftovers(db_file().parent, db_file().name)  # staging copies are cleaned up
    checks_clean()


@A_FILES_BACKUP
def test_a_backup_written_to_since_or_made_another_way_is_refused(tmp_path):
    record(surname="Kept", forename="Kay", dob="1990-01-01")
    backup = tmp_path / "backup.db"
    assert run("db", "backup", backup).exit_code == 0
    assert run("--db", backup, "db", "check").exit_code == 0
    copied = tmp_path / "copied.db"
    shutil.copyfile(db_file(), copied)  # a plain copy of a live database records nothing of what it held
    record(surname="Live", forename="Liv", dob="1991-01-01")
    before = state()
    result = run("db", "restore", copied, "--yes")
    assert result.exit_code == 1 and "no record of what it held" in result.stderr
    assert run("--db", backup, "record", "--surname", "Added", "--forename", "Al", "--dob", "1980-01-01",
               "--substance", "weed").exit_code == 0
    checked = run("--db", backup, "db", "check")
    assert checked.exit_code == 4 and "does not hold what it held" in checked.stderr
    result = run("db", "restore", backup, "--yes")
    assert result.exit_code == 1 and "does not hold what it held" in result.stderr
    assert state() == before


@A_FILES_BACKUP
def test_a_backup_from_a_newer_diversion_is_refused(tmp_path):
    from diversion_cli.store.backup import digest, held
    from diversion_cli.store.migrations import LATEST

    record()
    backup = tmp_path / "backup.db"
    assert run("db", "backup", backup).exit_code == 0
    conn = connect(backup)  # as a newer diversion would have written it, record of what it held included
    try:
        conn.execute("INSERT INTO migrations VALUES (?, 'from the future', '2030-01-01T00:00:00')", (LATEST + 1,))
        conn.execute(f"PRAGMA user_version = {digest(held(conn))}")
    finally:
        conn.close()
    before = state()
    result = run("db", "restore", backup, "--yes")
    assert result.exit_code == 4
    assert "newer diversion" in result.stderr and "the live database is unchanged" in result.stderr
    assert state() == before


@A_FILES_BACKUP
def test_a_restore_killed_part_way_leaves_the_old_database_whole(medium_db, tmp_path):
    live = use(medium_db)
    backup = tmp_path / "backup.db"
    assert run("db", "backup", backup).exit_code == 0
    old = state(live)
    wal = Path(f"{live}-wal")
    landed = 0
    for attempt in range(3):
        record(surname="Since", forename="Sid" + "abc"[attempt], dob=f"1990-01-0{attempt + 1}")
        current = state(live)
        proc = subprocess.Popen([sys.executable, "-m", "diversion_cli", "db", "restore", str(backup), "--yes"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        limit = time.monotonic() + SUBPROCESS_TIMEOUT
        # kill while the backup's pages are going into the live file's WAL
        while proc.poll() is None and not (wal.exists() and wal.stat().st_size > 1 << 20):
            assert time.monotonic() < limit
            time.sleep(0.0005)
        killed = proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=SUBPROCESS_TIMEOUT)
        after = state(live)
        assert after in (current, old), "the live database was left half replaced"
        if killed and after == current:
            landed += 1
            break
    assert landed >= 1, "no kill landed while the restore was writing"
    checks_clean()
    done = sub("db", "restore", backup, "--yes")
    assert done.returncode == 0, done.stderr
    assert state(live) == old
    checks_clean()


# ---- item 3: one snapshot, whatever the writers do ------------------------------------

WRITER = r"""
import os, sys, time
from diversion_cli.operations import RecordRequest, Workspace, record_incident
stop, ready, tag = sys.argv[1], sys.argv[2], sys.argv[3]
letters = "abcdefghijklmnopqrstuvwxyz"
n, limit = 0, time.monotonic() + 60
while not os.path.exists(stop) and time.monotonic() < limit:
    ws = Workspace(officer="4242")
    name = "".join(letters[(n // 26 ** k) % 26] for k in range(4))
    record_incident(ws, RecordRequest(surname="Desk" + tag, forename="W" + name, dob=f"19{50 + n % 40}-02-0{1 + n % 9}",
                                      substances=["weed"], location=f"desk {tag} {n}", new_person=True))
    ws.close()
    n += 1
    if n == 3:
        open(ready, "w").close()
print(n)
"""


@A_FILES_BACKUP
def test_a_backup_finishes_with_one_snapshot_while_three_desks_write(medium_db, tmp_path):
    live = use(medium_db)
    started = time.monotonic()
    assert sub("db", "backup", tmp_path / "idle.db").returncode == 0
    idle = time.monotonic() - started
    stop = tmp_path / "stop"
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(stop), str(tmp_path / f"ready-{tag}"), tag],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for tag in "abc"]
    try:
        limit = time.monotonic() + 30
        while not all((tmp_path / f"ready-{tag}").exists() for tag in "abc"):
            assert all(w.poll() is None for w in writers), [w.communicate() for w in writers]
            assert time.monotonic() < limit, "the writers never got going"
            time.sleep(0.01)
        before = state(live)["row_counts"]["incidents"]
        started = time.monotonic()
        done = sub("db", "backup", tmp_path / "busy.db", timeout=SUBPROCESS_TIMEOUT)
        busy = time.monotonic() - started
        time.sleep(0.2)
    finally:
        stop.touch()
        results = [w.communicate(timeout=SUBPROCESS_TIMEOUT) for w in writers]
    assert all(w.returncode == 0 for w in writers), results
    assert done.returncode == 0, done.stderr
    after = state(live)["row_counts"]["incidents"]
    assert after > before, "the desks were not writing around the backup"
    taken = state(tmp_path / "busy.db")["row_counts"]["incidents"]
    assert before <= taken <= after
    checks_clean(tmp_path / "busy.db")  # one consistent snapshot: integrity, trail, and what it held
    assert busy < max(20.0, 6 * idle), f"backup took {busy:.1f} s with three desks writing ({idle:.1f} s idle)"


@A_FILES_BACKUP
def test_a_backup_is_owner_only_and_encrypted_like_the_live_file(tmp_path):
    record()
    backup = tmp_path / "backup.db"
    done = sub("db", "backup", backup)
    assert done.returncode == 0, done.stderr
    assert (backup.stat().st_mode & 0o777) == 0o600
    assert (backup.read_bytes()[:16] == b"SQLite format 3\0") is not ENCRYPTED
    assert not Path(f"{backup}-wal").exists() and not Path(f"{backup}-journal").exists()  # one file
    assert not leftovers(tmp_path, backup.name)


# ---- item 10: a full or failing disk loses nothing ---------------------------------------

def _csv(tmp_path: Path) -> Path:
    path = tmp_path / "rows.csv"
    path.write_text("surname,forenames,dob,occurred_at,substances,location\n"
                    + "".join(f"Importa,Ivo{c},1985-0{i + 1}-11,2026-10-0{i + 1} 10:00,weed,Easton\n"
                              for i, c in enumerate("abcd")), encoding="utf-8")
    return path


def _operation(op: str, tmp_path: Path, db: Path) -> list[str]:
    """The arguments of `op` against `db` (a referral to make, a CSV to import)."""
    if op == "record":
        return ["--db", str(db), "record", "--surname", "Full", "--forename", "Fay", "--dob", "1980-01-01",
                "--substance", "weed", "--location", "Broadmead"]
    if op == "refer":
        incident = record("--person", "P-000001", "--not-duplicate", substance="coke")["incident_id"]
        return ["--db", str(db), "refer", incident]
    if op == "import":
        return ["--db", str(db), "import", str(_csv(tmp_path))]
    return ["--db", str(db), "db", "backup", str(db.parent / "full-disk-backup.db")]


def _limited(args: list[str], max_bytes: int) -> subprocess.CompletedProcess:
    """A real process whose writes past max_bytes into any file fail (EFBIG), as on a disk
    that cannot grow them."""
    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails rather than the process dying
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))

    return subprocess.run([sys.executable, "-m", "diversion_cli", *args], capture_output=True, text=True,
                          preexec_fn=limit, timeout=SUBPROCESS_TIMEOUT)


def _small_filesystem_works() -> bool:
    return shutil.which("unshare") is not None and subprocess.run(
        ["unshare", "-Urm", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt"], capture_output=True).returncode == 0


SMALL_FS = r"""
set -u
mount -t tmpfs -o size=8m tmpfs "$MNT" || exit 99
cp "$OUT/live.db" "$MNT/live.db"
dd if=/dev/zero of="$MNT/filler" bs=4096 2>/dev/null
truncate -s -"$FREE" "$MNT/filler"          # the disk is full but for FREE bytes
"$PY" -m diversion_cli "$@" >"$OUT/full.out" 2>"$OUT/full.err"; echo $? >"$OUT/full.rc"
mkdir "$OUT/after-full"; cp "$MNT"/live.db* "$OUT/after-full/"; ls -a "$MNT" >"$OUT/after-full.ls"
rm "$MNT/filler"                           # room again
"$PY" -m diversion_cli "$@" >"$OUT/again.out" 2>"$OUT/again.err"; echo $? >"$OUT/again.rc"
mkdir "$OUT/after-again"; cp "$MNT"/live.db* "$OUT/after-again/"
"""


@pytest.mark.sqlite_only("the database file on a full disk: on a server the disk is the server's, not the desk's")
@pytest.mark.parametrize("op, disk", [(op, "file-size limit") for op in ("record", "refer", "import", "backup")]
                         # refer fails as record does (store.transaction): a real full disk for the others
                         + [(op, "small filesystem") for op in ("record", "import", "backup")])
def test_a_full_disk_exits_4_and_loses_nothing(op, disk, tmp_path):
    first = record("--refer", surname="Before", forename="Bea", dob="1990-01-01")
    run("outcome", first["referral_id"], "declined", "--reason", "moved away")
    if disk == "file-size limit":
        args = _operation(op, tmp_path, db_file())
        before = state()
        # room for the WAL index (32 KB) and a few WAL frames: the write itself runs out
        full = _limited(args, 36 * 1024)
        after_full, after_full_dir = db_file(), db_file().parent
        again = None
    else:
        if not _small_filesystem_works():
            pytest.skip("no user namespaces here to mount a small filesystem")
        out, mnt = tmp_path / "out", tmp_path / "mnt"
        out.mkdir(), mnt.mkdir()
        shutil.copyfile(db_file(), out / "live.db")
        args = _operation(op, tmp_path, mnt / "live.db")
        shutil.copyfile(db_file(), out / "live.db")  # after _operation's own writes (refer's incident)
        before = state(out / "live.db")
        env = {**os.environ, "MNT": str(mnt), "OUT": str(out), "PY": sys.executable, "FREE": str(48 * 1024)}
        ns = subprocess.run(["unshare", "-Urm", "sh", "-c", SMALL_FS, "sh", *args], env=env, capture_output=True,
                            text=True, timeout=2 * SUBPROCESS_TIMEOUT)
        assert ns.returncode == 0, ns.stderr
        full = subprocess.CompletedProcess(args, int((out / "full.rc").read_text()), (out / "full.out").read_text(),
                                           (out / "full.err").read_text())
        again = subprocess.CompletedProcess(args, int((out / "again.rc").read_text()),
                                            (out / "again.out").read_text(), (out / "again.err").read_text())
        after_full, after_full_dir = out / "after-full" / "live.db", out / "after-full"
    assert full.returncode == 4, (full.stdout, full.stderr)
    message = one_line_error(full)
    assert "disk" in message and ("full" in message or "I/O" in message), message
    assert full.stdout == ""
    # the file is intact and verifies, holding exactly what it held
    assert state(after_full) == before
    checks_clean(after_full)
    if op == "backup":
        assert not (after_full_dir / "full-disk-backup.db").exists()
        if disk == "file-size limit":
            assert not leftovers(after_full_dir, "full-disk-backup.db")
        else:
            assert ".full-disk-backup.db" not in (tmp_path / "out" / "after-full.ls").read_text()
    # with room again, the same command works
    if again is None:
        again = run(*args)
        again.returncode = again.exit_code
    assert again.returncode == 0, again.stderr
    after = db_file() if disk == "file-size limit" else tmp_path / "out" / "after-again" / "live.db"
    grew = state(after)["row_counts"]["incidents"] - before["row_counts"]["incidents"]
    assert grew == {"record": 1, "refer": 0, "import": 4, "backup": 0}[op]
    checks_clean(after)


# ---- on a server, backups are the server's ------------------------------------------------

@pytest.mark.postgres_only("the refusal of the file commands on a server")
@pytest.mark.parametrize("args, says", [
    (["db", "backup", "{tmp}/copy.db"], "pg_dump"),
    (["db", "restore", "{tmp}/backup.db", "--yes"], "pg_dump"),
    (["db", "compact"], "VACUUM"),
], ids=["backup", "restore", "compact"])
def test_on_a_server_the_file_commands_are_refused_in_one_line_naming_the_servers_way(args, says, tmp_path):
    record(surname="Kept", forename="Kay", dob="1990-01-01")
    a_file = tmp_path / "desk.db"  # a real backup of a file, for restore to be handed
    assert run("--db", a_file, "db", "init").exit_code == 0
    assert run("--db", a_file, "db", "backup", tmp_path / "backup.db").exit_code == 0
    before = all_rows()
    done = sub(*[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert says in one_line_error(done)
    assert all_rows() == before
    assert not (tmp_path / "copy.db").exists()
