"""Paper trading of N symbols (default 10) on one process against the emulator, with the process's RSS sampled.

``python -m mmcore.sim.loadtest [--symbols N] [--duration S] [--speed X] [--out DIR]`` (``scripts/soak.sh`` runs
it for 10 minutes). The symbols are the two real USDⓈ-M recordings (BTCUSDT, ETHUSDT) plus SYNTHETIC relabelled
copies of them (:mod:`mmcore.sim.synthetic`; ``SYN00USDT`` ...), each a full copy of a real six-minute
recording. The emulator (``python -m mmcore emulate``) and the engine (``python -m mmcore run --venue
binance_usdm --endpoint ...``, paper) run as child processes; every ``sample_s`` the engine's resident set
(``VmRSS`` of ``/proc/<pid>/status``) is read. The result: RSS samples, their least-squares slope after the
warm-up (MB per minute), the peak, whether ccxt was loaded in the engine (it must not be: pinned markets,
``venue.strict_no_rest_markets``), the baseline cost of importing ccxt measured in a separate interpreter, and the
engine's report (per-event processing time, fills).
"""
from __future__ import annotations

import argparse
import json
import os
import select
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mmcore.sim.synthetic import relabel_recording, synthetic_markets, synthetic_names

ROOT = Path(__file__).resolve().parents[2]
REAL = {"BTCUSDT": ROOT / "data" / "usdm_btcusdt_20240808.gz", "ETHUSDT": ROOT / "data" / "usdm_ethusdt_20240808.gz"}
WARMUP_S = 15.0


def rss_mb(pid: int) -> float | None:
    """The resident set of ``pid`` (MB = 2**20 bytes), None if it is gone."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def slope_mb_per_min(samples: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of ``(t_s, rss_mb)`` samples, MB per minute (None for fewer than 3)."""
    if len(samples) < 3:
        return None
    n = len(samples)
    mt = sum(t for t, _ in samples) / n
    mr = sum(r for _, r in samples) / n
    var = sum((t - mt) ** 2 for t, _ in samples)
    return 60 * sum((t - mt) * (r - mr) for t, r in samples) / var if var else None


def import_baseline_mb() -> dict:
    """RSS (MB) of a fresh interpreter after importing the paper session's modules, and after importing ccxt
    on top: the cost the session avoids by not loading ccxt."""
    code = ("import sys; from mmcore.sim.loadtest import rss_mb; import os; import mmcore.runners.venue_run, "
            "mmcore.venues.binance.feed, mmcore.runners.live; a = rss_mb(os.getpid()); import ccxt.async_support; "
            "b = rss_mb(os.getpid()); print(a, b)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    a, b = map(float, out.stdout.split())
    return {"session_modules_mb": round(a, 1), "with_ccxt_mb": round(b, 1), "ccxt_import_mb": round(b - a, 1)}


def prepare(work: Path, n: int) -> tuple[list[str], list[Path], Path]:
    """Symbols, recordings and the markets file for ``n`` symbols (2 real + ``n - 2`` synthetic)."""
    symbols, files, names = [], [], {}
    real = list(REAL)
    for i in range(n):
        src = real[i % 2]
        if i < 2:
            symbols.append(src)
            files.append(REAL[src])
            continue
        name = synthetic_names(n)[i]
        names[name] = src
        symbols.append(name)
        files.append(relabel_recording(REAL[src], work / f"synthetic_usdm_{name.lower()}.gz", name))
    pinned = ROOT / "config" / "markets" / "binance_usdm.json"
    markets = synthetic_markets(pinned, work / "synthetic_binance_usdm.json", names)
    return symbols, files, markets


def run(n: int = 10, duration_s: float = 60.0, speed: float = 1.0, sample_s: float = 1.0,
        out: Path | None = None) -> dict:
    """Run the load test; returns the result dict (module docstring). Raises RuntimeError if a child fails."""
    work = Path(tempfile.mkdtemp(prefix="mmcore-load-"))
    out = Path(out) if out else work / "out"
    symbols, files, markets = prepare(work, n)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    emu_cmd = [sys.executable, "-m", "mmcore", "emulate", "--port", "0", "--speed", str(speed),
               "--set", f"venue.markets_file={markets}"]
    for f in files:
        emu_cmd += ["--data", str(f)]
    emu = subprocess.Popen(emu_cmd, stdout=subprocess.PIPE, stderr=open(work / "emulator.err", "wb"), cwd=ROOT,
                           env=env)
    eng = None
    try:
        ready, _, _ = select.select([emu.stdout], [], [], 60)
        line = emu.stdout.readline().decode() if ready else ""
        if not line.startswith("listening "):
            raise RuntimeError(f"emulator did not start: {line!r} " + (work / "emulator.err").read_text()[-500:])
        port = int(line.rsplit(":", 1)[1])
        eng = subprocess.Popen([sys.executable, "-m", "mmcore", "run", "--venue", "binance_usdm", "--symbols",
                                ",".join(symbols), "--endpoint", f"http://127.0.0.1:{port}", "--duration",
                                str(duration_s), "--out", str(out), "--set", f"venue.markets_file={markets}",
                                "--set", "venue.strict_no_rest_markets=true"],
                               stdout=open(work / "engine.out", "wb"), stderr=open(work / "engine.err", "wb"),
                               cwd=ROOT, env=env)
        t0 = time.monotonic()
        samples = []
        while eng.poll() is None:
            r = rss_mb(eng.pid)
            if r is not None:
                samples.append((time.monotonic() - t0, r))
            time.sleep(sample_s)
        if eng.returncode != 0:
            raise RuntimeError(f"engine exited {eng.returncode}: " + (work / "engine.err").read_text()[-2000:])
    finally:
        for p in (eng, emu):
            if p is not None and p.poll() is None:
                p.terminate()
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
    report = json.loads((out / "report.json").read_text())
    # While trading: up to the end of --duration. After it the engine stops, prints and plots (matplotlib is
    # imported for the plots then: reported apart, it is not the trading process's footprint).
    trading = [(t, r) for t, r in samples if t <= duration_s - sample_s]
    steady = [(t, r) for t, r in trading if t >= WARMUP_S]
    return {"symbols": symbols, "duration_s": duration_s, "rss_samples": samples,
            "rss_peak_mb": round(max(r for _, r in trading), 1) if trading else None,
            "rss_peak_with_report_mb": round(max(r for _, r in samples), 1) if samples else None,
            "rss_slope_mb_per_min": slope_mb_per_min(steady), "ccxt_loaded": report["total"]["ccxt_loaded"],
            "report": report, "work_dir": str(work)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m mmcore.sim.loadtest", description=__doc__.split("\n")[0])
    p.add_argument("--symbols", type=int, default=10, help="2..10 (default: %(default)s)")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of paper trading (default: %(default)s)")
    p.add_argument("--speed", type=float, default=1.0, help="the emulator's replay speed (default: %(default)s)")
    p.add_argument("--out", help="the engine's report directory")
    a = p.parse_args(argv)
    if not 2 <= a.symbols <= 10:
        p.error("--symbols must be in 2..10")
    base = import_baseline_mb()
    res = run(a.symbols, a.duration, a.speed, out=a.out)
    tot = res["report"]["total"]
    print(f"{len(res['symbols'])} symbols, {a.duration:g} s: RSS peak while trading {res['rss_peak_mb']} MB "
          f"(target < 100 MB; {res['rss_peak_with_report_mb']} MB while writing the plots at the end), "
          f"slope after {WARMUP_S:g} s {res['rss_slope_mb_per_min']:.2f} MB/min, ccxt loaded: {res['ccxt_loaded']}; "
          f"import baseline: session modules {base['session_modules_mb']} MB, +ccxt {base['ccxt_import_mb']} MB")
    fr = tot["frame_to_orders_us"]
    print(f"events {tot['events']:,}, fills {tot['fill_count']}, frame -> orders p50 {fr['p50']} / p99 {fr['p99']} / "
          f"max {fr['max']} µs (ceiling 10,000 µs)")
    print(f"details: {res['work_dir']}")
    ok = res["rss_peak_mb"] < 100 and not res["ccxt_loaded"] and (fr["max"] or 0) < 10_000
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
