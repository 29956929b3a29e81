# Binance recording/stream line decoder (venue edge, on the hot path).
from libc.stdint cimport int64_t
from mmcore_ext.events cimport InstrumentGrid

cdef struct Value:
    int kind
    int64_t i
    const unsigned char* s
    Py_ssize_t n
    Py_ssize_t pairs

cdef enum:
    N_FIELDS = 17

cdef struct Fields:
    Value v[N_FIELDS]

cdef class BinanceLineDecoder:
    cdef InstrumentGrid grid
    cdef readonly str symbol
    """Exchange symbol whose messages are decoded (others are ignored)."""
    cdef bytes _sym
    cdef public bint byte_path
    """True (default): try the byte path first; False: the orjson path only (the differential tests' reference)."""
    cdef public int64_t byte_path_hits
    """Frames decoded by the byte path."""
    cdef public int64_t fallbacks
    """Frames (and lines) that went to the orjson path (not the canonical shape, an error, another stream)."""
    cpdef object decode(self, bytes raw)
    cpdef object decode_frame(self, int64_t ts_local_ns, bytes payload)
    cpdef object event_of(self, dict msg, int64_t ts_local_ns)
    cpdef object snapshot_from(self, int64_t ts_local_ns, object result)
    cdef object _event(self, dict msg, int64_t ts)
    cdef object _build(self, Fields* f, int64_t ts)

cdef class FrameRouter:
    cdef readonly dict decoders
    """``{symbol: BinanceLineDecoder}``."""
    cpdef object route(self, int64_t ts_local_ns, object payload)
