# cython: language_level=3
"""Decode one MEXC spot v3 WebSocket protobuf frame into typed events, in C, straight from the bytes.

Channels and messages (MEXC docs, https://www.mexc.com/api-docs/spot-v3/websocket-market-streams; schemas
https://github.com/mexcdevelop/websocket-proto, vendored unchanged in ``vendor/mexc-websocket-proto/``):

- every binary frame is a ``PushDataV3ApiWrapper``: ``channel`` (1, string), ``symbol`` (3, optional string),
  ``symbolId`` (4), ``createTime`` (5, int64 ms), ``sendTime`` (6, optional int64 ms, "event time"), and one
  ``body`` (a oneof, fields 301..315);
- ``spot@public.aggre.depth.v3.api.pb@(100ms|10ms)@SYMBOL`` -> body 313 ``PublicAggreDepthsV3Api``: ``asks`` (1) and
  ``bids`` (2), repeated ``{price (1), quantity (2)}`` decimal strings (quantity absolute, 0 deletes),
  ``eventType`` (3), ``fromVersion`` (4) / ``toVersion`` (5) decimal strings, ``lastOrderCreateTime`` (6);
  decoded as a :class:`DepthDiff` with ``first_update_id = fromVersion``, ``final_update_id = toVersion``,
  ``prev_final_update_id = -1`` (the book's ``SYNC_MEXC`` rule, :mod:`mmcore_ext.book`);
- ``spot@public.aggre.deals.v3.api.pb@(100ms|10ms)@SYMBOL`` -> body 314 ``PublicAggreDealsV3Api``: ``deals`` (1),
  repeated ``{price (1), quantity (2), tradeType (3, int32: 1 buy, 2 sell), time (4, int64 ms), tradeId (5,
  string)}``, ``eventType`` (2). **Batch choice:** decoded as a ``tuple`` of :class:`Trade`, one per deal in
  message order (empty for no deal); ``side`` +1 for tradeType 1 (buy), -1 for 2 (sell); ``ts_event_ns`` the
  deal's ``time``; ``trade_id`` the ``tradeId`` when it is a decimal integer in ``[0, 2**62]``, else -1 (absent
  or not numeric: MEXC documents it as a string);
- ``spot@public.aggre.bookTicker.v3.api.pb@(100ms|10ms)@SYMBOL`` -> body 315 ``PublicAggreBookTickerV3Api``:
  ``bidPrice`` (1), ``bidQuantity`` (2), ``askPrice`` (3), ``askQuantity`` (4), ``version`` (5, decimal string),
  ``lastOrderCreateTime`` (6); decoded as a :class:`BookTicker` with ``update_id = version``;
- REST depth snapshot ``GET https://api.mexc.com/api/v3/depth?symbol=SYMBOL&limit=5000`` ``{"lastUpdateId", "bids",
  "asks"}`` (step 3 of https://www.mexc.com/api-docs/spot-v3/websocket-market-streams/how-to-properly-maintain-a-local-copy-of-the-order-book;
  an optional ``timestamp`` ms is read as the event time when present; :meth:`MexcDecoder.snapshot_from`).

Depth and bookTicker ``ts_event_ns`` is the wrapper's ``sendTime`` (0 when absent).

Wire format (https://protobuf.dev/programming-guides/encoding/), with upb's choices (the ``protobuf`` package's
parser; the differential test ``tests/test_mexc_codec.py`` checks this decoder against it on every test frame and
on generated and mutated ones): tags are varints of at most 5 bytes fitting 32 bits, field number >= 1; other
varints at most 10 bytes (bits past 64 dropped); lengths at most 5 bytes and never past the end of the enclosing
message; wire types 0, 1, 2, 5 and groups (3 ... 4 with the same field number, nested at most 100 levels
counting the enclosing messages); 6, 7 or a stray end-group are corrupt. A known field with another wire type
is an unknown field (skipped). Scalars: the last occurrence wins; the same body field twice merges (its
occurrences are read as one message, at most :data:`MAX_BODY_SEGMENTS`), another oneof member replaces it;
every string field of the wrapper and of a decoded body must be valid UTF-8. Frames whose body is another
message (not one of the three) decode to None **without their body being checked** (the package would refuse
a corrupt one).

Bounds (the venue edge): prices in ``[1, max_price_ticks]``, quantities in ``[0, max_qty_lots]`` of the
instrument (a deal's quantity in ``[1, max_qty_lots]``) via :func:`mmcore_ext.fixedpoint.parse_units`;
``fromVersion``, ``toVersion``, ``version`` are 1 to 19 ASCII digits with a value <= 2**62, ``fromVersion <=
toVersion``; times (``sendTime``, deal ``time``) in ``[0, (2**63 - 1) // 10**6]`` ms. Anything else raises
:class:`mmcore_ext.binance_codec.MalformedLine` naming the field; nothing else is raised for any ``bytes``.
"""
from libc.stdint cimport INT64_MAX, int32_t, int64_t, uint32_t, uint64_t
from libc.string cimport memcmp
from mmcore_ext.bounds cimport MAX_UPDATE_ID
from mmcore_ext.events cimport BookTicker, DepthDiff, DepthSnapshot, InstrumentGrid, Trade
from mmcore_ext.fixedpoint cimport FP_OK, Grid, parse_units

from mmcore_ext.binance_codec import MalformedLine

cdef int64_t _MS = 1000000
cdef int64_t _MAX_MS = INT64_MAX // 1000000

cdef enum:
    BODY_DEPTH = 313
    BODY_DEALS = 314
    BODY_TICKER = 315

#: Wrapper oneof field numbers of the three decoded bodies.
BODY_FIELDS = {"publicAggreDepths": BODY_DEPTH, "publicAggreDeals": BODY_DEALS,
               "publicAggreBookTicker": BODY_TICKER}
#: Largest number of occurrences of one body field merged before the frame is refused (a decoder limit).
MAX_SEGMENTS = MAX_BODY_SEGMENTS

_FP_TEXT = {-1: "no digits", -2: "not a decimal number", -3: "not a multiple of the grid step",
            -4: "out of int64 range"}


cdef struct Wrap:
    int body                    # field number of the last oneof member seen (0: none)
    int nseg
    Span seg[MAX_BODY_SEGMENTS]
    bint has_symbol
    Span symbol
    Span channel
    bint has_send
    int64_t send


cdef struct Field:
    uint32_t num
    int wt
    uint64_t v                  # wire type 0
    Span s                      # wire type 2


# ---------------------------------------------------------------------------------------------------- wire format
cdef int _fail(str what, str why) except -1:
    raise MalformedLine(f"{what}: {why}")


cdef inline int _varint(const unsigned char** pp, const unsigned char* end, uint64_t* out, str what) except -1:
    """A varint of at most 10 bytes (bits past 64 dropped, as upb)."""
    cdef const unsigned char* p = pp[0]
    cdef uint64_t v = 0
    cdef int shift = 0
    cdef unsigned char b
    while shift < 70:
        if p >= end:
            return _fail(what, "truncated varint")
        b = p[0]
        p += 1
        v |= (<uint64_t>(b & 0x7f)) << shift
        if b < 0x80:
            pp[0] = p
            out[0] = v
            return 0
        shift += 7
    return _fail(what, "varint longer than 10 bytes")


cdef inline int _short_varint(const unsigned char** pp, const unsigned char* end, uint64_t* out, str what,
                              str kind) except -1:
    """A tag or a length: a varint of at most 5 bytes (upb)."""
    cdef const unsigned char* p = pp[0]
    cdef uint64_t v = 0
    cdef int shift = 0
    cdef unsigned char b
    while shift < 35:
        if p >= end:
            return _fail(what, f"truncated {kind}")
        b = p[0]
        p += 1
        v |= (<uint64_t>(b & 0x7f)) << shift
        if b < 0x80:
            pp[0] = p
            out[0] = v
            return 0
        shift += 7
    return _fail(what, f"{kind} longer than 5 bytes")


cdef int _skip_group(const unsigned char** pp, const unsigned char* end, uint32_t num, int depth,
                     str what) except -1:
    """Skip the contents of group ``num`` up to its end-group tag (``depth``: nesting budget left)."""
    cdef Field f
    if depth <= 0:
        return _fail(what, "nested too deep")
    while True:
        if pp[0] >= end:
            return _fail(what, f"group {num} not closed")
        if _field(pp, end, &f, depth - 1, what, True) == 1:
            if f.num != num:
                return _fail(what, f"end of group {f.num} inside group {num}")
            return 0


cdef int _field(const unsigned char** pp, const unsigned char* end, Field* f, int depth, str what,
                bint in_group=False) except -1:
    """Read one field at ``pp[0]`` (< end): its number, wire type and value (varint ``v`` or span ``s``); fixed32 /
    fixed64 and groups are skipped. Returns 0, or 1 for an end-group tag when ``in_group``."""
    cdef uint64_t tag, n
    cdef const unsigned char* p
    _short_varint(pp, end, &tag, what, "tag")
    if tag > 0xffffffff:
        return _fail(what, "tag past 32 bits")
    f.num = <uint32_t>(tag >> 3)
    f.wt = <int>(tag & 7)
    if f.num == 0:
        return _fail(what, "field number 0")
    if f.wt == 0:
        return _varint(pp, end, &f.v, what)
    if f.wt == 2:
        _short_varint(pp, end, &n, what, "length")
        p = pp[0]
        if n > <uint64_t>(end - p):
            return _fail(what, f"field {f.num}: length {n} past the end ({end - p} bytes left)")
        f.s.p = p
        f.s.n = <Py_ssize_t>n
        pp[0] = p + n
        return 0
    if f.wt == 1 or f.wt == 5:
        n = 8 if f.wt == 1 else 4
        if n > <uint64_t>(end - pp[0]):
            return _fail(what, f"field {f.num}: truncated fixed{8 * n}")
        pp[0] += n
        return 0
    if f.wt == 3:
        return _skip_group(pp, end, f.num, depth, what)
    if f.wt == 4 and in_group:
        return 1
    return _fail(what, f"field {f.num}: wire type {f.wt}" + (" (end of a group never opened)" if f.wt == 4 else ""))


cdef bint _utf8(const unsigned char* s, Py_ssize_t n) noexcept nogil:
    """Strict UTF-8 (no overlong forms, surrogates or code points past U+10FFFF), as upb checks string fields."""
    cdef Py_ssize_t i = 0
    cdef unsigned char c, lo, hi
    cdef int k
    while i < n:
        c = s[i]
        if c < 0x80:
            i += 1
            continue
        lo = 0x80
        hi = 0xbf
        if 0xc2 <= c <= 0xdf:
            k = 1
        elif c == 0xe0:
            k, lo = 2, 0xa0
        elif 0xe1 <= c <= 0xec or c == 0xee or c == 0xef:
            k = 2
        elif c == 0xed:
            k, hi = 2, 0x9f
        elif c == 0xf0:
            k, lo = 3, 0x90
        elif 0xf1 <= c <= 0xf3:
            k = 3
        elif c == 0xf4:
            k, hi = 3, 0x8f
        else:
            return False
        if n - i <= k:
            return False
        if not (lo <= s[i + 1] <= hi):
            return False
        if k >= 2 and not (0x80 <= s[i + 2] <= 0xbf):
            return False
        if k == 3 and not (0x80 <= s[i + 3] <= 0xbf):
            return False
        i += k + 1
    return True


cdef inline int _string(const Field* f, str what) except -1:
    if not _utf8(f.s.p, f.s.n):
        return _fail(what, "string is not valid UTF-8")
    return 0


cdef inline str _text(Span s):
    return (<const char*>s.p)[:s.n].decode("utf-8", "replace")[:40] if s.n > 0 else ""


# -------------------------------------------------------------------------------------------------- conversions
cdef int64_t _units(Span s, Grid g, int64_t lo, int64_t hi, str what) except? -1:
    """A decimal string on the grid ``g`` within ``[lo, hi]`` (ticks or lots)."""
    cdef int64_t out = 0
    cdef int rc = parse_units(<const char*>s.p, s.n, g, &out)
    if rc != FP_OK:
        raise MalformedLine(f"{what} {_text(s)!r}: {_FP_TEXT.get(rc, rc)} (grid {g.mantissa}e-{g.decimals})")
    if out < lo or out > hi:
        raise MalformedLine(f"{what} {_text(s)!r}: {out} outside [{lo}, {hi}]")
    return out


cdef int64_t _version(Span s, str what) except? -1:
    """``fromVersion`` / ``toVersion`` / ``version``: 1 to 19 ASCII digits, value <= 2**62."""
    cdef uint64_t v = 0
    cdef Py_ssize_t i
    if s.n == 0:
        raise MalformedLine(f"{what} is empty")
    if s.n > 19:
        raise MalformedLine(f"{what} {_text(s)!r}: more than 19 digits")
    for i in range(s.n):
        if s.p[i] < 48 or s.p[i] > 57:
            raise MalformedLine(f"{what} {_text(s)!r}: not a decimal integer")
        v = v * 10 + (s.p[i] - 48)
    if v > <uint64_t>MAX_UPDATE_ID:
        raise MalformedLine(f"{what} {v} past 2**62")
    return <int64_t>v


cdef inline int64_t _opt_id(Span s) noexcept:
    """``tradeId`` as an integer when it is 1 to 19 ASCII digits with a value <= 2**62, else -1."""
    cdef uint64_t v = 0
    cdef Py_ssize_t i
    if s.n == 0 or s.n > 19:
        return -1
    for i in range(s.n):
        if s.p[i] < 48 or s.p[i] > 57:
            return -1
        v = v * 10 + (s.p[i] - 48)
    return -1 if v > <uint64_t>MAX_UPDATE_ID else <int64_t>v


cdef inline int64_t _ms_ns(int64_t ms, str what) except? -1:
    if ms < 0 or ms > _MAX_MS:
        raise MalformedLine(f"{what} {ms} ms outside [0, {_MAX_MS}]")
    return ms * _MS


# ------------------------------------------------------------------------------------------------------- wrapper
cdef int _wrapper(const unsigned char* p, const unsigned char* end, Wrap* w) except -1:
    cdef Field f
    w.body = 0
    w.nseg = 0
    w.has_symbol = False
    w.has_send = False
    w.channel.n = 0
    w.channel.p = p
    while p < end:
        _field(&p, end, &f, MAX_NESTING, "wrapper")
        if f.wt == 2:
            if f.num == 1:
                _string(&f, "wrapper channel")
                w.channel = f.s
            elif f.num == 3:
                _string(&f, "wrapper symbol")
                w.symbol = f.s
                w.has_symbol = True
            elif f.num == 4:
                _string(&f, "wrapper symbolId")
            elif 301 <= f.num <= 315:
                if <int>f.num != w.body:                 # another oneof member replaces the body
                    w.body = f.num
                    w.nseg = 0
                if f.num >= BODY_DEPTH:                   # the same member again merges with it
                    if w.nseg >= MAX_BODY_SEGMENTS:
                        return _fail("wrapper", f"body field {f.num} more than {MAX_BODY_SEGMENTS} times")
                    w.seg[w.nseg] = f.s
                    w.nseg += 1
        elif f.wt == 0 and f.num == 6:
            w.send = <int64_t>f.v
            w.has_send = True
    return 0


# ----------------------------------------------------------------------------------------------------- the bodies
cdef int _level(Span item, Span* px, Span* qty, str what) except -1:
    """A depth item ``{price (1), quantity (2)}``: the last of each (empty when absent)."""
    cdef const unsigned char* p = item.p
    cdef const unsigned char* end = item.p + item.n
    cdef Field f
    px.n = 0
    qty.n = 0
    px.p = qty.p = p
    while p < end:
        _field(&p, end, &f, MAX_NESTING - 2, what)
        if f.wt == 2 and (f.num == 1 or f.num == 2):
            _string(&f, what)
            if f.num == 1:
                px[0] = f.s
            else:
                qty[0] = f.s
    return 0


cdef object _depth(MexcDecoder self, Wrap* w, int64_t ts, int64_t ev_ns):
    cdef Field f
    cdef Span fv, tv, px, qty
    cdef Py_ssize_t na = 0, nb = 0, ia = 0, ib = 0
    cdef const unsigned char* p
    cdef const unsigned char* end
    cdef int k
    cdef InstrumentGrid g = self.grid
    cdef DepthDiff d
    fv.n = tv.n = 0
    fv.p = tv.p = w.seg[0].p
    for k in range(w.nseg):                             # pass 1: structure, UTF-8, counts, versions
        p = w.seg[k].p
        end = p + w.seg[k].n
        while p < end:
            _field(&p, end, &f, MAX_NESTING - 1, "aggre depth")
            if f.wt != 2:
                continue
            if f.num == 1:
                _level(f.s, &px, &qty, "aggre depth ask")
                na += 1
            elif f.num == 2:
                _level(f.s, &px, &qty, "aggre depth bid")
                nb += 1
            elif f.num == 3:
                _string(&f, "aggre depth eventType")
            elif f.num == 4:
                _string(&f, "aggre depth fromVersion")
                fv = f.s
            elif f.num == 5:
                _string(&f, "aggre depth toVersion")
                tv = f.s
    if not _symbol_ok(self, w):
        return None
    d = DepthDiff.__new__(DepthDiff)
    d.first_update_id = _version(fv, "aggre depth fromVersion")
    d.final_update_id = _version(tv, "aggre depth toVersion")
    if d.first_update_id > d.final_update_id:
        raise MalformedLine(f"aggre depth fromVersion {d.first_update_id} > toVersion {d.final_update_id}")
    d.prev_final_update_id = -1
    d.ts_local_ns = ts
    d.ts_event_ns = ev_ns
    d._alloc(nb, na)
    for k in range(w.nseg):                             # pass 2: the levels (structure already checked)
        p = w.seg[k].p
        end = p + w.seg[k].n
        while p < end:
            _field(&p, end, &f, MAX_NESTING - 1, "aggre depth")
            if f.wt != 2:
                continue
            if f.num == 1:
                _level(f.s, &px, &qty, "aggre depth ask")
                d.ask_px[ia] = _units(px, g.price, 1, g.max_price_ticks, "aggre depth ask price")
                d.ask_qty[ia] = _units(qty, g.qty, 0, g.max_qty_lots, "aggre depth ask quantity")
                ia += 1
            elif f.num == 2:
                _level(f.s, &px, &qty, "aggre depth bid")
                d.bid_px[ib] = _units(px, g.price, 1, g.max_price_ticks, "aggre depth bid price")
                d.bid_qty[ib] = _units(qty, g.qty, 0, g.max_qty_lots, "aggre depth bid quantity")
                ib += 1
    return d


cdef struct Deal:
    Span px
    Span qty
    Span tid
    int32_t side_code
    int64_t time_ms


cdef int _deal(Span item, Deal* o) except -1:
    cdef const unsigned char* p = item.p
    cdef const unsigned char* end = item.p + item.n
    cdef Field f
    o.px.n = o.qty.n = o.tid.n = 0
    o.px.p = o.qty.p = o.tid.p = p
    o.side_code = 0
    o.time_ms = 0
    while p < end:
        _field(&p, end, &f, MAX_NESTING - 2, "aggre deal")
        if f.wt == 2:
            if f.num == 1:
                _string(&f, "aggre deal price")
                o.px = f.s
            elif f.num == 2:
                _string(&f, "aggre deal quantity")
                o.qty = f.s
            elif f.num == 5:
                _string(&f, "aggre deal tradeId")
                o.tid = f.s
        elif f.wt == 0:
            if f.num == 3:
                o.side_code = <int32_t><uint32_t>f.v     # int32: the low 32 bits (protobuf encoding)
            elif f.num == 4:
                o.time_ms = <int64_t>f.v
    return 0


cdef object _deals(MexcDecoder self, Wrap* w, int64_t ts):
    cdef Field f
    cdef Deal o
    cdef Py_ssize_t n = 0, i = 0
    cdef const unsigned char* p
    cdef const unsigned char* end
    cdef int k
    cdef InstrumentGrid g = self.grid
    cdef Trade t
    for k in range(w.nseg):                             # pass 1: structure, UTF-8, count
        p = w.seg[k].p
        end = p + w.seg[k].n
        while p < end:
            _field(&p, end, &f, MAX_NESTING - 1, "aggre deals")
            if f.wt == 2:
                if f.num == 1:
                    _deal(f.s, &o)
                    n += 1
                elif f.num == 2:
                    _string(&f, "aggre deals eventType")
    if not _symbol_ok(self, w):
        return None
    out = [None] * n
    for k in range(w.nseg):                             # pass 2: one Trade per deal
        p = w.seg[k].p
        end = p + w.seg[k].n
        while p < end:
            _field(&p, end, &f, MAX_NESTING - 1, "aggre deals")
            if f.wt == 2 and f.num == 1:
                _deal(f.s, &o)
                t = Trade.__new__(Trade)
                t.ts_local_ns = ts
                t.ts_event_ns = _ms_ns(o.time_ms, "aggre deal time")
                t.trade_id = _opt_id(o.tid)
                t.price = _units(o.px, g.price, 1, g.max_price_ticks, "aggre deal price")
                t.qty = _units(o.qty, g.qty, 1, g.max_qty_lots, "aggre deal quantity")
                if o.side_code == 1:
                    t.side = 1
                elif o.side_code == 2:
                    t.side = -1
                else:
                    raise MalformedLine(f"aggre deal tradeType {o.side_code}: not 1 (buy) or 2 (sell)")
                out[i] = t
                i += 1
    return tuple(out)


cdef object _ticker(MexcDecoder self, Wrap* w, int64_t ts, int64_t ev_ns):
    cdef Field f
    cdef Span s[6]
    cdef const unsigned char* p
    cdef const unsigned char* end
    cdef int k
    cdef InstrumentGrid g = self.grid
    cdef BookTicker b
    for k in range(6):
        s[k].n = 0
        s[k].p = w.seg[0].p
    for k in range(w.nseg):
        p = w.seg[k].p
        end = p + w.seg[k].n
        while p < end:
            _field(&p, end, &f, MAX_NESTING - 1, "aggre bookTicker")
            if f.wt == 2 and 1 <= f.num <= 5:
                _string(&f, "aggre bookTicker")
                s[f.num] = f.s
    if not _symbol_ok(self, w):
        return None
    b = BookTicker.__new__(BookTicker)
    b.ts_local_ns = ts
    b.ts_event_ns = ev_ns
    b.bid_px = _units(s[1], g.price, 1, g.max_price_ticks, "aggre bookTicker bidPrice")
    b.bid_qty = _units(s[2], g.qty, 0, g.max_qty_lots, "aggre bookTicker bidQuantity")
    b.ask_px = _units(s[3], g.price, 1, g.max_price_ticks, "aggre bookTicker askPrice")
    b.ask_qty = _units(s[4], g.qty, 0, g.max_qty_lots, "aggre bookTicker askQuantity")
    b.update_id = _version(s[5], "aggre bookTicker version")
    return b


cdef bint _symbol_ok(MexcDecoder self, Wrap* w) noexcept:
    """The frame's symbol: ``symbol`` when present, else the channel's last ``@`` segment."""
    cdef bytes sym = self._sym
    cdef Py_ssize_t n = len(sym), i
    cdef Span s
    if w.has_symbol:
        s = w.symbol
    else:
        s = w.channel
        i = s.n
        while i > 0 and s.p[i - 1] != c'@':
            i -= 1
        s.p = s.p + i
        s.n = s.n - i
    return s.n == n and memcmp(s.p, <const char*>sym, n) == 0


cdef class MexcDecoder:
    """Decode MEXC spot v3 protobuf frames of one symbol (module docstring: channels, fields, bounds).

    Parameters
    ----------
    grid : InstrumentGrid
        The instrument's tick and lot grids and bounds (ticks, lots).
    symbol : str
        Exchange symbol (``BTCUSDT``); frames of another symbol decode to None.

    Raises
    ------
    TypeError
        ``grid`` or ``symbol`` is None or of another type.
    """

    def __init__(self, InstrumentGrid grid not None, str symbol not None):
        self.grid = grid
        self.symbol = symbol
        self._sym = symbol.encode("utf-8")

    cpdef object decode_frame(self, int64_t ts_local_ns, bytes payload):
        """Decode one binary frame (a serialized ``PushDataV3ApiWrapper``) received at ``ts_local_ns`` (ns).

        Returns a :class:`DepthDiff` (aggre depth), a ``tuple`` of :class:`Trade` (aggre deals, one per deal), a
        :class:`BookTicker` (aggre bookTicker), or None (no body, another body, another symbol).

        Raises
        ------
        MalformedLine
            Corrupt wire format, invalid UTF-8, a missing or malformed field, off the grid or out of bounds
            (module docstring); never another exception for any ``bytes``.
        """
        cdef Wrap w
        cdef const unsigned char* p
        cdef int64_t ev_ns = 0
        if payload is None:
            raise MalformedLine("no frame (None)")
        p = <const unsigned char*><const char*>payload
        _wrapper(p, p + len(payload), &w)
        if w.body < BODY_DEPTH:
            return None
        if w.has_send:
            ev_ns = _ms_ns(w.send, "wrapper sendTime")
        if w.body == BODY_DEPTH:
            return _depth(self, &w, ts_local_ns, ev_ns)
        if w.body == BODY_DEALS:
            return _deals(self, &w, ts_local_ns)
        return _ticker(self, &w, ts_local_ns, ev_ns)

    cpdef object snapshot_from(self, int64_t ts_local_ns, object result):
        """A DepthSnapshot from the REST ``GET /api/v3/depth`` body (parsed JSON): ``lastUpdateId`` (integer in
        ``[0, 2**62]``), ``bids`` / ``asks`` (``[["price", "qty"], ...]``), optional ``timestamp`` (ms, the event
        time). Raises MalformedLine (only) for anything else."""
        cdef DepthSnapshot s
        cdef object lid, tsv
        if type(result) is not dict:
            raise MalformedLine("depth snapshot is not an object")
        lid = result.get("lastUpdateId")
        if type(lid) is not int or not 0 <= lid <= MAX_UPDATE_ID:
            raise MalformedLine(f"depth snapshot lastUpdateId {lid!r:.40}: not an integer in [0, 2**62]")
        tsv = result.get("timestamp", 0)
        if type(tsv) is not int or not 0 <= tsv <= _MAX_MS:
            raise MalformedLine(f"depth snapshot timestamp {tsv!r:.40}: not an integer ms in [0, {_MAX_MS}]")
        bids, asks = result.get("bids"), result.get("asks")
        if type(bids) is not list or type(asks) is not list:
            raise MalformedLine("depth snapshot 'bids' / 'asks' are not lists")
        s = DepthSnapshot.__new__(DepthSnapshot)
        s.ts_local_ns = ts_local_ns
        s.ts_event_ns = <int64_t>tsv * _MS
        s.last_update_id = lid
        try:
            for lvl in bids:
                if type(lvl) is not list or len(lvl) != 2:
                    raise ValueError(f"level {lvl!r:.60} is not [price, qty]")
            for lvl in asks:
                if type(lvl) is not list or len(lvl) != 2:
                    raise ValueError(f"level {lvl!r:.60} is not [price, qty]")
            s._fill(self.grid, bids, asks)
        except (ValueError, TypeError, OverflowError) as exc:
            raise MalformedLine(f"depth snapshot: {exc}") from None
        return s
