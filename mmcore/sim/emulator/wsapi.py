"""WebSocket API: spot ``/ws-api/v3`` and USDⓈ-M ``/ws-fapi/v1``.

Envelope (research notes /work/research/binance_wire.md §3.1, §3.5; [S-WSAPI][UM-WSAPI-GI]): request ``{"id",
"method", "params"}`` (one per text frame; ``method`` may carry a version prefix such as ``v3/``), answer ``{"id",
"status", "result"}`` or ``{"id", "status", "error": {"code", "msg"[, "data"]}}``, plus ``rateLimits`` unless
``returnRateLimits`` is false in the params or in the connection URL. Status 200 / 400 / 401 / 409 / 418 / 429 / 5xx
as documented. Security: SIGNED methods need ``apiKey``, ``timestamp``, ``signature`` (HMAC over the sorted params,
:mod:`mmcore.sim.emulator.auth`); USER_STREAM methods ``apiKey`` only. A frame that is not a JSON object, or
lacks ``method``, gets status 400 ``-1102`` with ``id: null`` (Binance's exact answer is not documented).

Spot methods: ping, time, exchangeInfo, depth, order.place (LIMIT_MAKER, LIMIT GTC/IOC, MARKET), order.cancel,
order.cancelReplace, order.status, openOrders.status, openOrders.cancelAll, myTrades, account.status,
userDataStream.subscribe.signature, userDataStream.unsubscribe, session.status. USDⓈ-M: ping, time, exchangeInfo,
depth, order.place (GTC / GTX / IOC, MARKET), order.cancel, order.modify, order.status, account.status (and
``v2/account.status``), account.balance, userDataStream.start / ping / stop. Spot ``session.logon`` /
``session.logout`` and ``userDataStream.subscribe`` (on a logged-on session) for Ed25519 accounts; an HMAC key's
``session.logon`` is answered -2028 "HMAC-SHA-256 API key is not supported" (measured by [MAXT]).
"""
from __future__ import annotations

import asyncio
import logging
import re
import time

import orjson
from aiohttp import web

from mmcore.sim.emulator import auth
from mmcore.sim.emulator.errors import UNKNOWN, BinanceError, err
from mmcore.sim.emulator.ratelimits import SPOT_WEIGHTS, UM_WEIGHTS, spot_depth_weight, um_depth_weight
from mmcore.sim.emulator.trading import Params
from mmcore.sim.emulator.wsconn import WsConn, new_response

log = logging.getLogger("mmcore.sim.emulator.wsapi")
_VERSION = re.compile(r"^v\d+/")
MAX_ID = 200
NONE, SIGNED, USER_STREAM = 0, 1, 2
MAX_INFLIGHT = 1000


class WsApi:
    def __init__(self, emu):
        self.emu = emu
        self.spot = emu.exchange.spot
        self.weights = SPOT_WEIGHTS if self.spot else UM_WEIGHTS
        t = emu.trading
        common = {
            "ping": (NONE, lambda c, a, p: {}),
            "time": (NONE, lambda c, a, p: {"serverTime": time.time_ns() // 1_000_000}),
            "exchangeInfo": (NONE, lambda c, a, p: emu.exchange_info_answer(p)),
            "depth": (NONE, lambda c, a, p: emu.depth_answer(p)),
            "order.place": (SIGNED, lambda c, a, p: t.place(a, p)),
            "order.cancel": (SIGNED, lambda c, a, p: t.cancel(a, p)),
            "order.status": (SIGNED, lambda c, a, p: t.status(a, p)),
            "account.status": (SIGNED, lambda c, a, p: t.account(a, p, v2=False)),
        }
        if self.spot:
            common.update({
                "order.cancelReplace": (SIGNED, lambda c, a, p: t.cancel_replace(a, p)),
                "openOrders.status": (SIGNED, lambda c, a, p: t.open_orders(a, p)),
                "openOrders.cancelAll": (SIGNED, lambda c, a, p: t.cancel_all(a, p)),
                "myTrades": (SIGNED, lambda c, a, p: t.trades(a, p)),
                "userDataStream.subscribe.signature": (SIGNED, self._subscribe),
                "userDataStream.unsubscribe": (NONE, self._unsubscribe),
                "session.status": (NONE, self._session_status),
                "session.logon": (NONE, self._logon),
                "session.logout": (NONE, self._logout),
                "userDataStream.subscribe": (NONE, self._subscribe_session),
            })
        else:
            common.update({
                "order.modify": (SIGNED, lambda c, a, p: t.modify(a, p)),
                "account.balance": (SIGNED, lambda c, a, p: self._balance(a)),
                "userDataStream.start": (USER_STREAM, lambda c, a, p: {"listenKey": emu.userdata.create(a)}),
                "userDataStream.ping": (USER_STREAM, lambda c, a, p: {
                    "listenKey": emu.userdata.keepalive(a, p.raw.get("listenKey"))}),
                "userDataStream.stop": (USER_STREAM, lambda c, a, p: self._stop(a, p)),
            })
        self.methods = common

    # --- method helpers ---
    def _subscribe(self, conn, acc, p):
        return {"subscriptionId": self.emu.userdata.subscribe(conn, acc)}

    def _unsubscribe(self, conn, acc, p):
        sid = p.int("subscriptionId")
        self.emu.userdata.unsubscribe(conn, sid)
        return {}

    def _session_status(self, conn, acc, p):
        has = any(c is conn for c, _ in self.emu.userdata.subs.values())
        logged = conn.session_account
        return {"apiKey": logged.api_key if logged is not None else None, "authorizedSince": conn.authorized_ms,
                "connectedSince": conn.connected_ms, "returnRateLimits": conn.return_rate_limits,
                "serverTime": time.time_ns() // 1_000_000, "userDataStream": has}

    def _logon(self, conn, acc, p):
        """``session.logon`` (Ed25519 keys only): a signed request (apiKey, timestamp, signature); afterwards the
        connection's SIGNED requests may omit ``apiKey`` and ``signature`` and ``userDataStream.subscribe`` works
        [S-WSAPI "Session Authentication"]. HMAC keys: -2028 (measured by [MAXT])."""
        params = p.raw
        acc = auth.account_of(self.emu.exchange.accounts, params.get("apiKey"))
        if acc.public_key is None:
            raise BinanceError(-2028, "HMAC-SHA-256 API key is not supported")
        auth.check_signed(acc, auth.ws_payload(params), params.get("signature"), params,
                          self.emu.settings.recv_window_max_ms)
        conn.session_account, conn.authorized_ms = acc, time.time_ns() // 1_000_000
        return self._session_status(conn, acc, p)

    def _logout(self, conn, acc, p):
        conn.session_account, conn.authorized_ms = None, None
        return self._session_status(conn, acc, p)

    def _subscribe_session(self, conn, acc, p):
        if conn.session_account is None:
            raise BinanceError(-1002, "You are not authorized to execute this request.", 401)
        return {"subscriptionId": self.emu.userdata.subscribe(conn, conn.session_account)}

    def _stop(self, acc, p):
        self.emu.userdata.delete(acc, p.raw.get("listenKey"))
        return {}

    def _balance(self, acc):
        a = self.emu.trading.account(acc, Params({}), v2=True)["assets"][0]
        return [{"accountAlias": acc.name, "asset": a["asset"], "balance": a["walletBalance"],
                 "crossWalletBalance": a["crossWalletBalance"], "crossUnPnl": a["crossUnPnl"],
                 "availableBalance": a["availableBalance"], "maxWithdrawAmount": a["maxWithdrawAmount"],
                 "marginAvailable": True, "updateTime": a["updateTime"]}]

    def _weight(self, method: str, p: Params) -> int:
        w = self.weights
        if method == "depth":
            try:
                limit = int(p.raw.get("limit", 100 if self.spot else 500))
            except (TypeError, ValueError):
                limit = 100
            return spot_depth_weight(limit) if self.spot else um_depth_weight(limit)
        if method == "openOrders.status" and not p.has("symbol"):
            return w["openOrders.status.all"]
        if method.startswith("userDataStream"):
            return w.get("userDataStream.subscribe", w.get("userDataStream", 1))
        return w.get(method, 1)

    # --- the connection ---
    async def handle(self, request: web.Request):
        emu = self.emu
        refused = emu.refuse_ws("wsapi")
        if refused is not None:
            return refused
        emu.client_seen()
        ws = new_response(emu.settings)
        await ws.prepare(request)
        conn = WsConn(request, ws, "wsapi", emu.settings, strict_pong=self.spot, rate_limit=None,
                      on_closed=lambda c: emu.userdata.drop_conn(c))
        conn.return_rate_limits = request.query.get("returnRateLimits", "true").lower() != "false"
        conn.session_account = conn.authorized_ms = None
        conn.inflight = 0
        conn.tasks_inflight = set()
        emu.register_conn(conn)
        try:
            emu.ratelimits.use_weight("ip", self.weights.get("connect", 0))
        except BinanceError:
            pass
        conn.start()
        await conn.read(lambda text: self._request(conn, text))
        await conn.wait_closed()
        return ws

    def _send(self, conn: WsConn, rid, status: int, result=None, error: BinanceError | None = None,
              limits: list | None = None) -> None:
        out = {"id": rid, "status": status}
        if error is not None:
            out["error"] = error.body()
        else:
            out["result"] = result
        if limits is not None:
            out["rateLimits"] = limits
        conn.push(orjson.dumps(out))

    def _request(self, conn: WsConn, text: str):
        try:
            msg = orjson.loads(text)
        except orjson.JSONDecodeError:
            self._send(conn, None, 400, error=BinanceError(-1102, "Malformed request: not valid JSON."))
            return None
        if not isinstance(msg, dict) or not isinstance(msg.get("method"), str):
            self._send(conn, None, 400, error=BinanceError(-1102, "Mandatory parameter 'method' was not sent, was "
                                                                   "empty/null, or malformed."))
            return None
        rid = msg.get("id")
        if not (rid is None or (type(rid) is int and -(1 << 63) <= rid < 1 << 63)
                or (type(rid) is str and len(rid) <= MAX_ID)):
            self._send(conn, None, 400, error=BinanceError(-1102, "Mandatory parameter 'id' was not sent, was "
                                                                   "empty/null, or malformed."))
            return None
        method = _VERSION.sub("", msg["method"])
        params = msg.get("params", {})
        if params is None:
            params = {}
        if not isinstance(params, dict):
            self._send(conn, rid, 400, error=BinanceError(-1102, "Mandatory parameter 'params' was not sent, was "
                                                                  "empty/null, or malformed."))
            return None
        if conn.inflight >= MAX_INFLIGHT:
            self._send(conn, rid, 429, error=BinanceError(-1003, "Too many requests queued."))
            return None
        conn.inflight += 1
        task = asyncio.get_running_loop().create_task(self._run(conn, rid, method, params))
        conn.tasks_inflight.add(task)
        task.add_done_callback(conn.tasks_inflight.discard)
        return None

    async def _run(self, conn: WsConn, rid, method: str, params: dict) -> None:
        emu = self.emu
        p = Params(params)
        want_limits = conn.return_rate_limits and params.get("returnRateLimits", True) not in (False, "false")
        bucket = "ip"
        is_order = method in ("order.place", "order.cancelReplace") or (method == "order.modify")
        status, result, error = 200, None, None
        try:
            spec = self.methods.get(method)
            fault = emu.faults.take_http("wsapi")
            if fault is not None and not (fault.kind == "server_error" and fault.params["execute"] and spec):
                raise emu.fault_error(fault)
            if spec is None:
                raise BinanceError(-1020, f"Unknown method '{method[:60]}'.")
            security, fn = spec
            acc = None
            session = conn.session_account if "apiKey" not in params and "signature" not in params else None
            if security != NONE:
                acc = session or auth.account_of(emu.exchange.accounts, params.get("apiKey"))
                bucket = acc.name
            emu.ratelimits.use_weight(bucket, self._weight(method, p))
            if security == SIGNED:
                if session is not None:                  # a logged-on session: the timestamp rule only
                    auth.check_time(params, emu.settings.recv_window_max_ms)
                else:
                    auth.check_signed(acc, auth.ws_payload(params), params.get("signature"), params,
                                      emu.settings.recv_window_max_ms)
            if is_order:
                emu.ratelimits.use_order(bucket)
            r = fn(conn, acc, p)
            if asyncio.iscoroutine(r):
                r = await r
            result = r
            if fault is not None:                       # server_error with execute: done, answered 5xx
                raise emu.fault_error(fault)
        except BinanceError as exc:
            status, error = exc.status, exc
        except Exception as exc:                       # noqa: BLE001 - one request never ends the connection
            log.error("WS API %s: internal error %r", method[:60], exc)
            log.debug("WS API internal error", exc_info=exc)
            status, error = 500, err(UNKNOWN, 500)
        finally:
            conn.inflight -= 1
        limits = emu.ratelimits.rate_limits(bucket, is_order) if want_limits else None
        self._send(conn, rid, status, result, error, limits)
