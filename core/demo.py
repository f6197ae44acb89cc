"""Sample orders for ``fulfil demo``: several countries, every fulfilment path.

Deterministic for a given count, so two runs of the demo tell the same story: the first
orders are the special cases (digital goods, a gift card, local delivery, in-store pickup,
an order awaiting offline payment), the rest are parcels to FR, DE, GB, US and ES.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from fulfil.core.models import Order

__all__ = ["sample_orders"]

PEOPLE: dict[str, list[dict[str, Any]]] = {
    "FR": [
        {
            "name": "Camille Martin",
            "line1": "12 rue de Rivoli",
            "city": "Paris",
            "postal_code": "75004",
            "locale": "fr",
            "phone": "+33612345678",
        },
        {
            "name": "Léa Bernard",
            "line1": "3 place Bellecour",
            "city": "Lyon",
            "postal_code": "69002",
            "locale": "fr-FR",
            "phone": None,
        },
    ],
    "DE": [
        {
            "name": "Jonas Müller",
            "line1": "Unter den Linden 5",
            "city": "Berlin",
            "postal_code": "10117",
            "locale": "de",
            "phone": "+4915112345678",
        },
    ],
    "GB": [
        {
            "name": "Olivia Smith",
            "line1": "221B Baker Street",
            "city": "London",
            "postal_code": "NW1 6XE",
            "locale": "en-GB",
            "phone": "+447911123456",
        },
    ],
    "US": [
        {
            "name": "Ethan Johnson",
            "line1": "350 Fifth Avenue",
            "city": "New York",
            "postal_code": "10118",
            "region": "NY",
            "locale": "en-US",
            "phone": "+12125550123",
        },
    ],
    "ES": [
        {
            "name": "Lucía García",
            "line1": "Calle de Alcalá 42",
            "city": "Madrid",
            "postal_code": "28014",
            "locale": "es",
            "phone": None,
        },
    ],
}

PRODUCTS = [
    {"sku": "MUG-01", "name": "Stoneware mug", "price": "14.50", "weight_g": 420},
    {"sku": "TEE-02", "name": "Organic cotton T-shirt", "price": "24.00", "weight_g": 180},
    {"sku": "LAMP-03", "name": "Brass desk lamp", "price": "89.00", "weight_g": 2300},
    {"sku": "BAG-04", "name": "Canvas tote bag", "price": "19.90", "weight_g": 250},
    {"sku": "TEA-05", "name": "Earl Grey loose tea 250 g", "price": "9.80", "weight_g": 300},
]
EBOOK = {
    "sku": "EBOOK-01",
    "name": "Home brewing guide (PDF)",
    "price": "7.99",
    "weight_g": 0,
    "kind": "digital",
    "download_url": "https://downloads.example.com/brewing-guide.pdf",
}
GIFT = {
    "sku": "GIFT-50",
    "name": "Gift card 50 EUR",
    "price": "50.00",
    "weight_g": 0,
    "kind": "gift_card",
}

SPECIAL = ["digital", "gift_card", "local_delivery", "pickup", "offline", "mixed"]


def _customer(person: dict[str, Any], n: int) -> dict[str, Any]:
    first = person["name"].split()[0].lower().encode("ascii", "ignore").decode() or "client"
    customer = {
        "name": person["name"],
        "email": f"{first}.{n}@example.com",
        "locale": person["locale"],
    }
    if person.get("phone"):
        customer["phone"] = person["phone"]
    return customer


def _address(person: dict[str, Any], country: str) -> dict[str, Any]:
    address = {k: person[k] for k in ("name", "line1", "city", "postal_code")}
    address["country"] = country
    if person.get("region"):
        address["region"] = person["region"]
    return address


def _line(product: dict[str, Any], quantity: int, code: str | None = None) -> dict[str, Any]:
    line = {
        "sku": product["sku"],
        "name": product["name"],
        "quantity": quantity,
        "unit_price": {"amount": product["price"], "currency": "EUR"},
        "weight_g": product["weight_g"],
        "kind": product.get("kind", "physical"),
    }
    if "download_url" in product:
        line["download_url"] = product["download_url"]
    if code:
        line["gift_card_code"] = code
    return line


def sample_order(n: int, rng: random.Random, start: datetime) -> dict[str, Any]:
    """Order number 1000+n; the first ones are the special cases."""
    special = SPECIAL[n] if n < len(SPECIAL) else None
    country = "FR" if special in ("local_delivery", "pickup") else list(PEOPLE)[n % len(PEOPLE)]
    person = PEOPLE[country][n % len(PEOPLE[country])]
    if special == "digital":
        items = [_line(EBOOK, 1)]
    elif special == "gift_card":
        items = [_line(GIFT, 1, code=f"GIFT-{rng.randrange(16**8):08X}")]
    elif special == "mixed":
        items = [_line(PRODUCTS[0], 2), _line(EBOOK, 1)]
    else:
        picks = rng.sample(PRODUCTS, rng.randint(1, 3))
        items = [_line(p, rng.randint(1, 3)) for p in picks]
    shipping: dict[str, Any] = {"type": "shipping", "price": {"amount": "6.90", "currency": "EUR"}}
    if special == "local_delivery":
        shipping = {"type": "local_delivery", "price": {"amount": "4.00", "currency": "EUR"}}
    elif special == "pickup":
        shipping = {"type": "pickup", "pickup_instructions": "Counter at 8 rue du Bac, 10:00-19:00"}
    elif special in ("digital", "gift_card"):
        shipping = {"type": "shipping"}
    order: dict[str, Any] = {
        "id": f"ord_{1000 + n}",
        "number": 1000 + n,
        "store": "demo",
        "created_at": (start + timedelta(minutes=n)).isoformat(),
        "customer": _customer(person, n),
        "billing_address": _address(person, country),
        "items": items,
        "shipping": shipping,
        "currency": "EUR",
    }
    if special not in ("digital", "gift_card"):
        order["shipping_address"] = _address(person, country)
    return order


def sample_orders(count: int, seed: int = 7) -> list[Order]:
    rng = random.Random(seed)
    start = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    return [Order.from_mapping(sample_order(n, rng, start)) for n in range(count)]


def is_offline(order: Order) -> bool:
    """The demo's order that waits for a bank transfer (never paid during the demo)."""
    return order.number == 1000 + SPECIAL.index("offline")
