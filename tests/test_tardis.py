"""Tardis.dev CSV readers (mmcore.data.tardis) and their replay (mmcore.runners.tardis_replay).

The real fixtures are in ``tests/data/tardis/`` (provenance: its README.md; Tardis.dev data out of
nautechsystems/nautilus_trader). Rows written by the tests themselves are SYNTHETIC and labelled so; the damaged
gzip files are synthetic mutations (truncations) of the real ``trades.csv.gz``.
"""
import asyncio
import gzip
import subprocess
import sys
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from mmcore.config import DEFAULT_CONFIG, load_config
from mmcore.data.tardis import (DataFileError, TardisFormatError, TardisReader, TardisReplay, detect_kind,
                                generic_instrument, is_tardis_file, with_grid)
from mmcore.runners.replay import run_session
from mmcore.runners.tardis_replay import build_tardis_session, tardis_summary
from mmcore_ext.book import APPLIED, GAP, SYNC_SPOT, SYNC_USDM, L2Book
from mmcore_ext.events import BookTicker, DepthSnapshot, Trade

from datafiles import ROOT, USDM_FILE

DIR = Path(__file__).resolve().parent / "data" / "tardis"
TRADES = DIR / "trades.csv.gz"
QUOTES = DIR / "quotes.csv.gz"
SNAP25 = DIR / "binance-futures_book_snapshot_25_BTCUSDT.csv"
L2 = DIR / "deribit_incremental_book_L2_BTC-PERPETUAL.csv"
HEADER = "exchange,symbol,timestamp,local_timestamp,"
L2_HEADER = HEADER + "is_snapshot,side,price,amount\n"


def utc_us(text: str) -> int:
    """'2020-02-22 00:00:02.111' (UTC) -> µs since the epoch."""
    dt = datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=timezone.utc)
    return int(dt.timestamp() * 1000) * 1000          # the README's times are to the millisecond


def raw_rows(path: Path) -> list[list[str]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as fh:
        return [line.rstrip("\n").split(",") for line in fh][1:]


@pytest.fixture(scope="module")
def inst2020(usdm):
    """USDⓈ-M BTCUSDT with the 2020 tick 0.01 (the pinned file has today's 0.1)."""
    return with_grid(usdm, "0.01", "0.001")


def write(tmp_path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


# ----------------------------------------------------------------------------------------------- real fixtures

def test_kinds_are_detected_from_the_header():
    assert [detect_kind(p) for p in (TRADES, QUOTES, SNAP25, L2)] == [
        "trades", "quotes", "book_snapshot_25", "incremental_book_L2"]
    assert is_tardis_file(TRADES) and not is_tardis_file(USDM_FILE) and not is_tardis_file(DIR)


def test_trades_fixture_gives_9999_trades_with_contiguous_ids_and_the_documented_first_and_last_rows(inst2020):
    r = TardisReader(TRADES, inst2020)
    trades = list(r)
    assert len(trades) == 9999 and r.rows == 9999 and r.malformed == r.ignored == 0 and not r.problems
    assert all(type(t) is Trade for t in trades)
    assert [t.trade_id for t in trades] == list(range(42377944, 42387943))
    first, last = trades[0], trades[-1]
    # 1582329602111000,1582329602418379,42377944,buy,9682,0.132 (README): µs -> ns, 9682 / 0.01, 0.132 / 0.001
    assert (first.ts_event_ns, first.ts_local_ns) == (1582329602111000_000, 1582329602418379_000)
    assert (first.price, first.qty, first.side) == (968200, 132, 1)
    assert first.ts_event_ns == utc_us("2020-02-22 00:00:02.111") * 1000
    assert last.ts_event_ns == utc_us("2020-02-22 02:05:47.728") * 1000
    assert min(t.price for t in trades) == 965307 and max(t.price for t in trades) == 971070   # 9,653.07-9,710.7
    rows = raw_rows(TRADES)                        # sides and amounts against the raw text, row by row
    assert [t.side for t in trades] == [1 if row[5] == "buy" else -1 for row in rows]
    assert [t.qty for t in trades] == [int(Decimal(row[7]) * 1000) for row in rows]
    assert (last.price, last.qty, last.side) == (966684, 70, -1)     # ...,42387942,sell,9666.84,0.07


def test_quotes_fixture_gives_9999_one_level_books_or_tickers(inst2020):
    r = TardisReader(QUOTES, inst2020)
    books = list(r)
    assert len(books) == 9999 and not r.problems
    first = books[0]       # 1582329601096000,1582329603502092,0.84,9682,9681.92,0.67
    assert type(first) is DepthSnapshot
    assert first.bids == [(968192, 670)] and first.asks == [(968200, 840)]
    assert (first.ts_event_ns, first.ts_local_ns) == (1582329601096000_000, 1582329603502092_000)
    assert books[-1].ts_event_ns == utc_us("2020-02-22 00:03:47.061") * 1000
    assert [b.last_update_id for b in books] == list(range(1, 10000))       # synthetic, consecutive
    tickers = list(TardisReader(QUOTES, inst2020, quotes_as="ticker"))
    assert all(type(t) is BookTicker for t in tickers) and len(tickers) == 9999
    assert [(t.bid_px, t.bid_qty, t.ask_px, t.ask_qty) for t in tickers] == [
        (b.bids[0] + b.asks[0]) for b in books]


def test_book_snapshot_25_fixture_gives_10_snapshots_of_25_levels(inst2020):
    r = TardisReader(SNAP25, inst2020)
    snaps = list(r)
    assert len(snaps) == 10 and not r.problems
    assert all(s.n_bids == 25 and s.n_asks == 25 for s in snaps)
    s = snaps[0]           # asks[0] 11657.08 x 1.714, bids[0] 11657.07 x 10.896, asks[24] 11659.34 x 0.618
    assert s.asks[0] == (1165708, 1714) and s.bids[0] == (1165707, 10896) and s.asks[24] == (1165934, 618)
    assert s.ts_event_ns == utc_us("2020-09-01 00:00:03.696") * 1000
    for snap, row in zip(snaps, raw_rows(SNAP25)):                         # every level against the raw text
        assert snap.asks == [(int(Decimal(row[4 + 4 * i]) * 100), int(Decimal(row[5 + 4 * i]) * 1000))
                             for i in range(25)]
        assert snap.bids == [(int(Decimal(row[6 + 4 * i]) * 100), int(Decimal(row[7 + 4 * i]) * 1000))
                             for i in range(25)]


def test_incremental_fixture_is_one_snapshot_of_15_asks():
    inst = generic_instrument("deribit", "BTC-PERPETUAL", "0.5", "1")      # Deribit: tick 0.5 USD, 1 USD contracts
    r = TardisReader(L2, inst)
    events = list(r)
    assert r.rows == 15 and not r.problems
    assert len(events) == 1 and type(events[0]) is DepthSnapshot
    s = events[0]
    assert s.n_bids == 0 and s.n_asks == 15
    assert s.asks[0] == (12843, 18640) and s.asks[-1] == (12857, 39950)    # 6421.5 x 18640 ... 6428.5 x 39950
    assert s.ts_event_ns == utc_us("2020-04-01 00:00:00.245") * 1000


def test_the_pinned_tick_refuses_2020_prices_naming_one_and_the_option(usdm):
    with pytest.raises(TardisFormatError, match=r"9681\.92: not a multiple of the tick 0\.1.*--tick-size"):
        TardisReader(QUOTES, usdm)
    with pytest.raises(TardisFormatError, match="off the grid"):
        TardisReader(TRADES, usdm)
    r = TardisReader(TRADES, usdm, check=False)          # without the check: every off-grid row skipped, counted
    kept = list(r)
    off = sum(1 for row in raw_rows(TRADES) if Decimal(row[6]) % Decimal("0.1"))
    assert off > 5000 and r.problems == {"off_grid": off} and len(kept) == 9999 - off
    assert all(t.price * Decimal("0.1") == Decimal(row[6]) for t, row in
               zip(kept, (row for row in raw_rows(TRADES) if not Decimal(row[6]) % Decimal("0.1"))))


# ------------------------------------------------------------------------------------------------ hostile input

def test_a_header_of_another_kind_is_refused_naming_the_file_and_columns(tmp_path, inst2020):
    bad = write(tmp_path, "x.csv", "exchange,symbol,timestamp,local_timestamp,funding_rate\nx,y,1,1,0.1\n")  # SYNTHETIC
    with pytest.raises(TardisFormatError, match=r"x\.csv: not a Tardis CSV .*funding_rate"):
        TardisReader(bad, inst2020)
    with pytest.raises(TardisFormatError, match="usdm_btcusdt_20240808.gz: not a Tardis CSV"):
        TardisReader(USDM_FILE, inst2020)
    with pytest.raises(TardisFormatError, match="empty file"):
        TardisReader(write(tmp_path, "e.csv", ""), inst2020)


def test_bad_rows_are_counted_by_reason_and_skipped(tmp_path, inst2020, caplog):
    rows = [  # SYNTHETIC rows (prices near the fixture's)
        "binance-futures,BTCUSDT,1582329602111000,1582329602418379,1,buy,9682,0.132",       # ok
        "garbage,,",                                                                          # malformed: columns
        "binance-futures,BTCUSDT,15823296x2111000,1582329602418380,2,buy,9682,0.1",           # malformed: time
        "binance-futures,BTCUSDT,1582329602111000,1582329602418381,3,buy,9682.001,0.1",       # off grid (tick)
        "binance-futures,BTCUSDT,1582329602111000,1582329602418382,4,buy,9682,0.0001",        # off grid (lot)
        "binance-futures,BTCUSDT,1582329602111000,1582329602418383,5,buy,1e400,0.1",          # absurd: malformed
        "binance-futures,BTCUSDT,1582329602111000,1582329602418384,6,buy,99999999999999999999,0.1",  # > int64 ticks
        "binance-futures,BTCUSDT,1582329602111000,1582329602418385,7,buy,-9682,0.1",          # out of range
        "binance-futures,BTCUSDT,1582329602111000,1582329602418386,8,buy,9682,0",             # qty 0 trade
        "binance-futures,BTCUSDT,1582329602111000,99999999999999999,9,buy,9682,0.1",          # 17-digit µs: malformed
        "binance-futures,BTCUSDT,1582329602111000,1582329602418300,10,buy,9682,0.1",          # back in time
        "binance-futures,BTCUSDT,1582329602111000,1582329602418387,11,unknown,9682,0.1",      # unknown side
        "binance-futures,ETHUSDT,1582329602111000,1582329602418388,12,buy,268,0.1",           # other symbol
        "binance-futures,BTCUSDT,1582329602111000,1582329602418389,13,sideways,9682,0.1",     # malformed side
        "binance-futures,BTCUSDT,1582329602111000,1582329602418390,t-14,sell,9.682e3,1E-3",   # ok: id, exponents
        "\xff\xfe",                                                                           # not ASCII
    ]
    p = tmp_path / "t.csv"
    p.write_bytes(("exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n" + "\n".join(rows) + "\n")
                  .encode("latin-1"))
    r = TardisReader(p, inst2020, check=False)
    trades = list(r)
    assert [(t.trade_id, t.price, t.qty, t.side) for t in trades] == [(1, 968200, 132, 1), (-1, 968200, 1, -1)]
    assert r.problems == {"malformed": 6, "off_grid": 2, "out_of_range": 3, "out_of_order": 1, "unknown_side": 1,
                          "other_symbol": 1, "synthetic_trade_id": 1}
    assert r.malformed == 12 and r.ignored == 2
    assert "line 3: malformed, skipped" in caplog.text and "9682.001: not a multiple of the tick 0.01" in caplog.text


def test_a_file_of_mostly_bad_rows_is_refused(tmp_path, inst2020):
    text = "exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n" + "x,y\n" * 10   # SYNTHETIC
    with pytest.raises(TardisFormatError, match="10 of the first 10 trades rows cannot be used"):
        TardisReader(write(tmp_path, "bad.csv", text), inst2020)


def test_a_truncated_gz_yields_the_rows_before_the_damage_then_a_data_file_error(tmp_path, inst2020):
    data = TRADES.read_bytes()
    cut = tmp_path / "trades_cut.csv.gz"                  # SYNTHETIC damage: the real file cut in half
    cut.write_bytes(data[: len(data) // 2])
    r = TardisReader(cut, inst2020)
    got = []
    with pytest.raises(DataFileError, match=r"trades_cut.csv.gz: truncated at byte \d+"):
        for ev in r:
            got.append(ev)
    assert 3000 < len(got) < 9999 and [t.trade_id for t in got] == list(range(42377944, 42377944 + len(got)))
    notgz = write(tmp_path, "plain.csv.gz", "exchange,symbol")
    with pytest.raises(DataFileError, match="not a gzip file"):
        TardisReader(notgz, inst2020)


# ---------------------------------------------------------------------- incremental_book_L2 and the book's ids

L2_ROWS = [  # SYNTHETIC incremental_book_L2 rows (tick 0.5, lot 1)
    "deribit,BTC-PERPETUAL,1000,1000,false,bid,99,5",        # before the first snapshot: skipped
    "deribit,BTC-PERPETUAL,2000,2000,true,bid,100,10",
    "deribit,BTC-PERPETUAL,2000,2000,true,ask,101,20",
    "deribit,BTC-PERPETUAL,2000,2000,true,ask,102,30",
    "deribit,BTC-PERPETUAL,3000,3000,false,bid,100.5,7",     # one message: two rows, same local_timestamp
    "deribit,BTC-PERPETUAL,3000,3000,false,ask,101,0",       # amount 0 deletes the level
    "deribit,BTC-PERPETUAL,4000,4000,false,bid,100,0",
    "deribit,BTC-PERPETUAL,5000,5000,true,bid,90,1",         # a snapshot after updates: the book is reset
    "deribit,BTC-PERPETUAL,5000,5000,true,ask,95,2",
    "deribit,BTC-PERPETUAL,6000,6000,false,ask,96,3",
]


def _l2(tmp_path, rows):
    inst = generic_instrument("deribit", "BTC-PERPETUAL", "0.5", "1")
    return TardisReader(write(tmp_path, "l2.csv", L2_HEADER + "\n".join(rows) + "\n"), inst, check=False)


@pytest.mark.parametrize("rule", [SYNC_SPOT, SYNC_USDM], ids=["spot", "usdm"])
def test_incremental_rows_group_into_events_that_both_book_rules_apply(tmp_path, rule):
    r = _l2(tmp_path, L2_ROWS)
    events = list(r)
    assert [type(e).__name__ for e in events] == ["DepthSnapshot", "DepthDiff", "DepthDiff", "DepthSnapshot",
                                                  "DepthDiff"]
    assert r.problems == {"before_snapshot": 1}
    assert events[1].bids == [(201, 7)] and events[1].asks == [(202, 0)] and events[1].ts_local_ns == 3_000_000
    book = L2Book(rule)
    tops = []
    for ev in events:
        if type(ev) is DepthSnapshot:
            book.load_snapshot(ev)
        else:
            assert book.apply_diff(ev) == APPLIED
        tops.append((book.best_bid_px(), book.best_ask_px(), book.best_ask_qty()))
    assert tops == [(200, 202, 20), (201, 204, 30), (201, 204, 30), (180, 190, 2), (180, 190, 2)]
    assert book.levels(1, 10) == [(180, 1)] and book.levels(-1, 10) == [(190, 2), (192, 3)]
    assert book.gaps == 0


@pytest.mark.parametrize("rule", [SYNC_SPOT, SYNC_USDM], ids=["spot", "usdm"])
def test_a_lost_incremental_row_makes_the_book_see_a_gap_until_the_next_snapshot(tmp_path, rule):
    rows = list(L2_ROWS)
    rows[4] = "deribit,BTC-PERPETUAL,3000,3000,false,bid,100.25,7"     # off the 0.5 grid: lost
    r = _l2(tmp_path, rows)
    events = list(r)
    assert r.problems["off_grid"] == 1
    book = L2Book(rule)
    results = []
    for ev in events:
        results.append(book.load_snapshot(ev) if type(ev) is DepthSnapshot else book.apply_diff(ev))
    assert results[1] == GAP and book.gaps == 1           # the diff after the lost row does not chain
    assert book.synced and book.best_bid_px() == 180      # resynced at the next snapshot, then applied
    assert results[-1] == APPLIED and book.levels(-1, 10) == [(190, 2), (192, 3)]


def test_a_snapshot_run_with_a_lost_row_is_not_used(tmp_path):
    rows = list(L2_ROWS)
    rows[8] = "deribit,BTC-PERPETUAL,5000,5000,true,ask,95,abc"         # the second snapshot loses a row
    r = _l2(tmp_path, rows)
    events = list(r)
    assert [type(e).__name__ for e in events] == ["DepthSnapshot", "DepthDiff", "DepthDiff", "DepthDiff"]
    assert r.problems["snapshots_dropped"] == 1 and r.problems["malformed"] == 1
    book = L2Book(SYNC_USDM)
    book.load_snapshot(events[0])
    assert [book.apply_diff(e) for e in events[1:]] == [APPLIED, APPLIED, GAP]


# --------------------------------------------------------------------------------------------------- replay

def test_merged_trades_and_quotes_replay_through_the_engine(inst2020):
    s = build_tardis_session(load_config(DEFAULT_CONFIG), [TRADES, QUOTES], "0.01", "0.001")
    assert s.instrument.tick_size == Decimal("0.01") and s.instrument.market == "binance_usdm"
    asyncio.run(run_session(s))
    summary = tardis_summary(s)
    quotes, trades = raw_rows(QUOTES), raw_rows(TRADES)
    last_local = int(quotes[-1][3])
    in_window = sum(1 for t in trades if int(t[3]) <= last_local)     # trades up to the last quote (its time)
    assert summary["events"] == 9999 + in_window and s.reader.after_book_end == 9999 - in_window
    assert summary["tardis_problems"] == {"after_book_end": 9999 - in_window}
    assert summary["data_complete"] and summary["shutdown_clean"] and summary["data_error"] is None
    assert summary["gaps"] == 0 and summary["malformed_lines"] == 0 and summary["crossed_book_events"] == 0
    assert s.engine.counters["snapshots"] == 9999
    book = s.engine.book              # the book's top is the last quote: ...,0.031,9672.09,9671.19,0.012
    assert (book.best_bid_px(), book.best_bid_qty(), book.best_ask_px(), book.best_ask_qty()) == (
        967119, 12, 967209, 31)
    assert summary["orders_placed"] > 0 and summary["fill_count"] == len(s.engine.fills)
    assert s.last_ts_ns == last_local * 1000


def test_two_book_files_are_refused(inst2020):
    with pytest.raises(TardisFormatError, match="at most one book file"):
        TardisReplay([QUOTES, SNAP25], inst2020)


def cli(*args):
    return subprocess.run([sys.executable, "-m", "mmcore", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, timeout=180)


def test_cli_run_replays_the_pair_detected_by_header():
    r = cli("run", "--data", TRADES, "--data", QUOTES, "--tick-size", "0.01", "--lot-size", "0.001")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Traceback" not in r.stdout + r.stderr
    assert "trades.csv.gz (trades), quotes.csv.gz (quotes)" in r.stdout and "shutdown clean" in r.stdout
    assert "after_book_end" in r.stdout


@pytest.mark.parametrize("args, code, phrase", [
    (["--data", QUOTES], 2, "9681.92: not a multiple of the tick 0.1"),
    (["--data", USDM_FILE, "--format", "tardis"], 2, "not a Tardis CSV file"),
    (["--data", USDM_FILE, "--tick-size", "0.01"], 2, "--tick-size / --lot-size apply to Tardis CSV"),
    (["--data", USDM_FILE, "--data", USDM_FILE], 2, "a Binance recording is one file"),
    (["--data", QUOTES, "--tick-size", "zero"], 2, "--tick-size 'zero'"),
    (["--data", L2, "--tick-size", "0.5"], 2, "Tardis exchange 'deribit' has no mmcore market"),
])
def test_cli_refusals_are_one_line_and_an_exit_code(args, code, phrase):
    r = cli("run", *args)
    assert "Traceback" not in r.stdout + r.stderr
    assert r.returncode == code, r.stderr[-2000:]
    assert any(ln.startswith("error:") and phrase in ln for ln in r.stderr.splitlines()), r.stderr[-2000:]


def test_cli_run_on_a_truncated_tardis_file_reports_the_part_replayed_and_exits_1(tmp_path):
    data = TRADES.read_bytes()
    cut = tmp_path / "trades_cut.csv.gz"                  # SYNTHETIC damage: the real file cut in half
    cut.write_bytes(data[: len(data) // 2])
    r = cli("run", "--data", cut, "--data", QUOTES, "--tick-size", "0.01")
    assert "Traceback" not in r.stdout + r.stderr
    assert r.returncode == 1 and "truncated at byte" in r.stderr and "shutdown clean" in r.stdout
