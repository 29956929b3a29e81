"""Spot with an Ed25519 API key against the emulator: the key file loaded from the environment, ``session.logon``
then ``userDataStream.subscribe`` on the WebSocket API (Binance: web-socket-api.md "Session Authentication";
the emulator verifies the base64 Ed25519 signatures with the account's public key), orders signed with the key,
a fill from the recorded market delivered by the session's user-data subscription; a key that does not match the
registered public key is refused at start and never retried."""
import asyncio

import pytest

from binexkit import harness, run, through_side
from emukit import until
from mmcore.execution import OrderAccepted, OrderCanceled, OrderFilled
from mmcore.venues.binance.credentials import load_credentials

pytest.importorskip("cryptography")
ED_KEY = "edTestKey0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRS"   # fake test account


def _key_pair(tmp_path, name):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    key = Ed25519PrivateKey.generate()
    path = tmp_path / f"{name}.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return path, public


def test_ed25519_key_logs_on_subscribes_and_trades_on_spot(tmp_path):
    private, public = _key_pair(tmp_path, "ed")
    creds = load_credentials({"BINANCE_API_KEY": ED_KEY, "BINANCE_ED25519_KEY_FILE": str(private)}, None)
    assert creds.kind == "ed25519"

    async def scenario():
        async with harness("binance_spot", tmp_path, credentials=creds,
                           ed25519_accounts=[(ED_KEY, public)]) as h:
            conns = list(h.emu.conns["wsapi"])
            assert [c.session_account.api_key for c in conns if c.session_account is not None] == [ED_KEY]
            assert h.ex.subscription_id is not None
            bid, ask = h.touch()
            side = through_side(h.data, float(h.inst.price_of(bid)), float(h.inst.price_of(ask)))
            s = 1 if side == "BUY" else -1
            h.client.submit(0, "ed-fill", s, bid if s > 0 else ask, h.lots())
            h.client.submit(0, "ed-rest", 1, bid - 30, h.lots())
            await h.wait("ed-fill", OrderAccepted)
            await h.wait("ed-rest", OrderAccepted)
            h.client.cancel(0, "ed-rest")
            await h.wait("ed-rest", OrderCanceled)
            h.emu.market.resume()
            await until(lambda: sum(f.qty for f in h.of("ed-fill", OrderFilled)) >= h.lots(), 30, "the fill")
            return h.of("ed-fill", OrderFilled), h.emu.account_state(h.emu.exchange.accounts[ED_KEY])

    fills, state = run(scenario())
    emu = [f for f in state["symbols"]["BTCUSDT"]["fills"] if f["clientOrderId"] == "ed-fill"]
    assert sorted(f.trade_id for f in fills) == sorted(f["tradeId"] for f in emu) and emu


def test_an_ed25519_key_that_does_not_match_the_registered_one_is_refused_at_start(tmp_path):
    private, _ = _key_pair(tmp_path, "mine")
    _, other_public = _key_pair(tmp_path, "registered")
    creds = load_credentials({"BINANCE_API_KEY": ED_KEY, "BINANCE_ED25519_KEY_FILE": str(private)}, None)

    async def scenario():
        async with harness("binance_spot", tmp_path, credentials=creds, start_exec=False,
                           ed25519_accounts=[(ED_KEY, other_public)]) as h:
            with pytest.raises(Exception) as ei:
                await asyncio.wait_for(h.ex.start(), 15)
            await asyncio.sleep(0.3)
            return ei.value, h.ex.fatal, h.emu.counters

    exc, fatal, _ = run(scenario())
    assert fatal is not None and fatal.code == -1022, (exc, fatal)
