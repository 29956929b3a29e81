"""Market-data WebSocket of the emulator against a picows client: recorded frames byte-identical (combined and raw),
several symbols merged by local time, the live subscribe protocol, routing on USDⓈ-M (cross-route subscriptions
acknowledged and silent), derived streams. Recordings: the first lines of the real 2024-08-08 files."""
import asyncio

import orjson
import pytest

from mmcore.sim.emulator.streams import parse_path, route_of

from emukit import (SPOT_BTC, SPOT_ETH, USDM_BTC, USDM_ETH, head, pw_connect, recorded_frames, running, until,
                    ws_json)

pytest.importorskip("picows")
HEAD = 1500


def _expected(files, streams):
    rows = []
    for i, f in enumerate(files):
        rows += [(ts, i, n, body) for n_, (ts, n, body) in enumerate(recorded_frames(f, streams))]
    rows.sort(key=lambda r: (r[0], r[1]))
    return [(n, body) for _, _, n, body in rows]


def _assert_suffix(got: list, want: list, max_missed: int = 300):
    """``got`` is ``want`` from some early point on, byte for byte (the market opens after the snapshots)."""
    assert got, "no frame received"
    k = want.index(got[0])
    assert k <= max_missed, f"{k} frames missed at the start"
    assert got == want[k:]


def test_usdm_combined_and_raw_frames_are_the_recorded_bytes_merged_by_local_time(tmp_path):
    files = [head(USDM_BTC, tmp_path / "usdm_btc.gz", HEAD), head(USDM_ETH, tmp_path / "usdm_eth.gz", HEAD)]
    streams = ["btcusdt@depth@0ms", "btcusdt@trade", "ethusdt@bookTicker", "ethusdt@depth@0ms"]

    async def scenario():
        async with running(files, tmp_path, speed=0, start="paused") as (emu, port):
            t1, comb = await pw_connect(f"ws://127.0.0.1:{port}/public/stream?streams=" + "/".join(streams))
            t2, raw = await pw_connect(f"ws://127.0.0.1:{port}/public/ws/btcusdt@trade/ethusdt@depth@0ms")
            t3, legacy = await pw_connect(f"ws://127.0.0.1:{port}/stream?streams=btcusdt@bookTicker")
            emu.market.resume()
            await until(lambda: emu.market.done, 20, "the end of the recording")
            await until(lambda: all(c.out_bytes == 0 for c in emu.conns["market"]), 5, "the frames sent")
            await asyncio.sleep(0.05)
            for t in (t1, t2, t3):
                t.disconnect()
            return comb.frames, raw.frames, legacy.frames

    comb, raw, legacy = asyncio.run(scenario())
    want = _expected(files, streams)
    _assert_suffix(comb, [b for _, b in want])
    assert {orjson.loads(f)["stream"] for f in comb} == set(streams)
    want_raw = [b[b.index(b'"data":') + 7:-1] for n, b in want if n in ("btcusdt@trade", "ethusdt@depth@0ms")]
    _assert_suffix(raw, want_raw)
    _assert_suffix(legacy, [b for _, b in _expected(files, ["btcusdt@bookTicker"])])


def test_spot_stream_and_ws_paths_and_the_subscribe_protocol(tmp_path):
    files = [head(SPOT_BTC, tmp_path / "spot_btc.gz", HEAD), head(SPOT_ETH, tmp_path / "spot_eth.gz", HEAD)]

    async def scenario():
        async with running(files, tmp_path, speed=0, start="paused") as (emu, port):
            t, c = await pw_connect(f"ws://127.0.0.1:{port}/ws/0")          # ccxt's empty raw connection
            ws_json(t, {"method": "SUBSCRIBE", "params": ["btcusdt@depth@100ms", "ethusdt@trade"], "id": 1})
            ws_json(t, {"method": "LIST_SUBSCRIPTIONS", "id": 2})
            ws_json(t, {"method": "UNSUBSCRIBE", "params": ["ethusdt@trade"], "id": 3})
            await until(lambda: len(c.frames) >= 3, 5, "three answers")
            ws_json(t, {"method": "GET_PROPERTY", "params": ["combined"], "id": 4})
            ws_json(t, {"method": "NOPE", "id": 5})
            await until(lambda: len(c.frames) >= 5, 5, "five answers")
            answers = [orjson.loads(f) for f in c.frames[:5]]
            c.frames.clear()
            emu.market.resume()
            await until(lambda: emu.market.done, 20, "the end of the recording")
            await until(lambda: all(x.out_bytes == 0 for x in emu.conns["market"]), 5, "the frames sent")
            await asyncio.sleep(0.05)
            t.disconnect()
            return answers, c.frames

    answers, frames = asyncio.run(scenario())
    assert answers[0] == {"result": None, "id": 1}
    assert answers[1] == {"result": ["btcusdt@depth@100ms", "ethusdt@trade"], "id": 2}
    assert answers[2] == {"result": None, "id": 3}
    assert answers[3] == {"result": False, "id": 4}
    assert answers[4]["code"] == 2 and "unknown variant" in answers[4]["msg"]
    want = [b[b.index(b'"data":') + 7:-1] for _, b in _expected(files, ["btcusdt@depth@100ms"])]
    _assert_suffix(frames, want)


def test_usdm_cross_route_subscription_is_acknowledged_and_silent(tmp_path):
    files = [head(USDM_BTC, tmp_path / "usdm_btc.gz", HEAD)]

    async def scenario():
        async with running(files, tmp_path, speed=0, start="paused") as (emu, port):
            tp, pub = await pw_connect(f"ws://127.0.0.1:{port}/public/ws/1")
            tm, mkt = await pw_connect(f"ws://127.0.0.1:{port}/market/stream")
            tu, unrouted = await pw_connect(f"ws://127.0.0.1:{port}/ws/btcusdt@aggTrade/btcusdt@trade")
            ws_json(tp, {"method": "SUBSCRIBE", "params": ["btcusdt@aggTrade", "btcusdt@markPrice"], "id": 7})
            ws_json(tm, {"method": "SUBSCRIBE", "params": ["btcusdt@aggTrade", "btcusdt@bookTicker"], "id": 8})
            await until(lambda: pub.frames and mkt.frames, 5, "the acks")
            acks = [orjson.loads(pub.frames.pop(0)), orjson.loads(mkt.frames.pop(0))]
            emu.market.resume()
            await until(lambda: emu.market.done, 20, "the end of the recording")
            await asyncio.sleep(0.2)
            for t in (tp, tm, tu):
                t.disconnect()
            return acks, pub.frames, mkt.frames, unrouted.frames

    acks, pub, mkt, unrouted = asyncio.run(scenario())
    assert acks == [{"result": None, "id": 7}, {"result": None, "id": 8}]
    assert pub == []                                              # aggTrade and markPrice live on /market
    assert mkt and {orjson.loads(f)["stream"] for f in mkt} == {"btcusdt@aggTrade"}   # bookTicker is /public
    kinds = {orjson.loads(f).get("e") for f in unrouted}
    assert kinds == {"trade"}                                     # unrouted = public only
    agg = orjson.loads(mkt[0])["data"]
    assert agg["e"] == "aggTrade" and agg["a"] == agg["f"] == agg["l"] and agg["nq"] == agg["q"]


def test_routing_rules():
    assert route_of("btcusdt@depth@100ms") == route_of("btcusdt@bookTicker") == route_of("btcusdt@trade") == "public"
    assert route_of("btcusdt@aggTrade") == route_of("btcusdt@markPrice@1s") == route_of("btcusdt@kline_1m") == "market"
    assert parse_path("/public/ws/btcusdt@depth/ethusdt@depth", "", "binance_usdm") == \
        ("public", False, ["btcusdt@depth", "ethusdt@depth"])
    assert parse_path("/market/stream", "streams=a@aggTrade/b@markPrice", "binance_usdm") == \
        ("market", True, ["a@aggTrade", "b@markPrice"])
    assert parse_path("/ws/0", "", "binance_spot") == (None, False, [])
    assert parse_path("/public/ws/0", "", "binance_spot") is None
    assert parse_path("/api/v3/time", "", "binance_spot") is None
