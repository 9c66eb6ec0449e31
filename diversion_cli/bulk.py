"""Bulk import of historical incidents and referrals (CSV or JSON).

One row is one incident, optionally with the referral it led to. Columns:

  surname, forenames, dob, pnc, gender, ethnicity      the person
  occurred_at, substances, quantity, location,          the incident;
  co_offences, supply_suspected, recorded_by            lists are ';'-separated
  scheme, referral_status, offered_at, accepted_at,     the referral, if any
  closed_at, outcome_reason

Every row is checked by the same rules as `diversion record` (dates, ages,
PNC check letter, substances) and the one-shot constraints in the database.
The whole file is written in one transaction, or nothing is: a bad row is
reported by line number and field, and the import is rolled back.
"""

from __future__ import annotations

import csv
import json
import sqlite3
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from diversion_cli import identity, rules, values
from diversion_cli.errors import BadInput, DiversionError
from diversion_cli.store import refusal_for
from diversion_cli.operations import RecordRequest, Workspace, _add_months, _end_of_day, validate_record

COLUMNS = ("surname", "forenames", "dob", "pnc", "gender", "ethnicity", "occurred_at", "substances", "quantity",
           "location", "co_offences", "supply_suspected", "recorded_by", "scheme", "referral_status",
           "offered_at", "accepted_at", "closed_at", "outcome_reason")
REQUIRED = ("occurred_at", "substances")
REFERRAL_STATUSES = ("offered", "accepted", "declined", "completed", "failed", "voided")
TRUE, FALSE = ("1", "true", "yes", "y"), ("", "0", "false", "no", "n")
MAX_ERRORS_SHOWN = 20


class ImportFailed(BadInput):
    """Some rows were bad: nothing was written. Carries every problem found."""

    def __init__(self, problems: list[str], rows: int):
        shown = problems[:MAX_ERRORS_SHOWN]
        more = f"\n  … and {len(problems) - len(shown)} more" if len(problems) > len(shown) else ""
        super().__init__("", f"{len(problems)} bad row(s) of {rows}; nothing was imported:\n  "
                             + "\n  ".join(shown) + more)
        self.problems = problems


def read_rows(path: Path):
    """(line number, row dict) pairs, streamed for CSV. JSON is a list of objects."""
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise BadInput("file", f"cannot read {path}: {exc.strerror}") from None
    with handle:
        if path.suffix.lower() == ".json":
            try:
                data = json.load(handle)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise BadInput("file", f"{path} is not valid JSON ({exc})") from None
            if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
                raise BadInput("file", f"{path}: expected a JSON list of objects, one per incident")
            _check_columns(set().union(*data) if data else set(), path)
            for n, row in enumerate(data, 1):
                yield n, {k: "" if v is None else str(v) for k, v in row.items()}
            return
        reader = csv.DictReader(handle)
        try:
            _check_columns(set(reader.fieldnames or ()), path)
            for row in reader:
                if None in row:
                    raise BadInput("file", f"{path}:{reader.line_num}: more values than columns")
                yield reader.line_num, row
        except UnicodeDecodeError:
            raise BadInput("file", f"{path} is not UTF-8 text") from None
        except csv.Error as exc:
            raise BadInput("file", f"{path}:{reader.line_num}: {exc}") from None


def _check_columns(found: set[str], path: Path) -> None:
    unknown = sorted(found - set(COLUMNS))
    if unknown:
        raise BadInput("file", f"{path}: unknown column(s) {', '.join(unknown)}; known: {', '.join(COLUMNS)}")
    missing = [c for c in REQUIRED if c not in found]
    if missing:
        raise BadInput("file", f"{path}: missing column(s) {', '.join(missing)}")


def _split(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(";") if part.strip()]


def _flag(text: str | None, field: str) -> bool:
    value = (text or "").strip().lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise BadInput(field, f"{text!r} is not yes or no")


@dataclass
class ImportSummary:
    rows: int = 0
    people_created: int = 0
    incidents: int = 0
    referrals: int = 0
    dry_run: bool = False


def import_file(ws: Workspace, path: Path, dry_run: bool = False, progress=None) -> ImportSummary:
    """Validate every row and write them all in one transaction (or none)."""
    config = ws.config
    officer = ws.officer()
    now = ws.clock()
    store = ws.writer()
    summary = ImportSummary(dry_run=dry_run)
    problems: list[str] = []
    people: dict[tuple, int] = {}        # identity key -> person id, for people met in this file
    next_ref: dict[int, int] = {}
    schemes = list(config.schemes.values())
    with store.transaction():
        for line, row in read_rows(path):
            summary.rows += 1
            if progress:
                progress(summary.rows)
            try:
                _import_row(store, config, schemes, row, officer, now, people, next_ref, summary)
            except DiversionError as exc:
                problems.append(f"line {line}: {exc.message}")
        if problems:
            raise ImportFailed(problems, summary.rows)
        if dry_run:
            raise _DryRunDone(summary)
    return summary


class _DryRunDone(Exception):
    """Raised to roll the transaction back after a clean dry run."""

    def __init__(self, summary: ImportSummary):
        self.summary = summary


def dry_run(ws: Workspace, path: Path, progress=None) -> ImportSummary:
    try:
        import_file(ws, path, dry_run=True, progress=progress)
    except _DryRunDone as done:
        return done.summary
    raise AssertionError("unreachable")


def _import_row(store, config, schemes, row: dict, officer: str, now: datetime, people: dict, next_ref: dict,
                summary: ImportSummary) -> None:
    req = RecordRequest(surname=row.get("surname"), forename=row.get("forenames"), dob=row.get("dob") or None,
                        pnc=row.get("pnc") or None, gender=row.get("gender"), ethnicity=row.get("ethnicity"),
                        when=row.get("occurred_at") or "", substances=_split(row.get("substances")),
                        quantity=row.get("quantity"), location=row.get("location"),
                        co_offences=_split(row.get("co_offences")))
    if not req.when:
        raise BadInput("occurred_at", "is empty")
    rec = validate_record(config, req, now)
    rec.supply_suspected = _flag(row.get("supply_suspected"), "supply_suspected")
    recorder = values.parse_officer(row["recorded_by"]) if row.get("recorded_by") else officer
    if rec.surname is None:
        raise BadInput("surname", "is required in an import")
    person_id = _person(store, rec, recorder, people, summary)
    age = values.check_age(rec.dob, rec.when)
    case = rules.CaseFacts(rec.when, age, tuple(c for _, c, _ in rec.substances), rec.supply_suspected,
                           tuple(rec.co_offences))
    history = _history(store, person_id)
    verdict = rules.decide(schemes, history, rec.when, case=case)
    incident_id = store.insert_incident(
        person_id=person_id, occurred_at=rec.when, age=age, location=rec.location, quantity=rec.quantity,
        supply_suspected=rec.supply_suspected, substances=rec.substances, co_offences=rec.co_offences,
        at=rec.when, officer=recorder)
    store.insert_decision(person_id=person_id, incident_id=incident_id, stage="record", eligible=verdict.eligible,
                          scheme=verdict.scheme, reasons=verdict.reasons_as_dicts(),
                          fingerprint=config.fingerprint, at=rec.when, officer=recorder)
    summary.incidents += 1
    if (row.get("scheme") or "").strip():
        _referral(store, config, row, rec.when, person_id, incident_id, recorder, now, next_ref)
        summary.referrals += 1


def _person(store, rec, recorder: str, people: dict, summary: ImportSummary) -> int:
    surname_norm, forenames_norm = identity.normalise(rec.surname), identity.normalise(rec.forenames)
    keys = [("pnc", rec.pnc)] if rec.pnc else []
    keys.append(("name", surname_norm, forenames_norm, rec.dob.isoformat()))
    for key in keys:
        if key in people:
            return people[key]
    found = store.person_by_pnc(rec.pnc) if rec.pnc else None
    if found is None:
        same = [p for p in store.people_named(surname_norm, forenames_norm, rec.dob.isoformat())
                if p["pnc"] is None or rec.pnc is None or p["pnc"] == rec.pnc]
        found = same[0] if same else None
    if found is not None:
        person_id = found["id"]
        store.fill_person_gaps(person_id, rec.pnc, rec.gender, rec.ethnicity)
    else:
        person_id = store.insert_person(
            surname=rec.surname, forenames=rec.forenames, dob=rec.dob.isoformat(), pnc=rec.pnc, gender=rec.gender,
            ethnicity=rec.ethnicity, surname_norm=surname_norm, forenames_norm=forenames_norm,
            surname_sound=identity.sound_key(surname_norm),
            forename_sound=identity.sound_key(identity.first_forename(forenames_norm)), at=rec.when,
            officer=recorder)
        summary.people_created += 1
    for key in keys:
        people[key] = person_id
    return person_id


def _history(store, person_id: int) -> list[rules.PriorReferral]:
    return [rules.PriorReferral(r["id"], r["scheme"], r["one_shot_group"], r["status"], r["offered_at"],
                                r["diverted_at"]) for r in store.referrals_of(person_id)]


def _moment(row: dict, field: str, required: bool = False) -> datetime | None:
    text = (row.get(field) or "").strip()
    if not text:
        if required:
            raise BadInput(field, "is required for a referral")
        return None
    return values.parse_datetime(text, field)


def _referral(store, config, row: dict, occurred: datetime, person_id: int, incident_id: int, recorder: str,
              now: datetime, next_ref: dict) -> None:
    scheme = config.scheme(row["scheme"].strip())
    status = (row.get("referral_status") or "offered").strip().lower()
    if status not in REFERRAL_STATUSES:
        raise BadInput("referral_status", f"{status!r} is not one of {', '.join(REFERRAL_STATUSES)}")
    offered = _moment(row, "offered_at", required=True)
    accepted = _moment(row, "accepted_at", required=status in ("accepted", "completed", "failed"))
    closed = _moment(row, "closed_at", required=status in ("declined", "completed", "failed", "voided"))
    if offered < occurred:
        raise BadInput("offered_at", "is before the incident")
    if accepted and accepted < offered:
        raise BadInput("accepted_at", "is before the offer")
    if closed and closed < (accepted or offered):
        raise BadInput("closed_at", "is before the offer or acceptance")
    if scheme.pathway == "contract":
        deadline = _end_of_day(_add_months(offered, scheme.contract_months))
        conditions = [(c.key, c.text, _end_of_day(offered + timedelta(days=c.due_days)) if c.due_days else deadline)
                      for c in scheme.conditions]
    else:
        deadline, conditions = _end_of_day(offered + timedelta(days=scheme.deadline_days)), []
    year = offered.year
    if year not in next_ref:
        next_ref[year] = int(store.next_referral_id(year).rsplit("-", 1)[1])
    referral_id = f"R-{year}-{next_ref[year]:06d}"
    next_ref[year] += 1
    reason = values.clean_text(row.get("outcome_reason"), "outcome_reason")
    try:
        store.insert_referral(referral_id=referral_id, person_id=person_id, incident_id=incident_id,
                              scheme=scheme.key, pathway=scheme.pathway, one_shot_group=scheme.one_shot_group,
                              lookback_since=rules.lookback_since(scheme, offered), provider=scheme.provider,
                              appointment=None, deadline=deadline, at=offered, officer=recorder,
                              conditions=conditions)
        steps = {"offered": [], "accepted": [("accepted", accepted)], "declined": [("declined", closed)],
                 "voided": [("voided", closed)], "completed": [("accepted", accepted), ("completed", closed)],
                 "failed": [("accepted", accepted), ("failed", closed)]}[status]
        for step, at in steps:
            code = scheme.completion_outcome if step == "completed" else scheme.failure_outcome \
                if step == "failed" else None
            store.set_referral_status(referral_id, step, at=at, officer=recorder, outcome_code=code,
                                      reason=reason if step in ("declined", "failed", "voided") else None)
        if status == "completed" and conditions:
            for position in range(len(conditions)):
                store.set_condition(referral_id, position, "met", at=closed, officer=recorder, note=None)
    except sqlite3.IntegrityError as exc:  # the database's one-shot constraints, against this row
        raise BadInput("scheme", refusal_for(exc).message) from None
