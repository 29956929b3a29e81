"""Trading requests shared by REST and the WebSocket API: parameters checked as Binance does, then carried out by
the :class:`~mmcore.sim.emulator.accounts.Exchange` when they take effect (latency), answered in Binance's shapes.

Parameters (spot [S-WSAPI] §3.3, USDⓈ-M [SDK-UM-WSAPI-TRADE] §3.5 of the research notes
/work/research/binance_wire.md): ``symbol``, ``side`` (BUY/SELL), ``type`` (spot LIMIT, LIMIT_MAKER, MARKET; USDⓈ-M
LIMIT, MARKET), ``timeInForce`` (GTC, IOC; USDⓈ-M also GTX = post-only; LIMIT_MAKER takes none), ``price``,
``quantity``, ``newClientOrderId`` (``^[.A-Z:/a-z0-9_-]{1,36}$``; generated when absent), ``newOrderRespType``
(spot ACK/RESULT/FULL, default FULL for LIMIT and MARKET and ACK otherwise; USDⓈ-M ACK/RESULT), ``reduceOnly``.
Filters [S-FILT][UM-ERR]: spot -1013 ``Filter failure: PRICE_FILTER`` / ``LOT_SIZE`` / ``NOTIONAL``; USDⓈ-M -4013 /
-4002 / -4014 (price), -4004 / -4005 / -4023 (quantity), -4164 (notional). FOK orders are refused (-1020, not
emulated).
"""
from __future__ import annotations

import re
import secrets
from decimal import Decimal, InvalidOperation

from mmcore.execution import BUY, SELL
from mmcore.sim.emulator import formats
from mmcore.sim.emulator.accounts import Account, Exchange, OrderRequest
from mmcore.sim.emulator.errors import (BAD_ORDER_TYPE, BAD_SIDE, BAD_SYMBOL, BAD_TIF, CANCEL_UNKNOWN, NO_SUCH_ORDER,
                                        UM_CLIENT_ID, UM_PRICE_HIGH, UM_PRICE_LOW, UM_PRICE_TICK, UM_QTY_HIGH,
                                        UM_QTY_LOW, UM_QTY_STEP, UNSUPPORTED, BinanceError, err, illegal, mandatory,
                                        spot_filter, um_min_notional)

COID_RE = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")
DEC_RE = re.compile(r"^([0-9]{1,20})(\.[0-9]{1,20})?$")
_COID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def new_coid() -> str:
    """A client order id as Binance generates one when none is sent (22 characters)."""
    return "".join(secrets.choice(_COID_CHARS) for _ in range(22))


class Params:
    """Typed access to request parameters (REST strings or WS API JSON values)."""

    def __init__(self, raw: dict):
        self.raw = raw

    def has(self, name: str) -> bool:
        v = self.raw.get(name)
        return v is not None and v != ""

    def str(self, name: str, required: bool = True, maxlen: int = 100):
        v = self.raw.get(name)
        if v is None or v == "":
            if required:
                raise mandatory(name)
            return None
        if isinstance(v, bool) or not isinstance(v, (str, int)):
            raise mandatory(name)
        v = str(v)
        if len(v) > maxlen:
            raise mandatory(name)
        return v

    def dec(self, name: str, required: bool = True):
        v = self.str(name, required, 60)
        if v is None:
            return None
        if not DEC_RE.match(v):
            raise illegal(name, "^([0-9]{1,20})(\\.[0-9]{1,20})?$")
        try:
            return Decimal(v)
        except InvalidOperation:
            raise illegal(name, "^([0-9]{1,20})(\\.[0-9]{1,20})?$") from None

    def int(self, name: str, required: bool = False, lo: int = 0, hi: int = (1 << 63) - 1):
        v = self.raw.get(name)
        if v is None or v == "":
            if required:
                raise mandatory(name)
            return None
        if isinstance(v, bool):
            raise mandatory(name)
        try:
            out = int(v)
        except (TypeError, ValueError):
            raise mandatory(name) from None
        if not lo <= out <= hi:
            raise mandatory(name)
        return out

    def bool(self, name: str) -> bool:
        v = self.raw.get(name)
        if v is None or v == "":
            return False
        if v is True or v is False:
            return v
        if isinstance(v, str) and v.lower() in ("true", "false"):
            return v.lower() == "true"
        raise mandatory(name)


class Trading:
    """Order operations of one emulator (``exchange``: the accounts; ``markets``: the Markets; ``faults``)."""

    def __init__(self, exchange: Exchange, markets, faults):
        self.ex = exchange
        self.spot = exchange.spot
        self.markets = markets
        self.faults = faults

    # --- helpers ---
    def symbol(self, p: Params, required: bool = True):
        s = p.str("symbol", required, 40)
        if s is None:
            return None
        if s not in self.markets.instruments:
            raise err(BAD_SYMBOL)
        return s

    def _qty_price(self, sym: str, price: Decimal | None, qty: Decimal, is_market: bool) -> tuple:
        """Filters; returns ``(price ticks or None, qty lots)``."""
        r = self.markets.rules[sym]
        inst = self.markets.instruments[sym]
        spot = self.spot
        if price is not None:
            if price <= 0 or (r.min_price and price < r.min_price):
                raise spot_filter("PRICE_FILTER") if spot else err(UM_PRICE_LOW)
            if (r.max_price and price > r.max_price) or price > inst.max_price:
                raise spot_filter("PRICE_FILTER") if spot else err(UM_PRICE_HIGH)
            if price % r.tick or price % inst.tick_size:
                raise spot_filter("PRICE_FILTER") if spot else err(UM_PRICE_TICK)
        if qty <= 0 or (r.min_qty and qty < r.min_qty):
            raise spot_filter("LOT_SIZE") if spot else err(UM_QTY_LOW)
        if (r.max_qty and qty > r.max_qty) or qty > inst.max_order_qty:
            raise spot_filter("LOT_SIZE") if spot else err(UM_QTY_HIGH)
        if qty % r.step or qty % inst.lot_size:
            raise spot_filter("LOT_SIZE") if spot else err(UM_QTY_STEP)
        ref = price
        if ref is None:
            sm = self.ex.market.symbols[sym]
            b, a = sm.book.best_bid_px(), sm.book.best_ask_px()
            ref = inst.price_of((a if a > 0 else b) if a > 0 or b > 0 else 0)
        if r.min_notional and ref * qty < r.min_notional and not (is_market and ref == 0):
            raise spot_filter("NOTIONAL") if spot else um_min_notional(format(r.min_notional.normalize(), "f"))
        return (inst.price_to_ticks(price) if price is not None else None), inst.qty_to_lots(qty)

    def parse_order(self, p: Params) -> OrderRequest:
        """A new order's parameters (cancelReplace uses the same names for its new order)."""
        sym = self.symbol(p)
        side_s = p.str("side")
        if side_s not in ("BUY", "SELL"):
            raise err(BAD_SIDE)
        side = BUY if side_s == "BUY" else SELL
        otype = p.str("type")
        tif = p.str("timeInForce", False)
        allowed = ("LIMIT", "LIMIT_MAKER", "MARKET") if self.spot else ("LIMIT", "MARKET")
        if otype not in allowed:
            raise err(BAD_ORDER_TYPE)
        post_only = ioc = False
        if otype == "LIMIT_MAKER":
            if tif is not None:
                raise BinanceError(-1106, "Parameter 'timeInForce' sent when not required.")
            post_only = True
        elif otype == "LIMIT":
            if tif is None:
                raise mandatory("timeInForce")
            if tif == "FOK":
                raise err(UNSUPPORTED)
            if tif not in (("GTC", "IOC") if self.spot else ("GTC", "IOC", "GTX")):
                raise err(BAD_TIF)
            post_only, ioc = tif == "GTX", tif == "IOC"
        else:
            if p.has("price"):
                raise BinanceError(-1106, "Parameter 'price' sent when not required.")
            ioc = True
        price = p.dec("price") if otype != "MARKET" else None
        qty = p.dec("quantity")
        ticks, lots = self._qty_price(sym, price, qty, otype == "MARKET")
        coid = p.str("newClientOrderId", False, 200)
        if coid is None:
            coid = new_coid()
        elif not COID_RE.match(coid):
            raise illegal("newClientOrderId", "^[\\.A-Z\\:/a-z0-9_-]{1,36}$") if self.spot else err(UM_CLIENT_ID)
        resp = p.str("newOrderRespType", False)
        if resp is None:
            resp = ("FULL" if otype in ("LIMIT", "MARKET") else "ACK") if self.spot else "ACK"
        if resp not in (("ACK", "RESULT", "FULL") if self.spot else ("ACK", "RESULT")):
            raise BinanceError(-1116 if self.spot else -1102, "Invalid newOrderRespType.")
        reduce_only = False if self.spot else p.bool("reduceOnly")
        return OrderRequest(symbol=sym, side=side, type=otype, tif=tif, price=ticks, qty=lots, coid=coid,
                            post_only=post_only, ioc=ioc, reduce_only=reduce_only, resp_type=resp)

    def _order_answer(self, req: OrderRequest, rec) -> dict:
        inst = self.markets.instruments[req.symbol]
        if self.spot:
            return formats.spot_new_order(inst, rec, req.resp_type)
        return formats.um_order(inst, rec)

    def check_reject(self, acc: Account) -> None:
        f = self.faults.take_reject(acc.api_key)
        if f is not None:
            raise BinanceError(f.params["code"], f.params["msg"], 400)

    # --- operations ---
    async def place(self, acc: Account, p: Params) -> dict:
        coid = p.raw.get("newClientOrderId")
        if isinstance(coid, str) and coid:
            acc.coids[coid] += 1
        self.check_reject(acc)
        req = self.parse_order(p)
        rec = await self.ex.queue.schedule(self.ex.latency(req.symbol).entry_ns / 1e9,
                                           lambda: self.ex.place(acc, req))
        return self._order_answer(req, rec)

    @staticmethod
    def _target(p: Params):
        """``(orderId, origClientOrderId)`` of the order a request names (one of them at least, -1102)."""
        oid = p.int("orderId", False)
        coid = p.str("origClientOrderId", False, 200)
        if oid is None and coid is None:
            raise BinanceError(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
        return oid, coid

    async def cancel(self, acc: Account, p: Params) -> dict:
        sym = self.symbol(p)
        oid, coid = self._target(p)
        cancel_coid = p.str("newClientOrderId", False, 200) or new_coid()
        rec = await self.ex.queue.schedule(self.ex.latency(sym).cancel_ns / 1e9,
                                           lambda: self.ex.cancel(acc, sym, oid, coid, cancel_coid))
        inst = self.markets.instruments[sym]
        return formats.spot_cancel(inst, rec, cancel_coid) if self.spot else formats.um_order(inst, rec)

    def status(self, acc: Account, p: Params) -> dict:
        sym = self.symbol(p)
        oid, coid = self._target(p)
        rec = acc.sym(sym).find(oid, coid)
        if rec is None:
            raise err(NO_SUCH_ORDER)
        inst = self.markets.instruments[sym]
        return formats.spot_order(inst, rec) if self.spot else formats.um_order(inst, rec)

    def open_orders(self, acc: Account, p: Params) -> list:
        sym = self.symbol(p, required=False)
        out = []
        for s in ([sym] if sym else list(self.markets.instruments)):
            inst = self.markets.instruments[s]
            sa = acc.symbols.get(s)
            if sa is None:
                continue
            for rec in sa.open_orders():
                out.append(formats.spot_order(inst, rec) if self.spot else formats.um_order(inst, rec))
        return out

    async def cancel_all(self, acc: Account, p: Params):
        sym = self.symbol(p)
        inst = self.markets.instruments[sym]

        def run():
            sa = acc.sym(sym)
            done = []
            for rec in sa.open_orders():
                if rec.key in sa.by_key:
                    cc = new_coid()
                    try:
                        self.ex._do_cancel(sa, rec, cc)
                    except BinanceError:
                        continue
                    done.append((rec, cc))
            return done
        done = await self.ex.queue.schedule(self.ex.latency(sym).cancel_ns / 1e9, run)
        if self.spot:
            if not done:
                raise err(CANCEL_UNKNOWN)
            return [formats.spot_cancel(inst, rec, cc) for rec, cc in done]
        return {"code": 200, "msg": "The operation of cancel all open order is done."}

    async def modify(self, acc: Account, p: Params) -> dict:
        """USDⓈ-M order.modify / PUT /fapi/v1/order."""
        sym = self.symbol(p)
        oid, coid = self._target(p)
        side_s = p.str("side")
        if side_s not in ("BUY", "SELL"):
            raise err(BAD_SIDE)
        price, qty = p.dec("price"), p.dec("quantity")
        ticks, lots = self._qty_price(sym, price, qty, False)
        rec = await self.ex.queue.schedule(
            self.ex.latency(sym).entry_ns / 1e9,
            lambda: self.ex.modify(acc, sym, oid, coid, BUY if side_s == "BUY" else SELL, ticks, lots))
        return formats.um_order(self.markets.instruments[sym], rec)

    async def cancel_replace(self, acc: Account, p: Params):
        """Spot order.cancelReplace / POST /api/v3/order/cancelReplace [S-WSAPI]: the cancel, then the new order
        (not atomic); answers 400 -2022 (cancel failed), 409 -2021 (new order failed) with ``data``."""
        mode = p.str("cancelReplaceMode")
        if mode not in ("STOP_ON_FAILURE", "ALLOW_FAILURE"):
            raise BinanceError(-1102, "Mandatory parameter 'cancelReplaceMode' was not sent, was empty/null, or "
                                      "malformed.")
        sym = self.symbol(p)
        oid = p.int("cancelOrderId", False)
        ocoid = p.str("cancelOrigClientOrderId", False, 200)
        if oid is None and ocoid is None:
            raise BinanceError(-1102, "Param 'cancelOrigClientOrderId' or 'cancelOrderId' must be sent, but both "
                                      "were empty/null!")
        coid = p.raw.get("newClientOrderId")
        if isinstance(coid, str) and coid:
            acc.coids[coid] += 1
        self.check_reject(acc)
        req = self.parse_order(p)
        cancel_coid = p.str("cancelNewClientOrderId", False, 200) or new_coid()
        inst = self.markets.instruments[sym]

        def run():
            cancel_resp = new_resp = None
            try:
                rec = self.ex.cancel(acc, sym, oid, ocoid, cancel_coid)
                cancel_resp = formats.spot_cancel(inst, rec, cancel_coid)
            except BinanceError as exc:
                cancel_resp = exc.body()
                if mode == "STOP_ON_FAILURE":
                    raise BinanceError(-2022, "Order cancel-replace failed.", 400, data={
                        "cancelResult": "FAILURE", "newOrderResult": "NOT_ATTEMPTED", "cancelResponse": cancel_resp,
                        "newOrderResponse": None})
            ok_cancel = "code" not in cancel_resp
            try:
                rec = self.ex.place(acc, req)
                new_resp = self._order_answer(req, rec)
            except BinanceError as exc:
                data = {"cancelResult": "SUCCESS" if ok_cancel else "FAILURE", "newOrderResult": "FAILURE",
                        "cancelResponse": cancel_resp, "newOrderResponse": exc.body()}
                if ok_cancel:
                    raise BinanceError(-2021, "Order cancel-replace partially failed.", 409, data=data)
                raise BinanceError(-2022, "Order cancel-replace failed.", 400, data=data)
            if not ok_cancel:
                raise BinanceError(-2021, "Order cancel-replace partially succeeded.", 409, data={
                    "cancelResult": "FAILURE", "newOrderResult": "SUCCESS", "cancelResponse": cancel_resp,
                    "newOrderResponse": new_resp})
            return {"cancelResult": "SUCCESS", "newOrderResult": "SUCCESS", "cancelResponse": cancel_resp,
                    "newOrderResponse": new_resp}
        return await self.ex.queue.schedule(self.ex.latency(sym).entry_ns / 1e9, run)

    def trades(self, acc: Account, p: Params) -> list:
        sym = self.symbol(p)
        oid = p.int("orderId")
        start, end, from_id = p.int("startTime"), p.int("endTime"), p.int("fromId")
        limit = p.int("limit", lo=1, hi=1000) or 500
        inst = self.markets.instruments[sym]
        sa = acc.symbols.get(sym)
        out = []
        for f in (sa.fills if sa else ()):
            if oid is not None and f.order_id != oid:
                continue
            if from_id is not None and f.trade_id < from_id:
                continue
            if start is not None and f.time_ms < start:
                continue
            if end is not None and f.time_ms > end:
                continue
            out.append(f)
        out = out[:limit] if from_id is not None or start is not None else out[-limit:]
        return [formats.spot_trade(inst, f) if self.spot else formats.um_trade(inst, f) for f in out]

    def account(self, acc: Account, p: Params, v2: bool = False) -> dict:
        if self.spot:
            sym0 = next(iter(self.markets.instruments))
            _, fees, taker = self.ex.models[sym0]
            return formats.spot_account(acc, fees.maker_bps, taker.maker_bps, p.bool("omitZeroBalances"))
        return formats.um_account(acc, self.ex.settings.leverage, v2)
