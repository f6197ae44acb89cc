"""The carrier contract: what a carrier plugin declares and the operations it implements.

A plugin registers a ``CarrierPlugin`` (through ``fulfil_register_carriers``) that
*declares* its name, capabilities, origin countries, services, label formats and settings
schema, and a ``factory(settings, context)`` that returns a ``Carrier`` bound to the
merchant's settings (``env:`` references resolved to ``Secret``) and a ``PluginContext``
holding the ``httpx.Client`` the core built (timeouts and pooling live in one place; a
plugin never builds its own client) and the folder it may keep files in.

Operations take typed requests and return typed results; failures raise ``CarrierError``
(see ``fulfil.core.errors``). ``buy_label`` must be idempotent on
``LabelRequest.idempotency_key``: the core sends the same key again when an outcome was
unknown, and calls ``find_label`` to reconcile before retrying.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from datetime import date
from typing import Any, Protocol, runtime_checkable

import attrs
from fulfil.core.context import PluginContext
from fulfil.core.models import Address, Money, Parcel

__all__ = [
    "Capability",
    "Carrier",
    "CarrierPlugin",
    "CustomsItem",
    "LabelRequest",
    "PickupConfirmation",
    "PickupRequest",
    "PurchasedLabel",
    "Rate",
    "TrackingInfo",
]


class Capability(enum.StrEnum):
    RATES = "rates"
    LABELS = "labels"
    CANCEL = "cancel"
    PICKUPS = "pickups"
    TRACKING = "tracking"
    RETURNS = "returns"


@attrs.frozen
class CustomsItem:
    description: str
    quantity: int
    value: Money
    weight_g: int
    origin_country: str
    sku: str | None = None
    hs_code: str | None = None


@attrs.frozen
class LabelRequest:
    """Everything a label is prefilled from. ``customs`` is set when the parcel leaves
    the customs union, with one line per item it carries."""

    idempotency_key: str  # "order:shipment:n", stable across retries
    order_id: str
    order_number: int
    shipment_id: str
    sender: Address
    recipient: Address
    parcels: tuple[Parcel, ...]
    service: str | None
    label_format: str = "PDF"
    customs: tuple[CustomsItem, ...] = ()
    recipient_email: str | None = None
    is_return: bool = False
    # False only on a first attempt the engine knows was never sent: an adapter for a
    # service without idempotency keys may then skip its lookup by reference.
    maybe_sent: bool = True


@attrs.frozen
class PurchasedLabel:
    tracking_number: str
    format: str
    cost: Money
    service: str
    document: bytes | None = attrs.field(default=None, repr=False)
    url: str | None = None
    tracking_url: str | None = None
    carrier_reference: str | None = None


@attrs.frozen
class Rate:
    service: str
    cost: Money
    days: int | None = None


@attrs.frozen
class PickupRequest:
    idempotency_key: str  # "pickup:carrier:day:location"
    day: date
    window_start: str  # "HH:MM", local time at the pickup address
    window_end: str
    address: Address
    tracking_numbers: tuple[str, ...]
    carrier_references: tuple[str, ...]
    parcel_count: int
    total_weight_g: int


@attrs.frozen
class PickupConfirmation:
    confirmation: str
    carrier_reference: str | None = None


@attrs.frozen
class TrackingInfo:
    tracking_number: str
    # pre_transit, in_transit, out_for_delivery, delivered, returned, failure, cancelled
    status: str
    events: tuple[Mapping[str, Any], ...] = ()


@runtime_checkable
class Carrier(Protocol):
    """A carrier bound to settings. Implement the operations its capabilities declare:

    ========== ============================================================
    labels     ``buy_label(LabelRequest) -> PurchasedLabel`` and ``find_label(key)``
    rates      ``quote(LabelRequest) -> list[Rate]`` (every service when ``service`` is None)
    cancel     ``cancel_label(Label) -> None`` (void a bought label)
    returns    ``buy_label`` with ``LabelRequest.is_return`` set
    pickups    ``schedule_pickup(PickupRequest) -> PickupConfirmation`` (idempotent on
               ``PickupRequest.idempotency_key``: an unknown outcome is settled by
               retrying the same key) and ``cancel_pickup(PickupConfirmation) -> None``
               (a service that cannot cancel raises ``CarrierError(kind="rejected")``
               saying so)
    tracking   ``track(tracking_number) -> TrackingInfo``
    ========== ============================================================

    An optional ``close()`` is called when the engine shuts down.
    """

    def buy_label(self, request: LabelRequest) -> PurchasedLabel: ...

    def find_label(self, idempotency_key: str) -> PurchasedLabel | None:
        """Reconcile an unknown outcome: the label bought under this key, if any."""
        ...


def _capabilities(values: Iterable[str]) -> frozenset[Capability]:
    return frozenset(Capability(v) for v in values)


def _strings(values: Iterable[str]) -> frozenset[str]:
    return frozenset(values)


CarrierFactory = Callable[[Mapping[str, Any], PluginContext], Any]


@attrs.frozen
class CarrierPlugin:
    """What a carrier plugin registers: a declaration plus a factory."""

    name: str
    factory: CarrierFactory
    capabilities: frozenset[Capability] = attrs.field(converter=_capabilities)
    countries: frozenset[str] = attrs.field(converter=_strings)  # origin; "*" = any
    services: tuple[str, ...] = ()
    label_formats: tuple[str, ...] = ("PDF",)
    settings_schema: Mapping[str, Any] = attrs.field(factory=lambda: {"type": "object"})
    rate_limit: float | None = None  # unsafe requests (POST...) a second; None = no limit
    description: str = ""
    version: str = "0"

    def supports(self, capability: Capability) -> bool:
        return capability in self.capabilities

    def ships_from(self, country: str) -> bool:
        return "*" in self.countries or country in self.countries

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": "carrier",
            "version": self.version,
            "description": self.description,
            "capabilities": sorted(c.value for c in self.capabilities),
            "countries": sorted(self.countries),
            "services": list(self.services),
            "label_formats": list(self.label_formats),
        }
