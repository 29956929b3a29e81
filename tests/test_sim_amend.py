"""The simulated exchange's in-place amend (Binance USDⓈ-M order.modify semantics): requeued at the back at the
new price, cancelled when the new price would take, refused for an order not resting; a replay of the bundled
real recording with execution.amend_orders on stops clean. Books here are small synthetic ones (labelled)."""
import asyncio
from decimal import Decimal

from mmcore.config import load_config
from mmcore.execution import BUY, OrderAccepted, OrderAmended, OrderAmendRejected, OrderCanceled, OrderFilled
from mmcore.runners.replay import build_session, run_session, summarize
from mmcore.sim.exchange import SimExchange
from mmcore.sim.models import ConstantLatency, MakerFee
from mmcore_ext.book import L2Book, sync_rule_for_market
from mmcore_ext.events import DepthSnapshot

from datafiles import USDM_FILE

T = 1_723_161_300_000_000_000


def _exchange():
    book = L2Book(sync_rule_for_market("binance_usdm"))
    book.load_snapshot(DepthSnapshot.from_ticks(100, [(1000, 5), (999, 7)], [(1002, 4)], T, T))
    reports = []
    sim = SimExchange(book, ConstantLatency(0, 0), MakerFee(Decimal(0), Decimal("0.0001")), reports.append)
    return sim, reports


def test_an_amend_requeues_the_order_at_its_new_price_behind_the_level():
    sim, reports = _exchange()
    sim.submit(T, "a", BUY, 998, 3)
    sim.advance(T)
    sim.modify(T + 1, "a", BUY, 999, 3)
    sim.advance(T + 1)
    assert type(reports[-1]) is OrderAmended and (reports[-1].price, reports[-1].qty) == (999, 3)
    assert sim.open_orders() == [("a", BUY, 999, 3)]
    sim.on_trade(T + 2, 1, 999, 7, -1)                           # the 7 lots ahead of us trade first
    assert not any(type(r) is OrderFilled for r in reports)
    sim.on_trade(T + 3, 2, 999, 2, -1)
    assert [r.qty for r in reports if type(r) is OrderFilled] == [2]
    sim.modify(T + 4, "a", BUY, 999, 2)                          # not above the 2 lots filled: cancelled
    sim.advance(T + 4)
    assert type(reports[-1]) is OrderCanceled and sim.open_orders() == []


def test_an_amend_that_would_take_cancels_and_one_for_no_order_is_refused():
    sim, reports = _exchange()
    sim.submit(T, "b", BUY, 998, 1)
    sim.advance(T)
    assert type(reports[-1]) is OrderAccepted
    sim.modify(T + 1, "b", BUY, 1002, 1)                         # at the best ask: GTX would take
    sim.advance(T + 1)
    assert type(reports[-1]) is OrderCanceled and sim.open_orders() == []
    sim.modify(T + 2, "b", BUY, 997, 1)
    sim.advance(T + 2)
    assert type(reports[-1]) is OrderAmendRejected


def test_replay_with_amends_stops_clean():
    s = build_session(load_config(overrides=["execution.amend_orders=true"]), str(USDM_FILE),
                      market="binance_usdm")
    asyncio.run(run_session(s))
    summary = summarize(s)
    oc = summary["order_counters"]
    assert oc["amends_sent"] > 10 and oc.get("illegal_transitions", 0) == 0
    assert summary["shutdown_clean"] and not s.sim.open_orders()
