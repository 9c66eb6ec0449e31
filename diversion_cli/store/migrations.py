"""Numbered schema migrations. Each runs in one transaction together with the
row in `migrations` that records it; a file whose highest applied number is
above the last one here was written by a newer diversion and is refused.

Never edit a migration that has shipped: add a new one.
"""

MIGRATIONS: list[tuple[int, str, str]] = [
    (1, "people, incidents, decisions, referrals and the one-shot rule", """
CREATE TABLE people (
    id INTEGER PRIMARY KEY,
    surname TEXT NOT NULL CHECK (length(surname) > 0),
    forenames TEXT NOT NULL CHECK (length(forenames) > 0),
    dob TEXT NOT NULL CHECK (dob GLOB '[12][0-9][0-9][0-9]-[01][0-9]-[0-3][0-9]'),
    pnc TEXT UNIQUE CHECK (pnc GLOB '[12][0-9][0-9][0-9]/[0-9][0-9][0-9][0-9][0-9][0-9][0-9][A-Z]'),
    gender TEXT CHECK (gender IN ('M', 'F', 'X', 'U')),
    ethnicity TEXT,
    -- matching keys (identity.py): the normalised names exact matches are found by
    surname_norm TEXT NOT NULL,
    forenames_norm TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL
);
CREATE INDEX people_dob ON people (dob, surname_norm);

CREATE TABLE incidents (
    id INTEGER PRIMARY KEY,
    person_id INTEGER NOT NULL REFERENCES people (id),
    occurred_at TEXT NOT NULL,
    age INTEGER NOT NULL CHECK (age BETWEEN 10 AND 110),
    location TEXT,
    quantity TEXT,
    supply_suspected INTEGER NOT NULL DEFAULT 0 CHECK (supply_suspected IN (0, 1)),
    recorded_at TEXT NOT NULL,
    recorded_by TEXT NOT NULL
);
CREATE INDEX incidents_person ON incidents (person_id, occurred_at);
CREATE INDEX incidents_occurred ON incidents (occurred_at);

CREATE TABLE incident_substances (
    incident_id INTEGER NOT NULL REFERENCES incidents (id),
    position INTEGER NOT NULL,
    substance TEXT NOT NULL,
    drug_class TEXT NOT NULL CHECK (drug_class IN ('A', 'B', 'C')),
    entered_as TEXT NOT NULL,
    PRIMARY KEY (incident_id, position)
) WITHOUT ROWID;

CREATE TABLE incident_co_offences (
    incident_id INTEGER NOT NULL REFERENCES incidents (id),
    position INTEGER NOT NULL,
    description TEXT NOT NULL,
    PRIMARY KEY (incident_id, position)
) WITHOUT ROWID;

-- Every eligibility decision, with its reasons and the config that produced
-- it, so an auditor can see later why a person was or was not offered one.
CREATE TABLE decisions (
    id INTEGER PRIMARY KEY,
    person_id INTEGER NOT NULL REFERENCES people (id),
    incident_id INTEGER REFERENCES incidents (id),
    stage TEXT NOT NULL CHECK (stage IN ('record', 'refer')),
    eligible INTEGER NOT NULL CHECK (eligible IN (0, 1)),
    scheme TEXT,
    reasons TEXT NOT NULL,
    config_fingerprint TEXT NOT NULL,
    taken_at TEXT NOT NULL,
    taken_by TEXT NOT NULL
);
CREATE INDEX decisions_incident ON decisions (incident_id);

CREATE TABLE referrals (
    id TEXT PRIMARY KEY CHECK (id GLOB 'R-[0-9][0-9][0-9][0-9]-[0-9][0-9][0-9][0-9][0-9][0-9]*'),
    person_id INTEGER NOT NULL REFERENCES people (id),
    incident_id INTEGER NOT NULL REFERENCES incidents (id),
    scheme TEXT NOT NULL,
    pathway TEXT NOT NULL CHECK (pathway IN ('workshop', 'contract')),
    -- the one-shot scope this referral counts in ('*' = every scheme) and the
    -- start of its look-back window (NULL = lifetime), both from the scheme
    one_shot_group TEXT NOT NULL,
    lookback_since TEXT,
    status TEXT NOT NULL CHECK (status IN ('offered', 'accepted', 'declined', 'completed', 'failed', 'voided')),
    provider TEXT NOT NULL,
    appointment TEXT,
    deadline TEXT NOT NULL,
    offered_at TEXT NOT NULL,
    offered_by TEXT NOT NULL,
    diverted_at TEXT,
    closed_at TEXT,
    outcome_code INTEGER,
    reason TEXT,
    updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    CHECK (status NOT IN ('accepted', 'completed', 'failed') OR diverted_at IS NOT NULL),
    CHECK (status NOT IN ('completed', 'failed', 'declined', 'voided') OR closed_at IS NOT NULL)
);
-- One open referral per person, whatever the scheme.
CREATE UNIQUE INDEX referrals_one_open ON referrals (person_id) WHERE status IN ('offered', 'accepted');
-- One live referral per incident.
CREATE UNIQUE INDEX referrals_one_per_incident ON referrals (incident_id) WHERE status NOT IN ('voided', 'declined');
CREATE INDEX referrals_person ON referrals (person_id, status);
CREATE INDEX referrals_queue ON referrals (status, deadline);
CREATE INDEX referrals_offered ON referrals (offered_at);
CREATE INDEX referrals_incident ON referrals (incident_id);
CREATE INDEX referrals_diverted ON referrals (diverted_at);

-- The one-shot rule in the database: no new referral for a person already
-- diverted in the same scope within the look-back window.
CREATE TRIGGER referrals_one_shot BEFORE INSERT ON referrals
WHEN EXISTS (
    SELECT 1 FROM referrals AS earlier INDEXED BY referrals_person  -- never a scan of all referrals
    WHERE earlier.person_id = NEW.person_id
      AND earlier.status IN ('accepted', 'completed', 'failed')
      AND (NEW.one_shot_group = '*' OR earlier.one_shot_group = NEW.one_shot_group)
      AND (NEW.lookback_since IS NULL OR coalesce(earlier.diverted_at, earlier.offered_at) >= NEW.lookback_since)
)
BEGIN
    SELECT RAISE(ABORT, 'one_shot_used');
END;

-- Only the legal status transitions (cli.md).
CREATE TRIGGER referrals_transitions BEFORE UPDATE OF status ON referrals
WHEN NEW.status IS NOT OLD.status AND NOT (
       (OLD.status = 'offered' AND NEW.status IN ('accepted', 'declined', 'voided'))
    OR (OLD.status = 'accepted' AND NEW.status IN ('completed', 'failed', 'voided'))
)
BEGIN
    SELECT RAISE(ABORT, 'illegal_transition');
END;

CREATE TABLE referral_conditions (
    referral_id TEXT NOT NULL REFERENCES referrals (id),
    position INTEGER NOT NULL,
    key TEXT NOT NULL,
    description TEXT NOT NULL,
    due TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'met', 'breached')),
    recorded_at TEXT,
    recorded_by TEXT,
    note TEXT,
    PRIMARY KEY (referral_id, position)
) WITHOUT ROWID;
"""),
]

MIGRATIONS.append((2, "analyst views: readable joins for sqlite-utils and Datasette", """
-- (incidents_view comes with migration 3, once incidents can be voided)
CREATE VIEW referrals_view AS
SELECT r.id AS referral_id, r.scheme, r.pathway, r.status, r.provider, r.offered_at, r.offered_by,
       r.appointment, r.deadline, r.diverted_at, r.closed_at, r.outcome_code, r.reason,
       'P-' || printf('%06d', p.id) AS person_ref, p.surname, p.forenames, p.dob, p.pnc,
       'I-' || printf('%06d', i.id) AS incident_ref, i.occurred_at, i.age,
       (SELECT count(*) FROM referral_conditions c WHERE c.referral_id = r.id) AS conditions,
       (SELECT count(*) FROM referral_conditions c WHERE c.referral_id = r.id AND c.status = 'met') AS conditions_met
FROM referrals r
JOIN people p ON p.id = r.person_id
JOIN incidents i ON i.id = r.incident_id;

CREATE VIEW people_view AS
SELECT 'P-' || printf('%06d', p.id) AS person_ref, p.surname, p.forenames, p.dob, p.pnc, p.gender, p.ethnicity,
       (SELECT count(*) FROM incidents i WHERE i.person_id = p.id) AS incidents,
       (SELECT count(*) FROM referrals r WHERE r.person_id = p.id AND r.status IN ('accepted', 'completed', 'failed'))
           AS diversions,
       EXISTS (SELECT 1 FROM referrals r WHERE r.person_id = p.id AND r.status IN ('offered', 'accepted'))
           AS has_open_referral
FROM people p;
"""))

# ---- the audit trail --------------------------------------------------------
# Triggers copy every change of an audited table into audit_pending (so even an
# edit made with the sqlite3 shell leaves a trace); diversion seals pending
# changes into the hash-chained, append-only audit_log in the same transaction,
# stamped with the officer and the operation. SNAPSHOTS are frozen with the
# migration: `audit verify` compares each row's current snapshot with the last
# one sealed for it.

SNAPSHOTS = {
    # table: (entity, entity id, person id, referral id, snapshot), in terms of a row alias X
    "people": ("person", "CAST(X.id AS TEXT)", "X.id", "NULL",
               "json_object('surname', X.surname, 'forenames', X.forenames, 'dob', X.dob, 'pnc', X.pnc, "
               "'gender', X.gender, 'ethnicity', X.ethnicity, 'created_at', X.created_at, "
               "'created_by', X.created_by, 'surname_norm', X.surname_norm, 'forenames_norm', X.forenames_norm)"),
    "incidents": ("incident", "CAST(X.id AS TEXT)", "X.person_id", "NULL",
                  "json_object('person_id', X.person_id, 'occurred_at', X.occurred_at, 'age', X.age, "
                  "'location', X.location, 'quantity', X.quantity, 'supply_suspected', X.supply_suspected, "
                  "'recorded_at', X.recorded_at, 'recorded_by', X.recorded_by, 'voided_at', X.voided_at, "
                  "'void_reason', X.void_reason)"),
    "incident_substances": ("substance", "X.incident_id || '/' || X.position",
                            "(SELECT person_id FROM incidents WHERE id = X.incident_id)", "NULL",
                            "json_object('substance', X.substance, 'drug_class', X.drug_class, "
                            "'entered_as', X.entered_as)"),
    "incident_co_offences": ("co_offence", "X.incident_id || '/' || X.position",
                             "(SELECT person_id FROM incidents WHERE id = X.incident_id)", "NULL",
                             "json_object('description', X.description)"),
    "decisions": ("decision", "CAST(X.id AS TEXT)", "X.person_id", "NULL",
                  "json_object('incident_id', X.incident_id, 'stage', X.stage, 'eligible', X.eligible, "
                  "'scheme', X.scheme, 'reasons', X.reasons, 'config_fingerprint', X.config_fingerprint, "
                  "'taken_at', X.taken_at, 'taken_by', X.taken_by)"),
    "referrals": ("referral", "X.id", "X.person_id", "X.id",
                  "json_object('person_id', X.person_id, 'incident_id', X.incident_id, 'scheme', X.scheme, "
                  "'pathway', X.pathway, 'one_shot_group', X.one_shot_group, 'lookback_since', X.lookback_since, "
                  "'status', X.status, 'provider', X.provider, 'appointment', X.appointment, "
                  "'deadline', X.deadline, 'offered_at', X.offered_at, 'offered_by', X.offered_by, "
                  "'diverted_at', X.diverted_at, 'closed_at', X.closed_at, 'outcome_code', X.outcome_code, "
                  "'reason', X.reason, 'updated_at', X.updated_at, 'updated_by', X.updated_by)"),
    "referral_conditions": ("condition", "X.referral_id || '/' || X.position",
                            "(SELECT person_id FROM referrals WHERE id = X.referral_id)", "X.referral_id",
                            "json_object('key', X.key, 'description', X.description, 'due', X.due, "
                            "'status', X.status, 'recorded_at', X.recorded_at, 'recorded_by', X.recorded_by, "
                            "'note', X.note)"),
}


def _audit_trigger(table: str, action: str, guard: str = "") -> str:
    entity, ident, person, referral, snap = SNAPSHOTS[table]
    row = "OLD" if action == "delete" else "NEW"
    old = "NULL" if action == "insert" else snap.replace("X.", "OLD.")
    new = "NULL" if action == "delete" else snap.replace("X.", "NEW.")
    return (f"CREATE TRIGGER audit_{table}_{action} AFTER {action.upper()} ON {table}\n{guard}"
            f"BEGIN\n    INSERT INTO audit_pending (action, entity, entity_id, person_id, referral_id, old, new)\n"
            f"    VALUES ('{action}', '{entity}', {ident.replace('X.', row + '.')}, "
            f"{person.replace('X.', row + '.')}, {referral.replace('X.', row + '.')}, {old}, {new});\nEND;\n")


def _audit_triggers() -> str:
    return "\n".join(_audit_trigger(table, action) for table in SNAPSHOTS for action in ("insert", "update", "delete"))


MIGRATIONS.append((3, "audit trail, corrections (void) and immutable decisions", """
ALTER TABLE incidents ADD COLUMN voided_at TEXT;
ALTER TABLE incidents ADD COLUMN void_reason TEXT;

CREATE VIEW incidents_view AS
SELECT 'I-' || printf('%06d', i.id) AS incident_ref,
       'P-' || printf('%06d', p.id) AS person_ref, p.surname, p.forenames, p.dob, p.pnc, p.gender, p.ethnicity,
       i.occurred_at, i.age, CASE WHEN i.age < 18 THEN 'youth' ELSE 'adult' END AS age_group,
       (SELECT group_concat(s.substance, '; ') FROM incident_substances s WHERE s.incident_id = i.id) AS substances,
       (SELECT group_concat(DISTINCT s.drug_class) FROM incident_substances s WHERE s.incident_id = i.id)
           AS drug_classes,
       i.quantity, i.location,
       (SELECT group_concat(c.description, '; ') FROM incident_co_offences c WHERE c.incident_id = i.id)
           AS co_offences,
       (SELECT count(*) FROM incident_co_offences c WHERE c.incident_id = i.id) AS co_offence_count,
       i.supply_suspected, i.recorded_by, i.recorded_at, i.voided_at, i.void_reason,
       (SELECT d.eligible FROM decisions d WHERE d.incident_id = i.id AND d.stage = 'record'
        ORDER BY d.id DESC LIMIT 1) AS eligible_at_record,
       r.id AS referral_id, r.scheme, r.status AS referral_status, r.offered_at, r.diverted_at, r.closed_at,
       r.deadline, r.outcome_code
FROM incidents i
JOIN people p ON p.id = i.person_id
LEFT JOIN referrals r ON r.id = (SELECT r2.id FROM referrals r2 WHERE r2.incident_id = i.id
                                 AND r2.status != 'voided' ORDER BY r2.offered_at DESC LIMIT 1);

CREATE TABLE audit_pending (
    id INTEGER PRIMARY KEY,
    action TEXT NOT NULL,
    entity TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    person_id INTEGER,
    referral_id TEXT,
    old TEXT,
    new TEXT
);

-- Append-only. Each entry's hash covers the one before it, so an edited,
-- deleted or re-ordered entry breaks the chain. old/new hold the row
-- snapshots; their digests are what the chain covers, so a data-protection
-- erasure can blank the snapshots of an erased person without breaking it.
CREATE TABLE audit_log (
    seq INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    officer TEXT NOT NULL,
    operation TEXT NOT NULL,
    reason TEXT,
    action TEXT NOT NULL CHECK (action IN ('insert', 'update', 'delete', 'baseline')),
    entity TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    person_id INTEGER,
    referral_id TEXT,
    old TEXT,
    new TEXT,
    salt TEXT,          -- random per entry: an erased person's digests cannot confirm a guess
    old_digest TEXT,    -- sha256(salt || old)
    new_digest TEXT,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_log_person ON audit_log (person_id);
CREATE INDEX audit_log_referral ON audit_log (referral_id);
CREATE INDEX audit_log_entity ON audit_log (entity, entity_id);

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log_is_append_only');
END;

-- The one permitted change: blanking an erased person's snapshots and salt (digests stay).
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
WHEN NOT (NEW.old IS NULL AND NEW.new IS NULL AND NEW.salt IS NULL AND NEW.seq = OLD.seq AND NEW.hash = OLD.hash
          AND NEW.prev_hash = OLD.prev_hash AND NEW.old_digest IS OLD.old_digest
          AND NEW.new_digest IS OLD.new_digest AND NEW.entity = OLD.entity AND NEW.entity_id = OLD.entity_id
          AND NEW.person_id IS OLD.person_id AND NEW.at = OLD.at AND NEW.officer = OLD.officer
          AND NEW.operation = OLD.operation AND NEW.action = OLD.action AND NEW.reason IS OLD.reason
          AND NEW.referral_id IS OLD.referral_id
          AND EXISTS (SELECT 1 FROM erasures e WHERE e.person_id = OLD.person_id))
BEGIN
    SELECT RAISE(ABORT, 'audit_log_is_append_only');
END;

-- Data-protection erasures: which person id was erased, when, by whom, why.
CREATE TABLE erasures (
    person_id INTEGER PRIMARY KEY,
    erased_at TEXT NOT NULL,
    erased_by TEXT NOT NULL,
    reason TEXT NOT NULL
);

-- A decision is a record of what was decided at the time: never changed, and
-- removed only with the person in a data-protection erasure.
CREATE TRIGGER decisions_immutable BEFORE UPDATE ON decisions
BEGIN
    SELECT RAISE(ABORT, 'decisions_are_immutable');
END;
CREATE TRIGGER decisions_kept BEFORE DELETE ON decisions
WHEN NOT EXISTS (SELECT 1 FROM erasures e WHERE e.person_id = OLD.person_id)
BEGIN
    SELECT RAISE(ABORT, 'decisions_are_immutable');
END;

-- Existing rows enter the trail as a baseline, sealed when the migration commits.
""" + "\n".join(
    f"INSERT INTO audit_pending (action, entity, entity_id, person_id, referral_id, old, new) "
    f"SELECT 'baseline', '{entity}', {ident}, {person}, {referral}, NULL, {snap} "
    f"FROM {table} AS X;"
    for table, (entity, ident, person, referral, snap) in SNAPSHOTS.items()
) + "\n" + _audit_triggers()))

MIGRATIONS.append((4, "covering indexes for the monthly report", """
DROP INDEX incidents_occurred;
CREATE INDEX incidents_occurred ON incidents (occurred_at, voided_at, person_id);
DROP INDEX referrals_offered;
CREATE INDEX referrals_offered ON referrals (offered_at, status);
DROP INDEX referrals_diverted;
CREATE INDEX referrals_diverted ON referrals (diverted_at, status, person_id);
CREATE INDEX referrals_closed ON referrals (closed_at, status);
"""))

# ---- bulk loads -------------------------------------------------------------------
# An import writes tens of thousands of rows in one transaction. A row of the
# bulk_load table, inserted at the start of that transaction and deleted before
# it commits (so no other connection ever sees it), holds the per-row insert
# triggers off; the import enters the rows it inserted in the trail itself,
# set-based per batch (audit.seal_inserted). Updates and deletes are always
# captured by their triggers. `audit verify` refuses a file with the flag set,
# and any row inserted without an entry is caught as "changed outside diversion".

def _guarded_insert_triggers() -> str:
    return "\n".join(f"DROP TRIGGER audit_{table}_insert;\n"
                     + _audit_trigger(table, "insert", guard="WHEN NOT EXISTS (SELECT 1 FROM bulk_load)\n")
                     for table in SNAPSHOTS)


MIGRATIONS.append((5, "bulk loads enter their rows in the audit trail per batch", """
CREATE TABLE bulk_load (active INTEGER PRIMARY KEY CHECK (active = 1));
""" + _guarded_insert_triggers()))


# ---- change stamps for the report cache -----------------------------------------
# A report's figures for a past month rarely change, but computing them scans
# tens of thousands of rows. Triggers count changes per calendar month of the
# dates the report reads; reports.py keeps figures in report_cache together
# with the sum of the counts of the months they were computed from, and
# recomputes whenever that sum has moved.


def _bump(*dates: str) -> str:
    months = " UNION ".join(f"SELECT substr({d}, 1, 7) AS month" for d in dates)
    return (f"    INSERT INTO month_changes (month, changes) SELECT month, 1 FROM ({months}) WHERE month IS NOT NULL\n"
            f"    ON CONFLICT (month) DO UPDATE SET changes = changes + 1;\n")


def _incident_of(alias: str) -> str:
    return f"(SELECT occurred_at FROM incidents WHERE id = {alias}.incident_id)"


_REFERRAL_DATES = ("offered_at", "diverted_at", "closed_at")
# (table, action): the dates whose months a change there touches
STAMPED = {
    ("incidents", "insert"): ("NEW.occurred_at",),
    ("incidents", "update"): ("OLD.occurred_at", "NEW.occurred_at"),
    ("incidents", "delete"): ("OLD.occurred_at",),
    ("incident_substances", "insert"): (_incident_of("NEW"),),
    ("incident_substances", "update"): (_incident_of("OLD"), _incident_of("NEW")),
    ("incident_substances", "delete"): (_incident_of("OLD"),),
    ("decisions", "insert"): (_incident_of("NEW"),),
    ("decisions", "delete"): (_incident_of("OLD"),),
    ("referrals", "insert"): (*(f"NEW.{c}" for c in _REFERRAL_DATES), _incident_of("NEW")),
    ("referrals", "update"): (*(f"{a}.{c}" for a in ("OLD", "NEW") for c in _REFERRAL_DATES), _incident_of("OLD"),
                              _incident_of("NEW")),
    ("referrals", "delete"): (*(f"OLD.{c}" for c in _REFERRAL_DATES), _incident_of("OLD")),
}


def _stamp_trigger(table: str, action: str) -> str:
    # a bulk load counts its inserts per batch instead (store.insert_batch)
    return (f"CREATE TRIGGER changes_{table}_{action} AFTER {action.upper()} ON {table}\n"
            + ("WHEN NOT EXISTS (SELECT 1 FROM bulk_load)\n" if action == "insert" else "")
            + f"BEGIN\n{_bump(*STAMPED[(table, action)])}END;\n")


def _stamp_triggers() -> str:
    parts = [_stamp_trigger(table, action) for table, action in STAMPED]
    # equity breakdowns read the person's gender and ethnicity: every month they appear in
    parts.append("CREATE TRIGGER changes_people_update AFTER UPDATE OF gender, ethnicity ON people\nBEGIN\n"
                 "    INSERT INTO month_changes (month, changes)\n"
                 "    SELECT DISTINCT substr(occurred_at, 1, 7), 1 FROM incidents WHERE person_id = NEW.id\n"
                 "    ON CONFLICT (month) DO UPDATE SET changes = changes + 1;\nEND;\n")
    return "\n".join(parts)


MIGRATIONS.append((6, "change stamps and a cache for report figures", """
CREATE TABLE month_changes (
    month TEXT PRIMARY KEY,         -- YYYY-MM
    changes INTEGER NOT NULL        -- only goes up
) WITHOUT ROWID;

-- Derived figures: counts, and the month's incidents as the report counts them
-- (age, location, officer, gender, ethnicity, verdict, referral state; no names
-- or ids). Emptied by an erasure; safe to empty at any time.
CREATE TABLE report_cache (
    key TEXT PRIMARY KEY,           -- format:kind:arguments (store.Store.figures)
    stamp INTEGER NOT NULL,         -- sum of month_changes.changes over the months read, when computed
    value TEXT NOT NULL             -- JSON
) WITHOUT ROWID;
""" + _stamp_triggers()))

# ---- corrections of a closing outcome ------------------------------------------------
# A referral closed wrongly (completed that was failed, or the reverse, or one that
# should never have been made) is corrected by a supervisor. A row of `correction`,
# inserted inside that transaction and deleted before it commits (like bulk_load),
# is what lets a closed referral change state; otherwise the transitions stay those
# of cli.md. Completed and failed swap (the person stays diverted, so the one shot
# is not touched); completed, failed or declined may be voided (the one shot is
# then free again, as for any voided referral).

MIGRATIONS.append((7, "supervisors correct a wrongly closed referral", """
CREATE TABLE correction (active INTEGER PRIMARY KEY CHECK (active = 1));

DROP TRIGGER referrals_transitions;
CREATE TRIGGER referrals_transitions BEFORE UPDATE OF status ON referrals
WHEN NEW.status IS NOT OLD.status AND NOT (
       (OLD.status = 'offered' AND NEW.status IN ('accepted', 'declined', 'voided'))
    OR (OLD.status = 'accepted' AND NEW.status IN ('completed', 'failed', 'voided'))
    OR (EXISTS (SELECT 1 FROM correction) AND (
           (OLD.status IN ('completed', 'failed') AND NEW.status IN ('completed', 'failed'))
        OR (OLD.status IN ('completed', 'failed', 'declined') AND NEW.status = 'voided')))
)
BEGIN
    SELECT RAISE(ABORT, 'illegal_transition');
END;
"""))

# ---- ids are never issued twice ----------------------------------------------------------
# An INTEGER PRIMARY KEY hands out max(id) + 1, so erasing the newest person gave the
# next one their id (and their audit history). Triggers keep the highest id ever issued
# of each kind ('person', 'incident', and 'R-YYYY' for referrals of a year); new ids
# count on from there. Started from the highest id in the tables, the trail and the
# erasures, so ids erased before this migration are not reissued either.

MIGRATIONS.append((8, "ids are never issued twice, erasure or not", """
CREATE TABLE issued_ids (
    kind TEXT PRIMARY KEY,          -- person, incident, or R-YYYY
    last INTEGER NOT NULL           -- the highest id of that kind ever issued; only goes up
) WITHOUT ROWID;

INSERT INTO issued_ids (kind, last)
SELECT 'person', max(n) FROM (
    SELECT max(id) AS n FROM people UNION ALL SELECT max(person_id) FROM erasures
    UNION ALL SELECT max(person_id) FROM audit_log) WHERE n IS NOT NULL HAVING max(n) IS NOT NULL;
INSERT INTO issued_ids (kind, last)
SELECT 'incident', max(n) FROM (
    SELECT max(id) AS n FROM incidents
    UNION ALL SELECT max(CAST(entity_id AS INTEGER)) FROM audit_log WHERE entity = 'incident')
WHERE n IS NOT NULL HAVING max(n) IS NOT NULL;
INSERT INTO issued_ids (kind, last)
SELECT substr(id, 1, 6), max(CAST(substr(id, 8) AS INTEGER)) FROM (
    SELECT id FROM referrals UNION SELECT entity_id FROM audit_log WHERE entity = 'referral')
GROUP BY substr(id, 1, 6);

CREATE TRIGGER issued_people AFTER INSERT ON people
BEGIN
    INSERT INTO issued_ids (kind, last) VALUES ('person', NEW.id)
    ON CONFLICT (kind) DO UPDATE SET last = max(last, excluded.last);
END;
CREATE TRIGGER issued_incidents AFTER INSERT ON incidents
BEGIN
    INSERT INTO issued_ids (kind, last) VALUES ('incident', NEW.id)
    ON CONFLICT (kind) DO UPDATE SET last = max(last, excluded.last);
END;
CREATE TRIGGER issued_referrals AFTER INSERT ON referrals
BEGIN
    INSERT INTO issued_ids (kind, last) VALUES (substr(NEW.id, 1, 6), CAST(substr(NEW.id, 8) AS INTEGER))
    ON CONFLICT (kind) DO UPDATE SET last = max(last, excluded.last);
END;

-- only ever up: lowering or deleting a count would hand an erased id out again
CREATE TRIGGER issued_ids_only_up BEFORE UPDATE ON issued_ids
WHEN NEW.last < OLD.last OR NEW.kind IS NOT OLD.kind
BEGIN
    SELECT RAISE(ABORT, 'issued_ids_only_go_up');
END;
CREATE TRIGGER issued_ids_kept BEFORE DELETE ON issued_ids
BEGIN
    SELECT RAISE(ABORT, 'issued_ids_only_go_up');
END;
"""))


# ---- the lean audit trail ----------------------------------------------------------------
# The trail of migration 3 copied every row whole into every entry, with hex hashes, a
# copy of the previous entry's hash, and the officer, time, operation and reason repeated
# on each: 77% of the file. Now:
#   - audit_transactions: each sealed transaction once: who, when, what, why, and the
#     chain hash (sha256 of the previous transaction's hash, this one, and its entries);
#   - audit_entries: per changed row, a one-letter action and entity, the row's key and
#     person, the digest of the row as it stands after the change (the live row holds
#     the values themselves), and for an update the changed columns' old values (for a
#     delete, the whole row), with their digest so an erasure can blank them;
#   - audit_salts: a random salt per person for their digests; an erasure deletes it,
#     so an erased person's digests cannot confirm a guess.
# `audit log` rebuilds "from what to what" by walking back from the live row
# (store/audit.py history). Existing trails are verified and converted (audit.py
# convert_legacy_trail); the conversion is itself an audited row recording the old head.

ENTITY_CODES = {"person": "p", "incident": "i", "substance": "s", "co_offence": "o", "decision": "d",
                "referral": "r", "condition": "c", "trail_conversion": "v"}
ACTION_CODES = {"insert": "i", "update": "u", "delete": "d", "baseline": "b"}

# table: (entity code, entity id, person id, snapshot), in terms of a row alias X; frozen with migration 9
TRAIL = {table: (ENTITY_CODES[entity], ident, person, snap)
         for table, (entity, ident, person, _referral, snap) in SNAPSHOTS.items()}
TRAIL["audit_conversions"] = ("v", "CAST(X.old_last_entry AS TEXT)", "NULL",
                              "json_object('old_last_entry', X.old_last_entry, 'old_head_hash', X.old_head_hash, "
                              "'converted_at', X.converted_at)")


def _changed_only(table: str) -> str:
    """The OLD snapshot without the columns an update left as they were."""
    import re

    snap = TRAIL[table][3]
    columns = re.findall(r"'(\w+)', X\.(\w+)", snap)
    unchanged = ", ".join(f"CASE WHEN OLD.{c} IS NEW.{c} THEN '$.{k}' ELSE '$.~' END" for k, c in columns)
    return f"json_remove({snap.replace('X.', 'OLD.')}, {unchanged})"


def _trail_trigger(table: str, action: str) -> str:
    code, ident, person, snap = TRAIL[table]
    row = "OLD" if action == "delete" else "NEW"
    old = {"insert": "NULL", "update": _changed_only(table), "delete": snap.replace("X.", "OLD.")}[action]
    before = "NULL" if action == "insert" else snap.replace("X.", "OLD.")
    new = "NULL" if action == "delete" else snap.replace("X.", "NEW.")
    guard = "WHEN NOT EXISTS (SELECT 1 FROM bulk_load)\n" if action == "insert" else ""
    return (f"CREATE TRIGGER audit_{table}_{action} AFTER {action.upper()} ON {table}\n{guard}"
            f"BEGIN\n    INSERT INTO audit_pending (action, entity, entity_id, person_id, before, old, new)\n"
            f"    VALUES ('{ACTION_CODES[action]}', '{code}', {ident.replace('X.', row + '.')}, "
            f"{person.replace('X.', row + '.')}, {before}, {old}, {new});\nEND;\n")


CONVERT_TRAIL = "-- (here store/audit.py convert_legacy_trail carries the old trail over)\n"

MIGRATIONS.append((9, "a lean audit trail", """
CREATE TABLE audit_transactions (
    last_seq INTEGER PRIMARY KEY,   -- its entries: after the previous transaction's last_seq, up to this
    at TEXT NOT NULL,
    officer TEXT NOT NULL,
    operation TEXT NOT NULL,
    reason TEXT,
    hash BLOB NOT NULL              -- sha256(previous hash, this transaction, its entries): audit.py
);

CREATE TABLE audit_entries (
    seq INTEGER PRIMARY KEY CHECK (seq > 0),
    action TEXT NOT NULL CHECK (action IN ('i', 'u', 'd', 'b')),    -- insert, update, delete, baseline
    entity TEXT NOT NULL,           -- migrations.ENTITY_CODES
    entity_id TEXT NOT NULL,
    person_id INTEGER,
    digest BLOB,                    -- of the row after the change, salted with the person's salt; NULL: deleted
    old TEXT,                       -- update: the changed columns before; delete: the whole row
    old_digest BLOB                 -- of old: kept when an erasure blanks it
);
CREATE INDEX audit_entries_entity ON audit_entries (entity, entity_id);
CREATE INDEX audit_entries_person ON audit_entries (person_id);
-- the few deletes, so verify can count the rows that should exist without reading every entry
CREATE INDEX audit_entries_deleted ON audit_entries (entity, entity_id) WHERE action = 'd';

CREATE TABLE audit_salts (
    person_id INTEGER PRIMARY KEY,
    salt BLOB NOT NULL
);
INSERT INTO audit_salts (person_id, salt) SELECT id, randomblob(16) FROM people;
-- (a bulk load salts its new people and counts its ids per batch instead: store.insert_batch)
CREATE TRIGGER audit_salts_new_person AFTER INSERT ON people
WHEN NOT EXISTS (SELECT 1 FROM bulk_load)
BEGIN
    INSERT INTO audit_salts (person_id, salt) VALUES (NEW.id, randomblob(16));
END;
DROP TRIGGER issued_people;
CREATE TRIGGER issued_people AFTER INSERT ON people
WHEN NOT EXISTS (SELECT 1 FROM bulk_load)
BEGIN
    INSERT INTO issued_ids (kind, last) VALUES ('person', NEW.id)
    ON CONFLICT (kind) DO UPDATE SET last = max(last, excluded.last);
END;
DROP TRIGGER issued_incidents;
CREATE TRIGGER issued_incidents AFTER INSERT ON incidents
WHEN NOT EXISTS (SELECT 1 FROM bulk_load)
BEGIN
    INSERT INTO issued_ids (kind, last) VALUES ('incident', NEW.id)
    ON CONFLICT (kind) DO UPDATE SET last = max(last, excluded.last);
END;
DROP TRIGGER issued_referrals;
CREATE TRIGGER issued_referrals AFTER INSERT ON referrals
WHEN NOT EXISTS (SELECT 1 FROM bulk_load)
BEGIN
    INSERT INTO issued_ids (kind, last) VALUES (substr(NEW.id, 1, 6), CAST(substr(NEW.id, 8) AS INTEGER))
    ON CONFLICT (kind) DO UPDATE SET last = max(last, excluded.last);
END;

-- a conversion of an older trail: its last entry and hash, entered in the new trail
CREATE TABLE audit_conversions (
    old_last_entry INTEGER PRIMARY KEY,
    old_head_hash TEXT NOT NULL,
    converted_at TEXT NOT NULL
);
""" + CONVERT_TRAIL + """
DROP TABLE audit_log;
DROP TABLE audit_pending;
CREATE TABLE audit_pending (
    id INTEGER PRIMARY KEY,
    action TEXT NOT NULL,
    entity TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    person_id INTEGER,
    before TEXT,    -- the whole row before an update or delete: sealing checks it is what the trail says
    old TEXT,
    new TEXT
);
CREATE INDEX audit_pending_row ON audit_pending (entity, entity_id);
""" + "\n".join(f"DROP TRIGGER audit_{table}_{action};" for table in SNAPSHOTS
                for action in ("insert", "update", "delete")) + "\n"
    + "\n".join(_trail_trigger(table, action) for table in TRAIL for action in ("insert", "update", "delete"))
    + """
-- rows no entry speaks for (a file from before the trail existed) enter it as a baseline
""" + "\n".join(
    f"INSERT INTO audit_pending (action, entity, entity_id, person_id, old, new) "
    f"SELECT 'b', '{code}', {ident}, {person}, NULL, {snap} FROM {table} AS X "
    f"WHERE NOT EXISTS (SELECT 1 FROM audit_entries e WHERE e.entity = '{code}' AND e.entity_id = {ident});"
    for table, (code, ident, person, snap) in TRAIL.items()) + """

-- The trail is append-only. The one permitted change: an erasure blanks the person's old values.
CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries
BEGIN
    SELECT RAISE(ABORT, 'audit_log_is_append_only');
END;
CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries
WHEN NOT (NEW.old IS NULL AND NEW.seq = OLD.seq AND NEW.action = OLD.action AND NEW.entity = OLD.entity
          AND NEW.entity_id = OLD.entity_id AND NEW.person_id IS OLD.person_id AND NEW.digest IS OLD.digest
          AND NEW.old_digest IS OLD.old_digest
          AND EXISTS (SELECT 1 FROM erasures e WHERE e.person_id = OLD.person_id))
BEGIN
    SELECT RAISE(ABORT, 'audit_log_is_append_only');
END;
CREATE TRIGGER audit_transactions_no_change BEFORE UPDATE ON audit_transactions
BEGIN
    SELECT RAISE(ABORT, 'audit_log_is_append_only');
END;
CREATE TRIGGER audit_transactions_no_delete BEFORE DELETE ON audit_transactions
BEGIN
    SELECT RAISE(ABORT, 'audit_log_is_append_only');
END;
CREATE TRIGGER audit_salts_no_change BEFORE UPDATE ON audit_salts
BEGIN
    SELECT RAISE(ABORT, 'audit_salts_are_kept');
END;
CREATE TRIGGER audit_salts_kept BEFORE DELETE ON audit_salts
WHEN NOT EXISTS (SELECT 1 FROM erasures e WHERE e.person_id = OLD.person_id)
BEGIN
    SELECT RAISE(ABORT, 'audit_salts_are_kept');
END;

-- The trail as people read it (sqlite3, sqlite-utils, Datasette): one row per entry with
-- its transaction's time, officer, operation and reason, and words for the codes.
CREATE VIEW audit_log AS
SELECT e.seq, t.at, t.officer, t.operation, t.reason,
       CASE e.action WHEN 'i' THEN 'insert' WHEN 'u' THEN 'update' WHEN 'd' THEN 'delete' ELSE 'baseline' END
           AS action,
       CASE e.entity """ + " ".join(f"WHEN '{code}' THEN '{name}'" for name, code in ENTITY_CODES.items()) + """
           END AS entity,
       e.entity_id, e.person_id, e.old AS old_values
FROM audit_entries e
JOIN audit_transactions t ON t.last_seq = (SELECT min(last_seq) FROM audit_transactions WHERE last_seq >= e.seq);
"""))

# ---- reports that aggregate in SQL ------------------------------------------------------
# Reports count incidents per group in the database, a calendar month at a time
# (store.incident_totals): the indexes an incident's look-ups go through are made
# covering (each keeps its old leading columns, so every other query is served as
# before). A re-offending cohort depends on any earlier diversion (it takes a person
# out of the comparison group), not on every earlier change: diversion_changes counts
# changes to diversions per month of their diversion date, so a cohort's figures are
# stamped with the months it really reads. (Migration 9 is the audit trail's.)


def _bump_diversions(*rows: str) -> str:
    months = " UNION ".join(f"SELECT substr({row}.diverted_at, 1, 7) AS month" for row in rows)
    return (f"BEGIN\n    INSERT INTO diversion_changes (month, changes) SELECT month, 1 FROM ({months}) "
            f"WHERE month IS NOT NULL\n    ON CONFLICT (month) DO UPDATE SET changes = changes + 1;\nEND;\n")


def _counts_only_go_up(table: str) -> str:
    """A change-count table takes only counts of a month, and they never go down or away."""
    return (f"CREATE TRIGGER {table}_counted BEFORE INSERT ON {table}\n"
            f"WHEN NEW.changes < 1 OR NEW.month NOT GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]'\n"
            f"BEGIN\n    SELECT RAISE(ABORT, 'change_counts_only_go_up');\nEND;\n"
            f"CREATE TRIGGER {table}_only_up BEFORE UPDATE ON {table}\n"
            f"WHEN NEW.changes < OLD.changes OR NEW.month IS NOT OLD.month\n"
            f"BEGIN\n    SELECT RAISE(ABORT, 'change_counts_only_go_up');\nEND;\n"
            f"CREATE TRIGGER {table}_kept BEFORE DELETE ON {table}\n"
            f"BEGIN\n    SELECT RAISE(ABORT, 'change_counts_only_go_up');\nEND;\n")


MIGRATIONS.append((10, "reports aggregate in SQL; re-offending stamped by the diversions it reads", """
DROP INDEX incidents_occurred;
CREATE INDEX incidents_occurred ON incidents (occurred_at, voided_at, person_id, age);
DROP INDEX incidents_person;
CREATE INDEX incidents_person ON incidents (person_id, occurred_at, voided_at);
DROP INDEX decisions_incident;
CREATE INDEX decisions_incident ON decisions (incident_id, stage, id, eligible, scheme);
DROP INDEX referrals_incident;
CREATE INDEX referrals_incident ON referrals (incident_id, offered_at, status, scheme, outcome_code);
CREATE INDEX people_profile ON people (id, gender, ethnicity);

CREATE TABLE diversion_changes (
    month TEXT PRIMARY KEY,         -- YYYY-MM of a diverted_at
    changes INTEGER NOT NULL        -- only goes up
) WITHOUT ROWID;

-- a bulk load counts its inserts per batch instead (store.insert_batch)
CREATE TRIGGER diversions_referrals_insert AFTER INSERT ON referrals
WHEN NEW.diverted_at IS NOT NULL AND NOT EXISTS (SELECT 1 FROM bulk_load)
""" + _bump_diversions("NEW") + """
CREATE TRIGGER diversions_referrals_update AFTER UPDATE OF status, diverted_at, person_id ON referrals
""" + _bump_diversions("OLD", "NEW") + """
CREATE TRIGGER diversions_referrals_delete AFTER DELETE ON referrals
WHEN OLD.diverted_at IS NOT NULL
""" + _bump_diversions("OLD") + """
DELETE FROM report_cache;

-- change counts only go up: a lowered count could make stale figures look current
""" + _counts_only_go_up("month_changes") + _counts_only_go_up("diversion_changes") + """"""))


# ---- substances awaiting analysis; no referral of a void incident; names looked up -----------
# A substance seized but not yet identified is recorded as such (domain.md): its class is
# NULL until `amend incident --substance` records the result. SQLite cannot change a CHECK,
# so the table is rebuilt (same rows, same keys, so the trail's digests still hold) and its
# triggers made again. A void incident is out of the figures, so it must not take a
# diversion either (the database refuses, whatever the desk does). `check --surname` finds
# people by name without reading every one.

MIGRATIONS.append((11, "substances awaiting analysis; no referral of a void incident; people by name", """
CREATE TEMP TABLE substances_kept AS SELECT incident_id, position, substance, drug_class, entered_as
FROM incident_substances;
DROP TABLE incident_substances;
CREATE TABLE incident_substances (
    incident_id INTEGER NOT NULL REFERENCES incidents (id),
    position INTEGER NOT NULL,
    substance TEXT NOT NULL,
    drug_class TEXT CHECK (drug_class IN ('A', 'B', 'C')),     -- NULL: awaiting analysis
    entered_as TEXT NOT NULL,
    PRIMARY KEY (incident_id, position)
) WITHOUT ROWID;
INSERT INTO incident_substances SELECT * FROM temp.substances_kept ORDER BY incident_id, position;
DROP TABLE temp.substances_kept;
""" + "".join(_trail_trigger("incident_substances", action) for action in ("insert", "update", "delete"))
    + "".join(_stamp_trigger("incident_substances", action) for action in ("insert", "update", "delete")) + """
CREATE TRIGGER referrals_not_void BEFORE INSERT ON referrals
WHEN (SELECT voided_at FROM incidents WHERE id = NEW.incident_id) IS NOT NULL
BEGIN
    SELECT RAISE(ABORT, 'incident_void');
END;

CREATE INDEX people_names ON people (surname_norm, forenames_norm);
"""))

LATEST = MIGRATIONS[-1][0]
