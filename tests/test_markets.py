"""Pinned markets files (mmcore.venues.binance.markets): the bundled files, the checksum, hostile files, the
exchange's order filters before the gate, the `markets` command and the start-time refresh against a small
in-test aiohttp server that serves a Binance exchangeInfo (127.0.0.1, OS-chosen port)."""
import asyncio
import copy
import hashlib
import json
import os
import subprocess
import sys
import threading
from decimal import Decimal
from pathlib import Path

import pytest

from mmcore.instruments import DEFAULT_MARKETS_DIR, MAX_UNITS, OrderFilter, load_instrument
from mmcore.venues.binance import markets as mk
from mmcore.venues.binance.markets import MarketsError, MarketsFetchError, checksum_line, load_markets

ROOT = Path(__file__).resolve().parent.parent
SPOT_FILE = DEFAULT_MARKETS_DIR / "binance_spot.json"
USDM_FILE = DEFAULT_MARKETS_DIR / "binance_usdm.json"


def pin(tmp_path, doc, name="binance_usdm.json", checksum=True) -> Path:
    """Write ``doc`` (a dict, or raw bytes) as a pinned file in ``tmp_path``, with its checksum unless told."""
    data = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    path = tmp_path / name
    path.write_bytes(data)
    if checksum:
        (tmp_path / (name + ".sha256")).write_text(checksum_line(data, name))
    return path


def usdm_doc() -> dict:
    return json.loads(USDM_FILE.read_text())


def spot_doc() -> dict:
    return json.loads(SPOT_FILE.read_text())


def filt(doc, symbol, ftype) -> dict:
    sym = next(s for s in doc["exchangeInfo"]["symbols"] if s["symbol"] == symbol)
    return next(f for f in sym["filters"] if f["filterType"] == ftype)


# ------------------------------------------------------------------------------------------ bundled files

@pytest.mark.parametrize("market, symbol, tick, step, lot, pp, qp", [
    ("binance_usdm", "BTCUSDT", "0.1", "0.001", "0.001", 2, 3),
    ("binance_usdm", "ETHUSDT", "0.01", "0.001", "0.001", 2, 3),
    ("binance_spot", "BTCUSDT", "0.01", "0.00001", "0.00000001", 8, 8),
    ("binance_spot", "ETHUSDT", "0.01", "0.0001", "0.00000001", 8, 8),
])
def test_bundled_files_give_the_grids_the_2024_08_08_recordings_need(market, symbol, tick, step, lot, pp, qp):
    inst = load_instrument(market, symbol)
    assert (inst.tick_size, inst.step_size, inst.lot_size) == (Decimal(tick), Decimal(step), Decimal(lot))
    assert (inst.price_precision, inst.quantity_precision) == (pp, qp)
    assert inst.market == market and inst.symbol == symbol and inst.quote == "USDT"


def test_bundled_instruments_come_from_the_exchangeinfo_filters():
    usdm = load_markets(USDM_FILE, "binance_usdm")
    btc = usdm.instrument("BTCUSDT")
    assert (btc.min_price, btc.max_price, btc.min_order_qty, btc.max_order_qty) == (
        Decimal("556.8"), Decimal("4529764"), Decimal("0.001"), Decimal("1000"))
    assert btc.min_notional == Decimal("5") and btc.max_notional is None
    assert btc.percent_price.max_deviation() == Decimal("0.05")
    assert btc.max_qty == Decimal("21000000")
    spot = load_markets(SPOT_FILE, "binance_spot").instrument("BTCUSDT")
    assert (spot.min_notional, spot.max_notional) == (Decimal(5), Decimal(9000000))
    assert (spot.percent_price.bid_up, spot.percent_price.bid_down, spot.percent_price.avg_price_mins) == (
        Decimal(5), Decimal("0.2"), 5)
    assert str(spot.max_price) == "1000000" and str(spot.tick_size) == "0.01"     # Binance's padding dropped


def test_bundled_files_have_valid_sha256sum_files_and_name_their_source():
    for path in (SPOT_FILE, USDM_FILE):
        line = path.with_name(path.name + ".sha256").read_text()
        assert line == f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.name}\n"
        doc = json.loads(path.read_text())
        assert "ccxt/ccxt" in doc["source"] and "ts/src/test/static/markets/binance.json" in doc["source"]
        assert sorted(doc["mmcore"]) == ["BTCUSDT", "ETHUSDT"]
    assert not (ROOT / "config" / "instruments.yaml").exists()


def test_exchange_info_is_the_pinned_object_and_a_copy():
    m = load_markets(USDM_FILE, "binance_usdm")
    info = m.exchange_info()
    assert info == usdm_doc()["exchangeInfo"]
    assert [s["symbol"] for s in info["symbols"]] == ["BTCUSDT", "ETHUSDT"] == list(m.symbols())
    info["symbols"][0]["filters"].clear()
    assert m.exchange_info()["symbols"][0]["filters"]                   # the Markets is unchanged
    assert m.symbol_info("ETHUSDT")["contractType"] == "PERPETUAL"


# ------------------------------------------------------------------------------------------ load_instrument

def test_load_instrument_takes_a_file_a_directory_or_nothing(tmp_path):
    a = load_instrument("binance_usdm", "BTCUSDT")
    b = load_instrument("binance_usdm", "BTCUSDT", DEFAULT_MARKETS_DIR)
    c = load_instrument("binance_usdm", "BTCUSDT", USDM_FILE)
    assert a == b == c


def test_load_instrument_errors_name_the_market_symbol_and_file():
    with pytest.raises(KeyError, match="market 'kraken' unknown"):
        load_instrument("kraken", "BTCUSDT")
    with pytest.raises(KeyError, match=r"symbol 'SOLUSDT' not in .*binance_usdm.json \(have: BTCUSDT, ETHUSDT\)"):
        load_instrument("binance_usdm", "SOLUSDT")


# ------------------------------------------------------------------------------------------ checksum

def test_missing_checksum_stops_the_load(tmp_path):
    path = pin(tmp_path, usdm_doc(), checksum=False)
    with pytest.raises(MarketsError, match=r"binance_usdm.json.sha256: checksum file missing.*only with its checksum"):
        load_markets(path, "binance_usdm")


def test_changed_file_fails_its_checksum(tmp_path):
    path = pin(tmp_path, usdm_doc())
    path.write_bytes(path.read_bytes().replace(b'"1000"', b'"1001"', 1))         # one value edited by hand
    with pytest.raises(MarketsError, match=r"binance_usdm.json: checksum mismatch"):
        load_markets(path, "binance_usdm")


@pytest.mark.parametrize("line, phrase", [
    ("deadbeef  binance_usdm.json\n", "not a sha256sum line"),
    ("{h}  other.json\n", "names 'other.json', not 'binance_usdm.json'"),
    ("{h}  binance_usdm.json\n{h}  binance_usdm.json\n", "expected one line"),
    ("\xff\xfe", "not ASCII"),
])
def test_malformed_checksum_files_are_refused(tmp_path, line, phrase):
    path = pin(tmp_path, usdm_doc(), checksum=False)
    h = hashlib.sha256(path.read_bytes()).hexdigest()
    (tmp_path / "binance_usdm.json.sha256").write_bytes(line.format(h=h).encode("latin-1"))
    with pytest.raises(MarketsError, match=phrase):
        load_markets(path, "binance_usdm")


def test_binary_marker_and_uppercase_hex_are_sha256sum_format_too(tmp_path):
    path = pin(tmp_path, usdm_doc(), checksum=False)
    h = hashlib.sha256(path.read_bytes()).hexdigest().upper()
    (tmp_path / "binance_usdm.json.sha256").write_text(f"{h} *binance_usdm.json\n")
    assert load_markets(path, "binance_usdm").symbols() == ("BTCUSDT", "ETHUSDT")


def _run_cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "mmcore", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def test_run_with_a_mismatched_pinned_file_exits_2_naming_it(tmp_path):
    d = tmp_path / "markets"
    d.mkdir()
    for f in DEFAULT_MARKETS_DIR.iterdir():
        (d / f.name).write_bytes(f.read_bytes())
    path = d / "binance_usdm.json"
    path.write_bytes(path.read_bytes().replace(b'"0.10"', b'"0.20"', 1))
    r = _run_cli("run", "--set", f"data.markets={d}")
    assert r.returncode == 2, r.stderr
    assert f"error: {path}: checksum mismatch" in r.stderr and "Traceback" not in r.stderr
    (d / "binance_usdm.json.sha256").unlink()
    r = _run_cli("run", "--set", f"data.markets={d}")
    assert r.returncode == 2 and "checksum file missing" in r.stderr and "Traceback" not in r.stderr
    r = _run_cli("run", "--set", f"data.markets={path}")                        # a file, not a directory
    assert r.returncode == 2 and "data.markets" in r.stderr and "not a directory" in r.stderr


# ------------------------------------------------------------------------------------------ hostile files

def _mutate(doc, how):
    """Apply one synthetic change to a copy of the bundled USDⓈ-M document."""
    doc = copy.deepcopy(doc)
    btc = doc["exchangeInfo"]["symbols"][0]
    pf = next(f for f in btc["filters"] if f["filterType"] == "PRICE_FILTER")
    lf = next(f for f in btc["filters"] if f["filterType"] == "LOT_SIZE")
    how(doc, btc, pf, lf)
    return doc


BAD = [
    ("no PRICE_FILTER", lambda d, b, p, l: b["filters"].remove(p), "exchangeInfo.symbols[BTCUSDT].filters: no PRICE_FILTER"),
    ("tick as number", lambda d, b, p, l: p.update(tickSize=0.1), "filters[PRICE_FILTER].tickSize: is a number, must be a decimal string"),
    ("tick exponent", lambda d, b, p, l: p.update(tickSize="1e-1"), "'1e-1' is not a plain decimal string"),
    ("tick zero", lambda d, b, p, l: p.update(tickSize="0.0"), "tickSize: must be > 0"),
    ("maxPrice beyond 2**53 ticks", lambda d, b, p, l: p.update(maxPrice="900719925474100"),
     "filters[PRICE_FILTER].maxPrice: maxPrice / tickSize = 9.00720e+15 ticks, above 2**53"),
    ("max_qty beyond 2**53 lots", lambda d, b, p, l: d["mmcore"]["BTCUSDT"].update(max_qty="9007199254741"),
     "mmcore.BTCUSDT.max_qty: max_qty / lot_size = 9.00720e+15 lots, above 2**53"),
    ("lot does not divide step", lambda d, b, p, l: d["mmcore"]["BTCUSDT"].update(lot_size="0.0007"),
     "mmcore.BTCUSDT.lot_size: 0.0007 does not divide LOT_SIZE.stepSize"),
    ("max_qty below maxQty", lambda d, b, p, l: d["mmcore"]["BTCUSDT"].update(max_qty="10"),
     "mmcore.BTCUSDT.max_qty: 10 is below LOT_SIZE.maxQty 1000"),
    ("precision too small", lambda d, b, p, l: d["mmcore"]["BTCUSDT"].update(price_precision=0),
     "mmcore.BTCUSDT.price_precision: 0 decimals cannot write tickSize 0.1"),
    ("precision huge", lambda d, b, p, l: d["mmcore"]["BTCUSDT"].update(price_precision=10**400),
     "mmcore.BTCUSDT.price_precision: <huge integer> out of range [0, 18]"),
    ("precision bool", lambda d, b, p, l: d["mmcore"]["BTCUSDT"].update(quantity_precision=True),
     "mmcore.BTCUSDT.quantity_precision: is a boolean, must be an integer"),
    ("mmcore entry missing", lambda d, b, p, l: d["mmcore"].pop("ETHUSDT"), "mmcore.ETHUSDT: missing"),
    ("mmcore extra symbol", lambda d, b, p, l: d["mmcore"].update(SOLUSDT=dict(d["mmcore"]["BTCUSDT"])),
     "mmcore.SOLUSDT: has no entry in exchangeInfo.symbols"),
    ("mmcore unknown field", lambda d, b, p, l: d["mmcore"]["BTCUSDT"].update(tick="1"), "mmcore.BTCUSDT.tick: unknown field"),
    ("symbol twice", lambda d, b, p, l: d["exchangeInfo"]["symbols"].append(copy.deepcopy(b)),
     "exchangeInfo.symbols[2].symbol: BTCUSDT appears twice"),
    ("bad symbol", lambda d, b, p, l: b.update(symbol="btc/usdt"), "is not an exchange symbol"),
    ("not perpetual", lambda d, b, p, l: b.update(contractType="CURRENT_QUARTER"), "contractType: 'CURRENT_QUARTER': mmcore trades"),
    ("no GTX", lambda d, b, p, l: b.update(timeInForce=["GTC"]), "timeInForce: has no GTX"),
    ("wrong venue", lambda d, b, p, l: d.update(venue="binance_spot"), "venue: 'binance_spot', but this is the pinned file of 'binance_usdm'"),
    ("unknown top field", lambda d, b, p, l: d.update(extra=1), "extra: unknown field"),
    ("no symbols", lambda d, b, p, l: d["exchangeInfo"].update(symbols=[]), "exchangeInfo.symbols: empty"),
    ("filters not a list", lambda d, b, p, l: b.update(filters={}), "symbols[BTCUSDT].filters: is an object, must be an array"),
    ("second LOT_SIZE", lambda d, b, p, l: b["filters"].append(dict(l)), "second LOT_SIZE filter"),
    ("minQty above maxQty", lambda d, b, p, l: l.update(minQty="2000"), "minQty: 2000 is above maxQty 1000"),
    ("percent band upside down", lambda d, b, p, l: next(f for f in b["filters"] if f["filterType"] == "PERCENT_PRICE").update(multiplierUp="0.9"),
     "filters[PERCENT_PRICE]: multipliers must satisfy down < 1 < up"),
    ("top level a list", lambda d, b, p, l: None, None),
]


@pytest.mark.parametrize("name, how, phrase", BAD, ids=[b[0] for b in BAD])
def test_bad_fields_are_refused_naming_the_file_and_field(tmp_path, name, how, phrase):
    doc = [] if phrase is None else _mutate(usdm_doc(), how)
    path = pin(tmp_path, doc)
    with pytest.raises(MarketsError) as exc:
        load_markets(path, "binance_usdm")
    msg = str(exc.value)
    assert msg.startswith(f"{path}: ")
    assert (phrase or "(top level): is an array") in msg


def test_spot_file_with_a_futures_symbol_or_without_limit_maker_is_refused(tmp_path):
    doc = spot_doc()
    doc["exchangeInfo"]["symbols"][0]["contractType"] = "PERPETUAL"
    with pytest.raises(MarketsError, match="contractType: present: this is a futures symbol"):
        load_markets(pin(tmp_path, doc, "binance_spot.json"), "binance_spot")
    doc = spot_doc()
    doc["exchangeInfo"]["symbols"][1]["orderTypes"].remove("LIMIT_MAKER")
    with pytest.raises(MarketsError, match=r"symbols\[ETHUSDT\].orderTypes: has no LIMIT_MAKER"):
        load_markets(pin(tmp_path, doc, "binance_spot.json"), "binance_spot")


@pytest.mark.parametrize("raw, phrase", [
    (b'{"venue": "binance_usdm", "venue": "binance_usdm"}', "duplicate key 'venue'"),
    (b'{"venue": NaN}', "NaN is not a JSON number"),
    (b'[' * 100_000 + b']' * 100_000, "nested deeper than the parser allows"),
    (b'{"venue": "binance_usdm",', "not valid JSON"),
    (b'{"venue": "\xff"}', "not UTF-8"),
    (b'{"x": ' + b'9' * 5000 + b'}', "not valid JSON"),
])
def test_malformed_json_is_refused(tmp_path, raw, phrase):
    path = pin(tmp_path, raw)
    with pytest.raises(MarketsError, match=phrase):
        load_markets(path, "binance_usdm")


def test_oversized_and_non_regular_files_are_refused_without_reading_them(tmp_path):
    big = tmp_path / "binance_usdm.json"
    with open(big, "wb") as fh:
        fh.truncate(64 << 20)                                        # sparse 64 MiB
    with pytest.raises(MarketsError, match=r"larger than the 1048576 bytes allowed"):
        load_markets(big, "binance_usdm")
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    with pytest.raises(MarketsError, match="is not a regular file"):
        load_markets(fifo, "binance_usdm")
    with pytest.raises(MarketsError, match="is not a regular file"):
        load_markets(tmp_path, "binance_usdm")


def test_random_damage_to_a_pinned_file_only_ever_gives_markets_errors(tmp_path):
    """Synthetic: bytes of the bundled file flipped, cut or duplicated (seeded), checksum rewritten to match."""
    import random
    rnd = random.Random(9)
    data = USDM_FILE.read_bytes()
    kinds = {}
    for i in range(300):
        b = bytearray(data)
        op = rnd.randrange(3)
        at = rnd.randrange(len(b))
        if op == 0:
            b[at] = rnd.randrange(256)
        elif op == 1:
            del b[at:at + rnd.randrange(1, 200)]
        else:
            b[at:at] = b[max(0, at - 50):at]
        path = pin(tmp_path, bytes(b))
        try:
            load_markets(path, "binance_usdm")
            kinds["ok"] = kinds.get("ok", 0) + 1
        except MarketsError as exc:
            assert str(exc).startswith(str(path))
            kinds["refused"] = kinds.get("refused", 0) + 1
    assert kinds["refused"] > 100


# ------------------------------------------------------------------------------------------ order filters

def test_order_filter_refuses_prices_outside_price_filter_and_rounds_quantities_down_to_the_step():
    spot = load_instrument("binance_spot", "BTCUSDT")        # tick 0.01, step 1000 lots, min notional 5
    f = OrderFilter(spot)
    assert f.check(6_180_000, 200_000) == (200_000, None)                    # 61800.00 x 0.002
    assert f.check(6_180_000, 200_999) == (200_000, None)                    # rounded down to a whole step
    assert f.check(0, 200_000)[1] == "PRICE_FILTER"
    assert f.check(spot.max_price_ticks + 1, 200_000)[1] == "PRICE_FILTER"
    assert f.check(6_180_000, 999)[1] == "LOT_SIZE"                          # below one step (minQty 0.00001)
    assert f.check(6_180_000, spot.max_order_lots + 1000)[1] == "LOT_SIZE"  # above maxQty 9000
    assert f.check(6_180_000, 8_000) == (8_000, "MIN_NOTIONAL")              # 61800 x 0.00008 = 4.94 < 5
    assert f.check(6_180_000, 8_000, notional=False) == (8_000, None)        # flattening: venue decides
    assert f.check(6_180_000, 9_000)[1] is None                              # 5.56 >= 5
    assert f.check(100_000_000, 900_000_000_000)[1] == "MAX_NOTIONAL"        # 1e6 x 9000 > 9e6


def _manager(inst):
    from mmcore.engine.order_manager import OrderManager
    from mmcore.persistence.journal import NullJournal
    from mmcore.risk_config import RiskConfig
    from mmcore_ext.orders import ClientOrderIdGenerator
    from mmcore_ext.risk import RiskGate
    gate = RiskGate(RiskConfig(max_single_trade_usdt=500, max_symbol_notional_usdt=5000,
                               max_global_notional_usdt=10000, min_spread_frac=0.0),
                    inst.tick_size, inst.lot_size, inst.symbol)
    gate.on_market(0, 2 * 618_000, True)
    sent = []

    class Client:
        def submit(self, ts, coid, side, px, qty, post_only=True):
            sent.append((side, px, qty))

        def cancel(self, ts, coid):
            pass
    mgr = OrderManager(Client(), gate, ClientOrderIdGenerator("t-"), NullJournal(), 3, 0.0, 10**10,
                       exchange_filter=OrderFilter(inst))
    return mgr, gate, sent


def test_an_order_below_min_notional_is_not_sent_and_counted_before_the_gate():
    usdm = load_instrument("binance_usdm", "BTCUSDT")        # min notional 5 USDT; 61800 x 0.001 = 61.8
    doc = usdm_doc()
    filt(doc, "BTCUSDT", "MIN_NOTIONAL")["notional"] = "100"                 # synthetic: 100 USDT
    inst = mk.parse_markets(doc, "binance_usdm").instrument("BTCUSDT")
    mgr, gate, sent = _manager(inst)
    assert mgr.place(1, 1, 617_990, 1) is None                               # 61.8 USDT < 100
    assert sent == [] and mgr.refusal_counts() == {"MIN_NOTIONAL": 1}
    assert sum(gate.refusals().values()) == 0                                # the gate never saw it
    assert mgr.place(2, 1, 617_990, 2) is not None and sent == [(1, 617_990, 2)]   # 123.6 USDT
    mgr2, _, sent2 = _manager(usdm)
    assert mgr2.place(1, 1, 617_990, 1) is not None and sent2 == [(1, 617_990, 1)]


def test_build_engine_wires_the_filter_and_narrows_the_price_band_to_percent_price():
    from mmcore.config import load_config
    from mmcore.engine.wiring import build_engine
    from mmcore.persistence.journal import NullJournal
    cfg = load_config()
    usdm = load_instrument("binance_usdm", "BTCUSDT")
    eng = build_engine(cfg, usdm, None, NullJournal())
    assert isinstance(eng.orders.exchange_filter, OrderFilter)
    assert eng.gate.config.max_price_deviation == cfg.risk.max_price_deviation == 0.02   # 5% band is wider
    doc = usdm_doc()
    f = filt(doc, "BTCUSDT", "PERCENT_PRICE")
    f.update(multiplierUp="1.0100", multiplierDown="0.9900")                 # synthetic: a 1% band
    narrow = mk.parse_markets(doc, "binance_usdm").instrument("BTCUSDT")
    eng = build_engine(cfg, narrow, None, NullJournal())
    assert eng.gate.config.max_price_deviation == pytest.approx(0.01)


# ------------------------------------------------------------------------------------------ in-test server

class ExchangeInfoServer:
    """aiohttp on 127.0.0.1 (port chosen by the OS) in a thread, serving ``answers[path]`` (status, JSON) and
    recording every request path and query."""

    def __init__(self, answers):
        self.answers = answers
        self.requests = []
        self.port = None
        self._ready = threading.Event()
        self._loop = None

    def __enter__(self):
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        assert self._ready.wait(10), "server did not start"
        return self

    def __exit__(self, *exc):
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def _serve(self):
        from aiohttp import web

        async def handler(request):
            self.requests.append((request.path, dict(request.query)))
            status, body = self.answers.get(request.path, (404, {"code": -1, "msg": "not found"}))
            return web.Response(status=status, text=body if isinstance(body, str) else json.dumps(body),
                                content_type="application/json")

        async def main():
            self._stop = asyncio.Event()
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", handler)
            runner = web.AppRunner(app)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.port = runner.addresses[0][1]
            self._ready.set()
            await self._stop.wait()
            await runner.cleanup()

        self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(main())
        self._loop.close()


def usdm_answer(**btc_filter_changes):
    """A fapi exchangeInfo answer: the pinned symbols plus one more (synthetic SOLUSDT, a copy of ETHUSDT), and
    an assets array, as Binance sends (restricted by the client)."""
    info = usdm_doc()["exchangeInfo"]
    eth = copy.deepcopy(info["symbols"][1])
    eth["symbol"] = "SOLUSDT"
    info["symbols"].append(eth)
    info["assets"] = [{"asset": "USDT", "marginAvailable": True}]
    info["serverTime"] = 1723161256000
    for ftype, changes in btc_filter_changes.items():
        next(f for f in info["symbols"][0]["filters"] if f["filterType"] == ftype).update(changes)
    return info


def spot_answer():
    info = spot_doc()["exchangeInfo"]
    info["serverTime"] = 1723161256000
    return info


def test_markets_command_writes_a_pinned_file_from_a_usdm_exchangeinfo(tmp_path):
    out = tmp_path / "binance_usdm.json"
    with ExchangeInfoServer({"/fapi/v1/exchangeInfo": (200, usdm_answer())}) as srv:
        m = asyncio.run(mk.markets_command("binance_usdm", ["ETHUSDT", "BTCUSDT"], out, srv.url, timeout_s=5))
    assert [p for p, _ in srv.requests] == ["/fapi/v1/exchangeInfo"]          # no sapi, no other market
    assert m.symbols() == ("ETHUSDT", "BTCUSDT")
    doc = json.loads(out.read_text())
    assert doc["written_by"] == "mmcore markets" and doc["venue"] == "binance_usdm"
    assert doc["source"].startswith(f"GET {srv.url}/fapi/v1/exchangeInfo via ccxt ")
    assert "assets" not in doc["exchangeInfo"] and doc["exchangeInfo"]["serverTime"] == 1723161256000
    pinned = {s["symbol"]: s for s in usdm_doc()["exchangeInfo"]["symbols"]}
    assert doc["exchangeInfo"]["symbols"] == [pinned["ETHUSDT"], pinned["BTCUSDT"]]   # verbatim entries
    # a new file: the mmcore entries are the documented defaults
    assert doc["mmcore"]["BTCUSDT"] == {"lot_size": "0.001", "price_precision": 2, "quantity_precision": 3,
                                        "max_qty": "10000000"}
    assert doc["mmcore"]["ETHUSDT"]["max_qty"] == "100000000"
    assert load_markets(out, "binance_usdm").sha256 == hashlib.sha256(out.read_bytes()).hexdigest()


def test_markets_command_keeps_the_mmcore_entries_of_the_file_it_rewrites(tmp_path):
    out = pin(tmp_path, usdm_doc())
    before = usdm_doc()["mmcore"]
    with ExchangeInfoServer({"/fapi/v1/exchangeInfo": (200, usdm_answer(MIN_NOTIONAL={"notional": "100"}))}) as srv:
        m = asyncio.run(mk.markets_command("binance_usdm", ["BTCUSDT", "ETHUSDT", "SOLUSDT"], out, srv.url, 5))
    doc = json.loads(out.read_text())
    assert doc["mmcore"]["BTCUSDT"] == before["BTCUSDT"] and doc["mmcore"]["ETHUSDT"] == before["ETHUSDT"]
    assert doc["mmcore"]["SOLUSDT"]["lot_size"] == "0.001"
    assert m.instrument("BTCUSDT").min_notional == 100


def test_markets_command_spot_asks_for_the_symbols_only(tmp_path):
    out = tmp_path / "binance_spot.json"
    with ExchangeInfoServer({"/api/v3/exchangeInfo": (200, spot_answer())}) as srv:
        m = asyncio.run(mk.markets_command("binance_spot", ["BTCUSDT"], out, srv.url, 5))
    (path, query), = srv.requests
    assert path == "/api/v3/exchangeInfo" and json.loads(query["symbols"]) == ["BTCUSDT"]
    inst = m.instrument("BTCUSDT")
    assert (inst.lot_size, inst.price_precision, inst.max_qty) == (Decimal("1E-8"), 8, Decimal(10_000_000))


def test_markets_command_refuses_bad_answers_and_writes_nothing(tmp_path):
    out = tmp_path / "binance_usdm.json"
    bad_tick = usdm_answer(PRICE_FILTER={"tickSize": "-1"})
    for answer, exc_type, phrase in [
        ((500, {"code": -1000, "msg": "internal"}), MarketsFetchError, "GET http://127.0.0.1"),
        ((200, {"no": "symbols"}), MarketsFetchError, "without a symbols array"),
        ((200, "not json"), MarketsFetchError, "GET http://127.0.0.1"),
        ((200, bad_tick), MarketsError, "filters[PRICE_FILTER].tickSize"),
    ]:
        with ExchangeInfoServer({"/fapi/v1/exchangeInfo": answer}) as srv:
            with pytest.raises(exc_type, match=phrase.replace("[", r"\[").replace("]", r"\]")):
                asyncio.run(mk.markets_command("binance_usdm", ["BTCUSDT"], out, srv.url, 5))
        assert not out.exists() and not (tmp_path / "binance_usdm.json.sha256").exists()
    with ExchangeInfoServer({"/fapi/v1/exchangeInfo": (200, usdm_answer())}) as srv:
        with pytest.raises(MarketsFetchError, match="symbol\\(s\\) XRPUSDT not in the exchangeInfo answer"):
            asyncio.run(mk.markets_command("binance_usdm", ["BTCUSDT", "XRPUSDT"], out, srv.url, 5))


def test_markets_cli_exit_codes(tmp_path):
    out = tmp_path / "m.json"
    with ExchangeInfoServer({"/fapi/v1/exchangeInfo": (200, usdm_answer())}) as srv:
        r = _run_cli("markets", "--venue", "binance_usdm", "--symbols", "BTCUSDT", "--out", out,
                     "--endpoint", srv.url, "--timeout", 5)
        assert r.returncode == 0, r.stderr
        assert f"wrote {out} (BTCUSDT; sha256 " in r.stdout and (tmp_path / "m.json.sha256").exists()
        r = _run_cli("markets", "--venue", "binance_usdm", "--symbols", "btc,", "--out", out, "--endpoint", srv.url)
        assert r.returncode == 2 and "--symbols" in r.stderr and "Traceback" not in r.stderr
        r = _run_cli("markets", "--venue", "binance_usdm", "--symbols", "BTCUSDT", "--out", out,
                     "--endpoint", srv.url + "/fapi")
        assert r.returncode == 2 and "--endpoint" in r.stderr
    r = _run_cli("markets", "--venue", "binance_usdm", "--symbols", "BTCUSDT", "--out", out,
                 "--endpoint", srv.url, "--timeout", 5)                       # server gone: connection refused
    assert r.returncode == 1 and "error: GET http://127.0.0.1" in r.stderr and "Traceback" not in r.stderr


# ------------------------------------------------------------------------------------------ start-time markets

def test_strict_no_rest_markets_uses_the_pinned_file_only(tmp_path):
    path = pin(tmp_path, usdm_doc())
    with ExchangeInfoServer({"/fapi/v1/exchangeInfo": (200, usdm_answer())}) as srv:
        m = asyncio.run(mk.markets_for_run(path, "binance_usdm", ["BTCUSDT"], strict=True, endpoint=srv.url))
    assert srv.requests == [] and m.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_run_without_strict_uses_fresh_filters_and_leaves_the_pinned_file_alone(tmp_path):
    path = pin(tmp_path, usdm_doc())
    before = path.read_bytes()
    with ExchangeInfoServer({"/fapi/v1/exchangeInfo": (200, usdm_answer(MIN_NOTIONAL={"notional": "100"}))}) as srv:
        m = asyncio.run(mk.markets_for_run(path, "binance_usdm", ["BTCUSDT"], strict=False, endpoint=srv.url,
                                           timeout_s=5))
    assert [p for p, _ in srv.requests] == ["/fapi/v1/exchangeInfo"]
    assert m.instrument("BTCUSDT").min_notional == 100 and m.instrument("ETHUSDT").min_notional == 5
    assert path.read_bytes() == before and mk.COUNTERS["refresh_changed"] >= 1


def test_a_failed_refresh_falls_back_to_the_pinned_file_and_is_counted(tmp_path):
    path = pin(tmp_path, usdm_doc())
    n = mk.COUNTERS["refresh_failed"]
    with ExchangeInfoServer({"/fapi/v1/exchangeInfo": (503, {"code": -1001, "msg": "down"})}) as srv:
        m = asyncio.run(mk.markets_for_run(path, "binance_usdm", ["BTCUSDT"], strict=False, endpoint=srv.url,
                                           timeout_s=5))
    assert m.instrument("BTCUSDT").min_notional == 5 and mk.COUNTERS["refresh_failed"] == n + 1


def test_a_run_symbol_missing_from_the_pinned_file_or_a_bad_checksum_stops_the_start(tmp_path):
    path = pin(tmp_path, usdm_doc())
    with pytest.raises(KeyError, match="symbol 'SOLUSDT' not in"):
        asyncio.run(mk.markets_for_run(path, "binance_usdm", ["SOLUSDT"], strict=True))
    path.write_bytes(path.read_bytes() + b" ")
    with pytest.raises(MarketsError, match="checksum mismatch"):
        asyncio.run(mk.markets_for_run(path, "binance_usdm", ["BTCUSDT"], strict=True))


def test_pinned_markets_path_follows_the_config():
    from mmcore.config import load_config
    cfg = load_config()
    assert mk.pinned_markets_path(cfg, "binance_usdm") == USDM_FILE
    assert mk.pinned_markets_path(cfg, "binance_spot") == SPOT_FILE
    cfg = load_config(overrides=["venue.markets_file=/x/m.json", "venue.name=binance_spot"])
    assert mk.pinned_markets_path(cfg, "binance_spot") == Path("/x/m.json")
    assert mk.pinned_markets_path(cfg, "binance_usdm") == USDM_FILE


@pytest.mark.parametrize("venue, klass, options, market, path", [
    ("binance_spot", "binance", {"fetchMarkets": {"types": ["spot"]}}, "BTC/USDT", "/api/v3/exchangeInfo"),
    ("binance_usdm", "binanceusdm", {}, "BTC/USDT:USDT", "/fapi/v1/exchangeInfo"),
])
def test_unmodified_ccxt_load_markets_accepts_the_pinned_exchange_info(venue, klass, options, market, path):
    """What the emulator serves: ccxt's own parser reads the tick, step, limits and post-only order types."""
    from urllib.parse import urlsplit

    import ccxt.async_support as ccxt_async
    info = load_markets(DEFAULT_MARKETS_DIR / f"{venue}.json", venue).exchange_info()
    info["serverTime"] = 1723161256000

    async def go(url):
        ex = getattr(ccxt_async, klass)({"enableRateLimit": False, "timeout": 5000,
                                         "options": {"fetchCurrencies": False, "fetchMargins": False, **options}})
        ex.urls["api"] = {k: url + urlsplit(v).path for k, v in ex.urls["api"].items() if isinstance(v, str)}
        try:
            return await ex.load_markets()
        finally:
            await ex.close()
    with ExchangeInfoServer({path: (200, info)}) as srv:
        markets = asyncio.run(go(srv.url))
    assert [p for p, _ in srv.requests] == [path]
    inst = load_instrument(venue, "BTCUSDT")
    m = markets[market]
    assert m["id"] == "BTCUSDT" and m["active"] is True
    assert Decimal(str(m["precision"]["price"])) == inst.tick_size
    assert Decimal(str(m["precision"]["amount"])) == inst.step_size
    assert Decimal(str(m["limits"]["cost"]["min"])) == inst.min_notional
    assert Decimal(str(m["limits"]["price"]["max"])) == inst.max_price
    assert ("LIMIT_MAKER" in m["info"]["orderTypes"]) if venue == "binance_spot" else ("GTX" in m["info"]["timeInForce"])


def test_loading_pinned_markets_and_replaying_never_imports_ccxt():
    code = ("import sys; from mmcore.instruments import load_instrument; "
            "from mmcore.cli import main; load_instrument('binance_spot', 'ETHUSDT'); "
            "print('ccxt' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "False", r.stderr
