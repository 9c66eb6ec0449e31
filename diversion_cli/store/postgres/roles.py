"""Who may do what on a shared server, enforced by the server (diversion_cli/roles.py says
which commands each role runs; this says which rows and columns it may read and write).

Five group roles, made once per server by `diversion db roles init` and granted to the
officers' own logins with `diversion db roles grant`:

    desk < coordinator < supervisor < admin,   analyst < admin

Each group holds its own rights and those of the groups it is granted. No group may
write the trail, its waiting changes, the change counts or the issued ids: triggers and
diversion_seal do that as the schema's owner. What a role may not change it is not
granted (a desk cannot move an accepted referral to another person: it has no UPDATE on
referrals), and what an analyst may not read it is not granted column by column (no
name, date of birth, PNC, free text or audit snapshot), so `psql` is held as the CLI is.
Row-level security is not used: every role's reach is the whole force's record (the one
shot is checked force-wide); what differs is which columns and which changes.
"""

from __future__ import annotations

GROUPS = {role: f"diversion_{role}" for role in ("desk", "coordinator", "supervisor", "analyst", "admin")}
# group -> the groups it is granted (and so holds the rights of)
MEMBER_OF = {"coordinator": ("desk",), "supervisor": ("coordinator",),
             "admin": ("supervisor", "coordinator", "desk", "analyst")}

PERSON_RECORD = ("people", "incidents", "incident_substances", "incident_co_offences", "decisions", "referrals",
                 "referral_conditions")
EVERYONE_READS = ("migrations", "bulk_load", "correction", "month_changes", "diversion_changes", "report_cache",
                  "officer_logins", "one_shot_scopes")

# What an analyst reads of the person's record: no name, date of birth, PNC, free text
# (location, quantity, what the officer typed, reasons, notes) or trail.
ANALYST_COLUMNS = {
    "people": ("id", "gender", "ethnicity"),
    "incidents": ("id", "person_id", "occurred_at", "age", "supply_suspected", "recorded_at", "recorded_by",
                  "voided_at"),
    "incident_substances": ("incident_id", "position", "substance", "drug_class"),
    "incident_co_offences": ("incident_id", "position"),
    "decisions": ("id", "person_id", "incident_id", "stage", "eligible", "scheme", "config_fingerprint", "taken_at",
                  "taken_by"),
    "referrals": ("id", "person_id", "incident_id", "scheme", "pathway", "one_shot_group", "lookback_since",
                  "status", "provider", "appointment", "deadline", "offered_at", "offered_by", "diverted_at",
                  "closed_at", "outcome_code", "updated_at", "updated_by"),
    "referral_conditions": ("referral_id", "position", "key", "due", "status", "recorded_at", "recorded_by"),
    "erasures": ("person_id", "erased_at"),
}
# What a desk reads of the trail: enough to check a person's rows are as it says (digests),
# not the old values it keeps.
TRAIL_DIGESTS = {
    "audit_entries": ("seq", "action", "entity", "entity_id", "person_id", "digest", "old_digest"),
    "audit_pending": ("id",),
}
HELPERS = ("diversion_json(anyelement)", "diversion_digest(bytea, text)",
           "diversion_entry_text(integer, text, text, text, integer, bytea, bytea)",
           "diversion_transaction_text(integer, text, text, text, text, text)", "diversion_add_months(text, integer)")


def _columns(names) -> str:
    return ", ".join(names)


def grants() -> str:
    """Each group's rights on this schema's tables, views and functions (idempotent)."""
    g = GROUPS
    everyone = ", ".join(g.values())
    sql = [f"GRANT USAGE ON SCHEMA {{schema}} TO {everyone};",
           f"GRANT SELECT ON {', '.join(EVERYONE_READS)} TO {everyone};",
           f"GRANT EXECUTE ON FUNCTION {', '.join(HELPERS)} TO {everyone};",
           # (the report cache is written by those who may read the records it sums: an analyst's figures
           # are served to others, who could not check them)
           f"GRANT INSERT, UPDATE, DELETE ON report_cache TO {g['supervisor']};",
           # the desk: the person's record, the trail's digests; records incidents and referrals
           f"GRANT SELECT ON {', '.join(PERSON_RECORD)}, erasures, issued_ids, audit_transactions, audit_salts, "
           f"audit_conversions, referrals_view, people_view, incidents_view TO {g['desk']};",
           *(f"GRANT SELECT ({_columns(cols)}) ON {table} TO {g['desk']};" for table, cols in TRAIL_DIGESTS.items()),
           f"GRANT INSERT ON {', '.join(PERSON_RECORD)} TO {g['desk']};",
           # (a later arrest fills in what a person's record lacks: schema.py's people_gaps_only)
           f"GRANT UPDATE (pnc, gender, ethnicity) ON people TO {g['desk']};",
           f"GRANT EXECUTE ON FUNCTION diversion_seal(text, text, text, text) TO {g['desk']};",
           # the coordinator: outcomes and conditions (never who or which incident a referral is for)
           f"GRANT UPDATE (status, reason, diverted_at, closed_at, outcome_code, updated_at, updated_by) "
           f"ON referrals TO {g['coordinator']};",
           f"GRANT UPDATE (status, recorded_at, recorded_by, note) ON referral_conditions TO {g['coordinator']};",
           # the supervisor: corrections of closed referrals, voids, the trail's history
           f"GRANT INSERT, DELETE ON correction TO {g['supervisor']};",
           f"GRANT UPDATE (voided_at, void_reason) ON incidents TO {g['supervisor']};",
           f"GRANT SELECT ON audit_entries, audit_pending, audit_log TO {g['supervisor']};",
           # the analyst: figures, never the person
           *(f"GRANT SELECT ({_columns(cols)}) ON {table} TO {g['analyst']};"
             for table, cols in ANALYST_COLUMNS.items()),
           f"GRANT SELECT ON analyst_incidents, analyst_referrals TO {g['analyst']};",
           # (and for `db status`, how long the trail is and when it was last written: no snapshot, no reason)
           f"GRANT SELECT (seq) ON audit_entries TO {g['analyst']};",
           f"GRANT SELECT (last_seq, at, officer, operation) ON audit_transactions TO {g['analyst']};",
           # the admin: amend, erase, import, accept outside changes, roles (never the schema's version)
           f"GRANT SELECT, INSERT, UPDATE, DELETE ON {', '.join(PERSON_RECORD)}, erasures, issued_ids, bulk_load, "
           f"correction, month_changes, diversion_changes, audit_transactions, audit_entries, audit_salts, "
           f"audit_pending, officer_logins, one_shot_scopes TO {g['admin']};",
           f"GRANT EXECUTE ON FUNCTION diversion_close(text, text, text, text) TO {g['admin']};"]
    return "\n".join(sql)


def database_grants(database: str) -> str:
    """Only the groups' logins connect (a login with no role cannot so much as take the writers'
    lock), and the admins may create the scratch schema `audit verify` builds and rolls back, and
    the temporary table an import uses."""
    g = GROUPS
    return (f"REVOKE CONNECT, TEMPORARY ON DATABASE {database} FROM PUBLIC;\n"
            f"GRANT CONNECT ON DATABASE {database} TO {', '.join(g.values())};\n"
            f"GRANT CREATE, TEMPORARY ON DATABASE {database} TO {g['admin']};")


def create_groups() -> str:
    """The group roles (once per server; NOLOGIN: an officer signs in as themselves), each
    granted the groups below it; the admin group may grant every group but its own."""
    made = "\n".join(f"IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{name}') THEN "
                     f"CREATE ROLE {name} NOLOGIN; END IF;" for name in GROUPS.values())
    granted = "\n".join(f"GRANT {GROUPS[below]} TO {GROUPS[role]}{' WITH ADMIN OPTION' if role == 'admin' else ''};"
                        for role, belows in MEMBER_OF.items() for below in belows)
    return f"DO $$ BEGIN\n{made}\nEND $$;\n{granted}"
