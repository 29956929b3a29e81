"""Venue-neutral errors and wire bounds shared by every venue adapter (and understood by the sessions).

- :class:`QueryError`: a venue query failed (an error answer, a malformed answer, no answer in time). Recovery
  and the stop sequence treat it like a network error: retried at the next connect, never fatal.
- :class:`MalformedMessage`: a message from the venue breaks its protocol (the text names the field); the
  adapter counts it, logs it and skips it, never crashes on it.
"""
from __future__ import annotations

#: int64 bounds: every number from a venue is checked against them before it reaches compiled code.
INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
#: Longest client/venue order id accepted on the wire (Binance allows 36 characters in ``newClientOrderId``).
MAX_ID_LEN = 64


class QueryError(RuntimeError):
    """A venue query was answered with an error, or its answer was malformed, or none came in time (recovery
    retries it, like a network error)."""


class MalformedMessage(ValueError):
    """A message from the venue that breaks the protocol; the text names the field and what is wrong."""
