"""The SMTP notifier against a real SMTP server (aiosmtpd) on 127.0.0.1: plain, STARTTLS
and implicit TLS with AUTH, scripted 4xx/5xx answers, dropped connections and timeouts."""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
import ssl
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
import httpx
import jsonschema
import pluggy
import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from fulfil.core import hookspecs
from fulfil.core.context import PluginContext
from fulfil.core.errors import ConfigError, NotifierError
from fulfil.core.notifiers import Message, NotifierPlugin
from fulfil.core.secrets import Secret
from fulfil.plugins.notifiers import smtp
from fulfil.plugins.notifiers.smtp import SmtpNotifier, SmtpSettings, message_id

PASSWORD = "s3cret-Pa55word"
USER = "shop-mailer"
SUBJECT = "Votre commande n° 1001 a été expédiée — à bientôt"


# --- a real SMTP server ---------------------------------------------------------------------


@attrs.frozen
class Received:
    peer: Any  # (host, port) of the client connection: one per SMTP connection
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    authenticated: bool | None

    @property
    def message(self) -> Any:
        return email.message_from_bytes(self.data, policy=email.policy.default)


class Mailbox:
    """aiosmtpd handler: keeps what it accepts, answers what the test scripts.

    ``script`` holds one action per coming DATA: an SMTP reply ("451 ...") to answer
    instead of accepting, "drop" (close the connection before acknowledging, message
    lost), "lose-ack" (store it, then close before acknowledging) or "hang".
    """

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.script: deque[str] = deque()
        self.refuse: dict[str, str] = {}  # RCPT address -> reply
        self.data_commands = 0
        self.peers: set[Any] = set()  # client connections that got as far as RCPT

    @property
    def connections(self) -> int:
        return len(self.peers)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        self.peers.add(session.peer)
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.data_commands += 1
        action = self.script.popleft() if self.script else "accept"
        if action in ("accept", "lose-ack"):
            self.received.append(
                Received(
                    session.peer,
                    envelope.mail_from,
                    list(envelope.rcpt_tos),
                    envelope.original_content,
                    session.authenticated,
                )
            )
        if action in ("drop", "lose-ack"):
            server.transport.abort()
            await asyncio.Event().wait()  # cancelled when the connection is lost
        if action == "hang":
            await asyncio.sleep(30)  # cancelled when the client gives up
        return "250 2.0.0 Ok: queued as 4F2A" if action in ("accept", "lose-ack") else action

    def messages(self) -> list[Any]:
        return [r.message for r in self.received]


class LoopbackController(Controller):
    """A Controller that listens on an ephemeral port (port=0) and learns which."""

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


@contextmanager
def smtp_server(
    handler: Mailbox | None = None, *, port: int = 0, **smtp_kwargs: Any
) -> Iterator[LoopbackController]:
    controller = LoopbackController(
        handler or Mailbox(),
        hostname="127.0.0.1",
        port=port,
        server_hostname="mx.test",
        **smtp_kwargs,
    )
    controller.start()
    try:
        yield controller
    finally:
        controller.stop()


def authenticator(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and auth_data == (USER.encode(), PASSWORD.encode())
    return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def cafile(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "test-ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture
def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, LoopbackController]]:
    handler = Mailbox()
    with smtp_server(handler) as controller:
        yield handler, controller


@contextmanager
def notifier(port: int, **settings: Any) -> Iterator[SmtpNotifier]:
    values: dict[str, Any] = {"host": "127.0.0.1", "port": port, "security": "none"}
    values.update(settings)
    with SmtpNotifier(SmtpSettings.from_mapping(values)) as instance:
        yield instance


def message(key: str = "ord_1001:v3:order_shipped:customer:email", **extra: Any) -> Message:
    fields: dict[str, Any] = {
        "dedupe_key": key,
        "channel": "email",
        "audience": "customer",
        "event": "order_shipped",
        "order_id": "ord_1001",
        "to": "Léa Bernard <lea@example.org>",
        "subject": SUBJECT,
        "text": "Bonjour Léa,\n\nNuméro de suivi : TRK1\n",
        "locale": "fr",
        "sender": "Maison Dupont <contact@dupont.example>",
        **extra,
    }
    return Message.from_mapping(fields)


def failure(send: Any, *args: Any) -> NotifierError:
    with pytest.raises(NotifierError) as info:
        send(*args)
    assert info.value.notifier == "smtp"
    return info.value


# --- the message ----------------------------------------------------------------------------


def test_plain_send_is_a_real_multipart_message(mailbox: tuple[Mailbox, Controller]) -> None:
    handler, server = mailbox
    html = "<p>Bonjour <b>Léa</b>, numéro de suivi : TRK1</p>"
    with notifier(server.port, **{"from": "Boutique <shop@dupont.example>"}) as mailer:
        receipt = mailer.send(message(html=html))

    (got,) = handler.received
    assert got.mail_from == "shop@dupont.example" and got.rcpt_tos == ["lea@example.org"]
    assert got.data.isascii()  # 7-bit clean: subject and bodies are encoded, not raw UTF-8
    parsed = got.message
    assert parsed["Subject"] == SUBJECT
    assert parsed["From"] == "Boutique <shop@dupont.example>"
    assert parsed["To"] == "Léa Bernard <lea@example.org>"
    assert parsed["Reply-To"] == "Maison Dupont <contact@dupont.example>"
    assert parsed["Date"].datetime.tzinfo is not None
    assert parsed["Message-ID"] == receipt.provider_id
    assert receipt.provider_id == message_id(message().dedupe_key, "shop@dupont.example")
    assert parsed["Message-ID"].endswith("@dupont.example>")
    assert parsed["X-Fulfil-Dedupe-Key"] == "ord_1001:v3:order_shipped:customer:email"
    assert parsed["X-Fulfil-Event"] == "order_shipped"
    assert parsed["X-Fulfil-Order-Id"] == "ord_1001"
    assert parsed["Content-Language"] == "fr"
    assert parsed["Auto-Submitted"] == "auto-generated"
    assert parsed.get_content_type() == "multipart/alternative"
    text, body = parsed.get_body(("plain",)), parsed.get_body(("html",))
    assert "Numéro de suivi : TRK1" in text.get_content()
    assert html in body.get_content()
    assert receipt.detail is not None and receipt.detail.startswith("250")


def test_text_only_message_uses_the_store_address(mailbox: tuple[Mailbox, Controller]) -> None:
    handler, server = mailbox
    with notifier(server.port) as mailer:
        mailer.send(message())
    parsed = handler.received[0].message
    assert parsed.get_content_type() == "text/plain"
    assert parsed["From"] == "Maison Dupont <contact@dupont.example>"
    assert parsed["Reply-To"] is None
    assert handler.received[0].mail_from == "contact@dupont.example"


def test_message_id_is_the_same_for_every_attempt(mailbox: tuple[Mailbox, Controller]) -> None:
    handler, server = mailbox
    with notifier(server.port) as mailer:
        first = mailer.send(message())
        again = mailer.send(message(subject="edited"))
        other = mailer.send(message("ord_1001:v4:order_shipped:customer:email"))
    assert first.provider_id == again.provider_id != other.provider_id
    ids = [m["Message-ID"] for m in handler.messages()]
    assert ids == [first.provider_id, first.provider_id, other.provider_id]


def test_an_international_address_uses_smtputf8(mailbox: tuple[Mailbox, Controller]) -> None:
    handler, server = mailbox
    with notifier(server.port) as mailer:
        mailer.send(message(to="Zoé <zoé@exemple.fr>"))
    assert handler.received[0].rcpt_tos == ["zoé@exemple.fr"]
    assert handler.received[0].message["To"] == "Zoé <zoé@exemple.fr>"


@pytest.mark.parametrize(
    "fields",
    [
        {"to": "not an address"},
        {"to": ""},
        {"to": "a@example.org\r\nBcc: x@evil.example"},
        {"subject": "Hello\nBcc: x@evil.example"},
        {"sender": None},
    ],
)
def test_a_message_that_cannot_be_sent_is_permanent(
    mailbox: tuple[Mailbox, Controller], fields: dict[str, Any]
) -> None:
    handler, server = mailbox
    with notifier(server.port) as mailer:
        error = failure(mailer.send, message(**fields))
    assert error.transient is False
    assert handler.data_commands == 0


# --- TLS and AUTH ---------------------------------------------------------------------------


def test_starttls_with_auth(
    server_tls: ssl.SSLContext, cafile: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    handler = Mailbox()
    with (
        smtp_server(
            handler,
            tls_context=server_tls,
            require_starttls=True,
            auth_required=True,
            auth_require_tls=True,
            authenticator=authenticator,
        ) as server,
        notifier(
            server.port,
            security="starttls",
            cafile=cafile,
            username=USER,
            password=Secret("SMTP_PASSWORD", PASSWORD),
        ) as mailer,
    ):
        mailer.send(message())
    (got,) = handler.received
    assert got.authenticated is True
    assert got.message["Subject"] == SUBJECT
    assert_never_logged(caplog, PASSWORD)


def test_implicit_tls_with_auth(
    server_tls: ssl.SSLContext, cafile: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    handler = Mailbox()
    with (
        smtp_server(
            handler,
            ssl_context=server_tls,
            # aiosmtpd counts only STARTTLS as TLS (and warns if AUTH is then required);
            # SMTPS is TLS from the first byte. The test checks the session authenticated.
            auth_require_tls=False,
            authenticator=authenticator,
        ) as server,
        notifier(
            server.port, security="tls", cafile=cafile, username=USER, password=PASSWORD
        ) as mailer,
    ):
        mailer.send(message())
        mailer.send(message("ord_1001:v4:order_shipped:customer:email"))
    assert [r.authenticated for r in handler.received] == [True, True]
    assert len({r.peer for r in handler.received}) == 1  # one TLS session for both
    assert_never_logged(caplog, PASSWORD)


def test_wrong_password_is_permanent_and_never_shown(
    server_tls: ssl.SSLContext,
    cafile: str,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    handler = Mailbox()
    wrong = "not-the-Pa55word"
    with (
        smtp_server(
            handler,
            tls_context=server_tls,
            auth_required=True,
            authenticator=authenticator,
        ) as server,
        notifier(
            server.port, security="starttls", cafile=cafile, username=USER, password=wrong
        ) as mailer,
    ):
        error = failure(mailer.send, message())
    assert error.transient is False and error.code == "535"
    assert "Authentication credentials invalid" in str(error)
    assert wrong not in str(error) and wrong not in repr(error)
    assert error.__cause__ is None and error.__suppress_context__
    assert not handler.received
    assert_never_logged(caplog, wrong)
    out, err = capfd.readouterr()  # smtplib prints its debug output, were it switched on
    assert wrong not in out + err


def test_an_untrusted_certificate_is_permanent_and_nothing_is_sent(
    server_tls: ssl.SSLContext,
) -> None:
    handler = Mailbox()
    with (
        smtp_server(handler, tls_context=server_tls) as server,
        notifier(server.port, security="starttls", username=USER, password=PASSWORD) as mailer,
    ):
        error = failure(mailer.send, message())  # the system CAs do not know the test CA
    assert error.transient is False and error.code == "SSLCertVerificationError"
    assert "certificate" in str(error)
    assert not handler.received


def test_starttls_is_never_skipped(mailbox: tuple[Mailbox, Controller], cafile: str) -> None:
    handler, server = mailbox  # a server that does not offer STARTTLS
    with notifier(server.port, security="starttls", cafile=cafile) as mailer:
        error = failure(mailer.send, message())
    assert error.transient is False and "STARTTLS" in str(error)
    assert handler.data_commands == 0


def test_credentials_are_refused_without_tls() -> None:
    with pytest.raises(ConfigError) as info:
        SmtpNotifier(
            SmtpSettings.from_mapping(
                {"host": "127.0.0.1", "security": "none", "username": USER, "password": PASSWORD}
            )
        )
    assert "TLS" in str(info.value) and PASSWORD not in str(info.value)


def assert_never_logged(caplog: pytest.LogCaptureFixture, secret: str) -> None:
    """Not in any log record but the test server's own, nor in smtplib's debug output."""
    ours = [r for r in caplog.records if not r.name.startswith("mail.log")]
    assert any(r.name == "fulfil.plugins.notifiers.smtp" for r in ours)
    for record in ours:
        text = record.getMessage()
        assert secret not in text and secret not in (record.exc_text or "")
        assert "@example.org" not in text  # nor an address


# --- failures the outbox retries, failures it dead-letters ------------------------------------


def test_451_is_transient_then_the_retry_succeeds(mailbox: tuple[Mailbox, Controller]) -> None:
    handler, server = mailbox
    handler.script.extend(["451 4.3.0 Mail server temporarily rejected message"] * 2)
    with notifier(server.port) as mailer:
        for _ in range(2):
            error = failure(mailer.send, message())
            assert error.transient is True and error.code == "451"
            assert "temporarily rejected" in str(error)
        mailer.send(message())
    assert len(handler.received) == 1 and handler.data_commands == 3


def test_connection_dropped_during_data_is_transient_then_recovers(
    mailbox: tuple[Mailbox, Controller],
) -> None:
    handler, server = mailbox
    handler.script.append("drop")
    with notifier(server.port) as mailer:
        error = failure(mailer.send, message())
        assert error.transient is True and error.code == "SMTPServerDisconnected"
        mailer.send(message())
    assert len(handler.received) == 1


def test_a_lost_acknowledgement_resends_the_same_message_id(
    mailbox: tuple[Mailbox, Controller],
) -> None:
    """The one duplicate SMTP cannot prevent: the receiver recognises it by Message-ID."""
    handler, server = mailbox
    handler.script.append("lose-ack")
    with notifier(server.port) as mailer:
        assert failure(mailer.send, message()).transient is True
        mailer.send(message())
    first, second = handler.messages()
    assert first["Message-ID"] == second["Message-ID"]


def test_no_answer_in_time_is_transient(mailbox: tuple[Mailbox, Controller]) -> None:
    handler, server = mailbox
    handler.script.append("hang")
    with notifier(server.port, timeout=0.3) as mailer:
        error = failure(mailer.send, message())
        assert error.transient is True and error.code == "TimeoutError"
        mailer.send(message())
    assert len(handler.received) == 1


def test_connection_refused_is_transient() -> None:
    with smtp_server() as server:
        port = server.port
    with notifier(port) as mailer:  # the server is gone: nothing listens there now
        error = failure(mailer.send, message())
    assert error.transient is True and error.code == "ConnectionRefusedError"


@pytest.mark.parametrize(
    ("where", "reply"),
    [
        ("rcpt", "550 5.1.1 <lea@example.org>: Recipient address rejected: User unknown"),
        ("rcpt", "553 5.1.3 <lea@example.org>: Recipient address rejected: not a valid name"),
        ("data", "554 5.7.1 Message rejected: content looks like spam"),
    ],
)
def test_5xx_is_permanent_with_the_servers_reason(
    mailbox: tuple[Mailbox, Controller], where: str, reply: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    handler, server = mailbox
    if where == "rcpt":
        handler.refuse["lea@example.org"] = reply
    else:
        handler.script.append(reply)
    with notifier(server.port) as mailer:
        error = failure(mailer.send, message())
        assert error.transient is False and error.code == reply[:3]
        reason = reply.split(": ")[-1] if where == "rcpt" else reply[4:]
        assert reason in str(error)
        assert "lea@example.org" not in str(error)  # the address is not logged with it
        assert where != "rcpt" or "<recipient>:" in str(error)
        mailer.send(message(to="other@example.org"))
    assert [r.rcpt_tos for r in handler.received] == [["other@example.org"]]
    assert handler.connections == 1  # a refusal leaves the connection usable
    assert not any("@example.org" in r.getMessage() for r in caplog.records if "fulfil" in r.name)


# --- connections ----------------------------------------------------------------------------


@pytest.mark.parametrize(("reuse", "connections"), [(True, 1), (False, 3)])
def test_reuse_connection(
    mailbox: tuple[Mailbox, Controller], reuse: bool, connections: int
) -> None:
    handler, server = mailbox
    with notifier(server.port, reuse_connection=reuse) as mailer:
        for n in range(3):
            mailer.send(message(f"ord_1001:v{n}:order_shipped:customer:email"))
    assert len({r.peer for r in handler.received}) == connections


def test_a_connection_the_server_closed_is_replaced() -> None:
    handler = Mailbox()
    with smtp_server(handler) as server:
        port = server.port
        mailer = SmtpNotifier(
            SmtpSettings.from_mapping({"host": "127.0.0.1", "port": port, "security": "none"})
        )
        mailer.send(message("k1"))
    with smtp_server(handler, port=port):  # restarted: the pooled connection is dead
        mailer.send(message("k2"))
        mailer.close()
    assert [m["X-Fulfil-Dedupe-Key"] for m in handler.messages()] == ["k1", "k2"]
    assert len({r.peer for r in handler.received}) == 2


def test_many_threads_share_a_bounded_pool(mailbox: tuple[Mailbox, Controller]) -> None:
    handler, server = mailbox
    keys = [f"ord_{n}:v1:order_placed:customer:email" for n in range(60)]
    with (
        notifier(server.port, max_connections=3) as mailer,
        ThreadPoolExecutor(8) as pool,
    ):
        receipts = list(pool.map(lambda k: mailer.send(message(k)), keys))
    assert len({r.provider_id for r in receipts}) == 60
    assert sorted(m["X-Fulfil-Dedupe-Key"] for m in handler.messages()) == sorted(keys)
    assert 1 <= len({r.peer for r in handler.received}) <= 3


def test_close_says_quit_and_a_later_send_still_works(
    mailbox: tuple[Mailbox, Controller],
) -> None:
    handler, server = mailbox
    mailer = SmtpNotifier(
        SmtpSettings.from_mapping({"host": "127.0.0.1", "port": server.port, "security": "none"})
    )
    mailer.send(message("k1"))
    mailer.close()
    assert not mailer._idle
    mailer.send(message("k2"))  # a connection of its own, closed after use
    assert not mailer._idle
    assert len(handler.received) == 2


def test_a_connection_idle_too_long_is_not_used(
    mailbox: tuple[Mailbox, Controller], monkeypatch: pytest.MonkeyPatch
) -> None:
    handler, server = mailbox
    monkeypatch.setattr(smtp, "MAX_IDLE_SECONDS", 0.0)
    with notifier(server.port) as mailer:
        mailer.send(message("k1"))
        mailer.send(message("k2"))
    assert len({r.peer for r in handler.received}) == 2


def test_plain_text_to_another_host_is_flagged(caplog: pytest.LogCaptureFixture) -> None:
    SmtpNotifier(SmtpSettings.from_mapping({"host": "mail.internal", "security": "none"}))
    assert any("unencrypted" in r.getMessage() for r in caplog.records)
    caplog.clear()
    SmtpNotifier(SmtpSettings.from_mapping({"host": "::1", "security": "none"}))
    assert not caplog.records


# --- registration and settings ----------------------------------------------------------------


def plugin() -> NotifierPlugin:
    pm = pluggy.PluginManager("fulfil")
    pm.add_hookspecs(hookspecs)
    pm.register(smtp)
    pm.check_pending()
    registered: list[NotifierPlugin] = []
    pm.hook.fulfil_register_notifiers(register=registered.append)
    (found,) = registered
    return found


def test_registration_and_settings_schema() -> None:
    found = plugin()
    assert (found.name, found.channel.value) == ("smtp", "email") and found.description
    schema = found.settings_schema
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    good = {
        "host": "smtp.example.com",
        "port": 587,
        "security": "starttls",
        "username": "shop",
        "password": "env:SMTP_PASSWORD",
        "from": "Shop <shop@example.com>",
        "timeout": 10,
        "cafile": "ca.pem",
        "reuse_connection": True,
        "max_connections": 2,
    }
    assert not list(validator.iter_errors(good))
    assert list(validator.iter_errors({"host": "x", "sender": "a@b.example"}))  # unknown field
    assert list(validator.iter_errors({"port": 587}))  # host is required
    assert list(validator.iter_errors({"host": "x", "security": "ssl"}))
    assert list(validator.iter_errors({"host": "x", "username": "shop"}))  # without password
    assert all(p["description"] for p in schema["properties"].values())


@pytest.mark.parametrize(("security", "port"), [("starttls", 587), ("tls", 465), ("none", 587)])
def test_default_port_follows_security(security: str, port: int) -> None:
    settings = SmtpSettings.from_mapping({"host": "127.0.0.1", "security": security})
    assert settings.port == port
    assert PASSWORD not in repr(SmtpSettings.from_mapping({"host": "h", "password": PASSWORD}))


def test_factory_resolves_cafile_and_takes_a_secret(
    tmp_path: Path, cafile: str, server_tls: ssl.SSLContext
) -> None:
    Path(cafile).rename(tmp_path / "ca.pem")
    handler = Mailbox()
    settings = {
        "host": "127.0.0.1",
        "security": "starttls",
        "cafile": "ca.pem",  # relative: against the data folder
        "username": USER,
        "password": Secret("SMTP_PASSWORD", PASSWORD),
        "from": "shop@dupont.example",
    }
    with (
        smtp_server(handler, tls_context=server_tls, authenticator=authenticator) as server,
        httpx.Client() as client,
    ):
        mailer = plugin().factory(
            {**settings, "port": server.port}, PluginContext(client=client, data_dir=tmp_path)
        )
        assert isinstance(mailer, SmtpNotifier)
        with mailer:
            mailer.send(message())
    assert handler.received[0].authenticated is True

    with pytest.raises(ConfigError) as info, httpx.Client() as client:
        plugin().factory(
            {**settings, "cafile": "missing.pem"}, PluginContext(client=client, data_dir=tmp_path)
        )
    assert "cafile" in str(info.value)


def test_an_env_password_from_the_config_file(
    make_engine: Any,
    monkeypatch: pytest.MonkeyPatch,
    server_tls: ssl.SSLContext,
    cafile: str,
) -> None:
    monkeypatch.setenv("SMTP_PASSWORD", PASSWORD)
    handler = Mailbox()
    with smtp_server(handler, tls_context=server_tls, authenticator=authenticator) as server:
        settings = {
            "host": "127.0.0.1",
            "port": server.port,
            "cafile": cafile,
            "username": USER,
            "password": "env:SMTP_PASSWORD",
            "from": "shop@dupont.example",
        }
        engine = make_engine({"notifiers": {"smtp": {"settings": settings}}})
        mailer = engine.notifier("smtp")
        assert mailer.settings.password == Secret("SMTP_PASSWORD", PASSWORD)
        assert mailer.settings.security == "starttls" and mailer.settings.timeout == 10
        mailer.send(message())
        engine.close()
    assert handler.received[0].authenticated is True
