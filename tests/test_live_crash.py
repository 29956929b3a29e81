"""Crash, chaos and one-process-per-account tests of the live session on the Binance-compatible emulator.

The emulator (``python -m mmcore emulate``) replays the real recording ``data/usdm_btcusdt_20240808.gz`` at
20x real time from a child process, so it outlives the engine: the market goes on and resting orders keep
filling while the engine is dead. The engine (``python -m mmcore run --venue binance_usdm --live --endpoint``,
the production code path: picows streams and WebSocket API, listenKey user data) runs as a second child with
its journal directory in ``tmp_path``; it is SIGKILLed mid-run and restarted from the same journal, then
stopped with SIGTERM. The emulator's record of the account and the journal must then agree: no lost or
duplicate fill, no client order id used twice, the same inventory and fees, no order of ours left open, every
fill under an order row. Loopback only, bounded in time, children always killed.
"""
import os
import random
import signal
import time

from venuekit import (assert_journal_is_the_exchange, events, exchange, journal_fills, journal_rows, kill_all,
                      start_emulator, start_engine, wait)

JOURNAL = "binance_usdm-{}-BTCUSDT.db"
FILLS_PER_RUN = 4


def _journal(tmp_path):
    found = list((tmp_path / "j").glob("binance_usdm-*-BTCUSDT.db"))
    return found[0] if found else tmp_path / "j" / "none.db"


def _recoveries(tmp_path, runs):
    return [r for n in range(runs) for r in events(tmp_path / f"engine{n}.out", "recovery")]


def test_sigkilled_live_engine_restarts_from_its_journal_without_lost_fill_or_reused_id(tmp_path):
    t0 = time.monotonic()
    procs = []
    kills = 2
    try:
        port = start_emulator(procs, tmp_path)
        downtime = 0
        for n in range(kills + 1):
            before = journal_fills(_journal(tmp_path))
            eng = start_engine(procs, port, tmp_path / "j", tmp_path, n)
            wait(lambda: journal_fills(_journal(tmp_path)) >= before + FILLS_PER_RUN, 40,
                 f"run {n}: {FILLS_PER_RUN} new journaled fills", (procs[0], eng))
            if n == kills:
                break
            eng.send_signal(signal.SIGKILL)
            assert eng.wait(5) == -signal.SIGKILL
            at_kill = len(exchange(port)["fills"])
            deadline = time.monotonic() + 4        # dead for a while: a resting order may fill meanwhile
            while time.monotonic() < deadline and len(exchange(port)["fills"]) == at_kill:
                time.sleep(0.1)
            downtime += len(exchange(port)["fills"]) - at_kill
        eng.send_signal(signal.SIGTERM)
        assert eng.wait(30) == 0, (tmp_path / f"engine{kills}.err").read_text()[-3000:]
        ex = exchange(port)
    finally:
        kill_all(procs)
    recs = _recoveries(tmp_path, kills + 1)
    assert [r["restart"] for r in recs if r["restart"]] == [True] * (kills + 1)
    assert all(not r["mismatches"] and r["fills_refused"] == 0 for r in recs), recs
    assert sum(r["fills_booked"] for r in recs) >= downtime
    (stopped,) = events(tmp_path / f"engine{kills}.out", "stopped")
    assert stopped["clean"] is True
    assert_journal_is_the_exchange(_journal(tmp_path), ex)
    print(f"\n{len(ex['fills'])} fills, {downtime} while dead, {time.monotonic() - t0:.1f} s")


def test_repeated_sigkills_at_random_moments_leave_the_journal_equal_to_the_exchange(tmp_path):
    seed = int(os.environ.get("MMCORE_CHAOS_SEED") or random.SystemRandom().randrange(2**32))
    rng = random.Random(seed)
    kills = 5
    tag = f"[chaos seed {seed}; replay with MMCORE_CHAOS_SEED={seed}]"
    print(f"\n{tag}")
    procs, modes = [], []
    try:
        port = start_emulator(procs, tmp_path)
        for n in range(kills):
            out = tmp_path / f"engine{n}.out"
            eng = start_engine(procs, port, tmp_path / "j", tmp_path, n)
            mode = rng.choice(("startup", "trading", "after_submit"))
            if mode == "startup":               # anywhere in start-up: imports, journal, connect, recovery
                time.sleep(rng.uniform(0.2, 2.0))
            else:
                wait(lambda: events(out, "recovery"), 30, f"{tag} run {n}: its first recovery", (procs[0], eng))
                if mode == "trading":
                    time.sleep(rng.uniform(0.0, 2.0))
                else:                           # right after the venue received a new order of ours
                    base = len(exchange(port)["coids_received"])
                    deadline = time.monotonic() + 3
                    while len(exchange(port)["coids_received"]) == base and time.monotonic() < deadline:
                        time.sleep(0.005)
            assert eng.poll() is None, f"{tag} run {n} exited: " + (tmp_path / f"engine{n}.err").read_text()[-2000:]
            eng.send_signal(signal.SIGKILL)
            assert eng.wait(5) == -signal.SIGKILL
            modes.append(mode)
            assert journal_rows(_journal(tmp_path), "PRAGMA integrity_check") in ([], [("ok",)]), tag
            time.sleep(rng.uniform(0.0, 1.0))
        eng = start_engine(procs, port, tmp_path / "j", tmp_path, kills)
        wait(lambda: events(tmp_path / f"engine{kills}.out", "recovery"), 30, f"{tag} the last run's recovery",
             (procs[0], eng))
        time.sleep(rng.uniform(0.5, 2.0))
        eng.send_signal(signal.SIGTERM)
        assert eng.wait(30) == 0, f"{tag} " + (tmp_path / f"engine{kills}.err").read_text()[-3000:]
        ex = exchange(port)
    finally:
        kill_all(procs)
    recs = _recoveries(tmp_path, kills + 1)
    assert all(not r["mismatches"] and r["fills_refused"] == 0 for r in recs), (tag, modes, recs)
    (stopped,) = events(tmp_path / f"engine{kills}.out", "stopped")
    assert stopped["clean"] is True, tag
    assert_journal_is_the_exchange(_journal(tmp_path), ex)
    print(f"{tag} modes {modes}; {len(ex['fills'])} fills at the exchange")


def test_a_second_engine_on_the_same_account_is_refused_and_sends_nothing(tmp_path):
    procs = []
    try:
        port = start_emulator(procs, tmp_path)
        first = start_engine(procs, port, tmp_path / "j", tmp_path, 0)
        wait(lambda: events(tmp_path / "engine0.out", "recovery"), 30, "the first engine's recovery",
             (procs[0], first))
        received = len(exchange(port)["coids_received"])
        second = start_engine(procs, port, tmp_path / "j2", tmp_path, 1)
        assert second.wait(30) == 1
        err = (tmp_path / "engine1.err").read_text()
        assert "already traded by pid" in err and str(first.pid) in err and "Traceback" not in err
        assert not (tmp_path / "j2").exists() or not list((tmp_path / "j2").glob("*.db"))
        # the second sent nothing: the orders the venue got are the first engine's (its journal has them all)
        time.sleep(0.5)
        first.send_signal(signal.SIGTERM)
        assert first.wait(30) == 0
        # the lock went with the first: a new engine on the account starts and reconciles from the journal
        third = start_engine(procs, port, tmp_path / "j", tmp_path, 2)
        wait(lambda: events(tmp_path / "engine2.out", "recovery"), 30, "the third engine's recovery",
             (procs[0], third))
        third.send_signal(signal.SIGTERM)
        assert third.wait(30) == 0
        ex = exchange(port)
    finally:
        kill_all(procs)
    assert len(ex["coids_received"]) >= received
    assert_journal_is_the_exchange(_journal(tmp_path), ex)


def test_resting_orders_are_cancelled_when_the_feed_stalls(tmp_path):
    import json
    import urllib.request
    procs = []
    try:
        port = start_emulator(procs, tmp_path)
        eng = start_engine(procs, port, tmp_path / "j", tmp_path, 0, extra=["--set", "venue.watchdog_s=1"])
        wait(lambda: exchange(port)["open_orders"], 30, "an order resting at the venue", (procs[0], eng))
        req = urllib.request.Request(f"http://127.0.0.1:{port}/_emulator/fault", method="POST",
                                     data=json.dumps({"kind": "stall"}).encode(),
                                     headers={"Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=5).read()
        time.sleep(2.5)                                   # watchdog 1 s, then the cancels' round trip
        assert not exchange(port)["open_orders"]
        time.sleep(1.0)
        assert not exchange(port)["open_orders"]          # and nothing new while the feed is stalled
        eng.send_signal(signal.SIGTERM)
        assert eng.wait(30) == 0
    finally:
        kill_all(procs)
    assert "-> stale" in (tmp_path / "engine0.err").read_text()


def test_a_refused_signature_stops_the_live_start_with_exit_1_and_never_shows_the_secret(tmp_path):
    import subprocess
    import sys

    from venuekit import ROOT, env
    wrong = "wrongSecret0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ"      # fake, for this test
    procs = []
    try:
        port = start_emulator(procs, tmp_path)
        r = subprocess.run([sys.executable, "-m", "mmcore", "run", "--venue", "binance_usdm", "--symbols", "BTCUSDT",
                            "--live", "--endpoint", f"http://127.0.0.1:{port}", "--journal-dir", str(tmp_path / "j"),
                            "--duration", "20", "--set", "venue.strict_no_rest_markets=true"],
                           cwd=ROOT, env=env(BINANCE_API_SECRET=wrong), capture_output=True, text=True, timeout=60)
        received = exchange(port)["coids_received"]
    finally:
        kill_all(procs)
    assert r.returncode == 1, r.stderr[-2000:]
    assert "Traceback" not in r.stderr and "error:" in r.stderr
    assert wrong not in r.stdout + r.stderr                             # the secret is never printed
    assert received == {}                                               # nothing was sent
