"""The shared server (issue 11): moving a file's record to PostgreSQL with `db migrate-to`,
the same figures on both engines, and what a server target refuses. Tests that need a
server run when the suite runs on one (DIVERSION_TEST_POSTGRES)."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from helpers import as_json, connect, count_rows, run, sub

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "sample_data" / "incidents.csv"
needs_server = pytest.mark.postgres_only("moves a file's record to the test's PostgreSQL database")


def _file_with_sample_data(tmp_path: Path) -> Path:
    """A SQLite file holding the sample history and a desk's night on top of it."""
    path = tmp_path / "force.db"
    assert run("--db", path, "db", "init").exit_code == 0
    assert run("--db", path, "import", SAMPLE).exit_code == 0
    out = as_json(run("--db", path, "record", "--json", "--surname", "Okoro", "--forename", "Daniel", "--dob",
                      "1999-02-14", "--substance", "weed", "--refer", "--gender", "M", "--ethnicity", "B2"))
    assert run("--db", path, "outcome", out["referral_id"], "accepted").exit_code == 0
    return path


@needs_server
def test_migrate_to_moves_everything_and_the_trail_verifies_with_the_same_head(tmp_path):
    source = _file_with_sample_data(tmp_path)
    before = as_json(run("--db", source, "audit", "verify", "--json"))
    target = os.environ["DIVERSION_DB"]

    moved = sub("--db", source, "db", "migrate-to", target)
    assert moved.returncode == 0, moved.stderr
    assert "verified on arrival" in moved.stdout

    after = as_json(run("audit", "verify", "--json"))
    assert after["head"] == before["head"]  # the same chain: anchors taken on the file still check
    assert after["entries"] == before["entries"] and after["rows_checked"] == before["rows_checked"]
    for table in ("people", "incidents", "referrals", "decisions", "audit_entries", "issued_ids"):
        assert count_rows(None, table) == count_rows(source, table), table
    # the desks carry on where the file stopped: ids count on, the one shot still holds
    person = as_json(run("check", "--json", "--surname", "Okoro", "--forename", "Daniel", "--dob", "1999-02-14"))
    assert person["eligible"] is False
    earlier = (datetime.now() - timedelta(hours=3)).strftime("%Y-%m-%d %H:%M")  # (not the same arrest)
    again = as_json(run("record", "--json", "--surname", "Okoro", "--forename", "Daniel", "--dob", "1999-02-14",
                        "--substance", "weed", "--refer", "--when", earlier))
    assert again["referral_id"] is None
    assert int(again["incident_id"][2:]) == count_rows(source, "incidents") + 1
    assert run("audit", "verify").exit_code == 0


@needs_server
def test_both_engines_give_the_same_figures(tmp_path):
    source = _file_with_sample_data(tmp_path)
    assert sub("--db", source, "db", "migrate-to", os.environ["DIVERSION_DB"]).returncode == 0
    for extra in ([], ["--by", "drug_class"], ["--by", "ethnicity"], ["--by", "scheme", "--suppress", "5"]):
        args = ["report", "--from", "2026-03-01", "--to", "2026-10-31", "--format", "json", *extra]
        on_file = json.loads(run("--db", source, *args).stdout)
        on_server = json.loads(run(*args).stdout)
        on_file.pop("generated", None), on_server.pop("generated", None)
        assert on_server == on_file, extra


@needs_server
def test_migrate_to_refuses_a_target_that_holds_data_and_moves_nothing(tmp_path):
    source = _file_with_sample_data(tmp_path)
    assert run("record", "--surname", "Already", "--forename", "Here", "--dob", "1980-01-01",
               "--substance", "weed").exit_code == 0
    before = count_rows(None, "people")
    moved = sub("--db", source, "db", "migrate-to", os.environ["DIVERSION_DB"])
    assert moved.returncode == 1 and "already holds data" in moved.stderr, moved.stderr
    assert "Traceback" not in moved.stderr
    assert count_rows(None, "people") == before


@needs_server
def test_migrate_to_refuses_a_file_whose_trail_does_not_verify(tmp_path):
    source = _file_with_sample_data(tmp_path)
    conn = connect(source)
    conn.execute("DROP TRIGGER audit_people_update")
    conn.execute("UPDATE people SET surname = 'Forged' WHERE id = 1")
    conn.close()
    moved = sub("--db", source, "db", "migrate-to", os.environ["DIVERSION_DB"])
    assert moved.returncode == 1 and "nothing was moved" in moved.stderr, moved.stderr
    assert count_rows(None, "people") == 0 and count_rows(None, "audit_entries") == 0


@pytest.mark.postgres_only("a server's logging settings")
def test_a_server_that_logs_statements_is_named_by_db_status():
    conn = connect()
    if not conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0]:
        conn.close()
        pytest.skip("only a superuser may change what the server logs (CI's test login is not one)")
    name = conn.execute("SELECT current_database()").fetchone()[0]
    conn.execute(f"ALTER DATABASE {name} SET log_statement = 'all'")
    conn.close()
    status = sub("db", "status")
    assert status.returncode == 0
    assert "log_statement = all" in status.stderr and "personal data" in status.stderr


@pytest.mark.postgres_only("the server's transactions under SIGKILL (the file's: test_crash.py)")
def test_desks_killed_mid_write_leave_nothing_half_written_and_the_trail_sound():
    """A desk's process killed at any moment of `record --refer`: the server rolls its transaction
    back whole (an incident with its decision and referral, or nothing), and the trail verifies."""
    import random
    import signal
    import sys
    import time

    rng = random.Random(20261202)
    for n in range(12):
        proc = subprocess.Popen([sys.executable, "-m", "diversion_cli", "record", "--surname", f"Killed{chr(65 + n)}",
                                 "--forename", "Kim", "--dob", f"19{80 + n}-01-01", "--substance", "weed", "--refer"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.2, 0.9))  # from start-up to after the commit
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    conn = connect()
    try:
        people, incidents, decisions, referrals, pending = conn.execute(
            "SELECT (SELECT count(*) FROM people), (SELECT count(*) FROM incidents), (SELECT count(*) FROM decisions), "
            "(SELECT count(*) FROM referrals), (SELECT count(*) FROM audit_pending)").fetchone()
    finally:
        conn.close()
    assert people == incidents == decisions == referrals  # each desk's write whole, or not at all
    assert pending == 0
    verified = sub("audit", "verify")
    assert verified.returncode == 0, verified.stderr


def test_a_password_in_the_database_url_is_refused_before_anything_connects():
    for url in ("postgresql://officer:secret@db.force.local/diversion", "postgres://u:p@localhost/x"):
        result = run("--db", url, "check", "P-000001")
        assert result.exit_code == 2, result.stderr
        assert result.stderr.startswith("error: db:") and "PGPASSWORD" in result.stderr
        assert "secret" not in result.stderr


def test_migrate_to_wants_a_server_url(tmp_path):
    result = run("db", "migrate-to", str(tmp_path / "other.db"))
    assert result.exit_code == 2 and "postgresql://" in result.stderr


@pytest.mark.sqlite_only("a server target needs the server: the file's engine is what this checks")
def test_an_unreachable_server_is_one_line_exit_4(tmp_path):
    result = subprocess.run([*_diversion(), "--db", "postgresql://127.0.0.1:1/nothing", "check", "P-000001"],
                            capture_output=True, text=True, timeout=60)
    if "not installed" in result.stderr:
        pytest.skip("psycopg is not installed here")
    assert result.returncode == 4, result.stderr
    assert result.stderr.startswith("error: cannot connect to the database server")
    assert len(result.stderr.strip().splitlines()) == 1


def _diversion() -> list[str]:
    import sys

    return [sys.executable, "-m", "diversion_cli"]



@pytest.mark.parametrize("mistyped", ["postgresql:force", "postgresql:/force", "postgresql//db.force.local/force",
                                      "host=db.force.local dbname=force"])
def test_a_mistyped_server_url_is_refused_not_taken_for_a_new_file(mistyped, tmp_path, monkeypatch):
    here = tmp_path / "desk"
    here.mkdir()
    monkeypatch.chdir(here)
    result = run("--db", mistyped, "db", "init")
    assert result.exit_code == 2 and result.stderr.startswith("error: db:"), result.stderr
    assert list(here.rglob("*")) == []  # no file made of it


def test_a_password_in_the_url_query_is_refused_too():
    result = run("--db", "postgresql://desk@db.force.local/force?sslmode=require&password=hunter2", "check", "P-1")
    assert result.exit_code == 2 and "PGPASSWORD" in result.stderr and "hunter2" not in result.stderr


@pytest.mark.parametrize("query", ["pass%77ord=hunter2", "password%20=hunter2", "PASSWORD=hunter2", "passwd=hunter2"])
def test_a_password_libpq_would_find_in_the_query_however_spelt_is_refused(query):
    result = run("--db", f"postgresql://desk@db.force.local/force?{query}", "check", "P-1")
    assert result.exit_code == 2 and "PGPASSWORD" in result.stderr and "hunter2" not in result.stderr
