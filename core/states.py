"""The two state machines, as data, checked in one place.

``PAYMENT`` and ``FULFILMENT`` map each status to the statuses it may move to; ``GUARDS``
adds the conditions a fulfilment move needs (payment first, the fulfilment type's branch,
every shipment trackable before SHIPPED). ``check()`` is the only gate: it raises
``InvalidTransition`` naming the allowed next states, and ``apply()`` returns a new order
with the status and a version one higher. Status names are the ones store back offices use
(Ecwid's API values), so merchants recognise them.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal, NamedTuple

import attrs
from fulfil.core.errors import InvalidTransition

if TYPE_CHECKING:
    from fulfil.core.models import Order

__all__ = [
    "FULFILMENT",
    "PAYMENT",
    "FulfilmentStatus",
    "Machine",
    "PaymentStatus",
    "StatusChange",
    "allowed_next",
    "apply",
    "check",
]


class PaymentStatus(enum.StrEnum):
    INCOMPLETE = "INCOMPLETE"
    AWAITING_PAYMENT = "AWAITING_PAYMENT"
    PAID = "PAID"
    PARTIALLY_REFUNDED = "PARTIALLY_REFUNDED"
    REFUNDED = "REFUNDED"
    CANCELLED = "CANCELLED"


class FulfilmentStatus(enum.StrEnum):
    AWAITING_PROCESSING = "AWAITING_PROCESSING"
    PROCESSING = "PROCESSING"
    READY_FOR_PICKUP = "READY_FOR_PICKUP"
    OUT_FOR_DELIVERY = "OUT_FOR_DELIVERY"
    SHIPPED = "SHIPPED"
    DELIVERED = "DELIVERED"
    WILL_NOT_DELIVER = "WILL_NOT_DELIVER"
    RETURNED = "RETURNED"


Machine = Literal["payment", "fulfilment"]
P, F = PaymentStatus, FulfilmentStatus

# Read-only: _MOVES below is built from these tables once, at import.
PAYMENT: Mapping[PaymentStatus, frozenset[PaymentStatus]] = MappingProxyType(
    {
        P.INCOMPLETE: frozenset({P.AWAITING_PAYMENT, P.PAID, P.CANCELLED}),
        P.AWAITING_PAYMENT: frozenset({P.PAID, P.CANCELLED}),
        P.PAID: frozenset({P.PARTIALLY_REFUNDED, P.REFUNDED}),
        P.PARTIALLY_REFUNDED: frozenset({P.PARTIALLY_REFUNDED, P.REFUNDED}),
        P.REFUNDED: frozenset(),
        P.CANCELLED: frozenset(),
    }
)

_FINAL_FULFILMENT = frozenset({F.DELIVERED, F.WILL_NOT_DELIVER, F.RETURNED})

FULFILMENT: Mapping[FulfilmentStatus, frozenset[FulfilmentStatus]] = MappingProxyType(
    {
        F.AWAITING_PROCESSING: frozenset({F.PROCESSING, F.DELIVERED, F.WILL_NOT_DELIVER}),
        F.PROCESSING: frozenset(
            {F.SHIPPED, F.READY_FOR_PICKUP, F.OUT_FOR_DELIVERY, F.WILL_NOT_DELIVER}
        ),
        F.READY_FOR_PICKUP: frozenset({F.DELIVERED, F.WILL_NOT_DELIVER}),
        F.OUT_FOR_DELIVERY: frozenset({F.DELIVERED, F.WILL_NOT_DELIVER}),
        F.SHIPPED: frozenset({F.DELIVERED, F.RETURNED, F.WILL_NOT_DELIVER}),
        F.DELIVERED: frozenset({F.RETURNED}),
        F.WILL_NOT_DELIVER: frozenset(),
        F.RETURNED: frozenset(),
    }
)


@attrs.frozen
class Policy:
    """Store settings the guards read."""

    allow_unpaid_fulfilment: bool = False


Guard = Callable[["Order", Policy], bool]


def _paid(order: Order, policy: Policy) -> bool:
    return order.payment_status is P.PAID or policy.allow_unpaid_fulfilment


def _type_is(kind: str) -> Guard:
    return lambda order, _: order.shipping.type.value == kind


def _all_trackable(order: Order, _: Policy) -> bool:
    return bool(order.shipments) and all(s.is_trackable for s in order.shipments)


def _digital_and_paid(order: Order, _: Policy) -> bool:
    return order.is_digital_only and order.payment_status is P.PAID


GUARDS: Mapping[tuple[str, str], tuple[Guard, ...]] = MappingProxyType(
    {
        (F.AWAITING_PROCESSING, F.PROCESSING): (_paid,),
        (F.AWAITING_PROCESSING, F.DELIVERED): (_digital_and_paid,),
        (F.PROCESSING, F.SHIPPED): (_type_is("shipping"), _all_trackable),
        (F.PROCESSING, F.READY_FOR_PICKUP): (_type_is("pickup"),),
        (F.PROCESSING, F.OUT_FOR_DELIVERY): (_type_is("local_delivery"),),
    }
)


@attrs.frozen
class StatusChange:
    """One move of one machine, or (``machine="order"``) a lifecycle event such as
    ``placed``, ``tracking_added`` or ``label_failed``; what listeners and the notification
    policy receive."""

    order_id: str
    machine: str
    old: str
    new: str
    version: int
    actor: str = "system"
    notify_customer: bool = True
    data: Mapping[str, object] = attrs.field(factory=dict)

    def to_mapping(self) -> dict[str, object]:
        return {
            "order_id": self.order_id,
            "machine": self.machine,
            "old": self.old,
            "new": self.new,
            "version": self.version,
            "actor": self.actor,
            "notify_customer": self.notify_customer,
            "data": dict(self.data),
        }


class _Move(NamedTuple):
    status: str  # the new status, a PaymentStatus or FulfilmentStatus member
    old: str  # the old and new status as plain strings, for the StatusChange
    new: str
    guards: tuple[Guard, ...]


def _moves() -> dict[tuple[str, str, str], _Move]:
    """Every edge of both tables with its guards, keyed ``(machine, current, target)``, so
    that checking a move is one lookup and its own guards (the tables are read-only)."""
    moves: dict[tuple[str, str, str], _Move] = {}
    for machine, table in (("payment", PAYMENT), ("fulfilment", FULFILMENT)):
        for current, targets in table.items():
            for target in targets:
                guards = GUARDS.get((current, target), ()) if machine == "fulfilment" else ()
                moves[machine, current, target] = _Move(target, current.value, target.value, guards)
    return moves


_MOVES = _moves()


def allowed_next(order: Order, machine: Machine, policy: Policy = Policy()) -> list[str]:
    """The statuses ``machine`` may move to from where ``order`` is now, guards included."""
    if machine == "payment":
        return sorted(PAYMENT[order.payment_status])
    current = order.fulfilment_status
    return sorted(
        target
        for target in FULFILMENT[current]
        if all(guard(order, policy) for guard in GUARDS.get((current, target), ()))
    )


def _checked_move(order: Order, machine: Machine, target: str, policy: Policy) -> _Move:
    if machine == "payment":
        current: str = order.payment_status
    elif machine == "fulfilment":
        current = order.fulfilment_status
    else:
        raise ValueError(f"machine must be 'payment' or 'fulfilment', not {machine!r}")
    # The happy path runs the requested edge's guards only; the sorted list of every
    # allowed move (all guards of all edges) is built for the error message alone.
    move = _MOVES.get((machine, current, target))
    if move is not None:
        for guard in move.guards:  # a loop, not all(): no generator on the hot path
            if not guard(order, policy):
                break
        else:
            return move
    allowed = allowed_next(order, machine, policy)
    raise InvalidTransition(order.id, machine, current, target, allowed)


def check(order: Order, machine: Machine, target: str, policy: Policy = Policy()) -> None:
    """Raise ``InvalidTransition`` unless ``order`` may move ``machine`` to ``target``."""
    _checked_move(order, machine, target, policy)


def apply(
    order: Order,
    machine: Machine,
    target: str,
    policy: Policy = Policy(),
    *,
    actor: str = "system",
    notify_customer: bool = True,
    data: Mapping[str, object] | None = None,
) -> tuple[Order, StatusChange]:
    """Check and apply one move; return the new order and the change it made."""
    move = _checked_move(order, machine, target, policy)
    version = order.version + 1
    if machine == "payment":
        new = order.with_payment_status(move.status, version)
    else:
        new = order.with_fulfilment_status(move.status, version)
    change = StatusChange(
        order.id,
        machine,
        move.old,
        move.new,
        version,
        actor,
        notify_customer,
        dict(data) if data else {},
    )
    return new, change


def is_final(status: FulfilmentStatus) -> bool:
    return status in _FINAL_FULFILMENT
