"""Replay Tardis.dev CSV files through the engine and the simulated exchange (``run --format tardis``).

The files (:mod:`mmcore.data.tardis`: trades, quotes, book_snapshot_N, incremental_book_L2; at most one of them a
book) are merged by local time and replayed like a Binance recording (:func:`mmcore.runners.replay.run_session`):
the exchange sees each event first (a trade against our orders, otherwise the time advancing), then the engine;
timers fire during silences; the shutdown sequence and the summary follow. The instrument comes from the pinned
markets file of the exchange's market (``binance-futures`` -> ``binance_usdm``), with the tick / lot given for the
data's date when they differ (``--tick-size`` / ``--lot-size``; 2020 BTCUSDT futures: 0.01 / 0.001).

Book events carry synthetic update ids (see :mod:`mmcore.data.tardis`); a quotes file makes the book one level a
side (each quote replaces it), so the quoter sees the top of book only.
"""
from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Callable

from mmcore.config import Config
from mmcore.data.tardis import TardisReplay, detect_kind, market_of_exchange, read_head, with_grid
from mmcore.engine.markouts import RunStats
from mmcore.instruments import load_instrument
from mmcore.persistence.journal import JournalError
from mmcore.runners.replay import (YIELD_EVERY, Session, _run_timers, _sample, build_session, markets_dir,
                                   shutdown, summarize)
from mmcore.venues.binance.recording import DataFileError
from mmcore_ext.events import Trade

log = logging.getLogger("mmcore.replay")
_MS = 1_000_000


def build_tardis_session(config: Config, paths, tick_size=None, lot_size=None, market: str | None = None,
                         journal: str | None = None) -> Session:
    """A replay session of Tardis CSV files (see :func:`mmcore.runners.replay.build_session`, which wires it).

    ``market``: the mmcore market whose pinned markets file holds the instrument (default: from the files'
    ``exchange`` column); ``tick_size`` / ``lot_size``: decimal strings overriding the pinned tick (price unit) and
    lot (quantity unit).

    Raises
    ------
    ValueError
        (TardisFormatError) a header that is not a Tardis kind, two book files, files of different instruments,
        most rows off the tick grid; an exchange with no mmcore market; a symbol not in the pinned file; a bad
        tick / lot.
    ConfigError, DataFileError, OSError
        As :func:`mmcore.runners.replay.build_session` (missing or unreadable file, bad ``data.markets``).
    """
    paths = [Path(p) for p in paths]
    for p in paths:
        if not p.exists():
            raise FileNotFoundError(f"data file not found: {p}")
        detect_kind(p)                       # the header first: the message names the file and its columns
    _, first = read_head(paths[0])
    if first is None or len(first) < 2:
        raise ValueError(f"{paths[0]}: no Tardis data row (header only, or empty)")
    market = market or market_of_exchange(first[0])
    try:
        inst = load_instrument(market, first[1][:40], markets_dir(config) / f"{market}.json")
    except KeyError as exc:
        raise ValueError(str(exc.args[0])) from None
    reader = TardisReplay(paths, with_grid(inst, tick_size, lot_size))
    return build_session(config, str(paths[0]), journal=journal, reader=reader)


async def run_tardis_session(s: Session, progress: Callable[[int, int], None] | None = None) -> Session:
    """Replay the merged files through the engine (the loop of :func:`mmcore.runners.replay.run_session`, over
    events instead of lines). Ends early, keeping what was replayed, on a damaged file (``s.data_error``), an
    interrupt or a failed journal write; the shutdown sequence runs in every case."""
    engine, sim, reader = s.engine, s.sim, s.reader
    on_event = engine.on_event
    advance, on_trade = sim.advance, sim.on_trade
    hot, full = s.hot_ns, s.full_ns
    clock = time.perf_counter_ns
    if s.stats is None:
        s.stats = RunStats(engine, s.instrument.tick_size, s.instrument.lot_size)
    after_event = s.stats.after_event
    sample_ns = s.config.get("report.sample_ms") * _MS
    next_sample = next_timer = -1
    total = reader.size()
    t_start = time.perf_counter()
    events = ts = 0
    it = iter(reader)
    try:
        while True:
            t0 = clock()
            ev = next(it, None)            # the CSV parse of the event's rows
            if ev is None:
                s.data_complete = True
                break
            t_parsed = clock()
            ts = ev.ts_local_ns
            if ts > next_timer:
                next_timer = _run_timers(engine, advance, ts)
            if type(ev) is Trade:
                on_trade(ts, ev.trade_id, ev.price, ev.qty, ev.side)
            else:
                advance(ts)
            t1 = clock()
            on_event(ev)
            t2 = clock()
            hot.append(t2 - t1)
            full.append(t2 - t1 + t_parsed - t0)
            events += 1
            after_event(ts)
            if ts >= next_sample:
                _sample(s, ts)
                next_sample = ts + sample_ns
            if events % YIELD_EVERY == 0:
                if progress is not None:
                    progress(reader.bytes_read(), total)
                await asyncio.sleep(0)
                if s.interrupted or engine.journal_failed_ts is not None:
                    log.warning("replay %s after %d events", "interrupted" if s.interrupted else
                                "stopped: journal write failed", events)
                    break
        if progress is not None:
            progress(total, total)
    except DataFileError as exc:
        s.data_error = exc.problem
        log.error("%s: replay stopped after %d events; shutting down and reporting the part replayed", exc, events)
    except JournalError as exc:
        if engine.journal_failed_ts is None:
            engine.on_journal_failure(ts)
        log.error("replay stopped after %d events: %s", events, exc)
    s.events = events
    s.last_ts_ns = ts if events else 0
    s.wall_s = time.perf_counter() - t_start
    shutdown(s)
    return s


def tardis_summary(s: Session) -> dict:
    """:func:`mmcore.runners.replay.summarize` with every file named (``data``) and the rows skipped by reason
    (``tardis_problems``)."""
    out = summarize(s)
    out["data"] = ", ".join(str(r.path) for r in s.reader.readers)
    out["tardis_files"] = [{"path": str(r.path), "kind": r.kind, "rows": r.rows, "events": r.events}
                           for r in s.reader.readers]
    out["tardis_problems"] = dict(s.reader.problems)
    return out


def cmd_run_tardis(args) -> int:
    """``run --data FILE [--data FILE2 ...] --format tardis``: the replay with a progress bar, then the summary
    table; exit codes as ``run`` (:mod:`mmcore.cli`)."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn
    from mmcore.cli import _exit_code, _load, _replay, _run_loop
    from mmcore.runners.report import print_summary

    config = _load(args)
    session = build_tardis_session(config, args.data, args.tick_size, args.lot_size, args.market)
    inst = session.instrument
    console = Console(stderr=False)
    console.print(f"[bold]mmcore[/bold] replay of Tardis CSV [cyan]"
                  f"{', '.join(f'{r.path.name} ({r.kind})' for r in session.reader.readers)}[/cyan] "
                  f"({inst.market} {inst.symbol}, tick {inst.tick_size}, lot {inst.lot_size})")
    with Progress(TextColumn("replay"), BarColumn(), DownloadColumn(), TimeElapsedColumn(), console=console,
                  transient=True) as bar:
        task = bar.add_task("replay", total=session.reader.size())
        _run_loop(_replay(session, lambda done, total: bar.update(task, completed=done), run_tardis_session))
    summary = tardis_summary(session)
    print_summary(summary, console)
    problems = summary["tardis_problems"]
    if problems:
        console.print("rows skipped or changed: " + ", ".join(f"{k} {v}" for k, v in sorted(problems.items())))
    return _exit_code(session, summary)


def wants_tardis(args) -> bool:
    """Whether ``run``'s ``--data`` files are Tardis CSV (``--format tardis``, or ``auto`` and the first file has a
    Tardis header); for a Binance recording, ``args.data`` becomes the one path (or None). Raises ValueError for an
    empty path, several files or ``--tick-size`` / ``--lot-size`` with a Binance recording."""
    data = args.data
    if data is not None and any(p == "" for p in data):
        raise ValueError("--data: empty path")
    fmt = args.format
    if fmt == "auto":
        from mmcore.data.tardis import is_tardis_file
        fmt = "tardis" if data and is_tardis_file(data[0]) else "binance"
    if fmt == "tardis":
        if not data:
            raise ValueError("--format tardis needs --data FILE (repeatable)")
        return True
    if data is not None and len(data) > 1:
        raise ValueError("--data: a Binance recording is one file (several --data files are for Tardis CSV)")
    if args.tick_size is not None or args.lot_size is not None:
        raise ValueError("--tick-size / --lot-size apply to Tardis CSV files (--format tardis)")
    args.data = data[0] if data else None
    return False
