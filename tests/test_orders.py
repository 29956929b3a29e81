"""Order state machine (mmcore_ext.orders) and its pure-Python reference (mmcore.reference.orders).

The expected table below is written out from the design (module docstring of mmcore_ext/orders.pyx), not
read from ``next_state``; every (state, event) pair is checked on both implementations.
"""
import itertools
import re
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mmcore.reference.orders as R
import mmcore_ext.orders as C

IMPLS = [pytest.param(C, id="compiled"), pytest.param(R, id="reference")]

STATES = ("INITIALIZED", "SUBMITTED", "ACCEPTED", "PARTIALLY_FILLED", "FILLED", "PENDING_CANCEL", "CANCELED",
          "REJECTED", "EXPIRED", "PENDING_REPLACE")
EVENTS = ("SUBMIT", "ACK", "REJECT", "FILL", "CANCEL_REQUEST", "CANCEL_ACK", "CANCEL_REJECT", "EXPIRE",
          "REPLACE_REQUEST", "REPLACE_ACK", "REPLACE_REJECT")
TERMINAL = {"FILLED", "CANCELED", "REJECTED", "EXPIRED"}

# (state, event) -> target; absent pairs are illegal. FILL: partial-fill target. RESTORE: back to prev_state.
EXPECTED = {
    ("INITIALIZED", "SUBMIT"): "SUBMITTED",
    ("SUBMITTED", "ACK"): "ACCEPTED",
    ("SUBMITTED", "REJECT"): "REJECTED",
    ("SUBMITTED", "FILL"): "PARTIALLY_FILLED",
    ("SUBMITTED", "CANCEL_REQUEST"): "PENDING_CANCEL",
    ("SUBMITTED", "CANCEL_ACK"): "CANCELED",
    ("SUBMITTED", "EXPIRE"): "EXPIRED",
    ("ACCEPTED", "ACK"): "ACCEPTED",
    ("ACCEPTED", "FILL"): "PARTIALLY_FILLED",
    ("ACCEPTED", "CANCEL_REQUEST"): "PENDING_CANCEL",
    ("ACCEPTED", "CANCEL_ACK"): "CANCELED",
    ("ACCEPTED", "EXPIRE"): "EXPIRED",
    ("ACCEPTED", "REPLACE_REQUEST"): "PENDING_REPLACE",
    ("PARTIALLY_FILLED", "ACK"): "PARTIALLY_FILLED",
    ("PARTIALLY_FILLED", "FILL"): "PARTIALLY_FILLED",
    ("PARTIALLY_FILLED", "CANCEL_REQUEST"): "PENDING_CANCEL",
    ("PARTIALLY_FILLED", "CANCEL_ACK"): "CANCELED",
    ("PARTIALLY_FILLED", "EXPIRE"): "EXPIRED",
    ("PARTIALLY_FILLED", "REPLACE_REQUEST"): "PENDING_REPLACE",
    ("FILLED", "ACK"): "FILLED",
    ("FILLED", "CANCEL_REJECT"): "FILLED",
    ("FILLED", "REPLACE_ACK"): "FILLED",
    ("FILLED", "REPLACE_REJECT"): "FILLED",
    ("PENDING_CANCEL", "ACK"): "PENDING_CANCEL",
    ("PENDING_CANCEL", "REJECT"): "REJECTED",
    ("PENDING_CANCEL", "FILL"): "PENDING_CANCEL",
    ("PENDING_CANCEL", "CANCEL_ACK"): "CANCELED",
    ("PENDING_CANCEL", "CANCEL_REJECT"): "RESTORE",
    ("PENDING_CANCEL", "EXPIRE"): "EXPIRED",
    ("CANCELED", "ACK"): "CANCELED",
    ("CANCELED", "FILL"): "CANCELED",
    ("CANCELED", "CANCEL_ACK"): "CANCELED",
    ("CANCELED", "CANCEL_REJECT"): "CANCELED",
    ("CANCELED", "REPLACE_ACK"): "CANCELED",
    ("CANCELED", "REPLACE_REJECT"): "CANCELED",
    ("REJECTED", "REJECT"): "REJECTED",
    ("REJECTED", "CANCEL_REJECT"): "REJECTED",
    ("EXPIRED", "ACK"): "EXPIRED",
    ("EXPIRED", "CANCEL_REJECT"): "EXPIRED",
    ("EXPIRED", "EXPIRE"): "EXPIRED",
    ("EXPIRED", "REPLACE_ACK"): "EXPIRED",
    ("EXPIRED", "REPLACE_REJECT"): "EXPIRED",
    ("PENDING_REPLACE", "ACK"): "PENDING_REPLACE",
    ("PENDING_REPLACE", "FILL"): "PENDING_REPLACE",
    ("PENDING_REPLACE", "CANCEL_ACK"): "CANCELED",
    ("PENDING_REPLACE", "EXPIRE"): "EXPIRED",
    ("PENDING_REPLACE", "REPLACE_ACK"): "RESTORE",
    ("PENDING_REPLACE", "REPLACE_REJECT"): "RESTORE",
}

PX, QTY = 100, 10   # canonical order: 10 lots at 100 ticks

FIELDS = ("client_order_id", "venue_order_id", "side", "price", "qty", "filled", "remaining", "state", "prev_state",
          "ts_created_ns", "ts_last_ns", "fill_count", "duplicate_fills", "fill_notional", "avg_price",
          "pending_price", "pending_qty")


def snapshot(order, with_error=False):
    fields = FIELDS + ("last_error",) if with_error else FIELDS
    return {f: getattr(order, f) for f in fields}


def new_order(m, qty=QTY):
    return m.Order("mm-1", 1, PX, qty, 1_000)


def order_in(m, state):
    """A canonical order in ``state`` (events at ts 2000, 3000, ...)."""
    o = new_order(m)
    steps = {
        "INITIALIZED": [],
        "SUBMITTED": ["SUBMIT"],
        "ACCEPTED": ["SUBMIT", "ACK"],
        "PARTIALLY_FILLED": ["SUBMIT", "ACK", ("fill", 3)],
        "FILLED": ["SUBMIT", "ACK", ("fill", QTY)],
        "PENDING_CANCEL": ["SUBMIT", "ACK", "CANCEL_REQUEST"],
        "CANCELED": ["SUBMIT", "ACK", "CANCEL_REQUEST", "CANCEL_ACK"],
        "REJECTED": ["SUBMIT", "REJECT"],
        "EXPIRED": ["SUBMIT", "ACK", "EXPIRE"],
        "PENDING_REPLACE": ["SUBMIT", "ACK", "REPLACE_REQUEST"],
    }[state]
    for i, step in enumerate(steps):
        ts = 2_000 + 1_000 * i
        if isinstance(step, tuple):
            rc = o.fill(1, PX, step[1], ts)
        elif step == "ACK":
            rc = o.ack("V-1", ts)
        elif step == "REPLACE_REQUEST":
            rc = o.request_replace(PX + 1, QTY + 5, ts)
        else:
            rc = o.apply(getattr(m, step), ts)
        assert rc == m.OK
    assert o.state == getattr(m, state)
    return o


def drive(m, o, event, ts):
    """Send ``event`` through the method that carries it (FILL: 1 lot with trade id 99)."""
    if event == "FILL":
        return o.fill(99, PX, 1, ts)
    if event == "REPLACE_REQUEST":
        return o.request_replace(PX + 2, QTY + 2, ts)
    if event == "ACK":
        return o.ack("V-2", ts)
    return o.apply(getattr(m, event), ts)


# --- constants and table ---------------------------------------------------------------------------------

@pytest.mark.parametrize("m", IMPLS)
def test_state_and_event_constants_match_their_names(m):
    assert m.STATE_NAMES == STATES
    assert m.EVENT_NAMES == EVENTS
    assert [getattr(m, s) for s in STATES] == list(range(10)) and m.N_STATES == 10
    assert [getattr(m, e) for e in EVENTS] == list(range(11)) and m.N_EVENTS == 11
    assert (m.OK, m.DUPLICATE, m.ILLEGAL, m.OVERFILL, m.INVALID, m.RESTORE) == (0, 1, -1, -2, -3, -2)
    assert sorted(m.TERMINAL_STATES) == sorted(getattr(m, s) for s in TERMINAL)


@pytest.mark.parametrize("m", IMPLS)
@pytest.mark.parametrize("state,event", list(itertools.product(STATES, EVENTS)))
def test_next_state_table_cell_matches_expected(m, state, event):
    want = EXPECTED.get((state, event))
    cell = m.next_state(getattr(m, state), getattr(m, event))
    assert cell == (m.ILLEGAL if want is None else getattr(m, want))


@pytest.mark.parametrize("m", IMPLS)
@pytest.mark.parametrize("state,event", list(itertools.product(STATES, EVENTS)))
def test_every_state_event_pair_transitions_or_is_refused_unchanged(m, state, event):
    o = order_in(m, state)
    before = snapshot(o)
    rc = drive(m, o, event, 99_000)
    want = EXPECTED.get((state, event))
    if want is None:
        assert rc == m.ILLEGAL
        assert o.last_error == f"illegal transition: {state} + {event}"
        assert state in o.last_error and event in o.last_error
        assert snapshot(o) == before
    else:
        assert rc == m.OK, o.last_error
        # canonical pending states were entered from ACCEPTED with nothing filled
        assert o.state == getattr(m, "ACCEPTED" if want == "RESTORE" else want)
        assert o.ts_last_ns == 99_000


@pytest.mark.parametrize("m", IMPLS)
def test_transition_error_names_state_and_event(m):
    assert m.transition_error(m.FILLED, m.CANCEL_REQUEST) == "illegal transition: FILLED + CANCEL_REQUEST"
    o = order_in(m, "FILLED")
    assert o.apply(m.CANCEL_REQUEST, 5) == m.ILLEGAL
    assert o.last_error == "illegal transition: FILLED + CANCEL_REQUEST"


@pytest.mark.parametrize("m", IMPLS)
@pytest.mark.parametrize("state,event", [(-1, 0), (10, 0), (0, -1), (0, 11)])
def test_table_lookups_out_of_range_raise_value_error(m, state, event):
    with pytest.raises(ValueError):
        m.next_state(state, event)
    with pytest.raises(ValueError):
        m.transition_error(state, event)


@pytest.mark.parametrize("m", IMPLS)
@pytest.mark.parametrize("event", [-1, 11, 3, 8])
def test_apply_refuses_out_of_range_and_quantity_events_with_value_error(m, event):
    o = order_in(m, "ACCEPTED")
    before = snapshot(o, with_error=True)
    with pytest.raises(ValueError):
        o.apply(event, 5)
    assert snapshot(o, with_error=True) == before


# --- construction and readonly fields ----------------------------------------------------------------------

@pytest.mark.parametrize("m", IMPLS)
def test_new_order_starts_initialized_with_nothing_filled(m):
    o = m.Order("mm-7", -1, 250, 4, 123)
    assert (o.client_order_id, o.venue_order_id, o.side, o.price, o.qty) == ("mm-7", None, -1, 250, 4)
    assert (o.state, o.prev_state, o.filled, o.remaining) == (m.INITIALIZED, m.INITIALIZED, 0, 4)
    assert (o.ts_created_ns, o.ts_last_ns, o.fill_count, o.duplicate_fills, o.fill_notional) == (123, 123, 0, 0, 0)
    assert o.avg_price is None and o.last_error is None


@pytest.mark.parametrize("m", IMPLS)
@pytest.mark.parametrize("args", [("", 1, 100, 1), ("a", 0, 100, 1), ("a", 2, 100, 1), ("a", 1, 0, 1),
                                  ("a", 1, 100, 0), ("a", -1, -5, 1)])
def test_order_constructor_rejects_bad_arguments(m, args):
    with pytest.raises(ValueError):
        m.Order(*args, 0)


@pytest.mark.parametrize("field", FIELDS + ("last_error",))
def test_compiled_order_fields_are_readonly(field):
    o = new_order(C)
    with pytest.raises(AttributeError):
        setattr(o, field, 1)


# --- real-world orderings ----------------------------------------------------------------------------------

@pytest.mark.parametrize("m", IMPLS)
def test_partial_fill_after_cancel_request_stays_pending_cancel(m):
    o = order_in(m, "PENDING_CANCEL")
    assert o.fill(7, PX, 4, 10) == m.OK
    assert (o.state, o.filled, o.remaining, o.prev_state) == (m.PENDING_CANCEL, 4, 6, m.ACCEPTED)


@pytest.mark.parametrize("m", IMPLS)
def test_full_fill_after_cancel_request_fills_and_absorbs_the_cancel_reject(m):
    o = order_in(m, "PENDING_CANCEL")
    assert o.fill(7, PX, QTY, 10) == m.OK
    assert (o.state, o.remaining) == (m.FILLED, 0)
    assert o.apply(m.CANCEL_REJECT, 11) == m.OK     # "Unknown order": it filled first
    assert o.state == m.FILLED


@pytest.mark.parametrize("m", IMPLS)
def test_partial_fill_before_ack_then_late_ack_keeps_partially_filled_and_records_venue_id(m):
    o = order_in(m, "SUBMITTED")
    assert o.fill(7, PX, 2, 10) == m.OK
    assert o.state == m.PARTIALLY_FILLED
    assert o.ack("V-9", 11) == m.OK
    assert (o.state, o.venue_order_id, o.filled) == (m.PARTIALLY_FILLED, "V-9", 2)


@pytest.mark.parametrize("m", IMPLS)
def test_full_fill_before_ack_goes_filled(m):
    o = order_in(m, "SUBMITTED")
    assert o.fill(7, PX, QTY, 10) == m.OK
    assert (o.state, o.remaining) == (m.FILLED, 0)
    assert o.ack("V-9", 11) == m.OK and o.state == m.FILLED


@pytest.mark.parametrize("m", IMPLS)
def test_cancel_reject_restores_accepted(m):
    o = order_in(m, "PENDING_CANCEL")
    assert o.apply(m.CANCEL_REJECT, 10) == m.OK
    assert (o.state, o.prev_state) == (m.ACCEPTED, m.PENDING_CANCEL)


@pytest.mark.parametrize("m", IMPLS)
def test_cancel_reject_after_fills_restores_partially_filled(m):
    o = order_in(m, "PENDING_CANCEL")      # requested from ACCEPTED
    assert o.fill(7, PX, 3, 10) == m.OK
    assert o.apply(m.CANCEL_REJECT, 11) == m.OK
    assert (o.state, o.filled, o.remaining) == (m.PARTIALLY_FILLED, 3, 7)


@pytest.mark.parametrize("m", IMPLS)
def test_cancel_reject_restores_partially_filled_when_requested_from_it(m):
    o = order_in(m, "PARTIALLY_FILLED")
    assert o.apply(m.CANCEL_REQUEST, 10) == m.OK and o.prev_state == m.PARTIALLY_FILLED
    assert o.apply(m.CANCEL_REJECT, 11) == m.OK
    assert o.state == m.PARTIALLY_FILLED


@pytest.mark.parametrize("m", IMPLS)
def test_cancel_before_ack_rejected_restores_submitted_or_accepted_after_late_ack(m):
    o = order_in(m, "SUBMITTED")
    assert o.apply(m.CANCEL_REQUEST, 10) == m.OK and o.prev_state == m.SUBMITTED
    assert o.apply(m.CANCEL_REJECT, 11) == m.OK
    assert o.state == m.SUBMITTED
    o = order_in(m, "SUBMITTED")
    o.apply(m.CANCEL_REQUEST, 10)
    assert o.ack("V-3", 11) == m.OK
    assert (o.state, o.prev_state) == (m.PENDING_CANCEL, m.ACCEPTED)
    assert o.apply(m.CANCEL_REJECT, 12) == m.OK
    assert o.state == m.ACCEPTED


@pytest.mark.parametrize("m", IMPLS)
def test_cancel_before_ack_then_new_order_rejected(m):
    o = order_in(m, "SUBMITTED")
    o.apply(m.CANCEL_REQUEST, 10)
    assert o.apply(m.REJECT, 11) == m.OK and o.state == m.REJECTED
    assert o.apply(m.CANCEL_REJECT, 12) == m.OK and o.state == m.REJECTED


@pytest.mark.parametrize("m", IMPLS)
def test_cancel_ack_after_partial_fills_is_canceled(m):
    o = order_in(m, "PARTIALLY_FILLED")
    o.apply(m.CANCEL_REQUEST, 10)
    o.fill(8, PX + 1, 2, 11)
    assert o.apply(m.CANCEL_ACK, 12) == m.OK
    assert (o.state, o.filled, o.remaining, o.fill_notional) == (m.CANCELED, 5, 5, 3 * PX + 2 * (PX + 1))


@pytest.mark.parametrize("m", IMPLS)
def test_late_partial_fill_after_canceled_keeps_canceled(m):
    o = order_in(m, "CANCELED")
    assert o.fill(7, PX, 4, 10) == m.OK
    assert (o.state, o.filled, o.fill_count, o.ts_last_ns) == (m.CANCELED, 4, 1, 10)


@pytest.mark.parametrize("m", IMPLS)
def test_late_fill_completing_a_canceled_order_makes_it_filled(m):
    o = order_in(m, "CANCELED")
    assert o.fill(7, PX, QTY, 10) == m.OK
    assert (o.state, o.prev_state, o.remaining) == (m.FILLED, m.CANCELED, 0)


@pytest.mark.parametrize("m", IMPLS)
def test_late_fill_after_expired_is_illegal(m):
    o = order_in(m, "EXPIRED")
    assert o.fill(7, PX, 1, 10) == m.ILLEGAL
    assert o.last_error == "illegal transition: EXPIRED + FILL"


@pytest.mark.parametrize("m", IMPLS)
@pytest.mark.parametrize("state,event", [("CANCELED", "CANCEL_ACK"), ("EXPIRED", "EXPIRE"), ("REJECTED", "REJECT"),
                                         ("ACCEPTED", "ACK")])
def test_same_report_on_both_channels_is_absorbed(m, state, event):
    o = order_in(m, state)
    before = snapshot(o)
    assert o.apply(getattr(m, event), 77) == m.OK
    assert snapshot(o) == {**before, "ts_last_ns": 77}


@pytest.mark.parametrize("m", IMPLS)
@pytest.mark.parametrize("state", ["SUBMITTED", "ACCEPTED", "PARTIALLY_FILLED", "PENDING_REPLACE"])
def test_unsolicited_cancel_closes_open_order(m, state):
    o = order_in(m, state)
    assert o.apply(m.CANCEL_ACK, 10) == m.OK
    assert (o.state, o.pending_price, o.pending_qty) == (m.CANCELED, 0, 0)


# --- fills -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("m", IMPLS)
def test_duplicate_trade_id_is_ignored_and_counted(m):
    o = order_in(m, "ACCEPTED")
    assert o.fill(42, PX, 3, 10) == m.OK
    before = snapshot(o)
    assert o.fill(42, PX, 3, 11) == m.DUPLICATE
    assert o.fill(42, PX + 5, 1, 12) == m.DUPLICATE
    assert snapshot(o) == {**before, "duplicate_fills": 2}
    assert (o.filled, o.fill_count, o.ts_last_ns) == (3, 1, 10)


@pytest.mark.parametrize("m", IMPLS)
def test_duplicate_of_the_completing_fill_is_a_duplicate_not_an_error(m):
    o = order_in(m, "ACCEPTED")
    o.fill(42, PX, QTY, 10)
    assert o.fill(42, PX, QTY, 11) == m.DUPLICATE
    assert (o.state, o.duplicate_fills, o.last_error) == (m.FILLED, 1, None)


@pytest.mark.parametrize("m", IMPLS)
def test_duplicates_are_detected_among_many_fills(m):
    o = new_order(m, qty=30)
    o.apply(m.SUBMIT, 1)
    for t in range(20):                       # more fills than the compiled order keeps inline
        assert o.fill(1_000 + t, PX, 1, 10 + t) == m.OK
    for t in (0, 7, 8, 19):
        assert o.fill(1_000 + t, PX, 1, 50) == m.DUPLICATE
    assert (o.filled, o.fill_count, o.duplicate_fills, o.ts_last_ns) == (20, 20, 4, 29)
    assert o.fill(2_000, PX, 1, 51) == m.OK and o.filled == 21


@pytest.mark.parametrize("m", IMPLS)
def test_refused_fill_does_not_mark_its_trade_id_as_seen(m):
    o = order_in(m, "ACCEPTED")
    assert o.fill(42, PX, QTY + 1, 10) == m.OVERFILL
    assert o.fill(42, PX, QTY, 11) == m.OK and o.state == m.FILLED


@pytest.mark.parametrize("m", IMPLS)
def test_overfill_is_refused_and_order_unchanged(m):
    o = order_in(m, "PARTIALLY_FILLED")      # 3 of 10 filled
    before = snapshot(o)
    assert o.fill(50, PX, 8, 10) == m.OVERFILL
    assert snapshot(o) == before
    assert "8 lots > remaining 7 lots" in o.last_error
    assert o.fill(51, PX, 7, 11) == m.OK and o.state == m.FILLED


@pytest.mark.parametrize("m", IMPLS)
@pytest.mark.parametrize("price,qty", [(0, 1), (-1, 1), (PX, 0), (PX, -2)])
def test_fill_with_non_positive_price_or_qty_is_invalid(m, price, qty):
    o = order_in(m, "ACCEPTED")
    before = snapshot(o)
    assert o.fill(50, price, qty, 10) == m.INVALID
    assert snapshot(o) == before


@pytest.mark.parametrize("m", IMPLS)
def test_fill_notional_overflow_is_refused(m):
    o = m.Order("mm-1", 1, 2**53, 2**10, 0)        # the largest price the core accepts
    o.apply(m.SUBMIT, 1)
    assert o.fill(1, 2**53, 2**9, 2) == m.OK       # 2**62 tick*lots
    before = snapshot(o)
    assert o.fill(2, 2**53, 2**9, 3) == m.INVALID  # 2 * 2**62 > INT64_MAX
    assert snapshot(o) == before and "overflow" in o.last_error


@pytest.mark.parametrize("m", IMPLS)
def test_avg_price_is_exact_fraction_of_ticks(m):
    o = order_in(m, "ACCEPTED")
    assert o.avg_price is None
    o.fill(1, 100, 3, 10)
    o.fill(2, 101, 1, 11)
    assert o.avg_price == Fraction(401, 4)
    assert isinstance(o.avg_price, Fraction)
    assert (o.fill_notional, o.filled, o.fill_count) == (401, 4, 2)


# --- replace -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("m", IMPLS)
def test_replace_ack_applies_new_price_and_qty(m):
    o = order_in(m, "PARTIALLY_FILLED")      # 3 of 10
    assert o.request_replace(PX - 1, 6, 10) == m.OK
    assert (o.state, o.price, o.qty, o.pending_price, o.pending_qty) == (m.PENDING_REPLACE, PX, QTY, PX - 1, 6)
    assert o.apply(m.REPLACE_ACK, 11) == m.OK
    assert (o.state, o.price, o.qty, o.remaining, o.pending_qty) == (m.PARTIALLY_FILLED, PX - 1, 6, 3, 0)


@pytest.mark.parametrize("m", IMPLS)
def test_replace_reject_restores_price_qty_and_state(m):
    o = order_in(m, "PENDING_REPLACE")
    assert o.apply(m.REPLACE_REJECT, 10) == m.OK
    assert (o.state, o.price, o.qty, o.pending_price, o.pending_qty) == (m.ACCEPTED, PX, QTY, 0, 0)


@pytest.mark.parametrize("m", IMPLS)
def test_fills_while_amend_up_in_flight_count_against_the_larger_quantity(m):
    o = order_in(m, "PENDING_REPLACE")      # 10 -> 15 lots in flight
    assert o.remaining == 15
    assert o.fill(5, PX + 1, 12, 10) == m.OK   # more than the old 10: the venue applied the amend
    assert (o.state, o.qty, o.remaining) == (m.PENDING_REPLACE, QTY, 3)
    before = snapshot(o)
    assert o.apply(m.REPLACE_REJECT, 11) == m.INVALID   # contradicts the fills
    assert snapshot(o) == before
    assert o.apply(m.REPLACE_ACK, 12) == m.OK
    assert (o.state, o.qty, o.price, o.remaining) == (m.PARTIALLY_FILLED, 15, PX + 1, 3)


@pytest.mark.parametrize("m", IMPLS)
@pytest.mark.parametrize("event,end", [("CANCEL_ACK", "CANCELED"), ("EXPIRE", "EXPIRED")])
def test_order_ended_after_filling_its_old_quantity_during_amend_up_adopts_the_amend(m, event, end):
    o = order_in(m, "PENDING_REPLACE")      # 10 -> 15 lots in flight
    assert o.fill(5, PX, QTY, 10) == m.OK and o.state == m.PENDING_REPLACE
    assert o.apply(getattr(m, event), 11) == m.OK   # still live after 10 lots: the amend was in force
    assert (o.state, o.qty, o.price, o.remaining) == (getattr(m, end), 15, PX + 1, 5)


@pytest.mark.parametrize("m", IMPLS)
def test_fill_completing_the_amended_quantity_adopts_the_amend(m):
    o = order_in(m, "PENDING_REPLACE")
    assert o.fill(5, PX + 1, 15, 10) == m.OK
    assert (o.state, o.qty, o.price, o.pending_qty) == (m.FILLED, 15, PX + 1, 0)
    assert o.apply(m.REPLACE_ACK, 11) == m.OK and o.state == m.FILLED


@pytest.mark.parametrize("m", IMPLS)
def test_amend_down_acked_after_fills_reached_the_new_quantity_is_filled(m):
    o = order_in(m, "ACCEPTED")
    o.request_replace(PX, 4, 10)
    assert o.fill(5, PX, 4, 11) == m.OK and o.state == m.PENDING_REPLACE   # venue may still work 10
    assert o.apply(m.REPLACE_ACK, 12) == m.OK
    assert (o.state, o.qty, o.remaining) == (m.FILLED, 4, 0)


@pytest.mark.parametrize("m", IMPLS)
def test_amend_down_acked_below_filled_is_invalid(m):
    o = order_in(m, "ACCEPTED")
    o.request_replace(PX, 4, 10)
    o.fill(5, PX, 6, 11)
    before = snapshot(o)
    assert o.apply(m.REPLACE_ACK, 12) == m.INVALID
    assert snapshot(o) == before
    assert o.apply(m.REPLACE_REJECT, 13) == m.OK
    assert (o.state, o.qty, o.filled) == (m.PARTIALLY_FILLED, QTY, 6)


@pytest.mark.parametrize("m", IMPLS)
@pytest.mark.parametrize("price,qty", [(0, 12), (PX, 3), (PX, 2), (PX, QTY)])
def test_request_replace_refuses_bad_or_no_op_amends(m, price, qty):
    o = order_in(m, "PARTIALLY_FILLED")       # 3 filled: qty must be > 3; (PX, QTY) changes nothing
    before = snapshot(o)
    assert o.request_replace(price, qty, 10) == m.INVALID
    assert snapshot(o) == before


# --- random sequences: invariants and compiled == reference ------------------------------------------------

STATUS_EVENTS = [e for e in EVENTS if e not in ("FILL", "REPLACE_REQUEST")]
OPS = st.one_of(
    st.tuples(st.just("apply"), st.sampled_from(STATUS_EVENTS)),
    st.tuples(st.just("ack"), st.sampled_from([None, "V-1", "V-2"])),
    st.tuples(st.just("fill"), st.integers(1, 12), st.integers(-1, 3), st.integers(0, 8)),
    st.tuples(st.just("replace"), st.integers(-1, 3), st.integers(0, 16)),
)


def run_op(m, o, op, ts):
    kind = op[0]
    if kind == "apply":
        return o.apply(getattr(m, op[1]), ts)
    if kind == "ack":
        return o.ack(op[1], ts)
    if kind == "fill":
        return o.fill(op[1], PX + op[2], op[3], ts)
    return o.request_replace(PX + op[1], op[2], ts)


@settings(max_examples=600, deadline=None)
@given(qty=st.integers(1, 12), ops=st.lists(OPS, max_size=30))
def test_random_sequences_keep_invariants_and_reference_agrees(qty, ops):
    c, r = new_order(C, qty), new_order(R, qty)
    assert c.apply(C.SUBMIT, 1) == r.apply(R.SUBMIT, 1) == C.OK
    fills = []
    duplicates = 0
    for i, op in enumerate(ops):
        before = snapshot(c)
        rc = run_op(C, c, op, 10 + i)
        assert run_op(R, r, op, 10 + i) == rc
        assert snapshot(c, with_error=True) == snapshot(r, with_error=True)
        if rc == C.OK and op[0] == "fill":
            fills.append((PX + op[2], op[3]))
        if rc == C.DUPLICATE:
            duplicates += 1
            assert snapshot(c) == {**before, "duplicate_fills": before["duplicate_fills"] + 1}
        elif rc != C.OK:
            assert snapshot(c) == before
        open_qty = max(c.qty, c.pending_qty) if c.state == C.PENDING_REPLACE else c.qty
        assert c.filled >= 0 and c.remaining >= 0 and c.qty > 0
        assert c.filled + c.remaining == open_qty
        if c.state != C.PENDING_REPLACE:
            assert c.filled <= c.qty and c.pending_qty == c.pending_price == 0
        assert c.filled == sum(q for _, q in fills) and c.fill_count == len(fills)
        assert c.fill_notional == sum(p * q for p, q in fills) and c.duplicate_fills == duplicates
        assert c.avg_price == (Fraction(c.fill_notional, c.filled) if c.filled else None)
        if c.state == C.FILLED:
            assert c.remaining == 0
        if before["state"] in C.TERMINAL_STATES and c.state != before["state"]:
            assert (before["state"], c.state, op[0]) == (C.CANCELED, C.FILLED, "fill")


# --- client order ids --------------------------------------------------------------------------------------

BINANCE_ID = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")
MEXC_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


def test_generated_ids_are_unique_and_valid_on_both_venues():
    g = C.ClientOrderIdGenerator("mm1-")
    ids = [g.next_id() for _ in range(50_000)]
    assert len(set(ids)) == len(ids)
    assert ids[:3] == ["mm1-0", "mm1-1", "mm1-2"] and ids[36] == "mm1-10"
    assert all(BINANCE_ID.match(i) and MEXC_ID.match(i) for i in ids)
    assert g.counter == 50_000


def test_restart_from_persisted_counter_continues_without_collisions():
    g = C.ClientOrderIdGenerator("mm1-", start=0)
    first = {g.next_id() for _ in range(1_000)}
    persisted = g.counter
    g2 = C.ClientOrderIdGenerator("mm1-", start=persisted)
    second = {g2.next_id() for _ in range(1_000)}
    assert len(second) == 1_000 and not first & second
    assert g2.counter == persisted + 1_000


def test_ids_of_different_prefixes_never_collide():
    a = C.ClientOrderIdGenerator("a-")
    b = C.ClientOrderIdGenerator("a-1-")
    ids_a = {a.next_id() for _ in range(2_000)}
    ids_b = {b.next_id() for _ in range(2_000)}
    assert not ids_a & ids_b


def test_counter_is_readonly():
    g = C.ClientOrderIdGenerator("mm-")
    with pytest.raises(AttributeError):
        g.counter = 5


@pytest.mark.parametrize("prefix,venue", [("mm.1:/A-", "binance"), ("Mm_1-", "mexc"), ("Mm_1-", "all"),
                                          ("X" * 35, "binance"), ("X" * 31, "mexc")])
def test_prefix_allowed_by_venue_is_accepted(prefix, venue):
    g = C.ClientOrderIdGenerator(prefix, venue=venue)
    i = g.next_id()
    assert BINANCE_ID.match(i) if venue == "binance" else MEXC_ID.match(i)
    assert len(i) <= g.max_length


@pytest.mark.parametrize("prefix,venue", [("mm.1-", "mexc"), ("mm:1-", "all"), ("mm/1-", "mexc"), ("mm 1-", "binance"),
                                          ("mm#-", "binance"), ("mmé-", "binance"), ("", "binance"),
                                          ("mm", "binance"), ("mm1", "all"), ("X" * 36, "binance"),
                                          ("X" * 32, "mexc"), ("X" * 32, "all")])
def test_prefix_the_venue_refuses_or_that_leaves_no_room_raises(prefix, venue):
    with pytest.raises(ValueError):
        C.ClientOrderIdGenerator(prefix, venue=venue)


def test_unknown_venue_raises():
    with pytest.raises(ValueError):
        C.ClientOrderIdGenerator("mm-", venue="kraken")


def test_counter_that_would_exceed_the_length_raises():
    g = C.ClientOrderIdGenerator("X" * 35, start=34, venue="binance")   # room for one base36 digit
    assert g.next_id() == "X" * 35 + "y"
    assert g.next_id() == "X" * 35 + "z"
    with pytest.raises(ValueError):
        g.next_id()
    assert g.counter == 36
    with pytest.raises(ValueError):
        C.ClientOrderIdGenerator("X" * 35, start=36, venue="binance")
    with pytest.raises(ValueError):
        C.ClientOrderIdGenerator("mm-", start=-1)


def test_long_counter_stays_within_length():
    g = C.ClientOrderIdGenerator("X" * 26 + "-", start=36**5 - 1)     # 27 + 5 = 32 chars
    assert g.next_id() == "X" * 26 + "-zzzzz"
    with pytest.raises(ValueError):
        g.next_id()


# ---------------------------------------------------------------- hostile numbers (issue 8)
# An order's price and quantity are bounded by the core's range (2**53), as the book's and the risk gate's.

@pytest.mark.parametrize("m", IMPLS)
@pytest.mark.parametrize("price, qty", [(2**53 + 1, 1), (2**63 - 1, 1), (PX, 2**53 + 1), (PX, 2**63 - 1)])
def test_order_outside_the_core_bounds_is_refused_at_construction(m, price, qty):
    with pytest.raises(ValueError, match="must be in"):
        m.Order("mm-1", 1, price, qty, 0)
    assert m.Order("mm-1", 1, 2**53, 2**53, 0).qty == 2**53


@pytest.mark.parametrize("m", IMPLS)
@pytest.mark.parametrize("price", [2**53 + 1, 2**63 - 1])
def test_fill_at_a_price_outside_the_bound_is_invalid(m, price):
    o = order_in(m, "ACCEPTED")
    before = snapshot(o)
    assert o.fill(50, price, 1, 10) == m.INVALID
    assert snapshot(o) == before


@pytest.mark.parametrize("m", IMPLS)
@pytest.mark.parametrize("price, qty", [(2**53 + 1, QTY), (PX, 2**53 + 1), (2**63 - 1, 2**63 - 1)])
def test_amend_outside_the_bounds_is_invalid(m, price, qty):
    o = order_in(m, "ACCEPTED")
    before = snapshot(o)
    assert o.request_replace(price, qty, 10) == m.INVALID
    assert snapshot(o) == before
