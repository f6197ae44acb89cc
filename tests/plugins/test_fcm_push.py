"""The FCM v1 push notifier against a loopback fake of FCM and Google's token endpoint.

Contracts followed:

- Send: ``POST https://fcm.googleapis.com/v1/projects/{project_id}/messages:send`` with
  ``{"message": {"token", "notification": {"title", "body"}, "data": {string: string}}}``,
  answer ``{"name": "projects/.../messages/..."}``:
  https://firebase.google.com/docs/reference/fcm/rest/v1/projects.messages/send and
  https://firebase.google.com/docs/reference/fcm/rest/v1/projects.messages
- Errors ``{"error": {"code", "message", "status", "details": [{"@type":
  "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode"}]}}`` and what each
  code means (UNREGISTERED 404, INVALID_ARGUMENT 400, QUOTA_EXCEEDED 429, UNAVAILABLE 503,
  INTERNAL 500, THIRD_PARTY_AUTH_ERROR 401; retry 429/5xx honouring ``Retry-After``):
  https://firebase.google.com/docs/reference/fcm/rest/v1/ErrorCode and
  https://firebase.google.com/docs/cloud-messaging/error-codes
- Authorisation: an OAuth 2.0 token for the scope
  ``https://www.googleapis.com/auth/firebase.messaging`` from a service account, by an RS256
  JWT (``iss``, ``scope``, ``aud`` = token_uri, ``iat``, ``exp`` <= 1 h) posted with
  ``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer``; answer ``{"access_token",
  "expires_in", "token_type"}``:
  https://developers.google.com/identity/protocols/oauth2/service-account#httprest and
  https://firebase.google.com/docs/cloud-messaging/auth-server
- No idempotency key exists in FCM v1; ``apns-collapse-id`` (APNs) folds repeats on iOS:
  https://developer.apple.com/documentation/usernotifications/sending-notification-requests-to-apns

The RSA key is generated here; the fake token endpoint verifies each JWT's signature with
its public half.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pluggy
import pytest
from conftest import order_data
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fulfil.core import hookspecs
from fulfil.core.context import PluginContext
from fulfil.core.errors import NotifierError
from fulfil.core.models import Order
from fulfil.core.notifiers import Message, NotifierPlugin
from fulfil.core.secrets import resolve_secrets
from fulfil.core.worker import Worker
from fulfil.plugins.notifiers import fcm_push
from fulfil.plugins.notifiers.fcm_push import (
    DeadTokens,
    FcmPushNotifier,
    SentLedger,
    ServiceAccount,
)
from fulfil.testing.fakes.fcm import FakeFcm, fcm_error
from fulfil.testing.server import Response

EMAIL = "fulfil-push@demo-project.iam.gserviceaccount.com"
DEVICE = "dQw4w9WgXcQ:APA91bH-merchant-phone"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def service_account(key: rsa.RSAPrivateKey, token_uri: str) -> dict[str, Any]:
    return {
        "type": "service_account",
        "project_id": "demo-project",
        "private_key_id": "key-1",
        "private_key": pem(key),
        "client_email": EMAIL,
        "client_id": "1234567890",
        "token_uri": token_uri,
    }


@pytest.fixture
def fcm(key) -> Iterator[FakeFcm]:
    with FakeFcm(key.public_key(), EMAIL) as fake:
        yield fake


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=1.0) as client:
        yield client


def push(key: str = "o1:v1:merchant_new_order:merchant:push", to: str = DEVICE) -> Message:
    return Message(
        dedupe_key=key,
        channel="push",
        audience="merchant",
        event="merchant_new_order",
        order_id="o1",
        to=to,
        subject="[Maison Dupont], new order #1001",
        text="1 item, 20.00 EUR, to FR",
        data={"number": 1001},
    )


def notifier(
    client: httpx.Client, fcm: FakeFcm, key: rsa.RSAPrivateKey, tmp_path: Path, **options: Any
) -> FcmPushNotifier:
    account = ServiceAccount.from_json(json.dumps(service_account(key, fcm.token_uri)), "test")
    options.setdefault("dead_tokens", DeadTokens(tmp_path / "dead.json"))
    options.setdefault("ledger", SentLedger(tmp_path / "sent.sqlite"))
    return FcmPushNotifier(client, lambda: account, base_url=fcm.url, **options)


def test_sends_a_v1_message_with_a_bearer_token_from_a_signed_jwt(client, fcm, key, tmp_path):
    receipt = notifier(client, fcm, key, tmp_path).send(push())
    token_request, send_request = fcm.requests
    assert token_request.path == "/token"
    assert token_request.form()["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
    (claims,) = fcm.assertions  # verified with the public key by the fake
    assert claims["iss"] == EMAIL and claims["aud"] == fcm.token_uri
    assert claims["scope"] == "https://www.googleapis.com/auth/firebase.messaging"
    assert claims["exp"] - claims["iat"] == 3600

    assert send_request.path == "/v1/projects/demo-project/messages:send"
    assert send_request.headers["authorization"] == f"Bearer {fcm.access_tokens[0]}"
    message = send_request.json()["message"]
    assert message["token"] == DEVICE
    assert message["notification"] == {
        "title": "[Maison Dupont], new order #1001",
        "body": "1 item, 20.00 EUR, to FR",
    }
    assert message["data"] == {
        "number": "1001",
        "dedupe_key": "o1:v1:merchant_new_order:merchant:push",
        "order_id": "o1",
        "event": "merchant_new_order",
    }
    assert len(message["apns"]["headers"]["apns-collapse-id"]) == 32
    assert receipt.provider_id == fcm.sent[0]["name"]


def test_the_access_token_is_cached_then_refreshed_before_it_expires(client, fcm, key, tmp_path):
    fcm.expires_in = 10  # refreshed a tenth of its life early: at 9 s
    clock = Clock()
    n = notifier(client, fcm, key, tmp_path, clock=clock)
    n.send(push("k1"))
    clock.now += 8.5
    n.send(push("k2"))
    assert len(fcm.access_tokens) == 1
    clock.now += 1.0
    n.send(push("k3"))
    assert len(fcm.access_tokens) == 2
    first, second = fcm.access_tokens
    used = [r.headers["authorization"] for r in fcm.requests_to("POST", "/v1/")]
    assert used == [f"Bearer {first}", f"Bearer {first}", f"Bearer {second}"]


def test_concurrent_sends_share_one_token_fetch(client, fcm, key, tmp_path):
    n = notifier(client, fcm, key, tmp_path)
    errors: list[BaseException] = []

    def send(i: int) -> None:
        try:
            n.send(push(f"k{i}"))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(fcm.sent) == 8
    assert len(fcm.access_tokens) == 1


def test_unregistered_token_is_marked_dead_and_never_sent_again(client, fcm, key, tmp_path):
    fcm.unregistered.add(DEVICE)
    n = notifier(client, fcm, key, tmp_path)
    with pytest.raises(NotifierError) as info:
        n.send(push())
    assert (info.value.transient, info.value.code) == (False, "UNREGISTERED")
    dead = json.loads((tmp_path / "dead.json").read_text())["dead_tokens"]
    assert dead[DEVICE]["reason"] == "UNREGISTERED"
    sends = len(fcm.requests_to("POST", "/v1/"))
    for fresh in (n, notifier(client, fcm, key, tmp_path)):  # this worker and another one
        with pytest.raises(NotifierError) as again:
            fresh.send(push("o2:v1:merchant_new_order:merchant:push"))
        assert again.value.code == "UNREGISTERED" and again.value.transient is False
    assert len(fcm.requests_to("POST", "/v1/")) == sends


def test_an_invalid_registration_token_is_dead_too(client, fcm, key, tmp_path):
    fcm.invalid.add(DEVICE)
    with pytest.raises(NotifierError) as info:
        notifier(client, fcm, key, tmp_path).send(push())
    assert (info.value.transient, info.value.code) == (False, "INVALID_TOKEN")
    assert DEVICE in DeadTokens(tmp_path / "dead.json")


def test_a_bad_payload_is_permanent_but_the_token_stays_alive(client, fcm, key, tmp_path):
    n = notifier(client, fcm, key, tmp_path)
    n.tokens.get()  # so the scripted fault meets the send, not the token request
    where = "message.data[0].value"
    fcm.fail_next(
        fcm_error(400, "INVALID_ARGUMENT", f"Invalid value at '{where}'", fields=[(where, "x")])
    )
    with pytest.raises(NotifierError) as info:
        n.send(push())
    assert (info.value.transient, info.value.code) == (False, "INVALID_ARGUMENT")
    assert DEVICE not in n.dead_tokens
    assert n.send(push()).provider_id


@pytest.mark.parametrize(
    ("status", "canonical", "code", "retry_after"),
    [
        (429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", "30"),
        (503, "UNAVAILABLE", "UNAVAILABLE", "5"),
        (500, "INTERNAL", "INTERNAL", None),
    ],
)
def test_quota_and_server_errors_are_transient(
    client, fcm, key, tmp_path, status, canonical, code, retry_after
):
    n = notifier(client, fcm, key, tmp_path)
    n.tokens.get()
    headers = {"Retry-After": retry_after} if retry_after else None
    fcm.fail_next(fcm_error(status, canonical, "try later", code, headers=headers))
    with pytest.raises(NotifierError) as info:
        n.send(push())
    assert (info.value.transient, info.value.code) == (True, code)
    assert info.value.retry_after == (float(retry_after) if retry_after else None)
    assert DEVICE not in n.dead_tokens
    n.send(push())
    assert len(fcm.sent) == 1


def test_a_refused_access_token_is_replaced_once(client, fcm, key, tmp_path):
    n = notifier(client, fcm, key, tmp_path)
    n.send(push("k1"))
    fcm.revoke_access_tokens()  # e.g. the key was rotated server side
    n.send(push("k2"))
    assert len(fcm.access_tokens) == 2 and len(fcm.sent) == 2


def test_a_second_401_is_permanent(client, fcm, key, tmp_path):
    n = notifier(client, fcm, key, tmp_path)
    fcm.refuse_access_tokens = True  # e.g. the service account lost its FCM role
    with pytest.raises(NotifierError) as info:
        n.send(push())
    assert (info.value.transient, info.value.code) == (False, "UNAUTHENTICATED")
    assert len(fcm.access_tokens) == 2  # refreshed once, not more
    assert len(fcm.requests_to("POST", "/v1/")) == 2


def test_a_token_endpoint_error_in_googles_shape_keeps_its_status(client, fcm, key, tmp_path):
    fcm.fail_next(fcm_error(401, "UNAUTHENTICATED", "Request had invalid credentials."))
    with pytest.raises(NotifierError) as info:
        notifier(client, fcm, key, tmp_path).send(push())
    assert (info.value.transient, info.value.code) == (False, "UNAUTHENTICATED")
    assert "Request had invalid credentials." in info.value.message


def test_third_party_auth_error_is_permanent_without_refresh(client, fcm, key, tmp_path):
    n = notifier(client, fcm, key, tmp_path)
    n.tokens.get()
    fcm.fail_next(fcm_error(401, "UNAUTHENTICATED", "APNs auth failed", "THIRD_PARTY_AUTH_ERROR"))
    with pytest.raises(NotifierError) as info:
        n.send(push())
    assert (info.value.transient, info.value.code) == (False, "THIRD_PARTY_AUTH_ERROR")
    assert len(fcm.requests) == 2  # token + one send


def test_a_key_the_token_endpoint_does_not_know_is_permanent(client, fcm, key, tmp_path):
    fcm.public_key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    with pytest.raises(NotifierError) as info:
        notifier(client, fcm, key, tmp_path).send(push())
    assert (info.value.transient, info.value.code) == (False, "invalid_grant")
    assert "Invalid JWT Signature" in info.value.message
    assert not fcm.requests_to("POST", "/v1/")


def test_a_token_endpoint_outage_is_transient(client, fcm, key, tmp_path):
    fcm.fail_next(Response.json(503, {"error": "temporarily_unavailable"}))
    with pytest.raises(NotifierError) as info:
        notifier(client, fcm, key, tmp_path).send(push())
    assert info.value.transient is True


def test_merchant_push_goes_to_each_live_device_once(client, fcm, key, tmp_path):
    devices = ["device-a", "device-b", "device-c"]
    fcm.unregistered.add("device-b")
    n = notifier(client, fcm, key, tmp_path, merchant_device_tokens=devices)
    receipt = n.send(push(to="merchant"))
    assert receipt.detail == "2 device(s), 1 failed for good (UNREGISTERED)"
    assert "device-b" in n.dead_tokens

    fcm.fail_next(fcm_error(503, "UNAVAILABLE", "try later", "UNAVAILABLE"))  # device-a
    with pytest.raises(NotifierError) as info:
        n.send(push("k2", to="merchant"))
    assert info.value.transient is True and info.value.message.startswith("1 of 2 device(s)")
    n.send(push("k2", to="merchant"))  # the retry: device-c already has it
    assert [m["token"] for m in fcm.sent if m["data"]["dedupe_key"] == "k2"] == [
        "device-c",
        "device-a",
    ]


def test_a_message_is_pushed_once_whichever_worker_retries_it(client, fcm, key, tmp_path):
    first = notifier(client, fcm, key, tmp_path).send(push())
    again = notifier(client, fcm, key, tmp_path).send(push())  # another process, same data
    assert again.provider_id == first.provider_id and len(fcm.sent) == 1
    assert DEVICE.encode() not in (tmp_path / "sent.sqlite").read_bytes()


def test_no_live_device_is_permanent_without_a_request(client, fcm, key, tmp_path):
    n = notifier(client, fcm, key, tmp_path, merchant_device_tokens=[])
    with pytest.raises(NotifierError) as info:
        n.send(push(to="merchant"))
    assert info.value.transient is False and not fcm.requests


def test_a_broken_key_is_a_permanent_error_that_shows_no_key(client, fcm, tmp_path, monkeypatch):
    monkeypatch.setenv("FCM_KEY", '{"client_email": "x@y", "private_key": "not-a-pem-SECRETBITS"}')
    settings = resolve_secrets({"service_account_json": "env:FCM_KEY", "project_id": "p"})
    built = fcm_push._factory(
        {**settings, "base_url": fcm.url, "token_uri": fcm.token_uri},
        PluginContext(client=client, data_dir=tmp_path),
    )
    with pytest.raises(NotifierError) as info:
        built.send(push())
    assert info.value.transient is False and info.value.code == "CREDENTIALS"
    assert "SECRETBITS" not in str(info.value) and info.value.__cause__ is None
    monkeypatch.setenv("FCM_KEY", "{not json SECRETBITS")
    settings = resolve_secrets({"service_account_json": "env:FCM_KEY"})
    built = fcm_push._factory(settings, PluginContext(client=client, data_dir=tmp_path))
    with pytest.raises(NotifierError) as info:
        built.send(push())
    assert "not JSON" in str(info.value) and "SECRETBITS" not in str(info.value)


def test_registration_schema_and_factory(client, fcm, key, tmp_path, monkeypatch):
    pm = pluggy.PluginManager("fulfil")
    pm.add_hookspecs(hookspecs)
    pm.register(fcm_push)
    pm.check_pending()
    registered: list[NotifierPlugin] = []
    pm.hook.fulfil_register_notifiers(register=registered.append)
    (plugin,) = registered
    assert (plugin.name, plugin.channel.value) == ("fcm_push", "push") and plugin.description
    schema = plugin.settings_schema
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["additionalProperties"] is False
    assert all(p.get("description") for p in schema["properties"].values())
    valid = jsonschema.Draft202012Validator(schema)
    assert not list(valid.iter_errors({"service_account_file": "key.json"}))
    assert not list(valid.iter_errors({"service_account_json": "env:FCM_KEY"}))
    assert list(valid.iter_errors({}))
    assert list(valid.iter_errors({"service_account_file": "k", "service_account_json": "j"}))
    assert list(valid.iter_errors({"service_account_file": "k", "device_tokens": []}))

    context = PluginContext(client=client, data_dir=tmp_path)
    monkeypatch.setenv("FCM_KEY", json.dumps(service_account(key, fcm.token_uri)))
    settings = resolve_secrets({"service_account_json": "env:FCM_KEY", "base_url": fcm.url})
    plugin.factory(settings, context).send(push("k1"))
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "sa.json").write_text(json.dumps(service_account(key, fcm.token_uri)))
    from_file = {"service_account_file": "keys/sa.json", "base_url": fcm.url}
    plugin.factory(from_file, context).send(push("k2"))
    assert len(fcm.sent) == 2


def test_new_order_push_reaches_the_merchant_device_once(make_engine, fcm, key, tmp_path):
    (tmp_path / "fcm-key.json").write_text(json.dumps(service_account(key, fcm.token_uri)))
    engine = make_engine(
        {
            "notifiers": {
                "push_log": {"enabled": False},
                "fcm_push": {
                    "enabled": True,
                    "settings": {
                        "service_account_file": "fcm-key.json",
                        "merchant_device_tokens": [DEVICE],
                        "base_url": fcm.url,
                    },
                },
            }
        }
    )
    engine.place([Order.from_mapping(order_data(1201, locale="fr"))])
    fcm.fail_next(fcm_error(503, "UNAVAILABLE", "try later", "UNAVAILABLE"))
    with Worker(engine, backoff=lambda *a, **k: 0) as worker:
        worker.run()
        worker.run()
    (sent,) = fcm.sent
    assert sent["token"] == DEVICE and "1201" in sent["notification"]["title"]
    assert sent["data"]["order_id"] == "ord_1201"
