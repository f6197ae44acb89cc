"""Injected faults: which of a request's possible failures happen, decided reproducibly.

Each request draws from ``random.Random`` seeded with (seed, idempotency key, attempt
number for that key): a run replays exactly for a given seed, yet a retry of the same key
is a new attempt with a fresh draw and so can succeed, which is what real outages do.
"""

from __future__ import annotations

import random

import attrs
from fulfil.core.errors import CarrierError
from fulfil.plugins.carriers.sandbox.settings import SandboxSettings

__all__ = ["CARRIER", "Faults", "draw"]

CARRIER = "sandbox"


@attrs.frozen
class Faults:
    rate_limited: bool = False
    unavailable: bool = False
    timed_out: bool = False

    def raise_before_processing(self, settings: SandboxSettings) -> None:
        """The failures that happen before the carrier looked at the request."""
        if self.rate_limited:
            raise CarrierError(
                CARRIER,
                "rate_limited",
                f"too many requests; retry after {settings.retry_after_s:g} s",
                code="sandbox_rate_limited",
                retry_after=settings.retry_after_s,
                status_code=429,
            )
        if self.unavailable:
            raise CarrierError(
                CARRIER,
                "unavailable",
                "service temporarily unavailable",
                code="sandbox_unavailable",
                status_code=503,
            )

    def raise_after_processing(self) -> None:
        """The failure that happens after the carrier acted: the answer never arrives."""
        if self.timed_out:
            raise CarrierError(
                CARRIER,
                "unknown_outcome",
                "no answer before the timeout; the request may have been carried out",
                code="sandbox_timeout",
            )


def draw(settings: SandboxSettings, key: str, attempt: int) -> Faults:
    # A str seed is hashed with SHA-512 by random, so it is stable across processes and
    # PYTHONHASHSEED (a tuple seed would be neither, and is deprecated).
    rng = random.Random(f"{settings.seed}:{key}:{attempt}")
    # Always draw all three so that changing one probability leaves the others' outcomes
    # for the same attempt unchanged.
    r429, r5xx, rtimeout = rng.random(), rng.random(), rng.random()
    return Faults(
        rate_limited=r429 < settings.fail_429,
        unavailable=r5xx < settings.fail_5xx,
        timed_out=rtimeout < settings.fail_timeout,
    )
