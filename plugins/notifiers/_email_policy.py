"""A ``compat32`` email policy that writes headers needing no folding as they are.

``compat32`` passes every header through ``email.header.Header``'s folding algorithm, even
``MIME-Version: 1.0``: about fifteen headers a message, and most of the CPU time of
building one. RFC 5322 lines of up to 78 characters need no folding, so a header whose
value is short, printable ASCII, on one line and without surrounding blanks is written as
``Name: value`` directly; that is exactly what ``compat32`` writes for it (the tests
compare the two). Anything else (non-ASCII, long, line breaks, control characters,
``Header`` objects) takes the normal path.
"""

from __future__ import annotations

import re
from email.policy import Compat32
from typing import Any

__all__ = ["FAST_FOLD_COMPAT32", "FastFoldCompat32", "needs_no_folding"]

# Printable ASCII and inner blanks. No leading or trailing blank: Header drops a trailing
# one, and the fast path must write what compat32 writes. No CR, LF, or the other line
# separators str.splitlines() knows (VT, FF, FS, GS, RS): compat32 splits lines on those.
_ONE_PLAIN_LINE = re.compile(r"[\x21-\x7e](?:[\x20-\x7e\t]*[\x21-\x7e])?")


def needs_no_folding(name: str, value: str, max_line_length: int | None = 78) -> bool:
    """Whether ``name: value`` is one plain ASCII line that fits ``max_line_length``."""
    limit = max_line_length or 1_000_000  # what Header.encode takes "no limit" (0, None) for
    return len(name) + 2 + len(value) <= limit and _ONE_PLAIN_LINE.fullmatch(value) is not None


class FastFoldCompat32(Compat32):
    """``compat32``, with a shortcut for headers that need no folding."""

    def fold(self, name: str, value: Any) -> str:
        if isinstance(value, str) and needs_no_folding(name, value, self.max_line_length):
            return f"{name}: {value}{self.linesep}"
        return super().fold(name, value)

    def fold_binary(self, name: str, value: Any) -> bytes:
        if isinstance(value, str) and needs_no_folding(name, value, self.max_line_length):
            return f"{name}: {value}{self.linesep}".encode("ascii")
        return super().fold_binary(name, value)


FAST_FOLD_COMPAT32 = FastFoldCompat32()
