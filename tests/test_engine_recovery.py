"""The engine's defined recoveries: a sequence gap, a crossed book or an empty book side pauses quoting and
cancels everything; malformed lines are skipped and counted mid-run; an interrupted replay still shuts down
clean; no exception escapes the engine for decoded events within the venue bounds (property test).

Inputs are the real USDⓈ-M recording, altered where said (one depth line removed, garbage lines added),
and small synthetic books (labelled)."""
import asyncio
import functools
import gzip
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmcore.config import load_config
from mmcore.instruments import load_instrument
from mmcore.persistence.journal import NullJournal
from mmcore.runners.replay import build_session, run_session, summarize
from mmcore.sim.exchange import SimExchange
from mmcore.engine.wiring import build_engine, sim_models
from mmcore_ext.book import L2Book, sync_rule_for_market
from mmcore_ext.events import BookTicker, DepthDiff, DepthSnapshot, Trade
from mmcore_ext.quoting import AvellanedaStoikov, EwmaVolatility

from datafiles import USDM_FILE


def _replay(path, *overrides):
    s = build_session(load_config(overrides=list(overrides)), str(path), market="binance_usdm")
    asyncio.run(run_session(s))
    return s, summarize(s)


def _lines():
    with gzip.open(USDM_FILE, "rb") as fh:
        return fh.readlines()


def _write(tmp_path, lines, name):
    p = tmp_path / name
    with gzip.open(p, "wb") as fh:
        fh.writelines(lines)
    return p


def test_sequence_gap_in_real_data_pauses_quoting_and_cancels_everything(tmp_path):
    lines = _lines()
    depth = [i for i, ln in enumerate(lines) if b'"depthUpdate"' in ln]
    drop = depth[3000]                                   # one diff, long after the snapshot: a gap
    gap_ts = int(lines[depth[3001]].split(b" ")[0])
    s, summary = _replay(_write(tmp_path, lines[:drop] + lines[drop + 1:], "gap.gz"))
    assert summary["gaps"] == 1
    assert s.engine.counters["pauses"] >= 1 and s.engine.paused
    assert s.engine.book.synced is False                 # waits for a new snapshot (none in a recording)
    assert s.engine.book.mid_x2() == 0 and float(summary["last_mid"]) > 60_000   # marked at the last valid mid
    assert all(f["ts_ns"] <= gap_ts + 10**9 for f in summary["fills"])   # nothing trades after the gap
    assert summary["shutdown_clean"] is True and summary["buy_fills"] + summary["sell_fills"] > 0


def test_malformed_lines_mid_run_are_skipped_and_counted(tmp_path):
    lines = _lines()
    bad = lines[:20000] + [b"garbage\n", b"1723161300000000000 {\"stream\": \n"] + lines[20000:]
    s, summary = _replay(_write(tmp_path, bad, "bad.gz"))
    assert summary["malformed_lines"] == 2
    assert summary["events"] == len(lines) and summary["gaps"] == 0


def test_interrupted_replay_stops_early_and_still_shuts_down_clean():
    s = build_session(load_config(), str(USDM_FILE))

    def interrupt(done, total):
        s.interrupted = True                              # as the SIGINT/SIGTERM handler does

    asyncio.run(run_session(s, interrupt))
    summary = summarize(s)
    assert summary["interrupted"] is True and summary["events"] < 10_000
    assert summary["shutdown_clean"] is True and not s.sim.open_orders()


def test_crossed_book_pauses_quoting_until_it_uncrosses():
    """Synthetic book (labelled): ask drops below the bid, then recovers."""
    s = build_session(load_config(), str(USDM_FILE))
    eng, sim = s.engine, s.sim
    t = 1_723_161_300_000_000_000
    eng.on_event(DepthSnapshot.from_ticks(100, [(618000, 5000)], [(618010, 5000)], t, t))
    sim.advance(t + 10**8)
    assert not eng.paused and eng.orders.placed == 2
    # USDⓈ-M: the first diff after the snapshot straddles it (U <= 100 <= u), the next chains on pu.
    eng.on_event(DepthDiff.from_ticks(100, 101, [], [(617990, 10)], 99, t + 10**8, t + 10**8))
    sim.advance(t + 2 * 10**8)
    assert eng.book.is_crossed() and eng.paused and eng.pause_reason == "crossed book"
    assert not eng.orders.orders and not sim.open_orders()          # all cancelled and confirmed
    eng.on_event(DepthDiff.from_ticks(102, 102, [], [(617990, 0)], 101, t + 3 * 10**8, t + 3 * 10**8))
    assert eng.book.gaps == 0
    assert not eng.paused and eng.orders.placed == 4


def test_a_book_with_one_side_empty_pauses_quoting_instead_of_raising():
    """Synthetic book (labelled): a snapshot with bids only has no mid; the quoter would raise ValueError
    (mid must be > 0). The engine pauses quoting and cancels everything until both sides are back."""
    s = build_session(load_config(), str(USDM_FILE))
    eng, sim = s.engine, s.sim
    t = 1_723_161_300_000_000_000
    eng.on_event(DepthSnapshot.from_ticks(100, [(618000, 5000)], [(618010, 5000)], t, t))
    sim.advance(t + 10**8)
    assert not eng.paused and len(sim.open_orders()) == 2
    eng.on_event(DepthDiff.from_ticks(100, 101, [], [(618010, 0)], 99, t + 10**8, t + 10**8))   # asks gone
    sim.advance(t + 2 * 10**8)
    assert eng.paused and eng.pause_reason == "a book side is empty" and not sim.open_orders()
    eng.on_event(DepthDiff.from_ticks(102, 102, [], [(618010, 7)], 101, t + 3 * 10**8, t + 3 * 10**8))
    assert not eng.paused and eng.counters["quotes_refused"] == 0


def test_flatten_on_shutdown_closes_the_position_with_ioc_orders():
    s = build_session(load_config(overrides=["execution.flatten_on_shutdown=true"]), str(USDM_FILE))
    held = []

    def stop_when_positioned(done, total):        # interrupt (as SIGINT does) while a position is open
        if s.portfolio.position != 0 and not held:
            held.append(s.portfolio.position)
            s.interrupted = True

    asyncio.run(run_session(s, stop_when_positioned))
    summary = summarize(s)
    assert summary["interrupted"] is True and held and held[0] != 0
    assert s.portfolio.position == 0 and summary["shutdown_clean"] is True
    assert summary["flatten_orders"] >= 1
    taker = [f for f in s.engine.fills if not f.is_maker]
    assert sum(f.side * f.qty for f in taker) == -held[0]


class _Unanswered:
    """An execution client that sends nothing back (a venue that never answers)."""

    def __init__(self):
        self.submits = []

    def submit(self, ts, coid, side, px, qty, post_only=True):
        self.submits.append((coid, side, px, qty, post_only))

    def cancel(self, ts, coid):
        pass


def _positioned(session, lots):
    """Give the portfolio a position of ``lots`` (a synthetic fill, labelled as such)."""
    session.portfolio.on_fill(1 if lots > 0 else -1, 600_000, abs(lots), Decimal(0))
    assert session.portfolio.position == lots


def test_flatten_with_no_price_to_hit_gives_up_after_its_retries():
    # No event replayed: the book is empty, so there is no bid to sell into.
    s = build_session(load_config(overrides=["execution.flatten_on_shutdown=true", "execution.flat_retries=3"]),
                      str(USDM_FILE))
    _positioned(s, 5)
    eng = s.engine
    eng.start_flatten(0)
    for _ in range(10):
        if eng.flatten_due_ns < 0:
            break
        eng.flatten_step(eng.flatten_due_ns)
    assert eng.flatten_due_ns == -1                      # it ended (the replay shutdown loops until then)
    assert eng.counters["flatten_failed"] == 1 and eng.counters["flatten_orders"] == 0


def test_flatten_never_has_two_orders_in_flight():
    s = build_session(load_config(overrides=["execution.flat_retries=4"]), str(USDM_FILE))
    asyncio.run(run_session(s))                          # a real book to price the flatten order off
    eng = s.engine
    eng.orders.exec = venue = _Unanswered()
    _positioned(s, s.portfolio.position + 3 if s.portfolio.position >= 0 else s.portfolio.position - 3)
    ts = s.last_ts_ns
    eng.start_flatten(ts)
    while eng.flatten_due_ns >= 0:
        eng.flatten_step(eng.flatten_due_ns)
    assert len(venue.submits) == 1 and venue.submits[0][4] is False      # one IOC, never a second
    assert eng.counters["flatten_orders"] == 1 and eng.counters["flatten_failed"] == 1


# --- nothing escapes Engine.on_event / on_timer for a decoded event (issue 8, item 6) ---

_MAX_PX = 2**53        # the venue-edge bound on prices and quantities (instrument table: at most 2**53)
#: Valid configs (every value inside its documented range) at the edges of the strategy's arithmetic.
_EDGE_CONFIGS = [
    [],
    ["quoter:extreme"],          # quotes beyond int64 ticks once q != 0 (the start refuses this config; see below)
    ["strategy.kappa=1.0e-300"],                                              # ln(1 + gamma/kappa) huge
    ["strategy.max_spread_bps=9900", "strategy.min_spread_bps=9900", "risk.max_spread_frac=0.99"],
    ["strategy.gamma=0.000000001", "strategy.kappa=1000000", "execution.order_ttl_seconds=0.001"],
]
_px = st.one_of(st.integers(1, 1000), st.integers(600_000, 620_000), st.integers(1, _MAX_PX),
                st.sampled_from([1, 2, _MAX_PX - 1, _MAX_PX]))
_qty = st.one_of(st.integers(0, 10_000), st.integers(0, _MAX_PX), st.sampled_from([0, 1, _MAX_PX]))
_levels = st.lists(st.tuples(_px, _qty), max_size=3)
_step = st.tuples(st.sampled_from(["snapshot", "diff", "diff", "trade", "trade", "ticker", "timer"]),
                  _levels, _levels, _px, st.integers(1, _MAX_PX), st.sampled_from([1, -1]),
                  st.integers(0, 20 * 10**9), st.booleans())


@functools.lru_cache(maxsize=None)
def _edge_config(cfg):
    c = load_config(overrides=[kv for kv in cfg if "=" in kv])
    return c, load_instrument("binance_usdm", "BTCUSDT", c.resolve_path(c.get("data.markets")))


def _bare_engine(cfg):
    """An engine and simulated exchange wired as build_session does, without reading a recording."""
    c, inst = _edge_config(cfg)
    book = L2Book(sync_rule_for_market(inst.market))
    box = []
    latency, maker, taker = sim_models(c, inst)
    sim = SimExchange(book, latency, maker, lambda rep: box[0].on_report(rep), taker_fees=taker)
    box.append(build_engine(c, inst, sim, NullJournal(), book))
    if "quoter:extreme" in cfg:
        # gamma 100, sigma 1e6 per sqrt(s), T one day: the start refuses this combination, but an online sigma
        # that grows on hostile data can still reach such quotes, so the engine must refuse them.
        box[0].quoter = AvellanedaStoikov(100.0, 0.5, 86400.0, 1.0, 20.0, float(inst.tick_size))
        box[0].vol = EwmaVolatility(86400.0, 100 * 10**6, 1e6)
    return box[0], sim


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cfg=st.sampled_from(_EDGE_CONFIGS), steps=st.lists(_step, min_size=1, max_size=40))
def test_no_exception_escapes_the_engine_for_decoded_events_within_the_venue_bounds(cfg, steps):
    """Synthetic events (labelled) with prices and quantities anywhere in the venue-edge bounds, valid
    configs at the edges of the quoting arithmetic, the simulated exchange filling our orders from the
    trades, and timer calls between events: the engine never raises (refused quotes are counted)."""
    eng, sim = _bare_engine(tuple(cfg))
    t, uid = 1_700_000_000_000_000_000, 100
    for i, (kind, bids, asks, px, qty, side, dt, gap) in enumerate(steps):
        t += dt
        if kind == "snapshot":
            ev = DepthSnapshot.from_ticks(uid, [(p, q or 1) for p, q in bids], [(p, q or 1) for p, q in asks], t, t)
        elif kind == "diff":
            ev = DepthDiff.from_ticks(uid, uid + 1, bids, asks, uid - 5 if gap else uid - 1, t, t)
            uid += 1
        elif kind == "trade":
            ev = Trade(t, t, i + 1, px, qty, side)
            sim.on_trade(t, i + 1, px, qty, side)
        elif kind == "ticker":
            ev = BookTicker(t, t, uid, px, qty, px + 1, qty)
        else:
            sim.advance(t)
            eng.on_timer(t)
            continue
        sim.advance(t)
        eng.on_event(ev)
    eng.on_timer(t + 10**9)


def test_microprice_fair_price_centres_the_quotes_on_the_size_weighted_mid():
    """Synthetic book (labelled): 5.000 BTC bid at 61800.0, 0.500 ask at 61801.0: the microprice (61800.909) is
    near the thin ask; the mid (61800.5) with fair_price mid."""
    from mmcore.engine.engine import microprice
    assert microprice(618000, 5000, 618010, 500) == pytest.approx((618000 * 500 + 618010 * 5000) / 5500)
    assert microprice(618000, 0, 618010, 0) == 618005.0
    t = 1_723_161_300_000_000_000
    centres = {}
    for mode in ("mid", "microprice"):
        s = build_session(load_config(overrides=[f"strategy.fair_price={mode}"]), str(USDM_FILE))
        s.engine.on_event(DepthSnapshot.from_ticks(100, [(618000, 5000)], [(618010, 500)], t, t))
        centres[mode] = s.engine.quoter.reservation
    assert centres["mid"] == pytest.approx(61800.5)
    assert centres["microprice"] == pytest.approx((618000 * 500 + 618010 * 5000) / 5500 * 0.1)


def test_an_unknown_fair_price_is_refused_by_name():
    from mmcore.config import ConfigError
    with pytest.raises(ConfigError) as ei:
        load_config(overrides=["strategy.fair_price=vwap"])
    assert any("strategy.fair_price = 'vwap'" in e for e in ei.value.errors)


def test_improve_touch_false_joins_the_best_bid_and_offer_at_most():
    """Synthetic book (labelled): a 40 USDT wide market (61800.0 / 61840.0); the model's quotes (about 18 USDT
    wide at the start of its cycle) sit inside it. With improve_touch false they are held at the touch; by
    default they improve it."""
    t = 1_723_161_300_000_000_000
    quotes = {}
    for it in ("true", "false"):
        s = build_session(load_config(overrides=[f"strategy.improve_touch={it}"]), str(USDM_FILE))
        s.engine.on_event(DepthSnapshot.from_ticks(100, [(618000, 5000)], [(618400, 5000)], t, t))
        quotes[it] = (s.engine.last_bid, s.engine.last_ask)
    assert 618000 < quotes["true"][0] < quotes["true"][1] < 618400               # inside the spread
    assert quotes["false"] == (618000, 618400)
