# L2 order book: integer ticks/lots in a tick-indexed window near the top plus a sorted array for the rest;
# Binance snapshot+diff synchronisation.
from libc.stdint cimport int64_t, uint64_t
from mmcore_ext.events cimport DepthSnapshot, DepthDiff

# Sequence rules (constructor argument).
cpdef enum:
    SYNC_SPOT = 0          # Binance spot: U/u chaining (U == previous u + 1)
    SYNC_USDM = 1          # Binance USDⓈ-M futures: pu chaining (pu == previous u)
    SYNC_MEXC = 2          # MEXC spot aggre depth: version continuity (fromVersion == previous toVersion + 1)

# Book states.
cpdef enum:
    AWAITING_SNAPSHOT = 0  # no valid book: diffs are buffered until load_snapshot
    SYNCED = 1             # levels valid as of last_update_id

# Outcome codes of apply_diff.
cpdef enum:
    APPLIED = 0            # levels applied, last_update_id = u
    BUFFERED = 1           # no snapshot yet: kept for replay at the next load_snapshot
    STALE = 2              # dropped: already covered by the snapshot / book (u too old)
    GAP = 3                # sequence gap: not applied, book cleared, state -> AWAITING_SNAPSHOT

# Sides.
cpdef enum:
    BID = 1
    ASK = -1

# One price level of the sorted store. key = sign * price, so keys ascend towards the best on both sides.
cdef struct Level:
    int64_t key            # sign * price (ticks): price for bids, -price for asks
    int64_t qty            # quantity (lots); 0 marks a hole (a deleted level awaiting reuse or compaction)

# Levels outside the window: lv[0..n) sorted by strictly ascending key, best at lv[n-1] (always live).
# A deleted level below the top stays in place as a hole (qty 0) until reused or compacted.
# lv = buf + off: the free slots below lv[0] let an insert deep in the book shift the (few) deeper levels down.
cdef struct SortedLevels:
    Level* buf             # allocation of cap slots
    Level* lv              # first used slot (buf + off)
    Py_ssize_t off         # free slots below lv[0]
    Py_ssize_t n           # used slots (live levels + holes)
    Py_ssize_t live        # live levels (qty > 0)
    Py_ssize_t cap         # allocated slots

# Levels inside the window: one slot per tick, slot k holds key base + k.
cdef struct Ladder:
    int64_t* qty           # width slots: quantity (lots) at key base + k; 0 = no level
    uint64_t* bits         # width / 64 words: bit k set <=> qty[k] != 0
    int64_t base           # key of slot 0
    int64_t span           # width while the window is placed, 0 before (then no key falls inside)
    Py_ssize_t width       # slots (a multiple of 64)
    Py_ssize_t top         # highest occupied slot (the window's best level), -1 if none
    Py_ssize_t live        # occupied slots

# One side of the book: every level is in exactly one of the two stores (by whether its key is in the window).
cdef struct Side:
    Ladder near
    SortedLevels far
    int64_t sign           # +1 bids, -1 asks


cdef class L2Book:
    cdef Side _bids
    cdef Side _asks
    cdef object _pending            # collections.deque of DepthDiff (pre-snapshot / post-gap buffer)
    cdef bint _await_first          # snapshot loaded, first straddling event not yet applied

    cdef readonly int sync_rule
    """SYNC_SPOT, SYNC_USDM (Binance) or SYNC_MEXC: which sequence rule is applied."""
    cdef readonly int state
    """AWAITING_SNAPSHOT or SYNCED."""
    cdef readonly int64_t last_update_id
    """Update id the levels reflect: snapshot ``lastUpdateId``, then ``u`` of each applied diff (-1 before any)."""
    cdef readonly int64_t ts_local_ns
    """Local receive time (ns) of the last applied snapshot or diff (0 before any)."""
    cdef readonly int64_t applied
    """Diffs applied (including buffered diffs replayed at snapshot load)."""
    cdef readonly int64_t buffered
    """Diffs buffered while awaiting a snapshot."""
    cdef readonly int64_t stale
    """Diffs dropped as already covered by the snapshot or the book."""
    cdef readonly int64_t stale_snapshots
    """Snapshots ignored because the synced book was already at or past their ``lastUpdateId``."""
    cdef readonly int64_t gaps
    """Sequence gaps detected (each clears the book and requires a new snapshot)."""
    cdef readonly int64_t crossed
    """Applied diffs after which best bid >= best ask."""
    cdef readonly int64_t buffer_dropped
    """Buffered diffs discarded (oldest first) because the buffer held max_pending diffs."""
    cdef readonly Py_ssize_t max_pending
    """Capacity of the pre-snapshot buffer (diffs)."""
    cdef readonly Py_ssize_t window_ticks
    """Width (ticks) of each side's tick-indexed window near the top of book."""
    cdef readonly int64_t recenters
    """Times a side's window was moved to follow its best level."""

    cdef int _grow(self, SortedLevels* s, Py_ssize_t cap) except -1
    cdef int _reserve(self, SortedLevels* s, Py_ssize_t extra) except -1
    cdef Side* _side(self, int side) except NULL
    cdef int _process(self, DepthDiff d) except -1
    cdef void _apply_levels(self, DepthDiff d) noexcept
    cdef void _to_awaiting(self) noexcept
    cdef int _buffer(self, DepthDiff d) except -1

    cpdef int load_snapshot(self, DepthSnapshot s) except -1
    cpdef void invalidate(self) noexcept
    cpdef int apply_diff(self, DepthDiff d) except -1
    cpdef int64_t best_bid_px(self) noexcept
    cpdef int64_t best_bid_qty(self) noexcept
    cpdef int64_t best_ask_px(self) noexcept
    cpdef int64_t best_ask_qty(self) noexcept
    cpdef int64_t mid_x2(self) noexcept
    cpdef int64_t spread(self) noexcept
    cpdef double microprice(self) noexcept
    cpdef bint is_crossed(self) noexcept
    cpdef int64_t qty_at(self, int side, int64_t price) except -1
    cpdef int64_t depth_qty(self, int side, Py_ssize_t n_levels) except -1
    cpdef Py_ssize_t n_levels(self, int side) except -1
