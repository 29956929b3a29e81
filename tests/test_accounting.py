"""Exact accounting: hand-computed cash, realised/unrealised PnL and the identities."""
from decimal import Decimal
from fractions import Fraction

from hypothesis import given, strategies as st

from mmcore.engine.accounting import Portfolio


def test_round_trip_with_partial_close_and_flip_hand_computed(usdm):
    p = Portfolio(usdm)                        # tick 0.1, lot 0.001 -> 0.0001 quote per tick·lot
    p.on_fill(1, 618000, 2, Decimal("0.01"))   # buy 0.002 @ 61800.0
    p.on_fill(1, 618010, 2, Decimal("0"))      # buy 0.002 @ 61801.0  -> avg 61800.5
    p.on_fill(-1, 618020, 3, Decimal("0"))     # sell 0.003 @ 61802.0 -> +1.5*0.003 = 0.0045
    p.on_fill(-1, 618000, 3, Decimal("0"))     # close 0.001 @ 61800.0 (-0.0005), open short 0.002
    mid_x2 = 2 * 618005                        # mid 61800.5
    assert p.position == -2
    assert p.realized_pnl() == Decimal("0.0040") - Decimal("0.01")
    assert p.unrealized_pnl(mid_x2) == Decimal("-0.0010")
    assert p.avg_entry_price() == Decimal("61800.0")
    assert p.mtm_pnl(mid_x2) == p.cash() + Decimal(-2) * usdm.lot_size * Decimal("61800.5")


@given(st.lists(st.tuples(st.sampled_from([1, -1]), st.integers(600000, 620000), st.integers(1, 50)),
                min_size=1, max_size=60),
       st.integers(1_200_000, 1_240_000))
def test_identities_hold_for_any_fill_sequence(fills, mid_x2):
    from mmcore.instruments import load_instrument
    inst = load_instrument("binance_usdm", "BTCUSDT")
    p = Portfolio(inst)
    for side, px, qty in fills:
        p.on_fill(side, px, qty, Decimal(px * qty) * Decimal("0.00000002"))
    assert p.position == sum(s * q for s, _, q in fills)
    mid = Decimal(mid_x2) * inst.tick_size / 2
    assert p.mtm_pnl(mid_x2) == p.cash() + inst.qty_of(p.position) * mid
    # Average-cost realised PnL is a rational number: exact in tick·lots, 50 digits once in Decimal.
    assert p.realized_tl + p.unrealized_tl(mid_x2) == Fraction(2 * p.cash_tl + p.position * mid_x2, 2)
    assert abs(p.realized_pnl() + p.unrealized_pnl(mid_x2) - p.mtm_pnl(mid_x2)) < Decimal("1e-30")
