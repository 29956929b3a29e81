"""A 60-second RSS-slope check: ten symbols paper-trading on one process against the emulator (2 real + 8
SYNTHETIC relabelled copies) keep a bounded resident set while trading and never load ccxt (pinned markets,
``venue.strict_no_rest_markets``). The 10-minute version is ``scripts/soak.sh``."""
from mmcore.sim.loadtest import run


def test_ten_symbols_for_60_s_keep_rss_flat_and_bounded_without_ccxt():
    res = run(10, 60)
    assert not res["ccxt_loaded"]
    assert res["rss_peak_mb"] < 100, res["rss_samples"]
    # Growth after the warm-up: the books' levels and the bounded timing reservoirs fill; a leak of a few
    # bytes per event would show as tens of MB per minute at ~2,000 events/s.
    assert res["rss_slope_mb_per_min"] < 10, res["rss_samples"]
    tot = res["report"]["total"]
    assert tot["events"] > 10_000 and tot["shutdown_clean"]
    assert set(res["report"]["symbols"]) == set(res["symbols"])
