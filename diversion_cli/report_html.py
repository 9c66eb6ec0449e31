"""The report as one self-contained HTML page: charts drawn as inline SVG beside the tables
they come from, readable without scripts or network, and printable on A4.

Charts are written here rather than by a chart library: each is a few bars or lines, and
what matters is ours to get right — a withheld figure drawn as a mark that says nothing of its
size, a reference line at 1, a text alternative, patterns that survive greyscale printing and
no script or remote font in the output (see README, "Reports as a page").
"""

from __future__ import annotations

import html
import re

from diversion_cli.reports import Rate, RelativeRate, Table

# Okabe & Ito's colour-blind-safe palette; each series also has its own dash and marker, and
# the two bar colours differ in lightness, so the charts read in greyscale too
SERIES = (("#0072B2", "", "circle"), ("#E69F00", "6 3", "square"), ("#D55E00", "2 2", "triangle"))
WIDTH, HALF_WIDTH = 640, 400  # a chart's viewBox width across the page and beside a table
LABELS = 150                  # room for category labels left of horizontal bars
WITHHELD_FILL = "url(#withheld)"  # each chart's own hatching (see _svg)
PRINTABLE_WIDTH_MM = 180  # A4 (210 mm) less 15 mm margins


def render(tables: list[Table], meta: dict, s, config) -> str:
    force = config.force_name if config else ""
    marking = config.report_marking if config else ""
    period = meta["period"]
    title = f"Drug diversion report — {period['label']}"
    suppressed = (f"Counts below {s.threshold} are shown as {s.mark}; a figure from which one could be worked "
                  f"out is withheld and shown as *." if s.threshold else "")
    body = [f'<p class="marking">{_e(marking)}</p>' if marking else "",
            "<header>",
            f'<p class="force">{_e(force)}</p>' if force else "",
            f"<h1>{_e(title)}</h1>",
            f"<p>Incidents from {_e(period['from'])} to {_e(period['to'])}; scheme: {_e(meta['scheme'] or 'all')}"
            + (f"; by {_e(meta['by'].replace('_', ' '))}" if meta.get("by") else "") + ".</p>",
            f'<p class="meta">Generated {_e(meta["generated_at"])}; configuration {_e(meta["config_fingerprint"])}.'
            + (f" {_e(suppressed)}" if suppressed else "") + "</p>",
            "</header>"]
    for t in tables:
        body.append(_section(t, s))
    if marking:
        body.append(f'<p class="marking">{_e(marking)}</p>')
    return ("<!DOCTYPE html>\n"
            f'<html lang="en-GB"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_e(force + ' — ' if force else '')}{_e(title)}</title>"
            f"<style>{_css(marking)}</style></head>\n<body>\n" + "\n".join(b for b in body if b)
            + "\n</body></html>\n")


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _css(marking: str) -> str:
    margins = ""
    if marking:  # the marking also goes in every printed page's top and bottom margin
        quoted = '"' + re.sub(r'[\\"<>\n]', lambda m: f"\\{ord(m.group()):x} ", marking) + '"'
        margins = "".join(f"@{where} {{ content: {quoted}; font: bold 9pt sans-serif; }} "
                          for where in ("top-center", "bottom-center"))
    return f"""
@page {{ size: A4; margin: 16mm 15mm; {margins}}}
* {{ box-sizing: border-box; }}
body {{ font: 10pt/1.35 "Helvetica Neue", Arial, sans-serif; color: #111; background: #fff;
       max-width: {PRINTABLE_WIDTH_MM}mm; margin: 0 auto; padding: 4mm 0; }}
h1 {{ font-size: 16pt; margin: 0 0 2mm; }}
h2 {{ font-size: 12pt; margin: 0 0 2mm; border-bottom: 1px solid #777; break-after: avoid; }}
p {{ margin: 0 0 2mm; }}
.marking {{ text-align: center; font-weight: bold; letter-spacing: .08em; border: 1px solid #111;
            padding: 1mm; }}
.force {{ font-weight: bold; margin: 0; }}
.meta, .note, figcaption {{ color: #333; font-size: 8.5pt; }}
section {{ margin: 6mm 0; }}
.pair {{ display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 5mm; align-items: start; }}
figure {{ margin: 0 0 2mm; break-inside: avoid; }}
svg {{ width: 100%; height: auto; display: block; }}
table {{ border-collapse: collapse; width: 100%; table-layout: fixed; font-size: 8.5pt; }}
.wide table {{ font-size: 7.5pt; }}
th, td {{ border-bottom: 1px solid #bbb; padding: .6mm 1mm; text-align: right; vertical-align: top;
          overflow-wrap: anywhere; }}
thead th {{ border-bottom: 1.5px solid #111; overflow-wrap: normal; }}
tbody th {{ font-weight: normal; }}
th.label, td.label {{ text-align: left; }}
thead {{ display: table-header-group; }}
tr {{ break-inside: avoid; }}
@media print {{ body {{ padding: 0; }} section {{ break-inside: auto; }} }}
"""


def _section(t: Table, s) -> str:
    chart = _CHARTS.get(t.key)
    wide = len(t.columns) > 4
    # beside a table a chart has half the page, so it is drawn narrower with the same type size
    figure = chart(t, s, WIDTH if wide else HALF_WIDTH) if chart else ""
    table = _table(t, s)
    notes = "".join(f'<p class="note">{_e(n)}</p>' for n in s.notes(t) if not _is_sparkline(n, t))
    if figure and not wide:
        body = f'<div class="pair">{figure}<div>{table}</div></div>'
    else:
        body = figure + f'<div class="{"wide" if wide else ""}">{table}</div>'
    return f'<section id="{_e(t.key)}"><h2>{_e(t.title)}</h2>{body}{notes}</section>'


def _is_sparkline(note: str, t: Table) -> bool:
    """A terminal sparkline note: the page draws the chart itself."""
    return any(note.startswith(f"{label}: ") for label, _ in t.charts)


def _table(t: Table, s) -> str:
    labels = set(t.labels)
    head = "".join(f'<th scope="col" class="{"label" if c.key in labels else ""}">{_e(c.label)}</th>'
                   for c in t.columns)
    rows = []
    for i in range(len(t.rows)):
        cells = []
        for c in t.columns:
            text = _e(s.cell(t, i, c.key))
            if c.key in labels:
                cells.append(f'<th scope="row" class="label">{text}</th>' if c.key == t.labels[0]
                             else f'<td class="label">{text}</td>')
            else:
                cells.append(f'<td data-cell="{_e(t.key)}/{i}/{_e(c.key)}">{text}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    if not t.rows:
        rows.append(f'<tr><td colspan="{len(t.columns)}" class="label">No figures for this period.</td></tr>')
    return (f'<table><caption class="note">{_e(t.title)}: the figures</caption><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>")


# ---- one mark per figure ------------------------------------------------------------------

class Mark:
    """A figure as a chart draws it: its value, or None when withheld or not there yet (then
    only `text`)."""

    def __init__(self, value: float | None, text: str, cell: str, withheld: bool = True):
        self.value, self.text, self.cell, self.withheld = value, text, cell, withheld


def _count(t: Table, s, i: int, column: str) -> Mark:
    value = t.rows[i].get(column)
    hidden = s.hidden(t, i, column)
    if hidden or not isinstance(value, int):
        return Mark(None, hidden or str(value), f"{t.key}/{i}/{column}")
    return Mark(value, f"{value:,}", f"{t.key}/{i}/{column}")


def _percent(t: Table, s, i: int, column: str) -> Mark:
    value = t.rows[i].get(column)
    hidden = s.hidden(t, i, column)
    if hidden:
        return Mark(None, hidden, f"{t.key}/{i}/{column}")
    if not isinstance(value, Rate) or value.value is None:  # no denominator: no rate to draw
        return Mark(None, "—", f"{t.key}/{i}/{column}", withheld=False)
    return Mark(round(100 * value.value, 1), f"{value.value:.0%} ({value.numerator:,}/{value.denominator:,})",
                f"{t.key}/{i}/{column}")


def _ratio(t: Table, s, i: int, column: str) -> Mark:
    value = t.rows[i].get(column)
    hidden = s.hidden(t, i, column)
    if hidden:
        return Mark(None, hidden, f"{t.key}/{i}/{column}")
    if not isinstance(value, RelativeRate) or value.value is None:
        return Mark(None, "—", f"{t.key}/{i}/{column}", withheld=False)
    return Mark(round(value.value, 4), f"{value.value:.2f}", f"{t.key}/{i}/{column}")


# ---- charts ---------------------------------------------------------------------------------

def _figure(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption>{_e(caption)}</figcaption></figure>"


def _svg(title: str, desc: str, width: int, height: float, body: str) -> str:
    """A chart: its title and text alternative, the type set on the chart itself, and its own
    hatching for withheld figures (the same mark whatever the figure is), so that a PDF
    renderer that reads each SVG alone draws it the same."""
    ident = re.sub(r"\W+", "-", title.lower()).strip("-")
    hatching = (f'<defs><pattern id="{ident}-withheld" width="6" height="6" patternUnits="userSpaceOnUse" '
                f'patternTransform="rotate(45)"><rect width="6" height="6" fill="#fff"/>'
                f'<line x1="0" y1="0" x2="0" y2="6" stroke="#666" stroke-width="2"/></pattern></defs>')
    return (f'<svg viewBox="0 0 {width} {height:.0f}" role="img" aria-labelledby="{ident}-t {ident}-d" '
            f'font-family="Helvetica Neue, Arial, sans-serif" font-size="12">'
            f'<title id="{ident}-t">{_e(title)}</title><desc id="{ident}-d">{_e(desc)}</desc>'
            f'{hatching if WITHHELD_FILL in body else ""}'
            f'{body.replace(WITHHELD_FILL, f"url(#{ident}-withheld)")}</svg>')


def _describe(categories: list[str], series: list[tuple[str, list[Mark]]]) -> str:
    parts = []
    for name, marks in series:
        parts.append(f"{name}: " + "; ".join(f"{c} {m.text}" for c, m in zip(categories, marks)) + ".")
    return " ".join(parts)


def _bars(title: str, categories: list[str], series: list[tuple[str, list[Mark]]], width: int, unit: str = "",
          top: float | None = None) -> str:
    """Horizontal bars, one group per category; a withheld figure is a hatched box of one size."""
    shown = [m.value for _, marks in series for m in marks if m.value is not None]
    top = top or max(shown + [1])
    bar, gap = 13, 8
    plot = width - LABELS - 110
    y, out = 22 if len(series) > 1 else 4, []
    if len(series) > 1:  # a legend: colour and name of each series
        for k, (name, _) in enumerate(series):
            x = 4 + k * (width // 2)
            out.append(f'<rect x="{x}" y="4" width="12" height="12" fill="{SERIES[k][0]}" stroke="#111"/>'
                       f'<text x="{x + 16}" y="14">{_e(name)}</text>')
    for c, category in enumerate(categories):
        out.append(f'<text x="{LABELS - 6}" y="{y + bar * len(series) / 2 + 4:.1f}" text-anchor="end">'
                   f"{_e(_short(category))}</text>")
        for k, (name, marks) in enumerate(series):
            m = marks[c]
            if m.value is None and not m.withheld:
                out.append(f'<text x="{LABELS + 4}" y="{y + bar - 3}" data-cell="{_e(m.cell)}">{_e(m.text)}</text>')
            elif m.value is None:
                out.append(f'<rect x="{LABELS}" y="{y}" width="18" height="{bar - 2}" fill="{WITHHELD_FILL}" '
                           f'stroke="#666" data-cell="{_e(m.cell)}"/>'
                           f'<text x="{LABELS + 24}" y="{y + bar - 3}">{_e(m.text)} (withheld)</text>')
            else:
                length = plot * m.value / top if top else 0
                out.append(f'<rect class="bar" x="{LABELS}" y="{y}" width="{length:.1f}" height="{bar - 2}" '
                           f'fill="{SERIES[k][0]}" stroke="#111" stroke-width=".5" data-cell="{_e(m.cell)}" '
                           f'data-value="{m.value:g}"/>'
                           f'<text x="{LABELS + length + 4:.1f}" y="{y + bar - 3}">{_e(m.text)}{unit}</text>')
            y += bar
        y += gap
    out.append(f'<line x1="{LABELS}" y1="{22 if len(series) > 1 else 0}" x2="{LABELS}" y2="{y}" stroke="#111"/>')
    return _svg(title, _describe(categories, series), width, y + 4, "".join(out))


def _short(text: str, limit: int = 24) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _summary_chart(t: Table, s, width: int) -> str:
    wanted = ("Incidents recorded", "Eligible at record", "Offered a diversion", "Accepted", "Completed")
    rows = [i for i, row in enumerate(t.rows) if row["measure"] in wanted]
    marks = [_count(t, s, i, "value") for i in rows]
    names = [t.rows[i]["measure"] for i in rows]
    svg = _bars("From incident to completed diversion", names, [("Incidents", marks)], width)
    return _figure(svg, "Each stage as a bar: how many incidents were eligible, offered a diversion, accepted "
                        "it and completed it. The table gives every count and rate with its numerator and "
                        "denominator.")


def _rates_chart(t: Table, s, width: int) -> str:
    names = [row["group"] for row in t.rows]
    series = [("Take-up", [_percent(t, s, i, "take_up") for i in range(len(t.rows))]),
              ("Completion", [_percent(t, s, i, "completion") for i in range(len(t.rows))])]
    svg = _bars(f"Take-up and completion, {t.title.lower()}", names, series, width, top=100)
    return _figure(svg, "Take-up (accepted of offered) and completion (completed of closed) as percentages, "
                        "on a scale from 0 to 100%.")


def _breakdown_chart(t: Table, s, width: int) -> str:
    names = [row["group"] for row in t.rows]
    series = [("Incidents", [_count(t, s, i, "incidents") for i in range(len(t.rows))]),
              ("Accepted", [_count(t, s, i, "accepted") for i in range(len(t.rows))])]
    svg = _bars(t.title, names, series, width)
    return _figure(svg, f"{t.title}: incidents and diversions accepted in each group.")


def _codes_chart(t: Table, s, width: int) -> str:
    names = [f"{row['code']} {row['meaning']}" for row in t.rows]
    svg = _bars(t.title, names, [("Closed diversions", [_count(t, s, i, "count") for i in range(len(t.rows))])],
                width)
    return _figure(svg, "How closed diversions were recorded, by Home Office outcome code.")


def _equity_chart(t: Table, s, width: int) -> str:
    """Relative rate indices against a reference line at 1 (the White group's rate)."""
    rows = [i for i, row in enumerate(t.rows) if isinstance(row.get("offer_rri"), RelativeRate)]
    names = [t.rows[i]["group"] for i in rows]
    series = [("Offer RRI", [_ratio(t, s, i, "offer_rri") for i in rows]),
              ("Diversion RRI", [_ratio(t, s, i, "divert_rri") for i in rows])]
    shown = [m.value for _, marks in series for m in marks if m.value is not None]
    top = max([2.0] + [v * 1.1 for v in shown])
    plot, step = width - LABELS - 60, 22
    x_of = lambda v: LABELS + plot * v / top  # noqa: E731
    out, y = [], 26
    for k, (name, _) in enumerate(series):
        out.append(_marker(SERIES[k][2], 10 + k * (width // 2), 10, SERIES[k][0])
                   + f'<text x="{20 + k * (width // 2)}" y="14">{_e(name)}</text>')
    for c, name in enumerate(names):
        out.append(f'<text x="{LABELS - 6}" y="{y + 4}" text-anchor="end">{_e(_short(name))}</text>'
                   f'<line x1="{LABELS}" y1="{y}" x2="{LABELS + plot}" y2="{y}" stroke="#ddd"/>')
        missing = []
        for k, (label, marks) in enumerate(series):
            m = marks[c]
            if m.value is None and not m.withheld:
                missing.append(f"{label}: no rate")
            elif m.value is None:
                missing.append(f"{label} {m.text} (withheld)")
                out.append(f'<rect x="{LABELS + plot + 4 + 14 * k}" y="{y - 5}" width="10" height="10" '
                           f'fill="{WITHHELD_FILL}" stroke="#666" data-cell="{_e(m.cell)}"/>')
            else:  # the two indices a little apart, so equal ones both show
                out.append(_marker(SERIES[k][2], x_of(m.value), y - 4 + 8 * k, SERIES[k][0], m))
        if missing:
            out.append(f'<text x="{LABELS + 4}" y="{y - 4}" font-size="9">{_e(", ".join(missing))}</text>')
        y += step
    one = x_of(1.0)
    out.append(f'<line x1="{one:.1f}" y1="20" x2="{one:.1f}" y2="{y - 10}" stroke="#111" stroke-dasharray="4 3"/>'
               f'<text x="{one:.1f}" y="{y + 4}" text-anchor="middle">1.00 = same rate as White</text>'
               f'<line x1="{LABELS}" y1="{y - 10}" x2="{LABELS + plot}" y2="{y - 10}" stroke="#111"/>'
               f'<text x="{LABELS}" y="{y + 4}">0</text>'
               f'<text x="{LABELS + plot}" y="{y + 4}" text-anchor="end">{top:.1f}</text>')
    svg = _svg("Relative rate index by ethnicity", _describe(names, series), width, y + 10, "".join(out))
    return _figure(svg, "Each group's offer and diversion rate divided by the White group's; the dashed line "
                        "at 1 means the same rate. The counts behind each index are in the table.")


def _marker(shape: str, x: float, y: float, colour: str, m: Mark | None = None) -> str:
    data = f' data-cell="{_e(m.cell)}" data-value="{m.value:g}"' if m else ""
    if shape == "circle":
        return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="{colour}" stroke="#111"{data}/>'
    if shape == "square":
        return f'<rect x="{x - 5:.1f}" y="{y - 5:.1f}" width="10" height="10" fill="{colour}" stroke="#111"{data}/>'
    return (f'<polygon points="{x:.1f},{y - 6:.1f} {x + 6:.1f},{y + 5:.1f} {x - 6:.1f},{y + 5:.1f}" '
            f'fill="{colour}" stroke="#111"{data}/>')


def _reoffending_chart(t: Table, s, width: int) -> str:
    cohorts = list(dict.fromkeys(row["cohort"] for row in t.rows))
    series = []
    for group in ("diverted", "eligible, not diverted"):
        marks = []
        for cohort in cohorts:
            i = next(i for i, row in enumerate(t.rows) if row["cohort"] == cohort and row["group"] == group)
            marks.append(_percent(t, s, i, "within_6") if isinstance(t.rows[i]["within_6"], Rate)
                         else Mark(None, "not yet observed", f"{t.key}/{i}/within_6", withheld=False))
        series.append((group.capitalize(), marks))
    svg = _bars("Re-offending within 6 months, by monthly cohort", cohorts, series, width, top=100)
    return _figure(svg, "Share of each monthly cohort with a new recorded incident within 6 months; cohorts "
                        "not yet observed for 6 months are marked as such. The table adds 12 months.")


def _trend_chart(t: Table, s, width: int) -> str:
    months = [row["month"] for row in t.rows]
    series = [(label, [_count(t, s, i, column) for i in range(len(t.rows))])
              for column, label in (("incidents", "Incidents"), ("offered", "Offered"), ("completed", "Completed"))]
    shown = [m.value for _, marks in series for m in marks if m.value is not None]
    top = max(shown + [1])
    left, right, height, base = 44, width - 20, 200, 190
    x_of = lambda k: left + (right - left) * k / max(1, len(months) - 1)  # noqa: E731
    y_of = lambda v: base - (base - 30) * v / top  # noqa: E731
    out = [f'<line x1="{left}" y1="{base}" x2="{right}" y2="{base}" stroke="#111"/>'
           f'<line x1="{left}" y1="30" x2="{left}" y2="{base}" stroke="#111"/>'
           f'<text x="{left - 4}" y="{base + 4}" text-anchor="end">0</text>'
           f'<text x="{left - 4}" y="34" text-anchor="end">{top:,}</text>']
    for k, month in enumerate(months):
        if (len(months) - 1 - k) % 2 == 0:  # every other month, ending with the last
            anchor = "end" if k == len(months) - 1 else "middle"  # the last one ends at the axis
            out.append(f'<text x="{x_of(k):.1f}" y="{base + 16}" text-anchor="{anchor}">{_e(month)}</text>')
    for n, (name, marks) in enumerate(series):
        colour, dash, shape = SERIES[n]
        run: list[str] = []
        for k, m in enumerate(marks + [Mark(None, "", "")]):
            if m.value is not None:
                run.append(f"{x_of(k):.1f},{y_of(m.value):.1f}")
                continue
            if len(run) > 1:  # a line only between figures shown: a gap where one is withheld
                out.append(f'<polyline points="{" ".join(run)}" fill="none" stroke="{colour}" stroke-width="2"'
                           + (f' stroke-dasharray="{dash}"' if dash else "") + "/>")
            run = []
        for k, m in enumerate(marks):
            if m.value is not None:
                out.append(_marker(shape, x_of(k), y_of(m.value), colour, m))
            else:
                out.append(f'<rect x="{x_of(k) - 4:.1f}" y="{base + 22 + 9 * n}" width="8" height="7" '
                           f'fill="{WITHHELD_FILL}" stroke="#666" data-cell="{_e(m.cell)}"/>')
        out.append(_marker(shape, left + 10 + n * 150, 10, colour)
                   + f'<line x1="{left + 18 + n * 150}" y1="10" x2="{left + 44 + n * 150}" y2="10" stroke="{colour}" '
                   f'stroke-width="2"' + (f' stroke-dasharray="{dash}"' if dash else "") + "/>"
                   + f'<text x="{left + 50 + n * 150}" y="14">{_e(name)}</text>')
    out.append(f'<text x="{left}" y="{base + 58}" font-size="9">Hatched boxes under a month: a figure withheld '
               f"(incidents, offered, completed from top).</text>")
    svg = _svg("Last 12 months", _describe(months, series), width, height + 62, "".join(out))
    return _figure(svg, "Incidents, offers and completions month by month; a gap in a line is a withheld "
                        "figure.")


_CHARTS = {"summary": _summary_chart, "adult_youth": _rates_chart, "breakdown": _breakdown_chart,
           "outcome_codes": _codes_chart, "equity": _equity_chart, "reoffending": _reoffending_chart,
           "trend": _trend_chart}

