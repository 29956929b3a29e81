# Exact decimal-string <-> integer conversion for prices (ticks) and quantities (lots).
from libc.stdint cimport int64_t

# A grid of exact decimal steps: value = units * mantissa * 10**-decimals.
# Example: tick 0.1  -> decimals=1, mantissa=1;  tick 0.05 -> decimals=2, mantissa=5.
cdef struct Grid:
    int decimals
    int64_t mantissa

# Error codes of parse_units (0 = ok).
cdef enum:
    FP_OK = 0
    FP_EMPTY = -1          # no digits
    FP_BAD_CHAR = -2       # a character that is not a digit, '.', or a leading '-'/'+'
    FP_OFF_GRID = -3       # more significant decimals than the grid, or not a multiple of the mantissa
    FP_OVERFLOW = -4       # does not fit in int64

cdef int parse_units(const char* s, Py_ssize_t n, Grid grid, int64_t* out) noexcept nogil
cdef int64_t units_from_str(object text, Grid grid, object what=*) except? -1
