"""The engine's defined recoveries: a sequence gap or a crossed book pauses quoting and cancels everything;
malformed lines are skipped and counted mid-run; an interrupted replay still shuts down clean.

Inputs are the real USDⓈ-M recording, altered where said (one depth line removed, garbage lines added),
and small synthetic books (labelled)."""
import asyncio
import gzip
from decimal import Decimal

from mmcore.config import load_config
from mmcore.replay import build_session, run_session, summarize
from mmcore_ext.events import DepthDiff, DepthSnapshot

from datafiles import USDM_FILE


def _replay(path, *overrides):
    s = build_session(load_config(overrides=list(overrides)), str(path), market="binance_usdm")
    asyncio.run(run_session(s))
    return s, summarize(s)


def _lines():
    with gzip.open(USDM_FILE, "rb") as fh:
        return fh.readlines()


def _write(tmp_path, lines, name):
    p = tmp_path / name
    with gzip.open(p, "wb") as fh:
        fh.writelines(lines)
    return p


def test_sequence_gap_in_real_data_pauses_quoting_and_cancels_everything(tmp_path):
    lines = _lines()
    depth = [i for i, ln in enumerate(lines) if b'"depthUpdate"' in ln]
    drop = depth[3000]                                   # one diff, long after the snapshot: a gap
    gap_ts = int(lines[depth[3001]].split(b" ")[0])
    s, summary = _replay(_write(tmp_path, lines[:drop] + lines[drop + 1:], "gap.gz"))
    assert summary["gaps"] == 1
    assert s.engine.counters["pauses"] >= 1 and s.engine.paused
    assert s.engine.book.synced is False                 # waits for a new snapshot (none in a recording)
    assert s.engine.book.mid_x2() == 0 and float(summary["last_mid"]) > 60_000   # marked at the last valid mid
    assert all(f["ts_ns"] <= gap_ts + 10**9 for f in summary["fills"])   # nothing trades after the gap
    assert summary["shutdown_clean"] is True and summary["buy_fills"] + summary["sell_fills"] > 0


def test_malformed_lines_mid_run_are_skipped_and_counted(tmp_path):
    lines = _lines()
    bad = lines[:20000] + [b"garbage\n", b"1723161300000000000 {\"stream\": \n"] + lines[20000:]
    s, summary = _replay(_write(tmp_path, bad, "bad.gz"))
    assert summary["malformed_lines"] == 2
    assert summary["events"] == len(lines) and summary["gaps"] == 0


def test_interrupted_replay_stops_early_and_still_shuts_down_clean():
    s = build_session(load_config(), str(USDM_FILE))

    def interrupt(done, total):
        s.interrupted = True                              # as the SIGINT/SIGTERM handler does

    asyncio.run(run_session(s, interrupt))
    summary = summarize(s)
    assert summary["interrupted"] is True and summary["events"] < 10_000
    assert summary["shutdown_clean"] is True and not s.sim.open_orders()


def test_crossed_book_pauses_quoting_until_it_uncrosses():
    """Synthetic book (labelled): ask drops below the bid, then recovers."""
    s = build_session(load_config(), str(USDM_FILE))
    eng, sim = s.engine, s.sim
    t = 1_723_161_300_000_000_000
    eng.on_event(DepthSnapshot.from_ticks(100, [(618000, 5000)], [(618010, 5000)], t, t))
    sim.advance(t + 10**8)
    assert not eng.paused and eng.orders.placed == 2
    # USDⓈ-M: the first diff after the snapshot straddles it (U <= 100 <= u), the next chains on pu.
    eng.on_event(DepthDiff.from_ticks(100, 101, [], [(617990, 10)], 99, t + 10**8, t + 10**8))
    sim.advance(t + 2 * 10**8)
    assert eng.book.is_crossed() and eng.paused and eng.pause_reason == "crossed book"
    assert not eng.orders.orders and not sim.open_orders()          # all cancelled and confirmed
    eng.on_event(DepthDiff.from_ticks(102, 102, [], [(617990, 0)], 101, t + 3 * 10**8, t + 3 * 10**8))
    assert eng.book.gaps == 0
    assert not eng.paused and eng.orders.placed == 4


def test_flatten_on_shutdown_closes_the_position_with_ioc_orders():
    s = build_session(load_config(overrides=["execution.flatten_on_shutdown=true"]), str(USDM_FILE))
    held = []

    def stop_when_positioned(done, total):        # interrupt (as SIGINT does) while a position is open
        if s.portfolio.position != 0 and not held:
            held.append(s.portfolio.position)
            s.interrupted = True

    asyncio.run(run_session(s, stop_when_positioned))
    summary = summarize(s)
    assert summary["interrupted"] is True and held and held[0] != 0
    assert s.portfolio.position == 0 and summary["shutdown_clean"] is True
    assert summary["flatten_orders"] >= 1
    taker = [f for f in s.engine.fills if not f.is_maker]
    assert sum(f.side * f.qty for f in taker) == -held[0]


class _Unanswered:
    """An execution client that sends nothing back (a venue that never answers)."""

    def __init__(self):
        self.submits = []

    def submit(self, ts, coid, side, px, qty, post_only=True):
        self.submits.append((coid, side, px, qty, post_only))

    def cancel(self, ts, coid):
        pass


def _positioned(session, lots):
    """Give the portfolio a position of ``lots`` (a synthetic fill, labelled as such)."""
    session.portfolio.on_fill(1 if lots > 0 else -1, 600_000, abs(lots), Decimal(0))
    assert session.portfolio.position == lots


def test_flatten_with_no_price_to_hit_gives_up_after_its_retries():
    # No event replayed: the book is empty, so there is no bid to sell into.
    s = build_session(load_config(overrides=["execution.flatten_on_shutdown=true", "execution.flat_retries=3"]),
                      str(USDM_FILE))
    _positioned(s, 5)
    eng = s.engine
    eng.start_flatten(0)
    for _ in range(10):
        if eng.flatten_due_ns < 0:
            break
        eng.flatten_step(eng.flatten_due_ns)
    assert eng.flatten_due_ns == -1                      # it ended (the replay shutdown loops until then)
    assert eng.counters["flatten_failed"] == 1 and eng.counters["flatten_orders"] == 0


def test_flatten_never_has_two_orders_in_flight():
    s = build_session(load_config(overrides=["execution.flat_retries=4"]), str(USDM_FILE))
    asyncio.run(run_session(s))                          # a real book to price the flatten order off
    eng = s.engine
    eng.orders.exec = venue = _Unanswered()
    _positioned(s, s.portfolio.position + 3 if s.portfolio.position >= 0 else s.portfolio.position - 3)
    ts = s.last_ts_ns
    eng.start_flatten(ts)
    while eng.flatten_due_ns >= 0:
        eng.flatten_step(eng.flatten_due_ns)
    assert len(venue.submits) == 1 and venue.submits[0][4] is False      # one IOC, never a second
    assert eng.counters["flatten_orders"] == 1 and eng.counters["flatten_failed"] == 1
