"""config.py: the shipped reference data, a force's own file merged over it,
and malformed files reported with file and line."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from diversion_cli.config import ConfigError, config_path_from_env, load_config
from diversion_cli.errors import BadInput

SHIPPED = load_config(None)

# domain.md, "Drug classes": every substance listed there, as an officer would type it.
DOMAIN_CLASSES = {
    "cocaine": "A", "crack cocaine": "A", "crack": "A", "heroin": "A", "methadone": "A", "MDMA": "A",
    "ecstasy": "A", "LSD": "A", "magic mushrooms": "A", "psilocybin": "A", "2C-B": "A",
    "cannabis": "B", "amphetamine": "B", "speed": "B", "ketamine": "B",
    "spice": "B", "synthetic cannabis": "B", "GHB": "B", "GBL": "B", "GHB/GBL": "B",
    "benzodiazepines": "C", "khat": "C", "nitrous oxide": "C", "anabolic steroids": "C",
}

# One valid workshop scheme, for force files.
WORKSHOP = """\
[schemes.{key}]
name = "Testshire Drug Awareness"
pathway = "workshop"
provider = "Testshire Drug Service"
ages = [18, 110]
drug_classes = ["A", "B"]
workshop_hours = 2
deadline_days = 28
"""


def force_file(tmp_path: Path, text: str, name: str = "force.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def config_error(path: Path) -> str:
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert err.value.exit_code == 2
    return err.value.message


def line_of(path: Path, needle: str) -> int:
    """1-based line of the first line in the file containing needle."""
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


# --- the shipped configuration ------------------------------------------------

def test_shipped_config_has_the_three_reference_schemes():
    assert list(SHIPPED.schemes) == ["dep-adult", "dep-youth", "checkpoint"]


def test_shipped_schemes_match_domain():
    adult, youth, checkpoint = (SHIPPED.schemes[k] for k in ("dep-adult", "dep-youth", "checkpoint"))
    assert (adult.min_age, adult.max_age) == (18, 110)
    assert (youth.min_age, youth.max_age) == (10, 17)
    assert (checkpoint.min_age, checkpoint.max_age) == (18, 110)
    assert adult.pathway == youth.pathway == "workshop" and adult.workshop_hours == 3.5
    assert checkpoint.pathway == "contract" and checkpoint.contract_months == 4
    assert 1 <= len(checkpoint.conditions) <= 5
    assert all(s.exclude_supply for s in SHIPPED.schemes.values())
    assert adult.co_offence == "exclude" and checkpoint.co_offence == "supervisor"
    assert checkpoint.max_days_since_offence is not None and checkpoint.max_days_since_offence <= 92
    # adult and youth pathways each once; both adult schemes share one shot
    assert adult.one_shot_group == checkpoint.one_shot_group != youth.one_shot_group
    for scheme in SHIPPED.schemes.values():
        assert scheme.completion_outcome in SHIPPED.outcome_codes
        assert scheme.failure_outcome in SHIPPED.outcome_codes
        assert set(scheme.letters) >= {"offer", "completion", "failure"}


def test_shipped_outcome_codes_match_domain():
    assert set(SHIPPED.outcome_codes) == {1, 2, 3, 6, 7, 8, 10, 22}
    assert SHIPPED.outcome_codes[22].startswith("Diversionary")


def test_shipped_ethnicity_codes_are_18_plus_1():
    assert set(SHIPPED.ethnicity) == {"W1", "W2", "W3", "W9", "M1", "M2", "M3", "M9", "A1", "A2", "A3", "A4",
                                      "A9", "B1", "B2", "B9", "O2", "O9", "NS"}
    assert SHIPPED.ethnicity_group("B2") == "Black"
    assert SHIPPED.ethnicity_group("NS") == SHIPPED.ethnicity_group(None) == "Not stated"


@pytest.mark.parametrize("typed, drug_class", [
    *sorted(DOMAIN_CLASSES.items()),
    ("synthetic cannabinoids", "B"),
])
def test_every_domain_substance_resolves_with_its_class(typed, drug_class):
    substance = SHIPPED.substance(typed)
    assert substance.drug_class == drug_class
    assert substance.controlled


@pytest.mark.parametrize("typed, key, drug_class", [
    ("weed", "cannabis", "B"), ("coke", "cocaine", "A"), ("speed", "amphetamine", "B"), ("mandy", "mdma", "A"),
    ("WEED", "cannabis", "B"), ("  Coke ", "cocaine", "A"), ("special k", "ketamine", "B"),
    ("Special_K", "ketamine", "B"), ("shrooms", "psilocybin", "A"), ("laughing gas", "nitrous-oxide", "C"),
])
def test_street_names(typed, key, drug_class):
    substance = SHIPPED.substance(typed)
    assert (substance.key, substance.drug_class) == (key, drug_class)


def test_injectable_amphetamine_is_class_a():
    assert SHIPPED.substance("amphetamine prepared for injection").drug_class == "A"
    assert SHIPPED.substance("amphetamine").drug_class == "B"


def test_no_name_means_two_substances():
    for substance in SHIPPED.substances.values():
        for name in (substance.key, substance.label, *substance.aliases):
            assert SHIPPED.substance(name) is substance, name


@pytest.mark.parametrize("typed", ["unicorn dust", "bananas", "cannabiss-x", "aspirin"])
def test_unknown_substance_is_bad_input(typed):
    with pytest.raises(BadInput) as err:
        SHIPPED.substance(typed)
    assert err.value.field == "substance" and err.value.exit_code == 2


def test_unknown_substance_suggests_a_close_name():
    with pytest.raises(BadInput, match="cannabis"):
        SHIPPED.substance("canabis")


@pytest.mark.parametrize("typed", ["", "   ", None])
def test_empty_substance_is_bad_input(typed):
    with pytest.raises(BadInput, match="empty"):
        SHIPPED.substance(typed)


@pytest.mark.parametrize("typed", ["legal high", "Legal Highs", "NPS", "kratom"])
def test_legal_high_is_not_controlled(typed):
    substance = SHIPPED.substance(typed)
    assert not substance.controlled and substance.drug_class is None


def test_unknown_scheme_is_bad_input():
    assert SHIPPED.scheme("dep-adult").key == "dep-adult"
    with pytest.raises(BadInput, match="dep-adult"):
        SHIPPED.scheme("nope")


# --- a force's own file ------------------------------------------------------

def test_force_schemes_replace_the_shipped_schemes(tmp_path):
    path = force_file(tmp_path, '[force]\nname = "Testshire Police"\n\n' + WORKSHOP.format(key="testshire"))
    cfg = load_config(path)
    assert list(cfg.schemes) == ["testshire"]
    scheme = cfg.schemes["testshire"]
    assert scheme.drug_classes == ("A", "B") and scheme.workshop_hours == 2.0
    assert scheme.co_offence == "exclude" and scheme.one_shot_scope == "scheme" and scheme.lookback_years == 0
    assert cfg.force_name == "Testshire Police"
    assert str(path) in cfg.sources
    # substances and everything else still come from the shipped data
    assert cfg.substance("weed").drug_class == "B"
    assert cfg.outcome_codes == SHIPPED.outcome_codes


def test_force_file_without_schemes_keeps_shipped_schemes_and_merges_substances(tmp_path):
    path = force_file(tmp_path, """
        [substances.ketamine]
        label = "Ketamine"
        class = "A"
        aliases = ["ket"]

        [substances.bubble]
        label = "Bubble (mephedrone)"
        class = "B"
        aliases = ["meow meow"]
        """)
    cfg = load_config(path)
    assert list(cfg.schemes) == list(SHIPPED.schemes)
    assert cfg.substance("ket").drug_class == "A"
    assert cfg.substance("meow meow").key == "bubble"
    assert cfg.substance("weed").drug_class == "B"
    assert SHIPPED.substance("ket").drug_class == "B"  # the shipped config is untouched


def test_config_path_from_env(tmp_path, monkeypatch):
    assert config_path_from_env(None) is None
    path = force_file(tmp_path, WORKSHOP.format(key="x"))
    assert config_path_from_env(str(path)) == path
    monkeypatch.setenv("DIVERSION_CONFIG", str(path))
    assert config_path_from_env(None) == path
    with pytest.raises(ConfigError, match="no such file"):
        config_path_from_env(str(tmp_path / "missing.toml"))


# --- malformed files -------------------------------------------------------------

def test_bad_toml_syntax_names_file_and_line(tmp_path):
    path = force_file(tmp_path, '[force]\nname = "X"\n\n[schemes.x]\nname = \n')
    message = config_error(path)
    assert str(path) in message
    assert re.search(r"\bline 5\b|:5:", message)


def test_bad_toml_syntax_uses_file_colon_line(tmp_path):
    path = force_file(tmp_path, '[force]\nname = "X"\n\n[schemes.x]\nname = \n')
    assert f"{path}:5:" in config_error(path)


def test_unknown_scheme_setting_names_file_and_line(tmp_path):
    path = force_file(tmp_path, WORKSHOP.format(key="x") + 'colour = "red"\n')
    message = config_error(path)
    assert f"{path}:{line_of(path, 'colour')}:" in message
    assert "colour" in message


def test_unknown_substance_setting_names_file_and_line(tmp_path):
    path = force_file(tmp_path, '[substances.bubble]\nlabel = "Bubble"\nclass = "B"\nstrength = 3\n')
    assert f"{path}:4:" in config_error(path)


@pytest.mark.parametrize("setting, bad", [
    ("deadline_days", '"five"'),
    ("workshop_hours", '"3.5"'),
    ("max_days_since_offence", "true"),
    ("lookback_years", "1.5"),
    ("co_offence", '"sometimes"'),
    ("cost_per_place", '"cheap"'),
    ("requirements", '"attend"'),
    ("pathway", '"lecture"'),
    ("drug_classes", '["D"]'),
    ("drug_classes", "[]"),
    ("completion_outcome", "99"),
])
def test_wrong_type_or_value_names_file_and_line(tmp_path, setting, bad):
    text = re.sub(rf"(?m)^{setting} = .*$", "", WORKSHOP.format(key="x")) + f"{setting} = {bad}\n"
    path = force_file(tmp_path, text)
    message = config_error(path)
    assert f"{path}:{line_of(path, setting + ' =')}:" in message
    assert setting in message


@pytest.mark.parametrize("ages", ["[9, 17]", "[18, 111]", "[30, 18]", "[18]", '["18", "110"]', "18"])
def test_bad_age_range_names_file_and_line(tmp_path, ages):
    path = force_file(tmp_path, WORKSHOP.format(key="x").replace("ages = [18, 110]", f"ages = {ages}"))
    message = config_error(path)
    assert f"{path}:{line_of(path, 'ages =')}:" in message
    assert "ages" in message


def contract(conditions: int) -> str:
    text = """\
        [schemes.contract]
        name = "Testshire contract"
        pathway = "contract"
        provider = "Navigators"
        ages = [18, 110]
        drug_classes = ["A", "B", "C"]
        contract_months = 4
        """
    for i in range(conditions):
        text += f'\n        [[schemes.contract.conditions]]\n        key = "c{i}"\n        text = "Condition {i}"\n'
    return text


def test_contract_with_five_conditions_loads(tmp_path):
    cfg = load_config(force_file(tmp_path, contract(5)))
    assert len(cfg.schemes["contract"].conditions) == 5
    assert "5 conditions" in cfg.schemes["contract"].describe_pathway()


def test_contract_with_six_conditions_rejected(tmp_path):
    path = force_file(tmp_path, contract(6))
    message = config_error(path)
    assert re.search(rf"{re.escape(str(path))}:\d+:", message)
    assert "1–5 conditions" in message


def test_contract_with_no_conditions_rejected(tmp_path):
    path = force_file(tmp_path, contract(0))
    assert str(path) in config_error(path)


def test_condition_due_after_the_contract_rejected(tmp_path):
    path = force_file(tmp_path, contract(1) + "        due_days = 500\n")
    message = config_error(path)
    assert f"{path}:{line_of(path, 'due_days')}:" in message


def test_duplicate_condition_keys_rejected(tmp_path):
    path = force_file(tmp_path, contract(2).replace('key = "c1"', 'key = "c0"'))
    assert "unique" in config_error(path)


@pytest.mark.parametrize("key", ["Dep_Adult", "-x", "a b", "x" * 41])
def test_bad_scheme_key_rejected(tmp_path, key):
    path = force_file(tmp_path, WORKSHOP.format(key=f'"{key}"'))
    assert str(path) in config_error(path)


def test_missing_required_setting_rejected(tmp_path):
    path = force_file(tmp_path, WORKSHOP.format(key="x").replace('provider = "Testshire Drug Service"\n', ""))
    message = config_error(path)
    assert "provider" in message and f"{path}:1:" in message


def test_bad_substance_class_names_file_and_line(tmp_path):
    path = force_file(tmp_path, '[substances.cannabis]\nlabel = "Cannabis"\nclass = "D"\n')
    message = config_error(path)
    assert f"{path}:3:" in message and "cannabis" in message


def test_bad_cost_names_file_and_line(tmp_path):
    path = force_file(tmp_path, '[costs]\nprosecution = -5\n')
    assert f"{path}:2:" in config_error(path)


def test_empty_schemes_table_rejected(tmp_path):
    path = force_file(tmp_path, "[schemes]\n")
    assert "no schemes" in config_error(path)


def test_unreadable_file_rejected(tmp_path):
    path = tmp_path / "binary.toml"
    path.write_bytes(b"\xff\xfe\x00not utf-8")
    assert str(path) in config_error(path)


def test_nested_list_in_drug_classes_is_a_config_error(tmp_path):
    path = force_file(tmp_path, WORKSHOP.format(key="x").replace('drug_classes = ["A", "B"]',
                                                                 'drug_classes = [["A"]]'))
    config_error(path)


def test_misspelt_top_level_table_rejected(tmp_path):
    path = force_file(tmp_path, WORKSHOP.format(key="x").replace("[schemes.", "[schemse."))
    assert str(path) in config_error(path)


# --- fingerprint ----------------------------------------------------------------

def test_fingerprint_is_stable():
    assert load_config(None).fingerprint == SHIPPED.fingerprint
    assert re.fullmatch(r"[0-9a-f]{16}", SHIPPED.fingerprint)


def test_fingerprint_changes_when_config_changes(tmp_path):
    one = load_config(force_file(tmp_path, WORKSHOP.format(key="x"), "one.toml"))
    same = load_config(force_file(tmp_path, WORKSHOP.format(key="x"), "same.toml"))
    other = load_config(force_file(tmp_path, WORKSHOP.format(key="x").replace("deadline_days = 28",
                                                                                "deadline_days = 29"), "two.toml"))
    costs = load_config(force_file(tmp_path, "[costs]\nprosecution = 2500\n", "costs.toml"))
    assert one.fingerprint == same.fingerprint
    assert len({SHIPPED.fingerprint, one.fingerprint, other.fingerprint, costs.fingerprint}) == 4


@pytest.mark.parametrize("typed, key, drug_class", [
    ("crystal meth", "methylamphetamine", "A"), ("tramadol", "tramadol", "C"),
    ("lyrica", "pregabalin", "C"), ("gabapentin", "gabapentin", "C")])
def test_substances_named_in_the_domain_reference_are_known(typed, key, drug_class):
    """domain.md: methylamphetamine class A since 2007; tramadol C since 2014; pregabalin and gabapentin C
    since April 2019."""
    from diversion_cli.config import load_config

    found = load_config(None).substance(typed)
    assert (found.key, found.drug_class) == (key, drug_class)
