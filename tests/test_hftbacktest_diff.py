"""Differential check of the simulated exchange against hftbacktest (the optional ``hftbacktest`` extra, which
``.ci/run`` installs): a fixed quoting rule through both on the bundled real USDⓈ-M recording, with equivalent
queue and latency models, agrees on fill count and filled volume within the stated tolerance
(:data:`mmcore.research.hftbt_diff.TOLERANCE`, README *Differential check against hftbacktest*).

The whole run (conversion unless cached, numba JIT, both backtests for three queue models) is timed and must
stay within the budget."""
import time

import pytest

pytest.importorskip("hftbacktest", reason="hftbacktest is not installed (pip install -e '.[hftbacktest]')")

from mmcore.research import hftbt_diff as H                     # noqa: E402
from mmcore.sim.models import make_queue                        # noqa: E402

BUDGET_S = 120


@pytest.fixture(scope="module")
def result():
    t = time.perf_counter()
    r = H.compare(H.DEFAULT_DATA)
    r["elapsed"] = time.perf_counter() - t
    return r


def test_fill_count_and_volume_agree_with_hftbacktest_for_each_queue_model(result):
    assert set(result["models"]) == set(H.COMPARED)
    for name, m in result["models"].items():
        h, o = m["hftbacktest"], m["ours"]
        assert h["fills"] > 100 and o["fills"] > 100, name          # a run that trades, on both sides
        assert abs(m["fills_rel_diff"]) <= H.TOLERANCE[name], (name, h, o)
        assert abs(m["volume_rel_diff"]) <= H.TOLERANCE[name], (name, h, o)
        causes = m["ours_fill_causes"]
        assert sum(causes.values()) == o["fills"] and min(causes.values()) > 0, causes


def test_the_check_tells_queue_models_apart(result):
    """hftbacktest with another queue model (prob_power2) is outside the tolerance of our risk-averse run, so
    agreement above is not something any model would reach."""
    raw, _ = H.converted(H.DEFAULT_DATA)
    data = H.exchange_clock(raw)
    other = H.run_hftbacktest(data, 0.1, 0.001, H.snapshot_ts(raw) + H.STEP_NS, "prob_power2")
    ours = result["models"]["risk_averse"]["ours"]["fills"]
    assert abs(ours - other.fills) / other.fills > 2 * H.TOLERANCE["risk_averse"]
    # and our own models differ the same way hftbacktest's do (prob_power fills more than risk_averse)
    m = result["models"]
    assert m["prob_power"]["ours"]["fills"] > m["risk_averse"]["ours"]["fills"]
    assert m["prob_power"]["hftbacktest"]["fills"] > m["risk_averse"]["hftbacktest"]["fills"]


def test_the_whole_comparison_fits_its_budget(result):
    assert result["elapsed"] < BUDGET_S and result["jit_seconds"] < BUDGET_S


def test_our_run_is_deterministic():
    raw, _ = H.converted(H.DEFAULT_DATA)
    start = H.snapshot_ts(raw) + H.STEP_NS
    a = H.run_ours(H.DEFAULT_DATA, start, queue=make_queue("prob_power", 3.0))
    b = H.run_ours(H.DEFAULT_DATA, start, queue=make_queue("prob_power", 3.0))
    assert (a[0].fills, a[0].volume_lots, a[1]) == (b[0].fills, b[0].volume_lots, b[1])
