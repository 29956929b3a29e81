"""The decoded-event cache: a recording decoded once, replayed from memory-mapped int64 arrays afterwards.

``python -m mmcore cache FILE.gz`` (and ``sweep`` / ``compare`` on first use) decodes a recording with the same
reader and decoder as a replay and writes ``<cache dir>/<name>.<key>.mmcache``; a replay from it gives the same
events in the same order, hence the identical report (the timing keys aside). The cache directory is
``$MMCORE_CACHE_DIR`` or ``~/.cache/mmcore/events``.

File format (all integers little-endian):

====================  ===========================================================================================
bytes 0-7             magic ``MMEVC001``
bytes 8-15            header length H (uint64), at most ``MAX_HEADER_BYTES``
bytes 16..16+H        header: UTF-8 JSON, space-padded to a multiple of 8 bytes
then                  the record array, ``events x 8`` int64 (``mmcore_ext.event_cache``: kind, times, fields)
then                  the level array, ``levels`` int64 (each depth event's level block, in order)
====================  ===========================================================================================

The header holds the format version, the source file's size and SHA-256, the instrument the events were decoded
for (market, symbol, tick, lot, bounds), the decoder version, the counts (events, levels, lines, ignored and
malformed lines, with the first malformed lines' numbers and reasons) and the array lengths. A cache whose source
hash, instrument or versions differ from the current ones is stale: it is rebuilt, never used. A cache file is
untrusted input: the header is bounded and parsed as JSON, the array lengths must match the file size exactly,
and every record is checked as it is read (:class:`mmcore_ext.event_cache.EventStream`). A damaged source (not
wholly decodable) is not cached.
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmcore.instruments import Instrument
from mmcore_ext.event_cache import RECORD_WORDS, EventPacker, EventStream

MAGIC = b"MMEVC001"
FORMAT = 1
#: Bumped whenever decoding changes what an event holds (a cache of another version is rebuilt).
DECODER_VERSION = 1
MAX_HEADER_BYTES = 1 << 20
#: Malformed lines whose number and reason the header keeps (all are counted).
MALFORMED_KEPT = 50


class CacheError(ValueError):
    """A cache file that cannot be used (damaged, or of another format); the message says why."""


def cache_dir() -> Path:
    return Path(os.environ.get("MMCORE_CACHE_DIR") or Path.home() / ".cache" / "mmcore" / "events")


def source_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def instrument_key(inst: Instrument) -> dict:
    """What decoding depends on besides the bytes: the instrument's grids and bounds."""
    return {"market": inst.market, "symbol": inst.symbol, "tick_size": str(inst.tick_size),
            "lot_size": str(inst.lot_size), "max_price_ticks": inst.max_price_ticks,
            "max_qty_lots": inst.max_qty_lots}


def cache_path(source: Path, inst: Instrument) -> Path:
    """Where the cache of ``source`` for ``inst`` lives (named by the source's absolute path and the instrument,
    so that two files of one name do not share a cache)."""
    key = hashlib.sha256(json.dumps([str(Path(source).resolve()), instrument_key(inst)]).encode()).hexdigest()[:16]
    return cache_dir() / f"{Path(source).name}.{key}.mmcache"


@dataclass
class CachedRecording:
    """An opened, validated cache: ``stream()`` yields the events; the counts are those of the decoded source."""

    path: Path
    header: dict
    records: np.ndarray
    levels: np.ndarray

    @property
    def events(self) -> int:
        return self.header["events"]

    def stream(self) -> EventStream:
        return EventStream(self.records, self.levels)


def build(source: Path, reader, out: Path | None = None) -> Path:
    """Decode ``source`` with ``reader`` (a :class:`mmcore.venues.binance.recording.ReplayReader` of it) and write
    its cache (atomically: a temporary file renamed). Returns the cache path. Raises DataFileError when the
    source is damaged (nothing is written)."""
    source = Path(source)
    inst = reader.instrument
    digest = source_sha256(source)
    packer = EventPacker()
    malformed: list = []
    orig = reader.report_malformed

    def note(lineno, exc, raw=None):
        if len(malformed) < MALFORMED_KEPT:
            malformed.append([lineno, str(exc)])
        orig(lineno, exc, raw)
    reader.report_malformed = note
    try:
        for ev in reader:
            packer.add(ev)
    finally:
        reader.report_malformed = orig
    rec, lvl = packer.records(), packer.levels()
    header = {"format": FORMAT, "decoder": DECODER_VERSION, "source": source.name, "source_size": source.stat().st_size,
              "source_sha256": digest, "instrument": instrument_key(inst), "events": packer.events,
              "record_words": RECORD_WORDS, "levels": len(lvl) // 8, "lines": reader.lines,
              "ignored": reader.ignored, "malformed": reader.malformed, "malformed_first": malformed}
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    out = Path(out) if out is not None else cache_path(source, inst)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    little = np.dtype("<i8")
    with open(tmp, "wb") as f:
        f.write(MAGIC + struct.pack("<Q", len(text)) + text)
        f.write(np.frombuffer(rec, dtype=np.int64).astype(little, copy=False).tobytes())
        f.write(np.frombuffer(lvl, dtype=np.int64).astype(little, copy=False).tobytes())
    os.replace(tmp, out)
    return out


def open_cache(path: Path) -> CachedRecording:
    """Open and validate a cache file (format, header, array lengths against the file size). Raises CacheError."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(16)
            if len(head) < 16 or head[:8] != MAGIC:
                raise CacheError(f"{path}: not an mmcore event cache (magic {head[:8]!r})")
            (hlen,) = struct.unpack("<Q", head[8:])
            if hlen > MAX_HEADER_BYTES or hlen % 8 or 16 + hlen > size:
                raise CacheError(f"{path}: header length {hlen} is not valid")
            header = json.loads(f.read(hlen))
    except OSError as exc:
        raise CacheError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise CacheError(f"{path}: header is not JSON: {exc}") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT or header.get("record_words") != RECORD_WORDS:
        raise CacheError(f"{path}: another cache format ({brief(header)})")
    n_ev, n_lv = header.get("events"), header.get("levels")
    if not (isinstance(n_ev, int) and isinstance(n_lv, int) and 0 <= n_ev and 0 <= n_lv
            and 16 + hlen + 8 * (RECORD_WORDS * n_ev + n_lv) == size):
        raise CacheError(f"{path}: array lengths ({n_ev} events, {n_lv} levels) do not match the file size {size}")
    off = 16 + hlen
    rec = np.memmap(path, dtype="<i8", mode="r", offset=off, shape=(RECORD_WORDS * n_ev,)) if n_ev else \
        np.zeros(0, dtype=np.int64)
    lvl = np.memmap(path, dtype="<i8", mode="r", offset=off + 8 * RECORD_WORDS * n_ev, shape=(n_lv,)) if n_lv else \
        np.zeros(0, dtype=np.int64)
    if np.dtype("<i8") != np.dtype(np.int64):                     # a big-endian machine: native copies
        rec, lvl = rec.astype(np.int64), lvl.astype(np.int64)
    return CachedRecording(path, header, rec, lvl)


def brief(header) -> str:
    if not isinstance(header, dict):
        return type(header).__name__
    return f"format {header.get('format')!r}, record_words {header.get('record_words')!r}"


def stale_reason(cached: CachedRecording, source: Path, inst: Instrument, digest: str | None = None) -> str | None:
    """Why ``cached`` is not the cache of ``source`` for ``inst`` now (None: it is)."""
    h = cached.header
    if h.get("decoder") != DECODER_VERSION:
        return f"decoder version {h.get('decoder')!r}, now {DECODER_VERSION}"
    if h.get("instrument") != instrument_key(inst):
        return "decoded for another instrument definition"
    if h.get("source_size") != Path(source).stat().st_size:
        return "the source's size changed"
    if h.get("source_sha256") != (digest or source_sha256(source)):
        return "the source's content hash changed"
    return None


def load_or_build(source: Path, reader, log=None) -> tuple[CachedRecording, bool]:
    """The cache of ``source`` (built, or rebuilt when missing, damaged or stale); returns ``(cache, built)``."""
    path = cache_path(source, reader.instrument)
    why = "no cache yet"
    if path.exists():
        try:
            cached = open_cache(path)
            why = stale_reason(cached, source, reader.instrument)
            if why is None:
                return cached, False
        except CacheError as exc:
            why = str(exc)
    if log is not None:
        log.info("building the event cache of %s (%s): %s", source, why, path)
    return open_cache(build(source, reader, path)), True
