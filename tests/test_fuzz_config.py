"""Fuzzing the config loader (issue 8): random YAML trees, the real config/default.yaml with values mutated
to extremes, wrong types and alias bombs, and ``--set`` texts. Whatever the input, the outcome is a valid
Config that wires an engine for the real instrument, or a ConfigError whose every message names a field
(or, for text that is not YAML at all, says so with its position); never another exception; messages are
bounded (so a value is never printed whole, nor walked).

The CI budget is set by ``MMCORE_FUZZ_EXAMPLES`` (default 150 per test, a few seconds in all); a longer run:
``MMCORE_FUZZ_EXAMPLES=20000 .venv/bin/python -m pytest -q -p no:cacheprovider tests/test_fuzz_config.py``.
"""
import copy
import dataclasses
import os
import re

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmcore.config import FIELDS, RISK_SECTION, ConfigError, load_yaml, parse_override, validate, _set
from mmcore.instruments import load_instrument
from mmcore.persistence.journal import NullJournal
from mmcore.risk_config import RiskConfig
from mmcore.engine.wiring import build_engine, sim_models

from datafiles import ROOT

EXAMPLES = int(os.environ.get("MMCORE_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
DEFAULT_TEXT = (ROOT / "config" / "default.yaml").read_text()
DEFAULT_TREE = yaml.safe_load(DEFAULT_TEXT)
PATHS = [f.path for f in FIELDS] + [f"{RISK_SECTION}.{f.name}" for f in dataclasses.fields(RiskConfig)]
SOURCE = "<fuzz>"
#: A message names its field: "<field>: ..." or "<field> = <value>: ..." (unknown fields are named too), or
#: "--set <field> ..." for an override, or the whole text is not YAML.
NAMED = re.compile(r"^(?:<fuzz>: )?(?:--set )?(?:\(top level\)|[^\s=:]+)(?: = | ?:)")
MAX_MESSAGE = 2500

#: Extreme and wrong-typed YAML scalars (text), at integer and float boundaries.
EXTREME_TEXT = [
    "9" * 400, "-" + "9" * 400, "1" + "0" * 5000, "1e400", "1.0e+400", "-1.0e+400", "1.0e+300", "1.0e-400",
    ".inf", "-.inf", ".nan", "0", "-0", "-1", "0.0", "1", "2", str(2**31 - 1), str(2**31), str(2**53), str(2**53 + 1),
    str(2**60), str(2**63 - 1), str(2**63), str(2**64), str(-2**63), str(-2**63 - 1), "0x7fffffffffffffff",
    "0o777", "0b1010", "1_000", "190:20:30", "1.7976931348623157e+308", "5e-324", "true", "false", "null", "~",
    "''", '""', "'x'", "'0.002'", "'1e400'", "'" + "1" * 100 + "'", "[]", "{}", "[1, 2]", "{a: 1}", "[[[[1]]]]",
    "2024-02-30", "2024-01-01", "!!binary aGVsbG8=", "!!float abc", "!!int 12", "!!str 5", "!!set {a, b}",
    '"\\0"', "'a\\0b'", "FULL", "NORMAL", "replay", "auto", "binance_usdm", "mm-", "x" * 5000,
]
BOMB = "&bomb [" + ", ".join(["&l1 [" + ", ".join(["ha"] * 10) + "]"] + ["*l1"] * 9) + "]"

ints = st.one_of(st.integers(-2**70, 2**70), st.sampled_from([0, 1, -1, 2**31 - 1, 2**53, 2**63 - 1, 2**63, -2**63,
                                                              10**400]))
floats = st.floats(allow_nan=True, allow_infinity=True)
scalars = st.one_of(st.none(), st.booleans(), ints, floats, st.text(max_size=30),
                    st.decimals(allow_nan=False, allow_infinity=False).map(str))
values = st.recursive(scalars, lambda kids: st.one_of(st.lists(kids, max_size=5),
                                                      st.dictionaries(st.text(max_size=8), kids, max_size=4)),
                      max_leaves=20)


@pytest.fixture(scope="module")
def instrument():
    return load_instrument("binance_usdm", "BTCUSDT")


def _check_outcome(tree, instrument, source=SOURCE):
    """The property: a valid, wirable Config, or a ConfigError of named, bounded messages."""
    try:
        config = validate(tree, source)
        build_engine(config, instrument, exec_client=None, journal=NullJournal(), book=object())  # no book needed
        sim_models(config, instrument)
    except ConfigError as exc:
        assert exc.errors
        for msg in exc.errors:
            assert len(msg) < MAX_MESSAGE, msg[:300]
            assert NAMED.match(msg) or "not valid YAML" in msg, msg[:300]
        return False
    return True


def _default_tree():
    return copy.deepcopy(DEFAULT_TREE)


@FUZZ
@given(tree=values)
def test_any_yaml_tree_is_a_config_or_named_errors(tree, instrument):
    _check_outcome(tree, instrument)


@FUZZ
@given(changes=st.lists(st.tuples(st.sampled_from(PATHS + ["strategy", "risk", "sim", "extra.field", "risk.nope"]),
                                  values), min_size=1, max_size=4))
def test_the_default_config_with_fields_replaced_by_random_values(changes, instrument):
    tree = _default_tree()
    for path, value in changes:
        try:
            _set(tree, path, value)
        except ConfigError as exc:                     # a path through a non-section: named, as --set says
            assert all(NAMED.match(m) for m in exc.errors)
    _check_outcome(tree, instrument)


@FUZZ
@given(edits=st.lists(st.tuples(st.sampled_from([p.split(".")[-1] for p in PATHS]),
                                st.one_of(st.sampled_from(EXTREME_TEXT + [BOMB, "*bomb"]),
                                          st.text(max_size=20))), min_size=1, max_size=5))
def test_the_default_yaml_text_with_values_mutated_to_extremes(edits, instrument):
    text = DEFAULT_TEXT
    for key, new in edits:
        text = re.sub(rf"(?m)^(\s*{re.escape(key)}:)[^#\n]*", lambda m: f"{m.group(1)} {new} ", text, count=1)
    try:
        tree = load_yaml(text, SOURCE)
    except ConfigError as exc:
        assert all("not valid YAML" in m and len(m) < MAX_MESSAGE for m in exc.errors)
        return
    _check_outcome(tree, instrument)


@FUZZ
@given(key=st.one_of(st.sampled_from(PATHS), st.text(max_size=20)),
       value=st.one_of(st.sampled_from(EXTREME_TEXT), st.text(max_size=40)))
def test_set_overrides_go_through_the_same_checks(key, value, instrument):
    tree = _default_tree()
    try:
        path, parsed = parse_override(f"{key}={value}")
        _set(tree, path, parsed)
    except ConfigError as exc:
        for msg in exc.errors:
            assert msg.startswith("--set ") and len(msg) < MAX_MESSAGE, msg[:300]
        return
    _check_outcome(tree, instrument)
