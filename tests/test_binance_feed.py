"""BinanceFeed against the in-process emulator on the bundled recordings (first lines, BTCUSDT + ETHUSDT): the
feed's books equal the emulator's at checkpoints, on spot and USDⓈ-M, and through the faults (drop, skip_diff,
stall, malformed, refuse_ws)."""
import asyncio

import pytest

from mmcore.venues.base import LIVE, POLLING, STALE

from emukit import SPOT_BTC, SPOT_ETH, USDM_BTC, USDM_ETH, head, running, until
from feedkit import Harness, fault

SYMS = ("BTCUSDT", "ETHUSDT")
LINES = 6000


def data(market, tmp_path, lines=LINES):
    src = (USDM_BTC, USDM_ETH) if market == "binance_usdm" else (SPOT_BTC, SPOT_ETH)
    return [head(p, tmp_path / f"{i}.gz", lines) for i, p in enumerate(src)]


def depth_for(market):
    # the recorded depth stream of each file: every diff is sent as recorded, so the books can be compared at any
    # line (the derived @depth@100ms of USDⓈ-M holds a window back until the next one starts)
    return "depth@0ms" if market == "binance_usdm" else "depth@100ms"


@pytest.mark.parametrize("market", ["binance_spot", "binance_usdm"])
def test_books_equal_the_emulators_at_checkpoints(market, tmp_path):
    async def scenario():
        async with running(data(market, tmp_path), tmp_path, start="paused") as (emu, port):
            h = Harness(market, SYMS, port, depth_stream=depth_for(market))
            await h.feed.start()
            try:
                for _ in range(4):
                    await h.checkpoint(emu, 800)
                await h.wait_state(LIVE, 5)
                c = h.feed.counters()
                assert c["frames"] > 0 and c["malformed"] == 0 and c["snapshots"] >= 2
                assert all(h.trades[s] for s in SYMS)
                assert all(h.gaps[s] == 0 for s in SYMS)
                if market == "binance_usdm":
                    assert set(c["routes"]) == {"public", "market"}
                    assert c["routes"]["market"]["frames"] > 0          # aggTrade on /market
            finally:
                await h.feed.close()
    asyncio.run(scenario())


def test_drop_reconnects_and_resyncs(tmp_path):
    market = "binance_usdm"

    async def scenario():
        async with running(data(market, tmp_path), tmp_path, start="paused") as (emu, port):
            h = Harness(market, SYMS, port, depth_stream=depth_for(market))
            await h.feed.start()
            try:
                await h.checkpoint(emu, 600)
                await h.wait_state(LIVE, 5)
                await fault(port, "drop", target="market")
                await until(lambda: all(any(st == STALE for st, _ in h.states[s][2:]) for s in SYMS), 5,
                            "STALE after the drop")
                await h.checkpoint(emu, 800)
                await h.wait_state(LIVE, 5)
                c = h.feed.counters()
                assert c["reconnects"] >= 2           # both routes
            finally:
                await h.feed.close()
    asyncio.run(scenario())


def test_skip_diff_gap_stale_snapshot_live(tmp_path):
    market = "binance_spot"

    async def scenario():
        async with running(data(market, tmp_path), tmp_path, start="paused") as (emu, port):
            h = Harness(market, SYMS, port, depth_stream=depth_for(market))
            await h.feed.start()
            try:
                await h.checkpoint(emu, 600)
                await h.wait_state(LIVE, 5)
                snaps = h.feed.counters()["snapshots"]
                n_states = len(h.states["BTCUSDT"])
                await fault(port, "skip_diff", symbol="BTCUSDT", count=1)
                await h.checkpoint(emu, 1500)
                assert h.gaps["BTCUSDT"] == 1 and h.gaps["ETHUSDT"] == 0
                assert [st for st, _ in h.states["BTCUSDT"][n_states:]][:1] == [STALE]
                await h.wait_state(LIVE, 5)
                assert h.feed.counters()["snapshots"] == snaps + 1
            finally:
                await h.feed.close()
    asyncio.run(scenario())


def test_stall_trips_the_watchdog(tmp_path):
    market = "binance_usdm"

    async def scenario():
        async with running(data(market, tmp_path), tmp_path, start="paused") as (emu, port):
            h = Harness(market, SYMS, port, depth_stream=depth_for(market), watchdog_s=0.6)
            await h.feed.start()
            try:
                await h.checkpoint(emu, 600)
                await h.wait_state(LIVE, 5)
                # the market is paused after the checkpoint: no frame flows (a stall)
                await until(lambda: h.feed.counters()["watchdog_trips"] >= 1, 5, "a watchdog trip")
                await h.wait_state(STALE, 2)
                assert any("watchdog" in r for _, r in h.states["BTCUSDT"])
                # stalled: /public trips again after its reconnect
                await until(lambda: h.feed.counters()["routes"]["public"]["watchdog_trips"] >= 2, 5, "a second trip")
                routes = h.feed.counters()["routes"]
                # the trade-only /market route has no frame watchdog: its idle pings are answered, it stays up
                assert routes["market"]["watchdog_trips"] == 0 and routes["market"]["reconnects"] == 0
                await h.checkpoint(emu, 800)
                await h.wait_state(LIVE, 5)
            finally:
                await h.feed.close()
    asyncio.run(scenario())


def test_malformed_frame_counted_and_skipped(tmp_path):
    market = "binance_spot"

    async def scenario():
        async with running(data(market, tmp_path), tmp_path, start="paused") as (emu, port):
            h = Harness(market, SYMS, port, depth_stream=depth_for(market))
            await h.feed.start()
            try:
                await h.checkpoint(emu, 600)
                await fault(port, "malformed", count=3)
                await until(lambda: h.feed.counters()["malformed"] >= 3, 5, "3 malformed frames counted")
                await h.checkpoint(emu, 600)
                c = h.feed.counters()
                assert c["malformed"] == 3 and c["reconnects"] == 0
                await h.wait_state(LIVE, 5)
            finally:
                await h.feed.close()
    asyncio.run(scenario())


def test_refuse_ws_polls_then_goes_back_live(tmp_path):
    market = "binance_usdm"

    async def scenario():
        async with running(data(market, tmp_path), tmp_path, start="paused") as (emu, port):
            h = Harness(market, SYMS, port, depth_stream=depth_for(market), polling_after_failures=3)
            await fault(port, "refuse_ws", count=100000)   # until cleared below
            await h.feed.start()
            try:
                m = emu.market
                m.pause_after = 300
                m.resume()
                await h.wait_state(POLLING, 10)
                assert h.feed.counters()["polling_switches"] == 1
                polls = h.feed.counters()["poll_snapshots"]
                await until(lambda: h.feed.counters()["poll_snapshots"] >= polls + 2, 5, "polled snapshots")
                m.pause_after = m.lines + 1500                  # new trades after the first poll
                m.resume()
                await until(lambda: all(h.trades[s] for s in SYMS), 8, "polled trades")
                for s in SYMS:                              # each trade once, in order
                    assert h.trades[s] == sorted(set(h.trades[s]))
                assert h.state("BTCUSDT") == POLLING
                await fault(port, "clear")                  # the WebSocket can be established again
                emu.market.pause()
                await h.wait_state(LIVE, 15)
                c = h.feed.counters()
                assert c["polling_exits"] == 1
                await h.checkpoint(emu, 600)
            finally:
                await h.feed.close()
    asyncio.run(scenario())


def test_rotation_reconnects_and_resyncs(tmp_path):
    market = "binance_spot"

    async def scenario():
        async with running(data(market, tmp_path), tmp_path, start="paused") as (emu, port):
            h = Harness(market, SYMS, port, depth_stream=depth_for(market), rotate_after_s=1.0, watchdog_s=30)
            await h.feed.start()
            try:
                await h.checkpoint(emu, 600)
                await until(lambda: h.feed.counters()["rotations"] >= 1, 5, "a rotation")
                # the counter moves at the drop; the state change follows once the connection is gone
                await until(lambda: any("rotation" in r for _, r in h.states["BTCUSDT"]), 5, "the rotation's state")
                await h.checkpoint(emu, 800)
                await h.wait_state(LIVE, 5)
                c = h.feed.counters()
                assert c["reconnects"] >= 1 and c["watchdog_trips"] == 0
            finally:
                await h.feed.close()
    asyncio.run(scenario())


def test_ws_api_failure_falls_back_to_rest_and_one_snapshot_in_flight(tmp_path):
    market = "binance_usdm"

    async def scenario():
        async with running(data(market, tmp_path), tmp_path, start="paused") as (emu, port):
            h = Harness(market, SYMS, port, depth_stream=depth_for(market))
            await h.feed.start()
            try:
                await h.checkpoint(emu, 600)
                await h.wait_state(LIVE, 5)
                c0 = h.feed.counters()
                await fault(port, "server_error", target="wsapi", count=1)
                for _ in range(10):                         # merged into one request
                    h.feed.request_snapshot("BTCUSDT")
                assert h.state("BTCUSDT") == STALE
                await h.wait_state(LIVE, 5)
                await asyncio.sleep(0.4)
                c = h.feed.counters()
                assert c["snapshots"] == c0["snapshots"] + 1
                assert c["snapshots_rest"] == c0["snapshots_rest"] + 1
                await h.checkpoint(emu, 600)
            finally:
                await h.feed.close()
    asyncio.run(scenario())


def test_pings_answered_and_close_echoed(tmp_path):
    market = "binance_spot"

    async def scenario():
        async with running(data(market, tmp_path), tmp_path, start="paused", ping_interval_s=0.3,
                           pong_timeout_s=0.8) as (emu, port):
            h = Harness(market, SYMS, port, depth_stream=depth_for(market), watchdog_s=30)
            await h.feed.start()
            try:
                await h.checkpoint(emu, 600)
                await asyncio.sleep(2.0)                     # ~6 server pings, each answered in time
                assert h.feed.counters()["reconnects"] == 0
                assert all(c.connected for c in h.feed.conns)
                await fault(port, "drop", target="market", close_code=1001)   # a clean close from the server
                await until(lambda: h.feed.counters()["reconnects"] == 1, 5, "the reconnect after the close")
                assert h.feed.conns[0].close_code is None or h.feed.conns[0].close_code == 1001
                assert any("1001" in r for _, r in h.states["BTCUSDT"])
                await h.checkpoint(emu, 600)
                await h.wait_state(LIVE, 5)
            finally:
                await h.feed.close()
    asyncio.run(scenario())


def test_rate_limited_snapshot_waits_for_retry_after(tmp_path):
    market = "binance_spot"

    async def scenario():
        async with running(data(market, tmp_path), tmp_path, start="paused") as (emu, port):
            h = Harness(market, SYMS, port, depth_stream=depth_for(market))
            await h.feed.start()
            try:
                await h.checkpoint(emu, 600)
                await h.wait_state(LIVE, 5)
                c0 = h.feed.counters()
                await fault(port, "rate_limited", target="all", count=2, retry_after=1)
                t0 = asyncio.get_running_loop().time()
                h.feed.request_snapshot("BTCUSDT")
                await h.wait_state(LIVE, 5)
                waited = asyncio.get_running_loop().time() - t0
                c = h.feed.counters()
                assert c["snapshot_failures"] == c0["snapshot_failures"] + 1      # WS API 429 then REST 429
                assert c["snapshots"] == c0["snapshots"] + 1 and waited >= 0.9    # one round later, Retry-After
            finally:
                await h.feed.close()
    asyncio.run(scenario())
