"""What leaves the machine and what comes in, attacked (issue 15, items 6–9):
pseudonymised exports (free text, times, weak keys), `--output` (symlinks, devices,
existing files, a full disk), hostile JSON, TOML and environment values, files that
would take the memory, duplicated columns, Markdown that a renderer would run.
Every attack is refused with its documented exit code and one line, and nothing is lost."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import resource
import shutil
import stat
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest

from helpers import ON_SERVER, assert_one_line_error, counts, record, refer, run

# what the test's folder holds besides outputs: the database file, or nothing on a server
DATABASE_FILES = [] if ON_SERVER else ["diversion.db"]

STRONG_KEY = "9f1c2e7a4b8d03f6e5a1c7b92d4f8e06a3b5c1d7e9f20486b3a5c7d9e1f30b2a"  # secrets.token_hex(32)
LOCATION = "outside Quiggleworth's flat, 12 High St"
AREAS = """
[areas]
"Town centre" = ["High St", "Broadmead"]
"Harbourside" = ["Cumberland Basin", "High Street East"]
"""
LAST_MONTH = date.today().replace(day=1) - timedelta(days=3)


def force_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "force.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _csv(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def diversion(*args, stdout=subprocess.PIPE, limit_memory: int | None = None, timeout: float = 60):
    """diversion as a real process: (exit code, stdout, stderr)."""
    def guard():  # a regression must fail the test, not take the machine's memory
        if limit_memory:
            resource.setrlimit(resource.RLIMIT_AS, (limit_memory, limit_memory))

    result = subprocess.run([sys.executable, "-m", "diversion_cli", *map(str, args)], stdout=stdout,
                            stderr=subprocess.PIPE, text=True, preexec_fn=guard, timeout=timeout)
    return result.returncode, result.stdout or "", result.stderr


def peak_rss_kb(*args, limit_memory: int):
    """Run diversion; (exit code, stderr, peak RSS in KB of that process alone, from wait4)."""
    def guard():
        resource.setrlimit(resource.RLIMIT_AS, (limit_memory, limit_memory))

    proc = subprocess.Popen([sys.executable, "-m", "diversion_cli", *map(str, args)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, preexec_fn=guard)
    try:
        stderr = proc.stderr.read()  # a line or two: it cannot fill the pipe
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        proc.stderr.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, stderr.decode(), usage.ru_maxrss


# ---- item 6: pseudonymised exports ---------------------------------------------------------

@pytest.fixture
def with_areas(tmp_path, monkeypatch):
    monkeypatch.setenv("DIVERSION_CONFIG", str(force_config(tmp_path, AREAS)))
    monkeypatch.setenv("DIVERSION_PSEUDONYM_KEY", STRONG_KEY)
    appointment = (date.today() + timedelta(days=3)).strftime("%Y-%m-%d 14:37")
    a = record("--location", LOCATION, "--when", LAST_MONTH.strftime("%d/%m/%Y 03:17"), surname="Quiggleworth",
               forename="Ptolemy")
    refer(a["incident_id"], "--appointment", appointment)
    record("--location", "Stokes Croft, by the bins", surname="Ostrowski", forename="Wanda", dob="02/03/1985")
    record("--location", "high street east, Harbour Rd", surname="Penhaligon", forename="Tamsin", dob="03/04/1987")
    return tmp_path


def test_pseudonymised_export_gives_the_area_never_the_location(with_areas):
    result = run("export", "incidents", "--pseudonymise")
    assert result.exit_code == 0, result.stderr
    rows = _csv(result.stdout)
    assert "location" not in rows[0] and "area" in rows[0]
    assert [r["area"] for r in rows] == ["Town centre", "", "Harbourside"]   # the longest place name wins
    for needle in ("Quiggleworth", "High St", "12 High", "Stokes Croft", "bins", "Harbour Rd", "Ptolemy"):
        assert needle.casefold() not in result.stdout.casefold(), needle
    plain = _csv(run("export", "incidents").stdout)
    assert plain[0]["location"] == LOCATION                                # the unpseudonymised extract keeps it


def test_pseudonymised_export_cuts_every_time_to_a_date(with_areas):
    for what in ("incidents", "referrals"):
        for fmt in ("csv", "json"):
            result = run("export", what, "--pseudonymise", "--format", fmt)
            assert result.exit_code == 0, result.stderr
            rows = _csv(result.stdout) if fmt == "csv" else [json.loads(line) for line in result.stdout.splitlines()]
            assert rows
            for row in rows:
                for column, value in row.items():
                    if isinstance(value, str) and re.match(r"\d{4}-\d{2}-\d{2}", value):
                        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", value), (what, column, value)
            assert not re.search(r"\d{2}:\d{2}", result.stdout), result.stdout   # 03:17, 14:37, 23:59 all gone
    referral = _csv(run("export", "referrals", "--pseudonymise").stdout)[0]
    assert referral["appointment"] == (date.today() + timedelta(days=3)).isoformat()


GUESSABLE_KEYS = [" " * 16, "a" * 16, "a" * 64, "abcdefghijklmnopqrstuvwxyz012345", "0123456789abcdef" * 4,
                  "a-force-secret-key-0123456789", "correct horse battery staple", "\t" * 40, "ab" * 40]


def test_a_guessable_pseudonym_key_is_refused(tmp_path, monkeypatch):
    record("--location", LOCATION)
    out = tmp_path / "extract.csv"
    for key in GUESSABLE_KEYS:
        result = run("export", "incidents", "--pseudonymise", "--output", out, env={"DIVERSION_PSEUDONYM_KEY": key})
        assert result.exit_code == 2, key
        assert_one_line_error(result, "DIVERSION_PSEUDONYM_KEY")
        assert "128 bits" in result.stderr and result.stdout == ""
    assert sorted(os.listdir(tmp_path)) == DATABASE_FILES          # no extract, and no temp file left behind


def test_generated_keys_are_accepted():
    import secrets

    from diversion_cli.bulk import MIN_KEY_BITS, key_bits

    assert all(key_bits(secrets.token_hex(32)) >= MIN_KEY_BITS for _ in range(200))
    assert all(key_bits(secrets.token_urlsafe(32)) >= MIN_KEY_BITS for _ in range(200))


@pytest.mark.parametrize("areas", ['[areas]\n"Town" = "High St"\n', '[areas]\n"Town" = []\n',
                                   '[areas]\n"Town" = [3]\n', '[areas]\n"Town" = ["  "]\n', 'areas = 5\n'])
def test_a_malformed_areas_table_is_a_config_error(tmp_path, areas):
    result = run("--config", force_config(tmp_path, areas), "schemes")
    assert result.exit_code == 2
    assert_one_line_error(result, "config")
    assert "areas" in result.stderr


# ---- item 7: --output ------------------------------------------------------------------------

@pytest.fixture
def letter_ready():
    a = record("--refer", surname="Quiggleworth", forename="Ptolemy")
    return a["referral_id"]


def _commands(referral: str, out: Path) -> dict[str, list]:
    return {"report": ["report", "--format", "markdown", "--output", out],
            "export": ["export", "incidents", "--output", out],
            "letter": ["letter", referral, "--kind", "offer", "--output", out]}


def _listing(directory: Path) -> dict[str, tuple]:
    return {p.name: (stat.S_IFMT(p.lstat().st_mode), stat.S_IMODE(p.lstat().st_mode), p.lstat().st_ino)
            for p in directory.iterdir()}


@pytest.mark.parametrize("command", ["report", "export", "letter"])
def test_a_symlinked_output_is_refused_and_its_target_untouched(tmp_path, letter_ready, command):
    target = tmp_path / "precious.txt"
    target.write_text("the force's only copy")
    os.chmod(target, 0o644)
    link = tmp_path / "out" / "extract"
    link.parent.mkdir()
    link.symlink_to(target)
    before = _listing(link.parent)
    result = run(*_commands(letter_ready, link)[command])
    assert result.exit_code == 2
    assert_one_line_error(result, "output")
    assert "symbolic link" in result.stderr
    assert target.read_text() == "the force's only copy" and stat.S_IMODE(target.stat().st_mode) == 0o644
    assert _listing(link.parent) == before                                   # no temp file left either


@pytest.mark.parametrize("command", ["report", "export", "letter"])
def test_a_device_pipe_or_directory_as_output_is_refused_and_not_chmodded(tmp_path, letter_ready, command):
    null = tmp_path / "null"   # a device node of our own: were it chmodded, the real /dev/null is not hurt
    if os.geteuid() == 0:
        os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))
        os.chmod(null, 0o666)
    else:
        null.mkdir()
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o644)
    directory = tmp_path / "dir"
    directory.mkdir()
    before = _listing(tmp_path)
    for out in (null, fifo, directory, Path("/dev/null")):
        result = run(*_commands(letter_ready, out)[command])
        assert result.exit_code == 2, (out, result.stderr)
        assert_one_line_error(result, "output")
    assert _listing(tmp_path) == before
    assert stat.S_IMODE(os.stat("/dev/null").st_mode) == 0o666


@pytest.mark.parametrize("command", ["report", "export", "letter"])
def test_an_existing_file_is_replaced_only_with_force(tmp_path, letter_ready, command):
    out = tmp_path / "extract.txt"
    out.write_text("yesterday's extract")
    os.chmod(out, 0o644)
    elsewhere = tmp_path / "hard-link-to-the-old-file"
    os.link(out, elsewhere)
    args = _commands(letter_ready, out)[command]
    refused = run(*args)
    assert refused.exit_code == 2
    assert_one_line_error(refused, "output")
    assert "--force" in refused.stderr
    assert out.read_text() == "yesterday's extract" and stat.S_IMODE(out.stat().st_mode) == 0o644
    replaced = run(*args, "--force")
    assert replaced.exit_code == 0, replaced.stderr
    assert replaced.stdout == ""
    assert "Quiggleworth".casefold() in out.read_text().casefold() or command == "report"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    # a new file renamed into place: the old one was never written through (its other name keeps it)
    assert elsewhere.read_text() == "yesterday's extract" and stat.S_IMODE(elsewhere.stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([out.name, elsewhere.name, *DATABASE_FILES])


def test_a_new_output_file_is_owner_only_whatever_the_umask(tmp_path, letter_ready):
    old = os.umask(0)
    try:
        for command, args in _commands(letter_ready, tmp_path / "new").items():
            target = tmp_path / f"new-{command}"
            args[args.index(tmp_path / "new")] = target
            result = run(*args)
            assert result.exit_code == 0, result.stderr
            assert stat.S_IMODE(target.stat().st_mode) == 0o600
    finally:
        os.umask(old)


def test_a_missing_directory_for_output_is_bad_input(tmp_path, letter_ready):
    for args in _commands(letter_ready, tmp_path / "no" / "such" / "dir.csv").values():
        result = run(*args)
        assert result.exit_code == 2
        assert_one_line_error(result, "output")


SETPRIV = shutil.which("setpriv")
as_another_user = pytest.mark.skipif(os.geteuid() != 0 or not SETPRIV,
                                     reason="needs root and setpriv to run a command as another user")


def as_nobody(*args) -> subprocess.CompletedProcess:
    """diversion run as user nobody (setpriv drops root's capabilities only at exec, so the
    interpreter is found wherever root installed it)."""
    return subprocess.run([SETPRIV, "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-m",
                           "diversion_cli", *map(str, args)], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "HOME": "/nonexistent"})


@as_another_user
@pytest.mark.sqlite_only("hands another user a copy of the database file (the guard is the output file's, the same "
                         "on a server)")
def test_another_user_never_writes_names_into_a_file_they_do_not_own(db_path):
    """Once: a world-writable file of root's, in a shared sticky directory, was opened, filled with
    names and then failed its chmod (exit 70), world-readable. Now the names go to a new 0600
    file that cannot replace root's: refused (exit 2), root's file as it was, no file left."""
    import tempfile

    record("--location", LOCATION)
    shared = Path(tempfile.mkdtemp(prefix="diversion-shared-"))
    try:
        os.chmod(shared, 0o1777)
        db = shared / "copy.db"
        shutil.copyfile(db_path, db)
        os.chmod(db, 0o644)
        extract = shared / "extract.csv"
        extract.write_text("root's file")
        os.chmod(extract, 0o666)
        for force in ([], ["--force"]):
            result = as_nobody("--db", db, "export", "incidents", "--output", extract, *force)
            assert result.returncode == 2, result.stderr
            assert result.stderr.startswith("error: output:") and len(result.stderr.splitlines()) == 1
            assert extract.read_text() == "root's file" and stat.S_IMODE(extract.stat().st_mode) == 0o666
            assert sorted(p.name for p in shared.iterdir() if not p.name.startswith("copy.db")) == ["extract.csv"]
    finally:
        shutil.rmtree(shared)


@pytest.mark.parametrize("command", ["report", "export", "letter"])
def test_a_full_disk_on_the_output_file_leaves_the_old_file(tmp_path, letter_ready, monkeypatch, command):
    """ENOSPC, for real: the new file's descriptor is /dev/full."""
    import tempfile

    out = tmp_path / "extract.txt"
    out.write_text("yesterday's extract")
    real_mkstemp = tempfile.mkstemp

    def full_disk(*args, **kwargs):
        fd, name = real_mkstemp(*args, **kwargs)
        os.dup2(os.open("/dev/full", os.O_WRONLY), fd)
        return fd, name

    monkeypatch.setattr(tempfile, "mkstemp", full_disk)
    result = run(*_commands(letter_ready, out)[command], "--force")
    assert result.exit_code == 2
    assert_one_line_error(result, "output")
    assert "No space left on device" in result.stderr
    assert out.read_text() == "yesterday's extract"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*DATABASE_FILES, "extract.txt"])


@pytest.mark.parametrize("command", ["report", "export", "letter"])
def test_a_full_disk_on_stdout_is_one_line_and_exit_2(letter_ready, command):
    args = [a for a in _commands(letter_ready, Path("x"))[command] if a not in ("--output", Path("x"))]
    with open("/dev/full", "w") as full:
        code, _, stderr = diversion(*args, stdout=full)
    assert code == 2, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines == ["error: stdout: cannot write the output (No space left on device); it is incomplete"], stderr


# ---- item 8: bad input that used to be exit 70 -------------------------------------------------

@pytest.mark.parametrize("text", [
    '[{"occurred_at": ' + "9" * 4400 + ', "substances": "weed"}]',            # a 4,400-digit number
    "[" * 200_000 + "]" * 200_000,                                            # nested 200,000 deep
    '[{"surname": ' + "[" * 200_000 + "]" * 200_000 + "}]",                   # ... inside an object
    '[{"surname": "a", "surname": "b", "occurred_at": "2026-01-01", "substances": "weed"}]',  # a key twice
    '[{"surname": "Smith"}, 5]', "[{}", '[{"surname": "x"}] trailing', '{"surname": "Smith"}', "",
])
def test_hostile_json_is_bad_input(tmp_path, text):
    path = tmp_path / "hostile.json"
    path.write_text(text)
    before = counts()
    result = run("import", path)
    assert result.exit_code == 2, result.stderr
    assert_one_line_error(result, "file")
    assert counts() == before


@pytest.mark.parametrize("toml, problem", [
    ("x = " + "[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ("a = " + "{ b = " * 5000 + "1" + " }" * 5000, "nested too deeply"),
    ("[costs]\nprosecution = " + "9" * 5000, "over 4,300 digits"),
    ("[costs]\nprosecution = nan", "costs.prosecution"),
    ("[costs]\nprosecution = inf", "costs.prosecution"),
    ("[costs]\nprosecution = -inf", "costs.prosecution"),
    ("[costs]\nprosecution = 1e308", "costs.prosecution"),
    ("[costs]\nprosecution = true", "costs.prosecution"),
    ("[costs]\nprosecution = " + "9" * 400, "costs.prosecution"),
])
def test_hostile_config_toml_is_a_config_error(tmp_path, toml, problem):
    path = force_config(tmp_path, toml)
    for args in (["schemes"], ["report", "--format", "json"]):
        result = run("--config", path, *args)
        assert result.exit_code == 2, result.stderr
        assert_one_line_error(result, "config")
        assert problem in result.stderr and result.stdout == ""


@pytest.mark.parametrize("setting, value", [
    ("deadline_days", "3000000"), ("deadline_days", "0"), ("workshop_hours", "inf"), ("workshop_hours", "nan"),
    ("cost_per_place", "nan"), ("cost_per_place", "inf"), ("max_days_since_offence", str(10 ** 100)),
    ("workshop_hours", str(10 ** 400)), ("cost_per_place", str(10 ** 400)),
])
def test_hostile_scheme_settings_are_config_errors(tmp_path, setting, value):
    shipped = (Path(__file__).resolve().parent.parent / "diversion_cli" / "data" / "schemes.toml").read_text()
    text = re.sub(rf"(?m)^{setting} = .*$", f"{setting} = {value}", shipped, count=1)
    if setting not in shipped.split("[schemes.dep-youth]")[0]:
        text = text.replace("pathway = \"workshop\"", f"pathway = \"workshop\"\n{setting} = {value}", 1)
    path = force_config(tmp_path, text)
    result = run("--config", path, "schemes")
    assert result.exit_code == 2, (setting, result.stderr)
    assert_one_line_error(result, "config")
    assert setting in result.stderr


def test_a_huge_deadline_cannot_reach_a_referral(tmp_path):
    """`deadline_days = 3000000` once overflowed the date at `refer` (exit 70)."""
    shipped = (Path(__file__).resolve().parent.parent / "diversion_cli" / "data" / "schemes.toml").read_text()
    path = force_config(tmp_path, shipped.replace("deadline_days = 56", "deadline_days = 3000000"))
    a = record()
    before = counts()
    result = run("--config", path, "refer", a["incident_id"])
    assert result.exit_code == 2 and "deadline_days" in result.stderr
    assert counts() == before


def test_a_hostile_busy_timeout_is_bad_input():
    before = counts()
    desk = ["record", "--surname", "Busy", "--forename", "Bea", "--dob", "1990-01-01", "--substance", "weed"]
    for value in ("nan", "inf", "-inf", "1e308", "-1", "3601", "ten", "0x10"):
        for args in (desk, ["report"]) if value == "nan" else (desk,):
            result = run(*args, env={"DIVERSION_BUSY_TIMEOUT": value})
            assert result.exit_code == 2, (args, result.stderr)
            assert_one_line_error(result, "DIVERSION_BUSY_TIMEOUT")
    assert counts() == before
    assert run(*desk, env={"DIVERSION_BUSY_TIMEOUT": "0.5"}).exit_code == 0


def test_import_of_a_device_or_pipe_is_refused_at_once(tmp_path):
    fifo = tmp_path / "rows.csv"
    os.mkfifo(fifo)
    for path in ("/dev/zero", fifo):   # in a process of its own: a regression eats memory or blocks
        code, _, stderr = diversion("import", path, limit_memory=1 << 30, timeout=30)
        assert code == 2, (path, stderr)
        assert stderr.startswith("error: file:") and len(stderr.strip().splitlines()) == 1, stderr
    result = run("import", tmp_path)
    assert result.exit_code == 2
    assert_one_line_error(result, "file")
    assert counts()["incidents"] == 0


def _megabytes(path: Path, size: int, head: str, fill: str, tail: str = "") -> Path:
    with path.open("w") as handle:
        handle.write(head)
        block = fill * (1_000_000 // len(fill))
        for _ in range(size):
            handle.write(block)
        handle.write(tail)
    return path


@pytest.mark.parametrize("name, size, head, fill, tail", [
    ("one-line.csv", 100, "surname,occurred_at,substances\n", "a", ""),       # one 100 MB line
    ("many-fields.csv", 10, "surname,occurred_at,substances\n", "a,", ""),    # millions of values in a row
    ("quoted.csv", 10, 'surname,occurred_at,substances\n"', "a\n", '"\n'),   # one field over 5M lines
    ("one-object.json", 100, '[{"surname": "', "a", '"}]'),                   # one 100 MB string
    ("one-list.json", 10, '[{"surname": [', "1,", "1]}]"),                     # one 10 MB array
])
def test_a_huge_row_is_refused_in_bounded_memory(tmp_path, name, size, head, fill, tail):
    path = _megabytes(tmp_path / name, size, head, fill, tail)
    code, stderr, peak_kb = peak_rss_kb("import", path, limit_memory=1 << 30)
    assert code == 2, stderr
    assert stderr.startswith("error: file:") and len(stderr.strip().splitlines()) == 1, stderr
    assert peak_kb < 150_000, f"peak RSS {peak_kb / 1000:.0f} MB"          # it was 847 MB
    assert counts()["incidents"] == 0


# ---- item 9: smaller holes --------------------------------------------------------------------

def test_a_duplicated_csv_column_is_refused(tmp_path):
    path = tmp_path / "dup.csv"
    path.write_text("surname,forenames,dob,occurred_at,substances,surname\n"
                    "Smith,John,1990-01-01,2026-01-01 10:00,weed,Jones\n")
    result = run("import", path)
    assert result.exit_code == 2
    assert_one_line_error(result, "file")
    assert "'surname' appear more than once" in result.stderr
    assert counts()["incidents"] == 0


HOSTILE_LOCATIONS = ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "[click](javascript:alert(1))",
                     "![x](http://evil.example/t.png)", "<!-- hidden -->", "a | b", "back\\slash |",
                     "&lt;script&gt;", "<https://evil.example>"]


def _renderer():
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark").enable("table")
    md.validateLink = lambda url: True   # as permissive as the worst renderer: javascript: links pass
    return md


def test_markdown_report_escapes_what_a_renderer_would_run():
    for location in HOSTILE_LOCATIONS:
        record("--location", location, "--when", LAST_MONTH.strftime("%d/%m/%Y 10:00"), "--new-person",
               surname="Markdown", forename="Mia")
    result = run("report", "--month", LAST_MONTH.strftime("%Y-%m"), "--by", "location", "--format", "markdown")
    assert result.exit_code == 0, result.stderr
    assert "<script" not in result.stdout and "<img" not in result.stdout and "](javascript" not in result.stdout
    rendered = _renderer().render(result.stdout)
    tags = set(re.findall(r"<\s*([a-zA-Z0-9]+)", rendered))
    assert tags <= {"h1", "h2", "p", "em", "strong", "table", "thead", "tbody", "tr", "th", "td", "code"}, tags
    # and each location still reads as typed, in its own cell
    cells = re.findall(r"<td>(.*?)</td>", rendered)
    import html as html_module
    shown = {html_module.unescape(c) for c in cells}
    for location in HOSTILE_LOCATIONS:
        assert location in shown, location


def test_config_costs_of_nan_never_reach_json(tmp_path):
    path = force_config(tmp_path, "[costs]\nprosecution = nan\ncaution = inf\n")
    result = run("--config", path, "report", "--format", "json")
    assert result.exit_code == 2 and "NaN" not in result.stdout and "Infinity" not in result.stdout
    assert_one_line_error(result, "config")


@as_another_user
def test_a_db_under_a_directory_the_user_cannot_enter_is_exit_4(tmp_path):
    result = as_nobody("--db", tmp_path / "x.db", "check", "--surname", "A", "--forename", "B", "--dob",
                       "1990-01-01")   # pytest's temporary directories are root's, 0700
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, result.stderr
    assert result.returncode == 4, result.stderr


def test_a_full_disk_under_stdout_is_one_line_for_any_command():
    import subprocess
    import sys

    from helpers import record

    record(surname="Full", forename="Fay", dob="1980-01-01")
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "diversion_cli", "check", "P-000001"], stdout=full,
                              stderr=subprocess.PIPE, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "cannot write" in done.stderr
    assert len([line for line in done.stderr.splitlines() if line.strip()]) == 1, done.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_force_never_replaces_another_users_file(tmp_path, letter_ready):
    out = tmp_path / "theirs.txt"
    out.write_text("someone else's")
    os.chown(out, 65534, 65534)  # nobody (the suite runs as root in CI)
    result = run(*_commands(letter_ready, out)["export"], "--force")
    assert result.exit_code == 2 and "belongs to another user" in result.stderr
    assert out.read_text() == "someone else's" and out.stat().st_uid == 65534
