"""Replay Tardis.dev CSV files through the engine and the simulated exchange (``run --format tardis``).

The files (:mod:`mmcore.data.tardis`: trades, quotes, book_snapshot_N, incremental_book_L2; at most one of them a
book) are merged by local time and replayed by the same loop as a Binance recording
(:func:`mmcore.runners.replay.run_session`, over events instead of lines): the exchange sees each event first,
then the engine; timers fire during silences; the shutdown sequence and the summary follow. The instrument comes from the pinned
markets file of the exchange's market (``binance-futures`` -> ``binance_usdm``), with the tick / lot given for the
data's date when they differ (``--tick-size`` / ``--lot-size``; 2020 BTCUSDT futures: 0.01 / 0.001).

Book events carry synthetic update ids (see :mod:`mmcore.data.tardis`); a quotes file makes the book one level a
side (each quote replaces it), so the quoter sees the top of book only.
"""
from __future__ import annotations

import logging
from pathlib import Path

from mmcore.config import Config
from mmcore.data.tardis import TardisReplay, detect_kind, market_of_exchange, read_head, with_grid
from mmcore.instruments import load_instrument
from mmcore.runners.replay import Session, build_session, markets_dir, summarize

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
        _run_loop(_replay(session, lambda done, total: bar.update(task, completed=done)))
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
