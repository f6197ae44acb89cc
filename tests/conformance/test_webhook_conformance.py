"""The signed-webhook notifier passes the notifier conformance suite against a receiver
that checks every signature with the shared secret and processes each Idempotency-Key once.

A webhook is delivered once when its receiver processes it once: the plugin sends the
message's dedupe key as ``Idempotency-Key`` on every attempt, and the fake's
``deliveries`` holds one entry per key it processed.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from fulfil.core.notifiers import Channel, Message
from fulfil.plugins.notifiers import webhook
from fulfil.testing.conformance import NotifierConformance, secret_value
from fulfil.testing.fakes.webhook_receiver import FakeWebhookReceiver
from fulfil.testing.server import Request


def genuine(request: Request) -> str | None:
    """The receiver's own check, from the documented recipe (not the sender's code)."""
    timestamp = request.headers.get("x-fulfil-timestamp", "")
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > 300:
        return "timestamp missing or outside the 5-minute window"
    key = secret_value("WEBHOOK_SECRET").encode()
    mac = hmac.new(key, timestamp.encode() + b"." + request.body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(f"v1={mac}", request.headers.get("x-fulfil-signature", "")):
        return "signature mismatch"
    return None


class TestWebhookConformance(NotifierConformance):
    @pytest.fixture
    def plugin(self) -> ModuleType:
        return webhook

    @pytest.fixture
    def fake(self) -> Iterator[FakeWebhookReceiver]:
        with FakeWebhookReceiver(genuine) as running:
            yield running

    @pytest.fixture
    def settings(self, fake: FakeWebhookReceiver) -> dict[str, Any]:
        return {"urls": [fake.url + "/hooks/fulfil"], "secret": "env:WEBHOOK_SECRET"}

    def sample_message(self, channel: Channel) -> Message:
        # The built-in policy addresses webhooks to "merchant": every configured endpoint.
        sample = super().sample_message(channel)
        return Message.from_mapping(
            {**sample.to_mapping(), "audience": "merchant", "to": "merchant"}
        )
