"""The compiled MEXC protobuf decoder (mmcore_ext.mexc_codec) against the generated ``protobuf`` classes
(mmcore.venues.mexc.pbdecode): the same event, or both refuse, on every frame of the converted data (CONVERTED
FROM BINANCE, NOT MEXC DATA: tests/data/mexc/README.md, and the whole bundled Binance spot recording converted on
the fly), on hypothesis-generated messages (built with the generated classes) and on mutated frames (byte flips,
cuts, insertions). Plus the field mapping, the wire-format limits and the build-time generation itself.

Allowed difference (documented in mmcore_ext/mexc_codec.pyx): a frame whose body is another message decodes to
None in the compiled decoder without that body being checked, while the package may refuse it."""
import random
import re

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from mmcore.instruments import load_instrument
from mmcore.venues.mexc import convert, pb
from mmcore.venues.mexc.pb import PushDataV3ApiWrapper
from mmcore.venues.mexc.pbdecode import ProtobufDecoder
from mmcore_ext.binance_codec import MalformedLine
from mmcore_ext.events import BookTicker, DepthDiff, Trade
from mmcore_ext.mexc_codec import MexcDecoder

from datafiles import ROOT, SPOT_FILE

SAMPLE = ROOT / "tests" / "data" / "mexc" / "spot_btcusdt_20240808_head4000.mexc.gz"
INST = load_instrument("binance_spot", "BTCUSDT")
FAST = MexcDecoder(INST.grid, "BTCUSDT")
SLOW = ProtobufDecoder(INST.grid, "BTCUSDT")
OUR_BODIES = ("publicAggreDepths", "publicAggreDeals", "publicAggreBookTicker")


def fields(ev):
    t = type(ev)
    if t is DepthDiff:
        return (t, ev.ts_local_ns, ev.ts_event_ns, ev.first_update_id, ev.final_update_id, ev.prev_final_update_id,
                ev.bids, ev.asks)
    if t is Trade:
        return (t, ev.ts_local_ns, ev.ts_event_ns, ev.trade_id, ev.price, ev.qty, ev.side)
    assert t is BookTicker, t
    return (t, ev.ts_local_ns, ev.ts_event_ns, ev.update_id, ev.bid_px, ev.bid_qty, ev.ask_px, ev.ask_qty)


def outcome(dec, raw):
    """The fields of the event(s), None, or "refused"."""
    try:
        ev = dec.decode_frame(7, raw)
    except MalformedLine:
        return "refused"
    if ev is None:
        return None
    if type(ev) is tuple:
        return tuple(fields(t) for t in ev)
    return fields(ev)


def check_same(raw):
    a, b = outcome(FAST, raw), outcome(SLOW, raw)
    if a != b:
        # the one documented difference: another body, not checked by the compiled decoder
        assert a is None and b == "refused" and _scan_last_body(raw) in range(301, 313), (raw.hex()[:400], a, b)
    return a


def _varint(b, i):
    v = s = 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7f) << s
        if c < 0x80:
            return v, i
        s += 7


def _skip(raw, i, wt):
    if wt == 0:
        return _varint(raw, i)[1]
    if wt == 2:
        n, i = _varint(raw, i)
        return i + n
    if wt == 1:
        return i + 8
    if wt == 5:
        return i + 4
    if wt == 3:
        while True:
            tag, i = _varint(raw, i)
            if tag & 7 == 4:
                return i
            i = _skip(raw, i, tag & 7)
    raise IndexError


def _scan_last_body(raw):
    """Test helper (independent of both decoders): the last wrapper oneof field number (301..315) in ``raw``."""
    i, last = 0, None
    try:
        while i < len(raw):
            tag, i = _varint(raw, i)
            num, wt = tag >> 3, tag & 7
            if wt == 2 and 301 <= num <= 315:
                last = num
            i = _skip(raw, i, wt)
    except (IndexError, RecursionError):
        return None
    return last


def converted_frames(path=SAMPLE):
    return [(ts, payload) for ts, kind, payload in convert.read_frames(path) if kind == "pb"]


# ------------------------------------------------------------------------------------------ build-time generation
def test_generated_modules_come_from_the_vendored_schemas_and_match_the_runtime():
    import google.protobuf
    from pathlib import Path
    gen = Path(pb.__file__).parent / "PushDataV3ApiWrapper_pb2.py"
    text = gen.read_text()
    assert "Generated at build time by setup.py" in text and "from . import PublicAggreDepthsV3Api_pb2" in text
    major, minor, patch = map(int, re.search(r"Protobuf Python Version: (\d+)\.(\d+)\.(\d+)", text).groups())
    rt = tuple(int(x) for x in google.protobuf.__version__.split(".")[:3])
    assert rt[0] == major and rt >= (major, minor, patch), (rt, major, minor, patch)
    # every vendored schema has its module, descriptors in the private pool (not protobuf's default one)
    protos = sorted(p.stem for p in (ROOT / "vendor" / "mexc-websocket-proto").glob("*.proto"))
    assert len(protos) == 16
    for stem in protos:
        assert (gen.parent / f"{stem}_pb2.py").exists(), stem
    from google.protobuf import descriptor_pool
    from mmcore.venues.mexc.pb._pool import POOL
    assert POOL.FindMessageTypeByName("PushDataV3ApiWrapper") is PushDataV3ApiWrapper.DESCRIPTOR
    assert PushDataV3ApiWrapper.DESCRIPTOR.file.pool is POOL is not descriptor_pool.Default()
    # the schema's field numbers the compiled decoder hard-codes
    f = PushDataV3ApiWrapper.DESCRIPTOR.fields_by_name
    assert (f["channel"].number, f["symbol"].number, f["sendTime"].number) == (1, 3, 6)
    assert {n: f[n].number for n in OUR_BODIES} == {"publicAggreDepths": 313, "publicAggreDeals": 314,
                                                   "publicAggreBookTicker": 315}
    d = pb.PublicAggreDepthsV3Api.DESCRIPTOR.fields_by_name
    assert [d[n].number for n in ("asks", "bids", "fromVersion", "toVersion")] == [1, 2, 4, 5]
    t = pb.PublicAggreDealsV3ApiItem.DESCRIPTOR.fields_by_name
    assert [t[n].number for n in ("price", "quantity", "tradeType", "time", "tradeId")] == [1, 2, 3, 4, 5]
    k = pb.PublicAggreBookTickerV3Api.DESCRIPTOR.fields_by_name
    assert [k[n].number for n in ("bidPrice", "bidQuantity", "askPrice", "askQuantity", "version")] == [1, 2, 3, 4, 5]


def test_ccxt_copy_of_the_schemas_does_not_clash():
    ccxt_pb = pytest.importorskip("ccxt.protobuf.mexc.PushDataV3ApiWrapper_pb2")
    w = PushDataV3ApiWrapper(channel="c", symbol="BTCUSDT")
    assert ccxt_pb.PushDataV3ApiWrapper.FromString(w.SerializeToString()).symbol == "BTCUSDT"


# ------------------------------------------------------------------------------------------------ field mapping
def _depth(n=20, **kw):
    w = PushDataV3ApiWrapper(channel=convert.CHANNEL_DEPTH + "BTCUSDT", symbol="BTCUSDT", sendTime=1723161255208)
    m = w.publicAggreDepths
    for i in range(n):
        (m.bids if i % 2 == 0 else m.asks).add(price=f"{61800 + (i if i % 2 else -i)}.01", quantity="0.5")
    m.fromVersion, m.toVersion = kw.get("fv", "100"), kw.get("tv", "105")
    return w


def test_depth_maps_versions_levels_and_send_time():
    ev = FAST.decode_frame(11, _depth().SerializeToString())
    assert type(ev) is DepthDiff
    assert (ev.first_update_id, ev.final_update_id, ev.prev_final_update_id) == (100, 105, -1)
    assert (ev.ts_local_ns, ev.ts_event_ns) == (11, 1723161255208 * 10**6)
    assert ev.bids[:2] == [(6180001, 50000000), (6179801, 50000000)] and ev.asks[0] == (6180101, 50000000)
    assert ev.n_bids == ev.n_asks == 10


def test_deals_give_one_trade_per_deal_with_mexc_sides():
    w = PushDataV3ApiWrapper(channel=convert.CHANNEL_DEALS + "BTCUSDT", symbol="BTCUSDT", sendTime=5)
    w.publicAggreDeals.deals.add(price="61837.63", quantity="0.02", tradeType=1, time=1723161255342, tradeId="37")
    w.publicAggreDeals.deals.add(price="61837.64", quantity="0.01", tradeType=2, time=1723161255343, tradeId="x1")
    a, b = FAST.decode_frame(3, w.SerializeToString())
    assert (a.side, a.price, a.qty, a.trade_id, a.ts_event_ns) == (1, 6183763, 2000000, 37, 1723161255342 * 10**6)
    assert (b.side, b.trade_id) == (-1, -1)            # tradeType 2 = sell; a non-numeric tradeId -> -1
    w.publicAggreDeals.deals[0].tradeType = 3
    with pytest.raises(MalformedLine, match="tradeType 3"):
        FAST.decode_frame(3, w.SerializeToString())
    assert FAST.decode_frame(3, PushDataV3ApiWrapper(publicAggreDeals={}, symbol="BTCUSDT").SerializeToString()) == ()


def test_book_ticker_maps_version_and_has_no_event_time_without_send_time():
    w = PushDataV3ApiWrapper(channel=convert.CHANNEL_TICKER + "BTCUSDT")   # symbol from the channel
    m = w.publicAggreBookTicker
    m.bidPrice, m.bidQuantity, m.askPrice, m.askQuantity, m.version = "1.00", "2", "1.01", "0", "77"
    ev = FAST.decode_frame(1, w.SerializeToString())
    assert (ev.update_id, ev.bid_px, ev.bid_qty, ev.ask_px, ev.ask_qty, ev.ts_event_ns) == (77, 100, 200000000, 101, 0, 0)


def test_other_symbol_other_body_and_no_body_are_none():
    w = _depth()
    w.symbol = "ETHUSDT"
    assert FAST.decode_frame(1, w.SerializeToString()) is None
    assert FAST.decode_frame(1, PushDataV3ApiWrapper(channel="x", publicDeals={}).SerializeToString()) is None
    assert FAST.decode_frame(1, b"") is None


@pytest.mark.parametrize("mutate, what", [
    (lambda w: setattr(w.publicAggreDepths, "fromVersion", ""), "fromVersion is empty"),
    (lambda w: setattr(w.publicAggreDepths, "toVersion", "9" * 20), "more than 19 digits"),
    (lambda w: setattr(w.publicAggreDepths, "toVersion", str(2**62 + 1)), "past 2\\*\\*62"),
    (lambda w: setattr(w.publicAggreDepths, "fromVersion", "106"), "fromVersion 106 > toVersion 105"),
    (lambda w: setattr(w.publicAggreDepths, "toVersion", "+105"), "not a decimal integer"),
    (lambda w: setattr(w.publicAggreDepths.bids[0], "price", "61800.001"), "bid price .*grid"),
    (lambda w: setattr(w.publicAggreDepths.asks[0], "price", "0"), "ask price .*outside"),
    (lambda w: setattr(w.publicAggreDepths.asks[0], "quantity", "-1"), "ask quantity .*outside"),
    (lambda w: setattr(w.publicAggreDepths.bids[0], "quantity", ""), "bid quantity .*no digits"),
    (lambda w: setattr(w, "sendTime", -1), "sendTime"),
])
def test_malformed_fields_are_refused_naming_the_field_by_both(mutate, what):
    w = _depth()
    mutate(w)
    raw = w.SerializeToString()
    with pytest.raises(MalformedLine, match=what):
        FAST.decode_frame(1, raw)
    assert outcome(SLOW, raw) == "refused"


WIRE = bytes.fromhex("0a01781a074254435553445430059a")   # channel "x", symbol BTCUSDT, sendTime 5, then a cut tag


@pytest.mark.parametrize("raw, what", [
    (b"\x30" + b"\x80" * 10 + b"\x01", "varint longer than 10 bytes"),
    (b"\x30\x80", "truncated varint"),
    (b"\x0a\x05ab", "length 5 past the end"),
    (b"\x0a\x01\xff", "channel: string is not valid UTF-8"),
    (b"\x0a\x02\xc0\x80", "not valid UTF-8"),                          # overlong NUL
    (b"\x0a\x03\xed\xa0\x80", "not valid UTF-8"),                      # surrogate
    (b"\x00\x05", "field number 0"),
    (b"\x3e", "wire type 6"),
    (b"\x3c", "end of a group never opened"),
    (b"\x3b\x44", "end of group 8 inside group 7"),
    (b"\x3b" * 101 + b"\x3c" * 101, "nested too deep"),
    (b"\x39\x01\x02", "truncated fixed64"),
    (b"\x8a\x80\x80\x80\x80\x00\x01x", "tag longer than 5 bytes"),
    (b"\xf8\xff\xff\xff\x1f\x01", "tag past 32 bits"),
    (b"\xca\x13\x05\x0a\x03\x0a\x01\xff", "aggre depth ask: string is not valid UTF-8"),
    (WIRE, "truncated tag"),
    (b"\xca\x13\x00" * 17, "more than 16 times"),
])
def test_wire_format_errors_are_malformed_lines_naming_the_field(raw, what):
    with pytest.raises(MalformedLine, match=what):
        FAST.decode_frame(1, raw)
    if "more than 16" not in what:                       # the decoder's own limit (the package merges them all)
        assert outcome(SLOW, raw) == "refused"


def test_wire_format_edge_cases_accepted_like_upb():
    depth = _depth(n=2).SerializeToString()
    for raw in [b"\x3b" * 100 + b"\x3c" * 100 + depth,              # 100 nested unknown groups: upb's limit
                b"\x3d\x01\x02\x03\x04" + depth,                    # unknown fixed32
                b"\x18\x05" + depth,                                # symbol with another wire type: unknown field
                b"\xf8\xff\xff\xff\x0f\x01" + depth,                # largest field number
                b"\x30" + b"\xff" * 9 + b"\x02" + depth]:           # 10-byte varint, bit 64 dropped
        assert outcome(FAST, raw) == outcome(SLOW, raw) and outcome(FAST, raw) != "refused"
    # the same body twice merges, another member replaces it (protobuf semantics)
    a = PushDataV3ApiWrapper(publicAggreDepths={"fromVersion": "1"}, symbol="BTCUSDT").SerializeToString()
    b = PushDataV3ApiWrapper(publicAggreDepths={"toVersion": "2", "bids": [{"price": "1", "quantity": "1"}]}
                             ).SerializeToString()
    assert outcome(FAST, a + b) == outcome(SLOW, a + b) != "refused"
    assert FAST.decode_frame(0, a + b).first_update_id == 1
    other = PushDataV3ApiWrapper(publicDeals={}).SerializeToString()
    assert outcome(FAST, a + other + b) == outcome(SLOW, a + other + b) == "refused"   # fromVersion lost: empty
    assert FAST.decode_frame(0, b + other) is None


# --------------------------------------------------------------------------------------------------- differential
def test_every_frame_of_the_committed_sample_decodes_the_same():
    frames = converted_frames()
    kinds = {}
    for ts, raw in frames:
        a = FAST.decode_frame(ts, raw)
        b = SLOW.decode_frame(ts, raw)
        ka = tuple(fields(t) for t in a) if type(a) is tuple else fields(a)
        kb = tuple(fields(t) for t in b) if type(b) is tuple else fields(b)
        assert ka == kb
        kinds[type(a).__name__] = kinds.get(type(a).__name__, 0) + 1
    assert len(frames) > 3000 and set(kinds) == {"DepthDiff", "tuple", "BookTicker"}, kinds
    assert any(type(FAST.decode_frame(0, raw)) is tuple and len(FAST.decode_frame(0, raw)) > 1 for _, raw in frames)


def test_every_frame_of_the_whole_converted_spot_recording_decodes_the_same(tmp_path):
    dst = tmp_path / "spot.mexc.gz"
    n = convert.convert_file(SPOT_FILE, dst)
    frames = converted_frames(dst)
    assert n == len(frames) + 1 > 30000
    for ts, raw in frames:
        assert outcome(FAST, raw) == outcome(SLOW, raw)


_decimal = st.one_of(
    st.from_regex(r"\A[0-9]{1,6}(\.[0-9]{1,10})?\Z"),
    st.sampled_from(["", "0", "-1", "1e5", "61837.63", "0.00001", "0.000001", "9" * 25, "1.2.3", " 1", "١٢"]),
    st.text(max_size=8))
_version = st.one_of(st.integers(0, 2**64).map(str), st.sampled_from(["", "+1", "01", "1 ", "x"]), st.text(max_size=4))
_i64 = st.integers(-2**63, 2**63 - 1)


@st.composite
def wrappers(draw):
    w = PushDataV3ApiWrapper()
    if draw(st.booleans()):
        w.channel = draw(st.sampled_from([convert.CHANNEL_DEPTH + "BTCUSDT", "spot@x@ETHUSDT", "", "BTCUSDT"]))
    if draw(st.booleans()):
        w.symbol = draw(st.sampled_from(["BTCUSDT", "ETHUSDT", "", "btcusdt"]))
    if draw(st.booleans()):
        w.sendTime = draw(st.one_of(st.integers(0, 2**45), _i64))
    if draw(st.booleans()):
        w.createTime = draw(_i64)
    kind = draw(st.sampled_from(["depth", "deals", "ticker", "other", "none"]))
    if kind == "depth":
        m = w.publicAggreDepths
        for side in (m.bids, m.asks):
            for _ in range(draw(st.integers(0, 4))):
                side.add(price=draw(_decimal), quantity=draw(_decimal))
        m.fromVersion, m.toVersion = draw(_version), draw(_version)
        m.eventType = draw(st.text(max_size=5))
        m.lastOrderCreateTime = draw(_i64)
    elif kind == "deals":
        m = w.publicAggreDeals
        for _ in range(draw(st.integers(0, 4))):
            m.deals.add(price=draw(_decimal), quantity=draw(_decimal), tradeType=draw(st.integers(-2**31, 2**31 - 1)
                        | st.sampled_from([1, 2])), time=draw(st.integers(0, 2**45) | _i64), tradeId=draw(_version))
    elif kind == "ticker":
        m = w.publicAggreBookTicker
        m.bidPrice, m.bidQuantity, m.askPrice, m.askQuantity = (draw(_decimal) for _ in range(4))
        m.version = draw(_version)
    elif kind == "other":
        w.publicDeals.deals.add(price=draw(_decimal))
    return w.SerializeToString()


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(wrappers())
def test_generated_messages_decode_the_same(raw):
    check_same(raw)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(wrappers(), st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255), st.sampled_from("fic")),
                            min_size=1, max_size=4))
def test_generated_then_mutated_messages_decode_the_same_or_both_refuse(raw, edits):
    b = bytearray(raw)
    for pos, byte, op in edits:
        if not b:
            break
        i = pos % len(b)
        if op == "f":
            b[i] = byte
        elif op == "i":
            b.insert(i, byte)
        else:
            del b[i:]
    check_same(bytes(b))


def test_mutated_real_frames_decode_the_same_or_both_refuse():
    rng = random.Random(12)
    frames = [raw for _, raw in converted_frames()]
    n = refused = 0
    for _ in range(6000):
        b = bytearray(rng.choice(frames))
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(b))
            op = rng.random()
            if op < 0.6:
                b[i] = rng.randrange(256)
            elif op < 0.8:
                b.insert(i, rng.randrange(256))
            else:
                del b[i:i + rng.randint(1, 8)]
            if not b:
                break
        refused += check_same(bytes(b)) == "refused"
        n += 1
    assert 0 < refused < n          # the mutations reach both outcomes


def test_decoder_never_raises_anything_else():
    rng = random.Random(5)
    for _ in range(20000):
        raw = bytes(rng.randrange(256) for _ in range(rng.randint(0, 40)))
        try:
            FAST.decode_frame(0, raw)
        except MalformedLine:
            pass
    with pytest.raises(MalformedLine):
        FAST.decode_frame(0, None)


# ---------------------------------------------------------------------------------------------- REST snapshot
def test_snapshot_from_rest_body():
    s = FAST.snapshot_from(9, {"lastUpdateId": 50093239218, "bids": [["61837.63", "3.78826"]],
                               "asks": [["61837.64", "1.6052"]], "timestamp": 1723161255000})
    assert (s.last_update_id, s.bids, s.asks, s.ts_event_ns) == (50093239218, [(6183763, 378826000)],
                                                                  [(6183764, 160520000)], 1723161255000 * 10**6)
    for bad in [None, [], {"bids": [], "asks": []}, {"lastUpdateId": -1, "bids": [], "asks": []},
                {"lastUpdateId": 2**62 + 1, "bids": [], "asks": []}, {"lastUpdateId": 1, "bids": {}, "asks": []},
                {"lastUpdateId": 1, "bids": [["1"]], "asks": []}, {"lastUpdateId": 1, "bids": [["x", "1"]], "asks": []},
                {"lastUpdateId": 1, "bids": [], "asks": [], "timestamp": "1"}, {"lastUpdateId": True, "bids": [],
                                                                                 "asks": []}]:
        with pytest.raises(MalformedLine):
            FAST.snapshot_from(0, bad)


def test_decoder_needs_a_grid_and_a_symbol():
    with pytest.raises(TypeError):
        MexcDecoder(None, "BTCUSDT")
    with pytest.raises(TypeError):
        MexcDecoder(INST.grid, None)
