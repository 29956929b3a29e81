"""The frame codec of the live feed: ``decode_frame`` / ``event_of`` / ``snapshot_from`` on BinanceLineDecoder,
``aggTrade`` as a Trade, and the multi-symbol BinanceFrameRouter (hostile frames never raise anything but
MalformedLine). Real frames come from the bundled recordings; hostile ones are synthetic."""
import gzip
import random
import time

import orjson
import pytest

from mmcore.instruments import load_instrument
from mmcore.venues.binance.recording import BinanceDecoder
from mmcore.venues.binance.router import BinanceFrameRouter, PyFrameRouter
from mmcore_ext.binance_codec import MalformedLine
from mmcore_ext.events import BookTicker, DepthDiff, DepthSnapshot, Trade

from datafiles import ROOT

USDM = ROOT / "data" / "usdm_btcusdt_20240808.gz"
TS = 1_723_161_255_030_314_667


def frames(path, n):
    out = []
    with gzip.open(path, "rb") as fh:
        for i, raw in enumerate(fh):
            if i >= n:
                break
            sp = raw.index(b" ")
            out.append((int(raw[:sp]), raw[sp + 1:].rstrip(b"\n"), raw))
    return out


@pytest.fixture(scope="module")
def decs():
    return {s: BinanceDecoder(load_instrument("binance_usdm", s)) for s in ("BTCUSDT", "ETHUSDT")}


def test_decode_frame_equals_decode_of_the_recorded_line(decs):
    d = decs["BTCUSDT"]
    kinds = set()
    for ts, payload, line in frames(USDM, 3000):
        a, b = d.decode(line), d.decode_frame(ts, payload)
        assert type(a) is type(b)
        if a is None:
            continue
        kinds.add(type(a))
        assert a.ts_local_ns == b.ts_local_ns == ts
        if isinstance(a, Trade):
            assert (a.trade_id, a.price, a.qty, a.side) == (b.trade_id, b.price, b.qty, b.side)
        elif isinstance(a, (DepthDiff, DepthSnapshot)):
            assert a.bids == b.bids and a.asks == b.asks
    assert kinds >= {DepthDiff, Trade, BookTicker, DepthSnapshot}


def test_agg_trade_is_a_trade_with_the_aggregate_id(decs):
    d = decs["BTCUSDT"]
    f = {"stream": "btcusdt@aggTrade", "data": {"e": "aggTrade", "E": 1723161256322, "s": "BTCUSDT", "a": 77,
                                                 "p": "61800.30", "q": "0.006", "f": 1, "l": 2, "T": 1, "m": True}}
    t = d.decode_frame(TS, orjson.dumps(f))
    assert isinstance(t, Trade) and t.trade_id == 77 and t.side == -1 and t.qty == 6
    assert t.ts_event_ns == 1723161256322 * 10**6
    del f["data"]["a"]
    with pytest.raises(MalformedLine, match="'a'"):
        d.decode_frame(TS, orjson.dumps(f))


def test_snapshot_from_a_ws_api_depth_result(decs):
    d = decs["BTCUSDT"]
    s = d.snapshot_from(TS, {"lastUpdateId": 5, "bids": [["61800.20", "2.507"]], "asks": [["61800.30", "1.000"]]})
    assert isinstance(s, DepthSnapshot) and s.last_update_id == 5 and s.n_bids == 1 and s.n_asks == 1
    for bad in (None, [], "x", {"bids": [], "asks": []}, {"lastUpdateId": -1, "bids": [], "asks": []},
                {"lastUpdateId": 1, "bids": "x", "asks": []}, {"lastUpdateId": 1, "bids": [["a", "b"]], "asks": []},
                {"lastUpdateId": 1, "bids": [[]], "asks": []}, {"lastUpdateId": True, "bids": [], "asks": []},
                {"lastUpdateId": 1, "bids": [["1e400", "1"]], "asks": []},
                {"lastUpdateId": 2**70, "bids": [], "asks": []}):
        with pytest.raises(MalformedLine):
            d.snapshot_from(TS, bad)


@pytest.mark.parametrize("cls", [BinanceFrameRouter, PyFrameRouter])
def test_router_dispatches_by_symbol_and_ignores_unknown(decs, cls):
    r = cls(decs)
    btc = frames(USDM, 60)
    out = [r.route(ts, p) for ts, p, _ in btc if p.startswith(b'{"stream"')]
    assert out and all(o is None or o[0] == "BTCUSDT" for o in out)
    eth = orjson.dumps({"stream": "ethusdt@trade", "data": {"e": "trade", "E": 1, "s": "ETHUSDT", "t": 3,
                                                            "p": "2500.01", "q": "0.001", "m": False}})
    sym, ev = r.route(TS, eth)
    assert sym == "ETHUSDT" and isinstance(ev, Trade) and ev.price == 250001
    assert r.route(TS, b'{"result":null,"id":1}') is None
    assert r.route(TS, orjson.dumps({"stream": "x", "data": {"s": "XRPUSDT", "e": "trade"}})) is None
    assert r.route(TS, orjson.dumps({"stream": "x", "data": {"s": "BTCUSDT", "e": "markPriceUpdate"}})) is None


HOSTILE = [b"", b"{", b"[]", b"null", b"1", b'"x"', b"\xff\xfe", b'{"data": 1}', b'{"data": []}',
           b'{"data": {"s": 1}}', b'{"data": {"s": "BTCUSDT", "e": "trade"}}',
           b'{"data": {"s": "BTCUSDT", "e": "depthUpdate", "E": 1, "U": 5, "u": 4, "b": [], "a": []}}',
           b'{"data": {"s": "BTCUSDT", "e": "depthUpdate", "E": 1, "U": 1, "u": 4, "b": [[1]], "a": []}}',
           b'{"data": {"s": "BTCUSDT", "e": "depthUpdate", "E": 1e400, "U": 1, "u": 4, "b": [], "a": []}}',
           b'{"data": {"s": "BTCUSDT", "e": "trade", "E": 1, "t": 1, "p": "0", "q": "1", "m": false}}',
           b'{"data": {"s": "BTCUSDT", "e": "trade", "E": 1, "t": 1, "p": "1", "q": "1", "m": 0}}',
           b'{"data": {"s": "BTCUSDT", "e": "aggTrade", "E": 1, "a": "1", "p": "1", "q": "1", "m": true}}',
           b'{"data": {"s": "BTCUSDT", "u": 1, "b": "1e9999", "B": "1", "a": "1", "A": "1"}}',
           b'{"data": {"s": "BTCUSDT", "e": "bookTicker", "u": 1, "b": null, "B": "1", "a": "1", "A": "1"}}',
           b'{"data": {"s": "BTCUSDT", "e": "depthUpdate", "E": 1, "U": 1, "u": 2, "b": {"a": 1}, "a": []}}',
           b'{"stream":"btcusdt@trade","data":{"s":"BTCUSDT","e":"trade","E":1,"t":99999999999999999999,'
           b'"p":"1","q":"1","m":true}}']


@pytest.mark.parametrize("payload", HOSTILE)
def test_hostile_frames_raise_only_malformed(decs, payload):
    r, p = BinanceFrameRouter(decs), PyFrameRouter(decs)
    for call in (lambda: r.route(TS, payload), lambda: p.route(TS, payload),
                 lambda: decs["BTCUSDT"].decode_frame(TS, payload)):
        try:
            call()
        except MalformedLine:
            pass


def test_random_mutations_raise_only_malformed(decs):
    r, py = BinanceFrameRouter(decs), PyFrameRouter(decs)
    rnd = random.Random(9)
    base = [p for _, p, _ in frames(USDM, 400)]
    n_bad = 0
    for _ in range(4000):
        p = bytearray(rnd.choice(base))
        for _ in range(rnd.randint(1, 4)):
            i = rnd.randrange(len(p))
            p[i] = rnd.choice(b'0123456789-.e",:{}[]\\ x\x00\xff')
        outs = []
        for router in (r, py):
            try:
                got = router.route(TS, bytes(p))
                outs.append(None if got is None else (got[0], type(got[1])))
            except MalformedLine:
                outs.append("malformed")
        assert outs[0] == outs[1]                   # the compiled and the Python router agree
        n_bad += outs[0] == "malformed"
    assert n_bad > 0


def test_route_cost(decs, capsys):
    """Per-frame route+decode cost against orjson.loads alone on the same frames (printed for the report)."""
    r, py = BinanceFrameRouter(decs), PyFrameRouter(decs)
    fs = [(ts, p) for ts, p, _ in frames(USDM, 20000) if p.startswith(b'{"stream"')]
    loads = orjson.loads
    best_parse = best_route = best_py = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for ts, p in fs:
            loads(p)
        t1 = time.perf_counter()
        route = r.route
        for ts, p in fs:
            route(ts, p)
        t2 = time.perf_counter()
        route = py.route
        for ts, p in fs:
            route(ts, p)
        t3 = time.perf_counter()
        best_parse, best_route, best_py = min(best_parse, t1 - t0), min(best_route, t2 - t1), min(best_py, t3 - t2)
    per_parse, per_route, per_py = (x / len(fs) * 1e6 for x in (best_parse, best_route, best_py))
    with capsys.disabled():
        print(f"\n[route cost] {len(fs)} USDM frames: orjson.loads {per_parse:.2f} us/frame, "
              f"route+decode {per_route:.2f} us/frame compiled, {per_py:.2f} Python")
    assert per_route < per_parse * 6 + 5
