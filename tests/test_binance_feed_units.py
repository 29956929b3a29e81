"""Pure parts of the market-data feed: URLs and stream plans, the backoff, the REST poller's trade dedupe, settings."""
import asyncio
import random

import pytest

from mmcore.config import load_config
from mmcore.venues.binance.feed import FeedSettings
from mmcore.venues.binance.streams import backoff_delay
from mmcore.venues.binance.urls import route_of, stream_plan, trade_kind, urls_for
from mmcore.venues.polling import RestPoller


def test_production_and_testnet_hosts():
    u = urls_for("binance_spot")
    assert (u.stream_base, u.ws_api, u.rest) == ("wss://stream.binance.com:9443",
                                                 "wss://ws-api.binance.com:443/ws-api/v3", "https://api.binance.com")
    assert u.combined_stream_url("", ["btcusdt@trade", "ethusdt@trade"]) == \
        "wss://stream.binance.com:9443/stream?streams=btcusdt@trade/ethusdt@trade"
    u = urls_for("binance_usdm")
    assert u.routes() == ("/public", "/market")
    assert u.combined_stream_url("/market", ["btcusdt@aggTrade"]) == \
        "wss://fstream.binance.com/market/stream?streams=btcusdt@aggTrade"
    assert u.ws_api == "wss://ws-fapi.binance.com/ws-fapi/v1" and u.rest == "https://fapi.binance.com"
    t = urls_for("binance_spot", testnet=True)
    assert t.rest == "https://testnet.binance.vision" and t.ws_api.endswith("testnet.binance.vision/ws-api/v3")
    t = urls_for("binance_usdm", testnet=True)
    assert t.rest == "https://demo-fapi.binance.com" and t.stream_base == "wss://demo-fstream.binance.com"


def test_endpoint_override_puts_every_url_on_that_host():
    u = urls_for("binance_usdm", testnet=True, endpoint="http://127.0.0.1:8123")
    assert u.stream_base == "ws://127.0.0.1:8123" and u.ws_api == "ws://127.0.0.1:8123/ws-fapi/v1"
    assert u.rest_url("/fapi/v1/depth") == "http://127.0.0.1:8123/fapi/v1/depth"
    assert urls_for("binance_spot", endpoint="https://h.example:9").ws_api == "wss://h.example:9/ws-api/v3"
    for bad in ("ftp://x", "http://x/path", "nohost"):
        with pytest.raises(ValueError):
            urls_for("binance_spot", endpoint=bad)
    with pytest.raises(ValueError):
        urls_for("mexc")


def test_stream_plans():
    assert stream_plan("binance_spot", ["BTCUSDT", "ETHUSDT"]) == {
        "": ["btcusdt@depth@100ms", "ethusdt@depth@100ms", "btcusdt@trade", "ethusdt@trade",
             "btcusdt@bookTicker", "ethusdt@bookTicker"]}
    p = stream_plan("binance_usdm", ["BTCUSDT"])
    assert p == {"/public": ["btcusdt@depth@100ms", "btcusdt@bookTicker"], "/market": ["btcusdt@aggTrade"]}
    p = stream_plan("binance_usdm", ["BTCUSDT"], "depth@0ms", "trade", book_ticker=False)
    assert p == {"/public": ["btcusdt@depth@0ms", "btcusdt@trade"]}
    assert trade_kind("binance_spot") == "trade" and trade_kind("binance_usdm") == "aggTrade"
    assert route_of("binance_usdm", "markPrice@1s") == "/market" and route_of("binance_spot", "aggTrade") == ""
    # the emulator's routing table agrees
    from mmcore.sim.emulator.streams import route_of as emu_route
    for kind in ("depth@100ms", "depth@0ms", "depth", "bookTicker", "trade", "aggTrade"):
        assert route_of("binance_usdm", kind) == "/" + emu_route(f"btcusdt@{kind}")


def test_backoff_is_capped_full_jitter():
    assert backoff_delay(0, 0.2, 30) == 0
    assert backoff_delay(1, 0.2, 30, rnd=lambda: 1.0) == pytest.approx(0.2)
    assert backoff_delay(4, 0.2, 30, rnd=lambda: 1.0) == pytest.approx(1.6)
    assert backoff_delay(100, 0.2, 30, rnd=lambda: 1.0) == 30
    r = random.Random(1)
    xs = [backoff_delay(10, 0.2, 30, rnd=r.random) for _ in range(500)]
    assert 0 <= min(xs) < 3 and 27 < max(xs) <= 30


def test_settings_from_config_and_dict():
    c = load_config(overrides=["venue.watchdog_s=3", "venue.depth_stream=depth@0ms"])
    s = FeedSettings.of(c)
    assert s.watchdog_s == 3 and s.depth_stream == "depth@0ms" and s.snapshot_limit == 1000
    assert FeedSettings.of({"venue.watchdog_s": 2, "reconnect_max_s": 4, "other": 1}).reconnect_max_s == 4


class _T:
    def __init__(self, i):
        self.trade_id = i


def test_poller_delivers_each_new_trade_once_oldest_first():
    batches = [[_T(3), _T(1), _T(2)], [_T(2), _T(3), _T(5), _T(4)], RuntimeError("down"), [_T(4), _T(6)]]
    got = []

    async def depth(sym):
        return "snap"

    async def trades(sym):
        b = batches.pop(0)
        if isinstance(b, Exception):
            raise b
        return b

    async def go():
        p = RestPoller(["BTCUSDT"], depth, trades, lambda s, e: got.append(e), 0.01)
        for _ in range(4):
            await p.poll_once("BTCUSDT")
        return p
    p = asyncio.run(go())
    ids = [e.trade_id for e in got if e != "snap"]
    assert ids == [4, 5, 6]                     # the first poll is history; later trades once each, in id order
    assert got.count("snap") == 4 and p.failures == 1


def test_polling_interval_keeps_within_the_weight_budget():
    from mmcore.venues.binance.feed import polling_interval
    assert polling_interval("binance_spot", 2, 1.0) == pytest.approx(1.5)
    assert polling_interval("binance_spot", 10, 1.0) == pytest.approx(7.5)
    assert polling_interval("binance_usdm", 1, 1.0) == 1.0
    assert polling_interval("binance_usdm", 10, 1.0) == pytest.approx(6.25)


def test_a_poll_that_completes_after_the_hand_back_is_not_delivered():
    """The WebSocket came back (the symbol left POLLING) while a poll was in flight: its trades would come twice
    (the stream delivers them too, under other ids) and its book is older: dropped and counted."""
    from mmcore.instruments import load_instrument
    from mmcore.venues.base import POLLING, STALE
    from mmcore.venues.binance.feed import BinanceFeed, FeedSettings
    got = []
    inst = {"BTCUSDT": load_instrument("binance_usdm", "BTCUSDT")}
    feed = BinanceFeed("binance_usdm", ["BTCUSDT"], inst, FeedSettings(endpoint="http://127.0.0.1:9"),
                       lambda s, e: got.append(e), lambda s, st, r: None)
    feed.state["BTCUSDT"] = POLLING
    feed._deliver_polled("BTCUSDT", "trade-1")
    feed.state["BTCUSDT"] = STALE                # route_up: back on the WebSocket, resyncing
    feed._deliver_polled("BTCUSDT", "trade-2")
    assert got == ["trade-1"] and feed.counters()["polled_dropped"] == 1
