"""Pluggable models of the simulated exchange, each behind a small interface (as in hftbacktest).

- Latency model: when a request sent at ``ts`` takes effect at the exchange (``order_arrival``,
  ``cancel_arrival``: the *entry* latency) and when the exchange's report of what happened at ``ts`` reaches
  us (``response``: the *response* latency). Constant (:class:`ConstantLatency`) or taken from recorded
  samples (:class:`RecordedLatency`, hftbacktest's ``IntpOrderLatency`` idea).
- Queue model: how much quantity stands ahead of our order at its price, and how trades and depth changes at
  that price move it (:class:`ConservativeQueue`, :class:`RiskAverseQueue`, :class:`ProbQueue`).
- Fee model: the fee of a fill in quote currency.

Queue interface (what :class:`mmcore.sim.exchange.SimExchange` calls; ``o`` has ``ahead`` and ``cum_trade``):

- ``new_order(o, level_qty)``: our order joins the back of its level of ``level_qty`` lots;
- ``trade(o, qty) -> lots``: a trade of ``qty`` lots at our price; returns the lots it fills of ours;
- ``depth(o, prev_qty, new_qty)``: the level at our price went from ``prev_qty`` to ``new_qty`` lots.

Sources: hftbacktest ``hftbacktest/src/backtest/models/queue.rs`` (RiskAdverseQueueModel, ProbQueueModel and
its probability functions) and ``hftbacktest/src/backtest/models/latency.rs`` (ConstantLatency,
IntpOrderLatency), https://github.com/nkaz001/hftbacktest; the queue-position estimate of
https://rigtorp.se/2013/06/08/estimating-order-queue-position.html.
"""
from __future__ import annotations

import math
import random
from bisect import bisect_right
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

#: Largest latency (ns) a latency model accepts from config or a samples file: 60 s.
MAX_LATENCY_NS = 60_000_000_000
#: Most rows a recorded-latency file may have.
MAX_LATENCY_SAMPLES = 10_000_000
#: Largest recorded-latency file read (bytes).
MAX_LATENCY_FILE_BYTES = 512 << 20


@dataclass(frozen=True)
class ConstantLatency:
    """Fixed one-way latencies in ns (hftbacktest ``ConstantLatency``: entry and response).

    ``entry_ns``: submit -> order resting (or rejected) at the exchange.
    ``cancel_ns``: cancel request -> cancel effective (fills can still hit the order meanwhile).
    ``response_ns``: the exchange acts -> its report (ack, fill, cancel) reaches us (0: at once).
    """

    entry_ns: int
    cancel_ns: int
    response_ns: int = 0

    def order_arrival(self, ts_ns: int) -> int:
        return ts_ns + self.entry_ns

    def cancel_arrival(self, ts_ns: int) -> int:
        return ts_ns + self.cancel_ns

    def response(self, ts_ns: int) -> int:
        """Local time (ns) at which a report of what the exchange did at ``ts_ns`` is delivered."""
        return ts_ns + self.response_ns


class RecordedLatency:
    """Latencies from recorded order round trips: rows ``(ts_ns, entry_ns, response_ns)``.

    ``mode="interpolate"`` (hftbacktest ``IntpOrderLatency``, ``latency.rs``): the entry latency of a request
    sent at ``ts`` is linearly interpolated between the samples around ``ts`` (the first / last sample outside
    their range); the response latency of a report made at exchange time ``ts`` likewise. ``mode="draw"``: each
    request and each report draws one sample's entry / response latency uniformly at random from a
    ``random.Random(seed)`` (deterministic given the seed and the call order). Cancels take the entry latency.

    Raises ValueError: no samples, more than :data:`MAX_LATENCY_SAMPLES`, times not increasing, a latency
    outside ``[0, MAX_LATENCY_NS]``, an unknown mode.
    """

    def __init__(self, samples, mode: str = "interpolate", seed: int = 0):
        rows = [tuple(int(x) for x in r) for r in samples]
        if not rows:
            raise ValueError("recorded latency: no samples")
        if len(rows) > MAX_LATENCY_SAMPLES:
            raise ValueError(f"recorded latency: {len(rows)} samples, more than {MAX_LATENCY_SAMPLES}")
        if mode not in ("interpolate", "draw"):
            raise ValueError(f"recorded latency: mode {mode!r}, not interpolate or draw")
        for i, r in enumerate(rows):
            if len(r) != 3:
                raise ValueError(f"recorded latency: row {i + 1} has {len(r)} values, needs ts_ns,entry_ns,response_ns")
            if not (0 <= r[1] <= MAX_LATENCY_NS and 0 <= r[2] <= MAX_LATENCY_NS):
                raise ValueError(f"recorded latency: row {i + 1}: latency outside [0, {MAX_LATENCY_NS}] ns")
            if i and r[0] <= rows[i - 1][0]:
                raise ValueError(f"recorded latency: row {i + 1}: ts_ns not increasing")
        self.ts = [r[0] for r in rows]
        self.entry = [r[1] for r in rows]
        self.resp = [r[2] for r in rows]
        self.mode = mode
        self._rng = random.Random(seed)

    @classmethod
    def from_file(cls, path, mode: str = "interpolate", seed: int = 0) -> "RecordedLatency":
        """Read a CSV text file of ``ts_ns,entry_ns,response_ns`` integer rows (``#`` comments and a header line
        starting with a letter are skipped); at most :data:`MAX_LATENCY_FILE_BYTES`. Raises ValueError naming
        the file and the row."""
        p = Path(path)
        if not p.is_file():
            raise ValueError(f"recorded latency file {p}: not a regular file")
        if p.stat().st_size > MAX_LATENCY_FILE_BYTES:
            raise ValueError(f"recorded latency file {p}: larger than {MAX_LATENCY_FILE_BYTES} bytes")
        rows = []
        with p.open("r", encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                line = line.strip()
                if not line or line[0] == "#" or line[0].isalpha():
                    continue
                parts = line.split(",")
                try:
                    rows.append(tuple(int(x) for x in parts))
                except ValueError:
                    raise ValueError(f"recorded latency file {p}: line {n}: not integers") from None
                if len(rows) > MAX_LATENCY_SAMPLES:
                    raise ValueError(f"recorded latency file {p}: more than {MAX_LATENCY_SAMPLES} rows")
        try:
            return cls(rows, mode, seed)
        except ValueError as exc:
            raise ValueError(f"{p}: {exc}") from None

    def _at(self, values: list, ts: int) -> int:
        if self.mode == "draw":
            return values[self._rng.randrange(len(values))]
        t = self.ts
        i = bisect_right(t, ts)
        if i == 0:
            return values[0]
        if i == len(t):
            return values[-1]
        t0, t1, v0, v1 = t[i - 1], t[i], values[i - 1], values[i]
        return v0 + (v1 - v0) * (ts - t0) // (t1 - t0)

    def order_arrival(self, ts_ns: int) -> int:
        return ts_ns + self._at(self.entry, ts_ns)

    def cancel_arrival(self, ts_ns: int) -> int:
        return ts_ns + self._at(self.entry, ts_ns)

    def response(self, ts_ns: int) -> int:
        return ts_ns + self._at(self.resp, ts_ns)


class ConservativeQueue:
    """Conservative queue-position model (price-time priority; only trades move us forward).

    On arrival our order joins the back of its price level: ``ahead`` = the level's visible quantity in the
    book at that moment (0 if the price is a new level, e.g. inside the spread). Trades at our price consume
    ``ahead`` first and only the excess fills us. Quantity cancelled ahead of us is ignored (we never move
    forward on cancels), which errs toward fewer fills. A trade *through* our price (a sell below our bid,
    a buy above our ask) fills us up to the trade's quantity.
    """

    name = "conservative"

    @staticmethod
    def initial_ahead(level_qty: int) -> int:
        return level_qty

    @staticmethod
    def on_trade_at_price(ahead: int, trade_qty: int) -> tuple[int, int]:
        """Return ``(new_ahead, fillable)`` after a trade of ``trade_qty`` lots at our price."""
        if trade_qty <= ahead:
            return ahead - trade_qty, 0
        return 0, trade_qty - ahead

    # the queue interface (module docstring)
    def new_order(self, o, level_qty: int) -> None:
        o.ahead = self.initial_ahead(level_qty)
        o.cum_trade = 0

    def trade(self, o, qty: int) -> int:
        o.ahead, fillable = self.on_trade_at_price(o.ahead, qty)
        return fillable

    def depth(self, o, prev_qty: int, new_qty: int) -> None:
        """Depth changes never move us (the model's point)."""


class RiskAverseQueue(ConservativeQueue):
    """hftbacktest ``RiskAdverseQueueModel`` (``queue.rs``): ahead = the level's quantity on arrival; a trade at
    our price consumes ahead (the excess fills us); a depth change at our price caps ahead at the level's new
    quantity, ``ahead = min(ahead, new_qty)``: quantity leaving the level can only have been ahead of us as far
    as the level is now smaller than what stands ahead, so a decrease moves us forward only as that cap.
    Lots (integers) throughout."""

    name = "risk_averse"

    def depth(self, o, prev_qty: int, new_qty: int) -> None:
        if new_qty < o.ahead:
            o.ahead = new_qty


def power_prob(n: float):
    """hftbacktest ``PowerProbQueueFunc(n)``: ``f(back) / (f(back) + f(front))`` with ``f(x) = x**n``."""
    def prob(front, back):
        fb, ff = back ** n, front ** n
        return fb / (fb + ff) if fb + ff else math.inf
    return prob


def power_prob2(n: float):
    """hftbacktest ``PowerProbQueueFunc2(n)``: ``f(back) / f(back + front)`` with ``f(x) = x**n``."""
    def prob(front, back):
        d = (back + front) ** n
        return back ** n / d if d else math.inf
    return prob


def power_prob3(n: float):
    """hftbacktest ``PowerProbQueueFunc3(n)``: ``1 - f(front / (front + back))`` with ``f(x) = x**n``."""
    def prob(front, back):
        s = front + back
        return 1.0 - (front / s) ** n if s else math.inf
    return prob


def log_prob(front, back):
    """hftbacktest ``LogProbQueueFunc``: ``f(back) / (f(back) + f(front))`` with ``f(x) = log(1 + x)``."""
    fb, ff = math.log1p(back), math.log1p(front)
    return fb / (fb + ff) if fb + ff else math.inf


def log_prob2(front, back):
    """hftbacktest ``LogProbQueueFunc2``: ``f(back) / f(back + front)`` with ``f(x) = log(1 + x)``."""
    d = math.log1p(back + front)
    return math.log1p(back) / d if d else math.inf


class ProbQueue(ConservativeQueue):
    """hftbacktest ``ProbQueueModel`` (``queue.rs``): a decrease of the level at our price is split between the
    quantity ahead of us (``front``) and behind (``back = prev_qty - front``) by a probability ``p =
    prob(front, back)`` that the decrease came from behind: ``front -= (1 - p) * chg`` (and any decrease
    beyond ``back`` comes off the front too), then capped at the new level quantity. The trades seen at our
    price since the last depth change (``cum_trade``) are taken off the change first, so a trade is not
    counted twice. An increase only caps ahead at the new quantity. ``ahead`` is a float here (expected lots);
    a trade fills ``floor(-ahead)`` lots once ahead is below zero.

    ``prob``: one of :func:`power_prob`, :func:`power_prob2`, :func:`power_prob3`, :func:`log_prob`,
    :func:`log_prob2` (an infinite value, 0/0, counts as 1 as in hftbacktest).
    """

    def __init__(self, prob, name: str = "prob"):
        self.prob = prob
        self.name = name

    def new_order(self, o, level_qty: int) -> None:
        o.ahead = float(level_qty)
        o.cum_trade = 0

    def trade(self, o, qty: int) -> int:
        o.ahead -= qty
        o.cum_trade += qty
        if o.ahead < 0:
            fill = int(math.floor(-o.ahead + 1e-9))
            o.ahead = 0.0
            return fill
        return 0

    def depth(self, o, prev_qty: int, new_qty: int) -> None:
        chg = prev_qty - new_qty - o.cum_trade
        o.cum_trade = 0
        if chg < 0:
            o.ahead = min(o.ahead, float(new_qty))
            return
        front = o.ahead                              # may be below 0 (less than one lot past the front)
        back = prev_qty - front
        # The probability takes both clamped at 0 (hftbacktest would take log/pow of a negative: NaN or a
        # value outside [0, 1]); the estimate uses them as they are, as hftbacktest does.
        p = self.prob(front if front > 0 else 0.0, back if back > 0 else 0.0)
        if math.isinf(p) or math.isnan(p):
            p = 1.0
        est = front - (1.0 - p) * chg + min(back - p * chg, 0.0)
        o.ahead = min(est, float(new_qty))


#: Queue model names (config ``sim.queue_model``).
QUEUE_MODELS = ("conservative", "risk_averse", "prob_power", "prob_power2", "prob_power3", "prob_log", "prob_log2")


def make_queue(name: str, power_n: float = 3.0):
    """The queue model called ``name`` (:data:`QUEUE_MODELS`); ``power_n`` is n of the power functions.
    Raises ValueError for an unknown name."""
    if name == "conservative":
        return ConservativeQueue()
    if name == "risk_averse":
        return RiskAverseQueue()
    table = {"prob_power": lambda: power_prob(power_n), "prob_power2": lambda: power_prob2(power_n),
             "prob_power3": lambda: power_prob3(power_n), "prob_log": lambda: log_prob,
             "prob_log2": lambda: log_prob2}
    if name not in table:
        raise ValueError(f"unknown queue model {name!r} (known: {', '.join(QUEUE_MODELS)})")
    return ProbQueue(table[name](), name)


@dataclass(frozen=True)
class MakerFee:
    """Maker fee in bps of notional (negative = rebate); ``unit`` = quote currency of one tick·lot."""

    maker_bps: Decimal
    unit: Decimal

    def fee(self, price_ticks: int, qty_lots: int) -> Decimal:
        """Fee in quote currency, exact: price·qty·unit·bps/10000."""
        return price_ticks * qty_lots * self.unit * self.maker_bps / 10000
