"""Binance REST over aiohttp with signing, through the venue's RateLimiter and RetryPolicy; ccxt for order entry
as the fallback path (imported lazily).

Used for what the WebSocket API does not serve (USDⓈ-M open orders ``GET /fapi/v1/openOrders`` and account trades
``GET /fapi/v1/userTrades``), and as the fallback of every query. Requests: signed query string
(:func:`mmcore.venues.binance.signing.rest_query`), key in ``X-MBX-APIKEY``
(https://developers.binance.com/docs/binance-spot-api-docs/rest-api/request-security); every answer goes through
:func:`mmcore.venues.ratelimit.call_with_retries` (``X-MBX-USED-WEIGHT-*`` / ``X-MBX-ORDER-COUNT-*`` headers, 429
Retry-After, 418, 5XX), which never logs parameters. Base URLs: spot ``https://api.binance.com`` (testnet
``https://testnet.binance.vision``), USDⓈ-M ``https://fapi.binance.com`` (demo trading
``https://demo-fapi.binance.com``, ccxt's ``urls['demo']``); an ``endpoint`` replaces scheme and host.
"""
from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit

import aiohttp
import orjson

from mmcore.venues.binance.signing import rest_query
from mmcore.venues.ratelimit import RetryPolicy, call_with_retries

SPOT = "binance_spot"
USDM = "binance_usdm"
REST_URLS = {(SPOT, False): "https://api.binance.com", (SPOT, True): "https://testnet.binance.vision",
             (USDM, False): "https://fapi.binance.com", (USDM, True): "https://demo-fapi.binance.com"}
PATHS = {SPOT: {"open_orders": "/api/v3/openOrders", "my_trades": "/api/v3/myTrades", "query_order": "/api/v3/order",
                "new_order": "/api/v3/order", "cancel_order": "/api/v3/order"},
         USDM: {"open_orders": "/fapi/v1/openOrders", "my_trades": "/fapi/v1/userTrades",
                "query_order": "/fapi/v1/order", "new_order": "/fapi/v1/order", "cancel_order": "/fapi/v1/order",
                "listen_key": "/fapi/v1/listenKey"}}
MAX_BODY = 16 << 20


def rest_base(venue: str, testnet: bool = False, endpoint: str | None = None) -> str:
    """The REST base URL (no trailing slash)."""
    if endpoint:
        e = urlsplit(endpoint)
        return f"{e.scheme}://{e.netloc}"
    return REST_URLS[(venue, bool(testnet))]


class BinanceRest:
    """Signed REST calls of one account. ``get(endpoint, params)`` etc. return the decoded JSON; errors are the
    :mod:`mmcore.venues.ratelimit` exceptions (BusinessRejectError, RateLimitedError, BannedError,
    UnknownStatusError, RetriesExhaustedError) or TimeoutError / aiohttp.ClientError."""

    def __init__(self, venue: str, credentials, limiter, base_url: str, *, recv_window_ms: int = 5000,
                 timeout_s: float = 10.0, offset_ms=lambda: 0, policy: RetryPolicy | None = None):
        self.venue = venue
        self.credentials = credentials
        self.limiter = limiter
        self.base = base_url.rstrip("/")
        self.recv_window_ms = recv_window_ms
        self.timeout_s = timeout_s
        self.offset_ms = offset_ms
        self.policy = policy or RetryPolicy(0.2, 2.0, 3)
        self._session: aiohttp.ClientSession | None = None

    def _sess(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(headers={"X-MBX-APIKEY": self.credentials.api_key},
                                                  timeout=aiohttp.ClientTimeout(total=self.timeout_s))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def signed(self, method: str, endpoint: str, params: dict, *, is_order: bool = False):
        """One signed request (``endpoint``: the rate-limit table's name, e.g. ``open_orders``)."""
        path = PATHS[self.venue][endpoint]

        async def attempt():
            p = dict(params, timestamp=time.time_ns() // 1_000_000 + self.offset_ms(), recvWindow=self.recv_window_ms)
            url = f"{self.base}{path}?{rest_query(self.credentials.signer, p)}"
            async with self._sess().request(method, url) as r:
                body = await r.content.read(MAX_BODY)
                try:
                    data = orjson.loads(body) if body else None
                except orjson.JSONDecodeError:
                    data = body[:300].decode("utf-8", "replace")
                return r.status, dict(r.headers), data
        _, _, body = await call_with_retries(attempt, endpoint=endpoint, limiter=self.limiter, policy=self.policy,
                                             clock=time.time_ns, sleep=asyncio.sleep, is_order_request=is_order)
        return body

    async def open_orders(self, symbol: str):
        return await self.signed("GET", "open_orders", {"symbol": symbol})

    async def my_trades(self, symbol: str, start_ms: int, limit: int = 1000):
        return await self.signed("GET", "my_trades", {"symbol": symbol, "startTime": start_ms, "limit": limit})

    async def query_order(self, symbol: str, *, coid: str | None = None, order_id: int | None = None):
        p = {"symbol": symbol}
        if coid is not None:
            p["origClientOrderId"] = coid
        if order_id is not None:
            p["orderId"] = order_id
        return await self.signed("GET", "query_order", p)


def ccxt_exchange(venue: str, credentials, endpoint: str | None = None, *, testnet: bool = False,
                  timeout_ms: int = 10000):
    """An unmodified ccxt async exchange with the account's key (the REST fallback / benchmark path). ccxt is
    imported here (~100 MB of RSS). ``endpoint`` replaces every ``urls['api']`` host (as
    :func:`mmcore.venues.binance.markets._ccxt_exchange`); ``testnet`` enables ccxt's sandbox (spot) / demo
    trading (USDⓈ-M). The secret is handed to ccxt only (HMAC keys)."""
    import ccxt.async_support as ccxt_async
    opts = {"fetchCurrencies": False, "fetchMargins": False}
    cls = ccxt_async.binance if venue == SPOT else ccxt_async.binanceusdm
    if venue == SPOT:
        opts["fetchMarkets"] = {"types": ["spot"]}
    ex = cls({"apiKey": credentials.api_key, "secret": credentials.secret_for_ccxt(), "enableRateLimit": False,
              "timeout": timeout_ms, "options": opts})
    if endpoint:
        base = endpoint.rstrip("/")
        ex.urls["api"] = {k: base + urlsplit(v).path for k, v in ex.urls["api"].items() if isinstance(v, str)}
    elif testnet:
        if venue == SPOT:
            ex.set_sandbox_mode(True)
        else:
            ex.enable_demo_trading(True)
    return ex
