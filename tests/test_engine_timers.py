"""Liveness without market events (issue 8, items 3 and 6): ``Engine.on_timer`` drives staleness, order TTL,
flattening and the PnL check; a quote that cannot be computed is a refused quote, not a crash.

Replay tests use the real USDⓈ-M recording (``data/``), once with a synthetic silence inserted; engine-level
tests use synthetic books (labelled). The live session's stalled-feed test is in test_live_crash.py (the
Binance-compatible emulator's feed stalls while its exchange goes on).
"""
import asyncio
import gzip
import logging
import subprocess
import sys

from mmcore.config import load_config
from mmcore.engine.engine import QUOTE_REFUSED, STALE_REASON
from mmcore.execution import BUY, OrderAccepted, OrderCanceled, OrderExpired, OrderFilled
from mmcore.runners.replay import build_session, run_session, summarize
from mmcore_ext.events import DepthSnapshot, Trade
from mmcore_ext.quoting import AvellanedaStoikov, EwmaVolatility

from datafiles import ROOT, USDM_FILE

S = 1_000_000_000
T0 = 1_723_161_300_000_000_000
SILENCE_NS = 800 * S
#: Valid config values (each inside its documented range) whose quotes leave int64 ticks once q != 0:
#: q * gamma * sigma^2 * (T - t) = 1 * 100 * 1e12 * 86400 USDT (the slow half-life keeps sigma near its seed).
OVERFLOW = ["strategy.gamma=100", "strategy.sigma_seed=1000000", "strategy.horizon_s=86400",
            "strategy.sigma_half_life_s=86400"]


def _extreme_quoter(eng):
    """Give the engine the quoter and sigma estimator that OVERFLOW would build. The start refuses OVERFLOW
    (its reservation price at full inventory is beyond the instrument's max price), so a run can only meet
    such a quote when the online sigma grows far past its seed on hostile data; this stands in for that."""
    tick = float(eng.instrument.tick_size)
    eng.quoter = AvellanedaStoikov(100.0, 0.5, 86400.0, 1.0, 20.0, tick)
    eng.vol = EwmaVolatility(86400.0, 100 * 10**6, 1e6)


def _with_silence(src, dst, at_line, shift_ns):
    """Synthetic: the real recording with every local timestamp from line ``at_line`` on shifted by
    ``shift_ns`` (the feed stops for that long, then goes on). Returns the last timestamp before the silence."""
    last = None
    with gzip.open(src, "rb") as fi, gzip.open(dst, "wb", compresslevel=1) as fo:
        for n, line in enumerate(fi):
            sp = line.index(b" ")
            ts = int(line[:sp])
            if n >= at_line:
                line = b"%d" % (ts + shift_ns) + line[sp:]
            else:
                last = ts
            fo.write(line)
    return last


def test_resting_orders_are_cancelled_when_the_recording_goes_silent_and_not_filled_after_it(tmp_path):
    path = tmp_path / "usdm_silence.gz"
    last = _with_silence(USDM_FILE, path, 40_000, SILENCE_NS)
    # The silence is made in the local timestamps only (the exchange's E times go on): the exchange runs on local
    # time here (no feed latency), so the test reasons about one clock.
    cfg = load_config(overrides=["sim.feed_latency=none", "sim.response_latency_ms=0"])
    s = build_session(cfg, str(path))
    reports, submits = [], []
    on_report, submit = s.engine.on_report, s.sim.submit
    s.engine.on_report = lambda rep: (reports.append(rep), on_report(rep))
    s.sim.submit = lambda ts, coid, *a, **k: (submits.append((ts, coid)), submit(ts, coid, *a, **k))
    asyncio.run(run_session(s))
    summary = summarize(s)
    resume = last + SILENCE_NS
    stale_ns = s.engine.stale_after_ns
    cancel_latency = int(cfg.get("sim.cancel_latency_ms") * 1_000_000)
    # Orders resting at the exchange when the feed stopped (precondition: there are some).
    done_before = {r.client_order_id for r in reports if r.ts_ns <= last
                   and type(r) in (OrderCanceled, OrderExpired, OrderFilled)
                   and (type(r) is not OrderFilled or r.client_order_id not in s.engine.orders.orders)}
    resting = {r.client_order_id for r in reports if type(r) is OrderAccepted and r.ts_ns <= last} - done_before
    assert resting
    cancelled = {r.client_order_id: r.ts_ns for r in reports if type(r) is OrderCanceled and r.ts_ns > last}
    for coid in resting:
        assert last < cancelled.get(coid, -1) <= last + stale_ns + cancel_latency + 1, coid
    assert not [r for r in reports if type(r) is OrderFilled and last < r.ts_ns < resume]
    assert not [c for ts, c in submits if last + stale_ns < ts < resume]           # nothing quoted in the silence
    after = {c for ts, c in submits if ts >= resume}
    assert after, "quoting resumed on fresh data"
    assert all(f.client_order_id in after for f in s.engine.fills if f.ts_ns >= resume)
    assert summary["stale_pauses"] == 1 and summary["shutdown_clean"] is True


# --- engine level, synthetic books (labelled) ---

def _session(*overrides):
    # Reports reach the engine at once (no response latency): these tests drive the exchange by hand and check
    # the engine's reaction to each report.
    s = build_session(load_config(overrides=["sim.response_latency_ms=0", *overrides]), str(USDM_FILE))
    return s, s.engine, s.sim


def _sync(eng, sim, t):
    """Synthetic book: one level a side around 61800.0 USDT; the engine quotes both sides."""
    eng.on_event(DepthSnapshot.from_ticks(100, [(618000, 5000)], [(618010, 5000)], t, t))
    sim.advance(t + 10**8)
    assert not eng.paused and set(eng.orders.working.values()) != {None}


def _fill_bid(eng, sim, t):
    """A synthetic trade through our bid fills it at the exchange; the engine then has a long position."""
    bid = eng.orders.working[BUY]
    trade = Trade(t, t, 1, bid.price - 1, 5000, -1)
    sim.on_trade(t, trade.trade_id, trade.price, trade.qty, trade.side)
    assert eng.portfolio.position == bid.qty
    return trade


def test_timer_pauses_stale_quoting_cancels_everything_and_fresh_data_resumes():
    s, eng, sim = _session()
    eng.on_timer(T0)                                   # armed before any market data: nothing to do
    assert eng.paused and eng.counters["stale_pauses"] == 0 and eng.next_timer_ns > T0
    _sync(eng, sim, T0)
    eng.on_timer(T0 + 2 * S)
    deadline = T0 + eng.stale_after_ns + 1               # the gate's "older than stale_after"
    assert eng.next_timer_ns <= deadline and not eng.paused
    eng.on_timer(deadline - 1)
    assert not eng.paused
    eng.on_timer(deadline)
    sim.advance(deadline + 10**8)
    assert eng.paused and eng.pause_reason == STALE_REASON and eng.counters["stale_pauses"] == 1
    assert not eng.orders.orders and not sim.open_orders()
    eng.on_timer(deadline + 10 * S)                     # still stale: counted once per pause
    assert eng.counters["stale_pauses"] == 1
    t = deadline + 20 * S
    eng.on_event(Trade(t, t, 1, 618000, 1, -1))           # fresh data
    sim.advance(t + 10**8)
    assert not eng.paused and len(sim.open_orders()) == 2


def test_timer_cancels_working_orders_at_their_ttl_without_a_new_quote():
    s, eng, sim = _session("execution.order_ttl_seconds=2")
    _sync(eng, sim, T0)
    placed = eng.orders.placed
    eng.on_timer(T0 + S)
    assert eng.next_timer_ns == T0 + 2 * S               # the working orders' TTL expiry
    eng.on_timer(T0 + 2 * S - 1)
    assert eng.orders.counters["ttl_cancels"] == 0
    eng.on_timer(T0 + 2 * S)
    sim.advance(T0 + 2 * S + 10**8)
    assert eng.orders.counters["ttl_cancels"] == 2 and not sim.open_orders()
    assert eng.orders.placed == placed                    # replaced by the next quote, not by the timer


def test_timer_runs_the_due_flatten_attempt_while_halted():
    s, eng, sim = _session("execution.flat_retry_backoff=1")
    _sync(eng, sim, T0)
    _fill_bid(eng, sim, T0 + 1)
    eng.gate.halt(T0 + 2, "synthetic kill switch")
    eng.book.load_snapshot(DepthSnapshot.from_ticks(101, [], [(618010, 5000)], T0, T0))   # no bid to hit
    eng.on_timer(T0 + 3)                                  # HALTED: cancel all, flatten attempt 1 waits
    assert eng.counters["flatten_orders"] == 0 and eng.flatten_due_ns == T0 + 3 + S
    assert eng.next_timer_ns == T0 + 3 + S
    eng.book.load_snapshot(DepthSnapshot.from_ticks(102, [(618000, 5000)], [(618010, 5000)], T0, T0))
    eng.on_timer(T0 + 3 + S)                              # attempt 2, with no market event
    assert eng.counters["flatten_orders"] == 1


def test_a_quote_outside_int64_ticks_is_refused_counted_logged_once_and_quotes_nothing(caplog):
    s, eng, sim = _session()
    _extreme_quoter(eng)
    _sync(eng, sim, T0)
    _fill_bid(eng, sim, T0 + 1)
    with caplog.at_level(logging.ERROR, logger="mmcore.engine"):
        for i in range(1, 6):
            t = T0 + i * 10**8
            eng.on_event(Trade(t, t, 1 + i, 618005, 1, 1))
            sim.advance(t + 5 * 10**7)
    assert eng.counters["quotes_refused"] == 5
    assert eng.paused and eng.pause_reason.startswith(QUOTE_REFUSED)
    assert not eng.orders.orders and not sim.open_orders()       # no quote: the ask was cancelled too
    refused = [r for r in caplog.records if r.name == "mmcore.engine" and "quote refused" in r.getMessage()]
    assert len(refused) == 1 and "int64" in refused[0].getMessage()


def test_a_config_whose_quotes_would_overflow_is_refused_at_start_naming_its_fields(tmp_path):
    """On main this config passed validation and the backtest died mid-run (exit 2, no report); now the start
    refuses it (exit 2, one config error naming the fields), before any replay."""
    cmd = [sys.executable, "-m", "mmcore", "backtest", "--data", str(USDM_FILE), "--out", str(tmp_path)]
    for kv in OVERFLOW:
        cmd += ["--set", kv]
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2, p.stderr[-2000:]
    assert "Traceback" not in p.stderr and "config error: strategy.gamma" in p.stderr
    assert "strategy.sigma_seed" in p.stderr and "strategy.horizon_s" in p.stderr
    assert not (tmp_path / "report.json").exists()
