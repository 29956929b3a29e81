"""Binance spot recording -> MEXC spot v3 protobuf frames: **converted from Binance, not MEXC data**.

No real MEXC recording is available, so the MEXC decoder and book are exercised on frames *built* from the bundled
Binance spot recording (``data/spot_btcusdt_20240808.gz``, real Binance data, see ``data/README.md``) with the
classes generated from MEXC's published schemas (:mod:`mmcore.venues.mexc.pb`; never hand-written bytes). The
content is Binance's (prices, quantities, update ids, timings); only the encoding is MEXC's.

Mapping (MEXC docs: https://www.mexc.com/api-docs/spot-v3/websocket-market-streams):

- ``depthUpdate`` ``E U u b a`` -> ``spot@public.aggre.depth.v3.api.pb@100ms@SYMBOL``: ``fromVersion = U``,
  ``toVersion = u``, ``bids`` / ``asks`` = ``b`` / ``a`` (strings as recorded), wrapper ``sendTime`` and
  ``createTime`` = ``E`` (ms);
- ``trade`` ``E t p q T m`` -> ``spot@public.aggre.deals.v3.api.pb@100ms@SYMBOL``: consecutive trade lines with the same
  ``E`` become one message (one deal each, in order; MEXC aggregates a 100 ms window the same way), local time
  of the last of them; ``tradeType`` 2 (sell) when ``m`` (the buyer is the maker) else 1 (buy), ``time = T``,
  ``tradeId = str(t)``, ``sendTime = E``;
- ``bookTicker`` ``u b B a A`` -> ``spot@public.aggre.bookTicker.v3.api.pb@100ms@SYMBOL``: ``version = u``; no
  ``sendTime`` (Binance spot bookTicker carries no event time);
- the REST depth snapshot line ``{"lastUpdateId", "bids", "asks"}`` -> the same JSON (MEXC's ``GET /api/v3/depth``
  has the same fields: step 3 of
  https://www.mexc.com/api-docs/spot-v3/websocket-market-streams/how-to-properly-maintain-a-local-copy-of-the-order-book).

File format (gzip text, UTF-8, one record a line)::

    # mmcore-mexc-frames v1 CONVERTED FROM BINANCE, NOT MEXC DATA; source=<file name>
    <local receive time, ns, 19 digits> pb <standard base64 of one serialized PushDataV3ApiWrapper>
    <local receive time, ns, 19 digits> rest <JSON of the REST depth snapshot>

Lines starting with ``#`` are comments. :func:`read_frames` reads it back (bounded: see its docstring).

Command: ``python -m mmcore.venues.mexc.convert SRC DST [--lines N]`` (the first N source lines only).
"""
from __future__ import annotations

import argparse
import base64
import binascii
import gzip
import io
from pathlib import Path

import orjson

from mmcore.venues.mexc.pb import PushDataV3ApiWrapper

MAGIC = "# mmcore-mexc-frames v1 CONVERTED FROM BINANCE, NOT MEXC DATA"
#: Longest line :func:`read_frames` accepts (bytes).
MAX_LINE_BYTES = 16 * 1024 * 1024
CHANNEL_DEPTH = "spot@public.aggre.depth.v3.api.pb@100ms@"
CHANNEL_DEALS = "spot@public.aggre.deals.v3.api.pb@100ms@"
CHANNEL_TICKER = "spot@public.aggre.bookTicker.v3.api.pb@100ms@"


def depth_frame(data: dict) -> bytes:
    """A serialized aggre-depth wrapper from a Binance ``depthUpdate`` ``data`` object."""
    w = PushDataV3ApiWrapper(channel=CHANNEL_DEPTH + data["s"], symbol=data["s"], sendTime=data["E"],
                             createTime=data["E"])
    m = w.publicAggreDepths
    for p, q in data["b"]:
        m.bids.add(price=p, quantity=q)
    for p, q in data["a"]:
        m.asks.add(price=p, quantity=q)
    m.eventType = CHANNEL_DEPTH[:-1]
    m.fromVersion = str(data["U"])
    m.toVersion = str(data["u"])
    return w.SerializeToString()


def deals_frame(trades: list[dict]) -> bytes:
    """A serialized aggre-deals wrapper from Binance ``trade`` ``data`` objects (same symbol and ``E``)."""
    first = trades[0]
    w = PushDataV3ApiWrapper(channel=CHANNEL_DEALS + first["s"], symbol=first["s"], sendTime=first["E"],
                             createTime=first["E"])
    m = w.publicAggreDeals
    for t in trades:
        m.deals.add(price=t["p"], quantity=t["q"], tradeType=2 if t["m"] else 1, time=t["T"], tradeId=str(t["t"]))
    m.eventType = CHANNEL_DEALS[:-1]
    return w.SerializeToString()


def ticker_frame(data: dict) -> bytes:
    """A serialized aggre-bookTicker wrapper from a Binance spot ``bookTicker`` ``data`` object."""
    w = PushDataV3ApiWrapper(channel=CHANNEL_TICKER + data["s"], symbol=data["s"])
    m = w.publicAggreBookTicker
    m.bidPrice, m.bidQuantity, m.askPrice, m.askQuantity = data["b"], data["B"], data["a"], data["A"]
    m.version = str(data["u"])
    return w.SerializeToString()


def convert_lines(lines):
    """Yield ``(ts_local_ns, kind, payload)`` records (``"pb"``: wrapper bytes, ``"rest"``: snapshot dict) from
    Binance spot recording lines (bytes ``<ts> <json>``). Streams other than depth, trade and bookTicker are
    dropped. Raises ValueError / KeyError for a line that is not a Binance spot recording line."""
    pending: list[dict] = []
    pending_ts = 0

    def flush():
        nonlocal pending
        if pending:
            rec = (pending_ts, "pb", deals_frame(pending))
            pending = []
            return rec
        return None

    for raw in lines:
        raw = raw.rstrip(b"\r\n")
        if not raw:
            continue
        ts_text, _, body = raw.partition(b" ")
        ts = int(ts_text)
        msg = orjson.loads(body)
        data = msg.get("data")
        if data is not None and data.get("e") == "trade":
            if pending and (data["E"] != pending[0]["E"] or data["s"] != pending[0]["s"]):
                yield flush()
            pending.append(data)
            pending_ts = ts
            continue
        rec = flush()
        if rec is not None:
            yield rec
        if data is None:
            if "lastUpdateId" in msg:
                yield ts, "rest", msg
        elif data.get("e") == "depthUpdate":
            yield ts, "pb", depth_frame(data)
        elif "u" in data and "b" in data and "e" not in data:
            yield ts, "pb", ticker_frame(data)
    rec = flush()
    if rec is not None:
        yield rec


def _open_text_lines(path: Path):
    with open(path, "rb") as fh:
        head = fh.read(2)
    return gzip.open(path, "rb") if head == b"\x1f\x8b" else open(path, "rb")


def convert_file(src, dst, max_lines: int | None = None) -> int:
    """Convert the Binance spot recording ``src`` (first ``max_lines`` lines when given) into ``dst`` (gzip, the
    module's format; gzip header time 0, so the output is reproducible). Returns the number of records."""
    src, dst = Path(src), Path(dst)
    n = 0
    with _open_text_lines(src) as fin, open(dst, "wb") as raw_out:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw_out, mtime=0) as gz:
            out = io.TextIOWrapper(gz, encoding="utf-8", newline="\n")
            out.write(f"{MAGIC}; source={src.name}\n")

            def lines():
                for i, line in enumerate(fin):
                    if max_lines is not None and i >= max_lines:
                        return
                    yield line

            for ts, kind, payload in convert_lines(lines()):
                if kind == "pb":
                    out.write(f"{ts} pb {base64.b64encode(payload).decode('ascii')}\n")
                else:
                    out.write(f"{ts} rest {orjson.dumps(payload).decode('utf-8')}\n")
                n += 1
            out.flush()
            out.detach()
    return n


def read_frames(path):
    """Yield ``(ts_local_ns, kind, payload)`` from a converted file: ``kind`` ``"pb"`` with the wrapper ``bytes``,
    or ``"rest"`` with the snapshot ``dict``.

    Raises
    ------
    ValueError
        The first line is not the format's header (so a file is never taken for real MEXC data), or a line is
        longer than MAX_LINE_BYTES, has no 19-digit timestamp, an unknown kind, bad base64 or bad JSON (the
        message names the line number).
    """
    with _open_text_lines(Path(path)) as fh:
        first = fh.readline(MAX_LINE_BYTES + 1)
        if not first.decode("utf-8", "replace").startswith(MAGIC):
            raise ValueError(f"{path}: not a converted MEXC frames file (header {MAGIC!r} missing)")
        for no, line in enumerate(iter(lambda: fh.readline(MAX_LINE_BYTES + 1), b""), start=2):
            if len(line) > MAX_LINE_BYTES:
                raise ValueError(f"{path}:{no}: line longer than {MAX_LINE_BYTES} bytes")
            line = line.rstrip(b"\r\n")
            if not line or line.startswith(b"#"):
                continue
            parts = line.split(b" ", 2)
            if len(parts) != 3 or len(parts[0]) != 19 or not parts[0].isdigit():
                raise ValueError(f"{path}:{no}: not '<19-digit ts> <kind> <payload>'")
            ts = int(parts[0])
            if parts[1] == b"pb":
                try:
                    yield ts, "pb", base64.b64decode(parts[2], validate=True)
                except binascii.Error as exc:
                    raise ValueError(f"{path}:{no}: bad base64: {exc}") from None
            elif parts[1] == b"rest":
                try:
                    yield ts, "rest", orjson.loads(parts[2])
                except orjson.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{no}: bad JSON: {exc}") from None
            else:
                raise ValueError(f"{path}:{no}: unknown record kind {parts[1][:20]!r}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mmcore.venues.mexc.convert",
                                 description="Binance spot recording -> MEXC protobuf frames (CONVERTED FROM "
                                             "BINANCE, NOT MEXC DATA)")
    ap.add_argument("src", help="Binance spot recording (.gz or text, '<ts ns> <json>' lines)")
    ap.add_argument("dst", help="output file (gzip)")
    ap.add_argument("--lines", type=int, default=None, help="convert only the first N source lines")
    args = ap.parse_args(argv)
    n = convert_file(args.src, args.dst, args.lines)
    print(f"{args.dst}: {n} records (converted from Binance, not MEXC data)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
