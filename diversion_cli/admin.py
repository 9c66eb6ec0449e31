"""Keeping the record trustworthy: status, integrity and audit checks, online
backups and restores, corrections (void and amend, never overwrite), and the
one permitted deletion: a confirmed, audited data-protection erasure."""

from __future__ import annotations

import os
from datetime import date, datetime
from pathlib import Path

from diversion_cli import identity, values
from diversion_cli.errors import BadInput, NotFound, Refused, StoreUnusable
from diversion_cli.operations import Workspace
from diversion_cli.store import audit


def status(ws: Workspace) -> dict:
    from diversion_cli.store import is_server

    store = ws.reader()
    info = store.status()
    if is_server(ws.db_path):  # the server says its size; access is its roles' (README)
        info.update({"path": str(ws.db_path), "mode": None})
        return info
    size = sum(p.stat().st_size for p in (ws.db_path, Path(f"{ws.db_path}-wal")) if p.exists())
    info.update({"path": str(ws.db_path), "size_bytes": size,
                 "mode": oct(ws.db_path.stat().st_mode & 0o777)})
    return info


def _file_only(ws: Workspace, command: str) -> None:
    """`db backup`, `restore` and `compact` look after a file; a server looks after itself."""
    from diversion_cli.store import is_server

    if is_server(ws.db_path):
        raise Refused(f"`db {command}` is for SQLite files: on PostgreSQL, backups and restores are the server's "
                      f"(pg_dump / pg_restore, or base backups with WAL archiving) and it reclaims space itself "
                      f"(autovacuum; VACUUM FULL if ever needed): README, 'A shared server'")


def compact(ws: Workspace) -> dict:
    """SQLite's VACUUM: the file is rewritten without its free pages (same data, same trail)."""
    def size() -> int:
        return sum(p.stat().st_size for p in (ws.db_path, Path(f"{ws.db_path}-wal")) if p.exists())

    _file_only(ws, "compact")
    store = ws.writer()
    before = size()
    store.compact()
    return {"path": str(ws.db_path), "before_bytes": before, "after_bytes": size()}


def migrate_to(ws: Workspace, destination: str, progress=None) -> dict:
    """Move this SQLite database's whole record to an empty PostgreSQL database that has had
    `db init` (store/postgres/transfer.py). The source must verify before, and the copy after,
    or nothing is moved."""
    from diversion_cli.store import Store, is_server, resolve_target
    from diversion_cli.store.postgres import transfer

    target = resolve_target(destination)
    if not is_server(target):
        raise BadInput("target", "give the PostgreSQL database to move to as a postgresql:// URL")
    source = ws.reader()
    if is_server(ws.db_path):
        raise BadInput("db", "migrate-to moves a SQLite file to a server: give the file with --db")
    try:
        source.verify_audit()
    except audit.Problem as problem:
        raise Refused(f"the audit trail of {ws.db_path} does not verify ({problem}): nothing was moved; "
                      f"deal with it first (`diversion audit verify`)") from None
    server = Store.open(target, write=True)
    try:
        held = {table: server.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                for table in ("people", "incidents", "referrals", "erasures", "audit_entries", "issued_ids")}
        if any(held.values()):
            raise Refused(f"the database {target} already holds data ({', '.join(f'{n:,} {t}' for t, n in held.items() if n)}): "
                          f"migrate-to only fills an empty one; nothing was moved")
        source.conn.execute("BEGIN")  # one state of the file, whatever desks write meanwhile
        try:
            result = transfer.copy(source.conn, server.conn, progress)
        except audit.Problem as problem:
            raise StoreUnusable(f"the copy on {target} did not verify ({problem}): nothing was moved") from None
        finally:
            source.conn.execute("ROLLBACK")
    finally:
        server.close()
    return {"from": str(ws.db_path), "to": str(target), "copied": result["copied"],
            "audit_entry": result["verified"]["head"]["entry"], "head_hash": result["verified"]["head"]["hash"]}


def verify_audit(ws: Workspace, anchors: Path | None = None) -> dict:
    """Raises Refused (exit 1) naming the first bad entry if the trail or the data was tampered
    with, or if the trail no longer holds an anchor taken before (`anchor`)."""
    marks = read_anchors(anchors) if anchors else []
    store = ws.reader()
    try:
        result = store.verify_audit()
        store.check_anchors(marks)
    except audit.Problem as problem:
        raise Refused(f"audit trail broken: {problem}") from None
    result["anchors_checked"] = sum(1 for mark in marks if mark[2])  # an anchor at entry 0 proves nothing
    return result


ANCHOR_LINE = "diversion-anchor {at} entry={entry} hash={hash}"


def read_anchors(path: Path) -> list[tuple[int, str, int, str]]:
    """(line, taken at, entry, hash) of every anchor line in a file a force keeps elsewhere."""
    import re

    pattern = re.compile(r"diversion-anchor (\S+) entry=([0-9]{1,18}) hash=([0-9a-f]{64})")
    try:
        with path.open(encoding="utf-8") as handle:
            lines = handle.read(10_000_000).splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput("anchors", f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    anchors = []
    for n, text in enumerate(lines, 1):
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        found = pattern.search(text)
        if not found:
            raise BadInput("anchors", f"{path}:{n}: not an anchor line ({ANCHOR_LINE.format(at='TIME', entry='N', hash='HASH')})")
        anchors.append((n, found[1], int(found[2]), found[3]))
    if not anchors:  # an emptied or wrong file proves nothing: say so rather than pass
        raise BadInput("anchors", f"{path} holds no anchor lines")
    return anchors


def anchor(ws: Workspace, target: Path | None = None) -> str:
    """Verify the trail, then give its head as one line to keep outside the database (a
    daily log, another machine, paper): later verifies against it catch a rewritten chain."""
    result = verify_audit(ws)
    line = ANCHOR_LINE.format(at=ws.clock().isoformat(timespec="seconds"), **result["head"])
    if target is not None:
        try:  # appended, never replaced; never through a symlink
            fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            raise BadInput("output", f"cannot append to {target}: {exc.strerror}") from None
        with os.fdopen(fd, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")
    return line


def accept_outside_changes(ws: Workspace, reason: str | None) -> dict:
    """Enter changes made outside diversion (waiting unsealed) in the trail, openly:
    under this officer's name, as accepted outside changes, with a reason. The
    alternative is to restore a backup taken before them."""
    officer, why = ws.officer(), _reason(reason)
    store = ws.writer()
    with store.transaction("accept outside changes", officer, why, accept_outside_changes=True):
        accepted = store.accept_outside_changes()
    if not accepted:
        raise Refused("no changes made outside diversion are waiting; nothing was written")
    return {"accepted": accepted, "reason": why}


def check(ws: Workspace) -> dict:
    store = ws.reader()
    problems = [line for line in store.integrity_check() if line != "ok"]
    if problems:
        raise StoreUnusable(f"integrity check failed: {problems[0]}")
    result = verify_audit(ws)
    result["integrity"] = "ok"
    return result


def backup(ws: Workspace, target: Path) -> dict:
    """A consistent copy taken while other desks write; owner-only, and checked (integrity,
    and that it holds what the live database held) before it appears at `target`."""
    _file_only(ws, "backup")
    held = ws.reader().backup_to(target)
    return {"path": str(target), "counts": held["row_counts"], "audit_entry": held["audit_seq"]}


def restore(ws: Workspace, source: Path) -> dict:
    """Replace the live database with a complete, verifying backup (integrity, audit trail,
    and the record of what it held), all at once: desks with the file open see the old
    database or the new one whole, and a failure part-way leaves the old one."""
    from diversion_cli.store import backup as backups

    _file_only(ws, "restore")
    if not source.is_file():
        raise NotFound(f"no backup file {source}")
    live = ws.writer()
    held = backups.restore(source, live)
    return {"path": str(ws.db_path), "from": str(source), "counts": held["row_counts"],
            "audit_entry": held["audit_seq"]}


def audit_log(ws: Workspace, person: str | None = None, referral: str | None = None, limit: int = 200) -> list[dict]:
    # an empty filter (an unset variable in a script) is a mistake, never "everyone"
    person_id = values.parse_person_id(person) if person is not None else None
    referral_id = values.parse_referral_id(referral) if referral is not None else None
    entries = ws.reader().audit_entries(person_id=person_id, referral_id=referral_id, limit=limit)
    if not entries and (person_id is not None or referral_id is not None):
        # an id never on record is a typo, not an empty history (an erased person's entries remain)
        raise NotFound(f"no person {values.format_person_id(person_id)}" if person_id is not None
                       else f"no referral {referral_id}")
    return entries


def _reason(reason: str | None) -> str:
    text = values.clean_text(reason, "reason")
    if not text:
        raise BadInput("reason", "is required: say why the record is being corrected")
    return text


def void_incident(ws: Workspace, incident: str, reason: str | None) -> dict:
    """Mark a wrongly recorded incident void. It stays on record, out of reports."""
    officer, now = ws.officer(), ws.clock()
    incident_id = values.parse_incident_id(incident)
    why = _reason(reason)
    store = ws.writer()
    with store.transaction("void incident", officer, why):
        row = store.incident(incident_id)
        if row is None:
            raise NotFound(f"no incident {values.format_incident_id(incident_id)}")
        if row["voided_at"]:
            raise Refused(f"{values.format_incident_id(incident_id)} is already void")
        live = store.live_referral_for_incident(incident_id)
        if live:
            raise Refused(f"{values.format_incident_id(incident_id)} has referral {live['id']} ({live['status']}); "
                          f"void the referral first with `diversion outcome {live['id']} voided`")
        store.void_incident(incident_id, now, why)
    return {"incident_id": values.format_incident_id(incident_id), "voided_at": now.isoformat(timespec="seconds"),
            "reason": why}


def amend_incident(ws: Workspace, incident: str, reason: str | None, when: str | None = None,
                   location: str | None = None, quantity: str | None = None, substances: list[str] | None = None,
                   co_offences: list[str] | None = None, supply_suspected: bool | None = None,
                   supervisor: str | None = None, not_duplicate: bool = False) -> dict:
    """Correct an incident, with a reason. A change to what eligibility rests on (when, the
    substances, other offences, supply) is decided again, beside the earlier decision. A
    change of time or substances that makes it look like another incident of the same
    arrest is refused unless the officer states it is a different incident."""
    from diversion_cli import operations

    officer, now, config = ws.officer(), ws.clock(), ws.config
    incident_id = values.parse_incident_id(incident)
    why = _reason(reason)
    changes = {}
    if location is not None:
        changes["location"] = values.clean_text(location, "location")
    if quantity is not None:
        changes["quantity"] = values.clean_text(quantity, "quantity")
    if supply_suspected is not None:
        changes["supply_suspected"] = int(supply_suspected)
    found = operations.clean_substances(config, substances) if substances is not None else None
    offences = operations.clean_co_offences(co_offences) if co_offences is not None else None
    occurred = values.parse_datetime(when, "when") if when else None
    approved_by = values.parse_officer(supervisor) if supervisor else None
    if occurred is None and not changes and found is None and offences is None:
        raise BadInput("amend", "nothing to change: give --when, --location, --quantity, --substance, "
                                "--co-offence (or --no-co-offence) or --supply-suspected/--no-supply-suspected")
    if approved_by:
        operations.refuse_self_approval(approved_by, officer)
    store = ws.writer()
    with store.transaction("amend incident", officer, why):
        row = store.incident(incident_id)
        if row is None:
            raise NotFound(f"no incident {values.format_incident_id(incident_id)}")
        if row["voided_at"]:
            raise Refused(f"{values.format_incident_id(incident_id)} is void; it cannot be amended")
        store.refuse_unaudited(row["person_id"])
        if occurred:
            recorded = datetime.fromisoformat(row["recorded_at"])
            if occurred > recorded:  # an offence is recorded after it happens, never before
                raise BadInput("when", f"{occurred:%Y-%m-%d %H:%M} is after the incident was recorded "
                                       f"({recorded:%Y-%m-%d %H:%M})")
            person = store.person(row["person_id"])
            changes["occurred_at"] = occurred.isoformat(timespec="seconds")
            changes["age"] = values.check_age(date.fromisoformat(person["dob"]), occurred)
        changes = {k: v for k, v in changes.items() if row[k] != v}
        new_substances = found is not None and [(s["substance"], s["entered_as"]) for s in row["substances"]] \
            != [(key, entered) for key, _, entered in found]
        stated = []
        if "occurred_at" in changes or new_substances:
            stated = operations.refuse_duplicate(
                store, row["person_id"], occurred or datetime.fromisoformat(row["occurred_at"]),
                {key for key, _, _ in found} if new_substances else {s["substance"] for s in row["substances"]},
                not_duplicate, officer, amending=incident_id)
        if stated:  # the officer's statement, in the trail with the change it let through
            store.note(" ".join(n["message"] for n in stated))
        if changes:
            store.amend_incident(incident_id, changes)
        changed = sorted(changes)
        if new_substances:
            store.replace_incident_substances(incident_id, found)
            changed.append("substances")
        if offences is not None and row["co_offences"] != offences:
            store.replace_incident_co_offences(incident_id, offences)
            changed.append("co_offences")
        if not changed:
            raise BadInput("amend", f"{values.format_incident_id(incident_id)} already says that: nothing to change")
        decided_again = bool({"occurred_at", "substances", "co_offences", "supply_suspected"} & set(changed))
        if approved_by and not (decided_again and (row["co_offences"] if offences is None else offences)):
            raise BadInput("supervisor", "approves diversion despite another offence when the decision is taken "
                                         "again; this change needs none")
        decision = None
        if decided_again:
            decision = operations.decide_again(store, config, incident_id, now, officer, approved_by, why, stated,
                                               co_offences_changed="co_offences" in changed)
    return {"incident_id": values.format_incident_id(incident_id), "changed": changed, "reason": why,
            "decision": decision}


def amend_person(ws: Workspace, person: str, reason: str | None, surname: str | None = None,
                 forename: str | None = None, dob: str | None = None, pnc: str | None = None,
                 gender: str | None = None, ethnicity: str | None = None) -> dict:
    officer = ws.officer()
    person_id = values.parse_person_id(person)
    why = _reason(reason)
    changes = {}
    if surname is not None:
        changes["surname"] = values.clean_name(surname, "surname")
        changes["surname_norm"] = identity.normalise(changes["surname"])
    if forename is not None:
        changes["forenames"] = values.clean_name(forename, "forename")
        changes["forenames_norm"] = identity.normalise(changes["forenames"])
    if dob is not None:
        changes["dob"] = values.parse_date(dob, "dob").isoformat()
    if pnc is not None:
        changes["pnc"] = values.parse_pnc(pnc)
    if gender is not None:
        changes["gender"] = values.parse_gender(gender)
    if ethnicity is not None:
        changes["ethnicity"] = values.parse_ethnicity(ethnicity, ws.config.ethnicity)
    if not changes:
        raise BadInput("amend", "nothing to change")
    store = ws.writer()
    with store.transaction("amend person", officer, why):
        if store.person(person_id) is None:
            raise NotFound(f"no person {values.format_person_id(person_id)}")
        holder = store.person_by_pnc(changes["pnc"]) if "pnc" in changes else None
        if holder and holder["id"] != person_id:  # (asked first: the database's refusal would log the PNC)
            raise Refused(f"another person ({values.format_person_id(holder['id'])}) already has that PNC ID")
        ages = {}
        if "dob" in changes:
            for incident in store.incidents_of(person_id):
                age = values.check_age(date.fromisoformat(changes["dob"]), datetime.fromisoformat(incident["occurred_at"]))
                if age != incident["age"]:
                    ages[incident["id"]] = age
        store.amend_person(person_id, changes)
        for incident_id, age in ages.items():  # youth or adult, and the age bands, follow the corrected date
            store.amend_incident(incident_id, {"age": age})
    return {"person_id": values.format_person_id(person_id),
            "changed": sorted(k for k in changes if not k.endswith("_norm")), "reason": why}


def erase_person(ws: Workspace, person: str, reason: str | None, confirm: str | None,
                 override_retention: bool = False) -> dict:
    """Data-protection erasure: remove a person and everything recorded about them."""
    officer, now = ws.officer(), ws.clock()
    person_id = values.parse_person_id(person)
    why = _reason(reason)
    if confirm is None or values.parse_person_id(confirm) != person_id:
        raise BadInput("confirm", f"repeat the person id with --confirm {values.format_person_id(person_id)} "
                                  f"to erase them")
    store = ws.writer()
    with store.transaction("erase person", officer, why):
        if store.person(person_id) is None:
            raise NotFound(f"no person {values.format_person_id(person_id)}")
        diverted = [r for r in store.referrals_of(person_id) if r["status"] in ("accepted", "completed", "failed")]
        if diverted and not override_retention:
            raise Refused(f"{values.format_person_id(person_id)} has a diversion on record ({diverted[0]['id']}); "
                          f"the one-shot rule needs it kept (MoPI). Use --override-retention only on a "
                          f"documented legal decision")
        removed = store.erase_person(person_id, now, officer, why)
    return {"person_id": values.format_person_id(person_id), "removed": removed, "reason": why,
            "left_behind": store.after_erasure()}


# ---- who is signed in, and the roles (a shared server) ------------------------------------

def whoami(ws: Workspace) -> dict:
    """This login, its collar number and roles, and the commands it may run; on a file, that it
    is one user's file (its OS account is the identity) and every command is theirs."""
    import getpass

    from diversion_cli import roles
    from diversion_cli.store import is_server

    if not is_server(ws.db_path):
        return {"engine": "sqlite", "login": getpass.getuser(), "officer": ws.officer_given, "owner": True,
                "roles": list(roles.ROLES), "may_run": sorted(roles.COMMANDS)}
    who = ws.reader().identity()
    may = sorted(c for c in roles.COMMANDS if who["owner"] or set(roles.COMMANDS[c]) & set(who["roles"]))
    return {"engine": "postgres", **who, "may_run": may}


def _server_roles(ws: Workspace):
    from diversion_cli.store import is_server

    if not is_server(ws.db_path):
        raise Refused("roles are a shared server's (PostgreSQL): a SQLite file has one user, its OS account, "
                      "and its file permissions are its access control")
    return ws.reader()


def init_roles(ws: Workspace) -> list[dict]:
    """The group roles and their rights, and the config's one-shot scopes pinned (a desk's login
    refers only under a pinned scheme's scope)."""
    _server_roles(ws).init_roles()
    return pin_schemes(ws)


def grant_role(ws: Workspace, login: str, role: str, officer: str | None) -> dict:
    from diversion_cli import roles

    if role not in roles.ROLES:
        raise BadInput("role", f"{role!r} is not one of {', '.join(roles.ROLES)}")
    officer = values.parse_officer(officer) if officer else None
    store = _server_roles(ws)
    store.grant_role(login, role, officer, values.now().isoformat(timespec="seconds"))
    return next(e for e in store.logins() if e["login"] == login)


def revoke_role(ws: Workspace, login: str, role: str | None) -> list[str]:
    from diversion_cli import roles

    if role is not None and role not in roles.ROLES:
        raise BadInput("role", f"{role!r} is not one of {', '.join(roles.ROLES)}")
    return _server_roles(ws).revoke_role(login, role)


def pin_schemes(ws: Workspace) -> list[dict]:
    """Pin the config's schemes' one-shot scopes on the server (what a referral is checked in)."""
    scopes = [(s.key, s.one_shot_group, s.lookback_years) for s in ws.config.schemes.values()]
    return _server_roles(ws).pin_schemes(scopes, values.now().isoformat(timespec="seconds"))


def logins(ws: Workspace) -> list[dict]:
    return _server_roles(ws).logins()


def roles_shared_with(ws: Workspace) -> str | None:
    """A warning if another database on the server uses the same group roles (None if none does)."""
    others = _server_roles(ws).sharing_roles()
    if not others:
        return None
    return (f"the group roles are this server's, not this database's: {', '.join(others)} uses them too, so a role "
            f"granted or revoked there is granted or revoked here (give a training or test copy its own server: "
            f"README, 'Roles and logins')")
