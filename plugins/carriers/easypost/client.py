"""The HTTP edge: EasyPost's base URL and Basic auth over the core's ``httpx.Client``.

The API key is the Basic user name with an empty password; the header is built once and
sent only to ``base_url``, never to a label URL (EasyPost serves those from file storage,
and a key must not travel to another host).
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote

import httpx
from fulfil.core.errors import CarrierError
from fulfil.plugins.carriers.easypost.errors import CARRIER, from_response, from_transport

__all__ = ["EasyPostApi", "quote_id"]


def quote_id(value: str) -> str:
    """An id or reference as one path segment (references are idempotency keys: ``a:b:1``)."""
    return quote(value, safe="")


class EasyPostApi:
    def __init__(self, client: httpx.Client, base_url: str, api_key: str) -> None:
        self._client = client
        self._base = base_url.rstrip("/")
        token = base64.b64encode(f"{api_key}:".encode()).decode("ascii")
        self._headers = {"Authorization": f"Basic {token}", "Accept": "application/json"}

    def __repr__(self) -> str:
        return f"EasyPostApi({self._base!r})"

    def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        purchase: bool = False,
    ) -> dict[str, Any]:
        """One API request; the decoded JSON body, or ``CarrierError``.

        ``purchase``: the request may buy something, so a lost answer is an unknown outcome.
        """
        response = self._send(method, path, json, params, purchase)
        if response.is_success:
            return self._body(response, purchase)
        raise from_response(response, purchase=purchase)

    def find(self, path: str) -> dict[str, Any] | None:
        """GET ``path``; ``None`` when EasyPost answers 404 (the usual answer before a buy)."""
        response = self._send("GET", path, None, None, False)
        if response.status_code == 404:
            return None
        if response.is_success:
            return self._body(response, False)
        raise from_response(response, purchase=False)

    def _send(
        self, method: str, path: str, json: Any, params: dict[str, Any] | None, purchase: bool
    ) -> httpx.Response:
        try:
            return self._client.request(
                method, self._base + path, json=json, params=params, headers=self._headers
            )
        except httpx.HTTPError as exc:
            raise from_transport(exc, purchase=purchase) from None

    def _body(self, response: httpx.Response, purchase: bool) -> dict[str, Any]:
        try:
            body: dict[str, Any] = response.json()
        except ValueError:
            raise self._broken(response, purchase) from None
        return body

    def download(self, url: str) -> bytes:
        """A label document from the URL EasyPost gave, without credentials."""
        try:
            response = self._client.get(url)
        except httpx.HTTPError as exc:
            raise from_transport(exc, purchase=False) from None
        if not response.is_success:
            raise CarrierError(
                CARRIER,
                "unavailable",
                f"the label document could not be downloaded (HTTP {response.status_code})",
                status_code=response.status_code,
            )
        return response.content

    @staticmethod
    def _broken(response: httpx.Response, purchase: bool) -> CarrierError:
        return CarrierError(
            CARRIER,
            "unknown_outcome" if purchase else "unavailable",
            f"EasyPost answered HTTP {response.status_code} with a body that is not JSON",
            status_code=response.status_code,
        )
