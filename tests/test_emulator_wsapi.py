"""WebSocket API of the emulator (spot ws-api/v3, USDⓈ-M ws-fapi/v1) and signing, against a picows client:
Binance's signing test vectors, -1022 / -1021 / -2014 / -2015 / -1102, post-only crossing -2010 / -5022, filters,
unknown orders, rateLimits and returnRateLimits, order.modify, order.cancelReplace, user-data events of a fill.
Recordings: the first lines of the real 2024-08-08 files."""
import asyncio
import time

import pytest

from mmcore.sim.emulator import auth
from mmcore.sim.emulator.errors import BinanceError

from emukit import (KEY, KEY2, SECRET, SECRET2, SPOT_BTC, USDM_BTC, USDM_ETH, ApiClient, head, running, until,
                    ws_signed)

pytest.importorskip("picows")
HEAD = 2000


def test_binance_signing_test_vectors():
    # WS API (research notes §3.2, [S-WSAPI])
    key = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
    secret = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
    params = {"symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.01000000",
              "price": "52000.00", "newOrderRespType": "ACK", "recvWindow": 100, "timestamp": 1645423376532,
              "apiKey": key}
    payload = auth.ws_payload(params)
    assert payload == ("apiKey=vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A&newOrderRespType=ACK&"
                       "price=52000.00&quantity=0.01000000&recvWindow=100&side=SELL&symbol=BTCUSDT&timeInForce=GTC&"
                       "timestamp=1645423376532&type=LIMIT")
    assert auth.sign(secret, payload) == "cc15477742bd704c29492d96c7ead9414dfd8e0ec4a00f947bb5bb454ddbd08a"
    # REST (research notes §5.2, [S-REST-OLD]): query only, and query + body
    rsecret = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
    q = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
    params, payload, sig = auth.rest_params(q + "&signature=c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b283"
                                                "8bd6b71", "")
    assert sig and auth.signature_ok(rsecret, payload, sig) and params["price"] == "0.1"
    params, payload, sig = auth.rest_params(
        "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC",
        "quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559&signature=0fd168b8ddb4876a0358a8d14d0c9f3da0e9b"
        "20c5d52b2a00fcf7d1c602f9a77")
    assert auth.signature_ok(rsecret, payload, sig)
    assert auth.signature_ok(rsecret, payload, sig.upper())            # not case-sensitive
    assert not auth.signature_ok(rsecret, payload + "x", sig)


def test_time_rule():
    now = 1_700_000_000_000
    auth.check_time({"timestamp": now - 4999}, 60000, now)
    auth.check_time({"timestamp": (now + 999) * 1000}, 60000, now)          # µs accepted
    for params, code in (({"timestamp": now - 5001}, -1021), ({"timestamp": now + 1000}, -1021),
                         ({"timestamp": now, "recvWindow": 60001}, -1131), ({}, -1102), ({"timestamp": "x"}, -1102)):
        with pytest.raises(BinanceError) as e:
            auth.check_time(params, 60000, now)
        assert e.value.code == code


def _order(side, price, qty, **kw):
    return dict({"symbol": "BTCUSDT", "side": side, "type": "LIMIT", "price": price, "quantity": qty}, **kw)


def test_usdm_ws_api_auth_errors_post_only_filters_rate_limits_and_modify(tmp_path):
    files = [head(USDM_BTC, tmp_path / "usdm_btc.gz", HEAD), head(USDM_ETH, tmp_path / "usdm_eth.gz", HEAD)]

    async def scenario():
        async with running(files, tmp_path, speed=0, accounts=((KEY, SECRET), (KEY2, SECRET2))) as (emu, port):
            await until(lambda: emu.market.done, 20, "the end of the recording")
            api = await ApiClient.connect(f"ws://127.0.0.1:{port}/ws-fapi/v1")
            out = {}
            out["time"] = await api.call("time")
            out["depth"] = await api.call("depth", {"symbol": "ETHUSDT", "limit": 5})
            b = emu.market.symbols["BTCUSDT"].book
            inst = emu.markets.instruments["BTCUSDT"]
            best_bid, best_ask = str(inst.price_of(b.best_bid_px())), str(inst.price_of(b.best_ask_px()))
            far = str(inst.price_of(b.best_bid_px() - 1000))
            p = ws_signed(_order("BUY", far, "0.002", timeInForce="GTX"))
            p["signature"] = "0" * 64
            out["badsig"] = await api.call("order.place", p)
            out["stale"] = await api.call("order.place", ws_signed(_order("BUY", far, "0.002", timeInForce="GTX"),
                                                                   ts=int(time.time() * 1000) - 6000))
            out["nokey"] = await api.call("order.place", {"symbol": "BTCUSDT"})
            out["unknownkey"] = await api.call("order.place", ws_signed(_order("BUY", far, "0.002"), key="nobody"))
            out["cross"] = await api.call("order.place", ws_signed(_order("BUY", best_ask, "0.002",
                                                                          timeInForce="GTX")))
            out["tick"] = await api.call("order.place", ws_signed(_order("BUY", far + "5", "0.002",
                                                                         timeInForce="GTX")))
            out["step"] = await api.call("order.place", ws_signed(_order("BUY", far, "0.0025", timeInForce="GTX")))
            out["notional"] = await api.call("order.place", ws_signed(_order("BUY", "1000.0", "0.001",  # 1 USDT < 5
                                                                            timeInForce="GTX")))
            out["missing"] = await api.call("order.place", ws_signed({"symbol": "BTCUSDT", "side": "BUY",
                                                                      "type": "LIMIT", "timeInForce": "GTX",
                                                                      "price": far}))
            out["ok"] = await api.call("order.place", ws_signed(_order("BUY", far, "0.002", timeInForce="GTX",
                                                                       newClientOrderId="mm-btcusdt-1")))
            out["nolimits"] = await api.call("order.status", ws_signed({"symbol": "BTCUSDT", "orderId":
                                                                        out["ok"]["result"]["orderId"],
                                                                        "returnRateLimits": False}))
            higher = str(inst.price_of(b.best_bid_px() - 500))
            out["modify"] = await api.call("order.modify", ws_signed({"symbol": "BTCUSDT", "side": "BUY",
                                                                      "origClientOrderId": "mm-btcusdt-1",
                                                                      "price": higher, "quantity": "0.003"}))
            out["modify_cross"] = await api.call("order.modify", ws_signed({"symbol": "BTCUSDT", "side": "BUY",
                                                                            "orderId": out["ok"]["result"]["orderId"],
                                                                            "price": best_ask, "quantity": "0.003"}))
            out["cancel_gone"] = await api.call("order.cancel", ws_signed({"symbol": "BTCUSDT",
                                                                           "origClientOrderId": "mm-btcusdt-1"}))
            out["status_unknown"] = await api.call("order.status", ws_signed({"symbol": "BTCUSDT", "orderId": 999}))
            out["other_account"] = await api.call("order.status", ws_signed(
                {"symbol": "BTCUSDT", "orderId": out["ok"]["result"]["orderId"]}, key=KEY2, secret=SECRET2))
            out["account"] = await api.call("account.status", ws_signed({}))
            out["unknown"] = await api.call("nope.method", {})
            api.close()
            return out, best_bid, emu.account_state(emu.exchange.accounts[KEY])

    o, best_bid, state = asyncio.run(scenario())
    assert o["time"]["status"] == 200 and abs(o["time"]["result"]["serverTime"] - time.time() * 1000) < 5000
    assert o["time"]["rateLimits"][0]["rateLimitType"] == "REQUEST_WEIGHT"
    assert o["depth"]["result"]["lastUpdateId"] > 0 and len(o["depth"]["result"]["asks"]) == 5
    assert o["badsig"]["status"] == 400 and o["badsig"]["error"]["code"] == -1022
    assert o["stale"]["status"] == 400 and o["stale"]["error"]["code"] == -1021
    assert o["nokey"]["status"] == 401 and o["nokey"]["error"]["code"] == -2014
    assert o["unknownkey"]["status"] == 401 and o["unknownkey"]["error"]["code"] == -2015
    assert o["cross"]["status"] == 400 and o["cross"]["error"]["code"] == -5022
    assert o["tick"]["error"]["code"] == -4014 and o["step"]["error"]["code"] == -4023
    assert o["notional"]["error"] == {"code": -4164, "msg": "Order's notional must be no smaller than 5 (unless you "
                                                            "choose reduce only)."}
    assert o["missing"]["error"]["code"] == -1102 and "'quantity'" in o["missing"]["error"]["msg"]
    r = o["ok"]["result"]
    assert o["ok"]["status"] == 200 and r["status"] == "NEW" and r["clientOrderId"] == "mm-btcusdt-1"
    assert r["timeInForce"] == "GTX" and r["origQty"] == "0.002"
    limits = {(x["rateLimitType"], x["interval"]) for x in o["ok"]["rateLimits"]}
    assert limits == {("REQUEST_WEIGHT", "MINUTE"), ("ORDERS", "SECOND"), ("ORDERS", "MINUTE")}
    assert "rateLimits" not in o["nolimits"] and o["nolimits"]["result"]["status"] == "NEW"
    assert o["modify"]["result"]["origQty"] == "0.003" and o["modify"]["result"]["orderId"] == r["orderId"]
    assert o["modify_cross"]["result"]["status"] == "CANCELED"       # GTX modified to a taking price: canceled
    assert o["cancel_gone"]["error"]["code"] == -2011
    assert o["status_unknown"]["error"]["code"] == -2013 and o["other_account"]["error"]["code"] == -2013
    assert o["account"]["result"]["assets"][0]["updateTime"] > 0
    assert o["unknown"]["status"] == 400
    orders = state["symbols"]["BTCUSDT"]["orders"]
    assert [x["status"] for x in orders] == ["CANCELED"]              # refused orders leave no record
    assert state["coids_received"] == {"mm-btcusdt-1": 1}


def test_spot_ws_api_post_only_cancel_replace_open_orders_and_my_trades(tmp_path):
    files = [head(SPOT_BTC, tmp_path / "spot_btc.gz", HEAD)]

    async def scenario():
        async with running(files, tmp_path, speed=0) as (emu, port):
            await until(lambda: emu.market.done, 20, "the end of the recording")
            api = await ApiClient.connect(f"ws://127.0.0.1:{port}/ws-api/v3?returnRateLimits=false")
            b = emu.market.symbols["BTCUSDT"].book
            inst = emu.markets.instruments["BTCUSDT"]
            ask = str(inst.price_of(b.best_ask_px()))
            far = str(inst.price_of(b.best_bid_px() - 1000))
            far2 = str(inst.price_of(b.best_bid_px() - 2000))
            out = {"ping": await api.call("ping")}
            out["info"] = await api.call("exchangeInfo", {"symbols": ["BTCUSDT"]})
            out["depth"] = await api.call("depth", {"symbol": "BTCUSDT", "limit": 3})
            out["cross"] = await api.call("order.place", ws_signed({"symbol": "BTCUSDT", "side": "BUY",
                                                                    "type": "LIMIT_MAKER", "price": ask,
                                                                    "quantity": "0.001"}))
            out["lot"] = await api.call("order.place", ws_signed({"symbol": "BTCUSDT", "side": "BUY",
                                                                  "type": "LIMIT_MAKER", "price": far,
                                                                  "quantity": "0.000011"}))
            out["poor"] = await api.call("order.place", ws_signed({"symbol": "BTCUSDT", "side": "BUY",
                                                                   "type": "LIMIT_MAKER", "price": far,
                                                                   "quantity": "100"}))
            out["ok"] = await api.call("order.place", ws_signed({"symbol": "BTCUSDT", "side": "BUY",
                                                                 "type": "LIMIT_MAKER", "price": far,
                                                                 "quantity": "0.001", "newClientOrderId": "a1"}))
            out["dup"] = await api.call("order.place", ws_signed({"symbol": "BTCUSDT", "side": "BUY",
                                                                  "type": "LIMIT_MAKER", "price": far2,
                                                                  "quantity": "0.001", "newClientOrderId": "a1"}))
            out["replace"] = await api.call("order.cancelReplace", ws_signed({
                "symbol": "BTCUSDT", "cancelReplaceMode": "STOP_ON_FAILURE", "cancelOrigClientOrderId": "a1",
                "side": "BUY", "type": "LIMIT_MAKER", "price": far2, "quantity": "0.001", "newClientOrderId": "a2"}))
            out["replace_fail"] = await api.call("order.cancelReplace", ws_signed({
                "symbol": "BTCUSDT", "cancelReplaceMode": "STOP_ON_FAILURE", "cancelOrigClientOrderId": "a1",
                "side": "BUY", "type": "LIMIT_MAKER", "price": far2, "quantity": "0.001"}))
            out["open"] = await api.call("openOrders.status", ws_signed({"symbol": "BTCUSDT"}))
            out["ioc"] = await api.call("order.place", ws_signed({"symbol": "BTCUSDT", "side": "BUY",
                                                                  "type": "LIMIT", "timeInForce": "IOC",
                                                                  "price": ask, "quantity": "0.001"}))
            out["trades"] = await api.call("myTrades", ws_signed({"symbol": "BTCUSDT"}))
            out["cancel_all"] = await api.call("openOrders.cancelAll", ws_signed({"symbol": "BTCUSDT"}))
            out["account"] = await api.call("account.status", ws_signed({"omitZeroBalances": True}))
            out["logon"] = await api.call("session.logon", ws_signed({}))
            api.close()
            return out

    o = asyncio.run(scenario())
    assert o["ping"] == {"id": 1, "status": 200, "result": {}}                # returnRateLimits=false in the URL
    assert [x["symbol"] for x in o["info"]["result"]["symbols"]] == ["BTCUSDT"]
    d = o["depth"]["result"]
    assert len(d["bids"]) == 3 and float(d["bids"][0][0]) < float(d["asks"][0][0]) and "E" not in d
    assert o["cross"]["error"] == {"code": -2010, "msg": "Order would immediately match and take."}
    assert o["lot"]["error"] == {"code": -1013, "msg": "Filter failure: LOT_SIZE"}
    assert o["poor"]["error"]["msg"] == "Account has insufficient balance for requested action."
    assert set(o["ok"]["result"]) == {"symbol", "orderId", "orderListId", "clientOrderId", "transactTime"}   # ACK
    assert o["dup"]["error"] == {"code": -2010, "msg": "Duplicate order sent."}
    rr = o["replace"]["result"]
    assert rr["cancelResult"] == rr["newOrderResult"] == "SUCCESS"
    assert rr["cancelResponse"]["origClientOrderId"] == "a1" and rr["newOrderResponse"]["clientOrderId"] == "a2"
    assert o["replace_fail"]["status"] == 400 and o["replace_fail"]["error"]["code"] == -2022
    assert o["replace_fail"]["error"]["data"]["cancelResponse"]["code"] == -2011
    assert [x["clientOrderId"] for x in o["open"]["result"]] == ["a2"]
    ioc = o["ioc"]["result"]
    assert ioc["status"] == "FILLED" and len(ioc["fills"]) >= 1 and ioc["fills"][0]["commissionAsset"] == "BTC"
    t = o["trades"]["result"]
    assert [x["id"] for x in t] == [f["tradeId"] for f in ioc["fills"]] and t[0]["isMaker"] is False
    assert [x["origClientOrderId"] for x in o["cancel_all"]["result"]] == ["a2"]
    assets = {b["asset"] for b in o["account"]["result"]["balances"]}
    assert {"BTC", "USDT"} <= assets
    assert o["logon"]["error"]["code"] == -2028
