"""The venue's exchangeInfo and instruments for the emulated symbols, and the order filters taken from it.

Source of truth: the pinned markets file (``venue.markets_file`` / ``data.markets``, default
``config/markets/<market>.json``, checked against its ``.sha256``), the same file the engine reads its instruments
from. Its ``exchangeInfo`` is served as is (``serverTime`` updated per answer).
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

from mmcore.instruments import markets_file as markets_file_of


@dataclass(frozen=True)
class SymbolRules:
    """The order filters of one symbol (Decimal, 0 = filter disabled), from its exchangeInfo entry.

    Spot filters.md [S-FILT]: PRICE_FILTER (minPrice, maxPrice, tickSize), LOT_SIZE (minQty, maxQty, stepSize),
    NOTIONAL / MIN_NOTIONAL (minNotional); USDⓈ-M [UM-EXI]: the same PRICE_FILTER and LOT_SIZE, MIN_NOTIONAL
    (``notional``)."""

    symbol: str
    base: str
    quote: str
    tick: Decimal
    min_price: Decimal
    max_price: Decimal
    step: Decimal
    min_qty: Decimal
    max_qty: Decimal
    min_notional: Decimal
    order_types: tuple


@dataclass(frozen=True)
class Markets:
    """``exchange_info``: the dict served (a private copy; ``serverTime`` is set per answer); ``instruments`` and
    ``rules`` by symbol; ``source``: where it came from (a file path or ``instrument table <path>``)."""

    market: str
    exchange_info: dict
    instruments: dict
    rules: dict
    source: str


def _dec(v, what: str) -> Decimal:
    try:
        d = Decimal(str(v))
    except (InvalidOperation, ValueError):
        raise ValueError(f"{what} = {str(v)[:40]!r}: not a decimal number") from None
    if not d.is_finite() or d < 0:
        raise ValueError(f"{what} = {str(v)[:40]!r}: not a finite number >= 0")
    return d


def _filters(sym: dict) -> dict:
    out = {}
    for f in sym.get("filters") or []:
        if isinstance(f, dict) and isinstance(f.get("filterType"), str):
            out[f["filterType"]] = f
    return out


def rules_of(sym: dict) -> SymbolRules:
    """SymbolRules from one exchangeInfo ``symbols[]`` entry. Raises ValueError naming a missing/bad field."""
    name = sym.get("symbol")
    if not isinstance(name, str) or not name:
        raise ValueError("exchangeInfo symbol without a 'symbol' name")
    f = _filters(sym)
    try:
        pf, lf = f["PRICE_FILTER"], f["LOT_SIZE"]
    except KeyError as exc:
        raise ValueError(f"exchangeInfo {name}: no {exc.args[0]} filter") from None
    nf = f.get("NOTIONAL") or f.get("MIN_NOTIONAL") or {}
    notional = nf.get("minNotional", nf.get("notional", "0"))
    tick = _dec(pf.get("tickSize"), f"{name} PRICE_FILTER.tickSize")
    step = _dec(lf.get("stepSize"), f"{name} LOT_SIZE.stepSize")
    if tick <= 0 or step <= 0:
        raise ValueError(f"exchangeInfo {name}: tickSize and stepSize must be > 0")
    return SymbolRules(name, str(sym.get("baseAsset", "")), str(sym.get("quoteAsset", "")), tick,
                       _dec(pf.get("minPrice", "0"), f"{name} minPrice"),
                       _dec(pf.get("maxPrice", "0"), f"{name} maxPrice"), step,
                       _dec(lf.get("minQty", "0"), f"{name} minQty"), _dec(lf.get("maxQty", "0"), f"{name} maxQty"),
                       _dec(notional, f"{name} min notional"), tuple(sym.get("orderTypes") or ()))


def load_markets(market: str, symbols: list[str], markets_file: str | Path | None = None) -> Markets:
    """The Markets of ``symbols`` on ``market`` from the pinned markets file (``markets_file``: a file or a
    directory holding ``<market>.json``; default ``config/markets/<market>.json``), read and checksum-checked by
    :func:`mmcore.venues.binance.markets.load_markets`: the one instrument source of the engine and the emulator.
    Its exchangeInfo, restricted to ``symbols``, is what the emulator serves. Raises ValueError naming the file
    and the problem (missing, checksum, a bad field, a symbol not pinned)."""
    from mmcore.venues.binance.markets import load_markets as load_pinned
    path = markets_file_of(market, markets_file)
    pinned = load_pinned(path, market)
    have = set(pinned.symbols())
    missing = [s for s in symbols if s not in have]
    if missing:
        raise ValueError(f"{path}: symbol(s) {', '.join(missing)} not pinned (have: {', '.join(pinned.symbols())})")
    info = pinned.exchange_info()
    by_name = {s["symbol"]: s for s in info["symbols"]}
    info["symbols"] = [by_name[s] for s in symbols]
    return Markets(market, info, {s: pinned.instrument(s) for s in symbols},
                   {s: rules_of(by_name[s]) for s in symbols}, str(path))
