"""An ``httpx`` transport on urllib3's connection pools: the engine's HTTP, for less CPU.

Plugins keep the ``httpx.Client`` the core gives them; only the wire work under it
changes. httpx's own transport (httpcore and h11) spends about twice urllib3's CPU on a
request over the same keep-alive connection, and its pool scans every connection for
every request. Here:

- one urllib3 pool per origin keeps up to ``keepalive`` idle connections (size it to the
  worker's threads); it never blocks: a request that finds none idle opens one, so
  ``PoolTimeout`` is never raised;
- the timeouts httpx puts in ``request.extensions["timeout"]`` are honoured: ``connect``
  for the TCP connection and the TLS handshake, ``write`` for each send, ``read`` for each
  receive (``pool`` has nothing to wait for);
- TLS is verified by default against the CA bundle httpx uses (certifi, or
  ``SSL_CERT_FILE``/``SSL_CERT_DIR``), or an ``ssl.SSLContext`` given as ``verify``;
- no retries and no redirects: the client and the adapters decide those;
- the answer is read whole before it is returned (``client.stream()`` works, buffered).

Adapters tell "never sent, safe to retry" from "maybe sent, reconcile" by the exception's
class, so the class says what the request was doing when it failed, not only what
urllib3 raised::

    while                                      httpx exception       request sent?
    ---------------------------------------    -------------------   -------------
    connecting: refused, DNS, unreachable,     ConnectError          no
      TLS handshake or certificate refused
    connecting: timed out (TCP or TLS)         ConnectTimeout        no
    a header or the request line is not        LocalProtocolError    no
      valid HTTP
    scheme other than http/https, no host      UnsupportedProtocol   no
    sending: timed out                         WriteTimeout          maybe
    waiting for or reading the answer:         ReadTimeout           maybe
      timed out
    the server closed the connection before    RemoteProtocolError   maybe
      or during the answer; malformed answer
    connection reset; TLS failure after the    ReadError             maybe
      handshake
    anything else urllib3 raises               TransportError        maybe

Messages hold the OS's or TLS's reason only: never a request header (the credentials),
never the URL.
"""

from __future__ import annotations

import http.client
import ssl
import threading
from collections.abc import Iterable, Mapping
from typing import Any, cast

import httpx
import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import (
    ConnectTimeoutError,
    EmptyPoolError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)

__all__ = ["Urllib3Transport"]

_DEFAULT_PORTS = {"http": 80, "https": 443}
_HTTP_VERSIONS = {9: b"HTTP/0.9", 10: b"HTTP/1.0", 11: b"HTTP/1.1"}
_SEND_BLOCK = 64 * 1024

# urllib3 gives a connection one timeout for connecting and sending. The write timeout of
# the request being sent reaches our connection through the sending thread instead: a
# request is sent by the thread that called ``handle_request``, start to end.
_sending = threading.local()


class Urllib3Transport(httpx.BaseTransport):
    """``httpx.Client(transport=Urllib3Transport(keepalive=n))``: thread-safe, pooled."""

    def __init__(
        self, *, keepalive: int = 20, verify: ssl.SSLContext | bool = True, trust_env: bool = True
    ) -> None:
        # Same CA bundle, environment variables and ALPN as httpx's own transport.
        self._ssl_context = httpx.create_ssl_context(verify=verify, trust_env=trust_env)
        self._keepalive = keepalive
        self._pools: dict[tuple[str, str, int], HTTPConnectionPool] = {}
        self._pools_lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme not in _DEFAULT_PORTS or not url.raw_host:
            raise httpx.UnsupportedProtocol(
                f"cannot send to {url.scheme or 'a URL without a scheme'}:// URLs, "
                "only to http:// and https:// with a host",
                request=request,
            )
        pool = self._pool(url.scheme, url.raw_host.decode("ascii"), url.port)
        timeouts: Mapping[str, float | None] = request.extensions.get("timeout", {})
        _sending.write_timeout = timeouts.get("write")
        try:
            answer = pool.urlopen(
                request.method,
                url.raw_path.decode("ascii"),
                body=_body(request),
                # http.client sends bytes as they are: decoding httpx's raw header bytes
                # for urllib3 only for them to be encoded back would be CPU for nothing.
                headers=cast(Mapping[str, str], _headers(request.headers.raw)),
                retries=False,
                redirect=False,
                assert_same_host=False,
                timeout=urllib3.Timeout(connect=timeouts.get("connect"), read=timeouts.get("read")),
                preload_content=True,
                # httpx decodes gzip and friends itself, as with its own transport.
                decode_content=False,
            )
        except _Unsendable as error:
            raise httpx.LocalProtocolError(str(error), request=request) from None
        except Exception as error:
            mapped = _as_httpx(error, request)
            if mapped is None:
                raise
            raise mapped from error
        finally:
            _sending.write_timeout = None
        return httpx.Response(
            answer.status,
            # http.client read the header bytes as latin-1: encoding back gives them as sent.
            headers=[(k.encode("latin-1"), v.encode("latin-1")) for k, v in answer.headers.items()],
            stream=httpx.ByteStream(answer.data),
            extensions={
                "http_version": _HTTP_VERSIONS.get(answer.version, b"HTTP/1.1"),
                "reason_phrase": answer.reason.encode("latin-1") if answer.reason else b"",
            },
        )

    def close(self) -> None:
        with self._pools_lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.close()

    def _pool(self, scheme: str, host: str, port: int | None) -> HTTPConnectionPool:
        key = (scheme, host, port or _DEFAULT_PORTS[scheme])
        pool = self._pools.get(key)
        if pool is None:
            with self._pools_lock:
                pool = self._pools.get(key)
                if pool is None:
                    pool = self._pools[key] = self._new_pool(*key)
        return pool

    def _new_pool(self, scheme: str, host: str, port: int) -> HTTPConnectionPool:
        # block=False: a thread never waits for a connection (httpcore's 30 s pool wait is
        # the stall B2 saw); connections beyond ``keepalive`` are closed when returned.
        if scheme == "https":
            return _TLSPool(
                host,
                port,
                maxsize=self._keepalive,
                block=False,
                retries=False,
                ssl_context=self._ssl_context,
            )
        return _Pool(host, port, maxsize=self._keepalive, block=False, retries=False)


def _body(request: httpx.Request) -> bytes | Iterable[bytes] | None:
    if isinstance(request.stream, httpx.ByteStream):
        content = request.read()  # already read, except in a request httpx rebuilt to redirect
        if len(content) > _SEND_BLOCK:
            # One sendall() per block: the write timeout bounds each block, as httpx's bounds
            # each send, not the whole upload.
            return (content[at : at + _SEND_BLOCK] for at in range(0, len(content), _SEND_BLOCK))
        # None, not b"": urllib3 would add "Content-Length: 0" to a GET.
        return content or None
    # A streamed upload, sent as it is read, framed as httpx's headers say (length or chunked).
    return cast(Iterable[bytes], request.stream)


def _headers(raw: list[tuple[bytes, bytes]]) -> Mapping[bytes, bytes]:
    headers = dict(raw)
    if len(headers) == len(raw):
        return headers
    # A name given twice: urllib3's multi-dict sends every line.
    repeated = urllib3.HTTPHeaderDict()
    for name, value in raw:
        repeated.add(name.decode("latin-1"), value.decode("latin-1"))
    return cast(Mapping[bytes, bytes], repeated)


def _as_httpx(error: Exception, request: httpx.Request) -> httpx.TransportError | None:
    """The httpx exception meaning what ``error`` means; None for an error not urllib3's."""
    if isinstance(error, _ConnectFailed):
        cause = error.__cause__
        timed_out = isinstance(cause, TimeoutError) or (
            isinstance(cause, ConnectTimeoutError) and not isinstance(cause, NewConnectionError)
        )
        if timed_out:
            return httpx.ConnectTimeout("timed out while connecting", request=request)
        return httpx.ConnectError(_reason(cause), request=request)
    if isinstance(error, _WriteTimedOut):
        return httpx.WriteTimeout("timed out while sending the request", request=request)
    if isinstance(error, ReadTimeoutError):
        return httpx.ReadTimeout("timed out waiting for the answer", request=request)
    if isinstance(error, EmptyPoolError):  # only a blocking pool raises it; ours does not
        return httpx.PoolTimeout("no connection free in the pool", request=request)
    if isinstance(error, ProtocolError):
        broken = error.args[1] if len(error.args) > 1 else error.__cause__
        # http.client's RemoteDisconnected is also a ConnectionResetError: test it first.
        if isinstance(broken, http.client.HTTPException):
            return httpx.RemoteProtocolError(_reason(broken), request=request)
        return httpx.ReadError(_reason(broken), request=request)
    if isinstance(error, urllib3.exceptions.SSLError):
        return httpx.ReadError(_reason(error), request=request)
    if isinstance(error, urllib3.exceptions.HTTPError):
        return httpx.TransportError(type(error).__name__, request=request)
    return None


def _reason(error: BaseException | None) -> str:
    """The innermost reason: the OS's or TLS's words, without urllib3's URL and pool."""
    while error is not None:
        inner = error.__cause__ or next(
            (arg for arg in error.args if isinstance(arg, BaseException)), None
        )
        if inner is None:
            break
        error = inner
    if error is None:
        return "connection failed"
    return str(error) or type(error).__name__


class _ConnectFailed(Exception):
    """Connecting failed (the cause says why): no byte of the request was sent."""


class _WriteTimedOut(Exception):
    """A send timed out: some of the request may have reached the server."""


class _Unsendable(Exception):
    """http.client refused a header or the request line before sending anything."""


# These do not derive from urllib3's or the OS's exceptions, so urllib3 lets them through
# unwrapped (closing the connection): the request's phase survives to ``_as_httpx``.


class _Connection(HTTPConnection):
    def connect(self) -> None:
        try:
            super().connect()
        except Exception as error:
            raise _ConnectFailed from error

    def request(  # type: ignore[override]
        self,
        method: str,
        url: str,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        **options: Any,
    ) -> None:
        if self.sock is None:  # plain HTTP connects lazily: do it under the connect timeout
            self.connect()
        self.timeout = getattr(_sending, "write_timeout", None)
        try:
            super().request(method, url, body, headers, **options)
            return
        except TimeoutError as error:
            raise _WriteTimedOut from error
        except ValueError:
            pass
        # Raised out here, not in the handler, so that the ValueError is not even its
        # __context__: http.client's message quotes the refused value, maybe a credential.
        raise _Unsendable(
            "a request header or the request line holds characters HTTP does not allow"
        )


class _TLSConnection(_Connection, HTTPSConnection):
    pass


class _Pool(HTTPConnectionPool):
    ConnectionCls = _Connection


class _TLSPool(HTTPSConnectionPool):
    ConnectionCls = _TLSConnection
