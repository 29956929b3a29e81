"""The MEXC book rule (L2Book(SYNC_MEXC): REST snapshot lastUpdateId, then aggre depth fromVersion/toVersion
continuity, https://www.mexc.com/api-docs/spot-v3/websocket-market-streams/how-to-properly-maintain-a-local-copy-of-the-order-book)
on synthetic diffs (labelled: they test the rule, not the market), and the book kept from the converted frames
(CONVERTED FROM BINANCE, NOT MEXC DATA, tests/data/mexc/README.md) against the Binance original replayed through
the Binance decoder and SYNC_SPOT: the same best bid / ask (price and quantity) and update id after every depth
event, the same trades and bookTickers."""
import pytest

from mmcore.instruments import load_instrument
from mmcore.venues.binance.recording import ReplayReader
from mmcore.venues.mexc import convert
from mmcore_ext.book import (APPLIED, AWAITING_SNAPSHOT, BUFFERED, GAP, STALE, SYNC_MEXC, SYNC_SPOT, SYNCED, L2Book,
                             sync_rule_for_market)
from mmcore_ext.events import BookTicker, DepthDiff, DepthSnapshot, Trade
from mmcore_ext.mexc_codec import MexcDecoder

from datafiles import ROOT, SPOT_FILE

SAMPLE = ROOT / "tests" / "data" / "mexc" / "spot_btcusdt_20240808_head4000.mexc.gz"


def snap(v, bid=100, ask=101):
    return DepthSnapshot.from_ticks(v, [(bid, 5)], [(ask, 5)])


def diff(fv, tv, bids=(), asks=()):
    return DepthDiff.from_ticks(fv, tv, list(bids), list(asks))


def test_market_name_and_constructor():
    assert sync_rule_for_market("mexc_spot") == SYNC_MEXC
    assert sync_rule_for_market("binance_spot") == SYNC_SPOT         # untouched
    assert "mexc" in repr(L2Book(SYNC_MEXC))
    with pytest.raises(ValueError):
        L2Book(7)


def test_in_order_diffs_apply_and_chain():
    b = L2Book(SYNC_MEXC)
    assert b.apply_diff(diff(11, 12, bids=[(99, 1)])) == BUFFERED
    assert b.load_snapshot(snap(10)) == SYNCED and b.last_update_id == 12 and b.qty_at(1, 99) == 1
    assert b.apply_diff(diff(13, 15, asks=[(101, 0), (102, 3)])) == APPLIED
    assert b.apply_diff(diff(16, 16, bids=[(100, 7)])) == APPLIED
    assert (b.best_bid_px(), b.best_bid_qty(), b.best_ask_px(), b.last_update_id) == (100, 7, 102, 16)
    assert b.gaps == 0 and b.applied == 3


def test_first_diff_may_straddle_the_snapshot_and_fromversion_next_is_applied():
    b = L2Book(SYNC_MEXC)
    b.apply_diff(diff(5, 12, bids=[(98, 2)]))                        # fromVersion <= lastUpdateId + 1 <= toVersion
    assert b.load_snapshot(snap(10)) == SYNCED and b.last_update_id == 12
    c = L2Book(SYNC_MEXC)
    c.apply_diff(diff(11, 11))                                       # fromVersion == lastUpdateId + 1 (step 6)
    assert c.load_snapshot(snap(10)) == SYNCED and c.last_update_id == 11 and c.gaps == 0


def test_stale_diffs_before_the_snapshot_are_dropped():
    b = L2Book(SYNC_MEXC)
    for fv, tv in [(1, 4), (5, 9), (10, 10)]:                        # toVersion <= lastUpdateId: step 5
        assert b.apply_diff(diff(fv, tv, bids=[(50, 9)])) == BUFFERED
    b.apply_diff(diff(11, 13))
    assert b.load_snapshot(snap(10)) == SYNCED
    assert b.stale == 3 and b.applied == 1 and b.qty_at(1, 50) == 0 and b.last_update_id == 13


def test_snapshot_older_than_the_first_buffered_diff_is_a_gap():
    b = L2Book(SYNC_MEXC)
    b.apply_diff(diff(20, 25))
    assert b.load_snapshot(snap(10)) == AWAITING_SNAPSHOT and b.gaps == 1       # step 4 / 6: fetch again
    assert b.load_snapshot(snap(22)) == SYNCED and b.last_update_id == 25         # the diff was kept for it


def test_gap_clears_the_book_and_resyncs():
    b = L2Book(SYNC_MEXC)
    b.load_snapshot(snap(10))
    assert b.apply_diff(diff(11, 12)) == APPLIED
    assert b.apply_diff(diff(14, 15, bids=[(100, 1)])) == GAP                    # 13 missing
    assert b.state == AWAITING_SNAPSHOT and b.gaps == 1 and b.best_bid_px() != 100
    assert b.apply_diff(diff(16, 17, asks=[(103, 4)])) == BUFFERED
    assert b.load_snapshot(snap(15, bid=99)) == SYNCED                           # resync as on Binance
    assert (b.last_update_id, b.best_bid_px(), b.qty_at(-1, 103)) == (17, 99, 4)
    assert b.apply_diff(diff(17, 17)) == STALE and b.apply_diff(diff(16, 18)) == GAP   # overlap is a gap


def _binance_trace():
    book, tops, trades, tickers = L2Book(SYNC_SPOT), [], [], []
    for ev in ReplayReader(SPOT_FILE):
        if type(ev) is DepthSnapshot:
            book.load_snapshot(ev)
        elif type(ev) is DepthDiff:
            book.apply_diff(ev)
        elif type(ev) is Trade:
            trades.append((ev.trade_id, ev.price, ev.qty, ev.side))
            continue
        elif type(ev) is BookTicker:
            tickers.append((ev.update_id, ev.bid_px, ev.bid_qty, ev.ask_px, ev.ask_qty))
            continue
        else:
            continue
        tops.append((ev.ts_local_ns, book.state, book.last_update_id, book.best_bid_px(), book.best_bid_qty(),
                     book.best_ask_px(), book.best_ask_qty()))
    return tops, trades, tickers, book


def _mexc_trace(path):
    dec = MexcDecoder(load_instrument("binance_spot", "BTCUSDT").grid, "BTCUSDT")
    book, tops, trades, tickers = L2Book(SYNC_MEXC), [], [], []
    for ts, kind, payload in convert.read_frames(path):
        ev = dec.snapshot_from(ts, payload) if kind == "rest" else dec.decode_frame(ts, payload)
        if type(ev) is DepthSnapshot:
            book.load_snapshot(ev)
        elif type(ev) is DepthDiff:
            book.apply_diff(ev)
        elif type(ev) is tuple:
            trades.extend((t.trade_id, t.price, t.qty, t.side) for t in ev)
            continue
        else:
            tickers.append((ev.update_id, ev.bid_px, ev.bid_qty, ev.ask_px, ev.ask_qty))
            continue
        tops.append((ev.ts_local_ns, book.state, book.last_update_id, book.best_bid_px(), book.best_bid_qty(),
                     book.best_ask_px(), book.best_ask_qty()))
    return tops, trades, tickers, book


@pytest.fixture(scope="module")
def binance():
    return _binance_trace()


def test_converted_whole_recording_gives_the_binance_book_at_every_depth_event(binance, tmp_path):
    dst = tmp_path / "spot.mexc.gz"
    convert.convert_file(SPOT_FILE, dst)
    tops, trades, tickers, book = _mexc_trace(dst)
    b_tops, b_trades, b_tickers, b_book = binance
    assert len(tops) == len(b_tops) > 3000 and tops == b_tops
    assert trades == b_trades and len(trades) > 9000
    assert tickers == b_tickers and len(tickers) > 28000
    assert book.applied == b_book.applied > 3000 and book.gaps == b_book.gaps == 0 and book.stale == b_book.stale


def test_committed_sample_gives_the_binance_book_on_its_span(binance):
    tops, trades, tickers, book = _mexc_trace(SAMPLE)
    b_tops, b_trades, b_tickers, _ = binance
    assert len(tops) > 300 and tops == b_tops[:len(tops)]
    assert book.state == SYNCED and book.applied > 300
    assert trades == b_trades[:len(trades)] and len(trades) > 500
    assert tickers == b_tickers[:len(tickers)]


def test_sample_is_reproducible_from_the_documented_command(tmp_path):
    dst = tmp_path / "head.mexc.gz"
    convert.main([str(SPOT_FILE), str(dst), "--lines", "4000"])
    assert dst.read_bytes() == SAMPLE.read_bytes()


def test_converted_file_is_labelled_and_reader_refuses_damage(tmp_path):
    import gzip
    with gzip.open(SAMPLE, "rt") as fh:
        assert "CONVERTED FROM BINANCE, NOT MEXC DATA" in fh.readline()
    for body, what in [(b"no header\n", "header"),
                       (convert.MAGIC.encode() + b"\n1723161253937085768 pb !!!\n", "base64"),
                       (convert.MAGIC.encode() + b"\n17231612 pb AAAA\n", "19-digit"),
                       (convert.MAGIC.encode() + b"\n1723161253937085768 rest {\n", "JSON"),
                       (convert.MAGIC.encode() + b"\n1723161253937085768 xx AAAA\n", "kind")]:
        p = tmp_path / "f.gz"
        p.write_bytes(gzip.compress(body))
        with pytest.raises(ValueError, match=what):
            list(convert.read_frames(p))
