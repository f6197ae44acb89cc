"""The ``easypost`` carrier: EasyPost API v2 (https://api.easypost.com/v2).

EasyPost is a multi-carrier API: one account rates and buys labels from the carrier
accounts connected to it (USPS, UPS, FedEx, DHL Express, Canada Post, Royal Mail, ...).
Services are named ``"Carrier:Service"`` (``"USPS:Priority"``) or by the service alone,
so the plugin declares no fixed list. Origins are ``"*"``: which countries a merchant can
ship from depends on the carrier accounts connected, not on EasyPost.

Modules: ``settings`` (schema and parsed settings), ``client`` (base URL, Basic auth, the
injected ``httpx.Client``), ``errors`` (EasyPost answers as ``CarrierError``), ``mapping``
(bodies and units), ``carrier`` (the operations). Importing this package only defines
things; jsonschema is loaded when a carrier is built. See docs/carriers.md (EasyPost).
"""

from __future__ import annotations

from collections.abc import Callable

from fulfil.core.carriers import Capability, CarrierPlugin
from fulfil.core.hookspecs import hookimpl
from fulfil.plugins.carriers.easypost.carrier import EasyPostCarrier, make_carrier
from fulfil.plugins.carriers.easypost.settings import LABEL_FORMATS, SETTINGS_SCHEMA

__all__ = [
    "SETTINGS_SCHEMA",
    "EasyPostCarrier",
    "fulfil_register_carriers",
    "make_carrier",
    "plugin",
]


def plugin() -> CarrierPlugin:
    """EasyPost's declaration, as registered."""
    return CarrierPlugin(
        name="easypost",
        factory=make_carrier,
        capabilities={
            Capability.LABELS,
            Capability.RATES,
            Capability.CANCEL,
            Capability.RETURNS,
            Capability.PICKUPS,
            Capability.TRACKING,
        },
        countries={"*"},
        services=(),
        label_formats=LABEL_FORMATS,
        settings_schema=SETTINGS_SCHEMA,
        # EasyPost's limits adjust to load and are not published for buying or rating
        # (only 5 requests/s on list endpoints): 429 and Retry-After pace the worker.
        rate_limit=None,
        description="EasyPost API v2: labels (PDF, ZPL, PNG), rates, refunds, return labels, "
        "pickups and trackers across the carrier accounts of one EasyPost account.",
    )


@hookimpl
def fulfil_register_carriers(register: Callable[[CarrierPlugin], None]) -> None:
    register(plugin())
