"""SYNTHETIC multi-symbol data for load tests: relabelled copies of the bundled real recordings and markets.

Nothing here is new market data: a copy of a real recording has every occurrence of its symbol (``BTCUSDT`` in
``"s"`` fields, ``btcusdt`` in stream names) replaced by a made-up one (``SYN03USDT``), and the pinned markets
entry of the real symbol is copied under the new name. The prices, quantities and times are the real
recording's. Files written here say so in their name (``synthetic_*``) and, for the markets file, in its
``source``. Used by the ten-symbol paper benchmark, the RSS-slope test and ``scripts/soak.sh``.
"""
from __future__ import annotations

import copy
import gzip
import json
from pathlib import Path

from mmcore.venues.binance.markets import checksum_line
from mmcore.venues.binance.recording import detect_symbol, open_recording


def synthetic_names(n: int) -> list[str]:
    """``SYN00USDT`` ... : ``n`` made-up symbol names (A-Z, 0-9)."""
    return [f"SYN{i:02d}USDT" for i in range(n)]


def relabel_recording(src: Path, dst: Path, new_symbol: str, lines: int | None = None) -> Path:
    """Copy the recording ``src`` (gzip) to ``dst`` with its symbol renamed ``new_symbol`` (upper case in
    ``"s"`` fields, lower case in stream names); at most ``lines`` lines."""
    old = detect_symbol(src)
    pairs = ((old.encode(), new_symbol.encode()), (old.lower().encode(), new_symbol.lower().encode()))
    with open_recording(src) as fh, gzip.open(dst, "wb", compresslevel=1) as out:
        for i, raw in enumerate(fh):
            if lines is not None and i >= lines:
                break
            for a, b in pairs:
                raw = raw.replace(a, b)
            out.write(raw)
    return dst


def synthetic_markets(pinned: Path, out: Path, names: dict[str, str]) -> Path:
    """Write ``out`` (+ ``.sha256``): the pinned markets file ``pinned`` with, for each ``new: real`` in
    ``names``, a copy of the real symbol's exchangeInfo and mmcore entries under the new name. The real
    entries are kept."""
    doc = json.loads(Path(pinned).read_text())
    info = doc["exchangeInfo"]
    by = {s["symbol"]: s for s in info["symbols"]}
    for new, real in names.items():
        entry = copy.deepcopy(by[real])
        entry["symbol"] = entry["pair"] = new if "pair" in entry else new
        if "pair" not in by[real]:
            entry.pop("pair", None)
        entry["baseAsset"] = new[:-4]
        info["symbols"].append(entry)
        doc["mmcore"][new] = copy.deepcopy(doc["mmcore"][real])
    doc["source"] = f"SYNTHETIC: relabelled copies of {pinned.name} entries for load tests ({doc.get('source')})"
    data = json.dumps(doc, indent=1).encode()
    out.write_bytes(data)
    out.with_name(out.name + ".sha256").write_text(checksum_line(data, out.name))
    return out
