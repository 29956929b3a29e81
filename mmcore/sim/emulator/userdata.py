"""User-data streams: the events an account's changes produce, delivered the way each market does.

- spot (research notes /work/research/binance_wire.md §3.4, §4.1): on the WS API connection after
  ``userDataStream.subscribe.signature`` (answer ``{"subscriptionId": N}``), every event as
  ``{"subscriptionId": N, "event": {...}}`` [S-TN-CL][S-UDS-WEB]; ``userDataStream.unsubscribe`` pushes
  ``eventStreamTerminated`` first [S-UDS-TN][MAXT]. One subscription per account per connection (a second one
  answers the existing id). The listenKey REST endpoint answers 410 (discontinued 2026-02-20, [S-CL-WEB][MAXT]).
- USDⓈ-M (§4.2, §4.3): a listenKey from ``POST /fapi/v1/listenKey`` or ``userDataStream.start`` (one per account:
  asking again returns it and extends it), valid ``listen_key_ttl_s`` (60 min) after creation or the last
  keep-alive (``PUT`` / ``userDataStream.ping``; -1125 for an unknown key), closed by ``DELETE`` /
  ``userDataStream.stop`` [UM-UDS]; events on ``/private/ws?listenKey=K[&events=A/B]`` (bare) and
  ``/private/stream?listenKey=K1[&events=..]&listenKey=K2...`` (``{"stream": <listenKey>, "data": ...}``);
  ``events`` is an allow-list of event types [UM-NOTICE][MAXT]. When a key expires (or is deleted)
  ``listenKeyExpired`` (``E`` a string, [SDK-UM-M:listenkeyexpired.py]) is pushed on its connections, which stay
  open but get nothing more for it. An unknown key on connect is refused (HTTP 400, -1125).

Faults ``duplicate_reports`` / ``reorder_reports`` act here, on execution reports only.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import time
from urllib.parse import parse_qsl

import orjson
from aiohttp import web

from mmcore.sim.emulator.errors import BAD_LISTEN_KEY, err
from mmcore.sim.emulator.streams import MarketConn
from mmcore.sim.emulator.wsconn import WsConn, new_response

log = logging.getLogger("mmcore.sim.emulator.userdata")
_KEY_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


class ListenKey:
    __slots__ = ("key", "account", "expires", "conns")

    def __init__(self, key, account, expires):
        self.key, self.account, self.expires = key, account, expires
        self.conns: dict = {}                      # WsConn -> (combined, events allow-list or None)


class UserData:
    def __init__(self, emu):
        self.emu = emu
        self.settings = emu.settings
        self._sub_ids = itertools.count(0)
        self.subs: dict[int, tuple] = {}            # subscription id -> (WsConn, Account)
        self.keys: dict[str, ListenKey] = {}
        self._held: dict = {}                       # account -> (event, timer) of a reorder fault
        self.delivered = 0
        self._task = None

    def start(self) -> None:
        if not self.emu.exchange.spot and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._expiry(), name="listen-key-expiry")

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    # --- fan-out (Exchange.sink) ---
    def sink(self, acc, ev: dict, execution_report: bool) -> None:
        if execution_report:
            held = self._held.pop(acc, None)
            f = self.emu.faults.take_report_fault(acc.api_key)
            if f is not None and f.kind == "reorder_reports" and held is None:
                timer = asyncio.get_running_loop().call_later(f.params["hold_ms"] / 1000, self._flush_held, acc)
                self._held[acc] = (ev, timer)
                return
            self._deliver(acc, ev)
            if f is not None and f.kind == "duplicate_reports":
                self._deliver(acc, ev)
            if held is not None:
                held[1].cancel()
                self._deliver(acc, held[0])
            return
        self._deliver(acc, ev)

    def _flush_held(self, acc) -> None:
        held = self._held.pop(acc, None)
        if held is not None:
            self._deliver(acc, held[0])

    def _deliver(self, acc, ev: dict) -> None:
        if self.emu.exchange.spot:
            for sid, (conn, a) in list(self.subs.items()):
                if a is acc and not conn.closed:
                    conn.push(orjson.dumps({"subscriptionId": sid, "event": ev}))
                    self.delivered += 1
            return
        e = ev.get("e")
        payload = None
        for lk in list(self.keys.values()):
            if lk.account is not acc:
                continue
            for conn, (combined, events) in list(lk.conns.items()):
                if conn.closed or (events is not None and e not in events):
                    continue
                if combined:
                    conn.push(orjson.dumps({"stream": lk.key, "data": ev}))
                else:
                    payload = payload or orjson.dumps(ev)
                    conn.push(payload)
                self.delivered += 1

    # --- spot subscriptions ---
    def subscribe(self, conn: WsConn, acc) -> int:
        for sid, (c, a) in self.subs.items():
            if c is conn and a is acc:
                return sid
        sid = next(self._sub_ids)
        self.subs[sid] = (conn, acc)
        return sid

    def unsubscribe(self, conn: WsConn, sid=None) -> None:
        for s, (c, a) in list(self.subs.items()):
            if c is conn and (sid is None or s == sid):
                del self.subs[s]
                if not conn.closed:
                    conn.push(orjson.dumps({"subscriptionId": s, "event": {
                        "e": "eventStreamTerminated", "E": time.time_ns() // 1_000_000}}))

    def drop_conn(self, conn: WsConn) -> None:
        for s, (c, _) in list(self.subs.items()):
            if c is conn:
                del self.subs[s]
        for lk in self.keys.values():
            lk.conns.pop(conn, None)

    # --- USDⓈ-M listenKeys ---
    def create(self, acc) -> str:
        now = time.monotonic()
        for lk in self.keys.values():
            if lk.account is acc:
                lk.expires = now + self.settings.listen_key_ttl_s
                return lk.key
        key = "".join(secrets.choice(_KEY_CHARS) for _ in range(64))
        self.keys[key] = ListenKey(key, acc, now + self.settings.listen_key_ttl_s)
        return key

    def keepalive(self, acc, key: str | None) -> str:
        lk = self.keys.get(key) if key else next((k for k in self.keys.values() if k.account is acc), None)
        if lk is None or lk.account is not acc:
            raise err(BAD_LISTEN_KEY)
        lk.expires = time.monotonic() + self.settings.listen_key_ttl_s
        return lk.key

    def delete(self, acc, key: str | None) -> None:
        lk = self.keys.get(key) if key else next((k for k in self.keys.values() if k.account is acc), None)
        if lk is None or lk.account is not acc:
            raise err(BAD_LISTEN_KEY)
        self._expire(lk)

    def _expire(self, lk: ListenKey) -> None:
        self.keys.pop(lk.key, None)
        ev = {"e": "listenKeyExpired", "E": str(time.time_ns() // 1_000_000), "listenKey": lk.key}
        for conn, (combined, events) in lk.conns.items():
            if not conn.closed and (events is None or "listenKeyExpired" in events):
                conn.push(orjson.dumps({"stream": lk.key, "data": ev} if combined else ev))
        log.info("listenKey of %s expired", lk.account.name)

    def expire_keys(self, api_key: str | None, listen_key: str | None) -> int:
        """Fault ``expire_listen_key``: expire the matching keys now; returns how many."""
        hit = [lk for lk in self.keys.values()
               if (listen_key is None or lk.key == listen_key) and (api_key is None or lk.account.api_key == api_key)]
        for lk in hit:
            self._expire(lk)
        return len(hit)

    async def _expiry(self) -> None:
        tick = max(0.01, min(self.settings.listen_key_ttl_s / 4, 1.0))
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            for lk in [k for k in self.keys.values() if k.expires <= now]:
                self._expire(lk)

    # --- /private connections ---
    async def handle_private(self, request: web.Request, combined: bool):
        emu = self.emu
        refused = emu.refuse_ws("userdata")
        if refused is not None:
            return refused
        pairs = parse_qsl(request.raw_path.partition("?")[2], keep_blank_values=True)
        wanted: list = []
        for k, v in pairs:
            if k == "listenKey":
                wanted.append([v, None])
            elif k == "events" and wanted:
                wanted[-1][1] = frozenset(e for e in v.split("/") if e)
        if not wanted or any(w[0] not in self.keys for w in wanted):
            return web.json_response(err(BAD_LISTEN_KEY).body(), status=400)
        emu.client_seen()
        ws = new_response(self.settings)
        await ws.prepare(request)
        holder = {}
        conn = WsConn(request, ws, "userdata", self.settings, strict_pong=False,
                      rate_limit=self.settings.max_messages_per_s, on_closed=lambda c: self.drop_conn(c))
        mc = holder["mc"] = MarketConn(conn, "private", combined)
        for key, events in wanted:
            lk = self.keys.get(key)
            if lk is not None:
                lk.conns[conn] = (combined, events)
        emu.register_conn(conn)
        conn.start()
        await conn.read(lambda text: emu.hub._control(mc, text))
        await conn.wait_closed()
        return ws
