"""Every fault kind of the emulator's control endpoint (POST /_emulator/fault) has its effect; GET /_emulator/faults
lists them; clear removes them. Recordings: the first lines of the real 2024-08-08 files."""
import asyncio
import time

import aiohttp
import orjson
import pytest

from emukit import KEY, SPOT_BTC, USDM_BTC, ApiClient, head, pw_connect, rest_signed, running, until, ws_signed

pytest.importorskip("picows")


async def _fault(s, base, **spec):
    async with s.post(base + "/_emulator/fault", data=orjson.dumps(spec)) as r:
        return r.status, await r.json()


def test_http_faults_429_418_5xx_and_order_rejects_on_rest_and_ws_api(tmp_path):
    data = head(USDM_BTC, tmp_path / "usdm_btc.gz", 1500)

    async def scenario():
        async with running([data], tmp_path, speed=0) as (emu, port):
            await until(lambda: emu.market.done, 20, "the end")
            base = f"http://127.0.0.1:{port}"
            out = {}
            b = emu.market.symbols["BTCUSDT"].book
            far = str(emu.markets.instruments["BTCUSDT"].price_of(b.best_bid_px() - 1000))
            order = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTX", "price": far,
                     "quantity": "0.002"}
            async with aiohttp.ClientSession(headers={"X-MBX-APIKEY": KEY}) as s:
                out["bad"] = await _fault(s, base, kind="nope")
                out["bad2"] = await _fault(s, base, kind="rate_limited", count=0)
                out["f429"] = await _fault(s, base, kind="rate_limited", count=1, retry_after=7, target="rest")
                async with s.get(base + "/fapi/v1/time") as r:
                    out["r429"] = (r.status, r.headers.get("Retry-After"), await r.json())
                async with s.get(base + "/fapi/v1/time") as r:
                    out["after429"] = r.status
                await _fault(s, base, kind="banned", count=1, retry_after=60)
                async with s.get(base + "/fapi/v1/time") as r:
                    out["r418"] = (r.status, r.headers.get("Retry-After"), await r.json())
                await _fault(s, base, kind="server_error", count=1, status=502, execute=True)
                body = rest_signed(dict(order, newClientOrderId="x5xx"))
                async with s.post(base + "/fapi/v1/order", data=body,
                                  headers={"Content-Type": "application/x-www-form-urlencoded"}) as r:
                    out["r5xx"] = (r.status, await r.json())
                await _fault(s, base, kind="reject_orders", count=1, code=-2019, msg="Margin is insufficient.")
                out["listed"] = await (await s.get(base + "/_emulator/faults")).json()
                api = await ApiClient.connect(f"ws://127.0.0.1:{port}/ws-fapi/v1")
                out["ws_reject"] = await api.call("order.place", ws_signed(dict(order, newClientOrderId="rej")))
                out["ws_ok"] = await api.call("order.place", ws_signed(dict(order, newClientOrderId="ok1")))
                await _fault(s, base, kind="rate_limited", count=1, target="wsapi")
                out["ws_429"] = await api.call("time")
                await _fault(s, base, kind="server_error", count=1, target="wsapi")
                out["ws_5xx"] = await api.call("order.place", ws_signed(dict(order, newClientOrderId="lost")))
                out["applied"] = (await (await s.get(base + "/_emulator/faults")).json())["applied"]
                api.close()
            return out, emu.account_state(emu.exchange.accounts[KEY])

    o, state = asyncio.run(scenario())
    assert o["bad"][0] == 400 and "kind" in o["bad"][1]["error"]
    assert o["bad2"][0] == 400 and "count" in o["bad2"][1]["error"]
    assert o["f429"][1]["remaining"] == 1
    assert o["r429"][0] == 429 and o["r429"][1] == "7" and o["r429"][2]["code"] == -1003
    assert o["after429"] == 200
    assert o["r418"][0] == 418 and o["r418"][1] == "60" and "banned until" in o["r418"][2]["msg"]
    assert o["r5xx"] == (502, {"code": -1001, "msg": "Internal error; unable to process your request. Please try "
                                                     "again."})
    assert [f["kind"] for f in o["listed"]["active"]] == ["reject_orders"]
    assert o["ws_reject"]["status"] == 400 and o["ws_reject"]["error"]["code"] == -2019
    assert o["ws_ok"]["status"] == 200
    assert o["ws_429"]["status"] == 429 and o["ws_429"]["error"]["data"]["retryAfter"] > time.time() * 1000
    assert o["ws_5xx"]["status"] == 503
    assert o["applied"] == {"rate_limited": 2, "banned": 1, "server_error": 2, "reject_orders": 1}
    coids = {x["clientOrderId"]: x["status"] for x in state["symbols"]["BTCUSDT"]["orders"]}
    assert coids == {"x5xx": "NEW", "ok1": "NEW"}            # executed behind the 502; not the rejected/lost ones
    assert state["coids_received"] == {"x5xx": 1, "rej": 1, "ok1": 1}    # "lost" never reached the exchange


def test_drop_refuse_malformed_skip_stall_and_clear_on_the_streams(tmp_path):
    data = head(USDM_BTC, tmp_path / "usdm_btc.gz", 12000)

    async def scenario():
        async with running([data], tmp_path, speed=2, start="paused") as (emu, port):
            base = f"http://127.0.0.1:{port}"
            url = f"ws://127.0.0.1:{port}/public/stream?streams=btcusdt@depth@0ms/btcusdt@depth@100ms"
            out = {}
            emu.market.resume()
            await until(lambda: emu.market.open, 10, "the market open")
            async with aiohttp.ClientSession() as s:
                out["refuse"] = await _fault(s, base, kind="refuse_ws", count=2, target="market", status=503)
                for i in range(2):
                    try:
                        await pw_connect(url)
                        out[f"refused{i}"] = None
                    except Exception as exc:
                        out[f"refused{i}"] = exc.response.status
                async with s.get(base + "/fapi/v1/depth?symbol=BTCUSDT&limit=5") as r:
                    out["rest_meanwhile"] = r.status           # REST still answers (polling takes over)
                t, c = await pw_connect(url)
                tapi, api = await pw_connect(f"ws://127.0.0.1:{port}/ws-fapi/v1")
                await until(lambda: len(c.frames) > 30, 20, "frames")
                # skip a diff: every depth stream leaves one event out -> one pu gap on each
                out["skip"] = await _fault(s, base, kind="skip_diff", symbol="BTCUSDT", count=1)
                n0 = len(c.frames)
                await until(lambda: sum(1 for f in c.frames[n0:] if b"@100ms" in f) > 3, 20, "more frames")
                out["malformed"] = await _fault(s, base, kind="malformed", target="market")
                await until(lambda: any(not f.endswith(b"}") for f in c.frames), 5, "the malformed frame")
                # stall: no frame while stalled, frames again after resume
                out["stall"] = await _fault(s, base, kind="stall")
                await asyncio.sleep(0.1)
                n1 = len(c.frames)
                await asyncio.sleep(0.3)
                out["stalled_frames"] = len(c.frames) - n1
                async with s.get(base + "/_emulator/status") as r:
                    out["paused"] = (await r.json())["paused"]
                out["clear"] = await _fault(s, base, kind="clear")
                await until(lambda: len(c.frames) > n1 + 3, 10, "frames after clear")
                async with s.post(base + "/_emulator/pause") as r:
                    out["pause"] = await r.json()
                async with s.post(base + "/_emulator/resume") as r:
                    out["resume"] = await r.json()
                out["drop"] = await _fault(s, base, kind="drop", target="market")
                await until(lambda: c.disconnected, 5, "the market connection dropped")
                out["api_alive"] = not api.disconnected
                out["drop_api"] = await _fault(s, base, kind="drop", target="wsapi", close_code=1013)
                await until(lambda: api.disconnected, 5, "the WS API connection closed")
                out["api_close"] = api.close_code
                frames = list(c.frames)
            return out, frames

    o, frames = asyncio.run(scenario())
    assert o["refuse"][1]["remaining"] == 2 and o["refused0"] == o["refused1"] == 503
    assert o["rest_meanwhile"] == 200
    good = [orjson.loads(f) for f in frames if f.endswith(b"}")]
    bad = [f for f in frames if not f.endswith(b"}")]
    assert len(bad) == 1 and o["malformed"][1]["connections"] == 1
    for stream in ("btcusdt@depth@0ms", "btcusdt@depth@100ms"):
        ev = [m["data"] for m in good if m["stream"] == stream]
        gaps = sum(1 for a, b in zip(ev, ev[1:]) if b["pu"] != a["u"])
        assert gaps == 1, stream
    assert o["stalled_frames"] == 0 and o["paused"] is True and o["clear"][1]["cleared"] == 1
    assert o["pause"] == {"paused": True} and o["resume"] == {"paused": False}
    assert o["drop"][1]["dropped"] == 1 and o["api_alive"]
    assert o["drop_api"][1]["dropped"] == 1 and o["api_close"] == 1013


def test_duplicate_and_reorder_execution_reports(tmp_path):
    data = head(SPOT_BTC, tmp_path / "spot_btc.gz", 1500)

    async def scenario():
        async with running([data], tmp_path, speed=0) as (emu, port):
            await until(lambda: emu.market.done, 20, "the end")
            b = emu.market.symbols["BTCUSDT"].book
            inst = emu.markets.instruments["BTCUSDT"]
            far = [str(inst.price_of(b.best_bid_px() - 1000 - i)) for i in range(4)]
            api = await ApiClient.connect(f"ws://127.0.0.1:{port}/ws-api/v3")
            await api.call("userDataStream.subscribe.signature", ws_signed({}))
            emu.faults.add({"kind": "duplicate_reports", "count": 1})
            await api.call("order.place", ws_signed({"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT_MAKER",
                                                     "price": far[0], "quantity": "0.001", "newClientOrderId": "d1"}))
            await api.event(lambda e: e["event"].get("c") == "d1", 5, "d1")
            emu.faults.add({"kind": "reorder_reports", "count": 1, "hold_ms": 5000})
            for i, c in ((1, "r1"), (2, "r2")):
                await api.call("order.place", ws_signed({"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT_MAKER",
                                                         "price": far[i], "quantity": "0.001",
                                                         "newClientOrderId": c}))
            await api.event(lambda e: e["event"].get("c") == "r1", 5, "r1")
            emu.faults.add({"kind": "reorder_reports", "count": 1, "hold_ms": 50})
            await api.call("order.place", ws_signed({"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT_MAKER",
                                                     "price": far[3], "quantity": "0.001", "newClientOrderId": "h1"}))
            await api.event(lambda e: e["event"].get("c") == "h1", 5, "h1 after its hold")
            api.close()
            return [e["event"]["c"] for e in api.events if e["event"]["e"] == "executionReport"]

    order = asyncio.run(scenario())
    assert order == ["d1", "d1", "r2", "r1", "h1"]
