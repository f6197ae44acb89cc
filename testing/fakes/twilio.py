"""A fake Twilio Messages API (2010-04-01) on loopback, answering as Twilio documents.

``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` with HTTP Basic auth (Account SID
and Auth Token, or an API key SID and secret) and form fields ``To``, ``From`` or
``MessagingServiceSid``, ``Body``, ``StatusCallback``. Success is ``201`` with a Message
resource; errors carry Twilio's error body ``{"code", "message", "more_info", "status"}``.
``GET`` on the same path lists messages (``To``/``From`` filters, newest first, one page).

Recipients that fail are taken from Twilio's test-credential "magic numbers"
(https://www.twilio.com/docs/iam/test-credentials) and can be added per test with
``reject(number, code)``. ``messages`` holds what was accepted, in order.

    with FakeTwilio(ACCOUNT_SID, "token") as twilio:
        twilio.reject("+33612345678", 21610)
        twilio.fail_next(FakeTwilio.error(503, 20503, "Service unavailable"))
"""

from __future__ import annotations

import base64
import itertools
import re
import secrets
import threading
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from fulfil.testing.server import FakeService, Request, Response

__all__ = ["ERRORS", "MAGIC_TO", "FakeTwilio"]

# Twilio's own wording of the errors the fake can give (https://www.twilio.com/docs/api/errors).
ERRORS: dict[int, tuple[int, str]] = {
    20003: (401, "Authenticate"),
    20404: (404, "The requested resource was not found"),
    20429: (429, "Too Many Requests"),
    20500: (500, "Internal Server Error"),
    20503: (503, "Service Unavailable"),
    21211: (400, "The 'To' number {to} is not a valid phone number."),
    21408: (
        400,
        "Permission to send an SMS has not been enabled for the region indicated by "
        "the 'To' number: {to}.",
    ),
    21602: (400, "Message body is required."),
    21603: (400, "A 'From' or 'MessagingServiceSid' parameter is required to send a message."),
    21604: (400, "A 'To' phone number is required."),
    21606: (
        400,
        "The 'From' phone number provided is not a valid message-capable Twilio "
        "phone number for this destination/account.",
    ),
    21610: (400, "Attempt to send to unsubscribed recipient"),
    21612: (
        400,
        "The 'To' phone number: {to}, is not currently reachable using the 'From' "
        "phone number via SMS.",
    ),
    21614: (400, "'To' number is not a valid mobile number"),
}

# https://www.twilio.com/docs/iam/test-credentials#test-sms-messages-parameters-To
MAGIC_TO: dict[str, int] = {
    "+15005550001": 21211,
    "+15005550002": 21612,
    "+15005550003": 21408,
    "+15005550004": 21610,
    "+15005550009": 21614,
}

_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<sid>[^/]+)/Messages\.json$")


class FakeTwilio(FakeService):
    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        api_keys: dict[str, str] | None = None,
        senders: tuple[str, ...] = ("+15005550006",),
        latency: float = 0.0,
    ) -> None:
        super().__init__(latency)
        self.account_sid = account_sid
        self.auth_token = auth_token  # tests may change it to simulate a rotated token
        self.api_keys = dict(api_keys or {})
        self.senders = set(senders)
        self.rejected: dict[str, int] = dict(MAGIC_TO)
        self.messages: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self._state = threading.Lock()

    # --- scripting ----------------------------------------------------------------------

    def reject(self, to: str, code: int) -> None:
        """Answer every message to ``to`` with Twilio error ``code`` (e.g. 21610)."""
        self.rejected[to] = code

    @staticmethod
    def error(
        status: int, code: int, message: str, headers: dict[str, str] | None = None
    ) -> Response:
        """A Twilio error response, for ``fail_next``."""
        return Response.json(
            status,
            {
                "code": code,
                "message": message,
                "more_info": f"https://www.twilio.com/docs/errors/{code}",
                "status": status,
            },
            headers,
        )

    def messages_to(self, to: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["to"] == to]

    # --- the API ------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        match = _PATH.match(request.path)
        if match is None:
            return self._error(20404)
        if not self._authenticated(request, match["sid"]):
            return self._error(20003)
        if request.method == "GET":
            return Response.json(200, self._list(request))
        if request.method != "POST":
            return self._error(20404)
        form = {name: values[-1] for name, values in request.form().items()}
        to, sender, service = form.get("To"), form.get("From"), form.get("MessagingServiceSid")
        if not to:
            return self._error(21604)
        if not form.get("Body"):
            return self._error(21602)
        if not sender and not service:
            return self._error(21603)
        if sender and sender not in self.senders:
            return self._error(21606)
        if not re.fullmatch(r"\+[1-9]\d{6,14}", to):
            return self._error(21211, to=to)
        if to in self.rejected:
            return self._error(self.rejected[to], to=to)
        return Response.json(201, self._create(form))

    def _authenticated(self, request: Request, sid: str) -> bool:
        header = request.headers.get("authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        if sid != self.account_sid:
            return False
        if user == self.account_sid:
            return secrets.compare_digest(password, self.auth_token)
        expected = self.api_keys.get(user)
        return expected is not None and secrets.compare_digest(password, expected)

    def _create(self, form: dict[str, str]) -> dict[str, Any]:
        with self._state:
            sid = f"SM{next(self._ids):032x}"
            now = format_datetime(datetime.now(UTC), usegmt=True)
            service = form.get("MessagingServiceSid")
            resource = {
                "account_sid": self.account_sid,
                "api_version": "2010-04-01",
                "body": form["Body"],
                "date_created": now,
                "date_sent": None,
                "date_updated": now,
                "direction": "outbound-api",
                "error_code": None,
                "error_message": None,
                "from": form.get("From"),
                "messaging_service_sid": service,
                "num_media": "0",
                "num_segments": str(max(1, -(-len(form["Body"]) // 153))),
                "price": None,
                "price_unit": "USD",
                "sid": sid,
                "status": "accepted" if service and not form.get("From") else "queued",
                "subresource_uris": {
                    "media": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}/Media.json"
                },
                "to": form["To"],
                "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json",
            }
            self.messages.append({**resource, "status_callback": form.get("StatusCallback")})
        return resource

    def _list(self, request: Request) -> dict[str, Any]:
        """Read multiple Message resources: filtered by To and From, newest first."""
        wanted = {k: v[-1] for k, v in request.query.items() if k in ("To", "From")}
        size = int(request.query.get("PageSize", ["50"])[-1])
        with self._state:
            found = [
                {k: v for k, v in m.items() if k != "status_callback"}
                for m in reversed(self.messages)
                if all(m[name.lower()] == value for name, value in wanted.items())
            ][:size]
        uri = f"/2010-04-01/Accounts/{self.account_sid}/Messages.json?PageSize={size}&Page=0"
        return {
            "messages": found,
            "start": 0,
            "end": max(len(found) - 1, 0),
            "page": 0,
            "page_size": size,
            "uri": uri,
            "first_page_uri": uri,
            "next_page_uri": None,
            "previous_page_uri": None,
        }

    def _error(self, code: int, **values: str) -> Response:
        status, text = ERRORS[code]
        return self.error(status, code, text.format(**values))
