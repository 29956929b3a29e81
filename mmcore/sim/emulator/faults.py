"""Fault injection, switched at run time through ``POST /_emulator/fault`` (JSON ``{"kind": ..., params}``).

Kinds (parameters and defaults):

- ``drop`` ``{"target": "market"|"wsapi"|"userdata"|"all" = "all", "close_code": int|null = null}``: now, every open
  WebSocket of the target is dropped (TCP abort; with ``close_code``, closed with that code instead).
- ``skip_diff`` ``{"symbol": "BTCUSDT"|null = all, "count": 1}``: every depth stream of the symbol (recorded and
  derived) leaves out its next ``count`` events; clients see a sequence gap.
- ``stall`` ``{"seconds": float|null = null}``: the feed stops (no frame on any stream; the exchange still
  answers requests) for ``seconds``, or until ``POST /_emulator/resume`` (same as ``POST /_emulator/pause``).
- ``malformed`` ``{"target": "market"|"wsapi"|"userdata"|"all" = "market", "count": 1, "payload": str|null}``: now,
  ``count`` malformed text frames (default: a truncated JSON object) are sent on every open WebSocket of the target,
  before whatever comes next.
- ``rate_limited`` ``{"count": 1, "retry_after": 2, "target": "rest"|"wsapi"|"all" = "all"}``: the next ``count``
  requests get 429 ``-1003`` with ``Retry-After`` (REST header, seconds) / ``data.retryAfter`` (WS API, ms epoch).
- ``banned``: the same with 418 and the ban message.
- ``server_error`` ``{"count": 1, "status": 503, "target": "all", "execute": false}``: the next ``count`` requests get
  that 5xx status with ``-1001``; with ``execute: true`` the request is carried out first (execution status
  unknown to the client, as Binance documents for 5xx).
- ``reject_orders`` ``{"count": 1, "apiKey": str|null, "code": -2010, "msg": ...}``: the next ``count`` new orders
  (REST or WS API; of that account, or any) are refused with that error (HTTP/WS status 400).
- ``refuse_ws`` ``{"count": 1, "target": "all", "status": 503, "retry_after": null}``: the next ``count`` WebSocket
  upgrades of the target are answered with that HTTP status instead of 101.
- ``expire_listen_key`` ``{"apiKey": str|null, "listenKey": str|null}``: now, that listenKey (or all of the
  account, or all) expires: ``listenKeyExpired`` is pushed and the key is gone.
- ``duplicate_reports`` ``{"count": 1, "apiKey": str|null}``: the next ``count`` execution reports (spot
  ``executionReport``, USDⓈ-M ``ORDER_TRADE_UPDATE``) are sent twice.
- ``reorder_reports`` ``{"count": 1, "apiKey": str|null, "hold_ms": 1000}``: the next ``count`` execution reports are
  each held back and sent after the one that follows it (or after ``hold_ms`` if none follows).
- ``clear``: every active fault is removed (a stall is resumed).

``GET /_emulator/faults`` lists the active faults with what is left of each, and how often each kind took effect.
"""
from __future__ import annotations

import itertools
from collections import Counter

TARGETS_WS = ("market", "wsapi", "userdata", "all")
TARGETS_REQ = ("rest", "wsapi", "all")
KINDS = ("drop", "skip_diff", "stall", "malformed", "rate_limited", "banned", "server_error", "reject_orders",
         "refuse_ws", "expire_listen_key", "duplicate_reports", "reorder_reports", "clear")
_COUNTED = ("skip_diff", "rate_limited", "banned", "server_error", "reject_orders", "refuse_ws", "duplicate_reports",
            "reorder_reports")


class Fault:
    __slots__ = ("id", "kind", "params", "remaining", "skipped")

    def __init__(self, fid, kind, params, remaining):
        self.id, self.kind, self.params, self.remaining = fid, kind, params, remaining
        self.skipped: dict = {}

    def wire(self) -> dict:
        out = {"id": self.id, "kind": self.kind, **self.params, "remaining": self.remaining}
        if self.kind == "skip_diff":
            out["skipped"] = dict(self.skipped)
        return out


def _int(spec: dict, name: str, default, lo: int, hi: int):
    v = spec.get(name, default)
    if v is None and default is None:
        return None
    if type(v) is not int or not lo <= v <= hi:
        raise ValueError(f"{name} = {str(v)[:40]}: expected an integer in [{lo}, {hi}]")
    return v


def _num(spec: dict, name: str, default, lo: float, hi: float):
    v = spec.get(name, default)
    if v is None and default is None:
        return None
    if type(v) not in (int, float) or not lo <= v <= hi:
        raise ValueError(f"{name} = {str(v)[:40]}: expected a number in [{lo}, {hi}]")
    return v


def _choice(spec: dict, name: str, default, allowed):
    v = spec.get(name, default)
    if v not in allowed:
        raise ValueError(f"{name} = {str(v)[:40]}: expected one of {', '.join(allowed)}")
    return v


def _str(spec: dict, name: str, maxlen: int = 200):
    v = spec.get(name)
    if v is not None and (type(v) is not str or not 0 < len(v) <= maxlen):
        raise ValueError(f"{name}: expected a string of 1 to {maxlen} characters or null")
    return v


class Faults:
    """Active faults. ``actions`` carries out the immediate kinds: an object with ``drop(target, close_code)``,
    ``malformed(target, count, payload)``, ``stall(seconds|None)``, ``resume()``, ``expire_listen_keys(api_key,
    listen_key) -> int``."""

    def __init__(self, actions):
        self.actions = actions
        self.active: list[Fault] = []
        self.applied = Counter()
        self._ids = itertools.count(1)

    def add(self, spec) -> dict:
        """Validate and switch on one fault. Returns ``{"id", "kind", ...}`` (immediate kinds: what was done).
        Raises ValueError naming the bad field."""
        if not isinstance(spec, dict):
            raise ValueError("expected a JSON object {\"kind\": ..., ...}")
        kind = spec.get("kind")
        if kind not in KINDS:
            raise ValueError(f"kind = {str(kind)[:40]}: expected one of {', '.join(KINDS)}")
        known = {"kind", "target", "close_code", "symbol", "count", "seconds", "payload", "retry_after", "status",
                 "execute", "apiKey", "code", "msg", "listenKey", "hold_ms"}
        extra = sorted(set(spec) - known)
        if extra:
            raise ValueError(f"unknown field(s) {', '.join(str(e)[:40] for e in extra)}")
        fid = next(self._ids)
        a = self.actions
        if kind == "clear":
            n = len(self.active)
            self.active.clear()
            a.resume()
            return {"id": fid, "kind": kind, "cleared": n}
        if kind == "drop":
            target = _choice(spec, "target", "all", TARGETS_WS)
            code = _int(spec, "close_code", None, 1000, 4999)
            n = a.drop(target, code)
            self.applied[kind] += 1
            return {"id": fid, "kind": kind, "target": target, "dropped": n}
        if kind == "malformed":
            target = _choice(spec, "target", "market", TARGETS_WS)
            count = _int(spec, "count", 1, 1, 1000)
            payload = _str(spec, "payload", 1 << 16)
            n = a.malformed(target, count, payload)
            self.applied[kind] += 1
            return {"id": fid, "kind": kind, "target": target, "connections": n, "count": count}
        if kind == "stall":
            seconds = _num(spec, "seconds", None, 0.001, 86400)
            a.stall(seconds)
            self.applied[kind] += 1
            return {"id": fid, "kind": kind, "seconds": seconds}
        if kind == "expire_listen_key":
            n = a.expire_listen_keys(_str(spec, "apiKey"), _str(spec, "listenKey"))
            self.applied[kind] += 1
            return {"id": fid, "kind": kind, "expired": n}
        count = _int(spec, "count", 1, 1, 1_000_000)
        params: dict = {}
        if kind == "skip_diff":
            params["symbol"] = _str(spec, "symbol", 40)
        elif kind in ("rate_limited", "banned"):
            params["retry_after"] = _int(spec, "retry_after", 2, 0, 86400)
            params["target"] = _choice(spec, "target", "all", TARGETS_REQ)
        elif kind == "server_error":
            params["status"] = _int(spec, "status", 503, 500, 599)
            params["target"] = _choice(spec, "target", "all", TARGETS_REQ)
            ex = spec.get("execute", False)
            if type(ex) is not bool:
                raise ValueError("execute: expected true or false")
            params["execute"] = ex
        elif kind == "reject_orders":
            params["apiKey"] = _str(spec, "apiKey")
            params["code"] = _int(spec, "code", -2010, -99999, -1)
            params["msg"] = _str(spec, "msg", 500) or "This account may not place or cancel orders."
        elif kind == "refuse_ws":
            params["target"] = _choice(spec, "target", "all", TARGETS_WS)
            params["status"] = _int(spec, "status", 503, 300, 599)
            params["retry_after"] = _int(spec, "retry_after", None, 0, 86400)
        elif kind in ("duplicate_reports", "reorder_reports"):
            params["apiKey"] = _str(spec, "apiKey")
            if kind == "reorder_reports":
                params["hold_ms"] = _int(spec, "hold_ms", 1000, 1, 600_000)
        f = Fault(fid, kind, params, count)
        self.active.append(f)
        return f.wire()

    def wire(self) -> dict:
        return {"active": [f.wire() for f in self.active], "applied": dict(self.applied)}

    def _take(self, kind: str, pred=None) -> Fault | None:
        for f in self.active:
            if f.kind == kind and (pred is None or pred(f)):
                f.remaining -= 1
                self.applied[kind] += 1
                if f.remaining <= 0:
                    self.active.remove(f)
                return f
        return None

    # --- queries from the request and stream paths ---
    def take_http(self, target: str) -> Fault | None:
        """A 429 / 418 / 5xx fault for the next request on ``target`` (``rest`` or ``wsapi``), consumed."""
        for kind in ("rate_limited", "banned", "server_error"):
            f = self._take(kind, lambda f: f.params["target"] in (target, "all"))
            if f is not None:
                return f
        return None

    def take_reject(self, api_key: str) -> Fault | None:
        return self._take("reject_orders", lambda f: f.params["apiKey"] in (None, api_key))

    def take_refuse_ws(self, kind: str) -> Fault | None:
        return self._take("refuse_ws", lambda f: f.params["target"] in (kind, "all"))

    def take_report_fault(self, api_key: str) -> Fault | None:
        """A duplicate / reorder fault for the next execution report of ``api_key``, consumed."""
        for kind in ("duplicate_reports", "reorder_reports"):
            f = self._take(kind, lambda f: f.params["apiKey"] in (None, api_key))
            if f is not None:
                return f
        return None

    def skip_frame(self, symbol: str, stream: str) -> bool:
        """True if this depth-stream event is to be left out (a ``skip_diff`` fault)."""
        if not self.active:
            return False
        for f in self.active:
            if f.kind == "skip_diff" and f.params["symbol"] in (None, symbol):
                n = f.skipped.get(stream, 0)
                if n < f.remaining:
                    f.skipped[stream] = n + 1
                    self.applied["skip_diff"] += 1
                    return True
        return False
