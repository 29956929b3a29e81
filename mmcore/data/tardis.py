"""Tardis.dev CSV datasets -> mmcore's typed events (prices in ticks, quantities in lots, times in ns).

Format rules (Tardis "Data Types", https://docs.tardis.dev/downloadable-csv-files/data-types, and its data FAQ,
https://docs.tardis.dev/faq/data): comma-delimited, LF line ends, ``.`` decimal mark, times in **microseconds**
since the epoch (UTC). Every file starts with ``exchange,symbol,timestamp,local_timestamp``: ``timestamp`` is
the exchange's time (Tardis falls back to the local time where the exchange gives none), ``local_timestamp``
the time Tardis received the message. The four kinds read here are told apart by their header
(:func:`detect_kind`; any other header is refused):

- ``trades``: ``id,side,price,amount``; ``side`` is the liquidity taker's (aggressor's) side: ``buy``, ``sell``
  or ``unknown``;
- ``quotes``: ``ask_amount,ask_price,bid_price,bid_amount``, the top of book (a side may be empty);
- ``book_snapshot_N`` (Tardis publishes N = 25 and 5): ``asks[i].price,asks[i].amount,bids[i].price,
  bids[i].amount`` for i in 0..N-1, empty where the book has fewer levels;
- ``incremental_book_L2``: ``is_snapshot,side,price,amount``, one price level per row. The rows of one exchange
  message share ``local_timestamp``; amount 0 removes the level; a run of ``is_snapshot=true`` rows after
  ``false`` rows is a new full snapshot (the book is reset); ``false`` rows before the first snapshot are
  skipped, as the Tardis page says.

Events (all times ``ts_event_ns = timestamp * 1000``, ``ts_local_ns = local_timestamp * 1000``):

- a trade row -> :class:`~mmcore_ext.events.Trade` (``trade_id`` from ``id``; ``side`` +1 buy / -1 sell aggressor;
  an ``unknown`` side cannot be given to the engine or the simulated exchange, so the row is skipped and
  counted as ``unknown_side``; an ``id`` that is not an integer gets a synthetic negative id, counted);
- a quote row -> a one-level :class:`~mmcore_ext.events.DepthSnapshot` (the whole book is the quote's top), or a
  :class:`~mmcore_ext.events.BookTicker` with ``quotes_as="ticker"``;
- a ``book_snapshot_N`` row -> a :class:`~mmcore_ext.events.DepthSnapshot` of its levels;
- ``incremental_book_L2``: each snapshot run -> one DepthSnapshot; each group of ``false`` rows with the same
  ``local_timestamp`` -> one :class:`~mmcore_ext.events.DepthDiff` (the last amount of a price wins).

Update ids (these files carry none; the compiled book enforces Binance's id sequence): each reader numbers its
book events itself. A snapshot gets ``lastUpdateId = n + 1`` (n: the last id given); the first diff after it gets
``U = lastUpdateId, u = U + 1, pu = lastUpdateId``; every later diff ``U = u = previous u + 1, pu = previous u``.
Both of :class:`mmcore_ext.book.L2Book`'s rules accept that chain (spot: ``U <= lastUpdateId + 1 <= u``, then
``U == previous u + 1``; USDⓈ-M: ``U <= lastUpdateId <= u``, then ``pu == previous u``). When an
``incremental_book_L2`` row is lost (malformed, off the grid, out of range, out of time order) one id is
skipped, so the next diff does not chain: the engine's book reports a sequence gap, pauses quoting and resyncs
at the next snapshot run (a snapshot run with a lost row is not emitted). Quotes and ``book_snapshot_N`` rows
are whole books, so a lost row loses nothing after it.

Prices and amounts are converted from the decimal text exactly (:meth:`InstrumentGrid.price_ticks`): a price
that is not a multiple of the tick (or an amount not a multiple of the lot) is refused, never rounded: the row is
skipped, counted (``off_grid``) and logged. When most of the first :data:`CHECK_ROWS` rows are off the grid, the
reader refuses the file (:class:`TardisFormatError`) and says to give the tick of the data's date (e.g. Binance
USDⓈ-M BTCUSDT had tick 0.01 in 2020, 0.1 today; see :func:`with_grid`).

Hostile input: the file must be a regular file; gzip is detected by its magic bytes; lines are bounded
(:data:`MAX_ROW_BYTES`); a damaged gzip ends the iteration with :class:`DataFileError` after every event before
the damage (an event still being assembled is dropped); a malformed row, a value outside int64 or the
instrument's bounds, a local time earlier than the previous row's: counted in :attr:`TardisReader.problems`,
logged (the first :data:`MAX_WARNINGS`), skipped.
"""
from __future__ import annotations

import heapq
import logging
from collections import Counter
from decimal import Decimal, InvalidOperation
from operator import attrgetter
from pathlib import Path
from typing import Iterator

from mmcore.data.tardis_format import (HEADERS, INCREMENTAL, KINDS, MAX_ROW_BYTES, PREFIX, QUOTES, TRADES,
                                       TardisFormatError, _Bad, _split, detect_kind, is_tardis_file, read_head,
                                       snapshot_header)
from mmcore.data.tardis_instrument import generic_instrument, market_of_exchange, with_grid
from mmcore.instruments import Instrument
from mmcore.venues.binance.recording import DataFileError, iter_lines, open_data_file, open_recording
from mmcore_ext.events import BookTicker, DepthDiff, DepthSnapshot, Trade

__all__ = ["CHECK_ROWS", "KINDS", "TardisFormatError", "TardisReader", "TardisReplay", "DataFileError",
           "detect_kind", "generic_instrument", "is_tardis_file", "market_of_exchange", "read_head",
           "snapshot_header", "with_grid"]

log = logging.getLogger("mmcore.tardis")

#: Warnings logged per file before they are only counted.
MAX_WARNINGS = 50
#: Rows decoded at start by :meth:`TardisReader.check` (most of them off the grid or malformed: refused).
CHECK_ROWS = 1000
#: Problems that are not damage: well-formed rows that are not used (counted in ``ignored``, not ``malformed``).
NOT_DAMAGE = frozenset({"other_symbol", "unknown_side", "before_snapshot"})
_MAX_US = (2**63 - 1) // 1000          # the last µs whose ns value fits int64
_MAX_NUMBER_CHARS = 64


def _plain(text: str) -> str | None:
    """``text`` as a plain decimal string (``1e-05`` -> ``0.00001``), or None when it is no finite decimal of at
    most :data:`_MAX_NUMBER_CHARS` characters with an exponent within +-40."""
    if len(text) > _MAX_NUMBER_CHARS:
        return None
    try:
        d = Decimal(text)
    except InvalidOperation:
        return None
    if not d.is_finite() or not -40 <= d.adjusted() <= 40:
        return None
    return format(d, "f")


class _Snapshot:
    __slots__ = ("bids", "asks", "ts_local", "ts_event", "broken")

    def __init__(self, broken: bool):
        self.bids, self.asks, self.ts_local, self.ts_event, self.broken = {}, {}, 0, 0, broken


class TardisReader:
    """Iterate the typed events of one Tardis CSV file (plain or gzip), counting and skipping bad rows.

    Parameters
    ----------
    path : str or Path
        The file; its kind comes from the header (:func:`detect_kind`).
    instrument : Instrument
        The grid (``tick_size``: price unit, ``lot_size``: quantity unit) and bounds (``max_price_ticks``,
        ``max_qty_lots``) the values are converted with; see :func:`with_grid` and :func:`generic_instrument`.
    quotes_as : str
        ``"book"`` (default): a quote row is a one-level DepthSnapshot; ``"ticker"``: a BookTicker.
    check : bool
        Decode the first :data:`CHECK_ROWS` rows before anything else (:meth:`check`).

    Attributes
    ----------
    kind, exchange, symbol : str
        From the header and the first data row.
    lines, rows, events : int
        Lines read (header included), data rows read, events yielded (by the last iteration).
    problems : Counter
        Rows skipped, by reason: ``malformed``, ``off_grid``, ``out_of_range``, ``out_of_order`` (local time
        earlier than the previous row's), ``other_symbol``, ``unknown_side``, ``before_snapshot``;
        also ``synthetic_trade_id`` (rows kept) and ``incomplete_at_damage`` (an event dropped at a damaged end).
    malformed, ignored : int
        Rows skipped as damage, rows skipped as not used (other symbol, unknown side, before the first snapshot).

    Raises
    ------
    TardisFormatError
        The header is not one of the kinds, the file has no data row, or :meth:`check` refuses it.
    DataFileError, OSError
        The file cannot be opened or read (missing, not a regular file, a ``.gz`` that is not gzip, damaged).
    """

    def __init__(self, path: str | Path, instrument: Instrument, quotes_as: str = "book", check: bool = True,
                 _quiet: bool = False):
        if quotes_as not in ("book", "ticker"):
            raise ValueError(f"quotes_as {quotes_as!r}: 'book' or 'ticker'")
        self.path = Path(path)
        self.kind = detect_kind(self.path)
        _, first = read_head(self.path)
        if first is None or len(first) < 2:
            raise TardisFormatError(f"{self.path}: no data row after the {self.kind} header")
        self.exchange, self.symbol = first[0][:40], first[1][:40]
        self.instrument = instrument
        self.quotes_as = quotes_as
        self._quiet = _quiet
        self._ncols = len(HEADERS.get(self.kind) or snapshot_header(int(self.kind.rsplit("_", 1)[1])))
        self._raw = None
        self._reset()
        if check:
            self.check()

    def _reset(self) -> None:
        self.lines = self.rows = self.events = 0
        self.problems: Counter = Counter()
        self.malformed = self.ignored = 0
        self.first_problem: str | None = None
        self._uid = 0                  # the last synthetic update id given
        self._first_diff = False       # the next diff is the first after a snapshot
        self._synthetic_tid = 0
        self._last_local = 0

    # --- counting ---
    def _report(self, lineno: int, problem: str, message: str) -> None:
        self.problems[problem] += 1
        if problem in NOT_DAMAGE:
            self.ignored += 1
        else:
            self.malformed += 1
        if self.first_problem is None and problem not in NOT_DAMAGE:
            self.first_problem = f"line {lineno}: {message}"
        n = self.malformed + self.ignored
        if self._quiet:
            return
        if n <= MAX_WARNINGS:
            log.warning("%s line %d: %s, skipped: %s", self.path.name, lineno, problem.replace("_", " "), message)
        elif n == MAX_WARNINGS + 1:
            log.warning("%s: more rows skipped; further warnings suppressed (counted in problems)", self.path.name)

    # --- fields ---
    def _units(self, text: str, conv, step: Decimal, unit: str, what: str) -> int:
        try:
            return conv(text)
        except ValueError:
            pass
        plain = _plain(text)
        if plain is None:
            raise _Bad("malformed", f"{what} {text[:40]!r}: not a decimal number (or absurdly large)")
        if plain != text:
            try:
                return conv(plain)
            except ValueError:
                pass
        if Decimal(plain) % step:
            raise _Bad("off_grid", f"{what} {text}: not a multiple of the {unit} {step}")
        raise _Bad("out_of_range", f"{what} {text}: outside int64 {unit}s")

    def _price(self, text: str, what: str) -> int:
        inst = self.instrument
        px = self._units(text, inst.grid.price_ticks, inst.tick_size, "tick", what)
        if not 1 <= px <= inst.max_price_ticks:
            raise _Bad("out_of_range", f"{what} {text}: {px} ticks outside [1, {inst.max_price_ticks}]")
        return px

    def _qty(self, text: str, what: str, positive: bool = False) -> int:
        inst = self.instrument
        q = self._units(text, inst.grid.qty_lots, inst.lot_size, "lot", what)
        if not (1 if positive else 0) <= q <= inst.max_qty_lots:
            raise _Bad("out_of_range", f"{what} {text}: {q} lots outside [{1 if positive else 0}, "
                                       f"{inst.max_qty_lots}]")
        return q

    @staticmethod
    def _us_to_ns(text: str, what: str) -> int:
        if not (text.isascii() and text.isdigit() and len(text) <= 16):
            raise _Bad("malformed", f"{what} {text[:40]!r}: not microseconds since the epoch")
        us = int(text)
        if not 0 < us <= _MAX_US:
            raise _Bad("out_of_range", f"{what} {text}: outside (0, {_MAX_US}] µs (int64 ns)")
        return us * 1000

    def _level(self, px_text: str, qty_text: str, what: str):
        """``(price ticks, qty lots)``, or None for an empty pair or quantity 0."""
        if not px_text and not qty_text:
            return None
        if not px_text or not qty_text:
            raise _Bad("malformed", f"{what}: price {px_text!r} with amount {qty_text!r}")
        qty = self._qty(qty_text, f"{what} amount")
        return (self._price(px_text, f"{what} price"), qty) if qty else None

    # --- ids ---
    def _snapshot_id(self) -> int:
        self._uid += 1
        self._first_diff = True
        return self._uid

    def _diff_ids(self) -> tuple[int, int, int]:
        last = self._uid
        if self._first_diff:
            self._first_diff = False
            self._uid = last + 1
            return last, last + 1, last          # U <= lastUpdateId (+1) <= u: both sync rules
        self._uid = last + 1
        return last + 1, last + 1, last          # U == previous u + 1, pu == previous u

    def _lose(self) -> None:
        """A book row was lost: skip an id, so that the next diff does not chain (the book sees a gap)."""
        self._uid += 1
        self._first_diff = False

    # --- iteration ---
    def _rows(self, with_bad: bool = False) -> Iterator[tuple[int, list[str], int, int]]:
        """``(lineno, fields, ts_event_ns, ts_local_ns)`` of the data rows of the file's symbol, in order. Bad rows
        are reported and skipped; with ``with_bad``, a damaged row (not one of NOT_DAMAGE) is also yielded, as
        ``(lineno, fields or [], -1, -1)``."""
        self._reset()
        raw_fh = open_data_file(self.path)
        self._raw = raw_fh
        try:
            fh = open_recording(self.path, raw_fh)
            with fh:
                lines = iter_lines(fh, self.path, MAX_ROW_BYTES)
                for lineno, raw in enumerate(lines, 1):
                    self.lines = lineno
                    if lineno == 1:
                        continue                       # the header (checked by detect_kind)
                    cols = []
                    try:
                        cols = _split(raw)
                        if cols is None:
                            continue
                        self.rows += 1
                        if len(cols) != self._ncols:
                            raise _Bad("malformed", f"{len(cols)} columns, the {self.kind} header has {self._ncols}")
                        if cols[0] != self.exchange or cols[1] != self.symbol:
                            raise _Bad("other_symbol", f"{cols[0][:40]} {cols[1][:40]}, the file's first row is "
                                                       f"{self.exchange} {self.symbol}")
                        ts = self._us_to_ns(cols[2], "timestamp")
                        local = self._us_to_ns(cols[3], "local_timestamp")
                        if local < self._last_local:
                            raise _Bad("out_of_order", f"local_timestamp {cols[3]} is before the previous row's "
                                                       f"({self._last_local // 1000})")
                    except _Bad as bad:
                        self._report(lineno, bad.problem, str(bad))
                        if with_bad and bad.problem not in NOT_DAMAGE:
                            yield lineno, cols or [], -1, -1
                        continue
                    self._last_local = local
                    yield lineno, cols, ts, local
        finally:
            self._raw = None
            raw_fh.close()

    def bytes_read(self) -> int:
        """Bytes of the (compressed) file read so far by the running iteration (the file size when none runs)."""
        raw = self._raw
        if raw is None or raw.closed:
            return self.path.stat().st_size
        return raw.tell()

    def check(self, n_rows: int = CHECK_ROWS) -> None:
        """Refuse a file whose first ``n_rows`` data rows are mostly unusable with this instrument.

        Raises TardisFormatError naming the file, the fraction and the first problem when more than half of them
        are off the tick / lot grid (with the advice to give the tick of the data's date: ``--tick-size``), or
        malformed. DataFileError: damage within those rows."""
        probe = TardisReader(self.path, self.instrument, self.quotes_as, check=False, _quiet=True)
        for _ in probe._events():
            if probe.rows >= n_rows:
                break
        n = probe.rows
        if not n:
            return
        inst = self.instrument
        off = probe.problems["off_grid"]
        if 2 * off > n:
            raise TardisFormatError(
                f"{self.path}: {off} of the first {n} rows have a price or amount off the grid of {inst.symbol} "
                f"(tick {inst.tick_size}, lot {inst.lot_size}; first: {probe.first_problem}); give the tick and lot "
                f"the exchange used on the data's date (--tick-size / --lot-size)")
        if 2 * probe.malformed > n:
            raise TardisFormatError(f"{self.path}: {probe.malformed} of the first {n} {self.kind} rows cannot be "
                                    f"used (first: {probe.first_problem})")

    def __iter__(self) -> Iterator:
        """The events in file order (see the module docstring). Raises DataFileError when the file turns out to be
        damaged (the events before the damage have been yielded)."""
        for ev in self._events():
            self.events += 1
            yield ev

    def _events(self) -> Iterator:
        if self.kind == TRADES:
            return self._trades()
        if self.kind == QUOTES:
            return self._quotes()
        if self.kind == INCREMENTAL:
            return self._incremental()
        return self._snapshots()

    def _trades(self) -> Iterator[Trade]:
        sides = {"buy": 1, "sell": -1}
        for lineno, c, ts, local in self._rows():
            try:
                side = sides.get(c[5])
                if side is None:
                    if c[5] == "unknown":
                        raise _Bad("unknown_side", "side 'unknown' (the aggressor is not known)")
                    raise _Bad("malformed", f"side {c[5][:20]!r}: buy, sell or unknown")
                px = self._price(c[6], "price")
                qty = self._qty(c[7], "amount", positive=True)
                tid = c[4]
                if tid.isascii() and tid.isdigit() and len(tid) <= 18:
                    tid = int(tid)
                else:
                    self._synthetic_tid -= 1
                    self.problems["synthetic_trade_id"] += 1
                    tid = self._synthetic_tid
            except _Bad as bad:
                self._report(lineno, bad.problem, str(bad))
                continue
            yield Trade(local, ts, tid, px, qty, side)

    def _quotes(self) -> Iterator:
        ticker = self.quotes_as == "ticker"
        for lineno, c, ts, local in self._rows():
            try:
                ask = self._level(c[5], c[4], "ask")
                bid = self._level(c[6], c[7], "bid")
            except _Bad as bad:
                self._report(lineno, bad.problem, str(bad))
                continue
            uid = self._snapshot_id()
            if ticker:
                yield BookTicker(local, ts, uid, bid[0] if bid else 0, bid[1] if bid else 0, ask[0] if ask else 0,
                                 ask[1] if ask else 0)
            else:
                yield DepthSnapshot.from_ticks(uid, [bid] if bid else [], [ask] if ask else [], local, ts)

    def _snapshots(self) -> Iterator[DepthSnapshot]:
        n = (self._ncols - len(PREFIX)) // 4
        for lineno, c, ts, local in self._rows():
            bids, asks = [], []
            try:
                for i in range(n):
                    j = len(PREFIX) + 4 * i
                    a = self._level(c[j], c[j + 1], f"asks[{i}]")
                    b = self._level(c[j + 2], c[j + 3], f"bids[{i}]")
                    if a:
                        asks.append(a)
                    if b:
                        bids.append(b)
            except _Bad as bad:
                self._report(lineno, bad.problem, str(bad))
                continue
            yield DepthSnapshot.from_ticks(self._snapshot_id(), bids, asks, local, ts)

    def _incremental(self) -> Iterator:
        snap: _Snapshot | None = None        # the snapshot run being read
        group = None                         # [ts_local, ts_event, bids, asks] of the diff being read
        seen_snapshot = False
        taint = False                        # a row of unknown kind was lost outside a snapshot run
        try:
            for lineno, c, ts, local in self._rows(with_bad=True):
                flag = c[4] if len(c) == self._ncols and c[4] in ("true", "false") else None
                if ts >= 0:
                    try:
                        if flag is None:
                            raise _Bad("malformed", f"is_snapshot {c[4][:20]!r}: true or false")
                        side = c[5]
                        if side not in ("bid", "ask"):
                            raise _Bad("malformed", f"side {side[:20]!r}: bid or ask")
                        px = self._price(c[6], "price")
                        qty = self._qty(c[7], "amount")
                    except _Bad as bad:
                        self._report(lineno, bad.problem, str(bad))
                        ts = -1
                if ts < 0:                   # a lost row: the book must not go on as if nothing was lost
                    if flag == "false":      # an update: the snapshot run before it was complete
                        if snap is not None:
                            ev = self._snapshot(snap)
                            snap = None
                            if ev is not None:
                                yield ev
                        if group is not None and c[3] != str(group[0] // 1000):
                            yield self._diff(group)        # the previous message was complete
                            group = None
                    elif snap is not None:
                        snap.broken = True
                    else:
                        taint = True         # it may have been the first row of the next snapshot run
                    self._lose()
                    continue
                if flag == "true":
                    if group is not None:
                        yield self._diff(group)
                        group = None
                    if snap is None:
                        snap = _Snapshot(taint)
                        taint = False
                        seen_snapshot = True
                    (snap.bids if side == "bid" else snap.asks)[px] = qty
                    snap.ts_local, snap.ts_event = local, ts
                    continue
                if not seen_snapshot:
                    self._report(lineno, "before_snapshot", "an update before the file's first snapshot")
                    continue
                taint = False
                if snap is not None:
                    ev = self._snapshot(snap)
                    snap = None
                    if ev is not None:
                        yield ev
                if group is not None and group[0] != local:
                    yield self._diff(group)
                    group = None
                if group is None:
                    group = [local, ts, {}, {}]
                group[1] = ts
                (group[2] if side == "bid" else group[3])[px] = qty
        except DataFileError:
            if snap is not None or group is not None:
                self.problems["incomplete_at_damage"] += 1
            raise
        if snap is not None:
            ev = self._snapshot(snap)
            if ev is not None:
                yield ev
        if group is not None:
            yield self._diff(group)

    def _snapshot(self, snap: _Snapshot) -> DepthSnapshot | None:
        if snap.broken:
            self.problems["snapshots_dropped"] += 1
            log.warning("%s: a snapshot run with a lost row was not used; the book resyncs at the next one",
                        self.path.name)
            return None
        return DepthSnapshot.from_ticks(self._snapshot_id(), [(p, q) for p, q in snap.bids.items() if q],
                                        [(p, q) for p, q in snap.asks.items() if q], snap.ts_local, snap.ts_event)

    def _diff(self, group) -> DepthDiff:
        U, u, pu = self._diff_ids()
        return DepthDiff.from_ticks(U, u, list(group[2].items()), list(group[3].items()), pu, group[0], group[1])


class TardisReplay:
    """Several Tardis files of one instrument, their events merged by local time (``ts_local_ns``; rows with the
    same time keep the order the files are given in).

    At most one file may feed the book (quotes, book_snapshot_N or incremental_book_L2): two would each replace
    the other's book. With ``stop_at_book_end`` (default) the replay ends with the book file: later trades
    would meet a book frozen at its last row (the 2020-02-22 quotes cover the first ~4 minutes of ~2 hours of
    trades) and fill the simulated orders at prices the book never showed; they are read and counted
    (``problems["after_book_end"]``), not yielded. Raises TardisFormatError for two book files, files of different exchanges / symbols, or
    as :class:`TardisReader`; DataFileError / OSError as it.

    ``lines``, ``malformed``, ``ignored``: summed over the files (the replay summary's fields)."""

    def __init__(self, paths, instrument: Instrument, quotes_as: str = "book", stop_at_book_end: bool = True):
        paths = [Path(p) for p in paths]
        if not paths:
            raise ValueError("no Tardis file given")
        self.readers = [TardisReader(p, instrument, quotes_as) for p in paths]
        books = [r for r in self.readers if r.kind != TRADES]
        if len(books) > 1:
            raise TardisFormatError("at most one book file (quotes, book_snapshot_N, incremental_book_L2) per replay, "
                                    "got " + ", ".join(f"{r.path.name} ({r.kind})" for r in books))
        names = {(r.exchange, r.symbol) for r in self.readers}
        if len(names) > 1:
            raise TardisFormatError("the files are of different instruments: " + ", ".join(
                f"{r.path.name}: {r.exchange} {r.symbol}" for r in self.readers))
        self.instrument = instrument
        self.path = paths[0]
        self.book = books[0] if books else None
        self.stop_at_book_end = stop_at_book_end
        self.after_book_end = 0

    @property
    def lines(self) -> int:
        return sum(r.lines for r in self.readers)

    @property
    def malformed(self) -> int:
        return sum(r.malformed for r in self.readers)

    @property
    def ignored(self) -> int:
        return sum(r.ignored for r in self.readers)

    @property
    def problems(self) -> Counter:
        total = Counter()
        for r in self.readers:
            total.update(r.problems)
        if self.after_book_end:
            total["after_book_end"] = self.after_book_end
        return total

    def bytes_read(self) -> int:
        return sum(r.bytes_read() for r in self.readers)

    def size(self) -> int:
        return sum(r.path.stat().st_size for r in self.readers)

    def __iter__(self) -> Iterator:
        """The merged events. Raises DataFileError as :meth:`TardisReader.__iter__` for any of the files."""
        self.after_book_end = 0
        if len(self.readers) == 1:
            yield from self.readers[0]
            return
        ended = []

        def book_events():
            yield from self.book
            ended.append(True)         # set when the merge asks the book for an event after its last
        sources = [book_events() if r is self.book else r for r in self.readers]
        stop = self.stop_at_book_end and self.book is not None
        for ev in heapq.merge(*sources, key=attrgetter("ts_local_ns")):
            if stop and ended:
                self.after_book_end += 1
                continue
            yield ev
