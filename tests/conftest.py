"""Shared fixtures. Real recorded data lives in ``data/`` (see data/README.md for provenance)."""
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
USDM_FILE = ROOT / "data" / "usdm_btcusdt_20240808.gz"
SPOT_FILE = ROOT / "data" / "spot_btcusdt_20240808.gz"
SHARED_2023 = ROOT.parent / "shared" / "data" / "binance_hftbacktest" / "usdm_btcusdt_20230404.dat.gz"


@pytest.fixture(scope="session")
def usdm():
    from mmcore.instruments import load_instrument
    return load_instrument("binance_usdm", "BTCUSDT")


@pytest.fixture(scope="session")
def spot():
    from mmcore.instruments import load_instrument
    return load_instrument("binance_spot", "BTCUSDT")
