"""BinanceFeed: the :class:`mmcore.venues.base.MarketDataFeed` of Binance spot and USDⓈ-M.

Glue of :mod:`.urls` (where), :mod:`.streams` (one picows connection per route, frames decoded in the callback),
:mod:`.snapshots` (WebSocket API ``depth``, REST fallback) and :mod:`mmcore.venues.polling` (REST polling when the
WebSocket cannot be established).

States per symbol (``on_state(symbol, state, reason)``, reported on change only):

- ``STALE``: at start, after every (re)connect, disconnect, watchdog trip or rotation of a route the symbol uses,
  and when a snapshot is requested (a resync, e.g. after a sequence gap the session's book found). After every
  (re)connect the feed requests a snapshot of each of the route's symbols itself;
- ``LIVE``: every route of the symbol is connected and a snapshot of it has been delivered since it went stale
  (checked when the snapshot is delivered and at every frame of the symbol);
- ``POLLING``: ``polling_after_failures`` consecutive failed WebSocket connects of a route started the REST poller
  (counted in ``polling_switches``; period :func:`polling_interval`, top 100 levels + recent trades); the
  WebSocket is retried in the background and, once every route is up again, the poller stops
  (``polling_exits``) and the symbols resync (STALE -> LIVE).

Snapshots: one in flight per symbol (a request while one is in flight is merged into it), at least
:data:`SNAPSHOT_MIN_INTERVAL_S` between two of a symbol; WebSocket API first, REST on any failure, retried with
backoff until one succeeds (each failed round counted in ``snapshot_failures``); a 429 / 418 answer's
Retry-After (REST header, WS API ``retryAfter``) is waited out before the next round (at most 300 s).
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, fields

from mmcore.aio import raise_if_cancelled
from mmcore.venues.base import LIVE, POLLING, STALE
from mmcore.venues.binance.recording import BinanceDecoder
from mmcore.venues.binance.router import BinanceFrameRouter
from mmcore.venues.binance.snapshots import SnapshotError, WsApiClient, rest_json, ws_api_depth
from mmcore.venues.binance.streams import StreamConnection, backoff_delay
from mmcore.venues.binance.urls import DEPTH_PATH, SPOT, TRADES_PATH, stream_plan, urls_for
from mmcore.venues.polling import RestPoller
from mmcore_ext.binance_codec import MalformedLine

log = logging.getLogger("mmcore.venues.binance.feed")

SNAPSHOT_MIN_INTERVAL_S = 0.25
SNAPSHOT_TIMEOUT_S = 5.0
#: Recent trades fetched per poll (``limit``; Binance's default 500, max 1000).
POLL_TRADES_LIMIT = 100
#: Depth levels per polled snapshot (weight 5 on both markets; 1000 levels would cost 50 / 20).
POLL_DEPTH_LIMIT = 100
#: REST weight of one poll of one symbol: depth at POLL_DEPTH_LIMIT + recent trades (spot "Order book" 5 and "Recent
#: trades list" 25: https://developers.binance.com/docs/binance-spot-api-docs/rest-api/market-data-endpoints;
#: USDⓈ-M "Order Book" 5 and "Recent Trades List" 5:
#: https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api).
POLL_WEIGHT = {SPOT: 5 + 25, "binance_usdm": 5 + 5}
#: REQUEST_WEIGHT per minute (config/ratelimits.yaml: spot 6000, USDⓈ-M 2400) and the share polling may use.
WEIGHT_PER_MIN = {SPOT: 6000, "binance_usdm": 2400}
POLL_WEIGHT_SHARE = 0.4


def polling_interval(venue: str, n_symbols: int, configured_s: float) -> float:
    """The polling period (s): ``polling_interval_s``, lengthened so that polling every symbol uses at most
    POLL_WEIGHT_SHARE of the venue's request weight per minute (spot, 2 symbols: 1.5 s; 10 symbols: 7.5 s)."""
    return max(configured_s, n_symbols * POLL_WEIGHT[venue] * 60.0 / (POLL_WEIGHT_SHARE * WEIGHT_PER_MIN[venue]))


@dataclass(frozen=True)
class FeedSettings:
    """The ``venue.*`` values the feed uses (defaults: config/default.yaml)."""

    testnet: bool = False
    endpoint: str | None = None
    depth_stream: str = "depth@100ms"
    trade_stream: str = "auto"
    book_ticker: bool = True
    snapshot_limit: int = 1000
    watchdog_s: float = 10.0
    reconnect_initial_s: float = 0.2
    reconnect_max_s: float = 30.0
    rotate_after_s: float = 85000.0
    polling_after_failures: int = 5
    polling_interval_s: float = 1.0

    @classmethod
    def from_config(cls, config, **overrides) -> "FeedSettings":
        """From a validated :class:`mmcore.config.Config` (``venue.*``), then ``overrides``."""
        vals = {f.name: config.get(f"venue.{f.name}") for f in fields(cls)}
        vals.update(overrides)
        return cls(**vals)

    @classmethod
    def of(cls, settings) -> "FeedSettings":
        """A FeedSettings from a FeedSettings, a Config, or a dict (keys with or without ``venue.``)."""
        if isinstance(settings, cls):
            return settings
        if settings is None:
            return cls()
        from mmcore.config import Config
        if isinstance(settings, Config):
            return cls.from_config(settings)
        names = {f.name for f in fields(cls)}
        vals = {}
        for k, v in dict(settings).items():
            k = k[6:] if k.startswith("venue.") else k
            if k in names:
                vals[k] = v
        return cls(**vals)


class BinanceFeed:
    """Market data of several symbols of one Binance venue (see the module docstring).

    Parameters
    ----------
    venue : str
        ``binance_spot`` or ``binance_usdm``.
    symbols : iterable of str
    instruments : dict
        ``{symbol: Instrument}`` (grids and bounds for the codec).
    settings : FeedSettings, Config or dict
        The ``venue.*`` values.
    on_event, on_state : callables
        See :mod:`mmcore.venues.base`.
    raw_sink : callable, optional
        ``raw_sink(ts_local_ns, payload)`` for every frame received (``record``).

    Raises
    ------
    ValueError
        Not a Binance venue, no symbol, a symbol without an instrument, a bad endpoint.
    """

    def __init__(self, venue: str, symbols, instruments: dict, settings, on_event, on_state, raw_sink=None):
        self.venue = venue
        self.symbols = tuple(symbols)
        if not self.symbols:
            raise ValueError("no symbol")
        missing = [s for s in self.symbols if s not in instruments]
        if missing:
            raise ValueError(f"no instrument for {', '.join(missing)}")
        self.settings = FeedSettings.of(settings)
        s = self.settings
        self.urls = urls_for(venue, s.testnet, s.endpoint)
        self.on_event, self.on_state = on_event, on_state
        self.decoders = {sym: BinanceDecoder(instruments[sym]) for sym in self.symbols}
        self.router = BinanceFrameRouter(self.decoders)
        plan = stream_plan(venue, self.symbols, s.depth_stream, s.trade_stream, s.book_ticker)
        self.conns = [StreamConnection("spot" if r == "" else r.strip("/"), self.urls.combined_stream_url(r, names),
                                       self.symbols, self.router, self, s, raw_sink,
                                       frame_watchdog=not all(n.endswith(("@trade", "@aggTrade")) for n in names))
                      for r, names in plan.items()]
        self.ws_api = WsApiClient(self.urls.ws_api)
        self.state: dict[str, str | None] = {sym: None for sym in self.symbols}
        self._resynced = {sym: False for sym in self.symbols}
        self._inflight: dict[str, asyncio.Task] = {}
        self._last_snapshot = {sym: 0.0 for sym in self.symbols}
        self._session = None
        self._closed = False
        self.poll_interval_s = polling_interval(venue, len(self.symbols), s.polling_interval_s)
        self.poller = RestPoller(self.symbols, self._poll_depth, self._poll_trades, self._deliver_polled,
                                 self.poll_interval_s)
        self.snapshots = self.snapshots_ws = self.snapshots_rest = self.snapshot_failures = 0
        self.polling_switches = self.polling_exits = 0
        self.polled_dropped = 0                 # polled events that arrived after the hand-back (not delivered)
        self.stale_reports = 0

    # --- MarketDataFeed ---
    async def start(self) -> None:
        import aiohttp
        self._session = aiohttp.ClientSession()
        for sym in self.symbols:
            self._set(sym, STALE, "starting")
        for c in self.conns:
            c.start()
        await asyncio.gather(*(c.first_attempt() for c in self.conns))

    def request_snapshot(self, symbol: str) -> None:
        if self._closed or symbol not in self.state:
            return
        if self.state[symbol] == LIVE:
            self._set(symbol, STALE, "resync requested")
        self._resynced[symbol] = False
        t = self._inflight.get(symbol)
        if t is not None and not t.done():
            return
        self._inflight[symbol] = asyncio.get_running_loop().create_task(self._snapshot(symbol),
                                                                       name=f"snapshot-{symbol}")

    async def close(self) -> None:
        self._closed = True
        for c in self.conns:
            await c.close()
        await self.poller.stop()
        for t in list(self._inflight.values()):
            t.cancel()
        for t in list(self._inflight.values()):
            try:
                await t
            except (asyncio.CancelledError, Exception):        # noqa: BLE001 - closing
                pass
        await self.ws_api.close()
        if self._session is not None:
            await self._session.close()

    def counters(self) -> dict:
        out = {k: 0 for k in ("frames", "malformed", "reconnects", "watchdog_trips", "rotations",
                              "connect_failures")}
        routes = {}
        for c in self.conns:
            cc = c.counters()
            routes[c.name] = cc
            for k, v in cc.items():
                out[k] += v
        out.update(snapshots=self.snapshots, snapshots_ws=self.snapshots_ws, snapshots_rest=self.snapshots_rest,
                   snapshot_failures=self.snapshot_failures, polling_switches=self.polling_switches,
                   polling_exits=self.polling_exits, polled_dropped=self.polled_dropped, routes=routes,
                   **self.poller.counters())
        return out

    # --- states ---
    def _set(self, sym: str, state: str, reason: str) -> None:
        if self.state[sym] == state:
            return
        self.state[sym] = state
        if state == STALE:
            self.stale_reports += 1
        log.info("%s %s: %s (%s)", self.venue, sym, state, reason)
        self.on_state(sym, state, reason)

    def _routes_up(self) -> bool:
        return all(c.connected for c in self.conns)

    # --- from the stream connections ---
    def on_frame_event(self, sym: str, ev) -> None:
        self.on_event(sym, ev)
        if self.state[sym] == STALE and self._resynced[sym] and self._routes_up():
            self._set(sym, LIVE, "frames flow, book resynced")

    def route_up(self, conn: StreamConnection) -> None:
        if self.poller.running and self._routes_up():
            self.polling_exits += 1
            log.warning("%s: WebSocket back; REST polling stops (%d switches back)", self.venue, self.polling_exits)
            asyncio.get_running_loop().create_task(self.poller.stop())
            for sym in self.symbols:
                self._set(sym, STALE, "WebSocket back from polling, resyncing")
        for sym in conn.symbols:
            if self.state[sym] != POLLING:
                self._set(sym, STALE, f"{conn.name} stream connected, resyncing")
            self.request_snapshot(sym)

    def route_down(self, conn: StreamConnection, reason: str) -> None:
        for sym in conn.symbols:
            if self.state[sym] != POLLING:
                self._set(sym, STALE, f"{conn.name} stream: {reason}")
            self._resynced[sym] = False

    def connect_failed(self, conn: StreamConnection, failures: int) -> None:
        if failures >= self.settings.polling_after_failures and not self.poller.running and not self._closed:
            self.polling_switches += 1
            log.warning("%s: %d WebSocket connects failed in a row on %s; REST polling takes over every %g s",
                        self.venue, failures, conn.name, self.poll_interval_s)
            for sym in self.symbols:
                self._set(sym, POLLING, f"{failures} failed WebSocket connects")
            self.poller.start()

    # --- snapshots ---
    async def fetch_snapshot(self, sym: str):
        """A DepthSnapshot of ``sym``: WebSocket API ``depth`` first, REST on failure (and not while the WebSocket
        API asked to wait: 429/418). Raises SnapshotError or MalformedLine (both failed); a SnapshotError's
        ``retry_after_s`` is the longest wait the venue asked for."""
        dec = self.decoders[sym]
        limit = self.settings.snapshot_limit
        ws_wait = None
        try:
            ts, result = await ws_api_depth(self.ws_api, sym, limit, SNAPSHOT_TIMEOUT_S)
            snap = dec.snapshot_from(ts, result)
            self.snapshots_ws += 1
            return snap
        except (SnapshotError, MalformedLine) as exc:
            ws_wait = getattr(exc, "retry_after_s", None)
            log.info("%s %s: WS API depth failed (%s); REST fallback", self.venue, sym, exc)
        try:
            snap = await self.rest_snapshot(sym)
        except SnapshotError as exc:
            if ws_wait is not None and (exc.retry_after_s or 0) < ws_wait:
                exc.retry_after_s = ws_wait
            raise
        self.snapshots_rest += 1
        return snap

    async def rest_snapshot(self, sym: str, limit: int | None = None):
        limit = limit or self.settings.snapshot_limit
        ts, body = await rest_json(self._session, self.urls.rest_url(DEPTH_PATH[self.venue]),
                                   {"symbol": sym, "limit": str(limit)}, SNAPSHOT_TIMEOUT_S)
        return self.decoders[sym].snapshot_from(ts, body)

    async def _snapshot(self, sym: str) -> None:
        s = self.settings
        failures = 0
        while not self._closed:
            raise_if_cancelled()
            wait = self._last_snapshot[sym] + SNAPSHOT_MIN_INTERVAL_S - time.monotonic()
            if failures:
                wait = max(wait, backoff_delay(failures, s.reconnect_initial_s, min(5.0, s.reconnect_max_s)))
            if wait > 0:
                await asyncio.sleep(wait)
            self._last_snapshot[sym] = time.monotonic()
            try:
                snap = await self.fetch_snapshot(sym)
            except (SnapshotError, MalformedLine) as exc:
                failures += 1
                self.snapshot_failures += 1
                ra = getattr(exc, "retry_after_s", None)
                log.warning("%s %s: snapshot failed (%d in a row)%s: %s", self.venue, sym, failures,
                            f", retry after {ra:g} s" if ra else "", exc)
                if ra:
                    self._last_snapshot[sym] = time.monotonic() + ra - SNAPSHOT_MIN_INTERVAL_S
                continue
            self.snapshots += 1
            self._resynced[sym] = True
            self.on_event(sym, snap)
            if self.state[sym] == STALE and self._resynced[sym] and self._routes_up():
                self._set(sym, LIVE, "book resynced, streams up")
            return

    # --- polling ---
    async def _poll_depth(self, sym: str):
        return await self.rest_snapshot(sym, POLL_DEPTH_LIMIT)

    async def _poll_trades(self, sym: str):
        ts, body = await rest_json(self._session, self.urls.rest_url(TRADES_PATH[self.venue]),
                                   {"symbol": sym, "limit": str(POLL_TRADES_LIMIT)}, SNAPSHOT_TIMEOUT_S)
        if type(body) is not list or len(body) > 1000:
            raise SnapshotError("recent trades: not a list of at most 1000 trades")
        dec = self.decoders[sym]
        out = []
        for t in body:
            if type(t) is not dict:
                raise MalformedLine("recent trade is not an object")
            # REST trade {id, price, qty, time, isBuyerMaker} as a trade frame, bounded by the codec
            msg = {"data": {"e": "trade", "s": sym, "E": t.get("time"), "t": t.get("id"), "p": t.get("price"),
                            "q": t.get("qty"), "m": t.get("isBuyerMaker")}}
            out.append(dec.event_of(msg, ts))
        return out

    def _deliver_polled(self, sym: str, ev) -> None:
        # Only while the symbol is POLLING: a poll that completes after the WebSocket came back (route_up sets
        # STALE and stops the poller, which may have a request in flight) would deliver trades the stream
        # delivers too (REST trade ids are not aggTrade ids, so they cannot be matched) and an older book.
        if self.state[sym] != POLLING:
            self.polled_dropped += 1
            return
        self.on_event(sym, ev)
