"""The strategy interface (mmcore_ext.strategy): ladders from every model, the shared sizing and inventory rules,
the layered ladder's regimes, the band maker's drift rule, and the A-S horizon modes and units
(mmcore_ext.quoting). Prices/books here are synthetic (labelled): the rules, not market data, are under test."""
import math

import pytest
from hypothesis import given, settings, strategies as st

from mmcore_ext.quoting import (GLFT, HORIZON_CYCLE, HORIZON_FIXED, HORIZON_INFINITE, AvellanedaStoikov)
from mmcore_ext.strategy import (MAX_LEVELS, REGIME_GRINDING, REGIME_NAMES, REGIME_NORMAL, REGIME_PINNING,
                                 REGIME_STOP_LOSS, BandMaker, LayeredLadder, ModelQuote)

TICK, LOT = 0.1, 0.001            # BTCUSDT USDⓈ-M units: ticks of 0.1 USDT, lots of 0.001 BTC
BB, BA = 599_990, 600_010         # synthetic top of book (ticks): 59,999.0 / 60,001.0
FAIR = 60_000.0


def as_model(**kw):
    args = dict(gamma=25.0, kappa=0.5, horizon_s=60.0, min_spread_bps=1.0, max_spread_bps=20.0, tick_size=TICK,
                order_qty_delta=0.002)
    args.update(kw)
    return AvellanedaStoikov(**args)


def check_ladder(lad, position, max_inv):
    bids, asks = lad.bids(), lad.asks()
    assert len(bids) <= MAX_LEVELS and len(asks) <= MAX_LEVELS
    assert all(a[0] > b[0] for a, b in zip(bids, bids[1:])), bids        # best first, strictly
    assert all(a[0] < b[0] for a, b in zip(asks, asks[1:])), asks
    assert all(q > 0 for _, q in bids + asks)
    assert sum(q for _, q in bids) <= max(0, max_inv - position)        # inventory kept, cumulatively
    assert sum(q for _, q in asks) <= max(0, max_inv + position)
    if bids and asks:
        assert bids[0][0] < asks[0][0]


# --- units: gamma independent of order_qty ---
def test_skew_depends_on_inventory_in_base_units_not_on_order_qty():
    """q counts base units: the same 0.004 BTC position skews the reservation price by q gamma sigma^2 (T - t)
    whatever the order size (the fix of the issue: gamma was silently rescaled by order_qty)."""
    shifts = []
    for delta in (0.001, 0.002, 0.01):
        m = as_model(order_qty_delta=delta, max_spread_bps=math.inf, min_spread_bps=0.0)
        m.compute(0, FAIR, 0.004, 2.0, 0, 0)
        shifts.append(FAIR - m.reservation)
    assert shifts == pytest.approx([0.004 * 25.0 * 4.0 * 60.0] * 3)
    # the spread is that of a fill of Delta: (3.18) with gamma Delta
    m = as_model(max_spread_bps=math.inf, min_spread_bps=0.0)
    m.compute(0, FAIR, 0.0, 2.0, 0, 0)
    g = 25.0 * 0.002
    assert m.spread == pytest.approx(g * 4.0 * 60.0 + 2 / g * math.log1p(g / 0.5))


def test_glft_in_base_units_matches_the_per_order_form():
    """GLFT with q, Delta in base units and gamma = xi = 0.05 / Delta equals the old per-order model
    (Delta = 1, q in orders, gamma = xi = 0.05): the same quotes for the same position."""
    delta = 0.002
    new = GLFT(0.05 / delta, 0.5, 2.0, delta, 0.05 / delta, 0.0, math.inf, TICK)
    old = GLFT(0.05, 0.5, 2.0, 1.0, 0.05, 0.0, math.inf, TICK)
    for orders in (-5, -1, 0, 2, 5):
        new.compute(0, FAIR, orders * delta, 2.0, 0, 0)
        old.compute(0, FAIR, float(orders), 2.0, 0, 0)
        assert (new.bid_ticks, new.ask_ticks) == (old.bid_ticks, old.ask_ticks)
        assert new.half_spread == pytest.approx(old.half_spread)


# --- A-S modes ---
def test_fixed_horizon_keeps_time_left_and_cycle_runs_down():
    cyc, fix = as_model(mode=HORIZON_CYCLE), as_model(mode=HORIZON_FIXED)
    for m in (cyc, fix):
        m.compute(0, FAIR, 0.0, 2.0, 0, 0)
        m.compute(30_000_000_000, FAIR, 0.0, 2.0, 0, 0)
    assert cyc.time_left_s == pytest.approx(30.0) and fix.time_left_s == 60.0


def test_constant_spread_mode_drops_the_time_term_only():
    m = as_model(constant_spread_only=True, min_spread_bps=0.0, max_spread_bps=math.inf)
    m.compute(0, FAIR, 0.004, 2.0, 0, 0)
    assert m.spread == pytest.approx(m.constant_spread)
    assert FAIR - m.reservation == pytest.approx(0.004 * 25.0 * 4.0 * 60.0)      # skew kept


def test_infinite_horizon_matches_the_paper_formulas_and_stops_buying_at_q_max():
    """Section 2.4 reservation bid/ask with omega = (gamma sigma)^2 (q_max + Delta)^2 / 2 (in lots of Delta)."""
    d, qm, g, k = 0.002, 0.01, 25.0, 0.5
    m = as_model(mode=HORIZON_INFINITE, q_max=qm, min_spread_bps=0.0, max_spread_bps=math.inf)
    for q in (-0.01, -0.004, 0.0, 0.006):
        m.compute(0, FAIR, q, 2.0, 0, 0)
        sig = 2.0
        omega = 0.5 * (g * sig) ** 2 * (qm + d) ** 2
        x = (g * sig) ** 2 / (2 * omega - (g * q * sig) ** 2)
        ra = FAIR + math.log(1 + (d - 2 * q) * d * x) / (g * d)
        rb = FAIR + math.log(1 + (-d - 2 * q) * d * x) / (g * d)
        c = math.log1p(g * d / k) / (g * d)
        assert m.bid_ticks == math.floor((rb - c) / TICK + 1e-9)
        assert m.ask_ticks == math.ceil((ra + c) / TICK - 1e-9)
    m.compute(0, FAIR, qm, 2.0, 0, 0)
    assert m.bid_ticks == 0 and m.ask_ticks > 0              # at q_max: no bid (the log argument is 0)
    m.compute(0, FAIR, 10 * qm, 2.0, 0, 0)                    # beyond: clamped to q_max
    assert m.bid_ticks == 0


def test_model_parameters_out_of_range_are_refused_by_name():
    for kw, name in ((dict(order_qty_delta=0.0), "order_qty_delta"), (dict(mode=7), "mode"),
                     (dict(q_max=-1.0), "q_max")):
        with pytest.raises(ValueError, match=name):
            as_model(**kw)


# --- ModelQuote ---
def test_model_quote_is_the_models_quote_with_eta_shaping_and_inventory_limits():
    m = as_model()
    s = ModelQuote(m, 2, LOT, 1, 10, eta=1.0)
    s.quote(0, FAIR, 0, 2.0, BB, BA)
    assert s.ladder.bids() == [(m.bid_ticks, 2)] and s.ladder.asks() == [(m.ask_ticks, 2)]
    s.quote(0, FAIR, 6, 2.0, BB, BA)                          # long 0.006: the bid shrinks by exp(-0.6)
    assert s.ladder.bid_qty(0) == math.floor(2 * math.exp(-0.6)) and s.ladder.ask_qty(0) == 2
    s.quote(0, FAIR, 9, 2.0, BB, BA)                          # a 2-lot bid would pass max_inventory 10
    assert s.ladder.n_bids == 0 and s.ladder.n_asks == 1
    s.quote(0, FAIR, -10, 2.0, BB, BA)
    assert s.ladder.n_asks == 0
    with pytest.raises(ValueError, match="order_lots"):
        ModelQuote(m, 3, LOT, 2, 10)                           # not a multiple of the step
    with pytest.raises(ValueError):
        s.quote(0, float("nan"), 0, 2.0, BB, BA)              # the model's input check


# --- LayeredLadder ---
def ladder(**kw):
    args = dict(lot_size=LOT, step_lots=1, max_inventory_lots=20, near_layers=3, far_layers=2, base_layer_lots=2,
                near_spacing_ticks=2, far_spacing_ticks=10, far_size_mult=1.5, pinning_thresh=0.8,
                grinding_thresh=0.5, stop_loss_thresh=1.0, grind_factor=0.5)
    args.update(kw)
    return LayeredLadder(as_model(), **args)


def test_layers_near_dense_far_sparse_from_the_models_quote():
    s = ladder()
    s.quote(0, FAIR, 0, 2.0, BB, BA)
    m = s.model
    assert s.regime == REGIME_NORMAL and not s.stop_loss
    b = m.bid_ticks
    assert s.ladder.bids() == [(b, 2), (b - 2, 2), (b - 4, 2), (b - 14, 3), (b - 24, 3)]
    a = m.ask_ticks
    assert s.ladder.asks() == [(a, 2), (a + 2, 2), (a + 4, 2), (a + 14, 3), (a + 24, 3)]


def test_grinding_tightens_the_reducing_side_and_shifts_sizes():
    s = ladder()
    s.quote(0, FAIR, 0, 2.0, BB + 1000, BA + 1000)            # synthetic book far above: no clamp at the touch
    plain_ask = s.model.ask_ticks
    s.quote(0, FAIR, 13, 2.0, 599_000, 599_002)               # long, u = 0.65: g = 0.5
    assert REGIME_NAMES[s.regime] == "grinding" and s.regime == REGIME_GRINDING
    ask0 = s.model.ask_ticks
    assert s.ladder.ask_px(0) == ask0 - math.floor((ask0 - 599_002) * 0.5 * 0.5)
    assert s.ladder.ask_qty(0) == 3 and s.ladder.bid_qty(0) == 1    # 2 x 1.5 / 2 x 0.5
    assert plain_ask != ask0                                  # (the skew itself moved the model's ask too)


def test_pinning_pulls_the_adding_side_and_joins_the_touch():
    s = ladder()
    s.quote(0, FAIR, 17, 2.0, BB, BA)                         # long, u = 0.85 >= 0.8
    assert s.regime == REGIME_PINNING
    assert s.ladder.n_bids == 0 and s.ladder.ask_px(0) == BA
    s.quote(0, FAIR, -17, 2.0, BB, BA)
    assert s.ladder.n_asks == 0 and s.ladder.bid_px(0) == BB


def test_stop_loss_quotes_nothing_and_says_so():
    s = ladder()
    s.quote(0, FAIR, -20, 2.0, BB, BA)
    assert s.regime == REGIME_STOP_LOSS and s.stop_loss and s.ladder.n_bids == s.ladder.n_asks == 0
    s.quote(0, FAIR, 0, 2.0, BB, BA)
    assert not s.stop_loss


def test_ladder_parameters_are_checked():
    for kw, word in ((dict(near_layers=10, far_layers=7), "near_layers"), (dict(base_layer_lots=0), "base_layer_lots"),
                     (dict(grinding_thresh=0.9), "thresholds"), (dict(near_spacing_ticks=0), "near_spacing"),
                     (dict(grind_factor=2.0), "grind_factor")):
        with pytest.raises(ValueError, match=word):
            ladder(**kw)


@settings(max_examples=300, deadline=None)
@given(pos=st.integers(-25, 25), fair=st.floats(1.0, 1e6), sigma=st.floats(0.0, 50.0),
       near=st.integers(1, 8), far=st.integers(0, 8), spacing=st.integers(1, 1000))
def test_every_ladder_is_ordered_never_crossed_and_within_inventory(pos, fair, sigma, near, far, spacing):
    s = ladder(near_layers=near, far_layers=far, near_spacing_ticks=spacing, far_spacing_ticks=spacing * 3)
    bb = int(fair / TICK) - 5
    ba = bb + 10
    try:
        s.quote(0, fair, pos, sigma, bb, ba)
    except ValueError:
        return                                                # a refused quote (out of the price bound)
    check_ladder(s.ladder, pos, 20)
    if s.ladder.n_bids:
        assert s.ladder.bid_px(0) <= ba - 1
    if s.ladder.n_asks:
        assert s.ladder.ask_px(0) >= bb + 1


# --- BandMaker ---
def test_band_holds_until_the_reference_drifts_past_the_threshold():
    b = BandMaker(TICK, LOT, 1, 20, 0.002, 0.004, 0.001, 3, 2)
    b.quote(0, FAIR, 0, 2.0, BB, BA)
    first = (b.ladder.bids(), b.ladder.asks())
    assert b.requotes == 1 and b.anchor == FAIR
    assert [p for p, _ in first[0]] == [math.floor(FAIR * (1 - f) / TICK + 1e-9) for f in (0.002, 0.003, 0.004)]
    assert [p for p, _ in first[1]] == [math.ceil(FAIR * (1 + f) / TICK - 1e-9) for f in (0.002, 0.003, 0.004)]
    b.quote(1, FAIR * 1.0009, 0, 2.0, BB, BA)                 # inside the drift threshold: the same band
    assert (b.ladder.bids(), b.ladder.asks()) == first and b.requotes == 1
    b.quote(2, FAIR * 1.0011, 0, 2.0, BB, BA)                 # past it: the band moves
    assert b.requotes == 2 and b.anchor == FAIR * 1.0011 and b.ladder.bids() != first[0]


def test_band_min_order_value_raises_the_size_and_never_crosses():
    b = BandMaker(TICK, LOT, 1, 100, 0.002, 0.004, 0.001, 2, 1, min_order_value=300.0)    # 1 lot = ~60 USDT
    b.quote(0, FAIR, 0, 2.0, BB, BA)
    for px, q in b.ladder.bids() + b.ladder.asks():
        assert px * TICK * q * LOT >= 300.0 and (q - 1) * px * TICK * LOT < 300.0
    b2 = BandMaker(TICK, LOT, 1, 100, 0.0, 0.0, 0.0, 1, 1)
    b2.quote(0, FAIR, 0, 2.0, 600_000, 600_001)               # a zero-width band at the touch: kept from crossing
    assert b2.ladder.bid_px(0) <= 600_000 and b2.ladder.ask_px(0) >= 600_001
