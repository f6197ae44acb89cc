"""A notifier's small SQLite ledger in the data folder, shared by every worker process.

Providers without an idempotency key (Twilio, FCM) are kept from sending twice by what
fulfil itself recorded of earlier sends; a file in the data folder, so that any worker
process sees what another one sent.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar

__all__ = ["SqliteLedger"]


class SqliteLedger:
    """Subclasses give ``schema`` (idempotent DDL) and query through ``connect()``."""

    schema: ClassVar[str]

    def __init__(self, path: Path) -> None:
        self.path = path
        self._created = False  # the table exists: no DDL on every send

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """An autocommit connection for one operation (threads and processes share the file)."""
        if not self._created:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            if not self._created:
                conn.execute(self.schema)
                self._created = True
            yield conn
        finally:
            conn.close()
