"""Configuration: YAML under ``config/``, every field validated at start.

A bad value stops the start with one message per bad field naming the field, the value and the allowed
range (the CLI prints them and exits with code 2, no traceback). ``--set key=value`` overrides use dotted
paths (``strategy.gamma=0.1``), the value parsed as YAML by the same loader as the file.

Hostile input: a value is shown in messages by :func:`brief` (bounded: a container as its type and size, a
long string or integer shortened), never by a full ``repr``; validation never walks or copies a value
beyond the top level of the field it checks, so a YAML alias bomb costs what its text costs. A config file
must be a regular file of at most :data:`MAX_CONFIG_BYTES`; an integer YAML cannot build (more than 4300
digits), a float or date it cannot parse reach the field check as a placeholder and are refused there
naming the field.
"""
from __future__ import annotations

import math
import os
import stat
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Callable

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = ROOT / "config" / "default.yaml"
#: Largest config file read (bytes); the bundled default is about 5 KB.
MAX_CONFIG_BYTES = 1 << 20
#: Longest decimal string accepted for a decimal field (characters).
MAX_DECIMAL_CHARS = 64


class Unparsable:
    """A YAML scalar the loader could not turn into its type (an integer of more than 4300 digits, a float
    or timestamp that does not parse): kept as a placeholder so the field check refuses it by name."""

    __slots__ = ("what",)

    def __init__(self, what: str):
        self.what = what

    def __repr__(self) -> str:
        return f"<{self.what}>"


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """``yaml.SafeLoader`` (libyaml's parser when PyYAML has it: faster, and it caps the nesting depth) whose
    int/float/timestamp constructors never raise ValueError (see Unparsable)."""


def _safe_scalar(base, what):
    def construct(loader, node):
        try:
            return base(loader, node)
        except (ValueError, OverflowError):
            n = len(node.value)
            return Unparsable(f"unloadable {what} of {n} characters" if n > 40 else f"unloadable {what} {node.value!r}")
    return construct


_Loader.add_constructor("tag:yaml.org,2002:int", _safe_scalar(yaml.SafeLoader.construct_yaml_int, "integer"))
_Loader.add_constructor("tag:yaml.org,2002:float", _safe_scalar(yaml.SafeLoader.construct_yaml_float, "float"))
_Loader.add_constructor("tag:yaml.org,2002:timestamp", _safe_scalar(yaml.SafeLoader.construct_yaml_timestamp, "date"))


def load_yaml(text, what: str):
    """Parse YAML text (str or a text stream) with the config loader.

    Raises ConfigError ``<what>: not valid YAML: <problem and position>`` (also for nesting deeper than the
    parser's recursion allows).
    """
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise ConfigError([f"{what}: not valid YAML: {brief_text(str(exc), 300)}"]) from None
    except RecursionError:
        raise ConfigError([f"{what}: not valid YAML: nested deeper than the loader allows"]) from None


def brief_text(text: str, limit: int = 80) -> str:
    """``text`` cut to ``limit`` characters (with the total length when cut)."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


_SCALARS = (bool, float, Decimal, type(None))


def brief(v, limit: int = 60) -> str:
    """A bounded ``repr`` for messages: at most a few hundred characters, whatever ``v`` is, and without
    walking ``v`` beyond its first level (a YAML alias bomb is a DAG whose full repr is exponential).

    Scalars as ``repr`` (a string cut at ``limit`` characters, an integer of more than 40 digits as its
    digit count); a container of at most 8 scalars as its ``repr``; any other container as
    ``<list of N items>``; other objects as ``<type>``.
    """
    if isinstance(v, _SCALARS) or isinstance(v, Unparsable):
        return brief_text(repr(v), limit)
    if isinstance(v, int):
        if v.bit_length() > 132:           # more than 40 decimal digits
            return f"<integer of about {int(v.bit_length() * math.log10(2)) + 1} digits>"
        return repr(v)
    if isinstance(v, (str, bytes)):
        return repr(v) if len(v) <= limit else f"{v[:limit]!r}... ({len(v)} characters)"
    if isinstance(v, (list, tuple, dict, set, frozenset)):
        n = len(v)
        items = list(v.items()) if isinstance(v, dict) and n <= 8 else None
        flat = n <= 8 and all(isinstance(x, (str, int, bytes) + _SCALARS)
                              for x in ((x for kv in items for x in kv) if items is not None else v))
        if not flat:
            return f"<{type(v).__name__} of {n} item{'s' if n != 1 else ''}>"
        if items is not None:
            return "{" + ", ".join(f"{brief(k, 20)}: {brief(x, 20)}" for k, x in items) + "}"
        inner = ", ".join(brief(x, 20) for x in v)
        if isinstance(v, list):
            return f"[{inner}]"
        if isinstance(v, tuple):
            return f"({inner}{',' if n == 1 else ''})"
        return "{" + inner + "}" if n else f"{type(v).__name__}()"
    return f"<{type(v).__name__}>"


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
    try:
        return float(v)
    except OverflowError:                  # an integer beyond the float range: out of every range
        return math.inf if v > 0 else -math.inf


def _int(v):
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError
    return v


def _dec(v):
    if isinstance(v, bool) or not isinstance(v, (str, int, float)):
        raise TypeError
    if isinstance(v, int) and v.bit_length() > 200:
        return Decimal("Infinity") if v > 0 else Decimal("-Infinity")   # out of every range
    text = str(v).strip()
    if len(text) > MAX_DECIMAL_CHARS:
        raise TypeError
    try:
        d = Decimal(text)
    except InvalidOperation:
        raise TypeError from None
    if d.is_nan():
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


def _path(v):
    if not isinstance(v, str) or not v or "\0" in v:
        raise TypeError
    return v


def _opt_path(v):
    if v is None:
        return None
    return _path(v)


#: Largest number of symbols one process trades (``venue.symbols``).
MAX_SYMBOLS = 10
_SYMBOL_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")


def _symbols(v):
    """A list of 1..MAX_SYMBOLS distinct exchange symbols (``BTCUSDT``: 2-20 of A-Z 0-9), or a comma-separated
    string of them (the CLI's ``--symbols``)."""
    if isinstance(v, str):
        v = [x.strip() for x in v.split(",")]
    if not isinstance(v, list) or not 1 <= len(v) <= MAX_SYMBOLS:
        raise TypeError
    if not all(isinstance(x, str) and 2 <= len(x) <= 20 and set(x) <= _SYMBOL_CHARS for x in v):
        raise TypeError
    if len(set(v)) != len(v):
        raise TypeError
    return tuple(v)


def _opt_url(v):
    """None, or an ``http://host:port`` / ``https://host[:port]`` URL without a path (``venue.endpoint``)."""
    if v is None:
        return None
    from urllib.parse import urlsplit
    if not isinstance(v, str) or len(v) > 200:
        raise TypeError
    u = urlsplit(v)
    try:
        port = u.port
    except ValueError:
        raise TypeError from None
    if u.scheme not in ("http", "https") or not u.hostname or u.path not in ("", "/") or u.query or u.fragment \
            or (port is not None and not 1 <= port <= 65535):
        raise TypeError
    return v.rstrip("/")


#: Venue names (``venue.name``), the names the ``--market`` flag uses.
VENUES = ("binance_spot", "binance_usdm", "mexc")
#: Depth streams a Binance venue can subscribe to per market (the documented ones first; ``depth@0ms`` is the
#: undocumented real-time stream the bundled USDⓈ-M recording uses).
DEPTH_STREAMS = ("depth@100ms", "depth", "depth@500ms", "depth@0ms")
TRADE_STREAMS = ("auto", "trade", "aggTrade")

#: ``strategy.model``: every model the engine can run (mmcore_ext.strategy).
STRATEGY_MODELS = ("avellaneda_stoikov", "glft", "ladder", "band")
#: ``strategy.fair_price``: the price the strategy centres on (mmcore.engine.engine.FAIR_PRICES).
FAIR_PRICES = ("mid", "microprice", "twap", "external")
#: Queue models of the simulated exchange (``sim.queue_model``; :data:`mmcore.sim.models.QUEUE_MODELS`).
SIM_QUEUE_MODELS = ("conservative", "risk_averse", "prob_power", "prob_power2", "prob_power3", "prob_log",
                    "prob_log2")

#: Largest ``strategy.order_qty`` / ``max_inventory`` accepted by the config check (base units); the instrument
#: check at start is tighter (``LOT_SIZE.maxQty`` / ``max_qty`` of the pinned markets file, config/markets/).
MAX_BASE_QTY = Decimal(10) ** 9

FIELDS: tuple[Field, ...] = (
    Field("mode", _str, lambda v: v in ("replay", "paper", "live"), "one of: replay, paper, live"),
    Field("data.path", _path, lambda v: True, "a recording file (.gz or text)"),
    Field("data.market", _str, lambda v: v in ("auto", "binance_spot", "binance_usdm"),
          "one of: auto, binance_spot, binance_usdm"),
    Field("data.markets", _path, lambda v: True,
          "a directory of pinned markets files (<market>.json with its .sha256; see mmcore.venues.binance.markets)"),
    Field("strategy.model", _str, lambda v: v in STRATEGY_MODELS, "one of: " + ", ".join(STRATEGY_MODELS)),
    Field("strategy.improve_touch", _bool, lambda v: True, "true or false"),
    Field("strategy.fair_price", _str, lambda v: v in FAIR_PRICES, "one of: " + ", ".join(FAIR_PRICES)),
    Field("strategy.twap_window_s", _num, lambda v: 1 <= v <= 86400, "1 <= window <= 86400 seconds"),
    Field("strategy.reference_max_age_s", _num, lambda v: 0.01 <= v <= 3600, "0.01 <= age <= 3600 seconds"),
    Field("strategy.sigma_estimator", _str, lambda v: v in ("ewma", "realized"), "one of: ewma, realized"),
    Field("strategy.sigma_window_s", _num, lambda v: 1 <= v <= 86400, "1 <= window <= 86400 seconds"),
    Field("strategy.eta", _num, lambda v: 0 <= v <= 100, "0 <= eta <= 100 (size shape factor)"),
    Field("strategy.avellaneda_stoikov.horizon", _str, lambda v: v in ("cycle", "fixed", "infinite"),
          "one of: cycle (T restarts), fixed (T - t = T), infinite (the paper's section 2.4)"),
    Field("strategy.avellaneda_stoikov.spread", _str, lambda v: v in ("full", "constant"),
          "one of: full ((3.18) as written), constant ((2/gamma) ln(1 + gamma/kappa) alone)"),
    Field("strategy.ladder.inner_model", _str, lambda v: v in ("avellaneda_stoikov", "glft"),
          "one of: avellaneda_stoikov, glft"),
    Field("strategy.ladder.near_layers", _int, lambda v: 1 <= v <= 16, "1 <= layers <= 16"),
    Field("strategy.ladder.far_layers", _int, lambda v: 0 <= v <= 15, "0 <= layers <= 15"),
    Field("strategy.ladder.base_layer_size", _dec, lambda v: 0 < v <= MAX_BASE_QTY,
          f"0 < size <= {MAX_BASE_QTY} (base units, a multiple of the step size)"),
    Field("strategy.ladder.near_spacing_ticks", _int, lambda v: 1 <= v <= 1_000_000, "1 <= ticks <= 1000000"),
    Field("strategy.ladder.far_spacing_ticks", _int, lambda v: 1 <= v <= 1_000_000, "1 <= ticks <= 1000000"),
    Field("strategy.ladder.far_size_mult", _num, lambda v: 0 < v <= 1000, "0 < multiplier <= 1000"),
    Field("strategy.ladder.grinding_thresh", _num, lambda v: 0 < v <= 1000, "0 < fraction of max_inventory <= 1000"),
    Field("strategy.ladder.pinning_thresh", _num, lambda v: 0 < v <= 1000, "0 < fraction of max_inventory <= 1000"),
    Field("strategy.ladder.stop_loss_thresh", _num, lambda v: 0 < v <= 1000,
          "0 < fraction of max_inventory <= 1000 (above 1: off)"),
    Field("strategy.ladder.grind_factor", _num, lambda v: 0 <= v <= 1, "0 <= factor <= 1"),
    Field("strategy.band.reference", _str, lambda v: v in ("twap", "fair"),
          "one of: twap (the mid's TWAP over twap_window_s), fair (strategy.fair_price)"),
    Field("strategy.band.band_min", _num, lambda v: 0 <= v < 0.5, "0 <= fraction < 0.5 (0.002 = 0.2 %)"),
    Field("strategy.band.band_max", _num, lambda v: 0 < v < 0.5, "0 < fraction < 0.5"),
    Field("strategy.band.drift_threshold", _num, lambda v: 0 <= v < 0.5, "0 <= fraction < 0.5"),
    Field("strategy.band.target_orders_per_side", _int, lambda v: 1 <= v <= 16, "1 <= orders <= 16"),
    Field("strategy.band.min_order_value", _num, lambda v: 0 <= v <= 1e9, "0 <= value <= 1e9 (quote currency)"),
    Field("strategy.glft.A", _num, lambda v: 0 < v <= 1e9, "0 < A <= 1e9 (arrivals per second; glft seed)"),
    Field("strategy.glft.xi", _num, lambda v: 0 <= v <= 1e6,
          "0 <= xi <= 1e6 (glft, units of gamma; xi = gamma: the CARA model)"),
    Field("strategy.glft.intensity_estimate", _bool, lambda v: True, "true or false"),
    Field("strategy.glft.intensity_window_s", _num, lambda v: 1 <= v <= 86400, "1 <= window <= 86400 seconds"),
    Field("strategy.glft.intensity_bucket_ticks", _int, lambda v: 1 <= v <= 1_000_000, "1 <= ticks <= 1000000"),
    Field("strategy.glft.intensity_buckets", _int, lambda v: 2 <= v <= 10_000, "2 <= buckets <= 10000"),
    Field("strategy.glft.intensity_min_count", _int, lambda v: 1 <= v <= 1_000_000, "1 <= arrivals <= 1000000"),
    Field("strategy.glft.intensity_refit_s", _num, lambda v: 0.1 <= v <= 86400, "0.1 <= refit <= 86400 seconds"),
    Field("strategy.order_qty", _dec, lambda v: 0 < v <= MAX_BASE_QTY,
          f"0 < order_qty <= {MAX_BASE_QTY} (base units)"),
    Field("strategy.quote_on_book_ticker", _bool, lambda v: True, "true or false"),
    Field("strategy.gamma", _num, lambda v: 0 < v <= 1e6,
          "0 < gamma <= 1e6 (1 / (quote currency x base unit): independent of order_qty)"),
    Field("strategy.kappa", _num, lambda v: 0 < v <= 1e6, "0 < kappa <= 1e6 (1/quote currency)"),
    Field("strategy.horizon_s", _num, lambda v: 0 < v <= 86400, "0 < T <= 86400 seconds"),
    Field("strategy.sigma_seed", _num, lambda v: 0 <= v <= 1e6, "0 <= sigma_seed <= 1e6 (quote per sqrt(s))"),
    Field("strategy.sigma_half_life_s", _num, lambda v: 0 < v <= 86400, "0 < half-life <= 86400 seconds"),
    Field("strategy.sigma_sample_ms", _int, lambda v: 1 <= v <= 60000, "1 <= interval <= 60000 ms"),
    Field("strategy.min_spread_bps", _num, lambda v: 0 <= v <= 10000, "0 <= min_spread_bps <= 10000"),
    Field("strategy.max_spread_bps", _num, lambda v: 0 < v <= 10000, "0 < max_spread_bps <= 10000"),
    Field("strategy.max_inventory", _dec, lambda v: 0 <= v <= MAX_BASE_QTY,
          f"0 <= max_inventory <= {MAX_BASE_QTY} (base units)"),
    Field("execution.price_tolerance_ticks", _int, lambda v: 0 <= v <= 1_000_000, "0 <= ticks <= 1000000"),
    Field("execution.order_price_deviation_bps", _num, lambda v: 0 <= v <= 10000, "0 <= bps <= 10000"),
    Field("execution.order_ttl_seconds", _num, lambda v: 0 < v <= 86400, "0 < ttl <= 86400 seconds"),
    Field("execution.max_orders_per_side", _int, lambda v: 1 <= v <= 100, "1 <= orders <= 100"),
    Field("execution.wait_for_cancel_ack", _bool, lambda v: True, "true or false"),
    Field("execution.reprice_post_only", _bool, lambda v: True, "true or false"),
    Field("execution.amend_orders", _bool, lambda v: True, "true or false"),
    Field("execution.client_order_id_prefix", _str,
          lambda v: 2 <= len(v) <= 12 and v[-1] in "-_" and all(c.isalnum() or c in "-_" for c in v),
          "2-12 characters of [A-Za-z0-9_-] ending in '-' or '_'"),
    Field("execution.flatten_on_shutdown", _bool, lambda v: True, "true or false"),
    Field("execution.flat_retries", _int, lambda v: 0 <= v <= 100, "0 <= retries <= 100"),
    Field("execution.flat_retry_backoff", _num, lambda v: 0 <= v <= 3600, "0 <= seconds <= 3600"),
    Field("journal.path", _opt_path, lambda v: True, "null (off) or a SQLite file path"),
    Field("journal.synchronous", _str, lambda v: v in ("FULL", "NORMAL"), "one of: FULL, NORMAL"),
    Field("sim.entry_latency_ms", _num, lambda v: 0 <= v <= 60000, "0 <= latency <= 60000 ms"),
    Field("sim.cancel_latency_ms", _num, lambda v: 0 <= v <= 60000, "0 <= latency <= 60000 ms"),
    Field("sim.response_latency_ms", _num, lambda v: 0 <= v <= 60000, "0 <= latency <= 60000 ms"),
    Field("sim.queue_model", _str, lambda v: v in SIM_QUEUE_MODELS, "one of: " + ", ".join(SIM_QUEUE_MODELS)),
    Field("sim.queue_power_n", _num, lambda v: 0 < v <= 100, "0 < n <= 100 (prob_power*: f(x) = x**n)"),
    Field("sim.latency_model", _str, lambda v: v in ("constant", "recorded"), "one of: constant, recorded"),
    Field("sim.latency_file", _opt_path, lambda v: True,
          "null, or a CSV of ts_ns,entry_ns,response_ns rows (needed by sim.latency_model = recorded)"),
    Field("sim.latency_sampling", _str, lambda v: v in ("interpolate", "draw"), "one of: interpolate, draw"),
    Field("sim.seed", _int, lambda v: 0 <= v < 2 ** 63, "0 <= seed < 2**63"),
    Field("sim.feed_latency", _str, lambda v: v in ("none", "recorded"), "one of: none, recorded"),
    Field("sim.feed_latency_base_ms", _num, lambda v: 0 <= v <= 60000, "0 <= latency <= 60000 ms"),
    Field("sim.maker_fee_bps", _num, lambda v: -100 <= v <= 100, "-100 <= fee <= 100 bps"),
    Field("sim.taker_fee_bps", _num, lambda v: -100 <= v <= 100, "-100 <= fee <= 100 bps"),
    Field("venue.name", _str, lambda v: v in VENUES, "one of: " + ", ".join(VENUES)),
    Field("venue.symbols", _symbols, lambda v: True,
          f"a list of 1-{MAX_SYMBOLS} distinct exchange symbols such as BTCUSDT (A-Z, 0-9)"),
    Field("venue.testnet", _bool, lambda v: True, "true or false"),
    Field("venue.endpoint", _opt_url, lambda v: True,
          "null (the venue's own URLs) or http(s)://HOST:PORT (every URL of the venue on that host)"),
    Field("venue.markets_file", _opt_path, lambda v: True,
          "null (config/markets/<venue>.json) or a pinned markets JSON file"),
    Field("venue.strict_no_rest_markets", _bool, lambda v: True, "true or false"),
    Field("venue.depth_stream", _str, lambda v: v in DEPTH_STREAMS, "one of: " + ", ".join(DEPTH_STREAMS)),
    Field("venue.trade_stream", _str, lambda v: v in TRADE_STREAMS,
          "one of: auto (trade on spot, aggTrade on USDⓈ-M), trade, aggTrade"),
    Field("venue.book_ticker", _bool, lambda v: True, "true or false"),
    Field("venue.snapshot_limit", _int, lambda v: v in (5, 10, 20, 50, 100, 500, 1000),
          "one of: 5, 10, 20, 50, 100, 500, 1000 (levels per side)"),
    Field("venue.watchdog_s", _num, lambda v: 0.5 <= v <= 3600, "0.5 <= seconds <= 3600"),
    Field("venue.reconnect_initial_s", _num, lambda v: 0.01 <= v <= 60, "0.01 <= seconds <= 60"),
    Field("venue.reconnect_max_s", _num, lambda v: 0.1 <= v <= 3600, "0.1 <= seconds <= 3600"),
    Field("venue.rotate_after_s", _num, lambda v: 60 <= v <= 86_000, "60 <= seconds <= 86000 (Binance cuts at 24 h)"),
    Field("venue.polling_after_failures", _int, lambda v: 1 <= v <= 1000, "1 <= failures <= 1000"),
    Field("venue.polling_interval_s", _num, lambda v: 0.1 <= v <= 60, "0.1 <= seconds <= 60"),
    Field("venue.recv_window_ms", _int, lambda v: 1 <= v <= 60_000, "1 <= ms <= 60000 (Binance's maximum)"),
    Field("report.out_dir", _path, lambda v: True, "a directory path"),
    Field("report.sample_ms", _int, lambda v: 1 <= v <= 3_600_000, "1 <= interval <= 3600000 ms"),
    Field("report.status_every_s", _num, lambda v: v == 0 or 1 <= v <= 86400, "0 (off) or 1 <= seconds <= 86400"),
)
_BY_PATH = {f.path: f for f in FIELDS}
_TYPE_WORDS = {_symbols: "a list of symbols", _opt_url: "null or a URL",
               _num: "a number", _int: "an integer",
               _dec: f"a decimal number (at most {MAX_DECIMAL_CHARS} characters)", _str: "a non-empty string",
               _bool: "true or false", _path: "a non-empty path string", _opt_path: "null or a non-empty path string"}
#: The ``risk:`` section is validated by :class:`mmcore.risk_config.RiskConfig` (field names are its own).
RISK_SECTION = "risk"


#: Sections of the config file: every proper prefix of a field path (``strategy``, ``strategy.ladder``), and ``risk``.
SECTIONS = tuple(dict.fromkeys(".".join(f.path.split(".")[:i]) for f in FIELDS
                               for i in range(1, f.path.count(".") + 1))) + (RISK_SECTION,)


def _get(tree: dict, path: str):
    node = tree
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(path)
        node = node[part]
    return node


def _set(tree: dict, path: str, value) -> None:
    """Set ``path`` in ``tree``, copying each mapping on the way (one level, not deep): a section that YAML
    aliases from two places is not changed in both."""
    parts = path.split(".")
    node = tree
    for i, part in enumerate(parts[:-1]):
        child = node.get(part, {})
        if not isinstance(child, dict):
            raise ConfigError([f"--set {path}: {'.'.join(parts[:i + 1])} = {brief(child)} is not a section"])
        node[part] = child = dict(child)
        node = child
    node[parts[-1]] = value


def _key(key) -> str:
    return brief_text(str(key), 60) if isinstance(key, str) else brief(key, 60)


def _unknown(tree: dict, prefix: str = "") -> list[str]:
    out = []
    for key, val in tree.items():
        path = f"{prefix}{_key(key)}"
        if path == RISK_SECTION:
            continue
        if isinstance(val, dict) and path in SECTIONS:
            out += _unknown(val, path + ".")
        elif path not in _BY_PATH and path not in SECTIONS:
            known = sorted({p[len(prefix):].split(".")[0] for p in _BY_PATH if p.startswith(prefix)})
            out.append(f"{path}: unknown field (known{' in ' + prefix[:-1] if prefix else ''}: {', '.join(known)})")
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
    """Validate a config tree; return a :class:`Config` or raise :class:`ConfigError` listing every bad field.

    Besides each field's type and range, combinations that cannot work are refused (see
    :func:`_combinations`). Each message starts with ``<source>: <field>``.
    """
    if not isinstance(tree, dict):
        raise ConfigError([f"{source}: (top level) = {brief(tree)}: must be a mapping of sections "
                           f"({', '.join(SECTIONS)})"])
    errors = _unknown(tree)
    bad_sections = set()
    for sec in SECTIONS:
        if sec in tree and not isinstance(tree[sec], dict):
            bad_sections.add(sec)
            errors.append(f"{sec} = {brief(tree[sec])}: must be a mapping of the {sec} fields")
    values = {}
    for f in FIELDS:
        if f.path.split(".")[0] in bad_sections:
            continue
        try:
            raw = _get(tree, f.path)
        except KeyError:
            errors.append(f"{f.path}: missing (allowed: {f.allowed})")
            continue
        try:
            val = f.parse(raw)
        except (TypeError, ValueError, ArithmeticError):
            errors.append(f"{f.path} = {brief(raw)}: must be {_TYPE_WORDS[f.parse]}, {f.allowed}"
                          + _string_number_hint(f.parse, raw))
            continue
        if not f.check(val):
            errors.append(f"{f.path} = {brief(raw)}: out of range (allowed: {f.allowed})")
            continue
        values[f.path] = val
    risk = None if RISK_SECTION in bad_sections else _risk_config(tree.get(RISK_SECTION, {}), errors)
    if not errors:
        errors += _combinations(values, risk)
    if errors:
        raise ConfigError([f"{source}: {e}" for e in errors])
    return Config(values=values, source=source, risk=risk)


def _string_number_hint(parse, raw) -> str:
    """YAML 1.1 reads ``1e400`` (no dot) as a string: say so when a number field gets one."""
    if parse in (_num, _int) and isinstance(raw, str) and len(raw) <= MAX_DECIMAL_CHARS:
        try:
            float(raw)
        except ValueError:
            return ""
        return " (YAML read it as a string: write exponents with a dot and a sign, e.g. 1.0e+3)"
    return ""


def _combinations(v: dict, risk) -> list[str]:
    """Field combinations with which the engine could not quote at all (each field valid alone).

    - ``strategy.min_spread_bps`` above ``strategy.max_spread_bps``;
    - ``strategy.order_qty`` above ``strategy.max_inventory``: neither side could be quoted even when flat;
    - ``strategy.order_qty`` above the risk gate's position limit (``risk.max_position_base``, or
      ``risk.net_max * risk.max_position_fraction_of_net_max``): every order refused ``MAX_POSITION``;
    - ``strategy.min_spread_bps`` above ``risk.max_spread_frac`` (in bps): every quote refused
      ``SPREAD_TOO_WIDE`` (rounding to ticks only widens a quote).

    Instrument-dependent checks (step size, ``max_order_qty``, min notional, notional caps) are made when the
    engine is wired (:func:`mmcore.engine.wiring.build_engine`).
    """
    out = []
    qty, inv = v["strategy.order_qty"], v["strategy.max_inventory"]
    if v["strategy.min_spread_bps"] > v["strategy.max_spread_bps"]:
        out.append(f"strategy.min_spread_bps = {v['strategy.min_spread_bps']}: must be <= "
                   f"strategy.max_spread_bps ({v['strategy.max_spread_bps']})")
    if v["venue.reconnect_initial_s"] > v["venue.reconnect_max_s"]:
        out.append(f"venue.reconnect_initial_s = {v['venue.reconnect_initial_s']}: must be <= "
                   f"venue.reconnect_max_s ({v['venue.reconnect_max_s']})")
    if v["sim.latency_model"] == "recorded" and v["sim.latency_file"] is None:
        out.append("sim.latency_file = None: sim.latency_model = recorded needs a file of ts_ns,entry_ns,response_ns "
                   "rows")
    if qty > inv:
        out.append(f"strategy.order_qty = {qty}: must be <= strategy.max_inventory ({inv}): no side could be "
                   f"quoted, even with a flat position")
    if v["strategy.ladder.near_layers"] + v["strategy.ladder.far_layers"] > 16:
        out.append(f"strategy.ladder.far_layers = {v['strategy.ladder.far_layers']}: near_layers + far_layers must "
                   f"be <= 16 (near_layers = {v['strategy.ladder.near_layers']})")
    g, p, sl = (v[f"strategy.ladder.{k}_thresh"] for k in ("grinding", "pinning", "stop_loss"))
    if not g <= p <= sl:
        out.append(f"strategy.ladder.pinning_thresh = {p}: must satisfy grinding_thresh ({g}) <= pinning_thresh "
                   f"<= stop_loss_thresh ({sl})")
    if v["strategy.ladder.base_layer_size"] > inv and v["strategy.model"] == "ladder":
        out.append(f"strategy.ladder.base_layer_size = {v['strategy.ladder.base_layer_size']}: must be <= "
                   f"strategy.max_inventory ({inv}): no layer could be quoted")
    if v["strategy.band.band_min"] > v["strategy.band.band_max"]:
        out.append(f"strategy.band.band_min = {v['strategy.band.band_min']}: must be <= strategy.band.band_max "
                   f"({v['strategy.band.band_max']})")
    if risk is not None:
        caps = []
        if risk.max_position_base is not None:
            caps.append(("risk.max_position_base", Decimal(str(risk.max_position_base))))
        if risk.net_max is not None:
            caps.append(("risk.net_max * risk.max_position_fraction_of_net_max",
                         Decimal(str(risk.net_max)) * Decimal(str(risk.max_position_fraction_of_net_max))))
        for name, cap in caps:
            if qty > cap:
                out.append(f"strategy.order_qty = {qty}: must be <= the risk position limit {name} ({cap}): "
                           f"the risk gate would refuse every order (MAX_POSITION)")
        wide = risk.max_spread_frac * 10_000
        if v["strategy.min_spread_bps"] > wide:
            out.append(f"strategy.min_spread_bps = {v['strategy.min_spread_bps']}: must be <= risk.max_spread_frac "
                       f"({risk.max_spread_frac} = {wide:g} bps): the risk gate would refuse every quote "
                       f"(SPREAD_TOO_WIDE)")
    return out


def _risk_config(section, errors: list):
    """Build the RiskConfig from the ``risk:`` section (missing fields take the seed-design defaults)."""
    import dataclasses

    from mmcore.risk_config import RiskConfig

    known = {f.name for f in dataclasses.fields(RiskConfig)}
    for key in section:
        if key not in known:
            errors.append(f"{RISK_SECTION}.{_key(key)}: unknown field (known: {', '.join(sorted(known))})")
    kwargs = {k: v for k, v in section.items() if k in known}
    try:
        return RiskConfig(**kwargs)
    except (TypeError, ValueError) as exc:
        errors += [line.replace("RiskConfig.", f"{RISK_SECTION}.", 1) for line in str(exc).splitlines()]
        return None


def parse_override(text: str) -> tuple[str, Any]:
    """``"strategy.gamma=0.1"`` -> ``("strategy.gamma", 0.1)``; the value is parsed as YAML (the same loader
    as the file). Raises ConfigError naming ``--set KEY``."""
    if "=" not in text:
        raise ConfigError([f"--set {brief(text)}: expected key=value"])
    key, _, raw = text.partition("=")
    key = key.strip()
    if key not in _BY_PATH and not key.startswith(RISK_SECTION + "."):
        section = key.rpartition(".")[0]
        while section and section not in SECTIONS:
            section = section.rpartition(".")[0]
        known = sorted(p for p in _BY_PATH if p.startswith(section + ".")) if section else sorted(_BY_PATH)
        raise ConfigError([f"--set {brief_text(key, 60)}: unknown field (known: {', '.join(known)})"])
    return key, load_yaml(raw, f"--set {key} = {brief(raw)}")


def _read_config_file(path: Path) -> str:
    """The text of a config file: a regular file (opened without blocking, so a FIFO is refused, not waited
    on) of at most MAX_CONFIG_BYTES, UTF-8. Raises ConfigError naming the file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None
    with open(fd, "rb", closefd=True) as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError([f"{path}: not a regular file ({file_kind(st.st_mode)})"])
        if st.st_size > MAX_CONFIG_BYTES:
            raise ConfigError([f"{path}: {st.st_size} bytes, larger than the {MAX_CONFIG_BYTES} bytes a config "
                               f"may have"])
        try:
            data = fh.read(MAX_CONFIG_BYTES + 1)
        except OSError as exc:
            raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError([f"{path}: larger than the {MAX_CONFIG_BYTES} bytes a config may have"])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not UTF-8 text (byte {exc.start})"]) from None


def file_kind(mode: int) -> str:
    """``st_mode`` in words: "a directory", "a FIFO", "a character device", ..."""
    for test, word in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISREG, "a regular file")):
        if test(mode):
            return word
    return "not a regular file"


def load_config(path: str | Path = DEFAULT_CONFIG, overrides: list[str] = ()) -> Config:
    """Read YAML, apply ``key=value`` overrides, validate.

    Raises
    ------
    ConfigError
        One message per problem, each naming the field (or the file: unreadable, not a regular file, larger
        than MAX_CONFIG_BYTES, not UTF-8, not valid YAML).
    """
    path = Path(path)
    tree = load_yaml(_read_config_file(path), str(path))
    for text in overrides:
        key, val = parse_override(text)
        if not isinstance(tree, dict):
            break
        _set(tree, key, val)
    return validate(tree, str(path))
