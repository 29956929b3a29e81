"""Route combined-stream frames of several symbols to their decoders, parsing each frame's JSON once.

A combined-stream frame is ``{"stream": "<symbol>@<kind>", "data": {...}}`` and its ``data.s`` names the symbol
(https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams#general-wss-information and
https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams). The router parses
the frame with orjson once, picks the decoder by ``data["s"]`` and lets it build the typed event from the parsed
dict (:meth:`BinanceLineDecoder.event_of`); a Python class is enough: the per-frame cost is the JSON parse plus
the decoder (measured in ``tests/test_binance_router.py::test_route_cost``).
"""
from __future__ import annotations

import orjson

from mmcore_ext.binance_codec import BinanceLineDecoder, MalformedLine

__all__ = ["BinanceFrameRouter", "MalformedLine"]

_loads = orjson.loads
_JSONDecodeError = orjson.JSONDecodeError


class BinanceFrameRouter:
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
