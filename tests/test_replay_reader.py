"""Replay reader: timestamp units from digit count, market from content, malformed lines skipped."""
import gzip
import logging

import pytest

from mmcore.venues.binance.recording import BinanceDecoder, MalformedLine, ReplayReader, detect_market
from mmcore_ext.events import BookTicker, DepthDiff, DepthSnapshot, Trade

from datafiles import SPOT_FILE, USDM_2023_FILE, USDM_FILE


@pytest.mark.parametrize("text, ns", [(b"1723161255030314667", 1723161255030314667),
                                      (b"1680652700423575", 1680652700423575000),
                                      (b"1680652700423", 1680652700423000000),
                                      (b"1680652700", 1680652700000000000)])
def test_local_timestamp_unit_comes_from_digit_count(text, ns, usdm):
    line = text + b' {"stream":"btcusdt@trade","data":{"e":"trade","E":1,"s":"BTCUSDT","t":7,"p":"1.0",' \
                  b'"q":"0.001","m":false}}'
    assert BinanceDecoder(usdm).decode(line).ts_local_ns == ns


BOOK_TICKER = b'1723161255030314667 {"stream":"btcusdt@bookTicker","data":{"e":"bookTicker","u":1,"s":"BTCUSDT",'


@pytest.mark.parametrize("line", [
    b"", b"123", b"17231612550 {}", b"1723161255030314667 [1]",
    b"1723161255030314667 {\"data\": 5}", b"172316125503031466x {}",
    b"99999999999999999999 {}",                      # 20 digits: not a timestamp (and would overflow)
    b"9999999999999999999 {}",                       # 19 digits past int64
    b"9999999999 {}",                                # seconds past year 2262 in ns
    BOOK_TICKER + b'"b":"0","B":"1","a":"61800.1","A":"1"}}',          # bid price 0
    BOOK_TICKER + b'"b":"61800.0","B":"-1","a":"61800.1","A":"1"}}',   # negative quantity
    None])
def test_bad_lines_raise_malformed_line(line, usdm):
    with pytest.raises(MalformedLine):
        BinanceDecoder(usdm).decode(line)


def test_market_is_detected_from_content():
    assert detect_market(USDM_FILE) == "binance_usdm"
    assert detect_market(SPOT_FILE) == "binance_spot"


def test_real_usdm_file_decodes_to_typed_events_with_exact_ticks():
    r = ReplayReader(USDM_FILE)
    counts = {}
    first = {}
    for ev in r:
        counts[type(ev)] = counts.get(type(ev), 0) + 1
        first.setdefault(type(ev), ev)
    assert counts == {DepthDiff: 6551, BookTicker: 66089, Trade: 21313, DepthSnapshot: 1}
    assert r.malformed == 0 and r.lines == 93954
    t = first[Trade]       # {"t":5266583935,"p":"61800.30","q":"0.006","m":false}
    assert (t.trade_id, t.price, t.qty, t.side) == (5266583935, 618003, 6, 1)
    assert t.ts_local_ns == 1723161255088176367 and t.ts_event_ns == 1723161256322 * 1_000_000
    s = first[DepthSnapshot]
    assert s.last_update_id == 5123107852948 and s.n_bids == 1000 and s.n_asks == 1000


def test_older_microsecond_recording_is_read_in_ns():
    r = ReplayReader(USDM_2023_FILE)
    ev = next(iter(r))
    assert 1_680_000_000_000_000_000 < ev.ts_local_ns < 1_690_000_000_000_000_000


def test_malformed_lines_are_counted_and_named_never_raised(tmp_path, caplog):
    src = gzip.open(USDM_FILE, "rb").readlines()[:200]
    bad = list(src)
    bad.insert(5, b"not a line\n")
    bad.insert(10, b"1723161255088176367 {\"stream\":\"btcusdt@trade\",\"data\":{\"e\":\"trade\"\n")
    bad.insert(15, b"1723161255088176367 {\"stream\":\"btcusdt@trade\",\"data\":{\"e\":\"trade\",\"E\":1,"
                   b"\"s\":\"BTCUSDT\",\"t\":1,\"p\":\"61800.33\",\"q\":\"0.001\",\"m\":true}}\n")  # off tick
    bad.insert(20, b"17231612550 {}\n")    # 11-digit timestamp
    f = tmp_path / "bad.gz"
    with gzip.open(f, "wb") as fh:
        fh.writelines(bad)
    with caplog.at_level(logging.WARNING, logger="mmcore.replay"):
        events = list(ReplayReader(f, market="binance_usdm"))
    clean = tmp_path / "clean.gz"
    with gzip.open(clean, "wb") as fh:
        fh.writelines(src)
    assert len(events) == len(list(ReplayReader(clean, market="binance_usdm")))
    r = ReplayReader(f, market="binance_usdm")
    n = sum(1 for _ in r)
    assert r.malformed == 4 and r.lines == 204 and n == len(events)
    assert "line 6:" in caplog.text and "line 11:" in caplog.text and "line 21:" in caplog.text


def test_valid_multi_member_and_zero_padded_gzip_is_read_whole_without_error(tmp_path):
    """Synthetic: the real file's lines split into two gzip members, then zero padding (both allowed by gzip)."""
    from mmcore.venues.binance.recording import diagnose_gzip
    lines = gzip.open(USDM_FILE, "rb").readlines()[:3000]
    f = tmp_path / "two.gz"
    f.write_bytes(gzip.compress(b"".join(lines[:1500])) + gzip.compress(b"".join(lines[1500:])) + b"\0" * 64)
    r = ReplayReader(f)
    assert sum(1 for _ in r) == 3000 and r.malformed == 0
    assert diagnose_gzip(f) is None and diagnose_gzip(USDM_FILE) is None


def test_diagnose_names_the_damage_with_byte_offsets(tmp_path):
    """Synthetic damage to the real file: truncation, a trailer byte flipped, garbage after the data."""
    from mmcore.venues.binance.recording import diagnose_gzip
    data = USDM_FILE.read_bytes()
    cases = {"trunc.gz": data[:123_456], "crc.gz": data[:-6] + bytes([data[-6] ^ 1]) + data[-5:],
             "tail.gz": data + b"\x1f" + b"junk", "plain.gz": b"1723161255 {}\n"}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
    assert diagnose_gzip(tmp_path / "trunc.gz").startswith("truncated at byte 123456")
    assert diagnose_gzip(tmp_path / "crc.gz").startswith("CRC mismatch at the end of gzip member 1")
    assert diagnose_gzip(tmp_path / "tail.gz").startswith(f"trailing garbage at byte {len(data)}")
    assert diagnose_gzip(tmp_path / "plain.gz").startswith("not a gzip file")


# ---------------------------------------------------------------- hostile numbers at the venue edge (issue 8)
# Synthetic lines (labelled): real USDⓈ-M frames with one field changed. Instrument table: BTCUSDT USDⓈ-M tick 0.1,
# lot 0.001, max_price 4529764 (45297640 ticks), max_qty 21000000 (21e9 lots).
TS = b"1723161255030314667 "


def _depth(U=5, u=6, pu=4, E=1723161256299, b='[["61800.20","2.507"]]', a='[["61800.30","3.330"]]'):
    pu_part = "" if pu is None else f'"pu":{pu},'
    return TS + (f'{{"stream":"btcusdt@depth@0ms","data":{{"e":"depthUpdate","E":{E},"T":1,"s":"BTCUSDT",'
                 f'"U":{U},"u":{u},{pu_part}"b":{b},"a":{a}}}}}').encode()


def _trade(p='"61800.30"', q='"0.006"', t=5266583935, E=1723161256322):
    return TS + (f'{{"stream":"btcusdt@trade","data":{{"e":"trade","E":{E},"T":1,"s":"BTCUSDT","t":{t},'
                 f'"p":{p},"q":{q},"X":"MARKET","m":false}}}}').encode()


def _ticker(u=5123107839020, b='"61800.20"', B='"2.507"', a='"61800.30"', A='"2.510"'):
    return TS + (f'{{"stream":"btcusdt@bookTicker","data":{{"e":"bookTicker","u":{u},"s":"BTCUSDT","b":{b},'
                 f'"B":{B},"a":{a},"A":{A},"T":1,"E":1}}}}').encode()


def _snapshot(last=5123107852948, bids='[["61800.20","2.909"]]', asks='[["61800.30","1.000"]]'):
    return TS + f'{{"lastUpdateId":{last},"E":1,"T":1,"bids":{bids},"asks":{asks}}}'.encode()


def test_decoder_takes_its_bounds_from_the_instrument(usdm, spot):
    assert (BinanceDecoder(usdm).max_price_ticks, BinanceDecoder(usdm).max_qty_lots) == (45_297_640, 21_000_000_000)
    assert BinanceDecoder(spot).max_price_ticks == 100_000_000 and BinanceDecoder(spot).max_qty_lots == 21 * 10**14


@pytest.mark.parametrize("line", [
    _depth(b='[["4529764.0","1.000"]]'),                  # exactly max_price
    _depth(a='[["0.1","21000000.000"]]'),                 # the smallest price, exactly max_qty
    _depth(b='[["61800.20","0.000"]]'),                   # quantity 0 deletes
    _depth(U=0, u=0, pu=0),                               # ids at 0
    _depth(U=2**62, u=2**62, pu=2**62),                   # ids at the bound
    _depth(E=(2**63 - 1) // 10**6),                       # the last ms whose ns value fits int64
    _trade(p='"4529764.0"', q='"21000000"'),
    _ticker(b='"4529764.0"', B='"0"', a='"4529764.0"', A='"21000000.000"'),
    _snapshot(last=0, bids='[["4529764.0","21000000.000"]]'),
])
def test_values_at_the_bounds_decode(line, usdm):
    assert BinanceDecoder(usdm).decode(line) is not None


@pytest.mark.parametrize("line, field", [
    (_depth(b='[["922337203685477580.7","1.000"]]'), "max_price"),     # ~INT64_MAX ticks: crashed the book
    (_depth(b='[["4529764.1","1.000"]]'), "max_price"),                # one tick above PRICE_FILTER.maxPrice
    (_depth(a='[["-61800.30","1.000"]]'), "max_price"),
    (_depth(a='[["0.0","1.000"]]'), "max_price"),
    (_depth(b='[["61800.20","21000000.001"]]'), "max_qty"),           # one lot above max_qty
    (_depth(b='[["61800.20","9223372036854775.807"]]'), "max_qty"),   # INT64_MAX lots
    (_depth(b='[["61800.20","-0.001"]]'), "max_qty"),
    (_depth(U=7, u=6), "U=7 > u=6"),                                   # aborted the whole replay before
    (_depth(U=-1), "'U'"), (_depth(u=2**62 + 1), "'u'"), (_depth(pu=-1), "'pu'"), (_depth(pu=2**63 - 1), "'pu'"),
    (_depth(U=1.5), "'U'"), (_depth(u='"6"'), "'u'"), (_depth(U="true"), "'U'"),
    (_depth(E=10**17), "'E'"), (_depth(E=-1), "'E'"), (_depth(E=(2**63 - 1) // 10**6 + 1), "'E'"),
    (_trade(E=10**17), "'E'"),                                         # wrapped silently before
    (_trade(q='"0.000"'), "trade 'q'"), (_trade(p='"4529764.1"'), "trade 'p'"), (_trade(t=-5), "'t'"),
    (_ticker(u=-1), "'u'"), (_ticker(u=2**62 + 1), "'u'"), (_ticker(b='"4529764.1"'), "bookTicker 'b'"),
    (_ticker(A='"21000000.001"'), "bookTicker 'A'"),
    (_snapshot(last=-1), "'lastUpdateId'"), (_snapshot(last=2**62 + 1), "'lastUpdateId'"),
    (_snapshot(asks='[["922337203685477580.7","1.000"]]'), "max_price"),
])
def test_out_of_range_numbers_are_malformed_lines_naming_the_field(line, field, usdm):
    with pytest.raises(MalformedLine, match=field.replace("[", r"\[")):
        BinanceDecoder(usdm).decode(line)


@pytest.mark.parametrize("damage", ["crc", "truncated", "corrupt"])
def test_isal_and_stdlib_gzip_yield_the_same_lines_before_the_damage(tmp_path, monkeypatch, damage):
    """ISA-L gzip (isal) reads 2x faster than the stdlib; on a damaged file both readers give every line before
    the damage and the same DataFileError (the ISA-L path re-reads the rest with the stdlib)."""
    import gzip
    from mmcore.venues.binance import recording as rec
    data = bytearray(USDM_FILE.read_bytes())
    if damage == "crc":
        data[-8] ^= 0xFF                                   # the member's CRC32
    elif damage == "truncated":
        del data[len(data) * 2 // 3:]
    else:
        for i in range(len(data) // 2, len(data) // 2 + 64):
            data[i] ^= 0x5A
    bad = tmp_path / "bad.gz"
    bad.write_bytes(bytes(data))
    results = {}
    for name, reader in (("default", rec.GzipReader), ("stdlib", gzip.GzipFile)):
        monkeypatch.setattr(rec, "GzipReader", reader)
        raw = rec.open_data_file(bad)
        lines = []
        with pytest.raises(rec.DataFileError) as exc:
            for line in rec.iter_lines(rec.open_recording(bad, raw), bad):
                lines.append(line)
        raw.close()
        results[name] = (len(lines), lines[-1] if lines else None, exc.value.problem)
    assert results["default"] == results["stdlib"]
    assert results["stdlib"][0] > (90_000 if damage == "crc" else 1000)
