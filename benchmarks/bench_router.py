"""Per-frame cost of BinanceFrameRouter.route (one orjson parse + typed decode) against orjson.loads alone, on the
first 20,000 frames of the bundled 2024 recordings, per market and per stream kind (best of 5 passes).

Run: ``.venv/bin/python benchmarks/bench_router.py``."""
from __future__ import annotations

import gzip
import sys
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mmcore.instruments import load_instrument            # noqa: E402
from mmcore.venues.binance.recording import BinanceDecoder  # noqa: E402
from mmcore.venues.binance.router import BinanceFrameRouter, PyFrameRouter  # noqa: E402

FILES = {"binance_usdm": ROOT / "data" / "usdm_btcusdt_20240808.gz",
         "binance_spot": ROOT / "data" / "spot_btcusdt_20240808.gz"}


def frames(path, n=20000):
    out = []
    with gzip.open(path, "rb") as fh:
        for raw in fh:
            sp = raw.index(b" ")
            body = raw[sp + 1:].rstrip(b"\n")
            if body.startswith(b'{"stream"'):
                kind = body[11:body.index(b'"', 11)].decode().split("@", 1)[1]
                out.append((int(raw[:sp]), kind, body))
                if len(out) >= n:
                    break
    return out


def best(fn, fs, passes=5):
    b = float("inf")
    for _ in range(passes):
        t0 = time.perf_counter()
        fn(fs)
        b = min(b, time.perf_counter() - t0)
    return b / len(fs) * 1e6


def main():
    for market, path in FILES.items():
        decs = {"BTCUSDT": BinanceDecoder(load_instrument(market, "BTCUSDT")),
                "ETHUSDT": BinanceDecoder(load_instrument(market, "ETHUSDT"))}
        r, py = BinanceFrameRouter(decs), PyFrameRouter(decs)
        fs = frames(path)
        loads, route, pyroute = orjson.loads, r.route, py.route

        def parse(fs):
            for _, _, p in fs:
                loads(p)

        def routed(fs):
            for ts, _, p in fs:
                route(ts, p)
        def pyrouted(fs):
            for ts, _, p in fs:
                pyroute(ts, p)
        kinds = sorted({k for _, k, _ in fs})
        print(f"{market}: {len(fs)} frames  orjson.loads {best(parse, fs):.2f} us  route+decode "
              f"{best(routed, fs):.2f} us (Python router {best(pyrouted, fs):.2f} us)")
        for k in kinds:
            sub = [f for f in fs if f[1] == k]
            print(f"  {k:14s} n={len(sub):6d}  loads {best(parse, sub):.2f} us  route {best(routed, sub):.2f} us  "
                  f"avg {sum(len(p) for _, _, p in sub) / len(sub):.0f} B")


if __name__ == "__main__":
    main()
