"""Execution reports: what an exchange (simulated or real) tells the engine about its orders.

Names are past tense (events), prices in ticks, quantities in lots, times in ns since the epoch.
The same types come from the simulated exchange and, later, from the venue adapters.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

BUY = 1
SELL = -1

#: ``OrderRejected.code`` of a post-only order that would have taken liquidity (Binance spot LIMIT_MAKER
#: -2010 "Order would immediately match and take."; USDⓈ-M GTX -5022).
POST_ONLY_REJECT = "POST_ONLY_WOULD_MATCH"


@dataclass(frozen=True, slots=True)
class OrderAccepted:
    """The order rests on the book (ack). ``ts_ns``: exchange time of acceptance."""

    ts_ns: int
    client_order_id: str
    venue_order_id: str


@dataclass(frozen=True, slots=True)
class OrderRejected:
    """The order was refused. ``reason``: exchange text; ``code``: machine-readable (``POST_ONLY_REJECT``...)."""

    ts_ns: int
    client_order_id: str
    reason: str
    code: str = ""


@dataclass(frozen=True, slots=True)
class OrderFilled:
    """A (partial) fill. ``price`` ticks, ``qty`` lots, ``fee`` quote currency (negative = rebate)."""

    ts_ns: int
    client_order_id: str
    trade_id: int
    side: int
    price: int
    qty: int
    fee: Decimal
    is_maker: bool = True


@dataclass(frozen=True, slots=True)
class OrderCanceled:
    """The cancel took effect; ``remaining`` lots were left unfilled."""

    ts_ns: int
    client_order_id: str
    remaining: int


@dataclass(frozen=True, slots=True)
class OrderCancelRejected:
    """The cancel was refused (unknown order: already filled, canceled, or not yet arrived)."""

    ts_ns: int
    client_order_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class OrderAmended:
    """The order was amended in place (same client order id, its fills kept): it now works ``price`` ticks for
    ``qty`` lots in all (filled lots included). Binance USDⓈ-M ``order.modify`` and ``ORDER_TRADE_UPDATE``
    with ``x = AMENDMENT`` (https://developers.binance.com/docs/derivatives/usds-margined-futures/trade/websocket-api/Modify-Order)."""

    ts_ns: int
    client_order_id: str
    price: int
    qty: int


@dataclass(frozen=True, slots=True)
class OrderAmendRejected:
    """The amend was refused; the order works as before. ``reason``: exchange text; ``code``: machine-readable."""

    ts_ns: int
    client_order_id: str
    reason: str
    code: str = ""


@dataclass(frozen=True, slots=True)
class OrderExpired:
    """An immediate-or-cancel order's unfilled ``remaining`` lots expired (no resting)."""

    ts_ns: int
    client_order_id: str
    remaining: int


def fill_contradiction(rep: OrderFilled, side: int, limit_price: int, remaining: int) -> str | None:
    """Why a fill report contradicts the order it names, or None when it is consistent with it.

    A venue that lies, or a second process trading the same account, can report a fill that our order
    could not have had. Such a report must be refused (counted, logged), never booked.

    Parameters
    ----------
    rep : OrderFilled
        The report (``side`` +1/-1, ``price`` ticks, ``qty`` lots).
    side : int
        The order's side (+1 buy, -1 sell), as we sent it.
    limit_price : int
        The order's limit price (ticks). A buy never fills above it, a sell never below it (a limit order's
        definition; post-only and immediate-or-cancel alike).
    remaining : int
        Lots of the order not yet filled, before this report.

    Returns
    -------
    str or None
        A one-line reason naming the contradicting field, or None.
    """
    if rep.side != side:
        return f"side {rep.side:+d} but the order is a {'buy' if side > 0 else 'sell'}"
    if not 0 < rep.qty <= remaining:
        return f"quantity {rep.qty} lots but {remaining} lots of the order remain"
    if rep.price <= 0 or (side > 0 and rep.price > limit_price) or (side < 0 and rep.price < limit_price):
        return f"price {rep.price} ticks is beyond the order's limit {limit_price}"
    return None


@dataclass(frozen=True, slots=True)
class VenueOrder:
    """The venue's record of an order (venue-neutral): an open one (``open_orders``) or any (``order``).

    Attributes
    ----------
    client_order_id : str
    side : int
        +1 buy, -1 sell.
    price : int
        Limit price (ticks).
    qty : int
        Original quantity (lots).
    filled : int
        Executed quantity (lots).
    status : str
        Open: ``"PENDING_NEW"`` (received, not accepted yet), ``"NEW"`` or ``"PARTIALLY_FILLED"``; final (only
        from ``order``): ``"FILLED"``, ``"CANCELED"``, ``"EXPIRED"`` or ``"REJECTED"``.
    venue_order_id : str or None
    ts_created_ns : int
        When the venue received it (ns; 0 if unknown).
    """

    client_order_id: str
    side: int
    price: int
    qty: int
    filled: int
    status: str
    venue_order_id: str | None = None
    ts_created_ns: int = 0
