"""Hostile configs, journal paths and recording files (issue 8): each gets one clear error line naming the
field or file, a defined exit code, and never a traceback. Every CLI case runs as a subprocess
(``python -m mmcore ...``). Damaged recordings are synthetic mutations of the real
``data/usdm_btcusdt_20240808.gz`` (truncated, bytes flipped, garbage appended), labelled as such."""
import dataclasses
import gzip
import json
import os
import stat
import subprocess
import sys
from decimal import Decimal

import pytest

from mmcore.config import FIELDS, ConfigError, _dec, _int, _num, load_config, validate
from mmcore.risk_config import RiskConfig

from datafiles import ROOT, SPOT_FILE, USDM_FILE

HUGE_INT = "9" * 400                       # a 400-digit integer
EXTREMES = [HUGE_INT, "1e400", "1.0e+300"]  # YAML 1.1 reads 1e400 (no dot) as a string, 1.0e+300 as a float
NUMERIC_FIELDS = [f.path for f in FIELDS if f.parse in (_num, _int, _dec)]
RISK_NUMERIC = [f.name for f in dataclasses.fields(RiskConfig) if f.name not in ("symbol_whitelist", "flatten_on_halt")]


def cli(*args, cwd=ROOT, timeout=120, driver=None):
    cmd = [sys.executable, *(driver or ["-m", "mmcore"]), *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=timeout)


def error_lines(r) -> list[str]:
    return [ln for ln in r.stderr.splitlines() if ln.startswith(("error:", "config error:"))]


def assert_refused(r, code: int, *phrases: str) -> str:
    """Exit ``code``, no traceback, and one error line containing every phrase; returns that line."""
    assert "Traceback" not in r.stderr + r.stdout, r.stderr[-3000:]
    assert r.returncode == code, (r.returncode, r.stderr[-3000:])
    lines = [ln for ln in error_lines(r) if all(p in ln for p in phrases)]
    assert lines, (phrases, r.stderr[-3000:])
    return lines[0]


# ----------------------------------------------------------------------------------------------------- config

@pytest.mark.parametrize("value", EXTREMES, ids=["400-digit", "1e400", "1.0e+300"])
def test_an_extreme_number_in_every_numeric_field_gives_one_named_line_per_field(value):
    sets = [f"{p}={value}" for p in NUMERIC_FIELDS] + [f"risk.{n}={value}" for n in RISK_NUMERIC]
    r = cli("run", *sum((["--set", s] for s in sets), []))
    assert_refused(r, 2, "config error:")
    lines = error_lines(r)
    for name in NUMERIC_FIELDS + [f"risk.{n}" for n in RISK_NUMERIC]:
        assert any(f"{name} = " in ln for ln in lines), (name, r.stderr[-3000:])
    assert all(len(ln) < 400 for ln in lines)            # a 400-digit value is shown shortened


@pytest.mark.parametrize("value", EXTREMES, ids=["400-digit", "1e400", "1.0e+300"])
@pytest.mark.parametrize("field", NUMERIC_FIELDS + [f"risk.{n}" for n in RISK_NUMERIC])
def test_each_field_alone_with_an_extreme_number_is_a_config_error_naming_it(field, value):
    with pytest.raises(ConfigError) as exc:
        load_config(overrides=[f"{field}={value}"])
    assert any(f"{field} = " in e for e in exc.value.errors), exc.value.errors


def _alias_bomb(section_text: str) -> str:
    """Billion laughs: 10 levels of lists of 10 aliases (10**10 leaves if expanded; a few hundred bytes)."""
    lines = ["laugh0: &l0 [ha, ha, ha, ha, ha, ha, ha, ha, ha, ha]"]
    for i in range(1, 10):
        lines.append(f"laugh{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]")
    return "\n".join(lines) + "\n" + section_text


def test_yaml_alias_bomb_in_known_fields_is_refused_at_once_with_bounded_messages(tmp_path):
    text = (ROOT / "config" / "default.yaml").read_text()
    text = text.replace("  gamma: 25.0", "  gamma: *l9").replace("  net_max: 0.01", "  net_max: *l9")
    text = text.replace("risk:\n", "risk:\n  symbol_whitelist: *l9\n")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(_alias_bomb(text))
    r = cli("run", "--config", bomb, "--set", "strategy.kappa=*undefined", timeout=60)
    assert "not valid YAML" in r.stderr                   # --set goes through the same loader
    r = cli("run", "--config", bomb, timeout=60)          # took 40 s and 3 GB when the message embedded repr()
    assert_refused(r, 2, "strategy.gamma = <list of 10 items>")
    assert_refused(r, 2, "risk.net_max = <list of 10 items>")
    assert_refused(r, 2, "risk.symbol_whitelist = ")
    assert max(len(ln) for ln in r.stderr.splitlines()) < 2000


class _Trap:
    """Synthetic value that fails the test if validation walks, prints or copies it."""

    def _walked(self, *a, **k):
        raise AssertionError("validation walked into a value")

    __repr__ = __str__ = __iter__ = __len__ = __deepcopy__ = __copy__ = __eq__ = __hash__ = __format__ = _walked


def test_validation_neither_walks_nor_prints_nested_values():
    raw = yaml_tree()
    raw["strategy"]["gamma"] = [_Trap()] * 50
    raw["risk"]["net_max"] = [[_Trap()]] * 50
    raw["risk"]["symbol_whitelist"] = [_Trap()] * 3
    with pytest.raises(ConfigError) as exc:
        validate(raw)
    msgs = "\n".join(exc.value.errors)
    assert "strategy.gamma = <list of 50 items>" in msgs and "risk.net_max = <list of 50 items>" in msgs
    assert "risk.symbol_whitelist = <tuple of 3 items>" in msgs


def yaml_tree() -> dict:
    import yaml
    return yaml.safe_load((ROOT / "config" / "default.yaml").read_text())


def test_symbol_whitelist_given_as_a_mapping_is_refused_naming_the_field():
    r = cli("run", "--set", "risk.symbol_whitelist={BTCUSDT: 1}")     # used to pass through tuple(dict)
    assert_refused(r, 2, "risk.symbol_whitelist = {'BTCUSDT': 1}", "list of non-empty strings")


def _synthetic_markets(tmp_path, **changes):
    """A copy of config/markets/ whose USDⓈ-M BTCUSDT MIN_NOTIONAL is changed (synthetic), with its checksum."""
    import json
    import shutil
    from mmcore.venues.binance.markets import checksum_line
    d = tmp_path / "markets"
    shutil.copytree(ROOT / "config" / "markets", d)
    path = d / "binance_usdm.json"
    doc = json.loads(path.read_text())
    for f in doc["exchangeInfo"]["symbols"][0]["filters"]:
        if f["filterType"] == "MIN_NOTIONAL":
            f.update(changes)
    data = json.dumps(doc).encode()
    path.write_bytes(data)
    (d / "binance_usdm.json.sha256").write_text(checksum_line(data, path.name))
    return d


@pytest.mark.parametrize("sets, phrase", [
    (["strategy.order_qty=0.02"], "strategy.order_qty = 0.02: must be <= strategy.max_inventory"),
    (["strategy.order_qty=2000", "strategy.max_inventory=4000", "risk.net_max=null",
      "risk.max_single_trade_usdt=1.0e+9", "risk.max_symbol_notional_usdt=1.0e+9",
      "risk.max_global_notional_usdt=1.0e+9"],
     "strategy.order_qty = 2000: must be <= 1000, the largest order"),
    (["risk.min_price=5000000"], "risk.min_price = 5000000: above the max price"),
    (["risk.max_single_trade_usdt=0.01"], "risk.max_single_trade_usdt = 0.01: below the notional of"),
    (["strategy.min_spread_bps=60", "strategy.max_spread_bps=100"], "strategy.min_spread_bps = 60.0: must be <= risk.max_spread_frac"),
    (["strategy.gamma=100", "strategy.sigma_seed=1000"], "the reservation price moves"),
    # spot: one tick*lot is 1e-10 USDT, so 1e9 USDT is past 2**60 tick*lots (int64 headroom)
    (["risk.max_single_trade_usdt=1.0e+9", "--data", SPOT_FILE], "risk.max_single_trade_usdt = 1000000000.0: must be below"),
], ids=["qty>inventory", "qty>max_order_qty", "min_price>max_price", "notional cap", "spread>risk max", "A-S offset",
        "cap>int64"])
def test_start_refuses_combinations_that_cannot_work(sets, phrase):
    """Each used to start (and place no order, or crash mid-run) with exit 0 or a traceback."""
    args = []
    for s in sets:
        args += ["--set", s] if "=" in str(s) else [s]
    r = cli("run", *args)
    assert_refused(r, 2, "config error:", phrase)


def test_order_qty_below_the_min_notional_at_every_price_is_refused(tmp_path):
    table = _synthetic_markets(tmp_path, notional="100000000")      # synthetic: 1e8 USDT
    r = cli("run", "--set", f"data.markets={table}")
    assert_refused(r, 2, "strategy.order_qty = 0.002: below the min notional 100000000")


def test_unreadable_config_files_are_refused_naming_the_file(tmp_path):
    fifo = tmp_path / "config.fifo"
    os.mkfifo(fifo)
    assert_refused(cli("run", "--config", fifo, timeout=30), 2, str(fifo), "not a regular file (a FIFO")
    big = tmp_path / "big.yaml"
    with open(big, "wb") as fh:
        fh.truncate(64 << 20)                                             # sparse, 64 MiB of zeros
    assert_refused(cli("run", "--config", big, timeout=30), 2, str(big), "larger than")
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"mode: replay\n\xff\xfe\n")
    assert_refused(cli("run", "--config", binary), 2, str(binary), "not UTF-8")


# ---------------------------------------------------------------------------------------------------- journal

@pytest.mark.parametrize("kind, code, phrase", [
    ("devfull", 1, "is a character device, not a regular file"),
    ("not_sqlite", 2, "is not a SQLite database"),
    ("directory", 1, "is a directory, not a regular file"),
    ("empty", 2, "error: --journal: empty path"),
    ("no_dir", 1, "does not exist"),
])
def test_bad_journal_paths_are_refused_naming_the_path(tmp_path, kind, code, phrase):
    if kind == "devfull" and not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    path = {"devfull": "/dev/full", "not_sqlite": tmp_path / "notes.db", "directory": tmp_path,
            "empty": "", "no_dir": tmp_path / "missing" / "j.db"}[kind]
    if kind == "not_sqlite":
        path.write_text("these are notes, not a database; " * 10)
    r = cli("backtest", "--data", USDM_FILE, "--out", tmp_path / "out", "--journal", path)
    line = assert_refused(r, code, phrase)
    assert kind == "empty" or str(path) in line
    assert not os.path.exists("/dev/full.lock")
    if kind == "not_sqlite":
        assert path.read_text().startswith("these are notes")        # untouched


@pytest.mark.parametrize("option", ["--data", "--config"])
def test_an_empty_path_argument_is_refused(option):
    assert_refused(cli("run", option, ""), 2, f"error: {option}: empty path")


def test_journal_path_dev_full_in_the_config_is_refused():
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    assert_refused(cli("run", "--set", "journal.path=/dev/full"), 1, "journal /dev/full is a character device")


_HOLDER = """
import sys
from mmcore.persistence.journal import Journal
j = Journal(sys.argv[1])
print("ready", flush=True)
sys.stdin.read()
"""


def test_a_journal_in_use_by_another_process_names_its_pid(tmp_path):
    db = tmp_path / "j.db"
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, cwd=ROOT)
    try:
        assert holder.stdout.readline().strip() == "ready"
        r = cli("backtest", "--data", USDM_FILE, "--out", tmp_path / "out", "--journal", db)
        assert_refused(r, 1, f"journal {db} is in use by another process (pid {holder.pid}")
    finally:
        holder.stdin.close()
        holder.wait(30)


_FULL_DISK = """
import sys
import mmcore.persistence.journal as journal
_open = journal.Journal.__init__

def small_disk(self, *args, **kwargs):   # SQLite's own "database or disk is full" after a few more pages
    _open(self, *args, **kwargs)
    conn = self._writer.conn             # the writer is idle right after opening
    conn.execute("PRAGMA max_page_count = %d" % (conn.execute("PRAGMA page_count").fetchone()[0] + 40))

journal.Journal.__init__ = small_disk
from mmcore.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_disk_full_mid_backtest_halts_reports_and_names_the_failed_write(tmp_path):
    out = tmp_path / "out"
    r = cli("backtest", "--data", USDM_FILE, "--out", out, "--journal", tmp_path / "j.db", driver=["-c", _FULL_DISK])
    line = assert_refused(r, 1, f"journal {tmp_path / 'j.db'}: write failed:", "database or disk is full",
                          "client order id", "trading halted")
    assert " into orders " in line or " into order_events " in line or " into fills " in line or " into kv " in line
    report = json.loads((out / "report.json").read_text())
    assert report["journal_error"] and "database or disk is full" in report["journal_error"]
    assert report["journal_lost_writes"] > 0 and report["data_complete"] is False
    halt = report["trading_state_changes"][-1]
    assert halt["to"] == "HALTED" and halt["reason"].startswith("journal write failed: ")
    assert halt["ts_ns"] == report["journal_failed_ts_ns"]
    assert report["shutdown_clean"] is True                     # every order cancelled and confirmed
    assert 0 < report["events"] < 93954


# ------------------------------------------------------------------------------------------------ recordings

def _damaged(tmp_path, kind: str):
    """Synthetic damage to the real USDⓈ-M recording."""
    data = USDM_FILE.read_bytes()
    path = tmp_path / f"{kind}.gz"
    if kind == "truncated":
        path.write_bytes(data[:1_000_000])
    elif kind == "crc":
        b = bytearray(data)
        b[-6] ^= 0xFF                              # a byte of the CRC32 in the gzip trailer
        path.write_bytes(bytes(b))
    elif kind == "corrupt":
        b = bytearray(data)
        b[1000] ^= 0xFF                            # inside the first deflate block
        path.write_bytes(bytes(b))
    elif kind == "garbage":
        path.write_bytes(data + b"this is not gzip data")
    elif kind == "not_gzip":
        path.write_bytes(gzip.decompress(data)[:100_000])   # plain text under a .gz name
    return path


@pytest.mark.parametrize("kind, phrase", [
    ("truncated", "truncated at byte 1000000"),
    ("crc", "CRC mismatch"),
    ("garbage", f"trailing garbage at byte {USDM_FILE.stat().st_size}"),
])
def test_damage_found_mid_replay_keeps_the_replayed_part_reports_it_and_exits_1(tmp_path, kind, phrase):
    bad = _damaged(tmp_path, kind)
    out = tmp_path / "out"
    r = cli("backtest", "--data", bad, "--out", out)
    line = assert_refused(r, 1, f"data file {bad}:", phrase, "the replay stopped after line")
    report = json.loads((out / "report.json").read_text())
    assert report["data_complete"] is False and phrase in report["data_error"]
    assert report["events"] > 0 and report["shutdown_clean"] is True       # shutdown ran on what was replayed
    assert f"after line {report['lines']}" in line
    if kind != "truncated":          # the damage is at the end: every line was replayed (data/README.md count)
        assert report["lines"] == 93954


def test_damage_in_the_first_block_or_a_gz_that_is_not_gzip_is_refused_before_the_replay(tmp_path):
    corrupt = _damaged(tmp_path, "corrupt")
    assert_refused(cli("run", "--data", corrupt), 1, f"data file {corrupt}: corrupt compressed data in bytes 0-")
    plain = _damaged(tmp_path, "not_gzip")
    assert_refused(cli("run", "--data", plain), 1, f"data file {plain}: not a gzip file (starts with b'17")


def test_run_shows_the_early_end_in_its_summary(tmp_path):
    bad = _damaged(tmp_path, "truncated")
    r = cli("run", "--data", bad)
    assert_refused(r, 1, "truncated at byte 1000000")
    assert "ended early after" in r.stdout and "shutdown clean" in r.stdout


@pytest.mark.parametrize("command", ["run", "backtest", "book"])
def test_fifo_and_devices_are_refused_before_any_read(tmp_path, command):
    """A FIFO used to block in open() (ignoring SIGTERM); /dev/zero grew memory at 270 MB/s in detection."""
    fifo = tmp_path / "feed.gz"
    os.mkfifo(fifo)
    extra = {"run": [], "backtest": ["--out", tmp_path / "out"], "book": ["--out", tmp_path / "o.csv"]}[command]
    cases = [(fifo, "a FIFO (named pipe)")]
    if command == "run":
        cases += [("/dev/zero", "a character device"), (tmp_path, "a directory")]
    for path, kind in cases:
        r = cli(command, "--data", path, *extra, timeout=30)
        assert_refused(r, 1, f"data file {path}: is {kind}, not a regular file")


def test_a_report_directory_that_is_not_a_directory_is_refused_before_the_replay(tmp_path):
    target = "/dev/full" if os.path.exists("/dev/full") else tmp_path / "file"
    if not os.path.exists(target):
        target.write_text("x")
    r = cli("backtest", "--data", USDM_FILE, "--out", target)
    assert_refused(r, 1, f"{target}: not a directory")
    assert "wrote" not in r.stdout


def test_detection_reads_are_bounded(tmp_path, monkeypatch):
    """A regular file of zeros with no newline (sparse, synthetic): detection gives up after DETECT_MAX_BYTES."""
    from mmcore.venues.binance import recording as rp
    zeros = tmp_path / "zeros.txt"
    with open(zeros, "wb") as fh:
        fh.truncate(256 << 20)
    read = []
    real_open = rp.open_recording

    def counting(path, fileobj=None):
        fh = real_open(path, fileobj)
        class Counting:
            def __getattr__(self, name):
                return getattr(fh, name)
            def readline(self, *a):
                line = fh.readline(*a)
                read.append(len(line))
                return line
            def __iter__(self):
                for line in fh:
                    read.append(len(line))
                    yield line
            def __enter__(self):
                return self
            def __exit__(self, *exc):
                fh.close()
        return Counting()

    monkeypatch.setattr(rp, "open_recording", counting)
    with pytest.raises(ValueError, match="no depthUpdate"):
        rp.detect_market(zeros)
    with pytest.raises(ValueError, match="no symbol"):
        rp.detect_symbol(zeros)
    assert 0 < sum(read) <= 2 * (rp.DETECT_MAX_BYTES + rp.MAX_LINE_BYTES)


def test_a_line_longer_than_the_maximum_is_skipped_and_counted_not_buffered(tmp_path):
    """Synthetic: a valid bookTicker padded with JSON whitespace past MAX_LINE_BYTES, between real lines."""
    from mmcore.venues.binance.recording import MAX_LINE_BYTES, ReplayReader, iter_lines
    src = gzip.open(USDM_FILE, "rb").readlines()[:300]
    ticker = next(ln for ln in src if b"bookTicker" in ln)
    ts, _, js = ticker.partition(b" ")
    huge = ts + b" " + js[:1] + b" " * (MAX_LINE_BYTES + 10) + js[1:]
    f = tmp_path / "long.gz"
    with gzip.open(f, "wb", compresslevel=1) as fh:
        fh.writelines(src[:100] + [huge] + src[100:])
    r = ReplayReader(f, market="binance_usdm")
    events = list(r)
    assert r.malformed == 1 and r.lines == 301 and len(events) == 300
    import io
    pieces = list(iter_lines(io.BytesIO(b"a\n" + b"x" * 10_000 + b"\nb\n"), "mem", max_len=1000))
    assert pieces[0] == b"a\n" and pieces[2] == b"b\n" and len(pieces) == 3 and len(pieces[1]) < 1000


@pytest.mark.parametrize("args, phrase", [
    (["--market", "binance_spot"], "the market is binance_spot but the file is binance_usdm"),
    (["--market", "binance_usdm", "--data", SPOT_FILE], "do not decode as binance_usdm BTCUSDT"),
])
def test_a_forced_wrong_market_is_refused_at_start(args, phrase):
    """Used to run with exit 0 (99.7% malformed lines, or no quote at all after a gap)."""
    for command in ("run", "book"):
        extra = ["--out", "/nonexistent/never-written.csv"] if command == "book" else []
        if command == "book" and "--data" not in args:
            extra += ["--data", USDM_FILE]
        r = cli(command, *args, *extra)
        line = assert_refused(r, 2, phrase)
        assert "data/" in line and ("%" in line or "'pu'" in line)


def test_book_on_a_truncated_file_keeps_its_rows_and_exits_1(tmp_path):
    bad = _damaged(tmp_path, "truncated")
    out = tmp_path / "book.csv"
    r = cli("book", "--data", bad, "--out", out)
    assert_refused(r, 1, f"data file {bad}: truncated at byte 1000000", "stopped after line")
    rows = out.read_text().splitlines()
    assert rows[0].startswith("local_ts_ns") and len(rows) > 100
