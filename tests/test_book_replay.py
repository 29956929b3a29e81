"""L2Book on the real Binance recordings: sync counts, never crossed, and top of book vs bookTicker.

Ground truth: ``bookTicker.u`` shares the depth stream's update-id sequence, so for every bookTicker whose ``u``
equals the final ``u`` of an applied depth event, the book's best bid/ask (price and quantity) right after that
event must equal the bookTicker (data/README.md, from the shared data notes). A bookTicker can arrive before
its depth event, so the book's top is recorded per applied ``u`` and matched at the end.
"""
import pytest

from mmcore.reference.book import ReferenceL2Book
from mmcore.venues.binance.recording import ReplayReader
from mmcore_ext.book import (APPLIED, ASK, BID, BUFFERED, DEFAULT_WINDOW_TICKS, GAP, STALE, SYNCED, L2Book,
                             sync_rule_for_market)
from mmcore_ext.events import BookTicker, DepthDiff, DepthSnapshot

from datafiles import SPOT_FILE, USDM_2023_FILE, USDM_FILE

# Expected figures from the data READMEs (checks run on the recordings, independent of this code).
CASES = [
    pytest.param(USDM_FILE, "binance_usdm", 4, 6547, 629, id="usdm_20240808"),
    pytest.param(SPOT_FILE, "binance_spot", 2, 3449, 564, id="spot_20240808"),
    pytest.param(USDM_2023_FILE, "binance_usdm", 0, 4322, 310, id="usdm_20230404"),
]


def replay(path, book_cls, **kwargs):
    """Run a recording through a book; return the book, per-u tops after applied events, tickers, diff count."""
    reader = ReplayReader(path)
    book = book_cls(sync_rule_for_market(reader.market), **kwargs)
    top_after = {}
    tickers = []
    n_diffs = n_pre_snapshot = 0
    seen_snapshot = False
    for ev in reader:
        t = type(ev)
        if t is DepthDiff:
            n_diffs += 1
            n_pre_snapshot += not seen_snapshot
            outcome = book.apply_diff(ev)
            assert outcome != GAP, f"gap at U={ev.first_update_id} u={ev.final_update_id}"
            if outcome == APPLIED:
                assert not book.is_crossed(), f"crossed after u={ev.final_update_id}"
                top_after[ev.final_update_id] = (book.best_bid_px(), book.best_bid_qty(),
                                                 book.best_ask_px(), book.best_ask_qty())
            else:
                assert outcome in (BUFFERED, STALE)
        elif t is DepthSnapshot:
            assert not seen_snapshot, "one REST snapshot per recording"
            seen_snapshot = True
            assert book.load_snapshot(ev) == SYNCED
        elif t is BookTicker:
            tickers.append(ev)
    assert reader.malformed == 0
    return book, top_after, tickers, n_diffs, n_pre_snapshot


@pytest.mark.parametrize("window", [64, DEFAULT_WINDOW_TICKS])
@pytest.mark.parametrize("path, market, expect_stale, expect_applied, expect_matches", CASES)
def test_real_recording_syncs_without_gaps_and_top_of_book_matches_book_ticker(
        path, market, expect_stale, expect_applied, expect_matches, window):
    # window 64: the top of book keeps leaving the window, so most events also re-centre it
    book, top_after, tickers, n_diffs, n_pre_snapshot = replay(path, L2Book, window_ticks=window)
    assert book.sync_rule == sync_rule_for_market(market)
    assert book.synced and book.gaps == 0 and book.crossed == 0 and book.pending == 0
    assert book.stale == expect_stale and book.applied == expect_applied
    assert book.buffered == n_pre_snapshot and book.buffer_dropped == 0
    assert book.applied + book.stale == n_diffs        # every diff was applied or dropped as stale
    assert book.n_levels(BID) > 0 and book.n_levels(ASK) > 0

    compared = [tk for tk in tickers if tk.update_id in top_after]
    mismatches = [(tk, top_after[tk.update_id]) for tk in compared
                  if top_after[tk.update_id] != (tk.bid_px, tk.bid_qty, tk.ask_px, tk.ask_qty)]
    assert len(compared) == expect_matches
    assert mismatches == []


@pytest.mark.parametrize("window", [64, DEFAULT_WINDOW_TICKS])
def test_reference_book_reaches_the_same_final_state_on_real_spot_recording(window):
    book, top_c, _, _, _ = replay(SPOT_FILE, L2Book, window_ticks=window)
    reference, top_r, _, _, _ = replay(SPOT_FILE, ReferenceL2Book)
    assert top_c == top_r
    assert book.levels(BID) == reference.levels(BID) and book.levels(ASK) == reference.levels(ASK)
    assert book.recenters > 2             # the windows followed the market (2 = placed at the snapshot)
    assert (book.applied, book.stale, book.last_update_id) == (reference.applied, reference.stale,
                                                               reference.last_update_id)
