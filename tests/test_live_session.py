"""The paper session (mmcore.runners.live.Session) with a scripted in-process feed: the bundled real recordings'
lines, re-stamped with the wall clock at delivery as a live feed stamps frames, delivered on the event loop.

The network feed (picows) has its own tests against the emulator; these check what the session does with
whatever feed it is given: one engine per symbol, snapshots asked when a book is unsynced, a stale feed pauses
and forgets the book, the global exposure is the sum over symbols, the stop is clean, the summary has every
symbol and a total."""
from __future__ import annotations

import asyncio
import time

import orjson
import pytest

from emukit import SPOT_BTC, SPOT_ETH, USDM_BTC, USDM_ETH
from mmcore.config import load_config
from mmcore.instruments import load_instrument
from mmcore.runners.live import STALE, LIVE, Session
from mmcore.runners.venue_run import session_summary
from mmcore.venues.binance.recording import BinanceDecoder, open_recording
from mmcore_ext.book import ASK, BID, L2Book, sync_rule_for_market
from mmcore_ext.events import DepthDiff


class ScriptedFeed:
    """MarketDataFeed over recording lines, delivered ``per_tick`` frames at a time (the REST snapshot line taken
    out). A snapshot is delivered only when the session asks (request_snapshot): the recording's own the first
    time, later one built from the feed's mirror book (the recorded snapshot + every diff delivered after it),
    as fresh as a venue's would be."""

    def __init__(self, files: dict, instruments: dict, on_event, on_state, lines: int = 3000, per_tick: int = 50):
        self.symbols = tuple(files)
        self.on_event, self.on_state = on_event, on_state
        self.decoders = {s: BinanceDecoder(instruments[s]).decode for s in files}
        self.instruments = instruments
        self.mirror = {s: L2Book(sync_rule_for_market(instruments[s].market)) for s in files}
        self.snapshots, self.frames = {}, {}
        for s, path in files.items():
            with open_recording(path) as fh:
                rows = [raw for _, raw in zip(range(lines), fh)]
            at = next(i for i, r in enumerate(rows) if b'"lastUpdateId"' in r[:60])
            self.snapshots[s] = rows[at]
            self.frames[s] = rows[:at] + rows[at + 1:]      # diffs before it: buffered by the session's book
            self.mirror[s].load_snapshot(self.decoders[s](rows[at].rstrip(b"\n")))
        self.per_tick = per_tick
        self.asked = []
        self.task = None
        self.done = asyncio.Event()
        self.hold = set()              # symbols whose frames are held back (a stalled stream)

    def _stamp(self, raw: bytes) -> bytes:
        return b"%d" % time.time_ns() + raw[raw.index(b" "):]

    async def start(self):
        for s in self.symbols:
            self.on_state(s, LIVE, "connected")
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self):
        self.pos = pos = dict.fromkeys(self.symbols, 0)
        while any(pos[s] < len(self.frames[s]) for s in self.symbols):
            for s in self.symbols:
                if s in self.hold:
                    continue
                for raw in self.frames[s][pos[s]:pos[s] + self.per_tick]:
                    ev = self.decoders[s](self._stamp(raw).rstrip(b"\n"))
                    if ev is not None:
                        if type(ev) is DepthDiff:
                            self.mirror[s].apply_diff(ev)
                        self.on_event(s, ev)
                pos[s] += self.per_tick
            await asyncio.sleep(0.002)
        self.done.set()

    def _fresh_snapshot(self, symbol) -> bytes:
        # The book after the last delivered diff. Its lastUpdateId: that diff's u on spot (the next diff has
        # U = u + 1); on USDⓈ-M, whose ids jump between events, the next diff's U, so that the next diff
        # straddles it as Binance's USDⓈ-M sync rule wants (U <= lastUpdateId <= u).
        book, inst = self.mirror[symbol], self.instruments[symbol]
        last = book.last_update_id
        if inst.market == "binance_usdm":
            for raw in self.frames[symbol][self.pos[symbol]:]:
                ev = self.decoders[symbol](raw.rstrip(b"\n"))
                if type(ev) is DepthDiff:
                    last = ev.first_update_id
                    break
        side = lambda n: [[str(inst.price_of(p)), str(inst.qty_of(q))] for p, q in book.levels(n, 1000)]
        return b"%d " % time.time_ns() + orjson.dumps({"lastUpdateId": last, "bids": side(BID), "asks": side(ASK)})

    def request_snapshot(self, symbol):
        first = symbol not in self.asked
        self.asked.append(symbol)
        raw = self._stamp(self.snapshots[symbol]).rstrip(b"\n") if first else self._fresh_snapshot(symbol)
        asyncio.get_running_loop().call_soon(lambda: self.on_event(symbol, self.decoders[symbol](raw)))

    async def close(self):
        if self.task:
            self.task.cancel()

    def counters(self):
        return {"frames": sum(len(f) for f in self.frames.values()), "malformed": 0}


def _session(market, files, sets=()):
    config = load_config(overrides=["report.sample_ms=100", *sets])
    inst = {s: load_instrument(market, s) for s in files}
    box = []

    def factory(on_event, on_state):
        box.append(ScriptedFeed(files, inst, on_event, on_state))
        return box[0]
    return Session(config, market, inst, factory), box


@pytest.mark.parametrize("market,files", [
    ("binance_usdm", {"BTCUSDT": USDM_BTC, "ETHUSDT": USDM_ETH}),
    ("binance_spot", {"BTCUSDT": SPOT_BTC, "ETHUSDT": SPOT_ETH})])
def test_paper_session_two_symbols_quotes_both_and_stops_clean(market, files):
    session, box = _session(market, files)

    async def scenario():
        run = asyncio.get_running_loop().create_task(session.run(duration_s=30))
        await asyncio.wait_for(box[0].done.wait(), 25)
        session.request_stop()
        return await run
    clean = asyncio.run(scenario())
    feed = box[0]
    assert clean
    assert sorted(set(feed.asked)) == sorted(files)           # each book asked for its snapshot
    summary = session_summary(session)
    assert set(summary["symbols"]) == set(files)
    for sym, s in summary["symbols"].items():
        ss = session.symbols[sym]
        assert ss.engine.book.synced and s["events"] > 500, sym
        assert s["orders_placed"] > 0, sym                    # it quoted on the live book
        assert ss.engine.orders.coids.prefix == f"mm-{sym.lower()}-"
        assert s["shutdown_clean"] and not ss.sim.open_orders()
        assert s["latency_us"]["p50"] is not None and s["latency_with_parse_us"]["p50"] > 0
    tot = summary["total"]
    assert tot["events"] == sum(s["events"] for s in summary["symbols"].values())
    assert tot["fill_count"] == sum(s["fill_count"] for s in summary["symbols"].values())
    # after the stop nothing is open: the shared exposure is the positions only
    expect = sum(ss.engine.gate.exposure_usdt() for ss in session.symbols.values())
    assert tot["global_exposure_usdt"] == pytest.approx(expect, abs=1e-3)     # rounded to 4 places


def test_global_exposure_cap_acts_across_symbols():
    # A cap that one symbol's two quotes fit in but not both symbols' (USDⓈ-M BTC ~ 56,000 and ETH ~ 2,400
    # USDT per unit; order_qty 0.002 BTC = ~112 USDT per quote; ETH order qty is the same number of lots).
    files = {"BTCUSDT": USDM_BTC, "ETHUSDT": USDM_ETH}
    session, box = _session("binance_usdm", files, ["risk.max_global_notional_usdt=250",
                                                    "risk.max_symbol_notional_usdt=250"])

    async def scenario():
        run = asyncio.get_running_loop().create_task(session.run(duration_s=30))
        await asyncio.wait_for(box[0].done.wait(), 25)
        peak = session.exposure.notional_usdt
        session.request_stop()
        await run
        return peak
    asyncio.run(scenario())
    refused = sum(ss.engine.orders.refusal_counts().get("GLOBAL_NOTIONAL_CAP", 0)
                  for ss in session.symbols.values())
    assert refused > 0                                         # the shared cap refused orders


def test_a_stale_feed_pauses_the_symbol_cancels_and_forgets_its_book_then_resyncs():
    files = {"BTCUSDT": USDM_BTC}
    session, box = _session("binance_usdm", files)
    ss = session.symbols["BTCUSDT"]

    async def scenario():
        run = asyncio.get_running_loop().create_task(session.run(duration_s=30))
        feed = None
        for _ in range(2000):
            await asyncio.sleep(0.005)
            feed = box[0] if box else None
            if feed and ss.engine.orders.orders:
                break
        assert ss.engine.orders.orders, "no order resting before the stale state"
        feed.hold.add("BTCUSDT")
        session.on_state("BTCUSDT", STALE, "test: watchdog")
        await asyncio.sleep(0.3)                              # the paper exchange processes the cancels
        during = (ss.engine.paused, ss.engine.book.synced, len(ss.engine.orders.orders), len(ss.sim.open_orders()))
        asked = len(feed.asked)
        feed.hold.clear()
        session.on_state("BTCUSDT", LIVE, "test: reconnected")
        await asyncio.wait_for(feed.done.wait(), 25)
        session.request_stop()
        await run
        return during, asked, len(feed.asked)
    (paused, synced, tracked, at_sim), asked_before, asked_after = asyncio.run(scenario())
    assert paused and not synced and tracked == 0 and at_sim == 0
    assert asked_after > asked_before                         # a fresh snapshot was asked after LIVE
    assert ss.engine.book.synced and session.counters["stale_states"] == 1


def test_the_session_reports_a_status_line_per_symbol_periodically():
    files = {"BTCUSDT": USDM_BTC, "ETHUSDT": USDM_ETH}
    config = load_config(overrides=["report.status_every_s=1"])
    inst = {s: load_instrument("binance_usdm", s) for s in files}
    seen, box = [], []

    def factory(on_event, on_state):
        box.append(ScriptedFeed(files, inst, on_event, on_state, per_tick=5))
        return box[0]
    session = Session(config, "binance_usdm", inst, factory, on_status=seen.append)
    asyncio.run(session.run(duration_s=2.5))
    assert len(seen) == 2 and all(len(lines) == 2 for lines in seen)
    last = dict(zip(files, seen[-1]))
    for sym, line in last.items():
        assert line.startswith(f"{sym} [live") and " mid " in line and " mid - " not in line
        assert "| ours " in line and "| q " in line and "frame->orders p99" in line
