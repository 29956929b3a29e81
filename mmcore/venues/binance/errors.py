"""Binance error answers -> what the execution client does: the one place where codes and statuses are mapped.

The HTTP-status part is :func:`mmcore.venues.ratelimit.classify` (2XX ok, 429 rate limited, 418/403 banned, 5XX /
408 / -1006 / -1007 execution status unknown, other 4XX business reject); on top of it the error codes that need
their own handling (same mapping for REST bodies and WebSocket API ``error`` objects, whose ``status`` is the HTTP
status):

=====================================  ==================  ============================================================
code                                   :class:`Action`     the client
=====================================  ==================  ============================================================
spot -2010 "Order would immediately    POST_ONLY_REJECT    ``OrderRejected(code=POST_ONLY_REJECT)`` (the engine
match and take."; USDⓈ-M -5022                             re-prices)
-2011 (cancel: unknown order),         UNKNOWN_ORDER       cancel: ``OrderCancelRejected``; query: "no such order"
-2013 (order does not exist)
-1021 timestamp outside recvWindow /   RESYNC_CLOCK        the request failed (an order: ``OrderRejected``); the
ahead of the server                                        server time offset is measured again (once at a time)
-1022 bad signature; -2014 / -2015     FATAL               nothing more is sent on this account (every order refused
bad / rejected API key; -2008, -1002                       locally), logged critical, never retried
429 / -1003 / -1015                    RATE_LIMITED        the limiter blocks until Retry-After (``data.retryAfter``)
418                                    BANNED              every request blocked until the ban ends
5XX, 408, -1006, -1007                 UNKNOWN_STATUS      the order is queried by client order id (never re-sent)
-1013, -4164, -4013, -4002, -4014,     REJECT              ``OrderRejected`` (filter failure; the code in the report)
-4004, -4005, -4023, other 4XX
=====================================  ==================  ============================================================

Sources: https://developers.binance.com/docs/binance-spot-api-docs/errors (binance/binance-spot-api-docs
errors.md: -1003, -1013, -1021, -1022, -2010 texts, -2011, -2013, -2014, -2015); USDⓈ-M
https://developers.binance.com/docs/derivatives/usds-margined-futures/error-code (-4013/-4002/-4014 price,
-4004/-4005/-4023 quantity, -4164 notional, -5022 post-only); WebSocket API status codes (5XX: "Execution status is
unknown and the request might have actually succeeded. Please use query methods to confirm the status.")
https://developers.binance.com/docs/binance-spot-api-docs/websocket-api/response-format.

Secrets: messages are passed through :func:`mmcore.venues.ratelimit.sanitize_message` before they are kept.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from mmcore.execution import POST_ONLY_REJECT
from mmcore.venues.ratelimit import Outcome, classify, sanitize_message


class Action(str, Enum):
    """What the execution client does with an answer."""

    OK = "ok"
    POST_ONLY_REJECT = "post_only_reject"
    REJECT = "reject"
    UNKNOWN_ORDER = "unknown_order"
    RESYNC_CLOCK = "resync_clock"
    FATAL = "fatal"
    RATE_LIMITED = "rate_limited"
    BANNED = "banned"
    UNKNOWN_STATUS = "unknown_status"
    TRANSIENT = "transient"


#: The post-only "would take" texts / codes (spot LIMIT_MAKER -2010 with this text; USDⓈ-M GTX -5022).
SPOT_WOULD_TAKE_MSG = "order would immediately match and take"
UM_POST_ONLY_CODE = -5022
#: Codes after which nothing more may be sent with this key (bad signature, bad / unknown / unauthorised key).
FATAL_CODES = frozenset({-1022, -2014, -2015, -2008, -1002})
#: Unknown order (cancel of an order the venue does not have; query of an order that does not exist).
UNKNOWN_ORDER_CODES = frozenset({-2011, -2013})
#: Timestamp outside recvWindow / ahead of the server.
CLOCK_CODES = frozenset({-1021})
#: Filter failures (spot -1013 "Filter failure: ..."; USDⓈ-M price, quantity and notional filters).
FILTER_CODES = frozenset({-1013, -4164, -4013, -4002, -4014, -4004, -4005, -4023})
#: Too many requests / orders (sent with HTTP 429).
RATE_CODES = frozenset({-1003, -1015})


@dataclass(frozen=True, slots=True)
class ErrorOutcome:
    """One classified answer: ``action``; ``status`` (HTTP / WS API status), ``code`` (Binance error code or
    None), ``reason`` (sanitized message, at most 200 characters), ``report_code`` (the ``OrderRejected.code``
    to use: :data:`~mmcore.execution.POST_ONLY_REJECT`, ``"FILTER:<code>"``, ``"BINANCE:<code>"`` ...)."""

    action: Action
    status: int
    code: int | None
    reason: str
    report_code: str


def classify_error(status: int, code: int | None, msg: str | None, is_order_request: bool,
                   usdm_503_rule: bool = False) -> ErrorOutcome:
    """Classify one answer (see the module table). ``status``: the HTTP / WS API status (100..599; anything else
    is treated as 500); ``code``/``msg``: the error body's fields (None when absent); ``is_order_request``: order
    placement / cancel (a 5XX is then UNKNOWN_STATUS, else TRANSIENT); ``usdm_503_rule``: apply USDⓈ-M's
    "503 with these messages failed for sure" rule (general-info page; spot documents every 5XX as unknown).
    Never raises."""
    if type(status) is not int or not 100 <= status <= 599:
        status = 500
    if type(code) is not int:
        code = None
    reason = sanitize_message(msg)
    out = classify(status, code, is_order_request,
                   message=msg if isinstance(msg, str) and usdm_503_rule else None)
    if out is Outcome.OK:
        return ErrorOutcome(Action.OK, status, code, reason, "")
    tag = f"BINANCE:{code}" if code is not None else f"HTTP:{status}"
    if out is Outcome.BANNED:                    # before the codes: a 418 carries -1003 too
        return ErrorOutcome(Action.BANNED, status, code, reason, "BANNED")
    if out is Outcome.RATE_LIMITED or code in RATE_CODES:
        return ErrorOutcome(Action.RATE_LIMITED, status, code, reason, "RATE_LIMITED")
    if code in FATAL_CODES:
        return ErrorOutcome(Action.FATAL, status, code, reason, "AUTH")
    if out is Outcome.UNKNOWN_STATUS:
        return ErrorOutcome(Action.UNKNOWN_STATUS, status, code, reason, "UNKNOWN_STATUS")
    if out is Outcome.TRANSIENT:
        return ErrorOutcome(Action.TRANSIENT, status, code, reason, tag)
    # business rejects (4XX)
    if code == UM_POST_ONLY_CODE or (code == -2010 and isinstance(msg, str)
                                     and msg.strip().lower().startswith(SPOT_WOULD_TAKE_MSG)):
        return ErrorOutcome(Action.POST_ONLY_REJECT, status, code, reason, POST_ONLY_REJECT)
    if code in UNKNOWN_ORDER_CODES:
        return ErrorOutcome(Action.UNKNOWN_ORDER, status, code, reason, tag)
    if code in CLOCK_CODES:
        return ErrorOutcome(Action.RESYNC_CLOCK, status, code, reason, "TIMESTAMP")
    if code in FILTER_CODES:
        return ErrorOutcome(Action.REJECT, status, code, reason, f"FILTER:{code}")
    return ErrorOutcome(Action.REJECT, status, code, reason, tag)


def retry_after_s_of_ws(error: dict | None, now_ms: int) -> float | None:
    """Seconds to wait from a WebSocket API 429 / 418 ``error.data.retryAfter`` (ms since the epoch), or None.
    https://developers.binance.com/docs/binance-spot-api-docs/websocket-api/rate-limits ("retryAfter")."""
    if not isinstance(error, dict):
        return None
    data = error.get("data")
    if not isinstance(data, dict):
        return None
    ra = data.get("retryAfter")
    if type(ra) is not int or not 0 <= ra < 1 << 53:
        return None
    return max(0.0, (ra - now_ms) / 1000.0) if ra > 10**11 else float(ra)
