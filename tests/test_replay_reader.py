"""Replay reader: timestamp units from digit count, market from content, malformed lines skipped."""
import gzip
import logging

import pytest

from mmcore.venues.binance.replay import BinanceDecoder, MalformedLine, ReplayReader, detect_market
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
    from mmcore.venues.binance.replay import diagnose_gzip
    lines = gzip.open(USDM_FILE, "rb").readlines()[:3000]
    f = tmp_path / "two.gz"
    f.write_bytes(gzip.compress(b"".join(lines[:1500])) + gzip.compress(b"".join(lines[1500:])) + b"\0" * 64)
    r = ReplayReader(f)
    assert sum(1 for _ in r) == 3000 and r.malformed == 0
    assert diagnose_gzip(f) is None and diagnose_gzip(USDM_FILE) is None


def test_diagnose_names_the_damage_with_byte_offsets(tmp_path):
    """Synthetic damage to the real file: truncation, a trailer byte flipped, garbage after the data."""
    from mmcore.venues.binance.replay import diagnose_gzip
    data = USDM_FILE.read_bytes()
    cases = {"trunc.gz": data[:123_456], "crc.gz": data[:-6] + bytes([data[-6] ^ 1]) + data[-5:],
             "tail.gz": data + b"\x1f" + b"junk", "plain.gz": b"1723161255 {}\n"}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
    assert diagnose_gzip(tmp_path / "trunc.gz").startswith("truncated at byte 123456")
    assert diagnose_gzip(tmp_path / "crc.gz").startswith("CRC mismatch at the end of gzip member 1")
    assert diagnose_gzip(tmp_path / "tail.gz").startswith(f"trailing garbage at byte {len(data)}")
    assert diagnose_gzip(tmp_path / "plain.gz").startswith("not a gzip file")
