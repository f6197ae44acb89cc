"""The store's tables (SQLAlchemy Core). Orders stay attrs objects; rows hold their JSON.

Schema changes go through ``migrations.py``; these definitions are the latest version and
are what queries are written against.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

schema_version = sa.Table(
    "schema_version",
    metadata,
    sa.Column("version", sa.Integer, nullable=False),
)

orders = sa.Table(
    "orders",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("payment_status", sa.String(32), nullable=False, index=True),
    sa.Column("fulfilment_status", sa.String(32), nullable=False, index=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("updated_at", sa.String(40), nullable=False),
    sa.Column("data", sa.JSON, nullable=False),  # Order.to_mapping() without shipments/notes
)

# Append-only: one row per change, never updated.
events = sa.Table(
    "events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("order_id", sa.String(64), nullable=False, index=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("at", sa.String(40), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("data", sa.JSON, nullable=False),
)

shipments = sa.Table(
    "shipments",
    metadata,
    sa.Column("id", sa.String(80), primary_key=True),
    sa.Column("order_id", sa.String(64), nullable=False, index=True),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("carrier", sa.String(64)),
    sa.Column("pickup_id", sa.String(160), index=True),
    sa.Column("data", sa.JSON, nullable=False),  # Shipment.to_mapping()
)

# The label purchase saga: the intent is committed before any carrier call, keyed
# deterministically, and its outcome is written back to the same row.
labels = sa.Table(
    "labels",
    metadata,
    sa.Column("key", sa.String(160), primary_key=True),  # "order:shipment:n"
    sa.Column("order_id", sa.String(64), nullable=False, index=True),
    sa.Column("shipment_id", sa.String(80), nullable=False, index=True),
    sa.Column("carrier", sa.String(64), nullable=False),
    sa.Column("service", sa.String(64)),
    sa.Column("fallback", sa.JSON),  # the route to try if this one fails permanently
    # "outbound" (the parcel to the customer) or "return" (a label the customer sends back)
    sa.Column("purpose", sa.String(16), nullable=False, server_default="outbound"),
    # intent -> sending (call under way) -> bought | failed | unknown (reconcile by key)
    # | superseded (fallback took over) | cancelled (order cancelled before the call)
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("tracking_number", sa.String(64)),
    sa.Column("document_path", sa.Text),
    sa.Column("error", sa.Text),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("updated_at", sa.String(40), nullable=False),
)

pickups = sa.Table(
    "pickups",
    metadata,
    sa.Column("id", sa.String(160), primary_key=True),  # "pickup:carrier:day:location"
    sa.Column("carrier", sa.String(64), nullable=False),
    sa.Column("day", sa.String(10), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # intent | booked | failed
    sa.Column("confirmation", sa.String(128)),
    sa.Column("data", sa.JSON, nullable=False),  # Pickup.to_mapping()
    sa.Column("created_at", sa.String(40), nullable=False),
    # The worker calling the carrier to book it, until when: one booker at a time.
    sa.Column("lease_owner", sa.String(200)),
    sa.Column("lease_until", sa.Float),
)

notes = sa.Table(
    "notes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("order_id", sa.String(64), nullable=False, index=True),
    sa.Column("at", sa.String(40), nullable=False),
    sa.Column("author", sa.String(128), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
)

# The transactional outbox: work a change causes, written in the change's transaction.
outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(16), nullable=False),  # label | notification | pickup
    sa.Column("dedupe_key", sa.String(200), nullable=False, unique=True),
    sa.Column("order_id", sa.String(64), index=True),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # pending | done | dead
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("available_at", sa.Float, nullable=False),  # unix time
    sa.Column("lease_owner", sa.String(64)),
    sa.Column("lease_until", sa.Float),
    sa.Column("last_error", sa.Text),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("updated_at", sa.String(40), nullable=False),
    sa.Index("ix_outbox_due", "status", "available_at"),
)
