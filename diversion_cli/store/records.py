"""People, incidents, decisions, referrals and conditions: what the desk and the
coordinator read and write (inside the core's transactions)."""

from __future__ import annotations

from datetime import datetime

from diversion_cli.store.common import _iso
from diversion_cli.store.loading import BATCH_SQL


class Records:
    # ---- people --------------------------------------------------------

    def person(self, person_id: int) -> dict | None:
        return self._one("SELECT * FROM people WHERE id = ?", (person_id,))

    def person_by_pnc(self, pnc: str) -> dict | None:
        return self._one("SELECT * FROM people WHERE pnc = ?", (pnc,))

    def people_named(self, surname_norm: str, forenames_norm: str, dob: str) -> list[dict]:
        return self._all("SELECT * FROM people WHERE dob = ? AND surname_norm = ? AND forenames_norm = ? "
                         "ORDER BY id", (dob, surname_norm, forenames_norm))

    def same_person(self, pnc: str | None, surname_norm: str, forenames_norm: str, dob: str) -> tuple | None:
        """(id, pnc, surname_norm, forenames_norm, dob) of the person with this PNC, else of
        the first with these names and date of birth and no other PNC; one query (the bulk
        loader asks for every row)."""
        return self.conn.execute(
            "SELECT id, pnc, surname_norm, forenames_norm, dob FROM (SELECT *, 0 AS rank FROM people "
            "WHERE pnc = :pnc UNION ALL SELECT *, 1 FROM people WHERE dob = :dob AND surname_norm = :s "
            "AND forenames_norm = :f AND (pnc IS NULL OR :pnc IS NULL OR pnc = :pnc)) AS found ORDER BY rank, id LIMIT 1",
            {"pnc": pnc, "dob": dob, "s": surname_norm, "f": forenames_norm}).fetchone()

    def people_born_on(self, dobs: list[str]) -> list[dict]:
        """Candidates for near matching, each with whether they have been diverted or have an open referral."""
        marks = ",".join("?" * len(dobs))
        return self._all(
            f"SELECT p.*, EXISTS (SELECT 1 FROM referrals r WHERE r.person_id = p.id "
            f"AND r.status IN ('accepted', 'completed', 'failed')) AS diverted, "
            f"EXISTS (SELECT 1 FROM referrals r WHERE r.person_id = p.id "
            f"AND r.status IN ('offered', 'accepted')) AS open_referral "
            f"FROM people p WHERE p.dob IN ({marks}) ORDER BY p.id", dobs)

    def insert_person(self, *, surname, forenames, dob, pnc, gender, ethnicity, surname_norm,
                      forenames_norm, at: datetime, officer: str) -> int:
        person_id = self._next_id("people", "person")
        self.conn.execute(
            "INSERT INTO people (id, surname, forenames, dob, pnc, gender, ethnicity, surname_norm, "
            "forenames_norm, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (person_id, surname, forenames, dob, pnc, gender, ethnicity, surname_norm, forenames_norm, _iso(at),
             officer))
        return person_id

    def fill_person_gaps(self, person_id: int, pnc: str | None, gender: str | None, ethnicity: str | None) -> None:
        """Add details learnt at a later arrest without overwriting recorded ones."""
        # the same statement as a bulk load's: a person with nothing new is not touched
        # (no audit entry, no report months re-stamped)
        self.conn.execute(BATCH_SQL["person_gaps"], (pnc, gender, ethnicity, person_id))

    # ---- incidents and decisions ----------------------------------------

    def insert_incident(self, *, person_id: int, occurred_at: datetime, age: int, location, quantity,
                        supply_suspected: bool, substances: list[tuple[str, str, str]],
                        co_offences: list[str], at: datetime, officer: str) -> int:
        incident_id = self._next_id("incidents", "incident")
        self.conn.execute(
            "INSERT INTO incidents (id, person_id, occurred_at, age, location, quantity, supply_suspected, "
            "recorded_at, recorded_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (incident_id, person_id, _iso(occurred_at), age, location, quantity, int(supply_suspected), _iso(at),
             officer))
        self.conn.executemany(
            "INSERT INTO incident_substances (incident_id, position, substance, drug_class, entered_as) "
            "VALUES (?, ?, ?, ?, ?)",
            [(incident_id, i, key, cls, entered) for i, (key, cls, entered) in enumerate(substances)])
        self.conn.executemany(
            "INSERT INTO incident_co_offences (incident_id, position, description) VALUES (?, ?, ?)",
            [(incident_id, i, text) for i, text in enumerate(co_offences)])
        return incident_id

    def incident(self, incident_id: int) -> dict | None:
        row = self._one("SELECT * FROM incidents WHERE id = ?", (incident_id,))
        if row:
            self._attach_incident_details([row])
        return row

    def incidents_of(self, person_id: int) -> list[dict]:
        rows = self._all("SELECT * FROM incidents WHERE person_id = ? ORDER BY occurred_at, id", (person_id,))
        self._attach_incident_details(rows)
        return rows

    def incidents_between(self, person_id: int, start: datetime, end: datetime) -> list[dict]:
        """A person's live (not voided) incidents that occurred in [start, end]."""
        rows = self._all("SELECT * FROM incidents WHERE person_id = ? AND occurred_at >= ? AND occurred_at <= ? "
                         "AND voided_at IS NULL ORDER BY occurred_at, id", (person_id, _iso(start), _iso(end)))
        self._attach_incident_details(rows)
        return rows

    def _attach_incident_details(self, rows: list[dict]) -> None:
        if not rows:
            return
        ids = [r["id"] for r in rows]
        marks = ",".join("?" * len(ids))
        by_id = {r["id"]: r for r in rows}
        for r in rows:
            r["substances"], r["co_offences"], r["decision"] = [], [], None
        for s in self._all(f"SELECT * FROM incident_substances WHERE incident_id IN ({marks}) "
                           f"ORDER BY incident_id, position", ids):
            by_id[s["incident_id"]]["substances"].append(
                {"substance": s["substance"], "drug_class": s["drug_class"], "entered_as": s["entered_as"]})
        for c in self._all(f"SELECT * FROM incident_co_offences WHERE incident_id IN ({marks}) "
                           f"ORDER BY incident_id, position", ids):
            by_id[c["incident_id"]]["co_offences"].append(c["description"])
        for d in self._all(f"SELECT * FROM decisions WHERE incident_id IN ({marks}) ORDER BY id", ids):
            by_id[d["incident_id"]]["decision"] = d  # the latest decision wins; reasons stay JSON text

    def insert_decision(self, *, person_id: int, incident_id: int | None, stage: str, eligible: bool,
                        scheme: str | None, reasons: list[dict], fingerprint: str, at: datetime,
                        officer: str) -> int:
        import json

        cur = self.conn.execute(
            "INSERT INTO decisions (person_id, incident_id, stage, eligible, scheme, reasons, "
            "config_fingerprint, taken_at, taken_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (person_id, incident_id, stage, int(eligible), scheme, json.dumps(reasons, ensure_ascii=False),
             fingerprint, _iso(at), officer))
        return cur.fetchone()[0]

    # ---- referrals -----------------------------------------------------

    def referrals_of(self, person_id: int) -> list[dict]:
        return self._all("SELECT * FROM referrals WHERE person_id = ? ORDER BY offered_at, id", (person_id,))

    def referral(self, referral_id: str) -> dict | None:
        return self._one("SELECT * FROM referrals WHERE id = ?", (referral_id,))

    def live_referral_for_incident(self, incident_id: int) -> dict | None:
        return self._one("SELECT * FROM referrals WHERE incident_id = ? AND status NOT IN ('voided', 'declined')",
                         (incident_id,))

    def next_referral_id(self, year: int) -> str:
        """The next R-YYYY-NNNNNN; call inside a write transaction so it cannot be taken twice."""
        row = self.conn.execute("SELECT max(id) FROM referrals WHERE id >= ? AND id < ?",
                                (f"R-{year}-", f"R-{year}-:")).fetchone()
        last = int(row[0].rsplit("-", 1)[1]) if row[0] else 0
        referral_id = f"R-{year}-{max(last, self._issued(f'R-{year}')) + 1:06d}"
        self._never_issued("referral", referral_id)
        return referral_id

    def insert_referral(self, *, referral_id: str, person_id: int, incident_id: int, scheme: str, pathway: str,
                        one_shot_group: str, lookback_since: str | None, provider: str,
                        appointment: datetime | None, deadline: datetime, at: datetime, officer: str,
                        conditions: list[tuple[str, str, datetime]]) -> None:
        self.conn.execute(
            "INSERT INTO referrals (id, person_id, incident_id, scheme, pathway, one_shot_group, lookback_since, "
            "status, provider, appointment, deadline, offered_at, offered_by, updated_at, updated_by) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, 'offered', ?, ?, ?, ?, ?, ?, ?)",
            (referral_id, person_id, incident_id, scheme, pathway, one_shot_group, lookback_since, provider,
             _iso(appointment), _iso(deadline), _iso(at), officer, _iso(at), officer))
        self.conn.executemany(
            "INSERT INTO referral_conditions (referral_id, position, key, description, due) VALUES (?, ?, ?, ?, ?)",
            [(referral_id, i, key, text, _iso(due)) for i, (key, text, due) in enumerate(conditions)])

    def set_referral_status(self, referral_id: str, status: str, *, at: datetime, officer: str,
                            reason: str | None = None, outcome_code: int | None = None) -> None:
        diverted = status == "accepted"
        closing = status in ("completed", "failed", "declined", "voided")
        self.conn.execute(
            "UPDATE referrals SET status = ?, reason = coalesce(?, reason), "
            "diverted_at = CASE WHEN ? THEN ? ELSE diverted_at END, "
            "closed_at = CASE WHEN ? THEN ? ELSE closed_at END, "
            "outcome_code = coalesce(?, outcome_code), updated_at = ?, updated_by = ? WHERE id = ?",
            (status, reason, diverted, _iso(at), closing, _iso(at), outcome_code, _iso(at), officer, referral_id))

    def correct_referral(self, referral_id: str, status: str, *, at: datetime, officer: str, reason: str,
                         outcome_code: int | None, closed_at: datetime | None) -> None:
        """A supervisor's correction of a closed referral (migration 7): the correction
        flag exists only inside this statement's transaction."""
        self.conn.execute("INSERT INTO correction (active) VALUES (1)")
        try:
            self.conn.execute(
                "UPDATE referrals SET status = ?, reason = ?, outcome_code = ?, closed_at = coalesce(?, closed_at), "
                "updated_at = ?, updated_by = ? WHERE id = ?",
                (status, reason, outcome_code, _iso(closed_at), _iso(at), officer, referral_id))
        finally:
            self.conn.execute("DELETE FROM correction")

    def conditions_of(self, referral_id: str) -> list[dict]:
        return self._all("SELECT * FROM referral_conditions WHERE referral_id = ? ORDER BY position",
                         (referral_id,))

    def set_condition(self, referral_id: str, position: int, status: str, *, at: datetime, officer: str,
                      note: str | None) -> None:
        self.conn.execute(
            "UPDATE referral_conditions SET status = ?, recorded_at = ?, recorded_by = ?, note = ? "
            "WHERE referral_id = ? AND position = ?",
            (status, _iso(at), officer, note, referral_id, position))

    def void_incident(self, incident_id: int, at: datetime, reason: str) -> None:
        self.conn.execute("UPDATE incidents SET voided_at = ?, void_reason = ? WHERE id = ?",
                          (_iso(at), reason, incident_id))

    def amend_incident(self, incident_id: int, changes: dict) -> None:
        allowed = {"occurred_at", "age", "location", "quantity", "supply_suspected"}
        assert set(changes) <= allowed, changes
        sets = ", ".join(f"{column} = ?" for column in changes)
        self.conn.execute(f"UPDATE incidents SET {sets} WHERE id = ?", (*changes.values(), incident_id))

    def amend_person(self, person_id: int, changes: dict) -> None:
        allowed = {"surname", "forenames", "dob", "pnc", "gender", "ethnicity", "surname_norm", "forenames_norm"}
        assert set(changes) <= allowed, changes
        sets = ", ".join(f"{column} = ?" for column in changes)
        self.conn.execute(f"UPDATE people SET {sets} WHERE id = ?", (*changes.values(), person_id))

    def erase_person(self, person_id: int, at: datetime, officer: str, reason: str) -> dict:
        """Delete everything about one person and blank their audit snapshots.
        The trail keeps the digests and the ids, so it still verifies."""
        c = self.conn
        c.execute("INSERT INTO erasures (person_id, erased_at, erased_by, reason) VALUES (?, ?, ?, ?)",
                  (person_id, _iso(at), officer, reason))
        referrals = "SELECT id FROM referrals WHERE person_id = ?"
        incidents = "SELECT id FROM incidents WHERE person_id = ?"
        removed = {
            "conditions": c.execute(f"DELETE FROM referral_conditions WHERE referral_id IN ({referrals})",
                                    (person_id,)).rowcount,
            "referrals": c.execute("DELETE FROM referrals WHERE person_id = ?", (person_id,)).rowcount,
            "decisions": c.execute("DELETE FROM decisions WHERE person_id = ?", (person_id,)).rowcount,
            "substances": c.execute(f"DELETE FROM incident_substances WHERE incident_id IN ({incidents})",
                                    (person_id,)).rowcount,
            "co_offences": c.execute(f"DELETE FROM incident_co_offences WHERE incident_id IN ({incidents})",
                                     (person_id,)).rowcount,
            "incidents": c.execute("DELETE FROM incidents WHERE person_id = ?", (person_id,)).rowcount,
            "people": c.execute("DELETE FROM people WHERE id = ?", (person_id,)).rowcount,
        }
        c.execute("DELETE FROM report_cache")  # cached figures were computed with them in
        self.seal_audit()
        # the trail keeps ids and digests; without the salt, no digest can confirm a guess
        c.execute("UPDATE audit_entries SET old = NULL WHERE person_id = ? AND old IS NOT NULL", (person_id,))
        c.execute("DELETE FROM audit_salts WHERE person_id = ?", (person_id,))
        return removed

    def referral_queue(self, statuses: tuple[str, ...], due_before: str | None) -> list[dict]:
        """Referrals in the given states, joined with the person, most urgent first."""
        marks = ",".join("?" * len(statuses))
        params: list = list(statuses)
        where = f"r.status IN ({marks})"
        if due_before:
            where += " AND r.deadline < ?"
            params.append(due_before)
        return self._all(
            f"SELECT r.*, p.surname, p.forenames, i.occurred_at FROM referrals r "
            f"JOIN people p ON p.id = r.person_id JOIN incidents i ON i.id = r.incident_id "
            f"WHERE {where} ORDER BY r.deadline, r.id", params)

    # ---- the desk's look-ups (issue 13) ------------------------------------

    def people_by_surname(self, surname_norm: str, forenames_start: str = "", dob: str | None = None,
                          limit: int = 50) -> list[dict]:
        """People with this surname whose first forenames start so, each with their last incident."""
        start = forenames_start.replace("!", "!!").replace("%", "!%").replace("_", "!_")
        return self._all(
            "SELECT p.*, i.id AS last_incident, i.occurred_at AS last_incident_at FROM people p "
            "LEFT JOIN incidents i ON i.id = (SELECT i2.id FROM incidents i2 WHERE i2.person_id = p.id "
            "ORDER BY i2.occurred_at DESC, i2.id DESC LIMIT 1) WHERE p.surname_norm = ? "
            "AND p.forenames_norm LIKE ? ESCAPE '!' AND (? IS NULL OR p.dob = ?) "
            "ORDER BY p.forenames_norm, p.dob, p.id LIMIT ?",
            (surname_norm, start + "%", dob, dob, limit))

    def incidents_since(self, since: datetime, officer: str | None = None, location: str | None = None,
                        limit: int = 500) -> list[dict]:
        """Incidents that occurred from `since`, newest first, each with its person, its
        current decision and its live referral; optionally one officer's, or at a place."""
        rows = self._all(
            "SELECT i.*, p.surname, p.forenames, p.dob, p.pnc, r.id AS referral_id, r.status AS referral_status "
            "FROM incidents i JOIN people p ON p.id = i.person_id "
            "LEFT JOIN referrals r ON r.id = (SELECT r2.id FROM referrals r2 WHERE r2.incident_id = i.id "
            "AND r2.status != 'voided' ORDER BY r2.offered_at DESC LIMIT 1) "
            "WHERE i.occurred_at >= ? AND (? IS NULL OR i.recorded_by = ?) "
            "AND (? IS NULL OR instr(lower(i.location), lower(?)) > 0) "
            "ORDER BY i.occurred_at DESC, i.id DESC LIMIT ?",
            (_iso(since), officer, officer, location, location, limit))
        self._attach_incident_details(rows)
        return rows

    def officers_on_record(self) -> list[str]:
        """Every collar number that has recorded an incident, any time."""
        return [row["recorded_by"] for row in self._all("SELECT DISTINCT recorded_by FROM incidents "
                                                         "ORDER BY recorded_by")]

    def decisions_of_incident(self, incident_id: int) -> list[dict]:
        return self._all("SELECT * FROM decisions WHERE incident_id = ? ORDER BY id", (incident_id,))

    def referrals_of_incident(self, incident_id: int) -> list[dict]:
        return self._all("SELECT * FROM referrals WHERE incident_id = ? ORDER BY offered_at, id", (incident_id,))

    def replace_incident_substances(self, incident_id: int, substances: list[tuple[str, str, str]]) -> None:
        """An amendment: the substances as corrected (the old rows stay in the audit trail)."""
        self.conn.execute("DELETE FROM incident_substances WHERE incident_id = ?", (incident_id,))
        self.conn.executemany(
            "INSERT INTO incident_substances (incident_id, position, substance, drug_class, entered_as) "
            "VALUES (?, ?, ?, ?, ?)",
            [(incident_id, i, key, cls, entered) for i, (key, cls, entered) in enumerate(substances)])

    def replace_incident_co_offences(self, incident_id: int, co_offences: list[str]) -> None:
        self.conn.execute("DELETE FROM incident_co_offences WHERE incident_id = ?", (incident_id,))
        self.conn.executemany(
            "INSERT INTO incident_co_offences (incident_id, position, description) VALUES (?, ?, ?)",
            [(incident_id, i, text) for i, text in enumerate(co_offences)])
