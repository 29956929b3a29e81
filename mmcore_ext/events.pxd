# Typed market-data events. Prices are int64 ticks, quantities int64 lots, times int64 ns since the epoch.
from libc.stdint cimport int64_t
from mmcore_ext.fixedpoint cimport Grid

cdef class InstrumentGrid:
    cdef Grid price     # tick grid
    cdef Grid qty       # lot (step size) grid
    cdef readonly int64_t max_price_ticks
    """Largest price (ticks) a decoded message may carry; prices must lie in [1, max_price_ticks]."""
    cdef readonly int64_t max_qty_lots
    """Largest quantity (lots) a decoded message may carry; quantities must lie in [0, max_qty_lots]."""
    cdef int64_t check_price(self, int64_t px, object what) except -1
    cdef int64_t check_qty(self, int64_t qty, object what, bint positive) except -1

cdef class Depth:
    cdef readonly int64_t ts_local_ns
    """Local receive time (ns since epoch)."""
    cdef readonly int64_t ts_event_ns
    """Exchange event time E (ns since epoch; ms resolution on Binance)."""
    cdef readonly Py_ssize_t n_bids
    """Number of bid levels."""
    cdef readonly Py_ssize_t n_asks
    """Number of ask levels."""
    # One malloc'd block: bid_px[n_bids], bid_qty[n_bids], ask_px[n_asks], ask_qty[n_asks].
    cdef int64_t* buf
    cdef int64_t* bid_px
    cdef int64_t* bid_qty
    cdef int64_t* ask_px
    cdef int64_t* ask_qty
    cdef int _alloc(self, Py_ssize_t n_bids, Py_ssize_t n_asks) except -1
    cdef int _fill(self, InstrumentGrid g, list bids, list asks) except -1
    cdef int _fill_ticks(self, bids, asks) except -1

cdef class DepthSnapshot(Depth):
    cdef readonly int64_t last_update_id
    """Binance ``lastUpdateId`` of the REST depth snapshot."""

cdef class DepthDiff(Depth):
    cdef readonly int64_t first_update_id
    """``U``: first update id in the event."""
    cdef readonly int64_t final_update_id
    """``u``: final update id in the event."""
    cdef readonly int64_t prev_final_update_id
    """``pu``: final update id of the previous event (USDⓈ-M only; -1 when absent)."""

cdef class Trade:
    cdef readonly int64_t ts_local_ns
    """Local receive time (ns)."""
    cdef readonly int64_t ts_event_ns
    """Exchange event time (ns)."""
    cdef readonly int64_t trade_id
    """Exchange trade id."""
    cdef readonly int64_t price
    """Trade price (ticks)."""
    cdef readonly int64_t qty
    """Trade quantity (lots)."""
    cdef readonly int side
    """Aggressor side: +1 buy (``m`` false), -1 sell (``m`` true: buyer is maker)."""

cdef class BookTicker:
    cdef readonly int64_t ts_local_ns
    """Local receive time (ns)."""
    cdef readonly int64_t ts_event_ns
    """Exchange event time (ns; 0 when absent, as on spot)."""
    cdef readonly int64_t update_id
    """``u``: order-book update id this best bid/offer reflects."""
    cdef readonly int64_t bid_px
    """Best bid price (ticks)."""
    cdef readonly int64_t bid_qty
    """Best bid quantity (lots)."""
    cdef readonly int64_t ask_px
    """Best ask price (ticks)."""
    cdef readonly int64_t ask_qty
    """Best ask quantity (lots)."""
