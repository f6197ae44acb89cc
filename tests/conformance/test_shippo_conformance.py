"""The Shippo carrier passes the carrier conformance suite against its fake.

The settings name a carrier account and service level, as a merchant who books pickups
does: labels are then bought in one call (``POST /transactions/``), where faults are aimed.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from fulfil.plugins.carriers import shippo
from fulfil.testing.conformance import CarrierConformance, secret_value
from fulfil.testing.fakes.shippo import FakeShippo


class TestShippoConformance(CarrierConformance):
    purchase_request = ("POST", r"^/transactions/?$")

    @pytest.fixture
    def plugin(self) -> ModuleType:
        return shippo

    @pytest.fixture
    def fake(self) -> Iterator[FakeShippo]:
        with FakeShippo(token=secret_value("SHIPPO_API_TOKEN")) as running:
            yield running

    @pytest.fixture
    def settings(self, fake: FakeShippo) -> dict[str, Any]:
        return {
            "api_token": "env:SHIPPO_API_TOKEN",
            "base_url": fake.url,
            "carrier_account": "ca_usps",
            "servicelevel": "usps_priority",
        }
