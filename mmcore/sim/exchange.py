"""Simulated exchange: post-only limit orders against recorded market data.

Requests take effect after the latency model's delay; resting orders fill only from recorded trades,
through the queue model; every fill is reported with its event time, price (= the order's price, as a
maker) and fee. Deterministic: the same data and requests give the same reports.

Post-only rule: an order that would take liquidity on arrival (buy at or above the best ask, sell at or
below the best bid) is rejected, as Binance does for ``LIMIT_MAKER`` (spot) and ``timeInForce=GTX``
(USDⓈ-M): https://developers.binance.com/docs/binance-spot-api-docs/rest-api/trading-endpoints
"""
from __future__ import annotations

import heapq
import itertools
from typing import Callable

from mmcore.execution import (BUY, POST_ONLY_REJECT, OrderAccepted, OrderAmended, OrderAmendRejected,
                              OrderCanceled, OrderCancelRejected, OrderExpired, OrderFilled, OrderRejected)
from mmcore.sim.models import ConservativeQueue, ConstantLatency, MakerFee

_ARRIVE = 0
_CANCEL = 1
_MODIFY = 2


class _Resting:
    __slots__ = ("coid", "venue_id", "side", "price", "qty", "remaining", "ahead")

    def __init__(self, coid, venue_id, side, price, remaining, ahead):
        self.coid = coid
        self.venue_id = venue_id
        self.side = side
        self.price = price
        self.qty = remaining              # the order's quantity in all (amends change it)
        self.remaining = remaining
        self.ahead = ahead


class SimExchange:
    """One instrument's simulated matching of our post-only orders.

    Parameters
    ----------
    book : L2Book-like
        The market's book (read only): ``best_bid_px()``, ``best_ask_px()``, ``qty_at(side, px)``.
    latency : ConstantLatency
    fees : MakerFee
    on_report : callable
        Receives every execution report (``OrderAccepted``, ``OrderRejected``, ``OrderFilled``,
        ``OrderCanceled``, ``OrderCancelRejected``) in exchange-time order.
    queue : ConservativeQueue, optional
    """

    def __init__(self, book, latency: ConstantLatency, fees: MakerFee, on_report: Callable,
                 queue: ConservativeQueue | None = None, taker_fees: MakerFee | None = None):
        self.book = book
        self.latency = latency
        self.fees = fees
        self.taker_fees = taker_fees or fees
        self.queue = queue or ConservativeQueue()
        self.on_report = on_report
        self._pending: list = []            # heap of (due_ns, seq, kind, payload)
        self._seq = itertools.count()
        self._venue_ids = itertools.count(1)
        self.bids: list[_Resting] = []      # our resting buys, best (highest) first
        self.asks: list[_Resting] = []      # our resting sells, best (lowest) first
        self._by_coid: dict[str, _Resting] = {}
        self.accepted = self.rejected = self.canceled = self.cancel_rejected = 0

    # --- requests (from the engine) ---
    def submit(self, ts_ns: int, coid: str, side: int, price: int, qty: int, post_only: bool = True) -> None:
        """Send a limit order; it reaches the book at ``latency.order_arrival(ts_ns)``.

        ``post_only`` (the default, quoting): rejected if it would take liquidity. Otherwise it is an
        immediate-or-cancel order (used to flatten): it takes the book's visible levels up to ``price`` at
        their prices with the taker fee, and the rest expires.
        """
        heapq.heappush(self._pending, (self.latency.order_arrival(ts_ns), next(self._seq), _ARRIVE,
                                       (coid, side, price, qty, post_only)))

    def cancel(self, ts_ns: int, coid: str) -> None:
        """Request a cancel; it takes effect at ``latency.cancel_arrival(ts_ns)``."""
        heapq.heappush(self._pending, (self.latency.cancel_arrival(ts_ns), next(self._seq), _CANCEL, coid))

    #: The simulated exchange amends in place like Binance USDⓈ-M (:meth:`modify`).
    supports_modify = True

    def modify(self, ts_ns: int, coid: str, side: int, price: int, qty: int) -> None:
        """Amend a resting order to ``price`` ticks and ``qty`` lots in all, as Binance USDⓈ-M ``order.modify``
        does (https://developers.binance.com/docs/derivatives/usds-margined-futures/trade/websocket-api/Modify-Order):
        at ``latency.order_arrival(ts_ns)`` the order keeps its client order id and fills and goes to the back of
        the queue at its new price (OrderAmended); it is cancelled instead (OrderCanceled) when the new price
        would take (post-only) or ``qty`` is not above its filled part; an order not resting then gets
        OrderAmendRejected."""
        heapq.heappush(self._pending, (self.latency.order_arrival(ts_ns), next(self._seq), _MODIFY,
                                       (coid, side, price, qty)))

    def open_orders(self) -> list[tuple[str, int, int, int]]:
        """Resting orders as ``(client_order_id, side, price_ticks, remaining_lots)``."""
        return [(o.coid, o.side, o.price, o.remaining) for o in self.bids + self.asks]

    # --- market data (time moves forward) ---
    def advance(self, ts_ns: int) -> None:
        """Carry out every request due at or before ``ts_ns``."""
        pending = self._pending
        while pending and pending[0][0] <= ts_ns:
            due, _, kind, payload = heapq.heappop(pending)
            if kind == _ARRIVE:
                self._arrive(due, *payload)
            elif kind == _MODIFY:
                self._modify(due, *payload)
            else:
                self._cancel(due, payload)

    def on_trade(self, ts_ns: int, trade_id: int, price: int, qty: int, aggressor_side: int) -> None:
        """Match a recorded trade against our resting orders on the passive side (after ``advance``)."""
        self.advance(ts_ns)
        if aggressor_side == BUY:
            resting = self.asks
            if not resting or resting[0].price > price:
                return
        else:
            resting = self.bids
            if not resting or resting[0].price < price:
                return
        budget = qty
        done = []
        for o in resting:
            if budget <= 0:
                break
            if o.price == price:
                o.ahead, fillable = self.queue.on_trade_at_price(o.ahead, budget)
            elif (o.price < price) if aggressor_side == BUY else (o.price > price):
                fillable = budget         # trade through our price
            else:
                break                     # this and the rest are behind the trade price
            fill = min(fillable, o.remaining)
            if fill <= 0:
                continue
            budget -= fill
            o.remaining -= fill
            rep = OrderFilled(ts_ns, o.coid, trade_id, o.side, o.price, fill, self.fees.fee(o.price, fill))
            if o.remaining == 0:
                done.append(o)
            self.on_report(rep)
        for o in done:
            resting.remove(o)
            del self._by_coid[o.coid]

    # --- internals ---
    def _arrive(self, ts_ns: int, coid: str, side: int, price: int, qty: int, post_only: bool) -> None:
        book = self.book
        if not post_only:
            self._take(ts_ns, coid, side, price, qty)
            return
        if side == BUY:
            best_ask = book.best_ask_px()
            crosses = best_ask > 0 and price >= best_ask
        else:
            best_bid = book.best_bid_px()
            crosses = best_bid > 0 and price <= best_bid
        if crosses or qty <= 0 or price <= 0 or coid in self._by_coid:
            self.rejected += 1
            if crosses:
                self.on_report(OrderRejected(ts_ns, coid, "post-only order would immediately match",
                                             POST_ONLY_REJECT))
            else:
                self.on_report(OrderRejected(ts_ns, coid, "invalid order", "INVALID"))
            return
        o = _Resting(coid, str(next(self._venue_ids)), side, price, qty,
                     self.queue.initial_ahead(book.qty_at(side, price)))
        self._by_coid[coid] = o
        self._insert(o)
        self.accepted += 1
        self.on_report(OrderAccepted(ts_ns, coid, o.venue_id))

    def _insert(self, o: _Resting) -> None:
        # Keep best-first order; equal prices keep arrival (time) priority.
        side_list = self.bids if o.side == BUY else self.asks
        price = o.price
        i = 0
        if o.side == BUY:
            while i < len(side_list) and side_list[i].price >= price:
                i += 1
        else:
            while i < len(side_list) and side_list[i].price <= price:
                i += 1
        side_list.insert(i, o)

    def _modify(self, ts_ns: int, coid: str, side: int, price: int, qty: int) -> None:
        o = self._by_coid.get(coid)
        if o is None or o.side != side:
            self.on_report(OrderAmendRejected(ts_ns, coid, "unknown order (filled, canceled or not arrived)",
                                              "UNKNOWN_ORDER"))
            return
        filled = o.qty - o.remaining
        book = self.book
        crosses = (0 < book.best_ask_px() <= price) if side == BUY else (0 < price <= book.best_bid_px())
        if qty <= filled or crosses or price <= 0:
            self._cancel(ts_ns, coid)                  # Binance cancels rather than amends in these cases
            return
        (self.bids if side == BUY else self.asks).remove(o)
        o.price, o.qty, o.remaining = price, qty, qty - filled
        o.ahead = self.queue.initial_ahead(book.qty_at(side, price))     # requeued at the back
        self._insert(o)
        self.on_report(OrderAmended(ts_ns, coid, price, qty))

    def _take(self, ts_ns: int, coid: str, side: int, price: int, qty: int) -> None:
        # Immediate-or-cancel against the visible book (our own resting orders are not matched).
        self.accepted += 1
        venue_id = str(next(self._venue_ids))
        self.on_report(OrderAccepted(ts_ns, coid, venue_id))
        remaining = qty
        opposite = -side
        for level_px, level_qty in self.book.levels(opposite, 50):
            if remaining <= 0 or (level_px > price if side == BUY else level_px < price):
                break
            fill = min(remaining, level_qty)
            remaining -= fill
            rep = OrderFilled(ts_ns, coid, -next(self._venue_ids), side, level_px, fill,
                              self.taker_fees.fee(level_px, fill), is_maker=False)
            self.on_report(rep)
        if remaining > 0:
            self.on_report(OrderExpired(ts_ns, coid, remaining))

    def _cancel(self, ts_ns: int, coid: str) -> None:
        o = self._by_coid.pop(coid, None)
        if o is None:
            self.cancel_rejected += 1
            self.on_report(OrderCancelRejected(ts_ns, coid, "unknown order (filled, canceled or not arrived)"))
            return
        (self.bids if o.side == BUY else self.asks).remove(o)
        self.canceled += 1
        self.on_report(OrderCanceled(ts_ns, coid, o.remaining))
