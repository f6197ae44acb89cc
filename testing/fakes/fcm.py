"""A fake FCM HTTP v1 API and Google OAuth 2.0 token endpoint, on one loopback server.

- ``POST /token``: the service-account JWT bearer grant
  (https://developers.google.com/identity/protocols/oauth2/service-account#httprest). The
  assertion's RS256 signature is checked with the public key given to the fake, as are
  ``iss``, ``aud`` (this endpoint's URL), ``scope`` and ``exp``. Success:
  ``{"access_token", "expires_in", "token_type": "Bearer"}``; failure: 400
  ``{"error": "invalid_grant", "error_description": ...}``.
- ``POST /v1/projects/{project_id}/messages:send`` with ``Authorization: Bearer``
  (https://firebase.google.com/docs/reference/fcm/rest/v1/projects.messages/send). Success:
  ``{"name": "projects/{project_id}/messages/{id}"}``; errors are Google's
  ``{"error": {"code", "message", "status", "details": [FcmError...]}}``
  (https://firebase.google.com/docs/reference/fcm/rest/v1/ErrorCode).

Device tokens listed in ``unregistered`` get 404 ``UNREGISTERED``; in ``invalid``, 400
``INVALID_ARGUMENT``. ``revoke_access_tokens()`` makes every token issued so far answer
401; ``refuse_access_tokens = True`` makes every token, old or new, answer 401.
"""

from __future__ import annotations

import itertools
import re
import secrets
import threading
from typing import Any

import jwt
from fulfil.testing.server import FakeService, Request, Response

__all__ = ["FakeFcm", "fcm_error"]

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_SEND = re.compile(r"^/v1/projects/(?P<project>[^/]+)/messages:send$")


def fcm_error(
    code: int,
    status: str,
    message: str,
    error_code: str | None = None,
    *,
    fields: list[tuple[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """An FCM v1 error response (for ``fail_next`` too)."""
    details: list[dict[str, Any]] = []
    if error_code:
        details.append(
            {
                "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                "errorCode": error_code,
            }
        )
    if fields:
        details.append(
            {
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [{"field": f, "description": d} for f, d in fields],
            }
        )
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = details
    return Response.json(code, {"error": error}, headers)


class FakeFcm(FakeService):
    def __init__(
        self,
        public_key: Any,
        client_email: str,
        *,
        project_id: str = "demo-project",
        expires_in: int = 3599,
        latency: float = 0.0,
    ) -> None:
        super().__init__(latency)
        self.public_key = public_key  # tests may swap it to simulate a revoked key
        self.client_email = client_email
        self.project_id = project_id
        self.expires_in = expires_in
        self.refuse_access_tokens = False  # every bearer token answered 401 while set
        self.unregistered: set[str] = set()
        self.invalid: set[str] = set()
        self.access_tokens: list[str] = []  # every one issued, in order
        self.assertions: list[dict[str, Any]] = []  # verified JWT claims, in order
        self.sent: list[dict[str, Any]] = []  # accepted messages
        self._valid: set[str] = set()
        self._ids = itertools.count(1)
        self._state = threading.Lock()

    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

    def revoke_access_tokens(self) -> None:
        with self._state:
            self._valid.clear()

    def sent_to(self, device: str) -> list[dict[str, Any]]:
        return [m for m in self.sent if m.get("token") == device]

    # --- the APIs -----------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        if request.method == "POST" and request.path == "/token":
            return self._token(request)
        match = _SEND.match(request.path)
        if request.method == "POST" and match:
            return self._send(request, match["project"])
        return fcm_error(404, "NOT_FOUND", "Requested entity was not found.")

    def _token(self, request: Request) -> Response:
        form = {k: v[-1] for k, v in request.form().items()}
        if form.get("grant_type") != GRANT_TYPE:
            return Response.json(
                400,
                {"error": "unsupported_grant_type", "error_description": "Invalid grant_type."},
            )
        try:
            claims = jwt.decode(
                form.get("assertion", ""),
                self.public_key,
                algorithms=["RS256"],
                audience=self.token_uri,
                issuer=self.client_email,
                options={"require": ["iss", "aud", "exp", "iat", "scope"]},
            )
        except jwt.PyJWTError:
            return Response.json(
                400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
            )
        if SCOPE not in str(claims.get("scope", "")).split():
            return Response.json(
                400, {"error": "invalid_scope", "error_description": "Invalid OAuth scope."}
            )
        token = f"ya29.fake-{secrets.token_urlsafe(16)}"
        with self._state:
            self.assertions.append(claims)
            self.access_tokens.append(token)
            self._valid.add(token)
        return Response.json(
            200, {"access_token": token, "expires_in": self.expires_in, "token_type": "Bearer"}
        )

    def _send(self, request: Request, project: str) -> Response:
        auth = request.headers.get("authorization", "")
        with self._state:
            valid = auth.startswith("Bearer ") and auth[7:] in self._valid
            valid = valid and not self.refuse_access_tokens
        if not valid:
            return fcm_error(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials. Expected OAuth 2 access "
                "token, login cookie or other valid authentication credential.",
            )
        if project != self.project_id:
            return fcm_error(403, "PERMISSION_DENIED", "SenderId mismatch", "SENDER_ID_MISMATCH")
        try:
            message = request.json()["message"]
        except (ValueError, KeyError, TypeError):
            return fcm_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        for key, value in (message.get("data") or {}).items():
            if not isinstance(value, str):
                where = f"message.data[{key}].value"
                return fcm_error(
                    400,
                    "INVALID_ARGUMENT",
                    f"Invalid value at '{where}' (TYPE_STRING)",
                    fields=[(where, f"Invalid value at '{where}' (TYPE_STRING)")],
                )
        token = message.get("token")
        if not token:
            return fcm_error(
                400,
                "INVALID_ARGUMENT",
                "Recipient of the message is not set.",
                "INVALID_ARGUMENT",
                fields=[("message", "Recipient of the message is not set.")],
            )
        if token in self.unregistered:
            return fcm_error(404, "NOT_FOUND", "Requested entity was not found.", "UNREGISTERED")
        if token in self.invalid:
            return fcm_error(
                400,
                "INVALID_ARGUMENT",
                "The registration token is not a valid FCM registration token",
                "INVALID_ARGUMENT",
            )
        with self._state:
            name = f"projects/{project}/messages/0:{next(self._ids)}%fake"
            self.sent.append({**message, "name": name})
        return Response.json(200, {"name": name})
