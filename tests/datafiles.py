"""Paths of the real recordings used by the tests (provenance: data/README.md)."""
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
USDM_FILE = ROOT / "data" / "usdm_btcusdt_20240808.gz"
SPOT_FILE = ROOT / "data" / "spot_btcusdt_20240808.gz"
USDM_2023_FILE = ROOT / "data" / "usdm_btcusdt_20230404.dat.gz"   # microsecond local timestamps
