"""Binance execution client under the emulator's faults: a bad signature is refused and never retried, 429 with
Retry-After backs off, 418 stops sending, 5xx makes the client query the order, reject_orders gives OrderRejected,
an expired listenKey is renewed with recovery, a dropped WS API reconnects and runs on_connect again, and a fake
secret appears in no log line or exception text."""
import asyncio
import logging
import time

import pytest

from binexkit import harness, place_resting, run
from emukit import KEY, until
from mmcore.execution import OrderAccepted, OrderRejected

pytest.importorskip("picows")
VENUES = ["binance_spot", "binance_usdm"]
FAKE_SECRET = "fakeSECRETnever2appear3in4logs5or6errors7xyzABCDEFGH"


@pytest.mark.parametrize("venue", VENUES)
def test_bad_signature_refused_never_retried_and_the_secret_never_logged(venue, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    errors = []

    async def scenario():
        async with harness(venue, tmp_path, 4000, secret=FAKE_SECRET, start_exec=False) as h:
            try:
                await h.ex.start()                         # subscription / listenKey / queries: refused
            except Exception as exc:                       # noqa: BLE001 - any failure text is checked below
                errors.append(exc)
            if venue == "binance_spot":                      # the signed subscription was refused already
                assert h.ex.wsapi.fatal is not None and errors
            bid, _ = h.touch()
            h.client.submit(0, "sig-1", 1, bid - 10, h.lots())
            await until(lambda: h.of("sig-1", OrderRejected) or h.ex.wsapi.fatal is not None, 5, "the refusal")
            await asyncio.sleep(0.2)
            h.client.submit(0, "sig-2", 1, bid - 11, h.lots())
            await h.wait("sig-2", OrderRejected)
            for q in (h.client.open_orders(), h.client.order("sig-1")):
                try:
                    await q
                except Exception as exc:                   # noqa: BLE001
                    errors.append(exc)
            await asyncio.sleep(0.3)
            return list(h.reports), h.state(), h.ex.wsapi.fatal, dict(h.ex.wsapi.counters), repr(h.ex.wsapi.credentials)

    reports, state, fatal, counters, cred_repr = run(scenario())
    assert fatal is not None and fatal.code == -1022
    assert [r.code for r in reports if r.client_order_id == "sig-2"] == ["AUTH"]
    # the bad-signature order reached the emulator at most once, the second never (refused locally)
    assert state["coids_received"].get("sig-1", 0) <= 1 and "sig-2" not in state["coids_received"]
    assert state["symbols"].get("BTCUSDT", {}).get("orders", []) == []
    assert counters["fatal"] == 1 and counters["refused_locally"] >= 1
    assert errors                                          # the queries failed too
    texts = [caplog.text, cred_repr] + [str(e) for e in errors] + [repr(r) for r in reports]
    assert not any(FAKE_SECRET in t for t in texts)
    assert not any(FAKE_SECRET[:16] in t for t in texts)


def test_429_with_retry_after_backs_off_then_sends_again(tmp_path):
    async def scenario():
        async with harness("binance_spot", tmp_path, 4000) as h:
            bid, _ = h.touch()
            h.emu.faults.add({"kind": "rate_limited", "target": "wsapi", "retry_after": 1, "count": 1})
            h.client.submit(0, "rl-1", 1, bid - 10, h.lots())
            r1 = await h.wait("rl-1", OrderRejected)
            t0 = time.monotonic()
            h.client.submit(0, "rl-2", 1, bid - 10, h.lots())              # inside Retry-After: local refusal
            r2 = await h.wait("rl-2", OrderRejected)
            received_during = dict(h.state()["coids_received"])
            until_ns, reason = h.ex.limiter.blocked_until()
            while time.time_ns() < until_ns:
                await asyncio.sleep(0.05)
            h.client.submit(0, "rl-3", 1, bid - 10, h.lots())
            await h.wait("rl-3", OrderAccepted)
            return r1, r2, received_during, until_ns, reason, time.monotonic() - t0, h.ex.wsapi.counters

    r1, r2, during, until_ns, reason, waited, counters = run(scenario())
    assert r1[0].code == "RATE_LIMITED" and r2[0].code == "RATE_LIMITED"
    assert "rl-2" not in during and reason == "rate_limited"
    assert waited >= 0.5 and counters["rate_limited"] == 1


def test_418_stops_every_request(tmp_path):
    async def scenario():
        async with harness("binance_usdm", tmp_path, 4000) as h:
            bid, _ = h.touch()
            await place_resting(h, "ban-0")
            h.emu.faults.add({"kind": "banned", "target": "wsapi", "retry_after": 60, "count": 1})
            h.client.submit(0, "ban-1", 1, bid - 10, h.lots())
            await h.wait("ban-1", OrderRejected)
            n_before = dict(h.state()["coids_received"])
            for i in range(5):
                h.client.submit(0, f"ban-x{i}", 1, bid - 10, h.lots())
            h.client.cancel(0, "ban-0")
            await asyncio.sleep(0.3)
            with pytest.raises(Exception):
                await h.client.order("ban-0")
            return list(h.reports), n_before, h.state(), h.ex.limiter.blocked_until()

    reports, before, state, (until_ns, reason) = run(scenario())
    assert reason == "banned" and until_ns > time.time_ns() + 30e9
    assert all(f"ban-x{i}" not in state["coids_received"] for i in range(5))
    assert [r.code for r in reports if r.client_order_id.startswith("ban-x")] == ["BANNED"] * 5
    assert any(o["clientOrderId"] == "ban-0" for o in state["symbols"]["BTCUSDT"]["open_orders"])   # cancel not sent


@pytest.mark.parametrize("execute", [True, False])
def test_5xx_on_order_place_queries_the_order(execute, tmp_path):
    async def scenario():
        async with harness("binance_spot", tmp_path, 4000) as h:
            bid, _ = h.touch()
            h.emu.faults.add({"kind": "server_error", "target": "wsapi", "status": 503, "execute": execute})
            h.client.submit(0, "5xx-1", 1, bid - 10, h.lots())
            await until(lambda: h.of("5xx-1"), 5, "a report")
            await asyncio.sleep(0.2)
            return h.of("5xx-1"), h.client.counters["unknown_status"], h.state()

    reps, unknown, state = run(scenario())
    assert unknown == 1
    if execute:                                  # placed although answered 503: the query finds it
        assert [type(r) for r in reps] == [OrderAccepted]
        assert any(o["clientOrderId"] == "5xx-1" for o in state["symbols"]["BTCUSDT"]["open_orders"])
    else:
        assert [type(r) for r in reps] == [OrderRejected] and reps[0].code == "UNKNOWN_STATUS"
    assert state["coids_received"].get("5xx-1", 0) <= 1                  # never re-sent


@pytest.mark.parametrize("venue", VENUES)
def test_reject_orders_fault_gives_order_rejected(venue, tmp_path):
    async def scenario():
        async with harness(venue, tmp_path, 4000) as h:
            bid, _ = h.touch()
            h.emu.faults.add({"kind": "reject_orders", "apiKey": KEY, "count": 1, "code": -2010,
                              "msg": "Account has insufficient balance for requested action."})
            h.client.submit(0, "rj-1", 1, bid - 10, h.lots())
            h.client.submit(0, "rj-2", 1, bid - 11, h.lots())
            r = await h.wait("rj-1", OrderRejected)
            await h.wait("rj-2", OrderAccepted)
            return r

    r = run(scenario())
    assert r[0].code == "BINANCE:-2010" and "insufficient balance" in r[0].reason


def test_expired_listen_key_is_renewed_and_recovery_runs(tmp_path):
    async def scenario():
        async with harness("binance_usdm", tmp_path, 4000, settings={"keepalive_s": 0.2}) as h:
            key1 = h.ex.user.listen_key
            n = h.connects
            h.emu.faults.add({"kind": "expire_listen_key", "apiKey": KEY})
            await until(lambda: h.ex.user.listen_key != key1 and h.ex.user.connected and h.connects > n, 10,
                        "a new listenKey stream and recovery")
            await place_resting(h, "lk-1")
            h.client.cancel(0, "lk-1")
            await until(lambda: any(type(r).__name__ == "OrderCanceled" for r in h.of("lk-1")), 5, "the cancel")
            await asyncio.sleep(0.5)                     # a keep-alive or two on the new key
            return key1, h.ex.user.listen_key, h.ex.user.counters, h.connects - n

    k1, k2, counters, recoveries = run(scenario())
    assert k1 != k2 and counters["expired"] == 1 and counters["connects"] == 2 and recoveries == 1
    assert counters["keepalives"] >= 1 and counters["keepalive_failures"] == 0


@pytest.mark.parametrize("venue", VENUES)
def test_dropped_ws_api_reconnects_and_runs_on_connect(venue, tmp_path):
    async def scenario():
        async with harness(venue, tmp_path, 4000) as h:
            await place_resting(h, "dr-1")
            n = h.connects
            h.emu.actions.drop("wsapi", None) if hasattr(h.emu, "actions") else h.emu.drop("wsapi", None)
            await until(lambda: h.disconnects == 1, 5, "the disconnect")
            await until(lambda: h.connects == n + 1 and h.ex.wsapi.connected, 10, "the reconnect and on_connect")
            await place_resting(h, "dr-2", away=25)
            opened = sorted(o.client_order_id for o in await h.client.open_orders())
            return opened, dict(h.ex.wsapi.counters)

    opened, counters = run(scenario())
    assert opened == ["dr-1", "dr-2"]
    assert (counters["connects"], counters["disconnects"]) == (2, 1), counters


def test_timestamp_outside_recv_window_resyncs_the_clock_once(tmp_path):
    async def scenario():
        async with harness("binance_spot", tmp_path, 4000) as h:
            bid, _ = h.touch()
            h.ex.wsapi.offset_ms = -120_000                       # our clock two minutes behind the server
            for i in range(5):                                     # a burst: one resync, not five
                h.client.submit(0, f"ts-{i}", 1, bid - 10 - i, h.lots())
            rej = [await h.wait(f"ts-{i}", OrderRejected) for i in range(5)]
            await until(lambda: abs(h.ex.wsapi.offset_ms) < 5000, 5, "the resync")
            h.client.submit(0, "ts-ok", 1, bid - 20, h.lots())
            await h.wait("ts-ok", OrderAccepted)
            return [r[0].code for r in rej], h.ex.wsapi.counters["resyncs"]

    codes, resyncs = run(scenario())
    assert codes == ["TIMESTAMP"] * 5 and resyncs == 1
