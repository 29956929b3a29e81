# cython: language_level=3
"""Typed market-data events built straight from the exchange's decimal strings.

The venue codec (e.g. :mod:`mmcore_ext.binance_codec`) parses a frame with orjson and fills these objects
through their C-level fields; from this point on there are no dicts and no floats: prices are int64 ticks, quantities int64 lots, times int64 ns. Depth levels live in
one malloc'd C block per event, so the book applies them without touching Python objects.

Bounds: a level decoded from exchange text (``Depth._fill``) has its price in ``[1, max_price_ticks]`` and its
quantity in ``[0, max_qty_lots]`` of the :class:`InstrumentGrid`, both at most 2**53
(:data:`MAX_PRICE_TICKS`, :data:`MAX_QTY_LOTS`, the compiled core's range, see ``bounds.pxd``); anything else
raises ValueError naming the level (the decoder turns it into ``MalformedLine``). The ``from_ticks``
constructors (tests, synthetic data) store any int64 as given: the book checks its own bounds at
``load_snapshot`` / ``apply_diff``. The only arithmetic here is the size of the level block, checked against
``PY_SSIZE_T_MAX`` before the multiplication.
"""
from cpython.mem cimport PyMem_Malloc, PyMem_Free
from libc.stdint cimport int64_t, uint64_t
from mmcore_ext.bounds cimport MAX_PRICE_TICKS as _MAX_PRICE_TICKS, MAX_QTY_LOTS as _MAX_QTY_LOTS
from mmcore_ext.fixedpoint cimport Grid, units_from_str

cdef extern from "Python.h":
    const Py_ssize_t PY_SSIZE_T_MAX

#: Largest price (ticks) any compiled class accepts: 2**53 (``mmcore.instruments.MAX_UNITS``).
MAX_PRICE_TICKS = _MAX_PRICE_TICKS
#: Largest single quantity (lots) any compiled class accepts: 2**53.
MAX_QTY_LOTS = _MAX_QTY_LOTS


cdef class InstrumentGrid:
    """The integer grids of one instrument.

    Parameters
    ----------
    price_decimals, price_mantissa : int
        Tick size = ``price_mantissa * 10**-price_decimals`` (tick 0.1 -> ``1, 1``; 0.01 -> ``2, 1``).
    qty_decimals, qty_mantissa : int
        Step (lot) size, the same way (0.001 -> ``3, 1``).
    max_price_ticks : int, optional
        Largest price (ticks) accepted in decoded market data, in ``[1, MAX_PRICE_TICKS]`` (default 2**53);
        ``Instrument.max_price_ticks`` (PRICE_FILTER.maxPrice / tick).
    max_qty_lots : int, optional
        Largest quantity (lots) accepted in decoded market data, in ``[1, MAX_QTY_LOTS]`` (default 2**53);
        ``Instrument.max_qty_lots``.

    Raises
    ------
    ValueError
        A mantissa <= 0, decimals < 0, or a bound outside its range.
    """

    def __init__(self, int price_decimals, int64_t price_mantissa, int qty_decimals, int64_t qty_mantissa,
                 int64_t max_price_ticks=_MAX_PRICE_TICKS, int64_t max_qty_lots=_MAX_QTY_LOTS):
        if price_mantissa <= 0 or qty_mantissa <= 0 or price_decimals < 0 or qty_decimals < 0:
            raise ValueError("grid mantissas must be > 0 and decimals >= 0")
        if not 1 <= max_price_ticks <= _MAX_PRICE_TICKS:
            raise ValueError(f"max_price_ticks must be in [1, {_MAX_PRICE_TICKS}], got {max_price_ticks}")
        if not 1 <= max_qty_lots <= _MAX_QTY_LOTS:
            raise ValueError(f"max_qty_lots must be in [1, {_MAX_QTY_LOTS}], got {max_qty_lots}")
        self.price.decimals = price_decimals
        self.price.mantissa = price_mantissa
        self.qty.decimals = qty_decimals
        self.qty.mantissa = qty_mantissa
        self.max_price_ticks = max_price_ticks
        self.max_qty_lots = max_qty_lots

    def with_bounds(self, int64_t max_price_ticks, int64_t max_qty_lots):
        """A copy of this grid with other bounds (ticks, lots). Raises ValueError as the constructor."""
        return InstrumentGrid(self.price.decimals, self.price.mantissa, self.qty.decimals, self.qty.mantissa,
                              max_price_ticks, max_qty_lots)

    def price_ticks(self, str text):
        """Price string -> ticks (int). Raises ValueError if malformed, off the tick grid or outside int64;
        the ``[1, max_price_ticks]`` bound is checked by the decoder, not here."""
        return units_from_str(text, self.price)

    def qty_lots(self, str text):
        """Quantity string -> lots (int). Raises ValueError if malformed, off the step grid or outside int64;
        the ``[0, max_qty_lots]`` bound is checked by the decoder, not here."""
        return units_from_str(text, self.qty)

    cdef int64_t check_price(self, int64_t px, object what) except -1:
        """Return ``px`` if in ``[1, max_price_ticks]``, else raise ValueError naming ``what``."""
        if <uint64_t>px - 1 >= <uint64_t>self.max_price_ticks:     # unsigned: px <= 0 wraps to huge
            raise ValueError(f"{what}: price {px} ticks outside [1, {self.max_price_ticks}] (max_price)")
        return px

    cdef int64_t check_qty(self, int64_t qty, object what, bint positive) except -1:
        """Return ``qty`` if in ``[0, max_qty_lots]`` (``[1, ...]`` when ``positive``), else raise ValueError."""
        if <uint64_t>qty > <uint64_t>self.max_qty_lots or (positive and qty == 0):
            raise ValueError(f"{what}: quantity {qty} lots outside [{1 if positive else 0}, {self.max_qty_lots}] "
                             f"(max_qty)")
        return qty


cdef class Depth:
    """Base of depth events: bid and ask levels as (price ticks, quantity lots); quantity 0 deletes."""

    def __dealloc__(self):
        if self.buf != NULL:
            PyMem_Free(self.buf)

    cdef int _alloc(self, Py_ssize_t n_bids, Py_ssize_t n_asks) except -1:
        cdef Py_ssize_t total
        if n_bids < 0 or n_asks < 0 or n_bids > PY_SSIZE_T_MAX // 64 or n_asks > PY_SSIZE_T_MAX // 64:
            raise MemoryError(f"depth event of {n_bids} + {n_asks} levels")   # the byte count would overflow
        total = 2 * (n_bids + n_asks)
        self.buf = <int64_t*>PyMem_Malloc((total if total > 0 else 1) * sizeof(int64_t))
        if self.buf == NULL:
            raise MemoryError()
        self.n_bids = n_bids
        self.n_asks = n_asks
        self.bid_px = self.buf
        self.bid_qty = self.buf + n_bids
        self.ask_px = self.buf + 2 * n_bids
        self.ask_qty = self.buf + 2 * n_bids + n_asks
        return 0

    cdef int _fill(self, InstrumentGrid g, list bids, list asks) except -1:
        cdef Py_ssize_t i
        cdef object lvl
        self._alloc(len(bids), len(asks))
        cdef int64_t px, qty
        cdef int64_t max_px = g.max_price_ticks, max_qty = g.max_qty_lots
        for i in range(self.n_bids):
            lvl = bids[i]
            px = units_from_str(lvl[0], g.price, "bid price")
            qty = units_from_str(lvl[1], g.qty, "bid quantity")
            if <uint64_t>px - 1 >= <uint64_t>max_px or <uint64_t>qty > <uint64_t>max_qty:
                raise ValueError(f"bid level {lvl!r}: {px} ticks x {qty} lots; need price in [1, {max_px}] "
                                 f"(max_price) and quantity in [0, {max_qty}] (max_qty)")
            self.bid_px[i] = px
            self.bid_qty[i] = qty
        for i in range(self.n_asks):
            lvl = asks[i]
            px = units_from_str(lvl[0], g.price, "ask price")
            qty = units_from_str(lvl[1], g.qty, "ask quantity")
            if <uint64_t>px - 1 >= <uint64_t>max_px or <uint64_t>qty > <uint64_t>max_qty:
                raise ValueError(f"ask level {lvl!r}: {px} ticks x {qty} lots; need price in [1, {max_px}] "
                                 f"(max_price) and quantity in [0, {max_qty}] (max_qty)")
            self.ask_px[i] = px
            self.ask_qty[i] = qty
        return 0

    cdef int _fill_ticks(self, bids, asks) except -1:
        cdef Py_ssize_t i
        bids = list(bids)
        asks = list(asks)
        self._alloc(len(bids), len(asks))
        for i in range(self.n_bids):
            self.bid_px[i] = bids[i][0]
            self.bid_qty[i] = bids[i][1]
        for i in range(self.n_asks):
            self.ask_px[i] = asks[i][0]
            self.ask_qty[i] = asks[i][1]
        return 0

    @property
    def bids(self):
        """Bid levels as a list of ``(price_ticks, qty_lots)`` (allocates; for tests and tools)."""
        return [(self.bid_px[i], self.bid_qty[i]) for i in range(self.n_bids)]

    @property
    def asks(self):
        """Ask levels as a list of ``(price_ticks, qty_lots)`` (allocates; for tests and tools)."""
        return [(self.ask_px[i], self.ask_qty[i]) for i in range(self.n_asks)]


cdef class DepthSnapshot(Depth):
    """A full-depth snapshot (Binance REST ``GET /api/v3/depth`` or ``/fapi/v1/depth``)."""

    def __repr__(self):
        return f"DepthSnapshot(last_update_id={self.last_update_id}, bids={self.n_bids}, asks={self.n_asks})"

    @staticmethod
    def from_ticks(int64_t last_update_id, bids, asks, int64_t ts_local_ns=0, int64_t ts_event_ns=0):
        """Build from ``[(price_ticks, qty_lots), ...]`` sequences (tests, synthetic data)."""
        cdef DepthSnapshot s = DepthSnapshot.__new__(DepthSnapshot)
        s.ts_local_ns = ts_local_ns
        s.ts_event_ns = ts_event_ns
        s.last_update_id = last_update_id
        s._fill_ticks(bids, asks)
        return s


cdef class DepthDiff(Depth):
    """One depth diff event (Binance ``<symbol>@depth`` ``depthUpdate``): ids ``U``, ``u`` and ``pu``."""

    def __repr__(self):
        return (f"DepthDiff(U={self.first_update_id}, u={self.final_update_id}, pu={self.prev_final_update_id}, "
                f"bids={self.n_bids}, asks={self.n_asks})")

    @staticmethod
    def from_ticks(int64_t first_update_id, int64_t final_update_id, bids, asks,
                   int64_t prev_final_update_id=-1, int64_t ts_local_ns=0, int64_t ts_event_ns=0):
        """Build from ``[(price_ticks, qty_lots), ...]`` sequences (tests, synthetic data)."""
        cdef DepthDiff d = DepthDiff.__new__(DepthDiff)
        d.ts_local_ns = ts_local_ns
        d.ts_event_ns = ts_event_ns
        d.first_update_id = first_update_id
        d.final_update_id = final_update_id
        d.prev_final_update_id = prev_final_update_id
        d._fill_ticks(bids, asks)
        return d


cdef class Trade:
    """A public trade (Binance ``<symbol>@trade``).

    Parameters are keyword-compatible with the readonly attributes; ``side`` is the aggressor's side.
    """

    def __init__(self, int64_t ts_local_ns, int64_t ts_event_ns, int64_t trade_id, int64_t price, int64_t qty,
                 int side):
        if side != 1 and side != -1:
            raise ValueError(f"side must be +1 or -1, got {side}")
        self.ts_local_ns = ts_local_ns
        self.ts_event_ns = ts_event_ns
        self.trade_id = trade_id
        self.price = price
        self.qty = qty
        self.side = side

    def __repr__(self):
        return f"Trade(id={self.trade_id}, price={self.price}, qty={self.qty}, side={self.side})"



cdef class BookTicker:
    """Best bid/offer update (Binance ``<symbol>@bookTicker``); ``update_id`` shares the depth id sequence."""

    def __init__(self, int64_t ts_local_ns, int64_t ts_event_ns, int64_t update_id, int64_t bid_px,
                 int64_t bid_qty, int64_t ask_px, int64_t ask_qty):
        self.ts_local_ns = ts_local_ns
        self.ts_event_ns = ts_event_ns
        self.update_id = update_id
        self.bid_px = bid_px
        self.bid_qty = bid_qty
        self.ask_px = ask_px
        self.ask_qty = ask_qty

    def __repr__(self):
        return (f"BookTicker(u={self.update_id}, bid={self.bid_px}x{self.bid_qty}, "
                f"ask={self.ask_px}x{self.ask_qty})")
