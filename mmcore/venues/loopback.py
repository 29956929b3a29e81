"""Loopback venue: market data and execution over one TCP connection to :mod:`mmcore.sim.server`.

Protocol (version 1): newline-delimited messages over TCP on 127.0.0.1, one message per line, both ways.

Server -> client
    * Market data: the recording's raw line ``<local ts ns> <exchange JSON>`` (first byte a digit), i.e. the
      exchange's own bytes, decoded by the client with the venue's decoder (Binance here). After a
      (re)connect the server sends a synthetic REST-style depth snapshot line before the first depth diff.
    * JSON objects (first byte ``{``), by ``type``:
      ``welcome`` {protocol, account, role, market, symbol, now_ns, speed} - answer to ``hello``;
      ``report`` {kind, ts_ns, coid, ...} - an execution report (:func:`encode_report`);
      ``answer`` {id, result} / ``error`` {id, error} - answer to a query;
      ``end_of_data`` {ts_ns} - the recording is exhausted (the exchange keeps running).

Client -> server (JSON objects with ``op``)
    ``hello`` {account, role: "trader" | "observer"} (first; a trader gets market data and the account's
    reports, a newer trader session of the same account replaces an older one; an observer only queries);
    ``submit`` {coid, side, price, qty, post_only}; ``cancel`` {coid}; ``snapshot`` (a depth snapshot before
    the next diff) - no answer, reports follow; queries with an ``id``: ``open_orders``,
    ``fills_since`` {ts_ns}, ``cancel_all``, ``account`` (the exchange's record of the account, for tests).

Units on the wire are mmcore's: prices in ticks, quantities in lots, times in ns, fees as decimal strings,
side +1 buy / -1 sell. The exchange keeps accounts (orders, fills, position) across disconnects.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
from decimal import Decimal
from typing import Awaitable, Callable

import orjson

from mmcore.execution import (OrderAccepted, OrderCanceled, OrderCancelRejected, OrderExpired, OrderFilled,
                              OrderRejected)
from mmcore.recovery import VenueOrder
from mmcore_ext.binance_codec import MalformedLine

log = logging.getLogger("mmcore.loopback")

PROTOCOL_VERSION = 1
_NL = orjson.OPT_APPEND_NEWLINE
MAX_MALFORMED_WARNINGS = 20


class QueryError(RuntimeError):
    """The server answered a query with an error."""


# --- wire codec (shared with mmcore.sim.server) ---
_REPORT_TYPES = frozenset((OrderAccepted, OrderCanceled, OrderCancelRejected, OrderExpired, OrderFilled,
                           OrderRejected))


def encode_report(rep) -> dict:
    """An execution report as a wire object (``type: report``). Raises TypeError for anything else."""
    t = type(rep)
    if t not in _REPORT_TYPES:
        raise TypeError(f"not an execution report: {rep!r}")
    base = {"type": "report", "ts_ns": rep.ts_ns, "coid": rep.client_order_id}
    if t is OrderFilled:
        base.update(kind="filled", trade_id=rep.trade_id, side=rep.side, price=rep.price, qty=rep.qty,
                    fee=str(rep.fee), maker=rep.is_maker)
    elif t is OrderAccepted:
        base.update(kind="accepted", venue_order_id=rep.venue_order_id)
    elif t is OrderCanceled:
        base.update(kind="canceled", remaining=rep.remaining)
    elif t is OrderExpired:
        base.update(kind="expired", remaining=rep.remaining)
    elif t is OrderRejected:
        base.update(kind="rejected", reason=rep.reason, code=rep.code)
    else:
        base.update(kind="cancel_rejected", reason=rep.reason)
    return base


def decode_report(msg: dict):
    """The execution report of a wire object. Raises KeyError/ValueError on a malformed one."""
    kind, ts, coid = msg["kind"], msg["ts_ns"], msg["coid"]
    if kind == "filled":
        return fill_from_wire(msg)
    if kind == "accepted":
        return OrderAccepted(ts, coid, msg.get("venue_order_id"))
    if kind == "canceled":
        return OrderCanceled(ts, coid, msg["remaining"])
    if kind == "expired":
        return OrderExpired(ts, coid, msg["remaining"])
    if kind == "rejected":
        return OrderRejected(ts, coid, msg.get("reason", ""), msg.get("code", ""))
    if kind == "cancel_rejected":
        return OrderCancelRejected(ts, coid, msg.get("reason", ""))
    raise ValueError(f"unknown report kind {kind!r}")


def fill_to_wire(f: OrderFilled) -> dict:
    """A fill as a plain object (also the ``fills_since`` answer's items)."""
    return {"ts_ns": f.ts_ns, "coid": f.client_order_id, "trade_id": f.trade_id, "side": f.side,
            "price": f.price, "qty": f.qty, "fee": str(f.fee), "maker": f.is_maker}


def fill_from_wire(m: dict) -> OrderFilled:
    """Inverse of :func:`fill_to_wire` (extra keys ignored). Raises KeyError on a missing field."""
    return OrderFilled(m["ts_ns"], m["coid"], m["trade_id"], m["side"], m["price"], m["qty"], Decimal(m["fee"]),
                       m.get("maker", True))


def venue_order_from_wire(m: dict) -> VenueOrder:
    """An ``open_orders`` answer item as a :class:`mmcore.recovery.VenueOrder`."""
    return VenueOrder(m["coid"], m["side"], m["price"], m["qty"], m["filled"], m["status"],
                      m.get("venue_order_id"), m.get("ts_ns", 0))


class _Wire(asyncio.Protocol):
    """One connection: splits the byte stream into lines for the client."""

    def __init__(self, client: LoopbackClient):
        self.client = client
        self.transport = None
        self.buf = b""

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        lines = (self.buf + data if self.buf else data).split(b"\n")
        self.buf = lines.pop()
        on_line = self.client._on_line
        for line in lines:
            if line:
                on_line(line)

    def connection_lost(self, exc) -> None:
        self.client._lost(self, exc)


class LoopbackClient:
    """Market data and execution client of the loopback exchange, with reconnection.

    Parameters
    ----------
    host, port : str, int
        The server (127.0.0.1).
    account : str
        The exchange account (orders, fills and position are kept per account across connections).
    decode : callable, optional
        ``decode(raw_line) -> event | None`` (raises MalformedLine), e.g. ``BinanceLineDecoder.decode``.
    on_market : callable, optional
        Receives every decoded market event.
    on_report : callable, optional
        Receives every execution report (:mod:`mmcore.execution` types).
    on_connect : async callable, optional
        ``await on_connect(welcome)`` after each (re)connection, before any market event or report of that
        connection is delivered (they are held meanwhile, then delivered in arrival order). Recovery runs
        here; if it raises a network error (OSError, ConnectionError, TimeoutError, QueryError) the
        connection is dropped and retried; any other exception (a journal failure, a bug) ends ``run``
        with it.
    on_disconnect : callable, optional
        Called when a connection is lost.
    role : {"trader", "observer"}
    backoff_initial_s, backoff_max_s : float
        Reconnection delay: doubles after each failure, capped; reset after a successful connection.
    timeout_s : float
        Connect, hello and query timeout (seconds).

    Attributes
    ----------
    connected : bool
    connects, disconnects, dropped_requests, malformed : int
    welcome : dict or None
        The last welcome message.
    """

    def __init__(self, host: str, port: int, account: str, decode: Callable | None = None,
                 on_market: Callable | None = None, on_report: Callable | None = None,
                 on_connect: Callable[[dict], Awaitable[None]] | None = None,
                 on_disconnect: Callable[[], None] | None = None, role: str = "trader",
                 backoff_initial_s: float = 0.05, backoff_max_s: float = 2.0, timeout_s: float = 5.0):
        if role not in ("trader", "observer"):
            raise ValueError(f"role must be 'trader' or 'observer', got {role!r}")
        self.host, self.port, self.account, self.role = host, port, account, role
        self.decode = decode
        self.on_market = on_market
        self.on_report = on_report
        self.on_connect = on_connect
        self.on_disconnect = on_disconnect
        self.backoff_initial_s, self.backoff_max_s, self.timeout_s = backoff_initial_s, backoff_max_s, timeout_s
        self.connected = False
        self.connects = self.disconnects = self.dropped_requests = self.malformed = 0
        self.welcome: dict | None = None
        self._proto: _Wire | None = None
        self._write = None
        self._holding = False
        self._held: list = []
        self._pending: dict[int, asyncio.Future] = {}
        self._ids = itertools.count(1)
        self._welcome_fut: asyncio.Future | None = None
        self._lost_fut: asyncio.Future | None = None
        self._closing = False

    # --- execution client (non-blocking writes) ---
    def submit(self, ts_ns: int, coid: str, side: int, price: int, qty: int, post_only: bool = True) -> None:
        """Send a new order (``price`` ticks, ``qty`` lots). Dropped (counted, logged) when disconnected:
        the next reconciliation then finds it neither open nor filled and closes it."""
        self._send({"op": "submit", "coid": coid, "side": side, "price": price, "qty": qty,
                    "post_only": post_only})

    def cancel(self, ts_ns: int, coid: str) -> None:
        """Request a cancel (dropped when disconnected, like ``submit``)."""
        self._send({"op": "cancel", "coid": coid})

    def request_snapshot(self) -> None:
        """Ask for a depth snapshot before the next depth diff (after a sequence gap)."""
        self._send({"op": "snapshot"})

    # --- queries ---
    async def open_orders(self) -> list[VenueOrder]:
        """The account's open orders (received, accepted or partially filled).

        Raises ConnectionError (not connected / lost), TimeoutError, QueryError."""
        return [venue_order_from_wire(m) for m in await self._query("open_orders")]

    async def fills_since(self, ts_ns: int) -> list[OrderFilled]:
        """The account's fills with ``ts_ns`` (exchange time, ns) at or after ``ts_ns``, in time order.
        Raises like :meth:`open_orders`."""
        return [fill_from_wire(m) for m in await self._query("fills_since", ts_ns=ts_ns)]

    async def cancel_all(self) -> int:
        """Cancel every open order of the account; returns how many cancels the exchange queued."""
        return await self._query("cancel_all")

    async def account_state(self) -> dict:
        """The exchange's record of the account: ``position`` (lots), ``fills``, ``open_orders``,
        ``coids_received`` ({coid: times received}), ``duplicate_coids``."""
        return await self._query("account")

    # --- connection ---
    async def connect(self) -> dict:
        """Open one connection and say hello; returns the welcome. Market events and reports are held
        until :meth:`release`. Raises OSError/ConnectionError/TimeoutError on failure."""
        loop = asyncio.get_running_loop()
        self._holding = True
        self._held = []
        transport, proto = await asyncio.wait_for(
            loop.create_connection(lambda: _Wire(self), self.host, self.port), self.timeout_s)
        self._proto = proto
        self._write = transport.write
        self._lost_fut = loop.create_future()
        self._welcome_fut = loop.create_future()
        self._send({"op": "hello", "account": self.account, "role": self.role, "protocol": PROTOCOL_VERSION})
        try:
            self.welcome = await asyncio.wait_for(self._welcome_fut, self.timeout_s)
        except BaseException:
            transport.close()
            raise
        self.connected = True
        self.connects += 1
        log.info("connected to %s:%d as %s (%s)", self.host, self.port, self.account, self.role)
        return self.welcome

    def release(self) -> None:
        """Deliver the held market events and reports in arrival order, then deliver directly."""
        held, self._held = self._held, []
        for kind, item in held:
            if not kind:
                self._market(item)
            elif self.on_report is not None:
                self.on_report(item)
        self._holding = False

    async def run(self) -> None:
        """Connect, recover (``on_connect``), stream; reconnect with capped exponential backoff until
        :meth:`close`."""
        delay = self.backoff_initial_s
        while not self._closing:
            try:
                welcome = await self.connect()
                if self.on_connect is not None:
                    await self.on_connect(welcome)
                self.release()
                delay = self.backoff_initial_s
                await self._lost_fut
            except (OSError, ConnectionError, asyncio.TimeoutError, QueryError) as exc:
                if self._closing:
                    break
                log.warning("loopback %s:%d: %r; retrying in %.2f s", self.host, self.port, exc, delay)
                self._drop()
            if self._closing:
                break
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.backoff_max_s)

    def close(self) -> None:
        """Stop reconnecting and close the connection."""
        self._closing = True
        self._drop()

    # --- internals ---
    def _drop(self) -> None:
        if self._proto is not None and self._proto.transport is not None:
            self._proto.transport.close()

    def _send(self, msg: dict) -> None:
        if self._write is None:
            self.dropped_requests += 1
            log.warning("not connected: %s %s dropped", msg.get("op"), msg.get("coid", ""))
            return
        self._write(orjson.dumps(msg, option=_NL))

    async def _query(self, op: str, **kw):
        if self._write is None:
            raise ConnectionError(f"{op}: not connected")
        qid = next(self._ids)
        fut = asyncio.get_running_loop().create_future()
        self._pending[qid] = fut
        self._send({"op": op, "id": qid, **kw})
        try:
            return await asyncio.wait_for(fut, self.timeout_s)
        finally:
            self._pending.pop(qid, None)

    def _on_line(self, line: bytes) -> None:
        if line[0] != 123:                                   # not "{": a market-data line
            if self._holding:
                self._held.append((0, line))
            else:
                self._market(line)
            return
        msg = orjson.loads(line)
        t = msg.get("type")
        if t == "report":
            rep = decode_report(msg)
            if self._holding:
                self._held.append((1, rep))
            elif self.on_report is not None:
                self.on_report(rep)
        elif t == "answer" or t == "error":
            fut = self._pending.get(msg.get("id"))
            if fut is not None and not fut.done():
                if t == "answer":
                    fut.set_result(msg.get("result"))
                else:
                    fut.set_exception(QueryError(msg.get("error")))
        elif t == "welcome":
            if self._welcome_fut is not None and not self._welcome_fut.done():
                self._welcome_fut.set_result(msg)
        elif t == "end_of_data":
            log.warning("the exchange's market data ended at %d", msg.get("ts_ns", 0))
        else:
            log.warning("unknown message from the exchange: %.200r", line)

    def _market(self, line: bytes) -> None:
        if self.on_market is None:
            return
        try:
            ev = self.decode(line)
        except MalformedLine as exc:
            self.malformed += 1
            if self.malformed <= MAX_MALFORMED_WARNINGS:
                log.warning("malformed market line skipped: %s", exc)
            return
        if ev is not None:
            self.on_market(ev)

    def _lost(self, proto: _Wire, exc) -> None:
        if proto is not self._proto:
            return
        self._proto = None
        self._write = None
        was = self.connected
        self.connected = False
        err = ConnectionError(f"connection to {self.host}:{self.port} lost ({exc!r})")
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(err)
        for fut in (self._welcome_fut, self._lost_fut):
            if fut is not None and not fut.done():
                if fut is self._lost_fut:
                    fut.set_result(None)
                else:
                    fut.set_exception(err)
        if was:
            self.disconnects += 1
            (log.info if self._closing else log.warning)("disconnected from %s:%d (%r)", self.host, self.port, exc)
            if self.on_disconnect is not None:
                self.on_disconnect()
