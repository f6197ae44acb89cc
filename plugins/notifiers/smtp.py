"""SMTP email notifier: real mail through a relay or a provider's submission port.

Settings are ``SETTINGS_SCHEMA`` (documented in ``docs/notifiers.md``). TLS is
verified against the system's CAs or ``cafile``; ``security = "starttls"`` never falls back
to plain text when the server does not offer STARTTLS, and credentials are refused over a
connection without TLS.

Duplicates: the ``Message-ID`` is derived from ``Message.dedupe_key`` (the scheme the
Maildir sink uses), so the resend after a lost acknowledgement carries the same id and the
receiving side can drop it. SMTP has no idempotency key: a connection lost (or a timeout)
after the end of DATA is the one case where a message may arrive twice; a failure before it
leaves no trace on the server, and an idle connection found closed is replaced at once.

Concurrency: the worker calls ``send`` from a thread pool. Each send borrows a connection
for its whole transaction from a small pool (at most ``max_connections``, idle ones kept
when ``reuse_connection``), so SMTP dialogues never interleave, sends run in parallel up to
the relay's limit, and a broken connection is dropped instead of poisoning the others.

Logs carry dedupe keys, Message-IDs and the server's host, never addresses or credentials;
error texts quoted from the server have the message's addresses replaced.
"""

from __future__ import annotations

import email.policy
import email.utils
import hashlib
import ipaddress
import logging
import re
import smtplib
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any, Literal

import attrs
from fulfil.core import hookimpl
from fulfil.core.context import PluginContext
from fulfil.core.errors import ConfigError, NotifierError
from fulfil.core.notifiers import Message, NotifierPlugin, Receipt
from fulfil.core.secrets import Secret, reveal

__all__ = ["SETTINGS_SCHEMA", "SmtpNotifier", "SmtpSettings", "build_email", "message_id"]

NAME = "smtp"
log = logging.getLogger(__name__)

Security = Literal["starttls", "tls", "none"]
DEFAULT_PORTS: Mapping[str, int] = {"starttls": 587, "tls": 465, "none": 587}

# Relays close idle sessions after a minute or more (Postfix: 300 s); a connection idle
# longer than this is closed by us rather than found dead, or silently dropped by a NAT.
MAX_IDLE_SECONDS = 30.0

# 7bit: bodies go out quoted-printable or base64, deliverable without 8BITMIME.
_POLICY = email.policy.SMTP.clone(cte_type="7bit")

SETTINGS_SCHEMA: Mapping[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "smtp",
    "description": "Send emails through an SMTP server (your provider's submission port or "
    "a relay).",
    "type": "object",
    "additionalProperties": False,
    "required": ["host"],
    "dependentRequired": {"username": ["password"], "password": ["username"]},
    "properties": {
        "host": {
            "type": "string",
            "minLength": 1,
            "description": "SMTP server name (or IP address) as its TLS certificate names it.",
        },
        "port": {
            "type": "integer",
            "minimum": 1,
            "maximum": 65535,
            "description": "TCP port. Default: 587 (starttls, none) or 465 (tls).",
        },
        "security": {
            "enum": ["starttls", "tls", "none"],
            "default": "starttls",
            "description": "starttls: upgrade with STARTTLS, required (port 587); tls: "
            "implicit TLS (SMTPS, port 465); none: no encryption, for a relay on the loopback "
            "or tests only (credentials are refused).",
        },
        "username": {
            "type": "string",
            "minLength": 1,
            "description": "Login for SMTP AUTH; omit it (and password) for a relay that "
            "needs none.",
        },
        "password": {
            "type": "string",
            "minLength": 1,
            "writeOnly": True,
            "description": "Password for SMTP AUTH, as a reference: env:SMTP_PASSWORD.",
        },
        "from": {
            "type": "string",
            "minLength": 3,
            "description": "Sender (From header and envelope sender), e.g. 'Shop "
            "<shop@example.com>'; the store's email goes in Reply-To. Default: the store's "
            "email.",
        },
        "timeout": {
            "type": "number",
            "exclusiveMinimum": 0,
            "maximum": 300,
            "default": 10,
            "description": "Seconds to wait for the server at each step before giving up "
            "(the message is retried).",
        },
        "cafile": {
            "type": "string",
            "minLength": 1,
            "description": "CA bundle (PEM) to verify the server's certificate with, "
            "instead of the system's; a relative path is resolved against the data folder.",
        },
        "reuse_connection": {
            "type": "boolean",
            "default": True,
            "description": "Keep connections open between messages (reconnecting when the "
            "server closed them) instead of one connection per message.",
        },
        "max_connections": {
            "type": "integer",
            "minimum": 1,
            "maximum": 64,
            "default": 4,
            "description": "Most SMTP connections open at once; relays limit them per account.",
        },
    },
}


@attrs.frozen
class SmtpSettings:
    host: str
    port: int
    security: Security = "starttls"
    username: Secret | str | None = None
    password: Secret | str | None = attrs.field(default=None, repr=False)
    sender: str | None = None
    timeout: float = 10.0
    cafile: str | None = None
    reuse_connection: bool = True
    max_connections: int = 4

    @classmethod
    def from_mapping(cls, settings: Mapping[str, Any]) -> SmtpSettings:
        security = settings.get("security", "starttls")
        return cls(
            host=settings["host"],
            port=settings.get("port") or DEFAULT_PORTS[security],
            security=security,
            username=settings.get("username"),
            password=settings.get("password"),
            sender=settings.get("from"),
            timeout=float(settings.get("timeout", 10.0)),
            cafile=settings.get("cafile"),
            reuse_connection=settings.get("reuse_connection", True),
            max_connections=settings.get("max_connections", 4),
        )


class SmtpNotifier:
    """Sends ``Message`` objects through one SMTP server; safe to call from many threads."""

    def __init__(self, settings: SmtpSettings) -> None:
        if settings.security == "none" and (settings.username or settings.password):
            raise ConfigError(
                f"notifiers.{NAME}.settings.username: credentials are never sent without TLS; "
                'use security = "starttls" or "tls"'
            )
        self.settings = settings
        self._context = self._ssl_context() if settings.security != "none" else None
        self._slots = threading.BoundedSemaphore(settings.max_connections)
        self._lock = threading.Lock()  # guards _idle and _closed
        self._idle: list[tuple[smtplib.SMTP, float]] = []
        self._closed = False
        if settings.security == "none" and not _is_loopback(settings.host):
            log.warning(
                "%s: security is 'none': messages to %s travel unencrypted", NAME, settings.host
            )

    def _ssl_context(self) -> ssl.SSLContext:
        try:
            return ssl.create_default_context(cafile=self.settings.cafile)
        except (OSError, ssl.SSLError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise ConfigError(
                f"notifiers.{NAME}.settings.cafile: cannot read {self.settings.cafile}: {reason}"
            ) from None

    # --- sending --------------------------------------------------------------------------

    def send(self, message: Message) -> Receipt:
        sender = self.settings.sender or message.sender
        if not sender:
            raise NotifierError(
                NAME, f"no sender: set notifiers.{NAME}.settings.from", transient=False
            )
        mail = build_email(message, sender)
        envelope_from = email.utils.parseaddr(sender)[1]
        envelope_to = email.utils.parseaddr(message.to)[1]
        hidden = {envelope_to: "recipient", envelope_from: "sender"}
        if self.settings.password is not None:
            hidden[reveal(self.settings.password)] = "***"
        options: list[str] = []
        if not (envelope_from + envelope_to).isascii():  # internationalised (RFC 6531)
            options = ["SMTPUTF8", "BODY=8BITMIME"]
        data = _serialise(mail, utf8=bool(options))
        with self._slots:
            try:
                code, reply = self._transmit(data, envelope_from, envelope_to, options)
            except Exception as exc:
                error = _failure(exc, hidden, self.settings.timeout)
                log.debug("%s: %s not sent: %s", NAME, message.dedupe_key, error)
                raise error from None  # the cause's text may quote an address
        log.debug("%s: %s sent as %s", NAME, message.dedupe_key, mail["Message-ID"])
        detail = _redact(f"{code} {_text(reply)}", hidden)
        return Receipt(provider_id=str(mail["Message-ID"]), detail=detail)

    def _transmit(self, data: bytes, sender: str, to: str, options: list[str]) -> tuple[int, bytes]:
        """One SMTP transaction, on a pooled connection when one is idle."""
        while True:
            conn, reused = self._checkout()
            stage = "MAIL"
            try:
                code, reply = conn.mail(sender, options)
                if code != 250:
                    raise smtplib.SMTPSenderRefused(code, reply, sender)
                stage = "RCPT"
                code, reply = conn.rcpt(to)
                if code not in (250, 251):
                    raise smtplib.SMTPRecipientsRefused({to: (code, reply)})
                stage = "DATA"
                code, reply = conn.data(data)
                if code != 250:
                    raise smtplib.SMTPDataError(code, reply)
            except Exception as exc:
                self._recycle(conn, exc)
                if reused and stage == "MAIL" and _is_disconnect(exc):
                    # Closed while idle: nothing of this message reached the server yet.
                    log.debug("%s: idle connection to %s was closed; reconnecting", NAME, self)
                    continue
                raise
            self._checkin(conn)
            return code, reply

    # --- the connection pool --------------------------------------------------------------

    def _checkout(self) -> tuple[smtplib.SMTP, bool]:
        now = time.monotonic()
        stale: list[smtplib.SMTP] = []
        found: smtplib.SMTP | None = None
        with self._lock:
            while self._idle and found is None:
                conn, since = self._idle.pop()
                if now - since < MAX_IDLE_SECONDS:
                    found = conn
                else:
                    stale.append(conn)
        for conn in stale:
            _quit(conn)
        return (found, True) if found is not None else (self._connect(), False)

    def _checkin(self, conn: smtplib.SMTP) -> None:
        if self.settings.reuse_connection:
            with self._lock:
                if not self._closed:
                    self._idle.append((conn, time.monotonic()))
                    return
        _quit(conn)

    def _recycle(self, conn: smtplib.SMTP, exc: Exception) -> None:
        """After a failed transaction: keep a connection that only said no, drop the rest."""
        refused = isinstance(exc, smtplib.SMTPRecipientsRefused | smtplib.SMTPResponseException)
        if refused and not _is_disconnect(exc):
            try:
                if conn.rset()[0] == 250:
                    self._checkin(conn)
                    return
            except (OSError, smtplib.SMTPException):
                pass
        _quit(conn, polite=False)

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        conn: smtplib.SMTP
        if s.security == "tls":
            conn = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, context=self._context)
        else:
            conn = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
        try:
            if s.security == "starttls":
                conn.starttls(context=self._context)  # raises when not offered: no downgrade
            conn.ehlo_or_helo_if_needed()
            if s.username is not None and s.password is not None:
                conn.login(reveal(s.username), reveal(s.password))
        except BaseException:
            conn.close()
            raise
        log.debug("%s: connected to %s:%d (%s)", NAME, s.host, s.port, s.security)
        return conn

    def close(self) -> None:
        """Say QUIT on the idle connections; the engine calls this when it shuts down."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn, _ in idle:
            _quit(conn)

    def __enter__(self) -> SmtpNotifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        s = self.settings
        return f"SmtpNotifier({s.host}:{s.port}, {s.security})"

    __str__ = __repr__


# --- the message --------------------------------------------------------------------------


def message_id(dedupe_key: str, sender: str) -> str:
    """``<hash-of-the-key@sender-domain>``: the same for every attempt at one message."""
    digest = hashlib.sha256(dedupe_key.encode()).hexdigest()
    domain = email.utils.parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    return f"<{digest[:32]}@{domain}>"


def build_email(message: Message, sender: str) -> EmailMessage:
    """The RFC 5322 message for ``message``; a ``NotifierError`` (permanent) if it has none."""
    for name, value in (("recipient", message.to), ("sender", sender)):
        address = email.utils.parseaddr(value)[1]
        if "@" not in address or any(c in value for c in "\r\n"):
            raise NotifierError(NAME, f"not an email address ({name})", transient=False)
    mail = EmailMessage(policy=_POLICY)
    try:
        mail["From"] = sender
        mail["To"] = message.to
        if message.sender and _address(message.sender) != _address(sender):
            mail["Reply-To"] = message.sender
        mail["Subject"] = message.subject
        mail["Date"] = email.utils.format_datetime(datetime.now(UTC))
        mail["Message-ID"] = message_id(message.dedupe_key, sender)
        mail["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to it
        mail["X-Fulfil-Dedupe-Key"] = message.dedupe_key
        mail["X-Fulfil-Event"] = message.event
        mail["X-Fulfil-Order-Id"] = message.order_id
        mail.set_content(message.text)
        if message.html:
            mail.add_alternative(message.html, subtype="html")
        # After the content: set_content() drops Content-* headers set before it.
        mail["Content-Language"] = message.locale
    except (ValueError, TypeError) as exc:  # e.g. a line break in a header: never retried
        raise NotifierError(NAME, f"cannot build the message: {exc}", transient=False) from None
    return mail


def _serialise(mail: EmailMessage, *, utf8: bool) -> bytes:
    try:
        return mail.as_bytes(policy=_POLICY.clone(utf8=True) if utf8 else _POLICY)
    except (ValueError, TypeError, UnicodeError) as exc:
        raise NotifierError(NAME, f"cannot write the message: {exc}", transient=False) from None


def _address(value: str) -> str:
    return email.utils.parseaddr(value)[1].lower()


# --- errors -------------------------------------------------------------------------------

_STAGES: Mapping[type[Exception], str] = {
    smtplib.SMTPAuthenticationError: "authentication failed",
    smtplib.SMTPSenderRefused: "sender refused",
    smtplib.SMTPRecipientsRefused: "recipient refused",
    smtplib.SMTPDataError: "message refused",
    smtplib.SMTPConnectError: "connection refused",
    smtplib.SMTPHeloError: "greeting refused",
}


def _failure(exc: Exception, hidden: Mapping[str, str], timeout: float) -> NotifierError:
    """SMTP's answer or the network's failure as a NotifierError: 4xx and network trouble
    are transient, 5xx permanent, with the server's own words."""
    if isinstance(exc, NotifierError):
        return exc
    stage = next((text for kind, text in _STAGES.items() if isinstance(exc, kind)), "")
    prefix = f"{stage}: " if stage else ""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        ((code, reply),) = exc.recipients.values()
        return _reply(code, f"{prefix}{_text(reply)}", hidden)
    if isinstance(exc, smtplib.SMTPResponseException):
        return _reply(exc.smtp_code, f"{prefix}{_text(exc.smtp_error)}", hidden)
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        if isinstance(exc.__context__, TimeoutError):
            return NotifierError(
                NAME, f"no answer within {timeout:g} s", transient=True, code="TimeoutError"
            )
        text = _redact(str(exc) or "the server closed the connection", hidden)
        return NotifierError(NAME, text, transient=True, code=type(exc).__name__)
    if isinstance(exc, ssl.SSLCertVerificationError):
        text = f"the server's certificate is not trusted: {exc.verify_message}"
        return NotifierError(NAME, text, transient=False, code=type(exc).__name__)
    if isinstance(exc, smtplib.SMTPException):  # e.g. STARTTLS or AUTH not offered
        text = _redact(str(exc), hidden)
        return NotifierError(NAME, text, transient=False, code=type(exc).__name__)
    if isinstance(exc, TimeoutError):
        text = f"no answer within {timeout:g} s"
        return NotifierError(NAME, text, transient=True, code="TimeoutError")
    if isinstance(exc, OSError):  # refused, reset, unreachable, DNS, TLS handshake
        text = _redact(exc.strerror or str(exc) or type(exc).__name__, hidden)
        return NotifierError(NAME, text, transient=True, code=type(exc).__name__)
    raise exc  # a bug: the worker retries it, then dead-letters it with its type


def _reply(code: int, text: str, hidden: Mapping[str, str]) -> NotifierError:
    permanent = 500 <= code < 600  # 4xx (and no reply code at all) may work later
    return NotifierError(NAME, _redact(text, hidden), transient=not permanent, code=str(code))


def _is_disconnect(exc: Exception) -> bool:
    if isinstance(exc, smtplib.SMTPResponseException):
        return exc.smtp_code == 421  # "closing transmission channel", e.g. idle timeout
    if isinstance(exc, smtplib.SMTPException):  # an OSError too, but not a network one
        return isinstance(exc, smtplib.SMTPServerDisconnected)
    return isinstance(exc, OSError)  # reset, broken pipe, timeout


def _text(reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    return " ".join(text.split())


def _redact(text: str, hidden: Mapping[str, str]) -> str:
    """``text`` with each of ``hidden``'s keys (addresses, a password) replaced, any case."""
    for value, placeholder in hidden.items():
        if len(value) >= 4:  # a shorter one would mangle the reply codes
            text = re.sub(re.escape(value), placeholder, text, flags=re.IGNORECASE)
    return text


def _quit(conn: smtplib.SMTP, *, polite: bool = True) -> None:
    try:
        if polite and conn.sock is not None:
            conn.quit()
    except (OSError, smtplib.SMTPException):
        pass  # the server may be gone already; the socket is closed below either way
    finally:
        conn.close()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _factory(settings: Mapping[str, Any], context: PluginContext) -> SmtpNotifier:
    config = SmtpSettings.from_mapping(settings)
    if config.cafile:
        config = attrs.evolve(config, cafile=str(context.path(config.cafile)))
    return SmtpNotifier(config)


@hookimpl
def fulfil_register_notifiers(register: Callable[[NotifierPlugin], None]) -> None:
    register(
        NotifierPlugin(
            name=NAME,
            channel="email",
            factory=_factory,
            settings_schema=SETTINGS_SCHEMA,
            description="Sends emails through an SMTP server (STARTTLS or implicit TLS, AUTH).",
        )
    )
