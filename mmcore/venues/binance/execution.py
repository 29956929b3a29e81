"""Binance execution (live mode): order entry over the WebSocket API, user data, queries for recovery.

:class:`BinanceExecution` is the execution side of a :class:`mmcore.venues.base.Venue`: one WebSocket API
connection (:class:`~mmcore.venues.binance.ws_api.WsApi`) shared by the per-symbol
:class:`BinanceExecutionClient` objects, the user-data stream (spot: on the same connection,
``userDataStream.subscribe.signature``; USDⓈ-M: :class:`~mmcore.venues.binance.user_data.ListenKeyStream`), REST
for what the WebSocket API lacks (:mod:`mmcore.venues.binance.rest`), the venue's RateLimiter.

Orders (https://developers.binance.com/docs/binance-spot-api-docs/websocket-api/trading-requests, "Place new
order"; https://developers.binance.com/docs/derivatives/usds-margined-futures/trade/websocket-api/New-Order):
post-only is spot ``type=LIMIT_MAKER`` (no timeInForce) and USDⓈ-M ``type=LIMIT timeInForce=GTX``; a non-post-only
order is ``type=LIMIT timeInForce=IOC``; ``newOrderRespType=ACK``; ``newClientOrderId`` = the engine's client order
id (``^[.A-Z:/a-z0-9_-]{1,36}$``). The request frame is built directly as bytes from pre-formatted static parts per
symbol (key, symbol, recvWindow), the price and quantity formatted from ticks / lots with integer arithmetic, and
signed (:mod:`mmcore.venues.binance.signing`). Cancel: ``order.cancel`` by ``origClientOrderId``.

Reports (``on_report(symbol, report)``, :mod:`mmcore.execution` types): an ``order.place`` answer 200 gives
OrderAccepted, an error gives OrderRejected (``POST_ONLY_REJECT`` for -2010 "would immediately match" / -5022, the
mapping of :mod:`mmcore.venues.binance.errors` otherwise); 5XX / timeout (execution status unknown) -> the order is
queried by client order id and the answer decides (accepted / rejected / left to recovery); a cancel answer gives
OrderCanceled or OrderCancelRejected. User-data events give fills, cancels, expiries; every report passes one
:class:`~mmcore.venues.binance.user_data.Dedupe` (answers and events report the same acceptance / cancel once).
Requests refused locally (fatal key error, 429 / 418 block, local order budget) give OrderRejected /
OrderCancelRejected at once (next loop iteration); a request while disconnected is dropped (counted, logged) and
the reconnect's recovery closes it.

Recovery: ``on_connect`` is awaited after every (re)connect of the WebSocket API and every reconnect of the USDⓈ-M
user-data stream (a new listenKey after ``listenKeyExpired`` included), with the user data already flowing;
reports that arrive meanwhile are held and delivered after it, in arrival order.
"""
from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass, fields
from decimal import Decimal

from mmcore.execution import (OrderAccepted, OrderAmended, OrderAmendRejected, OrderCanceled, OrderCancelRejected,
                              OrderExpired, OrderRejected, VenueOrder)
from mmcore.venues.binance.errors import FATAL_CODES, Action
from mmcore.venues.binance.rest import BinanceRest, rest_base
from mmcore.venues.binance.user_data import Dedupe, ListenKeyStream, Parser
from mmcore.venues.binance.ws_api import SPOT, USDM, WsApi, WsApiError, map_endpoint, ws_api_url
from mmcore.venues.common import MalformedMessage, QueryError
from mmcore.venues.ratelimit import ExchangeCallError, RateLimiter, sanitize_message

log = logging.getLogger("mmcore.binance.execution")

COID_RE = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")
_COID_MATCH = COID_RE.match
PRIVATE_URLS = {False: "wss://fstream.binance.com/private/ws", True: "wss://fstream.binancefuture.com/private/ws"}
MAX_WARNINGS = 20
MAX_TRADE_PAGES = 20
MAX_ORDER_IDS = 200_000


@dataclass(frozen=True)
class ExecSettings:
    """Knobs of the execution client (seconds unless named otherwise).

    ``recv_window_ms`` (config ``venue.recv_window_ms``), ``testnet`` (``venue.testnet``),
    ``reconnect_initial_s`` / ``reconnect_max_s`` (``venue.reconnect_*``), ``timeout_s`` (request timeout),
    ``keepalive_s`` (USDⓈ-M listenKey keep-alive), ``unknown_status_delay_s`` (wait before querying an order whose
    request got a 5XX / no answer), ``resync_min_interval_s`` (-1021 clock resyncs), ``start_timeout_s``.
    """

    recv_window_ms: int = 5000
    testnet: bool = False
    reconnect_initial_s: float = 0.2
    reconnect_max_s: float = 30.0
    timeout_s: float = 10.0
    keepalive_s: float = 1800.0
    unknown_status_delay_s: float = 0.2
    resync_min_interval_s: float = 5.0
    start_timeout_s: float = 30.0

    @classmethod
    def from_config(cls, config, **overrides) -> "ExecSettings":
        """From a :class:`mmcore.config.Config` (``venue.*`` keys), then ``overrides``."""
        v = {}
        for name in ("recv_window_ms", "testnet", "reconnect_initial_s", "reconnect_max_s"):
            val = config.get(f"venue.{name}")
            if val is not None:
                v[name] = val
        v.update(overrides)
        return cls(**v)

    @classmethod
    def of(cls, settings) -> "ExecSettings":
        """``settings`` as ExecSettings: itself, a mapping of field names, a Config, or None (defaults)."""
        if settings is None:
            return cls()
        if isinstance(settings, cls):
            return settings
        if isinstance(settings, dict):
            names = {f.name for f in fields(cls)}
            return cls(**{k: v for k, v in settings.items() if k in names})
        return cls.from_config(settings)


def _grid(step: Decimal) -> tuple[int, int]:
    step = step.normalize()
    d = max(0, -step.as_tuple().exponent)
    return d, int(step.scaleb(d))


def _fixed(v: int, d: int, p10: int) -> str:
    if not d:
        return str(v)
    q, r = divmod(v, p10)
    return f"{q}.{r:0{d}d}"


class BinanceExecutionClient:
    """Order entry and queries of one symbol (the :class:`mmcore.venues.base.ExecutionClient` protocol)."""

    def __init__(self, owner: "BinanceExecution", symbol: str, inst):
        self.owner = owner
        self.symbol = symbol
        self.inst = inst
        self.spot = owner.spot
        self.parser = Parser(inst, self.spot)
        self.dedupe = Dedupe()
        self.order_ids: dict[int, str] = {}          # orderId -> client order id (trades name only the orderId)
        self.counters = dict.fromkeys(("submitted", "canceled", "refused_locally", "dropped", "rejects",
                                       "post_only_rejects", "unknown_status", "malformed", "events", "amended",
                                       "amend_rejects"), 0)
        self._pd, pm = _grid(inst.tick_size)
        self._pm, self._pp10 = pm, 10 ** self._pd
        self._qd, qm = _grid(inst.lot_size)
        self._qm, self._qp10 = qm, 10 ** self._qd
        self._max_px, self._max_qty = inst.max_price_ticks, inst.max_order_lots
        self._px_cache: dict = {}                   # ticks -> price string (quotes repeat prices)
        self._qty_cache: dict = {}
        api = owner.wsapi
        key, rw = api.api_key, api.recv_window_ms
        # order.place, sorted signature payload: apiKey, newClientOrderId, newOrderRespType, price, quantity,
        # recvWindow, side, symbol, [timeInForce], timestamp, type
        if self.spot:
            po_tif, po_type = "", "LIMIT_MAKER"
        else:
            po_tif, po_type = "GTX", "LIMIT"
        self._p0 = f"apiKey={key}&newClientOrderId="
        self._p1 = "&newOrderRespType=ACK&price="
        self._p2 = f"&recvWindow={rw}&side="
        self._p3 = {True: (f"&symbol={symbol}&" + (f"timeInForce={po_tif}&" if po_tif else "") + "timestamp=",
                           f"&type={po_type}"),
                    False: (f"&symbol={symbol}&timeInForce=IOC&timestamp=", "&type=LIMIT")}
        self._j0 = '{"id":'
        self._j1 = f',"method":"order.place","params":{{"apiKey":"{key}","newClientOrderId":"'
        self._j3 = {True: (f'","recvWindow":{rw},"symbol":"{symbol}",' +
                           (f'"timeInForce":"{po_tif}",' if po_tif else "") + f'"type":"{po_type}","timestamp":'),
                    False: (f'","recvWindow":{rw},"symbol":"{symbol}","timeInForce":"IOC","type":"LIMIT",'
                            '"timestamp":')}
        self._c0 = f"apiKey={key}&origClientOrderId="
        self._c1 = f"&recvWindow={rw}&symbol={symbol}&timestamp="

    # --- order entry (non-blocking: the request is written before return) ---
    def submit(self, ts_ns: int, coid: str, side: int, price: int, qty: int, post_only: bool = True) -> None:
        """Send a new limit order (``price`` ticks, ``qty`` lots; post-only, else immediate-or-cancel). Raises
        nothing for venue trouble: refusals come back as OrderRejected."""
        api = self.owner.wsapi
        now = time.time_ns()
        # fast check (fatal key, connection, the limiter's order budget and blocks); the reason only when refused
        if api._unnoted:
            api.flush_notes()
        if api.fatal is not None or api._send is None or not api.limiter.can_send_order(now) or \
                not _COID_MATCH(coid) or side not in (1, -1) or not 0 < price <= self._max_px or \
                not 0 < qty <= self._max_qty:
            self._refused(coid, api.refusal("new_order", now) or "BAD_ORDER", now)
            return
        rid = api.next_id()
        px = self._px_cache.get(price)
        if px is None:
            px = self._px_cache[price] = _fixed(price * self._pm, self._pd, self._pp10)
            if len(self._px_cache) > 4096:
                self._px_cache.clear()
        q = self._qty_cache.get(qty)
        if q is None:
            q = self._qty_cache[qty] = _fixed(qty * self._qm, self._qd, self._qp10)
            if len(self._qty_cache) > 256:
                self._qty_cache.clear()
        s = "BUY" if side > 0 else "SELL"
        ts = now // 1_000_000 + api.offset_ms
        p3 = self._p3[post_only]
        sig = api.signer.sign(f"{self._p0}{coid}{self._p1}{px}&quantity={q}{self._p2}{s}{p3[0]}{ts}{p3[1]}"
                              .encode())
        data = (f'{self._j0}{rid}{self._j1}{coid}","newOrderRespType":"ACK","price":"{px}","quantity":"{q}",'
                f'"side":"{s}{self._j3[post_only]}{ts},"signature":"{sig}"}}}}').encode()
        api.send_request(rid, data, "order.place", "new_order", lambda m: self._placed(coid, m), now)
        self.counters["submitted"] += 1

    def cancel(self, ts_ns: int, coid: str) -> None:
        """Request the cancel of ``coid`` (``order.cancel`` by ``origClientOrderId``)."""
        api = self.owner.wsapi
        now = time.time_ns()
        why = api.refusal("cancel_order", now)
        if why is not None or not COID_RE.match(coid):
            self._cancel_refused(coid, why or "BAD_ID", now)
            return
        rid = api.next_id()
        ts = now // 1_000_000 + api.offset_ms
        sig = api.signer.sign(f"{self._c0}{coid}{self._c1}{ts}".encode())
        data = (f'{{"id":{rid},"method":"order.cancel","params":{{"apiKey":"{api.api_key}","origClientOrderId":'
                f'"{coid}","recvWindow":{api.recv_window_ms},"symbol":"{self.symbol}","timestamp":{ts},'
                f'"signature":"{sig}"}}}}').encode()
        api.send_request(rid, data, "order.cancel", "cancel_order", lambda m: self._cancel_answer(coid, m), now)
        self.counters["canceled"] += 1

    def cancel_replace(self, ts_ns: int, coid: str, new_coid: str, side: int, price: int, qty: int) -> None:
        """Spot only: cancel ``coid`` and place ``new_coid`` (post-only) in one ``order.cancelReplace``
        (``cancelReplaceMode=STOP_ON_FAILURE``: no new order when the cancel fails). Reports: OrderCanceled /
        OrderCancelRejected for ``coid``, OrderAccepted / OrderRejected for ``new_coid``; a 409 (partial success)
        reports each half from ``error.data``. https://developers.binance.com/docs/binance-spot-api-docs/websocket-api/trading-requests
        ("Cancel and replace order"). Raises NotImplementedError on USDⓈ-M (``order.modify`` keeps the client order
        id, which the engine's order model does not express)."""
        if not self.spot:
            raise NotImplementedError("cancel_replace: spot only (USDⓈ-M has order.modify)")
        api = self.owner.wsapi
        now = time.time_ns()
        why = api.refusal("new_order", now)
        if why is not None or not COID_RE.match(coid) or not COID_RE.match(new_coid) or \
                not 0 < price <= self._max_px or not 0 < qty <= self._max_qty or side not in (1, -1):
            self._refused(new_coid, why or "BAD_ORDER", now)
            return
        params = {"symbol": self.symbol, "cancelReplaceMode": "STOP_ON_FAILURE", "cancelOrigClientOrderId": coid,
                  "newClientOrderId": new_coid, "side": "BUY" if side > 0 else "SELL", "type": "LIMIT_MAKER",
                  "price": _fixed(price * self._pm, self._pd, self._pp10),
                  "quantity": _fixed(qty * self._qm, self._qd, self._qp10), "newOrderRespType": "ACK"}

        def answer(msg):
            t = time.time_ns()
            if msg is None:
                if api.connected:
                    self._unknown(coid, True)
                    self._unknown(new_coid, False)
                return
            if msg["status"] == 200:
                res = msg.get("result") if type(msg.get("result")) is dict else {}
                self._cancel_answer(coid, {"status": 200, "result": res.get("cancelResponse") or {}})
                self._placed(new_coid, {"status": 200, "result": res.get("newOrderResponse") or {}})
                return
            out = api.outcome_of(msg, True)
            err = msg.get("error") if type(msg.get("error")) is dict else {}
            data = err.get("data") if type(err.get("data")) is dict else None
            if data is None or out.action is Action.UNKNOWN_STATUS and msg["status"] != 409:
                if out.action is Action.UNKNOWN_STATUS:
                    self._unknown(coid, True)
                    self._unknown(new_coid, False)
                else:
                    self._emit(OrderCancelRejected(t, coid, out.reason))
                    self._emit(OrderRejected(t, new_coid, out.reason, out.report_code))
                return
            for half, c, ok_fn in (("cancel", coid, self._cancel_answer), ("newOrder", new_coid, self._placed)):
                r = data.get(f"{half}Result")
                body = data.get(f"{half}Response")
                if r == "SUCCESS":
                    ok_fn(c, {"status": 200, "result": body if type(body) is dict else {}})
                elif r == "FAILURE" and type(body) is dict:
                    ok_fn(c, {"status": 400, "error": body})
                elif r == "NOT_ATTEMPTED" and half == "newOrder":
                    self._emit(OrderRejected(t, c, "not attempted (the cancel failed)", "CANCEL_FAILED"))
        try:
            api.send("order.cancelReplace", params, answer, signed=True, endpoint="new_order")
        except (ConnectionError, WsApiError) as exc:
            self._refused(new_coid, "NOT_CONNECTED" if isinstance(exc, ConnectionError) else exc.outcome.report_code,
                          now)
            return
        self.counters["submitted"] += 1

    @property
    def supports_modify(self) -> bool:
        """True on USDⓈ-M (``order.modify``); spot has cancel-replace only."""
        return not self.spot

    def modify(self, ts_ns: int, coid: str, side: int, price: int, qty: int) -> None:
        """USDⓈ-M only: amend ``coid`` in place to ``price`` ticks and ``qty`` lots in all (``order.modify`` by
        ``origClientOrderId``; the client order id and the fills stay, the order loses its queue place).
        Reports: OrderAmended (the answer, and the user data's ``AMENDMENT``), OrderAmendRejected (refused: the
        order works as before; -5027 "No need to modify the order" included), or OrderCanceled when Binance
        cancels it instead (a GTX order amended to a price that would take, or a quantity <= its filled part).
        https://developers.binance.com/docs/derivatives/usds-margined-futures/trade/websocket-api/Modify-Order.
        An answer that does not come: the order is queried, and what the venue lists is reported. Spot has no
        in-place amend of the price (``supports_modify`` is False; it has cancel-replace,
        :meth:`cancel_replace`): there the request is refused locally, OrderAmendRejected ``NOT_SUPPORTED``, and
        nothing is sent."""
        api = self.owner.wsapi
        now = time.time_ns()
        why = "NOT_SUPPORTED" if self.spot else api.refusal("new_order", now)
        if why is not None or not COID_RE.match(coid) or not 0 < price <= self._max_px or \
                not 0 < qty <= self._max_qty or side not in (1, -1):
            self._amend_refused(coid, why or "BAD_ORDER", now)
            return
        params = {"symbol": self.symbol, "origClientOrderId": coid, "side": "BUY" if side > 0 else "SELL",
                  "price": _fixed(price * self._pm, self._pd, self._pp10),
                  "quantity": _fixed(qty * self._qm, self._qd, self._qp10)}

        def answer(msg):
            t = time.time_ns()
            if msg is None:
                if api.connected:
                    self.counters["unknown_status"] += 1
                    log.warning("%s: amend of %s: execution status unknown: querying the order", self.symbol,
                                coid[:40])
                    self.owner._spawn(self._resolve_modify(coid, price, qty))
                return
            if msg["status"] == 200:
                res = msg.get("result")
                try:
                    o = self.parser.venue_order(dict(res, clientOrderId=res.get("clientOrderId", coid)))
                except (MalformedMessage, TypeError, AttributeError) as exc:
                    self._malformed(res, exc)
                    self.owner._spawn(self._resolve_modify(coid, price, qty))
                    return
                self._emit_venue_order(t, coid, o)
                return
            out = api.outcome_of(msg, True)
            if out.action is Action.UNKNOWN_STATUS:
                self.counters["unknown_status"] += 1
                self.owner._spawn(self._resolve_modify(coid, price, qty))
                return
            self.counters["amend_rejects"] += 1
            self._emit(OrderAmendRejected(t, coid, out.reason, out.report_code))
        try:
            api.send("order.modify", params, answer, signed=True, endpoint="new_order")
        except (ConnectionError, WsApiError) as exc:
            self._amend_refused(coid, "NOT_CONNECTED" if isinstance(exc, ConnectionError)
                                else exc.outcome.report_code, now)
            return
        self.counters["amended"] += 1

    def _emit_venue_order(self, t: int, coid: str, o: VenueOrder) -> None:
        """Report what the venue says of an order after an amend: still working (OrderAmended with its price and
        quantity), or ended (canceled / expired: Binance cancels instead of amending in some cases)."""
        if o.status in ("NEW", "PARTIALLY_FILLED"):
            self._emit(OrderAmended(t, coid, o.price, o.qty))
        elif o.status == "CANCELED":
            self._emit(OrderCanceled(t, coid, o.qty - o.filled))
        elif o.status == "EXPIRED":
            self._emit(OrderExpired(t, coid, o.qty - o.filled))
        # FILLED: the fills come from user data / recovery

    async def _resolve_modify(self, coid: str, price: int, qty: int) -> None:
        answered, o = await self._query_order(coid, "the amend of ")
        if not answered:
            return
        now = time.time_ns()
        if o is None:
            self._emit(OrderAmendRejected(now, coid, "unknown order", "UNKNOWN_ORDER"))
        elif o.status in ("NEW", "PARTIALLY_FILLED") and (o.price, o.qty) != (price, qty):
            self._emit(OrderAmendRejected(now, coid, "not applied (the venue lists the order unchanged)",
                                          "UNKNOWN_STATUS"))
        else:
            self._emit_venue_order(now, coid, o)

    async def _query_order(self, coid: str, what: str = "") -> tuple[bool, VenueOrder | None]:
        """``(True, the venue's record or None)`` of ``coid``, asked up to 3 times with a growing delay after an
        answer that did not come; ``(False, None)`` (logged) when no query was answered: the next recovery
        reconciles the order."""
        delay = self.owner.settings.unknown_status_delay_s
        for attempt in range(3):
            await asyncio.sleep(delay * (attempt + 1))
            try:
                return True, await self.order(coid)
            except (ConnectionError, TimeoutError, QueryError) as exc:
                log.warning("%s: query of %s failed (%s)", self.symbol, coid[:40], sanitize_message(str(exc)))
        log.error("%s: the status of %s%s stays unknown; the next recovery reconciles it", self.symbol, what,
                  coid[:40])
        return False, None

    def _amend_refused(self, coid: str, why: str, now: int) -> None:
        if why == "NOT_CONNECTED":
            self.counters["dropped"] += 1
            log.warning("%s: not connected: amend of %s dropped", self.symbol, coid[:40])
        else:
            self.counters["refused_locally"] += 1
        asyncio.get_running_loop().call_soon(self._emit, OrderAmendRejected(now, coid, f"refused locally: {why}",
                                                                              why))

    def _refused(self, coid: str, why: str, now: int) -> None:
        if why == "NOT_CONNECTED":
            self.counters["dropped"] += 1
            log.warning("%s: not connected: order %s dropped (the reconnect's recovery closes it)", self.symbol,
                        coid[:40])
            return
        self.counters["refused_locally"] += 1
        if self.counters["refused_locally"] <= MAX_WARNINGS:
            log.warning("%s: order %s refused locally: %s", self.symbol, coid[:40], why)
        asyncio.get_running_loop().call_soon(self._emit, OrderRejected(now, coid, f"refused locally: {why}", why))

    def _cancel_refused(self, coid: str, why: str, now: int) -> None:
        if why == "NOT_CONNECTED":
            self.counters["dropped"] += 1
            log.warning("%s: not connected: cancel of %s dropped", self.symbol, coid[:40])
            return
        self.counters["refused_locally"] += 1
        asyncio.get_running_loop().call_soon(self._emit, OrderCancelRejected(now, coid, f"refused locally: {why}"))

    # --- answers ---
    def _placed(self, coid: str, msg) -> None:
        now = time.time_ns()
        if msg is None:
            if self.owner.wsapi.connected:          # timed out: the execution status is unknown
                self._unknown(coid, False)
            return                                  # connection lost: the reconnect's recovery decides
        if msg["status"] == 200:
            res = msg.get("result")
            oid = res.get("orderId") if type(res) is dict else None
            if type(oid) is int and 0 <= oid < 1 << 63:
                self._remember(oid, coid)
            ts = res.get("transactTime") if type(res) is dict else None
            ts = ts * 1_000_000 if type(ts) is int and 0 < ts < 1 << 42 else now
            self._emit(OrderAccepted(ts, coid, str(oid) if oid is not None else None))
            return
        out = self.owner.wsapi.outcome_of(msg, True)
        if out.action is Action.UNKNOWN_STATUS:
            self._unknown(coid, False)
            return
        self.counters["rejects"] += 1
        if out.action is Action.POST_ONLY_REJECT:
            self.counters["post_only_rejects"] += 1
        self._emit(OrderRejected(now, coid, out.reason, out.report_code))

    def _cancel_answer(self, coid: str, msg) -> None:
        now = time.time_ns()
        if msg is None:
            if self.owner.wsapi.connected:
                self._unknown(coid, True)
            return
        if msg["status"] == 200:
            res = msg.get("result")
            try:
                o = self.parser.venue_order(dict(res, clientOrderId=res.get("origClientOrderId", coid)))
                rem = o.qty - o.filled
            except (MalformedMessage, TypeError, AttributeError) as exc:
                self._malformed(res, exc)
                rem = 0
            self._emit(OrderCanceled(now, coid, rem))
            return
        out = self.owner.wsapi.outcome_of(msg, True)
        if out.action is Action.UNKNOWN_STATUS:
            self._unknown(coid, True)
            return
        self._emit(OrderCancelRejected(now, coid, out.reason))

    def _unknown(self, coid: str, cancel: bool) -> None:
        self.counters["unknown_status"] += 1
        log.warning("%s: %s of %s: execution status unknown: querying the order", self.symbol,
                    "cancel" if cancel else "order", coid[:40])
        self.owner._spawn(self._resolve(coid, cancel))

    async def _resolve(self, coid: str, cancel: bool) -> None:
        answered, o = await self._query_order(coid)
        if not answered:
            return
        now = time.time_ns()
        if o is None:
            if not cancel:
                self._emit(OrderRejected(now, coid, "not placed (the venue does not know it)", "UNKNOWN_STATUS"))
            else:
                self._emit(OrderCancelRejected(now, coid, "unknown order"))
            return
        if o.status in ("NEW", "PARTIALLY_FILLED", "PENDING_NEW"):
            self._emit(OrderAccepted(now, coid, o.venue_order_id))
            if cancel:
                self._emit(OrderCancelRejected(now, coid, "the order is still open"))
            return
        if o.status == "REJECTED":
            self._emit(OrderRejected(now, coid, "rejected", "BINANCE:REJECTED"))
            return
        self._emit(OrderAccepted(now, coid, o.venue_order_id))
        if o.status == "CANCELED":
            self._emit(OrderCanceled(now, coid, o.qty - o.filled))
        elif o.status == "EXPIRED":
            self._emit(OrderExpired(now, coid, o.qty - o.filled))
        # FILLED: the fills come from user data / recovery

    # --- user data ---
    def on_order_event(self, o: dict) -> None:
        """One executionReport / ORDER_TRADE_UPDATE ``o`` of this symbol."""
        self.counters["events"] += 1
        try:
            oid, coid, reps = self.parser.order_event(o)
        except (ValueError, ArithmeticError, TypeError) as exc:     # MalformedMessage is a ValueError
            self._malformed(o, exc)
            return
        self._remember(oid, coid)
        for rep in reps:
            self._emit(rep, oid)

    def _remember(self, oid: int, coid: str) -> None:
        ids = self.order_ids
        ids[oid] = coid
        if len(ids) > MAX_ORDER_IDS:                # bounded: the oldest half is forgotten (queries re-learn them)
            for k in list(ids)[:MAX_ORDER_IDS // 2]:
                del ids[k]

    def _emit(self, rep, order_id: int | None = None) -> None:
        for r in self.dedupe.admit(rep, order_id):
            self.owner._emit(self.symbol, r)

    def _malformed(self, obj, exc) -> None:
        self.counters["malformed"] += 1
        self.owner.malformed += 1
        if self.counters["malformed"] <= MAX_WARNINGS:
            log.warning("%s: malformed venue message skipped: %s; %s", self.symbol, exc,
                        sanitize_message(repr(obj)[:200]))

    # --- queries ---
    async def _q(self, method: str, params: dict, endpoint: str):
        return await self.owner.wsapi.call(method, params, signed=True, endpoint=endpoint)

    async def _rest(self, make):
        api = self.owner.wsapi
        if api.fatal is not None:                   # a refused key is never used again
            raise WsApiError("REST", api.fatal)
        try:
            return await make()
        except ExchangeCallError as exc:
            code = getattr(exc, "code", None)
            if code in FATAL_CODES and api.fatal is None:
                api._on_error({"status": getattr(exc, "status", None) or 400,
                               "error": {"code": code, "msg": getattr(exc, "msg", "")}}, "REST")
            raise QueryError(sanitize_message(str(exc))) from None
        except Exception as exc:                    # noqa: BLE001 - aiohttp errors: a network failure
            if isinstance(exc, (ConnectionError, TimeoutError, asyncio.TimeoutError)):
                raise
            if type(exc).__module__.startswith("aiohttp"):
                raise ConnectionError(f"REST: {type(exc).__name__}") from None
            raise

    def _list(self, res, what: str) -> list:
        if type(res) is not list:
            self._malformed(res, MalformedMessage(f"{what}: expected a list"))
            raise QueryError(f"malformed {what} answer")
        return res

    async def open_orders(self) -> list[VenueOrder]:
        """The symbol's open orders (spot: ``openOrders.status``; USDⓈ-M: ``GET /fapi/v1/openOrders``).
        Raises ConnectionError, TimeoutError, QueryError (also for a malformed answer)."""
        if self.spot:
            res = await self._q("openOrders.status", {"symbol": self.symbol}, "open_orders")
        else:
            res = await self._rest(lambda: self.owner.rest.open_orders(self.symbol))
        out = []
        for m in self._list(res, "openOrders"):
            try:
                o = self.parser.venue_order(m)
            except (MalformedMessage, AttributeError) as exc:
                self._malformed(m, exc)
                raise QueryError(f"malformed open order: {exc}") from None
            if o.venue_order_id is not None:
                self._remember(int(o.venue_order_id), o.client_order_id)
            out.append(o)
        return out

    async def order(self, coid: str) -> VenueOrder | None:
        """The venue's record of ``coid`` (``order.status``), or None (-2013). Raises like :meth:`open_orders`."""
        try:
            res = await self._q("order.status", {"symbol": self.symbol, "origClientOrderId": coid}, "query_order")
        except WsApiError as exc:
            if exc.outcome.action is Action.UNKNOWN_ORDER:
                return None
            raise
        try:
            o = self.parser.venue_order(res if type(res) is dict else {})
        except MalformedMessage as exc:
            self._malformed(res, exc)
            raise QueryError(f"malformed order.status answer: {exc}") from None
        if o.client_order_id != coid:
            raise QueryError(f"order.status answered for another order ({o.client_order_id[:40]!r})")
        return o

    async def _coid_of(self, oid: int) -> str | None:
        c = self.order_ids.get(oid)
        if c is not None:
            return c
        try:
            res = await self._q("order.status", {"symbol": self.symbol, "orderId": oid}, "query_order")
        except WsApiError as exc:
            if exc.outcome.action is Action.UNKNOWN_ORDER:
                return None
            raise
        c = res.get("clientOrderId") if type(res) is dict else None
        if type(c) is str and 0 < len(c) <= 64:
            self._remember(oid, c)
            return c
        return None

    async def fills_since(self, ts_ns: int) -> list:
        """The symbol's fills at or after ``ts_ns`` (spot ``myTrades``; USDⓈ-M ``GET /fapi/v1/userTrades``),
        oldest first. Raises like :meth:`open_orders`."""
        start = max(0, ts_ns // 1_000_000)
        seen: dict = {}
        for _ in range(MAX_TRADE_PAGES):
            if self.spot:
                res = await self._q("myTrades", {"symbol": self.symbol, "startTime": start, "limit": 1000},
                                    "my_trades")
            else:
                res = await self._rest(lambda: self.owner.rest.my_trades(self.symbol, start))
            items = self._list(res, "myTrades")
            last = start
            for m in items:
                try:
                    oid = m.get("orderId") if type(m) is dict else None
                    if type(oid) is not int:
                        raise MalformedMessage("orderId: expected an integer")
                    coid = await self._coid_of(oid)
                    if coid is None:
                        continue
                    f = self.parser.trade(m, coid)
                except MalformedMessage as exc:
                    self._malformed(m, exc)
                    raise QueryError(f"malformed trade: {exc}") from None
                seen[(oid, f.trade_id)] = f
                last = max(last, f.ts_ns // 1_000_000)
            if len(items) < 1000 or last <= start:
                break
            start = last
        return sorted(seen.values(), key=lambda f: (f.ts_ns, f.trade_id))

    async def cancel_all(self) -> int:
        """Cancel every open order of the symbol; returns how many were open."""
        opened = await self.open_orders()
        for o in opened:
            self.cancel(time.time_ns(), o.client_order_id)
        return len(opened)


class BinanceExecution:
    """Execution side of a Binance venue (see the module docstring).

    Parameters
    ----------
    venue : str
        ``binance_spot`` or ``binance_usdm``.
    symbols : iterable of str
    instruments : dict
        ``symbol -> Instrument`` (:func:`mmcore.instruments.load_instrument`).
    credentials : Credentials
    settings : ExecSettings, dict, Config or None
    on_report : callable
        ``on_report(symbol, report)``.
    on_connect : async callable, optional
        ``await on_connect()`` after every (re)connect (recovery), see the module docstring.
    on_disconnect : callable, optional
        Called when the WebSocket API connection is lost.
    endpoint : str, optional
        ``http://127.0.0.1:PORT``: every URL on that host (the emulator).
    limiter : RateLimiter, optional
        Default: ``RateLimiter.from_config(venue)``.
    """

    def __init__(self, venue: str, symbols, instruments: dict, credentials, settings, on_report, on_connect=None,
                 on_disconnect=None, endpoint: str | None = None, limiter: RateLimiter | None = None):
        if venue not in (SPOT, USDM):
            raise ValueError(f"venue {venue!r}: expected {SPOT} or {USDM}")
        self.name = venue
        self.spot = venue == SPOT
        self.symbols = tuple(symbols)
        self.settings = s = ExecSettings.of(settings)
        self.on_report = on_report
        self.on_connect = on_connect
        self.on_disconnect = on_disconnect
        self.limiter = limiter or RateLimiter.from_config(venue)
        self.malformed = 0
        self.recoveries = 0
        self.wsapi = WsApi(ws_api_url(venue, s.testnet, endpoint), credentials, self.limiter,
                           recv_window_ms=s.recv_window_ms, timeout_s=s.timeout_s,
                           on_event=self._on_user_event if self.spot else None, on_open=self._on_open,
                           on_lost=self._on_lost, backoff_initial_s=s.reconnect_initial_s,
                           backoff_max_s=s.reconnect_max_s, resync_min_interval_s=s.resync_min_interval_s,
                           usdm_503_rule=not self.spot)
        self.rest = BinanceRest(venue, credentials, self.limiter, rest_base(venue, s.testnet, endpoint),
                                recv_window_ms=s.recv_window_ms, timeout_s=s.timeout_s,
                                offset_ms=lambda: self.wsapi.offset_ms)
        self.user: ListenKeyStream | None = None
        if not self.spot:
            self.user = ListenKeyStream(self.wsapi, map_endpoint(PRIVATE_URLS[bool(s.testnet)], endpoint),
                                        self._on_user_event, on_reconnect=self._recover, keepalive_s=s.keepalive_s,
                                        timeout_s=s.timeout_s, backoff_initial_s=s.reconnect_initial_s,
                                        backoff_max_s=s.reconnect_max_s)
        self.clients = {sym: BinanceExecutionClient(self, sym, instruments[sym]) for sym in self.symbols}
        self.other_events = 0
        self._tasks: set = set()
        self._run_task = self._user_task = None
        self._ready = asyncio.Event()
        self._holding = 0
        self._held: list = []
        self._lock = asyncio.Lock()
        self.subscription_id = None

    # --- Venue ---
    def execution(self, symbol: str) -> BinanceExecutionClient:
        """The execution client of ``symbol``. Raises KeyError for a symbol not configured."""
        return self.clients[symbol]

    @property
    def connected(self) -> bool:
        return self.wsapi.connected and (self.user is None or self.user.connected)

    @property
    def fatal(self):
        """None, or why the venue refused this key for good (a bad key or signature): nothing is sent any more,
        the session must stop (``mmcore.runners.live``)."""
        return self.wsapi.fatal

    async def start(self) -> None:
        """Connect, subscribe to user data, run ``on_connect``; returns after the first complete connect.
        Raises TimeoutError after ``start_timeout_s`` (the connection keeps retrying until :meth:`close`), or
        WsApiError at once when the key or signature is refused (nothing is retried then)."""
        if self._run_task is None:
            self._run_task = asyncio.get_running_loop().create_task(self.wsapi.run(), name="binance-ws-api")
        ready = asyncio.ensure_future(self._ready.wait())
        fatal = asyncio.ensure_future(self.wsapi.fatal_event.wait())
        try:
            await asyncio.wait({ready, fatal}, timeout=self.settings.start_timeout_s,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            ready.cancel()
            fatal.cancel()
        if self._ready.is_set():
            return
        if self.wsapi.fatal is not None:
            raise WsApiError("start", self.wsapi.fatal)
        raise TimeoutError(f"{self.name}: not connected within {self.settings.start_timeout_s} s")

    async def close(self) -> None:
        """Close every connection and stop the tasks."""
        self.wsapi.close()
        if self.user is not None:
            self.user.close()
        for t in [self._run_task, self._user_task, *self._tasks]:
            if t is not None and not t.done():
                t.cancel()
        for t in [self._run_task, self._user_task, *self._tasks]:
            if t is not None:
                try:
                    await t
                except (asyncio.CancelledError, Exception):   # noqa: BLE001 - closing
                    pass
        await self.rest.close()

    def counters(self) -> dict:
        """Connection, request and report counters (for the summary)."""
        out = {f"ws_api_{k}": v for k, v in self.wsapi.counters.items()}
        if self.user is not None:
            out.update({f"user_data_{k}": v for k, v in self.user.counters.items()})
        for sym, c in self.clients.items():
            for k, v in c.counters.items():
                out[f"{k}"] = out.get(k, 0) + v
            out["duplicate_reports"] = out.get("duplicate_reports", 0) + c.dedupe.duplicates
        out.update(malformed=self.malformed, recoveries=self.recoveries, other_events=self.other_events,
                   rate_limit_counters=dict(self.limiter.counters))
        return out

    # --- internals ---
    def _spawn(self, coro) -> None:
        t = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    async def _on_open(self) -> None:
        if self.spot:
            if self.wsapi.credentials.kind == "ed25519":
                # Ed25519 keys: authenticate the session, then subscribe (web-socket-api.md, "Session
                # Authentication"; userDataStream.subscribe needs a logged-on session)
                await self.wsapi.call("session.logon", {}, signed=True)
                res = await self.wsapi.call("userDataStream.subscribe", {})
            else:
                res = await self.wsapi.call("userDataStream.subscribe.signature", {}, signed=True)
            self.subscription_id = res.get("subscriptionId") if isinstance(res, dict) else None
        elif self._user_task is None:
            self._user_task = asyncio.get_running_loop().create_task(self.user.run(), name="binance-user-data")
            await self.user.wait_connected(self.settings.timeout_s)
        await self._recover()
        self._ready.set()

    async def _recover(self) -> None:
        async with self._lock:
            self._holding += 1
            try:
                self.recoveries += 1
                if self.on_connect is not None:
                    await self.on_connect()
            finally:
                self._holding -= 1
                if not self._holding:
                    held, self._held = self._held, []
                    for sym, rep in held:
                        self.on_report(sym, rep)

    def _on_lost(self) -> None:
        if self.on_disconnect is not None:
            self.on_disconnect()

    def _emit(self, symbol: str, rep) -> None:
        if self._holding:
            self._held.append((symbol, rep))
        else:
            self.on_report(symbol, rep)

    def _on_user_event(self, ev: dict) -> None:
        e = ev.get("e")
        if e == "executionReport":
            o = ev
        elif e == "ORDER_TRADE_UPDATE":
            o = ev.get("o")
            if type(o) is not dict:
                self.malformed += 1
                return
            if "T" not in o and "T" in ev:
                o = dict(o, T=ev["T"])
        else:
            if e == "eventStreamTerminated":
                log.warning("user-data subscription terminated by the venue: reconnecting")
                self.wsapi.drop()
            self.other_events += 1
            return
        c = self.clients.get(o.get("s"))
        if c is None:
            self.other_events += 1
            return
        c.on_order_event(o)
