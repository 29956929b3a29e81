"""Fill markouts at 1 s / 5 s / 30 s against the mid, the PnL split (spread capture, inventory, fees) and the
time-weighted quoting statistics:
synthetic fills and mids (labelled) with hand-computed values, and the replay of the bundled real recording,
where the split must add up to the mark-to-market PnL."""
import asyncio
from decimal import Decimal

import pytest

from mmcore.config import load_config
from mmcore.engine.markouts import Markouts
from mmcore.runners.replay import build_session, run_session, summarize

from datafiles import USDM_FILE

S = 1_000_000_000


def test_markouts_use_the_first_mid_at_or_after_each_horizon():
    mk = Markouts(Decimal("0.1"), Decimal("0.001"), horizons_s=(5, 1))          # sorted: 1 s, 5 s
    mk.on_fill(10 * S, 1, 1000, 2, 2001)          # buy 2 lots at 1000 ticks, mid 1000.5: capture +0.5 x 2
    mk.on_fill(10 * S, -1, 1003, 1, 2005)         # sell 1 at 1003, mid 1002.5: capture +0.5
    assert mk.next_due == 11 * S
    mk.on_mid(10 * S + S // 2, 2010)              # not due yet: nothing settles
    assert mk.counts == [0, 0]
    mk.on_mid(11 * S + 7, 2010)                   # 1 s: mid 1005 -> buy +5 x 2, sell -2 x 1 = +8 ticks x lots
    assert mk.counts == [2, 0] and mk.sums_x2[0] == 16 and mk.next_due == 15 * S
    mk.on_mid(15 * S, 0)                          # no book: nothing settles
    mk.on_mid(16 * S, 1990)                       # 5 s: mid 995 -> buy -5 x 2, sell +8 = -2
    out = mk.summary(Decimal("-1"), Decimal("0.5"))
    unit = 0.1 * 0.001
    assert out["markouts"]["1s"] == {"sum_quote": pytest.approx(8 * unit), "fills": 2,
                                     "mean_bps": pytest.approx(8 / 3003 * 1e4, abs=1e-3)}
    assert out["markouts"]["5s"]["sum_quote"] == pytest.approx(-2 * unit)
    assert out["spread_capture_quote"] == pytest.approx(1.5 * unit)
    assert out["inventory_pnl_quote"] == pytest.approx(-1 + 0.5 - 1.5 * unit)
    assert mk.next_due == -1


def test_replay_split_adds_up_to_the_mark_to_market_pnl():
    s = build_session(load_config(), str(USDM_FILE), market="binance_usdm")
    asyncio.run(run_session(s))
    summary = summarize(s)
    fills = summary["buy_fills"] + summary["sell_fills"]
    assert fills > 0
    for h in ("1s", "5s", "30s"):
        assert 0 < summary["markouts"][h]["fills"] <= fills
    total = summary["spread_capture_quote"] + summary["inventory_pnl_quote"] - float(summary["fees"])
    assert total == pytest.approx(float(summary["mtm_pnl"]), abs=1e-6)


def test_quote_stats_integrate_what_held_between_events():
    from types import SimpleNamespace
    from mmcore.engine.quote_stats import QuoteStats
    from mmcore_ext import orders as om
    bid = SimpleNamespace(price=999, state=om.ACCEPTED)
    ask = SimpleNamespace(price=1002, state=om.ACCEPTED)
    orders = SimpleNamespace(slots={1: [bid], -1: [ask]})
    qs = QuoteStats()
    qs.on_event(0, 999, 1001, orders)            # both quoted; bid at the touch, ask one tick out (3 wide)
    ask.state = om.PENDING_CANCEL                 # next: the ask is being cancelled: not resting
    qs.on_event(2 * S, 999, 1001, orders)
    qs.on_event(3 * S, 0, 0, orders)              # no book from here
    qs.on_event(5 * S, 999, 1001, orders)
    out = qs.summary(fills=1, orders_placed=4)
    # book valid for 3 s (0-3), both quoted 2 s; bid at the touch 3 s; ask at the touch never
    assert out["quoted_fraction"] == pytest.approx(2 / 3, abs=1e-4)
    assert out["quoted_spread_bps"] == pytest.approx(3 / 1000 * 1e4, abs=1e-3)
    assert (out["bid_at_touch"], out["ask_at_touch"], out["fill_rate"]) == (1.0, 0.0, 0.25)


def test_replay_reports_quoting_statistics():
    s = build_session(load_config(), str(USDM_FILE), market="binance_usdm")
    asyncio.run(run_session(s))
    q = summarize(s)["quoting"]
    assert 0.5 < q["quoted_fraction"] <= 1 and q["quoted_spread_bps"] >= 1.0     # strategy.min_spread_bps
    assert 0 <= q["bid_at_touch"] <= 1 and 0 < q["fill_rate"] < 1
