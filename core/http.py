"""Small HTTP facts every plugin that talks to an API needs the same way, and the one
``httpx.Client`` the engine gives them."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.request import getproxies

import httpx
from fulfil.core.transport import Urllib3Transport

__all__ = ["make_client", "parse_retry_after"]


def make_client(concurrency: int) -> httpx.Client:
    """The engine's client for ``concurrency`` worker threads.

    Over urllib3 (``Urllib3Transport``): about 40% less CPU a request than httpx's own
    transport with 32 threads (docs/performance.md, B2). A connection per worker thread and
    the main thread is kept alive. httpx ignores the proxy variables once it is given a
    transport, so behind a proxy the client keeps its own.
    """
    behind_proxy = any(key in getproxies() for key in ("http", "https", "all"))
    keepalive = max(20, 2 * concurrency)
    return httpx.Client(
        timeout=httpx.Timeout(30.0, connect=10.0),
        transport=None if behind_proxy else Urllib3Transport(keepalive=keepalive),
        # Used by httpx's own transport only (behind a proxy).
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=keepalive),
    )


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """A ``Retry-After`` header in seconds: delta-seconds or an HTTP date (RFC 9110 10.2.3).

    None when absent or unreadable; never negative.
    """
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)
