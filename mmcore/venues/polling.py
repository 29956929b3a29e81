"""REST polling fallback (venue-neutral): depth snapshots and recent trades every ``interval_s`` while the
WebSocket cannot be established.

The venue supplies two coroutines per symbol, ``fetch_depth(symbol) -> DepthSnapshot`` and
``fetch_trades(symbol) -> list[Trade]`` (already bounded and decoded by the venue's codec, any order; either may
raise any Exception: counted, logged, retried at the next tick). Snapshots are delivered as they come (the book
replaces itself with a newer one, see ``mmcore_ext.book.L2Book.load_snapshot``); trades are delivered once each,
oldest first, deduplicated by trade id: the first poll of a symbol only sets the high-water mark (those trades are
history, not news), later polls deliver the trades with a larger id.
"""
from __future__ import annotations

import asyncio
import logging

from mmcore.aio import raise_if_cancelled

log = logging.getLogger("mmcore.venues.polling")

MAX_WARNINGS = 20


class RestPoller:
    """Poll ``symbols`` every ``interval_s`` until :meth:`stop`; events go to ``on_event(symbol, ev)``."""

    def __init__(self, symbols, fetch_depth, fetch_trades, on_event, interval_s: float):
        self.symbols = tuple(symbols)
        self.fetch_depth, self.fetch_trades = fetch_depth, fetch_trades
        self.on_event = on_event
        self.interval_s = interval_s
        self.last_trade_id: dict[str, int] = {}
        self.polls = self.snapshots = self.trades = self.failures = 0
        self._task: asyncio.Task | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if not self.running:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="rest-poller")

    async def stop(self) -> None:
        t, self._task = self._task, None
        if t is not None:
            t.cancel()
            try:
                await t
            except (asyncio.CancelledError, Exception):        # noqa: BLE001 - stopping
                pass

    def _fail(self, what: str, symbol: str, exc: Exception) -> None:
        self.failures += 1
        if self.failures <= MAX_WARNINGS or self.failures % 100 == 0:
            log.warning("polling %s %s failed (%d failures): %s", what, symbol, self.failures, str(exc)[:200])

    async def poll_once(self, symbol: str) -> None:
        try:
            snap = await self.fetch_depth(symbol)
        except asyncio.CancelledError:
            raise
        except Exception as exc:                              # noqa: BLE001 - one failed poll never stops it
            self._fail("depth", symbol, exc)
        else:
            self.snapshots += 1
            self.on_event(symbol, snap)
        try:
            trades = await self.fetch_trades(symbol)
        except asyncio.CancelledError:
            raise
        except Exception as exc:                              # noqa: BLE001
            self._fail("trades", symbol, exc)
            return
        trades = sorted(trades, key=lambda t: t.trade_id)
        last = self.last_trade_id.get(symbol)
        if trades:
            self.last_trade_id[symbol] = max(trades[-1].trade_id, last if last is not None else -1)
        if last is None:
            return
        for t in trades:
            if t.trade_id > last:
                self.trades += 1
                self.on_event(symbol, t)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            raise_if_cancelled()
            t0 = loop.time()
            self.polls += 1
            await asyncio.gather(*(self.poll_once(s) for s in self.symbols))
            await asyncio.sleep(max(0.0, self.interval_s - (loop.time() - t0)))

    def counters(self) -> dict:
        return {"polls": self.polls, "poll_snapshots": self.snapshots, "poll_trades": self.trades,
                "poll_failures": self.failures}
