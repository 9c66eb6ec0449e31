"""Backups and restores: one consistent snapshot out, and only a complete,
verifying backup back in.

Taking a backup (`take`)
  The live file is copied by SQLite's online backup API in one step
  (pages=-1), inside a read transaction that first reads what the snapshot
  holds (the manifest, below). One read transaction is one snapshot: in WAL
  mode the desks keep writing around it and cannot make it start again (a
  copy taken in steps restarts whenever another connection writes, which is
  why a busy file's backup never finished). VACUUM INTO also copies in one
  transaction, and on a SQLCipher file writes a copy encrypted with the same
  key, but it refuses to run inside a transaction, so the manifest could not
  come from the snapshot it describes; the backup API can, and it copies pages
  rather than rebuilding every b-tree. On an encrypted file both ends are
  opened with DIVERSION_DB_KEY, so the backup is encrypted with the same key.

  The copy is written to a hidden file beside FILE (`.FILE.*.partial`,
  owner-only), switched to a rollback journal (a backup is one self-contained
  file), marked with its manifest, checked (integrity, and that it holds what the
  manifest says), flushed to disk, and only then linked to FILE, never over an
  existing file. A backup that is killed or fails part-way never appears as
  FILE; a failure removes the partial file, a kill leaves only that.

The record of what a backup held (its manifest)
  Read in the snapshot's own read transaction: the schema version, the last
  audit entry (seq and hash) and the rows of every table. It is kept in the
  backup's SQLite header, where no table can be torn from it: application_id
  says "diversion backup" (BACKUP_MARK) and user_version holds the first 32
  bits of the SHA-256 of the manifest's text. `db check` (through
  Store.integrity_check) and `db restore` recompute the manifest from the file
  and compare, so a backup that lost pages or rows (torn, truncated, or
  written to since) is never taken for a whole one. A live database carries
  no mark; a restore clears it. (Not a table: the schema check of `audit
  verify` rightly names any table diversion does not define.) It records
  completeness; it is not a seal against an edit, which the audit trail shows.

Restoring (`restore`)
  The backup file is copied to a hidden staging file beside the live database
  (`.NAME.restore-*.partial`, owner-only), and the staged copy is checked: a
  diversion database no newer than this diversion, its integrity, its
  manifest, and (once an older schema is brought up to date) its audit trail.
  Its backup mark is cleared, then the live database is overwritten from it by
  the backup API in one step: one write transaction in the live file's WAL,
  taken under the ordinary write lock. Desks with the file open see the old
  database or the new one whole, and a kill, crash or full disk part-way
  leaves the old one (SQLite discards an uncommitted WAL transaction). The
  staged copy is then removed. Renaming a file over the live one was rejected:
  a desk that already has the old file open keeps reading and writing it, and
  would append its frames to the -wal that the new file inherits by name (one
  of SQLite's documented ways to corrupt a database). Staging costs one copy's
  worth of free space beside the live file, for the length of the restore.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from diversion_cli.errors import BadInput, Refused, StoreUnusable

BACKUP_MARK = int.from_bytes(b"dvBK", "big")  # PRAGMA application_id of a diversion backup
NOT_COUNTED = ("report_cache",)  # derived figures `report` may keep even in a backup it reads
SIDECARS = ("-journal", "-wal", "-shm")
DISK_TROUBLE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS)


# ---- taking a backup ---------------------------------------------------------------

def take(conn, target: Path) -> dict:
    """Write a verified backup of the open database `conn` to `target`, which must not
    exist. Returns the manifest. BadInput (exit 2) for a target that cannot be used,
    StoreUnusable (exit 4) if the copy cannot be written or does not verify."""
    from diversion_cli.store import database_errors

    if os.path.lexists(target):
        raise BadInput("file", f"{target} already exists; choose a new name")
    partial = _private_file(target.parent, f".{target.name}.", ".partial", target, BadInput)
    try:
        try:
            manifest = _snapshot(conn, partial)
            problems = _problems_of_copy(partial)
        except database_errors() as exc:
            raise StoreUnusable(f"the backup to {target} failed: {_disk_words(exc)}; no backup was made "
                                f"(the live database was only read)") from None
        if problems:
            raise StoreUnusable(f"the copy for {target} did not verify ({problems[0]}); no backup was made")
        try:
            _fsync(partial)
            _link_into_place(partial, target)
            _fsync(target.parent)
        except OSError as exc:
            if exc.errno == errno.EEXIST:
                raise BadInput("file", f"{target} already exists; choose a new name") from None
            raise StoreUnusable(f"the backup to {target} failed: {_os_words(exc)}; no backup was made") from None
    finally:
        _remove(partial)
    return manifest


def _snapshot(conn, partial: Path) -> dict:
    """Copy the database into `partial` in one read transaction, and mark the copy with the
    manifest of that same snapshot."""
    from diversion_cli.store import connect

    copy = connect(partial)
    try:
        conn.execute("BEGIN")
        try:
            manifest = held(conn)  # the first read starts the snapshot ...
            conn.backup(copy, pages=-1)  # ... and the copy reads the same one, in one step
        finally:
            conn.execute("COMMIT")
        copy.execute("PRAGMA journal_mode = DELETE")  # the source's WAL mode came with its pages
        copy.execute("BEGIN IMMEDIATE")
        copy.execute(f"PRAGMA user_version = {digest(manifest)}")
        copy.execute(f"PRAGMA application_id = {BACKUP_MARK}")
        copy.execute("COMMIT")
    finally:
        copy.close()
    return manifest


def _problems_of_copy(partial: Path) -> list[str]:
    from diversion_cli.store import connect

    copy = connect(partial)
    try:
        problems = [row[0] for row in copy.execute("PRAGMA integrity_check") if row[0] != "ok"]
        return problems or manifest_problems(copy)
    finally:
        copy.close()


# ---- what a backup held -----------------------------------------------------------

def held(conn) -> dict:
    """The manifest: schema version, last audit entry and the rows of every table."""
    from diversion_cli.store import audit

    tables = [row[0] for row in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite!_%' ESCAPE '!' "
        "ORDER BY name")]
    tables = [table for table in tables if table not in NOT_COUNTED]
    counts = {table: conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0] for table in tables}
    if "audit_transactions" in counts:
        seq, last = audit.head(conn)
        head = (seq, last.hex()) if seq else None
    else:  # a backup taken before migration 9: its manifest as it was written
        head = conn.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone() \
            if "audit_log" in counts else None
    version = conn.execute("SELECT coalesce(max(version), 0) FROM migrations").fetchone()[0] \
        if "migrations" in counts else 0
    return {"schema_version": version, "audit_seq": head[0] if head else 0,
            "audit_hash": head[1] if head else "0" * 64, "row_counts": counts}


def digest(manifest: dict) -> int:
    """The first 32 bits of the SHA-256 of the manifest's text, as PRAGMA user_version takes them."""
    text = json.dumps(manifest, sort_keys=True, separators=(",", ":"))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big", signed=True)


def is_backup(conn) -> bool:
    return conn.execute("PRAGMA application_id").fetchone()[0] == BACKUP_MARK


def manifest_problems(conn) -> list[str]:
    """[] if the file holds what its backup manifest says (or is not a backup, as a live
    database is not); else one line saying it does not."""
    if not is_backup(conn):
        return []
    if conn.execute("PRAGMA user_version").fetchone()[0] == digest(held(conn)):
        return []
    return ["this backup does not hold what it held when it was taken (its rows, audit trail or schema version "
            "differ from its record of them): it is torn or was written to since"]


# ---- restoring ----------------------------------------------------------------------

def restore(source: Path, live) -> dict:
    """Replace the live database (`live`, a Store opened for writing) with the backup at
    `source`, after checking a private copy of it. Returns the backup's manifest.
    Nothing in the live database changes unless the whole backup goes in."""
    from diversion_cli.store import busy_timeout

    staged = _private_file(live.path.parent, f".{live.path.name}.restore-", ".partial", live.path, StoreUnusable)
    try:
        try:
            with open(source, "rb") as src, open(staged, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
                dst.flush()
                os.fsync(dst.fileno())
        except OSError as exc:
            if exc.errno in DISK_TROUBLE:
                raise StoreUnusable(f"no room to stage the restore beside {live.path} ({_os_words(exc)}); "
                                    f"the live database is unchanged") from None
            raise BadInput("file", f"cannot read {source}: {exc.strerror}") from None
        manifest = _check_staged(staged, source)
        _overwrite_live(staged, live, source, busy_timeout())
    finally:
        _remove(staged)
    return manifest


def _check_staged(staged: Path, source: Path) -> dict:
    """Refuse anything but a complete, verifying backup no newer than this diversion; on
    success the staged copy is up to date with this diversion and carries no backup mark."""
    from diversion_cli.store import Store, audit, connect, database_errors
    from diversion_cli.store.migrations import LATEST

    nothing = "the live database is unchanged"
    conn = None
    try:
        conn = connect(staged)
        known = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'migrations'").fetchone()
        if not known:
            raise StoreUnusable(f"{source} is not a diversion backup (empty, torn, or another program's file); "
                                f"{nothing}")
        version = conn.execute("SELECT coalesce(max(version), 0) FROM migrations").fetchone()[0]
        if version > LATEST:
            raise StoreUnusable(f"the backup {source} was written by a newer diversion (schema version {version}; "
                                f"this one understands {LATEST}): upgrade diversion to restore it; {nothing}")
        damage = [row[0] for row in conn.execute("PRAGMA integrity_check") if row[0] != "ok"]
        if damage:
            raise StoreUnusable(f"the backup {source} is damaged ({damage[0]}); {nothing}")
        if not is_backup(conn):
            raise Refused(f"{source} has no record of what it held, so it is not a complete backup made by "
                          f"`diversion db backup` (a partial or torn copy, or one made another way); {nothing}")
        problems = manifest_problems(conn)
        if problems:
            raise Refused(f"{source}: {problems[0]}; {nothing}")
        manifest = held(conn)
        # the live database is not a backup: clear the mark before the audit check reads the file
        conn.execute("PRAGMA application_id = 0")
        conn.execute("PRAGMA user_version = 0")
    except database_errors() as exc:
        raise StoreUnusable(_unreadable(exc, source) + f"; {nothing}") from None
    finally:
        if conn is not None:
            conn.close()
    store = Store.open(staged, write=version < LATEST)  # an older backup is brought up to date first
    try:
        try:
            store.verify_audit()
        except audit.Problem as problem:
            raise Refused(f"the backup's audit trail is broken, not restoring it: {problem}; {nothing}") from None
    except database_errors() as exc:
        raise StoreUnusable(_unreadable(exc, source) + f"; {nothing}") from None
    finally:
        store.close()
    return manifest


class _TooBusy(Exception):
    pass


def _overwrite_live(staged: Path, live, source: Path, patience: float) -> None:
    """Copy the staged database over the live one in one write transaction."""
    from diversion_cli.store import connect, database_errors

    deadline = time.monotonic() + patience

    def give_up_when_busy_too_long(status, remaining, total):
        if status in (5, 6) and time.monotonic() > deadline:  # SQLITE_BUSY, SQLITE_LOCKED
            raise _TooBusy

    conn = connect(staged)
    try:
        conn.backup(live.conn, pages=-1, progress=give_up_when_busy_too_long)
    except _TooBusy:
        raise StoreUnusable(f"the database {live.path} stayed busy (other desks writing) past the timeout; "
                            f"nothing was restored, try again") from None
    except database_errors() as exc:
        raise StoreUnusable(f"restoring {source} failed: {_disk_words(exc)}; the live database is unchanged "
                            f"(its WAL transaction was not committed)") from None
    finally:
        conn.close()


# ---- files --------------------------------------------------------------------------

def _private_file(directory: Path, prefix: str, suffix: str, for_path: Path, otherwise) -> Path:
    """A new, empty, owner-only file in `directory` (the filesystem of its final place).
    A full or failing disk is StoreUnusable; any other failure is `otherwise`."""
    try:
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=directory)
    except OSError as exc:
        if exc.errno in DISK_TROUBLE:
            raise StoreUnusable(f"cannot write beside {for_path}: {_os_words(exc)}") from None
        if otherwise is BadInput:
            raise BadInput("file", f"cannot create {for_path}: {exc.strerror}") from None
        raise otherwise(f"cannot write beside {for_path}: {exc.strerror}") from None
    os.close(fd)
    return Path(name)


def _link_into_place(partial: Path, target: Path) -> None:
    """Give the finished file its name, never over an existing file."""
    try:
        os.link(partial, target)  # fails with EEXIST rather than replace anything
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
            raise
        if os.path.lexists(target):  # a filesystem without hard links
            raise FileExistsError(errno.EEXIST, "exists", str(target)) from None
        os.replace(partial, target)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    for name in (str(path), *(f"{path}{suffix}" for suffix in SIDECARS)):
        try:
            os.unlink(name)
        except FileNotFoundError:
            pass


def _os_words(exc: OSError) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return "the disk is full"
    if exc.errno == errno.EIO:
        return "the disk failed to write (I/O error)"
    return exc.strerror or str(exc)


def _disk_words(exc: Exception) -> str:
    text = str(exc)
    if "full" in text:
        return f"the disk is full ({text})"
    if "I/O error" in text:
        return f"the disk failed ({text})"
    if "locked" in text or "busy" in text:
        return f"the database is busy ({text})"
    return text


def _unreadable(exc: Exception, source: Path) -> str:
    from diversion_cli.store import KEY_ENV

    text = str(exc)
    if "not a database" in text and os.environ.get(KEY_ENV):
        return f"the backup {source} cannot be opened: wrong {KEY_ENV}, or not an encrypted diversion backup"
    if "not a database" in text:
        return f"the backup {source} cannot be read: it is torn, not a database, or encrypted (set {KEY_ENV})"
    if "malformed" in text or "corrupt" in text:
        return f"the backup {source} is damaged ({text})"
    return f"the backup {source} failed: {_disk_words(exc)}"
