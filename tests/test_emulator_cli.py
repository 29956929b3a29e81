"""``python -m mmcore emulate`` as a process: the first stdout lines, exit codes (0 on SIGTERM, 2 for bad arguments
or data, 1 when a supervised task dies), and accounts that outlive a client killed with SIGKILL.
Recordings: the first lines of the real 2024-08-08 files."""
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest
from pathlib import Path

from mmcore.venues.binance.markets import checksum_line
from emukit import KEY, SECRET, SPOT_BTC, USDM_BTC, USDM_ETH, head, rest_signed

ROOT = Path(__file__).resolve().parents[1]

from datafiles import ROOT

ENV = dict(os.environ, PYTHONPATH=str(ROOT))


def _start(args, tmp_path):
    p = subprocess.Popen([sys.executable, "-m", "mmcore", "emulate", *args], cwd=tmp_path, env=ENV,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    assert line.startswith("listening 127.0.0.1:"), (line, p.stderr.read() if p.poll() is not None else "")
    return p, int(line.strip().rsplit(":", 1)[1])


def _get(port, path, key=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"X-MBX-APIKEY": key} if key else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _stop(p):
    p.send_signal(signal.SIGTERM)
    try:
        return p.wait(10)
    finally:
        if p.poll() is None:
            p.kill()


def test_listening_and_generated_account_lines_then_sigterm_exits_0(tmp_path):
    data = head(USDM_BTC, tmp_path / "usdm_btc.gz", 500)
    p, port = _start(["--data", str(data), "--speed", "0"], tmp_path)
    acct = p.stdout.readline().split()
    assert acct[0] == "account" and len(acct) == 3 and len(acct[1]) == 64
    assert _get(port, "/fapi/v1/time")[0] == 200
    st, body = _get(port, "/fapi/v2/account?" + rest_signed({}, secret=acct[2]), key=acct[1])
    assert st == 200 and body["assets"][0]["walletBalance"].startswith("1000000")
    assert _stop(p) == 0


@pytest.mark.parametrize("args,needle", [
    (["--data", "missing.gz"], "data file not found"),
    (["--data", str(USDM_BTC), "--data", str(SPOT_BTC)], "one market per emulator"),
    (["--data", str(USDM_BTC), "--data", str(USDM_BTC)], "one recording per symbol"),
    (["--data", str(USDM_BTC), "--data", str(USDM_ETH), "--set", "venue.markets_file=BTC_ONLY"],
     "ETHUSDT not pinned"),
    (["--data", str(USDM_BTC), "--account", "nosecret"], "--account"),
    (["--data", str(SPOT_BTC), "--ed25519-account", "k:missing.pem"], "--ed25519-account: missing.pem"),
    (["--data", str(SPOT_BTC), "--ed25519-account", "k:NOT_A_KEY"], "not a readable PEM public key"),
    (["--data", str(USDM_BTC), "--set", "sim.entry_latency_ms=-1"], "config error"),
    (["--data", str(USDM_BTC), "--speed", "-1"], "--speed"),
    (["--data", str(USDM_BTC), "--balance", "USDT=lots"], "--balance"),
    (["--data", str(USDM_BTC), "--ping-interval", "0"], "ping_interval_s"),
])
def test_bad_arguments_and_data_exit_2_with_one_line(tmp_path, args, needle):
    mf = tmp_path / "m.json"                      # the pinned USDⓈ-M file cut to BTCUSDT
    doc = json.loads((ROOT / "config" / "markets" / "binance_usdm.json").read_text())
    doc["exchangeInfo"]["symbols"] = [x for x in doc["exchangeInfo"]["symbols"] if x["symbol"] == "BTCUSDT"]
    doc["mmcore"] = {k: v for k, v in doc["mmcore"].items() if k == "BTCUSDT"}
    mf.write_text(json.dumps(doc))
    (tmp_path / "m.json.sha256").write_text(checksum_line(mf.read_bytes(), "m.json"))
    (tmp_path / "junk.pem").write_text("-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")
    args = [a.replace("BTC_ONLY", str(mf)).replace("NOT_A_KEY", str(tmp_path / "junk.pem")) for a in args]
    r = subprocess.run([sys.executable, "-m", "mmcore", "emulate", *args], cwd=tmp_path, env=ENV,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert r.stdout == "" and needle in r.stderr and "Traceback" not in r.stderr


CLIENT = r"""
import asyncio, sys, time, hmac, hashlib, orjson
from picows import ws_connect, WSListener, WSMsgType
key, secret, port, price = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
class L(WSListener):
    def on_ws_frame(self, t, f):
        if f.msg_type == WSMsgType.TEXT:
            print(f.get_payload_as_bytes().decode(), flush=True)
async def main():
    t, _ = await ws_connect(L, f"ws://127.0.0.1:{port}/ws-fapi/v1")
    p = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTX", "price": price,
         "quantity": "0.002", "newClientOrderId": "crash-1", "apiKey": key, "timestamp": int(time.time() * 1000)}
    payload = "&".join(f"{k}={v}" for k, v in sorted(p.items()))
    p["signature"] = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
    t.send(WSMsgType.TEXT, orjson.dumps({"id": 1, "method": "order.place", "params": p}))
    await asyncio.sleep(3600)
asyncio.run(main())
"""


def test_an_account_keeps_its_orders_when_its_client_is_killed(tmp_path):
    data = head(USDM_BTC, tmp_path / "usdm_btc.gz", 1500)
    p, port = _start(["--data", str(data), "--speed", "0", "--account", f"{KEY}:{SECRET}", "--start", "now"],
                     tmp_path)
    try:
        for _ in range(200):
            if _get(port, "/_emulator/status")[1]["done"]:
                break
            time.sleep(0.05)
        book = _get(port, "/_emulator/book?symbol=BTCUSDT&limit=1")[1]
        price = f"{float(book['bids'][0][0]) - 100:.1f}"
        c = subprocess.Popen([sys.executable, "-c", CLIENT, KEY, SECRET, str(port), price], env=ENV,
                             stdout=subprocess.PIPE, text=True)
        answer = json.loads(c.stdout.readline())
        assert answer["status"] == 200 and answer["result"]["status"] == "NEW"
        c.send_signal(signal.SIGKILL)
        c.wait(10)
        time.sleep(0.2)
        st = _get(port, f"/_emulator/state?apiKey={KEY}")[1]
        assert [o["clientOrderId"] for o in st["symbols"]["BTCUSDT"]["open_orders"]] == ["crash-1"]
        status = _get(port, "/_emulator/status")[1]
        assert status["connections"]["wsapi"] == 0 and status["failure"] is None
        # a restarted client finds it and cancels it
        st2, opens = _get(port, "/fapi/v1/openOrders?" + rest_signed({"symbol": "BTCUSDT"}), key=KEY)
        assert st2 == 200 and [o["clientOrderId"] for o in opens] == ["crash-1"]
    finally:
        assert _stop(p) == 0


def test_a_dying_replay_task_ends_the_emulator_with_exit_1(tmp_path, capsys):
    from mmcore.sim.emulator import app as app_mod

    data = head(USDM_BTC, tmp_path / "usdm_btc.gz", 500)

    async def scenario():
        from mmcore.config import load_config
        emu = app_mod.build_emulator([data], load_config(), 0, {"start": "now"})

        async def boom():                              # synthetic: flow control raises inside the replay task
            raise RuntimeError("synthetic failure")
        emu.market.backpressure = boom
        return await asyncio.wait_for(app_mod.serve(emu, 0, [("k", "s")], False), 20)

    assert asyncio.run(scenario()) == 1
    err = capsys.readouterr().err
    assert "error: replay task died at recording line" in err and "synthetic failure" in err
