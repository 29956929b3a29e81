"""Simulated exchange models: risk-averse and probabilistic queues, cross fills from depth and bookTicker, the
fresh top of book, entry/response latency ordering, recorded latencies, the feed-latency de-bias, the ``sim``
config. The books here are tiny synthetic stand-ins (labelled) except where the bundled real recording is
named."""
import asyncio
from decimal import Decimal
from types import SimpleNamespace

import pytest

from mmcore.config import ConfigError, load_config
from mmcore.execution import BUY, SELL, OrderAccepted, OrderCanceled, OrderCancelRejected, OrderFilled, OrderRejected
from mmcore.sim.exchange import SimExchange
from mmcore.sim.feed import FeedClock, median_offset_ns
from mmcore.sim.models import (ConservativeQueue, ConstantLatency, MakerFee, ProbQueue, RecordedLatency,
                               RiskAverseQueue, log_prob, make_queue, power_prob)
from mmcore_ext.events import DepthDiff
from datafiles import USDM_FILE


class SyntheticBook:
    """Synthetic top of book (labelled): best bid/ask and quantities per (side, price); ``last_update_id``."""

    def __init__(self, bid=100, ask=102, levels=None, last_update_id=10):
        self.bid, self.ask, self.levels, self.last_update_id, self.synced = bid, ask, levels or {}, last_update_id, True

    def best_bid_px(self):
        return self.bid

    def best_ask_px(self):
        return self.ask

    def qty_at(self, side, price):
        return self.levels.get((side, price), 0)


def make(book=None, queue=None, entry=10, cancel=10, response=0):
    reps = []
    sim = SimExchange(book or SyntheticBook(), ConstantLatency(entry, cancel, response),
                      MakerFee(Decimal(0), Decimal("0.0001")), reps.append, queue or ConservativeQueue())
    return sim, reps


def fills(reps):
    return [r for r in reps if type(r) is OrderFilled]


# --- queue models ---

@pytest.mark.parametrize("queue, filled", [(ConservativeQueue(), []), (RiskAverseQueue(), [2])])
def test_risk_averse_queue_caps_ahead_at_the_level_on_a_decrease_conservative_does_not(queue, filled):
    book = SyntheticBook(levels={(BUY, 100): 10})
    sim, reps = make(book, queue)
    sim.submit(0, "a", BUY, 100, 2)
    sim.advance(10)
    assert sim._by_coid["a"].ahead == 10
    sim.on_depth_diff(20, DepthDiff.from_ticks(11, 11, [(100, 3)], []))    # 7 lots left the level
    assert sim._by_coid["a"].ahead == (3 if isinstance(queue, RiskAverseQueue) else 10)
    sim.on_depth_diff(25, DepthDiff.from_ticks(12, 12, [(100, 8)], []))    # an increase never moves us back
    assert sim._by_coid["a"].ahead == (3 if isinstance(queue, RiskAverseQueue) else 10)
    sim.on_trade(30, 1, 100, 5, SELL)          # risk-averse: 3 ahead, then 2 fill us
    assert [f.qty for f in fills(reps)] == filled
    if filled:
        assert sim.fill_counts == {"queue": 1, "trade_through": 0, "cross": 0}


def test_prob_queue_advance_follows_hftbacktest_formula():
    o = SimpleNamespace()
    q = ProbQueue(power_prob(3.0))
    q.new_order(o, 4)                          # 4 ahead; the level grows to 10 behind us
    q.depth(o, 4, 10)
    assert o.ahead == 4
    q.depth(o, 10, 7)                          # front 4, back 6, 3 left: p = 6^3 / (6^3 + 4^3)
    p = 216 / 280
    assert o.ahead == pytest.approx(4 - (1 - p) * 3)
    lo = SimpleNamespace()
    ql = make_queue("prob_log")
    ql.new_order(lo, 4)
    ql.depth(lo, 4, 10)
    ql.depth(lo, 10, 7)
    pl = log_prob(4, 6)
    assert pl == pytest.approx(1.9459101 / (1.9459101 + 1.6094379))
    assert lo.ahead == pytest.approx(4 - (1 - pl) * 3)
    assert 0 < lo.ahead < o.ahead < 4          # log puts more of the decrease in front than power 3


def test_prob_queue_does_not_count_a_trade_twice_and_fills_past_the_front():
    o = SimpleNamespace()
    q = make_queue("prob_power", 2.0)
    q.new_order(o, 5)
    assert q.trade(o, 2) == 0 and o.ahead == 3     # trade at our price: 3 ahead
    q.depth(o, 5, 3)                               # the level shrank by exactly the trade: nothing more
    assert o.ahead == 3
    assert q.trade(o, 5) == 2                      # 3 clear the front, 2 fill us
    with pytest.raises(ValueError):
        make_queue("fifo")


# --- cross fills and the fresh top ---

def test_market_crossing_our_bid_in_a_depth_diff_fills_it_in_full_at_our_price():
    book = SyntheticBook(bid=99, ask=102)
    sim, reps = make(book, RiskAverseQueue())
    sim.submit(0, "b", BUY, 100, 3)            # inside the spread: nothing ahead
    sim.submit(0, "s", SELL, 102, 1)
    sim.advance(10)
    book.ask = 100                             # the diff below brought the best ask down to our bid
    sim.on_depth_diff(20, DepthDiff.from_ticks(11, 11, [], [(100, 4), (101, 2)]))
    f = fills(reps)
    assert [(x.client_order_id, x.price, x.qty, x.is_maker) for x in f] == [("b", 100, 3, True)]
    assert sim.fill_counts["cross"] == 1 and sim.fill_lots["cross"] == 3
    assert [o[0] for o in sim.open_orders()] == ["s"]


def test_a_fresh_book_ticker_crosses_our_ask_and_a_stale_one_does_not():
    book = SyntheticBook(bid=100, ask=103, last_update_id=10)
    sim, reps = make(book)
    sim.submit(0, "s", SELL, 102, 1)
    sim.advance(10)
    sim.on_book_ticker(20, 9, 102, 1, 103, 1)      # older than the book: ignored
    assert not fills(reps) and sim.best_bid_px() == 100
    sim.on_book_ticker(30, 12, 102, 1, 103, 1)     # newer: the best bid reached our ask
    assert [(x.client_order_id, x.price, x.qty) for x in fills(reps)] == [("s", 102, 1)]
    assert sim.fill_counts["cross"] == 1


def test_post_only_check_uses_the_book_ticker_top_when_it_is_newer_than_the_book():
    book = SyntheticBook(bid=100, ask=103, last_update_id=10)
    sim, reps = make(book)
    sim.on_book_ticker(0, 11, 100, 1, 101, 1)      # the ask came down to 101 before the next diff
    sim.submit(0, "b", BUY, 101, 1)
    sim.advance(10)
    assert type(reps[-1]) is OrderRejected
    book.last_update_id = 11                       # the depth caught up: the book's top again
    assert sim.best_ask_px() == 103


# --- latency ordering ---

def test_a_cancel_that_arrives_after_a_fill_is_rejected_and_the_fill_stands():
    sim, reps = make(entry=10, cancel=50)
    sim.submit(0, "a", BUY, 100, 1)
    sim.advance(10)
    sim.cancel(20, "a")                            # effective at 70
    sim.on_trade(40, 1, 99, 5, SELL)               # trades through our bid before the cancel arrives
    sim.advance(70)
    assert [type(r) for r in reps] == [OrderAccepted, OrderFilled, OrderCancelRejected]
    assert sim.fill_counts["trade_through"] == 1


def test_reports_reach_us_only_after_the_response_latency():
    sim, reps = make(entry=10, cancel=10, response=50)
    sim.submit(0, "a", BUY, 100, 1)
    sim.advance(59)                                # accepted at 10 at the exchange, reported at 60
    assert reps == [] and sim.open_orders() == [("a", BUY, 100, 1)]
    sim.deliver(60)
    assert reps == [OrderAccepted(10, "a", "1")]
    sim.cancel(60, "a")                            # cancelled at 70, reported at 120
    sim.on_trade(65, 1, 99, 1, SELL)               # the fill at 65 is reported at 115, before the cancel's reply
    sim.advance(114)
    assert len(reps) == 1 and sim.in_flight() == 2
    sim.advance(120)
    assert [type(r) for r in reps] == [OrderAccepted, OrderFilled, OrderCancelRejected]


def test_recorded_latency_interpolates_and_draws_deterministically(tmp_path):
    lat = RecordedLatency([(0, 10, 100), (1000, 30, 300)])
    assert lat.order_arrival(500) == 520 and lat.response(500) == 700
    assert lat.order_arrival(-5) == 5 and lat.cancel_arrival(5000) == 5030      # edges: nearest sample
    rows = [(i * 10, i, 100 + i) for i in range(1, 50)]
    a, b = RecordedLatency(rows, "draw", seed=7), RecordedLatency(rows, "draw", seed=7)
    seq = [a.order_arrival(0) for _ in range(20)]
    assert seq == [b.order_arrival(0) for _ in range(20)] and len(set(seq)) > 5
    f = tmp_path / "lat.csv"
    f.write_text("ts_ns,entry_ns,response_ns\n0,10,20\n5,11,21\n")
    assert RecordedLatency.from_file(f).order_arrival(5) == 16
    f.write_text("0,10,20\n0,11,21\n")
    with pytest.raises(ValueError, match="not increasing"):
        RecordedLatency.from_file(f)
    f.write_text("0,10,99999999999999\n")
    with pytest.raises(ValueError, match="latency outside"):
        RecordedLatency.from_file(f)


# --- feed latency ---

def test_feed_clock_takes_out_the_median_offset_and_keeps_order():
    ms = 1_000_000
    evs = [SimpleNamespace(ts_event_ns=e * ms, ts_local_ns=e * ms + off * ms)
           for e, off in ((1000, -1270), (1001, -1269), (1002, -1268), (1003, -1250), (1004, -1271))]
    offset, n = median_offset_ns(evs + [SimpleNamespace(ts_event_ns=0, ts_local_ns=5)])
    assert (offset, n) == (-1269 * ms, 5)
    clock = FeedClock(offset, 2 * ms)
    xs = [clock.exchange_time(e.ts_event_ns, e.ts_local_ns) for e in evs]
    lat = [e.ts_local_ns - x for e, x in zip(evs, xs)]
    assert lat[1] == 2 * ms and lat[3] == 21 * ms          # the median event: the base; a late one: + 19 ms
    assert xs == sorted(xs) and all(x <= e.ts_local_ns for x, e in zip(xs, evs))
    assert lat[4] == 0                                     # 2 ms earlier than the median's: clamped at 0


def test_sim_config_fields_are_validated_by_name():
    with pytest.raises(ConfigError, match="sim.queue_model"):
        load_config(overrides=["sim.queue_model=fifo"])
    with pytest.raises(ConfigError, match="sim.latency_file"):
        load_config(overrides=["sim.latency_model=recorded"])
    with pytest.raises(ConfigError, match="sim.feed_latency_base_ms"):
        load_config(overrides=["sim.feed_latency_base_ms=-1"])
    with pytest.raises(ConfigError, match="sim.response_latency_ms"):
        load_config(overrides=["sim.response_latency_ms=1.0e+9"])


def test_replay_of_the_real_recording_reports_fills_by_cause_and_the_recorder_offset():
    """Real data (the bundled USDⓈ-M file): the recorder's clock runs ~1.27 s behind Binance's."""
    from mmcore.runners.replay import build_session, run_session, summarize
    s = build_session(load_config(), str(USDM_FILE))
    asyncio.run(run_session(s))
    d = summarize(s)
    sim = d["sim"]
    assert -1275 < sim["feed"]["offset_ms"] < -1265
    assert 0 <= sim["feed"]["latency_ms_p1"] <= sim["feed"]["latency_ms_p50"] <= sim["feed"]["latency_ms_p99"] < 100
    causes = sim["fill_causes"]
    assert sum(c["fills"] for c in causes.values()) == d["fill_count"] > 0
    assert sum(Decimal(c["volume"]) for c in causes.values()) == Decimal(d["buy_volume"]) + Decimal(d["sell_volume"])
    assert sim["queue_model"] == "risk_averse" and d["shutdown_clean"]


def test_drawn_response_latencies_never_reorder_reports():
    rows = [(i, 1, 5 if i % 2 else 500) for i in range(1, 40)]     # responses of 5 or 500 ns, drawn at random
    reps = []
    sim = SimExchange(SyntheticBook(), RecordedLatency(rows, "draw", seed=3), MakerFee(Decimal(0), Decimal("0.0001")),
                      reps.append, ConservativeQueue())
    for i in range(20):
        sim.submit(i * 10, f"o{i}", BUY, 90 - i, 1)
    sim.advance(10**6)
    assert [r.client_order_id for r in reps] == [f"o{i}" for i in range(20)]
