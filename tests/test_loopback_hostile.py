"""A misbehaving peer on the loopback protocol (issue 8): the venue sends malformed reports, answers and
welcomes to a real LoopbackClient / LiveRunner, and a client sends malformed request lines to the real
emulator. Every bad message is counted, logged and skipped (a bad answer fails its query with QueryError,
which recovery retries like a network error); a bad request gets an ``error`` answer and the connection
stays up; no traceback anywhere. All messages here are synthetic (labelled), on 127.0.0.1 only.

These tests are tied to the private loopback protocol: they move to the Binance-compatible emulator with the
wire issue (the same cases, in that protocol's shapes).
"""
import asyncio
import logging

import orjson
import pytest

from mmcore.config import DEFAULT_CONFIG, load_config
from mmcore.execution import BUY, OrderAccepted, OrderCanceled, OrderFilled
from mmcore.instruments import load_instrument
from mmcore.runners.live_runner import LiveRunner
from mmcore.venues import loopback
from mmcore.venues.loopback import LoopbackClient, QueryError

from crashkit import serve, shut, until

PX = 618_000                      # ticks (0.1 USDT), near the recording's 61 800 USDT
T = 1_723_161_300_000_000_000     # ns


@pytest.fixture(scope="module")
def inst():
    return load_instrument("binance_usdm", "BTCUSDT")


def welcome(**kw):
    w = {"type": "welcome", "protocol": 1, "account": "h", "role": "trader", "market": "binance_usdm",
         "symbol": "BTCUSDT", "now_ns": T, "speed": 1.0}
    w.update(kw)
    return w


def fill(**kw):
    m = {"type": "report", "kind": "filled", "ts_ns": T, "coid": "mm-1", "trade_id": 5, "side": 1, "price": PX,
         "qty": 2, "fee": "0.0247", "maker": True}
    m.update(kw)
    return m


def dumps(m) -> bytes:
    return m if isinstance(m, bytes) else orjson.dumps(m)


class FakeVenue:
    """A tiny asyncio server speaking the loopback protocol badly on purpose (labelled synthetic).

    ``welcome``: the welcome object (or bytes) to send after hello; ``after_hello``: lines sent right after
    it; ``answer(op, msg, n)``: the ``result`` of the n-th query (0-based, counted over all connections), or
    bytes to send as the whole line.
    """

    def __init__(self, welcome=None, after_hello=(), answer=None):
        self.welcome = welcome if welcome is not None else globals()["welcome"]()
        self.after_hello = list(after_hello)
        self.answer = answer or (lambda op, msg, n: [])
        self.queries = 0
        self.connections = 0
        self.writers = []

    async def start(self):
        self.srv = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self.srv.sockets[0].getsockname()[1]

    def close(self):
        self.srv.close()
        for w in self.writers:
            w.close()

    def send_all(self, lines):
        for w in self.writers:
            for line in lines:
                w.write(dumps(line) + b"\n")

    async def _handle(self, reader, writer):
        self.connections += 1
        self.writers.append(writer)
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                msg = orjson.loads(line)
                op = msg.get("op")
                if op == "hello":
                    writer.write(dumps(self.welcome) + b"\n")
                    for extra in self.after_hello:
                        writer.write(dumps(extra) + b"\n")
                elif "id" in msg:
                    res = self.answer(op, msg, self.queries)
                    self.queries += 1
                    writer.write(res + b"\n" if isinstance(res, bytes) else
                                 orjson.dumps({"type": "answer", "id": msg["id"], "result": res}) + b"\n")
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


def no_traceback(caplog):
    bad = [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
    assert not bad, [r.getMessage() for r in bad]


def bad_reports(inst):
    """Reports that break the protocol, each in one field (synthetic)."""
    return [
        b"{not json", b"{}", {"type": "report"}, {"type": "report", "kind": "filled"},
        fill(price=inst.max_price_ticks + 1), fill(price=0), fill(price=-5), fill(price=str(PX)), fill(price=PX + 0.5),
        fill(qty=0), fill(qty=inst.max_qty_lots + 1), fill(side=2), fill(side=True), fill(side=0),
        fill(coid=5), fill(coid=""), fill(coid="x" * 65), fill(fee="NaN"), fill(fee="1e999"), fill(fee=0.1),
        fill(fee="1" * 70), fill(ts_ns=-1), fill(ts_ns=2**63), fill(trade_id="7"), fill(maker="yes"),
        fill(kind="bogus"), fill(kind="canceled", remaining=-1), fill(kind="accepted", venue_order_id=7),
        fill(kind="rejected", reason=5), {"type": "bogus"}, {"type": "answer", "id": 999, "result": []},
        {"type": "answer", "id": "1", "result": []}, {"type": "welcome"},
    ]


def test_malformed_reports_are_counted_logged_and_skipped(inst, caplog):
    async def scenario():
        bad = bad_reports(inst)
        venue = FakeVenue(after_hello=bad + [fill(trade_id=77)])
        port = await venue.start()
        got = []
        c = LoopbackClient("127.0.0.1", port, "h", on_report=got.append, instrument=inst)
        try:
            await c.connect()
            c.release()
            await until(lambda: got or c.malformed_messages >= len(bad), 5, "the reports")
            await until(lambda: got, 5, "the valid report")
            assert c.connected and await c.open_orders() == []      # the connection is fine
            return got, c.malformed_messages, len(bad)
        finally:
            c.close()
            venue.close()

    with caplog.at_level(logging.WARNING):
        got, n, expected = asyncio.run(asyncio.wait_for(scenario(), 20))
    assert got == [OrderFilled(T, "mm-1", 77, BUY, PX, 2, loopback.Decimal("0.0247"), True)]
    assert n == expected
    warnings = [r.getMessage() for r in caplog.records if "malformed message" in r.getMessage()]
    assert len(warnings) == loopback.MAX_MALFORMED_WARNINGS                     # bounded
    assert any(f"price = {inst.max_price_ticks + 1}: expected an integer in [1, {inst.max_price_ticks}]" in w
               for w in warnings) and all(len(w) < 600 for w in warnings)
    no_traceback(caplog)


@pytest.mark.parametrize("op, result", [
    ("open_orders", {"coid": "mm-1"}),                                           # not a list
    ("open_orders", [{"coid": "mm-1", "side": 1, "price": "x", "qty": 1, "filled": 0, "status": "NEW"}]),
    ("open_orders", [{"coid": "mm-1", "side": 1, "price": PX, "qty": 2, "filled": 3, "status": "NEW"}]),
    ("open_orders", [{"coid": "mm-1", "side": 1, "price": PX, "qty": 2, "filled": 0, "status": "HAPPY"}]),
    ("fills_since", [{k: v for k, v in fill().items() if k != "fee"}]),
    ("fills_since", [fill(qty=-2)]),
    ("order", {"coid": "mm-2", "side": 1, "price": PX, "qty": 2, "filled": 0, "status": "FILLED"}),  # wrong id
    ("order", 5),
    ("cancel_all", "many"),
    ("cancel_all", -1),
])
def test_a_malformed_answer_fails_its_query_with_query_error(inst, op, result):
    async def scenario():
        valid = {"open_orders": [], "fills_since": [], "order": None, "cancel_all": 0}
        venue = FakeVenue(answer=lambda o, m, n: result if n == 0 else valid[o])
        port = await venue.start()
        c = LoopbackClient("127.0.0.1", port, "h", instrument=inst)
        try:
            await c.connect()
            c.release()
            call = {"open_orders": c.open_orders, "fills_since": lambda: c.fills_since(0),
                    "order": lambda: c.order("mm-1"), "cancel_all": c.cancel_all}[op]
            with pytest.raises(QueryError, match=f"malformed {op} answer"):
                await call()
            again = await call()                                # the next, valid answer is used
            assert again == valid[op]
            return c.malformed_messages, c.connected
        finally:
            c.close()
            venue.close()

    assert asyncio.run(asyncio.wait_for(scenario(), 20)) == (1, True)


@pytest.mark.parametrize("bad", [welcome(protocol=2), welcome(market=None), welcome(now_ns="late"),
                                 {k: v for k, v in welcome().items() if k != "symbol"}, b"{broken"])
def test_a_malformed_welcome_fails_connect_with_query_error_at_once(inst, bad):
    async def scenario():
        venue = FakeVenue(welcome=bad)
        port = await venue.start()
        c = LoopbackClient("127.0.0.1", port, "h", instrument=inst, timeout_s=10)
        t0 = asyncio.get_running_loop().time()
        try:
            if isinstance(bad, bytes):               # not even JSON: skipped, the hello times out
                c.timeout_s = 0.5
                with pytest.raises(asyncio.TimeoutError):
                    await c.connect()
            else:
                with pytest.raises(QueryError, match="malformed welcome"):
                    await c.connect()
                assert asyncio.get_running_loop().time() - t0 < 5      # at once, not after the timeout
            return c.malformed_messages, c.connected
        finally:
            c.close()
            venue.close()

    assert asyncio.run(asyncio.wait_for(scenario(), 20)) == (1, False)


def test_an_over_long_line_from_the_venue_is_dropped_and_the_stream_goes_on(inst, monkeypatch):
    monkeypatch.setattr(loopback, "MAX_LINE_BYTES", 1000)

    async def scenario():
        venue = FakeVenue()
        port = await venue.start()
        got = []
        c = LoopbackClient("127.0.0.1", port, "h", on_report=got.append, instrument=inst)
        try:
            await c.connect()
            c.release()
            w = venue.writers[0]
            for _ in range(50):                                  # 50 kB without a newline, in pieces
                w.write(b"x" * 1000)
                await w.drain()
                await asyncio.sleep(0.002)
            w.write(b"yyy\n" + orjson.dumps(fill(trade_id=8)) + b"\n")
            await until(lambda: got, 5, "the report after the long line")
            return got, c.malformed_messages, c._proto.pending_len
        finally:
            c.close()
            venue.close()

    got, n, buffered = asyncio.run(asyncio.wait_for(scenario(), 20))
    assert [r.trade_id for r in got] == [8] and n == 1 and buffered == 0


def test_live_runner_retries_recovery_after_a_malformed_answer_and_survives_malformed_reports(inst, tmp_path,
                                                                                             caplog):
    """The first recovery gets a malformed open_orders answer: QueryError, the connection is dropped and
    retried (no KeyError traceback, no exit); the second connection's recovery succeeds; malformed reports
    then are counted and skipped; the stop is clean (exit code 0)."""
    def answer(op, msg, n):
        if n == 0:
            return [{"coid": "mm-1", "side": 1, "qty": 1, "filled": 0, "status": "NEW"}]     # no price
        return None if op == "order" else []

    async def scenario():
        venue = FakeVenue(answer=answer)
        port = await venue.start()
        runner = LiveRunner(load_config(DEFAULT_CONFIG), inst, "127.0.0.1", port, "h", str(tmp_path / "j.db"))
        task = asyncio.get_running_loop().create_task(runner.run())
        try:
            await until(lambda: runner.recoveries, 10, "a recovery after the retry")
            venue.send_all(bad_reports(inst))
            await until(lambda: runner.client.malformed_messages >= 1 + len(bad_reports(inst)), 5, "reports")
            runner._stop.set()
            rc = await asyncio.wait_for(task, 20)
            return rc, runner, venue.connections
        finally:
            task.cancel()
            runner.close()
            venue.close()

    with caplog.at_level(logging.WARNING):
        rc, runner, connections = asyncio.run(asyncio.wait_for(scenario(), 40))
    assert rc == 0 and connections == 2 and runner.client.connects == 2
    assert runner.recoveries[0].restart is True and runner.portfolio.position == 0
    assert any("malformed open_orders answer" in r.getMessage() for r in caplog.records)
    no_traceback(caplog)


# --- malformed request lines to the real emulator ---

def requests(inst):
    """(line, what the error must say) - one field wrong each (synthetic)."""
    sub = {"op": "submit", "coid": "h-1", "side": 1, "price": PX - 5000, "qty": 1, "post_only": True}
    return [
        (b"not json", "invalid literal"), (b"[1,2]", "JSON object"), (b'"s"', "JSON object"), (b"null", "JSON object"),
        (b"\xff\xfe{", ""), (b'{"op":5}', "unknown op"), (b'{"op":"nope","id":1}', "unknown op"),
        (b'{"op":{"a":1}}', "unknown op"),
        (dumps(dict(sub, coid=5)), "coid"), (dumps(dict(sub, coid="x" * 65)), "coid"),
        (dumps(dict(sub, price=2**62)), "price"), (dumps(dict(sub, price=inst.max_price_ticks + 1)), "price"),
        (dumps(dict(sub, price=1.5)), "price"), (dumps(dict(sub, qty=0)), "qty"),
        (dumps(dict(sub, qty=inst.max_order_lots + 1)), "qty"), (dumps(dict(sub, side=0)), "side"),
        (dumps(dict(sub, side=True)), "side"), (dumps(dict(sub, post_only="yes")), "post_only"),
        (b'{"op":"cancel","coid":[1]}', "coid"), (b'{"op":"cancel"}', "coid"),
        (b'{"op":"fills_since","id":2,"ts_ns":"x"}', "ts_ns"), (b'{"op":"fills_since","id":3,"ts_ns":-1}', "ts_ns"),
        (b'{"op":"order","id":4}', "coid"), (b'{"op":"open_orders","id":[[[[1]]]]}', "id"),
        (b'{"op":"open_orders","id":18446744073709551615}', "id"), (b'{"op":"open_orders"}', "id"),
        (b'{"op":"hello","account":"again"}', "hello twice"),
        (b'{"op":"x","pad":"' + b"a" * (2 << 20) + b'"}', "longer than"),
    ]


def test_malformed_request_lines_get_an_error_answer_and_the_connection_stays_up(inst, caplog):
    async def scenario():
        server, srv, port = await serve(1.0)
        try:
            r, w = await asyncio.open_connection("127.0.0.1", port, limit=1 << 23)
            w.write(b'{"op":"hello","account":"h","role":"trader"}\n')

            async def next_json():          # skip market-data lines (first byte a digit)
                while True:
                    line = await asyncio.wait_for(r.readline(), 5)
                    assert line, "the server closed the connection"
                    if line[:1] == b"{":
                        return orjson.loads(line)
            assert (await next_json())["type"] == "welcome"
            answers = []
            for line, _ in requests(inst):
                w.write(line + b"\n")
                await w.drain()
                answers.append(await next_json())
            w.write(b'{"op":"open_orders","id":99}\n')
            final = await next_json()
            w.close()
            return answers, final, server.accounts["h"].orders
        finally:
            await shut(server, srv)

    with caplog.at_level(logging.WARNING):
        answers, final, orders = asyncio.run(asyncio.wait_for(scenario(), 40))
    for (line, why), a in zip(requests(inst), answers):
        assert a["type"] == "error" and why in a["error"] and len(a["error"]) <= 300, (line[:80], a)
    assert [a["id"] for a in answers if a["id"] is not None] == [1, 2, 3, 4]       # valid ids are echoed
    assert final == {"type": "answer", "id": 99, "result": []} and orders == {}   # nothing was accepted
    assert sum("request refused" in r.getMessage() for r in caplog.records) == 20  # logged, bounded
    no_traceback(caplog)


def test_an_observer_may_only_query(caplog):
    async def scenario():
        server, srv, port = await serve(1.0)
        try:
            c = LoopbackClient("127.0.0.1", port, "o", role="observer")
            await c.connect()
            c.release()
            c.submit(0, "o-1", BUY, PX, 1)
            await until(lambda: c.request_errors, 5, "the refusal")
            assert await c.open_orders() == [] and server.accounts["o"].orders == {}
            c.close()
        finally:
            await shut(server, srv)
    asyncio.run(asyncio.wait_for(scenario(), 20))
