"""REST rate limiting, outcome classification and retry policy for exchange calls.

Three pieces:

* :class:`RateLimiter` -- per venue, knows the request-weight / order-count limits and the endpoint weights
  (``config/ratelimits.yaml``), counts what we sent, merges the exchange's own counts from the response
  headers (the higher count wins), and holds venue-wide blocks after a 429 / 418.
* :func:`classify` and :class:`RetryPolicy` -- map an HTTP status + exchange error code to an
  :class:`Outcome`, and give capped exponential back-off delays with seedable jitter.
* :func:`call_with_retries` -- the async helper that applies both around one request.

Exchange rules implemented here (Binance; the pages are cited where each rule is used):

* Limits are counted per interval window; every response carries
  ``X-MBX-USED-WEIGHT-(intervalNum)(intervalLetter)`` (IP weight) and successful order responses carry
  ``X-MBX-ORDER-COUNT-(intervalNum)(intervalLetter)`` (account order count). Rejected orders are not
  guaranteed to carry the order-count header, so local counting is kept as well.
  https://developers.binance.com/docs/binance-spot-api-docs/rest-api/limits
  https://developers.binance.com/docs/derivatives/usds-margined-futures/general-info
* 429 = a limit was broken: back off (``Retry-After`` seconds when sent; an order-count 429 has none).
  Repeated 429s escalate to 418 = IP auto-banned, 2 minutes to 3 days; ``Retry-After`` gives the seconds
  until the ban ends. Same pages.
* 5XX = internal error, "the execution status is UNKNOWN and could have been a success": an order
  placement or cancel that got a 5XX must be reconciled, never blindly re-sent.
  https://developers.binance.com/docs/binance-spot-api-docs/rest-api/http-return-codes
  USDⓈ-M futures add HTTP 408 (timeout waiting for the backend) and split 503 by message: "Unknown error,
  please check your request or try again later." = unknown; "Service Unavailable." and "Internal error;
  unable to process your request. Please try again." = failed, may be re-sent.
  https://developers.binance.com/docs/derivatives/usds-margined-futures/general-info
* Error codes -1006 UNEXPECTED_RESP and -1007 TIMEOUT mean "execution status unknown"; -1015
  TOO_MANY_ORDERS is the order-count limit.
  https://developers.binance.com/docs/binance-spot-api-docs/errors
  https://developers.binance.com/docs/derivatives/usds-margined-futures/error-code

Windows are modelled conservatively as *sliding* windows of (interval + one bucket): any burst that fits
every sliding window also fits Binance's fixed, epoch-aligned windows, whatever the clock offset between us
and the exchange. A header count is held until the end of the exchange's fixed window (plus a skew allowance).

Secrets: nothing here sees request parameters. Log lines and exception texts name the venue, the endpoint
name, the HTTP status, the exchange error code and a sanitized exchange message only; transport exceptions
are reported by type name (their text can contain the signed URL) and are not chained.
"""
from __future__ import annotations

import json
import logging
import math
import random
import re
from collections import Counter, deque
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterable, Mapping

import yaml

log = logging.getLogger("mmcore.ratelimit")

DEFAULT_TABLE = Path(__file__).resolve().parents[2] / "config" / "ratelimits.yaml"

NS_PER_S = 1_000_000_000
_UNIT_NS = {"S": NS_PER_S, "M": 60 * NS_PER_S, "H": 3600 * NS_PER_S, "D": 86400 * NS_PER_S}
#: exchangeInfo ``interval`` enum -> header letter.
_INTERVAL_LETTER = {"SECOND": "S", "MINUTE": "M", "HOUR": "H", "DAY": "D"}
LIMIT_KINDS = ("REQUEST_WEIGHT", "ORDERS", "RAW_REQUESTS")
_HEADER_KIND = (("x-mbx-used-weight-", "REQUEST_WEIGHT"), ("x-mbx-order-count-", "ORDERS"))

#: Error codes whose documented meaning is "execution status unknown" (Binance spot errors page and the
#: USDⓈ-M error-code page): -1006 UNEXPECTED_RESP, -1007 TIMEOUT.
UNKNOWN_STATUS_CODES = frozenset({-1006, -1007})
#: -1015 TOO_MANY_ORDERS: the (unfilled) order-count limit, sent with HTTP 429 and no Retry-After.
TOO_MANY_ORDERS = -1015
#: USDⓈ-M futures 503 messages that the general-info page documents as a *failed* operation (safe to resend).
FAILED_503_MESSAGES = ("service unavailable", "internal error; unable to process your request")


# ----------------------------------------------------------------------------------------------- outcomes

class Outcome(str, Enum):
    """What a response (or a transport failure) means for the caller."""

    OK = "ok"
    RATE_LIMITED = "rate_limited"        # 429: back off; the venue is blocked until then
    BANNED = "banned"                    # 418 (IP ban) / 403 (WAF): block everything
    TRANSIENT = "transient"              # failed for sure, safe to retry with back-off
    UNKNOWN_STATUS = "unknown_status"    # order placement/cancel may have executed: reconcile first
    BUSINESS_REJECT = "business_reject"  # the exchange refused the request: never retry as is


def classify(status: int, error_code: int | None, is_order_request: bool, *,
             message: str | None = None) -> Outcome:
    """Classify one HTTP response.

    Parameters
    ----------
    status : int
        HTTP status code (100..599).
    error_code : int or None
        Exchange error code from the body (``{"code": -2010, "msg": ...}``), if any.
    is_order_request : bool
        True for requests that change orders (placement, cancel, cancel-all): for these a 5XX, HTTP 408 or
        an "execution status unknown" code means the order may have executed.
    message : str, optional
        Exchange error message; only used for the USDⓈ-M 503 messages documented as failures.

    Returns
    -------
    Outcome
        * 2XX -> ``OK``.
        * 429 -> ``RATE_LIMITED``; 418 -> ``BANNED`` (IP auto-ban); 403 -> ``BANNED`` (WAF limit violated).
          https://developers.binance.com/docs/binance-spot-api-docs/rest-api/http-return-codes
        * error code -1006 / -1007 (status unknown), HTTP 408, any 5XX, and 409 (cancelReplace partially
          succeeded) -> ``UNKNOWN_STATUS`` for order requests, ``TRANSIENT`` otherwise; except a 503 whose
          message is one of the USDⓈ-M "failed operation" messages -> ``TRANSIENT``.
          https://developers.binance.com/docs/derivatives/usds-margined-futures/general-info
        * any other 4XX (-2010 new order rejected / insufficient balance, -1013 filter failure, -5022
          post-only would match, -2011 unknown order on cancel, -1021 timestamp outside recvWindow, ...)
          -> ``BUSINESS_REJECT``.
        * 1XX / 3XX (not used by the API) -> as a 5XX.

    Raises
    ------
    ValueError
        If ``status`` is not an HTTP status code.
    """
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise ValueError(f"status must be an HTTP status code 100..599, got {status!r}")
    if 200 <= status < 300:
        return Outcome.OK
    if status == 429:
        return Outcome.RATE_LIMITED
    if status in (418, 403):
        return Outcome.BANNED
    unknown = Outcome.UNKNOWN_STATUS if is_order_request else Outcome.TRANSIENT
    if status == 409:               # cancelReplace: cancel failed but the new order was placed (or vice versa)
        return Outcome.UNKNOWN_STATUS if is_order_request else Outcome.BUSINESS_REJECT
    if error_code in UNKNOWN_STATUS_CODES or status == 408:
        return unknown
    if 400 <= status < 500:
        return Outcome.BUSINESS_REJECT
    if status == 503 and message and message.strip().lower().startswith(FAILED_503_MESSAGES):
        return Outcome.TRANSIENT
    return unknown


def classify_exception(exc: BaseException, is_order_request: bool) -> Outcome | None:
    """Classify a transport failure raised instead of a response.

    A refused TCP connection means the request never left: ``TRANSIENT``. Any other timeout or connection
    error (reset, broken pipe, read timeout) may have happened after the exchange received the request:
    ``UNKNOWN_STATUS`` for order requests, ``TRANSIENT`` otherwise (5XX rule of
    https://developers.binance.com/docs/binance-spot-api-docs/rest-api/http-return-codes).

    Returns
    -------
    Outcome or None
        None when ``exc`` is not a transport error (a bug: the caller re-raises it unchanged).
    """
    if isinstance(exc, ConnectionRefusedError):
        return Outcome.TRANSIENT
    if isinstance(exc, (TimeoutError, OSError)):   # ConnectionError and socket timeouts are OSErrors
        return Outcome.UNKNOWN_STATUS if is_order_request else Outcome.TRANSIENT
    return None


_TOKEN = re.compile(r"[A-Za-z0-9+/=_\-]{24,}")
_BANNED_UNTIL = re.compile(r"banned until (\d{10,13})")
# A secret-bearing key: any key name containing signature, apiKey / api-key / api_key, secret or listenKey
# (so also X-MBX-APIKEY, secretKey, apiSecret), case-insensitive.
# Bounded affixes keep the match linear in the message length (an unbounded one backtracks quadratically
# over a long run of key characters).
_KEY = r"[A-Za-z0-9_.\-]{0,32}?(?:signature|api[-_]?key|secret|listen[-_]?key)[A-Za-z0-9_.\-]{0,32}"
_QUOTED = r"""b?"(?:[^"\\]|\\.)*"?|b?'(?:[^'\\]|\\.)*'?"""
_CLOSED = r"""b?"(?:[^"\\]|\\.)*"|b?'(?:[^'\\]|\\.)*'"""
_SECRET_FIELD = re.compile(
    # JSON and dict reprs: "apiKey": "..." / 'signature': '...' / "n": 123; the value is a whole quoted string
    # (escapes included, unterminated up to the end) or a bare token.
    rf"""(?P<qk>(?P<q>["'])(?:{_KEY})(?P=q)\s*[:=]\s*)(?:{_QUOTED}|[^,}}\]\s]*)"""
    # HTTP headers and "key: value" lines: the value runs to the end of the line.
    rf"""|(?P<hk>(?<![A-Za-z0-9_.\-])(?:{_KEY})[ \t]*:[ \t]*)[^\r\n]*"""
    # Query strings, URL-encoded forms, key=value: up to the next '&', whitespace or '"' (a closed quoted
    # string first, whole).
    rf"""|(?P<ek>(?<![A-Za-z0-9_.\-])(?:{_KEY})[ \t]*=[ \t]*)(?:{_CLOSED})?[^&\s"]*""",
    re.IGNORECASE)


def _redact_field(m: re.Match) -> str:
    return (m.group("qk") or m.group("hk") or m.group("ek")) + "<redacted>"


def sanitize_message(msg: Any, limit: int = 200) -> str:
    """Exchange or transport message fit for logs and errors, at most ``limit`` characters (then ``...``).

    Redacted as ``<redacted>``, whatever the value's length:

    - the value of every secret-bearing key (a key name containing ``signature``, ``apiKey``/``api-key``/
      ``api_key``, ``secret`` or ``listenKey``, e.g. ``X-MBX-APIKEY``, ``secretKey``; case-insensitive) in a
      query string or URL-encoded form (``signature=...`` up to ``&``, whitespace or ``"``), a JSON body or a
      Python dict repr (``"apiKey": "..."``, ``'signature': '...'``: the whole quoted string, escapes included),
      or a header / ``key: value`` line (``X-MBX-APIKEY: ...`` to the end of the line);
    - any run of 24 or more characters from ``[A-Za-z0-9+/=_-]`` (an API key or signature pasted in a sentence).

    Redaction happens before truncation, so a cut never exposes part of a secret. ``None`` gives ``""``.
    """
    if msg is None:
        return ""
    text = _TOKEN.sub("<redacted>", _SECRET_FIELD.sub(_redact_field, str(msg)))
    return text if len(text) <= limit else text[:limit] + "..."


def parse_error_body(body: Any) -> tuple[int | None, str | None]:
    """Return ``(code, msg)`` from a Binance error body (dict, or JSON text/bytes); ``(None, None)`` if absent."""
    if isinstance(body, (bytes, bytearray)):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError:
            return None, None
    if not isinstance(body, Mapping):
        return None, None
    code = body.get("code")
    if isinstance(code, bool) or not isinstance(code, int):
        try:
            code = int(code) if code is not None else None
        except (TypeError, ValueError):
            code = None
    msg = body.get("msg")
    return code, (str(msg) if msg is not None else None)


def retry_after_s(headers: Mapping[str, str] | None) -> float | None:
    """``Retry-After`` in seconds (Binance sends a number of seconds with 418/429), None if absent/invalid."""
    if not headers:
        return None
    for name, value in headers.items():
        if name.lower() == "retry-after":
            try:
                v = float(value)
            except (TypeError, ValueError):
                return None
            return v if math.isfinite(v) and v >= 0 else None
    return None


# ----------------------------------------------------------------------------------------------- retry

class RetryPolicy:
    """Capped exponential back-off with "equal jitter", seedable.

    The envelope for attempt ``n`` (1-based, the attempt that just failed) is
    ``min(cap_s, base_s * 2**(n-1))``; the delay is uniform in ``[envelope/2, envelope]``. Delays therefore
    never decrease until the cap is reached, and a fresh policy with the same seed gives the same sequence.

    Parameters
    ----------
    base_s : float
        First envelope, seconds (> 0).
    cap_s : float
        Largest envelope, seconds (>= base_s).
    max_attempts : int
        Total attempts including the first (>= 1).
    seed : int, optional
        Jitter seed; None draws from the OS.

    Raises
    ------
    ValueError
        On a non-positive base, a cap below the base or fewer than one attempt.
    """

    def __init__(self, base_s: float, cap_s: float, max_attempts: int, seed: int | None = None):
        if not (math.isfinite(base_s) and base_s > 0):
            raise ValueError(f"base_s must be > 0 seconds, got {base_s!r}")
        if not (math.isfinite(cap_s) and cap_s >= base_s):
            raise ValueError(f"cap_s must be >= base_s ({base_s}) seconds, got {cap_s!r}")
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
            raise ValueError(f"max_attempts must be an integer >= 1, got {max_attempts!r}")
        self.base_s = float(base_s)
        self.cap_s = float(cap_s)
        self.max_attempts = max_attempts
        self.seed = seed
        self._rng = random.Random(seed)

    def envelope(self, attempt: int) -> float:
        """Upper bound of the delay after failed attempt ``attempt`` (1-based), seconds."""
        if attempt < 1:
            raise ValueError(f"attempt is 1-based, got {attempt}")
        # 2**(attempt-1) overflows float for huge attempts; the cap is reached long before.
        exp = min(attempt - 1, 1023)
        return min(self.cap_s, self.base_s * (2.0 ** exp))

    def next_delay(self, attempt: int) -> float:
        """Delay before the next attempt after failed attempt ``attempt`` (1-based), seconds."""
        e = self.envelope(attempt)
        return e / 2 + self._rng.uniform(0.0, e / 2)


# ----------------------------------------------------------------------------------------------- config

def parse_interval(text: str) -> int:
    """``"10S"`` / ``"1M"`` / ``"1D"`` (intervalNum + intervalLetter, as in the headers) -> nanoseconds.

    Raises
    ------
    ValueError
        On anything else.
    """
    m = re.fullmatch(r"(\d+)([SMHD])", str(text).strip().upper())
    if not m or int(m.group(1)) <= 0:
        raise ValueError(f"interval must look like 10S, 1M, 1H or 1D, got {text!r}")
    return int(m.group(1)) * _UNIT_NS[m.group(2)]


@dataclass(frozen=True)
class LimitSpec:
    """One exchange limit: ``kind`` (REQUEST_WEIGHT | ORDERS | RAW_REQUESTS), ``interval`` ("1M"), ``limit``."""

    kind: str
    interval: str
    limit: int

    def __post_init__(self):
        if self.kind not in LIMIT_KINDS:
            raise ValueError(f"limit type must be one of {', '.join(LIMIT_KINDS)}, got {self.kind!r}")
        parse_interval(self.interval)
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 1:
            raise ValueError(f"limit must be an integer >= 1, got {self.limit!r}")
        object.__setattr__(self, "interval", self.interval.strip().upper())

    @property
    def interval_ns(self) -> int:
        return parse_interval(self.interval)


@dataclass(frozen=True)
class EndpointSpec:
    """Cost of one request: ``weight`` (REQUEST_WEIGHT units) and ``orders`` (ORDERS units)."""

    name: str
    method: str
    path: str
    weight: int
    orders: int = 0

    def __post_init__(self):
        for f in ("weight", "orders"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"endpoint {self.name}: {f} must be an integer >= 0, got {v!r}")


@dataclass(frozen=True)
class VenueLimits:
    """Limits and endpoint costs of one venue (``binance_spot``, ``binance_usdm``)."""

    venue: str
    limits: tuple[LimitSpec, ...]
    endpoints: Mapping[str, EndpointSpec]
    order_endpoint: str
    margin: float = 0.85

    def __post_init__(self):
        if self.order_endpoint not in self.endpoints:
            raise ValueError(f"venue {self.venue}: order_endpoint {self.order_endpoint!r} is not an endpoint")
        if not (0 < self.margin <= 1):
            raise ValueError(f"venue {self.venue}: margin must be in (0, 1], got {self.margin!r}")


def load_venue_limits(venue: str, path: str | Path | None = None) -> VenueLimits:
    """Load one venue from the rate-limit table (default ``config/ratelimits.yaml``).

    Raises
    ------
    KeyError
        If the venue is not in the table.
    ValueError
        On a malformed entry (message names the venue and the field).
    """
    with open(path or DEFAULT_TABLE, encoding="utf-8") as fh:
        tree = yaml.safe_load(fh) or {}
    venues = tree.get("venues") or {}
    if venue not in venues:
        raise KeyError(f"venue {venue!r} not in rate-limit table; known: {', '.join(sorted(venues))}")
    v = venues[venue]
    try:
        limits = tuple(LimitSpec(str(x["type"]), str(x["interval"]), x["limit"]) for x in v["limits"])
        endpoints = {name: EndpointSpec(name, str(e.get("method", "")), str(e.get("path", "")),
                                        e["weight"], e.get("orders", 0))
                     for name, e in v["endpoints"].items()}
        margin = float(v.get("margin", tree.get("margin", 0.85)))
        return VenueLimits(venue, limits, endpoints, str(v["order_endpoint"]), margin)
    except (KeyError, TypeError) as exc:
        raise ValueError(f"venue {venue}: malformed rate-limit entry ({type(exc).__name__}: {exc})") from None


# ----------------------------------------------------------------------------------------------- limiter

class _Window:
    """Usage of one limit: a bucketed sliding window plus the last exchange count ("floor")."""

    __slots__ = ("spec", "budget", "interval_ns", "bucket_ns", "n", "buckets", "total",
                 "floor", "floor_extra", "floor_until", "skew_ns")

    def __init__(self, spec: LimitSpec, budget: int, n_buckets: int, skew_ns: int):
        self.spec = spec
        self.budget = budget
        self.interval_ns = spec.interval_ns
        self.n = n_buckets
        self.bucket_ns = max(1, self.interval_ns // n_buckets)
        self.buckets: deque[list[int]] = deque()   # [bucket index, units], oldest first
        self.total = 0
        self.floor = 0          # exchange-reported count
        self.floor_extra = 0    # units we sent since that report
        self.floor_until = 0    # the report is valid until this ts (ns); 0 = no report
        self.skew_ns = skew_ns

    def _evict(self, ts: int) -> None:
        lo = ts // self.bucket_ns - self.n          # keep n+1 buckets: covers interval + one bucket
        b = self.buckets
        while b and b[0][0] < lo:
            self.total -= b.popleft()[1]
        if self.floor_until and ts >= self.floor_until:
            self.floor = self.floor_extra = self.floor_until = 0

    def used(self, ts: int) -> int:
        self._evict(ts)
        return max(self.total, self.floor + self.floor_extra)

    def add(self, ts: int, units: int) -> None:
        self._evict(ts)
        idx = ts // self.bucket_ns
        b = self.buckets
        if b and b[-1][0] >= idx:       # same bucket, or the clock went back: count in the newest bucket
            b[-1][1] += units
        else:
            b.append([idx, units])
        self.total += units
        if self.floor_until:
            self.floor_extra += units

    def wait_ns(self, ts: int, units: int) -> int:
        """Nanoseconds until ``units`` more fit the budget (0 = now). Assumes units <= budget."""
        self._evict(ts)
        wait = 0
        need = self.total + units - self.budget
        if need > 0:
            freed = 0
            for idx, n in self.buckets:
                freed += n
                if freed >= need:
                    wait = (idx + self.n + 1) * self.bucket_ns - ts
                    break
        if self.floor_until and self.floor + self.floor_extra + units > self.budget:
            wait = max(wait, self.floor_until - ts)
        return max(wait, 0)

    def observe(self, ts: int, count: int) -> bool:
        """Merge an exchange-reported count; return True if it raised our view of the usage."""
        self._evict(ts)
        if count <= max(self.total, self.floor + self.floor_extra):
            return False
        # Binance windows are epoch aligned ("a 1 MINUTE interval starts every minute"; 1 DAY resets at
        # 00:00 UTC): the reported count holds until the end of the current window, plus a skew allowance.
        self.floor = count
        self.floor_extra = 0
        self.floor_until = (ts // self.interval_ns + 1) * self.interval_ns + self.skew_ns
        return True


class RateLimiter:
    """Request-weight and order-count limiter for one venue.

    Parameters
    ----------
    venue : VenueLimits
        Limits and endpoint costs (see :func:`load_venue_limits`).
    margin : float, optional
        Use at most ``floor(limit * margin)`` of every limit; default ``venue.margin`` (0.85 in the table).
    buckets_per_window : int
        Resolution of the sliding windows; a window covers ``interval * (1 + 1/buckets_per_window)``.
    skew_ms : float
        Allowance (ms) for the clock offset to the exchange when holding a header count until the end of
        the exchange's fixed window.
    rate_limit_base_s, rate_limit_cap_s : float
        Venue block after a 429 without ``Retry-After`` (Binance sends none for the order-count limit):
        ``min(cap, base * 2**(k-1))`` seconds for the k-th 429 in a row (reset by any success).
    default_ban_s : float
        Block after a 418 without ``Retry-After`` or "banned until": 120 s, Binance's shortest ban
        ("from 2 minutes to 3 days", https://developers.binance.com/docs/binance-spot-api-docs/rest-api/limits).
    waf_block_s : float
        Block after a 403 (WAF limit violated; no duration is documented), seconds.

    Attributes
    ----------
    counters : collections.Counter
        Decisions taken by :func:`call_with_retries` on this venue, by name (``ok``, ``throttled``,
        ``refused``, ``rate_limited``, ``banned``, ``transient_retry``, ``retries_exhausted``,
        ``unknown_status``, ``business_reject``) and ``header_raised`` (exchange count above ours).

    Raises
    ------
    ValueError
        If a limit's budget is below 1, or an endpoint costs more than a budget (it could never be sent).
    """

    def __init__(self, venue: VenueLimits, *, margin: float | None = None, buckets_per_window: int = 60,
                 skew_ms: float = 1000.0, rate_limit_base_s: float = 1.0, rate_limit_cap_s: float = 60.0,
                 default_ban_s: float = 120.0, waf_block_s: float = 300.0):
        self.venue = venue
        self.margin = venue.margin if margin is None else float(margin)
        if not (0 < self.margin <= 1):
            raise ValueError(f"margin must be in (0, 1], got {self.margin!r}")
        if buckets_per_window < 1:
            raise ValueError(f"buckets_per_window must be >= 1, got {buckets_per_window!r}")
        self._n_buckets = int(buckets_per_window)
        self._skew_ns = int(skew_ms * 1e6)
        self.rate_limit_base_s = rate_limit_base_s
        self.rate_limit_cap_s = rate_limit_cap_s
        self.default_ban_s = default_ban_s
        self.waf_block_s = waf_block_s
        self.counters: Counter = Counter()
        self._block_all_until = 0
        self._block_all_reason = ""
        self._block_orders_until = 0
        self._consecutive_429 = 0
        self._windows: dict[tuple[str, str], _Window] = {}
        self._set_limits(venue.limits)

    @classmethod
    def from_config(cls, venue: str, path: str | Path | None = None, **kwargs) -> "RateLimiter":
        """Limiter for ``venue`` from ``config/ratelimits.yaml`` (or ``path``); kwargs as the constructor."""
        return cls(load_venue_limits(venue, path), **kwargs)

    # -- limits

    def _set_limits(self, limits: Iterable[LimitSpec]) -> None:
        specs: dict[tuple[str, str], tuple[LimitSpec, int]] = {}
        for spec in limits:
            budget = math.floor(spec.limit * self.margin)
            if budget < 1:
                raise ValueError(f"{self.venue.venue}: {spec.kind} {spec.interval} limit {spec.limit} x margin "
                                 f"{self.margin} leaves no budget")
            specs[(spec.kind, spec.interval)] = (spec, budget)
        units_of = {"REQUEST_WEIGHT": lambda ep: ep.weight, "ORDERS": lambda ep: ep.orders,
                    "RAW_REQUESTS": lambda ep: 1}
        for name, ep in self.venue.endpoints.items():          # validate before changing any state
            for (kind, interval), (spec, budget) in specs.items():
                if units_of[kind](ep) > budget:
                    raise ValueError(f"{self.venue.venue}: endpoint {name} costs {units_of[kind](ep)} but the "
                                     f"{kind} {interval} budget is {budget}")
        windows: dict[tuple[str, str], _Window] = {}
        for key, (spec, budget) in specs.items():
            old = self._windows.get(key)
            if old is not None:
                old.spec, old.budget = spec, budget      # keep the usage already counted
                windows[key] = old
            else:
                windows[key] = _Window(spec, budget, self._n_buckets, self._skew_ns)
        self._windows = windows
        self._costs = {name: tuple((w, units_of[w.spec.kind](ep)) for w in windows.values()
                                   if units_of[w.spec.kind](ep) > 0)
                       for name, ep in self.venue.endpoints.items()}
        self._order_costs = self._costs[self.venue.order_endpoint]
        self._places_orders = frozenset(name for name, ep in self.venue.endpoints.items() if ep.orders > 0)

    def set_limits_from_exchange_info(self, rate_limits: Iterable[Mapping[str, Any]]) -> None:
        """Replace the limits with exchangeInfo's ``rateLimits`` array (the exchange's authoritative values).

        Each entry: ``{"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100}``
        (https://developers.binance.com/docs/binance-spot-api-docs/rest-api/limits). Usage already counted for
        an unchanged (type, interval) is kept.

        Raises
        ------
        ValueError
            On an unknown type/interval or a non-positive limit.
        """
        specs = []
        for rl in rate_limits:
            kind = str(rl["rateLimitType"])
            if kind == "ORDER":          # USDⓈ-M spells the enum "ORDER" in places
                kind = "ORDERS"
            letter = _INTERVAL_LETTER.get(str(rl["interval"]).upper())
            if letter is None:
                raise ValueError(f"unknown rate-limit interval {rl['interval']!r}")
            specs.append(LimitSpec(kind, f"{int(rl['intervalNum'])}{letter}", int(rl["limit"])))
        self._set_limits(specs)

    def budget(self, kind: str, interval: str) -> int:
        """Usable units of a limit (``floor(limit * margin)``). Raises KeyError if the limit is unknown."""
        return self._windows[(kind, interval.upper())].budget

    def usage(self, kind: str, interval: str, ts_ns: int) -> int:
        """Units counted in a limit at ``ts_ns`` (max of our count and the exchange's). KeyError if unknown."""
        return self._windows[(kind, interval.upper())].used(ts_ns)

    # -- hot path

    def _costs_of(self, endpoint: str):
        try:
            return self._costs[endpoint]
        except KeyError:
            raise KeyError(f"{self.venue.venue}: unknown endpoint {endpoint!r}; known: "
                           f"{', '.join(sorted(self._costs))}") from None

    def check(self, endpoint: str, ts_ns: int) -> tuple[int, str]:
        """``(wait_ns, reason)`` for sending ``endpoint`` at ``ts_ns``.

        ``reason`` is ``"ok"`` (wait 0), ``"banned"`` / ``"rate_limited"`` (a venue block set after a
        418/403 or 429), or ``"<KIND> <interval>"`` of the local budget that binds (e.g. ``"ORDERS 10S"``).

        Raises
        ------
        KeyError
            Unknown endpoint.
        """
        costs = self._costs_of(endpoint)
        if ts_ns < self._block_all_until:
            return self._block_all_until - ts_ns, self._block_all_reason
        if ts_ns < self._block_orders_until and endpoint in self._places_orders:
            return self._block_orders_until - ts_ns, "rate_limited"
        wait, reason = 0, "ok"
        for w, units in costs:
            ws = w.wait_ns(ts_ns, units)
            if ws > wait:
                wait, reason = ws, f"{w.spec.kind} {w.spec.interval}"
        return wait, reason

    def acquire(self, endpoint: str, ts_ns: int) -> int:
        """0 if ``endpoint`` may be sent at ``ts_ns``, else the nanoseconds to wait. Does not count it:
        call :meth:`note_sent` when the request goes out. KeyError on an unknown endpoint."""
        return self.check(endpoint, ts_ns)[0]

    def note_sent(self, endpoint: str, ts_ns: int) -> None:
        """Count one request of ``endpoint`` sent at ``ts_ns`` (every limit it costs). KeyError if unknown."""
        for w, units in self._costs_of(endpoint):
            w.add(ts_ns, units)

    def can_send_order(self, ts_ns: int) -> bool:
        """True if an order placement (the venue's ``order_endpoint``) fits every limit now."""
        if ts_ns < self._block_all_until or ts_ns < self._block_orders_until:
            return False
        for w, units in self._order_costs:
            if w.used(ts_ns) + units > w.budget:
                return False
        return True

    def blocked_until(self) -> tuple[int, str]:
        """``(ts_ns, reason)`` of the venue-wide block (``(0, "")`` if none was ever set)."""
        return self._block_all_until, self._block_all_reason

    # -- feedback from responses

    def update_from_headers(self, headers: Mapping[str, str] | None, ts_ns: int) -> None:
        """Merge ``X-MBX-USED-WEIGHT-<n><L>`` / ``X-MBX-ORDER-COUNT-<n><L>`` counts (the higher count wins).

        Header names are matched case-insensitively; headers for limits we do not know and malformed values
        are ignored. https://developers.binance.com/docs/binance-spot-api-docs/rest-api/limits
        """
        if not headers:
            return
        for name, value in headers.items():
            lname = name.lower()
            for prefix, kind in _HEADER_KIND:
                if lname.startswith(prefix):
                    w = self._windows.get((kind, lname[len(prefix):].upper()))
                    if w is None:
                        break
                    try:
                        count = int(value)
                    except (TypeError, ValueError):
                        break
                    if w.observe(ts_ns, count):
                        self.counters["header_raised"] += 1
                    break

    def note_ok(self) -> None:
        """A request succeeded: reset the 429 escalation."""
        self._consecutive_429 = 0

    def on_rate_limited(self, ts_ns: int, retry_after: float | None, *, orders_only: bool = False) -> int:
        """Block after a 429; return the block end (ns).

        ``Retry-After`` seconds when given, else ``min(cap, base * 2**(k-1))`` for the k-th 429 in a row.
        ``orders_only`` (error -1015, the order-count limit) blocks order placements only, so cancels -- which
        do not count towards the order limit -- can still go out.
        """
        self._consecutive_429 += 1
        if retry_after is not None:
            delay_s = retry_after
        else:
            k = min(self._consecutive_429 - 1, 1023)
            delay_s = min(self.rate_limit_cap_s, self.rate_limit_base_s * 2.0 ** k)
        until = ts_ns + int(delay_s * NS_PER_S)
        if orders_only:
            self._block_orders_until = max(self._block_orders_until, until)
            return until
        return self._block_all(ts_ns, until, "rate_limited")

    def on_banned(self, ts_ns: int, retry_after: float | None, banned_until_ms: int | None = None, *,
                  waf: bool = False) -> int:
        """Block everything after a 418 (or a 403 WAF block, ``waf=True``); return the block end (ns).

        The end is the latest of ``Retry-After`` and the "banned until <ms>" of the error message; without
        either, ``default_ban_s`` (418) or ``waf_block_s`` (403).
        """
        candidates = []
        if retry_after is not None:
            candidates.append(ts_ns + int(retry_after * NS_PER_S))
        if banned_until_ms is not None:
            candidates.append(int(banned_until_ms) * 1_000_000)
        if not candidates:
            candidates.append(ts_ns + int((self.waf_block_s if waf else self.default_ban_s) * NS_PER_S))
        return self._block_all(ts_ns, max(candidates), "banned")

    def _block_all(self, ts_ns: int, until: int, reason: str) -> int:
        """Extend the venue-wide block to ``until``; a ban dominates a rate-limit block it overlaps."""
        if ts_ns < self._block_all_until:
            until = max(until, self._block_all_until)
            if self._block_all_reason == "banned":
                reason = "banned"
        self._block_all_until, self._block_all_reason = until, reason
        return until


# ----------------------------------------------------------------------------------------------- errors

class ExchangeCallError(Exception):
    """Base of the errors raised by :func:`call_with_retries`; ``venue`` and ``endpoint`` name the call."""

    def __init__(self, text: str, *, venue: str, endpoint: str):
        super().__init__(text)
        self.venue = venue
        self.endpoint = endpoint


class RateLimitedError(ExchangeCallError):
    """The venue is rate limited until ``retry_at_ns``; ``local`` is True when our own budget refused the
    request (no 429 was received)."""

    def __init__(self, text: str, *, venue: str, endpoint: str, retry_at_ns: int, local: bool = False):
        super().__init__(text, venue=venue, endpoint=endpoint)
        self.retry_at_ns = retry_at_ns
        self.local = local


class BannedError(ExchangeCallError):
    """The IP is banned (418) or WAF-blocked (403) until ``until_ns``; every request is blocked until then."""

    def __init__(self, text: str, *, venue: str, endpoint: str, until_ns: int):
        super().__init__(text, venue=venue, endpoint=endpoint)
        self.until_ns = until_ns


class BusinessRejectError(ExchangeCallError):
    """The exchange refused the request (``code``, sanitized ``msg``, HTTP ``status``); never retried."""

    def __init__(self, code: int | None, msg: str, *, venue: str = "", endpoint: str = "",
                 status: int | None = None):
        super().__init__(f"{venue} {endpoint}: rejected, HTTP {status}, code {code}: {msg}",
                         venue=venue, endpoint=endpoint)
        self.code = code
        self.msg = msg
        self.status = status


class UnknownStatusError(ExchangeCallError):
    """An order placement/cancel may or may not have executed: query the order by client order id before
    doing anything else with it. ``status`` / ``code`` are None for a transport failure (``cause`` names
    the exception type)."""

    def __init__(self, text: str, *, venue: str, endpoint: str, status: int | None, code: int | None,
                 cause: str | None = None):
        super().__init__(text, venue=venue, endpoint=endpoint)
        self.status = status
        self.code = code
        self.cause = cause


class RetriesExhaustedError(ExchangeCallError):
    """Transient failures on every one of ``attempts`` attempts; ``last_status`` / ``last_cause`` of the last."""

    def __init__(self, text: str, *, venue: str, endpoint: str, attempts: int, last_status: int | None,
                 last_cause: str | None):
        super().__init__(text, venue=venue, endpoint=endpoint)
        self.attempts = attempts
        self.last_status = last_status
        self.last_cause = last_cause


# ----------------------------------------------------------------------------------------------- helper

Response = tuple[int, Mapping[str, str], Any]


async def call_with_retries(fn: Callable[[], Awaitable[Response]], *, endpoint: str, limiter: RateLimiter,
                            policy: RetryPolicy, clock: Callable[[], int],
                            sleep: Callable[[float], Awaitable[Any]], is_order_request: bool,
                            max_wait_s: float = 1.0) -> Response:
    """Send one request through the limiter and the retry policy.

    Before every attempt the limiter is asked; a local wait up to ``max_wait_s`` is slept, a longer one or a
    venue block raises without calling ``fn``. After every response the limiter is updated from the headers.
    Each decision is logged once (logger ``mmcore.venues.ratelimit``, endpoint name only, never request parameters)
    and counted in ``limiter.counters``.

    Parameters
    ----------
    fn : async callable
        Sends the request; returns ``(status, headers, body)`` (body: dict or JSON text) or raises a
        connection/timeout error (``OSError`` / ``TimeoutError``).
    endpoint : str
        Endpoint name from the venue's table (``new_order``, ``cancel_order``, ...).
    limiter : RateLimiter
    policy : RetryPolicy
        Back-off and attempt cap for ``TRANSIENT`` outcomes.
    clock : callable
        Current time, int ns since epoch.
    sleep : async callable
        ``await sleep(seconds)`` (``asyncio.sleep`` in production, a recorder in tests).
    is_order_request : bool
        True for order placement / cancel / cancel-all: an unknown outcome raises
        :class:`UnknownStatusError` instead of being retried.
    max_wait_s : float
        Longest local throttle wait slept before an attempt, seconds.

    Returns
    -------
    tuple
        The ``(status, headers, body)`` of the successful (2XX) response.

    Raises
    ------
    RateLimitedError
        429 received (the venue is blocked until ``retry_at_ns``), or the limiter would make us wait longer
        than ``max_wait_s`` (``local=True``).
    BannedError
        418 / 403 received, or the venue is still banned.
    BusinessRejectError
        4XX business reject (``code``, ``msg``); ``fn`` is not called again.
    UnknownStatusError
        Order request with a 5XX / 408 / status-unknown code / ambiguous transport failure; ``fn`` is not
        called again -- reconcile by client order id.
    RetriesExhaustedError
        ``policy.max_attempts`` transient failures.
    KeyError
        Unknown endpoint.
    """
    venue = limiter.venue.venue
    counters = limiter.counters
    max_wait_ns = int(max_wait_s * NS_PER_S)
    attempt = 0
    while True:
        attempt += 1
        # ---- gate
        while True:
            now = clock()
            wait, reason = limiter.check(endpoint, now)
            if wait == 0:
                break
            if reason in ("banned", "rate_limited") or wait > max_wait_ns:
                counters["refused"] += 1
                log.warning("%s %s: refused locally (%s) for %.3f s, attempt %d", venue, endpoint, reason,
                            wait / NS_PER_S, attempt)
                if reason == "banned":
                    raise BannedError(f"{venue} {endpoint}: banned for {wait / NS_PER_S:.3f} s more",
                                      venue=venue, endpoint=endpoint, until_ns=now + wait)
                raise RateLimitedError(f"{venue} {endpoint}: {reason}, retry in {wait / NS_PER_S:.3f} s",
                                       venue=venue, endpoint=endpoint, retry_at_ns=now + wait,
                                       local=reason != "rate_limited")
            counters["throttled"] += 1
            log.info("%s %s: throttled by %s, waiting %.3f s", venue, endpoint, reason, wait / NS_PER_S)
            await sleep(wait / NS_PER_S)
        limiter.note_sent(endpoint, now)

        # ---- attempt
        status: int | None = None
        cause: str | None = None
        code: int | None = None
        headers: Mapping[str, str] | None = None
        body: Any = None
        msg_raw: str | None = None
        try:
            status, headers, body = await fn()
        except Exception as exc:      # noqa: BLE001 - classified below, re-raised if not a transport error
            outcome = classify_exception(exc, is_order_request)
            if outcome is None:
                raise
            cause = type(exc).__name__
            msg = ""
        else:
            now = clock()
            limiter.update_from_headers(headers, now)
            if not 200 <= status < 300:
                code, msg_raw = parse_error_body(body)
            outcome = classify(status, code, is_order_request, message=msg_raw)
            msg = sanitize_message(msg_raw)

        what = f"HTTP {status}, code {code}" if cause is None else f"transport error {cause}"
        if outcome is Outcome.OK:
            limiter.note_ok()
            counters["ok"] += 1
            log.debug("%s %s: ok, HTTP %s, attempt %d", venue, endpoint, status, attempt)
            return status, headers, body

        if outcome is Outcome.RATE_LIMITED:
            now = clock()
            until = limiter.on_rate_limited(now, retry_after_s(headers), orders_only=code == TOO_MANY_ORDERS)
            counters["rate_limited"] += 1
            log.warning("%s %s: rate limited (%s), %s blocked for %.3f s", venue, endpoint, what,
                        "order placement" if code == TOO_MANY_ORDERS else "venue", (until - now) / NS_PER_S)
            raise RateLimitedError(f"{venue} {endpoint}: rate limited ({what}), retry in "
                                   f"{(until - now) / NS_PER_S:.3f} s", venue=venue, endpoint=endpoint,
                                   retry_at_ns=until)

        if outcome is Outcome.BANNED:
            now = clock()
            m = _BANNED_UNTIL.search(msg_raw or "")
            banned_ms = None
            if m:
                v = int(m.group(1))
                banned_ms = v if len(m.group(1)) == 13 else v * 1000
            until = limiter.on_banned(now, retry_after_s(headers), banned_ms, waf=status == 403)
            counters["banned"] += 1
            log.critical("%s %s: %s -- ALL requests to %s blocked for %.1f s", venue, endpoint,
                         "IP BANNED" if status == 418 else "WAF BLOCKED", venue, (until - now) / NS_PER_S)
            raise BannedError(f"{venue} {endpoint}: banned ({what}) for {(until - now) / NS_PER_S:.1f} s",
                              venue=venue, endpoint=endpoint, until_ns=until)

        if outcome is Outcome.BUSINESS_REJECT:
            counters["business_reject"] += 1
            log.info("%s %s: business reject, %s: %s", venue, endpoint, what, msg)
            raise BusinessRejectError(code, msg, venue=venue, endpoint=endpoint, status=status)

        if outcome is Outcome.UNKNOWN_STATUS:
            counters["unknown_status"] += 1
            log.error("%s %s: execution status UNKNOWN (%s) -- not re-sent, reconcile by client order id",
                      venue, endpoint, what)
            raise UnknownStatusError(f"{venue} {endpoint}: execution status unknown ({what}); query the order "
                                     f"by client order id before re-sending", venue=venue, endpoint=endpoint,
                                     status=status, code=code, cause=cause) from None

        # TRANSIENT
        if attempt >= policy.max_attempts:
            counters["retries_exhausted"] += 1
            log.error("%s %s: giving up after %d attempts (last: %s)", venue, endpoint, attempt, what)
            raise RetriesExhaustedError(f"{venue} {endpoint}: {attempt} attempts failed (last: {what})",
                                        venue=venue, endpoint=endpoint, attempts=attempt, last_status=status,
                                        last_cause=cause) from None
        delay = policy.next_delay(attempt)
        counters["transient_retry"] += 1
        log.warning("%s %s: transient failure (%s), retry %d/%d in %.3f s", venue, endpoint, what,
                    attempt + 1, policy.max_attempts, delay)
        await sleep(delay)
