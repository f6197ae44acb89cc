"""The adapter's small SQLite file in the plugin's data folder, shared by a merchant's workers.

Shippo documents no idempotency key for buying a label, so the adapter keeps what it needs
to never buy twice from one data folder:

- ``purchases``: the label bought under each key (its file too: ``label_url`` is a
  pre-signed URL that expires), so a retry from any worker returns it without a request;
- ``sending``: keys whose purchase was sent and whose answer never came (timeout, reset,
  5xx, killed worker); the next attempt asks Shippo (``find_label``) before buying;
- ``pickups``: bookings by key; ``carriers``: the Shippo carrier token of each tracking
  number, which ``GET /tracks/{carrier}/{number}`` needs.

Every call opens and closes its own connection (no lifecycle to manage, safe across
threads and processes); WAL and a busy timeout let several workers share the file.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
from fulfil.core.carriers import PickupConfirmation, PurchasedLabel
from fulfil.core.models import Money

__all__ = ["Ledger"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS purchases (
    idempotency_key TEXT PRIMARY KEY,
    transaction_id TEXT,
    label TEXT NOT NULL,
    document BLOB,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sending (
    idempotency_key TEXT PRIMARY KEY,
    since TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS pickups (
    idempotency_key TEXT PRIMARY KEY,
    confirmation TEXT NOT NULL,
    carrier_reference TEXT,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS carriers (
    tracking_number TEXT PRIMARY KEY,
    carrier TEXT NOT NULL
);
"""


def _now() -> str:
    return datetime.now(UTC).isoformat()


class Ledger:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._ready = False

    def __repr__(self) -> str:
        return f"Ledger({str(self.path)!r})"

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        if not self._ready:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.closing(sqlite3.connect(self.path, timeout=30)) as conn:
            if not self._ready:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.executescript(_SCHEMA)
                self._ready = True
            with conn:  # one transaction, committed on success
                yield conn

    # --- labels ---------------------------------------------------------------------------

    def purchase(self, key: str) -> PurchasedLabel | None:
        with self._connect() as conn:
            row = conn.execute(
                "SELECT label, document FROM purchases WHERE idempotency_key = ?", (key,)
            ).fetchone()
        if row is None:
            return None
        data = json.loads(row[0])
        cost = data.pop("cost")
        return PurchasedLabel(
            **data, cost=Money(Decimal(cost["amount"]), cost["currency"]), document=row[1]
        )

    def record_purchase(self, key: str, label: PurchasedLabel) -> None:
        """Keep ``label`` as the one bought under ``key``; the key is no longer in doubt."""
        data = attrs.asdict(label, filter=lambda a, _: a.name != "document")
        data["cost"] = label.cost.to_mapping()
        with self._connect() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO purchases VALUES (?, ?, ?, ?, ?)",
                (key, label.carrier_reference, json.dumps(data), label.document, _now()),
            )
            conn.execute("DELETE FROM sending WHERE idempotency_key = ?", (key,))

    def mark_sending(self, key: str) -> None:
        with self._connect() as conn:
            conn.execute("INSERT OR IGNORE INTO sending VALUES (?, ?)", (key, _now()))

    def clear_sending(self, key: str) -> None:
        with self._connect() as conn:
            conn.execute("DELETE FROM sending WHERE idempotency_key = ?", (key,))

    def is_sending(self, key: str) -> bool:
        with self._connect() as conn:
            row = conn.execute("SELECT 1 FROM sending WHERE idempotency_key = ?", (key,))
            return row.fetchone() is not None

    # --- pickups and tracking -------------------------------------------------------------

    def pickup(self, key: str) -> PickupConfirmation | None:
        with self._connect() as conn:
            row = conn.execute(
                "SELECT confirmation, carrier_reference FROM pickups WHERE idempotency_key = ?",
                (key,),
            ).fetchone()
        return PickupConfirmation(row[0], row[1]) if row else None

    def record_pickup(self, key: str, confirmation: PickupConfirmation) -> None:
        with self._connect() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO pickups VALUES (?, ?, ?, ?)",
                (key, confirmation.confirmation, confirmation.carrier_reference, _now()),
            )

    def carrier_of(self, tracking_number: str) -> str | None:
        with self._connect() as conn:
            row = conn.execute(
                "SELECT carrier FROM carriers WHERE tracking_number = ?", (tracking_number,)
            ).fetchone()
        return str(row[0]) if row else None

    def record_carrier(self, tracking_number: str, carrier: str) -> None:
        with self._connect() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO carriers VALUES (?, ?)", (tracking_number, carrier)
            )

    def rows(self, table: str) -> list[tuple[Any, ...]]:
        """Every row of ``table`` (for tests and troubleshooting)."""
        if table not in ("purchases", "sending", "pickups", "carriers"):
            raise ValueError(f"no table {table!r}")
        with self._connect() as conn:
            return list(conn.execute(f"SELECT * FROM {table}"))  # table is one of four names
