"""Pure-Python reference of :mod:`mmcore_ext.quoting` (``math`` only), used by the differential tests.

Units as in the compiled module: prices and spreads in quote currency, sigma in price per sqrt(second),
gamma and kappa in 1/quote currency, times in seconds (``_s``) or nanoseconds (``_ns``), q in units of
order size (signed), quotes in integer ticks. Formula sources are in ``docs/quoting_models.md`` and in the
docstrings of :mod:`mmcore_ext.quoting`.
"""
from __future__ import annotations

import math

#: Tick-rounding tolerance: a quote within this many ticks of a whole tick is on that tick.
TICK_TOL = 1e-9
#: Above ~5.6e5 ticks the tolerance grows to this many ulps of the tick count (see ``to_ticks``).
TICK_TOL_ULPS = 8.0
#: Largest quote (ticks): 2**53, the book's price bound (``mmcore_ext.quoting.MAX_QUOTE_TICKS``).
MAX_QUOTE_TICKS = 2**53


# --- Avellaneda & Stoikov (2008), preprint eqs (3.17), (3.18) ---

def as_reservation_price(s: float, q: float, gamma: float, sigma: float, time_left_s: float) -> float:
    """r = s - q gamma sigma^2 (T - t)  (A-S 2008, eq. 3.17; sigma squared)."""
    return s - q * (gamma * sigma * sigma * time_left_s)


def as_constant_spread(gamma: float, kappa: float) -> float:
    """(2 / gamma) ln(1 + gamma / kappa): the time-independent part of eq. (3.18)."""
    return 2.0 / gamma * math.log1p(gamma / kappa)


def as_spread(gamma: float, kappa: float, sigma: float, time_left_s: float) -> float:
    """delta_a + delta_b = gamma sigma^2 (T - t) + (2 / gamma) ln(1 + gamma / kappa)  (eq. 3.18)."""
    return gamma * sigma * sigma * time_left_s + as_constant_spread(gamma, kappa)


def cycle_time_left_s(ts_ns: int, cycle_start_ns: int, horizon_ns: int) -> tuple[float, int]:
    """Return ``(T - t in seconds, new cycle start)``; the cycle restarts every ``horizon_ns`` of event time."""
    elapsed = ts_ns - cycle_start_ns
    if elapsed < 0:
        elapsed = 0
    elif elapsed >= horizon_ns:
        cycle_start_ns += (elapsed // horizon_ns) * horizon_ns
        elapsed = ts_ns - cycle_start_ns
    return (horizon_ns - elapsed) * 1e-9, cycle_start_ns


# --- Gueant-Lehalle-Fernandez-Tapia, hftbacktest form (Gueant 2017, eqs 4.6-4.7) ---

def glft_coefficients(gamma: float, kappa: float, A: float, delta: float, xi: float) -> tuple[float, float]:
    """Return ``(c1, c2)``; xi = 0 uses the limits c1 = 1/kappa, c2 = sqrt(gamma e / (2 A delta kappa))."""
    if xi == 0.0:
        c1 = 1.0 / kappa
        power = math.e
    else:
        u = xi * delta / kappa
        c1 = math.log1p(u) / (xi * delta)
        power = (1.0 + u) ** (kappa / (xi * delta) + 1.0)
    c2 = math.sqrt(gamma / (2.0 * A * delta * kappa) * power)
    return c1, c2


def glft_half_spread_skew(c1: float, c2: float, sigma: float, delta: float) -> tuple[float, float]:
    """Return ``(half_spread, skew)`` = ``(c1 + delta/2 sigma c2, sigma c2)``."""
    return c1 + 0.5 * delta * sigma * c2, sigma * c2


def glft_bid_ask(fair: float, q: float, half_spread: float, skew: float) -> tuple[float, float]:
    """bid = fair - (half_spread + skew q), ask = fair + (half_spread - skew q) (hftbacktest tutorial)."""
    return fair - (half_spread + skew * q), fair + (half_spread - skew * q)


# --- shared clamping, rounding and no-cross ---

def clamp_spread(spread: float, mid: float, min_spread_bps: float, max_spread_bps: float) -> float:
    """Clamp a total spread (quote ccy) to [min, max] bps of the mid."""
    return min(max(spread, min_spread_bps * 1e-4 * mid), max_spread_bps * 1e-4 * mid)


def _tol(x: float) -> float:
    return max(TICK_TOL, TICK_TOL_ULPS * 2.220446049250313e-16 * abs(x))


def to_ticks(bid: float, ask: float, tick: float) -> tuple[int, int]:
    """Round away from the mid: bid down, ask up; a value within the tolerance of a whole tick stays on it."""
    x = bid / tick
    y = ask / tick
    return math.floor(x + _tol(x)), math.ceil(y - _tol(y))


def finish_quotes(mid: float, bid_ticks: int, ask_ticks: int, tick: float,
                  best_bid: int, best_ask: int) -> tuple[int, int]:
    """Apply the rules that follow rounding, in order, each of which only widens the quotes.

    1. bid == ask (a sub-tick spread rounded onto one tick): keep the tick on its side of the mid, move the other.
    2. Never cross the book: bid <= best_ask - 1 and ask >= best_bid + 1 (a best of 0 is unknown).
    3. bid >= 0 (0 = no bid) and ask >= 1.
    """
    if bid_ticks >= ask_ticks:
        if bid_ticks * tick >= mid:
            bid_ticks = ask_ticks - 1
        else:
            ask_ticks = bid_ticks + 1
    if best_ask > 0 and bid_ticks > best_ask - 1:
        bid_ticks = best_ask - 1
    if best_bid > 0 and ask_ticks < best_bid + 1:
        ask_ticks = best_bid + 1
    return max(bid_ticks, 0), max(ask_ticks, 1)


def quote_ticks(mid: float, reservation: float, spread: float, min_spread_bps: float, max_spread_bps: float,
                tick: float, best_bid: int, best_ask: int) -> tuple[float, int, int]:
    """Full pipeline: clamp the spread, centre it on the reservation price, round, finish.

    Returns ``(clamped spread, bid_ticks, ask_ticks)``. Raises ValueError, as the compiled models, when a best
    price is outside ``[0, MAX_QUOTE_TICKS]``, a raw quote beyond ``+-MAX_QUOTE_TICKS`` ticks, or the finished
    ask above ``MAX_QUOTE_TICKS``.
    """
    if not (0 <= best_bid <= MAX_QUOTE_TICKS and 0 <= best_ask <= MAX_QUOTE_TICKS):
        raise ValueError(f"best bid/ask {best_bid}/{best_ask} ticks outside [0, {MAX_QUOTE_TICKS}]")
    spread = clamp_spread(spread, mid, min_spread_bps, max_spread_bps)
    lo, hi = (reservation - 0.5 * spread) / tick, (reservation + 0.5 * spread) / tick
    if not (abs(lo) <= MAX_QUOTE_TICKS and abs(hi) <= MAX_QUOTE_TICKS):
        raise ValueError(f"quotes outside the price bound +-{MAX_QUOTE_TICKS} ticks (MAX_QUOTE_TICKS, the book's "
                         f"bound, inside int64 ticks)")
    bid, ask = to_ticks(reservation - 0.5 * spread, reservation + 0.5 * spread, tick)
    bid, ask = finish_quotes(mid, bid, ask, tick, best_bid, best_ask)
    if ask > MAX_QUOTE_TICKS:
        raise ValueError(f"ask {ask} ticks above the price bound {MAX_QUOTE_TICKS} (MAX_QUOTE_TICKS, the book's "
                         f"bound, inside int64 ticks)")
    return spread, bid, ask


# --- EWMA volatility ---

def ewma_alpha(dt_s: float, half_life_s: float) -> float:
    """alpha = 1 - 2^(-dt / half_life): weight of a new sample after dt seconds of event time."""
    return 1.0 - 2.0 ** (-dt_s / half_life_s)


def ewma_sigma(events, half_life_s: float, sample_interval_ns: int, seed_sigma: float) -> tuple[float, int]:
    """Run the EWMA variance-rate estimator over ``[(ts_ns, mid), ...]``; return ``(sigma, samples)``."""
    var = seed_sigma * seed_sigma
    prev_ts = prev_mid = None
    samples = 0
    for ts, mid in events:
        if not (0.0 < mid < math.inf):
            continue
        if prev_ts is None:
            prev_ts, prev_mid = ts, mid
            continue
        if ts <= prev_ts or ts - prev_ts < sample_interval_ns:
            continue
        dt = (ts - prev_ts) * 1e-9
        var += ewma_alpha(dt, half_life_s) * ((mid - prev_mid) ** 2 / dt - var)
        samples += 1
        prev_ts, prev_mid = ts, mid
    return math.sqrt(var), samples


# --- fill intensity ---

def fit_intensity(depths, rates) -> tuple[float, float]:
    """Least squares of ln(rate) = ln A - kappa * depth; return ``(A, kappa)``."""
    n = len(depths)
    ys = [math.log(r) for r in rates]
    mx = sum(depths) / n
    my = sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in depths)
    sxy = sum((x - mx) * (y - my) for x, y in zip(depths, ys))
    slope = sxy / sxx
    return math.exp(my - slope * mx), -slope
