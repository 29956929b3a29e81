"""Rate limiter, outcome classification, retry policy and call_with_retries (injected clock, instant sleep)."""
import asyncio
import json
import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmcore.venues.ratelimit import (BannedError, BusinessRejectError, Outcome, RateLimitedError, RateLimiter,
                              RetriesExhaustedError, RetryPolicy, UnknownStatusError, call_with_retries,
                              classify, classify_exception, load_venue_limits, parse_interval, sanitize_message)

S = 1_000_000_000
MIN = 60 * S
# 2023-11-14 22:13:20 UTC is 20 s into a minute; tests that need a window start use T0 - 20 s.
T0 = 1_700_000_000 * S


class FakeClock:
    """Injected clock (int ns); the paired sleep advances it instead of sleeping."""

    def __init__(self, t=T0):
        self.t = t
        self.sleeps = []

    def __call__(self):
        return self.t

    async def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.t += round(seconds * S)


class Script:
    """``fn`` for call_with_retries: returns / raises the scripted items in order, counts calls."""

    def __init__(self, *items):
        self.items = list(items)
        self.calls = 0

    async def __call__(self):
        self.calls += 1
        item = self.items.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item


def ok(headers=None):
    return 200, headers or {}, {"orderId": 1}


def err(status, code=None, msg="", headers=None):
    return status, headers or {}, ({"code": code, "msg": msg} if code is not None else msg)


def spot(**kw):
    return RateLimiter.from_config("binance_spot", **kw)


def usdm(**kw):
    return RateLimiter.from_config("binance_usdm", **kw)


def run(fn, limiter, clock, *, endpoint="query_order", is_order_request=False, policy=None, **kw):
    policy = policy or RetryPolicy(base_s=0.1, cap_s=0.4, max_attempts=5, seed=1)
    return asyncio.run(call_with_retries(fn, endpoint=endpoint, limiter=limiter, policy=policy, clock=clock,
                                         sleep=clock.sleep, is_order_request=is_order_request, **kw))


# ----------------------------------------------------------------------------------------------- config

def test_both_venue_tables_load_with_the_documented_limits():
    s = load_venue_limits("binance_spot")
    assert {(x.kind, x.interval, x.limit) for x in s.limits} == {
        ("REQUEST_WEIGHT", "1M", 6000), ("ORDERS", "10S", 50), ("ORDERS", "1D", 160000)}
    assert (s.endpoints["new_order"].weight, s.endpoints["new_order"].orders) == (1, 1)
    assert s.endpoints["open_orders"].weight == 6 and s.endpoints["my_trades"].weight == 20
    u = load_venue_limits("binance_usdm")
    assert {(x.kind, x.interval, x.limit) for x in u.limits} == {
        ("REQUEST_WEIGHT", "1M", 2400), ("ORDERS", "10S", 300), ("ORDERS", "1M", 1200)}
    assert (u.endpoints["new_order"].weight, u.endpoints["new_order"].orders) == (0, 1)


def test_unknown_venue_and_unknown_endpoint_raise_key_error():
    with pytest.raises(KeyError, match="kraken"):
        load_venue_limits("kraken")
    with pytest.raises(KeyError, match="teleport"):
        spot().acquire("teleport", T0)


@pytest.mark.parametrize("text, ns", [("10S", 10 * S), ("1M", MIN), ("1d", 86400 * S), ("5M", 5 * MIN)])
def test_interval_strings_follow_the_header_suffix_format(text, ns):
    assert parse_interval(text) == ns


@pytest.mark.parametrize("bad", ["", "10", "M", "0S", "1W", "1.5M"])
def test_bad_interval_strings_are_rejected(bad):
    with pytest.raises(ValueError):
        parse_interval(bad)


# ----------------------------------------------------------------------------------------------- limiter

def test_margin_sets_the_usable_budget():
    assert spot().budget("REQUEST_WEIGHT", "1M") == 5100            # floor(6000 * 0.85), table default
    assert spot(margin=0.9).budget("REQUEST_WEIGHT", "1M") == 5400
    assert spot(margin=0.9).budget("ORDERS", "10S") == 45
    with pytest.raises(ValueError):
        spot(margin=1.5)
    with pytest.raises(ValueError, match="budget"):
        spot(margin=0.001)        # 50 orders x 0.001 leaves nothing


def test_endpoint_weights_add_up_across_endpoints():
    lim = spot()
    for ep in ("query_order", "query_order", "open_orders", "new_order", "my_trades", "cancel_all"):
        lim.note_sent(ep, T0)
    assert lim.usage("REQUEST_WEIGHT", "1M", T0) == 4 + 4 + 6 + 1 + 20 + 1
    assert lim.usage("ORDERS", "10S", T0) == 1 and lim.usage("ORDERS", "1D", T0) == 1


def test_weight_blocks_exactly_at_the_budget():
    lim = spot()                       # budget 5100 = 255 x my_trades (20)
    for i in range(255):
        assert lim.acquire("my_trades", T0 + i) == 0
        lim.note_sent("my_trades", T0 + i)
    assert lim.usage("REQUEST_WEIGHT", "1M", T0 + 255) == 5100
    assert lim.acquire("my_trades", T0 + 255) > 0
    assert lim.acquire("cancel_order", T0 + 255) > 0        # weight 1 no longer fits either
    assert lim.check("cancel_order", T0 + 255)[1] == "REQUEST_WEIGHT 1M"


def test_window_roll_over_unblocks_after_the_returned_wait():
    lim = spot()
    for _ in range(255):
        lim.note_sent("my_trades", T0)
    wait = lim.acquire("my_trades", T0)
    assert MIN <= wait <= MIN + MIN // 60 + 1       # one interval plus at most one bucket (conservative)
    assert lim.acquire("my_trades", T0 + wait - 1) > 0
    assert lim.acquire("my_trades", T0 + wait) == 0
    assert lim.usage("REQUEST_WEIGHT", "1M", T0 + wait) == 0


def test_order_count_budget_stops_orders_but_not_cancels():
    lim = spot()                       # ORDERS 10S budget floor(50 * 0.85) = 42
    for i in range(42):
        assert lim.can_send_order(T0 + i)
        lim.note_sent("new_order", T0 + i)
    assert not lim.can_send_order(T0 + 42)
    assert lim.acquire("cancel_order", T0 + 42) == 0
    wait, reason = lim.check("new_order", T0 + 42)
    assert reason == "ORDERS 10S" and 9 * S <= wait <= 11 * S
    assert not lim.can_send_order(T0 + 42 + wait - 1)
    assert lim.can_send_order(T0 + 42 + wait)


def test_usdm_order_placement_costs_no_ip_weight_but_counts_in_both_order_windows():
    lim = usdm()
    lim.note_sent("new_order", T0)
    assert lim.usage("REQUEST_WEIGHT", "1M", T0) == 0
    assert lim.usage("ORDERS", "10S", T0) == 1 and lim.usage("ORDERS", "1M", T0) == 1


def test_header_count_above_ours_raises_the_usage():
    lim = spot()
    lim.update_from_headers({"x-mbx-used-weight-1m": "5090"}, T0)
    assert lim.usage("REQUEST_WEIGHT", "1M", T0) == 5090
    assert lim.acquire("query_order", T0) == 0          # 5094 <= 5100
    assert lim.acquire("my_trades", T0) > 0             # 5110 > 5100
    assert lim.counters["header_raised"] == 1


def test_header_count_below_ours_does_not_lower_the_usage():
    lim = spot()
    for _ in range(5):
        lim.note_sent("my_trades", T0)
    lim.update_from_headers({"X-MBX-USED-WEIGHT-1M": "30"}, T0)
    assert lim.usage("REQUEST_WEIGHT", "1M", T0) == 100


def test_header_names_are_case_insensitive_and_unknown_or_bad_ones_ignored():
    lim = spot()
    lim.update_from_headers({"X-Mbx-Order-Count-10s": "45", "X-MBX-USED-WEIGHT-1H": "99999",
                             "X-MBX-USED-WEIGHT": "99999", "X-MBX-ORDER-COUNT-1D": "many"}, T0)
    assert lim.usage("ORDERS", "10S", T0) == 45
    assert not lim.can_send_order(T0)                   # 45 + 1 > 42
    assert lim.usage("REQUEST_WEIGHT", "1M", T0) == 0
    assert lim.usage("ORDERS", "1D", T0) == 0


def test_header_count_holds_until_the_exchange_window_ends_plus_skew():
    lim = spot(skew_ms=500)
    minute_start = T0 - 20 * S                          # T0 is 20 s into a UTC minute
    assert minute_start % MIN == 0
    lim.update_from_headers({"X-MBX-USED-WEIGHT-1M": "6000"}, T0)
    wait = lim.acquire("cancel_order", T0)
    assert wait == minute_start + MIN + S // 2 - T0       # 40.5 s
    lim.note_sent("cancel_order", T0 + wait)             # counts locally after the header expired
    assert lim.usage("REQUEST_WEIGHT", "1M", T0 + wait) == 1


def test_requests_sent_after_a_header_add_to_the_exchange_count():
    lim = spot()
    lim.update_from_headers({"X-MBX-USED-WEIGHT-1M": "5000"}, T0)
    lim.note_sent("my_trades", T0 + 1)
    assert lim.usage("REQUEST_WEIGHT", "1M", T0 + 1) == 5020


def test_exchange_info_rate_limits_replace_the_table_and_keep_usage():
    lim = spot()
    lim.note_sent("new_order", T0)
    lim.set_limits_from_exchange_info([
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
        {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
        {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
        {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
    ])
    assert lim.budget("ORDERS", "10S") == 85 and lim.budget("ORDERS", "1D") == 170000
    assert lim.usage("ORDERS", "10S", T0) == 1                   # kept
    lim.note_sent("query_order", T0)
    assert lim.usage("RAW_REQUESTS", "5M", T0) == 1              # every request counts 1
    with pytest.raises(ValueError):
        lim.set_limits_from_exchange_info([{"rateLimitType": "ORDERS", "interval": "WEEK", "intervalNum": 1,
                                            "limit": 5}])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["new_order", "cancel_order", "query_order", "open_orders",
                                           "my_trades", "open_orders_all"]),
                          st.integers(min_value=0, max_value=3 * S)), min_size=1, max_size=400),
       st.floats(min_value=0.3, max_value=1.0))
def test_greedy_sender_never_exceeds_any_budget_in_any_window(requests, margin):
    """Send each request as soon as the limiter allows it: every sliding window (hence every fixed
    exchange window, whatever its offset) stays within the budget of every limit."""
    lim = spot(margin=margin)
    t = T0
    sent = []                                   # (ts, weight, orders)
    for ep, gap in requests:
        t += gap
        wait = lim.acquire(ep, t)
        t += wait
        assert lim.acquire(ep, t) == 0
        lim.note_sent(ep, t)
        e = lim.venue.endpoints[ep]
        sent.append((t, e.weight, e.orders))
    for kind, interval, idx in (("REQUEST_WEIGHT", MIN, 1), ("ORDERS", 10 * S, 2)):
        budget = lim.budget(kind, "1M" if interval == MIN else "10S")
        assert budget <= (6000 if interval == MIN else 50) * margin
        j = 0
        total = 0
        for i, row in enumerate(sent):          # two-pointer sliding window of length `interval`
            total += row[idx]
            while sent[j][0] <= row[0] - interval:
                total -= sent[j][idx]
                j += 1
            assert total <= budget


# ----------------------------------------------------------------------------------------------- classify

@pytest.mark.parametrize("status, code, order, msg, expected", [
    (200, None, True, None, Outcome.OK),
    (429, -1003, False, None, Outcome.RATE_LIMITED),
    (429, -1015, True, None, Outcome.RATE_LIMITED),
    (418, -1003, False, None, Outcome.BANNED),
    (403, None, False, None, Outcome.BANNED),
    (400, -2010, True, None, Outcome.BUSINESS_REJECT),     # new order rejected (e.g. insufficient balance)
    (400, -1013, True, None, Outcome.BUSINESS_REJECT),     # filter failure
    (400, -5022, True, None, Outcome.BUSINESS_REJECT),     # GTX post-only would match
    (400, -2011, True, None, Outcome.BUSINESS_REJECT),     # cancel: unknown order
    (400, -1021, True, None, Outcome.BUSINESS_REJECT),     # timestamp outside recvWindow
    (500, None, True, None, Outcome.UNKNOWN_STATUS),
    (502, None, True, None, Outcome.UNKNOWN_STATUS),
    (500, None, False, None, Outcome.TRANSIENT),
    (503, -1007, True, None, Outcome.UNKNOWN_STATUS),
    (400, -1007, True, None, Outcome.UNKNOWN_STATUS),      # "execution status unknown" whatever the status
    (400, -1006, False, None, Outcome.TRANSIENT),
    (408, None, True, None, Outcome.UNKNOWN_STATUS),       # USDⓈ-M: timeout waiting for the backend
    (408, None, False, None, Outcome.TRANSIENT),
    (409, None, True, None, Outcome.UNKNOWN_STATUS),       # cancelReplace partially succeeded
    (503, None, True, "Service Unavailable.", Outcome.TRANSIENT),
    (503, None, True, "Internal error; unable to process your request. Please try again.", Outcome.TRANSIENT),
    (503, None, True, "Unknown error, please check your request or try again later.", Outcome.UNKNOWN_STATUS),
])
def test_classify_maps_status_and_code_to_outcome(status, code, order, msg, expected):
    assert classify(status, code, order, message=msg) is expected


def test_cancel_of_unknown_order_is_a_business_reject():
    assert classify(400, -2011, is_order_request=True) is Outcome.BUSINESS_REJECT


@pytest.mark.parametrize("bad", [0, 99, 600, True, "200"])
def test_classify_rejects_non_http_status(bad):
    with pytest.raises(ValueError):
        classify(bad, None, False)


@pytest.mark.parametrize("exc, order, expected", [
    (TimeoutError(), True, Outcome.UNKNOWN_STATUS),
    (ConnectionResetError(), True, Outcome.UNKNOWN_STATUS),
    (ConnectionRefusedError(), True, Outcome.TRANSIENT),     # never left: safe to resend
    (TimeoutError(), False, Outcome.TRANSIENT),
    (ConnectionResetError(), False, Outcome.TRANSIENT),
    (ValueError(), False, None),
])
def test_transport_failures_are_classified(exc, order, expected):
    assert classify_exception(exc, order) is expected


# ----------------------------------------------------------------------------------------------- policy

def test_retry_delays_grow_within_the_jittered_envelope_up_to_the_cap():
    p = RetryPolicy(base_s=0.1, cap_s=0.8, max_attempts=10, seed=42)
    delays = [p.next_delay(n) for n in range(1, 9)]
    envelopes = [0.1, 0.2, 0.4, 0.8, 0.8, 0.8, 0.8, 0.8]
    for d, e in zip(delays, envelopes):
        assert e / 2 <= d <= e
    assert delays[:4] == sorted(delays[:4])
    assert max(delays) <= 0.8


def test_retry_delays_are_deterministic_for_a_seed():
    def delays(seed):
        p = RetryPolicy(base_s=0.1, cap_s=5.0, max_attempts=9, seed=seed)
        return [p.next_delay(n) for n in range(1, 8)]
    assert delays(3) == delays(3)
    assert delays(3) != delays(4)


@pytest.mark.parametrize("args", [(0, 1, 3), (1, 0.5, 3), (0.1, 1, 0), (0.1, 1, 1.5), (float("nan"), 1, 3)])
def test_retry_policy_rejects_bad_parameters(args):
    with pytest.raises(ValueError):
        RetryPolicy(*args)


# ----------------------------------------------------------------------------------------------- helper

def test_success_returns_the_response_and_updates_usage_from_headers():
    lim, clock = spot(), FakeClock()
    fn = Script(ok({"X-MBX-USED-WEIGHT-1M": "700"}))
    assert run(fn, lim, clock) == (200, {"X-MBX-USED-WEIGHT-1M": "700"}, {"orderId": 1})
    assert fn.calls == 1 and lim.usage("REQUEST_WEIGHT", "1M", clock.t) == 700
    assert lim.counters["ok"] == 1


def test_429_with_retry_after_blocks_the_whole_venue_for_that_long():
    lim, clock = spot(), FakeClock()
    fn = Script(err(429, -1003, "Too many requests.", {"Retry-After": "7"}))
    with pytest.raises(RateLimitedError) as e:
        run(fn, lim, clock)
    assert fn.calls == 1 and e.value.retry_at_ns == T0 + 7 * S and not e.value.local
    assert lim.acquire("cancel_order", T0) == 7 * S
    assert not lim.can_send_order(T0 + 7 * S - 1)
    assert lim.acquire("cancel_order", T0 + 7 * S) == 0
    # while blocked, a new call is refused without touching the network
    fn2 = Script(ok())
    clock.t = T0 + 3 * S
    with pytest.raises(RateLimitedError):
        run(fn2, lim, clock)
    assert fn2.calls == 0


def test_429_without_retry_after_backs_off_exponentially_until_a_success():
    lim, clock = spot(rate_limit_base_s=1.0, rate_limit_cap_s=3.0), FakeClock()
    retry_at = []
    for _ in range(3):
        with pytest.raises(RateLimitedError) as e:
            run(Script(err(429, -1003)), lim, clock)
        retry_at.append(e.value.retry_at_ns - clock.t)
        clock.t = e.value.retry_at_ns
    assert retry_at == [1 * S, 2 * S, 3 * S]          # 1, 2, then capped at 3 (not 4)
    run(Script(ok()), lim, clock)
    with pytest.raises(RateLimitedError) as e:
        run(Script(err(429, -1003)), lim, clock)
    assert e.value.retry_at_ns - clock.t == 1 * S     # escalation reset by the success


def test_order_count_429_blocks_placements_but_lets_cancels_through():
    lim, clock = spot(), FakeClock()
    with pytest.raises(RateLimitedError):
        run(Script(err(429, -1015, "Too many new orders; current limit is 50 orders per 10 SECOND.")), lim, clock,
            endpoint="new_order", is_order_request=True)
    assert not lim.can_send_order(clock.t)
    assert lim.acquire("cancel_order", clock.t) == 0
    fn = Script(ok())
    run(fn, lim, clock, endpoint="cancel_order", is_order_request=True)
    assert fn.calls == 1


def test_418_blocks_every_endpoint_until_retry_after_and_logs_critical(caplog):
    lim, clock = spot(), FakeClock()
    with caplog.at_level(logging.INFO, logger="mmcore.ratelimit"):
        with pytest.raises(BannedError) as e:
            run(Script(err(418, -1003, "Way too much request weight used.", {"Retry-After": "300"})), lim, clock)
    assert e.value.until_ns == T0 + 300 * S
    assert [r.levelno for r in caplog.records] == [logging.CRITICAL]
    for ep in lim.venue.endpoints:
        assert lim.acquire(ep, T0 + 299 * S) > 0
    assert not lim.can_send_order(T0 + 299 * S)
    fn = Script(ok())
    clock.t = T0 + 100 * S
    with pytest.raises(BannedError):
        run(fn, lim, clock, endpoint="cancel_all", is_order_request=True)
    assert fn.calls == 0
    assert lim.acquire("cancel_all", T0 + 300 * S) == 0


def test_418_ban_end_is_taken_from_the_message_when_later_than_retry_after():
    lim, clock = spot(), FakeClock()
    until_ms = (T0 + 600 * S) // 1_000_000
    with pytest.raises(BannedError) as e:
        run(Script(err(418, -1003, f"Way too much request weight used; IP banned until {until_ms}.",
                       {"Retry-After": "60"})), lim, clock)
    assert e.value.until_ns == T0 + 600 * S


def test_418_without_duration_blocks_for_the_shortest_documented_ban():
    lim, clock = spot(), FakeClock()
    with pytest.raises(BannedError) as e:
        run(Script(err(418)), lim, clock)
    assert e.value.until_ns == T0 + 120 * S


def test_a_429_during_a_ban_does_not_shorten_or_relabel_it():
    lim = spot()
    lim.on_banned(T0, 300)
    lim.on_rate_limited(T0 + S, 5)
    assert lim.blocked_until() == (T0 + 300 * S, "banned")


def test_transient_failures_retry_with_capped_growing_delays_then_exhaust():
    lim, clock = spot(), FakeClock()
    fn = Script(*[err(503, None, "Service Unavailable.")] * 5)
    with pytest.raises(RetriesExhaustedError) as e:
        run(fn, lim, clock, policy=RetryPolicy(base_s=0.1, cap_s=0.4, max_attempts=5, seed=7))
    assert fn.calls == 5 and e.value.attempts == 5 and e.value.last_status == 503
    assert len(clock.sleeps) == 4
    for d, env in zip(clock.sleeps, [0.1, 0.2, 0.4, 0.4]):
        assert env / 2 <= d <= env
    assert clock.sleeps[:3] == sorted(clock.sleeps[:3])
    # same seed, same delays
    clock2 = FakeClock()
    with pytest.raises(RetriesExhaustedError):
        run(Script(*[err(503)] * 5), spot(), clock2, policy=RetryPolicy(base_s=0.1, cap_s=0.4, max_attempts=5, seed=7))
    assert clock2.sleeps == clock.sleeps


def test_transient_failure_then_success_returns_the_success():
    lim, clock = spot(), FakeClock()
    fn = Script(err(502), TimeoutError("read timed out"), ok())
    assert run(fn, lim, clock)[0] == 200
    assert fn.calls == 3 and lim.counters["transient_retry"] == 2 and lim.counters["ok"] == 1
    assert lim.usage("REQUEST_WEIGHT", "1M", clock.t) == 3 * 4      # every attempt counted (query_order = 4)


@pytest.mark.parametrize("code, endpoint", [(-2010, "new_order"), (-1013, "new_order"), (-5022, "new_order"),
                                            (-2011, "cancel_order")])
def test_business_reject_is_raised_after_exactly_one_call(code, endpoint):
    lim, clock = usdm(), FakeClock()
    fn = Script(err(400, code, "rejected"), ok())
    with pytest.raises(BusinessRejectError) as e:
        run(fn, lim, clock, endpoint=endpoint, is_order_request=True)
    assert fn.calls == 1 and e.value.code == code and e.value.status == 400
    assert clock.sleeps == []


@pytest.mark.parametrize("failure", [err(500), err(503, -1007, "Timeout waiting for response from backend server."),
                                     err(408), TimeoutError(), ConnectionResetError()])
def test_unknown_status_on_order_placement_is_never_resent(failure):
    lim, clock = spot(), FakeClock()
    fn = Script(failure, ok())
    with pytest.raises(UnknownStatusError):
        run(fn, lim, clock, endpoint="new_order", is_order_request=True)
    assert fn.calls == 1 and clock.sleeps == []
    assert lim.counters["unknown_status"] == 1


def test_refused_connection_on_order_placement_is_retried():
    lim, clock = spot(), FakeClock()
    fn = Script(ConnectionRefusedError(), ok())
    assert run(fn, lim, clock, endpoint="new_order", is_order_request=True)[0] == 200
    assert fn.calls == 2


def test_non_transport_exception_propagates_unchanged():
    lim, clock = spot(), FakeClock()
    with pytest.raises(KeyError):
        run(Script(KeyError("bug")), lim, clock)


def test_local_wait_within_max_wait_is_slept_then_sent():
    lim, clock = spot(), FakeClock()
    for _ in range(42):
        lim.note_sent("new_order", T0 - 10 * S + 1)      # 42 orders just under 10 s ago: expire within 1 bucket
    wait = lim.acquire("new_order", T0)
    assert 0 < wait <= S
    fn = Script(ok())
    run(fn, lim, clock, endpoint="new_order", is_order_request=True, max_wait_s=1.0)
    assert fn.calls == 1 and clock.sleeps == [wait / S] and lim.counters["throttled"] == 1


def test_local_wait_beyond_max_wait_raises_without_calling():
    lim, clock = spot(), FakeClock()
    for _ in range(42):
        lim.note_sent("new_order", T0)
    fn = Script(ok())
    with pytest.raises(RateLimitedError) as e:
        run(fn, lim, clock, endpoint="new_order", is_order_request=True, max_wait_s=1.0)
    assert fn.calls == 0 and e.value.local and e.value.retry_at_ns > T0 + 10 * S


def test_every_decision_is_counted_and_logged_once(caplog):
    lim, clock = spot(), FakeClock()
    policy = RetryPolicy(base_s=0.01, cap_s=0.02, max_attempts=2, seed=0)
    with caplog.at_level(logging.DEBUG, logger="mmcore.ratelimit"):
        run(Script(ok()), lim, clock, policy=policy)                                    # ok
        with pytest.raises(RetriesExhaustedError):
            run(Script(err(500), err(500)), lim, clock, policy=policy)                  # retry + exhausted
        with pytest.raises(BusinessRejectError):
            run(Script(err(400, -2010, "Account has insufficient balance")), lim, clock, endpoint="new_order",
                is_order_request=True, policy=policy)
        with pytest.raises(UnknownStatusError):
            run(Script(err(500)), lim, clock, endpoint="cancel_order", is_order_request=True, policy=policy)
        with pytest.raises(RateLimitedError):
            run(Script(err(429, -1003, headers={"Retry-After": "1"})), lim, clock, policy=policy)
        with pytest.raises(RateLimitedError):
            run(Script(ok()), lim, clock, policy=policy)                                # refused (blocked)
        clock.t += 2 * S
        with pytest.raises(BannedError):
            run(Script(err(418, headers={"Retry-After": "5"})), lim, clock, policy=policy)
    expected = {"ok": 1, "transient_retry": 1, "retries_exhausted": 1, "business_reject": 1, "unknown_status": 1,
                "rate_limited": 1, "refused": 1, "banned": 1}
    assert {k: v for k, v in lim.counters.items() if k != "header_raised"} == expected
    records = [r for r in caplog.records if r.name == "mmcore.ratelimit"]
    assert len(records) == sum(expected.values())


def test_secrets_in_transport_errors_and_messages_never_reach_logs_or_errors(caplog):
    secret = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
    lim, clock = spot(), FakeClock()
    policy = RetryPolicy(base_s=0.01, cap_s=0.01, max_attempts=1, seed=0)
    with caplog.at_level(logging.DEBUG, logger="mmcore.ratelimit"):
        with pytest.raises(RetriesExhaustedError) as e1:
            run(Script(ConnectionResetError(f"POST /api/v3/order?signature={secret}")), lim, clock, policy=policy)
        with pytest.raises(UnknownStatusError) as e2:
            run(Script(TimeoutError(f"apiKey={secret}")), lim, clock, endpoint="new_order", is_order_request=True,
                policy=policy)
        with pytest.raises(BusinessRejectError) as e3:
            run(Script(err(400, -2015, f"Invalid API-key {secret}")), lim, clock, policy=policy)
    for e in (e1.value, e2.value, e3.value):
        assert secret not in str(e) and e.__cause__ is None
        assert secret not in repr(vars(e))
    assert e2.value.cause == "TimeoutError"
    assert secret not in caplog.text and "<redacted>" in caplog.text


# --- secrets redacted by key name, whatever their length (issue 8) ---

_SECRET_KEYS = ["signature", "apiKey", "secret", "listenKey", "X-MBX-APIKEY"]
#: Characters a query or form value may carry unencoded (RFC 3986 unreserved and sub-delims, without '&').
_QUERY_SAFE = "-._~!$'()*+,;=:@/?"


@st.composite
def _secret_key(draw):
    key = draw(st.sampled_from(_SECRET_KEYS))
    flips = draw(st.lists(st.booleans(), min_size=len(key), max_size=len(key)))
    return "".join(c.upper() if f else c.lower() for c, f in zip(key, flips))   # case-insensitive


_ANY_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40)
# A header value: visible ASCII with inner spaces/tabs; HTTP strips leading/trailing whitespace.
_HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7e) | st.just("\t"), min_size=1,
                       max_size=40).filter(lambda v: v == v.strip(" \t"))


def _formats(key, secret, json_ascii):
    """(message with the secret embedded, the same message with its value as <redacted>) per format."""
    from urllib.parse import quote, quote_plus
    q = "POST /fapi/v1/order?symbol=BTCUSDT&{}={}&timestamp=1"
    f = "symbol=BTCUSDT&{}={}&recvWindow=5000"
    j = '{{"symbol":"BTCUSDT","{}":{},"n":1}}'
    js = '{{"symbol": "BTCUSDT", "{}": {}, "n": 1}}'
    d = "{{'symbol': 'BTCUSDT', {!r}: {}, 'n': 1}}"
    R = "<redacted>"
    enc = json.dumps(secret, ensure_ascii=json_ascii)
    return [
        (q.format(key, quote(secret, safe=_QUERY_SAFE)), q.format(key, R)),              # query string
        (f.format(key, quote_plus(secret, safe=_QUERY_SAFE)), f.format(key, R)),         # URL-encoded form
        (j.format(key, enc), j.format(key, R)),                                          # JSON, compact
        (js.format(key, enc), js.format(key, R)),                                        # JSON, spaced
        (d.format(key, repr(secret)), d.format(key, R)),                                 # dict repr (str)
        (d.format(key, repr(secret.encode())), d.format(key, R)),                        # dict repr (bytes)
    ]


@settings(max_examples=300, deadline=None)
@given(key=_secret_key(), secret=_ANY_TEXT, json_ascii=st.booleans())
def test_a_secret_of_any_length_is_redacted_by_its_key_name_in_every_format(key, secret, json_ascii):
    for msg, expected in _formats(key, secret, json_ascii):
        out = sanitize_message(msg, limit=10_000)
        assert out == expected, msg
        assert secret not in out or secret in expected


@settings(max_examples=300, deadline=None)
@given(key=_secret_key(), secret=_HEADER_TEXT)
def test_a_secret_header_value_of_any_length_is_redacted_to_the_end_of_its_line(key, secret):
    msg = f"HTTP/1.1 401 Unauthorized\r\n{key}: {secret}\r\nContent-Type: application/json"
    expected = f"HTTP/1.1 401 Unauthorized\r\n{key}: <redacted>\r\nContent-Type: application/json"
    out = sanitize_message(msg, limit=10_000)
    assert out == expected
    assert secret not in out or secret in expected


@pytest.mark.parametrize("msg, expected", [
    ("signature=deadbeef", "signature=<redacted>"),
    ("X-MBX-APIKEY: short123", "X-MBX-APIKEY: <redacted>"),
    ("GET /api/v3/userDataStream?listenKey=abc&x=1", "GET /api/v3/userDataStream?listenKey=<redacted>&x=1"),
    ({"apiKey": "k1", "secretKey": "s"}, "{'apiKey': <redacted>, 'secretKey': <redacted>}"),
    (b'{"signature":"0a1b"}', "b'{\"signature\":<redacted>}'"),     # a bytes body, str()-ed
    ("Invalid API-key, IP, or permissions for action.", "Invalid API-key, IP, or permissions for action."),
    ("key " + "A" * 30, "key <redacted>"),                                # the long-token rule still holds
])
def test_known_secret_shapes_are_redacted_and_plain_messages_kept(msg, expected):
    assert sanitize_message(msg, limit=10_000) == expected


def test_redaction_happens_before_truncation():
    out = sanitize_message("w " * 90 + "signature=abcdefghijkl", limit=195)     # the cut falls in the value
    assert out.endswith("signature=<reda...") and "abc" not in out
