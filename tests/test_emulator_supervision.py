"""The exchange emulator never freezes silently (issue 8).

One depth diff with ``U > u`` (a synthetic mutation of the real recording) used to kill the replay task
without a word: the exchange clock stopped, acks and cancels were never processed, and a runner's stop left
orders open. Now a bad line (anything raised while it is decoded or applied) is skipped, counted and logged
with its line number, and a supervised task (replay, clock) that dies anyway is logged and stops the
server with exit code 1. The recordings here are the first lines of ``data/usdm_btcusdt_20240808.gz``;
mutations are labelled. These tests are tied to the loopback emulator and move to the Binance-compatible
emulator with the wire issue.
"""
import asyncio
import gzip
import logging
import subprocess
import sys

import orjson
import pytest

from mmcore.execution import BUY, OrderAccepted, OrderCanceled
from mmcore.sim import server as server_mod
from mmcore.sim.server import ExchangeServer
from mmcore.venues.binance.recording import open_recording
from mmcore.venues.loopback import LoopbackClient

from crashkit import serve, shut, until
from datafiles import ROOT, USDM_FILE

HEAD_LINES = 3000                 # ~11 s of market: 0.6 s of wall time at --speed 20
BAD_DIFF_AFTER = 300              # the first depth diff at or after this line (the snapshot is line 55)


def head_recording(path, mutate=False):
    """The recording's first HEAD_LINES lines; with ``mutate``, the first diff from line BAD_DIFF_AFTER + 1 on
    gets ``U = u + 5`` (synthetic). Returns the 1-based number of the mutated line (or None)."""
    bad = None
    with open_recording(USDM_FILE) as fh, gzip.open(path, "wb") as out:
        for i, raw in enumerate(fh):
            if i == HEAD_LINES:
                break
            if mutate and bad is None and i >= BAD_DIFF_AFTER and b'"depthUpdate"' in raw:
                sp = raw.find(b" ")
                m = orjson.loads(raw[sp + 1:])
                m["data"]["U"] = m["data"]["u"] + 5
                raw = raw[:sp + 1] + orjson.dumps(m) + b"\n"
                bad = i + 1
            out.write(raw)
    return bad


async def _exchange_still_works(server, port):
    """A far order is acked and its cancel is processed: the exchange clock runs."""
    reports = []
    c = LoopbackClient("127.0.0.1", port, "sup", on_report=reports.append)
    await c.connect()
    c.release()
    try:
        await until(lambda: server.book.best_bid_px() > 0 or server.done, 10, "the market")
        c.submit(0, "sup-1", BUY, 500_000, 1)                       # 50 000 USDT: rests, never fills
        await until(lambda: any(type(r) is OrderAccepted for r in reports), 10, "the ack")
        c.cancel(0, "sup-1")
        await until(lambda: any(type(r) is OrderCanceled for r in reports), 10, "the cancel")
        return await c.open_orders()
    finally:
        c.close()


def test_a_diff_with_U_above_u_is_skipped_logged_and_the_exchange_goes_on(tmp_path, caplog):
    data = tmp_path / "u_above_u.gz"
    bad = head_recording(data, mutate=True)

    async def scenario():
        server, srv, port = await serve(20, data)
        try:
            left_open = await _exchange_still_works(server, port)
            await until(lambda: server.done, 20, "the end of the recording")
            return server, left_open
        finally:
            await shut(server, srv)

    with caplog.at_level(logging.WARNING, logger="mmcore.sim.server"):
        server, left_open = asyncio.run(asyncio.wait_for(scenario(), 40))
    assert left_open == [] and server.lines == HEAD_LINES and server.failure is None
    # Skipped and counted, whether the decoder refuses it (MalformedLine) or the book does (anything else).
    assert server.malformed + server.bad_lines == 1
    assert any(f"u_above_u.gz line {bad} skipped" in r.getMessage() for r in caplog.records)
    assert not any(r.exc_info for r in caplog.records)


class RaisingBook:
    """The server's book with one diff made to raise when applied (an injected failure)."""

    def __init__(self, book, fail_at_update_id):
        self._book, self._fail = book, fail_at_update_id
        self.raised = 0

    def apply_diff(self, ev):
        if ev.final_update_id == self._fail:
            self.raised += 1
            raise RuntimeError("injected failure")
        return self._book.apply_diff(ev)

    def __getattr__(self, name):
        return getattr(self._book, name)


def test_a_line_that_raises_when_applied_is_skipped_and_the_replay_goes_on(tmp_path, caplog):
    data = tmp_path / "head.gz"
    head_recording(data)
    with open_recording(data) as fh:
        lines = list(fh)
    n, fail_u = next((i + 1, orjson.loads(l[l.find(b" ") + 1:])["data"]["u"]) for i, l in enumerate(lines)
                     if i >= BAD_DIFF_AFTER and b'"depthUpdate"' in l)

    async def scenario():
        server, srv, port = await serve(20, data)
        server.book = RaisingBook(server.book, fail_u)              # before any account uses it
        try:
            left_open = await _exchange_still_works(server, port)
            await until(lambda: server.done, 20, "the end of the recording")
            return server, left_open
        finally:
            await shut(server, srv)

    with caplog.at_level(logging.WARNING, logger="mmcore.sim.server"):
        server, left_open = asyncio.run(asyncio.wait_for(scenario(), 40))
    assert server.book.raised == 1 and server.bad_lines == 1 and server.lines == HEAD_LINES
    assert left_open == [] and server.failure is None
    msgs = [r.getMessage() for r in caplog.records]
    assert any(f"head.gz line {n} skipped (error while applied" in m and "injected failure" in m for m in msgs)


def test_a_dying_clock_task_is_logged_and_stops_the_server(tmp_path, caplog, monkeypatch):
    data = tmp_path / "head.gz"
    head_recording(data)

    async def broken_clock(self):
        await asyncio.sleep(0.05)
        raise RuntimeError("injected clock failure")
    monkeypatch.setattr(ExchangeServer, "_clock", broken_clock)

    async def scenario():
        server, srv, port = await serve(0, data)                    # as fast as read: ends at once
        try:
            c = LoopbackClient("127.0.0.1", port, "sup")
            await c.connect()
            c.release()
            await asyncio.wait_for(server.stopped.wait(), 20)
            c.close()
            return server
        finally:
            await shut(server, srv)

    with caplog.at_level(logging.WARNING, logger="mmcore.sim.server"):
        server = asyncio.run(asyncio.wait_for(scenario(), 40))
    assert server.done and server.failure.startswith("clock task died")
    assert "injected clock failure" in server.failure
    assert any(r.levelno == logging.CRITICAL and "the exchange stops" in r.getMessage() for r in caplog.records)


# The replay task dies outside the per-line handling (injected in its flow control after 100 lines).
DIE = """
import sys
from mmcore.sim import server as s
calls = [0]
orig = s.ExchangeServer._drain
async def drain(self):
    calls[0] += 1
    if calls[0] > 100:
        raise RuntimeError("injected replay failure")
    await orig(self)
s.ExchangeServer._drain = drain
sys.exit(s.main(sys.argv[1:]))
"""


def test_a_dying_replay_task_makes_the_server_process_exit_1_with_a_log_line(tmp_path):
    data = tmp_path / "head.gz"
    head_recording(data)
    p = subprocess.Popen([sys.executable, "-c", DIE, "--data", str(data), "--port", "0", "--speed", "20"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    try:
        port = int(p.stdout.readline().decode().rsplit(":", 1)[1])

        async def hello():                                   # the replay starts with the first trader
            c = LoopbackClient("127.0.0.1", port, "sup")
            await c.connect()
            c.close()
        asyncio.run(hello())
        rc = p.wait(20)
        err = p.stderr.read().decode()
    finally:
        if p.poll() is None:
            p.kill()
        p.wait(5)
    assert rc == 1
    assert "replay task died at recording line 101: RuntimeError('injected replay failure')" in err
    assert err.rstrip().splitlines()[-1].startswith("error: replay task died") and "Traceback" not in err
