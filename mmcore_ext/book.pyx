# cython: language_level=3, boundscheck=False, wraparound=False
# Bounds/wraparound checks are off: every sorted-store index below is derived from its slot count ``n`` and
# stays within the allocation: reads in [0, n), writes up to ``n + extra`` where ``_reserve`` made room for
# ``extra`` more slots above (an insert writes ``lv[n]``; a re-centre's spill writes ``near.live`` slots past
# ``n``), and ``lv - 1`` only when the front room ``off`` > 0; every window index is a slot k in [0, width)
# (checked by one unsigned compare against ``span``) or a word k >> 6 of such a slot; the only Python indexing
# is ``self._pending[0]`` on a non-empty deque.
# Integer bounds: see "Bounds" in the docstring below; every int64 sum and offset here relies on them.
"""L2 order book for one instrument: integer ticks/lots, Binance snapshot + diff synchronisation.

Layout
------
Prices are handled as keys ``key = sign * price`` (``+price`` for bids, ``-price`` for asks), so on both
sides a larger key is a better level. Each side keeps its levels in two stores, every level in exactly one:

- the **window** (``Ladder``): ``window_ticks`` consecutive keys ``[base, base + width)`` near the top of the
  side, one int64 quantity slot per tick plus an occupancy bitmap. Setting a level there is an index, a store
  and a bit flip; when the window's best level is deleted the next one is found with a count-leading-zeros
  scan of the bitmap. This is the layout hftbacktest calls a "ROI vector" market depth, except that nothing
  outside the region is dropped: it goes to
- the **sorted store** (``SortedLevels``): one contiguous C array of ``Level {key, qty}`` sorted by ascending
  key (best at the end), searched by a branch-free binary search. Deletion below its top leaves a *hole*
  (qty 0) that a later insert nearby reuses (within ``HOLE_REACH`` slots) or that compaction removes (when
  holes outnumber live levels by more than ``HOLE_SLACK``); free room kept *below* the deepest level lets an
  insert deep in the book shift the few levels below it rather than every level above it.

After each applied diff (and snapshot) a side whose best level has left the upper part of its window
(``[base + width/2, base + 7 width/8)``) re-centres it, best at ``base + 3 width/4``: the window's levels are
merged back into the sorted store and those of the new range taken out (O(levels), counted in
``recenters``). Why: on the real USDⓈ-M recording the sides grow to ~5000 levels spanning far more ticks than
any window could cover (bids down to a few hundred USDT), but depth@0ms diffs carry ~70 levels each and about
85 % of them fall within 2000 ticks of the best level; those now cost a few ns each, and only the rest pay
for the binary search and memmove of the sorted store. Capacity is reserved *before* a diff is applied
(including the room a re-centre needs), so an applied diff never fails half-way; no Python object is created
per level on the apply path.

Synchronisation (Binance "How to manage a local order book correctly")
---------------------------------------------------------------------
- spot: https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams#how-to-manage-a-local-order-book-correctly
  drop an event with ``u <= lastUpdateId``; the first applied event must satisfy ``U <= lastUpdateId+1 <= u``;
  after that each event must have ``U == previous u + 1``.
- USDⓈ-M: https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams/How-to-manage-a-local-order-book-correctly
  drop an event with ``u < lastUpdateId``; the first applied event must satisfy ``U <= lastUpdateId <= u``;
  after that each event must have ``pu == previous u``.
- MEXC spot (``SYNC_MEXC``): https://www.mexc.com/api-docs/spot-v3/websocket-market-streams/how-to-properly-maintain-a-local-copy-of-the-order-book
  the ``spot@public.aggre.depth.v3.api.pb`` diffs carry ``fromVersion`` / ``toVersion`` (mapped onto DepthDiff's
  ``first_update_id`` / ``final_update_id`` by :mod:`mmcore_ext.mexc_codec`) and the REST snapshot
  ``GET /api/v3/depth`` its ``lastUpdateId``: drop a diff with ``toVersion <= lastUpdateId`` (step 5); the first
  applied diff must have ``fromVersion <= lastUpdateId + 1`` (step 6; a snapshot older than the first buffered
  diff, step 4, fails it and is a GAP: fetch another); after that each diff must have ``fromVersion ==
  previous toVersion + 1`` (step 7), otherwise resync. Step 4 read literally (``lastUpdateId < fromVersion`` of
  the first cached diff) would also refetch when ``lastUpdateId + 1 == fromVersion``; that diff continues the
  snapshot exactly (step 6 accepts it), so it is applied. The rule is thus the spot one with MEXC's field names.
- All: quantities are absolute; quantity 0 removes the level; removing a level that is not in the book is
  normal (a no-op).

Diffs received before a snapshot are buffered and replayed through the same rules when the snapshot is
loaded. A sequence gap is never applied: the book clears its levels, goes to ``AWAITING_SNAPSHOT`` and buffers
until the next snapshot. The diff that revealed the gap is kept at the head of the buffer, because it may
straddle the next snapshot's ``lastUpdateId`` (dropping it could force a second resync).

Three choices go beyond the documents' wording, for events that a correct stream does not produce: once
synchronised, an event with ``u <=`` the book's update id (a duplicate or late delivery; every update in it is
already reflected) is dropped as STALE rather than treated as a gap; on spot an event that overlaps the
book (``U <= last u < u`` but ``U != last u + 1``) is a GAP, following the strict ``U == previous u + 1`` rule;
and a snapshot that arrives while the book is SYNCED with a ``lastUpdateId <=`` the book's update id (a
duplicated or late snapshot) is ignored and counted in ``stale_snapshots``: loading it would rewind the book
behind the stream, and the next diff would then be a gap.

Bounds (checked at ``load_snapshot`` / ``apply_diff``, ValueError with nothing changed otherwise)
--------------------------------------------------------------------------------------------------
- prices in ``[1, MAX_PRICE_TICKS]`` (2**53) and quantities in ``[0, MAX_QTY_LOTS]`` (2**53) (the decoder
  already refuses anything outside the instrument's own, tighter bounds). Keys are thus within +-2**53, a
  window base within ``key - 3 width / 4`` with ``width <= 2**22``, so ``base + width``, ``base + k``,
  ``key - base`` and the re-centre bounds cannot overflow; ``mid_x2`` (a sum of two prices, < 2**54) and
  ``spread`` cannot either; ``microprice`` forms its numerator ``bid * ask_qty + ask * bid_qty`` (< 2**107) in
  128-bit integers; ``depth_qty`` saturates at 2**63 - 1;
- update ids ``U``, ``u``, ``pu`` and ``lastUpdateId`` within ``+-MAX_UPDATE_ID`` (2**62), and ``U <= u``, so
  ``lastUpdateId + 1`` cannot overflow;
- slot counts: the sorted store's capacity is checked against ``PY_SSIZE_T_MAX / sizeof(Level)`` before
  each (re)allocation (MemoryError), so no byte count can wrap.
"""
from collections import deque

from cpython.mem cimport PyMem_Calloc, PyMem_Free, PyMem_Realloc
from libc.stdint cimport INT64_MAX, int64_t, uint64_t
from libc.string cimport memmove

from mmcore_ext.bounds cimport MAX_PRICE_TICKS as _MAX_PX, MAX_QTY_LOTS as _MAX_QTY, MAX_UPDATE_ID as _MAX_ID
from mmcore_ext.bounds cimport int128, sat_add
from mmcore_ext.events cimport DepthDiff, DepthSnapshot

cdef extern from "Python.h":
    const Py_ssize_t PY_SSIZE_T_MAX


cdef extern from *:
    int __builtin_clzll(unsigned long long) nogil
    int __builtin_ctzll(unsigned long long) nogil


#: Default bound of the pre-snapshot buffer (diffs); the oldest are dropped (and counted) beyond it.
DEFAULT_MAX_PENDING = 100_000
#: Default width (ticks) of each side's window: 32768 ticks = 3276.8 USDT on USDⓈ-M BTCUSDT (tick 0.1), 327.68
#: USDT on spot (tick 0.01); 256 KiB of quantities per side, of which only the slots in use are touched.
#: On the bundled recordings 8192 / 32768 / 65536 ticks gave 950 / 700 / 680 ns per USDⓈ-M event and
#: 1050 / 620 / 560 ns per spot event (benchmarks/bench_book.py workload).
DEFAULT_WINDOW_TICKS = 32768
#: Largest window accepted (ticks).
MAX_WINDOW_TICKS = 1 << 22
#: Largest price (ticks) and quantity (lots) a level may have: 2**53 (``mmcore.instruments.MAX_UNITS``).
MAX_PRICE_TICKS = _MAX_PX
MAX_QTY_LOTS = _MAX_QTY
#: Largest ``|update id|`` accepted: 2**62.
MAX_UPDATE_ID = _MAX_ID

_MARKET_RULES = {"binance_spot": SYNC_SPOT, "binance_usdm": SYNC_USDM, "mexc_spot": SYNC_MEXC}

cdef enum:
    # The sorted store is compacted when its holes outnumber its live levels by more than this.
    HOLE_SLACK = 8
    # How far (slots) an insert looks for a hole above its position (and, alongside, below it) before
    # shifting a whole part of the array.
    HOLE_REACH = 8


def sync_rule_for_market(str market):
    """Sequence rule of a market name.

    Parameters
    ----------
    market : str
        ``"binance_spot"`` or ``"binance_usdm"`` (the names of :data:`mmcore.instruments.MARKETS`), or
        ``"mexc_spot"`` (market data only so far: :mod:`mmcore_ext.mexc_codec`).

    Returns
    -------
    int
        ``SYNC_SPOT``, ``SYNC_USDM`` or ``SYNC_MEXC``.

    Raises
    ------
    ValueError
        Unknown market.
    """
    try:
        return _MARKET_RULES[market]
    except KeyError:
        raise ValueError(f"no book sync rule for market {market!r}; known: {sorted(_MARKET_RULES)}") from None


# ---------------------------------------------------------------------------------------------- sorted store

cdef inline Py_ssize_t _find(const SortedLevels* s, int64_t key) noexcept nogil:
    """Lower bound of ``key``: the first index ``i`` in ``[0, n]`` with ``lv[i].key >= key``.

    Branch-free binary search (the comparison compiles to a conditional move).
    """
    cdef const Level* lv = s.lv
    cdef Py_ssize_t n = s.n, base = 0, half
    if n == 0:
        return 0
    while n > 1:
        half = n >> 1
        if lv[base + half].key < key:
            base += half
        n -= half
    return base + (lv[base].key < key)


cdef void _compact(SortedLevels* s) noexcept nogil:
    """Squeeze the holes out of the sorted store (order kept)."""
    cdef Py_ssize_t i, j = 0
    for i in range(s.n):
        if s.lv[i].qty != 0:
            if i != j:
                s.lv[j] = s.lv[i]
            j += 1
    s.n = j


cdef inline void _put(Level* slot, int64_t key, int64_t qty) noexcept nogil:
    slot.key = key
    slot.qty = qty


cdef void _sorted_set(SortedLevels* s, int64_t key, int64_t qty) noexcept nogil:
    """Set the quantity at ``key`` (lots; 0 removes) in the sorted store.

    The caller has reserved room for one more slot above the levels. Deleting a level below the top leaves a
    hole (no memmove); holes are trimmed off the top so ``lv[n-1]`` stays the best live level, and compacted
    away when they outnumber the live levels by more than HOLE_SLACK. A new level reuses an adjacent hole, else
    a hole within HOLE_REACH (shifting the levels in between), else shifts whichever part of the array is
    shorter: the levels below it down into the front room, or the levels above it up.
    """
    cdef Level* lv = s.lv
    cdef Py_ssize_t n = s.n
    cdef Py_ssize_t i = _find(s, key)
    cdef Py_ssize_t up, dn, holes, lim
    if i < n and lv[i].key == key:                    # present (live or hole)
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
        _put(&lv[n], key, qty)
        s.n = n + 1
        return
    if i > 0 and lv[i - 1].qty == 0:                  # hole just below: lv[i-2] < hole < key < lv[i]
        _put(&lv[i - 1], key, qty)
        return
    if lv[i].qty == 0:                                # hole just above: lv[i-1] < key < hole < lv[i+1]
        _put(&lv[i], key, qty)
        return
    if holes > 0:                                     # a hole within HOLE_REACH: shift the levels between
        up = i + 1
        dn = i - 2
        lim = i + HOLE_REACH if i + HOLE_REACH < n else n
        while up < lim:
            if lv[up].qty == 0:
                memmove(&lv[i + 1], &lv[i], <size_t>(up - i) * sizeof(Level))
                _put(&lv[i], key, qty)
                return
            up += 1
            if dn >= 0:
                if lv[dn].qty == 0:
                    memmove(&lv[dn], &lv[dn + 1], <size_t>(i - 1 - dn) * sizeof(Level))
                    _put(&lv[i - 1], key, qty)
                    return
                dn -= 1
    if i < n - i and s.off > 0:                       # fewer levels below: shift them down into the front room
        memmove(lv - 1, lv, <size_t>i * sizeof(Level))
        s.lv = lv - 1
        s.off -= 1
        _put(&s.lv[i], key, qty)
    else:                                             # shift the levels above up (room reserved by the caller)
        memmove(&lv[i + 1], &lv[i], <size_t>(n - i) * sizeof(Level))
        _put(&lv[i], key, qty)
    s.n = n + 1


# ---------------------------------------------------------------------------------------------- window

cdef inline Py_ssize_t _prev_set(const Ladder* w, Py_ssize_t k) noexcept nogil:
    """Highest occupied slot ``<= k`` of the window (``k`` in ``[-1, width)``), or -1 if none."""
    cdef Py_ssize_t i
    cdef uint64_t word
    if k < 0:
        return -1
    i = k >> 6
    word = w.bits[i] & ((<uint64_t>2 << (k & 63)) - 1)   # bits 0..k%64 (the shift wraps to 0 for bit 63)
    while word == 0:
        i -= 1
        if i < 0:
            return -1
        word = w.bits[i]
    return (i << 6) + 63 - __builtin_clzll(word)


cdef inline void _window_set(Ladder* w, Py_ssize_t k, int64_t qty) noexcept nogil:
    """Set slot ``k`` (in ``[0, width)``) to ``qty`` lots (0 removes)."""
    cdef uint64_t bit = <uint64_t>1 << (k & 63)
    if qty != 0:
        if w.qty[k] == 0:
            w.live += 1
            w.bits[k >> 6] |= bit
            if k > w.top:
                w.top = k
        w.qty[k] = qty
    elif w.qty[k] != 0:
        w.qty[k] = 0
        w.live -= 1
        w.bits[k >> 6] &= ~bit
        if k == w.top:
            w.top = _prev_set(w, k - 1)


cdef void _window_clear(Ladder* w) noexcept nogil:
    """Empty the window and unplace it (touches only occupied slots)."""
    cdef Py_ssize_t i
    cdef uint64_t word
    for i in range(w.width >> 6):
        word = w.bits[i]
        while word:
            w.qty[(i << 6) + __builtin_ctzll(word)] = 0
            word &= word - 1
        w.bits[i] = 0
    w.live = 0
    w.top = -1
    w.span = 0


# ---------------------------------------------------------------------------------------------- one side

cdef inline bint _best(const Side* s, int64_t* key, int64_t* qty) noexcept nogil:
    """Best level of side ``s`` (the larger key of the window's top and the sorted store's top).

    Writes its key and quantity (lots) and returns True; returns False if the side is empty.
    """
    cdef const Ladder* w = &s.near
    cdef const SortedLevels* f = &s.far
    if w.top >= 0 and (f.n == 0 or w.base + w.top > f.lv[f.n - 1].key):
        key[0] = w.base + w.top
        qty[0] = w.qty[w.top]
        return True
    if f.n != 0:
        key[0] = f.lv[f.n - 1].key
        qty[0] = f.lv[f.n - 1].qty
        return True
    return False


cdef inline bint _crossed(const Side* bids, const Side* asks) noexcept nogil:
    """True if both sides have a best level and best bid >= best ask (ask keys are -price)."""
    cdef int64_t b, bq, a, aq
    return _best(bids, &b, &bq) and _best(asks, &a, &aq) and b >= -a


cdef void _side_clear(Side* s) noexcept nogil:
    """Drop every level of side ``s`` (allocations kept, window unplaced)."""
    s.far.n = 0
    s.far.live = 0
    _window_clear(&s.near)


cdef inline void _side_set(Side* s, int64_t key, int64_t qty) noexcept nogil:
    """Set the level at ``key`` to ``qty`` lots (0 removes) in whichever store holds ``key``."""
    cdef uint64_t k = <uint64_t>key - <uint64_t>s.near.base     # unsigned: keys below base wrap to huge
    if k < <uint64_t>s.near.span:
        _window_set(&s.near, <Py_ssize_t>k, qty)
    else:
        _sorted_set(&s.far, key, qty)


cdef void _apply_side(Side* s, const int64_t* px, const int64_t* qty, Py_ssize_t m) noexcept nogil:
    """Set ``m`` levels (prices in ticks) on side ``s`` in order (room for ``m`` more sorted slots reserved)."""
    cdef Py_ssize_t k
    cdef int64_t sign = s.sign
    for k in range(m):
        _side_set(s, sign * px[k], qty[k])


cdef void _recenter(Side* s, int64_t base) noexcept nogil:
    """Move side ``s``'s window to keys ``[base, base + width)``.

    The window's levels are merged into the sorted store (they form one contiguous key range that the store
    does not hold, so they go in at a single position with one memmove), then the store's levels in the new
    range are taken out into the window (one memmove closes the range). The caller has reserved room for
    ``near.live`` more sorted slots.
    """
    cdef Ladder* w = &s.near
    cdef SortedLevels* f = &s.far
    cdef Py_ssize_t i, j, lo, hi, k, pulled = 0
    cdef uint64_t word
    cdef int64_t width = w.width
    if w.live:                                        # 1. window -> sorted store
        j = _find(f, w.base)
        memmove(&f.lv[j + w.live], &f.lv[j], <size_t>(f.n - j) * sizeof(Level))
        f.n += w.live
        f.live += w.live
        for i in range(width >> 6):
            word = w.bits[i]
            while word:
                k = (i << 6) + __builtin_ctzll(word)
                word &= word - 1
                f.lv[j].key = w.base + k
                f.lv[j].qty = w.qty[k]
                w.qty[k] = 0
                j += 1
            w.bits[i] = 0
        w.live = 0
    w.top = -1
    w.base = base
    w.span = width
    lo = _find(f, base)                               # 2. sorted store's [base, base + width) -> window
    hi = _find(f, base + width)
    for i in range(lo, hi):
        if f.lv[i].qty != 0:
            k = f.lv[i].key - base
            w.qty[k] = f.lv[i].qty
            w.bits[k >> 6] |= <uint64_t>1 << (k & 63)
            w.top = k                                 # ascending: the last one is the top
            pulled += 1
    w.live = pulled
    memmove(&f.lv[lo], &f.lv[hi], <size_t>(f.n - hi) * sizeof(Level))
    f.n -= hi - lo
    f.live -= pulled
    while f.n > 0 and f.lv[f.n - 1].qty == 0:         # the store's top slot stays live
        f.n -= 1
    if f.n - f.live > f.live + HOLE_SLACK:
        _compact(f)


cdef bint _place(Side* s) noexcept nogil:
    """Re-centre side ``s``'s window if its best level left ``[base + width/2, base + 7 width/8)``.

    The new window puts the best level at ``base + 3 width/4``: most updates land at or below the best, some
    above it as the market moves. Returns True if it re-centred. The caller has reserved room for
    ``near.live`` more sorted slots.
    """
    cdef int64_t key, qty
    cdef int64_t width = s.near.width
    if not _best(s, &key, &qty):
        return False
    if s.near.span != 0 and s.near.base + width // 2 <= key < s.near.base + width - width // 8:
        return False
    _recenter(s, key - (3 * width) // 4)
    return True


cdef void _load_side(Side* s, const int64_t* px, const int64_t* qty, Py_ssize_t n) noexcept nogil:
    """Replace a side's levels with ``n`` snapshot levels (the caller made the sorted store's ``cap >= n``).

    The window is emptied and unplaced; every level goes to the sorted store (the caller then places the
    window with ``_place``). A quarter of the free room goes below the levels, the rest above.

    Fast path: Binance sends levels best-first, so read backwards their keys ascend; they are copied if
    strictly ordered with positive quantities. Otherwise (unordered, duplicate prices, zero quantities) each
    level is set in input order, with the same meaning as a diff: the last one wins, 0 removes.
    """
    cdef SortedLevels* f = &s.far
    cdef Py_ssize_t i, j
    cdef int64_t key, prev = 0
    _side_clear(s)
    if f.buf == NULL:                   # nothing allocated: an empty side (n == 0)
        return
    f.off = (f.cap - n) // 4
    f.lv = f.buf + f.off
    for j in range(n):
        i = n - 1 - j
        key = s.sign * px[i]
        if qty[i] <= 0 or (j > 0 and key <= prev):
            break
        f.lv[j].key = key
        f.lv[j].qty = qty[i]
        prev = key
    else:
        f.n = n
        f.live = n
        return
    f.n = 0
    _apply_side(s, px, qty, n)


cdef inline bint _walk_next(const Side* s, Py_ssize_t* fi, Py_ssize_t* wi, int64_t* key, int64_t* qty) noexcept nogil:
    """Next level of side ``s`` best-first, merging the two stores; cursors start at ``far.n - 1`` and
    ``near.top``. Writes key and quantity and returns True, or returns False when the side is exhausted."""
    cdef const SortedLevels* f = &s.far
    cdef const Ladder* w = &s.near
    while fi[0] >= 0 and f.lv[fi[0]].qty == 0:
        fi[0] -= 1
    wi[0] = _prev_set(w, wi[0])
    if fi[0] < 0 and wi[0] < 0:
        return False
    if wi[0] < 0 or (fi[0] >= 0 and f.lv[fi[0]].key > w.base + wi[0]):
        key[0] = f.lv[fi[0]].key
        qty[0] = f.lv[fi[0]].qty
        fi[0] -= 1
    else:
        key[0] = w.base + wi[0]
        qty[0] = w.qty[wi[0]]
        wi[0] -= 1
    return True


cdef inline bint _bad_level(int64_t px, int64_t qty) noexcept nogil:
    # price outside [1, MAX_PRICE_TICKS] or quantity outside [0, MAX_QTY_LOTS]; unsigned, so negatives wrap to huge
    return (<uint64_t>px - 1 >= <uint64_t>_MAX_PX) | (<uint64_t>qty > <uint64_t>_MAX_QTY)


cdef int _check_levels(const int64_t* px, const int64_t* qty, Py_ssize_t n, str what) except -1:
    """Raise ValueError unless every price is in [1, MAX_PRICE_TICKS] ticks and every quantity in
    [0, MAX_QTY_LOTS] lots."""
    cdef Py_ssize_t i
    cdef int bad = 0
    for i in range(n):                  # branch-free pass (vectorisable); locate the culprit only on failure
        bad |= _bad_level(px[i], qty[i])
    if bad:
        for i in range(n):
            if _bad_level(px[i], qty[i]):
                raise ValueError(f"{what} level ({px[i]}, {qty[i]}): price must be in [1, {_MAX_PX}] ticks and "
                                 f"quantity in [0, {_MAX_QTY}] lots")
    return 0


cdef int _check_id(int64_t v, str name) except -1:
    if v < -_MAX_ID or v > _MAX_ID:
        raise ValueError(f"{name} = {v}: update ids must be within +-{_MAX_ID}")
    return 0


cdef void _side_init(Side* s, int64_t sign) noexcept:
    s.near.qty = NULL
    s.near.bits = NULL
    s.near.base = s.near.span = 0
    s.near.width = s.near.live = 0
    s.near.top = -1
    s.far.buf = s.far.lv = NULL
    s.far.off = s.far.n = s.far.live = s.far.cap = 0
    s.sign = sign


cdef void _side_free(Side* s) noexcept:
    PyMem_Free(s.near.qty)
    PyMem_Free(s.near.bits)
    PyMem_Free(s.far.buf)
    _side_init(s, s.sign)


cdef int _side_alloc_window(Side* s, Py_ssize_t width) except -1:
    """Allocate side ``s``'s (empty, unplaced) window of ``width`` slots. Raises MemoryError."""
    s.near.qty = <int64_t*>PyMem_Calloc(<size_t>width, sizeof(int64_t))
    s.near.bits = <uint64_t*>PyMem_Calloc(<size_t>(width >> 6), sizeof(uint64_t))
    if s.near.qty == NULL or s.near.bits == NULL:
        raise MemoryError()
    s.near.width = width
    return 0


cdef class L2Book:
    """Level-2 order book kept from a depth snapshot plus diff events.

    Prices are int64 ticks, quantities int64 lots, times int64 ns since the epoch.

    Parameters
    ----------
    sync_rule : int
        ``SYNC_SPOT``, ``SYNC_USDM`` or ``SYNC_MEXC`` (see :func:`sync_rule_for_market`).
    max_pending : int, optional
        Bound of the buffer of diffs received while no valid book exists (default 100 000); when full the
        oldest diff is dropped and counted in ``buffer_dropped``.
    window_ticks : int, optional
        Width (ticks) of each side's tick-indexed window near the top of book (default 32768; a multiple of 64
        in ``[64, 2**22]``). Only speed depends on it: every query and update gives the same result whatever
        the width (see the module docstring).

    Raises
    ------
    ValueError
        Unknown ``sync_rule``, ``max_pending < 1`` or a bad ``window_ticks``.
    MemoryError
        The windows cannot be allocated.
    """

    def __cinit__(self):
        _side_init(&self._bids, 1)
        _side_init(&self._asks, -1)

    def __init__(self, int sync_rule, Py_ssize_t max_pending=DEFAULT_MAX_PENDING,
                 Py_ssize_t window_ticks=DEFAULT_WINDOW_TICKS):
        if sync_rule != SYNC_SPOT and sync_rule != SYNC_USDM and sync_rule != SYNC_MEXC:
            raise ValueError(f"sync_rule must be SYNC_SPOT ({SYNC_SPOT}), SYNC_USDM ({SYNC_USDM}) or SYNC_MEXC "
                             f"({SYNC_MEXC}), got {sync_rule}")
        if max_pending < 1:
            raise ValueError(f"max_pending must be >= 1, got {max_pending}")
        if window_ticks < 64 or window_ticks > MAX_WINDOW_TICKS or window_ticks % 64 != 0:
            raise ValueError(f"window_ticks must be a multiple of 64 in [64, {MAX_WINDOW_TICKS}], got {window_ticks}")
        _side_free(&self._bids)
        _side_free(&self._asks)
        _side_alloc_window(&self._bids, window_ticks)
        _side_alloc_window(&self._asks, window_ticks)
        self.window_ticks = window_ticks
        self.sync_rule = sync_rule
        self.max_pending = max_pending
        self._pending = deque()
        self._await_first = False
        self.state = AWAITING_SNAPSHOT
        self.last_update_id = -1
        self.ts_local_ns = 0

    def __dealloc__(self):
        _side_free(&self._bids)
        _side_free(&self._asks)

    def __repr__(self):
        return (f"L2Book(rule={'usdm' if self.sync_rule == SYNC_USDM else 'mexc' if self.sync_rule == SYNC_MEXC else 'spot'}, "
                f"state={'SYNCED' if self.state == SYNCED else 'AWAITING_SNAPSHOT'}, "
                f"last_update_id={self.last_update_id}, bids={self.n_levels(BID)}, asks={self.n_levels(ASK)}, "
                f"best={self.best_bid_px()}x{self.best_bid_qty()} / {self.best_ask_px()}x{self.best_ask_qty()})")

    # ------------------------------------------------------------------ internals
    cdef int _grow(self, SortedLevels* s, Py_ssize_t cap) except -1:
        """Make sorted store ``s``'s allocation at least ``cap`` slots (realloc, at least doubling; the levels
        keep their offset). Raises MemoryError (store unchanged)."""
        cdef Level* buf
        if cap <= s.cap:
            return 0
        if cap > PY_SSIZE_T_MAX // <Py_ssize_t>(2 * sizeof(Level)):
            raise MemoryError(f"sorted store of {cap} levels")    # the byte count would overflow
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

    cdef int _reserve(self, SortedLevels* s, Py_ssize_t extra) except -1:
        """Room for ``extra`` more slots above sorted store ``s``'s levels, and some below them.

        When the room above is short, or none is left below, the levels are re-centred (a quarter of the free
        room below), after growing the allocation so that at least a third of it is free: re-centring thus
        happens at most once per ``n/8`` deep inserts. Raises MemoryError (levels unchanged).
        """
        cdef Py_ssize_t need, off
        if extra < 0 or extra > PY_SSIZE_T_MAX // 4 - s.off - s.n:
            raise MemoryError(f"sorted store of {s.n} + {extra} levels")   # need + need // 2 would overflow
        need = s.n + extra
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
        """Set every level of ``d``, then re-centre the windows that need it (capacity already reserved)."""
        _apply_side(&self._bids, d.bid_px, d.bid_qty, d.n_bids)
        _apply_side(&self._asks, d.ask_px, d.ask_qty, d.n_asks)
        self.recenters += _place(&self._bids)
        self.recenters += _place(&self._asks)

    cdef void _to_awaiting(self) noexcept:
        """Sequence gap: count it, drop all levels, wait for a new snapshot."""
        self.gaps += 1
        self.state = AWAITING_SNAPSHOT
        self._await_first = False
        _side_clear(&self._bids)
        _side_clear(&self._asks)

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
            if self.sync_rule == SYNC_MEXC:
                if u <= last:                   # MEXC step 5: drop toVersion <= lastUpdateId
                    self.stale += 1
                    return STALE
                ok = U <= last + 1              # MEXC step 6: fromVersion <= lastUpdateId + 1
            elif self.sync_rule == SYNC_SPOT:
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
            if self.sync_rule == SYNC_MEXC:
                ok = U == last + 1              # MEXC step 7: fromVersion == previous toVersion + 1
            elif self.sync_rule == SYNC_SPOT:
                ok = U == last + 1              # spot: U == previous u + 1
            else:
                ok = d.prev_final_update_id == last   # USDⓈ-M: pu == previous u
        if not ok:
            self._to_awaiting()
            return GAP
        self._reserve(&self._bids.far, d.n_bids + self._bids.near.live)    # + a re-centre's spill
        self._reserve(&self._asks.far, d.n_asks + self._asks.near.live)
        self._apply_levels(d)
        self._await_first = False
        self.last_update_id = u
        self.ts_local_ns = d.ts_local_ns
        self.applied += 1
        if _crossed(&self._bids, &self._asks):
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
            is older than the buffered stream; fetch a newer one). A snapshot that arrives while SYNCED with
            ``lastUpdateId <= last_update_id`` is ignored (the book is unchanged, ``stale_snapshots`` += 1) and
            SYNCED is returned.

        Raises
        ------
        TypeError
            ``s`` is None.
        ValueError
            A price outside ``[1, MAX_PRICE_TICKS]``, a quantity outside ``[0, MAX_QTY_LOTS]`` or
            ``|lastUpdateId| > MAX_UPDATE_ID`` (the book is unchanged).
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
        _check_id(s.last_update_id, "snapshot lastUpdateId")
        _check_levels(s.bid_px, s.bid_qty, s.n_bids, "snapshot bid")
        _check_levels(s.ask_px, s.ask_qty, s.n_asks, "snapshot ask")
        if self.state == SYNCED and s.last_update_id <= self.last_update_id:
            self.stale_snapshots += 1       # duplicated / late: loading it would rewind the book
            return self.state
        self._grow(&self._bids.far, s.n_bids + s.n_bids // 2)
        self._grow(&self._asks.far, s.n_asks + s.n_asks // 2)
        _load_side(&self._bids, s.bid_px, s.bid_qty, s.n_bids)
        _load_side(&self._asks, s.ask_px, s.ask_qty, s.n_asks)
        self.recenters += _place(&self._bids)      # windows are empty: placing needs no spare room
        self.recenters += _place(&self._asks)
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

    cpdef void invalidate(self) noexcept:
        """Forget the book: drop every level and buffered diff, state AWAITING_SNAPSHOT (not counted as a gap).

        For a feed that went stale (disconnect, watchdog): the diffs that follow the reconnect are buffered and
        the book is valid again only after :meth:`load_snapshot` (Binance's snapshot + diff procedure, module
        docstring).
        """
        self.state = AWAITING_SNAPSHOT
        self._await_first = False
        _side_clear(&self._bids)
        _side_clear(&self._asks)
        self._pending.clear()

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
            ``u < U``, an update id outside ``+-MAX_UPDATE_ID``, a price outside ``[1, MAX_PRICE_TICKS]`` or a
            quantity outside ``[0, MAX_QTY_LOTS]`` (nothing changes).
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
        _check_id(d.first_update_id, "diff U")
        _check_id(d.final_update_id, "diff u")
        _check_id(d.prev_final_update_id, "diff pu")
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
        cdef int64_t key, qty
        return key if _best(&self._bids, &key, &qty) else 0

    cpdef int64_t best_bid_qty(self) noexcept:
        """Quantity at the best bid (lots); 0 if there are no bids."""
        cdef int64_t key, qty
        return qty if _best(&self._bids, &key, &qty) else 0

    cpdef int64_t best_ask_px(self) noexcept:
        """Best ask price (ticks); 0 if there are no asks."""
        cdef int64_t key, qty
        return -key if _best(&self._asks, &key, &qty) else 0

    cpdef int64_t best_ask_qty(self) noexcept:
        """Quantity at the best ask (lots); 0 if there are no asks."""
        cdef int64_t key, qty
        return qty if _best(&self._asks, &key, &qty) else 0

    cpdef int64_t mid_x2(self) noexcept:
        """Best bid + best ask (ticks): the mid price is exactly ``mid_x2 / 2``. 0 if either side is empty."""
        cdef int64_t b, bq, a, aq
        if not (_best(&self._bids, &b, &bq) and _best(&self._asks, &a, &aq)):
            return 0
        return b - a

    cpdef int64_t spread(self) noexcept:
        """Best ask - best bid (ticks; <= 0 when crossed/locked). 0 if either side is empty."""
        cdef int64_t b, bq, a, aq
        if not (_best(&self._bids, &b, &bq) and _best(&self._asks, &a, &aq)):
            return 0
        return -a - b

    cpdef double microprice(self) noexcept:
        """Size-weighted mid (ticks): ``(bid * ask_qty + ask * bid_qty) / (bid_qty + ask_qty)``.

        The numerator (< 2**107 with prices and quantities <= 2**53) is formed exactly in 128-bit integers and
        divided once in double, so the result is within a few ulps of the exact quotient even for a crossed
        book with prices far apart (``bid + (ask - bid) * w`` would cancel catastrophically there).
        0.0 if either side is empty.
        """
        cdef int64_t b, bq, a, aq
        cdef int128 num
        if not (_best(&self._bids, &b, &bq) and _best(&self._asks, &a, &aq)):
            return 0.0
        a = -a
        num = <int128>b * aq + <int128>a * bq
        return <double>num / <double>(aq + bq)

    cpdef bint is_crossed(self) noexcept:
        """True if both sides are non-empty and best bid >= best ask."""
        return _crossed(&self._bids, &self._asks)

    cpdef int64_t qty_at(self, int side, int64_t price) except -1:
        """Quantity (lots) at ``price`` (ticks) on ``side`` (+1 bid, -1 ask); 0 if no such level (also for any
        price outside ``[1, MAX_PRICE_TICKS]``, where no level can be).

        Raises
        ------
        ValueError
            ``side`` is not +1 or -1.
        """
        cdef Side* s = self._side(side)
        cdef int64_t key
        cdef uint64_t k
        cdef Py_ssize_t i
        if price <= 0 or price > _MAX_PX:       # also keeps sign * price from overflowing
            return 0
        key = s.sign * price
        k = <uint64_t>key - <uint64_t>s.near.base
        if k < <uint64_t>s.near.span:
            return s.near.qty[k]
        i = _find(&s.far, key)
        if i < s.far.n and s.far.lv[i].key == key:
            return s.far.lv[i].qty
        return 0

    cpdef int64_t depth_qty(self, int side, Py_ssize_t n_levels) except -1:
        """Cumulative quantity (lots) of the best ``n_levels`` levels of ``side`` (+1 bid, -1 ask).

        Fewer levels than asked: the whole side. The sum saturates at 2**63 - 1 (each level holds at most 2**53
        lots, so only thousands of near-maximal levels reach it). Raises ValueError for a bad side or
        ``n_levels < 0``.
        """
        cdef Side* s = self._side(side)
        cdef Py_ssize_t fi = s.far.n - 1, wi = s.near.top, k = 0
        cdef int64_t key, qty, total = 0
        if n_levels < 0:
            raise ValueError(f"n_levels must be >= 0, got {n_levels}")
        while k < n_levels and _walk_next(s, &fi, &wi, &key, &qty):
            total = sat_add(total, qty)
            k += 1
        return total

    cpdef Py_ssize_t n_levels(self, int side) except -1:
        """Number of levels on ``side`` (+1 bid, -1 ask). Raises ValueError for a bad side."""
        cdef Side* s = self._side(side)
        return s.near.live + s.far.live

    def levels(self, int side, n=None):
        """Levels of ``side`` (+1 bid, -1 ask) best-first as ``[(price_ticks, qty_lots), ...]``.

        At most ``n`` levels (all when None). Allocates: for tools and tests, not the hot path.
        Raises ValueError for a bad side or ``n < 0``.
        """
        cdef Side* s = self._side(side)
        cdef Py_ssize_t k = s.near.live + s.far.live if n is None else n
        cdef Py_ssize_t fi = s.far.n - 1, wi = s.near.top
        cdef int64_t key, qty
        if k < 0:
            raise ValueError(f"n must be >= 0, got {k}")
        out = []
        while len(out) < k and _walk_next(s, &fi, &wi, &key, &qty):
            out.append((s.sign * key, qty))
        return out

    @property
    def synced(self):
        """True when the book is valid (state SYNCED)."""
        return self.state == SYNCED

    @property
    def pending(self):
        """Number of diffs currently buffered for the next snapshot."""
        return len(self._pending)
