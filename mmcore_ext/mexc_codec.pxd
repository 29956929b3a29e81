# MEXC spot v3 WebSocket protobuf frame decoder (venue edge, on the hot path).
from libc.stdint cimport int64_t
from mmcore_ext.events cimport InstrumentGrid

cdef enum:
    MAX_BODY_SEGMENTS = 16      # occurrences of the same body field merged (protobuf merge semantics), at most
    MAX_NESTING = 100           # upb's default depth limit (wrapper = 100, body = 99, item = 98 for groups)

# A byte range of the frame (a length-delimited field's payload).
cdef struct Span:
    const unsigned char* p
    Py_ssize_t n

cdef class MexcDecoder:
    cdef InstrumentGrid grid
    cdef readonly str symbol
    """Exchange symbol whose frames are decoded (others decode to None)."""
    cdef bytes _sym
    cpdef object decode_frame(self, int64_t ts_local_ns, bytes payload)
    cpdef object snapshot_from(self, int64_t ts_local_ns, object result)
