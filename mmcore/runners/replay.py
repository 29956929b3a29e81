"""Replay/backtest runner: a recording -> decoder -> engine -> simulated exchange, deterministically.

Per-event processing time is measured inside the process with ``time.perf_counter_ns``: ``hot`` from the
parsed event to the order actions (engine only), ``with_parse`` from the raw line (JSON parse and decode
included). The simulated exchange's matching runs outside both timers: it stands for the venue.
The loop runs on the asyncio (uvloop) event loop and yields to it every ``YIELD_EVERY`` lines, so signal
handling and other tasks stay live during a long replay.

Bad input: the data file must be a regular file (checked before it is read); lines are bounded
(``MAX_LINE_BYTES``); a damaged file (truncated or corrupt gzip, trailing garbage, I/O error) ends the replay
where the damage is found, and the shutdown sequence and the report of the part replayed follow, with
``data_complete`` False and ``data_error`` saying what is wrong. A journal write that fails halts trading
(:meth:`Engine.on_journal_failure`), ends the replay at the next yield point, and the report names the failed
write (``journal_error``).
"""
from __future__ import annotations

import asyncio
import logging
import stat
import time
from array import array
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Callable

import numpy as np

from mmcore.engine.accounting import Portfolio
from mmcore.config import Config
from mmcore.engine.markouts import RunStats
from mmcore.engine.engine import Engine
from mmcore.instruments import Instrument, load_instrument
from mmcore.persistence.journal import KV_COID_COUNTER, Journal, JournalError, JournalPathError, NullJournal
from mmcore.sim.exchange import FILL_CAUSES, SimExchange
from mmcore.sim.feed import FeedClock, median_offset_ns
from mmcore.venues.binance.recording import (DataFileError, MalformedLine, ReplayReader, detect_market, detect_symbol,
                                         iter_lines, open_data_file, open_recording)
from mmcore.engine.wiring import build_engine, sim_latency, sim_models, sim_queue
from mmcore_ext.book import L2Book, sync_rule_for_market
from mmcore_ext.events import BookTicker, DepthDiff, Trade
from mmcore_ext.risk import STATE_NAMES as TRADING_STATES

log = logging.getLogger("mmcore.replay")
YIELD_EVERY = 4096
_MS = 1_000_000


@dataclass
class Series:
    """Time series sampled every ``report.sample_ms`` of event time (floats: for plotting only)."""

    ts_ns: list = field(default_factory=list)
    mid: list = field(default_factory=list)
    bid: list = field(default_factory=list)
    ask: list = field(default_factory=list)
    inventory: list = field(default_factory=list)
    pnl: list = field(default_factory=list)
    sigma: list = field(default_factory=list)         # the sigma quoted with (quote currency per sqrt(s))
    sigma_alt: list = field(default_factory=list)     # the other estimator's (ewma / realized)


@dataclass
class Session:
    """Everything one replay is made of (built by :func:`build_session`)."""

    config: Config
    path: Path
    instrument: Instrument
    reader: ReplayReader
    engine: Engine
    sim: SimExchange
    portfolio: Portfolio
    series: Series = field(default_factory=Series)
    # Per event (ns): ``hot_ns`` times Engine.on_event (book, sigma, quote, risk, reconcile, the requests it
    # sends); ``full_ns`` adds the line's decode. Neither includes the simulated exchange's work nor the
    # execution reports it delivers to Engine.on_report (fills, acks) before the event reaches the engine.
    stats: RunStats | None = None
    hot_ns: array = field(default_factory=lambda: array("q"))
    full_ns: array = field(default_factory=lambda: array("q"))
    journal: object = None
    events: int = 0
    wall_s: float = 0.0
    interrupted: bool = False
    last_ts_ns: int = 0
    shutdown_clean: bool | None = None
    #: What is wrong with the data file when the replay ended before its end because of it (else None).
    data_error: str | None = None
    #: The whole file was replayed (not ended by damage, an interrupt or a journal failure).
    data_complete: bool = False
    #: Exchange time on the local clock (``sim.feed_latency = recorded``); None: the exchange runs on local time.
    feed: FeedClock | None = None
    #: The decoded-event cache replayed instead of the file (:mod:`mmcore.runners.event_cache`), or None.
    cache: object = None


def build_session(config: Config, data: str | None = None, market: str | None = None,
                  journal: str | None = None, book_cls=L2Book, cache: bool = False, reader=None) -> Session:
    """Wire instrument, book, quoter, simulated exchange and engine from a validated config.

    ``cache``: replay the file's decoded-event cache (built on first use, rebuilt when stale:
    :func:`mmcore.runners.event_cache.load_or_build`) instead of decoding the file again; the same events, so the
    same report (timings aside).

    ``journal`` overrides ``journal.path``; ``book_cls`` lets benchmarks swap in the pure-Python reference
    book (same API) to compare the hot path in the same run. ``reader``: a reader of another format built by
    the caller (its ``instrument`` is used; no Binance detection; e.g. :mod:`mmcore.runners.tardis_replay`).

    Raises
    ------
    ValueError
        (with the path) the data file's market or symbol cannot be determined or is not in the pinned
        markets file, or the file is not a recording of the market (``ReplayReader.check_market``); the journal
        already holds a run; ``JournalPathError``: empty journal path, not a SQLite journal; ``MarketsError``:
        the pinned markets file or its ``.sha256`` is missing, does not match, or has an invalid field.
    ConfigError
        The config does not fit the instrument (:func:`mmcore.engine.wiring.check_instrument_fit`), or
        ``data.markets`` is not a directory.
    DataFileError, OSError
        The data file is missing, not a regular file, or unreadable; ``JournalUnavailable``: the journal
        cannot be opened or written, or is in use by another process.
    """
    path = Path(data) if data else config.resolve_path(config.get("data.path"))
    if not path.exists():
        raise FileNotFoundError(f"data file not found: {path}")
    if reader is None:
        market = market or config.get("data.market")
        if market == "auto":
            market = detect_market(path)
        table = markets_dir(config)
        try:
            instrument = load_instrument(market, detect_symbol(path), table / f"{market}.json")
        except KeyError as exc:
            raise ValueError(str(exc.args[0])) from None
        reader = ReplayReader(path, instrument=instrument)
    instrument = reader.instrument
    book = book_cls(sync_rule_for_market(instrument.market))
    engine_box = []
    _, maker, taker = sim_models(config, instrument)
    sim = SimExchange(book, sim_latency(config), maker, lambda rep: engine_box[0].on_report(rep), sim_queue(config),
                      taker_fees=taker)
    cached = None
    if cache:
        from mmcore.runners.event_cache import load_or_build
        cached, _ = load_or_build(path, ReplayReader(path, instrument=instrument), log)
    feed = None
    if config.get("sim.feed_latency") == "recorded":
        # one pass over the events: the cache's (no decoding), a reader of typed events, or a decoding pass
        if cached is not None:
            offset = _feed_offset(cached.stream(), path)
        elif isinstance(reader, ReplayReader):
            offset = _feed_offset(ReplayReader(path, instrument=instrument), path)
        else:
            offset = _feed_offset(reader)
        feed = FeedClock(offset, int(config.get("sim.feed_latency_base_ms") * _MS))
    # A journal given here (the CLI's --journal) is relative to the working directory, the config's to the
    # repository root.
    if journal is not None and not str(journal):
        raise JournalPathError("--journal: empty path (give a SQLite file path, or leave --journal out)")
    journal_path = Path(journal).resolve() if journal is not None else config.get("journal.path")
    jr = NullJournal()
    if journal_path:
        jr = Journal(config.resolve_path(journal_path), config.get("journal.synchronous"))
        if jr.load(()).kv.get(KV_COID_COUNTER) is not None:
            jr.close()
            raise ValueError(f"journal {journal_path} already holds a run (its client order ids would be used "
                             f"again); give each backtest a new journal file")
    try:
        engine = build_engine(config, instrument, sim, jr, book)
    except BaseException:
        jr.close()
        raise
    engine_box.append(engine)
    return Session(config, path, instrument, reader, engine, sim, engine.portfolio, journal=jr, feed=feed,
                   cache=cached)


_FEED_OFFSETS: dict = {}           # (path, size, mtime_ns) -> median offset (ns): one pass per file and process


def _feed_offset(events_of, path: Path | None = None) -> int:
    """The median ``local - E`` of the recording (ns; :func:`mmcore.sim.feed.median_offset_ns`), from one pass
    over ``events_of`` (a fresh ReplayReader of the file, a reader of typed events, or a cache's stream); a damaged
    file gives the median of the part before the damage. With ``path``, remembered per file, size and mtime for
    the process (sweeps and tests build many sessions on one file). Raises ValueError when no event has an
    exchange time."""
    key = None
    if path is not None:
        st = path.stat()
        key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
        if key in _FEED_OFFSETS:
            return _FEED_OFFSETS[key]

    def events():
        try:
            yield from events_of
        except DataFileError:
            return

    offset, n = median_offset_ns(events())
    log.info("feed latency: recorder clock offset %.3f ms (median local - E of %d events)", offset / 1e6, n)
    if key is not None:
        _FEED_OFFSETS[key] = offset
    return offset


def markets_dir(config: Config) -> Path:
    """The config's ``data.markets`` directory. Raises ConfigError when it cannot be read or is no directory."""
    from mmcore.config import ConfigError, file_kind
    table = config.resolve_path(config.get("data.markets"))
    try:
        mode = table.stat().st_mode
    except OSError as exc:
        raise ConfigError([f"data.markets = {table}: cannot read: {exc.strerror}"]) from None
    if not stat.S_ISDIR(mode):
        raise ConfigError([f"data.markets = {table}: is {file_kind(mode)}, not a directory of pinned markets "
                           f"files (<market>.json)"])
    return table


async def run_session(s: Session, progress: Callable[[int, int], None] | None = None) -> Session:
    """Replay the whole file through the engine. ``progress(bytes_done, bytes_total)`` is called now and then.

    Ends early, keeping what was replayed, when the file turns out to be damaged (``s.data_error``), when
    interrupted, or when a journal write failed (trading halted); the shutdown sequence runs in every case.
    """
    engine, sim, reader = s.engine, s.sim, s.reader
    decode = reader.decoder.decode if isinstance(reader, ReplayReader) else None
    on_event = engine.on_event
    advance, on_trade, deliver = sim.advance, sim.on_trade, sim.deliver
    on_ticker, on_diff = sim.on_book_ticker, sim.on_depth_diff
    book = engine.book
    feed_time = s.feed.exchange_time if s.feed is not None else None
    hot, full = s.hot_ns, s.full_ns
    clock = time.perf_counter_ns
    if s.stats is None:
        s.stats = RunStats(engine, s.instrument.tick_size, s.instrument.lot_size)
    after_event = s.stats.after_event
    sample_ns = s.config.get("report.sample_ms") * _MS
    next_sample = 0
    t_start = time.perf_counter()
    events = 0
    next_timer = -1
    ts = lineno = 0
    cached = s.cache
    tell = None
    if cached is not None:                # the decoded events: no file to read, nothing to decode
        source, decode, raw_fh, fh = cached.stream(), None, None, None
        total = cached.events
    elif not isinstance(reader, ReplayReader):      # a reader of typed events (Tardis CSV: mmcore.data.tardis)
        source, decode, raw_fh, fh = iter(reader), None, None, None
        total, tell = reader.size(), reader.bytes_read
    else:
        total = s.path.stat().st_size
        raw_fh = open_data_file(s.path)
        try:
            fh = open_recording(s.path, raw_fh)
        except BaseException:
            raw_fh.close()
            raise
        source = iter_lines(fh, s.path)
    try:
        lineno = 0
        for raw in source:
            lineno += 1
            t0 = clock()
            if decode is None:
                ev = raw
            else:
                try:
                    ev = decode(raw)
                except MalformedLine as exc:
                    reader.report_malformed(lineno, exc, raw)
                    continue
                if ev is None:
                    reader.ignored += 1
                    continue
            t_parsed = clock()
            ts = ev.ts_local_ns
            # The exchange's clock: the event's exchange time on the local axis (feed latency), or local time.
            xs = feed_time(ev.ts_event_ns, ts) if feed_time is not None else ts
            if ts > next_timer:           # liveness checks due before this event (one compare per event)
                next_timer = _run_timers(engine, advance if xs == ts else _clamped(advance, deliver, xs), ts)
            # The exchange sees the market first: due requests, then this trade against our orders; the engine
            # then gets the reports that have reached it by its (local) time, then the event.
            t = type(ev)
            if t is Trade:
                on_trade(xs, ev.trade_id, ev.price, ev.qty, ev.side)
            else:
                advance(xs)
            if xs != ts:
                deliver(ts)
            t1 = clock()
            on_event(ev)
            t2 = clock()
            # Book changes reach the exchange's queue and cross-fill models (the shared book now holds them).
            if t is BookTicker:
                on_ticker(xs, ev.update_id, ev.bid_px, ev.bid_qty, ev.ask_px, ev.ask_qty)
            elif t is DepthDiff and book.last_update_id == ev.final_update_id and book.synced:
                on_diff(xs, ev)
            hot.append(t2 - t1)
            full.append(t2 - t1 + t_parsed - t0)
            events += 1
            after_event(ts)                           # markouts and quoting statistics
            if ts >= next_sample:
                _sample(s, ts)
                next_sample = ts + sample_ns
            if lineno % YIELD_EVERY == 0:
                if progress is not None:
                    progress(raw_fh.tell() if raw_fh is not None else tell() if tell is not None else lineno, total)
                await asyncio.sleep(0)
                if s.interrupted or engine.journal_failed_ts is not None:
                    log.warning("replay %s at line %d", "interrupted" if s.interrupted else
                                "stopped: journal write failed", lineno)
                    break
        else:
            s.data_complete = True
        if decode is not None:
            reader.lines = lineno
        elif cached is not None and s.data_complete:      # the source's own counts (its lines, not events)
            h = cached.header
            reader.lines, reader.ignored, reader.malformed = h["lines"], h["ignored"], h["malformed"]
        if progress is not None:
            progress(total, total)
    except DataFileError as exc:          # damage found while reading: keep what was replayed
        if decode is not None:
            reader.lines = lineno
        s.data_error = exc.problem
        log.error("%s: replay stopped after line %d; shutting down and reporting the part replayed", exc, lineno)
    except JournalError as exc:           # a flush on the hot path (id reservation) found the failure first
        if decode is not None:
            reader.lines = lineno
        if engine.journal_failed_ts is None:
            engine.on_journal_failure(ts)
        log.error("replay stopped at line %d: %s", lineno, exc)
    finally:
        if fh is not None:
            fh.close()
            raw_fh.close()
    s.events = events
    s.last_ts_ns = ts if events else 0
    s.wall_s = time.perf_counter() - t_start
    shutdown(s)
    return s


def _run_timers(engine: Engine, advance: Callable[[int], None], ts: int) -> int:
    """Fire :meth:`Engine.on_timer` at every due time before event time ``ts`` (the exchange first advances to
    it, so e.g. a staleness cancel takes effect during a silence in the recording, before the next trade);
    arm the timer at the first event. Returns the next due time."""
    due = engine.next_timer_ns
    if due < 0:
        engine.on_timer(ts)
    while 0 <= due < ts:
        advance(due)
        engine.on_timer(due)
        due = engine.next_timer_ns
    return engine.next_timer_ns


def _clamped(advance: Callable[[int], None], deliver: Callable[[int], None], xs: int) -> Callable[[int], None]:
    """A timer's advance when the exchange runs ahead of local time: the exchange goes no further than the
    current event's exchange time ``xs``, and the reports due by the timer's local time are delivered."""
    def go(due: int) -> None:
        advance(min(due, xs))
        deliver(due)
    return go


SHUTDOWN_GRACE_NS = 10_000_000_000


def shutdown(s: Session) -> bool:
    """Cancel all orders, let the exchange confirm, flatten if ``execution.flatten_on_shutdown``, and check
    that nothing is left open.

    Returns True (and sets ``s.shutdown_clean``) when the exchange reports no open order of ours and the
    order manager tracks no live order; the journal is flushed and closed either way (a failed journal write
    is logged and left in ``journal.failed`` for the report, never raised from here).
    """
    ts = s.last_ts_ns
    eng = s.engine
    eng.orders.cancel_all(ts)
    s.sim.advance(ts + SHUTDOWN_GRACE_NS)          # the exchange processes the cancels
    for _ in range(3):                             # a report in flight (an amend ack) may leave an order open:
        if not (s.sim.open_orders() or eng.orders.orders):            # cancel again once it has arrived
            break
        ts += SHUTDOWN_GRACE_NS
        eng.orders.cancel_all(ts)
        s.sim.advance(ts + SHUTDOWN_GRACE_NS)
    if s.config.get("execution.flatten_on_shutdown") and s.portfolio.position:
        try:
            eng.start_flatten(ts)                  # IOC against the last book, flat_retries attempts
            while eng.flatten_due_ns >= 0:
                ts = max(ts, eng.flatten_due_ns)
                s.sim.advance(ts + SHUTDOWN_GRACE_NS)
                eng.flatten_step(ts)
        except JournalError as exc:                # the id reservation could not be written: stop flattening
            log.error("flatten at shutdown stopped: %s", exc)
        s.sim.advance(ts + SHUTDOWN_GRACE_NS)
    left_exchange = s.sim.open_orders()            # confirm by querying open orders
    left_tracked = s.engine.orders.orders
    s.shutdown_clean = not left_exchange and not left_tracked
    if not s.shutdown_clean:
        log.error("shutdown not clean: %d open at the exchange, %d tracked live", len(left_exchange),
                  len(left_tracked))
    if s.journal is not None:
        pf = s.portfolio
        s.journal.record_position(ts, pf.position, pf.cash_tl, pf.fees)
        try:
            s.journal.close()
        except JournalError as exc:
            log.error("journal %s: %s", s.journal.path, exc)
    return s.shutdown_clean


def _sample(s: Session, ts: int) -> None:
    book = s.engine.book
    mid_x2 = book.mid_x2() if book.synced else 0
    if not mid_x2:
        return
    tick = s.engine.tick
    ser = s.series
    ser.ts_ns.append(ts)
    ser.mid.append(mid_x2 * 0.5 * tick)
    ser.bid.append(s.engine.last_bid * tick if s.engine.last_bid else float("nan"))
    ser.ask.append(s.engine.last_ask * tick if s.engine.last_ask else float("nan"))
    ser.inventory.append(float(s.instrument.qty_of(s.portfolio.position)))
    ser.pnl.append(float(s.portfolio.mtm_pnl(mid_x2)))
    ser.sigma.append(s.engine.vol.sigma)
    alt = s.engine.sigma_alt
    ser.sigma_alt.append(alt.sigma if alt is not None else float("nan"))


def strategy_summary(eng, series: Series | None = None) -> dict:
    """The strategy that ran and its estimates: model and class, ladder levels, fair price, sigma estimators
    (the one quoted with first) now and over time (at most 500 samples of the report series, in quote currency
    and ticks per sqrt(second)), and the model's own state (layered ladder regime, band requotes)."""
    strat, tick = eng.strategy, eng.tick
    names = {"EwmaVolatility": "ewma", "RealizedVolatility": "realized"}
    out = {"class": type(strat).__name__, "levels": strat.levels, "fair_price": eng.fair_price,
           "sigma_estimator": names.get(type(eng.vol).__name__, type(eng.vol).__name__),
           "sigma": eng.vol.sigma, "sigma_ticks": eng.vol.sigma / tick,
           "sigma_alt": eng.sigma_alt.sigma if eng.sigma_alt is not None else None,
           "stop_loss_flattens": eng.counters["stop_loss_flattens"],
           "reference_stale": eng.counters["reference_stale"]}
    if hasattr(strat, "regime"):
        from mmcore_ext.strategy import REGIME_NAMES
        out["regime"] = REGIME_NAMES[strat.regime]
    if hasattr(strat, "requotes"):
        out["band_requotes"], out["band_anchor"] = strat.requotes, strat.anchor
    if series is not None and series.ts_ns:
        step = max(1, len(series.ts_ns) // 500)
        out["sigma_over_time"] = [{"ts_ns": t, "sigma": a, "sigma_ticks": a / tick,
                                   "sigma_alt": None if b != b else b}
                                  for t, a, b in list(zip(series.ts_ns, series.sigma, series.sigma_alt))[::step]]
    return out


def percentiles_us(values: array) -> dict:
    """``{"p50", "p99", "max"}`` of ns samples, in µs (rounded to 0.01)."""
    if not values:
        return {"p50": None, "p99": None, "max": None}
    a = np.frombuffer(values, dtype=np.int64)
    p50, p99 = np.percentile(a, [50, 99])
    return {"p50": round(float(p50) / 1000, 2), "p99": round(float(p99) / 1000, 2),
            "max": round(int(a.max()) / 1000, 2)}


def _intensity_summary(eng) -> dict | None:
    """The online A / kappa estimation (glft): fits, the values in use, arrivals and prints seen, and the
    estimates over time (at most 500, evenly thinned); None without an estimator."""
    est = eng.intensity
    if est is None:
        return None
    rows = list(eng.estimates)
    step = max(1, len(rows) // 500)
    return {"fits": eng.counters["intensity_fits"], "fits_refused": eng.counters["intensity_fits_refused"],
            "fits_kept": eng.counters["intensity_fits_kept"],
            "A_per_s": eng.quoter.A, "kappa_per_quote": eng.quoter.kappa, "arrivals": est.arrivals,
            "prints": est.prints,
            "estimates": [{"ts_ns": t, "A_per_s": a, "kappa_per_quote": k, "sigma": sg}
                          for t, a, k, sg in rows[::step]]}


def _sim_summary(s: Session) -> dict:
    """The simulated exchange's models and its fills by cause (counts and volume in base units)."""
    sim = getattr(s, "sim", None)
    if sim is None or not hasattr(sim, "fill_counts"):
        return None
    lat, feed = sim.latency, getattr(s, "feed", None)
    return {"queue_model": getattr(sim.queue, "name", type(sim.queue).__name__),
            "latency_model": type(lat).__name__,
            "entry_latency_ms": lat.entry_ns / 1e6 if hasattr(lat, "entry_ns") else None,
            "response_latency_ms": lat.response_ns / 1e6 if hasattr(lat, "response_ns") else None,
            "feed": feed.summary() if feed is not None else None,
            "fill_causes": {k: {"fills": sim.fill_counts[k], "volume": str(s.instrument.qty_of(sim.fill_lots[k]))}
                            for k in FILL_CAUSES}}


def summarize(s: Session) -> dict:
    """The run's results in report units (decimal strings for money and quantities)."""
    inst, pf, eng = s.instrument, s.portfolio, s.engine
    book = eng.book
    mid_x2 = book.mid_x2() or eng.gate.mid_x2_ticks     # the book may be empty at the end (a gap): last mid
    fills = [{"ts_ns": f.ts_ns, "side": "buy" if f.side > 0 else "sell", "price": str(inst.price_of(f.price)),
              "qty": str(inst.qty_of(f.qty)), "client_order_id": f.client_order_id, "trade_id": f.trade_id,
              "fee": str(f.fee)} for f in eng.fills]
    last_mid = Decimal(mid_x2) * inst.tick_size / 2
    stats = getattr(s, "stats", None)
    return {
        "data": str(s.path),
        "market": inst.market,
        "symbol": inst.symbol,
        "events": s.events,
        "lines": s.reader.lines,
        "wall_s": round(s.wall_s, 4),
        "events_per_s": round(s.events / s.wall_s) if s.wall_s else None,
        "orders_placed": eng.orders.placed,
        "cancels": eng.orders.cancels,
        "rejects": eng.orders.rejects,
        "fills": fills,
        "fill_count": len(fills),
        "buy_fills": pf.buy_count,
        "sell_fills": pf.sell_count,
        "buy_volume": str(inst.qty_of(pf.buy_volume)),
        "sell_volume": str(inst.qty_of(pf.sell_volume)),
        "final_inventory": str(inst.qty_of(pf.position)),
        "max_abs_inventory": str(inst.qty_of(pf.max_abs_position)),
        "cash": str(pf.cash()),
        "fees": str(pf.fees),
        "last_mid": str(last_mid),
        "realized_pnl": str(pf.realized_pnl()),
        "unrealized_pnl": str(pf.unrealized_pnl(mid_x2)),
        "mtm_pnl": str(pf.mtm_pnl(mid_x2)),
        "latency_us": percentiles_us(s.hot_ns),
        "latency_with_parse_us": percentiles_us(s.full_ns),
        "gaps": book.gaps,
        "stale_snapshots": book.stale_snapshots,
        "crossed_book_events": book.crossed,
        "malformed_lines": s.reader.malformed,
        "bbo_checks_ok": eng.counters["bbo_checks_ok"],
        "bbo_mismatches": eng.counters["bbo_mismatches"],
        "quoting_pauses": eng.counters["pauses"],
        "stale_pauses": eng.counters["stale_pauses"],
        "quotes_refused": eng.counters["quotes_refused"],
        "fill_contradictions": eng.orders.counters["fill_contradictions"],
        "ttl_cancels": eng.orders.counters["ttl_cancels"],
        "model": type(eng.quoter).__name__ if eng.quoter is not None else type(eng.strategy).__name__,
        "strategy": strategy_summary(eng, s.series),
        "sim": _sim_summary(s),
        **(stats.summary(pf.mtm_pnl(mid_x2), pf.fees) if stats is not None else {"quoting": None}),
        "intensity": _intensity_summary(eng),
        "risk_refusals": eng.orders.refusal_counts(),
        "trading_state_changes": [{"ts_ns": ts, "from": TRADING_STATES[a], "to": TRADING_STATES[b], "reason": r}
                                  for ts, a, b, r in eng.gate.state_changes],
        "trading_state": TRADING_STATES[eng.gate.trading_state],
        "orders": eng.orders.state_counts(),
        "order_counters": dict(eng.orders.counters),
        "flatten_orders": eng.counters["flatten_orders"],
        "shutdown_clean": s.shutdown_clean,
        "interrupted": s.interrupted,
        "data_complete": s.data_complete,
        "data_error": s.data_error,
        "journal_error": getattr(s.journal, "failed", None),
        "journal_lost_writes": getattr(s.journal, "errors", 0),
        "journal_failed_ts_ns": eng.journal_failed_ts,
    }
