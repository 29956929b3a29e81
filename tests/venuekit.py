"""Shared machinery of the crash, chaos and account-lock tests on the Binance-compatible emulator: the emulator
(``python -m mmcore emulate``) and the live engine (``python -m mmcore run --venue ... --live --endpoint``) as
child processes, read-only looks at the engine's journal, the emulator's record of the account
(``GET /_emulator/state?apiKey=``), and the check that the journal is the exchange.

Loopback only (127.0.0.1, ports chosen by the OS). Callers keep every child in a list and kill what is left in
a ``finally``. The account's key and secret are fake, made for the tests.
"""
import json
import os
import select
import sqlite3
import subprocess
import sys
import time
import urllib.request
from decimal import Decimal

import orjson
import pytest

from mmcore.instruments import load_instrument

from datafiles import ROOT, USDM_FILE

PY = sys.executable
SPEED = 20                       # the emulator replays recorded time at this multiple of wall time
KEY = "crashTestKey0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOP"     # fake test account
SECRET = "crashTestSecret0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKL"
# Tight quotes so that fills come within seconds of event time (the default config is quieter).
ACTIVE = ["strategy.min_spread_bps=0.1", "strategy.gamma=0.01", "strategy.max_spread_bps=2",
          "risk.min_spread_frac=0.00001", "venue.strict_no_rest_markets=true", "venue.watchdog_s=5"]
ORPHAN_FILLS_SQL = "SELECT count(*) FROM fills WHERE client_order_id NOT IN (SELECT client_order_id FROM orders)"


def env(**extra):
    """The children's environment: the test's lock directory (tests/conftest.py) reaches them; the fake
    credentials of the test account."""
    return {**os.environ, "PYTHONUNBUFFERED": "1", "BINANCE_API_KEY": KEY, "BINANCE_API_SECRET": SECRET, **extra}


def start_emulator(procs, log_dir, data=(USDM_FILE,), speed=SPEED, extra=()):
    """``python -m mmcore emulate`` as a child with the test account; returns its port."""
    cmd = [PY, "-m", "mmcore", "emulate", "--port", "0", "--speed", str(speed), "--account", f"{KEY}:{SECRET}"]
    for d in data:
        cmd += ["--data", str(d)]
    p = subprocess.Popen([*cmd, *extra], stdout=subprocess.PIPE, stderr=open(log_dir / "emulator.err", "wb"),
                         cwd=ROOT, env=env())
    procs.append(p)
    ready, _, _ = select.select([p.stdout], [], [], 20)
    line = p.stdout.readline().decode() if ready else ""
    assert line.startswith("listening 127.0.0.1:"), f"emulator did not start: {line!r}"
    return int(line.rsplit(":", 1)[1])


def start_engine(procs, port, journal_dir, log_dir, n, symbols=("BTCUSDT",), venue="binance_usdm", extra=()):
    """``python -m mmcore run --venue V --symbols ... --live --endpoint http://127.0.0.1:PORT`` as a child with
    the ACTIVE config; stdout/stderr go to ``log_dir/engine{n}.out|err``."""
    cmd = [PY, "-m", "mmcore", "run", "--venue", venue, "--symbols", ",".join(symbols), "--live",
           "--endpoint", f"http://127.0.0.1:{port}", "--journal-dir", str(journal_dir)]
    for kv in ACTIVE:
        cmd += ["--set", kv]
    cmd += list(extra)                  # after ACTIVE: the caller's --set wins
    p = subprocess.Popen(cmd, stdout=open(log_dir / f"engine{n}.out", "wb"),
                         stderr=open(log_dir / f"engine{n}.err", "wb"), cwd=ROOT, env=env())
    procs.append(p)
    return p


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
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()


def journal_fills(path) -> int:
    rows = journal_rows(path, "SELECT count(*) FROM fills")
    return rows[0][0] if rows else 0


def get(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        return json.loads(r.read())


def exchange(port, symbol="BTCUSDT") -> dict:
    """The emulator's record of the test account for ``symbol`` (plus the account-wide id counts)."""
    st = get(port, f"/_emulator/state?apiKey={KEY}")
    out = dict(st["symbols"].get(symbol) or {"orders": [], "open_orders": [], "fills": [], "position_lots": 0})
    out["coids_received"] = st["coids_received"]
    out["duplicate_coids"] = st["duplicate_coids"]
    return out


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
    """The engine's JSON stdout lines of one ``event`` ("recovery", "stopped"); other stdout lines (the summary
    table) are skipped."""
    if not path.exists():
        return []
    return [m for m in (orjson.loads(x) for x in path.read_bytes().splitlines() if x.startswith(b'{"event"'))
            if m.get("event") == event]


def assert_journal_is_the_exchange(journal, ex, market="binance_usdm", symbol="BTCUSDT"):
    """No lost or duplicate fill, no reused id, the same inventory and fees, nothing left open, every fill under
    an order row, an intact database."""
    inst = load_instrument(market, symbol)
    ex_fills = {(f["clientOrderId"], f["tradeId"]): f for f in ex["fills"]}
    assert len(ex_fills) == len(ex["fills"])
    rows = journal_rows(journal, "SELECT client_order_id, trade_id, side, price_ticks, qty_lots, fee FROM fills")
    assert len(rows) == len(ex_fills), (len(rows), len(ex_fills))
    assert {(c, int(t)) for c, t, *_ in rows} == {(c, int(t)) for c, t in ex_fills}
    for c, t, side, px, qty, fee in rows:
        f = ex_fills[(c, int(t))]
        assert side == (1 if f["side"] == "BUY" else -1)
        assert inst.price_of(px) == Decimal(f["price"]) and inst.qty_of(qty) == Decimal(f["qty"])
        # the user-data event carries the commission to 8 decimals; the emulator's record keeps every digit
        assert abs(Decimal(fee) - Decimal(f["commission"])) < Decimal("1e-8"), (c, t, fee, f)
    assert ex["duplicate_coids"] == []
    ours = {c for c in ex["coids_received"] if c.startswith("mm-")}
    states = dict(journal_rows(journal, "SELECT client_order_id, state FROM orders"))
    # A journaled order the exchange never received was closed: CANCELED by a reconciliation (killed between
    # the journal write and the socket write), or REJECTED (refused before sending: rate limit, connection down).
    never = {c: states[c] for c in set(states) - ours}
    assert all(v in ("CANCELED", "REJECTED") for v in never.values()), never
    assert sum(side * qty for _, _, side, _, qty, _ in rows) == ex["position_lots"]
    (pos, fees), = journal_rows(journal, "SELECT position_lots, fees FROM positions ORDER BY ts_ns DESC LIMIT 1")
    assert pos == ex["position_lots"]
    assert abs(Decimal(fees) - sum(Decimal(f["commission"]) for f in ex["fills"])) < Decimal("1e-8") * (1 + len(rows))
    assert ex["open_orders"] == []
    assert journal_rows(journal, "SELECT client_order_id, state FROM orders WHERE state NOT IN "
                                 "('FILLED', 'CANCELED', 'REJECTED', 'EXPIRED')") == []
    assert journal_rows(journal, ORPHAN_FILLS_SQL) == [(0,)]
    assert journal_rows(journal, "PRAGMA integrity_check") == [("ok",)]
