"""Backoff, rate limit and circuit breaker, with a fake clock: no sleeping in tests."""

from __future__ import annotations

import httpx
from fulfil.core.resilience import (
    CircuitBreaker,
    TokenBucket,
    full_jitter,
    limit_requests,
    rate_limited,
)


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_full_jitter_grows_is_capped_and_honours_retry_after():
    upper = lambda low, high: high  # noqa: E731 - the largest delay the jitter may pick
    assert [full_jitter(n, base=1, cap=10, rng=upper) for n in (1, 2, 3, 4, 5)] == [1, 2, 4, 8, 10]
    assert full_jitter(1, base=1, rng=lambda low, high: low) == 0
    assert full_jitter(1, base=1, retry_after=30, rng=upper) == 30


def test_token_bucket_spaces_requests_at_the_rate():
    t = FakeTime()
    bucket = TokenBucket(rate=10, burst=1, clock=t.clock, sleep=t.sleep)
    for _ in range(21):
        bucket.acquire()
    assert abs(t.now - 2.0) < 1e-9  # 21 requests at 10/s after one burst token: 2 seconds


def test_retry_after_pauses_the_whole_bucket():
    t = FakeTime()
    bucket = TokenBucket(rate=None, clock=t.clock, sleep=t.sleep)
    bucket.acquire()
    assert t.now == 0
    bucket.pause(5)
    bucket.acquire()
    assert t.now >= 5


def test_circuit_opens_after_failures_and_half_opens_after_cooldown():
    t = FakeTime()
    breaker = CircuitBreaker(threshold=3, cooldown=30, clock=t.clock)
    for _ in range(3):
        assert not breaker.is_open
        breaker.failure()
    assert breaker.is_open
    t.now += 31
    assert not breaker.is_open  # one trial call
    breaker.failure()
    assert breaker.is_open  # the trial failed: open again
    t.now += 31
    breaker.success()
    assert not breaker.is_open


def limited_client(answer: httpx.Response | None = None) -> httpx.Client:
    client = httpx.Client(
        transport=httpx.MockTransport(lambda request: answer or httpx.Response(200, json={})),
        base_url="https://carrier.test",
    )
    limit_requests(client)
    return client


def test_a_token_is_taken_per_unsafe_request_not_per_call():
    """A pickup at EasyPost is two POSTs in one plugin call: both count."""
    t = FakeTime()
    bucket = TokenBucket(rate=10, burst=1, clock=t.clock, sleep=t.sleep)
    client = limited_client()
    with rate_limited(bucket):
        client.post("/pickups")
        client.post("/pickups/p1/buy")
        client.get("/labels/l1.pdf")  # downloads are not what carriers limit
        client.delete("/shipments/s1")
    assert t.slept == [0.1, 0.1]  # three unsafe requests at 10/s: two waits of 100 ms


def test_requests_outside_a_rate_limited_block_are_not_limited():
    t = FakeTime()
    bucket = TokenBucket(rate=1, burst=1, clock=t.clock, sleep=t.sleep)
    client = limited_client()
    with rate_limited(bucket):
        client.post("/shipments")
    for _ in range(3):  # e.g. a notifier sharing the engine's client
        client.post("/messages")
    assert t.slept == []


def test_a_429_pauses_the_bucket_for_its_retry_after():
    t = FakeTime()
    bucket = TokenBucket(rate=None, clock=t.clock, sleep=t.sleep)
    client = limited_client(httpx.Response(429, headers={"Retry-After": "7"}))
    with rate_limited(bucket):
        assert client.post("/shipments").status_code == 429
        client.post("/shipments")  # waits for the pause first
    assert t.now >= 7


def test_a_client_set_up_twice_still_takes_one_token_a_request():
    """Two engines given the same client each set it up: a request must not cost twice."""
    t = FakeTime()
    bucket = TokenBucket(rate=10, burst=1, clock=t.clock, sleep=t.sleep)
    client = limited_client()
    limit_requests(client)
    with rate_limited(bucket):
        client.post("/shipments")
        client.post("/shipments")
    assert t.slept == [0.1]
