"""The emulated market: derived depth streams reproduce the raw book at every window end, aggTrade from trade,
snapshots consistent with the streams (Binance's sync procedures), bad recording lines skipped and counted, a
diff that does not chain applied on top (the book stays the exchange's truth). Real recordings (data/README.md);
mutations are labelled synthetic."""
import asyncio
import collections

import orjson
import pytest

from mmcore.instruments import load_instrument
from mmcore.sim.emulator.market import Market, RecordingSource
from mmcore.venues.binance.recording import BinanceDecoder
from mmcore_ext.book import ASK, BID, L2Book, sync_rule_for_market

from emukit import SPOT_BTC, USDM_BTC, head, pw_connect, running, until


def _replay(path, market, on_first=None):
    """Replay ``path`` offline: ``(frames [(stream, combined bytes)], the depth answer taken at the first frame)``."""
    inst = load_instrument(market, "BTCUSDT")
    counters = collections.Counter(malformed=0, bad_lines=0, ignored=0, data_errors=0)
    frames = []
    first = {}

    def publish(sm, name, combined, data):
        if not first:
            first["snap"] = sm.snapshot(None)
            return
        frames.append((name, combined))

    async def bp():
        pass
    m = Market(market, [RecordingSource(path, inst, counters)], 0, publish, lambda sm, t: None, bp, counters)
    m.start()
    asyncio.run(m.run())
    return inst, frames, first["snap"], m, counters


def _book_from(inst, snap, market):
    b = L2Book(sync_rule_for_market(market))
    dec = BinanceDecoder(inst)
    b.load_snapshot(dec.decode(b"1723161255030314667 " + orjson.dumps(snap)))
    return b, dec


@pytest.mark.parametrize("market,path,lines,raw,derived", [
    ("binance_usdm", USDM_BTC, 25000, "btcusdt@depth@0ms", ["btcusdt@depth@100ms", "btcusdt@depth",
                                                            "btcusdt@depth@500ms"]),
    ("binance_spot", SPOT_BTC, 25000, "btcusdt@depth@100ms", ["btcusdt@depth"]),
])
def test_derived_depth_streams_reproduce_the_raw_book_at_every_window_end(tmp_path, market, path, lines, raw,
                                                                            derived):
    inst, frames, snap, _, _ = _replay(head(path, tmp_path / "rec.gz", lines), market)
    raw_books, pending, books = {}, {}, {}
    for s in derived:
        raw_books[s], dec = _book_from(inst, snap, market)
        books[s], _ = _book_from(inst, snap, market)
        pending[s] = collections.deque()
    checked = collections.Counter()
    for name, body in frames:
        if name == raw:
            d = dec.decode(b"1723161255030314667 " + body)
            for s in derived:
                pending[s].append(d)
        elif name in books:
            d = dec.decode(b"1723161255030314667 " + body)
            ms = {"btcusdt@depth@100ms": 100, "btcusdt@depth": 250 if market == "binance_usdm" else 1000,
                  "btcusdt@depth@500ms": 500}[name]
            assert orjson.loads(body)["data"]["E"] // ms >= 0
            books[name].apply_diff(d)
            a = raw_books[name]
            while a.last_update_id < d.final_update_id and pending[name]:
                a.apply_diff(pending[name].popleft())
            b = books[name]
            assert b.synced and a.synced and b.last_update_id == a.last_update_id
            assert b.levels(BID) == a.levels(BID) and b.levels(ASK) == a.levels(ASK), name
            checked[name] += 1
    for s in derived:
        assert books[s].gaps == 0 and raw_books[s].gaps == 0
        assert checked[s] > 20, (s, checked[s])
    n_raw = sum(1 for n, _ in frames if n == raw)
    assert checked["btcusdt@depth@500ms" if market == "binance_usdm" else "btcusdt@depth"] < n_raw / 2


def test_agg_trade_is_one_per_trade_with_a_equal_t(tmp_path):
    _, frames, _, _, _ = _replay(head(USDM_BTC, tmp_path / "rec.gz", 3000), "binance_usdm")
    trades = [orjson.loads(b)["data"] for n, b in frames if n == "btcusdt@trade"]
    aggs = [orjson.loads(b)["data"] for n, b in frames if n == "btcusdt@aggTrade"]
    assert len(trades) == len(aggs) > 100
    for t, a in zip(trades, aggs):
        assert (a["a"], a["f"], a["l"], a["p"], a["q"], a["m"], a["T"]) == (t["t"], t["t"], t["t"], t["p"], t["q"],
                                                                             t["m"], t["T"])


@pytest.mark.parametrize("path,stream,rest", [(USDM_BTC, "btcusdt@depth@0ms", "/fapi/v1/depth"),
                                              (USDM_BTC, "btcusdt@depth@100ms", "/fapi/v1/depth"),
                                              (SPOT_BTC, "btcusdt@depth@100ms", "/api/v3/depth"),
                                              (SPOT_BTC, "btcusdt@depth", "/api/v3/depth")])
def test_rest_snapshot_mid_stream_syncs_by_binance_rules_and_ends_equal_to_the_emulators_book(tmp_path, path,
                                                                                              stream, rest):
    import aiohttp
    market = "binance_usdm" if "usdm" in path.name else "binance_spot"
    data = head(path, tmp_path / f"{path.name}", 6000)

    async def scenario():
        async with running([data], tmp_path, speed=30, start="paused") as (emu, port):
            t, c = await pw_connect(f"ws://127.0.0.1:{port}/stream?streams={stream}")
            emu.market.resume()
            await until(lambda: len(c.frames) >= 5, 20, "a few diffs")
            async with aiohttp.ClientSession() as s:
                async with s.get(f"http://127.0.0.1:{port}{rest}?symbol=BTCUSDT&limit=1000") as r:
                    snap = await r.json()
                n_before = len(c.frames)
                await until(lambda: emu.market.done, 30, "the end")
                await until(lambda: all(x.out_bytes == 0 for x in emu.conns["market"]), 5, "the frames sent")
                sent = sum(x.sent for x in emu.conns["market"])
                await until(lambda: len(c.frames) >= sent, 10, "every frame sent read by the client")
                async with s.get(f"http://127.0.0.1:{port}/_emulator/book?symbol=BTCUSDT&limit=0") as r:
                    final = await r.json()
            t.disconnect()
            return c.frames, n_before, snap, final

    frames, n_before, snap, final = asyncio.run(scenario())
    inst = load_instrument(market, "BTCUSDT")
    dec = BinanceDecoder(inst)
    book = L2Book(sync_rule_for_market(market))
    diffs = [dec.decode(b"1723161255030314667 " + f) for f in frames]
    for d in diffs[:n_before]:                     # buffered while the snapshot was fetched
        book.apply_diff(d)
    book.load_snapshot(dec.decode(b"1723161255030314667 " + orjson.dumps(snap)))
    lid = snap["lastUpdateId"]
    after = [d for d in diffs if (d.final_update_id > lid if market == "binance_spot" else d.final_update_id >= lid)]
    first = after[0]
    if market == "binance_spot":
        assert first.first_update_id <= snap["lastUpdateId"] + 1 <= first.final_update_id
    else:
        assert first.first_update_id <= snap["lastUpdateId"] <= first.final_update_id
    for d in diffs[n_before:]:
        book.apply_diff(d)
    assert book.synced and book.gaps == 0
    fp, fq = inst.format_price, inst.format_qty
    # the snapshot holds 1000 levels a side: levels beyond it stay unknown (Binance's caveat), so the top 500
    assert [[fp(p), fq(q)] for p, q in book.levels(BID, 500)] == final["bids"][:500]
    assert [[fp(p), fq(q)] for p, q in book.levels(ASK, 500)] == final["asks"][:500]
    assert book.last_update_id == final["lastUpdateId"]


def _mutated(tmp_path, name, lines, mutate):
    return head(USDM_BTC, tmp_path / name, lines, mutate)


def test_bad_recording_lines_are_skipped_counted_and_a_missing_diff_is_bridged(tmp_path, caplog):
    # synthetic mutations of the real file: line 200 not JSON, line 201 a time jump of 2 h, the first depth diff
    # from line 400 on removed (replaced by a malformed line)
    state = {"cut": None}

    def mutate(i, raw):
        if i == 199:
            return b"1723161255030314667 {not json\n"
        if i == 200:
            sp = raw.index(b" ")
            return b"%d" % (int(raw[:sp]) + 7_200_000_000_000) + raw[sp:]
        if i >= 399 and state["cut"] is None and b"depthUpdate" in raw:
            state["cut"] = i + 1
            return b"garbage line\n"
        return raw
    path = _mutated(tmp_path, "bad.gz", 3000, mutate)
    _, frames, _, m, counters = _replay(path, "binance_usdm")
    assert counters["malformed"] == 2 and counters["bad_lines"] == 1
    sm = m.symbols["BTCUSDT"]
    assert sm.bridged == 1 and sm.book.synced and not sm.book.is_crossed()
    assert any("line 200 skipped" in r.message for r in caplog.records)
    assert any("line 201 skipped" in r.message and "time" in r.message for r in caplog.records)
    # the stream shows the hole as a pu gap, once
    pus = [orjson.loads(b)["data"] for n, b in frames if n == "btcusdt@depth@0ms"]
    breaks = sum(1 for a, b in zip(pus, pus[1:]) if b["pu"] != a["u"])
    assert breaks == 1


def test_a_damaged_gzip_ends_that_recording_only(tmp_path, caplog):
    good = head(USDM_BTC, tmp_path / "usdm_btc.gz", 2000)
    bad = tmp_path / "usdm_eth.gz"
    eth = head(USDM_BTC.parent / "usdm_ethusdt_20240808.gz", tmp_path / "eth_full.gz", 2000)
    bad.write_bytes(eth.read_bytes()[: len(eth.read_bytes()) // 2])   # truncated (synthetic damage)

    async def scenario():
        async with running([good, bad], tmp_path, speed=0) as (emu, port):
            await until(lambda: emu.market.done, 20, "the end")
            return emu.status()
    st = asyncio.run(scenario())
    assert st["data_errors"] == 1 and st["lines"] > 2000 and st["failure"] is None
    assert any("truncated" in r.message for r in caplog.records)
