"""The emulator's knobs (connection limits, timers, rate limits, starting balances), with Binance's values as
defaults per market.

Sources (research notes /work/research/binance_wire.md): spot streams ping every 20 s, disconnect without a pong
within 60 s, 5 incoming messages per second, 1024 streams per connection [S-WSS-25]; USDⓈ-M streams ping every
3 min, disconnect without a pong within 10 min, 10 messages per second, 200 streams [UM-WSS]; WS API: spot 20 s /
60 s [S-WSAPI], USDⓈ-M 3 min / 10 min [UM-WSAPI-GI]; every connection lives 24 h [S-WSS-23][UM-WSS]; a listenKey is
valid 60 min [UM-UDS]; REQUEST_WEIGHT 6000/min spot, 2400/min USDⓈ-M; ORDERS 50/10 s and 160 000/day spot
[S-WSAPI], 1200/min USDⓈ-M [UM-EXI] (its 10-second value is UNCONFIRMED: 300 here, the figure the config's risk
section quotes); recvWindow at most 60 000 ms [S-WSAPI].
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import Decimal

SPOT = "binance_spot"
USDM = "binance_usdm"


@dataclass(frozen=True)
class EmulatorSettings:
    """Every time in seconds unless the name says otherwise.

    Attributes
    ----------
    market : str
        ``binance_spot`` or ``binance_usdm``.
    ping_interval_s, pong_timeout_s : float
        Server pings on every WebSocket; a connection that has not answered the oldest unanswered ping (spot: with
        its payload; USDⓈ-M: any pong) within ``pong_timeout_s`` is closed.
    lifetime_s : float
        A WebSocket connection is closed (1000, "connection lifetime") after this long.
    max_messages_per_s : int
        Incoming frames (text, ping, pong) per second on a market-data connection; one more closes it (1008).
    max_streams : int
        Streams per market-data connection (URL plus SUBSCRIBE).
    listen_key_ttl_s : float
        USDⓈ-M listenKey validity after creation or the last keep-alive.
    slow_client_s : float
        A connection whose send queue stays above ``high_water_bytes`` for this long is dropped.
    high_water_bytes : int
        Send queue size above which the replay waits for the connection (flow control).
    weight_per_minute, orders_per_10s, orders_per_day, orders_per_minute : int
        Rate limits per account (REQUEST_WEIGHT, ORDERS); 0 disables that limit.
    recv_window_max_ms : int
    close_timeout_s : float
        How long a close waits for the client's close frame.
    balances : dict
        Starting balances of every account (asset -> Decimal): spot free balances; USDⓈ-M wallet balance.
    leverage : int
        USDⓈ-M leverage of every symbol (initial margin = notional / leverage).
    start : str
        ``client`` (the replay starts with the first client connection or request), ``now``, or ``paused``
        (waits for ``POST /_emulator/resume``).
    """

    market: str
    ping_interval_s: float
    pong_timeout_s: float
    lifetime_s: float = 86400.0
    max_messages_per_s: int = 5
    max_streams: int = 1024
    listen_key_ttl_s: float = 3600.0
    slow_client_s: float = 5.0
    high_water_bytes: int = 4 << 20
    weight_per_minute: int = 6000
    orders_per_10s: int = 50
    orders_per_day: int = 160_000
    orders_per_minute: int = 0
    recv_window_max_ms: int = 60_000
    close_timeout_s: float = 1.0
    balances: dict = field(default_factory=dict)
    leverage: int = 20
    start: str = "client"

    @classmethod
    def for_market(cls, market: str, **overrides) -> "EmulatorSettings":
        """Binance's values for ``market``, then ``overrides`` (keyword = attribute; None values are ignored)."""
        if market == SPOT:
            base = cls(market, 20.0, 60.0, balances={"USDT": Decimal("1000000"), "BTC": Decimal("10"),
                                                      "ETH": Decimal("100")})
        elif market == USDM:
            base = cls(market, 180.0, 600.0, max_messages_per_s=10, max_streams=200, weight_per_minute=2400,
                       orders_per_10s=300, orders_per_day=0, orders_per_minute=1200,
                       balances={"USDT": Decimal("1000000")})
        else:
            raise ValueError(f"market must be {SPOT} or {USDM}, got {market!r}")
        given = {k: v for k, v in overrides.items() if v is not None}
        if "balances" in given:
            given["balances"] = {**base.balances, **given["balances"]}
        s = replace(base, **given)
        s.check()
        return s

    def check(self) -> None:
        """Raise ValueError naming the first bad attribute."""
        for name in ("ping_interval_s", "pong_timeout_s", "lifetime_s", "listen_key_ttl_s", "slow_client_s",
                     "close_timeout_s"):
            v = getattr(self, name)
            if not 0 < v <= 1e9:
                raise ValueError(f"{name} = {v}: must be in (0, 1e9] seconds")
        for name in ("max_messages_per_s", "max_streams", "high_water_bytes", "leverage"):
            if not 1 <= getattr(self, name) <= 1 << 40:
                raise ValueError(f"{name} = {getattr(self, name)}: must be a positive integer")
        for name in ("weight_per_minute", "orders_per_10s", "orders_per_day", "orders_per_minute"):
            if not 0 <= getattr(self, name) <= 1 << 40:
                raise ValueError(f"{name} = {getattr(self, name)}: must be >= 0 (0 = no limit)")
        if self.start not in ("client", "now", "paused"):
            raise ValueError(f"start = {self.start!r}: must be client, now or paused")
        for asset, amount in self.balances.items():
            if not (isinstance(amount, Decimal) and amount.is_finite() and 0 <= amount <= Decimal(10) ** 15):
                raise ValueError(f"balance {asset} = {amount}: must be a number in [0, 1e15]")
