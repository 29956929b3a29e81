"""The live side of the session (mmcore.runners.live.Session with an execution venue) against labelled stub venues
(no network): late fills, fills of orders the journal never had, cancels lost by the venue at the stop, a
reconciliation that fails other than by the network. The real venue path (picows, WS API, user data) is tested
against the emulator in test_live_crash.py and the execution client's own tests."""
from __future__ import annotations

import asyncio
from decimal import Decimal

from mmcore.config import load_config
from mmcore.execution import BUY, OrderAccepted, OrderCanceled, OrderFilled, VenueOrder
from mmcore.instruments import load_instrument
from mmcore.persistence.journal import JournalError
from mmcore.runners.live import Session
from mmcore_ext import orders as orders_fsm
from mmcore_ext.risk import HALTED

from venuekit import ORPHAN_FILLS_SQL, journal_rows


class NullFeed:
    symbols = ("BTCUSDT",)

    async def start(self):
        pass

    def request_snapshot(self, symbol):
        pass

    async def close(self):
        pass

    def counters(self):
        return {}


class StubClient:
    """A venue's execution client (labelled stub): records requests; what it answers is set per test."""

    def __init__(self):
        self.cancels, self.open, self.fills, self.records, self.asked = [], {}, [], {}, []
        self.on_submit = self.on_cancel = None

    def submit(self, ts, coid, side, px, qty, post_only=True):
        self.open[coid] = VenueOrder(coid, side, px, qty, 0, "NEW", "v-" + coid)
        if self.on_submit:
            self.on_submit(ts, coid)

    def cancel(self, ts, coid):
        self.cancels.append(coid)
        if self.on_cancel:
            self.on_cancel(ts, coid)

    async def open_orders(self):
        return list(self.open.values())

    async def fills_since(self, ts):
        return list(self.fills)

    async def order(self, coid):
        self.asked.append(coid)
        return self.records.get(coid)


class StubExecution:
    connected = True

    def __init__(self):
        self.client = StubClient()

    def execution(self, symbol):
        return self.client

    async def start(self):
        pass

    async def close(self):
        pass

    def counters(self):
        return {}


def _session(tmp_path, sets=()):
    cfg = load_config(overrides=list(sets))
    inst = {"BTCUSDT": load_instrument("binance_usdm", "BTCUSDT")}
    ex = StubExecution()
    s = Session(cfg, "binance_usdm", inst, lambda a, b: NullFeed(), ex, tmp_path, "acct")
    return s, s.symbols["BTCUSDT"], ex.client


def test_a_late_fill_of_an_untracked_order_goes_through_pnl_and_the_kill_switch(tmp_path):
    """Synthetic report (labelled): a fill for one of our orders that recovery already closed is booked once,
    and like any fill updates PnL at once: its 5 USDT fee crosses a 1 USDT loss limit."""
    session, ss, _ = _session(tmp_path, ["risk.max_daily_loss_usdt=1", "risk.reduce_at_fraction=null"])
    try:
        fill = OrderFilled(10, ss.engine.orders.coids.prefix + "5", 77, 1, 600_000, 1, Decimal("5"))
        ss.journal.record_order(5, fill.client_order_id, 1, 600_000, 1, "CANCELED")    # closed by a recovery
        session.on_report("BTCUSDT", fill)
        session.on_report("BTCUSDT", fill)                            # delivered twice: booked once
        assert ss.late_fills == 1 and ss.portfolio.position == 1 and ss.engine.fills == [fill]
        assert ss.engine.trading_state == HALTED
    finally:
        session.close_journals()


def test_a_live_fill_of_an_order_the_journal_never_had_is_booked_by_a_reconciliation_under_its_row(tmp_path):
    session, ss, client = _session(tmp_path)
    coid = ss.engine.orders.coids.prefix + "z"
    fill = OrderFilled(1_700_000_000_000_000_000, coid, 4, BUY, 600_000, 2, Decimal("0.024"))
    client.fills = [fill]
    client.records[coid] = VenueOrder(coid, BUY, 600_000, 2, 2, "FILLED", "v9", fill.ts_ns - 5)

    async def scenario():
        ss.restarted = ss.ready = True
        session.on_report("BTCUSDT", fill)
        assert ss.portfolio.position == 0                             # not booked without its order row
        for _ in range(200):
            await asyncio.sleep(0.01)
            if ss.recoveries:
                break
        session.on_report("BTCUSDT", fill)                            # again, live: a duplicate now
    try:
        asyncio.run(asyncio.wait_for(scenario(), 10))
        rep = ss.recoveries[0]
        assert client.asked == [coid] and rep.rows_recorded == [coid] and rep.fills_booked == [fill]
        assert ss.portfolio.position == 2 and ss.late_fills == 0
    finally:
        session.close_journals()
    path = next(tmp_path.glob("*.db"))
    assert journal_rows(path, ORPHAN_FILLS_SQL) == [(0,)]
    assert journal_rows(path, "SELECT state, filled_lots FROM orders") == [("FILLED", 2)]


def test_stop_cancels_again_when_the_venue_still_lists_an_order_whose_cancel_is_in_flight(tmp_path):
    """A venue that loses the first cancel: the order stays PENDING_CANCEL and open at the venue, so the stop
    sends the cancel again and then ends clean."""
    session, ss, client = _session(tmp_path)
    client.on_submit = lambda ts, coid: session.on_report("BTCUSDT", OrderAccepted(ts, coid, "v-" + coid))

    def lossy_cancel(ts, coid):
        if len(client.cancels) >= 2 and coid in client.open:         # the first cancel is lost
            o = client.open.pop(coid)
            session.on_report("BTCUSDT", OrderCanceled(ts, coid, o.qty))
    client.on_cancel = lossy_cancel

    async def scenario():
        ss.restarted = ss.ready = True
        o = ss.engine.orders.place(1, 1, 600_000, 1, check_risk=False)
        ss.engine.orders.cancel_all(2)
        assert ss.engine.orders.orders[o.client_order_id].state == orders_fsm.PENDING_CANCEL
        return await session.stop(), o.client_order_id
    clean, coid = asyncio.run(scenario())
    assert clean and client.cancels == [coid, coid]


def test_a_reconciliation_failing_other_than_by_the_network_cancels_our_orders_at_the_venue_and_stops(tmp_path):
    """The journal refuses (injected) during a reconnect's reconciliation: the session cannot go on; it cancels
    every order of ours the venue lists, directly, then stops with the failure recorded (exit 1)."""
    session, ss, client = _session(tmp_path)
    prefix = ss.engine.orders.coids.prefix
    client.open[prefix + "a"] = VenueOrder(prefix + "a", BUY, 600_000, 1, 0, "NEW", "v1")
    client.open["other-1"] = VenueOrder("other-1", BUY, 600_000, 1, 0, "NEW", "v2")        # not ours
    client.on_cancel = lambda ts, coid: client.open.pop(coid, None)

    def refuse(*a, **k):
        raise JournalError("injected: disk gone")
    ss.journal.load = refuse

    async def scenario():
        await session.on_connect()
        assert session.fatal is not None and session._stop.is_set() and not ss.ready
        return await session.stop()
    clean = asyncio.run(scenario())
    assert clean and client.cancels == [prefix + "a"] and list(client.open) == ["other-1"]


def test_a_failed_venue_query_during_reconciliation_is_retried_at_the_next_connect_not_fatal(tmp_path):
    from mmcore.venues.common import QueryError
    session, ss, client = _session(tmp_path)

    async def broken():
        raise QueryError("openOrders.status: no answer in 5 s")
    client.open_orders = broken

    async def scenario():
        try:
            await session.on_connect()
        except QueryError:
            pass                                   # the execution client reconnects and calls on_connect again
        return session.fatal, ss.ready
    fatal, ready = asyncio.run(scenario())
    session.close_journals()
    assert fatal is None and not ready and not session._stop.is_set()


def test_a_second_stop_signal_ends_the_stop_without_waiting_for_the_venue(tmp_path, caplog):
    """A venue that never confirms a cancel: the stop would wait STOP_TIMEOUT_S (10 s) for it; a second SIGINT /
    SIGTERM (the handler, called as the loop calls it) ends the wait at once: the stop is not clean, and says
    why."""
    import time
    session, ss, client = _session(tmp_path)
    client.on_submit = lambda ts, coid: session.on_report("BTCUSDT", OrderAccepted(ts, coid, "v-" + coid))

    async def scenario():
        ss.restarted = ss.ready = True
        ss.engine.orders.place(1, 1, 600_000, 1, check_risk=False)
        session.on_stop_signal()                                      # the first: the clean stop
        assert not session.forced
        loop = asyncio.get_running_loop()
        loop.call_later(0.3, session.on_stop_signal)                  # the second, during the stop
        t0 = time.monotonic()
        clean = await session.stop()
        return clean, time.monotonic() - t0
    clean, took = asyncio.run(scenario())
    assert not clean and session.forced and took < 2.0, took
    assert client.cancels                                            # the cancel was sent before
    assert "second stop signal" in caplog.text
