"""The operations people run: record, check, refer, outcome, conditions,
the work queue and letters. Each is callable from Python without Typer; each
validates everything before it opens a write transaction, and does its reads,
rule checks and writes inside one transaction so competing desks serialise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

from diversion_cli import identity, rules, values
from diversion_cli.config import Config, Scheme, config_path_from_env, load_config
from diversion_cli.errors import BadInput, NotFound, Refused
from diversion_cli.store import Store, is_server, resolve_target

STATUSES = ("offered", "accepted", "declined", "completed", "failed", "voided")
TRANSITIONS = {"offered": ("accepted", "declined", "voided"), "accepted": ("completed", "failed", "voided")}
# What a supervisor may correct a wrongly closed referral to (migration 7's trigger agrees).
CORRECTIONS = {"completed": ("failed", "voided"), "failed": ("completed", "voided"), "declined": ("voided",)}


class Workspace:
    """What every command needs: the store (opened lazily), the config, the
    officer and the clock. No command but `db init` creates a database, and
    commands that only read never write to one."""

    def __init__(self, db: str | None = None, officer: str | None = None, config: str | None = None,
                 clock=values.now):
        self._db, self.officer_given, self._config_arg, self.clock = db, officer, config, clock
        self._store: Store | None = None
        self._writable = False
        self.signed_in: dict | None = None  # on a server: the login, its collar number and roles (permit)
        self._config: Config | None = None

    @property
    def db_path(self) -> Path:
        return resolve_target(self._db)

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(config_path_from_env(self._config_arg))
        return self._config

    def officer(self) -> str:
        if not self.officer_given:
            raise BadInput("officer", "a collar number is required to write (--officer or DIVERSION_OFFICER)")
        return values.parse_officer(self.officer_given)

    def permit(self, command: str, options: dict) -> dict | None:
        """On a server: refuse (exit 5) a command this login's role may not run, or a collar
        number that is not the login's, before anything is read or written; returns who is
        signed in. On a file, None: no roles (its OS account is its one user)."""
        from diversion_cli import roles
        from diversion_cli.errors import NotPermitted

        if command in roles.UNCHECKED or not is_server(self.db_path):
            return None
        who = self.reader().identity()
        needs = roles.needed(command, options)
        if needs and not who["owner"] and not set(needs) & set(who["roles"]):
            held = ", ".join(who["roles"]) or "no diversion role"
            raise NotPermitted(f"`diversion {command}` needs the {' or '.join(needs)} role; login {who['login']} "
                               f"has {held}. Nothing was done")
        if who["officer"] is not None:
            if self.officer_given and values.parse_officer(self.officer_given) != who["officer"]:
                raise NotPermitted(f"login {who['login']} is officer {who['officer']}; --officer "
                                   f"{self.officer_given} is someone else's collar number. Nothing was done")
            self.officer_given = who["officer"]  # the login says who is acting
        elif command in roles.WRITES and not who["owner"]:
            raise NotPermitted(f"login {who['login']} has no collar number on this server: an admin maps it with "
                               f"`diversion db roles grant {who['login']} ROLE --officer N`. Nothing was done")
        approver = options.get("supervisor")
        if approver and self.reader().supervises(values.parse_officer(approver)) is False:
            raise NotPermitted(f"--supervisor {approver} is not a supervisor's collar number on this server (no "
                               f"login holding the supervisor role has it). Nothing was done")
        self.signed_in = who
        return who

    def signed_in_as(self, role: str) -> bool:
        """Whether the server's login holds this role under its own collar number (its sign-in is then
        its approval: a supervisor's correction needs no second supervisor). False on a file, and for
        the schema's owner with no collar number of its own: there anyone may claim one."""
        return self.signed_in is not None and self.signed_in["officer"] is not None \
            and role in self.signed_in["roles"]

    def reader(self) -> Store:
        """The store for reading (StoreUnusable, exit 4, if there is no database)."""
        if self._store is None:
            self._store = Store.open(self.db_path)
        return self._store

    def writer(self) -> Store:
        """The store for writing: brought up to this diversion's schema first."""
        if self._store is not None and not self._writable and not is_server(self.db_path):
            self.close()  # (a file is opened again to be brought up to date; a server's connection serves both)
        if self._store is None:
            self._store = Store.open(self.db_path, write=True)
            self._writable = True
        return self._store

    def init(self) -> Path:
        """Create the database (`diversion db init`)."""
        Store.create(self.db_path).close()
        return self.db_path

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
            self._writable = False


# ---- shared shapes ----------------------------------------------------------

def person_view(row: dict | None) -> dict | None:
    if row is None:
        return None
    return {"id": values.format_person_id(row["id"]), "surname": row["surname"], "forenames": row["forenames"],
            "dob": row["dob"], "pnc": row["pnc"], "gender": row["gender"], "ethnicity": row["ethnicity"]}


def incident_view(row: dict) -> dict:
    decision = row.get("decision")
    return {"id": values.format_incident_id(row["id"]), "occurred_at": row["occurred_at"], "age": row["age"],
            "substances": row.get("substances", []), "co_offences": row.get("co_offences", []),
            "supply_suspected": bool(row["supply_suspected"]), "location": row["location"],
            "quantity": row["quantity"], "recorded_by": row["recorded_by"],
            "eligible_at_record": None if decision is None else bool(decision["eligible"])}


def referral_view(row: dict) -> dict:
    keys = ("id", "scheme", "status", "provider", "offered_at", "appointment", "deadline", "diverted_at",
            "closed_at", "outcome_code", "reason")
    view = {k: row[k] for k in keys}
    view["incident_id"] = values.format_incident_id(row["incident_id"])
    return view


def prior_referrals(rows: list[dict]) -> list[rules.PriorReferral]:
    return [rules.PriorReferral(r["id"], r["scheme"], r["one_shot_group"], r["status"], r["offered_at"],
                                r["diverted_at"]) for r in rows]


def possible_match_view(row: dict, reasons: list[str]) -> dict:
    return {"id": values.format_person_id(row["id"]), "surname": row["surname"], "forenames": row["forenames"],
            "dob": row["dob"], "pnc": row["pnc"], "diverted": bool(row.get("diverted")),
            "open_referral": bool(row.get("open_referral")), "why": reasons}


def near_matches(store: Store, who: identity.NameAndBirth, exclude: set[int] = frozenset()) -> list[dict]:
    dobs = [who.dob.isoformat()]
    swapped = identity.swapped_day_month(who.dob)
    if swapped:
        dobs.append(swapped.isoformat())
    found = []
    for row in store.people_born_on(dobs):
        if row["id"] in exclude:
            continue
        reasons = identity.possible_same_person(who, row["surname"], row["forenames"], date.fromisoformat(row["dob"]))
        if reasons:
            found.append(possible_match_view(row, reasons))
    return found


# ---- record ---------------------------------------------------------------

@dataclass
class RecordRequest:
    person: str | None = None
    surname: str | None = None
    forename: str | None = None
    dob: str | None = None
    pnc: str | None = None
    gender: str | None = None
    ethnicity: str | None = None
    when: str | None = None
    substances: list[str] = field(default_factory=list)
    quantity: str | None = None
    location: str | None = None
    co_offences: list[str] = field(default_factory=list)
    supply_suspected: bool = False
    new_person: bool = False
    refer: bool = False
    scheme: str | None = None
    appointment: str | None = None
    supervisor: str | None = None
    not_same_as: list[str] = field(default_factory=list)
    not_duplicate: bool = False


@dataclass
class CleanRecord:
    """A RecordRequest after validation: every value parsed and checked."""

    person_id: int | None
    surname: str | None
    forenames: str | None
    dob: date | None
    pnc: str | None
    gender: str | None
    ethnicity: str | None
    when: datetime
    substances: list[tuple[str, str, str]]
    quantity: str | None
    location: str | None
    co_offences: list[str]
    supply_suspected: bool
    new_person: bool
    refer: bool
    scheme: str | None
    appointment: datetime | None
    supervisor: str | None
    not_same_as: set[int] = field(default_factory=set)
    not_duplicate: bool = False


def clean_substances(config: Config, entered: list[str]) -> list[tuple[str, str, str]]:
    """(key, class, as entered) for each substance named, once each; only controlled drugs."""
    if not entered:
        raise BadInput("substance", "at least one substance is required")
    substances, seen = [], set()
    for text in entered:
        found = config.substance(text)
        if not found.controlled:
            raise Refused(f"substance: {text.strip()!r} is not a controlled drug; possessing it for personal "
                          f"use is not an offence, so this is not a possession incident and cannot be diverted")
        if found.key not in seen:
            seen.add(found.key)
            substances.append((found.key, found.drug_class, " ".join(text.split())))
    return substances


def clean_co_offences(entered: list[str]) -> list[str]:
    return [values.clean_text(text, "co-offence", required=True) for text in entered]


def validate_record(config: Config, req: RecordRequest, now: datetime) -> CleanRecord:
    person_id = values.parse_person_id(req.person) if req.person else None
    today = now.date()
    pnc = values.parse_pnc(req.pnc, today) if req.pnc else None
    named = any(v not in (None, "") for v in (req.surname, req.forename, req.dob))
    if person_id is None and (named or not pnc):
        surname = values.clean_name(req.surname, "surname")
        forenames = values.clean_name(req.forename, "forename")
        if not req.dob:
            raise BadInput("dob", "is required for a person not yet on record")
        dob = values.parse_date(req.dob, "dob", today=today)
    else:
        surname = values.clean_name(req.surname, "surname") if req.surname else None
        forenames = values.clean_name(req.forename, "forename") if req.forename else None
        dob = values.parse_date(req.dob, "dob", today=today) if req.dob else None
    when = values.parse_datetime(req.when, "when", current=now) if req.when else now
    if when > now + values.FUTURE_TOLERANCE:
        raise BadInput("when", f"{when:%Y-%m-%d %H:%M} is in the future")
    if dob:
        values.check_age(dob, when)
    substances = clean_substances(config, req.substances)
    co_offences = clean_co_offences(req.co_offences)
    if req.scheme:
        config.scheme(req.scheme)
    return CleanRecord(
        person_id=person_id, surname=surname, forenames=forenames, dob=dob, pnc=pnc,
        gender=values.parse_gender(req.gender), ethnicity=values.parse_ethnicity(req.ethnicity, config.ethnicity),
        when=when, substances=substances, quantity=values.clean_text(req.quantity, "quantity"),
        location=values.clean_text(req.location, "location"), co_offences=co_offences,
        supply_suspected=req.supply_suspected, new_person=req.new_person, refer=req.refer, scheme=req.scheme,
        appointment=values.parse_datetime(req.appointment, "appointment", allow_future=True)
        if req.appointment else None,
        supervisor=values.parse_officer(req.supervisor) if req.supervisor else None,
        not_same_as={values.parse_person_id(p) for p in req.not_same_as}, not_duplicate=req.not_duplicate,
    )


def find_person_matches(ws: Workspace, surname: str, forename: str, dob: str, pnc: str | None = None) -> dict:
    """For the interactive desk: who is already on record under this name, PNC or a near spelling."""
    who = identity.NameAndBirth(values.clean_name(surname, "surname"), values.clean_name(forename, "forename"),
                                values.parse_date(dob, "dob"))
    store = ws.reader()
    exact = store.people_named(who.surname_norm, who.forenames_norm, who.dob.isoformat())
    if pnc:
        by_pnc = store.person_by_pnc(values.parse_pnc(pnc))
        if by_pnc and by_pnc["id"] not in {p["id"] for p in exact}:
            exact.insert(0, by_pnc)
    return {"exact": [person_view(p) for p in exact],
            "possible_matches": near_matches(store, who, exclude={p["id"] for p in exact})}


def _describe(person: dict) -> str:
    return (f"{values.format_person_id(person['id'])} ({person['surname'].upper()}, {person['forenames']}, "
            f"born {values.date_in_words(date.fromisoformat(person['dob']))})")


def _typed_differences(person: dict, surname: str | None, forenames: str | None, dob: date | None) -> list[str]:
    """Which typed details differ from the person's record (middle names may be left out)."""
    differ = []
    if surname and identity.normalise(surname) != person["surname_norm"]:
        differ.append(f"surname typed {surname!r}, recorded {person['surname']!r}")
    if forenames and identity.first_forename(identity.normalise(forenames)) != \
            identity.first_forename(person["forenames_norm"]):
        differ.append(f"forename typed {forenames!r}, recorded {person['forenames']!r}")
    if dob and dob.isoformat() != person["dob"]:
        differ.append(f"date of birth typed {values.date_in_words(dob)}, recorded "
                      f"{values.date_in_words(date.fromisoformat(person['dob']))}")
    return differ


def name_warnings(person: dict) -> list[str]:
    """What the desk should look at twice: a name mixing alphabets (look-alike letters)."""
    warnings = []
    for part in ("surname", "forenames"):
        scripts = identity.mixed_scripts(person[part])
        if scripts:
            warnings.append(f"{part} {person[part]!r} mixes {' and '.join(scripts)} letters: check the spelling "
                            f"(look-alike letters can hide a record)")
    return warnings


def pnc_conflict(ws: Workspace, req: RecordRequest) -> dict | None:
    """For the desk's question: the person a typed PNC belongs to, if the typed name or
    date of birth says someone else."""
    if req.new_person:
        return None
    today = ws.clock().date()
    pnc = values.parse_pnc(req.pnc, today)
    person = ws.reader().person_by_pnc(pnc)
    differ = _typed_differences(person, values.clean_name(req.surname, "surname") if req.surname else None,
                                values.clean_name(req.forename, "forename") if req.forename else None,
                                values.parse_date(req.dob, "dob", today=today) if req.dob else None) if person else []
    return {"pnc": pnc, "person": person_view(person), "differences": differ} if differ else None


def blocking_matches(matches: list[dict], not_same_as: set[int]) -> list[dict]:
    """Near matches who were diverted or have an open referral, and whom the officer
    has not stated to be someone else."""
    return [m for m in matches if (m["diverted"] or m["open_referral"])
            and values.parse_person_id(m["id"]) not in not_same_as]


def matches_line(matches: list[dict]) -> str:
    return ", ".join(f"{m['id']} ({m['surname'].upper()}, {m['forenames']}, born "
                     f"{values.date_in_words(date.fromisoformat(m['dob']))}: {'; '.join(m['why'])}; "
                     f"{'diverted' if m['diverted'] else 'open referral'})" for m in matches)


def _not_same_statements(matches: list[dict], not_same_as: set[int], officer: str) -> list[dict]:
    """The officer's statements that near matches are other people, checked against the
    matches found and kept with the decision (and so in the audit trail)."""
    known = {values.parse_person_id(m["id"]): m for m in matches}
    strays = sorted(not_same_as - set(known))
    if strays:
        listed = ", ".join(values.format_person_id(p) for p in strays)
        raise BadInput("not-same-as", f"{listed} is not a possible same person here "
                                      f"({', '.join(m['id'] for m in matches) or 'there are none'})")
    return [{"code": "NOT_SAME_PERSON", "scheme": None,
             "message": f"Officer {officer} stated this is not {m['id']} ({m['surname'].upper()}, {m['forenames']}, "
                        f"born {m['dob']}; {'; '.join(m['why'])}; "
                        f"{'diverted' if m['diverted'] else 'open referral' if m['open_referral'] else 'no diversion'})."}
            for p, m in sorted(known.items()) if p in not_same_as]


def _resolve_person(store: Store, rec: CleanRecord, now: datetime, officer: str) \
        -> tuple[dict, bool, list[dict], list[dict]]:
    """The person this incident is about: (row, created, near matches, statements
    about identity to keep with the decision)."""
    person, notes = None, []
    if rec.person_id is not None:
        person = store.person(rec.person_id)
        if person is None:
            raise NotFound(f"no person {values.format_person_id(rec.person_id)}")
        differ = _typed_differences(person, rec.surname, rec.forenames, rec.dob)
        if differ:  # the officer named the person: go on, and keep what differed
            notes.append({"code": "IDENTITY_CONFIRMED", "scheme": None,
                          "message": f"Officer {officer} confirmed {_describe(person)} although "
                                     f"{'; '.join(differ)} (correct a record with `diversion amend person`)."})
    elif rec.pnc and not rec.new_person:
        person = store.person_by_pnc(rec.pnc)
        differ = _typed_differences(person, rec.surname, rec.forenames, rec.dob) if person else []
        if differ:  # a PNC identifies: a record that says someone else is never resolved silently
            raise Refused(f"pnc: {rec.pnc} belongs to {_describe(person)}, but {'; '.join(differ)}. Check the "
                          f"PNC ID, or if it is them confirm with --person {values.format_person_id(person['id'])} "
                          f"(correct their details with `diversion amend person`)")
    if person is None and not rec.new_person and rec.surname:
        exact = [p for p in store.people_named(identity.normalise(rec.surname), identity.normalise(rec.forenames),
                                               rec.dob.isoformat())
                 if p["pnc"] is None or rec.pnc is None or p["pnc"] == rec.pnc]
        person = exact[0] if exact else None
    if person is not None and rec.pnc and person["pnc"] not in (None, rec.pnc):
        raise Refused(f"pnc: {values.format_person_id(person['id'])} is recorded with a different PNC ID; "
                      f"check the ID or name the person with --person")
    if person is not None and rec.pnc and person["pnc"] is None:
        other = store.person_by_pnc(rec.pnc)
        if other is not None:
            raise Refused(f"pnc: {rec.pnc} belongs to {values.format_person_id(other['id'])}, not "
                          f"{values.format_person_id(person['id'])}")
    if person is not None:
        dob = date.fromisoformat(person["dob"])
        who = identity.NameAndBirth(person["surname"], person["forenames"], dob)
        matches = near_matches(store, who, exclude={person["id"]})
        store.refuse_unaudited(person["id"])  # before this transaction changes anything of theirs
        store.fill_person_gaps(person["id"], rec.pnc, rec.gender, rec.ethnicity)
        return store.person(person["id"]), False, matches, notes + _not_same_statements(
            matches, rec.not_same_as, officer)
    if rec.surname is None:
        raise BadInput("surname", f"no person on record with PNC {rec.pnc}; give surname, forename and dob")
    who = identity.NameAndBirth(rec.surname, rec.forenames, rec.dob)
    matches = near_matches(store, who)
    notes += _not_same_statements(matches, rec.not_same_as, officer)
    # A near match who has had (or is having) their diversion could be this
    # person under another spelling: the officer must say which it is.
    blocking = blocking_matches(matches, rec.not_same_as)
    if blocking and not rec.new_person:
        raise Refused(f"possible same person already diverted or referred: {matches_line(blocking)}. Use "
                      f"--person ID if it is them, or --not-same-as ID (or --new-person) if it is not")
    new_id = store.insert_person(
        surname=rec.surname, forenames=rec.forenames, dob=rec.dob.isoformat(), pnc=rec.pnc, gender=rec.gender,
        ethnicity=rec.ethnicity, surname_norm=who.surname_norm, forenames_norm=who.forenames_norm, at=now,
        officer=officer)
    return store.person(new_id), True, matches, notes


DUPLICATE_WINDOW = timedelta(minutes=30)  # the same person and substance this close: the same arrest


def likely_duplicate(store: Store, person_id: int, when: datetime, substances: set[str],
                     amending: int | None = None) -> dict | None:
    """An incident already recorded for this person within 30 minutes with a substance in
    common (other than the one `amending`)."""
    for row in store.incidents_between(person_id, when - DUPLICATE_WINDOW, when + DUPLICATE_WINDOW):
        if row["id"] != amending and substances & {s["substance"] for s in row["substances"]}:
            return row
    return None


def refuse_duplicate(store: Store, person_id: int, when: datetime, substances: set[str], not_duplicate: bool,
                     officer: str, amending: int | None = None) -> list[dict]:
    """Refuse the same arrest twice, unless the officer states it is a different incident:
    that statement is returned, to keep with the decision."""
    found = likely_duplicate(store, person_id, when, substances, amending)
    if found is None:
        return []
    said = (f"{values.format_incident_id(found['id'])} "
            f"({values.moment_in_words(datetime.fromisoformat(found['occurred_at']))}, "
            f"{', '.join(s['substance'] for s in found['substances'])}, recorded by {found['recorded_by']})")
    if not not_duplicate:
        raise Refused(f"likely the same arrest as {said}: nothing was written. If this is a different incident, "
                      f"{'amend' if amending else 'record'} it with --not-duplicate")
    return [{"code": "NOT_DUPLICATE", "scheme": None,
             "message": f"Officer {officer} stated this is a different incident from {said}."}]


def _refuse_blocking_for_referral(matches: list[dict], not_same_as: set[int]) -> None:
    blocking = blocking_matches(matches, not_same_as)
    if blocking:
        raise Refused(f"possible same person already diverted or referred: {matches_line(blocking)}. No "
                      f"referral was made and nothing was written. If they are not the same person, say so with "
                      f"--not-same-as ID for each")


def _supervisor_approval(supervisor: str, scheme: str | None) -> dict:
    """The supervisor's approval, kept with the decision it let through (and in the audit trail)."""
    return {"code": "SUPERVISOR_APPROVED", "scheme": scheme,
            "message": f"Co-offence approved for diversion by supervisor {supervisor}."}


def record_incident(ws: Workspace, req: RecordRequest) -> dict:
    """Record a possession incident, decide eligibility, and (with refer) offer the diversion."""
    config, now = ws.config, ws.clock()
    officer = ws.officer()
    rec = validate_record(config, req, now)
    if rec.supervisor:
        refuse_self_approval(rec.supervisor, officer)
    store = ws.writer()
    with store.transaction("record" + (" and refer" if rec.refer else ""), officer):
        now = ws.clock()  # (see refer)
        person, created, matches, notes = _resolve_person(store, rec, now, officer)
        if not created:
            notes += refuse_duplicate(store, person["id"], rec.when, {key for key, _, _ in rec.substances},
                                      rec.not_duplicate, officer)
        dob = date.fromisoformat(person["dob"])
        age = values.check_age(dob, rec.when)
        case = rules.CaseFacts(rec.when, age, tuple(c for _, c, _ in rec.substances), rec.supply_suspected,
                               tuple(rec.co_offences))
        history = prior_referrals(store.referrals_of(person["id"]))
        verdict = rules.decide(list(config.schemes.values()), history, now, case=case,
                               requested=rec.scheme, supervisor_approved=bool(rec.supervisor))
        refer_now = rec.refer and verdict.eligible
        if refer_now:
            _refuse_blocking_for_referral(matches, rec.not_same_as)
        if rec.supervisor:
            notes.append(_supervisor_approval(rec.supervisor, verdict.scheme))
        reasons = verdict.reasons_as_dicts() + notes
        if notes:  # what the officer stated, in the trail with the changes it let through
            store.note(" ".join(n["message"] for n in notes))
        incident_id = store.insert_incident(
            person_id=person["id"], occurred_at=rec.when, age=age, location=rec.location, quantity=rec.quantity,
            supply_suspected=rec.supply_suspected, substances=rec.substances, co_offences=rec.co_offences,
            at=now, officer=officer)
        store.insert_decision(person_id=person["id"], incident_id=incident_id, stage="record",
                              eligible=verdict.eligible, scheme=verdict.scheme, reasons=reasons,
                              fingerprint=config.fingerprint, at=now, officer=officer)
        referral = None
        if refer_now:
            referral = _offer(store, config, config.scheme(verdict.scheme), person["id"], incident_id,
                              rec.appointment, now, officer)
    return {
        "incident_id": values.format_incident_id(incident_id),
        "person_id": values.format_person_id(person["id"]),
        "person": person_view(person),
        "occurred_at": rec.when.isoformat(timespec="seconds"),
        "new_person": created,
        "eligible": verdict.eligible,
        "scheme": verdict.scheme,
        "reasons": reasons,
        "possible_matches": matches,
        "warnings": name_warnings(person),
        "referral_id": referral["id"] if referral else None,
        "referral": referral,
    }


# What officers stated, kept with a decision: they still stand when it is taken again.
STATEMENTS = ("NOT_SAME_PERSON", "IDENTITY_CONFIRMED", "NOT_DUPLICATE", "SUPERVISOR_APPROVED")


def _standing_statements(store: Store, incident_id: int, co_offences_changed: bool) -> list[dict]:
    """The statements kept with the incident's current decisions: the latest taken at record
    (which carries those before it) and any taken at refer since. A supervisor's approval was
    of the other offences as they were, so it lapses when they change."""
    import json

    decisions = store.decisions_of_incident(incident_id)
    latest = max((i for i, d in enumerate(decisions) if d["stage"] == "record"), default=0)
    kept = []
    for decision in decisions[latest:]:
        for reason in json.loads(decision["reasons"]):
            if reason["code"] in STATEMENTS and reason not in kept and not (
                    co_offences_changed and reason["code"] == "SUPERVISOR_APPROVED"):
                kept.append(reason)
    return kept


def decide_again(store: Store, config: Config, incident_id: int, now: datetime, officer: str,
                 supervisor: str | None, why: str, stated: list[dict] = (), co_offences_changed: bool = False) -> dict:
    """After an incident's facts were corrected (inside the amending transaction): the
    decision the desk would have taken on the corrected facts, as of when the incident was
    recorded and leaving out its own referrals, stored beside the earlier decisions (which
    are never changed), with the statements officers made for them and any new ones; the
    latest decision of an incident is its current one."""
    row = store.incident(incident_id)
    previous = row["decision"]
    standing = [s for s in _standing_statements(store, incident_id, co_offences_changed)
                if not (supervisor and s["code"] == "SUPERVISOR_APPROVED")]  # a new approval replaces it
    approved = supervisor is not None or any(s["code"] == "SUPERVISOR_APPROVED" for s in standing)
    case = rules.CaseFacts(datetime.fromisoformat(row["occurred_at"]), row["age"],
                           tuple(s["drug_class"] for s in row["substances"]), bool(row["supply_suspected"]),
                           tuple(row["co_offences"]))
    history = prior_referrals([r for r in store.referrals_of(row["person_id"]) if r["incident_id"] != incident_id])
    as_recorded = datetime.fromisoformat(row["recorded_at"])
    verdict = rules.decide(list(config.schemes.values()), history, as_recorded, case=case,
                           supervisor_approved=approved)
    reasons = verdict.reasons_as_dicts() + standing + [s for s in stated if s not in standing]
    if supervisor:
        reasons.append(_supervisor_approval(supervisor, verdict.scheme))
    reasons.append({"code": "DECIDED_AGAIN", "scheme": None,
                    "message": f"Decided again on the facts as amended by officer {officer} ({why}), as of "
                               f"{values.moment_in_words(as_recorded)} when the incident was recorded."})
    store.insert_decision(person_id=row["person_id"], incident_id=incident_id, stage="record",
                          eligible=verdict.eligible, scheme=verdict.scheme, reasons=reasons,
                          fingerprint=config.fingerprint, at=now, officer=officer)
    live = store.live_referral_for_incident(incident_id)
    return {"eligible": verdict.eligible, "scheme": verdict.scheme, "reasons": reasons,
            "was_eligible": None if previous is None else bool(previous["eligible"]),
            "referral": referral_view(live) if live else None}


# ---- check ------------------------------------------------------------------

def check_person(ws: Workspace, ident: str | None = None, *, surname: str | None = None,
                 forename: str | None = None, dob: str | None = None) -> dict:
    """Has this person had their one shot? By person id, PNC ID, or name and date of birth."""
    now = ws.clock()
    if ident:
        key_pnc = values.parse_pnc(ident) if values.looks_like_pnc(ident) else None
        key_id = None if key_pnc else values.parse_person_id(ident)
        store = ws.reader()
        row = store.person_by_pnc(key_pnc) if key_pnc else store.person(key_id)
        if row is None:
            raise NotFound(f"no person with PNC ID {key_pnc}" if key_pnc
                           else f"no person {values.format_person_id(key_id)}")
        return _person_report(ws, store, row, now)
    if not (surname and forename and dob):
        raise BadInput("check", "give a person id or PNC ID, or all of --surname, --forename and --dob")
    who = identity.NameAndBirth(values.clean_name(surname, "surname"), values.clean_name(forename, "forename"),
                                values.parse_date(dob, "dob"))
    values.check_age(who.dob, now, at="today")  # record's rule: nobody under 10 is "eligible"
    store = ws.reader()
    exact = store.people_named(who.surname_norm, who.forenames_norm, who.dob.isoformat())
    if exact:  # any other record under the same name and birth date is among its possible matches
        return _person_report(ws, store, exact[0], now)
    return {
        "person": None, "eligible": True,
        "reasons": [{"code": "NO_RECORD", "scheme": None,
                     "message": f"No record found for {who.surname}, {who.forenames}, born "
                                f"{values.date_in_words(who.dob)}: no earlier diversion on file."}],
        "incidents": [], "referrals": [], "possible_matches": near_matches(store, who),
    }


CANDIDATES_SHOWN = 50


def find_candidates(ws: Workspace, surname: str | None, forename: str | None = None,
                    dob: str | None = None) -> dict:
    """Who is on record under a surname (and, if given, forenames starting so, or a date of
    birth): for the desk when only part of the name is known."""
    if not surname:
        raise BadInput("surname", "is needed to search by name (or give a person id or PNC ID)")
    surname = values.clean_name(surname, "surname")
    start = identity.normalise(values.clean_name(forename, "forename")) if forename else ""
    born = values.parse_date(dob, "dob") if dob else None
    rows = ws.reader().people_by_surname(identity.normalise(surname), start,
                                         born.isoformat() if born else None, CANDIDATES_SHOWN + 1)
    candidates = [{**person_view(r), "last_incident": None if r["last_incident"] is None else
                   {"id": values.format_incident_id(r["last_incident"]), "occurred_at": r["last_incident_at"]}}
                  for r in rows[:CANDIDATES_SHOWN]]
    return {"candidates": candidates, "more": len(rows) > CANDIDATES_SHOWN}


def _person_report(ws: Workspace, store: Store, row: dict, now: datetime) -> dict:
    referrals = store.referrals_of(row["id"])
    dob = date.fromisoformat(row["dob"])
    verdict = rules.decide(list(ws.config.schemes.values()), prior_referrals(referrals), now, dob=dob)
    who = identity.NameAndBirth(row["surname"], row["forenames"], dob)
    return {
        "person": person_view(row), "eligible": verdict.eligible, "scheme": verdict.scheme,
        "reasons": verdict.reasons_as_dicts(),
        "incidents": [incident_view(i) for i in store.incidents_of(row["id"])],
        "referrals": [referral_view(r) for r in referrals],
        "possible_matches": near_matches(store, who, exclude={row["id"]}),
    }


# ---- incidents --------------------------------------------------------------

RECENT = timedelta(days=7)  # what `incidents` shows without --since


def list_incidents(ws: Workspace, since: str | None = None, officer: str | None = None,
                   location: str | None = None) -> list[dict]:
    """Recent incidents, newest first: from `since` (default the last week), one officer's, or at a place."""
    now = ws.clock()
    start = values.parse_datetime(since, "since", current=now) if since else now - RECENT
    who = values.parse_officer(officer) if officer is not None else None
    place = values.clean_text(location, "location", required=True) if location is not None else None
    rows = ws.reader().incidents_since(start, who, place)
    return [{**incident_view(r), "person_id": values.format_person_id(r["person_id"]),
             "name": f"{r['surname']}, {r['forenames']}", "voided": r["voided_at"] is not None,
             "referral_id": r["referral_id"], "referral_status": r["referral_status"]} for r in rows]


def incident_details(ws: Workspace, incident: str) -> dict:
    """One incident with its person, every decision taken on it (the latest is the current
    one) and its referrals."""
    import json

    incident_id = values.parse_incident_id(incident)
    store = ws.reader()
    row = store.incident(incident_id)
    if row is None:
        raise NotFound(f"no incident {values.format_incident_id(incident_id)}")
    view = incident_view(row)
    view["voided_at"], view["void_reason"] = row["voided_at"], row["void_reason"]
    view["person"] = person_view(store.person(row["person_id"]))
    view["decisions"] = [{"taken_at": d["taken_at"], "taken_by": d["taken_by"], "stage": d["stage"],
                          "eligible": bool(d["eligible"]), "scheme": d["scheme"],
                          "reasons": json.loads(d["reasons"])} for d in store.decisions_of_incident(incident_id)]
    view["referrals"] = [referral_view(r) for r in store.referrals_of_incident(incident_id)]
    return view


# ---- referrals ------------------------------------------------------------

def _add_months(moment: datetime, months: int) -> datetime:
    from dateutil.relativedelta import relativedelta

    return moment + relativedelta(months=months)


def _end_of_day(moment: datetime) -> datetime:
    return moment.replace(hour=23, minute=59, second=59)


def offer_deadline(scheme: Scheme, now: datetime) -> datetime:
    """When a diversion offered now must be completed by: the contract's end, or the workshop deadline."""
    if scheme.pathway == "contract":
        return _end_of_day(_add_months(now, scheme.contract_months))
    return _end_of_day(now + timedelta(days=scheme.deadline_days))


def offer_terms(ws: Workspace, scheme_key: str) -> dict:
    """What an offer made now would be (for the desk's question before referring)."""
    scheme = ws.config.scheme(scheme_key)
    return {"scheme": scheme.key, "scheme_name": scheme.name, "provider": scheme.provider,
            "deadline": offer_deadline(scheme, ws.clock()).date().isoformat()}


def _offer(store: Store, config: Config, scheme: Scheme, person_id: int, incident_id: int,
           appointment: datetime | None, now: datetime, officer: str) -> dict:
    """Write the referral. The caller has re-checked eligibility in this transaction."""
    deadline = offer_deadline(scheme, now)
    conditions = [(c.key, c.text, _end_of_day(now + timedelta(days=c.due_days)) if c.due_days else deadline)
                  for c in scheme.conditions] if scheme.pathway == "contract" else []
    if appointment is not None and not now - timedelta(days=1) <= appointment <= deadline:
        raise BadInput("appointment", f"{appointment:%Y-%m-%d %H:%M} must fall between now and the deadline "
                                      f"({deadline:%Y-%m-%d})")
    referral_id = store.next_referral_id(now.year)
    store.insert_referral(referral_id=referral_id, person_id=person_id, incident_id=incident_id, scheme=scheme.key,
                          pathway=scheme.pathway, one_shot_group=scheme.one_shot_group,
                          lookback_since=rules.lookback_since(scheme, now), provider=scheme.provider,
                          appointment=appointment, deadline=deadline, at=now, officer=officer,
                          conditions=conditions)
    return {"id": referral_id, "scheme": scheme.key, "scheme_name": scheme.name, "provider": scheme.provider,
            "contact": scheme.contact, "appointment": appointment.isoformat(timespec="minutes") if appointment
            else None, "deadline": deadline.date().isoformat(), "requirements": list(scheme.requirements),
            "conditions": [{"key": k, "text": t, "due": d.date().isoformat()} for k, t, d in conditions]}


def refer(ws: Workspace, incident: str, scheme: str | None = None, appointment: str | None = None,
          supervisor: str | None = None, not_same_as: list[str] = ()) -> dict:
    """Offer the diversion for a recorded incident, re-checking eligibility as the referral is written."""
    config, now = ws.config, ws.clock()
    officer = ws.officer()
    incident_id = values.parse_incident_id(incident)
    if scheme:
        config.scheme(scheme)
    when = values.parse_datetime(appointment, "appointment", allow_future=True) if appointment else None
    approved_by = values.parse_officer(supervisor) if supervisor else None
    if approved_by:
        refuse_self_approval(approved_by, officer)
    others = {values.parse_person_id(p) for p in not_same_as}
    store = ws.writer()
    with store.transaction("refer", officer):
        # decided as of the moment this desk holds the write lock: a referral another desk wrote
        # while this one waited is then in the past, and counts (rules ignore later ones)
        now = ws.clock()
        row = store.incident(incident_id)
        if row is None:
            raise NotFound(f"no incident {values.format_incident_id(incident_id)}")
        if row["voided_at"]:  # recorded in error: nothing to divert
            raise Refused(f"{values.format_incident_id(incident_id)} is void")
        store.refuse_unaudited(row["person_id"])
        live = store.live_referral_for_incident(incident_id)
        if live:
            raise Refused(f"incident {values.format_incident_id(incident_id)} already has referral {live['id']} "
                          f"({live['status']})")
        case = rules.CaseFacts(datetime.fromisoformat(row["occurred_at"]), row["age"],
                               tuple(s["drug_class"] for s in row["substances"]), bool(row["supply_suspected"]),
                               tuple(row["co_offences"]))
        history = prior_referrals(store.referrals_of(row["person_id"]))
        verdict = rules.decide(list(config.schemes.values()), history, now, case=case, requested=scheme,
                               supervisor_approved=approved_by is not None)
        if not verdict.eligible:
            raise NotEligible(verdict)
        person = store.person(row["person_id"])
        matches = near_matches(store, identity.NameAndBirth(person["surname"], person["forenames"],
                                                            date.fromisoformat(person["dob"])),
                               exclude={person["id"]})
        notes = _not_same_statements(matches, others, officer)
        _refuse_blocking_for_referral(matches, others)
        if approved_by:
            notes.append(_supervisor_approval(approved_by, verdict.scheme))
        reasons = verdict.reasons_as_dicts() + notes
        if notes:
            store.note(" ".join(n["message"] for n in notes))
        store.insert_decision(person_id=row["person_id"], incident_id=incident_id, stage="refer", eligible=True,
                              scheme=verdict.scheme, reasons=reasons, fingerprint=config.fingerprint, at=now,
                              officer=officer)
        offered = _offer(store, config, config.scheme(verdict.scheme), row["person_id"], incident_id, when, now,
                         officer)
    offered["person_id"] = values.format_person_id(row["person_id"])
    offered["incident_id"] = values.format_incident_id(incident_id)
    offered["reasons"] = reasons
    return offered


class NotEligible(Refused):
    """Refused because the rules say no; carries the verdict so every reason can be shown."""

    def __init__(self, verdict: rules.Verdict):
        super().__init__("not eligible: " + " ".join(r.message for r in verdict.reasons))
        self.verdict = verdict


def _referral_or_404(store: Store, referral_id: str) -> dict:
    row = store.referral(referral_id)
    if row is None:
        raise NotFound(f"no referral {referral_id}")
    return row


def record_outcome(ws: Workspace, referral: str, status: str, when: str | None = None,
                   reason: str | None = None, supervisor: str | None = None) -> dict:
    """Move a referral on: accepted, declined, completed, failed or voided; or, with
    a supervisor, correct a wrongly closed one."""
    config, now = ws.config, ws.clock()
    officer = ws.officer()
    referral_id = values.parse_referral_id(referral)
    status = (status or "").strip().lower()
    if status not in STATUSES or status == "offered":
        raise BadInput("status", f"{status!r} is not one of accepted, declined, completed, failed, voided")
    at = values.parse_datetime(when, "when") if when else now
    reason = values.clean_text(reason, "reason")
    approved_by = values.parse_officer(supervisor) if supervisor else None
    if status == "voided" and not reason:
        raise BadInput("reason", "is required to void a referral (say why it was wrong)")
    store = ws.writer()
    _referral_or_404(store, referral_id)
    with store.transaction(f"outcome {status}", officer, reason):
        row = _referral_or_404(store, referral_id)
        if row["status"] in CORRECTIONS and status != row["status"]:
            return _correct_outcome(store, config, row, status, at if when else None, reason, approved_by,
                                    ws.signed_in_as("supervisor"), officer, now)
        if approved_by:
            raise BadInput("supervisor", "is for correcting a closed referral; this change needs none")
        allowed = TRANSITIONS.get(row["status"], ())
        if status not in allowed:
            options = ", ".join(allowed) if allowed else "nothing (it is closed)"
            raise Refused(f"{referral_id} is {row['status']}: it can go to {options}, not {status}")
        if at < datetime.fromisoformat(row["offered_at"]):
            raise BadInput("when", f"{at:%Y-%m-%d %H:%M} is before the offer ({row['offered_at'][:16]})")
        if row["diverted_at"] and status in ("completed", "failed") and at < datetime.fromisoformat(
                row["diverted_at"]):
            raise BadInput("when", f"{at:%Y-%m-%d %H:%M} is before acceptance ({row['diverted_at'][:16]})")
        if status == "completed" and row["pathway"] == "contract":
            unmet = [c["key"] for c in store.conditions_of(referral_id) if c["status"] != "met"]
            if unmet:
                raise Refused(f"{referral_id} is a contract: conditions not yet met ({', '.join(unmet)}); "
                              f"record them with `diversion condition`")
        scheme = config.schemes.get(row["scheme"])
        code = None
        if status == "completed":
            code = scheme.completion_outcome if scheme else 22
        elif status == "failed":
            code = scheme.failure_outcome if scheme else 1
        store.set_referral_status(referral_id, status, at=at, officer=officer, reason=reason, outcome_code=code)
        updated = store.referral(referral_id)
    return {"referral": referral_view(updated), "outcome_code": code,
            "outcome_text": config.outcome_codes.get(code) if code else None,
            "returned_to_normal_process": status == "failed"}


def refuse_self_approval(supervisor: str, officer: str, signed_in_supervisor: bool = False) -> None:
    """A supervisor approves another officer's change; on a server, a login holding the supervisor
    role may approve its own (its sign-in proves who it is, which a collar number on a file cannot)."""
    if supervisor == officer and not signed_in_supervisor:
        raise Refused(f"supervisor: {supervisor} is the officer making the change; a supervisor approves "
                      f"another officer's change")


def _correct_outcome(store: Store, config: Config, row: dict, status: str, closed: datetime | None,
                     reason: str | None, approved_by: str | None, signed_in_supervisor: bool, officer: str,
                     now: datetime) -> dict:
    """A supervisor puts right a referral closed in the wrong state. The wrong state
    stays in the audit trail; the one-shot rule and the reports follow the new one."""
    referral_id, was = row["id"], row["status"]
    if status not in CORRECTIONS[was]:
        raise Refused(f"{referral_id} is {was} (closed): it can go to nothing, not {status}; only a supervisor's "
                      f"correction to {' or '.join(CORRECTIONS[was])}")
    if not approved_by or not reason:
        raise Refused(f"{referral_id} is {was} (closed): a wrongly closed referral is corrected by a supervisor "
                      f"to {' or '.join(CORRECTIONS[was])}: add --supervisor COLLAR --reason TEXT")
    refuse_self_approval(approved_by, officer, signed_in_supervisor)
    if closed is not None and row["diverted_at"] and closed < datetime.fromisoformat(row["diverted_at"]):
        raise BadInput("when", f"{closed:%Y-%m-%d %H:%M} is before acceptance ({row['diverted_at'][:16]})")
    scheme = config.schemes.get(row["scheme"])
    code = {"completed": scheme.completion_outcome if scheme else 22,
            "failed": scheme.failure_outcome if scheme else 1}.get(status)
    why = f"corrected from {was} by supervisor {approved_by}: {reason}"
    store.note(why)
    store.correct_referral(referral_id, status, at=now, officer=officer, reason=why, outcome_code=code,
                           closed_at=closed)
    updated = store.referral(referral_id)
    return {"referral": referral_view(updated), "outcome_code": code,
            "outcome_text": config.outcome_codes.get(code) if code else None, "corrected_from": was,
            "returned_to_normal_process": status == "failed"}


def record_condition(ws: Workspace, referral: str, condition: str, result: str, when: str | None = None,
                     note: str | None = None, supervisor: str | None = None, reason: str | None = None) -> dict:
    """Record a contract condition as met or breached. A breach fails the contract;
    the last condition met completes it. A condition that runs to the end of the
    contract is met only from its due date, unless a supervisor approves an early
    completion (with a reason)."""
    config, now = ws.config, ws.clock()
    officer = ws.officer()
    referral_id = values.parse_referral_id(referral)
    result = (result or "").strip().lower()
    if result not in ("met", "breached"):
        raise BadInput("result", f"{result!r} is not met or breached")
    at = values.parse_datetime(when, "when") if when else now
    note = values.clean_text(note, "note")
    approved_by = values.parse_officer(supervisor) if supervisor else None
    reason = values.clean_text(reason, "reason")
    if bool(approved_by) != bool(reason):
        raise BadInput("supervisor" if reason else "reason", "an early completion needs both --supervisor COLLAR "
                                                             "and --reason TEXT")
    store = ws.writer()
    _referral_or_404(store, referral_id)
    with store.transaction(f"condition {result}", officer, note):
        row = _referral_or_404(store, referral_id)
        if row["pathway"] != "contract":
            raise Refused(f"{referral_id} is a {row['pathway']} referral: it has no conditions")
        if row["status"] != "accepted":
            raise Refused(f"{referral_id} is {row['status']}: conditions are recorded only while a contract "
                          f"is accepted and running")
        conditions = store.conditions_of(referral_id)
        target = _pick_condition(conditions, condition, referral_id)
        if target["status"] != "pending":
            raise Refused(f"condition {target['key']} is already recorded as {target['status']}")
        if at < datetime.fromisoformat(row["diverted_at"]):
            raise BadInput("when", f"{at:%Y-%m-%d %H:%M} is before the contract was accepted")
        due = datetime.fromisoformat(target["due"])
        runs_to_end = target["due"] == row["deadline"]
        if approved_by and not (result == "met" and runs_to_end and at.date() < due.date()):
            raise BadInput("supervisor", "is only for marking met, before its due date, a condition that runs "
                                         "to the end of the contract")
        if result == "met" and runs_to_end and at.date() < due.date():
            if not approved_by:
                raise Refused(f"condition {target['key']} runs to the end of the contract: it can be marked met "
                              f"from {values.date_in_words(due.date())}. An early completion needs "
                              f"--supervisor COLLAR --reason TEXT")
            refuse_self_approval(approved_by, officer, ws.signed_in_as("supervisor"))
            early = f"early completion approved by supervisor {approved_by}: {reason}"
            note = f"{early} ({note})" if note else early
            store.note(early)
        store.set_condition(referral_id, target["position"], result, at=at, officer=officer, note=note)
        scheme = config.schemes.get(row["scheme"])
        closed = None
        if result == "breached":
            closed = "failed"
            store.set_referral_status(referral_id, "failed", at=at, officer=officer,
                                      reason=f"condition breached: {target['key']}" + (f" ({note})" if note else ""),
                                      outcome_code=scheme.failure_outcome if scheme else 1)
        elif all(c["status"] == "met" or c["position"] == target["position"] for c in conditions):
            closed = "completed"
            store.set_referral_status(referral_id, "completed", at=at, officer=officer,
                                      reason="all conditions met",
                                      outcome_code=scheme.completion_outcome if scheme else 22)
        updated, conditions = store.referral(referral_id), store.conditions_of(referral_id)
    return {"referral": referral_view(updated), "closed_as": closed,
            "conditions": [{"key": c["key"], "text": c["description"], "due": c["due"][:10], "status": c["status"]}
                           for c in conditions]}


def _pick_condition(conditions: list[dict], wanted: str, referral_id: str) -> dict:
    wanted = (wanted or "").strip().lower()
    for c in conditions:
        if c["key"] == wanted or wanted == str(c["position"] + 1):
            return c
    listed = ", ".join(f"{c['position'] + 1}={c['key']}" for c in conditions)
    raise BadInput("condition", f"{wanted!r} is not a condition of {referral_id} ({listed})")


def referral_details(ws: Workspace, referral: str) -> dict:
    referral_id = values.parse_referral_id(referral)
    store = ws.reader()
    row = _referral_or_404(store, referral_id)
    view = referral_view(row)
    view["person"] = person_view(store.person(row["person_id"]))
    view["conditions"] = [{"key": c["key"], "text": c["description"], "due": c["due"][:10],
                           "status": c["status"], "note": c["note"]} for c in store.conditions_of(referral_id)]
    return view


def work_queue(ws: Workspace, status: str | None = None, overdue: bool = False,
               due_within: int | None = None) -> list[dict]:
    """The coordinator's queue: open referrals, most urgent first."""
    now = ws.clock()
    if status is not None and status not in STATUSES:
        raise BadInput("status", f"{status!r} is not one of {', '.join(STATUSES)}")
    if due_within is not None and not 0 <= due_within <= 3660:
        raise BadInput("due-within", "must be 0 to 3660 days")
    statuses = (status,) if status else rules.OPEN
    due_before = None
    if overdue:
        due_before = now.isoformat(timespec="seconds")
    elif due_within is not None:
        due_before = _end_of_day(now + timedelta(days=due_within)).isoformat(timespec="seconds")
    store = ws.reader()
    rows = store.referral_queue(statuses, due_before)
    today = now.date()
    queue = []
    for r in rows:
        view = referral_view(r)
        view["person_id"] = values.format_person_id(r["person_id"])
        view["name"] = f"{r['surname']}, {r['forenames']}"
        days = (date.fromisoformat(r["deadline"][:10]) - today).days
        view["days_left"] = days
        view["overdue"] = r["status"] in rules.OPEN and r["deadline"] < now.isoformat(timespec="seconds")
        queue.append(view)
    return queue
