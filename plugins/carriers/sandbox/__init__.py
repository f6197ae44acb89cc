"""The built-in ``sandbox`` carrier: offline, deterministic, real PDF labels, injected faults.

It is the embedded default (``fulfil demo`` buys its labels here) and the carrier the
reliability tests break on purpose: latency and 429/503/timeout rates are settings, and
its SQLite ledger records what it actually sold so a test can prove "nothing twice".

Modules: ``settings`` (schema and parsed settings), ``carrier`` (the operations),
``ledger`` (the carrier's own database), ``label_pdf`` (the 4x6 label), ``tariff``
(prices), ``faults`` (reproducible failure draws), ``validation`` (permanent refusals),
``identifiers`` (tracking numbers and references derived from the idempotency key).
Importing this package only defines things; reportlab is loaded when a label is drawn.
"""

from __future__ import annotations

from collections.abc import Callable

from fulfil.core.carriers import Capability, CarrierPlugin
from fulfil.core.hookspecs import hookimpl
from fulfil.plugins.carriers.sandbox.carrier import SandboxCarrier, make_carrier
from fulfil.plugins.carriers.sandbox.ledger import Ledger
from fulfil.plugins.carriers.sandbox.settings import SERVICES, SETTINGS_SCHEMA

__all__ = [
    "SERVICES",
    "SETTINGS_SCHEMA",
    "Ledger",
    "SandboxCarrier",
    "fulfil_register_carriers",
    "make_carrier",
    "plugin",
]


def plugin() -> CarrierPlugin:
    """The sandbox's declaration, as registered."""
    return CarrierPlugin(
        name="sandbox",
        factory=make_carrier,
        capabilities={
            Capability.RATES,
            Capability.LABELS,
            Capability.CANCEL,
            Capability.PICKUPS,
            Capability.TRACKING,
            Capability.RETURNS,
        },
        countries={"*"},
        services=SERVICES,
        label_formats=("PDF",),
        settings_schema=SETTINGS_SCHEMA,
        description="Offline test carrier: deterministic tracking numbers, real 4x6 PDF "
        "labels, configurable latency and failures, a SQLite ledger of what it sold.",
    )


@hookimpl
def fulfil_register_carriers(register: Callable[[CarrierPlugin], None]) -> None:
    register(plugin())
