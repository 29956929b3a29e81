"""End to end on the real recordings: backtest both files; accounting identities; every maker fill at its
order's price (checked through the SQLite journal); report keys; tight limits visibly change the run."""
import asyncio
import json
import sqlite3
import subprocess
import sys
from decimal import Decimal

import pytest

from mmcore.config import load_config
from mmcore.execution import OrderAccepted, OrderFilled
from mmcore.persistence.journal import KV_PEAK_PNL, KV_TRADING_STATE, KV_TRADING_STATE_REASON, KV_TRADING_STATE_TS, Journal
from mmcore.runners.replay import build_session, run_session, summarize
from mmcore_ext.risk import HALTED

from datafiles import ROOT, SPOT_FILE, USDM_FILE

REPORT_KEYS = {"events", "wall_s", "fills", "buy_fills", "sell_fills", "buy_volume", "sell_volume",
               "final_inventory", "max_abs_inventory", "cash", "fees", "last_mid", "realized_pnl", "mtm_pnl",
               "latency_us", "gaps", "malformed_lines", "risk_refusals", "trading_state_changes", "orders"}


def _backtest(data, tmp_path, *overrides, journal=True):
    cfg = load_config(overrides=list(overrides))
    s = build_session(cfg, str(data), journal=str(tmp_path / "j.db") if journal else None)
    asyncio.run(run_session(s))
    return s, summarize(s)


@pytest.fixture(scope="module", params=[USDM_FILE, SPOT_FILE], ids=["usdm", "spot"])
def run(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(request.node.callspec.id if hasattr(request.node, "callspec") else "bt")
    s, summary = _backtest(request.param, tmp)
    return s, summary, tmp / "j.db"


def test_backtest_quotes_and_fills_on_both_sides_with_a_clean_book(run):
    s, summary, _ = run
    assert summary["events"] == s.reader.lines          # every line is an event in these files
    assert summary["buy_fills"] > 0 and summary["sell_fills"] > 0
    assert summary["gaps"] == 0 and summary["crossed_book_events"] == 0 and summary["malformed_lines"] == 0
    # Every bookTicker whose u equals an applied depth event's final u is checked live (data/README.md counts).
    assert summary["bbo_mismatches"] == 0
    assert summary["bbo_checks_ok"] == {"binance_usdm": 629, "binance_spot": 564}[summary["market"]]
    assert summary["shutdown_clean"] is True


def test_accounting_identities_hold(run):
    s, summary, _ = run
    inst = s.instrument
    signed = sum((1 if f["side"] == "buy" else -1) * Decimal(f["qty"]) for f in summary["fills"])
    assert Decimal(summary["final_inventory"]) == signed
    assert Decimal(summary["buy_volume"]) - Decimal(summary["sell_volume"]) == signed
    mid = Decimal(summary["last_mid"])
    assert Decimal(summary["cash"]) + Decimal(summary["final_inventory"]) * mid == Decimal(summary["mtm_pnl"])
    cash = sum((-1 if f["side"] == "buy" else 1) * Decimal(f["price"]) * Decimal(f["qty"]) for f in summary["fills"])
    fees = sum(Decimal(f["fee"]) for f in summary["fills"])
    assert Decimal(summary["fees"]) == fees
    assert Decimal(summary["cash"]) == cash - fees
    assert s.portfolio.position * inst.lot_size == signed


def test_every_maker_fill_is_at_its_orders_price_and_journaled_once(run):
    s, summary, db = run
    con = sqlite3.connect(db)
    price = dict(con.execute("SELECT client_order_id, price_ticks FROM orders"))
    rows = con.execute("SELECT client_order_id, trade_id, price_ticks, qty_lots FROM fills").fetchall()
    assert len(rows) == len(summary["fills"]) == len({(r[0], r[1]) for r in rows})
    for f in s.engine.fills:
        if f.is_maker:
            assert f.price == price[f.client_order_id]
    for coid, _, px, _ in rows:
        assert px == price[coid]
    n_orders = con.execute("SELECT count(*) FROM orders").fetchone()[0]
    assert n_orders == summary["orders_placed"] == sum(summary["orders"].values())
    assert con.execute("SELECT count(DISTINCT client_order_id) FROM orders").fetchone()[0] == n_orders
    # Derived columns kept by the journal's triggers: venue ids of acknowledged orders, filled quantity.
    assert con.execute("SELECT count(*) FROM orders WHERE venue_order_id IS NULL AND state != 'REJECTED'"
                       ).fetchone()[0] == 0
    filled = dict(con.execute("SELECT client_order_id, sum(qty_lots) FROM fills GROUP BY client_order_id"))
    for coid, lots, state in con.execute("SELECT client_order_id, filled_lots, state FROM orders"):
        assert lots == filled.get(coid, 0)
    assert dict(con.execute("SELECT state, count(*) FROM orders GROUP BY state")) == summary["orders"]


def test_latency_is_measured_per_event(run):
    s, summary, _ = run
    lat = summary["latency_us"]
    assert len(s.hot_ns) == summary["events"]
    assert 0 < lat["p50"] <= lat["p99"] <= lat["max"]
    assert summary["latency_with_parse_us"]["p50"] > lat["p50"]


def test_position_limit_of_one_order_caps_the_position_and_counts_refusals(tmp_path):
    _, summary = _backtest(USDM_FILE, tmp_path, "risk.net_max=0.002", journal=False)
    assert summary["fill_count"] > 0
    assert Decimal(summary["max_abs_inventory"]) == Decimal("0.002")     # one order's size, never more
    assert summary["risk_refusals"]["MAX_POSITION"] > 1000


def test_position_limit_below_one_order_size_is_refused_at_start():
    """It used to run placing 0 orders (every one refused MAX_POSITION) and exit 0."""
    r = subprocess.run([sys.executable, "-m", "mmcore", "run", "--set", "risk.net_max=0.001"], capture_output=True,
                       text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 2
    assert "config error:" in r.stderr and "strategy.order_qty = 0.002: must be <= the risk position limit" in r.stderr
    assert "Traceback" not in r.stderr + r.stdout


def test_tight_daily_loss_moves_trading_state_and_counts_refusals(tmp_path):
    _, base = _backtest(USDM_FILE, tmp_path, journal=False)
    _, tight = _backtest(USDM_FILE, tmp_path, "risk.max_daily_loss_usdt=0.5", journal=False)
    assert [c["to"] for c in tight["trading_state_changes"]] == ["REDUCING"]
    assert tight["trading_state_changes"][0]["ts_ns"] > 0 and "daily loss" in tight["trading_state_changes"][0]["reason"]
    assert tight["risk_refusals"]["TRADING_REDUCING"] > 0
    assert tight["orders_placed"] < base["orders_placed"] / 2


def test_halt_is_journaled_so_a_restart_would_come_back_halted(tmp_path):
    _, summary = _backtest(USDM_FILE, tmp_path, "risk.reduce_at_fraction=null", "risk.max_daily_loss_usdt=0.3")
    kv = Journal(tmp_path / "j.db").load(()).kv
    change = summary["trading_state_changes"][0]
    assert kv[KV_TRADING_STATE] == "HALTED" and kv[KV_TRADING_STATE_TS] == change["ts_ns"]
    assert kv[KV_TRADING_STATE_REASON] == change["reason"]
    assert float(kv[KV_PEAK_PNL]) > -1e9            # a finite peak once PnL has been seen


def test_a_fill_that_crosses_the_loss_limit_halts_at_once_not_at_the_next_market_event():
    """Synthetic fill (labelled): a 5 USDT fee on one fill against a 1 USDT daily loss limit. No market event
    follows (as during a live shutdown), so the engine must act inside the fill report."""
    s = build_session(load_config(overrides=["risk.max_daily_loss_usdt=1", "risk.reduce_at_fraction=null"]),
                      str(USDM_FILE))
    eng = s.engine
    o = eng.orders.place(10, 1, 600_000, 1, post_only=False, check_risk=False)
    eng.on_report(OrderAccepted(11, o.client_order_id, "v1"))
    eng.on_report(OrderFilled(12, o.client_order_id, 1, 1, 600_000, 1, Decimal("5")))
    assert eng.trading_state == HALTED and eng.counters["trading_state_changes"] == 1
    assert eng.gate.state_changes[-1][0] == 12


def test_halt_cancels_everything_and_flattens_the_position(tmp_path):
    _, summary = _backtest(USDM_FILE, tmp_path, "risk.reduce_at_fraction=null", "risk.max_daily_loss_usdt=0.3",
                           journal=False)
    assert [c["to"] for c in summary["trading_state_changes"]] == ["HALTED"]
    halt_ts = summary["trading_state_changes"][0]["ts_ns"]
    assert all(f["ts_ns"] <= halt_ts + 10**9 for f in summary["fills"])   # nothing trades after the halt
    assert summary["final_inventory"] == "0.000"
    assert summary["shutdown_clean"] is True


def test_backtest_cli_writes_report_json_and_png(tmp_path):
    r = subprocess.run([sys.executable, "-m", "mmcore", "backtest", "--data", str(USDM_FILE), "--out",
                        str(tmp_path)], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert REPORT_KEYS <= set(report)
    assert set(report["latency_us"]) == {"p50", "p99", "max"}
    assert all(set(f) >= {"ts_ns", "side", "price", "qty"} for f in report["fills"])
    png = (tmp_path / "report.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000


def test_backtest_journal_is_relative_to_the_working_directory_and_never_reused(tmp_path):
    cmd = [sys.executable, "-m", "mmcore", "backtest", "--data", str(USDM_FILE), "--out", "out", "--journal", "j.db"]
    first = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "j.db").exists() and (tmp_path / "out" / "report.json").exists()
    rows = sqlite3.connect(tmp_path / "j.db").execute("SELECT count(*) FROM orders").fetchone()[0]
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert again.returncode == 2 and "already holds a run" in again.stderr       # ids would repeat
    assert sqlite3.connect(tmp_path / "j.db").execute("SELECT count(*) FROM orders").fetchone()[0] == rows > 0


def test_book_cli_exports_top_of_book_after_every_applied_depth_event(tmp_path):
    out = tmp_path / "book.csv"
    r = subprocess.run([sys.executable, "-m", "mmcore", "book", "--data", str(SPOT_FILE), "--out", str(out)],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    lines = out.read_text().splitlines()
    assert lines[0] == "local_ts_ns,update_id,bid_px,bid_qty,ask_px,ask_qty"
    assert len(lines) - 1 == 3449                     # applied depth events (data/README.md)
    ts, u, bid, bq, ask, aq = lines[1].split(",")
    assert bid.endswith("000000") and len(bid.split(".")[1]) == 8   # spot writes 8 decimals
    assert Decimal(bid) < Decimal(ask)


def test_stop_handlers_install_on_the_main_thread_and_warn_where_they_cannot(caplog):
    import signal
    import threading

    from mmcore.cli import _install_stop_handlers

    async def on_main():
        loop = asyncio.get_running_loop()
        try:
            return _install_stop_handlers(loop, lambda: None)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    assert asyncio.run(on_main()) == []

    missing = []
    worker = threading.Thread(target=lambda: missing.extend(asyncio.run(on_main())))   # signals: main thread only
    worker.start()
    worker.join(10)
    assert missing == [signal.SIGINT, signal.SIGTERM]
    assert "SIGINT, SIGTERM" in caplog.text and "without a clean shutdown" in caplog.text


def test_a_journal_write_failure_mid_run_halts_cancels_and_places_nothing_after(tmp_path):
    """SQLite's own SQLITE_FULL ("database or disk is full") after a few pages (PRAGMA max_page_count): the
    engine learns it from Journal.failed, halts with the reason, cancels all, and the run is reported."""
    cfg = load_config(overrides=["risk.flatten_on_halt=false"])
    s = build_session(cfg, str(USDM_FILE), journal=str(tmp_path / "j.db"))
    conn = s.journal._writer.conn                                  # writer idle right after opening
    conn.execute(f"PRAGMA max_page_count = {conn.execute('PRAGMA page_count').fetchone()[0] + 30}")
    sent = []
    submit = s.sim.submit

    def recording_submit(ts_ns, *args):
        sent.append(ts_ns)
        return submit(ts_ns, *args)

    s.sim.submit = recording_submit
    asyncio.run(run_session(s))
    summary = summarize(s)
    halt = summary["trading_state_changes"][-1]
    assert halt["to"] == "HALTED" and halt["reason"].startswith("journal write failed: ")
    assert "database or disk is full" in halt["reason"] and "client order id" in halt["reason"]
    assert halt["ts_ns"] == summary["journal_failed_ts_ns"] == s.engine.journal_failed_ts
    assert sent and max(sent) <= halt["ts_ns"]                     # nothing sent after the halt
    assert summary["journal_error"] in halt["reason"] and summary["journal_lost_writes"] > 0
    assert s.engine.orders.orders == {} and summary["shutdown_clean"] is True
    assert summary["data_complete"] is False and summary["events"] < 93954
