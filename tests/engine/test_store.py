"""The store on a real SQLite file: migrations, WAL, and the outbox lease."""

from __future__ import annotations

import sqlalchemy as sa
from fulfil.core.store import migrations
from fulfil.core.store.db import Store


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
