"""The store's core, whatever the engine: opening a write transaction that seals every
change into the audit trail before it commits, refusing changes made outside diversion,
issuing ids never issued before, reading the trail, and the database's status."""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from diversion_cli.errors import StoreUnusable
from diversion_cli.store.common import _iso, refusal_for
from diversion_cli.store.migrations import ENTITY_CODES

BULK_LOAD_FROM = 5  # the migration that added the bulk-load flag
CORRECTION_FROM = 7  # the migration that added the correction flag


class StoreCore(ABC):
    """One open database (an engine's subclass says how it is opened and locked)."""

    LOGIN = "NULL"  # who made a transaction, beyond the collar number it claims: a server's login
    def __init__(self, path: Path, conn):
        self.path = path
        self.conn = conn
        self._audit_context: tuple | None = None
        self._audited = False  # writes are sealed into the trail (migration 9 on)
        self._accepting = False  # this transaction enters changes made outside diversion, openly
        self._fresh: dict[str, tuple] = {}  # report figures computed in this snapshot, to keep
        self.upgraded_from: int | None = None  # the schema version this opening brought up to date

    def close(self) -> None:
        self.conn.close()

    def schema_version(self) -> int:
        return self.conn.execute("SELECT coalesce(max(version), 0) FROM migrations").fetchone()[0]

    # ---- transactions --------------------------------------------------

    @contextmanager
    def transaction(self, operation: str, officer: str, reason: str | None = None,
                    accept_outside_changes: bool = False):
        """A write transaction holding the database write lock from the start.
        Every change in it is sealed into the audit trail, stamped with the
        operation, the officer and the reason, before it commits. It refuses to
        start while a change made outside diversion waits unsealed: sealing it
        here would launder it under this officer's name."""
        try:
            self._begin_write()
            if not accept_outside_changes:
                self._refuse_outside_changes()
        except BaseException as exc:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            if isinstance(exc, self._errors()[0]):
                raise self._unusable(exc) from None
            raise
        self._audit_context = (_iso(datetime.now()), officer, operation, reason)
        self._accepting = accept_outside_changes
        try:
            yield self
            self.seal_audit()
            self.conn.execute("COMMIT")
        except BaseException as exc:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            errors, integrity = self._errors()
            if isinstance(exc, integrity):
                raise refusal_for(exc) from None
            if isinstance(exc, errors):
                raise self._unusable(exc) from None
            raise
        finally:
            self._audit_context = None

    # ---- what each engine says for itself (store/sqlite.py, store/postgres) --------

    @abstractmethod
    def _begin_write(self) -> None:
        """Open a write transaction holding the write lock from its first statement."""

    @abstractmethod
    def _begin_read(self) -> None:
        """Open a transaction that reads one consistent state."""

    @abstractmethod
    def _briefly_locked(self):
        """A context: a write transaction begun if the write lock comes within a moment
        (a report's cache is not worth a desk's wait); the caller commits."""

    @abstractmethod
    def _errors(self) -> tuple[tuple[type, ...], tuple[type, ...]]:
        """(the driver's errors, its integrity errors)."""

    @abstractmethod
    def _unusable(self, exc: Exception) -> StoreUnusable:
        """The one-line StoreUnusable for a driver error."""

    def accept_outside_changes(self) -> int:
        """Inside a transaction opened with accept_outside_changes: clear flags set outside
        diversion; returns how many waiting changes the commit will seal (and flags cleared)."""
        waiting = self.conn.execute("SELECT count(*) FROM audit_pending").fetchone()[0]
        for flag in ("bulk_load", "correction"):
            waiting += self.conn.execute(f"DELETE FROM {flag}").rowcount
        return waiting

    def refuse_unaudited(self, person_id: int) -> None:
        """Before a decision about this person: everything of theirs it may read (their record,
        incidents with substances and other offences, decisions, referrals and conditions) must
        be what the trail says (a change made with the triggers switched off is caught here,
        not after the decision rests on it)."""
        if not self._audited:
            return
        from diversion_cli.store import audit

        incidents = "t.incident_id IN (SELECT id FROM incidents WHERE person_id = ?)"
        for table, where in (("people", "t.id = ?"), ("incidents", "t.person_id = ?"), ("incident_substances", incidents),
                             ("incident_co_offences", incidents), ("decisions", incidents),  # (by index)
                             ("referrals", "t.person_id = ?"),
                             ("referral_conditions", "t.referral_id IN (SELECT id FROM referrals WHERE person_id = ?)")):
            changed = audit.first_unaudited(self.conn, table, where, (person_id,))
            if changed:
                raise StoreUnusable(f"{changed}; run `diversion audit verify`. Nothing was written")

    def note(self, text: str) -> None:
        """Add to the reason this transaction's changes are entered in the trail with
        (e.g. the officer's statement that let a referral through)."""
        at, officer, operation, reason = self._audit_context
        self._audit_context = (at, officer, operation, f"{reason}; {text}" if reason else text)

    def _refuse_outside_changes(self, version: int | None = None) -> None:
        if not self._audited and version is None:
            return
        if self.conn.execute("SELECT EXISTS (SELECT 1 FROM audit_pending)").fetchone()[0]:
            raise StoreUnusable("changes made outside diversion are pending: run `diversion audit verify`; "
                                "nothing was written")
        version = self.schema_version() if version is None else version
        if self._audited and self.conn.execute(
                "SELECT (SELECT coalesce(max(seq), 0) FROM audit_entries) "
                "> (SELECT coalesce(max(last_seq), 0) FROM audit_transactions)").fetchone()[0]:
            # sealing now would chain them into this officer's transaction
            raise StoreUnusable("entries were added to the audit trail outside diversion and wait unsealed: run "
                                "`diversion audit verify`; nothing was written")
        for flag, since in (("bulk_load", BULK_LOAD_FROM), ("correction", CORRECTION_FROM)):
            if version >= since and self.conn.execute(f"SELECT EXISTS (SELECT 1 FROM {flag})").fetchone()[0]:
                raise StoreUnusable(f"the {flag.replace('_', '-')} flag was set outside diversion: run "
                                    f"`diversion audit verify`; nothing was written")

    def seal_audit(self) -> None:
        """Seal the changes made so far in this transaction (bulk loads call it per batch)."""
        if self._audited:
            from diversion_cli.store import audit  # hashlib: only writes and verification need it

            at, officer, operation, reason = self._audit_context
            try:
                audit.seal(self.conn, at, officer, operation, reason, accepting=self._accepting)
            except audit.Problem as problem:
                raise StoreUnusable(f"{problem}; run `diversion audit verify`. Nothing was written") from None

    def _all(self, sql: str, params=()) -> list[dict]:
        try:
            return [dict(row) for row in self.conn.execute(sql, params)]
        except self._errors()[0] as exc:
            raise self._unusable(exc) from None

    def _one(self, sql: str, params=()) -> dict | None:
        rows = self._all(sql, params)
        return rows[0] if rows else None

    # ---- the audit trail ------------------------------------------------------

    def check_anchors(self, anchors: list[tuple[int, str, int, str]]) -> None:
        from diversion_cli.store import audit

        audit.check_anchors(self.conn, anchors)

    def audit_entries(self, person_id: int | None = None, referral_id: str | None = None,
                      limit: int = 200) -> list[dict]:
        """The most recent `limit` entries (oldest first), whole rows before and after each."""
        from diversion_cli.store import audit

        where, params = [], []
        if person_id is not None:
            where.append("e.person_id = ?")
            params.append(person_id)
        if referral_id is not None:  # the referral and its conditions
            where.append("((e.entity = 'r' AND e.entity_id = ?) OR (e.entity = 'c' AND e.entity_id > ? "
                         "AND e.entity_id < ?))")
            params += [referral_id, referral_id + "/", referral_id + "0"]
        sql = (f"SELECT e.seq, t.at, t.officer, {self.LOGIN} AS login, t.operation, t.reason, e.action, e.entity, "
               "e.entity_id, e.person_id, "
               "e.old, e.old_digest FROM audit_entries e JOIN audit_transactions t ON t.last_seq = "
               "(SELECT min(last_seq) FROM audit_transactions WHERE last_seq >= e.seq)"
               + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY e.seq DESC LIMIT ?")
        return audit.history(self.conn, list(reversed(self._all(sql, (*params, limit)))))

    def status(self) -> dict:
        counts = {}
        for table in ("people", "incidents", "referrals", "decisions"):
            counts[table] = self.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        counts["audit_entries"], counts["audit_transactions"] = self.conn.execute(
            "SELECT (SELECT coalesce(max(seq), 0) FROM audit_entries), (SELECT count(*) FROM audit_transactions)"
        ).fetchone()
        last = self.conn.execute("SELECT at, officer, operation FROM audit_transactions "
                                 "ORDER BY last_seq DESC LIMIT 1").fetchone()
        open_referrals = self.conn.execute(
            "SELECT count(*) FROM referrals WHERE status IN ('offered', 'accepted')").fetchone()[0]
        return {"schema_version": self.schema_version(), "counts": counts, "open_referrals": open_referrals,
                "last_write": {"at": last[0], "officer": last[1], "operation": last[2]} if last else None}

    def supervises(self, collar: str) -> bool | None:
        """Whether a collar number is a supervisor's (a server knows its logins' roles; a file, None)."""
        return None

    def may_read(self, table: str) -> bool:
        """Whether this login may read a table or view (on a file, its one user may read all)."""
        return True

    def identity(self) -> dict | None:
        """Who is signed in, on a server (store/postgres/store.py); None on a file, which has one
        user: its OS account."""
        return None

    @abstractmethod
    def after_erasure(self) -> str | None:
        """After an erasure commits: what of the erased person still lies outside what SQL can
        read (a journal, old row versions), for the officer to be told; None if nothing does."""

    # ---- ids never issued twice (migration 8) ----------------------------------

    def next_row_ids(self) -> tuple[int, int]:
        """The next person and incident ids never issued before, erasures included (inside a write
        transaction)."""
        return self._next_id("people", "person"), self._next_id("incidents", "incident")

    def _next_id(self, table: str, kind: str) -> int:
        last = self.conn.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()[0]
        issued = max(last, self._issued(kind)) + 1
        self._never_issued(kind, str(issued))
        return issued

    def _never_issued(self, entity: str, entity_id: str) -> None:
        """An id about to be issued must not be in the trail already: if it is, the record of
        issued ids was lowered outside diversion (one index look-up)."""
        if self._audited and self.conn.execute("SELECT 1 FROM audit_entries WHERE entity = ? AND entity_id = ? LIMIT 1",
                                               (ENTITY_CODES[entity], entity_id)).fetchone():
            raise StoreUnusable(f"{entity} id {entity_id} was issued before (it is in the audit trail): the record "
                                f"of issued ids was changed outside diversion; run `diversion audit verify`. "
                                f"Nothing was written")

    def _issued(self, kind: str) -> int:
        """The highest id of this kind ever issued, erased or not (migration 8)."""
        row = self.conn.execute("SELECT last FROM issued_ids WHERE kind = ?", (kind,)).fetchone()
        return row[0] if row else 0
