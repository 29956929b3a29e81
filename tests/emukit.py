"""Helpers for the Binance-compatible emulator tests: in-process emulators on real recordings (or their first
lines), a pinned-markets fixture for BTCUSDT + ETHUSDT, signing, ccxt clients pointed at 127.0.0.1."""
from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import hmac
import time
import urllib.parse
from pathlib import Path

import orjson

from mmcore.config import load_config
from mmcore.sim.emulator.app import build_emulator
from mmcore.venues.binance.recording import open_recording

from datafiles import ROOT

USDM_BTC = ROOT / "data" / "usdm_btcusdt_20240808.gz"
USDM_ETH = ROOT / "data" / "usdm_ethusdt_20240808.gz"
SPOT_BTC = ROOT / "data" / "spot_btcusdt_20240808.gz"
SPOT_ETH = ROOT / "data" / "spot_ethusdt_20240808.gz"
KEY = "emuTestKey0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQR"   # test account (fake)
SECRET = "emuTestSecret0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN"
KEY2 = "emuTestKeyTwo3456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQR"
SECRET2 = "emuTestSecretTwo56789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOP"

def head(src: Path, dst: Path, lines: int, mutate=None) -> Path:
    """The first ``lines`` lines of ``src`` into ``dst`` (gzip); ``mutate(i, raw) -> raw`` may change lines
    (the test labels any change as synthetic)."""
    with open_recording(src) as fh, gzip.open(dst, "wb", compresslevel=1) as out:
        for i, raw in enumerate(fh):
            if i >= lines:
                break
            out.write(mutate(i, raw) if mutate else raw)
    return dst


def recorded_frames(path: Path, streams=None):
    """``(ts, json bytes)`` of the recorded stream frames (not the snapshot line), in file order."""
    out = []
    with open_recording(path) as fh:
        for raw in fh:
            sp = raw.find(b" ")
            body = raw[sp + 1:].rstrip(b"\r\n")
            if body.startswith(b'{"stream"'):
                name = body[11:body.index(b'"', 11)].decode()
                if streams is None or name in streams:
                    out.append((int(raw[:sp]), name, body))
    return out


@contextlib.asynccontextmanager
async def running(data, tmp_path: Path, speed: float = 0, accounts=((KEY, SECRET),), sets=(), start="now",
                  ed25519_accounts=(), **settings):
    """An in-process emulator on 127.0.0.1 (a free port) with the pinned markets of config/markets: yields
    ``(emu, port)``. ``accounts``: (key, HMAC secret) pairs; ``ed25519_accounts``: (key, public key PEM)."""
    data = [Path(d) for d in data]
    config = load_config(overrides=list(sets))
    emu = build_emulator(data, config, speed, dict(settings, start=start))
    for k, s in accounts:
        emu.exchange.add_account(k, s)
    for k, pem in ed25519_accounts:
        emu.exchange.add_account(k, None, ed25519_public_pem=pem)
    port = await emu.start(0)
    try:
        yield emu, port
    finally:
        await emu.stop()


async def until(pred, timeout: float = 10.0, what: str = "condition", step: float = 0.005):
    t0 = time.monotonic()
    while not pred():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(step)


def ws_signed(params: dict, key: str = KEY, secret: str = SECRET, ts: int | None = None) -> dict:
    """WS API params with apiKey, timestamp and the HMAC signature over the sorted params."""
    p = dict(params, apiKey=key, timestamp=ts if ts is not None else int(time.time() * 1000))
    payload = "&".join(f"{k}={('true' if v is True else 'false' if v is False else v)}" for k, v in sorted(p.items()))
    p["signature"] = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
    return p


def rest_signed(params: dict, secret: str = SECRET, ts: int | None = None) -> str:
    p = dict(params, timestamp=ts if ts is not None else int(time.time() * 1000))
    q = urllib.parse.urlencode(p)
    return q + "&signature=" + hmac.new(secret.encode(), q.encode(), hashlib.sha256).hexdigest()


def ccxt_client(market: str, port: int, key: str = KEY, secret: str = SECRET):
    """Unmodified ccxt (async) with ``urls['api']`` replaced (research notes picows_ccxt.md §4.2, §4.4)."""
    import ccxt.async_support as ccxt
    base = f"http://127.0.0.1:{port}"
    if market == "binance_spot":
        ex = ccxt.binance({"apiKey": key, "secret": secret, "enableRateLimit": False,
                           "options": {"fetchCurrencies": False, "fetchMargins": False,
                                       "fetchMarkets": {"types": ["spot"]}}})
    else:
        ex = ccxt.binanceusdm({"apiKey": key, "secret": secret, "enableRateLimit": False,
                               "options": {"fetchCurrencies": False, "fetchMargins": False}})
    ex.urls["api"] = {k: base + urllib.parse.urlsplit(v).path for k, v in ex.urls["api"].items()}
    return ex


def picows_collector():
    """A picows listener class that keeps every text frame (bytes) and echoes CLOSE (research notes
    picows_ccxt.md §1.7, §3.3)."""
    from picows import WSListener, WSMsgType

    class Collector(WSListener):
        def __init__(self):
            self.frames: list[bytes] = []
            self.pings = 0
            self.close_code = None
            self.connected = self.disconnected = False

        def on_ws_connected(self, transport):
            self.connected = True

        def on_ws_frame(self, transport, frame):
            if frame.msg_type == WSMsgType.TEXT:
                self.frames.append(frame.get_payload_as_bytes())
            elif frame.msg_type == WSMsgType.CLOSE:
                self.close_code = frame.get_close_code()
                transport.send_close(frame.get_close_code(), frame.get_close_message())
                transport.disconnect()

        def on_ws_disconnected(self, transport):
            self.disconnected = True

    return Collector


async def pw_connect(url: str, **kw):
    """``(transport, listener)`` of a picows connection to ``url`` (a Collector)."""
    from picows import ws_connect
    return await ws_connect(picows_collector(), url, websocket_handshake_timeout=5, **kw)


def ws_json(transport, obj) -> None:
    from picows import WSMsgType
    transport.send(WSMsgType.TEXT, orjson.dumps(obj))


class ApiClient:
    """A picows WebSocket API client: ``await call(method, params)`` returns the answer with that id; frames without
    an ``id`` (user-data events) are kept in ``events``."""

    def __init__(self, transport, listener):
        self.t, self.l = transport, listener
        self._id = 0
        self._seen = 0
        self.answers: dict = {}
        self.events: list = []

    @classmethod
    async def connect(cls, url: str):
        t, l = await pw_connect(url)
        return cls(t, l)

    def _drain(self):
        for f in self.l.frames[self._seen:]:
            m = orjson.loads(f)
            if isinstance(m, dict) and "id" in m and ("status" in m):
                self.answers[m["id"]] = m
            else:
                self.events.append(m)
        self._seen = len(self.l.frames)

    def send(self, method: str, params: dict | None = None, rid=None):
        if rid is None:
            self._id += 1
            rid = self._id
        msg = {"id": rid, "method": method}
        if params is not None:
            msg["params"] = params
        ws_json(self.t, msg)
        return rid

    async def answer(self, rid, timeout: float = 10.0):
        def got():
            self._drain()
            return rid in self.answers
        await until(got, timeout, f"the answer to request {rid}")
        return self.answers.pop(rid)

    async def call(self, method: str, params: dict | None = None, timeout: float = 10.0):
        return await self.answer(self.send(method, params), timeout)

    async def event(self, pred, timeout: float = 10.0, what: str = "an event"):
        def got():
            self._drain()
            return any(pred(e) for e in self.events)
        await until(got, timeout, what)
        return [e for e in self.events if pred(e)]

    def close(self):
        self.t.disconnect()
