"""Simulated exchange: post-only limit orders against recorded market data.

Requests take effect after the latency model's entry delay; the exchange's reports reach the caller after its
response delay (:meth:`SimExchange.deliver`; at once when it is 0). Resting orders fill from three causes,
counted apart in ``fill_counts`` / ``fill_lots``:

- ``queue``: a recorded trade at our price once the queue model says nothing stands ahead of us;
- ``trade_through``: a recorded trade at a price worse than ours (a sell below our bid, a buy above our ask)
  fills us up to the trade's quantity;
- ``cross``: the market's best opposite price reaches ours (best ask <= our bid, best bid >= our ask), from a
  depth diff (:meth:`on_depth_diff`) or a bookTicker (:meth:`on_book_ticker`): the order fills in full at its
  own price, as a maker (hftbacktest's exchange models fill crossed orders on a best bid / ask update the same
  way: ``hftbacktest/src/backtest/proc/nopartialfillexchange.rs``).

Depth changes at our price reach the queue model (``depth(o, prev_qty, new_qty)``), so a risk-averse or
probabilistic queue sees the level shrink. The top of book is the book's, or a bookTicker's when it is newer
than the book (its update id ahead of the book's last applied one): used for the post-only check and cross
fills. Every fill is reported with its exchange time, price (= the order's price, as a maker) and fee.
Deterministic: the same data and requests give the same reports (a drawn latency model takes a seed).

Clocks: the exchange runs on exchange time (the times given to ``advance`` / ``on_trade`` / ``on_depth_diff`` /
``on_book_ticker``); requests carry the caller's (local) send time, reports are delivered at local time
``latency.response(exchange time)``. The replay runner puts both on one axis (see
:mod:`mmcore.sim.feed`).

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

#: Fill causes (keys of ``SimExchange.fill_counts``).
FILL_CAUSES = ("queue", "trade_through", "cross")

_ARRIVE = 0
_CANCEL = 1
_MODIFY = 2


class _Resting:
    __slots__ = ("coid", "venue_id", "side", "price", "qty", "remaining", "ahead", "cum_trade", "level")

    def __init__(self, coid, venue_id, side, price, remaining):
        self.coid = coid
        self.venue_id = venue_id
        self.side = side
        self.price = price
        self.qty = remaining              # the order's quantity in all (amends change it)
        self.remaining = remaining
        self.ahead = 0                    # lots ahead of us at our price (the queue model's estimate)
        self.cum_trade = 0                # lots traded at our price since the last depth change (ProbQueue)
        self.level = 0                    # last known quantity of the level at our price (lots)


class SimExchange:
    """One instrument's simulated matching of our post-only orders.

    Parameters
    ----------
    book : L2Book-like
        The market's book (read only): ``best_bid_px()``, ``best_ask_px()``, ``qty_at(side, px)``.
    latency : ConstantLatency or RecordedLatency
        ``order_arrival`` / ``cancel_arrival`` (entry) and ``response`` (ns; :mod:`mmcore.sim.models`).
    fees : MakerFee
    on_report : callable
        Receives every execution report (``OrderAccepted``, ``OrderRejected``, ``OrderFilled``,
        ``OrderCanceled``, ``OrderCancelRejected``) in delivery-time order, at once when the response latency
        is 0, else from :meth:`deliver` / :meth:`advance` once their time reaches it.
    queue : queue model, optional
        ConservativeQueue (default), RiskAverseQueue or ProbQueue (:mod:`mmcore.sim.models`).
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
        self._response = getattr(latency, "response", None)
        self._out: list = []                # heap of (deliver_ns, seq, report): reports in flight to us
        self._last_due = 0                  # delivery time of the last report queued (ns)
        self._tk_u = 0                      # the latest bookTicker newer than the book (0: none)
        self._tk_bid = self._tk_ask = self._tk_bid_qty = self._tk_ask_qty = 0
        self.fill_counts = dict.fromkeys(FILL_CAUSES, 0)
        self.fill_lots = dict.fromkeys(FILL_CAUSES, 0)

    # --- reports (to the engine) ---
    def _emit(self, ts_ns: int, rep) -> None:
        """Send ``rep`` (made at exchange time ``ts_ns``): delivered at ``latency.response(ts_ns)``, never before
        a report sent earlier (one ordered connection, as Binance's user data stream and WebSocket API are: a
        drawn response latency does not reorder reports)."""
        response = self._response
        if response is None or (due := response(ts_ns)) <= ts_ns:
            if not self._out:
                self.on_report(rep)
                return
            due = ts_ns
        if due < self._last_due:
            due = self._last_due
        self._last_due = due
        heapq.heappush(self._out, (due, next(self._seq), rep))

    def deliver(self, ts_ns: int) -> None:
        """Hand the engine every report whose delivery time (local ns) is at or before ``ts_ns``."""
        out = self._out
        while out and out[0][0] <= ts_ns:
            self.on_report(heapq.heappop(out)[2])

    def in_flight(self) -> int:
        """Reports made but not yet delivered."""
        return len(self._out)

    # --- top of book ---
    def _fresh_ticker(self) -> bool:
        return self._tk_u > getattr(self.book, "last_update_id", 0) if self._tk_u else False

    def best_bid_px(self) -> int:
        """Best bid (ticks): a bookTicker's when newer than the book, else the book's (0: none)."""
        return self._tk_bid if self._fresh_ticker() else self.book.best_bid_px()

    def best_ask_px(self) -> int:
        """Best ask (ticks): a bookTicker's when newer than the book, else the book's (0: none)."""
        return self._tk_ask if self._fresh_ticker() else self.book.best_ask_px()

    def _level_qty(self, side: int, price: int) -> int:
        if self._fresh_ticker():
            if side == BUY and price == self._tk_bid:
                return self._tk_bid_qty
            if side != BUY and price == self._tk_ask:
                return self._tk_ask_qty
        return self.book.qty_at(side, price)

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
        if self._out:
            self.deliver(ts_ns)

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
                fillable = self.queue.trade(o, budget)
                cause = "queue"
            elif (o.price < price) if aggressor_side == BUY else (o.price > price):
                fillable = budget         # trade through our price
                cause = "trade_through"
            else:
                break                     # this and the rest are behind the trade price
            fill = min(fillable, o.remaining)
            if fill <= 0:
                continue
            budget -= fill
            o.remaining -= fill
            self.fill_counts[cause] += 1
            self.fill_lots[cause] += fill
            rep = OrderFilled(ts_ns, o.coid, trade_id, o.side, o.price, fill, self.fees.fee(o.price, fill))
            if o.remaining == 0:
                done.append(o)
            self._emit(ts_ns, rep)
        for o in done:
            resting.remove(o)
            del self._by_coid[o.coid]

    def on_depth(self, ts_ns: int, side: int, price: int, qty: int) -> None:
        """The level ``price`` (ticks) of ``side`` is now ``qty`` lots (after a depth diff was applied to the
        book): the queue model of each of our orders at that price sees the change."""
        for o in (self.bids if side == BUY else self.asks):
            if o.price == price:
                self.queue.depth(o, o.level, qty)
                o.level = qty

    def on_depth_diff(self, ts_ns: int, diff) -> None:
        """After ``diff`` (a DepthDiff, levels in ticks/lots) was applied to the shared book: queue updates for
        the levels it touched at our prices, then fills of our orders the new top of book crosses."""
        self.advance(ts_ns)
        if self.bids:
            for px, qty in diff.bids:
                self.on_depth(ts_ns, BUY, px, qty)
        if self.asks:
            for px, qty in diff.asks:
                self.on_depth(ts_ns, -BUY, px, qty)
        if self.bids or self.asks:
            self._cross(ts_ns)

    def on_book_ticker(self, ts_ns: int, update_id: int, bid_px: int, bid_qty: int, ask_px: int,
                       ask_qty: int) -> None:
        """A bookTicker (Binance ``<symbol>@bookTicker``: best bid/ask price in ticks and quantity in lots,
        ``update_id`` in the depth id sequence). Newer than the book (its id ahead of the book's last applied
        update), it becomes the top of book until a depth diff catches up: our orders at its prices see the
        level's quantity (queue model), and orders it crosses fill. A crossed or empty ticker is ignored."""
        self.advance(ts_ns)
        if not 0 < bid_px < ask_px or update_id <= getattr(self.book, "last_update_id", 0):
            return
        self._tk_u, self._tk_bid, self._tk_bid_qty, self._tk_ask, self._tk_ask_qty = (update_id, bid_px, bid_qty,
                                                                                     ask_px, ask_qty)
        if self.bids:
            self.on_depth(ts_ns, BUY, bid_px, bid_qty)
        if self.asks:
            self.on_depth(ts_ns, -BUY, ask_px, ask_qty)
        if self.bids or self.asks:
            self._cross(ts_ns)

    def _cross(self, ts_ns: int) -> None:
        """Fill in full (at their own prices, as makers) our bids at or above the best ask and our asks at or
        below the best bid."""
        if getattr(self.book, "synced", True) is False:
            return
        ba = self.best_ask_px()
        while self.bids and 0 < ba <= self.bids[0].price:
            self._fill_all(ts_ns, self.bids.pop(0))
        bb = self.best_bid_px()
        while self.asks and 0 < self.asks[0].price <= bb:
            self._fill_all(ts_ns, self.asks.pop(0))

    def _fill_all(self, ts_ns: int, o: _Resting) -> None:
        fill = o.remaining
        o.remaining = 0
        del self._by_coid[o.coid]
        self.fill_counts["cross"] += 1
        self.fill_lots["cross"] += fill
        self._emit(ts_ns, OrderFilled(ts_ns, o.coid, -next(self._venue_ids), o.side, o.price, fill,
                                      self.fees.fee(o.price, fill)))

    # --- internals ---
    def _arrive(self, ts_ns: int, coid: str, side: int, price: int, qty: int, post_only: bool) -> None:
        if not post_only:
            self._take(ts_ns, coid, side, price, qty)
            return
        if side == BUY:
            best_ask = self.best_ask_px()
            crosses = best_ask > 0 and price >= best_ask
        else:
            best_bid = self.best_bid_px()
            crosses = best_bid > 0 and price <= best_bid
        if crosses or qty <= 0 or price <= 0 or coid in self._by_coid:
            self.rejected += 1
            if crosses:
                self._emit(ts_ns, OrderRejected(ts_ns, coid, "post-only order would immediately match",
                                                POST_ONLY_REJECT))
            else:
                self._emit(ts_ns, OrderRejected(ts_ns, coid, "invalid order", "INVALID"))
            return
        o = _Resting(coid, str(next(self._venue_ids)), side, price, qty)
        o.level = self._level_qty(side, price)
        self.queue.new_order(o, o.level)
        self._by_coid[coid] = o
        self._insert(o)
        self.accepted += 1
        self._emit(ts_ns, OrderAccepted(ts_ns, coid, o.venue_id))

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
            self._emit(ts_ns, OrderAmendRejected(ts_ns, coid, "unknown order (filled, canceled or not arrived)",
                                                 "UNKNOWN_ORDER"))
            return
        filled = o.qty - o.remaining
        crosses = (0 < self.best_ask_px() <= price) if side == BUY else (0 < price <= self.best_bid_px())
        if qty <= filled or crosses or price <= 0:
            self._cancel(ts_ns, coid)                  # Binance cancels rather than amends in these cases
            return
        (self.bids if side == BUY else self.asks).remove(o)
        o.price, o.qty, o.remaining = price, qty, qty - filled
        o.level = self._level_qty(side, price)
        self.queue.new_order(o, o.level)                               # requeued at the back
        self._insert(o)
        self._emit(ts_ns, OrderAmended(ts_ns, coid, price, qty))

    def _take(self, ts_ns: int, coid: str, side: int, price: int, qty: int) -> None:
        # Immediate-or-cancel against the visible book (our own resting orders are not matched).
        self.accepted += 1
        venue_id = str(next(self._venue_ids))
        self._emit(ts_ns, OrderAccepted(ts_ns, coid, venue_id))
        remaining = qty
        opposite = -side
        for level_px, level_qty in self.book.levels(opposite, 50):
            if remaining <= 0 or (level_px > price if side == BUY else level_px < price):
                break
            fill = min(remaining, level_qty)
            remaining -= fill
            rep = OrderFilled(ts_ns, coid, -next(self._venue_ids), side, level_px, fill,
                              self.taker_fees.fee(level_px, fill), is_maker=False)
            self._emit(ts_ns, rep)
        if remaining > 0:
            self._emit(ts_ns, OrderExpired(ts_ns, coid, remaining))

    def _cancel(self, ts_ns: int, coid: str) -> None:
        o = self._by_coid.pop(coid, None)
        if o is None:
            self.cancel_rejected += 1
            self._emit(ts_ns, OrderCancelRejected(ts_ns, coid, "unknown order (filled, canceled or not arrived)"))
            return
        (self.bids if o.side == BUY else self.asks).remove(o)
        self.canceled += 1
        self._emit(ts_ns, OrderCanceled(ts_ns, coid, o.remaining))
