# cython: language_level=3
"""Decode one Binance recording line ``<local timestamp> <raw JSON>`` into a typed event, in C.

Messages and fields (Binance docs):
- diff depth ``depthUpdate`` ``E U u [pu] b a``: https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams#diff-depth-stream
  and https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams/Diff-Book-Depth-Streams
- ``trade`` ``E t p q m`` (``m``: the buyer is the maker, i.e. the aggressor sold):
  https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams#trade-streams
- ``bookTicker`` ``u b B a A`` (spot frames carry no ``e``/``E``)
- REST depth snapshot ``lastUpdateId bids asks``: https://developers.binance.com/docs/binance-spot-api-docs/rest-api/market-data-endpoints#order-book

The JSON itself is parsed by orjson; this module only walks the resulting dicts with typed access and
builds the events without going back through Python-level constructors.
"""
import orjson

from libc.stdint cimport INT64_MAX, int64_t, uint64_t
from mmcore_ext.events cimport BookTicker, DepthDiff, DepthSnapshot, InstrumentGrid, Trade
from mmcore_ext.fixedpoint cimport units_from_str

cdef object _loads = orjson.loads
cdef object _JSONDecodeError = orjson.JSONDecodeError
cdef int64_t _MS = 1000000


class MalformedLine(ValueError):
    """A recording line that cannot be decoded (the message says why)."""


cdef int64_t _ts_ns(const unsigned char* raw, Py_ssize_t n) except -1:
    # Local timestamp: 10/13/16/19 digits = s/ms/µs/ns (real recordings differ by file). The length is checked
    # first and the digits are summed unsigned (19 digits < 2**64), so no input can overflow; a value past
    # int64 ns (year 2262) is malformed, not wrapped negative.
    cdef uint64_t v = 0
    cdef Py_ssize_t i
    if n != 19 and n != 16 and n != 13 and n != 10:
        raise MalformedLine(f"local timestamp is {n} digits, expected 10/13/16/19")
    for i in range(n):
        if raw[i] < 48 or raw[i] > 57:
            raise MalformedLine(f"local timestamp has a non-digit at column {i + 1}")
        v = v * 10 + (raw[i] - 48)
    if n == 16:
        v *= 1000
    elif n == 13:
        v *= 1000000
    elif n == 10:
        v *= 1000000000
    if v > <uint64_t>INT64_MAX:
        raise MalformedLine("local timestamp is past the int64 ns range")
    return <int64_t>v


cdef inline int64_t _ms(object v) except? -1:
    return 0 if v is None else <int64_t>v * _MS


cdef class BinanceLineDecoder:
    """Decode recording lines of one symbol.

    Parameters
    ----------
    grid : InstrumentGrid
        The instrument's tick and lot grids.
    symbol : str
        Exchange symbol (``BTCUSDT``); frames of other symbols decode to ``None``.
    """

    def __init__(self, InstrumentGrid grid, str symbol):
        self.grid = grid
        self.symbol = symbol

    cpdef object decode(self, bytes raw):
        """Return a DepthSnapshot / DepthDiff / Trade / BookTicker, or None for a well-formed message
        that is not used (other symbol or stream). Raises MalformedLine (a ValueError) otherwise."""
        if raw is None:
            raise MalformedLine("no line (None)")
        cdef Py_ssize_t sp = raw.find(b" ")
        if sp <= 0:
            raise MalformedLine("no '<timestamp> <json>' separator")
        cdef int64_t ts = _ts_ns(<const unsigned char*><const char*>raw, sp)
        try:
            msg = _loads(raw[sp + 1:])
        except _JSONDecodeError as exc:
            raise MalformedLine(f"invalid JSON: {exc}") from None
        if type(msg) is not dict:
            raise MalformedLine("JSON is not an object")
        try:
            return self._event(<dict>msg, ts)
        except KeyError as exc:
            raise MalformedLine(f"missing field {exc.args[0]!r}") from None
        except (TypeError, ValueError, IndexError, OverflowError) as exc:
            raise MalformedLine(str(exc)) from None

    cdef object _event(self, dict msg, int64_t ts):
        cdef object data_obj = msg.get("data")
        cdef dict data
        cdef DepthDiff d
        cdef DepthSnapshot s
        cdef Trade t
        cdef BookTicker k
        if data_obj is None:
            if "lastUpdateId" in msg:
                s = DepthSnapshot.__new__(DepthSnapshot)
                s.ts_local_ns = ts
                s.ts_event_ns = _ms(msg.get("E"))
                s.last_update_id = msg["lastUpdateId"]
                s._fill(self.grid, msg["bids"], msg["asks"])
                return s
            return None
        if type(data_obj) is not dict:
            raise TypeError("'data' is not an object")
        data = <dict>data_obj
        if data.get("s") != self.symbol:
            return None
        e = data.get("e")
        if e == "depthUpdate":
            d = DepthDiff.__new__(DepthDiff)
            d.ts_local_ns = ts
            d.ts_event_ns = _ms(data["E"])
            d.first_update_id = data["U"]
            d.final_update_id = data["u"]
            pu = data.get("pu")
            d.prev_final_update_id = -1 if pu is None else pu
            d._fill(self.grid, data["b"], data["a"])
            return d
        if e == "trade":
            t = Trade.__new__(Trade)
            t.ts_local_ns = ts
            t.ts_event_ns = _ms(data["E"])
            t.trade_id = data["t"]
            t.price = units_from_str(data["p"], self.grid.price)
            t.qty = units_from_str(data["q"], self.grid.qty)
            if t.price <= 0 or t.qty <= 0:
                raise ValueError(f"trade {t.trade_id}: price and quantity must be > 0")
            m = data["m"]
            if m is True:
                t.side = -1
            elif m is False:
                t.side = 1
            else:
                raise TypeError("trade field 'm' is not a boolean")
            return t
        if e == "bookTicker" or (e is None and "u" in data and "b" in data):
            k = BookTicker.__new__(BookTicker)
            k.ts_local_ns = ts
            k.ts_event_ns = _ms(data.get("E"))
            k.update_id = data["u"]
            k.bid_px = units_from_str(data["b"], self.grid.price)
            k.bid_qty = units_from_str(data["B"], self.grid.qty)
            k.ask_px = units_from_str(data["a"], self.grid.price)
            k.ask_qty = units_from_str(data["A"], self.grid.qty)
            if k.bid_px <= 0 or k.ask_px <= 0 or k.bid_qty < 0 or k.ask_qty < 0:
                raise ValueError(f"bookTicker {k.update_id}: prices must be > 0 and quantities >= 0")
            return k
        return None
