"""User data: Binance execution events -> :mod:`mmcore.execution` reports; the USDⓈ-M listenKey stream.

Events (untrusted: every field is type-checked and bounded; a malformed event raises
:class:`~mmcore.venues.common.MalformedMessage`, which the caller counts and logs, never crashes on):

- spot ``executionReport`` (https://developers.binance.com/docs/binance-spot-api-docs/user-data-stream, "Order
  Update"): ``s`` symbol, ``c`` client order id (on CANCELED the cancel's id, ``C`` the order's), ``S`` side, ``x``
  execution type (NEW, CANCELED, REPLACED, REJECTED, TRADE, EXPIRED, TRADE_PREVENTION), ``X`` order status, ``i``
  order id, ``q`` order qty, ``z`` cumulative filled, ``l`` last filled qty, ``L`` last price, ``n`` commission,
  ``N`` commission asset (spot charges the *received* asset: base on a buy, quote on a sell), ``T`` transaction
  time (ms), ``t`` trade id, ``m`` maker.
- USDⓈ-M ``ORDER_TRADE_UPDATE`` (https://developers.binance.com/docs/derivatives/usds-margined-futures/user-data-streams/Event-Order-Update):
  the same letters inside ``o`` (``x`` NEW / CANCELED / CALCULATED / EXPIRED / TRADE / AMENDMENT), commission in the
  margin asset.

Reports: NEW -> OrderAccepted; TRADE -> OrderFilled (``price`` = L in ticks, ``qty`` = l in lots, ``fee`` in the
quote currency: a base-asset commission is converted at the fill price; another asset (BNB) is kept as its number
and counted); CANCELED -> OrderCanceled (remaining = q - z); EXPIRED -> OrderExpired; REJECTED -> OrderRejected;
USDⓈ-M AMENDMENT -> OrderAmended (``price`` = p, ``qty`` = q: the order after ``order.modify``, ours or another
session's; delivered every time, the order manager ignores a copy of what it already applied).

:class:`Dedupe` books each fill once per ``(orderId, tradeId)`` and each acceptance / final report once per client
order id, so the duplicated reports of a reconnect (or the emulator's ``duplicate_reports`` fault) are dropped;
reordered reports (``reorder_reports``) are tolerated: a fill of an order not yet accepted first produces its
OrderAccepted.

USDⓈ-M user data (:class:`ListenKeyStream`): a listenKey from the WebSocket API's ``userDataStream.start``
(USER_STREAM: ``apiKey`` only), kept alive with ``userDataStream.ping`` every ``keepalive_s`` (Binance: a key lives
60 minutes after the last keep-alive, "it's recommended to send a ping about every 60 minutes"; we default to 30),
events on ``/private/ws?listenKey=K`` (the routed private endpoint of the 2026-03-06 notice). ``listenKeyExpired``
or a lost stream -> a new key, a new connection, then ``on_reconnect`` (the session's recovery) because events may
have been missed. https://developers.binance.com/docs/derivatives/usds-margined-futures/user-data-streams
"""
from __future__ import annotations

import asyncio
import logging
import random
from collections import OrderedDict
from decimal import Decimal, InvalidOperation
from typing import Awaitable, Callable

import orjson
from picows import WSError, WSListener, WSMsgType, ws_connect

from mmcore.aio import raise_if_cancelled, wait_within
from mmcore.execution import (BUY, SELL, OrderAccepted, OrderAmended, OrderAmendRejected, OrderCanceled,
                              OrderCancelRejected, OrderExpired, OrderFilled, OrderRejected, VenueOrder)
from mmcore.venues.common import INT64_MAX, MAX_ID_LEN, MalformedMessage, QueryError
from mmcore.venues.ratelimit import sanitize_message

log = logging.getLogger("mmcore.binance.user_data")

MS = 1_000_000
MAX_MS = INT64_MAX // MS
MAX_DEC_LEN = 48
MAX_FEE = Decimal(10) ** 15
#: Binance order statuses -> VenueOrder statuses (EXPIRED_IN_MATCH: expired by self-trade prevention;
#: PENDING_CANCEL is still open).
STATUS = {"NEW": "NEW", "PARTIALLY_FILLED": "PARTIALLY_FILLED", "FILLED": "FILLED", "CANCELED": "CANCELED",
          "PENDING_CANCEL": "NEW", "REJECTED": "REJECTED", "EXPIRED": "EXPIRED", "EXPIRED_IN_MATCH": "EXPIRED",
          "PENDING_NEW": "PENDING_NEW"}
_SIDE = {"BUY": BUY, "SELL": SELL}


def _short(v, n: int = 60) -> str:
    r = repr(v)
    return r if len(r) <= n else r[:n] + "..."


def dec(v, name: str) -> Decimal:
    """A Binance decimal string (at most 48 characters, finite, >= 0). Raises MalformedMessage."""
    if type(v) is not str or not 0 < len(v) <= MAX_DEC_LEN:
        raise MalformedMessage(f"{name} = {_short(v)}: expected a decimal string")
    try:
        d = Decimal(v)
    except InvalidOperation:
        raise MalformedMessage(f"{name} = {_short(v)}: expected a decimal string") from None
    if not d.is_finite() or d < 0:
        raise MalformedMessage(f"{name} = {_short(v)}: expected a finite decimal >= 0")
    return d


def units(v, unit: Decimal, hi: int, name: str, lo: int = 0) -> int:
    """A decimal string on the grid ``unit`` -> integer units in ``[lo, hi]``. Raises MalformedMessage."""
    d = dec(v, name)
    if d > unit * hi:                               # before dividing: a huge value cannot overflow the context
        raise MalformedMessage(f"{name} = {_short(v)}: above {hi} units of {unit}")
    try:
        q, r = divmod(d, unit)
    except ArithmeticError:
        raise MalformedMessage(f"{name} = {_short(v)}: not a usable decimal") from None
    if r != 0:
        raise MalformedMessage(f"{name} = {_short(v)}: not a multiple of {unit}")
    n = int(q)
    if not lo <= n <= hi:
        raise MalformedMessage(f"{name} = {_short(v)}: outside [{lo}, {hi}] units of {unit}")
    return n


def integer(m: dict, key: str, lo: int = 0, hi: int = INT64_MAX) -> int:
    v = m.get(key)
    if type(v) is not int or not lo <= v <= hi:
        raise MalformedMessage(f"{key} = {_short(v)}: expected an integer in [{lo}, {hi}]")
    return v


def ident(m: dict, key: str) -> str:
    v = m.get(key)
    if type(v) is not str or not 0 < len(v) <= MAX_ID_LEN:
        raise MalformedMessage(f"{key} = {_short(v)}: expected a string of 1 to {MAX_ID_LEN} characters")
    return v


def side_of(m: dict, key: str = "S") -> int:
    s = _SIDE.get(m.get(key))
    if s is None:
        raise MalformedMessage(f"{key} = {_short(m.get(key))}: expected BUY or SELL")
    return s


def ms_ns(m: dict, key: str) -> int:
    return integer(m, key, 0, MAX_MS) * MS


class Parser:
    """Converts one symbol's Binance order / trade JSON into reports (instrument ``inst``; ``spot`` market).

    ``foreign_fee_assets`` counts commissions in an asset that is neither base nor quote (kept as is)."""

    def __init__(self, inst, spot: bool):
        self.inst = inst
        self.spot = spot
        self.tick = inst.tick_size
        self.lot = inst.lot_size
        self.max_px = inst.max_price_ticks
        self.max_qty = inst.max_qty_lots
        self.foreign_fee_assets = 0

    def price(self, v, name: str, lo: int = 1) -> int:
        return units(v, self.tick, self.max_px, name, lo)

    def qty(self, v, name: str, lo: int = 0) -> int:
        return units(v, self.lot, self.max_qty, name, lo)

    def fee(self, n, asset, price_ticks: int) -> Decimal:
        f = dec(n, "n") if n not in (None, "0") else Decimal(0)
        if f > MAX_FEE:
            raise MalformedMessage(f"n = {_short(n)}: above {MAX_FEE}")
        if f == 0 or asset == self.inst.quote:
            return f
        if asset == self.inst.base:
            return f * self.inst.price_of(price_ticks)
        self.foreign_fee_assets += 1
        return f

    def order_event(self, o: dict) -> tuple[int, str, list]:
        """``(orderId, client order id, reports)`` of an executionReport / ORDER_TRADE_UPDATE ``o`` object."""
        x = o.get("x")
        oid = integer(o, "i")
        ts = ms_ns(o, "T") if "T" in o else ms_ns(o, "E")
        if x == "CANCELED" and self.spot and o.get("C"):
            coid = ident(o, "C")
        else:
            coid = ident(o, "c")
        if x == "NEW":
            return oid, coid, [OrderAccepted(ts, coid, str(oid))]
        if x == "TRADE":
            px = self.price(o.get("L"), "L")
            q = self.qty(o.get("l"), "l", 1)
            tid = integer(o, "t", -INT64_MAX, INT64_MAX)
            maker = o.get("m")
            if type(maker) is not bool:
                raise MalformedMessage(f"m = {_short(maker)}: expected true or false")
            return oid, coid, [OrderFilled(ts, coid, tid, side_of(o), px, q, self.fee(o.get("n"), o.get("N"), px),
                                           maker)]
        if x in ("CANCELED", "EXPIRED", "REJECTED"):
            rem = max(0, self.qty(o.get("q"), "q") - self.qty(o.get("z"), "z"))
            if x == "CANCELED":
                return oid, coid, [OrderCanceled(ts, coid, rem)]
            if x == "EXPIRED":
                return oid, coid, [OrderExpired(ts, coid, rem)]
            r = o.get("r")
            return oid, coid, [OrderRejected(ts, coid, str(r)[:200] if isinstance(r, str) else "rejected",
                                             f"BINANCE:{r}" if isinstance(r, str) else "")]
        if x == "AMENDMENT":                       # USDⓈ-M order.modify applied (by us, or by another session)
            return oid, coid, [OrderAmended(ts, coid, self.price(o.get("p"), "p"), self.qty(o.get("q"), "q", 1))]
        return oid, coid, []                       # REPLACED, TRADE_PREVENTION, CALCULATED: nothing

    def venue_order(self, m: dict) -> VenueOrder:
        """An ``order.status`` / ``openOrders`` item -> VenueOrder."""
        status = STATUS.get(m.get("status"))
        if status is None:
            raise MalformedMessage(f"status = {_short(m.get('status'))}: not a Binance order status")
        qty = self.qty(m.get("origQty"), "origQty", 1)
        filled = self.qty(m.get("executedQty"), "executedQty")
        if filled > qty:
            raise MalformedMessage(f"executedQty {m.get('executedQty')} above origQty {m.get('origQty')}")
        return VenueOrder(ident(m, "clientOrderId"), side_of(m, "side"), self.price(m.get("price"), "price"), qty,
                          filled, status, str(integer(m, "orderId")), ms_ns(m, "time") if "time" in m else 0)

    def trade(self, m: dict, coid: str) -> OrderFilled:
        """A ``myTrades`` / ``userTrades`` item (its order's client id ``coid``) -> OrderFilled."""
        px = self.price(m.get("price"), "price")
        if self.spot:
            buyer = m.get("isBuyer")
            maker = m.get("isMaker")
        else:
            buyer = m.get("buyer")
            maker = m.get("maker")
        if type(buyer) is not bool or type(maker) is not bool:
            raise MalformedMessage("isBuyer / isMaker: expected true or false")
        return OrderFilled(ms_ns(m, "time"), coid, integer(m, "id", -INT64_MAX, INT64_MAX), BUY if buyer else SELL,
                           px, self.qty(m.get("qty"), "qty", 1),
                           self.fee(m.get("commission"), m.get("commissionAsset"), px), maker)


class _Bounded:
    """An insertion-ordered set holding at most ``cap`` items (the oldest are forgotten)."""

    __slots__ = ("d", "cap")

    def __init__(self, cap: int):
        self.d: OrderedDict = OrderedDict()
        self.cap = cap

    def add(self, k) -> bool:
        """True if ``k`` is new (and adds it)."""
        if k in self.d:
            return False
        self.d[k] = None
        if len(self.d) > self.cap:
            self.d.popitem(last=False)
        return True

    def __contains__(self, k) -> bool:
        return k in self.d


class Dedupe:
    """Which reports were delivered already (see the module docstring). ``duplicates`` counts drops."""

    def __init__(self, cap: int = 100_000):
        self.fills = _Bounded(cap)
        self.accepted = _Bounded(cap)
        self.final = _Bounded(cap)
        self.duplicates = 0

    def admit(self, rep, order_id: int | None = None) -> list:
        """The reports to deliver for ``rep`` (``[]`` for a duplicate; ``[OrderAccepted, fill]`` for a fill of an
        order not yet accepted)."""
        t = type(rep)
        coid = rep.client_order_id
        if t is OrderFilled:
            if not self.fills.add((order_id if order_id is not None else coid, rep.trade_id)):
                self.duplicates += 1
                return []
            if coid not in self.accepted and coid not in self.final:
                self.accepted.add(coid)
                return [OrderAccepted(rep.ts_ns, coid, str(order_id) if order_id is not None else None), rep]
            return [rep]
        if t is OrderAccepted:
            if coid in self.final or not self.accepted.add(coid):
                self.duplicates += 1
                return []
            return [rep]
        if t is OrderCancelRejected or t is OrderAmended or t is OrderAmendRejected:
            return [rep]                             # not final states: always delivered (the engine is idempotent)
        if not self.final.add(coid):
            self.duplicates += 1
            return []
        return [rep]


class _StreamListener(WSListener):
    def __init__(self, owner: "ListenKeyStream"):
        self.owner = owner

    def on_ws_frame(self, transport, frame):
        t = frame.msg_type
        if t == WSMsgType.TEXT:
            self.owner._on_text(frame.get_payload_as_bytes())
        elif t == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()

    def on_ws_disconnected(self, transport):
        self.owner._on_lost(self)


class ListenKeyStream:
    """USDⓈ-M user data over a listenKey (see the module docstring).

    Parameters
    ----------
    wsapi : WsApi
        The order-entry connection (``userDataStream.start`` / ``ping`` go over it).
    private_url : str
        ``wss://fstream.binance.com/private/ws`` (or the endpoint-mapped URL); ``?listenKey=K`` is appended.
    on_event : callable
        ``on_event(event: dict)`` for each event but ``listenKeyExpired``.
    on_reconnect : async callable, optional
        Awaited after every connection but the first (events may have been missed: the session recovers).
    keepalive_s : float
        Keep-alive period (default 1800 s).
    """

    def __init__(self, wsapi, private_url: str, on_event: Callable[[dict], None],
                 on_reconnect: Callable[[], Awaitable[None]] | None = None, keepalive_s: float = 1800.0,
                 timeout_s: float = 10.0, backoff_initial_s: float = 0.2, backoff_max_s: float = 30.0):
        self.wsapi = wsapi
        self.private_url = private_url
        self.on_event = on_event
        self.on_reconnect = on_reconnect
        self.keepalive_s = keepalive_s
        self.timeout_s = timeout_s
        self.backoff_initial_s, self.backoff_max_s = backoff_initial_s, backoff_max_s
        self.listen_key: str | None = None
        self.connected = False
        self.counters = dict.fromkeys(("connects", "disconnects", "expired", "keepalives", "keepalive_failures",
                                       "malformed", "events"), 0)
        self._transport = None
        self._listener = None
        self._lost: asyncio.Future | None = None
        self._first = asyncio.Event()
        self._closing = False
        self._rng = random.Random()

    async def wait_connected(self, timeout: float) -> None:
        """Wait for the first connection (TimeoutError)."""
        await wait_within(self._first.wait(), timeout)

    async def run(self) -> None:
        """Key, connect, keep alive; renew and reconnect until :meth:`close`."""
        delay = self.backoff_initial_s
        first = True
        while not self._closing:
            raise_if_cancelled()
            keep = None
            try:
                res = await self.wsapi.call("userDataStream.start", {}, api_key=True)
                key = res.get("listenKey") if isinstance(res, dict) else None
                if type(key) is not str or not 0 < len(key) <= 128 or not key.isalnum():
                    raise QueryError("userDataStream.start: no listenKey in the answer")
                self.listen_key = key
                self._lost = asyncio.get_running_loop().create_future()
                t, listener = await wait_within(
                    ws_connect(lambda: _StreamListener(self), f"{self.private_url}?listenKey={key}",
                               websocket_handshake_timeout=self.timeout_s, enable_auto_pong=True), self.timeout_s)
                self._transport, self._listener = t, listener
                self.connected = True
                self.counters["connects"] += 1
                log.info("USDⓈ-M user-data stream connected")
                keep = asyncio.get_running_loop().create_task(self._keepalive())
                if not first and self.on_reconnect is not None:
                    await self.on_reconnect()
                first = False
                self._first.set()
                delay = self.backoff_initial_s
                await self._lost
            except (OSError, ConnectionError, TimeoutError, asyncio.TimeoutError, WSError, QueryError) as exc:
                if self._closing:
                    break
                log.warning("USDⓈ-M user-data stream: %s: %s; retrying in %.2f s", type(exc).__name__,
                            sanitize_message(str(exc)), delay)
                await asyncio.sleep(delay * (0.5 + 0.5 * self._rng.random()))
                delay = min(delay * 2, self.backoff_max_s)
            finally:
                if keep is not None:
                    keep.cancel()
                self._drop()

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(self.keepalive_s)
            try:
                await self.wsapi.call("userDataStream.ping", {"listenKey": self.listen_key}, api_key=True)
                self.counters["keepalives"] += 1
            except (OSError, ConnectionError, TimeoutError, QueryError) as exc:
                self.counters["keepalive_failures"] += 1
                log.warning("listenKey keep-alive failed: %s", sanitize_message(str(exc)))
                if isinstance(exc, QueryError) and getattr(getattr(exc, "outcome", None), "code", None) == -1125:
                    self._drop()                       # the key is gone: renew

    def close(self) -> None:
        self._closing = True
        self._drop()
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)

    def _drop(self) -> None:
        if self._transport is not None:
            try:
                self._transport.disconnect()
            except Exception:                         # noqa: BLE001
                pass

    def _on_lost(self, listener) -> None:
        if listener is not self._listener:
            return
        self._listener = None
        self._transport = None
        if self.connected:
            self.counters["disconnects"] += 1
        self.connected = False
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)

    def _on_text(self, data: bytes) -> None:
        try:
            ev = orjson.loads(data)
        except orjson.JSONDecodeError:
            ev = None
        if type(ev) is dict and "stream" in ev and type(ev.get("data")) is dict:
            ev = ev["data"]
        if type(ev) is not dict or type(ev.get("e")) is not str:
            self.counters["malformed"] += 1
            if self.counters["malformed"] <= 20:
                log.warning("malformed user-data frame skipped: %s", sanitize_message(_short(data[:200], 120)))
            return
        if ev["e"] == "listenKeyExpired":
            self.counters["expired"] += 1
            log.warning("listenKey expired: renewing the key and reconnecting the user-data stream")
            self._drop()
            return
        self.counters["events"] += 1
        try:
            self.on_event(ev)
        except Exception:                             # noqa: BLE001 - one event never ends the stream
            log.exception("user-data event handler failed")
