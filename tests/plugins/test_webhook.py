"""The signed webhook notifier, checked by a receiver written here from the documented recipe.

The contract is fulfil's own (docs/notifiers.md, "Signed webhook"), shaped after
the Standard Webhooks specification and Stripe's signatures:

- signature over ``"<timestamp>." + raw body``, HMAC-SHA256, compared in constant time,
  timestamps outside a tolerance rejected against replay, the event id as idempotency key;
  2xx is success, ``410 Gone`` means "stop sending", 429/5xx are retried honouring
  ``Retry-After``:
  https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md
- ``t=``/``v1=`` signature over ``timestamp.payload`` with a 5-minute default tolerance:
  https://docs.stripe.com/webhooks#verify-manually
- ``Idempotency-Key`` header field: https://datatracker.ietf.org/doc/draft-ietf-httpapi-idempotency-key-header/
- HMAC: https://www.rfc-editor.org/rfc/rfc2104 ; ``Retry-After``:
  https://www.rfc-editor.org/rfc/rfc9110#field.retry-after

``verify`` below deliberately does not import the notifier: it is what a merchant writes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import time
from collections.abc import Iterator, Mapping

import httpx
import jsonschema
import pluggy
import pytest
from conftest import order_data
from fulfil.core import hookspecs
from fulfil.core.context import PluginContext
from fulfil.core.errors import NotifierError
from fulfil.core.models import Order
from fulfil.core.notifiers import Message, NotifierPlugin
from fulfil.core.secrets import resolve_secrets
from fulfil.core.worker import Worker
from fulfil.plugins.notifiers import webhook
from fulfil.plugins.notifiers.webhook import WebhookNotifier
from fulfil.testing.fakes.webhook_receiver import FakeWebhookReceiver
from fulfil.testing.server import Response

SECRET = "whsec-test-4f1c2a9e"
TOLERANCE = 5 * 60


def verify(
    secret: str, headers: Mapping[str, str], raw_body: bytes, now: float | None = None
) -> str | None:
    """The receiver's check, from the documented recipe: None if genuine, else why not."""
    timestamp = headers.get("x-fulfil-timestamp", "")
    received = headers.get("x-fulfil-signature", "")
    if not timestamp.isdigit():
        return "no timestamp"
    if abs((time.time() if now is None else now) - int(timestamp)) > TOLERANCE:
        return "timestamp outside the 5-minute window (replay?)"
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + raw_body, hashlib.sha256)
    if not hmac.compare_digest("v1=" + mac.hexdigest(), received):
        return "signature mismatch"
    return None


def checked_by(secret: str) -> FakeWebhookReceiver:
    return FakeWebhookReceiver(lambda r: verify(secret, r.headers, r.body))


@pytest.fixture
def receiver() -> Iterator[FakeWebhookReceiver]:
    with checked_by(SECRET) as fake:
        yield fake


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=1.0) as client:
        yield client


def alert(key: str = "o1:v2:label_failed:merchant:webhook") -> Message:
    return Message(
        dedupe_key=key,
        channel="webhook",
        audience="merchant",
        event="label_failed",
        order_id="o1",
        to="merchant",
        subject="Label purchase failed for order #1001",
        text="Sendcloud: validation [to_address.postal_code] Postal code invalide",
        locale="fr",
        data={"carrier": "sendcloud"},
    )


def test_delivery_is_signed_and_passes_the_receivers_check(client, receiver):
    before = int(time.time())
    receipt = WebhookNotifier(client, [receiver.url + "/hooks/fulfil"], SECRET).send(alert())
    (request,) = receiver.requests
    assert not receiver.rejected and request.path == "/hooks/fulfil"
    headers = request.headers
    assert headers["content-type"] == "application/json"
    assert headers["x-fulfil-event"] == "label_failed"
    assert headers["idempotency-key"] == "o1:v2:label_failed:merchant:webhook"
    assert before <= int(headers["x-fulfil-timestamp"]) <= time.time()
    assert headers["x-fulfil-signature"].startswith("v1=")
    body = json.loads(request.body)
    assert body["id"] == "o1:v2:label_failed:merchant:webhook"
    assert (body["event"], body["order_id"], body["audience"]) == ("label_failed", "o1", "merchant")
    assert body["message"] == alert().to_mapping()
    assert "Postal code invalide" in request.body.decode()  # UTF-8, not \\u-escaped
    assert receipt.detail == "1 endpoint(s) acknowledged"


def test_a_replayed_delivery_is_rejected(client, receiver):
    WebhookNotifier(client, [receiver.url], SECRET).send(alert())
    captured = receiver.requests[0]
    sent_at = int(captured.headers["x-fulfil-timestamp"])
    assert verify(SECRET, captured.headers, captured.body, now=sent_at + TOLERANCE - 1) is None
    assert verify(SECRET, captured.headers, captured.body, now=sent_at + TOLERANCE + 1) == (
        "timestamp outside the 5-minute window (replay?)"
    )
    # The captured request sent again six minutes later, as an attacker would.
    replayed = {k: v for k, v in captured.headers.items() if k.startswith(("x-", "content-t"))}
    six_minutes_on = FakeWebhookReceiver(
        lambda r: verify(SECRET, r.headers, r.body, now=time.time() + 360)
    )
    with six_minutes_on as later:
        answer = client.post(later.url, content=captured.body, headers=replayed)
        assert answer.status_code == 401 and not later.deliveries
        assert later.rejected[0][1] == "timestamp outside the 5-minute window (replay?)"
    # A sender whose clock is ten minutes behind is turned away for the same reason.
    with checked_by(SECRET) as strict:
        behind = WebhookNotifier(client, [strict.url], SECRET, clock=lambda: time.time() - 600)
        with pytest.raises(NotifierError) as info:
            behind.send(alert())
        assert (info.value.transient, info.value.code) == (False, "HTTP401")
        assert not strict.deliveries


def test_a_tampered_body_or_another_secret_fails_the_check(client, receiver):
    WebhookNotifier(client, [receiver.url], SECRET).send(alert())
    captured = receiver.requests[0]
    tampered = captured.body.replace(b"Postal code invalide", b"Postal code corrected")
    assert verify(SECRET, captured.headers, tampered) == "signature mismatch"
    one_byte = captured.body[:-2] + b" }"
    assert verify(SECRET, captured.headers, one_byte) == "signature mismatch"
    assert verify("another-secret", captured.headers, captured.body) == "signature mismatch"
    with pytest.raises(NotifierError) as info:
        WebhookNotifier(client, [receiver.url], "wrong-secret").send(alert("k2"))
    assert info.value.transient is False and "wrong-secret" not in str(info.value)


def test_a_retry_keeps_the_idempotency_key_and_is_processed_once(client, receiver):
    now = [time.time()]
    notifier = WebhookNotifier(client, [receiver.url], SECRET, clock=lambda: now[0])
    receiver.fail_next(Response(503, {"Retry-After": "12"}))
    with pytest.raises(NotifierError) as info:
        notifier.send(alert())
    assert (info.value.transient, info.value.code, info.value.retry_after) == (True, "HTTP503", 12)
    now[0] += 30
    notifier.send(alert())
    first, second = receiver.requests
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"]
    assert first.headers["x-fulfil-signature"] != second.headers["x-fulfil-signature"]
    assert len(receiver.deliveries) == 1 and receiver.duplicates == 0


def test_gone_is_permanent(client, receiver):
    receiver.fail_next(Response(410))
    with pytest.raises(NotifierError) as info:
        WebhookNotifier(client, [receiver.url], SECRET).send(alert())
    assert (info.value.transient, info.value.code) == (False, "GONE")
    assert "removed" in info.value.message


@pytest.mark.parametrize("status", [301, 400, 401, 403, 404, 422])
def test_other_client_errors_and_redirects_are_permanent(client, receiver, status):
    receiver.fail_next(Response(status, {"Location": "https://elsewhere.example/"}))
    with pytest.raises(NotifierError) as info:
        WebhookNotifier(client, [receiver.url], SECRET).send(alert())
    assert (info.value.transient, info.value.code) == (False, f"HTTP{status}")


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_rate_limits_and_server_errors_are_transient(client, receiver, status):
    receiver.fail_next(Response(status))
    with pytest.raises(NotifierError) as info:
        WebhookNotifier(client, [receiver.url], SECRET).send(alert())
    assert info.value.transient is True and info.value.retry_after is None


def test_timeouts_and_refused_connections_are_transient(client, receiver):
    receiver.hang_next(apply=False, seconds=1.0)
    with pytest.raises(NotifierError) as info:
        WebhookNotifier(client, [receiver.url], SECRET, timeout=0.2).send(alert())
    assert info.value.transient is True and "no answer" in info.value.message
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
    with pytest.raises(NotifierError) as info:
        WebhookNotifier(client, [closed], SECRET).send(alert())
    assert info.value.transient is True and "ConnectError" in info.value.message


def test_each_endpoint_gets_a_message_once(client, receiver):
    with FakeWebhookReceiver() as other:
        urls = [receiver.url + "/a", other.url + "/b?token=abc123"]
        notifier = WebhookNotifier(client, urls, SECRET)
        other.fail_next(Response(500))
        with pytest.raises(NotifierError) as info:
            notifier.send(alert())
        assert info.value.message.startswith("1 of 2 endpoint(s)")
        assert "abc123" not in str(info.value)  # a token in the URL stays out of errors
        notifier.send(alert())
        assert len(receiver.requests) == 1 and len(other.requests) == 2
        assert len(other.deliveries) == 1


def test_only_configured_endpoints_are_called(client, receiver):
    with FakeWebhookReceiver() as other:
        notifier = WebhookNotifier(client, [receiver.url, other.url], SECRET)
        addressed = Message.from_mapping({**alert().to_mapping(), "to": other.url})
        notifier.send(addressed)
        assert not receiver.requests and len(other.deliveries) == 1
        for to in ("https://attacker.example/steal", "customer", ""):
            stray = Message.from_mapping({**alert("k-" + to).to_mapping(), "to": to})
            with pytest.raises(NotifierError) as info:
                notifier.send(stray)
            assert (info.value.transient, info.value.code) == (False, "RECIPIENT")
        assert len(receiver.requests) + len(other.requests) == 1


def test_registration_schema_and_factory(client, receiver, tmp_path, monkeypatch):
    pm = pluggy.PluginManager("fulfil")
    pm.add_hookspecs(hookspecs)
    pm.register(webhook)
    pm.check_pending()
    registered: list[NotifierPlugin] = []
    pm.hook.fulfil_register_notifiers(register=registered.append)
    (plugin,) = registered
    assert (plugin.name, plugin.channel.value) == ("webhook", "webhook") and plugin.description
    schema = plugin.settings_schema
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["additionalProperties"] is False
    assert all(p.get("description") for p in schema["properties"].values())
    valid = jsonschema.Draft202012Validator(schema)
    base = {"urls": ["https://shop.example/hooks"], "secret": "env:WEBHOOK_SECRET"}
    assert not list(valid.iter_errors(base))
    assert list(valid.iter_errors({"urls": [], "secret": "x"}))
    assert list(valid.iter_errors({"urls": ["ftp://x"], "secret": "x"}))
    assert list(valid.iter_errors({"urls": base["urls"]}))
    assert list(valid.iter_errors({**base, "url": "https://x"}))

    monkeypatch.setenv("WEBHOOK_SECRET", SECRET)
    settings = resolve_secrets({**base, "urls": [receiver.url]}, "notifiers.webhook.settings")
    built = plugin.factory(settings, PluginContext(client=client, data_dir=tmp_path))
    assert SECRET not in repr(built)
    built.send(alert())
    assert len(receiver.deliveries) == 1 and not receiver.rejected


def test_new_order_webhook_reaches_the_receiver_once(make_engine, receiver, monkeypatch):
    monkeypatch.setenv("WEBHOOK_SECRET", SECRET)
    engine = make_engine(
        {
            "notifiers": {
                "webhook": {
                    "enabled": True,
                    "settings": {
                        "urls": [receiver.url + "/orders"],
                        "secret": "env:WEBHOOK_SECRET",
                    },
                }
            },
            "notifications": {"channels": {"merchant_new_order": ["email", "push", "webhook"]}},
        }
    )
    engine.place([Order.from_mapping(order_data(1301, locale="en"))])
    receiver.fail_next(Response(502))
    with Worker(engine, backoff=lambda *a, **k: 0) as worker:
        worker.run()
        worker.run()
    assert not receiver.rejected
    ((key, request),) = receiver.deliveries.items()
    assert key == "ord_1301:v0:merchant_new_order:merchant:webhook"
    assert request.headers["x-fulfil-event"] == "merchant_new_order"
    body = json.loads(request.body)
    assert body["order_id"] == "ord_1301" and "1301" in body["message"]["subject"]
    assert receiver.duplicates == 0 and len(receiver.requests) == 2  # the 502, then it
