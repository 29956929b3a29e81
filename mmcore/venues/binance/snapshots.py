"""Depth snapshots: the WebSocket API ``depth`` request on a persistent picows connection, REST as the fallback.

- WebSocket API request ``{"id", "method": "depth", "params": {"symbol", "limit"}}``, answer ``{"id", "status",
  "result": {"lastUpdateId", "bids", "asks"}, "rateLimits"}`` (public: no signature). Spot:
  https://developers.binance.com/docs/binance-spot-api-docs/websocket-api/market-data-requests#order-book;
  USDⓈ-M: https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/websocket-api
  (same request, the result adds ``E``/``T``). Error answers carry ``status`` 4xx/5xx and ``error: {code, msg}``.
- REST ``GET /api/v3/depth?symbol=&limit=`` (spot) / ``GET /fapi/v1/depth`` (USDⓈ-M):
  https://developers.binance.com/docs/binance-spot-api-docs/rest-api/market-data-endpoints#order-book and
  https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/Order-Book.

Both return ``(ts_local_ns, result dict)``: the receive time of the answer and the parsed, not yet bounded, JSON
(the codec's ``snapshot_from`` bounds and decodes it). Every failure (connect, timeout, error status, bad JSON,
a body longer than :data:`MAX_BODY_BYTES`) raises :class:`SnapshotError` with a short reason.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import time

import orjson
from picows import WSListener, WSMsgType, ws_connect

from mmcore.aio import wait_within

log = logging.getLogger("mmcore.venues.binance.snapshots")

#: Largest answer accepted (bytes): a 5000-level snapshot is about 300 KB.
MAX_BODY_BYTES = 4 << 20


class SnapshotError(RuntimeError):
    """A snapshot request that did not give a depth result (the message says why). ``retry_after_s``: how long
    Binance asked the client to wait (429 / 418: REST ``Retry-After`` header in seconds, WS API
    ``error.data.retryAfter`` in ms since the epoch; "General API Information", LIMITS), else None."""

    def __init__(self, msg: str, retry_after_s: float | None = None):
        super().__init__(msg)
        self.retry_after_s = retry_after_s


#: Longest wait honoured from a Retry-After (s): a longer one (an IP ban) is capped and retried then.
MAX_RETRY_AFTER_S = 300.0


def _retry_after_header(v) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return min(max(x, 0.0), MAX_RETRY_AFTER_S) if x == x else None


def _retry_after_ms_epoch(v) -> float | None:
    if type(v) is not int:
        return None
    return min(max((v - time.time_ns() // 1_000_000) / 1000.0, 0.0), MAX_RETRY_AFTER_S)


class _ApiListener(WSListener):
    def __init__(self, client: "WsApiClient"):
        self.client = client

    def on_ws_frame(self, transport, frame):
        mt = frame.msg_type
        if mt == WSMsgType.TEXT:
            self.client._answer(time.time_ns(), frame.get_payload_as_bytes())
        elif mt == WSMsgType.CLOSE:
            try:
                transport.send_close(frame.get_close_code(), frame.get_close_message())
            finally:
                transport.disconnect()

    def on_ws_disconnected(self, transport):
        self.client._lost()


class WsApiClient:
    """A small request/answer client on one persistent WebSocket API connection (connected on first use,
    reconnected on the next request after a loss). ``await request(method, params, timeout)`` returns
    ``(ts_local_ns, answer dict)``; answers are matched by ``id``; answers without a pending id are ignored."""

    def __init__(self, url: str, connect_timeout: float = 5.0):
        self.url = url
        self.connect_timeout = connect_timeout
        self.transport = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future] = {}
        self._connecting: asyncio.Task | None = None
        self.requests = self.failures = self.connects = 0

    def _answer(self, ts: int, payload: bytes) -> None:
        try:
            msg = orjson.loads(payload)
        except orjson.JSONDecodeError:
            log.warning("WS API: an answer that is not JSON ignored: %.80r", payload)
            return
        if type(msg) is not dict:
            return
        fut = self._pending.pop(msg.get("id"), None) if type(msg.get("id")) is int else None
        if fut is not None and not fut.done():
            fut.set_result((ts, msg))

    def _lost(self) -> None:
        self.transport = None
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(SnapshotError("WS API connection lost"))
        self._pending.clear()

    async def _connect(self) -> None:
        transport, _ = await ws_connect(lambda: _ApiListener(self), self.url,
                                        websocket_handshake_timeout=self.connect_timeout,
                                        max_frame_size=MAX_BODY_BYTES)
        self.transport = transport
        self.connects += 1

    async def request(self, method: str, params: dict, timeout: float = 5.0):
        self.requests += 1
        try:
            if self.transport is None:
                if self._connecting is None or self._connecting.done():
                    self._connecting = asyncio.ensure_future(self._connect())
                await wait_within(asyncio.shield(self._connecting), timeout)
            rid = next(self._ids)
            fut = asyncio.get_running_loop().create_future()
            self._pending[rid] = fut
            self.transport.send(WSMsgType.TEXT, orjson.dumps({"id": rid, "method": method, "params": params}))
            try:
                return await wait_within(fut, timeout)
            finally:
                self._pending.pop(rid, None)
        except SnapshotError:
            self.failures += 1
            raise
        except asyncio.TimeoutError:
            self.failures += 1
            raise SnapshotError(f"WS API {method}: no answer within {timeout:g} s") from None
        except Exception as exc:                              # noqa: BLE001 - connect errors of any kind
            self.failures += 1
            raise SnapshotError(f"WS API {method}: {type(exc).__name__}: {str(exc)[:160]}") from None

    async def close(self) -> None:
        if self._connecting is not None and not self._connecting.done():
            self._connecting.cancel()
        t = self.transport
        if t is not None:
            try:
                t.send_close()
            except Exception:                                  # noqa: BLE001
                pass
            t.disconnect()
        self._lost()


async def ws_api_depth(client: WsApiClient, symbol: str, limit: int, timeout: float = 5.0):
    """``(ts_local_ns, result)`` of the WebSocket API ``depth`` request; SnapshotError otherwise."""
    ts, msg = await client.request("depth", {"symbol": symbol, "limit": limit}, timeout)
    status = msg.get("status")
    if status != 200:
        err = msg.get("error")
        ra = None
        if status in (418, 429) and type(err) is dict and type(err.get("data")) is dict:
            ra = _retry_after_ms_epoch(err["data"].get("retryAfter"))
        raise SnapshotError(f"WS API depth {symbol}: status {str(status)[:10]} {str(err)[:160]}", ra)
    return ts, msg.get("result")


async def rest_json(session, url: str, params: dict, timeout: float = 5.0):
    """``(ts_local_ns, parsed JSON)`` of a public REST GET (aiohttp ``session``); SnapshotError otherwise."""
    import aiohttp
    try:
        async with session.get(url, params=params, timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            body = await resp.content.read(MAX_BODY_BYTES + 1)
            ts = time.time_ns()
            if len(body) > MAX_BODY_BYTES:
                raise SnapshotError(f"GET {url}: body longer than {MAX_BODY_BYTES} bytes")
            if resp.status != 200:
                ra = _retry_after_header(resp.headers.get("Retry-After")) if resp.status in (418, 429) else None
                raise SnapshotError(f"GET {url}: HTTP {resp.status} {body[:160]!r}", ra)
    except SnapshotError:
        raise
    except asyncio.TimeoutError:
        raise SnapshotError(f"GET {url}: no answer within {timeout:g} s") from None
    except Exception as exc:                                  # noqa: BLE001 - aiohttp / OS errors
        raise SnapshotError(f"GET {url}: {type(exc).__name__}: {str(exc)[:160]}") from None
    try:
        return ts, orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise SnapshotError(f"GET {url}: not JSON ({exc})") from None
