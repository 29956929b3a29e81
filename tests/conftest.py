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


@pytest.fixture(autouse=True)
def _own_lock_dir(tmp_path_factory, monkeypatch):
    """Each test takes account locks (mmcore.persistence.locks) in a directory of its own, inherited by its subprocesses,
    so that tests, and test runs in parallel on one machine, never see each other's locks."""
    monkeypatch.setenv("MMCORE_LOCK_DIR", str(tmp_path_factory.mktemp("locks")))
