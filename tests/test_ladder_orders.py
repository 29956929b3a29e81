"""Ladder reconciliation (OrderManager.reconcile_ladder): each level keeps, amends or cancel/replaces its own
order; levels beyond the ladder are cancelled; the risk gate checks each order; a cancel reject restores the
order to its level; TTL and cancel-all cover every level. Compiled gate, state machine and strategies; a
recording execution client (no exchange); the prices are synthetic (labelled)."""
from decimal import Decimal

from mmcore.engine.order_manager import OrderManager
from mmcore.execution import BUY, SELL, OrderAccepted, OrderCanceled, OrderCancelRejected
from mmcore.persistence.journal import NullJournal
from mmcore.risk_config import RiskConfig
from mmcore_ext import orders as om
from mmcore_ext.orders import ClientOrderIdGenerator
from mmcore_ext.quoting import AvellanedaStoikov
from mmcore_ext.risk import RiskGate
from mmcore_ext.strategy import BandMaker, LayeredLadder

TICK, LOT = Decimal("0.1"), Decimal("0.001")
MID_X2 = 2 * 600_000
S = 1_000_000_000


class RecordingClient:
    def __init__(self):
        self.sent = []

    def submit(self, ts, coid, side, px, qty, post_only=True):
        self.sent.append(("submit", coid, side, px, qty))

    def cancel(self, ts, coid):
        self.sent.append(("cancel", coid))


def make(levels, **risk):
    cfg = RiskConfig(**{"max_single_trade_usdt": 500, "max_symbol_notional_usdt": 50_000,
                        "max_global_notional_usdt": 100_000, "min_spread_frac": 0.0, "net_max": 1.0, **risk})
    gate = RiskGate(cfg, TICK, LOT, "BTCUSDT")
    gate.on_market(0, MID_X2, True)
    client = RecordingClient()
    mgr = OrderManager(client, gate, ClientOrderIdGenerator("t-"), NullJournal(), 3, 0.0, 10 * S, 1, False,
                       levels=levels)
    return mgr, client, gate


def band(n=3):
    b = BandMaker(0.1, 0.001, 1, 100, 0.002, 0.004, 0.001, n, 2)
    b.quote(0, 60_000.0, 0, 2.0, 599_990, 600_010)
    return b


def resting(mgr, side):
    return [(o.price, o.qty) if o is not None else None for o in mgr.slots[side]]


def test_every_level_gets_one_order_and_unchanged_levels_are_kept():
    b = band()
    mgr, c, _ = make(3)
    mgr.reconcile_ladder(1, b.ladder)
    assert resting(mgr, BUY) == b.ladder.bids() and resting(mgr, SELL) == b.ladder.asks()
    assert [x[0] for x in c.sent] == ["submit"] * 6 and mgr.max_per_side == 3
    n = len(c.sent)
    mgr.reconcile_ladder(2, b.ladder)                      # the same ladder: nothing sent
    assert len(c.sent) == n


def test_a_moved_level_is_replaced_alone_and_a_dropped_level_cancelled():
    mgr, c, _ = make(3)
    b = band()
    mgr.reconcile_ladder(1, b.ladder)
    for o in list(mgr.orders.values()):
        mgr.on_report(OrderAccepted(1, o.client_order_id, "v" + o.client_order_id))
    b2 = band(2)                                           # two levels: the band's edges move too
    mgr.reconcile_ladder(2, b2.ladder)
    cancels = [x for x in c.sent[6:] if x[0] == "cancel"]
    # level 0 is unchanged (band_min edge), level 1 moved (0.3 % -> 0.4 %), level 2 is gone: 2 cancels per side
    assert len(cancels) == 4
    assert resting(mgr, BUY)[0] == b2.ladder.bids()[0] and resting(mgr, BUY)[2] is None
    # the replacement of level 1 waits for room: 3 live orders per side (max_per_side = 1 x 3 levels)
    live = {BUY: mgr.live_count[BUY], SELL: mgr.live_count[SELL]}
    assert live[BUY] <= 3 and live[SELL] <= 3


def test_cancel_reject_restores_the_order_to_its_level_and_ttl_covers_every_level():
    mgr, c, _ = make(3)
    b = band()
    mgr.reconcile_ladder(1, b.ladder)
    for o in list(mgr.orders.values()):
        mgr.on_report(OrderAccepted(1, o.client_order_id, "v"))
    deep = mgr.slots[BUY][2]
    mgr.cancel_order(2, deep.client_order_id)
    assert mgr.slots[BUY][2] is None and deep.state == om.PENDING_CANCEL
    mgr.on_report(OrderCancelRejected(3, deep.client_order_id, "unknown"))
    assert mgr.slots[BUY][2] is deep                       # still live: it stands for level 2 again
    assert mgr.next_expiry_ns() == 1 + 10 * S
    assert mgr.expire_working(1 + 10 * S) == 6             # every level's order reached its TTL
    for o in list(mgr.orders.values()):
        mgr.on_report(OrderCanceled(4, o.client_order_id, o.remaining))
    assert not mgr.orders and all(x is None for x in mgr.slots[BUY] + mgr.slots[SELL])


def test_each_level_passes_the_risk_gate():
    # a symbol notional cap of 400 USDT: at ~120 USDT per 2-lot order, three orders fit (bids and asks count)
    mgr, c, gate = make(3, max_symbol_notional_usdt=400)
    mgr.reconcile_ladder(1, band().ladder)
    assert len([x for x in c.sent if x[0] == "submit"]) == 3
    assert gate.refusals()["SYMBOL_NOTIONAL_CAP"] >= 3


def test_hold_at_touch_drops_levels_that_would_sit_on_a_better_one():
    m = AvellanedaStoikov(25.0, 0.5, 60.0, 0.0, 1e9, 0.1, 0.002)
    lad = LayeredLadder(m, 0.001, 1, 100, 3, 0, 2, 1, 1)
    lad.quote(0, 60_000.0, 30, 2.0, 599_999, 600_001)      # long (u = 0.3): the skewed ask steps inside
    assert lad.ladder.ask_px(0) == 600_000
    mgr, c, _ = make(3)
    mgr.reconcile_ladder(1, lad.ladder, hold_bid=599_999, hold_ask=600_001)
    asks = [o.price for o in mgr.slots[SELL] if o is not None]
    assert asks[0] == 600_001 and asks == sorted(set(asks)) and all(p >= 600_001 for p in asks)
    assert mgr.counters["quotes_held_at_touch"] >= 1
