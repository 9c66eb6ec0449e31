"""`report --format html` (and the format an --output file's extension asks for).

The page's figures are read back the way a person or a screen reader meets them (the text
of each table cell, each chart mark and its label) and compared with the JSON format's
figures for the same report on the fixture of test_reports.py.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from helpers import assert_one_line_error, run
from test_reports import FULL_RANGE, fixture_db  # noqa: F401 (a fixture)

ROOT = Path(__file__).resolve().parent.parent


class Page(HTMLParser):
    """Every element with a data-cell attribute, with its attributes and its text."""

    def __init__(self, text: str):
        super().__init__()
        self.cells: list[dict] = []   # table cells: {"cell", "text"}
        self.marks: list[dict] = []   # chart marks: the attributes of the SVG element
        self.descs: list[str] = []
        self._open: list = []
        self._desc = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "desc":
            self._desc = True
            self.descs.append("")
        if "data-cell" in attrs:
            if tag == "td":
                self._open.append({"cell": attrs["data-cell"], "text": ""})
            else:
                self.marks.append({"tag": tag, **attrs})

    def handle_endtag(self, tag):
        if tag == "td" and self._open:
            self.cells.append(self._open.pop())
        if tag == "desc":
            self._desc = False

    def handle_data(self, data):
        if self._open:
            self._open[-1]["text"] += data
        if self._desc:
            self.descs[-1] += data


def html_and_json(*args: str) -> tuple[str, dict]:
    page = run("report", "--format", "html", *args)
    assert page.exit_code == 0, page.stderr
    data = run("report", "--format", "json", *args)
    assert data.exit_code == 0, data.stderr
    return page.stdout, json.loads(data.stdout)


def json_cell(report: dict, cell: str):
    key, row, column = cell.split("/")
    table = next(t for t in report["tables"] if t["key"] == key)
    return table["rows"][int(row)][column]


def number(text: str) -> float:
    return float(text.replace(",", "").replace("£", ""))


def assert_text_matches(text: str, value) -> None:
    """A table cell's text says what the JSON value says."""
    if isinstance(value, dict) and "numerator" in value:
        if isinstance(value["rate"], str):
            assert text == value["rate"]
        elif value["rate"] is None:
            assert text == "—"
        else:
            found = re.fullmatch(r"(\d+)% \(([\d,]+)/([\d,]+)\)", text)
            assert found, text
            assert (number(found[2]), number(found[3])) == (value["numerator"], value["denominator"])
            assert abs(int(found[1]) - 100 * value["rate"]) <= 0.5 + 1e-9
    elif isinstance(value, dict) and "amount" in value:
        assert text == value["amount"] if isinstance(value["amount"], str) else \
            abs(number(text) - value["amount"]) <= 0.5
    elif isinstance(value, bool) or value is None:
        assert text == ("" if value is None else str(value))
    elif isinstance(value, int):
        assert number(text) == value
    elif isinstance(value, float):  # a relative rate index, shown to 2 places
        assert abs(number(text) - value) <= 0.005 + 1e-4
    else:
        assert text == value


@pytest.mark.parametrize("suppress", [None, "5"])
@pytest.mark.parametrize("by", ["age_band", "scheme"])
def test_every_figure_in_the_page_is_the_jsons(fixture_db, by, suppress):
    args = [*FULL_RANGE, "--by", by, *(["--suppress", suppress] if suppress else [])]
    text, report = html_and_json(*args)
    page = Page(text)
    figures = sum(1 for t in report["tables"] for row in t["rows"]
                  for key, value in row.items() if key not in _labels(t))
    assert len(page.cells) == figures  # every figure of the JSON is in a table of the page
    for cell in page.cells:
        assert_text_matches(cell["text"].strip(), json_cell(report, cell["cell"]))
    assert page.marks
    for mark in page.marks:
        value = json_cell(report, mark["data-cell"])
        if "data-value" not in mark:  # drawn as withheld or not yet observed: no size, no position
            assert value in ("<5", "*", "not yet", None) or (
                isinstance(value, dict) and value["rate"] in ("<5", "*", None)), (mark, value)
            continue
        drawn = float(mark["data-value"])
        if isinstance(value, dict):
            assert abs(drawn - 100 * value["rate"]) <= 0.05, (mark, value)
        else:
            assert abs(drawn - value) <= 1e-4, (mark, value)


def _labels(table: dict) -> set:
    """The columns that name a row (the text ones the page puts in row headers)."""
    names = {"measure", "group", "dimension", "code", "meaning", "cohort", "month", "item"}
    return {c["key"] for c in table["columns"] if c["key"] in names}


def test_bar_lengths_are_in_proportion_to_their_figures(fixture_db):
    text, _ = html_and_json(*FULL_RANGE, "--by", "age_band")
    checked = 0
    for svg in re.findall(r"<svg viewBox.*?</svg>", text, re.S):
        bars = [(float(w), float(v)) for w, v in re.findall(r'<rect class="bar" [^>]*\swidth="([\d.]+)"[^>]*data-value="([\d.]+)"',
                                                             svg)]
        ratios = {round(w / v, 1) for w, v in bars if v}
        assert len(ratios) <= 1, (ratios, svg[:200])
        checked += len(bars)
    assert checked > 20


def test_suppression_holds_in_the_charts(fixture_db):
    text, report = html_and_json(*FULL_RANGE, "--by", "age_band", "--suppress", "5")
    page = Page(text)
    withheld = [m for m in page.marks if "data-value" not in m and json_cell(report, m["data-cell"]) != "not yet"]
    assert withheld
    for mark in withheld:
        # one hatched box of one size, wherever the hidden figure would have been
        assert mark["tag"] == "rect" and re.fullmatch(r"url\(#[\w-]+-withheld\)", mark["fill"])
        assert mark["width"] in ("18", "10", "8"), mark
    assert any("<5" in d for d in page.descs)          # the text alternative says what the mark says
    assert "▁" not in text and "counts suppressed, chart omitted" not in text  # no terminal sparklines


def test_the_page_stands_alone(fixture_db):
    text, _ = html_and_json(*FULL_RANGE)
    assert text.startswith("<!DOCTYPE html>")
    lowered = text.lower()
    for needle in ("<script", "http://", "https://", " src=", "<link", "@import", "@font-face"):
        assert needle not in lowered, needle
    for target in re.findall(r"url\(([^)]*)\)", text):  # only a chart's own hatching
        assert re.fullmatch(r"#[\w-]+-withheld", target) and f'id="{target[1:]}"' in text, target
    assert '<html lang="en-GB">' in text
    # every chart (six without a breakdown) has a title and a description for screen readers,
    # and a caption
    assert text.count('role="img"') == text.count("<desc ") == text.count("<figcaption>") == 6


def test_marking_and_force_name_come_from_the_config(fixture_db, tmp_path):
    config = tmp_path / "force.toml"
    config.write_text('[force]\nname = "Avon & <Somerset> Constabulary"\nmarking = "OFFICIAL"\n')
    result = run("--config", config, "report", *FULL_RANGE, "--format", "html")
    assert result.exit_code == 0, result.stderr
    assert "Avon &amp; &lt;Somerset&gt; Constabulary" in result.stdout
    assert '<p class="marking">OFFICIAL</p>' in result.stdout
    assert '@top-center { content: "OFFICIAL"' in result.stdout
    config.write_text('[force]\nname = "Avon and Somerset Constabulary"\nmarking = ""\n')
    result = run("--config", config, "report", *FULL_RANGE, "--format", "html")
    assert 'class="marking"' not in result.stdout and "@top-center" not in result.stdout


def test_default_marking_is_official_sensitive(fixture_db):
    text, _ = html_and_json(*FULL_RANGE)
    assert text.count('<p class="marking">OFFICIAL-SENSITIVE</p>') == 2  # top and foot


def test_a_marking_that_is_not_text_is_refused(fixture_db, tmp_path):
    config = tmp_path / "force.toml"
    config.write_text("[force]\nmarking = 3\n")
    result = run("--config", config, "report", *FULL_RANGE, "--format", "html")
    assert result.exit_code == 2
    assert "force.marking must be text" in result.stderr and "force.toml:2" in result.stderr


# ---- the format from --output's extension; --by once -------------------------------------------

@pytest.mark.parametrize("name, start", [("r.json", "{"), ("r.csv", "table,row,column"), ("r.md", "# Diversion"),
                                         ("r.HTML", "<!DOCTYPE html>"), ("r.txt", "Diversion report")])
def test_output_extension_picks_the_format(fixture_db, name, start):
    out = fixture_db / name
    result = run("report", *FULL_RANGE, "--output", out)
    assert result.exit_code == 0, result.stderr
    assert out.read_text(encoding="utf-8").startswith(start)


def test_format_given_wins_over_the_extension(fixture_db):
    out = fixture_db / "r.json"
    assert run("report", *FULL_RANGE, "--output", out, "--format", "csv").exit_code == 0
    assert out.read_text(encoding="utf-8").startswith("table,row,column")


def test_a_repeated_by_is_refused(fixture_db):
    result = run("report", *FULL_RANGE, "--by", "gender", "--by", "age_band")
    assert result.exit_code == 2
    assert_one_line_error(result, "by")
    assert "give one dimension, not 2 (gender, age_band)" in result.stderr
    assert result.stdout == ""


# ---- in a real browser ----------------------------------------------------------------------

@pytest.mark.skipif(not (shutil.which("chromium") or shutil.which("chromium-browser")),
                    reason="needs Debian's chromium (apt-get install chromium); CI machines do not have it")
def test_the_page_renders_in_chromium_within_the_printable_width(fixture_db):
    page = fixture_db / "report.html"
    assert run("report", *FULL_RANGE, "--by", "location", "--suppress", "5", "--output", page).exit_code == 0
    shot = fixture_db / "report.png"
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "check_report_html.py"), str(page),
                             "--screenshot", str(shot)], capture_output=True, text=True, timeout=300)
    found = json.loads(result.stdout)
    assert found["ok"], found["problems"]
    assert result.returncode == 0
    assert shot.stat().st_size > 10_000


# ---- PDF --------------------------------------------------------------------------------------

def _has_weasyprint() -> bool:
    try:
        import weasyprint  # noqa: F401
    except (ImportError, OSError):  # OSError: installed without the system's Pango
        return False
    return True


@pytest.mark.skipif(_has_weasyprint(), reason="WeasyPrint is installed here")
def test_pdf_without_its_extra_says_how_to_get_it(fixture_db):
    out = fixture_db / "r.pdf"
    result = run("report", *FULL_RANGE, "--output", out)
    assert result.exit_code == 2
    assert_one_line_error(result, "format")
    assert "pip install 'diversion[pdf]'" in result.stderr
    assert not out.exists()


@pytest.mark.skipif(not _has_weasyprint(), reason="needs the pdf extra (WeasyPrint); CI does not install it")
def test_pdf_is_the_page_printed(fixture_db):
    out = fixture_db / "r.pdf"
    result = run("report", *FULL_RANGE, "--suppress", "5", "--output", out)
    assert result.exit_code == 0, result.stderr
    data = out.read_bytes()
    assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF") and len(data) > 20_000
    assert (out.stat().st_mode & 0o777) == 0o600
