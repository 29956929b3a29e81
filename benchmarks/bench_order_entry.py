"""Order entry: market-data frame received -> order request bytes written, WebSocket API vs ccxt REST, against the
emulator on 127.0.0.1 (spot BTCUSDT recording, speed 20, order limits off, zero simulated latency), measured inside
the client process with ``perf_counter_ns``. Two runs: the emulator in the same process and event loop (as the tests
run it) and ``python -m mmcore emulate`` in its own process (the client process then does nothing else).

WebSocket API path: our own minimal picows listener on the emulator's ``/stream`` (combined depth + trade
streams); ``t0`` at the entry of ``on_ws_frame``; the frame is decoded by mmcore's compiled
``BinanceLineDecoder`` (the recording-line form ``b"<ts> " + payload``), then
``BinanceExecutionClient.submit`` builds, signs (HMAC-SHA256) and sends an ``order.place`` (post-only, far from the
touch so that nothing fills); ``t1`` after ``submit`` returns, i.e. after picows' ``transport.send`` wrote the frame.
One order per sampled frame, up to N_WS orders.

ccxt path (same run, same frames): unmodified ccxt ``create_order`` (binance, urls pointed at the emulator,
markets loaded beforehand) started from the frame callback; ``t1`` at the entry of ccxt's ``fetch()``, i.e. after
ccxt's own work (market lookup, parameter building, signing, URL) and before aiohttp builds and writes the request:
a lower bound of the ccxt path, which favours ccxt. One ccxt order at a time (the next frame after the previous
call finished). The full ccxt call (until its answer is parsed) is reported too.

Round trip: ``submit`` -> the OrderAccepted report (the ``order.place`` answer) over loopback, for the orders of
the burst (they queue behind each other at the emulator) and for 200 orders sent one at a time. A breakdown prints
the decode part, the build + sign + send part, the socket write inside the burst and alone after it
(``transport.send`` of a 600-byte frame). With the emulator in its own process the p99 is the kernel's: the
loopback ``send()`` runs the receiving side's TCP work on the sender's core while the emulator is busy with the
burst (measured: the write's own p99 ~0.8 ms there, ~10 µs in-process).

Targets (issue 9, 2-core box): WS API p50 <= 25 µs, p99 <= 100 µs, and at least 5x faster (p50) than ccxt. Printed
beside each figure, not asserted (CI machines are noisy); asserted: loose sanity bounds.
"""
from __future__ import annotations

import asyncio
import contextlib
import gc
import sys
import time
from pathlib import Path
from time import perf_counter_ns

import aiohttp
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

pytest.importorskip("picows")

N_WS = 3000
N_CCXT = 200
WARMUP = 200
TARGET_P50_US = 25.0
TARGET_P99_US = 100.0
TARGET_SPEEDUP = 5.0


def _pct(xs, p):
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def _fmt(name, xs_ns, target=None):
    us = [x / 1000 for x in xs_ns]
    p50, p99, mx = _pct(us, 50), _pct(us, 99), max(us)
    line = f"{name}: n={len(us)} p50 {p50:.1f} µs, p99 {p99:.1f} µs, max {mx:.1f} µs"
    if target:
        line += (f"  (target p50 <= {TARGET_P50_US:.0f} µs: {'met' if p50 <= TARGET_P50_US else 'NOT met'}; "
                 f"p99 <= {TARGET_P99_US:.0f} µs: {'met' if p99 <= TARGET_P99_US else 'NOT met'})")
    print(line)
    return p50, p99, mx


@contextlib.asynccontextmanager
async def _emulator(mode, data, tmp_path):
    """The emulator at speed 20 with order and weight limits off and zero simulated latency: in this process and
    event loop (``in-process``, the tests' way) or as ``python -m mmcore emulate`` in its own process (``process``:
    the client process then does nothing else, as in production)."""
    from emukit import KEY, SECRET, running
    opts = {"orders_per_10s": 0, "orders_per_day": 0, "weight_per_minute": 0}
    sets = ("sim.entry_latency_ms=0", "sim.cancel_latency_ms=0")
    if mode == "in-process":
        async with running([data], tmp_path, speed=20, start="now", sets=sets, **opts) as (emu, port):
            yield port
        return
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mmcore", "emulate", "--data", str(data), "--speed", "20", "--start", "now",
        "--orders-limit", "0", "--weight-limit", "0", "--account", f"{KEY}:{SECRET}", "--set", sets[0],
        "--set", sets[1], stdout=asyncio.subprocess.PIPE, cwd=str(ROOT))
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        assert line.startswith("listening 127.0.0.1:"), line
        yield int(line.rsplit(":", 1)[1])
    finally:
        proc.terminate()
        await proc.wait()


async def _scenario(tmp_path, mode):
    from picows import WSListener, WSMsgType, ws_connect

    from emukit import KEY, SECRET, SPOT_BTC, head, until
    from mmcore.execution import OrderAccepted
    from mmcore.instruments import load_instrument
    from mmcore.venues.binance.credentials import Credentials
    from mmcore.venues.binance.execution import BinanceExecution
    from mmcore.venues.binance.rest import ccxt_exchange
    from mmcore.venues.ratelimit import RateLimiter
    from mmcore_ext.binance_codec import BinanceLineDecoder

    data = head(SPOT_BTC, tmp_path / "spot.gz", 41249)
    inst = load_instrument("binance_spot", "BTCUSDT")
    async with _emulator(mode, data, tmp_path) as port:
        async with aiohttp.ClientSession() as http:
            for _ in range(200):
                async with http.get(f"http://127.0.0.1:{port}/api/v3/depth?symbol=BTCUSDT&limit=5") as r:
                    book = await r.json() if r.status == 200 else {}
                if book.get("bids"):
                    break
                await asyncio.sleep(0.05)
        best_bid = inst.price_to_ticks(book["bids"][0][0])
        limiter = RateLimiter.from_config("binance_spot")
        limiter.set_limits_from_exchange_info([
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 10**9},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 10**9},
            {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 10**9}])
        sent_at: dict = {}
        rtt: list = []

        def on_report(sym, rep):
            if type(rep) is OrderAccepted:
                t = sent_at.pop(rep.client_order_id, None)
                if t is not None:
                    rtt.append(perf_counter_ns() - t)

        ex = BinanceExecution("binance_spot", ["BTCUSDT"], {"BTCUSDT": inst}, Credentials.hmac(KEY, SECRET),
                              {"timeout_s": 10.0}, on_report, endpoint=f"http://127.0.0.1:{port}", limiter=limiter)
        await ex.start()
        client = ex.execution("BTCUSDT")
        # the socket write inside the burst, timed by a wrapper of picows' transport.send (adds ~0.2 µs to the
        # frame -> written figures): where the process-mode tail lies (the kernel's loopback send())
        picows_send = ex.wsapi._send
        burst_send: list = []

        def timed_send(kind, data):
            a = perf_counter_ns()
            picows_send(kind, data)
            burst_send.append(perf_counter_ns() - a)
        ex.wsapi._send = timed_send
        cx = ccxt_exchange("binance_spot", Credentials.hmac(KEY, SECRET), f"http://127.0.0.1:{port}")
        await cx.load_markets()
        fetch_marks: list = []
        orig_fetch = cx.fetch

        async def fetch(*a, **k):
            fetch_marks.append(perf_counter_ns())
            return await orig_fetch(*a, **k)
        cx.fetch = fetch
        low = best_bid * 95 // 100                     # 5% below the touch: rests, never fills
        qty = inst.qty_to_lots("0.001")
        decoder = BinanceLineDecoder(inst.grid, "BTCUSDT", inst.max_price_ticks, inst.max_qty_lots)
        ws_lat: list = []
        dec_lat: list = []
        sizes: list = []
        ccxt_lat: list = []
        ccxt_full: list = []
        state = {"n": 0, "ccxt_busy": False, "ccxt_n": 0, "frames": 0}
        loop = asyncio.get_running_loop()

        async def ccxt_order(t0, i):
            try:
                mark = len(fetch_marks)
                await cx.create_order("BTC/USDT", "limit", "buy", 0.001, float(inst.price_of(low - 1 - i % 500)),
                                      {"postOnly": True, "clientOrderId": f"cx-{i}"})
                t_end = perf_counter_ns()
                if len(fetch_marks) > mark:
                    ccxt_lat.append(fetch_marks[mark] - t0)
                    ccxt_full.append(t_end - t0)
            except Exception as exc:                     # noqa: BLE001 - counted, the sample is dropped
                state["ccxt_errors"] = state.get("ccxt_errors", 0) + 1
                state["ccxt_last_error"] = type(exc).__name__
            finally:
                state["ccxt_busy"] = False

        class Listener(WSListener):
            def on_ws_frame(self, transport, frame):
                t0 = perf_counter_ns()
                if frame.msg_type != WSMsgType.TEXT:
                    return
                payload = frame.get_payload_as_bytes()
                ev = decoder.decode(b"%d " % time.time_ns() + payload)
                td = perf_counter_ns()
                state["frames"] += 1
                if ev is None:
                    return
                n = state["n"]
                if n < N_WS + WARMUP:
                    coid = f"ws-{n}"
                    client.submit(0, coid, 1, low - n % 500, qty)
                    t1 = perf_counter_ns()
                    sent_at[coid] = t1
                    state["n"] = n + 1
                    if n >= WARMUP:
                        ws_lat.append(t1 - t0)
                        dec_lat.append(td - t0)
                        sizes.append(len(payload))
                elif not state["ccxt_busy"] and state["ccxt_n"] < N_CCXT + 20:
                    state["ccxt_busy"] = True
                    i = state["ccxt_n"]
                    state["ccxt_n"] = i + 1
                    loop.create_task(ccxt_order(t0, i))

        t, _ = await ws_connect(Listener, f"ws://127.0.0.1:{port}/stream?streams=btcusdt@depth@0ms/btcusdt@trade")
        gc.disable()
        try:
            await until(lambda: state["n"] >= N_WS + WARMUP, 60, "the WS API samples")
            await until(lambda: state["ccxt_n"] >= N_CCXT + 20 and not state["ccxt_busy"], 60, "the ccxt samples")
            await until(lambda: len(rtt) >= N_WS // 2, 20, "acks")
            ex.wsapi._send = picows_send
            state["burst_send"] = burst_send[WARMUP:N_WS + WARMUP]
            # the socket write alone: a ping request of an order.place's size through the same transport
            send, raw = ex.wsapi._send, []
            pad = b" " * 560
            for i in range(1000):
                frame = b'{"id":%d,"method":"ping"}' % (10**9 + i) + pad
                t0 = perf_counter_ns()
                send(WSMsgType.TEXT, frame)
                raw.append(perf_counter_ns() - t0)
                await asyncio.sleep(0)
            state["raw_send"] = raw
            # sequential round trips, one order in flight at a time (no queueing behind our own burst)
            seq = []
            for i in range(200):
                coid = f"rt-{i}"
                n0 = len(rtt)
                client.submit(0, coid, 1, low - 600 - i, qty)
                sent_at[coid] = perf_counter_ns()
                await until(lambda: len(rtt) > n0, 5, "the ack", step=0)
                seq.append(rtt.pop())
            state["rtt_seq"] = seq
        finally:
            gc.enable()
            t.disconnect()
            await cx.close()
            await ex.close()
        state["dec"] = dec_lat
        state["sizes"] = sizes
        return ws_lat, ccxt_lat[20:], ccxt_full[20:], rtt[WARMUP:], state


@pytest.mark.parametrize("mode", ["in-process", "process"])
def test_order_entry_ws_api_vs_ccxt(tmp_path, mode):
    ws, cx, cx_full, rtt, state = asyncio.run(_scenario(tmp_path, mode))
    print(f"\n[emulator {mode}]")
    p50, p99, _ = _fmt("frame -> order.place written (WS API, decode+build+sign+send)", ws, target=True)
    c50, _, _ = _fmt("frame -> ccxt create_order at fetch() (ccxt's work before aiohttp, lower bound)", cx)
    _fmt("frame -> ccxt create_order answered (full call over loopback)", cx_full)
    _fmt("  of which frame -> decoded (payload copy + compiled decoder incl. JSON parse)", state["dec"])
    _fmt("  of which decoded -> order.place written (build + sign + send)",
         [a - b for a, b in zip(ws, state["dec"])])
    _fmt("  of which the socket write during the burst (picows transport.send -> the kernel's send())",
         state["burst_send"])
    _fmt("  the socket write alone (picows transport.send of a 600-byte frame, loopback TCP)", state["raw_send"])
    print(f"  frame payload sizes: p50 {_pct(state['sizes'], 50)} B, max {max(state['sizes'])} B")
    _fmt(f"order round trip send -> ack, during the {N_WS}-order burst (WS API, emulator {mode})", rtt)
    _fmt(f"order round trip send -> ack, one order at a time (WS API, emulator {mode})", state["rtt_seq"])
    speedup = c50 / p50
    print(f"WS API vs ccxt (p50): x{speedup:.1f}  (target >= x{TARGET_SPEEDUP:.0f}: "
          f"{'met' if speedup >= TARGET_SPEEDUP else 'NOT met'})")
    assert len(ws) >= 1000 and len(cx) >= 100
    assert p50 < 1000 and speedup > 1           # sanity: far inside the 10 ms design ceiling
