"""Time-weighted quoting statistics of a run (event time): how long we quoted, how wide, how often at the touch.

Between two market events the book and our resting orders are taken as constant (they change only at events),
so each statistic is an exact integral over event time of what held after the previous event:

- ``quoted_fraction``: time with a resting bid and a resting ask / time with a valid book;
- ``quoted_spread_bps``: time-weighted ``(our ask - our bid) / mid`` while both rest, in bps;
- ``bid_at_touch`` / ``ask_at_touch``: time our resting bid (ask) was the best bid (ask) / time with a valid book;
- ``fill_rate``: fills / orders placed (per order sent, not per lot).

"Resting" means the order manager's working order on the side in ACCEPTED or PARTIALLY_FILLED (acknowledged,
not being cancelled or amended). Prices in ticks, times in ns.
"""
from __future__ import annotations

from mmcore_ext import orders as om

_LIVE = (om.ACCEPTED, om.PARTIALLY_FILLED)


class QuoteStats:
    """Accumulates the statistics of the module docstring; :meth:`on_event` after every market event."""

    def __init__(self):
        self.last_ts = None
        # what held after the previous event (no book: bb = 0): best bid / ask, our resting bid / ask (0: none)
        self._bb = self._ba = self._ob = self._oa = 0
        self.book_ns = 0
        self.both_ns = 0
        self.spread_bps_ns = 0.0
        self.bid_touch_ns = 0
        self.ask_touch_ns = 0

    def on_event(self, ts_ns: int, best_bid: int, best_ask: int, orders) -> None:
        """The state after a market event at ``ts_ns``: the book's best bid / ask (ticks, 0: none) and the order
        manager (its working orders). Allocates nothing."""
        last = self.last_ts
        bb = self._bb
        if last is not None and bb and ts_ns > last:
            dt = ts_ns - last
            ob, oa = self._ob, self._oa
            self.book_ns += dt
            if ob and oa:
                self.both_ns += dt
                self.spread_bps_ns += (oa - ob) / ((bb + self._ba) * 0.5) * 1e4 * dt
            if ob and ob >= bb:
                self.bid_touch_ns += dt
            if oa and oa <= self._ba:
                self.ask_touch_ns += dt
        if last is None or ts_ns >= last:
            self.last_ts = ts_ns
        if best_bid and best_ask and best_bid < best_ask:
            slots = orders.slots
            b, a = slots[1][0], slots[-1][0]      # level 0: the quote nearest the touch
            self._bb, self._ba = best_bid, best_ask
            self._ob = b.price if b is not None and b.state in _LIVE else 0
            self._oa = a.price if a is not None and a.state in _LIVE else 0
        else:
            self._bb = 0

    def summary(self, fills: int, orders_placed: int) -> dict:
        """The statistics (floats; None where their denominator is 0)."""
        book = self.book_ns
        return {"quoted_fraction": round(self.both_ns / book, 4) if book else None,
                "quoted_spread_bps": round(self.spread_bps_ns / self.both_ns, 3) if self.both_ns else None,
                "bid_at_touch": round(self.bid_touch_ns / book, 4) if book else None,
                "ask_at_touch": round(self.ask_touch_ns / book, 4) if book else None,
                "fill_rate": round(fills / orders_placed, 4) if orders_placed else None}
