"""The Sendcloud carrier (API v3) passes the carrier conformance suite against its fake."""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from fulfil.plugins.carriers import sendcloud
from fulfil.testing.conformance import CarrierConformance, secret_value
from fulfil.testing.fakes.sendcloud import SendcloudFake


@pytest.fixture(scope="module")
def service() -> Iterator[SendcloudFake]:
    # One server for the module, reset before each test: stopping one takes up to 0.5 s.
    with SendcloudFake(
        public_key=secret_value("SENDCLOUD_PUBLIC_KEY"),
        secret_key=secret_value("SENDCLOUD_SECRET_KEY"),
    ) as running:
        yield running


class TestSendcloudConformance(CarrierConformance):
    @pytest.fixture
    def plugin(self) -> ModuleType:
        return sendcloud

    @pytest.fixture
    def fake(self, service: SendcloudFake) -> SendcloudFake:
        service.reset()
        return service

    @pytest.fixture
    def settings(self, fake: SendcloudFake) -> dict[str, Any]:
        return {
            "public_key": "env:SENDCLOUD_PUBLIC_KEY",
            "secret_key": "env:SENDCLOUD_SECRET_KEY",
            "base_url": fake.url + "/api/v3",
            "shipping_option": "postnl:standard",
        }
