"""The start-time exchangeInfo refresh of a paper/live run goes over a plain GET (aiohttp), never importing ccxt
(~77 MB of RSS): checked in a fresh interpreter against the in-process emulator serving the pinned markets."""
import subprocess
import sys

from datafiles import ROOT

SCRIPT = r"""
import asyncio, sys
from pathlib import Path
from mmcore.config import load_config
from mmcore.sim.emulator.app import build_emulator
from mmcore.venues.binance import markets as mk

async def main():
    emu = build_emulator([Path("data/usdm_btcusdt_20240808.gz"), Path("data/usdm_ethusdt_20240808.gz")],
                         load_config(), 0, {"start": "now"})
    port = await emu.start(0)
    try:
        m = await mk.markets_for_run("config/markets/binance_usdm.json", "binance_usdm", ["BTCUSDT", "ETHUSDT"],
                                     False, f"http://127.0.0.1:{port}")
    finally:
        await emu.stop()
    print(m.path, dict(mk.COUNTERS), "ccxt" in sys.modules)
asyncio.run(main())
"""


def test_the_run_time_refresh_fetches_exchange_info_without_ccxt():
    r = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    where, counters, ccxt = r.stdout.strip().rsplit(" ", 1)[0], r.stdout, r.stdout.strip().endswith("True")
    assert "exchangeInfo from http://127.0.0.1:" in where and "/fapi/v1/exchangeInfo" in where
    assert "'refresh_failed': 0" in counters or "refresh_failed" not in counters
    assert not ccxt
