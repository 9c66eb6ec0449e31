"""In the coordinator's office and everywhere (issue 13): letters a member of the public can
read, and a config's syntax error named by its line."""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import as_json, assert_one_line_error, record, refer, run


def _contract_referral() -> str:
    made = record("--scheme", "checkpoint", substance="mandy")
    assert run("record", "--person", made["person_id"], "--substance", "weed", "--substance", "ghb",
               "--when", "2026-11-30 01:00", "--not-duplicate").exit_code == 0
    return refer("I-000002", "--scheme", "checkpoint")["id"]


def _paragraphs(text: str) -> list[str]:
    return [p for p in text.split("\n\n") if p.strip()]


def test_offer_letter_says_conditions_in_plain_words_and_wraps_its_paragraphs(db_path):
    referral = _contract_referral()
    result = run("letter", referral, "--kind", "offer")
    assert result.exit_code == 0, result.stderr
    text = result.stdout
    for key in ("no-reoffend", "drug-awareness", "navigator-meetings"):
        assert key not in text
    assert all(len(line) <= 72 for line in text.splitlines()), text
    flowing = " ".join(text.split())
    assert "Meet the navigator as arranged throughout the contract: until the contract ends on" in flowing
    assert "Attend a drug awareness session arranged by the navigator: by " in flowing
    assert "found in possession of cannabis and GHB / GBL." in flowing     # labels read as written
    for paragraph in _paragraphs(text)[1:]:             # after the letterhead, every line is filled
        lines = paragraph.splitlines()
        if lines[0].startswith("  - "):
            continue
        for line, following in zip(lines, lines[1:]):
            assert len(line) + 1 + len(following.split()[0]) > 72, paragraph


def test_html_letter_has_whole_paragraphs_and_a_list_without_line_breaks(db_path, tmp_path):
    referral = _contract_referral()
    target = tmp_path / "offer.html"
    assert run("letter", referral, "--kind", "offer", "--output", str(target)).exit_code == 0
    page = target.read_text(encoding="utf-8")
    assert "<br" not in page
    assert re.search(r"<p>On [^<]* you were found in possession of cannabis and GHB / GBL\. Instead of "
                     r"prosecution, [^<]*</p>", page)
    items = re.findall(r"<li>([^<]*)</li>", page)
    assert len(items) == 4 and items[0].startswith("Sign a 4-month contract")
    assert not any(key in page for key in ("no-reoffend", "drug-awareness", "navigator-meetings"))


def test_failure_letter_names_the_broken_condition_in_words_not_its_key(db_path):
    referral = _contract_referral()
    assert run("outcome", referral, "accepted").exit_code == 0
    assert run("condition", referral, "navigator-meetings", "breached", "--note", "missed three").exit_code == 0
    text = run("letter", referral, "--kind", "failure").stdout
    flowing = " ".join(text.split())
    assert "navigator-meetings" not in text and "missed three" not in text
    assert "you did not keep the condition “Meet the navigator as arranged throughout the contract”" in flowing
    page = run("letter", referral, "--kind", "failure", "--format", "html").stdout
    assert "<br" not in page and "navigator-meetings" not in page


def test_a_workshop_failure_gives_the_officers_reason(db_path):
    made = record("--refer")
    referral = made["referral_id"]
    assert run("outcome", referral, "accepted").exit_code == 0
    assert run("outcome", referral, "failed", "--reason", "did not attend the workshop").exit_code == 0
    flowing = " ".join(run("letter", referral, "--kind", "failure").stdout.split())
    assert "was not completed (recorded on" in flowing and ": did not attend the workshop)." in flowing


def test_a_toml_syntax_error_names_its_line(db_path, tmp_path):
    config = tmp_path / "force.toml"
    config.write_text('[force]\nname = "Avon"\n\n[costs]\nprosecution = 2280\ncaution = = 390\n', encoding="utf-8")
    result = run("--config", str(config), "schemes")
    assert result.exit_code == 2
    assert_one_line_error(result, f"config: {config}:6:")
    unclosed = tmp_path / "unclosed.toml"
    unclosed.write_text('[force]\nname = "Avon\n', encoding="utf-8")
    result = run("--config", str(unclosed), "schemes")
    assert result.exit_code == 2
    assert_one_line_error(result, f"config: {unclosed}:2:")


# ---- any force's template: paragraphs reflow, nothing is lost -------------------------------------

WORD = st.text("abcdefghijklmnopqrstuvwxyzé", min_size=1, max_size=14)
LINE = st.lists(WORD, min_size=1, max_size=12).map(" ".join)
PARAGRAPH = st.one_of(
    st.lists(LINE, min_size=1, max_size=5).map(lambda lines: ("p", lines)),          # wrapped by hand
    st.lists(LINE, min_size=1, max_size=4).map(lambda items: ("ul", items)))         # "- " list items


def _an_offer() -> str:
    """The id of an offered referral, made the first time it is asked for."""
    offered = as_json(run("referrals", "--json"))
    return offered[0]["id"] if offered else record("--refer")["referral_id"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(blocks=st.lists(PARAGRAPH, min_size=1, max_size=5))
def test_any_template_reflows_without_losing_a_word(db_path, tmp_path, blocks):
    referral_id = _an_offer()
    template = "\n\n".join("\n".join(lines) if kind == "p" else "\n".join(f"- {item}" for item in lines)
                           for kind, lines in blocks)
    config = tmp_path / "letters.toml"
    config.write_text("[letters]\noffer = '''\n" + template + "\n'''\n", encoding="utf-8")
    text = run("--config", str(config), "letter", referral_id, "--kind", "offer")
    assert text.exit_code == 0, text.stderr
    body = text.stdout.split("\n\n", 1)[1]                                # after the letterhead
    assert all(len(line) <= 72 for line in body.splitlines())
    expected = [w for _, lines in blocks for line in lines for w in line.split()]
    assert [w for w in body.split() if w != "-"] == expected             # every word, in order
    assert body.strip().count("\n\n") == len(blocks) - 1  # one paragraph or list per block
    page = run("--config", str(config), "letter", referral_id, "--kind", "offer", "--format", "html").stdout
    assert "<br" not in page
    assert page.count("<p>") == 2 + sum(1 for kind, _ in blocks if kind == "p")   # letterhead: name, date
    assert page.count("<li>") == sum(len(lines) for kind, lines in blocks if kind == "ul")
