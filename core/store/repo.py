"""Queries, grouped on the transaction object that runs them (``Store.transaction()``)."""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from typing import Any

import sqlalchemy as sa
from fulfil.core.models import Event, Note, Order, Shipment
from fulfil.core.store import tables as t
from sqlalchemy.dialects import postgresql, sqlite

__all__ = ["StaleOrder", "Tx"]


# The statements of the hot path, built once: building one costs more than running it.
_ORDER = sa.select(t.orders).where(t.orders.c.id == sa.bindparam("oid"))
_SHIPMENTS = (
    sa.select(t.shipments.c.data)
    .where(t.shipments.c.order_id == sa.bindparam("oid"))
    .order_by(t.shipments.c.position)
)
_NOTES = sa.select(t.notes).where(t.notes.c.order_id == sa.bindparam("oid")).order_by(t.notes.c.id)
_ORDER_COLUMNS = [c.name for c in t.orders.columns if c.name != "id"]
_SAVE_ORDER = (
    t.orders.update()
    .where(t.orders.c.id == sa.bindparam("oid"), t.orders.c.version == sa.bindparam("previous"))
    .values({name: sa.bindparam(f"v_{name}") for name in _ORDER_COLUMNS})
)
_INSERT_ORDER = t.orders.insert()
_INSERT_EVENT = t.events.insert()
_ORDER_VERSION = sa.select(t.orders.c.version).where(t.orders.c.id == sa.bindparam("oid"))
_LABEL = sa.select(t.labels).where(t.labels.c.key == sa.bindparam("key"))
_PICKUP = sa.select(t.pickups).where(t.pickups.c.id == sa.bindparam("pid"))
# Reads of many rows by id: one statement, an expanding IN (chunks of ``_IN_CHUNK`` ids).
_IDS: sa.BindParameter[str] = sa.bindparam("ids", expanding=True)
_ORDER_IDS_IN = sa.select(t.orders.c.id).where(t.orders.c.id.in_(_IDS))
_ORDERS_IN = sa.select(t.orders).where(t.orders.c.id.in_(_IDS))
_VERSIONS_IN = sa.select(t.orders.c.id, t.orders.c.version).where(t.orders.c.id.in_(_IDS))
_SHIPMENTS_OF_ORDERS_IN = (
    sa.select(t.shipments.c.order_id, t.shipments.c.data)
    .where(t.shipments.c.order_id.in_(_IDS))
    .order_by(t.shipments.c.order_id, t.shipments.c.position)
)
_NOTES_OF_ORDERS_IN = sa.select(t.notes).where(t.notes.c.order_id.in_(_IDS)).order_by(t.notes.c.id)
_LABELS_IN = sa.select(t.labels).where(t.labels.c.key.in_(_IDS))
# WHERE clauses of the UPDATEs built by ``_update``: module constants, so its cache hits.
_LABEL_WHERE = (t.labels.c.key == sa.bindparam("k"),)
_FINISH_WHERE = (
    t.outbox.c.id == sa.bindparam("rid"),
    t.outbox.c.lease_owner == sa.bindparam("owner"),
)
_FINISH_DONE = (
    t.outbox.update()
    .where(*_FINISH_WHERE)
    .values(
        status="done",
        attempts=sa.bindparam("attempts"),
        last_error=None,
        lease_owner=None,
        lease_until=None,
        updated_at=sa.bindparam("now"),
    )
)
# SQLite's default limit on bound parameters is 999 before 3.32: stay well under it.
_IN_CHUNK = 500


@cache
def _update(table: sa.Table, where: tuple[Any, ...], columns: frozenset[str]) -> sa.Update:
    """An UPDATE of ``columns`` (bound as ``v_<name>``), built once per column set."""
    return table.update().where(*where).values({c: sa.bindparam(f"v_{c}") for c in columns})


def _dialect_insert(table: sa.Table, is_sqlite: bool) -> sqlite.Insert | postgresql.Insert:
    # Both dialects spell "on conflict" the same way; SQLAlchemy's generic INSERT cannot.
    return sqlite.insert(table) if is_sqlite else postgresql.insert(table)


@cache
def _insert_ignoring(table: sa.Table, is_sqlite: bool) -> sa.Insert:
    """INSERT that skips a row whose unique key exists (built once per table and dialect)."""
    return _dialect_insert(table, is_sqlite).on_conflict_do_nothing()


@cache
def _upsert(table: sa.Table, is_sqlite: bool) -> sa.Insert:
    """INSERT, or UPDATE of every column when the primary key exists: one statement."""
    insert = _dialect_insert(table, is_sqlite)
    key = [c.name for c in table.primary_key]
    return insert.on_conflict_do_update(
        index_elements=key,
        set_={c.name: insert.excluded[c.name] for c in table.columns if c.name not in key},
    )


def _chunks(values: Iterable[Any]) -> Iterable[list[Any]]:
    items = list(values)
    for start in range(0, len(items), _IN_CHUNK):
        yield items[start : start + _IN_CHUNK]


Result = sa.CursorResult[*tuple[Any, ...]]  # rows of any width


class StaleOrder(Exception):
    """The order changed under us (another worker saved a newer version first)."""


def _order_row(order: Order, now: str) -> dict[str, Any]:
    data = order.to_mapping()
    data.pop("shipments", None)
    data.pop("notes", None)
    return {
        "id": order.id,
        "number": order.number,
        "payment_status": order.payment_status.value,
        "fulfilment_status": order.fulfilment_status.value,
        "version": order.version,
        "created_at": order.created_at.isoformat(),
        "updated_at": now,
        "data": data,
    }


def _shipment_row(order_id: str, position: int, shipment: Shipment) -> dict[str, Any]:
    return {
        "id": shipment.id,
        "order_id": order_id,
        "position": position,
        "carrier": shipment.carrier,
        "pickup_id": shipment.pickup_id,
        "data": shipment.to_mapping(),
    }


class Tx:
    """A connection inside one transaction, with the store's queries.

    Writes that nothing in the transaction reads back at once are collected and sent
    together, an ``executemany`` per statement, when the transaction ends or before the
    next statement that is not one of them: history events, outbox rows, new orders and
    label intents, label updates, order saves and shipment upserts. A batch of settled
    labels or a bulk change of many orders so costs a statement per kind, not per order.
    Reads this transaction made, and the versions it wrote, are remembered (``label``,
    ``order_version``, ``pickup``) so that collecting is not undone by re-reading.
    """

    def __init__(self, conn: sa.Connection, is_sqlite: bool) -> None:
        self.conn = conn
        self.is_sqlite = is_sqlite
        self._writes: dict[str, list[tuple[sa.Executable, dict[str, Any]]]] = {}  # by table
        self._labels: dict[str, sa.Row[Any] | None] = {}
        self._versions: dict[str, int | None] = {}
        self._pickups: dict[str, sa.Row[Any] | None] = {}

    def flush(self) -> None:
        """Send the collected writes (order saves first fail with ``StaleOrder``)."""
        writes, self._writes = self._writes, {}
        # Tables are independent (no triggers, no foreign keys), so writes are grouped per
        # table; within one, runs of the same statement keep their order.
        for table_writes in writes.values():
            for _, run in itertools.groupby(table_writes, key=lambda write: id(write[0])):
                batch = list(run)
                result = self.conn.execute(batch[0][0], [params for _, params in batch])
                if batch[0][0] is _SAVE_ORDER and result.rowcount != len(batch):
                    raise StaleOrder(", ".join(params["oid"] for _, params in batch))

    def _execute(self, statement: sa.Executable, params: Any = None) -> Result:
        """Run a statement after the collected writes (it may read what they wrote)."""
        self.flush()
        return self.conn.execute(statement, params)

    def _later(self, table: sa.Table, statement: sa.Executable, params: dict[str, Any]) -> None:
        self._writes.setdefault(table.name, []).append((statement, params))

    def _insert_ignore(self, table: sa.Table, values: Mapping[str, Any] | Sequence[Any]) -> int:
        """Insert unless the unique key exists; return how many rows were inserted."""
        stmt = _insert_ignoring(table, self.is_sqlite)
        return int(self._execute(stmt, values).rowcount or 0)

    # --- orders -------------------------------------------------------------------------

    def order_exists(self, order_id: str) -> bool:
        query = sa.select(t.orders.c.id).where(t.orders.c.id == order_id)
        return self._execute(query).first() is not None

    def existing_order_ids(self, order_ids: Iterable[str]) -> set[str]:
        found: set[str] = set()
        for chunk in _chunks(order_ids):
            found.update(self._execute(_ORDER_IDS_IN, {"ids": chunk}).scalars())
        return found

    def load_order(self, order_id: str) -> Order | None:
        row = self._execute(_ORDER, {"oid": order_id}).first()
        if row is None:
            return None
        data = dict(row.data)
        data["version"] = self._versions[order_id] = row.version
        data["shipments"] = list(self._execute(_SHIPMENTS, {"oid": order_id}).scalars())
        data["notes"] = [
            {"at": n.at, "author": n.author, "text": n.text}
            for n in self._execute(_NOTES, {"oid": order_id})
        ]
        return Order.from_mapping(data)

    def load_orders(self, order_ids: Iterable[str]) -> dict[str, Order]:
        """Several orders by id, three queries for all of them (unknown ids left out)."""
        found: dict[str, Order] = {}
        for chunk in _chunks(set(order_ids)):
            rows = self._execute(_ORDERS_IN, {"ids": chunk})
            data = {row.id: {**row.data, "version": row.version} for row in rows}
            shipments: dict[str, list[Any]] = defaultdict(list)
            for order_id, shipment in self._execute(_SHIPMENTS_OF_ORDERS_IN, {"ids": chunk}):
                shipments[order_id].append(shipment)
            notes: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for n in self._execute(_NOTES_OF_ORDERS_IN, {"ids": chunk}):
                notes[n.order_id].append({"at": n.at, "author": n.author, "text": n.text})
            for order_id, mapping in data.items():
                self._versions[order_id] = mapping["version"]
                mapping["shipments"] = shipments[order_id]
                mapping["notes"] = notes[order_id]
                found[order_id] = Order.from_mapping(mapping)
        return found

    def order_version(self, order_id: str) -> int | None:
        """The order's version, as last read or written in this transaction."""
        if order_id not in self._versions:
            self.order_versions([order_id])
        return self._versions.get(order_id)

    def order_versions(self, order_ids: Iterable[str]) -> None:
        """Read these orders' versions in one query (``order_version`` then answers)."""
        wanted = [oid for oid in set(order_ids) if oid not in self._versions]
        for chunk in _chunks(wanted):
            found = {oid: v for oid, v in self._execute(_VERSIONS_IN, {"ids": chunk})}
            self._versions.update((oid, found.get(oid)) for oid in chunk)

    def insert_order(self, order: Order, now: str) -> None:
        self._later(t.orders, _INSERT_ORDER, _order_row(order, now))
        self._versions[order.id] = order.version
        self.save_shipments(order)

    def save_order(self, order: Order, previous: Order, now: str) -> None:
        """Write ``order`` only if nobody saved a version after ``previous`` (else the
        transaction fails with ``StaleOrder`` when it is written); only the shipments that
        changed are written."""
        row = _order_row(order, now)
        params = {f"v_{name}": row[name] for name in _ORDER_COLUMNS}
        params.update(oid=order.id, previous=previous.version)
        self._later(t.orders, _SAVE_ORDER, params)
        self._versions[order.id] = order.version
        before = dict(enumerate(previous.shipments))
        for position, shipment in enumerate(order.shipments):
            if before.get(position) != shipment:
                self.save_shipment(order.id, position, shipment)

    def save_shipments(self, order: Order) -> None:
        for position, shipment in enumerate(order.shipments):
            self.save_shipment(order.id, position, shipment)

    def save_shipment(self, order_id: str, position: int, shipment: Shipment) -> None:
        upsert = _upsert(t.shipments, self.is_sqlite)
        self._later(t.shipments, upsert, _shipment_row(order_id, position, shipment))

    def shipments(self, shipment_ids: Sequence[str]) -> list[Shipment]:
        """The shipments with these ids, in the order given (unknown ids are left out)."""
        found: dict[str, Shipment] = {}
        for start in range(0, len(shipment_ids), 500):
            chunk = list(shipment_ids[start : start + 500])
            query = sa.select(t.shipments.c.data).where(t.shipments.c.id.in_(chunk))
            for data in self._execute(query).scalars():
                shipment = Shipment.from_mapping(data)
                found[shipment.id] = shipment
        return [found[sid] for sid in shipment_ids if sid in found]

    def list_orders(
        self, payment: str | None = None, fulfilment: str | None = None, limit: int | None = None
    ) -> list[sa.Row[Any]]:
        query = sa.select(
            t.orders.c.id,
            t.orders.c.number,
            t.orders.c.payment_status,
            t.orders.c.fulfilment_status,
            t.orders.c.version,
            t.orders.c.created_at,
            t.orders.c.data,
        ).order_by(t.orders.c.number)
        if payment:
            query = query.where(t.orders.c.payment_status == payment)
        if fulfilment:
            query = query.where(t.orders.c.fulfilment_status == fulfilment)
        if limit:
            query = query.limit(limit)
        return list(self._execute(query))

    def count_by(self, column: str) -> dict[str, int]:
        col = t.orders.c[column]
        rows = self._execute(sa.select(col, sa.func.count()).group_by(col))
        return {str(value): int(count) for value, count in rows}

    # --- history and notes --------------------------------------------------------------

    def add_events(self, events: Iterable[Event]) -> None:
        for e in events:
            row = {
                "order_id": e.order_id,
                "version": e.version,
                "at": e.at.isoformat(),
                "kind": e.kind,
                "actor": e.actor,
                "data": dict(e.data),
            }
            self._later(t.events, _INSERT_EVENT, row)

    def events(self, order_id: str) -> list[Event]:
        rows = self._execute(
            sa.select(t.events).where(t.events.c.order_id == order_id).order_by(t.events.c.id)
        )
        return [Event.from_mapping(row._asdict()) for row in rows]

    def add_note(self, order_id: str, note: Note) -> None:
        self._execute(
            t.notes.insert().values(
                order_id=order_id, at=note.at.isoformat(), author=note.author, text=note.text
            )
        )

    # --- label saga ---------------------------------------------------------------------

    def add_label_intent(self, values: Mapping[str, Any]) -> None:
        """Add a label intent unless its key exists (a retried change adds it once)."""
        self._labels.pop(values["key"], None)
        self._later(t.labels, _insert_ignoring(t.labels, self.is_sqlite), dict(values))

    def label(self, key: str) -> sa.Row[Any] | None:
        if key not in self._labels:
            self._labels[key] = self._execute(_LABEL, {"key": key}).first()
        return self._labels[key]

    def labels(self, keys: Iterable[str]) -> dict[str, sa.Row[Any]]:
        """These label rows, read in one query; ``label`` then answers from them."""
        wanted = list(keys)
        for chunk in _chunks(k for k in wanted if k not in self._labels):
            found = {row.key: row for row in self._execute(_LABELS_IN, {"ids": chunk})}
            self._labels.update((key, found.get(key)) for key in chunk)
        return {key: row for key in wanted if (row := self._labels[key]) is not None}

    def update_label(self, key: str, **values: Any) -> None:
        self.update_labels([key], **values)

    def update_labels(self, keys: Sequence[str], **values: Any) -> None:
        """Set the same values on several labels."""
        stmt = _update(t.labels, _LABEL_WHERE, frozenset(values))
        params = {f"v_{name}": value for name, value in values.items()}
        for key in keys:
            self._labels.pop(key, None)  # read again, after this write, if asked
            self._later(t.labels, stmt, {**params, "k": key})

    def labels_for(self, order_id: str) -> list[sa.Row[Any]]:
        query = sa.select(t.labels).where(t.labels.c.order_id == order_id)
        return list(self._execute(query.order_by(t.labels.c.created_at, t.labels.c.key)))

    def count_labels(self, status: str) -> int:
        query = sa.select(sa.func.count()).where(t.labels.c.status == status)
        return int(self._execute(query.select_from(t.labels)).scalar() or 0)

    # --- pickups ------------------------------------------------------------------------

    def shipments_awaiting_pickup(self, carriers: Iterable[str]) -> list[sa.Row[Any]]:
        """Shipments with a bought label and no pickup yet, for carriers that do pickups."""
        query = (
            sa.select(t.shipments.c.id, t.shipments.c.order_id, t.shipments.c.carrier)
            .join(t.labels, t.labels.c.shipment_id == t.shipments.c.id)
            .where(
                t.labels.c.status == "bought",
                t.shipments.c.pickup_id.is_(None),
                t.shipments.c.carrier.in_(list(carriers)),
            )
            .order_by(t.shipments.c.order_id, t.shipments.c.position)
        )
        return list(self._execute(query))

    def add_pickup_intent(self, values: Mapping[str, Any]) -> bool:
        self._pickups.pop(values["id"], None)
        return self._insert_ignore(t.pickups, values) == 1

    def pickup(self, pickup_id: str) -> sa.Row[Any] | None:
        # Read once per transaction: every label settled in a batch asks for the same one.
        if pickup_id not in self._pickups:
            self._pickups[pickup_id] = self._execute(_PICKUP, {"pid": pickup_id}).first()
        return self._pickups[pickup_id]

    def claim_pickup(self, pickup_id: str, owner: str, now: float, lease_seconds: float) -> bool:
        """Lease the booking of a pickup not booked yet; False while another worker holds it."""
        self._pickups.pop(pickup_id, None)
        result = self._execute(
            t.pickups.update()
            .where(
                t.pickups.c.id == pickup_id,
                t.pickups.c.status != "booked",
                sa.or_(t.pickups.c.lease_until.is_(None), t.pickups.c.lease_until < now),
            )
            .values(lease_owner=owner, lease_until=now + lease_seconds)
        )
        return result.rowcount == 1

    def update_pickup(self, pickup_id: str, **values: Any) -> None:
        self._pickups.pop(pickup_id, None)
        self._execute(t.pickups.update().where(t.pickups.c.id == pickup_id).values(**values))

    def pickups(self) -> list[sa.Row[Any]]:
        return list(self._execute(sa.select(t.pickups).order_by(t.pickups.c.id)))

    # --- outbox -------------------------------------------------------------------------

    def enqueue(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Add outbox rows; a row whose dedupe key exists already is not added again."""
        insert = _insert_ignoring(t.outbox, self.is_sqlite)
        for row in rows:
            self._later(t.outbox, insert, dict(row))

    def claim(
        self, owner: str, now: float, lease_seconds: float, limit: int, kinds: Sequence[str]
    ) -> list[sa.Row[Any]]:
        """Lease up to ``limit`` due rows to ``owner``; expired leases are taken over."""
        due = (
            sa.select(t.outbox.c.id)
            .where(
                t.outbox.c.status == "pending",
                t.outbox.c.kind.in_(list(kinds)),
                t.outbox.c.available_at <= now,
                sa.or_(t.outbox.c.lease_until.is_(None), t.outbox.c.lease_until < now),
            )
            .order_by(t.outbox.c.available_at, t.outbox.c.id)
            .limit(limit)
        )
        if not self.is_sqlite:  # SQLite's BEGIN IMMEDIATE already serialises claimers
            due = due.with_for_update(skip_locked=True)
        ids = list(self._execute(due).scalars())
        if not ids:
            return []
        self._execute(
            t.outbox.update()
            .where(t.outbox.c.id.in_(ids))
            .values(lease_owner=owner, lease_until=now + lease_seconds)
        )
        query = sa.select(t.outbox).where(t.outbox.c.id.in_(ids)).order_by(t.outbox.c.id)
        return list(self._execute(query))

    def finish(self, row_id: int, owner: str, now_iso: str, **values: Any) -> bool:
        """Settle a leased row; False when the lease was lost to another worker."""
        values = {"lease_owner": None, "lease_until": None, "updated_at": now_iso, **values}
        stmt = _update(t.outbox, _FINISH_WHERE, frozenset(values))
        params = {f"v_{name}": value for name, value in values.items()}
        result = self._execute(stmt, {**params, "rid": row_id, "owner": owner})
        return result.rowcount == 1

    def finish_done(self, owner: str, now_iso: str, rows: Sequence[tuple[int, int]]) -> int:
        """Mark leased rows done, ``(row id, attempts)`` each; return how many still had
        their lease (the others were taken over by another worker)."""
        if not rows:
            return 0
        result = self._execute(
            _FINISH_DONE,
            [{"rid": rid, "owner": owner, "now": now_iso, "attempts": n} for rid, n in rows],
        )
        return int(result.rowcount)

    def outbox_rows(
        self,
        *,
        order_id: str | None = None,
        statuses: Sequence[str] | None = None,
        kind: str | None = None,
    ) -> list[sa.Row[Any]]:
        query = sa.select(t.outbox).order_by(t.outbox.c.id)
        if order_id:
            query = query.where(t.outbox.c.order_id == order_id)
        if statuses:
            query = query.where(t.outbox.c.status.in_(list(statuses)))
        if kind:
            query = query.where(t.outbox.c.kind == kind)
        return list(self._execute(query))

    def outbox_row(self, row_id: int) -> sa.Row[Any] | None:
        return self._execute(sa.select(t.outbox).where(t.outbox.c.id == row_id)).first()

    def reset_outbox_row(self, row_id: int, now: float, now_iso: str) -> bool:
        result = self._execute(
            t.outbox.update()
            .where(t.outbox.c.id == row_id, t.outbox.c.status == "dead")
            .values(status="pending", attempts=0, available_at=now, updated_at=now_iso)
        )
        return result.rowcount == 1

    def count_outbox(self) -> dict[tuple[str, str], int]:
        rows = self._execute(
            sa.select(t.outbox.c.kind, t.outbox.c.status, sa.func.count()).group_by(
                t.outbox.c.kind, t.outbox.c.status
            )
        )
        return {(kind, status): int(n) for kind, status, n in rows}

    def next_due(self) -> float | None:
        query = sa.select(sa.func.min(t.outbox.c.available_at)).where(
            t.outbox.c.status == "pending"
        )
        value = self._execute(query).scalar()
        return float(value) if value is not None else None
