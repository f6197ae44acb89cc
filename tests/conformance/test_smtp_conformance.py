"""The SMTP notifier passes the notifier conformance suite against a real SMTP server
(aiosmtpd on 127.0.0.1, STARTTLS and AUTH required, a test CA from trustme).

SMTP has no idempotency: a relay that received a message but whose acknowledgement was
lost gets it again on retry, so the plugin does not claim idempotency. Its faults are
SMTP's: a 4xx reply (the relay's rate limit), a refused connection and a lost
acknowledgement.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections import deque
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from fulfil.plugins.notifiers import smtp
from fulfil.testing.conformance import NotifierConformance, secret_value

USER = "shop-mailer"


class Mailbox:
    """aiosmtpd handler: keeps what it accepts; ``script`` answers the next DATA instead."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        self.script: deque[str] = deque()

    def deliveries(self) -> int:
        return len(self.received)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        action = self.script.popleft() if self.script else "accept"
        if action in ("accept", "lose-ack"):
            self.received.append(envelope.original_content)
        if action == "lose-ack":  # stored, then the connection drops before the reply
            server.transport.abort()
            await asyncio.Event().wait()
        return "250 2.0.0 Ok: queued" if action == "accept" else action


class LoopbackController(Controller):
    """A Controller on an ephemeral port (port=0) that learns which."""

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
    expected = (USER.encode(), secret_value("SMTP_PASSWORD").encode())
    return AuthResult(success=isinstance(data, LoginPassword) and data == expected, handled=False)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server(ca: trustme.CA) -> Iterator[tuple[Mailbox, LoopbackController]]:
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(tls)
    mailbox = Mailbox()
    controller = LoopbackController(
        mailbox,
        hostname="127.0.0.1",
        port=0,
        server_hostname="mx.test",
        tls_context=tls,
        require_starttls=True,
        auth_required=True,
        auth_require_tls=True,
        authenticator=authenticate,
    )
    controller.start()
    try:
        yield mailbox, controller
    finally:
        controller.stop()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class TestSmtpConformance(NotifierConformance):
    claims_idempotency = False  # SMTP cannot recognise a message sent again

    @pytest.fixture
    def plugin(self) -> ModuleType:
        return smtp

    @pytest.fixture
    def fake(self, server: tuple[Mailbox, LoopbackController]) -> Mailbox:
        mailbox = server[0]
        mailbox.received.clear()
        mailbox.script.clear()
        return mailbox

    @pytest.fixture
    def settings(
        self, server: tuple[Mailbox, LoopbackController], ca: trustme.CA, tmp_path: Path
    ) -> dict[str, Any]:
        cafile = tmp_path / "test-ca.pem"
        ca.cert_pem.write_to_path(str(cafile))
        return {
            "host": "127.0.0.1",
            "port": server[1].port,
            "security": "starttls",
            "cafile": str(cafile),
            "username": USER,
            "password": "env:SMTP_PASSWORD",
            "from": "Demo Store <shop@demo-store.example>",
            "timeout": 2,
        }

    def provoke(self, fault: str, fake: Any, settings: Mapping[str, Any]) -> Mapping[str, Any]:
        if fault == "unavailable":
            return {**settings, "port": closed_port()}
        if fault == "rate_limited":
            fake.script.append("451 4.7.1 Too many messages, slow down")
        elif fault == "timeout_after_receipt":
            fake.script.append("lose-ack")
        else:
            pytest.skip(f"no SMTP equivalent of {fault}")
        return settings
