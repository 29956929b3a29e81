"""Build an engine from a validated config: the one place where book, quoter, sigma estimator, risk gate,
order ids, order manager and portfolio are put together (replay, paper and live share it)."""
from __future__ import annotations

import dataclasses
import logging
from decimal import Decimal

from mmcore.engine.accounting import Portfolio
from mmcore.config import Config, ConfigError
from mmcore.engine.engine import Engine
from mmcore.instruments import Instrument, OrderFilter
from mmcore.engine.order_manager import OrderManager
from mmcore.sim.models import ConstantLatency, MakerFee, RecordedLatency, make_queue
from mmcore_ext.book import L2Book, sync_rule_for_market
from mmcore_ext.orders import ClientOrderIdGenerator
from mmcore_ext.estimators import RealizedVolatility, TwapPrice
from mmcore_ext.quoting import GLFT, HORIZON_MODES, AvellanedaStoikov, EwmaVolatility, TradeIntensity
from mmcore_ext.strategy import BandMaker, LayeredLadder, ModelQuote
from mmcore_ext.risk import RiskGate

_MS = 1_000_000
log = logging.getLogger("mmcore.config")


def build_engine(config: Config, instrument: Instrument, exec_client, journal, book=None, global_exposure=None,
                 coid_prefix: str | None = None) -> Engine:
    """Wire an :class:`Engine` for ``instrument``.

    Parameters
    ----------
    exec_client
        ``submit(ts_ns, coid, side, price_ticks, qty_lots, post_only)`` / ``cancel(ts_ns, coid)``.
    journal : Journal or NullJournal
    book : L2Book-like, optional
        A book to use (the simulated exchange may share it); a new compiled L2Book with the market's sync
        rule when omitted.
    global_exposure : mmcore_ext.risk.GlobalExposure, optional
        Shared by the gates of every symbol of a session (``risk.max_global_notional_usdt``); the session keeps
        its ``notional_usdt`` equal to the sum of the gates' ``exposure_usdt()``. A private one when omitted.
    coid_prefix : str, optional
        Client order id prefix (default ``execution.client_order_id_prefix``); a multi-symbol session gives each
        symbol its own (``mm-btcusdt-``) so that recovery tells the symbols' orders apart.

    Raises
    ------
    ConfigError
        The config does not fit the instrument (each message names the field): see
        :func:`check_instrument_fit`.
    """
    c, inst = config, instrument
    if c.get("strategy.min_spread_bps") < c.risk.min_spread_frac * 10_000:
        log.warning("strategy.min_spread_bps = %s is below risk.min_spread_frac = %s (%.2f bps): the risk gate "
                    "will refuse the narrower quotes (counted as SPREAD_TOO_NARROW)", c.get("strategy.min_spread_bps"),
                    c.risk.min_spread_frac, c.risk.min_spread_frac * 10_000)
    order_qty, max_inv = check_instrument_fit(c, inst)
    if book is None:
        book = L2Book(sync_rule_for_market(inst.market))
    strategy, intensity = build_strategy(c, inst, order_qty, max_inv)
    ewma = EwmaVolatility(c.get("strategy.sigma_half_life_s"), c.get("strategy.sigma_sample_ms") * _MS,
                          c.get("strategy.sigma_seed"))
    realized = RealizedVolatility(c.get("strategy.sigma_window_s"), c.get("strategy.sigma_sample_ms") * _MS,
                                  c.get("strategy.sigma_seed"))
    vol, sigma_alt = (realized, ewma) if c.get("strategy.sigma_estimator") == "realized" else (ewma, realized)
    fair_price = c.get("strategy.fair_price")
    if c.get("strategy.model") == "band" and c.get("strategy.band.reference") == "twap":
        fair_price = "twap"
    twap = TwapPrice(c.get("strategy.twap_window_s")) if fair_price == "twap" else None
    risk = c.risk
    if inst.percent_price is not None:
        # PERCENT_PRICE: the venue refuses prices outside [reference * down, reference * up]. The gate's band is
        # symmetric around the own mid (the venue's reference, the average or mark price, is not in our data):
        # narrow it to the filter's when the filter is narrower than risk.max_price_deviation.
        band = float(inst.percent_price.max_deviation())
        if 0 < band < risk.max_price_deviation:
            log.warning("risk.max_price_deviation = %s is wider than the %s %s PERCENT_PRICE band (%.4g): the gate "
                        "uses the band", risk.max_price_deviation, inst.market, inst.symbol, band)
            risk = dataclasses.replace(risk, max_price_deviation=band)
    try:
        gate = RiskGate(risk, inst.tick_size, inst.lot_size, inst.symbol, global_exposure)
    except ValueError as exc:                      # a cap that does not fit the instrument's integer units
        raise ConfigError([line.replace("RiskConfig.", "risk.", 1) for line in str(exc).splitlines()]) from None
    coids = ClientOrderIdGenerator(coid_prefix if coid_prefix is not None else c.get("execution.client_order_id_prefix"),
                                   0, "all")
    orders = OrderManager(exec_client, gate, coids, journal, c.get("execution.price_tolerance_ticks"),
                          c.get("execution.order_price_deviation_bps"),
                          int(c.get("execution.order_ttl_seconds") * 1e9), c.get("execution.max_orders_per_side"),
                          c.get("execution.wait_for_cancel_ack"), c.get("execution.reprice_post_only"),
                          exchange_filter=OrderFilter(inst), amend_orders=c.get("execution.amend_orders"),
                          levels=strategy.levels)
    return Engine(inst, book, strategy, vol, orders, Portfolio(inst),
                  c.get("execution.flat_retries"), int(c.get("execution.flat_retry_backoff") * 1e9),
                  quote_on_book_ticker=c.get("strategy.quote_on_book_ticker"), intensity=intensity,
                  intensity_refit_ns=int(c.get("strategy.glft.intensity_refit_s") * 1e9),
                  fair_price=fair_price, improve_touch=c.get("strategy.improve_touch"), twap=twap,
                  reference_max_age_ns=int(c.get("strategy.reference_max_age_s") * 1e9), sigma_alt=sigma_alt)


def build_quote_model(config: Config, inst: Instrument, model: str, max_inventory_lots: int):
    """The A-S or GLFT quote model of ``model`` (``avellaneda_stoikov`` / ``glft``) from the ``strategy`` section,
    in base units: q = position x lot size, Delta = ``strategy.order_qty`` (docs: ``mmcore_ext.quoting``).
    Returns ``(model, intensity)``: intensity is the online A / kappa estimator (glft with
    ``intensity_estimate``) or None. Raises ConfigError naming the field when the model refuses its
    parameters."""
    c = config
    tick = float(inst.tick_size)
    delta = float(c.get("strategy.order_qty"))
    intensity = None
    if model == "glft":
        try:
            quoter = GLFT(c.get("strategy.gamma"), c.get("strategy.kappa"), c.get("strategy.glft.A"), delta,
                          c.get("strategy.glft.xi"), c.get("strategy.min_spread_bps"), c.get("strategy.max_spread_bps"),
                          tick)
        except ValueError as exc:
            raise ConfigError([f"strategy.model = glft: {exc}"]) from None
        if c.get("strategy.glft.intensity_estimate"):
            intensity = TradeIntensity(c.get("strategy.glft.intensity_window_s"),
                                       c.get("strategy.glft.intensity_bucket_ticks") * tick,
                                       c.get("strategy.glft.intensity_buckets"), c.get("strategy.glft.A"),
                                       c.get("strategy.kappa"), min_count=c.get("strategy.glft.intensity_min_count"))
        return quoter, intensity
    try:
        quoter = AvellanedaStoikov(c.get("strategy.gamma"), c.get("strategy.kappa"), c.get("strategy.horizon_s"),
                                   c.get("strategy.min_spread_bps"), c.get("strategy.max_spread_bps"), tick, delta,
                                   HORIZON_MODES[c.get("strategy.avellaneda_stoikov.horizon")],
                                   c.get("strategy.avellaneda_stoikov.spread") == "constant",
                                   max(max_inventory_lots, 1) * float(inst.lot_size))
    except ValueError as exc:
        raise ConfigError([f"strategy.model = avellaneda_stoikov: {exc}"]) from None
    return quoter, None


def build_strategy(config: Config, inst: Instrument, order_lots: int, max_inventory_lots: int):
    """The compiled strategy of ``strategy.model`` (:mod:`mmcore_ext.strategy`) and its intensity estimator (or
    None). Raises ConfigError naming the field when a parameter does not fit the instrument."""
    c = config
    model = c.get("strategy.model")
    lot, step = float(inst.lot_size), inst.step_lots
    errors: list[str] = []
    if model == "band":
        try:
            return BandMaker(float(inst.tick_size), lot, step, max_inventory_lots, c.get("strategy.band.band_min"),
                             c.get("strategy.band.band_max"), c.get("strategy.band.drift_threshold"),
                             c.get("strategy.band.target_orders_per_side"), order_lots,
                             c.get("strategy.band.min_order_value")), None
        except ValueError as exc:
            raise ConfigError([f"strategy.band: {exc}"]) from None
    if model == "ladder":
        base = _lots_on_step(inst, "strategy.ladder.base_layer_size", c.get("strategy.ladder.base_layer_size"), errors)
        if errors:
            raise ConfigError(errors)
        quoter, intensity = build_quote_model(c, inst, c.get("strategy.ladder.inner_model"), max_inventory_lots)
        k = "strategy.ladder."
        try:
            return LayeredLadder(quoter, lot, step, max_inventory_lots, c.get(k + "near_layers"),
                                 c.get(k + "far_layers"), base, c.get(k + "near_spacing_ticks"),
                                 c.get(k + "far_spacing_ticks"), c.get(k + "far_size_mult"),
                                 c.get(k + "pinning_thresh"), c.get(k + "grinding_thresh"),
                                 c.get(k + "stop_loss_thresh"), c.get(k + "grind_factor"),
                                 c.get("strategy.eta")), intensity
        except ValueError as exc:
            raise ConfigError([f"strategy.ladder: {exc}"]) from None
    quoter, intensity = build_quote_model(c, inst, model, max_inventory_lots)
    return ModelQuote(quoter, order_lots, lot, step, max_inventory_lots, c.get("strategy.eta")), intensity


def sim_models(config: Config, instrument: Instrument) -> tuple[ConstantLatency, MakerFee, MakerFee]:
    """The simulated exchange's constant latency model (``sim.entry_latency_ms`` / ``cancel_latency_ms``;
    no response latency: paper and the emulator deliver reports at once) and maker/taker fee models from the
    ``sim`` section. The replay's full latency model is :func:`sim_latency`."""
    unit = instrument.tick_size * instrument.lot_size
    latency = ConstantLatency(int(config.get("sim.entry_latency_ms") * _MS),
                              int(config.get("sim.cancel_latency_ms") * _MS))
    return (latency, MakerFee(Decimal(str(config.get("sim.maker_fee_bps"))), unit),
            MakerFee(Decimal(str(config.get("sim.taker_fee_bps"))), unit))


def sim_latency(config: Config):
    """The replay's latency model from ``sim.latency_model``: constant (``sim.entry_latency_ms``,
    ``cancel_latency_ms``, ``response_latency_ms``) or recorded (``sim.latency_file``, sampled by
    ``sim.latency_sampling`` with ``sim.seed``). Raises ConfigError naming ``sim.latency_file`` when the file
    cannot be read or has a bad row."""
    if config.get("sim.latency_model") == "recorded":
        path = config.resolve_path(config.get("sim.latency_file"))
        try:
            return RecordedLatency.from_file(path, config.get("sim.latency_sampling"), config.get("sim.seed"))
        except (ValueError, OSError) as exc:
            raise ConfigError([f"sim.latency_file = {path}: {exc}"]) from None
    return ConstantLatency(int(config.get("sim.entry_latency_ms") * _MS), int(config.get("sim.cancel_latency_ms") * _MS),
                           int(config.get("sim.response_latency_ms") * _MS))


def sim_queue(config: Config):
    """The replay's queue model from ``sim.queue_model`` (and ``sim.queue_power_n``):
    :func:`mmcore.sim.models.make_queue`."""
    return make_queue(config.get("sim.queue_model"), config.get("sim.queue_power_n"))


def check_instrument_fit(config: Config, inst: Instrument) -> tuple[int, int]:
    """Refuse config values that do not fit ``inst`` or with which no order could ever be sent on it.

    Returns ``(order_qty, max_inventory)`` in lots. Checks (each a ConfigError message naming the field):

    - ``strategy.order_qty`` and ``strategy.max_inventory`` are whole multiples of the order step size;
    - ``strategy.order_qty`` <= ``max_order_qty`` (the exchange's ``LOT_SIZE.maxQty``) and
      ``strategy.max_inventory`` <= ``max_qty`` (the pinned markets file's ``mmcore`` section);
    - ``strategy.order_qty * max_price`` >= ``min_notional``: otherwise no price makes an order large enough
      for the exchange's notional filter;
    - ``risk.min_price`` <= ``max_price``: otherwise the gate refuses every price the venue allows;
    - ``strategy.order_qty`` at the lowest price the gate allows (``risk.min_price``, at least one tick) is
      within ``risk.max_single_trade_usdt``, ``risk.max_symbol_notional_usdt`` and
      ``risk.max_global_notional_usdt``: otherwise every order is refused whatever the price;
    - the A–S reservation-price offset at full inventory with the seed volatility,
      ``max_inventory * gamma * sigma_seed**2 * horizon_s`` (base units), stays below ``max_price``:
      otherwise the quotes leave the instrument's price range as soon as the position builds up.
    """
    c = config
    qty, inv = c.get("strategy.order_qty"), c.get("strategy.max_inventory")
    errors = []
    order_qty = _lots_on_step(inst, "strategy.order_qty", qty, errors)
    max_inv = _lots_on_step(inst, "strategy.max_inventory", inv, errors)
    if qty > inst.max_order_qty:
        errors.append(f"strategy.order_qty = {qty}: must be <= {inst.max_order_qty}, the largest order of "
                      f"{inst.market} {inst.symbol} (max_order_qty, LOT_SIZE.maxQty)")
    if inv > inst.max_qty:
        errors.append(f"strategy.max_inventory = {inv}: must be <= {inst.max_qty} (max_qty of {inst.symbol})")
    if qty * inst.max_price < inst.min_notional:
        errors.append(f"strategy.order_qty = {qty}: below the min notional {inst.min_notional} {inst.quote} of "
                      f"{inst.symbol} even at its max price {inst.max_price}: no order could be sent")
    risk = c.risk
    min_price = Decimal(str(risk.min_price))
    if min_price > inst.max_price:
        errors.append(f"risk.min_price = {risk.min_price}: above the max price {inst.max_price} of {inst.symbol}: "
                      f"every order would be refused (PRICE_TOO_LOW)")
    lowest = qty * max(min_price, inst.tick_size)
    for name in ("max_single_trade_usdt", "max_symbol_notional_usdt", "max_global_notional_usdt"):
        cap = Decimal(str(getattr(risk, name)))
        if lowest > cap:
            errors.append(f"risk.{name} = {getattr(risk, name)}: below the notional of strategy.order_qty = {qty} at "
                          f"the lowest allowed price ({lowest} {inst.quote}): every order would be refused")
    if qty > 0:
        offset = (float(inv) * c.get("strategy.gamma") * c.get("strategy.sigma_seed") ** 2
                  * c.get("strategy.horizon_s"))
        if offset >= float(inst.max_price):
            errors.append(f"strategy.gamma = {c.get('strategy.gamma')}: with strategy.sigma_seed = "
                          f"{c.get('strategy.sigma_seed')}, strategy.horizon_s = {c.get('strategy.horizon_s')} and "
                          f"max_inventory = {inv}, the reservation price moves {offset:.6g} "
                          f"{inst.quote} from the mid at full inventory, beyond the max price {inst.max_price} of "
                          f"{inst.symbol}")
    if errors:
        raise ConfigError(errors)
    return order_qty, max_inv


def _lots_on_step(inst: Instrument, field: str, value, errors: list) -> int:
    """``value`` (base units) in lots, if it is a whole multiple of the instrument's order step size; else
    a message naming ``field`` goes to ``errors`` and 0 is returned."""
    try:
        lots = inst.qty_to_lots(value)
    except (ValueError, ArithmeticError):
        lots = None
    if lots is None or lots % inst.step_lots:
        errors.append(f"{field} = {value}: not a multiple of the step size {inst.step_size} of {inst.symbol}")
        return 0
    return lots
