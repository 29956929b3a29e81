"""Tests of mmcore_ext.quoting against hand-computed values, the tables of docs/quoting_models.md, and the
pure-Python reference mmcore.reference.quoting."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from mmcore.reference import quoting as ref
from mmcore_ext.quoting import GLFT, AvellanedaStoikov, EwmaVolatility, QuoteModel, TradeIntensity

S = 1_000_000_000  # ns per second
INF = math.inf


def make_as(gamma=0.1, kappa=1.5, horizon_s=1.0, min_bps=0.0, max_bps=INF, tick=0.01):
    return AvellanedaStoikov(gamma, kappa, horizon_s, min_bps, max_bps, tick)


def make_glft(gamma=0.1, kappa=1.5, A=140.0, delta=1.0, xi=None, min_bps=0.0, max_bps=INF, tick=0.01):
    return GLFT(gamma, kappa, A, delta, gamma if xi is None else xi, min_bps, max_bps, tick)


# --- Avellaneda-Stoikov formulas ---

def test_as_quotes_match_hand_computed_eq_3_17_and_3_18():
    # s = 100, q = 2, gamma = 0.1, sigma = 2, k = 1.5, T = 1 s, evaluated at t = 0.5 s so T - t = 0.5.
    m = make_as(horizon_s=1.0)
    m.compute(0, 100.0, 2.0, 2.0, 0, 0)
    m.compute(S // 2, 100.0, 2.0, 2.0, 0, 0)
    assert m.time_left_s == pytest.approx(0.5)
    # gamma sigma^2 (T-t) = 0.1 * 4 * 0.5 = 0.2;  r = 100 - 2 * 0.2 = 99.6
    assert m.reservation == pytest.approx(99.6, abs=1e-12)
    # spread = 0.2 + (2/0.1) ln(1 + 0.1/1.5) = 0.2 + 20 * 0.0645385211 = 1.490770423
    assert m.spread == pytest.approx(0.2 + 20 * math.log(1 + 0.1 / 1.5), abs=1e-12)
    assert m.spread == pytest.approx(1.490770423, abs=1e-9)
    # bid = 99.6 - 0.7453852 = 98.8546148 -> 9885 ticks; ask = 100.3453852 -> 10035 ticks
    assert (m.bid_ticks, m.ask_ticks) == (9885, 10035)


@pytest.mark.parametrize("gamma, expected", [(0.1, 1.2908), (0.01, 1.3289), (0.5, 1.1507)])
def test_as_constant_spread_matches_paper_section_3_3_column(gamma, expected):
    m = make_as(gamma=gamma, kappa=1.5, tick=1e-6)
    assert round(m.constant_spread, 4) == expected
    assert round(ref.as_constant_spread(gamma, 1.5), 4) == expected
    m.compute(0, 100.0, 0.0, 0.0, 0, 0)          # sigma = 0 leaves only the constant part
    assert m.spread == pytest.approx(m.constant_spread, abs=1e-15)


def test_as_skew_uses_sigma_squared_not_sigma_as_in_hummingbot():
    # q gamma sigma^2 (T - t): sigma = 2 gives 4x the skew of sigma = 1 (hummingbot's unsquared vol: 2x).
    m = make_as(gamma=0.1, horizon_s=1.0, tick=1e-6)
    m.compute(0, 100.0, 1.0, 1.0, 0, 0)
    skew_1 = 100.0 - m.reservation
    m.compute(0, 100.0, 1.0, 2.0, 0, 0)
    skew_2 = 100.0 - m.reservation
    assert skew_1 == pytest.approx(0.1 * 1.0 * 1.0, abs=1e-12)
    assert skew_2 == pytest.approx(0.1 * 2.0 * 2.0, abs=1e-12)
    assert skew_2 / skew_1 == pytest.approx(4.0)


def test_as_spread_does_not_depend_on_inventory():
    m = make_as(tick=1e-6)
    spreads = set()
    for q in (-5.0, 0.0, 3.0):
        m.compute(0, 100.0, q, 2.0, 0, 0)
        spreads.add(m.spread)
    assert len(spreads) == 1
    m.compute(0, 100.0, 3.0, 2.0, 0, 0)
    assert m.reservation < 100.0                  # long inventory: quote lower
    m.compute(0, 100.0, -3.0, 2.0, 0, 0)
    assert m.reservation > 100.0


def test_as_cycle_restarts_every_horizon():
    m = make_as(horizon_s=10.0)
    t0 = 1_700_000_000 * S
    expected = [(0, 10.0), (4 * S, 6.0), (10 * S - 1, 1e-9), (10 * S, 10.0), (23 * S, 7.0), (60 * S, 10.0)]
    for offset, left in expected:
        m.compute(t0 + offset, 100.0, 1.0, 2.0, 0, 0)
        assert m.time_left_s == pytest.approx(left, abs=1e-12), offset
    assert m.cycle_start_ns == t0 + 60 * S
    # The restarted T - t feeds the skew: at 23 s, 7 s are left -> r = 100 - 1 * 0.1 * 4 * 7 = 97.2.
    m.compute(t0 + 63 * S, 100.0, 1.0, 2.0, 0, 0)
    assert m.reservation == pytest.approx(100.0 - 0.1 * 4.0 * 7.0, abs=1e-9)


def test_as_first_call_starts_cycle_and_earlier_event_counts_as_t_zero():
    m = make_as(horizon_s=10.0)
    m.compute(5 * S, 100.0, 0.0, 1.0, 0, 0)
    assert m.cycle_start_ns == 5 * S and m.time_left_s == 10.0
    m.compute(3 * S, 100.0, 0.0, 1.0, 0, 0)
    assert m.time_left_s == 10.0 and m.cycle_start_ns == 5 * S


def test_as_matches_reference_over_a_run():
    m = make_as(gamma=0.05, kappa=0.5, horizon_s=60.0, min_bps=0.5, max_bps=20.0, tick=0.1)
    rng = np.random.default_rng(7)
    start = None
    mid = 61800.0
    for i in range(2000):
        ts = 1_700_000_000 * S + i * 97_000_000
        mid += rng.normal(0, 0.5)
        q = float(rng.integers(-5, 6))
        sigma = float(rng.uniform(0, 4))
        m.compute(ts, mid, q, sigma, 0, 0)
        start = ts if start is None else start
        left, start = ref.cycle_time_left_s(ts, start, 60 * S)
        r = ref.as_reservation_price(mid, q, 0.05, sigma, left)
        spread, bid, ask = ref.quote_ticks(mid, r, ref.as_spread(0.05, 0.5, sigma, left), 0.5, 20.0, 0.1, 0, 0)
        assert (m.time_left_s, m.reservation, m.spread, m.bid_ticks, m.ask_ticks) == (left, r, spread, bid, ask)


# --- GLFT ---

GLFT_TABLE = [  # gamma, c1, c2, half_spread, skew   (Delta = 1, xi = gamma, A = 140, k = 1.5, sigma = 2)
    (0.1, 0.64539, 0.02586, 0.67124, 0.05172),
    (0.01, 0.66445, 0.00806, 0.67251, 0.01612),
    (0.5, 0.57536, 0.06134, 0.63670, 0.12268),
]


@pytest.mark.parametrize("gamma, c1, c2, half_spread, skew", GLFT_TABLE)
def test_glft_coefficients_match_table(gamma, c1, c2, half_spread, skew):
    g = make_glft(gamma=gamma, kappa=1.5, A=140.0, delta=1.0)
    g.compute(0, 100.0, 0.0, 2.0, 0, 0)
    assert (round(g.c1, 5), round(g.c2, 5)) == (c1, c2)
    assert (round(g.half_spread, 5), round(g.skew, 5)) == (half_spread, skew)
    rc1, rc2 = ref.glft_coefficients(gamma, 1.5, 140.0, 1.0, gamma)
    assert (rc1, rc2) == (pytest.approx(g.c1, rel=1e-13), pytest.approx(g.c2, rel=1e-13))
    # c1 is exactly half the constant A-S spread (1/gamma) ln(1 + gamma/k).
    assert g.c1 == pytest.approx(make_as(gamma=gamma, kappa=1.5).constant_spread / 2, rel=1e-14)


def test_glft_xi_zero_uses_limits_and_small_xi_approaches_them():
    gamma, k, A, delta = 0.1, 1.5, 140.0, 2.0
    g0 = make_glft(gamma, k, A, delta, xi=0.0)
    assert g0.c1 == 1 / k
    assert g0.c2 == pytest.approx(math.sqrt(gamma * math.e / (2 * A * delta * k)), rel=1e-15)
    g_small = make_glft(gamma, k, A, delta, xi=1e-12)
    assert g_small.c1 == pytest.approx(g0.c1, rel=1e-9)
    assert g_small.c2 == pytest.approx(g0.c2, rel=1e-9)
    g_mid = make_glft(gamma, k, A, delta, xi=1e-3)
    assert g_mid.c1 < g0.c1 and g_mid.c2 > g0.c2      # between the xi = 0 limit and xi = gamma
    assert g_mid.c2 < make_glft(gamma, k, A, delta, xi=gamma).c2


def test_glft_quotes_follow_hftbacktest_bid_ask_form():
    # bid = fair - (half_spread + skew q), ask = fair + (half_spread - skew q), q = 3, sigma = 2.
    g = make_glft(gamma=0.1, tick=1e-4)
    g.compute(0, 100.0, 3.0, 2.0, 0, 0)
    bid, ask = ref.glft_bid_ask(100.0, 3.0, g.half_spread, g.skew)
    assert g.reservation - g.spread / 2 == pytest.approx(bid, abs=1e-12)
    assert g.reservation + g.spread / 2 == pytest.approx(ask, abs=1e-12)
    # 100 - (0.6712438 + 3 * 0.0517172) = 99.1736046 -> 991736; 100 + (0.6712438 - 0.1551516) = 100.5160922 -> 1005161
    assert (g.bid_ticks, g.ask_ticks) == (math.floor(bid / 1e-4), math.ceil(ask / 1e-4)) == (991736, 1005161)


def test_glft_time_does_not_matter():
    g = make_glft()
    g.compute(0, 100.0, 1.0, 2.0, 0, 0)
    first = (g.bid_ticks, g.ask_ticks)
    g.compute(10_000 * S, 100.0, 1.0, 2.0, 0, 0)
    assert (g.bid_ticks, g.ask_ticks) == first


# --- clamps, rounding, no-cross (shared by both models) ---

def test_min_spread_clamp_in_bps_of_mid():
    # Raw A-S spread at sigma = 0 is 1.2908; min 500 bps of 100 = 5.0.
    m = make_as(min_bps=500.0, max_bps=1000.0)
    m.compute(0, 100.0, 0.0, 0.0, 0, 0)
    assert m.spread == pytest.approx(5.0, abs=1e-12)
    assert (m.bid_ticks, m.ask_ticks) == (9750, 10250)
    g = make_glft(min_bps=500.0, max_bps=1000.0)
    g.compute(0, 100.0, 0.0, 2.0, 0, 0)
    assert g.spread == pytest.approx(5.0, abs=1e-12) and g.spread > 2 * 0.67  # clamped up from 2 half_spread


def test_max_spread_clamp_in_bps_of_mid():
    # Raw spread 1.2908 + 0.1*4*1 = 1.6908; max 10 bps of 100 = 0.1.
    m = make_as(min_bps=0.0, max_bps=10.0)
    m.compute(0, 100.0, 0.0, 2.0, 0, 0)
    assert m.spread == pytest.approx(0.1, abs=1e-12)
    assert (m.bid_ticks, m.ask_ticks) == (9995, 10005)
    m.compute(0, 200.0, 0.0, 2.0, 0, 0)          # the clamp scales with the mid: 10 bps of 200 = 0.2
    assert m.spread == pytest.approx(0.2, abs=1e-12)


def test_tick_rounding_is_away_from_mid():
    # GLFT at q = 0: bid = 100 - 0.67124 = 99.32876 -> floor 9932; ask = 100.67124 -> ceil 10068.
    g = make_glft()
    g.compute(0, 100.0, 0.0, 2.0, 0, 0)
    assert (g.bid_ticks, g.ask_ticks) == (9932, 10068)
    # Tick 0.5: 99.32876 -> 198 (99.0), 100.67124 -> 202 (101.0).
    g = make_glft(tick=0.5)
    g.compute(0, 100.0, 0.0, 2.0, 0, 0)
    assert (g.bid_ticks, g.ask_ticks) == (198, 202)


def test_exact_tick_bid_is_not_pushed_a_tick_down_by_float_error():
    # mid 100, 40 bps -> spread 0.4, bid exactly 99.8 = 998 ticks of 0.1; in doubles 99.8 / 0.1 = 997.99999..
    m = make_as(min_bps=40.0, max_bps=40.0, tick=0.1)
    m.compute(0, 100.0, 0.0, 0.0, 0, 0)
    assert math.floor((100.0 - 0.5 * (40.0 * 1e-4 * 100.0)) / 0.1) == 997   # naive floor would push it
    assert (m.bid_ticks, m.ask_ticks) == (998, 1002)


def test_exact_tick_ask_is_not_pushed_a_tick_up_by_float_error():
    # mid 10, 260 bps -> spread 0.26, ask exactly 10.13 = 1013 ticks of 0.01; in doubles 1013.0000000000001.
    g = make_glft(min_bps=260.0, max_bps=260.0, tick=0.01)
    g.compute(0, 10.0, 0.0, 0.0, 0, 0)
    assert math.ceil((10.0 + 0.5 * (260.0 * 1e-4 * 10.0)) / 0.01) == 1014       # naive ceil would push it
    assert (g.bid_ticks, g.ask_ticks) == (987, 1013)


def test_value_just_beyond_tolerance_is_rounded_away():
    # 1e-7 ticks above a whole tick is not float error: the ask goes up one tick.
    m = make_as(min_bps=0.0, max_bps=INF, tick=1.0)
    m.compute(0, 1000.0, 0.0, 0.0, 0, 0)
    x = (m.reservation + 0.5 * m.spread)
    assert m.ask_ticks == math.ceil(x)
    assert ref.to_ticks(999.0 - 1e-7, 1001.0 + 1e-7, 1.0) == (998, 1002)
    assert ref.to_ticks(999.0 - 1e-10, 1001.0 + 1e-10, 1.0) == (999, 1001)


def test_sub_tick_spread_rounds_away_from_a_mid_on_a_tick():
    # Spread 0.001 bps of 100 = 1e-5 (1e-3 ticks of 0.01) around a mid on a tick: one tick each side.
    m = make_as(min_bps=0.001, max_bps=0.001, tick=0.01)
    m.compute(0, 100.0, 0.0, 0.0, 0, 0)
    assert (m.bid_ticks, m.ask_ticks) == (9999, 10001)


@pytest.mark.parametrize("mid, expected", [(100.0, (9999, 10000)), (100.0 - 3e-12, (9999, 10000)),
                                           (100.0 + 3e-12, (10000, 10001))])
def test_spread_within_tolerance_of_one_tick_still_gives_bid_below_ask(mid, expected):
    # Spread 1e-9 bps (~1e-9 ticks) around a mid within 3e-10 ticks of 10000: both sides round onto tick 10000.
    # The tick stays on its side of the mid (at or above the mid it is the ask) and the other side moves out.
    m = make_as(min_bps=1e-9, max_bps=1e-9, tick=0.01)
    m.compute(0, mid, 0.0, 0.0, 0, 0)
    assert ref.to_ticks(m.reservation - m.spread / 2, m.reservation + m.spread / 2, 0.01) == (10000, 10000)
    assert (m.bid_ticks, m.ask_ticks) == expected


def test_large_long_inventory_does_not_cross_best_bid():
    # q = 50 pushes r to 100 - 50 * 0.1 * 4 * 1 = 80: the ask (80.85) would cross a 99.99 bid.
    m = make_as(horizon_s=1.0)
    m.compute(0, 100.0, 50.0, 2.0, 9999, 10001)
    assert m.ask_ticks == 10000                     # best_bid + 1
    assert m.bid_ticks == math.floor((80.0 - m.spread / 2) / 0.01)
    m.compute(0, 100.0, -50.0, 2.0, 9999, 10001)
    assert m.bid_ticks == 10000                     # best_ask - 1


def test_unknown_book_side_is_not_used():
    m = make_as(horizon_s=1.0)
    m.compute(0, 100.0, 50.0, 2.0, 0, 10001)
    assert m.ask_ticks < 9999                       # no best bid given: the ask is not held up


def test_bid_below_one_tick_becomes_zero_meaning_no_bid():
    m = make_as(gamma=1.0, horizon_s=100.0, tick=0.01)
    m.compute(0, 1.0, 10.0, 1.0, 0, 0)             # r = 1 - 10 * 1 * 1 * 100 = -999
    assert m.bid_ticks == 0 and m.ask_ticks >= 1


@settings(max_examples=400, deadline=None)
@given(
    tick=st.sampled_from([1e-5, 0.01, 0.1, 0.25, 1.0]),
    bb=st.integers(1, 200_000), book_gap=st.integers(-5, 50), known=st.sampled_from(["both", "bid", "ask", "none"]),
    mid_offset=st.floats(-3, 3), q=st.floats(-50, 50), sigma_frac=st.floats(0, 0.01),
    gamma=st.floats(1e-4, 1.0), kappa=st.floats(1e-3, 100.0), horizon_s=st.floats(1e-3, 600.0),
    elapsed_ns=st.integers(0, 10**12), min_bps=st.floats(0, 50), extra_bps=st.one_of(st.just(INF), st.floats(0, 500)),
    model=st.sampled_from(["as", "glft"]),
)
def test_quotes_never_cross_book_and_match_reference(tick, bb, book_gap, known, mid_offset, q, sigma_frac, gamma,
                                                     kappa, horizon_s, elapsed_ns, min_bps, extra_bps, model):
    ba = bb + book_gap                               # book_gap <= 0: a crossed or locked (stale) book
    mid = max((bb + ba) / 2 + mid_offset, 0.5) * tick
    sigma = sigma_frac * mid
    best_bid = bb if known in ("both", "bid") else 0
    best_ask = ba if known in ("both", "ask") and ba > 0 else 0
    max_bps = min_bps + extra_bps
    if model == "as":
        m = AvellanedaStoikov(gamma, kappa, horizon_s, min_bps, max_bps, tick)
        m.compute(0, mid, q, sigma, best_bid, best_ask)
        m.compute(elapsed_ns, mid, q, sigma, best_bid, best_ask)
        left, _ = ref.cycle_time_left_s(elapsed_ns, 0, round(horizon_s * 1e9))
        r = ref.as_reservation_price(mid, q, gamma, sigma, left)
        raw = ref.as_spread(gamma, kappa, sigma, left)
    else:
        m = GLFT(gamma, kappa, 140.0, 1.0, gamma, min_bps, max_bps, tick)
        m.compute(elapsed_ns, mid, q, sigma, best_bid, best_ask)
        hs, skew = ref.glft_half_spread_skew(m.c1, m.c2, sigma, 1.0)
        r, raw = mid - skew * q, 2 * hs
    assert m.bid_ticks < m.ask_ticks
    assert m.bid_ticks >= 0 and m.ask_ticks >= 1
    if best_ask:
        assert m.bid_ticks < best_ask
    if best_bid:
        assert m.ask_ticks > best_bid
    assert (m.spread, m.bid_ticks, m.ask_ticks) == ref.quote_ticks(mid, r, raw, min_bps, max_bps, tick,
                                                                   best_bid, best_ask)


# --- validation ---

@pytest.mark.parametrize("kwargs, name", [
    (dict(gamma=0.0), "gamma"), (dict(gamma=math.nan), "gamma"), (dict(kappa=-1.0), "kappa"),
    (dict(horizon_s=0.0), "horizon_s"), (dict(horizon_s=INF), "horizon_s"), (dict(min_bps=-1.0), "min_spread_bps"),
    (dict(min_bps=10.0, max_bps=5.0), "max_spread_bps"), (dict(tick=0.0), "tick_size"),
])
def test_as_constructor_rejects_bad_parameter_by_name(kwargs, name):
    with pytest.raises(ValueError, match=name):
        make_as(**kwargs)


@pytest.mark.parametrize("kwargs, name", [
    (dict(gamma=-0.1), "gamma"), (dict(kappa=0.0), "kappa"), (dict(A=0.0), "A"), (dict(delta=0.0), "order_qty_delta"),
    (dict(xi=-1e-3), "xi"), (dict(min_bps=5.0, max_bps=1.0), "max_spread_bps"), (dict(tick=-0.01), "tick_size"),
])
def test_glft_constructor_rejects_bad_parameter_by_name(kwargs, name):
    with pytest.raises(ValueError, match=name):
        make_glft(**kwargs)


@pytest.mark.parametrize("mid, q, sigma, name", [
    (0.0, 0.0, 1.0, "mid"), (math.nan, 0.0, 1.0, "mid"), (100.0, math.inf, 1.0, "q"), (100.0, 0.0, -1.0, "sigma"),
    (100.0, 0.0, math.nan, "sigma"),
])
def test_compute_rejects_bad_inputs(mid, q, sigma, name):
    for m in (make_as(), make_glft()):
        with pytest.raises(ValueError, match=name):
            m.compute(0, mid, q, sigma, 0, 0)


def test_compute_rejects_quotes_beyond_int64_ticks():
    m = make_as(tick=1e-12)
    with pytest.raises(ValueError, match="MAX_QUOTE_TICKS"):
        m.compute(0, 1e8, 0.0, 0.0, 0, 0)


def test_quote_model_base_is_abstract():
    with pytest.raises(TypeError):
        QuoteModel()

    class NoModel(QuoteModel):          # a subclass that forgot compute(): an error, never silent quotes
        pass
    with pytest.raises(NotImplementedError, match="QuoteModel.compute"):
        NoModel().compute(0, 100.0, 0.0, 0.0, 0, 0)


# --- EWMA volatility ---

def test_ewma_starts_at_seed_and_first_mid_only_anchors():
    e = EwmaVolatility(30.0, 100_000_000, 2.0)
    assert e.sigma == 2.0 and e.variance == 4.0 and e.samples == 0
    e.update(0, 100.0)
    assert e.sigma == 2.0 and e.samples == 0


def test_ewma_alternating_steps_converge_to_d_over_sqrt_dt():
    # Mid alternates 100, 100.3, 100, ... every dt = 0.1 s: var_rate = 0.3^2 / 0.1 = 0.9, sigma = 0.3/sqrt(0.1).
    d, dt_ns, hl = 0.3, 100_000_000, 5.0
    e = EwmaVolatility(hl, dt_ns, 0.0)
    n = 500
    for i in range(n + 1):
        e.update(i * dt_ns, 100.0 + d * (i % 2))
    assert e.samples == n
    # Seeded at 0: variance_n = 0.9 * (1 - 2^(-n dt / hl)) = 0.9 * (1 - 2^-10).
    assert e.variance == pytest.approx(0.9 * (1 - 2.0 ** (-n * 0.1 / hl)), rel=1e-12)
    assert e.sigma == pytest.approx(d / math.sqrt(0.1), rel=1e-3)
    # Seeded at the true value, it stays there.
    e2 = EwmaVolatility(hl, dt_ns, d / math.sqrt(0.1))
    for i in range(50):
        e2.update(i * dt_ns, 100.0 + d * (i % 2))
    assert e2.sigma == pytest.approx(d / math.sqrt(0.1), rel=1e-12)


def test_ewma_seed_decays_with_half_life():
    # Flat mid: var_rate 0; after exactly one half-life the seed variance has halved.
    e = EwmaVolatility(2.0, 100_000_000, 3.0)
    for i in range(21):                              # 20 samples of 0.1 s = 2.0 s
        e.update(i * 100_000_000, 50.0)
    assert e.variance == pytest.approx(9.0 / 2, rel=1e-12)


def test_ewma_samples_at_most_once_per_interval_and_ignores_bad_events():
    e = EwmaVolatility(10.0, 100_000_000, 1.0)
    e.update(0, 100.0)
    e.update(50_000_000, 150.0)                      # inside the interval: ignored
    e.update(100_000_000, 100.0)                     # no change over 0.1 s
    assert e.samples == 1
    before = e.variance
    for ts, mid in [(200_000_000, 0.0), (200_000_000, -1.0), (200_000_000, math.nan), (200_000_000, math.inf),
                    (100_000_000, 101.0), (50_000_000, 101.0)]:
        e.update(ts, mid)
    assert e.samples == 1 and e.variance == before
    e.update(200_000_000, 101.0)                     # change 1 over 0.1 s: var_rate 10
    alpha = 1 - 2 ** (-0.1 / 10.0)
    assert e.variance == pytest.approx(before + alpha * (10.0 - before), rel=1e-12)


def test_ewma_irregular_gap_uses_actual_dt():
    # One sample after 2 s with change 2: var_rate = 4 / 2 = 2; alpha = 1 - 2^(-2/1) = 0.75.
    e = EwmaVolatility(1.0, 100_000_000, 0.0)
    e.update(0, 100.0)
    e.update(2 * S, 102.0)
    assert e.variance == pytest.approx(0.75 * 2.0, rel=1e-12)


def test_ewma_recovers_known_sigma_of_random_walk():
    # Gaussian random walk with sigma = 1.5 per sqrt(s), mid observed every 20 ms, sampled every 100 ms.
    rng = np.random.default_rng(11)
    sigma, step_ns = 1.5, 20_000_000
    steps = rng.normal(0, sigma * math.sqrt(0.02), 200_000)
    mids = 1000.0 + np.cumsum(steps)
    e = EwmaVolatility(300.0, 100_000_000, 0.1)
    for i, mid in enumerate(mids):
        e.update(i * step_ns, float(mid))
    assert e.sigma == pytest.approx(sigma, rel=0.05)


def test_ewma_matches_reference_on_irregular_events():
    rng = np.random.default_rng(3)
    ts = np.cumsum(rng.integers(1, 80_000_000, 5000))
    mids = 100.0 + np.cumsum(rng.normal(0, 0.05, 5000))
    mids[::97] = -1.0                                # bad mids sprinkled in
    events = [(int(t), float(m)) for t, m in zip(ts, mids)]
    e = EwmaVolatility(5.0, 100_000_000, 0.7)
    for t, m in events:
        e.update(t, m)
    sigma, samples = ref.ewma_sigma(events, 5.0, 100_000_000, 0.7)
    assert e.samples == samples > 1000
    assert e.sigma == pytest.approx(sigma, rel=1e-10)


@pytest.mark.parametrize("args, name", [
    ((0.0, 1, 1.0), "half_life_s"), ((1.0, 0, 1.0), "sample_interval_ns"), ((1.0, 1, -1.0), "seed_sigma"),
])
def test_ewma_constructor_rejects_bad_parameter_by_name(args, name):
    with pytest.raises(ValueError, match=name):
        EwmaVolatility(*args)


# --- trade intensity ---

def exponential_quantiles(n, kappa):
    """n distances whose tail count at depth d is n exp(-kappa d) to within 1 (exact quantiles)."""
    return [-math.log(1 - (j + 0.5) / n) / kappa for j in range(n)]


def test_reference_intensity_fit_recovers_exact_exponential():
    depths = [0.1 * i for i in range(10)]
    rates = [140.0 * math.exp(-1.5 * d) for d in depths]
    A, kappa = ref.fit_intensity(depths, rates)
    assert (A, kappa) == (pytest.approx(140.0, rel=1e-12), pytest.approx(1.5, rel=1e-12))


def test_intensity_fit_recovers_known_A_and_kappa_and_expires_old_trades():
    A, kappa, W = 10.0, 1.5, 600.0
    n = int(A * W)                                   # 6000 trades in the window
    est = TradeIntensity(W, 0.1, 30, 1.0, 1.0, min_count=50, min_points=3)
    rng = np.random.default_rng(5)
    # First window: every trade at distance 0 (would ruin the fit if it were not expired).
    for j in range(n):
        est.on_trade(int(j * W / n * S), 100.0, 100.0)
    # Second window: distances with tail n exp(-kappa d), in random order, evenly spaced in time.
    dists = rng.permutation(exponential_quantiles(n, kappa))
    for j, d in enumerate(dists):
        est.on_trade(int((W + (j + 1) * W / n) * S), 100.0 + d * (1 if j % 2 else -1), 100.0)
    fitted_A, fitted_kappa = est.fit(int(2 * W * S))
    assert est.n_trades == n
    assert est.n_points >= 3
    assert fitted_A == pytest.approx(A, rel=0.02)
    assert fitted_kappa == pytest.approx(kappa, rel=0.02)
    assert (est.A, est.kappa) == (fitted_A, fitted_kappa)


def test_intensity_fit_on_random_poisson_trades():
    A, kappa, W = 5.0, 2.0, 600.0
    rng = np.random.default_rng(21)
    times = np.cumsum(rng.exponential(1 / A, int(A * W * 1.5)))
    times = times[times < 1.2 * W]                   # fit over (0.2 W, 1.2 W]: the first 0.2 W expires
    est = TradeIntensity(W, 0.05, 40, 1.0, 1.0, min_count=20)
    for t in times:
        est.on_trade(int(t * S), 100.0 + rng.exponential(1 / kappa), 100.0)
    fitted_A, fitted_kappa = est.fit(int(1.2 * W * S))
    assert est.n_trades == np.count_nonzero(times > 0.2 * W)
    assert fitted_A == pytest.approx(A, rel=0.1)
    assert fitted_kappa == pytest.approx(kappa, rel=0.1)


def test_intensity_returns_seeds_until_enough_data():
    est = TradeIntensity(60.0, 0.1, 20, 140.0, 1.5)
    assert est.fit() == (140.0, 1.5) and est.n_points == 0
    for j, d in enumerate(exponential_quantiles(600, 1.5)):
        est.on_trade(j * 50_000_000, 100.0 + d, 100.0)           # 600 trades over 30 s: not a full window
    assert est.fit() == (140.0, 1.5) and est.n_points == 0
    assert est.fit(60 * S)[1] == pytest.approx(1.5, rel=0.1)   # one window after the first trade: fitted
    assert est.n_points >= 3
    # Too few usable depths (all trades at the mid) keeps the last fit.
    last = (est.A, est.kappa)
    est2 = TradeIntensity(1.0, 0.1, 20, 140.0, 1.5)
    for j in range(100):
        est2.on_trade(j * 20_000_000, 100.0, 100.0)
    assert est2.fit(3 * S) == (140.0, 1.5) and est2.n_points == 0
    assert (est.A, est.kappa) == last


def test_intensity_ignores_bad_trades_and_buckets_far_trades_in_last():
    est = TradeIntensity(10.0, 0.5, 4, 1.0, 1.0)
    est.on_trade(S, 100.2, 100.0)                    # distance 0.2 -> bucket 0
    est.on_trade(S, 101.2, 100.0)                    # 1.2 -> bucket 2
    est.on_trade(S, 150.0, 100.0)                    # 50 -> last bucket
    est.on_trade(S, math.nan, 100.0)
    est.on_trade(S, 100.0, 0.0)
    est.on_trade(S // 2, 100.0, 100.0)               # earlier than the last trade
    assert est.counts == [1, 0, 1, 1]
    est.on_trade(11 * S, 100.0, 100.0)              # the three trades at 1 s expire
    assert est.counts == [1, 0, 0, 0] and est.n_trades == 1


def test_intensity_capacity_drop_shortens_the_window_used_for_rates():
    # 100 trades per second for 200 s, capacity 1000: the rate must be 1000 / 10 s, not 1000 / 100 s.
    kappa = 1.5
    dists = exponential_quantiles(1000, kappa)
    est = TradeIntensity(100.0, 0.1, 20, 1.0, 1.0, min_count=20, capacity=1000)
    for j in range(20_000):
        est.on_trade(j * 10_000_000, 100.0 + dists[j % 1000], 100.0)
    A, k = est.fit()
    assert est.n_trades == 1000
    assert A == pytest.approx(100.0, rel=0.05)
    assert k == pytest.approx(kappa, rel=0.05)


@pytest.mark.parametrize("args, name", [
    ((0.0, 0.1, 10, 1.0, 1.0), "window_s"), ((1.0, 0.0, 10, 1.0, 1.0), "bucket_width"),
    ((1.0, 0.1, 1, 1.0, 1.0), "n_buckets"), ((1.0, 0.1, 10, 0.0, 1.0), "seed_A"),
    ((1.0, 0.1, 10, 1.0, -1.0), "seed_kappa"), ((1.0, 0.1, 10, 1.0, 1.0, 0), "min_count"),
    ((1.0, 0.1, 10, 1.0, 1.0, 5, 11), "min_points"), ((1.0, 0.1, 10, 1.0, 1.0, 5, 3, 0), "capacity"),
    ((1.0, 0.1, 10, 1.0, 1.0, 5, 3, 1 << 62), "capacity"),       # its byte count would overflow
])
def test_intensity_constructor_rejects_bad_parameter_by_name(args, name):
    with pytest.raises(ValueError, match=name):
        TradeIntensity(*args)


# --- hostile numbers (issue 8): quotes within the book's price bound, time arithmetic on any int64 ---
EXTREME_TS = [-2**63, -2**63 + 1, -1, 0, 1, 2**62, 2**63 - 2, 2**63 - 1]


def test_max_quote_is_the_book_price_bound():
    from mmcore_ext.book import MAX_PRICE_TICKS
    from mmcore_ext.quoting import MAX_QUOTE_TICKS
    assert MAX_QUOTE_TICKS == MAX_PRICE_TICKS == ref.MAX_QUOTE_TICKS == 2**53


@pytest.mark.parametrize("mid", [2**53 * 0.01 * 1.5, 2**60 * 0.01, 2**61 * 0.01])   # 1.5 * 2**53 .. 2**61 ticks
def test_quotes_beyond_the_price_bound_raise_even_below_int64(mid):
    # Before: quotes up to 2**62 ticks were accepted, past what the book and the risk gate can hold.
    for m in (make_as(), make_glft()):
        with pytest.raises(ValueError, match="MAX_QUOTE_TICKS"):
            m.compute(0, mid, 0.0, 0.0, 0, 0)
    with pytest.raises(ValueError, match="MAX_QUOTE_TICKS"):
        ref.quote_ticks(mid, mid, 0.0, 0.0, INF, 0.01, 0, 0)


def test_ask_pushed_above_the_bound_by_the_book_raises():
    m = make_as(tick=1.0)
    with pytest.raises(ValueError, match="MAX_QUOTE_TICKS"):
        m.compute(0, 2.0**53 - 4, 0.0, 0.0, 2**53, 0)          # best bid at the bound: ask = best bid + 1
    with pytest.raises(ValueError, match="MAX_QUOTE_TICKS"):
        ref.quote_ticks(2.0**53 - 4, 2.0**53 - 4, 0.0, 0.0, INF, 1.0, 2**53, 0)


@pytest.mark.parametrize("best_bid, best_ask", [(2**63 - 1, 0), (0, -2**63), (-1, 0), (0, 2**53 + 1)])
def test_best_prices_outside_the_bound_raise(best_bid, best_ask):
    # Before: best_bid + 1 / best_ask - 1 wrapped and the quotes could end up crossed (bid >= ask).
    for m in (make_as(), make_glft()):
        with pytest.raises(ValueError, match="best bid/ask"):
            m.compute(0, 100.0, 0.0, 1.0, best_bid, best_ask)
    with pytest.raises(ValueError, match="best bid/ask"):
        ref.quote_ticks(100.0, 100.0, 0.1, 0.0, INF, 0.01, best_bid, best_ask)


@settings(max_examples=200, deadline=None)
@given(ts=st.lists(st.sampled_from(EXTREME_TS) | st.integers(-2**63, 2**63 - 1), min_size=1, max_size=8),
       horizon_s=st.sampled_from([1e-9, 0.5, 60.0, 9.1e9]))
def test_as_cycle_clock_on_arbitrary_int64_times_matches_exact_integers(ts, horizon_s):
    # Before: ts - cycle_start wrapped for times far apart (e.g. -2**63 then 2**63 - 1).
    m = make_as(horizon_s=horizon_s)
    horizon_ns = round(horizon_s * 1e9)
    start = None
    for t in ts:
        m.compute(t, 100.0, 0.0, 1.0, 0, 0)
        start = t if start is None else start
        left, start = ref.cycle_time_left_s(t, start, horizon_ns)
        assert m.cycle_start_ns == start and m.time_left_s == left
        assert 0.0 < m.time_left_s <= horizon_ns * 1e-9 + 1e-18


def test_ewma_sample_across_the_whole_int64_time_range_is_taken():
    # Before: ts - prev_ts wrapped negative, so the sample was silently dropped.
    v = EwmaVolatility(5.0, 1, 0.5)
    v.update(-2**63 + 1, 100.0)
    v.update(2**63 - 1, 101.0)
    sigma, samples = ref.ewma_sigma([(-2**63 + 1, 100.0), (2**63 - 1, 101.0)], 5.0, 1, 0.5)
    assert v.samples == samples == 1 and v.sigma == pytest.approx(sigma, rel=1e-12)


def test_trade_intensity_window_near_the_int64_minimum_does_not_wrap():
    # Before: now - window wrapped to a huge cut-off and the trade just recorded expired at once.
    ti = TradeIntensity(1.0, 0.5, 4, 1.0, 1.0, min_count=1, min_points=2, capacity=8)
    ti.on_trade(-2**63 + 5, 100.5, 100.0)
    assert ti.n_trades == 1 and ti.counts == [0, 1, 0, 0]
    ti.fit(2**63 - 1)                                    # a fit at the other end of time: no wrap either
    assert ti.n_trades == 0
    with pytest.raises(ValueError):
        ti.fit(2**63)


# --- arrivals, not prints (issue 10) ---
def test_a_burst_of_prints_is_one_arrival_at_its_deepest_depth_on_its_side():
    est = TradeIntensity(10.0, 0.1, 10, 1.0, 1.0)
    for k, px in enumerate((100.05, 100.15, 100.25, 100.35, 100.45)):   # one buy sweeping 5 ask levels
        est.on_trade(S, px, 100.0 + 0.1 * k, 1)                        # the mid moves under it: the first counts
    assert (est.prints, est.arrivals, est.n_trades) == (5, 1, 1) and est.counts[4] == 1 and sum(est.counts) == 1
    est.on_trade(S, 99.75, 100.0, -1)                 # a sell at the same time: another order, depth 0.25
    est.on_trade(S + 1, 100.05, 100.0, 1)             # a buy 1 ns later: another arrival
    assert est.arrivals == 3 and est.counts[2] == 1 and est.counts[0] == 1
    est.on_trade(S + 2, 99.9, 100.0, 1)               # a buy below the mid (stale mid): depth 0, not 0.1
    assert est.counts[0] == 2
    est.on_trade(S + 3, 100.0, 100.0, 2)              # not a side: ignored
    assert est.prints == 8


def test_on_the_real_recording_arrivals_are_fewer_than_prints_and_a_comes_out_lower():
    """The bundled USDⓈ-M BTCUSDT recording (real): trades with the book's mid before each, once with the
    aggressor side and exchange time (arrivals) and once without (every print)."""
    from mmcore.venues.binance.recording import ReplayReader
    from mmcore_ext.book import L2Book, sync_rule_for_market
    from mmcore_ext.events import DepthDiff, DepthSnapshot, Trade
    from datafiles import USDM_FILE
    reader = ReplayReader(USDM_FILE)
    inst_tick = 0.1
    book = L2Book(sync_rule_for_market(reader.market))
    arrivals = TradeIntensity(300.0, 0.5, 40, 1.0, 1.0, min_count=10)
    prints = TradeIntensity(300.0, 0.5, 40, 1.0, 1.0, min_count=10)
    last = 0
    for ev in reader:
        t = type(ev)
        if t is DepthDiff:
            book.apply_diff(ev)
        elif t is DepthSnapshot:
            book.load_snapshot(ev)
        elif t is Trade and book.synced and book.mid_x2() > 0:
            mid = book.mid_x2() * inst_tick / 2
            px = ev.price * inst_tick
            arrivals.on_trade(ev.ts_event_ns, px, mid, ev.side)
            prints.on_trade(ev.ts_event_ns, px, mid)
            last = ev.ts_event_ns
    assert arrivals.prints == prints.prints > 1000
    assert arrivals.arrivals < 0.5 * prints.arrivals               # most prints come in bursts
    a_arr, k_arr = arrivals.fit(last)
    a_pr, k_pr = prints.fit(last)
    assert arrivals.n_points >= 3 and prints.n_points >= 3
    # measured: 21,308 prints, 5,450 arrivals; A 32.0 / s from prints vs 2.65 from arrivals, kappa 0.060 vs 0.138
    assert a_pr > 5 * a_arr and k_arr > 1.5 * k_pr, (a_pr, a_arr, k_pr, k_arr)
