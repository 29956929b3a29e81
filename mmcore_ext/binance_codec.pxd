# Binance recording/stream line decoder (venue edge, on the hot path).
from libc.stdint cimport int64_t
from mmcore_ext.events cimport InstrumentGrid

cdef class BinanceLineDecoder:
    cdef InstrumentGrid grid
    cdef readonly str symbol
    """Exchange symbol whose messages are decoded (others are ignored)."""
    cpdef object decode(self, bytes raw)
    cpdef object decode_frame(self, int64_t ts_local_ns, bytes payload)
    cpdef object event_of(self, dict msg, int64_t ts_local_ns)
    cpdef object snapshot_from(self, int64_t ts_local_ns, object result)
    cdef object _event(self, dict msg, int64_t ts)

cdef class FrameRouter:
    cdef readonly dict decoders
    """``{symbol: BinanceLineDecoder}``."""
    cpdef object route(self, int64_t ts_local_ns, object payload)
