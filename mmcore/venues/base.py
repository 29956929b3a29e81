"""What a venue supplies to a paper or live session: market data, order entry, account queries, user data.

The engine never imports a venue and a venue never imports the engine: a session (:mod:`mmcore.runners.live`)
wires one to the other through these interfaces. Prices are int64 ticks, quantities int64 lots, times int64 ns
since the epoch, sides +1 buy / -1 sell; events are the typed events of :mod:`mmcore_ext.events`, execution
reports the types of :mod:`mmcore.execution`.

Market data
    A :class:`MarketDataFeed` delivers, for each symbol, typed events synchronously from the transport's
    receive callback (no queue hop): ``on_event(symbol, ev)``. Depth diffs are delivered as they arrive; the
    symbol's book (in the session) applies Binance's sync rules, and when it is not synced (start, sequence
    gap) the session calls ``request_snapshot(symbol)``: the feed fetches a depth snapshot (WebSocket API or
    REST) and delivers it as a :class:`~mmcore_ext.events.DepthSnapshot` through ``on_event``. Feed-level
    trouble is reported through ``on_state(symbol, state, reason)``: ``STALE`` (disconnected, watchdog,
    resubscribing: the session pauses the symbol and cancels its orders), ``LIVE`` (frames flow again),
    ``POLLING`` (the REST polling fallback serves the symbol; the engine does not know the difference).

Execution
    ``execution(symbol)`` returns the symbol's :class:`ExecutionClient`: the engine's order manager calls
    ``submit``/``cancel`` (non-blocking: the request bytes are written before it returns, the answer comes
    back as an execution report), and recovery (:func:`mmcore.engine.recovery.recover`) awaits the queries.
    Execution reports of every symbol go to ``on_report(symbol, report)``.
"""
from __future__ import annotations

from typing import Callable, Protocol

from mmcore.execution import OrderFilled, VenueOrder

#: Feed states reported through ``on_state``.
LIVE = "live"
STALE = "stale"
POLLING = "polling"

#: ``on_event(symbol, event)``: one typed market event of ``symbol``.
OnEvent = Callable[[str, object], None]
#: ``on_state(symbol, state, reason)``: the feed's state for ``symbol`` changed (LIVE / STALE / POLLING).
OnState = Callable[[str, str, str], None]
#: ``on_report(symbol, report)``: one execution report (mmcore.execution types) of ``symbol``.
OnReport = Callable[[str, object], None]


class MarketDataFeed(Protocol):
    """Market data of several symbols of one venue (see the module docstring)."""

    symbols: tuple[str, ...]

    async def start(self) -> None:
        """Connect and subscribe; returns once the first connection attempt is made (reconnects go on in the
        background until :meth:`close`). Raises ValueError for a configuration the venue refuses."""

    def request_snapshot(self, symbol: str) -> None:
        """Fetch a depth snapshot of ``symbol`` and deliver it through ``on_event`` (asynchronously)."""

    async def close(self) -> None:
        """Stop reconnecting and close every connection."""

    def counters(self) -> dict:
        """Frames, malformed frames, reconnects, resyncs, polling switches, ... (for the summary)."""


class ExecutionClient(Protocol):
    """Order entry and queries for one symbol (the order manager's ``exec`` and recovery's venue)."""

    def submit(self, ts_ns: int, coid: str, side: int, price: int, qty: int, post_only: bool = True) -> None:
        """Send a new limit order (post-only, or immediate-or-cancel when ``post_only`` is False)."""

    def cancel(self, ts_ns: int, coid: str) -> None:
        """Request the cancel of an order by client order id."""

    async def open_orders(self) -> list[VenueOrder]:
        """The symbol's open orders of the account (including received but not yet accepted ones)."""

    async def fills_since(self, ts_ns: int) -> list[OrderFilled]:
        """The symbol's fills of the account at or after ``ts_ns`` (venue time), oldest first."""

    async def order(self, coid: str) -> VenueOrder | None:
        """The venue's record of one order, whatever its status; None if the venue does not know it."""


class Venue(Protocol):
    """A connected venue: one market-data feed and one order-entry connection for several symbols."""

    name: str
    feed: MarketDataFeed

    def execution(self, symbol: str) -> ExecutionClient:
        """The execution client of ``symbol`` (one per symbol, sharing the venue's connection)."""

    async def start(self) -> None:
        """Open the order-entry and user-data connections (live mode); the feed is started separately."""

    async def close(self) -> None:
        """Close every connection."""
