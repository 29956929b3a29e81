"""Route combined-stream frames of several symbols to their decoders, parsing each frame's JSON once.

A combined-stream frame is ``{"stream": "<symbol>@<kind>", "data": {...}}`` and its ``data.s`` names the symbol
(https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams#general-wss-information and
https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams). The router parses
the frame with orjson once, picks the decoder by ``data["s"]`` and lets it build the typed event from the parsed
dict. :data:`BinanceFrameRouter` is the compiled :class:`mmcore_ext.binance_codec.FrameRouter`;
:class:`PyFrameRouter` is the same in Python (on ``event_of``), kept as the reference: measured on the bundled
2024 frames (``benchmarks/bench_router.py``, 2-core box) the compiled one costs 0.1-0.3 us/frame less (about
2.1 us vs 2.2 us USDⓈ-M, 1.7 vs 1.9 us spot, orjson.loads alone 0.9-1.3 us).
"""
from __future__ import annotations

import orjson

from mmcore_ext.binance_codec import BinanceLineDecoder, FrameRouter, MalformedLine

__all__ = ["BinanceFrameRouter", "MalformedLine", "PyFrameRouter"]

#: ``BinanceFrameRouter({symbol: decoder}).route(ts_local_ns, payload) -> (symbol, event) | None`` (compiled).
BinanceFrameRouter = FrameRouter

_loads = orjson.loads
_JSONDecodeError = orjson.JSONDecodeError


class PyFrameRouter:
    """``route(ts_local_ns, payload) -> (symbol, event) | None`` over ``{symbol: BinanceLineDecoder}``.

    Returns None for a well-formed frame that carries no event used by mmcore (a symbol not routed, a stream not
    decoded such as ``markPrice``, a control answer ``{"result": null, "id": 1}``). Raises MalformedLine for
    anything else (not JSON, not an object, a ``data`` that is not an object, a bad field: see
    :mod:`mmcore_ext.binance_codec`); never any other exception for any ``bytes``.
    """

    __slots__ = ("decoders",)

    def __init__(self, decoders: dict[str, BinanceLineDecoder]):
        self.decoders = dict(decoders)

    def route(self, ts_local_ns: int, payload: bytes):
        try:
            msg = _loads(payload)
        except _JSONDecodeError as exc:
            raise MalformedLine(f"invalid JSON: {exc}") from None
        except TypeError:
            raise MalformedLine("frame is not bytes") from None
        if type(msg) is not dict:
            raise MalformedLine("JSON is not an object")
        data = msg.get("data")
        if data is None:
            return None
        if type(data) is not dict:
            raise MalformedLine("'data' is not an object")
        sym = data.get("s")
        if type(sym) is not str:
            return None
        dec = self.decoders.get(sym)
        if dec is None:
            return None
        ev = dec.event_of(msg, ts_local_ns)
        return None if ev is None else (sym, ev)
