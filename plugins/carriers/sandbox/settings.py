"""The sandbox carrier's settings: their JSON Schema and the parsed, typed form.

The core validates a merchant's settings against ``SETTINGS_SCHEMA`` at the config
boundary; ``SandboxSettings.from_mapping`` validates again because the factory is also
called directly (tests, benchmarks) and a typo there should fail as loudly as in a config.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import attrs
from fulfil.core.errors import ConfigError

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator

__all__ = ["SERVICES", "SETTINGS_SCHEMA", "SandboxSettings"]

SERVICES: tuple[str, ...] = ("economy", "standard", "express")

_PROBABILITY: dict[str, Any] = {"type": "number", "minimum": 0, "maximum": 1, "default": 0}

SETTINGS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "sandbox carrier settings",
    "description": "An offline, deterministic carrier with real PDF labels and injected faults.",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "ledger": {
            "type": "string",
            "minLength": 1,
            "default": "sandbox-ledger.sqlite",
            "description": "SQLite file recording every purchase, attempt and pickup (the "
            "fake carrier's own database); a relative path is resolved against the plugin's "
            "data folder.",
        },
        "latency_ms": {
            "type": "number",
            "minimum": 0,
            "default": 0,
            "description": "Milliseconds every operation waits before answering.",
        },
        "fail_5xx": {
            **_PROBABILITY,
            "description": "Probability that a purchase or pickup is answered with 503 "
            "before anything is recorded.",
        },
        "fail_timeout": {
            **_PROBABILITY,
            "description": "Probability that a purchase or pickup times out after the "
            "carrier recorded it: the outcome is unknown to the caller.",
        },
        "fail_429": {
            **_PROBABILITY,
            "description": "Probability that a purchase or pickup is rate limited (429) "
            "before anything is recorded.",
        },
        "retry_after_s": {
            "type": "number",
            "minimum": 0,
            "default": 1,
            "description": "Seconds sent as Retry-After with a 429.",
        },
        "seed": {
            "type": "integer",
            "default": 0,
            "description": "Seed of the fault draws; a run is reproducible for a given seed.",
        },
        "currency": {
            "type": "string",
            "pattern": "^[A-Z]{3}$",
            "default": "EUR",
            "description": "ISO 4217 currency of quotes and label costs.",
        },
        "costs": {
            "type": "object",
            "description": "Base price of one parcel of up to 1 kg per service, replacing the "
            "built-in table for the services named.",
            "propertyNames": {"enum": list(SERVICES)},
            "additionalProperties": {
                "type": ["string", "number"],
                "pattern": r"^\d+(\.\d{1,2})?$",
                "minimum": 0,
                "description": 'An amount, e.g. "4.90".',
            },
        },
    },
}


@functools.cache
def _validator() -> Draft202012Validator:
    # Built on first use: listing installed plugins should not pay for jsonschema.
    from jsonschema import Draft202012Validator

    return Draft202012Validator(SETTINGS_SCHEMA)


@attrs.frozen
class SandboxSettings:
    ledger: str = "sandbox-ledger.sqlite"
    latency_ms: float = 0
    fail_5xx: float = 0
    fail_timeout: float = 0
    fail_429: float = 0
    retry_after_s: float = 1
    seed: int = 0
    currency: str = "EUR"
    costs: Mapping[str, Decimal] = attrs.field(factory=dict)

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, Any], where: str = "carriers.sandbox"
    ) -> SandboxSettings:
        """Validate ``data`` against ``SETTINGS_SCHEMA`` and fill in the defaults.

        Raises ``ConfigError`` naming the JSON path of the first problem.
        """
        errors = sorted(_validator().iter_errors(dict(data)), key=lambda e: list(e.absolute_path))
        if errors:
            lines = []
            for error in errors:
                path = ".".join([where, *(str(p) for p in error.absolute_path)])
                lines.append(f"{path}: {error.message}")
            raise ConfigError("\n".join(lines))
        return cls(
            ledger=data.get("ledger", "sandbox-ledger.sqlite"),
            latency_ms=float(data.get("latency_ms", 0)),
            fail_5xx=float(data.get("fail_5xx", 0)),
            fail_timeout=float(data.get("fail_timeout", 0)),
            fail_429=float(data.get("fail_429", 0)),
            retry_after_s=float(data.get("retry_after_s", 1)),
            seed=int(data.get("seed", 0)),
            currency=data.get("currency", "EUR"),
            costs={k: Decimal(str(v)) for k, v in data.get("costs", {}).items()},
        )
