"""The Twilio SMS notifier against a loopback fake that answers as Twilio documents.

Contracts followed:

- Create a Message: ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json``, form fields
  ``To``, ``From`` or ``MessagingServiceSid``, ``Body``, ``StatusCallback``; 201 with the
  Message resource (``sid``, ``status``...):
  https://www.twilio.com/docs/messaging/api/message-resource#create-a-message-resource
- HTTP Basic with the Account SID and Auth Token, or an API key SID and secret:
  https://www.twilio.com/docs/usage/api#authenticate-with-http
- Error body ``{"code", "message", "more_info", "status"}``:
  https://www.twilio.com/docs/usage/twilios-response
- Error codes: https://www.twilio.com/docs/api/errors/21211 (invalid To),
  https://www.twilio.com/docs/api/errors/21610 (unsubscribed, STOP),
  https://www.twilio.com/docs/api/errors/21614 (not a mobile number),
  https://www.twilio.com/docs/api/errors/20429 (too many requests, safe to retry),
  https://www.twilio.com/docs/api/errors/20003 (authentication)
- Magic test numbers: https://www.twilio.com/docs/iam/test-credentials
- Idempotency: the Messages API documents no idempotency key for requests we send;
  ``I-Twilio-Idempotency-Token`` is a header Twilio *sends* on its webhooks
  (https://www.twilio.com/docs/usage/webhooks/webhooks-connection-overrides). The notifier
  therefore keeps its own ledger of accepted dedupe keys.
"""

from __future__ import annotations

import base64
import socket
from collections.abc import Iterator
from pathlib import Path

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
from fulfil.core.states import FulfilmentStatus
from fulfil.core.worker import Worker
from fulfil.plugins.notifiers import twilio_sms
from fulfil.plugins.notifiers.twilio_sms import TwilioSmsNotifier
from fulfil.testing.fakes.twilio import MAGIC_TO, FakeTwilio

ACCOUNT = "AC" + "0123456789abcdef" * 2
TOKEN = "twilio-test-auth-token"
SENDER = "+15005550006"
CUSTOMER = "+33612345678"


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio(ACCOUNT, TOKEN) as fake:
        yield fake


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=1.0) as client:
        yield client


def sms(key: str = "o1:v3:ready_for_pickup:customer:sms", to: str = CUSTOMER) -> Message:
    return Message(
        dedupe_key=key,
        channel="sms",
        audience="customer",
        event="ready_for_pickup",
        order_id="o1",
        to=to,
        subject="Votre commande n° 1001 est prête",
        text="Maison Dupont : votre commande n° 1001 est prête à être retirée.",
    )


def notifier(
    client: httpx.Client, fake: FakeTwilio, tmp_path: Path, **overrides: object
) -> TwilioSmsNotifier:
    options: dict[str, object] = {
        "account_sid": ACCOUNT,
        "auth_token": TOKEN,
        "sender": SENDER,
        "base_url": fake.url,
        "ledger": tmp_path / "twilio-sent.sqlite",
        **overrides,
    }
    return TwilioSmsNotifier(client, **options)  # type: ignore[arg-type]


def test_sends_the_documented_form_with_basic_auth(client, twilio, tmp_path):
    receipt = notifier(
        client, twilio, tmp_path, status_callback="https://shop.example/twilio/status"
    ).send(sms())
    (request,) = twilio.requests
    assert request.path == f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    expected = base64.b64encode(f"{ACCOUNT}:{TOKEN}".encode()).decode()
    assert request.headers["authorization"] == f"Basic {expected}"
    assert request.form() == {
        "To": [CUSTOMER],
        "From": [SENDER],
        "Body": ["Maison Dupont : votre commande n° 1001 est prête à être retirée."],
        "StatusCallback": ["https://shop.example/twilio/status"],
    }
    (sent,) = twilio.messages
    assert receipt.provider_id == sent["sid"] and receipt.provider_id.startswith("SM")
    assert receipt.detail == "queued"


def test_messaging_service_and_api_key(client, twilio, tmp_path):
    key_sid, secret = "SK" + "fedcba9876543210" * 2, "api-key-secret"
    twilio.api_keys[key_sid] = secret
    service = "MG" + "00112233445566778899aabbccddeeff"
    n = notifier(
        client,
        twilio,
        tmp_path,
        auth_token=None,
        api_key_sid=key_sid,
        api_key_secret=secret,
        sender=None,
        messaging_service_sid=service,
    )
    assert n.send(sms()).detail == "accepted"
    request = twilio.requests[0]
    assert request.form()["MessagingServiceSid"] == [service] and "From" not in request.form()
    assert (
        request.headers["authorization"]
        == "Basic " + base64.b64encode(f"{key_sid}:{secret}".encode()).decode()
    )


@pytest.mark.parametrize(
    ("to", "code"),
    [(to, code) for to, code in MAGIC_TO.items() if code in (21211, 21610, 21614)],
)
def test_recipient_errors_are_permanent_with_twilios_code(client, twilio, tmp_path, to, code):
    with pytest.raises(NotifierError) as info:
        notifier(client, twilio, tmp_path).send(sms(to=to))
    error = info.value
    assert error.transient is False and error.notifier == "twilio_sms"
    assert error.code == str(code)
    assert error.message.startswith("To: ")
    assert f"https://www.twilio.com/docs/errors/{code}" in error.message
    assert not twilio.messages


def test_unsubscribed_recipient_added_at_run_time(client, twilio, tmp_path):
    twilio.reject(CUSTOMER, 21610)
    with pytest.raises(NotifierError) as info:
        notifier(client, twilio, tmp_path).send(sms())
    assert (info.value.code, info.value.transient) == ("21610", False)


@pytest.mark.parametrize("to", ["", "0612345678", "+33 6 12", "+336123", "+99912345678"])
def test_numbers_are_checked_before_any_request(client, twilio, tmp_path, to):
    with pytest.raises(NotifierError) as info:
        notifier(client, twilio, tmp_path).send(sms(to=to))
    assert info.value.transient is False and info.value.code == "E164"
    assert info.value.message == "To: not a valid E.164 phone number"
    assert not twilio.requests


def test_a_bad_sender_number_names_from(client, twilio, tmp_path):
    with pytest.raises(NotifierError) as info:
        notifier(client, twilio, tmp_path, sender="+1 000").send(sms())
    assert info.value.message.startswith("From:") and not twilio.requests


def test_an_alphanumeric_sender_id_is_sent_as_is(client, twilio, tmp_path):
    twilio.senders.add("MaisonD")
    notifier(client, twilio, tmp_path, sender="MaisonD").send(sms())
    assert twilio.requests[0].form()["From"] == ["MaisonD"]


def test_too_many_requests_is_transient_and_keeps_retry_after(client, twilio, tmp_path):
    twilio.fail_next(FakeTwilio.error(429, 20429, "Too Many Requests", {"Retry-After": "7"}))
    n = notifier(client, twilio, tmp_path)
    with pytest.raises(NotifierError) as info:
        n.send(sms())
    assert (info.value.transient, info.value.code) == (True, "20429")
    assert info.value.retry_after == 7.0
    assert n.send(sms()).provider_id  # the retry goes through
    assert len(twilio.messages) == 1


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_transient(client, twilio, tmp_path, status):
    twilio.fail_next(FakeTwilio.error(status, 20500, "Service Unavailable"))
    with pytest.raises(NotifierError) as info:
        notifier(client, twilio, tmp_path).send(sms())
    assert info.value.transient is True and not twilio.messages


def test_a_non_json_gateway_error_is_transient(client, twilio, tmp_path):
    from fulfil.testing.server import Response

    twilio.fail_next(Response(502, {"Content-Type": "text/html"}, b"<html>Bad gateway</html>"))
    with pytest.raises(NotifierError) as info:
        notifier(client, twilio, tmp_path).send(sms())
    assert (info.value.transient, info.value.code) == (True, "HTTP502")


def test_a_timeout_is_transient(client, twilio, tmp_path):
    twilio.hang_next(apply=False, seconds=1.0)
    with pytest.raises(NotifierError) as info:
        notifier(client, twilio, tmp_path, timeout=0.2).send(sms())
    assert info.value.transient is True and "may have accepted" in info.value.message


def test_after_a_timeout_the_retry_finds_the_message_twilio_accepted(client, twilio, tmp_path):
    twilio.hang_next(apply=True, seconds=1.0)  # Twilio creates it; the answer never comes
    with pytest.raises(NotifierError):
        notifier(client, twilio, tmp_path, timeout=0.2).send(sms())
    receipt = notifier(client, twilio, tmp_path).send(sms())  # another worker's retry
    (created,) = twilio.messages
    assert receipt.provider_id == created["sid"]
    assert receipt.detail == "found after an unanswered attempt"
    lookup = twilio.requests[-1]
    assert lookup.method == "GET" and lookup.query["To"] == [CUSTOMER]
    assert lookup.query["From"] == [SENDER]
    assert notifier(client, twilio, tmp_path).send(sms()).detail == "already sent"
    assert len(twilio.requests) == 2  # the POST and the lookup; nothing after


def test_after_a_timeout_before_receipt_the_retry_sends_it(client, twilio, tmp_path):
    twilio.hang_next(apply=False, seconds=1.0)  # lost before Twilio did anything
    with pytest.raises(NotifierError):
        notifier(client, twilio, tmp_path, timeout=0.2).send(sms())
    receipt = notifier(client, twilio, tmp_path).send(sms())
    assert [r.method for r in twilio.requests] == ["POST", "GET", "POST"]
    (created,) = twilio.messages
    assert receipt.provider_id == created["sid"] and receipt.detail == "queued"


def test_a_refused_request_needs_no_lookup(client, twilio, tmp_path):
    twilio.fail_next(FakeTwilio.error(429, 20429, "Too Many Requests"))
    n = notifier(client, twilio, tmp_path)
    with pytest.raises(NotifierError):
        n.send(sms())
    n.send(sms())
    assert [r.method for r in twilio.requests] == ["POST", "POST"]


def test_an_unreachable_api_is_transient(client, tmp_path):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    n = TwilioSmsNotifier(
        client, account_sid=ACCOUNT, auth_token=TOKEN, sender=SENDER,
        base_url=f"http://127.0.0.1:{port}",
    )  # fmt: skip
    with pytest.raises(NotifierError) as info:
        n.send(sms())
    assert info.value.transient is True and "ConnectError" in info.value.message


def test_wrong_credentials_are_permanent_and_not_repeated(client, twilio, tmp_path):
    with pytest.raises(NotifierError) as info:
        notifier(client, twilio, tmp_path, auth_token="wrong-token-value").send(sms())
    error = info.value
    assert (error.transient, error.code) == (False, "20003")
    assert "authentication failed" in error.message
    assert "wrong-token-value" not in str(error) and "wrong-token-value" not in repr(error)


def test_a_dedupe_key_is_sent_once_even_by_another_process(client, twilio, tmp_path):
    first = notifier(client, twilio, tmp_path).send(sms())
    again = notifier(client, twilio, tmp_path).send(sms())  # a new worker, same data folder
    assert again.provider_id == first.provider_id and again.detail == "already sent"
    notifier(client, twilio, tmp_path).send(sms("o2:v1:ready_for_pickup:customer:sms"))
    assert len(twilio.messages) == 2 and len(twilio.requests) == 2


def test_registration_schema_and_factory(client, twilio, tmp_path, monkeypatch):
    pm = pluggy.PluginManager("fulfil")
    pm.add_hookspecs(hookspecs)
    pm.register(twilio_sms)
    pm.check_pending()
    registered: list[NotifierPlugin] = []
    pm.hook.fulfil_register_notifiers(register=registered.append)
    (plugin,) = registered
    assert (plugin.name, plugin.channel.value) == ("twilio_sms", "sms") and plugin.description
    schema = plugin.settings_schema
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["additionalProperties"] is False
    assert all(p.get("description") for p in schema["properties"].values())
    valid = jsonschema.Draft202012Validator(schema)
    base = {"account_sid": ACCOUNT, "auth_token": "env:TWILIO_AUTH_TOKEN", "from": SENDER}
    assert not list(valid.iter_errors(base))
    assert list(valid.iter_errors({**base, "token": "x"}))  # unknown field
    assert list(valid.iter_errors({k: v for k, v in base.items() if k != "auth_token"}))
    assert list(valid.iter_errors({k: v for k, v in base.items() if k != "from"}))
    assert list(valid.iter_errors({**base, "api_key_sid": "SK" + "0" * 32, "api_key_secret": "x"}))

    monkeypatch.setenv("TWILIO_AUTH_TOKEN", TOKEN)
    settings = resolve_secrets({**base, "base_url": twilio.url}, "notifiers.twilio_sms.settings")
    built = plugin.factory(settings, PluginContext(client=client, data_dir=tmp_path))
    assert TOKEN not in repr(built)
    built.send(sms())
    assert len(twilio.messages) == 1
    assert (tmp_path / "twilio-sms-sent.sqlite").exists()


def test_ready_for_pickup_sms_reaches_twilio_once(make_engine, twilio, monkeypatch):
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", TOKEN)
    engine = make_engine(
        {
            "notifiers": {
                "sms_log": {"enabled": False},
                "twilio_sms": {
                    "enabled": True,
                    "settings": {
                        "account_sid": ACCOUNT,
                        "auth_token": "env:TWILIO_AUTH_TOKEN",
                        "from": SENDER,
                        "base_url": twilio.url,
                    },
                },
            }
        }
    )
    data = order_data(1101, fulfilment="pickup", locale="fr", phone=CUSTOMER)
    engine.place([Order.from_mapping(data)])
    engine.record_payment(["ord_1101"], "paid")
    twilio.fail_next(FakeTwilio.error(503, 20503, "Service Unavailable"))  # retried
    with Worker(engine, backoff=lambda *a, **k: 0) as worker:
        worker.run()
        engine.mark(["ord_1101"], FulfilmentStatus.READY_FOR_PICKUP)
        worker.run()
        worker.run()
    (sent,) = twilio.messages
    assert sent["to"] == CUSTOMER and sent["from"] == SENDER
    assert "1101" in sent["body"]
    with engine.store.transaction() as tx:
        rows = [r for r in tx.outbox_rows() if r.kind == "notification"]
    sms_rows = [r for r in rows if r.payload["message"]["channel"] == "sms"]
    assert [(r.status, r.payload["notifier"]) for r in sms_rows] == [("done", "twilio_sms")]
