"""What the analysts' reports count, in SQL, a calendar month at a time; the report
cache that keeps past months' figures; the views exports read."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import date

from diversion_cli.store.common import _json


class Analytics:
    # ---- analytics: per-month totals that reports.py regroups ------------------
    # An incident is counted by its person's gender and ethnicity, the verdict at
    # record and its latest live referral, each one seek in a covering index
    # (migration 10). The verdict comes as 'eligible:scheme' and the referral as
    # 'status:scheme:outcome code' (reports.py splits them): one seek each, where
    # separate columns would cost a join back to the row.
    VERDICT = ("(SELECT d.eligible || ':' || coalesce(d.scheme, '') FROM decisions d "
               "WHERE d.incident_id = i.id AND d.stage = 'record' ORDER BY d.id DESC LIMIT 1)")
    REFERRAL = ("(SELECT r.status || ':' || r.scheme || ':' || coalesce(CAST(r.outcome_code AS TEXT), '') FROM referrals r "
                "WHERE r.incident_id = i.id AND r.status != 'voided' ORDER BY r.offered_at DESC LIMIT 1)")
    PROFILE = f"CASE WHEN i.age < 18 THEN 1 ELSE 0 END, p.ethnicity, p.gender, {VERDICT}, {REFERRAL}"
    # A breakdown's own group column and the join it needs (by scheme, gender or
    # ethnicity, reports.py regroups the profile instead). An incident counts once
    # under each of its substances, and once under each of its drug classes.
    BREAKDOWNS = {
        "substance": ("s.substance", "LEFT JOIN incident_substances s ON s.incident_id = i.id"),
        "drug_class": ("s.drug_class", "LEFT JOIN incident_substances s ON s.incident_id = i.id AND s.position = "
                                       "(SELECT min(s2.position) FROM incident_substances s2 "
                                       "WHERE s2.incident_id = i.id AND s2.drug_class IS s.drug_class)"),
        "age_band": ("i.age", ""),
        "location": ("i.location", ""),
        "officer": ("i.recorded_by", ""),
    }
    IN_PERIOD = "i.occurred_at >= :s AND i.occurred_at < :e AND i.voided_at IS NULL"

    def _counted(self, by: str) -> tuple[str, str, str]:
        """(columns, joins, GROUP BY clause) that incidents are counted by."""
        if not by:
            return self.PROFILE, "JOIN people p INDEXED BY people_profile ON p.id = i.person_id", "1, 2, 3, 4, 5"
        group, join = self.BREAKDOWNS[by]
        return f"{self.VERDICT}, {self.REFERRAL}, {group}", join, "1, 2, 3"

    def incident_totals(self, start: str, end: str, by: str = "") -> list[tuple]:
        """Incidents that occurred in [start, end), voided ones left out, counted per
        group: (youth, ethnicity, gender, verdict, referral, incidents, first occurred_at),
        the first so that groups keep the order they appear in; for a breakdown `by`
        (BREAKDOWNS): (verdict, referral, group, incidents). Memory and the cache hold
        a row per group, never one per incident."""
        columns, join, groups = self._counted(by)
        first = "" if by else ", min(i.occurred_at)"
        return [tuple(row) for row in self.conn.execute(
            f"SELECT {columns}, count(*){first} FROM incidents i {join} WHERE {self.IN_PERIOD} GROUP BY {groups}",
            {"s": start, "e": end})]

    def overdue_totals(self, start: str, end: str, now: str, by: str = "") -> list[tuple]:
        """The incidents of [start, end) whose latest live referral is open past its
        deadline at `now`, grouped as incident_totals (without the first). Never
        cached, as it moves with the clock; found from the open referrals, which are
        few (referrals_queue)."""
        columns, join, groups = self._counted(by)
        return [tuple(row) for row in self.conn.execute(f"""
            SELECT {columns}, count(*)
            FROM referrals o INDEXED BY referrals_queue CROSS JOIN incidents i ON i.id = o.incident_id {join}
            WHERE o.status IN ('offered', 'accepted') AND o.deadline < :now AND {self.IN_PERIOD}
              AND o.id = (SELECT r.id FROM referrals r WHERE r.incident_id = i.id AND r.status != 'voided'
                             ORDER BY r.offered_at DESC LIMIT 1)
            GROUP BY {groups}""", {"s": start, "e": end, "now": now})]

    def month_activity(self, start: str, end: str, scheme: str = "") -> dict[str, int]:
        """Incidents recorded, referrals offered and diversions completed in [start, end),
        for one scheme if given (an incident counts under the scheme of its referral,
        or else the one it was found eligible for, as in incident_totals)."""
        incidents = "SELECT count(*) FROM incidents i WHERE occurred_at >= :s AND occurred_at < :e AND voided_at IS NULL"
        if scheme:
            incidents += """ AND coalesce(
                (SELECT r.scheme FROM referrals r WHERE r.incident_id = i.id AND r.status != 'voided'
                 ORDER BY r.offered_at DESC LIMIT 1),
                (SELECT d.scheme FROM decisions d WHERE d.id = (SELECT max(d2.id) FROM decisions d2
                 WHERE d2.incident_id = i.id AND d2.stage = 'record'))) = :scheme"""
        in_scheme = " AND +scheme = :scheme" if scheme else ""
        return dict(zip(("incidents", "offered", "completed"), self.conn.execute(f"""
            SELECT ({incidents}),
                   (SELECT count(*) FROM referrals WHERE offered_at >= :s AND offered_at < :e
                    AND +status != 'voided'{in_scheme}),
                   (SELECT count(*) FROM referrals WHERE closed_at >= :s AND closed_at < :e
                    AND +status = 'completed'{in_scheme})""", {"s": start, "e": end, "scheme": scheme}).fetchone()))

    # the end of a re-offending window, `since` plus {} months: each engine's own expression
    # of one definition (store/sqlite.py, store/postgres)
    ADD_MONTHS: str

    def reoffending(self, start: str, end: str, watched: str, scheme: str = "") -> dict[str, tuple[int, int, int]]:
        """One cohort: people diverted in [start, end), and people eligible but not
        diverted then (for one scheme if given: diverted on it, or found eligible for
        it). Per group: (people, with a new incident within 6 months, within 12
        months; 0 unless the cohort has been `watched` for '12' months)."""
        # each member's first later incident (one seek in incidents_person, made once: a
        # materialised step, not an expression repeated in each use) decides both windows;
        # the window's end is worked out only for those who came back
        within = f"count(CASE WHEN next IS NOT NULL AND next <= {self.ADD_MONTHS} THEN 1 END)"
        tail = f""", watched AS MATERIALIZED (
                       SELECT c.since, (SELECT min(j.occurred_at) FROM incidents j
                                        WHERE j.person_id = c.person_id AND j.occurred_at > c.since
                                          AND j.voided_at IS NULL) AS next
                       FROM cohort c)
                   SELECT count(*), {within.format(6)}, CASE WHEN :with_12 = 1 THEN {within.format(12)} ELSE 0 END
                   FROM watched"""
        cohorts = {
            # one entry per diversion (a person is diverted at most once per one-shot scope)
            "diverted": """SELECT person_id, diverted_at AS since FROM referrals
                           WHERE diverted_at >= :s AND diverted_at < :e
                             AND +status IN ('accepted', 'completed', 'failed')
                             AND (:scheme = '' OR scheme = :scheme)""",
            # each person's first incident of the month that was eligible when recorded and
            # did not lead to a diversion, by someone not diverted before it. (A later
            # diversion does not take them out: that would hide exactly the people who
            # came back.)
            "eligible, not diverted": """
                SELECT i.person_id, min(i.occurred_at) AS since
                FROM incidents i
                WHERE i.occurred_at >= :s AND i.occurred_at < :e AND i.voided_at IS NULL
                  -- first what rules most incidents out (most led to a diversion): checked in this order
                  AND NOT EXISTS (SELECT 1 FROM referrals r WHERE r.incident_id = i.id
                                  AND r.status IN ('accepted', 'completed', 'failed'))
                  AND (SELECT CASE WHEN d.eligible = 1 AND (:scheme = '' OR d.scheme = :scheme) THEN 1 END
                       FROM decisions d
                       WHERE d.incident_id = i.id AND d.stage = 'record' ORDER BY d.id DESC LIMIT 1) = 1
                  AND NOT EXISTS (SELECT 1 FROM referrals r WHERE r.person_id = i.person_id
                                  AND r.status IN ('accepted', 'completed', 'failed')
                                  AND r.diverted_at < i.occurred_at)
                GROUP BY i.person_id""",
        }
        params = {"s": start, "e": end, "with_12": int(watched == "12"), "scheme": scheme}
        return {group: tuple(self.conn.execute(f"WITH cohort AS ({cohort}){tail}", params).fetchone())
                for group, cohort in cohorts.items()}

    # ---- the report cache (migrations 6 and 10) -----------------------------------

    @contextmanager
    def snapshot(self):
        """Read a report's figures from one consistent state of the file, then keep
        what was computed for next time (best effort: a busy or read-only file
        just means no cache)."""
        self._fresh = {}
        self._begin_read()
        try:
            yield self
        finally:
            if self.conn.in_transaction:
                self.conn.execute("COMMIT")
        self._keep_fresh()

    # What the cache may hold: kind -> the query that computes it from its arguments.
    CACHED = {"facts": "incident_totals", "trend": "month_activity", "reoffending": "reoffending"}
    # Part of every key: change it whenever a query above changes what it returns, so
    # figures cached by an older diversion are never read (and are cleared out).
    CACHE_FORMAT = "v2"
    # An entry's stamp: the changes counted in the months of the dates it reads (any
    # change: month_changes) and in the months of the diversions it reads (only changes
    # to a diversion: diversion_changes, migration 10). Both only go up.
    STAMP = ("SELECT (SELECT coalesce(sum(changes), 0) FROM month_changes WHERE month BETWEEN ? AND ?) "
             "+ (SELECT coalesce(sum(changes), 0) FROM diversion_changes WHERE month BETWEEN ? AND ?)")
    NO_MONTHS = ("1", "0")  # an empty BETWEEN

    @classmethod
    def _months_read(cls, kind: str, args: list[str]) -> tuple[str, str, str, str]:
        """The months (YYYY-MM, inclusive) of the dates the query of a cache entry reads,
        then those of the diversions it reads, from its key alone, so a report and
        `audit verify` always agree on whether an entry is current. Raises ValueError
        for a key no report would write."""
        def month(day: str, plus: int = 0) -> str:
            n = int(day[:4]) * 12 + int(day[5:7]) - 1 + plus
            return f"{n // 12:04d}-{n % 12 + 1:02d}"

        dates = [date.fromisoformat(a).isoformat() for a in args[:2]]
        if kind == "facts" and len(args) == 3 and (args[2] == "" or args[2] in cls.BREAKDOWNS):
            start, end = dates
            return month(start), month(end, -1 if end.endswith("-01") else 0), *cls.NO_MONTHS
        if kind == "trend" and len(args) == 3:
            return month(dates[0]), month(dates[0]), *cls.NO_MONTHS
        if kind == "reoffending" and len(args) == 4 and args[2] in ("6", "12"):
            # the cohort's incidents, diversions and the new incidents of its window (SQLite
            # takes '+6 months' from the 31st into the month after the sixth); and any
            # diversion before the cohort, which takes a person out of the comparison group
            return month(dates[0]), month(dates[0], int(args[2]) + 1), "0000-00", month(dates[0])
        raise ValueError(kind)

    def figures(self, kind: str, *args: str):
        """incident_totals, month_activity or reoffending(*args), from the cache if
        none of the months they read has changed since they were computed."""
        import json

        key = ":".join((self.CACHE_FORMAT, kind, *args))
        months = self._months_read(kind, list(args))
        # the stamp and the entry it would match in one statement (on a server, one round trip, not two)
        stamp, kept = self.conn.execute(
            f"SELECT st.stamp, (SELECT c.value FROM report_cache c WHERE c.key = ? AND c.stamp = st.stamp) "
            f"FROM ({self.STAMP} AS stamp) AS st", (key, *months)).fetchone()
        if kept is not None:
            try:
                cached = json.loads(kept)
            except ValueError:
                cached = None  # not what diversion writes: computed afresh (`audit verify` names it)
            if isinstance(cached, list if kind == "facts" else dict):
                return cached
        value = getattr(self, self.CACHED[kind])(*args)  # tuples where the cache gives lists: read alike
        self._fresh[key] = (months, stamp, _json(value))
        return value

    def check_report_cache(self) -> int:
        """Recompute every entry that reports would still use; raises audit.Problem
        if one differs (it was edited outside diversion). Returns how many."""
        from diversion_cli.store.audit import Problem

        checked = 0
        for key, stamp, value in self.conn.execute("SELECT key, stamp, value FROM report_cache").fetchall():
            version, _, rest = key.partition(":")
            if version != self.CACHE_FORMAT:
                continue  # an older diversion's: never read
            kind, *args = rest.split(":")
            try:
                months = self._months_read(kind, args)
            except (ValueError, IndexError):
                raise Problem(f"the report cache entry {key} does not match the records: diversion never "
                              f"writes such a key, it was added outside diversion") from None
            current = self.conn.execute(self.STAMP, months).fetchone()[0]
            if stamp > current:  # counts only go up: a stamp from the future waits to be read
                raise Problem(f"the report cache entry {key} is stamped ahead of the records: it was added "
                              f"outside diversion")
            if current != stamp:
                continue  # stale: never read again, replaced when next computed
            if _json(getattr(self, self.CACHED[kind])(*args)) != value:
                raise Problem(f"the report cache entry {key} does not match the records: it was edited "
                              f"outside diversion")
            checked += 1
        return checked

    def _keep_fresh(self) -> None:
        """Keep what this report computed (best effort: a busy or read-only database just means
        no cache), and only what is still current: a change (an erasure above all) that landed
        after the report read its figures must not leave them behind."""
        fresh, self._fresh = self._fresh, {}
        if not fresh:
            return
        try:
            with self._briefly_locked():
                self.conn.execute("DELETE FROM report_cache WHERE key NOT LIKE ?", (self.CACHE_FORMAT + ":%",))
                current = [(key, stamp, value) for key, (months, stamp, value) in fresh.items()
                           if self.conn.execute(self.STAMP, months).fetchone()[0] == stamp]
                self.conn.executemany("INSERT INTO report_cache (key, stamp, value) VALUES (?, ?, ?) ON CONFLICT "
                                      "(key) DO UPDATE SET stamp = excluded.stamp, value = excluded.value", current)
                self.conn.execute("COMMIT")
        except self._errors()[0]:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")

    EXPORT_VIEWS = {"incidents": ("incidents_view", "occurred_at"), "referrals": ("referrals_view", "offered_at")}

    def export_rows(self, what: str, start: str | None, end: str | None, pseudonymised: bool = False):
        """(column names, row iterator) over an analyst view, streamed. A login that may not read
        personal data (a server's analyst) gets the view without it, for a pseudonymised extract."""
        view, column = self.EXPORT_VIEWS[what]
        if pseudonymised and not self.may_read(view):
            view = f"analyst_{what}"
        where, params = [], []
        if start:
            where.append(f"{column} >= ?")
            params.append(start)
        if end:
            where.append(f"{column} < ?")
            params.append(end)
        sql = f"SELECT * FROM {view}" + (" WHERE " + " AND ".join(where) if where else "") + f" ORDER BY {column}"
        cursor = getattr(self.conn, "stream", self.conn.execute)(sql, params)  # (a server streams it too)
        return [d[0] for d in cursor.description], cursor
