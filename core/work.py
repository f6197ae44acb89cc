"""A unit of work on one order inside one transaction.

Every change to an order goes through ``Work``: status moves are checked by the state
machines, and each move records its history event, asks the notification policy which
messages it causes (written to the outbox in the same transaction) and runs the automatic
follow-ups (``automation.after_move``). Listener hooks run only after the commit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs
from fulfil.core import automation, states
from fulfil.core.messages import notifications
from fulfil.core.models import Event, Order
from fulfil.core.states import StatusChange
from fulfil.core.store.repo import Tx

if TYPE_CHECKING:
    from fulfil.core.engine import Engine


class Work:
    def __init__(
        self,
        engine: Engine,
        tx: Tx,
        order: Order,
        actor: str,
        *,
        notify_customer: bool = True,
        is_new: bool = False,
    ) -> None:
        self.engine = engine
        self.tx = tx
        self.order = order
        self.original = order
        self.actor = actor
        self.notify_customer = notify_customer
        self.is_new = is_new
        self.events: list[Event] = []
        self.changes: list[StatusChange] = []
        self.outbox: list[dict[str, Any]] = []
        self.after_commit: list[Callable[[], object]] = []

    def move(self, machine: states.Machine, target: str, **data: Any) -> StatusChange:
        """Move one machine (checked), record it, then run what follows automatically."""
        self.order, change = states.apply(
            self.order,
            machine,
            target,
            self.engine.policy,
            actor=self.actor,
            notify_customer=self.notify_customer,
            data=data,
        )
        self._record(change)
        automation.after_move(self, change)
        return change

    def happen(self, name: str, *, bump: bool = True, **data: Any) -> StatusChange:
        """Record a lifecycle event that is not a status move (placed, tracking_added...)."""
        if bump:
            self.order = attrs.evolve(self.order, version=self.order.version + 1)
        change = StatusChange(
            self.order.id,
            "order",
            "",
            name,
            self.order.version,
            self.actor,
            self.notify_customer,
            data,
        )
        self._record(change)
        return change

    def update(self, order: Order, kind: str, **data: Any) -> None:
        """Replace the order (an edit, a label, a tracking number) and record why."""
        self.order = attrs.evolve(order, version=self.order.version + 1)
        self.event(kind, **data)

    def event(self, kind: str, **data: Any) -> None:
        self.events.append(
            Event(
                self.order.id, self.order.version, self.engine.clock.now(), kind, self.actor, data
            )
        )

    def enqueue(self, kind: str, dedupe_key: str, payload: dict[str, Any]) -> None:
        now = self.engine.clock.now().isoformat()
        self.outbox.append(
            {
                "kind": kind,
                "dedupe_key": dedupe_key,
                "order_id": self.order.id,
                "payload": payload,
                "status": "pending",
                "attempts": 0,
                "available_at": self.engine.clock.time(),
                "created_at": now,
                "updated_at": now,
            }
        )

    def _record(self, change: StatusChange) -> None:
        self.changes.append(change)
        kind = change.new if change.machine == "order" else change.machine
        data = {"old": change.old, "new": change.new} if change.machine != "order" else {}
        self.event(kind, **data, **change.data)
        for key, payload in notifications(self.engine, self.order, change):
            self.enqueue("notification", key, payload)

    def commit(self) -> None:
        """Write the order, its history and its outbox rows (inside the open transaction)."""
        now = self.engine.clock.now().isoformat()
        if self.is_new:
            self.tx.insert_order(self.order, now)
        elif self.order.version != self.original.version:
            self.tx.save_order(self.order, self.original, now)
        self.tx.add_events(self.events)
        self.tx.enqueue(self.outbox)
