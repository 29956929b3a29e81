# Online estimators of the fair price and the volatility beside the EWMA of mmcore_ext.quoting: a time-weighted
# average of the mid over a rolling window (TWAP) and a fixed-window realised volatility. Times are int64 ns of
# event time, prices doubles in quote currency. O(1) amortised per update, fixed ring buffers, no Python objects.
from libc.stdint cimport int64_t


cdef class WindowSums:
    cdef readonly double window_s
    """Rolling window (seconds of event time)."""
    cdef int64_t _window_ns
    cdef int64_t* _ts             # ring of sample times (ns)
    cdef double* _x               # ring of sample values
    cdef int64_t* _dt             # ring of sample durations (ns)
    cdef Py_ssize_t _cap, _head, _size
    cdef double _sum_x
    cdef int64_t _sum_dt
    cdef bint _has_prev
    cdef int64_t _prev_ts
    cdef double _prev_mid

    cdef void _push(self, int64_t ts_ns, double x, int64_t dt) noexcept
    cdef void _drop(self) noexcept
    cdef void _expire(self, int64_t now_ns) noexcept


cdef class TwapPrice(WindowSums):
    cdef readonly double value
    """Time-weighted average of the mid over the window (quote currency); the last mid before any time passed."""
    cdef readonly double covered_s
    """Event time the average covers (seconds; < window_s during warm-up)."""

    cpdef void update(self, int64_t ts_ns, double mid) noexcept


cdef class RealizedVolatility(WindowSums):
    cdef readonly int64_t sample_interval_ns
    """Least event time between two mid samples (ns)."""
    cdef readonly double seed_sigma
    """sigma until the window holds MIN_SAMPLES changes (quote currency per sqrt(second))."""
    cdef readonly double sigma
    """sqrt(sum of squared mid changes in the window / time they span) (quote currency per sqrt(second))."""
    cdef readonly int64_t samples
    """Mid changes in the window."""

    cpdef void update(self, int64_t ts_ns, double mid) noexcept
