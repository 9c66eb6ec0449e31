"""Turning results into text for people (and JSON for scripts).

Plain text, coloured only when stdout is a terminal and NO_COLOR is unset.
User-entered text is never passed through Rich markup, so a name like
"[bold]x" prints as typed.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path

import typer

from diversion_cli.errors import BadInput


def use_color() -> bool:
    return sys.stdout is not None and sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def emit(text: str = "") -> None:
    typer.echo(text, color=use_color())


def warn(text: str) -> None:
    typer.echo(text, err=True)


def paint(text: str, color: str, bold: bool = True) -> str:
    return typer.style(text, fg=color, bold=bold) if use_color() else text


def emit_json(data) -> None:
    import json

    typer.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def when(iso: str | None) -> str:
    """An ISO date or date-time from the record, in words ("Mon 12 Jan 2026 03:00"), so
    a day/month swap shows before anyone acts on it."""
    from datetime import date, datetime

    from diversion_cli import values

    if not iso:
        return ""
    if len(iso) <= 10:
        return values.date_in_words(date.fromisoformat(iso))
    return values.moment_in_words(datetime.fromisoformat(iso))


def day(iso: str | None) -> str:
    """Only the date part, in words."""
    return when(iso[:10]) if iso else ""


def verdict_line(eligible: bool) -> str:
    return paint("ELIGIBLE", "green") if eligible else paint("NOT ELIGIBLE", "red")


def person_line(p: dict) -> str:
    parts = [p["id"], f"{p['surname'].upper()}, {p['forenames']}", f"born {when(p['dob'])}"]
    if p.get("pnc"):
        parts.append(f"PNC {p['pnc']}")
    return "  ".join(parts)


def reasons_block(reasons: list[dict]) -> list[str]:
    return [f"  - {r['code']}: {r['message']}" for r in reasons]


def substances_text(substances: list[dict]) -> str:
    return ", ".join(f"{s['substance']} ({s['drug_class'] or 'class not yet known'})" for s in substances)


def matches_block(matches: list[dict]) -> list[str]:
    if not matches:
        return []
    lines = [paint(f"Possible same person ({len(matches)}): check before going on", "yellow")]
    for m in matches:
        flag = "  DIVERTED" if m["diverted"] else "  OPEN REFERRAL" if m.get("open_referral") else ""
        pnc = f"  PNC {m['pnc']}" if m.get("pnc") else ""
        lines.append(f"  {m['id']}  {m['surname'].upper()}, {m['forenames']}  born {when(m['dob'])}{pnc}{flag}"
                     f"  ({'; '.join(m['why'])})")
    return lines


def render_check(result: dict) -> None:
    person = result["person"]
    head = verdict_line(result["eligible"])
    emit(f"{head}  {person_line(person)}" if person else head)
    for line in reasons_block(result["reasons"]):
        emit(line)
    if person:
        emit(f"Incidents ({len(result['incidents'])}):")
        for i in result["incidents"]:
            at_record = {None: "", True: "  eligible at record", False: "  not eligible at record"}
            emit(f"  {i['id']}  {when(i['occurred_at'][:16])}  {substances_text(i['substances'])}"
                 f"{at_record[i['eligible_at_record']]}")
        emit(f"Referrals ({len(result['referrals'])}):")
        for r in result["referrals"]:
            emit("  " + referral_line(r))
    for line in matches_block(result["possible_matches"]):
        emit(line)


def render_candidates(found: dict) -> None:
    """People who fit a partial name, one line each, for the desk to pick from."""
    if not found["candidates"]:
        warn("No one on record fits that name.")
        return
    for c in found["candidates"]:
        last = c["last_incident"]
        emit(person_line(c) + (f"  last incident {last['id']} {when(last['occurred_at'][:16])}" if last
                               else "  no incidents"))
    if found["more"]:
        warn(f"Only the first {len(found['candidates'])} are shown: give more of the forename or the date of birth.")


def render_incidents(rows: list[dict]) -> None:
    if not rows:
        warn("No incidents match.")
        return
    for i in rows:
        verdict = {None: "", True: "  eligible", False: "  not eligible"}[i["eligible_at_record"]]
        referral = f"  {i['referral_id']} {i['referral_status']}" if i["referral_id"] else ""
        place = f"  at {i['location']}" if i["location"] else ""
        emit(f"{i['id']}  {when(i['occurred_at'][:16])}  {i['person_id']}  {i['name']}  "
             f"{substances_text(i['substances'])}{place}  by {i['recorded_by']}{verdict}{referral}"
             + ("  VOIDED" if i["voided"] else ""))


def render_incident(view: dict) -> None:
    emit(f"{view['id']}  {when(view['occurred_at'][:16])}  recorded by {view['recorded_by']}"
         + (f"  VOIDED {day(view['voided_at'])}: {view['void_reason']}" if view["voided_at"] else ""))
    emit(f"  person:      {person_line(view['person'])} (aged {view['age']} then)")
    emit(f"  found:       {substances_text(view['substances'])}"
         + (f", {view['quantity']}" if view["quantity"] else ""))
    emit(f"  supply:      {'suspected' if view['supply_suspected'] else 'not suspected'}")
    emit(f"  co-offences: {'; '.join(view['co_offences']) or 'none'}")
    if view["location"]:
        emit(f"  location:    {view['location']}")
    for n, d in enumerate(view["decisions"]):
        current = "current decision" if n == len(view["decisions"]) - 1 else "earlier decision"
        emit(f"{paint(current, 'white')} ({d['stage']}, {when(d['taken_at'][:16])} by {d['taken_by']}): "
             f"{verdict_line(d['eligible'])}")
        for line in reasons_block(d["reasons"]):
            emit("  " + line)
    if not view["referrals"]:
        emit("No referral.")
    for r in view["referrals"]:
        emit("Referral " + referral_line(r))


def render_decided_again(decision: dict) -> None:
    was = {None: "", True: " (was ELIGIBLE)", False: " (was NOT ELIGIBLE)"}[decision["was_eligible"]]
    emit(f"Decided again: {verdict_line(decision['eligible'])}{was}")
    for line in reasons_block(decision["reasons"]):
        emit(line)
    referral = decision["referral"]
    if referral and not decision["eligible"]:
        warn(paint(f"warning: referral {referral['id']} is {referral['status']} but the incident is no longer "
                   f"eligible: if it should not stand, `diversion outcome {referral['id']} voided --reason ...`",
                   "yellow"))


def referral_line(r: dict) -> str:
    text = f"{r['id']}  {r['scheme']}  {r['status']}  offered {day(r['offered_at'])}  deadline {day(r['deadline'])}"
    if r.get("outcome_code") is not None:
        text += f"  outcome {r['outcome_code']}"
    if r.get("reason"):
        text += f"  ({r['reason']})"
    return text


def render_record(result: dict) -> None:
    new = " (new person)" if result["new_person"] else ""
    emit(f"Recorded incident {result['incident_id']} at {when(result['occurred_at'][:16])} for "
         f"{person_line(result['person'])}{new}")
    for line in result.get("warnings", []):
        warn(paint(f"warning: {line}", "yellow"))
    emit(verdict_line(result["eligible"]))
    for line in reasons_block(result["reasons"]):
        emit(line)
    if result.get("referral"):
        render_offer(result["referral"])
    for line in matches_block(result["possible_matches"]):
        warn(line)


def render_offer(offer: dict) -> None:
    emit(f"Referral {paint(offer['id'], 'cyan')} offered: {offer['scheme_name']}")
    emit(f"  provider:    {offer['provider']}" + (f"  ({offer['contact']})" if offer.get("contact") else ""))
    if offer.get("appointment"):
        emit(f"  appointment: {when(offer['appointment'])}")
    emit(f"  deadline:    {when(offer['deadline'])}")
    for requirement in offer.get("requirements", []):
        emit(f"  - {requirement}")
    for c in offer.get("conditions", []):
        emit(f"  condition {c['key']}: {c['text']} (by {when(c['due'])})")


def render_outcome(result: dict) -> None:
    r = result["referral"]
    was = f" (corrected from {result['corrected_from']})" if result.get("corrected_from") else ""
    emit(f"{r['id']} is now {paint(r['status'], 'cyan')}{was}")
    if result.get("outcome_code") is not None:
        emit(f"  Home Office outcome {result['outcome_code']}: {result['outcome_text']}")
    if result.get("returned_to_normal_process"):
        emit("  The case returns to the normal process.")


def render_queue(rows: list[dict]) -> None:
    if not rows:
        emit("No referrals match.")
        return
    header = ("referral", "status", "person", "name", "scheme", "deadline", "days left")
    table = [header] + [(r["id"], r["status"], r["person_id"], r["name"], r["scheme"], day(r["deadline"]),
                         ("OVERDUE " if r["overdue"] else "") + str(r["days_left"])) for r in rows]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
    for n, row in enumerate(table):
        line = "  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip()
        emit(paint(line, "white") if n == 0 else line)


# ---- writing results out: stdout, or an owner-only file -------------------------------

@contextmanager
def to_stdout():
    """Around writing a command's output to stdout: a full disk or a failed device there is a
    one-line error (exit 2), not a bug; a reader that went away stays the boundary's (exit 141)."""
    try:
        yield sys.stdout
        sys.stdout.flush()
    except BrokenPipeError:
        raise
    except OSError as exc:
        discard_stdout()
        raise BadInput("stdout", f"cannot write the output ({exc.strerror or exc}); it is incomplete") from None


def discard_stdout() -> None:
    """Point the process's stdout at /dev/null, so the interpreter's last flush of what is
    still buffered does not fail a second time (and print a traceback) on the way out."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return  # not a real file (a test runner's buffer): nothing is flushed at exit
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


@contextmanager
def private_file(path: Path, force: bool = False, binary: bool = False):
    """A text handle whose contents become the owner-only file `path`, whole or not at all.

    Written to a new file (0600) beside the target and renamed into place, so nothing a
    symlink points at is written through or chmodded, and a failure (a full disk) leaves
    the old file as it was. Refused (exit 2): a symlink, anything not a regular file (a
    device, a pipe, a directory), and an existing file unless `force`."""
    import tempfile

    _check_target(path, force)
    try:
        fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise BadInput("output", f"cannot write {path}: {exc.strerror}") from None
    try:
        try:
            os.fchmod(fd, 0o600)
            handle = os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline="")
        except BaseException:
            os.close(fd)
            raise
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        _place(temp, path, force)
    except OSError as exc:
        raise BadInput("output", f"cannot write {path}: {exc.strerror or exc}; it was not changed") from None
    finally:
        try:
            os.unlink(temp)
        except FileNotFoundError:
            pass


def write_private(path: Path, text: str | bytes, force: bool = False) -> None:
    """`text` (or a PDF's bytes) as the owner-only file `path` (see private_file)."""
    with private_file(path, force, binary=isinstance(text, bytes)) as handle:
        handle.write(text)


_database = None  # a function giving the database's path: --output must never land on it


def keep_clear_of(database) -> None:
    global _database
    _database = database


def _is_database(path: Path) -> bool:
    """Whether `path` is the database or one of its journal files (by name or by inode)."""
    if _database is None:
        return False
    try:
        db = _database()
    except Exception:  # a --db that does not resolve: there is nothing of ours to protect
        return False
    target = Path(os.path.abspath(path))
    for sidecar in ("", "-wal", "-shm", "-journal"):
        guarded = Path(os.path.abspath(f"{db}{sidecar}"))
        try:
            if target == guarded or (target.exists() and guarded.exists() and os.path.samefile(target, guarded)):
                return True
        except (OSError, ValueError):  # a name no file can have: the checks that follow say so
            return False
    return False


def _check_target(path: Path, force: bool) -> None:
    import stat

    if _is_database(path):
        raise BadInput("output", f"{path} is the database (or its journal): give another file")

    try:
        found = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise BadInput("output", f"cannot write {path}: {exc.strerror}") from None
    except ValueError:  # a NUL or an unencodable character: no file can have that name
        raise BadInput("output", f"{str(path)!r} is not a usable file name") from None
    if stat.S_ISLNK(found.st_mode):
        raise BadInput("output", f"{path} is a symbolic link; give the path of the file itself")
    if not stat.S_ISREG(found.st_mode):
        raise BadInput("output", f"{path} is not a regular file (a device, pipe or directory); give a file's path")
    if not force:
        raise BadInput("output", f"{path} already exists; add --force to replace it")
    if found.st_uid != os.geteuid():  # --force replaces your own file, never another user's
        raise BadInput("output", f"{path} belongs to another user: not replaced")


def _place(temp: str, path: Path, force: bool) -> None:
    """Rename the finished file into place; without `force`, never over a file that appeared
    meanwhile (a hard link fails if the name is taken, where a rename would replace it)."""
    if force:
        os.replace(temp, path)  # replaces a name: a symlink put there meanwhile is replaced, never followed
        return
    try:
        os.link(temp, path)
    except FileExistsError:
        raise BadInput("output", f"{path} already exists; add --force to replace it") from None
    except OSError:  # a file system without hard links
        if os.path.lexists(path):
            raise BadInput("output", f"{path} already exists; add --force to replace it") from None
        os.replace(temp, path)
