"""`diversion db migrate-to postgresql://…`: a SQLite file's whole record moved to a
server: people, incidents, decisions, referrals, conditions, erasures, issued ids,
change counts and the audit trail, which must verify on arrival.

In one server transaction: the target's user triggers are switched off (the rows
arrive as they are, already checked and audited where they were written), every
table is copied with COPY, the triggers are switched back on, identities move past
the copied ids, and `audit verify` runs on the target, inside the transaction. If
anything fails, nothing is left on the server.
"""

from __future__ import annotations

from diversion_cli.store.postgres import WRITE_LOCK

# parents before children; the trail last (report_cache is derived: it is left to refill)
TABLES = ("people", "incidents", "incident_substances", "incident_co_offences", "decisions", "referrals",
          "referral_conditions", "erasures", "issued_ids", "month_changes", "diversion_changes",
          "audit_transactions", "audit_entries", "audit_salts", "audit_conversions")
# identities that must count on from the copied ids
IDENTITIES = (("decisions", "id"),)
HELD = ("people", "incidents", "audit_entries")  # the tables whose figures the summary gives


def copy(source, target_conn, progress=None) -> dict:
    """Copy the SQLite connection `source` into the empty PostgreSQL database behind
    `target_conn` (store/postgres Connection); returns rows copied per table, and the
    verify result. Raises audit.Problem if the trail does not verify on arrival."""
    from diversion_cli.store import audit

    raw = target_conn.raw
    copied = {}
    target_conn.execute("BEGIN")
    try:
        target_conn.execute(f"SELECT pg_advisory_xact_lock({WRITE_LOCK})")
        for table in TABLES:
            target_conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        for table in TABLES:
            columns = [row[1] for row in source.execute(f"PRAGMA table_info({table})")]
            names = ", ".join(columns)
            rows = 0
            with raw.cursor().copy(f"COPY {table} ({names}) FROM STDIN") as pipe:
                for row in source.execute(f"SELECT {names} FROM {table}"):
                    pipe.write_row(tuple(row))
                    rows += 1
                    if progress and rows % 50_000 == 0:
                        progress(table, rows)
            copied[table] = rows
        for table in TABLES:
            target_conn.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
        for table, column in IDENTITIES:
            target_conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
                                f"coalesce((SELECT max({column}) FROM {table}), 0) + 1, false)")
        result = audit.verify(target_conn, begun=True)
        target_conn.execute("COMMIT")
    except BaseException:
        if target_conn.in_transaction:
            target_conn.execute("ROLLBACK")
        raise
    return {"copied": copied, "verified": result}
