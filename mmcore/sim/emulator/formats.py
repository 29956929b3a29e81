"""Binance's JSON shapes for orders, trades, accounts and user-data events (field sets and JSON types from the
research notes /work/research/binance_wire.md: spot §3.3 (order.place RESULT/FULL, order.status, order.cancel)
[S-WSAPI], §4.1 (executionReport, outboundAccountPosition) [S-UDS-TN]; USDⓈ-M §3.5 (order result)
[SDK-UM-M:new_order_response_result.py], §4.3 (ORDER_TRADE_UPDATE, ACCOUNT_UPDATE) [SDK-UM-M:order_trade_update_o.py,
account_update_a.py], §5.1 (userTrades, account v3 assets) [SDK-UM-M:account_trade_list_response_inner.py,
account_information_v3_response_assets_inner.py]). Prices and quantities are strings, ids and times numbers.
"""
from __future__ import annotations

from decimal import Decimal

from mmcore.execution import BUY
from mmcore.sim.emulator.accounts import ZERO, Account, FillRecord, OrderRecord, SymbolAccount, d8, now_ms

_SIDE = {1: "BUY", -1: "SELL"}


def _p(inst, ticks: int) -> str:
    return inst.format_price(ticks)


def _q(inst, lots: int) -> str:
    return inst.format_qty(lots)


def _avg(inst, rec: OrderRecord) -> str:
    if not rec.executed:
        return "0"
    return str((rec.cum_quote / inst.qty_of(rec.executed)).quantize(inst.tick_size))


# --- spot ---
def spot_order(inst, rec: OrderRecord) -> dict:
    """``order.status`` / ``GET /api/v3/order`` / ``openOrders`` item."""
    return {"symbol": rec.symbol, "orderId": rec.order_id, "orderListId": -1, "clientOrderId": rec.coid,
            "price": _p(inst, rec.shown_price), "origQty": _q(inst, rec.qty), "executedQty": _q(inst, rec.executed),
            "cummulativeQuoteQty": d8(rec.cum_quote), "status": rec.status, "timeInForce": rec.tif or "GTC",
            "type": rec.type, "side": _SIDE[rec.side], "stopPrice": "0.00000000", "icebergQty": "0.00000000",
            "time": rec.time_ms, "updateTime": rec.update_ms, "isWorking": True, "workingTime": rec.working_ms,
            "origQuoteOrderQty": "0.00000000", "selfTradePreventionMode": "EXPIRE_MAKER"}


def spot_fill(inst, f: FillRecord) -> dict:
    return {"price": _p(inst, f.price), "qty": _q(inst, f.qty), "commission": d8(f.commission),
            "commissionAsset": f.commission_asset, "tradeId": f.trade_id}


def spot_new_order(inst, rec: OrderRecord, resp_type: str) -> dict:
    """``order.place`` / ``POST /api/v3/order`` answer (ACK, RESULT or FULL)."""
    out = {"symbol": rec.symbol, "orderId": rec.order_id, "orderListId": -1, "clientOrderId": rec.coid,
           "transactTime": rec.time_ms}
    if resp_type == "ACK":
        return out
    out.update({"price": _p(inst, rec.shown_price), "origQty": _q(inst, rec.qty),
                "executedQty": _q(inst, rec.executed), "origQuoteOrderQty": "0.00000000",
                "cummulativeQuoteQty": d8(rec.cum_quote), "status": rec.status, "timeInForce": rec.tif or "GTC",
                "type": rec.type, "side": _SIDE[rec.side], "workingTime": rec.working_ms,
                "selfTradePreventionMode": "EXPIRE_MAKER"})
    if resp_type == "FULL":
        out["fills"] = [spot_fill(inst, f) for f in rec.fills]
    return out


def spot_cancel(inst, rec: OrderRecord, cancel_coid: str) -> dict:
    """``order.cancel`` / ``DELETE /api/v3/order`` answer: ``origClientOrderId`` = the order's id,
    ``clientOrderId`` = the cancel's ``newClientOrderId``."""
    return {"symbol": rec.symbol, "origClientOrderId": rec.coid, "orderId": rec.order_id, "orderListId": -1,
            "clientOrderId": cancel_coid, "transactTime": rec.update_ms, "price": _p(inst, rec.shown_price),
            "origQty": _q(inst, rec.qty), "executedQty": _q(inst, rec.executed), "origQuoteOrderQty": "0.00000000",
            "cummulativeQuoteQty": d8(rec.cum_quote), "status": rec.status, "timeInForce": rec.tif or "GTC",
            "type": rec.type, "side": _SIDE[rec.side], "selfTradePreventionMode": "EXPIRE_MAKER"}


def spot_trade(inst, f: FillRecord) -> dict:
    """``myTrades`` item."""
    return {"symbol": inst.symbol, "id": f.trade_id, "orderId": f.order_id, "orderListId": -1,
            "price": _p(inst, f.price), "qty": _q(inst, f.qty), "quoteQty": d8(f.quote),
            "commission": d8(f.commission), "commissionAsset": f.commission_asset, "time": f.time_ms,
            "isBuyer": f.side == BUY, "isMaker": f.maker, "isBestMatch": True}


def spot_account(acc: Account, maker_bps: Decimal, taker_bps: Decimal, omit_zero: bool = False) -> dict:
    bal = [{"asset": a, "free": d8(v[0]), "locked": d8(v[1])} for a, v in sorted(acc.balances.items())
           if not (omit_zero and v[0] == 0 and v[1] == 0)]
    return {"makerCommission": int(maker_bps), "takerCommission": int(taker_bps), "buyerCommission": 0,
            "sellerCommission": 0,
            "commissionRates": {"maker": d8(maker_bps / 10000), "taker": d8(taker_bps / 10000),
                                "buyer": "0.00000000", "seller": "0.00000000"},
            "canTrade": True, "canWithdraw": True, "canDeposit": True, "brokered": False,
            "requireSelfTradePrevention": False, "preventSor": False, "updateTime": acc.update_ms,
            "accountType": "SPOT", "balances": bal, "permissions": ["SPOT"], "uid": abs(hash(acc.name)) % 10**9}


def execution_report(inst, rec: OrderRecord, x: str, fill: FillRecord | None, seq: int,
                     cancel_coid: str | None = None) -> dict:
    """``executionReport`` with every field of [S-UDS-TN] (conditional fields omitted). On CANCELED, ``c`` is the
    cancel request's client id and ``C`` the order's own [S-UDS-TN]."""
    t = now_ms()
    canceled = x == "CANCELED"
    return {"e": "executionReport", "E": t, "s": rec.symbol,
            "c": (cancel_coid or rec.coid) if canceled else rec.coid, "S": _SIDE[rec.side], "o": rec.type,
            "f": rec.tif or "GTC", "q": _q(inst, rec.qty), "p": _p(inst, rec.shown_price), "P": "0.00000000",
            "F": "0.00000000", "g": -1, "C": rec.coid if canceled else "", "x": x, "X": rec.status, "r": "NONE",
            "i": rec.order_id, "l": _q(inst, fill.qty) if fill else _q(inst, 0),
            "z": _q(inst, rec.executed), "L": _p(inst, fill.price) if fill else _p(inst, 0),
            "n": d8(fill.commission) if fill else "0", "N": fill.commission_asset if fill else None, "T": t,
            "t": fill.trade_id if fill else -1, "I": seq, "w": rec.is_open, "m": fill.maker if fill else False,
            "M": False, "O": rec.time_ms, "Z": d8(rec.cum_quote), "Y": d8(fill.quote) if fill else "0.00000000",
            "Q": "0.00000000", "W": rec.working_ms, "V": "EXPIRE_MAKER"}


def outbound_account_position(acc: Account, assets) -> dict:
    t = now_ms()
    return {"e": "outboundAccountPosition", "E": t, "u": acc.update_ms,
            "B": [{"a": a, "f": d8(acc.balances.get(a, [ZERO, ZERO])[0]), "l": d8(acc.balances.get(a, [ZERO, ZERO])[1])}
                  for a in dict.fromkeys(assets)]}


# --- USDⓈ-M ---
def um_order(inst, rec: OrderRecord) -> dict:
    """``order.place`` / ``order.status`` / ``GET /fapi/v1/order`` / ``openOrders`` item."""
    return {"orderId": rec.order_id, "symbol": rec.symbol, "status": rec.status, "clientOrderId": rec.coid,
            "price": _p(inst, rec.shown_price), "avgPrice": _avg(inst, rec), "origQty": _q(inst, rec.qty),
            "executedQty": _q(inst, rec.executed), "cumQty": _q(inst, rec.executed), "cumQuote": d8(rec.cum_quote),
            "timeInForce": rec.tif or "GTC", "type": rec.type, "reduceOnly": bool(rec.reduce_only),
            "closePosition": False, "side": _SIDE[rec.side], "positionSide": "BOTH", "stopPrice": "0",
            "workingType": "CONTRACT_PRICE", "priceProtect": False, "origType": rec.type, "priceMatch": "NONE",
            "selfTradePreventionMode": "EXPIRE_MAKER", "goodTillDate": 0, "time": rec.time_ms,
            "updateTime": rec.update_ms}


def um_trade(inst, f: FillRecord) -> dict:
    """``userTrades`` item."""
    return {"buyer": f.side == BUY, "commission": d8(f.commission), "commissionAsset": f.commission_asset,
            "id": f.trade_id, "maker": f.maker, "orderId": f.order_id, "price": _p(inst, f.price),
            "qty": _q(inst, f.qty), "quoteQty": d8(f.quote), "realizedPnl": d8(f.realized),
            "side": "BUY" if f.side == BUY else "SELL", "positionSide": "BOTH", "symbol": inst.symbol,
            "time": f.time_ms}


def order_trade_update(inst, rec: OrderRecord, x: str, fill: FillRecord | None, sa: SymbolAccount,
                       leverage: int) -> dict:
    t = now_ms()
    bids = sum((inst.price_of(r.price) * inst.qty_of(r.remaining) for r in sa.open_orders() if r.side == BUY), ZERO)
    asks = sum((inst.price_of(r.price) * inst.qty_of(r.remaining) for r in sa.open_orders() if r.side != BUY), ZERO)
    o = {"s": rec.symbol, "c": rec.coid, "S": _SIDE[rec.side], "o": rec.type, "f": rec.tif or "GTC",
         "q": _q(inst, rec.qty), "p": _p(inst, rec.shown_price), "ap": _avg(inst, rec), "sp": "0", "x": x,
         "X": rec.status, "i": rec.order_id, "l": _q(inst, fill.qty) if fill else "0", "z": _q(inst, rec.executed),
         "L": _p(inst, fill.price) if fill else "0"}
    if fill is not None:
        o["N"] = fill.commission_asset
        o["n"] = d8(fill.commission)
    o.update({"T": t, "t": fill.trade_id if fill else 0, "b": d8(bids), "a": d8(asks),
              "m": fill.maker if fill else False, "R": bool(rec.reduce_only), "wt": "CONTRACT_PRICE",
              "ot": rec.type, "ps": "BOTH", "cp": False, "rp": d8(fill.realized) if fill else "0", "pP": False,
              "si": 0, "ss": 0, "V": "EXPIRE_MAKER", "pm": "NONE", "gtd": 0})
    return {"e": "ORDER_TRADE_UPDATE", "E": t, "T": t, "o": o}


def um_position(inst, sa: SymbolAccount) -> dict:
    return {"s": inst.symbol, "pa": _q(inst, sa.position), "ep": d8(sa.entry), "bep": d8(sa.entry),
            "cr": d8(sa.realized), "up": d8(sa.unrealized()), "mt": "cross", "iw": "0", "ps": "BOTH"}


def account_update(acc: Account, sa: SymbolAccount) -> dict:
    t = now_ms()
    return {"e": "ACCOUNT_UPDATE", "E": t, "T": t,
            "a": {"m": "ORDER", "B": [{"a": acc.margin_asset, "wb": d8(acc.wallet), "cw": d8(acc.wallet),
                                       "bc": "0"}],
                  "P": [um_position(sa.inst, sa)]}}


def um_account(acc: Account, leverage: int, v2: bool) -> dict:
    """``GET /fapi/v2/account`` / ``/fapi/v3/account`` / ``account.status`` (assets with a non-zero
    ``updateTime``: ccxt skips assets whose updateTime is 0, research notes §7.5)."""
    unreal = sum((sa.unrealized() for sa in acc.symbols.values()), ZERO)
    pos_im = sum((sa.position_margin(leverage) for sa in acc.symbols.values()), ZERO)
    ord_im = sum((sa.order_margin(leverage) for sa in acc.symbols.values()), ZERO)
    maint = pos_im / 10
    avail = acc.available()
    margin_bal = acc.wallet + unreal
    asset = {"asset": acc.margin_asset, "walletBalance": d8(acc.wallet), "unrealizedProfit": d8(unreal),
             "marginBalance": d8(margin_bal), "maintMargin": d8(maint), "initialMargin": d8(pos_im + ord_im),
             "positionInitialMargin": d8(pos_im), "openOrderInitialMargin": d8(ord_im),
             "crossWalletBalance": d8(acc.wallet), "crossUnPnl": d8(unreal), "availableBalance": d8(avail),
             "maxWithdrawAmount": d8(max(avail, ZERO)), "marginAvailable": True, "updateTime": acc.update_ms}
    positions = []
    for sa in acc.symbols.values():
        inst = sa.inst
        p = {"symbol": inst.symbol, "positionSide": "BOTH", "positionAmt": _q(inst, sa.position),
             "unrealizedProfit": d8(sa.unrealized()), "isolatedMargin": "0", "notional": d8(
                 inst.qty_of(sa.position) * sa.mark()), "isolatedWallet": "0",
             "initialMargin": d8(sa.position_margin(leverage) + sa.order_margin(leverage)),
             "maintMargin": d8(sa.position_margin(leverage) / 10), "updateTime": sa.update_ms or acc.update_ms}
        if v2:
            p.update({"entryPrice": d8(sa.entry), "breakEvenPrice": d8(sa.entry), "leverage": str(leverage),
                      "isolated": False, "positionInitialMargin": d8(sa.position_margin(leverage)),
                      "openOrderInitialMargin": d8(sa.order_margin(leverage)), "maxNotional": "1000000000"})
        positions.append(p)
    out = {"totalInitialMargin": d8(pos_im + ord_im), "totalMaintMargin": d8(maint),
           "totalWalletBalance": d8(acc.wallet), "totalUnrealizedProfit": d8(unreal),
           "totalMarginBalance": d8(margin_bal), "totalPositionInitialMargin": d8(pos_im),
           "totalOpenOrderInitialMargin": d8(ord_im), "totalCrossWalletBalance": d8(acc.wallet),
           "totalCrossUnPnl": d8(unreal), "availableBalance": d8(avail), "maxWithdrawAmount": d8(max(avail, ZERO)),
           "assets": [asset], "positions": positions}
    if v2:
        out = {"feeTier": 0, "feeBurn": False, "canTrade": True, "canDeposit": True, "canWithdraw": True,
               "updateTime": 0, "multiAssetsMargin": False, "tradeGroupId": -1, **out}
    return out
