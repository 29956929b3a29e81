# cython: language_level=3, boundscheck=False, wraparound=False
# Bounds/wraparound checks are off: every C-array index below is derived from a side's slot count ``n`` and
# stays in [0, n) (or [0, n] for memmove end pointers, with a byte count of 0; ``lv - 1`` only when the front
# room ``off`` > 0); the only Python indexing is ``self._pending[0]`` on a non-empty deque.
"""L2 order book for one instrument: integer ticks/lots, Binance snapshot + diff synchronisation.

Layout
------
Each side is one contiguous C array of ``Level {px, qty}`` sorted with the **best level at the end**: bids by
ascending price, asks by descending price. Market activity concentrates at the top of book, so inserting or
deleting there moves few bytes (``memmove`` of the levels above it). Lookup is a (branch-free) binary search;
the arrays grow with ``PyMem_Realloc`` and capacity is reserved *before* a diff is applied, so an applied diff
never fails half-way. No Python object is created per level on the apply path.

Deletion is lazy below the top: the slot keeps its price with quantity 0 (a *hole*), so removing a deep level
costs no memmove; an insert reuses an adjacent hole or one within ``HOLE_REACH`` slots (moving only the levels
in between), and a side is compacted when its holes outnumber its live levels by more than ``HOLE_SLACK``. The
top slot is always live (holes are trimmed off the top), so best-level reads stay O(1). The array also keeps
free room *below* its deepest level, so an insert deep in the book shifts the few levels below it down rather
than every level above it up. Why: on the real USDⓈ-M recording (books grow to ~5000 levels a side; depth@0ms
diffs carry ~70 levels each, anywhere in the depth) a strictly dense array spent most of its time in memmove;
with holes and the front room the time is dominated by the binary search.

Synchronisation (Binance "How to manage a local order book correctly")
---------------------------------------------------------------------
- spot: https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams#how-to-manage-a-local-order-book-correctly
  drop an event with ``u <= lastUpdateId``; the first applied event must satisfy ``U <= lastUpdateId+1 <= u``;
  after that each event must have ``U == previous u + 1``.
- USDⓈ-M: https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams/How-to-manage-a-local-order-book-correctly
  drop an event with ``u < lastUpdateId``; the first applied event must satisfy ``U <= lastUpdateId <= u``;
  after that each event must have ``pu == previous u``.
- Both: quantities are absolute; quantity 0 removes the level; removing a level that is not in the book is
  normal (a no-op).

Diffs received before a snapshot are buffered and replayed through the same rules when the snapshot is
loaded. A sequence gap is never applied: the book clears its levels, goes to ``AWAITING_SNAPSHOT`` and buffers
until the next snapshot. The diff that revealed the gap is kept at the head of the buffer, because it may
straddle the next snapshot's ``lastUpdateId`` (dropping it could force a second resync).

Two choices go beyond the documents' wording, for events that a correct stream does not produce: once
synchronised, an event with ``u <=`` the book's update id (a duplicate or late delivery; every update in it is
already reflected) is dropped as STALE rather than treated as a gap; and on spot an event that overlaps the
book (``U <= last u < u`` but ``U != last u + 1``) is a GAP, following the strict ``U == previous u + 1`` rule.
"""
from collections import deque

from cpython.mem cimport PyMem_Free, PyMem_Realloc
from libc.stdint cimport int64_t
from libc.string cimport memmove

from mmcore_ext.events cimport DepthDiff, DepthSnapshot

#: Default bound of the pre-snapshot buffer (diffs); the oldest are dropped (and counted) beyond it.
DEFAULT_MAX_PENDING = 100_000

_MARKET_RULES = {"binance_spot": SYNC_SPOT, "binance_usdm": SYNC_USDM}

cdef enum:
    # A side is compacted when its holes outnumber its live levels by more than this (bounds search and scans).
    HOLE_SLACK = 8
    # How far (slots, each way) an insert looks for a hole before shifting a whole part of the array.
    HOLE_REACH = 8


def sync_rule_for_market(str market):
    """Sequence rule of a market name.

    Parameters
    ----------
    market : str
        ``"binance_spot"`` or ``"binance_usdm"`` (the names of :data:`mmcore.instruments.MARKETS`).

    Returns
    -------
    int
        ``SYNC_SPOT`` or ``SYNC_USDM``.

    Raises
    ------
    ValueError
        Unknown market.
    """
    try:
        return _MARKET_RULES[market]
    except KeyError:
        raise ValueError(f"no book sync rule for market {market!r}; known: {sorted(_MARKET_RULES)}") from None


cdef inline Py_ssize_t _find(const Side* s, int64_t px) noexcept nogil:
    """Lower bound of ``px`` on side ``s``: the first index ``i`` in ``[0, n]`` whose price is not better than
    ``px`` (``lv[i].px >= px`` for bids, stored ascending; ``lv[i].px <= px`` for asks, stored descending).

    Branch-free binary search (the comparison compiles to a conditional move), one loop per side so that no
    sign multiply sits on the load-compare chain.
    """
    cdef const Level* lv = s.lv
    cdef Py_ssize_t n = s.n, base = 0, half
    if n == 0:
        return 0
    if s.sign > 0:
        while n > 1:
            half = n >> 1
            if lv[base + half].px < px:
                base += half
            n -= half
        return base + (lv[base].px < px)
    while n > 1:
        half = n >> 1
        if lv[base + half].px > px:
            base += half
        n -= half
    return base + (lv[base].px > px)


cdef void _compact(Side* s) noexcept nogil:
    """Squeeze the holes out of a side (order kept)."""
    cdef Py_ssize_t i, j = 0
    for i in range(s.n):
        if s.lv[i].qty != 0:
            if i != j:
                s.lv[j] = s.lv[i]
            j += 1
    s.n = j


cdef inline void _put(Level* slot, int64_t px, int64_t qty) noexcept nogil:
    slot.px = px
    slot.qty = qty


cdef void _set_at(Side* s, Py_ssize_t i, int64_t px, int64_t qty) noexcept nogil:
    """Set the quantity at ``px`` (lots; 0 removes), ``i`` being the lower bound of ``px`` (see ``_find``).

    The caller has reserved room for one more slot above the levels. Deleting a level below the top leaves a
    hole (no memmove); holes are trimmed off the top so ``lv[n-1]`` stays the best live level, and compacted
    away when they outnumber the live levels by more than HOLE_SLACK. A new level reuses an adjacent hole, else
    a hole within HOLE_REACH (shifting the levels in between), else shifts whichever part of the array is
    shorter: the levels below it down into the front room, or the levels above it up.
    """
    cdef Level* lv = s.lv
    cdef Py_ssize_t n = s.n
    cdef Py_ssize_t up, dn, holes, lim
    if i < n and lv[i].px == px:                      # present (live or hole)
        if qty != 0:
            if lv[i].qty == 0:
                s.live += 1
            lv[i].qty = qty
        elif lv[i].qty != 0:
            lv[i].qty = 0
            s.live -= 1
            if i == n - 1:                            # removed the best: trim holes off the top
                while n > 0 and lv[n - 1].qty == 0:
                    n -= 1
                s.n = n
            if n - s.live > s.live + HOLE_SLACK:
                _compact(s)
        return
    if qty == 0:                                      # removing an absent level: nothing to do
        return
    holes = n - s.live
    s.live += 1
    if i == n:                                        # new best level: append
        _put(&lv[n], px, qty)
        s.n = n + 1
        return
    if i > 0 and lv[i - 1].qty == 0:                  # hole just below: lv[i-2] < hole < px < lv[i]
        _put(&lv[i - 1], px, qty)
        return
    if lv[i].qty == 0:                                # hole just above: lv[i-1] < px < hole < lv[i+1]
        _put(&lv[i], px, qty)
        return
    if holes > 0:                                     # a hole within HOLE_REACH: shift the levels between
        up = i + 1
        dn = i - 2
        lim = i + HOLE_REACH if i + HOLE_REACH < n else n
        while up < lim:
            if lv[up].qty == 0:
                memmove(&lv[i + 1], &lv[i], <size_t>(up - i) * sizeof(Level))
                _put(&lv[i], px, qty)
                return
            up += 1
            if dn >= 0:
                if lv[dn].qty == 0:
                    memmove(&lv[dn], &lv[dn + 1], <size_t>(i - 1 - dn) * sizeof(Level))
                    _put(&lv[i - 1], px, qty)
                    return
                dn -= 1
    if i < n - i and s.off > 0:                       # fewer levels below: shift them down into the front room
        memmove(lv - 1, lv, <size_t>i * sizeof(Level))
        s.lv = lv - 1
        s.off -= 1
        _put(&s.lv[i], px, qty)
    else:                                             # shift the levels above up (room reserved by the caller)
        memmove(&lv[i + 1], &lv[i], <size_t>(n - i) * sizeof(Level))
        _put(&lv[i], px, qty)
    s.n = n + 1


cdef void _apply_side(Side* s, const int64_t* px, const int64_t* qty, Py_ssize_t m) noexcept nogil:
    """Set ``m`` levels on side ``s`` in order (room for ``m`` more slots reserved by the caller)."""
    cdef Py_ssize_t k
    for k in range(m):
        _set_at(s, _find(s, px[k]), px[k], qty[k])


cdef void _load_side(Side* s, const int64_t* px, const int64_t* qty, Py_ssize_t n) noexcept nogil:
    """Replace a side's levels with ``n`` snapshot levels (the caller made ``cap >= n``).

    A quarter of the free room goes below the levels, the rest above (enough for the slow path below).

    Fast path: Binance sends levels best-first, so read backwards they are already in storage order; they
    are copied if strictly ordered with positive quantities. Otherwise (unordered, duplicate prices, zero
    quantities) each level is set in input order, with the same meaning as a diff: the last one wins, 0 removes.
    """
    cdef Py_ssize_t i, j
    cdef int64_t key, prev = 0
    s.n = 0
    s.live = 0
    if s.buf == NULL:                   # nothing allocated: an empty side (n == 0)
        return
    s.off = (s.cap - n) // 4
    s.lv = s.buf + s.off
    for j in range(n):
        i = n - 1 - j
        key = s.sign * px[i]
        if qty[i] <= 0 or (j > 0 and key <= prev):
            break
        s.lv[j].px = px[i]
        s.lv[j].qty = qty[i]
        prev = key
    else:
        s.n = n
        s.live = n
        return
    s.n = 0
    _apply_side(s, px, qty, n)


cdef int _check_levels(const int64_t* px, const int64_t* qty, Py_ssize_t n, str what) except -1:
    """Raise ValueError unless every price is > 0 ticks and every quantity >= 0 lots."""
    cdef Py_ssize_t i
    cdef int bad = 0
    for i in range(n):                  # branch-free pass (vectorisable); locate the culprit only on failure
        bad |= (px[i] <= 0) | (qty[i] < 0)
    if bad:
        for i in range(n):
            if px[i] <= 0 or qty[i] < 0:
                raise ValueError(f"{what} level ({px[i]}, {qty[i]}): price must be > 0 and quantity >= 0")
    return 0


cdef class L2Book:
    """Level-2 order book kept from a depth snapshot plus diff events.

    Prices are int64 ticks, quantities int64 lots, times int64 ns since the epoch.

    Parameters
    ----------
    sync_rule : int
        ``SYNC_SPOT`` or ``SYNC_USDM`` (see :func:`sync_rule_for_market`).
    max_pending : int, optional
        Bound of the buffer of diffs received while no valid book exists (default 100 000); when full the
        oldest diff is dropped and counted in ``buffer_dropped``.

    Raises
    ------
    ValueError
        Unknown ``sync_rule`` or ``max_pending < 1``.
    """

    def __cinit__(self):
        self._bids.buf = self._bids.lv = NULL
        self._bids.off = self._bids.n = self._bids.live = self._bids.cap = 0
        self._bids.sign = 1
        self._asks.buf = self._asks.lv = NULL
        self._asks.off = self._asks.n = self._asks.live = self._asks.cap = 0
        self._asks.sign = -1

    def __init__(self, int sync_rule, Py_ssize_t max_pending=DEFAULT_MAX_PENDING):
        if sync_rule != SYNC_SPOT and sync_rule != SYNC_USDM:
            raise ValueError(f"sync_rule must be SYNC_SPOT ({SYNC_SPOT}) or SYNC_USDM ({SYNC_USDM}), got {sync_rule}")
        if max_pending < 1:
            raise ValueError(f"max_pending must be >= 1, got {max_pending}")
        self.sync_rule = sync_rule
        self.max_pending = max_pending
        self._pending = deque()
        self._await_first = False
        self.state = AWAITING_SNAPSHOT
        self.last_update_id = -1
        self.ts_local_ns = 0

    def __dealloc__(self):
        PyMem_Free(self._bids.buf)
        PyMem_Free(self._asks.buf)

    def __repr__(self):
        return (f"L2Book(rule={'usdm' if self.sync_rule == SYNC_USDM else 'spot'}, "
                f"state={'SYNCED' if self.state == SYNCED else 'AWAITING_SNAPSHOT'}, "
                f"last_update_id={self.last_update_id}, bids={self._bids.live}, asks={self._asks.live}, "
                f"best={self.best_bid_px()}x{self.best_bid_qty()} / {self.best_ask_px()}x{self.best_ask_qty()})")

    # ------------------------------------------------------------------ internals
    cdef int _grow(self, Side* s, Py_ssize_t cap) except -1:
        """Make side ``s``'s allocation at least ``cap`` slots (realloc, at least doubling; the levels keep
        their offset). Raises MemoryError (side unchanged)."""
        cdef Level* buf
        if cap <= s.cap:
            return 0
        if cap < 2 * s.cap:
            cap = 2 * s.cap
        if cap < 64:
            cap = 64
        buf = <Level*>PyMem_Realloc(s.buf, <size_t>cap * sizeof(Level))
        if buf == NULL:
            raise MemoryError()
        s.buf = buf
        s.lv = buf + s.off
        s.cap = cap
        return 0

    cdef int _reserve(self, Side* s, Py_ssize_t extra) except -1:
        """Room for ``extra`` more slots above side ``s``'s levels, and some below them.

        When the room above is short, or none is left below, the levels are re-centred (a quarter of the free
        room below), after growing the allocation so that at least a third of it is free: re-centring thus
        happens at most once per ``n/8`` deep inserts. Raises MemoryError (levels unchanged).
        """
        cdef Py_ssize_t need = s.n + extra
        cdef Py_ssize_t off
        if s.off + need <= s.cap and (s.off > 0 or s.n == 0):
            return 0
        self._grow(s, need + need // 2)
        off = (s.cap - need) // 4
        if off != s.off:
            memmove(s.buf + off, s.lv, <size_t>s.n * sizeof(Level))
            s.off = off
            s.lv = s.buf + off
        return 0

    cdef Side* _side(self, int side) except NULL:
        """The side for ``side`` = +1 (bids) / -1 (asks). Raises ValueError otherwise."""
        if side == BID:
            return &self._bids
        if side == ASK:
            return &self._asks
        raise ValueError(f"side must be +1 (bid) or -1 (ask), got {side}")

    cdef void _apply_levels(self, DepthDiff d) noexcept:
        """Set every level of ``d`` (capacity already reserved)."""
        _apply_side(&self._bids, d.bid_px, d.bid_qty, d.n_bids)
        _apply_side(&self._asks, d.ask_px, d.ask_qty, d.n_asks)

    cdef void _to_awaiting(self) noexcept:
        """Sequence gap: count it, drop all levels, wait for a new snapshot."""
        self.gaps += 1
        self.state = AWAITING_SNAPSHOT
        self._await_first = False
        self._bids.n = 0
        self._bids.live = 0
        self._asks.n = 0
        self._asks.live = 0

    cdef int _buffer(self, DepthDiff d) except -1:
        """Append ``d`` to the pending buffer, dropping (and counting) the oldest when full."""
        if len(self._pending) >= self.max_pending:
            self._pending.popleft()
            self.buffer_dropped += 1
        self._pending.append(d)
        return 0

    cdef int _process(self, DepthDiff d) except -1:
        """Apply the sequence rule to ``d`` in state SYNCED; apply it if it passes.

        Returns APPLIED, STALE or GAP (after a gap the book is cleared and AWAITING_SNAPSHOT). Raises
        MemoryError (book unchanged) if the level arrays cannot grow.
        """
        cdef int64_t U = d.first_update_id
        cdef int64_t u = d.final_update_id
        cdef int64_t last = self.last_update_id
        cdef bint ok
        if self._await_first:
            if self.sync_rule == SYNC_SPOT:
                if u <= last:                   # spot: drop u <= lastUpdateId
                    self.stale += 1
                    return STALE
                ok = U <= last + 1              # spot: U <= lastUpdateId+1 <= u
            else:
                if u < last:                    # USDⓈ-M: drop u < lastUpdateId
                    self.stale += 1
                    return STALE
                ok = U <= last                  # USDⓈ-M: U <= lastUpdateId <= u
        else:
            if u <= last:                       # duplicate / late: already reflected
                self.stale += 1
                return STALE
            if self.sync_rule == SYNC_SPOT:
                ok = U == last + 1              # spot: U == previous u + 1
            else:
                ok = d.prev_final_update_id == last   # USDⓈ-M: pu == previous u
        if not ok:
            self._to_awaiting()
            return GAP
        self._reserve(&self._bids, d.n_bids)
        self._reserve(&self._asks, d.n_asks)
        self._apply_levels(d)
        self._await_first = False
        self.last_update_id = u
        self.ts_local_ns = d.ts_local_ns
        self.applied += 1
        if self.is_crossed():
            self.crossed += 1
        return APPLIED

    # ------------------------------------------------------------------ updates
    cpdef int load_snapshot(self, DepthSnapshot s) except -1:
        """Replace the book with a REST depth snapshot, then replay the buffered diffs.

        Parameters
        ----------
        s : DepthSnapshot
            Levels in price ticks / quantity lots, ``last_update_id`` = Binance ``lastUpdateId``. Levels may
            come in any order; a repeated price takes the last quantity, quantity 0 is no level.

        Returns
        -------
        int
            The state afterwards: SYNCED, or AWAITING_SNAPSHOT if a buffered diff revealed a gap (the snapshot
            is older than the buffered stream; fetch a newer one).

        Raises
        ------
        TypeError
            ``s`` is None.
        ValueError
            A price <= 0 or quantity < 0 (the book is unchanged).
        MemoryError
            The level arrays cannot grow (the book is unchanged).

        Notes
        -----
        Replay follows Binance's procedure (URLs in the module docstring): stale diffs are dropped, the first
        applied one must straddle ``lastUpdateId``, later ones must chain.
        """
        cdef DepthDiff d
        cdef int r
        if s is None:
            raise TypeError("load_snapshot() needs a DepthSnapshot, got None")
        _check_levels(s.bid_px, s.bid_qty, s.n_bids, "snapshot bid")
        _check_levels(s.ask_px, s.ask_qty, s.n_asks, "snapshot ask")
        self._grow(&self._bids, s.n_bids + s.n_bids // 2)
        self._grow(&self._asks, s.n_asks + s.n_asks // 2)
        _load_side(&self._bids, s.bid_px, s.bid_qty, s.n_bids)
        _load_side(&self._asks, s.ask_px, s.ask_qty, s.n_asks)
        self.state = SYNCED
        self._await_first = True
        self.last_update_id = s.last_update_id
        self.ts_local_ns = s.ts_local_ns
        pending = self._pending
        while pending:
            d = <DepthDiff>pending[0]
            r = self._process(d)
            if r == GAP:
                break           # d stays at the head of the buffer for the next snapshot
            pending.popleft()
        return self.state

    cpdef int apply_diff(self, DepthDiff d) except -1:
        """Process one depth diff event.

        Parameters
        ----------
        d : DepthDiff
            ``U``/``u``/``pu`` update ids and absolute levels (price ticks, quantity lots; 0 removes).

        Returns
        -------
        int
            APPLIED, BUFFERED (no valid book yet: kept for the next snapshot), STALE (dropped, already
            covered) or GAP (not applied; book cleared; state AWAITING_SNAPSHOT; ``d`` is kept for the resync).

        Raises
        ------
        TypeError
            ``d`` is None.
        ValueError
            ``u < U``, a price <= 0 or a quantity < 0 (nothing changes).
        MemoryError
            The level arrays cannot grow (nothing changes).

        Notes
        -----
        Rules and their sources (Binance doc URLs) are in the module docstring.
        """
        cdef int r
        if d is None:
            raise TypeError("apply_diff() needs a DepthDiff, got None")
        if d.final_update_id < d.first_update_id:
            raise ValueError(f"depth diff with u={d.final_update_id} < U={d.first_update_id}")
        _check_levels(d.bid_px, d.bid_qty, d.n_bids, "diff bid")
        _check_levels(d.ask_px, d.ask_qty, d.n_asks, "diff ask")
        if self.state == AWAITING_SNAPSHOT:
            self._buffer(d)
            self.buffered += 1
            return BUFFERED
        r = self._process(d)
        if r == GAP:
            self._buffer(d)
        return r

    # ------------------------------------------------------------------ queries
    cpdef int64_t best_bid_px(self) noexcept:
        """Best bid price (ticks); 0 if there are no bids."""
        return self._bids.lv[self._bids.n - 1].px if self._bids.n else 0

    cpdef int64_t best_bid_qty(self) noexcept:
        """Quantity at the best bid (lots); 0 if there are no bids."""
        return self._bids.lv[self._bids.n - 1].qty if self._bids.n else 0

    cpdef int64_t best_ask_px(self) noexcept:
        """Best ask price (ticks); 0 if there are no asks."""
        return self._asks.lv[self._asks.n - 1].px if self._asks.n else 0

    cpdef int64_t best_ask_qty(self) noexcept:
        """Quantity at the best ask (lots); 0 if there are no asks."""
        return self._asks.lv[self._asks.n - 1].qty if self._asks.n else 0

    cpdef int64_t mid_x2(self) noexcept:
        """Best bid + best ask (ticks): the mid price is exactly ``mid_x2 / 2``. 0 if either side is empty."""
        if self._bids.n == 0 or self._asks.n == 0:
            return 0
        return self._bids.lv[self._bids.n - 1].px + self._asks.lv[self._asks.n - 1].px

    cpdef int64_t spread(self) noexcept:
        """Best ask - best bid (ticks; <= 0 when crossed/locked). 0 if either side is empty."""
        if self._bids.n == 0 or self._asks.n == 0:
            return 0
        return self._asks.lv[self._asks.n - 1].px - self._bids.lv[self._bids.n - 1].px

    cpdef double microprice(self) noexcept:
        """Size-weighted mid (ticks): ``(bid * ask_qty + ask * bid_qty) / (bid_qty + ask_qty)``.

        Computed as ``bid + (ask - bid) * bid_qty / (bid_qty + ask_qty)`` so the integer product stays small.
        0.0 if either side is empty.
        """
        cdef int64_t b, bq, a, aq
        if self._bids.n == 0 or self._asks.n == 0:
            return 0.0
        b = self._bids.lv[self._bids.n - 1].px
        bq = self._bids.lv[self._bids.n - 1].qty
        a = self._asks.lv[self._asks.n - 1].px
        aq = self._asks.lv[self._asks.n - 1].qty
        return <double>b + <double>((a - b) * bq) / <double>(aq + bq)

    cpdef bint is_crossed(self) noexcept:
        """True if both sides are non-empty and best bid >= best ask."""
        return (self._bids.n != 0 and self._asks.n != 0
                and self._bids.lv[self._bids.n - 1].px >= self._asks.lv[self._asks.n - 1].px)

    cpdef int64_t qty_at(self, int side, int64_t price) except -1:
        """Quantity (lots) at ``price`` (ticks) on ``side`` (+1 bid, -1 ask); 0 if no such level.

        Raises
        ------
        ValueError
            ``side`` is not +1 or -1.
        """
        cdef Side* s = self._side(side)
        cdef Py_ssize_t i = _find(s, price)
        if i < s.n and s.lv[i].px == price:
            return s.lv[i].qty
        return 0

    cpdef int64_t depth_qty(self, int side, Py_ssize_t n_levels) except -1:
        """Cumulative quantity (lots) of the best ``n_levels`` levels of ``side`` (+1 bid, -1 ask).

        Fewer levels than asked: the whole side. Raises ValueError for a bad side or ``n_levels < 0``.
        """
        cdef Side* s = self._side(side)
        cdef Py_ssize_t i = s.n - 1, k = 0
        cdef int64_t total = 0
        if n_levels < 0:
            raise ValueError(f"n_levels must be >= 0, got {n_levels}")
        while i >= 0 and k < n_levels:          # best first, skipping holes
            if s.lv[i].qty != 0:
                total += s.lv[i].qty
                k += 1
            i -= 1
        return total

    cpdef Py_ssize_t n_levels(self, int side) except -1:
        """Number of levels on ``side`` (+1 bid, -1 ask). Raises ValueError for a bad side."""
        return self._side(side).live

    def levels(self, int side, n=None):
        """Levels of ``side`` (+1 bid, -1 ask) best-first as ``[(price_ticks, qty_lots), ...]``.

        At most ``n`` levels (all when None). Allocates: for tools and tests, not the hot path.
        Raises ValueError for a bad side or ``n < 0``.
        """
        cdef Side* s = self._side(side)
        cdef Py_ssize_t k = s.live if n is None else n
        cdef Py_ssize_t i = s.n - 1
        if k < 0:
            raise ValueError(f"n must be >= 0, got {k}")
        out = []
        while i >= 0 and len(out) < k:
            if s.lv[i].qty != 0:
                out.append((s.lv[i].px, s.lv[i].qty))
            i -= 1
        return out

    @property
    def synced(self):
        """True when the book is valid (state SYNCED)."""
        return self.state == SYNCED

    @property
    def pending(self):
        """Number of diffs currently buffered for the next snapshot."""
        return len(self._pending)
