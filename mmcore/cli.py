"""Command line: ``python -m mmcore run | backtest | book | markets | emulate | record | compare | sweep | cache |
research``.

Exit codes (one ``error:`` / ``config error:`` line on stderr naming the field or file, never a traceback):

- 0: the whole file replayed and shut down clean (every order cancelled and confirmed);
- 2: bad configuration or arguments: a bad field or a combination that cannot work (``config error:
  <field> = <value>: <allowed range>``, one line per problem), a config file that cannot be read or parsed,
  a data file that is not a recording of the market (or the forced ``--market``), an empty ``--journal``, a
  journal file that is not a SQLite journal or already holds a run;
- 1: a file that cannot be read or written: a data file missing, not a regular file (directory, FIFO,
  device), not gzip, truncated or corrupt (after the part replayed, with its summary / report, which says
  ``data_complete: false`` and why); a journal that cannot be opened (directory, device, permission, full
  disk) or is in use by another process, or whose write failed during the run (trading halted; the
  summary / report names the failed write); a report that cannot be written;
- 3: the run ended but the shutdown was not clean (orders left open at the exchange).

``run --venue`` (paper / live, :mod:`mmcore.runners.live`): 0 stopped clean; 3 an order may be left open or a
position could not be closed; 2 bad config or arguments, a pinned markets file whose checksum fails, ``--live``
without credentials; 1 the account is traded by another process, a journal cannot be opened or written, the
venue refused the key, or a reconciliation failed other than by the network (our orders are cancelled first).
"""
from __future__ import annotations

import argparse
import asyncio
import csv
import logging
import signal
import sys
from pathlib import Path

from mmcore.config import DEFAULT_CONFIG, ConfigError, load_config
from mmcore.persistence.journal import JournalUnavailable
from mmcore.venues.binance.recording import DataFileError

log = logging.getLogger("mmcore")


def _setup_logging(verbose: bool) -> None:
    from rich.console import Console
    from rich.logging import RichHandler
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(name)s: %(message)s",
                        handlers=[RichHandler(console=Console(stderr=True), show_path=False, rich_tracebacks=False)])


def _load(args):
    overrides = list(args.set or [])
    return load_config(args.config, overrides)


def _run_loop(coro):
    """Run on uvloop (the design card's event loop; a declared dependency)."""
    import uvloop
    return uvloop.run(coro)


async def _replay(session, progress=None, run=None):
    """``run`` (default :func:`mmcore.runners.replay.run_session`) under SIGINT/SIGTERM handlers."""
    from mmcore.runners.replay import run_session
    loop = asyncio.get_running_loop()

    def _stop():
        session.interrupted = True
    _install_stop_handlers(loop, _stop)
    return await (run or run_session)(session, progress)


def _install_stop_handlers(loop, stop) -> list:
    """Make SIGINT/SIGTERM call ``stop`` (a clean shutdown: cancel-all, summary). Where the loop cannot
    install handlers (not the main thread; no Unix signals) say so once: the signal will then end the run
    without the clean shutdown. Returns the signals not installed."""
    missing = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop)
        except (NotImplementedError, RuntimeError, ValueError):
            missing.append(sig)
    if missing:
        log.warning("cannot handle %s here: the run will stop without a clean shutdown if signalled",
                    ", ".join(signal.Signals(s).name for s in missing))
    return missing


def cmd_run(args) -> int:
    if args.venue is None:
        for flag in ("symbols", "endpoint", "duration", "journal_dir", "out"):
            if getattr(args, flag) is not None:
                raise ValueError(f"--{flag.replace('_', '-')} needs --venue (without it, run replays --data)")
        if args.live:
            raise ValueError("--live needs --venue")
    else:
        from mmcore.runners.venue_run import cmd_run_venue, overrides_from_args
        if args.data is not None:
            raise ValueError("--data replays a recording; it does not go with --venue")
        if args.duration is not None and not 0 < args.duration <= 30 * 86400:
            raise ValueError(f"--duration {args.duration}: must be in (0, 2592000] seconds")
        config = load_config(args.config, list(args.set or []) + overrides_from_args(args))
        return cmd_run_venue(args, config)
    from mmcore.runners.tardis_replay import cmd_run_tardis, wants_tardis
    if wants_tardis(args):                       # Tardis.dev CSV (--format tardis, or detected by header)
        return cmd_run_tardis(args)
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn
    from mmcore.runners.replay import build_session, summarize
    from mmcore.runners.report import print_summary

    config = _load(args)
    session = build_session(config, args.data, args.market)
    console = Console(stderr=False)
    console.print(f"[bold]mmcore[/bold] replay of [cyan]{session.path.name}[/cyan] "
                  f"({session.instrument.market} {session.instrument.symbol}) with Avellaneda–Stoikov quotes")
    with Progress(TextColumn("replay"), BarColumn(), DownloadColumn(), TimeElapsedColumn(), console=console,
                  transient=True) as bar:
        task = bar.add_task("replay", total=session.path.stat().st_size)
        _run_loop(_replay(session, lambda done, total: bar.update(task, completed=done)))
    summary = summarize(session)
    print_summary(summary, console)
    return _exit_code(session, summary)


def _exit_code(session, summary: dict) -> int:
    """Print the error line of a run that ended on bad input (after its summary); return the exit code."""
    if summary["data_error"]:
        print(f"error: data file {session.path}: {summary['data_error']}; the replay stopped after line "
              f"{summary['lines']} (the summary covers the part replayed)", file=sys.stderr)
        return 1
    if summary["journal_error"]:
        when = (f"trading halted at {summary['journal_failed_ts_ns']} ns and the replay stopped"
                if summary["journal_failed_ts_ns"] is not None else "found at shutdown")
        print(f"error: journal {session.journal.path}: write failed: {summary['journal_error']} "
              f"({summary['journal_lost_writes']} write(s) lost); {when}", file=sys.stderr)
        return 1
    return 0 if summary["shutdown_clean"] else 3


def _check_out_dir(out: Path) -> None:
    """Refuse, before the replay, a report directory that exists and is not a directory (OSError)."""
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(20, "not a directory", str(out))


def cmd_backtest(args) -> int:
    from mmcore.runners.replay import build_session, summarize
    from mmcore.runners.report import write_json, write_plot

    config = _load(args)
    out = Path(args.out) if args.out else config.resolve_path(config.get("report.out_dir"))
    _check_out_dir(out)
    session = build_session(config, args.data, args.market, args.journal, cache=args.cache)
    _run_loop(_replay(session))
    summary = summarize(session)
    try:
        js = write_json(summary, out)
        png = None if args.no_plot else write_plot(session.series, summary, out)
    except OSError as exc:
        print(f"error: cannot write the report in {out}: {exc.strerror or exc}", file=sys.stderr)
        _exit_code(session, summary)
        return 1
    print(f"wrote {js}{'' if png is None else f' and {png}'}: {summary['events']} events in {summary['wall_s']:.3f} s, "
          f"{summary['fill_count']} fills, mtm PnL {summary['mtm_pnl']} {session.instrument.quote}")
    return _exit_code(session, summary)


def cmd_book(args) -> int:
    """Write the reconstructed top of book after every applied depth event as CSV.

    The data file gets the same checks as ``run`` (regular file, bounded lines, the market check); a damaged
    file keeps the rows written before the damage and exits 1."""
    from mmcore.venues.binance.recording import ReplayReader
    from mmcore_ext.book import APPLIED, L2Book, sync_rule_for_market
    from mmcore_ext.events import DepthDiff, DepthSnapshot

    if not Path(args.data).exists():
        raise FileNotFoundError(f"data file not found: {args.data}")
    reader = ReplayReader(args.data, market=args.market)
    inst = reader.instrument
    book = L2Book(sync_rule_for_market(reader.market))
    fp, fq = inst.format_price, inst.format_qty
    rows = 0
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    def row(ts, u):
        w.writerow((ts, u, fp(book.best_bid_px()), fq(book.best_bid_qty()), fp(book.best_ask_px()),
                    fq(book.best_ask_qty())))

    damage = None
    with open(out, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(("local_ts_ns", "update_id", "bid_px", "bid_qty", "ask_px", "ask_qty"))
        try:
            for ev in reader:
                t = type(ev)
                if t is DepthDiff:
                    if book.apply_diff(ev) == APPLIED:
                        row(ev.ts_local_ns, ev.final_update_id)
                        rows += 1
                elif t is DepthSnapshot:
                    stale = book.stale_snapshots
                    book.load_snapshot(ev)
                    if book.synced and book.stale_snapshots == stale:   # not a duplicate/older one (ignored)
                        row(ev.ts_local_ns, book.last_update_id)
                        rows += 1
        except DataFileError as exc:
            damage = exc
    print(f"wrote {rows} rows to {out} (gaps {book.gaps}, malformed lines {reader.malformed})")
    if damage is not None:
        print(f"error: {damage}; stopped after line {reader.lines} (the rows written cover the part read)",
              file=sys.stderr)
        return 1
    return 0


def cmd_markets(args) -> int:
    """Fetch exchangeInfo through ccxt and write a pinned markets file with its ``.sha256`` (exit 0); a fetch
    that fails exits 1, bad arguments or an answer that does not validate exit 2 (nothing is written)."""
    import re

    from mmcore.config import _opt_url
    from mmcore.venues.binance.markets import MarketsFetchError, markets_command
    symbols = [s.strip() for s in args.symbols.split(",")]
    if not symbols or not all(re.fullmatch(r"[A-Z0-9]{2,20}", s) for s in symbols) or len(set(symbols)) != len(symbols):
        raise ValueError(f"--symbols {args.symbols[:80]!r}: a comma-separated list of distinct exchange symbols "
                         f"such as BTCUSDT,ETHUSDT (A-Z, 0-9)")
    try:
        endpoint = _opt_url(args.endpoint)
    except TypeError:
        raise ValueError(f"--endpoint {args.endpoint[:80]!r}: must be http(s)://HOST:PORT without a path") from None
    if not 0 < args.timeout <= 600:
        raise ValueError(f"--timeout {args.timeout}: must be in (0, 600] seconds")
    try:
        markets = _run_loop(markets_command(args.venue, symbols, args.out, endpoint, args.timeout))
    except MarketsFetchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.out} ({', '.join(markets.symbols())}; sha256 {markets.sha256}) and {args.out}.sha256")
    print(f"source: {markets.source}")
    return 0


def cmd_record(args) -> int:
    """Record live market data (see :mod:`mmcore.venues.binance.record`)."""
    from mmcore.config import _opt_url, _symbols
    from mmcore.instruments import load_instrument
    from mmcore.venues.binance.feed import FeedSettings
    from mmcore.venues.binance.record import Recorder, output_paths
    config = _load(args)
    try:
        symbols = _symbols(args.symbols)
    except TypeError:
        raise ValueError(f"--symbols {args.symbols[:80]!r}: a comma-separated list of 1-10 distinct exchange "
                         f"symbols such as BTCUSDT,ETHUSDT (A-Z, 0-9)") from None
    try:
        endpoint = _opt_url(args.endpoint) if args.endpoint else config.get("venue.endpoint")
    except TypeError:
        raise ValueError(f"--endpoint {args.endpoint[:80]!r}: must be http(s)://HOST:PORT without a path") from None
    if args.duration is not None and not 0 < args.duration <= 30 * 86400:
        raise ValueError(f"--duration {args.duration}: must be in (0, 2592000] seconds")
    if not 1 <= args.snapshot_every <= 86400:
        raise ValueError(f"--snapshot-every {args.snapshot_every}: must be in [1, 86400] seconds")
    table = config.get("venue.markets_file")
    instruments = {s: load_instrument(args.venue, s, config.resolve_path(table) if table else None) for s in symbols}
    settings = FeedSettings.from_config(config, endpoint=endpoint)
    rec = Recorder(args.venue, symbols, instruments, settings, output_paths(args.out, args.venue, symbols),
                   args.snapshot_every)

    async def go():
        stop = asyncio.Event()
        _install_stop_handlers(asyncio.get_running_loop(), stop.set)
        return await rec.run(args.duration, stop)
    res = _run_loop(go())
    for s in symbols:
        print(f"{s}: {res['lines'][s]} lines ({res['snapshots'][s]} snapshots) -> {res['files'][s]}")
    c = res["feed"]
    print(f"frames {c['frames']}, malformed {c['malformed']}, reconnects {c['reconnects']}, "
          f"not written {res['skipped']}")
    return 0


def cmd_compare(args) -> int:
    """``compare``: one replay per (model, recording), printed as one table; exit 0 (2: bad config or data)."""
    from mmcore.runners.compare import compare, print_table, write_csv
    config = _load(args)                          # fails fast on a bad config before any replay
    data = args.data or [str(config.resolve_path(config.get("data.path")))]
    rows = _run_loop(compare(args.config, list(args.set or []), data, market=args.market))
    print_table(rows)
    if args.csv:
        print(f"wrote {write_csv(rows, Path(args.csv))}")
    return 0


def cmd_cache(args) -> int:
    """``cache``: build (or check) the decoded-event cache of each recording; one line per file; exit 0 (2: a bad
    file or config)."""
    import time
    from mmcore.runners.event_cache import load_or_build
    from mmcore.runners.replay import build_session
    config = _load(args)
    for path in args.data:
        s = build_session(config, path, args.market)
        t0 = time.perf_counter()
        cached, built = load_or_build(s.path, s.reader)
        s.journal.close()
        print(f"{cached.path}: {cached.events} events, {cached.path.stat().st_size / 1e6:.1f} MB, "
              f"{'built' if built else 'up to date'} in {time.perf_counter() - t0:.2f} s (source {s.path})")
    return 0


def cmd_sweep(args) -> int:
    """``sweep``: replays over a grid of config values; table, ``OUT/sweep.csv``, ``OUT/sweep.png``; exit 0 (2: a
    bad grid, config or data)."""
    from mmcore.runners.compare import COLUMNS, parse_grid, print_table, sweep, write_heatmap, write_sweep_csv
    grid = parse_grid(args.grid)
    if not 0 <= args.workers <= 256:
        raise ValueError(f"--workers {args.workers}: 0 to 256")
    config = _load(args)
    data = args.data or [str(config.resolve_path(config.get("data.path")))]
    try:
        rows = sweep(args.config, list(args.set or []), data, grid, args.workers, args.market, args.ray)
    except RuntimeError as exc:                    # --ray without Ray installed
        print(f"error: {exc}", file=sys.stderr)
        return 2
    keys = [k for k, _ in grid]
    for r in rows:                                 # the table's column header names the grid point
        r["model"] = ", ".join(f"{k.rsplit('.', 1)[-1]}={r[k]}" for k in keys)
    print_table([{c: r[c] for c in COLUMNS} for r in rows], title="mmcore sweep: one replay per grid point and "
                                                                 "recording")
    out = Path(args.out)
    print(f"wrote {write_sweep_csv(rows, keys, out / 'sweep.csv')} and {write_heatmap(rows, grid, out / 'sweep.png')}")
    return 0


def cmd_research(args) -> int:
    """``research as2008``: the paper's Tables 1-3 (each row beside the paper's), exit 0; bad arguments exit 2.
    ``research hftbacktest-diff``: the differential check against hftbacktest (exit 2 when hftbacktest is not
    installed: the optional extra)."""
    import time
    if args.experiment == "hftbacktest-diff":
        return _hftbacktest_diff(args)
    from mmcore.research.as2008 import MAX_PATHS, format_table, table
    if not 1 <= args.paths <= MAX_PATHS:
        raise ValueError(f"--paths {args.paths}: 1 to {MAX_PATHS}")
    t0 = time.perf_counter()
    rows = table(args.paths, args.seed, args.spread)
    print(f"Avellaneda & Stoikov (2008) section 3.3: s0=100, T=1, sigma=2, dt=0.005, k=1.5, A=140; {args.paths} "
          f"paths per row, seed {args.seed}, spread {args.spread}")
    print(format_table(rows))
    print(f"({time.perf_counter() - t0:.1f} s; the paper's inventory row at gamma=0.5 (33.92) is not reproduced by "
          f"the stated procedure: see README, 'Research')")
    return 0


def _hftbacktest_diff(args) -> int:
    try:
        import hftbacktest  # noqa: F401
    except ImportError:
        print("error: hftbacktest is not installed: pip install -e '.[hftbacktest]'", file=sys.stderr)
        return 2
    from mmcore.research.hftbt_diff import DEFAULT_DATA, compare, format_result
    data = Path(args.data) if args.data else DEFAULT_DATA
    if not data.is_file():
        raise ValueError(f"--data {data}: not a regular file")
    print(format_result(compare(data, Path(args.cache) if args.cache else None)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mmcore", description="Low-latency market-making engine: replay, paper and live.")
    p.add_argument("-v", "--verbose", action="store_true", help="log INFO lines (default: warnings only)")
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp, data_required=False, several=False):
        sp.add_argument("--config", default=str(DEFAULT_CONFIG), help="YAML config (default: %(default)s)")
        sp.add_argument("--data", required=data_required, action="append" if several else "store",
                        help="recording to replay" + ("" if data_required else " (default: config data.path)")
                        + ("; repeatable for Tardis CSV files, merged by time" if several else ""))
        sp.add_argument("--market", choices=("binance_spot", "binance_usdm"),
                        help="market rules (default: detected from the file: 'pu' present -> binance_usdm)")
        sp.add_argument("--set", action="append", metavar="KEY=VALUE",
                        help="override a config field, e.g. --set strategy.gamma=0.1 (repeatable)")

    run = sub.add_parser("run", help="replay with a progress bar, then a summary table; with --venue: paper "
                                     "(or --live) trading on the venue")
    common(run, several=True)
    run.add_argument("--format", choices=("auto", "binance", "tardis"), default="auto",
                     help="--data format: a Binance recording or Tardis.dev CSV (default: auto, from the header)")
    run.add_argument("--tick-size", help="Tardis: the price tick of the data's date, e.g. 0.01 (default: pinned)")
    run.add_argument("--lot-size", help="Tardis: the quantity lot of the data's date, e.g. 0.001 (default: pinned)")
    run.add_argument("--venue", choices=("binance_spot", "binance_usdm"),
                     help="trade this venue's live market data (paper unless --live) instead of replaying")
    run.add_argument("--symbols", help="comma-separated symbols, 1 to 10 (default: config venue.symbols)")
    run.add_argument("--live", action="store_true", help="send real orders (needs API keys; prints a banner)")
    run.add_argument("--duration", type=float, help="stop after this many seconds of wall time")
    run.add_argument("--out", help="write report.json and per-symbol report.png into this directory")
    run.add_argument("--endpoint", help="http://HOST:PORT: every URL of the venue on that host (the emulator)")
    run.add_argument("--journal-dir", help="per-symbol SQLite journals (live default: journals/)")
    run.add_argument("--unknown-orders", choices=("cancel", "adopt"), default="cancel",
                     help="live: our orders open at the venue but not in the journal (default: %(default)s)")
    run.add_argument("--reset-halt", action="store_true",
                     help="live: clear a HALTED trading state restored from a journal (operator decision)")
    bt = sub.add_parser("backtest", help="replay quietly; write report.json and report.png")
    common(bt, data_required=True)
    bt.add_argument("--out", help="output directory (default: config report.out_dir)")
    bt.add_argument("--journal", help="SQLite journal file (default: config journal.path; off when null)")
    bt.add_argument("--no-plot", action="store_true", help="write report.json only (no report.png: faster)")
    bt.add_argument("--cache", action="store_true",
                    help="replay the recording's decoded-event cache (built on first use; see `cache`)")
    bk = sub.add_parser("book", help="export the reconstructed best bid/ask after every applied depth event")
    bk.add_argument("--data", required=True)
    bk.add_argument("--market", choices=("binance_spot", "binance_usdm"))
    bk.add_argument("--out", required=True, help="CSV file to write")
    mk = sub.add_parser("markets", help="fetch exchangeInfo (ccxt) and write a pinned markets file + .sha256")
    mk.add_argument("--venue", required=True, choices=("binance_spot", "binance_usdm"))
    mk.add_argument("--symbols", required=True, help="comma-separated symbols, e.g. BTCUSDT,ETHUSDT")
    mk.add_argument("--out", required=True, help="pinned file to write, e.g. config/markets/binance_usdm.json "
                    "(its mmcore entries are kept for symbols it already has)")
    mk.add_argument("--endpoint", help="http://HOST:PORT instead of Binance's REST host (e.g. the emulator)")
    mk.add_argument("--timeout", type=float, default=10.0, help="request timeout, seconds (default: %(default)s)")
    rc = sub.add_parser("record", help="record live streams + REST snapshots in the bundled recordings' format")
    rc.add_argument("--venue", required=True, choices=("binance_spot", "binance_usdm"))
    rc.add_argument("--symbols", required=True, help="comma-separated symbols, e.g. BTCUSDT,ETHUSDT")
    rc.add_argument("--out", required=True, help="FILE.gz (one symbol), or a directory / a pattern with {symbol} "
                    "(one gzip file per symbol)")
    rc.add_argument("--duration", type=float, help="stop after this many seconds (default: until SIGINT/SIGTERM)")
    rc.add_argument("--endpoint", help="http://HOST:PORT instead of Binance's hosts (e.g. the emulator)")
    rc.add_argument("--snapshot-every", type=float, default=600.0,
                    help="seconds between REST snapshots per symbol (default: %(default)s)")
    rc.add_argument("--config", default=str(DEFAULT_CONFIG), help="YAML config (default: %(default)s)")
    rc.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config field (repeatable)")
    cp = sub.add_parser("compare", help="every quoting model on the same recordings, one table (and CSV)")
    cp.add_argument("--data", action="append", help="recording to replay (repeatable; default: config data.path)")
    cp.add_argument("--config", default=str(DEFAULT_CONFIG), help="YAML config (default: %(default)s)")
    cp.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config field (repeatable)")
    cp.add_argument("--market", choices=("binance_spot", "binance_usdm"))
    cp.add_argument("--csv", help="also write the rows to this CSV file")
    ca = sub.add_parser("cache", help="decode recordings once into the event cache that sweep / compare / "
                                      "backtest --cache replay from")
    ca.add_argument("data", nargs="+", help="recording(s) to cache")
    ca.add_argument("--config", default=str(DEFAULT_CONFIG), help="YAML config (default: %(default)s)")
    ca.add_argument("--market", choices=("binance_spot", "binance_usdm"))
    ca.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config field (repeatable)")
    sw = sub.add_parser("sweep", help="a parameter grid over recordings on a local process pool: table, CSV, "
                                      "heatmap")
    sw.add_argument("--data", action="append", help="recording to replay (repeatable; default: config data.path)")
    sw.add_argument("--grid", action="append", required=True, metavar="KEY=V1,V2,...",
                    help="a dotted config key and its values (repeatable: the grid is every combination)")
    sw.add_argument("--config", default=str(DEFAULT_CONFIG), help="YAML config (default: %(default)s)")
    sw.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config field (repeatable)")
    sw.add_argument("--market", choices=("binance_spot", "binance_usdm"))
    sw.add_argument("--workers", type=int, default=0, help="worker processes (0: one per CPU; 1: no pool)")
    sw.add_argument("--out", default="sweep", help="directory for sweep.csv and sweep.png (default: %(default)s)")
    sw.add_argument("--ray", metavar="ADDRESS", help="run the replays as Ray tasks on this cluster ('local': a "
                                                     "local Ray instance; needs the optional ray extra)")
    rs = sub.add_parser("research", help="research experiments with the compiled quoters")
    rsub = rs.add_subparsers(dest="experiment", required=True)
    a8 = rsub.add_parser("as2008", help="Avellaneda-Stoikov (2008) section 3.3: Tables 1-3 with the compiled quoter")
    a8.add_argument("--paths", type=int, default=1000, help="Monte Carlo paths per row (default: %(default)s)")
    a8.add_argument("--seed", type=int, default=1, help="random seed (default: %(default)s)")
    a8.add_argument("--spread", choices=("constant", "full"), default="constant",
                    help="constant: (2/gamma) ln(1+gamma/k), as the paper's tables behave; full: eq. (3.18) with "
                         "the gamma sigma^2 (T-t) term (default: %(default)s)")
    hd = rsub.add_parser("hftbacktest-diff", help="differential check of the simulated exchange against hftbacktest "
                                                  "(fill count and volume of a fixed quoting rule; needs the "
                                                  "optional hftbacktest extra)")
    hd.add_argument("--data", help="a Binance USDⓈ-M recording (default: the bundled data/usdm_btcusdt_20240808.gz)")
    hd.add_argument("--cache", help="directory for hftbacktest's converted data (default: $MMCORE_CACHE or "
                                    "~/.cache/mmcore)")
    from mmcore.sim.emulator.options import add_arguments as _emulate_arguments   # argparse only, no aiohttp
    _emulate_arguments(sub.add_parser("emulate", help="Binance-compatible exchange emulator on 127.0.0.1 "
                                                      "replaying recordings (REST, streams, WebSocket API)"),
                       verbose=False)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "emulate":                   # logs to stderr; stdout carries "listening" / "account"
        from mmcore.sim.emulator.app import run as run_emulator
        return run_emulator(args)
    _setup_logging(args.verbose)
    handlers = {"run": cmd_run, "backtest": cmd_backtest, "book": cmd_book, "markets": cmd_markets,
                "record": cmd_record, "research": cmd_research, "compare": cmd_compare, "cache": cmd_cache,
                "sweep": cmd_sweep}
    for name in ("config", "data", "out", "journal"):
        if getattr(args, name, None) == "":
            print(f"error: --{name}: empty path", file=sys.stderr)
            return 2
    try:
        return handlers[args.command](args)
    except ConfigError as exc:
        for line in exc.errors:
            print(f"config error: {line}", file=sys.stderr)
        return 2
    except (ValueError, KeyError) as exc:           # bad arguments, or a file that is not a recording / journal
        print(f"error: {exc.args[0] if isinstance(exc, KeyError) and exc.args else exc}", file=sys.stderr)
        return 2
    except (DataFileError, JournalUnavailable) as exc:   # messages name the file and the problem
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:                          # missing, unreadable, unwritable
        print(f"error: {exc.filename}: {exc.strerror}" if exc.filename else f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
