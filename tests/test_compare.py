"""``python -m mmcore compare``: every model replayed on the same real recording (the bundled USDⓈ-M file), one
row per (model, recording) whose figures are the replay's own; CSV; a bad config fails fast naming the field."""
import csv
import os
import subprocess
import sys

import pytest

from mmcore.runners.compare import COLUMNS, MODELS, row_of

from datafiles import ROOT, USDM_FILE


def test_row_of_takes_the_replays_figures_and_the_inventory_std():
    summary = {"buy_fills": 2, "sell_fills": 1, "buy_volume": "0.004", "sell_volume": "0.002",
               "quoting": {"quoted_spread_bps": 3.5}, "markouts": {"1s": {"mean_bps": -1.0}, "30s": {"mean_bps": 2.0}},
               "realized_pnl": "1", "mtm_pnl": "2", "fees": "0.1", "max_abs_inventory": "0.004"}
    r = row_of("glft", "/x/y.gz", summary, [0.0, 0.002, 0.004, float("nan")])
    assert (r["fills"], r["volume"], r["markout_30s_bps"], r["data"]) == (3, "0.006", 2.0, "y.gz")
    assert r["inventory_std"] == 0.002 and set(r) == set(COLUMNS)


def test_cli_compares_every_model_on_the_recording_and_writes_csv(tmp_path):
    out = tmp_path / "cmp.csv"
    r = subprocess.run([sys.executable, "-m", "mmcore", "compare", "--data", str(USDM_FILE), "--csv", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "200"})
    assert r.returncode == 0, r.stderr[-2000:]
    rows = list(csv.DictReader(open(out)))
    assert [x["model"] for x in rows] == list(MODELS)
    assert all(int(x["fills"]) > 0 and x["data"] == USDM_FILE.name for x in rows)
    assert "markout 1s bps" in r.stdout and "glft" in r.stdout
    assert rows[0]["fills"] != rows[1]["fills"]                    # the models do quote differently


def test_cli_refuses_a_bad_config_before_replaying():
    r = subprocess.run([sys.executable, "-m", "mmcore", "compare", "--set", "strategy.glft.intensity_buckets=1"],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "strategy.glft.intensity_buckets" in r.stderr and "Traceback" not in r.stderr


# --- sweep ---
def test_grid_parsing_and_points():
    from mmcore.runners.compare import grid_points, parse_grid
    g = parse_grid(["strategy.gamma=0.01, 0.1", "execution.price_tolerance_ticks=1,3,5"])
    assert g == [("strategy.gamma", ["0.01", "0.1"]), ("execution.price_tolerance_ticks", ["1", "3", "5"])]
    pts = grid_points(g)
    assert len(pts) == 6 and pts[0] == {"strategy.gamma": "0.01", "execution.price_tolerance_ticks": "1"}
    assert pts[3] == {"strategy.gamma": "0.1", "execution.price_tolerance_ticks": "1"}      # first key slowest
    for bad in (["gamma=1"], ["strategy.gamma="], ["strategy.gamma=1,,2"], ["strategy.gamma=1", "strategy.gamma=2"],
                []):
        with pytest.raises(ValueError):
            parse_grid(bad)


def test_cli_sweeps_a_grid_on_a_process_pool_and_writes_csv_and_heatmap(tmp_path):
    r = subprocess.run([sys.executable, "-m", "mmcore", "sweep", "--data", str(USDM_FILE), "--grid",
                        "strategy.gamma=5,25", "--workers", "2", "--out", str(tmp_path)], cwd=ROOT,
                       capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "200"})
    assert r.returncode == 0, r.stderr[-2000:]
    rows = list(csv.DictReader(open(tmp_path / "sweep.csv")))
    assert [x["strategy.gamma"] for x in rows] == ["5", "25"]
    by_gamma = {x["strategy.gamma"]: int(x["fills"]) for x in rows}
    assert by_gamma["5"] > by_gamma["25"] > 0                # less risk aversion, tighter quotes, more fills
    assert (tmp_path / "sweep.png").stat().st_size > 1000
    bad = subprocess.run([sys.executable, "-m", "mmcore", "sweep", "--grid", "strategy.gamma=0.01,-1"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "strategy.gamma" in bad.stderr and "Traceback" not in bad.stderr


def _has_ray():
    import importlib.util
    return importlib.util.find_spec("ray") is not None


@pytest.mark.skipif(not _has_ray(), reason="Ray is not installed (the optional ray extra)")
def test_a_sweep_on_a_local_ray_instance_gives_the_process_pools_rows():
    from mmcore.config import DEFAULT_CONFIG
    from mmcore.runners.compare import parse_grid, sweep
    grid = parse_grid(["strategy.gamma=0.01,0.05"])
    on_ray = sweep(str(DEFAULT_CONFIG), [], [str(USDM_FILE)], grid, ray_address="local")
    here = sweep(str(DEFAULT_CONFIG), [], [str(USDM_FILE)], grid, workers=1)
    assert on_ray == here and len(on_ray) == 2


@pytest.mark.skipif(_has_ray(), reason="Ray is installed: the missing-Ray message cannot be seen")
def test_sweep_ray_without_ray_installed_says_so():
    r = subprocess.run([sys.executable, "-m", "mmcore", "sweep", "--grid", "strategy.gamma=0.01", "--ray", "local",
                        "--out", "/nonexistent-not-written"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "Ray is not installed" in r.stderr and "Traceback" not in r.stderr
