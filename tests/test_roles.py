"""Who may do what on a shared server (issue 12): each role's commands work and the rest exit 5
with nothing written; the same forbidden reads and writes, tried as raw SQL through psycopg with
the officer's own login, are refused by the server; the trail names the login whatever
--officer said. On a SQLite file there are no roles."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import pytest

from helpers import all_rows, as_json, run, tamper

on_server = pytest.mark.postgres_only("a server's logins and roles (a SQLite file has one user)")

ROLES = ("desk", "coordinator", "supervisor", "analyst", "admin")
COLLAR = {"desk": "4471", "coordinator": "4472", "supervisor": "4473", "admin": "4474"}
# each role's officer, a desk login the DBA granted by hand with no collar number, and a login with no role
LOGIN = {role: f"diversion_test_{role}" for role in (*ROLES, "unmapped", "stranger")}
PASSWORD = "not-a-real-secret"
KEY = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


def _server_url(name: str, login: str | None = None) -> str:
    parts = urlsplit(os.environ["DIVERSION_TEST_POSTGRES"])
    if login is None:
        return f"{parts.scheme}://{parts.netloc}/{name}"
    # an officer signs in with a password over TCP (the test server's socket trusts only its OS user)
    return f"postgresql://{login}@localhost:{parts.port or os.environ.get('PGPORT', 5432)}/{name}"


@pytest.fixture(scope="module")
def staffed(server, empty_database, tmp_path_factory):
    """A database given its roles, five officers' logins granted one each, and a little record:
    P-000001 diverted (R-2026-000001 accepted), P-000002 with incident I-000002 not yet referred,
    P-000003 on a Checkpoint contract (R-2026-000002 accepted), P-000004 imported, accepted nine days
    ago."""
    if server is None:
        yield None
        return
    home = tmp_path_factory.mktemp("staff")
    passfile = home / "pgpass"
    passfile.write_text("".join(f"localhost:*:*:{LOGIN[r]}:{PASSWORD}\n"
                                for r in LOGIN))
    passfile.chmod(0o600)
    server.execute("SELECT pg_advisory_lock(1212)")  # (logins and group roles are the cluster's: one worker at a time)
    for login in LOGIN.values():
        if not server.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (login,)).fetchone():
            server.execute(f"CREATE ROLE {login} LOGIN PASSWORD '{PASSWORD}'")
    name = f"{empty_database}_staffed"
    server.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    server.execute(f"CREATE DATABASE {name} TEMPLATE {empty_database}")
    env = {"DIVERSION_DB": _server_url(name), "DIVERSION_OFFICER": "1234", "XDG_CONFIG_HOME": str(home),
           "DIVERSION_CONFIG": None}

    def owner(*args):
        result = run(*args, env=env)
        assert result.exit_code == 0, (args, result.stderr)
        return result

    try:
        owner("db", "roles", "init")
        for role in ROLES:
            owner("db", "roles", "grant", LOGIN[role], role, *(["--officer", COLLAR[role]] if role in COLLAR else []))
        # a desk login the DBA granted by hand, with no collar number mapped
        server.execute("GRANT diversion_desk TO diversion_test_unmapped")
    finally:
        server.execute("SELECT pg_advisory_unlock(1212)")
    owner("record", "--surname", "Smith", "--forename", "John", "--dob", "14/02/1990", "--substance", "cannabis",
          "--when", "2026-11-10 10:00", "--refer")
    owner("outcome", "R-2026-000001", "accepted")
    owner("record", "--surname", "Jones", "--forename", "Ann", "--dob", "01/03/1985", "--substance", "cannabis",
          "--when", "2026-11-12 10:00", "--location", "12 Acacia Avenue")
    owner("record", "--surname", "Brown", "--forename", "Cara", "--dob", "05/06/1980", "--substance", "cannabis",
          "--when", "2026-11-14 10:00")
    owner("refer", "I-000003", "--scheme", "checkpoint")
    owner("outcome", "R-2026-000002", "accepted")
    # P-000004: a workshop accepted nine days ago (imported), whose outcome comes in late
    from datetime import datetime, timedelta

    day = lambda n: (datetime.now() - timedelta(days=n)).strftime("%Y-%m-%d %H:%M")  # noqa: E731
    history = home / "history.csv"
    history.write_text("surname,forenames,dob,gender,occurred_at,substances,recorded_by,scheme,referral_status,"
                       f"offered_at,accepted_at\nGreen,Dana,1979-05-09,F,{day(11)},cannabis,1029,dep-adult,accepted,"
                       f"{day(10)},{day(9)}\n")
    owner("import", str(history))
    with _connect_as_owner(env["DIVERSION_DB"]) as conn:
        late = conn.execute("SELECT id FROM referrals WHERE person_id = 4").fetchone()
    yield {"template": name, "passfile": passfile, "late": late[0], "two_days_ago": day(2)}
    _drop_when_left(server, name)


@pytest.fixture
def staff(staffed, server, monkeypatch):
    """The test's own copy of the staffed database; `as_(role, *args)` runs a command signed in as
    that role's officer."""
    name = f"{staffed['template']}_{os.getpid()}_{next(_copies)}"
    server.execute(f"CREATE DATABASE {name} TEMPLATE {staffed['template']}")
    from diversion_cli.store.postgres.roles import database_grants

    server.execute(database_grants(name))  # (a database's own rights are not copied from its template)
    monkeypatch.setenv("DIVERSION_DB", _server_url(name))
    monkeypatch.setenv("DIVERSION_PSEUDONYM_KEY", KEY)

    class Staff:
        database = name

        @staticmethod
        def url(role: str) -> str:
            return _server_url(name, LOGIN[role])

        @staticmethod
        def as_(role: str, *args: str, officer: str | None = None):
            env = {"DIVERSION_DB": Staff.url(role), "PGPASSWORD": None, "PGPASSFILE": str(staffed["passfile"]),
                   "DIVERSION_OFFICER": officer}
            return run(*args, env=env)

        @staticmethod
        def sql(role: str, *statements, params=()):
            """Run statements in one transaction as the role's login, straight through psycopg (no
            diversion); the last one's rows."""
            import psycopg

            with psycopg.connect(Staff.url(role), password=PASSWORD, autocommit=True) as conn:
                with conn.transaction():
                    for statement in statements:  # (the parameters are for those that take them)
                        cursor = conn.execute(statement, params if "%" in statement else None)
                return cursor.fetchall() if cursor.description else cursor.rowcount

    yield Staff
    _drop_when_left(server, name)


_copies = iter(range(1, 10**6))


def _connect_as_owner(url: str):
    import psycopg

    return psycopg.connect(url, autocommit=True)


def _drop_when_left(server, name: str) -> None:
    """Drop a test's database once the officers' sessions have ended (a backend outlives its
    client's close by a moment, and the tests' login may not end another login's)."""
    import time

    for _ in range(100):
        if not server.execute("SELECT 1 FROM pg_stat_activity WHERE datname = %s", (name,)).fetchone():
            break
        time.sleep(0.05)
    server.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

STAFF = {"desk", "coordinator", "supervisor", "admin"}
# command -> (arguments, the roles that may run it, its exit code when they do)
MATRIX = {
    "record": (["record", "--surname", "New", "--forename", "Person", "--dob", "01/01/1991", "--substance",
                "cannabis"], STAFF, 0),
    "record again": (["record", "--person", "P-000002", "--substance", "cannabis", "--gender", "F"], STAFF, 0),
    "check": (["check", "P-000002"], STAFF, 0),
    "refer": (["refer", "I-000002"], STAFF, 0),
    "incidents": (["incidents", "--since", "2026-11-01"], STAFF, 0),
    "incident": (["incident", "I-000001"], STAFF, 0),
    "referral": (["referral", "R-2026-000001"], STAFF, 0),
    "condition": (["condition", "R-2026-000002", "drug-awareness", "met"], {"coordinator", "supervisor", "admin"},
                  0),
    # (approved by another supervisor than the one signed in: the admin, or the supervisor)
    "early completion": (["condition", "R-2026-000002", "no-reoffend", "met", "--supervisor", "{approver}",
                          "--reason", "approved"], {"supervisor", "admin"}, 0),
    "void referral": (["outcome", "R-2026-000001", "voided", "--reason", "offered in error"],
                      {"supervisor", "admin"}, 0),
    "outcome": (["outcome", "R-2026-000001", "completed"], {"coordinator", "supervisor", "admin"}, 0),
    "late outcome": (["outcome", "{late}", "completed", "--when", "{two_days_ago}"],
                     {"coordinator", "supervisor", "admin"}, 0),
    "referrals": (["referrals"], {"coordinator", "supervisor", "admin"}, 0),
    "letter": (["letter", "R-2026-000001", "--kind", "offer"], {"coordinator", "supervisor", "admin"}, 0),
    "void": (["void", "I-000002", "--reason", "entered twice"], {"supervisor", "admin"}, 0),
    "audit log": (["audit", "log", "--limit", "5"], {"supervisor", "admin"}, 0),
    "report": (["report", "--month", "2026-11", "--format", "json"], {"analyst", "supervisor", "admin"}, 0),
    "report by location": (["report", "--month", "2026-11", "--by", "location", "--format", "json"],
                           {"supervisor", "admin"}, 0),
    "pseudonymised export": (["export", "--pseudonymise"], {"analyst", "supervisor", "admin"}, 0),
    "export": (["export"], {"supervisor", "admin"}, 0),
    "amend person": (["amend", "person", "P-000002", "--surname", "Jonas", "--reason", "passport"], {"admin"}, 0),
    "breach": (["condition", "R-2026-000002", "drug-awareness", "breached", "--note", "did not attend"],
               {"coordinator", "supervisor", "admin"}, 0),
    "amend incident": (["amend", "incident", "I-000002", "--substance", "cocaine", "--reason", "lab result"],
                       {"admin"}, 0),
    "erase": (["db", "erase-person", "P-000002", "--confirm", "P-000002", "--reason", "court order"], {"admin"}, 0),
    "roles list": (["db", "roles", "list"], {"admin"}, 0),
    "audit verify": (["audit", "verify"], {"admin"}, 0),
    "pin schemes": (["db", "pin-schemes"], {"admin"}, 0),
    "whoami": (["whoami"], set(ROLES), 0),
    "schemes": (["schemes"], set(ROLES), 0),
    "status": (["db", "status"], set(ROLES), 0),
}


@on_server
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("command", MATRIX)
def test_each_role_runs_its_commands_and_no_others(staffed, staff, role, command):
    args, allowed, code = MATRIX[command]
    args = [a.replace("{approver}", COLLAR["admin"] if role != "admin" else COLLAR["supervisor"])
            .replace("{late}", staffed["late"]).replace("{two_days_ago}", staffed["two_days_ago"]) for a in args]
    before = all_rows()
    result = staff.as_(role, *args)
    if role in allowed:
        assert result.exit_code == code, result.stderr
        return
    assert result.exit_code == 5, (result.exit_code, result.stderr)
    [line] = result.stderr.strip().splitlines()
    assert "role" in line and LOGIN[role] in line
    assert result.stdout == ""
    assert all_rows() == before  # nothing written


# ---- the same, as raw SQL with the officer's own login ------------------------------------

def now() -> str:
    from datetime import datetime

    return datetime.now().isoformat(timespec="seconds")


def person_sql(person_id: int = 5, officer: str = "4471", at: str | None = None) -> str:
    """A person written by hand (the staffed record has four: the next is 5)."""
    return ("INSERT INTO people (id, surname, forenames, dob, surname_norm, forenames_norm, created_at, created_by) "
            f"VALUES ({person_id}, 'Hand', 'Made', '1990-01-01', 'hand', 'made', '{at or now()}', '{officer}')")


def seal_sql(officer: str = "4471", operation: str = "psql", at: str | None = None) -> str:
    return f"SELECT diversion_seal('{at or now()}', '{officer}', '{operation}', NULL)"


PERSON = "<a person written by hand>"
REFUSED = {
    "desk": [
        "INSERT INTO audit_pending (action, entity, entity_id) VALUES ('d', 'p', '1')",
        "DELETE FROM audit_pending",
        "INSERT INTO audit_entries (seq, action, entity, entity_id) VALUES (999, 'i', 'p', '9')",
        "INSERT INTO audit_transactions (last_seq, at, officer, operation, hash, login) "
        "VALUES (999, 'x', '4471', 'x', '\\x00', 'diversion_test_desk')",
        "INSERT INTO migrations VALUES (999, 'lockout', 'x')",
        "INSERT INTO bulk_load VALUES (1)",
        "INSERT INTO correction VALUES (1)",
        "INSERT INTO issued_ids VALUES ('person', 1)",
        "INSERT INTO one_shot_scopes VALUES ('dep-adult', 'mine', 0, 'x', 'x')",
        "INSERT INTO officer_logins VALUES ('diversion_test_desk2', '9999', 'x', 'x')",
        "UPDATE officer_logins SET officer = '9999'",
        "UPDATE referrals SET person_id = 2 WHERE id = 'R-2026-000001'",
        "UPDATE referrals SET status = 'completed'",
        "UPDATE people SET surname = 'X'",
        "DELETE FROM referrals",
        "SELECT old FROM audit_entries",
        "SELECT diversion_close('2026-11-20T10:00:00', '4471', 'x', NULL)",
        PERSON,  # a change of its own, left unsealed: refused at commit
    ],
    "coordinator": [
        "UPDATE referrals SET person_id = 2 WHERE id = 'R-2026-000001'",
        "UPDATE referrals SET one_shot_group = 'mine', lookback_since = '2026-11-01T00:00:00'",
        "UPDATE incidents SET voided_at = '2026-11-20T10:00:00'",
        "INSERT INTO correction VALUES (1)",
        "UPDATE people SET dob = '1990-01-02'",
    ],
    "supervisor": [
        "UPDATE people SET surname = 'X'",
        "DELETE FROM people WHERE id = 2",
        "UPDATE incidents SET location = 'elsewhere'",
        "INSERT INTO bulk_load VALUES (1)",
        "INSERT INTO migrations VALUES (999, 'lockout', 'x')",
    ],
    "analyst": [
        "SELECT surname FROM people",
        "SELECT dob FROM people",
        "SELECT pnc FROM people",
        "SELECT * FROM people",
        "SELECT location FROM incidents",
        "SELECT quantity FROM incidents",
        "SELECT entered_as FROM incident_substances",
        "SELECT description FROM incident_co_offences",
        "SELECT reasons FROM decisions",
        "SELECT reason FROM referrals",
        "SELECT note FROM referral_conditions",
        "SELECT * FROM incidents_view",
        "SELECT * FROM people_view",
        "SELECT * FROM referrals_view",
        "SELECT * FROM audit_log",
        "SELECT old FROM audit_entries",
        "SELECT digest FROM audit_entries",
        "SELECT reason FROM audit_transactions",
        "SELECT count(*) FROM audit_pending",
        "SELECT count(*) FROM audit_salts",
        "INSERT INTO people (id, surname, forenames, dob, surname_norm, forenames_norm, created_at, created_by) "
        "VALUES (91, 'A', 'B', '1990-01-01', 'a', 'b', 'x', 'x')",
    ],
}


@on_server
@pytest.mark.parametrize("role, statement", [(r, s) for r, ss in REFUSED.items() for s in ss])
def test_the_server_refuses_a_roles_forbidden_sql(staff, role, statement):
    import psycopg

    statement = person_sql() if statement == PERSON else statement
    before = all_rows()
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        staff.sql(role, statement)
    assert all_rows() == before


@on_server
def test_an_analyst_reads_figures_without_personal_data(staff):
    [row] = staff.sql("analyst", "SELECT * FROM analyst_incidents WHERE incident_ref = 'I-000002'")
    assert "Jones" not in map(str, row) and "1985-03-01" not in map(str, row)
    assert "Acacia" not in repr(staff.sql("analyst", "SELECT * FROM analyst_incidents"))
    assert staff.sql("analyst", "SELECT gender, ethnicity, age FROM people JOIN incidents "
                                "ON incidents.person_id = people.id") is not None
    exported = staff.as_("analyst", "export", "--pseudonymise")
    assert exported.exit_code == 0, exported.stderr
    assert "area column is left out" in exported.stderr
    assert "Jones" not in exported.stdout and "Acacia" not in exported.stdout


def next_referral() -> str:
    from helpers import connect

    conn = connect()
    try:
        year = now()[:4]
        last = conn.execute("SELECT max(id) FROM referrals WHERE id LIKE ?", (f"R-{year}-%",)).fetchone()[0]
    finally:
        conn.close()
    return f"R-{year}-{int(last.rsplit('-', 1)[1]) + 1 if last else 1:06d}"


REFERRAL = ("INSERT INTO referrals (id, person_id, incident_id, scheme, pathway, one_shot_group, lookback_since, "
            "status, provider, deadline, offered_at, offered_by, updated_at, updated_by, diverted_at, closed_at) "
            "VALUES (%(id)s, 2, 2, %(scheme)s, 'workshop', %(group)s, %(since)s, %(status)s, 'x', "
            "'2099-01-01T00:00:00', %(at)s, %(by)s, %(at)s, %(by)s, %(diverted)s, %(closed)s)")


@on_server
@pytest.mark.parametrize("forged, refusal", [
    ({"group": "mine"}, "one_shot_scope_not_pinned"),  # a scope of its own
    ({"since": "<now>"}, "one_shot_scope_not_pinned"),  # a window that looks back no time at all
    ({"scheme": "made-up", "group": "made-up"}, "scheme_not_pinned"),  # a scheme never pinned
    ({"at": "2099-01-01T00:00:00", "id": "R-2099-000001"}, "stamped_at_another_time"),  # offered in 2099: a window anchored there
    ({"by": "4472"}, "stamped_with_another_officer"),  # in another officer's name
    ({"id": "R-2026-999999"}, "ids_are_issued_in_turn"),  # an id that stops the next desk
    ({"status": "completed", "diverted": "<now>", "closed": "<now>"}, "referral_starts_offered"),  # a letter's worth
])
def test_a_desk_writing_a_referral_by_hand_is_held_to_the_rules(staff, forged, refusal):
    """A desk login writing a referral straight into the table (P-000002, never diverted) must
    write what diversion would: the scheme's pinned scope and window, now, in its own name, the
    next id, an offer."""
    import psycopg

    stamp = now()
    values = {"id": next_referral(), "scheme": "dep-adult", "group": "adult", "since": None, "status": "offered",
              "at": stamp, "by": "4471", "diverted": None, "closed": None, **forged}
    values = {k: stamp if v == "<now>" else v for k, v in values.items()}
    before = all_rows()
    with pytest.raises((psycopg.errors.IntegrityError, psycopg.errors.InsufficientPrivilege), match=refusal):
        staff.sql("desk", REFERRAL, seal_sql(), params=values)
    assert all_rows() == before
    # written as diversion would, it goes in, sealed under the desk's login
    honest = {**values, **{"id": next_referral(), "scheme": "dep-adult", "group": "adult", "since": None,
                           "status": "offered", "at": stamp, "by": "4471", "diverted": None, "closed": None}}
    staff.sql("desk", REFERRAL, seal_sql(operation="refer"), params=honest)
    assert run("audit", "verify").exit_code == 0


@on_server
def test_a_coordinator_cannot_rewrite_a_diversions_dates_or_void_it(staff):
    """The adversary's way round the one shot: a completed diversion's dates moved into the past (out
    of a look-back window), or the accepted one voided, by a coordinator's own SQL."""
    import psycopg

    before = all_rows()
    for statement, refusal in (
            ("UPDATE referrals SET diverted_at = '2000-01-01T00:00:00' WHERE id = 'R-2026-000001'",
             "referral_outcome_is_kept"),
            ("UPDATE referrals SET status = 'voided', closed_at = %(at)s, updated_at = %(at)s, updated_by = '4472' "
             "WHERE id = 'R-2026-000001'", "voided_by_a_supervisor"),
            ("UPDATE referrals SET status = 'completed', closed_at = %(at)s, outcome_code = 22, updated_at = %(at)s, "
             "updated_by = '4472' WHERE id = 'R-2026-000002'", "conditions_not_met"),  # a contract, conditions due
            ("UPDATE referrals SET status = 'completed', closed_at = %(at)s, updated_at = %(at)s, "
             "updated_by = '4471' WHERE id = 'R-2026-000001'", "stamped_with_another_officer")):
        with pytest.raises((psycopg.errors.IntegrityError, psycopg.errors.InsufficientPrivilege), match=refusal):
            staff.sql("coordinator", statement, seal_sql("4472"), params={"at": now()})
    staff.sql("coordinator", "UPDATE referrals SET status = 'completed', closed_at = %(at)s, outcome_code = 22, "
                             "updated_at = %(at)s, updated_by = '4472' WHERE id = 'R-2026-000001'",
              seal_sql("4472", "outcome completed"), params={"at": now()})
    with pytest.raises(psycopg.errors.IntegrityError, match="referral_outcome_is_kept"):  # closed: it stays so
        staff.sql("coordinator", "UPDATE referrals SET closed_at = '2000-01-01T00:00:00', updated_at = %(at)s, "
                                 "updated_by = '4472' WHERE id = 'R-2026-000001'", seal_sql("4472"),
                  params={"at": now()})
    assert before != all_rows() and run("audit", "verify").exit_code == 0


@on_server
def test_a_coordinator_cannot_complete_a_contract_early_by_hand(staff):
    import psycopg

    before = all_rows()
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="early_completion_by_a_supervisor"):
        staff.sql("coordinator", "UPDATE referral_conditions SET status = 'met', recorded_at = %(at)s, "
                                 "recorded_by = '4472' WHERE referral_id = 'R-2026-000002' AND key = 'no-reoffend'",
                  seal_sql("4472"), params={"at": now()})
    assert all_rows() == before
    # a condition due before the end may be met early: that is the coordinator's
    staff.sql("coordinator", "UPDATE referral_conditions SET status = 'met', recorded_at = %(at)s, "
                             "recorded_by = '4472' WHERE referral_id = 'R-2026-000002' AND key = 'drug-awareness'",
              seal_sql("4472", "condition"), params={"at": now()})
    assert run("audit", "verify").exit_code == 0


@on_server
def test_a_desk_cannot_stop_every_desk_with_a_huge_id_or_overwrite_a_person(staff):
    import psycopg

    before = all_rows()
    with pytest.raises(psycopg.errors.IntegrityError, match="ids_are_issued_in_turn"):
        staff.sql("desk", person_sql(2147483647), seal_sql())
    staff.sql("desk", "UPDATE people SET pnc = '2001/0000001Z' WHERE id = 2 AND pnc IS NULL", seal_sql())  # a gap
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="person_amended_by_an_admin"):
        staff.sql("desk", "UPDATE people SET pnc = '2001/0000002Y' WHERE id = 2", seal_sql())
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        staff.sql("desk", "UPDATE people SET surname = 'Other' WHERE id = 2", seal_sql())
    assert before != all_rows() and run("audit", "verify").exit_code == 0


@on_server
def test_the_trail_is_stamped_with_the_servers_day(staff):
    import psycopg

    with pytest.raises(psycopg.errors.IntegrityError, match="stamped_at_another_time"):
        staff.sql("desk", person_sql(), seal_sql(at="2020-01-01T00:00:00"))
    # a session's own time zone does not move the server's day (UTC-167: a week ahead)
    from datetime import datetime, timedelta

    ahead = (datetime.now() + timedelta(days=6)).isoformat(timespec="seconds")
    with pytest.raises(psycopg.errors.IntegrityError, match="stamped_at_another_time"):
        staff.sql("desk", "SET LOCAL timezone = 'UTC-167'", person_sql(at=ahead), seal_sql(at=ahead))


@on_server
@pytest.mark.parametrize("role, statements, refusal", [
    # a correction flag set and left for a coordinator's later transaction
    ("supervisor", ["INSERT INTO correction VALUES (1)"], "flag_left_set"),
    # heroin added to an old incident; a condition added to someone's running contract
    ("desk", ["INSERT INTO incident_substances VALUES (2, 5, 'heroin', 'A', 'heroin')"], "written_with_its_parent"),
    ("desk", ["INSERT INTO referral_conditions (referral_id, position, key, description, due) VALUES "
              "('R-2026-000002', 9, 'pay', 'Pay 1000 pounds', '2027-01-01T00:00:00')"], "written_with_its_parent"),
    # decisions numbered ahead of their identity, to make the next desks' fail
    ("desk", ["INSERT INTO decisions (id, person_id, incident_id, stage, eligible, reasons, config_fingerprint, "
              "taken_at, taken_by) SELECT max(id) + 1, 2, 2, 'record', 1, '[]', 'x', %(at)s, '4471' FROM decisions"],
     "ids_are_issued_in_turn"),
    # a date that is not one (the next desk reading it would stop); a condition met with no date
    ("coordinator", ["UPDATE referrals SET status = 'completed', closed_at = '2026-12-99T99:99:99', outcome_code = 22, "
                     "updated_at = %(at)s, updated_by = '4472' WHERE id = 'R-2026-000001'"], "dates_are_iso"),
    ("coordinator", ["UPDATE referral_conditions SET status = 'met', recorded_at = NULL, recorded_by = '4472' "
                     "WHERE referral_id = 'R-2026-000002' AND key = 'no-reoffend'"], "dates_are_iso"),
    ("coordinator", ["UPDATE referral_conditions SET status = 'met', recorded_at = 'Wed Dec 02 10:00:00 2026', "
                     "recorded_by = '4472' WHERE referral_id = 'R-2026-000002' AND key = 'no-reoffend'"],
     "dates_are_iso"),
    # (the third) a do-nothing update of the parent, then a condition added to a running contract, or heroin
    # and a robbery to an old incident
    ("coordinator", ["UPDATE referrals SET updated_by = '4472' WHERE id = 'R-2026-000002'",
                     "INSERT INTO referral_conditions (referral_id, position, key, description, due) VALUES "
                     "('R-2026-000002', 9, 'curfew', 'Stay home every night', '2027-12-01T00:00:00')"],
     "written_with_its_parent"),
    ("supervisor", ["UPDATE incidents SET void_reason = void_reason WHERE id = 2",
                    "INSERT INTO incident_substances VALUES (2, 5, 'heroin', 'A', 'heroin')"],
     "written_with_its_parent"),
    # a contract completed on its first day, its results dated next year
    ("coordinator", ["UPDATE referral_conditions SET status = 'met', recorded_at = '2099-04-02T00:00:00', "
                     "recorded_by = '4472' WHERE referral_id = 'R-2026-000002'"], "dated_in_the_future"),
    ("coordinator", ["UPDATE referrals SET status = 'completed', closed_at = '9999-12-31T00:00:00', "
                     "outcome_code = 22, updated_at = %(at)s, updated_by = '4472' WHERE id = 'R-2026-000001'"],
     "dated_in_the_future"),
])
def test_what_the_second_adversary_tried_is_refused(staff, role, statements, refusal):
    import psycopg

    before = all_rows()
    with pytest.raises((psycopg.errors.IntegrityError, psycopg.errors.InsufficientPrivilege), match=refusal):
        staff.sql(role, *statements, seal_sql(COLLAR[role]), params={"at": now()})
    assert all_rows() == before


@on_server
def test_a_supervisor_on_shift_alone_corrects_and_approves_with_its_own_sign_in(staff):
    """On a server the supervisor's own login is its approval (on a file, a collar number could be
    anyone's, and a second officer must approve)."""
    assert staff.as_("coordinator", "outcome", "R-2026-000001", "completed").exit_code == 0
    corrected = staff.as_("supervisor", "outcome", "R-2026-000001", "failed", "--supervisor", COLLAR["supervisor"],
                          "--reason", "did not attend: the provider's register")
    assert corrected.exit_code == 0, corrected.stderr
    early = staff.as_("supervisor", "condition", "R-2026-000002", "no-reoffend", "met", "--supervisor",
                      COLLAR["supervisor"], "--reason", "moved out of the force area")
    assert early.exit_code == 0, early.stderr
    # a coordinator may not, naming a supervisor or not
    named = staff.as_("coordinator", "condition", "R-2026-000002", "navigator-meetings", "met", "--supervisor",
                      COLLAR["supervisor"], "--reason", "x")
    assert named.exit_code == 5
    assert run("audit", "verify").exit_code == 0


@on_server
def test_an_approving_supervisor_is_a_supervisor(staff):
    before = all_rows()
    made_up = staff.as_("desk", "record", "--surname", "New", "--forename", "Person", "--dob", "01/01/1991",
                        "--substance", "cannabis", "--co-offence", "theft", "--supervisor", "999")
    assert made_up.exit_code == 5 and "999" in made_up.stderr and "supervisor" in made_up.stderr
    a_desk = staff.as_("coordinator", "outcome", "R-2026-000001", "completed")  # (the setting up)
    assert a_desk.exit_code == 0
    not_one = staff.as_("supervisor", "outcome", "R-2026-000001", "failed", "--supervisor", "4472",
                        "--reason", "did not attend")  # 4472: a coordinator
    assert not_one.exit_code == 5
    assert len(all_rows()) == len(before)


@on_server
def test_the_trail_names_the_login_whatever_officer_was_given(staff):
    refused = staff.as_("desk", "record", "--surname", "New", "--forename", "Person", "--dob", "01/01/1991",
                        "--substance", "cannabis", officer="9999")
    assert refused.exit_code == 5 and "4471" in refused.stderr and "9999" in refused.stderr
    done = staff.as_("desk", "record", "--surname", "New", "--forename", "Person", "--dob", "01/01/1991",
                     "--substance", "cannabis", "--json")  # no --officer: the login's
    assert done.exit_code == 0, done.stderr
    entries = as_json(run("audit", "log", "--json", "--limit", "3"))
    assert {(e["officer"], e["login"]) for e in entries} == {("4471", LOGIN["desk"])}
    assert run("audit", "verify").exit_code == 0


@on_server
def test_a_desk_claiming_another_collar_number_in_raw_sql_is_refused(staff):
    import psycopg

    before = all_rows()
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="officer_not_yours"):
        staff.sql("desk", person_sql(), seal_sql("4472", "record"))
    assert all_rows() == before
    # sealed as itself, a desk's own SQL is in the trail under its login
    staff.sql("desk", person_sql(), seal_sql())
    last = as_json(run("audit", "log", "--json", "--limit", "1"))[-1]
    assert (last["officer"], last["login"], last["operation"]) == ("4471", LOGIN["desk"], "psql")
    assert run("audit", "verify").exit_code == 0


@on_server
def test_a_login_with_no_collar_number_cannot_write(staff):
    before = all_rows()
    result = staff.as_("unmapped", "record", "--surname", "New", "--forename", "Person", "--dob", "01/01/1991",
                       "--substance", "cannabis", officer="4471")
    assert result.exit_code == 5 and "no collar number" in result.stderr
    assert all_rows() == before
    assert staff.as_("unmapped", "check", "P-000002").exit_code == 0  # reading is its desk role's
    stranger = staff.as_("stranger", "check", "P-000002")  # (it may not even connect)
    assert stranger.exit_code == 5 and "no diversion role" in stranger.stderr


@on_server
def test_editing_a_transactions_login_breaks_the_chain(staff):
    staff.as_("desk", "record", "--surname", "New", "--forename", "Person", "--dob", "01/01/1991", "--substance",
              "cannabis")
    tamper("ALTER TABLE audit_transactions DISABLE TRIGGER USER; "
           "UPDATE audit_transactions SET login = 'diversion_test_coordinator' WHERE login IS NOT NULL; "
           "ALTER TABLE audit_transactions ENABLE TRIGGER USER;")
    result = run("audit", "verify")
    assert result.exit_code == 1 and "does not match its hash" in result.stderr


@on_server
def test_whoami_says_who_and_what(staff):
    who = as_json(staff.as_("coordinator", "whoami", "--json"))
    assert (who["login"], who["officer"], who["owner"]) == (LOGIN["coordinator"], "4472", False)
    assert set(who["roles"]) == {"coordinator", "desk"}
    assert "outcome" in who["may_run"] and "void" not in who["may_run"] and "report" not in who["may_run"]
    analyst = as_json(staff.as_("analyst", "whoami", "--json"))
    assert analyst["roles"] == ["analyst"] and "check" not in analyst["may_run"]
    assert as_json(staff.as_("admin", "whoami", "--json"))["roles"] == list(ROLES)


@on_server
def test_granting_and_revoking_roles(staff, server):
    server.execute("DROP ROLE IF EXISTS diversion_test_newcomer")
    server.execute("CREATE ROLE diversion_test_newcomer LOGIN")
    try:
        assert staff.as_("coordinator", "db", "roles", "grant", "diversion_test_newcomer", "desk", "--officer",
                         "5000").exit_code == 5
        bad = [staff.as_("admin", "db", "roles", "grant", "diversion_test_newcomer", "clerk", "--officer", "5000"),
               staff.as_("admin", "db", "roles", "grant", "diversion_test_newcomer", "desk"),
               staff.as_("admin", "db", "roles", "grant", "nobody_here", "desk", "--officer", "5000"),
               staff.as_("admin", "db", "roles", "grant", "diversion_test_newcomer", "desk", "--officer", "4472")]
        assert [r.exit_code for r in bad] == [2, 2, 3, 1], [r.stderr for r in bad]
        granted = staff.as_("admin", "db", "roles", "grant", "diversion_test_newcomer", "desk", "--officer", "5000")
        assert granted.exit_code == 0, granted.stderr
        listing = staff.as_("admin", "db", "roles", "list", "--json")
        # (this server holds other diversion databases: the staffed template, and other tests' copies)
        assert "uses them too" in listing.stderr and staff.database.rsplit("_", 2)[0] in listing.stderr
        listed = as_json(listing)
        assert {"login": "diversion_test_newcomer", "officer": "5000", "roles": ["desk"]} in listed
        revoked = staff.as_("admin", "db", "roles", "revoke", "diversion_test_newcomer")
        assert revoked.exit_code == 0 and "no diversion role" in revoked.stdout
        assert "diversion_test_newcomer" not in {e["login"] for e in
                                                 as_json(staff.as_("admin", "db", "roles", "list", "--json"))}
    finally:
        server.execute("DROP ROLE IF EXISTS diversion_test_newcomer")


@on_server
def test_verify_names_a_right_granted_outside_diversion(staff):
    assert run("audit", "verify").exit_code == 0
    tamper("GRANT INSERT ON audit_entries TO diversion_desk")
    result = run("audit", "verify")
    assert result.exit_code == 1 and "rights granted on audit_entries" in result.stderr


# ---- a file has no roles -------------------------------------------------------------------

@pytest.mark.sqlite_only("a file's one user")
def test_a_file_has_one_user_who_may_do_everything():
    who = as_json(run("whoami", "--json"))
    assert who["engine"] == "sqlite" and who["owner"] and "amend person" in who["may_run"]
    for args in (("db", "roles", "list"), ("db", "roles", "grant", "someone", "desk", "--officer", "1"),
                 ("db", "pin-schemes")):
        result = run(*args)
        assert result.exit_code == 1 and "SQLite file has one user" in result.stderr


# ---- a server database made by the last release -------------------------------------------

@on_server
@pytest.mark.no_database
def test_the_last_releases_server_database_is_upgraded_and_its_trail_still_verifies():
    """pg_dump of a database the last release (schema 11) made and wrote: two people, a diversion,
    an amendment. `db upgrade` (its owner) brings it to the roles' schema, the same a new
    database gets (verify compares them), and every transaction sealed before still checks."""
    from pathlib import Path

    from helpers import db_file, shell

    restored = shell((Path(__file__).parent / "fixtures" / "postgres-release-11.sql").read_text())
    assert restored.returncode == 0, restored.stderr
    before = run("audit", "log", "--json")
    assert before.exit_code == 4 and "db upgrade" in before.stderr  # reading waits for the owner's upgrade
    upgraded = run("db", "upgrade")
    assert upgraded.exit_code == 0 and "upgraded from 11" in upgraded.stdout, upgraded.stderr
    verified = run("audit", "verify", "--json")
    assert verified.exit_code == 0, verified.stderr
    assert as_json(verified)["entries"] == 11
    assert [e["login"] for e in as_json(run("audit", "log", "--json"))] == [None] * 11
    assert run("db", "roles", "init").exit_code == 0
    recorded = run("record", "--surname", "New", "--forename", "Person", "--dob", "01/01/1991", "--substance",
                   "cannabis", "--refer")
    assert recorded.exit_code == 0, recorded.stderr
    assert run("audit", "verify").exit_code == 0
    import psycopg

    with psycopg.connect(str(db_file())) as conn:
        owner = conn.execute("SELECT session_user").fetchone()[0]
    assert as_json(run("audit", "log", "--json"))[-1]["login"] == owner


@on_server
def test_a_change_made_outside_diversion_is_named_with_its_login_and_accepted_so(staff):
    """The DBA edits a row with psql: verify names the change and the login that made it, every
    desk stops, and the admin's acceptance keeps in the trail whose change it was."""
    import psycopg

    from helpers import db_file

    with psycopg.connect(str(db_file())) as conn:
        dba = conn.execute("SELECT session_user").fetchone()[0]
    tamper("UPDATE people SET ethnicity = 'W1' WHERE id = 2")
    verified = run("audit", "verify")
    assert verified.exit_code == 1 and f"by login {dba}" in verified.stderr
    assert staff.as_("desk", "record", "--person", "P-000002", "--substance", "cannabis").exit_code == 4
    accepted = staff.as_("admin", "audit", "accept", "--reason", "ethnicity from the custody record")
    assert accepted.exit_code == 0, accepted.stderr
    last = as_json(run("audit", "log", "--json", "--limit", "1"))[-1]
    assert last["login"] == LOGIN["admin"] and f"made by login {dba}" in last["reason"]
    assert run("audit", "verify").exit_code == 0
