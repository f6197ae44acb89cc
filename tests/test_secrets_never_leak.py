"""Credentials never leave the moment a request is built: not in logs, errors, the store,
the data folder or the command line's output.

The SMTP password, the Twilio auth token, the FCM service-account key and the webhook
secret are given as ``env:`` references with distinctive values. A pipeline runs against
loopback fakes, first with every credential refused (auth errors, dead-lettered), then
accepted behind transient 4xx/5xx faults (retried). Then everything a person or another
program could read is scanned for each value and for the encodings a request carries it in
(HTTP Basic, SMTP AUTH, the PEM's lines).

SMTP joins in when the ``smtp`` notifier registers; ``test_smtp_takes_part`` says when it
does not.
"""

from __future__ import annotations

import base64
import json
import logging
import sqlite3
import ssl
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import trustme
from click.testing import CliRunner
from conftest import order_data
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fulfil.core.cli import main
from fulfil.core.engine import Engine
from fulfil.core.models import Order
from fulfil.core.plugins import Hooks, make_plugin_manager
from fulfil.core.worker import Worker
from fulfil.testing.fakes.fcm import FakeFcm, fcm_error
from fulfil.testing.fakes.twilio import FakeTwilio
from fulfil.testing.fakes.webhook_receiver import FakeWebhookReceiver
from fulfil.testing.server import Request, Response

SMTP_PASSWORD = "smtp-pw-LEAKCHECK-5a1f0c"
SMTP_USER = "shop-mailer"
TWILIO_TOKEN = "twilio-tok-LEAKCHECK-93be7d"
WEBHOOK_SECRET = "whsec-LEAKCHECK-77d0e4"
ACCOUNT = "AC" + "5eed" * 8
SENDER = "+15005550006"
EMAIL = "push@leakcheck.iam.gserviceaccount.com"
DEVICE = "leakcheck-merchant-device"


def smtp_registered() -> bool:
    return "smtp" in Hooks(make_plugin_manager()).registry.notifiers


# --- a real SMTP server with STARTTLS and AUTH ---------------------------------------------


class Mailbox:
    """aiosmtpd handler: accepts, or answers the next scripted reply instead."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        self.script: list[str] = []
        self.password = "not-the-password"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.script:
            return self.script.pop(0)
        self.received.append(envelope.original_content)
        return "250 2.0.0 Ok: queued"

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> Any:
        from aiosmtpd.smtp import AuthResult, LoginPassword

        ok = isinstance(auth_data, LoginPassword) and auth_data == (
            SMTP_USER.encode(),
            self.password.encode(),
        )
        return AuthResult(success=ok, handled=False)


@contextmanager
def smtp_server(mailbox: Mailbox, tls: ssl.SSLContext) -> Iterator[Any]:
    from aiosmtpd.controller import Controller

    class Loopback(Controller):
        def _trigger_server(self) -> None:  # learn the ephemeral port
            assert self.server is not None
            self.port = self.server.sockets[0].getsockname()[1]
            super()._trigger_server()

    controller = Loopback(
        mailbox,
        hostname="127.0.0.1",
        port=0,
        server_hostname="mx.test",
        tls_context=tls,
        require_starttls=True,
        auth_required=True,
        auth_require_tls=True,
        authenticator=mailbox.authenticate,
    )
    controller.start()
    try:
        yield controller
    finally:
        controller.stop()


# --- the secrets and how they would show ---------------------------------------------------


def pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def needles(key_pem: str, with_smtp: bool) -> dict[str, str]:
    """Each secret and the forms it takes on the wire, by a name to report."""
    found = {
        "twilio token": TWILIO_TOKEN,
        "twilio basic auth": base64.b64encode(f"{ACCOUNT}:{TWILIO_TOKEN}".encode()).decode(),
        "webhook secret": WEBHOOK_SECRET,
        "fcm private key": key_pem.strip(),
        "fcm private key (json)": json.dumps(key_pem)[1:80],
    }
    body = [line for line in key_pem.splitlines() if not line.startswith("-----")]
    found.update(
        {f"fcm private key line {i}": line for i, line in enumerate(body) if len(line) > 40}
    )
    if with_smtp:
        found["smtp password"] = SMTP_PASSWORD
        found["smtp password (AUTH LOGIN)"] = base64.b64encode(SMTP_PASSWORD.encode()).decode()
        plain = f"\0{SMTP_USER}\0{SMTP_PASSWORD}".encode()
        found["smtp password (AUTH PLAIN)"] = base64.b64encode(plain).decode()
    return found


def leaks(where: str, text: str, secrets: dict[str, str]) -> list[str]:
    return [f"{name} in {where}" for name, value in secrets.items() if value in text]


# --- the test --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def test_no_secret_reaches_logs_errors_store_files_or_cli(
    make_engine: Callable[..., Engine],
    write_config: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    ca: trustme.CA,
) -> None:
    with_smtp = smtp_registered()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    wrong_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_pem = pem(key)
    secrets = needles(key_pem, with_smtp)
    caplog.set_level(logging.DEBUG)

    raised: list[BaseException] = []
    original_failed = Worker._failed

    def failed(self: Worker, row: Any, error: BaseException) -> None:
        raised.append(error)
        original_failed(self, row, error)

    monkeypatch.setattr(Worker, "_failed", failed)

    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(tls)
    cafile = tmp_path / "test-ca.pem"
    ca.cert_pem.write_to_path(str(cafile))
    mailbox = Mailbox()

    with (
        FakeTwilio(ACCOUNT, "the-token-twilio-expects") as twilio,
        FakeFcm(wrong_key.public_key(), EMAIL) as fcm,
        FakeWebhookReceiver(lambda r: signed_with("some-other-secret", r)) as receiver,
        smtp_server(mailbox, tls) as smtp,
    ):
        account = {
            "type": "service_account",
            "project_id": "demo-project",
            "private_key_id": "k1",
            "private_key": key_pem,
            "client_email": EMAIL,
            "token_uri": fcm.token_uri,
        }
        monkeypatch.setenv("FCM_SERVICE_ACCOUNT", json.dumps(account))
        monkeypatch.setenv("TWILIO_AUTH_TOKEN", TWILIO_TOKEN)
        monkeypatch.setenv("WEBHOOK_SECRET", WEBHOOK_SECRET)
        monkeypatch.setenv("SMTP_PASSWORD", SMTP_PASSWORD)
        notifiers: dict[str, Any] = {
            "sms_log": {"enabled": False},
            "push_log": {"enabled": False},
            "twilio_sms": {
                "enabled": True,
                "settings": {
                    "account_sid": ACCOUNT,
                    "auth_token": "env:TWILIO_AUTH_TOKEN",
                    "from": SENDER,
                    "base_url": twilio.url,
                },
            },
            "fcm_push": {
                "enabled": True,
                "settings": {
                    "service_account_json": "env:FCM_SERVICE_ACCOUNT",
                    "merchant_device_tokens": [DEVICE],
                    "base_url": fcm.url,
                },
            },
            "webhook": {
                "enabled": True,
                "settings": {"urls": [receiver.url + "/hook"], "secret": "env:WEBHOOK_SECRET"},
            },
        }
        if with_smtp:
            notifiers["maildir"] = {"enabled": False}
            notifiers["smtp"] = {
                "enabled": True,
                "settings": {
                    "host": "127.0.0.1",
                    "port": smtp.port,
                    "security": "starttls",
                    "username": SMTP_USER,
                    "password": "env:SMTP_PASSWORD",
                    "cafile": str(cafile),
                    "from": "Demo Store <shop@demo-store.example>",
                },
            }
        overrides = {
            "notifiers": notifiers,
            "notifications": {
                "channels": {
                    "order_placed": ["email", "sms"],
                    "merchant_new_order": ["email", "push", "webhook"],
                }
            },
        }
        engine = make_engine(overrides)

        # 1. Every credential refused: auth errors, dead-lettered at once.
        engine.place([Order.from_mapping(order_data(2001, phone="+33612345678"))])
        with Worker(engine, backoff=lambda *a, **k: 0) as worker:
            worker.run()
        with engine.store.transaction() as tx:
            dead = {r.payload["notifier"]: r.last_error for r in tx.outbox_rows(statuses=["dead"])}
        expected_dead = {"twilio_sms", "fcm_push", "webhook"} | ({"smtp"} if with_smtp else set())
        assert expected_dead <= set(dead), dead
        assert "20003" in dead["twilio_sms"] and "invalid_grant" in dead["fcm_push"]

        # 2. The right credentials, behind transient faults: retried, then delivered.
        twilio.auth_token = TWILIO_TOKEN
        fcm.public_key = key.public_key()
        receiver.verify = lambda r: signed_with(WEBHOOK_SECRET, r)
        mailbox.password = SMTP_PASSWORD
        mailbox.script.append("451 4.3.0 Try again later")
        twilio.fail_next(FakeTwilio.error(503, 20503, "Service Unavailable"))
        fcm.fail_next(fcm_error(503, "UNAVAILABLE", "try later", "UNAVAILABLE"))
        receiver.fail_next(Response(500))
        engine.place([Order.from_mapping(order_data(2002, phone="+33612345678"))])
        with Worker(engine, backoff=lambda *a, **k: 0) as worker:
            stats = worker.run()
        assert stats.counts["retries"] >= 3 and not stats.counts["messages_failed"]
        assert len(twilio.messages) == 1 and len(fcm.sent) == 1
        assert len(receiver.deliveries) == 1
        assert not with_smtp or len(mailbox.received) == 2
        engine.close()  # QUIT pooled SMTP connections while the server still listens

        # 3. What the command line shows.
        config = write_config(overrides, name="cli.toml")
        runner = CliRunner()
        cli_output = ""
        for args in (
            ["outbox", "list"],
            ["outbox", "list", "--failed"],
            ["orders", "show", "ord_2001"],
            ["orders", "show", "ord_2001", "--json"],
            ["orders", "show", "ord_2002"],
        ):
            result = runner.invoke(main, ["--config", str(config), *args], catch_exceptions=False)
            assert result.exit_code == 0, result.output
            cli_output += result.output

    found: list[str] = []
    for record in caplog.records:
        if record.name.startswith("mail.log"):  # the fake SMTP server's own log, not fulfil's
            continue
        text = f"{record.getMessage()} {record.args!r} {record.exc_text or ''}"
        if record.exc_info:
            text += "".join(traceback.format_exception(*record.exc_info))
        found += leaks(f"log record {record.name}", text, secrets)
    for error in raised:
        text = f"{error} {error!r} " + "".join(traceback.format_exception(error))
        found += leaks(f"exception {type(error).__name__}", text, secrets)
    assert raised, "the pipeline raised nothing: the failures were not exercised"

    with sqlite3.connect(tmp_path / "fulfil.db") as conn:
        dump = "\n".join(conn.iterdump())
    conn.close()
    assert "ord_2001" in dump
    found += leaks("the store", dump, secrets)

    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "fulfil.db" for p in files)
    for path in files:
        found += leaks(
            f"file {path.relative_to(tmp_path)}", path.read_bytes().decode("latin-1"), secrets
        )

    assert "ord_2001" in cli_output
    found += leaks("the CLI output", cli_output, secrets)
    assert not found, found


def signed_with(secret: str, request: Request) -> str | None:
    """The receiver's check (docs/notifiers.md), written independently."""
    import hashlib
    import hmac

    stamp = request.headers.get("x-fulfil-timestamp", "")
    mac = hmac.new(secret.encode(), stamp.encode() + b"." + request.body, hashlib.sha256)
    ok = hmac.compare_digest("v1=" + mac.hexdigest(), request.headers.get("x-fulfil-signature", ""))
    return None if ok else "signature mismatch"


def test_smtp_takes_part() -> None:
    """The leak check covers the SMTP password only when the smtp notifier registers."""
    if not smtp_registered():
        pytest.skip("the smtp notifier is not registered: its password is not leak-checked")
