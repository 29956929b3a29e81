"""Simulated exchange: latency, post-only, queue position, trade-through, partial fills, fees.

The book here is a tiny synthetic stand-in (labelled as such): the simulated exchange only reads best
bid/ask and the quantity at a price from it.
"""
from decimal import Decimal

from mmcore.execution import (BUY, SELL, OrderAccepted, OrderCanceled, OrderCancelRejected, OrderFilled,
                              OrderRejected)
from mmcore.sim.exchange import SimExchange
from mmcore.sim.models import ConservativeQueue, ConstantLatency, MakerFee


class SyntheticBook:
    """Synthetic top of book: best bid 100 / ask 102 ticks, with chosen quantities per price."""

    def __init__(self, bid=100, ask=102, levels=None):
        self.bid, self.ask = bid, ask
        self.levels = levels or {}

    def best_bid_px(self):
        return self.bid

    def best_ask_px(self):
        return self.ask

    def qty_at(self, side, price):
        return self.levels.get((side, price), 0)


def make(book=None, entry=10, cancel=10, fee_bps="2"):
    reports = []
    sim = SimExchange(book or SyntheticBook(), ConstantLatency(entry, cancel),
                      MakerFee(Decimal(fee_bps), Decimal("0.0001")), reports.append, ConservativeQueue())
    return sim, reports


def test_order_rests_only_after_entry_latency():
    sim, reps = make(entry=1000)
    sim.submit(0, "a", BUY, 100, 5)
    sim.advance(999)
    assert reps == [] and sim.open_orders() == []
    sim.advance(1000)
    assert reps == [OrderAccepted(1000, "a", "1")]
    assert sim.open_orders() == [("a", BUY, 100, 5)]


def test_trade_before_arrival_does_not_fill():
    sim, reps = make(entry=1000)
    sim.submit(0, "a", BUY, 101, 5)
    sim.on_trade(500, 1, 100, 50, SELL)      # trades through 101, but we are not there yet
    assert not any(isinstance(r, OrderFilled) for r in reps)


def test_post_only_buy_at_or_above_best_ask_is_rejected():
    sim, reps = make()
    sim.submit(0, "a", BUY, 102, 1)
    sim.submit(0, "b", SELL, 100, 1)
    sim.advance(10)
    assert [type(r) for r in reps] == [OrderRejected, OrderRejected]
    assert sim.open_orders() == []


def test_queue_position_trades_at_our_price_consume_the_queue_ahead_first():
    book = SyntheticBook(levels={(BUY, 100): 7})
    sim, reps = make(book)
    sim.submit(0, "a", BUY, 100, 5)
    sim.advance(10)                           # 7 lots stand ahead of us
    sim.on_trade(20, 1, 100, 4, SELL)         # 3 left ahead
    assert not [r for r in reps if isinstance(r, OrderFilled)]
    sim.on_trade(30, 2, 100, 5, SELL)         # 3 clear the queue, 2 fill us
    fills = [r for r in reps if isinstance(r, OrderFilled)]
    assert [(f.ts_ns, f.qty, f.price) for f in fills] == [(30, 2, 100)]
    sim.on_trade(40, 3, 100, 10, SELL)        # the rest (3) fills, order done
    fills = [r for r in reps if isinstance(r, OrderFilled)]
    assert [f.qty for f in fills] == [2, 3]
    assert sim.open_orders() == []


def test_cancels_ahead_do_not_move_us_forward():
    book = SyntheticBook(levels={(SELL, 102): 6})
    sim, reps = make(book)
    sim.submit(0, "a", SELL, 102, 2)
    sim.advance(10)
    book.levels[(SELL, 102)] = 0              # everyone ahead cancelled: ignored (conservative)
    sim.on_trade(20, 1, 102, 5, BUY)
    assert not [r for r in reps if isinstance(r, OrderFilled)]
    sim.on_trade(21, 2, 102, 3, BUY)          # 1 more clears the queue, 2 fill
    assert [r.qty for r in reps if isinstance(r, OrderFilled)] == [2]


def test_trade_through_fills_up_to_the_trade_quantity_at_our_price():
    book = SyntheticBook(levels={(BUY, 101): 1000})
    sim, reps = make(book)
    sim.submit(0, "a", BUY, 101, 10)
    sim.advance(10)
    sim.on_trade(20, 9, 100, 4, SELL)         # a sell at 100 went through our bid at 101
    fills = [r for r in reps if isinstance(r, OrderFilled)]
    assert [(f.price, f.qty, f.side, f.trade_id) for f in fills] == [(101, 4, BUY, 9)]


def test_trade_on_the_other_side_or_behind_our_price_does_not_fill():
    sim, reps = make()
    sim.submit(0, "b", BUY, 100, 5)
    sim.submit(0, "s", SELL, 102, 5)
    sim.advance(10)
    sim.on_trade(20, 1, 100, 50, BUY)         # a buy aggressor never hits our bid
    sim.on_trade(21, 2, 99, 0 + 1, BUY)       # buy at 99 is below our ask: no fill
    sim.on_trade(22, 3, 103, 50, SELL)        # sell at 103 is above our bid: no fill
    assert not [r for r in reps if isinstance(r, OrderFilled)]


def test_one_trade_is_shared_across_our_orders_best_price_first():
    sim, reps = make(SyntheticBook(bid=99, ask=110))
    sim.submit(0, "hi", SELL, 103, 3)
    sim.submit(0, "lo", SELL, 102, 3)
    sim.advance(10)
    sim.on_trade(20, 1, 104, 4, BUY)          # through both: 3 to the better (102), 1 to 103
    fills = [(r.client_order_id, r.qty) for r in reps if isinstance(r, OrderFilled)]
    assert fills == [("lo", 3), ("hi", 1)]


def test_maker_fee_is_exact_bps_of_notional():
    sim, reps = make(fee_bps="2")
    sim.submit(0, "a", BUY, 101, 10)
    sim.advance(10)
    sim.on_trade(20, 1, 100, 10, SELL)
    f = [r for r in reps if isinstance(r, OrderFilled)][0]
    # 101 ticks * 10 lots * 0.0001 quote per tick·lot = 0.101 quote; 2 bps of it:
    assert f.fee == Decimal("0.101") * Decimal("0.0002")


def test_negative_fee_is_a_rebate():
    sim, reps = make(fee_bps="-1")
    sim.submit(0, "a", SELL, 103, 10)
    sim.advance(10)
    sim.on_trade(20, 1, 104, 10, BUY)
    f = [r for r in reps if isinstance(r, OrderFilled)][0]
    assert f.fee < 0


def test_fill_can_arrive_between_cancel_request_and_cancel_effect():
    sim, reps = make(SyntheticBook(), entry=10, cancel=100)
    sim.submit(0, "a", BUY, 101, 5)
    sim.advance(10)
    sim.cancel(20, "a")                       # effective at 120
    sim.on_trade(50, 1, 100, 2, SELL)
    sim.advance(120)
    kinds = [type(r) for r in reps]
    assert kinds == [OrderAccepted, OrderFilled, OrderCanceled]
    assert reps[-1].remaining == 3


def test_cancel_of_unknown_or_filled_order_is_rejected():
    sim, reps = make()
    sim.submit(0, "a", BUY, 101, 1)
    sim.advance(10)
    sim.on_trade(20, 1, 100, 5, SELL)         # fully filled
    sim.cancel(30, "a")
    sim.cancel(30, "nope")
    sim.advance(40)
    assert [type(r) for r in reps][-2:] == [OrderCancelRejected, OrderCancelRejected]


def test_duplicate_client_order_id_is_rejected():
    sim, reps = make()
    sim.submit(0, "a", BUY, 100, 1)
    sim.submit(0, "a", BUY, 99, 1)
    sim.advance(10)
    assert [type(r) for r in reps] == [OrderAccepted, OrderRejected]
