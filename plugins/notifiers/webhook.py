"""Signed outgoing webhooks: each message is POSTed as JSON to the merchant's endpoints.

Settings (``SETTINGS_SCHEMA``): ``urls`` (one or more endpoints), ``secret`` (the shared
HMAC key, as a reference such as ``env:WEBHOOK_SECRET``) and ``timeout``.

The body is ``{"id", "event", "order_id", "audience", "sent_at", "message"}`` where
``message`` is ``Message.to_mapping()``; it is serialised once and the very bytes sent are
signed. Headers:

- ``X-Fulfil-Timestamp``: the attempt's unix time in seconds;
- ``X-Fulfil-Signature``: ``v1=`` + hex HMAC-SHA256, keyed with the secret, of
  ``f"{timestamp}.".encode() + raw_body``;
- ``X-Fulfil-Event``: the template name (``merchant_new_order``...);
- ``Idempotency-Key``: the message's dedupe key, the same on every retry.

A receiver recomputes the HMAC over the raw bytes, compares in constant time, rejects a
timestamp more than five minutes away and drops an ``Idempotency-Key`` it has seen
(``docs/notifiers.md`` has the recipe). Answers: 2xx delivered; 410 Gone (the
endpoint was removed), 3xx and other 4xx permanent; 408, 429, 5xx, timeouts and connection
errors transient, ``retry_after`` from ``Retry-After``. With several endpoints, one that
already acknowledged a message is not sent it again when another one's failure is retried
by the same worker.

Messages addressed to ``"merchant"`` (what the built-in policy uses) go to every endpoint; a
message addressed to one of the configured URLs goes to that one only. Any other recipient
is refused: only configured URLs are ever called.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
from fulfil.core import __version__, hookimpl
from fulfil.core.context import PluginContext
from fulfil.core.errors import NotifierError
from fulfil.core.http import parse_retry_after
from fulfil.core.notifiers import Message, NotifierPlugin, Receipt, fan_out_failure
from fulfil.core.secrets import Secret, reveal

__all__ = ["SETTINGS_SCHEMA", "WebhookNotifier", "signature"]

NAME = "webhook"
SIGNATURE_VERSION = "v1"
MERCHANT = "merchant"
_REMEMBERED = 10_000  # (dedupe key, endpoint) pairs remembered as acknowledged

log = logging.getLogger(__name__)

SETTINGS_SCHEMA: Mapping[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": NAME,
    "description": "POST every message as signed JSON to the merchant's HTTPS endpoints.",
    "type": "object",
    "additionalProperties": False,
    "required": ["urls", "secret"],
    "properties": {
        "urls": {
            "type": "array",
            "minItems": 1,
            "uniqueItems": True,
            "items": {"type": "string", "format": "uri", "pattern": "^https?://"},
            "description": "Endpoints that receive every message (use https in production).",
        },
        "secret": {
            "type": "string",
            "minLength": 1,
            "description": 'The shared HMAC-SHA256 key, as a reference: "env:WEBHOOK_SECRET". '
            "Receivers use it to check X-Fulfil-Signature.",
        },
        "timeout": {
            "type": "number",
            "exclusiveMinimum": 0,
            "default": 10,
            "description": "Seconds to wait for an endpoint's answer before retrying later.",
        },
    },
}


def signature(secret: bytes, timestamp: int, body: bytes) -> str:
    """``v1=<hex HMAC-SHA256 of b"<timestamp>." + body>``, the X-Fulfil-Signature value."""
    digest = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_VERSION}={digest}"


def _error(
    message: str, *, transient: bool, code: str | None = None, retry_after: float | None = None
) -> NotifierError:
    return NotifierError(NAME, message, transient=transient, code=code, retry_after=retry_after)


def _where(url: str) -> str:
    """An endpoint as logs and errors show it: no query (it may hold a token), no userinfo."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}" + (
        parts.path or "/"
    )


class WebhookNotifier:
    """POSTs each message, signed, to every endpoint in ``urls``."""

    def __init__(
        self,
        client: httpx.Client,
        urls: Iterable[str],
        secret: Secret | str,
        *,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.urls = tuple(urls)
        self._secret = secret
        self.timeout = timeout
        self.clock = clock
        self._acknowledged: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"WebhookNotifier(urls={[_where(u) for u in self.urls]!r})"

    def send(self, message: Message) -> Receipt:
        urls = self.endpoints(message.to)
        timestamp = int(self.clock())
        body = self.body(message, timestamp)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"fulfil-webhook/{__version__}",
            "X-Fulfil-Event": message.event,
            "X-Fulfil-Timestamp": str(timestamp),
            "X-Fulfil-Signature": signature(reveal(self._secret).encode(), timestamp, body),
            "Idempotency-Key": quote(message.dedupe_key, safe=":_-.~"),
        }
        delivered, errors = [], []
        for url in urls:
            try:
                delivered.append(self._post(message.dedupe_key, url, body, headers))
            except NotifierError as error:
                errors.append(error)
        # On a retry, endpoints that acknowledged are skipped.
        failure = fan_out_failure(NAME, errors, len(urls), len(delivered), "endpoint(s)")
        if failure is not None:
            raise failure
        detail = f"{len(delivered)} endpoint(s) acknowledged"
        if errors:
            detail += f"; {len(errors)} refused it for good ({errors[0].code})"
        return Receipt(provider_id=message.dedupe_key, detail=detail)

    def endpoints(self, to: str) -> tuple[str, ...]:
        """``"merchant"``: every configured URL; a configured URL: that one; else refused.

        Only configured URLs are ever called, whatever a message says.
        """
        if to == MERCHANT and self.urls:
            return self.urls
        if to in self.urls:
            return (to,)
        raise _error(
            'recipient: neither "merchant" nor one of the configured urls',
            transient=False,
            code="RECIPIENT",
        )

    @staticmethod
    def body(message: Message, timestamp: int) -> bytes:
        payload = {
            "id": message.dedupe_key,
            "event": message.event,
            "order_id": message.order_id,
            "audience": message.audience.value,
            "sent_at": datetime.fromtimestamp(timestamp, UTC).isoformat(),
            "message": message.to_mapping(),
        }
        return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), default=str).encode()

    def _post(self, key: str, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        with self._lock:
            status = self._acknowledged.get((key, url))
        if status is not None:
            return status
        where = _where(url)
        try:
            response = self.client.post(url, content=body, headers=headers, timeout=self.timeout)
        except httpx.TimeoutException:
            log.warning("webhook %s: %s did not answer in %ss", key, where, self.timeout)
            raise _error(f"{where}: no answer in {self.timeout}s", transient=True) from None
        except httpx.TransportError as exc:
            raise _error(f"{where}: {type(exc).__name__}", transient=True) from None
        status = response.status_code
        if 200 <= status < 300:
            with self._lock:
                self._acknowledged[(key, url)] = status
                while len(self._acknowledged) > _REMEMBERED:
                    self._acknowledged.popitem(last=False)
            log.info("webhook %s: %s answered %s", key, where, status)
            return status
        log.warning("webhook %s: %s answered %s", key, where, status)
        reason = f"{where} answered {status} {response.reason_phrase}".rstrip()
        if status == 410:
            raise _error(
                f"{reason}: the endpoint was removed; take it out of the webhook urls",
                transient=False,
                code="GONE",
            )
        if status in (408, 429) or status >= 500:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            raise _error(reason, transient=True, code=f"HTTP{status}", retry_after=retry_after)
        if 300 <= status < 400:  # a redirect could leak the signed body elsewhere
            reason += " (redirects are not followed: update the URL)"
        raise _error(reason, transient=False, code=f"HTTP{status}")


def _factory(settings: Mapping[str, Any], context: PluginContext) -> WebhookNotifier:
    return WebhookNotifier(
        context.client,
        settings["urls"],
        settings["secret"],
        timeout=float(settings.get("timeout", 10)),
    )


@hookimpl
def fulfil_register_notifiers(register: Callable[[NotifierPlugin], None]) -> None:
    register(
        NotifierPlugin(
            name=NAME,
            channel="webhook",
            factory=_factory,
            settings_schema=SETTINGS_SCHEMA,
            description="POSTs messages as JSON signed with HMAC-SHA256 (X-Fulfil-Signature).",
        )
    )
