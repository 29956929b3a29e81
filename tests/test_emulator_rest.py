"""REST endpoints of the emulator: Binance's paths, signing over the exact query + body, error codes and HTTP
statuses, weight and order-count headers and limits (429 with Retry-After), spot listenKey 410, unknown paths 404,
an internal error answered -1000 (never a traceback). Recordings: the first lines of the real 2024-08-08 files."""
import asyncio
import time
import urllib.parse

import aiohttp
import yarl

from emukit import KEY, SECRET, SPOT_BTC, USDM_BTC, head, rest_signed, running, until

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def test_spot_rest_signing_errors_headers_and_paths(tmp_path):
    data = head(SPOT_BTC, tmp_path / "spot_btc.gz", 1500)

    async def scenario():
        async with running([data], tmp_path, speed=0, orders_per_10s=3) as (emu, port):
            await until(lambda: emu.market.done, 20, "the end")
            base = f"http://127.0.0.1:{port}"
            b = emu.market.symbols["BTCUSDT"].book
            inst = emu.markets.instruments["BTCUSDT"]
            far = str(inst.price_of(b.best_bid_px() - 1000))
            order = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT_MAKER", "price": far, "quantity": "0.001"}
            out = {}
            async with aiohttp.ClientSession(headers={"X-MBX-APIKEY": KEY}) as s:
                async def req(method, path, query="", body=None, headers=None):
                    url = yarl.URL(base + path + (("?" + query) if query else ""), encoded=True)   # sent as is
                    async with s.request(method, url, data=body, headers=headers) as r:
                        return r.status, dict(r.headers), await r.json()
                out["info"] = await req("GET", "/api/v3/exchangeInfo", "symbol=BTCUSDT")
                out["info_bad"] = await req("GET", "/api/v3/exchangeInfo", "symbol=NOPE")
                out["depth"] = await req("GET", "/api/v3/depth", "symbol=BTCUSDT")
                out["ok"] = await req("POST", "/api/v3/order", body=rest_signed(dict(order, newClientOrderId="r1")),
                                      headers=FORM)
                # mixed: part of the params in the query, the rest (and the signature) in the body
                q = urllib.parse.urlencode({"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT_MAKER"})
                rest = urllib.parse.urlencode({"price": far, "quantity": "0.001", "newClientOrderId": "r2",
                                               "timestamp": int(time.time() * 1000)})
                import hashlib
                import hmac
                sig = hmac.new(SECRET.encode(), (q + rest).encode(), hashlib.sha256).hexdigest()
                out["mixed"] = await req("POST", "/api/v3/order", q, rest + "&signature=" + sig, FORM)
                out["badsig"] = await req("POST", "/api/v3/order", body=rest_signed(order, secret="wrong"),
                                          headers=FORM)
                out["stale"] = await req("POST", "/api/v3/order", body=rest_signed(
                    order, ts=int(time.time() * 1000) - 60_000), headers=FORM)
                out["dup"] = await req("GET", "/api/v3/openOrders", rest_signed({"symbol": "BTCUSDT"}) +
                                       "&symbol=BTCUSDT")
                out["open"] = await req("GET", "/api/v3/openOrders", rest_signed({"symbol": "BTCUSDT"}))
                out["status"] = await req("GET", "/api/v3/order", rest_signed({"symbol": "BTCUSDT",
                                                                               "origClientOrderId": "r1"}))
                # percent-encoded values are signed as sent (Binance: encode before signing)
                out["encoded"] = await req("GET", "/api/v3/order", rest_signed({"symbol": "BTCUSDT",
                                                                                "origClientOrderId": "a:b/c"}))
                out["third"] = await req("POST", "/api/v3/order", body=rest_signed(dict(order, price=str(
                    inst.price_of(b.best_bid_px() - 1001)))), headers=FORM)
                out["fourth"] = await req("POST", "/api/v3/order", body=rest_signed(order), headers=FORM)
                out["cancel"] = await req("DELETE", "/api/v3/order", rest_signed({"symbol": "BTCUSDT",
                                                                                  "origClientOrderId": "r1",
                                                                                  "newClientOrderId": "c1"}))
                out["cancel_again"] = await req("DELETE", "/api/v3/order", rest_signed({"symbol": "BTCUSDT",
                                                                                        "origClientOrderId": "r1"}))
                out["cancel_all"] = await req("DELETE", "/api/v3/openOrders", rest_signed({"symbol": "BTCUSDT"}))
                out["account"] = await req("GET", "/api/v3/account", rest_signed({}))
                out["uds"] = await req("POST", "/api/v3/userDataStream")
                out["nope"] = await req("GET", "/sapi/v1/capital/config/getall")
                emu.trading.status = lambda *a: 1 / 0                         # an internal error (synthetic)
                out["boom"] = await req("GET", "/api/v3/order", rest_signed({"symbol": "BTCUSDT", "orderId": 1}))
                out["after_boom"] = await req("GET", "/api/v3/time")
            async with aiohttp.ClientSession() as anon:
                async with anon.get(base + "/api/v3/account?" + rest_signed({})) as r:
                    out["nokey"] = (r.status, await r.json())
                async with anon.get(base + "/api/v3/account?" + rest_signed({}),
                                    headers={"X-MBX-APIKEY": "someoneelse"}) as r:
                    out["unknown"] = (r.status, await r.json())
            return out

    o = asyncio.run(scenario())
    st, h, info = o["info"]
    assert st == 200 and [x["symbol"] for x in info["symbols"]] == ["BTCUSDT"] and abs(
        info["serverTime"] - time.time() * 1000) < 5000
    assert "LIMIT_MAKER" in info["symbols"][0]["orderTypes"]
    assert o["info_bad"][0] == 400 and o["info_bad"][2]["code"] == -1121
    # weight: exchangeInfo 20 twice (a refused request counts too) + depth 5
    assert len(o["depth"][2]["bids"]) == 100 and o["depth"][1]["X-MBX-USED-WEIGHT-1M"] == str(20 + 20 + 5)
    st, h, r = o["ok"]
    assert st == 200 and r["clientOrderId"] == "r1"
    assert h["X-MBX-ORDER-COUNT-10S"] == "1" and "X-MBX-ORDER-COUNT-1D" in h
    assert o["mixed"][0] == 200 and o["mixed"][2]["clientOrderId"] == "r2"
    assert o["badsig"][0] == 400 and o["badsig"][2] == {"code": -1022, "msg": "Signature for this request is not "
                                                                              "valid."}
    assert o["stale"][0] == 400 and o["stale"][2]["code"] == -1021
    assert o["dup"][2]["code"] == -1101
    assert sorted(x["clientOrderId"] for x in o["open"][2]) == ["r1", "r2"]
    assert o["status"][2]["status"] == "NEW" and o["status"][2]["type"] == "LIMIT_MAKER"
    assert o["encoded"][0] == 400 and o["encoded"][2]["code"] == -2013      # signature accepted; no such order
    assert o["third"][0] == 200
    st, h, r = o["fourth"]
    assert st == 429 and r["code"] == -1015 and "Retry-After" not in h
    assert o["cancel"][2]["status"] == "CANCELED" and o["cancel"][2]["origClientOrderId"] == "r1"
    assert o["cancel"][2]["clientOrderId"] == "c1"
    assert o["cancel_again"][2] == {"code": -2011, "msg": "Unknown order sent."}
    assert len(o["cancel_all"][2]) == 2
    assert o["account"][2]["accountType"] == "SPOT"
    assert o["uds"][0] == 410 and o["nope"][0] == 404 and o["nope"][2]["code"] == -1000
    assert o["boom"][0] == 500 and o["boom"][2]["code"] == -1000 and o["after_boom"][0] == 200
    assert o["nokey"] == (401, {"code": -2014, "msg": "API-key format invalid."})
    assert o["unknown"] == (401, {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."})


def test_usdm_rest_weight_limit_429_with_retry_after_and_futures_paths(tmp_path):
    data = head(USDM_BTC, tmp_path / "usdm_btc.gz", 1500)

    async def scenario():
        async with running([data], tmp_path, speed=0, weight_per_minute=40) as (emu, port):
            await until(lambda: emu.market.done, 20, "the end")
            base = f"http://127.0.0.1:{port}"
            out = {}
            async with aiohttp.ClientSession(headers={"X-MBX-APIKEY": KEY}) as s:
                async with s.get(base + "/fapi/v3/account?" + rest_signed({})) as r:
                    out["v3"] = await r.json()
                async with s.get(base + "/fapi/v2/account?" + rest_signed({})) as r:
                    out["v2"] = await r.json()
                async with s.delete(base + "/fapi/v1/allOpenOrders?" + rest_signed({"symbol": "BTCUSDT"})) as r:
                    out["cancel_all"] = await r.json()
                async with s.get(base + "/fapi/v1/userTrades?" + rest_signed({"symbol": "BTCUSDT"})) as r:
                    out["trades"] = await r.json()
                seen = []
                for _ in range(10):
                    async with s.get(base + "/fapi/v1/depth?symbol=BTCUSDT&limit=1000") as r:
                        seen.append((r.status, r.headers.get("Retry-After"), r.headers["X-MBX-USED-WEIGHT-1M"],
                                     await r.json()))
                out["seen"] = seen
            return out
    o = asyncio.run(scenario())
    assert o["v3"]["assets"][0]["asset"] == "USDT" and o["v3"]["assets"][0]["updateTime"] > 0
    assert "feeTier" in o["v2"] and "positions" in o["v2"]
    assert o["cancel_all"] == {"code": 200, "msg": "The operation of cancel all open order is done."}
    assert o["trades"] == []
    statuses = [x[0] for x in o["seen"]]
    assert 200 in statuses and 429 in statuses
    first429 = next(x for x in o["seen"] if x[0] == 429)
    assert first429[3]["code"] == -1003 and 1 <= int(first429[1]) <= 60
