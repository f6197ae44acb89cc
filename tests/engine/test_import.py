"""Importing in chunks: global paths, duplicates across chunks, nothing written on bad JSON."""

from __future__ import annotations

import json

import pytest
from conftest import order_data
from fulfil.core.errors import ValidationFailed
from fulfil.core.importer import import_file


def test_chunked_import_reports_global_paths_and_cross_chunk_duplicates(make_engine, tmp_path):
    engine = make_engine()
    orders = [order_data(100 + n) for n in range(7)]
    orders[5]["items"][0]["quantity"] = 0
    orders.append(order_data(101))  # the same id as the second order, in a later chunk
    path = tmp_path / "orders.json"
    path.write_text(json.dumps(orders))
    report = import_file(engine, path, chunk_size=3)
    assert report.read == 8 and report.imported == 6
    assert [str(p) for p in report.problems] == [
        "orders.json: [5].items[0].quantity: 0 is less than the minimum of 1",
        "orders.json: [7].id: duplicate order id 'ord_101' (first at [1])",
    ]
    with engine.store.transaction() as tx:
        assert len(tx.list_orders()) == 6


def test_a_file_that_is_not_json_writes_nothing(make_engine, tmp_path):
    engine = make_engine()
    path = tmp_path / "orders.json"
    path.write_text(json.dumps([order_data(1), order_data(2)])[:-5])  # truncated
    with pytest.raises(ValidationFailed) as caught:
        import_file(engine, path, chunk_size=1)
    assert "line 1" in str(caught.value)
    with engine.store.transaction() as tx:
        assert tx.list_orders() == []
