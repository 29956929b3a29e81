"""Run the engine against a connected venue (the loopback exchange emulator), with crash recovery.

``python -m mmcore.runners.live_runner --connect 127.0.0.1:PORT --account NAME --journal FILE
[--market M --symbol S] [--config FILE] [--set KEY=VALUE ...] [--unknown-orders cancel|adopt] [--reset-halt]
[-v]``

The engine is wired as in :func:`mmcore.runners.replay.build_session`, but market data and execution come from one
:class:`mmcore.venues.loopback.LoopbackClient` and the journal is a real SQLite :class:`mmcore.persistence.journal.Journal`.
At every connection - the first one of the process (restart: portfolio and ids from the journal) and every
reconnection - :func:`mmcore.engine.recovery.recover` runs before any market event or report of that connection
reaches the engine; then quoting resumes. After a reconnection the engine's book is stale, so market
events other than depth updates are held back from the engine until the fresh depth snapshot arrives.

SIGTERM / SIGINT: stop quoting, cancel every order, confirm with ``open_orders`` that none of ours is
left, reconcile once more (fills that raced the cancels); with ``execution.flatten_on_shutdown`` close the
position with immediate-or-cancel orders (``flat_retries`` attempts, ``flat_retry_backoff`` apart, one at
a time, priced off the book, which depth updates keep fresh during the stop) and confirm again; then write a
final position snapshot and close the journal. Exit codes: 0 stopped clean (and flat, if flattening was
configured); 3 stopped but orders may be left open or the position could not be closed; 2 bad arguments or
config (``--connect`` must be ``HOST:PORT`` with 1 <= PORT <= 65535); 1 runtime failure (a recovery that fails
other than by the network: every order of ours the venue lists is cancelled first), the account is already
traded by another process, or the journal cannot be opened (one ``error:`` line, no traceback). One JSON
line per recovery (``{"event": "recovery", ...}``) and one at the end (``{"event": "stopped", ...}``) go to
stdout.

One process per (venue, account): before the journal is opened or anything is sent, the runner takes the
account's exclusive lock (:mod:`mmcore.persistence.locks`; venue identity ``loopback:HOST:PORT``). A second process on
the same account gets ``error: account 'X' on venue loopback:HOST:PORT is already traded by pid N (lock file
...)`` and exits 1 without connecting. The lock is local to the machine.

Timer: a periodic task (every ``TIMER_TICK_S`` of wall time) calls :meth:`mmcore.engine.engine.Engine.on_timer`
when it is due, so staleness, order TTL, flattening and the PnL check do not wait for a market event (after
the feed stops, our orders are cancelled about ``risk.stale_after_s`` later). Its clock,
:meth:`LiveRunner.venue_now`, estimates venue time: the latest venue time seen (market event, report or
welcome) plus the monotonic time elapsed since the task first saw it, times ``rate``, which is the emulator's
``speed`` from the welcome (it replays recorded time at that multiple of real time; 1.0 when the speed is
<= 0 or absent, as for a real venue). The estimate keeps moving when nothing arrives, lags the truth by at
most one tick times ``rate``, and starts again from each new venue time seen. A timer failure is handled
like a fatal client failure (our orders at the venue are cancelled, exit 1).
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import math
import signal
import sqlite3
import sys
import time

import orjson

from mmcore.engine.accounting import Portfolio
from mmcore.config import DEFAULT_CONFIG, ConfigError, load_config
from mmcore.execution import OrderFilled
from mmcore.instruments import Instrument, load_instrument
from mmcore.persistence.journal import Journal, JournalError
from mmcore.persistence.locks import AccountLock, LockError
from mmcore.engine.order_manager import OrderManager
from mmcore.engine.recovery import LateFill, book_untracked_fill, is_own_id, recover
from mmcore.venues.binance.recording import BinanceDecoder, detect_market, detect_symbol
from mmcore.venues.loopback import MAX_ID_LEN, LoopbackClient, QueryError
from mmcore.engine.wiring import build_engine
from mmcore_ext.events import DepthDiff, DepthSnapshot

log = logging.getLogger("mmcore.live")

#: Seconds the stop sequence waits for the venue to confirm that no order of ours is open.
STOP_TIMEOUT_S = 10.0
#: Seconds between repeated cancels of an order still open during the stop sequence.
RECANCEL_S = 1.0
#: Wall-clock seconds between two looks of the timer task at the engine's next due time.
TIMER_TICK_S = 0.05


class VenueMismatch(RuntimeError):
    """The venue serves another market or symbol than the engine trades (fatal)."""


def _emit(event: str, **fields) -> None:
    sys.stdout.buffer.write(orjson.dumps({"event": event, **fields}, option=orjson.OPT_APPEND_NEWLINE))
    sys.stdout.flush()


class LiveRunner:
    """One engine on one instrument of a connected venue.

    Parameters
    ----------
    config : Config
    instrument : Instrument
    host, port, account : str, int, str
        The loopback exchange and the account to trade.
    journal_path : str
        SQLite journal (created if missing; reused to restart).
    unknown_policy : {"cancel", "adopt"}
        :func:`mmcore.engine.recovery.reconcile` policy for our orders open at the venue but not in the journal.
    reset_halt : bool
        If the journal says the engine was HALTED (the restart comes back halted), return to ACTIVE after the
        restart reconciliation and forget the PnL peak: an operator's decision, logged.

    lock_dir : str or Path, optional
        Directory of the account lock (default :func:`mmcore.persistence.locks.lock_dir`).

    The account lock is taken first (before the journal is opened); :meth:`close` releases it (and the OS,
    when the process ends).

    Raises
    ------
    AccountLocked
        Another process trades ``account`` on this venue (message names its pid and the lock file).
    LockError
        The lock directory or file cannot be used.
    ValueError
        ``strategy.order_qty`` off the step grid. BlockingIOError: the journal is in use by another process;
        OSError / JournalError / sqlite3.Error / RuntimeError: the journal cannot be opened.
    """

    def __init__(self, config, instrument: Instrument, host: str, port: int, account: str, journal_path: str,
                 unknown_policy: str = "cancel", reset_halt: bool = False, lock_dir=None):
        self.config = config
        self.instrument = instrument
        self.unknown_policy = unknown_policy
        self.reset_halt = reset_halt
        self.client = LoopbackClient(host, port, account, BinanceDecoder(instrument).decode, self._on_market,
                                     self._on_report, self._on_connect, self._on_disconnect,
                                     instrument=instrument)
        self.account_lock = AccountLock(self.client.venue_id, account, lock_dir).acquire()
        self.journal = None
        try:
            self.journal = Journal(journal_path, config.get("journal.synchronous"))
            self.engine = build_engine(config, instrument, self.client, self.journal)
        except BaseException:
            self.close()
            raise
        self.orders: OrderManager = self.engine.orders
        self.portfolio: Portfolio = self.engine.portfolio
        self.restarted = False            # the restart reconciliation has been done
        self.stopping = False
        self._recover_lock = asyncio.Lock()
        self.resync = False               # hold non-depth events from the engine until a fresh snapshot
        self.last_ts = 0
        self.server_ts = 0
        self.last_report_ts = 0
        self.recoveries = []
        self.late_fills = 0
        self.late_fills_refused = 0
        self._late_recovery: asyncio.Task | None = None
        self._stop = asyncio.Event()
        self.rate = 1.0                   # venue time per wall time (the emulator's speed); see venue_now
        self._clock_seen = 0              # venue time last seen by venue_now, and when (time.monotonic)
        self._clock_mono = 0.0

    def close(self) -> None:
        """Close the journal (if open; idempotent) and release the account lock."""
        try:
            if self.journal is not None:
                self.journal.close()
        except JournalError as exc:
            log.error("journal close failed: %s", exc)
        finally:
            self.account_lock.release()

    def now(self) -> int:
        """Best estimate of exchange time (ns): the latest market event, report or welcome time seen."""
        return max(self.last_ts, self.server_ts, self.last_report_ts)

    def venue_now(self) -> int:
        """Estimate of venue time (ns) that keeps moving when nothing arrives: :meth:`now` plus the monotonic
        time elapsed since this method first saw that value, times :attr:`rate` (see the module docstring)."""
        seen = self.now()
        mono = time.monotonic()
        if seen != self._clock_seen:
            self._clock_seen, self._clock_mono = seen, mono
        return seen + int((mono - self._clock_mono) * self.rate * 1e9)

    async def _run_timer(self) -> None:
        """Call ``Engine.on_timer(venue_now())`` whenever it is due, while connected, reconciled and not
        stopping (a recovery in progress or the stop sequence own the orders then)."""
        eng = self.engine
        while True:
            await asyncio.sleep(TIMER_TICK_S)
            now = self.venue_now()
            if (self.stopping or not self.restarted or not self.client.connected or self._recover_lock.locked()
                    or 0 <= now < eng.next_timer_ns):
                continue
            eng.on_timer(now)

    # --- venue callbacks ---
    def _on_market(self, ev) -> None:
        self.last_ts = ev.ts_local_ns
        t = type(ev)
        if self.stopping:                 # no quoting; the book stays fresh for a flattening order
            if t is DepthDiff:
                self.engine.book.apply_diff(ev)
            elif t is DepthSnapshot:
                self.engine.book.load_snapshot(ev)
            return
        if self.resync:                   # the book is stale or empty: only depth goes in, until a snapshot
            if t is DepthSnapshot:
                self.resync = False
            elif t is not DepthDiff:
                return
        eng = self.engine
        eng.on_event(ev)
        if t is DepthDiff and not self.resync and not eng.book.synced:     # a sequence gap: the book waits
            self.client.request_snapshot()                                  # for a snapshot, whatever paused
            self.resync = True                                              # quoting before

    def _on_report(self, rep) -> None:
        if rep.ts_ns > self.last_report_ts:
            self.last_report_ts = rep.ts_ns
        if type(rep) is OrderFilled and rep.client_order_id not in self.orders.orders:
            done = book_untracked_fill(rep, self.orders, self.portfolio)
            if done is LateFill.BOOKED:
                self.late_fills += 1
                self.engine.after_fill(rep)           # PnL and the kill switch, as for any fill
            elif done is LateFill.REFUSED:
                self.late_fills_refused += 1
            elif done is LateFill.NO_ORDER_ROW:
                self._reconcile_soon()                # books it under the venue's record of its order
            return
        self.engine.on_report(rep)

    async def _on_connect(self, welcome: dict) -> None:
        inst = self.instrument
        if (welcome.get("market"), welcome.get("symbol")) != (inst.market, inst.symbol):
            raise VenueMismatch(f"the venue serves {welcome.get('market')} {welcome.get('symbol')}, "
                                f"not {inst.market} {inst.symbol}")
        self.server_ts = welcome.get("now_ns", 0)
        speed = welcome.get("speed")
        self.rate = float(speed) if type(speed) in (int, float) and 0 < speed < math.inf else 1.0
        await self._recover()
        self.resync = True

    def _reconcile_soon(self) -> None:
        """Schedule one reconciliation (a fill of an order the journal has no row for arrived live)."""
        if self._late_recovery is not None and not self._late_recovery.done():
            return

        async def go():
            try:
                await self._recover()
            except (OSError, asyncio.TimeoutError, QueryError) as exc:    # the next reconnect reconciles
                log.warning("reconciliation for a late fill failed: %r", exc)
            except Exception as exc:                                     # noqa: BLE001 - fatal: stop
                log.error("reconciliation for a late fill failed: %r; stopping", exc)
                self._stop.set()
        self._late_recovery = asyncio.get_running_loop().create_task(go())

    def _on_disconnect(self) -> None:
        log.warning("venue connection lost: quoting stops until reconnected and reconciled")

    async def _recover(self):
        async with self._recover_lock:    # a reconnect's and the stop sequence's reconciliations never overlap
            return await self._recover_locked()

    async def _recover_locked(self):
        restart = not self.restarted
        rep = await recover(self.client, self.journal, self.orders, self.portfolio, self.now(),
                            restart=restart, unknown_policy=self.unknown_policy)
        self.restarted = True
        if restart and rep.halted_restored and self.reset_halt:
            log.warning("--reset-halt: the operator clears the HALTED state restored from the journal")
            self.engine.reset_trading_state(self.now())
        self.recoveries.append(rep)
        self.engine.fills.extend(rep.fills_booked)
        _emit("recovery", **rep.summary())
        return rep

    # --- run / stop ---
    async def run(self) -> int:
        """Trade until SIGTERM/SIGINT, then stop (see the module docstring). Returns the exit code."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._stop.set)
        task = loop.create_task(self.client.run())
        stop = loop.create_task(self._stop.wait())
        timer = loop.create_task(self._run_timer())
        await asyncio.wait({task, stop, timer}, return_when=asyncio.FIRST_COMPLETED)
        if task.done() or timer.done():   # the client gave up (fatal recovery error), or the timer failed
            stop.cancel()
            failed, what = (task, "venue client") if task.done() else (timer, "engine timer")
            timer.cancel()
            if failed.exception() is not None:
                log.error("%s ended with %r: cancelling our orders at the venue before exiting", what,
                          failed.exception())
                self.stopping = True
                await self._cancel_at_venue(STOP_TIMEOUT_S)
            self.client.close()
            try:
                self.journal.close()
            except Exception as exc:      # noqa: BLE001 - the client's error is the one to raise
                log.error("journal close failed too: %r", exc)
            failed.result()
            return 1
        timer.cancel()
        clean = await self.stop()
        self.client.close()
        try:
            await asyncio.wait_for(task, 2.0)
        except (asyncio.TimeoutError, Exception) as exc:   # noqa: BLE001 - stopping anyway
            log.warning("client task ended with %r", exc)
        return 0 if clean else 3

    async def stop(self) -> bool:
        """Cancel everything and confirm; flatten if configured; reconcile once more; close the journal.

        Returns True if clean: no order of ours open at the venue or tracked, and (with
        ``execution.flatten_on_shutdown``) no position left.
        """
        self.stopping = True
        self.orders.cancel_all(self.now())
        clean = await self._confirm_none_open(STOP_TIMEOUT_S)
        flat = None
        if clean and self.config.get("execution.flatten_on_shutdown") and self.portfolio.position:
            flat = await self._flatten()
            clean = await self._confirm_none_open(STOP_TIMEOUT_S) and flat
        pf = self.portfolio
        # After every snapshot written so far (recoveries write theirs at or after their own time).
        last = max([r.snapshot_ts_ns for r in self.recoveries] + [f.ts_ns for f in self.engine.fills] + [0])
        self.journal.record_position(max(self.now(), last) + 1, pf.position, pf.cash_tl, pf.fees)
        self.journal.close()
        _emit("stopped", clean=clean, flat=flat, position_lots=pf.position, fills=len(self.engine.fills),
              late_fills=self.late_fills, late_fills_refused=self.late_fills_refused,
              malformed_messages=self.client.malformed_messages, orders_placed=self.orders.placed, coid_counter=self.orders.coids.counter,
              reservations=self.orders.counters["coid_reservations"], connects=self.client.connects,
              flatten_orders=self.engine.counters["flatten_orders"],
              stale_pauses=self.engine.counters["stale_pauses"], quotes_refused=self.engine.counters["quotes_refused"],
              fill_contradictions=self.orders.counters["fill_contradictions"])
        if not clean:
            log.error("stop not clean: orders of ours may be left open at the venue, or a position is left")
        return clean

    async def _confirm_none_open(self, timeout_s: float) -> bool:
        """Until the venue lists no open order of ours (re-cancelling those it lists every RECANCEL_S), then
        reconcile once more; True when neither the venue nor the order manager has a live order of ours."""
        loop = asyncio.get_running_loop()
        prefix = self.orders.coids.prefix
        deadline = loop.time() + timeout_s
        last_cancel: dict[str, float] = {}
        while loop.time() < deadline:
            await asyncio.sleep(0.05)
            if not self.client.connected or not self.restarted:
                continue
            try:
                ours = [o for o in await self.client.open_orders() if self._ours(o.client_order_id, prefix)]
                if not ours:
                    await self._recover()         # books fills that raced the cancels, closes what ended
                    ours = [o for o in await self.client.open_orders() if self._ours(o.client_order_id, prefix)]
                    if not ours and not self.orders.orders:
                        return True
            except (ConnectionError, asyncio.TimeoutError, QueryError) as exc:
                log.warning("stop: %r", exc)
                continue
            t = loop.time()
            for o in ours:
                coid = o.client_order_id
                if t - last_cancel.get(coid, -1e9) < RECANCEL_S:
                    continue
                last_cancel[coid] = t
                if not self.orders.cancel_order(self.now(), coid):
                    # untracked, or its cancel is already in flight and the venue still lists it: ask again
                    self.client.cancel(self.now(), coid)
        return False

    async def _cancel_at_venue(self, timeout_s: float) -> bool:
        """Last resort when the engine cannot go on (recovery failed): cancel every order of ours the venue
        lists, directly (no order manager or journal involved), until it lists none. True if none is left."""
        loop = asyncio.get_running_loop()
        prefix = self.orders.coids.prefix
        deadline = loop.time() + timeout_s
        sent: dict[str, float] = {}
        while loop.time() < deadline:
            try:
                ours = [o.client_order_id for o in await self.client.open_orders()
                        if self._ours(o.client_order_id, prefix)]
            except (ConnectionError, OSError, asyncio.TimeoutError, QueryError) as exc:
                log.error("cannot list open orders to cancel them: %r", exc)
                return False
            if not ours:
                return True
            t = loop.time()
            for coid in ours:
                if t - sent.get(coid, -1e9) >= RECANCEL_S:
                    sent[coid] = t
                    self.client.cancel(self.now(), coid)
            await asyncio.sleep(0.05)
        log.error("orders of ours may be left open at the venue")
        return False

    def _ours(self, coid: str, prefix: str) -> bool:
        return coid in self.orders.orders or is_own_id(coid, prefix)

    async def _flatten(self) -> bool:
        """Close the position with the engine's IOC orders (see :meth:`Engine.start_flatten`, which never has
        two in flight). True if flat."""
        loop = asyncio.get_running_loop()
        eng = self.engine
        retries = self.config.get("execution.flat_retries")
        backoff = self.config.get("execution.flat_retry_backoff")
        deadline = loop.time() + STOP_TIMEOUT_S + retries * backoff
        log.warning("stop: flattening a position of %d lots", self.portfolio.position)
        eng.start_flatten(self.now())
        while eng.flatten_due_ns >= 0 and loop.time() < deadline:
            await asyncio.sleep(0.02)
            eng.flatten_step(self.now())
        if self.portfolio.position:
            log.error("stop: position of %d lots left after flattening", self.portfolio.position)
        return self.portfolio.position == 0


def _instrument(config, market: str | None, symbol: str | None) -> Instrument:
    if market is None or symbol is None:
        path = config.resolve_path(config.get("data.path"))
        market = market or detect_market(path)
        symbol = symbol or detect_symbol(path)
    try:
        return load_instrument(market, symbol, config.resolve_path(config.get("data.markets")))
    except KeyError as exc:
        raise ValueError(str(exc.args[0])) from None


def parse_host_port(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6addr]:PORT`` too) -> (host, port), 1 <= port <= 65535.

    Raises argparse.ArgumentTypeError naming what is wrong (argparse then exits 2 with the message)."""
    host, sep, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text[:100]!r} (no host or no port)")
    if not (port.isascii() and port.isdigit()) or not 1 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT with 1 <= PORT <= 65535, got port {port[:20]!r}")
    return host, int(port)


def parse_account(text: str) -> str:
    """An account name: 1 to 64 printable characters (the loopback protocol's id bound). Raises
    argparse.ArgumentTypeError otherwise."""
    if not 0 < len(text) <= MAX_ID_LEN or not text.isprintable():
        raise argparse.ArgumentTypeError(f"expected 1 to {MAX_ID_LEN} printable characters, got {text[:80]!r}")
    return text


def _open_error(exc: BaseException, journal: str) -> str | None:
    """The one-line message for a failure to construct the runner, or None if it is not one we explain."""
    if isinstance(exc, LockError):                      # AccountLocked included: its message names pid and file
        return str(exc)
    if isinstance(exc, BlockingIOError):
        return (f"the journal {journal} is in use by another process (its lock {journal}.lock is held); "
                "one engine per journal")
    if isinstance(exc, JournalError):
        return f"journal {journal}: {exc}"
    if isinstance(exc, sqlite3.Error):
        return f"journal {journal}: not a usable SQLite database ({exc})"
    if isinstance(exc, OSError):
        return f"journal {journal}: {exc.strerror or exc}"
    if isinstance(exc, RuntimeError):                   # WAL refused, another schema version
        return f"journal {journal}: {exc}"
    return None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m mmcore.runners.live_runner", description=__doc__.split("\n")[0])
    p.add_argument("--connect", required=True, metavar="HOST:PORT", type=parse_host_port,
                   help="the loopback exchange (1 <= PORT <= 65535)")
    p.add_argument("--account", required=True, type=parse_account, help="exchange account name (1-64 characters)")
    p.add_argument("--journal", required=True, help="SQLite journal file (restart state)")
    p.add_argument("--market", choices=("binance_spot", "binance_usdm"),
                   help="default: detected from the config's data.path")
    p.add_argument("--symbol", help="default: detected from the config's data.path")
    p.add_argument("--config", default=str(DEFAULT_CONFIG))
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="config override (repeatable)")
    p.add_argument("--unknown-orders", choices=("cancel", "adopt"), default="cancel",
                   help="our orders open at the venue but not in the journal (default: %(default)s)")
    p.add_argument("--reset-halt", action="store_true",
                   help="clear a HALTED trading state restored from the journal (operator decision)")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s engine %(name)s: %(message)s", stream=sys.stderr)
    host, port = args.connect
    try:
        config = load_config(args.config, list(args.set or []))
        runner_args = (config, _instrument(config, args.market, args.symbol), host, port,
                       args.account, args.journal, args.unknown_orders, args.reset_halt)
    except ConfigError as exc:
        for line in exc.errors:
            print(f"config error: {line}", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    async def _main() -> int:
        try:
            runner = LiveRunner(*runner_args)
        except ValueError as exc:                   # a config value the instrument refuses (field named)
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except Exception as exc:                    # noqa: BLE001 - explained below, or raised
            msg = _open_error(exc, args.journal)
            if msg is None:
                raise
            print(f"error: {msg}", file=sys.stderr)
            return 1
        try:
            return await runner.run()
        finally:
            runner.close()

    import uvloop
    try:
        return uvloop.run(_main())
    except VenueMismatch as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except JournalError as exc:                     # a recovery's journal write failed (orders were cancelled)
        print(f"error: journal {args.journal}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
