"""The ``shippo`` carrier: labels, rates, refunds, returns, pickups and tracking via Shippo.

Shippo (https://docs.goshippo.com) is a multi-carrier API: USPS, UPS, FedEx, DHL Express,
Canada Post, Royal Mail, Evri, DPD, Colissimo, Chronopost, Mondial Relay, Deutsche Post,
Correos, Poste Italiane, Australia Post and more, each through a carrier account of the
merchant's Shippo account. The adapter speaks its public REST API (version 2018-02-08, the
one a new account answers with) through the ``httpx.Client`` the core injects.

Modules: ``settings`` (schema and parsed settings), ``api`` (HTTP and error mapping),
``mapping`` (fulfil's requests to Shippo's bodies and back, units converted there),
``ledger`` (what each idempotency key bought, in the plugin's data folder), ``carrier``
(the operations). Importing this package only defines things.
"""

from __future__ import annotations

from collections.abc import Callable

from fulfil.core.carriers import Capability, CarrierPlugin
from fulfil.core.hookspecs import hookimpl
from fulfil.plugins.carriers.shippo.carrier import ShippoCarrier, make_carrier
from fulfil.plugins.carriers.shippo.ledger import Ledger
from fulfil.plugins.carriers.shippo.settings import SETTINGS_SCHEMA, ShippoSettings

__all__ = [
    "COUNTRIES",
    "RATE_LIMIT",
    "Ledger",
    "SETTINGS_SCHEMA",
    "ShippoCarrier",
    "ShippoSettings",
    "fulfil_register_carriers",
    "make_carrier",
    "plugin",
]

# Origins of the carriers Shippo connects (its carrier capabilities page and integration
# guides): US and CA (USPS, UPS, FedEx, Canada Post), GB (Royal Mail, Evri, DPD UK,
# Parcelforce), FR (Colissimo, Chronopost, Mondial Relay), DE (Deutsche Post, DHL Germany,
# DPD), ES (Correos), IT (Poste Italiane) and AU (Australia Post, Sendle).
COUNTRIES = frozenset({"US", "CA", "GB", "FR", "DE", "ES", "IT", "AU"})

# https://docs.goshippo.com/docs/api_concepts/ratelimits/: 500 POST a minute (live) per
# endpoint; a label costs at most one POST on each endpoint it uses.
RATE_LIMIT = 500 / 60


def plugin() -> CarrierPlugin:
    """Shippo's declaration, as registered."""
    return CarrierPlugin(
        name="shippo",
        factory=make_carrier,
        capabilities={
            Capability.RATES,
            Capability.LABELS,
            Capability.CANCEL,
            Capability.RETURNS,
            Capability.PICKUPS,
            Capability.TRACKING,
        },
        countries=COUNTRIES,
        services=(),  # any Shippo servicelevel token (usps_priority, dhl_express_worldwide...)
        label_formats=("PDF", "ZPL", "PNG"),
        settings_schema=SETTINGS_SCHEMA,
        rate_limit=RATE_LIMIT,
        description="Shippo multi-carrier API: labels (two-call or one-call), rates, refunds, "
        "return labels, USPS/DHL Express pickups and tracking.",
    )


@hookimpl
def fulfil_register_carriers(register: Callable[[CarrierPlugin], None]) -> None:
    register(plugin())
