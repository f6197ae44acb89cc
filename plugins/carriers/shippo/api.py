"""One job: speak HTTP to Shippo and turn every failure into a ``CarrierError``.

Requests go through the ``httpx.Client`` the core injected, with
``Authorization: ShippoToken <token>`` (and ``SHIPPO-API-VERSION`` when configured).
Label files are fetched from ``label_url`` *without* that header: Shippo serves them from
pre-signed storage URLs, and the token must never travel to another host.

Error mapping (https://docs.goshippo.com/docs/api_concepts/apihttpstatuscodes):

=============================================  ==================  ======================
what happened                                  kind                kept
=============================================  ==================  ======================
400, 422 (``{field: [messages]}`` bodies)      validation          field path, message
401, 403 (``{"detail": ...}``)                 auth                detail
429                                            rate_limited        Retry-After (seconds)
5xx; connect error / timeout before sending    unavailable         status, detail
timeout or reset after a purchase was sent     unknown_outcome     method and path only
other 4xx (404 ``{"detail": ...}``, 409)       rejected            detail
=============================================  ==================  ======================
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
from fulfil.core.errors import CarrierError, CarrierErrorKind
from fulfil.core.http import parse_retry_after
from fulfil.core.secrets import Secret

__all__ = ["CARRIER", "ShippoAPI", "field_errors", "transaction_failed"]

CARRIER = "shippo"

# Keys Shippo (a Django REST framework API) uses for errors that concern no single field.
_NON_FIELD_KEYS = frozenset({"__all__", "non_field_errors", "detail"})


def field_errors(body: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str | None, str]]:
    """``(field path, message)`` pairs from a 400 body.

    Shippo answers ``{"address_to": {"zip": ["..."]}}``, ``{"address_from": [{"__all__":
    ["..."]}]}`` or ``{"__all__": ["..."]}``: nested mappings and lists down to strings.
    """
    if isinstance(body, str):
        yield (".".join(path) or None), body
    elif isinstance(body, Mapping):
        for key, value in body.items():
            part = () if str(key) in _NON_FIELD_KEYS else (str(key),)
            yield from field_errors(value, path + part)
    elif isinstance(body, list):
        for index, value in enumerate(body):
            if isinstance(value, Mapping | list) and len(body) > 1 and path:
                indexed = (*path[:-1], f"{path[-1]}[{index}]")
                yield from field_errors(value, indexed)
            else:
                yield from field_errors(value, path)


def transaction_failed(transaction: Mapping[str, Any]) -> CarrierError:
    """A transaction answered ``status: "ERROR"`` (HTTP 200): the carrier refused the label.

    ``messages`` hold ``{source, code, text}``; the first code is kept, every text shown.
    """
    messages = [m for m in transaction.get("messages") or () if isinstance(m, Mapping)]
    first: Mapping[str, Any] = messages[0] if messages else {}
    text = "; ".join(
        f"{m.get('source') or 'Shippo'}: {m.get('text') or m.get('code')}" for m in messages
    )
    status = transaction.get("status")
    return CarrierError(
        CARRIER,
        "validation",
        text or f"transaction {transaction.get('object_id')} ended in {status}",
        code=str(first["code"]) if first.get("code") else None,
        field=str(first["field"]) if first.get("field") else None,
        status_code=200,
    )


class ShippoAPI:
    """Authenticated JSON requests to one Shippo base URL, through the injected client."""

    def __init__(
        self,
        client: httpx.Client,
        token: Secret | str,
        base_url: str,
        api_version: str | None = None,
    ) -> None:
        self.client = client
        self._token = token
        self.base_url = base_url.rstrip("/")
        self.api_version = api_version

    def __repr__(self) -> str:
        return f"ShippoAPI(base_url={self.base_url!r})"

    # --- requests -------------------------------------------------------------------------

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: Mapping[str, Any], *, purchase: bool = False) -> Any:
        """POST ``body``; ``purchase``: the request spends money, so a timeout after it was
        sent leaves the outcome unknown (the caller reconciles, never buys again blindly)."""
        return self.request("POST", path, json=body, purchase=purchase)

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        purchase: bool = False,
    ) -> Any:
        url = path if path.startswith(("http://", "https://")) else self.base_url + path
        try:
            response = self.client.request(
                method, url, json=json, params=params, headers=self._headers()
            )
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, method, path, purchase) from None
        if response.is_success:
            try:
                return response.json()
            except ValueError:
                raise self._error(
                    "unavailable",
                    f"{method} {path}: answered {response.status_code} with a body that is "
                    "not JSON",
                    status_code=response.status_code,
                ) from None
        raise self._status_error(response, method, path)

    def download(self, url: str, attempts: int = 3) -> bytes:
        """The bytes at ``label_url``, fetched without credentials; retried on transport
        errors and 5xx. Raises ``CarrierError`` (unavailable) if it cannot be had."""
        last: CarrierError | None = None
        for attempt in range(attempts):
            if attempt:
                time.sleep(0.1 * attempt)
            try:
                response = self.client.get(url)
            except httpx.HTTPError as exc:
                last = self._error("unavailable", f"label download failed ({type(exc).__name__})")
                continue
            if response.is_success:
                return response.content
            last = self._error(
                "unavailable",
                f"label download answered {response.status_code}",
                status_code=response.status_code,
            )
            if response.status_code < 500:
                break
        assert last is not None
        raise last

    # --- helpers --------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        token = self._token.reveal() if isinstance(self._token, Secret) else self._token
        headers = {"Authorization": f"ShippoToken {token}", "Accept": "application/json"}
        if self.api_version:
            headers["SHIPPO-API-VERSION"] = self.api_version
        return headers

    def _scrub(self, text: str) -> str:
        token = self._token.reveal() if isinstance(self._token, Secret) else self._token
        return text.replace(token, "[redacted]") if token else text

    def _error(
        self,
        kind: CarrierErrorKind,
        message: str,
        *,
        code: str | None = None,
        field: str | None = None,
        retry_after: float | None = None,
        status_code: int | None = None,
    ) -> CarrierError:
        return CarrierError(
            CARRIER,
            kind,
            self._scrub(message),
            code=code,
            field=field,
            retry_after=retry_after,
            status_code=status_code,
        )

    def _transport_error(
        self, exc: httpx.HTTPError, method: str, path: str, purchase: bool
    ) -> CarrierError:
        name = type(exc).__name__
        never_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
        if purchase and not never_sent:
            # The request reached Shippo (or may have): it may have bought the label.
            return self._error(
                "unknown_outcome",
                f"{method} {path}: no answer after the request was sent ({name}); the label "
                "may have been bought",
                code=name,
            )
        return self._error("unavailable", f"{method} {path}: {name}", code=name)

    def _status_error(self, response: httpx.Response, method: str, path: str) -> CarrierError:
        status = response.status_code
        try:
            body: Any = response.json()
        except ValueError:
            body = response.text[:300]
        detail = _detail(body) or response.reason_phrase or f"HTTP {status}"
        code = body.get("code") if isinstance(body, Mapping) else None
        code = str(code) if code is not None else None
        if status in (400, 422):
            pairs = list(field_errors(body))
            field, message = pairs[0] if pairs else (None, detail)
            if len(pairs) > 1:
                message += "; " + "; ".join(f"{f or 'request'}: {m}" for f, m in pairs[1:])
            return self._error("validation", message, code=code, field=field, status_code=status)
        if status in (401, 403):
            return self._error("auth", detail, code=code, status_code=status)
        if status == 429:
            return self._error(
                "rate_limited",
                detail,
                code=code,
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
                status_code=status,
            )
        if status >= 500:
            return self._error(
                "unavailable", f"{method} {path}: {detail}", code=code, status_code=status
            )
        return self._error("rejected", detail, code=code, status_code=status)


def _detail(body: Any) -> str | None:
    if isinstance(body, Mapping):
        for key in ("detail", "message", "title"):
            if isinstance(body.get(key), str):
                return str(body[key])
        return None
    if isinstance(body, str) and body.strip():
        return body.strip()
    return None
