"""Configuration of the pre-trade risk gate (:mod:`mmcore_ext.risk`), in human units.

``RiskConfig`` holds USDT amounts, base-unit quantities, fractions and seconds. ``RiskConfig.limits`` converts
them once, for one instrument, into the integer units of the hot path (ticks, lots, tick*lots, ns):
``RiskLimits``. Both the compiled gate and the pure-Python reference (:mod:`mmcore.reference.risk`) are built from
the same ``RiskLimits``, so the conversion lives in one place.

Notional in quote currency (USDT) = ``price_ticks * qty_lots * tick_size * lot_size``; a "tick*lot" is the
notional unit ``tick_size * lot_size`` USDT.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

#: Largest int64: a limit that is off.
INT64_MAX = 2**63 - 1
#: Bounds of the validated ranges (every field has a finite range, so a conversion to hot-path units never
#: overflows): USDT amounts and base quantities at most 1e12, durations at most 1e9 s (31.7 years; int64 ns
#: hold 292 years). The per-instrument limits are tighter (:meth:`RiskConfig.limits`).
MAX_USDT = 1e12
MAX_BASE = 1e12
MAX_SECONDS = 1e9
#: Largest cap in hot-path integer units (tick*lots, lots): int64 headroom for sums of a few of them.
MAX_CAP_UNITS = 2**60


def _brief(v) -> str:
    from mmcore.config import brief
    return brief(v)


def _dec(x) -> Decimal:
    return x if isinstance(x, Decimal) else Decimal(str(x))


def _floor_div(a, b) -> int:
    return int((_dec(a) / _dec(b)).to_integral_value(rounding=ROUND_FLOOR))


def _ceil_div(a, b) -> int:
    return int((_dec(a) / _dec(b)).to_integral_value(rounding=ROUND_CEILING))


@dataclass(frozen=True)
class RiskConfig:
    """Limits of the pre-trade risk gate and of the trading state machine (frozen; validated on construction).

    Attributes
    ----------
    max_single_trade_usdt : float
        Largest notional of one order (USDT). Refusal ``MAX_ORDER_NOTIONAL``.
    max_symbol_notional_usdt : float
        Cap on open-order notional (both sides) + position notional at the reference price + the new order, for
        one symbol (USDT). Refusal ``SYMBOL_NOTIONAL_CAP``.
    max_global_notional_usdt : float
        Cap on the caller-maintained exposure across all symbols + the new order (USDT).
        Refusal ``GLOBAL_NOTIONAL_CAP``.
    max_position_base : float or None
        Largest ``|position|`` in base units (None: off). Refusal ``MAX_POSITION``.
    net_max : float or None
        The strategy's inventory bound in base units (None: off); the position limit from it is
        ``max_position_fraction_of_net_max * net_max``. With both this and ``max_position_base`` set, the tighter
        applies.
    max_position_fraction_of_net_max : float
        Fraction of ``net_max`` allowed as ``|position|``, in (0, 1].
    max_price_deviation : float
        Fat-finger band: largest ``|price - reference| / reference`` (fraction); the reference is the oracle price
        when set, else the own mid. Refusal ``PRICE_BAND``.
    min_spread_frac, max_spread_frac : float
        Allowed quoted spread ``(ask - bid) / mid`` (fraction; 0.0005 = 5 bps). Refusals ``SPREAD_TOO_NARROW``,
        ``SPREAD_TOO_WIDE`` from ``check_spread``.
    min_price : float
        Lowest order price (USDT); the MEXC seed skipped symbols under $10. Refusal ``PRICE_TOO_LOW``.
    symbol_whitelist : tuple of str or None
        Symbols allowed to trade (None: all; a list is stored as a tuple; a mapping, set or string is refused).
        Refusal ``SYMBOL_NOT_ALLOWED``.
    stale_after_s : float
        Largest age of the last book update at check time (s). Refusal ``STALE_DATA``.
    mid_none_limit : int
        Consecutive market events without a valid mid after which new orders pause until a valid mid returns.
        Refusal ``NO_MID``.
    max_daily_loss_usdt : float
        Daily loss ``-(realized + unrealized)`` (USDT) at which trading halts.
    stop_loss_usdt : float or None
        Halt when the unrealized loss, or the drawdown of total PnL from its peak, reaches this (USDT; None: off).
    reduce_at_fraction : float or None
        Enter REDUCING when the daily loss reaches this fraction of ``max_daily_loss_usdt`` (None: never).
    hysteresis_fraction : float
        Leave REDUCING for ACTIVE only when the daily loss is below ``reduce level * (1 - hysteresis_fraction)``.
    orders_per_window, cancels_per_window : int
        Largest number of new orders / cancels within any ``window_s`` (0: off). Refusals ``ORDER_RATE``,
        ``CANCEL_RATE``. The default, 50 per 10 s, is the spot ``ORDERS`` figure in Binance's ``exchangeInfo``
        example (``config/ratelimits.yaml``; the account's real value is in ``exchangeInfo`` ``rateLimits``:
        https://developers.binance.com/docs/binance-spot-api-docs/rest-api/limits).
    window_s : float
        Length of the rolling rate window (s).
    cancel_cooldown_seconds : float
        No new order on a side within this time after a cancel on that side (s; 0: off). Refusal
        ``CANCEL_COOLDOWN``.
    flatten_on_halt : bool
        Whether the engine should flatten the position (through its own explicit path) when trading halts.

    Every number has a finite range (USDT amounts and base quantities in (0, 1e12], times in seconds up to
    1e9); :meth:`validate` lists them.
    """

    max_single_trade_usdt: float = 50.0
    max_symbol_notional_usdt: float = 200.0
    max_global_notional_usdt: float = 2000.0
    max_position_base: float | None = None
    net_max: float | None = None
    max_position_fraction_of_net_max: float = 1.0
    max_price_deviation: float = 0.02
    min_spread_frac: float = 0.0005
    max_spread_frac: float = 0.005
    min_price: float = 10.0
    symbol_whitelist: tuple[str, ...] | None = None
    stale_after_s: float = 5.0
    mid_none_limit: int = 50
    max_daily_loss_usdt: float = 100.0
    stop_loss_usdt: float | None = None
    reduce_at_fraction: float | None = 0.5
    hysteresis_fraction: float = 0.2
    orders_per_window: int = 50
    cancels_per_window: int = 50
    window_s: float = 10.0
    cancel_cooldown_seconds: float = 0.0
    flatten_on_halt: bool = True

    def __post_init__(self):
        wl = self.symbol_whitelist
        if isinstance(wl, list):               # YAML gives a list; a mapping, set or str stays and is refused
            object.__setattr__(self, "symbol_whitelist", tuple(wl))
        self.validate()

    def validate(self) -> None:
        """Check every field.

        Raises
        ------
        ValueError
            Fields out of range: one line per bad field, each naming the field, its value (bounded, see
            :func:`mmcore.config.brief`) and the allowed range.
        """
        problems = self.problems()
        if problems:
            raise ValueError("\n".join(problems))

    def problems(self) -> list[str]:
        """The messages :meth:`validate` would raise (empty when valid), one per bad field."""
        out = []
        good = set()

        def number(name, lo, hi, lo_open=False, hi_open=False, optional=False, integer=False):
            v = getattr(self, name)
            if v is None and optional:
                good.add(name)
                return
            rng = f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}" + (" or None" if optional else "")
            kind = int if integer else (int, float)
            ok = isinstance(v, kind) and not isinstance(v, bool) and not (isinstance(v, float) and math.isnan(v))
            if ok:             # exact comparisons: a huge int compares with a float bound without converting
                ok = (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
            if not ok:
                what = "an integer" if integer else "a number"
                out.append(f"RiskConfig.{name} = {_brief(v)}: must be {what} in {rng}")
            else:
                good.add(name)

        number("max_single_trade_usdt", 0, MAX_USDT, lo_open=True)
        number("max_symbol_notional_usdt", 0, MAX_USDT, lo_open=True)
        number("max_global_notional_usdt", 0, MAX_USDT, lo_open=True)
        number("max_position_base", 0, MAX_BASE, lo_open=True, optional=True)
        number("net_max", 0, MAX_BASE, lo_open=True, optional=True)
        number("max_position_fraction_of_net_max", 0, 1, lo_open=True)
        number("max_price_deviation", 0, 1, lo_open=True, hi_open=True)
        number("min_spread_frac", 0, 1, hi_open=True)
        number("max_spread_frac", 0, 1, lo_open=True, hi_open=True)
        if {"min_spread_frac", "max_spread_frac"} <= good and self.max_spread_frac < self.min_spread_frac:
            out.append(f"RiskConfig.max_spread_frac = {self.max_spread_frac!r}: must be in "
                       f"[min_spread_frac = {self.min_spread_frac!r}, 1)")
        number("min_price", 0, MAX_USDT)
        wl = self.symbol_whitelist
        if wl is not None and (not isinstance(wl, tuple) or not all(isinstance(s, str) and s for s in wl)):
            out.append(f"RiskConfig.symbol_whitelist = {_brief(wl)}: must be a list of non-empty strings "
                       f"(a tuple of str) or None")
        number("stale_after_s", 0, MAX_SECONDS, lo_open=True)
        number("mid_none_limit", 1, 2**31 - 1, integer=True)
        number("max_daily_loss_usdt", 0, MAX_USDT, lo_open=True)
        number("stop_loss_usdt", 0, MAX_USDT, lo_open=True, optional=True)
        number("reduce_at_fraction", 0, 1, lo_open=True, optional=True)
        number("hysteresis_fraction", 0, 1, hi_open=True)
        number("orders_per_window", 0, 1_000_000, integer=True)
        number("cancels_per_window", 0, 1_000_000, integer=True)
        number("window_s", 0, MAX_SECONDS, lo_open=True)
        number("cancel_cooldown_seconds", 0, MAX_SECONDS)
        if not isinstance(self.flatten_on_halt, bool):
            out.append(f"RiskConfig.flatten_on_halt = {_brief(self.flatten_on_halt)}: must be True or False")
        return out

    def limits(self, tick_size, lot_size, symbol: str) -> "RiskLimits":
        """Convert the limits for one instrument into hot-path units.

        Parameters
        ----------
        tick_size : Decimal or str
            Price tick (quote currency per tick).
        lot_size : Decimal or str
            Quantity unit (base units per lot).
        symbol : str
            Exchange symbol the gate guards (checked against ``symbol_whitelist``).

        Returns
        -------
        RiskLimits
            Money caps are floored to whole tick*lots and position caps to whole lots (a refusal on
            ``notional > cap`` is then exact in integers); ``min_price`` is rounded up to whole ticks.

        Raises
        ------
        ValueError
            ``tick_size`` or ``lot_size`` is not > 0; or a cap does not fit this instrument's integer units:
            ``max_single_trade_usdt`` / ``max_symbol_notional_usdt`` must be below 2**60 tick*lots, the
            position caps below 2**60 lots (one line per field, named ``RiskConfig.<field>``).
        """
        tick, lot = _dec(tick_size), _dec(lot_size)
        if not tick > 0 or not lot > 0:
            raise ValueError(f"tick_size = {tick_size!r} and lot_size = {lot_size!r}: both must be > 0")
        tl = tick * lot
        errors = []
        for name in ("max_single_trade_usdt", "max_symbol_notional_usdt"):
            if _floor_div(getattr(self, name), tl) >= MAX_CAP_UNITS:
                errors.append(f"RiskConfig.{name} = {getattr(self, name)!r}: must be below "
                              f"{float(MAX_CAP_UNITS * tl):g} USDT for {symbol} (2**60 tick*lots of {tl} USDT: "
                              f"int64 headroom)")
        pos_caps = []
        if self.max_position_base is not None:
            pos_caps.append(("max_position_base", _floor_div(self.max_position_base, lot)))
        if self.net_max is not None:
            pos_caps.append(("net_max", _floor_div(_dec(self.net_max) * _dec(self.max_position_fraction_of_net_max),
                                                   lot)))
        for name, lots in pos_caps:
            if lots >= MAX_CAP_UNITS:
                errors.append(f"RiskConfig.{name} = {getattr(self, name)!r}: must be below "
                              f"{float(MAX_CAP_UNITS * lot):g} base units for {symbol} (2**60 lots of {lot})")
        if errors:
            raise ValueError("\n".join(errors))
        pos_caps = [lots for _, lots in pos_caps]
        reduce_level = (math.inf if self.reduce_at_fraction is None
                        else self.reduce_at_fraction * self.max_daily_loss_usdt)
        return RiskLimits(
            symbol=symbol,
            symbol_allowed=self.symbol_whitelist is None or symbol in self.symbol_whitelist,
            usdt_per_tick_lot=float(tl),
            max_order_notional_tl=_floor_div(self.max_single_trade_usdt, tl),
            max_symbol_notional_tl=_floor_div(self.max_symbol_notional_usdt, tl),
            max_global_notional_usdt=float(self.max_global_notional_usdt),
            max_position_lots=min(pos_caps) if pos_caps else INT64_MAX,
            max_price_deviation=float(self.max_price_deviation),
            min_spread_frac=float(self.min_spread_frac),
            max_spread_frac=float(self.max_spread_frac),
            min_price_ticks=_ceil_div(self.min_price, tick),
            stale_after_ns=_floor_div(self.stale_after_s, Decimal("1e-9")),
            mid_none_limit=self.mid_none_limit,
            max_daily_loss_usdt=float(self.max_daily_loss_usdt),
            reduce_level_usdt=reduce_level,
            recover_level_usdt=reduce_level * (1.0 - self.hysteresis_fraction),
            stop_loss_usdt=math.inf if self.stop_loss_usdt is None else float(self.stop_loss_usdt),
            orders_per_window=self.orders_per_window,
            cancels_per_window=self.cancels_per_window,
            window_ns=_floor_div(self.window_s, Decimal("1e-9")),
            cancel_cooldown_ns=_floor_div(self.cancel_cooldown_seconds, Decimal("1e-9")),
            flatten_on_halt=self.flatten_on_halt,
        )


@dataclass(frozen=True)
class RiskLimits:
    """``RiskConfig`` for one instrument in hot-path units (built by ``RiskConfig.limits``).

    Attributes
    ----------
    symbol : str
        Exchange symbol.
    symbol_allowed : bool
        The symbol passes the whitelist.
    usdt_per_tick_lot : float
        Notional of one tick*lot (USDT) = ``tick_size * lot_size``.
    max_order_notional_tl, max_symbol_notional_tl : int
        Per-order and per-symbol notional caps (tick*lots).
    max_global_notional_usdt : float
        Cross-symbol cap (USDT).
    max_position_lots : int
        Largest ``|position|`` (lots; ``INT64_MAX`` when off).
    max_price_deviation, min_spread_frac, max_spread_frac : float
        Fractions, as in the config.
    min_price_ticks : int
        Lowest order price (ticks).
    stale_after_ns, window_ns, cancel_cooldown_ns : int
        Times (ns).
    mid_none_limit, orders_per_window, cancels_per_window : int
        Counts.
    max_daily_loss_usdt, reduce_level_usdt, recover_level_usdt, stop_loss_usdt : float
        Daily-loss thresholds of HALTED, REDUCING and the return to ACTIVE, and the stop loss (USDT; ``inf`` when
        off).
    flatten_on_halt : bool
        As in the config.
    """

    symbol: str
    symbol_allowed: bool
    usdt_per_tick_lot: float
    max_order_notional_tl: int
    max_symbol_notional_tl: int
    max_global_notional_usdt: float
    max_position_lots: int
    max_price_deviation: float
    min_spread_frac: float
    max_spread_frac: float
    min_price_ticks: int
    stale_after_ns: int
    mid_none_limit: int
    max_daily_loss_usdt: float
    reduce_level_usdt: float
    recover_level_usdt: float
    stop_loss_usdt: float
    orders_per_window: int
    cancels_per_window: int
    window_ns: int
    cancel_cooldown_ns: int
    flatten_on_halt: bool
