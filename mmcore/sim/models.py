"""Pluggable models of the simulated exchange, each behind a small interface (as in hftbacktest).

- Latency model: when a request sent at ``ts`` takes effect at the exchange.
- Queue model: how much quantity stands ahead of our order at its price, and how trades consume it.
- Fee model: the fee of a fill in quote currency.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class ConstantLatency:
    """Fixed one-way latencies in ns.

    ``entry_ns``: submit -> order resting (or rejected) at the exchange.
    ``cancel_ns``: cancel request -> cancel effective (fills can still hit the order meanwhile).
    """

    entry_ns: int
    cancel_ns: int

    def order_arrival(self, ts_ns: int) -> int:
        return ts_ns + self.entry_ns

    def cancel_arrival(self, ts_ns: int) -> int:
        return ts_ns + self.cancel_ns


class ConservativeQueue:
    """Conservative queue-position model (price-time priority; only trades move us forward).

    On arrival our order joins the back of its price level: ``ahead`` = the level's visible quantity in the
    book at that moment (0 if the price is a new level, e.g. inside the spread). Trades at our price consume
    ``ahead`` first and only the excess fills us. Quantity cancelled ahead of us is ignored (we never move
    forward on cancels), which errs toward fewer fills. A trade *through* our price (a sell below our bid,
    a buy above our ask) fills us up to the trade's quantity.
    """

    @staticmethod
    def initial_ahead(level_qty: int) -> int:
        return level_qty

    @staticmethod
    def on_trade_at_price(ahead: int, trade_qty: int) -> tuple[int, int]:
        """Return ``(new_ahead, fillable)`` after a trade of ``trade_qty`` lots at our price."""
        if trade_qty <= ahead:
            return ahead - trade_qty, 0
        return 0, trade_qty - ahead


@dataclass(frozen=True)
class MakerFee:
    """Maker fee in bps of notional (negative = rebate); ``unit`` = quote currency of one tick·lot."""

    maker_bps: Decimal
    unit: Decimal

    def fee(self, price_ticks: int, qty_lots: int) -> Decimal:
        """Fee in quote currency, exact: price·qty·unit·bps/10000."""
        return price_ticks * qty_lots * self.unit * self.maker_bps / 10000
