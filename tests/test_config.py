"""Config validation: every bad field stops the start with the field, the value and the allowed range."""
import subprocess
import sys

import pytest

from mmcore.config import ROOT, ConfigError, load_config


def test_default_config_is_valid():
    c = load_config()
    assert c.get("strategy.model") == "avellaneda_stoikov"


@pytest.mark.parametrize("override, field, words", [
    ("strategy.gamma=-1", "strategy.gamma", "0 < gamma <= 1e6"),
    ("strategy.order_qty=abc", "strategy.order_qty", "decimal number"),
    ("sim.maker_fee_bps=true", "sim.maker_fee_bps", "number"),
    ("execution.price_tolerance_ticks=1.5", "execution.price_tolerance_ticks", "integer"),
    ("data.market=kraken", "data.market", "binance_spot"),
    ("strategy.min_spread_bps=50", "strategy.min_spread_bps", "max_spread_bps"),
])
def test_bad_value_names_field_value_and_range(override, field, words):
    with pytest.raises(ConfigError) as exc:
        load_config(overrides=[override])
    msg = str(exc.value)
    assert field in msg and words in msg and override.split("=")[1].lower() in msg.lower()


def test_unknown_and_missing_fields_are_reported(tmp_path):
    bad = tmp_path / "bad.yaml"
    text = (ROOT / "config" / "default.yaml").read_text().replace("gamma:", "gama:")
    bad.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_config(bad)
    assert "strategy.gama: unknown field" in str(exc.value)
    assert "strategy.gamma: missing" in str(exc.value)


def test_cli_bad_config_exits_2_without_traceback():
    r = subprocess.run([sys.executable, "-m", "mmcore", "run", "--set", "strategy.kappa=0"],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 2
    assert "strategy.kappa = 0: out of range" in r.stderr
    assert "Traceback" not in r.stderr + r.stdout


@pytest.mark.parametrize("args, code, message", [
    (["--set", "strategy.order_qty=0.0015"], 2, "strategy.order_qty = 0.0015: not a multiple of the step size"),
    (["--set", "strategy.max_inventory=0.0105"], 2, "strategy.max_inventory = 0.0105: not a multiple"),
    (["--data", "data"], 1, "data file data: is a directory, not a regular file"),
    (["--data", "README.md"], 2, "no depthUpdate"),
    (["--data", "no-such-file.gz"], 1, "not found"),
])
def test_cli_bad_values_and_unreadable_data_exit_with_a_named_error_and_no_traceback(args, code, message):
    r = subprocess.run([sys.executable, "-m", "mmcore", "run", *args], capture_output=True, text=True, cwd=ROOT,
                       timeout=120)
    assert r.returncode == code, r.stderr[-2000:]
    assert message in r.stderr
    assert "Traceback" not in r.stderr + r.stdout
