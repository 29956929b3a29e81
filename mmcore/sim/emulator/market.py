"""The emulated market: the recordings replayed (several symbols merged by local timestamp), the emulator's own
L2 book per symbol, and the documented streams derived from the recorded ones.

Pacing: the recorded local timestamps pace the replay at ``speed`` times real time (``0``: as fast as the clients
read, with flow control, see :mod:`mmcore.sim.emulator.streams`). The exchange clock is the wall clock; recorded
times only pace. The market opens when every symbol's book has loaded its recorded REST snapshot (lines before are
applied to the books without pacing and without being sent; at most ``PREROLL_MAX_NS`` of recorded time).

Streams (names lowercase, Binance's ``<symbol>@<kind>``):

- recorded frames are sent byte-identical on the stream they were recorded from (USDⓈ-M files: ``@depth@0ms``,
  ``@trade``, ``@bookTicker``; spot files: ``@depth@100ms``, ``@trade``, ``@bookTicker``; any other recorded stream,
  e.g. ``@markPrice@1s``, likewise);
- derived diff-depth streams merge consecutive recorded diffs per window of exchange time ``E`` (window index
  ``E // window_ms``): USDⓈ-M ``@depth@100ms``, ``@depth`` (250 ms), ``@depth@500ms`` from ``@depth@0ms``
  ([UM-DIFF]); spot ``@depth`` (1000 ms) from ``@depth@100ms`` ([S-WSS-25]). A merged event has ``U`` of the
  first diff, ``u`` of the last, ``pu`` of the first (USDⓈ-M), ``E``/``T`` of the last, and every price level once
  with its last quantity ("for same price, latest received update covers the previous one", [UM-LOB]); it is sent
  when the first diff of the next window arrives (and at the end of the recording);
- ``@aggTrade`` from ``@trade``: one aggregate trade per trade, ``a = f = l = t`` (no aggregation; the spot form
  has ``M: true``, the USDⓈ-M form ``nq = q`` [UM-AGG][S-WSS-25]).

Derived frames carry the recorded ``E``/``T`` of the diffs and trades they come from (market data of the
recording), not the wall clock.

Depth snapshots (REST ``depth``, WS API ``depth``) come from the emulator's book and are consistent with every
depth stream ([S-PR383] spot, [UM-LOB] USDⓈ-M, research notes §2): spot ``lastUpdateId`` = the book's last applied
``u`` (the next diff has ``U = lastUpdateId + 1``); USDⓈ-M ``lastUpdateId`` = ``U`` of the next recorded diff of
that symbol (read ahead in the file), so that ``U <= lastUpdateId <= u`` holds for it and every later event has
``u >= lastUpdateId`` (the last applied ``u`` when the recording has no further diff).

Bad input (issue 8): a recording line that the decoder refuses (MalformedLine), that raises anything else, or
whose local time jumps more than ``MAX_TS_JUMP_NS`` ahead is skipped, counted (``malformed`` / ``bad_lines``) and
logged with file name and line number (the first ``MAX_WARNINGS``, then every 1000th); a damaged file ends its
source (logged, counted in ``data_errors``) and the others go on. A diff that would break the book's sequence (a
skipped line before it) is applied anyway on top of the book ("bridged", counted): the emulator's book stays the
exchange's truth and clients see the id jump (a gap) on the stream.
"""
from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections import deque
from pathlib import Path

import orjson

from mmcore.instruments import Instrument
from mmcore.venues.binance.recording import (LINE_TOO_LONG, BinanceDecoder, DataFileError, MalformedLine,
                                             iter_lines, open_recording)
from mmcore_ext.book import ASK, BID, SYNC_SPOT, L2Book, sync_rule_for_market
from mmcore_ext.events import DepthDiff, DepthSnapshot, Trade

log = logging.getLogger("mmcore.sim.emulator.market")

MAX_WARNINGS = 20
MAX_TS_JUMP_NS = 3_600_000_000_000
PREROLL_MAX_NS = 120_000_000_000
RECENT_TRADES = 1000             # trades kept per symbol for REST GET /api/v3/trades, /fapi/v1/trades
LOOKAHEAD_MAX_LINES = 50_000      # lines read ahead to find a symbol's next diff (USDⓈ-M snapshot id)
YIELD_EVERY = 64
USDM_DERIVED = (("depth@100ms", 100), ("depth", 250), ("depth@500ms", 500))
SPOT_DERIVED = (("depth", 1000),)
_PREFIX = b'{"stream":"'
_MID = b'","data":'


def now_ms() -> int:
    """Exchange clock (wall clock), ms."""
    return time.time_ns() // 1_000_000


class Item:
    """One good recording line: local time ``ts`` (ns), 1-based ``lineno``, the JSON bytes ``raw`` (no newline),
    the decoded event ``ev`` (or None), and for stream frames the stream name and the payload bytes (the bytes of
    the ``data`` value, sliced out of ``raw`` so that a raw ``/ws`` connection gets them byte-identical)."""

    __slots__ = ("ts", "lineno", "raw", "ev", "stream", "data")

    def __init__(self, ts, lineno, raw, ev, stream, data):
        self.ts, self.lineno, self.raw, self.ev, self.stream, self.data = ts, lineno, raw, ev, stream, data


def split_frame(raw: bytes):
    """``(stream name, data bytes)`` of a combined-stream frame ``{"stream":"..","data":..}`` as recorded, or
    ``(None, None)`` for anything else (the REST snapshot line, a frame in another layout)."""
    if raw.startswith(_PREFIX) and raw.endswith(b"}"):
        i = raw.find(_MID, len(_PREFIX))
        if i > 0:
            name = raw[len(_PREFIX):i]
            if b'"' not in name and b"\\" not in name:
                return name.decode("ascii", "replace"), raw[i + len(_MID):-1]
    try:
        msg = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None, None
    if isinstance(msg, dict) and isinstance(msg.get("stream"), str) and "data" in msg:
        return msg["stream"], orjson.dumps(msg["data"])
    return None, None


class RecordingSource:
    """One recording (one symbol): bounded, skipping and counting bad lines, with read-ahead."""

    def __init__(self, path: Path, instrument: Instrument, counters: dict):
        self.path = Path(path)
        self.instrument = instrument
        self.counters = counters
        self.decode = BinanceDecoder(instrument).decode
        self._fh = None
        self._lines = None
        self.lineno = 0
        self.last_ts = 0
        self.buf: deque = deque()
        self.done = False

    def _bad(self, kind: str, why) -> None:
        c = self.counters
        c[kind] += 1
        n = c["malformed"] + c["bad_lines"]
        if n <= MAX_WARNINGS or n % 1000 == 0:
            log.warning("%s line %d skipped (%s; %d malformed, %d bad so far): %s", self.path.name, self.lineno,
                        kind, c["malformed"], c["bad_lines"], str(why)[:300])

    def _read(self):
        """The next good Item, or None at the end (or on damage, logged)."""
        if self.done:
            return None
        if self._lines is None:
            self._fh = open_recording(self.path)
            self._lines = iter_lines(self._fh, self.path)
        while True:
            try:
                raw = next(self._lines)
            except StopIteration:
                self.close()
                return None
            except DataFileError as exc:
                self.counters["data_errors"] += 1
                log.error("%s: %s; this recording ends at line %d", self.path.name, exc, self.lineno)
                self.close()
                return None
            self.lineno += 1
            if raw is LINE_TOO_LONG:
                self._bad("malformed", "line longer than MAX_LINE_BYTES")
                continue
            if not raw.endswith(b"\n"):
                raw += b"\n"
            try:
                ev = self.decode(raw)
            except MalformedLine as exc:
                self._bad("malformed", exc)
                continue
            except Exception as exc:                      # noqa: BLE001 - one line never stops the replay
                self._bad("bad_lines", repr(exc))
                continue
            sp = raw.find(b" ")
            try:
                ts = int(raw[:sp])
            except ValueError:
                self._bad("malformed", "bad local timestamp")
                continue
            if ev is not None:
                ts = ev.ts_local_ns
            elif ts < 10**17:                              # µs (16 digits) or ms recordings: to ns
                ts *= 1000 if ts >= 10**14 else 1_000_000
            if self.last_ts and ts > self.last_ts + MAX_TS_JUMP_NS:
                self._bad("bad_lines", f"local time {ts} is more than {MAX_TS_JUMP_NS // 10**9} s after the "
                                       f"previous line's {self.last_ts}")
                continue
            if ts > self.last_ts:
                self.last_ts = ts
            body = raw[sp + 1:].rstrip(b"\r\n")
            stream, data = (None, None) if type(ev) is DepthSnapshot else split_frame(body)
            if ev is None and stream is None:
                self.counters["ignored"] += 1
                continue
            return Item(ts, self.lineno, body, ev, stream, data)

    def peek(self):
        if not self.buf:
            it = self._read()
            if it is None:
                return None
            self.buf.append(it)
        return self.buf[0]

    def pop(self):
        return self.buf.popleft() if self.buf else self._read()

    def next_diff_first_id(self) -> int | None:
        """``U`` of the next depth diff not yet replayed (reading ahead up to LOOKAHEAD_MAX_LINES), or None."""
        for it in self.buf:
            if type(it.ev) is DepthDiff:
                return it.ev.first_update_id
        while len(self.buf) < LOOKAHEAD_MAX_LINES:
            it = self._read()
            if it is None:
                return None
            self.buf.append(it)
            if type(it.ev) is DepthDiff:
                return it.ev.first_update_id
        return None

    def close(self) -> None:
        self.done = True
        if self._fh is not None:
            try:
                self._fh.close()
            except OSError:
                pass
            self._fh = None


class DepthMerger:
    """Merges consecutive diff payloads (dicts as received) per window of ``E // window_ms``."""

    def __init__(self, symbol: str, window_ms: int, usdm: bool):
        self.symbol, self.window_ms, self.usdm = symbol, window_ms, usdm
        self.idx = None
        self.first = self.last = None
        self.bids: dict = {}
        self.asks: dict = {}

    def add(self, d: dict):
        """Take one diff; returns the merged payload bytes of the window it closes, or None."""
        out = None
        idx = int(d["E"]) // self.window_ms
        if self.idx is not None and idx != self.idx:
            out = self.flush()
        if self.first is None:
            self.first, self.idx = d, idx
        self.last = d
        for p, q in d.get("b") or ():
            self.bids[p] = q
        for p, q in d.get("a") or ():
            self.asks[p] = q
        return out

    def flush(self):
        """The merged payload of the open window (None if empty); the window is reset."""
        if self.first is None:
            return None
        f, l = self.first, self.last
        m = {"e": "depthUpdate", "E": l["E"]}
        if self.usdm:
            m["T"] = l.get("T", l["E"])
        m["s"] = self.symbol
        m["U"] = f["U"]
        m["u"] = l["u"]
        if self.usdm:
            m["pu"] = f.get("pu", -1)
        m["b"] = [[p, q] for p, q in self.bids.items()]
        m["a"] = [[p, q] for p, q in self.asks.items()]
        self.first = self.last = self.idx = None
        self.bids, self.asks = {}, {}
        return orjson.dumps(m)


def agg_trade(data: bytes, usdm: bool) -> bytes | None:
    """The ``@aggTrade`` payload for one ``@trade`` payload (``a = f = l = t``), None if it does not parse."""
    try:
        t = orjson.loads(data)
        out = {"e": "aggTrade", "E": t["E"], "s": t["s"], "a": t["t"], "p": t["p"], "q": t["q"]}
        if usdm:
            out["nq"] = t["q"]
        out.update({"f": t["t"], "l": t["t"], "T": t.get("T", t["E"]), "m": t["m"]})
        if not usdm:
            out["M"] = True
        return orjson.dumps(out)
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None


class SymbolMarket:
    """One symbol: its recording, its book and derived-stream state."""

    def __init__(self, source: RecordingSource, market: str):
        self.source = source
        self.instrument = source.instrument
        self.symbol = self.instrument.symbol
        self.lower = self.symbol.lower()
        self.market = market
        self.usdm = market != "binance_spot"
        self.book = L2Book(sync_rule_for_market(market))
        self.mergers = [(f"{self.lower}@{name}", DepthMerger(self.symbol, ms, self.usdm))
                        for name, ms in (USDM_DERIVED if self.usdm else SPOT_DERIVED)]
        self.fresh = False               # a snapshot was loaded and no diff applied since
        self.bridged = 0
        self.last_trade_price = 0
        self.recent_trades: deque = deque(maxlen=RECENT_TRADES)   # REST recent trades (GET .../trades)

    def apply_diff(self, d: DepthDiff) -> None:
        """Apply ``d`` to the book; a diff that does not chain is applied on top anyway (counted, logged)."""
        book = self.book
        if book.synced:
            last = book.last_update_id
            if d.final_update_id <= last:
                return
            breaks = (d.first_update_id != last + 1) if book.sync_rule == SYNC_SPOT else \
                (d.prev_final_update_id != last)
            if breaks:
                if not self.fresh:
                    self.bridged += 1
                    log.warning("%s: diff U=%d u=%d does not follow the book's update id %d (a skipped line?); "
                                "applied on top (%d so far)", self.symbol, d.first_update_id, d.final_update_id,
                                last, self.bridged)
                lid = d.first_update_id - 1 if book.sync_rule == SYNC_SPOT else d.first_update_id
                book.load_snapshot(DepthSnapshot.from_ticks(max(lid, last), book.levels(BID), book.levels(ASK),
                                                            d.ts_local_ns, d.ts_event_ns))
        book.apply_diff(d)
        if book.synced:
            self.fresh = False

    def load_snapshot(self, s: DepthSnapshot) -> None:
        self.book.load_snapshot(s)
        self.fresh = self.book.synced

    def snapshot(self, limit: int) -> dict:
        """The book as Binance's depth answer (``lastUpdateId``, ``bids``, ``asks``; plus ``E``/``T`` on USDⓈ-M)."""
        book = self.book
        lid = book.last_update_id
        if self.usdm and book.synced:
            nxt = self.source.next_diff_first_id()
            if nxt is not None and nxt > lid:
                lid = nxt
        fp, fq = self.instrument.format_price, self.instrument.format_qty
        out = {"lastUpdateId": lid}
        if self.usdm:
            t = now_ms()
            out["E"], out["T"] = t, t
        out["bids"] = [[fp(p), fq(q)] for p, q in book.levels(BID, limit)]
        out["asks"] = [[fp(p), fq(q)] for p, q in book.levels(ASK, limit)]
        return out


class Market:
    """The replay of all symbols. ``publish(sm, stream, combined, data)`` sends one frame; ``on_trade(sm, trade)``
    lets the accounts' simulated exchanges see a recorded trade first; ``backpressure()`` is awaited after every
    line (flow control); ``frame_filter`` may drop a frame (faults)."""

    def __init__(self, market: str, sources: list[RecordingSource], speed: float, publish, on_trade,
                 backpressure, counters: dict):
        self.market = market
        self.symbols = {s.instrument.symbol: SymbolMarket(s, market) for s in sources}
        self.speed = speed
        self.publish = publish
        self.on_trade = on_trade
        self.backpressure = backpressure
        self.counters = counters
        self.started = asyncio.Event()
        self.running = asyncio.Event()
        self.running.set()
        self.open = False
        self.done = False
        self.lines = 0
        self.pause_after: int | None = None     # pause once this many lines were replayed (tests, control)
        self._stall_handle = None

    # --- control ---
    def start(self) -> None:
        self.started.set()

    def pause(self) -> None:
        self.running.clear()

    def resume(self) -> None:
        if self._stall_handle is not None:
            self._stall_handle.cancel()
            self._stall_handle = None
        self.started.set()
        self.running.set()

    def stall(self, seconds: float) -> None:
        """Pause for ``seconds`` (then resume by itself)."""
        self.pause()
        if self._stall_handle is not None:
            self._stall_handle.cancel()
        self._stall_handle = asyncio.get_running_loop().call_later(seconds, self.resume)

    @property
    def paused(self) -> bool:
        return not self.running.is_set()

    def book_of(self, symbol: str) -> SymbolMarket | None:
        return self.symbols.get(symbol)

    # --- replay ---
    async def run(self) -> None:
        """Replay every recording to its end (then the market stays as it is; the exchange goes on)."""
        await self.started.wait()
        loop = asyncio.get_running_loop()
        heap = []
        for i, sm in enumerate(self.symbols.values()):
            it = sm.source.peek()
            if it is not None:
                heap.append((it.ts, i, sm))
        heapq.heapify(heap)
        first_ts = heap[0][0] if heap else 0
        wall0 = ts0 = None
        speed = self.speed
        publish = self.publish
        while heap:
            ts, i, sm = heap[0]
            it = sm.source.pop()
            nxt = sm.source.peek()
            if nxt is None:
                heapq.heappop(heap)
            else:
                heapq.heapreplace(heap, (nxt.ts, i, sm))
            self.lines += 1
            if not self.open:
                if all(s.book.synced for s in self.symbols.values()) or ts - first_ts > PREROLL_MAX_NS:
                    self.open = True
                    if not all(s.book.synced for s in self.symbols.values()):
                        log.error("market opened without a book for %s: no REST snapshot in the first %d s of "
                                  "the recording", ", ".join(s.symbol for s in self.symbols.values()
                                                             if not s.book.synced), PREROLL_MAX_NS // 10**9)
            if self.open:
                if not self.running.is_set():
                    t = loop.time()
                    await self.running.wait()
                    if wall0 is not None:
                        wall0 += loop.time() - t
                if wall0 is None:
                    wall0, ts0 = loop.time(), ts
                if speed > 0:
                    delay = wall0 + (ts - ts0) / (1e9 * speed) - loop.time()
                    if delay > 0.0005:
                        await asyncio.sleep(delay)
                    elif self.lines % YIELD_EVERY == 0:
                        await asyncio.sleep(0)
                elif self.lines % YIELD_EVERY == 0:
                    await asyncio.sleep(0)
            try:
                self._apply(sm, it, publish if self.open else None)
            except Exception as exc:                       # noqa: BLE001 - one line never stops the replay
                sm.source.lineno = it.lineno
                sm.source._bad("bad_lines", f"error while applied: {exc!r}")
            if self.open:
                await self.backpressure()
            if self.pause_after is not None and self.lines >= self.pause_after:
                self.pause_after = None
                self.pause()
        for sm in self.symbols.values():
            for name, m in sm.mergers:
                out = m.flush()
                if out is not None:
                    publish(sm, name, b'%s%s%s%s}' % (_PREFIX, name.encode(), _MID, out), out)
        self.done = True
        c = self.counters
        log.warning("recordings exhausted after %d lines (%d malformed, %d bad, %d ignored); the market stays as "
                    "it is and the exchange goes on", self.lines, c["malformed"], c["bad_lines"], c["ignored"])

    def _apply(self, sm: SymbolMarket, it: Item, publish) -> None:
        ev = it.ev
        t = type(ev)
        if t is Trade:
            sm.last_trade_price = ev.price
            if publish is not None:
                sm.recent_trades.append(ev)
            self.on_trade(sm, ev)
        elif t is DepthDiff:
            sm.apply_diff(ev)
        elif t is DepthSnapshot:
            sm.load_snapshot(ev)
            return
        if publish is None or it.stream is None:
            return
        publish(sm, it.stream, it.raw, it.data)
        if t is DepthDiff:
            try:
                d = orjson.loads(it.data)
            except orjson.JSONDecodeError:
                return
            for name, m in sm.mergers:
                out = m.add(d)
                if out is not None:
                    publish(sm, name, b'%s%s%s%s}' % (_PREFIX, name.encode(), _MID, out), out)
        elif t is Trade:
            out = agg_trade(it.data, sm.usdm)
            if out is not None:
                name = f"{sm.lower}@aggTrade"
                publish(sm, name, b'%s%s%s%s}' % (_PREFIX, name.encode(), _MID, out), out)
