"""Open an HTML report in headless Chromium: check it and take a screenshot.

    .venv/bin/python scripts/check_report_html.py REPORT.html [--screenshot page.png] [--pdf report.pdf]

Checks, at the width printable on A4 (180 mm = 680 CSS px):
- no console error and no request for anything outside the page (it must stand alone);
- no element reaching past the printable width, and nothing to scroll sideways.
Prints one JSON object ({"ok": bool, "problems": [...], "height": px, ...}); exit 1 if not ok.
The screenshot is one A4-wide image of the whole page; --pdf prints it as Chromium would.
Needs Debian's `chromium` (apt-get install chromium); CI machines do not have it.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PRINTABLE_PX = 680  # 180 mm at 96 px per inch
A4_PX = 794         # 210 mm
TIMEOUT = 120

# run after the page has loaded: measures every element and writes the findings into the DOM
CHECKER = """<script>
window.__errors = [];
window.addEventListener("error", e => window.__errors.push(String(e.message || (e.target && e.target.outerHTML))), true);
window.addEventListener("load", () => {
  const width = document.documentElement.clientWidth, wide = [];
  for (const el of document.body.querySelectorAll("*")) {
    const r = el.getBoundingClientRect();
    if (r.width && (r.right > width + 0.5 || r.left < -0.5))
      wide.push(el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") + " " + Math.round(r.left) + ".."
                + Math.round(r.right) + " px: " + JSON.stringify(el.textContent.slice(0, 40)));
  }
  const out = document.createElement("pre");
  out.id = "check-result";
  out.textContent = JSON.stringify({width, scrollWidth: document.documentElement.scrollWidth,
    height: document.documentElement.scrollHeight, wide: wide.slice(0, 20), errors: window.__errors,
    requests: performance.getEntriesByType("resource").map(r => r.name)});
  document.body.appendChild(out);
});
</script>"""


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _run(args: list[str]) -> subprocess.CompletedProcess:
    base = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
            "--disable-extensions", "--enable-logging=stderr", "--v=0"]
    return subprocess.run(base + args, capture_output=True, text=True, timeout=TIMEOUT)


def check(page: Path, screenshot: Path | None = None, pdf: Path | None = None) -> dict:
    problems = []
    with tempfile.TemporaryDirectory() as work:
        probe = Path(work) / "probe.html"
        probe.write_text(page.read_text(encoding="utf-8").replace("</body>", CHECKER + "</body>"), encoding="utf-8")
        result = _run([f"--window-size={PRINTABLE_PX},1000", "--virtual-time-budget=5000", "--dump-dom",
                       probe.as_uri()])
        found = re.search(r'<pre id="check-result">(.*?)</pre>', result.stdout, re.S)
        if not found:
            return {"ok": False, "problems": ["the page did not load: " + result.stderr[-500:]]}
        import html

        measured = json.loads(html.unescape(found.group(1)))
        # the page itself, unaltered: anything it writes to the console is a problem
        plain = _run([f"--window-size={PRINTABLE_PX},1000", "--virtual-time-budget=5000", "--dump-dom",
                      page.resolve().as_uri()])
    console = [line for line in plain.stderr.splitlines() if "CONSOLE" in line]
    problems += [f"console: {line}" for line in console]
    problems += [f"error: {e}" for e in measured["errors"]]
    problems += [f"request: {r}" for r in measured["requests"]]
    problems += [f"wider than the printable width: {w}" for w in measured["wide"]]
    if measured["scrollWidth"] > measured["width"]:
        problems.append(f"scrolls sideways: {measured['scrollWidth']} > {measured['width']} px")
    if screenshot:
        _run([f"--window-size={A4_PX},{measured['height'] + 40}", f"--screenshot={screenshot.resolve()}",
              page.resolve().as_uri()])
        if not screenshot.exists():
            problems.append("no screenshot was written")
    if pdf:
        _run(["--no-pdf-header-footer", f"--print-to-pdf={pdf.resolve()}", page.resolve().as_uri()])
        if not pdf.exists():
            problems.append("no PDF was written")
    return {"ok": not problems, "problems": problems, "width": measured["width"], "height": measured["height"],
            "pdf_pages": _pages(pdf) if pdf and pdf.exists() else None}


def _pages(pdf: Path) -> int:
    return len(re.findall(rb"/Type\s*/Page[^s]", pdf.read_bytes()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("page", type=Path)
    parser.add_argument("--screenshot", type=Path)
    parser.add_argument("--pdf", type=Path)
    args = parser.parse_args()
    if not chromium():
        print("chromium is not installed (apt-get install chromium)", file=sys.stderr)
        return 2
    result = check(args.page, args.screenshot, args.pdf)
    print(json.dumps(result, indent=2))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
