"""Chaos test: the engine is SIGKILLed again and again at random moments against the exchange emulator.

The emulator (``mmcore.sim.server``) replays the real recording ``data/usdm_btcusdt_20240808.gz`` at 20x
real time from a child process, so the market goes on, and resting orders keep filling, while the engine is
dead. The engine (``mmcore.runners.live_runner``) is started from the same journal ``KILLS`` times and each time
SIGKILLed at a random moment (seeded): during its start-up and recovery, while it trades, or right after the
exchange received one of its orders (before the journal had it committed, often). It stays dead for a random
while, then the next run restarts from the journal. A last run is stopped with SIGTERM.

Then the journal must be the exchange: the same fills (as sets of (coid, trade_id, side, price, qty, fee)),
position, cash and fees; no client order id received twice; no order of ours left open; every fill under
an order row; ``PRAGMA integrity_check`` ok after every kill and at the end; no recovery reported a mismatch
or refused a fill.

The seed is printed (shown with the output of a failing test); ``MMCORE_CHAOS_SEED=N`` replays one,
``MMCORE_CHAOS_KILLS=K`` changes the number of kills (default 8: about 20-30 s on a 2-core machine).
Loopback only; bounded waits; every child is killed at the end.

    .venv/bin/python -m pytest -q -s -p no:cacheprovider tests/test_chaos.py
    MMCORE_CHAOS_SEED=12345 MMCORE_CHAOS_KILLS=10 .venv/bin/python -m pytest -q -s tests/test_chaos.py
"""
import os
import random
import signal
import time
from decimal import Decimal

import orjson

from crashkit import (assert_journal_is_the_exchange, exchange, journal_rows, kill_all, start_engine,
                      start_server, wait)

KILLS = int(os.environ.get("MMCORE_CHAOS_KILLS", "8"))
MODES = ("startup", "trading", "after_submit")


def _events(path, event):
    """The engine's JSON lines of one event; a line cut by the SIGKILL is ignored."""
    out = []
    for line in path.read_bytes().splitlines():
        try:
            m = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if m.get("event") == event:
            out.append(m)
    return out


def _received(port) -> int:
    return sum(exchange(port)["coids_received"].values())


def test_repeated_sigkills_at_random_moments_leave_the_journal_equal_to_the_exchange(tmp_path):
    seed = int(os.environ.get("MMCORE_CHAOS_SEED") or random.SystemRandom().randrange(2**32))
    rng = random.Random(seed)
    print(f"\nchaos seed {seed} ({KILLS} kills; replay with MMCORE_CHAOS_SEED={seed})")
    tag = f"[chaos seed {seed}]"
    journal = tmp_path / "engine.db"
    procs, modes, downtime_fills = [], [], 0
    t0 = time.monotonic()
    try:
        port = start_server(procs, tmp_path)
        for n in range(KILLS):
            out = tmp_path / f"engine{n}.out"
            eng = start_engine(procs, port, journal, tmp_path, n)
            mode = rng.choice(MODES)
            if mode == "startup":                # anywhere in start-up: imports, journal, connect, recovery
                time.sleep(rng.uniform(0.1, 0.9))
            else:
                wait(lambda: out.exists() and out.read_bytes(), 20, f"{tag} run {n}: its first recovery",
                     (procs[0], eng))
                if mode == "trading":
                    time.sleep(rng.uniform(0.0, 1.5))
                else:                            # right after the exchange received a new order of ours
                    base = _received(port)
                    deadline = time.monotonic() + 3
                    while _received(port) == base and time.monotonic() < deadline:
                        time.sleep(0.005)
                    if time.monotonic() >= deadline:
                        mode = "after_submit (no submit within 3 s)"
            assert eng.poll() is None, f"{tag} run {n} exited by itself: " + \
                (tmp_path / f"engine{n}.err").read_text()[-2000:]
            eng.send_signal(signal.SIGKILL)
            assert eng.wait(5) == -signal.SIGKILL
            modes.append(mode)
            assert journal_rows(journal, "PRAGMA integrity_check") in ([], [("ok",)]), tag
            at_kill = len(exchange(port)["fills"])
            time.sleep(rng.uniform(0.0, 1.0))    # dead for a while: the market goes on
            downtime_fills += len(exchange(port)["fills"]) - at_kill
        out = tmp_path / f"engine{KILLS}.out"
        eng = start_engine(procs, port, journal, tmp_path, KILLS)
        wait(lambda: out.exists() and out.read_bytes(), 20, f"{tag} the last run's recovery", (procs[0], eng))
        time.sleep(rng.uniform(0.5, 1.5))
        eng.send_signal(signal.SIGTERM)
        assert eng.wait(30) == 0, f"{tag} " + (tmp_path / f"engine{KILLS}.err").read_text()[-3000:]
        ex = exchange(port)
    finally:
        kill_all(procs)

    recoveries = [r for n in range(KILLS + 1) for r in _events(tmp_path / f"engine{n}.out", "recovery")]
    restarts = [r for r in recoveries if r["restart"]]
    booked = sum(r["fills_booked"] for r in recoveries)
    print(f"{tag} modes {modes}; {len(ex['fills'])} fills at the exchange, {downtime_fills} while the engine "
          f"was dead, {booked} booked by recoveries; {len(restarts)} restart recoveries: "
          f"{sum(r['unknown_adopted'] for r in restarts)} unknown orders adopted, "
          f"{sum(r['rows_recorded'] for r in recoveries)} order rows from the venue's record, "
          f"{sum(r['rows_reconstructed'] for r in recoveries)} reconstructed; "
          f"{time.monotonic() - t0:.1f} s")
    assert all(not r["mismatches"] and r["fills_refused"] == 0 for r in recoveries), (tag, recoveries)
    assert booked >= downtime_fills, tag
    (stopped,) = _events(tmp_path / f"engine{KILLS}.out", "stopped")
    assert stopped["clean"] is True, tag

    fill_set = lambda rows: {(c, t, s, p, q, Decimal(f)) for c, t, s, p, q, f in rows}
    assert fill_set(journal_rows(journal, "SELECT client_order_id, trade_id, side, price_ticks, qty_lots, fee "
                                          "FROM fills")) == \
        fill_set((f["coid"], f["trade_id"], f["side"], f["price"], f["qty"], f["fee"]) for f in ex["fills"]), tag
    assert_journal_is_the_exchange(journal, ex)
