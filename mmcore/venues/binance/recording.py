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
import os
import stat
import zlib
from pathlib import Path
from typing import IO, Iterator

import orjson

try:                                     # ISA-L's gzip (the ``isal`` package): ~2x the stdlib's decompression speed
    from isal import igzip as _igzip
    from isal.isal_zlib import error as _IsalError
    GzipReader = _igzip.IGzipFile
    GZIP_ERRORS: tuple = (EOFError, zlib.error, _IsalError)
except ImportError:                      # the stdlib (same format, same results)
    GzipReader = gzip.GzipFile
    GZIP_ERRORS = (EOFError, zlib.error)

from mmcore.instruments import Instrument, load_instrument
from mmcore_ext.binance_codec import BinanceLineDecoder, MalformedLine

__all__ = ["BinanceDecoder", "DataFileError", "MalformedLine", "ReplayReader", "detect_market", "detect_symbol",
           "iter_lines", "open_data_file", "open_recording"]

log = logging.getLogger("mmcore.replay")

MAX_MALFORMED_WARNINGS = 50
READ_BUFFER = 1 << 20
#: Longest line read (bytes, newline included). The longest real line in ``data/`` is the REST snapshot of the
#: spot file, 64,067 bytes (1000 levels a side); a 5000-level snapshot is about 300 KB. A longer line is
#: skipped (read in pieces of this size, never buffered whole) and counted as malformed.
MAX_LINE_BYTES = 4 << 20
#: Most bytes (decompressed) that market and symbol detection read before giving up.
DETECT_MAX_BYTES = 16 << 20
#: Lines decoded at start to check that the file is a recording of the chosen market (see ReplayReader).
CHECK_LINES = 1000
GZIP_MAGIC = b"\x1f\x8b"
#: Yielded by :func:`iter_lines` in place of a line longer than MAX_LINE_BYTES (the decoder refuses it as
#: malformed; ``ReplayReader.report_malformed`` names the reason).
LINE_TOO_LONG = b"<line longer than MAX_LINE_BYTES>"


class DataFileError(OSError):
    """A data file that cannot be read (to its end): not a regular file, not gzip although named ``.gz``,
    truncated, corrupt (CRC mismatch, bad deflate data), trailing garbage, or an I/O error.

    ``str()`` is the whole message, naming the file and what is wrong (with byte offsets for gzip damage);
    ``path`` and ``problem`` hold the parts.
    """

    def __init__(self, path, problem: str):
        super().__init__(f"data file {path}: {problem}")
        self.path, self.problem = Path(path), problem

    def __str__(self) -> str:
        return self.args[0]


def _kind(mode: int) -> str:
    from mmcore.config import file_kind
    return file_kind(mode)


def open_data_file(path: str | Path) -> IO[bytes]:
    """Open ``path`` for buffered binary reading if it is a regular file.

    The file is opened without blocking (``O_NONBLOCK``: a FIFO is not waited on) and checked with
    ``fstat`` before any read. Raises DataFileError for a directory, FIFO, device or socket, and OSError
    (with ``filename``) when it cannot be opened (missing, permission).
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise DataFileError(path, f"is {_kind(mode)}, not a regular file")
        os.set_blocking(fd, True)
        return open(fd, "rb", buffering=READ_BUFFER)
    except BaseException:
        os.close(fd)
        raise


class _GzipChunks(io.RawIOBase):
    """A GzipFile as a raw stream whose ``readinto`` returns one decompressed chunk (``read1``).

    Under a large BufferedReader (fast C ``readline``), a damaged file then loses no line decoded before the
    damage: the gzip error is raised by the read after the last good chunk, not in the middle of filling a
    1 MiB buffer (which would drop the part already decompressed)."""

    def __init__(self, gz):
        super().__init__()
        self._gz = gz

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        data = self._gz.read1(len(b))
        n = len(data)
        b[:n] = data
        return n

    def close(self) -> None:
        if not self.closed:
            self._gz.close()
        super().close()


def open_recording(path: str | Path, fileobj: IO[bytes] | None = None) -> IO[bytes]:
    """Open a recording for fast binary line iteration (use :func:`iter_lines` to bound line lengths).

    Gzip when the file starts with the gzip magic bytes (a ``.gz`` file that does not is refused), plain text
    otherwise. Gzip is read with ISA-L (``isal.igzip``) when the package is installed, else with the stdlib. ``fileobj``: the already open raw file of ``path`` (from :func:`open_data_file`) to read from
    (its ``tell()`` then gives the progress through the compressed file; the caller closes it).

    Raises DataFileError (not a regular file, a ``.gz`` name on a file that is not gzip) or OSError.
    """
    path = Path(path)
    own = fileobj is None
    raw = open_data_file(path) if own else fileobj
    try:
        magic = raw.peek(2)[:2]
        if magic == GZIP_MAGIC:
            gz = GzipReader(fileobj=raw, mode="rb")
            if own:
                gz.myfileobj = raw               # GzipFile.close() then closes the raw file too
            return io.BufferedReader(_GzipChunks(gz), buffer_size=READ_BUFFER)
        if path.suffix == ".gz":
            raise DataFileError(path, "not a gzip file" + (f" (starts with {raw.peek(8)[:8]!r})" if magic
                                                           else " (empty)"))
        return raw
    except BaseException:
        if own:
            raw.close()
        raise


def iter_lines(fh: IO[bytes], path: str | Path, max_len: int = MAX_LINE_BYTES,
               max_skip: int | None = None) -> Iterator[bytes]:
    """The lines of ``fh`` (from :func:`open_recording`), each at most ``max_len`` bytes.

    A longer line is read in ``max_len`` pieces and dropped; :data:`LINE_TOO_LONG` is yielded in its place
    (so line numbers stay right); with ``max_skip``, the iteration ends once one line has had more than that
    many bytes skipped (bounded reads for detection). A read error ends the iteration with DataFileError naming ``path`` and what
    is wrong (gzip: truncated at byte N, CRC mismatch, corrupt data at bytes A-B, trailing garbage at byte N,
    found by a second, streaming pass over the file); every line before the damage has been yielded.
    """
    count = 0
    try:
        for line in _lines(fh.readline, max_len, max_skip):
            count += 1
            yield line
    except (*GZIP_ERRORS, OSError) as exc:
        if isinstance(exc, DataFileError):
            raise
        if not isinstance(exc, (*GZIP_ERRORS, gzip.BadGzipFile)):
            raise DataFileError(path, f"read error: {exc.strerror or exc}") from None
        if GzipReader is not gzip.GzipFile:
            # ISA-L raises on a damaged member without handing over the part of its last block it decompressed:
            # read the file again with the stdlib, which does, past the lines already given, to the damage.
            yield from _stdlib_rest(path, count, max_len, max_skip)
        raise DataFileError(path, diagnose_gzip(path) or f"gzip error: {exc}") from None


def _lines(readline, max_len: int, max_skip: int | None) -> Iterator[bytes]:
    while True:
        line = readline(max_len)
        if not line:
            return
        if len(line) == max_len and line[-1] != 10:
            skipped = len(line)
            while True:              # skip the rest of the line without keeping it
                rest = readline(max_len)
                skipped += len(rest)
                if not rest or rest[-1] == 10:
                    break
                if max_skip is not None and skipped > max_skip:
                    yield LINE_TOO_LONG
                    return
            yield LINE_TOO_LONG
            continue
        yield line


def _stdlib_rest(path, skip: int, max_len: int, max_skip: int | None) -> Iterator[bytes]:
    """The lines after the first ``skip`` of the gzip file ``path``, read with the stdlib's GzipFile, up to its
    first error (swallowed: the caller diagnoses the file)."""
    try:
        with open_data_file(path) as raw:
            gz = gzip.GzipFile(fileobj=raw, mode="rb")
            fh = io.BufferedReader(_GzipChunks(gz), buffer_size=READ_BUFFER)
            for i, line in enumerate(_lines(fh.readline, max_len, max_skip)):
                if i >= skip:
                    yield line
    except (EOFError, zlib.error, OSError):
        return


def diagnose_gzip(path: str | Path, chunk: int = 1 << 14) -> str | None:
    """Decompress ``path`` again (streaming, output discarded) and say what is wrong with its gzip data, with
    byte offsets into the file; None if nothing is found. The first problem found is one of: not a gzip file,
    truncated at byte N (the end of the file, inside member k), CRC (or length) mismatch at the end of member
    k, corrupt deflate data in bytes A-B, trailing garbage at byte N."""
    try:
        f = open_data_file(path)
    except OSError as exc:
        return f"cannot read it again to diagnose: {exc}"
    with f:
        pos = 0                      # file offset of buf[0]
        buf = b""
        d = None                     # the member being decompressed
        member = 0
        member_start = 0
        while True:
            if len(buf) < 2:
                more = f.read(chunk)
                if more:
                    buf += more
                    continue
                if d is not None and not d.eof:
                    return (f"truncated at byte {pos + len(buf)}: the file ends inside gzip member {member} "
                            f"(which starts at byte {member_start}) before its end-of-stream marker")
                if buf and buf.strip(b"\0"):
                    return f"trailing garbage at byte {pos} ({len(buf)} byte(s) after the gzip data)"
                return None
            if d is None or d.eof:
                if d is not None:
                    stripped = buf.lstrip(b"\0")          # zero padding between members is allowed
                    pos += len(buf) - len(stripped)
                    buf = stripped
                    if len(buf) < 2:
                        continue
                if buf[:2] != GZIP_MAGIC:
                    if d is None:
                        return f"not a gzip file (starts with {buf[:8]!r})"
                    return (f"trailing garbage at byte {pos} (after the end of gzip member {member}; starts with "
                            f"{buf[:8]!r})")
                d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                member += 1
                member_start = pos
            try:
                d.decompress(buf, 1 << 20)
            except zlib.error as exc:
                text = str(exc)
                if "incorrect data check" in text:
                    return (f"CRC mismatch at the end of gzip member {member} (near byte {pos + len(buf)}): the "
                            f"decompressed data is corrupt")
                if "incorrect length check" in text:
                    return f"length mismatch at the end of gzip member {member}: the decompressed data is corrupt"
                return f"corrupt compressed data in bytes {pos}-{pos + len(buf)} (gzip member {member}): {text}"
            rest = d.unused_data if d.eof else d.unconsumed_tail
            pos += len(buf) - len(rest)
            buf = rest


def _detection_lines(path, max_lines: int, max_bytes: int = DETECT_MAX_BYTES) -> Iterator[bytes]:
    """The first ``max_lines`` lines of a recording, stopping after ``max_bytes`` bytes (bounded reads)."""
    with open_recording(path) as fh:
        total = 0
        for i, raw in enumerate(iter_lines(fh, path, max_skip=max_bytes)):
            if i >= max_lines or total >= max_bytes:
                return
            total += len(raw)
            yield raw


def detect_market(path: str | Path, max_lines: int = 5000) -> str:
    """Tell USDⓈ-M from spot by content: a ``depthUpdate`` with ``pu`` is USDⓈ-M, without it spot.

    Returns ``"binance_usdm"`` or ``"binance_spot"``. Reads at most ``max_lines`` lines and
    :data:`DETECT_MAX_BYTES` bytes. Raises ValueError if no depth diff is seen in them, DataFileError /
    OSError if the file cannot be read.
    """
    for raw in _detection_lines(path, max_lines):
        if b'"depthUpdate"' not in raw:
            continue
        try:
            msg = orjson.loads(raw[raw.index(b" ") + 1:])
        except (ValueError, orjson.JSONDecodeError):
            continue
        data = msg.get("data") if isinstance(msg, dict) else None
        if isinstance(data, dict) and data.get("e") == "depthUpdate":
            return "binance_usdm" if "pu" in data else "binance_spot"
    raise ValueError(f"{path}: no depthUpdate in the first {max_lines} lines (or {DETECT_MAX_BYTES} bytes); "
                     f"not a Binance recording? (pass --market if it is one)")


def detect_symbol(path: str | Path, max_lines: int = 5000) -> str:
    """First ``data.s`` symbol in the recording (e.g. ``BTCUSDT``). Reads at most ``max_lines`` lines and
    :data:`DETECT_MAX_BYTES` bytes. Raises ValueError if none, DataFileError / OSError if unreadable."""
    for raw in _detection_lines(path, max_lines):
        try:
            msg = orjson.loads(raw[raw.index(b" ") + 1:])
        except (ValueError, orjson.JSONDecodeError):
            continue
        data = msg.get("data") if isinstance(msg, dict) else None
        sym = data.get("s") if isinstance(data, dict) else None
        if isinstance(sym, str) and sym:
            return sym[:40]
    raise ValueError(f"{path}: no symbol found in the first {max_lines} lines (or {DETECT_MAX_BYTES} bytes)")


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
        Trading rules; loaded from the pinned markets file (``config/markets/<market>.json``) for the detected
        market and symbol when omitted.

    check : bool
        Check at start that the file is a recording of the instrument's market (:meth:`check_market`).

    Attributes
    ----------
    lines, malformed, ignored : int
        Lines read, lines skipped as malformed (each logged with its line number; a line longer than
        MAX_LINE_BYTES is one of them), well-formed lines not used.

    Raises
    ------
    ValueError
        The file is not a recording of the market (see :meth:`check_market`), or its market or symbol cannot be
        detected or is not in the instrument table.
    DataFileError, OSError
        The file cannot be opened or read (not a regular file, not gzip, damaged in its first lines).
    """

    def __init__(self, path: str | Path, market: str | None = None, instrument: Instrument | None = None,
                 check: bool = True):
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
        if check:
            self.check_market()

    def check_market(self, n_lines: int = CHECK_LINES) -> None:
        """Refuse a file that is not a recording of this instrument's market, before the replay.

        Decodes the first ``n_lines`` non-blank lines (at most DETECT_MAX_BYTES bytes) with this reader's
        decoder. Raises ValueError naming the file, the market and the fraction when more than half of them are
        malformed, when none of them is an event of the symbol, or when a depth diff contradicts the market
        (``pu`` present: USDⓈ-M; absent: spot), as with a forced wrong ``--market``.
        """
        decode = self.decoder.decode
        n = bad = used = 0
        first_error = None
        has_pu = None
        for lineno, raw in enumerate(_detection_lines(self.path, 10 * n_lines), 1):
            if not raw.strip():
                continue
            n += 1
            if has_pu is None and b'"depthUpdate"' in raw:
                has_pu = b'"pu"' in raw
            try:
                ev = decode(raw)
            except MalformedLine as exc:
                bad += 1
                if first_error is None:
                    first_error = f"line {lineno}: {'longer than MAX_LINE_BYTES' if raw is LINE_TOO_LONG else exc}"
                ev = None
            else:
                used += ev is not None
            if n >= n_lines:
                break
        what = f"{self.market} {self.instrument.symbol}"
        if n and 2 * bad > n:
            raise ValueError(f"{self.path}: {bad} of the first {n} lines ({100 * bad / n:.1f}%) do not decode as "
                             f"{what} (first: {first_error}); wrong --market, or not a recording?")
        if n and not used:
            raise ValueError(f"{self.path}: none of the first {n} lines is a {what} event; wrong --market or "
                             f"symbol?")
        if has_pu is not None and has_pu != (self.market == "binance_usdm"):
            found = "binance_usdm (its depth diffs carry 'pu')" if has_pu else "binance_spot (its depth diffs have no 'pu')"
            raise ValueError(f"{self.path}: the market is {self.market} but the file is {found}; wrong --market?")

    def report_malformed(self, lineno: int, exc: Exception, raw: bytes | None = None) -> None:
        """Count a malformed line and log a warning naming it (the first MAX_MALFORMED_WARNINGS); ``raw`` is the
        line (:data:`LINE_TOO_LONG` for a line longer than MAX_LINE_BYTES)."""
        self.malformed += 1
        if self.malformed <= MAX_MALFORMED_WARNINGS:
            if raw is LINE_TOO_LONG:
                exc = f"longer than {MAX_LINE_BYTES} bytes (MAX_LINE_BYTES)"
            log.warning("%s line %d: malformed, skipped: %s", self.path.name, lineno, exc)
        elif self.malformed == MAX_MALFORMED_WARNINGS + 1:
            log.warning("%s: more malformed lines; further warnings suppressed (count continues)", self.path.name)

    def __iter__(self) -> Iterator:
        """The events, in file order. Raises DataFileError if the file turns out to be damaged (the events
        before the damage have been yielded; ``lines`` counts the lines read)."""
        decode = self.decoder.decode
        with open_recording(self.path) as fh:
            for lineno, raw in enumerate(iter_lines(fh, self.path), 1):
                self.lines = lineno
                try:
                    ev = decode(raw)
                except MalformedLine as exc:
                    self.report_malformed(lineno, exc, raw)
                    continue
                if ev is None:
                    self.ignored += 1
                    continue
                yield ev
