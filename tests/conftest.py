"""Shared fixtures. Real recorded data lives in ``data/`` (see data/README.md for provenance)."""
import pytest


@pytest.fixture(scope="session")
def usdm():
    from mmcore.instruments import load_instrument
    return load_instrument("binance_usdm", "BTCUSDT")


@pytest.fixture(scope="session")
def spot():
    from mmcore.instruments import load_instrument
    return load_instrument("binance_spot", "BTCUSDT")
