"""Instrument metadata (tick size, step size, filters, display precision) from the pinned markets files.

The one source of instrument truth is Binance's exchangeInfo, pinned per venue in ``config/markets/<market>.json``
(with a ``sha256sum``-format checksum beside it) and read by :mod:`mmcore.venues.binance.markets`; this module
holds the :class:`Instrument` it builds and :func:`load_instrument`, the lookup the rest of the code uses.

Conversion between exchange decimal strings and integer ticks/lots happens once, at the venue edge, with
the grids defined here (see :mod:`mmcore_ext.fixedpoint`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
import decimal
from decimal import ROUND_CEILING, Decimal
from pathlib import Path

from mmcore_ext.events import InstrumentGrid

#: Markets mmcore knows; each has one pinned markets file ``config/markets/<market>.json``.
MARKETS = ("binance_spot", "binance_usdm")
#: Directory of the bundled pinned markets files.
DEFAULT_MARKETS_DIR = Path(__file__).resolve().parent.parent / "config" / "markets"
#: Largest price (ticks) or quantity (lots) an instrument may declare as its bound: 2**53. Products of two such
#: values and sums of a few of them stay far inside what the compiled core computes without overflow (see
#: :mod:`mmcore_ext` module headers), and every such integer is exact as a double.
MAX_UNITS = 2**53
#: Largest notional bound in tick*lots (``min_notional_tl`` / ``max_notional_tl``): a product of a price and a
#: quantity bound, 2**106, is beyond int64, so notionals are capped here (2**62, int64 with headroom).
MAX_NOTIONAL_UNITS = 2**62


def _grid_of(step: Decimal) -> tuple[int, int]:
    """Return ``(decimals, mantissa)`` with ``step == mantissa * 10**-decimals`` (0.05 -> (2, 5))."""
    step = step.normalize()
    sign, digits, exponent = step.as_tuple()
    if sign or step <= 0:
        raise ValueError(f"step must be > 0, got {step}")
    decimals = max(0, -exponent)
    mantissa = int(step.scaleb(decimals))
    return decimals, mantissa


@dataclass(frozen=True)
class PercentPrice:
    """Binance's percent-price band: a price must lie within ``[reference * down, reference * up]`` per side.

    From ``PERCENT_PRICE`` (both sides alike; USDⓈ-M: the reference is the mark price) or ``PERCENT_PRICE_BY_SIDE``
    (spot: the reference is the ``avg_price_mins``-minute weighted average price).
    Sources: https://developers.binance.com/docs/binance-spot-api-docs/filters (PERCENT_PRICE, PERCENT_PRICE_BY_SIDE);
    https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/Exchange-Information.
    """

    bid_up: Decimal
    bid_down: Decimal
    ask_up: Decimal
    ask_down: Decimal
    avg_price_mins: int | None = None

    def max_deviation(self) -> Decimal:
        """The largest symmetric fraction of the reference inside the band on both sides
        (``min(up - 1, 1 - down)`` over both sides): 0.05 for USDⓈ-M BTCUSDT's 1.05 / 0.95."""
        return min(self.bid_up - 1, 1 - self.bid_down, self.ask_up - 1, 1 - self.ask_down)


#: Exact enough for any quotient of two decimals of at most 48 digits (the markets loader's bound).
_EXACT = decimal.Context(prec=120)


def _ceil_units(value: Decimal, unit: Decimal) -> int:
    return int(_EXACT.divide(value, unit).to_integral_value(rounding=ROUND_CEILING))


@dataclass(frozen=True)
class Instrument:
    """One tradable instrument.

    Attributes
    ----------
    market : str
        ``binance_spot`` or ``binance_usdm``.
    symbol : str
        Exchange symbol, e.g. ``BTCUSDT``.
    tick_size : Decimal
        Price tick (quote currency), ``PRICE_FILTER.tickSize``; one tick is the price unit inside mmcore.
    step_size : Decimal
        Order quantity step (base units), ``LOT_SIZE.stepSize``; order sizes are whole multiples of it.
    lot_size : Decimal
        Market-data quantity resolution (base units); one lot is the quantity unit inside mmcore.
        ``step_size`` is a whole multiple of it (``step_lots``).
    min_notional : Decimal
        Minimum order notional (quote currency): ``NOTIONAL.minNotional`` / ``MIN_NOTIONAL.minNotional`` (spot)
        or ``MIN_NOTIONAL.notional`` (USDⓈ-M).
    price_precision, quantity_precision : int
        Decimals the exchange writes in its messages (used to format exported prices/quantities).
    max_price : Decimal
        Largest price (quote currency) accepted at the venue edge: the exchange's ``PRICE_FILTER.maxPrice``.
    max_qty : Decimal
        Largest quantity (base units) accepted at the venue edge in market data and execution reports.
    max_order_qty : Decimal
        Largest single order (base units): the exchange's ``LOT_SIZE.maxQty``.
    min_price : Decimal
        Lowest order price (quote currency): ``PRICE_FILTER.minPrice`` (0: no minimum).
    min_order_qty : Decimal
        Smallest order (base units): ``LOT_SIZE.minQty`` (0: one step).
    max_notional : Decimal or None
        Largest order notional (quote currency): spot ``NOTIONAL.maxNotional``; None when the venue has none.
    percent_price : PercentPrice or None
        The percent-price band, when the venue has one.

    Raises
    ------
    ValueError
        A size is not > 0, ``step_size`` is not a multiple of ``lot_size``, or a bound does not fit the compiled
        core's range (``max_price_ticks`` / ``max_qty_lots`` above :data:`MAX_UNITS`).
    """

    market: str
    symbol: str
    base: str
    quote: str
    tick_size: Decimal
    step_size: Decimal
    lot_size: Decimal
    min_notional: Decimal
    price_precision: int
    quantity_precision: int
    max_price: Decimal
    max_qty: Decimal
    max_order_qty: Decimal
    min_price: Decimal = Decimal(0)
    min_order_qty: Decimal = Decimal(0)
    max_notional: Decimal | None = None
    percent_price: PercentPrice | None = None
    grid: InstrumentGrid = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        pd, pm = _grid_of(self.tick_size)
        qd, qm = _grid_of(self.lot_size)
        if self.step_size % self.lot_size != 0:
            raise ValueError(f"{self.symbol}: step_size {self.step_size} is not a multiple of lot_size {self.lot_size}")
        for name in ("max_price", "max_qty", "max_order_qty"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{self.symbol}: {name} must be > 0, got {getattr(self, name)}")
        for name in ("min_price", "min_order_qty", "min_notional"):
            if getattr(self, name) < 0:
                raise ValueError(f"{self.symbol}: {name} must be >= 0, got {getattr(self, name)}")
        if self.max_price_ticks > MAX_UNITS or self.max_qty_lots > MAX_UNITS:
            raise ValueError(f"{self.symbol}: max_price / tick_size ({self.max_price_ticks}) and max_qty / lot_size "
                             f"({self.max_qty_lots}) must be <= {MAX_UNITS} (2**53, the compiled core's range)")
        if self.max_order_qty > self.max_qty:
            raise ValueError(f"{self.symbol}: max_order_qty {self.max_order_qty} is above max_qty {self.max_qty}")
        if self.min_price > self.max_price:
            raise ValueError(f"{self.symbol}: min_price {self.min_price} is above max_price {self.max_price}")
        if self.min_order_qty > self.max_order_qty:
            raise ValueError(f"{self.symbol}: min_order_qty {self.min_order_qty} is above max_order_qty "
                             f"{self.max_order_qty}")
        if self.max_notional is not None and not self.max_notional > 0:
            raise ValueError(f"{self.symbol}: max_notional must be > 0 or None, got {self.max_notional}")
        object.__setattr__(self, "grid", InstrumentGrid(pd, pm, qd, qm, self.max_price_ticks, self.max_qty_lots))

    @property
    def max_price_ticks(self) -> int:
        """Largest accepted price in ticks (``floor(max_price / tick_size)``)."""
        return int(self.max_price // self.tick_size)

    @property
    def max_qty_lots(self) -> int:
        """Largest accepted quantity in lots (``floor(max_qty / lot_size)``)."""
        return int(self.max_qty // self.lot_size)

    @property
    def max_order_lots(self) -> int:
        """Largest single order in lots (``floor(max_order_qty / lot_size)``)."""
        return int(self.max_order_qty // self.lot_size)

    @property
    def step_lots(self) -> int:
        """Order quantity step in lots (spot BTCUSDT: 0.00001 / 0.00000001 = 1000)."""
        return int(self.step_size / self.lot_size)

    @property
    def min_price_ticks(self) -> int:
        """Lowest order price in ticks (``ceil(min_price / tick_size)``, at least 1)."""
        return max(1, _ceil_units(self.min_price, self.tick_size))

    @property
    def min_order_lots(self) -> int:
        """Smallest order in lots (``ceil(min_order_qty / lot_size)``, at least one step)."""
        return max(self.step_lots, _ceil_units(self.min_order_qty, self.lot_size))

    @property
    def min_notional_tl(self) -> int:
        """Minimum order notional in tick*lots (``ceil(min_notional / (tick_size * lot_size))``), capped at
        :data:`MAX_NOTIONAL_UNITS`."""
        return min(MAX_NOTIONAL_UNITS, _ceil_units(self.min_notional, _EXACT.multiply(self.tick_size, self.lot_size)))

    @property
    def max_notional_tl(self) -> int:
        """Largest order notional in tick*lots (``floor(max_notional / (tick_size * lot_size))``); with no
        ``max_notional``, or one beyond it, :data:`MAX_NOTIONAL_UNITS`."""
        if self.max_notional is None:
            return MAX_NOTIONAL_UNITS
        return min(MAX_NOTIONAL_UNITS, int(_EXACT.divide_int(self.max_notional,
                                                             _EXACT.multiply(self.tick_size, self.lot_size))))

    # --- conversions (slow path: config, reports, tests) ---
    def price_to_ticks(self, price) -> int:
        """Price (str/Decimal/int, quote currency) -> ticks. Raises ValueError if off the tick grid."""
        ticks, rem = divmod(Decimal(str(price)), self.tick_size)
        if rem != 0:
            raise ValueError(f"price {price} is not a multiple of tick size {self.tick_size}")
        return int(ticks)

    def qty_to_lots(self, qty) -> int:
        """Quantity (str/Decimal/int, base units) -> lots. Raises ValueError if off the lot grid."""
        lots, rem = divmod(Decimal(str(qty)), self.lot_size)
        if rem != 0:
            raise ValueError(f"quantity {qty} is not a multiple of lot size {self.lot_size}")
        return int(lots)

    def price_of(self, ticks: int) -> Decimal:
        """Ticks -> price as an exact Decimal (quote currency)."""
        return self.tick_size * ticks

    def qty_of(self, lots: int) -> Decimal:
        """Lots -> quantity as an exact Decimal (base units)."""
        return self.lot_size * lots

    def format_price(self, ticks: int) -> str:
        """Ticks -> price string with the exchange's decimals (``618002`` -> ``"61800.20"`` on USDⓈ-M)."""
        return f"{self.tick_size * ticks:.{self.price_precision}f}"

    def format_qty(self, lots: int) -> str:
        """Lots -> quantity string with the exchange's decimals (``2507`` -> ``"2.507"`` on USDⓈ-M)."""
        return f"{self.lot_size * lots:.{self.quantity_precision}f}"


class OrderFilter:
    """The exchange's order filters in ticks and lots, applied to every order before the risk gate.

    ``check(px, qty, notional)`` returns ``(qty, reason)``: the quantity rounded down to a whole number of
    ``LOT_SIZE`` steps, and None or the name of the Binance filter the order fails (the order is then not sent):

    - ``PRICE_FILTER``: price outside ``[min_price_ticks, max_price_ticks]`` (every price in ticks is a multiple
      of ``tickSize`` by construction: the quoter rounds bids down and asks up to whole ticks);
    - ``LOT_SIZE``: after rounding down to a step, below ``minQty`` (or 0) or above ``maxQty``;
    - ``MIN_NOTIONAL`` / ``MAX_NOTIONAL`` (``notional=True`` only): ``price * qty`` below ``min_notional`` or above
      ``max_notional``. Flattening orders are checked with ``notional=False``: Binance USDⓈ-M exempts reduce-only
      orders from the minimum ("“Reduce-Only” order is not affected",
      https://www.binance.com/en/support/articles/360033161972), and a flattening order that the venue refuses is
      retried and counted by the engine.

    Rules: https://developers.binance.com/docs/binance-spot-api-docs/filters (PRICE_FILTER, LOT_SIZE, NOTIONAL,
    MIN_NOTIONAL); USDⓈ-M: https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/Exchange-Information.
    PERCENT_PRICE is not checked here: its reference (spot: the average price over ``avgPriceMins``; USDⓈ-M: the
    mark price) is not in the engine's data; the risk gate's price band around the own mid stands in for it
    (:func:`mmcore.engine.wiring.build_engine` narrows the band to the filter's when the filter is narrower).
    """

    __slots__ = ("min_px", "max_px", "step", "min_qty", "max_qty", "min_tl", "max_tl")

    def __init__(self, inst: Instrument):
        self.min_px = inst.min_price_ticks
        self.max_px = inst.max_price_ticks
        self.step = inst.step_lots
        self.min_qty = inst.min_order_lots
        self.max_qty = inst.max_order_lots
        self.min_tl = inst.min_notional_tl
        self.max_tl = inst.max_notional_tl

    def check(self, px: int, qty: int, notional: bool = True) -> tuple[int, str | None]:
        """``(qty rounded down to a whole step, None | failing filter name)`` for a price (ticks) and quantity
        (lots)."""
        if not self.min_px <= px <= self.max_px:
            return qty, "PRICE_FILTER"
        qty -= qty % self.step
        if not self.min_qty <= qty <= self.max_qty:
            return qty, "LOT_SIZE"
        if notional:
            tl = px * qty                  # px <= 2**53, qty <= max_order_lots <= 2**53: a Python int, exact
            if tl < self.min_tl:
                return qty, "MIN_NOTIONAL"
            if tl > self.max_tl:
                return qty, "MAX_NOTIONAL"
        return qty, None


def markets_file(market: str, table: Path | str | None = None) -> Path:
    """The pinned markets file of ``market``: ``table`` when it is a file, ``<table>/<market>.json`` when it is a
    directory, ``config/markets/<market>.json`` when it is None."""
    if table is None:
        return DEFAULT_MARKETS_DIR / f"{market}.json"
    table = Path(table)
    return table / f"{market}.json" if table.is_dir() else table


def load_instrument(market: str, symbol: str, table: Path | str | None = None) -> Instrument:
    """Load one instrument from the pinned markets file of ``market`` (see :func:`markets_file`; the file is
    read and its ``.sha256`` checked by :func:`mmcore.venues.binance.markets.load_markets`).

    Raises
    ------
    KeyError
        The market is not one of :data:`MARKETS`, or the symbol is not in the file (the message names the file
        and what is there).
    ValueError
        (:class:`mmcore.venues.binance.markets.MarketsError`) the file or its checksum is missing, unreadable,
        does not match, or a field is missing or invalid: the message names the file and the field.
    """
    if market not in MARKETS:
        raise KeyError(f"market {market!r} unknown (have: {', '.join(MARKETS)})")
    from mmcore.venues.binance.markets import load_markets
    return load_markets(markets_file(market, table), market).instrument(symbol)
