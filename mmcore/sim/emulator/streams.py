"""Market-data WebSocket: paths, subscriptions, fan-out and flow control.

Paths (research notes /work/research/binance_wire.md §1.1-1.3, §9 items 1-3):

- spot: ``/ws/<s1>/<s2>...`` (raw frames), ``/ws`` and ``/ws/<digits>`` (an empty raw connection, as ccxt opens it:
  ``/ws/0`` [CCXT:pro/binance.py:759]), ``/stream?streams=<s1>/<s2>`` (combined: ``{"stream","data"}``) [S-WSS-23];
- USDⓈ-M: the same under ``/public`` (depth, bookTicker, trade), ``/market`` (aggTrade, markPrice, kline and the
  rest) and ``/private`` (user data, :mod:`mmcore.sim.emulator.userdata`); a path without a route serves the
  public streams only ("Connections that do not include a routed path ... will only receive data from the Public
  endpoint") [UM-NOTICE][UM-WSS][GOB-809][MAXT].

Live control messages [S-WSS-23]: ``SUBSCRIBE`` / ``UNSUBSCRIBE`` answer ``{"result":null,"id":N}``,
``LIST_SUBSCRIPTIONS`` answers the names, ``SET_PROPERTY ["combined", bool]`` / ``GET_PROPERTY ["combined"]``; bad
requests get the documented ``{"code":N,"msg":...,"id":...}`` answers. A subscription to a stream served on the
other route, or to a stream that does not exist, is acknowledged and silent (measured by [MAXT]). More than
``max_streams`` streams on one connection: the SUBSCRIBE is refused with code 2 (and a URL naming more is refused
with HTTP 400) - Binance's answer is not documented. Timestamps stay in ms (``timeUnit`` is ignored).

Flow control: every connection has a send queue; after each replayed line the replay waits for any connection
whose queue holds more than ``high_water_bytes`` until it drains to half, at most ``slow_client_s``; a connection
still behind is dropped (close 1008 "slow client", counted in ``slow_dropped``).
"""
from __future__ import annotations

import asyncio
import logging
import re
from urllib.parse import parse_qs

import orjson
from aiohttp import web

from mmcore.aio import wait_within
from mmcore.sim.emulator.settings import SPOT
from mmcore.sim.emulator.wsconn import WsConn, new_response

log = logging.getLogger("mmcore.sim.emulator.streams")

_ROUTES = ("public", "market", "private")
_DIGITS = re.compile(r"^\d+$")
_PUBLIC_KINDS = re.compile(r"^(depth|rpiDepth|bookTicker$|trade$)")
MAX_ID_LEN = 36


def route_of(stream: str) -> str:
    """The USDⓈ-M route (``public`` or ``market``) that serves ``stream`` (research notes §1.2 table)."""
    if stream == "!bookTicker":
        return "public"
    kind = stream.split("@", 1)[1] if "@" in stream else stream
    return "public" if _PUBLIC_KINDS.match(kind) else "market"


def parse_path(path: str, query: str, market: str):
    """``(route, combined, streams)`` of a market-data URL, or None if it is not one. ``route``: None on spot and
    for an unrouted USDⓈ-M path (= public)."""
    route = None
    p = path
    if market != SPOT:
        for r in _ROUTES:
            if p == f"/{r}" or p.startswith(f"/{r}/"):
                route, p = r, p[len(r) + 1:]
                break
    q = parse_qs(query, keep_blank_values=True)
    if p == "/stream" or p == "/stream/":
        raw = "/".join(q.get("streams", []))
        return route, True, [s for s in raw.split("/") if s]
    if p == "/ws" or p == "/ws/" or p.startswith("/ws/"):
        parts = [s for s in p[4:].split("/") if s]
        if len(parts) == 1 and _DIGITS.match(parts[0]):
            parts = []
        return route, False, parts
    return None


class MarketConn:
    """One market-data connection: route, combined flag, subscriptions (in order)."""

    def __init__(self, conn: WsConn, route, combined: bool):
        self.conn, self.route, self.combined = conn, route, combined
        self.subs: list[str] = []
        self.served: set[str] = set()


class StreamHub:
    """Subscriptions and fan-out of market-data frames."""

    def __init__(self, emu):
        self.emu = emu
        self.settings = emu.settings
        self.spot = emu.settings.market == SPOT
        self.subs: dict[str, set[MarketConn]] = {}
        self.conns: set[MarketConn] = set()
        self.slow_dropped = 0
        self.frames_sent = 0

    # --- fan-out (from the replay) ---
    def publish(self, sm, stream: str, combined: bytes, data: bytes) -> None:
        subs = self.subs.get(stream)
        if "@depth" in stream and self.emu.faults.skip_frame(sm.symbol, stream):
            return
        if not subs:
            return
        for mc in subs:
            mc.conn.push(combined if mc.combined else data)
        self.frames_sent += len(subs)

    async def backpressure(self) -> None:
        behind = [mc for mc in self.conns if not mc.conn.drained.is_set()]
        for mc in behind:
            try:
                await wait_within(mc.conn.drained.wait(), self.settings.slow_client_s)
            except asyncio.TimeoutError:
                self.slow_dropped += 1
                log.warning("market-data connection %d does not read (%d bytes queued for %.3g s): dropped",
                            mc.conn.id, mc.conn.out_bytes, self.settings.slow_client_s)
                mc.conn.close(1008, "slow client")

    # --- subscriptions ---
    def _serves(self, mc: MarketConn, stream: str) -> bool:
        if self.spot:
            return True
        if mc.route == "private":
            return False
        return route_of(stream) == (mc.route or "public")

    def subscribe(self, mc: MarketConn, streams: list[str]) -> None:
        for s in streams:
            if s in mc.subs:
                continue
            mc.subs.append(s)
            if self._serves(mc, s):
                mc.served.add(s)
                self.subs.setdefault(s, set()).add(mc)

    def unsubscribe(self, mc: MarketConn, streams: list[str]) -> None:
        for s in streams:
            if s in mc.subs:
                mc.subs.remove(s)
            if s in mc.served:
                mc.served.discard(s)
                group = self.subs.get(s)
                if group is not None:
                    group.discard(mc)
                    if not group:
                        del self.subs[s]

    def _closed(self, mc: MarketConn) -> None:
        self.unsubscribe(mc, list(mc.subs))
        self.conns.discard(mc)

    # --- the handler ---
    async def handle(self, request: web.Request, route, combined: bool, streams: list[str]):
        emu = self.emu
        refused = emu.refuse_ws("market")
        if refused is not None:
            return refused
        if len(streams) > self.settings.max_streams:
            return web.json_response({"code": 2, "msg": f"Invalid request: more than {self.settings.max_streams} "
                                                         f"streams"}, status=400)
        emu.client_seen()
        ws = new_response(self.settings)
        await ws.prepare(request)
        holder = {}
        conn = WsConn(request, ws, "market", self.settings, strict_pong=self.spot,
                      rate_limit=self.settings.max_messages_per_s,
                      on_closed=lambda c: self._closed(holder["mc"]))
        mc = holder["mc"] = MarketConn(conn, route, combined)
        self.conns.add(mc)
        emu.register_conn(conn)
        self.subscribe(mc, streams)
        conn.start()
        await conn.read(lambda text: self._control(mc, text))
        await conn.wait_closed()
        return ws

    def _control(self, mc: MarketConn, text: str) -> None:
        """One live control message [S-WSS-23] (answers as documented there)."""
        reply = mc.conn.push
        try:
            msg = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            reply(orjson.dumps({"code": 3, "msg": f"Invalid JSON: {str(exc)[:100]}"}))
            return
        if not isinstance(msg, dict) or "method" not in msg:
            reply(orjson.dumps({"code": 2, "msg": "Invalid request: missing field `method`"}))
            return
        rid = msg.get("id")
        if not (rid is None or (type(rid) is int and 0 <= rid < 1 << 63)
                or (type(rid) is str and len(rid) <= MAX_ID_LEN and rid.isalnum())):
            reply(orjson.dumps({"code": 2, "msg": "Invalid request: request ID must be an unsigned integer"}))
            return
        method = msg.get("method")
        params = msg.get("params", [])
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            if not isinstance(params, list) or not all(type(s) is str and 0 < len(s) <= 200 for s in params):
                reply(orjson.dumps({"code": 2, "msg": "Invalid request: params must be a list of stream names",
                                    "id": rid}))
                return
            if method == "SUBSCRIBE":
                new = [s for s in dict.fromkeys(params) if s not in mc.subs]
                if len(mc.subs) + len(new) > self.settings.max_streams:
                    reply(orjson.dumps({"code": 2, "msg": f"Invalid request: more than {self.settings.max_streams} "
                                                          f"streams", "id": rid}))
                    return
                self.subscribe(mc, new)
            else:
                self.unsubscribe(mc, params)
            reply(orjson.dumps({"result": None, "id": rid}))
        elif method == "LIST_SUBSCRIPTIONS":
            reply(orjson.dumps({"result": list(mc.subs), "id": rid}))
        elif method in ("SET_PROPERTY", "GET_PROPERTY"):
            if not isinstance(params, list) or not params or type(params[0]) is not str:
                reply(orjson.dumps({"code": 2, "msg": "Invalid request: property name must be a string",
                                    "id": rid}))
            elif params[0] != "combined":
                reply(orjson.dumps({"code": 0, "msg": "Unknown property", "id": rid}))
            elif method == "GET_PROPERTY":
                reply(orjson.dumps({"result": mc.combined, "id": rid}))
            elif len(params) != 2 or type(params[1]) is not bool:
                reply(orjson.dumps({"code": 1, "msg": "Invalid value type: expected Boolean", "id": rid}))
            else:
                mc.combined = params[1]
                reply(orjson.dumps({"result": None, "id": rid}))
        else:
            reply(orjson.dumps({"code": 2, "msg": f"Invalid request: unknown variant {str(method)[:40]}, expected "
                                                  f"one of `SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, "
                                                  f"`SET_PROPERTY`, `GET_PROPERTY`", "id": rid}))
