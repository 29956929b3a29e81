"""Feed latency of a recording: where the simulated exchange's clock (exchange time) sits on the engine's
(local time), from the recording's own two timestamps per event.

Each recorded event has its exchange time (Binance's event time ``E``, ms: ``ts_event_ns``) and the recorder's
receive time (``ts_local_ns``). Their difference is the feed latency plus the recorder clock's offset from
Binance's; the offset dominates (the 2024 hftbacktest recorder's clock runs about 1.27 s behind Binance's: the
bundled ``usdm_btcusdt_20240808.gz`` has a median ``local - E`` of -1269.5 ms, the spot file -1272.3 ms) and
cannot be told apart from the median transport delay. :class:`FeedClock` takes the median out and puts a
chosen base delay in its place: an event with exchange time ``E`` happens at the exchange at local time

    x = E + median(local - E) - base_ns,   clamped to at most the event's own local time, never decreasing,

so the engine, which sees the event at its recorded local time, sees it ``local - x`` ns later: the recorded
jitter around the median plus ``base_ns`` (the bundled USDⓈ-M file: median + 0, 1st percentile -2.1 ms, 99th
+24 ms before the base). hftbacktest does the same kind of correction with the *minimum* instead
(``hftbacktest/data/validation.py`` ``correct_local_timestamp``), which makes the fastest event's latency the
base and every other one larger; the median keeps the typical event at the base.
"""
from __future__ import annotations

from array import array

import numpy as np

#: Largest |median offset| accepted (ns): a recording whose local clock is more than an hour off is refused.
MAX_OFFSET_NS = 3_600_000_000_000
#: Feed latencies kept for the summary's percentiles (the first this many events; 8 MB).
MAX_SAMPLES = 1 << 20


def median_offset_ns(events) -> tuple[int, int]:
    """``(median of ts_local_ns - ts_event_ns, count)`` over ``events`` that carry an exchange time
    (``ts_event_ns > 0``). Raises ValueError when none does or the median is beyond :data:`MAX_OFFSET_NS`."""
    diffs = array("q", (ev.ts_local_ns - ev.ts_event_ns for ev in events if ev.ts_event_ns > 0))
    if not diffs:
        raise ValueError("feed latency: no event with an exchange time (E) in the recording")
    med = int(np.median(np.frombuffer(diffs, dtype=np.int64)))
    if abs(med) > MAX_OFFSET_NS:
        raise ValueError(f"feed latency: the recorder's clock is {med / 1e9:.3f} s off the exchange's "
                         f"(more than {MAX_OFFSET_NS // 10**9} s)")
    return med, len(diffs)


def recording_offset_ns(reader) -> tuple[int, int]:
    """:func:`median_offset_ns` of every event of a :class:`ReplayReader` (one decoding pass over the file)."""
    return median_offset_ns(reader)


class FeedClock:
    """Exchange time of an event on the local clock (module docstring). ``offset_ns``: the median
    ``local - E``; ``base_ns``: the feed latency put at the median (>= 0)."""

    __slots__ = ("offset_ns", "base_ns", "last", "latencies")

    def __init__(self, offset_ns: int, base_ns: int = 0):
        if base_ns < 0:
            raise ValueError("feed latency base must be >= 0 ns")
        self.offset_ns = offset_ns
        self.base_ns = base_ns
        self.last = -(1 << 62)
        self.latencies = array("q")          # local - x per event (ns), the first MAX_SAMPLES: the latencies used

    def exchange_time(self, ts_event_ns: int, ts_local_ns: int) -> int:
        """The event's time at the exchange, on the local clock (ns); ``ts_event_ns`` 0 (unknown): the local
        time less the base."""
        x = (ts_event_ns + self.offset_ns if ts_event_ns > 0 else ts_local_ns) - self.base_ns
        if x > ts_local_ns:
            x = ts_local_ns
        if x < self.last:
            x = self.last
        self.last = x
        if len(self.latencies) < MAX_SAMPLES:
            self.latencies.append(ts_local_ns - x)
        return x

    def summary(self) -> dict:
        """Offset and the feed latencies used (ms percentiles of the first :data:`MAX_SAMPLES` events)."""
        lat = np.frombuffer(self.latencies, dtype=np.int64) if self.latencies else np.zeros(1, np.int64)
        p = np.percentile(lat, [1, 50, 99])
        return {"offset_ms": round(self.offset_ns / 1e6, 3), "base_ms": round(self.base_ns / 1e6, 3),
                "latency_ms_p1": round(float(p[0]) / 1e6, 3), "latency_ms_p50": round(float(p[1]) / 1e6, 3),
                "latency_ms_p99": round(float(p[2]) / 1e6, 3), "events": len(self.latencies)}
