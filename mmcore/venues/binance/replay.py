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
import logging
from pathlib import Path
from typing import IO, Iterator

import orjson

from mmcore.instruments import Instrument, load_instrument
from mmcore_ext.events import BookTicker, DepthDiff, DepthSnapshot, Trade

log = logging.getLogger("mmcore.replay")

#: Local-timestamp digit count -> multiplier to ns (s, ms, µs, ns). Real recordings differ: the 2024 files
#: are ns (19 digits), the 2023 file µs (16 digits).
_TS_MULT = {10: 1_000_000_000, 13: 1_000_000, 16: 1_000, 19: 1}
_MS = 1_000_000
MAX_MALFORMED_WARNINGS = 50


class MalformedLine(ValueError):
    """A recording line that cannot be decoded (the message says why)."""


def open_recording(path: str | Path) -> IO[bytes]:
    """Open a recording (gzip if the name ends in .gz) for binary line reading."""
    path = Path(path)
    if path.suffix == ".gz":
        return gzip.open(path, "rb")
    return open(path, "rb")


def ts_to_ns(text: bytes) -> int:
    """Local timestamp digits -> ns since epoch; the unit comes from the digit count (10/13/16/19).

    Raises MalformedLine for any other length or a non-digit.
    """
    mult = _TS_MULT.get(len(text))
    if mult is None or not text.isdigit():
        raise MalformedLine(f"local timestamp {text[:24]!r} is not 10/13/16/19 digits")
    return int(text) * mult


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


class BinanceDecoder:
    """Decode recording lines into :mod:`mmcore_ext.events` objects for one instrument.

    ``decode(raw)`` returns an event, or ``None`` for a well-formed message mmcore does not use
    (e.g. ``markPrice``, another symbol); it raises :class:`MalformedLine` otherwise.
    """

    def __init__(self, instrument: Instrument):
        self.instrument = instrument
        self.grid = instrument.grid
        self.symbol = instrument.symbol

    def decode(self, raw: bytes):
        sp = raw.find(b" ")
        if sp <= 0:
            raise MalformedLine("no '<timestamp> <json>' separator")
        ts = ts_to_ns(raw[:sp])
        try:
            msg = orjson.loads(raw[sp + 1:])
        except orjson.JSONDecodeError as exc:
            raise MalformedLine(f"invalid JSON: {exc}") from None
        if type(msg) is not dict:
            raise MalformedLine("JSON is not an object")
        data = msg.get("data")
        try:
            if data is None:
                if "lastUpdateId" in msg:
                    return DepthSnapshot.from_strings(self.grid, ts, msg.get("E", 0) * _MS, msg["lastUpdateId"],
                                                      msg["bids"], msg["asks"])
                return None
            if data.get("s") != self.symbol:
                return None
            e = data.get("e")
            if e == "depthUpdate":
                return DepthDiff.from_strings(self.grid, ts, data["E"] * _MS, data["U"], data["u"],
                                              data.get("pu", -1), data["b"], data["a"])
            if e == "trade":
                return Trade.from_strings(self.grid, ts, data["E"] * _MS, data["t"], data["p"], data["q"],
                                          data["m"])
            if e == "bookTicker" or (e is None and "u" in data and "b" in data):
                return BookTicker.from_strings(self.grid, ts, data.get("E", 0) * _MS, data["u"], data["b"],
                                               data["B"], data["a"], data["A"])
            return None
        except KeyError as exc:
            raise MalformedLine(f"missing field {exc.args[0]!r}") from None
        except (TypeError, ValueError, IndexError, OverflowError) as exc:
            raise MalformedLine(str(exc)) from None


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
