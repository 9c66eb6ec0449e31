"""Everything a force may configure: substances and their classes, outcome
codes, ethnicity codes, schemes, unit costs and letter templates.

The shipped files in `data/` are the defaults. A force's own TOML file (named
by --config / DIVERSION_CONFIG, or found at the user config path) is merged
over them: substances, letters, costs and outcome codes are merged key by key;
if it has a [schemes] table, that table replaces the shipped schemes whole,
because a force runs its own set of schemes, not ours plus theirs.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import NamedTuple

from diversion_cli.errors import BadInput, DiversionError

DATA = Path(__file__).parent / "data"
SHIPPED = (DATA / "reference.toml", DATA / "schemes.toml")
DRUG_CLASSES = ("A", "B", "C")
PATHWAYS = ("workshop", "contract")
CO_OFFENCE_POLICIES = ("exclude", "supervisor", "allow")
ONE_SHOT_SCOPES = ("scheme", "programme", "all")
LETTER_KINDS = ("offer", "completion", "failure")
# Government Security Classifications: analysts' figures before publication
DEFAULT_MARKING = "OFFICIAL-SENSITIVE"
TOP_LEVEL = {"force", "costs", "schemes", "letters", "substances", "outcome_codes", "ethnicity", "ethnicity_groups",
             "areas"}
MAX_FILE_BYTES = 1_000_000  # a force's config is a few kilobytes; past this it is not one
MAX_COST = 1_000_000_000    # per unit, in any currency: finite sums however many cases
MAX_DEADLINE_DAYS = 730     # a workshop deadline of up to two years, like the longest contract
MAX_WORKSHOP_HOURS = 1000


class ConfigError(DiversionError):
    """The configuration file is malformed: reported with file, line and problem."""

    exit_code = 2


class Substance(NamedTuple):
    key: str
    label: str
    drug_class: str | None  # None: psychoactive but not a controlled drug, or not yet identified
    aliases: tuple[str, ...] = ()
    awaiting_analysis: bool = False  # seized, not yet identified: recorded as such (domain.md)

    @property
    def controlled(self) -> bool:
        return self.drug_class is not None or self.awaiting_analysis


class Condition(NamedTuple):
    key: str
    text: str
    due_days: int | None  # None: due at the end of the contract


class Scheme(NamedTuple):
    key: str
    name: str
    programme: str
    pathway: str
    provider: str
    contact: str
    min_age: int
    max_age: int
    drug_classes: tuple[str, ...]
    exclude_supply: bool
    co_offence: str
    max_days_since_offence: int | None
    one_shot_scope: str
    lookback_years: int
    completion_outcome: int
    failure_outcome: int
    cost_per_place: float
    requirements: tuple[str, ...]
    workshop_hours: float | None = None
    deadline_days: int | None = None
    contract_months: int | None = None
    conditions: tuple[Condition, ...] = ()
    letters: dict[str, str] | None = None

    @property
    def one_shot_group(self) -> str:
        """The key that referrals in the same one-shot scope share ("*" = all schemes)."""
        return {"scheme": self.key, "programme": self.programme, "all": "*"}[self.one_shot_scope]

    def describe_rules(self) -> list[str]:
        lines = [f"ages {self.min_age}–{self.max_age}",
                 f"drug classes {', '.join(self.drug_classes)}",
                 "supply suspected: excluded" if self.exclude_supply else "supply suspected: allowed",
                 f"co-offence: {self.co_offence}"]
        if self.max_days_since_offence is not None:
            lines.append(f"offence no older than {self.max_days_since_offence} days")
        scope = {"scheme": "this scheme", "programme": f"programme '{self.programme}'", "all": "all schemes"}
        span = "for life" if not self.lookback_years else f"within {self.lookback_years} years"
        lines.append(f"one shot: {scope[self.one_shot_scope]}, {span}")
        return lines

    def describe_pathway(self) -> str:
        if self.pathway == "workshop":
            return f"workshop of {self.workshop_hours:g} h, to complete within {self.deadline_days} days"
        return f"{self.contract_months}-month contract with {len(self.conditions)} conditions"


class Config:
    """The configuration in force (plain class: the custody desk imports this on every run)."""

    def __init__(self, *, raw: dict, force_name: str, substances: dict[str, Substance], outcome_codes: dict[int, str],
                 ethnicity: dict[str, str], ethnicity_groups: dict[str, str], schemes: dict[str, Scheme],
                 costs: dict, letters: dict[str, str], sources: tuple[str, ...], lookup: dict[str, Substance],
                 areas: dict[str, tuple[str, ...]] | None = None):
        self.raw, self.force_name, self.substances = raw, force_name, substances
        self.outcome_codes, self.ethnicity, self.ethnicity_groups = outcome_codes, ethnicity, ethnicity_groups
        self.schemes, self.costs, self.letters, self.sources = schemes, costs, letters, sources
        self.areas = areas or {}  # area name -> the place names that put a location in it
        self._lookup = lookup
        self._places: list[tuple[str, str]] | None = None
        self._fingerprint: str | None = None

    @property
    def report_marking(self) -> str:
        """The protective marking printed on every page of an HTML report ([force] marking)."""
        return str(self.raw.get("force", {}).get("marking", DEFAULT_MARKING))

    @property
    def fingerprint(self) -> str:
        """A short hash of the effective configuration, stored with every decision."""
        if self._fingerprint is None:
            import hashlib
            import json

            canonical = json.dumps(self.raw, sort_keys=True, default=str).encode()
            self._fingerprint = hashlib.sha256(canonical).hexdigest()[:16]
        return self._fingerprint

    def substance(self, text: str) -> Substance:
        """The substance an officer means by `text` ("weed" is cannabis)."""
        name = _norm(text)
        if not name:
            raise BadInput("substance", "is empty")
        found = self._lookup.get(name)
        if found is None:
            import difflib

            close = difflib.get_close_matches(name, list(self._lookup), n=1, cutoff=0.75)
            hint = f" (did you mean {close[0]!r}?)" if close else " (`diversion schemes --substances` lists them)"
            raise BadInput("substance", f"{text.strip()!r} is not a known substance{hint}")
        return found

    def ethnicity_group(self, code: str | None) -> str:
        if not code or code == "NS":
            return self.ethnicity_groups.get("N", "Not stated")
        return self.ethnicity_groups.get(code[0], "Not stated")

    def scheme(self, key: str) -> Scheme:
        if key not in self.schemes:
            raise BadInput("scheme", f"{key!r} is not a configured scheme ({', '.join(self.schemes)})")
        return self.schemes[key]

    def area(self, location: str | None) -> str | None:
        """The configured area a free-text location lies in: an area whose place name appears
        in it as whole words (case and spacing ignored; the longest such name wins), else None."""
        if not location:
            return None
        if self._places is None:  # longest first, so "High Street East" beats "High Street"
            self._places = sorted(((f" {_words(place)} ", area) for area, places in self.areas.items()
                                   for place in places), key=lambda p: -len(p[0]))
        text = f" {_words(location)} "
        return next((area for place, area in self._places if place in text), None)


def _norm(text: str) -> str:
    return " ".join((text or "").replace("_", " ").split()).casefold()


def _words(text: str) -> str:
    """A location as lower-case words, punctuation dropped ("12, High St." -> "12 high st")."""
    return " ".join(re.sub(r"[\W_]+", " ", text.casefold()).split())


def config_path_from_env(explicit: str | None = None) -> Path | None:
    """The force's config file: --config, DIVERSION_CONFIG, or the user config path if present."""
    chosen = explicit or os.environ.get("DIVERSION_CONFIG")
    if chosen:
        path = Path(chosen).expanduser()
        try:
            exists, regular = path.exists(), path.is_file()
        except OSError as exc:  # e.g. a directory on the way that may not be entered
            raise ConfigError(f"config: {path}: cannot read ({exc.strerror})") from None
        if not regular:
            raise ConfigError(f"config: {path}: " + ("not a regular file" if exists else "no such file"))
        return path
    default = user_config_path()
    return default if default.is_file() else None


def user_config_path() -> Path:
    import typer

    return Path(typer.get_app_dir("diversion")) / "config.toml"


def _read(path: Path) -> tuple[dict, str]:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)  # bounded: a device or a huge file is not a config
        if len(data) > MAX_FILE_BYTES:
            raise ConfigError(f"config: {path}: larger than {MAX_FILE_BYTES:,} bytes; not a diversion config")
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config: {path}: cannot read ({exc.__class__.__name__})") from None
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as exc:
        where = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        problem = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        raise ConfigError(f"config: {path}:{where.group(1)}: {problem}" if where
                          else f"config: {path}: {problem}") from None
    except RecursionError:
        raise ConfigError(f"config: {path}: arrays or tables nested too deeply") from None
    except ValueError:  # tomllib lets int()'s digit limit through
        raise ConfigError(f"config: {path}: a number too long to be a setting (over 4,300 digits)") from None


def load_config(path: Path | None = None) -> Config:
    raw: dict = {}
    texts: list[tuple[Path, str, dict]] = []
    for source in (*SHIPPED, *([path] if path else [])):
        data, text = _read(source)
        texts.append((source, text, data))
        unknown = sorted(set(data) - TOP_LEVEL)
        if unknown:
            line = _find_line(text, unknown[0], None)
            where = f"{source}:{line}" if line else str(source)
            raise ConfigError(f"config: {where}: unknown table [{unknown[0]}] (known: {', '.join(sorted(TOP_LEVEL))})")
        _merge(raw, data, replace_schemes=source == path)
    try:
        return _build(raw, tuple(str(p) for p, _, _ in texts))
    except _Problem as problem:
        # Report the problem against the file (and line) that defines it.
        for source, text, data in reversed(texts):
            line = _find_line(text, problem.table, problem.key)
            if line or _defines(data, problem.table):
                where = f"{source}:{line}" if line else str(source)
                raise ConfigError(f"config: {where}: {problem.message}") from None
        raise ConfigError(f"config: {problem.message}") from None


def _merge(into: dict, data: dict, replace_schemes: bool) -> None:
    for name, value in data.items():
        if name == "schemes" and replace_schemes:
            into[name] = value
        elif isinstance(value, dict) and isinstance(into.get(name), dict):
            for key, item in value.items():
                into[name][key] = item
        else:
            into[name] = value


class _Problem(Exception):
    def __init__(self, table: str, key: str | None, message: str):
        super().__init__(message)
        self.table, self.key, self.message = table, key, message


def _defines(data: dict, table: str) -> bool:
    node = data
    for part in table.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def _find_line(text: str, table: str, key: str | None) -> int | None:
    """Line of `key` inside `[table]` (or of the table header) in a TOML text."""
    header = re.compile(r"^\s*\[\[?\s*" + re.escape(table).replace(r"\.", r"\s*\.\s*") + r"\s*\]\]?\s*(#.*)?$")
    in_table, header_line = False, None
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("["):
            in_table = bool(header.match(line))
            if in_table and header_line is None:
                header_line = number
            continue
        if in_table and key and re.match(rf"^\s*\"?{re.escape(key)}\"?\s*=", line):
            return number
    return header_line


def _build(raw: dict, sources: tuple[str, ...]) -> Config:
    substances, lookup = {}, {}
    for key, spec in _table(raw, "substances").items():
        where = f"substances.{key}"
        _only(spec, where, {"label", "class", "aliases", "controlled", "awaiting_analysis"})
        controlled = spec.get("controlled", True)
        awaiting = spec.get("awaiting_analysis", False)
        if not isinstance(awaiting, bool):
            raise _Problem(where, "awaiting_analysis", f"{where}.awaiting_analysis must be true or false")
        cls = spec.get("class")
        if awaiting and ("class" in spec or not controlled):
            raise _Problem(where, "class", f"{where}: a substance awaiting analysis has no class yet")
        if controlled and not awaiting and cls not in DRUG_CLASSES:
            raise _Problem(where, "class", f"{where}.class must be one of A, B, C (got {cls!r})")
        aliases = spec.get("aliases", [])
        if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
            raise _Problem(where, "aliases", f"{where}.aliases must be a list of names")
        substance = Substance(key, str(spec.get("label", key)), cls if controlled and not awaiting else None,
                              tuple(aliases), awaiting)
        substances[key] = substance
        # "Synthetic cannabinoids (spice)" is also found as "synthetic cannabinoids" and "spice"
        plain, _, inner = substance.label.partition(" (")
        for name in (key, key.replace("-", " "), substance.label, plain, inner.rstrip(")"), *aliases):
            if name:
                lookup[_norm(name)] = substance

    try:
        outcome_codes = {int(k): str(v) for k, v in _table(raw, "outcome_codes").items()}
    except ValueError:
        raise _Problem("outcome_codes", None, "outcome_codes keys must be numbers") from None
    ethnicity = {str(k).upper(): str(v) for k, v in _table(raw, "ethnicity").items()}
    groups = {str(k).upper(): str(v) for k, v in _table(raw, "ethnicity_groups").items()}
    letters = {k: str(v) for k, v in _table(raw, "letters").items()}
    costs = dict(_table(raw, "costs"))
    for key, value in costs.items():
        if key == "currency":
            if not isinstance(value, str) or not 1 <= len(value.strip()) <= 16:
                raise _Problem("costs", key, "costs.currency must be a currency code such as GBP")
        elif not _amount(value):
            raise _Problem("costs", key, f"costs.{key} must be a number from 0 to {MAX_COST:,} (got {value!r})")
    areas = {}
    for name, places in _table(raw, "areas").items():
        if (not isinstance(places, list) or not places
                or not all(isinstance(p, str) and _words(p) for p in places) or not _words(str(name))):
            raise _Problem("areas", name, f"areas.{name} must be a list of place names (streets, estates, "
                                          f"postcode districts) that put a location in that area")
        areas[str(name)] = tuple(places)

    for key in ("name", "marking"):
        if not isinstance(_table(raw, "force").get(key, ""), str):
            raise _Problem("force", key, f"force.{key} must be text")
    schemes = {key: _scheme(key, spec, outcome_codes, letters) for key, spec in _table(raw, "schemes").items()}
    if not schemes:
        raise _Problem("schemes", None, "no schemes are configured")
    return Config(
        raw=raw, force_name=str(_table(raw, "force").get("name", "the police")),
        substances=substances, outcome_codes=outcome_codes, ethnicity=ethnicity,
        ethnicity_groups=groups, schemes=schemes, costs=costs, letters=letters,
        sources=sources, lookup=lookup, areas=areas,
    )


def _amount(value: object) -> bool:
    """A unit cost: a number (not a boolean) from 0 to MAX_COST; the range refuses nan and infinity
    (every comparison with nan is false) and compares a huge integer without converting it."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= MAX_COST


def _table(raw: dict, name: str) -> dict:
    value = raw.get(name, {})
    if not isinstance(value, dict):
        raise _Problem(name, None, f"[{name}] must be a table")
    return value


def _only(spec: object, where: str, allowed: set[str]) -> None:
    if not isinstance(spec, dict):
        raise _Problem(where, None, f"[{where}] must be a table")
    for key in spec:
        if key not in allowed:
            raise _Problem(where, key, f"{where}: unknown setting {key!r}")


_SCHEME_KEYS = {
    "name", "programme", "pathway", "provider", "contact", "ages", "drug_classes",
    "supply_suspected", "co_offence", "max_days_since_offence", "one_shot_scope",
    "lookback_years", "workshop_hours", "deadline_days", "contract_months", "conditions",
    "completion_outcome", "failure_outcome", "cost_per_place", "requirements", "letters",
}


def _scheme(key: str, spec: dict, outcome_codes: dict[int, str], letters: dict[str, str]) -> Scheme:
    where = f"schemes.{key}"
    _only(spec, where, _SCHEME_KEYS)
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,39}", key):
        raise _Problem(where, None, f"scheme key {key!r} must be lower-case letters, digits and hyphens")

    def need(name: str, kind: type | tuple, check=lambda v: True, why: str = ""):
        if name not in spec:
            raise _Problem(where, None, f"{where}: missing {name!r}")
        value = spec[name]
        if isinstance(value, bool) and kind is not bool or not isinstance(value, kind) or not check(value):
            raise _Problem(where, name, f"{where}.{name}: {why or 'wrong type'} (got {value!r})")
        return value

    def opt(name: str, kind, default, check=lambda v: True, why: str = ""):
        return need(name, kind, check, why) if name in spec else default

    pathway = need("pathway", str, lambda v: v in PATHWAYS, "must be workshop or contract")
    ages = need("ages", list, lambda v: len(v) == 2 and all(isinstance(a, int) for a in v)
                and 10 <= v[0] <= v[1] <= 110, "must be [min, max] with 10 ≤ min ≤ max ≤ 110")
    classes = need("drug_classes", list, lambda v: v and all(isinstance(c, str) and c in DRUG_CLASSES for c in v),
                   "must list classes A, B, C")
    code_ok = (lambda v: v in outcome_codes)
    conditions = ()
    if pathway == "contract":
        months = need("contract_months", int, lambda v: 1 <= v <= 24, "must be 1–24")
        items = need("conditions", list, lambda v: 1 <= len(v) <= 5, "a contract has 1–5 conditions")
        conditions = tuple(_condition(where, i, item, months) for i, item in enumerate(items))
        if len({c.key for c in conditions}) != len(conditions):
            raise _Problem(where, "conditions", f"{where}: condition keys must be unique")
    else:
        months = None
        need("workshop_hours", (int, float), lambda v: 0 < v <= MAX_WORKSHOP_HOURS,  # refuses nan and inf
             f"must be a number of hours above 0, up to {MAX_WORKSHOP_HOURS}")
        need("deadline_days", int, lambda v: 1 <= v <= MAX_DEADLINE_DAYS, f"must be 1–{MAX_DEADLINE_DAYS}")
    scheme_letters = dict(letters)
    own = opt("letters", dict, {})
    for kind_, text in own.items():
        if kind_ not in LETTER_KINDS or not isinstance(text, str):
            raise _Problem(f"{where}.letters", kind_, f"{where}.letters: {kind_!r} must be one of {', '.join(LETTER_KINDS)}")
        scheme_letters[kind_] = text
    return Scheme(
        key=key,
        name=need("name", str, bool, "must not be empty"),
        programme=opt("programme", str, key, bool, "must not be empty"),
        pathway=pathway,
        provider=need("provider", str, bool, "must not be empty"),
        contact=opt("contact", str, ""),
        min_age=ages[0], max_age=ages[1],
        drug_classes=tuple(sorted(set(classes))),
        exclude_supply=opt("supply_suspected", str, "exclude", lambda v: v in ("exclude", "allow"),
                           "must be exclude or allow") == "exclude",
        co_offence=opt("co_offence", str, "exclude", lambda v: v in CO_OFFENCE_POLICIES,
                       "must be exclude, supervisor or allow"),
        max_days_since_offence=opt("max_days_since_offence", int, None, lambda v: 1 <= v <= 36600,
                                   "must be 1–36600 days"),
        one_shot_scope=opt("one_shot_scope", str, "scheme", lambda v: v in ONE_SHOT_SCOPES,
                           "must be scheme, programme or all"),
        lookback_years=opt("lookback_years", int, 0, lambda v: 0 <= v <= 100, "must be 0 (lifetime) to 100"),
        completion_outcome=opt("completion_outcome", int, 22, code_ok, "must be a configured outcome code"),
        failure_outcome=opt("failure_outcome", int, 1, code_ok, "must be a configured outcome code"),
        cost_per_place=float(opt("cost_per_place", (int, float), 0, _amount, f"must be a number from 0 to "
                                                                             f"{MAX_COST:,}")),
        requirements=tuple(opt("requirements", list, [], lambda v: all(isinstance(s, str) for s in v),
                               "must be a list of sentences")),
        workshop_hours=float(spec["workshop_hours"]) if pathway == "workshop" else None,
        deadline_days=spec.get("deadline_days") if pathway == "workshop" else None,
        contract_months=months,
        conditions=conditions,
        letters=scheme_letters,
    )


def _condition(where: str, index: int, item: object, months: int) -> Condition:
    here = f"{where}.conditions"
    if not isinstance(item, dict) or not isinstance(item.get("key"), str) or not isinstance(item.get("text"), str):
        raise _Problem(here, None, f"{here}[{index}]: each condition needs a key and a text")
    _only(item, here, {"key", "text", "due", "due_days"})
    if "due_days" in item:
        days = item["due_days"]
        if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= months * 31:
            raise _Problem(here, "due_days", f"{here}[{index}].due_days must be within the contract")
        return Condition(item["key"], item["text"], days)
    if item.get("due", "end") != "end":
        raise _Problem(here, "due", f"{here}[{index}].due must be \"end\" or use due_days")
    return Condition(item["key"], item["text"], None)
