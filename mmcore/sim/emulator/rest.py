"""REST endpoints under Binance's own paths (research notes /work/research/binance_wire.md §5, §7.3; ccxt's calls
[CCXT:binance.py] as listed in §7.3).

Spot ``/api/v3``: ``ping``, ``time``, ``exchangeInfo``, ``depth``, ``trades`` (NONE); ``order`` POST / DELETE / GET,
``order/cancelReplace`` POST, ``openOrders`` GET / DELETE, ``myTrades``, ``account`` (SIGNED);
``userDataStream`` answers 410 (spot listenKeys were discontinued, [S-CL-WEB][MAXT]).
USDⓈ-M ``/fapi``: ``v1/ping``, ``v1/time``, ``v1/exchangeInfo``, ``v1/depth``, ``v1/trades`` (NONE); ``v1/order``
POST / PUT (modify) / DELETE / GET, ``v1/openOrders``, ``v1/openOrder``, ``v1/allOpenOrders`` DELETE, ``v1/userTrades``,
``v2/account``, ``v3/account``, ``v2/balance``, ``v3/balance`` (SIGNED); ``v1/listenKey`` POST / PUT / DELETE
(USER_STREAM: ``X-MBX-APIKEY`` header only).

Every answer has ``X-MBX-USED-WEIGHT-1M``; order answers ``X-MBX-ORDER-COUNT-*`` (:mod:`.ratelimits`). Errors are
``{"code", "msg"}`` with Binance's HTTP status; a path Binance does not have gets 404 ``{"code": -1000, ...}``; an
internal error is logged and answered 500 ``-1000`` (never a traceback). Bodies over 64 KiB are refused (413).
"""
from __future__ import annotations

import logging
import time

import orjson
from aiohttp import web

from mmcore.sim.emulator import auth
from mmcore.sim.emulator.errors import UNKNOWN, UNSUPPORTED, BinanceError, err
from mmcore.sim.emulator.ratelimits import SPOT_WEIGHTS, UM_WEIGHTS, spot_depth_weight, um_depth_weight
from mmcore.sim.emulator.trading import Params

log = logging.getLogger("mmcore.sim.emulator.rest")
NONE, SIGNED, USER_STREAM = 0, 1, 2
MAX_BODY = 64 << 10


def json_response(obj, status: int = 200, headers: dict | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(obj), status=status, headers=headers, content_type="application/json")


class Rest:
    def __init__(self, emu):
        self.emu = emu
        self.spot = emu.exchange.spot
        self.weights = SPOT_WEIGHTS if self.spot else UM_WEIGHTS

    def routes(self, app: web.Application) -> None:
        t = self.emu.trading
        emu = self.emu
        ud = emu.userdata
        add = self._add
        if self.spot:
            pre = "/api/v3"
            add(app, "GET", pre + "/ping", NONE, "ping", lambda a, p: {})
            add(app, "GET", pre + "/time", NONE, "time", lambda a, p: {"serverTime": time.time_ns() // 1_000_000})
            add(app, "GET", pre + "/exchangeInfo", NONE, "exchangeInfo", lambda a, p: emu.exchange_info_answer(p))
            add(app, "GET", pre + "/depth", NONE, "depth", lambda a, p: emu.depth_answer(p))
            add(app, "GET", pre + "/trades", NONE, "trades", lambda a, p: emu.recent_trades_answer(p))
            add(app, "POST", pre + "/order", SIGNED, "order.place", lambda a, p: t.place(a, p), orders=True)
            add(app, "DELETE", pre + "/order", SIGNED, "order.cancel", lambda a, p: t.cancel(a, p))
            add(app, "GET", pre + "/order", SIGNED, "order.status", lambda a, p: t.status(a, p))
            add(app, "POST", pre + "/order/cancelReplace", SIGNED, "order.cancelReplace",
                lambda a, p: t.cancel_replace(a, p), orders=True)
            add(app, "GET", pre + "/openOrders", SIGNED, "openOrders.status", lambda a, p: t.open_orders(a, p))
            add(app, "DELETE", pre + "/openOrders", SIGNED, "openOrders.cancelAll", lambda a, p: t.cancel_all(a, p))
            add(app, "GET", pre + "/myTrades", SIGNED, "myTrades", lambda a, p: t.trades(a, p))
            add(app, "GET", pre + "/account", SIGNED, "account.status", lambda a, p: t.account(a, p))
            for m in ("POST", "PUT", "DELETE"):
                app.router.add_route(m, pre + "/userDataStream", self._gone)
        else:
            v1 = "/fapi/v1"
            add(app, "GET", v1 + "/ping", NONE, "ping", lambda a, p: {})
            add(app, "GET", v1 + "/time", NONE, "time", lambda a, p: {"serverTime": time.time_ns() // 1_000_000})
            add(app, "GET", v1 + "/exchangeInfo", NONE, "exchangeInfo", lambda a, p: emu.exchange_info_answer(p))
            add(app, "GET", v1 + "/depth", NONE, "depth", lambda a, p: emu.depth_answer(p))
            add(app, "GET", v1 + "/trades", NONE, "trades", lambda a, p: emu.recent_trades_answer(p))
            add(app, "POST", v1 + "/order", SIGNED, "order.place", lambda a, p: t.place(a, p), orders=True)
            add(app, "PUT", v1 + "/order", SIGNED, "order.modify", lambda a, p: t.modify(a, p), orders=True)
            add(app, "DELETE", v1 + "/order", SIGNED, "order.cancel", lambda a, p: t.cancel(a, p))
            add(app, "GET", v1 + "/order", SIGNED, "order.status", lambda a, p: t.status(a, p))
            add(app, "GET", v1 + "/openOrder", SIGNED, "order.status", lambda a, p: t.status(a, p))
            add(app, "GET", v1 + "/openOrders", SIGNED, "openOrders.status", lambda a, p: t.open_orders(a, p))
            add(app, "DELETE", v1 + "/allOpenOrders", SIGNED, "openOrders.cancelAll", lambda a, p: t.cancel_all(a, p))
            add(app, "GET", v1 + "/userTrades", SIGNED, "myTrades", lambda a, p: t.trades(a, p))
            for v in ("/fapi/v2", "/fapi/v3"):
                add(app, "GET", v + "/account", SIGNED, "account.status",
                    lambda a, p, v2=(v == "/fapi/v2"): t.account(a, p, v2=v2))
                add(app, "GET", v + "/balance", SIGNED, "account.status", lambda a, p: emu.wsapi._balance(a))
            add(app, "POST", v1 + "/listenKey", USER_STREAM, "userDataStream",
                lambda a, p: {"listenKey": ud.create(a)})
            add(app, "PUT", v1 + "/listenKey", USER_STREAM, "userDataStream",
                lambda a, p: {"listenKey": ud.keepalive(a, p.raw.get("listenKey"))})
            add(app, "DELETE", v1 + "/listenKey", USER_STREAM, "userDataStream",
                lambda a, p: (ud.delete(a, p.raw.get("listenKey")), {})[1])

    async def _gone(self, request: web.Request) -> web.Response:
        self.emu.client_seen()
        return json_response(err(UNSUPPORTED).body(), 410)

    def _weight(self, op: str, p: Params) -> int:
        if op == "depth":
            try:
                limit = int(p.raw.get("limit", 100 if self.spot else 500))
            except (TypeError, ValueError):
                limit = 100
            return spot_depth_weight(limit) if self.spot else um_depth_weight(limit)
        if op == "openOrders.status" and not p.has("symbol"):
            return self.weights["openOrders.status.all"]
        w = self.weights.get(op, 1)
        return max(w, 1) if op == "order.place" else w

    def _add(self, app, method: str, path: str, security: int, op: str, fn, orders: bool = False) -> None:
        async def handler(request: web.Request) -> web.Response:
            return await self._handle(request, security, op, fn, orders)
        app.router.add_route(method, path, handler)

    async def _handle(self, request: web.Request, security: int, op: str, fn, orders: bool) -> web.Response:
        emu = self.emu
        emu.client_seen()
        bucket = "ip"
        headers: dict = {}
        try:
            fault = emu.faults.take_http("rest")
            if fault is not None and not (fault.kind == "server_error" and fault.params["execute"]):
                raise emu.fault_error(fault)
            body = ""
            if request.can_read_body:
                if (request.content_length or 0) > MAX_BODY:
                    raise BinanceError(-1000, "Request body too large.", 413)
                raw = await request.content.read(MAX_BODY + 1)
                if len(raw) > MAX_BODY:
                    raise BinanceError(-1000, "Request body too large.", 413)
                body = raw.decode("utf-8", "replace")
            params, payload, signature = auth.rest_params(request.raw_path.partition("?")[2], body)   # as sent
            p = Params(params)
            acc = None
            key = request.headers.get("X-MBX-APIKEY")
            if security != NONE:
                acc = auth.account_of(emu.exchange.accounts, key)
                bucket = acc.name
            elif key in emu.exchange.accounts:
                bucket = emu.exchange.accounts[key].name
            emu.ratelimits.use_weight(bucket, self._weight(op, p))
            if security == SIGNED:
                auth.check_signed(acc, payload, signature, params, emu.settings.recv_window_max_ms)
            if orders:
                emu.ratelimits.use_order(bucket)
            r = fn(acc, p)
            if hasattr(r, "__await__"):
                r = await r
            if fault is not None:
                raise emu.fault_error(fault)
            headers.update(emu.ratelimits.headers(bucket, orders))
            return json_response(r, 200, headers)
        except BinanceError as exc:
            headers.update(emu.ratelimits.headers(bucket, orders))
            headers.update(exc.headers)
            body = {"code": exc.code, "msg": exc.msg}
            if exc.data is not None and exc.code in (-2021, -2022):
                body["data"] = exc.data
            return json_response(body, exc.status, headers)
        except Exception as exc:                       # noqa: BLE001 - a request never ends in a traceback
            log.error("REST %s %s: internal error %r", request.method, request.path[:80], exc)
            log.debug("REST internal error", exc_info=exc)
            return json_response(err(UNKNOWN).body(), 500)

    async def not_found(self, request: web.Request) -> web.Response:
        return json_response({"code": -1000, "msg": f"emulator: no route {request.method} {request.path[:100]}"},
                             404)
