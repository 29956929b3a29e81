# Quoting models (Avellaneda-Stoikov, GLFT) and their estimators (EWMA sigma, fill intensity A/kappa).
# Prices, spreads and the mid are doubles in quote currency; quotes come out as int64 ticks; times are int64 ns
# of event time. q (inventory) is signed, in base units (BTC for BTCUSDT); Delta (order_qty_delta) is the order
# size in the same unit, so gamma is independent of the order size (docs/quoting_models.md, "Units").
from libc.stdint cimport int64_t


cdef class EwmaVolatility:
    cdef readonly double half_life_s
    """EWMA half-life (seconds of event time)."""
    cdef readonly int64_t sample_interval_ns
    """Minimum event time between two mid samples (ns)."""
    cdef readonly double seed_sigma
    """Starting sigma (quote currency per sqrt(second))."""
    cdef readonly double variance
    """EWMA of the variance rate (mid change)^2 / dt (quote currency^2 per second)."""
    cdef readonly double sigma
    """sqrt(variance): volatility (quote currency per sqrt(second))."""
    cdef readonly int64_t samples
    """Number of mid changes folded into the EWMA (the first mid only anchors)."""
    cdef bint _has_prev
    cdef int64_t _prev_ts
    cdef double _prev_mid
    cdef double _decay_per_s      # ln 2 / half_life_s

    cpdef void update(self, int64_t ts_ns, double mid) noexcept


cdef class QuoteModel:
    cdef readonly double min_spread_bps
    """Lower clamp of the total spread (bps of the mid)."""
    cdef readonly double max_spread_bps
    """Upper clamp of the total spread (bps of the mid; may be +inf)."""
    cdef readonly double tick_size
    """Price tick (quote currency)."""
    cdef readonly double reservation
    """Centre of the last quotes: reservation price / fair value after skew (quote currency)."""
    cdef readonly double spread
    """Last total spread after the bps clamps, before tick rounding (quote currency)."""
    cdef readonly int64_t bid_ticks
    """Last bid (ticks); 0 means do not quote a bid (the model bid is below one tick)."""
    cdef readonly int64_t ask_ticks
    """Last ask (ticks); > bid_ticks and >= 1, except 0 = do not quote an ask (AvellanedaStoikov infinite mode at
    q = -q_max)."""

    cdef int _init_limits(self, double min_spread_bps, double max_spread_bps, double tick_size) except -1
    cdef int _set_quotes(self, double mid, double reservation, double spread,
                         int64_t best_bid, int64_t best_ask) except -1
    cpdef int compute(self, int64_t ts_ns, double mid, double q, double sigma,
                      int64_t best_bid, int64_t best_ask) except -1


cdef class AvellanedaStoikov(QuoteModel):
    cdef readonly double gamma
    """Risk aversion (1 / (quote currency x base unit): gamma q sigma^2 tau is a price for q in base units)."""
    cdef readonly double kappa
    """Fill-intensity decay k of lambda(delta) = A exp(-k delta) (1 / quote currency)."""
    cdef readonly double horizon_s
    """T (seconds of event time): the cycle length (cycle mode), the fixed T - t (fixed mode); unused (infinite)."""
    cdef readonly double order_qty_delta
    """Order size Delta (base units): the size of one fill in the model (1 in the paper's share units)."""
    cdef readonly int mode
    """HORIZON_CYCLE, HORIZON_FIXED or HORIZON_INFINITE."""
    cdef readonly bint constant_spread_only
    """True: the total spread is the constant part (2 / (gamma Delta)) ln(1 + gamma Delta / k) alone."""
    cdef readonly double q_max
    """Infinite horizon: the inventory bound of omega = (gamma sigma)^2 (q_max + Delta)^2 / 2 (base units)."""
    cdef readonly double constant_spread
    """(2 / (gamma Delta)) ln(1 + gamma Delta / k): the time-independent part of the spread (quote currency)."""
    cdef readonly double time_left_s
    """T - t at the last compute (seconds, in (0, T]; T in fixed mode; 0 in infinite mode)."""
    cdef readonly int64_t cycle_start_ns
    """Event time at which the current cycle started (ns; 0 before the first compute)."""
    cdef int64_t _horizon_ns
    cdef bint _started

    cdef int _infinite(self, double mid, double q, int64_t best_bid, int64_t best_ask) except -1
    cpdef int compute(self, int64_t ts_ns, double mid, double q, double sigma,
                      int64_t best_bid, int64_t best_ask) except -1


cdef class GLFT(QuoteModel):
    cdef readonly double gamma
    """Risk aversion gamma (1 / (quote currency x base unit), as for AvellanedaStoikov)."""
    cdef readonly double kappa
    """Fill-intensity decay k (1 / quote currency)."""
    cdef readonly double A
    """Fill intensity at zero distance (fills per second)."""
    cdef readonly double order_qty_delta
    """Order size Delta (base units, the unit of q)."""
    cdef readonly double xi
    """Risk-aversion parameter of the objective (xi = gamma: CARA model; xi = 0: running-penalty limit)."""
    cdef readonly double c1
    """(1 / (xi Delta)) ln(1 + xi Delta / k), or 1/k at xi = 0 (quote currency)."""
    cdef readonly double c2
    """sqrt(gamma / (2 A Delta k) (1 + xi Delta / k)^(k / (xi Delta) + 1)) (sqrt(second) per base unit)."""
    cdef readonly double half_spread
    """c1 + (Delta / 2) sigma c2 at the last compute, before the clamps (quote currency)."""
    cdef readonly double skew
    """sigma c2 at the last compute: shift of both quotes per base unit of q (quote currency per base unit)."""

    cpdef int compute(self, int64_t ts_ns, double mid, double q, double sigma,
                      int64_t best_bid, int64_t best_ask) except -1
    cpdef int set_intensity(self, double A, double kappa) except -1


cdef class TradeIntensity:
    cdef readonly double window_s
    """Rolling window of event time over which trades are counted (seconds)."""
    cdef readonly double bucket_width
    """Width of one distance bucket (quote currency)."""
    cdef readonly int n_buckets
    """Number of distance buckets; trades beyond the last bucket count in it."""
    cdef readonly int min_count
    """Least number of trades at or beyond a depth for that depth to enter the fit."""
    cdef readonly int min_points
    """Least number of depths needed for a fit."""
    cdef readonly Py_ssize_t capacity
    """Most trades held in the window (the oldest is dropped beyond it)."""
    cdef readonly double A
    """Last fitted (or seed) intensity at zero distance (trades per second)."""
    cdef readonly double kappa
    """Last fitted (or seed) decay (1 / quote currency)."""
    cdef readonly int n_points
    """Depths used by the last fit (0: not enough data, A and kappa kept)."""
    cdef int64_t _window_ns
    cdef int64_t* _ts             # ring of trade times (ns)
    cdef int* _bucket             # ring of trade distance buckets
    cdef int64_t* _counts         # trades per bucket in the window
    cdef Py_ssize_t _head
    cdef Py_ssize_t _size
    cdef bint _started
    cdef int64_t _first_ns        # first trade seen (warm-up)
    cdef int64_t _from_ns         # start of the covered interval (moves on capacity drops)
    cdef int64_t _last_ns         # last trade time
    cdef int64_t _burst_ts        # exchange time of the open aggressor burst
    cdef int _burst_side          # its aggressor side (0: none open)
    cdef double _burst_mid        # the mid before its first print
    cdef readonly int64_t prints
    """Trade prints seen (valid ones)."""
    cdef readonly int64_t arrivals
    """Arrivals recorded: one per aggressor burst (prints of one side at one exchange time), or one per print
    when the side is not given."""

    cdef void _expire(self, int64_t now_ns) noexcept
    cpdef void on_trade(self, int64_t ts_ns, double price, double mid, int side=*) noexcept
