# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""Pre-trade risk gate of one symbol, and the engine's trading state (ACTIVE -> REDUCING -> HALTED).

Every order the strategy wants to place passes ``RiskGate.check_order``, which returns a reason code (``PASS`` = 0)
and counts refusals per reason. The hot-path methods take and keep only C integers: prices int64 ticks, quantities
int64 lots, times int64 ns, notionals int64 tick*lots (one tick*lot = ``tick_size * lot_size`` USDT). Limits come
from :class:`mmcore.risk_config.RiskConfig`, converted once at construction (``RiskConfig.limits``).

Order of the checks in ``check_order`` (the first failure is returned):

==================== =====================================================================================
TRADING_HALTED       the trading state is HALTED: every new order is refused, reducing ones too. Flattening
                     is the engine's job, through its own explicit path (``flatten_on_halt``), not this gate.
SYMBOL_NOT_ALLOWED   the symbol is not in ``symbol_whitelist``.
INVALID_ORDER        side not +1/-1, price <= 0 or quantity <= 0.
STALE_DATA           the book is not synced, or its last update is older than ``stale_after_s`` at ``ts_ns``.
NO_MID               ``mid_none_limit`` consecutive market events without a valid mid (until one returns), or
                     no reference price yet.
PRICE_TOO_LOW        price < ``min_price``.
PRICE_BAND           ``|price - reference| / reference > max_price_deviation``; reference = oracle price if
                     set, else the last valid own mid.
MAX_ORDER_NOTIONAL   ``price * qty > max_single_trade_usdt``.
TRADING_REDUCING     the state is REDUCING and the order does not reduce the position (``is_reducing``).
MAX_POSITION         ``|position + side * (open same-side qty + qty)| > max position``: the position if this
                     order and every open order on its side fill.
SYMBOL_NOTIONAL_CAP  open-order notional (both sides) + ``|position|`` at the reference + this order > cap.
GLOBAL_NOTIONAL_CAP  ``GlobalExposure.notional_usdt`` + this order > cap.
CANCEL_COOLDOWN      a cancel on this side was sent less than ``cancel_cooldown_seconds`` ago.
ORDER_RATE           ``orders_per_window`` orders were already sent within the last ``window_s``.
==================== =====================================================================================

Orders that only reduce the position skip MAX_POSITION and both notional caps: filling them cannot raise the
exposure. ``check_spread`` (SPREAD_TOO_NARROW / SPREAD_TOO_WIDE) and ``check_cancel`` (CANCEL_RATE) are separate.

The trading state follows the day's PnL (``on_pnl``), the manual kill switch (``halt``) and ``reset``; every change
is appended to ``state_changes`` and logged on logger ``mmcore.risk``.
"""
import logging

from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.math cimport INFINITY, fabs, isfinite
from libc.stdint cimport int64_t

from mmcore.risk_config import RiskConfig

_log = logging.getLogger("mmcore.risk")

STATE_NAMES = ("ACTIVE", "REDUCING", "HALTED")

# Python names of the C constants declared in risk.pxd (cdef enum members are not module attributes).
_STATES = dict(ACTIVE=ACTIVE, REDUCING=REDUCING, HALTED=HALTED)
_REASON_CODES = dict(
    PASS=PASS, MAX_ORDER_NOTIONAL=MAX_ORDER_NOTIONAL, SYMBOL_NOTIONAL_CAP=SYMBOL_NOTIONAL_CAP,
    GLOBAL_NOTIONAL_CAP=GLOBAL_NOTIONAL_CAP, MAX_POSITION=MAX_POSITION, PRICE_BAND=PRICE_BAND,
    SPREAD_TOO_NARROW=SPREAD_TOO_NARROW, SPREAD_TOO_WIDE=SPREAD_TOO_WIDE, PRICE_TOO_LOW=PRICE_TOO_LOW,
    SYMBOL_NOT_ALLOWED=SYMBOL_NOT_ALLOWED, STALE_DATA=STALE_DATA, NO_MID=NO_MID, TRADING_REDUCING=TRADING_REDUCING,
    TRADING_HALTED=TRADING_HALTED, ORDER_RATE=ORDER_RATE, CANCEL_RATE=CANCEL_RATE, CANCEL_COOLDOWN=CANCEL_COOLDOWN,
    INVALID_ORDER=INVALID_ORDER,
)
globals().update(BUY=BUY, SELL=SELL, N_REASONS=N_REASONS, **_STATES, **_REASON_CODES)
#: Name of each reason code, indexed by the code (``REASON_NAMES[PASS] == "PASS"``).
REASON_NAMES = tuple(sorted(_REASON_CODES, key=_REASON_CODES.get))
if sorted(_REASON_CODES.values()) != list(range(N_REASONS)):
    raise ImportError("mmcore_ext.risk: the reason codes in risk.pxd must be 0..N_REASONS-1")


cdef inline int _check_side(int side) except -1:
    if side != BUY and side != SELL:
        raise ValueError(f"side must be +1 (buy) or -1 (sell), got {side}")
    return 0


cdef inline int _window_full(RateWindow* w, int64_t ts_ns, int64_t window_ns) noexcept:
    # True if `cap` events already fall in (ts_ns - window_ns, ts_ns]: one more would exceed the limit.
    return w.cap > 0 and w.count == w.cap and ts_ns - w.ts[w.head] < window_ns


cdef inline void _window_add(RateWindow* w, int64_t ts_ns) noexcept:
    if w.cap == 0:
        return
    w.ts[w.head] = ts_ns
    w.head += 1
    if w.head == w.cap:
        w.head = 0
    if w.count < w.cap:
        w.count += 1


cdef int _window_alloc(RateWindow* w, int64_t cap) except -1:
    w.cap = cap
    w.head = 0
    w.count = 0
    w.ts = <int64_t*>PyMem_Malloc((cap if cap > 0 else 1) * sizeof(int64_t))
    if w.ts == NULL:
        raise MemoryError()
    return 0


cdef class GlobalExposure:
    """Exposure across all symbols (USDT), shared by the gates of every symbol.

    The caller keeps ``notional_usdt`` up to date (for example the sum of every gate's ``exposure_usdt()``); each
    gate compares it plus the new order against ``max_global_notional_usdt``.

    Parameters
    ----------
    notional_usdt : float
        Initial exposure (USDT).
    """

    def __init__(self, double notional_usdt=0.0):
        self.notional_usdt = notional_usdt

    def __repr__(self):
        return f"GlobalExposure(notional_usdt={self.notional_usdt})"


cdef class RiskGate:
    """Pre-trade risk gate and trading state of one symbol.

    Parameters
    ----------
    config : RiskConfig
        Limits in human units; validated, then converted once with ``config.limits``.
    instrument_tick_size : Decimal or str
        Price tick (quote currency per tick), ``Instrument.tick_size``.
    instrument_lot_size : Decimal or str
        Quantity unit (base units per lot), ``Instrument.lot_size``.
    symbol : str
        Exchange symbol, checked once against ``config.symbol_whitelist``.
    global_exposure : GlobalExposure, optional
        Cross-symbol exposure shared with other gates; a new one (0 USDT) if omitted.

    Raises
    ------
    TypeError
        ``config`` is not a ``RiskConfig``.
    ValueError
        A config field is out of range (the message names it), or the tick/lot size is not > 0.
    """

    def __cinit__(self):
        self.orders.ts = NULL
        self.cancels.ts = NULL

    def __init__(self, config, instrument_tick_size, instrument_lot_size, str symbol,
                 GlobalExposure global_exposure=None):
        if not isinstance(config, RiskConfig):
            raise TypeError(f"config must be a RiskConfig, got {type(config).__name__}")
        config.validate()
        lim = config.limits(instrument_tick_size, instrument_lot_size, symbol)
        self.config = config
        self.limits = lim
        self.symbol = symbol
        self.symbol_allowed = lim.symbol_allowed
        self.flatten_on_halt = lim.flatten_on_halt
        self.global_exposure = global_exposure if global_exposure is not None else GlobalExposure()
        self.usdt_per_tick_lot = lim.usdt_per_tick_lot
        self.max_order_notional_tl = lim.max_order_notional_tl
        self.max_symbol_notional_tl = lim.max_symbol_notional_tl
        self.max_global_notional_usdt = lim.max_global_notional_usdt
        self.max_position_lots = lim.max_position_lots
        self.max_price_deviation = lim.max_price_deviation
        self.min_spread_frac = lim.min_spread_frac
        self.max_spread_frac = lim.max_spread_frac
        self.min_price_ticks = lim.min_price_ticks
        self.stale_after_ns = lim.stale_after_ns
        self.mid_none_limit = lim.mid_none_limit
        self.max_daily_loss_usdt = lim.max_daily_loss_usdt
        self.reduce_level_usdt = lim.reduce_level_usdt
        self.recover_level_usdt = lim.recover_level_usdt
        self.stop_loss_usdt = lim.stop_loss_usdt
        self.window_ns = lim.window_ns
        self.cancel_cooldown_ns = lim.cancel_cooldown_ns
        self.peak_pnl_usdt = -INFINITY
        self.state_changes = []
        PyMem_Free(self.orders.ts)
        PyMem_Free(self.cancels.ts)
        self.orders.ts = NULL
        self.cancels.ts = NULL
        _window_alloc(&self.orders, lim.orders_per_window)
        _window_alloc(&self.cancels, lim.cancels_per_window)

    def __dealloc__(self):
        PyMem_Free(self.orders.ts)
        PyMem_Free(self.cancels.ts)

    def __repr__(self):
        return (f"RiskGate({self.symbol}, state={STATE_NAMES[self.trading_state]}, "
                f"position_lots={self.position_lots})")

    # ------------------------------------------------------------------------------------------------ checks

    cpdef int check_order(self, int side, int64_t price_ticks, int64_t qty_lots, int64_t ts_ns) except? -1:
        """Check one new order against every limit and count the outcome.

        Parameters
        ----------
        side : int
            +1 buy, -1 sell.
        price_ticks : int
            Limit price (ticks).
        qty_lots : int
            Quantity (lots).
        ts_ns : int
            Time of the check (ns since the epoch): "now" for the staleness, cooldown and rate windows.

        Returns
        -------
        int
            ``PASS`` (0) or the first failing reason code, in the order of the module docstring.
        """
        cdef int code = self._check(side, price_ticks, qty_lots, ts_ns)
        self.counts[code] += 1
        return code

    cdef int _check(self, int side, int64_t price_ticks, int64_t qty_lots, int64_t ts_ns) noexcept:
        cdef int64_t ref_x2, notional, pos = self.position_lots, abs_pos
        cdef bint reducing
        if self.trading_state == HALTED:
            return TRADING_HALTED
        if not self.symbol_allowed:
            return SYMBOL_NOT_ALLOWED
        if (side != BUY and side != SELL) or price_ticks <= 0 or qty_lots <= 0:
            return INVALID_ORDER
        if not self.synced or ts_ns - self.last_market_ns > self.stale_after_ns:
            return STALE_DATA
        ref_x2 = self.reference_x2_ticks()
        if self.mid_none_count >= self.mid_none_limit or ref_x2 <= 0:
            return NO_MID
        if price_ticks < self.min_price_ticks:
            return PRICE_TOO_LOW
        if fabs(<double>(2 * price_ticks - ref_x2)) > self.max_price_deviation * <double>ref_x2:
            return PRICE_BAND
        # qty > floor(cap / price)  <=>  price * qty > cap, without the overflow of a fat-finger quantity
        if qty_lots > self.max_order_notional_tl // price_ticks:
            return MAX_ORDER_NOTIONAL
        notional = price_ticks * qty_lots
        reducing = self.is_reducing(side, qty_lots)
        if self.trading_state == REDUCING and not reducing:
            return TRADING_REDUCING
        if not reducing:
            # not reducing: the worst-case position is on the order's side, so its absolute value is this sum
            if side == BUY:
                if pos + self.open_buy_qty_lots + qty_lots > self.max_position_lots:
                    return MAX_POSITION
            elif self.open_sell_qty_lots + qty_lots - pos > self.max_position_lots:
                return MAX_POSITION
            abs_pos = pos if pos >= 0 else -pos
            # in units of tick*lots / 2, since the reference is kept as twice the price
            if (2 * (self.open_buy_notional_tl + self.open_sell_notional_tl + notional) + abs_pos * ref_x2
                    > 2 * self.max_symbol_notional_tl):
                return SYMBOL_NOTIONAL_CAP
            if (self.global_exposure.notional_usdt + <double>notional * self.usdt_per_tick_lot
                    > self.max_global_notional_usdt):
                return GLOBAL_NOTIONAL_CAP
        if ts_ns < (self.cooldown_until_buy_ns if side == BUY else self.cooldown_until_sell_ns):
            return CANCEL_COOLDOWN
        if _window_full(&self.orders, ts_ns, self.window_ns):
            return ORDER_RATE
        return PASS

    cpdef int check_spread(self, int64_t bid_ticks, int64_t ask_ticks) except? -1:
        """Check the spread of a quoted bid/ask pair and count the outcome.

        The spread relative to the pair's own mid, ``(ask - bid) / ((ask + bid) / 2)``, must lie in
        ``[min_spread_frac, max_spread_frac]``.

        Parameters
        ----------
        bid_ticks, ask_ticks : int
            Quoted prices (ticks).

        Returns
        -------
        int
            ``PASS``; ``SPREAD_TOO_NARROW`` (also for a locked or crossed pair, ``ask <= bid``);
            ``SPREAD_TOO_WIDE``; ``INVALID_ORDER`` if a price is <= 0.
        """
        cdef int code
        cdef double sum_px = <double>(ask_ticks + bid_ticks)
        cdef double spread_x2 = <double>(2 * (ask_ticks - bid_ticks))
        if bid_ticks <= 0 or ask_ticks <= 0:
            code = INVALID_ORDER
        elif ask_ticks <= bid_ticks or spread_x2 < self.min_spread_frac * sum_px:
            code = SPREAD_TOO_NARROW
        elif spread_x2 > self.max_spread_frac * sum_px:
            code = SPREAD_TOO_WIDE
        else:
            code = PASS
        self.counts[code] += 1
        return code

    cpdef int check_cancel(self, int64_t ts_ns) except? -1:
        """Check the cancel rate and count the outcome. Cancels are never refused for the trading state.

        Parameters
        ----------
        ts_ns : int
            Time of the check (ns).

        Returns
        -------
        int
            ``PASS``, or ``CANCEL_RATE`` if ``cancels_per_window`` cancels were already sent in the last
            ``window_s``.
        """
        cdef int code = CANCEL_RATE if _window_full(&self.cancels, ts_ns, self.window_ns) else PASS
        self.counts[code] += 1
        return code

    cpdef bint is_reducing(self, int side, int64_t qty_lots) noexcept:
        """Return whether an order only reduces the position.

        True when the side is opposite to the position and this order plus the open orders on that side
        (lots) do not exceed ``|position|``: the fills cannot flip the position.
        """
        if side == BUY:
            return self.position_lots < 0 and self.open_buy_qty_lots + qty_lots <= -self.position_lots
        if side == SELL:
            return self.position_lots > 0 and self.open_sell_qty_lots + qty_lots <= self.position_lots
        return False

    cpdef int64_t reference_x2_ticks(self) noexcept:
        """Return twice the reference price (ticks): the oracle's if set, else the last valid mid; 0 if none."""
        return 2 * self.oracle_price_ticks if self.oracle_price_ticks > 0 else self.mid_x2_ticks

    cpdef double exposure_usdt(self) noexcept:
        """Return this symbol's exposure (USDT): ``|position|`` at the reference price + open-order notional.

        The caller can sum it over symbols into ``GlobalExposure.notional_usdt``.
        """
        cdef int64_t abs_pos = self.position_lots if self.position_lots >= 0 else -self.position_lots
        cdef int64_t tl_x2 = (abs_pos * self.reference_x2_ticks()
                              + 2 * (self.open_buy_notional_tl + self.open_sell_notional_tl))
        return <double>tl_x2 * 0.5 * self.usdt_per_tick_lot

    def refusals(self):
        """Return the refusal counts since construction, ``{reason name: count}`` for every code but PASS."""
        return {REASON_NAMES[i]: self.counts[i] for i in range(1, N_REASONS)}

    # ------------------------------------------------------------------------------------------------ inputs

    cpdef void on_market(self, int64_t ts_ns, int64_t mid_x2_ticks, bint synced) noexcept:
        """Record a book update.

        Parameters
        ----------
        ts_ns : int
            Time of the update (ns); staleness is measured from it.
        mid_x2_ticks : int
            Best bid + best ask (ticks), i.e. twice the mid; <= 0 when there is no valid mid (one side empty).
        synced : bool
            The book is in sync with the exchange (no sequence gap pending a resync).
        """
        self.last_market_ns = ts_ns
        self.synced = synced
        if mid_x2_ticks > 0:
            self.mid_x2_ticks = mid_x2_ticks
            self.mid_none_count = 0
        else:
            self.mid_none_count += 1

    cpdef void set_oracle_price(self, int64_t price_ticks) noexcept:
        """Set the external reference price of the price band (ticks); <= 0 clears it (the own mid is used)."""
        self.oracle_price_ticks = price_ticks if price_ticks > 0 else 0

    cpdef void on_fill(self, int side, int64_t price_ticks, int64_t qty_lots) except *:
        """Apply a fill of one of our open orders: position += side * qty; the open quantity and notional shrink.

        Parameters
        ----------
        side : int
            +1 buy, -1 sell.
        price_ticks : int
            The order's limit price (ticks), the price its open notional was recorded at.
        qty_lots : int
            Filled quantity (lots).

        Raises
        ------
        ValueError
            ``side`` is not +1 or -1.
        """
        _check_side(side)
        self.position_lots += side * qty_lots
        self._remove_open(side, price_ticks, qty_lots)

    cpdef void set_position(self, int64_t position_lots) noexcept:
        """Set the position (lots), e.g. after reconciliation with the exchange or a flatten."""
        self.position_lots = position_lots

    cpdef void on_order_open(self, int side, int64_t price_ticks, int64_t qty_lots) except *:
        """Add a new open order (side +1/-1, limit price ticks, quantity lots). Raises ValueError on a bad side."""
        _check_side(side)
        if side == BUY:
            self.open_buy_qty_lots += qty_lots
            self.open_buy_notional_tl += price_ticks * qty_lots
        else:
            self.open_sell_qty_lots += qty_lots
            self.open_sell_notional_tl += price_ticks * qty_lots

    cpdef void on_order_closed(self, int side, int64_t price_ticks, int64_t remaining_qty_lots) except *:
        """Remove the unfilled remainder (lots) of an order that was cancelled, expired or rejected.

        Open quantity and notional never go below zero. Raises ValueError on a bad side.
        """
        _check_side(side)
        self._remove_open(side, price_ticks, remaining_qty_lots)

    cdef void _remove_open(self, int side, int64_t price_ticks, int64_t qty_lots) noexcept:
        cdef int64_t notional = price_ticks * qty_lots
        if side == BUY:
            self.open_buy_qty_lots = max(<int64_t>0, self.open_buy_qty_lots - qty_lots)
            self.open_buy_notional_tl = max(<int64_t>0, self.open_buy_notional_tl - notional)
        else:
            self.open_sell_qty_lots = max(<int64_t>0, self.open_sell_qty_lots - qty_lots)
            self.open_sell_notional_tl = max(<int64_t>0, self.open_sell_notional_tl - notional)

    cpdef void note_order_sent(self, int64_t ts_ns) noexcept:
        """Record that a new order was sent at ``ts_ns`` (ns), for ``ORDER_RATE``."""
        _window_add(&self.orders, ts_ns)

    cpdef void note_cancel_sent(self, int64_t ts_ns, int side) except *:
        """Record a cancel sent at ``ts_ns`` (ns) on ``side`` (+1/-1), for ``CANCEL_RATE`` and ``CANCEL_COOLDOWN``.

        Raises ValueError on a bad side.
        """
        _check_side(side)
        _window_add(&self.cancels, ts_ns)
        if side == BUY:
            self.cooldown_until_buy_ns = ts_ns + self.cancel_cooldown_ns
        else:
            self.cooldown_until_sell_ns = ts_ns + self.cancel_cooldown_ns

    # ------------------------------------------------------------------------------------------------ state

    cpdef void on_pnl(self, int64_t ts_ns, double realized_usdt, double unrealized_usdt) except *:
        """Update the trading state from the day's PnL.

        Daily loss ``L = -(realized + unrealized)``; reduce level ``R = reduce_at_fraction * max_daily_loss_usdt``;
        recover level ``R * (1 - hysteresis_fraction)``. In order:

        - HALTED stays HALTED (sticky until ``reset``);
        - PnL not finite, ``L >= max_daily_loss_usdt``, ``-unrealized >= stop_loss_usdt`` or
          ``peak PnL - PnL >= stop_loss_usdt`` -> HALTED;
        - ACTIVE and ``L >= R`` -> REDUCING;
        - REDUCING and ``L < R * (1 - hysteresis_fraction)`` -> ACTIVE.

        Parameters
        ----------
        ts_ns : int
            Time of the PnL (ns), recorded with a state change.
        realized_usdt, unrealized_usdt : float
            The day's realized PnL and the open position's unrealized PnL (USDT; losses negative).
        """
        cdef double total = realized_usdt + unrealized_usdt
        cdef double loss = -total
        self.daily_loss_usdt = loss
        if total > self.peak_pnl_usdt:
            self.peak_pnl_usdt = total
        if self.trading_state == HALTED:
            return
        if not isfinite(total):
            self._change(ts_ns, HALTED, f"PnL not finite (realized {realized_usdt}, unrealized {unrealized_usdt})")
        elif loss >= self.max_daily_loss_usdt:
            self._change(ts_ns, HALTED,
                         f"daily loss {loss:.2f} >= max_daily_loss_usdt {self.max_daily_loss_usdt:.2f}")
        elif -unrealized_usdt >= self.stop_loss_usdt:
            self._change(ts_ns, HALTED,
                         f"unrealized loss {-unrealized_usdt:.2f} >= stop_loss_usdt {self.stop_loss_usdt:.2f}")
        elif self.peak_pnl_usdt - total >= self.stop_loss_usdt:
            self._change(ts_ns, HALTED, f"drawdown {self.peak_pnl_usdt - total:.2f} from peak PnL "
                                        f"{self.peak_pnl_usdt:.2f} >= stop_loss_usdt {self.stop_loss_usdt:.2f}")
        elif self.trading_state == ACTIVE and loss >= self.reduce_level_usdt:
            self._change(ts_ns, REDUCING, f"daily loss {loss:.2f} >= reduce level {self.reduce_level_usdt:.2f}")
        elif self.trading_state == REDUCING and loss < self.recover_level_usdt:
            self._change(ts_ns, ACTIVE, f"daily loss {loss:.2f} < recover level {self.recover_level_usdt:.2f}")

    cpdef void halt(self, int64_t ts_ns, str reason) except *:
        """Kill switch: move to HALTED now (no-op if already halted). Every new order is refused until ``reset``.

        Parameters
        ----------
        ts_ns : int
            Time of the halt (ns).
        reason : str
            Why, recorded in ``state_changes`` and the log.
        """
        if self.trading_state != HALTED:
            self._change(ts_ns, HALTED, reason)

    cpdef void restore_peak(self, double peak_pnl_usdt) except *:
        """Raise the PnL peak (USDT) to a value recorded before a restart, so the drawdown stop
        (``peak PnL - PnL >= stop_loss_usdt``) keeps its reference. A lower or non-finite value is ignored."""
        if isfinite(peak_pnl_usdt) and peak_pnl_usdt > self.peak_pnl_usdt:
            self.peak_pnl_usdt = peak_pnl_usdt

    cpdef void reset(self, int64_t ts_ns) except *:
        """Return to ACTIVE (recorded if the state changes) and forget the PnL peak.

        Call it at the start of a trading day, with the caller's daily PnL reset too: a loss still over a limit
        halts again at the next ``on_pnl``.
        """
        self.peak_pnl_usdt = -INFINITY
        if self.trading_state != ACTIVE:
            self._change(ts_ns, ACTIVE, "reset")

    cdef void _change(self, int64_t ts_ns, int new_state, str reason) except *:
        cdef int old = self.trading_state
        self.trading_state = new_state
        self.state_changes.append((ts_ns, old, new_state, reason))
        _log.log(logging.INFO if new_state == ACTIVE else logging.WARNING,
                 "%s trading state %s -> %s at ts_ns=%d: %s",
                 self.symbol, STATE_NAMES[old], STATE_NAMES[new_state], ts_ns, reason)
