"""`--help` and usage errors in the house style: plain text, flags shown as flags, values
named for what they are (DATE, COLLAR, FILE), every paragraph wrapped to the terminal and
examples kept whole; and a usage error as one `error: FIELD: problem` line, in our words
rather than Typer's or pydantic's ("Input should be greater than or equal to 1")."""

from __future__ import annotations

import re
import shutil
import textwrap

import typer

MAX_WIDTH = 100
OPTION_COLUMN = 30  # options longer than this put their description on the next line
# What a value is, by option name, wherever the option appears (an option's own metavar wins).
METAVARS = {
    "--db": "FILE", "--config": "FILE", "--output": "FILE", "--anchors": "FILE", "--append-to": "FILE",
    "--officer": "COLLAR", "--supervisor": "COLLAR", "--person": "PERSON_ID", "--confirm": "PERSON_ID",
    "--referral": "REFERRAL_ID", "--surname": "NAME", "--forename": "NAME", "--dob": "DATE", "--pnc": "PNC_ID",
    "--gender": "M|F|X|U", "--ethnicity": "CODE", "--when": "DATETIME", "--appointment": "DATETIME",
    "--since": "DATE", "--from": "DATE", "--to": "DATE", "--month": "MONTH", "--substance": "NAME",
    "--scheme": "KEY", "--status": "STATUS", "--by": "DIMENSION", "--kind": "offer|completion|failure",
    "--limit": "N", "--due-within": "DAYS", "--suppress": "N", "--format": "FORMAT",
}
# Options declared as lists only so that a second one is refused in our words (a plain option
# would keep the last silently): one value each, so not "repeatable".
ONE_VALUE = {"--by"}


def render(command, ctx: typer.Context) -> str:
    """The whole help page of a command or group."""
    width = max(60, min(MAX_WIDTH, shutil.get_terminal_size((80, 24)).columns))
    parts = [f"Usage: {ctx.command_path} {' '.join(_usage_pieces(command, ctx))}"]
    parts += [_paragraph(p, width) for p in (command.help or "").split("\n\n") if p.strip()]
    params = [p for p in command.get_params(ctx) if not getattr(p, "hidden", False)]
    arguments = [p for p in params if p.param_type_name == "argument"]
    options = [p for p in params if p.param_type_name == "option"]
    if arguments:
        parts.append("Arguments:\n" + "\n".join(_row(p.metavar or p.name.upper(), _described(p), width)
                                                 for p in arguments))
    if options:
        parts.append("Options:\n" + "\n".join(_row(_option_label(p), _described(p), width) for p in options))
    commands = getattr(command, "list_commands", None)
    if commands:
        listed = [(name, command.get_command(ctx, name)) for name in commands(ctx)]
        listed = [(name, sub) for name, sub in listed if sub is not None and not sub.hidden]
        column = max(len(name) for name, _ in listed) + 4
        parts.append("Commands:\n" + "\n".join(_row(name, _first_sentence(sub.help or ""), width, column)
                                                for name, sub in listed))
    return "\n\n".join(parts) + "\n"


def _usage_pieces(command, ctx: typer.Context) -> list[str]:
    pieces = ["[OPTIONS]"]
    for p in command.get_params(ctx):
        if p.param_type_name == "argument":
            name = p.metavar or p.name.upper()
            pieces.append(name if p.required else f"[{name}]")
    if hasattr(command, "list_commands"):
        pieces.append("COMMAND [ARGS]...")
    return pieces


def _paragraph(text: str, width: int) -> str:
    """Docstring paragraphs are re-wrapped; an example is a command line, kept whole on its own line."""
    words, *examples = " ".join(text.split()).split("Example: ")
    blocks = [textwrap.fill(words, width)] if words.strip() else []
    if examples:
        blocks.append("\n".join(f"Example: {example.strip()}" for example in examples))
    return "\n\n".join(blocks)


def _first_sentence(text: str) -> str:
    first = " ".join(text.split("\n\n")[0].split())
    end = re.search(r"\.(\s|$)", first)
    return first[:end.start()] if end else first


def _option_label(p) -> str:
    names = ", ".join(p.opts)
    if p.secondary_opts:
        return f"{names} / {', '.join(p.secondary_opts)}"
    if p.is_flag:
        return names
    return f"{names} {p.metavar or _metavar(p)}"


def _metavar(p) -> str:
    if p.opts[0] in METAVARS:
        return METAVARS[p.opts[0]]
    annotation = p.type_descriptor.annotation
    if annotation is int:
        return "N"
    if getattr(annotation, "__name__", "") in ("Path", "PosixPath", "WindowsPath"):
        return "FILE"
    return "TEXT"


def _described(p) -> str:
    notes = []
    if getattr(p, "multiple", False) and not set(p.opts) & ONE_VALUE:
        notes.append("repeatable")
    default = p.default
    if default not in (None, False, (), []) and not callable(default) and p.param_type_name == "option" \
            and not p.is_flag:
        notes.append(f"default: {default}")
    if getattr(p, "show_envvar", False) and p.envvar:
        notes.append(f"env: {p.envvar}")
    if p.required:
        notes.append("required")
    text = " ".join((p.help or "").split())
    return f"{text} [{'; '.join(notes)}]" if notes else text


def _row(label: str, text: str, width: int, column: int = OPTION_COLUMN) -> str:
    indent = " " * (column + 2)
    lines = textwrap.wrap(text, width - len(indent), break_on_hyphens=False) or [""]
    if len(label) + 2 <= column:
        first = f"  {label:<{column - 2}}  {lines[0]}".rstrip()
        rest = lines[1:]
    else:
        first, rest = f"  {label}", lines
    return "\n".join([first] + [indent + line for line in rest])


# ---- usage errors -------------------------------------------------------------------

_OUR_WORDS = (  # what Typer and pydantic say, and what we say instead
    (re.compile(r"Input should be greater than or equal to (\S+)"), r"must be \1 or more"),
    (re.compile(r"Input should be less than or equal to (\S+)"), r"must be \1 or less"),
    (re.compile(r"Input should be greater than (\S+)"), r"must be more than \1"),
    (re.compile(r"Input should be less than (\S+)"), r"must be less than \1"),
    (re.compile(r"Input should be a valid integer.*"), "must be a whole number"),
    (re.compile(r"Input should be a valid number.*"), "must be a number"),
    (re.compile(r"Input should be (.*)"), r"must be \1"),
    (re.compile(r"Option '[^']+' requires (an argument|\d+ arguments)\.?"), "needs a value"),
    (re.compile(r"[Gg]ot unexpected extra argument(?:\(s\)|s)? \((.*)\)"), r"\1: not expected here"),
)


def usage_error(exc) -> str:
    """A usage error from parsing as one line: `FIELD: problem (see `COMMAND --help`)`."""
    ctx = getattr(exc, "ctx", None)
    hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
    param = getattr(exc, "param", None)
    option = getattr(exc, "option_name", None)
    if param is not None:
        field = (param.opts[0] if param.param_type_name == "option" else param.metavar or param.name.upper())
        if hasattr(exc, "param_type"):  # a required option or argument not given
            return f"{field}: is required{hint}"
        return f"{field}: {_in_our_words(exc.message)}{hint}"
    if option is not None and hasattr(exc, "possibilities"):
        close = exc.possibilities
        suggestion = f" (did you mean {', '.join(sorted(close))}?)" if close else hint
        return f"{option}: no such option{suggestion}"
    if option is not None:
        return f"{option}: {_in_our_words(exc.message)}{hint}"
    message = exc.format_message()
    return _in_our_words(message[:1].lower() + message[1:]).rstrip(".") + hint


def _in_our_words(message: str) -> str:
    for pattern, ours in _OUR_WORDS:
        if pattern.search(message):
            return pattern.sub(ours, message)
    return message
