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
    -- matching keys (identity.py): normalised names and their phonetic keys
    surname_norm TEXT NOT NULL,
    forenames_norm TEXT NOT NULL,
    surname_sound TEXT NOT NULL,
    forename_sound TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL
);
CREATE INDEX people_dob ON people (dob, surname_norm);
CREATE INDEX people_sound ON people (surname_sound, forename_sound);

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
       i.supply_suspected, i.recorded_by, i.recorded_at,
       (SELECT d.eligible FROM decisions d WHERE d.incident_id = i.id AND d.stage = 'record'
        ORDER BY d.id DESC LIMIT 1) AS eligible_at_record,
       r.id AS referral_id, r.scheme, r.status AS referral_status, r.offered_at, r.diverted_at, r.closed_at,
       r.deadline, r.outcome_code
FROM incidents i
JOIN people p ON p.id = i.person_id
LEFT JOIN referrals r ON r.id = (SELECT r2.id FROM referrals r2 WHERE r2.incident_id = i.id
                                 AND r2.status != 'voided' ORDER BY r2.offered_at DESC LIMIT 1);

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

LATEST = MIGRATIONS[-1][0]
