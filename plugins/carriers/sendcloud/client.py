"""HTTP to Sendcloud through the core's ``httpx.Client``, and its errors as ``CarrierError``.

Every request carries HTTP Basic credentials (public key : secret key), revealed only
while the request is built; they are never logged nor put in an exception. Failures map
onto the core's taxonomy:

==================================  ==========================================
400, 422                            ``validation`` (Sendcloud's code, detail, field)
401, 403                            ``auth``
429                                 ``rate_limited`` (``retry_after`` from Retry-After)
5xx; no connection made             ``unavailable``
timeout/reset after sending         ``unknown_outcome`` on a purchase, else ``unavailable``
any other 4xx                       ``rejected``
==================================  ==========================================

Sendcloud answers errors in several documented shapes, all understood here: the v3
JSON:API list ``{"errors": [{"status", "code", "detail", "source": {"pointer"}}]}``, the
Returns API's ``{"errors": [{"field", "message", "code"}]}`` and ``{"error": {"code",
"message"}}``, and the tracking API's ``{"detail": ...}``.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import attrs
import httpx
from fulfil.core.errors import CarrierError, CarrierErrorKind
from fulfil.core.http import parse_retry_after
from fulfil.core.secrets import Secret, reveal

__all__ = ["CARRIER", "ApiError", "SendcloudClient", "api_errors", "error_for"]

CARRIER = "sendcloud"


@attrs.frozen
class ApiError:
    """One error item of a Sendcloud error body."""

    message: str
    code: str | None = None
    field: str | None = None


def _field(pointer: Any) -> str | None:
    """``/to_address/postal_code`` -> ``to_address.postal_code``; ``/parcels/0/weight`` ->
    ``parcels[0].weight``. The async endpoints nest the body under ``/data/attributes``."""
    if not isinstance(pointer, str) or pointer.strip("/") == "":
        return None
    parts = pointer.strip("/").split("/")
    if parts[:2] == ["data", "attributes"]:
        parts = parts[2:]
    text = ""
    for part in parts:
        text += f"[{part}]" if part.isdigit() else (f".{part}" if text else part)
    return text or None


def _text(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def api_errors(body: Any) -> list[ApiError]:
    """The error items of a Sendcloud error body, whatever its documented shape."""
    if not isinstance(body, Mapping):
        return []
    found: list[ApiError] = []
    items = body.get("errors")
    if isinstance(items, Mapping):
        items = [items]
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, Mapping):
            continue
        source = item.get("source")
        pointer = source.get("pointer") if isinstance(source, Mapping) else None
        message = item.get("detail") or item.get("message") or item.get("title") or "error"
        found.append(
            ApiError(
                str(message), _text(item.get("code")), _field(pointer) or _text(item.get("field"))
            )
        )
    legacy = body.get("error")
    if isinstance(legacy, Mapping):
        found.append(ApiError(str(legacy.get("message") or "error"), _text(legacy.get("code"))))
    detail = body.get("detail")
    if isinstance(detail, str):
        found.append(ApiError(detail))
    elif isinstance(detail, list):
        for item in detail:
            if isinstance(item, Mapping):
                loc = [str(p) for p in item.get("loc", []) if p != "body"]
                field = _field("/" + "/".join(loc)) if loc else None
                found.append(
                    ApiError(str(item.get("msg") or "invalid"), _text(item.get("type")), field)
                )
    return found


def _kind(status: int) -> CarrierErrorKind:
    if status in (400, 422):
        return "validation"
    if status in (401, 403):
        return "auth"
    if status == 429:
        return "rate_limited"
    if status >= 500:
        return "unavailable"
    return "rejected"


def error_for(response: httpx.Response, what: str) -> CarrierError:
    """The ``CarrierError`` for an unsuccessful answer to ``what`` ("POST /shipments")."""
    try:
        body = response.json()
    except ValueError:
        body = None
    items = api_errors(body)
    status = response.status_code
    if items:
        first = items[0]
        others = [f"{e.field}: {e.message}" if e.field else e.message for e in items[1:]]
        message = "; ".join([first.message, *others])
        code, field = first.code, first.field
    else:
        message = f"{what} answered {status} {response.reason_phrase}".strip()
        code = field = None
    return CarrierError(
        CARRIER,
        _kind(status),
        message,
        code=code,
        field=field,
        retry_after=parse_retry_after(response.headers.get("Retry-After"))
        if status == 429
        else None,
        status_code=status,
    )


class SendcloudClient:
    """Requests to one Sendcloud account, errors mapped to ``CarrierError``."""

    def __init__(
        self,
        http: httpx.Client,
        base_url: str,
        public_key: Secret | str,
        secret_key: Secret | str,
        *,
        partner_id: str | None = None,
        timeout: float | None = None,
        log: logging.Logger | None = None,
    ) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self._public_key = public_key
        self._secret_key = secret_key
        self.partner_id = partner_id
        self.timeout = timeout
        self.log = log or logging.getLogger(f"fulfil.plugin.{CARRIER}")

    def __repr__(self) -> str:
        return f"SendcloudClient(base_url={self.base_url!r})"

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def owns(self, url: str) -> bool:
        """Whether ``url`` is on Sendcloud's host, so the credentials may be sent to it."""
        ours, theirs = urlsplit(self.base_url), urlsplit(url)
        return (ours.scheme, ours.netloc) == (theirs.scheme, theirs.netloc)

    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | Sequence[tuple[str, Any]] | None = None,
        accept: str = "application/json",
        purchase: bool = False,
        allow: Collection[int] = (),
    ) -> httpx.Response:
        """Send one request; return a 2xx answer (or one whose status is in ``allow``).

        ``purchase``: the request creates something that costs money, so a failure after
        it was sent is an unknown outcome rather than a plain outage.
        """
        url = path_or_url if "://" in path_or_url else self.url(path_or_url)
        what = f"{method} {urlsplit(url).path}"
        headers = {"Accept": accept}
        if self.partner_id:
            headers["Sendcloud-Partner-Id"] = self.partner_id
        extra: dict[str, Any] = {}
        if self.timeout is not None:
            extra["timeout"] = self.timeout
        try:
            response = self.http.request(
                method,
                url,
                json=json,
                params=params,  # type: ignore[arg-type]
                headers=headers,
                auth=httpx.BasicAuth(reveal(self._public_key), reveal(self._secret_key)),
                **extra,
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # Nothing reached Sendcloud: safe to try again.
            raise CarrierError(
                CARRIER, "unavailable", f"{what}: cannot reach Sendcloud ({type(exc).__name__})"
            ) from None
        except httpx.HTTPError as exc:
            kind: CarrierErrorKind = "unknown_outcome" if purchase else "unavailable"
            detail = "the request was sent but no answer came back"
            raise CarrierError(CARRIER, kind, f"{what}: {detail} ({type(exc).__name__})") from None
        self.log.debug("%s -> %d", what, response.status_code)
        if response.is_success or response.status_code in allow:
            return response
        raise error_for(response, what)

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs).json()

    def post(self, path: str, body: Any = None, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, json=body, **kwargs)
