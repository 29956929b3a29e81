"""strategy.model = glft reaches the compiled GLFT quoter, with A and kappa re-estimated online from trade
arrivals (mmcore_ext.quoting.TradeIntensity) on the bundled real USDⓈ-M recording; set_intensity; the new
config fields are validated by name."""
import json
import subprocess
import sys

import pytest

from mmcore.config import ConfigError, load_config
from mmcore.runners.replay import build_session, run_session, summarize
from mmcore_ext.quoting import GLFT

from datafiles import ROOT, USDM_FILE


def test_set_intensity_recomputes_the_coefficients_and_refuses_bad_values_unchanged():
    g = GLFT(0.05, 0.5, 2.0, 1.0, 0.05, 0.0, 1e4, 0.1)
    g.set_intensity(3.0, 0.2)
    fresh = GLFT(0.05, 0.2, 3.0, 1.0, 0.05, 0.0, 1e4, 0.1)
    assert (g.A, g.kappa, g.c1, g.c2) == (3.0, 0.2, fresh.c1, fresh.c2)
    for A, k in ((0.0, 0.2), (3.0, -1.0), (float("nan"), 0.2), (3.0, float("inf"))):
        with pytest.raises(ValueError):
            g.set_intensity(A, k)
        assert (g.A, g.kappa, g.c1) == (3.0, 0.2, fresh.c1)


def _replay(*sets):
    import asyncio
    s = build_session(load_config(overrides=list(sets)), str(USDM_FILE), market="binance_usdm")
    asyncio.run(run_session(s))
    return s, summarize(s)


def test_glft_replay_refits_a_and_kappa_from_arrivals_and_quotes_with_them():
    s, summary = _replay("strategy.model=glft")
    est = summary["intensity"]
    assert summary["model"] == "GLFT" and est["fits"] >= 5 and est["fits_refused"] == 0
    assert est["arrivals"] < est["prints"] / 2                      # bursts are one arrival
    last = est["estimates"][-1]
    assert (s.engine.quoter.A, s.engine.quoter.kappa) == (last["A_per_s"], last["kappa_per_quote"])
    assert (last["A_per_s"], last["kappa_per_quote"]) != (2.0, 0.5)      # moved from the seeds
    assert summary["buy_fills"] + summary["sell_fills"] > 0 and summary["shutdown_clean"]


def test_glft_without_estimation_keeps_the_seeds():
    s, summary = _replay("strategy.model=glft", "strategy.glft.intensity_estimate=false", "strategy.glft.A=3.5",
                         "strategy.kappa=0.25")
    assert summary["intensity"] is None and (s.engine.quoter.A, s.engine.quoter.kappa) == (3.5, 0.25)


@pytest.mark.parametrize("kv,field", [("strategy.model=glf", "strategy.model"),
                                      ("strategy.glft.intensity_buckets=1", "strategy.glft.intensity_buckets"),
                                      ("strategy.glft.A=0", "strategy.glft.A"), ("strategy.glft.xi=-1", "strategy.glft.xi"),
                                      ("strategy.glft.intensity_refit_s=0", "strategy.glft.intensity_refit_s")])
def test_bad_glft_fields_are_refused_by_name(kv, field):
    with pytest.raises(ConfigError) as ei:
        load_config(overrides=[kv])
    assert any(f" {field} = " in line for line in ei.value.errors), ei.value.errors


def test_backtest_report_carries_the_estimates(tmp_path):
    r = subprocess.run([sys.executable, "-m", "mmcore", "backtest", "--data", str(USDM_FILE), "--out",
                        str(tmp_path), "--set", "strategy.model=glft"], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    rep = json.loads((tmp_path / "report.json").read_text())
    assert rep["model"] == "GLFT" and len(rep["intensity"]["estimates"]) >= 5
    assert (tmp_path / "report.png").stat().st_size > 10_000           # with the A / kappa panel
