"""MEXC frame -> typed events through the ``protobuf`` package (the generated classes of :mod:`mmcore.venues.mexc.pb`).

Same results, bounds and errors as the compiled :class:`mmcore_ext.mexc_codec.MexcDecoder` (whose module docstring
gives the channels, fields, the MEXC doc URLs and the bounds): the reference of the differential test
(``tests/test_mexc_codec.py``) and of the benchmark (``benchmarks/bench_mexc_decode.py``). The one documented
difference: a frame whose body is another message decodes to None in the compiled decoder without that body being
checked, while the package refuses a corrupt one (here: MalformedLine).

Parsing: ``PushDataV3ApiWrapper.FromString`` (protobuf wire format, https://protobuf.dev/programming-guides/encoding/;
a ``DecodeError`` is a MalformedLine); then each price / quantity string goes to ticks / lots with the instrument
grid (:meth:`InstrumentGrid.price_ticks` / ``qty_lots``, exact decimal, ValueError -> MalformedLine).
"""
from __future__ import annotations

import re

from google.protobuf.message import DecodeError

from mmcore.venues.mexc.pb import PushDataV3ApiWrapper
from mmcore_ext.binance_codec import MalformedLine
from mmcore_ext.events import BookTicker, DepthDiff, InstrumentGrid, Trade

MAX_ID = 1 << 62
MAX_MS = (2**63 - 1) // 10**6
_VERSION = re.compile(rb"[0-9]{1,19}")
_BODIES = ("publicAggreDepths", "publicAggreDeals", "publicAggreBookTicker")


def _version(text: str, what: str) -> int:
    raw = text.encode("utf-8")
    if not _VERSION.fullmatch(raw) or int(raw) > MAX_ID:
        raise MalformedLine(f"{what} {text[:40]!r}: not 1 to 19 digits <= 2**62")
    return int(raw)


def _opt_id(text: str) -> int:
    raw = text.encode("utf-8")
    return int(raw) if _VERSION.fullmatch(raw) and int(raw) <= MAX_ID else -1


def _ms_ns(ms: int, what: str) -> int:
    if not 0 <= ms <= MAX_MS:
        raise MalformedLine(f"{what} {ms} ms outside [0, {MAX_MS}]")
    return ms * 10**6


class ProtobufDecoder:
    """Decode MEXC frames of one symbol with the generated protobuf classes.

    Parameters
    ----------
    grid : InstrumentGrid
        Tick / lot grids and bounds of the instrument.
    symbol : str
        Exchange symbol; frames of another symbol decode to None.
    """

    def __init__(self, grid: InstrumentGrid, symbol: str):
        self.grid = grid
        self.symbol = symbol

    def _px(self, text: str, what: str) -> int:
        try:
            v = self.grid.price_ticks(text)
        except ValueError as exc:
            raise MalformedLine(f"{what}: {exc}") from None
        if not 1 <= v <= self.grid.max_price_ticks:
            raise MalformedLine(f"{what} {text[:40]!r}: {v} outside [1, {self.grid.max_price_ticks}]")
        return v

    def _qty(self, text: str, what: str, lo: int = 0) -> int:
        try:
            v = self.grid.qty_lots(text)
        except ValueError as exc:
            raise MalformedLine(f"{what}: {exc}") from None
        if not lo <= v <= self.grid.max_qty_lots:
            raise MalformedLine(f"{what} {text[:40]!r}: {v} outside [{lo}, {self.grid.max_qty_lots}]")
        return v

    def parse(self, payload: bytes) -> PushDataV3ApiWrapper:
        """The wrapper message of a frame. Raises MalformedLine for a corrupt one (DecodeError)."""
        try:
            return PushDataV3ApiWrapper.FromString(payload)
        except DecodeError as exc:
            raise MalformedLine(f"protobuf: {exc}") from None

    def decode_frame(self, ts_local_ns: int, payload: bytes):
        """Same contract as :meth:`mmcore_ext.mexc_codec.MexcDecoder.decode_frame`: DepthDiff, tuple of Trade,
        BookTicker or None; MalformedLine (only) otherwise."""
        if type(payload) is not bytes:
            raise MalformedLine("frame is not bytes")
        return self.event_of(ts_local_ns, self.parse(payload))

    def event_of(self, ts: int, w: PushDataV3ApiWrapper):
        """The event of a parsed wrapper (see :meth:`decode_frame`)."""
        body = w.WhichOneof("body")
        if body not in _BODIES:
            return None
        ev_ns = _ms_ns(w.sendTime, "wrapper sendTime") if w.HasField("sendTime") else 0
        sym = w.symbol if w.HasField("symbol") else w.channel.rsplit("@", 1)[-1]
        if sym != self.symbol:
            return None
        if body == "publicAggreDepths":
            m = w.publicAggreDepths
            first = _version(m.fromVersion, "aggre depth fromVersion")
            final = _version(m.toVersion, "aggre depth toVersion")
            if first > final:
                raise MalformedLine(f"aggre depth fromVersion {first} > toVersion {final}")
            bids = [(self._px(it.price, "aggre depth bid price"), self._qty(it.quantity, "aggre depth bid quantity"))
                    for it in m.bids]
            asks = [(self._px(it.price, "aggre depth ask price"), self._qty(it.quantity, "aggre depth ask quantity"))
                    for it in m.asks]
            return DepthDiff.from_ticks(first, final, bids, asks, -1, ts, ev_ns)
        if body == "publicAggreDeals":
            out = []
            for it in w.publicAggreDeals.deals:
                t_ns = _ms_ns(it.time, "aggre deal time")
                tid = _opt_id(it.tradeId)
                px = self._px(it.price, "aggre deal price")
                qty = self._qty(it.quantity, "aggre deal quantity", 1)
                if it.tradeType not in (1, 2):
                    raise MalformedLine(f"aggre deal tradeType {it.tradeType}: not 1 (buy) or 2 (sell)")
                out.append(Trade(ts, t_ns, tid, px, qty, 1 if it.tradeType == 1 else -1))
            return tuple(out)
        m = w.publicAggreBookTicker
        bp = self._px(m.bidPrice, "aggre bookTicker bidPrice")
        bq = self._qty(m.bidQuantity, "aggre bookTicker bidQuantity")
        ap = self._px(m.askPrice, "aggre bookTicker askPrice")
        aq = self._qty(m.askQuantity, "aggre bookTicker askQuantity")
        return BookTicker(ts, ev_ns, _version(m.version, "aggre bookTicker version"), bp, bq, ap, aq)
