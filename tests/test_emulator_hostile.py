"""Hostile input to the emulator never ends it and never yields a traceback: garbage frames on every WebSocket kind,
garbage parameters and bodies on REST, bad control-endpoint requests. Each gets an answer (or is dropped) and the
emulator keeps serving. Recordings: the first lines of the real 2024-08-08 files."""
import asyncio

import aiohttp
import orjson
from picows import WSMsgType

from emukit import KEY, USDM_BTC, ApiClient, head, pw_connect, rest_signed, running, until, ws_signed

GARBAGE = [b"", b"{", b"[]", b"null", b"1e999", b'{"method": 5}', b'{"method": "SUBSCRIBE", "params": "x"}',
           b'{"method": "SUBSCRIBE", "params": [1, 2]}', b'{"id": {"a": 1}, "method": "LIST_SUBSCRIPTIONS"}',
           b"[" * 5000 + b"]" * 5000, "\u00e9\u00e8".encode(), b'{"method": "order.place", "params": []}',
           b'{"id": 1, "method": "order.place", "params": {"symbol": ["x"], "price": {"a": 1}}}',
           b'{"id": 2, "method": "depth", "params": {"symbol": "BTCUSDT", "limit": "lots"}}',
           b'{"id": 3, "method": "order.place", "params": {"apiKey": 7}}']


def test_garbage_on_every_websocket_and_rest_gets_answers_and_the_emulator_goes_on(tmp_path, caplog):
    data = head(USDM_BTC, tmp_path / "usdm_btc.gz", 1500)

    async def scenario():
        async with running([data], tmp_path, speed=0, max_messages_per_s=1000) as (emu, port):
            await until(lambda: emu.market.done, 20, "the end")
            out = {}
            tm, m = await pw_connect(f"ws://127.0.0.1:{port}/public/ws/1")
            api = await ApiClient.connect(f"ws://127.0.0.1:{port}/ws-fapi/v1")
            for g in GARBAGE:
                tm.send(WSMsgType.TEXT, g)
                api.t.send(WSMsgType.TEXT, g)
            tm.send(WSMsgType.BINARY, b"\x00\xff")
            await until(lambda: len(m.frames) >= len(GARBAGE), 10, "answers on the market connection")
            await asyncio.sleep(0.2)
            out["market_answers"] = [orjson.loads(f) for f in m.frames]
            api._drain()
            out["api_answers"] = dict(api.answers)
            out["api_frames"] = len(api.l.frames)
            out["ok_after"] = await api.answer(api.send("order.status", ws_signed({"symbol": "BTCUSDT", "orderId": 1}),
                                                        rid="after"))
            base = f"http://127.0.0.1:{port}"
            async with aiohttp.ClientSession(headers={"X-MBX-APIKEY": KEY}) as s:
                codes = []
                for path in ("/fapi/v1/depth?symbol=BTCUSDT&limit=-5", "/fapi/v1/depth?symbol=%ff%fe",
                             "/fapi/v1/depth", "/fapi/v1/exchangeInfo?symbols=notjson",
                             "/fapi/v1/order?" + rest_signed({"symbol": "BTCUSDT", "orderId": "x"}),
                             "/fapi/v1/order?signature=zz&timestamp=1", "/fapi/v1/order?" + "a=1&" * 3000):
                    async with s.get(base + path) as r:
                        body = await r.read()
                        codes.append((r.status, orjson.loads(body).get("code") if body.startswith(b"{") else None))
                async with s.post(base + "/fapi/v1/order", data=b"\xff" * 70000,
                                  headers={"Content-Type": "application/x-www-form-urlencoded"}) as r:
                    codes.append((r.status, (await r.json()).get("code")))
                async with s.post(base + "/fapi/v1/order", data=rest_signed({"symbol": "BTCUSDT", "side": "BUY",
                                                                            "type": "LIMIT", "timeInForce": "GTX",
                                                                            "price": "1e5", "quantity": "0.002"}),
                                  headers={"Content-Type": "application/x-www-form-urlencoded"}) as r:
                    codes.append((r.status, (await r.json()).get("code")))
                out["rest"] = codes
                ctl = []
                for body in (b"not json", b"[]", b'{"kind": "drop", "target": "moon"}', b'{"kind": "stall", '
                             b'"seconds": -1}', b'{"kind": "skip_diff", "bogus": 1}'):
                    async with s.post(base + "/_emulator/fault", data=body) as r:
                        ctl.append(r.status)
                async with s.get(base + "/_emulator/book?symbol=NOPE") as r:
                    ctl.append(r.status)
                async with s.get(base + "/_emulator/state?apiKey=nobody") as r:
                    ctl.append(r.status)
                out["control"] = ctl
                async with s.get(base + "/_emulator/status") as r:
                    out["status"] = await r.json()
            out["alive"] = not m.disconnected and not api.l.disconnected
            tm.disconnect()
            api.close()
            return out

    o = asyncio.run(scenario())
    assert all(isinstance(a, dict) and ("code" in a or "result" in a) for a in o["market_answers"])
    assert o["api_frames"] >= len(GARBAGE) - 1 and o["api_answers"][3]["error"]["code"] == -2014
    assert o["api_answers"][2]["status"] == 400 and o["api_answers"][1]["status"] in (400, 401)
    assert o["ok_after"]["status"] == 400 and o["ok_after"]["error"]["code"] == -2013
    assert all(400 <= st < 500 for st, _ in o["rest"]), o["rest"]
    assert o["control"] == [400, 400, 400, 400, 400, 404, 404]
    assert o["alive"] and o["status"]["failure"] is None
    assert not any(r.exc_info for r in caplog.records)
    assert any("bad HTTP request refused with 400" in r.getMessage() for r in caplog.records)   # the long URL
