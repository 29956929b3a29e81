"""Pure-Python reference of :mod:`mmcore_ext.orders` (differential tests and benchmark baseline).

Same constants, table and semantics as the compiled module; see its module docstring for why each
less obvious transition is legal. The table here is a dict written out independently of the C array.
Client order id generation is compiled-only (it is not on the differential path).
"""
from __future__ import annotations

from fractions import Fraction

INITIALIZED, SUBMITTED, ACCEPTED, PARTIALLY_FILLED, FILLED = 0, 1, 2, 3, 4
PENDING_CANCEL, CANCELED, REJECTED, EXPIRED, PENDING_REPLACE = 5, 6, 7, 8, 9
N_STATES = 10
SUBMIT, ACK, REJECT, FILL, CANCEL_REQUEST, CANCEL_ACK, CANCEL_REJECT, EXPIRE = 0, 1, 2, 3, 4, 5, 6, 7
REPLACE_REQUEST, REPLACE_ACK, REPLACE_REJECT = 8, 9, 10
N_EVENTS = 11
OK, DUPLICATE, ILLEGAL, OVERFILL, INVALID = 0, 1, -1, -2, -3
RESTORE = -2

STATE_NAMES = ("INITIALIZED", "SUBMITTED", "ACCEPTED", "PARTIALLY_FILLED", "FILLED", "PENDING_CANCEL",
               "CANCELED", "REJECTED", "EXPIRED", "PENDING_REPLACE")
EVENT_NAMES = ("SUBMIT", "ACK", "REJECT", "FILL", "CANCEL_REQUEST", "CANCEL_ACK", "CANCEL_REJECT", "EXPIRE",
               "REPLACE_REQUEST", "REPLACE_ACK", "REPLACE_REJECT")
TERMINAL_STATES = (FILLED, CANCELED, REJECTED, EXPIRED)
_INT64_MAX = 2**63 - 1
#: Bounds of the compiled core (``mmcore_ext/bounds.pxd``): an order's price (ticks) and quantity (lots).
MAX_PRICE_TICKS = 2**53
MAX_QTY_LOTS = 2**53

#: (state, event) -> target; FILL holds the partial-fill target, RESTORE means "back to prev_state".
TABLE: dict[tuple[int, int], int] = {
    (INITIALIZED, SUBMIT): SUBMITTED,
    (SUBMITTED, ACK): ACCEPTED,
    (SUBMITTED, REJECT): REJECTED,
    (SUBMITTED, FILL): PARTIALLY_FILLED,
    (SUBMITTED, CANCEL_REQUEST): PENDING_CANCEL,
    (SUBMITTED, CANCEL_ACK): CANCELED,
    (SUBMITTED, EXPIRE): EXPIRED,
    (ACCEPTED, ACK): ACCEPTED,
    (ACCEPTED, FILL): PARTIALLY_FILLED,
    (ACCEPTED, CANCEL_REQUEST): PENDING_CANCEL,
    (ACCEPTED, CANCEL_ACK): CANCELED,
    (ACCEPTED, EXPIRE): EXPIRED,
    (ACCEPTED, REPLACE_REQUEST): PENDING_REPLACE,
    (PARTIALLY_FILLED, ACK): PARTIALLY_FILLED,
    (PARTIALLY_FILLED, FILL): PARTIALLY_FILLED,
    (PARTIALLY_FILLED, CANCEL_REQUEST): PENDING_CANCEL,
    (PARTIALLY_FILLED, CANCEL_ACK): CANCELED,
    (PARTIALLY_FILLED, EXPIRE): EXPIRED,
    (PARTIALLY_FILLED, REPLACE_REQUEST): PENDING_REPLACE,
    (FILLED, ACK): FILLED,
    (FILLED, CANCEL_REJECT): FILLED,
    (FILLED, REPLACE_ACK): FILLED,
    (FILLED, REPLACE_REJECT): FILLED,
    (PENDING_CANCEL, ACK): PENDING_CANCEL,
    (PENDING_CANCEL, REJECT): REJECTED,
    (PENDING_CANCEL, FILL): PENDING_CANCEL,
    (PENDING_CANCEL, CANCEL_ACK): CANCELED,
    (PENDING_CANCEL, CANCEL_REJECT): RESTORE,
    (PENDING_CANCEL, EXPIRE): EXPIRED,
    (CANCELED, ACK): CANCELED,
    (CANCELED, FILL): CANCELED,
    (CANCELED, CANCEL_ACK): CANCELED,
    (CANCELED, CANCEL_REJECT): CANCELED,
    (CANCELED, REPLACE_ACK): CANCELED,
    (CANCELED, REPLACE_REJECT): CANCELED,
    (REJECTED, REJECT): REJECTED,
    (REJECTED, CANCEL_REJECT): REJECTED,
    (EXPIRED, ACK): EXPIRED,
    (EXPIRED, CANCEL_REJECT): EXPIRED,
    (EXPIRED, EXPIRE): EXPIRED,
    (EXPIRED, REPLACE_ACK): EXPIRED,
    (EXPIRED, REPLACE_REJECT): EXPIRED,
    (PENDING_REPLACE, ACK): PENDING_REPLACE,
    (PENDING_REPLACE, FILL): PENDING_REPLACE,
    (PENDING_REPLACE, CANCEL_ACK): CANCELED,
    (PENDING_REPLACE, EXPIRE): EXPIRED,
    (PENDING_REPLACE, REPLACE_ACK): RESTORE,
    (PENDING_REPLACE, REPLACE_REJECT): RESTORE,
}


def _check(state: int, event: int) -> None:
    if not (0 <= state < N_STATES and 0 <= event < N_EVENTS):
        raise ValueError(f"state {state} / event {event} out of range (0..{N_STATES - 1} / 0..{N_EVENTS - 1})")


def next_state(state: int, event: int) -> int:
    """Table cell for ``(state, event)``: target, ``ILLEGAL`` or ``RESTORE``. Raises ValueError if out of range."""
    _check(state, event)
    return TABLE.get((state, event), ILLEGAL)


def transition_error(state: int, event: int) -> str:
    """``"illegal transition: <STATE> + <EVENT>"``. Raises ValueError if out of range."""
    _check(state, event)
    return f"illegal transition: {STATE_NAMES[state]} + {EVENT_NAMES[event]}"


class Order:
    """Reference ``Order``: same constructor, attributes, methods and result codes as the compiled class."""

    __slots__ = ("client_order_id", "venue_order_id", "side", "price", "qty", "filled", "state", "prev_state",
                 "ts_created_ns", "ts_last_ns", "fill_count", "duplicate_fills", "fill_notional",
                 "pending_price", "pending_qty", "last_error", "_trade_ids")

    def __init__(self, client_order_id: str, side: int, price: int, qty: int, ts_created_ns: int):
        if not isinstance(client_order_id, str) or not client_order_id:
            raise ValueError("client_order_id must be a non-empty str")
        if side not in (1, -1):
            raise ValueError(f"side must be +1 or -1, got {side}")
        if not (1 <= price <= MAX_PRICE_TICKS and 1 <= qty <= MAX_QTY_LOTS):
            raise ValueError(f"price (ticks) and qty (lots) must be in [1, {MAX_PRICE_TICKS}] and "
                             f"[1, {MAX_QTY_LOTS}], got {price} and {qty}")
        self.client_order_id = client_order_id
        self.venue_order_id = None
        self.side = side
        self.price = price
        self.qty = qty
        self.filled = 0
        self.state = INITIALIZED
        self.prev_state = INITIALIZED
        self.ts_created_ns = ts_created_ns
        self.ts_last_ns = ts_created_ns
        self.fill_count = 0
        self.duplicate_fills = 0
        self.fill_notional = 0
        self.pending_price = 0
        self.pending_qty = 0
        self.last_error = None
        self._trade_ids = set()

    def __repr__(self):
        return (f"Order({self.client_order_id!r}, {STATE_NAMES[self.state]}, side={self.side}, "
                f"price={self.price}, qty={self.qty}, filled={self.filled})")

    def _open_qty(self) -> int:
        if self.state == PENDING_REPLACE:
            return max(self.qty, self.pending_qty)
        return self.qty

    @property
    def remaining(self) -> int:
        """Lots the venue may still fill (``max(qty, pending_qty) - filled`` while an amend is in flight)."""
        return self._open_qty() - self.filled

    @property
    def avg_price(self) -> Fraction | None:
        """Exact average fill price (ticks); None before the first fill."""
        return Fraction(self.fill_notional, self.filled) if self.filled else None

    def _refuse(self, code: int, message: str) -> int:
        self.last_error = message
        return code

    def _move(self, target: int, ts_ns: int) -> int:
        if target != self.state:
            if self.state == PENDING_REPLACE:
                self.pending_price = self.pending_qty = 0
            self.prev_state, self.state = self.state, target
        self.ts_last_ns = ts_ns
        return OK

    def _adopt_amend(self) -> None:
        self.qty, self.price = self.pending_qty, self.pending_price

    def apply(self, event: int, ts_ns: int) -> int:
        """Apply a status event; returns OK, ILLEGAL or INVALID (see the compiled ``Order.apply``)."""
        if not 0 <= event < N_EVENTS or event in (FILL, REPLACE_REQUEST):
            raise ValueError(f"apply() takes a status event 0..{N_EVENTS - 1} other than FILL ({FILL}) and "
                             f"REPLACE_REQUEST ({REPLACE_REQUEST}), got {event}")
        target = TABLE.get((self.state, event), ILLEGAL)
        if target == ILLEGAL:
            return self._refuse(ILLEGAL, transition_error(self.state, event))
        leaving_replace = self.state == PENDING_REPLACE and target != PENDING_REPLACE
        if leaving_replace and event == REPLACE_REJECT and self.filled > self.qty:
            return self._refuse(INVALID, f"REPLACE_REJECT contradicts fills: filled {self.filled} lots "
                                         f"> unamended qty {self.qty} lots")
        if leaving_replace and event != REPLACE_REJECT and (event == REPLACE_ACK or self.filled >= self.qty):
            if self.pending_qty < self.filled:
                return self._refuse(INVALID, f"REPLACE_ACK contradicts fills: amended qty {self.pending_qty} "
                                             f"lots < filled {self.filled} lots")
            self._adopt_amend()
        if target == RESTORE:
            target = self.prev_state
            if self.filled and target in (SUBMITTED, ACCEPTED):
                target = PARTIALLY_FILLED
            if self.filled == self.qty:
                target = FILLED
        elif event == ACK and self.state == PENDING_CANCEL and self.prev_state == SUBMITTED:
            self.prev_state = ACCEPTED
        return self._move(target, ts_ns)

    def ack(self, venue_order_id: str | None, ts_ns: int) -> int:
        """Apply ACK and record ``venue_order_id`` if given and the ACK is applied."""
        rc = self.apply(ACK, ts_ns)
        if rc == OK and venue_order_id is not None:
            self.venue_order_id = venue_order_id
        return rc

    def has_trade(self, trade_id: int) -> bool:
        return trade_id in self._trade_ids

    def fill(self, trade_id: int, price: int, qty: int, ts_ns: int) -> int:
        """Apply one execution; returns OK, DUPLICATE, ILLEGAL, INVALID or OVERFILL."""
        if trade_id in self._trade_ids:
            self.duplicate_fills += 1
            return DUPLICATE
        target = TABLE.get((self.state, FILL), ILLEGAL)
        if target == ILLEGAL:
            return self._refuse(ILLEGAL, transition_error(self.state, FILL))
        if price <= 0 or qty <= 0 or price > MAX_PRICE_TICKS:
            return self._refuse(INVALID, f"fill {trade_id}: price {price} ticks must be in [1, {MAX_PRICE_TICKS}] "
                                         f"and qty {qty} lots > 0")
        open_qty = self._open_qty()
        if qty > open_qty - self.filled:
            return self._refuse(OVERFILL, f"fill {trade_id}: {qty} lots > remaining {open_qty - self.filled} lots")
        if self.fill_notional + price * qty > _INT64_MAX:
            return self._refuse(INVALID, f"fill {trade_id}: fill_notional would overflow int64")
        self.filled += qty
        self.fill_notional += price * qty
        self.fill_count += 1
        self._trade_ids.add(trade_id)
        if self.filled == open_qty:
            if self.filled > self.qty:
                self._adopt_amend()
            target = FILLED
        return self._move(target, ts_ns)

    def request_replace(self, price: int, qty: int, ts_ns: int) -> int:
        """Apply REPLACE_REQUEST with the new price (ticks) and total qty (lots); OK, ILLEGAL or INVALID."""
        target = TABLE.get((self.state, REPLACE_REQUEST), ILLEGAL)
        if target == ILLEGAL:
            return self._refuse(ILLEGAL, transition_error(self.state, REPLACE_REQUEST))
        if price <= 0 or qty <= self.filled or price > MAX_PRICE_TICKS or qty > MAX_QTY_LOTS:
            return self._refuse(INVALID, f"amend to price {price} ticks, qty {qty} lots: need price in "
                                         f"[1, {MAX_PRICE_TICKS}] and qty in (filled {self.filled}, "
                                         f"{MAX_QTY_LOTS}] lots")
        if price == self.price and qty == self.qty:
            return self._refuse(INVALID, "amend changes neither price nor qty")
        self.pending_price, self.pending_qty = price, qty
        return self._move(target, ts_ns)
