"""Loopback venue: market data and execution over one TCP connection to :mod:`mmcore.sim.server`.

Protocol (version 1): newline-delimited messages over TCP on 127.0.0.1, one message per line, both ways.

Server -> client
    * Market data: the recording's raw line ``<local ts ns> <exchange JSON>`` (first byte a digit), i.e. the
      exchange's own bytes, decoded by the client with the venue's decoder (Binance here). After a
      (re)connect the server sends a synthetic REST-style depth snapshot line before the first depth diff.
    * JSON objects (first byte ``{``), by ``type``:
      ``welcome`` {protocol, account, role, market, symbol, now_ns, speed} - answer to ``hello``;
      ``report`` {kind, ts_ns, coid, ...} - an execution report (:func:`encode_report`);
      ``answer`` {id, result} / ``error`` {id, error} - answer to a query (``error`` with ``id`` null: a
      request without id, or a line that could not be read, was refused);
      ``end_of_data`` {ts_ns} - the recording is exhausted (the exchange keeps running).

Client -> server (JSON objects with ``op``)
    ``hello`` {account, role: "trader" | "observer"} (first; a trader gets market data and the account's
    reports, a newer trader session of the same account replaces an older one; an observer only queries);
    ``submit`` {coid, side, price, qty, post_only}; ``cancel`` {coid}; ``snapshot`` (a depth snapshot before
    the next diff) - no answer, reports follow; queries with an ``id`` (an integer): ``open_orders``,
    ``fills_since`` {ts_ns}, ``order`` {coid} (one order in any status, or null), ``cancel_all``,
    ``account`` (the exchange's record of the account, for tests). Observers may only query.

Both sides validate every message (types, required fields, ints within int64 and the instrument's
``max_price_ticks`` / ``max_qty_lots``, ids strings of at most :data:`MAX_ID_LEN` characters). The server
answers a bad request line with ``error`` and keeps the connection; the client counts, logs and skips a
bad message (a bad answer fails its query with :class:`QueryError`). Lines are bounded (server: 1 MiB per
request; client: :data:`MAX_LINE_BYTES`); a longer one is dropped up to its newline.

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
                              OrderRejected, VenueOrder)
from mmcore.instruments import MAX_UNITS, Instrument
from mmcore_ext.binance_codec import MalformedLine

log = logging.getLogger("mmcore.loopback")

PROTOCOL_VERSION = 1
_NL = orjson.OPT_APPEND_NEWLINE
MAX_MALFORMED_WARNINGS = 20
#: Longest line accepted from the server (bytes; its largest, a fills answer of a long run, is far below):
#: a longer one is dropped up to its newline, counted and logged, so a peer cannot grow our buffer unbounded.
MAX_LINE_BYTES = 1 << 26


from mmcore.venues.common import MalformedMessage, QueryError  # noqa: E402 - shared with every adapter


# --- wire codec (shared with mmcore.sim.server) ---
_REPORT_TYPES = frozenset((OrderAccepted, OrderCanceled, OrderCancelRejected, OrderExpired, OrderFilled,
                           OrderRejected))
#: int64 bounds: times (ns) are in [0, INT64_MAX], trade ids in [INT64_MIN, INT64_MAX] (the simulated
#: exchange numbers its taker fills negative).
from mmcore.venues.common import INT64_MAX, INT64_MIN, MAX_ID_LEN  # noqa: E402
#: Longest reason / code / error text kept from the venue (longer ones are cut).
MAX_TEXT_LEN = 300
#: Longest fee string, and the largest fee magnitude (quote currency) accepted.
MAX_FEE_LEN = 64
MAX_FEE = Decimal(10) ** 15
#: Order statuses on the wire: open ones (``open_orders``) and final ones (``order``).
OPEN_STATUSES = ("PENDING_NEW", "NEW", "PARTIALLY_FILLED")
FINAL_STATUSES = ("FILLED", "CANCELED", "EXPIRED", "REJECTED")
_STATUSES = frozenset(OPEN_STATUSES + FINAL_STATUSES)


class WireBounds:
    """Bounds of the numbers the venue may send (the instrument's venue-edge bounds).

    ``max_price_ticks`` / ``max_qty_lots`` default to :data:`mmcore.instruments.MAX_UNITS` (2**53) when no
    instrument is given (e.g. an observer connection in tests).
    """

    __slots__ = ("max_price_ticks", "max_qty_lots")

    def __init__(self, instrument: Instrument | None = None):
        self.max_price_ticks = instrument.max_price_ticks if instrument is not None else MAX_UNITS
        self.max_qty_lots = instrument.max_qty_lots if instrument is not None else MAX_UNITS


_DEFAULT_BOUNDS = WireBounds()


def _int(m: dict, key: str, lo: int, hi: int) -> int:
    v = m.get(key)
    if type(v) is not int or not lo <= v <= hi:       # type(): a bool is not an int here
        raise MalformedMessage(f"{key} = {_short(v)}: expected an integer in [{lo}, {hi}]")
    return v


def _side(m: dict) -> int:
    v = m.get("side")
    if type(v) is not int or v not in (1, -1):
        raise MalformedMessage(f"side = {_short(v)}: expected 1 (buy) or -1 (sell)")
    return v


def _id(m: dict, key: str, optional: bool = False) -> str | None:
    v = m.get(key)
    if v is None and optional:
        return None
    if type(v) is not str or not 0 < len(v) <= MAX_ID_LEN:
        raise MalformedMessage(f"{key} = {_short(v)}: expected a string of 1 to {MAX_ID_LEN} characters")
    return v


def _text(m: dict, key: str) -> str:
    v = m.get(key, "")
    if type(v) is not str:
        raise MalformedMessage(f"{key} = {_short(v)}: expected a string")
    return v[:MAX_TEXT_LEN]


def _fee(m: dict) -> Decimal:
    v = m.get("fee")
    if type(v) is not str or len(v) > MAX_FEE_LEN:
        raise MalformedMessage(f"fee = {_short(v)}: expected a decimal string of at most {MAX_FEE_LEN} characters")
    try:
        d = Decimal(v)
    except ArithmeticError:
        d = None
    if d is None or not d.is_finite() or abs(d) > MAX_FEE:
        raise MalformedMessage(f"fee = {_short(v)}: expected a finite decimal with |fee| <= {MAX_FEE}")
    return d


def _short(v, n: int = 60) -> str:
    r = repr(v)
    return r if len(r) <= n else r[:n] + "..."


def _obj(m, what: str) -> dict:
    if type(m) is not dict:
        raise MalformedMessage(f"{what}: expected a JSON object, got {type(m).__name__}")
    return m


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


def decode_report(msg: dict, bounds: WireBounds = _DEFAULT_BOUNDS):
    """The execution report of a wire object, validated: ``ts_ns`` in [0, 2**63), ``coid`` a string of 1 to
    :data:`MAX_ID_LEN` characters, fill ``price`` in [1, max_price_ticks], ``qty`` in [1, max_qty_lots],
    ``side`` +-1, ``trade_id`` an int64, ``fee`` a finite decimal string; ``remaining`` in
    [0, max_qty_lots]. Raises :class:`MalformedMessage` naming the first bad field."""
    _obj(msg, "report")
    kind = msg.get("kind")
    ts, coid = _int(msg, "ts_ns", 0, INT64_MAX), _id(msg, "coid")
    if kind == "filled":
        return fill_from_wire(msg, bounds)
    if kind == "accepted":
        return OrderAccepted(ts, coid, _id(msg, "venue_order_id", optional=True))
    if kind == "canceled":
        return OrderCanceled(ts, coid, _int(msg, "remaining", 0, bounds.max_qty_lots))
    if kind == "expired":
        return OrderExpired(ts, coid, _int(msg, "remaining", 0, bounds.max_qty_lots))
    if kind == "rejected":
        return OrderRejected(ts, coid, _text(msg, "reason"), _text(msg, "code"))
    if kind == "cancel_rejected":
        return OrderCancelRejected(ts, coid, _text(msg, "reason"))
    raise MalformedMessage(f"kind = {_short(kind)}: not a report kind")


def fill_to_wire(f: OrderFilled) -> dict:
    """A fill as a plain object (also the ``fills_since`` answer's items)."""
    return {"ts_ns": f.ts_ns, "coid": f.client_order_id, "trade_id": f.trade_id, "side": f.side,
            "price": f.price, "qty": f.qty, "fee": str(f.fee), "maker": f.is_maker}


def fill_from_wire(m: dict, bounds: WireBounds = _DEFAULT_BOUNDS) -> OrderFilled:
    """Inverse of :func:`fill_to_wire` (extra keys ignored), validated as in :func:`decode_report`.
    Raises :class:`MalformedMessage`."""
    _obj(m, "fill")
    maker = m.get("maker", True)
    if type(maker) is not bool:
        raise MalformedMessage(f"maker = {_short(maker)}: expected true or false")
    return OrderFilled(_int(m, "ts_ns", 0, INT64_MAX), _id(m, "coid"), _int(m, "trade_id", INT64_MIN, INT64_MAX),
                       _side(m), _int(m, "price", 1, bounds.max_price_ticks), _int(m, "qty", 1, bounds.max_qty_lots),
                       _fee(m), maker)


def venue_order_from_wire(m: dict, bounds: WireBounds = _DEFAULT_BOUNDS) -> VenueOrder:
    """An ``open_orders`` / ``order`` answer item as a :class:`mmcore.engine.recovery.VenueOrder`, validated
    (``price`` in [1, max_price_ticks], ``qty`` in [1, max_qty_lots], ``filled`` in [0, qty], ``status`` one of
    :data:`OPEN_STATUSES` + :data:`FINAL_STATUSES`). Raises :class:`MalformedMessage`."""
    _obj(m, "order")
    qty = _int(m, "qty", 1, bounds.max_qty_lots)
    status = m.get("status")
    if status not in _STATUSES:
        raise MalformedMessage(f"status = {_short(status)}: expected one of {sorted(_STATUSES)}")
    return VenueOrder(_id(m, "coid"), _side(m), _int(m, "price", 1, bounds.max_price_ticks), qty,
                      _int(m, "filled", 0, qty), status, _id(m, "venue_order_id", optional=True),
                      _int(m, "ts_ns", 0, INT64_MAX) if "ts_ns" in m else 0)


def _welcome(m: dict) -> dict:
    """The welcome, validated (``protocol`` == :data:`PROTOCOL_VERSION`; ``account``, ``role``, ``market``,
    ``symbol`` strings; ``now_ns`` in [0, 2**63)). Raises :class:`MalformedMessage`."""
    if m.get("protocol") != PROTOCOL_VERSION or type(m.get("protocol")) is not int:
        raise MalformedMessage(f"protocol = {_short(m.get('protocol'))}: expected {PROTOCOL_VERSION}")
    for key in ("account", "role", "market", "symbol"):
        v = m.get(key)
        if type(v) is not str or len(v) > MAX_TEXT_LEN:
            raise MalformedMessage(f"{key} = {_short(v)}: expected a string")
    _int(m, "now_ns", 0, INT64_MAX)
    return m


def _list(res) -> list:
    if type(res) is not list:
        raise MalformedMessage(f"expected a list, got {type(res).__name__}")
    return res


class _Wire(asyncio.Protocol):
    """One connection: splits the byte stream into lines for the client."""

    def __init__(self, client: LoopbackClient):
        self.client = client
        self.transport = None
        self.pending: list[bytes] = []  # pieces of the unfinished last line
        self.pending_len = 0
        self.discarding = False         # inside a line longer than MAX_LINE_BYTES: drop up to its newline

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.discarding:
            i = data.find(b"\n")
            if i < 0:
                return
            self.discarding = False
            data = data[i + 1:]
        if b"\n" not in data:                         # a piece of a line: keep it, copy-free
            if data:
                self.pending.append(data)
                self.pending_len += len(data)
                if self.pending_len > MAX_LINE_BYTES:
                    self._too_long()
            return
        if self.pending:                               # one copy per chunk, as for any split
            self.pending.append(data)
            data = b"".join(self.pending)
            self.pending = []
            self.pending_len = 0
        lines = data.split(b"\n")
        tail = lines.pop()
        on_line = self.client._on_line
        for line in lines:
            if line:
                on_line(line)
        if tail:
            self.pending.append(tail)
            self.pending_len = len(tail)
            if self.pending_len > MAX_LINE_BYTES:
                self._too_long()

    def _too_long(self) -> None:
        self.pending = []
        self.pending_len = 0
        self.discarding = True
        self.client._bad_message(b"", MalformedMessage(f"line longer than {MAX_LINE_BYTES} bytes dropped"))

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

    instrument : Instrument, optional
        Its ``max_price_ticks`` / ``max_qty_lots`` bound every price and quantity the venue sends (default
        2**53).

    Every message from the venue is validated before use (:func:`decode_report`, :func:`venue_order_from_wire`,
    the welcome's fields). A malformed one is counted (``malformed_messages``), logged (the first
    ``MAX_MALFORMED_WARNINGS`` with a bounded excerpt, then every 1000th) and skipped; a malformed answer fails
    its query with :class:`QueryError`, a malformed welcome fails :meth:`connect` with it.

    Attributes
    ----------
    connected : bool
    connects, disconnects, dropped_requests : int
    malformed : int
        Market-data lines the decoder refused.
    malformed_messages : int
        Venue messages (reports, answers, welcome, over-long lines) that broke the protocol.
    request_errors : int
        Error answers to requests without an id (a ``submit`` or ``cancel`` the exchange refused; logged).
    welcome : dict or None
        The last welcome message.
    venue_id : str
        ``loopback:HOST:PORT``: the venue identity of the account lock (:mod:`mmcore.persistence.locks`).
    """

    def __init__(self, host: str, port: int, account: str, decode: Callable | None = None,
                 on_market: Callable | None = None, on_report: Callable | None = None,
                 on_connect: Callable[[dict], Awaitable[None]] | None = None,
                 on_disconnect: Callable[[], None] | None = None, role: str = "trader",
                 backoff_initial_s: float = 0.05, backoff_max_s: float = 2.0, timeout_s: float = 5.0,
                 instrument: Instrument | None = None):
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
        self.malformed_messages = self.request_errors = 0
        self.bounds = WireBounds(instrument)
        self.venue_id = f"loopback:{host.lower()}:{port}"
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

        Raises ConnectionError (not connected / lost), TimeoutError, QueryError (also for a malformed
        answer)."""
        res = await self._query("open_orders")
        return self._parse("open_orders", lambda: [venue_order_from_wire(m, self.bounds) for m in _list(res)], res)

    async def fills_since(self, ts_ns: int) -> list[OrderFilled]:
        """The account's fills with ``ts_ns`` (exchange time, ns) at or after ``ts_ns``, in time order.
        Raises like :meth:`open_orders`."""
        res = await self._query("fills_since", ts_ns=ts_ns)
        return self._parse("fills_since", lambda: [fill_from_wire(m, self.bounds) for m in _list(res)], res)

    async def order(self, coid: str) -> VenueOrder | None:
        """The venue's record of one order of the account by client order id, in any status (open or final:
        ``FILLED``, ``CANCELED``, ``EXPIRED``, ``REJECTED``), or None if the venue does not know it (Binance:
        ``GET /api/v3/order?origClientOrderId=``). Raises like :meth:`open_orders`."""
        res = await self._query("order", coid=coid)

        def parse():
            if res is None:
                return None
            o = venue_order_from_wire(res, self.bounds)
            if o.client_order_id != coid:
                raise MalformedMessage(f"coid = {_short(o.client_order_id)}: asked for {coid!r}")
            return o
        return self._parse("order", parse, res)

    async def cancel_all(self) -> int:
        """Cancel every open order of the account; returns how many cancels the exchange queued."""
        res = await self._query("cancel_all")
        return self._parse("cancel_all", lambda: _int({"n": res}, "n", 0, INT64_MAX), res)

    async def account_state(self) -> dict:
        """The exchange's record of the account: ``position`` (lots), ``fills``, ``open_orders``,
        ``coids_received`` ({coid: times received}), ``duplicate_coids`` (for tests; only checked to be an
        object)."""
        res = await self._query("account")
        return self._parse("account", lambda: _obj(res, "account"), res)

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
            self.welcome = await asyncio.wait_for(self._welcome_fut, self.timeout_s)   # QueryError if malformed
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
        try:
            msg = _obj(orjson.loads(line), "message")
            t = msg.get("type")
            if t == "report":
                rep = decode_report(msg, self.bounds)
                if self._holding:
                    self._held.append((1, rep))
                elif self.on_report is not None:
                    self.on_report(rep)
            elif t == "answer" or t == "error":
                qid = msg.get("id")
                if t == "error" and qid is None:             # a request without id (submit, cancel) refused
                    self.request_errors += 1
                    if self.request_errors <= MAX_MALFORMED_WARNINGS or self.request_errors % 1000 == 0:
                        log.warning("the exchange refused a request (%d so far): %s", self.request_errors,
                                    _short(msg.get("error"), 200))
                    return
                fut = self._pending.get(qid) if type(qid) is int else None
                if fut is None:
                    raise MalformedMessage(f"id = {_short(qid)}: no query of ours has this id")
                if fut.done():
                    return                                   # timed out already
                if t == "answer":
                    if "result" not in msg:
                        raise MalformedMessage("answer without result")
                    fut.set_result(msg["result"])
                else:
                    err = msg.get("error")
                    fut.set_exception(QueryError(err[:MAX_TEXT_LEN] if type(err) is str else _short(err)))
            elif t == "welcome":
                fut = self._welcome_fut
                if fut is None or fut.done():
                    raise MalformedMessage("welcome without hello")
                try:
                    fut.set_result(_welcome(msg))
                except MalformedMessage as exc:
                    fut.set_exception(QueryError(f"malformed welcome: {exc}"))
                    raise
            elif t == "end_of_data":
                log.warning("the exchange's market data ended at %s", _short(msg.get("ts_ns")))
            else:
                raise MalformedMessage(f"type = {_short(t)}: not a message type")
        except (ValueError, MalformedMessage) as exc:          # orjson.JSONDecodeError is a ValueError
            self._bad_message(line, exc)

    def _bad_message(self, line: bytes, exc: Exception) -> None:
        """Count and log (bounded) a message from the venue that breaks the protocol; it is skipped."""
        self.malformed_messages += 1
        n = self.malformed_messages
        if n <= MAX_MALFORMED_WARNINGS or n % 1000 == 0:
            log.warning("malformed message from %s:%d skipped (%d so far): %s; line %s", self.host, self.port,
                        n, exc, _short(line[:200], 120))

    def _parse(self, op: str, parse: Callable, res):
        """``parse()`` an answer; a malformed one is counted, logged and raised as QueryError."""
        try:
            return parse()
        except MalformedMessage as exc:
            self._bad_message(orjson.dumps(res)[:200] if res is not None else b"null", exc)
            raise QueryError(f"malformed {op} answer: {exc}") from None

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
