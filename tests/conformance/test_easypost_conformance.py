"""The EasyPost carrier (API v2) passes the carrier conformance suite against its fake.

A purchase is a lookup by reference and then a buy, so the faults are aimed at the buy:
a fault on the lookup (a GET, which buys nothing) would test nothing about purchases.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from types import ModuleType
from typing import Any

import attrs
import pytest
from fulfil.core.carriers import LabelRequest
from fulfil.core.models import Address
from fulfil.plugins.carriers import easypost
from fulfil.testing.conformance import HANG_SECONDS, CarrierConformance, secret_value
from fulfil.testing.fakes.easypost import FakeEasyPost

NEW_YORK = Address(
    name="Atelier Dupont",
    company="Dupont LLC",
    line1="350 5th Ave",
    city="New York",
    region="NY",
    postal_code="10118",
    country="US",
    phone="+12125550100",
)
REDONDO_BEACH = Address(
    name="Zoe Muller",
    line1="179 N Harbor Dr",
    line2="Apt 2",
    city="Redondo Beach",
    region="CA",
    postal_code="90277",
    country="US",
)


@pytest.fixture(scope="module")
def service() -> Iterator[FakeEasyPost]:
    # One server for the module, reset before each test: stopping one takes up to 0.5 s.
    with FakeEasyPost(api_key=secret_value("EASYPOST_API_KEY")) as running:
        yield running


class TestEasyPostConformance(CarrierConformance):
    @pytest.fixture
    def plugin(self) -> ModuleType:
        return easypost

    @pytest.fixture
    def fake(self, service: FakeEasyPost) -> FakeEasyPost:
        service.reset()
        return service

    @pytest.fixture
    def settings(self, fake: FakeEasyPost) -> dict[str, Any]:
        return {"api_key": "env:EASYPOST_API_KEY", "base_url": fake.url + "/v2"}

    def sample_label_request(self) -> LabelRequest:
        return attrs.evolve(
            super().sample_label_request(), sender=NEW_YORK, recipient=REDONDO_BEACH
        )

    def provoke(self, fault: str, fake: Any, settings: Mapping[str, Any]) -> Mapping[str, Any]:
        if fault == "timeout_after_receipt":
            fake.stall_next("/buy", HANG_SECONDS, apply=True)
        elif fault == "timeout_before_receipt":
            fake.stall_next("/buy", HANG_SECONDS, apply=False)
        elif fault == "unavailable":
            fake.answer_next("/buy", self.error_response(fault))
        else:
            fake.fail_next(self.error_response(fault))
        return settings
