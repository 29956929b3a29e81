"""L2Book (compiled) against the pure-Python reference, and the Binance sync procedure by hand-written cases.

Sync rules under test (Binance "How to manage a local order book correctly"):
spot https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams#how-to-manage-a-local-order-book-correctly
USDⓈ-M https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams/How-to-manage-a-local-order-book-correctly
"""
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmcore.reference import book as ref
from mmcore_ext import book as B
from mmcore_ext.book import (APPLIED, ASK, AWAITING_SNAPSHOT, BID, BUFFERED, GAP, STALE, SYNC_SPOT, SYNC_USDM,
                             SYNCED, L2Book, sync_rule_for_market)
from mmcore_ext.events import DepthDiff, DepthSnapshot

RULES = (SYNC_SPOT, SYNC_USDM)


def snap(last_update_id, bids=(), asks=(), ts=0):
    return DepthSnapshot.from_ticks(last_update_id, bids, asks, ts_local_ns=ts)


def diff(U, u, bids=(), asks=(), pu=-1, ts=0):
    return DepthDiff.from_ticks(U, u, bids, asks, prev_final_update_id=pu, ts_local_ns=ts)


def synced_book(rule, last_update_id=100, bids=((100, 5), (99, 3)), asks=((101, 4), (102, 6))):
    """A book synced on a snapshot and one applied straddling event (so the chain rule is in force)."""
    book = L2Book(rule)
    assert book.load_snapshot(snap(last_update_id, bids, asks)) == SYNCED
    # straddles for both rules: spot U <= L+1 <= u, USDⓈ-M U <= L <= u
    assert book.apply_diff(diff(last_update_id, last_update_id + 1, pu=last_update_id - 1)) == APPLIED
    return book


def state_of(book, prices=range(0, 45)):
    """Everything observable about a book, for comparing the compiled book with the reference."""
    return {
        "state": book.state, "synced": book.synced, "last_update_id": book.last_update_id,
        "ts_local_ns": book.ts_local_ns, "applied": book.applied, "buffered": book.buffered,
        "stale": book.stale, "stale_snapshots": book.stale_snapshots,
        "gaps": book.gaps, "crossed": book.crossed, "buffer_dropped": book.buffer_dropped,
        "pending": book.pending,
        "bids": book.levels(BID), "asks": book.levels(ASK), "bids3": book.levels(BID, 3),
        "n": (book.n_levels(BID), book.n_levels(ASK)),
        "best": (book.best_bid_px(), book.best_bid_qty(), book.best_ask_px(), book.best_ask_qty()),
        "mid_x2": book.mid_x2(), "spread": book.spread(), "is_crossed": book.is_crossed(),
        "depth": [(book.depth_qty(BID, k), book.depth_qty(ASK, k)) for k in (0, 1, 2, 5, 1000)],
        "qty_at": [(book.qty_at(BID, p), book.qty_at(ASK, p)) for p in prices],
    }


def assert_same(book, reference, prices=range(0, 45)):
    assert state_of(book, prices) == state_of(reference, prices)
    assert book.microprice() == pytest.approx(reference.microprice(), rel=1e-12, abs=1e-12)


# ---------------------------------------------------------------- differential property test

levels_st = st.lists(st.tuples(st.integers(1, 40), st.sampled_from([0, 0, 1, 2, 3, 7, 1_000_000_007])),
                     max_size=6)
WINDOWS = (64, B.DEFAULT_WINDOW_TICKS)   # the smallest window puts most levels of the wide tests outside it


@st.composite
def snapshot_levels(draw, best_first_sign):
    """Snapshot levels: either canonical (unique, qty > 0, best first) or arbitrary (any order, dups, zeros)."""
    raw = draw(st.lists(st.tuples(st.integers(1, 40), st.integers(0, 9)), max_size=15))
    if draw(st.booleans()):
        uniq = {px: q for px, q in raw if q > 0}
        return sorted(uniq.items(), key=lambda lv: -best_first_sign * lv[0])
    return raw


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), rule=st.sampled_from(RULES), max_pending=st.sampled_from([1, 3, 100_000]))
def test_random_snapshot_and_diff_sequences_match_reference(data, rule, max_pending):
    book = L2Book(rule, max_pending)
    reference = ref.ReferenceL2Book(rule, max_pending)
    cur = data.draw(st.integers(0, 20))     # last update id the simulated exchange issued
    ts = 0
    for _ in range(data.draw(st.integers(1, 40))):
        ts += 1
        kind = data.draw(st.integers(0, 99))
        if kind < (35 if book.state == AWAITING_SNAPSHOT else 6):   # REST snapshot, near the stream position
            last = max(0, cur + data.draw(st.integers(-4, 3)))
            s = snap(last, data.draw(snapshot_levels(1)), data.draw(snapshot_levels(-1)), ts)
            assert book.load_snapshot(s) == reference.load_snapshot(s)
        else:
            if kind < 76:                                  # the next event of a clean stream
                U = cur + 1
                u = U + data.draw(st.integers(0, 3))
                pu = cur
            elif kind < 82:                                # events lost in transit, then the next one
                cur += data.draw(st.integers(1, 5))
                U, pu = cur + 1, cur
                u = U + data.draw(st.integers(0, 3))
            elif kind < 90:                                # duplicate / late delivery
                u = cur - data.draw(st.integers(0, 3))
                U = u - data.draw(st.integers(0, 3))
                pu = U - 1
            else:                                          # arbitrary ids around the stream position
                U = cur + data.draw(st.integers(-5, 5))
                u = U + data.draw(st.integers(0, 5))
                pu = U - data.draw(st.integers(1, 3))
            cur = max(cur, u)
            sides = []
            for side in (BID, ASK):                        # random levels + removals of levels near the top
                near_top = [p for p, _ in reference.levels(side, 3)]
                removed = data.draw(st.lists(st.sampled_from(near_top), max_size=2)) if near_top else []
                sides.append(data.draw(levels_st) + [(p, 0) for p in removed])
            d = diff(U, u, sides[0], sides[1], pu, ts)
            outcome = book.apply_diff(d)
            assert outcome in (APPLIED, BUFFERED, STALE, GAP)
            assert outcome == reference.apply_diff(d)
        assert_same(book, reference)
        # invariants of the compiled book itself
        bids, asks = book.levels(BID), book.levels(ASK)
        assert all(q > 0 for _, q in bids + asks)
        assert [p for p, _ in bids] == sorted({p for p, _ in bids}, reverse=True)
        assert [p for p, _ in asks] == sorted({p for p, _ in asks})
        if book.state == AWAITING_SNAPSHOT:
            assert bids == [] and asks == []


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data(), rule=st.sampled_from(RULES), window=st.sampled_from(WINDOWS))
def test_large_books_with_deep_inserts_and_deletes_match_reference(data, rule, window):
    """Hundreds of levels a side and wide diffs: exercises holes, hole reuse, compaction, both shift directions
    and re-centring / growth of the sorted store (window 64: most levels live there), and the window."""
    book, reference = L2Book(rule, window_ticks=window), ref.ReferenceL2Book(rule)
    px = st.integers(1, 3000)
    bids = data.draw(st.dictionaries(px, st.integers(1, 50), max_size=400))
    asks = data.draw(st.dictionaries(px, st.integers(1, 50), max_size=400))
    s = snap(1_000, sorted(bids.items(), reverse=True), sorted(asks.items()))
    assert book.load_snapshot(s) == reference.load_snapshot(s) == SYNCED
    last = 1_000
    zeros = data.draw(st.integers(1, 12))           # delete-heavy streams drain the book (holes, compaction)
    wide = st.lists(st.tuples(px, st.sampled_from([0] * zeros + [1, 5, 9])), max_size=60)
    for k in range(data.draw(st.integers(1, 25))):
        U = last if k == 0 else last + 1            # straddles on the first event, then chains (both rules)
        side_levels = []
        for side in (BID, ASK):                     # random levels plus deletions of levels that exist
            present = [p for p, _ in reference.levels(side)]
            dels = data.draw(st.lists(st.sampled_from(present), max_size=40)) if present else []
            side_levels.append(data.draw(wide) + [(p, 0) for p in dels])
        d = diff(U, U + 1, side_levels[0], side_levels[1], pu=last if k else last - 1)
        assert book.apply_diff(d) == reference.apply_diff(d) == APPLIED
        last = U + 1
        assert book.levels(BID) == reference.levels(BID) and book.levels(ASK) == reference.levels(ASK)
        assert (book.n_levels(BID), book.n_levels(ASK)) == (reference.n_levels(BID), reference.n_levels(ASK))
        assert [book.depth_qty(BID, n) for n in (1, 7, 100)] == [reference.depth_qty(BID, n) for n in (1, 7, 100)]
        assert all(book.qty_at(ASK, p) == reference.qty_at(ASK, p) for p, _ in d.asks)
        assert all(book.qty_at(BID, p) == reference.qty_at(BID, p) for p, _ in d.bids)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), rule=st.sampled_from(RULES), window=st.sampled_from([64, 128]))
def test_market_moving_across_windows_matches_reference(data, rule, window):
    """The market drifts by up to a window and a half per event: levels land below, inside and above the
    window and on its borders, the best level leaves the window and it re-centres; every query agrees with
    the reference book after every event."""
    book, reference = L2Book(rule, window_ticks=window), ref.ReferenceL2Book(rule)
    mid = 100_000
    s = snap(1, [(mid - 1 - 3 * i, 1 + i) for i in range(20)], [(mid + 1 + 3 * i, 1 + i) for i in range(20)])
    assert book.load_snapshot(s) == reference.load_snapshot(s) == SYNCED
    last = 1
    qty = st.sampled_from([0, 0, 1, 4, 9])
    for k in range(data.draw(st.integers(1, 30))):
        mid += data.draw(st.integers(-3 * window // 2, 3 * window // 2))
        side_levels = []
        for side in (BID, ASK):
            offsets = data.draw(st.lists(st.tuples(st.integers(-window // 4, 3 * window), qty), max_size=12))
            new = [(mid - side * off, q) for off, q in offsets]          # mostly behind the mid, some through it
            present = [p for p, _ in reference.levels(side)]
            dels = data.draw(st.lists(st.sampled_from(present), max_size=6)) if present else []
            side_levels.append(new + [(p, 0) for p in dels])
        U = last if k == 0 else last + 1
        d = diff(U, U + 1, side_levels[0], side_levels[1], pu=last if k else last - 1)
        assert book.apply_diff(d) == reference.apply_diff(d) == APPLIED
        last = U + 1
        prices = sorted({p for p, _ in d.bids + d.asks} | {mid - window, mid, mid + window})
        assert_same(book, reference, prices)


def test_window_recentres_as_the_market_moves_and_levels_survive_it():
    book = L2Book(SYNC_SPOT, window_ticks=64)
    reference = ref.ReferenceL2Book(SYNC_SPOT)
    s = snap(1, [(1000, 1), (990, 2), (900, 3)], [(1010, 4), (1100, 5)])
    assert book.load_snapshot(s) == reference.load_snapshot(s) == SYNCED
    assert book.recenters == 2                       # both windows placed at the snapshot
    for k, step in enumerate(range(1, 11)):          # the market rallies 50 ticks per event, 500 in all
        p = 1000 + 50 * step
        d = diff(2 + k, 2 + k, [(p, step)], [(p + 10, step), (p - 40, 0)])
        assert book.apply_diff(d) == reference.apply_diff(d) == APPLIED
    assert book.recenters > 2
    assert book.levels(BID) == reference.levels(BID) and book.levels(ASK) == reference.levels(ASK)
    assert book.levels(BID)[-3:] == [(1000, 1), (990, 2), (900, 3)]       # far below every later window
    assert book.qty_at(BID, 900) == 3 and book.qty_at(ASK, 1100) == 5
    assert book.depth_qty(BID, 1000) == sum(range(1, 11)) + 6


# ---------------------------------------------------------------- constants and construction

def test_constants_of_reference_equal_compiled_ones():
    for name in ("SYNC_SPOT", "SYNC_USDM", "AWAITING_SNAPSHOT", "SYNCED", "APPLIED", "BUFFERED", "STALE", "GAP",
                 "BID", "ASK", "DEFAULT_MAX_PENDING"):
        assert getattr(B, name) == getattr(ref, name), name
    assert len({APPLIED, BUFFERED, STALE, GAP}) == 4


def test_sync_rule_for_market_maps_binance_markets_and_rejects_others():
    assert sync_rule_for_market("binance_spot") == SYNC_SPOT
    assert sync_rule_for_market("binance_usdm") == SYNC_USDM
    assert SYNC_SPOT != SYNC_USDM
    with pytest.raises(ValueError, match="bybit"):
        sync_rule_for_market("bybit_linear")
    with pytest.raises(ValueError):
        ref.sync_rule_for_market("bybit_linear")


def test_constructor_rejects_unknown_rule_and_empty_buffer():
    with pytest.raises(ValueError):
        L2Book(7)
    with pytest.raises(ValueError):
        L2Book(SYNC_SPOT, 0)
    for bad in (0, 32, 100, B.MAX_WINDOW_TICKS * 2):
        with pytest.raises(ValueError, match="window_ticks"):
            L2Book(SYNC_SPOT, window_ticks=bad)
    assert L2Book(SYNC_SPOT, window_ticks=64).window_ticks == 64
    assert L2Book(SYNC_SPOT).window_ticks == B.DEFAULT_WINDOW_TICKS


def test_new_book_is_empty_and_awaits_snapshot():
    book = L2Book(SYNC_USDM)
    assert book.state == AWAITING_SNAPSHOT and not book.synced
    assert (book.best_bid_px(), book.best_bid_qty(), book.best_ask_px(), book.best_ask_qty()) == (0, 0, 0, 0)
    assert (book.mid_x2(), book.spread(), book.microprice(), book.is_crossed()) == (0, 0, 0.0, False)
    assert book.levels(BID) == [] and book.depth_qty(ASK, 5) == 0 and book.n_levels(BID) == 0
    assert book.last_update_id == -1


# ---------------------------------------------------------------- spot procedure

def test_spot_buffered_diffs_replayed_on_snapshot_drop_stale_and_apply_straddling():
    book = L2Book(SYNC_SPOT)
    d_old = diff(90, 95, bids=[(50, 9)])              # u < lastUpdateId: stale
    d_at = diff(96, 100, asks=[(101, 0)])             # u == lastUpdateId: stale on spot
    d_first = diff(97, 104, bids=[(100, 7)], ts=33)   # U <= 101 <= u: first applied
    d_next = diff(105, 105, asks=[(103, 2)], ts=44)   # U == 104 + 1
    for d in (d_old, d_at, d_first, d_next):
        assert book.apply_diff(d) == BUFFERED
    assert book.buffered == 4 and book.pending == 4 and book.n_levels(BID) == 0

    assert book.load_snapshot(snap(100, [(100, 5), (99, 3)], [(101, 4), (102, 6)], ts=11)) == SYNCED
    assert (book.stale, book.applied, book.gaps, book.pending) == (2, 2, 0, 0)
    assert book.last_update_id == 105 and book.ts_local_ns == 44
    assert book.levels(BID) == [(100, 7), (99, 3)]                 # d_old's bid at 50 was dropped
    assert book.levels(ASK) == [(101, 4), (102, 6), (103, 2)]      # d_at's delete of 101 was dropped


def test_spot_first_event_must_straddle_and_chain_then_requires_U_equal_prev_u_plus_1():
    book = L2Book(SYNC_SPOT)
    book.load_snapshot(snap(100, [(100, 5)], [(101, 4)]))
    assert book.apply_diff(diff(101, 103, bids=[(100, 6)])) == APPLIED    # U == L+1 straddles
    assert book.apply_diff(diff(104, 110, bids=[(100, 8)])) == APPLIED
    assert book.apply_diff(diff(105, 110, bids=[(100, 1)])) == STALE      # duplicate (u <= 110)
    assert book.best_bid_qty() == 8 and book.last_update_id == 110 and book.stale == 1


def test_spot_gap_when_U_skips_applies_nothing_and_resyncs_on_new_snapshot():
    book = synced_book(SYNC_SPOT)                               # last_update_id 101
    before_applied = book.applied
    assert book.apply_diff(diff(103, 104, bids=[(100, 1), (98, 2)])) == GAP
    assert book.state == AWAITING_SNAPSHOT and not book.synced
    assert book.gaps == 1 and book.applied == before_applied and book.last_update_id == 101
    assert book.n_levels(BID) == 0 and book.n_levels(ASK) == 0 and book.qty_at(BID, 98) == 0
    assert book.pending == 1                                    # the gap diff is kept for the resync
    assert book.apply_diff(diff(105, 106, asks=[(102, 9)])) == BUFFERED
    assert book.apply_diff(diff(107, 108, asks=[(105, 1)])) == BUFFERED

    assert book.load_snapshot(snap(106, [(100, 2)], [(101, 4), (102, 9)])) == SYNCED
    assert book.stale == 2 and book.last_update_id == 108 and book.pending == 0
    assert book.levels(ASK) == [(101, 4), (102, 9), (105, 1)]
    assert book.apply_diff(diff(109, 109, bids=[(100, 3)])) == APPLIED
    assert book.best_bid_qty() == 3 and book.gaps == 1


def test_spot_overlapping_event_after_sync_is_a_gap():
    book = synced_book(SYNC_SPOT)                               # last 101
    assert book.apply_diff(diff(100, 105)) == GAP               # U != 101 + 1 although it covers 102


def test_spot_event_with_u_equal_to_snapshot_id_is_stale():
    book = L2Book(SYNC_SPOT)
    book.load_snapshot(snap(100, [(100, 5)], [(101, 4)]))
    assert book.apply_diff(diff(98, 100, bids=[(100, 1)])) == STALE
    assert book.best_bid_qty() == 5


# ---------------------------------------------------------------- USDⓈ-M procedure

def test_usdm_buffered_diffs_replayed_on_snapshot_apply_event_ending_at_snapshot_id():
    book = L2Book(SYNC_USDM)
    d_old = diff(90, 99, bids=[(50, 9)], pu=89)             # u < lastUpdateId: stale
    d_first = diff(95, 100, bids=[(100, 7)], pu=94)         # U <= 100 <= u: applied (u == L is kept on USDⓈ-M)
    d_next = diff(120, 130, asks=[(101, 0)], pu=100)        # pu == previous u; U need not be u + 1
    for d in (d_old, d_first, d_next):
        assert book.apply_diff(d) == BUFFERED
    assert book.load_snapshot(snap(100, [(100, 5), (99, 3)], [(101, 4), (102, 6)])) == SYNCED
    assert (book.stale, book.applied, book.gaps) == (1, 2, 0)
    assert book.last_update_id == 130
    assert book.levels(BID) == [(100, 7), (99, 3)] and book.levels(ASK) == [(102, 6)]


def test_usdm_gap_on_pu_mismatch_even_with_contiguous_U_then_resync():
    book = synced_book(SYNC_USDM)                               # last_update_id 101
    assert book.apply_diff(diff(102, 103, bids=[(100, 1)], pu=99)) == GAP
    assert book.state == AWAITING_SNAPSHOT and book.gaps == 1 and book.applied == 1
    assert book.levels(BID) == [] and book.levels(ASK) == []
    assert book.apply_diff(diff(104, 110, bids=[(97, 4)], pu=103)) == BUFFERED
    assert book.load_snapshot(snap(105, [(100, 2)], [(101, 4)])) == SYNCED
    # the gap diff (u=103 < 105) is stale; the buffered one straddles 105 and applies
    assert book.stale == 1 and book.applied == 2 and book.last_update_id == 110
    assert book.levels(BID) == [(100, 2), (97, 4)]
    assert book.apply_diff(diff(111, 111, asks=[(101, 5)], pu=110)) == APPLIED
    assert book.best_ask_qty() == 5


def test_same_ids_chain_on_usdm_by_pu_but_gap_on_spot():
    for rule, expected in ((SYNC_USDM, APPLIED), (SYNC_SPOT, GAP)):
        book = synced_book(rule)                                # last 101
        assert book.apply_diff(diff(150, 160, pu=101)) == expected, rule


@pytest.mark.parametrize("rule", RULES)
def test_first_event_newer_than_snapshot_is_gap_and_kept_for_next_snapshot(rule):
    book = L2Book(rule)
    book.load_snapshot(snap(100, [(100, 5)], [(101, 4)]))
    d = diff(105, 110, bids=[(100, 9)], pu=104)
    assert book.apply_diff(d) == GAP
    assert (book.state, book.gaps, book.applied, book.n_levels(BID), book.pending) == (AWAITING_SNAPSHOT, 1, 0, 0, 1)
    assert book.load_snapshot(snap(106, [(100, 5)], [(101, 4)])) == SYNCED   # 105 <= 106(+1) <= 110
    assert book.applied == 1 and book.best_bid_qty() == 9 and book.last_update_id == 110


@pytest.mark.parametrize("rule", RULES)
def test_snapshot_older_than_buffered_stream_leaves_book_awaiting(rule):
    book = L2Book(rule)
    assert book.apply_diff(diff(200, 210, pu=199)) == BUFFERED
    assert book.apply_diff(diff(211, 220, pu=210)) == BUFFERED
    assert book.load_snapshot(snap(150, [(100, 5)], [(101, 4)])) == AWAITING_SNAPSHOT
    assert book.gaps == 1 and book.pending == 2 and book.levels(BID) == []
    assert book.load_snapshot(snap(215, [(100, 5)], [(101, 4)])) == SYNCED
    assert (book.stale, book.applied, book.last_update_id) == (1, 1, 220)


def test_buffer_drops_oldest_beyond_max_pending():
    book = L2Book(SYNC_SPOT, max_pending=3)
    for i in range(5):
        assert book.apply_diff(diff(10 + i, 10 + i, bids=[(100, i + 1)])) == BUFFERED
    assert (book.buffered, book.buffer_dropped, book.pending) == (5, 2, 3)
    book.load_snapshot(snap(11, [(100, 50)], [(101, 1)]))     # kept: u=12, 13, 14
    assert book.applied == 3 and book.stale == 0 and book.best_bid_qty() == 5


# ---------------------------------------------------------------- level maintenance

def test_zero_quantity_deletes_and_deleting_missing_level_is_noop():
    book = synced_book(SYNC_SPOT)
    before = book.levels(ASK)
    assert book.apply_diff(diff(102, 102, bids=[(99, 0), (42, 0)], asks=[(150, 0)])) == APPLIED
    assert book.levels(BID) == [(100, 5)] and book.levels(ASK) == before


def test_inserts_at_top_middle_and_bottom_keep_both_sides_ordered():
    book = synced_book(SYNC_SPOT, bids=[(100, 5), (95, 3)], asks=[(110, 4), (115, 6)])
    book.apply_diff(diff(102, 102, bids=[(101, 1), (97, 2), (90, 3)], asks=[(109, 1), (112, 2), (120, 3)]))
    assert book.levels(BID) == [(101, 1), (100, 5), (97, 2), (95, 3), (90, 3)]
    assert book.levels(ASK) == [(109, 1), (110, 4), (112, 2), (115, 6), (120, 3)]


def test_many_levels_grow_arrays_and_match_reference():
    book, reference = L2Book(SYNC_USDM), ref.ReferenceL2Book(SYNC_USDM)
    s = snap(1, [(10_000 - i, i + 1) for i in range(300)], [(10_001 + i, i + 1) for i in range(300)])
    book.load_snapshot(s), reference.load_snapshot(s)
    last = 1
    for k in range(200):
        U = last if k == 0 else last + 1                # first event straddles lastUpdateId=1, then pu chain
        bids = [((k * 37 + j * 11) % 700 + 9_500, (k + j) % 4) for j in range(3)] + [(9_000 + k, 1)]
        d = diff(U, U + 2, bids, [(10_001 + (k * 53) % 900, (k + 1) % 3)], pu=last)
        assert book.apply_diff(d) == reference.apply_diff(d) == APPLIED
        last = U + 2
    assert book.levels(BID) == reference.levels(BID) and book.levels(ASK) == reference.levels(ASK)
    assert book.n_levels(BID) > 300


def test_deleting_levels_just_below_the_top_then_the_top_exposes_the_next_live_level():
    book = L2Book(SYNC_SPOT)
    book.load_snapshot(snap(10, [(100, 1), (99, 2), (98, 3), (97, 4)], [(101, 1), (102, 2), (103, 3), (104, 4)]))
    book.apply_diff(diff(11, 11, bids=[(99, 0), (98, 0)], asks=[(102, 0)]))
    book.apply_diff(diff(12, 12, bids=[(100, 0)], asks=[(101, 0)]))
    assert (book.best_bid_px(), book.best_bid_qty()) == (97, 4) and book.levels(BID) == [(97, 4)]
    assert (book.best_ask_px(), book.best_ask_qty()) == (103, 3) and book.levels(ASK) == [(103, 3), (104, 4)]
    assert book.depth_qty(ASK, 1) == 3 and book.n_levels(BID) == 1
    book.apply_diff(diff(13, 13, bids=[(97, 0)]))
    assert book.best_bid_px() == 0 and book.n_levels(BID) == 0 and book.mid_x2() == 0
    book.apply_diff(diff(14, 14, bids=[(98, 6), (96, 1)]))
    assert book.levels(BID) == [(98, 6), (96, 1)]


def test_mass_deletion_below_the_top_then_reinsertion_matches_reference():
    # deleting most levels below the top leaves more holes than live levels: the side gets compacted
    book, reference = L2Book(SYNC_SPOT), ref.ReferenceL2Book(SYNC_SPOT)
    s = snap(10, [(1_000 - i, 1 + i % 7) for i in range(200)], [(1_001 + i, 2) for i in range(200)])
    book.load_snapshot(s), reference.load_snapshot(s)
    steps = [
        diff(11, 11, bids=[(1_000 - i, 0) for i in range(1, 200, 2)] + [(1_000 - i, 0) for i in range(2, 150, 4)]),
        diff(12, 12, bids=[(1_000 - i, 3) for i in range(1, 200, 3)], asks=[(1_001 + i, 0) for i in range(5, 200)]),
        diff(13, 13, bids=[(1_000, 0), (999, 0), (998, 0)], asks=[(1_500 - i, 4) for i in range(0, 300, 2)]),
    ]
    for d in steps:
        assert book.apply_diff(d) == reference.apply_diff(d) == APPLIED
        assert book.levels(BID) == reference.levels(BID) and book.levels(ASK) == reference.levels(ASK)
        assert book.best_bid_px() == reference.best_bid_px() and book.depth_qty(BID, 10) == reference.depth_qty(BID, 10)


def test_snapshot_in_arbitrary_order_with_duplicates_and_zeros_last_one_wins():
    book = L2Book(SYNC_SPOT)
    book.load_snapshot(snap(1, [(97, 1), (100, 5), (99, 2), (100, 6), (98, 0), (96, 4), (96, 0)],
                            [(103, 1), (101, 2), (102, 0)]))
    assert book.levels(BID) == [(100, 6), (99, 2), (97, 1)]
    assert book.levels(ASK) == [(101, 2), (103, 1)]


def test_new_snapshot_replaces_all_levels():
    book = synced_book(SYNC_USDM)
    book.load_snapshot(snap(500, [(80, 1)], [(90, 2)]))
    assert book.levels(BID) == [(80, 1)] and book.levels(ASK) == [(90, 2)] and book.last_update_id == 500


@pytest.mark.parametrize("bad", [
    lambda: diff(105, 104),                           # u < U
    lambda: diff(102, 102, bids=[(100, -1)]),         # negative quantity
    lambda: diff(102, 102, asks=[(0, 1)]),            # price 0
])
def test_invalid_diff_raises_and_changes_nothing(bad):
    book = synced_book(SYNC_SPOT)
    before = state_of(book)
    with pytest.raises(ValueError):
        book.apply_diff(bad())
    assert state_of(book) == before
    reference = ref.ReferenceL2Book(SYNC_SPOT)
    with pytest.raises(ValueError):
        reference.apply_diff(bad())


def test_invalid_snapshot_raises_and_keeps_book():
    book = synced_book(SYNC_SPOT)
    before = state_of(book)
    with pytest.raises(ValueError):
        book.load_snapshot(snap(900, [(100, 1)], [(101, -3)]))
    assert state_of(book) == before


def test_none_events_raise_type_error():
    book = L2Book(SYNC_SPOT)
    with pytest.raises(TypeError):
        book.apply_diff(None)
    with pytest.raises(TypeError):
        book.load_snapshot(None)


# ---------------------------------------------------------------- crossed-book counting

def test_crossed_counts_applied_events_after_which_bid_reaches_ask():
    book = L2Book(SYNC_SPOT)
    book.load_snapshot(snap(10, [(100, 5)], [(101, 4)]))
    assert book.apply_diff(diff(11, 11, bids=[(101, 1)])) == APPLIED        # locked: bid == ask counts
    assert book.is_crossed() and book.crossed == 1 and book.spread() == 0
    assert book.apply_diff(diff(12, 12, bids=[(102, 1)])) == APPLIED        # crossed
    assert book.crossed == 2 and book.spread() == -1
    assert book.apply_diff(diff(13, 13, bids=[(101, 0), (102, 0)])) == APPLIED
    assert not book.is_crossed() and book.crossed == 2
    assert book.apply_diff(diff(15, 15, bids=[(105, 1)])) == GAP           # gaps are not applied: not counted
    assert book.crossed == 2


def test_crossed_snapshot_alone_is_not_counted():
    book = L2Book(SYNC_USDM)
    book.load_snapshot(snap(10, [(101, 5)], [(100, 4)]))
    assert book.is_crossed() and book.crossed == 0


# ---------------------------------------------------------------- queries by hand values

def test_queries_on_a_known_book():
    bids = [(100, 1), (99, 4), (97, 2)]
    asks = [(102, 3), (103, 5), (106, 7)]
    book = L2Book(SYNC_SPOT)
    book.load_snapshot(snap(1, bids, asks))
    assert (book.best_bid_px(), book.best_bid_qty()) == bids[0]
    assert (book.best_ask_px(), book.best_ask_qty()) == asks[0]
    assert book.mid_x2() == 100 + 102 and book.spread() == 102 - 100
    assert book.microprice() == (100 * 3 + 102 * 1) / (1 + 3) == 100.5
    assert book.qty_at(BID, 99) == 4 and book.qty_at(BID, 98) == 0 and book.qty_at(BID, 102) == 0
    assert book.qty_at(ASK, 106) == 7 and book.qty_at(ASK, 100) == 0
    assert book.depth_qty(BID, 2) == 1 + 4 and book.depth_qty(ASK, 2) == 3 + 5
    assert book.depth_qty(BID, 3) == book.depth_qty(BID, 50) == 1 + 4 + 2 and book.depth_qty(ASK, 0) == 0
    assert book.n_levels(BID) == 3 and book.n_levels(ASK) == 3
    assert book.levels(BID) == bids and book.levels(ASK, 2) == asks[:2] and book.levels(ASK, 0) == []


def test_microprice_leans_toward_the_thinner_side():
    book = L2Book(SYNC_SPOT)
    book.load_snapshot(snap(1, [(1000, 9)], [(1010, 1)]))
    assert book.microprice() == pytest.approx((1000 * 1 + 1010 * 9) / 10)
    assert book.microprice() > book.mid_x2() / 2


def test_one_sided_book_queries_return_zero():
    book = L2Book(SYNC_SPOT)
    book.load_snapshot(snap(1, [(100, 1)], []))
    assert book.best_bid_px() == 100 and book.best_ask_px() == 0 and book.best_ask_qty() == 0
    assert (book.mid_x2(), book.spread(), book.microprice(), book.is_crossed()) == (0, 0, 0.0, False)


def test_bad_side_or_negative_depth_raises():
    book = synced_book(SYNC_SPOT)
    for call in (lambda: book.qty_at(0, 100), lambda: book.depth_qty(2, 1), lambda: book.n_levels(-2),
                 lambda: book.levels(5), lambda: book.depth_qty(BID, -1), lambda: book.levels(BID, -1)):
        with pytest.raises(ValueError):
            call()


def test_ts_local_ns_follows_last_applied_event_not_dropped_ones():
    book = L2Book(SYNC_USDM)
    book.load_snapshot(snap(100, [(100, 1)], [(101, 1)], ts=1_000))
    assert book.ts_local_ns == 1_000
    book.apply_diff(diff(99, 101, pu=98, ts=2_000))
    book.apply_diff(diff(90, 95, pu=89, ts=3_000))          # stale
    assert book.ts_local_ns == 2_000


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data(), rule=st.sampled_from(RULES))
def test_levels_in_ascending_descending_or_random_order_within_an_event_match_reference(data, rule):
    """Binance lists each side's levels by ascending price; a book may exploit that order (e.g. search each
    level from the previous one), but must give the same result for any order, duplicates included."""
    book, reference = L2Book(rule), ref.ReferenceL2Book(rule)
    px = st.integers(1, 600)
    bids = data.draw(st.dictionaries(px, st.integers(1, 50), max_size=200))
    asks = data.draw(st.dictionaries(px, st.integers(1, 50), max_size=200))
    s = snap(1_000, sorted(bids.items(), reverse=True), sorted(asks.items()))
    assert book.load_snapshot(s) == reference.load_snapshot(s) == SYNCED
    last = 1_000
    lv = st.lists(st.tuples(px, st.sampled_from([0, 0, 1, 4, 9])), max_size=50)
    for k in range(data.draw(st.integers(1, 12))):
        side_levels = []
        for side in (BID, ASK):
            present = [p for p, _ in reference.levels(side)]
            levels = data.draw(lv) + ([(p, 0) for p in data.draw(st.lists(st.sampled_from(present), max_size=20))]
                                      if present else [])
            order = data.draw(st.sampled_from(["asc", "desc", "random", "asc_unique", "desc_unique"]))
            if order.endswith("unique"):
                levels = list(dict(levels).items())     # one entry per price (as Binance sends)
            if order.startswith("asc"):
                levels.sort(key=lambda lv_: lv_[0])      # stable: duplicates keep their relative order
            elif order.startswith("desc"):
                levels.sort(key=lambda lv_: -lv_[0])
            else:
                levels = data.draw(st.permutations(levels))
            side_levels.append(levels)
        U = last if k == 0 else last + 1
        d = diff(U, U + 1, side_levels[0], side_levels[1], pu=last if k else last - 1)
        assert book.apply_diff(d) == reference.apply_diff(d) == APPLIED
        last = U + 1
        assert book.levels(BID) == reference.levels(BID) and book.levels(ASK) == reference.levels(ASK)
        assert (book.n_levels(BID), book.n_levels(ASK)) == (reference.n_levels(BID), reference.n_levels(ASK))
        assert all(book.qty_at(BID, p) == reference.qty_at(BID, p) for p, _ in d.bids)
        assert all(book.qty_at(ASK, p) == reference.qty_at(ASK, p) for p, _ in d.asks)


# ---------------------------------------------------------------- hostile numbers and stale snapshots (issue 8)
MAXP = 2**53       # B.MAX_PRICE_TICKS
MAXQ = 2**53       # B.MAX_QTY_LOTS
MAXID = 2**62      # B.MAX_UPDATE_ID


def test_bounds_are_the_instrument_tables_range():
    from mmcore.instruments import MAX_UNITS
    assert (B.MAX_PRICE_TICKS, B.MAX_QTY_LOTS, B.MAX_UPDATE_ID) == (MAXP, MAXQ, MAXID)
    assert MAX_UNITS == MAXP
    assert (ref.MAX_PRICE_TICKS, ref.MAX_QTY_LOTS, ref.MAX_UPDATE_ID) == (MAXP, MAXQ, MAXID)


def test_price_near_int64_max_is_refused_by_the_book_without_corrupting_memory():
    # Before: a bid of 922337203685477580.7 (USDⓈ-M, ~INT64_MAX ticks) made base + width overflow in the window
    # placement; memmove got a negative size and the process aborted. Run in a child so an abort is a return code.
    code = """if 1:
        from mmcore_ext.book import L2Book, SYNC_USDM, SYNCED
        from mmcore_ext.events import DepthDiff, DepthSnapshot
        for px in (9223372036854775807, 9223372036854775800, 2**53 + 1, 2**62):
            book = L2Book(SYNC_USDM)
            book.load_snapshot(DepthSnapshot.from_ticks(10, [(618002, 5)], [(618003, 4)]))
            before = (book.levels(1), book.levels(-1), book.last_update_id)
            for side in ("bids", "asks"):
                lv = {"bids": [(618001, 1)], "asks": [(618004, 1)]}
                lv[side] = [(px, 1000)]
                try:
                    book.apply_diff(DepthDiff.from_ticks(10, 11, lv["bids"], lv["asks"], prev_final_update_id=9))
                except ValueError as exc:
                    assert "price must be in [1, 9007199254740992]" in str(exc), exc
                else:
                    raise SystemExit(f"diff with {side} at {px} accepted")
                try:
                    book.load_snapshot(DepthSnapshot.from_ticks(20, lv["bids"], lv["asks"]))
                except ValueError:
                    pass
                else:
                    raise SystemExit(f"snapshot with {side} at {px} accepted")
                assert (book.levels(1), book.levels(-1), book.last_update_id) == before
        print("ok")
    """
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", (r.returncode, r.stdout, r.stderr[:3000])


@pytest.mark.parametrize("book_cls", [L2Book, ref.ReferenceL2Book])
def test_levels_at_the_price_and_quantity_bounds_work_on_both_sides(book_cls):
    book = book_cls(SYNC_USDM)
    assert book.load_snapshot(snap(10, [(1, MAXQ), (MAXP - 1, 1)], [(MAXP, 3), (2, MAXQ)])) == SYNCED
    assert book.apply_diff(diff(10, 11, [(MAXP - 2, MAXQ)], [(MAXP - 1, 1)], pu=9)) == APPLIED
    assert book.levels(BID) == [(MAXP - 1, 1), (MAXP - 2, MAXQ), (1, MAXQ)]
    assert book.levels(ASK) == [(2, MAXQ), (MAXP - 1, 1), (MAXP, 3)]
    assert book.mid_x2() == MAXP - 1 + 2 and book.spread() == 2 - (MAXP - 1)
    assert book.qty_at(BID, 1) == MAXQ and book.qty_at(ASK, MAXP) == 3
    assert book.depth_qty(BID, 3) == 1 + 2 * MAXQ
    # the far price moves the window: both ends of the key range
    assert book.apply_diff(diff(12, 12, [(MAXP - 1, 0), (MAXP - 2, 0)], [(2, 0)], pu=11)) == APPLIED
    assert book.best_bid_px() == 1 and book.best_ask_px() == MAXP - 1


@pytest.mark.parametrize("book_cls", [L2Book, ref.ReferenceL2Book])
@pytest.mark.parametrize("bad", [
    lambda: diff(102, 102, bids=[(MAXP + 1, 1)]),
    lambda: diff(102, 102, asks=[(100, MAXQ + 1)]),
    lambda: diff(102, 102, asks=[(-2**63, 1)]),
    lambda: diff(102, 102, bids=[(100, 2**63 - 1)]),
    lambda: diff(102, MAXID + 1),
    lambda: diff(-MAXID - 1, 102),
    lambda: diff(102, 102, pu=2**63 - 1),
    lambda: diff(102, 102, pu=-2**63),
])
def test_out_of_range_diff_raises_value_error_and_changes_nothing(book_cls, bad):
    book = book_cls(SYNC_SPOT)
    book.load_snapshot(snap(100, [(100, 5), (99, 3)], [(101, 4), (102, 6)]))
    book.apply_diff(diff(100, 101, pu=99))
    before = state_of(book)
    with pytest.raises(ValueError):
        book.apply_diff(bad())
    assert state_of(book) == before


@pytest.mark.parametrize("book_cls", [L2Book, ref.ReferenceL2Book])
@pytest.mark.parametrize("last", [MAXID + 1, -MAXID - 1, 2**63 - 1])
def test_snapshot_with_out_of_range_update_id_raises(book_cls, last):
    book = book_cls(SYNC_SPOT)
    with pytest.raises(ValueError):
        book.load_snapshot(snap(last, [(100, 1)], [(101, 1)]))
    assert book.state == AWAITING_SNAPSHOT and book.levels(BID) == []


def test_update_id_at_the_bound_chains_without_overflow():
    book = L2Book(SYNC_SPOT)
    book.load_snapshot(snap(MAXID - 1, [(100, 1)], [(101, 1)]))
    assert book.apply_diff(diff(MAXID - 1, MAXID, [(100, 2)])) == APPLIED     # U <= last + 1 <= u
    assert book.last_update_id == MAXID and book.best_bid_qty() == 2


def test_microprice_near_the_bounds_matches_the_exact_value():
    # (ask - bid) * bid_qty ~ 2**106: the old int64 product wrapped (a wrong, even negative, microprice)
    book, reference = L2Book(SYNC_SPOT), ref.ReferenceL2Book(SYNC_SPOT)
    for b in (book, reference):
        b.load_snapshot(snap(1, [(1, MAXQ)], [(MAXP, 1)]))
    exact = (1 * 1 + MAXP * MAXQ) / (MAXQ + 1)
    assert reference.microprice() == exact
    assert book.microprice() == pytest.approx(exact, rel=1e-12)


def test_depth_qty_saturates_instead_of_wrapping():
    levels = [(p, MAXQ) for p in range(1, 1100)]          # 1099 * 2**53 lots > 2**63
    book, reference = L2Book(SYNC_SPOT), ref.ReferenceL2Book(SYNC_SPOT)
    for b in (book, reference):
        b.load_snapshot(snap(1, levels, []))
    assert book.depth_qty(BID, 2000) == reference.depth_qty(BID, 2000) == 2**63 - 1
    assert book.depth_qty(BID, 1024) == reference.depth_qty(BID, 1024) == 2**63 - 1     # 2**63 exactly
    assert book.depth_qty(BID, 1023) == reference.depth_qty(BID, 1023) == 1023 * MAXQ   # still exact
    assert book.depth_qty(BID, 1) == MAXQ


@pytest.mark.parametrize("price", [0, -1, -2**63, 2**63 - 1, MAXP + 1])
def test_qty_at_any_int64_price_is_zero_outside_the_bounds(price):
    book = synced_book(SYNC_SPOT)
    assert book.qty_at(BID, price) == 0 and book.qty_at(ASK, price) == 0


@pytest.mark.parametrize("book_cls", [L2Book, ref.ReferenceL2Book])
@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("dup_id", [0, 50, 101])        # older than, or equal to, the book's update id
def test_duplicated_or_stale_snapshot_while_synced_is_ignored_and_counted(book_cls, rule, dup_id):
    # Before: the old snapshot was loaded, rewinding the book behind the stream; the next diff was a gap.
    book = book_cls(rule)
    book.load_snapshot(snap(100, [(100, 5), (99, 3)], [(101, 4), (102, 6)]))
    assert book.apply_diff(diff(100, 101, [(100, 7)], pu=99)) == APPLIED
    before = state_of(book)
    assert book.load_snapshot(snap(dup_id, [(90, 1)], [(95, 1)])) == SYNCED
    after = state_of(book)
    assert after.pop("stale_snapshots") == before.pop("stale_snapshots") + 1 and after == before
    assert book.apply_diff(diff(102, 103, [(99, 0)], pu=101)) == APPLIED       # the stream goes on
    assert book.gaps == 0 and book.levels(BID) == [(100, 7)]
    # a newer snapshot still replaces the book
    assert book.load_snapshot(snap(200, [(90, 1)], [(95, 1)])) == SYNCED
    assert book.levels(BID) == [(90, 1)] and book.last_update_id == 200 and book.stale_snapshots == 1


def test_duplicate_of_the_loaded_snapshot_before_the_first_diff_is_ignored():
    book = L2Book(SYNC_USDM)
    s = snap(100, [(100, 5)], [(101, 4)])
    assert book.load_snapshot(s) == SYNCED
    assert book.load_snapshot(s) == SYNCED and book.stale_snapshots == 1
    assert book.apply_diff(diff(99, 101, [(100, 6)], pu=98)) == APPLIED     # still the straddling rule


def test_microprice_of_a_crossed_book_with_far_apart_prices_is_accurate():
    # Found by tests/test_fuzz_core.py: bid + (ask - bid) * w cancelled catastrophically (111.0 for ~112).
    book, reference = L2Book(SYNC_SPOT), ref.ReferenceL2Book(SYNC_SPOT)
    for b in (book, reference):
        b.load_snapshot(snap(1, [(MAXP - 40, MAXQ - 1)], [(110, 2)]))
    assert book.microprice() == pytest.approx(reference.microprice(), rel=1e-12)
