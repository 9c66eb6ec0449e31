"""Bulk import of historical incidents and referrals (CSV or JSON).

One row is one incident, optionally with the referral it led to. Columns:

  surname, forenames, dob, pnc, gender, ethnicity      the person
  occurred_at, substances, quantity, location,          the incident;
  co_offences, supply_suspected, recorded_by            lists are ';'-separated
  scheme, referral_status, offered_at, accepted_at,     the referral, if any (checked
  closed_at, outcome_reason, approved_by                against the scheme's rules as of the
                                                        offer; approved_by: a supervisor's
                                                        collar number for a co-offence)

Every row is checked by the same rules as `diversion record` (dates, ages,
PNC check letter, substances) and the one-shot constraints in the database.
The whole file is written in one transaction, or nothing is: a bad row is
reported by line number and field, and the import is rolled back.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from diversion_cli import identity, operations, rules, values
from diversion_cli.errors import BadInput, DiversionError, Refused
from diversion_cli.operations import (RecordRequest, Workspace, _add_months, _end_of_day, prior_referrals,
                                      validate_record)

COLUMNS = ("surname", "forenames", "dob", "pnc", "gender", "ethnicity", "occurred_at", "substances", "quantity",
           "location", "co_offences", "supply_suspected", "recorded_by", "scheme", "referral_status",
           "offered_at", "accepted_at", "closed_at", "outcome_reason", "approved_by", "not_same_as", "not_duplicate")
REQUIRED = ("occurred_at", "substances")
REFERRAL_STATUSES = ("offered", "accepted", "declined", "completed", "failed", "voided")
TRUE, FALSE = ("1", "true", "yes", "y"), ("", "0", "false", "no", "n")
MAX_ERRORS_SHOWN = 20
MAX_PROBLEMS = 1000  # past this the file is not worth reading on
FILE_FIELDS = {"when": "occurred_at", "forename": "forenames", "substance": "substances",
               "co-offence": "co_offences"}


class ImportFailed(BadInput):
    """Some rows were bad: nothing was written. Carries every problem found."""

    def __init__(self, problems: list[str], rows: int):
        shown = problems[:MAX_ERRORS_SHOWN]
        more = f"\n  … and {len(problems) - len(shown)} more" if len(problems) > len(shown) else ""
        super().__init__("", f"{len(problems)} bad row(s) of {rows}; nothing was imported:\n  "
                             + "\n  ".join(shown) + more)
        self.problems = problems


def read_rows(path: Path):
    """(line number, row dict) pairs, streamed: memory holds one row, never the file.
    CSV, or JSON (a .json file) holding a list of objects."""
    import stat

    try:
        if not stat.S_ISREG(path.stat().st_mode):  # before opening: a pipe would block, a device never end
            raise BadInput("file", f"{path} is not a regular file (a device, pipe or directory)")
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise BadInput("file", f"cannot read {path}: {exc.strerror}") from None
    with handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):  # swapped for something else meanwhile
            raise BadInput("file", f"{path} is not a regular file (a device, pipe or directory)")
        if path.suffix.lower() == ".json":
            yield from _json_rows(handle, path)
        else:
            yield from _csv_rows(handle, path)


MAX_ROW_CHARS = 1_000_000  # one row of a spreadsheet, generously (a real one is well under 2,000)


class _BoundedLines:
    """The lines of a text file for csv.reader, refusing a row (however many lines it spans)
    longer than MAX_ROW_CHARS before reading the rest of it: a single 100 MB line, or a device,
    cannot take the memory. `used` is reset by the reader's consumer after each row."""

    def __init__(self, handle, path: Path):
        self.handle, self.path, self.used = handle, path, 0
        self.line = 1

    def __iter__(self):
        return self

    def __next__(self) -> str:
        line = self.handle.readline(MAX_ROW_CHARS + 1 - self.used)
        if not line:
            raise StopIteration
        self.used += len(line)
        if self.used > MAX_ROW_CHARS:
            raise BadInput("file", f"{self.path}: the row starting at line {self.line} is longer than "
                                   f"{MAX_ROW_CHARS:,} characters; not a spreadsheet row")
        return line


def _csv_rows(handle, path: Path):
    lines = _BoundedLines(handle, path)
    reader = csv.reader(lines)
    try:
        header = next(reader, None) or []
        duplicated = sorted({c for c in header if header.count(c) > 1})
        if duplicated:  # a dict would keep only the last value: refuse rather than guess
            raise BadInput("file", f"{path}: column(s) {', '.join(repr(c) for c in duplicated)} appear more "
                                   f"than once in the header; name each column once")
        _check_columns(set(header), path)
        while True:
            lines.used, lines.line = 0, reader.line_num + 1
            values = next(reader, None)
            if values is None:
                return
            if not values:  # a blank line
                continue
            if len(values) > len(header):
                raise BadInput("file", f"{path}:{reader.line_num}: more values than columns")
            yield reader.line_num, {c: values[i] if i < len(values) else None for i, c in enumerate(header)}
    except UnicodeDecodeError:
        raise BadInput("file", f"{path} is not UTF-8 text") from None
    except csv.Error as exc:
        raise BadInput("file", f"{path}:{reader.line_num}: {exc}") from None


class _DuplicateKey(ValueError):
    pass


def _refuse_duplicate_keys(pairs: list) -> dict:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise _DuplicateKey(next(k for k in keys if keys.count(k) > 1))
    return dict(pairs)


_JSON_SPACE = re.compile(r"[ \t\n\r]*")
_JSON_CHUNK = 1 << 16


class _JsonList:
    """The objects of a JSON list, decoded one at a time from a sliding buffer, so memory
    holds one object (at most MAX_ROW_CHARS of text), never the whole file."""

    def __init__(self, handle, path: Path):
        self.handle, self.path = handle, path
        self.buffer, self.pos, self.eof = "", 0, False
        self.decoder = json.JSONDecoder(object_pairs_hook=_refuse_duplicate_keys)

    def _more(self) -> bool:
        chunk = self.handle.read(_JSON_CHUNK)
        self.buffer, self.pos, self.eof = self.buffer[self.pos:] + chunk, 0, not chunk
        return bool(chunk)

    def _peek(self) -> str:
        """The next character that is not white space ('' at the end of the file)."""
        while True:
            self.pos = _JSON_SPACE.match(self.buffer, self.pos).end()
            if self.pos < len(self.buffer):
                return self.buffer[self.pos]
            if not self._more():
                return ""

    def _bad(self, problem: str) -> BadInput:
        return BadInput("file", f"{self.path}: {problem}")

    def _value(self, n: int):
        self._peek()
        while True:
            try:
                value, end = self.decoder.raw_decode(self.buffer, self.pos)
                self.pos = end
                return value
            except _DuplicateKey as exc:
                raise self._bad(f"incident {n} names {exc.args[0]!r} more than once") from None
            except json.JSONDecodeError as exc:
                # cut off at the end of the buffer (a token is at most a few characters, a string any
                # length), or really malformed?
                cut = exc.msg.startswith("Unterminated string") or exc.pos >= len(self.buffer) - 12
                if self.eof or not cut:
                    raise self._bad(f"not valid JSON at incident {n} ({exc.msg})") from None
                if len(self.buffer) - self.pos > MAX_ROW_CHARS:
                    raise self._bad(f"incident {n} is longer than {MAX_ROW_CHARS:,} characters") from None
                self._more()
            except RecursionError:
                raise self._bad("JSON nested too deeply to be a list of incidents") from None
            except ValueError:  # int()'s digit limit
                raise self._bad(f"incident {n} holds a number too long to be a value (over 4,300 digits)") from None

    def objects(self):
        if self._peek() != "[":
            raise self._bad("expected a JSON list of objects, one per incident")
        self.pos += 1
        if self._peek() == "]":
            self.pos += 1
        else:
            for n in itertools.count(1):
                value = self._value(n)
                if not isinstance(value, dict):
                    raise self._bad("expected a JSON list of objects, one per incident")
                yield n, value
                following = self._peek()
                self.pos += 1
                if following == "]":
                    break
                if following != ",":
                    raise self._bad(f"not valid JSON after incident {n} (expected , or ])")
        if self._peek():
            raise self._bad("not valid JSON (text after the end of the list)")


def _json_rows(handle, path: Path):
    found: set[str] = set()
    try:
        for n, row in _JsonList(handle, path).objects():
            _refuse_unknown(set(row), path)
            found |= set(row)
            yield n, {k: "" if v is None else str(v) for k, v in row.items()}
    except UnicodeDecodeError:
        raise BadInput("file", f"{path} is not UTF-8 text") from None
    _check_columns(found, path)


def _refuse_unknown(found: set[str], path: Path) -> None:
    unknown = sorted(found - set(COLUMNS))
    if unknown:
        raise BadInput("file", f"{path}: unknown column(s) {', '.join(unknown)}; known: {', '.join(COLUMNS)}")


def _check_columns(found: set[str], path: Path) -> None:
    _refuse_unknown(found, path)
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


BATCH_ROWS = 5000


class _Loader:
    """One import: resolves people, applies the rules with the history built so
    far, and buffers rows for executemany. The store's constraints and triggers
    still check every referral as it is written."""

    def __init__(self, store, config, officer: str, now: datetime):
        self.store, self.config, self.officer, self.now = store, config, officer, now
        self.schemes = list(config.schemes.values())
        self.next_person, self.next_incident = store.next_row_ids()
        # Caches cover only the batch not yet written, so memory stays flat however
        # long the file: earlier rows are found through the database's indexes.
        # identity key -> (person id, PNC, surname_norm, forenames_norm, dob)
        self.people: dict[tuple, tuple] = {}
        self.history: dict[int, list[rules.PriorReferral]] = {}
        self.created: set[int] = set()                  # people new in this batch (no incidents on file yet)
        self.incidents_of: dict[int, list[tuple]] = {}  # person -> [(occurred, substance keys, row's incident)]
        self.referred: dict[str, list[dict]] = {}       # dob -> people referred in this batch, as near matches see them
        self.next_ref: dict[int, int] = {}
        self.reasons_json: dict[tuple, str] = {}
        self.batch: dict[str, list[tuple]] = {table: [] for table in (
            "people", "person_gaps", "incidents", "incident_substances", "incident_co_offences", "decisions",
            "referrals", "referral_conditions")}
        self.summary = ImportSummary()

    def flush(self) -> None:
        try:
            self.store.insert_batch(self.batch)
        except Refused as refusal:
            raise BadInput("", f"the database refused a row: {refusal.message}") from None
        self.store.seal_audit()  # keep the pending trail small on long imports
        for cache in (self.people, self.history, self.reasons_json, self.created, self.incidents_of, self.referred):
            cache.clear()

    def row(self, row: dict) -> None:
        try:
            self._row(row)
        except BadInput as exc:
            if exc.field in FILE_FIELDS:  # name the file's column, not `record`'s flag
                raise BadInput(FILE_FIELDS[exc.field], exc.problem) from None
            raise

    def _row(self, row: dict) -> None:
        req = RecordRequest(surname=row.get("surname"), forename=row.get("forenames"),
                            dob=row.get("dob") or None, pnc=row.get("pnc") or None, gender=row.get("gender"),
                            ethnicity=row.get("ethnicity"), when=row.get("occurred_at") or "",
                            substances=_split(row.get("substances")), quantity=row.get("quantity"),
                            location=row.get("location"), co_offences=_split(row.get("co_offences")))
        if not req.when:
            raise BadInput("occurred_at", "is empty")
        rec = validate_record(self.config, req, self.now)
        rec.supply_suspected = _flag(row.get("supply_suspected"), "supply_suspected")
        recorder = values.parse_officer(row["recorded_by"]) if row.get("recorded_by") else self.officer
        if (row.get("approved_by") or "").strip():
            values.parse_officer(row["approved_by"])
        if rec.surname is None:
            raise BadInput("surname", "is required in an import")
        referral = self._referral_fields(row, rec.when) if (row.get("scheme") or "").strip() else None
        age = values.check_age(rec.dob, rec.when)
        person_id = self._person(rec, recorder)
        substance_keys = {key for key, _, _ in rec.substances}
        self._refuse_duplicate(person_id, rec.when, substance_keys, _flag(row.get("not_duplicate"), "not_duplicate"))
        if referral and referral["status"] in rules.OPEN:
            # an open referral is a diversion being offered now, as `refer` would; a closed one
            # is history, recorded as it happened (refusing it would hide a past diversion)
            self._refuse_near_match(person_id, rec, row.get("not_same_as"))
        history = self._history(person_id)
        case = rules.CaseFacts(rec.when, age, tuple(c for _, c, _ in rec.substances), rec.supply_suspected,
                               tuple(rec.co_offences))
        verdict = rules.decide(self.schemes, history, rec.when, case=case)
        if referral:  # the same rules `refer` applies, as of the offer
            at_offer = rules.decide(self.schemes, history, referral["offered"], case=case,
                                    requested=referral["scheme"].key,
                                    supervisor_approved=bool((row.get("approved_by") or "").strip()))
            if not at_offer.eligible:
                raise BadInput("scheme", "the rules would not allow this referral: "
                               + " ".join(r.message for r in at_offer.reasons))
        incident_id = self.next_incident
        self.next_incident += 1
        at = rec.when.isoformat(timespec="seconds")
        b = self.batch
        b["incidents"].append((incident_id, person_id, at, age, rec.location, rec.quantity,
                               int(rec.supply_suspected), at, recorder))
        b["incident_substances"].extend((incident_id, i, key, cls, entered)
                                        for i, (key, cls, entered) in enumerate(rec.substances))
        b["incident_co_offences"].extend((incident_id, i, text) for i, text in enumerate(rec.co_offences))
        reasons = self.reasons_json.get(verdict.reasons)
        if reasons is None:  # many rows share a verdict's reasons word for word
            reasons = self.reasons_json[verdict.reasons] = json.dumps(verdict.reasons_as_dicts(), ensure_ascii=False)
        b["decisions"].append((person_id, incident_id, int(verdict.eligible), verdict.scheme, reasons,
                               self.config.fingerprint, at, recorder))
        self.summary.incidents += 1
        self.incidents_of.setdefault(person_id, []).append((rec.when, substance_keys, incident_id))
        if referral:
            self._add_referral(referral, person_id, incident_id, recorder, history)
            diverted = referral["status"] in rules.DIVERTED
            self.referred.setdefault(rec.dob.isoformat(), []).append({
                "id": values.format_person_id(person_id), "surname": rec.surname, "forenames": rec.forenames,
                "dob": rec.dob.isoformat(), "diverted": diverted, "open_referral": referral["status"] in rules.OPEN})
        if len(b["incidents"]) >= BATCH_ROWS:
            self.flush()

    def _person(self, rec, recorder: str) -> int:
        surname_norm, forenames_norm = identity.normalise(rec.surname), identity.normalise(rec.forenames)
        dob = rec.dob.isoformat()
        keys = [("pnc", rec.pnc)] if rec.pnc else []
        keys.append(("name", surname_norm, forenames_norm, dob))
        person_id, known = None, None
        for key in keys:
            cached = self.people.get(key)
            if cached and not (rec.pnc and cached[1] and cached[1] != rec.pnc):  # two PNCs: two people
                person_id, known = cached[0], cached
                break
        if person_id is None:
            found = self.store.same_person(rec.pnc, surname_norm, forenames_norm, dob)
            if found:
                person_id, known = found[0], tuple(found)
        if person_id is not None and rec.pnc and known[1] == rec.pnc and (
                known[2] != surname_norm or known[4] != dob
                or identity.first_forename(known[3]) != identity.first_forename(forenames_norm)):
            # a PNC identifies: a row that names someone else under it is never merged silently
            raise BadInput("pnc", f"{rec.pnc} belongs to {values.format_person_id(person_id)} (born "
                                  f"{known[4]}), whose recorded name or date of birth differs from this row's")
        known_pnc = known[1] if known else None
        if person_id is not None:
            self.batch["person_gaps"].append((rec.pnc, rec.gender, rec.ethnicity, person_id))
        else:
            person_id = self.next_person
            self.next_person += 1
            self.batch["people"].append((
                person_id, rec.surname, rec.forenames, dob, rec.pnc, rec.gender, rec.ethnicity, surname_norm,
                forenames_norm, rec.when.isoformat(timespec="seconds"), recorder))
            self.history[person_id] = []
            self.created.add(person_id)
            self.summary.people_created += 1
        for key in keys:
            self.people[key] = (person_id, known_pnc or rec.pnc, *(known[2:] if known else
                                                                   (surname_norm, forenames_norm, dob)))
        return person_id

    def _refuse_duplicate(self, person_id: int, when: datetime, substances: set[str], stated: bool) -> None:
        """The same person, a substance in common, within 30 minutes: the same arrest twice
        (an overlapping spreadsheet imported again must not inflate the figures)."""
        if stated:
            return
        window = operations.DUPLICATE_WINDOW
        for at, keys, incident_id in self.incidents_of.get(person_id, ()):
            if abs(at - when) <= window and keys & substances:
                raise BadInput("occurred_at", f"likely the same arrest as an earlier row "
                                              f"({values.format_incident_id(incident_id)}); not_duplicate=yes "
                                              f"if it is a different incident")
        if person_id not in self.created:
            found = operations.likely_duplicate(self.store, person_id, when, substances)
            if found:
                raise BadInput("occurred_at", f"likely the same arrest as {values.format_incident_id(found['id'])} "
                                              f"already on record; not_duplicate=yes if it is a different incident")

    def _refuse_near_match(self, person_id: int, rec, not_same_as: str | None) -> None:
        """An open referral row for someone who may be a diverted or referred person under
        another spelling is a problem line, as `refer` refuses it, unless not_same_as names them."""
        others = {values.parse_person_id(p) for p in _split(not_same_as)}
        who = identity.NameAndBirth(rec.surname, rec.forenames, rec.dob)
        matches = operations.near_matches(self.store, who, exclude={person_id})
        seen = {m["id"] for m in matches}
        for dob in {rec.dob.isoformat(), *(d.isoformat() for d in [identity.swapped_day_month(rec.dob)] if d)}:
            for m in self.referred.get(dob, ()):
                if m["id"] not in seen and m["id"] != values.format_person_id(person_id):
                    why = identity.possible_same_person(who, m["surname"], m["forenames"], date.fromisoformat(dob))
                    if why:
                        matches.append({**m, "pnc": None, "why": why})
        blocking = operations.blocking_matches(matches, others)
        if blocking:
            raise BadInput("not_same_as", f"possible same person already diverted or referred: "
                                          f"{operations.matches_line(blocking)}; name them in not_same_as if "
                                          f"they are someone else")

    def _history(self, person_id: int) -> list[rules.PriorReferral]:
        if person_id not in self.history:  # someone written in an earlier batch or before this import
            self.history[person_id] = prior_referrals(self.store.referrals_of(person_id))
        return self.history[person_id]

    def _referral_fields(self, row: dict, occurred: datetime) -> dict:
        scheme = self.config.scheme(row["scheme"].strip())
        status = (row.get("referral_status") or "offered").strip().lower()
        if status not in REFERRAL_STATUSES:
            raise BadInput("referral_status", f"{status!r} is not one of {', '.join(REFERRAL_STATUSES)}")
        offered = _moment(row, "offered_at", self.now, required=True)
        accepted = _moment(row, "accepted_at", self.now, required=status in ("accepted", "completed", "failed"))
        closed = _moment(row, "closed_at", self.now, required=status in ("declined", "completed", "failed", "voided"))
        if offered < occurred:
            raise BadInput("offered_at", "is before the incident")
        if accepted and accepted < offered:
            raise BadInput("accepted_at", "is before the offer")
        if closed and closed < (accepted or offered):
            raise BadInput("closed_at", "is before the offer or acceptance")
        if status in ("offered", "declined"):
            accepted = None
        early = None
        if scheme.pathway == "contract" and status == "completed":
            # as at the desk: conditions that run to the end of the contract are met only then,
            # unless a supervisor approved an early completion
            ends = _end_of_day(_add_months(offered, scheme.contract_months))
            if any(not c.due_days for c in scheme.conditions) and closed.date() < ends.date():
                early = (row.get("approved_by") or "").strip().upper()
                if not early:
                    raise BadInput("closed_at", f"a {scheme.key} contract offered {offered:%Y-%m-%d} completes no "
                                                f"earlier than its end ({ends:%Y-%m-%d}), when its conditions have "
                                                f"run their course, unless approved_by names the supervisor who "
                                                f"approved an early completion")
        return {"scheme": scheme, "status": status, "offered": offered, "accepted": accepted, "early": early,
                "closed": closed if status not in ("offered", "accepted") else None,
                "reason": values.clean_text(row.get("outcome_reason"), "outcome_reason")}

    def _add_referral(self, ref: dict, person_id: int, incident_id: int, recorder: str,
                      history: list[rules.PriorReferral]) -> None:
        scheme, status, offered, closed = ref["scheme"], ref["status"], ref["offered"], ref["closed"]
        if scheme.pathway == "contract":
            deadline = _end_of_day(_add_months(offered, scheme.contract_months))
            conditions = [(c.key, c.text, _end_of_day(offered + timedelta(days=c.due_days))
                           if c.due_days else deadline) for c in scheme.conditions]
        else:
            deadline, conditions = _end_of_day(offered + timedelta(days=scheme.deadline_days)), []
        year = offered.year
        if year not in self.next_ref:
            self.next_ref[year] = int(self.store.next_referral_id(year).rsplit("-", 1)[1])
        referral_id = f"R-{year}-{self.next_ref[year]:06d}"
        self.next_ref[year] += 1
        code = {"completed": scheme.completion_outcome, "failed": scheme.failure_outcome}.get(status)
        iso = _iso
        last = closed or ref["accepted"] or offered
        self.batch["referrals"].append((
            referral_id, person_id, incident_id, scheme.key, scheme.pathway, scheme.one_shot_group,
            rules.lookback_since(scheme, offered), status, scheme.provider, iso(deadline), iso(offered), recorder,
            iso(ref["accepted"]), iso(closed), code, ref["reason"], iso(last), recorder))
        met = status == "completed"
        early = f"early completion approved by supervisor {ref['early']}" if ref["early"] else None
        self.batch["referral_conditions"].extend(
            (referral_id, i, key, text, iso(due), "met" if met else "pending", iso(closed) if met else None,
             recorder if met else None, early if due == deadline else None)
            for i, (key, text, due) in enumerate(conditions))
        history.append(rules.PriorReferral(referral_id, scheme.key, scheme.one_shot_group, status, iso(offered),
                                           iso(ref["accepted"])))
        self.summary.referrals += 1


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") if moment else None


def import_file(ws: Workspace, path: Path, dry_run: bool = False, progress=None) -> ImportSummary:
    """Validate every row and write them all in one transaction (or none)."""
    config, officer, now = ws.config, ws.officer(), ws.clock()
    return _import(ws.writer(), config, officer, now, path, dry_run, progress)


def _import(store, config, officer: str, now: datetime, path: Path, dry_run: bool, progress) -> ImportSummary:
    problems: list[str] = []
    with store.transaction("import", officer, f"import of {path.name}"), store.bulk_load():
        loader = _Loader(store, config, officer, now)
        loader.summary.dry_run = dry_run
        for line, row in read_rows(path):
            loader.summary.rows += 1
            if progress:
                progress(loader.summary.rows)
            try:
                loader.row(row)
            except DiversionError as exc:
                problems.append(f"line {line}: {exc.message}")
                if len(problems) >= MAX_PROBLEMS:
                    problems.append(f"stopped after {MAX_PROBLEMS} bad rows")
                    break
        if not problems:
            try:
                loader.flush()
            except DiversionError as exc:
                problems.append(exc.message)
        if problems:
            raise ImportFailed(problems, loader.summary.rows)
        if dry_run:
            raise _DryRunDone(loader.summary)
    return loader.summary


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


def _moment(row: dict, field: str, now: datetime, required: bool = False) -> datetime | None:
    text = (row.get(field) or "").strip()
    if not text:
        if required:
            raise BadInput(field, "is required for a referral")
        return None
    return values.parse_datetime(text, field, current=now)


# ---- export -------------------------------------------------------------------

EXPORTS = ("incidents", "referrals")
# What a pseudonymised extract keeps, by column; any column not named here is left out,
# so a column added to a view later never leaks by default.
KEEP = ("gender", "ethnicity", "age", "age_group", "substances", "drug_classes", "co_offence_count",
        "supply_suspected", "eligible_at_record", "scheme", "pathway", "status", "referral_status", "provider",
        "outcome_code", "conditions", "conditions_met")
# Replaced by a keyed hash: links rows without saying who (officers included).
KEYED = ("person_ref", "incident_ref", "referral_id", "recorded_by", "offered_by")
# Cut to the date: the time of day helps pick a person out of a custody record.
TIMES = ("occurred_at", "recorded_at", "voided_at", "offered_at", "diverted_at", "closed_at", "deadline",
         "appointment")
# Free text (it may name people and places): goes out only as the configured area it lies in.
LOCATION, AREA = "location", "area"
PSEUDONYM_KEY_ENV = "DIVERSION_PSEUDONYM_KEY"
MIN_KEY_BITS = 128


def key_bits(secret: str) -> float:
    """A floor on the secret's entropy that gives no credit for repeats or runs ("aaaa",
    "abcd", "0123", "Tr0ub4dor&3" typed three times): the number of its characters that begin
    a three-character sequence not seen earlier in it, times the Shannon entropy per character
    of its characters or of the steps between neighbours, whichever is less."""
    import math
    from collections import Counter

    def entropy(items: list) -> float:
        return -sum(c / len(items) * math.log2(c / len(items)) for c in Counter(items).values()) if items else 0.0

    seen: set[str] = set()
    novel = 0
    for i in range(len(secret)):
        sequence = secret[i:i + 3]
        novel += sequence not in seen
        seen.update((sequence, sequence[:2], sequence[:1]))  # the prefixes: the last characters' shorter sequences
    steps = [ord(b) - ord(a) for a, b in zip(secret, secret[1:])]
    return novel * min(entropy(list(secret)), entropy(steps))


def pseudonym_key() -> bytes:
    """The force's secret for the keyed hash, refused unless it carries MIN_KEY_BITS."""
    secret = os.environ.get(PSEUDONYM_KEY_ENV, "")
    if not secret:
        raise BadInput(PSEUDONYM_KEY_ENV, "set it to the force's secret to pseudonymise (make one with: "
                                          "python3 -c \"import secrets; print(secrets.token_hex(32))\")")
    if key_bits(secret) < MIN_KEY_BITS:
        raise BadInput(PSEUDONYM_KEY_ENV, f"too guessable: a key must carry at least {MIN_KEY_BITS} bits, with no "
                                          f"credit for repeats or runs, such as the 64 hex digits of python3 -c "
                                          f"\"import secrets; print(secrets.token_hex(32))\"")
    return secret.encode("utf-8", "surrogateescape")  # the bytes the environment held


def export(ws: Workspace, what: str, out, fmt: str = "csv", start: str | None = None, end: str | None = None,
           pseudonymise: bool = False) -> int:
    """Write incidents or referrals as CSV or JSON Lines to `out`; returns the row count.

    Pseudonymised: names, dates of birth, PNC IDs and free text removed; the location
    given only as the configured area it lies in (config [areas]; empty if none); ids
    replaced by an HMAC of the id under a key only the force holds (so a researcher can
    link rows of one person, and nobody without the key can go back); every time cut
    to its date. Age at the incident stays.
    """
    import hashlib
    import hmac

    if what not in EXPORTS:
        raise BadInput("what", f"{what!r} is not one of {', '.join(EXPORTS)}")
    if fmt not in ("csv", "json"):
        raise BadInput("format", f"{fmt!r} is not csv or json")
    key = pseudonym_key() if pseudonymise else None
    since = values.parse_date(start, "from").isoformat() if start else None
    until = (values.parse_date(end, "to") + timedelta(days=1)).isoformat() if end else None
    columns, rows = ws.reader().export_rows(what, since, until, pseudonymised=key is not None)
    allowed = set(KEEP) | set(KEYED) | set(TIMES) | {LOCATION}
    kept = list(columns) if key is None else [AREA if c == LOCATION else c for c in columns
                                              if c in allowed or c.endswith("_at")]
    where = {c: i for i, c in enumerate(columns)}

    def transform(row) -> dict:
        if key is None:
            return dict(zip(columns, row))
        record = {}
        for c in kept:
            v = row[where[LOCATION if c == AREA else c]]
            if c == AREA:
                v = ws.config.area(v)
            elif c in KEYED and v is not None:
                v = hmac.new(key, str(v).encode(), hashlib.sha256).hexdigest()[:16]
            elif (c in TIMES or c.endswith("_at")) and isinstance(v, str):
                v = v[:10]
            record[c] = v
        return record

    if key is not None and what == "incidents" and LOCATION not in columns:
        from diversion_cli import output

        output.warn("the area column is left out: this login may not read locations (free text), which the area "
                    "is worked out from; a supervisor's extract has it")
    count = 0
    if fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=kept, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: values.spreadsheet_safe(v) for k, v in transform(row).items()})
            count += 1
    else:
        for row in rows:
            out.write(json.dumps(transform(row), ensure_ascii=False) + "\n")
            count += 1
    return count
