"""Bulk loading (`diversion import`): batches written with executemany, entered in the
audit trail and the report's change counts per batch, not per row."""

from __future__ import annotations

from contextlib import contextmanager

from diversion_cli.errors import StoreUnusable
from diversion_cli.store.common import integrity_errors, refusal_for


class BulkLoading:
    @contextmanager
    def bulk_load(self):
        """Inside a write transaction: hold the per-row insert triggers off (migration 5);
        insert_batch enters the rows in the trail and the month stamps itself."""
        self.conn.execute("INSERT INTO bulk_load (active) VALUES (1)")
        # the rows each batch writes to referrals (found by id: PostgreSQL has no rowid)
        self.conn.execute("CREATE TEMP TABLE IF NOT EXISTS batch_referrals (id TEXT PRIMARY KEY)")
        try:
            yield self
        finally:
            # (a PostgreSQL transaction that failed takes nothing more: its rollback clears the flag)
            if self.conn.in_transaction and not getattr(self.conn, "failed", False):
                self.conn.execute("DELETE FROM bulk_load")

    def insert_batch(self, batch: dict[str, list[tuple]]) -> None:
        """Write one batch of a bulk load (inside bulk_load()). Raises Refused if the
        database's constraints refuse a row."""
        from diversion_cli.store import audit

        c = self.conn
        decisions_before = c.execute("SELECT coalesce(max(id), 0) FROM decisions").fetchone()[0]
        c.execute("DELETE FROM batch_referrals")
        c.executemany("INSERT INTO batch_referrals (id) VALUES (?)", [(row[0],) for row in batch.get("referrals", ())])
        people, incidents = batch["people"], batch["incidents"]
        person_ids = (people[0][0], people[-1][0]) if people else (0, -1)
        incident_ids = (incidents[0][0], incidents[-1][0]) if incidents else (0, -1)
        inserted = {  # how to find this batch's rows, for their trail entries
            "people": ("t.id BETWEEN ? AND ?", person_ids),
            "incidents": ("t.id BETWEEN ? AND ?", incident_ids),
            "incident_substances": ("t.incident_id BETWEEN ? AND ?", incident_ids),
            "incident_co_offences": ("t.incident_id BETWEEN ? AND ?", incident_ids),
            "decisions": ("t.id > ?", (decisions_before,)),
            "referrals": ("t.id IN (SELECT id FROM batch_referrals)", ()),
            "referral_conditions": ("t.referral_id IN (SELECT id FROM batch_referrals)", ()),
        }
        try:
            for table, sql in BATCH_SQL.items():
                rows = batch.get(table)
                if rows:
                    c.executemany(sql, rows)
                    rows.clear()
                    if table == "people":  # their digests are salted
                        c.execute("INSERT INTO audit_salts (person_id, salt) SELECT id, randomblob(16) FROM people "
                                  "WHERE id BETWEEN ? AND ?", person_ids)
                    if table in inserted:  # entered before any later update of the same rows
                        if table == "decisions":  # the one id a bulk load takes from the table itself
                            reused = audit.still_standing(c, table, *inserted[table])
                            if reused:
                                raise StoreUnusable(f"{reused}; run `diversion audit verify`. Nothing was written")
                        audit.enter_inserted(c, table, *inserted[table])
        except integrity_errors() as exc:
            raise refusal_for(exc) from None
        marks = {"first_person": person_ids[0], "last_person": person_ids[1], "first": incident_ids[0],
                 "last": incident_ids[1]}
        for months in MONTHS_OF_BATCH:
            c.execute(months, marks)
        c.execute(IDS_OF_BATCH, marks)


# Bulk loading (import): rows arrive as tuples in these column orders and are
# written with executemany, parents before children.
BATCH_SQL = {
    "people": "INSERT INTO people (id, surname, forenames, dob, pnc, gender, ethnicity, surname_norm, "
              "forenames_norm, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    # fills what was missing; only touches (and audits) a person when something was
    "person_gaps": "UPDATE people SET pnc = coalesce(pnc, ?1), gender = coalesce(gender, ?2), "
                   "ethnicity = coalesce(ethnicity, ?3) WHERE id = ?4 AND ((pnc IS NULL AND ?1 IS NOT NULL) "
                   "OR (gender IS NULL AND ?2 IS NOT NULL) OR (ethnicity IS NULL AND ?3 IS NOT NULL))",
    "incidents": "INSERT INTO incidents (id, person_id, occurred_at, age, location, quantity, supply_suspected, "
                 "recorded_at, recorded_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "incident_substances": "INSERT INTO incident_substances (incident_id, position, substance, drug_class, "
                           "entered_as) VALUES (?, ?, ?, ?, ?)",
    "incident_co_offences": "INSERT INTO incident_co_offences (incident_id, position, description) "
                            "VALUES (?, ?, ?)",
    "decisions": "INSERT INTO decisions (person_id, incident_id, stage, eligible, scheme, reasons, "
                 "config_fingerprint, taken_at, taken_by) VALUES (?, ?, 'record', ?, ?, ?, ?, ?, ?)",
    "referrals": "INSERT INTO referrals (id, person_id, incident_id, scheme, pathway, one_shot_group, "
                 "lookback_since, status, provider, appointment, deadline, offered_at, offered_by, diverted_at, "
                 "closed_at, outcome_code, reason, updated_at, updated_by) "
                 "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "referral_conditions": "INSERT INTO referral_conditions (referral_id, position, key, description, due, "
                           "status, recorded_at, recorded_by, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
}

# The months a batch touched, counted for the report cache (migrations 6 and 10)
# in a statement each instead of by a trigger per row.
MONTHS_OF_BATCH = ("""
INSERT INTO month_changes (month, changes)
SELECT month, count(*) FROM (
    SELECT substr(occurred_at, 1, 7) AS month FROM incidents WHERE id BETWEEN :first AND :last
    UNION ALL SELECT substr(offered_at, 1, 7) FROM referrals WHERE id IN (SELECT id FROM batch_referrals)
    UNION ALL SELECT substr(diverted_at, 1, 7) FROM referrals WHERE id IN (SELECT id FROM batch_referrals)
    UNION ALL SELECT substr(closed_at, 1, 7) FROM referrals WHERE id IN (SELECT id FROM batch_referrals)
) AS touched WHERE month IS NOT NULL GROUP BY month
ON CONFLICT (month) DO UPDATE SET changes = month_changes.changes + excluded.changes""", """
INSERT INTO diversion_changes (month, changes)
SELECT substr(diverted_at, 1, 7), count(*) FROM referrals WHERE id IN (SELECT id FROM batch_referrals)
AND diverted_at IS NOT NULL
GROUP BY 1
ON CONFLICT (month) DO UPDATE SET changes = diversion_changes.changes + excluded.changes""")


# The highest ids a batch issued (migration 8's per-row triggers are held off in a bulk load).
IDS_OF_BATCH = """
INSERT INTO issued_ids (kind, last)
SELECT kind, max(n) FROM (
    SELECT 'person' AS kind, id AS n FROM people WHERE id BETWEEN :first_person AND :last_person
    UNION ALL SELECT 'incident', id FROM incidents WHERE id BETWEEN :first AND :last
    UNION ALL SELECT substr(id, 1, 6), CAST(substr(id, 8) AS INTEGER) FROM referrals
              WHERE id IN (SELECT id FROM batch_referrals)
) AS issued GROUP BY kind
ON CONFLICT (kind) DO UPDATE SET last = max(issued_ids.last, excluded.last)"""
