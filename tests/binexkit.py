"""Helpers of the Binance execution-client tests: a BinanceExecution connected to an in-process emulator on real
recordings (first lines only), its reports, and the side / price at which a later recorded trade fills a resting
post-only order."""
from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import orjson

from emukit import KEY, SECRET, SPOT_BTC, USDM_BTC, head, running, until
from mmcore.execution import OrderAccepted
from mmcore.instruments import load_instrument
from mmcore.venues.binance.credentials import Credentials
from mmcore.venues.binance.execution import BinanceExecution
from mmcore.venues.binance.recording import open_recording

PAUSE_AT = 3000
DATA = {"binance_spot": SPOT_BTC, "binance_usdm": USDM_BTC}
QTY = {"binance_spot": "0.001", "binance_usdm": "0.002"}


class Harness:
    def __init__(self, emu, port, ex, venue):
        self.emu, self.port, self.ex, self.venue = emu, port, ex, venue
        self.reports: list = []
        self.connects = 0
        self.disconnects = 0
        self.client = ex.execution("BTCUSDT") if ex is not None else None

    @property
    def inst(self):
        return self.emu.markets.instruments["BTCUSDT"]

    def state(self, key: str = KEY) -> dict:
        return self.emu.account_state(self.emu.exchange.accounts[key])

    def touch(self) -> tuple[int, int]:
        b = self.emu.market.symbols["BTCUSDT"].book
        return b.best_bid_px(), b.best_ask_px()

    def lots(self, qty: str | None = None) -> int:
        return self.inst.qty_to_lots(qty or QTY[self.venue])

    def of(self, coid: str, kind=None) -> list:
        return [r for r in self.reports if r.client_order_id == coid and (kind is None or type(r) is kind)]

    async def wait(self, coid: str, kind, timeout: float = 10.0, n: int = 1):
        await until(lambda: len(self.of(coid, kind)) >= n, timeout, f"{kind.__name__} of {coid}")
        return self.of(coid, kind)


def through_side(path: Path, bid: float, ask: float) -> str:
    """The side whose resting order at the touch a later recorded trade goes through."""
    with open_recording(path) as fh:
        for i, raw in enumerate(fh):
            if i < PAUSE_AT or b'"trade"' not in raw and b'"aggTrade"' not in raw:
                continue
            d = orjson.loads(raw[raw.index(b" ") + 1:])["data"]
            p = float(d["p"])
            if p > ask and d["m"] is False:
                return "SELL"
            if p < bid and d["m"] is True:
                return "BUY"
    raise AssertionError("no trade through the touch in the recording")


@contextlib.asynccontextmanager
async def harness(venue: str, tmp_path: Path, lines: int = 20000, *, secret: str = SECRET, settings=None,
                  emu_settings=None, on_connect_extra=None, start_exec: bool = True, credentials=None,
                  ed25519_accounts=()):
    """An emulator paused at PAUSE_AT lines (book synced) and a started BinanceExecution on it (``h.ex``), with
    the HMAC test account's credentials unless ``credentials`` are given."""
    data = head(DATA[venue], tmp_path / f"{venue}.gz", lines)
    async with running([data], tmp_path, speed=0, start="paused", ed25519_accounts=ed25519_accounts,
                       **(emu_settings or {})) as (emu, port):
        emu.market.pause_after = PAUSE_AT
        emu.market.start()
        await until(lambda: emu.market.paused and emu.market.lines >= PAUSE_AT, 20, "the pause")
        h = Harness(emu, port, None, venue)
        h.data = data

        async def on_connect():
            h.connects += 1
            if on_connect_extra is not None:
                await on_connect_extra(h)

        def on_disconnect():
            h.disconnects += 1

        ex = BinanceExecution(venue, ["BTCUSDT"], {"BTCUSDT": load_instrument(venue, "BTCUSDT")},
                              credentials or Credentials.hmac(KEY, secret),
                              dict({"timeout_s": 3.0, "reconnect_initial_s": 0.05, "reconnect_max_s": 0.5,
                                    "unknown_status_delay_s": 0.05, "start_timeout_s": 10.0}, **(settings or {})),
                              lambda s, r: h.reports.append(r), on_connect=on_connect, on_disconnect=on_disconnect,
                              endpoint=f"http://127.0.0.1:{port}")
        h.ex = ex
        h.client = ex.execution("BTCUSDT")
        try:
            if start_exec:
                await ex.start()
            yield h
        finally:
            await ex.close()


async def place_resting(h: Harness, coid: str, away: int = 20) -> None:
    """A post-only buy ``away`` ticks below the bid, accepted."""
    bid, _ = h.touch()
    h.client.submit(0, coid, 1, bid - away, h.lots())
    await h.wait(coid, OrderAccepted)


def run(coro):
    return asyncio.run(coro)
