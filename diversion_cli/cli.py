"""The `diversion` command line: parse options, call one operation, render.
No SQL and no rules here; domain errors are turned into exit codes once, in
`_Group.invoke`."""

from __future__ import annotations

import errno
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer
from typer.core import TyperCommand, TyperGroup

from diversion_cli import __version__, operations, output
from diversion_cli.errors import BadInput, DiversionError, Refused
from diversion_cli.operations import Workspace

EXIT_INTERNAL = 70


def _help(command, ctx, formatter) -> None:
    from diversion_cli import helptext  # only when help is asked for

    formatter.write(helptext.render(command, ctx))


class _Command(TyperCommand):
    def format_help(self, ctx, formatter) -> None:
        _help(self, ctx, formatter)

    def invoke(self, ctx):
        # on a shared server, this login's role must allow the command (exit 5 before anything is done)
        names, at = [], ctx
        while at.parent is not None:
            names.append(at.info_name)
            at = at.parent
        ctx.obj.permit(" ".join(reversed(names)), ctx.params)
        return super().invoke(ctx)


class _Group(TyperGroup):
    """The one error boundary: domain exceptions become a one-line message on
    stderr and their exit code; nothing else reaches the user as a traceback."""

    def format_help(self, ctx, formatter) -> None:
        _help(self, ctx, formatter)

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except (typer.Exit, typer.Abort):
            raise
        except typer.TyperException as exc:  # the top level's own options, before any command runs
            _usage_error(exc)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except operations.NotEligible as exc:
            typer.echo("not eligible:", err=True)
            for reason in exc.verdict.reasons:
                typer.echo(f"  - {reason.code}: {reason.message}", err=True)
            raise typer.Exit(exc.exit_code) from None
        except DiversionError as exc:
            typer.echo(f"error: {exc.message}", err=True)
            raise typer.Exit(exc.exit_code) from None
        except _database_errors() as exc:
            if _during_interrupt(exc):  # the driver lost its footing to a Ctrl-C: the officer's, not a failure
                typer.echo("\ninterrupted: nothing was written", err=True)
                raise typer.Exit(130) from None
            if type(exc).__name__ == "InsufficientPrivilege":  # the server's grants held where the CLI did not ask
                typer.echo("error: the server refused this login: its role may not read or change this; nothing "
                           "was written", err=True)
                raise typer.Exit(5) from None
            typer.echo(f"error: the database failed ({exc.__class__.__name__}); nothing was written", err=True)
            raise typer.Exit(4) from None
        except BrokenPipeError:  # `diversion export | head`: the reader has gone; not an error of ours
            output.discard_stdout()
            raise typer.Exit(141) from None
        except OSError as exc:  # a full or failing disk under an output or stdout: not a bug
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EFBIG, errno.EROFS):
                _internal_error(exc)
            output.discard_stdout()
            typer.echo(f"error: cannot write ({exc.strerror}); what was being written is incomplete", err=True)
            raise typer.Exit(2) from None
        except (KeyboardInterrupt, typer.Abort):  # Ctrl-C, or Ctrl-D at a prompt
            typer.echo("\ninterrupted: nothing was written", err=True)
            raise typer.Exit(130) from None
        except typer.Exit:
            raise
        except typer.TyperException as exc:  # a usage error found while parsing a command's options
            _usage_error(exc)
        except Exception as exc:  # a bug: say so without locals or personal data
            _internal_error(exc)


def _usage_error(exc) -> None:
    if type(exc).__name__ == "NoArgsIsHelpError":  # a group given no command: its help, as asked
        raise exc
    from diversion_cli import helptext

    typer.echo(f"error: {helptext.usage_error(exc)}", err=True)
    raise typer.Exit(2) from None


def _internal_error(exc: Exception):
    if os.environ.get("DIVERSION_DEBUG"):
        raise exc
    typer.echo(f"internal error ({exc.__class__.__name__}); nothing more was written. "
               f"Please report it (set DIVERSION_DEBUG=1 for details).", err=True)
    raise typer.Exit(EXIT_INTERNAL) from None


def _during_interrupt(exc: BaseException | None) -> bool:
    while exc is not None:
        if isinstance(exc, KeyboardInterrupt):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _database_errors() -> tuple:
    from diversion_cli.store import database_errors

    return database_errors()


# Help and usage errors are rendered by `helptext` (plain text, our words), not Rich.
_PLAIN = {"cls": _Group, "no_args_is_help": True, "rich_markup_mode": None}
app = typer.Typer(**_PLAIN, pretty_exceptions_show_locals=False, pretty_exceptions_enable=False,
                  help="Run police drug diversion schemes: record incidents, check the one shot, refer, track "
                       "outcomes, write letters and report.\n\n"
                       "Example: diversion record --surname Smith --forename John --dob 14/02/1990 --substance weed")
db_app = typer.Typer(**_PLAIN, help="Where the data lives, its health and backups.\n\n"
                                    "Example: diversion db backup /secure/diversion-2026-11-28.db")
app.add_typer(db_app, name="db")
audit_app = typer.Typer(**_PLAIN, help="The tamper-evident history of every change.\n\n"
                                       "Example: diversion audit log --person P-000123")
app.add_typer(audit_app, name="audit")
amend_app = typer.Typer(**_PLAIN, help="Correct a record, with a reason; the original stays in its history.\n\n"
                                       "Example: diversion amend person P-000123 --surname Smyth "
                                       "--reason \"spelling confirmed from passport\"")
app.add_typer(amend_app, name="amend")
roles_app = typer.Typer(**_PLAIN, help="Who may do what on a shared server: the group roles, and the logins "
                                       "granted them (admin).\n\n"
                                       "Example: diversion db roles grant jsmith desk --officer 4471")
db_app.add_typer(roles_app, name="roles")

def _completes(*choices: str):
    """Tab completion for a value that is one of a few words."""
    return lambda incomplete: [c for c in choices if c.startswith(incomplete.lower())]


JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of text.")]
NotSameAsOpt = Annotated[Optional[list[str]], typer.Option(
    "--not-same-as", metavar="PERSON_ID", help="State that this possible same person (diverted or referred) is "
    "someone else; repeat for each. Kept with the decision and in the audit trail.")]
WhenOpt = Annotated[Optional[str], typer.Option("--when", help="Date and time (default now), e.g. "
                                                "2026-11-28 14:30 or 28/11/2026 14:30.")]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"diversion {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    ctx: typer.Context,
    db: Annotated[Optional[str], typer.Option("--db", envvar="DIVERSION_DB", show_envvar=True,
                                              help="SQLite database file (default: per-user data directory), or a "
                                                   "postgresql://host/database URL.")] = None,
    officer: Annotated[Optional[str], typer.Option("--officer", envvar="DIVERSION_OFFICER", show_envvar=True,
                                                   help="Your collar number, stamped on every write.")] = None,
    config: Annotated[Optional[str], typer.Option("--config", envvar="DIVERSION_CONFIG", show_envvar=True,
                                                  help="The force's scheme config (TOML).")] = None,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Show the version and exit.")] = False,
):
    """Run police drug diversion schemes from the command line."""
    ws = Workspace(db=db, officer=officer, config=config)
    ctx.obj = ws
    ctx.call_on_close(ws.close)
    output.keep_clear_of(lambda: ws.db_path)  # --output never replaces the database or its journal


def _interactive(json_out: bool) -> bool:
    return sys.stdin.isatty() and not json_out


def _ask(label: str, parse, default: str | None = None, required: bool = True, echo=None) -> str | None:
    """Prompt until the value parses; an empty answer skips an optional field. With
    `echo`, the parsed value is said back (dates in words, so a swap is seen)."""
    while True:
        answer = typer.prompt(label, default=default if default is not None else "", show_default=bool(default),
                              err=True)
        answer = answer.strip()
        if not answer and not required:
            return None
        if not answer:
            typer.echo("  an answer is required here (Ctrl-C to stop)", err=True)
            continue
        try:
            value = parse(answer)
        except DiversionError as exc:
            typer.echo(f"  {exc.message}", err=True)
            continue
        if echo is not None:
            typer.echo(f"  = {echo(value)}", err=True)
        return answer


_YES, _NO = ("y", "yes"), ("n", "no")


def _confirm(question: str, default: bool) -> bool:
    """A yes/no question; Enter takes the default, anything else is asked again in our words."""
    def parse(answer: str) -> None:
        if answer.lower() not in _YES + _NO:
            raise BadInput("", "answer y or n")

    answer = _ask(f"{question} [{'Y/n' if default else 'y/N'}]", parse, required=False)
    return default if answer is None else answer.lower() in _YES


def _ask_same_person(ws: Workspace, req: operations.RecordRequest) -> dict:
    """Who is on record under this name, PNC or a near spelling; with near matches, the
    officer says which it is (an id), or N: none of them (a statement kept with the decision)."""
    found = operations.find_person_matches(ws, req.surname, req.forename, req.dob, req.pnc)
    known = found["exact"] + found["possible_matches"]
    if found["exact"]:
        output.warn(f"On record: {output.person_line(found['exact'][0])}")
    for line in output.matches_block(found["possible_matches"]):
        output.warn(line)
    if found["possible_matches"]:
        choice = _ask("Same person as one of these? Enter its id, or N for a new person",
                      _one_of([m["id"] for m in known] + ["N"]))
        if choice.upper() == "N":  # the officer's statement that none of them is this person
            req.new_person = True
            req.not_same_as = [m["id"] for m in found["possible_matches"]]
        else:
            req.person = choice.upper()
    return found


def _confirm_identity(ws: Workspace, req: operations.RecordRequest) -> None:
    """At the desk, a PNC whose record names someone else is asked about, never resolved silently."""
    conflict = operations.pnc_conflict(ws, req)
    if conflict is None:
        return
    output.warn(f"PNC {conflict['pnc']} is on record for {output.person_line(conflict['person'])}")
    for line in conflict["differences"]:
        output.warn(f"  {line}")
    if _confirm(f"Is this {conflict['person']['id']}? (their details are corrected with "
                f"`diversion amend person`)", default=False):
        req.person = conflict["person"]["id"]
    else:
        raise Refused("pnc: the PNC ID belongs to someone else: check it; nothing was written")


def _confirm_old_incident(ws: Workspace, req: operations.RecordRequest) -> None:
    """An incident more than a week old is confirmed: a day/month swap makes one."""
    from diversion_cli import values

    while True:
        when = values.parse_datetime(req.when, "when") if req.when and req.when != "now" else ws.clock()
        days = (ws.clock().date() - when.date()).days
        if days <= 7 or _confirm(f"The incident was {days} days ago ({values.moment_in_words(when)}). "
                                 f"Is that right?", default=False):
            return
        req.when = _ask("When (Enter for now)", lambda v: values.parse_datetime(v, "when"), default="now",
                        echo=values.moment_in_words)


def _one_of(options: list[str]):
    def parse(answer: str) -> None:
        if answer.upper() not in options:
            raise BadInput("", f"answer with one of {', '.join(options)}")
    return parse


def _prompt_missing(ws: Workspace, req: operations.RecordRequest) -> bool:
    """At the desk: ask for what the flags did not give, checking each answer. True if the
    person or the case was described at the prompt (not only a detail added to flags)."""
    from diversion_cli import values

    if not ws.officer_given:
        ws.officer_given = _ask("Your collar number", values.parse_officer)
    asked = not (req.person or req.pnc or (req.surname and req.forename and req.dob))
    if asked:
        req.pnc = _ask("PNC ID (Enter if none)", values.parse_pnc, required=False)
        req.surname = req.surname or _ask("Surname", lambda v: values.clean_name(v, "surname"))
        req.forename = req.forename or _ask("Forename(s)", lambda v: values.clean_name(v, "forename"))
        req.dob = req.dob or _ask("Date of birth (DD/MM/YYYY)", lambda v: _birth_date(ws, v),
                                  echo=values.date_in_words)
    found = {"exact": []}
    if not (req.person or req.new_person) and req.surname and req.forename and req.dob:
        # typed or given as flags: the same question, rather than a refusal after the prompts
        found = _ask_same_person(ws, req)
    if asked:
        known_person = bool(found["exact"]) or bool(req.person)
        if req.gender is None and not known_person:
            req.gender = _ask("Gender (M/F/X/U, Enter to skip)", values.parse_gender, required=False)
        if req.ethnicity is None and not known_person:
            codes = ws.config.ethnicity
            output.warn("Self-defined ethnicity codes:")
            for code, meaning in codes.items():
                output.warn(f"  {code:<3} {meaning}")
            req.ethnicity = _ask("Self-defined ethnicity code (Enter to skip)",
                                 lambda v: values.parse_ethnicity(v, codes), required=False)
    described = asked or not req.substances
    if not req.substances:  # the case is being described here: ask for all the decision rests on
        text = _ask("Substance(s), comma-separated (e.g. cannabis, coke)",
                    lambda v: [ws.config.substance(s) for s in v.split(",")])
        req.substances = [s for s in text.split(",") if s.strip()]
        _prompt_case(req)
    if req.when is None:
        req.when = _ask("When (Enter for now)", lambda v: values.parse_datetime(v, "when"), default="now",
                        echo=values.moment_in_words)
    _confirm_old_incident(ws, req)
    if req.pnc and not req.person:
        _confirm_identity(ws, req)
    if req.location is None:
        req.location = _ask("Location (Enter to skip)", lambda v: values.clean_text(v, "location"),
                            required=False)
    return described


def _birth_date(ws: Workspace, text: str):
    """A date of birth typed at the desk, refused at once if too young (or old) to be recorded
    (the incident's own date is checked again when it is recorded)."""
    from diversion_cli import values

    dob = values.parse_date(text, "dob")
    values.check_age(dob, ws.clock(), at="today")
    return dob


def _prompt_case(req: operations.RecordRequest) -> None:
    """The facts besides the substance that decide eligibility: quantity, supply, other offences."""
    from diversion_cli import values

    if req.quantity is None:
        req.quantity = _ask("Quantity as found, e.g. 2 g (Enter to skip)",
                            lambda v: values.clean_text(v, "quantity"), required=False)
    if not req.supply_suspected:
        req.supply_suspected = _confirm("Is intent to supply suspected?", default=False)
    if not req.co_offences:
        label = "Another offence at the same time, e.g. theft (Enter if none)"
        while offence := _ask(label, lambda v: values.clean_text(v, "co-offence"), required=False):
            req.co_offences.append(offence)
            label = "Any other offence (Enter if no more)"


def _offer_referral(ws: Workspace, req: operations.RecordRequest, result: dict) -> None:
    """At the desk, an eligible person is offered the diversion there and then."""
    terms = operations.offer_terms(ws, result["scheme"])
    question = (f"Refer now to {terms['scheme_name']} ({terms['provider']}), to complete by "
                f"{output.when(terms['deadline'])}?")
    try:
        refer_now = _confirm(question, default=True)
    except (KeyboardInterrupt, typer.Abort):  # Ctrl-C or Ctrl-D: the incident is already written
        typer.echo(f"\ninterrupted: {result['incident_id']} is recorded, not referred; refer later with: "
                   f"diversion refer {result['incident_id']}", err=True)
        return
    if refer_now:
        offer = operations.refer(ws, result["incident_id"], scheme=terms["scheme"], appointment=req.appointment,
                                 supervisor=req.supervisor, not_same_as=req.not_same_as)
        output.render_offer(offer)
    else:
        output.emit(f"Not referred; refer later with: diversion refer {result['incident_id']}")


@app.command(cls=_Command)
def record(
    ctx: typer.Context,
    person: Annotated[Optional[str], typer.Option("--person", help="An existing person id (P-000123).")] = None,
    surname: Annotated[Optional[str], typer.Option("--surname", help="Surname as the person gives it.")] = None,
    forename: Annotated[Optional[str], typer.Option("--forename", help="Forename(s).")] = None,
    dob: Annotated[Optional[str], typer.Option("--dob", help="Date of birth, e.g. 1990-02-14 or 14/02/1990.")] = None,
    pnc: Annotated[Optional[str], typer.Option("--pnc", help="PNC ID, YYYY/NNNNNNNC or YY/NNNNNNC.")] = None,
    gender: Annotated[Optional[str], typer.Option("--gender", help="M, F, X (other) or U (not stated).")] = None,
    ethnicity: Annotated[Optional[str], typer.Option("--ethnicity", help="Self-defined code (W1…O9, NS).")] = None,
    when: WhenOpt = None,
    substance: Annotated[Optional[list[str]], typer.Option("--substance", help="Substance found; street names "
                                                           "work (weed, coke, mandy).")] = None,
    quantity: Annotated[Optional[str], typer.Option("--quantity", help="Quantity as found, e.g. '2 g'.")] = None,
    location: Annotated[Optional[str], typer.Option("--location", help="Where it happened.")] = None,
    co_offence: Annotated[Optional[list[str]], typer.Option("--co-offence", help="Another offence at the same "
                                                            "time, e.g. theft.")] = None,
    supply_suspected: Annotated[bool, typer.Option("--supply-suspected", help="Intent to supply is suspected.")] = False,
    new_person: Annotated[bool, typer.Option("--new-person", help="Confirm a new person despite near matches.")] = False,
    refer_now: Annotated[bool, typer.Option("--refer", help="Offer the diversion at once if eligible.")] = False,
    scheme: Annotated[Optional[str], typer.Option("--scheme", help="Consider only this scheme.")] = None,
    appointment: Annotated[Optional[str], typer.Option("--appointment", help="With --refer: the appointment.")] = None,
    supervisor: Annotated[Optional[str], typer.Option("--supervisor", help="Collar number of the supervisor who "
                                                      "approved diversion despite a co-offence.")] = None,
    not_same_as: NotSameAsOpt = None,
    not_duplicate: Annotated[bool, typer.Option("--not-duplicate", help="State that this is a different incident "
                                                "from one recorded for the person within 30 minutes.")] = False,
    json_out: JsonOpt = False,
):
    """Record a drug possession incident and say at once whether the person can be diverted.

    Example: diversion record --surname Smith --forename John --dob 14/02/1990 --substance weed --refer
    """
    ws: Workspace = ctx.obj
    req = operations.RecordRequest(
        person=person, surname=surname, forename=forename, dob=dob, pnc=pnc, gender=gender, ethnicity=ethnicity,
        when=when, substances=list(substance or []), quantity=quantity, location=location,
        co_offences=list(co_offence or []), supply_suspected=supply_suspected, new_person=new_person,
        refer=refer_now, scheme=scheme, appointment=appointment, supervisor=supervisor,
        not_same_as=list(not_same_as or []), not_duplicate=not_duplicate)
    described_here = _interactive(json_out) and _prompt_missing(ws, req)
    result = operations.record_incident(ws, req)
    if json_out:
        output.emit_json({k: result[k] for k in ("incident_id", "person_id", "eligible", "scheme", "reasons",
                                                 "possible_matches", "warnings", "referral_id", "referral")})
        return
    output.render_record(result)
    if described_here and result["eligible"] and not result["referral"]:  # flags alone never prompt
        _offer_referral(ws, req, result)


@app.command(cls=_Command)
def check(
    ctx: typer.Context,
    ident: Annotated[Optional[str], typer.Argument(metavar="ID", help="Person id (P-000123) or PNC ID.")] = None,
    surname: Annotated[Optional[str], typer.Option("--surname", help="Surname; on its own (or with part of a "
                                                   "forename) lists who is on record under it.")] = None,
    forename: Annotated[Optional[str], typer.Option("--forename", help="Forename(s), or their first letters "
                                                    "to list candidates.")] = None,
    dob: Annotated[Optional[str], typer.Option("--dob", help="Date of birth, e.g. 14/02/1990.")] = None,
    json_out: JsonOpt = False,
):
    """Say whether this person has had their one shot at diversion.

    With a person id, a PNC ID, or surname, forename and date of birth: the verdict (exit 0 eligible, 1 not
    eligible, 3 unknown id). With only a surname, or part of a forename: the people on record who fit, with
    date of birth, PNC ID and last incident (exit 3 if none). At a terminal with nothing given, it asks.
    Example: diversion check 1979/0123456T
    Example: diversion check --surname Smith --forename Jo
    """
    ws: Workspace = ctx.obj
    interactive = _interactive(json_out)
    if not (ident or surname or forename or dob) and interactive:
        surname, forename, dob = _prompt_name(ws)
    if not ident and (surname or forename or dob) and not (surname and forename and dob):
        found = operations.find_candidates(ws, surname, forename, dob)
        if json_out:
            output.emit_json(found)
        else:
            output.render_candidates(found)
        chosen = _ask("Check which? Enter its id (Enter for none)", _one_of([c["id"] for c in found["candidates"]]),
                      required=False) if interactive and found["candidates"] else None
        if chosen is None:
            raise typer.Exit(0 if found["candidates"] else 3)
        ident = chosen.upper()
    result = operations.check_person(ws, ident, surname=surname, forename=forename, dob=dob)
    if json_out:
        output.emit_json({k: result[k] for k in ("person", "eligible", "reasons", "incidents", "referrals",
                                                 "possible_matches")})
    else:
        output.render_check(result)
    raise typer.Exit(0 if result["eligible"] else 1)


def _prompt_name(ws: Workspace) -> tuple[str, str | None, str | None]:
    """`check` at a terminal with nothing given: the name to look for (a part is enough to list)."""
    from diversion_cli import values

    surname = _ask("Surname", lambda v: values.clean_name(v, "surname"))
    forename = _ask("Forename(s) (Enter to list everyone with that surname)",
                    lambda v: values.clean_name(v, "forename"), required=False)
    dob = _ask("Date of birth (DD/MM/YYYY, Enter to list candidates)", lambda v: values.parse_date(v, "dob"),
               required=False, echo=values.date_in_words) if forename else None
    return surname, forename, dob


@app.command(cls=_Command)
def incidents(
    ctx: typer.Context,
    since: Annotated[Optional[str], typer.Option("--since", help="From this date or time (default: the last "
                                                 "7 days), e.g. 2026-11-01 or yesterday.")] = None,
    officer: Annotated[Optional[str], typer.Option("--officer", metavar="COLLAR",
                                                   help="Only incidents recorded by this collar number.")] = None,
    location: Annotated[Optional[str], typer.Option("--location", help="Only incidents whose location contains "
                                                    "this text (any case).")] = None,
    json_out: JsonOpt = False,
):
    """List recent incidents, newest first, with the decision and any referral.

    Example: diversion incidents --since yesterday --location "Stokes Croft"
    """
    rows = operations.list_incidents(ctx.obj, since=since, officer=officer, location=location)
    if json_out:
        output.emit_json(rows)
    else:
        output.render_incidents(rows)


@app.command(cls=_Command)
def incident(
    ctx: typer.Context,
    incident_id: Annotated[str, typer.Argument(metavar="INCIDENT_ID", help="The incident, e.g. I-000123.")],
    json_out: JsonOpt = False,
):
    """Show one incident: the person, what was found, every decision taken on it and its referral.

    Example: diversion incident I-000123
    """
    view = operations.incident_details(ctx.obj, incident_id)
    if json_out:
        output.emit_json(view)
    else:
        output.render_incident(view)


@app.command(cls=_Command)
def refer(
    ctx: typer.Context,
    incident: Annotated[str, typer.Argument(metavar="INCIDENT_ID", help="The incident, e.g. I-000123.")],
    scheme: Annotated[Optional[str], typer.Option("--scheme", help="Offer this scheme rather than the "
                                                  "one the rules pick.")] = None,
    appointment: Annotated[Optional[str], typer.Option("--appointment", help="Appointment date and time.")] = None,
    supervisor: Annotated[Optional[str], typer.Option("--supervisor", help="Collar number of the supervisor "
                                                      "approving diversion despite a co-offence.")] = None,
    not_same_as: NotSameAsOpt = None,
    json_out: JsonOpt = False,
):
    """Offer the diversion for a recorded incident, re-checking eligibility first.

    Example: diversion refer I-000123 --appointment "2026-12-03 10:00"
    """
    offer = operations.refer(ctx.obj, incident, scheme=scheme, appointment=appointment, supervisor=supervisor,
                             not_same_as=list(not_same_as or []))
    if json_out:
        output.emit_json(offer)
    else:
        output.render_offer(offer)


@app.command(cls=_Command)
def outcome(
    ctx: typer.Context,
    referral: Annotated[str, typer.Argument(metavar="REFERRAL_ID", help="The referral, e.g. R-2026-000123.")],
    status: Annotated[str, typer.Argument(metavar="STATUS", help="accepted, declined, completed, failed or voided.",
                                          autocompletion=_completes(*(s for s in operations.STATUSES
                                                                      if s != "offered")))],
    when: WhenOpt = None,
    reason: Annotated[Optional[str], typer.Option("--reason", help="Why (required to void or correct).")] = None,
    supervisor: Annotated[Optional[str], typer.Option("--supervisor", metavar="COLLAR", help="Correct a wrongly "
                                                      "closed referral (completed <-> failed, or voided): the "
                                                      "supervisor's collar number; needs --reason.")] = None,
    json_out: JsonOpt = False,
):
    """Record what happened to a referral: accepted, declined, completed, failed or voided.

    A supervisor corrects a wrongly closed one: diversion outcome R-2026-000123 failed --supervisor 5678
    --reason "did not attend: provider's register". Example: diversion outcome R-2026-000123 completed
    """
    result = operations.record_outcome(ctx.obj, referral, status, when=when, reason=reason, supervisor=supervisor)
    if json_out:
        output.emit_json(result)
    else:
        output.render_outcome(result)


@app.command(cls=_Command)
def condition(
    ctx: typer.Context,
    referral: Annotated[str, typer.Argument(metavar="REFERRAL_ID", help="The referral, e.g. R-2026-000123.")],
    which: Annotated[str, typer.Argument(metavar="CONDITION", help="Condition key or number (see `referral`).")],
    result: Annotated[str, typer.Argument(metavar="RESULT", help="met or breached.",
                                          autocompletion=_completes("met", "breached"))],
    when: WhenOpt = None,
    note: Annotated[Optional[str], typer.Option("--note", help="What happened.")] = None,
    supervisor: Annotated[Optional[str], typer.Option("--supervisor", metavar="COLLAR", help="Approve marking "
                                                      "met, before its due date, a condition that runs to the end "
                                                      "of the contract; needs --reason.")] = None,
    reason: Annotated[Optional[str], typer.Option("--reason", help="Why an early completion is approved.")] = None,
    json_out: JsonOpt = False,
):
    """Record a contract condition as met or breached (a breach fails the contract).

    A condition that runs to the end of the contract (no re-offending) is met only from its due date.
    Example: diversion condition R-2026-000123 drug-awareness met
    """
    outcome_ = operations.record_condition(ctx.obj, referral, which, result, when=when, note=note,
                                           supervisor=supervisor, reason=reason)
    if json_out:
        output.emit_json(outcome_)
        return
    output.emit(f"{outcome_['referral']['id']}: condition recorded as {result}")
    for c in outcome_["conditions"]:
        output.emit(f"  {c['key']:<20} {c['status']:<9} due {output.when(c['due'])}")
    if outcome_["closed_as"]:
        output.emit(f"The contract is now {outcome_['closed_as']} "
                    f"(outcome {outcome_['referral']['outcome_code']}).")


@app.command(cls=_Command)
def referral(
    ctx: typer.Context,
    referral_id: Annotated[str, typer.Argument(metavar="REFERRAL_ID", help="The referral, e.g. R-2026-000123.")],
    json_out: JsonOpt = False,
):
    """Show one referral with its person, deadline and conditions.

    Example: diversion referral R-2026-000123
    """
    view = operations.referral_details(ctx.obj, referral_id)
    if json_out:
        output.emit_json(view)
        return
    output.emit(output.referral_line(view))
    output.emit(f"  person: {output.person_line(view['person'])}")
    for n, c in enumerate(view["conditions"], 1):
        output.emit(f"  {n}. {c['key']:<20} {c['status']:<9} due {output.when(c['due'])}  {c['text']}")


@app.command(cls=_Command)
def referrals(
    ctx: typer.Context,
    status: Annotated[Optional[str], typer.Option("--status", help="Only this status (default: open ones).",
                                                  autocompletion=_completes(*operations.STATUSES))] = None,
    overdue: Annotated[bool, typer.Option("--overdue", help="Only those past their deadline.")] = False,
    due_within: Annotated[Optional[int], typer.Option("--due-within", metavar="DAYS",
                                                      help="Only those due within DAYS days.")] = None,
    json_out: JsonOpt = False,
):
    """The coordinator's work queue: open referrals, most urgent first.

    Example: diversion referrals --due-within 7
    """
    rows = operations.work_queue(ctx.obj, status=status, overdue=overdue, due_within=due_within)
    if json_out:
        output.emit_json(rows)
    else:
        output.render_queue(rows)


@app.command(cls=_Command)
def letter(
    ctx: typer.Context,
    referral_id: Annotated[str, typer.Argument(metavar="REFERRAL_ID", help="The referral, e.g. R-2026-000123.")],
    kind: Annotated[str, typer.Option("--kind", help="offer, completion or failure.",
                                      autocompletion=_completes("offer", "completion", "failure"))],
    output_file: Annotated[Optional[Path], typer.Option("--output", help="Write to this new file, owner-only "
                                                        "(.html gives HTML).")] = None,
    fmt: Annotated[Optional[str], typer.Option("--format", help="text or html (default from --output).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace the --output file if it exists.")] = False,
):
    """Print the letter the person is given: the offer, proof of completion, or failure.

    Example: diversion letter R-2026-000123 --kind completion --output letter.html
    """
    from diversion_cli import letters

    chosen = fmt or ("html" if output_file and output_file.suffix.lower() in (".html", ".htm") else "text")
    text = letters.letter(ctx.obj, referral_id, kind, chosen)
    if output_file:
        _write_private(output_file, text, force)
        output.warn(f"wrote {output_file}")
    else:
        with output.to_stdout():
            typer.echo(text)


def _write_private(path: Path, text: str, force: bool = False) -> None:
    """Letters, reports and exports hold personal data: a new owner-only file, renamed into
    place; symlinks and devices refused, an existing file replaced only with --force."""
    output.write_private(path, text, force)


@app.command(cls=_Command)
def schemes(
    ctx: typer.Context,
    show_substances: Annotated[bool, typer.Option("--substances", help="List the known substances too.")] = False,
    json_out: JsonOpt = False,
):
    """List the configured diversion schemes and the rules each applies.

    Example: diversion --config force.toml schemes
    """
    from diversion_cli.config import user_config_path

    config = ctx.obj.config
    if json_out:
        output.emit_json({
            "config_fingerprint": config.fingerprint, "sources": list(config.sources),
            "schemes": [{"key": s.key, "name": s.name, "programme": s.programme, "pathway": s.pathway,
                         "provider": s.provider, "contact": s.contact, "ages": [s.min_age, s.max_age],
                         "drug_classes": list(s.drug_classes), "rules": s.describe_rules(),
                         "pathway_detail": s.describe_pathway(), "completion_outcome": s.completion_outcome,
                         "conditions": [c.text for c in s.conditions]} for s in config.schemes.values()],
            "substances": {k: s.drug_class for k, s in config.substances.items()} if show_substances else None})
        return
    output.emit(f"Config {config.fingerprint} from {', '.join(config.sources)}")
    output.emit(f"(a force's own file: --config, DIVERSION_CONFIG or {user_config_path()})")
    for s in config.schemes.values():
        output.emit("")
        output.emit(output.paint(f"{s.key}: {s.name}", "cyan"))
        output.emit(f"  provider: {s.provider}" + (f" ({s.contact})" if s.contact else ""))
        output.emit(f"  pathway:  {s.describe_pathway()}; outcome on completion {s.completion_outcome}")
        for rule in s.describe_rules():
            output.emit(f"  - {rule}")
        for c in s.conditions:
            due = f"within {c.due_days} days" if c.due_days else "by the end"
            output.emit(f"  condition {c.key}: {c.text} ({due})")
    if show_substances:
        output.emit("")
        for s in config.substances.values():
            cls = f"class {s.drug_class}" if s.drug_class else "no class yet" if s.awaiting_analysis else \
                "not controlled"
            output.emit(f"{s.key:<26} {cls:<15} {', '.join(s.aliases)}")


@app.command(cls=_Command)
def report(
    ctx: typer.Context,
    month: Annotated[Optional[str], typer.Option("--month", help="2026-10, 'Oct 2026' or 'last' "
                                                 "(default: the last complete month).")] = None,
    start: Annotated[Optional[str], typer.Option("--from", help="First day of a date range.")] = None,
    end: Annotated[Optional[str], typer.Option("--to", help="Last day of a date range (inclusive).")] = None,
    scheme: Annotated[Optional[str], typer.Option("--scheme", help="Only this scheme.")] = None,
    by: Annotated[Optional[list[str]], typer.Option("--by", metavar="DIMENSION",
                                                    help="Break down by substance, drug_class, scheme, "
                                                    "age_band, gender, ethnicity, location or officer "
                                                    "(one dimension).")] = None,
    fmt: Annotated[Optional[str], typer.Option("--format", help="table, json, csv, markdown, html or pdf "
                                               "(default: from the --output file's extension, else table).")
                   ] = None,
    output_file: Annotated[Optional[Path], typer.Option("--output", help="Write to this new file "
                                                        "(owner-only).")] = None,
    suppress: Annotated[Optional[int], typer.Option("--suppress", metavar="N", min=1,
                                                    help="Show counts below N (and rates built on them) "
                                                         "as <N, and withhold as * any figure they could be "
                                                         "worked out from, for publication.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace the --output file if it exists.")] = False,
):
    """Figures for the Home Office: take-up, completion, re-offending, equity, trend and cost.

    Example: diversion report --month "Oct 2026" --by substance --output october.html --suppress 5
    """
    from diversion_cli import report_format, reports

    chosen = fmt or report_format.format_for(output_file)
    if chosen not in report_format.FORMATS:
        raise BadInput("format", f"{chosen!r} is not one of {', '.join(report_format.FORMATS)}")
    if by and len(by) > 1:
        # a two-way table would print most cells as <N at a force's volumes: one dimension per report
        raise BadInput("by", f"give one dimension, not {len(by)} ({', '.join(by)}); run one report per dimension")
    tables, meta = reports.make_report(ctx.obj, month=month, start=start, end=end, scheme=scheme,
                                       by=by[0] if by else None)
    if chosen == "pdf" and not output_file and sys.stdout.isatty():
        raise BadInput("output", "a PDF is not for a terminal: give --output FILE.pdf")
    text = report_format.render(tables, chosen, meta, suppress, ctx.obj.config)
    if output_file:
        _write_private(output_file, text, force)
        output.warn(f"wrote {output_file}")
    else:
        with output.to_stdout() as stdout:
            if isinstance(text, bytes):
                stdout.buffer.write(text)
            else:
                typer.echo(text, nl=False)


@app.command("import", cls=_Command)
def import_(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(metavar="FILE", help="CSV or JSON (.json) file, one incident per row.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only validate; write nothing.")] = False,
):
    """Load historical incidents and referrals from a spreadsheet export, all rows or none.

    Columns are documented in the README. Example: diversion import sample_data/incidents.csv
    """
    from diversion_cli import bulk

    with _progress("Importing") as tick:
        summary = (bulk.dry_run(ctx.obj, file, progress=tick) if dry_run
                   else bulk.import_file(ctx.obj, file, progress=tick))
    verb = "Checked (dry run, nothing written)" if dry_run else "Imported"
    output.emit(f"{verb}: {summary.rows} rows, {summary.incidents} incidents, {summary.referrals} referrals, "
                f"{summary.people_created} new people.")


@app.command(cls=_Command)
def export(
    ctx: typer.Context,
    what: Annotated[str, typer.Argument(metavar="WHAT", help="incidents or referrals.")] = "incidents",
    fmt: Annotated[str, typer.Option("--format", help="csv or json (one object per line).")] = "csv",
    output_file: Annotated[Optional[Path], typer.Option("--output", help="Write to this new file (owner-only).")]
    = None,
    start: Annotated[Optional[str], typer.Option("--from", help="First day (incident date or offer date).")] = None,
    end: Annotated[Optional[str], typer.Option("--to", help="Last day, inclusive.")] = None,
    pseudonymise: Annotated[bool, typer.Option("--pseudonymise", help="Remove names, dates of birth, PNC IDs and "
                                               "free text; locations as their configured area; times as dates; "
                                               "ids as a keyed hash (key: DIVERSION_PSEUDONYM_KEY).")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace the --output file if it exists.")] = False,
):
    """Export incidents or referrals for analysis; --pseudonymise for a researcher.

    Example: DIVERSION_PSEUDONYM_KEY=... diversion export incidents --pseudonymise --output extract.csv
    """
    from diversion_cli import bulk

    with output.to_stdout() if output_file is None else output.private_file(output_file, force) as handle:
        count = bulk.export(ctx.obj, what, handle, fmt, start, end, pseudonymise)
    output.warn(f"exported {count} {what}" + (" (pseudonymised)" if pseudonymise else ""))


@contextmanager
def _progress(label: str):
    """A progress bar on stderr for long jobs, only when stderr is a terminal."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn(label + " {task.completed:,} rows"), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task(label, total=None)

        def tick(n: int) -> None:
            if n % 500 == 0:
                progress.update(task, completed=n)

        yield tick


@db_app.command("init", cls=_Command)
def db_init(ctx: typer.Context):
    """Create a new, empty database (owner-only): the only command that creates one.

    Refused (exit 1) if anything already exists at the path. Example: diversion --db /srv/diversion/force.db db init
    """
    from diversion_cli.store import is_server

    path = ctx.obj.init()
    output.emit(f"created an empty diversion database in {path} (its access is the server's roles')" if is_server(path)
                else f"created an empty diversion database at {path} (owner-only)")


@db_app.command("upgrade", cls=_Command)
def db_upgrade(ctx: typer.Context):
    """Bring a database written by an earlier diversion up to this version's schema.

    Commands that write do this themselves; commands that only read ask for it. Example: diversion db upgrade
    """
    store = ctx.obj.writer()
    done = f"upgraded from {store.upgraded_from}" if store.upgraded_from is not None else "up to date"
    output.emit(f"{ctx.obj.db_path}: schema version {store.schema_version()} ({done})")


@db_app.command("compact", cls=_Command)
def db_compact(ctx: typer.Context):
    """Give back the space deleted data left inside the file (after an upgrade that converted the trail, or
    erasures). Other desks wait while it runs: run it at a quiet time.

    Example: diversion db compact
    """
    from diversion_cli import admin

    result = admin.compact(ctx.obj)
    output.emit(f"{result['path']}: {result['before_bytes'] / 1e6:,.1f} MB -> {result['after_bytes'] / 1e6:,.1f} MB")


@db_app.command("migrate-to", cls=_Command)
def db_migrate_to(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(metavar="URL", help="The PostgreSQL database, postgresql://host/db "
                                          "(empty, after `db init`; the password from PGPASSWORD or ~/.pgpass).")],
):
    """Move this SQLite database's whole record (people, incidents, referrals, decisions, the audit trail) to a
    PostgreSQL server. Refused if the target holds data; the trail must verify before and after, or nothing moves.
    Example: diversion --db /srv/diversion/force.db db migrate-to postgresql://db.force.local/diversion
    """
    from diversion_cli import admin

    result = admin.migrate_to(ctx.obj, target)
    copied = result["copied"]
    output.emit(f"moved {result['from']} to {result['to']}: {copied['people']:,} people, {copied['incidents']:,} "
                f"incidents, {copied['referrals']:,} referrals, audit trail to entry {result['audit_entry']:,} "
                f"(verified on arrival, head hash {result['head_hash']})")


@db_app.command("path", cls=_Command)
def db_path(ctx: typer.Context):
    """Print where the database is (whether or not one has been created there).

    Example: diversion db path
    """
    typer.echo(str(ctx.obj.db_path))


@db_app.command("status", cls=_Command)
def db_status(ctx: typer.Context, json_out: JsonOpt = False):
    """Schema version, counts, size and the last write.

    Example: diversion db status
    """
    from diversion_cli import admin

    info = admin.status(ctx.obj)
    if json_out:
        output.emit_json(info)
        return
    output.emit(f"database:       {info['path']} ({info['size_bytes'] / 1e6:.1f} MB"
                + (f", mode {info['mode']})" if info["mode"] else f", PostgreSQL {info['server']})"))
    output.emit(f"schema version: {info['schema_version']}")
    for table, n in info["counts"].items():
        output.emit(f"{table + ':':<15} {n:,}")
    output.emit(f"open referrals: {info['open_referrals']:,}")
    last = info["last_write"]
    output.emit(f"last write:     {last['at']} by {last['officer']} ({last['operation']})" if last else
                "last write:     none")
    for warning in info.get("warnings", ()):
        output.warn(f"warning: {warning}")


@db_app.command("check", cls=_Command)
def db_check(ctx: typer.Context):
    """Run SQLite's integrity check and verify the audit trail (exit 0 only if both pass).

    Example: diversion db check
    """
    from diversion_cli import admin

    output.emit("integrity ok; " + _trail_ok(admin.check(ctx.obj)))


def _trail_ok(result: dict) -> str:
    return (f"audit trail ok: {result['entries']:,} entries in {result['transactions']:,} transactions, chain unbroken; "
            f"{result['rows_checked']:,} rows match their last audited state; "
            f"{result['report_cache_checked']:,} cached report figures match the records")


@db_app.command("backup", cls=_Command)
def db_backup(ctx: typer.Context, file: Annotated[Path, typer.Argument(metavar="FILE", help="A new file.")]):
    """Copy the database to FILE, consistently, while other desks keep working; FILE appears only once checked.

    Restore with `diversion db restore FILE`. Example: diversion db backup /secure/diversion-2026-11-28.db
    """
    from diversion_cli import admin

    result = admin.backup(ctx.obj, file)
    output.emit(f"backed up to {result['path']} ({result['counts']['incidents']:,} incidents, "
                f"{result['counts']['referrals']:,} referrals, audit trail to entry {result['audit_entry']:,}); "
                f"integrity ok, and it holds what the live database held")


@db_app.command("restore", cls=_Command)
def db_restore(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(metavar="FILE", help="A backup made by `db backup`.")],
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: the live data is replaced by the backup.")] = False,
):
    """Replace the live database with a backup, all at once, after checking it is whole (integrity, audit
    trail, and that it holds what it held when it was taken); anything else is refused and nothing changes.

    Example: diversion db restore /secure/diversion-2026-11-28.db --yes
    """
    from diversion_cli import admin

    if not yes:
        raise BadInput("yes", "restoring replaces every record with the backup's; add --yes to confirm")
    result = admin.restore(ctx.obj, file)
    output.emit(f"restored {result['path']} from {result['from']} ({result['counts']['incidents']:,} incidents, "
                f"audit trail to entry {result['audit_entry']:,}); the backup was complete and verified")


@db_app.command("erase-person", cls=_Command)
def db_erase_person(
    ctx: typer.Context,
    person: Annotated[str, typer.Argument(metavar="PERSON_ID", help="The person, e.g. P-000123.")],
    reason: Annotated[Optional[str], typer.Option("--reason", help="The data-protection request reference.")] = None,
    confirm: Annotated[Optional[str], typer.Option("--confirm", help="The same person id again.")] = None,
    override_retention: Annotated[bool, typer.Option("--override-retention", help="Erase even a person with a "
                                                     "diversion on record (needs a documented legal decision).")]
    = False,
):
    """Erase a person and everything recorded about them, for a data-protection request.

    Example: diversion db erase-person P-000123 --confirm P-000123 --reason "SAR-2026-0042"
    """
    from diversion_cli import admin

    result = admin.erase_person(ctx.obj, person, reason, confirm, override_retention)
    removed = ", ".join(f"{n} {what}" for what, n in result["removed"].items() if n)
    output.emit(f"erased {result['person_id']}: {removed}. The audit trail keeps only ids and digests.")
    if result["left_behind"]:
        output.warn(result["left_behind"])


@db_app.command("pin-schemes", cls=_Command)
def db_pin_schemes(ctx: typer.Context):
    """Pin the force config's one-shot scopes on the server: every referral must carry its scheme's.

    Run by an admin with the force's config, and again whenever a scheme's one-shot scope or
    look-back changes. Example: diversion --config force.toml db pin-schemes
    """
    from diversion_cli import admin

    _pinned(admin.pin_schemes(ctx.obj))


def _pinned(changed: list[dict]) -> None:
    for c in changed:
        span = "for life" if not c["lookback_years"] else f"within {c['lookback_years']} years"
        output.emit(f"pinned {c['scheme']}: one shot in scope {c['one_shot_group']!r}, {span}"
                    + (" (new)" if c["was"] is None else " (changed)"))
    if not changed:
        output.emit("the server's one-shot scopes are already the config's")


@roles_app.command("init", cls=_Command)
def roles_init(ctx: typer.Context):
    """Make the five group roles (once per server), grant each its rights on this database, and pin
    the config's one-shot scopes (as `db pin-schemes`).

    Run by the schema's owner with CREATEROLE (the force's DBA), with the force's config.
    Example: diversion --db postgresql://dba@db.force.local/diversion db roles init
    """
    from diversion_cli import admin
    from diversion_cli.store.postgres.roles import GROUPS

    pinned = admin.init_roles(ctx.obj)
    output.emit("group roles ready: " + ", ".join(GROUPS.values()))
    _pinned(pinned)
    shared = admin.roles_shared_with(ctx.obj)
    if shared:
        output.warn(f"warning: {shared}")
    output.emit("grant one to each officer's login: diversion db roles grant LOGIN ROLE --officer N")


@roles_app.command("grant", cls=_Command)
def roles_grant(
    ctx: typer.Context,
    login: Annotated[str, typer.Argument(metavar="LOGIN", help="The officer's own server login.")],
    role: Annotated[str, typer.Argument(metavar="ROLE", help="desk, coordinator, supervisor, analyst or admin.",
                                        autocompletion=_completes("desk", "coordinator", "supervisor", "analyst",
                                                                  "admin"))],
    officer: Annotated[Optional[str], typer.Option("--officer", metavar="COLLAR",
                                                   help="The login's collar number: its writes are stamped "
                                                        "with it, and no other (not needed for an analyst).")
                       ] = None,
):
    """Grant a login a role, and say whose collar number it is.

    Example: diversion db roles grant jsmith coordinator --officer 4471
    """
    from diversion_cli import admin

    entry = admin.grant_role(ctx.obj, login, role, officer)
    output.emit(f"{entry['login']}: {', '.join(entry['roles'])}"
                + (f" (officer {entry['officer']})" if entry["officer"] else ""))


@roles_app.command("revoke", cls=_Command)
def roles_revoke(
    ctx: typer.Context,
    login: Annotated[str, typer.Argument(metavar="LOGIN", help="The server login.")],
    role: Annotated[Optional[str], typer.Argument(metavar="[ROLE]", help="One role (default: every diversion "
                                                  "role).")] = None,
):
    """Take a role (or all of them) from a login; its collar number goes with its last role.

    Example: diversion db roles revoke jsmith
    """
    from diversion_cli import admin

    left = admin.revoke_role(ctx.obj, login, role)
    output.emit(f"{login}: " + (", ".join(left) if left else "no diversion role"))


@roles_app.command("list", cls=_Command)
def roles_list(ctx: typer.Context, json_out: JsonOpt = False):
    """Every login holding a diversion role, with its roles and collar number.

    Example: diversion db roles list
    """
    from diversion_cli import admin

    entries = admin.logins(ctx.obj)
    shared = admin.roles_shared_with(ctx.obj)
    if shared:
        output.warn(f"warning: {shared}")
    if json_out:
        output.emit_json(entries)
        return
    for e in entries:
        output.emit(f"{e['login']:<24} {', '.join(e['roles']):<36} {e['officer'] or '-'}")
    if not entries:
        output.emit("no login holds a diversion role yet: diversion db roles grant LOGIN ROLE --officer N")


@app.command(cls=_Command)
def whoami(ctx: typer.Context, json_out: JsonOpt = False):
    """Who you are signed in as, and what you may do.

    Example: diversion --db postgresql://jsmith@db.force.local/diversion whoami
    """
    from diversion_cli import admin

    who = admin.whoami(ctx.obj)
    if json_out:
        output.emit_json(who)
        return
    if who["engine"] == "sqlite":
        output.emit(f"{who['login']} (this computer's account): a SQLite file has one user, who may run every "
                    f"command; its file permissions are its access control")
        return
    output.emit(f"login:   {who['login']}" + (" (owns the schema: every right)" if who["owner"] else ""))
    output.emit(f"officer: {who['officer'] or 'none (this login writes no record)'}")
    output.emit(f"roles:   {', '.join(who['roles']) or 'none'}")
    output.emit("may run: " + (", ".join(who["may_run"]) or "nothing that needs a role"))


@audit_app.command("verify", cls=_Command)
def audit_verify(
    ctx: typer.Context,
    anchors: Annotated[Optional[Path], typer.Option("--anchors", metavar="FILE", help="Also check the anchors "
                                                    "kept in FILE (from `audit anchor`): catches a rewritten "
                                                    "or shortened trail.")] = None,
    json_out: JsonOpt = False,
):
    """Prove nobody changed the record behind diversion's back (exit 1 names the first bad entry).

    Example: diversion audit verify --anchors /secure/diversion-anchors.log
    """
    from diversion_cli import admin

    result = admin.verify_audit(ctx.obj, anchors)
    if json_out:
        output.emit_json(result)
        return
    output.emit(_trail_ok(result))
    output.emit(f"head: entry {result['head']['entry']:,}, hash {result['head']['hash']}"
                + (f"; {result['anchors_checked']} anchor(s) found in the trail" if anchors else ""))


@audit_app.command("anchor", cls=_Command)
def audit_anchor(
    ctx: typer.Context,
    append_to: Annotated[Optional[Path], typer.Option("--append-to", metavar="FILE", help="Append the anchor "
                                                      "line to FILE (kept outside the database) as well as "
                                                      "printing it.")] = None,
):
    """Verify the trail and print its head as one line to keep elsewhere (a daily log, another machine).

    A later `audit verify --anchors FILE` then catches a trail rewritten or cut short after it.
    Example: diversion audit anchor --append-to /secure/diversion-anchors.log
    """
    from diversion_cli import admin

    output.emit(admin.anchor(ctx.obj, append_to))


@audit_app.command("accept", cls=_Command)
def audit_accept(
    ctx: typer.Context,
    reason: Annotated[Optional[str], typer.Option("--reason", help="Why the outside changes are accepted "
                                                  "(required).")] = None,
):
    """Enter changes made outside diversion in the trail, openly, under your name and a reason.

    Run `diversion audit verify` first to see them; the alternative is `diversion db restore` of a backup taken
    before them. Example: diversion audit accept --reason "DBA fix, ticket INC-2231"
    """
    from diversion_cli import admin

    result = admin.accept_outside_changes(ctx.obj, reason)
    output.emit(f"accepted {result['accepted']} change(s) made outside diversion: {result['reason']}")


@audit_app.command("log", cls=_Command)
def audit_log(
    ctx: typer.Context,
    person: Annotated[Optional[str], typer.Option("--person", help="Only this person's history.")] = None,
    referral: Annotated[Optional[str], typer.Option("--referral", help="Only this referral's history.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1_000_000_000, help="The most recent N entries.")] = 200,
    json_out: JsonOpt = False,
):
    """Show who changed what, when, and why.

    Example: diversion audit log --referral R-2026-000123
    """
    from diversion_cli import admin

    entries = admin.audit_log(ctx.obj, person, referral, limit)
    if json_out:
        output.emit_json(entries)
        return
    for e in entries:
        why = f" — {e['reason']}" if e["reason"] else ""
        who = f"{e['officer']} ({e['login']})" if e["login"] else e["officer"]
        output.emit(f"#{e['seq']}  {e['at'][:16].replace('T', ' ')}  {who:<8} {e['operation']:<22} "
                    f"{e['action']:<8} {e['entity']} {e['entity_id']}{why}")
        if e["note"]:
            output.emit(f"      ({e['note']})")
        if e["action"] == "update" and e["old"] and e["new"]:
            import json

            old, new = json.loads(e["old"]), json.loads(e["new"])
            for key in new:
                if old.get(key) != new[key]:
                    output.emit(f"      {key}: {old.get(key)!r} -> {new[key]!r}")
    if not entries:
        output.emit("No audit entries match.")


@app.command("void", cls=_Command)
def void(
    ctx: typer.Context,
    incident: Annotated[str, typer.Argument(metavar="INCIDENT_ID", help="The incident, e.g. I-000123.")],
    reason: Annotated[Optional[str], typer.Option("--reason", help="Why the record was wrong.")] = None,
):
    """Void a wrongly recorded incident: it stays in its history but leaves the figures.

    (A referral is voided with `diversion outcome R-… voided --reason …`.) Example: diversion void I-000123 --reason "duplicate"
    """
    from diversion_cli import admin

    result = admin.void_incident(ctx.obj, incident, reason)
    output.emit(f"{result['incident_id']} voided: {result['reason']}")


@amend_app.command("incident", cls=_Command)
def amend_incident(
    ctx: typer.Context,
    incident: Annotated[str, typer.Argument(metavar="INCIDENT_ID", help="The incident, e.g. I-000123.")],
    reason: Annotated[Optional[str], typer.Option("--reason", help="Why the record is being corrected "
                                                  "(required).")] = None,
    when: Annotated[Optional[str], typer.Option("--when", help="When it happened, corrected (unchanged if not "
                                                "given), e.g. 2026-11-28 14:30 or 28/11/2026 14:30.")] = None,
    location: Annotated[Optional[str], typer.Option("--location", help="Where it happened.")] = None,
    quantity: Annotated[Optional[str], typer.Option("--quantity", help="Quantity as found, e.g. '2 g'.")] = None,
    substance: Annotated[Optional[list[str]], typer.Option("--substance", help="The substances found, replacing "
                                                           "those recorded.")] = None,
    co_offence: Annotated[Optional[list[str]], typer.Option("--co-offence", help="The other offences at the "
                                                            "same time, replacing those recorded.")]
    = None,
    no_co_offence: Annotated[bool, typer.Option("--no-co-offence", help="There was no other offence: remove "
                                                "those recorded.")] = False,
    supply_suspected: Annotated[bool, typer.Option("--supply-suspected", help="Intent to supply is "
                                                   "suspected.")] = False,
    no_supply_suspected: Annotated[bool, typer.Option("--no-supply-suspected", help="Intent to supply is not "
                                                      "suspected.")] = False,
    supervisor: Annotated[Optional[str], typer.Option("--supervisor", metavar="COLLAR", help="The supervisor "
                                                      "who approved diversion despite a co-offence.")] = None,
    not_duplicate: Annotated[bool, typer.Option("--not-duplicate", help="State that this is a different incident "
                                                "from one recorded for the person within 30 minutes of the "
                                                "corrected time.")] = False,
    json_out: JsonOpt = False,
):
    """Correct an incident, with a reason; the old values stay in the audit log.

    Correcting when it happened, the substances, other offences or supply decides eligibility again: the new
    decision is kept beside the old one and is the current one. Example: diversion amend incident I-000123
    --substance cocaine --no-supply-suspected --reason "lab result: cocaine, no intent to supply"
    """
    from diversion_cli import admin

    if no_co_offence and co_offence:
        raise BadInput("co-offence", "give --co-offence or --no-co-offence, not both")
    if supply_suspected and no_supply_suspected:
        raise BadInput("supply-suspected", "give --supply-suspected or --no-supply-suspected, not both")
    result = admin.amend_incident(ctx.obj, incident, reason, when=when, location=location, quantity=quantity,
                                  substances=list(substance) if substance else None,
                                  co_offences=[] if no_co_offence else list(co_offence) if co_offence else None,
                                  supply_suspected=True if supply_suspected else False if no_supply_suspected
                                  else None, supervisor=supervisor,
                                  not_duplicate=not_duplicate)
    if json_out:
        output.emit_json(result)
        return
    output.emit(f"{result['incident_id']} amended ({', '.join(result['changed'])}): {result['reason']}")
    if result["decision"]:
        output.render_decided_again(result["decision"])


@amend_app.command("person", cls=_Command)
def amend_person(
    ctx: typer.Context,
    person: Annotated[str, typer.Argument(metavar="PERSON_ID", help="The person, e.g. P-000123.")],
    reason: Annotated[Optional[str], typer.Option("--reason", help="Why (required).")] = None,
    surname: Annotated[Optional[str], typer.Option("--surname", help="The surname as it should be.")] = None,
    forename: Annotated[Optional[str], typer.Option("--forename", help="The forename(s) as they should be.")] = None,
    dob: Annotated[Optional[str], typer.Option("--dob", help="The date of birth, e.g. 14/02/1990.")] = None,
    pnc: Annotated[Optional[str], typer.Option("--pnc", help="The PNC ID, YYYY/NNNNNNNC or YY/NNNNNNC.")] = None,
    gender: Annotated[Optional[str], typer.Option("--gender", help="M, F, X (other) or U (not stated).")] = None,
    ethnicity: Annotated[Optional[str], typer.Option("--ethnicity", help="Self-defined code (W1…O9, NS).")]
    = None,
):
    """Correct a person's details, with a reason; the old values stay in the audit log.

    Example: diversion amend person P-000123 --surname Smyth --reason "spelling confirmed from passport"
    """
    from diversion_cli import admin

    result = admin.amend_person(ctx.obj, person, reason, surname=surname, forename=forename, dob=dob, pnc=pnc,
                                gender=gender, ethnicity=ethnicity)
    output.emit(f"{result['person_id']} amended ({', '.join(result['changed'])}): {result['reason']}")


_GLOBAL_OPTIONS_WITH_VALUE = ("--db", "--officer", "--config")


def _keep_only_invoked_command(argv: list[str]) -> None:
    """Typer builds every command's parameters at start-up (~1 ms per command
    here); the custody desk runs one command, so register only that one.
    Anything unusual (help, a typo, no command) keeps the full app."""
    tokens = iter(argv)
    for token in tokens:
        if token in _GLOBAL_OPTIONS_WITH_VALUE:
            next(tokens, None)
        elif token.startswith("-"):
            if token in ("--help", "--version"):
                return
        else:
            commands = [c for c in app.registered_commands if (c.name or c.callback.__name__) == token]
            groups = [g for g in app.registered_groups if g.name == token]
            if commands or groups:
                app.registered_commands[:] = commands
                app.registered_groups[:] = groups
            return


def main() -> None:
    _keep_only_invoked_command(sys.argv[1:])
    try:
        app(prog_name="diversion")
    except OSError as exc:  # help or usage text written to a full stdout, before any command ran
        _unwritable_stdout(exc)
    except SystemExit:
        # what is still buffered for stdout goes out now, where a full disk is a one-line
        # error rather than a traceback from the interpreter's last flush
        try:
            if sys.stdout is not None:  # closed (>&-): nothing to flush
                sys.stdout.flush()
        except BrokenPipeError:
            output.discard_stdout()
        except OSError as exc:
            _unwritable_stdout(exc)
        raise


def _unwritable_stdout(exc: OSError) -> None:
    output.discard_stdout()
    sys.stderr.write(f"error: stdout: cannot write the output ({exc.strerror or exc}); it is incomplete\n")
    raise SystemExit(2) from None
