"""The domain model: frozen attrs value objects.

Objects are built from validated input with named constructors (``Order.from_mapping``)
and turned back into plain JSON-ready mappings with ``to_mapping``; the two round-trip.
A change returns a new object (``attrs.evolve``; a status change, the hottest write, uses
``Order.with_payment_status`` / ``with_fulfilment_status``). Validation of *input* is the JSON
Schema's job at the boundary (``fulfil.core.validation``); the validators here only guard
invariants that code, not users, could break.

Units: money is ``Decimal`` with an ISO 4217 currency, weights are grams, dimensions
millimetres; conversion to a carrier's units happens at the carrier edge.
"""

from __future__ import annotations

import enum
import types
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, final

import attrs
from fulfil.core.states import FulfilmentStatus, PaymentStatus

__all__ = [
    "Address",
    "Customer",
    "Event",
    "FulfilmentType",
    "ItemKind",
    "Label",
    "LineItem",
    "Money",
    "Note",
    "Order",
    "Parcel",
    "Pickup",
    "Shipment",
    "ShipmentItem",
    "ShippingOption",
]


class ItemKind(enum.StrEnum):
    PHYSICAL = "physical"
    DIGITAL = "digital"
    GIFT_CARD = "gift_card"


class FulfilmentType(enum.StrEnum):
    SHIPPING = "shipping"
    LOCAL_DELIVERY = "local_delivery"
    PICKUP = "pickup"


def _opt(data: Mapping[str, Any], key: str) -> Any:
    return data.get(key)


def _drop_none(mapping: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in mapping.items() if v is not None}


@attrs.frozen
class Money:
    amount: Decimal = attrs.field(converter=Decimal)
    currency: str = attrs.field(validator=attrs.validators.matches_re(r"^[A-Z]{3}$"))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Money:
        return cls(Decimal(str(data["amount"])), data["currency"])

    def to_mapping(self) -> dict[str, Any]:
        return {"amount": str(self.amount), "currency": self.currency}

    def __add__(self, other: Money) -> Money:
        if other.currency != self.currency:
            raise ValueError(f"cannot add {other.currency} to {self.currency}")
        return Money(self.amount + other.amount, self.currency)

    def __mul__(self, factor: int) -> Money:
        return Money(self.amount * factor, self.currency)

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(Decimal("0"), currency)


@attrs.frozen
class Address:
    name: str
    line1: str
    city: str
    postal_code: str
    country: str  # ISO 3166-1 alpha-2
    line2: str | None = None
    region: str | None = None
    company: str | None = None
    phone: str | None = None  # E.164

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Address:
        return cls(
            name=data["name"],
            line1=data["line1"],
            city=data["city"],
            postal_code=data["postal_code"],
            country=data["country"],
            line2=_opt(data, "line2"),
            region=_opt(data, "region"),
            company=_opt(data, "company"),
            phone=_opt(data, "phone"),
        )

    def to_mapping(self) -> dict[str, Any]:
        return _drop_none(attrs.asdict(self))


@attrs.frozen
class Customer:
    name: str
    email: str
    locale: str | None = None
    phone: str | None = None  # E.164

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Customer:
        return cls(data["name"], data["email"], _opt(data, "locale"), _opt(data, "phone"))

    def to_mapping(self) -> dict[str, Any]:
        return _drop_none(attrs.asdict(self))


@attrs.frozen
class LineItem:
    sku: str
    name: str
    quantity: int
    unit_price: Money
    weight_g: int = 0
    kind: ItemKind = ItemKind.PHYSICAL
    download_url: str | None = None
    gift_card_code: str | None = None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> LineItem:
        return cls(
            sku=data["sku"],
            name=data["name"],
            quantity=int(data["quantity"]),
            unit_price=Money.from_mapping(data["unit_price"]),
            weight_g=int(data.get("weight_g", 0)),
            kind=ItemKind(data.get("kind", "physical")),
            download_url=_opt(data, "download_url"),
            gift_card_code=_opt(data, "gift_card_code"),
        )

    def to_mapping(self) -> dict[str, Any]:
        return _drop_none(
            {
                "sku": self.sku,
                "name": self.name,
                "quantity": self.quantity,
                "unit_price": self.unit_price.to_mapping(),
                "weight_g": self.weight_g,
                "kind": self.kind.value,
                "download_url": self.download_url,
                "gift_card_code": self.gift_card_code,
            }
        )

    @property
    def is_physical(self) -> bool:
        return self.kind is ItemKind.PHYSICAL

    @property
    def total(self) -> Money:
        return self.unit_price * self.quantity


@attrs.frozen
class ShippingOption:
    type: FulfilmentType = FulfilmentType.SHIPPING
    carrier: str | None = None
    service: str | None = None
    price: Money | None = None
    pickup_instructions: str | None = None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> ShippingOption:
        price = data.get("price")
        return cls(
            type=FulfilmentType(data.get("type", "shipping")),
            carrier=_opt(data, "carrier"),
            service=_opt(data, "service"),
            price=Money.from_mapping(price) if price is not None else None,
            pickup_instructions=_opt(data, "pickup_instructions"),
        )

    def to_mapping(self) -> dict[str, Any]:
        return _drop_none(
            {
                "type": self.type.value,
                "carrier": self.carrier,
                "service": self.service,
                "price": self.price.to_mapping() if self.price else None,
                "pickup_instructions": self.pickup_instructions,
            }
        )


@attrs.frozen
class Parcel:
    weight_g: int
    length_mm: int = 300
    width_mm: int = 200
    height_mm: int = 100

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Parcel:
        return cls(**{k: int(v) for k, v in data.items()})

    def to_mapping(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen
class ShipmentItem:
    sku: str
    quantity: int

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> ShipmentItem:
        return cls(data["sku"], int(data["quantity"]))

    def to_mapping(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen
class Label:
    carrier: str
    service: str
    tracking_number: str
    format: str  # PDF, ZPL or PNG
    cost: Money
    carrier_reference: str | None = None
    url: str | None = None
    document_path: str | None = None  # where the bytes were saved; bytes are not kept in the order
    tracking_url: str | None = None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Label:
        return cls(
            carrier=data["carrier"],
            service=data["service"],
            tracking_number=data["tracking_number"],
            format=data["format"],
            cost=Money.from_mapping(data["cost"]),
            carrier_reference=_opt(data, "carrier_reference"),
            url=_opt(data, "url"),
            document_path=_opt(data, "document_path"),
            tracking_url=_opt(data, "tracking_url"),
        )

    def to_mapping(self) -> dict[str, Any]:
        mapping = attrs.asdict(self, recurse=False)
        mapping["cost"] = self.cost.to_mapping()
        return _drop_none(mapping)


@attrs.frozen
class Shipment:
    id: str
    parcels: tuple[Parcel, ...]
    items: tuple[ShipmentItem, ...]
    carrier: str | None = None
    service: str | None = None
    label: Label | None = None
    tracking_number: str | None = None
    tracking_url: str | None = None
    pickup_id: str | None = None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Shipment:
        label = data.get("label")
        return cls(
            id=data["id"],
            parcels=tuple(Parcel.from_mapping(p) for p in data["parcels"]),
            items=tuple(ShipmentItem.from_mapping(i) for i in data["items"]),
            carrier=_opt(data, "carrier"),
            service=_opt(data, "service"),
            label=Label.from_mapping(label) if label else None,
            tracking_number=_opt(data, "tracking_number"),
            tracking_url=_opt(data, "tracking_url"),
            pickup_id=_opt(data, "pickup_id"),
        )

    def to_mapping(self) -> dict[str, Any]:
        return _drop_none(
            {
                "id": self.id,
                "parcels": [p.to_mapping() for p in self.parcels],
                "items": [i.to_mapping() for i in self.items],
                "carrier": self.carrier,
                "service": self.service,
                "label": self.label.to_mapping() if self.label else None,
                "tracking_number": self.tracking_number,
                "tracking_url": self.tracking_url,
                "pickup_id": self.pickup_id,
            }
        )

    @property
    def weight_g(self) -> int:
        return sum(p.weight_g for p in self.parcels)

    @property
    def is_trackable(self) -> bool:
        """A shipment may be marked shipped once it has a label or a tracking number."""
        return self.label is not None or self.tracking_number is not None


@attrs.frozen
class Pickup:
    id: str
    carrier: str
    day: str  # ISO date, in the pickup location's time zone
    window_start: str  # "HH:MM"
    window_end: str
    address: Address
    shipment_ids: tuple[str, ...]
    confirmation: str | None = None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Pickup:
        return cls(
            id=data["id"],
            carrier=data["carrier"],
            day=data["day"],
            window_start=data["window_start"],
            window_end=data["window_end"],
            address=Address.from_mapping(data["address"]),
            shipment_ids=tuple(data["shipment_ids"]),
            confirmation=_opt(data, "confirmation"),
        )

    def to_mapping(self) -> dict[str, Any]:
        return _drop_none(
            {
                "id": self.id,
                "carrier": self.carrier,
                "day": self.day,
                "window_start": self.window_start,
                "window_end": self.window_end,
                "address": self.address.to_mapping(),
                "shipment_ids": list(self.shipment_ids),
                "confirmation": self.confirmation,
            }
        )


@attrs.frozen
class Note:
    at: datetime
    author: str
    text: str

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Note:
        return cls(datetime.fromisoformat(data["at"]), data["author"], data["text"])

    def to_mapping(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "author": self.author, "text": self.text}


@attrs.frozen
class Event:
    """One append-only history row: what changed, when, and who did it."""

    order_id: str
    version: int
    at: datetime
    kind: str  # placed, payment, fulfilment, edit, note, label, pickup, notification, ...
    actor: str  # "system", "staff:<id>", "plugin:<name>"
    data: Mapping[str, Any] = attrs.field(factory=dict)

    def to_mapping(self) -> dict[str, Any]:
        return {
            "order_id": self.order_id,
            "version": self.version,
            "at": self.at.isoformat(),
            "kind": self.kind,
            "actor": self.actor,
            "data": dict(self.data),
        }

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Event:
        return cls(
            data["order_id"],
            int(data["version"]),
            datetime.fromisoformat(data["at"]),
            data["kind"],
            data["actor"],
            dict(data.get("data", {})),
        )


def _compile_copier(cls: type, *replaced: str) -> Callable[..., Any]:
    """Compile ``copy(instance, *values)``: a new ``cls`` whose ``replaced`` fields are set
    to ``values`` and whose other fields are the ``instance``'s (the same objects).

    Why: ``attrs.evolve`` re-runs ``__init__`` (a ``getattr`` and a keyword per field, every
    converter): about 4 us for the 19 fields of ``Order``, half of a whole status change.
    This copy costs about 1 us. It skips ``__init__``, so it is only correct when the new
    values already are what their fields' converters would make of them (its callers see to
    that), no replaced field has a validator, and ``__init__`` does nothing but store the
    fields: checked here, once.

    Each field is written through its slot's member descriptor, which stores the value
    without going through the frozen ``__setattr__`` (attrs' own ``__init__`` does the same
    with ``object.__setattr__``). The body is unrolled with ``exec``, the way attrs builds
    ``__init__``, because a loop over the fields costs another 0.7 us.
    """
    fields = attrs.fields(cls)
    names = [field.name for field in fields]
    unknown = set(replaced) - set(names)
    validated = [field.name for field in fields if field.name in replaced and field.validator]
    extra_slots = set(cls.__dict__.get("__slots__", ())) - set(names) - {"__weakref__"}
    if (
        unknown
        or validated
        or extra_slots  # e.g. cache_hash's slot, which __init__ would reset
        or not all(isinstance(cls.__dict__.get(n), types.MemberDescriptorType) for n in names)
        or hasattr(cls, "__attrs_pre_init__")
        or hasattr(cls, "__attrs_post_init__")
        or not all(field.init for field in fields)
    ):
        raise TypeError(f"{cls.__name__} cannot be copied field by field, replacing {replaced}")
    params = {name: f"value_{i}" for i, name in enumerate(replaced)}
    lines = [f"def copy(instance, {', '.join(params.values())}):", "    new = new_object(cls)"]
    for i, name in enumerate(names):
        lines.append(f"    set_{i}(new, {params.get(name, f'instance.{name}')})")
    lines.append("    return new")
    namespace: dict[str, Any] = {"cls": cls, "new_object": object.__new__}
    namespace.update({f"set_{i}": cls.__dict__[name].__set__ for i, name in enumerate(names)})
    exec("\n".join(lines), namespace)  # the source is made of field names only
    copy: Callable[..., Any] = namespace["copy"]
    return copy


@final  # the compiled copiers below build an Order, not a subclass
@attrs.frozen
class Order:
    id: str
    number: int
    store: str
    created_at: datetime
    customer: Customer
    shipping_address: Address | None
    billing_address: Address | None
    items: tuple[LineItem, ...]
    shipping: ShippingOption = ShippingOption()
    currency: str = "EUR"
    payment_status: PaymentStatus = attrs.field(
        default=PaymentStatus.INCOMPLETE, converter=PaymentStatus
    )
    fulfilment_status: FulfilmentStatus = attrs.field(
        default=FulfilmentStatus.AWAITING_PROCESSING, converter=FulfilmentStatus
    )
    shipments: tuple[Shipment, ...] = ()
    notes: tuple[Note, ...] = ()
    customer_comment: str | None = None
    notify_customer: bool = True
    external_fulfilment: bool = False
    refunded: Money | None = None
    version: int = 0

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Order:
        def address(key: str) -> Address | None:
            value = data.get(key)
            return Address.from_mapping(value) if value else None

        refunded = data.get("refunded")
        return cls(
            id=str(data["id"]),
            number=int(data["number"]),
            store=data.get("store", "default"),
            created_at=datetime.fromisoformat(data["created_at"]),
            customer=Customer.from_mapping(data["customer"]),
            shipping_address=address("shipping_address"),
            billing_address=address("billing_address"),
            items=tuple(LineItem.from_mapping(i) for i in data["items"]),
            shipping=ShippingOption.from_mapping(data.get("shipping", {})),
            currency=data.get("currency", "EUR"),
            payment_status=PaymentStatus(data.get("payment_status", "INCOMPLETE")),
            fulfilment_status=FulfilmentStatus(
                data.get("fulfilment_status", "AWAITING_PROCESSING")
            ),
            shipments=tuple(Shipment.from_mapping(s) for s in data.get("shipments", ())),
            notes=tuple(Note.from_mapping(n) for n in data.get("notes", ())),
            customer_comment=_opt(data, "customer_comment"),
            notify_customer=bool(data.get("notify_customer", True)),
            external_fulfilment=bool(data.get("external_fulfilment", False)),
            refunded=Money.from_mapping(refunded) if refunded else None,
            version=int(data.get("version", 0)),
        )

    def to_mapping(self) -> dict[str, Any]:
        return _drop_none(
            {
                "id": self.id,
                "number": self.number,
                "store": self.store,
                "created_at": self.created_at.isoformat(),
                "customer": self.customer.to_mapping(),
                "shipping_address": self.shipping_address.to_mapping()
                if self.shipping_address
                else None,
                "billing_address": self.billing_address.to_mapping()
                if self.billing_address
                else None,
                "items": [i.to_mapping() for i in self.items],
                "shipping": self.shipping.to_mapping(),
                "currency": self.currency,
                "payment_status": self.payment_status.value,
                "fulfilment_status": self.fulfilment_status.value,
                "shipments": [s.to_mapping() for s in self.shipments],
                "notes": [n.to_mapping() for n in self.notes],
                "customer_comment": self.customer_comment,
                "notify_customer": self.notify_customer,
                "external_fulfilment": self.external_fulfilment,
                "refunded": self.refunded.to_mapping() if self.refunded else None,
                "version": self.version,
            }
        )

    def with_payment_status(self, status: str, version: int) -> Order:
        """``attrs.evolve(self, payment_status=status, version=version)``, 4 times faster."""
        if type(status) is not PaymentStatus:
            status = PaymentStatus(status)  # the field's converter; a member needs none
        return _copy_with_payment_status(self, status, version)

    def with_fulfilment_status(self, status: str, version: int) -> Order:
        """``attrs.evolve(self, fulfilment_status=status, version=version)``, 4 times faster."""
        if type(status) is not FulfilmentStatus:
            status = FulfilmentStatus(status)  # the field's converter; a member needs none
        return _copy_with_fulfilment_status(self, status, version)

    @property
    def physical_items(self) -> tuple[LineItem, ...]:
        return tuple(i for i in self.items if i.is_physical)

    @property
    def is_digital_only(self) -> bool:
        """Every line is a download or a gift card: delivered by email on payment."""
        return bool(self.items) and not self.physical_items

    @property
    def total(self) -> Money:
        total = Money.zero(self.currency)
        for item in self.items:
            total = total + item.total
        if self.shipping.price is not None:
            total = total + self.shipping.price
        return total

    @property
    def locale(self) -> str | None:
        return self.customer.locale


# Order.with_payment_status / with_fulfilment_status run the status converter themselves;
# version has none. The other fields come from a valid Order, so they are valid as they are.
_copy_with_payment_status: Callable[[Order, PaymentStatus, int], Order] = _compile_copier(
    Order, "payment_status", "version"
)
_copy_with_fulfilment_status: Callable[[Order, FulfilmentStatus, int], Order] = _compile_copier(
    Order, "fulfilment_status", "version"
)
