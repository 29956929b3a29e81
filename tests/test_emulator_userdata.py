"""User data of the emulator: spot events on the WS API connection after userDataStream.subscribe.signature
(executionReport with every field, outboundAccountPosition, commission in the received asset); USDⓈ-M
ORDER_TRADE_UPDATE / ACCOUNT_UPDATE on /private/ws?listenKey=, listenKey lifecycle and expiry. A resting
post-only order is filled by the recorded market (a trade through its price). Real recordings (data/README.md)."""
import asyncio
import time

import aiohttp
import orjson
import pytest

from mmcore.venues.binance.recording import open_recording

from emukit import KEY, SPOT_BTC, USDM_BTC, ApiClient, head, pw_connect, running, until, ws_signed

pytest.importorskip("picows")
PAUSE_AT = 3000
EXEC_FIELDS = set("e E s c S o f q p P F g C x X r i l z L n N T t I w m M O Z Y Q W V".split())


def _through_side(path, book_bid: float, book_ask: float):
    """The side whose resting order at the touch a later recorded trade goes through, and that trade's index."""
    with open_recording(path) as fh:
        for i, raw in enumerate(fh):
            if i < PAUSE_AT or b'"trade"' not in raw:
                continue
            d = orjson.loads(raw[raw.index(b" ") + 1:])["data"]
            p = float(d["p"])
            if p > book_ask and d["m"] is False:
                return "SELL"
            if p < book_bid and d["m"] is True:
                return "BUY"
    raise AssertionError("no trade through the touch in the recording")


async def _paused_at(emu):
    emu.market.pause_after = PAUSE_AT
    emu.market.start()
    await until(lambda: emu.market.paused and emu.market.lines >= PAUSE_AT, 20, "the pause")


def test_spot_user_data_on_the_ws_api_connection_for_an_order_filled_by_the_market(tmp_path):
    data = head(SPOT_BTC, tmp_path / "spot_btc.gz", 20000)

    async def scenario():
        async with running([data], tmp_path, speed=0, start="paused") as (emu, port):
            await _paused_at(emu)
            b = emu.market.symbols["BTCUSDT"].book
            inst = emu.markets.instruments["BTCUSDT"]
            bid, ask = inst.price_of(b.best_bid_px()), inst.price_of(b.best_ask_px())
            side = _through_side(data, float(bid), float(ask))
            api = await ApiClient.connect(f"ws://127.0.0.1:{port}/ws-api/v3")
            sub = await api.call("userDataStream.subscribe.signature", ws_signed({}))
            placed = await api.call("order.place", ws_signed({"symbol": "BTCUSDT", "side": side,
                                                              "type": "LIMIT_MAKER", "quantity": "0.001",
                                                              "price": str(bid if side == "BUY" else ask),
                                                              "newClientOrderId": "ud-1"}))
            emu.market.resume()
            await api.event(lambda e: e["event"].get("x") == "TRADE", 30, "the fill's executionReport")
            await api.event(lambda e: e["event"]["e"] == "outboundAccountPosition" and len(api.events) > 3, 5)
            uns = await api.call("userDataStream.unsubscribe", {})
            await api.event(lambda e: e["event"]["e"] == "eventStreamTerminated", 5, "eventStreamTerminated")
            api.close()
            return sub, placed, side, api.events, emu.account_state(emu.exchange.accounts[KEY]), uns

    sub, placed, side, events, state, uns = asyncio.run(scenario())
    sid = sub["result"]["subscriptionId"]
    assert placed["status"] == 200 and uns["status"] == 200
    assert all(e["subscriptionId"] == sid for e in events)
    ers = [e["event"] for e in events if e["event"]["e"] == "executionReport"]
    assert ers[0]["x"] == "NEW" and ers[0]["c"] == "ud-1" and ers[0]["w"] is True
    fills = [e for e in ers if e["x"] == "TRADE"]
    assert fills and all(set(e) == EXEC_FIELDS for e in ers)
    f = fills[0]
    assert f["m"] is True and f["N"] == ("BTC" if side == "BUY" else "USDT") and float(f["n"]) > 0
    mine = state["symbols"]["BTCUSDT"]["fills"]
    assert [x["tradeId"] for x in mine] == [e["t"] for e in fills]
    pos = [e["event"] for e in events if e["event"]["e"] == "outboundAccountPosition"]
    assert pos and {b["a"] for b in pos[-1]["B"]} == {"BTC", "USDT"}
    assert state["balances"]["BTC"]["free"] != "10"


def test_usdm_listen_key_private_stream_for_an_order_filled_by_the_market(tmp_path):
    data = head(USDM_BTC, tmp_path / "usdm_btc.gz", 20000)

    async def scenario():
        async with running([data], tmp_path, speed=0, start="paused") as (emu, port):
            await _paused_at(emu)
            base = f"http://127.0.0.1:{port}"
            async with aiohttp.ClientSession(headers={"X-MBX-APIKEY": KEY}) as s:
                async with s.post(base + "/fapi/v1/listenKey") as r:
                    lk = (await r.json())["listenKey"]
                async with s.post(base + "/fapi/v1/listenKey") as r:
                    again = (await r.json())["listenKey"]
                async with s.put(base + "/fapi/v1/listenKey") as r:
                    kept = await r.json()
                async with aiohttp.ClientSession() as anon:
                    async with anon.post(base + "/fapi/v1/listenKey") as r:
                        nokey = (r.status, await r.json())
            b = emu.market.symbols["BTCUSDT"].book
            inst = emu.markets.instruments["BTCUSDT"]
            bid, ask = inst.price_of(b.best_bid_px()), inst.price_of(b.best_ask_px())
            side = _through_side(data, float(bid), float(ask))
            tw, ws = await pw_connect(f"ws://127.0.0.1:{port}/private/ws?listenKey={lk}")
            ts, st = await pw_connect(f"ws://127.0.0.1:{port}/private/stream?listenKey={lk}&events=ACCOUNT_UPDATE")
            api = await ApiClient.connect(f"ws://127.0.0.1:{port}/ws-fapi/v1")
            placed = await api.call("order.place", ws_signed({"symbol": "BTCUSDT", "side": side, "type": "LIMIT",
                                                              "timeInForce": "GTX", "quantity": "0.002",
                                                              "price": str(bid if side == "BUY" else ask),
                                                              "newClientOrderId": "ud-2"}))
            emu.market.resume()
            await until(lambda: any(b'"ACCOUNT_UPDATE"' in f for f in ws.frames), 30, "the fill")
            await until(lambda: st.frames, 5, "the filtered stream")
            r = await api.call("userDataStream.ping", {"apiKey": KEY})
            emu.faults.add({"kind": "expire_listen_key", "apiKey": KEY})
            await until(lambda: any(b"listenKeyExpired" in f for f in ws.frames), 5, "listenKeyExpired")
            n = len(ws.frames)
            async with aiohttp.ClientSession(headers={"X-MBX-APIKEY": KEY}) as s:
                async with s.put(base + "/fapi/v1/listenKey") as resp:
                    gone = (resp.status, await resp.json())
            refused = None
            try:
                await pw_connect(f"ws://127.0.0.1:{port}/private/ws?listenKey={lk}")
            except Exception as exc:                       # picows WSInvalidStatusError
                refused = getattr(getattr(exc, "response", None), "status", None)
            fresh = await api.call("userDataStream.start", {"apiKey": KEY})
            tw2, ws2 = await pw_connect(f"ws://127.0.0.1:{port}/private/ws?listenKey={fresh['result']['listenKey']}")
            stopped = await api.call("userDataStream.stop", {"apiKey": KEY})
            await until(lambda: any(b"listenKeyExpired" in f for f in ws2.frames), 5, "listenKeyExpired after stop")
            for t in (tw, ts, tw2):
                t.disconnect()
            api.close()
            assert fresh["status"] == 200 and fresh["result"]["listenKey"] != lk and stopped["result"] == {}
            return (lk, again, kept, nokey, placed, side, ws.frames, st.frames, n, r, gone, refused,
                    emu.account_state(emu.exchange.accounts[KEY]))

    lk, again, kept, nokey, placed, side, frames, stream_frames, n, ping, gone, refused, state = asyncio.run(scenario())
    assert again == lk and kept == {"listenKey": lk} and nokey[0] == 401 and nokey[1]["code"] == -2014
    assert placed["result"]["status"] == "NEW"
    evs = [orjson.loads(f) for f in frames]
    otu = [e for e in evs if e["e"] == "ORDER_TRADE_UPDATE"]
    assert otu[0]["o"]["x"] == "NEW" and otu[0]["o"]["c"] == "ud-2" and otu[0]["o"]["f"] == "GTX"
    trade = [e["o"] for e in otu if e["o"]["x"] == "TRADE"]
    assert trade and trade[0]["m"] is True and trade[0]["N"] == "USDT"
    acct = [e for e in evs if e["e"] == "ACCOUNT_UPDATE"]
    assert acct[-1]["a"]["P"][0]["pa"] == ("0.002" if side == "BUY" else "-0.002")
    assert acct[-1]["a"]["P"][0]["pa"] == state["symbols"]["BTCUSDT"]["position"]
    expired = [e for e in evs if e["e"] == "listenKeyExpired"]
    assert expired and isinstance(expired[0]["E"], str) and expired[0]["listenKey"] == lk
    assert len(frames) == n                                   # nothing more for an expired key
    assert gone == (400, {"code": -1125, "msg": "This listenKey does not exist."})
    assert refused == 400
    sf = [orjson.loads(f) for f in stream_frames]
    assert sf and all(x["stream"] == lk for x in sf)
    assert {x["data"]["e"] for x in sf} == {"ACCOUNT_UPDATE"}    # events= is an allow-list
    assert ping["result"] == {"listenKey": lk}
    assert state["symbols"]["BTCUSDT"]["position_lots"] == (2 if side == "BUY" else -2)


def test_usdm_listen_key_expires_after_its_validity_unless_kept_alive(tmp_path):
    data = head(USDM_BTC, tmp_path / "usdm_btc.gz", 500)

    async def scenario():
        async with running([data], tmp_path, speed=0, listen_key_ttl_s=0.4) as (emu, port):
            api = await ApiClient.connect(f"ws://127.0.0.1:{port}/ws-fapi/v1")
            lk = (await api.call("userDataStream.start", {"apiKey": KEY}))["result"]["listenKey"]
            t, c = await pw_connect(f"ws://127.0.0.1:{port}/private/ws?listenKey={lk}")
            t0 = time.monotonic()
            for _ in range(4):                                  # kept alive for ~0.8 s
                await asyncio.sleep(0.2)
                assert (await api.call("userDataStream.ping", {"apiKey": KEY}))["status"] == 200
            alive_for = time.monotonic() - t0
            early = list(c.frames)
            await until(lambda: c.frames, 5, "listenKeyExpired")
            gone = await api.call("userDataStream.ping", {"apiKey": KEY})
            t.disconnect()
            api.close()
            return alive_for, early, orjson.loads(c.frames[0]), gone
    alive_for, early, ev, gone = asyncio.run(scenario())
    assert alive_for > 0.4 and early == []
    assert ev["e"] == "listenKeyExpired" and isinstance(ev["E"], str)
    assert gone["status"] == 400 and gone["error"]["code"] == -1125
