"""Per-message decode time of MEXC protobuf frames -> compiled events: the compiled wire-format decoder
(``mmcore_ext.mexc_codec.MexcDecoder``) vs the ``protobuf`` package's generated classes + conversion
(``mmcore.venues.mexc.pbdecode.ProtobufDecoder``).

Workload: frames CONVERTED FROM BINANCE, NOT MEXC DATA (``tests/data/mexc/``, made from the real Binance spot
recording, see its README): the issue's case, one aggre depth message with 20 levels (10 bids + 10 asks, the first
20-level-or-larger depth frame of the sample cut to 10 + 10 with the generated classes), then every depth, deals
and bookTicker frame of the sample (mean per message). Each figure is the best of REPEATS runs of a Python loop
calling ``decode_frame`` (the loop's own ~30-50 ns per call included).

Target (issue 12): protobuf frame -> compiled event <= 5 µs per depth message of 20 levels (printed beside each
figure; not asserted, CI machines are noisy). Asserted: both decoders give the same events, and the compiled one
stays under a 50 µs design ceiling.
"""
import time
from pathlib import Path

from mmcore.instruments import load_instrument
from mmcore.venues.mexc import convert
from mmcore.venues.mexc.pb import PushDataV3ApiWrapper
from mmcore.venues.mexc.pbdecode import ProtobufDecoder
from mmcore_ext.mexc_codec import MexcDecoder

SAMPLE = Path(__file__).resolve().parent.parent / "tests" / "data" / "mexc" / "spot_btcusdt_20240808_head4000.mexc.gz"
REPEATS = 7
TARGET_US = 5.0
CEILING_US = 50.0


def depth20(frames):
    """One serialized 20-level aggre depth wrapper (10 bids + 10 asks) from the first frame with enough levels."""
    for raw in frames:
        w = PushDataV3ApiWrapper.FromString(raw)
        if w.WhichOneof("body") == "publicAggreDepths":
            m = w.publicAggreDepths
            if len(m.bids) >= 10 and len(m.asks) >= 10:
                del m.bids[10:]
                del m.asks[10:]
                return w.SerializeToString()
    raise AssertionError("no depth frame with 10 + 10 levels in the sample")


def per_message_us(decode, frames, loops):
    best = None
    for _ in range(REPEATS):
        t0 = time.perf_counter_ns()
        for _ in range(loops):
            for raw in frames:
                decode(0, raw)
        dt = time.perf_counter_ns() - t0
        best = dt if best is None or dt < best else best
    return best / (loops * len(frames)) / 1e3


def test_mexc_depth20_decode_compiled_vs_protobuf_package():
    inst = load_instrument("binance_spot", "BTCUSDT")
    fast, slow = MexcDecoder(inst.grid, "BTCUSDT"), ProtobufDecoder(inst.grid, "BTCUSDT")
    frames = [p for _, kind, p in convert.read_frames(SAMPLE) if kind == "pb"]
    one = depth20(frames)
    a, b = fast.decode_frame(0, one), slow.decode_frame(0, one)
    assert a.n_bids + a.n_asks == 20 and (a.bids, a.asks, a.final_update_id) == (b.bids, b.asks, b.final_update_id)

    c20 = per_message_us(fast.decode_frame, [one], 20000)
    p20 = per_message_us(slow.decode_frame, [one], 2000)
    by_kind = {}
    for raw in frames:
        by_kind.setdefault(PushDataV3ApiWrapper.FromString(raw).WhichOneof("body"), []).append(raw)
    print(f"\nMEXC protobuf decode (frames converted from Binance, not MEXC data), best of {REPEATS}, per message:")
    print(f"  aggre depth, 20 levels ({len(one)} B): compiled {c20:6.2f} µs   protobuf package {p20:6.2f} µs   "
          f"({p20 / c20:.1f}x)   target <= {TARGET_US:.0f} µs: {'met' if c20 <= TARGET_US else 'NOT met'}")
    for kind, fs in sorted(by_kind.items()):
        c = per_message_us(fast.decode_frame, fs, 3)
        p = per_message_us(slow.decode_frame, fs, 1)
        lv = sum(len(r) for r in fs) / len(fs)
        print(f"  {kind:22s} x{len(fs):5d} (mean {lv:6.0f} B): compiled {c:6.2f} µs   protobuf package {p:6.2f} µs   "
              f"({p / c:.1f}x)")
    assert c20 < CEILING_US, f"compiled decode {c20:.2f} µs exceeds the {CEILING_US:.0f} µs design ceiling"
