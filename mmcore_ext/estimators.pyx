# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""Online fair-price and volatility estimators (compiled, O(1) amortised per event, fixed memory).

- :class:`TwapPrice`: the time-weighted average of the mid over a rolling window (``strategy.fair_price: twap``,
  the band maker's reference).
- :class:`RealizedVolatility`: sigma over a fixed window, sqrt(sum of squared mid changes / time spanned): the
  realised-variance estimator (Andersen, Bollerslev, Diebold, Labys, "The distribution of realized exchange rate
  volatility", JASA 96, 2001), here as a rate per second so that it is in the A-S / GLFT units (quote currency
  per sqrt(second)); ``sigma / tick`` gives ticks per sqrt(second).

Both keep their samples in ring buffers of fixed capacity; when a buffer is full the oldest sample is dropped
early, so the window is then shorter than asked (``covered_s`` / ``samples`` tell). Time differences are formed
only between ordered times (``ts > prev``), so they are non-negative and cannot overflow.

cdivision: every divisor is a positive duration or a validated positive parameter, checked in the same function.
"""
from libc.math cimport sqrt, isfinite
from libc.stdint cimport int64_t, uint64_t
from cpython.mem cimport PyMem_Malloc, PyMem_Free

#: Largest ring capacity of either estimator.
MAX_CAPACITY = 1 << 24
#: Mid changes a RealizedVolatility window needs before its estimate replaces the seed.
MIN_SAMPLES = 10


cdef int64_t _window(double window_s) except -1:
    if not (window_s > 0.0 and window_s <= 86400.0 * 365):
        raise ValueError(f"window_s must be in (0, 31536000] seconds, got {window_s!r}")
    return <int64_t>(window_s * 1e9)


cdef class WindowSums:
    """Base of the window estimators: a ring of (time, value, duration) samples with running sums of the values
    and durations over the last ``window_s``; a sample is dropped whole once its time is older than ``now -
    window``; a full ring drops its oldest sample early.

    Parameters
    ----------
    window_s : float
        Rolling window (seconds), in (0, 31536000].
    capacity : int
        Most samples held (default 65536, at most MAX_CAPACITY).

    Raises
    ------
    ValueError
        A parameter is out of range. MemoryError: the ring cannot be allocated.
    """

    def __cinit__(self):
        self._ts = NULL
        self._x = NULL
        self._dt = NULL

    def __init__(self, double window_s, Py_ssize_t capacity=65536):
        self._window_ns = _window(window_s)
        if not (1 <= capacity <= MAX_CAPACITY):
            raise ValueError(f"capacity must be in [1, {MAX_CAPACITY}], got {capacity}")
        self.window_s = window_s
        self._cap = capacity
        self._ts = <int64_t*>PyMem_Malloc(capacity * sizeof(int64_t))
        self._x = <double*>PyMem_Malloc(capacity * sizeof(double))
        self._dt = <int64_t*>PyMem_Malloc(capacity * sizeof(int64_t))
        if self._ts == NULL or self._x == NULL or self._dt == NULL:
            raise MemoryError()

    def __dealloc__(self):
        PyMem_Free(self._ts)
        PyMem_Free(self._x)
        PyMem_Free(self._dt)

    cdef void _push(self, int64_t ts_ns, double x, int64_t dt) noexcept:
        # dt >= 0 (an ordered difference); the sums stay <= window + one sample per drop: no overflow.
        cdef Py_ssize_t i
        if self._size == self._cap:
            self._drop()
        i = (self._head + self._size) % self._cap
        self._ts[i] = ts_ns
        self._x[i] = x
        self._dt[i] = dt
        self._size += 1
        self._sum_x += x
        self._sum_dt += dt

    cdef void _drop(self) noexcept:
        cdef Py_ssize_t h = self._head
        self._sum_x -= self._x[h]
        self._sum_dt -= self._dt[h]
        self._head = (h + 1) % self._cap
        self._size -= 1
        if self._size == 0:                         # no drift of the running sums
            self._sum_x = 0.0
            self._sum_dt = 0

    cdef void _expire(self, int64_t now_ns) noexcept:
        while self._size and self._ts[self._head] < now_ns - self._window_ns:
            self._drop()


cdef class TwapPrice(WindowSums):
    """Time-weighted average price of the mid over the last ``window_s`` of event time.

    The mid is piecewise constant between updates: ``update(ts, mid)`` closes the segment of the previous mid
    (area prev_mid x (ts - prev_ts)) and starts one at ``mid``. ``value`` = sum of areas / sum of durations over
    the segments that end within the window (a segment is dropped whole once its end is older than ``ts -
    window``, so the window is resolved to one segment). Before any time has passed, ``value`` is the last
    mid. Updates with a non-finite or non-positive mid are ignored; a time before the last one is ignored, and
    a same-time update replaces the open segment's mid. Parameters and errors: :class:`WindowSums`.
    """

    def __repr__(self):
        return f"TwapPrice(value={self.value!r}, covered_s={self.covered_s!r}, window_s={self.window_s!r})"

    cpdef void update(self, int64_t ts_ns, double mid) noexcept:
        """Fold the mid ``mid`` (quote currency) seen at event time ``ts_ns`` (ns) into the average."""
        cdef int64_t dt
        if not (mid > 0.0 and isfinite(mid)):
            return
        if not self._has_prev:
            self._has_prev = True
            self._prev_ts = ts_ns
            self._prev_mid = mid
            self.value = mid
            return
        if ts_ns <= self._prev_ts:
            if ts_ns == self._prev_ts:
                self._prev_mid = mid
                if self._sum_dt == 0:
                    self.value = mid
            return
        dt = <int64_t>(<uint64_t>ts_ns - <uint64_t>self._prev_ts)
        if dt < 0:                                  # more than 2**63 ns apart: start over
            self._size = 0
            self._sum_x = 0.0
            self._sum_dt = 0
        else:
            self._push(ts_ns, self._prev_mid * <double>dt, dt)
        self._expire(ts_ns)
        self._prev_ts = ts_ns
        self._prev_mid = mid
        self.value = self._sum_x / <double>self._sum_dt if self._sum_dt > 0 else mid
        self.covered_s = <double>self._sum_dt * 1e-9


cdef class RealizedVolatility(WindowSums):
    """sigma from the squared mid changes of a fixed window: sqrt(sum dS^2 / sum dt) over the last ``window_s``.

    The mid is sampled at most once per ``sample_interval_ns`` (as :class:`mmcore_ext.quoting.EwmaVolatility`);
    every sample after the first adds (dS^2, dt). For a random walk E[dS^2] = sigma^2 dt, so the ratio estimates
    sigma^2 per second (quote currency^2 per second). Until the window holds ``MIN_SAMPLES`` changes, ``sigma``
    is ``seed_sigma``.

    Parameters
    ----------
    window_s : float
        Window (seconds), in (0, 31536000].
    sample_interval_ns : int
        Least time between samples (ns), > 0.
    seed_sigma : float
        sigma during warm-up (quote currency per sqrt(second)), >= 0.
    capacity : int
        Most samples held (default 65536, at most MAX_CAPACITY).

    Raises
    ------
    ValueError
        A parameter is out of range. MemoryError: the ring cannot be allocated.
    """

    def __init__(self, double window_s, int64_t sample_interval_ns, double seed_sigma, Py_ssize_t capacity=65536):
        if sample_interval_ns <= 0:
            raise ValueError(f"sample_interval_ns must be > 0, got {sample_interval_ns}")
        if not (seed_sigma >= 0.0 and isfinite(seed_sigma)):
            raise ValueError(f"seed_sigma must be finite and >= 0, got {seed_sigma!r}")
        WindowSums.__init__(self, window_s, capacity)
        self.sample_interval_ns = sample_interval_ns
        self.seed_sigma = seed_sigma
        self.sigma = seed_sigma

    def __repr__(self):
        return f"RealizedVolatility(sigma={self.sigma!r}, samples={self.samples}, window_s={self.window_s!r})"

    cpdef void update(self, int64_t ts_ns, double mid) noexcept:
        """Fold the mid ``mid`` (quote currency) at event time ``ts_ns`` (ns) into the estimate."""
        cdef int64_t dt
        cdef double d
        if not (mid > 0.0 and isfinite(mid)):
            return
        if not self._has_prev:
            self._has_prev = True
            self._prev_ts = ts_ns
            self._prev_mid = mid
            return
        if ts_ns <= self._prev_ts or <uint64_t>ts_ns - <uint64_t>self._prev_ts < <uint64_t>self.sample_interval_ns:
            return
        dt = <int64_t>(<uint64_t>ts_ns - <uint64_t>self._prev_ts)
        if dt < 0:                                  # more than 2**63 ns apart: start over
            self._size = 0
            self._sum_x = 0.0
            self._sum_dt = 0
        else:
            d = mid - self._prev_mid
            self._push(ts_ns, d * d, dt)
        self._expire(ts_ns)
        self._prev_ts = ts_ns
        self._prev_mid = mid
        self.samples = self._size
        if self._size >= MIN_SAMPLES and self._sum_dt > 0:
            self.sigma = sqrt(self._sum_x / (<double>self._sum_dt * 1e-9))
        else:
            self.sigma = self.seed_sigma
