"""Order manager: keep/replace by tolerance and TTL, orders per side, waiting for cancel acks, post-only
re-price once, cancel reject restoring the order, duplicate fills, risk refusals and cancel-rate limits.

Uses the compiled risk gate and order state machine with a recording execution client (no exchange)."""
import logging
from decimal import Decimal

import pytest

from mmcore.execution import (BUY, POST_ONLY_REJECT, SELL, OrderAccepted, OrderAmended, OrderAmendRejected,
                              OrderCanceled, OrderCancelRejected, OrderFilled, OrderRejected)
from mmcore.persistence.journal import NullJournal
from mmcore.engine.order_manager import OrderManager
from mmcore.risk_config import RiskConfig
from mmcore_ext import orders as om
from mmcore_ext.orders import ClientOrderIdGenerator
from mmcore_ext.risk import RiskGate

TICK, LOT = Decimal("0.1"), Decimal("0.001")
MID_X2 = 2 * 618000          # mid 61800.0
S = 1_000_000_000


class RecordingClient:
    def __init__(self):
        self.sent = []

    def submit(self, ts, coid, side, px, qty, post_only=True):
        self.sent.append(("submit", coid, side, px, qty, post_only))

    def cancel(self, ts, coid):
        self.sent.append(("cancel", coid))

    def kinds(self):
        return [x[0] for x in self.sent]


def make(tol=3, ttl_s=10, per_side=1, wait_ack=False, **risk):
    cfg = RiskConfig(**{"max_single_trade_usdt": 500, "max_symbol_notional_usdt": 5000,
                        "max_global_notional_usdt": 10000, "min_spread_frac": 0.0, **risk})
    gate = RiskGate(cfg, TICK, LOT, "BTCUSDT")
    gate.on_market(0, MID_X2, True)
    client = RecordingClient()
    mgr = OrderManager(client, gate, ClientOrderIdGenerator("t-"), NullJournal(), tol, 0.0, ttl_s * S, per_side,
                       wait_ack)
    return mgr, client, gate


def test_places_both_sides_then_keeps_them_within_tolerance_and_ttl():
    mgr, c, _ = make()
    mgr.reconcile(1, 617990, 618010, 2)
    assert [(k, side, px) for k, _, side, px, *_ in c.sent] == [("submit", BUY, 617990), ("submit", SELL, 618010)]
    mgr.reconcile(2, 617993, 618007, 2)           # moved 3 ticks: within tolerance
    assert len(c.sent) == 2


def test_price_moved_beyond_tolerance_cancels_and_replaces():
    mgr, c, _ = make(per_side=2)
    mgr.reconcile(1, 617990, 0, 2)
    mgr.reconcile(2, 617986, 0, 2)                # 4 ticks > 3
    assert c.kinds() == ["submit", "cancel", "submit"]
    assert c.sent[2][3] == 617986


def test_order_older_than_ttl_is_replaced_at_the_same_price():
    mgr, c, gate = make(ttl_s=10, per_side=2)
    mgr.reconcile(0, 617990, 0, 2)
    gate.on_market(10 * S - 1, MID_X2, True)
    mgr.reconcile(10 * S - 1, 617990, 0, 2)
    assert c.kinds() == ["submit"]
    mgr.reconcile(10 * S, 617990, 0, 2)
    assert c.kinds() == ["submit", "cancel", "submit"]


def test_stale_market_data_refuses_the_replacement():
    mgr, c, _ = make(ttl_s=10, per_side=2)        # stale_after_s defaults to 5 s
    mgr.reconcile(0, 617990, 0, 2)
    mgr.reconcile(10 * S, 617990, 0, 2)           # no market update for 10 s
    assert c.kinds() == ["submit", "cancel"]
    assert mgr.refusal_counts() == {"STALE_DATA": 1}


def test_never_more_than_the_configured_orders_per_side():
    mgr, c, _ = make(per_side=1)
    mgr.reconcile(1, 617990, 0, 2)
    mgr.reconcile(2, 617980, 0, 2)                # cancel sent, but the old order still counts (can fill)
    assert c.kinds() == ["submit", "cancel"]
    coid = c.sent[0][1]
    mgr.on_report(OrderCanceled(3, coid, 2))
    mgr.reconcile(4, 617980, 0, 2)
    assert c.kinds() == ["submit", "cancel", "submit"]


def test_wait_for_cancel_ack_holds_new_orders_on_that_side():
    mgr, c, _ = make(per_side=2, wait_ack=True)
    mgr.reconcile(1, 617990, 0, 2)
    mgr.reconcile(2, 617980, 0, 2)
    assert c.kinds() == ["submit", "cancel"]
    mgr.on_report(OrderCanceled(3, c.sent[0][1], 2))
    mgr.reconcile(4, 617980, 0, 2)
    assert c.kinds() == ["submit", "cancel", "submit"]


def test_post_only_reject_reprices_one_tick_away_only_once():
    mgr, c, _ = make()
    mgr.reconcile(1, 617999, 0, 2)
    first = c.sent[0][1]
    mgr.on_report(OrderRejected(2, first, "would match", POST_ONLY_REJECT))
    assert c.sent[-1][:4] == ("submit", c.sent[-1][1], BUY, 617998)
    second = c.sent[-1][1]
    mgr.on_report(OrderRejected(3, second, "would match", POST_ONLY_REJECT))
    assert len(c.sent) == 2                       # not re-priced a second time
    assert mgr.counters["post_only_repriced"] == 1
    assert mgr.state_counts() == {"REJECTED": 2}


def test_post_only_reject_of_an_order_being_cancelled_is_not_repriced():
    mgr, c, _ = make()
    mgr.reconcile(1, 617990, 0, 2)
    coid = c.sent[0][1]
    mgr.cancel_all(2)                                     # e.g. a pause, halt or shutdown
    mgr.on_report(OrderRejected(3, coid, "would match", POST_ONLY_REJECT))
    assert c.kinds() == ["submit", "cancel"] and not mgr.orders      # nothing new placed
    assert mgr.counters["post_only_repriced"] == 0


def test_cancel_reject_restores_the_order_and_it_is_tracked_again():
    mgr, c, _ = make()
    mgr.reconcile(1, 617990, 0, 2)
    coid = c.sent[0][1]
    mgr.on_report(OrderAccepted(2, coid, "v1"))
    mgr.reconcile(3, 617970, 0, 2)                # replace: cancel goes out; new order waits (1 per side)
    assert mgr.orders[coid].state == om.PENDING_CANCEL
    mgr.on_report(OrderCancelRejected(4, coid, "unknown order"))
    assert mgr.orders[coid].state == om.ACCEPTED
    assert mgr.working[BUY] is mgr.orders[coid]


def test_fill_after_cancel_request_and_duplicate_report_is_ignored():
    mgr, c, gate = make()
    mgr.reconcile(1, 617990, 0, 2)
    coid = c.sent[0][1]
    mgr.on_report(OrderAccepted(2, coid, "v1"))
    mgr.cancel_all(3)
    fill = OrderFilled(4, coid, 77, BUY, 617990, 1, Decimal("0"))
    assert mgr.on_report(fill) is not None
    assert mgr.on_report(fill) is None            # same trade id again
    assert mgr.counters["duplicate_fills"] == 1
    assert gate.position_lots == 1
    mgr.on_report(OrderCanceled(5, coid, 1))
    assert mgr.state_counts() == {"CANCELED": 1} and not mgr.orders


def test_fill_below_the_limit_releases_the_open_notional_recorded_at_the_limit():
    """An aggressive (IOC) buy fills below its limit: the gate's open notional was recorded at the limit
    price and must go back to 0 when the order is done, or later orders are refused on a phantom cap."""
    mgr, c, gate = make()
    coid = mgr.place(1, BUY, 618500, 3, post_only=False, check_risk=False).client_order_id
    assert gate.open_buy_notional_tl == 618500 * 3
    mgr.on_report(OrderAccepted(2, coid, "v1"))
    mgr.on_report(OrderFilled(3, coid, 1, BUY, 618010, 2, Decimal("0")))      # two levels through the book
    mgr.on_report(OrderFilled(3, coid, 2, BUY, 618020, 1, Decimal("0")))
    assert not mgr.orders and gate.position_lots == 3
    assert gate.open_buy_notional_tl == 0 and gate.open_buy_qty_lots == 0


def test_risk_refusal_places_nothing_and_is_counted():
    mgr, c, _ = make(max_single_trade_usdt=100)   # 2 lots * 61799 = 123.6 USDT > 100
    mgr.reconcile(1, 617990, 618010, 2)
    assert c.sent == []
    assert mgr.refusal_counts() == {"MAX_ORDER_NOTIONAL": 2}


def test_cancel_rate_limit_keeps_the_order_instead_of_replacing():
    mgr, c, _ = make(cancels_per_window=1, window_s=10.0)
    mgr.reconcile(1, 617990, 0, 2)
    mgr.reconcile(2, 617900, 0, 2)                # first replace: cancel allowed
    mgr.on_report(OrderCanceled(3, c.sent[0][1], 2))
    mgr.reconcile(4, 617900, 0, 2)
    n = len(c.sent)
    mgr.reconcile(5, 617800, 0, 2)                # second cancel within the window: refused, order kept
    assert len(c.sent) == n
    assert mgr.refusal_counts().get("CANCEL_RATE") == 1


def test_illegal_report_is_logged_counted_and_leaves_the_order_unchanged(caplog):
    mgr, c, _ = make()
    mgr.reconcile(1, 617990, 0, 2)
    coid = c.sent[0][1]
    mgr.on_report(OrderAccepted(2, coid, "v1"))
    mgr.on_report(OrderFilled(3, coid, 1, BUY, 617990, 2, Decimal("0")))    # filled and closed
    mgr.reconcile(4, 617990, 0, 2)
    new = c.sent[-1][1]
    mgr.on_report(OrderAccepted(5, new, "v2"))
    before = mgr.orders[new].state
    mgr.on_report(OrderRejected(6, new, "late reject"))                     # REJECT after ACK: illegal
    assert mgr.orders[new].state == before and mgr.orders[new].filled == 0
    assert mgr.counters["illegal_transitions"] == 1
    assert "order " + new in caplog.text


# --- fill reports that contradict their order (issue 8, item 2) ---

class RecordingJournal(NullJournal):
    def __init__(self):
        self.calls = []

    def record_fill(self, *args, **kwargs):
        self.calls.append(("fill", args))
        return True

    def record_event(self, *args, **kwargs):
        self.calls.append(("event", args))


def _resting_buy(journal=None):
    """A manager with one acknowledged buy of 2 lots at 617990 ticks (synthetic reports, no exchange)."""
    mgr, c, gate = make()
    if journal is not None:
        mgr.journal = journal
    mgr.reconcile(1, 617990, 0, 2)
    coid = c.sent[0][1]
    mgr.on_report(OrderAccepted(2, coid, "v1"))
    if journal is not None:
        journal.calls.clear()
    return mgr, gate, coid


@pytest.mark.parametrize("rep_fields, field", [
    ((SELL, 617990, 1), "side"),                 # the other side
    ((BUY, 617990, 3), "quantity"),              # more than the 2 lots left
    ((BUY, 617991, 1), "price"),                 # a buy filled above its limit
    ((BUY, 0, 1), "price"),                      # a non-positive price
    ((BUY, 617990, 0), "quantity"),              # a zero quantity
    ((BUY, 617990, 2**64), "quantity"),          # beyond int64
])
def test_contradicting_fill_report_is_refused_counted_logged_and_never_booked(rep_fields, field, caplog):
    journal = RecordingJournal()
    mgr, gate, coid = _resting_buy(journal)
    side, px, qty = rep_fields
    before = (gate.position_lots, gate.open_buy_qty_lots, gate.open_buy_notional_tl)
    with caplog.at_level(logging.ERROR, logger="mmcore.orders"):
        assert mgr.on_report(OrderFilled(3, coid, 77, side, px, qty, Decimal("0.01"))) is None
    o = mgr.orders[coid]
    assert (o.filled, o.fill_count, om.STATE_NAMES[o.state]) == (0, 0, "ACCEPTED")
    assert not o.has_trade(77)                     # a later honest report with this trade id still books
    assert (gate.position_lots, gate.open_buy_qty_lots, gate.open_buy_notional_tl) == before
    assert journal.calls == []
    assert mgr.counters["fill_contradictions"] == 1 and mgr.counters["illegal_transitions"] == 0
    (rec,) = [r for r in caplog.records if r.name == "mmcore.orders" and r.levelno == logging.ERROR]
    assert coid in rec.getMessage() and "77" in rec.getMessage() and field in rec.getMessage()


def test_sell_filled_below_its_limit_is_refused_and_a_better_price_is_booked():
    mgr, c, gate = make()
    mgr.reconcile(1, 0, 618010, 2)
    coid = c.sent[0][1]
    mgr.on_report(OrderAccepted(2, coid, "v1"))
    assert mgr.on_report(OrderFilled(3, coid, 5, SELL, 618009, 1, Decimal("0"))) is None
    assert mgr.counters["fill_contradictions"] == 1 and gate.position_lots == 0
    assert mgr.on_report(OrderFilled(4, coid, 6, SELL, 618011, 1, Decimal("0"))) is not None   # price improvement
    assert gate.position_lots == -1 and mgr.counters["fill_contradictions"] == 1


def test_duplicate_trade_id_stays_a_duplicate_even_if_its_fields_differ():
    mgr, _, coid = _resting_buy()
    assert mgr.on_report(OrderFilled(3, coid, 9, BUY, 617990, 1, Decimal("0"))) is not None
    # Same trade id again, now claiming 2 lots (more than the 1 left): a repeat, not a contradiction.
    assert mgr.on_report(OrderFilled(4, coid, 9, BUY, 617990, 2, Decimal("0"))) is None
    assert mgr.counters["duplicate_fills"] == 1 and mgr.counters["fill_contradictions"] == 0
    assert mgr.orders[coid].filled == 1


def test_engine_does_not_book_a_contradicting_fill_in_the_portfolio():
    """Through Engine.on_report: a report with the wrong side moves neither the portfolio nor the gate, and
    the journal never sees it (synthetic report on a real engine wired from the default config)."""
    from mmcore.config import load_config
    from mmcore.instruments import load_instrument
    from mmcore.engine.wiring import build_engine

    cfg = load_config()
    inst = load_instrument("binance_usdm", "BTCUSDT", cfg.resolve_path(cfg.get("data.markets")))
    journal = RecordingJournal()
    client = RecordingClient()
    eng = build_engine(cfg, inst, client, journal)
    eng.gate.on_market(1, MID_X2, True)
    o = eng.orders.place(1, BUY, 617990, 2)
    eng.on_report(OrderAccepted(2, o.client_order_id, "v1"))
    journal.calls.clear()
    eng.on_report(OrderFilled(3, o.client_order_id, 11, SELL, 617990, 2, Decimal("0.1")))
    assert eng.portfolio.position == 0 and eng.portfolio.fees == 0 and eng.fills == []
    assert eng.gate.position_lots == 0 and journal.calls == []
    eng.on_report(OrderFilled(4, o.client_order_id, 12, BUY, 617990, 2, Decimal("0.1")))   # the honest one
    assert eng.portfolio.position == 2 and len(eng.fills) == 1
    assert [k for k, _ in journal.calls].count("fill") == 1


# --- in-place amends (USDⓈ-M order.modify) ---
class AmendingClient(RecordingClient):
    supports_modify = True

    def modify(self, ts, coid, side, px, qty):
        self.sent.append(("modify", coid, side, px, qty))


def make_amending(**kw):
    mgr, _, gate = make(**kw)
    client = AmendingClient()
    mgr = OrderManager(client, gate, ClientOrderIdGenerator("t-"), NullJournal(), 3, 0.0, 10 * S, 1, False,
                       amend_orders=True)
    return mgr, client, gate


def _accepted_bid(mgr, px=617990):
    mgr.reconcile(1, px, 0, 2)
    coid = mgr.working[BUY].client_order_id
    mgr.on_report(OrderAccepted(2, coid, "v1"))
    return coid


def test_amend_instead_of_cancel_and_replace_then_the_ack_moves_the_order_and_its_open_notional():
    mgr, c, gate = make_amending()
    coid = _accepted_bid(mgr)
    mgr.reconcile(3, 617980, 0, 2)                               # 10 ticks away: amended in place
    assert c.sent[-1] == ("modify", coid, BUY, 617980, 2) and c.kinds().count("cancel") == 0
    o = mgr.orders[coid]
    assert o.state == om.PENDING_REPLACE
    mgr.reconcile(4, 617970, 0, 2)                               # one request in flight: nothing more
    assert len(c.sent) == 2
    mgr.on_report(OrderAmended(5, coid, 617980, 2))
    assert o.state == om.ACCEPTED and o.price == 617980 and gate.open_buy_notional_tl == 617980 * 2
    mgr.on_report(OrderAmended(6, coid, 617980, 2))              # the user data's copy: ignored
    assert mgr.counters["duplicate_amends"] == 1 and gate.open_buy_qty_lots == 2
    mgr.on_report(OrderFilled(7, coid, 1, BUY, 617980, 2, Decimal(0)))
    assert coid not in mgr.orders and gate.open_buy_qty_lots == 0 and gate.open_buy_notional_tl == 0


def test_a_refused_amend_keeps_the_order_and_a_gate_refusal_falls_back_to_cancel():
    mgr, c, gate = make_amending()
    coid = _accepted_bid(mgr)
    mgr.reconcile(3, 617980, 0, 2)
    mgr.on_report(OrderAmendRejected(4, coid, "No need to modify the order.", "BINANCE:-5027"))
    o = mgr.orders[coid]
    assert o.state == om.ACCEPTED and o.price == 617990 and gate.open_buy_notional_tl == 617990 * 2
    assert mgr.counters["amend_rejects"] == 1
    mgr.reconcile(5, 300000, 0, 2)                               # far outside the price band: no amend
    assert ("modify", coid, BUY, 300000, 2) not in c.sent and ("cancel", coid) in c.sent


def test_an_amend_nobody_asked_for_is_mirrored_and_the_order_canceled():
    mgr, c, gate = make_amending()
    coid = _accepted_bid(mgr)
    mgr.on_report(OrderAmended(3, coid, 617900, 3))               # another session changed it at the venue
    o = mgr.orders[coid]
    assert (o.price, o.qty, o.state) == (617900, 3, om.PENDING_CANCEL)
    assert gate.open_buy_qty_lots == 3 and gate.open_buy_notional_tl == 617900 * 3
    assert mgr.counters["amended_by_venue"] == 1 and c.sent[-1] == ("cancel", coid)
    mgr.on_report(OrderFilled(4, coid, 9, BUY, 617900, 3, Decimal(0)))   # 3 lots fill: not an overfill
    assert mgr.counters["fill_contradictions"] == 0 and coid not in mgr.orders


def test_without_supports_modify_the_manager_cancels_and_replaces():
    mgr, c, _ = make()
    mgr.amend_orders = True                                      # asked for, but the client cannot
    coid = _accepted_bid(mgr)
    assert not mgr.amend(3, coid, 617980)
    mgr.reconcile(3, 617980, 0, 2)
    assert ("cancel", coid) in c.sent and "modify" not in c.kinds()


@pytest.mark.parametrize("answer", ["amended", "rejected"])
def test_a_cancel_all_during_an_amend_is_sent_once_the_amend_is_answered(answer):
    mgr, c, _ = make_amending()
    coid = _accepted_bid(mgr)
    assert mgr.amend(3, coid, 617980)
    mgr.cancel_all(4)                                            # the amend in flight: no second request now
    assert ("cancel", coid) not in c.sent and mgr.counters["illegal_transitions"] == 0
    assert not mgr.cancel_order(4, coid)
    rep = (OrderAmended(5, coid, 617980, 2) if answer == "amended" else
           OrderAmendRejected(5, coid, "No need to modify the order.", "BINANCE:-5027"))
    mgr.on_report(rep)
    assert c.sent[-1] == ("cancel", coid) and mgr.orders[coid].state == om.PENDING_CANCEL
    assert mgr.counters["illegal_transitions"] == 0


def test_ttl_expiry_waits_for_an_amend_in_flight():
    mgr, c, _ = make_amending()
    coid = _accepted_bid(mgr)
    mgr.amend(3, coid, 617980)
    assert mgr.expire_working(20 * S) == 0 and mgr.counters["illegal_transitions"] == 0
    mgr.on_report(OrderAmended(20 * S + 1, coid, 617980, 2))
    assert mgr.expire_working(20 * S + 2) == 1 and c.sent[-1] == ("cancel", coid)
