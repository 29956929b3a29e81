"""Build an engine from a validated config: the one place where book, quoter, sigma estimator, risk gate,
order ids, order manager and portfolio are put together (replay, paper and live share it)."""
from __future__ import annotations

import logging
from decimal import Decimal

from mmcore.accounting import Portfolio
from mmcore.config import Config
from mmcore.engine import Engine
from mmcore.instruments import Instrument
from mmcore.order_manager import OrderManager
from mmcore.sim.models import ConstantLatency, MakerFee
from mmcore_ext.book import L2Book, sync_rule_for_market
from mmcore_ext.orders import ClientOrderIdGenerator
from mmcore_ext.quoting import AvellanedaStoikov, EwmaVolatility
from mmcore_ext.risk import RiskGate

_MS = 1_000_000
log = logging.getLogger("mmcore.config")


def build_engine(config: Config, instrument: Instrument, exec_client, journal, book=None) -> Engine:
    """Wire an :class:`Engine` for ``instrument``.

    Parameters
    ----------
    exec_client
        ``submit(ts_ns, coid, side, price_ticks, qty_lots, post_only)`` / ``cancel(ts_ns, coid)``.
    journal : Journal or NullJournal
    book : L2Book-like, optional
        A book to use (the simulated exchange may share it); a new compiled L2Book with the market's sync
        rule when omitted.

    Raises
    ------
    ValueError
        ``strategy.order_qty`` or ``strategy.max_inventory`` is not a whole multiple of the instrument's step
        size (the field is named).
    """
    c, inst = config, instrument
    if c.get("strategy.min_spread_bps") < c.risk.min_spread_frac * 10_000:
        log.warning("strategy.min_spread_bps = %s is below risk.min_spread_frac = %s (%.2f bps): the risk gate "
                    "will refuse the narrower quotes (counted as SPREAD_TOO_NARROW)", c.get("strategy.min_spread_bps"),
                    c.risk.min_spread_frac, c.risk.min_spread_frac * 10_000)
    order_qty = _lots_on_step(inst, "strategy.order_qty", c.get("strategy.order_qty"))
    max_inv = _lots_on_step(inst, "strategy.max_inventory", c.get("strategy.max_inventory"))
    if book is None:
        book = L2Book(sync_rule_for_market(inst.market))
    quoter = AvellanedaStoikov(c.get("strategy.gamma"), c.get("strategy.kappa"), c.get("strategy.horizon_s"),
                               c.get("strategy.min_spread_bps"), c.get("strategy.max_spread_bps"),
                               float(inst.tick_size))
    vol = EwmaVolatility(c.get("strategy.sigma_half_life_s"), c.get("strategy.sigma_sample_ms") * _MS,
                         c.get("strategy.sigma_seed"))
    gate = RiskGate(c.risk, inst.tick_size, inst.lot_size, inst.symbol)
    coids = ClientOrderIdGenerator(c.get("execution.client_order_id_prefix"), 0, "all")
    orders = OrderManager(exec_client, gate, coids, journal, c.get("execution.price_tolerance_ticks"),
                          c.get("execution.order_price_deviation_bps"),
                          int(c.get("execution.order_ttl_seconds") * 1e9), c.get("execution.max_orders_per_side"),
                          c.get("execution.wait_for_cancel_ack"), c.get("execution.reprice_post_only"))
    return Engine(inst, book, quoter, vol, orders, Portfolio(inst), order_qty, max_inv,
                  c.get("execution.flat_retries"), int(c.get("execution.flat_retry_backoff") * 1e9))


def sim_models(config: Config, instrument: Instrument) -> tuple[ConstantLatency, MakerFee, MakerFee]:
    """The simulated exchange's latency model and maker/taker fee models from the ``sim`` section."""
    unit = instrument.tick_size * instrument.lot_size
    latency = ConstantLatency(int(config.get("sim.entry_latency_ms") * _MS),
                              int(config.get("sim.cancel_latency_ms") * _MS))
    return (latency, MakerFee(Decimal(str(config.get("sim.maker_fee_bps"))), unit),
            MakerFee(Decimal(str(config.get("sim.taker_fee_bps"))), unit))


def _lots_on_step(inst: Instrument, field: str, value) -> int:
    """``value`` (base units) in lots, if it is a whole multiple of the instrument's order step size.

    Raises ValueError naming ``field`` otherwise.
    """
    try:
        lots = inst.qty_to_lots(value)
    except ValueError:
        lots = None
    if lots is None or lots % inst.step_lots:
        raise ValueError(f"{field} = {value}: not a multiple of the step size {inst.step_size} of {inst.symbol}")
    return lots
