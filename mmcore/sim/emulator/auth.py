"""API keys, HMAC-SHA256 and Ed25519 signatures and the timestamp / recvWindow rule.

- REST [S-REST-OLD] (research notes /work/research/binance_wire.md §5.2): the key comes in the ``X-MBX-APIKEY``
  header; ``signature`` = HMAC-SHA256(secret, totalParams) in hex, totalParams = the query string exactly as
  received concatenated with the body exactly as received (no ``&`` between, nothing re-sorted or re-encoded),
  without the ``signature`` parameter; the signature is not case-sensitive.
- WebSocket API [S-WSAPI] (§3.2): the payload is every parameter except ``signature``, ``apiKey`` included, sorted by
  name, as ``name=value`` joined with ``&``; JSON values are written as their text (strings as is, booleans
  ``true``/``false``, integers in decimal).
- Timing [S-WSAPI][S-REST-OLD]: ``recvWindow`` defaults to 5000 ms and may not exceed 60 000 (-1131); a request is
  accepted iff ``timestamp < serverTime + 1000`` and ``serverTime - timestamp <= recvWindow`` (-1021 otherwise);
  ``timestamp`` in µs (16 digits) is accepted.
- Errors: no key or a key of the wrong format -2014, an unknown key -2015 (both HTTP 401, [MAXT]); a missing
  ``signature`` / ``timestamp`` -1102; a bad signature -1022 (HTTP 400); a parameter given twice -1101.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from urllib.parse import parse_qsl, unquote

from cryptography.exceptions import InvalidSignature

from mmcore.sim.emulator.errors import (BAD_API_KEY_FMT, BAD_RECV_WINDOW, BAD_SIGNATURE, DUPLICATE_PARAM,
                                        REJECTED_KEY, TS_AHEAD, TS_OUTSIDE, err, mandatory)

KEY_RE = re.compile(r"^[\x21-\x7e]{1,128}$")
_HEX = re.compile(r"^[0-9a-fA-F]{64}$")


def sign(secret: str, payload: str) -> str:
    """HMAC-SHA256 of ``payload`` with ``secret``, lowercase hex."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def signature_ok(secret: str, payload: str, signature: str) -> bool:
    if not isinstance(signature, str) or not _HEX.match(signature):
        return False
    return hmac.compare_digest(sign(secret, payload), signature.lower())


def ed25519_signature_ok(public_key, payload: str, signature) -> bool:
    """Ed25519 keys: ``signature`` is the base64 of the 64-byte signature of the ASCII payload (REST: also
    percent-encoded) [S-WSAPI "SIGNED request example (Ed25519)"]."""
    if not isinstance(signature, str) or not 0 < len(signature) <= 200:
        return False
    if "%" in signature:
        signature = unquote(signature)
    try:
        raw = base64.b64decode(signature, validate=True)
        public_key.verify(raw, payload.encode())
    except (ValueError, InvalidSignature):
        return False
    return True


def account_signature_ok(acc, payload: str, signature) -> bool:
    """The signature check of ``acc``'s key type (HMAC or Ed25519)."""
    if acc.public_key is not None:
        return ed25519_signature_ok(acc.public_key, payload, signature)
    return signature_ok(acc.secret, payload, signature)


def account_of(accounts: dict, api_key):
    """The account of ``api_key``; raises -2014 (missing / malformed) or -2015 (unknown), HTTP 401."""
    if not isinstance(api_key, str) or not KEY_RE.match(api_key):
        raise err(BAD_API_KEY_FMT, 401)
    acc = accounts.get(api_key)
    if acc is None:
        raise err(REJECTED_KEY, 401)
    return acc


def _strip_signature(part: str):
    """``(part without its signature parameter, signature or None)``."""
    if not part:
        return part, None
    pieces = part.split("&")
    sig = None
    kept = []
    for p in pieces:
        if p.startswith("signature=") and sig is None:
            sig = p[len("signature="):]
        else:
            kept.append(p)
    return "&".join(kept), sig


def rest_params(query: str, body: str) -> tuple[dict, str, str | None]:
    """``(params, signed payload, signature)`` of a REST request. Raises -1101 for a parameter given twice."""
    q, sig_q = _strip_signature(query)
    b, sig_b = _strip_signature(body)
    params: dict = {}
    for part in (q, b):
        for k, v in parse_qsl(part, keep_blank_values=True):
            if k in params:
                raise err(DUPLICATE_PARAM)
            params[k] = v
    if sig_q is not None and sig_b is not None:
        raise err(DUPLICATE_PARAM)
    return params, q + b, sig_q if sig_q is not None else sig_b


def render(v) -> str:
    """A JSON value as the WS API signature payload writes it."""
    if v is True:
        return "true"
    if v is False:
        return "false"
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)
    return str(v)


def ws_payload(params: dict) -> str:
    """The WS API signature payload of ``params`` (sorted, without ``signature``)."""
    return "&".join(f"{k}={render(params[k])}" for k in sorted(params) if k != "signature")


def _int(v, name: str) -> int:
    if type(v) is bool:
        raise mandatory(name)
    try:
        out = int(v) if isinstance(v, (int, str)) else None
    except ValueError:
        out = None
    if out is None or out < 0 or out >= 1 << 62:
        raise mandatory(name)
    return out


def check_time(params: dict, max_window_ms: int, now_ms: int | None = None) -> None:
    """The timestamp / recvWindow rule; raises -1102, -1131 or -1021."""
    ts = params.get("timestamp")
    if ts is None or ts == "":
        raise mandatory("timestamp")
    ts = _int(ts, "timestamp")
    if ts >= 10**15:                                 # µs
        ts //= 1000
    rw = params.get("recvWindow", 5000)
    try:
        window = float(rw) if not isinstance(rw, bool) else -1.0
    except (TypeError, ValueError):
        window = -1.0
    if not 0 < window <= max_window_ms:
        raise err(BAD_RECV_WINDOW)
    now = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    if ts >= now + 1000:
        raise err(TS_AHEAD)
    if now - ts > window:
        raise err(TS_OUTSIDE)


def check_signed(acc, payload: str, signature, params: dict, max_window_ms: int) -> None:
    """Signature (-1102 missing, -1022 bad) then the timestamp rule."""
    if signature is None or signature == "":
        raise mandatory("signature")
    if not account_signature_ok(acc, payload, signature):
        raise err(BAD_SIGNATURE)
    check_time(params, max_window_ms)
