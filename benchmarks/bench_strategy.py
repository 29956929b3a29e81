"""Strategy compute per call, the hot path with a ladder, the A-S (2008) experiment and sweep throughput.

Targets (issue 10): each model's compute <= 1 µs per call and a ladder of 8 levels per side <= 3 µs, measured over
batches from Python (the loop and the call into the extension included); the full hot path (``Engine.on_event``)
with the ladder p50 <= 10 µs, p99 <= 50 µs per event on the bundled real USDⓈ-M recording; ``research as2008``
1000 paths <= 5 s; a sweep's throughput for 1 and 2 workers (events/s). Printed beside their targets, not
asserted (CI machines are noisy); only loose sanity bounds and same-work checks are asserted.

Baseline in the same run: the pure-Python reference A-S quote (``mmcore.reference.quoting``: reservation
price, spread, clamp, rounding), the same arithmetic as the compiled model.
"""
import asyncio
import math
import random
import time

import numpy as np

from mmcore.config import load_config
from mmcore.reference import quoting as ref
from mmcore.runners.replay import build_session, run_session, summarize
from mmcore_ext.quoting import GLFT, HORIZON_INFINITE, AvellanedaStoikov
from mmcore_ext.strategy import BandMaker, LayeredLadder, ModelQuote

ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent
USDM_FILE = ROOT / "data" / "usdm_btcusdt_20240808.gz"       # the bundled real recording (data/README.md)

N = 50_000
REPEATS = 5
TICK = 0.1
SANITY_NS = 50_000


def _inputs(n, seed=5):
    rng = random.Random(seed)
    out = []
    for i in range(n):
        mid = 60_000.0 + rng.uniform(-50, 50)
        bb = int(mid / TICK) - rng.randint(0, 3)
        out.append((i * 1_000_000, mid, rng.randint(-8, 8), rng.uniform(0.5, 5.0), bb, bb + rng.randint(1, 4)))
    return out


def _best_ns(call, inputs):
    best = math.inf
    for _ in range(REPEATS):
        t0 = time.perf_counter_ns()
        for ts, mid, pos, sigma, bb, ba in inputs:
            call(ts, mid, pos, sigma, bb, ba)
        best = min(best, (time.perf_counter_ns() - t0) / len(inputs))
    return best


def _line(name, value, target, unit, ok):
    print(f"  {name:<48} {value:>10.1f} {unit:<4} target {target:<12} {'OK' if ok else 'MISSED'}")


def _as():
    return AvellanedaStoikov(25.0, 0.5, 60.0, 1.0, 20.0, TICK, 0.002)


def test_each_models_compute_per_call():
    inputs = _inputs(N)
    as_m, inf_m = _as(), AvellanedaStoikov(25.0, 0.5, 60.0, 1.0, 20.0, TICK, 0.002, HORIZON_INFINITE, False, 0.01)
    glft = GLFT(25.0, 0.5, 2.0, 0.002, 25.0, 1.0, 20.0, TICK)

    def model_call(m):
        compute = m.compute
        return lambda ts, mid, pos, sigma, bb, ba: compute(ts, mid, pos * 0.001, sigma, bb, ba)

    def reference(ts, mid, pos, sigma, bb, ba):       # the same A-S arithmetic in pure Python (fixed T - t)
        q = pos * 0.001
        r = ref.as_reservation_price(mid, q, 25.0, sigma, 60.0)
        spread = ref.clamp_spread(ref.as_spread(25.0 * 0.002, 0.5 / 0.002, sigma * 0.002 ** 0.5, 60.0), mid, 1.0, 20.0)
        b, a = ref.to_ticks(r - spread / 2, r + spread / 2, TICK)
        return ref.finish_quotes(mid, b, a, TICK, bb, ba)

    ladder8 = LayeredLadder(_as(), 0.001, 1, 100, 4, 4, 2, 2, 10)
    rows = {
        "A-S compute (cycle)": (_best_ns(model_call(as_m), inputs), 1000),
        "A-S compute (infinite horizon)": (_best_ns(model_call(inf_m), inputs), 1000),
        "GLFT compute": (_best_ns(model_call(glft), inputs), 1000),
        "ModelQuote(A-S).quote (1 level, eta)": (_best_ns(ModelQuote(_as(), 2, 0.001, 1, 10, 1.0).quote, inputs), 1000),
        "BandMaker.quote (3 orders per side)": (
            _best_ns(BandMaker(TICK, 0.001, 1, 10, 0.002, 0.004, 0.001, 3, 2).quote, inputs), 1000),
        "LayeredLadder.quote (8 levels per side)": (_best_ns(ladder8.quote, inputs), 3000),
        "pure-Python reference A-S quote (baseline)": (_best_ns(reference, inputs), None),
    }
    print(f"\n[bench_strategy] per call, {N} calls x best of {REPEATS}, from Python:")
    for name, (ns, target) in rows.items():
        if target is None:
            print(f"  {name:<48} {ns:>10.1f} ns")
        else:
            _line(name, ns, f"<= {target} ns", "ns", ns <= target)
    base = rows["pure-Python reference A-S quote (baseline)"][0]
    print(f"  compiled A-S vs pure-Python reference: {base / rows['A-S compute (cycle)'][0]:.1f}x faster")
    assert ladder8.ladder.n_bids + ladder8.ladder.n_asks > 8          # the ladder did build levels
    assert all(ns < SANITY_NS for ns, _ in rows.values())


def test_hot_path_with_the_ladder():
    cfg = load_config(overrides=["strategy.model=ladder", "strategy.ladder.near_layers=4",
                                 "strategy.ladder.far_layers=4", "strategy.max_inventory=0.02", "risk.net_max=0.02"])
    best = None
    for _ in range(2):
        s = build_session(cfg, str(USDM_FILE), market="binance_usdm")
        asyncio.run(run_session(s))
        if best is None or s.wall_s < best.wall_s:
            best = s
    summary = summarize(best)
    a = np.frombuffer(best.hot_ns, dtype=np.int64)
    p50, p99 = (float(np.percentile(a, q)) / 1000 for q in (50, 99))
    print(f"\n[bench_strategy] hot path with an 8+8-level ladder, {summary['events']} events, "
          f"{summary['orders_placed']} orders, {summary['fill_count']} fills, wall {best.wall_s:.2f} s")
    _line("hot path p50 (ladder)", p50, "<= 10 µs", "µs", p50 <= 10)
    _line("hot path p99 (ladder)", p99, "<= 50 µs", "µs", p99 <= 50)
    assert summary["strategy"]["levels"] == 8 and summary["orders_placed"] > 100
    assert float(np.percentile(a, 99.9)) < 10_000_000                   # the design card's 10 ms ceiling


def test_research_as2008_thousand_paths():
    from mmcore.research.as2008 import table
    t0 = time.perf_counter()
    rows = table(paths=1000, seed=1)
    dt = time.perf_counter() - t0
    print(f"\n[bench_strategy] research as2008, 1000 paths x 6 rows (3 gammas x 2 strategies):")
    _line("wall time", dt, "<= 5 s", "s", dt <= 5)
    assert len(rows) == 6 and dt < 120


def test_sweep_throughput_one_and_two_workers():
    from mmcore.config import DEFAULT_CONFIG
    from mmcore.runners.compare import parse_grid, sweep
    grid = parse_grid(["strategy.gamma=10,25"])
    rates = {}
    sweep(str(DEFAULT_CONFIG), [], [str(USDM_FILE)], parse_grid(["strategy.gamma=25"]), workers=1)  # caches built
    for workers in (1, 2):
        t0 = time.perf_counter()
        rows = sweep(str(DEFAULT_CONFIG), [], [str(USDM_FILE)] * 2, grid, workers=workers)
        dt = time.perf_counter() - t0
        events = 93_954 * len(rows)
        rates[workers] = events / dt
        assert len(rows) == 4
    print(f"\n[bench_strategy] sweep of 4 replays (2 grid points x the USDM file twice, from the event cache):")
    print(f"  1 worker  {rates[1]:>10,.0f} events/s")
    print(f"  2 workers {rates[2]:>10,.0f} events/s   ({rates[2] / rates[1]:.2f}x; target: scales with workers)")
