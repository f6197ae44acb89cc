"""The Sendcloud adapter's settings: their JSON Schema and the parsed, typed form.

The core validates a merchant's settings against ``SETTINGS_SCHEMA`` at the config
boundary, where the two keys must be references (``env:SENDCLOUD_SECRET_KEY``), never the
keys themselves. ``SendcloudSettings.from_mapping`` validates again because the factory is
also called directly (tests, benchmarks, the conformance suite); there the keys arrive
already resolved, as ``Secret`` objects or plain strings, and are never echoed in errors.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs
from fulfil.core.errors import ConfigError
from fulfil.core.secrets import Secret

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator

__all__ = ["BASE_URL", "LABEL_FORMATS", "SETTINGS_SCHEMA", "SendcloudSettings"]

BASE_URL = "https://panel.sendcloud.sc/api/v3"
LABEL_FORMATS: tuple[str, ...] = ("PDF", "ZPL", "PNG")
CREDENTIALS = ("public_key", "secret_key")

_SECRET_REF = r"^env:[A-Za-z_][A-Za-z0-9_]*$"
# Sendcloud shipping option codes: "<carrier>:<product>[/<functionalities>]".
_OPTION_CODE = r"^[a-z0-9_]+:[^\s]+$"


def _credential(which: str, env: str) -> dict[str, Any]:
    return {
        "type": "string",
        "title": "secret reference",
        "pattern": _SECRET_REF,
        "writeOnly": True,
        "description": f"The Sendcloud API {which} key (Settings > Integrations > Sendcloud "
        f"API), as a reference to an environment variable such as env:{env}; never the key "
        "itself.",
    }


SETTINGS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "sendcloud carrier settings",
    "description": "Sendcloud API v3 (shipments, returns, pickups, shipping options, "
    "tracking) with HTTP Basic authentication.",
    "type": "object",
    "additionalProperties": False,
    "required": ["public_key", "secret_key"],
    "properties": {
        "public_key": _credential("public", "SENDCLOUD_PUBLIC_KEY"),
        "secret_key": _credential("secret", "SENDCLOUD_SECRET_KEY"),
        "base_url": {
            "type": "string",
            "pattern": r"^https?://[^\s/]+(/[^\s]*)?$",
            "default": BASE_URL,
            "description": "Root of the Sendcloud API v3; change it only to point at a test "
            "double.",
        },
        "shipping_option": {
            "type": "string",
            "pattern": _OPTION_CODE,
            "description": "Shipping option code used when the routing rule names no service, "
            'e.g. "postnl:standard" (POST /shipping-options lists the codes of your account).',
        },
        "return_shipping_option": {
            "type": "string",
            "pattern": _OPTION_CODE,
            "description": "Shipping option code for return labels when none is asked for, "
            'e.g. "dpd:return/return"; shipping_option is used when this is not set.',
        },
        "contract_id": {
            "type": "integer",
            "minimum": 1,
            "description": "Carrier contract to ship with, when the account has more than one "
            "for the carrier; Sendcloud picks the default contract otherwise.",
        },
        "label_format": {
            "enum": list(LABEL_FORMATS),
            "default": "PDF",
            "description": "Format of the labels (PDF, ZPL for thermal printers, or PNG), "
            "unless the core asks for another one.",
        },
        "currency": {
            "type": "string",
            "pattern": "^[A-Z]{3}$",
            "default": "EUR",
            "description": "ISO 4217 currency of label costs and customs values. Sendcloud "
            "invoices shipment labels later, so their cost is recorded as 0 in it.",
        },
        "default_hs_code": {
            "type": "string",
            "pattern": r"^\d{6,10}$",
            "description": "Harmonized System code declared for items that have none, on "
            "parcels that leave the EU (Sendcloud requires one per item there).",
        },
        "pickup_carrier": {
            "type": "string",
            "pattern": "^[a-z0-9_]+$",
            "description": 'Carrier that collects the parcels (e.g. "dhl_express"); by '
            "default the carrier part of shipping_option.",
        },
        "pickup_timezone": {
            "type": "string",
            "minLength": 1,
            "default": "UTC",
            "description": "IANA time zone of the pickup address, in which the store's "
            'pickup window is read (e.g. "Europe/Paris"); set it to the store\'s time zone.',
        },
        "partner_id": {
            "type": "string",
            "minLength": 1,
            "description": "Sendcloud Tech Partner UUID, sent as the Sendcloud-Partner-Id "
            "header when set.",
        },
        "timeout_s": {
            "type": "number",
            "exclusiveMinimum": 0,
            "description": "Seconds to wait for each Sendcloud answer; by default the core's "
            "HTTP client timeout applies.",
        },
    },
}


@functools.cache
def _validator() -> Draft202012Validator:
    # Built on first use: listing installed plugins should not pay for jsonschema.
    from jsonschema import Draft202012Validator

    return Draft202012Validator(SETTINGS_SCHEMA)


def _for_validation(data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` with the credentials as references: resolved values are never validated
    (nor shown in an error), only their presence and type."""
    shown = dict(data)
    for name in CREDENTIALS:
        value = shown.get(name)
        if isinstance(value, Secret):
            shown[name] = f"env:{value.name}"
        elif isinstance(value, str) and value:
            shown[name] = "env:RESOLVED"
    return shown


def _is_timezone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


@attrs.frozen
class SendcloudSettings:
    public_key: Secret | str = attrs.field(repr=False)
    secret_key: Secret | str = attrs.field(repr=False)
    base_url: str = BASE_URL
    shipping_option: str | None = None
    return_shipping_option: str | None = None
    contract_id: int | None = None
    label_format: str = "PDF"
    currency: str = "EUR"
    default_hs_code: str | None = None
    pickup_carrier: str | None = None
    pickup_timezone: str = "UTC"
    partner_id: str | None = None
    timeout_s: float | None = None

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, Any], where: str = "carriers.sendcloud"
    ) -> SendcloudSettings:
        """Validate ``data`` against ``SETTINGS_SCHEMA`` and fill in the defaults.

        Raises ``ConfigError`` naming the JSON path of every problem; a credential's value
        never appears in it.
        """
        shown = _for_validation(data)
        errors = sorted(_validator().iter_errors(shown), key=lambda e: list(e.absolute_path))
        lines = []
        for error in errors:
            path = ".".join([where, *(str(p) for p in error.absolute_path)])
            lines.append(f"{path}: {error.message}")
        timezone = data.get("pickup_timezone", "UTC")
        if isinstance(timezone, str) and timezone and not _is_timezone(timezone):
            lines.append(f"{where}.pickup_timezone: {timezone!r} is not an IANA time zone")
        if lines:
            raise ConfigError("\n".join(lines))
        timeout = data.get("timeout_s")
        return cls(
            public_key=data["public_key"],
            secret_key=data["secret_key"],
            base_url=str(data.get("base_url", BASE_URL)).rstrip("/"),
            shipping_option=data.get("shipping_option"),
            return_shipping_option=data.get("return_shipping_option"),
            contract_id=data.get("contract_id"),
            label_format=data.get("label_format", "PDF"),
            currency=data.get("currency", "EUR"),
            default_hs_code=data.get("default_hs_code"),
            pickup_carrier=data.get("pickup_carrier"),
            pickup_timezone=timezone,
            partner_id=data.get("partner_id"),
            timeout_s=float(timeout) if timeout is not None else None,
        )
