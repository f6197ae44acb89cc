"""Several worker processes on one store (``fulfil run --processes``): nothing twice."""

from __future__ import annotations

import time

import pytest
from conftest import order_data, read_maildir
from fulfil.core.errors import WorkerFailed
from fulfil.core.models import Order
from fulfil.core.processes import _work, run_workers
from fulfil.core.states import FulfilmentStatus as F
from fulfil.core.worker import Worker
from fulfil.plugins.carriers.sandbox.ledger import Ledger


def paid_orders(engine, n: int) -> list[str]:
    orders = [Order.from_mapping(order_data(2000 + i, locale="en")) for i in range(n)]
    engine.place(orders)
    engine.record_payment([o.id for o in orders], "paid")
    return [o.id for o in orders]


def assert_done_once(engine, ids: list[str]) -> None:
    ledger = Ledger(engine.data_dir / "sandbox-ledger.sqlite")
    assert sorted(ledger.purchases_per_shipment().values()) == [1] * len(ids)
    assert len(ledger.pickups()) == 1
    assert {engine.get(i).fulfilment_status for i in ids} == {F.SHIPPED}
    mails = read_maildir(engine.data_dir / "mail")
    assert len({m["Message-ID"] for m in mails}) == len(mails) >= 2 * len(ids)
    with engine.store.transaction() as tx:
        assert {status for (_, status) in tx.count_outbox()} == {"done"}


def test_two_processes_do_everything_once(make_engine, monkeypatch):
    """The parent's worker joins only once the child has bought a label, so both take
    part whatever the machine's speed (the child is started fresh and is not patched)."""
    engine = make_engine()
    ids = paid_orders(engine, 60)
    started_late: list[int] = []

    def run_once_the_child_works(worker, **kwargs):
        deadline = time.monotonic() + 60
        while not (bought := labels_bought(engine)) and time.monotonic() < deadline:
            time.sleep(0.02)
        started_late.append(bought)
        return real_run(worker, **kwargs)

    real_run = Worker.run
    monkeypatch.setattr(Worker, "run", run_once_the_child_works)
    stats = run_workers(engine, processes=2)
    assert started_late[0] > 0  # the child had bought labels before the parent claimed any
    assert stats.counts["labels"] == len(ids)  # bought in either process, counted once
    assert_done_once(engine, ids)


def labels_bought(engine) -> int:
    with engine.store.transaction() as tx:
        return tx.count_labels("bought")


def test_a_child_process_builds_its_engine_from_the_parents_configuration(make_engine):
    engine = make_engine()
    ids = paid_orders(engine, 5)
    counts = _work(engine.config.source, str(engine.config.base_dir), None)
    assert counts["labels"] == len(ids) and counts["pickups"] == 1
    assert_done_once(engine, ids)


def test_a_failed_worker_process_is_reported_not_hidden(make_engine, write_config):
    engine = make_engine()
    ids = paid_orders(engine, 3)
    write_config(name="fulfil.toml").write_text("[store\n", encoding="utf-8")  # now unreadable
    with pytest.raises(WorkerFailed, match=r"1 of 2 worker processes failed \(ConfigError"):
        run_workers(engine, processes=2)
    assert {engine.get(i).fulfilment_status for i in ids} == {F.SHIPPED}  # this one worked
