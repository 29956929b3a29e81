"""Pure-Python reference of :mod:`mmcore_ext.book`: same public API, same Binance sync procedure.

Used by the differential tests and as the benchmark baseline, so it is meant to be a fair, straightforward
pure-Python book: per side a ``dict`` price -> quantity plus a ``bisect``-maintained sorted key list with the
best level at the end (bids: prices ascending; asks: negated prices ascending), so top-of-book reads are
``keys[-1]`` and inserts/removals near the top shift few list slots.

Units: prices in ticks, quantities in lots, times in ns (int). Sync rules and their sources:

- spot: https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams#how-to-manage-a-local-order-book-correctly
  drop ``u <= lastUpdateId``; first applied ``U <= lastUpdateId+1 <= u``; then ``U == previous u + 1``.
- USDⓈ-M: https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams/How-to-manage-a-local-order-book-correctly
  drop ``u < lastUpdateId``; first applied ``U <= lastUpdateId <= u``; then ``pu == previous u``.

Once synced, an event with ``u <=`` the book's update id is STALE; a gap clears the book, and the diff that
revealed it is kept at the head of the buffer for the next snapshot (as in the compiled book). A snapshot that
arrives while SYNCED with ``lastUpdateId <=`` the book's update id is ignored and counted (``stale_snapshots``).

Bounds (the compiled book's, mirrored so both refuse the same input with ValueError): prices in
``[1, MAX_PRICE_TICKS]``, quantities in ``[0, MAX_QTY_LOTS]`` (both 2**53), update ids within ``+-MAX_UPDATE_ID``
(2**62); ``depth_qty`` saturates at 2**63 - 1 as the compiled one does.

Events are read through their Python attributes (``first_update_id``, ``final_update_id``,
``prev_final_update_id``, ``ts_local_ns``, ``bids``, ``asks``, ``last_update_id``), so any object carrying
them works: :class:`mmcore_ext.events.DepthDiff` / ``DepthSnapshot`` or plain Python stand-ins.
"""
from __future__ import annotations

from bisect import bisect_left, insort
from collections import deque

SYNC_SPOT = 0
SYNC_USDM = 1
AWAITING_SNAPSHOT = 0
SYNCED = 1
APPLIED = 0
BUFFERED = 1
STALE = 2
GAP = 3
BID = 1
ASK = -1
DEFAULT_MAX_PENDING = 100_000
MAX_PRICE_TICKS = 2**53
MAX_QTY_LOTS = 2**53
MAX_UPDATE_ID = 2**62
_INT64_MAX = 2**63 - 1

_MARKET_RULES = {"binance_spot": SYNC_SPOT, "binance_usdm": SYNC_USDM}


def sync_rule_for_market(market: str) -> int:
    """``"binance_spot"`` -> SYNC_SPOT, ``"binance_usdm"`` -> SYNC_USDM. Raises ValueError otherwise."""
    try:
        return _MARKET_RULES[market]
    except KeyError:
        raise ValueError(f"no book sync rule for market {market!r}; known: {sorted(_MARKET_RULES)}") from None


def _check_levels(levels, what: str) -> None:
    for px, qty in levels:
        if not (1 <= px <= MAX_PRICE_TICKS and 0 <= qty <= MAX_QTY_LOTS):
            raise ValueError(f"{what} level ({px}, {qty}): price must be in [1, {MAX_PRICE_TICKS}] ticks and "
                             f"quantity in [0, {MAX_QTY_LOTS}] lots")


def _check_id(v: int, name: str) -> None:
    if not -MAX_UPDATE_ID <= v <= MAX_UPDATE_ID:
        raise ValueError(f"{name} = {v}: update ids must be within +-{MAX_UPDATE_ID}")


class _Side:
    """One side: ``qty`` maps price -> lots; ``keys`` holds ``sign * price`` ascending (best last)."""

    __slots__ = ("sign", "qty", "keys")

    def __init__(self, sign: int):
        self.sign = sign
        self.qty: dict[int, int] = {}
        self.keys: list[int] = []

    def load(self, levels) -> None:
        book = {}
        for px, q in levels:
            if q:
                book[px] = q
            else:
                book.pop(px, None)
        self.qty = book
        sign = self.sign
        self.keys = sorted(book) if sign > 0 else sorted(-px for px in book)

    def apply(self, levels) -> None:
        book = self.qty
        keys = self.keys
        sign = self.sign
        for px, q in levels:
            if q:
                if px not in book:
                    insort(keys, sign * px)
                book[px] = q
            elif book.pop(px, None) is not None:
                del keys[bisect_left(keys, sign * px)]

    def clear(self) -> None:
        self.qty = {}
        self.keys = []


class ReferenceL2Book:
    """Pure-Python L2 book with the public API of :class:`mmcore_ext.book.L2Book` (see there for details)."""

    def __init__(self, sync_rule: int, max_pending: int = DEFAULT_MAX_PENDING):
        if sync_rule not in (SYNC_SPOT, SYNC_USDM):
            raise ValueError(f"sync_rule must be SYNC_SPOT ({SYNC_SPOT}) or SYNC_USDM ({SYNC_USDM}), got {sync_rule}")
        if max_pending < 1:
            raise ValueError(f"max_pending must be >= 1, got {max_pending}")
        self.sync_rule = sync_rule
        self.max_pending = max_pending
        self._bids = _Side(1)
        self._asks = _Side(-1)
        self._pending: deque = deque()
        self._await_first = False
        self.state = AWAITING_SNAPSHOT
        self.last_update_id = -1
        self.ts_local_ns = 0
        self.applied = 0
        self.buffered = 0
        self.stale = 0
        self.stale_snapshots = 0
        self.gaps = 0
        self.crossed = 0
        self.buffer_dropped = 0

    # --- internals
    def _side(self, side: int) -> _Side:
        if side == BID:
            return self._bids
        if side == ASK:
            return self._asks
        raise ValueError(f"side must be +1 (bid) or -1 (ask), got {side}")

    def _buffer(self, d) -> None:
        if len(self._pending) >= self.max_pending:
            self._pending.popleft()
            self.buffer_dropped += 1
        self._pending.append(d)

    def _process(self, d) -> int:
        U = d.first_update_id
        u = d.final_update_id
        last = self.last_update_id
        if self._await_first:
            if self.sync_rule == SYNC_SPOT:
                if u <= last:
                    self.stale += 1
                    return STALE
                ok = U <= last + 1
            else:
                if u < last:
                    self.stale += 1
                    return STALE
                ok = U <= last
        else:
            if u <= last:
                self.stale += 1
                return STALE
            if self.sync_rule == SYNC_SPOT:
                ok = U == last + 1
            else:
                ok = d.prev_final_update_id == last
        if not ok:
            self.gaps += 1
            self.state = AWAITING_SNAPSHOT
            self._await_first = False
            self._bids.clear()
            self._asks.clear()
            return GAP
        self._bids.apply(d.bids)
        self._asks.apply(d.asks)
        self._await_first = False
        self.last_update_id = u
        self.ts_local_ns = d.ts_local_ns
        self.applied += 1
        if self.is_crossed():
            self.crossed += 1
        return APPLIED

    # --- updates
    def load_snapshot(self, s) -> int:
        """Replace the book with snapshot ``s`` and replay the buffer; returns the state afterwards."""
        if s is None:
            raise TypeError("load_snapshot() needs a DepthSnapshot, got None")
        bids, asks = s.bids, s.asks
        _check_id(s.last_update_id, "snapshot lastUpdateId")
        _check_levels(bids, "snapshot bid")
        _check_levels(asks, "snapshot ask")
        if self.state == SYNCED and s.last_update_id <= self.last_update_id:
            self.stale_snapshots += 1
            return self.state
        self._bids.load(bids)
        self._asks.load(asks)
        self.state = SYNCED
        self._await_first = True
        self.last_update_id = s.last_update_id
        self.ts_local_ns = s.ts_local_ns
        pending = self._pending
        while pending:
            if self._process(pending[0]) == GAP:
                break
            pending.popleft()
        return self.state

    def invalidate(self) -> None:
        """Drop every level and buffered diff; AWAITING_SNAPSHOT (not a gap)."""
        self.state = AWAITING_SNAPSHOT
        self._await_first = False
        self._bids.clear()
        self._asks.clear()
        self._pending.clear()

    def apply_diff(self, d) -> int:
        """Process one diff; returns APPLIED, BUFFERED, STALE or GAP."""
        if d is None:
            raise TypeError("apply_diff() needs a DepthDiff, got None")
        if d.final_update_id < d.first_update_id:
            raise ValueError(f"depth diff with u={d.final_update_id} < U={d.first_update_id}")
        _check_id(d.first_update_id, "diff U")
        _check_id(d.final_update_id, "diff u")
        _check_id(d.prev_final_update_id, "diff pu")
        _check_levels(d.bids, "diff bid")
        _check_levels(d.asks, "diff ask")
        if self.state == AWAITING_SNAPSHOT:
            self._buffer(d)
            self.buffered += 1
            return BUFFERED
        r = self._process(d)
        if r == GAP:
            self._buffer(d)
        return r

    # --- queries
    def best_bid_px(self) -> int:
        """Best bid price (ticks); 0 if no bids."""
        keys = self._bids.keys
        return keys[-1] if keys else 0

    def best_bid_qty(self) -> int:
        """Quantity at the best bid (lots); 0 if no bids."""
        keys = self._bids.keys
        return self._bids.qty[keys[-1]] if keys else 0

    def best_ask_px(self) -> int:
        """Best ask price (ticks); 0 if no asks."""
        keys = self._asks.keys
        return -keys[-1] if keys else 0

    def best_ask_qty(self) -> int:
        """Quantity at the best ask (lots); 0 if no asks."""
        keys = self._asks.keys
        return self._asks.qty[-keys[-1]] if keys else 0

    def mid_x2(self) -> int:
        """Best bid + best ask (ticks); 0 if either side is empty."""
        if not self._bids.keys or not self._asks.keys:
            return 0
        return self._bids.keys[-1] - self._asks.keys[-1]

    def spread(self) -> int:
        """Best ask - best bid (ticks); 0 if either side is empty."""
        if not self._bids.keys or not self._asks.keys:
            return 0
        return -self._asks.keys[-1] - self._bids.keys[-1]

    def microprice(self) -> float:
        """(bid * ask_qty + ask * bid_qty) / (bid_qty + ask_qty) in ticks; 0.0 if either side is empty."""
        if not self._bids.keys or not self._asks.keys:
            return 0.0
        b = self._bids.keys[-1]
        a = -self._asks.keys[-1]
        bq = self._bids.qty[b]
        aq = self._asks.qty[a]
        return (b * aq + a * bq) / (bq + aq)

    def is_crossed(self) -> bool:
        """True if both sides are non-empty and best bid >= best ask."""
        return bool(self._bids.keys and self._asks.keys and self._bids.keys[-1] >= -self._asks.keys[-1])

    def qty_at(self, side: int, price: int) -> int:
        """Quantity (lots) at ``price`` (ticks) on ``side`` (+1 bid, -1 ask); 0 if absent."""
        return self._side(side).qty.get(price, 0)

    def depth_qty(self, side: int, n_levels: int) -> int:
        """Cumulative quantity (lots) of the best ``n_levels`` levels of ``side``."""
        s = self._side(side)
        if n_levels < 0:
            raise ValueError(f"n_levels must be >= 0, got {n_levels}")
        if n_levels == 0:
            return 0
        qty = s.qty
        return min(_INT64_MAX, sum(qty[s.sign * k] for k in s.keys[-n_levels:]))

    def n_levels(self, side: int) -> int:
        """Number of levels on ``side``."""
        return len(self._side(side).keys)

    def levels(self, side: int, n: int | None = None) -> list[tuple[int, int]]:
        """Levels of ``side`` best-first as ``[(price_ticks, qty_lots), ...]`` (at most ``n``)."""
        s = self._side(side)
        if n is not None and n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        keys = s.keys if n is None else s.keys[len(s.keys) - min(n, len(s.keys)):]
        return [(s.sign * k, s.qty[s.sign * k]) for k in reversed(keys)]

    @property
    def synced(self) -> bool:
        """True when the book is valid (state SYNCED)."""
        return self.state == SYNCED

    @property
    def pending(self) -> int:
        """Number of diffs buffered for the next snapshot."""
        return len(self._pending)
