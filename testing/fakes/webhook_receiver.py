"""A merchant's webhook endpoint on loopback: records deliveries, optionally checks them.

``verify`` is the receiver's own check, given by the test (so it stays independent of the
sender's code): it gets the ``Request`` and returns ``None`` to accept or a reason to
answer ``401``. Accepted deliveries are processed once per ``Idempotency-Key``:
``deliveries`` holds the first of each key, ``duplicates`` counts the repeats (answered 200,
as a receiver that dedupes does). Faults come from ``FakeService.fail_next``/``hang_next``,
e.g. ``fail_next(Response(410))`` for an endpoint that was removed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from fulfil.testing.server import FakeService, Request, Response

__all__ = ["FakeWebhookReceiver"]


class FakeWebhookReceiver(FakeService):
    def __init__(
        self, verify: Callable[[Request], str | None] | None = None, *, latency: float = 0.0
    ) -> None:
        super().__init__(latency)
        self.verify = verify
        self.deliveries: dict[str, Request] = {}
        self.rejected: list[tuple[Request, str]] = []
        self.duplicates = 0
        self._state = threading.Lock()

    def handle(self, request: Request) -> Response:
        if request.method != "POST":
            return Response(405, {"Allow": "POST"})
        reason = self.verify(request) if self.verify else None
        if reason is not None:
            with self._state:
                self.rejected.append((request, reason))
            return Response.json(401, {"error": reason})
        key = request.headers.get("idempotency-key", "")
        with self._state:
            if key in self.deliveries:
                self.duplicates += 1
            else:
                self.deliveries[key] = request
        return Response.json(200, {"received": True})
