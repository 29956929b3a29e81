"""Paper trading end to end against the Binance-compatible emulator: the production feed (picows, combined
streams, WebSocket API snapshots) feeding the multi-symbol session, fills from the paper exchange.

The emulator replays the bundled real recordings (BTCUSDT + ETHUSDT, the same six minutes) on 127.0.0.1; the
session's books must equal the emulator's at checkpoints (the emulator's replay paused, the feed drained),
and the CLI's paper run must print the replay's summary including frame-receipt-to-order-actions time."""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import pytest

from emukit import SPOT_BTC, SPOT_ETH, USDM_BTC, USDM_ETH, head, running, until
from mmcore.config import load_config
from mmcore.instruments import load_instrument
from mmcore.runners.live import Session
from mmcore.runners.venue_run import session_summary
from mmcore.venues.binance.feed import BinanceFeed

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


async def _post(port, path, body=None):
    import aiohttp
    async with aiohttp.ClientSession() as s:
        async with s.post(f"http://127.0.0.1:{port}{path}", json=body or {}) as r:
            return await r.json()


def _top(book, n=20):
    return book.levels(1, n), book.levels(-1, n)


@pytest.mark.parametrize("market,files", [("binance_usdm", (USDM_BTC, USDM_ETH)),
                                          ("binance_spot", (SPOT_BTC, SPOT_ETH))])
def test_paper_session_books_equal_the_emulators_at_checkpoints_and_it_trades_both_symbols(tmp_path, market,
                                                                                          files):
    data = [head(f, tmp_path / f.name, 12000) for f in files]
    symbols = ["BTCUSDT", "ETHUSDT"]

    async def scenario():
        async with running(data, tmp_path, speed=5) as (emu, port):
            config = load_config(overrides=[f"venue.endpoint=http://127.0.0.1:{port}",
                                            "venue.strict_no_rest_markets=true", "venue.depth_stream=depth@0ms"
                                            if market == "binance_usdm" else "venue.depth_stream=depth@100ms",
                                            "venue.trade_stream=trade"])
            inst = {s: load_instrument(market, s) for s in symbols}
            session = Session(config, market, inst,
                              lambda on_event, on_state: BinanceFeed(market, symbols, inst, config, on_event,
                                                                     on_state))
            run = asyncio.get_running_loop().create_task(session.run(duration_s=60))
            checks = 0
            for _ in range(3):
                await until(lambda: all(ss.engine.book.synced and ss.events > 50
                                        for ss in session.symbols.values()), 20, "both books synced")
                await asyncio.sleep(0.7)
                await _post(port, "/_emulator/pause")
                try:                                           # frames in flight arrive (bounded wait)
                    await until(lambda: all(session.symbols[s].engine.book.last_update_id
                                            == emu.market.symbols[s].book.last_update_id for s in symbols),
                                5, "the books level")
                except AssertionError:
                    pass                                       # compared below only where level
                for s in symbols:
                    ours, theirs = session.symbols[s].engine.book, emu.market.symbols[s].book
                    if ours.synced and ours.last_update_id == theirs.last_update_id:
                        assert _top(ours) == _top(theirs), s
                        checks += 1
                await _post(port, "/_emulator/resume")
            session.request_stop()
            clean = await run
            return session, clean, checks
    session, clean, checks = asyncio.run(scenario())
    assert clean and checks >= 4                               # most checkpoints compared both books
    s = session_summary(session)
    for sym in symbols:
        assert s["symbols"][sym]["orders_placed"] > 0 and s["symbols"][sym]["shutdown_clean"]
    assert s["total"]["frame_to_orders_us"]["p50"] is not None
    assert s["feed"]["frames"] > 1000 and s["feed"].get("malformed", 0) == 0


def test_cli_paper_run_against_the_emulator_prints_the_summary_and_writes_the_report(tmp_path):
    data = [head(f, tmp_path / f.name, 20000) for f in (USDM_BTC, USDM_ETH)]
    emu = subprocess.Popen([sys.executable, "-m", "mmcore", "emulate", "--port", "0", "--speed", "5",
                            *sum((["--data", str(d)] for d in data), [])], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, cwd=ROOT)
    try:
        port = int(emu.stdout.readline().decode().rsplit(":", 1)[1])
        out = tmp_path / "out"
        r = subprocess.run([sys.executable, "-m", "mmcore", "run", "--venue", "binance_usdm", "--symbols",
                            "BTCUSDT,ETHUSDT", "--endpoint", f"http://127.0.0.1:{port}", "--duration", "6",
                            "--out", str(out), "--set", "venue.strict_no_rest_markets=true",
                            "--set", "report.status_every_s=2"],
                           cwd=ROOT, capture_output=True, text=True, timeout=60)
    finally:
        emu.terminate()
        emu.wait(10)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "mmcore paper: binance_usdm BTCUSDT" in r.stdout and "mmcore paper: binance_usdm ETHUSDT" in r.stdout
    assert "frame -> orders p50 / p99 / max" in r.stdout
    assert r.stderr.count("frame->orders p99") >= 4                 # status lines: 2 symbols, every 2 s
    rep = json.loads((out / "report.json").read_text())
    assert set(rep["symbols"]) == {"BTCUSDT", "ETHUSDT"} and rep["mode"] == "paper"
    assert all(v["events"] > 100 for v in rep["symbols"].values())
    assert all(v["quoting"]["quoted_fraction"] is not None and "1s" in v["markouts"] for v in rep["symbols"].values())
    assert (out / "BTCUSDT" / "report.png").exists()
