"""The built-in notification policy: every row of DESIGN.md section 6."""

from __future__ import annotations

from typing import Any

import jsonschema
import pluggy
import pytest
from fulfil.core import hookspecs
from fulfil.core.models import Order
from fulfil.core.notify.notices import Notice
from fulfil.core.notify.policy import (
    DEFAULT_SETTINGS,
    NOTIFICATION_SETTINGS_SCHEMA,
    TEMPLATES,
    BuiltinPolicy,
    customer_phone,
)
from fulfil.core.plugins import Hooks, make_plugin_manager
from fulfil.core.states import StatusChange

PHYSICAL = {
    "sku": "MUG",
    "name": "Mug",
    "quantity": 1,
    "unit_price": {"amount": "12.50", "currency": "EUR"},
}
EBOOK = {
    "sku": "EB",
    "name": "E-book",
    "quantity": 1,
    "kind": "digital",
    "unit_price": {"amount": "9", "currency": "EUR"},
    "download_url": "https://x.test/eb",
}
GIFT = {
    "sku": "GC",
    "name": "Gift card",
    "quantity": 1,
    "kind": "gift_card",
    "unit_price": {"amount": "50", "currency": "EUR"},
    "gift_card_code": "GC-1",
}


def make_order(*items: dict[str, Any], phone: str | None = "+33612345678", **extra: Any) -> Order:
    customer = {"name": "Marie", "email": "marie@example.org", "locale": "fr"}
    if phone:
        customer["phone"] = phone
    return Order.from_mapping(
        {
            "id": "o1",
            "number": 1001,
            "created_at": "2025-01-15T10:00:00+00:00",
            "customer": customer,
            "shipping_address": {
                "name": "Marie",
                "line1": "1 rue X",
                "city": "Paris",
                "postal_code": "75001",
                "country": "FR",
            },
            "billing_address": None,
            "items": list(items or [PHYSICAL]),
            **extra,
        }
    )


def change(machine: str, new: str, **kwargs: Any) -> StatusChange:
    return StatusChange("o1", machine, "X", new, 2, **kwargs)  # type: ignore[arg-type]


def notices(
    order: Order, machine: str, new: str, settings: dict[str, Any] | None = None, **kw: Any
) -> set[tuple[str, str, str]]:
    result = BuiltinPolicy().fulfil_notifications_for(
        order=order, change=change(machine, new, **kw), settings=settings or {}
    )
    assert len(result) == len(set(result)), "duplicates"
    return {(n.template, n.audience.value, n.channel.value) for n in result}


def test_order_placed() -> None:
    assert notices(make_order(), "order", "placed") == {
        ("order_placed", "customer", "email"),
        ("merchant_new_order", "merchant", "email"),
        ("merchant_new_order", "merchant", "push"),
    }


def test_order_placed_with_merchant_copy_and_without_push() -> None:
    got = notices(make_order(), "order", "placed", {"merchant_copy": True, "push": False})
    assert got == {
        ("order_placed", "customer", "email"),
        ("order_placed", "merchant", "email"),
        ("merchant_new_order", "merchant", "email"),
    }


@pytest.mark.parametrize("items", [[EBOOK], [GIFT], [PHYSICAL, EBOOK]])
def test_paid_with_digital_lines_delivers_them(items: list[dict[str, Any]]) -> None:
    assert notices(make_order(*items), "payment", "PAID") == {
        ("digital_delivery", "customer", "email")
    }


def test_paid_physical_only_says_nothing() -> None:
    assert notices(make_order(PHYSICAL), "payment", "PAID") == set()


@pytest.mark.parametrize(
    ("machine", "new"), [("fulfilment", "SHIPPED"), ("order", "tracking_added")]
)
def test_shipped_or_tracking_added_is_one_shipped_message(machine: str, new: str) -> None:
    assert notices(make_order(), machine, new) == {
        ("order_shipped", "customer", "email"),
        ("order_shipped", "customer", "sms"),
    }


@pytest.mark.parametrize(
    ("new", "template"),
    [
        ("SHIPPED", "order_shipped"),
        ("READY_FOR_PICKUP", "ready_for_pickup"),
        ("OUT_FOR_DELIVERY", "out_for_delivery"),
    ],
)
def test_sms_needs_a_phone_and_sms_enabled(new: str, template: str) -> None:
    with_phone = make_order()
    assert notices(with_phone, "fulfilment", new) == {
        (template, "customer", "email"),
        (template, "customer", "sms"),
    }
    assert notices(make_order(phone=None), "fulfilment", new) == {(template, "customer", "email")}
    assert notices(with_phone, "fulfilment", new, {"sms": False}) == {
        (template, "customer", "email")
    }


def test_phone_on_the_shipping_address_counts() -> None:
    order = make_order(phone=None)
    assert customer_phone(order) is None
    order = Order.from_mapping(
        {
            **order.to_mapping(),
            "shipping_address": {
                **order.shipping_address.to_mapping(),  # type: ignore[union-attr]
                "phone": "+33700000000",
            },
        }
    )
    assert customer_phone(order) == "+33700000000"
    assert ("ready_for_pickup", "customer", "sms") in notices(
        order, "fulfilment", "READY_FOR_PICKUP"
    )


@pytest.mark.parametrize(
    ("machine", "new", "template"),
    [
        ("fulfilment", "DELIVERED", "order_delivered"),
        ("fulfilment", "WILL_NOT_DELIVER", "order_cancelled"),
        ("fulfilment", "RETURNED", "order_returned"),
        ("payment", "REFUNDED", "order_refunded"),
        ("payment", "PARTIALLY_REFUNDED", "order_refunded"),
    ],
)
def test_status_messages_and_optional_merchant_copy(machine: str, new: str, template: str) -> None:
    order = make_order()
    assert notices(order, machine, new) == {(template, "customer", "email")}
    assert notices(order, machine, new, {"merchant_status_copies": True}) == {
        (template, "customer", "email"),
        ("merchant_status", "merchant", "email"),
    }


def test_delivered_digital_only_order_is_silent() -> None:
    assert notices(make_order(EBOOK, GIFT), "fulfilment", "DELIVERED") == set()


def test_label_failed_alerts_the_merchant() -> None:
    order = make_order()
    assert notices(order, "order", "label_failed", data={"reason": "bad zip"}) == {
        ("label_failed", "merchant", "email")
    }
    assert notices(order, "order", "label_failed", {"merchant_alert_channel": "sms"}) == {
        ("label_failed", "merchant", "sms")
    }


@pytest.mark.parametrize(
    ("machine", "new"),
    [
        ("order", "placed"),
        ("payment", "PAID"),
        ("fulfilment", "SHIPPED"),
        ("order", "tracking_added"),
        ("fulfilment", "READY_FOR_PICKUP"),
        ("fulfilment", "OUT_FOR_DELIVERY"),
        ("fulfilment", "DELIVERED"),
        ("fulfilment", "WILL_NOT_DELIVER"),
        ("fulfilment", "RETURNED"),
        ("payment", "REFUNDED"),
    ],
)
def test_no_customer_message_when_told_not_to_notify(machine: str, new: str) -> None:
    settings = {"merchant_copy": True, "merchant_status_copies": True}
    order = make_order(PHYSICAL, EBOOK)
    quiet_order = make_order(PHYSICAL, EBOOK, notify_customer=False)
    expected = {n for n in notices(order, machine, new, settings) if n[1] == "merchant"}
    assert notices(quiet_order, machine, new, settings) == expected
    assert notices(order, machine, new, settings, notify_customer=False) == expected


def test_channels_override_replaces_the_defaults() -> None:
    order = make_order()
    settings = {"channels": {"order_delivered": ["email", "sms"], "order_shipped": ["sms"]}}
    assert notices(order, "fulfilment", "DELIVERED", settings) == {
        ("order_delivered", "customer", "email"),
        ("order_delivered", "customer", "sms"),
    }
    assert notices(order, "fulfilment", "SHIPPED", settings) == {
        ("order_shipped", "customer", "sms")
    }
    # the phone rule still applies; customers never get push (no device token)
    assert notices(make_order(phone=None), "fulfilment", "DELIVERED", settings) == {
        ("order_delivered", "customer", "email")
    }
    push = {"channels": {"order_delivered": ["push"]}}
    assert notices(order, "fulfilment", "DELIVERED", push) == set()


def test_unrelated_events_cause_nothing() -> None:
    order = make_order()
    for machine, new in [
        ("fulfilment", "PROCESSING"),
        ("payment", "AWAITING_PAYMENT"),
        ("payment", "CANCELLED"),
        ("order", "note_added"),
    ]:
        assert notices(order, machine, new) == set()


def test_settings_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(NOTIFICATION_SETTINGS_SCHEMA)
    validator = jsonschema.Draft202012Validator(NOTIFICATION_SETTINGS_SCHEMA)
    assert not list(validator.iter_errors(dict(DEFAULT_SETTINGS)))
    assert not list(validator.iter_errors({"channels": {"order_shipped": ["email", "sms"]}}))
    assert list(validator.iter_errors({"channels": {"order_shiped": ["email"]}}))
    assert list(validator.iter_errors({"channels": {"order_shipped": ["fax"]}}))
    assert list(validator.iter_errors({"smss": True}))
    assert list(validator.iter_errors({"merchant_alert_channel": "pigeon"}))
    assert set(NOTIFICATION_SETTINGS_SCHEMA["properties"]) == set(DEFAULT_SETTINGS)
    for name, prop in NOTIFICATION_SETTINGS_SCHEMA["properties"].items():
        assert prop["description"] and prop["default"] == DEFAULT_SETTINGS[name]


def test_every_template_is_reachable() -> None:
    settings = {"merchant_copy": True, "merchant_status_copies": True}
    events = [
        ("order", "placed"),
        ("payment", "PAID"),
        ("fulfilment", "SHIPPED"),
        ("fulfilment", "READY_FOR_PICKUP"),
        ("fulfilment", "OUT_FOR_DELIVERY"),
        ("fulfilment", "DELIVERED"),
        ("fulfilment", "WILL_NOT_DELIVER"),
        ("fulfilment", "RETURNED"),
        ("payment", "REFUNDED"),
        ("order", "label_failed"),
    ]
    seen = set()
    for machine, new in events:
        seen |= {t for t, _, _ in notices(make_order(PHYSICAL, GIFT), machine, new, settings)}
    assert seen == set(TEMPLATES)


def test_through_a_plugin_manager_and_the_hooks_facade(monkeypatch: pytest.MonkeyPatch) -> None:
    pm = pluggy.PluginManager("fulfil")
    pm.add_hookspecs(hookspecs)
    pm.register(BuiltinPolicy())
    pm.check_pending()
    results = pm.hook.fulfil_notifications_for(
        order=make_order(), change=change("order", "placed"), settings={}
    )
    assert Notice("order_placed", "customer", "email") in results[0]

    class Extra:
        @hookspecs.hookimpl
        def fulfil_notifications_for(self, change: StatusChange) -> list[Notice]:
            return [Notice("order_placed", "customer", "email"), Notice("x", "customer", "email")]

    monkeypatch.setenv("FULFIL_DISABLE_PLUGINS", "*")
    hooks = Hooks(make_plugin_manager([Extra()]))
    merged = hooks.notifications_for(make_order(), change("order", "placed"), {})
    assert merged.count(Notice("order_placed", "customer", "email")) == 1
    assert Notice("x", "customer", "email") in merged
    assert Notice("merchant_new_order", "merchant", "push") in merged
