"""Connection rules of the emulator's WebSockets: server pings and pong timeouts (spot counts only a pong with the
ping's payload), the incoming message rate limit, the stream limit, the connection lifetime, a slow reader dropped.
Recordings: the first lines of the real 2024-08-08 files."""
import asyncio
import base64
import os

import orjson
import pytest

from emukit import SPOT_BTC, USDM_BTC, head, pw_connect, running, until, ws_json

pytest.importorskip("picows")


def test_pings_are_answered_by_picows_and_a_client_without_pong_is_dropped(tmp_path):
    data = head(SPOT_BTC, tmp_path / "spot_btc.gz", 300)

    async def scenario():
        async with running([data], tmp_path, speed=0, ping_interval_s=0.05, pong_timeout_s=0.3,
                           max_messages_per_s=1000) as (emu, port):      # 20 pongs a second
            good_t, good = await pw_connect(f"ws://127.0.0.1:{port}/ws/btcusdt@trade")
            mute_t, mute = await pw_connect(f"ws://127.0.0.1:{port}/ws/btcusdt@trade", enable_auto_pong=False)
            await until(lambda: mute.disconnected, 5, "the client without pongs dropped")
            await asyncio.sleep(0.5)
            alive = not good.disconnected
            good_t.disconnect()
            return alive, mute.close_code
    alive, code = asyncio.run(scenario())
    assert alive and code == 1008


def test_spot_unsolicited_pongs_do_not_keep_a_connection_but_usdm_ones_do(tmp_path):
    async def one(path, name):
        data = head(path, tmp_path / name, 300)
        async with running([data], tmp_path, speed=0, ping_interval_s=0.05, pong_timeout_s=0.3,
                           max_messages_per_s=1000) as (emu, port):
            t, c = await pw_connect(f"ws://127.0.0.1:{port}/ws/1", enable_auto_pong=False)
            for _ in range(40):
                if c.disconnected:
                    break
                t.send_pong(b"unsolicited")
                await asyncio.sleep(0.025)
            dropped = c.disconnected
            t.disconnect()
            return dropped
    assert asyncio.run(one(SPOT_BTC, "spot.gz")) is True
    assert asyncio.run(one(USDM_BTC, "usdm.gz")) is False


def test_message_rate_limit_stream_limit_and_lifetime(tmp_path):
    data = head(SPOT_BTC, tmp_path / "spot_btc.gz", 300)

    async def scenario():
        async with running([data], tmp_path, speed=0, max_streams=3, lifetime_s=0.4) as (emu, port):
            out = {}
            t, c = await pw_connect(f"ws://127.0.0.1:{port}/ws/0")
            for i in range(6):                                   # 6 control messages in a second: over 5
                ws_json(t, {"method": "LIST_SUBSCRIPTIONS", "id": i})
            await until(lambda: c.disconnected, 5, "the flooding client closed")
            out["flood"] = (c.close_code, len(c.frames))
            t2, c2 = await pw_connect(f"ws://127.0.0.1:{port}/stream?streams=a@trade/b@trade")
            ws_json(t2, {"method": "SUBSCRIBE", "params": ["c@trade", "d@trade"], "id": 1})
            ws_json(t2, {"method": "SUBSCRIBE", "params": ["c@trade"], "id": 2})
            await until(lambda: len(c2.frames) >= 2, 5, "two answers")
            out["limit"] = [orjson.loads(f) for f in c2.frames[:2]]
            try:
                await pw_connect(f"ws://127.0.0.1:{port}/stream?streams=a@trade/b@trade/c@trade/d@trade")
                out["url"] = None
            except Exception as exc:
                out["url"] = exc.response.status
            await until(lambda: c2.disconnected, 5, "the lifetime close")
            out["lifetime"] = c2.close_code
            return out
    o = asyncio.run(scenario())
    assert o["flood"] == (1008, 5)
    assert o["limit"][0]["code"] == 2 and "more than 3 streams" in o["limit"][0]["msg"] and o["limit"][0]["id"] == 1
    assert o["limit"][1] == {"result": None, "id": 2}
    assert o["url"] == 400 and o["lifetime"] == 1001


def test_a_client_that_does_not_read_is_dropped_and_the_replay_goes_on(tmp_path):
    data = head(USDM_BTC, tmp_path / "usdm_btc.gz", 20000)

    async def scenario():
        async with running([data], tmp_path, speed=0, start="paused", high_water_bytes=32 << 10,
                           slow_client_s=0.3) as (emu, port):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            key = base64.b64encode(os.urandom(16)).decode()
            writer.write((f"GET /public/ws/btcusdt@depth@0ms/btcusdt@bookTicker/btcusdt@trade HTTP/1.1\r\n"
                          f"Host: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                          f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
            await writer.drain()
            head_ = await reader.readuntil(b"\r\n\r\n")
            t, fast = await pw_connect(f"ws://127.0.0.1:{port}/public/ws/btcusdt@trade")
            sock = writer.get_extra_info("socket")
            import socket
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            emu.market.resume()
            await until(lambda: emu.market.done, 60, "the end of the recording")
            writer.close()
            t.disconnect()
            return head_, emu.status(), len(fast.frames)
    head_, st, fast_frames = asyncio.run(scenario())
    assert b" 101 " in head_.split(b"\r\n")[0]
    assert st["slow_dropped"] == 1 and st["done"] and fast_frames > 1000
