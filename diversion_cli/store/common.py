"""What every part of the store shares, whatever the engine: where the database is,
how long a desk waits, row digests, the drivers' errors and the refusals they map to."""

from __future__ import annotations

import hashlib  # (the interpreter has loaded it before any command gets here)
import os
import sqlite3
from datetime import datetime
from pathlib import Path

from diversion_cli.errors import BadInput, Refused

DEFAULT_BUSY_TIMEOUT = 10.0  # seconds a desk waits for another desk's write


def default_db_path() -> Path:
    """The per-user data file used when neither --db nor DIVERSION_DB is set."""
    base = os.environ.get("XDG_DATA_HOME") or (Path.home() / ".local" / "share")
    return Path(base) / "diversion" / "diversion.db"


def resolve_target(target: str | None):
    """The database to use: a SQLite file's Path, or a PostgresTarget (store/postgres)."""
    chosen = target or os.environ.get("DIVERSION_DB")
    if not chosen:
        return default_db_path()
    from diversion_cli.store import postgres

    if postgres.is_target(chosen):
        return postgres.PostgresTarget(chosen)
    if "://" in chosen:
        raise BadInput("db", f"{chosen.split('://')[0]}:// databases are not supported: give a SQLite file path "
                             f"or a postgresql:// URL")
    if postgres.looks_meant(chosen):  # a mistyped URL must not quietly become a file no other desk shares
        raise BadInput("db", "this looks meant for a PostgreSQL server but is not a postgresql://host/database "
                             "URL; a file path cannot start with postgres: or be a list of key=value settings")
    return Path(chosen).expanduser()


def is_server(target) -> bool:
    """Whether the target is a database server (PostgreSQL) rather than a file."""
    return not isinstance(target, Path)


MAX_BUSY_TIMEOUT = 3600.0  # an hour: past that a desk is not waiting, it is stuck


def busy_timeout() -> float:
    """Seconds a desk waits for another's write: DIVERSION_BUSY_TIMEOUT, 0 to an hour."""
    raw = os.environ.get("DIVERSION_BUSY_TIMEOUT")
    if not raw:
        return DEFAULT_BUSY_TIMEOUT
    try:
        seconds = float(raw)
    except ValueError:
        raise BadInput("DIVERSION_BUSY_TIMEOUT", f"{raw!r} is not a number of seconds") from None
    if not 0 <= seconds <= MAX_BUSY_TIMEOUT:  # also refuses nan and inf
        raise BadInput("DIVERSION_BUSY_TIMEOUT", f"{raw!r} must be a number of seconds from 0 to "
                                                 f"{MAX_BUSY_TIMEOUT:g}")
    return seconds


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") if moment else None


def database_errors() -> tuple[type, ...]:
    """The exception classes of every database driver in use (for except clauses)."""
    import sys

    from diversion_cli.store.postgres import driver_errors

    cipher = sys.modules.get("sqlcipher3.dbapi2")
    return (sqlite3.Error, *((cipher.Error,) if cipher else ()), *driver_errors()[0])


def integrity_errors() -> tuple[type, ...]:
    import sys

    from diversion_cli.store.postgres import driver_errors

    cipher = sys.modules.get("sqlcipher3.dbapi2")
    return (sqlite3.IntegrityError, *((cipher.IntegrityError,) if cipher else ()), *driver_errors()[1])

DIGEST_BYTES = 16  # a row digest: SHA-256 cut to 128 bits (the chain's hashes are whole)


def digest(salt: bytes | None, text: str | bytes | None) -> bytes | None:
    """A row snapshot's SHA-256, salted with its person's salt, cut to 128 bits: the SQL
    function diversion_digest, which SQL gives the snapshot's UTF-8 bytes (CAST AS BLOB:
    no decoding and encoding again, a third of the cost of checking a row). 128 bits keep
    a forger 2^128 tries from a row that matches a digest already sealed; a digest per
    trail entry is most of the trail's weight, so the full 256 would cost ~80 bytes an
    incident (the chain itself keeps full SHA-256)."""
    if text is None:
        return None
    data = text if isinstance(text, bytes) else text.encode()
    return hashlib.sha256((salt or b"") + data).digest()[:DIGEST_BYTES]

def _json(value) -> str:
    import json

    return json.dumps(value, separators=(",", ":"))

# What the database says when a guard refuses a write (a constraint's or index's name, SQLite's
# column, or the code a trigger raises: schema.py, migrations.py), and what the officer is told.
REFUSALS = (
    (("one_shot_used",), "this person has already had their diversion (one-shot rule)"),
    (("referrals_one_open", "referrals.person_id"), "this person already has an open referral"),
    (("incident_void",), "the incident is void"),
    (("illegal_transition",), "that status change is not allowed"),
    (("referrals.incident_id", "referrals_one_per_incident"), "this incident already has a live referral"),
    (("dates_are_iso",), "a date is written as diversion writes one (YYYY-MM-DDTHH:MM:SS, a real one), and a "
                         "condition's result with its date"),
    (("dated_in_the_future",), "what happened is dated by now, not later"),
    (("ids_are_issued_in_turn",), "an id is the next one issued, never one of a login's choosing"),
    (("stamped_at_another_time",), "a write is stamped with the server's day (is this desk's clock right?)"),
    (("referral_outcome_is_kept",), "a referral's offer, acceptance and closing dates and outcome are set once, "
                                    "when they happen; a closed referral changes only in a supervisor's correction"),
    (("conditions_not_met",), "a contract completes only when every condition is met"),
    (("referral_starts_offered", "condition_starts_pending"), "a referral is offered first, and a condition starts "
                                                              "pending (only an import brings them in closed)"),
    (("scheme_not_pinned",), "this scheme's one-shot scope is not pinned on the server: an admin runs `diversion "
                             "db pin-schemes` with the force's config"),
    (("one_shot_scope_not_pinned",), "the one-shot scope or look-back of this referral is not its scheme's as "
                                     "pinned on the server (is this desk's config the force's? an admin pins a "
                                     "changed one with `diversion db pin-schemes`)"),
    (("people.pnc", "people_pnc_key"), "another person already has that PNC ID"),
)


def refusal_for(exc: Exception) -> Refused:
    text = str(exc)
    said = next((message for markers, message in REFUSALS if any(m in text for m in markers)),
                text.splitlines()[0] if text else exc.__class__.__name__)
    return Refused(f"refused by the database: {said}")
