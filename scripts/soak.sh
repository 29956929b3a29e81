#!/usr/bin/env bash
# 10-minute soak: ten symbols (2 real USDⓈ-M recordings + 8 SYNTHETIC relabelled copies) paper-trading on one
# process against the emulator; prints the RSS peak and slope while trading, whether ccxt was loaded, and the
# per-event processing time. Exit 0 when RSS < 100 MB, ccxt not loaded and every event < 10 ms.
# Usage: scripts/soak.sh [seconds]   (default 600)
set -euo pipefail
cd "$(dirname "$0")/.."
# --speed 0.5: the six-minute recordings last the ten minutes (the emulator replays at half real time)
exec .venv/bin/python -m mmcore.sim.loadtest --symbols 10 --duration "${1:-600}" --speed 0.5
