"""--help everywhere (issue 13, item 11): flags shown as flags, arguments without braces,
every option described, every command and group with an example; usage errors in our words,
one line; shell completion answers."""

from __future__ import annotations

import os
import re

import pytest
import typer

from typer.testing import CliRunner

from helpers import sub
from diversion_cli.cli import app


def run(*args: str):
    """In-process, under the program's own name (as the usage lines and hints give it)."""
    return CliRunner().invoke(app, list(args), prog_name="diversion", catch_exceptions=False)


def _every_command() -> list[list[str]]:
    """The command path of the top level, every group and every command."""
    root = typer.main.get_command(app)
    found = []

    def walk(command, path):
        found.append(path)
        ctx = command.make_context("diversion", [], resilient_parsing=True)
        for name in getattr(command, "list_commands", lambda _: [])(ctx):
            walk(command.get_command(ctx, name), [*path, name])

    walk(root, [])
    return found


COMMANDS = _every_command()


@pytest.mark.no_database
@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "diversion")
def test_help_shows_flags_as_flags_and_describes_every_option_with_an_example(path):
    result = run(*path, "--help")
    assert result.exit_code == 0, result.stderr
    page = result.stdout
    assert re.search(r"^Example: .*diversion ", page, re.M), page
    usage = page.splitlines()[0]
    assert usage.startswith("Usage: diversion") and "{" not in usage and "<" not in usage
    assert not re.search(r"<(bool|str|int|list\[str\]|path)>", page), page
    arguments = page.split("Arguments:\n", 1)[1].split("\n\n", 1)[0] if "Arguments:" in page else ""
    for row in filter(None, re.split(r"\n(?=  \S)", arguments)):
        assert len(row.replace("[required]", "").split()) > 1, f"undescribed: {row}"
    options = page.split("Options:\n", 1)[1].split("\n\nCommands:", 1)[0]
    for row in re.split(r"\n(?=  -)", options):         # an option with its description (maybe below it)
        label, _, text = row.strip().partition("  ")
        assert text.strip(), f"undescribed: {row}"
    assert "--json <bool>" not in page and "Input should" not in page


@pytest.mark.no_database
def test_a_boolean_option_reads_as_a_flag():
    page = run("record", "--help").stdout
    assert re.search(r"^  --refer {2,}Offer the diversion", page, re.M)
    assert re.search(r"^  --dob DATE {2,}Date of birth", page, re.M)


@pytest.mark.no_database
@pytest.mark.parametrize("args, expected", [
    (("audit", "log", "--limit", "0"), "error: --limit: must be 1 or more (see `diversion audit log --help`)"),
    (("referrals", "--due-within", "soon"), "error: --due-within: must be a whole number"),
    (("report", "--suppress", "0"), "error: --suppress: must be 1 or more"),
    (("record", "--bogus"), "error: --bogus: no such option (see `diversion record --help`)"),
    (("record", "--refr"), "error: --refr: no such option (did you mean --refer?)"),
    (("--bogus",), "error: --bogus: no such option (see `diversion --help`)"),
    (("refer",), "error: INCIDENT_ID: is required (see `diversion refer --help`)"),
    (("letter", "R-2026-000001"), "error: --kind: is required"),
    (("nosuch",), "error: no such command 'nosuch'"),
    (("audit", "log", "--limit"), "error: --limit: needs a value"),
    (("schemes", "extra"), "error: extra: not expected here (see `diversion schemes --help`)"),
])
def test_usage_errors_are_one_line_in_our_words(args, expected):
    result = run(*args)
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(expected), result.stderr
    assert "Input should" not in result.stderr and "╭" not in result.stderr and result.stdout == ""


@pytest.mark.no_database
def test_shell_completion_answers_commands_and_options():
    env = {**os.environ, "_DIVERSION_COMPLETE": "complete_bash", "COMP_WORDS": "diversion ref", "COMP_CWORD": "1"}
    commands = sub(env=env, script=True)
    assert commands.returncode == 0, commands.stderr
    assert commands.stdout.split() == ["refer", "referral", "referrals"]
    env.update(COMP_WORDS="diversion record --su", COMP_CWORD="2")
    options = sub(env=env, script=True)
    assert set(options.stdout.split()) == {"--surname", "--substance", "--supply-suspected", "--supervisor"}
    env.update(COMP_WORDS="diversion outcome R-2026-000001 c", COMP_CWORD="3")
    assert sub(env=env, script=True).stdout.split() == ["completed"]
    env.update(COMP_WORDS="diversion letter R-2026-000001 --kind ", COMP_CWORD="4")
    assert sub(env=env, script=True).stdout.split() == ["offer", "completion", "failure"]
    env = {**os.environ, "_DIVERSION_COMPLETE": "source_bash"}
    script = sub(env=env, script=True)
    assert script.returncode == 0 and "complete -o default -F" in script.stdout and "diversion" in script.stdout
