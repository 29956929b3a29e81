"""Fill markouts and the PnL split a quant reads after a run (venue-neutral, event time).

- Markout of a fill at horizon h: ``side * (mid(t + h) - price) * qty`` in quote currency, where ``mid(t + h)``
  is the mid at the first market event at or after ``t + h`` (t: the fill's time, ns). Positive: the market
  moved in the fill's favour after it (a buy below the later mid); negative: adverse selection. Reported per
  horizon as the sum (quote currency), the mean per fill in bps of notional, and the count (fills whose horizon
  had not passed at the end are not counted).
- Spread capture of a fill: its markout at horizon 0 (``side * (mid at the fill - price) * qty``), the edge
  earned against the mid when it happened. With fees F and the mark-to-market PnL M, the inventory PnL is
  ``M + F - spread capture``: what holding the inventory made or lost as the mid moved (M = capture + inventory
  PnL - F by construction).

Prices in ticks inside (``mid_x2``: best bid + best ask, ticks), money converted with the instrument's
tick and lot sizes only in :meth:`Markouts.summary`. O(1) per market event when nothing is due (one compare).
"""
from __future__ import annotations

from collections import deque
from decimal import Decimal

#: Markout horizons (seconds of event time).
HORIZONS_S = (1, 5, 30)


class Markouts:
    """Markouts of fills at ``horizons_s`` and the spread capture (see the module docstring)."""

    def __init__(self, tick_size: Decimal, lot_size: Decimal, horizons_s=HORIZONS_S):
        self.unit = float(tick_size) * float(lot_size)     # quote currency of one tick x lot
        self.horizons_s = tuple(sorted(horizons_s))
        self.horizons_ns = [int(h * 1_000_000_000) for h in self.horizons_s]
        self._pending = [deque() for _ in self.horizons_ns]  # per horizon: (due_ns, side, price, qty), in time order
        self.next_due = -1                                     # -1: nothing pending
        self.sums_x2 = [0] * len(self.horizons_ns)             # sum of side * (mid_x2 - 2 price) * qty (int)
        self.counts = [0] * len(self.horizons_ns)
        self.notional_ticks_lots = [0] * len(self.horizons_ns)
        self.capture_x2 = 0
        self.fills = 0

    def on_fill(self, ts_ns: int, side: int, price: int, qty: int, mid_x2: int) -> None:
        """A fill (ticks, lots) at ``ts_ns``; ``mid_x2`` the mid (x2, ticks) when it happened (0: unknown, no
        capture counted)."""
        self.fills += 1
        if mid_x2 > 0:
            self.capture_x2 += side * (mid_x2 - 2 * price) * qty
        for h, q in zip(self.horizons_ns, self._pending):
            q.append((ts_ns + h, side, price, qty))
        due = ts_ns + self.horizons_ns[0] if self.horizons_ns else -1
        if self.next_due < 0 or 0 <= due < self.next_due:
            self.next_due = due

    def on_mid(self, ts_ns: int, mid_x2: int) -> None:
        """The mid (x2, ticks) at a market event at ``ts_ns``: settles every markout due by then (call it when
        ``0 <= next_due <= ts_ns``; a mid of 0, no book, settles nothing)."""
        if mid_x2 <= 0:
            return
        nxt = -1
        for i, q in enumerate(self._pending):
            while q and q[0][0] <= ts_ns:
                _, side, price, qty = q.popleft()
                self.sums_x2[i] += side * (mid_x2 - 2 * price) * qty
                self.counts[i] += 1
                self.notional_ticks_lots[i] += price * qty
            if q and (nxt < 0 or q[0][0] < nxt):
                nxt = q[0][0]
        self.next_due = nxt

    def summary(self, mtm_pnl: Decimal | None = None, fees: Decimal | None = None) -> dict:
        """``{"markouts": {"1s": {"sum_quote", "mean_bps", "fills"}, ...}, "spread_capture_quote",
        "inventory_pnl_quote"}`` (floats; the inventory PnL needs ``mtm_pnl`` and ``fees``)."""
        out = {}
        for h, s2, n, notional in zip(self.horizons_s, self.sums_x2, self.counts, self.notional_ticks_lots):
            out[f"{h:g}s"] = {"sum_quote": round(s2 * 0.5 * self.unit, 8), "fills": n,
                              "mean_bps": round(s2 * 0.5 / notional * 1e4, 3) if notional else None}
        capture = self.capture_x2 * 0.5 * self.unit
        inventory = float(mtm_pnl) + float(fees) - capture if mtm_pnl is not None and fees is not None else None
        return {"markouts": out, "spread_capture_quote": round(capture, 8),
                "inventory_pnl_quote": round(inventory, 8) if inventory is not None else None}


class RunStats:
    """The markouts and quoting statistics of one engine, fed after every market event (replay, paper, live).

    Fills are picked up from ``engine.fills`` at the first event after they were booked (replay: the same event;
    live: reports arrive between events, so the spread capture uses the mid of the next event).
    """

    def __init__(self, engine, tick_size: Decimal, lot_size: Decimal):
        from mmcore.engine.quote_stats import QuoteStats
        self.engine = engine
        self.markouts = Markouts(tick_size, lot_size)
        self.quoting = QuoteStats()
        self._quoting = self.quoting.on_event
        self._seen = len(engine.fills)

    def after_event(self, ts_ns: int) -> None:
        """Update after the market event at ``ts_ns`` (O(1) when no fill is new and no markout due)."""
        eng = self.engine
        book = eng.book
        synced = book.synced
        fills = eng.fills
        mk = self.markouts
        if len(fills) != self._seen:
            mid_x2 = book.mid_x2() if synced else 0
            for f in fills[self._seen:]:
                mk.on_fill(f.ts_ns, f.side, f.price, f.qty, mid_x2)
            self._seen = len(fills)
        due = mk.next_due
        if 0 <= due <= ts_ns:
            mk.on_mid(ts_ns, book.mid_x2() if synced else 0)
        if synced:
            self._quoting(ts_ns, book.best_bid_px(), book.best_ask_px(), eng.orders)
        else:
            self._quoting(ts_ns, 0, 0, eng.orders)

    def summary(self, mtm_pnl, fees) -> dict:
        """``markouts``, ``spread_capture_quote``, ``inventory_pnl_quote`` and ``quoting`` (see the modules)."""
        eng = self.engine
        return {**self.markouts.summary(mtm_pnl, fees),
                "quoting": self.quoting.summary(len(eng.fills), eng.orders.placed)}
