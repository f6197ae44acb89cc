"""The EasyPost carrier's settings: their JSON Schema and the parsed, typed form.

The core validates a merchant's settings against ``SETTINGS_SCHEMA`` at the config
boundary; ``EasyPostSettings.from_mapping`` checks them once more when the carrier is
built (tests and benchmarks call the factory directly), never per request.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs
from fulfil.core.errors import ConfigError
from fulfil.core.secrets import Secret

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator

__all__ = ["BASE_URL", "LABEL_FORMATS", "SETTINGS_SCHEMA", "EasyPostSettings"]

BASE_URL = "https://api.easypost.com/v2"
LABEL_FORMATS: tuple[str, ...] = ("PDF", "ZPL", "PNG")

SETTINGS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "easypost carrier settings",
    "description": "EasyPost API v2: labels, rates, refunds, returns, pickups and trackers "
    "across the carrier accounts connected to one EasyPost account.",
    "type": "object",
    "additionalProperties": False,
    "required": ["api_key"],
    "properties": {
        "api_key": {
            "type": "string",
            "minLength": 1,
            "description": 'The EasyPost API key (test or production), as a reference such as "env:'
            'EASYPOST_API_KEY": it is sent as the HTTP Basic user name and never logged.',
        },
        "base_url": {
            "type": "string",
            "pattern": r"^https?://\S+[^/\s]$",
            "default": BASE_URL,
            "description": "Root of the API, without a trailing slash; change it only to "
            "talk to a test double.",
        },
        "label_format": {
            "enum": list(LABEL_FORMATS),
            "default": "PDF",
            "description": "Label document format (shipment options.label_format); EasyPost's "
            "own default would be PNG.",
        },
        "label_size": {
            "type": "string",
            "pattern": r"^\d+(\.\d+)?x\d+(\.\d+)?$",
            "description": 'Label size (options.label_size), e.g. "4x6"; the carrier\'s default '
            "when absent.",
        },
        "carrier_accounts": {
            "type": "array",
            "minItems": 1,
            "uniqueItems": True,
            "items": {"type": "string", "pattern": "^ca_[A-Za-z0-9]+$"},
            "description": "Carrier account ids (ca_...) to rate and buy with. With a service "
            "known, a label is bought in one call (one-call buy); without them every enabled "
            "account is rated and the rate is bought in a second call.",
        },
        "carrier": {
            "type": "string",
            "minLength": 1,
            "description": 'Carrier to buy from when a service names none, e.g. "USPS", "UPS", '
            '"FedEx", "DHLExpress".',
        },
        "service": {
            "type": "string",
            "minLength": 1,
            "description": 'Service when the route names none, e.g. "Priority" or '
            '"USPS:Priority"; absent, the cheapest rate is bought.',
        },
        "pickup_service": {
            "type": "string",
            "minLength": 1,
            "description": 'Pickup service to buy, e.g. "NextDay" (USPS); absent, the cheapest '
            "pickup rate.",
        },
        "customs_signer": {
            "type": "string",
            "minLength": 1,
            "description": "Name certifying customs declarations (customs_info.customs_signer); "
            "the sender's name when absent.",
        },
    },
}


@functools.cache
def _validator() -> Draft202012Validator:
    # Built on first use: listing installed plugins should not pay for jsonschema.
    from jsonschema import Draft202012Validator

    return Draft202012Validator(SETTINGS_SCHEMA)


def _split_service(value: str | None) -> tuple[str | None, str | None]:
    if value is None:
        return None, None
    carrier, sep, service = value.partition(":")
    return (carrier, service) if sep else (None, value)


@attrs.frozen
class EasyPostSettings:
    api_key: Secret | str = attrs.field(repr=False)
    base_url: str = BASE_URL
    label_format: str = "PDF"
    label_size: str | None = None
    carrier_accounts: tuple[str, ...] = ()
    carrier: str | None = None
    service: str | None = None
    pickup_service: str | None = None
    customs_signer: str | None = None

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, Any], where: str = "carriers.easypost"
    ) -> EasyPostSettings:
        """Validate ``data`` against ``SETTINGS_SCHEMA`` and fill in the defaults.

        Raises ``ConfigError`` naming the JSON path of the first problem, never the key.
        """
        key = data.get("api_key")
        if not isinstance(key, Secret) and not (isinstance(key, str) and key):
            raise ConfigError(f"{where}.api_key: required, a reference such as env:API_KEY")
        # The key itself is not validated here: a schema error message would quote it.
        checked = {**data, "api_key": "<api key>"}
        errors = sorted(_validator().iter_errors(checked), key=lambda e: list(e.absolute_path))
        if errors:
            lines = [
                f"{'.'.join([where, *(str(p) for p in e.absolute_path)])}: {e.message}"
                for e in errors
            ]
            raise ConfigError("\n".join(lines))
        default_carrier, service = _split_service(data.get("service"))
        return cls(
            api_key=key,
            base_url=data.get("base_url", BASE_URL),
            label_format=data.get("label_format", "PDF"),
            label_size=data.get("label_size"),
            carrier_accounts=tuple(data.get("carrier_accounts", ())),
            carrier=default_carrier or data.get("carrier"),
            service=service,
            pickup_service=data.get("pickup_service"),
            customs_signer=data.get("customs_signer"),
        )
