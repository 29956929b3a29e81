"""The control endpoint under ``/_emulator/`` (a path Binance does not use), for tests and tools.

- ``POST /_emulator/fault`` body ``{"kind": ..., params}`` (kinds: :mod:`mmcore.sim.emulator.faults`) ->
  200 ``{"id", "kind", ...}``, or 400 ``{"error": "<what is wrong>"}``;
- ``GET /_emulator/faults`` -> ``{"active": [...], "applied": {kind: times}}``;
- ``POST /_emulator/pause`` (body optional: ``{"after_lines": N}`` pauses once N recording lines were replayed) /
  ``POST /_emulator/resume`` -> ``{"paused": bool}`` (stall / resume the feed; resume also starts a replay that
  waits for its first client, or ``--start paused``);
- ``GET /_emulator/state?apiKey=KEY`` -> the account: ``{"account", "apiKey", "market", "balances": {asset:
  {"free", "locked"}}`` (spot) or ``"wallet"`` (USDⓈ-M), ``"symbols": {SYM: {"orders": [...every order...],
  "open_orders": [...], "fills": [{"tradeId", "orderId", "clientOrderId", "side", "price", "qty", "quoteQty",
  "commission", "commissionAsset", "time", "maker", "realizedPnl", "marketTradeId"}], "position": "<base qty>",
  "position_lots": int, "entryPrice"}}, "coids_received": {coid: n}, "duplicate_coids": [...]}``; without
  ``apiKey``: ``{"accounts": [{"account", "apiKey"}]}``; an unknown key: 404;
- ``GET /_emulator/book?symbol=S&limit=N`` -> ``{"symbol", "synced", "lastUpdateId", "ts_local_ns", "bids":
  [[price, qty]], "asks": [...]}`` (the emulator's book, best first, prices and quantities as the venue writes them;
  ``limit`` default 20, 0 = all);
- ``GET /_emulator/status`` -> counters: ``{"market", "symbols", "started", "open", "paused", "done", "lines",
  "malformed", "bad_lines", "ignored", "data_errors", "bridged", "connections": {kind: n}, "frames_sent",
  "slow_dropped", "user_events"}``.
"""
from __future__ import annotations

import orjson
from aiohttp import web

from mmcore_ext.book import ASK, BID


def _j(obj, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(obj), status=status, content_type="application/json")


class Control:
    def __init__(self, emu):
        self.emu = emu

    def routes(self, app: web.Application) -> None:
        r = app.router
        r.add_post("/_emulator/fault", self.fault)
        r.add_get("/_emulator/faults", self.faults)
        r.add_post("/_emulator/pause", self.pause)
        r.add_post("/_emulator/resume", self.resume)
        r.add_get("/_emulator/state", self.state)
        r.add_get("/_emulator/book", self.book)
        r.add_get("/_emulator/status", self.status)

    async def fault(self, request: web.Request) -> web.Response:
        raw = await request.content.read(1 << 20)
        try:
            spec = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return _j({"error": f"body is not JSON: {exc}"}, 400)
        try:
            return _j(self.emu.faults.add(spec))
        except ValueError as exc:
            return _j({"error": str(exc)}, 400)

    async def faults(self, request: web.Request) -> web.Response:
        return _j(self.emu.faults.wire())

    async def pause(self, request: web.Request) -> web.Response:
        raw = await request.content.read(1 << 16)
        after = None
        if raw.strip():
            try:
                after = orjson.loads(raw).get("after_lines")
            except (orjson.JSONDecodeError, AttributeError):
                return _j({"error": "body: expected {} or {\"after_lines\": N}"}, 400)
            if after is not None and (type(after) is not int or after < 0):
                return _j({"error": "after_lines: expected an integer >= 0"}, 400)
        if after is None or after <= self.emu.market.lines:
            self.emu.market.pause()
            return _j({"paused": True})
        self.emu.market.pause_after = after
        return _j({"paused": False, "pause_after_lines": after})

    async def resume(self, request: web.Request) -> web.Response:
        self.emu.market.resume()
        return _j({"paused": False})

    async def state(self, request: web.Request) -> web.Response:
        key = request.query.get("apiKey")
        ex = self.emu.exchange
        if key is None:
            return _j({"accounts": [{"account": a.name, "apiKey": a.api_key} for a in ex.accounts.values()]})
        acc = ex.accounts.get(key)
        if acc is None:
            return _j({"error": "unknown apiKey"}, 404)
        return _j(self.emu.account_state(acc))

    async def book(self, request: web.Request) -> web.Response:
        sym = request.query.get("symbol", "")
        sm = self.emu.market.symbols.get(sym)
        if sm is None:
            return _j({"error": f"unknown symbol {sym[:40]!r} (have: {', '.join(self.emu.market.symbols)})"}, 404)
        try:
            limit = int(request.query.get("limit", "20"))
        except ValueError:
            return _j({"error": "limit: expected an integer"}, 400)
        n = None if limit <= 0 else limit
        inst = sm.instrument
        b = sm.book
        return _j({"symbol": sym, "synced": b.synced, "lastUpdateId": b.last_update_id, "ts_local_ns": b.ts_local_ns,
                   "bids": [[inst.format_price(p), inst.format_qty(q)] for p, q in b.levels(BID, n)],
                   "asks": [[inst.format_price(p), inst.format_qty(q)] for p, q in b.levels(ASK, n)]})

    async def status(self, request: web.Request) -> web.Response:
        return _j(self.emu.status())
