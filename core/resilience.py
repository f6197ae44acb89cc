"""Rate limits, circuit breakers and backoff for calls to carriers and providers.

Shared by the worker threads of one process; each carrier has one ``TokenBucket`` and one
``CircuitBreaker``. A 429's ``Retry-After`` pauses the whole bucket, not just the request
that got it, so the other threads stop hammering the carrier too.

A carrier's limit counts HTTP requests, not plugin calls (an EasyPost pickup is two POSTs),
so the bucket is taken per request: inside ``rate_limited(bucket)``, every unsafe request
(POST, PUT, PATCH, DELETE: what carriers limit, e.g. Sendcloud's 100 a minute) that the
thread sends through a client set up by ``limit_requests`` waits for a token first.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import httpx
from fulfil.core.http import parse_retry_after

__all__ = ["CircuitBreaker", "TokenBucket", "full_jitter", "limit_requests", "rate_limited"]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_bucket: ContextVar[TokenBucket | None] = ContextVar("fulfil_rate_limit", default=None)


def full_jitter(
    attempt: int,
    *,
    base: float = 0.5,
    cap: float = 300.0,
    retry_after: float | None = None,
    rng: Callable[[float, float], float] = random.uniform,
) -> float:
    """Seconds to wait before ``attempt`` (1-based): uniform in [0, min(cap, base*2^n)],
    never less than what the server asked for in Retry-After."""
    delay = rng(0.0, min(cap, base * 2 ** max(attempt - 1, 0)))
    return max(delay, retry_after or 0.0)


class TokenBucket:
    """``rate`` requests a second with bursts of ``burst``; ``rate=None`` means no limit."""

    def __init__(
        self,
        rate: float | None,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = rate
        self.capacity = burst if burst is not None else max(1.0, rate or 1.0)
        self.tokens = self.capacity
        self.clock = clock
        self.sleep = sleep
        self.updated = clock()
        self.paused_until = 0.0
        self.lock = threading.Lock()

    def acquire(self) -> None:
        """Block until a request may be sent."""
        while True:
            with self.lock:
                now = self.clock()
                wait = self.paused_until - now
                if wait <= 0 and self.rate is None:
                    return
                if wait <= 0 and self.rate is not None:
                    self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
                    self.updated = now
                    if self.tokens >= 1 - 1e-9:  # float sums of refills may fall a hair short
                        self.tokens = max(self.tokens - 1, 0.0)
                        return
                    wait = (1 - self.tokens) / self.rate
            self.sleep(wait)

    def pause(self, seconds: float) -> None:
        """The server said 429 Retry-After: nobody sends until then."""
        with self.lock:
            self.paused_until = max(self.paused_until, self.clock() + seconds)
            self.tokens = 0


class CircuitBreaker:
    """Opens after ``threshold`` failures in a row; lets one trial through after ``cooldown``."""

    def __init__(
        self,
        threshold: int = 5,
        cooldown: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self.clock = clock
        self.failures = 0
        self.opened_at: float | None = None
        self.lock = threading.Lock()

    @property
    def is_open(self) -> bool:
        with self.lock:
            if self.opened_at is None:
                return False
            if self.clock() - self.opened_at >= self.cooldown:
                self.opened_at = None  # half-open: the next call is the trial
                self.failures = self.threshold - 1
                return False
            return True

    def remaining(self) -> float:
        """Seconds until the next trial call (0 when closed)."""
        with self.lock:
            if self.opened_at is None:
                return 0.0
            return max(self.opened_at + self.cooldown - self.clock(), 0.0)

    def success(self) -> None:
        with self.lock:
            self.failures = 0
            self.opened_at = None

    def failure(self) -> None:
        with self.lock:
            self.failures += 1
            if self.failures >= self.threshold:
                self.opened_at = self.clock()


@contextmanager
def rate_limited(bucket: TokenBucket) -> Iterator[None]:
    """Inside the block, this thread's unsafe requests each wait for a token of ``bucket``
    and a 429 answer pauses it (clients set up with ``limit_requests``)."""
    token = _bucket.set(bucket)
    try:
        yield
    finally:
        _bucket.reset(token)


def limit_requests(client: httpx.Client) -> None:
    """Make ``client`` honour ``rate_limited`` blocks (its other requests are untouched).

    Idempotent: a client shared by two engines still takes one token a request."""
    hooks = client.event_hooks
    if _take_token in hooks["request"]:
        return
    client.event_hooks = {
        "request": [*hooks["request"], _take_token],
        "response": [*hooks["response"], _pause_on_429],
    }


def _take_token(request: httpx.Request) -> None:
    bucket = _bucket.get()
    if bucket is not None and request.method not in SAFE_METHODS:
        bucket.acquire()


def _pause_on_429(response: httpx.Response) -> None:
    bucket = _bucket.get()
    if bucket is not None and response.status_code == 429:
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        bucket.pause(retry_after if retry_after is not None else 1.0)
