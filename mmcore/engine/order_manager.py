"""Order manager: reconcile desired quotes with live orders through the risk gate and the order state machine.

Per side and ladder level (level 0 is the quote nearest the touch): keep the working order while its price is within tolerance (``tolerance_ticks``, or
``tolerance_bps`` of its price, whichever allows more) and it is younger than ``ttl_ns``; otherwise cancel it
and place a new one (cancel/replace), or, with ``amend_orders`` on a client that ``supports_modify``, amend its
price in place (one request; PENDING_REPLACE until the venue answers). Never more than
``max_orders_per_side`` live orders on a side per level quoted (orders whose cancel is in flight count: they can still fill);
with ``wait_for_cancel_ack`` no new order goes out on a side until its pending cancels are confirmed. Every new order passes :class:`mmcore_ext.risk.RiskGate`
(refusals are counted per reason by the gate); every cancel passes the gate's cancel-rate limit except
risk-driven cancel-all. A post-only reject (the price would have taken liquidity) re-prices one tick away
from the mid, once.

Every order lives in a compiled :class:`mmcore_ext.orders.Order`; illegal transitions are logged with both
states named and counted, and the order is left unchanged. Duplicate execution reports (same trade id) are
ignored and counted; fill reports that contradict their order are refused and counted. Order lifecycle and fills
go to the journal (off the hot path: a queue put).
"""
from __future__ import annotations

import logging
from collections import Counter

from mmcore.execution import (BUY, POST_ONLY_REJECT, SELL, OrderAccepted, OrderAmended, OrderAmendRejected,
                              OrderCanceled, OrderCancelRejected, OrderExpired, OrderFilled, OrderRejected,
                              fill_contradiction)
from mmcore.persistence.journal import KV_COID_COUNTER
from mmcore_ext import orders as om
from mmcore_ext.risk import PASS, REASON_NAMES

log = logging.getLogger("mmcore.orders")

_STATE = om.STATE_NAMES
#: Client order ids reserved durably in the journal at a time (key ``coid_counter``).
COID_BLOCK = 4096
_TERMINAL = frozenset(om.TERMINAL_STATES)


class OrderManager:
    """Tracks our orders and turns desired quotes into submit/cancel requests.

    Parameters
    ----------
    exec_client
        ``submit(ts_ns, coid, side, price_ticks, qty_lots, post_only=True)`` and ``cancel(ts_ns, coid)``.
    gate : RiskGate
        Pre-trade risk gate (also told about every open/closed order and fill).
    coids : ClientOrderIdGenerator
        Client order ids, unique across restarts (its counter is journaled).
    journal : Journal or NullJournal
    tolerance_ticks, tolerance_bps : int, float
        Price tolerance for keeping a working order (ticks; bps of the order's price).
    ttl_ns : int
        Maximum age of a working order (ns) before it is replaced.
    max_orders_per_side : int
        Live orders per side per ladder level (``levels``), cancels in flight included.
    levels : int
        Ladder levels per side (1: one quote per side; :meth:`reconcile_ladder` for more).
    wait_for_cancel_ack : bool
    reprice_post_only : bool
    exchange_filter : mmcore.instruments.OrderFilter, optional
        The venue's order filters, applied to every order before the risk gate: the quantity is rounded down to
        a whole ``LOT_SIZE`` step (counted ``qty_rounded_to_step``), and an order failing ``PRICE_FILTER``,
        ``LOT_SIZE`` or (gated orders only) ``MIN_NOTIONAL`` / ``MAX_NOTIONAL`` is not sent, counted per filter
        name in :meth:`refusal_counts`.
    """

    def __init__(self, exec_client, gate, coids, journal, tolerance_ticks: int, tolerance_bps: float,
                 ttl_ns: int, max_orders_per_side: int = 1, wait_for_cancel_ack: bool = False,
                 reprice_post_only: bool = True, exchange_filter=None, amend_orders: bool = False, levels: int = 1):
        self.exec = exec_client
        self.gate = gate
        self.coids = coids
        self.journal = journal
        self.tolerance = tolerance_ticks
        self.tolerance_frac = tolerance_bps / 10_000.0
        self.ttl_ns = ttl_ns
        self.levels = levels
        self.max_per_side = max_orders_per_side * levels
        self.wait_cancel_ack = wait_for_cancel_ack
        self.reprice_post_only = reprice_post_only
        self.exchange_filter = exchange_filter
        # re-price in place (amend) where the execution client can (``supports_modify``)
        self.amend_orders = bool(amend_orders) and bool(getattr(exec_client, "supports_modify", False))
        self.filter_refusals = Counter()
        self.orders: dict[str, om.Order] = {}        # every non-terminal order
        # slots[side][i]: the order that stands for ladder level i of a side (None: none); _level: coid -> i
        self.slots = {BUY: [None] * levels, SELL: [None] * levels}
        self._level: dict[str, int] = {}
        self.live_count = {BUY: 0, SELL: 0}
        self.cancel_pending = {BUY: set(), SELL: set()}
        self._repriced: set[str] = set()
        self._cancel_after_replace: set[str] = set()     # cancels asked for while an amend was in flight
        self.final_states = Counter()
        # "Quotes unchanged" fast path of reconcile: the inputs of the last reconcile that left both sides settled
        # (each order kept, or no order and none wanted) and the time its first order reaches its TTL; any
        # request or report clears it.
        self._settled_key = None
        self._settled_until = 0
        self._coid_reserved = 0
        self.counters = Counter()
        self.placed = self.cancels = self.rejects = self.cancel_rejects = 0

    # --- desired quotes -> actions (hot path) ---
    @property
    def working(self) -> dict:
        """The level-0 order of each side (``{BUY: order or None, SELL: ...}``; a new dict per call)."""
        return {BUY: self.slots[BUY][0], SELL: self.slots[SELL][0]}

    def reconcile(self, ts_ns: int, bid_px: int, ask_px: int, qty: int, ask_qty: int | None = None) -> None:
        """Make the level-0 orders match ``bid_px``/``ask_px`` (ticks; 0 = none) of ``qty`` lots (the ask of
        ``ask_qty`` lots when given).

        Fast path: the same inputs as the last call that left both sides settled, with no request or report
        since and no order at its TTL yet, return at once: that call would do nothing (on the bundled replay
        most calls are such)."""
        if ask_qty is None:
            ask_qty = qty
        key = (bid_px, ask_px, qty, ask_qty)
        if key == self._settled_key and ts_ns < self._settled_until:
            return
        if bid_px and ask_px and self.gate.check_spread(bid_px, ask_px) != PASS:
            bid_px = ask_px = 0
        self._level_order(ts_ns, BUY, 0, bid_px, qty)
        self._level_order(ts_ns, SELL, 0, ask_px, ask_qty)
        b, a = self.slots[BUY][0], self.slots[SELL][0]
        if self._settled_side(b, bid_px, qty) and self._settled_side(a, ask_px, ask_qty):
            self._settled_key = key
            self._settled_until = min((o.ts_created_ns + self.ttl_ns for o in (b, a) if o is not None),
                                      default=1 << 62)
        else:
            self._settled_key = None

    def _settled_side(self, o, px: int, qty: int) -> bool:
        # What _level_order would keep as it is: no order and none wanted, or a live order it keeps.
        if o is None:
            return not px
        if not px or o.state == om.PENDING_REPLACE or o.qty != qty:
            return False
        d = abs(o.price - px)
        return d <= self.tolerance or d <= o.price * self.tolerance_frac

    def reconcile_ladder(self, ts_ns: int, ladder, hold_bid: int = 0, hold_ask: int = 0) -> None:
        """Make the orders of every level match ``ladder`` (:class:`mmcore_ext.strategy.Ladder`: level i of a side
        keeps, amends or cancel/replaces its order like level 0; levels beyond the ladder's are cancelled).

        ``hold_bid`` / ``hold_ask`` (ticks, 0 = off): no bid above ``hold_bid`` and no ask below ``hold_ask``
        (``strategy.improve_touch: false``); a level that the hold would put on or behind a better level of
        the ladder is left out. The spread check of the risk gate applies to the best bid and ask."""
        bid0, ask0 = ladder.bid_px(0), ladder.ask_px(0)
        if bid0 and ask0 and self.gate.check_spread(min(bid0, hold_bid) if hold_bid else bid0,
                                                    max(ask0, hold_ask) if hold_ask else ask0) != PASS:
            for side in (BUY, SELL):
                for i in range(self.levels):
                    self._level_order(ts_ns, side, i, 0, 0)
            return
        for side, px_at, qty_at, hold in ((BUY, ladder.bid_px, ladder.bid_qty, hold_bid),
                                          (SELL, ladder.ask_px, ladder.ask_qty, hold_ask)):
            prev = 0
            for i in range(self.levels):
                px = px_at(i)
                if px and hold and (px > hold if side == BUY else px < hold):
                    px = hold
                    self.counters["quotes_held_at_touch"] += 1
                if px and prev and (px >= prev if side == BUY else px <= prev):
                    px = 0                      # the hold put it on a better level's price
                if px:
                    prev = px
                self._level_order(ts_ns, side, i, px, qty_at(i))

    def _level_order(self, ts_ns: int, side: int, level: int, px: int, qty: int) -> None:
        slots = self.slots[side]
        o = slots[level]
        if o is not None:
            if o.state == om.PENDING_REPLACE:
                return                          # one request in flight: its answer first
            if px and ts_ns - o.ts_created_ns < self.ttl_ns and o.qty == qty:
                d = abs(o.price - px)
                if d <= self.tolerance or d <= o.price * self.tolerance_frac:
                    return
                if self.amend_orders and self.amend(ts_ns, o.client_order_id, px):
                    return
            if self.gate.check_cancel(ts_ns) != PASS:
                return                          # cancel-rate limit: keep the order for now
            self._cancel(ts_ns, o)
        if px and qty:
            self.place(ts_ns, side, px, qty, level=level)

    def place(self, ts_ns: int, side: int, px: int, qty: int, post_only: bool = True,
              check_risk: bool = True, level: int = 0) -> om.Order | None:
        """Send one order if the side has room and the risk gate passes it; return it (or None). A post-only
        order stands for ladder level ``level`` of its side."""
        self._settled_key = None
        if self.live_count[side] >= self.max_per_side and post_only:
            self.counters["side_full"] += 1
            return None
        if self.wait_cancel_ack and self.cancel_pending[side] and post_only:
            self.counters["waiting_cancel_ack"] += 1
            return None
        if self.exchange_filter is not None:
            rounded, why = self.exchange_filter.check(px, qty, check_risk)
            if why is not None:
                self.filter_refusals[why] += 1
                return None
            if rounded != qty:
                self.counters["qty_rounded_to_step"] += 1
                qty = rounded
        gate = self.gate
        if check_risk and gate.check_order(side, px, qty, ts_ns) != PASS:
            return None
        if self.coids.counter >= self._coid_reserved:
            self._reserve_coids()
        coid = self.coids.next_id()
        o = om.Order(coid, side, px, qty, ts_ns)
        o.apply(om.SUBMIT, ts_ns)
        self.orders[coid] = o
        if post_only:
            self.slots[side][level] = o
            self._level[coid] = level
        self.live_count[side] += 1
        self.placed += 1
        gate.on_order_open(side, px, qty)
        gate.note_order_sent(ts_ns)
        self.journal.record_order(ts_ns, coid, side, px, qty, "SUBMITTED")
        self.exec.submit(ts_ns, coid, side, px, qty, post_only)
        return o

    def _reserve_coids(self) -> None:
        # Durably reserve the next block of client order ids before any of them is sent: a restart continues
        # after the reservation (journal key ``coid_counter``), so an id is never reused even when the last
        # journal writes before a crash were lost. One flush per COID_BLOCK orders; raises JournalError if
        # the reservation cannot be written (the order is then not sent).
        self._coid_reserved = self.coids.counter + COID_BLOCK
        self.journal.set_kv(KV_COID_COUNTER, self._coid_reserved)
        self.journal.flush()
        self.counters["coid_reservations"] += 1

    def _cancel(self, ts_ns: int, o) -> bool:
        self._settled_key = None
        old = o.state
        if o.apply(om.CANCEL_REQUEST, ts_ns) != om.OK:
            self._illegal(o, om.CANCEL_REQUEST, old)
            return False
        side = o.side
        self._unslot(o)
        self.cancel_pending[side].add(o.client_order_id)
        self.cancels += 1
        self.gate.note_cancel_sent(ts_ns, side)
        self.journal.record_event(ts_ns, o.client_order_id, "CANCEL_REQUEST", _STATE[old], _STATE[o.state])
        self.exec.cancel(ts_ns, o.client_order_id)
        return True

    def amend(self, ts_ns: int, coid: str, px: int) -> bool:
        """Move a resting order in place to ``px`` ticks, its quantity kept (venues with an in-place amend: the
        execution client's ``modify`` where ``supports_modify``, Binance USDⓈ-M ``order.modify``). The new price
        passes the exchange filters and the risk gate as if the order were replaced; the order is PENDING_REPLACE
        until the venue's OrderAmended / OrderAmendRejected (or OrderCanceled: Binance cancels a GTX order
        amended to a price that would take). Returns False (nothing sent) for an order not ACCEPTED /
        PARTIALLY_FILLED, a client without ``modify``, a filter or gate refusal."""
        self._settled_key = None
        o = self.orders.get(coid)
        if o is None or not getattr(self.exec, "supports_modify", False) or \
                o.state not in (om.ACCEPTED, om.PARTIALLY_FILLED):
            return False
        qty = o.qty
        if self.exchange_filter is not None:
            _, why = self.exchange_filter.check(px, qty, True)
            if why is not None:
                self.filter_refusals[why] += 1
                return False
        gate, side, left = self.gate, o.side, o.qty - o.filled
        gate.on_order_closed(side, o.price, left)              # checked as if it replaced the old order
        rc = gate.check_order(side, px, qty - o.filled, ts_ns)
        gate.on_order_open(side, o.price, left)
        if rc != PASS:
            return False
        old = o.state
        if o.request_replace(px, qty, ts_ns) != om.OK:
            self._illegal(o, om.REPLACE_REQUEST, old)
            return False
        gate.note_order_sent(ts_ns)                            # an amend counts as an order at Binance
        self.counters["amends_sent"] += 1
        self.journal.record_event(ts_ns, coid, "REPLACE_REQUEST", _STATE[old], _STATE[o.state], f"{px}x{qty}")
        self.exec.modify(ts_ns, coid, side, px, qty)
        return True

    def _on_amended(self, o, rep) -> None:
        """OrderAmended: our amend applied (REPLACE_ACK), a second copy of it (ignored), or an amend we did not
        ask for (another session or a person changed the order at the venue): mirrored, counted, logged, and
        the order canceled (the engine quotes what it decided, never an order changed behind its back)."""
        coid, ts = o.client_order_id, rep.ts_ns
        old, old_px, old_left = o.state, o.price, o.qty - o.filled
        if old != om.PENDING_REPLACE:
            if (o.price, o.qty) == (rep.price, rep.qty):
                self.counters["duplicate_amends"] += 1
                return
            if old not in (om.ACCEPTED, om.PARTIALLY_FILLED, om.PENDING_CANCEL) or \
                    o.request_replace(rep.price, rep.qty, ts) != om.OK:
                self.counters["amend_reports_refused"] += 1
                log.error("order %s: an amendment to %d lots at %d ticks cannot be applied in state %s; order "
                          "unchanged", coid, rep.qty, rep.price, _STATE[old])
                return
            self.counters["amended_by_venue"] += 1
            log.warning("order %s was amended at the venue without our request (to %d lots at %d ticks): "
                        "cancelling it", coid, rep.qty, rep.price)
            unasked = True
        else:
            if (o.pending_price, o.pending_qty) != (rep.price, rep.qty):
                self.counters["amend_reports_refused"] += 1
                log.error("order %s: the venue amended it to %d lots at %d ticks, not the %d at %d asked; "
                          "taking the venue's", coid, rep.qty, rep.price, o.pending_qty, o.pending_price)
                o.apply(om.REPLACE_REJECT, ts)
                if o.request_replace(rep.price, rep.qty, ts) != om.OK:
                    return
            unasked = False
        rc = o.apply(om.REPLACE_ACK, ts)
        if rc != om.OK:
            self._illegal(o, om.REPLACE_ACK, om.PENDING_REPLACE, rc)
            return
        self.gate.on_order_closed(o.side, old_px, old_left)
        self.gate.on_order_open(o.side, o.price, o.qty - o.filled)
        self.journal.record_order(ts, coid, o.side, o.price, o.qty, _STATE[o.state], filled_lots=o.filled)
        self.journal.record_event(ts, coid, "REPLACE_ACK", _STATE[old], _STATE[o.state], f"{o.price}x{o.qty}")
        if unasked and _cancellable(o):
            self._cancel_after_replace.discard(coid)
            self._cancel(ts, o)
        else:
            self._replace_settled(o, ts)

    def expire_working(self, ts_ns: int) -> int:
        """Cancel the working orders that are at least ``ttl_ns`` old at ``ts_ns`` (the timer's TTL check, which
        does not wait for a new quote). A cancel refused by the gate's cancel-rate limit is tried again at the
        next check. Returns the number of cancels sent (also counted as ``ttl_cancels``)."""
        n = 0
        for side in (BUY, SELL):
            for o in self.slots[side]:
                if o is not None and _cancellable(o) and ts_ns - o.ts_created_ns >= self.ttl_ns and \
                        self.gate.check_cancel(ts_ns) == PASS:
                    n += self._cancel(ts_ns, o)
        if n:
            self.counters["ttl_cancels"] += n
        return n

    def next_expiry_ns(self) -> int:
        """Time (ns) at which the oldest working order reaches its TTL, or -1 when no order is working."""
        created = [o.ts_created_ns for side in (BUY, SELL) for o in self.slots[side] if o is not None]
        return min(created) + self.ttl_ns if created else -1

    def cancel_all(self, ts_ns: int) -> int:
        """Cancel every live order whose cancel is not already in flight (risk-driven: not rate limited). An
        order with an amend in flight is cancelled as soon as the amend's answer comes."""
        n = 0
        for o in list(self.orders.values()):
            if _cancellable(o):
                n += self._cancel(ts_ns, o)
            elif o.state == om.PENDING_REPLACE:
                self._cancel_after_replace.add(o.client_order_id)
        return n

    def _replace_settled(self, o, ts_ns: int) -> None:
        """An amend of ``o`` was answered: a cancel asked for meanwhile (cancel_all, cancel_order) goes now."""
        coid = o.client_order_id
        if coid in self._cancel_after_replace:
            self._cancel_after_replace.discard(coid)
            if coid in self.orders and _cancellable(o):
                self._cancel(ts_ns, o)

    # --- execution reports ---
    def on_report(self, rep):
        """Apply an execution report; return the order for a new (non-duplicate) fill, else None.

        A fill report is checked in this order: a trade id already applied to the order is a duplicate
        (ignored, counted ``duplicate_fills``, whatever its fields say); a report that contradicts the order
        (:func:`mmcore.execution.fill_contradiction`: another side, more than the remaining lots, a price
        beyond the limit, or a field that does not fit int64) is refused: counted ``fill_contradictions``,
        logged as an error naming the order, the trade id and the field, and never applied to the order, the
        gate or the journal (the engine then does not book it either)."""
        self._settled_key = None
        coid = rep.client_order_id
        o = self.orders.get(coid)
        t = type(rep)
        if o is None:
            # Normal races: a cancel reject for an order that filled meanwhile. Anything else is logged.
            self.counters["reports_for_closed_orders"] += 1
            if t is not OrderCancelRejected:
                log.warning("report for unknown or closed order %s: %r", coid, rep)
            return None
        ts = rep.ts_ns
        old = o.state
        if t is OrderFilled:
            try:
                dup = o.has_trade(rep.trade_id)
                why = None if dup else fill_contradiction(rep, o.side, o.price, o.remaining)
                if why is None:
                    rc = o.fill(rep.trade_id, rep.price, rep.qty, ts)
            except (OverflowError, TypeError) as exc:      # a field that is not an int64 (hostile venue)
                why = f"a field is not an int64 ({exc})"
            if why is not None:
                self._refuse_fill(o, rep, why)
                return None
            if rc == om.DUPLICATE:
                self.counters["duplicate_fills"] += 1
                log.info("duplicate execution report ignored: %s trade %d", coid, rep.trade_id)
                return None
            if rc != om.OK:
                self._illegal(o, om.FILL, old, rc)
                return None
            self.gate.on_fill(o.side, o.price, rep.qty)     # open notional was recorded at the limit
            self.journal.record_fill(ts, coid, rep.trade_id, o.side, rep.price, rep.qty, rep.fee)
            self.journal.record_event(ts, coid, "FILL", _STATE[old], _STATE[o.state], str(rep.trade_id))
            if o.state in _TERMINAL:
                self._close(o)
            return o
        if t is OrderAccepted:
            rc = o.ack(rep.venue_order_id, ts)
            event = om.ACK
        elif t is OrderCanceled:
            rc = o.apply(om.CANCEL_ACK, ts)
            event = om.CANCEL_ACK
        elif t is OrderExpired:
            rc = o.apply(om.EXPIRE, ts)
            event = om.EXPIRE
        elif t is OrderRejected:
            rc = o.apply(om.REJECT, ts)
            event = om.REJECT
            self.rejects += 1
        elif t is OrderCancelRejected:
            rc = o.apply(om.CANCEL_REJECT, ts)
            event = om.CANCEL_REJECT
            self.cancel_rejects += 1
            self.cancel_pending[o.side].discard(coid)
        elif t is OrderAmended:
            self._on_amended(o, rep)
            return None
        elif t is OrderAmendRejected:
            if old != om.PENDING_REPLACE:
                self.counters["stale_amend_rejects"] += 1
                return None
            rc = o.apply(om.REPLACE_REJECT, ts)
            event = om.REPLACE_REJECT
            self.counters["amend_rejects"] += 1
        else:
            raise TypeError(f"not an execution report: {rep!r}")
        if rc != om.OK:
            self._illegal(o, event, old, rc)
            return None
        detail = rep.venue_order_id if t is OrderAccepted else getattr(rep, "reason", None)
        self.journal.record_event(ts, coid, om.EVENT_NAMES[event], _STATE[old], _STATE[o.state], detail)
        if o.state in _TERMINAL:
            was_repriced = coid in self._repriced
            self._close(o)
            # Re-price only an order we still wanted: not one whose cancel we had asked for (cancel-all on a
            # pause, halt or shutdown), which would put a new order on the book behind the cancel.
            if (t is OrderRejected and rep.code == POST_ONLY_REJECT and not was_repriced
                    and old != om.PENDING_CANCEL):
                self._reprice(o, ts)
        elif t is OrderCancelRejected:
            level = self._level.get(coid)
            slots = self.slots[o.side]
            if level is not None and slots[level] is None:
                slots[level] = o            # still live: it stands for its level's quote again
        elif t is OrderAmendRejected:
            self._replace_settled(o, ts)
        return None

    def _refuse_fill(self, o, rep, why: str) -> None:
        # Never booked: the order, the gate, the portfolio and the journal are left as they were.
        self.counters["fill_contradictions"] += 1
        log.error("fill report refused, not booked: order %s (%s %d lots left at limit %d ticks), trade %r: %s",
                  o.client_order_id, "buy" if o.side > 0 else "sell", o.remaining, o.price, rep.trade_id, why)

    def _reprice(self, o, ts_ns: int) -> None:
        """A post-only order would have taken liquidity: try once more one tick further from the mid."""
        if not self.reprice_post_only:
            return
        px = o.price - 1 if o.side == BUY else o.price + 1
        new = self.place(ts_ns, o.side, px, o.qty) if px > 0 else None
        if new is not None:
            self._repriced.add(new.client_order_id)
            self.counters["post_only_repriced"] += 1

    def _close(self, o) -> None:
        self._settled_key = None
        coid = o.client_order_id
        self.orders.pop(coid, None)
        self._cancel_after_replace.discard(coid)
        side = o.side
        self.live_count[side] -= 1
        self.cancel_pending[side].discard(coid)
        self._repriced.discard(coid)
        self._unslot(o)
        self._level.pop(coid, None)
        self.gate.on_order_closed(side, o.price, o.remaining)
        self.final_states[_STATE[o.state]] += 1

    def _unslot(self, o) -> None:
        """``o`` no longer stands for a ladder level (cancel requested or closed)."""
        slots = self.slots[o.side]
        for i, w in enumerate(slots):
            if w is o:
                slots[i] = None

    def _illegal(self, o, event: int, old: int, rc: int = om.ILLEGAL) -> None:
        self.counters["illegal_transitions"] += 1
        log.error("order %s: %s (result %d); order unchanged", o.client_order_id,
                  om.transition_error(old, event), rc)

    # --- recovery (restart / reconnect: mmcore.engine.recovery; not the hot path) ---
    def adopt(self, ts_ns: int, coid: str, side: int, price: int, qty: int, ts_created_ns: int,
              venue_order_id: str | None = None, fills=(), acked: bool = True) -> om.Order:
        """Track an order found open at the venue that this manager does not know (after a restart).

        The order gets the state machine's path SUBMIT (+ ACK if ``acked``) + one FILL per already booked
        fill, so later duplicate reports of those fills are recognised by trade id. It becomes the working
        order of its side if that side has none (the quoter then keeps or replaces it like any other), is
        counted live, opened at the risk gate with its remaining quantity, and journaled (upsert + event
        ``ADOPT``). The fills are *not* booked again (portfolio, gate position, journal fills): they must
        already be.

        Parameters
        ----------
        ts_ns : int
            Adoption time (ns); time of the ACK.
        coid, side, price, qty, ts_created_ns
            Client order id, +1/-1, limit price (ticks), original quantity (lots), creation time (ns).
        venue_order_id : str, optional
        fills : iterable of (trade_id, price_ticks, qty_lots, ts_ns)
            Fills of this order already booked (from the journal).
        acked : bool
            False if the venue has not accepted the order yet (it stays SUBMITTED).

        Returns
        -------
        Order

        Raises
        ------
        ValueError
            ``coid`` is already tracked, a fill is refused (e.g. more than ``qty``), or the fills complete
            the order (nothing left to adopt). Nothing is changed then.
        """
        if coid in self.orders:
            raise ValueError(f"order {coid} is already tracked")
        self._settled_key = None
        o = om.Order(coid, side, price, qty, ts_created_ns)
        o.apply(om.SUBMIT, ts_created_ns)
        if acked:
            o.ack(venue_order_id, ts_ns)
        for trade_id, px, q, ts in fills:
            if o.fill(trade_id, px, q, ts) not in (om.OK, om.DUPLICATE):
                raise ValueError(f"cannot adopt {coid}: {o.last_error}")
        if o.state in _TERMINAL:
            raise ValueError(f"cannot adopt {coid}: its fills complete it ({o.filled}/{qty} lots)")
        self.orders[coid] = o
        self.live_count[side] += 1
        slots = self.slots[side]
        if None in slots:
            level = slots.index(None)
            slots[level] = o
            self._level[coid] = level
        self.gate.on_order_open(side, price, o.remaining)
        self.counters["adopted"] += 1
        self.journal.record_order(ts_created_ns, coid, side, price, qty, _STATE[o.state], venue_order_id,
                                  o.filled)
        self.journal.record_event(ts_ns, coid, "ADOPT", None, _STATE[o.state], venue_order_id)
        return o

    def cancel_order(self, ts_ns: int, coid: str) -> bool:
        """Request the cancel of one tracked order (not rate limited, like ``cancel_all``).

        Returns False (nothing sent) if ``coid`` is not tracked or a cancel or replace is already in flight.
        """
        o = self.orders.get(coid)
        if o is not None and o.state == om.PENDING_REPLACE:
            self._cancel_after_replace.add(coid)            # sent once the amend is answered
            return False
        if o is None or not _cancellable(o):
            return False
        return self._cancel(ts_ns, o)

    def close_missing(self, ts_ns: int, coid: str, detail: str | None = None) -> bool:
        """Close a tracked order that the venue no longer lists as open and whose fills do not complete it.

        Its remainder is taken as canceled (CANCEL_ACK: the venue ended it while we were not listening);
        journaled as event ``RECONCILE_CLOSED``. Returns False if ``coid`` is not tracked or the
        transition is illegal (logged and counted; the order is then left unchanged).
        """
        o = self.orders.get(coid)
        if o is None:
            return False
        old = o.state
        if o.apply(om.CANCEL_ACK, ts_ns) != om.OK:
            self._illegal(o, om.CANCEL_ACK, old)
            return False
        self.counters["closed_missing"] += 1
        self.journal.record_event(ts_ns, coid, "RECONCILE_CLOSED", _STATE[old], _STATE[o.state], detail)
        self._close(o)
        return True

    def restore_coid_counter(self, start: int) -> bool:
        """Continue client order ids at counter ``start`` (from the journal) unless already past it.

        Replaces ``coids`` with a generator of the same prefix and venue starting at ``start``; never moves
        the counter back (an id is never issued twice). Returns True if the counter moved. Raises ValueError
        (from the generator) if ``start`` does not fit the venue's id length.
        """
        if start <= self.coids.counter:
            return False
        self.coids = om.ClientOrderIdGenerator(self.coids.prefix, start, self.coids.venue)
        return True

    # --- reports ---
    def state_counts(self) -> dict:
        """Orders per state: final states of closed orders plus the current state of live ones."""
        c = Counter(self.final_states)
        for o in self.orders.values():
            c[_STATE[o.state]] += 1
        return dict(sorted(c.items()))

    def refusal_counts(self) -> dict:
        """Risk refusals per reason name, and exchange-filter refusals per filter name (non-zero only)."""
        out = {k: v for k, v in self.gate.refusals().items() if v}
        out.update(self.filter_refusals)
        return out


__all__ = ["OrderManager", "REASON_NAMES"]


def _cancellable(o) -> bool:
    """A cancel request may be sent: none (and no replace) is already in flight for ``o``."""
    return o.state != om.PENDING_CANCEL and o.state != om.PENDING_REPLACE
