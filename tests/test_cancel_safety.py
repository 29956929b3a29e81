"""Cancellation reaches every long-lived loop: a task of the feed, the order entry or the session that is
cancelled ends, also when the cancellation arrives in the same loop iteration as the event it waited for
(Python 3.11's ``asyncio.wait_for`` swallows it then, CPython gh-86296), so ``asyncio.run`` never waits for ever
on a reconnect loop after a failure. A hung paper test did exactly that and ran CI into its 90-minute limit.
"""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap

import pytest

from mmcore.aio import raise_if_cancelled, wait_within

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_wait_within_keeps_a_cancellation_that_arrives_as_the_awaited_event_fires():
    async def scenario():
        ev = asyncio.Event()

        async def waiter():
            await wait_within(ev.wait(), 10)
            return "returned"
        t = asyncio.get_running_loop().create_task(waiter())
        await asyncio.sleep(0)                 # t waits on the event
        ev.set()                               # the event and the cancellation in the same iteration
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        assert t.cancelled()
    asyncio.run(scenario())


def test_wait_within_times_out_and_returns_results():
    async def scenario():
        with pytest.raises(TimeoutError):
            await wait_within(asyncio.sleep(5), 0.01)
        assert await wait_within(asyncio.sleep(0, "x"), 1) == "x"
        assert await wait_within(asyncio.sleep(0, "y"), None) == "y"
    asyncio.run(scenario())


def test_raise_if_cancelled_ends_a_loop_whose_body_swallowed_the_cancellation():
    async def scenario():
        rounds = []

        async def loop():
            while True:
                raise_if_cancelled()
                rounds.append(1)
                try:
                    await asyncio.sleep(0.001)
                except asyncio.CancelledError:  # what a library call (or a broad except) may do
                    pass
        t = asyncio.get_running_loop().create_task(loop())
        await asyncio.sleep(0.01)
        t.cancel()
        await wait_within(asyncio.shield(asyncio.wait([t])), 2)
        assert t.cancelled() and len(rounds) > 1
        raise_if_cancelled()                   # this task was never cancelled: a no-op
    asyncio.run(scenario())


# A paper session on the in-process emulator; the scenario fails after DELAY s (as a failing assertion would),
# so asyncio.run cancels every task: the feed's stream, snapshot and poller loops included.
CHILD = textwrap.dedent("""
    import asyncio, sys, tempfile
    from pathlib import Path
    sys.path.insert(0, "tests")
    from emukit import USDM_BTC, USDM_ETH, head, running
    from mmcore.config import load_config
    from mmcore.instruments import load_instrument
    from mmcore.runners.live import Session
    from mmcore.venues.binance.feed import BinanceFeed

    delay = float(sys.argv[1])
    tmp = Path(tempfile.mkdtemp())
    data = [head(f, tmp / f.name, 4000) for f in (USDM_BTC, USDM_ETH)]
    symbols = ["BTCUSDT", "ETHUSDT"]

    async def scenario():
        async with running(data, tmp, speed=5) as (emu, port):
            config = load_config(overrides=[f"venue.endpoint=http://127.0.0.1:{port}",
                                            "venue.strict_no_rest_markets=true", "venue.reconnect_initial_s=0.01"])
            inst = {s: load_instrument("binance_usdm", s) for s in symbols}
            session = Session(config, "binance_usdm", inst,
                              lambda on_event, on_state: BinanceFeed("binance_usdm", symbols, inst, config,
                                                                     on_event, on_state))
            asyncio.get_running_loop().create_task(session.run(duration_s=60))
            await asyncio.sleep(delay)
            raise RuntimeError("the scenario failed")
    try:
        asyncio.run(scenario())
    except RuntimeError as exc:
        print("ended:", exc)
""")


@pytest.mark.parametrize("delay", [0.0, 0.05, 0.3, 1.5])
def test_a_paper_session_cancelled_by_a_failing_scenario_ends(delay):
    r = subprocess.run([sys.executable, "-c", CHILD, str(delay)], cwd=ROOT, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "ended: the scenario failed" in r.stdout
