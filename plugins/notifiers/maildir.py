"""Maildir email sink: every email fulfil sends becomes a real message file you can open.

Settings:

- ``path`` (default ``"mail"``): the Maildir folder, relative to the plugin's data folder;
  ``tmp/``, ``new/`` and ``cur/`` are created on the first message.
- ``from`` (default ``"shop@localhost"``): the sender address when the message has none.

Each message is an RFC 5322 file (multipart/alternative when there is HTML) whose name and
``Message-ID`` derive from ``Message.dedupe_key``. It is written to ``tmp/`` and hard-linked
into ``new/``, which fails if the name is taken, so the same message sent twice — a retry
after a crash, or two workers racing — is stored once, whichever process gets there first.
A message a mail reader already moved to ``cur/`` counts as delivered too.
"""

from __future__ import annotations

import email.utils
import hashlib
import os
import secrets
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.charset import QP, Charset
from email.header import Header
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path
from typing import Any

from fulfil.core import hookimpl
from fulfil.core.context import PluginContext
from fulfil.core.errors import NotifierError
from fulfil.core.notifiers import Message, NotifierPlugin, Receipt
from fulfil.plugins.notifiers._email_policy import FAST_FOLD_COMPAT32, needs_no_folding

_UTF8_QP = Charset("utf-8")
_UTF8_QP.body_encoding = QP  # readable in a text editor, unlike base64

__all__ = ["SETTINGS_SCHEMA", "MaildirNotifier"]

NAME = "maildir"

SETTINGS_SCHEMA: Mapping[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "maildir",
    "description": "Write every email to a local Maildir folder instead of sending it.",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "path": {
            "type": "string",
            "minLength": 1,
            "default": "mail",
            "description": "Maildir folder; a relative path is resolved against the data folder.",
        },
        "from": {
            "type": "string",
            "minLength": 3,
            "default": "shop@localhost",
            "description": "Sender address (From) of messages that do not name one.",
        },
    },
}


class MaildirNotifier:
    """Delivers ``Message`` objects into the Maildir at ``path``."""

    def __init__(self, path: Path, sender: str = "shop@localhost") -> None:
        self.path = path
        self.sender = sender
        self._ready = False

    def send(self, message: Message) -> Receipt:
        digest = hashlib.sha256(message.dedupe_key.encode()).hexdigest()
        name = f"{digest[:40]}.fulfil"
        sender = message.sender or self.sender
        domain = email.utils.parseaddr(sender)[1].rpartition("@")[2] or "localhost"
        message_id = f"<{digest[:32]}@{domain}>"
        try:
            self._make_dirs()
            if self._delivered(name):
                return Receipt(provider_id=message_id, detail="already delivered")
            data = _build(message, sender, message_id)
            return self._deliver(name, data, message_id)
        except OSError as exc:
            raise NotifierError(
                NAME, f"{self.path}: {exc.strerror or exc}", transient=True
            ) from exc

    def _make_dirs(self) -> None:
        if not self._ready:
            for sub in ("tmp", "new", "cur"):
                (self.path / sub).mkdir(parents=True, exist_ok=True)
            self._ready = True

    def _delivered(self, name: str) -> bool:
        if (self.path / "new" / name).exists():
            return True
        # A mail reader renames new/NAME to cur/NAME:2,<flags> once it has seen it.
        with os.scandir(self.path / "cur") as entries:
            return any(e.name == name or e.name.startswith(f"{name}:") for e in entries)

    def _deliver(self, name: str, data: bytes, message_id: str) -> Receipt:
        tmp = self.path / "tmp" / f"{name}.{os.getpid()}.{secrets.token_hex(4)}"
        target = self.path / "new" / name
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            try:
                os.link(tmp, target)  # unlike rename, fails if another process got there first
            except FileExistsError:
                return Receipt(provider_id=message_id, detail="already delivered")
        finally:
            tmp.unlink(missing_ok=True)
        _fsync_dir(target.parent)
        return Receipt(provider_id=message_id, detail=str(target))


def _build(message: Message, sender: str, message_id: str) -> bytes:
    """The RFC 5322 bytes. The compat32 MIME classes build it three times faster than
    ``EmailMessage``, which matters at one mail per order event; the policy skips header
    folding where there is nothing to fold, and the boundary is chosen rather than
    searched for (see ``_boundary``)."""
    headers = {
        "From": sender,
        "To": message.to,
        "Date": email.utils.format_datetime(datetime.now(UTC)),
        "Message-ID": message_id,
        "X-Fulfil-Dedupe-Key": message.dedupe_key,
        "X-Fulfil-Order-Id": message.order_id,
        "X-Fulfil-Event": message.event,
        "Content-Language": message.locale,
    }
    if "@" not in email.utils.parseaddr(message.to)[1] or any(
        c in value for value in (*headers.values(), message.subject) for c in "\r\n"
    ):  # a line break in a header could forge headers: never retried
        raise NotifierError(
            NAME,
            f"message {message.dedupe_key}: the recipient is not an email address, or a "
            "header holds a line break",
            transient=False,
        )
    headers["From"], headers["To"] = _address_header(sender), _address_header(message.to)
    text = MIMEText(message.text, "plain", _UTF8_QP)
    if message.html:
        mail: MIMEBase = MIMEMultipart("alternative", boundary=_boundary())
        mail.attach(text)
        mail.attach(MIMEText(message.html, "html", _UTF8_QP))
    else:
        mail = text
    for name, value in headers.items():
        mail[name] = value
    mail["Subject"] = _subject(message.subject)
    return mail.as_bytes(policy=FAST_FOLD_COMPAT32)


def _address_header(value: str) -> str:
    """``value`` for From or To, a non-ASCII display name as an RFC 2047 encoded word.

    Given a non-ASCII ``Name <address>``, compat32 encodes all of it, address included,
    and parsers then find no address in the header. An internationalised address cannot
    be encoded at all (it needs SMTPUTF8); it is left as it is."""
    if value.isascii():
        return value
    name, address = email.utils.parseaddr(value)
    if not address or not address.isascii():
        return value
    return email.utils.formataddr((name, address), charset="utf-8")


def _subject(subject: str) -> str | Header:
    """The Subject as compat32 should write it: a short plain one as it is, anything else
    as UTF-8 encoded words, folded (``header_name`` makes the first line leave room for
    ``Subject: ``). A plain one holding ``=?`` is encoded too: a reader would take it for
    an encoded word."""
    if needs_no_folding("Subject", subject) and "=?" not in subject:
        return subject
    return Header(subject, "utf-8", header_name="Subject")


def _boundary() -> str:
    """A multipart boundary that no part can contain: every part is quoted-printable, in
    which ``=`` is always followed by two hex digits or a line break, never by ``_``.

    Left to itself, the generator draws a boundary and compiles a regular expression to
    search the parts for it, a tenth of the time spent on a message."""
    return f"=_{secrets.token_hex(12)}"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _factory(settings: Mapping[str, Any], context: PluginContext) -> MaildirNotifier:
    return MaildirNotifier(
        context.path(settings.get("path", "mail")), settings.get("from", "shop@localhost")
    )


@hookimpl
def fulfil_register_notifiers(register: Callable[[NotifierPlugin], None]) -> None:
    register(
        NotifierPlugin(
            name=NAME,
            channel="email",
            factory=_factory,
            settings_schema=SETTINGS_SCHEMA,
            description="Writes emails into a local Maildir folder (open it with any mail reader).",
        )
    )
