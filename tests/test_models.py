"""The domain model: mappings round-trip, derived values, Money, immutability."""

from __future__ import annotations

import json
import string
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import attrs
import pytest
from fulfil.core.models import (
    Address,
    Customer,
    Event,
    FulfilmentType,
    ItemKind,
    Label,
    LineItem,
    Money,
    Note,
    Order,
    Parcel,
    Pickup,
    Shipment,
    ShipmentItem,
    ShippingOption,
)
from fulfil.core.states import FulfilmentStatus, PaymentStatus
from hypothesis import given
from hypothesis import strategies as st

# --------------------------------------------------------------------------- strategies
# Every strategy builds the *canonical* mapping: the keys ``to_mapping`` always writes are
# present, optional ones are either present with a value or absent (never None), so a
# round-trip must give back an equal mapping.

COUNTRIES = ["FR", "DE", "US", "GB", "BE", "NL", "ES", "IT", "CH", "CA", "JP", "AU", "PL", "SE"]
CURRENCIES = ["EUR", "USD", "GBP", "CHF", "JPY", "SEK", "PLN"]
LOCALES = ["en", "fr", "de", "en-GB", "fr-CA"]
LABEL_FORMATS = ["PDF", "ZPL", "PNG"]
ZONES = [
    UTC,
    timezone(timedelta(hours=2)),
    timezone(timedelta(hours=-5)),
    timezone(timedelta(hours=5, minutes=30)),
    timezone(timedelta(hours=-9, minutes=-30)),
]

ident = st.text(string.ascii_letters + string.digits + "-_", min_size=1, max_size=12)
words = st.text(min_size=1, max_size=20)
maybe_text = st.text(max_size=20)
urls = ident.map(lambda s: f"https://example.test/{s}")
emails = st.tuples(ident, ident).map(lambda p: f"{p[0]}@{p[1]}.example")
phones = st.from_regex(r"\+[1-9][0-9]{7,13}", fullmatch=True)
moments = st.one_of(
    st.datetimes(timezones=st.sampled_from(ZONES)),
    st.datetimes(),  # naive timestamps round-trip too
)
iso_moments = moments.map(datetime.isoformat)
amounts = st.decimals(
    min_value=0, max_value=Decimal("100000"), places=2, allow_nan=False, allow_infinity=False
).map(str)


def money(currency: str) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({"amount": amounts, "currency": st.just(currency)})


def with_optional(
    required: dict[str, st.SearchStrategy[Any]], optional: dict[str, st.SearchStrategy[Any]]
) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(required, optional=optional)


customers = with_optional(
    {"name": words, "email": emails}, {"locale": st.sampled_from(LOCALES), "phone": phones}
)

addresses = with_optional(
    {
        "name": words,
        "line1": words,
        "city": words,
        "postal_code": st.from_regex(r"[0-9A-Z]{3,8}", fullmatch=True),
        "country": st.sampled_from(COUNTRIES),
    },
    {"line2": words, "region": words, "company": words, "phone": phones},
)


@st.composite
def line_items(draw: st.DrawFn, currency: str, kind: str | None = None) -> dict[str, Any]:
    kind = kind or draw(st.sampled_from([k.value for k in ItemKind]))
    item: dict[str, Any] = {
        "sku": draw(ident),
        "name": draw(words),
        "quantity": draw(st.integers(1, 20)),
        "unit_price": draw(money(currency)),
        "weight_g": draw(st.integers(1, 30_000)) if kind == "physical" else 0,
        "kind": kind,
    }
    if kind == "digital":
        item["download_url"] = draw(urls)
    elif kind == "gift_card":
        item["gift_card_code"] = draw(st.from_regex(r"[A-Z0-9]{4}-[A-Z0-9]{4}", fullmatch=True))
    return item


@st.composite
def shipping_options(draw: st.DrawFn, currency: str, type_: str | None = None) -> dict[str, Any]:
    type_ = type_ or draw(st.sampled_from([t.value for t in FulfilmentType]))
    option: dict[str, Any] = {"type": type_}
    extra: dict[str, st.SearchStrategy[Any]] = {"price": money(currency)}
    if type_ == "shipping":
        extra |= {"carrier": st.sampled_from(["sandbox", "sendcloud"]), "service": ident}
    elif type_ == "pickup":
        extra |= {"pickup_instructions": words}
    elif type_ == "local_delivery":
        extra |= {"carrier": st.just("local_delivery")}
    option |= draw(st.fixed_dictionaries({}, optional=extra))
    return option


def labels(currency: str) -> st.SearchStrategy[dict[str, Any]]:
    return with_optional(
        {
            "carrier": st.sampled_from(["sandbox", "sendcloud", "shippo"]),
            "service": ident,
            "tracking_number": ident,
            "format": st.sampled_from(LABEL_FORMATS),
            "cost": money(currency),
        },
        {
            "carrier_reference": ident,
            "url": urls,
            "document_path": ident.map(lambda s: f"labels/{s}.pdf"),
            "tracking_url": urls,
        },
    )


parcels = st.fixed_dictionaries(
    {
        "weight_g": st.integers(1, 30_000),
        "length_mm": st.integers(1, 2_000),
        "width_mm": st.integers(1, 2_000),
        "height_mm": st.integers(1, 2_000),
    }
)


def shipments(currency: str, skus: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    return with_optional(
        {
            "id": ident,
            "parcels": st.lists(parcels, min_size=1, max_size=3),
            "items": st.lists(
                st.fixed_dictionaries(
                    {"sku": st.sampled_from(skus), "quantity": st.integers(1, 5)}
                ),
                max_size=3,
            ),
        },
        {
            "carrier": st.sampled_from(["sandbox", "sendcloud"]),
            "service": ident,
            "label": labels(currency),
            "tracking_number": ident,
            "tracking_url": urls,
            "pickup_id": ident,
        },
    )


notes = st.fixed_dictionaries({"at": iso_moments, "author": words, "text": maybe_text})


@st.composite
def order_mappings(draw: st.DrawFn) -> dict[str, Any]:
    currency = draw(st.sampled_from(CURRENCIES))
    items = draw(st.lists(line_items(currency), min_size=1, max_size=5))
    shipping = draw(shipping_options(currency))
    order: dict[str, Any] = {
        "id": draw(ident),
        "number": draw(st.integers(1, 10**9)),
        "store": draw(ident),
        "created_at": draw(iso_moments),
        "customer": draw(customers),
        "items": items,
        "shipping": shipping,
        "currency": currency,
        "payment_status": draw(st.sampled_from([s.value for s in PaymentStatus])),
        "fulfilment_status": draw(st.sampled_from([s.value for s in FulfilmentStatus])),
        "shipments": (
            draw(st.lists(shipments(currency, [i["sku"] for i in items]), max_size=3))
            if shipping["type"] == "shipping"
            else []
        ),
        "notes": draw(st.lists(notes, max_size=3)),
        "notify_customer": draw(st.booleans()),
        "external_fulfilment": draw(st.booleans()),
        "version": draw(st.integers(0, 10**6)),
    }
    order |= draw(
        st.fixed_dictionaries(
            {},
            optional={
                "shipping_address": addresses,
                "billing_address": addresses,
                "customer_comment": maybe_text,
                "refunded": money(currency),
            },
        )
    )
    return order


orders = order_mappings().map(Order.from_mapping)


# --------------------------------------------------------------------------- round-trips


@given(order_mappings())
def test_mapping_round_trips(mapping: dict[str, Any]) -> None:
    assert Order.from_mapping(mapping).to_mapping() == mapping


@given(orders)
def test_object_round_trips(order: Order) -> None:
    assert Order.from_mapping(order.to_mapping()) == order


@given(orders)
def test_mapping_is_json_ready(order: Order) -> None:
    mapping = order.to_mapping()
    assert json.loads(json.dumps(mapping)) == mapping
    assert Order.from_mapping(json.loads(json.dumps(mapping))) == order


@given(order_mappings(), st.data())
def test_missing_optional_keys_take_defaults(mapping: dict[str, Any], data: st.DataObject) -> None:
    defaults = {
        "store": "default",
        "currency": "EUR",
        "payment_status": "INCOMPLETE",
        "fulfilment_status": "AWAITING_PROCESSING",
        "shipments": [],
        "notes": [],
        "notify_customer": True,
        "external_fulfilment": False,
        "version": 0,
    }
    dropped = data.draw(st.sets(st.sampled_from(sorted(defaults))))
    sparse = {k: v for k, v in mapping.items() if k not in dropped}
    order = Order.from_mapping(sparse)
    result = order.to_mapping()
    for key in dropped:
        assert result[key] == defaults[key]
    assert Order.from_mapping(result) == order


def test_minimal_order_defaults() -> None:
    order = Order.from_mapping(
        {
            "id": 7,
            "number": "12",
            "created_at": "2026-05-01T10:00:00+02:00",
            "customer": {"name": "Ada", "email": "ada@example.test"},
            "items": [
                {
                    "sku": "A",
                    "name": "A",
                    "quantity": 1,
                    "unit_price": {"amount": "1", "currency": "EUR"},
                }
            ],
        }
    )
    assert order.id == "7" and order.number == 12
    assert order.shipping == ShippingOption(type=FulfilmentType.SHIPPING)
    assert order.items[0].kind is ItemKind.PHYSICAL and order.items[0].weight_g == 0
    assert order.payment_status is PaymentStatus.INCOMPLETE
    assert order.fulfilment_status is FulfilmentStatus.AWAITING_PROCESSING
    assert order.shipping_address is None and order.billing_address is None
    assert order.refunded is None and order.version == 0
    assert Order.from_mapping(order.to_mapping()) == order


@given(addresses)
def test_address_round_trips(mapping: dict[str, Any]) -> None:
    assert Address.from_mapping(mapping).to_mapping() == mapping


@given(customers)
def test_customer_round_trips(mapping: dict[str, Any]) -> None:
    assert Customer.from_mapping(mapping).to_mapping() == mapping


@given(st.sampled_from(CURRENCIES).flatmap(labels))
def test_label_round_trips(mapping: dict[str, Any]) -> None:
    assert Label.from_mapping(mapping).to_mapping() == mapping


@given(st.sampled_from(CURRENCIES).flatmap(lambda c: shipments(c, ["SKU-1", "SKU-2"])))
def test_shipment_round_trips(mapping: dict[str, Any]) -> None:
    shipment = Shipment.from_mapping(mapping)
    assert shipment.to_mapping() == mapping
    assert Shipment.from_mapping(shipment.to_mapping()) == shipment
    assert shipment.weight_g == sum(p["weight_g"] for p in mapping["parcels"])


@given(notes)
def test_note_round_trips(mapping: dict[str, Any]) -> None:
    assert Note.from_mapping(mapping).to_mapping() == mapping


pickups = with_optional(
    {
        "id": ident,
        "carrier": st.sampled_from(["sandbox", "sendcloud"]),
        "day": st.dates().map(lambda d: d.isoformat()),
        "window_start": st.from_regex(r"(0[0-9]|1[0-2]):[0-5][0-9]", fullmatch=True),
        "window_end": st.from_regex(r"(1[3-9]|2[0-3]):[0-5][0-9]", fullmatch=True),
        "address": addresses,
        "shipment_ids": st.lists(ident, max_size=4),
    },
    {"confirmation": ident},
)


@given(pickups)
def test_pickup_round_trips(mapping: dict[str, Any]) -> None:
    pickup = Pickup.from_mapping(mapping)
    assert pickup.to_mapping() == mapping
    assert Pickup.from_mapping(pickup.to_mapping()) == pickup


events = st.fixed_dictionaries(
    {
        "order_id": ident,
        "version": st.integers(0, 10**6),
        "at": iso_moments,
        "kind": st.sampled_from(["placed", "payment", "fulfilment", "note", "label"]),
        "actor": st.sampled_from(["system", "staff:42", "plugin:sandbox"]),
        "data": st.dictionaries(ident, st.one_of(st.integers(), maybe_text, st.booleans())),
    }
)


@given(events)
def test_event_round_trips(mapping: dict[str, Any]) -> None:
    event = Event.from_mapping(mapping)
    assert event.to_mapping() == mapping
    assert Event.from_mapping(event.to_mapping()) == event


# --------------------------------------------------------------------------- derived values


@given(orders)
def test_total_is_items_plus_shipping(order: Order) -> None:
    mapping = order.to_mapping()
    expected = sum(
        (Decimal(i["unit_price"]["amount"]) * i["quantity"] for i in mapping["items"]),
        Decimal(0),
    )
    if "price" in mapping["shipping"]:
        expected += Decimal(mapping["shipping"]["price"]["amount"])
    assert order.total == Money(expected, mapping["currency"])
    assert order.total.currency == order.currency


def test_total_of_a_known_order() -> None:
    order = Order.from_mapping(
        {
            "id": "o1",
            "number": 1,
            "created_at": "2026-05-01T10:00:00+00:00",
            "customer": {"name": "Ada", "email": "ada@example.test"},
            "currency": "EUR",
            "items": [
                {
                    "sku": "A",
                    "name": "Mug",
                    "quantity": 3,
                    "unit_price": {"amount": "4.10", "currency": "EUR"},
                },
                {
                    "sku": "B",
                    "name": "Ebook",
                    "quantity": 1,
                    "kind": "digital",
                    "unit_price": {"amount": "0.20", "currency": "EUR"},
                },
            ],
            "shipping": {"type": "shipping", "price": {"amount": "5.99", "currency": "EUR"}},
        }
    )
    assert order.total == Money(Decimal("18.49"), "EUR")
    assert order.total.to_mapping() == {"amount": "18.49", "currency": "EUR"}


def test_total_of_an_order_without_items_is_zero_in_its_currency() -> None:
    order = Order.from_mapping(
        {
            "id": "o1",
            "number": 1,
            "created_at": "2026-05-01T10:00:00",
            "customer": {"name": "Ada", "email": "ada@example.test"},
            "currency": "USD",
            "items": [],
        }
    )
    assert order.total == Money.zero("USD")
    assert not order.is_digital_only


@given(orders)
def test_is_digital_only(order: Order) -> None:
    kinds = {item["kind"] for item in order.to_mapping()["items"]}
    assert order.is_digital_only == ("physical" not in kinds)
    assert order.physical_items == tuple(i for i in order.items if i.kind == "physical")


@pytest.mark.parametrize(
    ("kinds", "digital_only"),
    [
        (["digital"], True),
        (["gift_card"], True),
        (["digital", "gift_card"], True),
        (["physical"], False),
        (["digital", "physical"], False),
        (["gift_card", "physical", "digital"], False),
    ],
)
def test_is_digital_only_table(kinds: list[str], digital_only: bool) -> None:
    items = tuple(
        LineItem(f"S{n}", "x", 1, Money(Decimal(1), "EUR"), kind=ItemKind(k))
        for n, k in enumerate(kinds)
    )
    order = Order("o", 1, "s", datetime(2026, 1, 1), Customer("a", "a@b.c"), None, None, items)
    assert order.is_digital_only is digital_only


_COST = Money(Decimal("4.20"), "EUR")
_LABEL = Label("sandbox", "std", "TRK1", "PDF", _COST)


@pytest.mark.parametrize(
    ("label", "tracking", "trackable"),
    [(None, None, False), (_LABEL, None, True), (None, "TRK2", True), (_LABEL, "TRK1", True)],
)
def test_shipment_is_trackable(label: Label | None, tracking: str | None, trackable: bool) -> None:
    shipment = Shipment(
        "s1", (Parcel(500),), (ShipmentItem("A", 1),), label=label, tracking_number=tracking
    )
    assert shipment.is_trackable is trackable


@given(st.sampled_from(CURRENCIES).flatmap(lambda c: shipments(c, ["SKU"])))
def test_shipment_is_trackable_generated(mapping: dict[str, Any]) -> None:
    shipment = Shipment.from_mapping(mapping)
    assert shipment.is_trackable == ("label" in mapping or "tracking_number" in mapping)


# --------------------------------------------------------------------------- Money


@given(amounts, amounts, st.sampled_from(CURRENCIES))
def test_money_adds_in_one_currency(a: str, b: str, currency: str) -> None:
    assert Money(a, currency) + Money(b, currency) == Money(Decimal(a) + Decimal(b), currency)


@given(amounts, amounts, st.lists(st.sampled_from(CURRENCIES), min_size=2, max_size=2, unique=True))
def test_money_refuses_mixed_currencies(a: str, b: str, currencies: list[str]) -> None:
    c1, c2 = currencies
    with pytest.raises(ValueError, match=f"{c2}.*{c1}"):
        Money(a, c1) + Money(b, c2)
    with pytest.raises(ValueError):
        Money.zero(c1) + Money(b, c2)


def test_money_basics() -> None:
    price = Money("2.50", "EUR")
    assert price.amount == Decimal("2.50") and isinstance(price.amount, Decimal)
    assert price * 3 == Money(Decimal("7.50"), "EUR")
    assert Money.zero("GBP") == Money(Decimal(0), "GBP")
    assert Money("1", "EUR") != Money("1", "USD")
    assert Money.from_mapping({"amount": "19.90", "currency": "CHF"}).to_mapping() == {
        "amount": "19.90",
        "currency": "CHF",
    }


@pytest.mark.parametrize("currency", ["eur", "EU", "EURO", "", "E1R"])
def test_money_currency_is_iso_4217_shaped(currency: str) -> None:
    with pytest.raises(ValueError):
        Money("1", currency)


def test_order_total_refuses_an_item_in_another_currency() -> None:
    order = Order(
        "o",
        1,
        "s",
        datetime(2026, 1, 1),
        Customer("a", "a@b.c"),
        None,
        None,
        (LineItem("A", "a", 1, Money("1", "EUR")), LineItem("B", "b", 1, Money("1", "USD"))),
        currency="EUR",
    )
    with pytest.raises(ValueError):
        _ = order.total


def test_order_total_refuses_a_shipping_price_in_another_currency() -> None:
    order = Order(
        "o",
        1,
        "s",
        datetime(2026, 1, 1),
        Customer("a", "a@b.c"),
        None,
        None,
        (LineItem("A", "a", 1, Money("1", "EUR")),),
        shipping=ShippingOption(price=Money("5", "GBP")),
        currency="EUR",
    )
    with pytest.raises(ValueError):
        _ = order.total


# --------------------------------------------------------------------------- immutability


def _instances(order: Order) -> list[object]:
    found: list[object] = []

    def walk(value: object) -> None:
        if attrs.has(type(value)):
            found.append(value)
            for field in attrs.fields(type(value)):
                walk(getattr(value, field.name))
        elif isinstance(value, tuple):
            for element in value:
                walk(element)

    walk(order)
    return found


@given(orders)
def test_every_object_in_an_order_is_frozen(order: Order) -> None:
    before = order.to_mapping()
    for obj in _instances(order):
        first = attrs.fields(type(obj))[0].name
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            setattr(obj, first, getattr(obj, first))
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            delattr(obj, first)
    assert order.to_mapping() == before


@pytest.mark.parametrize(
    "obj",
    [
        Money("1", "EUR"),
        Address("n", "l", "c", "75001", "FR"),
        Customer("n", "e@x.y"),
        LineItem("A", "a", 1, Money("1", "EUR")),
        ShippingOption(),
        Parcel(100),
        ShipmentItem("A", 1),
        _LABEL,
        Shipment("s", (), ()),
        Pickup(
            "p", "sandbox", "2026-05-01", "09:00", "12:00", Address("n", "l", "c", "1", "FR"), ()
        ),
        Note(datetime(2026, 1, 1), "staff:1", "hi"),
        Event("o", 1, datetime(2026, 1, 1), "note", "system"),
    ],
    ids=lambda o: type(o).__name__,
)
def test_value_objects_are_frozen(obj: object) -> None:
    name = attrs.fields(type(obj))[0].name
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        setattr(obj, name, None)


@given(orders)
def test_evolve_returns_a_new_order_and_keeps_the_old(order: Order) -> None:
    before = order.to_mapping()
    changed = attrs.evolve(order, version=order.version + 1, customer_comment="changed")
    assert changed is not order
    assert changed.version == order.version + 1
    assert order.to_mapping() == before


# --------------------------------------------------------------------------- status copies

# with_payment_status / with_fulfilment_status skip __init__; these tests pin them to what
# attrs.evolve(order, <status>=..., version=...) gives, field by field.

STATUS_COPIES = [
    ("payment_status", Order.with_payment_status, PaymentStatus),
    ("fulfilment_status", Order.with_fulfilment_status, FulfilmentStatus),
]


def _every_field_set() -> Order:
    """An order whose every field holds a value other than its default."""
    order = Order.from_mapping(
        {
            "id": "ord-9",
            "number": 9,
            "store": "shop-2",
            "created_at": "2026-05-04T09:30:00+02:00",
            "customer": {"name": "Ada", "email": "ada@example.test", "locale": "fr"},
            "shipping_address": {
                "name": "Ada",
                "line1": "1 rue de Rivoli",
                "city": "Paris",
                "postal_code": "75001",
                "country": "FR",
            },
            "billing_address": {
                "name": "Ada L.",
                "line1": "2 rue de Rivoli",
                "city": "Paris",
                "postal_code": "75001",
                "country": "FR",
            },
            "items": [
                {"sku": "A", "name": "a", "quantity": 2, "unit_price": money_mapping("4.50")}
            ],
            "shipping": {"type": "pickup", "price": money_mapping("3.00")},
            "currency": "USD",
            "payment_status": "PARTIALLY_REFUNDED",
            "fulfilment_status": "SHIPPED",
            "shipments": [
                {"id": "s1", "parcels": [{"weight_g": 900}], "items": [{"sku": "A", "quantity": 2}]}
            ],
            "notes": [{"at": "2026-05-04T10:00:00+02:00", "author": "staff:1", "text": "hi"}],
            "customer_comment": "ring twice",
            "notify_customer": False,
            "external_fulfilment": True,
            "refunded": money_mapping("1.00"),
            "version": 41,
        }
    )
    for field in attrs.fields(Order):
        if field.default is not attrs.NOTHING:
            assert getattr(order, field.name) != field.default, field.name
    return order


def money_mapping(amount: str) -> dict[str, str]:
    return {"amount": amount, "currency": "USD"}


@pytest.mark.parametrize(("field", "copy", "enum"), STATUS_COPIES, ids=lambda v: str(v))
def test_status_copy_carries_every_other_field_over(field: str, copy: Any, enum: Any) -> None:
    order = _every_field_set()
    before = order.to_mapping()
    status = next(s for s in enum if s != getattr(order, field))
    new = copy(order, status, order.version + 1)
    assert type(new) is Order and new is not order
    assert getattr(new, field) is status and new.version == 42
    for other in attrs.fields(Order):
        if other.name not in (field, "version"):
            assert getattr(new, other.name) is getattr(order, other.name), other.name
    assert new == attrs.evolve(order, **{field: status, "version": 42})
    assert hash(new) == hash(attrs.evolve(order, **{field: status, "version": 42}))
    assert order.to_mapping() == before
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        new.version = 1  # type: ignore[misc]


@pytest.mark.parametrize(("field", "copy", "enum"), STATUS_COPIES, ids=lambda v: str(v))
def test_status_copy_converts_a_plain_string_like_the_field_does(
    field: str, copy: Any, enum: Any
) -> None:
    order = _every_field_set()
    value = next(iter(enum)).value
    new = copy(order, str(value), 0)
    assert type(getattr(new, field)) is enum and getattr(new, field) == value
    with pytest.raises(ValueError):
        copy(order, "NOT_A_STATUS", 0)


@given(orders, st.sampled_from(list(PaymentStatus)), st.sampled_from(list(FulfilmentStatus)))
def test_status_copies_equal_evolve(
    order: Order, payment: PaymentStatus, fulfilment: FulfilmentStatus
) -> None:
    version = order.version + 1
    assert order.with_payment_status(payment, version) == attrs.evolve(
        order, payment_status=payment, version=version
    )
    assert order.with_fulfilment_status(fulfilment, version) == attrs.evolve(
        order, fulfilment_status=fulfilment, version=version
    )


def test_the_copier_refuses_classes_it_cannot_copy_field_by_field() -> None:
    from fulfil.core.models import _compile_copier

    @attrs.frozen
    class Checked:
        value: int = attrs.field(validator=attrs.validators.instance_of(int))

    @attrs.frozen
    class PostInit:
        value: int

        def __attrs_post_init__(self) -> None:
            pass

    @attrs.frozen(cache_hash=True)
    class CachedHash:
        value: int

    @attrs.frozen(slots=False)
    class NoSlots:
        value: int

    @attrs.frozen
    class Plain:
        value: int
        other: str

    assert _compile_copier(Plain, "value")(Plain(1, "x"), 2) == Plain(2, "x")
    for cls in (Checked, PostInit, CachedHash, NoSlots):
        with pytest.raises(TypeError):
            _compile_copier(cls, "value")
    with pytest.raises(TypeError):
        _compile_copier(Plain, "no_such_field")
