"""Tests of the pre-trade risk gate (mmcore_ext.risk) and its pure-Python reference (mmcore.reference.risk).

Every scenario runs against both implementations (fixture ``impl``). Test instrument: tick 0.01 USDT, lot 0.001
base units, so notional USDT = price_ticks * qty_lots * 1e-5; the mid is 100.00 USDT = 10000 ticks unless said
otherwise, and 0.5 base = 500 lots at 10000 ticks is exactly 50 USDT.
"""
import logging
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mmcore.reference.risk as reference
import mmcore_ext.risk as compiled
from mmcore.instruments import load_instrument
from mmcore.risk_config import INT64_MAX, RiskConfig

TICK = "0.01"
LOT = "0.001"
SYMBOL = "ETHUSDT"
T0 = 1_700_000_000_000_000_000  # ns
MID = 10_000  # ticks (100.00 USDT)
SEC = 1_000_000_000
BUY, SELL = 1, -1


@pytest.fixture(params=[compiled, reference], ids=["compiled", "reference"])
def impl(request):
    return request.param


def make_gate(impl, symbol=SYMBOL, mid=MID, global_exposure=None, **overrides):
    cfg = RiskConfig(**overrides)
    gate = impl.RiskGate(cfg, TICK, LOT, symbol, global_exposure)
    if mid:
        gate.on_market(T0, 2 * mid, True)
    return gate


# ------------------------------------------------------------------------------------------------ constants

def test_reason_codes_and_names_match_between_compiled_and_reference():
    assert compiled.REASON_NAMES == reference.REASON_NAMES
    assert compiled.REASON_NAMES[0] == "PASS"
    assert len(set(compiled.REASON_NAMES)) == compiled.N_REASONS
    for code, name in enumerate(compiled.REASON_NAMES):
        assert getattr(compiled, name) == code
        assert getattr(reference, name) == code
    assert compiled.STATE_NAMES == reference.STATE_NAMES == ("ACTIVE", "REDUCING", "HALTED")
    assert (compiled.ACTIVE, compiled.REDUCING, compiled.HALTED) == (0, 1, 2)
    assert (compiled.BUY, compiled.SELL) == (BUY, SELL)


def test_default_config_converts_to_instrument_units():
    lim = RiskConfig().limits(TICK, LOT, SYMBOL)
    assert lim.max_order_notional_tl == 5_000_000  # 50 USDT / 1e-5
    assert lim.max_symbol_notional_tl == 20_000_000
    assert lim.max_global_notional_usdt == 2000.0
    assert lim.max_position_lots == INT64_MAX
    assert lim.min_price_ticks == 1000  # 10 USDT
    assert lim.stale_after_ns == 5 * SEC
    assert (lim.reduce_level_usdt, lim.recover_level_usdt) == (50.0, 40.0)
    assert lim.stop_loss_usdt == math.inf
    assert lim.symbol_allowed


def test_real_binance_spot_btcusdt_order_of_50_usdt_passes_and_one_lot_more_is_refused(impl):
    ins = load_instrument("binance_spot", "BTCUSDT")  # tick 0.01, lot 1e-8
    gate = impl.RiskGate(RiskConfig(), ins.tick_size, ins.lot_size, "BTCUSDT")
    price = ins.price_to_ticks("50000.00")
    gate.on_market(T0, 2 * price, True)
    qty = ins.qty_to_lots("0.001")  # 50 USDT
    assert gate.check_order(BUY, price, qty, T0) == impl.PASS
    assert gate.check_order(BUY, price, qty + 1, T0) == impl.MAX_ORDER_NOTIONAL


# ------------------------------------------------------------------------------------------------ each reason

def test_order_within_every_default_limit_passes(impl):
    gate = make_gate(impl)
    assert gate.check_order(BUY, MID - 10, 100, T0) == impl.PASS
    assert gate.check_order(SELL, MID + 10, 100, T0) == impl.PASS
    assert sum(gate.refusals().values()) == 0


def test_max_order_notional_refuses_above_50_usdt_and_passes_at_50(impl):
    gate = make_gate(impl)
    assert gate.check_order(BUY, MID, 500, T0) == impl.PASS
    assert gate.check_order(BUY, MID, 501, T0) == impl.MAX_ORDER_NOTIONAL
    assert gate.check_order(SELL, MID + 1, 500, T0) == impl.MAX_ORDER_NOTIONAL  # 50.005 USDT


def test_max_order_notional_refuses_a_fat_finger_quantity_without_overflow(impl):
    gate = make_gate(impl)
    # 2**53 lots (the largest quantity the core accepts) at 10000 ticks: the product would pass int64
    assert gate.check_order(BUY, MID, 2**53, T0) == impl.MAX_ORDER_NOTIONAL
    assert gate.check_order(BUY, MID, 2**62, T0) == impl.INVALID_ORDER      # beyond the core's quantity bound


def test_symbol_notional_cap_counts_position_and_open_orders_of_both_sides(impl):
    gate = make_gate(impl, max_single_trade_usdt=1000.0)
    gate.on_fill(BUY, MID, 800)            # position 0.8 at mid 100 = 80 USDT
    gate.on_order_open(BUY, MID, 400)      # 40 USDT
    gate.on_order_open(SELL, MID, 300)     # 30 USDT (reduces if filled, but open exposure counts)
    # 80 + 40 + 30 + 50 = 200 -> at the cap
    assert gate.check_order(BUY, MID, 500, T0) == impl.PASS
    assert gate.check_order(BUY, MID, 501, T0) == impl.SYMBOL_NOTIONAL_CAP


def test_symbol_notional_cap_values_the_position_at_the_oracle_price_when_set(impl):
    gate = make_gate(impl, max_single_trade_usdt=1000.0)
    gate.on_fill(BUY, MID, 1500)           # 150 USDT at mid
    gate.set_oracle_price(MID + 100)       # 151.5 USDT at the oracle: 48.5 USDT of room
    assert gate.check_order(BUY, MID, 485, T0) == impl.PASS
    assert gate.check_order(BUY, MID, 486, T0) == impl.SYMBOL_NOTIONAL_CAP
    gate.set_oracle_price(0)
    assert gate.check_order(BUY, MID, 500, T0) == impl.PASS


def test_global_notional_cap_uses_the_shared_exposure(impl):
    shared = impl.GlobalExposure(1950.0)
    gate = make_gate(impl, global_exposure=shared)
    other = make_gate(impl, symbol="BTCUSDT", global_exposure=shared)
    assert gate.check_order(BUY, MID, 500, T0) == impl.PASS   # 1950 + 50 = 2000
    shared.notional_usdt = 1950.01
    assert gate.check_order(BUY, MID, 500, T0) == impl.GLOBAL_NOTIONAL_CAP
    assert other.check_order(BUY, MID, 500, T0) == impl.GLOBAL_NOTIONAL_CAP
    assert gate.check_order(BUY, MID, 499, T0) == impl.PASS


def test_exposure_usdt_sums_position_at_reference_and_open_orders(impl):
    gate = make_gate(impl)
    gate.on_fill(SELL, MID, 300)
    gate.on_order_open(BUY, MID - 100, 200)
    assert gate.exposure_usdt() == pytest.approx(30.0 + 19.8)


def test_max_position_base_counts_open_orders_on_the_same_side(impl):
    gate = make_gate(impl, max_position_base=1.0)  # 1000 lots
    gate.on_fill(BUY, MID, 600)
    assert gate.check_order(BUY, MID, 400, T0) == impl.PASS
    assert gate.check_order(BUY, MID, 401, T0) == impl.MAX_POSITION
    gate.on_order_open(BUY, MID, 100)
    assert gate.check_order(BUY, MID, 300, T0) == impl.PASS
    assert gate.check_order(BUY, MID, 301, T0) == impl.MAX_POSITION
    gate.set_position(-600)
    assert gate.check_order(SELL, MID, 400, T0) == impl.PASS
    assert gate.check_order(SELL, MID, 401, T0) == impl.MAX_POSITION


@pytest.mark.parametrize("overrides", [
    dict(net_max=4.0, max_position_fraction_of_net_max=0.25),
    dict(max_position_base=1.0, net_max=10.0, max_position_fraction_of_net_max=1.0),
    dict(max_position_base=5.0, net_max=2.0, max_position_fraction_of_net_max=0.5),
], ids=["net_max_fraction", "base_tighter", "net_max_tighter"])
def test_max_position_uses_the_tighter_of_base_and_net_max_fraction(impl, overrides):
    gate = make_gate(impl, **overrides)  # every case allows 1.0 base = 1000 lots
    gate.set_position(-600)
    assert gate.check_order(SELL, MID, 400, T0) == impl.PASS
    assert gate.check_order(SELL, MID, 401, T0) == impl.MAX_POSITION


def test_orders_that_reduce_the_position_skip_position_and_notional_caps(impl):
    gate = make_gate(impl, max_position_base=1.0, max_symbol_notional_usdt=100.0)
    gate.set_position(3000)  # over both limits, e.g. after a reconciliation
    assert gate.check_order(BUY, MID, 1, T0) == impl.MAX_POSITION
    assert gate.check_order(SELL, MID, 500, T0) == impl.PASS
    assert gate.is_reducing(SELL, 3000)
    assert not gate.is_reducing(SELL, 3001)


def test_price_band_refuses_beyond_2_percent_of_mid(impl):
    gate = make_gate(impl)
    assert gate.check_order(SELL, MID + 200, 100, T0) == impl.PASS
    assert gate.check_order(SELL, MID + 201, 100, T0) == impl.PRICE_BAND
    assert gate.check_order(BUY, MID - 200, 100, T0) == impl.PASS
    assert gate.check_order(BUY, MID - 201, 100, T0) == impl.PRICE_BAND


def test_price_band_uses_the_oracle_price_when_set(impl):
    gate = make_gate(impl)
    gate.set_oracle_price(11_000)  # band 10780..11220
    assert gate.check_order(SELL, 11_220, 100, T0) == impl.PASS
    assert gate.check_order(SELL, 11_221, 100, T0) == impl.PRICE_BAND
    assert gate.check_order(BUY, MID, 100, T0) == impl.PRICE_BAND  # fine vs own mid, not vs the oracle


def test_price_too_low_refuses_below_10_usdt(impl):
    gate = make_gate(impl, mid=1000)  # mid 10.00 USDT
    assert gate.check_order(BUY, 1000, 100, T0) == impl.PASS
    assert gate.check_order(BUY, 999, 100, T0) == impl.PRICE_TOO_LOW


def test_symbol_not_in_whitelist_is_refused(impl):
    allowed = make_gate(impl, symbol="ETHUSDT", symbol_whitelist=("BTCUSDT", "ETHUSDT"))
    refused = make_gate(impl, symbol="SOLUSDT", symbol_whitelist=("BTCUSDT", "ETHUSDT"))
    assert allowed.symbol_allowed and not refused.symbol_allowed
    assert allowed.check_order(BUY, MID, 100, T0) == impl.PASS
    assert refused.check_order(BUY, MID, 100, T0) == impl.SYMBOL_NOT_ALLOWED


def test_stale_data_after_stale_threshold_and_when_unsynced(impl):
    gate = make_gate(impl, stale_after_s=5.0)
    assert gate.check_order(BUY, MID, 100, T0 + 5 * SEC) == impl.PASS
    assert gate.check_order(BUY, MID, 100, T0 + 5 * SEC + 1) == impl.STALE_DATA
    gate.on_market(T0 + 6 * SEC, 2 * MID, False)
    assert gate.check_order(BUY, MID, 100, T0 + 6 * SEC) == impl.STALE_DATA
    gate.on_market(T0 + 7 * SEC, 2 * MID, True)
    assert gate.check_order(BUY, MID, 100, T0 + 7 * SEC) == impl.PASS


def test_gate_without_any_market_event_refuses_as_stale(impl):
    gate = make_gate(impl, mid=0)
    assert gate.check_order(BUY, MID, 100, T0) == impl.STALE_DATA


def test_no_mid_pauses_after_mid_none_limit_events_until_a_valid_mid_returns(impl):
    gate = make_gate(impl, mid_none_limit=3)
    for i in range(2):
        gate.on_market(T0 + i, 0, True)
    assert gate.check_order(BUY, MID, 100, T0 + 2) == impl.PASS  # uses the last valid mid
    gate.on_market(T0 + 3, 0, True)
    assert gate.check_order(BUY, MID, 100, T0 + 3) == impl.NO_MID
    gate.on_market(T0 + 4, 2 * MID, True)
    assert gate.check_order(BUY, MID, 100, T0 + 4) == impl.PASS


def test_no_mid_when_no_valid_mid_was_ever_seen(impl):
    gate = make_gate(impl, mid=0)
    gate.on_market(T0, 0, True)
    assert gate.check_order(BUY, MID, 100, T0) == impl.NO_MID


@pytest.mark.parametrize("side,price,qty", [(0, MID, 100), (2, MID, 100), (BUY, 0, 100), (BUY, MID, 0),
                                            (SELL, MID, -5)])
def test_invalid_order_fields_are_refused(impl, side, price, qty):
    gate = make_gate(impl)
    assert gate.check_order(side, price, qty, T0) == impl.INVALID_ORDER


def test_order_rate_refuses_the_n_plus_first_order_in_the_window_and_rolls(impl):
    gate = make_gate(impl, orders_per_window=3, window_s=1.0)
    for i in range(3):
        assert gate.check_order(BUY, MID, 100, T0 + i) == impl.PASS
        gate.note_order_sent(T0 + i)
    assert gate.check_order(BUY, MID, 100, T0 + SEC - 1) == impl.ORDER_RATE
    assert gate.check_order(BUY, MID, 100, T0 + SEC) == impl.PASS  # the first order left the window
    gate.note_order_sent(T0 + SEC)
    assert gate.check_order(BUY, MID, 100, T0 + SEC) == impl.ORDER_RATE  # orders at T0+1, T0+2, T0+SEC
    assert gate.check_order(BUY, MID, 100, T0 + SEC + 2) == impl.PASS


def test_order_rate_is_off_when_orders_per_window_is_zero(impl):
    gate = make_gate(impl, orders_per_window=0)
    for i in range(100):
        gate.note_order_sent(T0)
    assert gate.check_order(BUY, MID, 100, T0) == impl.PASS


def test_cancel_rate_refuses_the_m_plus_first_cancel_in_the_window_and_rolls(impl):
    gate = make_gate(impl, cancels_per_window=2, window_s=0.5)
    assert gate.check_cancel(T0) == impl.PASS
    gate.note_cancel_sent(T0, BUY)
    gate.note_cancel_sent(T0 + 10, SELL)
    assert gate.check_cancel(T0 + SEC // 2 - 1) == impl.CANCEL_RATE
    assert gate.check_cancel(T0 + SEC // 2) == impl.PASS
    assert gate.refusals()["CANCEL_RATE"] == 1


def test_cancel_cooldown_blocks_only_the_cancelled_side_until_it_elapses(impl):
    gate = make_gate(impl, cancel_cooldown_seconds=0.5)
    gate.note_cancel_sent(T0, BUY)
    assert gate.check_order(BUY, MID, 100, T0 + SEC // 2 - 1) == impl.CANCEL_COOLDOWN
    assert gate.check_order(SELL, MID, 100, T0 + SEC // 2 - 1) == impl.PASS
    assert gate.check_order(BUY, MID, 100, T0 + SEC // 2) == impl.PASS


def test_cancel_cooldown_is_off_by_default(impl):
    gate = make_gate(impl)
    gate.note_cancel_sent(T0, SELL)
    assert gate.check_order(SELL, MID, 100, T0) == impl.PASS


def test_check_spread_boundaries(impl):
    gate = make_gate(impl)  # 0.05% .. 0.5% of the pair's mid
    m = 100_000
    assert gate.check_spread(m - 25, m + 25) == impl.PASS       # exactly 0.05%
    assert gate.check_spread(m - 24, m + 25) == impl.SPREAD_TOO_NARROW
    assert gate.check_spread(m - 250, m + 250) == impl.PASS     # exactly 0.5%
    assert gate.check_spread(m - 250, m + 251) == impl.SPREAD_TOO_WIDE
    assert gate.check_spread(m, m) == impl.SPREAD_TOO_NARROW    # locked
    assert gate.check_spread(m + 1, m) == impl.SPREAD_TOO_NARROW  # crossed
    assert gate.check_spread(0, m) == impl.INVALID_ORDER


def test_crossed_pair_is_too_narrow_even_with_zero_min_spread(impl):
    gate = make_gate(impl, min_spread_frac=0.0)
    assert gate.check_spread(MID, MID) == impl.SPREAD_TOO_NARROW
    assert gate.check_spread(MID, MID + 1) == impl.PASS


def test_refusals_count_each_reason(impl):
    gate = make_gate(impl)
    gate.check_order(BUY, MID, 501, T0)
    gate.check_order(BUY, MID, 501, T0)
    gate.check_order(BUY, MID + 500, 1, T0)
    gate.check_order(BUY, MID, 1, T0)
    counts = gate.refusals()
    assert set(counts) == set(impl.REASON_NAMES[1:])
    assert counts["MAX_ORDER_NOTIONAL"] == 2
    assert counts["PRICE_BAND"] == 1
    assert sum(counts.values()) == 3


# ------------------------------------------------------------------------------------------------ open orders

def test_fills_and_closes_shrink_open_orders_and_move_the_position(impl):
    gate = make_gate(impl)
    gate.on_order_open(BUY, MID, 300)
    gate.on_order_open(SELL, MID + 10, 200)
    gate.on_fill(BUY, MID, 100)
    assert (gate.position_lots, gate.open_buy_qty_lots, gate.open_buy_notional_tl) == (100, 200, 200 * MID)
    gate.on_order_closed(BUY, MID, 200)
    assert (gate.open_buy_qty_lots, gate.open_buy_notional_tl) == (0, 0)
    gate.on_fill(SELL, MID + 10, 200)
    assert (gate.position_lots, gate.open_sell_qty_lots, gate.open_sell_notional_tl) == (-100, 0, 0)
    gate.on_order_closed(SELL, MID, 50)  # an unknown order never drives the open notional negative
    assert (gate.open_sell_qty_lots, gate.open_sell_notional_tl) == (0, 0)


@pytest.mark.parametrize("call", ["on_fill", "on_order_open", "on_order_closed"])
def test_order_updates_with_a_bad_side_raise(impl, call):
    gate = make_gate(impl)
    with pytest.raises(ValueError, match="side"):
        getattr(gate, call)(0, MID, 1)
    with pytest.raises(ValueError, match="side"):
        gate.note_cancel_sent(T0, 3)


# ------------------------------------------------------------------------------------------------ trading state

def test_loss_at_reduce_fraction_enters_reducing_and_just_below_does_not(impl):
    gate = make_gate(impl)  # max daily loss 100, reduce at 50
    gate.on_pnl(T0, -30.0, -19.99)
    assert gate.trading_state == impl.ACTIVE
    gate.on_pnl(T0 + 1, -30.0, -20.0)
    assert gate.trading_state == impl.REDUCING
    assert gate.state_changes == [(T0 + 1, impl.ACTIVE, impl.REDUCING, "daily loss 50.00 >= reduce level 50.00")]


def test_reducing_returns_to_active_only_below_the_hysteresis_level(impl):
    gate = make_gate(impl)  # reduce at 50, recover below 50 * (1 - 0.2) = 40
    gate.on_pnl(T0, -55.0, 0.0)
    gate.on_pnl(T0 + 1, -45.0, 0.0)
    gate.on_pnl(T0 + 2, -40.0, 0.0)
    assert gate.trading_state == impl.REDUCING
    gate.on_pnl(T0 + 3, -39.99, 0.0)
    assert gate.trading_state == impl.ACTIVE
    assert [c[:3] for c in gate.state_changes] == [(T0, impl.ACTIVE, impl.REDUCING),
                                                   (T0 + 3, impl.REDUCING, impl.ACTIVE)]


def test_reducing_refuses_orders_that_do_not_reduce_and_passes_those_that_do(impl):
    gate = make_gate(impl)
    gate.on_fill(BUY, MID, 400)
    gate.on_pnl(T0, -60.0, 0.0)
    assert gate.check_order(SELL, MID, 400, T0) == impl.PASS
    assert gate.check_order(SELL, MID, 401, T0) == impl.TRADING_REDUCING   # would flip to short
    assert gate.check_order(BUY, MID, 1, T0) == impl.TRADING_REDUCING
    gate.on_order_open(SELL, MID, 100)
    assert gate.check_order(SELL, MID, 300, T0) == impl.PASS
    assert gate.check_order(SELL, MID, 301, T0) == impl.TRADING_REDUCING   # open sells count


def test_flat_position_in_reducing_refuses_every_order(impl):
    gate = make_gate(impl)
    gate.on_pnl(T0, -50.0, 0.0)
    assert gate.check_order(BUY, MID, 1, T0) == impl.TRADING_REDUCING
    assert gate.check_order(SELL, MID, 1, T0) == impl.TRADING_REDUCING


def test_daily_loss_at_the_limit_halts_and_just_below_reduces(impl):
    gate = make_gate(impl)
    gate.on_pnl(T0, -60.0, -39.99)
    assert gate.trading_state == impl.REDUCING
    gate.on_pnl(T0 + 1, -60.0, -40.0)
    assert gate.trading_state == impl.HALTED
    assert gate.state_changes[-1] == (T0 + 1, impl.REDUCING, impl.HALTED,
                                      "daily loss 100.00 >= max_daily_loss_usdt 100.00")


def test_halt_is_sticky_until_reset_and_refuses_reducing_orders_too(impl):
    gate = make_gate(impl)
    gate.on_fill(BUY, MID, 500)
    gate.on_pnl(T0, -150.0, 0.0)
    gate.on_pnl(T0 + 1, 10.0, 0.0)
    assert gate.trading_state == impl.HALTED
    assert gate.check_order(SELL, MID, 500, T0) == impl.TRADING_HALTED
    assert gate.check_order(BUY, MID, 1, T0) == impl.TRADING_HALTED
    assert gate.check_cancel(T0) == impl.PASS  # cancelling stays possible
    gate.reset(T0 + 2)
    assert gate.trading_state == impl.ACTIVE
    assert gate.check_order(BUY, MID, 1, T0) == impl.PASS
    assert gate.state_changes[-1] == (T0 + 2, impl.HALTED, impl.ACTIVE, "reset")


def test_reset_with_the_loss_still_over_the_limit_halts_again_at_the_next_pnl(impl):
    gate = make_gate(impl)
    gate.on_pnl(T0, -150.0, 0.0)
    gate.reset(T0 + 1)
    gate.on_pnl(T0 + 2, -150.0, 0.0)
    assert gate.trading_state == impl.HALTED
    assert [c[2] for c in gate.state_changes] == [impl.HALTED, impl.ACTIVE, impl.HALTED]


def test_restored_peak_keeps_the_drawdown_stop_reference_across_a_restart(impl):
    gate = make_gate(impl, stop_loss_usdt=50.0)
    gate.restore_peak(40.0)                       # recorded before the restart
    gate.restore_peak(10.0)                       # lower: ignored
    gate.restore_peak(math.nan)                   # not finite: ignored
    assert gate.peak_pnl_usdt == 40.0
    gate.on_pnl(T0, -5.0, 0.0)                    # 45 below the peak: still active
    assert gate.trading_state == impl.ACTIVE
    gate.on_pnl(T0 + 1, -10.0, 0.0)               # 50 below the restored peak
    assert gate.trading_state == impl.HALTED and "drawdown" in gate.state_changes[-1][3]


def test_manual_halt_records_reason_and_is_recorded_once(impl):
    gate = make_gate(impl)
    gate.halt(T0, "operator kill switch")
    gate.halt(T0 + 1, "again")
    assert gate.state_changes == [(T0, impl.ACTIVE, impl.HALTED, "operator kill switch")]


def test_stop_loss_on_drawdown_from_peak_halts(impl):
    gate = make_gate(impl, stop_loss_usdt=50.0)
    gate.on_pnl(T0, 80.0, 0.0)
    gate.on_pnl(T0 + 1, 80.0, -49.99)
    assert gate.trading_state == impl.ACTIVE
    gate.on_pnl(T0 + 2, 60.0, -30.0)  # PnL 30, peak 80
    assert gate.trading_state == impl.HALTED
    assert gate.state_changes[-1][3].startswith("drawdown 50.00 from peak PnL 80.00")


def test_stop_loss_on_unrealized_loss_halts_even_with_realized_profit(impl):
    gate = make_gate(impl, stop_loss_usdt=50.0)
    gate.on_pnl(T0, 100.0, -49.99)
    assert gate.trading_state == impl.ACTIVE
    gate.on_pnl(T0 + 1, 100.0, -50.0)
    assert gate.trading_state == impl.HALTED
    assert gate.state_changes[-1][3] == "unrealized loss 50.00 >= stop_loss_usdt 50.00"


def test_non_finite_pnl_halts(impl):
    gate = make_gate(impl)
    gate.on_pnl(T0, float("nan"), 0.0)
    assert gate.trading_state == impl.HALTED


def test_reduce_at_fraction_none_never_reduces(impl):
    gate = make_gate(impl, reduce_at_fraction=None)
    gate.on_pnl(T0, -99.99, 0.0)
    assert gate.trading_state == impl.ACTIVE


def test_each_state_change_is_logged_once_on_mmcore_risk(impl, caplog):
    gate = make_gate(impl)
    with caplog.at_level(logging.INFO, logger="mmcore.risk"):
        gate.on_pnl(T0, -60.0, 0.0)
        gate.on_pnl(T0 + 1, -59.0, 0.0)  # no change
        gate.halt(T0 + 2, "manual")
        gate.reset(T0 + 3)
    assert [r.name for r in caplog.records] == ["mmcore.risk"] * 3


# ------------------------------------------------------------------------------------------------ config

@pytest.mark.parametrize("field,value", [
    ("max_single_trade_usdt", 0.0),
    ("max_symbol_notional_usdt", -1.0),
    ("max_global_notional_usdt", float("nan")),
    ("max_position_base", 0.0),
    ("net_max", -2.0),
    ("max_position_fraction_of_net_max", 1.5),
    ("max_price_deviation", 0.0),
    ("min_spread_frac", -0.1),
    ("max_spread_frac", 0.0001),  # below min_spread_frac
    ("min_price", -1.0),
    ("symbol_whitelist", ("BTCUSDT", "")),
    ("symbol_whitelist", "BTCUSDT"),
    ("stale_after_s", 0.0),
    ("mid_none_limit", 0),
    ("mid_none_limit", 2.5),
    ("max_daily_loss_usdt", 0.0),
    ("stop_loss_usdt", -5.0),
    ("reduce_at_fraction", 0.0),
    ("hysteresis_fraction", 1.0),
    ("orders_per_window", -1),
    ("cancels_per_window", 1.5),
    ("window_s", 0.0),
    ("cancel_cooldown_seconds", -0.5),
    ("flatten_on_halt", "yes"),
])
def test_invalid_config_field_raises_value_error_naming_field_and_value(field, value):
    with pytest.raises(ValueError) as err:
        RiskConfig(**{field: value})
    msg = str(err.value)
    assert f"RiskConfig.{field}" in msg and repr(value) in msg


def test_validate_on_an_existing_config_reports_the_allowed_range():
    cfg = RiskConfig()
    object.__setattr__(cfg, "max_price_deviation", 2.0)
    with pytest.raises(ValueError, match=r"max_price_deviation = 2.0: must be a number in \(0, 1\)"):
        cfg.validate()


def test_whitelist_given_as_list_is_stored_as_tuple():
    assert RiskConfig(symbol_whitelist=["BTCUSDT"]).symbol_whitelist == ("BTCUSDT",)


def test_compiled_gate_rejects_a_non_config_and_a_zero_tick():
    with pytest.raises(TypeError):
        compiled.RiskGate({"max_single_trade_usdt": 50}, TICK, LOT, SYMBOL)
    with pytest.raises(ValueError, match="tick_size"):
        compiled.RiskGate(RiskConfig(), "0", LOT, SYMBOL)


# ------------------------------------------------------------------------------------------------ differential

_ts = st.one_of(st.just(0), st.integers(1, 10**7), st.integers(1, 10**8), st.integers(10**8, 3 * SEC))  # ns/step
_side = st.sampled_from([BUY, SELL])
_price = st.integers(MID - 250, MID + 250)
_qty = st.integers(1, 800)
_check_order = st.tuples(st.just("check_order"), st.sampled_from([BUY, SELL] * 4 + [0]), _price,
                         st.integers(1, 600))
_on_market = st.tuples(st.just("on_market"), st.sampled_from([0, 2 * MID - 50, 2 * MID, 2 * MID + 70]),
                       st.sampled_from([True, True, True, False]))
_ops = st.one_of(  # repeated entries make the common events more frequent
    _check_order, _check_order, _check_order, _check_order,
    _on_market, _on_market,
    st.tuples(st.just("check_spread"), _price, _price),
    st.tuples(st.just("check_cancel")),
    st.tuples(st.just("on_fill"), _side, _price, _qty),
    st.tuples(st.just("on_order_open"), _side, _price, _qty),
    st.tuples(st.just("on_order_closed"), _side, _price, _qty),
    st.tuples(st.just("note_order_sent")), st.tuples(st.just("note_order_sent")),
    st.tuples(st.just("note_cancel_sent"), _side),
    st.tuples(st.just("on_pnl"), st.floats(-60, 30, allow_nan=False), st.floats(-30, 15, allow_nan=False)),
    st.tuples(st.just("set_oracle_price"), st.sampled_from([0, MID - 100, MID + 150])),
    st.tuples(st.just("set_global"), st.floats(1800, 2000, allow_nan=False)),
    st.tuples(st.just("set_position"), st.integers(-1500, 1500)),
    st.tuples(st.just("halt_or_reset"), st.sampled_from(["halt", "reset", "reset"])),
)
_configs = st.fixed_dictionaries({
    "max_position_base": st.sampled_from([None, 0.5, 1.5]),
    "max_symbol_notional_usdt": st.sampled_from([100.0, 200.0]),
    "stale_after_s": st.sampled_from([1.0, 5.0]),
    "mid_none_limit": st.integers(1, 3),
    "stop_loss_usdt": st.sampled_from([None, 40.0]),
    "orders_per_window": st.integers(0, 4),
    "cancels_per_window": st.integers(0, 4),
    "window_s": st.sampled_from([0.1, 1.0]),
    "cancel_cooldown_seconds": st.sampled_from([0.0, 0.05]),
})


@settings(max_examples=300, deadline=None)
@given(cfg=_configs, steps=st.lists(st.tuples(_ts, _ops), min_size=10, max_size=120))
def test_compiled_gate_agrees_with_reference_on_random_sequences(cfg, steps):
    config = RiskConfig(**cfg)
    gates = [impl.RiskGate(config, TICK, LOT, SYMBOL, impl.GlobalExposure()) for impl in (compiled, reference)]
    for g in gates:
        g.on_market(T0, 2 * MID, True)
    ts = T0
    for dt, op in steps:
        ts += dt  # time only moves forward
        results = [apply(g, ts, op) for g in gates]
        assert results[0] == results[1], (op, ts)
    c, r = gates
    assert c.refusals() == r.refusals()
    assert c.state_changes == r.state_changes
    for name in ("trading_state", "position_lots", "open_buy_qty_lots", "open_sell_qty_lots",
                 "open_buy_notional_tl", "open_sell_notional_tl", "mid_none_count", "daily_loss_usdt",
                 "peak_pnl_usdt"):
        assert getattr(c, name) == getattr(r, name), name
    assert c.exposure_usdt() == r.exposure_usdt()


def apply(gate, ts, op):
    name, args = op[0], op[1:]
    if name == "check_order":
        return gate.check_order(*args, ts)
    if name == "check_spread":
        return gate.check_spread(*args)
    if name == "check_cancel":
        return gate.check_cancel(ts)
    if name == "on_market":
        return gate.on_market(ts, *args)
    if name == "note_order_sent":
        return gate.note_order_sent(ts)
    if name == "note_cancel_sent":
        return gate.note_cancel_sent(ts, *args)
    if name == "on_pnl":
        return gate.on_pnl(ts, *args)
    if name == "set_global":
        gate.global_exposure.notional_usdt = args[0]
        return None
    if name == "halt_or_reset":
        return gate.halt(ts, "random halt") if args[0] == "halt" else gate.reset(ts)
    return getattr(gate, name)(*args)


# ------------------------------------------------------------------------------------------------ hostile numbers
# Every int64 boundary (issue 8): the compiled gate must agree with the reference's exact Python integers, raise
# only the documented ValueError, and never wrap. Before the fix it wrapped (e.g. ``abs_pos * ref_x2``,
# ``ts - last_market_ns``, ``ts + cooldown``, ``price * qty`` of an open order) and disagreed.
I64 = [-2**63, -2**63 + 1, -2**62, -1, 0, 1, 2, 2**31, 2**53 - 1, 2**53, 2**53 + 1, 2**62, 2**62 + 1, 2**63 - 2,
       2**63 - 1]
_xint = st.sampled_from(I64 + [MID, 2 * MID, 500])
_xts = st.sampled_from([-2**63, -2**63 + 1, -1, 0, T0, T0 + SEC, 2**63 - 2, 2**63 - 1])
_xops = st.one_of(
    st.tuples(st.just("check_order"), st.sampled_from([BUY, SELL, 0]), _xint, _xint),
    st.tuples(st.just("on_market"), _xint, st.booleans()),
    st.tuples(st.just("check_spread"), _xint, _xint),
    st.tuples(st.just("check_cancel")),
    st.tuples(st.just("on_fill"), _side, _xint, _xint),
    st.tuples(st.just("on_order_open"), _side, _xint, _xint),
    st.tuples(st.just("on_order_closed"), _side, _xint, _xint),
    st.tuples(st.just("note_order_sent")),
    st.tuples(st.just("note_cancel_sent"), _side),
    st.tuples(st.just("set_oracle_price"), _xint),
    st.tuples(st.just("set_position"), _xint),
    st.tuples(st.just("is_reducing"), _side, _xint),
)


def apply_catching(gate, ts, op):
    try:
        return apply(gate, ts, op)
    except ValueError as exc:
        return ("ValueError", str(exc).split(":")[0])


@settings(max_examples=300, deadline=None)
@given(cfg=_configs, steps=st.lists(st.tuples(_xts, _xops), min_size=5, max_size=60))
def test_compiled_gate_agrees_with_reference_at_every_int64_boundary(cfg, steps):
    config = RiskConfig(**{**cfg, "max_single_trade_usdt": 1e12, "max_symbol_notional_usdt": 1e12})
    gates = [impl.RiskGate(config, TICK, LOT, SYMBOL, impl.GlobalExposure()) for impl in (compiled, reference)]
    for g in gates:
        g.on_market(T0, 2 * MID, True)
    for ts, op in steps:                               # times jump anywhere in int64, backwards too
        results = [apply_catching(g, ts, op) for g in gates]
        assert results[0] == results[1], (op, ts)
        c, r = gates
        for name in ("position_lots", "open_buy_qty_lots", "open_sell_qty_lots", "open_buy_notional_tl",
                     "open_sell_notional_tl", "mid_x2_ticks", "oracle_price_ticks"):
            assert getattr(c, name) == getattr(r, name), (name, op, ts)
        assert abs(c.position_lots) <= 2**62 and 0 <= c.open_buy_notional_tl <= 2**63 - 1
        assert c.exposure_usdt() == r.exposure_usdt()
    assert gates[0].refusals() == gates[1].refusals()


def test_position_and_reference_near_the_bounds_hit_the_symbol_cap_instead_of_wrapping(impl):
    gate = make_gate(impl, max_single_trade_usdt=1e12, max_symbol_notional_usdt=1e12)
    gate.set_position(2**62)                     # |position| * 2 * mid = 2**62 * 20000 wrapped to 0 before
    assert gate.check_order(BUY, MID, 1, T0) == impl.SYMBOL_NOTIONAL_CAP
    assert gate.exposure_usdt() == pytest.approx(2**62 * MID * 1e-5)


@pytest.mark.parametrize("call", [
    lambda g: g.set_position(2**62 + 1), lambda g: g.set_position(-2**63), lambda g: g.set_oracle_price(2**53 + 1),
    lambda g: g.on_fill(BUY, 2**53 + 1, 1), lambda g: g.on_fill(BUY, MID, 2**53 + 1),
    lambda g: g.on_fill(SELL, MID, -1),
    lambda g: g.on_order_open(BUY, MID, -5), lambda g: g.on_order_open(SELL, 0, 5),
    lambda g: g.on_order_closed(BUY, MID, -2**63), lambda g: g.on_order_closed(SELL, 2**63 - 1, 1),
])
def test_out_of_range_state_updates_raise_value_error_and_change_nothing(impl, call):
    gate = make_gate(impl)
    gate.on_order_open(BUY, MID, 100)
    before = (gate.position_lots, gate.open_buy_qty_lots, gate.open_buy_notional_tl, gate.oracle_price_ticks)
    with pytest.raises(ValueError):
        call(gate)
    assert (gate.position_lots, gate.open_buy_qty_lots, gate.open_buy_notional_tl, gate.oracle_price_ticks) == before


def test_open_notional_that_would_pass_int64_raises(impl):
    gate = make_gate(impl)
    gate.on_order_open(BUY, 2**53, 2**9)              # 2**62 tick*lots
    with pytest.raises(ValueError):
        gate.on_order_open(BUY, 2**53, 2**9)          # 2**63: one past int64
    assert gate.open_buy_notional_tl == 2**62 and gate.open_buy_qty_lots == 2**9


def test_position_accumulated_by_fills_stays_within_the_bound(impl):
    gate = make_gate(impl)
    gate.set_position(2**62 - 2**53 + 1)
    with pytest.raises(ValueError):
        gate.on_fill(BUY, MID, 2**53)
    assert gate.position_lots == 2**62 - 2**53 + 1
    gate.on_fill(BUY, MID, 2**53 - 1)
    assert gate.position_lots == 2**62


@pytest.mark.parametrize("ts", [2**63 - 1, 2**63 - 2])
def test_cancel_cooldown_near_the_end_of_int64_time_saturates_instead_of_wrapping(impl, ts):
    gate = make_gate(impl, cancel_cooldown_seconds=1.0, stale_after_s=1e9)
    gate.on_market(ts - 1, 2 * MID, True)
    gate.note_cancel_sent(ts - 1, BUY)               # ts - 1 + 1 s wrapped to a time far in the past before
    assert gate.check_order(BUY, MID, 1, ts - 1) == impl.CANCEL_COOLDOWN


def test_time_going_back_to_the_int64_minimum_is_not_stale_data_by_wrapping(impl):
    gate = make_gate(impl)
    # ts - last = -2**63 - T0 wrapped to a large positive age (STALE_DATA) before; it is a time in the past (it is
    # still before the initial cooldown end 0, which is the next check)
    assert gate.check_order(BUY, MID, 1, -2**63) == impl.CANCEL_COOLDOWN


@pytest.mark.parametrize("bid, ask", [(2**63 - 1, 2**63 - 1), (2**53 + 1, 2**53 + 2), (1, 2**63 - 1), (-2**63, 5)])
def test_check_spread_with_prices_outside_the_bound_is_invalid(impl, bid, ask):
    assert make_gate(impl).check_spread(bid, ask) == impl.INVALID_ORDER


@pytest.mark.parametrize("price, qty", [(2**53 + 1, 1), (2**62, 1), (MID, 2**53 + 1), (2**63 - 1, 2**63 - 1)])
def test_order_outside_the_price_or_quantity_bound_is_invalid(impl, price, qty):
    assert make_gate(impl).check_order(BUY, price, qty, T0) == impl.INVALID_ORDER


def test_a_mid_above_the_book_bound_is_no_valid_mid(impl):
    gate = make_gate(impl, mid=0, mid_none_limit=1)
    gate.on_market(T0, 2**63 - 1, True)              # was taken as the reference; 2 * price - ref overflowed
    assert gate.mid_x2_ticks == 0 and gate.check_order(BUY, MID, 1, T0) == impl.NO_MID
