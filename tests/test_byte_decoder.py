"""The byte path of the Binance decoder (mmcore_ext.binance_codec) against the orjson path: the same event, or
the same MalformedLine, for every line of every bundled real recording (data/, provenance in data/README.md), for
generated frames (hypothesis: field orders, extreme and off-grid numbers, whitespace, escapes, duplicates,
other symbols and streams) and for mutated real lines (byte flips, cuts, insertions). Synthetic frames here are
labelled: they test decoding, not market behaviour."""
import gzip
import random

import pytest
from hypothesis import given, settings, strategies as st

from mmcore.instruments import load_instrument
from mmcore.venues.binance.recording import BinanceDecoder
from mmcore_ext.binance_codec import MalformedLine
from mmcore_ext.events import BookTicker, DepthDiff, DepthSnapshot, Trade

from datafiles import ROOT

MARKETS = ROOT / "config" / "markets"
FILES = [("binance_usdm", "BTCUSDT", "usdm_btcusdt_20240808.gz"), ("binance_spot", "BTCUSDT", "spot_btcusdt_20240808.gz"),
         ("binance_usdm", "ETHUSDT", "usdm_ethusdt_20240808.gz"), ("binance_spot", "ETHUSDT", "spot_ethusdt_20240808.gz"),
         ("binance_usdm", "BTCUSDT", "usdm_btcusdt_20230404.dat.gz")]


def decoders(market, symbol):
    inst = load_instrument(market, symbol, MARKETS / f"{market}.json")
    fast, slow = BinanceDecoder(inst), BinanceDecoder(inst)
    slow.byte_path = False
    return fast, slow


def outcome(dec, raw, frame=False):
    """(type, fields...) of the event, None, or ("MalformedLine", message)."""
    try:
        ev = dec.decode_frame(7, raw) if frame else dec.decode(raw)
    except MalformedLine as exc:
        return ("MalformedLine", str(exc))
    if ev is None:
        return None
    t = type(ev)
    if t is DepthDiff:
        return (t, ev.ts_local_ns, ev.ts_event_ns, ev.first_update_id, ev.final_update_id, ev.prev_final_update_id,
                ev.bids, ev.asks)
    if t is DepthSnapshot:
        return (t, ev.ts_local_ns, ev.ts_event_ns, ev.last_update_id, ev.bids, ev.asks)
    if t is Trade:
        return (t, ev.ts_local_ns, ev.ts_event_ns, ev.trade_id, ev.price, ev.qty, ev.side)
    assert t is BookTicker
    return (t, ev.ts_local_ns, ev.ts_event_ns, ev.update_id, ev.bid_px, ev.bid_qty, ev.ask_px, ev.ask_qty)


@pytest.mark.parametrize("market, symbol, name", FILES)
def test_every_line_of_every_recording_decodes_the_same_on_both_paths(market, symbol, name):
    fast, slow = decoders(market, symbol)
    n = 0
    with gzip.open(ROOT / "data" / name) as fh:
        for raw in fh:
            assert outcome(fast, raw) == outcome(slow, raw), raw[:200]
            n += 1
    assert n > 1000
    assert fast.byte_path_hits > 0.99 * n                   # the canonical frames do take the byte path
    assert slow.byte_path_hits == 0


def _sample_lines(name, k=300, seed=11):
    with gzip.open(ROOT / "data" / name) as fh:
        lines = fh.readlines()
    rng = random.Random(seed)
    return [lines[i] for i in sorted(rng.sample(range(len(lines)), k))]


USDM = _sample_lines("usdm_btcusdt_20240808.gz")
SPOT = _sample_lines("spot_btcusdt_20240808.gz")
BYTES = [b'"', b"\\", b" ", b",", b":", b"{", b"}", b"[", b"]", b"0", b"9", b"-", b".", b"e", b"\n", b"\x00", b"\xff",
         b"true", b"null", b'"x":1', b"\\u0030"]


@settings(max_examples=1500, deadline=None)
@given(which=st.integers(0, 2 * 300 - 1), pos=st.floats(0, 1), cut=st.booleans(), junk=st.sampled_from(BYTES),
       drop=st.integers(0, 3))
def test_mutated_real_lines_decode_the_same(which, pos, cut, junk, drop):
    market, raw = ("binance_usdm", USDM[which]) if which < 300 else ("binance_spot", SPOT[which - 300])
    fast, slow = DEC[market]
    i = int(pos * (len(raw) - 1))
    mutated = raw[:i] if cut else raw[:i] + junk + raw[i + drop:]
    assert outcome(fast, mutated) == outcome(slow, mutated)
    sp = mutated.find(b" ")
    if sp > 0:                                             # the live path: the frame without its timestamp
        assert outcome(fast, mutated[sp + 1:], True) == outcome(slow, mutated[sp + 1:], True)


DEC = {"binance_usdm": decoders("binance_usdm", "BTCUSDT"), "binance_spot": decoders("binance_spot", "BTCUSDT")}

_num = st.one_of(st.integers(-5, 2 ** 64), st.sampled_from([0, 1, 2 ** 62, 2 ** 62 + 1, 2 ** 63, 9223372036854, -1]))
_price = st.one_of(st.sampled_from(["61800.20", "61800.25", "0", "0.0", "-1.0", "1e5", "", "61800.2000000", " 1",
                                    "999999999999999999999", "61800.1\\u0030", "6180\u00e9"]),
                   st.decimals(min_value=0, max_value=10 ** 7, places=3).map(str))
_qty = st.one_of(st.sampled_from(["0.000", "0.001", "0.0005", "-0.001", "1000000000", "1.2.3", "0.001e0"]),
                 st.decimals(min_value=0, max_value=10 ** 4, places=4).map(str))


def _jstr(x):
    return '"' + x + '"'


@st.composite
def frames(draw):
    kind = draw(st.sampled_from(["depthUpdate", "trade", "aggTrade", "bookTicker", "spotTicker", "other"]))
    sym = draw(st.sampled_from(["BTCUSDT", "BTCUSDT", "ETHUSDT", ""]))
    fields = {"e": _jstr(kind), "E": str(draw(_num)), "s": _jstr(sym)}
    if kind == "depthUpdate":
        lv = st.lists(st.tuples(_price, _qty), max_size=4).map(
            lambda xs: "[" + ",".join(f'["{p}","{q}"]' for p, q in xs) + "]")
        fields.update(T=str(draw(_num)), U=str(draw(_num)), u=str(draw(_num)), b=draw(lv), a=draw(lv))
        if draw(st.booleans()):
            fields["pu"] = str(draw(_num))
    elif kind in ("trade", "aggTrade"):
        fields.update({"t" if kind == "trade" else "a": str(draw(_num)), "p": _jstr(draw(_price)),
                       "q": _jstr(draw(_qty)), "m": draw(st.sampled_from(["true", "false", "1", "null"])),
                       "T": str(draw(_num))})
    else:
        fields.update(u=str(draw(_num)), b=_jstr(draw(_price)), B=_jstr(draw(_qty)), a=_jstr(draw(_price)),
                      A=_jstr(draw(_qty)))
        if kind == "spotTicker":
            del fields["e"], fields["E"]
    keys = list(fields)
    if draw(st.booleans()):
        keys = draw(st.permutations(keys))
    if draw(st.integers(0, 9)) == 0 and keys:
        keys.append(keys[0])                               # a duplicate key
    if draw(st.integers(0, 9)) == 0 and keys:
        keys.remove(draw(st.sampled_from(keys)))           # a missing field
    sep = draw(st.sampled_from([",", ",", ",", ", "]))
    body = "{" + sep.join(f'"{k}":{fields[k]}' for k in keys) + "}"
    return ('{"stream":"btcusdt@x","data":' + body + "}").encode()


@settings(max_examples=3000, deadline=None)
@given(frame=frames(), market=st.sampled_from(["binance_usdm", "binance_spot"]))
def test_generated_frames_decode_the_same(frame, market):
    fast, slow = DEC[market]
    line = b"1723161255030314667 " + frame + b"\n"
    assert outcome(fast, line) == outcome(slow, line), line
    assert outcome(fast, frame, True) == outcome(slow, frame, True), frame


def test_the_frame_router_takes_the_byte_path_with_the_same_results():
    from mmcore_ext.binance_codec import FrameRouter
    fast, slow = decoders("binance_usdm", "BTCUSDT")
    eth_fast, eth_slow = decoders("binance_usdm", "ETHUSDT")
    rf, rs = FrameRouter({"BTCUSDT": fast, "ETHUSDT": eth_fast}), FrameRouter({"BTCUSDT": slow, "ETHUSDT": eth_slow})

    def routed(r, frame):
        try:
            out = r.route(5, frame)
        except MalformedLine as exc:
            return ("MalformedLine", str(exc))
        return None if out is None else (out[0], outcome(_Fixed(out[1]), b""))

    frames = [raw[raw.find(b" ") + 1:] for raw in USDM + _sample_lines("usdm_ethusdt_20240808.gz", 200)]
    frames += [f[:len(f) // 2] for f in frames[:50]] + [f.replace(b'"BTCUSDT"', b'"XRPUSDT"') for f in frames[:50]]
    for frame in frames:
        assert routed(rf, frame) == routed(rs, frame), frame[:200]
    assert fast.byte_path_hits + eth_fast.byte_path_hits > 400


class _Fixed:
    """A decoder stand-in whose decode returns a given event (to reuse outcome())."""

    def __init__(self, ev):
        self.ev = ev

    def decode(self, raw):
        return self.ev
