"""The engine: the one API the CLI (and later a service) calls to change orders.

Each command loads the order inside a transaction, changes it through ``Work`` (so the
state machines, history, outbox and automation apply uniformly), commits, and only then
calls the observer hooks. Bad input raises an ``InputError`` or ``InvalidTransition``
before anything is written.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Any

import attrs
import httpx
import pluggy
from fulfil.core.automation import plan_shipments, request_returns, start_fulfilment
from fulfil.core.carriers import Capability, CarrierPlugin
from fulfil.core.clock import Clock, SystemClock
from fulfil.core.config import Config
from fulfil.core.context import PluginContext
from fulfil.core.errors import InputError, OrderNotFound
from fulfil.core.http import make_client
from fulfil.core.models import Address, LineItem, Money, Note, Order
from fulfil.core.notifiers import Channel
from fulfil.core.plugins import Hooks, make_plugin_manager
from fulfil.core.resilience import limit_requests
from fulfil.core.secrets import resolve_secrets
from fulfil.core.states import FulfilmentStatus as F
from fulfil.core.states import PaymentStatus as P
from fulfil.core.states import Policy
from fulfil.core.store.db import Store
from fulfil.core.work import Work

__all__ = ["Engine"]

log = logging.getLogger(__name__)

PAYMENT_ACTIONS = {
    "paid": P.PAID,
    "offline": P.AWAITING_PAYMENT,  # placed with offline payment: wait for the money
    "failed": P.AWAITING_PAYMENT,  # online payment failed: the customer may retry
    "declined": P.CANCELLED,
}


@attrs.frozen
class ImportResult:
    imported: list[str]
    skipped: list[str]  # one line per order not imported, saying why


class Engine:
    def __init__(
        self,
        config: Config,
        *,
        pm: pluggy.PluginManager | None = None,
        clock: Clock | None = None,
        http: httpx.Client | None = None,
    ) -> None:
        self.config = config
        self.pm = pm or make_plugin_manager()
        self.hooks = Hooks(self.pm)
        if config.templates_dir is not None:
            from fulfil.core.notify.render import BuiltinRenderer

            name = "fulfil.builtin.BuiltinRenderer"
            self.pm.unregister(name=name)
            self.pm.register(BuiltinRenderer(config.templates_dir), name=name)
        self.clock = clock or SystemClock()
        self.store = Store.open(config.database_url)
        self.policy = Policy(allow_unpaid_fulfilment=config.store.allow_unpaid_fulfilment)
        self.data_dir = config.base_dir
        self.http = http or make_client(config.worker.concurrency)
        limit_requests(self.http)  # carriers' rate limits count HTTP requests
        self.plugin_context = PluginContext(client=self.http, data_dir=self.data_dir)
        self._carriers: dict[str, Any] = {}  # built on first use, bound to their settings
        self._notifiers: dict[str, Any] = {}

    def close(self) -> None:
        for plugin in [*self._carriers.values(), *self._notifiers.values()]:
            close = getattr(plugin, "close", None)
            if close is not None:
                close()
        self.store.close()
        self.http.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- plugins ------------------------------------------------------------------------

    @cached_property
    def carrier_plugins(self) -> dict[str, CarrierPlugin]:
        return {name: self.hooks.registry.carrier(name) for name in self.config.carriers}

    @cached_property
    def carriers_with_pickups(self) -> set[str]:
        """Carriers that collect: they offer pickups and the merchant did not turn them off."""
        return {
            name
            for name, plugin in self.carrier_plugins.items()
            if plugin.supports(Capability.PICKUPS) and name not in self.config.dropoff
        }

    def rate_limit(self, carrier: str) -> float | None:
        """Unsafe requests a second: the merchant's setting, else what the plugin declares."""
        configured = self.config.rate_limits.get(carrier)
        return configured if configured is not None else self.carrier_plugins[carrier].rate_limit

    def carrier(self, name: str) -> Any:
        """The carrier ``name`` bound to its settings (built once, on first use)."""
        if name not in self._carriers:
            settings = resolve_secrets(self.config.carriers[name], f"carriers.{name}.settings")
            self._carriers[name] = self.carrier_plugins[name].factory(settings, self.plugin_context)
        return self._carriers[name]

    def notifier(self, name: str) -> Any:
        if name not in self._notifiers:
            plugin = self.hooks.registry.notifier(name)
            settings = resolve_secrets(self.config.notifiers[name], f"notifiers.{name}.settings")
            self._notifiers[name] = plugin.factory(settings, self.plugin_context)
        return self._notifiers[name]

    @cached_property
    def _channel_notifiers(self) -> dict[Channel, str]:
        table: dict[Channel, str] = {}
        for name in self.config.notifiers:
            table.setdefault(self.hooks.registry.notifier(name).channel, name)
        return table

    def notifier_for_channel(self, channel: Channel) -> str | None:
        return self._channel_notifiers.get(channel)

    @cached_property
    def store_context(self) -> dict[str, Any]:
        store = self.config.store
        return {
            "name": store.name,
            "email": store.email,
            "phone": store.phone,
            "locale": store.locale,
            "currency": store.currency,
        }

    def log_carrier_error(self, operation: str, key: str, error: Exception) -> None:
        # Ids and the carrier's reason only: no addresses, no credentials.
        log.warning("%s %s: %s", operation, key, error)

    @property
    def labels_dir(self) -> Path:
        return self.data_dir / "labels"

    # --- running a change ---------------------------------------------------------------

    def _change(
        self,
        order_ids: Sequence[str],
        action: Callable[[Work], object],
        *,
        actor: str = "system",
        notify_customer: bool = True,
        expected_version: int | None = None,
    ) -> list[Order]:
        """Apply ``action`` to each order in ONE transaction: all or nothing."""
        works = []
        with self.store.transaction() as tx:
            orders = tx.load_orders(order_ids)  # one read for the batch
            for order_id in order_ids:
                order = orders.get(order_id)
                if order is None:
                    raise OrderNotFound(order_id)
                if expected_version is not None and expected_version < order.version:
                    log.info("ignored a change to %s based on stale version", order_id)
                    continue
                work = Work(self, tx, order, actor, notify_customer=notify_customer)
                action(work)
                work.commit()
                works.append(work)
                orders[order_id] = work.order  # an id given twice sees its first change
        self.after_commit(works)
        return [w.order for w in works]

    def after_commit(self, works: Iterable[Work]) -> None:
        """Call the observers for committed work; record (never raise) their failures."""
        failures = []
        for work in works:
            for change in work.changes:
                if change.machine == "order" and change.new == "placed":
                    failed = self.hooks.order_placed(work.order)
                elif change.machine != "order":
                    failed = self.hooks.status_changed(work.order, change)
                else:
                    continue
                failures += [(work, line) for line in failed]
            for callback in work.after_commit:
                callback()
        if failures:  # recorded in the history, never allowed to undo the change
            with self.store.transaction() as tx:
                for work, line in failures:
                    work.events.clear()
                    work.event("listener_failed", error=line)
                    tx.add_events(work.events)

    # --- commands -----------------------------------------------------------------------

    def place(self, orders: Iterable[Order], *, actor: str = "system") -> ImportResult:
        """Store new orders; orders whose id exists already are skipped, not overwritten."""
        orders = list(orders)
        imported, skipped, works = [], [], []
        with self.store.transaction() as tx:
            existing = tx.existing_order_ids(o.id for o in orders)
            for order in orders:
                if order.id in existing:
                    skipped.append(f"{order.id}: an order with this id exists already")
                    continue
                existing.add(order.id)
                requested = order.payment_status
                fresh = attrs.evolve(
                    order,
                    payment_status=P.INCOMPLETE,
                    fulfilment_status=F.AWAITING_PROCESSING,
                    version=0,
                )
                work = Work(self, tx, fresh, actor, is_new=True)
                work.happen("placed", bump=False)
                if requested is not P.INCOMPLETE:
                    work.move("payment", requested)
                work.commit()
                works.append(work)
                imported.append(order.id)
        self.after_commit(works)
        return ImportResult(imported, skipped)

    def get(self, order_id: str) -> Order:
        with self.store.transaction() as tx:
            order = tx.load_order(order_id)
        if order is None:
            raise OrderNotFound(order_id)
        return order

    def record_payment(
        self,
        order_ids: Sequence[str],
        action: str,
        *,
        actor: str = "staff",
        expected_version: int | None = None,
    ) -> list[Order]:
        if action not in PAYMENT_ACTIONS:
            raise InputError(f"payment action: {action!r} is not one of {sorted(PAYMENT_ACTIONS)}")
        target = PAYMENT_ACTIONS[action]
        return self._change(
            order_ids,
            lambda w: w.move("payment", target),
            actor=actor,
            expected_version=expected_version,
        )

    def refund(
        self, order_id: str, amount: Decimal | None = None, *, actor: str = "staff"
    ) -> Order:
        """Record a refund; the cumulative amount decides PARTIALLY_REFUNDED or REFUNDED."""

        def refund(work: Work) -> None:
            order = work.order
            total = order.total
            already = order.refunded or Money.zero(order.currency)
            this = (
                Money(amount, order.currency)
                if amount is not None
                else Money(total.amount - already.amount, order.currency)
            )
            if this.amount <= 0 or already.amount + this.amount > total.amount:
                raise InputError(
                    f"refund amount: {this.amount} is not between 0 and "
                    f"{total.amount - already.amount} (what is left to refund)"
                )
            refunded = already + this
            work.order = attrs.evolve(order, refunded=refunded)
            full = refunded.amount >= total.amount
            work.move(
                "payment", P.REFUNDED if full else P.PARTIALLY_REFUNDED, amount=str(this.amount)
            )

        return self._change([order_id], refund, actor=actor)[0]

    def cancel(
        self, order_ids: Sequence[str], *, actor: str = "staff", notify_customer: bool = True
    ) -> list[Order]:
        def cancel(work: Work) -> None:
            if work.order.payment_status in (P.INCOMPLETE, P.AWAITING_PAYMENT):
                work.move("payment", P.CANCELLED)  # cascades to WILL_NOT_DELIVER
            else:
                work.move("fulfilment", F.WILL_NOT_DELIVER)

        return self._change(order_ids, cancel, actor=actor, notify_customer=notify_customer)

    def edit(
        self,
        order_id: str,
        *,
        shipping_address: Address | None = None,
        items: Sequence[LineItem] | None = None,
        actor: str = "staff",
    ) -> Order:
        """Change the address or items while the order is still AWAITING_PROCESSING."""

        def edit(work: Work) -> None:
            order = work.order
            if order.fulfilment_status is not F.AWAITING_PROCESSING:
                raise InputError(
                    f"order {order.id}: cannot be edited once fulfilment started "
                    f"(it is {order.fulfilment_status})"
                )
            before = order.to_mapping()
            changed = attrs.evolve(
                order,
                shipping_address=shipping_address or order.shipping_address,
                items=tuple(items) if items is not None else order.items,
            )
            after = changed.to_mapping()
            diff = {
                k: {"before": before.get(k), "after": after.get(k)}
                for k in ("shipping_address", "items")
                if before.get(k) != after.get(k)
            }
            if diff:
                work.update(changed, "edit", changes=diff)

        return self._change([order_id], edit, actor=actor)[0]

    def add_note(self, order_id: str, text: str, *, author: str = "staff") -> Order:
        if not text.strip():
            raise InputError("note: the text is empty")

        def note(work: Work) -> None:
            work.tx.add_note(work.order.id, Note(self.clock.now(), author, text))
            work.event("note", author=author)

        self._change([order_id], note, actor=author)
        return self.get(order_id)

    def fulfil(self, order_ids: Sequence[str], *, actor: str = "staff") -> list[Order]:
        """Start fulfilment by hand (e.g. for a store that allows unpaid fulfilment)."""
        return self._change(order_ids, start_fulfilment, actor=actor)

    def ship(
        self,
        order_ids: Sequence[str],
        tracking: Sequence[str] = (),
        *,
        actor: str = "staff",
        notify_customer: bool = True,
    ) -> list[Order]:
        """Mark orders SHIPPED, with tracking numbers paired to ids in order: one message."""
        if tracking and len(tracking) != len(order_ids):
            raise InputError(
                f"--tracking: {len(tracking)} numbers given for "
                f"{len(order_ids)} orders; give one per order or none"
            )
        numbers = dict(zip(order_ids, tracking, strict=False))

        def ship(work: Work) -> None:
            number = numbers.get(work.order.id)
            if number:
                work.update(_with_tracking(work.order, number), "tracking", number=number)
            if work.order.fulfilment_status is F.SHIPPED and number:
                work.happen("tracking_added", number=number)
                return
            if work.order.fulfilment_status is F.AWAITING_PROCESSING:
                work.move("fulfilment", F.PROCESSING)
            work.move("fulfilment", F.SHIPPED)

        return self._change(order_ids, ship, actor=actor, notify_customer=notify_customer)

    def mark(
        self,
        order_ids: Sequence[str],
        status: F,
        *,
        actor: str = "staff",
        notify_customer: bool = True,
        return_labels: bool = False,
    ) -> list[Order]:
        """Move the fulfilment status by hand (out for delivery, delivered, returned...).

        With ``return_labels``, a RETURNED order also gets a return label for each shipment
        whose carrier offers returns, bought through the same saga.
        """
        if return_labels and status is not F.RETURNED:
            raise InputError("--return-label: only with the returned status")
        returns = {
            name for name, p in self.carrier_plugins.items() if p.supports(Capability.RETURNS)
        }

        def mark(work: Work) -> None:
            work.move("fulfilment", status)
            if return_labels:
                request_returns(work, returns)

        return self._change(order_ids, mark, actor=actor, notify_customer=notify_customer)


def _with_tracking(order: Order, number: str) -> Order:
    """Put a hand-entered tracking number on the shipments that lack one."""
    shipments = order.shipments or plan_shipments(order)
    return attrs.evolve(
        order,
        shipments=tuple(
            s if s.is_trackable else attrs.evolve(s, tracking_number=number) for s in shipments
        ),
    )
