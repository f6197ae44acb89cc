"""Twilio SMS: ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json``, one message per send.

Settings (``SETTINGS_SCHEMA``): ``account_sid``; ``auth_token`` or ``api_key_sid`` +
``api_key_secret`` (HTTP Basic; write them as ``env:NAME`` references); ``from`` (an E.164
number or an alphanumeric sender ID) or ``messaging_service_sid``; optional
``status_callback``; ``base_url`` (tests point it at a fake); ``timeout``; ``ledger``.

Numbers are checked as E.164 with ``phonenumbers`` before any request. Twilio's answer is
mapped onto ``NotifierError``: its error code and message are kept (``code="21211"``);
21211 (invalid To), 21610 (recipient replied STOP), 21614 (not a mobile number), 20003 and
any 401/403 (credentials) and other 4xx are permanent; 20429/429, 5xx, timeouts and
connection errors are transient, with ``retry_after`` taken from ``Retry-After``.

Twilio's Messages API has no idempotency key for the requests we make (the
``I-Twilio-Idempotency-Token`` header is one Twilio *sends* on its own webhooks), so the
dedupe key is used locally, as the label saga uses its intent: a small SQLite ``ledger`` in
the data folder, shared by every worker process, records each attempt before the request
and the SID once Twilio accepts. A key with a SID is never sent again. A key whose last
attempt got no clear answer (a timeout, a dropped connection, a 5xx) is first looked up
with ``GET .../Messages.json?To=&From=`` (same body, created since the attempt) and only
sent again if Twilio has no such message.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx
import phonenumbers
from fulfil.core import hookimpl
from fulfil.core.context import PluginContext
from fulfil.core.errors import NotifierError
from fulfil.core.http import parse_retry_after
from fulfil.core.notifiers import Message, NotifierPlugin, Receipt
from fulfil.core.secrets import Secret, reveal
from fulfil.plugins.notifiers._ledger import SqliteLedger

__all__ = ["SETTINGS_SCHEMA", "TwilioSmsNotifier"]

NAME = "twilio_sms"
DEFAULT_BASE_URL = "https://api.twilio.com"
MESSAGES_PATH = "/2010-04-01/Accounts/{account_sid}/Messages.json"

# Twilio error codes that name a field of our request, and what they mean for a retry.
_PERMANENT_CODES: Mapping[int, str] = {
    21211: "To",  # invalid 'To' phone number
    21610: "To",  # the recipient replied STOP: unsubscribed
    21614: "To",  # 'To' is not a mobile number
}
_AUTH_CODES = frozenset({20003, 20005, 20006})
_RATE_LIMIT_CODE = 20429
_CLOCK_SKEW = 300.0  # seconds of difference tolerated between our clock and Twilio's
_ALPHANUMERIC_SENDER = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}$")

log = logging.getLogger(__name__)

_SECRET_REF = {"type": "string", "minLength": 1}

SETTINGS_SCHEMA: Mapping[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": NAME,
    "description": "Send SMS through Twilio's Programmable Messaging API.",
    "type": "object",
    "additionalProperties": False,
    "required": ["account_sid"],
    "allOf": [
        {"oneOf": [{"required": ["auth_token"]}, {"required": ["api_key_sid", "api_key_secret"]}]},
        {"oneOf": [{"required": ["from"]}, {"required": ["messaging_service_sid"]}]},
    ],
    "properties": {
        "account_sid": {
            "type": "string",
            "pattern": "^AC[0-9a-fA-F]{32}$",
            "description": "The Account SID (AC...), part of every request URL.",
        },
        "auth_token": {
            **_SECRET_REF,
            "description": 'The account\'s Auth Token, as a reference: "env:TWILIO_AUTH_TOKEN". '
            "Or use api_key_sid and api_key_secret.",
        },
        "api_key_sid": {
            "type": "string",
            "pattern": "^SK[0-9a-fA-F]{32}$",
            "description": "An API key SID (SK...), used with api_key_secret instead of the "
            "Auth Token.",
        },
        "api_key_secret": {
            **_SECRET_REF,
            "description": 'The API key\'s secret, as a reference: "env:TWILIO_API_KEY_SECRET".',
        },
        "from": {
            "type": "string",
            "minLength": 1,
            "description": "Sender: a Twilio number in E.164 (+15017122661) or an alphanumeric "
            "sender ID. Or use messaging_service_sid.",
        },
        "messaging_service_sid": {
            "type": "string",
            "pattern": "^MG[0-9a-fA-F]{32}$",
            "description": "A Messaging Service SID (MG...) that picks the sender.",
        },
        "status_callback": {
            "type": "string",
            "format": "uri",
            "description": "URL Twilio calls with delivery status changes (StatusCallback).",
        },
        "base_url": {
            "type": "string",
            "format": "uri",
            "default": DEFAULT_BASE_URL,
            "description": "API root; change it only to point at a test double.",
        },
        "timeout": {
            "type": "number",
            "exclusiveMinimum": 0,
            "default": 10,
            "description": "Seconds to wait for Twilio's answer before retrying later.",
        },
        "ledger": {
            "type": "string",
            "minLength": 1,
            "default": "twilio-sms-sent.sqlite",
            "description": "SQLite file recording the dedupe key and SID of every accepted "
            "message, so none is sent twice; relative to the data folder.",
        },
    },
}


def _error(
    message: str, *, transient: bool, code: str | None = None, retry_after: float | None = None
) -> NotifierError:
    return NotifierError(NAME, message, transient=transient, code=code, retry_after=retry_after)


def e164(number: str, field: str) -> str:
    """``number`` in E.164, or a permanent error naming ``field`` (the number is PII: not shown)."""
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        parsed = None
    if parsed is None or not phonenumbers.is_valid_number(parsed):
        raise _error(f"{field}: not a valid E.164 phone number", transient=False, code="E164")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


class _Ledger(SqliteLedger):
    """Per dedupe key: the SID Twilio gave, or when a request with no clear answer was made."""

    schema = (
        "CREATE TABLE IF NOT EXISTS sent (dedupe_key TEXT PRIMARY KEY, sid TEXT, "
        "attempted_at REAL, sent_at TEXT)"
    )

    def get(self, key: str) -> tuple[str | None, float | None]:
        """(SID, None) once accepted; (None, time) after an unclear attempt; else (None, None)."""
        with self.connect() as conn:
            row = conn.execute(
                "SELECT sid, attempted_at FROM sent WHERE dedupe_key = ?", (key,)
            ).fetchone()
        return (row[0], row[1]) if row else (None, None)

    def attempting(self, key: str, at: float) -> None:
        with self.connect() as conn:
            conn.execute(
                "INSERT INTO sent (dedupe_key, attempted_at) VALUES (?, ?) ON CONFLICT "
                "(dedupe_key) DO UPDATE SET attempted_at = excluded.attempted_at "
                "WHERE sid IS NULL",
                (key, at),
            )

    def not_sent(self, key: str) -> None:
        with self.connect() as conn:
            conn.execute("DELETE FROM sent WHERE dedupe_key = ? AND sid IS NULL", (key,))

    def sent(self, key: str, sid: str) -> None:
        with self.connect() as conn:
            conn.execute(
                "INSERT INTO sent (dedupe_key, sid, sent_at) VALUES (?, ?, ?) ON CONFLICT "
                "(dedupe_key) DO UPDATE SET sid = excluded.sid, sent_at = excluded.sent_at",
                (key, sid, datetime.now(UTC).isoformat()),
            )


class TwilioSmsNotifier:
    """Sends ``Message.text`` as an SMS to ``Message.to`` through Twilio."""

    def __init__(
        self,
        client: httpx.Client,
        *,
        account_sid: str,
        auth_token: Secret | str | None = None,
        api_key_sid: str | None = None,
        api_key_secret: Secret | str | None = None,
        sender: str | None = None,
        messaging_service_sid: str | None = None,
        status_callback: str | None = None,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = 10.0,
        ledger: Path | None = None,
    ) -> None:
        self.client = client
        self.account_sid = account_sid
        # Kept as given (a Secret hides its value); revealed only when a request is built.
        self._username = api_key_sid or account_sid
        self._password = api_key_secret if api_key_sid else auth_token
        self.sender = sender
        self.messaging_service_sid = messaging_service_sid
        self.status_callback = status_callback
        self.url = base_url.rstrip("/") + MESSAGES_PATH.format(account_sid=account_sid)
        self.timeout = timeout
        self._ledger = _Ledger(ledger) if ledger is not None else None

    def __repr__(self) -> str:
        return f"TwilioSmsNotifier(account_sid={self.account_sid!r})"

    def send(self, message: Message) -> Receipt:
        key = message.dedupe_key
        form = {"To": e164(message.to, "To"), "Body": message.text}
        if self.messaging_service_sid:
            form["MessagingServiceSid"] = self.messaging_service_sid
        if self.sender:
            form["From"] = (
                self.sender
                if _ALPHANUMERIC_SENDER.match(self.sender)
                else e164(self.sender, "From")
            )
        if self.status_callback:
            form["StatusCallback"] = self.status_callback
        if self._password is None:
            raise _error("no credentials: set auth_token or api_key_secret", transient=False)
        sid, attempted_at = self._ledger_call("read", key, lambda ledger: ledger.get(key))
        if sid is not None:
            return Receipt(provider_id=sid, detail="already sent")
        if attempted_at is not None:
            found = self._find(form, attempted_at)
            if found is not None:
                log.info("sms %s: found as %s after an unclear attempt", key, found["sid"])
                return self._accepted(key, found, "found after an unanswered attempt")
        self._ledger_call("write", key, lambda ledger: ledger.attempting(key, time.time()))
        try:
            response = self.client.post(
                self.url,
                data=form,
                auth=self._auth(),
                headers={"Accept": "application/json"},
                timeout=self.timeout,
            )
        except httpx.TimeoutException:
            log.warning("sms %s: no answer from Twilio within %ss", key, self.timeout)
            raise _error(
                f"no answer within {self.timeout}s (Twilio may have accepted it; the retry "
                "looks for it first)",
                transient=True,
            ) from None
        except httpx.TransportError as exc:
            if isinstance(exc, httpx.ConnectError):  # nothing reached Twilio
                self._ledger_call("write", key, lambda ledger: ledger.not_sent(key))
            raise _error(f"cannot reach Twilio: {type(exc).__name__}", transient=True) from None
        if response.status_code in (200, 201):
            return self._accepted(key, _json(response), None)
        if response.status_code < 500:  # refused; a 5xx may still have created it
            self._ledger_call("write", key, lambda ledger: ledger.not_sent(key))
        raise self._failure(key, response)

    def _auth(self) -> tuple[str, str]:
        assert self._password is not None
        return self._username, reveal(self._password)

    def _find(self, form: Mapping[str, str], since: float) -> dict[str, Any] | None:
        """The message an unanswered request may have created, looked up by To, From, Body.

        Twilio lists newest first. Nothing else identifies our request (no idempotency key,
        no client reference), so a body altered on Twilio's side is not recognised and the
        message is sent again: at least once, never lost.
        """
        params = {"To": form["To"], "PageSize": "50"}
        if "From" in form:
            params["From"] = form["From"]
        try:
            response = self.client.get(
                self.url, params=params, auth=self._auth(), timeout=self.timeout
            )
        except httpx.TransportError as exc:
            raise _error(
                f"cannot check Twilio for an earlier attempt: {type(exc).__name__}",
                transient=True,
            ) from None
        if response.status_code != 200:
            raise self._failure("(lookup)", response)
        for item in _json(response).get("messages") or []:
            if not isinstance(item, dict) or item.get("body") != form["Body"]:
                continue
            try:
                created = parsedate_to_datetime(str(item.get("date_created"))).timestamp()
            except (TypeError, ValueError):
                continue
            if created >= since - _CLOCK_SKEW and str(item.get("direction", "")).startswith(
                "outbound"
            ):
                return item
        return None

    def _ledger_call(self, what: str, key: str, call: Callable[[_Ledger], Any]) -> Any:
        if self._ledger is None:
            return (None, None) if what == "read" else None
        try:
            return call(self._ledger)
        except (OSError, sqlite3.Error) as exc:  # the ledger helps; it never stops a send
            log.warning("sms %s: ledger %s failed (%s)", key, what, type(exc).__name__)
            return (None, None) if what == "read" else None

    def _accepted(self, key: str, body: Mapping[str, Any], detail: str | None) -> Receipt:
        sid = str(body.get("sid") or "")
        status = str(body.get("status") or "accepted")
        if sid:
            self._ledger_call("write", key, lambda ledger: ledger.sent(key, sid))
        log.info("sms %s accepted by Twilio as %s (%s)", key, sid, status)
        return Receipt(provider_id=sid or None, detail=detail or status)

    def _failure(self, key: str, response: httpx.Response) -> NotifierError:
        body = _json(response)
        status = response.status_code
        raw_code = body.get("code")
        code = raw_code if isinstance(raw_code, int) else None
        reason = str(body.get("message") or response.reason_phrase or f"HTTP {status}")
        more = body.get("more_info")
        text = f"{reason} ({more})" if more else reason
        code_text = str(code) if code is not None else f"HTTP{status}"
        log.warning("sms %s: Twilio answered %s [%s]", key, status, code_text)
        if status == 429 or code == _RATE_LIMIT_CODE:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            return _error(text, transient=True, code=code_text, retry_after=retry_after)
        if status >= 500:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            return _error(text, transient=True, code=code_text, retry_after=retry_after)
        if status in (401, 403) or code in _AUTH_CODES:
            return _error(
                f"authentication failed, check account_sid and the token: {text}",
                transient=False,
                code=code_text,
            )
        field = _PERMANENT_CODES.get(code) if code is not None else None
        return _error(f"{field}: {text}" if field else text, transient=False, code=code_text)


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _factory(settings: Mapping[str, Any], context: PluginContext) -> TwilioSmsNotifier:
    return TwilioSmsNotifier(
        context.client,
        account_sid=settings["account_sid"],
        auth_token=settings.get("auth_token"),
        api_key_sid=settings.get("api_key_sid"),
        api_key_secret=settings.get("api_key_secret"),
        sender=settings.get("from"),
        messaging_service_sid=settings.get("messaging_service_sid"),
        status_callback=settings.get("status_callback"),
        base_url=settings.get("base_url", DEFAULT_BASE_URL),
        timeout=float(settings.get("timeout", 10)),
        ledger=context.path(settings.get("ledger", "twilio-sms-sent.sqlite")),
    )


@hookimpl
def fulfil_register_notifiers(register: Callable[[NotifierPlugin], None]) -> None:
    register(
        NotifierPlugin(
            name=NAME,
            channel="sms",
            factory=_factory,
            settings_schema=SETTINGS_SCHEMA,
            description="Sends SMS through Twilio (Messages API, 2010-04-01).",
        )
    )
