# cython: language_level=3
"""Order state machine: one explicit ``(state, event) -> state`` table, filled once into a C array.

The layout follows nautilus_trader's ``_ORDER_STATE_TABLE`` (``nautilus_trader/model/orders/base.pyx``), keyed
by events instead of target statuses. A cell holds a target state, ``ILLEGAL`` (-1), or ``RESTORE`` (-2:
return to the state remembered in ``prev_state`` when the pending request was sent). Two targets also depend
on quantities, always by the same rule, so the table stays the single place that says what is legal:

- ``FILL``: the cell is the target of a partial fill; a fill that leaves nothing open goes to FILLED.
- ``RESTORE``: ``prev_state``; SUBMITTED/ACCEPTED become PARTIALLY_FILLED if fills happened meanwhile,
  and FILLED if nothing is left open.

Why the less obvious cells are legal (each is a real ordering: REST responses and the user-data stream are
two channels, so the venue's reports can overtake each other and our own requests):

- Fill before ack (``SUBMITTED + FILL``), and the ack arriving after that fill or after the order already
  ended (``ACK`` in PARTIALLY_FILLED/FILLED/CANCELED/EXPIRED/PENDING_*: no state change; ``ack`` still
  records the venue order id). A late ACK in PENDING_CANCEL also makes the remembered SUBMITTED an ACCEPTED.
- Cancel before ack (``SUBMITTED + CANCEL_REQUEST``: Binance cancels by ``origClientOrderId``); the new
  order can then still be rejected or expire (``PENDING_CANCEL + REJECT/EXPIRE``).
- Fill after a cancel request (``PENDING_CANCEL + FILL``: stays PENDING_CANCEL, or FILLED if complete).
- A cancel or amend that lost the race against whatever ended the order: ``CANCEL_REJECT`` in FILLED,
  CANCELED, REJECTED, EXPIRED and ``REPLACE_ACK/REPLACE_REJECT`` in FILLED, CANCELED, EXPIRED are absorbed.
- The same terminal report twice (REST response and stream both say it): ``CANCELED + CANCEL_ACK``,
  ``EXPIRED + EXPIRE``, ``REJECTED + REJECT``, and ``ACCEPTED + ACK``, are absorbed.
- ``CANCEL_ACK`` without our request (SUBMITTED/ACCEPTED/PARTIALLY_FILLED/PENDING_REPLACE): the venue or
  another session canceled the order; Binance USDⓈ-M also cancels a partially filled order amended to a
  quantity <= executedQty (https://developers.binance.com/docs/derivatives/usds-margined-futures/trade/rest-api/Modify-Order).
- Late fill after CANCELED, the one exception to terminal states being final: the venue filled before it
  processed the cancel, and the fill report arrived after the cancel ack. The order stays CANCELED (the
  rest is canceled) or, if the fill completes it, becomes FILLED. EXPIRED takes no late fill.

Deliberately illegal: a second request while one is in flight (CANCEL_REQUEST in PENDING_*,
REPLACE_REQUEST in PENDING_*), an amend before the ack, and anything after REJECTED but a duplicate
REJECT or a CANCEL_REJECT.

``REPLACE`` is an in-place amend that keeps the order id and its fills (Binance USDⓈ-M ``PUT /fapi/v1/order``);
spot ``cancelReplace`` creates a new order and is modelled as a cancel plus a new ``Order``. While an amend is
in flight the venue may work either quantity, so fills are accepted up to ``max(qty, pending_qty)``
(``remaining`` is that worst case). Fills beyond the old quantity, or the order being canceled/expired after
filling its old quantity, prove the amend was applied; a REPLACE_ACK/REPLACE_REJECT contradicting the fills
is refused as ``INVALID``.

Integer bounds (``bounds.pxd``): an order's price is in ``[1, MAX_PRICE_TICKS]`` and its quantity in
``[1, MAX_QTY_LOTS]`` (both 2**53; the constructor raises ValueError, ``fill`` and ``request_replace`` refuse with
``INVALID``), so ``filled`` (<= the order quantity) and ``qty - filled`` cannot overflow; ``fill_notional``
(a sum of price * qty, up to 2**106) is refused with ``INVALID`` before it would pass int64
(``price > (INT64_MAX - fill_notional) // qty``). The client-order-id counter stays below its limit (<= INT64_MAX).

There is no local "denied" event: pre-trade refusals happen before an Order is created.
The hot-path methods return int codes (``OK``, ``DUPLICATE``, ``ILLEGAL``, ``OVERFILL``, ``INVALID``), leave the
order unchanged on any refusal, and put the reason in ``Order.last_error``; they raise only on programming
errors (an event number out of range, or FILL/REPLACE_REQUEST through ``apply``).
"""
import re
from fractions import Fraction

from libc.stdint cimport int64_t, INT64_MAX
from mmcore_ext.bounds cimport MAX_PRICE_TICKS, MAX_QTY_LOTS

STATE_NAMES = ("INITIALIZED", "SUBMITTED", "ACCEPTED", "PARTIALLY_FILLED", "FILLED", "PENDING_CANCEL",
               "CANCELED", "REJECTED", "EXPIRED", "PENDING_REPLACE")
EVENT_NAMES = ("SUBMIT", "ACK", "REJECT", "FILL", "CANCEL_REQUEST", "CANCEL_ACK", "CANCEL_REJECT", "EXPIRE",
               "REPLACE_REQUEST", "REPLACE_ACK", "REPLACE_REJECT")
TERMINAL_STATES = (FILLED, CANCELED, REJECTED, EXPIRED)

cdef signed char _TABLE[N_STATES][N_EVENTS]


cdef int _build_table() except -1:
    # Every cell starts illegal; below, one line per legal (state, event), grouped by state.
    cdef int s, e
    for s in range(N_STATES):
        for e in range(N_EVENTS):
            _TABLE[s][e] = ILLEGAL
    _TABLE[INITIALIZED][SUBMIT] = SUBMITTED

    _TABLE[SUBMITTED][ACK] = ACCEPTED
    _TABLE[SUBMITTED][REJECT] = REJECTED
    _TABLE[SUBMITTED][FILL] = PARTIALLY_FILLED            # fill before the ack
    _TABLE[SUBMITTED][CANCEL_REQUEST] = PENDING_CANCEL    # cancel by client id before the ack
    _TABLE[SUBMITTED][CANCEL_ACK] = CANCELED              # unsolicited cancel
    _TABLE[SUBMITTED][EXPIRE] = EXPIRED                   # IOC/FOK/GTX before the ack is seen

    _TABLE[ACCEPTED][ACK] = ACCEPTED                      # same ack on the second channel
    _TABLE[ACCEPTED][FILL] = PARTIALLY_FILLED
    _TABLE[ACCEPTED][CANCEL_REQUEST] = PENDING_CANCEL
    _TABLE[ACCEPTED][CANCEL_ACK] = CANCELED               # unsolicited cancel
    _TABLE[ACCEPTED][EXPIRE] = EXPIRED
    _TABLE[ACCEPTED][REPLACE_REQUEST] = PENDING_REPLACE

    _TABLE[PARTIALLY_FILLED][ACK] = PARTIALLY_FILLED      # fill overtook the ack
    _TABLE[PARTIALLY_FILLED][FILL] = PARTIALLY_FILLED
    _TABLE[PARTIALLY_FILLED][CANCEL_REQUEST] = PENDING_CANCEL
    _TABLE[PARTIALLY_FILLED][CANCEL_ACK] = CANCELED       # unsolicited cancel
    _TABLE[PARTIALLY_FILLED][EXPIRE] = EXPIRED
    _TABLE[PARTIALLY_FILLED][REPLACE_REQUEST] = PENDING_REPLACE

    _TABLE[FILLED][ACK] = FILLED                          # stale ack
    _TABLE[FILLED][CANCEL_REJECT] = FILLED                # cancel lost the race
    _TABLE[FILLED][REPLACE_ACK] = FILLED                  # amend applied, then filled before the ack arrived
    _TABLE[FILLED][REPLACE_REJECT] = FILLED               # amend lost the race

    _TABLE[PENDING_CANCEL][ACK] = PENDING_CANCEL          # cancel was sent before the ack
    _TABLE[PENDING_CANCEL][REJECT] = REJECTED             # ... and the new order was refused
    _TABLE[PENDING_CANCEL][FILL] = PENDING_CANCEL         # fill after the cancel request
    _TABLE[PENDING_CANCEL][CANCEL_ACK] = CANCELED
    _TABLE[PENDING_CANCEL][CANCEL_REJECT] = RESTORE
    _TABLE[PENDING_CANCEL][EXPIRE] = EXPIRED

    _TABLE[CANCELED][ACK] = CANCELED                      # stale ack
    _TABLE[CANCELED][FILL] = CANCELED                     # late fill (FILLED if it completes the order)
    _TABLE[CANCELED][CANCEL_ACK] = CANCELED               # same report on the second channel
    _TABLE[CANCELED][CANCEL_REJECT] = CANCELED            # our cancel lost to an unsolicited one
    _TABLE[CANCELED][REPLACE_ACK] = CANCELED              # stale amend ack
    _TABLE[CANCELED][REPLACE_REJECT] = CANCELED           # amend lost the race

    _TABLE[REJECTED][REJECT] = REJECTED                   # same report on the second channel
    _TABLE[REJECTED][CANCEL_REJECT] = REJECTED            # cancel of an order the venue never took

    _TABLE[EXPIRED][ACK] = EXPIRED                        # stale ack
    _TABLE[EXPIRED][CANCEL_REJECT] = EXPIRED              # cancel lost the race
    _TABLE[EXPIRED][EXPIRE] = EXPIRED                     # same report on the second channel
    _TABLE[EXPIRED][REPLACE_ACK] = EXPIRED                # stale amend ack
    _TABLE[EXPIRED][REPLACE_REJECT] = EXPIRED             # amend lost the race

    _TABLE[PENDING_REPLACE][ACK] = PENDING_REPLACE        # same ack on the second channel
    _TABLE[PENDING_REPLACE][FILL] = PENDING_REPLACE       # fill while the amend is in flight
    _TABLE[PENDING_REPLACE][CANCEL_ACK] = CANCELED        # unsolicited, or amend to qty <= executedQty
    _TABLE[PENDING_REPLACE][EXPIRE] = EXPIRED
    _TABLE[PENDING_REPLACE][REPLACE_ACK] = RESTORE        # with the new price/qty
    _TABLE[PENDING_REPLACE][REPLACE_REJECT] = RESTORE
    return 0


_build_table()


cpdef int next_state(int state, int event) except? -9:
    """Return the table cell for ``(state, event)``.

    Parameters
    ----------
    state : int
        A state constant (0 <= state < N_STATES).
    event : int
        An event constant (0 <= event < N_EVENTS).

    Returns
    -------
    int
        The target state; for FILL the target of a partial fill (a completing fill goes to FILLED).
        ``ILLEGAL`` (-1) if there is no transition, ``RESTORE`` (-2) for "back to ``prev_state``".

    Raises
    ------
    ValueError
        ``state`` or ``event`` is out of range.
    """
    if state < 0 or state >= N_STATES or event < 0 or event >= N_EVENTS:
        raise ValueError(f"state {state} / event {event} out of range (0..{N_STATES - 1} / 0..{N_EVENTS - 1})")
    return _TABLE[state][event]


cpdef str transition_error(int state, int event):
    """Return the error for an illegal transition, e.g. ``"illegal transition: FILLED + CANCEL_REQUEST"``.

    Raises
    ------
    ValueError
        ``state`` or ``event`` is out of range.
    """
    if state < 0 or state >= N_STATES or event < 0 or event >= N_EVENTS:
        raise ValueError(f"state {state} / event {event} out of range (0..{N_STATES - 1} / 0..{N_EVENTS - 1})")
    return f"illegal transition: {STATE_NAMES[state]} + {EVENT_NAMES[event]}"


cdef class Order:
    """One order's lifecycle: state, quantities, fills and the pending amend.

    Parameters
    ----------
    client_order_id : str
        Our id (``newClientOrderId``), e.g. from ``ClientOrderIdGenerator.next_id()``.
    side : int
        +1 buy, -1 sell.
    price : int
        Limit price (ticks, in ``[1, MAX_PRICE_TICKS]``).
    qty : int
        Order quantity (lots, in ``[1, MAX_QTY_LOTS]``).
    ts_created_ns : int
        Creation time (ns since epoch).

    Raises
    ------
    ValueError
        Empty id, side not +1/-1, or price/qty outside its range.
    """

    def __init__(self, str client_order_id, int side, int64_t price, int64_t qty, int64_t ts_created_ns):
        if not client_order_id:
            raise ValueError("client_order_id must be a non-empty str")
        if side != 1 and side != -1:
            raise ValueError(f"side must be +1 or -1, got {side}")
        if price <= 0 or qty <= 0 or price > MAX_PRICE_TICKS or qty > MAX_QTY_LOTS:
            raise ValueError(f"price (ticks) and qty (lots) must be in [1, {MAX_PRICE_TICKS}] and "
                             f"[1, {MAX_QTY_LOTS}], got {price} and {qty}")
        self.client_order_id = client_order_id
        self.venue_order_id = None
        self.side = side
        self.price = price
        self.qty = qty
        self.state = INITIALIZED
        self.prev_state = INITIALIZED
        self.ts_created_ns = ts_created_ns
        self.ts_last_ns = ts_created_ns

    def __repr__(self):
        return (f"Order({self.client_order_id!r}, {STATE_NAMES[self.state]}, side={self.side}, "
                f"price={self.price}, qty={self.qty}, filled={self.filled})")

    @property
    def remaining(self):
        """Quantity the venue may still fill (lots): ``qty - filled``, or ``max(qty, pending_qty) - filled``
        while an amend is in flight (the worst case, as the venue may work either quantity)."""
        return self._open_qty() - self.filled

    @property
    def avg_price(self):
        """Average fill price as an exact ``Fraction`` of ticks; None before the first fill."""
        if self.filled == 0:
            return None
        return Fraction(self.fill_notional, self.filled)

    cdef int64_t _open_qty(self) noexcept:
        if self.state == PENDING_REPLACE and self.pending_qty > self.qty:
            return self.pending_qty
        return self.qty

    cdef int _refuse(self, int code, str message) noexcept:
        self.last_error = message
        return code

    cdef int _move(self, int target, int64_t ts_ns) noexcept:
        # Commit a checked transition; leaving PENDING_REPLACE drops the pending amend.
        if target != self.state:
            if self.state == PENDING_REPLACE:
                self.pending_price = 0
                self.pending_qty = 0
            self.prev_state = self.state
            self.state = target
        self.ts_last_ns = ts_ns
        return OK

    cpdef int apply(self, int event, int64_t ts_ns) except? -9:
        """Apply a status event (everything but FILL and REPLACE_REQUEST, which carry quantities).

        Parameters
        ----------
        event : int
            SUBMIT, ACK, REJECT, CANCEL_REQUEST, CANCEL_ACK, CANCEL_REJECT, EXPIRE, REPLACE_ACK or REPLACE_REJECT.
        ts_ns : int
            Event time (ns since epoch); becomes ``ts_last_ns``.

        Returns
        -------
        int
            ``OK``; ``ILLEGAL`` if the table has no transition; ``INVALID`` if an amend report contradicts
            the fills (REPLACE_ACK with a quantity below ``filled``, REPLACE_REJECT after fills beyond the old
            quantity). On a refusal the order is unchanged and ``last_error`` says why.

        Raises
        ------
        ValueError
            ``event`` is out of range, FILL (use ``fill``) or REPLACE_REQUEST (use ``request_replace``).
        """
        cdef int target
        if event < 0 or event >= N_EVENTS or event == FILL or event == REPLACE_REQUEST:
            raise ValueError(f"apply() takes a status event 0..{N_EVENTS - 1} other than FILL ({FILL}) and "
                             f"REPLACE_REQUEST ({REPLACE_REQUEST}), got {event}")
        target = _TABLE[self.state][event]
        if target == ILLEGAL:
            return self._refuse(ILLEGAL, transition_error(self.state, event))
        if self.state == PENDING_REPLACE and target != PENDING_REPLACE:
            if event == REPLACE_REJECT:
                if self.filled > self.qty:
                    return self._refuse(INVALID, f"REPLACE_REJECT contradicts fills: filled {self.filled} lots "
                                                 f"> unamended qty {self.qty} lots")
            elif event == REPLACE_ACK or self.filled >= self.qty:
                # The amend is in force: acked, or proven because the order outlived its old quantity.
                if self.pending_qty < self.filled:
                    return self._refuse(INVALID, f"REPLACE_ACK contradicts fills: amended qty {self.pending_qty} "
                                                 f"lots < filled {self.filled} lots")
                self.qty = self.pending_qty
                self.price = self.pending_price
        if target == RESTORE:
            target = self.prev_state
            if self.filled > 0 and (target == SUBMITTED or target == ACCEPTED):
                target = PARTIALLY_FILLED
            if self.filled == self.qty:
                target = FILLED
        elif event == ACK and self.state == PENDING_CANCEL and self.prev_state == SUBMITTED:
            self.prev_state = ACCEPTED   # a cancel reject now restores an open order
        return self._move(target, ts_ns)

    cpdef int ack(self, str venue_order_id, int64_t ts_ns) except? -9:
        """Apply ACK and record the venue's order id (ignored if None or if the ACK is refused).

        Returns
        -------
        int
            As ``apply(ACK, ts_ns)``.
        """
        cdef int rc = self.apply(ACK, ts_ns)
        if rc == OK and venue_order_id is not None:
            self.venue_order_id = venue_order_id
        return rc

    cpdef bint has_trade(self, int64_t trade_id) noexcept:
        """True if a fill with venue trade id ``trade_id`` has been applied to this order."""
        cdef int64_t i
        for i in range(self.fill_count if self.fill_count < INLINE_TRADE_IDS else INLINE_TRADE_IDS):
            if self._trade_ids[i] == trade_id:
                return True
        return self._more_trade_ids is not None and trade_id in self._more_trade_ids

    cpdef int fill(self, int64_t trade_id, int64_t price, int64_t qty, int64_t ts_ns) except? -9:
        """Apply one execution (Binance ``executionReport`` / ``ORDER_TRADE_UPDATE`` with a trade).

        Parameters
        ----------
        trade_id : int
            Venue trade id (``t``); a trade id already applied to this order is a duplicate report.
        price : int
            Execution price (ticks, > 0).
        qty : int
            Execution quantity (lots, > 0).
        ts_ns : int
            Execution time (ns since epoch).

        Returns
        -------
        int
            ``OK``; ``DUPLICATE`` (ignored, ``duplicate_fills`` += 1, checked first so a repeat of the
            completing fill is not an error); ``ILLEGAL``; ``INVALID`` (price outside ``[1, MAX_PRICE_TICKS]``,
            qty not positive, or ``fill_notional`` would overflow int64); ``OVERFILL`` (qty > ``remaining``).
            Refusals leave the order unchanged and set ``last_error``.
        """
        cdef int target
        cdef int64_t open_qty
        if self.has_trade(trade_id):
            self.duplicate_fills += 1
            return DUPLICATE
        target = _TABLE[self.state][FILL]
        if target == ILLEGAL:
            return self._refuse(ILLEGAL, transition_error(self.state, FILL))
        if price <= 0 or qty <= 0 or price > MAX_PRICE_TICKS:
            return self._refuse(INVALID, f"fill {trade_id}: price {price} ticks must be in [1, {MAX_PRICE_TICKS}] "
                                         f"and qty {qty} lots > 0")
        open_qty = self._open_qty()
        if qty > open_qty - self.filled:
            return self._refuse(OVERFILL, f"fill {trade_id}: {qty} lots > remaining {open_qty - self.filled} lots")
        if price > (INT64_MAX - self.fill_notional) // qty:
            return self._refuse(INVALID, f"fill {trade_id}: fill_notional would overflow int64")
        if self.fill_count < INLINE_TRADE_IDS:
            self._trade_ids[self.fill_count] = trade_id
        else:
            if self._more_trade_ids is None:
                self._more_trade_ids = set()
            self._more_trade_ids.add(trade_id)
        self.filled += qty
        self.fill_notional += price * qty
        self.fill_count += 1
        if self.filled == open_qty:
            if self.filled > self.qty:   # completed at the amended quantity: the amend was in force
                self.qty = self.pending_qty
                self.price = self.pending_price
            target = FILLED
        return self._move(target, ts_ns)

    cpdef int request_replace(self, int64_t price, int64_t qty, int64_t ts_ns) except? -9:
        """Apply REPLACE_REQUEST: an amend to ``price``/``qty`` is in flight (applied by REPLACE_ACK).

        Parameters
        ----------
        price : int
            New limit price (ticks, in ``[1, MAX_PRICE_TICKS]``).
        qty : int
            New total order quantity (lots), > ``filled`` and <= ``MAX_QTY_LOTS``: Binance USDⓈ-M cancels a
            partially filled order amended to ``quantity <= executedQty``.
        ts_ns : int
            Request time (ns since epoch).

        Returns
        -------
        int
            ``OK``; ``ILLEGAL``; ``INVALID`` (price or qty outside its range, qty <= filled, or nothing
            changes: Binance rejects a no-op amend). Refusals leave the order unchanged and set ``last_error``.
        """
        cdef int target = _TABLE[self.state][REPLACE_REQUEST]
        if target == ILLEGAL:
            return self._refuse(ILLEGAL, transition_error(self.state, REPLACE_REQUEST))
        if price <= 0 or qty <= self.filled or price > MAX_PRICE_TICKS or qty > MAX_QTY_LOTS:
            return self._refuse(INVALID, f"amend to price {price} ticks, qty {qty} lots: need price in "
                                         f"[1, {MAX_PRICE_TICKS}] and qty in (filled {self.filled}, "
                                         f"{MAX_QTY_LOTS}] lots")
        if price == self.price and qty == self.qty:
            return self._refuse(INVALID, "amend changes neither price nor qty")
        self.pending_price = price
        self.pending_qty = qty
        return self._move(target, ts_ns)


# Venue limits for client order ids.
# Binance spot and USDⓈ-M ``newClientOrderId``: ``^[\.A-Z\:/a-z0-9_-]{1,36}$``
# (https://developers.binance.com/docs/derivatives/usds-margined-futures/trade/rest-api/New-Order).
# MEXC spot v3 ``POST /api/v3/order`` documents no limit for ``newClientOrderId``
# (https://mexcdevelop.github.io/apidocs/spot_v3_en/#new-order); MEXC futures refuse external ids over 32
# characters (error 2030), so we use a conservative ``^[A-Za-z0-9_-]{1,32}$``. "all" is the intersection.
_ID_RULES = {
    "binance": (re.compile(r"[.A-Z:/a-z0-9_-]*"), 36),
    "mexc": (re.compile(r"[A-Za-z0-9_-]*"), 32),
    "all": (re.compile(r"[A-Za-z0-9_-]*"), 32),
}
cdef const char* _B36 = b"0123456789abcdefghijklmnopqrstuvwxyz"


cdef class ClientOrderIdGenerator:
    """Client order ids ``prefix + base36(counter)``, unique across restarts when ``counter`` is persisted.

    Persist ``counter`` before sending the order that used the previous id (or persist it ahead in blocks)
    and pass it back as ``start``: the next id then differs from every id issued before. Ids of generators
    with different prefixes never collide either, because the prefix must end with a character that is not
    a base36 digit (``[0-9a-z]``), which marks where the counter starts.

    Parameters
    ----------
    prefix : str
        Leading part, e.g. ``"mm1-"``; characters allowed by the venue; ends outside ``[0-9a-z]``.
    start : int
        First counter value (>= 0), normally the persisted ``counter``.
    venue : str
        ``"binance"`` (36 chars, ``[.A-Z:/a-z0-9_-]``), ``"mexc"`` (32 chars, ``[A-Za-z0-9_-]``) or
        ``"all"`` (default: valid on both).

    Raises
    ------
    ValueError
        Unknown venue; prefix empty, with a character the venue refuses, not ending outside ``[0-9a-z]``,
        or too long to leave room for a digit; ``start`` negative or already too long.
    """

    def __init__(self, str prefix, int64_t start=0, str venue="all"):
        if venue not in _ID_RULES:
            raise ValueError(f"venue must be one of {sorted(_ID_RULES)}, got {venue!r}")
        charset, max_length = _ID_RULES[venue]
        if not prefix or charset.fullmatch(prefix) is None:
            raise ValueError(f"prefix {prefix!r}: must be non-empty and match {charset.pattern} ({venue})")
        if prefix[-1] in "0123456789abcdefghijklmnopqrstuvwxyz":
            raise ValueError(f"prefix {prefix!r}: must end with a character outside [0-9a-z] (e.g. '-'), "
                             "or ids of different prefixes could collide")
        if len(prefix) >= max_length:
            raise ValueError(f"prefix {prefix!r}: {len(prefix)} chars leaves no room for the counter "
                             f"(max id length {max_length} on {venue})")
        self._limit = min(36 ** (max_length - len(prefix)), INT64_MAX)
        if start < 0 or start >= self._limit:
            raise ValueError(f"start {start}: must be in [0, {self._limit}) to fit {max_length} chars with "
                             f"prefix {prefix!r}")
        self.prefix = prefix
        self.venue = venue
        self.max_length = max_length
        self.counter = start

    def __repr__(self):
        return f"ClientOrderIdGenerator({self.prefix!r}, start={self.counter}, venue={self.venue!r})"

    cpdef str next_id(self):
        """Return the next id and advance ``counter``.

        Raises
        ------
        ValueError
            The counter no longer fits in the venue's id length (the generator is exhausted).
        """
        cdef char buf[16]
        cdef int i = 15
        cdef int64_t n = self.counter
        if n >= self._limit:
            raise ValueError(f"counter {n} exhausted: ids with prefix {self.prefix!r} would exceed "
                             f"{self.max_length} chars")
        buf[15] = 0
        while True:
            i -= 1
            buf[i] = _B36[n % 36]
            n //= 36
            if n == 0:
                break
        self.counter += 1
        return self.prefix + (buf + i).decode("ascii")
