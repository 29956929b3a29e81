"""``python -m mmcore record`` against the in-process emulator, then the recording replayed through
ReplayReader gives the emulator's book; the file has the bundled recordings' format."""
import asyncio
import gzip
import re
import sys

import pytest

from mmcore.venues.binance.record import output_paths
from mmcore.venues.binance.recording import ReplayReader
from mmcore_ext.book import ASK, BID, SYNCED, L2Book, sync_rule_for_market
from mmcore_ext.events import DepthDiff, DepthSnapshot, Trade

from datafiles import ROOT
from emukit import SPOT_BTC, SPOT_ETH, USDM_BTC, USDM_ETH, head, running, until
from feedkit import fault

SYMS = ("BTCUSDT", "ETHUSDT")


def replay_book(path, market):
    r = ReplayReader(path, market)
    book = L2Book(sync_rule_for_market(market))
    trades = 0
    for ev in r:
        t = type(ev)
        if t is DepthDiff:
            book.apply_diff(ev)
        elif t is DepthSnapshot:
            book.load_snapshot(ev)
        elif t is Trade:
            trades += 1
    return book, trades, r


@pytest.mark.parametrize("market,drop", [("binance_usdm", False), ("binance_spot", False), ("binance_spot", True)],
                         ids=["usdm", "spot", "spot-drop"])
def test_record_then_replay_gives_the_emulators_book(market, drop, tmp_path):
    src = (USDM_BTC, USDM_ETH) if market == "binance_usdm" else (SPOT_BTC, SPOT_ETH)
    files = [head(p, tmp_path / f"src{i}.gz", 3000) for i, p in enumerate(src)]
    out = tmp_path / "rec_{symbol}.gz"

    async def scenario():
        async with running(files, tmp_path, speed=6, start="paused") as (emu, port):
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "mmcore", "record", "--venue", market, "--symbols", ",".join(SYMS),
                "--out", str(out), "--duration", "7", "--endpoint", f"http://127.0.0.1:{port}",
                cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            want = 1 if market == "binance_spot" else 2
            await until(lambda: len(emu.conns["market"]) >= want, 10, "the recorder's stream connections")
            emu.market.resume()
            if drop:                                  # a hole in the streams: the recorder writes a new snapshot
                await until(lambda: emu.market.lines > 1500, 10, "half the recording")
                await fault(port, "drop", target="market")
            await until(lambda: emu.market.done, 15, "the end of the recording")
            stdout, stderr = await asyncio.wait_for(proc.communicate(), 15)
            assert proc.returncode == 0, stderr.decode()[-2000:]
            return emu, stdout.decode()
    emu, stdout = asyncio.run(scenario())
    assert "BTCUSDT:" in stdout and "ETHUSDT:" in stdout
    for s in SYMS:
        path = tmp_path / f"rec_{s.lower()}.gz"
        with gzip.open(path, "rb") as fh:
            lines = fh.read().splitlines()
        assert all(re.fullmatch(rb"\d{19} \{.*\}", ln) for ln in lines)
        snaps = [i for i, ln in enumerate(lines) if ln[20:].startswith(b'{"lastUpdateId"')]
        assert snaps and snaps[0] < len(lines) // 2           # a snapshot early in the file, streams around it
        if drop:
            assert len(snaps) >= 2 and snaps[-1] < len(lines) - 10
        book, trades, reader = replay_book(path, market)
        theirs = emu.market.symbols[s].book
        assert reader.malformed == 0 and trades > 0
        assert book.state == SYNCED and book.last_update_id == theirs.last_update_id
        assert book.levels(BID, 20) == theirs.levels(BID, 20) and book.levels(ASK, 20) == theirs.levels(ASK, 20)


def test_output_paths(tmp_path):
    assert output_paths(tmp_path / "a.gz", "binance_spot", ["BTCUSDT"]) == {"BTCUSDT": tmp_path / "a.gz"}
    p = output_paths(str(tmp_path / "r_{symbol}.gz"), "binance_usdm", ["BTCUSDT", "ETHUSDT"])
    assert p["ETHUSDT"] == tmp_path / "r_ethusdt.gz"
    p = output_paths(tmp_path, "binance_usdm", ["BTCUSDT"], day="20260101")
    assert p["BTCUSDT"] == tmp_path / "usdm_btcusdt_20260101.gz"
    with pytest.raises(ValueError, match="several symbols"):
        output_paths(tmp_path / "a.gz", "binance_spot", ["BTCUSDT", "ETHUSDT"])


@pytest.mark.parametrize("args,phrase", [
    (["--symbols", "btcusdt"], "--symbols"),
    (["--symbols", "BTCUSDT,ETHUSDT", "--out", "x.gz"], "several symbols"),
    (["--endpoint", "http://127.0.0.1:1/path"], "--endpoint"),
    (["--duration", "0"], "--duration"),
])
def test_record_refuses_bad_arguments(args, phrase, tmp_path):
    import subprocess
    base = {"--symbols": "BTCUSDT", "--out": str(tmp_path / "r.gz")}
    for k, v in zip(args[::2], args[1::2]):
        base[k] = v
    cmd = [sys.executable, "-m", "mmcore", "record", "--venue", "binance_spot"]
    cmd += sum(([k, v] for k, v in base.items()), [])
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert any(ln.startswith("error:") and phrase in ln for ln in r.stderr.splitlines()), r.stderr
    assert not (tmp_path / "r.gz").exists()
