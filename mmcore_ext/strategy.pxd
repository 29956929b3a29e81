# One strategy interface: a compiled strategy turns the state (fair price, inventory, sigma, top of book, time)
# into a Ladder of up to MAX_LEVELS (price_ticks, qty_lots) per side; the order manager reconciles it level by
# level. Prices are int64 ticks, sizes int64 lots, times int64 ns, inventory in lots (base units = lots x lot_size).
from libc.stdint cimport int64_t
from mmcore_ext.quoting cimport QuoteModel

cdef enum:
    LADDER_MAX_LEVELS = 16


cdef class Ladder:
    cdef int64_t _bid_px[LADDER_MAX_LEVELS]
    cdef int64_t _bid_qty[LADDER_MAX_LEVELS]
    cdef int64_t _ask_px[LADDER_MAX_LEVELS]
    cdef int64_t _ask_qty[LADDER_MAX_LEVELS]
    cdef readonly int n_bids
    """Bid levels, best (highest) first."""
    cdef readonly int n_asks
    """Ask levels, best (lowest) first."""

    cdef void clear(self) noexcept
    cdef void add_bid(self, int64_t px, int64_t qty) noexcept
    cdef void add_ask(self, int64_t px, int64_t qty) noexcept
    cdef void keep_inventory(self, int64_t position, int64_t max_inventory) noexcept
    cpdef int64_t bid_px(self, int i)
    cpdef int64_t bid_qty(self, int i)
    cpdef int64_t ask_px(self, int i)
    cpdef int64_t ask_qty(self, int i)


cdef class Strategy:
    cdef readonly Ladder ladder
    """The last ladder computed by quote()."""
    cdef readonly double lot_size
    """Base units per lot (inventory q = position_lots x lot_size)."""
    cdef readonly int64_t step_lots
    """Order step size (lots); every size is a whole multiple of it."""
    cdef readonly int64_t max_inventory_lots
    """|position| bound (lots): levels whose fills would push past it are left out."""
    cdef readonly int levels
    """Most levels per side this strategy quotes."""
    cdef readonly bint stop_loss
    """True when the last quote() asked for the position to be closed (LayeredLadder stop_loss_thresh)."""
    cdef readonly double reservation
    """Centre of the last ladder (quote currency; the model's reservation price or the band's reference)."""

    cdef int _init_base(self, double lot_size, int64_t step_lots, int64_t max_inventory_lots, int levels) except -1
    cdef int64_t _shape(self, int64_t base_lots, double factor) noexcept
    cpdef int quote(self, int64_t ts_ns, double fair, int64_t position_lots, double sigma,
                    int64_t best_bid, int64_t best_ask) except -1


cdef class ModelQuote(Strategy):
    cdef public QuoteModel model
    """The quote model (AvellanedaStoikov or GLFT); settable."""
    cdef readonly int64_t order_lots
    """Size of each quote (lots) before the eta shaping."""
    cdef readonly double eta
    """Size shaping: the adding side's size is order_lots x exp(-eta |q| / max_inventory)."""


cdef class LayeredLadder(Strategy):
    cdef public QuoteModel model
    cdef readonly int near_layers
    cdef readonly int far_layers
    cdef readonly int64_t base_layer_lots
    cdef readonly int64_t near_spacing_ticks
    cdef readonly int64_t far_spacing_ticks
    cdef readonly double far_size_mult
    cdef readonly double pinning_thresh
    cdef readonly double grinding_thresh
    cdef readonly double stop_loss_thresh
    cdef readonly double grind_factor
    cdef readonly double eta
    cdef readonly int regime
    """REGIME_NORMAL, REGIME_GRINDING, REGIME_PINNING or REGIME_STOP_LOSS at the last quote()."""

    cdef void _side(self, int side, int64_t inner, double size_mult, int64_t best_bid, int64_t best_ask) noexcept


cdef class BandMaker(Strategy):
    cdef readonly double tick_size
    cdef readonly double band_min
    cdef readonly double band_max
    cdef readonly double drift_threshold
    cdef readonly int target_orders_per_side
    cdef readonly int64_t order_lots
    cdef readonly double min_order_value
    cdef readonly double anchor
    """Reference price the band is placed around (quote currency; 0 before the first quote)."""
    cdef readonly int64_t requotes
    """Times the band was moved (the reference drifted past drift_threshold, or the first quote)."""

    cdef int64_t _size(self, int64_t px) noexcept
