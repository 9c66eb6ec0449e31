"""Rendering a report as a Rich table, JSON, CSV or Markdown, with small-count
suppression applied the same way in every format."""

from __future__ import annotations

import csv
import io
import json
import re

from diversion_cli import suppression
from diversion_cli.errors import BadInput
from diversion_cli.reports import Change, Money, Rate, RelativeRate, Table, sparkline
from diversion_cli.values import spreadsheet_safe

FORMATS = ("table", "json", "csv", "markdown", "html", "pdf")
EXTENSIONS = {".json": "json", ".csv": "csv", ".md": "markdown", ".markdown": "markdown", ".html": "html",
              ".htm": "html", ".pdf": "pdf"}
CURRENCY_SIGNS = {"GBP": "£", "EUR": "€", "USD": "$"}
WITHHELD = "*"


def format_for(path) -> str:
    """The format an --output file's extension asks for; the terminal table for anything else."""
    return EXTENSIONS.get(path.suffix.lower(), "table") if path else "table"


class Suppressor:
    """Counts below `threshold` (and any rate or figure built on one) become '<N'; a figure
    from which one could be worked out becomes '*' (suppression.py decides which)."""

    def __init__(self, threshold: int | None, tables: list[Table] = (), meta: dict | None = None, config=None):
        self.threshold = threshold or 0
        self.mark = f"<{self.threshold}"
        self._plan = suppression.plan(tables, meta or {}, self.threshold, config) if self.threshold else None

    def hidden(self, table: Table, row: int, column: str) -> str | None:
        """The mark a cell shows instead of its figure, or None when it is shown."""
        if self._plan is None:
            return None
        state = self._plan.state(table.key, row, column)
        if state == suppression.PRIMARY:
            return self.mark
        if state == suppression.SECONDARY:
            return WITHHELD
        # a cell the plan does not know is judged on its own counts
        value = table.rows[row].get(column)
        if isinstance(value, Rate | Change) and self.hides(*value):
            return self.mark
        if isinstance(value, RelativeRate) and self.hides(*value.group, *value.reference):
            return self.mark
        if isinstance(value, int) and not isinstance(value, bool) and self.hides(value):
            return self.mark
        return None

    def hides(self, *counts: int) -> bool:
        return bool(self.threshold) and any(c < self.threshold for c in counts)

    def cell(self, table: Table, row: int, column: str) -> str:
        value = table.rows[row].get(column)
        if isinstance(value, bool) or value is None:
            return "" if value is None else str(value)
        mark = self.hidden(table, row, column)
        if mark and isinstance(value, int | Rate | RelativeRate | Change | Money):
            return mark
        if isinstance(value, int):
            return f"{value:,}"
        if isinstance(value, Rate):
            return "—" if value.value is None else f"{value.value:.0%} ({value.numerator:,}/{value.denominator:,})"
        if isinstance(value, RelativeRate):
            return "—" if value.value is None else f"{value.value:.2f}"
        if isinstance(value, Change):
            return value.text()
        if isinstance(value, Money):
            return money_text(value)
        return str(value)

    def chart_hidden(self, table: Table, label: str) -> bool:
        """A chart is drawn only when every count in it is shown."""
        column = next((c.key for c in table.columns if c.label == label), None)
        return any(self.hidden(table, i, column) for i in range(len(table.rows)))

    def notes(self, table: Table) -> list[str]:
        """The table's notes, with its charts drawn unless a count in them is withheld."""
        lines = list(table.notes)
        for label, counts in table.charts:
            lines.append(f"{label}: counts suppressed, chart omitted" if self.chart_hidden(table, label)
                         else f"{label}: {sparkline(list(counts))}")
        return lines

    def data(self, table: Table, row: int, column: str):
        """The JSON form: numbers stay numbers unless suppressed."""
        value = table.rows[row].get(column)
        if isinstance(value, bool) or value is None:
            return value
        mark = self.hidden(table, row, column)
        if isinstance(value, int):
            return mark or value
        if isinstance(value, Rate):
            if mark:
                return {"numerator": mark, "denominator": mark, "rate": mark}
            return {"numerator": value.numerator, "denominator": value.denominator,
                    "rate": None if value.value is None else round(value.value, 4)}
        if isinstance(value, RelativeRate):
            return mark or (None if value.value is None else round(value.value, 4))
        if isinstance(value, Change):
            return mark or value.text()
        if isinstance(value, Money):
            return {"amount": mark or round(value.amount, 2), "currency": value.currency}
        return value


def money_text(value: Money) -> str:
    sign = CURRENCY_SIGNS.get(value.currency, value.currency + " ")
    return f"-{sign}{-value.amount:,.0f}" if value.amount < 0 else f"{sign}{value.amount:,.0f}"


def render(tables: list[Table], fmt: str, meta: dict, suppress: int | None, config=None) -> str | bytes:
    """The report in `fmt`: text, or a PDF's bytes."""
    if fmt == "pdf":
        return _pdf(render(tables, "html", meta, suppress, config))
    if suppress:
        tables = suppression.complete(tables, meta, config)
    s = Suppressor(suppress, tables, meta, config)
    if fmt == "json":
        return json.dumps({**{k: v for k, v in meta.items() if k != "officers_on_record"}, "suppress_below": suppress,
                           "tables": [{"key": t.key, "title": t.title,
                                       "columns": [{"key": c.key, "label": c.label} for c in t.columns],
                                       "rows": [{c.key: s.data(t, i, c.key) for c in t.columns}
                                                for i in range(len(t.rows))],
                                       "notes": s.notes(t)} for t in tables]},
                          ensure_ascii=False, indent=2) + "\n"
    if fmt == "csv":
        return _csv(tables, s)
    if fmt == "markdown":
        return _markdown(tables, meta, s)
    if fmt == "html":
        from diversion_cli import report_html

        return report_html.render(tables, meta, s, config)
    return _rich(tables, meta, s)


def _pdf(page: str) -> bytes:
    """The HTML page printed to PDF by WeasyPrint (the optional `pdf` extra)."""
    try:
        import weasyprint
    except ImportError:
        raise BadInput("format", "pdf needs WeasyPrint: pip install 'diversion[pdf]' (or print the html "
                                 "page to PDF: see the README)") from None
    return weasyprint.HTML(string=page).write_pdf()


def _heading(meta: dict, suppress_mark: str | None) -> list[str]:
    lines = [f"Diversion report — {meta['period']['label']} ({meta['period']['from']} to {meta['period']['to']})"]
    detail = [f"scheme: {meta['scheme'] or 'all'}", f"generated {meta['generated_at']}",
              f"config {meta['config_fingerprint']}"]
    if suppress_mark:
        detail.append(f"counts below {suppress_mark[1:]} shown as {suppress_mark}, and figures they could be "
                      f"worked out from as {WITHHELD}")
    lines.append("; ".join(detail))
    return lines


def _csv(tables: list[Table], s: Suppressor) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["table", "row", "column", "value", "numerator", "denominator"])
    for t in tables:
        labels = t.labels
        for i, row in enumerate(t.rows):
            name = " / ".join(str(row.get(k, "")) for k in labels)
            for c in t.columns:
                if c.key in labels:
                    continue
                value = row.get(c.key)
                num = den = ""
                if isinstance(value, Rate) and not s.hidden(t, i, c.key):
                    num, den = value.numerator, value.denominator
                cell = s.data(t, i, c.key)
                if isinstance(cell, dict):
                    cell = cell.get("rate", cell.get("amount"))
                writer.writerow([t.key, spreadsheet_safe(name), c.label,
                                 "" if cell is None else spreadsheet_safe(cell), num, den])
    return out.getvalue()


# what a Markdown renderer would run or misread: HTML (a tag, comment or autolink starts with
# '<' and a letter, '/', '!' or '?'), entities, a link or image ("]("), emphasis and code marks,
# and the cell separator
_MD_ACTIVE = re.compile(r"[\\|&*_`]|<(?=[A-Za-z/!?])|\]\(")


def _md_escape(text: str) -> str:
    """Text for a Markdown table cell or line, shown as typed and never run by a renderer."""
    return _MD_ACTIVE.sub(lambda m: _MD_REPLACE[m.group()], text)


_MD_REPLACE = {"\\": "\\\\", "|": "\\|", "&": "&amp;", "<": "&lt;", "](": "]\\(", "*": "\\*", "_": "\\_",
               "`": "\\`"}


def _markdown(tables: list[Table], meta: dict, s: Suppressor) -> str:
    heading = _heading(meta, s.mark if s.threshold else None)
    lines = [f"# {_md_escape(heading[0])}", "", f"_{_md_escape(heading[1])}_", ""]
    for t in tables:
        lines += [f"## {_md_escape(t.title)}", "", "| " + " | ".join(_md_escape(c.label) for c in t.columns) + " |",
                  "|" + "|".join("---" for _ in t.columns) + "|"]
        for i in range(len(t.rows)):
            lines.append("| " + " | ".join(_md_escape(s.cell(t, i, c.key)) for c in t.columns) + " |")
        if not t.rows:
            lines.append("| " + " | ".join("—" for _ in t.columns) + " |")
        lines.append("")
        lines += [f"_{_md_escape(n)}_" for n in s.notes(t)]
        lines.append("")
    return "\n".join(lines)


def _rich(tables: list[Table], meta: dict, s: Suppressor) -> str:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table as RichTable

    import os
    import sys

    color = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    # a terminal gets its own width; a file or pipe gets room for every column unwrapped
    width = _terminal_width() if sys.stdout.isatty() else 200
    console = Console(file=io.StringIO(), width=width, force_terminal=color, no_color=not color, highlight=False)
    heading = _heading(meta, s.mark if s.threshold else None)
    console.print(escape(heading[0]), style="bold")
    console.print(escape(heading[1]))
    for t in tables:
        rich_table = RichTable(title=escape(t.title), title_justify="left", title_style="bold")
        labels = set(t.labels)
        for c in t.columns:
            rich_table.add_column(escape(c.label), justify="left" if c.key in labels else "right")
        for i in range(len(t.rows)):
            rich_table.add_row(*(escape(s.cell(t, i, c.key)) for c in t.columns))
        console.print()
        console.print(rich_table)
        for note in s.notes(t):
            console.print(escape(note), style="dim")
    return console.file.getvalue()


def _terminal_width() -> int:
    import shutil

    return shutil.get_terminal_size((120, 40)).columns
