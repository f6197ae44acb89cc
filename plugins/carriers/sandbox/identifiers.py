"""Identifiers the sandbox hands out, derived from the idempotency key alone.

Deriving rather than drawing them means a label bought again under the same key (by
another worker process, after a crash) carries the same tracking number, so a duplicate
would be visible at once instead of hiding behind a fresh random number.
"""

from __future__ import annotations

import hashlib
import re

__all__ = [
    "TRACKING_URL",
    "carrier_reference",
    "is_tracking_number",
    "pickup_confirmation",
    "tracking_number",
]

TRACKING_URL = "https://sandbox.fulfil.invalid/track/{}"
_TRACKING_RE = re.compile(r"^SBX(\d{12})(\d)$")


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def _luhn_check_digit(digits: str) -> str:
    total = 0
    # Doubling starts at the rightmost payload digit because the check digit follows it.
    for i, char in enumerate(reversed(digits)):
        value = int(char)
        if i % 2 == 0:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return str((10 - total % 10) % 10)


def tracking_number(key: str) -> str:
    """``SBX`` + 12 digits from sha256(key) + a Luhn check digit (16 characters)."""
    payload = str(int.from_bytes(_digest(key)[:8], "big") % 10**12).zfill(12)
    return f"SBX{payload}{_luhn_check_digit(payload)}"


def is_tracking_number(value: str) -> bool:
    match = _TRACKING_RE.match(value)
    return match is not None and _luhn_check_digit(match.group(1)) == match.group(2)


def carrier_reference(key: str) -> str:
    return f"sbx_{_digest(key).hex()[:24]}"


def pickup_confirmation(key: str) -> str:
    return f"SBXP-{_digest(key).hex()[:10].upper()}"
