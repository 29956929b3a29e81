"""Paper and live sessions on a venue: N symbols (1-10) on one event loop, one engine and book each.

``python -m mmcore run --venue binance_spot|binance_usdm --symbols BTCUSDT,ETHUSDT [--live] [--duration S]
[--out DIR] [--endpoint URL] [--journal-dir DIR]``.

Shape (the engine never knows the venue; :mod:`mmcore.venues.base` is the contract):

- market data: one :class:`~mmcore.venues.base.MarketDataFeed` for all symbols delivers typed events
  synchronously from the transport callback to :meth:`Session.on_event` (no queue hop), which hands them to the
  symbol's :class:`~mmcore.engine.engine.Engine` (book, sigma, quote, risk, order actions). A depth diff that
  leaves the book unsynced (start, sequence gap) makes the session ask the feed for a snapshot (one in flight
  per symbol, asked again every :data:`SNAPSHOT_RETRY_S` while still unsynced). A feed state ``STALE``
  (disconnect, watchdog) pauses the symbol (every order cancelled) and invalidates its book, so it quotes again
  only after a fresh snapshot and a diff applied on it (frames flow again: a snapshot alone, while the stream
  stays silent, is not quoted on); ``POLLING`` is the REST fallback and is traded like ``LIVE``.
- paper (default): each symbol's orders go to a :class:`~mmcore.sim.exchange.SimExchange` that shares the
  live book and sees the live trades, depth changes and bookTickers, with the replay's queue model
  (``sim.queue_model``), cross fills and constant entry / cancel latency (no response or feed latency: reports
  come back at once); clocks are the local receive times (``ts_local_ns``, wall clock ns) and a timer task
  advances the exchanges and the engines' timers every :data:`TIMER_TICK_S` of wall time.
- live (``--live``): orders go over the venue's execution connection (Binance: the WebSocket API); before any
  quote, and after every reconnect of that connection, :func:`mmcore.engine.recovery.recover` reconciles each
  symbol's journal with the venue's open orders and fills. One process per (venue, account): the account lock
  (:mod:`mmcore.persistence.locks`) is taken before any journal is opened or anything sent. Journals are one
  SQLite file per symbol: ``<journal dir>/<venue>-<account>-<SYMBOL>.db`` (``account``: a hash of the API key,
  never the key). Client order ids are ``<execution.client_order_id_prefix><symbol lowercase>-<base36>``
  (``mm-btcusdt-1a``) so that recovery tells the symbols' orders apart.
- one :class:`~mmcore_ext.risk.GlobalExposure` is shared by the gates of every symbol; after each event or
  report of a symbol its ``notional_usdt`` is set to the sum of the gates' ``exposure_usdt()`` (the symbol's
  own term updated, the others cached), so ``risk.max_global_notional_usdt`` acts across symbols.

Per-event processing time, per symbol: ``hot`` times ``Engine.on_event`` (book, quote, risk, the order requests
it writes); ``frame`` is from the frame's receipt (``ts_local_ns``, taken by the feed at callback entry) to the
end of the order actions, JSON parse and decode included, the paper exchange's matching excluded.

Stop (SIGINT/SIGTERM, ``--duration`` elapsed, or a fatal failure): stop quoting, cancel every order and confirm
that none is open (paper: the simulated exchange; live: the venue's open orders, re-cancelling every
:data:`RECANCEL_S`, then one more reconciliation), flatten with ``execution.flatten_on_shutdown``, write a final
position snapshot per journal, print the replay's summary table per symbol and a total. Exit codes: 0 stopped
clean; 3 stopped but an order may be left open or a position could not be closed; 1 runtime failure (the
account is already traded by another process, a journal cannot be opened, the venue refused the credentials).
"""
from __future__ import annotations

import asyncio
import gc
import hashlib
import logging
import random
import signal
import sys
import threading
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path

from mmcore.aio import raise_if_cancelled
from mmcore.config import Config
from mmcore.engine.recovery import TERMINAL_STATE_NAMES, LateFill, book_untracked_fill, is_own_id, recover
from mmcore.engine.markouts import RunStats
from mmcore.engine.wiring import build_engine, sim_models, sim_queue
from mmcore.execution import OrderFilled
from mmcore.instruments import Instrument
from mmcore.persistence.journal import Journal, JournalError, NullJournal
from mmcore.runners.replay import Series, _sample
from mmcore.sim.exchange import SimExchange
from mmcore.venues.base import LIVE, POLLING, STALE
from mmcore.venues.common import QueryError
from mmcore_ext.book import APPLIED, L2Book, sync_rule_for_market
from mmcore_ext.events import BookTicker, DepthDiff, DepthSnapshot, Trade
from mmcore_ext.risk import GlobalExposure

log = logging.getLogger("mmcore.live")

#: Wall-clock seconds between two runs of the timer task (engine timers, paper exchanges, snapshot retries).
TIMER_TICK_S = 0.05
#: Seconds before a snapshot is asked for again while the symbol's book is still not synced.
SNAPSHOT_RETRY_S = 2.0
#: Seconds the stop sequence waits for the venue to confirm that no order of ours is open.
STOP_TIMEOUT_S = 10.0
#: Seconds between repeated cancels of an order still open during the stop sequence.
RECANCEL_S = 1.0
#: Per-event timings kept per symbol; beyond, a uniform reservoir sample (bounded memory, unbiased percentiles).
MAX_TIMING_SAMPLES = 50_000
#: Plot points kept per symbol; beyond, every other point is dropped and the sampling period doubles.
MAX_SERIES_POINTS = 20_000
#: The paper exchange's time allowed for cancels at the stop (ns of its clock).
PAPER_GRACE_NS = 10_000_000_000
_MS = 1_000_000


def emit(event: str, **fields) -> None:
    """One JSON line ``{"event": ..., ...}`` on stdout (live sessions: each recovery, the stop): for operators'
    tools and the crash tests."""
    import orjson
    sys.stdout.buffer.write(orjson.dumps({"event": event, **fields}, option=orjson.OPT_APPEND_NEWLINE))
    sys.stdout.flush()


class _Counts:
    """What summarize() reads of a replay's reader: lines seen and malformed lines (from the feed)."""

    def __init__(self):
        self.lines = 0
        self.malformed = 0


@dataclass
class SymbolSession:
    """One symbol of a session; has the attributes :func:`mmcore.runners.replay.summarize` reads."""

    config: Config
    path: str
    instrument: Instrument
    engine: object
    portfolio: object
    journal: object
    sim: SimExchange | None = None        # paper
    client: object = None                 # live: the symbol's ExecutionClient
    series: Series = field(default_factory=Series)
    hot_ns: array = field(default_factory=lambda: array("q"))
    full_ns: array = field(default_factory=lambda: array("q"))
    reader: _Counts = field(default_factory=_Counts)
    events: int = 0
    wall_s: float = 0.0
    last_ts_ns: int = 0
    shutdown_clean: bool = False
    interrupted: bool = False
    data_complete: bool = True
    data_error: str | None = None
    feed_state: str = STALE
    await_diff: bool = True               # after a snapshot (start, STALE), quote only once a diff applied on it
    ready: bool = False                   # live: reconciled with the venue since the last (re)connect
    restarted: bool = False               # live: the restart reconciliation was done
    snapshot_asked: float = -1e9          # time.monotonic() of the last snapshot request
    next_sample: int = 0
    sample_ns: int = 0                    # the plot's sampling period (doubles when the series is thinned)
    hot_max_ns: int = 0                   # exact maxima (the timing arrays are a reservoir sample on long runs)
    full_max_ns: int = 0
    exposure: float = 0.0                 # this symbol's last term in the global exposure
    late_fills: int = 0
    late_fills_refused: int = 0
    journal_open_orders: int = 0          # open orders the journal held at start (set before the first recovery)
    recoveries: list = field(default_factory=list)
    stats: RunStats | None = None         # markouts and quoting statistics (set when the engine is built)


def _refusal_text(refused) -> str:
    """``code reason`` of a venue's refusal outcome (mmcore.venues.binance.errors.ErrorOutcome), or its str."""
    code, reason = getattr(refused, "code", None), getattr(refused, "reason", None)
    return f"{code} {reason}" if reason else str(refused)[:200]


def account_id(api_key: str) -> str:
    """A stable, non-secret account name for locks and journal names: 12 hex digits of SHA-256(API key)."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:12]


def journal_path(journal_dir: str | Path, venue: str, account: str, symbol: str) -> Path:
    """``<journal_dir>/<venue>-<account>-<SYMBOL>.db``."""
    return Path(journal_dir) / f"{venue}-{account}-{symbol}.db"


class Session:
    """A paper or live session of several symbols on one venue (see the module docstring).

    Parameters
    ----------
    config : Config
    venue : str
        ``binance_spot`` or ``binance_usdm``.
    instruments : dict[str, Instrument]
        The symbols traded (1-10), from the pinned markets.
    feed_factory : callable
        ``feed_factory(on_event, on_state) -> MarketDataFeed`` for these symbols.
    execution : object, optional
        Live: the venue's execution side (``execution(symbol) -> ExecutionClient``, ``start()``, ``close()``,
        ``connected``); it calls :meth:`on_report`, and awaits :meth:`on_connect` after every (re)connect.
        None: paper.
    journal_dir : str or Path, optional
        Directory of the per-symbol journals (required live; paper journals only when given).
    account : str
        Account name for the journal file names (live: :func:`account_id`).
    unknown_policy, reset_halt
        As in :func:`mmcore.engine.recovery.reconcile` / the restart of a HALTED journal.
    on_status : callable, optional
        ``on_status(lines: list[str])`` every ``report.status_every_s`` of wall time: one line per symbol
        (:meth:`status_lines`); the CLI prints them on stderr.

    Raises
    ------
    ConfigError
        The config does not fit an instrument (field named). JournalError / OSError / BlockingIOError: a
        journal cannot be opened (every journal opened so far is closed again).
    """

    def __init__(self, config: Config, venue: str, instruments: dict, feed_factory, execution=None,
                 journal_dir=None, account: str = "paper", unknown_policy: str = "cancel", reset_halt: bool = False,
                 on_status=None):
        self.config = config
        self.venue = venue
        self.live = execution is not None
        self.execution = execution
        self.unknown_policy = unknown_policy
        self.reset_halt = reset_halt
        self.exposure = GlobalExposure()
        self.symbols: dict[str, SymbolSession] = {}
        self.stopping = False
        self.fatal: BaseException | None = None
        self._stop = asyncio.Event()
        self.forced = False                     # a second stop signal: the stop sequence waits no more
        self._recover_lock = asyncio.Lock()
        self._tasks: set = set()
        self.on_status = on_status
        self.status_every_s = config.get("report.status_every_s")
        self.sample_ns = config.get("report.sample_ms") * _MS
        self._rng = random.Random(0)
        self.counters = {"snapshot_requests": 0, "stale_states": 0, "polling_states": 0, "unknown_symbol_events": 0,
                         "event_errors": 0}
        prefix = config.get("execution.client_order_id_prefix")
        try:
            for sym, inst in instruments.items():
                jr = NullJournal()
                if journal_dir is not None:
                    jr = Journal(journal_path(journal_dir, venue, account, sym), config.get("journal.synchronous"))
                self.symbols[sym] = self._build_symbol(config, venue, sym, inst, jr, f"{prefix}{sym.lower()}-")
        except BaseException:
            self.close_journals()
            raise
        for ss in self.symbols.values():
            ss.sample_ns = self.sample_ns
        self.feed = feed_factory(self.on_event, self.on_state)

    def _build_symbol(self, config, venue, sym, inst, jr, prefix) -> SymbolSession:
        try:
            if self.live:
                client = self.execution.execution(sym)
                eng = build_engine(config, inst, client, jr, None, self.exposure, prefix)
                ss = SymbolSession(config, f"live:{venue}", inst, eng, eng.portfolio, jr, client=client,
                                   stats=RunStats(eng, inst.tick_size, inst.lot_size))
                ss.journal_open_orders = len(jr.load(TERMINAL_STATE_NAMES).open_orders)
                return ss
            book = L2Book(sync_rule_for_market(inst.market))
            latency, maker, taker = sim_models(config, inst)
            sim = SimExchange(book, latency, maker, lambda rep, s=sym: self.on_report(s, rep), sim_queue(config),
                              taker_fees=taker)
            eng = build_engine(config, inst, sim, jr, book, self.exposure, prefix)
            ss = SymbolSession(config, f"paper:{venue}", inst, eng, eng.portfolio, jr, sim=sim,
                               stats=RunStats(eng, inst.tick_size, inst.lot_size))
            ss.ready = ss.restarted = True
            return ss
        except BaseException:
            jr.close()
            raise

    # ------------------------------------------------------------------ callbacks (hot path)
    def on_event(self, symbol: str, ev) -> None:
        """One market event of ``symbol`` from the feed (synchronously from its frame callback)."""
        ss = self.symbols.get(symbol)
        if ss is None:
            self.counters["unknown_symbol_events"] += 1
            return
        t = type(ev)
        ts = ev.ts_local_ns
        sim_ns = 0
        clock = time.perf_counter_ns
        try:
            sim = ss.sim
            if sim is not None:                       # the exchange sees the market first, as in replay
                t0 = clock()
                if t is Trade:
                    sim.on_trade(ts, ev.trade_id, ev.price, ev.qty, ev.side)
                else:
                    sim.advance(ts)
                sim_ns = clock() - t0
            eng = ss.engine
            ss.reader.lines += 1
            if self.stopping or not ss.ready or ss.await_diff:
                # book only, no quoting: the stop sequence, not reconciled yet, or no diff since the resync
                book = eng.book
                if t is DepthDiff:
                    if book.apply_diff(ev) == APPLIED and book.synced and ss.await_diff:
                        ss.await_diff = False         # frames flow on a synced book again: quote from the next
                elif t is DepthSnapshot:
                    book.load_snapshot(ev)
                    if ss.feed_state == POLLING and book.synced:
                        ss.await_diff = False         # REST polling: each snapshot is the fresh data
            else:
                t1 = clock()
                eng.on_event(ev)
                t2 = clock()
                if sim is not None:                   # book changes reach the queue and cross-fill models
                    t3 = clock()
                    if t is BookTicker:
                        sim.on_book_ticker(ts, ev.update_id, ev.bid_px, ev.bid_qty, ev.ask_px, ev.ask_qty)
                    elif t is DepthDiff and eng.book.synced and eng.book.last_update_id == ev.final_update_id:
                        sim.on_depth_diff(ts, ev)
                    sim_ns += clock() - t3
                full = time.time_ns() - ts - sim_ns
                ss.stats.after_event(ts)              # markouts, quoting statistics (off the timed path)
                n = ss.events
                if n < MAX_TIMING_SAMPLES:
                    ss.hot_ns.append(t2 - t1)
                    ss.full_ns.append(full)
                else:                                 # reservoir sampling: memory stays bounded on long runs
                    j = self._rng.randrange(n + 1)
                    if j < MAX_TIMING_SAMPLES:
                        ss.hot_ns[j] = t2 - t1
                        ss.full_ns[j] = full
                if full > ss.full_max_ns:
                    ss.full_max_ns = full
                if t2 - t1 > ss.hot_max_ns:
                    ss.hot_max_ns = t2 - t1
                ss.events = n + 1
                ss.last_ts_ns = ts
                self._update_exposure(ss)
                if ts >= ss.next_sample:
                    self._sample(ss, ts)
            if (t is DepthDiff or t is DepthSnapshot) and not ss.engine.book.synced:
                self._ask_snapshot(symbol, ss)
        except JournalError as exc:                   # an id reservation could not be written: trading halts
            log.error("%s: journal write failed: %s; stopping", symbol, exc)
            self.fatal = self.fatal or exc
            self._stop.set()
        except Exception as exc:                      # noqa: BLE001 - never let one event kill the feed
            self.counters["event_errors"] += 1
            log.exception("%s: event %s could not be processed (%r): pausing the symbol", symbol, t.__name__, exc)
            ss.engine.pause(ts, f"event error {exc!r}"[:200])
            ss.engine.book.invalidate()

    def _sample(self, ss: SymbolSession, ts: int) -> None:
        _sample(ss, ts)
        ss.next_sample = ts + ss.sample_ns
        ser = ss.series
        if len(ser.ts_ns) > MAX_SERIES_POINTS:         # long run: halve the resolution, keep the whole span
            for name in ("ts_ns", "mid", "bid", "ask", "inventory", "pnl"):
                del getattr(ser, name)[1::2]
            ss.sample_ns *= 2

    def _update_exposure(self, ss: SymbolSession) -> None:
        e = ss.engine.gate.exposure_usdt()
        if e != ss.exposure:
            self.exposure.notional_usdt += e - ss.exposure
            ss.exposure = e

    def _ask_snapshot(self, symbol: str, ss: SymbolSession) -> None:
        now = time.monotonic()
        if now - ss.snapshot_asked >= SNAPSHOT_RETRY_S and ss.feed_state != STALE:
            ss.snapshot_asked = now
            self.counters["snapshot_requests"] += 1
            self.feed.request_snapshot(symbol)

    def on_state(self, symbol: str, state: str, reason: str) -> None:
        """The feed's state of ``symbol`` changed: STALE pauses it and forgets its book; LIVE / POLLING ask for a
        snapshot if the book is not synced."""
        ss = self.symbols.get(symbol)
        if ss is None or state == ss.feed_state:
            return
        log.warning("%s: market data %s -> %s (%s)", symbol, ss.feed_state, state, reason)
        ss.feed_state = state
        if state == STALE:
            self.counters["stale_states"] += 1
            ss.engine.pause(time.time_ns(), f"market data stale: {reason}"[:200])
            ss.engine.book.invalidate()
            ss.await_diff = True
            ss.snapshot_asked = -1e9
        elif state in (LIVE, POLLING):
            if state == POLLING:
                self.counters["polling_states"] += 1
            if not ss.engine.book.synced:
                self._ask_snapshot(symbol, ss)

    def on_report(self, symbol: str, rep) -> None:
        """One execution report of ``symbol`` (the paper exchange's or the venue's)."""
        ss = self.symbols.get(symbol)
        if ss is None:
            log.warning("execution report for a symbol not traded here (%s): ignored", str(symbol)[:40])
            return
        try:
            orders = ss.engine.orders
            if type(rep) is OrderFilled and rep.client_order_id not in orders.orders:
                done = book_untracked_fill(rep, orders, ss.portfolio)
                if done is LateFill.BOOKED:
                    ss.late_fills += 1
                    ss.engine.after_fill(rep)
                elif done is LateFill.REFUSED:
                    ss.late_fills_refused += 1
                elif done is LateFill.NO_ORDER_ROW and self.live:   # books it under the venue's record of its order
                    task = asyncio.get_running_loop().create_task(self._recover_symbol(ss, quiet=True))
                    self._tasks.add(task)                  # a reference until it ends (asyncio keeps weak ones)
                    task.add_done_callback(self._tasks.discard)
            else:
                ss.engine.on_report(rep)
            self._update_exposure(ss)
        except JournalError as exc:
            log.error("%s: journal write failed: %s; stopping", symbol, exc)
            self.fatal = self.fatal or exc
            self._stop.set()

    # ------------------------------------------------------------------ live: reconciliation
    async def on_connect(self) -> None:
        """The order-entry connection is (re)established: reconcile every symbol before it quotes again."""
        for ss in self.symbols.values():
            await self._recover_symbol(ss)

    def on_disconnect(self) -> None:
        """The order-entry connection fell: no symbol quotes until reconciled after the reconnect."""
        log.warning("order-entry connection lost: quoting stops until reconnected and reconciled")
        for ss in self.symbols.values():
            ss.ready = False

    async def _recover_symbol(self, ss: SymbolSession, quiet: bool = False) -> None:
        async with self._recover_lock:
            restart = not ss.restarted
            now = time.time_ns()
            try:
                rep = await recover(ss.client, ss.journal, ss.engine.orders, ss.portfolio, now, restart=restart,
                                    unknown_policy=self.unknown_policy)
            except (ConnectionError, OSError, asyncio.TimeoutError, QueryError) as exc:
                log.warning("%s: reconciliation failed (%r); retried at the next connect", ss.instrument.symbol, exc)
                if not quiet:
                    raise
                return
            except Exception as exc:                  # noqa: BLE001 - the journal, a bug: the session cannot go on
                log.error("%s: reconciliation failed (%r): cancelling our orders at the venue and stopping",
                          ss.instrument.symbol, exc)
                self.fatal = self.fatal or exc
                for s2 in self.symbols.values():
                    s2.ready = False
                self._stop.set()
                return
            ss.restarted = True
            if restart and rep.halted_restored and self.reset_halt:
                log.warning("%s: --reset-halt: the operator clears the HALTED state restored from the journal",
                            ss.instrument.symbol)
                ss.engine.reset_trading_state(now)
            ss.recoveries.append(rep)
            ss.engine.fills.extend(rep.fills_booked)
            ss.ready = not self.stopping
            self._update_exposure(ss)
            log.info("%s: reconciled with the venue: %s", ss.instrument.symbol, rep.summary())
            emit("recovery", symbol=ss.instrument.symbol, **rep.summary())

    # ------------------------------------------------------------------ run / stop
    def status_lines(self) -> list[str]:
        """One line per symbol: feed state, mid, our bid / ask, inventory (base), mark-to-market PnL (quote),
        fills, events, the per-event time from frame receipt to order actions (p99 of the last samples, µs)."""
        out = []
        for sym, ss in self.symbols.items():
            eng, inst = ss.engine, ss.instrument
            mid_x2 = eng.book.mid_x2() if eng.book.synced else 0
            mid = f"{inst.price_of(mid_x2) / 2}" if mid_x2 else "-"
            bid = str(inst.price_of(eng.last_bid)) if eng.last_bid else "-"
            ask = str(inst.price_of(eng.last_ask)) if eng.last_ask else "-"
            pnl = f"{float(ss.portfolio.mtm_pnl(mid_x2)):.4f}" if mid_x2 else "-"
            recent = sorted(ss.full_ns[-2000:])
            p99 = f"{recent[int(len(recent) * 0.99)] / 1000:.0f}" if recent else "-"
            state = ss.feed_state + ("" if ss.ready else ", not reconciled") + (" PAUSED" if eng.paused else "")
            out.append(f"{sym} [{state}] mid {mid} | ours {bid} / {ask} | q {inst.qty_of(ss.portfolio.position)} "
                       f"| pnl {pnl} | fills {len(eng.fills)} | events {ss.events} | frame->orders p99 {p99} µs")
        return out

    async def _timer(self) -> None:
        next_status = time.monotonic() + self.status_every_s
        while True:
            raise_if_cancelled()
            await asyncio.sleep(TIMER_TICK_S)
            if self.on_status is not None and self.status_every_s and time.monotonic() >= next_status:
                next_status = time.monotonic() + self.status_every_s
                self.on_status(self.status_lines())
            now = time.time_ns()
            refused = getattr(self.execution, "fatal", None) if self.live else None
            if refused is not None and self.fatal is None:     # the venue refused the key: nothing can be sent
                why = _refusal_text(refused)
                log.error("the venue refused the API key or signature (%s): stopping", why)
                self.fatal = RuntimeError(f"the venue refused the API key or signature ({why})")
                self._stop.set()
            for sym, ss in self.symbols.items():
                if ss.sim is not None:
                    ss.sim.advance(now)
                eng = ss.engine
                if not self.stopping and ss.ready and 0 <= eng.next_timer_ns <= now:
                    eng.on_timer(now)
                    self._update_exposure(ss)
                elif eng.next_timer_ns < 0 and ss.ready:
                    eng.on_timer(now)                 # arms it
                if not eng.book.synced and ss.feed_state != STALE:
                    self._ask_snapshot(sym, ss)

    def request_stop(self) -> None:
        """Ask the session to stop (signal handler, duration)."""
        self._stop.set()

    def on_stop_signal(self) -> None:
        """SIGINT / SIGTERM: the first asks for the clean stop; a second one while it runs ends the stop's
        waits at once (the venue's cancel confirmations, flattening): the session then stops not clean, and
        orders of ours may be left open at the venue, which the next start reconciles."""
        if self._stop.is_set():
            if not self.forced:
                self.forced = True
                log.error("second stop signal: not waiting for the venue's confirmations; orders of ours may be "
                          "left open (the next start reconciles them)")
            return
        log.warning("stop signal: cancelling our orders and stopping (a second signal stops without waiting)")
        self.request_stop()

    async def run(self, duration_s: float | None = None) -> bool:
        """Connect, trade until stopped (signal, ``duration_s`` of wall time, fatal failure), stop. Returns
        True if the stop was clean (see :meth:`stop`)."""
        loop = asyncio.get_running_loop()
        if threading.current_thread() is threading.main_thread():   # signal handlers live in the main thread only
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self.on_stop_signal)
        t_start = time.perf_counter()
        timer = loop.create_task(self._timer())
        try:
            started = False
            try:
                if self.live:
                    await self.execution.start()
                await self.feed.start()
                started = True
                # Start-up objects (modules, markets, books' Python parts) go to the permanent generation, so
                # that a full collection during trading walks only what trading allocated (a gen-2 pass over
                # the whole heap was measured at ~10 ms on a 10-symbol session, inside a frame callback).
                gc.collect()
                gc.freeze()
            except (QueryError, ConnectionError, OSError, asyncio.TimeoutError, ValueError) as exc:
                refused = getattr(self.execution, "fatal", None) if self.live else None
                if refused is not None:
                    exc = RuntimeError(f"the venue refused the API key or signature ({_refusal_text(refused)})")
                log.error("start failed: %s", exc)
                self.fatal = self.fatal or exc
            if started:
                waiter = loop.create_task(self._stop.wait())
                done, _ = await asyncio.wait({waiter, timer}, timeout=duration_s,
                                             return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                if timer in done and timer.exception() is not None:
                    log.error("engine timer failed: %r", timer.exception())
                    self.fatal = self.fatal or timer.exception()
        finally:
            timer.cancel()
            wall = time.perf_counter() - t_start
            for ss in self.symbols.values():
                ss.wall_s = wall
                ss.interrupted = self._stop.is_set()
        try:
            clean = await self.stop()
        finally:
            await self.feed.close()
            if self.live:
                await self.execution.close()
            gc.unfreeze()                         # the heap is collectable again (a process may run more)
        return clean

    async def stop(self) -> bool:
        """Cancel everything and confirm, flatten if configured, write final positions, close journals. True if
        clean: no order of ours open or tracked and (with ``execution.flatten_on_shutdown``) flat."""
        self.stopping = True
        now = time.time_ns()
        for ss in self.symbols.values():
            ss.engine.orders.cancel_all(now)
        results = await asyncio.gather(*(self._stop_symbol(ss) for ss in self.symbols.values()))
        self.close_journals()
        return all(results)

    async def _stop_symbol(self, ss: SymbolSession) -> bool:
        flatten = self.config.get("execution.flatten_on_shutdown")
        if ss.sim is not None:
            clean = self._stop_paper(ss, flatten)
        elif self.fatal is not None:                  # no reconciliation possible: cancel what the venue lists
            clean = await self._cancel_at_venue(ss, STOP_TIMEOUT_S)
        else:
            clean = await self._confirm_none_open(ss, STOP_TIMEOUT_S)
            if clean and flatten and ss.portfolio.position:
                clean = await self._flatten_live(ss) and await self._confirm_none_open(ss, STOP_TIMEOUT_S)
        ss.shutdown_clean = clean
        pf = ss.portfolio
        last = max([r.snapshot_ts_ns for r in ss.recoveries] + [f.ts_ns for f in ss.engine.fills] + [0])
        try:
            ss.journal.record_position(max(time.time_ns(), last) + 1, pf.position, pf.cash_tl, pf.fees)
        except JournalError as exc:
            log.error("%s: final position not journaled: %s", ss.instrument.symbol, exc)
        if not clean:
            log.error("%s: stop not clean: orders of ours may be left open, or a position is left",
                      ss.instrument.symbol)
        if self.live:
            emit("stopped", symbol=ss.instrument.symbol, clean=clean, position_lots=pf.position,
                 fills=len(ss.engine.fills), late_fills=ss.late_fills, late_fills_refused=ss.late_fills_refused,
                 orders_placed=ss.engine.orders.placed, coid_counter=ss.engine.orders.coids.counter)
        return clean

    def _stop_paper(self, ss: SymbolSession, flatten: bool) -> bool:
        ts = time.time_ns()
        eng, sim = ss.engine, ss.sim
        sim.advance(ts + PAPER_GRACE_NS)
        if flatten and ss.portfolio.position:
            try:
                eng.start_flatten(ts)
                while eng.flatten_due_ns >= 0:
                    ts = max(ts, eng.flatten_due_ns)
                    sim.advance(ts + PAPER_GRACE_NS)
                    eng.flatten_step(ts)
            except JournalError as exc:
                log.error("%s: flatten stopped: %s", ss.instrument.symbol, exc)
            sim.advance(ts + PAPER_GRACE_NS)
        clean = not sim.open_orders() and not eng.orders.orders
        return clean and not (flatten and ss.portfolio.position)

    async def _confirm_none_open(self, ss: SymbolSession, timeout_s: float) -> bool:
        """Until the venue lists no open order of ours for the symbol (re-cancelling every RECANCEL_S), then
        reconcile once more; True when neither the venue nor the order manager has a live order of ours."""
        loop = asyncio.get_running_loop()
        orders = ss.engine.orders
        prefix = orders.coids.prefix
        deadline = loop.time() + timeout_s
        last_cancel: dict[str, float] = {}
        while loop.time() < deadline and not self.forced:
            await asyncio.sleep(0.05)
            if not self.execution.connected:
                continue
            try:
                ours = [o for o in await ss.client.open_orders()
                        if o.client_order_id in orders.orders or is_own_id(o.client_order_id, prefix)]
                if not ours:
                    await self._recover_symbol(ss, quiet=False)
                    ours = [o for o in await ss.client.open_orders()
                            if o.client_order_id in orders.orders or is_own_id(o.client_order_id, prefix)]
                    if not ours and not orders.orders:
                        return True
            except (ConnectionError, OSError, asyncio.TimeoutError, QueryError) as exc:
                log.warning("%s: stop: %r", ss.instrument.symbol, exc)
                continue
            t = loop.time()
            for o in ours:
                coid = o.client_order_id
                if t - last_cancel.get(coid, -1e9) < RECANCEL_S:
                    continue
                last_cancel[coid] = t
                if not orders.cancel_order(time.time_ns(), coid):
                    ss.client.cancel(time.time_ns(), coid)
        return False

    async def _cancel_at_venue(self, ss: SymbolSession, timeout_s: float) -> bool:
        """Last resort when the session cannot go on (a reconciliation failed other than by the network): cancel
        every order of ours the venue lists for the symbol, directly (no order manager or journal involved),
        until it lists none. True if none is left."""
        loop = asyncio.get_running_loop()
        prefix = ss.engine.orders.coids.prefix
        deadline = loop.time() + timeout_s
        sent: dict[str, float] = {}
        while loop.time() < deadline and not self.forced:
            if getattr(self.execution, "fatal", None) is not None:    # the key is refused: nothing can be asked
                log.error("%s: the venue refuses the key: cannot list or cancel our orders (check the account "
                          "by hand)", ss.instrument.symbol)
                return not ss.engine.orders.orders and not ss.restarted and not ss.journal_open_orders
            try:
                ours = [o.client_order_id for o in await ss.client.open_orders()
                        if is_own_id(o.client_order_id, prefix) or o.client_order_id in ss.engine.orders.orders]
            except (ConnectionError, OSError, asyncio.TimeoutError, QueryError) as exc:
                log.error("%s: cannot list open orders to cancel them: %r", ss.instrument.symbol, exc)
                await asyncio.sleep(0.2)
                continue
            if not ours:
                return True
            t = loop.time()
            for coid in ours:
                if t - sent.get(coid, -1e9) >= RECANCEL_S:
                    sent[coid] = t
                    ss.client.cancel(time.time_ns(), coid)
            await asyncio.sleep(0.05)
        log.error("%s: orders of ours may be left open at the venue", ss.instrument.symbol)
        return False

    async def _flatten_live(self, ss: SymbolSession) -> bool:
        loop = asyncio.get_running_loop()
        eng = ss.engine
        retries = self.config.get("execution.flat_retries")
        backoff = self.config.get("execution.flat_retry_backoff")
        deadline = loop.time() + STOP_TIMEOUT_S + retries * backoff
        log.warning("%s: stop: flattening a position of %d lots", ss.instrument.symbol, ss.portfolio.position)
        eng.start_flatten(time.time_ns())
        while eng.flatten_due_ns >= 0 and loop.time() < deadline and not self.forced:
            await asyncio.sleep(0.02)
            eng.flatten_step(time.time_ns())
        return ss.portfolio.position == 0

    def close_journals(self) -> None:
        """Close every journal (idempotent; a failure is logged)."""
        for ss in self.symbols.values():
            try:
                ss.journal.close()
            except JournalError as exc:
                log.error("%s: journal close failed: %s", ss.instrument.symbol, exc)
