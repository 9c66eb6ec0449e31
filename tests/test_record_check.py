"""The custody desk: `diversion record` with flags and `diversion check`,
their exit codes, JSON shapes, identity matching and input validation."""

from __future__ import annotations

import stat
from datetime import date, datetime, timedelta

import pytest

from helpers import (NO_DATABASE_AT, ON_SERVER, as_json, assert_one_line_error, count_rows, counts, database_there,
                     db_file, record, refer, run, sub)

CHECK_KEYS = {"person", "eligible", "reasons", "incidents", "referrals", "possible_matches"}
RECORD_KEYS = {"incident_id", "person_id", "eligible", "reasons", "possible_matches", "referral_id"}
PERSON_KEYS = {"id", "surname", "forenames", "dob", "pnc"}


# ---- eligible / not eligible / unknown --------------------------------------

def test_record_json_shape_and_street_name_resolved():
    out = record("--pnc", "79/123456T", surname="Smith", forename="John", dob="14/02/1990", substance="weed")
    assert RECORD_KEYS <= set(out), set(out)
    assert out["incident_id"] == "I-000001" and out["person_id"] == "P-000001"
    assert out["eligible"] is True
    assert out["referral_id"] is None
    assert out["possible_matches"] == []
    assert all({"code", "message"} <= set(r) for r in out["reasons"])
    assert [r["code"] for r in out["reasons"]] == ["ELIGIBLE"]

    check = run("check", "P-000001", "--json")
    assert check.exit_code == 0, check.stderr
    data = as_json(check)
    assert set(data) == CHECK_KEYS
    assert PERSON_KEYS <= set(data["person"])
    [incident] = data["incidents"]
    # "weed" is a street name: stored as cannabis, class B, with what was typed kept
    assert incident["substances"] == [{"substance": "cannabis", "drug_class": "B", "entered_as": "weed"}]
    today = date.today()
    assert incident["age"] == today.year - 1990 - ((today.month, today.day) < (2, 14))


def test_pnc_short_form_is_stored_canonical_and_found_by_either_form():
    record("--pnc", "79/123456T")
    conn_pnc = run("check", "1979/0123456T", "--json")
    assert conn_pnc.exit_code == 0, conn_pnc.stderr
    assert as_json(conn_pnc)["person"]["pnc"] == "1979/0123456T"
    short = run("check", "79/123456t", "--json")
    assert short.exit_code == 0, short.stderr
    assert as_json(short)["person"]["id"] == "P-000001"


def test_same_pnc_and_same_details_reuse_the_person():
    first = record("--pnc", "1979/0123456T", surname="Smith", forename="John")
    second = record("--pnc", "79/123456T", surname="SMITH", forename="john", substance="coke")  # short form, other case
    assert second["person_id"] == first["person_id"]
    assert count_rows(None, "people") == 1
    assert count_rows(None, "incidents") == 2


def test_same_name_and_dob_reuses_the_person():
    first = record(surname="Okafor", forename="Ada", dob="1988-06-30")
    second = record(surname="  okafor ", forename="ADA", dob="30/06/1988", substance="coke")  # not the same arrest
    assert second["person_id"] == first["person_id"]
    assert count_rows(None, "people") == 1
    data = as_json(run("check", "--surname", "Okafor", "--forename", "Ada", "--dob", "1988-06-30", "--json"))
    assert data["person"]["id"] == first["person_id"]
    assert len(data["incidents"]) == 2


def test_check_exit_1_when_one_shot_used_and_3_for_unknown_id():
    out = record()
    ref = refer(out["incident_id"])
    assert run("outcome", ref["id"], "accepted").exit_code == 0
    assert run("outcome", ref["id"], "completed").exit_code == 0

    result = run("check", out["person_id"], "--json")
    assert result.exit_code == 1
    data = as_json(result)
    assert data["eligible"] is False
    assert "ONE_SHOT_USED" in [r["code"] for r in data["reasons"]]
    assert [r["id"] for r in data["referrals"]] == [ref["id"]]

    text = run("check", out["person_id"])
    assert text.exit_code == 1
    assert "NOT ELIGIBLE" in text.stdout and "ONE_SHOT_USED" in text.stdout

    for unknown in ("P-999999", "2001/0000001Q"):  # a valid PNC ID that is not on file
        missing = run("check", unknown)
        assert missing.exit_code == 3, (unknown, missing.stdout, missing.stderr)
        assert missing.stderr.startswith("error:") and "Traceback" not in missing.stderr
        assert missing.stdout == ""


def test_record_of_a_person_already_diverted_says_not_eligible_but_keeps_the_incident():
    out = record()
    ref = refer(out["incident_id"])
    run("outcome", ref["id"], "accepted")
    run("outcome", ref["id"], "failed")
    before = counts()
    again = run("record", "--json", "--person", out["person_id"], "--substance", "coke")
    # the incident is a fact and is written; only exit 1 means "nothing written" (cli.md)
    assert again.exit_code == 0, again.stderr
    data = as_json(again)
    assert data["eligible"] is False
    assert "ONE_SHOT_USED" in [r["code"] for r in data["reasons"]]
    assert count_rows(None, "incidents") == before["incidents"] + 1
    assert count_rows(None, "referrals") == before["referrals"]


def test_check_by_name_with_no_record_is_eligible_and_says_so():
    record(surname="Smith", forename="John")
    result = run("check", "--surname", "Nobody", "--forename", "Here", "--dob", "01/01/2000")
    assert result.exit_code == 0
    assert "no record found" in result.stdout.lower()
    data = as_json(run("check", "--surname", "Nobody", "--forename", "Here", "--dob", "01/01/2000", "--json"))
    assert set(data) == CHECK_KEYS
    assert data["person"] is None and data["eligible"] is True
    assert data["incidents"] == [] and data["referrals"] == []


@pytest.mark.no_database
@pytest.mark.parametrize("args", [
    ("check", "--surname", "Nobody", "--forename", "Here", "--dob", "01/01/2000"),
    ("check", "P-000001"),
    ("check", "1979/0123456T", "--json"),
    ("referrals",),
])
def test_read_only_commands_on_a_missing_database_do_not_create_it(args):
    assert not database_there()
    result = run(*args)
    assert result.exit_code == 4, (result.stdout, result.stderr)
    assert result.stdout == "" and NO_DATABASE_AT in result.stderr
    assert not database_there()
    if not ON_SERVER:
        assert not db_file().parent.joinpath(db_file().name + "-wal").exists()


def test_record_for_an_unknown_person_id_exits_3_and_writes_nothing():
    record()
    before = counts()
    result = run("record", "--person", "P-000042", "--substance", "weed")
    assert result.exit_code == 3
    assert result.stderr.startswith("error:") and "P-000042" in result.stderr
    assert counts() == before


# ---- near matches ---------------------------------------------------------

def _diverted_smith() -> dict:
    out = record(surname="Smith", forename="John", dob="14/02/1990")
    ref = refer(out["incident_id"])
    assert run("outcome", ref["id"], "accepted").exit_code == 0
    return out


def test_near_match_with_a_diversion_refuses_a_new_person_and_writes_nothing():
    smith = _diverted_smith()
    before = counts()
    result = run("record", "--surname", "Smyth", "--forename", "John", "--dob", "14/02/1990",
                 "--substance", "weed")
    assert result.exit_code == 1
    assert smith["person_id"] in result.stderr
    assert "--new-person" in result.stderr and "--person" in result.stderr
    assert "Traceback" not in result.stderr
    assert counts() == before


def test_near_match_json_mode_is_refused_too():
    _diverted_smith()
    before = counts()
    result = run("record", "--json", "--surname", "Smyth", "--forename", "John", "--dob", "14/02/1990",
                 "--substance", "weed")
    assert result.exit_code == 1
    assert counts() == before


def test_new_person_flag_creates_a_separate_person_and_warns():
    smith = _diverted_smith()
    out = record("--new-person", surname="Smyth", forename="John", dob="14/02/1990")
    assert out["person_id"] != smith["person_id"]
    assert out["eligible"] is True
    assert [m["id"] for m in out["possible_matches"]] == [smith["person_id"]]
    assert out["possible_matches"][0]["diverted"] is True
    assert count_rows(None, "people") == 2


def test_person_flag_attaches_to_the_existing_person():
    smith = _diverted_smith()
    result = run("record", "--json", "--person", smith["person_id"], "--substance", "coke")
    assert result.exit_code == 0, result.stderr
    out = as_json(result)
    assert out["person_id"] == smith["person_id"]
    assert out["eligible"] is False
    assert count_rows(None, "people") == 1


def test_near_match_without_a_diversion_is_only_a_warning():
    smith = record(surname="Smith", forename="John", dob="14/02/1990")
    result = run("record", "--surname", "Smyth", "--forename", "John", "--dob", "14/02/1990",
                 "--substance", "weed")
    assert result.exit_code == 0, result.stderr
    assert smith["person_id"] in result.stderr  # the warning is a diagnostic: stderr
    assert count_rows(None, "people") == 2


# ---- bad input: exit 2, one line, nothing written -------------------------

_TOMORROW = (datetime.now() + timedelta(days=2)).strftime("%Y-%m-%d %H:%M")
_BASE = {"--surname": "Smith", "--forename": "John", "--dob": "14/02/1990", "--substance": "weed"}

BAD_INPUTS = [
    ("impossible dob", {"--dob": "31/02/2026"}, "dob"),
    ("when tomorrow", {"--when": "tomorrow"}, "when"),
    ("future when", {"--when": _TOMORROW}, "when"),
    ("dob after incident", {"--dob": "2020-05-01", "--when": "2019-05-01 10:00"}, "dob"),
    ("age under 10", {"--dob": (date.today() - timedelta(days=365 * 7)).isoformat()}, "dob"),
    ("unknown substance", {"--substance": "unobtainium"}, "substance"),
    ("pnc wrong check letter", {"--pnc": "1979/0123456A"}, "pnc"),
    ("empty surname", {"--surname": ""}, "surname"),
    ("missing officer", {}, "officer"),
]


def _bad_args(overrides: dict) -> list[str]:
    merged = {**_BASE, **overrides}
    args = ["record"]
    for flag, value in merged.items():
        args += [flag, value]
    return args


@pytest.mark.parametrize("existing", [False, True], ids=["empty-db", "existing-db"])
@pytest.mark.parametrize("overrides, field", [(o, f) for _, o, f in BAD_INPUTS], ids=[n for n, _, _ in BAD_INPUTS])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(overrides, field, existing, monkeypatch):
    if existing:
        record(surname="Other", forename="Person", dob="1980-01-01")
    before = counts()
    if field == "officer":
        monkeypatch.delenv("DIVERSION_OFFICER")
    result = run(*_bad_args(overrides))
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert_one_line_error(result, field)
    assert result.stdout == ""
    assert counts() == before


def test_bad_input_as_a_real_process_has_no_traceback():
    result = sub(*_bad_args({"--dob": "31/02/2026"}))
    assert result.returncode == 2
    assert_one_line_error(result, "dob")
    assert counts() == {"people": 0, "incidents": 0, "referrals": 0, "decisions": 0}


def test_legal_high_is_refused_as_not_a_possession_incident():
    record(surname="Other", forename="Person", dob="1980-01-01")
    before = counts()
    result = run(*_bad_args({"--substance": "legal high"}))
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert "not a controlled drug" in result.stderr
    assert "Traceback" not in result.stderr
    assert counts() == before


# ---- names as people spell them -----------------------------------------

@pytest.mark.parametrize("surname, forename", [
    ("O'Brien; DROP TABLE people", "Seán"),
    ("Петренко", "Іван"),
    ("Zoë", "Chloë-Anne \"CJ\""),
    ("محمد", "عبد الله"),
    ("[bold]Smith[/bold]", "--John"),
])
def test_names_round_trip_exactly(surname, forename):
    out = record(surname=surname, forename=forename, dob="1991-03-04")
    result = run("check", out["person_id"], "--json")
    assert result.exit_code == 0, result.stderr
    person = as_json(result)["person"]
    assert (person["surname"], person["forenames"]) == (surname, forename)
    by_name = as_json(run("check", "--surname", surname, "--forename", forename, "--dob", "1991-03-04", "--json"))
    assert by_name["person"]["id"] == out["person_id"]
    assert count_rows(None, "people") == 1  # the table survived the name


def test_text_output_prints_a_markup_like_name_as_typed():
    out = record(surname="[red]Smith", forename="John")
    result = run("check", out["person_id"])
    assert "[RED]SMITH" in result.stdout


# ---- the file itself -------------------------------------------------------

@pytest.mark.sqlite_only("file permissions: on a server, access is its roles'")
@pytest.mark.no_database
def test_database_file_is_owner_only_after_init_and_first_write():
    assert run("db", "init").exit_code == 0
    record()
    mode = stat.S_IMODE(db_file().stat().st_mode)
    assert mode == 0o600, oct(mode)
    for sidecar in (db_file().with_name(db_file().name + "-wal"), db_file().with_name(db_file().name + "-shm")):
        if sidecar.exists():
            assert stat.S_IMODE(sidecar.stat().st_mode) & 0o077 == 0, sidecar


def test_database_in_a_new_directory_is_owner_only(tmp_path, monkeypatch):
    target = tmp_path / "new-dir" / "store.db"
    monkeypatch.setenv("DIVERSION_DB", str(target))
    assert sub("db", "init", script=True).returncode == 0  # the installed console script
    result = sub("record", *_bad_args({})[1:], script=True)
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert stat.S_IMODE(target.parent.stat().st_mode) & 0o077 == 0
    assert count_rows(target, "incidents") == 1
