"""What a second round of testers found, closed: --output never lands on the database,
a corrected date of birth corrects the ages figures count by, change counts cannot be
planted, an unreadable cached figure is computed afresh."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import as_json, connect, db_file, outside_sql, record, run


@pytest.mark.sqlite_only("a database file and its journals: a server's database is no file --output could replace")
@pytest.mark.parametrize("sidecar", ["", "-wal", "-shm", "-journal"])
@pytest.mark.parametrize("command", [["report", "--format", "json"], ["export", "incidents"]])
def test_output_never_replaces_the_database_or_its_journal(command, sidecar):
    record()
    target = Path(f"{db_file()}{sidecar}")
    result = run(*command, "--output", target, "--force")
    assert result.exit_code == 2 and "is the database" in result.stderr
    assert as_json(run("db", "status", "--json"))["counts"]["incidents"] == 1
    assert run("audit", "verify").exit_code == 0


def test_a_corrected_date_of_birth_corrects_the_age_every_figure_counts_by():
    out = record("--when", "2026-10-05 10:00", surname="Young", forename="Yan", dob="1990-01-01")
    month = "2026-10"
    adult = as_json(run("report", "--month", month, "--format", "json"))
    assert run("amend", "person", out["person_id"], "--dob", "2010-03-03", "--reason", "birth certificate"
               ).exit_code == 0
    conn = connect()
    assert conn.execute("SELECT age FROM incidents WHERE person_id = 1").fetchone()[0] == 16
    conn.close()
    youth = as_json(run("report", "--month", month, "--format", "json"))
    rows = {t["key"]: t for t in youth["tables"]}["adult_youth"]["rows"]
    assert [r["incidents"] for r in rows] == [1, 0]  # youth, adult
    assert adult != youth
    assert run("audit", "verify").exit_code == 0


@pytest.mark.plain_file
def test_a_planted_change_count_is_refused_by_the_database():
    record()
    for sql in ("INSERT INTO month_changes VALUES ('2025-08x', -7);",
                "INSERT INTO month_changes VALUES ('1999-01', 0);",
                "INSERT INTO diversion_changes VALUES ('2025-08', -1);"):
        planted = outside_sql(sql, check=False)
        assert planted.returncode != 0 and "change_counts_only_go_up" in planted.stderr, (sql, planted.stderr)


@pytest.mark.plain_file
def test_a_cached_figure_that_is_not_what_diversion_writes_is_computed_afresh():
    record("--when", "2026-10-05 10:00")
    first = as_json(run("report", "--month", "2026-10", "--format", "json"))
    outside_sql("UPDATE report_cache SET value = 'not json';")
    again = run("report", "--month", "2026-10", "--format", "json")
    assert again.exit_code == 0, again.stderr
    assert {k: v for k, v in as_json(again).items() if k != "generated_at"} == \
        {k: v for k, v in first.items() if k != "generated_at"}


@pytest.mark.parametrize("month", ["١٢/٢٠٢٥", "x" * 5000])
def test_a_month_in_other_digits_or_at_absurd_length_is_one_short_line(month):
    result = run("report", "--month", month)
    assert result.exit_code == 2 and len(result.stderr) < 200


def test_an_output_name_no_file_can_have_is_bad_input_not_an_internal_error(tmp_path):
    record()
    result = run("report", "--format", "markdown", "--output", tmp_path / ("\x80" * 300))
    assert result.exit_code == 2 and "internal error" not in result.stderr
