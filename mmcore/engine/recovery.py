"""Restart and reconnect recovery: make the engine's view agree with the journal and the venue.

The same code serves every venue (Binance spot and USDⓈ-M now, MEXC later). It needs only a small
execution-venue interface (:class:`ExecutionVenue`): ``submit``/``cancel`` for requests, and three queries,
``open_orders()`` (:class:`VenueOrder` list), ``fills_since(ts_ns)`` (:class:`mmcore.execution.OrderFilled`
list) and ``order(client_order_id)`` (one :class:`VenueOrder` in any status, or None; Binance
``GET /api/v3/order?origClientOrderId=``) - plus the journal. :func:`recover` does the queries;
:func:`reconcile` itself takes and returns plain data, so it is unit-tested without any venue.

What :func:`reconcile` does (each action logged on ``mmcore.recovery`` and counted in the
:class:`RecoveryReport`):

1. Restart only: the portfolio is rebuilt from the journal's complete fill history (exact cost basis) and
   the risk gate's position set from it. The gate's PnL peak is restored, and if the engine was HALTED
   when it died the gate is halted again (the kill switch is sticky across restarts; clearing it is an
   operator's decision, ``python -m mmcore run --venue ... --live --reset-halt``).
2. The client-order-id counter continues past every id that may have been used: on a restart the
   journal's ``coid_counter`` (the order manager's durable reservation mark: it is flushed before any id
   of the block is sent), and always past the highest own id seen in the journal or at the venue. The
   counter never moves back and reconcile never writes ``coid_counter`` (the order manager owns it).
3. Orders open in the journal (or tracked in memory, after a reconnect) and open at the venue: adopted
   (state ACCEPTED / PARTIALLY_FILLED with their fills; SUBMITTED if the venue has not accepted them yet).
   One whose cancel was in flight (PENDING_CANCEL) is cancelled again.
4. Orders open in the journal but not at the venue: closed - FILLED if the fills (journal + venue) cover
   their quantity, else CANCELED.
5. Orders open at the venue that the journal does not know: if they carry our client-order-id prefix they
   are ours (sent just before a crash, before the journal committed them) and are adopted, then cancelled
   (``unknown_policy="cancel"``, default: their quote is stale and the quoter will place fresh ones) or
   kept as the side's working order (``"adopt"``). Orders of another prefix belong to someone else (a
   manual order, another strategy on the account) and are left alone and listed (``cancel_foreign``
   to cancel them).
6. Venue fills with our prefix that the journal does not have, keyed by ``(client_order_id, trade_id)``,
   are booked exactly once - portfolio, risk gate, journal - also when the venue lists one twice.
   A fill of a tracked order goes through the order state machine like a live report. Every fill is first
   checked against the order it names (:func:`mmcore.execution.fill_contradiction`: side, limit price,
   quantity left); one that contradicts it is refused (``fills_refused``, a mismatch, logged), never booked.
   Every booked fill names an ``orders`` row: for an order the journal does not have (sent just before a
   crash, then filled or cancelled while the engine was down) the row is first written from the venue's
   record of that order (event ``RECONCILE_RECORDED``, ``rows_recorded``); if the venue does not know the
   order either, from its fills (the side of the earliest, the extreme fill price as limit, their total as
   quantity, state FILLED; the event's detail says so; ``rows_reconstructed``).

After reconciling, execution reports that arrive late for orders already closed (a fill that raced the
reconnect) are booked by :func:`book_untracked_fill`, which the journal de-duplicates and checks against the
journal's order row.

Venue adapters must list as open every order the venue has received, including one not yet accepted
(``status="PENDING_NEW"``); an order sent but not received at all is reported neither open nor filled and
is closed as CANCELED, which is what it is.
"""
from __future__ import annotations

import enum
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Protocol

from mmcore.execution import (OrderAccepted, OrderAmended, OrderAmendRejected, OrderFilled, VenueOrder,
                              fill_contradiction)
from mmcore.persistence.journal import (KV_COID_COUNTER, KV_PEAK_PNL, KV_TRADING_STATE, KV_TRADING_STATE_REASON,
                                        KV_TRADING_STATE_TS, JournalState, OrderRow)
from mmcore_ext import orders as om

log = logging.getLogger("mmcore.recovery")

#: Journal order states after which an order is closed (the order state machine's terminal states).
TERMINAL_STATE_NAMES = frozenset(om.STATE_NAMES[s] for s in om.TERMINAL_STATES)
#: Venue status of an order received but not yet accepted (still in the venue's pipeline).
PENDING_NEW = "PENDING_NEW"
#: ``fills_since`` looks this far (ns) before the earliest time a fill can be missing from the journal.
FILLS_LOOKBACK_NS = 60_000_000_000
#: The digits of a client order id's base-36 counter.
_B36 = frozenset("0123456789abcdefghijklmnopqrstuvwxyz")
#: Journal order state for a venue order status (the order state machine's names).
VENUE_STATUS_STATE = {"PENDING_NEW": "SUBMITTED", "NEW": "ACCEPTED", "PARTIALLY_FILLED": "PARTIALLY_FILLED",
                      "FILLED": "FILLED", "CANCELED": "CANCELED", "EXPIRED": "EXPIRED", "REJECTED": "REJECTED"}


class ExecutionVenue(Protocol):
    """What recovery needs from a venue connection (prices ticks, quantities lots, times ns)."""

    def submit(self, ts_ns: int, coid: str, side: int, price: int, qty: int, post_only: bool = True) -> None: ...

    def cancel(self, ts_ns: int, coid: str) -> None: ...

    async def open_orders(self) -> list[VenueOrder]: ...

    async def fills_since(self, ts_ns: int) -> list[OrderFilled]: ...

    async def order(self, client_order_id: str) -> VenueOrder | None: ...


@dataclass
class RecoveryReport:
    """What one reconciliation did. Lists hold client order ids (fills: the booked ``OrderFilled``).

    ``mismatches`` lists real disagreements (the venue counts more filled than our fills, an order that
    could not be adopted, a fill its order refused); ``fills_refused`` the fills not booked because they
    contradict their order (``"coid/trade_id: reason"``, also in ``mismatches``); ``rows_recorded`` /
    ``rows_reconstructed`` the orders whose journal row was written from the venue's record / from their
    fills (the venue did not know them); ``snapshot_lagged`` only says that the journal's last
    position snapshot was older than its last fill (a crash between the two writes); ``halted_restored``
    that the journal said HALTED and the risk gate was halted again.
    """

    ts_ns: int
    restart: bool
    adopted: list = field(default_factory=list)
    closed_filled: list = field(default_factory=list)
    closed_canceled: list = field(default_factory=list)
    unknown_adopted: list = field(default_factory=list)
    unknown_canceled: list = field(default_factory=list)
    foreign_orders: list = field(default_factory=list)
    cancels_sent: list = field(default_factory=list)
    fills_booked: list = field(default_factory=list)
    fills_refused: list = field(default_factory=list)
    rows_recorded: list = field(default_factory=list)
    rows_reconstructed: list = field(default_factory=list)
    fills_known: int = 0
    fills_duplicate: int = 0
    fills_foreign: int = 0
    fills_restored: int = 0
    snapshot_lagged: bool = False
    halted_restored: bool = False
    mismatches: list = field(default_factory=list)
    coid_counter_before: int = 0
    coid_counter_after: int = 0
    position_lots: int = 0
    snapshot_ts_ns: int = 0

    def summary(self) -> dict:
        """Counts (and the mismatch messages) as a JSON-able dict."""
        out = {"ts_ns": self.ts_ns, "restart": self.restart}
        for k in ("adopted", "closed_filled", "closed_canceled", "unknown_adopted", "unknown_canceled",
                  "foreign_orders", "cancels_sent", "fills_booked", "fills_refused", "rows_recorded",
                  "rows_reconstructed"):
            out[k] = len(getattr(self, k))
        out.update(fills_known=self.fills_known, fills_duplicate=self.fills_duplicate,
                   fills_foreign=self.fills_foreign, fills_restored=self.fills_restored,
                   snapshot_lagged=self.snapshot_lagged, halted_restored=self.halted_restored,
                   coid_counter_before=self.coid_counter_before, coid_counter_after=self.coid_counter_after,
                   position_lots=self.position_lots, mismatches=list(self.mismatches))
        return out


def coid_counter(coid: str, prefix: str) -> int | None:
    """The counter of an id ``prefix + base36(counter)``, or None if ``coid`` is not of that form."""
    if not coid.startswith(prefix):
        return None
    digits = coid[len(prefix):]
    if not digits or not set(digits) <= _B36:
        return None
    return int(digits, 36)


def is_own_id(coid: str, prefix: str) -> bool:
    """True if ``coid`` is one of ours: ``prefix`` followed by a base-36 counter and nothing else (a prefix
    match alone would also claim ``mm-b-7`` of another bot whose prefix is ``mm-b-``)."""
    return coid_counter(coid, prefix) is not None


def fills_query_start(state: JournalState, lookback_ns: int = FILLS_LOOKBACK_NS) -> int:
    """Earliest time (ns) from which the venue's fills must be fetched to find every fill the journal lacks.

    A fill missing from the journal happened after the last journaled fill or belongs to an order open in
    the journal (journal writes are committed in order), so: the earlier of the two, minus ``lookback_ns``
    (clock offsets, same-time events). 0 (everything) for an empty journal.
    """
    times = [o.ts_created_ns for o in state.open_orders]
    if state.fills:
        times.append(max(f.ts_ns for f in state.fills))
    if not times:
        return 0
    return max(0, min(times) - lookback_ns)


def _ours(state: JournalState, orders):
    """``ours(coid)``: ids of our form, and every id the journal or the order manager knows (so orders sent
    under an earlier client_order_id_prefix are still reconciled, not left alone as someone else's)."""
    prefix = orders.coids.prefix
    known_ids = ({o.client_order_id for o in state.open_orders} | {f.client_order_id for f in state.fills}
                 | set(orders.orders))
    return lambda coid: coid in known_ids or is_own_id(coid, prefix)


def orders_to_look_up(state: JournalState, venue_orders: Iterable[VenueOrder], venue_fills: Iterable[OrderFilled],
                      orders) -> set[str]:
    """Client order ids whose order :func:`reconcile` needs and has from neither the journal's open orders,
    the order manager nor the venue's open orders: those of our new venue fills (not in the journal). For
    each, :func:`recover` reads the journal's row (a closed order) or else asks the venue (``order``)."""
    ours = _ours(state, orders)
    known = {(f.client_order_id, f.trade_id) for f in state.fills}
    have = ({o.client_order_id for o in state.open_orders} | set(orders.orders)
            | {v.client_order_id for v in venue_orders})
    return {f.client_order_id for f in venue_fills
            if f.client_order_id not in have and ours(f.client_order_id) and (f.client_order_id, f.trade_id) not in known}


def reconcile(state: JournalState, venue_orders: Iterable[VenueOrder], venue_fills: Iterable[OrderFilled],
              orders, portfolio, ts_ns: int, *, restart: bool, unknown_policy: str = "cancel",
              cancel_foreign: bool = False, journal_rows: Mapping[str, OrderRow] | None = None,
              venue_records: Mapping[str, VenueOrder | None] | None = None) -> RecoveryReport:
    """Bring the order manager, portfolio, risk gate and journal in line with the venue (module docstring).

    Parameters
    ----------
    state : JournalState
        ``Journal.load(TERMINAL_STATE_NAMES)``, read after the last write of the previous run/connection.
    venue_orders : iterable of VenueOrder
        The venue's open orders (all of the account's on this instrument).
    venue_fills : iterable of OrderFilled
        The venue's fills since :func:`fills_query_start` (or earlier); duplicates are tolerated.
    orders : OrderManager
        Its ``exec`` (the venue), ``gate``, ``journal`` and ``coids`` (prefix) are used.
    portfolio : Portfolio
    ts_ns : int
        Time of the reconciliation (ns): journal events, cancels, the position snapshot.
    restart : bool
        True on a process start (``orders`` must track nothing and ``portfolio`` must be fresh: both are
        rebuilt from ``state``); False after a reconnect (in-memory state is kept and completed).
    unknown_policy : {"cancel", "adopt"}
        What to do with our own orders that are open at the venue but unknown to the journal.
    cancel_foreign : bool
        Also cancel open orders that do not carry our prefix.
    journal_rows : mapping of str to OrderRow, optional
        The journal's rows (closed orders) of the ids :func:`orders_to_look_up` gives, as far as it has them.
    venue_records : mapping of str to VenueOrder or None, optional
        The venue's record (``order``) of those of the ids the journal has no row for; None: the venue does
        not know the order. An id in neither mapping is taken as unknown to both (row from its fills).

    Returns
    -------
    RecoveryReport

    Raises
    ------
    ValueError
        Bad ``unknown_policy``; ``restart`` with a non-empty order manager or portfolio.
    """
    if unknown_policy not in ("cancel", "adopt"):
        raise ValueError(f"unknown_policy must be 'cancel' or 'adopt', got {unknown_policy!r}")
    journal, gate = orders.journal, orders.gate
    prefix = orders.coids.prefix
    rep = RecoveryReport(ts_ns, restart, coid_counter_before=orders.coids.counter)
    ours = _ours(state, orders)

    # Fills: what the journal has, what the venue says (ours, de-duplicated).
    known = {(f.client_order_id, f.trade_id) for f in state.fills}
    jfills_by_coid: dict[str, list] = {}
    for f in state.fills:
        jfills_by_coid.setdefault(f.client_order_id, []).append(f)
    new_fills: list[OrderFilled] = []
    seen = set()
    for f in venue_fills:
        key = (f.client_order_id, f.trade_id)
        if not ours(f.client_order_id):
            rep.fills_foreign += 1
        elif key in seen:
            rep.fills_duplicate += 1
        elif key in known:
            seen.add(key)
            rep.fills_known += 1
        else:
            seen.add(key)
            new_fills.append(f)
    new_fills.sort(key=lambda f: f.ts_ns)

    # 1. Restart: portfolio and gate position from the journal.
    if restart:
        if orders.orders:
            raise ValueError("restart reconciliation needs an order manager that tracks no order")
        portfolio.restore(state.fills)
        gate.set_position(portfolio.position)
        rep.fills_restored = len(state.fills)
        snap = state.position
        if snap is not None and snap.position_lots != portfolio.position:
            # Normal after a crash between a fill's write and its snapshot's: the fills are the record.
            rep.snapshot_lagged = True
            log.warning("journal position snapshot %d lots at %d != %d lots from its fills; using the fills",
                        snap.position_lots, snap.ts_ns, portfolio.position)
        peak = state.kv.get(KV_PEAK_PNL)
        if peak is not None:
            gate.restore_peak(float(peak))
        if state.kv.get(KV_TRADING_STATE) == "HALTED":
            reason = (f"restored from the journal: halted at ts_ns={state.kv.get(KV_TRADING_STATE_TS)} "
                      f"({state.kv.get(KV_TRADING_STATE_REASON)})")
            gate.halt(ts_ns, reason)
            rep.halted_restored = True
            log.warning("trading state HALTED %s", reason)

    # 2. Client-order-id counter.
    # The journal's marks cover ids a dead process may have used; after a reconnect the counter in memory
    # is authoritative (and only ids seen at the venue could be ahead of it).
    start = 0
    if restart:
        start = int(state.kv.get(KV_COID_COUNTER, 0))
    venue_orders = list(venue_orders)
    for coid in [o.client_order_id for o in state.open_orders] + [f.client_order_id for f in state.fills] + \
            [o.client_order_id for o in venue_orders] + [f.client_order_id for f in new_fills]:
        n = coid_counter(coid, prefix)
        if n is not None and n + 1 > start:
            start = n + 1
    if orders.restore_coid_counter(start):
        log.info("client order ids continue at counter %d (was %d)", start, rep.coid_counter_before)

    # 3./5. Orders open at the venue.
    venue_by_coid = {}
    for v in venue_orders:
        if ours(v.client_order_id):
            venue_by_coid[v.client_order_id] = v
        else:
            rep.foreign_orders.append(v.client_order_id)
            log.warning("open order %s at the venue is not ours (prefix %r): %s", v.client_order_id, prefix,
                        "cancelling it" if cancel_foreign else "left alone")
            if cancel_foreign:
                orders.exec.cancel(ts_ns, v.client_order_id)
                rep.cancels_sent.append(v.client_order_id)
    journal_open = {r.client_order_id: r for r in state.open_orders}
    for coid, v in venue_by_coid.items():
        o = orders.orders.get(coid)
        if o is not None:                                  # reconnect: we track it already
            if o.state == om.SUBMITTED and v.status != PENDING_NEW:
                orders.on_report(OrderAccepted(ts_ns, coid, v.venue_order_id))
            elif o.state == om.PENDING_CANCEL:             # the cancel may have died with the connection
                orders.exec.cancel(ts_ns, coid)
                rep.cancels_sent.append(coid)
                log.info("order %s: cancel sent again after the reconnect", coid)
            elif o.state == om.PENDING_REPLACE:            # the amend's answer may have died with it
                if (v.price, v.qty) == (o.pending_price, o.pending_qty):
                    orders.on_report(OrderAmended(ts_ns, coid, v.price, v.qty))
                else:
                    orders.on_report(OrderAmendRejected(ts_ns, coid, "not applied (seen after the reconnect)",
                                                        "UNKNOWN_STATUS"))
            elif (v.price, v.qty) != (o.price, o.qty):     # amended at the venue while we were away
                orders.on_report(OrderAmended(ts_ns, coid, v.price, v.qty))
            continue
        row = journal_open.get(coid)
        side, price, qty, created = ((row.side, row.price_ticks, row.qty_lots, row.ts_created_ns) if row else
                                     (v.side, v.price, v.qty, v.ts_created_ns or ts_ns))
        if row is not None and (v.price, v.qty) != (price, qty):
            # amended (an amend in flight at the crash, or by another session): the venue's order is the truth
            log.warning("order %s: the venue works %d lots at %d ticks, the journal %d at %d: taking the venue's",
                        coid, v.qty, v.price, qty, price)
            price, qty = v.price, v.qty
        jf = [(f.trade_id, f.price_ticks, f.qty_lots, f.ts_ns) for f in jfills_by_coid.get(coid, ())]
        try:
            o = orders.adopt(ts_ns, coid, side, price, qty, created, v.venue_order_id, jf,
                             acked=v.status != PENDING_NEW)
        except ValueError as exc:
            _mismatch(rep, f"order {coid} open at the venue could not be adopted ({exc}); cancelling it")
            orders.exec.cancel(ts_ns, coid)
            rep.cancels_sent.append(coid)
            continue
        if row is not None:
            rep.adopted.append(coid)
            log.info("adopted %s (%s, %d/%d lots filled)", coid, om.STATE_NAMES[o.state], o.filled, qty)
            cancel = row.state == "PENDING_CANCEL" or all(w is not o for w in orders.slots[side])
        else:
            rep.unknown_adopted.append(coid)
            cancel = unknown_policy == "cancel" or all(w is not o for w in orders.slots[side])
            log.warning("order %s open at the venue was not in the journal: adopted%s", coid,
                        ", cancelling it" if cancel else "")
            if cancel:
                rep.unknown_canceled.append(coid)
        if cancel and orders.cancel_order(ts_ns, coid):
            rep.cancels_sent.append(coid)

    # 6. Fills the journal lacks: exactly once each, each consistent with its order and under an order row.
    tracked = set(orders.orders)
    jfilled = Counter()
    for f in state.fills:
        jfilled[f.client_order_id] += f.qty_lots
    rows = _OrderRefs(journal, ts_ns, rep, journal_open, journal_rows or {}, venue_records or {}, venue_by_coid,
                      jfilled, new_fills)
    for f in new_fills:
        o = orders.orders.get(f.client_order_id)
        if o is not None and o.has_trade(f.trade_id):
            rep.fills_known += 1                          # applied live since the journal was read (a race)
            continue
        ref = [o.side, o.price, o.remaining] if o is not None else rows.ref(f)
        why = fill_contradiction(f, *ref)
        if why is not None:
            _refuse(rep, f, why)
            continue
        if o is not None:
            booked = orders.on_report(f) is not None        # through the order state machine
            if booked:
                portfolio.on_fill(f.side, f.price, f.qty, f.fee)
            else:
                _mismatch(rep, f"fill {f.client_order_id}/{f.trade_id} refused by its order; booked anyway "
                               "(the venue's fills are the truth for the position)")
                booked = _book_direct(f, gate, portfolio, journal)
        else:
            booked = _book_direct(f, gate, portfolio, journal)   # False: the journal had it after all
        if not booked:
            rep.fills_known += 1
            continue
        if o is None:
            ref[2] -= f.qty
        rep.fills_booked.append(f)
        log.info("booked fill %s/%d missing from the journal: %+d lots at %d ticks", f.client_order_id,
                 f.trade_id, f.side * f.qty, f.price)
    for coid, v in venue_by_coid.items():
        o = orders.orders.get(coid)
        if o is not None and o.filled < v.filled:
            _mismatch(rep, f"order {coid}: {o.filled} lots filled by our fills, {v.filled} by the venue")

    # 4. Open in the journal or tracked, not open at the venue: ended while we were away.
    for coid in sorted(tracked - set(venue_by_coid)):
        o = orders.orders.get(coid)
        if o is None:                                      # its fills completed it (FILLED) just above
            rep.closed_filled.append(coid)
            log.info("order %s closed as FILLED by fills booked now", coid)
            continue
        detail = f"not open at the venue; {o.filled}/{o.qty} lots filled"
        if orders.close_missing(ts_ns, coid, detail):
            rep.closed_canceled.append(coid)
            log.info("order %s closed as CANCELED: %s", coid, detail)
    filled_by_coid = Counter()
    for f in state.fills:
        filled_by_coid[f.client_order_id] += f.qty_lots
    for f in rep.fills_booked:
        filled_by_coid[f.client_order_id] += f.qty
    for coid, row in journal_open.items():
        if coid in venue_by_coid or coid in tracked:
            continue
        filled = filled_by_coid[coid]
        new = "FILLED" if filled >= row.qty_lots else "CANCELED"
        (rep.closed_filled if new == "FILLED" else rep.closed_canceled).append(coid)
        detail = f"not open at the venue; {filled}/{row.qty_lots} lots filled"
        journal.record_event(ts_ns, coid, "RECONCILE_CLOSED", row.state, new, detail)
        log.info("order %s closed as %s: %s", coid, new, detail)

    # Snapshot and counter, after everything booked.
    snap_ts = ts_ns
    if state.position is not None:
        snap_ts = max(snap_ts, state.position.ts_ns + 1)
    if new_fills:
        snap_ts = max(snap_ts, new_fills[-1].ts_ns)
    journal.record_position(snap_ts, portfolio.position, portfolio.cash_tl, portfolio.fees)
    rep.coid_counter_after = orders.coids.counter
    rep.position_lots = portfolio.position
    rep.snapshot_ts_ns = snap_ts
    log.warning("reconciled (%s): %s", "restart" if restart else "reconnect", rep.summary())
    return rep


async def recover(venue: ExecutionVenue, journal, orders, portfolio, ts_ns: int, *, restart: bool,
                  lookback_ns: int = FILLS_LOOKBACK_NS, **kw) -> RecoveryReport:
    """Load the journal, query the venue (open orders first, then fills), :func:`reconcile`.

    Parameters are those of :func:`reconcile` (``kw``: ``unknown_policy``, ``cancel_foreign``); ``journal``
    is the open :class:`mmcore.persistence.journal.Journal` (flushed by its ``load``). Open orders are queried before
    fills so that an order that fills between the two queries is seen filled, never lost.

    Then, for our new fills whose order neither the journal's open orders, the order manager nor the venue's
    open orders give (:func:`orders_to_look_up`), the journal's row is read, or the venue's record fetched
    (``venue.order``), so that :func:`reconcile` can check each fill against its order and write the order
    row of a fill whose order the journal never had.

    Raises
    ------
    ConnectionError, TimeoutError
        A venue query failed (nothing was changed). Venue adapters raise their query error
        (:class:`mmcore.venues.common.QueryError`, also for a malformed answer) likewise before anything changes.
    JournalError
        Journal writes failed.
    """
    state = journal.load(TERMINAL_STATE_NAMES)
    venue_orders = await venue.open_orders()
    venue_fills = await venue.fills_since(fills_query_start(state, lookback_ns))
    look_up = orders_to_look_up(state, venue_orders, venue_fills, orders)
    journal_rows = journal.order_rows(look_up) if look_up else {}
    venue_records = {}
    for coid in sorted(look_up - journal_rows.keys()):
        venue_records[coid] = await venue.order(coid)
    return reconcile(state, venue_orders, venue_fills, orders, portfolio, ts_ns, restart=restart,
                     journal_rows=journal_rows, venue_records=venue_records, **kw)


class LateFill(enum.Enum):
    """What :func:`book_untracked_fill` did. Truthy only for ``BOOKED``."""

    BOOKED = "booked"
    DUPLICATE = "duplicate"          # the journal has it already
    FOREIGN = "foreign"              # not one of our ids
    REFUSED = "refused"              # contradicts the journal's row of its order (side, limit, lots left)
    NO_ORDER_ROW = "no_order_row"    # the journal has no row of its order: a reconciliation must book it

    def __bool__(self) -> bool:
        return self is LateFill.BOOKED


def book_untracked_fill(rep: OrderFilled, orders, portfolio) -> LateFill:
    """Book a live fill report of one of our orders that the order manager no longer tracks.

    Such a fill raced a reconciliation (the order was closed as canceled, or cancelled as unknown, and
    traded meanwhile). De-duplicated by the journal on ``(client_order_id, trade_id)``, and checked against
    the journal's row of the order (:func:`mmcore.execution.fill_contradiction` with the row's side, limit and
    ``qty_lots - filled_lots``). Not booked (and why, :class:`LateFill`): a fill of another prefix, one the
    journal has, one that contradicts the row (logged), and one whose order has no row in the journal
    (logged; the caller reconciles, which fetches the venue's record of the order and books the fill under
    it). With a :class:`mmcore.persistence.journal.NullJournal` there is no row, so nothing is booked here.
    """
    coid = rep.client_order_id
    if not is_own_id(coid, orders.coids.prefix):
        return LateFill.FOREIGN
    journal = orders.journal
    if journal.has_fill(coid, rep.trade_id):
        return LateFill.DUPLICATE
    row = journal.order_rows((coid,)).get(coid)
    if row is None:
        log.warning("late fill %s/%d: the journal has no row of this order; not booked until a reconciliation "
                    "fetches the venue's record of it", coid, rep.trade_id)
        return LateFill.NO_ORDER_ROW
    why = fill_contradiction(rep, row.side, row.price_ticks, row.qty_lots - row.filled_lots)
    if why is not None:
        log.error("late fill %s/%d refused, not booked: %s (journal row: %s %d lots at %d ticks, %d filled, %s)",
                  coid, rep.trade_id, why, "buy" if row.side > 0 else "sell", row.qty_lots, row.price_ticks,
                  row.filled_lots, row.state)
        return LateFill.REFUSED
    if not _book_direct(rep, orders.gate, portfolio, journal):
        return LateFill.DUPLICATE
    journal.record_position(rep.ts_ns, portfolio.position, portfolio.cash_tl, portfolio.fees)
    log.warning("late fill %s/%d of an untracked order booked: %+d lots at %d ticks", coid,
                rep.trade_id, rep.side * rep.qty, rep.price)
    return LateFill.BOOKED


class _OrderRefs:
    """``[side, limit price, lots left]`` of the untracked orders that new fills name; writes the journal row
    of an order the journal does not have (from the venue's record, else from its fills) the first time."""

    def __init__(self, journal, ts_ns, rep, journal_open, journal_rows, venue_records, venue_open, jfilled,
                 new_fills):
        self.journal, self.ts_ns, self.rep = journal, ts_ns, rep
        self.journal_open, self.journal_rows = journal_open, journal_rows
        self.venue_records, self.venue_open = venue_records, venue_open
        self.jfilled, self.new_fills = jfilled, new_fills
        self.refs: dict[str, list] = {}

    def ref(self, f: OrderFilled) -> list:
        coid = f.client_order_id
        r = self.refs.get(coid)
        if r is None:
            row = self.journal_open.get(coid) or self.journal_rows.get(coid)
            if row is not None:
                r = [row.side, row.price_ticks, row.qty_lots - row.filled_lots]
            else:
                r = self._write_row(coid, self.venue_records.get(coid) or self.venue_open.get(coid), f)
            self.refs[coid] = r
        return r

    def _write_row(self, coid: str, v: VenueOrder | None, first: OrderFilled) -> list:
        journal, done = self.journal, self.jfilled[coid]     # lots the journal booked without a row (old journals)
        if v is not None:
            state = VENUE_STATUS_STATE[v.status]
            detail = (f"order row from the venue's record (status {v.status}, {v.filled}/{v.qty} lots filled): "
                      "the order was sent but not journaled before the engine stopped")
            journal.record_order(v.ts_created_ns or first.ts_ns, coid, v.side, v.price, v.qty, state,
                                 v.venue_order_id, done)
            journal.record_event(self.ts_ns, coid, "RECONCILE_RECORDED", None, state, detail)
            self.rep.rows_recorded.append(coid)
            log.warning("order %s: %s", coid, detail)
            if state not in TERMINAL_STATE_NAMES:
                log.warning("order %s is open at the venue but was not listed open: the next reconciliation "
                            "adopts or closes it", coid)
            return [v.side, v.price, v.qty - done]
        same = [g for g in self.new_fills if g.client_order_id == coid and g.side == first.side]
        limit = max(g.price for g in same) if first.side > 0 else min(g.price for g in same)
        qty = sum(g.qty for g in same)
        detail = (f"order row reconstructed from {len(same)} fill(s): the venue does not know this order "
                  "(side from the earliest fill, limit price and quantity from the fills)")
        journal.record_order(first.ts_ns, coid, first.side, limit, qty + done, "FILLED", None, done)
        journal.record_event(self.ts_ns, coid, "RECONCILE_RECORDED", None, "FILLED", detail)
        self.rep.rows_reconstructed.append(coid)
        log.warning("order %s: %s", coid, detail)
        return [first.side, limit, qty]


def _refuse(rep: RecoveryReport, f: OrderFilled, why: str) -> None:
    rep.fills_refused.append(f"{f.client_order_id}/{f.trade_id}: {why}")
    _mismatch(rep, f"fill {f.client_order_id}/{f.trade_id} ({f.side:+d} x {f.qty} lots at {f.price} ticks) "
                   f"refused, not booked: {why}")


def _book_direct(f: OrderFilled, gate, portfolio, journal) -> bool:
    """Book a fill of an order nobody tracks: journal (de-duplicating), portfolio, gate position."""
    if not journal.record_fill(f.ts_ns, f.client_order_id, f.trade_id, f.side, f.price, f.qty, f.fee):
        return False
    journal.record_event(f.ts_ns, f.client_order_id, "FILL", None, None, str(f.trade_id))
    portfolio.on_fill(f.side, f.price, f.qty, f.fee)
    gate.set_position(gate.position_lots + f.side * f.qty)
    return True


def _mismatch(rep: RecoveryReport, msg: str) -> None:
    rep.mismatches.append(msg)
    log.error("reconcile: %s", msg)


