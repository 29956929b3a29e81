"""Instrument metadata (tick size, step size, display precision) loaded from ``config/instruments.yaml``.

Conversion between exchange decimal strings and integer ticks/lots happens once, at the venue edge, with
the grids defined here (see :mod:`mmcore_ext.fixedpoint`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import yaml

from mmcore_ext.events import InstrumentGrid

#: Markets mmcore knows; each maps to one section of the instrument table.
MARKETS = ("binance_spot", "binance_usdm")
DEFAULT_TABLE = Path(__file__).resolve().parent.parent / "config" / "instruments.yaml"
#: Largest price (ticks) or quantity (lots) an instrument may declare as its bound: 2**53. Products of two such
#: values and sums of a few of them stay far inside what the compiled core computes without overflow (see
#: :mod:`mmcore_ext` module headers), and every such integer is exact as a double.
MAX_UNITS = 2**53


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
class Instrument:
    """One tradable instrument.

    Attributes
    ----------
    market : str
        ``binance_spot`` or ``binance_usdm``.
    symbol : str
        Exchange symbol, e.g. ``BTCUSDT``.
    tick_size : Decimal
        Price tick (quote currency); one tick is the price unit inside mmcore.
    step_size : Decimal
        Order quantity step (base units); order sizes are whole multiples of it.
    lot_size : Decimal
        Market-data quantity resolution (base units); one lot is the quantity unit inside mmcore.
        ``step_size`` is a whole multiple of it (``step_lots``).
    min_notional : Decimal
        Minimum order notional (quote currency).
    price_precision, quantity_precision : int
        Decimals the exchange writes in its messages (used to format exported prices/quantities).
    max_price : Decimal
        Largest price (quote currency) accepted at the venue edge: the exchange's ``PRICE_FILTER.maxPrice``.
    max_qty : Decimal
        Largest quantity (base units) accepted at the venue edge in market data and execution reports.
    max_order_qty : Decimal
        Largest single order (base units): the exchange's ``LOT_SIZE.maxQty``.

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
    grid: InstrumentGrid = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        pd, pm = _grid_of(self.tick_size)
        qd, qm = _grid_of(self.lot_size)
        if self.step_size % self.lot_size != 0:
            raise ValueError(f"{self.symbol}: step_size {self.step_size} is not a multiple of lot_size {self.lot_size}")
        for name in ("max_price", "max_qty", "max_order_qty"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{self.symbol}: {name} must be > 0, got {getattr(self, name)}")
        if self.max_price_ticks > MAX_UNITS or self.max_qty_lots > MAX_UNITS:
            raise ValueError(f"{self.symbol}: max_price / tick_size ({self.max_price_ticks}) and max_qty / lot_size "
                             f"({self.max_qty_lots}) must be <= {MAX_UNITS} (2**53, the compiled core's range)")
        if self.max_order_qty > self.max_qty:
            raise ValueError(f"{self.symbol}: max_order_qty {self.max_order_qty} is above max_qty {self.max_qty}")
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


def load_instrument(market: str, symbol: str, table: Path | str = DEFAULT_TABLE) -> Instrument:
    """Load one instrument from the YAML table.

    Raises
    ------
    KeyError
        The market or symbol is not in the table (the message names both and what is there).
    ValueError
        A field is missing or invalid.
    """
    with open(table, "r", encoding="utf-8") as fh:
        data = yaml.safe_load(fh) or {}
    if market not in data:
        raise KeyError(f"market {market!r} not in {table} (have: {', '.join(sorted(data))})")
    if symbol not in data[market]:
        raise KeyError(f"symbol {symbol!r} not in {table}[{market}] (have: {', '.join(sorted(data[market]))})")
    row = data[market][symbol]
    try:
        return Instrument(
            market=market,
            symbol=symbol,
            base=str(row["base"]),
            quote=str(row["quote"]),
            tick_size=Decimal(str(row["tick_size"])),
            step_size=Decimal(str(row["step_size"])),
            lot_size=Decimal(str(row.get("lot_size", row["step_size"]))),
            min_notional=Decimal(str(row.get("min_notional", "0"))),
            price_precision=int(row["price_precision"]),
            quantity_precision=int(row["quantity_precision"]),
            max_price=Decimal(str(row["max_price"])),
            max_qty=Decimal(str(row["max_qty"])),
            max_order_qty=Decimal(str(row["max_order_qty"])),
        )
    except KeyError as exc:
        raise ValueError(f"{table}[{market}][{symbol}]: missing field {exc.args[0]!r}") from None
