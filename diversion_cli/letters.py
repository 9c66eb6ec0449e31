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
    requirements = [f"  - {r}" for r in scheme.requirements]
    for c in store.conditions_of(referral_id):
        requirements.append(f"  - {c['description']} (by {_long_date(c['due'])})")
    fields = {
        "forenames": person["forenames"], "surname": person["surname"], "referral_id": referral_id,
        "scheme_name": scheme.name, "provider": scheme.provider, "contact": scheme.contact or scheme.provider,
        "force_name": config.force_name, "offence_date": _long_date(incident["occurred_at"]),
        "substances": " and ".join(config.substances[s["substance"]].label.lower()
                                   if s["substance"] in config.substances else s["substance"]
                                   for s in incident["substances"]),
        "deadline": _long_date(row["deadline"]),
        "requirements": "\n".join(requirements) or "  - As set out by the provider.",
        "appointment_line": f"\nYour appointment: {_long_date(row['appointment'])} at {row['appointment'][11:16]}.\n"
        if row["appointment"] else "",
        "closed_on": _long_date(row["closed_at"]),
        "outcome_code": str(row["outcome_code"] or ""),
        "outcome_text": config.outcome_codes.get(row["outcome_code"], ""),
        "reason_clause": f": {row['reason']}" if row["reason"] else "",
        "today": _long_date(ws.clock().date().isoformat()),
    }
    template = scheme.letters.get(kind)
    if not template:
        raise ConfigError(f"config: scheme {scheme.key} has no {kind} letter template")
    if fmt == "html":
        escaped = {k: html.escape(v) for k, v in fields.items()}
        body = _fill(html.escape(template), escaped, scheme.key, kind)
        paragraphs = "\n".join(f"<p>{p.strip().replace(chr(10), '<br>')}</p>" for p in body.split("\n\n")
                               if p.strip())
        return (f"<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<title>{html.escape(config.force_name)} – {referral_id}</title>"
                f"<style>body{{font-family:serif;max-width:40em;margin:3em auto;line-height:1.4}}</style>"
                f"</head><body>\n<p>{html.escape(config.force_name)}<br>{fields['today']}</p>\n{paragraphs}\n"
                f"</body></html>\n")
    return f"{config.force_name}\n{fields['today']}\n{_fill(template, fields, scheme.key, kind)}"


def _fill(template: str, fields: dict, scheme: str, kind: str) -> str:
    try:
        return string.Template(template).substitute(fields)
    except (KeyError, ValueError) as exc:
        raise ConfigError(f"config: the {kind} letter of scheme {scheme} uses an unknown or malformed "
                          f"placeholder ({exc}); known ones: {', '.join(sorted(fields))}") from None
