"""The sandbox carrier's own database: what it sold, to whom, and how often it was asked.

It plays the carrier's side of the wire, so tests prove "nothing lost, nothing twice" from
here rather than from the framework's bookkeeping. Several worker processes share one file
(and one may be SIGKILLed mid-batch), hence WAL, a generous busy timeout, autocommit
connections that never hold a transaction between calls, and ``BEGIN IMMEDIATE`` around
every check-then-insert, which takes the write lock before the check so two processes
cannot both see "not bought yet".
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["Ledger"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS purchases (
    idempotency_key TEXT PRIMARY KEY,
    order_id TEXT NOT NULL,
    shipment_id TEXT NOT NULL,
    tracking_number TEXT NOT NULL UNIQUE,
    service TEXT NOT NULL,
    cost TEXT NOT NULL,
    currency TEXT NOT NULL,
    created_at TEXT NOT NULL,
    voided INTEGER NOT NULL DEFAULT 0,
    voided_at TEXT,
    is_return INTEGER NOT NULL DEFAULT 0,
    fingerprint TEXT NOT NULL,
    label TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS purchases_shipment ON purchases (shipment_id);
CREATE TABLE IF NOT EXISTS attempts (
    idempotency_key TEXT PRIMARY KEY,
    n INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS pickups (
    idempotency_key TEXT PRIMARY KEY,
    confirmation TEXT NOT NULL UNIQUE,
    day TEXT NOT NULL,
    tracking_numbers TEXT NOT NULL,
    created_at TEXT NOT NULL,
    cancelled INTEGER NOT NULL DEFAULT 0
);
"""

# What the carrier supplies; created_at, voided and voided_at are the ledger's own.
_PURCHASE_COLUMNS = (
    "idempotency_key",
    "order_id",
    "shipment_id",
    "tracking_number",
    "service",
    "cost",
    "currency",
    "is_return",
    "fingerprint",
    "label",
)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _purchase(row: sqlite3.Row) -> dict[str, Any]:
    record = dict(row)
    record["voided"] = bool(record["voided"])
    record["is_return"] = bool(record["is_return"])
    record["label"] = json.loads(record["label"])
    return record


def _pickup(row: sqlite3.Row) -> dict[str, Any]:
    record = dict(row)
    record["tracking_numbers"] = json.loads(record["tracking_numbers"])
    record["cancelled"] = bool(record["cancelled"])
    return record


def _one(
    conn: sqlite3.Connection, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()
) -> sqlite3.Row | None:
    # fetchall steps the statement to its end, so no statement stays active on a pooled
    # connection holding an old read snapshot (or blocking the COMMIT that follows).
    rows = conn.execute(sql, params).fetchall()
    return rows[0] if rows else None


def _close_all(connections: list[sqlite3.Connection]) -> None:
    while connections:
        connections.pop().close()


class Ledger:
    """One SQLite file shared by threads and processes.

    Connections are pooled rather than opened per operation: closing the last connection
    to a WAL database checkpoints it, which cost ~3 ms per call. ``close()`` (or garbage
    collection) closes them; a ledger used after ``close()`` simply reconnects.

    Read helpers (``purchases``, ``purchases_per_shipment``, ``attempts``, ``pickups``)
    are public so tests can audit what the carrier actually did.
    """

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout_s: float = 30.0) -> None:
        self.path = Path(path)
        self.busy_timeout_s = busy_timeout_s
        self._lock = threading.Lock()
        self._idle: list[sqlite3.Connection] = []
        self._opened: list[sqlite3.Connection] = []
        self._pid = os.getpid()
        self._finalizer = weakref.finalize(self, _close_all, self._opened)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._create()

    def __repr__(self) -> str:
        return f"Ledger({str(self.path)!r})"

    def close(self) -> None:
        """Close every pooled connection; call when no operation is running."""
        with self._lock:
            self._idle.clear()
            _close_all(self._opened)

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- plumbing -----------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        # isolation_level=None: transactions are opened explicitly, never implicitly.
        # check_same_thread=False: the pool hands a connection to one thread at a time.
        conn = sqlite3.connect(
            self.path,
            timeout=self.busy_timeout_s,
            isolation_level=None,
            check_same_thread=False,
        )
        conn.row_factory = sqlite3.Row
        # In WAL mode NORMAL survives a killed process (only power loss can drop the last
        # commits), which is the failure the sandbox is used to rehearse.
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if os.getpid() != self._pid:
                # Forked: the parent's connections must be neither used nor closed here
                # (SQLite forbids carrying them across fork), so start a fresh pool.
                self._pid = os.getpid()
                self._finalizer.detach()
                self._idle, self._opened = [], []
                self._finalizer = weakref.finalize(self, _close_all, self._opened)
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self._open()
            with self._lock:
                self._opened.append(conn)
        try:
            yield conn
        finally:
            if conn.in_transaction:  # only after an error inside _write's own handling
                conn.rollback()
            with self._lock:
                if conn in self._opened:
                    self._idle.append(conn)

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _create(self) -> None:
        deadline = time.monotonic() + self.busy_timeout_s
        while True:
            try:
                with self._connect() as conn:
                    # Switching to WAL needs a moment alone with the file and does not
                    # always wait on the busy handler when processes start together.
                    conn.execute("PRAGMA journal_mode=WAL")
                    conn.executescript(_SCHEMA)  # each statement is idempotent and atomic
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    # --- writes used by the carrier -----------------------------------------------------

    def record_attempt(self, key: str) -> int:
        """Count one more request under ``key``; return its number (1 for the first)."""
        with self._write() as conn:
            row = _one(
                conn,
                "INSERT INTO attempts (idempotency_key, n) VALUES (?, 1) "
                "ON CONFLICT (idempotency_key) DO UPDATE SET n = n + 1 RETURNING n",
                (key,),
            )
        assert row is not None  # RETURNING always yields the upserted row
        return int(row[0])

    def record_purchase(self, purchase: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
        """Insert ``purchase`` unless its key was bought before.

        Returns the stored purchase and whether this call created it.
        """
        values = {c: purchase[c] for c in _PURCHASE_COLUMNS}
        values["label"] = json.dumps(values["label"], sort_keys=True)
        values["is_return"] = int(bool(values["is_return"]))
        values["created_at"] = _now()
        with self._write() as conn:
            row = _one(
                conn,
                "SELECT * FROM purchases WHERE idempotency_key = ?",
                (values["idempotency_key"],),
            )
            if row is not None:
                return _purchase(row), False
            names = ", ".join(values)
            marks = ", ".join(f":{name}" for name in values)
            sql = f"INSERT INTO purchases ({names}) VALUES ({marks}) RETURNING *"
            row = _one(conn, sql, values)
        assert row is not None
        return _purchase(row), True

    def void(self, tracking_number: str) -> dict[str, Any] | None:
        """Mark a label voided (again is a no-op); ``None`` if it was never sold."""
        with self._write() as conn:
            row = _one(
                conn,
                "UPDATE purchases SET voided = 1, voided_at = COALESCE(voided_at, ?) "
                "WHERE tracking_number = ? RETURNING *",
                (_now(), tracking_number),
            )
        return _purchase(row) if row else None

    def record_pickup(
        self, key: str, confirmation: str, day: str, tracking_numbers: list[str]
    ) -> tuple[dict[str, Any], bool]:
        """Insert a pickup unless ``key`` was booked before; return it and whether new."""
        with self._write() as conn:
            row = _one(conn, "SELECT * FROM pickups WHERE idempotency_key = ?", (key,))
            if row is not None:
                return _pickup(row), False
            row = _one(
                conn,
                "INSERT INTO pickups (idempotency_key, confirmation, day, tracking_numbers, "
                "created_at) VALUES (?, ?, ?, ?, ?) RETURNING *",
                (key, confirmation, day, json.dumps(tracking_numbers), _now()),
            )
        assert row is not None
        return _pickup(row), True

    def cancel_pickup(self, confirmation: str) -> dict[str, Any] | None:
        """Mark a pickup cancelled (again is a no-op); ``None`` if it was never booked."""
        with self._write() as conn:
            row = _one(
                conn,
                "UPDATE pickups SET cancelled = 1 WHERE confirmation = ? RETURNING *",
                (confirmation,),
            )
        return _pickup(row) if row else None

    # --- reads ----------------------------------------------------------------------------

    def purchase(self, key: str) -> dict[str, Any] | None:
        """The purchase made under ``key``, if any."""
        with self._connect() as conn:
            row = _one(conn, "SELECT * FROM purchases WHERE idempotency_key = ?", (key,))
        return _purchase(row) if row else None

    def purchase_by_tracking(self, tracking_number: str) -> dict[str, Any] | None:
        with self._connect() as conn:
            row = _one(
                conn, "SELECT * FROM purchases WHERE tracking_number = ?", (tracking_number,)
            )
        return _purchase(row) if row else None

    def pickup(self, key: str) -> dict[str, Any] | None:
        """The pickup booked under ``key``, if any."""
        with self._connect() as conn:
            row = _one(conn, "SELECT * FROM pickups WHERE idempotency_key = ?", (key,))
        return _pickup(row) if row else None

    def pickups_for(self, tracking_number: str) -> list[dict[str, Any]]:
        """The pickups whose batch includes ``tracking_number``, oldest first."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT * FROM pickups WHERE EXISTS (SELECT 1 FROM json_each(tracking_numbers) "
                "WHERE value = ?) ORDER BY created_at, idempotency_key",
                (tracking_number,),
            ).fetchall()
        return [_pickup(row) for row in rows]

    def purchases(self) -> list[dict[str, Any]]:
        """Every label ever sold, voided ones included, in the order they were sold."""
        with self._connect() as conn:
            rows = conn.execute("SELECT * FROM purchases ORDER BY rowid").fetchall()
        return [_purchase(row) for row in rows]

    def purchases_per_shipment(self, *, include_returns: bool = False) -> dict[str, int]:
        """How many labels were sold per shipment id, voided ones included.

        Return labels are left out unless asked for, so that "exactly one outbound label
        per shipment" reads as ``all(n == 1 for n in ledger.purchases_per_shipment().values())``.
        """
        where = "" if include_returns else "WHERE is_return = 0"
        with self._connect() as conn:
            rows = conn.execute(
                f"SELECT shipment_id, COUNT(*) FROM purchases {where} "
                "GROUP BY shipment_id ORDER BY shipment_id"
            ).fetchall()
        return {str(shipment_id): int(count) for shipment_id, count in rows}

    def attempts(self, key: str) -> int:
        """How many requests arrived under ``key`` (0 if none)."""
        with self._connect() as conn:
            row = _one(conn, "SELECT n FROM attempts WHERE idempotency_key = ?", (key,))
        return int(row[0]) if row else 0

    def pickups(self) -> list[dict[str, Any]]:
        """Every pickup ever booked, cancelled ones included, oldest first."""
        with self._connect() as conn:
            rows = conn.execute("SELECT * FROM pickups ORDER BY rowid").fetchall()
        return [_pickup(row) for row in rows]
