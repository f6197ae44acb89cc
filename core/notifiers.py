"""The notifier contract: a channel, a settings schema, and ``send(message) -> Receipt``.

A notifier plugin registers a ``NotifierPlugin`` through ``fulfil_register_notifiers``.
``send`` returns a ``Receipt`` or raises ``NotifierError(transient=...)``: transient
failures are retried by the outbox with backoff, permanent ones are dead-lettered with the
provider's reason. ``Message.dedupe_key`` is stable across retries; a notifier that can
(a Maildir file name, an SMTP Message-ID, an idempotency header) uses it so a retry after
a crash is not delivered twice.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import attrs
from fulfil.core.context import PluginContext
from fulfil.core.errors import NotifierError

__all__ = [
    "Audience",
    "Channel",
    "Message",
    "Notifier",
    "NotifierPlugin",
    "Receipt",
    "fan_out_failure",
]


class Channel(enum.StrEnum):
    EMAIL = "email"
    SMS = "sms"
    PUSH = "push"
    WEBHOOK = "webhook"


class Audience(enum.StrEnum):
    CUSTOMER = "customer"
    MERCHANT = "merchant"


@attrs.frozen
class Message:
    dedupe_key: str  # "order:event:audience:channel[:n]", stable across retries
    channel: Channel = attrs.field(converter=Channel)
    audience: Audience = attrs.field(converter=Audience)
    event: str
    order_id: str
    to: str  # email address, E.164 phone, device token or URL
    subject: str
    text: str
    html: str | None = None
    locale: str = "en"
    sender: str | None = None
    data: Mapping[str, Any] = attrs.field(factory=dict)

    def to_mapping(self) -> dict[str, Any]:
        mapping = attrs.asdict(self)
        mapping["channel"] = self.channel.value
        mapping["audience"] = self.audience.value
        return mapping

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Message:
        return cls(**data)


@attrs.frozen
class Receipt:
    provider_id: str | None = None
    detail: str | None = None


def fan_out_failure(
    notifier: str, errors: Sequence[NotifierError], targets: int, delivered: int, what: str
) -> NotifierError | None:
    """The error to raise after sending one message to ``targets`` devices or endpoints.

    Any transient failure makes the whole send transient (the notifier skips the targets
    that took it when the row is retried); nothing delivered and nothing retryable raises
    the first permanent error; otherwise None: the caller returns its receipt.
    """
    transient = [e for e in errors if e.transient]
    if transient and targets == 1:
        return transient[0]
    if transient:
        first = transient[0]
        return NotifierError(
            notifier,
            f"{len(transient)} of {targets} {what}: {first.message}",
            transient=True,
            code=first.code,
            retry_after=max(e.retry_after or 0.0 for e in transient) or None,
        )
    if not delivered:
        return errors[0]
    return None


@runtime_checkable
class Notifier(Protocol):
    def send(self, message: Message) -> Receipt: ...


NotifierFactory = Callable[[Mapping[str, Any], PluginContext], Notifier]


@attrs.frozen
class NotifierPlugin:
    name: str
    channel: Channel = attrs.field(converter=Channel)
    factory: NotifierFactory
    settings_schema: Mapping[str, Any] = attrs.field(factory=lambda: {"type": "object"})
    description: str = ""
    version: str = "0"

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": "notifier",
            "version": self.version,
            "description": self.description,
            "channel": self.channel.value,
        }
