# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""Decoded market events packed into flat int64 arrays (the decoded-event cache) and read back.

Layout (native-endian int64, documented for ``mmcore.runners.event_cache``):

- records: ``RECORD_WORDS`` (8) words per event, ``[kind, ts_local_ns, ts_event_ns, f0, f1, f2, f3, f4]``:

  ======================  =======================================================================
  ``KIND_DIFF`` (1)       f0 U (first update id), f1 u (final), f2 pu (-1: none), f3 bids, f4 asks
  ``KIND_SNAPSHOT`` (2)   f0 lastUpdateId, f3 bids, f4 asks
  ``KIND_TRADE`` (3)      f0 trade id, f1 price (ticks), f2 quantity (lots), f3 aggressor side (+1 / -1)
  ``KIND_TICKER`` (4)     f0 update id, f1 bid price, f2 bid quantity, f3 ask price, f4 ask quantity
  ======================  =======================================================================

- levels: for every depth event in order, its level block exactly as a :class:`mmcore_ext.events.Depth` holds
  it: ``bid_px[bids], bid_qty[bids], ask_px[asks], ask_qty[asks]``.

:class:`EventPacker` appends events (growing C buffers); :class:`EventStream` rebuilds them one by one from two
read-only buffers (e.g. ``numpy.memmap`` views of the cache file) with one allocation per event and a memcpy of
the level block: no decoding. Every record is checked as it is read (kind known, level counts >= 0 and within
the level buffer; trade and bookTicker prices in [1, 2**53], quantities in [0, 2**53]; depth levels are checked
by the book as it applies them), so a damaged cache raises ValueError instead of reading out of bounds.
"""
from cpython.mem cimport PyMem_Free, PyMem_Realloc
from libc.stdint cimport int64_t
from libc.string cimport memcpy
from mmcore_ext.bounds cimport MAX_PRICE_TICKS as _MAX_PX, MAX_QTY_LOTS as _MAX_QTY
from mmcore_ext.events cimport BookTicker, DepthDiff, DepthSnapshot, Trade

#: Words per record.
RECORD_WORDS = 8
KIND_DIFF = 1
KIND_SNAPSHOT = 2
KIND_TRADE = 3
KIND_TICKER = 4

cdef Py_ssize_t _W = 8


cdef class EventPacker:
    """Append typed events into the record and level arrays (see the module docstring)."""

    cdef int64_t* _rec
    cdef Py_ssize_t _rec_n, _rec_cap
    cdef int64_t* _lvl
    cdef Py_ssize_t _lvl_n, _lvl_cap
    cdef readonly Py_ssize_t events
    """Events packed."""

    def __dealloc__(self):
        PyMem_Free(self._rec)
        PyMem_Free(self._lvl)

    cdef int64_t* _grow(self, int64_t** buf, Py_ssize_t* cap, Py_ssize_t need) except NULL:
        cdef Py_ssize_t new_cap = cap[0] if cap[0] > 0 else 4096
        cdef int64_t* p
        while new_cap < need:
            if new_cap > (1 << 40):
                raise MemoryError("event cache larger than 8 TB")
            new_cap *= 2
        if new_cap != cap[0]:
            p = <int64_t*>PyMem_Realloc(buf[0], new_cap * sizeof(int64_t))
            if p == NULL:
                raise MemoryError()
            buf[0] = p
            cap[0] = new_cap
        return buf[0]

    def add(self, ev):
        """Append one DepthDiff / DepthSnapshot / Trade / BookTicker. Raises TypeError for anything else."""
        cdef int64_t* r
        cdef Py_ssize_t n
        cdef DepthDiff d
        cdef DepthSnapshot s
        cdef Trade t
        cdef BookTicker k
        self._grow(&self._rec, &self._rec_cap, self._rec_n + _W)
        r = self._rec + self._rec_n
        r[3] = r[4] = r[5] = r[6] = r[7] = 0
        if type(ev) is DepthDiff:
            d = <DepthDiff>ev
            r[0], r[1], r[2] = KIND_DIFF, d.ts_local_ns, d.ts_event_ns
            r[3], r[4], r[5], r[6], r[7] = d.first_update_id, d.final_update_id, d.prev_final_update_id, d.n_bids, d.n_asks
            n = 2 * (d.n_bids + d.n_asks)
            self._grow(&self._lvl, &self._lvl_cap, self._lvl_n + n)
            if n:
                memcpy(self._lvl + self._lvl_n, d.buf, n * sizeof(int64_t))
            self._lvl_n += n
        elif type(ev) is DepthSnapshot:
            s = <DepthSnapshot>ev
            r[0], r[1], r[2] = KIND_SNAPSHOT, s.ts_local_ns, s.ts_event_ns
            r[3], r[6], r[7] = s.last_update_id, s.n_bids, s.n_asks
            n = 2 * (s.n_bids + s.n_asks)
            self._grow(&self._lvl, &self._lvl_cap, self._lvl_n + n)
            if n:
                memcpy(self._lvl + self._lvl_n, s.buf, n * sizeof(int64_t))
            self._lvl_n += n
        elif type(ev) is Trade:
            t = <Trade>ev
            r[0], r[1], r[2] = KIND_TRADE, t.ts_local_ns, t.ts_event_ns
            r[3], r[4], r[5], r[6] = t.trade_id, t.price, t.qty, t.side
        elif type(ev) is BookTicker:
            k = <BookTicker>ev
            r[0], r[1], r[2] = KIND_TICKER, k.ts_local_ns, k.ts_event_ns
            r[3], r[4], r[5], r[6], r[7] = k.update_id, k.bid_px, k.bid_qty, k.ask_px, k.ask_qty
        else:
            raise TypeError(f"not a market event: {type(ev).__name__}")
        self._rec_n += _W
        self.events += 1

    def records(self) -> bytes:
        """The record array (native int64) as bytes."""
        return (<char*>self._rec)[:self._rec_n * sizeof(int64_t)] if self._rec_n else b""

    def levels(self) -> bytes:
        """The level array (native int64) as bytes."""
        return (<char*>self._lvl)[:self._lvl_n * sizeof(int64_t)] if self._lvl_n else b""


cdef class EventStream:
    """Iterate the events of a record array and a level array (read-only int64 buffers, e.g. memory-mapped).

    ``next_event()`` returns the next event, or None at the end; the class is also an iterator. Raises
    ValueError on a damaged record (unknown kind, negative level counts, a level block past the level array)."""

    cdef const int64_t[::1] _rec
    cdef const int64_t[::1] _lvl
    cdef Py_ssize_t _i, _n, _li
    cdef readonly Py_ssize_t position
    """Events returned so far."""

    def __init__(self, const int64_t[::1] records, const int64_t[::1] levels):
        if records.shape[0] % _W:
            raise ValueError(f"record array of {records.shape[0]} words is not a whole number of records")
        self._rec = records
        self._lvl = levels
        self._n = records.shape[0]

    def __iter__(self):
        return self

    def __next__(self):
        ev = self.next_event()
        if ev is None:
            raise StopIteration
        return ev

    cpdef object next_event(self):
        cdef Py_ssize_t i = self._i, n
        cdef int64_t kind, nb, na
        cdef DepthDiff d
        cdef DepthSnapshot s
        cdef Trade t
        cdef BookTicker k
        if i >= self._n:
            return None
        kind = self._rec[i]
        self._i = i + _W
        self.position += 1
        if kind == KIND_TRADE:
            if not (1 <= self._rec[i + 4] <= _MAX_PX and 1 <= self._rec[i + 5] <= _MAX_QTY) or \
                    (self._rec[i + 6] != 1 and self._rec[i + 6] != -1):
                raise ValueError(f"event cache record {i // _W}: trade outside the price / quantity bounds")
            t = Trade.__new__(Trade)
            t.ts_local_ns, t.ts_event_ns = self._rec[i + 1], self._rec[i + 2]
            t.trade_id, t.price, t.qty, t.side = self._rec[i + 3], self._rec[i + 4], self._rec[i + 5], \
                <int>self._rec[i + 6]
            return t
        if kind == KIND_TICKER:
            if not (1 <= self._rec[i + 4] <= _MAX_PX and 0 <= self._rec[i + 5] <= _MAX_QTY and
                    1 <= self._rec[i + 6] <= _MAX_PX and 0 <= self._rec[i + 7] <= _MAX_QTY):
                raise ValueError(f"event cache record {i // _W}: bookTicker outside the price / quantity bounds")
            k = BookTicker.__new__(BookTicker)
            k.ts_local_ns, k.ts_event_ns = self._rec[i + 1], self._rec[i + 2]
            k.update_id, k.bid_px, k.bid_qty = self._rec[i + 3], self._rec[i + 4], self._rec[i + 5]
            k.ask_px, k.ask_qty = self._rec[i + 6], self._rec[i + 7]
            return k
        if kind != KIND_DIFF and kind != KIND_SNAPSHOT:
            raise ValueError(f"event cache record {i // _W}: unknown kind {kind}")
        nb, na = self._rec[i + 6], self._rec[i + 7]
        if nb < 0 or na < 0 or nb > (1 << 40) or na > (1 << 40) or \
                2 * (nb + na) > self._lvl.shape[0] - self._li:
            raise ValueError(f"event cache record {i // _W}: {nb} + {na} levels do not fit the level array")
        n = 2 * (nb + na)
        if kind == KIND_DIFF:
            d = DepthDiff.__new__(DepthDiff)
            d._alloc(nb, na)
            if n:
                memcpy(d.buf, &self._lvl[self._li], n * sizeof(int64_t))
            d.ts_local_ns, d.ts_event_ns = self._rec[i + 1], self._rec[i + 2]
            d.first_update_id, d.final_update_id = self._rec[i + 3], self._rec[i + 4]
            d.prev_final_update_id = self._rec[i + 5]
            self._li += n
            return d
        s = DepthSnapshot.__new__(DepthSnapshot)
        s._alloc(nb, na)
        if n:
            memcpy(s.buf, &self._lvl[self._li], n * sizeof(int64_t))
        s.ts_local_ns, s.ts_event_ns = self._rec[i + 1], self._rec[i + 2]
        s.last_update_id = self._rec[i + 3]
        self._li += n
        return s
