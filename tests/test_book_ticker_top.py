"""Quoting on a bookTicker newer than the book (strategy.quote_on_book_ticker): synthetic events (labelled) on a
real engine wired from the default config. Binance's bookTicker ``u`` is the order-book update id the best
bid/offer reflects, the same sequence as the depth diffs' ``u``; one ahead of the book is fresher than it."""
from mmcore.config import load_config
from mmcore.engine.wiring import build_engine
from mmcore.instruments import load_instrument
from mmcore_ext.events import BookTicker, DepthDiff, DepthSnapshot

T = 1_723_161_300_000_000_000


class Client:
    def __init__(self):
        self.sent = []

    def submit(self, ts, coid, side, px, qty, post_only=True):
        self.sent.append((side, px))

    def cancel(self, ts, coid):
        pass


def _engine(on=True):
    cfg = load_config(overrides=[f"strategy.quote_on_book_ticker={'true' if on else 'false'}",
                                 "strategy.min_spread_bps=0.1", "risk.min_spread_frac=0.00001"])
    inst = load_instrument("binance_usdm", "BTCUSDT")
    eng = build_engine(cfg, inst, Client(), __import__("mmcore.persistence.journal", fromlist=["x"]).NullJournal())
    eng.on_event(DepthSnapshot.from_ticks(100, [(600_000, 50), (599_990, 50)], [(600_010, 50), (600_020, 50)],
                                          ts_local_ns=T))
    eng.on_event(DepthDiff.from_ticks(99, 101, [(600_001, 5)], [], prev_final_update_id=98, ts_local_ns=T + 1))
    return eng


def test_a_newer_book_ticker_moves_the_quotes_before_the_depth_diff_arrives():
    eng = _engine()
    bid0, ask0 = eng.last_bid, eng.last_ask
    assert bid0 and ask0
    # the market moved up 200 ticks: the bookTicker (u=105) arrives before the depth diff that carries it
    eng.on_event(BookTicker(T + 2, T + 2, 105, 600_200, 5, 600_210, 5))
    assert eng.counters["ticker_quotes"] == 1
    assert eng.last_bid > bid0 + 150 and eng.last_ask > ask0 + 150
    assert eng.book.best_bid_px() == 600_001                  # the book itself is not touched
    # a stale ticker (u at or behind the book) changes nothing
    eng.on_event(BookTicker(T + 3, T + 3, 100, 500_000, 5, 500_010, 5))
    assert eng.counters["ticker_quotes"] == 1
    # the diff catches up (u=105): the book is the top again, and the ticker is checked against it
    eng.on_event(DepthDiff.from_ticks(102, 105, [(600_200, 5)], [(600_010, 0), (600_020, 0), (600_210, 5)],
                                      prev_final_update_id=101, ts_local_ns=T + 4))
    assert eng.book.best_bid_px() == 600_200 and eng.counters["bbo_checks_ok"] == 1


def test_off_the_quotes_wait_for_the_depth_diff_and_a_crossed_ticker_is_ignored():
    eng = _engine(on=False)
    bid0 = eng.last_bid
    eng.on_event(BookTicker(T + 2, T + 2, 105, 600_200, 5, 600_210, 5))
    assert eng.last_bid == bid0 and eng.counters["ticker_quotes"] == 0
    on = _engine()
    bid1 = on.last_bid
    on.on_event(BookTicker(T + 2, T + 2, 105, 600_300, 5, 600_200, 5))      # bid above ask: not a top
    assert on.last_bid == bid1 and on.counters["ticker_quotes"] == 0
