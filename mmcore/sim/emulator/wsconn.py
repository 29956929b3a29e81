"""One server-side WebSocket connection (aiohttp): a send queue drained by a writer task (flow control), server
pings, pong tracking, an incoming-message rate limit, a lifetime, and clean close / abrupt drop.

Binance's rules (research notes /work/research/binance_wire.md §1.1, §1.2, §3.1, §3.5): the server pings; the client
answers each ping with a pong carrying the ping's payload; on spot an unsolicited pong "will not prevent
disconnection" [S-WSS-25], on USDⓈ-M any pong keeps the connection alive [UM-WSS]; a connection that has not
answered within the pong timeout is disconnected; a market-data connection allows 5 (spot) or 10 (USDⓈ-M) incoming
messages per second, counting PING, PONG and JSON control frames, and is disconnected above that; every connection
is closed after 24 h. The close codes are the emulator's choice (Binance does not document them): 1008 "Too many
requests" for the message rate (as reported in binance/binance-connector-js#530), 1008 for a missing pong and for a
slow reader, 1001 for the lifetime.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque

from aiohttp import WSMsgType, web

from mmcore.aio import wait_within

log = logging.getLogger("mmcore.sim.emulator.ws")
_ids = itertools.count(1)
MAX_IN_MSG = 1 << 20


class WsConn:
    """Parameters: ``request`` / ``ws`` (prepared aiohttp objects), ``kind`` (``market``, ``wsapi``, ``userdata``),
    ``settings`` (EmulatorSettings), ``strict_pong`` (spot: only a pong with the ping's payload counts),
    ``rate_limit`` (incoming messages per second, None: no limit), ``on_closed`` (called once)."""

    def __init__(self, request: web.Request, ws: web.WebSocketResponse, kind: str, settings, strict_pong: bool,
                 rate_limit: int | None, on_closed=None):
        self.id = next(_ids)
        self.request, self.ws, self.kind, self.settings = request, ws, kind, settings
        self.strict_pong = strict_pong
        self.rate_limit = rate_limit
        self.on_closed = on_closed
        self.out: deque = deque()
        self.out_bytes = 0
        self.wake = asyncio.Event()
        self.drained = asyncio.Event()
        self.drained.set()
        self.closed = False
        self.close_reason = None
        self.sent = 0
        self.received = 0
        self._in_times: deque = deque()
        self._pings: dict = {}                  # payload -> monotonic time sent (unanswered)
        self._ping_seq = itertools.count(1)
        self._tasks: list[asyncio.Task] = []
        self._lifetime = None
        self._close_task = None
        self.connected_ms = time.time_ns() // 1_000_000

    # --- lifecycle ---
    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._writer(), name=f"ws{self.id}-writer"),
                       loop.create_task(self._pinger(), name=f"ws{self.id}-pinger")]
        self._lifetime = loop.call_later(self.settings.lifetime_s, self.close, 1001, "connection lifetime reached")

    def push(self, frame: bytes) -> None:
        """Queue one text frame (sync; the writer task sends it)."""
        if self.closed:
            return
        self.out.append(frame)
        self.out_bytes += len(frame)
        if self.out_bytes > self.settings.high_water_bytes:
            self.drained.clear()
        self.wake.set()

    async def _writer(self) -> None:
        ws = self.ws
        low = self.settings.high_water_bytes // 2
        try:
            while not self.closed:
                while self.out:
                    f = self.out.popleft()
                    self.out_bytes -= len(f)
                    await ws.send_frame(f, WSMsgType.TEXT)
                    self.sent += 1
                    if self.out_bytes <= low and not self.drained.is_set():
                        self.drained.set()
                self.drained.set()
                self.wake.clear()
                await self.wake.wait()
        except asyncio.CancelledError:
            raise
        except Exception as exc:                       # noqa: BLE001 - a peer gone mid-send
            log.info("ws %d (%s): send failed (%s); connection dropped", self.id, self.kind, type(exc).__name__)
            self.abort("send failed")

    async def _pinger(self) -> None:
        s = self.settings
        tick = max(0.005, min(s.ping_interval_s, s.pong_timeout_s, 1.0) / 4)
        loop = asyncio.get_running_loop()
        next_ping = loop.time() + s.ping_interval_s
        while not self.closed:
            await asyncio.sleep(tick)
            now = loop.time()
            if self._pings and now - min(self._pings.values()) > s.pong_timeout_s:
                log.info("ws %d (%s): no pong within %.3g s; closing", self.id, self.kind, s.pong_timeout_s)
                self.close(1008, "pong timeout")
                return
            if now >= next_ping:
                payload = str(next(self._ping_seq)).encode()
                self._pings[payload] = now
                next_ping = now + s.ping_interval_s
                try:
                    await self.ws.ping(payload)
                except Exception:                      # noqa: BLE001
                    self.abort("ping failed")
                    return

    def close(self, code: int = 1000, message: str = "") -> None:
        """Close with a close frame (the close handshake runs in the background)."""
        if self.closed:
            return
        self.close_reason = f"{code} {message}".strip()
        self._finish(keep_out=True)
        self._close_task = asyncio.get_running_loop().create_task(self._close(code, message))

    async def wait_closed(self) -> None:
        """Wait for a close started by :meth:`close` to finish (bounded by the settings' close timeout)."""
        t = self._close_task
        if t is not None and not t.done():
            try:
                await wait_within(asyncio.shield(t), self.settings.close_timeout_s + 1.0)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                self.abort_transport()

    async def _close(self, code: int, message: str) -> None:
        """Send what is queued (answers before the close frame, within the close timeout), then close."""
        try:
            async def flush():
                while self.out:
                    await self.ws.send_frame(self.out.popleft(), WSMsgType.TEXT)
            try:
                await wait_within(flush(), self.settings.close_timeout_s)
            except asyncio.TimeoutError:
                pass
            self.out.clear()
            self.out_bytes = 0
            await self.ws.close(code=code, message=message.encode())
        except Exception:                              # noqa: BLE001
            self.abort_transport()

    def abort(self, why: str = "dropped") -> None:
        """Drop the TCP connection without a close frame."""
        if not self.closed:
            self.close_reason = why
            self._finish()
        self.abort_transport()

    def abort_transport(self) -> None:
        tr = self.request.transport
        if tr is not None:
            tr.abort()

    def _finish(self, keep_out: bool = False) -> None:
        self.closed = True
        if self._lifetime is not None:
            self._lifetime.cancel()
        for t in self._tasks:
            if t is not asyncio.current_task():
                t.cancel()
        if not keep_out:
            self.out.clear()
            self.out_bytes = 0
        self.drained.set()
        cb, self.on_closed = self.on_closed, None
        if cb is not None:
            cb(self)

    # --- reading ---
    def _count_in(self) -> bool:
        """Count one incoming message; False (and the connection is closed) above the rate limit."""
        self.received += 1
        if self.rate_limit is None:
            return True
        now = time.monotonic()
        q = self._in_times
        q.append(now)
        while q and now - q[0] >= 1.0:
            q.popleft()
        if len(q) > self.rate_limit:
            log.info("ws %d (%s): more than %d messages in a second; closing", self.id, self.kind, self.rate_limit)
            self.close(1008, "Too many requests")
            return False
        return True

    async def read(self, on_text) -> None:
        """Read until the connection ends; ``on_text(str)`` gets every text frame (sync or async)."""
        ws = self.ws
        try:
            while not self.closed:
                msg = await ws.receive()
                t = msg.type
                if t is WSMsgType.TEXT or t is WSMsgType.BINARY:
                    if not self._count_in():
                        break
                    data = msg.data if t is WSMsgType.TEXT else msg.data.decode("utf-8", "replace")
                    r = on_text(data)
                    if asyncio.iscoroutine(r):
                        await r
                elif t is WSMsgType.PING:
                    if not self._count_in():
                        break
                    await ws.pong(msg.data)
                elif t is WSMsgType.PONG:
                    if not self._count_in():
                        break
                    if self.strict_pong:
                        self._pings.pop(bytes(msg.data), None)
                    else:
                        self._pings.clear()
                else:                                  # CLOSE, CLOSING, CLOSED, ERROR
                    break
        except (ConnectionError, asyncio.CancelledError):
            pass
        except Exception as exc:                       # noqa: BLE001 - a bad frame ends this connection only
            log.info("ws %d (%s): read error %s", self.id, self.kind, type(exc).__name__)
        finally:
            if not self.closed:
                self.close_reason = self.close_reason or "client closed"
                self._finish()


def new_response(settings) -> web.WebSocketResponse:
    """The aiohttp response of every emulator WebSocket (pings and pongs handled by WsConn)."""
    return web.WebSocketResponse(autoping=False, autoclose=True, compress=False, timeout=settings.close_timeout_s,
                                 max_msg_size=MAX_IN_MSG)
