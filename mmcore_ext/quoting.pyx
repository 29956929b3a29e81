# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""Quoting models and their online estimators.

- :class:`EwmaVolatility`: sigma from mid-price changes (quote currency per sqrt(second)).
- :class:`AvellanedaStoikov`: Avellaneda & Stoikov (2008) reservation price and spread: restarting cycles, a fixed
  time left, or the infinite horizon.
- :class:`GLFT`: Gueant-Lehalle-Fernandez-Tapia infinite-horizon closed form (hftbacktest's c1/c2 form).
- :class:`TradeIntensity`: A and kappa of lambda(delta) = A exp(-kappa delta) from trades.

Both quote models share :class:`QuoteModel`: the total spread is clamped to [min, max] bps of the mid, centred on
the model's reservation price, rounded to ticks away from the mid, then kept from crossing the book.
Formulas, units and the known deviations of common implementations are in ``docs/quoting_models.md``; the
pure-Python reference is :mod:`mmcore.reference.quoting`.

cdivision is on module-wide: every divisor is a validated positive constructor argument or a positive time
difference checked in the same function, and the only integer division has non-negative operands.

Integer bounds (``bounds.pxd``): quotes are kept within the price bound of the book, ``MAX_PRICE_TICKS`` (2**53):
the rounded bid/ask are formed only from values within +-2**53 ticks, so the +-1 tick adjustments cannot
overflow, and a finished ask (hence bid) above 2**53 raises ValueError; ``best_bid``/``best_ask`` must lie in
``[0, MAX_PRICE_TICKS]`` (ValueError). Times are arbitrary int64 ns: the A-S cycle clock forms ``ts - start`` and
the cycle step in 128-bit integers (the new start lies between the old one and ``ts``), the EWMA's ``dt`` is an
unsigned difference of ordered times, and the intensity window's cut-off ``now - window`` saturates.
"""
from libc.math cimport sqrt, log, log1p, exp, expm1, floor, ceil, fabs, llround, isfinite, M_LN2, M_E
from libc.float cimport DBL_EPSILON
from libc.stdint cimport int64_t, uint64_t
from cpython.mem cimport PyMem_Malloc, PyMem_Free
from mmcore_ext.bounds cimport MAX_PRICE_TICKS as _MAX_PX, int128, sat_sub

# A quote within this many ticks of a whole tick is on that tick. The tolerance grows to TICK_TOL_ULPS ulps
# of the tick count above ~5.6e5 ticks, where 1e-9 is finer than the double resolution of price / tick.
cdef double TICK_TOL = 1e-9
cdef double TICK_TOL_ULPS = 8.0
# Largest |price / tick| accepted: MAX_PRICE_TICKS (2**53), the book's price bound (exact as a double).
cdef double MAX_TICKS = <double>_MAX_PX
#: Largest quote (ticks) a model produces: 2**53, the price bound of the book and the risk gate.
MAX_QUOTE_TICKS = _MAX_PX
_INT64_MAX_PY = 9223372036854775807


cdef inline double _tol(double x) noexcept nogil:
    cdef double t = TICK_TOL_ULPS * DBL_EPSILON * fabs(x)
    return t if t > TICK_TOL else TICK_TOL


cdef int _check_positive(double value, str name) except -1:
    # Constructor guard: finite and > 0; raises ValueError naming the parameter.
    if not (value > 0.0 and isfinite(value)):
        raise ValueError(f"{name} must be finite and > 0, got {value!r}")
    return 0


cdef inline int _check_inputs(double mid, double q, double sigma) except -1:
    # Per-event guard: builds Python objects only when it raises.
    if not (mid > 0.0 and isfinite(mid)):
        raise ValueError(f"mid must be finite and > 0, got {mid!r}")
    if not isfinite(q):
        raise ValueError(f"q must be finite, got {q!r}")
    if not (sigma >= 0.0 and isfinite(sigma)):
        raise ValueError(f"sigma must be finite and >= 0, got {sigma!r}")
    return 0


#: Largest trade-ring capacity and bucket count of TradeIntensity (keeps the byte counts far from overflow).
MAX_TRADES_CAPACITY = 1 << 26

cdef class EwmaVolatility:
    """Online volatility from mid-price changes, as an EWMA of the variance rate in event time.

    The mid is sampled at most once per ``sample_interval_ns`` of event time: an update is a sample when at
    least that long has passed since the previous sample. For a sample after ``dt`` seconds,

        var_rate = (mid - prev_mid)^2 / dt                      (quote currency^2 per second)
        alpha    = 1 - 2^(-dt / half_life_s)                    (time-decayed EWMA weight)
        variance = variance + alpha (var_rate - variance),      sigma = sqrt(variance)

    so a sample's weight halves every ``half_life_s`` of event time whatever the sampling rate. For a random
    walk with independent increments, E[(mid change)^2] = sigma^2 dt, so var_rate estimates sigma^2 in the
    units Avellaneda & Stoikov (2008) and GLFT use (price per sqrt(time)). Under a bounce between two prices
    the estimate is biased up (no microstructure-noise correction). ``sigma`` starts at ``seed_sigma`` (the
    EWMA is seeded with ``seed_sigma^2``), so quoting can start at once; the seed decays with the half-life.

    Parameters
    ----------
    half_life_s : float
        Half-life of a sample's weight (seconds of event time), > 0.
    sample_interval_ns : int
        Minimum event time between samples (ns), > 0.
    seed_sigma : float
        Starting sigma (quote currency per sqrt(second)), >= 0.

    Raises
    ------
    ValueError
        A parameter is out of range (the message names it).
    """

    def __init__(self, double half_life_s, int64_t sample_interval_ns, double seed_sigma):
        _check_positive(half_life_s, "half_life_s")
        if sample_interval_ns <= 0:
            raise ValueError(f"sample_interval_ns must be > 0, got {sample_interval_ns}")
        if not (seed_sigma >= 0.0 and isfinite(seed_sigma)):
            raise ValueError(f"seed_sigma must be finite and >= 0, got {seed_sigma!r}")
        self.half_life_s = half_life_s
        self.sample_interval_ns = sample_interval_ns
        self.seed_sigma = seed_sigma
        self.variance = seed_sigma * seed_sigma
        self.sigma = seed_sigma
        self.samples = 0
        self._has_prev = False
        self._decay_per_s = M_LN2 / half_life_s

    def __repr__(self):
        return f"EwmaVolatility(sigma={self.sigma!r}, samples={self.samples}, half_life_s={self.half_life_s!r})"

    cpdef void update(self, int64_t ts_ns, double mid) noexcept:
        """Fold the mid at event time ``ts_ns`` into the estimate.

        Parameters
        ----------
        ts_ns : int
            Event time (ns since the epoch).
        mid : float
            Mid price (quote currency). Non-positive, NaN or infinite mids are ignored.

        Notes
        -----
        The first valid mid only anchors the series. Later updates are ignored when time does not move
        forward past the last sample, or when less than ``sample_interval_ns`` has passed since it.
        """
        cdef double dt, change, alpha
        if not (mid > 0.0 and isfinite(mid)):
            return
        if not self._has_prev:
            self._has_prev = True
            self._prev_ts = ts_ns
            self._prev_mid = mid
            return
        # ts > prev here, so the unsigned difference is exact (< 2**64) whatever the two times are
        if ts_ns <= self._prev_ts or <uint64_t>ts_ns - <uint64_t>self._prev_ts < <uint64_t>self.sample_interval_ns:
            return
        dt = <double>(<uint64_t>ts_ns - <uint64_t>self._prev_ts) * 1e-9
        change = mid - self._prev_mid
        alpha = -expm1(-dt * self._decay_per_s)          # 1 - 2^(-dt / half_life)
        self.variance += alpha * (change * change / dt - self.variance)
        self.sigma = sqrt(self.variance)
        self.samples += 1
        self._prev_ts = ts_ns
        self._prev_mid = mid


cdef class QuoteModel:
    """Base of the quote models: holds the last quotes and turns (reservation, spread) into ticks.

    Subclasses implement :meth:`compute`, which computes the model's reservation price (centre) and total
    spread in quote currency and hands them to the shared step below, which

    1. clamps the total spread to ``[min_spread_bps, max_spread_bps] * 1e-4 * mid``;
    2. sets ``bid = reservation - spread/2``, ``ask = reservation + spread/2``;
    3. rounds to ticks away from the mid: ``bid = floor(bid / tick)``, ``ask = ceil(ask / tick)``, except
       that a value within 1e-9 ticks of a whole tick (or 8 ulps of the tick count, if larger) stays on it;
    4. if both sides land on one tick (a sub-tick spread), keeps that tick on its side of the mid and moves
       the other side one tick out;
    5. never crosses the book: ``bid <= best_ask - 1`` and ``ask >= best_bid + 1`` (a best of 0 is unknown);
    6. ``bid >= 0`` (0 = do not quote a bid) and ``ask >= 1``.

    Steps 4-6 only move quotes away from each other, so ``bid < ask`` holds at the end. Quotes are not
    otherwise held on their side of the mid: with a large inventory the model may quote through the mid, up
    to the touch (hummingbot's optional clip to ``mid -+ min_spread/2`` is not applied).
    """

    def __init__(self, *args, **kwargs):
        if type(self) is QuoteModel:
            raise TypeError("QuoteModel is abstract; use AvellanedaStoikov or GLFT")

    cdef int _init_limits(self, double min_spread_bps, double max_spread_bps, double tick_size) except -1:
        if not (min_spread_bps >= 0.0 and isfinite(min_spread_bps)):
            raise ValueError(f"min_spread_bps must be finite and >= 0, got {min_spread_bps!r}")
        if not (max_spread_bps >= min_spread_bps):
            raise ValueError(f"max_spread_bps must be >= min_spread_bps ({min_spread_bps!r}), "
                             f"got {max_spread_bps!r}")
        _check_positive(tick_size, "tick_size")
        self.min_spread_bps = min_spread_bps
        self.max_spread_bps = max_spread_bps
        self.tick_size = tick_size
        return 0

    cdef int _set_quotes(self, double mid, double reservation, double spread,
                         int64_t best_bid, int64_t best_ask) except -1:
        # Steps 1-6 of the class docstring; mirrored by mmcore.reference.quoting.quote_ticks.
        cdef double lo = self.min_spread_bps * 1e-4 * mid
        cdef double hi = self.max_spread_bps * 1e-4 * mid
        cdef double x, y
        cdef int64_t bid, ask
        if spread < lo:
            spread = lo
        if spread > hi:
            spread = hi
        if best_bid < 0 or best_bid > _MAX_PX or best_ask < 0 or best_ask > _MAX_PX:
            raise ValueError(f"best bid/ask {best_bid}/{best_ask} ticks outside [0, {_MAX_PX}]")
        x = (reservation - 0.5 * spread) / self.tick_size
        y = (reservation + 0.5 * spread) / self.tick_size
        if not (fabs(x) <= MAX_TICKS and fabs(y) <= MAX_TICKS):
            raise ValueError(f"quotes outside the price bound +-{_MAX_PX} ticks (MAX_QUOTE_TICKS, the book's bound, "
                             f"inside int64 ticks): reservation {reservation!r}, spread {spread!r}, "
                             f"tick {self.tick_size!r}")
        bid = <int64_t>floor(x + _tol(x))
        ask = <int64_t>ceil(y - _tol(y))
        if bid >= ask:
            if <double>bid * self.tick_size >= mid:
                bid = ask - 1
            else:
                ask = bid + 1
        if best_ask > 0 and bid > best_ask - 1:
            bid = best_ask - 1
        if best_bid > 0 and ask < best_bid + 1:
            ask = best_bid + 1
        if bid < 0:
            bid = 0
        if ask < 1:
            ask = 1
        if ask > _MAX_PX:                                    # bid < ask: both within the bound after this
            raise ValueError(f"ask {ask} ticks above the price bound {_MAX_PX} (MAX_QUOTE_TICKS, the book's bound, "
                             f"inside int64 ticks): reservation {reservation!r}, spread {spread!r}, "
                             f"tick {self.tick_size!r}")
        self.reservation = reservation
        self.spread = spread
        self.bid_ticks = bid
        self.ask_ticks = ask
        return 0

    cpdef int compute(self, int64_t ts_ns, double mid, double q, double sigma,
                      int64_t best_bid, int64_t best_ask) except -1:
        """Compute quotes into ``bid_ticks`` / ``ask_ticks``; implemented by the subclasses.

        Raises NotImplementedError on a subclass that does not implement it.
        """
        raise NotImplementedError("QuoteModel.compute")


#: AvellanedaStoikov modes: the finite cycle that restarts every T; a fixed time left T - t = T (a perpetual has
#: no close); the infinite-horizon reservation prices of section 2.4 of the paper.
HORIZON_CYCLE = 0
HORIZON_FIXED = 1
HORIZON_INFINITE = 2
HORIZON_MODES = {"cycle": HORIZON_CYCLE, "fixed": HORIZON_FIXED, "infinite": HORIZON_INFINITE}


cdef class AvellanedaStoikov(QuoteModel):
    """Avellaneda & Stoikov (2008) quotes: finite cycles that restart, a fixed time left, or the infinite horizon.

    Source: M. Avellaneda, S. Stoikov, "High-frequency trading in a limit order book", Quantitative Finance
    8(3):217-224, 2008; preprint equations (3.17) and (3.18) (journal (29) and (30)), for one fill of Delta:

        reservation price   r = s - q gamma sigma^2 (T - t)                                            (3.17)
        total spread        gamma sigma^2 Delta (T - t) + (2 / (gamma Delta)) ln(1 + gamma Delta / k)   (3.18)
        quotes              bid = r - spread/2,  ask = r + spread/2

    sigma is **squared**, as in the paper. Hummingbot's ``avellaneda_market_making`` (and many blog posts
    that follow it) uses sigma not squared (``mid - q gamma vol tau``); that is a departure from the paper,
    and with sigma = 2 it halves the inventory skew. The spread does not depend on q.

    Units: s, r and spreads in quote currency (per base unit); sigma in quote currency per sqrt(second); k in
    1 / quote currency; T - t in seconds; q the signed inventory in **base units** and Delta the order size in
    base units. The paper counts q in shares and trades one share (Delta = 1); writing the model in lots of
    Delta base units (q' = q / Delta, s' = s Delta, sigma' = sigma Delta, k' = k / Delta) and converting back gives
    the forms above: the skew q gamma sigma^2 (T - t) does not depend on Delta, so gamma (1 / (quote currency x
    base unit)) keeps its meaning whatever ``order_qty`` is, while the spread is that of a fill of Delta.

    Modes (``mode``):

    - ``HORIZON_CYCLE``: t is measured from a cycle start that the first :meth:`compute` sets and that moves
      forward by whole multiples of T, so T - t runs from T down towards 0 and jumps back to T every T seconds
      of event time. An event earlier than the cycle start counts as t = 0.
    - ``HORIZON_FIXED``: T - t = T at every call (a perpetual has no close; hummingbot's "infinite" mode is
      this with its own units).
    - ``HORIZON_INFINITE``: the paper's section 2.4 reservation bid and ask with the discount
      omega = (gamma sigma)^2 (q_max + Delta)^2 / 2 (the paper's choice, with its q_max), in lots of Delta:

          r_a = s + (1 / (gamma Delta)) ln(1 + (Delta - 2q) Delta / ((q_max + Delta)^2 - q^2))
          r_b = s + (1 / (gamma Delta)) ln(1 + (-Delta - 2q) Delta / ((q_max + Delta)^2 - q^2))

      (gamma^2 sigma^2 cancels between numerator and omega), then bid = r_b - (1/(gamma Delta)) ln(1 + gamma
      Delta / k) and ask = r_a + the same, so the reservation is (r_a + r_b) / 2 and the spread r_a - r_b + the
      constant spread. q is clamped to [-q_max, q_max]. At q = q_max the bid's log argument is 0 and no bid is
      quoted (``bid_ticks = 0``); the ask's argument stays above 2 / (2 q_max / Delta + 1) > 0 on the interval
      (CARA utility makes the two sides asymmetric), so an ask is always quoted (a guard sets ``ask_ticks = 0``
      should rounding ever make its argument non-positive).

    ``constant_spread_only``: the total spread is (2 / (gamma Delta)) ln(1 + gamma Delta / k) alone, the time
    term kept only in the skew: how the paper's section 3.3 tables behave (1.2908 / 1.3289 / 1.1507 for gamma
    0.1 / 0.01 / 0.5, k = 1.5; ``docs/quoting_models.md``).

    The total spread is then clamped to [min_spread_bps, max_spread_bps] of s, rounded to ticks away from
    the mid and kept from crossing the book (see :class:`QuoteModel`).

    Parameters
    ----------
    gamma : float
        Risk aversion (1 / (quote currency x base unit)), > 0.
    kappa : float
        Decay k of the fill intensity A exp(-k delta) (1 / quote currency), > 0.
    horizon_s : float
        T (seconds), > 0: the cycle length, or the fixed time left.
    min_spread_bps, max_spread_bps : float
        Clamps of the total spread (bps of the mid), 0 <= min <= max; max may be ``inf``.
    tick_size : float
        Price tick (quote currency), > 0.
    order_qty_delta : float
        Delta, the order size (base units), > 0; 1 for the paper's share units.
    mode : int
        HORIZON_CYCLE (default), HORIZON_FIXED or HORIZON_INFINITE.
    constant_spread_only : bool
        Spread without the time term (default False: (3.18) as written).
    q_max : float
        Infinite mode: inventory bound (base units), > 0 (the engine's ``max_inventory``); else unused.

    Raises
    ------
    ValueError
        A parameter is out of range (the message names it).
    """

    def __init__(self, double gamma, double kappa, double horizon_s, double min_spread_bps,
                 double max_spread_bps, double tick_size, double order_qty_delta=1.0, int mode=HORIZON_CYCLE,
                 bint constant_spread_only=False, double q_max=1.0):
        _check_positive(gamma, "gamma")
        _check_positive(kappa, "kappa")
        _check_positive(horizon_s, "horizon_s")
        _check_positive(order_qty_delta, "order_qty_delta")
        _check_positive(q_max, "q_max")
        if mode not in (HORIZON_CYCLE, HORIZON_FIXED, HORIZON_INFINITE):
            raise ValueError(f"mode must be HORIZON_CYCLE, HORIZON_FIXED or HORIZON_INFINITE, got {mode!r}")
        if not (horizon_s * 1e9 < 9.2e18):
            raise ValueError(f"horizon_s is too large for int64 ns, got {horizon_s!r}")
        self._init_limits(min_spread_bps, max_spread_bps, tick_size)
        self._horizon_ns = llround(horizon_s * 1e9)
        if self._horizon_ns < 1:
            raise ValueError(f"horizon_s must be at least 1 ns, got {horizon_s!r}")
        self.gamma = gamma
        self.kappa = kappa
        self.horizon_s = horizon_s
        self.order_qty_delta = order_qty_delta
        self.mode = mode
        self.constant_spread_only = constant_spread_only
        self.q_max = q_max
        self.constant_spread = 2.0 / (gamma * order_qty_delta) * log1p(gamma * order_qty_delta / kappa)
        if not isfinite(self.constant_spread):
            raise ValueError(f"constant spread not finite for gamma={gamma!r}, kappa={kappa!r}, "
                             f"order_qty_delta={order_qty_delta!r}")
        self.time_left_s = 0.0 if mode == HORIZON_INFINITE else horizon_s
        self._started = False

    def __repr__(self):
        return (f"AvellanedaStoikov(gamma={self.gamma!r}, kappa={self.kappa!r}, horizon_s={self.horizon_s!r}, "
                f"mode={self.mode}, bid_ticks={self.bid_ticks}, ask_ticks={self.ask_ticks})")

    cpdef int compute(self, int64_t ts_ns, double mid, double q, double sigma,
                      int64_t best_bid, int64_t best_ask) except -1:
        """Compute the A-S quotes at event time ``ts_ns``.

        Parameters
        ----------
        ts_ns : int
            Event time (ns since the epoch); drives the cycle clock (cycle mode).
        mid : float
            Mid price s, or the fair price quoted around (quote currency), finite and > 0.
        q : float
            Inventory (base units, signed, finite).
        sigma : float
            Volatility (quote currency per sqrt(second)), finite and >= 0; squared here, as in the paper.
        best_bid, best_ask : int
            Best bid and ask of the book (ticks); 0 = unknown, not used.

        Returns
        -------
        int
            0. Results are in ``reservation``, ``spread``, ``time_left_s``, ``bid_ticks`` and ``ask_ticks``.

        Raises
        ------
        ValueError
            mid, q or sigma is out of range, best_bid/best_ask is outside ``[0, MAX_PRICE_TICKS]``, or a
            quote would lie beyond ``MAX_QUOTE_TICKS`` (2**53, the book's price bound).
        """
        cdef int128 elapsed
        cdef double var_term, spread
        _check_inputs(mid, q, sigma)
        if self.mode == HORIZON_INFINITE:
            return self._infinite(mid, q, best_bid, best_ask)
        if self.mode == HORIZON_CYCLE:
            if not self._started:
                self._started = True
                self.cycle_start_ns = ts_ns
            elapsed = <int128>ts_ns - self.cycle_start_ns      # 128-bit: any two int64 times
            if elapsed < 0:
                elapsed = 0
            elif elapsed >= self._horizon_ns:
                # the new start is in (ts - horizon, ts], between the old start and ts: it fits int64
                self.cycle_start_ns = <int64_t>(self.cycle_start_ns
                                                + (elapsed // self._horizon_ns) * self._horizon_ns)
                elapsed = <int128>ts_ns - self.cycle_start_ns
            self.time_left_s = <double>(self._horizon_ns - elapsed) * 1e-9
        var_term = self.gamma * sigma * sigma * self.time_left_s           # gamma sigma^2 (T - t)
        spread = self.constant_spread
        if not self.constant_spread_only:
            spread = spread + var_term * self.order_qty_delta              # (3.18), a fill of Delta
        return self._set_quotes(mid, mid - q * var_term, spread, best_bid, best_ask)     # (3.17)

    cdef int _infinite(self, double mid, double q, int64_t best_bid, int64_t best_ask) except -1:
        # Section 2.4 with omega = (gamma sigma)^2 (q_max + Delta)^2 / 2 (see the class docstring).
        cdef double d = self.order_qty_delta, qm = self.q_max, g = self.gamma * d
        cdef double denom, arg_a, arg_b, ra, rb, half_c = 0.5 * self.constant_spread
        cdef bint no_bid = False, no_ask = False
        if q > qm:
            q = qm
        elif q < -qm:
            q = -qm
        denom = (qm + d) * (qm + d) - q * q                 # > 0: |q| <= q_max
        arg_a = 1.0 + (d - 2.0 * q) * d / denom              # >= 2 / (2 q_max / Delta + 1) on [-q_max, q_max]
        arg_b = 1.0 + (-d - 2.0 * q) * d / denom             # 0 at q = +q_max: no bid
        if arg_a <= 1e-12:
            no_ask = True
            arg_a = 1.0 + (d + 2.0 * qm) * d / denom         # placeholder: the mirrored side, dropped below
        if arg_b <= 1e-12:
            no_bid = True
            arg_b = 1.0 + (-d + 2.0 * qm) * d / denom
        ra = mid + log(arg_a) / g
        rb = mid + log(arg_b) / g
        self._set_quotes(mid, 0.5 * (ra + rb), ra - rb + self.constant_spread, best_bid, best_ask)
        if no_bid:
            self.bid_ticks = 0
        if no_ask:
            self.ask_ticks = 0
        return 0


cdef class GLFT(QuoteModel):
    """Gueant-Lehalle-Fernandez-Tapia infinite-horizon quotes, in hftbacktest's c1/c2 form.

    Sources: O. Gueant, C.-A. Lehalle, J. Fernandez-Tapia, "Dealing with the inventory risk: a solution to the
    market making problem", Math. Financ. Econ. 7(4):477-507, 2013; the generalised form is eqs (4.6)-(4.7)
    of O. Gueant, "Optimal market making", arXiv:1605.01862, as written in the hftbacktest tutorial "GLFT
    Market Making Model and Grid Trading":

        c1          = (1 / (xi Delta)) ln(1 + xi Delta / k)
        c2          = sqrt( gamma / (2 A Delta k) * (1 + xi Delta / k)^(k / (xi Delta) + 1) )
        half_spread = c1 + (Delta / 2) sigma c2,        skew = sigma c2
        bid = fair - (half_spread + skew q),            ask = fair + (half_spread - skew q)

    with fair = the mid. As xi -> 0, c1 -> 1/k and (1 + xi Delta/k)^(k/(xi Delta)) -> e, so
    c2 -> sqrt(gamma e / (2 A Delta k)); xi = 0 uses these limits, and small xi is computed with
    ``log1p`` so it approaches them smoothly. xi = gamma is the CARA model of GLFT 2013.

    Here the quotes are expressed as reservation = mid - skew q and total spread = 2 half_spread, then
    clamped, rounded and kept from crossing the book exactly as :class:`AvellanedaStoikov` does (see
    :class:`QuoteModel`). The hftbacktest tutorial measures sigma, A and k in ticks; here they are in quote
    currency and seconds: sigma in quote currency per sqrt(second), A in fills per second, k in 1 / quote
    currency. q and Delta are in base units (Delta = the order size); gamma and xi are in 1 / (quote currency x
    base unit), as for :class:`AvellanedaStoikov`, so they do not change meaning with ``order_qty``.

    Parameters
    ----------
    gamma : float
        Risk aversion, > 0.
    kappa : float
        Decay k of the fill intensity A exp(-k delta) (1 / quote currency), > 0.
    A : float
        Fill intensity at zero distance (fills per second), > 0.
    order_qty_delta : float
        Order size Delta (unit of q), > 0.
    xi : float
        Risk-aversion parameter of the objective, >= 0.
    min_spread_bps, max_spread_bps : float
        Clamps of the total spread (bps of the mid), 0 <= min <= max; max may be ``inf``.
    tick_size : float
        Price tick (quote currency), > 0.

    Raises
    ------
    ValueError
        A parameter is out of range (the message names it).
    """

    def __init__(self, double gamma, double kappa, double A, double order_qty_delta, double xi,
                 double min_spread_bps, double max_spread_bps, double tick_size):
        _check_positive(gamma, "gamma")
        _check_positive(kappa, "kappa")
        _check_positive(A, "A")
        _check_positive(order_qty_delta, "order_qty_delta")
        if not (xi >= 0.0 and isfinite(xi)):
            raise ValueError(f"xi must be finite and >= 0, got {xi!r}")
        self._init_limits(min_spread_bps, max_spread_bps, tick_size)
        self.gamma = gamma
        self.order_qty_delta = order_qty_delta
        self.xi = xi
        self.set_intensity(A, kappa)

    cpdef int set_intensity(self, double A, double kappa) except -1:
        """Set the fill intensity lambda(delta) = A exp(-kappa delta) (A fills per second, kappa 1 / quote
        currency, both > 0 and finite) and recompute c1 / c2: the online re-estimation of A and kappa
        (hftbacktest's GLFT tutorial refits them every few seconds). Raises ValueError (out of range, or c1 / c2
        not finite); the model is then unchanged."""
        cdef double u, power, c1, c2, xi = self.xi, delta = self.order_qty_delta
        _check_positive(kappa, "kappa")
        _check_positive(A, "A")
        u = xi * delta / kappa
        if u == 0.0:
            c1 = 1.0 / kappa
            power = M_E
        else:
            c1 = log1p(u) / (xi * delta)
            power = exp((kappa / (xi * delta) + 1.0) * log1p(u))   # (1 + u)^(k/(xi Delta) + 1)
        c2 = sqrt(self.gamma / (2.0 * A * delta * kappa) * power)
        if not (isfinite(c1) and isfinite(c2)):
            raise ValueError(f"c1/c2 overflow for gamma={self.gamma!r}, kappa={kappa!r}, A={A!r}, "
                             f"order_qty_delta={delta!r}, xi={xi!r}")
        self.A, self.kappa, self.c1, self.c2 = A, kappa, c1, c2
        return 0

    def __repr__(self):
        return (f"GLFT(c1={self.c1!r}, c2={self.c2!r}, xi={self.xi!r}, "
                f"bid_ticks={self.bid_ticks}, ask_ticks={self.ask_ticks})")

    cpdef int compute(self, int64_t ts_ns, double mid, double q, double sigma,
                      int64_t best_bid, int64_t best_ask) except -1:
        """Compute the GLFT quotes.

        Parameters
        ----------
        ts_ns : int
            Event time (ns); unused (the model does not depend on time), kept for one quote-model interface.
        mid : float
            Mid price, the fair value (quote currency), finite and > 0.
        q : float
            Inventory (base units, the unit of ``order_qty_delta``; signed, finite).
        sigma : float
            Volatility (quote currency per sqrt(second)), finite and >= 0.
        best_bid, best_ask : int
            Best bid and ask of the book (ticks); 0 = unknown, not used.

        Returns
        -------
        int
            0. Results are in ``half_spread``, ``skew``, ``reservation``, ``spread``, ``bid_ticks``, ``ask_ticks``.

        Raises
        ------
        ValueError
            mid, q or sigma is out of range, best_bid/best_ask is outside ``[0, MAX_PRICE_TICKS]``, or a
            quote would lie beyond ``MAX_QUOTE_TICKS`` (2**53, the book's price bound).
        """
        _check_inputs(mid, q, sigma)
        self.half_spread = self.c1 + 0.5 * self.order_qty_delta * sigma * self.c2
        self.skew = sigma * self.c2
        return self._set_quotes(mid, mid - self.skew * q, 2.0 * self.half_spread, best_bid, best_ask)


cdef class TradeIntensity:
    """Estimator of the fill intensity lambda(delta) = A exp(-kappa delta) from public trades.

    The intensity counts **arrivals** of aggressive orders, not trade prints: one market order that sweeps
    several levels prints several trades with one exchange time (on the bundled USDⓈ-M recording most prints
    come in such bursts), so the prints of one aggressor side at one exchange time are one arrival, at the
    depth of the deepest print, measured on that side from the mid before the burst: ``side * (price -
    mid)`` (a buy aggressor lifts asks above the mid; a print on the wrong side of the mid, a stale mid,
    counts at depth 0). Without a side (``side = 0``) every print is an arrival at ``|price - mid|``.

    Each arrival's depth is bucketed by ``bucket_width`` and kept for ``window_s`` of event time. A resting
    quote at depth ``d_i = i * bucket_width`` would have been reached by every arrival at least that deep, so

        lambda(d_i) = (arrivals with depth >= d_i in the window) / (window seconds)

    (a tail count, as in the hftbacktest GLFT tutorial; hummingbot's ``TradingIntensityIndicator`` fits
    traded amount per distance instead). :meth:`fit` regresses ln lambda(d_i) = ln A - kappa d_i by least
    squares over the depths with at least ``min_count`` arrivals. Depths below the usual half-spread see
    every arrival, so a ``bucket_width`` around the half-spread avoids a flat start that biases kappa down.

    Only :meth:`on_trade` is meant for the per-event path (O(1) amortised, no Python objects).

    Parameters
    ----------
    window_s : float
        Rolling window (seconds of event time), > 0.
    bucket_width : float
        Distance bucket width (quote currency), > 0.
    n_buckets : int
        Number of buckets (>= 2); trades beyond the last count in the last.
    seed_A : float
        A returned until a fit succeeds (trades per second), > 0.
    seed_kappa : float
        kappa returned until a fit succeeds (1 / quote currency), > 0.
    min_count : int
        Least tail count for a depth to enter the fit, >= 1 (default 5).
    min_points : int
        Least number of depths for a fit, 2 <= min_points <= n_buckets (default 3).
    capacity : int
        Most trades held (default 65536); beyond it the oldest is dropped and the window shortened to match.

    Raises
    ------
    ValueError
        A parameter is out of range (the message names it).
    MemoryError
        The ring buffer cannot be allocated.
    """

    def __cinit__(self):
        self._ts = NULL
        self._bucket = NULL
        self._counts = NULL

    def __init__(self, double window_s, double bucket_width, int n_buckets, double seed_A, double seed_kappa,
                 int min_count=5, int min_points=3, Py_ssize_t capacity=65536):
        cdef int i
        _check_positive(window_s, "window_s")
        _check_positive(bucket_width, "bucket_width")
        _check_positive(seed_A, "seed_A")
        _check_positive(seed_kappa, "seed_kappa")
        if not (window_s * 1e9 < 9.2e18):
            raise ValueError(f"window_s is too large for int64 ns, got {window_s!r}")
        if n_buckets < 2:
            raise ValueError(f"n_buckets must be >= 2, got {n_buckets}")
        if min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {min_count}")
        if min_points < 2 or min_points > n_buckets:
            raise ValueError(f"min_points must be in [2, n_buckets={n_buckets}], got {min_points}")
        if capacity < 1 or capacity > MAX_TRADES_CAPACITY:
            raise ValueError(f"capacity must be in [1, {MAX_TRADES_CAPACITY}], got {capacity}")
        if n_buckets > MAX_TRADES_CAPACITY:
            raise ValueError(f"n_buckets must be <= {MAX_TRADES_CAPACITY}, got {n_buckets}")
        self.window_s = window_s
        self.bucket_width = bucket_width
        self.n_buckets = n_buckets
        self.min_count = min_count
        self.min_points = min_points
        self.capacity = capacity
        self.A = seed_A
        self.kappa = seed_kappa
        self.n_points = 0
        self._window_ns = llround(window_s * 1e9)
        if self._window_ns < 1:
            raise ValueError(f"window_s must be at least 1 ns, got {window_s!r}")
        PyMem_Free(self._ts)
        PyMem_Free(self._bucket)
        PyMem_Free(self._counts)
        self._ts = <int64_t*>PyMem_Malloc(capacity * sizeof(int64_t))
        self._bucket = <int*>PyMem_Malloc(capacity * sizeof(int))
        self._counts = <int64_t*>PyMem_Malloc(n_buckets * sizeof(int64_t))
        if self._ts == NULL or self._bucket == NULL or self._counts == NULL:
            raise MemoryError()
        for i in range(n_buckets):
            self._counts[i] = 0
        self._head = 0
        self._size = 0
        self._started = False
        self._burst_side = 0
        self._burst_ts = 0
        self._burst_mid = 0.0
        self.prints = 0
        self.arrivals = 0

    def __dealloc__(self):
        PyMem_Free(self._ts)
        PyMem_Free(self._bucket)
        PyMem_Free(self._counts)

    def __repr__(self):
        return (f"TradeIntensity(A={self.A!r}, kappa={self.kappa!r}, n_trades={self._size}, "
                f"n_points={self.n_points})")

    @property
    def n_trades(self):
        """Arrivals currently in the window (as of the last print or fit): bursts, or prints without a side."""
        return self._size

    @property
    def counts(self):
        """Trades per distance bucket in the window (list; allocates, for tests and tools)."""
        return [self._counts[i] for i in range(self.n_buckets)]

    cdef void _expire(self, int64_t now_ns) noexcept:
        # Drop trades at or before now - window.
        cdef int64_t cutoff = sat_sub(now_ns, self._window_ns)
        while self._size > 0 and self._ts[self._head] <= cutoff:
            self._counts[self._bucket[self._head]] -= 1
            self._head += 1
            if self._head == self.capacity:
                self._head = 0
            self._size -= 1

    cpdef void on_trade(self, int64_t ts_ns, double price, double mid, int side=0) noexcept:
        """Record a trade print at exchange time ``ts_ns``.

        Parameters
        ----------
        ts_ns : int
            The trade's exchange time (ns); prints of one side at one time are one arrival (a burst). A print
            earlier than the last recorded one is ignored.
        price : float
            Trade price (quote currency); ignored unless finite and > 0.
        mid : float
            Mid price just before the trade (quote currency); the print is ignored unless finite and > 0. In a
            burst, the mid before its first print is used.
        side : int
            Aggressor side: +1 buy (Binance ``m`` false), -1 sell (``m`` true), 0 unknown (every print an
            arrival at ``|price - mid|``); any other value: the print is ignored.
        """
        cdef double d
        cdef int b
        cdef Py_ssize_t slot
        if not (price > 0.0 and isfinite(price) and mid > 0.0 and isfinite(mid)):
            return
        if side != 0 and side != 1 and side != -1:
            return
        if not self._started:
            self._started = True
            self._first_ns = ts_ns
            self._from_ns = ts_ns
            self._last_ns = ts_ns
        elif ts_ns < self._last_ns:
            return
        self._last_ns = ts_ns
        self._expire(ts_ns)
        self.prints += 1
        if side != 0 and self._size > 0 and ts_ns == self._burst_ts and side == self._burst_side:
            # the same aggressive order sweeping on: its arrival reaches this print's depth
            d = side * (price - self._burst_mid) / self.bucket_width
            if d < 0.0:
                d = 0.0
            b = self.n_buckets - 1 if d >= <double>(self.n_buckets - 1) else <int>d
            slot = self._head + self._size - 1
            if slot >= self.capacity:
                slot -= self.capacity
            if b > self._bucket[slot]:
                self._counts[self._bucket[slot]] -= 1
                self._counts[b] += 1
                self._bucket[slot] = b
            return
        if side != 0:
            self._burst_ts, self._burst_side, self._burst_mid = ts_ns, side, mid
            d = side * (price - mid) / self.bucket_width
            if d < 0.0:
                d = 0.0
        else:
            self._burst_side = 0
            d = fabs(price - mid) / self.bucket_width
        b = self.n_buckets - 1 if d >= <double>(self.n_buckets - 1) else <int>d
        if self._size == self.capacity:                  # full: drop the oldest, the window starts after it
            self._from_ns = self._ts[self._head]
            self._counts[self._bucket[self._head]] -= 1
            self._head += 1
            if self._head == self.capacity:
                self._head = 0
            self._size -= 1
        slot = self._head + self._size
        if slot >= self.capacity:
            slot -= self.capacity
        self._ts[slot] = ts_ns
        self._bucket[slot] = b
        self._size += 1
        self._counts[b] += 1
        self.arrivals += 1

    def fit(self, now_ns=None):
        """Fit A and kappa over the window ending at ``now_ns``.

        Least squares of ln lambda(d_i) = ln A - kappa d_i over the depths d_i = i * bucket_width whose tail
        count is at least ``min_count`` (as the hftbacktest GLFT tutorial's linear regression).

        Parameters
        ----------
        now_ns : int, optional
            Event time at which the window ends (ns); default, and at least, the last trade's time.

        Returns
        -------
        tuple of float
            ``(A, kappa)``: A in trades per second, kappa in 1 / quote currency. Until one full window has
            passed since the first trade, or with fewer than ``min_points`` usable depths, or when the fit
            gives kappa <= 0, the current values are returned unchanged (the seeds until a fit succeeds)
            and ``n_points`` is 0.
        """
        cdef int64_t now = self._last_ns
        cdef int64_t start
        cdef double span_s, x, y, mx = 0.0, my = 0.0, sxx = 0.0, sxy = 0.0, slope, a, k
        cdef int64_t tail = 0
        cdef int i, n = 0
        self.n_points = 0
        if not self._started:
            return self.A, self.kappa
        if now_ns is not None and now_ns > now:
            if now_ns > _INT64_MAX_PY:
                raise ValueError(f"now_ns {now_ns} is past the int64 ns range")
            now = now_ns
        self._expire(now)
        # now >= last trade >= first trade: the unsigned difference is exact
        if <uint64_t>now - <uint64_t>self._first_ns < <uint64_t>self._window_ns:
            return self.A, self.kappa
        start = sat_sub(now, self._window_ns)
        if self._from_ns > start:
            start = self._from_ns
        if now <= start:
            return self.A, self.kappa
        span_s = <double>(<uint64_t>now - <uint64_t>start) * 1e-9
        # Tail counts are non-increasing in depth, so the usable depths are a prefix 0..n-1.
        for i in range(self.n_buckets):
            tail += self._counts[i]
        for i in range(self.n_buckets):
            if tail < self.min_count:
                break
            mx += i * self.bucket_width
            my += log(<double>tail / span_s)
            n += 1
            tail -= self._counts[i]
        if n < self.min_points:
            return self.A, self.kappa
        mx /= n
        my /= n
        tail = 0
        for i in range(self.n_buckets):
            tail += self._counts[i]
        for i in range(n):
            x = i * self.bucket_width - mx
            y = log(<double>tail / span_s) - my
            sxx += x * x
            sxy += x * y
            tail -= self._counts[i]
        slope = sxy / sxx
        k = -slope
        a = exp(my - slope * mx)
        if not (k > 0.0 and isfinite(k) and a > 0.0 and isfinite(a)):
            return self.A, self.kappa
        self.A = a
        self.kappa = k
        self.n_points = n
        return a, k
