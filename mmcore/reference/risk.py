"""Pure-Python reference of :mod:`mmcore_ext.risk`: the pre-trade risk gate and the trading state machine.

Same API, same integer arithmetic, same results as the compiled gate; used by the differential tests and as the
benchmark baseline. Read the compiled module's docstrings for the semantics; this file keeps only short notes.
Bounds mirrored from the compiled gate: prices in [1, 2**53], quantities in [1, 2**53] (INVALID_ORDER) or [0, 2**53]
(ValueError in on_fill / on_order_open / on_order_closed), position and open quantities within +-2**62, open notionals
<= 2**63 - 1, a mid_x2 above 2**54 is no valid mid, and time differences / sums saturate at the int64 limits.
"""
from __future__ import annotations

import logging
import math
from collections import deque

from mmcore.risk_config import RiskConfig

log = logging.getLogger("mmcore.risk")

BUY = 1
SELL = -1
MAX_PRICE_TICKS = 2**53
MAX_QTY_LOTS = 2**53
MAX_ACCUM_LOTS = 2**62
_INT64_MIN, _INT64_MAX = -2**63, 2**63 - 1


def _sat(v: int) -> int:
    """``v`` clamped to the int64 range (the compiled gate's saturating time arithmetic)."""
    return _INT64_MIN if v < _INT64_MIN else _INT64_MAX if v > _INT64_MAX else v

ACTIVE = 0
REDUCING = 1
HALTED = 2
STATE_NAMES = ("ACTIVE", "REDUCING", "HALTED")

REASON_NAMES = (
    "PASS",
    "MAX_ORDER_NOTIONAL",
    "SYMBOL_NOTIONAL_CAP",
    "GLOBAL_NOTIONAL_CAP",
    "MAX_POSITION",
    "PRICE_BAND",
    "SPREAD_TOO_NARROW",
    "SPREAD_TOO_WIDE",
    "PRICE_TOO_LOW",
    "SYMBOL_NOT_ALLOWED",
    "STALE_DATA",
    "NO_MID",
    "TRADING_REDUCING",
    "TRADING_HALTED",
    "ORDER_RATE",
    "CANCEL_RATE",
    "CANCEL_COOLDOWN",
    "INVALID_ORDER",
)
(PASS, MAX_ORDER_NOTIONAL, SYMBOL_NOTIONAL_CAP, GLOBAL_NOTIONAL_CAP, MAX_POSITION, PRICE_BAND, SPREAD_TOO_NARROW,
 SPREAD_TOO_WIDE, PRICE_TOO_LOW, SYMBOL_NOT_ALLOWED, STALE_DATA, NO_MID, TRADING_REDUCING, TRADING_HALTED,
 ORDER_RATE, CANCEL_RATE, CANCEL_COOLDOWN, INVALID_ORDER) = range(len(REASON_NAMES))
N_REASONS = len(REASON_NAMES)


def _check_side(side):
    if side != BUY and side != SELL:
        raise ValueError(f"side must be +1 (buy) or -1 (sell), got {side}")


def _check_fill_args(side, price, qty, what):
    _check_side(side)
    if not (1 <= price <= MAX_PRICE_TICKS and 0 <= qty <= MAX_QTY_LOTS):
        raise ValueError(f"{what}: price {price} ticks must be in [1, {MAX_PRICE_TICKS}] and quantity "
                         f"{qty} lots in [0, {MAX_QTY_LOTS}]")


class GlobalExposure:
    """Exposure across all symbols (USDT), kept by the caller and shared by every gate."""

    __slots__ = ("notional_usdt",)

    def __init__(self, notional_usdt: float = 0.0):
        self.notional_usdt = float(notional_usdt)


class RiskGate:
    """Pre-trade risk gate of one symbol (see ``mmcore_ext.risk.RiskGate``)."""

    def __init__(self, config: RiskConfig, instrument_tick_size, instrument_lot_size, symbol: str,
                 global_exposure: GlobalExposure | None = None):
        config.validate()
        lim = config.limits(instrument_tick_size, instrument_lot_size, symbol)
        self.config = config
        self.limits = lim
        self.symbol = symbol
        self.symbol_allowed = lim.symbol_allowed
        self.flatten_on_halt = lim.flatten_on_halt
        self.global_exposure = global_exposure if global_exposure is not None else GlobalExposure()
        self.trading_state = ACTIVE
        self.position_lots = 0
        self.open_qty_lots = {BUY: 0, SELL: 0}
        self.open_notional_tl = {BUY: 0, SELL: 0}
        self.mid_x2_ticks = 0
        self.oracle_price_ticks = 0
        self.mid_none_count = 0
        self.last_market_ns = 0
        self.synced = False
        self.daily_loss_usdt = 0.0
        self.peak_pnl_usdt = -math.inf
        self.state_changes = []
        self._orders = deque(maxlen=lim.orders_per_window or None)
        self._cancels = deque(maxlen=lim.cancels_per_window or None)
        self._cooldown_until_ns = {BUY: 0, SELL: 0}
        self._counts = [0] * N_REASONS

    # --- derived values ---
    def reference_x2_ticks(self) -> int:
        return 2 * self.oracle_price_ticks if self.oracle_price_ticks > 0 else self.mid_x2_ticks

    @property
    def open_buy_qty_lots(self):
        return self.open_qty_lots[BUY]

    @property
    def open_sell_qty_lots(self):
        return self.open_qty_lots[SELL]

    @property
    def open_buy_notional_tl(self):
        return self.open_notional_tl[BUY]

    @property
    def open_sell_notional_tl(self):
        return self.open_notional_tl[SELL]

    def is_reducing(self, side: int, qty_lots: int) -> bool:
        pos = self.position_lots
        return side * pos < 0 and self.open_qty_lots[side] + qty_lots <= abs(pos)

    def exposure_usdt(self) -> float:
        ref_x2 = self.reference_x2_ticks()
        tl2 = abs(self.position_lots) * ref_x2 + 2 * (self.open_notional_tl[BUY] + self.open_notional_tl[SELL])
        return tl2 * 0.5 * self.limits.usdt_per_tick_lot

    # --- checks ---
    def check_order(self, side: int, price_ticks: int, qty_lots: int, ts_ns: int) -> int:
        code = self._check(side, price_ticks, qty_lots, ts_ns)
        self._counts[code] += 1
        return code

    def _check(self, side, price, qty, ts):
        lim = self.limits
        if self.trading_state == HALTED:
            return TRADING_HALTED
        if not self.symbol_allowed:
            return SYMBOL_NOT_ALLOWED
        if (side != BUY and side != SELL) or not 1 <= price <= MAX_PRICE_TICKS or not 1 <= qty <= MAX_QTY_LOTS:
            return INVALID_ORDER
        if not self.synced or _sat(ts - self.last_market_ns) > lim.stale_after_ns:
            return STALE_DATA
        ref_x2 = self.reference_x2_ticks()
        if self.mid_none_count >= lim.mid_none_limit or ref_x2 <= 0:
            return NO_MID
        if price < lim.min_price_ticks:
            return PRICE_TOO_LOW
        if abs(2 * price - ref_x2) > lim.max_price_deviation * ref_x2:
            return PRICE_BAND
        notional = price * qty
        if notional > lim.max_order_notional_tl:
            return MAX_ORDER_NOTIONAL
        reducing = self.is_reducing(side, qty)
        if self.trading_state == REDUCING and not reducing:
            return TRADING_REDUCING
        if not reducing:
            if abs(self.position_lots + side * (self.open_qty_lots[side] + qty)) > lim.max_position_lots:
                return MAX_POSITION
            if (2 * (self.open_notional_tl[BUY] + self.open_notional_tl[SELL] + notional)
                    + abs(self.position_lots) * ref_x2 > 2 * lim.max_symbol_notional_tl):
                return SYMBOL_NOTIONAL_CAP
            if self.global_exposure.notional_usdt + notional * lim.usdt_per_tick_lot > lim.max_global_notional_usdt:
                return GLOBAL_NOTIONAL_CAP
        if ts < self._cooldown_until_ns[side]:
            return CANCEL_COOLDOWN
        q = self._orders
        if lim.orders_per_window > 0 and len(q) == lim.orders_per_window and _sat(ts - q[0]) < lim.window_ns:
            return ORDER_RATE
        return PASS

    def check_spread(self, bid_ticks: int, ask_ticks: int) -> int:
        lim = self.limits
        if not (1 <= bid_ticks <= MAX_PRICE_TICKS and 1 <= ask_ticks <= MAX_PRICE_TICKS):
            code = INVALID_ORDER
        elif ask_ticks <= bid_ticks or 2 * (ask_ticks - bid_ticks) < lim.min_spread_frac * (ask_ticks + bid_ticks):
            code = SPREAD_TOO_NARROW
        elif 2 * (ask_ticks - bid_ticks) > lim.max_spread_frac * (ask_ticks + bid_ticks):
            code = SPREAD_TOO_WIDE
        else:
            code = PASS
        self._counts[code] += 1
        return code

    def check_cancel(self, ts_ns: int) -> int:
        lim = self.limits
        q = self._cancels
        code = PASS
        if lim.cancels_per_window > 0 and len(q) == lim.cancels_per_window and _sat(ts_ns - q[0]) < lim.window_ns:
            code = CANCEL_RATE
        self._counts[code] += 1
        return code

    def refusals(self) -> dict:
        return {REASON_NAMES[i]: self._counts[i] for i in range(1, N_REASONS)}

    # --- inputs ---
    def on_market(self, ts_ns: int, mid_x2_ticks: int, synced: bool) -> None:
        self.last_market_ns = ts_ns
        self.synced = bool(synced)
        if 0 < mid_x2_ticks <= 2 * MAX_PRICE_TICKS:
            self.mid_x2_ticks = mid_x2_ticks
            self.mid_none_count = 0
        else:
            self.mid_none_count += 1

    def set_oracle_price(self, price_ticks: int) -> None:
        if price_ticks > MAX_PRICE_TICKS:
            raise ValueError(f"oracle price {price_ticks} ticks above {MAX_PRICE_TICKS}")
        self.oracle_price_ticks = price_ticks if price_ticks > 0 else 0

    def on_fill(self, side: int, price_ticks: int, qty_lots: int) -> None:
        _check_fill_args(side, price_ticks, qty_lots, "fill")
        pos = self.position_lots + side * qty_lots
        if abs(pos) > MAX_ACCUM_LOTS:
            raise ValueError(f"fill of {qty_lots} lots: position would be {pos} lots, beyond +-{MAX_ACCUM_LOTS}")
        self.position_lots = pos
        self.open_qty_lots[side] = max(0, self.open_qty_lots[side] - qty_lots)
        self.open_notional_tl[side] = max(0, self.open_notional_tl[side] - price_ticks * qty_lots)

    def set_position(self, position_lots: int) -> None:
        if abs(position_lots) > MAX_ACCUM_LOTS:
            raise ValueError(f"position {position_lots} lots beyond +-{MAX_ACCUM_LOTS}")
        self.position_lots = position_lots

    def on_order_open(self, side: int, price_ticks: int, qty_lots: int) -> None:
        _check_fill_args(side, price_ticks, qty_lots, "open order")
        notional = self.open_notional_tl[side] + price_ticks * qty_lots
        open_qty = self.open_qty_lots[side] + qty_lots
        if notional > _INT64_MAX or open_qty > MAX_ACCUM_LOTS:
            raise ValueError(f"open order of {qty_lots} lots at {price_ticks} ticks: open quantity or notional "
                             f"would pass the int64 range")
        self.open_qty_lots[side] = open_qty
        self.open_notional_tl[side] = notional

    def on_order_closed(self, side: int, price_ticks: int, remaining_qty_lots: int) -> None:
        _check_fill_args(side, price_ticks, remaining_qty_lots, "closed order")
        self.open_qty_lots[side] = max(0, self.open_qty_lots[side] - remaining_qty_lots)
        self.open_notional_tl[side] = max(0, self.open_notional_tl[side] - price_ticks * remaining_qty_lots)

    def note_order_sent(self, ts_ns: int) -> None:
        if self.limits.orders_per_window > 0:
            self._orders.append(ts_ns)

    def note_cancel_sent(self, ts_ns: int, side: int) -> None:
        _check_side(side)
        if self.limits.cancels_per_window > 0:
            self._cancels.append(ts_ns)
        self._cooldown_until_ns[side] = _sat(ts_ns + self.limits.cancel_cooldown_ns)

    # --- trading state ---
    def on_pnl(self, ts_ns: int, realized_usdt: float, unrealized_usdt: float) -> None:
        lim = self.limits
        total = realized_usdt + unrealized_usdt
        loss = -total
        self.daily_loss_usdt = loss
        if total > self.peak_pnl_usdt:
            self.peak_pnl_usdt = total
        if self.trading_state == HALTED:
            return
        if not math.isfinite(total):
            self._change(ts_ns, HALTED, f"PnL not finite (realized {realized_usdt}, unrealized {unrealized_usdt})")
        elif loss >= lim.max_daily_loss_usdt:
            self._change(ts_ns, HALTED, f"daily loss {loss:.2f} >= max_daily_loss_usdt {lim.max_daily_loss_usdt:.2f}")
        elif -unrealized_usdt >= lim.stop_loss_usdt:
            self._change(ts_ns, HALTED,
                         f"unrealized loss {-unrealized_usdt:.2f} >= stop_loss_usdt {lim.stop_loss_usdt:.2f}")
        elif self.peak_pnl_usdt - total >= lim.stop_loss_usdt:
            self._change(ts_ns, HALTED, f"drawdown {self.peak_pnl_usdt - total:.2f} from peak PnL "
                                        f"{self.peak_pnl_usdt:.2f} >= stop_loss_usdt {lim.stop_loss_usdt:.2f}")
        elif self.trading_state == ACTIVE and loss >= lim.reduce_level_usdt:
            self._change(ts_ns, REDUCING, f"daily loss {loss:.2f} >= reduce level {lim.reduce_level_usdt:.2f}")
        elif self.trading_state == REDUCING and loss < lim.recover_level_usdt:
            self._change(ts_ns, ACTIVE, f"daily loss {loss:.2f} < recover level {lim.recover_level_usdt:.2f}")

    def halt(self, ts_ns: int, reason: str) -> None:
        if self.trading_state != HALTED:
            self._change(ts_ns, HALTED, str(reason))

    def restore_peak(self, peak_pnl_usdt: float) -> None:
        if math.isfinite(peak_pnl_usdt) and peak_pnl_usdt > self.peak_pnl_usdt:
            self.peak_pnl_usdt = peak_pnl_usdt

    def reset(self, ts_ns: int) -> None:
        self.peak_pnl_usdt = -math.inf
        if self.trading_state != ACTIVE:
            self._change(ts_ns, ACTIVE, "reset")

    def _change(self, ts_ns, new, reason):
        old = self.trading_state
        self.trading_state = new
        self.state_changes.append((ts_ns, old, new, reason))
        log.log(logging.INFO if new == ACTIVE else logging.WARNING, "%s trading state %s -> %s at ts_ns=%d: %s",
                self.symbol, STATE_NAMES[old], STATE_NAMES[new], ts_ns, reason)
