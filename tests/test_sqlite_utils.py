"""The analyst views read with sqlite-utils' own command line, as the README shows it
(a real process on the real file): the dependency earns its place."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import db_file, record, refer, run

SQLITE_UTILS = Path(sys.executable).parent / "sqlite-utils"
pytestmark = [pytest.mark.plain_file,  # the stock sqlite3 module cannot open an encrypted file
              pytest.mark.sqlite_only("sqlite-utils reads SQLite files: on a server, analysts query the same "
                                      "views with psql or any PostgreSQL client")]


def query(sql: str, *params: str) -> list[dict]:
    done = subprocess.run([str(SQLITE_UTILS), "query", str(db_file()), sql, *params], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_readmes_queries_answer_from_the_views_and_leave_the_trail_whole():
    offered = refer(record(surname="One", forename="Ann", dob="1990-01-01")["incident_id"])
    accepted = refer(record(surname="Two", forename="Bob", dob="1991-01-01")["incident_id"])
    assert run("outcome", accepted["id"], "accepted").exit_code == 0
    rows = query("SELECT scheme, status, count(*) AS n FROM referrals_view GROUP BY 1, 2 ORDER BY 2")
    assert rows == [{"scheme": offered["scheme"], "status": "accepted", "n": 1},
                    {"scheme": offered["scheme"], "status": "offered", "n": 1}]
    mine = query("SELECT operation, action, entity FROM audit_log WHERE officer = :o AND entity = 'referral'",
                 "-p", "o", "1234")
    assert {(e["operation"], e["action"]) for e in mine} == {("refer", "insert"), ("outcome accepted", "update")}
    assert run("audit", "verify").exit_code == 0
