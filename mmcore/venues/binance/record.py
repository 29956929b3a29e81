"""``python -m mmcore record``: capture live market data in exactly the bundled recordings' format.

Format (``data/README.md``): gzip text, one message per line, ``<local receive time, ns, 19 digits> <raw JSON as
received>``; stream lines are the combined-stream frames byte for byte, snapshot lines the raw REST depth body
(``GET /api/v3/depth`` / ``/fapi/v1/depth``, Binance's "How to manage a local order book correctly": diffs
recorded before the snapshot are buffered by the reader). **One file per symbol** (the bundled files and
:class:`mmcore.venues.binance.recording.ReplayReader` hold one symbol each):

- one symbol: ``--out FILE.gz`` is that file;
- several symbols: ``--out`` is a directory (files ``<dir>/<spot|usdm>_<symbol lowercase>_<YYYYMMDD>.gz``) or a
  pattern containing ``{symbol}`` (e.g. ``rec_{symbol}.gz``, replaced by the lowercase symbol).

Snapshots: one per symbol as soon as its streams are connected (after the first frames, as the bundled recorder
did), one after every reconnect (the stream has a hole there) and one every ``snapshot_every_s`` (default 600 s);
a snapshot body that does not decode (the codec's bounds) is not written and is retried after 0.5 s. The streams
are the feed's (``venue.depth_stream`` / ``trade_stream`` / ``book_ticker``); frames that name no symbol of the
recording (control answers) are not written, nor is a frame containing a newline (counted).
"""
from __future__ import annotations

import asyncio
import gzip
import logging
import time
from datetime import datetime, timezone
from pathlib import Path

import orjson

from mmcore.aio import raise_if_cancelled, wait_within
from mmcore.venues.base import STALE
from mmcore.venues.binance.feed import BinanceFeed, FeedSettings
from mmcore.venues.binance.snapshots import SnapshotError
from mmcore.venues.binance.urls import DEPTH_PATH, SPOT
from mmcore_ext.binance_codec import MalformedLine

log = logging.getLogger("mmcore.record")

SNAPSHOT_RETRY_S = 0.5
_STREAM_KEY = b'"stream":"'


def output_paths(out: str | Path, venue: str, symbols, day: str | None = None) -> dict[str, Path]:
    """``{symbol: file}`` for ``--out`` (see the module docstring). Raises ValueError for several symbols and a
    plain file name."""
    out = str(out)
    day = day or datetime.now(timezone.utc).strftime("%Y%m%d")
    if "{symbol}" in out:
        paths = {s: Path(out.replace("{symbol}", s.lower())) for s in symbols}
    elif Path(out).is_dir() or out.endswith("/"):
        short = "spot" if venue == SPOT else "usdm"
        paths = {s: Path(out) / f"{short}_{s.lower()}_{day}.gz" for s in symbols}
    elif len(symbols) == 1:
        paths = {symbols[0]: Path(out)}
    else:
        raise ValueError(f"--out {out[:80]!r}: with several symbols give a directory or a pattern containing "
                         f"{{symbol}} (one file per symbol, as the bundled recordings)")
    if len(set(paths.values())) != len(paths):
        raise ValueError(f"--out {out[:80]!r}: two symbols would share a file")
    return paths


class Recorder:
    """Streams of ``symbols`` plus REST snapshots into one gzip file per symbol (see the module docstring)."""

    def __init__(self, venue: str, symbols, instruments: dict, settings, paths: dict[str, Path],
                 snapshot_every_s: float = 600.0):
        self.venue, self.symbols = venue, tuple(symbols)
        self.paths = paths
        self.snapshot_every_s = snapshot_every_s
        self.by_lower = {s.lower().encode(): s for s in self.symbols}
        self.files = {}
        self.lines = {s: 0 for s in self.symbols}
        self.snapshot_lines = {s: 0 for s in self.symbols}
        self.skipped = 0
        self.feed = BinanceFeed(venue, self.symbols, instruments, FeedSettings.of(settings), self._event,
                                self._state, raw_sink=self._frame)
        self._want: set[str] = set()
        self._task: asyncio.Task | None = None

    # --- frames (picows callback) ---
    def _frame(self, ts: int, payload: bytes) -> None:
        i = payload.find(_STREAM_KEY)
        sym = None
        if 0 <= i < 16:
            j = payload.find(b"@", i + len(_STREAM_KEY), i + len(_STREAM_KEY) + 40)
            if j > 0:
                sym = self.by_lower.get(payload[i + len(_STREAM_KEY):j])
        if sym is None or b"\n" in payload:
            self.skipped += 1
            return
        self._write(sym, ts, payload)

    def _write(self, sym: str, ts: int, body: bytes) -> None:
        self.files[sym].write(b"%d %s\n" % (ts, body))
        self.lines[sym] += 1

    def _event(self, sym, ev) -> None:
        pass

    def _state(self, sym, state, reason) -> None:
        if state == STALE:
            self._want.add(sym)

    # --- snapshots ---
    async def _snapshot(self, sym: str) -> bool:
        feed = self.feed
        url = feed.urls.rest_url(DEPTH_PATH[self.venue])
        try:
            ts, body = await _raw_get(feed._session, url, {"symbol": sym, "limit": str(feed.settings.snapshot_limit)})
            feed.decoders[sym].snapshot_from(ts, orjson.loads(body))
        except (SnapshotError, MalformedLine, orjson.JSONDecodeError) as exc:
            log.info("record %s: snapshot not written (%s); retrying", sym, exc)
            return False
        if b"\n" in body:
            body = orjson.dumps(orjson.loads(body))
        self._write(sym, ts, body)
        self.snapshot_lines[sym] += 1
        return True

    async def _snapshots(self) -> None:
        last = {s: 0.0 for s in self.symbols}
        while True:
            raise_if_cancelled()
            now = time.monotonic()
            for s in self.symbols:
                if now - last[s] >= self.snapshot_every_s:
                    self._want.add(s)
            conns = self.feed.conns          # connected, and the depth route(s) already delivered frames
            routes_up = all(c.connected for c in conns) and all(c.frames > 0 for c in conns if c.frame_watchdog)
            if routes_up:
                for s in sorted(self._want):
                    if await self._snapshot(s):
                        self._want.discard(s)
                        last[s] = time.monotonic()
            await asyncio.sleep(SNAPSHOT_RETRY_S if self._want else 0.1)

    # --- run ---
    async def run(self, duration_s: float | None = None, stop: asyncio.Event | None = None) -> dict:
        """Record until ``duration_s`` passed or ``stop`` is set; returns the counts. Files are closed (valid gzip)
        whatever happens."""
        for s, p in self.paths.items():
            p.parent.mkdir(parents=True, exist_ok=True)
            self.files[s] = gzip.open(p, "wb", compresslevel=6)
        self._want = set(self.symbols)
        stop = stop or asyncio.Event()
        try:
            await self.feed.start()
            self._task = asyncio.get_running_loop().create_task(self._snapshots())
            try:
                await wait_within(stop.wait(), duration_s)
            except asyncio.TimeoutError:
                pass
        finally:
            if self._task is not None:
                self._task.cancel()
                try:
                    await self._task
                except (asyncio.CancelledError, Exception):    # noqa: BLE001 - stopping
                    pass
            await self.feed.close()
            for f in self.files.values():
                f.close()
        return {"lines": dict(self.lines), "snapshots": dict(self.snapshot_lines), "skipped": self.skipped,
                "files": {s: str(p) for s, p in self.paths.items()}, "feed": self.feed.counters()}


async def _raw_get(session, url: str, params: dict, timeout: float = 5.0):
    """``(ts_local_ns, raw body)`` of a public GET; SnapshotError for a failure or a non-200 status."""
    from mmcore.venues.binance.snapshots import MAX_BODY_BYTES
    import aiohttp
    try:
        async with session.get(url, params=params, timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            body = await resp.content.read(MAX_BODY_BYTES + 1)
            ts = time.time_ns()
            if resp.status != 200 or len(body) > MAX_BODY_BYTES:
                raise SnapshotError(f"GET {url}: HTTP {resp.status}, {len(body)} bytes")
            return ts, body
    except SnapshotError:
        raise
    except Exception as exc:                                  # noqa: BLE001 - aiohttp / OS / timeout
        raise SnapshotError(f"GET {url}: {type(exc).__name__}: {str(exc)[:160]}") from None
