"""Accounts of the emulated exchange: API keys, balances or margin, positions, order records, fills, and the
user-data events their changes produce.

Matching: every (account, symbol) has its own :class:`mmcore.sim.exchange.SimExchange` on the emulator's book of
that symbol, with the replay's queue and fee models (``mmcore.engine.wiring.sim_models``: the config's ``sim``
section). The latency model is applied by :class:`LatencyQueue`: a request takes effect ``entry_latency_ms`` (orders,
modifications) or ``cancel_latency_ms`` (cancels) after it was received, in arrival order, while the market goes on
(so a cancel can lose the race against a fill, as in replay); the SimExchange itself then runs with zero latency.
The answer to the request is sent when it took effect (Binance answers once the matching engine has processed it).

Order rules (research notes /work/research/binance_wire.md §3.3, §3.5, §4, §6):

- post-only: spot ``LIMIT_MAKER`` and USDⓈ-M ``timeInForce=GTX``; one that would take is refused (-2010 "Order would
  immediately match and take." / -5022) and leaves no order record, no event [S-WSAPI][GTX-2023];
- ``timeInForce=IOC`` (and ``MARKET``, an IOC at 5 % through the opposite best): takes the visible book levels up to
  its price (taker fee), the rest expires; a crossing ``GTC`` limit is treated the same (the emulator cannot rest
  the remainder of a taker order: the SimExchange's taker fills do not consume the book);
- a client order id may be reused only when no open order has it (-2010 "Duplicate order sent.") [S-WSAPI];
- spot balances: a buy locks ``price * quantity`` of the quote asset, a sell the quantity of the base asset
  (-2010 "Account has insufficient balance for requested action."); the commission is charged in the asset
  received, at the maker or taker rate [S-UDS-TN executionReport ``n``/``N``];
- USDⓈ-M: one-way mode (``positionSide`` BOTH), cross margin at ``leverage``; initial margin of open orders and of
  the position must fit the wallet (-2019 "Margin is insufficient."); ``reduceOnly`` orders may only reduce
  (-2022); commission in the margin asset; realized PnL at the average entry price.

Ids: ``orderId`` and trade ids count per symbol from 1 (unique across accounts, like Binance's); each fill gets its
own trade id (``myTrades[].id`` = the event's ``t``).
"""
from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import secrets
import time
from collections import Counter
from decimal import Decimal

from mmcore.execution import (BUY, SELL, OrderAccepted, OrderCanceled, OrderCancelRejected, OrderExpired,
                              OrderFilled, OrderRejected)
from mmcore.sim.emulator.errors import (CANCEL_UNKNOWN, DUPLICATE_ORDER, GTX_WOULD_TAKE, INSUFFICIENT,
                                        MARGIN_INSUFFICIENT, NO_SUCH_ORDER, REDUCE_ONLY_REJECTED, WOULD_TAKE,
                                        BinanceError, err)
from mmcore.sim.emulator.settings import SPOT
from mmcore.sim.exchange import SimExchange
from mmcore.sim.models import ConservativeQueue, ConstantLatency

log = logging.getLogger("mmcore.sim.emulator.accounts")

OPEN = ("NEW", "PARTIALLY_FILLED")
ZERO = Decimal(0)
_BPS = Decimal(10000)
_SIDE = {BUY: "BUY", SELL: "SELL"}
MARKET_BAND = Decimal("0.05")
MAX_RECORDS = 200_000            # closed orders kept per (account, symbol); the oldest closed ones go first


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def d8(v: Decimal) -> str:
    return f"{v:.8f}"


class LatencyQueue:
    """Requests taking effect after a delay, in (due time, arrival) order. ``schedule(delay_s, fn)`` returns a
    Future resolved with ``fn()``'s result (or its exception) once it ran."""

    def __init__(self):
        self._heap: list = []
        self._seq = itertools.count()
        self._timer = None

    def schedule(self, delay_s: float, fn) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        heapq.heappush(self._heap, (loop.time() + delay_s, next(self._seq), fn, fut))
        self._arm(loop)
        return fut

    def _arm(self, loop) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._heap:
            self._timer = loop.call_at(self._heap[0][0], self._fire)

    def _fire(self) -> None:
        loop = asyncio.get_running_loop()
        self._timer = None
        now = loop.time()
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, _, fn, fut = heapq.heappop(heap)
            if fut.cancelled():
                continue
            try:
                res = fn()
            except BinanceError as exc:
                fut.set_exception(exc)
            except Exception as exc:                       # noqa: BLE001 - answered as -1000, logged by caller
                fut.set_exception(exc)
            else:
                fut.set_result(res)
        self._arm(loop)


class FillRecord:
    __slots__ = ("trade_id", "order_id", "coid", "side", "price", "qty", "quote", "commission", "commission_asset",
                 "time_ms", "maker", "realized", "market_trade_id")

    def __init__(self, **kw):
        for k, v in kw.items():
            setattr(self, k, v)


class OrderRecord:
    """The exchange's record of one order (prices in ticks, quantities in lots, quote amounts Decimal)."""

    __slots__ = ("symbol", "order_id", "coid", "side", "type", "tif", "price", "qty", "executed", "cum_quote",
                 "status", "time_ms", "update_ms", "working_ms", "key", "post_only", "reduce_only", "fills", "lock",
                 "lock_px", "amending", "shown_price", "keys")

    def __init__(self, symbol, order_id, coid, side, otype, tif, price, qty, post_only, reduce_only, shown_price):
        self.symbol, self.order_id, self.coid, self.side = symbol, order_id, coid, side
        self.type, self.tif, self.price, self.qty = otype, tif, price, qty
        self.executed = 0
        self.cum_quote = ZERO
        self.status = "PENDING_NEW"
        self.time_ms = self.update_ms = self.working_ms = now_ms()
        self.key = str(order_id)
        self.keys = 0
        self.post_only, self.reduce_only = post_only, reduce_only
        self.fills: list[FillRecord] = []
        self.lock = ZERO
        self.lock_px = ZERO
        self.amending = False
        self.shown_price = shown_price

    @property
    def remaining(self) -> int:
        return self.qty - self.executed

    @property
    def is_open(self) -> bool:
        return self.status in OPEN


class SymbolAccount:
    """One account's side of one symbol: its SimExchange, orders, fills and position."""

    def __init__(self, account: "Account", exchange: "Exchange", symbol: str):
        self.account, self.exchange, self.symbol = account, exchange, symbol
        self.inst = exchange.instruments[symbol]
        self.sm = exchange.market.symbols[symbol]
        lat, fees, taker = exchange.models[symbol]
        self.fees, self.taker_fees = fees, taker
        self.sim = SimExchange(self.sm.book, ConstantLatency(0, 0), fees, self._on_report, ConservativeQueue(),
                               taker_fees=taker)
        self.orders: dict[int, OrderRecord] = {}
        self.by_key: dict[str, OrderRecord] = {}
        self.fills: list[FillRecord] = []
        self.position = 0                       # lots, signed
        self.entry = ZERO                       # USDⓈ-M average entry price (quote)
        self.realized = ZERO
        self.update_ms = 0

    # --- queries ---
    def find(self, order_id=None, coid=None) -> OrderRecord | None:
        if order_id is not None:
            return self.orders.get(order_id)
        if coid is not None:
            found = None
            for r in self.orders.values():          # the newest order with that id
                if r.coid == coid:
                    found = r
            return found
        return None

    def open_orders(self) -> list[OrderRecord]:
        return [r for r in self.orders.values() if r.is_open]

    # --- reports from the SimExchange (synchronous, inside an operation or a market trade) ---
    def _on_report(self, rep) -> None:
        rec = self.by_key.get(rep.client_order_id)
        if rec is None:
            return
        t = type(rep)
        ex = self.exchange
        acc = self.account
        ms = now_ms()
        if t is OrderFilled:
            self._fill(rec, rep, ms)
            return
        rec.update_ms = ms
        if t is OrderAccepted:
            if rec.amending:
                rec.status = "PARTIALLY_FILLED" if rec.executed else "NEW"
                return
            rec.status = "NEW"
            rec.working_ms = ms
            ex.emit_order(acc, self, rec, "NEW")
            if ex.spot:
                ex.emit_balance(acc, self.inst.base, self.inst.quote)
        elif t is OrderRejected:
            rec.status = "REJECTED"
            self._unlock(rec)
        elif t is OrderCanceled:
            self.by_key.pop(rec.key, None)
            if rec.amending:
                return
            rec.status = "CANCELED"
            self._unlock(rec)
            ex.emit_order(acc, self, rec, "CANCELED")
            if ex.spot:
                ex.emit_balance(acc, self.inst.base, self.inst.quote)
        elif t is OrderExpired:
            self.by_key.pop(rec.key, None)
            rec.status = "FILLED" if rec.executed >= rec.qty else "EXPIRED"
            self._unlock(rec)
            if rec.status == "EXPIRED":
                ex.emit_order(acc, self, rec, "EXPIRED")
                if ex.spot:
                    ex.emit_balance(acc, self.inst.base, self.inst.quote)
        elif t is OrderCancelRejected:
            pass

    def _fill(self, rec: OrderRecord, rep: OrderFilled, ms: int) -> None:
        ex = self.exchange
        inst = self.inst
        px = inst.price_of(rep.price)
        qty = inst.qty_of(rep.qty)
        quote = px * qty
        bps = self.fees.maker_bps if rep.is_maker else self.taker_fees.maker_bps
        acc = self.account
        realized = ZERO
        if ex.spot:
            if rec.side == BUY:
                comm, asset = qty * bps / _BPS, inst.base
                acc.add(inst.quote, locked=-(rec.lock_px * qty), free=(rec.lock_px - px) * qty)
                rec.lock -= rec.lock_px * qty
                acc.add(inst.base, free=qty - comm)
            else:
                comm, asset = quote * bps / _BPS, inst.quote
                acc.add(inst.base, locked=-qty)
                rec.lock -= qty
                acc.add(inst.quote, free=quote - comm)
        else:
            comm, asset = quote * bps / _BPS, inst.quote
            realized = self._position_fill(rec.side, rep.qty, px)
            acc.wallet += realized - comm
        self.position += rec.side * rep.qty
        rec.executed += rep.qty
        rec.cum_quote += quote
        rec.update_ms = ms
        rec.status = "FILLED" if rec.executed >= rec.qty else "PARTIALLY_FILLED"
        if rec.status == "FILLED":
            self.by_key.pop(rec.key, None)
            self._unlock(rec)
        f = FillRecord(trade_id=ex.next_trade_id(self.symbol), order_id=rec.order_id, coid=rec.coid, side=rec.side,
                       price=rep.price, qty=rep.qty, quote=quote, commission=comm, commission_asset=asset,
                       time_ms=ms, maker=rep.is_maker, realized=realized, market_trade_id=rep.trade_id)
        rec.fills.append(f)
        self.fills.append(f)
        self.update_ms = acc.update_ms = ms
        ex.emit_order(acc, self, rec, "TRADE", fill=f)
        if ex.spot:
            ex.emit_balance(acc, inst.base, inst.quote)
        else:
            ex.emit_account_update(acc, self)

    def _position_fill(self, side: int, lots: int, px: Decimal) -> Decimal:
        """Update the USDⓈ-M position and average entry for a fill; returns the realized PnL (quote)."""
        inst = self.inst
        pos = self.position
        realized = ZERO
        if pos == 0 or (pos > 0) == (side > 0):
            total = abs(pos) + lots
            self.entry = (self.entry * abs(pos) + px * lots) / total
        else:
            closing = min(abs(pos), lots)
            realized = (px - self.entry) * inst.qty_of(closing) * (1 if pos > 0 else -1)
            self.realized += realized
            if lots > abs(pos):
                self.entry = px
            elif lots == abs(pos):
                self.entry = ZERO
        return realized

    def _unlock(self, rec: OrderRecord) -> None:
        if self.exchange.spot and rec.lock:
            inst = self.inst
            asset = inst.quote if rec.side == BUY else inst.base
            self.account.add(asset, free=rec.lock, locked=-rec.lock)
            rec.lock = ZERO

    # --- USDⓈ-M margin ---
    def mark(self) -> Decimal:
        """Mark price (quote): the book's mid, else the last trade, else the entry price."""
        b, a = self.sm.book.best_bid_px(), self.sm.book.best_ask_px()
        if b > 0 and a > 0:
            return self.inst.price_of(b + a) / 2
        if self.sm.last_trade_price:
            return self.inst.price_of(self.sm.last_trade_price)
        return self.entry

    def unrealized(self) -> Decimal:
        if not self.position:
            return ZERO
        return (self.mark() - self.entry) * self.inst.qty_of(self.position)

    def position_margin(self, leverage: int) -> Decimal:
        return abs(self.inst.qty_of(self.position)) * self.mark() / leverage

    def order_margin(self, leverage: int) -> Decimal:
        return sum((self.inst.price_of(r.price) * self.inst.qty_of(r.remaining) for r in self.open_orders()),
                   ZERO) / leverage

    def trim(self) -> None:
        if len(self.orders) > MAX_RECORDS:
            for oid in [o for o, r in self.orders.items() if not r.is_open][:len(self.orders) - MAX_RECORDS]:
                del self.orders[oid]


class Account:
    """One account: ``name``, ``api_key``, ``secret`` (never in repr or logs), balances (spot: asset -> [free,
    locked]; USDⓈ-M: ``wallet`` in the margin asset), symbols, client order ids received."""

    def __init__(self, name: str, api_key: str, secret: str | None, exchange: "Exchange", balances: dict,
                 public_key=None):
        self.name, self.api_key, self.secret = name, api_key, secret
        self.public_key = public_key          # an Ed25519 key's public half (cryptography), or None (HMAC)
        self.exchange = exchange
        self.balances: dict[str, list] = {a: [Decimal(v), ZERO] for a, v in balances.items()}
        self.margin_asset = exchange.margin_asset
        self.wallet = Decimal(balances.get(self.margin_asset, 0)) if not exchange.spot else ZERO
        self.symbols: dict[str, SymbolAccount] = {}
        self.coids = Counter()
        self.update_ms = now_ms()

    def __repr__(self) -> str:
        return f"Account({self.name!r})"

    def sym(self, symbol: str) -> SymbolAccount:
        sa = self.symbols.get(symbol)
        if sa is None:
            sa = self.symbols[symbol] = SymbolAccount(self, self.exchange, symbol)
        return sa

    def add(self, asset: str, free: Decimal = ZERO, locked: Decimal = ZERO) -> None:
        b = self.balances.setdefault(asset, [ZERO, ZERO])
        b[0] += free
        b[1] += locked
        self.update_ms = now_ms()

    def free(self, asset: str) -> Decimal:
        return self.balances.get(asset, [ZERO, ZERO])[0]

    def available(self) -> Decimal:
        """USDⓈ-M available balance: wallet + unrealized PnL - initial margin of positions and open orders."""
        lev = self.exchange.settings.leverage
        out = self.wallet
        for sa in self.symbols.values():
            out += sa.unrealized() - sa.position_margin(lev) - sa.order_margin(lev)
        return out


class OrderRequest:
    """A validated new order (see :mod:`mmcore.sim.emulator.trading`)."""

    __slots__ = ("symbol", "side", "type", "tif", "price", "qty", "coid", "post_only", "ioc", "reduce_only",
                 "resp_type", "market")

    def __init__(self, **kw):
        for k in self.__slots__:
            setattr(self, k, kw.get(k))


class Exchange:
    """Accounts by API key, per-symbol id counters, the latency queue, and the user-data fan-out (``emit`` goes to
    ``sink(account, event_dict, is_execution_report)``, set by the user-data module)."""

    def __init__(self, settings, market, instruments: dict, models: dict, faults):
        self.settings = settings
        self.spot = settings.market == SPOT
        self.market = market
        self.instruments = instruments
        self.models = models                           # symbol -> (ConstantLatency, maker fee, taker fee)
        self.faults = faults
        self.margin_asset = next(iter(instruments.values())).quote if instruments else "USDT"
        self.accounts: dict[str, Account] = {}
        self.queue = LatencyQueue()
        self._order_ids = {s: itertools.count(1) for s in instruments}
        self._trade_ids = {s: itertools.count(1) for s in instruments}
        self._ev = itertools.count(1)
        self._cancel_coids: dict = {}               # order id -> the cancel request's newClientOrderId (spot)
        self.sink = None

    # --- accounts ---
    def add_account(self, api_key: str, secret: str | None, name: str | None = None,
                    ed25519_public_pem: bytes | None = None) -> Account:
        """An account with an HMAC ``secret``, or (``secret`` None) an Ed25519 key given by its public half in PEM
        (Binance registers the public key; requests are signed with the private one). Raises ValueError for a
        key given twice or a PEM that is not an Ed25519 public key."""
        if api_key in self.accounts:
            raise ValueError("an API key was given twice")
        public = None
        if ed25519_public_pem is not None:
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
            from cryptography.hazmat.primitives.serialization import load_pem_public_key
            try:
                public = load_pem_public_key(ed25519_public_pem)
            except (ValueError, TypeError) as exc:
                raise ValueError(f"an Ed25519 account: not a readable PEM public key ({type(exc).__name__})") \
                    from None
            if not isinstance(public, Ed25519PublicKey):
                raise ValueError(f"an Ed25519 account: the key is a {type(public).__name__}, not Ed25519")
        elif not secret:
            raise ValueError("an account needs an HMAC secret or an Ed25519 public key")
        acc = Account(name or f"acct{len(self.accounts) + 1}", api_key, secret, self, self.settings.balances,
                      public)
        self.accounts[api_key] = acc
        return acc

    @staticmethod
    def generate_key() -> tuple[str, str]:
        """A random API key and secret (64 alphanumeric characters each, like Binance's HMAC keys)."""
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
        return ("".join(secrets.choice(alphabet) for _ in range(64)),
                "".join(secrets.choice(alphabet) for _ in range(64)))

    def next_order_id(self, symbol: str) -> int:
        return next(self._order_ids[symbol])

    def next_trade_id(self, symbol: str) -> int:
        return next(self._trade_ids[symbol])

    def latency(self, symbol: str) -> ConstantLatency:
        return self.models[symbol][0]

    # --- market trades ---
    def on_trade(self, sm, trade) -> None:
        ns = time.time_ns()
        for acc in list(self.accounts.values()):
            sa = acc.symbols.get(sm.symbol)
            if sa is not None and sa.by_key:
                sa.sim.on_trade(ns, trade.trade_id, trade.price, trade.qty, trade.side)

    # --- operations (run when they take effect: inside LatencyQueue callbacks) ---
    def place(self, acc: Account, req: OrderRequest) -> OrderRecord:
        """Carry out a new order now. Returns its record; raises BinanceError for a refusal."""
        sa = acc.sym(req.symbol)
        inst = sa.inst
        if any(r.coid == req.coid for r in sa.open_orders()):
            raise err(DUPLICATE_ORDER)
        book = sa.sm.book
        price = req.price
        if req.type == "MARKET":
            ref = book.best_ask_px() if req.side == BUY else book.best_bid_px()
            if ref <= 0:
                raise BinanceError(-2010, "Market is closed.")
            band = int(ref * MARKET_BAND) + 1
            price = min(ref + band, inst.max_price_ticks) if req.side == BUY else max(ref - band, 1)
        crosses = False
        if price is not None:
            if req.side == BUY:
                a = book.best_ask_px()
                crosses = a > 0 and price >= a
            else:
                b = book.best_bid_px()
                crosses = b > 0 and price <= b
        taker = req.ioc or req.type == "MARKET" or (crosses and not req.post_only)
        if req.post_only and crosses:
            raise err(WOULD_TAKE if self.spot else GTX_WOULD_TAKE)
        if req.ioc and not taker:
            taker = True
        px = inst.price_of(price)
        qty = inst.qty_of(req.qty)
        if self.spot:
            if req.side == BUY:
                need, asset = px * qty, inst.quote
            else:
                need, asset = qty, inst.base
            if acc.free(asset) < need:
                raise err(INSUFFICIENT)
        else:
            if req.reduce_only:
                pos = sa.position + sum(r.side * r.remaining for r in sa.open_orders() if r.reduce_only)
                if pos == 0 or (pos > 0) == (req.side > 0) or req.qty > abs(pos):
                    raise err(REDUCE_ONLY_REJECTED)
            else:
                need = px * qty / self.settings.leverage
                if acc.available() < need:
                    raise err(MARGIN_INSUFFICIENT)
        rec = OrderRecord(req.symbol, self.next_order_id(req.symbol), req.coid, req.side, req.type, req.tif, price,
                          req.qty, req.post_only, req.reduce_only, 0 if req.type == "MARKET" else price)
        if self.spot:
            rec.lock, rec.lock_px = need, (px if req.side == BUY else ZERO)
            acc.add(asset, free=-need, locked=need)
        sa.orders[rec.order_id] = rec
        sa.by_key[rec.key] = rec
        sa.sim.submit(time.time_ns(), rec.key, req.side, price, req.qty, post_only=not taker)
        sa.sim.advance(time.time_ns())
        if rec.status == "REJECTED":                  # the book moved between the check and the sim (cannot) or
            sa.orders.pop(rec.order_id, None)         # the sim refused it: no order record, like Binance
            sa.by_key.pop(rec.key, None)
            raise err(WOULD_TAKE if self.spot else GTX_WOULD_TAKE)
        sa.trim()
        return rec

    def cancel(self, acc: Account, symbol: str, order_id=None, coid=None, cancel_coid=None,
               unknown=CANCEL_UNKNOWN) -> OrderRecord:
        """Cancel one open order now; raises -2011 (``unknown``) if it is not open."""
        sa = acc.sym(symbol)
        rec = sa.find(order_id, coid)
        if rec is None or not rec.is_open or rec.key not in sa.by_key:
            raise err(unknown)
        return self._do_cancel(sa, rec, cancel_coid)

    def _do_cancel(self, sa: SymbolAccount, rec: OrderRecord, cancel_coid) -> OrderRecord:
        self._cancel_coids[rec.order_id] = cancel_coid
        sa.sim.cancel(time.time_ns(), rec.key)
        sa.sim.advance(time.time_ns())
        if rec.status != "CANCELED":
            raise err(CANCEL_UNKNOWN)
        return rec

    def modify(self, acc: Account, symbol: str, order_id, coid, side: int, price: int, qty: int) -> OrderRecord:
        """USDⓈ-M order.modify / PUT /fapi/v1/order now: same order id, new price and quantity (requeued). The order
        is canceled if ``qty`` is not above the executed quantity or if a GTX order's new price would take
        [SDK-UM-WSAPI-TRADE]."""
        sa = acc.sym(symbol)
        rec = sa.find(order_id, coid)
        if rec is None or not rec.is_open or rec.key not in sa.by_key:
            raise err(NO_SUCH_ORDER)
        if side != rec.side:
            raise BinanceError(-1102, "Mandatory parameter 'side' was not sent, was empty/null, or malformed.")
        book = sa.sm.book
        crosses = (price >= book.best_ask_px() > 0) if side == BUY else (0 < book.best_bid_px() >= price)
        if qty <= rec.executed or (rec.post_only and crosses):
            self._do_cancel(sa, rec, None)
            return rec
        rec.amending = True
        try:
            sa.sim.cancel(time.time_ns(), rec.key)
            sa.sim.advance(time.time_ns())
            rec.keys += 1
            rec.key = f"{rec.order_id}.{rec.keys}"
            rec.price = rec.shown_price = price
            rec.qty = qty
            sa.by_key[rec.key] = rec
            sa.sim.submit(time.time_ns(), rec.key, side, price, qty - rec.executed, post_only=True)
            sa.sim.advance(time.time_ns())
        finally:
            rec.amending = False
        if rec.status == "REJECTED":
            rec.status = "CANCELED"
            self.emit_order(acc, sa, rec, "CANCELED")
        else:
            rec.update_ms = now_ms()
            self.emit_order(acc, sa, rec, "AMENDMENT")
        return rec

    # --- user data ---
    def emit(self, acc: Account, event: dict, execution_report: bool = False) -> None:
        if self.sink is not None:
            self.sink(acc, event, execution_report)

    def emit_order(self, acc: Account, sa: SymbolAccount, rec: OrderRecord, x: str, fill: FillRecord | None = None):
        from mmcore.sim.emulator import formats
        if self.spot:
            cc = self._cancel_coids.pop(rec.order_id, None) if x == "CANCELED" else None
            ev = formats.execution_report(sa.inst, rec, x, fill, next(self._ev), cc)
        else:
            ev = formats.order_trade_update(sa.inst, rec, x, fill, sa, self.settings.leverage)
        self.emit(acc, ev, True)

    def emit_balance(self, acc: Account, *assets: str) -> None:
        from mmcore.sim.emulator import formats
        self.emit(acc, formats.outbound_account_position(acc, assets))

    def emit_account_update(self, acc: Account, sa: SymbolAccount) -> None:
        from mmcore.sim.emulator import formats
        self.emit(acc, formats.account_update(acc, sa))
