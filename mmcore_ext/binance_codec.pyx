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

Two paths give the same results. The **byte path** (:func:`_scan` + ``_build``) reads the frame's bytes
directly: the canonical shape Binance sends, ``{"stream":"<name>","data":{<flat object>}}`` with no whitespace
inside, ASCII strings without escapes, keys among the fields above (in any order, none twice), values that are JSON
integers, strings, booleans or the depth arrays ``[["<price>","<qty>"],...]``; prices and quantities go from the
decimal text straight to ticks and lots (:func:`mmcore_ext.fixedpoint.parse_units`), no Python object is made
but the event. Anything else (another shape, whitespace, an escape, an unknown key, a duplicate, a number that
is not a plain integer, a value out of bounds or off the grid, another stream) falls back to the **orjson path**:
orjson parses the JSON and this module walks the resulting dicts with typed access. So the byte path never
decides an error or an unusual case: every MalformedLine, and every message it does not know, comes from the
orjson path (``tests/test_byte_decoder.py`` checks both give the same event or the same error on every line
of every bundled recording and on generated and mutated frames). ``byte_path_hits`` / ``fallbacks`` count
the two.

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

from libc.stdlib cimport malloc, free
from libc.string cimport memcmp
from mmcore_ext.fixedpoint cimport Grid, parse_units, FP_OK

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


# --- the byte path -----------------------------------------------------------------------------------------------
# Fields of a Binance market-data object that the byte path knows; any other key sends the frame to orjson.
# (Value and Fields are declared in binance_codec.pxd: Value.kind is a K_* code; K_INT: ``i`` the value (>= 0;
# negatives go to orjson), K_BOOL: ``i`` 0 / 1, K_STR: ``s``/``n`` the text without quotes, K_ARR: ``s``/``n``
# from '[' to the closing ']' and ``pairs`` the number of ["price","qty"] pairs.)
cdef enum:
    F_e = 0
    F_E = 1
    F_T = 2
    F_s = 3
    F_U = 4
    F_u = 5
    F_pu = 6
    F_b = 7
    F_a = 8
    F_B = 9
    F_A = 10
    F_t = 11
    F_p = 12
    F_q = 13
    F_m = 14
    F_M = 15
    F_X = 16                      # N_FIELDS (the .pxd) = 17
cdef enum:
    K_NONE = 0
    K_INT = 1
    K_STR = 2
    K_BOOL = 3
    K_ARR = 4

cdef object _FALLBACK = object()      # "let orjson decide" (distinct from None: a well-formed unused message)
cdef int64_t _INT_LIMIT = (<int64_t>1) << 62


cdef inline int _key(const unsigned char* k, Py_ssize_t n) noexcept nogil:
    if n == 1:
        c = k[0]
        if c == c'e': return F_e
        if c == c'E': return F_E
        if c == c'T': return F_T
        if c == c's': return F_s
        if c == c'U': return F_U
        if c == c'u': return F_u
        if c == c'b': return F_b
        if c == c'a': return F_a
        if c == c'B': return F_B
        if c == c'A': return F_A
        if c == c't': return F_t
        if c == c'p': return F_p
        if c == c'q': return F_q
        if c == c'm': return F_m
        if c == c'M': return F_M
        if c == c'X': return F_X
    elif n == 2 and k[0] == c'p' and k[1] == c'u':
        return F_pu
    return -1


cdef inline const unsigned char* _string(const unsigned char* p, const unsigned char* end,
                                         const unsigned char** s, Py_ssize_t* n) noexcept nogil:
    # p at '"': an ASCII string without escapes or control characters (any other byte: orjson decides, e.g. that
    # it is not valid UTF-8); returns the position after the closing quote.
    cdef const unsigned char* q
    if p >= end or p[0] != c'"':
        return NULL
    q = p + 1
    while q < end and q[0] != c'"':
        if q[0] == c'\\' or q[0] < 0x20 or q[0] >= 0x80:
            return NULL
        q += 1
    if q >= end:
        return NULL
    s[0] = p + 1
    n[0] = q - p - 1
    return q + 1


cdef inline const unsigned char* _integer(const unsigned char* p, const unsigned char* end,
                                          int64_t* out) noexcept nogil:
    # A JSON integer >= 0 without leading zeros, at most 2**62 (larger, negative, fractions or exponents: NULL).
    cdef int64_t v = 0
    cdef const unsigned char* q = p
    if q >= end or q[0] < c'0' or q[0] > c'9':
        return NULL
    if q[0] == c'0' and q + 1 < end and c'0' <= q[1] <= c'9':
        return NULL
    while q < end and c'0' <= q[0] <= c'9':
        if v > (_INT_LIMIT - (q[0] - c'0')) // 10:
            return NULL
        v = v * 10 + (q[0] - c'0')
        q += 1
    if q < end and (q[0] == c'.' or q[0] == c'e' or q[0] == c'E'):
        return NULL
    out[0] = v
    return q


cdef inline const unsigned char* _levels(const unsigned char* p, const unsigned char* end,
                                         Py_ssize_t* pairs) noexcept nogil:
    # p at '[': [] or [["<str>","<str>"],...]; returns the position after the closing ']'.
    cdef const unsigned char* s
    cdef Py_ssize_t n, count = 0
    p += 1
    if p < end and p[0] == c']':
        pairs[0] = 0
        return p + 1
    while True:
        if p >= end or p[0] != c'[':
            return NULL
        p = _string(p + 1, end, &s, &n)
        if p == NULL or p >= end or p[0] != c',':
            return NULL
        p = _string(p + 1, end, &s, &n)
        if p == NULL or p >= end or p[0] != c']':
            return NULL
        p += 1
        count += 1
        if p >= end:
            return NULL
        if p[0] == c']':
            pairs[0] = count
            return p + 1
        if p[0] != c',':
            return NULL
        p += 1


cdef int _scan(const unsigned char* p, const unsigned char* end, Fields* f) noexcept nogil:
    """Scan ``{"stream":"...","data":{...}}`` (then only whitespace) into ``f``; 0, or -1 for "not the canonical
    shape" (the caller falls back to orjson)."""
    cdef const unsigned char* s
    cdef Py_ssize_t n
    cdef int k
    cdef Value* v
    for k in range(N_FIELDS):
        f.v[k].kind = K_NONE
    if end - p < 20 or memcmp(p, b'{"stream":', 10) != 0:
        return -1
    p = _string(p + 10, end, &s, &n)
    if p == NULL or end - p < 9 or memcmp(p, b',"data":{', 9) != 0:
        return -1
    p += 8                                                      # at the data object's '{'
    while True:
        p += 1                                                  # past '{' or ','
        p = _string(p, end, &s, &n)
        if p == NULL or p >= end or p[0] != c':':
            return -1
        k = _key(s, n)
        if k < 0 or f.v[k].kind != K_NONE:
            return -1                                           # unknown or repeated key
        v = &f.v[k]
        p += 1
        if p >= end:
            return -1
        if p[0] == c'"':
            p = _string(p, end, &v.s, &v.n)
            v.kind = K_STR
        elif p[0] == c'[':
            v.s = p
            p = _levels(p, end, &v.pairs)
            if p != NULL:
                v.n = p - v.s
            v.kind = K_ARR
        elif p[0] == c't':
            if end - p < 4 or memcmp(p, b"true", 4) != 0:
                return -1
            p += 4
            v.kind, v.i = K_BOOL, 1
        elif p[0] == c'f':
            if end - p < 5 or memcmp(p, b"false", 5) != 0:
                return -1
            p += 5
            v.kind, v.i = K_BOOL, 0
        else:
            p = _integer(p, end, &v.i)
            v.kind = K_INT
        if p == NULL or p >= end:
            return -1
        if p[0] == c'}':
            break
        if p[0] != c',':
            return -1
    p += 1
    if p >= end or p[0] != c'}':
        return -1
    p += 1
    while p < end:                                              # orjson accepts trailing whitespace
        if p[0] != c' ' and p[0] != c'\n' and p[0] != c'\r' and p[0] != c'\t':
            return -1
        p += 1
    return 0


cdef inline bint _units(const Value* v, Grid g, int64_t lo, int64_t hi, int64_t* out) noexcept nogil:
    # A decimal string value on the grid and within [lo, hi] (else: let orjson's path raise).
    if v.kind != K_STR or parse_units(<const char*>v.s, v.n, g, out) != FP_OK:
        return False
    return lo <= out[0] <= hi


cdef bint _fill_levels(int64_t* px, int64_t* qty, const Value* v, InstrumentGrid g) noexcept nogil:
    # The pairs of a scanned level array (already validated in shape) into px / qty.
    cdef const unsigned char* p = v.s + 1
    cdef const unsigned char* end = v.s + v.n
    cdef const unsigned char* s
    cdef Py_ssize_t n, i = 0
    cdef int64_t a, b
    while i < v.pairs:
        p = _string(p + 1, end, &s, &n)                        # p at '[' -> price
        if p == NULL or parse_units(<const char*>s, n, g.price, &a) != FP_OK or not (1 <= a <= g.max_price_ticks):
            return False
        p = _string(p + 1, end, &s, &n)                        # past ',' -> quantity
        if p == NULL or parse_units(<const char*>s, n, g.qty, &b) != FP_OK or not (0 <= b <= g.max_qty_lots):
            return False
        px[i] = a
        qty[i] = b
        p += 2                                                  # past '],' or ']]'
        i += 1
    return True


cdef inline bint _is(const Value* v, const char* text, Py_ssize_t n) noexcept nogil:
    return v.kind == K_STR and v.n == n and memcmp(v.s, text, n) == 0


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
        self._sym = symbol.encode("utf-8")
        self.byte_path = True

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
        cdef const unsigned char* buf = <const unsigned char*><const char*>raw
        cdef Fields f
        if self.byte_path and _scan(buf + sp + 1, buf + len(raw), &f) == 0:
            ev = self._build(&f, ts)
            if ev is not _FALLBACK:
                self.byte_path_hits += 1
                return ev
        self.fallbacks += 1
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
        cdef const unsigned char* buf = <const unsigned char*><const char*>payload
        cdef Fields f
        if self.byte_path and _scan(buf, buf + len(payload), &f) == 0:
            ev = self._build(&f, ts_local_ns)
            if ev is not _FALLBACK:
                self.byte_path_hits += 1
                return ev
        self.fallbacks += 1
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

    cdef object _build(self, Fields* f, int64_t ts):
        """The event of a scanned frame, None for another symbol, or _FALLBACK for anything the orjson path must
        decide (another stream, a missing or mistyped field, a value out of bounds or off the grid)."""
        cdef InstrumentGrid g = self.grid
        cdef Value* v = f.v
        cdef DepthDiff d
        cdef Trade t
        cdef BookTicker k
        cdef int64_t a, b, c, e_ms
        cdef bytes sym = self._sym
        if v[F_s].kind != K_STR:
            return _FALLBACK
        if v[F_s].n != len(sym) or memcmp(v[F_s].s, <const char*>sym, v[F_s].n) != 0:
            return None                                         # another symbol (as data.get("s") != symbol)
        if v[F_E].kind == K_INT:
            if v[F_E].i > _MAX_E_MS:
                return _FALLBACK
            e_ms = v[F_E].i * _MS
        elif v[F_E].kind == K_NONE:
            e_ms = 0
        else:
            return _FALLBACK
        if _is(&v[F_e], "depthUpdate", 11):
            if v[F_E].kind != K_INT or v[F_U].kind != K_INT or v[F_u].kind != K_INT or v[F_b].kind != K_ARR \
                    or v[F_a].kind != K_ARR or v[F_U].i > v[F_u].i or v[F_pu].kind not in (K_NONE, K_INT):
                return _FALLBACK
            d = DepthDiff.__new__(DepthDiff)
            d._alloc(v[F_b].pairs, v[F_a].pairs)
            if not _fill_levels(d.bid_px, d.bid_qty, &v[F_b], g) or not _fill_levels(d.ask_px, d.ask_qty, &v[F_a], g):
                return _FALLBACK
            d.ts_local_ns = ts
            d.ts_event_ns = e_ms
            d.first_update_id = v[F_U].i
            d.final_update_id = v[F_u].i
            d.prev_final_update_id = v[F_pu].i if v[F_pu].kind == K_INT else -1
            return d
        if _is(&v[F_e], "trade", 5) or _is(&v[F_e], "aggTrade", 8):
            if v[F_E].kind != K_INT or v[F_m].kind != K_BOOL:
                return _FALLBACK
            if v[F_e].n == 5:
                if v[F_t].kind != K_INT:
                    return _FALLBACK
                c = v[F_t].i
            else:
                if v[F_a].kind != K_INT:
                    return _FALLBACK
                c = v[F_a].i
            if not _units(&v[F_p], g.price, 1, g.max_price_ticks, &a) or \
                    not _units(&v[F_q], g.qty, 1, g.max_qty_lots, &b):
                return _FALLBACK
            t = Trade.__new__(Trade)
            t.ts_local_ns = ts
            t.ts_event_ns = e_ms
            t.trade_id = c
            t.price = a
            t.qty = b
            t.side = -1 if v[F_m].i else 1
            return t
        if _is(&v[F_e], "bookTicker", 10) or (v[F_e].kind == K_NONE and v[F_u].kind != K_NONE
                                               and v[F_b].kind != K_NONE):
            if v[F_u].kind != K_INT:
                return _FALLBACK
            k = BookTicker.__new__(BookTicker)
            if not _units(&v[F_b], g.price, 1, g.max_price_ticks, &k.bid_px) or \
                    not _units(&v[F_B], g.qty, 0, g.max_qty_lots, &k.bid_qty) or \
                    not _units(&v[F_a], g.price, 1, g.max_price_ticks, &k.ask_px) or \
                    not _units(&v[F_A], g.qty, 0, g.max_qty_lots, &k.ask_qty):
                return _FALLBACK
            k.ts_local_ns = ts
            k.ts_event_ns = e_ms
            k.update_id = v[F_u].i
            return k
        return _FALLBACK

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
        cdef const unsigned char* buf
        cdef Fields f
        if type(payload) is bytes:                              # the byte path first (see the module docstring)
            buf = <const unsigned char*><const char*>payload
            if _scan(buf, buf + len(payload), &f) == 0 and f.v[F_s].kind == K_STR:
                sym = (<const char*>f.v[F_s].s)[:f.v[F_s].n].decode("ascii")
                dec = self.decoders.get(sym)
                if dec is None:
                    return None
                if (<BinanceLineDecoder>dec).byte_path:
                    ev = (<BinanceLineDecoder>dec)._build(&f, ts_local_ns)
                    if ev is not _FALLBACK:
                        (<BinanceLineDecoder>dec).byte_path_hits += 1
                        return None if ev is None else (sym, ev)
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
