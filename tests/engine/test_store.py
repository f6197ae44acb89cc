"""The store on a real SQLite file: migrations, WAL, the outbox lease, collected writes."""

from __future__ import annotations

import attrs
import pytest
import sqlalchemy as sa
from conftest import order_data
from fulfil.core.models import Order
from fulfil.core.store import migrations
from fulfil.core.store.db import Store
from fulfil.core.store.repo import StaleOrder


def test_opening_an_older_database_upgrades_it_and_keeps_its_rows(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        migrations.upgrade(conn, target=1)  # a database written by the first release
        conn.execute(
            sa.text(
                "INSERT INTO orders (id, number, payment_status, fulfilment_status, version,"
                " created_at, updated_at, data)"
                " VALUES ('o1', 1, 'PAID', 'PROCESSING', 3, 'x', 'x', '{}')"
            )
        )
        assert not sa.inspect(conn).has_table("notes")
    engine.dispose()

    store = Store.open(url)
    with store.engine.connect() as conn:
        assert migrations.current_version(conn) == migrations.LATEST
        assert sa.inspect(conn).has_table("notes")
        assert "purpose" in {c["name"] for c in sa.inspect(conn).get_columns("labels")}
        assert conn.execute(sa.text("SELECT version FROM orders WHERE id='o1'")).scalar() == 3
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    store.close()


def outbox_row(key: str) -> dict:
    return {
        "kind": "notification",
        "dedupe_key": key,
        "order_id": "o1",
        "payload": {},
        "status": "pending",
        "attempts": 0,
        "available_at": 0.0,
        "created_at": "x",
        "updated_at": "x",
    }


def test_a_lease_keeps_rows_from_others_until_it_expires(tmp_path):
    store = Store.open(f"sqlite:///{tmp_path / 's.db'}")
    with store.transaction() as tx:
        tx.enqueue([outbox_row("a"), outbox_row("b")])
        tx.enqueue([outbox_row("a")])  # same dedupe key: not queued twice
        assert [row.dedupe_key for row in tx.outbox_rows()] == ["a", "b"]
    with store.transaction() as tx:
        first = tx.claim("w1", now=100.0, lease_seconds=30, limit=10, kinds=["notification"])
    with store.transaction() as tx:
        assert tx.claim("w2", now=110.0, lease_seconds=30, limit=10, kinds=["notification"]) == []
        taken = tx.claim("w2", now=131.0, lease_seconds=30, limit=10, kinds=["notification"])
    assert [r.dedupe_key for r in first] == [r.dedupe_key for r in taken] == ["a", "b"]
    with store.transaction() as tx:  # the first worker's late answer no longer counts
        assert not tx.finish(first[0].id, "w1", "x", status="done")
        assert tx.finish(taken[0].id, "w2", "x", status="done")
    store.close()


def stored_orders(tmp_path, n: int) -> tuple[Store, list[Order]]:
    store = Store.open(f"sqlite:///{tmp_path / 's.db'}")
    orders = [Order.from_mapping(order_data(1001 + i)) for i in range(n)]
    with store.transaction() as tx:
        for order in orders:
            tx.insert_order(order, "now")
    return store, orders


def test_a_save_from_an_old_version_fails_its_whole_transaction(tmp_path):
    """Order saves are sent when the transaction ends; a stale one still undoes it all."""
    store, (order,) = stored_orders(tmp_path, 1)
    with store.transaction() as tx:  # another worker saved version 1 meanwhile
        tx.save_order(attrs.evolve(order, version=1), order, "now")
    with pytest.raises(StaleOrder), store.transaction() as tx:
        tx.enqueue([outbox_row("sent-with-the-stale-save")])
        tx.save_order(attrs.evolve(order, version=1, customer_comment="late"), order, "now")
    with store.transaction() as tx:
        kept = tx.load_order(order.id)
        assert tx.outbox_rows() == []
    assert kept is not None and kept.version == 1 and kept.customer_comment != "late"


def test_collected_writes_are_read_back_within_the_transaction(tmp_path):
    store, (order,) = stored_orders(tmp_path, 1)
    with store.transaction() as tx:
        tx.add_label_intent(
            {
                "key": "k",
                "order_id": order.id,
                "shipment_id": "s",
                "carrier": "sandbox",
                "status": "intent",
                "created_at": "now",
                "updated_at": "now",
            }
        )
        assert tx.label("k").status == "intent"
        tx.update_label("k", status="sending")
        assert tx.label("k").status == "sending"
        tx.save_order(attrs.evolve(order, version=1, customer_comment="edited"), order, "now")
        assert tx.order_version(order.id) == 1
        assert tx.load_order(order.id).customer_comment == "edited"


def test_saves_of_many_orders_are_one_statement(tmp_path):
    store, orders = stored_orders(tmp_path, 5)
    updates: list[str] = []

    def count(conn, cursor, statement, *_):
        if statement.startswith("UPDATE orders"):
            updates.append(statement)

    sa.event.listen(store.engine, "before_cursor_execute", count)
    with store.transaction() as tx:
        for order in orders:
            tx.save_order(attrs.evolve(order, version=1), order, "now")
    with store.transaction() as tx:
        assert {tx.order_version(o.id) for o in orders} == {1}
    assert len(updates) == 1


def test_a_pickup_booking_is_leased_to_one_worker_until_booked_or_expired(tmp_path):
    store = Store.open(f"sqlite:///{tmp_path / 's.db'}")
    with store.transaction() as tx:
        row = {"id": "p", "carrier": "c", "day": "d", "status": "intent", "data": {}}
        tx.add_pickup_intent({**row, "created_at": "now"})
        assert tx.claim_pickup("p", "w1", now=100.0, lease_seconds=60)
        assert not tx.claim_pickup("p", "w2", now=110.0, lease_seconds=60)
        assert tx.claim_pickup("p", "w2", now=161.0, lease_seconds=60)  # w1 died: taken over
        tx.update_pickup("p", status="booked", lease_owner=None, lease_until=None)
        assert not tx.claim_pickup("p", "w3", now=500.0, lease_seconds=60)  # nothing to book
