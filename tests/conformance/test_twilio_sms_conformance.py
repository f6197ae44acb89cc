"""The Twilio SMS notifier passes the notifier conformance suite against the fake Twilio.

Twilio has no idempotency key for sending; the plugin claims idempotency through its own
ledger of dedupe keys in the data folder, which the suite checks from the fake's
``messages``.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from fulfil.plugins.notifiers import twilio_sms
from fulfil.testing.conformance import RETRY_AFTER, NotifierConformance, secret_value
from fulfil.testing.fakes.twilio import FakeTwilio
from fulfil.testing.server import Response

ACCOUNT = "AC" + "0123456789abcdef" * 2
SENDER = "+15005550006"


class TestTwilioSmsConformance(NotifierConformance):
    @pytest.fixture
    def plugin(self) -> ModuleType:
        return twilio_sms

    @pytest.fixture
    def fake(self) -> Iterator[FakeTwilio]:
        with FakeTwilio(ACCOUNT, secret_value("TWILIO_AUTH_TOKEN")) as running:
            yield running

    @pytest.fixture
    def settings(self, fake: FakeTwilio) -> dict[str, Any]:
        # The account SID is an identifier that appears in every URL, not a secret.
        return {
            "account_sid": ACCOUNT,
            "auth_token": "env:TWILIO_AUTH_TOKEN",
            "from": SENDER,
            "base_url": fake.url,
        }

    def error_response(self, fault: str) -> Response:
        if fault == "rate_limited":
            return FakeTwilio.error(
                429, 20429, "Too Many Requests", {"Retry-After": str(RETRY_AFTER)}
            )
        return FakeTwilio.error(503, 20503, "Service Unavailable")
