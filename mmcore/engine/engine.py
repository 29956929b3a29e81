"""The engine: market event -> book -> quotes -> order actions (the synchronous hot path).

The engine does not know which venue or mode it runs in: it is handed typed events
(:mod:`mmcore_ext.events`) and an order manager bound to an execution client; execution reports come back
through :meth:`Engine.on_report`. Bad market data never crashes it: a sequence gap, a crossed book or a book
side left empty is logged, counted, and quoting pauses (all orders cancelled) until the book is valid again.

Risk: every market event updates the risk gate's view (mid, sync, staleness); PnL goes to the gate's
trading-state machine after every fill and once per second of event time. ACTIVE quotes both sides;
REDUCING cancels everything and lets only position-reducing orders through the gate; HALTED (kill switch)
cancels everything, quotes nothing and, if ``flatten_on_halt``, closes the position with immediate-or-cancel
orders (``flat_retries`` attempts, ``flat_retry_backoff`` apart).

Liveness: what must happen even when no market event arrives is driven by :meth:`Engine.on_timer`, which the
runner calls whenever :attr:`Engine.next_timer_ns` is due (event time in replay, an estimate of venue time
live): market data older than ``risk.stale_after_s`` pauses quoting (reason ``"market data stale"``) and
cancels everything until fresh data arrives; a working order older than ``execution.order_ttl_seconds`` is
cancelled without waiting for a new quote; due flatten attempts run; the PnL and trading-state check runs at
least once a second. A quote that cannot be computed (the quoter's ValueError, e.g. a reservation price
outside int64 ticks with a large gamma, sigma and horizon) is a refused quote: counted (``quotes_refused``),
logged once per burst, and quoting pauses (everything cancelled) until a quote can be computed again.
"""
from __future__ import annotations

import logging
from collections import Counter, deque

from mmcore.engine.accounting import Portfolio
from mmcore.execution import OrderFilled
from mmcore.instruments import Instrument
from mmcore.persistence.journal import (KV_PEAK_PNL, KV_TRADING_STATE, KV_TRADING_STATE_REASON, KV_TRADING_STATE_TS,
                            JournalError)
from mmcore.engine.order_manager import OrderManager
from mmcore_ext.book import APPLIED, GAP, L2Book
from mmcore_ext.events import BookTicker, DepthDiff, DepthSnapshot, Trade
from mmcore_ext.quoting import EwmaVolatility
from mmcore_ext.risk import ACTIVE, HALTED, STATE_NAMES as TRADING_STATES

PNL_EVERY_NS = 1_000_000_000
#: ``strategy.fair_price``: the price the quoter centres on (sigma and the risk gate always use the mid).
FAIR_PRICES = ("mid", "microprice", "twap", "external")


def microprice(bid: int, bid_qty: int, ask: int, ask_qty: int) -> float:
    """Size-weighted mid of the top of book, ``(bid * ask_qty + ask * bid_qty) / (bid_qty + ask_qty)`` (ticks):
    the weighted mid-price / imbalance estimator, nearer the side with less size (S. Stoikov, "The micro-price:
    a high-frequency estimator of future prices", Quantitative Finance 18(12):1959-1966, 2018, section 2). The
    plain mid when both sizes are 0."""
    total = bid_qty + ask_qty
    if total <= 0:
        return (bid + ask) * 0.5
    return (bid * float(ask_qty) + ask * float(bid_qty)) / total
#: Event time between two warm-up progress lines of the intensity estimator (ns).
WARMUP_LOG_NS = 30_000_000_000
#: Intensity estimates (ts, A, kappa, sigma) kept for the report (the newest).
ESTIMATES_KEPT = 10_000
#: Longest and shortest interval (ns) between two timer checks (:meth:`Engine.on_timer`).
TIMER_MAX_NS = 1_000_000_000
TIMER_MIN_NS = 1_000_000
#: ``Engine.pause_reason`` of a staleness pause (market data older than ``risk.stale_after_s``).
STALE_REASON = "market data stale"
#: ``Engine.pause_reason`` prefix while quotes cannot be computed (the quoter raised ValueError).
QUOTE_REFUSED = "quote refused"
#: Limit price of a flattening IOC order: this fraction beyond the best opposite price.
FLATTEN_SLIPPAGE = 0.005

log = logging.getLogger("mmcore.engine")


class Engine:
    """Quote one instrument.

    Parameters
    ----------
    instrument : Instrument
    book : L2Book
    strategy : mmcore_ext.strategy.Strategy
        ``quote(ts_ns, fair, position_lots, sigma, best_bid, best_ask)`` fills ``strategy.ladder`` (up to N
        (price_ticks, qty_lots) per side); the engine does not know which model it is. Inventory limits (its
        ``max_inventory_lots``) and sizes are the strategy's.
    volatility : EwmaVolatility or mmcore_ext.estimators.RealizedVolatility
        ``update(ts_ns, mid)`` and ``sigma`` (quote currency per sqrt(second)): the sigma the strategy gets.
    orders : OrderManager
    portfolio : Portfolio
    fair_price : str
        The price the strategy centres on: ``mid``, ``microprice``, ``twap`` (``twap`` given: a
        :class:`mmcore_ext.estimators.TwapPrice` of the mid) or ``external`` (:meth:`set_reference`; the mid
        while no reference younger than ``reference_max_age_ns`` is set, counted ``reference_stale``).
    sigma_alt : optional
        A second sigma estimator fed the same mids, reported beside the one used (estimates over time).
    """

    def __init__(self, instrument: Instrument, book: L2Book, strategy, volatility: EwmaVolatility,
                 orders: OrderManager, portfolio: Portfolio, flat_retries: int = 3,
                 flat_retry_backoff_ns: int = 1_000_000_000, journal=None, quote_on_book_ticker: bool = False,
                 intensity=None, intensity_refit_ns: int = 5_000_000_000, fair_price: str = "mid",
                 improve_touch: bool = True, twap=None, reference_max_age_ns: int = 5_000_000_000, sigma_alt=None):
        self.instrument = instrument
        self.gate = orders.gate
        self.journal = journal if journal is not None else orders.journal
        self.trading_state = ACTIVE
        self.flat_retries = flat_retries
        self.flat_backoff_ns = flat_retry_backoff_ns
        self._flat_attempts = 0
        self._flat_next_ns = -1           # -1: no flattening in progress
        self._flat_coid = None            # client order id of the last flatten order sent
        self._next_pnl_ns = 0
        self.book = book
        self.strategy = strategy
        self.single_level = strategy.levels == 1
        self.vol = volatility
        self.sigma_alt = sigma_alt
        self.orders = orders
        self.portfolio = portfolio
        self.tick = float(instrument.tick_size)
        self.paused = True            # until the book is synced
        self.pause_reason = "awaiting snapshot"
        self.counters = Counter()
        self.last_bid = 0             # last desired quotes (ticks; 0 = none)
        self.last_ask = 0
        # BookTickers ahead of the book, in update-id order: each is compared with the book's top after the
        # depth event whose final id equals its own (Binance bookTicker u shares the depth id sequence).
        self._tickers = deque(maxlen=100_000)
        # Fresh top of book (quote_on_book_ticker): a bookTicker whose update id is ahead of the book's is a newer
        # best bid/offer than the book's (Binance: bookTicker ``u`` and depth ``u`` are the same order-book update
        # id, spot and USDⓈ-M); quotes use it until a depth event brings the book to or past that id.
        self.quote_on_book_ticker = quote_on_book_ticker
        self._tk_u = -1
        self._tk_bid = 0
        self._tk_ask = 0
        self.fills: list[OrderFilled] = []
        if fair_price not in FAIR_PRICES:
            raise ValueError(f"fair_price {fair_price!r}: one of {', '.join(FAIR_PRICES)}")
        if fair_price == "twap" and twap is None:
            raise ValueError("fair_price 'twap' needs a TwapPrice (twap=)")
        self.fair_price = fair_price
        self.microprice = fair_price == "microprice"
        self.twap = twap
        self.external = fair_price == "external"
        self.reference_max_age_ns = reference_max_age_ns
        self._ref_px = 0.0
        self._ref_ts = -1
        self.improve_touch = improve_touch
        self._tk_bid_qty = 0
        self._tk_ask_qty = 0
        # Online A / kappa (glft): arrivals from public trades, refit every intensity_refit_ns of exchange time;
        # a successful fit goes to the quoter (set_intensity); estimates kept (bounded) for the report.
        self.intensity = intensity
        self.intensity_refit_ns = intensity_refit_ns
        self._next_refit_ns = 0
        self._warm_from_ns = -1
        self._next_warm_log_ns = 0
        self.estimates: deque = deque(maxlen=ESTIMATES_KEPT)
        # Timer (see on_timer): market data older than this pauses quoting; checks at least every period.
        self.stale_after_ns = int(self.gate.limits.stale_after_ns)
        period = min(TIMER_MAX_NS, self.stale_after_ns, orders.ttl_ns)
        if flat_retry_backoff_ns > 0:
            period = min(period, flat_retry_backoff_ns)
        self.timer_period_ns = max(TIMER_MIN_NS, period)
        self.next_timer_ns = -1       # -1: not armed yet (the first on_timer call arms it)

    #: Event time (ns) at which a journal write failure halted trading (None: no failure seen).
    journal_failed_ts = None

    @property
    def quoter(self):
        """The strategy's quote model (AvellanedaStoikov / GLFT), or None for a strategy without one (band)."""
        return getattr(self.strategy, "model", None)

    @quoter.setter
    def quoter(self, model) -> None:
        self.strategy.model = model

    def set_reference(self, ts_ns: int, price: float) -> None:
        """External fair price (``fair_price: external``): ``price`` in quote currency seen at ``ts_ns`` (ns),
        e.g. another venue's mid (the MEXC work's Binance oracle). A price that is not finite and > 0 is ignored
        (counted ``reference_refused``). Used until it is older than ``reference_max_age_ns``."""
        if not (price > 0.0 and price < float("inf")):
            self.counters["reference_refused"] += 1
            return
        self._ref_px = float(price)
        self._ref_ts = ts_ns

    # --- hot path ---
    def on_event(self, ev) -> None:
        """Handle one market event (depth diff, trade, book ticker, snapshot)."""
        t = type(ev)
        if t is DepthDiff:
            rc = self.book.apply_diff(ev)
            if rc != APPLIED:
                self._book_outcome(rc, ev)
                return
            pending = self._tickers
            if pending:
                u = ev.final_update_id
                while pending and pending[0].update_id < u:
                    pending.popleft()
                if pending and pending[0].update_id == u:
                    self._check_ticker(pending.popleft())
            self._quote(ev.ts_local_ns)
        elif t is Trade:
            if self.intensity is not None:
                self._estimate(ev)
            self._quote(ev.ts_local_ns)
        elif t is BookTicker:
            u = self.book.last_update_id
            if ev.update_id == u:
                self._check_ticker(ev)
            elif ev.update_id > u:
                self._tickers.append(ev)      # its depth event has not arrived yet
                if self.quote_on_book_ticker and 0 < ev.bid_px < ev.ask_px and self.book.synced:
                    moved = ev.bid_px != self._tk_bid or ev.ask_px != self._tk_ask or self._tk_u <= u
                    self._tk_u = ev.update_id
                    self._tk_bid = ev.bid_px
                    self._tk_ask = ev.ask_px
                    self._tk_bid_qty = ev.bid_qty
                    self._tk_ask_qty = ev.ask_qty
                    if moved:                 # a newer top than the book's: quote on it now
                        self.counters["ticker_quotes"] += 1
                        self._quote(ev.ts_local_ns)
        elif t is DepthSnapshot:
            book = self.book
            stale = book.stale_snapshots
            book.load_snapshot(ev)
            if book.stale_snapshots != stale:     # a duplicate or older snapshot while synced: ignored by the book
                self.counters["stale_snapshots"] += 1
                return
            self.counters["snapshots"] += 1
            self._quote(ev.ts_local_ns)

    def _estimate(self, ev) -> None:
        """One public trade into the arrival-intensity estimator (its depth from the book's mid before it, in
        quote currency, on its aggressor's side); refit every ``intensity_refit_ns`` of exchange time and give
        a successful fit to the quoter. A fit the quoter refuses (c1 / c2 not finite) is counted and dropped."""
        book = self.book
        bb, ba = book.best_bid_px(), book.best_ask_px()
        if not book.synced or not bb or not ba or bb >= ba:
            return
        tick = self.tick
        est = self.intensity
        ts = ev.ts_event_ns
        est.on_trade(ts, ev.price * tick, (bb + ba) * 0.5 * tick, ev.side)
        if ts < self._next_refit_ns:
            return
        self._next_refit_ns = ts + self.intensity_refit_ns
        A, kappa = est.fit(ts)
        if not est.n_points:
            if not self.counters["intensity_fits"]:          # warm-up: quoting on the seeds meanwhile
                if self._warm_from_ns < 0:
                    self._warm_from_ns = ts
                if ts >= self._next_warm_log_ns:
                    self._next_warm_log_ns = ts + WARMUP_LOG_NS
                    log.info("arrival-intensity warm-up: %.0f of %.0f s of window, %d arrivals; quoting with A=%.4g "
                             "/s, kappa=%.4g /quote until the first fit", (ts - self._warm_from_ns) / 1e9,
                             est.window_s, est.arrivals, A, kappa)
            else:
                self.counters["intensity_fits_kept"] += 1        # too few points: the last good fit stays
            return
        try:
            self.quoter.set_intensity(A, kappa)
        except ValueError as exc:
            self.counters["intensity_fits_refused"] += 1
            log.warning("intensity fit A=%r kappa=%r not used: %s", A, kappa, exc)
            return
        if not self.counters["intensity_fits"]:
            log.info("arrival intensity fitted at %d: A=%.4g /s, kappa=%.4g /quote (%d arrivals, %d depths)", ts,
                     A, kappa, est.n_trades, est.n_points)
        self.counters["intensity_fits"] += 1
        self.estimates.append((ts, A, kappa, self.vol.sigma))

    def _quote(self, ts: int) -> None:
        if self.journal.failed is not None and self.journal_failed_ts is None:   # set by the journal's writer
            self.on_journal_failure(ts)
        book = self.book
        gate = self.gate
        synced = book.synced
        ticker = self._tk_u > book.last_update_id and synced   # a bookTicker newer than the book (see __init__)
        if ticker:
            bb = self._tk_bid
            ba = self._tk_ask
        else:
            bb = book.best_bid_px()       # read the top once (0: side empty)
            ba = book.best_ask_px()
        mid_x2 = bb + ba if bb and ba else 0
        gate.on_market(ts, mid_x2 if synced else 0, synced)
        if ts >= self._next_pnl_ns:
            self._next_pnl_ns = ts + PNL_EVERY_NS
            self.update_pnl(ts)
        if gate.trading_state != self.trading_state:
            self._trading_state_changed(ts, gate.trading_state)
        if self.trading_state == HALTED:
            self.flatten_step(ts)
            return
        if not synced or not mid_x2 or bb >= ba:
            self._pause(ts, "book not synced" if not synced else "crossed book" if mid_x2 else "a book side is empty")
            return
        mid = mid_x2 * 0.5 * self.tick
        self.vol.update(ts, mid)
        if self.sigma_alt is not None:
            self.sigma_alt.update(ts, mid)
        fair = mid
        if self.microprice:
            if ticker:
                fair = microprice(bb, self._tk_bid_qty, ba, self._tk_ask_qty) * self.tick
            else:
                fair = microprice(bb, book.best_bid_qty(), ba, book.best_ask_qty()) * self.tick
        elif self.twap is not None:
            self.twap.update(ts, mid)
            if self.fair_price == "twap":
                fair = self.twap.value
        if self.external:
            if self._ref_ts >= 0 and ts - self._ref_ts <= self.reference_max_age_ns:
                fair = self._ref_px
            else:
                self.counters["reference_stale"] += 1
        pos = self.portfolio.position
        strat = self.strategy
        try:
            strat.quote(ts, fair, pos, self.vol.sigma, bb, ba)
        except ValueError as exc:         # documented: inputs out of range or quotes outside int64 ticks
            self._refuse_quote(ts, exc)
            return
        if self.paused:
            log.info("quoting resumed at %d (%s cleared)", ts, self.pause_reason)
            self.paused = False
        if strat.stop_loss:
            self._stop_loss(ts, pos)
            return
        lad = strat.ladder
        if not self.single_level:
            self.last_bid = lad.bid_px(0)
            self.last_ask = lad.ask_px(0)
            self.orders.reconcile_ladder(ts, lad, 0 if self.improve_touch else bb, 0 if self.improve_touch else ba)
            return
        bid = lad.bid_px(0)
        ask = lad.ask_px(0)
        if not self.improve_touch:        # join the best bid / offer at most, never step in front of it
            if bid > bb:
                bid = bb
                self.counters["quotes_held_at_touch"] += 1
            if ask and ask < ba:
                ask = ba
                self.counters["quotes_held_at_touch"] += 1
        self.last_bid = bid
        self.last_ask = ask
        self.orders.reconcile(ts, bid, ask, lad.bid_qty(0), lad.ask_qty(0))

    def _stop_loss(self, ts: int, pos: int) -> None:
        """The strategy asked for the position to be closed (LayeredLadder ``stop_loss_thresh``): cancel every
        order and flatten with immediate-or-cancel orders (the flatten schedule of a halt), counted
        ``stop_loss_flattens``; quoting goes on once the strategy no longer asks for it."""
        if self.last_bid or self.last_ask:
            self.orders.cancel_all(ts)
            self.last_bid = self.last_ask = 0
        if self._flat_next_ns < 0:
            self.counters["stop_loss_flattens"] += 1
            log.warning("stop loss at %d: position %d lots at or past the strategy's stop-loss threshold; "
                        "cancelling all orders and flattening", ts, pos)
            self.start_flatten(ts)
        else:
            self.flatten_step(ts)

    def _refuse_quote(self, ts: int, exc: ValueError) -> None:
        """The quoter cannot compute a quote at ``ts``: no quote (everything cancelled), counted, logged once
        per burst (until a quote is computed again)."""
        self.counters["quotes_refused"] += 1
        if self.paused and self.pause_reason.startswith(QUOTE_REFUSED):
            return
        log.error("quote refused at %d: %s (position %d lots, sigma %r); quoting nothing and cancelling all "
                  "orders until a quote can be computed again (further refusals only counted)", ts, exc,
                  self.portfolio.position, self.vol.sigma)
        if self.paused:                   # paused for another reason: orders are already cancelled
            self.pause_reason = f"{QUOTE_REFUSED}: {exc}"
        else:
            self._pause(ts, f"{QUOTE_REFUSED}: {exc}", logging.DEBUG)

    # --- timer: liveness without market events ---
    def on_timer(self, ts_ns: int) -> None:
        """Run the checks that must not wait for a market event, at time ``ts_ns`` (ns; event time in replay,
        the runner's estimate of venue time live), then set :attr:`next_timer_ns`.

        In order: the PnL and trading-state check (if none ran for a second); market-data staleness (the
        risk gate's last market event older than ``stale_after_ns``: pause with reason ``"market data
        stale"``, cancel all, count ``stale_pauses``; the next market event with a computable quote resumes
        quoting); order TTL (working orders at least ``ttl_ns`` old are cancelled, counted ``ttl_cancels``
        by the order manager, subject to the cancel-rate limit like any reprice); the due flatten attempt.

        Call it whenever ``next_timer_ns`` is due (``<= now``) or is -1 (not armed); calling it more
        often is harmless. ``next_timer_ns`` is strictly after ``ts_ns``: the earliest of ``ts_ns +
        timer_period_ns``, the staleness deadline, a working order's TTL expiry and the next flatten attempt.
        """
        gate = self.gate
        if 0 < self._next_pnl_ns <= ts_ns:         # market events do this while they flow
            self._next_pnl_ns = ts_ns + PNL_EVERY_NS
            self.update_pnl(ts_ns)
        if gate.trading_state != self.trading_state:
            self._trading_state_changed(ts_ns, gate.trading_state)
        last = gate.last_market_ns
        stale_at = last + self.stale_after_ns + 1 if last > 0 else -1      # first time it counts as stale
        if self.trading_state == HALTED:
            self.flatten_step(ts_ns)               # nothing rests while halted; flattening keeps its schedule
            stale_at = -1
        elif not self.paused and 0 <= stale_at <= ts_ns:
            self.counters["stale_pauses"] += 1
            log.warning("quoting paused at %d: no market data for %.3f s (risk.stale_after_s); cancelling all "
                        "orders until fresh data arrives", ts_ns, (ts_ns - last) / 1e9)
            self._pause(ts_ns, STALE_REASON, logging.DEBUG)
        orders = self.orders
        if not self.paused:
            orders.expire_working(ts_ns)
        nxt = ts_ns + self.timer_period_ns
        if not self.paused and ts_ns < stale_at < nxt:
            nxt = stale_at
        expiry = orders.next_expiry_ns()
        if ts_ns < expiry < nxt:
            nxt = expiry
        if ts_ns < self._flat_next_ns < nxt:
            nxt = self._flat_next_ns
        self.next_timer_ns = nxt

    # --- risk: PnL, trading state, flatten ---
    def update_pnl(self, ts: int) -> None:
        """Give the gate the current realised/unrealised PnL (floats: a threshold check, not accounting)."""
        mid_x2 = self.book.mid_x2()
        pf = self.portfolio
        unit = float(pf.unit)
        realized = float(pf.realized_tl) * unit - float(pf.fees)
        unrealized = float(pf.unrealized_tl(mid_x2)) * unit if mid_x2 else 0.0
        self.gate.on_pnl(ts, realized, unrealized)

    def _trading_state_changed(self, ts: int, new: int) -> None:
        old = self.trading_state
        self.trading_state = new
        self._journal_trading_state(ts)
        log.warning("trading state %s -> %s at %d: cancelling all orders", TRADING_STATES[old],
                    TRADING_STATES[new], ts)
        self.counters["trading_state_changes"] += 1
        self.orders.cancel_all(ts)
        self.last_bid = self.last_ask = 0
        if new == HALTED and self.gate.flatten_on_halt and self.portfolio.position != 0:
            self.start_flatten(ts)

    def _journal_trading_state(self, ts: int) -> None:
        """Write the gate's trading state, its last change's reason and the PnL peak to the journal: a
        restart must come back HALTED if the engine was (``recovery.reconcile`` reads these keys)."""
        changes = self.gate.state_changes
        journal = self.journal
        journal.set_kv(KV_TRADING_STATE, TRADING_STATES[self.gate.trading_state])
        journal.set_kv(KV_TRADING_STATE_TS, ts)
        journal.set_kv(KV_TRADING_STATE_REASON, changes[-1][3] if changes else "")
        journal.set_kv(KV_PEAK_PNL, repr(self.gate.peak_pnl_usdt))

    def reset_trading_state(self, ts: int) -> None:
        """Operator reset: the risk gate returns to ACTIVE and forgets its PnL peak (``RiskGate.reset``), and
        the journal records it, so a later restart does not come back HALTED. Logged."""
        log.warning("operator reset of the trading state (was %s) at %d", TRADING_STATES[self.gate.trading_state],
                    ts)
        self.gate.reset(ts)
        self.trading_state = self.gate.trading_state
        self._journal_trading_state(ts)

    def start_flatten(self, ts: int) -> None:
        """Begin closing the position: one IOC now, then (``flat_retries`` attempts in all) one more every
        ``flat_retry_backoff`` while a position is left; driven by market events or :meth:`flatten_step`.

        An attempt sends nothing while the previous flatten order is still open (two could overshoot and
        flip the position) or while the book has no price on the side to hit; it still counts, so that
        flattening always ends after ``flat_retries`` attempts (then ``flatten_failed`` is counted).
        """
        self._flat_attempts = 0
        self._flat_coid = None
        self._flat_next_ns = ts
        self._flatten(ts)

    @property
    def flatten_due_ns(self) -> int:
        """Event time (ns) of the next flatten attempt, or -1 when no flattening is in progress."""
        return self._flat_next_ns

    def flatten_step(self, ts: int) -> None:
        """Run the next flatten attempt if one is due at ``ts`` (or stop when flat / out of attempts)."""
        if 0 <= self._flat_next_ns <= ts:
            self._flatten(ts)

    def _flatten(self, ts: int) -> None:
        """Send one immediate-or-cancel order closing the position at up to FLATTEN_SLIPPAGE past the touch."""
        pos = self.portfolio.position
        if pos == 0 or self._flat_attempts >= self.flat_retries:
            if pos != 0:
                log.error("flatten gave up after %d attempts; position %d lots left", self._flat_attempts, pos)
                self.counters["flatten_failed"] += 1
            self._flat_next_ns = -1
            return
        self._flat_attempts += 1
        self._flat_next_ns = ts + self.flat_backoff_ns
        if self._flat_coid in self.orders.orders:
            log.warning("flatten attempt %d: previous flatten order %s still open; waiting", self._flat_attempts,
                        self._flat_coid)
            return
        side = -1 if pos > 0 else 1
        touch = self.book.best_bid_px() if side < 0 else self.book.best_ask_px()
        if touch <= 0:
            log.warning("flatten attempt %d: no %s price in the book; waiting", self._flat_attempts,
                        "bid" if side < 0 else "ask")
            return
        px = int(touch * (1 - FLATTEN_SLIPPAGE)) if side < 0 else int(touch * (1 + FLATTEN_SLIPPAGE)) + 1
        self.counters["flatten_orders"] += 1
        log.warning("flatten attempt %d: IOC %s %d lots at %d ticks", self._flat_attempts,
                    "sell" if side < 0 else "buy", abs(pos), px)
        o = self.orders.place(ts, side, px, abs(pos), post_only=False, check_risk=False)
        self._flat_coid = o.client_order_id if o is not None else None

    def on_journal_failure(self, ts: int) -> None:
        """A journal write failed: halt the risk gate at event time ``ts`` (ns) with reason ``journal write failed:
        <write and error>``. HALTED cancels every order and refuses new ones (the state change is handled at
        once). ``journal.failed`` is set by the journal's writer thread and read on each event that can quote
        (all but bookTickers) and each report; nothing calls across threads. Logged once; ``journal_failed_ts``
        records ``ts``."""
        self.journal_failed_ts = ts
        reason = f"journal write failed: {self.journal.failed}"
        log.error("%s: halting trading at %d (cancel all, no new orders)", reason, ts)
        self.counters["journal_failures"] += 1
        self.gate.halt(ts, reason)
        try:
            if self.gate.trading_state != self.trading_state:
                self._trading_state_changed(ts, self.gate.trading_state)
        except JournalError as exc:       # a flatten order's id reservation could not be written: not sent
            log.error("after the journal failure: %s", exc)

    # --- bad data and recovery ---
    def pause(self, ts: int, reason: str) -> None:
        """Stop quoting and cancel every order (``reason`` is logged and kept in ``pause_reason``, counted in
        ``counters["pauses"]``): for a session whose feed went stale. Quoting resumes by itself at the first
        event that finds the book synced with a valid two-sided top."""
        self._pause(ts, reason)

    def _pause(self, ts: int, reason: str, level: int = logging.WARNING) -> None:
        if not self.paused:
            log.log(level, "quoting paused at %d: %s; cancelling all orders", ts, reason)
            self.counters["pauses"] += 1
            self.paused = True
            self.pause_reason = reason
            self.orders.cancel_all(ts)
            self.last_bid = self.last_ask = 0

    def _book_outcome(self, rc: int, ev) -> None:
        if rc == GAP:
            self.counters["gaps"] += 1
            log.warning("sequence gap at depth U=%d u=%d pu=%d (book was at %d): resync needed",
                        ev.first_update_id, ev.final_update_id, ev.prev_final_update_id,
                        self.book.last_update_id)
            self._pause(ev.ts_local_ns, "sequence gap, awaiting snapshot")

    def _check_ticker(self, tk: BookTicker) -> None:
        """Compare a bookTicker with the reconstructed top of book at the same update id."""
        b = self.book
        if (tk.bid_px, tk.bid_qty, tk.ask_px, tk.ask_qty) == (b.best_bid_px(), b.best_bid_qty(),
                                                              b.best_ask_px(), b.best_ask_qty()):
            self.counters["bbo_checks_ok"] += 1
        else:
            self.counters["bbo_mismatches"] += 1
            log.warning("bookTicker u=%d disagrees with the book (%d x %d / %d x %d)", tk.update_id,
                        b.best_bid_px(), b.best_bid_qty(), b.best_ask_px(), b.best_ask_qty())

    # --- execution reports ---
    def on_report(self, rep) -> None:
        """Apply an execution report from the exchange (fills update the portfolio).

        A fill report that contradicts its order (side, price beyond the limit, more than the remaining
        quantity: :func:`mmcore.execution.fill_contradiction`) is refused by the order manager (counted as
        ``fill_contradictions``, logged) and never reaches the portfolio, the gate or the journal."""
        if self.journal.failed is not None and self.journal_failed_ts is None:
            self.on_journal_failure(rep.ts_ns)
        o = self.orders.on_report(rep)
        if o is not None:                 # a new fill, consistent with its order (side, price, quantity)
            pf = self.portfolio
            pf.on_fill(o.side, rep.price, rep.qty, rep.fee)     # the order's side, as the journal books it
            self.journal.record_position(rep.ts_ns, pf.position, pf.cash_tl, pf.fees)
            self.after_fill(rep)

    def after_fill(self, rep: OrderFilled) -> None:
        """A fill has been booked (here, or by recovery for an order no longer tracked): record it, give the
        gate the new PnL and act at once if that changes the trading state (not at the next event)."""
        self.fills.append(rep)
        self.update_pnl(rep.ts_ns)
        self.journal.set_kv(KV_PEAK_PNL, repr(self.gate.peak_pnl_usdt))
        if self.gate.trading_state != self.trading_state:
            self._trading_state_changed(rep.ts_ns, self.gate.trading_state)
