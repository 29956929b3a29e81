"""``python -m mmcore run --venue ...``: build a paper or live :class:`mmcore.runners.live.Session` from the config
and the command line, run it, print and write its summary.

Command line over config: ``--venue`` sets ``venue.name``, ``--symbols`` ``venue.symbols``, ``--endpoint``
``venue.endpoint``, ``--live`` ``mode: live`` (else ``paper``). Live needs credentials
(:mod:`mmcore.venues.binance.credentials`: ``BINANCE_API_KEY`` / ``BINANCE_API_SECRET`` in the environment or
``config/.env``) and prints a banner naming venue, endpoint, symbols and limits before anything is sent.

The summary is the replay's per symbol (:func:`mmcore.runners.replay.summarize`) plus a total: fills, PnL,
the per-event processing time over every symbol, the feed's counters. ``--out DIR`` writes ``report.json``
(``{"mode", "venue", "symbols": {SYMBOL: summary}, "total", "feed"}``) and one ``<SYMBOL>/report.png`` each.
"""
from __future__ import annotations

import asyncio
import logging
import sys
from array import array
from decimal import Decimal
from pathlib import Path

from mmcore.config import ConfigError
from mmcore.runners.live import Session, account_id
from mmcore.runners.replay import percentiles_us, summarize

log = logging.getLogger("mmcore.live")


def overrides_from_args(args) -> list[str]:
    """Config overrides (``key=value``) for the run flags given on the command line."""
    out = [f"venue.name={args.venue}"]
    if args.symbols:
        syms = [s.strip().upper() for s in args.symbols.split(",") if s.strip()]
        out.append("venue.symbols=[" + ",".join(syms) + "]")
    if args.endpoint:
        out.append(f"venue.endpoint={args.endpoint}")
    out.append(f"mode={'live' if args.live else 'paper'}")
    return out


def session_summary(session: Session) -> dict:
    """Per-symbol summaries (the replay's) and the totals of a finished session."""
    feed_counters = session.feed.counters() if session.feed is not None else {}
    per = {}
    hot, full = array("q"), array("q")
    fills = 0
    mtm = Decimal(0)
    clean = True
    for sym, ss in session.symbols.items():
        ss.reader.malformed = int(feed_counters.get("malformed", 0)) if len(session.symbols) == 1 else \
            int(feed_counters.get(f"malformed:{sym}", feed_counters.get("malformed", 0)))
        s = summarize(ss)
        if ss.events > len(ss.hot_ns):               # reservoir-sampled: the maxima are tracked exactly
            s["latency_us"]["max"] = round(ss.hot_max_ns / 1000, 2)
            s["latency_with_parse_us"]["max"] = round(ss.full_max_ns / 1000, 2)
            s["timing_samples"] = len(ss.hot_ns)
        s["feed_state"] = ss.feed_state
        s["late_fills"] = ss.late_fills
        s["recoveries"] = [r.summary() for r in ss.recoveries]
        per[sym] = s
        hot.extend(ss.hot_ns)
        full.extend(ss.full_ns)
        fills += s["fill_count"]
        mtm += Decimal(s["mtm_pnl"])
        clean = clean and ss.shutdown_clean
    if any(ss.events > len(ss.hot_ns) for ss in session.symbols.values()):
        total_max = max(ss.full_max_ns for ss in session.symbols.values())
    else:
        total_max = None
    total = {"symbols": len(per), "events": sum(s["events"] for s in per.values()), "fill_count": fills,
             "mtm_pnl": str(mtm), "latency_us": percentiles_us(hot), "frame_to_orders_us": percentiles_us(full),
             "global_exposure_usdt": round(session.exposure.notional_usdt, 4), "shutdown_clean": clean,
             "ccxt_loaded": "ccxt" in sys.modules,
             **{k: v for k, v in session.counters.items()}}
    if total_max is not None:
        total["frame_to_orders_us"]["max"] = round(total_max / 1000, 2)
    out = {"mode": "live" if session.live else "paper", "venue": session.venue, "symbols": per, "total": total,
           "feed": feed_counters}
    if session.live:
        out["execution"] = session.execution.counters()
    return out


def print_session_summary(summary: dict, console=None) -> None:
    """The replay's table per symbol, then a totals table."""
    from rich.console import Console
    from rich.table import Table

    from mmcore.runners.report import print_summary

    console = console or Console()
    mode = summary["mode"]
    for sym, s in summary["symbols"].items():
        print_summary(s, console, title=f"mmcore {mode}: {s['market']} {sym}")
    tot = summary["total"]
    t = Table(title=f"mmcore {mode}: {summary['venue']} total ({tot['symbols']} symbols)", show_header=False)
    t.add_column("metric", style="bold")
    t.add_column("value", justify="right")
    lat, fr = tot["latency_us"], tot["frame_to_orders_us"]
    rows = [("events processed", f"{tot['events']:,}"), ("fills", str(tot["fill_count"])),
            ("mark-to-market PnL (quote)", tot["mtm_pnl"]),
            ("hot path p50 / p99 / max (µs)", f"{lat['p50']} / {lat['p99']} / {lat['max']}"),
            ("frame -> orders p50 / p99 / max (µs)", f"{fr['p50']} / {fr['p99']} / {fr['max']}"),
            ("snapshot requests / stale states / polling", f"{tot['snapshot_requests']} / {tot['stale_states']} / "
                                                         f"{tot['polling_states']}"),
            ("shutdown clean", str(tot["shutdown_clean"]))]
    for part in ("feed", "execution"):
        c = summary.get(part) or {}
        if c:
            rows.append((part, ", ".join(f"{k} {v}" for k, v in sorted(c.items())
                                         if ":" not in k and isinstance(v, int) and v)))
    for k, v in rows:
        t.add_row(k, str(v))
    console.print(t)


def write_session_report(session: Session, summary: dict, out: Path) -> Path:
    """``out/report.json`` and ``out/<SYMBOL>/report.png``."""
    from mmcore.runners.report import write_json, write_plot

    path = write_json(summary, out)
    for sym, ss in session.symbols.items():
        if ss.series.ts_ns:
            write_plot(ss.series, summary["symbols"][sym], out / sym)
    return path


def _print_status(lines) -> None:
    """The session's periodic status (report.status_every_s): one line per symbol on stderr."""
    import time as _time
    stamp = _time.strftime("%H:%M:%S")
    for line in lines:
        print(f"{stamp} {line}", file=sys.stderr, flush=True)


def _banner(config, venue: str, symbols, endpoint) -> str:
    r = config.risk
    lines = ["", "#" * 78, "#  LIVE TRADING: real orders will be sent",
             f"#  venue {venue}{' (testnet/demo)' if config.get('venue.testnet') else ''}"
             f"  endpoint {endpoint or 'Binance production'}",
             f"#  symbols {', '.join(symbols)}",
             f"#  order qty {config.get('strategy.order_qty')}  max inventory {config.get('strategy.max_inventory')}",
             f"#  max single trade {r.max_single_trade_usdt} USDT, max per symbol {r.max_symbol_notional_usdt} USDT,"
             f" max global {r.max_global_notional_usdt} USDT, max daily loss {r.max_daily_loss_usdt} USDT",
             "#" * 78, ""]
    return "\n".join(lines)


def cmd_run_venue(args, config) -> int:
    """The ``run --venue`` command (``config`` already carries the flags' overrides). Returns the exit code."""
    from mmcore.venues.binance.markets import markets_for_run, pinned_markets_path
    from mmcore.venues.binance.feed import BinanceFeed

    venue = config.get("venue.name")
    if venue not in ("binance_spot", "binance_usdm"):
        raise ConfigError([f"venue.name = {venue}: paper/live trading is implemented for binance_spot and "
                           f"binance_usdm"])
    symbols = list(config.get("venue.symbols"))
    endpoint = config.get("venue.endpoint")
    live = config.get("mode") == "live"
    if live and not args.live:
        raise ConfigError(["mode = live: live trading also needs --live on the command line"])
    markets = asyncio.run(markets_for_run(pinned_markets_path(config, venue), venue, symbols,
                                          config.get("venue.strict_no_rest_markets"), endpoint))
    instruments = {s: markets.instrument(s) for s in symbols}
    credentials = None
    account = "paper"
    lock = None
    if live:
        from mmcore.venues.binance.credentials import CredentialsError, load_credentials
        try:
            credentials = load_credentials(env_file=config.resolve_path("config/.env"))
        except CredentialsError as exc:
            print(f"error: --live: {exc}", file=sys.stderr)
            return 2
        account = account_id(credentials.api_key)
        print(_banner(config, venue, symbols, endpoint), file=sys.stderr)
        from mmcore.persistence.locks import AccountLock, LockError
        try:
            lock = AccountLock(f"{venue}:{endpoint or 'binance'}", account).acquire()
        except LockError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    journal_dir = args.journal_dir or (str(config.resolve_path("journals")) if live else None)
    if journal_dir is not None:
        Path(journal_dir).mkdir(parents=True, exist_ok=True)

    async def main() -> tuple[Session, bool]:
        execution = None
        holder = []
        if live:
            from mmcore.venues.binance.execution import BinanceExecution
            execution = BinanceExecution(venue, symbols, instruments, credentials, config,
                                         on_report=lambda sym, rep: holder[0].on_report(sym, rep),
                                         on_connect=lambda: holder[0].on_connect(),
                                         on_disconnect=lambda: holder[0].on_disconnect(), endpoint=endpoint)

        def feed_factory(on_event, on_state):
            return BinanceFeed(venue, symbols, instruments, config, on_event, on_state)
        session = Session(config, venue, instruments, feed_factory, execution, journal_dir, account,
                          args.unknown_orders, args.reset_halt, on_status=_print_status)
        holder.append(session)
        clean = await session.run(args.duration)
        return session, clean

    import uvloop
    try:
        session, clean = uvloop.run(main())
    finally:
        if lock is not None:
            lock.release()
    summary = session_summary(session)
    print_session_summary(summary)
    if args.out:
        path = write_session_report(session, summary, Path(args.out))
        print(f"wrote {path}")
    if session.fatal is not None:
        print(f"error: {session.fatal}", file=sys.stderr)
        return 1
    return 0 if clean else 3
