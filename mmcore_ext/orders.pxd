# Order state machine: an explicit (state, event) -> state table. Prices int64 ticks, quantities int64 lots,
# times int64 ns since the epoch. Constants are C enums here and plain ints at Python level.
from libc.stdint cimport int64_t

# Order states (rows of the table).
cpdef enum:
    INITIALIZED = 0         # created locally, not sent
    SUBMITTED = 1           # new-order request in flight
    ACCEPTED = 2            # open on the venue, nothing filled
    PARTIALLY_FILLED = 3    # open on the venue, 0 < filled < qty
    FILLED = 4              # terminal: filled == qty
    PENDING_CANCEL = 5      # cancel request in flight
    CANCELED = 6            # terminal (a late fill may still add quantity; see Order.fill)
    REJECTED = 7            # terminal: the venue refused the new order
    EXPIRED = 8             # terminal: time in force ended it (IOC/FOK/GTX/GTD, self-trade prevention)
    PENDING_REPLACE = 9     # amend request in flight (new price/qty pending)
    N_STATES = 10

# Events (columns of the table).
cpdef enum:
    SUBMIT = 0              # we sent the new order
    ACK = 1                 # venue accepted the new order (status NEW)
    REJECT = 2              # venue refused the new order
    FILL = 3                # a trade against the order (Order.fill)
    CANCEL_REQUEST = 4      # we sent a cancel
    CANCEL_ACK = 5          # venue reports the order canceled (our request's ack, or an unsolicited cancel)
    CANCEL_REJECT = 6       # venue refused our cancel
    EXPIRE = 7              # venue expired the order
    REPLACE_REQUEST = 8     # we sent an amend (Order.request_replace)
    REPLACE_ACK = 9         # venue applied the amend
    REPLACE_REJECT = 10     # venue refused the amend
    N_EVENTS = 11

# Result codes of Order.apply / ack / fill / request_replace, and table cell markers.
cpdef enum:
    OK = 0                  # applied
    DUPLICATE = 1           # fill with an already applied trade id: ignored and counted
    ILLEGAL = -1            # no transition for (state, event); also the table's "illegal" cell
    OVERFILL = -2           # fill larger than the remaining quantity: refused
    INVALID = -3            # argument or report inconsistent with the order: refused
    RESTORE = -2            # table cell only: back to the state before the pending request

cdef enum:
    INLINE_TRADE_IDS = 8    # trade ids kept in the Order itself before spilling to a set

cdef class Order:
    cdef readonly str client_order_id
    """Our id for the order (``newClientOrderId``); str."""
    cdef readonly str venue_order_id
    """The venue's order id (str), set by ``ack``; None until known."""
    cdef readonly int side
    """+1 buy, -1 sell."""
    cdef readonly int64_t price
    """Limit price in force (ticks); changes only on an applied amend."""
    cdef readonly int64_t qty
    """Order quantity in force (lots); changes only on an applied amend."""
    cdef readonly int64_t filled
    """Cumulative filled quantity (lots)."""
    cdef readonly int state
    """Current state (one of the state constants)."""
    cdef readonly int prev_state
    """State before the last state change; in PENDING_CANCEL/PENDING_REPLACE the state RESTORE returns to."""
    cdef readonly int64_t ts_created_ns
    """Creation time (ns since epoch)."""
    cdef readonly int64_t ts_last_ns
    """Time of the last applied event (ns since epoch)."""
    cdef readonly int64_t fill_count
    """Number of applied fills."""
    cdef readonly int64_t duplicate_fills
    """Number of fills ignored because their trade id was already applied."""
    cdef readonly int64_t fill_notional
    """Sum of price * qty over applied fills (tick*lots, exact)."""
    cdef readonly int64_t pending_price
    """Amend price awaiting the venue (ticks); 0 outside PENDING_REPLACE."""
    cdef readonly int64_t pending_qty
    """Amend quantity awaiting the venue (lots); 0 outside PENDING_REPLACE."""
    cdef readonly str last_error
    """Message of the most recent refused call (ILLEGAL, OVERFILL, INVALID); None if none."""
    cdef int64_t _trade_ids[INLINE_TRADE_IDS]  # trade ids of the first 8 applied fills (index: fill number)
    cdef set _more_trade_ids    # trade ids of later applied fills; None until a 9th fill

    cpdef int apply(self, int event, int64_t ts_ns) except? -9
    cpdef int ack(self, str venue_order_id, int64_t ts_ns) except? -9
    cpdef bint has_trade(self, int64_t trade_id) noexcept
    cpdef int fill(self, int64_t trade_id, int64_t price, int64_t qty, int64_t ts_ns) except? -9
    cpdef int request_replace(self, int64_t price, int64_t qty, int64_t ts_ns) except? -9
    cdef int64_t _open_qty(self) noexcept
    cdef int _refuse(self, int code, str message) noexcept
    cdef int _move(self, int target, int64_t ts_ns) noexcept

cdef class ClientOrderIdGenerator:
    cdef readonly str prefix
    """Fixed leading part of every id; ends with a character outside ``[0-9a-z]``."""
    cdef readonly str venue
    """Limits validated against: ``"binance"``, ``"mexc"`` or ``"all"`` (both)."""
    cdef readonly int max_length
    """Longest id the venue accepts (characters)."""
    cdef readonly int64_t counter
    """Counter of the next id; persist it and pass it as ``start`` after a restart."""
    cdef int64_t _limit     # first counter value whose id no longer fits in max_length

    cpdef str next_id(self)

cpdef int next_state(int state, int event) except? -9
cpdef str transition_error(int state, int event)
