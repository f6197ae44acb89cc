"""The fake EasyPost of B2 and B4, in a process of its own (its CPU is not the client's).

``fulfil.testing.fakes.easypost.FakeEasyPost`` (the fake the adapter's tests use, and that
karrio's connector works against unchanged) with two benchmark settings:

- ``api_latency``: every API request (``/v2/...``) is answered after this many seconds; the
  label documents (``/files/...``, file storage on a CDN at EasyPost) are not delayed;
- ``rate_limit``: at most this many POST requests are accepted in any one-second window
  (sliding); beyond that the answer is 429 with ``Retry-After: 1`` and an EasyPost error
  body, before anything is bought. Sendcloud documents 100 POST a minute; the benchmark
  scales that to 20 a second.

``GET /bench/stats`` answers what the fake saw: requests by method, POSTs accepted, 429s
sent, labels sold (distinct references, so "nothing bought twice" is checked from the
carrier's side). Run ``python bench/fake_carrier.py [--latency S] [--rate-limit N]``: it
prints its base URL on one line, then serves until its stdin closes.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

API_KEY = "EZTK_bench_key"


def make_service(api_latency: float, rate_limit: int | None) -> Any:
    from http.server import ThreadingHTTPServer

    from fulfil.testing.fakes.easypost import FakeEasyPost, error
    from fulfil.testing.server import Request, Response

    # socketserver's listen backlog is 5: 64 clients connecting at once would see SYNs
    # dropped and retried a second later, which measures the fake, not the client.
    ThreadingHTTPServer.request_queue_size = 256

    class BenchEasyPost(FakeEasyPost):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(api_key=API_KEY, latency=0.0)
            self.api_latency = api_latency
            self.rate_limit = rate_limit
            self.window: deque[float] = deque()
            self.counts: Counter[str] = Counter()
            self.counts_lock = threading.Lock()

        def handle(self, request: Request) -> Response | None:
            if request.path == "/bench/stats":
                return Response.json(200, self.stats())
            if not request.path.startswith("/v2/"):
                return super().handle(request)
            time.sleep(self.api_latency)
            with self.counts_lock:
                self.counts[request.method] += 1
                if request.method == "POST" and self.rate_limit is not None:
                    now = time.monotonic()
                    while self.window and self.window[0] <= now - 1.0:
                        self.window.popleft()
                    if len(self.window) >= self.rate_limit:
                        self.counts["429"] += 1
                        return self._too_many()
                    self.window.append(now)
                    self.counts["POST accepted"] += 1
            return super().handle(request)

        def _too_many(self) -> Response:
            answer = error(429, "RATE_LIMITED", "Too many requests; retry after 1 second.")
            return Response(429, {**answer.headers, "Retry-After": "1"}, answer.body)

        def stats(self) -> dict[str, Any]:
            with self.counts_lock:
                counts = dict(self.counts)
            references = [sale.reference for sale in self.sold]
            return {
                "requests": counts,
                "http_429": counts.get("429", 0),
                "sold": len(self.sold),
                "sold_distinct_references": len(set(references)),
            }

    return BenchEasyPost()


@contextmanager
def fake_carrier(api_latency: float, rate_limit: int | None = None) -> Iterator[str]:
    """Start the fake in a child process; yield its base URL (``.../v2`` is the API)."""
    command = [sys.executable, __file__, "--latency", str(api_latency)]
    if rate_limit is not None:
        command += ["--rate-limit", str(rate_limit)]
    child = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        url = child.stdout.readline().strip()
        if not url.startswith("http"):
            raise RuntimeError(f"the fake carrier did not start: {url!r}")
        yield url
    finally:
        if child.stdin is not None:
            child.stdin.close()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def stats(url: str) -> dict[str, Any]:
    data: dict[str, Any] = httpx.get(url + "/bench/stats", timeout=10).json()
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--rate-limit", type=int)
    args = parser.parse_args()
    service = make_service(args.latency, args.rate_limit)
    service.start()
    print(service.url, flush=True)
    sys.stdin.read()  # until the parent closes our stdin (or exits)
    service.stop()


if __name__ == "__main__":
    main()
