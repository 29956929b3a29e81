"""The Binance-compatible exchange emulator: one aiohttp server on 127.0.0.1 (REST and WebSocket on one port)
under Binance's own paths, so that unmodified ccxt and picows clients talk to it by changing only the host.

``python -m mmcore emulate --data FILE [--data FILE2 ...] [--speed X] [--port P] [--account KEY:SECRET ...]
[--config FILE] [--set K=V ...]`` (options: :mod:`.options`).

One process serves one market (spot or USDⓈ-M, detected from the recordings with
:func:`mmcore.venues.binance.recording.detect_market`; one recording per symbol). First stdout line
``listening 127.0.0.1:<port>``; without ``--account``, the second line is ``account <KEY> <SECRET>`` (a generated
test account; the emulator's own output is exempt from the secrets rule). Accounts keep their orders, fills and
positions while their clients are away (a client may be killed and restarted; the emulator goes on).

Exit codes: 0 stopped by SIGTERM/SIGINT; 1 a supervised task (the replay, the listenKey expiry) died (logged
CRITICAL, ``error: ...`` on stderr); 2 bad arguments, config, accounts or data files (one ``error:`` /
``config error:`` line each, no traceback).

Parts: :mod:`.market` (replay, books, derived streams), :mod:`.streams` (market-data WebSocket), :mod:`.wsapi`
(WebSocket API), :mod:`.rest`, :mod:`.accounts` / :mod:`.trading` / :mod:`.formats` (accounts, matching, answers),
:mod:`.auth`, :mod:`.ratelimits`, :mod:`.userdata`, :mod:`.faults`, :mod:`.control` (``/_emulator/``).
"""
from __future__ import annotations

import asyncio
import copy
import logging
import signal
import sys
import time
from collections import Counter
from pathlib import Path

import orjson
from aiohttp import web

from mmcore.sim.emulator.accounts import Exchange
from mmcore.sim.emulator.control import Control
from mmcore.sim.emulator.errors import BAD_SYMBOL, BANNED, INTERNAL, BinanceError, err
from mmcore.sim.emulator.exchange_info import Markets, load_markets
from mmcore.sim.emulator.faults import Faults
from mmcore.sim.emulator.market import Market, RecordingSource
from mmcore.sim.emulator.ratelimits import RateLimits
from mmcore.sim.emulator.rest import Rest, json_response
from mmcore.sim.emulator.settings import SPOT, EmulatorSettings
from mmcore.sim.emulator.streams import StreamHub, parse_path
from mmcore.sim.emulator.trading import Params, Trading
from mmcore.sim.emulator.userdata import UserData
from mmcore.sim.emulator.options import (SetupError, build_parser, parse_accounts, parse_ed25519_accounts,
                                         settings_from_args)
from mmcore.sim.emulator.wsapi import WsApi

log = logging.getLogger("mmcore.sim.emulator")
HOST = "127.0.0.1"
DEFAULT_MALFORMED = b'{"stream":"malformed","data":{"e":"depthUpdate","E":'


class _BadHttpFilter(logging.Filter):
    """aiohttp logs a request it cannot parse (a line too long, bad framing) with a traceback: one line instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        from aiohttp.http_exceptions import HttpProcessingError
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            record.msg = f"bad HTTP request refused with {exc.code}: {str(exc.message)[:200]}"
            record.args = ()
            record.exc_info = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


class Emulator:
    """The emulator (everything but the listening socket: :meth:`start`).

    Parameters
    ----------
    settings : EmulatorSettings
    sources : list of RecordingSource
        One per symbol.
    markets : Markets
        Instruments and filter rules of the symbols.
    models : dict
        Symbol -> ``(ConstantLatency, maker MakerFee, taker MakerFee)`` (``mmcore.engine.wiring.sim_models``).
    speed : float
        Recorded time per wall time (0: as fast as the clients read).
    exchange_info : dict, optional
        The exchangeInfo served (default ``markets.exchange_info``); ``serverTime`` is set per answer.
    """

    def __init__(self, settings: EmulatorSettings, sources: list, markets: Markets, models: dict, speed: float,
                 exchange_info: dict | None = None):
        self.settings = settings
        self.markets = markets
        self.exchange_info = copy.deepcopy(exchange_info if exchange_info is not None else markets.exchange_info)
        self.counters = Counter(malformed=0, bad_lines=0, ignored=0, data_errors=0)
        self.faults = Faults(self)
        self.hub = StreamHub(self)
        self.market = Market(settings.market, sources, speed, self.hub.publish, self._on_trade,
                             self.hub.backpressure, self.counters)
        self.exchange = Exchange(settings, self.market, markets.instruments, models, self.faults)
        self.trading = Trading(self.exchange, markets, self.faults)
        self.userdata = UserData(self)
        self.exchange.sink = self.userdata.sink
        self.ratelimits = RateLimits(settings)
        self.wsapi = WsApi(self)
        self.rest = Rest(self)
        self.control = Control(self)
        self.conns: dict[str, set] = {"market": set(), "wsapi": set(), "userdata": set()}
        self.failure: str | None = None
        self.stopped = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._runner = None

    # --- hooks used by the parts ---
    def _on_trade(self, sm, trade) -> None:
        self.exchange.on_trade(sm, trade)

    def client_seen(self) -> None:
        if self.settings.start == "client":
            self.market.start()

    def register_conn(self, conn) -> None:
        group = self.conns[conn.kind]
        group.add(conn)
        prev = conn.on_closed

        def closed(c, prev=prev):
            group.discard(c)
            if prev is not None:
                prev(c)
        conn.on_closed = closed

    def refuse_ws(self, kind: str):
        f = self.faults.take_refuse_ws(kind)
        if f is None:
            return None
        headers = {"Retry-After": str(f.params["retry_after"])} if f.params["retry_after"] is not None else None
        return json_response({"code": -1001 if f.params["status"] >= 500 else -1003,
                              "msg": "WebSocket upgrade refused (emulator fault)."}, f.params["status"], headers)

    def fault_error(self, f) -> BinanceError:
        if f.kind == "server_error":
            return err(INTERNAL, f.params["status"])
        ra = f.params["retry_after"]
        until = time.time_ns() // 1_000_000 + ra * 1000
        data = {"serverTime": time.time_ns() // 1_000_000, "retryAfter": until}
        if f.kind == "banned":
            return BinanceError(-1003, BANNED.format(until=until), 418, data=data, headers={"Retry-After": str(ra)})
        return BinanceError(-1003, "Too many requests; current limit of request weight per 1 MINUTE is exceeded.",
                            429, data=data, headers={"Retry-After": str(ra)})

    # --- fault actions ---
    def drop(self, target: str, close_code) -> int:
        n = 0
        for kind, group in self.conns.items():
            if target not in (kind, "all"):
                continue
            for c in list(group):
                if close_code is None:
                    c.abort("dropped (fault)")
                else:
                    c.close(close_code, "dropped (fault)")
                n += 1
        return n

    def malformed(self, target: str, count: int, payload) -> int:
        frame = payload.encode() if isinstance(payload, str) else DEFAULT_MALFORMED
        n = 0
        for kind, group in self.conns.items():
            if target not in (kind, "all"):
                continue
            for c in list(group):
                for _ in range(count):
                    c.push(frame)
                n += 1
        return n

    def stall(self, seconds) -> None:
        if seconds is None:
            self.market.pause()
        else:
            self.market.stall(seconds)

    def resume(self) -> None:
        if self.market.paused:
            self.market.resume()

    def expire_listen_keys(self, api_key, listen_key) -> int:
        return self.userdata.expire_keys(api_key, listen_key)

    # --- shared answers ---
    def exchange_info_answer(self, p: Params) -> dict:
        info = dict(self.exchange_info)
        info["serverTime"] = time.time_ns() // 1_000_000
        want = None
        if p.has("symbol"):
            want = [p.str("symbol", maxlen=40)]
        elif p.has("symbols"):
            raw = p.raw["symbols"]
            try:
                want = orjson.loads(raw) if isinstance(raw, str) else raw
            except orjson.JSONDecodeError:
                want = None
            if not isinstance(want, list) or not all(isinstance(s, str) for s in want):
                raise BinanceError(-1100, "Illegal characters found in parameter 'symbols'.")
        if want is not None:
            have = {s.get("symbol"): s for s in info.get("symbols", [])}
            if any(s not in have for s in want):
                raise err(BAD_SYMBOL)
            info["symbols"] = [have[s] for s in want]
        return info

    def depth_answer(self, p: Params) -> dict:
        sym = self.trading.symbol(p)
        spot = self.settings.market == SPOT
        limit = p.int("limit", lo=1, hi=5000 if spot else 1000) or (100 if spot else 500)
        sm = self.market.symbols[sym]
        if not sm.book.synced:
            raise err(INTERNAL, 503)
        return sm.snapshot(limit)

    def recent_trades_answer(self, p: Params) -> list:
        """REST recent trades (spot ``GET /api/v3/trades``, USDⓈ-M ``GET /fapi/v1/trades``; ``limit`` default 500,
        max 1000), oldest first, from the trades replayed so far: ``id price qty quoteQty time isBuyerMaker``
        (+ ``isBestMatch`` on spot)."""
        from decimal import Decimal
        sym = self.trading.symbol(p)
        spot = self.settings.market == SPOT
        limit = p.int("limit", lo=1, hi=1000) or 500
        sm = self.market.symbols[sym]
        inst = sm.instrument
        out = []
        for t in list(sm.recent_trades)[-limit:]:
            px, q = inst.format_price(t.price), inst.format_qty(t.qty)
            d = {"id": t.trade_id, "price": px, "qty": q, "quoteQty": str(Decimal(px) * Decimal(q)),
                 "time": t.ts_event_ns // 1_000_000, "isBuyerMaker": t.side < 0}
            if spot:
                d["isBestMatch"] = True
            out.append(d)
        return out

    def account_state(self, acc) -> dict:
        from mmcore.sim.emulator import formats
        out = {"account": acc.name, "apiKey": acc.api_key, "market": self.settings.market}
        if self.exchange.spot:
            out["balances"] = {a: {"free": str(v[0]), "locked": str(v[1])} for a, v in sorted(acc.balances.items())}
        else:
            out["wallet"] = {acc.margin_asset: str(acc.wallet)}
        syms = {}
        for s, sa in acc.symbols.items():
            inst = sa.inst
            fmt = formats.spot_order if self.exchange.spot else formats.um_order
            syms[s] = {"orders": [fmt(inst, r) for r in sa.orders.values()],
                       "open_orders": [fmt(inst, r) for r in sa.open_orders()],
                       "fills": [{"tradeId": f.trade_id, "orderId": f.order_id, "clientOrderId": f.coid,
                                  "side": "BUY" if f.side > 0 else "SELL", "price": inst.format_price(f.price),
                                  "qty": inst.format_qty(f.qty), "quoteQty": str(f.quote),
                                  "commission": str(f.commission), "commissionAsset": f.commission_asset,
                                  "time": f.time_ms, "maker": f.maker, "realizedPnl": str(f.realized),
                                  "marketTradeId": f.market_trade_id} for f in sa.fills],
                       "position": format(inst.qty_of(sa.position).normalize(), "f"), "position_lots": sa.position,
                       "entryPrice": str(sa.entry)}
        out["symbols"] = syms
        out["coids_received"] = dict(acc.coids)
        out["duplicate_coids"] = sorted(c for c, n in acc.coids.items() if n > 1)
        return out

    def status(self) -> dict:
        m = self.market
        return {"market": self.settings.market, "symbols": list(m.symbols), "started": m.started.is_set(),
                "open": m.open, "paused": m.paused, "done": m.done, "lines": m.lines, **dict(self.counters),
                "bridged": sum(s.bridged for s in m.symbols.values()),
                "connections": {k: len(v) for k, v in self.conns.items()}, "frames_sent": self.hub.frames_sent,
                "slow_dropped": self.hub.slow_dropped, "user_events": self.userdata.delivered,
                "failure": self.failure}

    # --- the server ---
    def app(self) -> web.Application:
        app = web.Application(client_max_size=1 << 20)
        self.control.routes(app)
        self.rest.routes(app)
        r = app.router
        prefixes = ("",) if self.settings.market == SPOT else ("", "/public", "/market")
        for pre in prefixes:
            for base in ("/ws", "/stream"):
                r.add_get(pre + base, self._market_ws)
                r.add_get(pre + base + "/{tail:.*}", self._market_ws)
        if self.settings.market == SPOT:
            r.add_get("/ws-api/v3", self.wsapi.handle)
        else:
            r.add_get("/ws-fapi/v1", self.wsapi.handle)
            r.add_get("/private/ws", self._private_ws)
            r.add_get("/private/ws/{tail:.*}", self._private_ws)
            r.add_get("/private/stream", self._private_ws)
        r.add_route("*", "/{tail:.*}", self.rest.not_found)
        return app

    async def _market_ws(self, request: web.Request):
        parsed = parse_path(request.path, request.query_string, self.settings.market)
        if parsed is None:
            return await self.rest.not_found(request)
        route, combined, streams = parsed
        return await self.hub.handle(request, route, combined, streams)

    async def _private_ws(self, request: web.Request):
        return await self.userdata.handle_private(request, request.path.startswith("/private/stream"))

    def _supervise(self, coro, name: str) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        task.add_done_callback(self._task_done)
        self._tasks.append(task)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None and task.get_name() == "replay":
            return
        self.failure = f"{task.get_name()} task died at recording line {self.market.lines}: " \
                       f"{repr(exc) if exc is not None else 'returned'}"
        log.critical("%s; the emulator stops (exit 1)", self.failure)
        if exc is not None:
            log.debug("task failure", exc_info=exc)
        self.stopped.set()

    async def start(self, port: int = 0) -> int:
        """Listen on 127.0.0.1:``port`` (0: a free one) and start the replay task; returns the port."""
        server_log = logging.getLogger("aiohttp.server")
        if not any(isinstance(f, _BadHttpFilter) for f in server_log.filters):
            server_log.addFilter(_BadHttpFilter())
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False,
                                     shutdown_timeout=self.settings.close_timeout_s)
        await self._runner.setup()
        site = web.TCPSite(self._runner, HOST, port)
        await site.start()
        self._supervise(self.market.run(), "replay")
        self.userdata.start()
        if self.userdata._task is not None:
            self.userdata._task.add_done_callback(self._task_done)
        if self.settings.start == "now":
            self.market.start()
        return self._runner.addresses[0][1]

    async def stop(self) -> None:
        """Close every connection, stop the tasks and the server."""
        for group in self.conns.values():
            for c in list(group):
                c.abort("emulator stopping")
        for t in self._tasks:
            t.cancel()
        self.userdata.stop()
        for sm in self.market.symbols.values():
            sm.source.close()
        if self._runner is not None:
            await self._runner.cleanup()


def build_emulator(data: list, config, speed: float = 1.0, settings: dict | None = None,
                   exchange_info: dict | None = None) -> Emulator:
    """An Emulator for the recordings ``data`` with the config's ``sim`` models and instrument source
    (``venue.markets_file`` / ``config/markets/<market>.json`` / ``data.instruments``), ``settings`` = overrides of
    EmulatorSettings. Raises SetupError / ValueError (data, market, symbols), OSError (a file unreadable)."""
    from mmcore.engine.wiring import sim_models
    from mmcore.venues.binance.recording import detect_market, detect_symbol
    if not data:
        raise SetupError("--data: at least one recording")
    if speed < 0 or speed != speed or speed > 1e6:
        raise SetupError(f"--speed {speed}: must be in [0, 1e6] (0: as fast as the clients read)")
    paths = [Path(d) for d in data]
    market = None
    symbols = []
    for p in paths:
        if not p.exists():
            raise SetupError(f"data file not found: {p}")
        m = detect_market(p)
        if market is not None and m != market:
            raise SetupError(f"{p}: a {m} recording, but {paths[0]} is {market}: one market per emulator")
        market = m
        s = detect_symbol(p)
        if s in symbols:
            raise SetupError(f"{p}: a second recording of {s}: one recording per symbol")
        symbols.append(s)
    st = EmulatorSettings.for_market(market, **(settings or {}))
    mf = config.get("venue.markets_file") or config.get("data.markets")
    try:
        markets = load_markets(market, symbols, config.resolve_path(mf) if mf else None)
    except (ValueError, KeyError, OSError) as exc:
        raise SetupError(str(exc).strip("'\"")) from None
    counters_placeholder = Counter(malformed=0, bad_lines=0, ignored=0, data_errors=0)
    sources = [RecordingSource(p, markets.instruments[s], counters_placeholder) for p, s in zip(paths, symbols)]
    models = {s: sim_models(config, markets.instruments[s]) for s in symbols}
    emu = Emulator(st, sources, markets, models, speed, exchange_info)
    for src in sources:
        src.counters = emu.counters
    return emu


async def serve(emu: Emulator, port: int, accounts: list, generated: bool) -> int:
    """Serve until SIGTERM/SIGINT (0) or a supervised task dies (1)."""
    bound = await emu.start(port)
    print(f"listening {HOST}:{bound}", flush=True)
    if generated:
        key, secret = accounts[0]
        print(f"account {key} {secret}", flush=True)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, emu.stopped.set)
    await emu.stopped.wait()
    await emu.stop()
    if emu.failure is not None:
        print(f"error: {emu.failure}", file=sys.stderr)
        return 1
    return 0


def run(args) -> int:
    """The ``emulate`` command (args from :func:`add_arguments`); returns the exit code."""
    from mmcore.config import ConfigError, load_config
    from mmcore.venues.binance.recording import DataFileError
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s emulator %(name)s: %(message)s", stream=sys.stderr)
    try:
        if not 0 <= args.port <= 65535:
            raise SetupError(f"--port {args.port}: must be in [0, 65535]")
        accounts = parse_accounts(args.account)
        ed_accounts = parse_ed25519_accounts(args.ed25519_account)
        generated = not accounts and not ed_accounts
        config = load_config(args.config, list(args.set or []))
        emu = build_emulator(args.data, config, args.speed, settings_from_args(args))
        if generated:
            accounts = [Exchange.generate_key()]
        for key, secret in accounts:
            emu.exchange.add_account(key, secret)
        for key, pem in ed_accounts:
            emu.exchange.add_account(key, None, ed25519_public_pem=pem)
    except ConfigError as exc:
        for line in exc.errors:
            print(f"config error: {line}", file=sys.stderr)
        return 2
    except (SetupError, ValueError, KeyError, DataFileError, OSError) as exc:
        print(f"error: {exc.args[0] if isinstance(exc, KeyError) and exc.args else exc}", file=sys.stderr)
        return 2
    import uvloop
    return uvloop.run(serve(emu, args.port, accounts, generated))


def main(argv=None) -> int:
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
