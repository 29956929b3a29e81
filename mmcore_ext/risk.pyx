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

Integer bounds (``bounds.pxd``; no int64 operation here can wrap):

- an order's price is in ``[1, MAX_PRICE_TICKS]`` (2**53) and its quantity in ``[1, MAX_QTY_LOTS]`` (2**53), else
  ``check_order`` returns INVALID_ORDER and ``check_spread`` INVALID_ORDER; ``on_fill``, ``on_order_open`` and
  ``on_order_closed`` raise ValueError for a price outside ``[1, MAX_PRICE_TICKS]`` or a quantity outside
  ``[0, MAX_QTY_LOTS]`` (nothing changes);
- ``position_lots`` and the open quantities stay within ``+-MAX_ACCUM_LOTS`` (2**62): ``set_position``,
  ``on_fill`` and ``on_order_open`` raise ValueError rather than pass it; the open notionals (tick*lots) stay in
  ``[0, 2**63 - 1]`` (``on_order_open`` raises ValueError rather than overflow);
- the reference price: ``on_market`` treats a ``mid_x2`` above ``2 * MAX_PRICE_TICKS`` as no valid mid (the
  engine passes ``best_bid + best_ask`` of a book whose prices are at most 2**53 each, so that sum cannot
  overflow), and ``set_oracle_price`` raises ValueError above MAX_PRICE_TICKS, so ``2 * price - reference``
  is small; ``price * qty`` is formed only after MAX_ORDER_NOTIONAL proved it <= the int64 cap;
- sums and products of the caps (``pos + open + qty``, ``abs_pos * ref_x2``, twice the notionals) are
  evaluated in 128-bit integers (exact, as the pure-Python reference's unbounded ints);
- times are arbitrary int64 ns: ``ts - last_market_ns``, ``ts - oldest`` of a rate window and ``ts + cooldown``
  saturate at the int64 limits instead of wrapping.
"""
import logging

from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.math cimport INFINITY, fabs, isfinite
from libc.stdint cimport INT64_MAX, int64_t, uint64_t

from mmcore_ext.bounds cimport MAX_ACCUM_LOTS, MAX_PRICE_TICKS, MAX_QTY_LOTS, int128, sat_add, sat_sub

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


cdef inline bint _price_ok(int64_t px) noexcept:
    return <uint64_t>px - 1 < <uint64_t>MAX_PRICE_TICKS        # 1 <= px <= MAX_PRICE_TICKS


cdef int _check_fill_args(int side, int64_t price_ticks, int64_t qty_lots, str what) except -1:
    # side +1/-1, price in [1, MAX_PRICE_TICKS], quantity in [0, MAX_QTY_LOTS]; ValueError otherwise.
    _check_side(side)
    if not _price_ok(price_ticks) or <uint64_t>qty_lots > <uint64_t>MAX_QTY_LOTS:
        raise ValueError(f"{what}: price {price_ticks} ticks must be in [1, {MAX_PRICE_TICKS}] and quantity "
                         f"{qty_lots} lots in [0, {MAX_QTY_LOTS}]")
    return 0


cdef inline int _window_full(RateWindow* w, int64_t ts_ns, int64_t window_ns) noexcept:
    # True if `cap` events already fall in (ts_ns - window_ns, ts_ns]: one more would exceed the limit.
    return w.cap > 0 and w.count == w.cap and sat_sub(ts_ns, w.ts[w.head]) < window_ns


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
        if ((side != BUY and side != SELL) or not _price_ok(price_ticks)
                or qty_lots <= 0 or qty_lots > MAX_QTY_LOTS):
            return INVALID_ORDER
        if not self.synced or sat_sub(ts_ns, self.last_market_ns) > self.stale_after_ns:
            return STALE_DATA
        ref_x2 = self.reference_x2_ticks()
        if self.mid_none_count >= self.mid_none_limit or ref_x2 <= 0:
            return NO_MID
        if price_ticks < self.min_price_ticks:
            return PRICE_TOO_LOW
        # price <= 2**53 and 0 < ref_x2 <= 2**54 (on_market / set_oracle_price bound it): no overflow
        if fabs(<double>(2 * price_ticks - ref_x2)) > self.max_price_deviation * <double>ref_x2:
            return PRICE_BAND
        # qty > floor(cap / price)  <=>  price * qty > cap, without the overflow of a fat-finger quantity
        if qty_lots > self.max_order_notional_tl // price_ticks:
            return MAX_ORDER_NOTIONAL
        notional = price_ticks * qty_lots          # <= max_order_notional_tl (int64) by the check above
        reducing = self.is_reducing(side, qty_lots)
        if self.trading_state == REDUCING and not reducing:
            return TRADING_REDUCING
        if not reducing:
            # not reducing: the worst-case position is on the order's side, so its absolute value is this sum
            # 128-bit: |pos|, open qty <= 2**62, qty <= 2**53, notionals <= 2**63, ref_x2 <= 2**54
            if side == BUY:
                if <int128>pos + self.open_buy_qty_lots + qty_lots > self.max_position_lots:
                    return MAX_POSITION
            elif <int128>self.open_sell_qty_lots + qty_lots - pos > self.max_position_lots:
                return MAX_POSITION
            abs_pos = pos if pos >= 0 else -pos
            # in units of tick*lots / 2, since the reference is kept as twice the price
            if (2 * (<int128>self.open_buy_notional_tl + self.open_sell_notional_tl + notional)
                    + <int128>abs_pos * ref_x2 > 2 * <int128>self.max_symbol_notional_tl):
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
            ``SPREAD_TOO_WIDE``; ``INVALID_ORDER`` if a price is outside ``[1, MAX_PRICE_TICKS]``.
        """
        cdef int code
        cdef double sum_px, spread_x2
        if not (_price_ok(bid_ticks) and _price_ok(ask_ticks)):
            code = INVALID_ORDER
        else:
            sum_px = <double>(ask_ticks + bid_ticks)          # both in [1, 2**53]: no overflow
            spread_x2 = <double>(2 * (ask_ticks - bid_ticks))
            if ask_ticks <= bid_ticks or spread_x2 < self.min_spread_frac * sum_px:
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
        (lots) do not exceed ``|position|``: the fills cannot flip the position. Any int64 ``qty_lots`` is
        safe (the sum is formed in 128 bits).
        """
        if side == BUY:
            return self.position_lots < 0 and <int128>self.open_buy_qty_lots + qty_lots <= -<int128>self.position_lots
        if side == SELL:
            return self.position_lots > 0 and <int128>self.open_sell_qty_lots + qty_lots <= self.position_lots
        return False

    cpdef int64_t reference_x2_ticks(self) noexcept:
        """Return twice the reference price (ticks): the oracle's if set, else the last valid mid; 0 if none."""
        return 2 * self.oracle_price_ticks if self.oracle_price_ticks > 0 else self.mid_x2_ticks

    cpdef double exposure_usdt(self) noexcept:
        """Return this symbol's exposure (USDT): ``|position|`` at the reference price + open-order notional.

        The caller can sum it over symbols into ``GlobalExposure.notional_usdt``.
        """
        cdef int64_t abs_pos = self.position_lots if self.position_lots >= 0 else -self.position_lots
        cdef int128 tl_x2 = (<int128>abs_pos * self.reference_x2_ticks()          # < 2**117: exact in 128 bits
                             + 2 * (<int128>self.open_buy_notional_tl + self.open_sell_notional_tl))
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
            A value above ``2 * MAX_PRICE_TICKS`` is no valid mid either (a book holds prices <= 2**53, so the
            engine's ``best_bid + best_ask`` is at most 2**54 and cannot overflow on its way here).
        synced : bool
            The book is in sync with the exchange (no sequence gap pending a resync).
        """
        self.last_market_ns = ts_ns
        self.synced = synced
        if 0 < mid_x2_ticks <= 2 * MAX_PRICE_TICKS:
            self.mid_x2_ticks = mid_x2_ticks
            self.mid_none_count = 0
        else:
            self.mid_none_count += 1

    cpdef void set_oracle_price(self, int64_t price_ticks) except *:
        """Set the external reference price of the price band (ticks); <= 0 clears it (the own mid is used).

        Raises ValueError above ``MAX_PRICE_TICKS`` (2**53); the reference is unchanged then.
        """
        if price_ticks > MAX_PRICE_TICKS:
            raise ValueError(f"oracle price {price_ticks} ticks above {MAX_PRICE_TICKS}")
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
            ``side`` is not +1 or -1, the price is outside ``[1, MAX_PRICE_TICKS]``, the quantity outside
            ``[0, MAX_QTY_LOTS]``, or the position would leave ``+-MAX_ACCUM_LOTS`` (nothing changes).
        """
        cdef int64_t pos
        _check_fill_args(side, price_ticks, qty_lots, "fill")
        pos = self.position_lots + side * qty_lots             # |position| <= 2**62, qty <= 2**53: no overflow
        if pos > MAX_ACCUM_LOTS or pos < -MAX_ACCUM_LOTS:
            raise ValueError(f"fill of {qty_lots} lots: position would be {pos} lots, beyond +-{MAX_ACCUM_LOTS}")
        self.position_lots = pos
        self._remove_open(side, price_ticks, qty_lots)

    cpdef void set_position(self, int64_t position_lots) except *:
        """Set the position (lots), e.g. after reconciliation with the exchange or a flatten.

        Raises ValueError beyond ``+-MAX_ACCUM_LOTS`` (2**62; the position is unchanged then).
        """
        if position_lots > MAX_ACCUM_LOTS or position_lots < -MAX_ACCUM_LOTS:
            raise ValueError(f"position {position_lots} lots beyond +-{MAX_ACCUM_LOTS}")
        self.position_lots = position_lots

    cpdef void on_order_open(self, int side, int64_t price_ticks, int64_t qty_lots) except *:
        """Add a new open order (side +1/-1, limit price ticks, quantity lots).

        Raises ValueError (nothing changes) on a bad side, a price outside ``[1, MAX_PRICE_TICKS]``, a quantity
        outside ``[0, MAX_QTY_LOTS]``, an open quantity beyond ``MAX_ACCUM_LOTS`` or an open notional beyond
        2**63 - 1 tick*lots.
        """
        cdef int128 notional
        cdef int64_t open_qty
        _check_fill_args(side, price_ticks, qty_lots, "open order")
        notional = <int128>price_ticks * qty_lots + (self.open_buy_notional_tl if side == BUY
                                                     else self.open_sell_notional_tl)
        open_qty = qty_lots + (self.open_buy_qty_lots if side == BUY else self.open_sell_qty_lots)
        if notional > INT64_MAX or open_qty > MAX_ACCUM_LOTS:
            raise ValueError(f"open order of {qty_lots} lots at {price_ticks} ticks: open quantity or notional "
                             f"would pass the int64 range")
        if side == BUY:
            self.open_buy_qty_lots = open_qty
            self.open_buy_notional_tl = <int64_t>notional
        else:
            self.open_sell_qty_lots = open_qty
            self.open_sell_notional_tl = <int64_t>notional

    cpdef void on_order_closed(self, int side, int64_t price_ticks, int64_t remaining_qty_lots) except *:
        """Remove the unfilled remainder (lots) of an order that was cancelled, expired or rejected.

        Open quantity and notional never go below zero. Raises ValueError (nothing changes) on a bad side, a
        price outside ``[1, MAX_PRICE_TICKS]`` or a quantity outside ``[0, MAX_QTY_LOTS]``.
        """
        _check_fill_args(side, price_ticks, remaining_qty_lots, "closed order")
        self._remove_open(side, price_ticks, remaining_qty_lots)

    cdef void _remove_open(self, int side, int64_t price_ticks, int64_t qty_lots) noexcept:
        # Arguments checked by the caller: price <= 2**53, 0 <= qty <= 2**53; the product is formed in 128 bits
        # and each result lies in [0, previous value].
        cdef int128 notional = <int128>price_ticks * qty_lots
        if side == BUY:
            self.open_buy_qty_lots = max(<int64_t>0, self.open_buy_qty_lots - qty_lots)
            self.open_buy_notional_tl = 0 if notional >= self.open_buy_notional_tl else \
                <int64_t>(self.open_buy_notional_tl - notional)
        else:
            self.open_sell_qty_lots = max(<int64_t>0, self.open_sell_qty_lots - qty_lots)
            self.open_sell_notional_tl = 0 if notional >= self.open_sell_notional_tl else \
                <int64_t>(self.open_sell_notional_tl - notional)

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
            self.cooldown_until_buy_ns = sat_add(ts_ns, self.cancel_cooldown_ns)
        else:
            self.cooldown_until_sell_ns = sat_add(ts_ns, self.cancel_cooldown_ns)

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
