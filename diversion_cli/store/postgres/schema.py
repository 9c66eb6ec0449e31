"""The PostgreSQL schema: the same tables, keys, guards and audit capture as SQLite's
migrations 1-11 (store/migrations.py), written for PostgreSQL in one piece. A
PostgreSQL database starts at the current schema, so it has no migration history
to replay; the next schema change adds a numbered step here and in migrations.py.

What must agree byte for byte with SQLite is generated from the same specs
(migrations.TRAIL, STAMPED): a row's snapshot text (its digest is sealed in the
trail) and the chain texts, so a trail moved from a SQLite file verifies here.
"""

from __future__ import annotations

import re

from diversion_cli.store.migrations import ACTION_CODES, ENTITY_CODES, LATEST, STAMPED, TRAIL

# The server's schema history: it starts at the SQLite schema of its time (11) and then goes
# its own way (each step in UPGRADES), as only a server has logins to tell apart.
FIRST = 11  # SQLite's migrations 1-11, in one piece
VERSION = 12  # 12: identities and roles (a login per officer; the trail names it)
assert FIRST == LATEST, "a SQLite migration needs its PostgreSQL step too"

T = 'text COLLATE "C"'  # byte order, as SQLite compares: ids and ISO dates sort as text

# The functions are STABLE, as what they call is (to_json, convert_to): PostgreSQL inlines a SQL
# function into the query only if it is declared no stricter than its body, and the chain check
# runs one per trail entry (declared IMMUTABLE, it ran 24 times slower).
FUNCTIONS = r"""
-- a value as SQLite's json_object/json_array writes it (strings escaped alike, NULL as null)
CREATE FUNCTION diversion_json(value anyelement) RETURNS text LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT coalesce(to_json(value)::text, 'null') $$;

-- a row snapshot's digest (store.digest): SHA-256 of salt || UTF-8 text, cut to 128 bits
CREATE FUNCTION diversion_digest(salt bytea, snapshot text) RETURNS bytea LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT substring(sha256(coalesce(salt, ''::bytea) || convert_to(snapshot, 'UTF8')) FROM 1 FOR 16) $$;

-- one trail entry and one transaction as the chain hashes them (audit.ENTRY_TEXT): SQLite's json_array
-- text, with hex() of NULL as an empty string, as SQLite writes it
CREATE FUNCTION diversion_entry_text(seq integer, action text, entity text, entity_id text, person_id integer,
                                     digest bytea, old_digest bytea) RETURNS text LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT '[' || seq || ',' || diversion_json(action) || ',' || diversion_json(entity) || ','
          || diversion_json(entity_id) || ',' || diversion_json(person_id) || ',"'
          || coalesce(upper(encode(digest, 'hex')), '') || '","' || coalesce(upper(encode(old_digest, 'hex')), '')
          || '"]' $$;
-- (a transaction sealed on the server also names the login that made it; one moved from a SQLite
-- file has none, and its text is the file's)
CREATE FUNCTION diversion_transaction_text(last_seq integer, at text, officer text, operation text, reason text,
                                           login text) RETURNS text LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT '[' || last_seq || ',' || diversion_json(at) || ',' || diversion_json(officer) || ','
          || diversion_json(operation) || ',' || diversion_json(reason)
          || CASE WHEN login IS NULL THEN '' ELSE ',' || diversion_json(login) END || ']' $$;

-- SQLite's strftime('%Y-%m-%dT%H:%M:%S', moment, '+N months'), the re-offending window's end: the
-- month moves on and the day carries over, so 31 August + 6 months is 3 March (PostgreSQL's own
-- interval arithmetic would say 28 February); one definition on both engines (README)
CREATE FUNCTION diversion_add_months(moment text, months integer) RETURNS text LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT to_char(date_trunc('month', moment::timestamp) + make_interval(months => months)
                     + (moment::timestamp - date_trunc('month', moment::timestamp)), 'YYYY-MM-DD"T"HH24:MI:SS') $$;

-- a refusal the store maps to a one-line message (store.refusal_for), as an integrity error
CREATE FUNCTION diversion_refuse() RETURNS trigger LANGUAGE plpgsql
AS $$ BEGIN RAISE EXCEPTION '%', TG_ARGV[0] USING ERRCODE = 'integrity_constraint_violation'; END $$;
"""


def _snapshot(spec: str, row: str) -> str:
    """SQLite's json_object(...) snapshot as PostgreSQL text concatenation, for row NEW or OLD."""
    pairs = re.findall(r"'(\w+)', X\.(\w+)", spec)
    parts = [f"'{'{' if i == 0 else ','}\"{key}\":' || diversion_json({row}.{column})"
             for i, (key, column) in enumerate(pairs)]
    return "(" + " || ".join(parts) + " || '}')"


def _changed_only(spec: str) -> str:
    """migrations._changed_only: the OLD snapshot without the columns the update left alone."""
    pairs = re.findall(r"'(\w+)', X\.(\w+)", spec)
    kept = ", ".join(f"CASE WHEN OLD.{c} IS DISTINCT FROM NEW.{c} THEN '\"{k}\":' || diversion_json(OLD.{c}) END"
                     for k, c in pairs)
    return f"('{{' || concat_ws(',', {kept}) || '}}')"


def snapshot(table: str, alias: str = "t") -> str:
    """The snapshot expression of `table` for a row alias (audit.py reads rows with it)."""
    return _snapshot(TRAIL[table][3], alias)


def _audit_function(table: str) -> str:
    code, ident, person, spec = TRAIL[table]

    def row(expr: str, r: str) -> str:
        return expr.replace("X.", f"{r}.")

    new, old = _snapshot(spec, "NEW"), _snapshot(spec, "OLD")
    columns = "INSERT INTO audit_pending (action, entity, entity_id, person_id, before, old, new)"
    return f"""
CREATE FUNCTION audit_{table}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NOT EXISTS (SELECT 1 FROM bulk_load) THEN
            {columns}
            VALUES ('{ACTION_CODES['insert']}', '{code}', {row(ident, 'NEW')}, {row(person, 'NEW')}, NULL, NULL, {new});
        END IF;
    ELSIF TG_OP = 'UPDATE' THEN
        {columns}
        VALUES ('{ACTION_CODES['update']}', '{code}', {row(ident, 'NEW')}, {row(person, 'NEW')}, {old},
                {_changed_only(spec)}, {new});
    ELSE
        {columns}
        VALUES ('{ACTION_CODES['delete']}', '{code}', {row(ident, 'OLD')}, {row(person, 'OLD')}, {old}, {old}, NULL);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER audit_{table} AFTER INSERT OR UPDATE OR DELETE ON {table}
FOR EACH ROW EXECUTE FUNCTION audit_{table}();
"""


def _months(*dates: str) -> str:
    return "ARRAY[" + ", ".join(f"substr({d}, 1, 7)" for d in dates) + "]"


def _stamp_function(table: str) -> str:
    """migrations._stamp_trigger: count a change in the months of the dates it touches."""
    branches = []
    for op in ("insert", "update", "delete"):
        dates = STAMPED.get((table, op))
        if dates is None:
            continue
        guard = " AND NOT EXISTS (SELECT 1 FROM bulk_load)" if op == "insert" else ""
        branches.append(f"TG_OP = '{op.upper()}'{guard} THEN\n        "
                        f"PERFORM diversion_count_change('month_changes', {_months(*dates)});")
    body = "IF " + "\n    ELSIF ".join(branches) + "\n    END IF;"
    return f"""
CREATE FUNCTION changes_{table}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {body}
    RETURN NULL;
END $$;
CREATE TRIGGER changes_{table} AFTER INSERT OR UPDATE OR DELETE ON {table}
FOR EACH ROW EXECUTE FUNCTION changes_{table}();
"""


def _only_up(table: str) -> str:
    return f"""
CREATE TRIGGER {table}_counted BEFORE INSERT ON {table} FOR EACH ROW
WHEN (NEW.changes < 1 OR NEW.month !~ '^[0-9]{{4}}-[0-9]{{2}}$')
EXECUTE FUNCTION diversion_refuse('change_counts_only_go_up');
CREATE TRIGGER {table}_only_up BEFORE UPDATE ON {table} FOR EACH ROW
WHEN (NEW.changes < OLD.changes OR NEW.month IS DISTINCT FROM OLD.month)
EXECUTE FUNCTION diversion_refuse('change_counts_only_go_up');
CREATE TRIGGER {table}_kept BEFORE DELETE ON {table} FOR EACH ROW
EXECUTE FUNCTION diversion_refuse('change_counts_only_go_up');
"""


TABLES = f"""
CREATE TABLE migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at text NOT NULL);

CREATE TABLE people (
    id integer PRIMARY KEY,
    surname {T} NOT NULL CHECK (length(surname) > 0),
    forenames {T} NOT NULL CHECK (length(forenames) > 0),
    dob {T} NOT NULL CHECK (dob ~ '^[12][0-9]{{3}}-[01][0-9]-[0-3][0-9]$'),
    pnc {T} UNIQUE CHECK (pnc ~ '^[12][0-9]{{3}}/[0-9]{{7}}[A-Z]$'),
    gender {T} CHECK (gender IN ('M', 'F', 'X', 'U')),
    ethnicity {T},
    surname_norm {T} NOT NULL,
    forenames_norm {T} NOT NULL,
    created_at {T} NOT NULL,
    created_by {T} NOT NULL
);
CREATE INDEX people_dob ON people (dob, surname_norm);
CREATE INDEX people_profile ON people (id, gender, ethnicity);
CREATE INDEX people_names ON people (surname_norm, forenames_norm);

CREATE TABLE incidents (
    id integer PRIMARY KEY,
    person_id integer NOT NULL REFERENCES people (id),
    occurred_at {T} NOT NULL,
    age integer NOT NULL CHECK (age BETWEEN 10 AND 110),
    location {T},
    quantity {T},
    supply_suspected integer NOT NULL DEFAULT 0 CHECK (supply_suspected IN (0, 1)),
    recorded_at {T} NOT NULL,
    recorded_by {T} NOT NULL,
    voided_at {T},
    void_reason {T}
);
CREATE INDEX incidents_occurred ON incidents (occurred_at, voided_at, person_id, age);
CREATE INDEX incidents_person ON incidents (person_id, occurred_at, voided_at);

CREATE TABLE incident_substances (
    incident_id integer NOT NULL REFERENCES incidents (id),
    position integer NOT NULL,
    substance {T} NOT NULL,
    drug_class {T} CHECK (drug_class IN ('A', 'B', 'C')),     -- NULL: awaiting analysis
    entered_as {T} NOT NULL,
    PRIMARY KEY (incident_id, position)
);

CREATE TABLE incident_co_offences (
    incident_id integer NOT NULL REFERENCES incidents (id),
    position integer NOT NULL,
    description {T} NOT NULL,
    PRIMARY KEY (incident_id, position)
);

CREATE TABLE decisions (
    id integer GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    person_id integer NOT NULL REFERENCES people (id),
    incident_id integer REFERENCES incidents (id),
    stage {T} NOT NULL CHECK (stage IN ('record', 'refer')),
    eligible integer NOT NULL CHECK (eligible IN (0, 1)),
    scheme {T},
    reasons {T} NOT NULL,
    config_fingerprint {T} NOT NULL,
    taken_at {T} NOT NULL,
    taken_by {T} NOT NULL
);
CREATE INDEX decisions_incident ON decisions (incident_id, stage, id, eligible, scheme);
CREATE INDEX decisions_person ON decisions (person_id);

CREATE TABLE referrals (
    id {T} PRIMARY KEY CHECK (id ~ '^R-[0-9]{{4}}-[0-9]{{6}}'),
    person_id integer NOT NULL REFERENCES people (id),
    incident_id integer NOT NULL REFERENCES incidents (id),
    scheme {T} NOT NULL,
    pathway {T} NOT NULL CHECK (pathway IN ('workshop', 'contract')),
    one_shot_group {T} NOT NULL,
    lookback_since {T},
    status {T} NOT NULL CHECK (status IN ('offered', 'accepted', 'declined', 'completed', 'failed', 'voided')),
    provider {T} NOT NULL,
    appointment {T},
    deadline {T} NOT NULL,
    offered_at {T} NOT NULL,
    offered_by {T} NOT NULL,
    diverted_at {T},
    closed_at {T},
    outcome_code integer,
    reason {T},
    updated_at {T} NOT NULL,
    updated_by {T} NOT NULL,
    CHECK (status NOT IN ('accepted', 'completed', 'failed') OR diverted_at IS NOT NULL),
    CHECK (status NOT IN ('completed', 'failed', 'declined', 'voided') OR closed_at IS NOT NULL)
);
CREATE UNIQUE INDEX referrals_one_open ON referrals (person_id) WHERE status IN ('offered', 'accepted');
CREATE UNIQUE INDEX referrals_one_per_incident ON referrals (incident_id) WHERE status NOT IN ('voided', 'declined');
CREATE INDEX referrals_person ON referrals (person_id, status);
CREATE INDEX referrals_queue ON referrals (status, deadline);
CREATE INDEX referrals_offered ON referrals (offered_at, status);
CREATE INDEX referrals_incident ON referrals (incident_id, offered_at, status, scheme, outcome_code);
CREATE INDEX referrals_diverted ON referrals (diverted_at, status, person_id);
CREATE INDEX referrals_closed ON referrals (closed_at, status);

CREATE TABLE referral_conditions (
    referral_id {T} NOT NULL REFERENCES referrals (id),
    position integer NOT NULL,
    key {T} NOT NULL,
    description {T} NOT NULL,
    due {T} NOT NULL,
    status {T} NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'met', 'breached')),
    recorded_at {T},
    recorded_by {T},
    note {T},
    PRIMARY KEY (referral_id, position)
);

CREATE TABLE erasures (
    person_id integer PRIMARY KEY,
    erased_at {T} NOT NULL,
    erased_by {T} NOT NULL,
    reason {T} NOT NULL
);
CREATE TABLE bulk_load (active integer PRIMARY KEY CHECK (active = 1));
CREATE TABLE correction (active integer PRIMARY KEY CHECK (active = 1));
CREATE TABLE issued_ids (kind {T} PRIMARY KEY, last integer NOT NULL);
CREATE TABLE month_changes (month {T} PRIMARY KEY, changes integer NOT NULL);
CREATE TABLE diversion_changes (month {T} PRIMARY KEY, changes integer NOT NULL);
CREATE TABLE report_cache (key {T} PRIMARY KEY, stamp integer NOT NULL, value {T} NOT NULL);
-- who each login is: the collar number the trail stamps its writes with (`diversion db roles
-- grant`; an analyst, who writes no record, may have none)
-- each scheme's one-shot scope as the force's config sets it, pinned on the server by an admin
-- (`diversion db pin-schemes`): a referral must carry its scheme's, so a login writing SQL by hand
-- cannot give one a scope or window of its own
CREATE TABLE one_shot_scopes (
    scheme {T} PRIMARY KEY,
    one_shot_group {T} NOT NULL,
    lookback_years integer NOT NULL CHECK (lookback_years >= 0),
    pinned_at {T} NOT NULL,
    pinned_by {T} NOT NULL
);
CREATE TABLE officer_logins (
    login {T} PRIMARY KEY,
    officer {T} UNIQUE,
    granted_at {T} NOT NULL,
    granted_by {T} NOT NULL
);

CREATE TABLE audit_transactions (
    last_seq integer PRIMARY KEY,
    at {T} NOT NULL,
    officer {T} NOT NULL,
    operation {T} NOT NULL,
    reason {T},
    hash bytea NOT NULL,
    login {T}     -- the server login that made it (none: moved from a SQLite file)
);
CREATE TABLE audit_entries (
    seq integer PRIMARY KEY CHECK (seq > 0),     -- numbered by audit.py, with no gap
    action {T} NOT NULL CHECK (action IN ('i', 'u', 'd', 'b')),
    entity {T} NOT NULL,
    entity_id {T} NOT NULL,
    person_id integer,
    digest bytea,
    old {T},
    old_digest bytea
);
CREATE INDEX audit_entries_entity ON audit_entries (entity, entity_id, seq);
CREATE INDEX audit_entries_person ON audit_entries (person_id);
CREATE INDEX audit_entries_deleted ON audit_entries (entity, entity_id) WHERE action = 'd';
CREATE TABLE audit_salts (person_id integer PRIMARY KEY, salt bytea NOT NULL);
CREATE TABLE audit_conversions (
    old_last_entry integer PRIMARY KEY,
    old_head_hash {T} NOT NULL,
    converted_at {T} NOT NULL
);
CREATE TABLE audit_pending (
    id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    action {T} NOT NULL,
    entity {T} NOT NULL,
    entity_id {T} NOT NULL,
    person_id integer,
    before {T},
    old {T},
    new {T},
    login {T} DEFAULT session_user     -- who made it (a trigger writes it, as the owner: the session's login)
);
CREATE INDEX audit_pending_row ON audit_pending (entity, entity_id);
"""

assert ENTITY_CODES["incident"] == "i" and ENTITY_CODES["referral"] == "r"  # (GUARDS' written_with_parent)
GUARDS = """
-- whether a login owns the schema (the force's DBA, who may do anything here, and whose every act
-- verify checks): the owner of its tables, or a member of that role
CREATE FUNCTION diversion_owns(login name) RETURNS boolean LANGUAGE sql STABLE
AS $$ SELECT pg_has_role(login, (SELECT c.relowner FROM pg_class c WHERE c.oid = 'migrations'::regclass), 'USAGE') $$;
-- whether this session writes history as it was, held to none of the rules for an officer's login: the
-- schema's owner (whose every act verify checks), or an import (the admin's bulk load)
CREATE FUNCTION diversion_writes_history() RETURNS boolean LANGUAGE sql STABLE
AS $$ SELECT diversion_owns(session_user) OR EXISTS (SELECT 1 FROM bulk_load) $$;
-- whether this session's login may act as a diversion role (roles.py), or owns the schema
CREATE FUNCTION diversion_may(role text) RETURNS boolean LANGUAGE sql STABLE
AS $$ SELECT diversion_owns(session_user) OR coalesce((SELECT pg_has_role(session_user, r.oid, 'USAGE')
                                                       FROM pg_roles r WHERE r.rolname = 'diversion_' || role), false) $$;

-- whether a text is a moment as diversion writes one (ISO, to the second), and a real one
CREATE FUNCTION diversion_iso(moment text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    RETURN moment ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}$' AND moment::timestamp IS NOT NULL;
EXCEPTION WHEN others THEN
    RETURN false;
END $$;
-- whether it is today, give or take a day (desks' clocks and time zones), by the server's clock in UTC
-- (a session's own time zone setting cannot move it)
CREATE FUNCTION diversion_today(moment text) RETURNS boolean LANGUAGE sql STABLE
AS $$ SELECT CASE WHEN diversion_iso(moment)
                  THEN abs(extract(epoch FROM moment::timestamp - (now() AT TIME ZONE 'UTC'))) <= 86400
                  ELSE false END $$;

-- What an officer's login writes is dated as diversion dates it (ISO moments: a date that is not one
-- stops the next desk that reads it), and new rows are stamped with its own collar number and today
-- (TG_ARGV[1]): a login writing SQL by hand cannot write in another officer's name, or offer a referral
-- in 2099 to move its one-shot window. (diversion_writes_history: the owner, an import.)
CREATE FUNCTION diversion_dated() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    written jsonb := to_jsonb(NEW);
    name text;
BEGIN
    IF diversion_writes_history() THEN
        RETURN NEW;
    END IF;
    FOREACH name IN ARRAY TG_ARGV LOOP
        IF written ->> name IS NOT NULL AND NOT diversion_iso(written ->> name) THEN
            RAISE EXCEPTION 'dates_are_iso' USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        -- what happened (an acceptance, a closing, a condition's result, a void) happened by now: a
        -- contract cannot be completed on its first day by dating its results next year
        IF TG_OP = 'UPDATE' AND written ->> name IS DISTINCT FROM to_jsonb(OLD) ->> name
           AND (written ->> name)::timestamp > (now() AT TIME ZONE 'UTC') + interval '1 day' THEN
            RAISE EXCEPTION 'dated_in_the_future' USING ERRCODE = 'integrity_constraint_violation';
        END IF;
    END LOOP;
    RETURN NEW;
END $$;
CREATE TRIGGER incidents_dated BEFORE INSERT OR UPDATE ON incidents FOR EACH ROW
EXECUTE FUNCTION diversion_dated('occurred_at', 'recorded_at', 'voided_at');
CREATE TRIGGER decisions_dated BEFORE INSERT ON decisions FOR EACH ROW EXECUTE FUNCTION diversion_dated('taken_at');
CREATE TRIGGER referrals_dated BEFORE INSERT OR UPDATE ON referrals FOR EACH ROW
EXECUTE FUNCTION diversion_dated('offered_at', 'appointment', 'deadline', 'diverted_at', 'closed_at', 'updated_at');
CREATE TRIGGER referral_conditions_dated BEFORE INSERT OR UPDATE ON referral_conditions FOR EACH ROW
EXECUTE FUNCTION diversion_dated('due', 'recorded_at');

CREATE FUNCTION diversion_stamped() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    written jsonb := to_jsonb(NEW);
    mine text;
BEGIN
    IF diversion_writes_history() THEN
        RETURN NEW;
    END IF;
    SELECT o.officer INTO mine FROM officer_logins o WHERE o.login = session_user;
    IF written ->> TG_ARGV[0] IS DISTINCT FROM mine THEN
        RAISE EXCEPTION 'stamped_with_another_officer' USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF TG_NARGS > 1 AND NOT diversion_today(written ->> TG_ARGV[1]) THEN
        RAISE EXCEPTION 'stamped_at_another_time' USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER people_stamped BEFORE INSERT ON people FOR EACH ROW
EXECUTE FUNCTION diversion_stamped('created_by', 'created_at');
CREATE TRIGGER incidents_stamped BEFORE INSERT ON incidents FOR EACH ROW
EXECUTE FUNCTION diversion_stamped('recorded_by', 'recorded_at');
CREATE TRIGGER decisions_stamped BEFORE INSERT ON decisions FOR EACH ROW
EXECUTE FUNCTION diversion_stamped('taken_by', 'taken_at');
CREATE TRIGGER referrals_stamped BEFORE INSERT ON referrals FOR EACH ROW
EXECUTE FUNCTION diversion_stamped('offered_by', 'offered_at');
-- (an outcome or a condition's result is written as of when it happened: `--when` may be days ago)
CREATE TRIGGER referrals_update_stamped BEFORE UPDATE ON referrals FOR EACH ROW
EXECUTE FUNCTION diversion_stamped('updated_by');
CREATE TRIGGER referral_conditions_stamped BEFORE UPDATE ON referral_conditions FOR EACH ROW
EXECUTE FUNCTION diversion_stamped('recorded_by');

-- ids are issued in turn (the next after every one issued): a login choosing its own cannot push them
-- past what the next desk can issue (2147483647 would stop every new person for good)
CREATE FUNCTION diversion_next_id() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    wanted text;
    given integer;
    issued integer;
    highest integer;
BEGIN
    IF diversion_writes_history() THEN
        RETURN NEW;
    END IF;
    IF TG_TABLE_NAME = 'decisions' THEN  -- numbered by its identity: the number it was just given
        BEGIN
            IF NEW.id = currval(pg_get_serial_sequence('decisions', 'id')) THEN
                RETURN NEW;
            END IF;
        EXCEPTION WHEN object_not_in_prerequisite_state THEN  -- (no number given in this session)
        END;
        RAISE EXCEPTION 'ids_are_issued_in_turn' USING ERRCODE = 'integrity_constraint_violation';
    ELSIF TG_TABLE_NAME = 'referrals' THEN
        wanted := 'R-' || substr(NEW.offered_at, 1, 4);
        IF NEW.id !~ '^R-[0-9]{4}-[0-9]{6}$' OR substr(NEW.id, 1, 6) != wanted THEN
            RAISE EXCEPTION 'ids_are_issued_in_turn' USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        given := CAST(substr(NEW.id, 8) AS integer);
        SELECT max(CAST(substr(r.id, 8) AS integer)) INTO highest FROM referrals r
        WHERE r.id >= wanted || '-' AND r.id < wanted || '-:';
    ELSE
        wanted := CASE TG_TABLE_NAME WHEN 'people' THEN 'person' ELSE 'incident' END;
        given := NEW.id;
        EXECUTE format('SELECT max(id) FROM %I', TG_TABLE_NAME) INTO highest;
    END IF;
    SELECT i.last INTO issued FROM issued_ids i WHERE i.kind = wanted;
    IF given != greatest(coalesce(issued, 0), coalesce(highest, 0)) + 1 THEN
        RAISE EXCEPTION 'ids_are_issued_in_turn' USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER people_next_id BEFORE INSERT ON people FOR EACH ROW EXECUTE FUNCTION diversion_next_id();
CREATE TRIGGER incidents_next_id BEFORE INSERT ON incidents FOR EACH ROW EXECUTE FUNCTION diversion_next_id();
CREATE TRIGGER referrals_next_id BEFORE INSERT ON referrals FOR EACH ROW EXECUTE FUNCTION diversion_next_id();
CREATE TRIGGER decisions_next_id BEFORE INSERT ON decisions FOR EACH ROW EXECUTE FUNCTION diversion_next_id();

-- an incident's substances and other offences, and a referral's conditions, are written with it (its
-- insert waits in this transaction's changes to seal) or by an admin's amendment: a desk cannot add
-- heroin to an old incident, or a coordinator a condition to someone's running contract
-- (entity codes: migrations.ENTITY_CODES)
CREATE FUNCTION diversion_written_with_parent() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    parent_entity text := CASE TG_TABLE_NAME WHEN 'referral_conditions' THEN 'r' ELSE 'i' END;
    parent_id text := to_jsonb(NEW) ->> CASE TG_TABLE_NAME WHEN 'referral_conditions' THEN 'referral_id'
                                                              ELSE 'incident_id' END;
BEGIN
    IF diversion_may('admin') OR EXISTS (SELECT 1 FROM bulk_load) THEN
        RETURN NEW;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM audit_pending p
                   WHERE p.action = 'i' AND p.entity = parent_entity AND p.entity_id = parent_id) THEN
        RAISE EXCEPTION 'written_with_its_parent' USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER incident_substances_with_parent BEFORE INSERT ON incident_substances FOR EACH ROW
EXECUTE FUNCTION diversion_written_with_parent();
CREATE TRIGGER incident_co_offences_with_parent BEFORE INSERT ON incident_co_offences FOR EACH ROW
EXECUTE FUNCTION diversion_written_with_parent();
CREATE TRIGGER referral_conditions_with_parent BEFORE INSERT ON referral_conditions FOR EACH ROW
EXECUTE FUNCTION diversion_written_with_parent();

-- the import's and the correction's flags live only inside the transaction that sets them: left set,
-- the one would switch the trail's capture off and the other let a coordinator rewrite a closed case
CREATE FUNCTION diversion_flag_cleared() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT diversion_owns(session_user) AND (
            (TG_TABLE_NAME = 'bulk_load' AND EXISTS (SELECT 1 FROM bulk_load))
            OR (TG_TABLE_NAME = 'correction' AND EXISTS (SELECT 1 FROM correction))) THEN
        RAISE EXCEPTION 'flag_left_set' USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER bulk_load_cleared AFTER INSERT ON bulk_load DEFERRABLE INITIALLY DEFERRED
FOR EACH ROW EXECUTE FUNCTION diversion_flag_cleared();
CREATE CONSTRAINT TRIGGER correction_cleared AFTER INSERT ON correction DEFERRABLE INITIALLY DEFERRED
FOR EACH ROW EXECUTE FUNCTION diversion_flag_cleared();

-- A person's recorded details are changed only by an admin's amendment: a later arrest may fill in
-- what is missing (PNC ID, gender, ethnicity), never overwrite it
CREATE FUNCTION people_gaps_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT diversion_may('admin') AND ((OLD.pnc IS NOT NULL AND NEW.pnc IS DISTINCT FROM OLD.pnc)
            OR (OLD.gender IS NOT NULL AND NEW.gender IS DISTINCT FROM OLD.gender)
            OR (OLD.ethnicity IS NOT NULL AND NEW.ethnicity IS DISTINCT FROM OLD.ethnicity)) THEN
        RAISE EXCEPTION 'person_amended_by_an_admin' USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER people_gaps_only BEFORE UPDATE ON people FOR EACH ROW EXECUTE FUNCTION people_gaps_only();

-- A referral's outcome, as a coordinator's login may write it: a diversion begins when an offer is
-- accepted (never before the offer), a case closes once, and what is closed stays so but in a
-- supervisor's correction; a contract completes when every condition is met; voiding one (which
-- gives the one shot back) is a supervisor's (roles.py)
CREATE FUNCTION referrals_outcome() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    correcting boolean := EXISTS (SELECT 1 FROM correction);
BEGIN
    IF diversion_owns(session_user) THEN
        RETURN NEW;
    END IF;
    IF (OLD.status NOT IN ('offered', 'accepted') AND NOT correcting)
       OR (NEW.diverted_at IS DISTINCT FROM OLD.diverted_at
           AND NOT (OLD.status = 'offered' AND NEW.status = 'accepted' AND NEW.diverted_at >= NEW.offered_at))
       OR (NEW.closed_at IS DISTINCT FROM OLD.closed_at AND NOT correcting
           AND NOT (OLD.status IN ('offered', 'accepted') AND NEW.status NOT IN ('offered', 'accepted')
                    AND NEW.closed_at >= NEW.offered_at))
       OR (NEW.outcome_code IS DISTINCT FROM OLD.outcome_code AND NOT correcting
           AND NOT (OLD.status IN ('offered', 'accepted') AND NEW.status NOT IN ('offered', 'accepted'))) THEN
        RAISE EXCEPTION 'referral_outcome_is_kept' USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF NEW.status = 'voided' AND OLD.status != 'voided' AND NOT diversion_may('supervisor') THEN
        RAISE EXCEPTION 'voided_by_a_supervisor' USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NEW.status = 'completed' AND OLD.status != 'completed' AND EXISTS (
            SELECT 1 FROM referral_conditions c WHERE c.referral_id = NEW.id AND c.status != 'met') THEN
        RAISE EXCEPTION 'conditions_not_met' USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER referrals_outcome BEFORE UPDATE ON referrals FOR EACH ROW EXECUTE FUNCTION referrals_outcome();

-- a condition that runs to the end of the contract (due with it) is met before its due date only by
-- a supervisor's early completion (operations.record_condition)
CREATE FUNCTION referral_conditions_early() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF diversion_owns(session_user) THEN
        RETURN NEW;
    END IF;
    IF NEW.status != 'pending' AND NEW.recorded_at IS NULL THEN  -- (a result is dated: referral_conditions_dated)
        RAISE EXCEPTION 'dates_are_iso' USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF NEW.status = 'met' AND OLD.status IS DISTINCT FROM 'met' AND NEW.recorded_at::date < NEW.due::date
       AND NEW.due = (SELECT r.deadline FROM referrals r WHERE r.id = NEW.referral_id)
       AND NOT diversion_may('supervisor') THEN
        RAISE EXCEPTION 'early_completion_by_a_supervisor' USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER referral_conditions_early BEFORE UPDATE ON referral_conditions FOR EACH ROW
EXECUTE FUNCTION referral_conditions_early();

-- the one-shot rule: no new referral for a person already diverted in the same scope
-- within the look-back window (migration 1)
CREATE FUNCTION referrals_one_shot() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    scope record;
BEGIN
    -- the scope and window the referral is checked in are its scheme's, as pinned (the schema's
    -- owner, the DBA, may refer under a scheme not pinned: a server not yet given its roles)
    -- a referral is offered first: only an import (the admin's bulk load) brings one in closed (or the
    -- schema's owner, who may write anything, and whose every act verify checks)
    IF NEW.status != 'offered' AND NOT EXISTS (SELECT 1 FROM bulk_load) AND NOT diversion_owns(session_user) THEN
        RAISE EXCEPTION 'referral_starts_offered' USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    SELECT s.one_shot_group, s.lookback_years INTO scope FROM one_shot_scopes s WHERE s.scheme = NEW.scheme;
    IF FOUND THEN
        IF NEW.one_shot_group IS DISTINCT FROM scope.one_shot_group
           OR (scope.lookback_years = 0) IS DISTINCT FROM (NEW.lookback_since IS NULL)
           OR NEW.lookback_since > to_char(NEW.offered_at::timestamp - make_interval(years => scope.lookback_years),
                                           'YYYY-MM-DD"T"HH24:MI:SS') THEN
            RAISE EXCEPTION 'one_shot_scope_not_pinned' USING ERRCODE = 'integrity_constraint_violation';
        END IF;
    ELSIF NOT diversion_owns(session_user) THEN
        RAISE EXCEPTION 'scheme_not_pinned' USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF EXISTS (
        SELECT 1 FROM referrals AS earlier
        WHERE earlier.person_id = NEW.person_id
          AND earlier.status IN ('accepted', 'completed', 'failed')
          AND (NEW.one_shot_group = '*' OR earlier.one_shot_group = NEW.one_shot_group)
          AND (NEW.lookback_since IS NULL OR coalesce(earlier.diverted_at, earlier.offered_at) >= NEW.lookback_since))
    THEN
        RAISE EXCEPTION 'one_shot_used' USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF (SELECT voided_at FROM incidents WHERE id = NEW.incident_id) IS NOT NULL THEN
        RAISE EXCEPTION 'incident_void' USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER referrals_one_shot BEFORE INSERT ON referrals FOR EACH ROW EXECUTE FUNCTION referrals_one_shot();

-- a contract's condition starts pending (its result is recorded later, by a coordinator), but in an import
CREATE FUNCTION referral_conditions_start_pending() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM bulk_load) AND NOT diversion_owns(session_user) THEN
        RAISE EXCEPTION 'condition_starts_pending' USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER referral_conditions_start_pending BEFORE INSERT ON referral_conditions FOR EACH ROW
WHEN (NEW.status != 'pending') EXECUTE FUNCTION referral_conditions_start_pending();

-- only the legal status transitions; a supervisor's correction (migration 7) a few more
CREATE FUNCTION referrals_transitions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT (
           (OLD.status = 'offered' AND NEW.status IN ('accepted', 'declined', 'voided'))
        OR (OLD.status = 'accepted' AND NEW.status IN ('completed', 'failed', 'voided'))
        OR (EXISTS (SELECT 1 FROM correction) AND (
               (OLD.status IN ('completed', 'failed') AND NEW.status IN ('completed', 'failed'))
            OR (OLD.status IN ('completed', 'failed', 'declined') AND NEW.status = 'voided'))))
    THEN
        RAISE EXCEPTION 'illegal_transition' USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER referrals_transitions BEFORE UPDATE OF status ON referrals FOR EACH ROW
WHEN (NEW.status IS DISTINCT FROM OLD.status) EXECUTE FUNCTION referrals_transitions();

-- decisions are never changed, and removed only with the person in an erasure
CREATE TRIGGER decisions_immutable BEFORE UPDATE ON decisions FOR EACH ROW
EXECUTE FUNCTION diversion_refuse('decisions_are_immutable');
-- (and an audit salt is kept until its person's erasure)
CREATE FUNCTION diversion_kept_unless_erased() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM erasures e WHERE e.person_id = OLD.person_id) THEN
        RAISE EXCEPTION '%', TG_ARGV[0] USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN OLD;
END $$;
CREATE TRIGGER decisions_kept BEFORE DELETE ON decisions FOR EACH ROW
EXECUTE FUNCTION diversion_kept_unless_erased('decisions_are_immutable');

-- ids are never issued twice (migration 8)
CREATE FUNCTION diversion_issued(kind text, n integer) RETURNS void LANGUAGE sql AS $$
    INSERT INTO issued_ids (kind, last) VALUES (kind, n)
    ON CONFLICT (kind) DO UPDATE SET last = greatest(issued_ids.last, excluded.last)
$$;
CREATE FUNCTION issued_people() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM bulk_load) THEN
        PERFORM diversion_issued('person', NEW.id);
        INSERT INTO audit_salts (person_id, salt) VALUES (NEW.id, uuid_send(gen_random_uuid()));
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER issued_people AFTER INSERT ON people FOR EACH ROW EXECUTE FUNCTION issued_people();
-- an incident's id counts as 'incident'; a referral's R-YYYY-NNNNNN as 'R-YYYY'
CREATE FUNCTION issued_ids_of() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM bulk_load) THEN
        IF TG_TABLE_NAME = 'referrals' THEN
            PERFORM diversion_issued(substr(NEW.id, 1, 6), CAST(substr(NEW.id, 8) AS integer));
        ELSE
            PERFORM diversion_issued('incident', NEW.id);
        END IF;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER issued_incidents AFTER INSERT ON incidents FOR EACH ROW EXECUTE FUNCTION issued_ids_of();
CREATE TRIGGER issued_referrals AFTER INSERT ON referrals FOR EACH ROW EXECUTE FUNCTION issued_ids_of();
CREATE TRIGGER issued_ids_only_up BEFORE UPDATE ON issued_ids FOR EACH ROW
WHEN (NEW.last < OLD.last OR NEW.kind IS DISTINCT FROM OLD.kind)
EXECUTE FUNCTION diversion_refuse('issued_ids_only_go_up');
CREATE TRIGGER issued_ids_kept BEFORE DELETE ON issued_ids FOR EACH ROW
EXECUTE FUNCTION diversion_refuse('issued_ids_only_go_up');

-- change counts for the report cache (migrations 6 and 10)
CREATE FUNCTION diversion_count_change(counted text, months text[]) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF counted = 'month_changes' THEN
        INSERT INTO month_changes (month, changes) SELECT DISTINCT m, 1 FROM unnest(months) AS m WHERE m IS NOT NULL
        ON CONFLICT (month) DO UPDATE SET changes = month_changes.changes + 1;
    ELSE
        INSERT INTO diversion_changes (month, changes) SELECT DISTINCT m, 1 FROM unnest(months) AS m
        WHERE m IS NOT NULL ON CONFLICT (month) DO UPDATE SET changes = diversion_changes.changes + 1;
    END IF;
END $$;
CREATE FUNCTION changes_people() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO month_changes (month, changes)
    SELECT DISTINCT substr(occurred_at, 1, 7), 1 FROM incidents WHERE person_id = NEW.id
    ON CONFLICT (month) DO UPDATE SET changes = month_changes.changes + 1;
    RETURN NULL;
END $$;
CREATE TRIGGER changes_people AFTER UPDATE OF gender, ethnicity ON people FOR EACH ROW
EXECUTE FUNCTION changes_people();
CREATE FUNCTION diversions_referrals() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NOT EXISTS (SELECT 1 FROM bulk_load) THEN
            PERFORM diversion_count_change('diversion_changes', ARRAY[substr(NEW.diverted_at, 1, 7)]);
        END IF;
    ELSIF TG_OP = 'UPDATE' THEN
        PERFORM diversion_count_change('diversion_changes',
                                       ARRAY[substr(OLD.diverted_at, 1, 7), substr(NEW.diverted_at, 1, 7)]);
    ELSE
        PERFORM diversion_count_change('diversion_changes', ARRAY[substr(OLD.diverted_at, 1, 7)]);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER diversions_referrals_insert AFTER INSERT OR DELETE ON referrals FOR EACH ROW
EXECUTE FUNCTION diversions_referrals();
CREATE TRIGGER diversions_referrals_update AFTER UPDATE OF status, diverted_at, person_id ON referrals FOR EACH ROW
EXECUTE FUNCTION diversions_referrals();

-- the trail is append-only; the one permitted change: an erasure blanks the person's old values
CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries FOR EACH ROW
EXECUTE FUNCTION diversion_refuse('audit_log_is_append_only');
CREATE FUNCTION audit_entries_no_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT (NEW.old IS NULL AND NEW.seq = OLD.seq AND NEW.action = OLD.action AND NEW.entity = OLD.entity
            AND NEW.entity_id = OLD.entity_id AND NEW.person_id IS NOT DISTINCT FROM OLD.person_id
            AND NEW.digest IS NOT DISTINCT FROM OLD.digest AND NEW.old_digest IS NOT DISTINCT FROM OLD.old_digest
            AND EXISTS (SELECT 1 FROM erasures e WHERE e.person_id = OLD.person_id)) THEN
        RAISE EXCEPTION 'audit_log_is_append_only' USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries FOR EACH ROW
EXECUTE FUNCTION audit_entries_no_update();
CREATE TRIGGER audit_transactions_no_change BEFORE UPDATE OR DELETE ON audit_transactions FOR EACH ROW
EXECUTE FUNCTION diversion_refuse('audit_log_is_append_only');
CREATE TRIGGER audit_salts_no_change BEFORE UPDATE ON audit_salts FOR EACH ROW
EXECUTE FUNCTION diversion_refuse('audit_salts_are_kept');
CREATE TRIGGER audit_salts_kept BEFORE DELETE ON audit_salts FOR EACH ROW
EXECUTE FUNCTION diversion_kept_unless_erased('audit_salts_are_kept');
-- every transaction names the login that made it, and the collar number it claims must be that
-- login's (a login with none is refused, unless it owns the schema: the force's DBA)
CREATE FUNCTION audit_transactions_signed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    theirs text;
BEGIN
    IF NEW.login IS DISTINCT FROM session_user THEN
        RAISE EXCEPTION 'login_not_yours' USING ERRCODE = 'insufficient_privilege';
    END IF;
    SELECT o.officer INTO theirs FROM officer_logins o WHERE o.login = session_user;
    IF FOUND AND theirs IS DISTINCT FROM NEW.officer THEN
        RAISE EXCEPTION 'officer_not_yours' USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NOT FOUND AND NOT diversion_owns(session_user) THEN
        RAISE EXCEPTION 'login_has_no_officer' USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER audit_transactions_signed BEFORE INSERT ON audit_transactions FOR EACH ROW
EXECUTE FUNCTION audit_transactions_signed();

-- a login that does not own the schema cannot commit a change unsealed (it would stop every desk
-- until an admin accepted it): diversion_seal must take it into the trail in the same transaction
CREATE FUNCTION audit_pending_sealed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM audit_pending p WHERE p.id = NEW.id) AND NOT diversion_owns(session_user) THEN
        RAISE EXCEPTION 'changes_unsealed' USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER audit_pending_sealed AFTER INSERT ON audit_pending DEFERRABLE INITIALLY DEFERRED
FOR EACH ROW EXECUTE FUNCTION audit_pending_sealed();

-- the schema's version: only ever added to (a deleted row would lock every desk out)
CREATE TRIGGER migrations_kept BEFORE UPDATE OR DELETE ON migrations FOR EACH ROW
EXECUTE FUNCTION diversion_refuse('migrations_are_kept');
"""

VIEWS = """
CREATE VIEW people_view AS
SELECT 'P-' || lpad(p.id::text, 6, '0') AS person_ref, p.surname, p.forenames, p.dob, p.pnc, p.gender, p.ethnicity,
       (SELECT count(*) FROM incidents i WHERE i.person_id = p.id)::integer AS incidents,
       (SELECT count(*) FROM referrals r WHERE r.person_id = p.id AND r.status IN ('accepted', 'completed', 'failed'))
           ::integer AS diversions,
       EXISTS (SELECT 1 FROM referrals r WHERE r.person_id = p.id AND r.status IN ('offered', 'accepted'))::integer
           AS has_open_referral
FROM people p;

CREATE VIEW audit_log AS
SELECT e.seq, t.at, t.officer, t.operation, t.reason,
       CASE e.action WHEN 'i' THEN 'insert' WHEN 'u' THEN 'update' WHEN 'd' THEN 'delete' ELSE 'baseline' END
           AS action,
       CASE e.entity """ + " ".join(f"WHEN '{code}' THEN '{name}'" for name, code in ENTITY_CODES.items()) + """
           END AS entity,
       e.entity_id, e.person_id, e.old AS old_values, t.login
FROM audit_entries e
JOIN audit_transactions t ON t.last_seq = (SELECT min(last_seq) FROM audit_transactions WHERE last_seq >= e.seq);
"""

# The officers' views of incidents and referrals, and the analyst's (roles.py): the same rows and
# columns without the personal ones: no name, date of birth, PNC or free text. A view reads with its
# owner's rights, so an analyst needs rights on its own alone. ("*": a personal column)
INCIDENT_COLUMNS = (
    "'I-' || lpad(i.id::text, 6, '0') AS incident_ref", "'P-' || lpad(p.id::text, 6, '0') AS person_ref",
    "*p.surname", "*p.forenames", "*p.dob", "*p.pnc", "p.gender", "p.ethnicity", "i.occurred_at", "i.age",
    "CASE WHEN i.age < 18 THEN 'youth' ELSE 'adult' END AS age_group",
    "(SELECT string_agg(s.substance, '; ' ORDER BY s.position) FROM incident_substances s "
    "WHERE s.incident_id = i.id) AS substances",
    "(SELECT string_agg(DISTINCT s.drug_class, ',') FROM incident_substances s WHERE s.incident_id = i.id) "
    "AS drug_classes",
    "*i.quantity", "*i.location",
    "*(SELECT string_agg(c.description, '; ' ORDER BY c.position) FROM incident_co_offences c "
    "WHERE c.incident_id = i.id) AS co_offences",
    "(SELECT count(*) FROM incident_co_offences c WHERE c.incident_id = i.id)::integer AS co_offence_count",
    "i.supply_suspected", "i.recorded_by", "i.recorded_at", "i.voided_at", "*i.void_reason",
    "(SELECT d.eligible FROM decisions d WHERE d.incident_id = i.id AND d.stage = 'record' ORDER BY d.id DESC "
    "LIMIT 1) AS eligible_at_record",
    "r.id AS referral_id", "r.scheme", "r.status AS referral_status", "r.offered_at", "r.diverted_at",
    "r.closed_at", "r.deadline", "r.outcome_code")
INCIDENT_ROWS = """FROM incidents i
JOIN people p ON p.id = i.person_id
LEFT JOIN referrals r ON r.id = (SELECT r2.id FROM referrals r2 WHERE r2.incident_id = i.id
                                 AND r2.status != 'voided' ORDER BY r2.offered_at DESC LIMIT 1)"""
REFERRAL_COLUMNS = (
    "r.id AS referral_id", "r.scheme", "r.pathway", "r.status", "r.provider", "r.offered_at", "r.offered_by",
    "r.appointment", "r.deadline", "r.diverted_at", "r.closed_at", "r.outcome_code", "*r.reason",
    "'P-' || lpad(p.id::text, 6, '0') AS person_ref", "*p.surname", "*p.forenames", "*p.dob", "*p.pnc",
    "'I-' || lpad(i.id::text, 6, '0') AS incident_ref", "i.occurred_at", "i.age",
    "(SELECT count(*) FROM referral_conditions c WHERE c.referral_id = r.id)::integer AS conditions",
    "(SELECT count(*) FROM referral_conditions c WHERE c.referral_id = r.id AND c.status = 'met')::integer "
    "AS conditions_met")
REFERRAL_ROWS = """FROM referrals r
JOIN people p ON p.id = r.person_id
JOIN incidents i ON i.id = r.incident_id"""


def _view(name: str, columns: tuple[str, ...], rows: str, personal: bool) -> str:
    kept = [c.lstrip("*") for c in columns if personal or not c.startswith("*")]
    return f"CREATE VIEW {name} AS\nSELECT " + ",\n       ".join(kept) + f"\n{rows};\n"


NAMED_VIEWS = _view("referrals_view", REFERRAL_COLUMNS, REFERRAL_ROWS, True) + \
    _view("incidents_view", INCIDENT_COLUMNS, INCIDENT_ROWS, True)
ANALYST_VIEWS = _view("analyst_incidents", INCIDENT_COLUMNS, INCIDENT_ROWS, False) + \
    _view("analyst_referrals", REFERRAL_COLUMNS, REFERRAL_ROWS, False)

# No login runs a function of diversion's unless a role grants it (roles.py): PostgreSQL lets
# everyone run every function by default, and diversion_close would seal for anyone.
PRIVATE_FUNCTIONS = """
DO $$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN SELECT p.oid::regprocedure FROM pg_proc p WHERE p.pronamespace = current_schema()::regnamespace LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
    END LOOP;
END $$;
"""

# Everything diversion keeps refuses TRUNCATE, which fires no row trigger (an empty table
# would otherwise read as "every row vanished" only at the next verify).
KEPT = ("migrations", "people", "incidents", "incident_substances", "incident_co_offences", "decisions", "referrals",
        "referral_conditions", "erasures", "issued_ids", "month_changes", "diversion_changes", "audit_transactions",
        "audit_entries", "audit_salts", "audit_conversions", "audit_pending", "officer_logins",
        "one_shot_scopes")


def _sealing() -> str:
    """audit.seal and audit.close as functions the schema's owner runs (SECURITY DEFINER): an
    officer's login writes its rows, its changes are captured by triggers, and the trail is
    sealed for it, so no login but the admins' needs rights on the trail itself. The SQL is
    audit.py's, in this dialect, so the two engines seal alike."""
    from diversion_cli.store import audit
    from diversion_cli.store.postgres import translate

    def sql(text: str) -> str:
        return translate(text)[0].replace("%%", "%")

    entries = audit.PG_ENTRIES_TEXT.format(after="done", upto="upto")
    return f"""
-- chain the entries entered since the last transaction row, SEAL_CHUNK at a time, as this login
CREATE FUNCTION diversion_close(sealed_at text, claimed text, op text, why text) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    done integer := 0;
    prev bytea := '\\x{audit.GENESIS.hex()}'::bytea;
    newest integer;
    upto integer;
    first integer;
BEGIN
    SELECT t.last_seq, t.hash INTO done, prev FROM audit_transactions t ORDER BY t.last_seq DESC LIMIT 1;
    IF NOT FOUND THEN
        done := 0;
        prev := '\\x{audit.GENESIS.hex()}'::bytea;
    END IF;
    first := done;
    SELECT coalesce(max(e.seq), 0) INTO newest FROM audit_entries e;
    WHILE done < newest LOOP
        upto := least(newest, done + {audit.SEAL_CHUNK});
        prev := sha256(prev || convert_to(diversion_transaction_text(upto, sealed_at, claimed, op, why,
                                                                     session_user::text), 'UTF8')
                       || convert_to(coalesce({entries}, ''), 'UTF8'));
        INSERT INTO audit_transactions (last_seq, at, officer, operation, reason, hash, login)
        VALUES (upto, sealed_at, claimed, op, why, prev, session_user);
        done := upto;
    END LOOP;
    RETURN newest - first;
END $$;

-- seal this transaction's waiting changes: NULL, or what stops them (how:entity:id), and
-- nothing sealed; audit.seal words it
CREATE FUNCTION diversion_seal(sealed_at text, claimed text, op text, why text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    found_entity text;
    found_id text;
    moved integer;
BEGIN
    IF NOT diversion_owns(session_user) AND NOT diversion_today(sealed_at) THEN
        RAISE EXCEPTION 'stamped_at_another_time' USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    SELECT q.entity, q.entity_id INTO found_entity, found_id FROM ({sql(audit.UNAUDITED_BEFORE)}) q;
    IF FOUND THEN
        RETURN 'changed:' || found_entity || ':' || found_id;
    END IF;
    SELECT q.entity, q.entity_id INTO found_entity, found_id FROM ({sql(audit.STILL_STANDING)}) q;
    IF FOUND THEN
        RETURN 'deleted:' || found_entity || ':' || found_id;
    END IF;
    {sql(audit.MOVE_PENDING)};
    GET DIAGNOSTICS moved = ROW_COUNT;
    IF moved > 0 THEN
        IF claimed IS NULL OR op IS NULL THEN
            RAISE EXCEPTION 'a change was written without an audit context';
        END IF;
        DELETE FROM audit_pending;
    END IF;
    PERFORM diversion_close(sealed_at, claimed, op, why);
    RETURN NULL;
END $$;
"""


def ddl() -> str:
    """The whole schema, in the order it is created. Every PL/pgSQL function (the guards and the
    trail's capture) keeps the search path it was created with (the schema's, then pg_temp), so
    a session's own temporary tables can never stand in for the tables it guards."""
    parts = [FUNCTIONS, TABLES, GUARDS, _sealing()]
    parts += [_audit_function(table) for table in TRAIL]
    parts += [_stamp_function(table) for table in sorted({t for t, _ in STAMPED})]
    parts += [_only_up("month_changes"), _only_up("diversion_changes")]
    parts += [f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} FOR EACH STATEMENT "
              f"EXECUTE FUNCTION diversion_refuse('{table}_cannot_be_truncated');\n" for table in KEPT]
    parts += [NAMED_VIEWS, VIEWS, ANALYST_VIEWS, PRIVATE_FUNCTIONS]
    return "\n".join(parts).replace("LANGUAGE plpgsql AS $$",
                                     "LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$")


def upgrade_from(version: int) -> str:
    """What brings a server's schema from `version` to VERSION, built from ddl() so the result is
    the schema a new database gets (verify compares the two)."""
    if version != FIRST:
        raise ValueError(f"no upgrade from schema version {version}")
    whole = ddl()
    functions = [f.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)
                 for f in re.findall(r"^CREATE FUNCTION .*?\$\$;$", whole, re.MULTILINE | re.DOTALL)]
    tables = re.findall(r"^CREATE TABLE (?:one_shot_scopes|officer_logins) \(.*?^\);$", whole,
                        re.MULTILINE | re.DOTALL)
    triggers = re.findall(r"^CREATE (?:CONSTRAINT )?TRIGGER (?:audit_transactions_signed|audit_pending_sealed|"
                          r"referral_conditions_start_pending|\w+_stamped|\w+_next_id|people_gaps_only|"
                          r"referrals_outcome|referral_conditions_early|\w+_dated|\w+_with_parent|\w+_cleared|"
                          r"one_shot_scopes_no_truncate|officer_logins_no_truncate) .*?;$", whole,
                          re.MULTILINE | re.DOTALL)
    audit_log = re.search(r"^CREATE VIEW audit_log AS.*?;$", whole, re.MULTILINE | re.DOTALL).group(0)
    assert len(tables) == 2, tables  # (the triggers: the upgrade test compares the result with a new database's)
    return "\n".join([
        f"ALTER TABLE audit_transactions ADD COLUMN login {T};",
        f"ALTER TABLE audit_pending ADD COLUMN login {T} DEFAULT session_user;",
        *tables,
        "DROP FUNCTION diversion_transaction_text(integer, text, text, text, text);",
        *functions,  # (every one: the guards are SECURITY DEFINER now, and read the pinned scopes)
        *triggers,
        audit_log.replace("CREATE VIEW", "CREATE OR REPLACE VIEW", 1),
        ANALYST_VIEWS,
        PRIVATE_FUNCTIONS,
    ])
