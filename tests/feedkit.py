"""A small session harness for the market-data feed tests: one mmcore_ext L2Book per symbol fed the way the replay
feeds it (snapshot -> load_snapshot, diff -> apply_diff; not synced -> request_snapshot), states recorded, and
checkpoints against the emulator's own books."""
from __future__ import annotations

import asyncio

import aiohttp

from mmcore.instruments import load_instrument
from mmcore.venues.base import LIVE
from mmcore.venues.binance.feed import BinanceFeed, FeedSettings
from mmcore_ext.book import ASK, BID, GAP, SYNCED, L2Book, sync_rule_for_market
from mmcore_ext.events import DepthDiff, DepthSnapshot, Trade

from emukit import until

TOP = 20


class Harness:
    def __init__(self, market: str, symbols, port: int, **settings):
        self.market, self.symbols = market, tuple(symbols)
        self.books = {s: L2Book(sync_rule_for_market(market)) for s in self.symbols}
        self.states: dict[str, list] = {s: [] for s in self.symbols}
        self.trades: dict[str, list] = {s: [] for s in self.symbols}
        self.gaps = {s: 0 for s in self.symbols}
        self.port = port
        kw = dict(endpoint=f"http://127.0.0.1:{port}", watchdog_s=5.0, reconnect_initial_s=0.05,
                  reconnect_max_s=0.5, polling_interval_s=0.2)
        kw.update(settings)
        self.settings = FeedSettings(**kw)
        inst = {s: load_instrument(market, s) for s in self.symbols}
        self.feed = BinanceFeed(market, self.symbols, inst, self.settings, self.on_event, self.on_state)

    def on_event(self, sym, ev):
        t = type(ev)
        book = self.books[sym]
        if t is DepthDiff:
            rc = book.apply_diff(ev)
            if rc == GAP:
                self.gaps[sym] += 1
            if book.state != SYNCED:
                self.feed.request_snapshot(sym)
        elif t is DepthSnapshot:
            book.load_snapshot(ev)
            if book.state != SYNCED:
                self.feed.request_snapshot(sym)
        elif t is Trade:
            self.trades[sym].append(ev.trade_id)

    def on_state(self, sym, state, reason):
        self.states[sym].append((state, reason))

    def state(self, sym):
        return self.states[sym][-1][0] if self.states[sym] else None

    async def wait_state(self, state, timeout=10.0, symbols=None):
        syms = symbols or self.symbols
        await until(lambda: all(self.state(s) == state for s in syms), timeout, f"{state} on {syms}")

    async def checkpoint(self, emu, lines: int, timeout: float = 10.0) -> None:
        """Let the emulator replay ``lines`` more lines, pause, wait for the feed's books to reach the emulator's
        update ids, and compare the top TOP levels of every symbol."""
        m = emu.market
        m.pause_after = m.lines + lines
        m.resume()
        await until(lambda: m.paused or m.done, timeout, "the emulator to pause")

        def caught_up():
            return all(self.books[s].state == SYNCED and
                       self.books[s].last_update_id >= m.symbols[s].book.last_update_id for s in self.symbols)
        await until(caught_up, timeout, "the feed's books to catch up with the emulator's")
        await asyncio.sleep(0.05)
        for s in self.symbols:
            mine, theirs = self.books[s], m.symbols[s].book
            # equal, or (USDⓈ-M) a snapshot loaded since the last diff: its lastUpdateId is the U of the next
            # recorded diff (the emulator reads ahead, see mmcore.sim.emulator.market), the levels the same
            assert mine.last_update_id == theirs.last_update_id or (
                self.market == "binance_usdm" and mine.last_update_id == m.symbols[s].source.next_diff_first_id()), \
                (s, mine.last_update_id, theirs.last_update_id)
            assert mine.levels(BID, TOP) == theirs.levels(BID, TOP), s
            assert mine.levels(ASK, TOP) == theirs.levels(ASK, TOP), s


async def fault(port: int, kind: str, **params):
    async with aiohttp.ClientSession() as s:
        async with s.post(f"http://127.0.0.1:{port}/_emulator/fault", json={"kind": kind, **params}) as r:
            assert r.status == 200, await r.text()
            return await r.json()
