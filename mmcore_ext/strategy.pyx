# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""One strategy interface for every quoting model: state in, a ladder of (price_ticks, qty_lots) per side out.

A :class:`Strategy` is called once per quoting event with the fair price (quote currency), the position (lots),
sigma (quote currency per sqrt(second)), the best bid and ask (ticks; 0 = unknown) and the event time (ns), and
fills its :class:`Ladder`: up to ``LADDER_MAX_LEVELS`` levels per side, best first. The order manager
(:meth:`mmcore.engine.order_manager.OrderManager.reconcile_ladder`) keeps, cancels or replaces the order of each
level; the risk gate checks each order; the engine does not know which strategy runs.

Strategies:

- :class:`ModelQuote`: one level per side from an A-S or GLFT :class:`mmcore_ext.quoting.QuoteModel`, sizes shaped
  by inventory (eta).
- :class:`LayeredLadder`: the layered ASMM ladder (near layers dense, far layers sparse) around an A-S / GLFT
  model's skewed quotes, with grinding, pinning and a stop loss driven by |q| / max_inventory.
- :class:`BandMaker`: a passive maker holding orders in a band of the reference price (a TWAP), re-quoted only
  when the reference drifts past a threshold.

Shared rules (every strategy): a size is a whole multiple of ``step_lots`` (rounded down; a level whose size
rounds to 0 is left out); levels whose fills would push |position| past ``max_inventory_lots`` (cumulatively,
best level first) are left out (:meth:`Ladder.keep_inventory`); no level crosses the book (a bid below the best
ask, an ask above the best bid); prices stay in ``[1, MAX_PRICE_TICKS]`` (2**53), so the ``+- k * spacing``
arithmetic (spacing <= 2**30 ticks, k < 16) cannot overflow int64.

Inventory q: models get q in base units (position_lots x lot_size); the thresholds and the eta shaping use q
normalised by the inventory bound, u = position_lots / max_inventory_lots in [-1, 1].
"""
from libc.math cimport exp, floor, ceil, fabs, isfinite
from libc.stdint cimport int64_t
from mmcore_ext.bounds cimport MAX_PRICE_TICKS as _MAX_PX
from mmcore_ext.quoting cimport QuoteModel

#: Most levels per side of a ladder.
MAX_LEVELS = LADDER_MAX_LEVELS
#: Largest layer spacing accepted (ticks).
MAX_SPACING_TICKS = 1 << 30
#: LayeredLadder.regime values.
REGIME_NORMAL = 0
REGIME_GRINDING = 1
REGIME_PINNING = 2
REGIME_STOP_LOSS = 3
REGIME_NAMES = ("normal", "grinding", "pinning", "stop_loss")


cdef int _check(bint ok, str what) except -1:
    if not ok:
        raise ValueError(what)
    return 0


cdef class Ladder:
    """Up to ``MAX_LEVELS`` (price_ticks, qty_lots) per side, best first (fixed C arrays: no allocation)."""

    def __repr__(self):
        return f"Ladder(bids={self.bids()}, asks={self.asks()})"

    cdef void clear(self) noexcept:
        self.n_bids = 0
        self.n_asks = 0

    cdef void add_bid(self, int64_t px, int64_t qty) noexcept:
        # Dropped: no room, a size of 0, a price out of [1, MAX], or not below the previous (better) bid.
        if self.n_bids >= LADDER_MAX_LEVELS or qty <= 0 or px < 1 or px > _MAX_PX:
            return
        if self.n_bids and px >= self._bid_px[self.n_bids - 1]:
            return
        self._bid_px[self.n_bids] = px
        self._bid_qty[self.n_bids] = qty
        self.n_bids += 1

    cdef void add_ask(self, int64_t px, int64_t qty) noexcept:
        if self.n_asks >= LADDER_MAX_LEVELS or qty <= 0 or px < 1 or px > _MAX_PX:
            return
        if self.n_asks and px <= self._ask_px[self.n_asks - 1]:
            return
        self._ask_px[self.n_asks] = px
        self._ask_qty[self.n_asks] = qty
        self.n_asks += 1

    cdef void keep_inventory(self, int64_t position, int64_t max_inventory) noexcept:
        """Drop the levels (from the best one out) whose fills would take the position past +-max_inventory."""
        cdef int i
        cdef int64_t room = max_inventory - position        # buys possible; |position|, max <= 2**62
        for i in range(self.n_bids):
            if self._bid_qty[i] > room:
                self.n_bids = i
                break
            room -= self._bid_qty[i]
        room = max_inventory + position
        for i in range(self.n_asks):
            if self._ask_qty[i] > room:
                self.n_asks = i
                break
            room -= self._ask_qty[i]

    cpdef int64_t bid_px(self, int i):
        """Price (ticks) of bid level ``i`` (0 = best); 0 when there is no such level."""
        return self._bid_px[i] if 0 <= i < self.n_bids else 0

    cpdef int64_t bid_qty(self, int i):
        """Size (lots) of bid level ``i``; 0 when there is no such level."""
        return self._bid_qty[i] if 0 <= i < self.n_bids else 0

    cpdef int64_t ask_px(self, int i):
        """Price (ticks) of ask level ``i`` (0 = best); 0 when there is no such level."""
        return self._ask_px[i] if 0 <= i < self.n_asks else 0

    cpdef int64_t ask_qty(self, int i):
        """Size (lots) of ask level ``i``; 0 when there is no such level."""
        return self._ask_qty[i] if 0 <= i < self.n_asks else 0

    def bids(self):
        """Bid levels as a list of ``(price_ticks, qty_lots)``, best first (allocates: not for the hot path)."""
        return [(self._bid_px[i], self._bid_qty[i]) for i in range(self.n_bids)]

    def asks(self):
        """Ask levels as a list of ``(price_ticks, qty_lots)``, best first (allocates: not for the hot path)."""
        return [(self._ask_px[i], self._ask_qty[i]) for i in range(self.n_asks)]


cdef class Strategy:
    """Base of the strategies: holds the ladder and the shared sizing / inventory rules (see the module)."""

    def __init__(self, *args, **kwargs):
        if type(self) is Strategy:
            raise TypeError("Strategy is abstract; use ModelQuote, LayeredLadder or BandMaker")

    cdef int _init_base(self, double lot_size, int64_t step_lots, int64_t max_inventory_lots, int levels) except -1:
        _check(lot_size > 0.0 and isfinite(lot_size), f"lot_size must be finite and > 0, got {lot_size!r}")
        _check(0 < step_lots <= (1 << 53), f"step_lots must be in [1, 2**53], got {step_lots}")
        _check(0 <= max_inventory_lots <= (1 << 53), f"max_inventory_lots must be in [0, 2**53], got "
                                                     f"{max_inventory_lots}")
        _check(1 <= levels <= LADDER_MAX_LEVELS, f"levels per side must be in [1, {LADDER_MAX_LEVELS}], got {levels}")
        self.ladder = Ladder()
        self.lot_size = lot_size
        self.step_lots = step_lots
        self.max_inventory_lots = max_inventory_lots
        self.levels = levels
        return 0

    cdef int64_t _shape(self, int64_t base_lots, double factor) noexcept:
        # base_lots x factor, rounded down to a whole step (factor >= 0 and finite; base_lots <= 2**53).
        cdef double x
        if not (factor > 0.0 and isfinite(factor)):
            return 0
        x = floor(<double>base_lots * factor / <double>self.step_lots)
        if x > <double>((1 << 53) // self.step_lots):
            x = <double>((1 << 53) // self.step_lots)
        return <int64_t>x * self.step_lots

    cpdef int quote(self, int64_t ts_ns, double fair, int64_t position_lots, double sigma,
                    int64_t best_bid, int64_t best_ask) except -1:
        """Fill :attr:`ladder` for event time ``ts_ns`` (ns), fair price ``fair`` (quote currency, > 0), position
        ``position_lots`` (lots, signed), sigma (quote currency per sqrt(second)) and the best bid / ask (ticks,
        0 = unknown). Raises ValueError when the inputs are out of range or a quote cannot be computed (the
        engine then quotes nothing: a refused quote)."""
        raise NotImplementedError("Strategy.quote")


cdef class ModelQuote(Strategy):
    """One level per side from an Avellaneda-Stoikov or GLFT model, sizes shaped by inventory.

    The model gets q = position_lots x lot_size (base units). Size shaping (Fushimi, Gonzalez Rojas, Herman,
    "Optimal high-frequency market making", 2018; hummingbot's ``order_amount_shape_factor``,
    ``docs/quoting_models.md`` section 3): with u = position / max_inventory, the side that would add to the
    inventory quotes ``order_lots x exp(-eta |u|)`` (rounded down to a step), the other side ``order_lots``;
    prices are unchanged. eta = 0 keeps both sizes.

    Parameters
    ----------
    model : QuoteModel
    order_lots : int
        Quote size (lots), a whole multiple of ``step_lots``.
    lot_size : float
        Base units per lot.
    step_lots : int
    max_inventory_lots : int
    eta : float
        Size shape factor, >= 0 (default 0).

    Raises
    ------
    ValueError
        A parameter is out of range (the message names it).
    """

    def __init__(self, QuoteModel model not None, int64_t order_lots, double lot_size, int64_t step_lots,
                 int64_t max_inventory_lots, double eta=0.0):
        self._init_base(lot_size, step_lots, max_inventory_lots, 1)
        _check(0 < order_lots <= (1 << 53) and order_lots % step_lots == 0,
               f"order_lots must be a positive multiple of step_lots ({step_lots}), got {order_lots}")
        _check(eta >= 0.0 and eta <= 1e6, f"eta must be in [0, 1e6], got {eta!r}")
        self.model = model
        self.order_lots = order_lots
        self.eta = eta

    def __repr__(self):
        return f"ModelQuote({self.model!r}, order_lots={self.order_lots}, eta={self.eta!r})"

    cpdef int quote(self, int64_t ts_ns, double fair, int64_t position_lots, double sigma,
                    int64_t best_bid, int64_t best_ask) except -1:
        """See :meth:`Strategy.quote`. Raises ValueError (the model's: inputs out of range, quotes outside the
        price bound)."""
        cdef QuoteModel m = self.model
        cdef Ladder lad = self.ladder
        cdef int64_t bid_qty = self.order_lots, ask_qty = self.order_lots
        cdef double u
        m.compute(ts_ns, fair, <double>position_lots * self.lot_size, sigma, best_bid, best_ask)
        self.reservation = m.reservation
        if self.eta > 0.0 and self.max_inventory_lots > 0 and position_lots != 0:
            u = fabs(<double>position_lots / <double>self.max_inventory_lots)
            if position_lots > 0:
                bid_qty = self._shape(self.order_lots, exp(-self.eta * u))
            else:
                ask_qty = self._shape(self.order_lots, exp(-self.eta * u))
        lad.clear()
        lad.add_bid(m.bid_ticks, bid_qty)
        lad.add_ask(m.ask_ticks, ask_qty)
        lad.keep_inventory(position_lots, self.max_inventory_lots)
        return 0


cdef class LayeredLadder(Strategy):
    """Layered ASMM ladder: near layers dense, far layers sparse, skewed by inventory, with grinding and pinning.

    Level 0 of each side is the inner model's quote (A-S or GLFT: the reservation price skewed by q, the optimal
    spread). Behind it, ``near_layers - 1`` more levels ``near_spacing_ticks`` apart, then ``far_layers`` levels
    ``far_spacing_ticks`` apart; near levels are ``base_layer_lots``, far levels ``base_layer_lots x
    far_size_mult`` (rounded down to a step). With u = |position| / max_inventory and the reducing side the
    one whose fills bring the position back to 0 (the ask when long):

    - u < ``grinding_thresh``: normal (sizes shaped by eta on the adding side, as in :class:`ModelQuote`);
    - grinding, ``grinding_thresh <= u < pinning_thresh``, with g = (u - grinding) / (pinning - grinding) in
      [0, 1): the reducing side's level 0 moves ``grind_factor x g`` of its way to the touch (best ask when
      selling, best bid when buying), and sizes shift: reducing side x (1 + g), adding side x (1 - g);
    - pinning, ``pinning_thresh <= u < stop_loss_thresh``: the adding side is pulled (no levels), the reducing
      side's level 0 joins the touch (the best ask when long, the best bid when short), layers behind it;
    - stop loss, u >= ``stop_loss_thresh``: no levels at all and ``stop_loss`` is True (the engine closes the
      position with immediate-or-cancel orders and counts ``stop_loss_flattens``).

    The design follows the layered "ASMM" ladders of practice (the Phoenix seed of this project); thresholds
    are fractions of ``max_inventory`` (0 < grinding <= pinning <= stop_loss; stop_loss > 1 disables it).

    Raises
    ------
    ValueError
        A parameter is out of range (the message names it).
    """

    def __init__(self, QuoteModel model not None, double lot_size, int64_t step_lots, int64_t max_inventory_lots,
                 int near_layers, int far_layers, int64_t base_layer_lots, int64_t near_spacing_ticks,
                 int64_t far_spacing_ticks, double far_size_mult=1.0, double pinning_thresh=0.8,
                 double grinding_thresh=0.5, double stop_loss_thresh=2.0, double grind_factor=0.5,
                 double eta=0.0):
        _check(near_layers >= 1 and far_layers >= 0 and near_layers + far_layers <= LADDER_MAX_LEVELS,
               f"near_layers >= 1, far_layers >= 0 and near_layers + far_layers <= {LADDER_MAX_LEVELS}, got "
               f"{near_layers} + {far_layers}")
        self._init_base(lot_size, step_lots, max_inventory_lots, near_layers + far_layers)
        _check(0 < base_layer_lots <= (1 << 53) and base_layer_lots % step_lots == 0,
               f"base_layer_lots must be a positive multiple of step_lots ({step_lots}), got {base_layer_lots}")
        _check(1 <= near_spacing_ticks <= MAX_SPACING_TICKS, f"near_spacing_ticks must be in [1, 2**30], got "
                                                               f"{near_spacing_ticks}")
        _check(1 <= far_spacing_ticks <= MAX_SPACING_TICKS, f"far_spacing_ticks must be in [1, 2**30], got "
                                                             f"{far_spacing_ticks}")
        _check(far_size_mult > 0.0 and far_size_mult <= 1000.0, f"far_size_mult must be in (0, 1000], got "
                                                                 f"{far_size_mult!r}")
        _check(0.0 < grinding_thresh <= pinning_thresh <= stop_loss_thresh <= 1000.0,
               f"thresholds must satisfy 0 < grinding_thresh ({grinding_thresh!r}) <= pinning_thresh "
               f"({pinning_thresh!r}) <= stop_loss_thresh ({stop_loss_thresh!r})")
        _check(0.0 <= grind_factor <= 1.0, f"grind_factor must be in [0, 1], got {grind_factor!r}")
        _check(0.0 <= eta <= 1e6, f"eta must be in [0, 1e6], got {eta!r}")
        self.model = model
        self.near_layers = near_layers
        self.far_layers = far_layers
        self.base_layer_lots = base_layer_lots
        self.near_spacing_ticks = near_spacing_ticks
        self.far_spacing_ticks = far_spacing_ticks
        self.far_size_mult = far_size_mult
        self.pinning_thresh = pinning_thresh
        self.grinding_thresh = grinding_thresh
        self.stop_loss_thresh = stop_loss_thresh
        self.grind_factor = grind_factor
        self.eta = eta

    def __repr__(self):
        return (f"LayeredLadder({self.model!r}, layers={self.near_layers}+{self.far_layers}, "
                f"regime={REGIME_NAMES[self.regime]})")

    cdef void _side(self, int side, int64_t inner, double size_mult, int64_t best_bid, int64_t best_ask) noexcept:
        # One side's layers from level 0 at ``inner`` (ticks), outwards; sizes x size_mult.
        cdef Ladder lad = self.ladder
        cdef int i
        cdef int64_t px = inner, near = self._shape(self.base_layer_lots, size_mult)
        cdef int64_t far = self._shape(self.base_layer_lots, size_mult * self.far_size_mult)
        if side > 0 and best_ask > 0 and px > best_ask - 1:
            px = best_ask - 1
        if side < 0 and best_bid > 0 and px < best_bid + 1:
            px = best_bid + 1
        for i in range(self.near_layers + self.far_layers):
            if i:
                px = px - side * (self.near_spacing_ticks if i < self.near_layers else self.far_spacing_ticks)
            if px < 1 or px > _MAX_PX:
                return
            if side > 0:
                lad.add_bid(px, near if i < self.near_layers else far)
            else:
                lad.add_ask(px, near if i < self.near_layers else far)

    cpdef int quote(self, int64_t ts_ns, double fair, int64_t position_lots, double sigma,
                    int64_t best_bid, int64_t best_ask) except -1:
        """See :meth:`Strategy.quote`; ``regime`` and ``stop_loss`` tell which rule applied. Raises ValueError
        (the model's)."""
        cdef QuoteModel m = self.model
        cdef Ladder lad = self.ladder
        cdef double u = 0.0, g, shaped = 1.0
        cdef int64_t bid, ask
        cdef int reducing = 0                       # +1: buys reduce (short), -1: sells reduce (long)
        m.compute(ts_ns, fair, <double>position_lots * self.lot_size, sigma, best_bid, best_ask)
        self.reservation = m.reservation
        bid, ask = m.bid_ticks, m.ask_ticks
        lad.clear()
        self.stop_loss = False
        if self.max_inventory_lots > 0:
            u = fabs(<double>position_lots / <double>self.max_inventory_lots)
        if position_lots > 0:
            reducing = -1
        elif position_lots < 0:
            reducing = 1
        if reducing and u >= self.stop_loss_thresh:
            self.regime = REGIME_STOP_LOSS
            self.stop_loss = True
            return 0
        if reducing and u >= self.pinning_thresh:
            self.regime = REGIME_PINNING
            if reducing < 0:
                self._side(-1, best_ask if best_ask > 0 else ask, 1.0, best_bid, best_ask)
            else:
                self._side(1, best_bid if best_bid > 0 else bid, 1.0, best_bid, best_ask)
        elif reducing and u >= self.grinding_thresh:
            self.regime = REGIME_GRINDING
            g = (u - self.grinding_thresh) / (self.pinning_thresh - self.grinding_thresh) \
                if self.pinning_thresh > self.grinding_thresh else 1.0
            if reducing < 0:
                if best_ask > 0 and ask > best_ask:
                    ask = ask - <int64_t>floor(<double>(ask - best_ask) * self.grind_factor * g)
                self._side(-1, ask, 1.0 + g, best_bid, best_ask)
                self._side(1, bid, 1.0 - g, best_bid, best_ask)
            else:
                if best_bid > 0 and bid < best_bid:
                    bid = bid + <int64_t>floor(<double>(best_bid - bid) * self.grind_factor * g)
                self._side(1, bid, 1.0 + g, best_bid, best_ask)
                self._side(-1, ask, 1.0 - g, best_bid, best_ask)
        else:
            self.regime = REGIME_NORMAL
            if self.eta > 0.0 and reducing:
                shaped = exp(-self.eta * u)
            self._side(1, bid, shaped if reducing < 0 else 1.0, best_bid, best_ask)
            if ask > 0:
                self._side(-1, ask, shaped if reducing > 0 else 1.0, best_bid, best_ask)
        if bid == 0:                                 # the model quotes no bid (A-S infinite horizon at q_max)
            lad.n_bids = 0
        lad.keep_inventory(position_lots, self.max_inventory_lots)
        return 0


cdef class BandMaker(Strategy):
    """Passive band maker: orders held inside a band of the reference price, re-quoted only when it drifts.

    The reference is the fair price the engine passes (``strategy.fair_price``, a TWAP of the mid for this
    model by default). The band is anchored at a reference price ``anchor``; it moves (``requotes`` + 1) only
    when |fair - anchor| / anchor exceeds ``drift_threshold``, so the orders stay put (keeping their queue
    position) while the market wanders inside the band. ``target_orders_per_side`` orders per side are spread
    evenly over the band: bid k at floor(anchor (1 - band_min - k (band_max - band_min) / (n - 1)) / tick), ask
    k at ceil(anchor (1 + ...) / tick) (one order: at band_min). Each order is ``order_lots``, raised to the
    smallest step multiple whose notional (price x size) reaches ``min_order_value`` (quote currency). The band
    never crosses the book. No inventory skew: max_inventory bounds the position (module rules). The design
    is the MM_Logic seed's passive maker (band 0.2-0.4 % of the reference).

    Raises
    ------
    ValueError
        A parameter is out of range (the message names it).
    """

    def __init__(self, double tick_size, double lot_size, int64_t step_lots, int64_t max_inventory_lots,
                 double band_min, double band_max, double drift_threshold, int target_orders_per_side,
                 int64_t order_lots, double min_order_value=0.0):
        _check(1 <= target_orders_per_side <= LADDER_MAX_LEVELS, f"target_orders_per_side must be in [1, "
               f"{LADDER_MAX_LEVELS}], got {target_orders_per_side}")
        self._init_base(lot_size, step_lots, max_inventory_lots, target_orders_per_side)
        _check(tick_size > 0.0 and isfinite(tick_size), f"tick_size must be finite and > 0, got {tick_size!r}")
        _check(0.0 <= band_min <= band_max < 1.0, f"0 <= band_min ({band_min!r}) <= band_max ({band_max!r}) < 1")
        _check(0.0 <= drift_threshold < 1.0, f"drift_threshold must be in [0, 1), got {drift_threshold!r}")
        _check(0 < order_lots <= (1 << 53) and order_lots % step_lots == 0,
               f"order_lots must be a positive multiple of step_lots ({step_lots}), got {order_lots}")
        _check(0.0 <= min_order_value <= 1e12, f"min_order_value must be in [0, 1e12], got {min_order_value!r}")
        self.tick_size = tick_size
        self.band_min = band_min
        self.band_max = band_max
        self.drift_threshold = drift_threshold
        self.target_orders_per_side = target_orders_per_side
        self.order_lots = order_lots
        self.min_order_value = min_order_value

    def __repr__(self):
        return (f"BandMaker(band={self.band_min!r}..{self.band_max!r}, anchor={self.anchor!r}, "
                f"requotes={self.requotes})")

    cdef int64_t _size(self, int64_t px) noexcept:
        # order_lots, or the smallest step multiple with px * tick * lots * lot_size >= min_order_value.
        cdef double per_step = <double>px * self.tick_size * self.lot_size * <double>self.step_lots
        cdef double steps
        if self.min_order_value <= 0.0 or per_step <= 0.0:
            return self.order_lots
        steps = ceil(self.min_order_value / per_step - 1e-9)
        if steps * <double>self.step_lots <= <double>self.order_lots:
            return self.order_lots
        if steps > <double>((1 << 53) // self.step_lots):
            return 0
        return <int64_t>steps * self.step_lots

    cpdef int quote(self, int64_t ts_ns, double fair, int64_t position_lots, double sigma,
                    int64_t best_bid, int64_t best_ask) except -1:
        """See :meth:`Strategy.quote`. Raises ValueError when ``fair`` is not finite and > 0."""
        cdef Ladder lad = self.ladder
        cdef int k, n = self.target_orders_per_side
        cdef double f, step, x
        cdef int64_t px
        if not (fair > 0.0 and isfinite(fair)):
            raise ValueError(f"fair price must be finite and > 0, got {fair!r}")
        if self.anchor <= 0.0 or fabs(fair - self.anchor) > self.drift_threshold * self.anchor:
            self.anchor = fair
            self.requotes += 1
        self.reservation = self.anchor
        step = (self.band_max - self.band_min) / (n - 1) if n > 1 else 0.0
        lad.clear()
        for k in range(n):
            f = self.band_min + k * step
            x = floor(self.anchor * (1.0 - f) / self.tick_size + 1e-9)
            if x >= 1.0 and x <= <double>_MAX_PX:
                px = <int64_t>x
                if best_ask > 0 and px > best_ask - 1:
                    px = best_ask - 1
                lad.add_bid(px, self._size(px))
            x = ceil(self.anchor * (1.0 + f) / self.tick_size - 1e-9)
            if x >= 1.0 and x <= <double>_MAX_PX:
                px = <int64_t>x
                if best_bid > 0 and px < best_bid + 1:
                    px = best_bid + 1
                lad.add_ask(px, self._size(px))
        lad.keep_inventory(position_lots, self.max_inventory_lots)
        return 0
