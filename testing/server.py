"""A real HTTP server on 127.0.0.1 for tests and benchmarks, in a background thread.

Subclass ``FakeService`` and implement ``handle(request) -> Response``; every request is
recorded in ``requests``. Faults are scripted per test with ``fail_next(...)``:

    with MyFake() as fake:            # listens on an ephemeral loopback port
        fake.fail_next(Response(429, {"Retry-After": "1"}, b"{}"))
        fake.hang_next()              # read the request, act on it, then never answer
        client.post(fake.url + "/v3/shipments", json=...)

``hang_next(apply=True)`` lets the service *do* the work and then stalls the answer past
the client's timeout: the "timeout after the request was received" case in which the
caller does not know the outcome.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs

__all__ = ["FakeService", "Request", "Response"]


@attrs.frozen
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def form(self) -> dict[str, list[str]]:
        return parse_qs(self.body.decode())


@attrs.frozen
class Response:
    status: int
    headers: dict[str, str] = attrs.field(factory=dict)
    body: bytes = b""

    @classmethod
    def json(cls, status: int, data: Any, headers: dict[str, str] | None = None) -> Response:
        return cls(
            status,
            {"Content-Type": "application/json", **(headers or {})},
            json.dumps(data).encode(),
        )


@attrs.define
class _Fault:
    response: Response | None  # None: hang
    apply: bool  # hang after doing the work (outcome unknown to the caller)
    hang_seconds: float


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # socketserver's 5 drops SYNs when 32+ clients connect at once


class FakeService:
    """Base class: a loopback server, a request log, scripted faults, optional latency."""

    def __init__(self, latency: float = 0.0) -> None:
        self.latency = latency
        self.requests: list[Request] = []
        self._faults: deque[_Fault] = deque()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- to implement -------------------------------------------------------------------

    def handle(self, request: Request) -> Response:  # pragma: no cover - abstract
        raise NotImplementedError

    # --- scripting ----------------------------------------------------------------------

    def fail_next(self, response: Response, times: int = 1) -> None:
        """Answer the next ``times`` requests with ``response`` without doing the work."""
        for _ in range(times):
            self._faults.append(_Fault(response, apply=False, hang_seconds=0))

    def hang_next(self, *, apply: bool = True, seconds: float = 5.0) -> None:
        """Stall the next answer for ``seconds``; with ``apply`` the work is done first."""
        self._faults.append(_Fault(None, apply=apply, hang_seconds=seconds))

    def requests_to(self, method: str, path_prefix: str) -> list[Request]:
        return [r for r in self.requests if r.method == method and r.path.startswith(path_prefix)]

    # --- lifecycle ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the fake first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeService:
        service = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body in one segment, sent at once: without these two, Nagle and
            # delayed ACKs add ~40 ms to every loopback answer and distort benchmarks.
            wbufsize = -1
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                parts = urlsplit(self.path)
                request = Request(
                    self.command,
                    parts.path,
                    parse_qs(parts.query),
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length) if length else b"",
                )
                response = service._dispatch(request)
                if response is None:
                    self.close_connection = True
                    return
                self.send_response(response.status)
                for name, value in response.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(response.body)))
                self.end_headers()
                self.wfile.write(response.body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _dispatch(self, request: Request) -> Response | None:
        with self._lock:
            self.requests.append(request)
            fault = self._faults.popleft() if self._faults else None
        if self.latency:
            time.sleep(self.latency)
        if fault is not None and fault.response is not None:
            return fault.response
        response = self.handle(request) if fault is None or fault.apply else None
        if fault is not None:
            time.sleep(fault.hang_seconds)  # the client gives up first; it never learns
            return None
        return response
