"""mmcore_ext.estimators: TWAP of the mid over a rolling window and a fixed-window realised sigma, against
direct computations (synthetic mid paths, labelled as such), their warm-up, bounds and hostile inputs."""
import math
import random

import pytest

from mmcore_ext.estimators import MIN_SAMPLES, RealizedVolatility, TwapPrice

S = 1_000_000_000


def test_twap_weights_each_mid_by_how_long_it_held():
    t = TwapPrice(10.0)
    t.update(0, 100.0)
    assert t.value == 100.0 and t.covered_s == 0.0
    t.update(2 * S, 110.0)                     # 100 held 2 s
    t.update(10 * S, 90.0)                     # 110 held 8 s
    assert t.value == pytest.approx((100 * 2 + 110 * 8) / 10) and t.covered_s == pytest.approx(10.0)
    t.update(13 * S, 90.0)                     # the first segment (ended at 2 s) is older than 13 - 10: dropped
    assert t.value == pytest.approx((110 * 8 + 90 * 3) / 11)


def test_twap_matches_a_direct_time_average_on_a_random_walk():
    rng = random.Random(7)
    t = TwapPrice(60.0)
    pts, ts, mid = [], 0, 1000.0
    for _ in range(5000):
        ts += rng.randint(1, 200) * 1_000_000
        mid += rng.choice((-0.5, 0.5))
        t.update(ts, mid)
        pts.append((ts, mid))
    # direct: segments (t_i, t_{i+1}) at mid_i whose end lies within the window
    area = dur = 0.0
    for (a, m), (b, _) in zip(pts, pts[1:]):
        if b >= ts - 60 * S:
            area += m * (b - a)
            dur += b - a
    assert t.value == pytest.approx(area / dur, rel=1e-12)


def test_twap_ignores_bad_mids_and_backwards_time_and_keeps_bounded_memory():
    t = TwapPrice(1.0, capacity=4)
    t.update(0, 100.0)
    for bad in (float("nan"), float("inf"), -1.0, 0.0):
        t.update(S, bad)
    assert t.value == 100.0
    t.update(S, 101.0)
    t.update(S // 2, 500.0)                    # backwards: ignored
    assert t.value == pytest.approx(100.0)
    for i in range(2, 100):
        t.update(i * S // 10 + S, 100.0 + i)   # more segments than the capacity: the oldest go early
    assert t.covered_s <= 1.0 + 1e-9 and 100 < t.value < 200
    for bad in (0.0, -1.0, float("nan"), 1e12):
        with pytest.raises(ValueError, match="window_s"):
            TwapPrice(bad)
    with pytest.raises(ValueError, match="capacity"):
        TwapPrice(1.0, capacity=0)


def test_realized_sigma_recovers_a_known_random_walk_rate():
    rng = random.Random(3)
    r = RealizedVolatility(300.0, 100_000_000, seed_sigma=9.0)
    mid, step = 60_000.0, 0.5                  # +-0.5 every 0.1 s: sigma = 0.5 / sqrt(0.1) = 1.581 per sqrt(s)
    for i in range(MIN_SAMPLES - 1):
        mid += rng.choice((-step, step))
        r.update(i * 100_000_000, mid)
    assert r.sigma == 9.0                      # warm-up: the seed
    for i in range(MIN_SAMPLES - 1, 6000):
        mid += rng.choice((-step, step))
        r.update(i * 100_000_000, mid)
    assert r.sigma == pytest.approx(step / math.sqrt(0.1), rel=1e-9)    # +-step exactly: no sampling noise
    assert r.samples == 3001                    # changes at times in [now - 300 s, now], both ends included


def test_realized_sigma_respects_the_sampling_interval_and_window():
    r = RealizedVolatility(10.0, S, 0.0)
    r.update(0, 100.0)
    r.update(S // 2, 150.0)                    # inside the sampling interval: not a sample
    assert r.samples == 0
    for i in range(1, 40):
        r.update(i * S, 100.0 + (i % 2))       # +-1 per second
    assert r.samples == 11 and r.sigma == pytest.approx(1.0)
    with pytest.raises(ValueError, match="sample_interval_ns"):
        RealizedVolatility(10.0, 0, 0.0)
    with pytest.raises(ValueError, match="seed_sigma"):
        RealizedVolatility(10.0, S, float("nan"))
