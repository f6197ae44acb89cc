"""The label purchase saga under carrier faults: nothing lost, nothing bought twice.

Proved from the sandbox carrier's own ledger (what the "carrier" sold), not from the
framework's bookkeeping.
"""

from __future__ import annotations

from conftest import order_data, read_maildir
from fulfil.core.carriers import CarrierPlugin
from fulfil.core.errors import CarrierError
from fulfil.core.hookspecs import hookimpl
from fulfil.core.models import Order
from fulfil.core.resilience import CircuitBreaker
from fulfil.core.states import FulfilmentStatus as F
from fulfil.core.worker import Worker
from fulfil.plugins.carriers.sandbox.ledger import Ledger


def no_wait(attempt: int, retry_after: float | None = None) -> float:
    return 0.0


def sandbox(**settings) -> dict:
    return {"carriers": {"sandbox": {"settings": settings}}}


def quick_breaker() -> CircuitBreaker:
    return CircuitBreaker(threshold=2, cooldown=0.05)  # an outage's trial comes at once


def run_orders(engine, count: int, **kwargs) -> list[Order]:
    orders = [Order.from_mapping(order_data(2000 + n, **kwargs)) for n in range(count)]
    engine.place(orders)
    engine.record_payment([o.id for o in orders], "paid")
    with Worker(engine, backoff=no_wait, max_attempts=30, circuit_breaker=quick_breaker) as w:
        w.run(until_idle=True)
    return [engine.get(o.id) for o in orders]


def test_faults_never_lose_or_duplicate_a_label(make_engine):
    engine = make_engine(
        sandbox(fail_5xx=0.25, fail_timeout=0.25, fail_429=0.2, retry_after_s=0, seed=3)
    )
    orders = run_orders(engine, 40)
    assert {o.fulfilment_status for o in orders} == {F.SHIPPED}
    ledger = Ledger(engine.data_dir / "sandbox-ledger.sqlite")
    shipments = {s.id for o in orders for s in o.shipments}
    assert ledger.purchases_per_shipment() == dict.fromkeys(shipments, 1)
    attempts = sum(ledger.attempts(f"{o.id}:{s.id}:1") for o in orders for s in o.shipments)
    assert attempts > len(shipments)  # the faults really happened


def test_unknown_outcome_is_reconciled_under_the_same_key(make_engine):
    engine = make_engine(sandbox(fail_timeout=1.0))  # every call "times out" after it was made
    (order,) = run_orders(engine, 1)
    assert order.shipments[0].label is not None  # found by its key, not bought again
    ledger = Ledger(engine.data_dir / "sandbox-ledger.sqlite")
    assert [p["idempotency_key"] for p in ledger.purchases()] == [f"{order.id}:{order.id}-1:1"]


def test_permanent_failure_alerts_the_merchant_with_the_carriers_reason(make_engine):
    engine = make_engine()
    (order,) = run_orders(engine, 1, postal_code="00000", locale="en")
    assert order.fulfilment_status is F.PROCESSING
    with engine.store.transaction() as tx:
        (label,) = tx.labels_for(order.id)
        dead = tx.outbox_rows(statuses=["dead"])
    assert label.status == "failed" and "postal_code" in label.error
    assert [r.kind for r in dead] == ["label"]
    alerts = [
        m for m in read_maildir(engine.data_dir / "mail") if m["X-Fulfil-Event"] == "label_failed"
    ]
    assert len(alerts) == 1 and alerts[0]["To"] == engine.config.store.email
    assert "postal_code" in alerts[0].get_body(("plain",)).get_content()
    assert not Ledger(engine.data_dir / "sandbox-ledger.sqlite").purchases()


class Recorder:
    def __init__(self) -> None:
        self.seen: list[str] = []

    @hookimpl
    def fulfil_status_changed(self, change) -> None:
        self.seen.append(change.new)


class Broken:
    @hookimpl
    def fulfil_status_changed(self, change) -> None:
        raise RuntimeError("listener bug")


def test_a_failing_listener_stops_neither_the_others_nor_the_change(make_engine):
    engine = make_engine()
    recorder = Recorder()
    engine.pm.register(Broken())
    engine.pm.register(recorder)
    engine.place([Order.from_mapping(order_data(3001, kind="digital"))])
    engine.record_payment(["ord_3001"], "paid")
    assert recorder.seen == ["PAID", "DELIVERED"]
    assert engine.get("ord_3001").fulfilment_status is F.DELIVERED
    with engine.store.transaction() as tx:
        failures = [e for e in tx.events("ord_3001") if e.kind == "listener_failed"]
    assert len(failures) == 2 and "listener bug" in failures[0].data["error"]


class Refusing:
    """A carrier that refuses every label (permanent) or is down (transient)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.calls = 0

    def buy_label(self, request):
        self.calls += 1
        raise CarrierError("picky", self.kind, "we do not ship there", code="E1")

    def find_label(self, key):
        return None

    @hookimpl
    def fulfil_register_carriers(self, register):
        register(
            CarrierPlugin(
                name="picky",
                factory=lambda settings, context: self,
                capabilities={"labels"},
                countries={"*"},
            )
        )


def fallback_config() -> dict:
    return {
        "carriers": {"picky": {}},
        "routing": [
            {
                "country": "*",
                "carrier": "picky",
                "fallback": {"carrier": "sandbox", "service": "standard"},
            }
        ],
    }


def test_permanent_refusal_falls_back_to_the_next_carrier(make_engine):
    picky = Refusing("validation")
    engine = make_engine(fallback_config(), plugins=(picky,))
    (order,) = run_orders(engine, 1)
    assert picky.calls == 1
    assert order.shipments[0].label.carrier == "sandbox"
    assert order.fulfilment_status is F.SHIPPED
    with engine.store.transaction() as tx:
        statuses = {row.carrier: row.status for row in tx.labels_for(order.id)}
    assert statuses == {"picky": "superseded", "sandbox": "bought"}


def test_an_open_circuit_sends_labels_to_the_fallback(make_engine):
    picky = Refusing("unavailable")
    engine = make_engine(fallback_config(), plugins=(picky,))
    orders = run_orders(engine, 12)
    assert all(o.shipments[0].label.carrier == "sandbox" for o in orders)
    assert picky.calls < 12 * 3  # the breaker stopped the calls, not max_attempts


def test_a_failure_while_storing_a_label_retries_without_buying_again(make_engine, monkeypatch):
    from fulfil.core import saga

    real, calls = saga.settle_bought, []

    def disk_full_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise OSError("No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(saga, "settle_bought", disk_full_once)
    engine = make_engine()
    (order,) = run_orders(engine, 1)
    assert order.shipments[0].label is not None and len(calls) == 2
    ledger = Ledger(engine.data_dir / "sandbox-ledger.sqlite")
    assert ledger.purchases_per_shipment() == {order.shipments[0].id: 1}


class Outage:
    """The sandbox behind an outage: its first ``down_for`` purchases fail as 503s."""

    def __init__(self, down_for: int) -> None:
        self.down_for = down_for
        self.calls = 0

    def wrap(self, settings, context):
        from fulfil.plugins.carriers.sandbox import make_carrier

        carrier = make_carrier(settings, context)
        real_buy = carrier.buy_label

        def buy_label(request):
            self.calls += 1
            if self.calls <= self.down_for:
                raise CarrierError("patchy", "unavailable", "503 Service Unavailable")
            return real_buy(request)

        carrier.buy_label = buy_label
        return carrier

    @hookimpl
    def fulfil_register_carriers(self, register):
        register(
            CarrierPlugin(
                name="patchy",
                factory=self.wrap,
                capabilities={"labels", "pickups"},
                countries={"*"},
            )
        )


def test_an_open_circuit_spends_no_attempts_and_waits_for_its_trial(make_engine):
    """A carrier outage opens the breaker; the labels refused by the open breaker were never
    sent, so they wait for its trial call instead of being dead-lettered."""
    outage = Outage(down_for=2)
    config = {"carriers": {"patchy": {}}, "routing": [{"country": "*", "carrier": "patchy"}]}
    engine = make_engine(config, plugins=(outage,))
    orders = [Order.from_mapping(order_data(4000 + n)) for n in range(6)]
    engine.place(orders)
    engine.record_payment([o.id for o in orders], "paid")
    breaker = lambda: CircuitBreaker(threshold=2, cooldown=0.2)  # noqa: E731
    with Worker(
        engine, backoff=no_wait, max_attempts=2, concurrency=1, circuit_breaker=breaker
    ) as worker:
        counts = worker.run(until_idle=True).counts
    assert counts["postponed"] > 0 and counts["labels"] == 6 and not counts["labels_failed"]
    assert {engine.get(o.id).fulfilment_status for o in orders} == {F.SHIPPED}
    assert outage.calls == 2 + 6  # two failures, then each label bought once
