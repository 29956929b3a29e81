"""The instrument a Tardis file is read with: the pinned rules of the exchange's market, with the tick / lot of the
data's date where they differ (:func:`with_grid`), or only a grid for an exchange mmcore has no rules for
(:func:`generic_instrument`). Ticks are the price unit and lots the quantity unit inside mmcore."""
from __future__ import annotations

import dataclasses
from decimal import Decimal, InvalidOperation

from mmcore.instruments import MAX_UNITS, Instrument

__all__ = ["EXCHANGE_MARKETS", "generic_instrument", "market_of_exchange", "with_grid"]

#: Tardis exchange id -> mmcore market (the pinned markets file the instrument comes from).
EXCHANGE_MARKETS = {"binance-futures": "binance_usdm", "binance": "binance_spot"}


def market_of_exchange(exchange: str) -> str:
    """The mmcore market of a Tardis exchange id (``binance-futures`` -> ``binance_usdm``, ``binance`` ->
    ``binance_spot``). Raises ValueError for any other."""
    try:
        return EXCHANGE_MARKETS[exchange]
    except KeyError:
        raise ValueError(f"Tardis exchange {exchange[:40]!r} has no mmcore market (known: "
                         + ", ".join(f"{k} -> {v}" for k, v in EXCHANGE_MARKETS.items()) + ")") from None


def _step(name: str, value) -> Decimal:
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{name} {value!r}: not a decimal number") from None
    if not d.is_finite() or d <= 0 or len(str(value)) > 40:
        raise ValueError(f"{name} {value!r}: must be a decimal > 0, e.g. 0.01")
    return d


def _decimals(step: Decimal) -> int:
    return max(0, -step.normalize().as_tuple().exponent)


def with_grid(inst: Instrument, tick_size=None, lot_size=None) -> Instrument:
    """``inst`` with another tick (price unit) and / or lot (quantity unit), for data recorded under older rules.

    The instrument's other rules (bounds, filters, fees' market) are kept; the price precision grows to the tick's
    decimals. Raises ValueError for a tick / lot that is not a decimal > 0, or a lot of which the order step is not
    a multiple (the message names the option)."""
    changes = {}
    if tick_size is not None:
        tick = _step("--tick-size", tick_size)
        changes.update(tick_size=tick, price_precision=max(inst.price_precision, _decimals(tick)))
    if lot_size is not None:
        lot = _step("--lot-size", lot_size)
        if inst.step_size % lot:
            raise ValueError(f"--lot-size {lot_size}: the order step {inst.step_size} of {inst.symbol} is not a "
                             f"multiple of it")
        changes.update(lot_size=lot, quantity_precision=max(inst.quantity_precision, _decimals(lot)))
    try:
        return dataclasses.replace(inst, **changes) if changes else inst
    except ValueError as exc:
        raise ValueError(f"--tick-size / --lot-size: {exc}") from None


def generic_instrument(exchange: str, symbol: str, tick_size, lot_size) -> Instrument:
    """An instrument with only a grid (tick, lot) and the widest bounds (2**53 ticks / lots), for reading the files
    of an exchange mmcore has no pinned rules for (parsing only: replay needs :func:`market_of_exchange`). Raises
    ValueError for a tick / lot that is not a decimal > 0."""
    tick, lot = _step("tick_size", tick_size), _step("lot_size", lot_size)
    return Instrument(market=f"tardis:{exchange}", symbol=symbol, base="", quote="", tick_size=tick, step_size=lot,
                      lot_size=lot, min_notional=Decimal(0), price_precision=_decimals(tick),
                      quantity_precision=_decimals(lot), max_price=tick * MAX_UNITS, max_qty=lot * MAX_UNITS,
                      max_order_qty=lot * MAX_UNITS)
