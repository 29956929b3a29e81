"""Tardis.dev CSV kinds, told apart by their header (https://docs.tardis.dev/downloadable-csv-files/data-types).

Every Tardis CSV starts with ``exchange,symbol,timestamp,local_timestamp``; the columns after them name the kind
(see :mod:`mmcore.data.tardis` for what each kind means and becomes).
"""
from __future__ import annotations

from pathlib import Path

from mmcore.venues.binance.recording import LINE_TOO_LONG, iter_lines, open_recording

__all__ = ["HEADERS", "INCREMENTAL", "KINDS", "MAX_ROW_BYTES", "PREFIX", "QUOTES", "TRADES", "TardisFormatError",
           "detect_kind", "is_tardis_file", "kind_of_header", "read_head", "snapshot_header"]

TRADES, QUOTES, INCREMENTAL = "trades", "quotes", "incremental_book_L2"
PREFIX = ("exchange", "symbol", "timestamp", "local_timestamp")
HEADERS = {
    TRADES: PREFIX + ("id", "side", "price", "amount"),
    QUOTES: PREFIX + ("ask_amount", "ask_price", "bid_price", "bid_amount"),
    INCREMENTAL: PREFIX + ("is_snapshot", "side", "price", "amount"),
}
#: The kinds read; ``book_snapshot_N`` stands for any N in [1, MAX_SNAPSHOT_LEVELS].
KINDS = (TRADES, QUOTES, "book_snapshot_N", INCREMENTAL)
MAX_SNAPSHOT_LEVELS = 1000
#: Longest row read (bytes, newline included); a book_snapshot_25 row is about 900 bytes. Longer: malformed.
MAX_ROW_BYTES = 1 << 16


class TardisFormatError(ValueError):
    """A file that is not one of the Tardis kinds read here (wrong header), or whose values do not fit the
    instrument (most rows off the tick / lot grid). ``str()`` names the file and what is wrong."""


class _Bad(Exception):
    """One row refused: ``problem`` (counter key) and a message."""

    def __init__(self, problem: str, message: str):
        super().__init__(message)
        self.problem = problem


def snapshot_header(n: int) -> tuple[str, ...]:
    """The header of ``book_snapshot_<n>``: the prefix, then ask price, ask amount, bid price, bid amount per level."""
    return PREFIX + tuple(f"{side}[{i}].{f}" for i in range(n) for side in ("asks", "bids")
                          for f in ("price", "amount"))


def kind_of_header(cols: tuple[str, ...]) -> str | None:
    """``trades`` / ``quotes`` / ``incremental_book_L2`` / ``book_snapshot_<n>`` for a header, else None."""
    for kind, header in HEADERS.items():
        if cols == header:
            return kind
    n, rest = divmod(len(cols) - len(PREFIX), 4)
    if not rest and 1 <= n <= MAX_SNAPSHOT_LEVELS and cols == snapshot_header(n):
        return f"book_snapshot_{n}"
    return None


def _split(raw: bytes) -> list[str] | None:
    """A CSV line -> its fields (Tardis writes no quoting); None for a blank line. Raises _Bad."""
    if raw is LINE_TOO_LONG:
        raise _Bad("malformed", f"row longer than {MAX_ROW_BYTES} bytes")
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise _Bad("malformed", "row is not ASCII text") from None
    text = text.rstrip("\r\n")
    if not text:
        return None
    return text.split(",")


def read_head(path: str | Path) -> tuple[tuple[str, ...], list[str] | None]:
    """The header's columns and the first non-blank data row's fields (None if there is none). Reads at most two
    lines of :data:`MAX_ROW_BYTES`. Raises DataFileError / OSError (unreadable, not a regular file, damaged)."""
    header: tuple[str, ...] | None = None
    with open_recording(path) as fh:
        for raw in iter_lines(fh, path, MAX_ROW_BYTES, max_skip=MAX_ROW_BYTES):
            try:
                cols = _split(raw)
            except _Bad:
                cols = ["<unreadable>"]
            if cols is None:
                continue
            if header is None:
                header = tuple(cols)
                continue
            return header, cols
    return header or (), None


def detect_kind(path: str | Path) -> str:
    """The Tardis kind of ``path`` from its header (the kinds: :mod:`mmcore.data.tardis`).

    Raises TardisFormatError naming the file and its columns when the header is none of the kinds (or the file is
    empty); DataFileError / OSError when it cannot be read."""
    cols, _ = read_head(path)
    kind = kind_of_header(cols)
    if kind is None:
        shown = ",".join(cols[:12]) + (f",... ({len(cols)} columns)" if len(cols) > 12 else "")
        raise TardisFormatError(f"{path}: not a Tardis CSV file of a kind mmcore reads ({', '.join(KINDS)}): "
                                f"header is {shown[:400]!r}" if cols else f"{path}: empty file, no CSV header")
    return kind


def is_tardis_file(path: str | Path) -> bool:
    """True when ``path`` reads and starts with a Tardis header (``exchange,symbol,timestamp,local_timestamp``);
    False otherwise, never raising (for format auto-detection: the other readers report their own errors)."""
    try:
        cols, _ = read_head(path)
    except Exception:       # noqa: BLE001 - detection only; the chosen reader reports the problem
        return False
    return cols[:4] == PREFIX
