"""Loopback exchange emulator: a recorded market and a simulated exchange per account, served over TCP.

``python -m mmcore.sim.server --data FILE [--port P] [--speed X] [--config FILE] [--set KEY=VALUE]``

The server owns the market: it reads the recording (:mod:`mmcore.venues.binance.replay`), keeps its own
:class:`~mmcore_ext.book.L2Book`, and matches every account's orders in its own
:class:`~mmcore.sim.exchange.SimExchange` (latency, queue and fee models from the config's ``sim`` section)
against that book and the recorded trades. It outlives its clients: while an engine is down the market goes
on, resting orders keep filling, and the account keeps its orders, fills and position until the engine
reconnects and asks (protocol: :mod:`mmcore.venues.loopback`).

Pacing: the replay starts when the first trader says hello and follows event time at ``--speed`` times
real time (``0``: as fast as the clients read). Writes to clients are flow-controlled: a client that
does not read slows the replay down, and one that stays behind for ``SLOW_CLIENT_S`` is disconnected.
Exchange time (for requests, reports and ``fills_since``) is the local timestamp of the last replayed
event; after the end of the recording it goes on with the wall clock (times ``--speed``), so requests are
still processed. Listens on 127.0.0.1 only; ``--port 0`` picks a free port. The first stdout line is
``listening 127.0.0.1:<port>``.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections import Counter
from pathlib import Path

import orjson

from mmcore.config import DEFAULT_CONFIG, ConfigError, load_config
from mmcore.execution import (OrderAccepted, OrderCanceled, OrderExpired, OrderFilled, OrderRejected)
from mmcore.instruments import Instrument, load_instrument
from mmcore.sim.exchange import SimExchange
from mmcore.sim.models import ConservativeQueue, ConstantLatency, MakerFee
from mmcore.wiring import sim_models
from mmcore.venues.binance.replay import BinanceDecoder, MalformedLine, detect_market, detect_symbol, open_recording
from mmcore.venues.loopback import PROTOCOL_VERSION, encode_report, fill_to_wire
from mmcore_ext.book import ASK, BID, GAP, L2Book, SYNC_SPOT, sync_rule_for_market
from mmcore_ext.events import DepthDiff, DepthSnapshot, Trade

log = logging.getLogger("mmcore.sim.server")

HOST = "127.0.0.1"
_NL = orjson.OPT_APPEND_NEWLINE
HIGH_WATER = 1 << 20          # bytes buffered for a client before the replay waits for it
SLOW_CLIENT_S = 5.0           # a client that does not drain within this is disconnected
YIELD_EVERY = 64              # replayed lines between yields to the event loop when not sleeping
CLOCK_TICK_S = 0.01           # exchange clock step after the end of the recording
OPEN = ("PENDING_NEW", "NEW", "PARTIALLY_FILLED")
_MS = 1_000_000


class _OrderRecord:
    """The exchange's record of one order (what ``open_orders`` reports)."""

    __slots__ = ("coid", "side", "price", "qty", "filled", "status", "venue_order_id", "ts_ns", "post_only")

    def __init__(self, coid, side, price, qty, ts_ns, post_only):
        self.coid, self.side, self.price, self.qty = coid, side, price, qty
        self.filled = 0
        self.status = "PENDING_NEW"
        self.venue_order_id = None
        self.ts_ns = ts_ns
        self.post_only = post_only

    def wire(self) -> dict:
        return {"coid": self.coid, "side": self.side, "price": self.price, "qty": self.qty,
                "filled": self.filled, "status": self.status, "venue_order_id": self.venue_order_id,
                "ts_ns": self.ts_ns}


class _Session:
    """One client connection."""

    def __init__(self, writer: asyncio.StreamWriter):
        self.writer = writer
        self.account: Account | None = None
        self.role = None
        self.need_snapshot = False
        self.closed = False

    def send(self, data: bytes) -> None:
        if self.closed:
            return
        try:
            self.writer.write(data)
        except (ConnectionError, RuntimeError):
            self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.writer.close()


class Account:
    """One trading account: a SimExchange on the shared book, the order records, fills and position.

    Attributes
    ----------
    position : int
        Sum of ``side * qty`` over the account's fills (lots).
    fills : list of OrderFilled
    received : Counter
        Client order ids received in ``submit`` requests, with how often each was received.
    """

    def __init__(self, name: str, server: ExchangeServer):
        self.name = name
        self.server = server
        self.sim = SimExchange(server.book, server.latency, server.fees, self._on_report, ConservativeQueue(),
                               taker_fees=server.taker_fees)
        self.orders: dict[str, _OrderRecord] = {}
        self.fills: list[OrderFilled] = []
        self.position = 0
        self.received = Counter()
        self.session: _Session | None = None

    def submit(self, now: int, msg: dict) -> None:
        coid, side, price, qty = msg["coid"], msg["side"], msg["price"], msg["qty"]
        post_only = bool(msg.get("post_only", True))
        if type(coid) is not str or side not in (1, -1) or type(price) is not int or type(qty) is not int:
            raise ValueError(f"bad submit {msg!r}")
        self.received[coid] += 1
        if self.received[coid] > 1:
            log.error("account %s: duplicate client order id %s rejected", self.name, coid)
            self._send(OrderRejected(now, coid, "duplicate client order id", "DUPLICATE_CLIENT_ORDER_ID"))
            return
        self.orders[coid] = _OrderRecord(coid, side, price, qty, now, post_only)
        self.sim.submit(now, coid, side, price, qty, post_only)

    def open_records(self) -> list[_OrderRecord]:
        return [r for r in self.orders.values() if r.status in OPEN]

    def _on_report(self, rep) -> None:
        r = self.orders.get(rep.client_order_id)
        t = type(rep)
        if r is not None:
            if t is OrderFilled:
                r.filled += rep.qty
                r.status = "FILLED" if r.filled >= r.qty else "PARTIALLY_FILLED"
            elif t is OrderAccepted:
                r.venue_order_id = rep.venue_order_id
                if r.status == "PENDING_NEW":
                    r.status = "NEW"
            elif t is OrderCanceled:
                r.status = "CANCELED"
            elif t is OrderExpired:
                r.status = "FILLED" if r.filled >= r.qty else "EXPIRED"
            elif t is OrderRejected:
                r.status = "REJECTED"
        if t is OrderFilled:
            self.fills.append(rep)
            self.position += rep.side * rep.qty
        self._send(rep)

    def _send(self, rep) -> None:
        s = self.session
        if s is not None:
            s.send(orjson.dumps(encode_report(rep), option=_NL))

    def state(self) -> dict:
        return {"account": self.name, "position": self.position, "fills": [fill_to_wire(f) for f in self.fills],
                "open_orders": [r.wire() for r in self.open_records()], "coids_received": dict(self.received),
                "duplicate_coids": sorted(c for c, n in self.received.items() if n > 1)}


class ExchangeServer:
    """The emulator: replay task, accounts and client sessions.

    Parameters
    ----------
    path : Path
        The recording.
    instrument : Instrument
    speed : float
        Event time per wall time (``20``: twenty times real time); ``<= 0``: as fast as clients read.
    latency, fees, taker_fees
        The SimExchange models (every account uses the same).
    """

    def __init__(self, path: Path, instrument: Instrument, speed: float, latency: ConstantLatency,
                 fees: MakerFee, taker_fees: MakerFee):
        self.path = Path(path)
        self.instrument = instrument
        self.speed = speed
        self.latency, self.fees, self.taker_fees = latency, fees, taker_fees
        self.book = L2Book(sync_rule_for_market(instrument.market))
        self.accounts: dict[str, Account] = {}
        self.market_sessions: list[_Session] = []
        self.now_ns = 0
        self.lines = 0
        self.replay_task: asyncio.Task | None = None
        self.clock_task: asyncio.Task | None = None
        self.done = False

    # --- serving ---
    async def serve(self, port: int = 0) -> asyncio.AbstractServer:
        """Listen on 127.0.0.1:``port`` (0: a free port; read it from ``server.sockets``)."""
        return await asyncio.start_server(self._handle, HOST, port, limit=1 << 20)

    def account(self, name: str) -> Account:
        acc = self.accounts.get(name)
        if acc is None:
            acc = self.accounts[name] = Account(name, self)
        return acc

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        s = _Session(writer)
        try:
            while not s.closed:
                line = await reader.readline()
                if not line:
                    break
                msg = None
                try:
                    msg = orjson.loads(line)
                    self._request(s, msg)
                except (ValueError, KeyError, TypeError) as exc:
                    qid = msg.get("id") if isinstance(msg, dict) else None
                    s.send(orjson.dumps({"type": "error", "id": qid, "error": repr(exc)}, option=_NL))
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self._detach(s)
            s.close()

    def _detach(self, s: _Session) -> None:
        if s in self.market_sessions:
            self.market_sessions.remove(s)
        if s.account is not None and s.account.session is s:
            s.account.session = None
            log.info("account %s: trader disconnected", s.account.name)

    def _answer(self, s: _Session, qid, result) -> None:
        s.send(orjson.dumps({"type": "answer", "id": qid, "result": result}, option=_NL))

    def _request(self, s: _Session, msg: dict) -> None:
        op = msg["op"]
        if op == "hello":
            self._hello(s, msg)
            return
        acc = s.account
        if acc is None:
            raise ValueError("say hello first")
        now = self.now_ns
        if op == "submit":
            acc.submit(now, msg)
        elif op == "cancel":
            acc.sim.cancel(now, msg["coid"])
        elif op == "open_orders":
            self._answer(s, msg["id"], [r.wire() for r in acc.open_records()])
        elif op == "fills_since":
            since = msg["ts_ns"]
            self._answer(s, msg["id"], [fill_to_wire(f) for f in acc.fills if f.ts_ns >= since])
        elif op == "cancel_all":
            recs = acc.open_records()
            for r in recs:
                acc.sim.cancel(now, r.coid)
            self._answer(s, msg["id"], len(recs))
        elif op == "snapshot":
            s.need_snapshot = True
        elif op == "account":
            self._answer(s, msg["id"], acc.state())
        else:
            raise ValueError(f"unknown op {op!r}")

    def _hello(self, s: _Session, msg: dict) -> None:
        role = msg.get("role", "trader")
        if role not in ("trader", "observer") or type(msg.get("account")) is not str:
            raise ValueError(f"bad hello {msg!r}")
        acc = self.account(msg["account"])
        if s.account is not None:
            raise ValueError("hello twice on one connection")
        s.account, s.role = acc, role
        if role == "trader":
            old = acc.session
            if old is not None and old is not s:
                log.warning("account %s: a new trader session replaces the old one", acc.name)
                self._detach(old)
                old.close()
            acc.session = s
            s.need_snapshot = True
            self.market_sessions.append(s)
            if self.replay_task is None:
                self.replay_task = asyncio.get_running_loop().create_task(self._replay())
        inst = self.instrument
        s.send(orjson.dumps({"type": "welcome", "protocol": PROTOCOL_VERSION, "account": acc.name, "role": role,
                             "market": inst.market, "symbol": inst.symbol, "now_ns": self.now_ns,
                             "speed": self.speed}, option=_NL))
        log.info("account %s: %s connected", acc.name, role)

    # --- market ---
    def _snapshot_line(self, ts: int, diff: DepthDiff) -> bytes:
        """The book as a REST depth snapshot that the next diff ``diff`` continues (Binance sync rules)."""
        last = diff.first_update_id - 1 if self.book.sync_rule == SYNC_SPOT else diff.first_update_id
        tick, lot = self.instrument.tick_size, self.instrument.lot_size
        side = lambda sd: [[format(tick * px, "f"), format(lot * q, "f")] for px, q in self.book.levels(sd)]
        body = {"lastUpdateId": last, "E": ts // _MS, "bids": side(BID), "asks": side(ASK)}
        return b"%d " % ts + orjson.dumps(body, option=_NL)

    async def _replay(self) -> None:
        loop = asyncio.get_running_loop()
        decode = BinanceDecoder(self.instrument).decode
        book = self.book
        accounts = self.accounts
        speed = self.speed
        wall0 = ts0 = None
        malformed = 0
        with open_recording(self.path) as fh:
            for raw in fh:
                self.lines += 1
                if not raw.endswith(b"\n"):
                    raw += b"\n"
                try:
                    ev = decode(raw)
                except MalformedLine:
                    malformed += 1
                    ev = None
                sp = raw.find(b" ")
                ts = ev.ts_local_ns if ev is not None else (int(raw[:sp]) if raw[:sp].isdigit() else self.now_ns)
                if wall0 is None:
                    wall0, ts0 = loop.time(), ts
                if speed > 0:
                    delay = wall0 + (ts - ts0) / (1e9 * speed) - loop.time()
                    if delay > 0.001:
                        await asyncio.sleep(delay)
                    elif self.lines % YIELD_EVERY == 0:
                        await asyncio.sleep(0)
                elif self.lines % YIELD_EVERY == 0:
                    await asyncio.sleep(0)
                if ts > self.now_ns:
                    self.now_ns = ts
                now = self.now_ns
                t = type(ev)
                # The exchange sees the market first: due requests, then this trade against resting orders.
                if t is Trade:
                    for acc in list(accounts.values()):
                        acc.sim.on_trade(now, ev.trade_id, ev.price, ev.qty, ev.side)
                else:
                    for acc in list(accounts.values()):
                        acc.sim.advance(now)
                if t is DepthDiff:
                    if book.synced:
                        for s in self.market_sessions:
                            if s.need_snapshot:
                                s.send(self._snapshot_line(ev.ts_local_ns, ev))
                                s.need_snapshot = False
                    if book.apply_diff(ev) == GAP:
                        log.error("server book: sequence gap at u=%d", ev.final_update_id)
                elif t is DepthSnapshot:
                    book.load_snapshot(ev)
                    for s in self.market_sessions:
                        s.need_snapshot = False
                for s in self.market_sessions:
                    s.send(raw)
                await self._drain()
        self.done = True
        log.warning("recording exhausted after %d lines (%d malformed) at %d", self.lines, malformed, self.now_ns)
        end = orjson.dumps({"type": "end_of_data", "ts_ns": self.now_ns}, option=_NL)
        for s in self.market_sessions:
            s.send(end)
        self.clock_task = loop.create_task(self._clock())

    async def _drain(self) -> None:
        for s in list(self.market_sessions):
            tr = s.writer.transport
            if s.closed or tr is None or tr.get_write_buffer_size() <= HIGH_WATER:
                continue
            try:
                await asyncio.wait_for(s.writer.drain(), SLOW_CLIENT_S)
            except (ConnectionError, asyncio.TimeoutError, RuntimeError):
                log.warning("dropping a client that does not read")
                self._detach(s)
                s.close()

    async def _clock(self) -> None:
        """After the recording: exchange time follows the wall clock so requests still take effect."""
        loop = asyncio.get_running_loop()
        t0, ts0 = loop.time(), self.now_ns
        rate = 1e9 * (self.speed if self.speed > 0 else 1.0)
        while True:
            await asyncio.sleep(CLOCK_TICK_S)
            self.now_ns = max(self.now_ns, ts0 + int((loop.time() - t0) * rate))
            for acc in list(self.accounts.values()):
                acc.sim.advance(self.now_ns)


def build_server(data: str | Path, config, speed: float) -> ExchangeServer:
    """An ExchangeServer for the recording ``data`` with the config's ``sim`` models and instrument table.

    Raises FileNotFoundError (no file), ValueError (market/symbol unknown or undetectable)."""
    path = Path(data)
    if not path.exists():
        raise FileNotFoundError(f"data file not found: {path}")
    try:
        inst = load_instrument(detect_market(path), detect_symbol(path),
                               config.resolve_path(config.get("data.instruments")))
    except KeyError as exc:
        raise ValueError(str(exc.args[0])) from None
    return ExchangeServer(path, inst, speed, *sim_models(config, inst))


def close_server(server: ExchangeServer, srv) -> None:
    """Stop listening, stop the replay and exchange clock, and close every client session."""
    srv.close()
    for task in (server.replay_task, server.clock_task):
        if task is not None:
            task.cancel()
    for session in list(server.market_sessions):
        session.close()


async def _serve(server: ExchangeServer, port: int) -> int:
    srv = await server.serve(port)
    print(f"listening {HOST}:{srv.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    close_server(server, srv)
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m mmcore.sim.server", description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="recording to serve")
    p.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (default 0: a free port)")
    p.add_argument("--speed", type=float, default=1.0, help="event time per wall time; 0 = as fast as read")
    p.add_argument("--config", default=str(DEFAULT_CONFIG), help="YAML config for the sim models")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="config override (repeatable)")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s server %(name)s: %(message)s", stream=sys.stderr)
    try:
        server = build_server(args.data, load_config(args.config, list(args.set or [])), args.speed)
    except ConfigError as exc:
        for line in exc.errors:
            print(f"config error: {line}", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    import uvloop
    return uvloop.run(_serve(server, args.port))


if __name__ == "__main__":
    sys.exit(main())
