"""reconcile(): journal state + the venue's open orders and fills -> order manager, portfolio, gate, journal.

Plain data in (JournalState rows, VenueOrder, OrderFilled), a real OrderManager / RiskGate / Portfolio /
Journal (tmp file) out; the venue is a recorder of submit/cancel requests. Prices are BTCUSDT USDⓈ-M ticks
(0.1 USDT) near the recording's 61 800 USDT, quantities lots (0.001 BTC).
"""
import sqlite3
from decimal import Decimal

import pytest

from mmcore.engine.accounting import Portfolio
from mmcore.config import DEFAULT_CONFIG, load_config
from mmcore.execution import BUY, SELL, OrderAccepted, OrderFilled
from mmcore.persistence.journal import FillRow, Journal, JournalState, OrderRow, PositionRow
from mmcore.engine.order_manager import OrderManager
from mmcore.engine.recovery import (FILLS_LOOKBACK_NS, TERMINAL_STATE_NAMES, LateFill, VenueOrder,
                             book_untracked_fill, coid_counter, fills_query_start, reconcile, recover)
from mmcore_ext import orders as om
from mmcore_ext.orders import ClientOrderIdGenerator
from mmcore_ext.risk import ACTIVE, HALTED, RiskGate

PX = 618_000                      # ticks
T0 = 1_723_161_300_000_000_000    # ns
FEE = Decimal("0.0247")


class Venue:
    """Records the requests the reconciliation sends."""

    def __init__(self):
        self.submits, self.cancels = [], []

    def submit(self, ts_ns, coid, side, price, qty, post_only=True):
        self.submits.append(coid)

    def cancel(self, ts_ns, coid):
        self.cancels.append(coid)


@pytest.fixture
def setup(tmp_path, usdm):
    cfg = load_config(DEFAULT_CONFIG)
    venue = Venue()
    journal = Journal(tmp_path / "j.db")
    gate = RiskGate(cfg.risk, usdm.tick_size, usdm.lot_size, usdm.symbol)
    orders = OrderManager(venue, gate, ClientOrderIdGenerator("mm-", 0, "all"), journal, 3, 0.0, 15_000_000_000)
    yield venue, orders, Portfolio(usdm), journal
    journal.close()


def row(coid, side=BUY, price=PX, qty=4, filled=0, state="ACCEPTED", ts=T0):
    return OrderRow(coid, "v" + coid, side, price, qty, filled, state, ts, ts)


def jfill(coid, trade_id, side=BUY, price=PX, qty=1, ts=T0 + 1):
    return FillRow(ts, coid, trade_id, side, price, qty, FEE)


def vfill(coid, trade_id, side=BUY, price=PX, qty=1, ts=T0 + 1):
    return OrderFilled(ts, coid, trade_id, side, price, qty, FEE)


def vorder(coid, side=BUY, price=PX, qty=4, filled=0, status="NEW"):
    return VenueOrder(coid, side, price, qty, filled, status, "v" + coid, T0)


def journal_states(journal):
    journal.flush()
    conn = sqlite3.connect(journal.path)
    try:
        return dict(conn.execute("SELECT client_order_id, state FROM orders"))
    finally:
        conn.close()


def test_order_open_in_journal_and_at_venue_is_adopted_with_its_fills(setup):
    venue, orders, pf, journal = setup
    state = JournalState(open_orders=[row("mm-5", filled=1, state="PARTIALLY_FILLED")], fills=[jfill("mm-5", 11)])
    rep = reconcile(state, [vorder("mm-5", filled=1, status="PARTIALLY_FILLED")], [vfill("mm-5", 11)],
                    orders, pf, T0 + 10, restart=True)
    o = orders.orders["mm-5"]
    assert rep.adopted == ["mm-5"] and rep.fills_booked == [] and rep.fills_known == 1
    assert (om.STATE_NAMES[o.state], o.filled, o.remaining, o.venue_order_id) == ("PARTIALLY_FILLED", 1, 3, "vmm-5")
    assert orders.working[BUY] is o and orders.live_count[BUY] == 1
    assert orders.gate.open_buy_qty_lots == 3 and orders.gate.position_lots == 1 == pf.position
    assert venue.cancels == [] and not rep.mismatches
    # A repeated report of the journaled fill is recognised by the adopted order.
    assert orders.on_report(vfill("mm-5", 11)) is None and orders.counters["duplicate_fills"] == 1


def test_adopted_order_books_the_fill_it_got_while_we_were_down(setup):
    venue, orders, pf, journal = setup
    state = JournalState(open_orders=[row("mm-5")])
    rep = reconcile(state, [vorder("mm-5", filled=1, status="PARTIALLY_FILLED")], [vfill("mm-5", 12)],
                    orders, pf, T0 + 10, restart=True)
    o = orders.orders["mm-5"]
    assert [f.trade_id for f in rep.fills_booked] == [12]
    assert (o.filled, pf.position, orders.gate.position_lots, orders.gate.open_buy_qty_lots) == (1, 1, 1, 3)
    assert journal.known_trade_ids() == {("mm-5", 12)}
    assert not rep.mismatches


def test_order_open_in_journal_whose_venue_fills_cover_it_is_closed_filled(setup):
    venue, orders, pf, journal = setup
    journal.record_order(T0, "mm-7", SELL, PX, 2, "ACCEPTED")
    state = journal.load(TERMINAL_STATE_NAMES)
    rep = reconcile(state, [], [vfill("mm-7", 21, side=SELL, qty=2)], orders, pf, T0 + 10, restart=True)
    assert rep.closed_filled == ["mm-7"] and rep.closed_canceled == []
    assert pf.position == -2 == orders.gate.position_lots and orders.orders == {}
    assert journal_states(journal)["mm-7"] == "FILLED"
    assert journal.known_trade_ids() == {("mm-7", 21)}


def test_order_open_in_journal_without_fills_and_not_at_venue_is_closed_canceled(setup):
    venue, orders, pf, journal = setup
    journal.record_order(T0, "mm-8", BUY, PX, 4, "SUBMITTED")
    journal.record_order(T0, "mm-9", SELL, PX + 5, 4, "PENDING_CANCEL")
    journal.record_fill(T0 + 1, "mm-9", 31, SELL, PX + 5, 1, FEE)      # partly filled, then canceled
    state = journal.load(TERMINAL_STATE_NAMES)
    rep = reconcile(state, [], [vfill("mm-9", 31, side=SELL, price=PX + 5)], orders, pf, T0 + 10, restart=True)
    assert sorted(rep.closed_canceled) == ["mm-8", "mm-9"] and rep.closed_filled == []
    assert rep.fills_booked == [] and pf.position == -1
    assert journal_states(journal) == {"mm-8": "CANCELED", "mm-9": "CANCELED"}
    assert journal.load(TERMINAL_STATE_NAMES).open_orders == []


def test_own_order_at_venue_unknown_to_journal_is_adopted_and_cancelled(setup):
    venue, orders, pf, journal = setup
    rep = reconcile(JournalState(), [vorder("mm-c", side=SELL)], [], orders, pf, T0, restart=True)
    assert rep.unknown_adopted == ["mm-c"] == rep.unknown_canceled and venue.cancels == ["mm-c"]
    assert orders.orders["mm-c"].state == om.PENDING_CANCEL and orders.working[SELL] is None
    # Its cancel ack closes it like any other order.
    from mmcore.execution import OrderCanceled
    orders.on_report(OrderCanceled(T0 + 5, "mm-c", 4))
    assert orders.orders == {} and journal_states(journal)["mm-c"] == "CANCELED"


def test_own_unknown_order_is_kept_working_with_the_adopt_policy(setup):
    venue, orders, pf, journal = setup
    rep = reconcile(JournalState(), [vorder("mm-c", side=SELL)], [], orders, pf, T0, restart=True,
                    unknown_policy="adopt")
    assert rep.unknown_adopted == ["mm-c"] and rep.unknown_canceled == [] and venue.cancels == []
    assert orders.working[SELL] is orders.orders["mm-c"]


def test_second_adopted_order_on_a_side_is_cancelled(setup):
    venue, orders, pf, journal = setup
    state = JournalState(open_orders=[row("mm-1"), row("mm-2", price=PX - 3)])
    rep = reconcile(state, [vorder("mm-1"), vorder("mm-2", price=PX - 3)], [], orders, pf, T0, restart=True)
    assert rep.adopted == ["mm-1", "mm-2"] and venue.cancels == ["mm-2"]
    assert orders.working[BUY] is orders.orders["mm-1"]


def test_foreign_orders_are_left_alone_unless_asked(setup):
    venue, orders, pf, journal = setup
    rep = reconcile(JournalState(), [vorder("manual-1")], [vfill("manual-1", 5)], orders, pf, T0, restart=True)
    assert rep.foreign_orders == ["manual-1"] and venue.cancels == [] and orders.orders == {}
    assert rep.fills_foreign == 1 and rep.fills_booked == [] and pf.position == 0
    rep = reconcile(JournalState(), [vorder("manual-1")], [], orders, pf, T0, restart=False, cancel_foreign=True)
    assert venue.cancels == ["manual-1"]


def test_an_id_that_only_starts_with_our_prefix_is_someone_elses(setup):
    venue, orders, pf, _ = setup                          # our prefix "mm-"; another bot's is "mm-b-"
    rep = reconcile(JournalState(), [vorder("mm-b-7")], [vfill("mm-b-7", 5)], orders, pf, T0, restart=True)
    assert rep.foreign_orders == ["mm-b-7"] and venue.cancels == [] and not rep.unknown_canceled
    assert rep.fills_foreign == 1 and pf.position == 0


def test_order_sent_under_an_earlier_prefix_is_still_ours_when_the_journal_knows_it(setup):
    venue, orders, pf, _ = setup                          # the prefix was "old-" when this order was sent
    state = JournalState(open_orders=[row("old-3")])
    rep = reconcile(state, [vorder("old-3")], [vfill("old-3", 9)], orders, pf, T0, restart=True)
    assert rep.adopted == ["old-3"] and rep.foreign_orders == [] and "old-3" in orders.orders
    assert rep.fills_foreign == 0 and pf.position == 1


def test_fill_reported_twice_is_booked_once(setup):
    venue, orders, pf, journal = setup
    journal.record_order(T0, "mm-3", BUY, PX, 2, "ACCEPTED")
    journal.record_fill(T0 + 1, "mm-3", 40, BUY, PX, 1, FEE)
    state = journal.load(TERMINAL_STATE_NAMES)
    fills = [vfill("mm-3", 40), vfill("mm-3", 41, ts=T0 + 2), vfill("mm-3", 41, ts=T0 + 2)]
    rep = reconcile(state, [], fills, orders, pf, T0 + 10, restart=True)
    assert [f.trade_id for f in rep.fills_booked] == [41]
    assert (rep.fills_known, rep.fills_duplicate) == (1, 1)
    assert pf.position == 2 == orders.gate.position_lots and pf.buy_count == 2
    assert rep.closed_filled == ["mm-3"]
    # Reconciling again (a reconnect) books nothing more; nor does a late live report of the same fill.
    rep2 = reconcile(journal.load(TERMINAL_STATE_NAMES), [], fills, orders, pf, T0 + 20, restart=False)
    assert rep2.fills_booked == [] and rep2.fills_known == 2
    assert book_untracked_fill(vfill("mm-3", 41, ts=T0 + 2), orders, pf) is LateFill.DUPLICATE
    assert pf.position == 2 and journal.known_trade_ids() == {("mm-3", 40), ("mm-3", 41)}
    assert journal_states(journal)["mm-3"] == "FILLED"


def test_late_fill_of_an_untracked_order_is_booked_once(setup):
    venue, orders, pf, journal = setup
    journal.record_order(T0, "mm-z", BUY, PX, 4, "CANCELED")          # closed by a reconciliation
    assert book_untracked_fill(vfill("mm-z", 9), orders, pf) is LateFill.BOOKED
    assert book_untracked_fill(vfill("mm-z", 9), orders, pf) is LateFill.DUPLICATE
    assert book_untracked_fill(vfill("other-1", 9), orders, pf) is LateFill.FOREIGN
    assert pf.position == 1 == orders.gate.position_lots
    assert journal.known_trade_ids() == {("mm-z", 9)}


def test_restart_rebuilds_portfolio_from_journal_fills_and_notes_a_lagging_snapshot(setup, usdm):
    venue, orders, pf, journal = setup
    fills = [jfill("mm-1", 1, BUY, PX, 3), jfill("mm-2", 2, SELL, PX + 10, 1, ts=T0 + 2)]
    state = JournalState(fills=fills, position=PositionRow(T0 + 1, 3, -3 * PX, FEE))
    rep = reconcile(state, [], [], orders, pf, T0 + 10, restart=True)
    ref = Portfolio(usdm)
    for f in fills:
        ref.on_fill(f.side, f.price_ticks, f.qty_lots, f.fee)
    assert (pf.position, pf.cash_tl, pf.fees, pf.realized_tl) == (ref.position, ref.cash_tl, ref.fees, ref.realized_tl)
    assert orders.gate.position_lots == 2 and rep.fills_restored == 2
    assert rep.snapshot_lagged and rep.mismatches == []
    journal.flush()
    assert journal.load(TERMINAL_STATE_NAMES).position.position_lots == 2      # a fresh snapshot is written


def test_client_order_id_counter_restored_past_every_used_id(setup):
    venue, orders, pf, journal = setup
    used = "mm-" + "1l"                                         # counter 57, seen only at the venue
    state = JournalState(kv={"coid_counter": 40})
    rep = reconcile(state, [], [vfill(used, 3)], orders, pf, T0, restart=True)
    assert coid_counter(used, "mm-") == 57 and rep.coid_counter_after == 58
    orders.gate.on_market(T0, 2 * PX + 1, True)
    o = orders.place(T0, BUY, PX - 20, 2)
    assert o is not None and coid_counter(o.client_order_id, "mm-") == 58 and venue.submits == [o.client_order_id]
    # The journal's marks win when they are ahead; a reconnect never moves the counter back.
    rep = reconcile(JournalState(kv={"coid_counter": 1000}), [], [], orders, pf, T0, restart=False)
    assert rep.coid_counter_after == 59
    assert orders.restore_coid_counter(10) is False and orders.coids.counter == 59


def test_journal_counter_reservation_is_used_on_restart(setup):
    venue, orders, pf, journal = setup
    rep = reconcile(JournalState(kv={"coid_counter": 300}), [], [], orders, pf, T0, restart=True)
    assert rep.coid_counter_after == 300


def test_reconnect_completes_the_in_memory_state(setup):
    venue, orders, pf, journal = setup
    orders.gate.on_market(T0, 2 * PX + 1, True)
    a = orders.place(T0, BUY, PX - 10, 2)          # ack lost with the connection: open at the venue
    b = orders.place(T0, SELL, PX + 10, 2)         # canceled by the venue while we were away
    ca, cb = a.client_order_id, b.client_order_id
    orders.cancel_all(T0 + 1)                      # both cancels in flight ...
    state = journal.load(TERMINAL_STATE_NAMES)
    rep = reconcile(state, [vorder(ca, price=PX - 10, qty=2)], [], orders, pf, T0 + 10, restart=False)
    # ... a's cancel may have died with the connection: sent again; b is gone: closed as canceled.
    assert rep.cancels_sent == [ca] and venue.cancels == [ca, cb, ca]
    assert rep.closed_canceled == [cb] and cb not in orders.orders
    assert orders.orders[ca].state == om.PENDING_CANCEL


def test_fill_applied_live_after_the_journal_was_read_is_not_booked_again(setup):
    """A race: a reconciliation reads the journal, the fill arrives live and is applied, then the venue lists
    it too. It is known, not booked a second time and not reported as a mismatch."""
    venue, orders, pf, journal = setup
    orders.gate.on_market(T0, 2 * PX + 1, True)
    o = orders.place(T0, BUY, PX - 10, 2)
    coid = o.client_order_id
    orders.on_report(OrderAccepted(T0 + 1, coid, "v1"))
    state = journal.load(TERMINAL_STATE_NAMES)                      # read before the fill
    fill = vfill(coid, 11, price=PX - 10, ts=T0 + 2)
    assert orders.on_report(fill) is not None                       # applied live
    pf.on_fill(fill.side, fill.price, fill.qty, fill.fee)
    rep = reconcile(state, [vorder(coid, price=PX - 10, filled=1)], [fill], orders, pf, T0 + 3, restart=False)
    assert rep.fills_booked == [] and rep.fills_known == 1 and rep.mismatches == []
    assert pf.position == 1 and orders.orders[coid].filled == 1


def test_reconnect_acks_an_order_whose_ack_was_lost(setup):
    venue, orders, pf, journal = setup
    orders.gate.on_market(T0, 2 * PX + 1, True)
    a = orders.place(T0, BUY, PX - 10, 2)
    rep = reconcile(journal.load(TERMINAL_STATE_NAMES), [vorder(a.client_order_id, price=PX - 10, qty=2)], [],
                    orders, pf, T0 + 10, restart=False)
    assert a.state == om.ACCEPTED and a.venue_order_id == "v" + a.client_order_id and not rep.mismatches


def test_pending_new_order_at_venue_is_adopted_unacknowledged(setup):
    venue, orders, pf, journal = setup
    state = JournalState(open_orders=[row("mm-4", state="SUBMITTED")])
    reconcile(state, [vorder("mm-4", status="PENDING_NEW")], [], orders, pf, T0, restart=True)
    assert orders.orders["mm-4"].state == om.SUBMITTED


def test_restart_comes_back_halted_with_the_peak_when_the_journal_says_so(setup):
    venue, orders, pf, _ = setup
    kv = {"risk_trading_state": "HALTED", "risk_trading_state_ts_ns": T0 - 5,
          "risk_trading_state_reason": "daily loss 101.00 >= max_daily_loss_usdt 100.00",
          "risk_peak_pnl_usdt": "12.5"}
    rep = reconcile(JournalState(kv=kv), [], [], orders, pf, T0, restart=True)
    gate = orders.gate
    assert rep.halted_restored and rep.summary()["halted_restored"] is True
    assert gate.trading_state == HALTED and gate.peak_pnl_usdt == 12.5
    assert "restored from the journal" in gate.state_changes[-1][3] and "daily loss" in gate.state_changes[-1][3]


@pytest.mark.parametrize("kv, restart", [({"risk_trading_state": "REDUCING"}, True),
                                         ({"risk_trading_state": "HALTED"}, False)])
def test_only_a_restart_from_a_halted_journal_halts(setup, kv, restart):
    venue, orders, pf, _ = setup
    rep = reconcile(JournalState(kv=kv), [], [], orders, pf, T0, restart=restart)
    assert not rep.halted_restored and orders.gate.trading_state == ACTIVE


def test_bad_calls_are_refused(setup):
    venue, orders, pf, journal = setup
    with pytest.raises(ValueError, match="unknown_policy"):
        reconcile(JournalState(), [], [], orders, pf, T0, restart=True, unknown_policy="ignore")
    orders.gate.on_market(T0, 2 * PX + 1, True)
    orders.place(T0, BUY, PX - 10, 2)
    with pytest.raises(ValueError, match="tracks no order"):
        reconcile(JournalState(), [], [], orders, pf, T0, restart=True)


def test_fills_query_start_covers_every_fill_the_journal_can_lack():
    assert fills_query_start(JournalState()) == 0
    st = JournalState(open_orders=[row("mm-1", ts=T0 + 5_000_000_000)],
                      fills=[jfill("mm-0", 1, ts=T0), jfill("mm-0", 2, ts=T0 + 9_000_000_000)])
    assert fills_query_start(st) == T0 + 5_000_000_000 - FILLS_LOOKBACK_NS
    assert fills_query_start(st, lookback_ns=0) == T0 + 5_000_000_000


def test_coid_counter_parses_only_our_ids():
    assert coid_counter("mm-0", "mm-") == 0 and coid_counter("mm-10", "mm-") == 36
    assert coid_counter("xx-10", "mm-") is None and coid_counter("mm-", "mm-") is None
    assert coid_counter("mm-A1", "mm-") is None


def test_coid_reservation_is_durable_before_an_id_is_sent(setup, tmp_path, monkeypatch):
    from mmcore.engine import order_manager
    from mmcore.execution import OrderCanceled
    monkeypatch.setattr(order_manager, "COID_BLOCK", 3)
    venue, orders, pf, journal = setup
    orders.gate.on_market(T0, 2 * PX + 1, True)
    sent = []
    for i in range(4):
        o = orders.place(T0 + i, BUY, PX - 10 - i, 2)
        sent.append(o.client_order_id)
        orders.cancel_order(T0 + i, o.client_order_id)
        orders.on_report(OrderCanceled(T0 + i, o.client_order_id, 2))
        conn = sqlite3.connect(journal.path)                  # what a crash right now would leave
        reserved = dict(conn.execute("SELECT key, value FROM kv")).get("coid_counter")
        conn.close()
        assert reserved >= coid_counter(o.client_order_id, "mm-") + 1
    assert venue.submits == sent and orders.counters["coid_reservations"] == 2    # ids 0-2, then 3-5


# --- every journaled fill names an order row; fills that contradict their order are refused (issue 8) ---

ORPHAN_FILLS = "SELECT count(*) FROM fills WHERE client_order_id NOT IN (SELECT client_order_id FROM orders)"


def sql(journal, query):
    journal.flush()
    conn = sqlite3.connect(journal.path)
    try:
        return conn.execute(query).fetchall()
    finally:
        conn.close()


class QueryVenue(Venue):
    """A venue stub (labelled synthetic) with the three recovery queries; records which orders it was asked for."""

    def __init__(self, open_orders=(), fills=(), records=None):
        super().__init__()
        self.open, self.fills, self.records, self.asked = list(open_orders), list(fills), dict(records or {}), []

    async def open_orders(self):
        return list(self.open)

    async def fills_since(self, ts_ns):
        return [f for f in self.fills if f.ts_ns >= ts_ns]

    async def order(self, coid):
        self.asked.append(coid)
        return self.records.get(coid)


def run_recover(venue, journal, orders, pf, restart=True):
    import asyncio
    return asyncio.run(recover(venue, journal, orders, pf, T0 + 100, restart=restart))


def test_fill_of_an_order_sent_but_never_journaled_is_booked_under_the_venues_record(setup):
    """The kill-before-journal case: the order reached the venue, the journal never had it, and it filled
    completely while the engine was down. Recovery writes its row from the venue's record first."""
    _, orders, pf, journal = setup
    venue = QueryVenue(fills=[vfill("mm-7", 3, qty=2), vfill("mm-7", 4, qty=2, ts=T0 + 2)],
                       records={"mm-7": VenueOrder("mm-7", BUY, PX, 4, 4, "FILLED", "v7", T0 - 5)})
    rep = run_recover(venue, journal, orders, pf)
    assert venue.asked == ["mm-7"] and rep.rows_recorded == ["mm-7"] and rep.rows_reconstructed == []
    assert [f.trade_id for f in rep.fills_booked] == [3, 4] and pf.position == 4 and not rep.mismatches
    assert sql(journal, ORPHAN_FILLS) == [(0,)]
    assert sql(journal, "SELECT side, price_ticks, qty_lots, filled_lots, state, venue_order_id, ts_created_ns "
                        "FROM orders") == [(BUY, PX, 4, 4, "FILLED", "v7", T0 - 5)]
    (event, detail), = sql(journal, "SELECT event, detail FROM order_events WHERE client_order_id = 'mm-7'"
                                    " AND event != 'FILL'")
    assert event == "RECONCILE_RECORDED" and "venue's record" in detail and "FILLED" in detail
    # A second recovery (a reconnect) finds the row and the fills: nothing asked, nothing booked again.
    rep2 = run_recover(venue, journal, orders, pf, restart=False)
    assert venue.asked == ["mm-7"] and rep2.fills_booked == [] and rep2.fills_known == 2


def test_fill_of_an_order_the_venue_does_not_know_gets_a_row_reconstructed_from_its_fills(setup):
    _, orders, pf, journal = setup
    venue = QueryVenue(fills=[vfill("mm-8", 5, side=SELL, price=PX + 2, qty=1),
                              vfill("mm-8", 6, side=SELL, price=PX + 1, qty=3, ts=T0 + 2)])    # no record
    rep = run_recover(venue, journal, orders, pf)
    assert venue.asked == ["mm-8"] and rep.rows_reconstructed == ["mm-8"] and len(rep.fills_booked) == 2
    assert pf.position == -4 and sql(journal, ORPHAN_FILLS) == [(0,)]
    # a sell's limit is at or below every fill price: the lowest one stands for it
    assert sql(journal, "SELECT side, price_ticks, qty_lots, filled_lots, state FROM orders") == \
        [(SELL, PX + 1, 4, 4, "FILLED")]
    (detail,), = sql(journal, "SELECT detail FROM order_events WHERE event = 'RECONCILE_RECORDED'")
    assert "reconstructed from 2 fill(s)" in detail and "venue does not know" in detail


@pytest.mark.parametrize("bad, why", [
    (vfill("mm-7", 9, side=SELL), "side"),                   # the order is a buy
    (vfill("mm-7", 9, price=PX + 1), "price"),               # a buy above its limit
    (vfill("mm-7", 9, qty=4), "quantity"),                   # 3 lots left after the first fill
])
def test_fill_contradicting_the_venues_record_of_its_order_is_refused(setup, bad, why):
    _, orders, pf, journal = setup
    venue = QueryVenue(fills=[vfill("mm-7", 3, qty=1), bad],
                       records={"mm-7": VenueOrder("mm-7", BUY, PX, 4, 4, "FILLED", "v7", T0)})
    rep = run_recover(venue, journal, orders, pf)
    assert [f.trade_id for f in rep.fills_booked] == [3] and pf.position == 1 == orders.gate.position_lots
    assert len(rep.fills_refused) == 1 and rep.fills_refused[0].startswith("mm-7/9: " + why)
    assert rep.summary()["fills_refused"] == 1 and any("refused, not booked" in m for m in rep.mismatches)
    assert journal.known_trade_ids() == {("mm-7", 3)} and sql(journal, ORPHAN_FILLS) == [(0,)]


def test_late_fills_of_a_closed_journal_order_are_checked_against_its_row(setup):
    """An order the journal closed as CANCELED (1 of 4 lots filled): venue fills found later are checked
    against the journal's row (the venue is not asked); the one that contradicts it is refused."""
    _, orders, pf, journal = setup
    journal.record_order(T0, "mm-5", SELL, PX + 3, 4, "ACCEPTED")
    journal.record_fill(T0 + 1, "mm-5", 1, SELL, PX + 3, 1, FEE)
    journal.record_event(T0 + 2, "mm-5", "RECONCILE_CLOSED", "PARTIALLY_FILLED", "CANCELED")
    venue = QueryVenue(fills=[vfill("mm-5", 1, side=SELL, price=PX + 3, ts=T0 + 1),
                              vfill("mm-5", 2, side=SELL, price=PX + 2, ts=T0 + 3),      # below a sell's limit
                              vfill("mm-5", 3, side=SELL, price=PX + 4, qty=2, ts=T0 + 4)])
    rep = run_recover(venue, journal, orders, pf)
    assert venue.asked == [] and rep.rows_recorded == [] and rep.rows_reconstructed == []
    assert [f.trade_id for f in rep.fills_booked] == [3] and [r.split(":")[0] for r in rep.fills_refused] == ["mm-5/2"]
    assert pf.position == -3 and sql(journal, "SELECT filled_lots, state FROM orders") == [(3, "CANCELED")]


def test_fill_contradicting_a_journal_open_order_is_refused_and_not_counted_as_filled(setup):
    _, orders, pf, journal = setup
    journal.record_order(T0, "mm-6", BUY, PX, 2, "ACCEPTED")
    venue = QueryVenue(fills=[vfill("mm-6", 8, side=SELL, qty=2)])        # a sell fill of our buy
    rep = run_recover(venue, journal, orders, pf)
    assert rep.fills_booked == [] and len(rep.fills_refused) == 1 and pf.position == 0
    assert rep.closed_canceled == ["mm-6"] and rep.closed_filled == []    # the refused fill does not fill it


def test_fill_contradicting_an_adopted_order_is_refused(setup):
    _, orders, pf, journal = setup
    state = JournalState(open_orders=[row("mm-5")])                        # a buy of 4 lots at PX
    rep = reconcile(state, [vorder("mm-5")], [vfill("mm-5", 12, price=PX + 50)], orders, pf, T0 + 10,
                    restart=True)
    assert rep.fills_booked == [] and rep.fills_refused[0].startswith("mm-5/12: price")
    assert orders.orders["mm-5"].filled == 0 and pf.position == 0 and journal.known_trade_ids() == set()


def test_late_fill_is_refused_when_it_contradicts_the_journal_row_and_waits_when_there_is_none(setup):
    _, orders, pf, journal = setup
    journal.record_order(T0, "mm-z", BUY, PX, 4, "CANCELED")
    assert book_untracked_fill(vfill("mm-z", 9, side=SELL), orders, pf) is LateFill.REFUSED
    assert book_untracked_fill(vfill("mm-z", 9, qty=5), orders, pf) is LateFill.REFUSED
    assert book_untracked_fill(vfill("mm-y", 9), orders, pf) is LateFill.NO_ORDER_ROW     # no row: not booked
    assert not book_untracked_fill(vfill("mm-y", 9), orders, pf)
    assert pf.position == 0 and journal.known_trade_ids() == set()


class AmendVenue(Venue):
    supports_modify = True

    def __init__(self):
        super().__init__()
        self.modifies = []

    def modify(self, ts_ns, coid, side, price, qty):
        self.modifies.append((coid, price))


@pytest.mark.parametrize("applied", [True, False])
def test_reconnect_settles_an_amend_whose_answer_died_with_the_connection(setup, applied):
    _, _, pf, journal = setup
    venue = AmendVenue()
    orders = OrderManager(venue, setup[1].gate, ClientOrderIdGenerator("mm-", 0, "all"), journal, 3, 0.0,
                          15_000_000_000, amend_orders=True)
    orders.gate.on_market(T0, 2 * PX + 1, True)
    o = orders.place(T0, BUY, PX - 10, 2)
    orders.on_report(OrderAccepted(T0 + 1, o.client_order_id, "v1"))
    assert orders.amend(T0 + 2, o.client_order_id, PX - 20) and o.state == om.PENDING_REPLACE
    listed = PX - 20 if applied else PX - 10                     # what the venue works after the reconnect
    rep = reconcile(journal.load(TERMINAL_STATE_NAMES), [vorder(o.client_order_id, price=listed, qty=2)], [],
                    orders, pf, T0 + 10, restart=False)
    assert o.state == om.ACCEPTED and o.price == listed and not rep.mismatches
    assert orders.gate.open_buy_notional_tl == listed * 2 and venue.cancels == []


def test_reconnect_mirrors_and_cancels_an_order_amended_at_the_venue_while_we_were_away(setup):
    venue, orders, pf, journal = setup
    orders.gate.on_market(T0, 2 * PX + 1, True)
    o = orders.place(T0, BUY, PX - 10, 2)
    orders.on_report(OrderAccepted(T0 + 1, o.client_order_id, "v1"))
    reconcile(journal.load(TERMINAL_STATE_NAMES), [vorder(o.client_order_id, price=PX - 50, qty=3)], [], orders,
              pf, T0 + 10, restart=False)
    assert (o.price, o.qty, o.state) == (PX - 50, 3, om.PENDING_CANCEL) and venue.cancels == [o.client_order_id]
    assert orders.counters["amended_by_venue"] == 1


def test_restart_adopts_an_order_at_the_price_the_venue_works_not_the_journals(setup):
    venue, orders, pf, journal = setup
    state = JournalState(open_orders=[row("mm-6", price=PX - 10, qty=2)])       # amend in flight at the crash
    rep = reconcile(state, [vorder("mm-6", price=PX - 20, qty=2)], [vfill("mm-6", 5, price=PX - 20)], orders, pf,
                    T0 + 10, restart=True)
    o = orders.orders["mm-6"]
    assert o.price == PX - 20 and rep.fills_booked and not rep.mismatches and pf.position == 1
