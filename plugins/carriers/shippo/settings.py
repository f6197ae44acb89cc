"""The Shippo adapter's settings: their JSON Schema (2020-12) and the parsed, typed form.

The core validates a merchant's settings against ``SETTINGS_SCHEMA`` when it reads the
config; ``ShippoSettings.from_mapping`` validates again because the factory is also called
directly (tests, benchmarks, the conformance suite). The API token is a reference
(``env:SHIPPO_API_TOKEN``): the core resolves it to a ``Secret`` before the factory runs,
and the token's value is revealed only when a request is built.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs
from fulfil.core.errors import ConfigError
from fulfil.core.secrets import PREFIX, Secret

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator

__all__ = ["DEFAULT_BASE_URL", "LABEL_FILE_TYPES", "SETTINGS_SCHEMA", "ShippoSettings"]

DEFAULT_BASE_URL = "https://api.goshippo.com"

# https://docs.goshippo.com/docs/shipments/shippinglabelsizes/ (label_file_type tokens)
LABEL_FILE_TYPES: tuple[str, ...] = (
    "PDF",
    "PDF_4x6",
    "PDF_4x8",
    "PDF_A4",
    "PDF_A5",
    "PDF_A6",
    "PDF_2.3x7.5",
    "PNG",
    "PNG_2.3x7.5",
    "ZPLII",
)

# https://docs.goshippo.com/docs/manifests_and_pickups/pickups (building_location_type)
BUILDING_LOCATION_TYPES: tuple[str, ...] = (
    "Front Door",
    "Back Door",
    "Side Door",
    "Knock on Door/Ring Bell",
    "Mail Room",
    "Office",
    "Reception",
    "In/At Mailbox",
    "Security Deck",
    "Shipping Dock",
    "Other",
)

SETTINGS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "shippo carrier settings",
    "description": "Labels, rates, refunds, returns, pickups and tracking through the Shippo "
    "API (https://api.goshippo.com).",
    "type": "object",
    "additionalProperties": False,
    "required": ["api_token"],
    "properties": {
        "api_token": {
            "type": "string",
            "pattern": r"^env:[A-Za-z_][A-Za-z0-9_]*$",
            "description": 'A reference to the Shippo API token, e.g. "env:SHIPPO_API_TOKEN" '
            "(a shippo_live_... or shippo_test_... key). It is sent as "
            '"Authorization: ShippoToken <token>" and never logged or stored.',
        },
        "base_url": {
            "type": "string",
            "format": "uri",
            "pattern": "^https?://",
            "default": DEFAULT_BASE_URL,
            "description": "Root of the Shippo API; change it only to point at a test server.",
        },
        "api_version": {
            "type": "string",
            "pattern": r"^\d{4}-\d{2}-\d{2}$",
            "description": 'Sent as the SHIPPO-API-VERSION header (e.g. "2018-02-08"); left '
            "out, the account's default version answers.",
        },
        "label_file_type": {
            "enum": list(LABEL_FILE_TYPES),
            "default": "PDF_4x6",
            "description": "Shippo label_file_type for labels fulfil asks for as PDF (its "
            "default); a request for ZPL or PNG uses ZPLII or PNG unless this is of the same "
            "family.",
        },
        "carrier_account": {
            "type": "string",
            "minLength": 1,
            "description": "object_id of the Shippo carrier account to buy with. With a "
            "service level known, labels are bought in one call (instalabel); it is also "
            "required for pickups (USPS or DHL Express accounts only).",
        },
        "servicelevel": {
            "type": "string",
            "pattern": "^[a-z0-9_]+$",
            "description": "Service level token used when a routing rule names no service "
            '(e.g. "usps_priority", "dhl_express_worldwide"); without one, the cheapest '
            "rate is bought.",
        },
        "tracking_carrier": {
            "type": "string",
            "pattern": "^[a-z0-9_]+$",
            "description": 'Shippo carrier token for tracking (e.g. "usps") when it cannot be '
            "derived from a label bought in this process or from servicelevel.",
        },
        "incoterm": {
            "enum": ["DDP", "DDU", "FCA", "DAP", "eDAP"],
            "default": "DDU",
            "description": "Incoterm of customs declarations (parcels leaving the customs union).",
        },
        "customs_signer": {
            "type": "string",
            "minLength": 1,
            "description": "certify_signer of customs declarations; defaults to the sender's name.",
        },
        "pickup_timezone": {
            "type": "string",
            "minLength": 1,
            "default": "UTC",
            "description": "IANA time zone of the pickup address (e.g. Europe/Paris): pickup "
            "windows are local times there and are sent to Shippo in UTC.",
        },
        "pickup_location_type": {
            "enum": list(BUILDING_LOCATION_TYPES),
            "default": "Front Door",
            "description": "Where the courier finds the parcels (building_location_type).",
        },
        "pickup_instructions": {
            "type": "string",
            "minLength": 1,
            "description": "Instructions for the courier; required when pickup_location_type "
            'is "Other".',
        },
        "ledger": {
            "type": "string",
            "minLength": 1,
            "default": "shippo-ledger.sqlite",
            "description": "SQLite file where the adapter remembers what each idempotency key "
            "bought and which purchases are in doubt, shared by the workers of one data "
            "folder; a relative path is resolved against the plugin's data folder.",
        },
        "reconcile_pages": {
            "type": "integer",
            "minimum": 1,
            "maximum": 50,
            "default": 10,
            "description": "Pages of 100 recent transactions searched for a label whose "
            "purchase outcome was unknown (Shippo lists them, it cannot filter by metadata).",
        },
    },
    "if": {
        "properties": {"pickup_location_type": {"const": "Other"}},
        "required": ["pickup_location_type"],
    },
    "then": {"required": ["pickup_instructions"]},
}


@functools.cache
def _validator() -> Draft202012Validator:
    # Built on first use: listing installed plugins should not pay for jsonschema.
    from jsonschema import Draft202012Validator

    return Draft202012Validator(SETTINGS_SCHEMA)


def _as_reference(value: Any) -> Any:
    # A resolved Secret is checked as the reference it came from; its value is never looked at.
    return f"{PREFIX}{value.name}" if isinstance(value, Secret) else value


@attrs.frozen
class ShippoSettings:
    api_token: Secret = attrs.field(repr=False)
    base_url: str = DEFAULT_BASE_URL
    api_version: str | None = None
    label_file_type: str = "PDF_4x6"
    carrier_account: str | None = None
    servicelevel: str | None = None
    tracking_carrier: str | None = None
    incoterm: str = "DDU"
    customs_signer: str | None = None
    pickup_timezone: str = "UTC"
    pickup_location_type: str = "Front Door"
    pickup_instructions: str | None = None
    ledger: str = "shippo-ledger.sqlite"
    reconcile_pages: int = 10

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, Any], where: str = "carriers.shippo.settings"
    ) -> ShippoSettings:
        """Validate ``data`` against ``SETTINGS_SCHEMA`` and fill in the defaults.

        ``api_token`` must be a ``Secret`` (what the core makes of ``env:NAME``). Raises
        ``ConfigError`` naming the JSON path of every problem.
        """
        checked = {key: _as_reference(value) for key, value in data.items()}
        errors = sorted(_validator().iter_errors(checked), key=lambda e: list(e.absolute_path))
        lines = []
        for error in errors:
            path = ".".join([where, *(str(p) for p in error.absolute_path)])
            # The message may quote the value; for api_token that could be a pasted token.
            reason = (
                'must be a reference such as "env:SHIPPO_API_TOKEN"'
                if list(error.absolute_path) == ["api_token"]
                else error.message
            )
            lines.append(f"{path}: {reason}")
        token = data.get("api_token")
        if not lines and not isinstance(token, Secret):
            lines.append(f"{where}.api_token: the env: reference was not resolved")
        if lines:
            raise ConfigError("\n".join(lines))
        assert isinstance(token, Secret)
        known = {f.name for f in attrs.fields(cls)} - {"api_token"}
        values = {k: v for k, v in data.items() if k in known}
        if "pickup_timezone" in values:
            _check_timezone(values["pickup_timezone"], f"{where}.pickup_timezone")
        return cls(api_token=token, **values)


def _check_timezone(name: str, where: str) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{where}: {name!r} is not an IANA time zone") from None
