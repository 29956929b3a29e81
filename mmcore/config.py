"""Configuration: YAML under ``config/``, every field validated at start.

A bad value stops the start with one message per bad field naming the field, the value and the allowed
range (the CLI prints them and exits with code 2, no traceback). ``--set key=value`` overrides use dotted
paths (``strategy.gamma=0.1``), the value parsed as YAML.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Callable

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = ROOT / "config" / "default.yaml"


class ConfigError(ValueError):
    """One or more invalid fields; ``errors`` lists one message per field."""

    def __init__(self, errors: list[str]):
        super().__init__("\n".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class Field:
    """A config field: dotted path, parser, check, and the allowed range as text for messages."""

    path: str
    parse: Callable[[Any], Any]
    check: Callable[[Any], bool]
    allowed: str


def _num(v):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError
    return float(v)


def _int(v):
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError
    return v


def _dec(v):
    if isinstance(v, bool) or not isinstance(v, (str, int, float)):
        raise TypeError
    try:
        d = Decimal(str(v))
    except InvalidOperation:
        raise TypeError from None
    if not d.is_finite():
        raise TypeError
    return d


def _str(v):
    if not isinstance(v, str) or not v:
        raise TypeError
    return v


def _bool(v):
    if not isinstance(v, bool):
        raise TypeError
    return v


def _opt_str(v):
    if v is None:
        return None
    return _str(v)



FIELDS: tuple[Field, ...] = (
    Field("mode", _str, lambda v: v in ("replay",), "one of: replay"),
    Field("data.path", _str, lambda v: True, "a recording file (.gz or text)"),
    Field("data.market", _str, lambda v: v in ("auto", "binance_spot", "binance_usdm"),
          "one of: auto, binance_spot, binance_usdm"),
    Field("data.instruments", _str, lambda v: True, "a YAML instrument table"),
    Field("strategy.model", _str, lambda v: v in ("avellaneda_stoikov",), "one of: avellaneda_stoikov"),
    Field("strategy.order_qty", _dec, lambda v: v > 0, "> 0 (base units)"),
    Field("strategy.gamma", _num, lambda v: 0 < v <= 100, "0 < gamma <= 100 (1/quote currency)"),
    Field("strategy.kappa", _num, lambda v: 0 < v <= 1e6, "0 < kappa <= 1e6 (1/quote currency)"),
    Field("strategy.horizon_s", _num, lambda v: 0 < v <= 86400, "0 < T <= 86400 seconds"),
    Field("strategy.sigma_seed", _num, lambda v: 0 <= v <= 1e6, "0 <= sigma_seed <= 1e6 (quote per sqrt(s))"),
    Field("strategy.sigma_half_life_s", _num, lambda v: 0 < v <= 86400, "0 < half-life <= 86400 seconds"),
    Field("strategy.sigma_sample_ms", _int, lambda v: 1 <= v <= 60000, "1 <= interval <= 60000 ms"),
    Field("strategy.min_spread_bps", _num, lambda v: 0 <= v <= 10000, "0 <= min_spread_bps <= 10000"),
    Field("strategy.max_spread_bps", _num, lambda v: 0 < v <= 10000, "0 < max_spread_bps <= 10000"),
    Field("strategy.max_inventory", _dec, lambda v: v >= 0, ">= 0 (base units)"),
    Field("execution.price_tolerance_ticks", _int, lambda v: 0 <= v <= 1_000_000, "0 <= ticks <= 1000000"),
    Field("execution.order_price_deviation_bps", _num, lambda v: 0 <= v <= 10000, "0 <= bps <= 10000"),
    Field("execution.order_ttl_seconds", _num, lambda v: 0 < v <= 86400, "0 < ttl <= 86400 seconds"),
    Field("execution.max_orders_per_side", _int, lambda v: 1 <= v <= 100, "1 <= orders <= 100"),
    Field("execution.wait_for_cancel_ack", _bool, lambda v: True, "true or false"),
    Field("execution.reprice_post_only", _bool, lambda v: True, "true or false"),
    Field("execution.client_order_id_prefix", _str,
          lambda v: 2 <= len(v) <= 12 and v[-1] in "-_" and all(c.isalnum() or c in "-_" for c in v),
          "2-12 characters of [A-Za-z0-9_-] ending in '-' or '_'"),
    Field("execution.flatten_on_shutdown", _bool, lambda v: True, "true or false"),
    Field("execution.flat_retries", _int, lambda v: 0 <= v <= 100, "0 <= retries <= 100"),
    Field("execution.flat_retry_backoff", _num, lambda v: 0 <= v <= 3600, "0 <= seconds <= 3600"),
    Field("journal.path", _opt_str, lambda v: True, "null (off) or a SQLite file path"),
    Field("journal.synchronous", _str, lambda v: v in ("FULL", "NORMAL"), "one of: FULL, NORMAL"),
    Field("sim.entry_latency_ms", _num, lambda v: 0 <= v <= 60000, "0 <= latency <= 60000 ms"),
    Field("sim.cancel_latency_ms", _num, lambda v: 0 <= v <= 60000, "0 <= latency <= 60000 ms"),
    Field("sim.maker_fee_bps", _num, lambda v: -100 <= v <= 100, "-100 <= fee <= 100 bps"),
    Field("sim.taker_fee_bps", _num, lambda v: -100 <= v <= 100, "-100 <= fee <= 100 bps"),
    Field("report.out_dir", _str, lambda v: True, "a directory path"),
    Field("report.sample_ms", _int, lambda v: 1 <= v <= 3_600_000, "1 <= interval <= 3600000 ms"),
)
_BY_PATH = {f.path: f for f in FIELDS}
_TYPE_WORDS = {_num: "a number", _int: "an integer", _dec: "a decimal number", _str: "a non-empty string",
               _bool: "true or false", _opt_str: "null or a non-empty string"}
#: The ``risk:`` section is validated by :class:`mmcore.risk_config.RiskConfig` (field names are its own).
RISK_SECTION = "risk"


def _get(tree: dict, path: str):
    node = tree
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(path)
        node = node[part]
    return node


def _set(tree: dict, path: str, value) -> None:
    parts = path.split(".")
    node = tree
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError([f"--set {path}: {part} is not a section"])
    node[parts[-1]] = value


def _unknown(tree: dict, prefix: str = "") -> list[str]:
    out = []
    for key, val in tree.items():
        path = f"{prefix}{key}"
        if path == RISK_SECTION:
            continue
        if isinstance(val, dict) and any(f.path.startswith(path + ".") for f in FIELDS):
            out += _unknown(val, path + ".")
        elif path not in _BY_PATH:
            out.append(f"{path}: unknown field (known: {', '.join(sorted(_BY_PATH))})")
    return out


@dataclass(frozen=True)
class Config:
    """Validated configuration; ``get("strategy.gamma")`` returns the parsed value, ``risk`` the RiskConfig."""

    values: dict
    source: str
    risk: object = None

    def get(self, path: str):
        return self.values[path]

    def resolve_path(self, path: str) -> Path:
        """A path from the config, relative to the repository root when not absolute."""
        p = Path(path)
        return p if p.is_absolute() else (ROOT / p)


def validate(tree: dict, source: str = "<config>") -> Config:
    """Validate a config tree; return a :class:`Config` or raise :class:`ConfigError` listing every bad field."""
    if not isinstance(tree, dict):
        raise ConfigError([f"{source}: the top level must be a mapping"])
    errors = _unknown(tree)
    values = {}
    for f in FIELDS:
        try:
            raw = _get(tree, f.path)
        except KeyError:
            errors.append(f"{f.path}: missing (allowed: {f.allowed})")
            continue
        try:
            val = f.parse(raw)
        except (TypeError, ValueError):
            errors.append(f"{f.path} = {raw!r}: must be {_TYPE_WORDS[f.parse]}, {f.allowed}")
            continue
        if not f.check(val):
            errors.append(f"{f.path} = {raw!r}: out of range (allowed: {f.allowed})")
            continue
        values[f.path] = val
    if not errors:
        if values["strategy.min_spread_bps"] > values["strategy.max_spread_bps"]:
            errors.append(f"strategy.min_spread_bps = {values['strategy.min_spread_bps']}: must be <= "
                          f"strategy.max_spread_bps ({values['strategy.max_spread_bps']})")
    risk = _risk_config(tree.get(RISK_SECTION, {}), errors)
    if errors:
        raise ConfigError([f"{source}: {e}" for e in errors])
    return Config(values=values, source=source, risk=risk)


def _risk_config(section, errors: list):
    """Build the RiskConfig from the ``risk:`` section (missing fields take the seed-design defaults)."""
    import dataclasses

    from mmcore.risk_config import RiskConfig

    if not isinstance(section, dict):
        errors.append(f"{RISK_SECTION}: must be a mapping of RiskConfig fields")
        return None
    known = {f.name for f in dataclasses.fields(RiskConfig)}
    for key in section:
        if key not in known:
            errors.append(f"{RISK_SECTION}.{key}: unknown field (known: {', '.join(sorted(known))})")
    kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in section.items() if k in known}
    try:
        return RiskConfig(**kwargs)
    except (TypeError, ValueError) as exc:
        errors.append(str(exc).replace("RiskConfig.", f"{RISK_SECTION}.", 1))
        return None


def parse_override(text: str) -> tuple[str, Any]:
    """``"strategy.gamma=0.1"`` -> ``("strategy.gamma", 0.1)``; the value is parsed as YAML."""
    if "=" not in text:
        raise ConfigError([f"--set {text!r}: expected key=value"])
    key, _, raw = text.partition("=")
    key = key.strip()
    if key not in _BY_PATH and not key.startswith(RISK_SECTION + "."):
        raise ConfigError([f"--set {key}: unknown field (known: {', '.join(sorted(_BY_PATH))})"])
    try:
        return key, yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ConfigError([f"--set {key}: value {raw!r} is not valid YAML: {exc}"]) from None


def load_config(path: str | Path = DEFAULT_CONFIG, overrides: list[str] = ()) -> Config:
    """Read YAML, apply ``key=value`` overrides, validate. Raises ConfigError (fields named) or OSError."""
    path = Path(path)
    try:
        with open(path, "r", encoding="utf-8") as fh:
            tree = yaml.safe_load(fh)
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: not valid YAML: {exc}"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None
    tree = copy.deepcopy(tree) if isinstance(tree, dict) else tree
    for text in overrides:
        key, val = parse_override(text)
        if not isinstance(tree, dict):
            break
        _set(tree, key, val)
    return validate(tree, str(path))
