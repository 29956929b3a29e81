"""Hostile numbers in a recording, end to end (issue 8): the CLI and the replay on the real USDⓈ-M file with one
line mutated (synthetic mutations of real data, labelled as such at each use).

The CLI runs in a child process, so a crash of the compiled core shows as a return code (134/139 before the
fix), not as a dead test run.
"""
import asyncio
import gzip
import json
import os
import subprocess
import sys

import orjson
import pytest

from mmcore.config import load_config
from mmcore.runners.replay import build_session, run_session, summarize

from datafiles import ROOT, USDM_FILE

N_LINES = 3000          # the snapshot is line 55; 3000 lines keep the child runs short


def real_lines(n=N_LINES):
    with gzip.open(USDM_FILE, "rb") as fh:
        return [raw for _, raw in zip(range(n), fh)] if n else fh.readlines()


def first_diff_after_snapshot(lines):
    snap = next(i for i, raw in enumerate(lines) if b'"lastUpdateId"' in raw)
    return next(i for i in range(snap + 1, len(lines)) if b'"depthUpdate"' in lines[i])


def mutate(lines, i, change):
    """Line ``i`` with its JSON passed through ``change(data)`` (synthetic mutation of a real line)."""
    sp = lines[i].index(b" ")
    msg = orjson.loads(lines[i][sp + 1:])
    change(msg["data"])
    out = list(lines)
    out[i] = lines[i][:sp + 1] + orjson.dumps(msg) + b"\n"
    return out


def write(tmp_path, lines, name="mutated.gz"):
    path = tmp_path / name
    with gzip.open(path, "wb") as fh:
        fh.writelines(lines)
    return path


def cli(*args):
    """Run ``python -m mmcore ARGS`` in a child; returns (return code, stdout + stderr). The log handler writes
    to the terminal; a wide COLUMNS keeps each log line on one line."""
    r = subprocess.run([sys.executable, "-m", "mmcore", *map(str, args)], cwd=ROOT, capture_output=True,
                       text=True, timeout=300, env={**os.environ, "COLUMNS": "1000"})
    return r.returncode, r.stdout + r.stderr


def near_int64_max_bid(data):
    data["b"].append(["922337203685477580.7", "1.000"])      # 9223372036854775807 ticks on a 0.1 tick


@pytest.mark.parametrize("command", ["book", "backtest"])
def test_near_int64_max_price_is_a_skipped_line_not_a_crash(tmp_path, command):
    # Synthetic: the first depth diff after the snapshot of the real file gets one bid near INT64_MAX ticks.
    # Before: glibc abort (book: 134) / segfault (backtest: 139) from the book's window arithmetic.
    lines = real_lines()
    i = first_diff_after_snapshot(lines)
    path = write(tmp_path, mutate(lines, i, near_int64_max_bid))
    out = tmp_path / ("book.csv" if command == "book" else "out")
    rc, text = cli(command, "--data", path, "--out", out)
    assert rc == 0, (rc, text[-3000:])
    assert f"line {i + 1}: malformed, skipped" in text and "max_price" in text and "Traceback" not in text
    if command == "backtest":
        report = json.loads((out / "report.json").read_text())
        assert report["malformed_lines"] == 1 and report["shutdown_clean"] is True
    else:
        assert "malformed lines 1" in text


def test_diff_with_U_above_u_is_a_skipped_line_and_the_replay_reports(tmp_path):
    # Synthetic: a depth diff of the real file with U and u swapped. Before: ValueError from the book,
    # uncaught, exit 2 with no line number and no report.
    lines = real_lines()
    i = first_diff_after_snapshot(lines) + 1
    i = next(j for j in range(i, len(lines)) if b'"depthUpdate"' in lines[j])

    def swap(data):
        data["U"], data["u"] = data["u"], data["U"]
    rc, text = cli("backtest", "--data", write(tmp_path, mutate(lines, i, swap)), "--out", tmp_path / "out")
    assert rc == 0, (rc, text[-3000:])
    assert f"line {i + 1}: malformed, skipped" in text and "> u=" in text and "Traceback" not in text
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["malformed_lines"] == 1 and report["shutdown_clean"] is True


def test_trade_with_event_time_past_int64_ns_is_skipped_not_wrapped(tmp_path):
    # Synthetic: one real trade line with E = 10**17 ms (10**23 ns, past int64). Before: E * 10**6 wrapped silently.
    lines = real_lines()
    i = next(j for j, raw in enumerate(lines) if b'"e":"trade"' in raw)

    def far_future(data):
        data["E"] = 10**17
    rc, text = cli("backtest", "--data", write(tmp_path, mutate(lines, i, far_future)), "--out", tmp_path / "out")
    assert rc == 0, (rc, text[-3000:])
    assert f"line {i + 1}: malformed, skipped" in text and "'E'" in text
    assert json.loads((tmp_path / "out" / "report.json").read_text())["malformed_lines"] == 1


def test_duplicated_snapshot_mid_file_does_not_rewind_the_book_and_quoting_goes_on(tmp_path):
    # Synthetic: the real USDⓈ-M file with its REST snapshot line (line 55) repeated, byte for byte, in the middle.
    # Before: the old snapshot was loaded, the next diff was a gap, and nothing was quoted for the rest of the run.
    lines = real_lines(None)
    snap = next(i for i, raw in enumerate(lines) if b'"lastUpdateId"' in raw)
    at = len(lines) // 2
    dup_ts = int(lines[at].split(b" ", 1)[0])
    path = write(tmp_path, lines[:at] + [lines[snap]] + lines[at:])
    s = build_session(load_config(), str(path))
    asyncio.run(run_session(s))
    summary = summarize(s)
    book = s.engine.book
    assert book.stale_snapshots == 1 and summary["gaps"] == 0 and book.synced
    assert summary["stale_snapshots"] == 1 and s.engine.counters["stale_snapshots"] == 1
    assert s.engine.counters["snapshots"] == 1           # the ignored one is not counted as loaded
    assert summary["malformed_lines"] == 0
    later = [f for f in summary["fills"] if f["ts_ns"] > dup_ts]
    assert later, "no fill after the duplicated snapshot: quoting stopped"
    assert summary["shutdown_clean"] is True


def test_book_export_writes_no_row_for_an_ignored_duplicate_snapshot(tmp_path):
    # Synthetic: the first 3000 real lines with the REST snapshot line repeated later. The book ignores the
    # duplicate (it is older than the book); the CSV must equal the one of the unmodified lines (no extra row).
    lines = real_lines()
    snap = next(i for i, raw in enumerate(lines) if b'"lastUpdateId"' in raw)
    at = 2000
    plain = write(tmp_path, lines, "plain.gz")
    dup = write(tmp_path, lines[:at] + [lines[snap]] + lines[at:], "dup.gz")
    outs = []
    for name, path in (("plain", plain), ("dup", dup)):
        out = tmp_path / f"{name}.csv"
        rc, text = cli("book", "--data", path, "--out", out)
        assert rc == 0 and "Traceback" not in text, text
        outs.append(out.read_bytes())
    assert outs[0] == outs[1] and outs[0].count(b"\n") > 100
