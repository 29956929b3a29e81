# Binance recording/stream line decoder (venue edge, on the hot path).
from libc.stdint cimport int64_t
from mmcore_ext.events cimport InstrumentGrid

cdef class BinanceLineDecoder:
    cdef InstrumentGrid grid
    cdef readonly str symbol
    """Exchange symbol whose messages are decoded (others are ignored)."""
    cpdef object decode(self, bytes raw)
    cdef object _event(self, dict msg, int64_t ts)
