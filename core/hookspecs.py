"""Every hook fulfil calls, in the order an order meets them.

Implement a hook by decorating a function with ``fulfil.core.hookimpl`` in a module that
the ``fulfil`` entry-point group names::

    # pyproject.toml
    [project.entry-points.fulfil]
    acme = "fulfil_acme"

The core calls hooks with keyword arguments only, so an implementation may accept any
subset of a hook's arguments, and hooks only ever gain arguments. Observers
(``fulfil_order_placed``, ``fulfil_status_changed``, ``fulfil_label_purchased``,
``fulfil_pickup_scheduled``) are isolated: one that raises is logged and recorded in the
order's history, and neither the other listeners nor the transition are stopped.
``docs/hooks.md`` is generated from nothing: a test checks that it documents every hook
here with the same signature.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from fulfil.core.carriers import CarrierPlugin
    from fulfil.core.models import Label, Order, Pickup, Shipment
    from fulfil.core.notifiers import NotifierPlugin
    from fulfil.core.notify.notices import Notice, Rendered
    from fulfil.core.routing import Route
    from fulfil.core.states import StatusChange

hookspec = pluggy.HookspecMarker("fulfil")
hookimpl = pluggy.HookimplMarker("fulfil")


# --- registration -----------------------------------------------------------------------


@hookspec
def fulfil_register_carriers(register: Callable[[CarrierPlugin], None]) -> None:
    """Register carrier plugins by calling ``register`` once per carrier.

    :param register: takes a ``CarrierPlugin``; the core rejects a second carrier of the
        same name with ``PluginError``.
    :return: nothing.
    Calling rule: called once, when the registry is first needed, for every plugin.

    Example::

        @hookimpl
        def fulfil_register_carriers(register):
            register(CarrierPlugin(name="acme", factory=AcmeCarrier,
                                   capabilities={"labels"}, countries={"FR"}))
    """


@hookspec
def fulfil_register_notifiers(register: Callable[[NotifierPlugin], None]) -> None:
    """Register notifier plugins by calling ``register`` once per notifier.

    :param register: takes a ``NotifierPlugin``; duplicates raise ``PluginError``.
    :return: nothing.
    Calling rule: called once, when the registry is first needed, for every plugin.

    Example::

        @hookimpl
        def fulfil_register_notifiers(register):
            register(NotifierPlugin(name="pager", channel="push", factory=Pager))
    """


# --- routing ----------------------------------------------------------------------------


@hookspec(firstresult=True)
def fulfil_select_carrier(
    order: Order, shipment: Shipment, candidates: Sequence[Route]
) -> Route | None:
    """Choose the carrier and service for one shipment.

    :param order: the paid order.
    :param shipment: the shipment a label is about to be bought for.
    :param candidates: the routes the merchant's rules allow, best first (the first
        matching rule, then its fallback).
    :return: the ``Route`` to use, or ``None`` to let the next implementation decide.
    Calling rule: firstresult; the built-in implementation runs last and returns
    ``candidates[0]``.

    Example::

        @hookimpl(tryfirst=True)
        def fulfil_select_carrier(order, candidates):
            if order.shipping.carrier:  # the customer chose one at checkout
                return next((r for r in candidates if r.carrier == order.shipping.carrier), None)
    """


# --- lifecycle observers ----------------------------------------------------------------


@hookspec
def fulfil_order_placed(order: Order) -> None:
    """An order was stored for the first time.

    :param order: the order as stored (version 0).
    :return: ignored.
    Calling rule: every implementation, after the transaction committed; a raising one is
    logged and recorded, the others still run.

    Example::

        @hookimpl
        def fulfil_order_placed(order):
            crm.add_customer(order.customer.email)
    """


@hookspec
def fulfil_status_changed(order: Order, change: StatusChange) -> None:
    """The payment or fulfilment status of an order changed.

    :param order: the order after the change.
    :param change: machine (``payment`` or ``fulfilment``), old and new status, version.
    :return: ignored.
    Calling rule: every implementation, after the transaction committed; isolated.

    Example::

        @hookimpl
        def fulfil_status_changed(order, change):
            if change.new == "SHIPPED":
                erp.mark_shipped(order.number)
    """


@hookspec
def fulfil_label_purchased(order: Order, shipment: Shipment, label: Label) -> None:
    """A label was bought and stored for a shipment.

    :param order: the order the shipment belongs to.
    :param shipment: the shipment, with ``label`` set.
    :param label: the label (tracking number, cost, saved document path).
    :return: ignored.
    Calling rule: every implementation, once per label, after it was stored; isolated.

    Example::

        @hookimpl
        def fulfil_label_purchased(label):
            printer.queue(label.document_path)
    """


@hookspec
def fulfil_pickup_scheduled(pickup: Pickup) -> None:
    """A carrier pickup was booked for a batch of shipments.

    :param pickup: carrier, day, window, address, shipments covered and confirmation.
    :return: ignored.
    Calling rule: every implementation, once per pickup booked; isolated.

    Example::

        @hookimpl
        def fulfil_pickup_scheduled(pickup):
            slack.post(f"{pickup.carrier} comes on {pickup.day}")
    """


# --- notifications ----------------------------------------------------------------------


@hookspec
def fulfil_notifications_for(
    order: Order, change: StatusChange, settings: dict[str, Any]
) -> list[Notice]:
    """Say which messages an event causes.

    :param order: the order after the event.
    :param change: the event: a status change, or ``machine="order"`` with ``new`` one of
        ``placed``, ``tracking_added``, ``label_failed``.
    :param settings: the ``notifications`` section of the config (channels per event,
        merchant copies).
    :return: a list of ``Notice`` (template, audience, channel); all lists are merged and
        duplicates (same template, audience and channel) dropped.
    Calling rule: every implementation; the built-in policy implements DESIGN.md section 6.

    Example::

        @hookimpl
        def fulfil_notifications_for(order, change):
            if change.new == "DELIVERED":
                return [Notice("review_request", "customer", "email")]
            return []
    """


@hookspec(firstresult=True)
def fulfil_render_notification(
    notice: Notice, order: Order, locale: str, context: dict[str, Any]
) -> Rendered | None:
    """Render a notice into subject, text and HTML.

    :param notice: what to render (template name, audience, channel).
    :param order: the order it is about.
    :param locale: the customer's locale, or the store's.
    :param context: the variables templates see (order, store, shipment, tracking, ...).
    :return: a ``Rendered`` or ``None`` to let the next implementation decide.
    Calling rule: firstresult; the built-in Jinja2 renderer (sandboxed, with the merchant's
    override folder first) runs last.

    Example::

        @hookimpl(tryfirst=True)
        def fulfil_render_notification(notice, order):
            if notice.template == "order_shipped" and order.store == "vip":
                return Rendered(subject="Your treasure is on its way", text="...")
    """
