"""Sealing and verifying the hash-chained audit log (see migration 3).

Every entry's hash covers the previous entry's hash and the digests of its
old and new row snapshots. `verify` walks the chain, then checks that each
audited row in the database is exactly what its last sealed entry says, and
that nothing is waiting unsealed in audit_pending (a change made outside
diversion, e.g. with the sqlite3 shell).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3

from diversion_cli.store.migrations import SNAPSHOTS

GENESIS = "0" * 64
SEAL_CHUNK = 20_000


def digest(salt: str | None, text: str | None) -> str | None:
    return None if text is None else hashlib.sha256(((salt or "") + text).encode()).hexdigest()


# How verify finds the row an entry is about, through the table's primary key.
LOOKUPS = {
    "people": "t.id = CAST(a.entity_id AS INTEGER)",
    "incidents": "t.id = CAST(a.entity_id AS INTEGER)",
    "decisions": "t.id = CAST(a.entity_id AS INTEGER)",
    "referrals": "t.id = a.entity_id",
    "incident_substances": "t.incident_id = CAST(substr(a.entity_id, 1, instr(a.entity_id, '/') - 1) AS INTEGER) "
                           "AND t.position = CAST(substr(a.entity_id, instr(a.entity_id, '/') + 1) AS INTEGER)",
    "incident_co_offences": "t.incident_id = CAST(substr(a.entity_id, 1, instr(a.entity_id, '/') - 1) AS INTEGER) "
                            "AND t.position = CAST(substr(a.entity_id, instr(a.entity_id, '/') + 1) AS INTEGER)",
    "referral_conditions": "t.referral_id = substr(a.entity_id, 1, instr(a.entity_id, '/') - 1) "
                           "AND t.position = CAST(substr(a.entity_id, instr(a.entity_id, '/') + 1) AS INTEGER)",
}


def chain_hash(prev: str, seq: int, at: str, officer: str, operation: str, reason: str | None, action: str,
               entity: str, entity_id: str, person_id, referral_id, old_digest, new_digest) -> str:
    # Unit-separated fields; None is "\x00" so it never equals an empty string.
    body = "\x1f".join(_field(f) for f in (prev, seq, at, officer, operation, reason, action, entity, entity_id,
                                          person_id, referral_id, old_digest, new_digest))
    return hashlib.sha256(body.encode()).hexdigest()


def _field(value) -> str:
    return "\x00" if value is None else str(value)


def seal(conn: sqlite3.Connection, at: str, officer: str, operation: str, reason: str | None) -> int:
    """Move pending changes into the chain, in order; returns how many were sealed."""
    sealed = 0
    while True:
        rows = conn.execute("SELECT id, action, entity, entity_id, person_id, referral_id, old, new "
                            "FROM audit_pending ORDER BY id LIMIT ?", (SEAL_CHUNK,)).fetchall()
        if not rows:
            return sealed
        if not officer or not operation:
            raise RuntimeError("a change was written without an audit context")
        append(conn, (row[1:] for row in rows), at, officer, operation, reason)
        conn.execute("DELETE FROM audit_pending WHERE id <= ?", (rows[-1][0],))
        sealed += len(rows)


def seal_inserted(conn: sqlite3.Connection, table: str, where: str, params: tuple, at: str, officer: str,
                  operation: str, reason: str | None) -> int:
    """Enter rows a bulk load inserted (with the audit insert triggers held off,
    migration 5) in the chain, straight from the table: the same snapshots the
    triggers would have taken, without the round trip through audit_pending."""
    entity, ident, person, referral, snap = (part.replace("X.", "t.") for part in SNAPSHOTS[table])
    rows = conn.execute(f"SELECT 'insert', '{entity}', {ident}, {person}, {referral}, NULL, {snap} "
                        f"FROM {table} t WHERE {where}", params)
    return append(conn, rows, at, officer, operation, reason)


def append(conn: sqlite3.Connection, changes, at: str, officer: str, operation: str, reason: str | None) -> int:
    """Chain (action, entity, entity_id, person_id, referral_id, old, new) changes onto the log."""
    last = conn.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
    seq, prev = (last[0], last[1]) if last else (0, GENESIS)
    entries = []
    for action, entity, entity_id, person_id, referral_id, old, new in changes:
        seq += 1
        salt = os.urandom(12).hex()
        od, nd = digest(salt, old), digest(salt, new)
        current = chain_hash(prev, seq, at, officer, operation, reason, action, entity, entity_id, person_id,
                             referral_id, od, nd)
        entries.append((seq, at, officer, operation, reason, action, entity, entity_id, person_id,
                        referral_id, old, new, salt, od, nd, prev, current))
        prev = current
    conn.executemany(
        "INSERT INTO audit_log (seq, at, officer, operation, reason, action, entity, entity_id, person_id, "
        "referral_id, old, new, salt, old_digest, new_digest, prev_hash, hash) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", entries)
    return len(entries)


class Problem(Exception):
    """The first thing found wrong with the trail."""


def expected_schema() -> dict[tuple[str, str], str | None]:
    """(type, name) -> CREATE text of every table, index, trigger and view the migrations define."""
    from diversion_cli.store import MIGRATIONS_TABLE, _statements
    from diversion_cli.store.migrations import MIGRATIONS

    scratch = sqlite3.connect(":memory:")
    try:
        scratch.execute(MIGRATIONS_TABLE)
        for _version, _name, sql in MIGRATIONS:
            for statement in _statements(sql):
                scratch.execute(statement)
        return _schema(scratch)
    finally:
        scratch.close()


def _schema(conn) -> dict[tuple[str, str], str | None]:
    return {(kind, name): sql for kind, name, sql in conn.execute(
        "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'")}


def check_schema(conn) -> None:
    """The tables, indexes, triggers and views are exactly what the migrations define: a
    dropped one-shot trigger, an edited view or an extra trigger is named."""
    expected, found = expected_schema(), _schema(conn)
    for key in sorted(expected.keys() | found.keys()):
        kind, name = key
        if key not in found:
            raise Problem(f"the {kind} {name} is missing: it was dropped outside diversion")
        if key not in expected:
            raise Problem(f"the {kind} {name} is not one diversion defines: it was added outside diversion")
        if " ".join((found[key] or "").split()) != " ".join((expected[key] or "").split()):
            raise Problem(f"the {kind} {name} differs from what diversion defines: it was changed outside diversion")


def verify(conn: sqlite3.Connection) -> dict:
    """Check the chain, the data against it, and the schema. Raises Problem naming the first
    bad entry (an edit made by dropping a guard is named by the entry or row it changed)."""
    if conn.execute("SELECT 1 FROM bulk_load").fetchone():
        raise Problem("the bulk-load flag is set, which holds the audit triggers off: it was set outside "
                      "diversion (an import never commits it)")
    if conn.execute("SELECT 1 FROM correction").fetchone():
        raise Problem("the correction flag is set, which lets closed referrals change state: it was set outside "
                      "diversion (a correction never commits it)")
    pending = conn.execute("SELECT count(*), min(id) FROM audit_pending").fetchone()
    if pending[0]:
        first = conn.execute("SELECT action, entity, entity_id FROM audit_pending WHERE id = ?",
                             (pending[1],)).fetchone()
        raise Problem(f"{pending[0]} change(s) were made outside diversion and never entered in the trail "
                      f"(first: {first[0]} of {first[1]} {first[2]})")
    expected_seq, prev, entries = 1, GENESIS, 0
    cursor = conn.execute("SELECT seq, at, officer, operation, reason, action, entity, entity_id, person_id, "
                          "referral_id, old, new, salt, old_digest, new_digest, prev_hash, hash "
                          "FROM audit_log ORDER BY seq")
    for (seq, at, officer, operation, reason, action, entity, entity_id, person_id, referral_id, old, new, salt,
         od, nd, prev_hash, hash_) in cursor:
        if seq != expected_seq:
            raise Problem(f"entry {expected_seq} is missing (next present is {seq}): entries were deleted")
        if prev_hash != prev:
            raise Problem(f"entry {seq} does not follow entry {seq - 1}: the trail was re-ordered or edited")
        if (old is not None and digest(salt, old) != od) or (new is not None and digest(salt, new) != nd):
            raise Problem(f"entry {seq} ({entity} {entity_id}) was edited: its snapshot no longer matches")
        if chain_hash(prev, seq, at, officer, operation, reason, action, entity, entity_id, person_id,
                      referral_id, od, nd) != hash_:
            raise Problem(f"entry {seq} ({entity} {entity_id}) was edited: its hash does not match")
        prev, expected_seq, entries = hash_, seq + 1, entries + 1
    _check_erasures(conn)
    rows = 0
    for table, (entity, ident, _person, _referral, snap) in SNAPSHOTS.items():
        changed = first_unaudited(conn, table)
        if changed:
            raise Problem(changed)
        vanished = conn.execute(
            f"SELECT a.entity_id FROM audit_log a WHERE a.entity = ? AND a.new_digest IS NOT NULL "
            f"AND a.seq = (SELECT max(seq) FROM audit_log b WHERE b.entity = a.entity AND b.entity_id = a.entity_id) "
            f"AND NOT EXISTS (SELECT 1 FROM {table} t WHERE {LOOKUPS[table]}) LIMIT 1", (entity,)).fetchone()
        if vanished:
            raise Problem(f"{entity} {vanished[0]} was deleted outside diversion")
        rows += conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    check_schema(conn)
    return {"entries": entries, "rows_checked": rows, "head": {"entry": expected_seq - 1, "hash": prev}}


def check_anchors(conn: sqlite3.Connection, anchors: list[tuple[int, str, int, str]]) -> None:
    """Each anchor (line, taken at, entry, hash), kept outside the file, must still be in
    the chain: a trail whose tail was deleted, or whose hashes were all recomputed after
    an edit, verifies on its own but not against an anchor taken before."""
    last = conn.execute("SELECT coalesce(max(seq), 0) FROM audit_log").fetchone()[0]
    for line, at, seq, expected in anchors:
        if seq == 0:
            continue
        if seq > last:
            raise Problem(f"the trail ends at entry {last}, but the anchor taken {at} (line {line}) records entry "
                          f"{seq}: entries were deleted")
        found = conn.execute("SELECT hash FROM audit_log WHERE seq = ?", (seq,)).fetchone()
        if found is None or found[0] != expected:
            raise Problem(f"entry {seq} is not the one anchored {at} (line {line}): the trail was rewritten")


def first_unaudited(conn: sqlite3.Connection, table: str, where: str = "1", params: tuple = ()) -> str | None:
    """The first row of `table` (matching `where`, in terms of alias t) that differs from
    its last audited state, described; None if every one matches (a change made with the
    triggers switched off leaves no pending entry, but cannot match its digest)."""
    conn.create_function("salted_sha256", 2, digest, deterministic=True)
    entity, ident, _person, _referral, snap = SNAPSHOTS[table]
    ident_t, snap_t = ident.replace("X.", "t."), snap.replace("X.", "t.")
    # diversion never writes binary data; a snapshot of it cannot even be taken (JSON holds no BLOB)
    columns = [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
    binary = conn.execute(f"SELECT {ident_t} FROM {table} t WHERE ({where}) AND ("
                          + " OR ".join(f"typeof(t.{c}) = 'blob'" for c in columns) + ") LIMIT 1", params).fetchone()
    if binary:
        return f"{entity} {binary[0]} holds binary data where diversion writes text: it was changed outside diversion"
    last_entry = f"(SELECT max(seq) FROM audit_log WHERE entity = '{entity}' AND entity_id = {ident_t})"
    changed = conn.execute(
        f"SELECT {ident_t} FROM {table} t WHERE ({where}) AND NOT EXISTS (SELECT 1 FROM audit_log a "
        f"WHERE a.seq = {last_entry} AND a.new_digest = salted_sha256(a.salt, {snap_t})) LIMIT 1", params).fetchone()
    return f"{entity} {changed[0]} differs from its last audited state: it was changed outside diversion" \
        if changed else None


def _check_issued_ids(conn: sqlite3.Connection) -> None:
    """The highest ids ever issued (migration 8) are at least every id the trail mentions,
    so an erased id is never handed out again."""
    lowered = conn.execute("""
        SELECT kind, last, issued FROM (
            SELECT 'person' AS kind, (SELECT max(person_id) FROM audit_log) AS issued
            UNION ALL SELECT 'incident', (SELECT max(CAST(entity_id AS INTEGER)) FROM audit_log
                                          WHERE entity = 'incident')
            UNION ALL SELECT substr(entity_id, 1, 6), max(CAST(substr(entity_id, 8) AS INTEGER))
                      FROM audit_log WHERE entity = 'referral' GROUP BY substr(entity_id, 1, 6))
        LEFT JOIN issued_ids USING (kind)
        WHERE issued IS NOT NULL AND (last IS NULL OR last < issued) LIMIT 1""").fetchone()
    if lowered:
        raise Problem(f"the record of issued {lowered[0]} ids says {lowered[1] or 0}, but the trail holds id "
                      f"{lowered[2]}: it was lowered outside diversion (an erased id could be issued again)")


def _check_erasures(conn: sqlite3.Connection) -> None:
    """Blanked snapshots are allowed only for people who were really erased."""
    alive = conn.execute("SELECT e.person_id FROM erasures e JOIN people p ON p.id = e.person_id LIMIT 1").fetchone()
    if alive:
        raise Problem(f"an erasure is recorded for person {alive[0]}, who is still on record: "
                      f"it was forged outside diversion")
    blanked = conn.execute(
        "SELECT seq FROM audit_log WHERE old IS NULL AND new IS NULL AND (old_digest IS NOT NULL OR "
        "new_digest IS NOT NULL) AND (person_id IS NULL OR person_id NOT IN (SELECT person_id FROM erasures)) "
        "LIMIT 1").fetchone()
    if blanked:
        raise Problem(f"entry {blanked[0]} was blanked, but nobody was erased: it was edited outside diversion")
    _check_issued_ids(conn)
    # who erased whom and why is bound to the chained entries of the erasure itself
    forged = conn.execute(
        "SELECT e.person_id FROM erasures e WHERE NOT EXISTS (SELECT 1 FROM audit_log a "
        "WHERE a.person_id = e.person_id AND a.operation = 'erase person' AND a.officer = e.erased_by "
        "AND a.reason IS e.reason) LIMIT 1").fetchone()
    if forged:
        raise Problem(f"the erasure of person {forged[0]} does not match the trail's record of it (who or why "
                      f"was edited, or the erasure was forged outside diversion)")
