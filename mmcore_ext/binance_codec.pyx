# cython: language_level=3
"""Decode one Binance recording line ``<local timestamp> <raw JSON>`` into a typed event, in C.

Messages and fields (Binance docs):
- diff depth ``depthUpdate`` ``E U u [pu] b a``: https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams#diff-depth-stream
  and https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams/Diff-Book-Depth-Streams
- ``trade`` ``E t p q m`` (``m``: the buyer is the maker, i.e. the aggressor sold):
  https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams#trade-streams
- ``aggTrade`` ``E a p q m`` (decoded as a Trade whose ``trade_id`` is the aggregate id ``a``):
  https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams#aggregate-trade-streams and
  https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams/Aggregate-Trade-Streams
- ``bookTicker`` ``u b B a A`` (spot frames carry no ``e``/``E``)
- WebSocket API ``depth`` answer ``result`` ``lastUpdateId bids asks`` (:meth:`BinanceLineDecoder.snapshot_from`):
  https://developers.binance.com/docs/binance-spot-api-docs/websocket-api/market-data-requests#order-book and
  https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/websocket-api
- REST depth snapshot ``lastUpdateId bids asks``: https://developers.binance.com/docs/binance-spot-api-docs/rest-api/market-data-endpoints#order-book

The JSON itself is parsed by orjson; this module only walks the resulting dicts with typed access and
builds the events without going back through Python-level constructors.

Bounds (the venue edge: nothing outside them reaches the compiled book, quoter or risk gate):

- every price in ``[1, max_price_ticks]`` and every quantity in ``[0, max_qty_lots]`` of the instrument
  (``Instrument.max_price_ticks`` = PRICE_FILTER.maxPrice / tick, ``Instrument.max_qty_lots``; both <= 2**53);
  a trade's quantity in ``[1, max_qty_lots]``;
- update ids ``U``, ``u``, ``pu``, ``lastUpdateId``, bookTicker ``u`` and trade ids ``t`` are JSON integers in
  ``[0, 2**62]`` (:data:`MAX_ID`), so ``lastUpdateId + 1`` and friends cannot overflow; a diff with ``U > u``
  is malformed (Binance: ``U`` is the first and ``u`` the final update id of the event);
- exchange event time ``E`` is a JSON integer of ms in ``[0, (2**63 - 1) // 10**6]``, so ``E * 10**6`` ns
  cannot wrap; the local timestamp is checked digit by digit (``_ts_ns``).

Anything else raises :class:`MalformedLine` naming the field; the replay loop skips and counts the line.
"""
import orjson

from cpython.long cimport PyLong_AsLongLongAndOverflow
from libc.stdint cimport INT64_MAX, int64_t, uint64_t
from mmcore_ext.bounds cimport MAX_UPDATE_ID
from mmcore_ext.events cimport BookTicker, DepthDiff, DepthSnapshot, InstrumentGrid, Trade
from mmcore_ext.fixedpoint cimport units_from_str

cdef object _loads = orjson.loads
cdef object _JSONDecodeError = orjson.JSONDecodeError
cdef int64_t _MS = 1000000
cdef int64_t _MAX_E_MS = INT64_MAX // 1000000
#: Largest update id / trade id accepted (2**62).
MAX_ID = MAX_UPDATE_ID
#: Largest exchange event time ``E`` accepted (ms): the last ms whose ns value fits int64.
MAX_EVENT_TIME_MS = _MAX_E_MS


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


cdef inline int64_t _int(object v, str name, int64_t lo, int64_t hi) except? -1:
    # A JSON integer (exactly int: not bool, not float) in [lo, hi]; ValueError naming the field otherwise.
    cdef int overflow = 0
    cdef long long x
    if type(v) is not int:
        raise ValueError(f"field {name!r} is not an integer: {v!r:.40}")
    x = PyLong_AsLongLongAndOverflow(v, &overflow)
    if overflow != 0 or x < lo or x > hi:
        raise ValueError(f"field {name!r} = {v!s:.40} outside [{lo}, {hi}]")
    return x


cdef inline int64_t _id(object v, str name) except? -1:
    return _int(v, name, 0, MAX_UPDATE_ID)


cdef inline int64_t _ms(object v) except? -1:
    # Exchange event time E (ms) -> ns; absent -> 0. Bounded so that the product cannot wrap.
    return 0 if v is None else _int(v, "E", 0, _MAX_E_MS) * _MS


cdef class BinanceLineDecoder:
    """Decode recording lines of one symbol.

    Parameters
    ----------
    grid : InstrumentGrid
        The instrument's tick and lot grids (and, unless given below, its price / quantity bounds).
    symbol : str
        Exchange symbol (``BTCUSDT``); frames of other symbols decode to ``None``.
    max_price_ticks, max_qty_lots : int, optional
        The instrument's bounds (``Instrument.max_price_ticks`` / ``max_qty_lots``, each in ``[1, 2**53]``);
        default: the grid's (2**53 for a grid built without bounds).

    Raises
    ------
    ValueError
        A bound outside ``[1, 2**53]``.
    """

    def __init__(self, InstrumentGrid grid, str symbol, max_price_ticks=None, max_qty_lots=None):
        if max_price_ticks is not None or max_qty_lots is not None:
            grid = grid.with_bounds(grid.max_price_ticks if max_price_ticks is None else max_price_ticks,
                                    grid.max_qty_lots if max_qty_lots is None else max_qty_lots)
        self.grid = grid
        self.symbol = symbol

    @property
    def max_price_ticks(self):
        """Largest price (ticks) accepted."""
        return self.grid.max_price_ticks

    @property
    def max_qty_lots(self):
        """Largest quantity (lots) accepted."""
        return self.grid.max_qty_lots

    cpdef object decode(self, bytes raw):
        """Return a DepthSnapshot / DepthDiff / Trade / BookTicker, or None for a well-formed message
        that is not used (other symbol or stream). Raises MalformedLine (a ValueError) otherwise, naming the
        field: not JSON, a missing field, a wrong type, off the tick/lot grid, or outside the bounds of the
        module docstring. Never raises anything else for any ``bytes``."""
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

    cpdef object decode_frame(self, int64_t ts_local_ns, bytes payload):
        """Decode one frame as received on a combined stream (``{"stream": ..., "data": {...}}``, no timestamp
        prefix); ``ts_local_ns`` is the local receive time (ns). Same results, bounds and errors as
        :meth:`decode`: an event, None (another symbol or stream), or MalformedLine for anything else (never
        another exception for any ``bytes``)."""
        if payload is None:
            raise MalformedLine("no frame (None)")
        try:
            msg = _loads(payload)
        except _JSONDecodeError as exc:
            raise MalformedLine(f"invalid JSON: {exc}") from None
        if type(msg) is not dict:
            raise MalformedLine("JSON is not an object")
        return self.event_of(<dict>msg, ts_local_ns)

    cpdef object event_of(self, dict msg, int64_t ts_local_ns):
        """The event of an already parsed message (a combined-stream frame or a bare REST snapshot), for a
        router that parses each frame once (:class:`mmcore.venues.binance.router.BinanceFrameRouter`).
        Returns an event or None; raises MalformedLine (only) as :meth:`decode` does."""
        if msg is None:
            raise MalformedLine("no message (None)")
        try:
            return self._event(msg, ts_local_ns)
        except KeyError as exc:
            raise MalformedLine(f"missing field {exc.args[0]!r}") from None
        except (TypeError, ValueError, IndexError, OverflowError) as exc:
            raise MalformedLine(str(exc)) from None

    cpdef object snapshot_from(self, int64_t ts_local_ns, object result):
        """A DepthSnapshot from a depth answer: the WebSocket API ``depth`` answer's ``result`` or the REST
        ``/api/v3/depth`` / ``/fapi/v1/depth`` body (``lastUpdateId``, ``bids``, ``asks``; USDⓈ-M adds ``E``).
        Bounds as in the module docstring; raises MalformedLine (only) for anything else, e.g. a result that
        is not an object or lacks ``lastUpdateId``."""
        cdef DepthSnapshot s
        if type(result) is not dict:
            raise MalformedLine("depth result is not an object")
        try:
            if "lastUpdateId" not in result:
                raise KeyError("lastUpdateId")
            if type(result["bids"]) is not list or type(result["asks"]) is not list:
                raise TypeError("depth 'bids' / 'asks' are not lists")
            s = DepthSnapshot.__new__(DepthSnapshot)
            s.ts_local_ns = ts_local_ns
            s.ts_event_ns = _ms(result.get("E"))
            s.last_update_id = _id(result["lastUpdateId"], "lastUpdateId")
            s._fill(self.grid, result["bids"], result["asks"])
            return s
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
        cdef InstrumentGrid g
        if data_obj is None:
            if "lastUpdateId" in msg:
                s = DepthSnapshot.__new__(DepthSnapshot)
                s.ts_local_ns = ts
                s.ts_event_ns = _ms(msg.get("E"))
                s.last_update_id = _id(msg["lastUpdateId"], "lastUpdateId")
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
            d.first_update_id = _id(data["U"], "U")
            d.final_update_id = _id(data["u"], "u")
            if d.first_update_id > d.final_update_id:
                raise ValueError(f"depthUpdate U={d.first_update_id} > u={d.final_update_id}")
            pu = data.get("pu")
            d.prev_final_update_id = -1 if pu is None else _id(pu, "pu")
            d._fill(self.grid, data["b"], data["a"])
            return d
        if e == "trade" or e == "aggTrade":
            t = Trade.__new__(Trade)
            t.ts_local_ns = ts
            t.ts_event_ns = _ms(data["E"])
            t.trade_id = _id(data["t"], "t") if e == "trade" else _id(data["a"], "a")
            g = self.grid
            t.price = g.check_price(units_from_str(data["p"], g.price, "trade 'p'"), "trade 'p'")
            t.qty = g.check_qty(units_from_str(data["q"], g.qty, "trade 'q'"), "trade 'q'", True)
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
            k.update_id = _id(data["u"], "u")
            g = self.grid
            k.bid_px = g.check_price(units_from_str(data["b"], g.price, "bookTicker 'b'"), "bookTicker 'b'")
            k.bid_qty = g.check_qty(units_from_str(data["B"], g.qty, "bookTicker 'B'"), "bookTicker 'B'", False)
            k.ask_px = g.check_price(units_from_str(data["a"], g.price, "bookTicker 'a'"), "bookTicker 'a'")
            k.ask_qty = g.check_qty(units_from_str(data["A"], g.qty, "bookTicker 'A'"), "bookTicker 'A'", False)
            return k
        return None


cdef class FrameRouter:
    """Compiled core of :class:`mmcore.venues.binance.router.BinanceFrameRouter`: ``route(ts_local_ns, payload)
    -> (symbol, event) | None`` over ``{symbol: BinanceLineDecoder}``, parsing the JSON once (orjson) and
    dispatching by ``data["s"]``. None for a well-formed frame without a used event (symbol not routed, stream
    not decoded, control answer); MalformedLine (only) for anything else."""

    def __init__(self, dict decoders):
        for k, v in decoders.items():
            if type(k) is not str or not isinstance(v, BinanceLineDecoder):
                raise TypeError("decoders must be {symbol: BinanceLineDecoder}")
        self.decoders = dict(decoders)

    cpdef object route(self, int64_t ts_local_ns, object payload):
        cdef object msg, data_obj, sym, dec, ev
        try:
            msg = _loads(payload)
        except _JSONDecodeError as exc:
            raise MalformedLine(f"invalid JSON: {exc}") from None
        except TypeError:
            raise MalformedLine("frame is not bytes") from None
        if type(msg) is not dict:
            raise MalformedLine("JSON is not an object")
        data_obj = (<dict>msg).get("data")
        if data_obj is None:
            return None
        if type(data_obj) is not dict:
            raise MalformedLine("'data' is not an object")
        sym = (<dict>data_obj).get("s")
        if type(sym) is not str:
            return None
        dec = self.decoders.get(sym)
        if dec is None:
            return None
        try:
            ev = (<BinanceLineDecoder>dec)._event(<dict>msg, ts_local_ns)
        except KeyError as exc:
            raise MalformedLine(f"missing field {exc.args[0]!r}") from None
        except (TypeError, ValueError, IndexError, OverflowError) as exc:
            raise MalformedLine(str(exc)) from None
        return None if ev is None else (sym, ev)
