"""Binance recording reader: one ``<local timestamp> <raw JSON>`` line -> one typed event.

Format (hftbacktest's collector; see ``data/README.md``): most lines are combined-stream frames
``{"stream": "btcusdt@depth@0ms" | "btcusdt@trade" | "btcusdt@bookTicker", "data": {...}}``; one line is
the bare REST depth snapshot ``{"lastUpdateId": ..., "bids": [...], "asks": [...]}``.

Field meanings follow the Binance docs:
- spot diff depth: https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams#diff-depth-stream
- USDⓈ-M diff depth (``pu``): https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams/Diff-Book-Depth-Streams
- trade (``m`` = buyer is maker): https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams#trade-streams
"""
from __future__ import annotations

import gzip
import io
import logging
from pathlib import Path
from typing import IO, Iterator

import orjson

from mmcore.instruments import Instrument, load_instrument
from mmcore_ext.binance_codec import BinanceLineDecoder, MalformedLine

__all__ = ["BinanceDecoder", "MalformedLine", "ReplayReader", "detect_market", "detect_symbol", "open_recording"]

log = logging.getLogger("mmcore.replay")

MAX_MALFORMED_WARNINGS = 50
READ_BUFFER = 1 << 20


def open_recording(path: str | Path, fileobj: IO[bytes] | None = None) -> IO[bytes]:
    """Open a recording (gzip if the name ends in .gz) for fast binary line iteration.

    ``fileobj``: the already open raw file of ``path`` to read from (its ``tell()`` then gives the progress
    through the compressed file).
    """
    path = Path(path)
    if path.suffix == ".gz":
        gz = gzip.GzipFile(fileobj=fileobj) if fileobj is not None else gzip.GzipFile(path, "rb")
        return io.BufferedReader(gz, buffer_size=READ_BUFFER)
    return fileobj if fileobj is not None else open(path, "rb", buffering=READ_BUFFER)


def detect_market(path: str | Path, max_lines: int = 5000) -> str:
    """Tell USDⓈ-M from spot by content: a ``depthUpdate`` with ``pu`` is USDⓈ-M, without it spot.

    Returns ``"binance_usdm"`` or ``"binance_spot"``. Raises ValueError if no depth diff is seen in
    the first ``max_lines`` lines.
    """
    with open_recording(path) as fh:
        for i, raw in enumerate(fh):
            if i >= max_lines:
                break
            if b'"depthUpdate"' not in raw:
                continue
            try:
                data = orjson.loads(raw[raw.index(b" ") + 1:]).get("data", {})
            except (ValueError, orjson.JSONDecodeError):
                continue
            if data.get("e") == "depthUpdate":
                return "binance_usdm" if "pu" in data else "binance_spot"
    raise ValueError(f"{path}: no depthUpdate in the first {max_lines} lines; pass --market")


def detect_symbol(path: str | Path, max_lines: int = 5000) -> str:
    """First ``data.s`` symbol in the recording (e.g. ``BTCUSDT``). Raises ValueError if none."""
    with open_recording(path) as fh:
        for i, raw in enumerate(fh):
            if i >= max_lines:
                break
            try:
                msg = orjson.loads(raw[raw.index(b" ") + 1:])
            except (ValueError, orjson.JSONDecodeError):
                continue
            sym = msg.get("data", {}).get("s") if isinstance(msg, dict) else None
            if sym:
                return sym
    raise ValueError(f"{path}: no symbol found in the first {max_lines} lines")


def BinanceDecoder(instrument: Instrument) -> BinanceLineDecoder:
    """The compiled line decoder for one instrument: ``decode(raw_line)`` returns an event, ``None`` for a
    well-formed message mmcore does not use (``markPrice``, another symbol), or raises MalformedLine.
    Timestamp units come from the digit count (10/13/16/19 = s/ms/µs/ns). Prices outside
    ``[1, instrument.max_price_ticks]`` and quantities outside ``[0, instrument.max_qty_lots]`` are malformed
    (the instrument table's ``max_price`` / ``max_qty``), as are ids and times outside the ranges listed in
    :mod:`mmcore_ext.binance_codec`."""
    return BinanceLineDecoder(instrument.grid, instrument.symbol, instrument.max_price_ticks, instrument.max_qty_lots)


class ReplayReader:
    """Iterate the typed events of a recording, counting and skipping malformed lines.

    Parameters
    ----------
    path : str or Path
        The recording (``.gz`` or plain text).
    market : str, optional
        ``binance_usdm`` or ``binance_spot``; detected from the content when omitted.
    instrument : Instrument, optional
        Trading rules; loaded from ``config/instruments.yaml`` for the detected market and symbol when omitted.

    Attributes
    ----------
    lines, malformed, ignored : int
        Lines read, lines skipped as malformed (each logged with its line number), well-formed lines not used.
    """

    def __init__(self, path: str | Path, market: str | None = None, instrument: Instrument | None = None):
        self.path = Path(path)
        if instrument is None:
            market = market or detect_market(self.path)
            instrument = load_instrument(market, detect_symbol(self.path))
        self.instrument = instrument
        self.market = instrument.market
        self.decoder = BinanceDecoder(instrument)
        self.lines = 0
        self.malformed = 0
        self.ignored = 0

    def report_malformed(self, lineno: int, exc: Exception) -> None:
        """Count a malformed line and log a warning naming it (the first MAX_MALFORMED_WARNINGS)."""
        self.malformed += 1
        if self.malformed <= MAX_MALFORMED_WARNINGS:
            log.warning("%s line %d: malformed, skipped: %s", self.path.name, lineno, exc)
        elif self.malformed == MAX_MALFORMED_WARNINGS + 1:
            log.warning("%s: more malformed lines; further warnings suppressed (count continues)", self.path.name)

    def __iter__(self) -> Iterator:
        decode = self.decoder.decode
        with open_recording(self.path) as fh:
            for lineno, raw in enumerate(fh, 1):
                self.lines = lineno
                try:
                    ev = decode(raw)
                except MalformedLine as exc:
                    self.report_malformed(lineno, exc)
                    continue
                if ev is None:
                    self.ignored += 1
                    continue
                yield ev
