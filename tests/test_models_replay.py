"""Every strategy.model runs from config on the bundled real USDⓈ-M recording (data/, hftbacktest's recorder,
MIT; see data/README.md) through the one strategy interface: ladders with several orders per side, the band
maker holding its orders, the A-S horizon modes, the fair-price and sigma choices, and what report.json says
of them."""
import asyncio
import json

import pytest

from mmcore.config import ConfigError, load_config
from mmcore.runners.replay import build_session, run_session, summarize
from mmcore_ext.strategy import BandMaker, LayeredLadder, ModelQuote

from datafiles import USDM_FILE


def replay(*sets):
    s = build_session(load_config(overrides=list(sets)), str(USDM_FILE), market="binance_usdm")
    peak = {1: 0, -1: 0}
    orig = s.engine.orders.place

    def place(*a, **k):                    # the most orders live on a side at once
        o = orig(*a, **k)
        if o is not None:
            lc = s.engine.orders.live_count
            peak[o.side] = max(peak[o.side], lc[o.side])
        return o
    s.engine.orders.place = place
    asyncio.run(run_session(s))
    return s, summarize(s), peak


def test_ladder_quotes_several_levels_per_side_within_the_limits():
    s, summary, peak = replay("strategy.model=ladder")
    assert isinstance(s.engine.strategy, LayeredLadder) and summary["strategy"]["levels"] == 5
    assert peak[1] >= 3 and peak[-1] >= 3                  # several levels live on each side
    assert max(peak.values()) <= s.engine.orders.max_per_side
    assert summary["buy_fills"] > 0 and summary["sell_fills"] > 0 and summary["shutdown_clean"]
    assert abs(float(summary["max_abs_inventory"])) <= 0.01 + 1e-12        # strategy.max_inventory held
    assert summary["strategy"]["regime"] in ("normal", "grinding", "pinning", "stop_loss")
    assert summary["orders"].get("FILLED", 0) + summary["orders"].get("PARTIALLY_FILLED", 0) > 0


def test_band_holds_its_orders_and_counts_its_requotes():
    s, summary, peak = replay("strategy.model=band")
    st = summary["strategy"]
    assert isinstance(s.engine.strategy, BandMaker) and st["fair_price"] == "twap"
    assert st["band_requotes"] >= 2 and peak[1] == 3
    # orders stay put between requotes: far fewer orders than the one-level A-S model sends
    _, base, _ = replay()
    assert summary["orders_placed"] * 5 < base["orders_placed"]
    assert summary["quoting"]["quoted_spread_bps"] > 40                 # a 0.2-0.4 % band: >= 40 bps wide


@pytest.mark.parametrize("sets", [
    ("strategy.avellaneda_stoikov.horizon=infinite",),
    ("strategy.avellaneda_stoikov.horizon=fixed", "strategy.avellaneda_stoikov.spread=constant"),
    ("strategy.fair_price=twap", "strategy.sigma_estimator=realized", "strategy.eta=2.0"),
    ("strategy.model=ladder", "strategy.ladder.inner_model=glft"),
])
def test_modes_and_choices_run_and_quote(sets):
    s, summary, _ = replay(*sets)
    assert isinstance(s.engine.strategy, (ModelQuote, LayeredLadder))
    assert summary["orders_placed"] > 50 and summary["quotes_refused"] == 0 and summary["shutdown_clean"]
    st = summary["strategy"]
    assert st["sigma"] > 0 and st["sigma_ticks"] == pytest.approx(st["sigma"] / 0.1)
    assert len(st["sigma_over_time"]) > 100


def test_fixed_horizon_skews_more_than_the_cycle_on_average():
    """With T - t = T always the inventory skew never decays within a cycle: fewer round trips are needed to
    stay flat, and the quotes are never the end-of-cycle near-symmetric ones."""
    _, cyc, _ = replay()
    _, fix, _ = replay("strategy.avellaneda_stoikov.horizon=fixed")
    assert (cyc["fill_count"], cyc["mtm_pnl"]) != (fix["fill_count"], fix["mtm_pnl"])


def test_external_reference_is_used_while_fresh_and_the_mid_otherwise():
    s = build_session(load_config(overrides=["strategy.fair_price=external"]), str(USDM_FILE),
                      market="binance_usdm")
    eng = s.engine
    asyncio.run(run_session(s))
    assert eng.counters["reference_stale"] > 0               # never set: the mid, counted
    eng.set_reference(0, float("nan"))
    assert eng.counters["reference_refused"] == 1


def test_bad_model_sections_fail_at_start_naming_the_field():
    for sets, field in ((["strategy.model=grid"], "strategy.model"),
                        (["strategy.ladder.near_layers=12", "strategy.ladder.far_layers=8"], "far_layers"),
                        (["strategy.ladder.grinding_thresh=0.9"], "pinning_thresh"),
                        (["strategy.band.band_min=0.01"], "band_min"),
                        (["strategy.avellaneda_stoikov.horizon=forever"], "strategy.avellaneda_stoikov.horizon")):
        with pytest.raises(ConfigError, match=field):
            load_config(overrides=sets)
    cfg = load_config(overrides=["strategy.model=ladder", "strategy.ladder.base_layer_size=0.0015"])
    with pytest.raises(ConfigError, match="strategy.ladder.base_layer_size"):
        build_session(cfg, str(USDM_FILE), market="binance_usdm")


def test_report_json_carries_the_strategy_block(tmp_path):
    import subprocess
    import sys
    from datafiles import ROOT
    r = subprocess.run([sys.executable, "-m", "mmcore", "backtest", "--data", str(USDM_FILE), "--set",
                        "strategy.model=ladder", "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    rep = json.loads((tmp_path / "report.json").read_text())
    assert rep["strategy"]["class"] == "LayeredLadder" and rep["strategy"]["sigma_estimator"] == "ewma"
    assert rep["strategy"]["sigma_over_time"][0]["sigma_alt"] is not None
    assert (tmp_path / "report.png").stat().st_size > 10_000


def test_intensity_warm_up_is_logged_and_quoting_starts_on_the_seeds(caplog):
    import logging
    with caplog.at_level(logging.INFO, logger="mmcore.engine"):
        s, summary, _ = replay("strategy.model=glft")
    warm = [r.getMessage() for r in caplog.records if "warm-up" in r.getMessage()]
    assert len(warm) >= 5 and "of 300 s of window" in warm[0]
    first_fit = summary["intensity"]["estimates"][0]["ts_ns"]
    first_order = min(f["ts_ns"] for f in summary["fills"])
    assert summary["orders_placed"] > 0 and first_fit > first_order         # quoted (and filled) before the fit


@pytest.mark.parametrize("model", ["avellaneda_stoikov", "glft"])
def test_the_quotes_unchanged_fast_path_changes_nothing(model, monkeypatch):
    """OrderManager.reconcile skips a call whose inputs equal the last settled one's: the whole report (timings
    aside) is the same with the fast path disabled."""
    from mmcore.engine.order_manager import OrderManager

    def report():
        _, summary, _ = replay(f"strategy.model={model}")
        for k in ("wall_s", "events_per_s", "latency_us", "latency_with_parse_us"):
            summary.pop(k)
        return json.dumps(summary, sort_keys=True, default=str)
    fast = report()
    monkeypatch.setattr(OrderManager, "_settled_side", lambda self, o, px, qty: False)
    assert report() == fast
