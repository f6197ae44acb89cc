"""Firebase Cloud Messaging push, HTTP v1: ``POST /v1/projects/{project_id}/messages:send``.

Settings (``SETTINGS_SCHEMA``): the service-account key, either ``service_account_file`` (a
path; relative to the data folder) or ``service_account_json`` (an ``env:NAME`` reference
holding the key's JSON); ``project_id`` (default: the key's); ``merchant_device_tokens``,
where messages addressed to ``"merchant"`` go; ``timeout``; ``dead_tokens_file``; and
``base_url`` / ``token_uri`` to point at test doubles.

Authorisation is OAuth 2.0 for service accounts: an RS256 JWT (``iss`` = the key's
``client_email``, ``scope`` = firebase.messaging, ``aud`` = ``token_uri``, ``iat``, ``exp``)
is exchanged at ``token_uri`` (``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer``)
for a bearer token, cached (one per notifier, behind a lock) until a minute before it
expires, or a tenth of its life for short ones.

FCM's answer (``error.details[].errorCode`` of type ``google.firebase.fcm.v1.FcmError``):

- ``UNREGISTERED`` (404), or ``INVALID_ARGUMENT`` about the registration token: the token is
  dead. It is written to ``dead_tokens_file`` (JSON, in the data folder) and never used
  again; a message with no live token left fails permanently without a request.
- ``QUOTA_EXCEEDED`` (429), ``UNAVAILABLE`` (503), ``INTERNAL`` (500), timeouts, connection
  errors: transient, ``retry_after`` from ``Retry-After``.
- 401 ``UNAUTHENTICATED``: the access token is fetched again once and the send retried;
  a second 401 is permanent, like ``THIRD_PARTY_AUTH_ERROR`` (APNs/web push credentials),
  ``SENDER_ID_MISMATCH`` and other 4xx.

FCM v1 has no idempotency key. A small SQLite ``ledger`` in the data folder records which
device took which message, so a retry (by any worker process) skips those devices: with
several merchant devices, one that failed does not make the others buzz twice. A timeout
after FCM accepted is the one case delivered twice. The dedupe key travels in
``data.dedupe_key`` and as ``apns-collapse-id``, so an app can drop a repeat and iOS shows
one notification for both.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import httpx
import jwt
from fulfil.core import hookimpl
from fulfil.core.context import PluginContext
from fulfil.core.errors import NotifierError
from fulfil.core.http import parse_retry_after
from fulfil.core.notifiers import Message, NotifierPlugin, Receipt, fan_out_failure
from fulfil.core.secrets import Secret, reveal
from fulfil.plugins.notifiers._ledger import SqliteLedger

__all__ = [
    "SETTINGS_SCHEMA",
    "DeadTokens",
    "FcmPushNotifier",
    "SentLedger",
    "ServiceAccount",
    "TokenSource",
]

NAME = "fcm_push"
SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
DEFAULT_BASE_URL = "https://fcm.googleapis.com"
DEFAULT_TOKEN_URI = "https://oauth2.googleapis.com/token"
MERCHANT = "merchant"

_TRANSIENT = frozenset({"QUOTA_EXCEEDED", "UNAVAILABLE", "INTERNAL"})

log = logging.getLogger(__name__)

SETTINGS_SCHEMA: Mapping[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": NAME,
    "description": "Send push notifications through Firebase Cloud Messaging (HTTP v1 API).",
    "type": "object",
    "additionalProperties": False,
    "oneOf": [
        {"required": ["service_account_file"]},
        {"required": ["service_account_json"]},
    ],
    "properties": {
        "service_account_file": {
            "type": "string",
            "minLength": 1,
            "description": "The service account's JSON key file (client_email, private_key, "
            "token_uri); relative to the data folder. Or use service_account_json.",
        },
        "service_account_json": {
            "type": "string",
            "minLength": 1,
            "description": 'The key\'s JSON itself, as a reference: "env:FCM_SERVICE_ACCOUNT".',
        },
        "project_id": {
            "type": "string",
            "minLength": 1,
            "description": "Firebase project id; defaults to the key's project_id.",
        },
        "merchant_device_tokens": {
            "type": "array",
            "items": {"type": "string", "minLength": 1},
            "uniqueItems": True,
            "default": [],
            "description": "Registration tokens of the merchant's devices: messages to "
            '"merchant" (new orders, alerts) go to each.',
        },
        "timeout": {
            "type": "number",
            "exclusiveMinimum": 0,
            "default": 10,
            "description": "Seconds to wait for FCM or the token endpoint before retrying later.",
        },
        "dead_tokens_file": {
            "type": "string",
            "minLength": 1,
            "default": "fcm-dead-tokens.json",
            "description": "JSON file of the tokens FCM reported unregistered or invalid, "
            "never used again; relative to the data folder.",
        },
        "ledger": {
            "type": "string",
            "minLength": 1,
            "default": "fcm-sent.sqlite",
            "description": "SQLite file recording which devices got which message, so a "
            "retry skips them; relative to the data folder.",
        },
        "base_url": {
            "type": "string",
            "format": "uri",
            "default": DEFAULT_BASE_URL,
            "description": "FCM API root; change it only to point at a test double.",
        },
        "token_uri": {
            "type": "string",
            "format": "uri",
            "description": "OAuth 2.0 token endpoint; defaults to the key's token_uri.",
        },
    },
}


def _error(
    message: str, *, transient: bool, code: str | None = None, retry_after: float | None = None
) -> NotifierError:
    return NotifierError(NAME, message, transient=transient, code=code, retry_after=retry_after)


# --- credentials ------------------------------------------------------------------------


@attrs.frozen
class ServiceAccount:
    """The parts of a service-account key the JWT grant needs; ``repr`` hides the key."""

    client_email: str
    private_key: str = attrs.field(repr=False)
    token_uri: str = DEFAULT_TOKEN_URI
    private_key_id: str | None = None
    project_id: str | None = None

    @classmethod
    def from_json(cls, text: str, source: str) -> ServiceAccount:
        """Parse a key; errors name ``source`` and the field, never a value."""
        try:
            data = json.loads(text)
        except ValueError:
            raise _error(f"{source}: not JSON", transient=False, code="CREDENTIALS") from None
        if not isinstance(data, dict):
            raise _error(f"{source}: not a JSON object", transient=False, code="CREDENTIALS")
        for field in ("client_email", "private_key"):
            if not isinstance(data.get(field), str) or not data[field]:
                raise _error(f"{source}: {field} is missing", transient=False, code="CREDENTIALS")
        return cls(
            client_email=data["client_email"],
            private_key=data["private_key"],
            token_uri=data.get("token_uri") or DEFAULT_TOKEN_URI,
            private_key_id=data.get("private_key_id"),
            project_id=data.get("project_id"),
        )


@attrs.frozen
class _AccessToken:
    value: str = attrs.field(repr=False)
    refresh_at: float  # on the notifier's clock


class TokenSource:
    """OAuth 2.0 access tokens for a service account, cached until shortly before expiry."""

    def __init__(
        self,
        client: httpx.Client,
        account: Callable[[], ServiceAccount],
        *,
        token_uri: str | None = None,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self._account = account
        self._token_uri = token_uri
        self.timeout = timeout
        self.clock = clock
        self._token: _AccessToken | None = None
        self._lock = threading.Lock()

    def get(self, *, stale: str | None = None) -> str:
        """A valid access token; ``stale`` is one the API refused, to be replaced."""
        with self._lock:
            token = self._token
            if token is not None and token.value != stale and self.clock() < token.refresh_at:
                return token.value
            self._token = self._fetch()
            return self._token.value

    def _fetch(self) -> _AccessToken:
        account = self._account()
        token_uri = self._token_uri or account.token_uri
        now = int(time.time())  # JWT times are wall-clock seconds
        claims = {
            "iss": account.client_email,
            "scope": SCOPE,
            "aud": token_uri,
            "iat": now,
            "exp": now + 3600,
        }
        headers = {"kid": account.private_key_id} if account.private_key_id else None
        try:
            assertion = jwt.encode(claims, account.private_key, algorithm="RS256", headers=headers)
        except (ValueError, TypeError, jwt.PyJWTError) as exc:
            raise _error(
                f"the service account's private_key cannot sign ({type(exc).__name__})",
                transient=False,
                code="CREDENTIALS",
            ) from None
        started = self.clock()
        try:
            response = self.client.post(
                token_uri,
                data={"grant_type": GRANT_TYPE, "assertion": assertion},
                timeout=self.timeout,
            )
        except httpx.TimeoutException:
            raise _error("token endpoint: no answer in time", transient=True) from None
        except httpx.TransportError as exc:
            raise _error(f"token endpoint: {type(exc).__name__}", transient=True) from None
        body = _json(response)
        if response.status_code != 200:
            error: Any = body.get("error")
            description: Any = body.get("error_description")
            if isinstance(error, dict):  # a Google API error body rather than OAuth's
                description = error.get("message")
                error = error.get("status")
            code = str(error or f"HTTP{response.status_code}")
            reason = str(description or response.reason_phrase)
            transient = response.status_code == 429 or response.status_code >= 500
            log.warning("fcm token endpoint answered %s [%s]", response.status_code, code)
            raise _error(
                f"token endpoint refused the service account: {reason}",
                transient=transient,
                code=code,
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
            )
        value, expires_in = body.get("access_token"), body.get("expires_in", 3600)
        if not isinstance(value, str) or not isinstance(expires_in, int | float):
            raise _error("token endpoint: no access_token in its answer", transient=True)
        margin = min(60.0, expires_in / 10)
        log.debug("fcm access token obtained, valid %ss", expires_in)
        return _AccessToken(value, started + expires_in - margin)


# --- dead tokens ------------------------------------------------------------------------


class DeadTokens:
    """Registration tokens FCM called dead, in a JSON file shared by every process."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def __contains__(self, token: object) -> bool:
        return token in self.read()

    def read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("fcm dead-token file %s unreadable: %s", self.path, type(exc).__name__)
            return {}
        tokens = data.get("dead_tokens") if isinstance(data, dict) else None
        return tokens if isinstance(tokens, dict) else {}

    def add(self, token: str, reason: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        with self._lock, open(lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
            tokens = self.read()
            tokens[token] = {"reason": reason, "since": datetime.now(UTC).isoformat()}
            tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"dead_tokens": tokens}, indent=2), encoding="utf-8")
            os.replace(tmp, self.path)


class SentLedger(SqliteLedger):
    """(dedupe key, device) -> FCM's message name, in SQLite shared by every process.

    Devices are stored as a SHA-256, so the file is no list of registration tokens.
    """

    schema = (
        "CREATE TABLE IF NOT EXISTS sent (dedupe_key TEXT, device TEXT, name TEXT, "
        "sent_at TEXT, PRIMARY KEY (dedupe_key, device))"
    )

    def get(self, key: str, device: str) -> str | None:
        with self.connect() as conn:
            row = conn.execute(
                "SELECT name FROM sent WHERE dedupe_key = ? AND device = ?", (key, _digest(device))
            ).fetchone()
        return row[0] if row else None

    def put(self, key: str, device: str, name: str) -> None:
        with self.connect() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO sent VALUES (?, ?, ?, ?)",
                (key, _digest(device), name, datetime.now(UTC).isoformat()),
            )


def _digest(device: str) -> str:
    return hashlib.sha256(device.encode()).hexdigest()


# --- the notifier -----------------------------------------------------------------------


@attrs.frozen
class _Outcome:
    name: str | None = None  # FCM's message name on success
    error: NotifierError | None = None


class FcmPushNotifier:
    """Sends ``Message.subject``/``text`` as a notification to each device of the recipient."""

    def __init__(
        self,
        client: httpx.Client,
        account: Callable[[], ServiceAccount],
        *,
        project_id: str | None = None,
        merchant_device_tokens: Iterable[str] = (),
        dead_tokens: DeadTokens,
        ledger: SentLedger | None = None,
        base_url: str = DEFAULT_BASE_URL,
        token_uri: str | None = None,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self._account = account
        self._project_id = project_id
        self.merchant_device_tokens = tuple(merchant_device_tokens)
        self.dead_tokens = dead_tokens
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.tokens = TokenSource(
            client, account, token_uri=token_uri, timeout=timeout, clock=clock
        )
        self.ledger = ledger

    def __repr__(self) -> str:
        return f"FcmPushNotifier(project_id={self._project_id!r})"

    def send(self, message: Message) -> Receipt:
        devices = self.merchant_device_tokens if message.to == MERCHANT else (message.to,)
        if not devices or not all(devices):
            raise _error("no device token for this recipient", transient=False, code="NO_DEVICE")
        dead = self.dead_tokens.read()
        live = [d for d in devices if d not in dead]
        if not live:
            raise _error(
                f"every device token is dead ({len(devices)})", transient=False, code="UNREGISTERED"
            )
        outcomes = [self._send_once(message, device) for device in live]
        names = [o.name for o in outcomes if o.error is None]
        errors = [o.error for o in outcomes if o.error is not None]
        # On a retry, devices that took it are skipped (the ledger).
        failure = fan_out_failure(NAME, errors, len(live), len(names), "device(s)")
        if failure is not None:
            raise failure
        detail = f"{len(names)} device(s)"
        if errors:
            detail += f", {len(errors)} failed for good ({errors[0].code})"
        return Receipt(provider_id=next((n for n in names if n), None), detail=detail)

    def _send_once(self, message: Message, device: str) -> _Outcome:
        key = message.dedupe_key
        name = self._ledger("read", key, lambda ledger: ledger.get(key, device))
        if name is not None:
            return _Outcome(name=name)
        try:
            name = self._post(message, device)
        except NotifierError as error:
            if error.code in ("UNREGISTERED", "INVALID_TOKEN"):
                log.warning("push %s: device token marked dead (%s)", key, error.code)
                try:
                    self.dead_tokens.add(device, str(error.code))
                except OSError as exc:  # FCM will say it again next time
                    log.warning("push %s: dead token not recorded: %s", key, exc.strerror)
            return _Outcome(error=error)
        self._ledger("write", key, lambda ledger: ledger.put(key, device, name))
        log.info("push %s accepted by FCM as %s", key, name)
        return _Outcome(name=name)

    def _ledger(self, what: str, key: str, call: Callable[[SentLedger], Any]) -> Any:
        if self.ledger is None:
            return None
        try:
            return call(self.ledger)
        except (OSError, sqlite3.Error) as exc:  # the ledger helps; it never stops a send
            log.warning("push %s: ledger %s failed (%s)", key, what, type(exc).__name__)
            return None

    def _post(self, message: Message, device: str) -> str:
        url = f"{self.base_url}/v1/projects/{self.project_id}/messages:send"
        body = {"message": _fcm_message(message, device)}
        stale: str | None = None
        for attempt in (1, 2):
            token = self.tokens.get(stale=stale)
            try:
                response = self.client.post(
                    url,
                    json=body,
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=self.timeout,
                )
            except httpx.TimeoutException:
                raise _error("no answer from FCM in time", transient=True) from None
            except httpx.TransportError as exc:
                raise _error(f"cannot reach FCM: {type(exc).__name__}", transient=True) from None
            if response.status_code == 200:
                return str(_json(response).get("name") or "")
            error = _failure(response)
            if error.code == "UNAUTHENTICATED" and attempt == 1:
                log.info("push %s: access token refused, fetching a new one", message.dedupe_key)
                stale = token
                continue
            raise error
        raise AssertionError("unreachable")  # pragma: no cover

    @property
    def project_id(self) -> str:
        project = self._project_id or self._account().project_id
        if not project:
            raise _error("project_id: not set and not in the key", transient=False)
        return project


def _fcm_message(message: Message, device: str) -> dict[str, Any]:
    data = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in message.data.items()}
    data.update(dedupe_key=message.dedupe_key, order_id=message.order_id, event=message.event)
    collapse = hashlib.sha256(message.dedupe_key.encode()).hexdigest()[:32]
    return {
        "token": device,
        "notification": {"title": message.subject, "body": message.text},
        "data": data,
        "apns": {"headers": {"apns-collapse-id": collapse}},
    }


def _failure(response: httpx.Response) -> NotifierError:
    """FCM's error body (``{"error": {"code", "message", "status", "details"}}``) mapped."""
    body = _json(response).get("error")
    error = body if isinstance(body, dict) else {}
    status = response.status_code
    reason = str(error.get("message") or response.reason_phrase or f"HTTP {status}")
    canonical = str(error.get("status") or "")
    fcm_code, fields = None, []
    for detail in error.get("details") or []:
        if not isinstance(detail, dict):
            continue
        if str(detail.get("@type", "")).endswith("google.firebase.fcm.v1.FcmError"):
            fcm_code = detail.get("errorCode")
        for violation in detail.get("fieldViolations") or []:
            if isinstance(violation, dict):
                fields.append(str(violation.get("field", "")))
    code = str(fcm_code or canonical or f"HTTP{status}")
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    if code == "UNREGISTERED":  # FcmError's word only: a bare 404 may be a wrong project_id
        return _error(f"token: {reason}", transient=False, code="UNREGISTERED")
    if code == "INVALID_ARGUMENT" and (
        "message.token" in fields or "registration token" in reason.lower()
    ):
        return _error(f"token: {reason}", transient=False, code="INVALID_TOKEN")
    if status == 401 and code != "THIRD_PARTY_AUTH_ERROR":
        return _error(
            f"FCM refused the access token: {reason}", transient=False, code="UNAUTHENTICATED"
        )
    if code in _TRANSIENT or status == 429 or status >= 500:
        return _error(reason, transient=True, code=code, retry_after=retry_after)
    return _error(reason, transient=False, code=code)


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _account_loader(
    settings: Mapping[str, Any], context: PluginContext
) -> Callable[[], ServiceAccount]:
    """Read the key on first use (so a bad key fails a send, not the worker), then keep it."""
    lock = threading.Lock()
    loaded: list[ServiceAccount] = []

    def load() -> ServiceAccount:
        with lock:
            if not loaded:
                loaded.append(_read_account(settings, context))
            return loaded[0]

    return load


def _read_account(settings: Mapping[str, Any], context: PluginContext) -> ServiceAccount:
    inline: Secret | str | None = settings.get("service_account_json")
    if inline is not None:
        source = (
            f"service_account_json ({inline.name})"
            if isinstance(inline, Secret)
            else ("service_account_json")
        )
        return ServiceAccount.from_json(reveal(inline), source)
    path = context.path(settings["service_account_file"])
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise _error(
            f"service_account_file {path}: {exc.strerror or type(exc).__name__}",
            transient=False,
            code="CREDENTIALS",
        ) from None
    return ServiceAccount.from_json(text, f"service_account_file {path}")


def _factory(settings: Mapping[str, Any], context: PluginContext) -> FcmPushNotifier:
    return FcmPushNotifier(
        context.client,
        _account_loader(settings, context),
        project_id=settings.get("project_id"),
        merchant_device_tokens=settings.get("merchant_device_tokens", ()),
        ledger=SentLedger(context.path(settings.get("ledger", "fcm-sent.sqlite"))),
        dead_tokens=DeadTokens(
            context.path(settings.get("dead_tokens_file", "fcm-dead-tokens.json"))
        ),
        base_url=settings.get("base_url", DEFAULT_BASE_URL),
        token_uri=settings.get("token_uri"),
        timeout=float(settings.get("timeout", 10)),
    )


@hookimpl
def fulfil_register_notifiers(register: Callable[[NotifierPlugin], None]) -> None:
    register(
        NotifierPlugin(
            name=NAME,
            channel="push",
            factory=_factory,
            settings_schema=SETTINGS_SCHEMA,
            description="Sends push notifications through Firebase Cloud Messaging (HTTP v1).",
        )
    )
