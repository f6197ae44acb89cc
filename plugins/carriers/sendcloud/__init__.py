"""The ``sendcloud`` carrier: labels, returns, rates, cancellation, pickups and tracking
through Sendcloud API v3, the version a new account gets (its v2 "create a parcel"
endpoint is closed to accounts created after 2026-04-13).

Modules: ``settings`` (schema and parsed settings), ``client`` (HTTP through the core's
client, Basic authentication, errors as ``CarrierError``), ``mapping`` (request and
response translation, unit conversion), ``carrier`` (the operations), ``pickups``
(idempotent pickup booking). Importing this package only defines things; jsonschema is
loaded when settings are first validated. The loopback double of the API is
``fulfil.testing.fakes.sendcloud.SendcloudFake``; the documented shapes it and the adapter
follow are listed in ``docs/carriers.md (Sendcloud)``.
"""

from __future__ import annotations

from collections.abc import Callable

from fulfil.core.carriers import Capability, CarrierPlugin
from fulfil.core.hookspecs import hookimpl
from fulfil.plugins.carriers.sendcloud.carrier import SendcloudCarrier, make_carrier
from fulfil.plugins.carriers.sendcloud.settings import (
    LABEL_FORMATS,
    SETTINGS_SCHEMA,
    SendcloudSettings,
)

__all__ = [
    "COUNTRIES",
    "RATE_LIMIT",
    "SETTINGS_SCHEMA",
    "SendcloudCarrier",
    "SendcloudSettings",
    "fulfil_register_carriers",
    "make_carrier",
    "plugin",
]

# The countries a Sendcloud account can ship from.
COUNTRIES = frozenset({"AT", "BE", "DE", "ES", "FR", "GB", "IT", "NL"})
# Sendcloud allows 100 unsafe (POST/PATCH/PUT/DELETE) requests a minute per account; a
# label purchase is one POST (its document download is a GET, limited at 1000 a minute).
RATE_LIMIT = 100 / 60


def plugin() -> CarrierPlugin:
    """Sendcloud's declaration, as registered."""
    return CarrierPlugin(
        name="sendcloud",
        factory=make_carrier,
        capabilities={
            Capability.LABELS,
            Capability.RATES,
            Capability.CANCEL,
            Capability.RETURNS,
            Capability.PICKUPS,
            Capability.TRACKING,
        },
        countries=COUNTRIES,
        # Any shipping option code of the merchant's account is accepted ("postnl:standard",
        # "dpd:home", ...): they differ per account and contract, so none are listed.
        services=(),
        label_formats=LABEL_FORMATS,
        settings_schema=SETTINGS_SCHEMA,
        rate_limit=RATE_LIMIT,
        description="Sendcloud API v3: shipments announced synchronously with their label "
        "(PDF, ZPL or PNG), returns, shipping option quotes, cancellation, carrier pickups "
        "and tracking, from AT, BE, DE, ES, FR, GB, IT and NL.",
    )


@hookimpl
def fulfil_register_carriers(register: Callable[[CarrierPlugin], None]) -> None:
    register(plugin())
