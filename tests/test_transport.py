"""``Urllib3Transport`` against real loopback servers: answers, keep-alive, TLS, and above
all the exception classes adapters read to tell "never sent" from "maybe sent"."""

from __future__ import annotations

import gzip
import json
import socket
import ssl
import struct
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO, NamedTuple

import httpx
import pytest
import trustme
from fulfil.core.transport import Urllib3Transport

SECRET = "sk_live_do-not-print-me-4242"


# --- loopback servers whose behaviour per connection is the test's ---------------------------


class Seen(NamedTuple):
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes


Serve = Callable[[socket.socket, threading.Event], None]


class Loopback:
    """Accepts on 127.0.0.1 and runs ``serve(connection, stopped)`` in a thread per connection."""

    def __init__(self, serve: Serve, tls: ssl.SSLContext | None = None) -> None:
        self.serve = serve
        self.tls = tls
        self.connections = 0
        self.stopped = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)  # accept() polls, so that close() stops it
        self.port = self.listener.getsockname()[1]
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                connection, _ = self.listener.accept()
            except TimeoutError:
                continue
            self.connections += 1
            thread = threading.Thread(target=self._serve, args=(connection,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _serve(self, connection: socket.socket) -> None:
        connection.settimeout(10)
        try:
            if self.tls is not None:
                with self.tls.wrap_socket(connection, server_side=True) as wrapped:
                    self.serve(wrapped, self.stopped)
            else:
                self.serve(connection, self.stopped)
        except OSError:  # the client went away, or refused our certificate: its side is tested
            pass
        finally:
            connection.close()

    def close(self) -> None:
        self.stopped.set()
        for thread in self.threads:
            thread.join(5)
        self.listener.close()


@contextmanager
def loopback(serve: Serve, tls: ssl.SSLContext | None = None) -> Iterator[Loopback]:
    server = Loopback(serve, tls)
    try:
        yield server
    finally:
        server.close()


def read_request(stream: BinaryIO) -> Seen | None:
    line = stream.readline()
    if not line:
        return None
    method, target, _ = line.decode("latin-1").split(" ", 2)
    headers = []
    while (header := stream.readline()) not in (b"\r\n", b""):
        name, _, value = header.decode("latin-1").partition(":")
        headers.append((name, value.strip()))
    fields = {name.lower(): value for name, value in headers}
    if "content-length" in fields:
        body = stream.read(int(fields["content-length"]))
    elif fields.get("transfer-encoding") == "chunked":
        body = b""
        while size := int(stream.readline(), 16):
            body += stream.read(size)
            stream.readline()
        stream.readline()
    else:
        body = b""
    return Seen(method, target, headers, body)


def answer(status: int, body: bytes = b"", headers: list[tuple[str, str]] | None = None) -> bytes:
    lines = [f"HTTP/1.1 {status} {'OK' if status == 200 else 'Other'}"]
    lines += [f"{name}: {value}" for name, value in headers or []]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def http(respond: Callable[[Seen], bytes], seen: list[Seen] | None = None) -> Serve:
    """A keep-alive HTTP/1.1 server: one ``respond(request)`` per request on the connection."""

    def serve(connection: socket.socket, stopped: threading.Event) -> None:
        with connection.makefile("rb") as stream:
            while (request := read_request(stream)) is not None:
                if seen is not None:
                    seen.append(request)
                connection.sendall(respond(request))

    return serve


def echo(request: Seen) -> bytes:
    body = {"method": request.method, "target": request.target, "body": request.body.decode()}
    return answer(200, json.dumps(body).encode(), [("Content-Type", "application/json")])


def read_then_hang(connection: socket.socket, stopped: threading.Event) -> None:
    with connection.makefile("rb") as stream:
        read_request(stream)
    stopped.wait()


def read_then_close(connection: socket.socket, stopped: threading.Event) -> None:
    with connection.makefile("rb") as stream:
        read_request(stream)


def read_then_reset(connection: socket.socket, stopped: threading.Event) -> None:
    with connection.makefile("rb") as stream:
        read_request(stream)
    # SO_LINGER 0: close() sends RST, not FIN.
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def never_read(connection: socket.socket, stopped: threading.Event) -> None:
    stopped.wait()


def client(timeout: float = 2.0, **options: Any) -> httpx.Client:
    return httpx.Client(transport=Urllib3Transport(**options), timeout=timeout)


def raised_by(make_client: Callable[[], httpx.Client], method: str, url: str, **kw: Any) -> Any:
    with make_client() as http_client, pytest.raises(httpx.TransportError) as info:
        http_client.request(method, url, **kw)
    return info.value


def httpx_own(timeout: float = 2.0) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(), timeout=timeout)


# --- answers --------------------------------------------------------------------------------


def test_json_round_trip() -> None:
    with loopback(http(echo)) as server, client() as http_client:
        response = http_client.get(server.url + "/v2/shipments?page=2")
    assert response.status_code == 200
    assert response.json() == {"method": "GET", "target": "/v2/shipments?page=2", "body": ""}
    assert response.http_version == "HTTP/1.1"
    assert response.reason_phrase == "OK"
    assert response.headers["content-type"] == "application/json"


def test_post_body_json_and_streamed() -> None:
    seen: list[Seen] = []
    with loopback(http(echo, seen)) as server, client() as http_client:
        posted = http_client.post(server.url + "/v2/buy", json={"rate": "rate_1"})
        streamed = http_client.post(server.url + "/upload", content=iter([b"abc", b"def"]))
    assert posted.json()["body"] == '{"rate":"rate_1"}'
    assert ("Content-Type", "application/json") in seen[0].headers
    assert streamed.json()["body"] == "abcdef"
    assert ("Transfer-Encoding", "chunked") in seen[1].headers


def test_a_large_body_is_sent_whole() -> None:
    body = bytes(range(256)) * 4096  # 1 MiB: more than one send block
    counting = http(lambda r: answer(200, str(len(r.body)).encode()))
    with loopback(counting) as server, client() as http_client:
        response = http_client.put(server.url + "/big", content=body)
    assert response.text == str(len(body))


def test_repeated_headers_are_kept_both_ways() -> None:
    seen: list[Seen] = []
    headers = [("Set-Cookie", "a=1"), ("X-Tag", "one"), ("Set-Cookie", "b=2"), ("X-Tag", "two")]
    with loopback(http(lambda r: answer(200, b"", headers), seen)) as server, client() as c:
        response = c.get(server.url, headers=[("X-Trace", "1"), ("X-Trace", "2")])
    assert response.headers.get_list("set-cookie") == ["a=1", "b=2"]
    assert response.headers.get_list("x-tag") == ["one", "two"]
    assert [value for name, value in seen[0].headers if name == "X-Trace"] == ["1", "2"]


def test_content_encoding_is_decoded_by_httpx() -> None:
    packed = gzip.compress(b'{"ok": true}')
    respond = http(lambda r: answer(200, packed, [("Content-Encoding", "gzip")]))
    with loopback(respond) as server, client() as http_client:
        response = http_client.get(server.url)
    assert response.json() == {"ok": True}
    assert response.headers["content-encoding"] == "gzip"


def test_redirects_are_the_clients_decision() -> None:
    def respond(request: Seen) -> bytes:
        if request.target == "/old":
            return answer(302, b"", [("Location", "/new")])
        return echo(request)

    with loopback(http(respond)) as server, client() as http_client:
        assert http_client.get(server.url + "/old").status_code == 302
        followed = http_client.get(server.url + "/old", follow_redirects=True)
    assert followed.json()["target"] == "/new"


def test_other_schemes_are_refused_before_connecting() -> None:
    with Urllib3Transport() as transport, pytest.raises(httpx.UnsupportedProtocol):
        transport.handle_request(httpx.Request("GET", "ftp://127.0.0.1/file"))


# --- keep-alive ---------------------------------------------------------------------------------


def test_one_connection_serves_sequential_requests() -> None:
    with loopback(http(echo)) as server, client() as http_client:
        for n in range(5):
            assert http_client.get(f"{server.url}/{n}").json()["target"] == f"/{n}"
        assert server.connections == 1


def test_concurrent_threads_keep_one_connection_each() -> None:
    threads = 4
    with loopback(http(echo)) as server, client(keepalive=threads) as http_client:

        def work() -> None:
            for _ in range(25):
                assert http_client.get(server.url).status_code == 200

        workers = [threading.Thread(target=work) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert 1 <= server.connections <= threads


def test_a_connection_the_server_closed_is_replaced() -> None:
    closing = http(lambda r: answer(200, b"bye", [("Connection", "close")]))
    with loopback(closing) as server, client() as http_client:
        assert [http_client.get(server.url).text for _ in range(3)] == ["bye"] * 3
        assert server.connections == 3


# --- failures: the same classes as httpx's own transport ---------------------------------------


def free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        return int(listener.getsockname()[1])  # closed on exit: nothing listens there


def test_connection_refused_is_connect_error() -> None:
    error = raised_by(client, "POST", f"http://127.0.0.1:{free_port()}/v2/buy", json={})
    assert type(error) is httpx.ConnectError
    assert "Connection refused" in str(error)


def test_no_answer_is_read_timeout() -> None:
    with loopback(read_then_hang) as server:
        error = raised_by(lambda: client(timeout=0.2), "POST", server.url, json={})
    assert type(error) is httpx.ReadTimeout


@pytest.mark.parametrize("serve", [read_then_close, read_then_reset], ids=["close", "reset"])
def test_connection_lost_after_the_request_as_httpx_says(serve: Serve) -> None:
    with loopback(serve) as server:
        ours = raised_by(client, "POST", server.url, json={"buy": 1})
        theirs = raised_by(httpx_own, "POST", server.url, json={"buy": 1})
    assert type(ours) is type(theirs)
    assert isinstance(ours, httpx.RemoteProtocolError | httpx.ReadError)


def test_a_body_the_server_does_not_read_is_write_timeout() -> None:
    body = b"x" * (64 << 20)  # more than loopback's socket buffers hold
    timeout = httpx.Timeout(2.0, write=0.3)
    with loopback(never_read) as server:
        ours = raised_by(lambda: client(timeout=timeout), "PUT", server.url, content=body)
        theirs = raised_by(lambda: httpx_own(timeout=timeout), "PUT", server.url, content=body)
    assert type(ours) is type(theirs) is httpx.WriteTimeout


# --- TLS --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def server_tls(ca: trustme.CA, *names: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(context)
    return context


def trusting(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def test_tls_with_a_trusted_ca(ca: trustme.CA) -> None:
    with loopback(http(echo), server_tls(ca, "127.0.0.1")) as server:
        with client(verify=trusting(ca)) as http_client:
            for _ in range(3):
                assert http_client.get(server.url + "/secure").json()["target"] == "/secure"
        assert server.connections == 1


@pytest.mark.parametrize(
    "names, verify",
    [(("127.0.0.1",), True), (("example.org",), "ca")],
    ids=["unknown-ca", "wrong-host"],
)
def test_a_certificate_refused_is_connect_error(
    ca: trustme.CA, names: tuple[str, ...], verify: Any
) -> None:
    verify = trusting(ca) if verify == "ca" else verify
    with loopback(http(echo), server_tls(ca, *names)) as server:
        error = raised_by(lambda: client(verify=verify), "POST", server.url, json={})
    assert type(error) is httpx.ConnectError
    assert "certificate" in str(error).lower() or "hostname" in str(error).lower()


def test_a_tls_handshake_without_answer_is_connect_timeout() -> None:
    # urllib3 alone calls this a read timeout: "maybe sent", though nothing was.
    timeout = httpx.Timeout(2.0, connect=0.2)
    with loopback(never_read) as server:
        url = f"https://127.0.0.1:{server.port}/"
        ours = raised_by(lambda: client(timeout=timeout), "POST", url, json={})
        theirs = raised_by(lambda: httpx_own(timeout=timeout), "POST", url, json={})
    assert type(ours) is type(theirs) is httpx.ConnectTimeout


# --- credentials --------------------------------------------------------------------------------


def everything_said(error: BaseException) -> str:
    """The exception's text, its traceback and every exception chained to it, suppressed or not."""
    said, seen = [], set()
    current: BaseException | None = error
    stack = [current]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        said += [str(current), repr(current), *map(repr, current.args)]
        stack += [current.__cause__, current.__context__]
    return "\n".join([*said, *traceback.format_exception(error)])


def test_no_exception_says_a_request_header(ca: trustme.CA) -> None:
    auth = {"Authorization": f"Bearer {SECRET}", "X-Api-Key": SECRET}
    errors = [raised_by(client, "POST", f"http://127.0.0.1:{free_port()}/", headers=auth)]
    with loopback(read_then_hang) as server:
        errors.append(raised_by(lambda: client(timeout=0.2), "GET", server.url, headers=auth))
    for serve in (read_then_close, read_then_reset):
        with loopback(serve) as server:
            errors.append(raised_by(client, "POST", server.url, headers=auth, json={}))
    with loopback(http(echo), server_tls(ca, "127.0.0.1")) as server:
        errors.append(raised_by(client, "GET", server.url, headers=auth))
    # A header http.client refuses: its own message would quote the value.
    with loopback(http(echo)) as server:
        bad = {"Authorization": f"Bearer {SECRET}\r\nX-Injected: 1"}
        refused = raised_by(client, "GET", server.url, headers=bad)
    assert type(refused) is httpx.LocalProtocolError
    for error in [*errors, refused]:
        assert SECRET not in everything_said(error), type(error).__name__
