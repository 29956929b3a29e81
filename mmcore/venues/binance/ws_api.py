"""One persistent picows connection to Binance's WebSocket API (spot ``/ws-api/v3``, USDⓈ-M ``/ws-fapi/v1``).

Protocol (https://developers.binance.com/docs/binance-spot-api-docs/websocket-api/general-api-information,
https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-api-general-info): one JSON request
per text frame ``{"id", "method", "params"}``; one answer per text frame ``{"id", "status", "result" | "error",
"rateLimits"?}``; spot user-data events arrive on the same connection as ``{"subscriptionId", "event"}``. The
server pings (spot every 20 s, USDⓈ-M every 3 min); picows answers with the ping's payload (``enable_auto_pong``).
A connection lives at most 24 hours: the reconnect loop opens a new one when it is cut.

What this module does: request ids (integers, never reused while pending), the pending map with deadlines (a
sweeper fails answers that do not come within ``timeout_s``), answers parsed with orjson and validated (a frame
that is not a JSON object, or an answer to no request of ours, is counted and logged, bounded), ``rateLimits``
fed to the :class:`~mmcore.venues.ratelimit.RateLimiter` (as the equivalent ``X-MBX-*`` header counts), 429 / 418
blocks, -1021 clock resync (one ``time`` request at a time, at most once per ``resync_min_interval_s``), fatal
key errors (nothing more is sent), and reconnection with capped exponential backoff and jitter. The server time
offset is measured with ``time`` at every connect: ``offset = serverTime - (t_send + t_recv) / 2``.

URLs (:func:`ws_api_url`): production ``wss://ws-api.binance.com:443/ws-api/v3`` and
``wss://ws-fapi.binance.com/ws-fapi/v1``; spot testnet ``wss://ws-api.testnet.binance.vision/ws-api/v3`` (same
page); USDⓈ-M demo trading / testnet ``wss://testnet.binancefuture.com/ws-fapi/v1`` (the USDⓈ-M WebSocket API
General Info page names it the testnet base endpoint; ccxt's ``urls['demo']['ws']['ws-api']['linear']`` points
demo trading there too). An ``endpoint`` ``http://127.0.0.1:PORT`` maps the URL to ``ws://127.0.0.1:PORT/<same
path>`` (the emulator).
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
from typing import Awaitable, Callable
from urllib.parse import urlsplit

import orjson
from picows import WSError, WSListener, WSMsgType, ws_connect

from mmcore.aio import raise_if_cancelled, wait_within
from mmcore.venues.binance.errors import Action, ErrorOutcome, classify_error, retry_after_s_of_ws
from mmcore.venues.binance.signing import ws_payload
from mmcore.venues.common import QueryError
from mmcore.venues.ratelimit import sanitize_message

log = logging.getLogger("mmcore.binance.ws_api")

SPOT = "binance_spot"
USDM = "binance_usdm"
WS_API_URLS = {
    (SPOT, False): "wss://ws-api.binance.com:443/ws-api/v3",
    (SPOT, True): "wss://ws-api.testnet.binance.vision/ws-api/v3",
    (USDM, False): "wss://ws-fapi.binance.com/ws-fapi/v1",
    (USDM, True): "wss://testnet.binancefuture.com/ws-fapi/v1",
}
MAX_WARNINGS = 20
MAX_FRAME = 16 << 20
_INTERVAL_LETTER = {"SECOND": "s", "MINUTE": "m", "HOUR": "h", "DAY": "d"}
_HEADER_OF = {"REQUEST_WEIGHT": "x-mbx-used-weight-", "ORDERS": "x-mbx-order-count-", "ORDER": "x-mbx-order-count-"}


def map_endpoint(url: str, endpoint: str | None) -> str:
    """``url`` with its scheme and host replaced by ``endpoint`` (``http://H:P`` -> ``ws://H:P``, ``https`` ->
    ``wss``), path and query kept; ``url`` itself when ``endpoint`` is None. Raises ValueError for an endpoint
    that is not ``http(s)://host[:port]``."""
    if not endpoint:
        return url
    e = urlsplit(endpoint)
    if e.scheme not in ("http", "https", "ws", "wss") or not e.netloc:
        raise ValueError(f"endpoint {endpoint!r}: expected http://HOST:PORT")
    scheme = {"http": "ws", "https": "wss"}.get(e.scheme, e.scheme)
    u = urlsplit(url)
    return f"{scheme}://{e.netloc}{u.path}" + (f"?{u.query}" if u.query else "")


def ws_api_url(venue: str, testnet: bool = False, endpoint: str | None = None) -> str:
    """The WebSocket API URL of ``venue`` (see the module docstring). Raises KeyError for another venue."""
    return map_endpoint(WS_API_URLS[(venue, bool(testnet))], endpoint)


def _short(v, n: int = 120) -> str:
    r = repr(v)
    return r if len(r) <= n else r[:n] + "..."


class WsApiError(QueryError):
    """A WebSocket API request failed: ``outcome`` (:class:`~mmcore.venues.binance.errors.ErrorOutcome`) says
    how; a subclass of :class:`mmcore.venues.common.QueryError` so that sessions treat it like any query failure."""

    def __init__(self, method: str, outcome: ErrorOutcome):
        super().__init__(f"{method}: {outcome.action.value} (status {outcome.status}, code {outcome.code}): "
                         f"{outcome.reason}")
        self.method = method
        self.outcome = outcome


class _Listener(WSListener):
    def __init__(self, api: "WsApi"):
        self.api = api

    def on_ws_frame(self, transport, frame):
        t = frame.msg_type
        if t == WSMsgType.TEXT:
            self.api._on_text(frame.get_payload_as_bytes())
        elif t == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()
        elif t == WSMsgType.BINARY:
            self.api._bad(b"", "binary frame (SBE is not requested)")

    def on_ws_disconnected(self, transport):
        self.api._on_lost(self)


class WsApi:
    """The WebSocket API connection of one venue (one account).

    Parameters
    ----------
    url : str
        From :func:`ws_api_url`.
    credentials : Credentials
        Key and signer (:mod:`mmcore.venues.binance.credentials`).
    limiter : RateLimiter
        The venue's limiter (``config/ratelimits.yaml``); the endpoint names used are the table's
        (``new_order``, ``cancel_order``, ``query_order``, ``open_orders``, ``my_trades``).
    recv_window_ms : int
        ``recvWindow`` of signed requests (config ``venue.recv_window_ms``; at most 60000).
    timeout_s : float
        Connect and answer timeout.
    on_event : callable, optional
        ``on_event(event: dict)`` for every user-data event (spot ``{"subscriptionId", "event"}`` frames).
    on_open : async callable, optional
        Awaited after each (re)connect and clock sync, before :meth:`run` waits for the connection to end (user-data
        subscription and recovery run there). A network error in it drops the connection and retries.
    on_lost : callable, optional
        Called when an open connection is lost.
    backoff_initial_s, backoff_max_s : float
        Reconnect delay: doubles per failure (with jitter in [0.5, 1] of it), capped; reset after a good connect.
    resync_min_interval_s : float
        Least time between two clock resyncs caused by -1021.

    Attributes
    ----------
    connected, fatal : bool / ErrorOutcome | None
        ``fatal`` is set by a bad-signature / bad-key answer: every later request is refused locally.
    offset_ms : int
        Server time minus local time (ms), added to every ``timestamp``.
    counters : dict
        ``connects``, ``disconnects``, ``requests``, ``answers``, ``errors``, ``timeouts``, ``malformed``,
        ``unmatched``, ``rate_limited``, ``banned``, ``resyncs``, ``fatal``, ``refused_locally``.
    """

    def __init__(self, url: str, credentials, limiter, *, recv_window_ms: int = 5000, timeout_s: float = 10.0,
                 on_event: Callable[[dict], None] | None = None,
                 on_open: Callable[[], Awaitable[None]] | None = None, on_lost: Callable[[], None] | None = None,
                 backoff_initial_s: float = 0.2, backoff_max_s: float = 30.0, resync_min_interval_s: float = 5.0,
                 usdm_503_rule: bool = False):
        if not 0 < int(recv_window_ms) <= 60000:
            raise ValueError(f"recv_window_ms = {recv_window_ms}: must be in (0, 60000]")
        self.url = url
        self.credentials = credentials
        self.api_key = credentials.api_key
        self.signer = credentials.signer
        self.limiter = limiter
        self.recv_window_ms = int(recv_window_ms)
        self.timeout_s = timeout_s
        self.timeout_ns = int(timeout_s * 1e9)
        self.on_event = on_event
        self.on_open = on_open
        self.on_lost = on_lost
        self.backoff_initial_s, self.backoff_max_s = backoff_initial_s, backoff_max_s
        self.resync_min_interval_s = resync_min_interval_s
        self.usdm_503_rule = usdm_503_rule
        self.connected = False
        self.fatal: ErrorOutcome | None = None
        self.offset_ms = 0
        self.counters = dict.fromkeys(("connects", "disconnects", "requests", "answers", "errors", "timeouts",
                                       "malformed", "unmatched", "rate_limited", "banned", "resyncs", "fatal",
                                       "refused_locally"), 0)
        self.transport = None
        self._send = None
        self._listener = None
        self._ids = itertools.count(1)
        self._pending: dict[int, list] = {}      # id -> [method, handler(msg | None), deadline_ns]
        self._lost_fut: asyncio.Future | None = None
        self._closing = False
        self._resync_task: asyncio.Task | None = None
        self._last_resync = 0.0
        self._sweeper: asyncio.Task | None = None
        self._rng = random.Random()
        self._unnoted: list = []
        self.fatal_event = asyncio.Event()
        self._flush_scheduled = False
        self._loop = None

    # --- hot path ---
    def next_id(self) -> int:
        return next(self._ids)

    def now_ms(self) -> int:
        """Server time now (ms): local clock plus the measured offset."""
        return time.time_ns() // 1_000_000 + self.offset_ms

    def refusal(self, endpoint: str, ts_ns: int) -> str | None:
        """Why ``endpoint`` may not be sent now (``"AUTH"``, ``"NOT_CONNECTED"``, ``"BANNED"``, ``"RATE_LIMITED"``,
        a local budget ``"ORDERS 10S"``), or None. Does not count the request."""
        if self._unnoted:
            self.flush_notes()
        if self.fatal is not None:
            return "AUTH"
        if self._send is None:
            return "NOT_CONNECTED"
        wait, reason = self.limiter.check(endpoint, ts_ns)
        if wait:
            return reason.upper() if reason in ("banned", "rate_limited") else reason
        return None

    def send_request(self, rid: int, data: bytes, method: str, endpoint: str, handler: Callable, ts_ns: int) -> None:
        """Write one prepared request frame (``data``, with id ``rid``) and register ``handler(answer | None)``
        (None: timed out or connection lost). The caller checked :meth:`refusal`. Raises ConnectionError when
        not connected."""
        send = self._send
        if send is None:
            raise ConnectionError("WebSocket API not connected")
        self._pending[rid] = [method, handler, ts_ns + self.timeout_ns]
        send(WSMsgType.TEXT, data)
        # counted in the limiter right after this loop iteration (off the frame -> bytes-written path); a
        # request sent before that flushes the count first (flush_notes), so every check sees every send
        self._unnoted.append((endpoint, ts_ns))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self.flush_notes)
        self.counters["requests"] += 1

    def flush_notes(self) -> None:
        """Count the requests sent but not yet counted in the limiter."""
        self._flush_scheduled = False
        if self._unnoted:
            notes, self._unnoted = self._unnoted, []
            note = self.limiter.note_sent
            for ep, ts in notes:
                note(ep, ts)

    # --- generic requests ---
    def signed_params(self, params: dict) -> dict:
        """``params`` with ``apiKey``, ``timestamp`` (server time), ``recvWindow`` and ``signature``."""
        p = dict(params)
        p["apiKey"] = self.api_key
        p["timestamp"] = self.now_ms()
        p["recvWindow"] = self.recv_window_ms
        p["signature"] = self.signer.sign(ws_payload(p))
        return p

    def send(self, method: str, params: dict | None, handler: Callable, *, signed: bool = False,
             api_key: bool = False, endpoint: str | None = None) -> int:
        """Send one request (``signed``: SIGNED; ``api_key``: USER_STREAM, the key only); ``handler(answer|None)``.
        Returns its id. Raises ConnectionError (not connected) / WsApiError (refused locally)."""
        now = time.time_ns()
        if self._unnoted:
            self.flush_notes()
        if endpoint is not None or signed:
            why = self.refusal(endpoint or "query_order", now) if endpoint else (
                "AUTH" if self.fatal is not None else None)
            if why == "NOT_CONNECTED":
                raise ConnectionError(f"{method}: WebSocket API not connected")
            if why is not None:
                self.counters["refused_locally"] += 1
                raise WsApiError(method, ErrorOutcome(Action.FATAL if why == "AUTH" else Action.RATE_LIMITED,
                                                      0, None, f"refused locally: {why}", why))
        if signed:
            params = self.signed_params(params or {})
        elif api_key:
            params = dict(params or {}, apiKey=self.api_key)
        rid = self.next_id()
        msg = {"id": rid, "method": method}
        if params is not None:
            msg["params"] = params
        if self._send is None:
            raise ConnectionError(f"{method}: WebSocket API not connected")
        self._pending[rid] = [method, handler, now + self.timeout_ns]
        self._send(WSMsgType.TEXT, orjson.dumps(msg))
        if endpoint is not None:
            self.limiter.note_sent(endpoint, now)
        self.counters["requests"] += 1
        return rid

    async def call(self, method: str, params: dict | None = None, *, signed: bool = False, api_key: bool = False,
                   endpoint: str | None = None, is_order: bool = False):
        """Send a request and await its ``result``.

        Raises
        ------
        ConnectionError
            Not connected, or the connection was lost before the answer.
        TimeoutError
            No answer within ``timeout_s``.
        WsApiError
            An error answer (``outcome`` classified by :func:`~mmcore.venues.binance.errors.classify_error`), a
            malformed answer, or a local refusal (fatal key error, rate limit / ban block).
        """
        fut = asyncio.get_running_loop().create_future()

        def done(msg):
            if fut.done():
                return
            if msg is None:
                fut.set_exception(TimeoutError(f"{method}: no answer within {self.timeout_s} s")
                                  if self._send is not None else ConnectionError(f"{method}: connection lost"))
            else:
                fut.set_result(msg)
        self.send(method, params, done, signed=signed, api_key=api_key, endpoint=endpoint)
        msg = await fut
        status = msg.get("status")
        if status == 200 and "result" in msg:
            return msg["result"]
        raise WsApiError(method, self.outcome_of(msg, is_order))

    def outcome_of(self, msg: dict, is_order: bool) -> ErrorOutcome:
        """The classified outcome of an (error) answer."""
        err = msg.get("error")
        code = err.get("code") if isinstance(err, dict) else None
        text = err.get("msg") if isinstance(err, dict) else None
        return classify_error(msg.get("status"), code, text if isinstance(text, str) else None, is_order,
                              self.usdm_503_rule)

    # --- connection ---
    async def connect(self) -> None:
        """Open the connection and measure the clock offset. Raises OSError / TimeoutError / WSError / WsApiError."""
        self._loop = asyncio.get_running_loop()
        self._lost_fut = self._loop.create_future()
        transport, listener = await wait_within(
            ws_connect(lambda: _Listener(self), self.url, websocket_handshake_timeout=self.timeout_s,
                       enable_auto_pong=True, max_frame_size=MAX_FRAME), self.timeout_s)
        self.transport, self._listener = transport, listener
        self._send = transport.send
        self.connected = True
        self.counters["connects"] += 1
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep(), name="ws-api-sweeper")
        log.info("WebSocket API connected: %s", self.url)
        await self.sync_time()

    async def sync_time(self) -> int:
        """Measure the server time offset with ``time``; returns it (ms). Raises like :meth:`call`."""
        t0 = time.time_ns()
        res = await self.call("time")
        t1 = time.time_ns()
        st = res.get("serverTime") if isinstance(res, dict) else None
        if type(st) is not int or not 10**12 <= st < 10**14:
            self._bad(orjson.dumps(res)[:200], "time answer without a plausible serverTime")
            raise WsApiError("time", ErrorOutcome(Action.TRANSIENT, 200, None, "malformed time answer", ""))
        self.offset_ms = st - (t0 + t1) // 2_000_000
        return self.offset_ms

    def request_resync(self) -> None:
        """A -1021 answer: measure the clock again, once at a time and at most every ``resync_min_interval_s``."""
        now = time.monotonic()
        if (self._resync_task is not None and not self._resync_task.done()) or \
                now - self._last_resync < self.resync_min_interval_s or self._send is None:
            return
        self._last_resync = now
        self.counters["resyncs"] += 1

        async def resync():
            try:
                off = await self.sync_time()
                log.warning("timestamp outside recvWindow (-1021): server time offset re-measured: %d ms", off)
            except (OSError, TimeoutError, WsApiError, ConnectionError) as exc:
                log.warning("clock resync failed: %s", sanitize_message(str(exc)))
        self._resync_task = asyncio.get_running_loop().create_task(resync())

    async def run(self) -> None:
        """Connect, ``on_open``, wait for the end of the connection; reconnect with backoff until :meth:`close`.
        Returns at :meth:`close`; an exception of ``on_open`` that is not a network error ends it."""
        delay = self.backoff_initial_s
        while not self._closing:
            raise_if_cancelled()
            try:
                await self.connect()
                if self.on_open is not None:
                    await self.on_open()
                delay = self.backoff_initial_s
                await self._lost_fut
            except (OSError, ConnectionError, TimeoutError, asyncio.TimeoutError, WSError, QueryError) as exc:
                if self._closing:
                    break
                if self.fatal is not None:             # bad key / signature: never retried
                    log.critical("WebSocket API %s: the key or signature was refused (code %s); not reconnecting",
                                 self.url, self.fatal.code)
                    break
                log.warning("WebSocket API %s: %s: %s; retrying in %.2f s", self.url, type(exc).__name__,
                            sanitize_message(str(exc)), delay)
                self._drop()
            if self._closing:
                break
            await asyncio.sleep(delay * (0.5 + 0.5 * self._rng.random()))
            delay = min(delay * 2, self.backoff_max_s)

    def close(self) -> None:
        """Stop reconnecting and close the connection."""
        self._closing = True
        self._drop()
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._lost_fut is not None and not self._lost_fut.done():
            self._lost_fut.set_result(None)

    def drop(self) -> None:
        """Close the current connection (the run loop reconnects)."""
        self._drop()

    def _drop(self) -> None:
        if self.transport is not None:
            try:
                self.transport.disconnect()
            except Exception:                         # noqa: BLE001 - already closed
                pass

    async def _sweep(self) -> None:
        while True:
            raise_if_cancelled()
            await asyncio.sleep(0.1)
            if not self._pending:
                continue
            now = time.time_ns()
            late = [rid for rid, p in self._pending.items() if p[2] <= now]
            for rid in late:
                p = self._pending.pop(rid, None)
                if p is not None:
                    self.counters["timeouts"] += 1
                    log.warning("WebSocket API %s (id %d): no answer within %.1f s", p[0], rid, self.timeout_s)
                    self._call(p[1], None)

    @staticmethod
    def _call(handler, msg) -> None:
        try:
            handler(msg)
        except Exception:                             # noqa: BLE001 - one handler never ends the connection
            log.exception("WebSocket API answer handler failed")

    def _on_lost(self, listener) -> None:
        if listener is not self._listener:
            return
        self._listener = None
        self._send = None
        self.transport = None
        was = self.connected
        self.connected = False
        pending, self._pending = self._pending, {}
        for p in pending.values():
            self._call(p[1], None)
        if self._lost_fut is not None and not self._lost_fut.done():
            self._lost_fut.set_result(None)
        if was:
            self.counters["disconnects"] += 1
            (log.info if self._closing else log.warning)("WebSocket API disconnected: %s", self.url)
            if self.on_lost is not None and not self._closing:
                self.on_lost()

    # --- answers ---
    def _on_text(self, data: bytes) -> None:
        try:
            msg = orjson.loads(data)
        except orjson.JSONDecodeError:
            self._bad(data, "not JSON")
            return
        if type(msg) is not dict:
            self._bad(data, "not a JSON object")
            return
        if "status" in msg:
            rl = msg.get("rateLimits")
            if rl is not None:
                self._rate_limits(rl)
            rid = msg.get("id")
            p = self._pending.pop(rid, None) if type(rid) is int else None
            status = msg.get("status")
            if type(status) is not int:
                self._bad(data, "answer without an integer status")
                status = 500
                msg["status"] = 500
            if status != 200:
                self.counters["errors"] += 1
                self._on_error(msg, p[0] if p else "?")
            if p is None:
                if rid is None and status in (401, 400):
                    log.error("WebSocket API error without a request id: %s", sanitize_message(msg.get("error")))
                else:
                    self.counters["unmatched"] += 1
                return
            self.counters["answers"] += 1
            self._call(p[1], msg)
            return
        ev = msg.get("event")
        if type(ev) is dict and "subscriptionId" in msg:
            if self.on_event is not None:
                try:
                    self.on_event(ev)
                except Exception:                     # noqa: BLE001
                    log.exception("user-data event handler failed")
            return
        self._bad(data, "neither an answer nor a user-data event")

    def _on_error(self, msg: dict, method: str) -> None:
        out = self.outcome_of(msg, method in ("order.place", "order.cancel", "order.cancelReplace", "order.modify"))
        a = out.action
        now = time.time_ns()
        if a is Action.RATE_LIMITED:
            self.counters["rate_limited"] += 1
            ra = retry_after_s_of_ws(msg.get("error"), now // 1_000_000 + self.offset_ms)
            until = self.limiter.on_rate_limited(now, ra, orders_only=out.code == -1015)
            log.warning("WebSocket API %s: rate limited (code %s), blocked for %.2f s", method, out.code,
                        (until - now) / 1e9)
        elif a is Action.BANNED:
            self.counters["banned"] += 1
            ra = retry_after_s_of_ws(msg.get("error"), now // 1_000_000 + self.offset_ms)
            until = self.limiter.on_banned(now, ra, waf=out.status == 403)
            log.critical("WebSocket API %s: BANNED (status %d) -- every request blocked for %.1f s", method,
                         out.status, (until - now) / 1e9)
        elif a is Action.FATAL:
            if self.fatal is None:
                self.counters["fatal"] += 1
                self.fatal = out
                self.fatal_event.set()
                log.critical("WebSocket API %s: %s (code %s) -- the API key or signature is refused; nothing more "
                             "is sent with this key (fix the credentials and restart)", method, out.reason, out.code)
        elif a is Action.RESYNC_CLOCK:
            self.request_resync()

    def _rate_limits(self, rl) -> None:
        if type(rl) is not list:
            return
        headers = {}
        for item in rl[:16]:
            if type(item) is not dict:
                continue
            prefix = _HEADER_OF.get(item.get("rateLimitType"))
            letter = _INTERVAL_LETTER.get(item.get("interval"))
            n, count = item.get("intervalNum"), item.get("count")
            if prefix and letter and type(n) is int and type(count) is int and 0 < n < 1000 and 0 <= count < 1 << 40:
                headers[f"{prefix}{n}{letter}"] = str(count)
        if headers:
            self.limiter.update_from_headers(headers, time.time_ns())

    def _bad(self, data: bytes, why: str) -> None:
        self.counters["malformed"] += 1
        n = self.counters["malformed"]
        if n <= MAX_WARNINGS or n % 1000 == 0:
            log.warning("malformed WebSocket API frame skipped (%d so far): %s; %s", n, why,
                        sanitize_message(_short(data[:200])))
