# cython: language_level=3
"""Exact conversion between exchange decimal strings and integer grid units (ticks or lots).

Exchanges send prices and quantities as decimal strings (Binance: ``"61800.20"``, ``"0.00100000"``;
https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams). mmcore converts them once,
at the venue edge, to int64 units of the instrument's tick size (prices) or step size (quantities), with
no float on the way, so ``"61800.20"`` on a 0.1 tick is exactly 618002 ticks.

Arithmetic bounds: the value is accumulated digit by digit with the check ``value > (INT64_MAX - d) // 10`` before
each step and ``value > INT64_MAX // 10`` before each scaling by 10, so no input (any length, any digits) can
overflow; the only counters are ``frac`` (incremented only while below ``grid.decimals``, an int) and a
seen-a-digit flag (not a count: a string of more than 2**31 digits cannot overflow it). ``-value`` is exact
(value >= 0). Range checks (a price in [1, max], a quantity in [0, max]) are the caller's: see
:class:`mmcore_ext.events.InstrumentGrid`.
"""
from cpython.unicode cimport PyUnicode_AsUTF8AndSize
from libc.stdint cimport int64_t, INT64_MAX

_ERRORS = {
    FP_EMPTY: "no digits",
    FP_BAD_CHAR: "not a decimal number",
    FP_OFF_GRID: "not a multiple of the grid step",
    FP_OVERFLOW: "out of int64 range",
}


cdef int parse_units(const char* s, Py_ssize_t n, Grid grid, int64_t* out) noexcept nogil:
    """Parse the decimal ``s[:n]`` into grid units; return an FP_* code and write ``out`` on FP_OK.

    Trailing zeros beyond ``grid.decimals`` are accepted (``"61800.20000000"`` on a 0.01 grid);
    any non-zero digit beyond it, or a value not divisible by ``grid.mantissa``, is FP_OFF_GRID.
    """
    cdef Py_ssize_t i = 0
    cdef int64_t value = 0
    cdef int frac = -1          # -1: before the point; otherwise digits seen after it
    cdef bint digits = False    # a digit was seen (a flag, not a count: no length can overflow it)
    cdef bint neg = False
    cdef char c
    cdef int d
    if n > 0 and (s[0] == c'-' or s[0] == c'+'):
        neg = s[0] == c'-'
        i = 1
    while i < n:
        c = s[i]
        i += 1
        if c == c'.':
            if frac >= 0:
                return FP_BAD_CHAR
            frac = 0
            continue
        if c < c'0' or c > c'9':
            return FP_BAD_CHAR
        d = c - c'0'
        digits = True
        if frac >= 0:
            if frac >= grid.decimals:
                if d != 0:
                    return FP_OFF_GRID
                continue
            frac += 1
        if value > (INT64_MAX - d) // 10:
            return FP_OVERFLOW
        value = value * 10 + d
    if not digits:
        return FP_EMPTY
    if frac < 0:
        frac = 0
    while frac < grid.decimals:
        if value > INT64_MAX // 10:
            return FP_OVERFLOW
        value *= 10
        frac += 1
    if value % grid.mantissa != 0:
        return FP_OFF_GRID
    value = value // grid.mantissa
    out[0] = -value if neg else value
    return FP_OK


cdef int64_t units_from_str(object text, Grid grid, object what=None) except? -1:
    """Convert a Python ``str`` to grid units; raise ValueError naming ``what`` (the field, when given) and the text
    on any error, including a ``text`` that is not a str."""
    cdef Py_ssize_t n
    cdef const char* s
    cdef int64_t out = 0
    cdef int rc
    if type(text) is not str:
        raise ValueError(f"{what or 'value'}: {text!r:.40} is not a decimal string")
    s = PyUnicode_AsUTF8AndSize(text, &n)
    rc = parse_units(s, n, grid, &out)
    if rc != FP_OK:
        raise ValueError(f"{what + ' ' if what else ''}{text!r:.60}: {_ERRORS[rc]} "
                         f"(grid {grid.mantissa}e-{grid.decimals})")
    return out
