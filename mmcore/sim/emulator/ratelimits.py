"""REQUEST_WEIGHT and ORDERS limits per account (requests without an API key share one bucket, the "IP"), in fixed
windows aligned to the epoch, with Binance's headers and WS API ``rateLimits`` arrays.

[S-LIMITS][S-REST-OLD][S-WSAPI] (research notes /work/research/binance_wire.md §3.1, §5.3): every answer carries
``X-MBX-USED-WEIGHT-1M``; an order answer ``X-MBX-ORDER-COUNT-10S`` (and ``-1D`` on spot, ``-1M`` on USDⓈ-M);
over the weight limit: 429 ``-1003`` with ``Retry-After`` (seconds); over an order limit: 429 ``-1015`` without
``Retry-After``. WS API answers carry ``rateLimits`` entries ``{rateLimitType, interval, intervalNum, limit,
count}`` unless ``returnRateLimits=false``; its 429 error has ``data.retryAfter`` (ms epoch). Weights (§3.3, §5.1):
"""
from __future__ import annotations

import math
import time

from mmcore.sim.emulator.errors import TOO_MANY_ORDERS, TOO_MANY_WEIGHT, BinanceError

#: Request weights by operation (spot REST = WS API, §5.1; USDⓈ-M from ccxt's cost table = the documented weights).
SPOT_WEIGHTS = {"ping": 1, "time": 1, "exchangeInfo": 20, "order.place": 1, "order.cancel": 1, "order.status": 4,
                "order.cancelReplace": 1, "openOrders.status": 6, "openOrders.status.all": 80,
                "openOrders.cancelAll": 1, "myTrades": 20, "account.status": 20, "userDataStream.subscribe": 2,
                "userDataStream.unsubscribe": 2, "session.status": 2, "connect": 2}
UM_WEIGHTS = {"ping": 1, "time": 1, "exchangeInfo": 1, "order.place": 0, "order.cancel": 1, "order.status": 1,
              "order.modify": 1, "openOrders.status": 1, "openOrders.status.all": 40, "openOrders.cancelAll": 1,
              "myTrades": 5, "account.status": 5, "userDataStream": 1, "connect": 0}


def spot_depth_weight(limit: int) -> int:
    return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250


def um_depth_weight(limit: int) -> int:
    return 2 if limit <= 50 else 5 if limit <= 100 else 10 if limit <= 500 else 20


class _Window:
    __slots__ = ("seconds", "limit", "start", "count")

    def __init__(self, seconds: int, limit: int):
        self.seconds, self.limit = seconds, limit
        self.start = 0
        self.count = 0

    def roll(self, now: float) -> None:
        start = int(now // self.seconds) * self.seconds
        if start != self.start:
            self.start, self.count = start, 0

    def retry_after(self, now: float) -> int:
        return max(1, math.ceil(self.start + self.seconds - now))


_NAMES = {60: ("MINUTE", 1, "1M", "1 MINUTE"), 10: ("SECOND", 10, "10S", "10 SECOND"),
          86400: ("DAY", 1, "1D", "1 DAY")}


class Bucket:
    def __init__(self, settings):
        self.weight = _Window(60, settings.weight_per_minute)
        self.orders = [w for w in (_Window(10, settings.orders_per_10s), _Window(60, settings.orders_per_minute),
                                   _Window(86400, settings.orders_per_day)) if w.limit > 0]


class RateLimits:
    def __init__(self, settings):
        self.settings = settings
        self.buckets: dict[str, Bucket] = {}

    def bucket(self, key: str) -> Bucket:
        b = self.buckets.get(key)
        if b is None:
            b = self.buckets[key] = Bucket(self.settings)
        return b

    def use_weight(self, key: str, weight: int) -> None:
        """Count ``weight``; raises 429 -1003 (with Retry-After) when the minute's limit is exceeded."""
        now = time.time()
        w = self.bucket(key).weight
        w.roll(now)
        w.count += weight
        if w.limit and w.count > w.limit:
            ra = w.retry_after(now)
            raise BinanceError(-1003, TOO_MANY_WEIGHT.format(limit=w.limit, interval="1 MINUTE"), 429,
                               data={"retryAfter": (w.start + w.seconds) * 1000}, headers={"Retry-After": str(ra)})

    def use_order(self, key: str) -> None:
        """Count one new order; raises 429 -1015 when an order limit is exceeded (no Retry-After)."""
        now = time.time()
        for w in self.bucket(key).orders:
            w.roll(now)
            w.count += 1
        for w in self.bucket(key).orders:
            if w.count > w.limit:
                raise BinanceError(-1015, TOO_MANY_ORDERS.format(limit=w.limit, interval=_NAMES[w.seconds][3]), 429,
                                   data={"retryAfter": (w.start + w.seconds) * 1000})

    def headers(self, key: str, orders: bool) -> dict:
        now = time.time()
        b = self.bucket(key)
        b.weight.roll(now)
        out = {"X-MBX-USED-WEIGHT-1M": str(b.weight.count)}
        if orders:
            for w in b.orders:
                w.roll(now)
                out[f"X-MBX-ORDER-COUNT-{_NAMES[w.seconds][2]}"] = str(w.count)
        return out

    def rate_limits(self, key: str, orders: bool) -> list:
        now = time.time()
        b = self.bucket(key)
        ws = [b.weight] + (b.orders if orders else [])
        out = []
        for w in ws:
            w.roll(now)
            iv, num, _, _ = _NAMES[w.seconds]
            out.append({"rateLimitType": "REQUEST_WEIGHT" if w is b.weight else "ORDERS", "interval": iv,
                        "intervalNum": num, "limit": w.limit, "count": w.count})
        return out
