"""Versioned schema migrations: opening an older database upgrades it in place.

Each migration is a function of a connection, applied in order inside one transaction
with the bump of ``schema_version``. Never edit a released migration; add the next one.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from fulfil.core.store import tables

Migration = Callable[[sa.Connection], None]


def _v1_initial(conn: sa.Connection) -> None:
    """Orders, history, shipments, label intents, pickups, outbox (no notes yet)."""
    for table in (
        tables.orders,
        tables.events,
        tables.shipments,
        tables.labels,
        tables.pickups,
        tables.outbox,
    ):
        table.create(conn)


def _v2_notes(conn: sa.Connection) -> None:
    """Staff notes got their own table so they can be listed without loading orders."""
    tables.notes.create(conn)


def _v3_return_labels(conn: sa.Connection) -> None:
    """Return labels are bought through the same saga; the purpose tells them apart."""
    if "purpose" not in {c["name"] for c in sa.inspect(conn).get_columns("labels")}:
        conn.execute(
            sa.text("ALTER TABLE labels ADD COLUMN purpose VARCHAR(16) NOT NULL DEFAULT 'outbound'")
        )


def _v4_pickup_leases(conn: sa.Connection) -> None:
    """Two worker processes could both book the day's pickup: a booking is now leased."""
    columns = {c["name"] for c in sa.inspect(conn).get_columns("pickups")}
    if "lease_owner" not in columns:
        conn.execute(sa.text("ALTER TABLE pickups ADD COLUMN lease_owner VARCHAR(200)"))
    if "lease_until" not in columns:
        conn.execute(sa.text("ALTER TABLE pickups ADD COLUMN lease_until FLOAT"))


MIGRATIONS: list[Migration] = [_v1_initial, _v2_notes, _v3_return_labels, _v4_pickup_leases]
LATEST = len(MIGRATIONS)


def current_version(conn: sa.Connection) -> int:
    if not sa.inspect(conn).has_table("schema_version"):
        return 0
    version = conn.execute(sa.select(tables.schema_version.c.version)).scalar()
    return int(version or 0)


def upgrade(conn: sa.Connection, target: int = LATEST) -> int:
    """Apply every migration after the database's version up to ``target``."""
    version = current_version(conn)
    if version == 0:
        tables.schema_version.create(conn)
        conn.execute(tables.schema_version.insert().values(version=0))
    for number in range(version + 1, target + 1):
        MIGRATIONS[number - 1](conn)
        conn.execute(tables.schema_version.update().values(version=number))
    return max(version, target)
