"""Unmodified ccxt (async ``binance`` / ``binanceusdm``, only ``urls['api']`` replaced) trades against the emulator:
load markets, book, post-only order, open orders, cancel, a taker fill, trades, balance; post-only crossing refused.
Recordings: the first lines of the real 2024-08-08 files (data/README.md)."""
import asyncio
from decimal import Decimal

import pytest

from emukit import KEY, SPOT_BTC, SPOT_ETH, USDM_BTC, USDM_ETH, ccxt_client, head, running, until

ccxt = pytest.importorskip("ccxt.async_support")
HEAD = 2000


async def _flow(market, data, tmp_path, sym, qty):
    async with running(data, tmp_path, speed=0) as (emu, port):
        ex = ccxt_client(market, port)
        try:
            await until(lambda: emu.market.done, 20, "the end of the recording")
            markets = await ex.load_markets()
            assert sym in markets
            book = await ex.fetch_order_book(sym, limit=5)
            bid, ask = book["bids"][0][0], book["asks"][0][0]
            assert bid < ask and len(book["bids"]) == 5
            emu_book = emu.market.symbols[markets[sym]["id"]].book
            inst = emu.markets.instruments[markets[sym]["id"]]
            assert Decimal(str(bid)) == inst.price_of(emu_book.best_bid_px())
            price = round(bid * 0.99, 1)
            o = await ex.create_order(sym, "limit", "buy", qty, price, {"postOnly": True, "clientOrderId": "t-po-1"})
            assert o["status"] == "open" and o["clientOrderId"] == "t-po-1"
            opens = await ex.fetch_open_orders(sym)
            assert [x["id"] for x in opens] == [o["id"]]
            c = await ex.cancel_order(o["id"], sym)
            assert c["status"] == "canceled"
            assert await ex.fetch_open_orders(sym) == []
            with pytest.raises((ccxt.OrderImmediatelyFillable, ccxt.InvalidOrder)):
                await ex.create_order(sym, "limit", "buy", qty, ask, {"postOnly": True})
            # a taker order fills against the book (IOC at the ask): a trade with our own trade id
            t = await ex.create_order(sym, "limit", "buy", qty, ask, {"timeInForce": "IOC", "clientOrderId": "t-ioc"})
            assert t["status"] == "closed" and t["filled"] == qty
            trades = await ex.fetch_my_trades(sym)
            assert len(trades) == 1 and trades[0]["order"] == t["id"] and trades[0]["amount"] == qty
            assert trades[0]["price"] == ask and trades[0]["takerOrMaker"] == "taker"
            bal = await ex.fetch_balance()
            state = emu.account_state(emu.exchange.accounts[KEY])
            return bal, state, markets[sym]
        finally:
            await ex.close()


def test_ccxt_usdm_markets_book_post_only_open_cancel_trades_balance(tmp_path):
    data = [head(USDM_BTC, tmp_path / "usdm_btc.gz", HEAD), head(USDM_ETH, tmp_path / "usdm_eth.gz", HEAD)]
    bal, state, m = asyncio.run(_flow("binance_usdm", data, tmp_path, "BTC/USDT:USDT", 0.002))
    assert m["swap"] and m["settle"] == "USDT"
    assert bal["USDT"]["total"] is not None and bal["USDT"]["total"] < 1_000_000    # taker fee paid
    assert state["symbols"]["BTCUSDT"]["position"] == "0.002"
    coids = state["coids_received"]            # ours, plus the id ccxt generated for the refused order
    assert coids["t-po-1"] == coids["t-ioc"] == 1 and len(coids) == 3 and state["duplicate_coids"] == []


def test_ccxt_spot_markets_book_post_only_open_cancel_trades_balance(tmp_path):
    data = [head(SPOT_BTC, tmp_path / "spot_btc.gz", HEAD), head(SPOT_ETH, tmp_path / "spot_eth.gz", HEAD)]
    bal, state, m = asyncio.run(_flow("binance_spot", data, tmp_path, "BTC/USDT", 0.001))
    assert m["spot"]
    # commission in the received asset (BTC on a buy), as Binance does
    assert 0 < bal["BTC"]["total"] - 10 < 0.001
    fills = state["symbols"]["BTCUSDT"]["fills"]
    assert fills[0]["commissionAsset"] == "BTC"


