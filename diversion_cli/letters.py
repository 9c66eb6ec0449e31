"""Letters given or sent to the person: the offer, the completion letter that
proves the offence was dropped, and the failure letter. Templates come from
the scheme config; every value is escaped for HTML output."""

from __future__ import annotations

import html
import string
from datetime import date

from diversion_cli import values
from diversion_cli.config import ConfigError
from diversion_cli.errors import BadInput, NotFound, Refused

KINDS = {"offer": ("offered", "accepted"), "completion": ("completed",), "failure": ("failed",)}
FORMATS = ("text", "html")


def _long_date(iso: str | None) -> str:
    if not iso:
        return ""
    d = date.fromisoformat(iso[:10])
    return f"{d.day} {d:%B %Y}"


def letter(ws, referral: str, kind: str, fmt: str = "text") -> str:
    """The letter text for a referral, refused if the referral is not in the right state."""
    if kind not in KINDS:
        raise BadInput("kind", f"{kind!r} is not one of {', '.join(KINDS)}")
    if fmt not in FORMATS:
        raise BadInput("format", f"{fmt!r} is not one of {', '.join(FORMATS)}")
    referral_id = values.parse_referral_id(referral)
    store = ws.reader()
    row = store.referral(referral_id)
    if row is None:
        raise NotFound(f"no referral {referral_id}")
    if row["status"] not in KINDS[kind]:
        raise Refused(f"{referral_id} is {row['status']}: {'an' if kind[0] in 'aeiou' else 'a'} {kind} letter needs a referral that is "
                      f"{' or '.join(KINDS[kind])}")
    config = ws.config
    scheme = config.schemes.get(row["scheme"])
    if scheme is None:
        raise Refused(f"{referral_id} was made under scheme {row['scheme']!r}, which is no longer configured")
    person = store.person(row["person_id"])
    incident = store.incident(row["incident_id"])
    conditions = store.conditions_of(referral_id)
    requirements = [f"  - {r}" for r in scheme.requirements]
    for c in conditions:
        until = "until the contract ends on" if c["due"] == row["deadline"] else "by"
        requirements.append(f"  - {_sentence(c['description'])}: {until} {_long_date(c['due'])}.")
    breached = [_sentence(c["description"]) for c in conditions if c["status"] == "breached"]
    fields = {
        "forenames": person["forenames"], "surname": person["surname"], "referral_id": referral_id,
        "scheme_name": scheme.name, "provider": scheme.provider, "contact": scheme.contact or scheme.provider,
        "force_name": config.force_name, "offence_date": _long_date(incident["occurred_at"]),
        "substances": _listed([_in_a_sentence(config.substances[s["substance"]].label)
                               if s["substance"] in config.substances else s["substance"]
                               for s in incident["substances"]]),
        "deadline": _long_date(row["deadline"]),
        "requirements": "\n".join(requirements) or "  - As set out by the provider.",
        "appointment_line": f"\nYour appointment: {_long_date(row['appointment'])} at {row['appointment'][11:16]}.\n"
        if row["appointment"] else "",
        "closed_on": _long_date(row["closed_at"]),
        "outcome_code": str(row["outcome_code"] or ""),
        "outcome_text": config.outcome_codes.get(row["outcome_code"], ""),
        # a breached condition in its own words, never its key; else the officer's reason
        "reason_clause": f": you did not keep the condition \u201c{breached[0]}\u201d" if breached
        else f": {row['reason']}" if row["reason"] else "",
        "today": _long_date(ws.clock().date().isoformat()),
    }
    template = scheme.letters.get(kind)
    if not template:
        raise ConfigError(f"config: scheme {scheme.key} has no {kind} letter template")
    body = _blocks(_fill(template, fields, scheme.key, kind))
    if fmt == "html":
        return (f"<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<title>{html.escape(config.force_name)} – {referral_id}</title>"
                f"<style>body{{font-family:serif;max-width:40em;margin:3em auto;line-height:1.4}}</style>"
                f"</head><body>\n<p>{html.escape(config.force_name)}</p>\n<p>{fields['today']}</p>\n"
                + "".join(_html_block(b) for b in body) + "</body></html>\n")
    return f"{config.force_name}\n{fields['today']}\n\n" + "\n\n".join(_text_block(b) for b in body) + "\n"


WIDTH = 72  # a letter's line length in text


def _listed(words: list[str]) -> str:
    """"a", "a and b", "a, b and c"."""
    return " and ".join(filter(None, [", ".join(words[:-1]), words[-1]]))


def _sentence(text: str) -> str:
    """A configured sentence to go inside another one: without its closing full stop."""
    return text.strip().rstrip(".")


def _in_a_sentence(label: str) -> str:
    """A substance's label inside a sentence: "Cannabis" -> "cannabis", but "MDMA (ecstasy)",
    "LSD" and "2C-B" stay as written."""
    return label[0].lower() + label[1:] if label[:2].istitle() and label[1:2].islower() else label


def _blocks(body: str) -> list[tuple[str, list[str]]]:
    """The filled template as paragraphs ("p", [text]) and lists ("ul", items): blank lines
    separate blocks, a line starting with "- " is a list item, and any other line break is
    only where the template was wrapped (so it is reflowed, in text and in HTML)."""
    blocks: list[tuple[str, list[str]]] = []
    for chunk in body.split("\n\n"):
        current = None
        for line in (line.strip() for line in chunk.splitlines()):
            if not line:
                continue
            kind, text = ("ul", line[2:].strip()) if line.startswith("- ") else ("p", line)
            if current and current[0] == kind:
                current[1].append(text)
            else:
                current = (kind, [text])
                blocks.append(current)
    return [(kind, [" ".join(parts)] if kind == "p" else parts) for kind, parts in blocks]


def _text_block(block: tuple[str, list[str]]) -> str:
    import textwrap

    kind, parts = block
    if kind == "p":
        return textwrap.fill(" ".join(parts[0].split()), WIDTH)
    return "\n".join(textwrap.fill(" ".join(item.split()), WIDTH, initial_indent="  - ", subsequent_indent="    ")
                     for item in parts)


def _html_block(block: tuple[str, list[str]]) -> str:
    kind, parts = block
    if kind == "p":
        return f"<p>{html.escape(' '.join(parts[0].split()))}</p>\n"
    return "<ul>\n" + "".join(f"<li>{html.escape(' '.join(item.split()))}</li>\n" for item in parts) + "</ul>\n"


def _fill(template: str, fields: dict, scheme: str, kind: str) -> str:
    try:
        return string.Template(template).substitute(fields)
    except (KeyError, ValueError) as exc:
        raise ConfigError(f"config: the {kind} letter of scheme {scheme} uses an unknown or malformed "
                          f"placeholder ({exc}); known ones: {', '.join(sorted(fields))}") from None
