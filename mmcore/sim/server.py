"""Loopback exchange emulator: a recorded market and a simulated exchange per account, served over TCP.

``python -m mmcore.sim.server --data FILE [--port P] [--speed X] [--config FILE] [--set KEY=VALUE]``

The server owns the market: it reads the recording (:mod:`mmcore.venues.binance.recording`), keeps its own
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

Bad input never freezes or kills it silently:

* a recording line that the decoder refuses, that raises anything while decoded or applied to the book and
  the accounts, or whose local time jumps more than ``MAX_TS_JUMP_NS`` ahead is skipped, counted
  (``malformed``, ``bad_lines``) and logged with the file name and line number (the first ``MAX_WARNINGS``,
  then every 1000th); the replay and the exchange clock go on;
* the replay and clock tasks are supervised: if one dies anyway, the failure is logged (CRITICAL, one line)
  and the server stops with ``error: <task> task died at recording line N: <exception>`` and exit code 1;
* a bad request line (not JSON, not an object, an unknown op, a field of the wrong type or out of range,
  a line over ``MAX_REQUEST_BYTES``) gets an ``error`` answer naming the field; the connection stays up
  and nothing is logged as a traceback.

Exit codes: 0 stopped by SIGTERM/SIGINT; 1 a supervised task died; 2 bad arguments, config or data file.
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
from mmcore.engine.wiring import sim_models
from mmcore.venues.binance.recording import (LINE_TOO_LONG, BinanceDecoder, MalformedLine, detect_market, detect_symbol,
                                         iter_lines, open_recording)
from mmcore.venues.loopback import INT64_MAX, MAX_ID_LEN, MAX_TEXT_LEN, PROTOCOL_VERSION, encode_report, fill_to_wire
from mmcore_ext.book import ASK, BID, GAP, L2Book, SYNC_SPOT, sync_rule_for_market
from mmcore_ext.events import DepthDiff, DepthSnapshot, Trade

log = logging.getLogger("mmcore.sim.server")

HOST = "127.0.0.1"
_NL = orjson.OPT_APPEND_NEWLINE
HIGH_WATER = 1 << 20          # bytes buffered for a client before the replay waits for it
SLOW_CLIENT_S = 5.0           # a client that does not drain within this is disconnected
YIELD_EVERY = 64              # replayed lines between yields to the event loop when not sleeping
CLOCK_TICK_S = 0.01           # exchange clock step after the end of the recording
MAX_REQUEST_BYTES = 1 << 20   # longest request line; a longer one is dropped up to its newline and refused
MAX_WARNINGS = 20             # per kind (bad recording lines, bad requests per session): then every 1000th
#: A recording line whose local time is more than this after the previous line's is a bad line (skipped):
#: one corrupt timestamp must not put the exchange clock, and the replay's pacing, years ahead.
MAX_TS_JUMP_NS = 3_600_000_000_000
_QUERY_OPS = frozenset(("open_orders", "fills_since", "order", "account"))
_TRADER_OPS = frozenset(("submit", "cancel", "cancel_all", "snapshot")) | _QUERY_OPS
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
        self.bad_requests = 0

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

    def submit(self, now: int, coid: str, side: int, price: int, qty: int, post_only: bool) -> None:
        """A new order (fields validated by the request layer: ``_check_request``)."""
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


_TOO_LONG = object()


async def _read_request(reader: asyncio.StreamReader):
    """The next request line (bytes), ``_TOO_LONG`` for a line over the reader's limit (dropped up to and
    including its newline), or None at end of stream."""
    try:
        return await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as exc:
        return exc.partial or None
    except asyncio.LimitOverrunError as exc:
        consumed = exc.consumed
    while True:                                  # drop the over-long line, piece by piece, up to its newline
        try:
            await reader.readexactly(consumed)
            await reader.readuntil(b"\n")
            return _TOO_LONG
        except asyncio.IncompleteReadError:
            return None
        except asyncio.LimitOverrunError as exc:
            consumed = exc.consumed


def _req_side(msg: dict) -> int:
    v = msg.get("side")
    if type(v) is not int or v not in (1, -1):
        raise BadRequest(f"side = {_short(v)}: expected 1 (buy) or -1 (sell)")
    return v


class BadRequest(ValueError):
    """A request line that breaks the protocol (the text names the field); answered with ``error``."""


def _short(v, n: int = 60) -> str:
    r = repr(v)
    return r if len(r) <= n else r[:n] + "..."


def _req_int(msg: dict, key: str, lo: int, hi: int) -> int:
    v = msg.get(key)
    if type(v) is not int or not lo <= v <= hi:
        raise BadRequest(f"{key} = {_short(v)}: expected an integer in [{lo}, {hi}]")
    return v


def _req_id(msg: dict, key: str = "coid") -> str:
    v = msg.get(key)
    if type(v) is not str or not 0 < len(v) <= MAX_ID_LEN:
        raise BadRequest(f"{key} = {_short(v)}: expected a string of 1 to {MAX_ID_LEN} characters")
    return v


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
        self.malformed = 0            # recording lines the decoder refused (skipped)
        self.bad_lines = 0            # recording lines that raised anything else while decoded or applied
        self.failure: str | None = None     # why a supervised task died (the server then stops, exit 1)
        self.stopped = asyncio.Event()      # set by a dying task (and by SIGTERM/SIGINT in ``_serve``)

    # --- serving ---
    async def serve(self, port: int = 0) -> asyncio.AbstractServer:
        """Listen on 127.0.0.1:``port`` (0: a free port; read it from ``server.sockets``)."""
        return await asyncio.start_server(self._handle, HOST, port, limit=MAX_REQUEST_BYTES)

    def account(self, name: str) -> Account:
        acc = self.accounts.get(name)
        if acc is None:
            acc = self.accounts[name] = Account(name, self)
        return acc

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One connection: every request line is answered or refused (``error``); none ends the connection."""
        s = _Session(writer)
        try:
            while not s.closed:
                line = await _read_request(reader)
                if line is None:
                    break
                msg = None
                try:
                    if line is _TOO_LONG:
                        raise BadRequest(f"request line longer than {MAX_REQUEST_BYTES} bytes dropped")
                    msg = orjson.loads(line)
                    if type(msg) is not dict:
                        raise BadRequest(f"expected a JSON object, got {type(msg).__name__}")
                    self._request(s, msg)
                except (BadRequest, ValueError) as exc:        # orjson.JSONDecodeError is a ValueError
                    self._refuse(s, msg, str(exc))
                except Exception as exc:                        # noqa: BLE001 - a request must never end the
                    log.error("internal error on request %s: %r", _short(line[:200], 200), exc)   # connection
                    log.debug("internal error on a request", exc_info=exc)
                    self._refuse(s, msg, f"internal error: {_short(exc, 200)}")
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._detach(s)
            s.close()

    def _refuse(self, s: _Session, msg, why: str) -> None:
        """Answer ``error`` (with the request's id if it had a valid one), log (bounded per session)."""
        qid = msg.get("id") if type(msg) is dict else None
        if type(qid) is not int or not 0 <= qid <= INT64_MAX:
            qid = None
        s.bad_requests += 1
        if s.bad_requests <= MAX_WARNINGS or s.bad_requests % 1000 == 0:
            who = s.account.name if s.account is not None else "(no hello yet)"
            log.warning("account %s: request refused (%d on this connection): %s", who, s.bad_requests, why)
        s.send(orjson.dumps({"type": "error", "id": qid, "error": why[:MAX_TEXT_LEN]}, option=_NL))

    def _detach(self, s: _Session) -> None:
        if s in self.market_sessions:
            self.market_sessions.remove(s)
        if s.account is not None and s.account.session is s:
            s.account.session = None
            log.info("account %s: trader disconnected", s.account.name)

    def _answer(self, s: _Session, qid, result) -> None:
        s.send(orjson.dumps({"type": "answer", "id": qid, "result": result}, option=_NL))

    def _request(self, s: _Session, msg: dict) -> None:
        """Validate and carry out one request (raises :class:`BadRequest` naming the bad field)."""
        op = msg.get("op")
        if op == "hello":
            self._hello(s, msg)
            return
        acc = s.account
        if acc is None:
            raise BadRequest("say hello first")
        if type(op) is not str or op not in _TRADER_OPS:
            raise BadRequest(f"op = {_short(op)}: unknown op")
        if s.role != "trader" and op not in _QUERY_OPS:
            raise BadRequest(f"op {op!r}: an observer may only query")
        qid = _req_int(msg, "id", 0, INT64_MAX) if op in _QUERY_OPS or op == "cancel_all" else None
        now = self.now_ns
        inst = self.instrument
        if op == "submit":
            post_only = msg.get("post_only", True)
            if type(post_only) is not bool:
                raise BadRequest(f"post_only = {_short(post_only)}: expected true or false")
            acc.submit(now, _req_id(msg), _req_side(msg),
                       _req_int(msg, "price", 1, inst.max_price_ticks), _req_int(msg, "qty", 1, inst.max_order_lots),
                       post_only)
        elif op == "cancel":
            acc.sim.cancel(now, _req_id(msg))
        elif op == "open_orders":
            self._answer(s, qid, [r.wire() for r in acc.open_records()])
        elif op == "fills_since":
            since = _req_int(msg, "ts_ns", 0, INT64_MAX)
            self._answer(s, qid, [fill_to_wire(f) for f in acc.fills if f.ts_ns >= since])
        elif op == "order":
            r = acc.orders.get(_req_id(msg))
            self._answer(s, qid, r.wire() if r is not None else None)
        elif op == "cancel_all":
            recs = acc.open_records()
            for r in recs:
                acc.sim.cancel(now, r.coid)
            self._answer(s, qid, len(recs))
        elif op == "snapshot":
            s.need_snapshot = True
        else:                                           # "account"
            self._answer(s, qid, acc.state())

    def _hello(self, s: _Session, msg: dict) -> None:
        role = msg.get("role", "trader")
        if role not in ("trader", "observer"):
            raise BadRequest(f"role = {_short(role)}: expected 'trader' or 'observer'")
        if s.account is not None:
            raise BadRequest("hello twice on one connection")
        acc = self.account(_req_id(msg, "account"))
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
                self.replay_task = self._supervise(self._replay(), "replay")
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

    def _supervise(self, coro, name: str) -> asyncio.Task:
        """Run ``coro`` as a task whose death (any exception) is logged and stops the server (exit 1)."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None and task is self.replay_task:      # the recording ended; the clock task goes on
            return
        why = repr(exc) if exc is not None else "returned"
        self.failure = f"{task.get_name()} task died at recording line {self.lines}: {why}"
        log.critical("%s; the exchange stops (exit 1)", self.failure)
        if exc is not None:
            log.debug("%s task failure", task.get_name(), exc_info=exc)
        self.stopped.set()

    def _bad_line(self, kind: str, lineno: int, exc) -> None:
        n = self.malformed + self.bad_lines
        if n <= MAX_WARNINGS or n % 1000 == 0:
            log.warning("%s line %d skipped (%s; %d malformed, %d bad so far): %s", self.path.name, lineno, kind,
                        self.malformed, self.bad_lines, _short(exc, 300))

    async def _replay(self) -> None:
        """Replay the recording as the market. A line that the decoder refuses (MalformedLine), that raises
        anything while decoded or applied, or whose time jumps more than ``MAX_TS_JUMP_NS`` ahead is skipped,
        counted (``malformed`` / ``bad_lines``) and logged with its line number; the replay goes on."""
        loop = asyncio.get_running_loop()
        decode = BinanceDecoder(self.instrument).decode
        speed = self.speed
        wall0 = ts0 = None
        with open_recording(self.path) as fh:
            for raw in iter_lines(fh, self.path):                 # bounded lines (a longer one is malformed)
                self.lines += 1
                if raw is LINE_TOO_LONG:
                    self.malformed += 1
                    self._bad_line("malformed", self.lines, "line longer than MAX_LINE_BYTES")
                    continue
                if not raw.endswith(b"\n"):
                    raw += b"\n"
                try:
                    ev = decode(raw)
                except MalformedLine as exc:
                    self.malformed += 1
                    self._bad_line("malformed", self.lines, exc)
                    ev = None
                except Exception as exc:                       # noqa: BLE001 - one line never stops the replay
                    self.bad_lines += 1
                    self._bad_line("decoder error", self.lines, exc)
                    continue
                # A malformed line neither moves the clock nor paces the replay: its time is not to be trusted.
                ts = ev.ts_local_ns if ev is not None else None
                if ts is not None and self.now_ns and ts > self.now_ns + MAX_TS_JUMP_NS:
                    self.bad_lines += 1
                    self._bad_line("time jump", self.lines, f"local time {ts} is more than "
                                   f"{MAX_TS_JUMP_NS // 10**9} s after the previous line's {self.now_ns}")
                    continue
                if ts is not None and wall0 is None:
                    wall0, ts0 = loop.time(), ts
                if ts is not None and speed > 0:
                    delay = wall0 + (ts - ts0) / (1e9 * speed) - loop.time()
                    if delay > 0.001:
                        await asyncio.sleep(delay)
                    elif self.lines % YIELD_EVERY == 0:
                        await asyncio.sleep(0)
                elif self.lines % YIELD_EVERY == 0:
                    await asyncio.sleep(0)
                if ts is not None and ts > self.now_ns:
                    self.now_ns = ts
                try:
                    self._apply(ev, raw)
                except Exception as exc:                       # noqa: BLE001 - one line never stops the replay
                    self.bad_lines += 1
                    self._bad_line("error while applied", self.lines, exc)
                await self._drain()
        self.done = True
        log.warning("recording exhausted after %d lines (%d malformed, %d bad, skipped) at %d", self.lines,
                    self.malformed, self.bad_lines, self.now_ns)
        end = orjson.dumps({"type": "end_of_data", "ts_ns": self.now_ns}, option=_NL)
        for s in self.market_sessions:
            s.send(end)
        self.clock_task = self._supervise(self._clock(), "clock")

    def _apply(self, ev, raw: bytes) -> None:
        """One recording line: the exchange sees the market first (due requests, then a trade against resting
        orders), then the book takes it, then every trader gets the raw line."""
        now = self.now_ns
        t = type(ev)
        accounts = self.accounts
        book = self.book
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
                log.error("server book: sequence gap at u=%d (line %d)", ev.final_update_id, self.lines)
        elif t is DepthSnapshot:
            book.load_snapshot(ev)
            for s in self.market_sessions:
                s.need_snapshot = False
        for s in self.market_sessions:
            s.send(raw)

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
                               config.resolve_path(config.get("data.markets")))
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
    """Serve until SIGTERM/SIGINT (exit 0) or until a supervised task dies (logged; exit 1)."""
    srv = await server.serve(port)
    print(f"listening {HOST}:{srv.sockets[0].getsockname()[1]}", flush=True)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, server.stopped.set)
    await server.stopped.wait()
    close_server(server, srv)
    if server.failure is not None:
        print(f"error: {server.failure}", file=sys.stderr)
        return 1
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
