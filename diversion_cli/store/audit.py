"""Sealing, verifying and reading the audit trail (migration 9; its shape is argued there).

Triggers copy every change of an audited table into audit_pending (so even an edit
made with the sqlite3 shell leaves a trace). Diversion seals pending changes into
audit_entries in the same transaction, and closes them with one audit_transactions
row: who, when, what, why, and the chain hash

    hash = sha256(previous hash || transaction text || entries text)

where the texts are built by SQL (TRANSACTION_TEXT below), so sealing and verifying
hash exactly the same bytes. `verify` walks the chain, then checks set-wise that each
audited row is exactly what its last entry's digest says, that nothing waits unsealed,
and that the schema is what the migrations define.
"""

from __future__ import annotations

import functools
import hashlib
import json
import sqlite3

from diversion_cli.store import DIGEST_BYTES, digest
from diversion_cli.store.migrations import ACTION_CODES, ENTITY_CODES, TRAIL

GENESIS = bytes(32)
SEAL_CHUNK = 20_000  # entries per transaction row at most: the chain text of one stays small
ENTITY_NAMES = {code: name for name, code in ENTITY_CODES.items()}
ACTION_NAMES = {code: name for name, code in ACTION_CODES.items()}


# What the chain covers, built by SQL so sealing and verifying hash the same bytes: each
# entry, and each transaction, as a JSON array of its fields (strings escaped, NULL as
# null: no value can run into the next field or entry, as a reason that swallowed an
# entry's text could with plain separators; and one C function per entry, the cheapest
# unambiguous text SQLite builds).
ENTRY_TEXT = "json_array(e.seq, e.action, e.entity, e.entity_id, e.person_id, hex(e.digest), hex(e.old_digest))"
ENTRIES_TEXT = (f"(SELECT group_concat(text, ';') FROM (SELECT {ENTRY_TEXT} AS text FROM audit_entries e "
                f"WHERE e.seq > {{after}} AND e.seq <= {{upto}} ORDER BY e.seq))")
TRANSACTION_TEXT = "json_array(t.last_seq, t.at, t.officer, t.operation, t.reason)"
# The same texts on PostgreSQL, byte for byte (store/postgres/schema.py), so a trail moved
# from a SQLite file verifies there.
PG_ENTRIES_TEXT = ("(SELECT string_agg(diversion_entry_text(e.seq, e.action, e.entity, e.entity_id, e.person_id, "
                   "e.digest, e.old_digest), ';' ORDER BY e.seq) FROM audit_entries e "
                   "WHERE e.seq > {after} AND e.seq <= {upto})")
PG_TRANSACTION_TEXT = "diversion_transaction_text(t.last_seq, t.at, t.officer, t.operation, t.reason, t.login)"


def _on_server(conn) -> bool:
    return getattr(conn, "engine", "sqlite") == "postgres"


def _texts(conn) -> tuple[str, str]:
    return (PG_TRANSACTION_TEXT, PG_ENTRIES_TEXT) if _on_server(conn) else (TRANSACTION_TEXT, ENTRIES_TEXT)


def _trail(conn, table: str) -> tuple[str, str, str, str]:
    """TRAIL[table] in terms of alias t, with the engine's snapshot expression."""
    code, ident, person, snap = (part.replace("X.", "t.") for part in TRAIL[table])
    if _on_server(conn):
        from diversion_cli.store.postgres.schema import snapshot

        snap = snapshot(table, "t")
    return code, ident, person, snap


NEXT_SEQ = "(SELECT coalesce(max(seq), 0) FROM audit_entries)"


def chain_hash(prev: bytes, transaction_text: str, entries_text: str | None) -> bytes:
    return hashlib.sha256(prev + transaction_text.encode() + (entries_text or "").encode()).digest()


def head(conn) -> tuple[int, bytes]:
    """(last sealed entry, its transaction's hash); (0, GENESIS) for an empty trail."""
    row = conn.execute("SELECT last_seq, hash FROM audit_transactions ORDER BY last_seq DESC LIMIT 1").fetchone()
    return (row[0], row[1]) if row else (0, GENESIS)


# ---- sealing ----------------------------------------------------------------------------

# numbered on from the last entry, with no gap (a PostgreSQL sequence would leave one
# where a transaction rolled back, and verify counts that every number is there)
MOVE_PENDING = (
    f"INSERT INTO audit_entries (seq, action, entity, entity_id, person_id, digest, old, old_digest) "
    f"SELECT {NEXT_SEQ} + row_number() OVER (ORDER BY p.id), p.action, p.entity, p.entity_id, p.person_id, "
    f"diversion_digest(s.salt, CAST(p.new AS BLOB)), p.old, diversion_digest(s.salt, CAST(p.old AS BLOB)) "
    f"FROM audit_pending p LEFT JOIN audit_salts s ON s.person_id = p.person_id ORDER BY p.id")


def seal(conn, at: str, officer: str, operation: str, reason: str | None, accepting: bool = False) -> int:
    """Enter pending changes in the trail, in order, and close them in the chain;
    returns how many entries were sealed. Raises Problem if a row this transaction
    updated or deleted was not, before it, what the trail says (it had been changed
    outside diversion, which the change would otherwise launder) unless `accepting`
    outside changes openly. On a server the same steps run in the database
    (diversion_seal, schema.py), as the schema's owner: no officer's login may write the
    trail itself."""
    if _on_server(conn) and not accepting:
        problem = conn.execute("SELECT diversion_seal(?, ?, ?, ?)", (at, officer, operation, reason)).fetchone()[0]
        if problem:
            raise Problem(_unsealable(*problem.split(":", 2)))
        return 0
    if not accepting:
        for check in (UNAUDITED_BEFORE, STILL_STANDING):
            found = conn.execute(check).fetchone()
            if found:
                raise Problem(_unsealable("changed" if check is UNAUDITED_BEFORE else "deleted", *found))
    else:
        forged = not_as_stated(conn, migrating=operation.startswith("migration"))
        if forged:
            raise Problem(forged)
    moved = conn.execute(MOVE_PENDING).rowcount
    if moved:
        if not officer or not operation:
            raise RuntimeError("a change was written without an audit context")
        conn.execute("DELETE FROM audit_pending")
    return close(conn, at, officer, operation, reason)


def _unsealable(how: str, entity: str, entity_id: str) -> str:
    name = f"{ENTITY_NAMES.get(entity, entity)} {entity_id}"
    if how == "changed":
        return f"{name} differs from its last audited state: it was changed outside diversion"
    return f"{name} is new here, but the trail says it still exists: it was deleted outside diversion"


# A pending update or delete whose row, before it, differs from what the trail (or an
# earlier change in this transaction) last said of that row.
UNAUDITED_BEFORE = """
SELECT p.entity, p.entity_id FROM audit_pending p LEFT JOIN audit_salts s ON s.person_id = p.person_id
WHERE p.action IN ('u', 'd') AND diversion_digest(s.salt, CAST(p.before AS BLOB)) IS NOT coalesce(
    (SELECT diversion_digest(s.salt, CAST(q.new AS BLOB)) FROM audit_pending q
     WHERE q.entity = p.entity AND q.entity_id = p.entity_id AND q.id < p.id ORDER BY q.id DESC LIMIT 1),
    (SELECT a.digest FROM audit_entries a
     WHERE a.entity = p.entity AND a.entity_id = p.entity_id ORDER BY a.seq DESC LIMIT 1))
LIMIT 1"""


# A pending insert of a row whose key the trail (or an earlier change in this
# transaction) says still exists: the row before it was deleted behind the triggers'
# backs, and entering the insert would hide that.
STILL_STANDING = """
SELECT p.entity, p.entity_id FROM audit_pending p
WHERE p.action = 'i' AND coalesce(
    (SELECT q.action FROM audit_pending q
     WHERE q.entity = p.entity AND q.entity_id = p.entity_id AND q.id < p.id ORDER BY q.id DESC LIMIT 1),
    (SELECT a.action FROM audit_entries a
     WHERE a.entity = p.entity AND a.entity_id = p.entity_id ORDER BY a.seq DESC LIMIT 1), 'd') != 'd'
LIMIT 1"""


def not_as_stated(conn, migrating: bool = False) -> str | None:
    """The first waiting change that is not what a trigger writes: an entry put into audit_pending
    by hand. Accepting outside changes must never seal a change that did not happen (a forged
    delete of someone still on record, an update whose old values lie, an entity no table has).
    Each change must start from what the trail (or the change before it) says the row was, insert
    only what the trail says is gone, keep as old values exactly what changed, and the last must
    say what the row now is. (Baselines are a migration's alone.)"""
    actions = "('i', 'u', 'd', 'b')" if migrating else "('i', 'u', 'd')"
    codes = ", ".join(f"'{code}'" for code, *_ in TRAIL.values())
    odd = conn.execute(f"SELECT action, entity, entity_id FROM audit_pending WHERE action NOT IN {actions} "
                       f"OR entity NOT IN ({codes}) LIMIT 1").fetchone()
    if odd:
        return (f"a waiting change ({odd[0]} of {odd[1]} {odd[2]}) is of a kind no trigger writes: it was put into "
                f"the trail's waiting changes by hand; nothing was accepted")
    for check in (UNAUDITED_BEFORE, STILL_STANDING):
        found = conn.execute(check).fetchone()
        if found:
            return (f"a waiting change of {ENTITY_NAMES.get(found[0], found[0])} {found[1]} does not follow from "
                    f"what the trail says it was: it was put into the trail's waiting changes by hand, or the row "
                    f"was changed with the triggers off; nothing was accepted")
    for action, entity, entity_id, before, old, new in conn.execute(
            "SELECT action, entity, entity_id, before, old, new FROM audit_pending WHERE action IN ('u', 'd')"):
        try:
            was, kept = json.loads(before), json.loads(old)
            lied = kept != was if action == "d" else any(
                was.get(k, object()) != v or json.loads(new).get(k, object()) == v for k, v in kept.items())
        except (TypeError, ValueError, AttributeError):
            lied = True
        if lied:
            return (f"the old values of a waiting {ACTION_NAMES.get(action, action)} of "
                    f"{ENTITY_NAMES.get(entity, entity)} {entity_id} are not what changed: it was put into the trail's "
                    f"waiting changes by hand; nothing was accepted")
    for table in TRAIL:
        code, ident, _person, snap = _trail(conn, table)
        found = conn.execute(
            f"SELECT p.action, p.entity_id FROM audit_pending p WHERE p.entity = '{code}' "
            f"AND p.id = (SELECT max(q.id) FROM audit_pending q WHERE q.entity = p.entity AND q.entity_id = p.entity_id) "
            f"AND CASE WHEN p.action = 'd' THEN EXISTS (SELECT 1 FROM {table} t WHERE {ident} = p.entity_id) "
            f"ELSE NOT EXISTS (SELECT 1 FROM {table} t WHERE {ident} = p.entity_id AND {snap} = p.new) END "
            f"LIMIT 1").fetchone()
        if found:
            return (f"a waiting {ACTION_NAMES.get(found[0], found[0])} of {ENTITY_NAMES[code]} {found[1]} does not "
                    f"match the row as it is: it was put into the trail's waiting changes by hand; nothing was "
                    f"accepted")
    return None


def still_standing(conn, table: str, where: str, params: tuple) -> str | None:
    """The first row of `table` (matching `where`, alias t) a bulk load just inserted under a
    key the trail says still exists, described; None if there is none."""
    code, ident, _person, _snap = _trail(conn, table)
    found = conn.execute(
        f"SELECT {ident} FROM {table} t WHERE ({where}) AND coalesce((SELECT a.action FROM audit_entries a "
        f"WHERE a.entity = '{code}' AND a.entity_id = {ident} ORDER BY a.seq DESC LIMIT 1), 'd') != 'd' LIMIT 1",
        params).fetchone()
    return f"{ENTITY_NAMES[code]} {found[0]} is new here, but the trail says it still exists: it was deleted " \
           f"outside diversion" if found else None


def enter_inserted(conn, table: str, where: str, params: tuple) -> int:
    """Enter rows a bulk load inserted (with the audit insert triggers held off,
    migration 5) straight from the table: the entry the trigger would have made."""
    code, ident, person, snap = _trail(conn, table)
    return conn.execute(
        f"INSERT INTO audit_entries (seq, action, entity, entity_id, person_id, digest) "
        f"SELECT {NEXT_SEQ} + row_number() OVER (), 'i', '{code}', {ident}, {person}, "
        f"diversion_digest(s.salt, CAST({snap} AS BLOB)) "
        f"FROM {table} t LEFT JOIN audit_salts s ON s.person_id = {person} WHERE {where}", params).rowcount


def close(conn, at: str, officer: str, operation: str, reason: str | None) -> int:
    """Chain the entries entered since the last transaction row, SEAL_CHUNK at a time (on a
    server, diversion_close does, naming the login)."""
    if _on_server(conn):
        return conn.execute("SELECT diversion_close(?, ?, ?, ?)", (at, officer, operation, reason)).fetchone()[0]
    last_seq, prev = head(conn)
    newest = conn.execute("SELECT coalesce(max(seq), 0) FROM audit_entries").fetchone()[0]
    sealed = newest - last_seq
    while last_seq < newest:
        upto = min(newest, last_seq + SEAL_CHUNK)
        text, entries = conn.execute(
            f"SELECT {TRANSACTION_TEXT}, {ENTRIES_TEXT.format(after=int(last_seq), upto=int(upto))} "
            f"FROM (SELECT CAST(? AS INTEGER) AS last_seq, CAST(? AS TEXT) AS at, CAST(? AS TEXT) AS officer, "
            f"CAST(? AS TEXT) AS operation, CAST(? AS TEXT) AS reason) t",
            (upto, at, officer, operation, reason)).fetchone()
        prev = chain_hash(prev, text, entries)
        conn.execute("INSERT INTO audit_transactions (last_seq, at, officer, operation, reason, hash) "
                     "VALUES (?, ?, ?, ?, ?, ?)", (upto, at, officer, operation, reason, prev))
        last_seq = upto
    return sealed


# ---- verifying ----------------------------------------------------------------------------

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
    if _on_server(conn):
        from diversion_cli.store.postgres import catalog

        expected, found = catalog.expected_and_found(conn)
    else:
        expected, found = expected_schema(), _schema(conn)
    for key in sorted(expected.keys() | found.keys()):
        kind, name = key
        if kind == "rights":
            if found.get(key) != expected.get(key):
                raise Problem(f"the rights granted on {name} are not what diversion's roles define: they were "
                              f"changed outside diversion")
            continue
        if kind == "membership":
            if key not in expected:
                raise Problem(f"{name} holds a diversion role and is a superuser, owns the schema or holds a role "
                              f"that reads or writes every table (such as pg_read_all_data): its rights are not "
                              f"its role's")
            if found.get(key) != expected[key]:
                raise Problem(f"the role {name} is granted {found.get(key) or 'nothing'} where diversion's roles "
                              f"define {expected[key] or 'nothing'}: it was changed outside diversion")
            continue
        if kind == "owner":  # (only ever found: everything is to be the schema owner's)
            raise Problem(f"{name} belongs to another role than the schema's owner: it was changed outside "
                          f"diversion")
        if key not in found:
            raise Problem(f"the {kind} {name} is missing: it was dropped outside diversion")
        if key not in expected:
            raise Problem(f"the {kind} {name} is not one diversion defines: it was added outside diversion")
        if " ".join((found[key] or "").split()) != " ".join((expected[key] or "").split()):
            if kind == "trigger" and found[key].endswith("enabled=D"):  # (a server's ALTER TABLE ... DISABLE)
                raise Problem(f"the trigger {name} is disabled: it was switched off outside diversion")
            raise Problem(f"the {kind} {name} differs from what diversion defines: it was changed outside diversion")


# The row checks in two halves of about equal work (rows of a million-incident file), so
# that with the chain walk they keep two cores busy.
ROW_HALVES = (("people", "decisions", "referrals", "incident_co_offences", "audit_conversions"),
              ("incidents", "incident_substances", "referral_conditions"))


def verify(conn, reopen=None, begun: bool = False) -> dict:
    """Check the chain, the data against it, and the schema. Raises Problem naming the first
    bad transaction, entry or row (an edit made by dropping a guard is named by what it changed).
    With `reopen` (a function giving another connection to the same database) the chain and half
    the rows are checked on two more connections in threads, all three reading the same state
    (on a server, the same exported snapshot): the driver leaves the interpreter lock while the
    database works, so they share the cores. `begun`: inside the caller's transaction (a
    migration checks what it wrote before it commits; other connections cannot see that yet)."""
    if not begun:  # one state of the file, whoever commits meanwhile
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY" if _on_server(conn) else "BEGIN")
    others = []
    try:
        _check_flags(conn)
        if reopen is not None:
            others = _at_same_state(conn, reopen, 2)
        if not others:
            last_seq, prev, transactions = _check_chain(conn)
            _check_old_values(conn)
            _check_erasures(conn)
            rows = sum(_check_rows(conn, half) for half in ROW_HALVES)
        else:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(2) as pool:
                chain = pool.submit(_check_chain, others[0])
                second = pool.submit(_check_rows, others[1], ROW_HALVES[1])
                try:
                    _check_old_values(conn)
                    _check_erasures(conn)
                    rows = _check_rows(conn, ROW_HALVES[0])
                except Problem:
                    chain.result()  # a broken chain is named before what follows from it
                    raise
                last_seq, prev, transactions = chain.result()
                rows += second.result()
        check_schema(conn)
        return {"entries": last_seq, "transactions": transactions, "rows_checked": rows,
                "head": {"entry": last_seq, "hash": prev.hex()}}
    finally:
        for other in others:
            other.close()
        if not begun and conn.in_transaction:
            conn.execute("ROLLBACK")


def _at_same_state(conn, reopen, n: int) -> list:
    """n more connections in read transactions that see what `conn` sees (the same last
    transaction), or [] if desks kept committing in between (then one connection does all)."""
    others = [reopen() for _ in range(n)]
    if _on_server(conn):  # PostgreSQL hands its snapshot over: the others read exactly what conn reads
        snapshot = conn.execute("SELECT pg_export_snapshot()").fetchone()[0]
        for other in others:
            other.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            other.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
        return others
    for other in others:
        other.execute("BEGIN")
    if all(head(other) == head(conn) for other in others):
        return others
    for other in others:
        other.close()
    return []


def _check_flags(conn) -> None:
    if conn.execute("SELECT 1 FROM bulk_load").fetchone():
        raise Problem("the bulk-load flag is set, which holds the audit triggers off: it was set outside "
                      "diversion (an import never commits it)")
    if conn.execute("SELECT 1 FROM correction").fetchone():
        raise Problem("the correction flag is set, which lets closed referrals change state: it was set outside "
                      "diversion (a correction never commits it)")
    pending = conn.execute("SELECT count(*), min(id) FROM audit_pending").fetchone()
    if pending[0]:
        first = conn.execute(f"SELECT action, entity, entity_id, {'login' if _on_server(conn) else 'NULL'} "
                             f"FROM audit_pending WHERE id = ?", (pending[1],)).fetchone()
        by = f", by login {first[3]}" if first[3] else ""  # (a server knows who)
        raise Problem(f"{pending[0]} change(s) were made outside diversion and never entered in the trail "
                      f"(first: {ACTION_NAMES.get(first[0], first[0])} of {ENTITY_NAMES.get(first[1], first[1])} "
                      f"{first[2]}{by})")


def _check_chain(conn) -> tuple[int, bytes, int]:
    """Recompute every transaction's hash in order, each from the one before."""
    prev, last, transactions = GENESIS, 0, 0
    transaction_text, entries_text = _texts(conn)
    # a server streams the chain a few transactions at a time (one holds up to SEAL_CHUNK entries'
    # text); sqlite3 cursors always step row by row
    read = functools.partial(conn.stream, rows=4) if _on_server(conn) else conn.execute
    cursor = read(
        f"SELECT t.last_seq, t.hash, {transaction_text}, {entries_text.format(after='t.after', upto='t.last_seq')} "
        f"FROM (SELECT *, lag(last_seq, 1, 0) OVER (ORDER BY last_seq) AS after FROM audit_transactions) t "
        f"ORDER BY t.last_seq")
    for last_seq, stored, text, entries in cursor:
        if chain_hash(prev, text, entries) != stored:
            raise Problem(f"the transaction sealing entries {last + 1}–{last_seq} does not match its hash: "
                          f"the trail was edited, re-ordered or cut")
        prev, last, transactions = stored, last_seq, transactions + 1
    newest, count, lowest = conn.execute(
        "SELECT coalesce(max(seq), 0), count(*), min(seq) FROM audit_entries").fetchone()
    if newest > last:
        raise Problem(f"entries {last + 1}–{newest} were never sealed: they were added outside diversion")
    if lowest is not None and lowest < 1:
        raise Problem(f"entry {lowest} is numbered before the first: it was added outside diversion")
    if count != last:  # with every number from 1 to last distinct, exactly 1..last are there
        raise Problem(f"the trail holds {count} entries where its transactions seal {last}: entries were "
                      f"deleted outside diversion")
    return last, prev, transactions


def _check_old_values(conn) -> None:
    """The old values an update or delete kept are the ones chained (their digest)."""
    edited = conn.execute(
        "SELECT e.seq, e.entity, e.entity_id FROM audit_entries e "
        "LEFT JOIN audit_salts s ON s.person_id = e.person_id WHERE e.old IS NOT NULL "
        "AND diversion_digest(s.salt, CAST(e.old AS BLOB)) IS NOT e.old_digest LIMIT 1").fetchone()
    if edited:
        raise Problem(f"entry {edited[0]} ({ENTITY_NAMES.get(edited[1], edited[1])} {edited[2]}) was edited: "
                      f"its old values no longer match")


def _check_rows(conn, tables) -> int:
    """Every audited row of `tables` is what its last entry says, and every row the trail
    says exists does; returns how many rows were checked."""
    rows = 0
    for table in tables:
        code = TRAIL[table][0]
        changed = first_unaudited(conn, table)
        if changed:
            raise Problem(changed)
        # every live row matched a live entry above, so a missing row shows as a count short
        present = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        audited = conn.execute(
            "SELECT (SELECT count(DISTINCT entity_id) FROM audit_entries WHERE entity = :code) - "
            "(SELECT count(*) FROM audit_entries a WHERE a.entity = :code AND a.action = 'd' "
            " AND NOT EXISTS (SELECT 1 FROM audit_entries b "
            " WHERE b.entity = a.entity AND b.entity_id = a.entity_id AND b.seq > a.seq))",
            {"code": code}).fetchone()[0]
        if present != audited:
            vanished = _first_vanished(conn, table)
            raise Problem(f"{ENTITY_NAMES[code]} {vanished} was deleted outside diversion" if vanished else
                          f"the {table} table holds {present} rows where the trail says {audited}: "
                          f"it was changed outside diversion")
        rows += present
    return rows


def _first_vanished(conn, table: str) -> str | None:
    code, ident, _person, _snap = TRAIL[table]
    found = conn.execute(
        f"SELECT a.entity_id FROM audit_entries a WHERE a.entity = ? AND a.digest IS NOT NULL "
        f"AND a.seq = (SELECT max(seq) FROM audit_entries b WHERE b.entity = a.entity AND b.entity_id = a.entity_id) "
        f"AND NOT EXISTS (SELECT 1 FROM {table} t WHERE {ident.replace('X.', 't.')} = a.entity_id) LIMIT 1",
        (code,)).fetchone()
    return found[0] if found else None


def first_unaudited(conn, table: str, where: str = "1 = 1", params: tuple = ()) -> str | None:
    """The first row of `table` (matching `where`, in terms of alias t) that differs from
    its last audited state, described; None if every one matches (a change made with the
    triggers switched off leaves no pending entry, but cannot match its digest)."""
    code, ident, person, snap = _trail(conn, table)
    entity = ENTITY_NAMES[code]
    # diversion never writes binary data; a snapshot of it cannot even be taken (JSON holds no BLOB).
    # (PostgreSQL's columns are typed: a text column cannot hold any.)
    columns = [] if _on_server(conn) else [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
    binary = columns and conn.execute(
        f"SELECT {ident} FROM {table} t WHERE ({where}) AND ("
        + " OR ".join(f"typeof(t.{c}) = 'blob'" for c in columns) + ") LIMIT 1", params).fetchone()
    if binary:
        return f"{entity} {binary[0]} holds binary data where diversion writes text: it was changed outside diversion"
    changed = conn.execute(
        f"SELECT {ident} FROM {table} t LEFT JOIN audit_salts s ON s.person_id = {person} WHERE ({where}) AND "
        f"(SELECT a.digest FROM audit_entries a WHERE a.entity = '{code}' AND a.entity_id = {ident} "
        f"ORDER BY a.seq DESC LIMIT 1) IS NOT diversion_digest(s.salt, CAST({snap} AS BLOB)) LIMIT 1",
        params).fetchone()
    return f"{entity} {changed[0]} differs from its last audited state: it was changed outside diversion" \
        if changed else None


def check_anchors(conn, anchors: list[tuple[int, str, int, str]]) -> None:
    """Each anchor (line, taken at, entry, hash), kept outside the file, must still be in
    the chain: a trail whose tail was deleted, or whose hashes were all recomputed after
    an edit, verifies on its own but not against an anchor taken before. Of the trail as
    it was before its conversion (migration 9), only the old head it recorded answers."""
    last = head(conn)[0]
    converted = conn.execute("SELECT old_last_entry, old_head_hash FROM audit_conversions").fetchone()
    for line, at, seq, expected in anchors:
        if seq == 0:
            continue
        if seq > last:
            raise Problem(f"the trail ends at entry {last}, but the anchor taken {at} (line {line}) records entry "
                          f"{seq}: entries were deleted")
        found = conn.execute("SELECT hash FROM audit_transactions WHERE last_seq = ?", (seq,)).fetchone()
        if found is not None and found[0].hex() == expected:
            continue
        if converted and seq == converted[0] and expected == converted[1]:
            continue  # the old trail's head, as its conversion recorded it
        if converted and seq < converted[0]:
            # not a pass: anyone can forge a conversion record to silence an anchor
            raise Problem(f"the anchor taken {at} (line {line}) records entry {seq} of the trail as it was before "
                          f"its conversion at entry {converted[0]}, which cannot be checked now: check anchors "
                          f"before `db upgrade`, then start a new anchors file after it")
        raise Problem(f"entry {seq} is not the one anchored {at} (line {line}): the trail was rewritten")


def _check_issued_ids(conn) -> None:
    """The highest ids ever issued (migration 8) are at least every id the trail mentions,
    so an erased id is never handed out again."""
    lowered = conn.execute("""
        SELECT kind, last, issued FROM (
            SELECT 'person' AS kind, (SELECT max(person_id) FROM audit_entries) AS issued
            UNION ALL SELECT 'incident', (SELECT max(CAST(entity_id AS INTEGER)) FROM audit_entries
                                          WHERE entity = 'i')
            UNION ALL SELECT substr(entity_id, 1, 6), max(CAST(substr(entity_id, 8) AS INTEGER))
                      FROM audit_entries WHERE entity = 'r' GROUP BY substr(entity_id, 1, 6)) AS mentioned
        LEFT JOIN issued_ids USING (kind)
        WHERE issued IS NOT NULL AND (last IS NULL OR last < issued) LIMIT 1""").fetchone()
    if lowered:
        raise Problem(f"the record of issued {lowered[0]} ids says {lowered[1] or 0}, but the trail holds id "
                      f"{lowered[2]}: it was lowered outside diversion (an erased id could be issued again)")


def _check_erasures(conn) -> None:
    """Blanked old values and deleted salts are allowed only for people who were really erased."""
    alive = conn.execute("SELECT e.person_id FROM erasures e JOIN people p ON p.id = e.person_id LIMIT 1").fetchone()
    if alive:
        raise Problem(f"an erasure is recorded for person {alive[0]}, who is still on record: "
                      f"it was forged outside diversion")
    blanked = conn.execute(
        "SELECT seq FROM audit_entries WHERE old IS NULL AND old_digest IS NOT NULL "
        "AND (person_id IS NULL OR NOT EXISTS (SELECT 1 FROM erasures r WHERE r.person_id = audit_entries.person_id)) "
        "LIMIT 1").fetchone()
    if blanked:
        raise Problem(f"entry {blanked[0]} was blanked, but nobody was erased: it was edited outside diversion")
    # (NOT EXISTS: a million-person NOT IN list outgrows PostgreSQL's work memory and is rescanned per person)
    unsalted = conn.execute("SELECT id FROM people p WHERE NOT EXISTS (SELECT 1 FROM audit_salts s "
                            "WHERE s.person_id = p.id) LIMIT 1").fetchone()
    if unsalted:
        raise Problem(f"the digest salt of person {unsalted[0]} was deleted outside diversion")
    _check_issued_ids(conn)
    # who erased whom and why is bound to the chained transaction of the erasure itself
    forged = conn.execute(
        "SELECT e.person_id FROM erasures e WHERE NOT EXISTS (SELECT 1 FROM audit_entries a "
        "JOIN audit_transactions t ON t.last_seq = (SELECT min(last_seq) FROM audit_transactions "
        "WHERE last_seq >= a.seq) WHERE a.person_id = e.person_id AND a.action = 'd' "
        "AND t.operation = 'erase person' AND t.officer = e.erased_by AND t.reason IS e.reason) LIMIT 1").fetchone()
    if forged:
        raise Problem(f"the erasure of person {forged[0]} does not match the trail's record of it (who or why "
                      f"was edited, or the erasure was forged outside diversion)")


# ---- reading: who changed what from what to what ---------------------------------------------

def history(conn, entries: list[dict]) -> list[dict]:
    """The entries (oldest first, each with the transaction's at/officer/operation/reason
    and the stored action/entity codes and old values) with `old` and `new` as the whole
    row before and after, rebuilt by walking back from the row as it stands: the trail
    keeps only what an update changed. None where an erasure blanked them, and where the
    row no longer matches its last entry (`note` then says so: nothing is rebuilt from a
    row changed outside diversion)."""
    later: dict[tuple[str, str], dict | None] = {}
    untrusted: set[tuple[str, str]] = set()
    out = []
    for e in reversed(entries):
        key = (e["entity"], e["entity_id"])
        if key not in later:
            later[key], trusted = _live(conn, *key, deleted=e["action"] == "d")
            if not trusted:
                untrusted.add(key)
        after = later[key]
        if e["old"] is not None and digest(_salt(conn, e["person_id"]), e["old"]) != e["old_digest"]:
            untrusted.add(key)  # old values edited outside diversion: nothing is rebuilt from them
            later[key] = after = None
        old = json.loads(e["old"]) if e["old"] is not None and key not in untrusted else None
        blanked = e["old"] is None and e["old_digest"] is not None
        if e["action"] == "d":
            before, after = old, None
        elif e["action"] == "u":
            before = None if blanked or after is None or old is None else {**after, **old}
        else:
            before = None
        later[key] = before
        entity = ENTITY_NAMES.get(e["entity"], e["entity"])
        referral = e["entity_id"] if entity == "referral" else \
            e["entity_id"].split("/")[0] if entity == "condition" else None
        out.append({"seq": e["seq"], "at": e["at"], "officer": e["officer"], "login": e["login"],
                    "operation": e["operation"],
                    "reason": e["reason"], "action": ACTION_NAMES.get(e["action"], e["action"]), "entity": entity,
                    "entity_id": e["entity_id"], "person_id": e["person_id"], "referral_id": referral,
                    "old": _text(before), "new": _text(after),
                    "note": "this row's history does not match its audit trail (changed outside diversion): "
                            "run `diversion audit verify`" if key in untrusted else None})
    return list(reversed(out))


def _salt(conn, person_id) -> bytes | None:
    row = conn.execute("SELECT salt FROM audit_salts WHERE person_id = ?", (person_id,)).fetchone()
    return row[0] if row else None


def _live(conn, code: str, entity_id: str, deleted: bool) -> tuple[dict | None, bool]:
    """The row's current snapshot, as the trail digests it (None if it no longer exists),
    and whether it is what the trail's last entry for it says (`deleted`: that it was deleted)."""
    table = next((t for t, spec in TRAIL.items() if spec[0] == code), None)
    if table is None:
        return None, True
    _code, ident, person, snap = _trail(conn, table)
    row = conn.execute(
        f"SELECT {snap}, diversion_digest(s.salt, CAST({snap} AS BLOB)) IS (SELECT a.digest FROM audit_entries a "
        f"WHERE a.entity = ? AND a.entity_id = {ident} ORDER BY a.seq DESC LIMIT 1) "
        f"FROM {table} t LEFT JOIN audit_salts s ON s.person_id = {person} WHERE {ident} = ?",
        (code, entity_id)).fetchone()
    if row is None:
        return None, deleted  # gone without a delete in the trail: deleted outside diversion
    return (json.loads(row[0]), True) if row[1] else (None, False)


def _text(snapshot: dict | None) -> str | None:
    return None if snapshot is None else json.dumps(snapshot, ensure_ascii=False, separators=(",", ":"))


# ---- converting a trail written before migration 9 ---------------------------------------------

def _legacy_hash(prev: str, *fields) -> str:
    body = "\x1f".join("\x00" if f is None else str(f) for f in (prev, *fields))
    return hashlib.sha256(body.encode()).hexdigest()


def _legacy_digest(salt: str | None, text: str | None) -> str | None:
    return None if text is None else hashlib.sha256(((salt or "") + text).encode()).hexdigest()


def convert_legacy_trail(conn) -> dict | None:
    """Migration 9: verify the old trail's chain and snapshots, then carry every entry over
    (same numbers, grouped into the transactions they were sealed in) and record its head
    in audit_conversions. Raises Problem, and nothing is converted, if the old trail does
    not verify: converting it would launder the change. None if there was no old trail."""
    pending = conn.execute("SELECT count(*) FROM audit_pending WHERE action != 'baseline'").fetchone()[0]
    if pending:
        raise Problem(f"{pending} change(s) were made outside diversion and never entered in the trail: "
                      f"run `diversion audit verify` with the earlier diversion before upgrading")
    conn.execute("DELETE FROM audit_pending")  # a baseline of a pre-trail file: migration 9 takes it afresh
    salts = dict(conn.execute("SELECT person_id, salt FROM audit_salts").fetchall())
    prev, expected, context, converted = "0" * 64, 1, None, []
    cursor = conn.execute("SELECT seq, at, officer, operation, reason, action, entity, entity_id, person_id, "
                          "referral_id, old, new, salt, old_digest, new_digest, prev_hash, hash "
                          "FROM audit_log ORDER BY seq")
    for (seq, at, officer, operation, reason, action, entity, entity_id, person_id, referral_id, old, new, salt,
         od, nd, prev_hash, hash_) in cursor:
        if seq != expected or prev_hash != prev:
            raise Problem(f"the old trail is broken at entry {expected}: it was cut, re-ordered or edited; "
                          f"it was not converted")
        if (old is not None and _legacy_digest(salt, old) != od) \
                or (new is not None and _legacy_digest(salt, new) != nd) \
                or _legacy_hash(prev, seq, at, officer, operation, reason, action, entity, entity_id, person_id,
                                referral_id, od, nd) != hash_:
            raise Problem(f"entry {seq} of the old trail ({entity} {entity_id}) was edited; it was not converted")
        if (at, officer, operation, reason) != context and converted:
            _write_converted(conn, converted, *context)
            converted = []
        context = (at, officer, operation, reason)
        person_salt = salts.get(person_id)
        if old is None and new is None:  # blanked by an erasure: its digests are all that is left
            carried = (bytes.fromhex(nd)[:DIGEST_BYTES] if nd else None, None,
                       bytes.fromhex(od)[:DIGEST_BYTES] if od else None)
        else:
            kept = old
            if action == "update":
                before, after = json.loads(old), json.loads(new)
                kept = json.dumps({k: v for k, v in before.items() if k not in after or after[k] != v},
                                  ensure_ascii=False, separators=(",", ":"))
            carried = (digest(person_salt, new), kept, digest(person_salt, kept))
        converted.append((seq, ACTION_CODES[action], ENTITY_CODES[entity], entity_id, person_id, *carried))
        if len(converted) >= SEAL_CHUNK:
            _write_converted(conn, converted, *context)
            converted = []
        prev, expected = hash_, seq + 1
    if converted:
        _write_converted(conn, converted, *context)
    if expected == 1:
        return None
    conn.execute("INSERT INTO audit_conversions (old_last_entry, old_head_hash, converted_at) "
                 "VALUES (?, ?, datetime('now'))", (expected - 1, prev))
    return {"entries": expected - 1, "head_hash": prev}


def _write_converted(conn, entries: list[tuple], at, officer, operation, reason) -> None:
    conn.executemany("INSERT INTO audit_entries (seq, action, entity, entity_id, person_id, digest, old, "
                     "old_digest) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", entries)
    close(conn, at, officer, operation, reason)
