"""One market-data WebSocket (picows) per route, carrying the combined streams of every symbol, kept up.

Frames are handled synchronously in picows' ``on_ws_frame``: the receive time is taken (``time.time_ns()``), the
frame is routed and decoded (:class:`mmcore.venues.binance.router.BinanceFrameRouter`) and the event handed to the
owner's ``on_frame_event(symbol, event)`` in the same call: no queue hop. A malformed frame is counted, logged
(rate-limited) and skipped.

Protocol rules (Binance docs, "WebSocket Streams": spot
https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams, USDⓈ-M
https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams):

- the server sends a ping every 20 s (spot) / 3 min (USDⓈ-M) and disconnects a client that does not answer within
  a minute (spot) / 10 min: picows answers pings itself (``enable_auto_pong``, its default);
- a connection is valid for 24 hours at most: it is *rotated* after ``rotate_after_s`` (default 85,000 s) by a plain
  reconnect + resync (the owner marks the symbols stale and resyncs them; a second overlapping connection would
  deliver every frame twice and is not worth its dedupe);
- a CLOSE frame is echoed (picows ``send_close`` with the server's code) and the connection dropped;
- at most 1024 (spot) / 200 (USDⓈ-M) streams per connection: ten symbols use at most 30.

Reconnects: after a close, an error or a failed connect the next attempt waits a *full-jitter* backoff,
``uniform(0, min(reconnect_max_s, reconnect_initial_s * 2**(failures-1)))`` (AWS Architecture Blog, "Exponential
Backoff And Jitter"), ``failures`` being the consecutive failed connects (a connection that delivered frames resets
it). Watchdog: no frame for ``watchdog_s`` -> ``watchdog_trips`` += 1, the owner is told (STALE), the connection is
dropped and a new one made. A route that carries only trade streams (USDⓈ-M ``/market`` with ``@aggTrade``) has no
frame watchdog (a quiet symbol may not trade for minutes); every connection also pings the server when idle for
``watchdog_s`` (picows ``enable_auto_ping``, ``PING_WHEN_IDLE``) and picows drops it when no pong comes within
``watchdog_s``, which catches a dead TCP connection on any route.

An exception raised by the owner's ``on_frame_event`` (the session) is not caught here: picows logs it and drops
the connection (``disconnect_on_exception``), and the loop reconnects and resyncs.
"""
from __future__ import annotations

import asyncio
import logging
import random
import time

from picows import WSListener, WSMsgType, ws_connect

from mmcore.aio import raise_if_cancelled, wait_within
from mmcore_ext.binance_codec import MalformedLine

log = logging.getLogger("mmcore.venues.binance.streams")

MAX_MALFORMED_WARNINGS = 20
#: Largest frame accepted (bytes); Binance's depth diffs are a few KB, a 1000-level snapshot about 60 KB.
MAX_FRAME_BYTES = 4 << 20


def backoff_delay(failures: int, initial_s: float, max_s: float, rnd=random.random) -> float:
    """Full-jitter capped exponential backoff (s) before the next attempt after ``failures`` consecutive failures."""
    if failures <= 0:
        return 0.0
    cap = min(max_s, initial_s * (2.0 ** min(failures - 1, 60)))
    return cap * rnd()


class _Listener(WSListener):
    __slots__ = ("conn", "route", "now")

    def __init__(self, conn: "StreamConnection"):
        self.conn = conn
        self.route = conn.router.route
        self.now = time.time_ns

    def on_ws_connected(self, transport):
        pass

    def on_ws_frame(self, transport, frame):
        c = self.conn
        mt = frame.msg_type
        if mt == WSMsgType.TEXT or mt == WSMsgType.BINARY:
            ts = self.now()
            c.last_frame = time.monotonic()
            c.frames += 1
            payload = frame.get_payload_as_bytes()
            if c.raw_sink is not None:
                c.raw_sink(ts, payload)
            try:
                r = self.route(ts, payload)
            except MalformedLine as exc:
                c.malformed_frame(payload, exc)
                return
            if r is not None:
                c.on_frame_event(r[0], r[1])
        elif mt == WSMsgType.CLOSE:
            c.close_code = frame.get_close_code()
            try:
                transport.send_close(frame.get_close_code(), frame.get_close_message())
            finally:
                transport.disconnect()

    def on_ws_disconnected(self, transport):
        self.conn.disconnected()


class StreamConnection:
    """The combined-stream connection of one route, reconnected until :meth:`close`.

    Parameters
    ----------
    name : str
        Route label for logs and counters (``spot``, ``public``, ``market``).
    url : str
        Combined-stream URL (:meth:`mmcore.venues.binance.urls.BinanceUrls.combined_stream_url`).
    symbols : tuple of str
        Symbols whose events this route carries (told to the owner on state changes).
    router : BinanceFrameRouter
    owner : object
        Gets ``on_frame_event(symbol, event)`` (in the frame callback), ``route_up(conn)`` after each connect,
        ``route_down(conn, reason)`` after each loss (disconnect, watchdog, rotation), ``connect_failed(conn,
        failures)`` after each failed connect.
    settings : FeedSettings
        ``watchdog_s``, ``reconnect_initial_s``, ``reconnect_max_s``, ``rotate_after_s``.
    raw_sink : callable, optional
        ``raw_sink(ts_local_ns, payload)`` for every text frame (the ``record`` command).
    frame_watchdog : bool
        Drop the connection when no frame came for ``watchdog_s`` (off for trade-only routes).
    """

    def __init__(self, name: str, url: str, symbols, router, owner, settings, raw_sink=None,
                 frame_watchdog: bool = True):
        self.name, self.url, self.symbols = name, url, tuple(symbols)
        self.frame_watchdog = frame_watchdog
        self.router, self.owner, self.settings = router, owner, settings
        self.on_frame_event = owner.on_frame_event
        self.raw_sink = raw_sink
        self.transport = None
        self.connected = False
        self.last_frame = 0.0
        self.close_code = None
        self.failures = 0
        self._closed = False
        self._task: asyncio.Task | None = None
        self._lost = asyncio.Event()
        self._first = asyncio.Event()
        self.frames = self.malformed = self.reconnects = self.watchdog_trips = self.rotations = 0
        self.connects = self.connect_failures = 0

    # --- frame callback helpers ---
    def malformed_frame(self, payload: bytes, exc: Exception) -> None:
        self.malformed += 1
        if self.malformed <= MAX_MALFORMED_WARNINGS:
            log.warning("%s stream: malformed frame skipped (%s): %.120r", self.name, exc, payload)
        elif self.malformed % 1000 == 0:
            log.warning("%s stream: %d malformed frames so far", self.name, self.malformed)

    def disconnected(self) -> None:
        self.connected = False
        self._lost.set()

    # --- lifecycle ---
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"md-{self.name}")

    async def first_attempt(self) -> None:
        """Wait until the first connection attempt has been made (success or failure)."""
        await self._first.wait()

    async def close(self) -> None:
        self._closed = True
        if self.transport is not None:
            self._drop()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):        # noqa: BLE001 - closing
                pass
            self._task = None

    def _drop(self) -> None:
        t = self.transport
        if t is not None:
            try:
                t.send_close()
            except Exception:                                  # noqa: BLE001 - already gone
                pass
            t.disconnect()

    def kill(self) -> None:
        """Drop the current connection now (tests, watchdog); the loop reconnects."""
        self._drop()

    async def _run(self) -> None:
        s = self.settings
        while not self._closed:
            raise_if_cancelled()
            if self.failures:
                await asyncio.sleep(backoff_delay(self.failures, s.reconnect_initial_s, s.reconnect_max_s))
                if self._closed:
                    return
            self._lost.clear()
            self.close_code = None
            try:
                transport, _ = await ws_connect(lambda: _Listener(self), self.url,
                                                websocket_handshake_timeout=max(2.0, s.watchdog_s),
                                                max_frame_size=MAX_FRAME_BYTES, enable_auto_ping=True,
                                                auto_ping_idle_timeout=s.watchdog_s,
                                                auto_ping_reply_timeout=s.watchdog_s)
            except asyncio.CancelledError:
                raise
            except Exception as exc:                           # noqa: BLE001 - every connect error is retried
                self.failures += 1
                self.connect_failures += 1
                self._first.set()
                log.warning("%s stream: connect failed (%d in a row): %s", self.name, self.failures,
                            str(exc)[:200])
                self.owner.connect_failed(self, self.failures)
                continue
            self.transport = transport
            self.connected = True
            self.connects += 1
            if self.connects > 1:
                self.reconnects += 1
            self.last_frame = time.monotonic()
            opened = time.monotonic()
            frames0 = self.frames
            self._first.set()
            log.info("%s stream: connected (%d streams)", self.name, self.url.count("@"))
            self.owner.route_up(self)
            reason = await self._watch(opened)
            if self.frames > frames0:
                self.failures = 0
            else:
                self.failures += 1
            self.transport = None
            self.connected = False
            if not self._closed:
                log.warning("%s stream: %s; reconnecting", self.name, reason)
                self.owner.route_down(self, reason)

    async def _watch(self, opened: float) -> str:
        s = self.settings
        step = min(1.0, s.watchdog_s / 4)
        while True:
            raise_if_cancelled()
            try:
                await wait_within(self._lost.wait(), step)
                return f"disconnected (close code {self.close_code})" if self.close_code else "disconnected"
            except asyncio.TimeoutError:
                pass
            now = time.monotonic()
            if self.frame_watchdog and now - self.last_frame > s.watchdog_s:
                self.watchdog_trips += 1
                self._drop()
                await self._lost.wait()
                return f"watchdog: no frame for {s.watchdog_s:g} s"
            if now - opened > s.rotate_after_s:
                self.rotations += 1
                self._drop()
                await self._lost.wait()
                return f"rotation after {s.rotate_after_s:g} s"

    def counters(self) -> dict:
        return {"frames": self.frames, "malformed": self.malformed, "reconnects": self.reconnects,
                "watchdog_trips": self.watchdog_trips, "rotations": self.rotations,
                "connect_failures": self.connect_failures}
