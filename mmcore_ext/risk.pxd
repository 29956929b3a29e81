# Pre-trade risk gate and trading state. Prices int64 ticks, quantities int64 lots, times int64 ns,
# notionals int64 tick*lots (one tick*lot = tick_size * lot_size USDT) unless the name says _usdt.
cimport cython
from libc.stdint cimport int64_t

# Order sides (as Trade.side).
cdef enum:
    BUY = 1
    SELL = -1

# Trading states (STATE_NAMES in risk.pyx).
cdef enum:
    ACTIVE = 0
    REDUCING = 1
    HALTED = 2

# Reason codes of check_order / check_spread / check_cancel (REASON_NAMES in risk.pyx); 0 = PASS.
cdef enum:
    PASS = 0
    MAX_ORDER_NOTIONAL = 1
    SYMBOL_NOTIONAL_CAP = 2
    GLOBAL_NOTIONAL_CAP = 3
    MAX_POSITION = 4
    PRICE_BAND = 5
    SPREAD_TOO_NARROW = 6
    SPREAD_TOO_WIDE = 7
    PRICE_TOO_LOW = 8
    SYMBOL_NOT_ALLOWED = 9
    STALE_DATA = 10
    NO_MID = 11
    TRADING_REDUCING = 12
    TRADING_HALTED = 13
    ORDER_RATE = 14
    CANCEL_RATE = 15
    CANCEL_COOLDOWN = 16
    INVALID_ORDER = 17
    N_REASONS = 18


@cython.final
cdef class GlobalExposure:
    cdef public double notional_usdt
    """Exposure across all symbols (USDT), kept by the caller; shared by the gates of every symbol."""


# Timestamps of the last `cap` events in a ring (rolling-window rate limit).
cdef struct RateWindow:
    int64_t* ts
    int64_t cap
    int64_t head     # next slot to write = oldest of the last `cap` events once full
    int64_t count    # events recorded, saturating at cap


@cython.final
cdef class RiskGate:
    cdef readonly object config
    """The ``RiskConfig`` the gate was built from."""
    cdef readonly object limits
    """The ``RiskLimits`` (hot-path units) derived from the config."""
    cdef readonly str symbol
    """Exchange symbol the gate guards."""
    cdef readonly bint symbol_allowed
    """The symbol passes the whitelist (computed at construction)."""
    cdef readonly bint flatten_on_halt
    """The engine should flatten the position when trading halts."""
    cdef readonly GlobalExposure global_exposure
    """Cross-symbol exposure shared with the other gates (USDT)."""

    # limits (from RiskLimits)
    cdef double usdt_per_tick_lot
    cdef int64_t max_order_notional_tl
    cdef int64_t max_symbol_notional_tl
    cdef double max_global_notional_usdt
    cdef int64_t max_position_lots
    cdef double max_price_deviation
    cdef double min_spread_frac
    cdef double max_spread_frac
    cdef int64_t min_price_ticks
    cdef int64_t stale_after_ns
    cdef int64_t mid_none_limit
    cdef double max_daily_loss_usdt
    cdef double reduce_level_usdt
    cdef double recover_level_usdt
    cdef double stop_loss_usdt
    cdef int64_t window_ns
    cdef int64_t cancel_cooldown_ns

    # state
    cdef readonly int trading_state
    """ACTIVE (0), REDUCING (1) or HALTED (2)."""
    cdef readonly int64_t position_lots
    """Signed position (lots; > 0 long)."""
    cdef readonly int64_t open_buy_qty_lots
    """Remaining quantity of open buy orders (lots)."""
    cdef readonly int64_t open_sell_qty_lots
    """Remaining quantity of open sell orders (lots)."""
    cdef readonly int64_t open_buy_notional_tl
    """Notional of open buy orders at their limit prices (tick*lots)."""
    cdef readonly int64_t open_sell_notional_tl
    """Notional of open sell orders at their limit prices (tick*lots)."""
    cdef readonly int64_t mid_x2_ticks
    """Last valid mid times two (best bid + best ask, ticks); 0 before the first."""
    cdef readonly int64_t oracle_price_ticks
    """External reference price (ticks); 0 when unset."""
    cdef readonly int64_t mid_none_count
    """Consecutive market events without a valid mid."""
    cdef readonly int64_t last_market_ns
    """Time of the last market event (ns)."""
    cdef readonly bint synced
    """The book was in sync at the last market event."""
    cdef readonly double daily_loss_usdt
    """Last daily loss seen by on_pnl, ``-(realized + unrealized)`` (USDT)."""
    cdef readonly double peak_pnl_usdt
    """Peak of ``realized + unrealized`` since construction or reset (USDT; -inf before the first on_pnl)."""
    cdef readonly list state_changes
    """Trading-state changes as ``(ts_ns, old_state, new_state, reason)``."""
    cdef RateWindow orders
    cdef RateWindow cancels
    cdef int64_t cooldown_until_buy_ns
    cdef int64_t cooldown_until_sell_ns
    cdef int64_t counts[N_REASONS]

    cpdef int check_order(self, int side, int64_t price_ticks, int64_t qty_lots, int64_t ts_ns) except? -1
    cpdef int check_spread(self, int64_t bid_ticks, int64_t ask_ticks) except? -1
    cpdef int check_cancel(self, int64_t ts_ns) except? -1
    cpdef bint is_reducing(self, int side, int64_t qty_lots) noexcept
    cpdef int64_t reference_x2_ticks(self) noexcept
    cpdef double exposure_usdt(self) noexcept
    cpdef void on_market(self, int64_t ts_ns, int64_t mid_x2_ticks, bint synced) noexcept
    cpdef void set_oracle_price(self, int64_t price_ticks) except *
    cpdef void on_fill(self, int side, int64_t price_ticks, int64_t qty_lots) except *
    cpdef void set_position(self, int64_t position_lots) except *
    cpdef void on_order_open(self, int side, int64_t price_ticks, int64_t qty_lots) except *
    cpdef void on_order_closed(self, int side, int64_t price_ticks, int64_t remaining_qty_lots) except *
    cpdef void note_order_sent(self, int64_t ts_ns) noexcept
    cpdef void note_cancel_sent(self, int64_t ts_ns, int side) except *
    cpdef void on_pnl(self, int64_t ts_ns, double realized_usdt, double unrealized_usdt) except *
    cpdef void halt(self, int64_t ts_ns, str reason) except *
    cpdef void restore_peak(self, double peak_pnl_usdt) except *
    cpdef void reset(self, int64_t ts_ns) except *
    cdef int _check(self, int side, int64_t price_ticks, int64_t qty_lots, int64_t ts_ns) noexcept
    cdef void _remove_open(self, int side, int64_t price_ticks, int64_t qty_lots) noexcept
    cdef void _change(self, int64_t ts_ns, int new_state, str reason) except *
