"""Live trading end to end in one process against the Binance-compatible emulator: the production feed and
execution client (picows streams, WebSocket API, user data) under a sequence of injected faults, two symbols.

The account's API secret is fake, made for this test. After the stop: the journals equal the emulator's record
of the account (fills, position, fees), no client order id was sent twice, nothing of ours is open, and the
secret appears in no log line, report or journal byte."""
from __future__ import annotations

import asyncio
import json
import logging

import aiohttp
import pytest

from emukit import KEY, SECRET, USDM_BTC, USDM_ETH, head, running
from mmcore.config import load_config
from mmcore.instruments import load_instrument
from mmcore.runners.live import Session
from mmcore.runners.venue_run import session_summary
from mmcore.venues.binance.credentials import Credentials
from mmcore.venues.binance.execution import BinanceExecution
from mmcore.venues.binance.feed import BinanceFeed

from venuekit import ACTIVE, assert_journal_is_the_exchange

SYMBOLS = ["BTCUSDT", "ETHUSDT"]
FAULTS = [{"kind": "duplicate_reports", "count": 20}, {"kind": "reorder_reports", "count": 10, "hold_ms": 200},
          {"kind": "drop", "target": "wsapi"}, {"kind": "skip_diff", "symbol": "BTCUSDT", "count": 1},
          {"kind": "drop", "target": "market"}, {"kind": "expire_listen_key"},
          {"kind": "rate_limited", "count": 2, "retry_after": 1, "target": "wsapi"},
          {"kind": "reject_orders", "count": 3}, {"kind": "malformed", "target": "all", "count": 2}]


async def _fault(port, body):
    async with aiohttp.ClientSession() as s:
        async with s.post(f"http://127.0.0.1:{port}/_emulator/fault", json=body) as r:
            assert r.status == 200, await r.text()


@pytest.mark.parametrize("amend", [False, True], ids=["cancel-replace", "amend"])
def test_live_session_under_faults_keeps_journal_equal_to_the_emulator_and_never_shows_the_secret(tmp_path,
                                                                                                  caplog, amend):
    caplog.set_level(logging.DEBUG)
    data = [head(f, tmp_path / f.name, 40000) for f in (USDM_BTC, USDM_ETH)]
    (tmp_path / "j").mkdir()

    async def scenario():
        async with running(data, tmp_path, speed=5) as (emu, port):
            config = load_config(overrides=[f"venue.endpoint=http://127.0.0.1:{port}", *ACTIVE,
                                            "venue.reconnect_initial_s=0.05", "venue.reconnect_max_s=0.5",
                                            f"execution.amend_orders={'true' if amend else 'false'}"])
            inst = {s: load_instrument("binance_usdm", s) for s in SYMBOLS}
            box = []
            ex = BinanceExecution("binance_usdm", SYMBOLS, inst, Credentials.hmac(KEY, SECRET), config,
                                  on_report=lambda s, r: box[0].on_report(s, r),
                                  on_connect=lambda: box[0].on_connect(), on_disconnect=lambda: box[0].on_disconnect(),
                                  endpoint=f"http://127.0.0.1:{port}")
            session = Session(config, "binance_usdm", inst,
                              lambda a, b: BinanceFeed("binance_usdm", SYMBOLS, inst, config, a, b), ex,
                              tmp_path / "j", "acct")
            box.append(session)
            run = asyncio.get_running_loop().create_task(session.run(duration_s=60))
            for _ in range(400):
                await asyncio.sleep(0.05)
                if all(ss.engine.fills for ss in session.symbols.values()):
                    break
            for f in FAULTS:
                await _fault(port, f)
                await asyncio.sleep(0.8)
            await asyncio.sleep(2.0)
            session.request_stop()
            clean = await run
            state = emu.account_state(emu.exchange.accounts[KEY])
            return session, clean, state
    session, clean, state = asyncio.run(asyncio.wait_for(scenario(), 120))
    assert clean
    summary = session_summary(session)
    for sym in SYMBOLS:
        ex = dict(state["symbols"].get(sym) or {}, coids_received=state["coids_received"],
                  duplicate_coids=state["duplicate_coids"])
        journal = next((tmp_path / "j").glob(f"*-{sym}.db"))
        assert_journal_is_the_exchange(journal, ex, "binance_usdm", sym)
        assert summary["symbols"][sym]["orders_placed"] > 0
        assert session.symbols[sym].engine.book.synced
    assert sum(len(ss.recoveries) for ss in session.symbols.values()) >= 4     # start + WS API drop + listenKey
    amends = sum(ss.engine.orders.counters["amends_sent"] for ss in session.symbols.values())
    assert (amends > 10) if amend else amends == 0, amends
    assert sum(ss.engine.orders.counters["illegal_transitions"] for ss in session.symbols.values()) == 0
    assert summary["feed"]["reconnects"] >= 1 and summary["execution"]["duplicate_reports"] >= 1
    # the fake secret: in no log record, report, or journal file
    text = "\n".join(r.getMessage() + repr(r.args) for r in caplog.records)
    assert SECRET not in text and SECRET not in json.dumps(summary, default=str)
    for f in (tmp_path / "j").iterdir():
        assert SECRET.encode() not in f.read_bytes()
