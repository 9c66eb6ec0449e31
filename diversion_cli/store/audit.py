"""Sealing and verifying the hash-chained audit log (see migration 3).

Every entry's hash covers the previous entry's hash and the digests of its
old and new row snapshots. `verify` walks the chain, then checks that each
audited row in the database is exactly what its last sealed entry says, and
that nothing is waiting unsealed in audit_pending (a change made outside
diversion, e.g. with the sqlite3 shell).
"""

from __future__ import annotations

import hashlib
import sqlite3

from diversion_cli.store.migrations import SNAPSHOTS

GENESIS = "0" * 64
SEAL_CHUNK = 20_000


def digest(text: str | None) -> str | None:
    return None if text is None else hashlib.sha256(text.encode()).hexdigest()


def chain_hash(prev: str, seq: int, at: str, officer: str, operation: str, reason: str | None, action: str,
               entity: str, entity_id: str, person_id, referral_id, old_digest, new_digest) -> str:
    # Unit-separated fields; None is "\x00" so it never equals an empty string.
    fields = (prev, seq, at, officer, operation, reason, action, entity, entity_id, person_id, referral_id,
              old_digest, new_digest)
    body = "\x1f".join("\x00" if f is None else str(f) for f in fields)
    return hashlib.sha256(body.encode()).hexdigest()


def seal(conn: sqlite3.Connection, at: str, officer: str, operation: str, reason: str | None) -> int:
    """Move pending changes into the chain, in order; returns how many were sealed."""
    last = conn.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
    seq, prev = (last[0], last[1]) if last else (0, GENESIS)
    sealed = 0
    while True:
        rows = conn.execute("SELECT id, action, entity, entity_id, person_id, referral_id, old, new "
                            "FROM audit_pending ORDER BY id LIMIT ?", (SEAL_CHUNK,)).fetchall()
        if not rows:
            return sealed
        if not officer or not operation:
            raise RuntimeError("a change was written without an audit context")
        entries = []
        for _id, action, entity, entity_id, person_id, referral_id, old, new in rows:
            seq += 1
            od, nd = digest(old), digest(new)
            current = chain_hash(prev, seq, at, officer, operation, reason, action, entity, entity_id, person_id,
                                 referral_id, od, nd)
            entries.append((seq, at, officer, operation, reason, action, entity, entity_id, person_id,
                            referral_id, old, new, od, nd, prev, current))
            prev = current
        conn.executemany(
            "INSERT INTO audit_log (seq, at, officer, operation, reason, action, entity, entity_id, person_id, "
            "referral_id, old, new, old_digest, new_digest, prev_hash, hash) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", entries)
        conn.execute("DELETE FROM audit_pending WHERE id <= ?", (rows[-1][0],))
        sealed += len(rows)



class Problem(Exception):
    """The first thing found wrong with the trail."""


def verify(conn: sqlite3.Connection) -> dict:
    """Check the chain and the data against it. Raises Problem naming the first bad entry."""
    pending = conn.execute("SELECT count(*), min(id) FROM audit_pending").fetchone()
    if pending[0]:
        first = conn.execute("SELECT action, entity, entity_id FROM audit_pending WHERE id = ?",
                             (pending[1],)).fetchone()
        raise Problem(f"{pending[0]} change(s) were made outside diversion and never entered in the trail "
                      f"(first: {first[0]} of {first[1]} {first[2]})")
    expected_seq, prev, entries = 1, GENESIS, 0
    cursor = conn.execute("SELECT seq, at, officer, operation, reason, action, entity, entity_id, person_id, "
                          "referral_id, old, new, old_digest, new_digest, prev_hash, hash FROM audit_log ORDER BY seq")
    for (seq, at, officer, operation, reason, action, entity, entity_id, person_id, referral_id, old, new,
         od, nd, prev_hash, hash_) in cursor:
        if seq != expected_seq:
            raise Problem(f"entry {expected_seq} is missing (next present is {seq}): entries were deleted")
        if prev_hash != prev:
            raise Problem(f"entry {seq} does not follow entry {seq - 1}: the trail was re-ordered or edited")
        if (old is not None and digest(old) != od) or (new is not None and digest(new) != nd):
            raise Problem(f"entry {seq} ({entity} {entity_id}) was edited: its snapshot no longer matches")
        if chain_hash(prev, seq, at, officer, operation, reason, action, entity, entity_id, person_id,
                      referral_id, od, nd) != hash_:
            raise Problem(f"entry {seq} ({entity} {entity_id}) was edited: its hash does not match")
        prev, expected_seq, entries = hash_, seq + 1, entries + 1
    conn.create_function("sha256_hex", 1, digest, deterministic=True)
    rows = 0
    for table, (entity, ident, _person, _referral, snap) in SNAPSHOTS.items():
        ident_x, snap_x = ident.replace("X.", "t."), snap.replace("X.", "t.")
        latest = ("SELECT a.entity_id, a.new_digest FROM audit_log a WHERE a.seq IN "
                  "(SELECT max(seq) FROM audit_log WHERE entity = ? GROUP BY entity_id)")
        changed = conn.execute(
            f"SELECT cur.eid FROM (SELECT {ident_x} AS eid, sha256_hex({snap_x}) AS d FROM {table} t) cur "
            f"LEFT JOIN ({latest}) last ON last.entity_id = cur.eid "
            f"WHERE last.new_digest IS NOT cur.d LIMIT 1", (entity,)).fetchone()
        if changed:
            raise Problem(f"{entity} {changed[0]} differs from its last audited state: "
                          f"it was changed outside diversion")
        vanished = conn.execute(
            f"SELECT last.entity_id FROM ({latest}) last "
            f"LEFT JOIN (SELECT {ident_x} AS eid FROM {table} t) cur ON cur.eid = last.entity_id "
            f"WHERE last.new_digest IS NOT NULL AND cur.eid IS NULL LIMIT 1", (entity,)).fetchone()
        if vanished:
            raise Problem(f"{entity} {vanished[0]} was deleted outside diversion")
        rows += conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    return {"entries": entries, "rows_checked": rows, "last_hash": prev}
