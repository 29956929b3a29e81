"""Crash test: the engine is SIGKILLed mid-run against the loopback exchange and restarts from its journal.

The exchange emulator (``mmcore.sim.server``) serves the real recording ``data/usdm_btcusdt_20240808.gz`` at
20x real time from a child process, so it outlives the engine: the market goes on and resting orders
keep filling while the engine is dead. The engine (``mmcore.runners.live_runner``) runs as a second child process
with a journal in ``tmp_path``; it is killed twice mid-run and restarted from the same journal, then
stopped with SIGTERM. Then the exchange's record and the journal must agree: no lost fill, no duplicate
fill, no client order id used twice, the same inventory, cash and fees, no order of ours left open.
Loopback only (127.0.0.1, port chosen by the OS), bounded in time, children always killed.
"""
import asyncio
import signal
import time
from decimal import Decimal

import orjson
import pytest

from mmcore.config import DEFAULT_CONFIG, load_config
from mmcore.execution import (BUY, SELL, OrderAccepted, OrderCanceled, OrderCancelRejected, OrderExpired,
                              OrderFilled, OrderRejected)
from mmcore.instruments import load_instrument
from mmcore.persistence.journal import KV_TRADING_STATE, KV_TRADING_STATE_REASON, Journal
from mmcore.runners.live_runner import LiveRunner
from mmcore_ext import orders as orders_fsm
from mmcore_ext.events import DepthDiff, DepthSnapshot
from mmcore_ext.risk import ACTIVE as STATE_ACTIVE, HALTED
from mmcore.venues.loopback import LoopbackClient, decode_report, encode_report

from crashkit import (ACCOUNT, ACTIVE, SPEED, assert_journal_is_the_exchange as _assert_journal_is_the_exchange,
                      events as _events, exchange as _exchange, journal_fills as _journal_fills, kill_all,
                      serve as _serve, shut as _shut, start_engine as _start_engine, start_server as _start_server,
                      until as _until, wait as _wait)

KILLS = 2
FILLS_PER_RUN = 5                # journaled fills a run must reach before it is killed / stopped


def test_sigkilled_engine_restarts_from_journal_without_lost_fill_or_reused_id(tmp_path):
    t0 = time.monotonic()
    journal = tmp_path / "engine.db"
    procs = []
    try:
        port = _start_server(procs, tmp_path)
        downtime_fills = 0
        for n in range(KILLS + 1):
            before = _journal_fills(journal)
            eng = _start_engine(procs, port, journal, tmp_path, n)
            _wait(lambda: _journal_fills(journal) >= before + FILLS_PER_RUN, 20,
                  f"run {n}: {FILLS_PER_RUN} new journaled fills", (procs[0], eng))
            if n == KILLS:
                break
            eng.send_signal(signal.SIGKILL)
            assert eng.wait(5) == -signal.SIGKILL
            at_kill = _exchange(port)
            # While the engine is down the market runs on; wait (bounded) for a resting order to fill.
            deadline = time.monotonic() + 4
            while time.monotonic() < deadline and len(_exchange(port)["fills"]) == len(at_kill["fills"]):
                time.sleep(0.1)
            downtime_fills += len(_exchange(port)["fills"]) - len(at_kill["fills"])
        eng.send_signal(signal.SIGTERM)
        assert eng.wait(20) == 0, (tmp_path / f"engine{KILLS}.err").read_text()[-3000:]
        ex = _exchange(port)
    finally:
        kill_all(procs)

    # Every restart reconciled from the journal: orders left by the dead engine were adopted or closed,
    # and the fills made while it was down were booked.
    restarts = [r for n in range(1, KILLS + 1) for r in _events(tmp_path / f"engine{n}.out", "recovery")
                if r["restart"]]
    assert len(restarts) == KILLS
    assert all(not r["mismatches"] for r in restarts), restarts
    assert sum(r["adopted"] + r["unknown_adopted"] + r["closed_filled"] + r["closed_canceled"]
               for r in restarts) > 0
    assert sum(r["fills_booked"] for r in restarts) >= downtime_fills
    stopped = _events(tmp_path / f"engine{KILLS}.out", "stopped")
    assert stopped and stopped[0]["clean"] is True
    assert len(ex["fills"]) >= (KILLS + 1) * FILLS_PER_RUN
    _assert_journal_is_the_exchange(journal, ex)
    assert time.monotonic() - t0 < 60


def test_dropped_connection_is_reconciled_again_and_trading_resumes(tmp_path):
    """In one process: the exchange drops the engine's connection mid-run; the client reconnects with
    backoff, recovery runs again (not as a restart), quoting resumes, and the books still agree."""
    journal = tmp_path / "engine.db"

    async def scenario():
        server, srv, port = await _serve(SPEED)
        runner = LiveRunner(load_config(DEFAULT_CONFIG, ACTIVE), server.instrument, "127.0.0.1", port, ACCOUNT,
                            str(journal))
        task = asyncio.get_running_loop().create_task(runner.run())
        try:
            acc = lambda: server.accounts.get(ACCOUNT)
            await _until(lambda: acc() is not None and len(acc().fills) >= 3, 15, "3 fills")
            acc().session.close()                          # as a network failure would
            await _until(lambda: len(runner.recoveries) >= 2, 10, "recovery after the reconnect")
            n = len(acc().fills)
            await _until(lambda: len(acc().fills) >= n + 3, 15, "3 more fills after the reconnect")
            runner._stop.set()
            rc = await asyncio.wait_for(task, 20)
            return rc, runner, acc().state()
        finally:
            task.cancel()
            runner.close()
            await _shut(server, srv)

    rc, runner, ex = asyncio.run(asyncio.wait_for(scenario(), 55))
    assert rc == 0
    assert [r.restart for r in runner.recoveries[:2]] == [True, False]
    assert runner.client.connects >= 2 and runner.client.disconnects >= 1
    assert all(not r.mismatches for r in runner.recoveries)
    _assert_journal_is_the_exchange(journal, ex)


def test_stop_with_flatten_on_shutdown_closes_the_position_at_the_exchange(tmp_path):
    """SIGTERM path with ``execution.flatten_on_shutdown``: after cancel-all is confirmed, IOC orders close
    the position; the exchange's position ends at 0 and the journal still equals the exchange."""
    journal = tmp_path / "engine.db"

    async def scenario():
        server, srv, port = await _serve(SPEED)
        cfg = load_config(DEFAULT_CONFIG, ACTIVE + ["execution.flatten_on_shutdown=true"])
        runner = LiveRunner(cfg, server.instrument, "127.0.0.1", port, ACCOUNT, str(journal))
        task = asyncio.get_running_loop().create_task(runner.run())
        try:
            acc = lambda: server.accounts.get(ACCOUNT)
            await _until(lambda: acc() is not None and acc().fills and acc().position != 0
                         and runner.portfolio.position != 0, 20, "an open position")
            runner._stop.set()
            rc = await asyncio.wait_for(task, 30)
            return rc, runner, acc().state()
        finally:
            task.cancel()
            runner.close()
            await _shut(server, srv)

    rc, runner, ex = asyncio.run(asyncio.wait_for(scenario(), 58))
    assert rc == 0
    assert ex["position"] == 0 and runner.portfolio.position == 0
    assert runner.engine.counters["flatten_orders"] >= 1
    assert any(not f["maker"] for f in ex["fills"]), "the flattening order traded as a taker"
    _assert_journal_is_the_exchange(journal, ex)


def test_restart_after_a_halt_stays_halted_until_the_operator_resets_it(tmp_path):
    """The kill switch survives a restart: a journal that says HALTED brings the engine back halted (no
    order placed while the market runs); ``reset_halt`` (``--reset-halt``) lets it quote again."""
    journal = tmp_path / "engine.db"
    with Journal(journal) as j:
        j.set_kv(KV_TRADING_STATE, "HALTED")
        j.set_kv(KV_TRADING_STATE_REASON, "operator kill switch")

    async def scenario():
        server, srv, port = await _serve(SPEED)
        placed = []
        try:
            for reset in (False, True):
                runner = LiveRunner(load_config(DEFAULT_CONFIG, ACTIVE), server.instrument, "127.0.0.1", port,
                                    ACCOUNT, str(journal), reset_halt=reset)
                task = asyncio.get_running_loop().create_task(runner.run())
                try:
                    await _until(lambda: runner.engine.book.synced, 15, "a synced book")
                    t0 = runner.last_ts
                    # 20 s of market (1 s wall) while halted; after the reset, until it quotes
                    await _until(lambda: runner.last_ts > t0 + 20 * 10**9 if not reset else runner.orders.placed,
                                 15, "20 s of market" if not reset else "an order placed")
                    placed.append((runner.orders.placed, runner.engine.trading_state,
                                   [r.halted_restored for r in runner.recoveries]))
                    runner._stop.set()
                    assert await asyncio.wait_for(task, 20) == 0
                finally:
                    task.cancel()
                    runner.close()
        finally:
            await _shut(server, srv)
        return placed

    (n0, state0, rec0), (n1, state1, rec1) = asyncio.run(asyncio.wait_for(scenario(), 58))
    assert rec0[0] is True and state0 == HALTED and n0 == 0
    assert rec1[0] is True and state1 == STATE_ACTIVE and n1 > 0
    with Journal(journal) as j:                       # the reset is journaled: a later restart is ACTIVE
        assert j.load(()).kv[KV_TRADING_STATE] == "ACTIVE"


def test_exchange_keeps_orders_across_disconnects_and_refuses_a_reused_id():
    async def scenario():
        server, srv, port = await _serve(1.0)
        reports = []
        try:
            c = LoopbackClient("127.0.0.1", port, "proto", decode=None, on_report=reports.append)
            welcome = await c.connect()
            c.release()
            assert (welcome["market"], welcome["symbol"]) == ("binance_usdm", "BTCUSDT")
            await _until(lambda: server.book.synced, 10, "the exchange's book")
            far = server.book.best_bid_px() - 5000           # 500 USDT below the market: rests, never fills
            c.submit(0, "p-1", BUY, far, 2)
            await _until(lambda: any(type(r) is OrderAccepted for r in reports), 5, "ack")
            c.close()
            await _until(lambda: not c.connected, 5, "disconnect")
            # A new session of the same account finds the order; the id cannot be used again.
            c2 = LoopbackClient("127.0.0.1", port, "proto", on_report=reports.append)
            await c2.connect()
            c2.release()
            (o,) = await c2.open_orders()
            assert (o.client_order_id, o.side, o.price, o.qty, o.filled, o.status) == ("p-1", BUY, far, 2, 0, "NEW")
            c2.submit(0, "p-1", BUY, far, 2)
            await _until(lambda: any(type(r) is OrderRejected for r in reports), 5, "duplicate reject")
            assert await c2.cancel_all() == 1
            await _until(lambda: any(type(r) is OrderCanceled for r in reports), 5, "cancel")
            assert await c2.open_orders() == [] and await c2.fills_since(0) == []
            # The venue's record of one order, in any status (recovery's ``order`` query); None if unknown.
            rec = await c2.order("p-1")
            assert (rec.client_order_id, rec.side, rec.price, rec.qty, rec.filled, rec.status) == \
                ("p-1", BUY, far, 2, 0, "CANCELED")
            assert await c2.order("p-404") is None
            st = await c2.account_state()
            c2.close()
            return reports, st
        finally:
            await _shut(server, srv)

    reports, st = asyncio.run(asyncio.wait_for(scenario(), 30))
    rej = [r for r in reports if type(r) is OrderRejected]
    assert [(r.client_order_id, r.code) for r in rej] == [("p-1", "DUPLICATE_CLIENT_ORDER_ID")]
    assert st["duplicate_coids"] == ["p-1"] and st["position"] == 0


def test_report_wire_codec_round_trips():
    reps = [OrderAccepted(1, "a", "7"), OrderRejected(2, "a", "post-only", "POST_ONLY_WOULD_MATCH"),
            OrderFilled(3, "a", 99, SELL, 618000, 2, Decimal("-0.0001"), False), OrderCanceled(4, "a", 1),
            OrderExpired(5, "a", 1), OrderCancelRejected(6, "a", "unknown")]
    for r in reps:
        assert decode_report(orjson.loads(orjson.dumps(encode_report(r)))) == r
    with pytest.raises(TypeError):
        encode_report("not a report")


def test_sequence_gap_while_already_paused_still_asks_for_a_snapshot(tmp_path):
    """Synthetic book (labelled): a crossed book pauses quoting, then a sequence gap arrives. The book now
    waits for a snapshot, so the runner must ask the venue for one even though quoting was paused for
    another reason."""
    cfg = load_config(DEFAULT_CONFIG)
    inst = load_instrument("binance_usdm", "BTCUSDT", cfg.resolve_path(cfg.get("data.markets")))
    runner = LiveRunner(cfg, inst, "127.0.0.1", 9, ACCOUNT, str(tmp_path / "j.db"))    # never connected
    asked = []
    runner.client.request_snapshot = lambda: asked.append(1)
    try:
        t = 1_700_000_000_000_000_000
        runner._on_market(DepthSnapshot.from_ticks(100, [(600_000, 5)], [(600_001, 5)], ts_local_ns=t))
        runner._on_market(DepthDiff.from_ticks(100, 101, [(600_002, 1)], [], prev_final_update_id=99,
                                               ts_local_ns=t + 1))                 # bid through the ask
        assert runner.engine.paused and runner.engine.book.is_crossed() and not asked
        runner._on_market(DepthDiff.from_ticks(105, 106, [], [(600_003, 1)], prev_final_update_id=104,
                                               ts_local_ns=t + 2))                 # pu 104 != 101: a gap
        assert not runner.engine.book.synced
        assert asked == [1] and runner.resync
    finally:
        runner.close()


def test_stop_cancels_again_when_the_venue_still_lists_an_order_whose_cancel_is_in_flight(tmp_path):
    """A venue that loses the first cancel (labelled stub, no network): the order stays PENDING_CANCEL in the
    order manager and open at the venue, so the stop sequence must send the cancel again, then ends clean."""
    from mmcore.execution import OrderAccepted, OrderCanceled
    from mmcore.engine.recovery import VenueOrder

    cfg = load_config(DEFAULT_CONFIG)
    inst = load_instrument("binance_usdm", "BTCUSDT", cfg.resolve_path(cfg.get("data.markets")))
    runner = LiveRunner(cfg, inst, "127.0.0.1", 9, ACCOUNT, str(tmp_path / "j.db"))    # never connected

    class LossyVenue:
        connected = True

        def __init__(self):
            self.cancels = []
            self.open = {}

        def submit(self, ts, coid, side, px, qty, post_only=True):
            self.open[coid] = VenueOrder(coid, side, px, qty, 0, "NEW", "v-" + coid)
            runner._on_report(OrderAccepted(ts, coid, "v-" + coid))

        def cancel(self, ts, coid):
            self.cancels.append(coid)
            if len(self.cancels) >= 2 and coid in self.open:          # the first cancel is lost
                o = self.open.pop(coid)
                runner._on_report(OrderCanceled(ts, coid, o.qty))

        async def open_orders(self):
            return list(self.open.values())

        async def fills_since(self, ts):
            return []

    async def scenario():
        venue = LossyVenue()
        runner.client = runner.orders.exec = venue
        runner.restarted = True
        o = runner.orders.place(1, 1, 600_000, 1, check_risk=False)
        runner.orders.cancel_all(2)                                   # lost by the venue
        assert runner.orders.orders[o.client_order_id].state == orders_fsm.PENDING_CANCEL
        clean = await runner._confirm_none_open(5)
        return clean, venue.cancels, o.client_order_id

    try:
        clean, cancels, coid = asyncio.run(scenario())
    finally:
        runner.close()
    assert clean and cancels == [coid, coid]


def test_a_fatal_recovery_error_still_cancels_our_orders_at_the_venue(tmp_path):
    """After a dropped connection the reconnect's recovery fails with a non-network error (injected: the
    journal refuses). The runner cannot go on, but before it exits (code path of exit 1) it cancels every
    order of ours the exchange lists, so nothing is left quoting unattended."""
    from mmcore.persistence.journal import JournalError

    journal = tmp_path / "engine.db"

    async def scenario():
        server, srv, port = await _serve(SPEED)
        runner = LiveRunner(load_config(DEFAULT_CONFIG, ACTIVE), server.instrument, "127.0.0.1", port, ACCOUNT,
                            str(journal))
        task = asyncio.get_running_loop().create_task(runner.run())
        try:
            acc = lambda: server.accounts.get(ACCOUNT)
            await _until(lambda: acc() is not None and acc().fills and acc().state()["open_orders"], 15,
                         "a fill and a resting order")

            async def broken():
                raise JournalError("injected: disk gone")
            runner._recover_locked = broken
            acc().session.close()                          # reconnect -> recovery -> fatal error
            with pytest.raises(JournalError):
                await asyncio.wait_for(task, 20)
            return acc().state()
        finally:
            task.cancel()
            runner.close()
            await _shut(server, srv)

    ex = asyncio.run(asyncio.wait_for(scenario(), 50))
    assert ex["open_orders"] == []


def test_a_late_fill_of_an_untracked_order_goes_through_pnl_and_the_kill_switch(tmp_path):
    """Synthetic report (labelled): a fill arrives for one of our orders that recovery already closed. It is
    booked once, and like any fill it updates PnL at once: its 5 USDT fee crosses a 1 USDT loss limit."""
    from decimal import Decimal

    from mmcore.execution import OrderFilled

    cfg = load_config(DEFAULT_CONFIG, ["risk.max_daily_loss_usdt=1", "risk.reduce_at_fraction=null"])
    inst = load_instrument("binance_usdm", "BTCUSDT", cfg.resolve_path(cfg.get("data.markets")))
    runner = LiveRunner(cfg, inst, "127.0.0.1", 9, ACCOUNT, str(tmp_path / "j.db"))    # never connected
    try:
        fill = OrderFilled(10, runner.orders.coids.prefix + "5", 77, 1, 600_000, 1, Decimal("5"))
        runner.journal.record_order(5, fill.client_order_id, 1, 600_000, 1, "CANCELED")   # closed by a recovery
        runner._on_report(fill)
        runner._on_report(fill)                                       # delivered twice: booked once
        assert runner.late_fills == 1 and runner.portfolio.position == 1 and runner.engine.fills == [fill]
        assert runner.engine.trading_state == HALTED
    finally:
        runner.close()


def test_a_live_fill_of_an_order_the_journal_never_had_is_booked_by_a_reconciliation_under_its_row(tmp_path):
    """Synthetic venue (labelled stub, no network): a fill report arrives live for one of our ids that the
    journal has no order row for. It is not booked blind: the runner reconciles, recovery fetches the venue's
    record of the order, writes its row, then books the fill (once, also when the report comes again)."""
    from mmcore.engine.recovery import VenueOrder

    from crashkit import ORPHAN_FILLS_SQL, journal_rows

    cfg = load_config(DEFAULT_CONFIG)
    inst = load_instrument("binance_usdm", "BTCUSDT", cfg.resolve_path(cfg.get("data.markets")))
    path = tmp_path / "j.db"
    runner = LiveRunner(cfg, inst, "127.0.0.1", 9, ACCOUNT, str(path))    # never connected
    coid = runner.orders.coids.prefix + "z"
    fill = OrderFilled(1_700_000_000_000_000_000, coid, 4, BUY, 600_000, 2, Decimal("0.024"))

    class Venue:
        connected = True
        asked = []

        def submit(self, *a, **k):
            pass

        def cancel(self, *a):
            pass

        async def open_orders(self):
            return []

        async def fills_since(self, ts):
            return [fill]

        async def order(self, c):
            self.asked.append(c)
            return VenueOrder(c, BUY, 600_000, 2, 2, "FILLED", "v9", fill.ts_ns - 5)

    async def scenario():
        runner.client = runner.orders.exec = Venue()
        runner.restarted = True
        runner._on_report(fill)
        assert runner.portfolio.position == 0                        # not booked without its order row
        await _until(lambda: runner.recoveries, 5, "the reconciliation")
        runner._on_report(fill)                                      # again, live: a duplicate now
        return runner.recoveries[0], runner.client.asked

    try:
        rep, asked = asyncio.run(asyncio.wait_for(scenario(), 10))
        assert asked == [coid] and rep.rows_recorded == [coid] and rep.fills_booked == [fill]
        assert runner.portfolio.position == 2 and runner.late_fills == 0
    finally:
        runner.close()
    assert journal_rows(path, ORPHAN_FILLS_SQL) == [(0,)]
    assert journal_rows(path, "SELECT state, filled_lots FROM orders") == [("FILLED", 2)]
