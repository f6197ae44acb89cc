"""The built-in notification policy: which messages an event causes (DESIGN.md section 6).

``BuiltinPolicy.fulfil_notifications_for`` maps an event — ``(change.machine, change.new)``
— to the notices it causes:

========================================  ==========================  =======================
event                                     customer                    merchant
========================================  ==========================  =======================
order placed                              ``order_placed``            ``merchant_new_order``
                                                                      (email + push), and
                                                                      ``order_placed`` by email
                                                                      if ``merchant_copy``
payment PAID with digital/gift-card lines ``digital_delivery``        —
fulfilment SHIPPED, order tracking_added  ``order_shipped`` (+ SMS)   —
fulfilment READY_FOR_PICKUP               ``ready_for_pickup`` (+SMS) —
fulfilment OUT_FOR_DELIVERY               ``out_for_delivery`` (+SMS) —
fulfilment DELIVERED (not digital-only),  ``order_delivered``,        ``merchant_status`` if
WILL_NOT_DELIVER, RETURNED, payment       ``order_cancelled``,        ``merchant_status_copies``
REFUNDED / PARTIALLY_REFUNDED             ``order_returned``,
                                          ``order_refunded``
order label_failed                        —                           ``label_failed`` on
                                                                      ``merchant_alert_channel``
========================================  ==========================  =======================

Customer notices are dropped when ``order.notify_customer`` or ``change.notify_customer``
is false. A customer SMS needs a known phone number (``customer_phone``); customers get no
push (the order holds no device token).

Settings (the ``notifications`` section of the config; ``NOTIFICATION_SETTINGS_SCHEMA``):

- ``merchant_copy`` (bool, default false): send the merchant a copy of the customer's
  order confirmation (``order_placed``) by email.
- ``merchant_status_copies`` (bool, default false): tell the merchant (``merchant_status``)
  when an order is delivered, cancelled, returned or refunded.
- ``sms`` (bool, default true): master switch for SMS; when false no notice uses SMS.
- ``push`` (bool, default true): master switch for push; when false no notice uses push.
- ``merchant_alert_channel`` (``email`` | ``sms`` | ``push`` | ``webhook``, default
  ``email``): where the ``label_failed`` alert goes.
- ``channels`` (object, default ``{}``): template name -> list of channels, replacing the
  default channels of that template (the switches and the phone rule above still apply).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from fulfil.core.hookspecs import hookimpl
from fulfil.core.models import ItemKind, Order
from fulfil.core.notifiers import Audience, Channel
from fulfil.core.notify.notices import Notice
from fulfil.core.states import StatusChange

__all__ = [
    "DEFAULT_SETTINGS",
    "NOTIFICATION_SETTINGS_SCHEMA",
    "TEMPLATES",
    "BuiltinPolicy",
    "customer_phone",
]

CUSTOMER, MERCHANT = Audience.CUSTOMER, Audience.MERCHANT
EMAIL, SMS, PUSH, WEBHOOK = Channel.EMAIL, Channel.SMS, Channel.PUSH, Channel.WEBHOOK

# Every template the built-in policy emits; the renderer ships each in every locale.
TEMPLATES: tuple[str, ...] = (
    "order_placed",
    "merchant_new_order",
    "digital_delivery",
    "order_shipped",
    "ready_for_pickup",
    "out_for_delivery",
    "order_delivered",
    "order_cancelled",
    "order_returned",
    "order_refunded",
    "merchant_status",
    "label_failed",
)

DEFAULT_SETTINGS: Mapping[str, Any] = {
    "merchant_copy": False,
    "merchant_status_copies": False,
    "sms": True,
    "push": True,
    "merchant_alert_channel": "email",
    "channels": {},
}

_CHANNEL_NAMES = [c.value for c in Channel]

NOTIFICATION_SETTINGS_SCHEMA: Mapping[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "notifications",
    "description": "Which messages the built-in notification policy sends, and on which channels.",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "merchant_copy": {
            "type": "boolean",
            "default": False,
            "description": "Also send the merchant a copy of the customer's order confirmation "
            "(order_placed) by email.",
        },
        "merchant_status_copies": {
            "type": "boolean",
            "default": False,
            "description": "Tell the merchant (merchant_status) when an order is delivered, "
            "cancelled, returned or refunded.",
        },
        "sms": {
            "type": "boolean",
            "default": True,
            "description": "Send SMS at all. Customers get an SMS for shipped, ready-for-pickup "
            "and out-for-delivery messages when their phone number is known.",
        },
        "push": {
            "type": "boolean",
            "default": True,
            "description": "Send push notifications at all (the merchant's new-order push).",
        },
        "merchant_alert_channel": {
            "enum": _CHANNEL_NAMES,
            "default": "email",
            "description": "Channel of the merchant's alert when a label purchase failed "
            "permanently.",
        },
        "channels": {
            "type": "object",
            "default": {},
            "description": "Template name -> channels, replacing that template's default "
            'channels, e.g. {"order_delivered": ["email", "sms"]}. The sms/push switches and '
            "the need for a customer phone number still apply.",
            "propertyNames": {"enum": list(TEMPLATES)},
            "additionalProperties": {
                "type": "array",
                "items": {"enum": _CHANNEL_NAMES},
                "uniqueItems": True,
            },
        },
    },
}

# Events whose customer message the merchant may get as a copy (merchant_status_copies).
_STATUS_TEMPLATES: Mapping[tuple[str, str], str] = {
    ("fulfilment", "DELIVERED"): "order_delivered",
    ("fulfilment", "WILL_NOT_DELIVER"): "order_cancelled",
    ("fulfilment", "RETURNED"): "order_returned",
    ("payment", "REFUNDED"): "order_refunded",
    ("payment", "PARTIALLY_REFUNDED"): "order_refunded",
}

# Customer messages worth an SMS as well as an email.
_WITH_SMS: Mapping[tuple[str, str], str] = {
    ("fulfilment", "SHIPPED"): "order_shipped",
    ("order", "tracking_added"): "order_shipped",
    ("fulfilment", "READY_FOR_PICKUP"): "ready_for_pickup",
    ("fulfilment", "OUT_FOR_DELIVERY"): "out_for_delivery",
}


def customer_phone(order: Order) -> str | None:
    """The customer's phone number (E.164), from the customer or the shipping address."""
    if order.customer.phone:
        return order.customer.phone
    return order.shipping_address.phone if order.shipping_address else None


def _settings(settings: Mapping[str, Any] | None) -> dict[str, Any]:
    merged = dict(DEFAULT_SETTINGS)
    merged.update(settings or {})
    return merged


def _wanted(
    order: Order, event: tuple[str, str], config: Mapping[str, Any]
) -> list[tuple[str, Audience, tuple[Channel, ...]]]:
    """The section-6 table: (template, audience, default channels) for one event."""
    if event == ("order", "placed"):
        wanted = [
            ("order_placed", CUSTOMER, (EMAIL,)),
            ("merchant_new_order", MERCHANT, (EMAIL, PUSH)),
        ]
        return wanted + ([("order_placed", MERCHANT, (EMAIL,))] if config["merchant_copy"] else [])
    if event == ("payment", "PAID"):
        digital = any(i.kind is not ItemKind.PHYSICAL for i in order.items)
        return [("digital_delivery", CUSTOMER, (EMAIL,))] if digital else []
    if event in _WITH_SMS:
        return [(_WITH_SMS[event], CUSTOMER, (EMAIL, SMS))]
    if event in _STATUS_TEMPLATES:
        if event == ("fulfilment", "DELIVERED") and order.is_digital_only:
            return []  # the digital_delivery mail already handed the goods over
        wanted = [(_STATUS_TEMPLATES[event], CUSTOMER, (EMAIL,))]
        copy = [("merchant_status", MERCHANT, (EMAIL,))] if config["merchant_status_copies"] else []
        return wanted + copy
    if event == ("order", "label_failed"):
        return [("label_failed", MERCHANT, (Channel(config["merchant_alert_channel"]),))]
    return []


class BuiltinPolicy:
    """DESIGN.md section 6 as a hook implementation; settings as in the module docstring."""

    @hookimpl
    def fulfil_notifications_for(
        self, order: Order, change: StatusChange, settings: Mapping[str, Any] | None
    ) -> list[Notice]:
        config = _settings(settings)
        customer_ok = order.notify_customer and change.notify_customer
        overrides: Mapping[str, Iterable[str]] = config["channels"] or {}
        notices: list[Notice] = []
        for template, audience, defaults in _wanted(
            order, (change.machine, str(change.new)), config
        ):
            if audience is CUSTOMER and not customer_ok:
                continue
            notices += [
                Notice(template, audience, channel)
                for channel in map(Channel, overrides.get(template, defaults))
                if _deliverable(order, audience, channel, config)
            ]
        return list(dict.fromkeys(notices))


def _deliverable(
    order: Order, audience: Audience, channel: Channel, config: Mapping[str, Any]
) -> bool:
    if channel is SMS:
        return bool(config["sms"]) and (audience is MERCHANT or customer_phone(order) is not None)
    if channel is PUSH:
        return bool(config["push"]) and audience is MERCHANT
    if channel is WEBHOOK:
        return audience is MERCHANT  # a webhook is the merchant's endpoint, never a customer's
    return True
