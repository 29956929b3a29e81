"""Per-call time of the pre-trade risk check: compiled ``mmcore_ext.risk`` vs the pure-Python reference.

Target: one risk check <= 200 ns. The time is measured from Python, so it includes the interpreter's loop and the
call into the extension; printed, not asserted (CI machines are noisy). Only a loose sanity bound is asserted.
"""
import logging
import random
import time

import mmcore.reference.risk as reference
import mmcore_ext.risk as compiled
from mmcore.risk_config import RiskConfig

N = 100_000
REPEATS = 5
TARGET_NS = 200
SANITY_NS = 10_000
T0 = 1_700_000_000_000_000_000
MID = 10_000  # ticks; tick 0.01, lot 0.001


def build_orders(n, seed=7):
    # Prices within +-3% of mid (about a third fail the 2% band), sizes up to 60 USDT (a few fail the 50 USDT cap).
    rng = random.Random(seed)
    return [(rng.choice((1, -1)), MID + rng.randint(-300, 300), rng.randint(1, 600)) for _ in range(n)]


def make_gate(impl):
    gate = impl.RiskGate(RiskConfig(max_position_base=2.0), "0.01", "0.001", "ETHUSDT", impl.GlobalExposure(500.0))
    gate.on_market(T0, 2 * MID + 1, True)
    gate.on_fill(1, MID, 300)
    gate.on_order_open(1, MID - 5, 200)
    gate.on_order_open(-1, MID + 5, 200)
    for i in range(50):  # a full rate window, older than the window: every check reads the ring
        gate.note_order_sent(T0 - 20_000_000_000 + i)
    return gate


def per_call_ns(gate, orders):
    check = gate.check_order
    ts = T0 + 1_000_000
    best = None
    for _ in range(REPEATS):
        t0 = time.perf_counter_ns()
        for side, price, qty in orders:
            check(side, price, qty, ts)
        dt = (time.perf_counter_ns() - t0) / len(orders)
        best = dt if best is None or dt < best else best
    return best


def test_check_order_per_call_time_compiled_vs_reference():
    logging.getLogger("mmcore.risk").setLevel(logging.ERROR)
    orders = build_orders(N)
    gate_c, gate_r = make_gate(compiled), make_gate(reference)
    c_ns = per_call_ns(gate_c, orders)
    r_ns = per_call_ns(gate_r, orders)
    assert gate_c.refusals() == gate_r.refusals()  # same work done by both
    passed = REPEATS * N - sum(gate_c.refusals().values())
    print(f"\nrisk check_order, {N} calls x best of {REPEATS} ({passed / (REPEATS * N):.0%} pass):")
    print(f"  compiled  {c_ns:8.1f} ns/call   (target: one risk check <= {TARGET_NS} ns, incl. Python loop+call)")
    print(f"  reference {r_ns:8.1f} ns/call")
    print(f"  speed-up  {r_ns / c_ns:8.1f} x")
    assert c_ns < SANITY_NS


def test_check_spread_and_on_market_per_call_time():
    gate = make_gate(compiled)
    rng = random.Random(3)
    pairs = [(MID - rng.randint(0, 60), MID + rng.randint(1, 60)) for _ in range(N)]
    spread = gate.check_spread
    on_market = gate.on_market
    t0 = time.perf_counter_ns()
    for bid, ask in pairs:
        spread(bid, ask)
    spread_ns = (time.perf_counter_ns() - t0) / N
    t0 = time.perf_counter_ns()
    for bid, ask in pairs:
        on_market(T0, bid + ask, True)
    market_ns = (time.perf_counter_ns() - t0) / N
    print(f"\nrisk compiled check_spread {spread_ns:.1f} ns/call, on_market {market_ns:.1f} ns/call")
    assert spread_ns < SANITY_NS and market_ns < SANITY_NS
