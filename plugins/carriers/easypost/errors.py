"""EasyPost answers and transport failures as ``CarrierError``, keeping EasyPost's reason.

An error body is ``{"error": {"code", "message", "errors"}}`` where ``errors`` holds
FieldError objects (``{"field", "message", "suggestion"}``), or plain strings, or, in older
answers, ``{"<field>": "<message>"}`` pairs: all three are read.

==================================== ===============================================
HTTP 400, 422                        ``validation`` (EasyPost's code, message, field)
HTTP 401, 403                        ``auth``
HTTP 429                             ``rate_limited`` with ``Retry-After``
HTTP 5xx; no connection              ``unavailable`` (nothing was bought)
timeout or broken answer to a buy    ``unknown_outcome``: reconcile by reference
purchase codes EasyPost uses when    ``unknown_outcome`` (SHIPMENT.POSTAGE.NO_RESPONSE,
the carrier did not answer           SHIPMENT.PURCHASE.IN_PROGRESS, ...)
any other 4xx (402, 404, 409, ...)   ``rejected``
==================================== ===============================================
"""

from __future__ import annotations

from typing import Any

import httpx
from fulfil.core.errors import CarrierError, CarrierErrorKind
from fulfil.core.http import parse_retry_after

__all__ = ["CARRIER", "from_response", "from_transport", "rejected"]

CARRIER = "easypost"

# Purchase answers that say the carrier was asked but did not (yet) confirm.
AMBIGUOUS_PURCHASE_CODES = frozenset(
    {"SHIPMENT.POSTAGE.NO_RESPONSE", "SHIPMENT.POSTAGE.TIMED_OUT", "SHIPMENT.PURCHASE.IN_PROGRESS"}
)

# Raised before a byte left: a retry cannot buy twice.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


def rejected(message: str, *, code: str, field: str | None = None) -> CarrierError:
    return CarrierError(CARRIER, "rejected", message, code=code, field=field)


def from_transport(exc: httpx.HTTPError, *, purchase: bool) -> CarrierError:
    """A request that got no HTTP answer. Only the exception's class and text are kept:
    httpx never puts headers (the credentials) in either."""
    reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if isinstance(exc, _NOT_SENT) or not purchase:
        return CarrierError(CARRIER, "unavailable", f"EasyPost could not be reached ({reason})")
    return CarrierError(
        CARRIER,
        "unknown_outcome",
        f"no answer to a purchase that EasyPost may have received ({reason}); "
        "reconcile by reference before buying again",
    )


def from_response(response: httpx.Response, *, purchase: bool) -> CarrierError:
    status = response.status_code
    code, message, field = _parse(response)
    kind: CarrierErrorKind
    retry_after = None
    if status == 429:
        kind, retry_after = "rate_limited", parse_retry_after(response.headers.get("retry-after"))
    elif status in (401, 403):
        kind = "auth"
    elif status >= 500:
        kind = "unavailable"
    elif purchase and code in AMBIGUOUS_PURCHASE_CODES:
        kind = "unknown_outcome"
    elif status in (400, 422):
        kind = "validation"
    else:
        kind = "rejected"
    return CarrierError(
        CARRIER,
        kind,
        message or response.reason_phrase or f"HTTP {status}",
        code=code,
        field=field,
        retry_after=retry_after,
        status_code=status,
    )


def _parse(response: httpx.Response) -> tuple[str | None, str, str | None]:
    try:
        body = response.json()
    except ValueError:
        return None, response.text[:200].strip(), None
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None, "", None
    code = error.get("code") if isinstance(error.get("code"), str) else None
    message = _text(error.get("message"))
    details: list[str] = []
    field = None
    for item in error.get("errors") or ():
        if isinstance(item, str):
            details.append(item)
        elif isinstance(item, dict) and "field" in item:
            field = field or str(item["field"])
            details.append(f"{item['field']}: {_text(item.get('message'))}")
        elif isinstance(item, dict):  # the older {"to_address": "Required and missing."}
            for name, text in item.items():
                field = field or str(name)
                details.append(f"{name}: {_text(text)}")
    if details:
        message = f"{message} ({'; '.join(details)})" if message else "; ".join(details)
    return code, message, field


def _text(value: Any) -> str:
    # EasyPost documents a string, but its client libraries also meet lists and dicts.
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(_text(v) for v in value.values())
    return "" if value is None else str(value)
