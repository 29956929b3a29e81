"""Exact position and PnL accounting from fills (integers and Decimal, never summed floats).

Internally cash is an integer in tick·lot units (``price_ticks * qty_lots``) and realised PnL an exact
:class:`fractions.Fraction` of tick·lots; both are converted to quote currency with
``unit = tick_size * lot_size`` only when reported.

Identities (tested): ``inventory == sum(side * qty)`` over fills; ``mtm_pnl == cash + inventory * mid``;
``mtm_pnl == realized_pnl + unrealized_pnl``. ``cash`` is net of fees; realised PnL uses average cost.
"""
from __future__ import annotations

from decimal import Decimal, localcontext
from fractions import Fraction

from mmcore.instruments import Instrument


def _dec(fr: Fraction, unit: Decimal, minus: Decimal = Decimal(0)) -> Decimal:
    """``fr * unit - minus`` as a Decimal with 50 significant digits (exact when ``fr`` is a whole number
    of the unit's decimals)."""
    with localcontext() as ctx:
        ctx.prec = 50
        return Decimal(fr.numerator) * unit / Decimal(fr.denominator) - minus


class Portfolio:
    """Cash, inventory and PnL of one instrument.

    Attributes
    ----------
    position : int
        Inventory in lots (signed; + long).
    cash_tl : int
        Cash from trades in tick·lot units (sells add, buys subtract), before fees.
    fees : Decimal
        Fees paid in quote currency (negative = rebates received).
    """

    def __init__(self, instrument: Instrument):
        self.instrument = instrument
        self.unit = instrument.tick_size * instrument.lot_size
        self.position = 0
        self.cash_tl = 0
        self.fees = Decimal(0)
        self.cost_tl = Fraction(0)       # average-cost basis of the open position, tick·lots (signed)
        self.realized_tl = Fraction(0)   # gross realised PnL, tick·lots
        self.max_abs_position = 0
        self.buy_count = self.sell_count = 0
        self.buy_volume = self.sell_volume = 0   # lots

    def on_fill(self, side: int, price: int, qty: int, fee: Decimal) -> None:
        """Book a fill: ``side`` +1 buy / -1 sell, ``price`` ticks, ``qty`` lots (> 0), ``fee`` quote ccy."""
        if qty <= 0:
            raise ValueError(f"fill quantity must be > 0, got {qty}")
        self.fees += fee
        self.cash_tl -= side * price * qty
        if side > 0:
            self.buy_count += 1
            self.buy_volume += qty
        else:
            self.sell_count += 1
            self.sell_volume += qty
        pos = self.position
        signed = side * qty
        if pos == 0 or (pos > 0) == (signed > 0):
            self.cost_tl += signed * price
        else:
            closing = min(abs(signed), abs(pos))
            avg = self.cost_tl / pos                      # ticks per lot
            # Closing a long realises (price - avg) per lot; closing a short realises (avg - price).
            self.realized_tl += (price - avg) * closing * (1 if pos > 0 else -1)
            self.cost_tl -= avg * closing * (1 if pos > 0 else -1)
            opening = abs(signed) - closing
            if opening:
                self.cost_tl = Fraction(side * opening * price)
        self.position = pos + signed
        if self.position == 0:
            self.cost_tl = Fraction(0)
        if abs(self.position) > self.max_abs_position:
            self.max_abs_position = abs(self.position)

    def restore(self, fills) -> None:
        """Rebuild the state from the complete fill history (restart from the journal).

        Every field (position, cash, fees, average cost, realised PnL, counts) comes out exactly as if the
        fills had been booked live; a position snapshot alone could not restore the cost basis.

        Parameters
        ----------
        fills : iterable
            In booking order, each with ``side`` (+1/-1), ``price_ticks`` (ticks), ``qty_lots`` (lots) and
            ``fee`` (Decimal, quote currency), e.g. :class:`mmcore.persistence.journal.FillRow`.

        Raises
        ------
        ValueError
            This portfolio has already booked fills, or a fill quantity is not > 0.
        """
        if self.buy_count or self.sell_count:
            raise ValueError("restore() needs a portfolio that has booked no fill")
        for f in fills:
            self.on_fill(f.side, f.price_ticks, f.qty_lots, f.fee)

    # --- reports in quote currency (exact Decimal) ---
    def cash(self) -> Decimal:
        """Cash in quote currency, net of fees."""
        return self.cash_tl * self.unit - self.fees

    def mtm_pnl(self, mid_x2: int) -> Decimal:
        """Mark-to-market PnL at mid = ``mid_x2 / 2`` ticks: cash + inventory·mid (quote currency)."""
        return _dec(Fraction(2 * self.cash_tl + self.position * mid_x2, 2), self.unit, self.fees)

    def realized_pnl(self) -> Decimal:
        """Realised PnL (average cost) net of all fees, quote currency."""
        return _dec(self.realized_tl, self.unit, self.fees)

    def unrealized_tl(self, mid_x2: int) -> Fraction:
        """Open position marked at mid minus its average cost, exact, tick·lots."""
        return Fraction(self.position * mid_x2, 2) - self.cost_tl

    def unrealized_pnl(self, mid_x2: int) -> Decimal:
        """Open position marked at mid minus its average cost, quote currency (50 significant digits)."""
        return _dec(self.unrealized_tl(mid_x2), self.unit)

    def avg_entry_price(self) -> Decimal | None:
        """Average cost of the open position (quote currency), or None when flat."""
        if self.position == 0:
            return None
        return _dec(self.cost_tl / self.position, self.instrument.tick_size)
