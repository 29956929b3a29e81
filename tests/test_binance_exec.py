"""Binance execution client against the in-process emulator (spot and USDⓈ-M): post-only orders accepted and
rejected, cancels, fills from the recorded market with their ticks / lots / fee, queries equal to the emulator's
state; signing, credentials and the error map."""
import asyncio
import base64
import pickle
from decimal import Decimal

import pytest

from binexkit import harness, place_resting, run, through_side
from emukit import KEY, until
from mmcore.sim.emulator.accounts import d8
from mmcore.execution import (POST_ONLY_REJECT, OrderAccepted, OrderAmended, OrderAmendRejected, OrderCanceled,
                              OrderCancelRejected, OrderFilled, OrderRejected)
from mmcore.venues.binance.credentials import CredentialsError, load_credentials, parse_env_file
from mmcore.venues.binance.errors import Action, classify_error
from mmcore.venues.binance.signing import Ed25519Signer, HmacSigner, sign_ws_params, ws_payload
from mmcore.venues.binance.ws_api import map_endpoint, ws_api_url

pytest.importorskip("picows")
VENUES = ["binance_spot", "binance_usdm"]


# --- signing, credentials, errors (no network) ---
def test_hmac_signature_is_the_binance_doc_example_and_ed25519_verifies():
    # binance/binance-spot-api-docs web-socket-api.md, "SIGNED request example (HMAC)"
    params = {"symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.01000000",
              "price": "52000.00", "newOrderRespType": "ACK", "recvWindow": 100, "timestamp": 1645423376532,
              "apiKey": "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"}
    s = HmacSigner("NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j")
    assert sign_ws_params(s, params)["signature"] == "cc15477742bd704c29492d96c7ead9414dfd8e0ec4a00f947bb5bb454ddbd08a"
    assert s.sign(b"x") == s.sign(b"x") != s.sign(b"y")                      # the copied key is not consumed
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    e = Ed25519Signer(pem)
    payload = ws_payload(params)
    key.public_key().verify(base64.b64decode(e.sign(payload)), payload)      # raises if wrong
    assert "key hidden" in repr(e)
    with pytest.raises(ValueError):
        Ed25519Signer(b"-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")


def test_credentials_from_env_and_file_never_show_the_secret(tmp_path):
    fake = "fakeSecretXYZ0123456789fakeSecretXYZ0123456789"
    env_file = tmp_path / ".env"
    env_file.write_text(f"# comment\nexport BINANCE_API_KEY='k-from-file'\nBINANCE_API_SECRET=\"{fake}\"\nbad line\n")
    assert parse_env_file(env_file)["BINANCE_API_SECRET"] == fake
    c = load_credentials({}, env_file)
    assert c.api_key == "k-from-file" and c.kind == "hmac"
    assert fake not in repr(c) and fake not in str(c) and fake not in repr(c.signer)
    with pytest.raises(TypeError):
        pickle.dumps(c)
    c2 = load_credentials({"BINANCE_API_KEY": "envkey", "BINANCE_API_SECRET": "s2"}, env_file)
    assert c2.api_key == "envkey"                                             # the environment wins
    with pytest.raises(CredentialsError, match="BINANCE_API_KEY") as ei:
        load_credentials({}, tmp_path / "missing.env")
    assert "BINANCE_API_SECRET" in str(ei.value) and "BINANCE_ED25519_KEY_FILE" in str(ei.value)
    with pytest.raises(CredentialsError, match="BINANCE_API_SECRET or BINANCE_ED25519_KEY_FILE"):
        load_credentials({"BINANCE_API_KEY": "k"}, None)


@pytest.mark.parametrize("status,code,msg,order,action,rc", [
    (400, -2010, "Order would immediately match and take.", True, Action.POST_ONLY_REJECT, POST_ONLY_REJECT),
    (400, -5022, "Due to the order could not be executed as maker, the Post Only order will be rejected.", True,
     Action.POST_ONLY_REJECT, POST_ONLY_REJECT),
    (400, -2010, "Account has insufficient balance for requested action.", True, Action.REJECT, "BINANCE:-2010"),
    (400, -2011, "Unknown order sent.", True, Action.UNKNOWN_ORDER, "BINANCE:-2011"),
    (400, -2013, "Order does not exist.", False, Action.UNKNOWN_ORDER, "BINANCE:-2013"),
    (400, -1021, "Timestamp for this request is outside of the recvWindow.", True, Action.RESYNC_CLOCK, "TIMESTAMP"),
    (400, -1022, "Signature for this request is not valid.", True, Action.FATAL, "AUTH"),
    (401, -2014, "API-key format invalid.", False, Action.FATAL, "AUTH"),
    (401, -2015, "Invalid API-key, IP, or permissions for action.", True, Action.FATAL, "AUTH"),
    (429, -1003, "Too many requests", True, Action.RATE_LIMITED, "RATE_LIMITED"),
    (418, -1003, "Way too much request weight used; IP banned until 1.", True, Action.BANNED, "BANNED"),
    (503, -1001, "Internal error", True, Action.UNKNOWN_STATUS, "UNKNOWN_STATUS"),
    (500, None, None, False, Action.TRANSIENT, "HTTP:500"),
    (400, -1013, "Filter failure: LOT_SIZE", True, Action.REJECT, "FILTER:-1013"),
    (400, -4164, "Order's notional must be no smaller than 100", True, Action.REJECT, "FILTER:-4164"),
    (400, -4014, "Price not increased by tick size.", True, Action.REJECT, "FILTER:-4014"),
    (400, -4023, "Qty not increased by step size.", True, Action.REJECT, "FILTER:-4023"),
    (200, None, None, True, Action.OK, ""),
])
def test_one_error_map(status, code, msg, order, action, rc):
    out = classify_error(status, code, msg, order)
    assert (out.action, out.report_code) == (action, rc)


def test_urls_and_endpoint_override():
    assert ws_api_url("binance_spot") == "wss://ws-api.binance.com:443/ws-api/v3"
    assert ws_api_url("binance_usdm") == "wss://ws-fapi.binance.com/ws-fapi/v1"
    assert ws_api_url("binance_spot", True) == "wss://ws-api.testnet.binance.vision/ws-api/v3"
    assert ws_api_url("binance_usdm", True) == "wss://testnet.binancefuture.com/ws-fapi/v1"
    assert ws_api_url("binance_usdm", endpoint="http://127.0.0.1:81") == "ws://127.0.0.1:81/ws-fapi/v1"
    assert map_endpoint("wss://fstream.binance.com/private/ws", "http://127.0.0.1:9") == "ws://127.0.0.1:9/private/ws"
    with pytest.raises(ValueError):
        map_endpoint("wss://x/y", "ftp://h")


# --- against the emulator ---
@pytest.mark.parametrize("venue", VENUES)
def test_post_only_accepted_crossing_rejected_cancel_and_queries_match_the_emulator(venue, tmp_path):
    async def scenario():
        async with harness(venue, tmp_path, 4000) as h:
            bid, ask = h.touch()
            c = h.client
            c.submit(0, "po-rest", 1, bid - 5, h.lots())
            c.submit(0, "po-cross", 1, ask + 2, h.lots())
            c.submit(0, "po-ask", -1, ask + 7, h.lots())
            await h.wait("po-rest", OrderAccepted)
            await h.wait("po-ask", OrderAccepted)
            rej = await h.wait("po-cross", OrderRejected)
            opened = sorted(await c.open_orders(), key=lambda o: o.client_order_id)
            one = await c.order("po-rest")
            none = await c.order("never-sent")
            state = h.state()
            c.cancel(0, "po-rest")
            canceled = await h.wait("po-rest", OrderCanceled)
            c.cancel(0, "po-rest")                              # already canceled: refused
            crej = await h.wait("po-rest", OrderCancelRejected)
            after = await c.open_orders()
            final = await c.order("po-rest")
            return bid, ask, rej, opened, one, none, state, canceled, crej, after, final, list(h.reports)

    bid, ask, rej, opened, one, none, state, canceled, crej, after, final, reports = run(scenario())
    assert rej[0].code == POST_ONLY_REJECT and len(rej) == 1
    emu_open = sorted(state["symbols"]["BTCUSDT"]["open_orders"], key=lambda o: o["clientOrderId"])
    assert [o.client_order_id for o in opened] == [o["clientOrderId"] for o in emu_open] == ["po-ask", "po-rest"]
    by = {o.client_order_id: o for o in opened}
    assert (by["po-rest"].side, by["po-rest"].price, by["po-rest"].status) == (1, bid - 5, "NEW")
    assert (by["po-ask"].side, by["po-ask"].price) == (-1, ask + 7)
    assert [str(o.venue_order_id) for o in opened] == [str(o["orderId"]) for o in emu_open]
    assert one == by["po-rest"] and none is None
    assert canceled[0].remaining == by["po-rest"].qty and len(canceled) == 1       # answer + event: one report
    assert [o.client_order_id for o in after] == ["po-ask"] and final.status == "CANCELED"
    assert len([r for r in reports if type(r) is OrderAccepted and r.client_order_id == "po-rest"]) == 1
    assert len(crej) == 1


@pytest.mark.parametrize("venue", VENUES)
def test_a_fill_from_the_recorded_market_with_ticks_lots_and_fee_booked_once_despite_duplicates(venue, tmp_path):
    async def scenario():
        async with harness(venue, tmp_path) as h:
            bid, ask = h.touch()
            side = through_side(h.data, float(h.inst.price_of(bid)), float(h.inst.price_of(ask)))
            s = 1 if side == "BUY" else -1
            h.emu.faults.add({"kind": "duplicate_reports", "apiKey": KEY, "count": 50})
            h.client.submit(0, "fill-1", s, bid if s > 0 else ask, h.lots())
            await h.wait("fill-1", OrderAccepted)
            h.emu.market.resume()
            await until(lambda: sum(f.qty for f in h.of("fill-1", OrderFilled)) >= h.lots(), 30, "the fill")
            await asyncio.sleep(0.3)                           # let duplicates arrive
            since = await h.client.fills_since(0)
            return h.of("fill-1", OrderFilled), since, h.state(), h.ex.counters(), s

    fills, since, state, counters, s = run(scenario())
    emu = [f for f in state["symbols"]["BTCUSDT"]["fills"] if f["clientOrderId"] == "fill-1"]
    assert [f.trade_id for f in fills] == [f["tradeId"] for f in emu]                  # each fill once
    from mmcore.instruments import load_instrument
    inst = load_instrument(venue, "BTCUSDT")
    for f, e in zip(fills, emu):
        assert f.side == s and f.price == inst.price_to_ticks(e["price"]) and f.qty == inst.qty_to_lots(e["qty"])
        fee = Decimal(d8(Decimal(e["commission"])))         # the wire carries 8 decimals
        if e["commissionAsset"] == inst.base:
            fee *= inst.price_of(f.price)
        assert f.fee == fee and f.fee > 0 and f.is_maker is True
    assert [(f.trade_id, f.price, f.qty, f.fee) for f in since] == [(f.trade_id, f.price, f.qty, f.fee) for f in fills]
    assert counters["duplicate_reports"] >= len(fills)


def test_reordered_reports_each_fill_booked_once_and_the_acceptance_first(tmp_path):
    venue = "binance_spot"

    async def scenario():
        async with harness(venue, tmp_path) as h:
            bid, ask = h.touch()
            side = through_side(h.data, float(h.inst.price_of(bid)), float(h.inst.price_of(ask)))
            s = 1 if side == "BUY" else -1
            h.emu.faults.add({"kind": "reorder_reports", "apiKey": KEY, "count": 20, "hold_ms": 150})
            h.client.submit(0, "ro-1", s, bid if s > 0 else ask, h.lots())
            await h.wait("ro-1", OrderAccepted)
            h.emu.market.resume()
            await until(lambda: sum(f.qty for f in h.of("ro-1", OrderFilled)) >= h.lots(), 30, "the fill")
            await asyncio.sleep(0.4)
            return list(h.reports), h.state()

    reports, state = run(scenario())
    mine = [r for r in reports if r.client_order_id == "ro-1"]
    assert type(mine[0]) is OrderAccepted and sum(type(r) is OrderAccepted for r in mine) == 1
    emu = sorted(f["tradeId"] for f in state["symbols"]["BTCUSDT"]["fills"] if f["clientOrderId"] == "ro-1")
    assert sorted(r.trade_id for r in mine if type(r) is OrderFilled) == emu


def test_spot_cancel_replace_reports_both_halves(tmp_path):
    async def scenario():
        async with harness("binance_spot", tmp_path, 4000) as h:
            bid, ask = h.touch()
            await place_resting(h, "cr-1")
            h.client.cancel_replace(0, "cr-1", "cr-2", 1, bid - 30, h.lots())
            await h.wait("cr-1", OrderCanceled)
            await h.wait("cr-2", OrderAccepted)
            h.client.cancel_replace(0, "cr-gone", "cr-3", 1, bid - 31, h.lots())     # cancel fails: nothing new
            await h.wait("cr-gone", OrderCancelRejected)
            r3 = await h.wait("cr-3", OrderRejected)
            opened = sorted(o.client_order_id for o in await h.client.open_orders())
            return opened, r3

    opened, r3 = run(scenario())
    assert opened == ["cr-2"] and r3[0].code == "CANCEL_FAILED"


def test_hostile_user_data_is_counted_never_booked_and_malformed_frames_are_skipped(tmp_path):
    from mmcore.instruments import load_instrument
    from mmcore.venues.binance.user_data import Parser
    from mmcore.venues.common import MalformedMessage
    p = Parser(load_instrument("binance_usdm", "BTCUSDT"), spot=False)
    good = {"s": "BTCUSDT", "c": "x-1", "S": "BUY", "x": "TRADE", "X": "FILLED", "i": 7, "q": "0.002", "z": "0.002",
            "l": "0.002", "L": "61800.20", "n": "0.01", "N": "USDT", "T": 1723075200123, "t": 9, "m": True}
    oid, coid, reps = p.order_event(good)
    assert (oid, coid, reps[0].price, reps[0].qty, reps[0].fee) == (7, "x-1", 618002, 2, Decimal("0.01"))
    for bad in ({"L": "1e400"}, {"L": "NaN"}, {"l": "-1"}, {"L": "61800.25"}, {"l": "0.0001"}, {"i": "7"},
                {"t": 2**70}, {"S": "UP"}, {"m": 1}, {"c": "x" * 100}, {"L": "9" * 60}, {"T": -5}, {"n": "nope"}):
        with pytest.raises(MalformedMessage):
            p.order_event(dict(good, **bad))

    async def scenario():
        async with harness("binance_spot", tmp_path, 4000) as h:
            h.emu.faults.add({"kind": "malformed", "target": "wsapi", "count": 3})
            await until(lambda: h.ex.wsapi.counters["malformed"] >= 3, 5, "the malformed frames counted")
            h.ex._on_user_event({"e": "executionReport", "s": "BTCUSDT", "x": "TRADE", "c": "ghost", "i": 1,
                                 "L": "1e999", "l": "1", "S": "BUY", "t": 1, "T": 1, "m": True})
            await place_resting(h, "after-bad")
            return h.ex.wsapi.counters["malformed"], h.ex.malformed, h.of("ghost")

    n_frames, n_events, ghost = run(scenario())
    assert n_frames == 3 and n_events == 1 and ghost == []


def test_settings_from_the_config_venue_section():
    from mmcore.config import load_config
    from mmcore.venues.binance.execution import ExecSettings
    s = ExecSettings.of(load_config(overrides=["venue.recv_window_ms=3000", "venue.testnet=true"]))
    assert (s.recv_window_ms, s.testnet) == (3000, True)
    assert ExecSettings.of({"keepalive_s": 5, "unknown": 1}).keepalive_s == 5


def test_usdm_modify_amends_in_place_cancels_a_gtx_that_would_take_and_refuses_an_unknown_order(tmp_path):
    async def scenario():
        async with harness("binance_usdm", tmp_path, 4000) as h:
            bid, ask = h.touch()
            await place_resting(h, "md-1", away=20)
            h.client.modify(0, "md-1", 1, bid - 25, h.lots())
            await h.wait("md-1", OrderAmended, n=2)                  # the answer and the user data's AMENDMENT
            venue = await h.client.order("md-1")
            await place_resting(h, "md-2", away=20)
            h.client.modify(0, "md-2", 1, ask + 3, h.lots())          # GTX at a price that would take
            await h.wait("md-2", OrderCanceled)
            h.client.modify(0, "md-none", 1, bid - 30, h.lots())
            rej = await h.wait("md-none", OrderAmendRejected)
            return h.of("md-1", OrderAmended), venue, rej, h.state(), bid
    amended, venue, rej, state, bid = run(scenario())
    assert {(a.price, a.qty) for a in amended} == {(bid - 25, venue.qty)} and venue.price == bid - 25
    assert venue.status == "NEW" and rej[0].code.startswith("BINANCE:")
    open_ = {o["clientOrderId"] for o in state["symbols"]["BTCUSDT"]["open_orders"]}
    assert open_ == {"md-1"}


def test_spot_has_no_modify_and_refuses_it_with_a_report_sending_nothing(tmp_path):
    async def scenario():
        async with harness("binance_spot", tmp_path, 4000) as h:
            await place_resting(h, "sm-1")
            before = h.ex.wsapi.counters["requests"]
            h.client.modify(0, "sm-1", 1, h.touch()[0] - 40, h.lots())
            rej = await h.wait("sm-1", OrderAmendRejected)
            opened = [o.client_order_id for o in await h.client.open_orders()]
            return h.client.supports_modify, rej, before, h.ex.wsapi.counters["requests"], opened
    supports, rej, before, after, opened = run(scenario())
    assert not supports and rej[0].code == "NOT_SUPPORTED"
    assert after == before + 1                               # the open-orders query only: no order.modify sent
    assert opened == ["sm-1"]
