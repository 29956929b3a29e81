"""Shared machinery of the crash and chaos tests: the exchange emulator and the engine as child processes,
read-only looks at the engine's journal, the exchange's record of the account through an observer
connection, and the check that the journal is the exchange (fills, position, cash, fees, ids, audit trail).

Loopback only (127.0.0.1, ports chosen by the OS). Callers keep every child in a list and kill what is
left in a ``finally``.
"""
import asyncio
import os
import select
import sqlite3
import subprocess
import sys
import time
from decimal import Decimal

import orjson
import pytest

from mmcore.config import DEFAULT_CONFIG, load_config
from mmcore.sim.server import build_server, close_server
from mmcore.venues.loopback import LoopbackClient

from datafiles import ROOT, USDM_FILE

SPEED = 20                       # event time per wall time
ACCOUNT = "crash-test"
# Tight quotes so that fills come within seconds of event time (the default config is quieter).
ACTIVE = ["strategy.min_spread_bps=0.1", "strategy.gamma=0.01", "strategy.max_spread_bps=2",
          "risk.min_spread_frac=0.00001"]
PY = sys.executable
#: Every fill in the journal names an order row (issue 8: the audit trail of fills booked by recovery).
ORPHAN_FILLS_SQL = "SELECT count(*) FROM fills WHERE client_order_id NOT IN (SELECT client_order_id FROM orders)"


def start_server(procs, log_dir, data=USDM_FILE, speed=SPEED):
    """Start ``mmcore.sim.server`` as a child; returns its port. stderr goes to ``log_dir/server.err``."""
    err = open(log_dir / "server.err", "wb")
    p = subprocess.Popen([PY, "-m", "mmcore.sim.server", "--data", str(data), "--port", "0",
                          "--speed", str(speed)], stdout=subprocess.PIPE, stderr=err, cwd=ROOT, env=_env())
    procs.append(p)
    ready, _, _ = select.select([p.stdout], [], [], 15)
    line = p.stdout.readline().decode() if ready else ""
    assert line.startswith("listening 127.0.0.1:"), f"server did not start: {line!r}"
    return int(line.rsplit(":", 1)[1])


def start_engine(procs, port, journal, log_dir, n, account=ACCOUNT, extra=()):
    """Start ``mmcore.runners.live_runner`` as a child on ``account`` with the ACTIVE config; stdout/stderr go to
    ``log_dir/engine{n}.out|err``."""
    cmd = [PY, "-m", "mmcore.runners.live_runner", "--connect", f"127.0.0.1:{port}", "--account", account,
           "--journal", str(journal), "--market", "binance_usdm", "--symbol", "BTCUSDT", *extra]
    for kv in ACTIVE:
        cmd += ["--set", kv]
    p = subprocess.Popen(cmd, stdout=open(log_dir / f"engine{n}.out", "wb"),
                         stderr=open(log_dir / f"engine{n}.err", "wb"), cwd=ROOT, env=_env())
    procs.append(p)
    return p


def _env():
    # Read at start time: the lock directory of this test (tests/conftest.py sets it per test) reaches the
    # children.
    return dict(os.environ, PYTHONUNBUFFERED="1")


def kill_all(procs):
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait(5)


def journal_rows(path, sql):
    """Rows of a read-only query on the journal ([] if it does not exist or has no schema yet)."""
    if not path.exists():
        return []
    conn = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchall()
    except sqlite3.OperationalError:          # schema not created yet
        return []
    finally:
        conn.close()


def journal_fills(path) -> int:
    rows = journal_rows(path, "SELECT count(*) FROM fills")
    return rows[0][0] if rows else 0


def exchange(port, account=ACCOUNT) -> dict:
    """The exchange's record of the account, through an observer connection."""
    async def q():
        c = LoopbackClient("127.0.0.1", port, account, role="observer", timeout_s=5)
        await c.connect()
        try:
            return await c.account_state()
        finally:
            c.close()
    return asyncio.run(q())


def wait(cond, timeout, what, alive=()):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        for p in alive:
            assert p.poll() is None, f"{what}: a child exited early with {p.returncode}"
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout} s waiting for: {what}")


def events(path, event):
    """The engine's JSON stdout lines of one ``event`` ("recovery", "stopped")."""
    return [m for m in map(orjson.loads, path.read_bytes().splitlines()) if m.get("event") == event]


def assert_journal_is_the_exchange(journal, ex):
    """No lost or duplicate fill, no reused id, same inventory/cash/fees, nothing left open, every fill
    under an order row, and an intact database."""
    ex_fills = {(f["coid"], f["trade_id"]): f for f in ex["fills"]}
    assert len(ex_fills) == len(ex["fills"])
    rows = journal_rows(journal, "SELECT client_order_id, trade_id, side, price_ticks, qty_lots, fee FROM fills")
    assert len(rows) == len(ex_fills)
    assert {(c, t) for c, t, *_ in rows} == set(ex_fills)
    for c, t, side, px, qty, fee in rows:
        f = ex_fills[(c, t)]
        assert (side, px, qty, Decimal(fee)) == (f["side"], f["price"], f["qty"], Decimal(f["fee"]))

    # No client order id sent twice. A journaled order the exchange never received (killed between the
    # journal write and the socket write) must have been closed as CANCELED by a reconciliation.
    assert ex["duplicate_coids"] == []
    assert set(ex["coids_received"].values()) == {1}
    states = dict(journal_rows(journal, "SELECT client_order_id, state FROM orders"))
    assert all(states[c] == "CANCELED" for c in set(states) - set(ex["coids_received"]))

    # The journal's inventory, cash and fees are the exchange's.
    assert sum(side * qty for _, _, side, _, qty, _ in rows) == ex["position"]
    (pos, cash, fees), = journal_rows(journal, "SELECT position_lots, cash_tl, fees FROM positions "
                                               "ORDER BY ts_ns DESC LIMIT 1")
    assert pos == ex["position"]
    assert cash == -sum(f["side"] * f["price"] * f["qty"] for f in ex["fills"])
    assert Decimal(fees) == sum(Decimal(f["fee"]) for f in ex["fills"])

    # Clean stop: nothing of ours open at the exchange, nothing open in the journal.
    assert ex["open_orders"] == []
    assert journal_rows(journal, "SELECT client_order_id, state FROM orders WHERE state NOT IN "
                                 "('FILLED', 'CANCELED', 'REJECTED', 'EXPIRED')") == []

    # The audit trail: every fill names an order row; the database is intact.
    orphans = journal_rows(journal, "SELECT client_order_id, trade_id FROM fills WHERE client_order_id NOT IN "
                                    "(SELECT client_order_id FROM orders)")
    assert journal_rows(journal, ORPHAN_FILLS_SQL) == [(0,)], f"fills without an order row: {orphans}"
    assert journal_rows(journal, "PRAGMA integrity_check") == [("ok",)]


async def until(cond, timeout, what):
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for: {what}")
        await asyncio.sleep(0.02)


async def serve(speed, data=USDM_FILE):
    """An in-process emulator on a free port: (server, asyncio server, port)."""
    server = build_server(data, load_config(DEFAULT_CONFIG), speed)
    srv = await server.serve(0)
    return server, srv, srv.sockets[0].getsockname()[1]


async def shut(server, srv):
    close_server(server, srv)
