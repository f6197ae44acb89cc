"""The main job end to end on the embedded default: real SQLite, real sandbox, real Maildir."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import order_data, read_maildir
from fulfil.core.errors import ConfigError, InvalidTransition, OrderNotFound
from fulfil.core.hookspecs import hookimpl
from fulfil.core.models import Order
from fulfil.core.notifiers import NotifierPlugin
from fulfil.core.states import FulfilmentStatus as F
from fulfil.core.states import PaymentStatus as P
from fulfil.core.worker import Worker
from fulfil.plugins.carriers.sandbox.ledger import Ledger


def no_wait(attempt: int, retry_after: float | None = None) -> float:
    return 0.0


def place(engine, *orders: dict) -> list[str]:
    result = engine.place([Order.from_mapping(o) for o in orders])
    return result.imported


def drain(engine) -> dict:
    with Worker(engine, backoff=no_wait) as worker:
        return dict(worker.run(until_idle=True).counts)


def subjects(engine) -> list[tuple[str, str]]:
    return [(m["To"], m["Subject"]) for m in read_maildir(engine.data_dir / "mail")]


def test_paid_order_gets_one_label_a_pickup_is_shipped_and_told(make_engine):
    engine = make_engine()
    place(engine, order_data(1001, locale="fr"))
    engine.record_payment(["ord_1001"], "paid")
    drain(engine)

    order = engine.get("ord_1001")
    assert order.payment_status is P.PAID
    assert order.fulfilment_status is F.SHIPPED
    (shipment,) = order.shipments
    assert shipment.label is not None and shipment.pickup_id is not None
    assert Path(shipment.label.document_path).read_bytes().startswith(b"%PDF")
    ledger = Ledger(engine.data_dir / "sandbox-ledger.sqlite")
    assert ledger.purchases_per_shipment() == {shipment.id: 1}
    assert len(ledger.pickups()) == 1

    mails = subjects(engine)
    merchant = [s for to, s in mails if to != "c1001@example.com"]
    customer = [s for to, s in mails if to == "c1001@example.com"]
    assert merchant == ["[Demo Store], new order #1001"]  # the store's locale is en
    assert len(customer) == 2  # confirmation and shipped, in French
    assert all("commande" in s.lower() for s in customer), customer
    shipped = [
        m
        for m in read_maildir(engine.data_dir / "mail")
        if shipment.tracking_number in m.get_body(("plain",)).get_content()
    ]
    assert len(shipped) == 1


def test_digital_order_is_delivered_on_payment_and_its_link_mailed(make_engine):
    engine = make_engine()
    place(engine, order_data(1002, kind="digital", locale="en"))
    engine.record_payment(["ord_1002"], "paid")
    assert engine.get("ord_1002").fulfilment_status is F.DELIVERED
    drain(engine)
    bodies = [
        m.get_body(("plain",)).get_content()
        for m in read_maildir(engine.data_dir / "mail")
        if m["To"] == "c1002@example.com"
    ]
    assert any("https://downloads.example.com/guide.pdf" in b for b in bodies)
    assert not Ledger(engine.data_dir / "sandbox-ledger.sqlite").purchases()


def test_gift_card_code_is_mailed(make_engine):
    engine = make_engine()
    place(engine, order_data(1003, kind="gift_card", locale="en"))
    engine.record_payment(["ord_1003"], "paid")
    drain(engine)
    assert engine.get("ord_1003").fulfilment_status is F.DELIVERED
    bodies = [m.get_body(("plain",)).get_content() for m in read_maildir(engine.data_dir / "mail")]
    assert any("GIFT-1234-ABCD" in b for b in bodies)


@pytest.mark.parametrize(
    ("fulfilment", "next_status"),
    [("local_delivery", F.OUT_FOR_DELIVERY), ("pickup", F.READY_FOR_PICKUP)],
)
def test_local_delivery_and_store_pickup_wait_for_staff(make_engine, fulfilment, next_status):
    engine = make_engine()
    place(engine, order_data(1004, fulfilment=fulfilment, locale="en", phone="+33612345678"))
    engine.record_payment(["ord_1004"], "paid")
    drain(engine)
    assert engine.get("ord_1004").fulfilment_status is F.PROCESSING
    assert not Ledger(engine.data_dir / "sandbox-ledger.sqlite").purchases()
    engine.mark(["ord_1004"], next_status)
    engine.mark(["ord_1004"], F.DELIVERED)
    drain(engine)
    sms = (engine.data_dir / "sms.jsonl").read_text().splitlines()
    assert len(sms) == 1  # the ready/out-for-delivery text; delivered goes by email


def test_illegal_change_raises_and_writes_nothing(make_engine):
    engine = make_engine()
    place(engine, order_data(1005))
    engine.record_payment(["ord_1005"], "paid")
    before = engine.get("ord_1005")
    with engine.store.transaction() as tx:
        history = len(tx.events("ord_1005"))
    with pytest.raises(InvalidTransition) as caught:
        engine.mark(["ord_1005"], F.RETURNED)
    assert "PROCESSING" in str(caught.value) and "RETURNED" in str(caught.value)
    assert engine.get("ord_1005") == before
    with engine.store.transaction() as tx:
        assert len(tx.events("ord_1005")) == history


def test_bulk_change_is_all_or_nothing(make_engine):
    engine = make_engine()
    place(engine, order_data(1006, kind="digital"), order_data(1007))
    engine.record_payment(["ord_1006"], "paid")
    with pytest.raises(InvalidTransition):
        engine.record_payment(["ord_1007", "ord_1006"], "paid")  # 1006 is paid already
    assert engine.get("ord_1007").payment_status is P.INCOMPLETE


def test_unknown_order_id(make_engine):
    engine = make_engine()
    with pytest.raises(OrderNotFound):
        engine.record_payment(["nope"], "paid")


def test_change_based_on_an_older_version_is_ignored(make_engine):
    engine = make_engine()
    place(engine, order_data(1008))
    engine.record_payment(["ord_1008"], "offline")
    stale = 0  # the caller saw the order before the offline payment was recorded
    assert engine.record_payment(["ord_1008"], "declined", expected_version=stale) == []
    assert engine.get("ord_1008").payment_status is P.AWAITING_PAYMENT


def test_shipping_by_hand_with_tracking_sends_one_message(make_engine):
    engine = make_engine({"store": {"auto_ship": False}})
    place(engine, order_data(1009, locale="en"))
    engine.record_payment(["ord_1009"], "paid")
    drain(engine)
    assert engine.get("ord_1009").fulfilment_status is F.PROCESSING
    before = len(subjects(engine))
    engine.ship(["ord_1009"])
    drain(engine)
    assert len(subjects(engine)) == before + 1
    assert engine.get("ord_1009").fulfilment_status is F.SHIPPED


def test_partial_then_full_refund(make_engine):
    engine = make_engine()
    place(engine, order_data(1010, kind="digital", quantity=2))
    engine.record_payment(["ord_1010"], "paid")
    from decimal import Decimal

    assert engine.refund("ord_1010", Decimal("15")).payment_status is P.PARTIALLY_REFUNDED
    assert engine.refund("ord_1010").payment_status is P.REFUNDED


def test_cancelling_after_the_label_voids_it(make_engine):
    engine = make_engine({"store": {"auto_ship": False}})
    place(engine, order_data(1011))
    engine.record_payment(["ord_1011"], "paid")
    drain(engine)
    engine.cancel(["ord_1011"])
    counts = drain(engine)
    assert counts.get("labels_voided") == 1
    (purchase,) = Ledger(engine.data_dir / "sandbox-ledger.sqlite").purchases()
    assert purchase["voided"]


def test_heavy_order_is_split_into_shipments_each_with_one_label(make_engine):
    engine = make_engine()
    place(engine, order_data(1012, quantity=5, weight_g=9000))
    engine.record_payment(["ord_1012"], "paid")
    drain(engine)
    order = engine.get("ord_1012")
    assert len(order.shipments) == 3
    assert all(s.label for s in order.shipments)
    per_shipment = Ledger(engine.data_dir / "sandbox-ledger.sqlite").purchases_per_shipment()
    assert per_shipment == {s.id: 1 for s in order.shipments}
    assert order.fulfilment_status is F.SHIPPED


def test_edit_before_fulfilment_is_recorded_and_refused_after(make_engine):
    engine = make_engine()
    place(engine, order_data(1013))
    order = engine.get("ord_1013")
    moved = order.shipping_address.__class__(
        **{**order.shipping_address.to_mapping(), "line1": "1 quai Branly"}
    )
    edited = engine.edit("ord_1013", shipping_address=moved)
    assert edited.shipping_address.line1 == "1 quai Branly"
    with engine.store.transaction() as tx:
        (edit,) = [e for e in tx.events("ord_1013") if e.kind == "edit"]
    assert edit.data["changes"]["shipping_address"]["before"]["line1"] == "12 rue de Rivoli"
    engine.record_payment(["ord_1013"], "paid")
    from fulfil.core.errors import InputError

    with pytest.raises(InputError, match="cannot be edited"):
        engine.edit("ord_1013", shipping_address=order.shipping_address)


class BrokenEmail:
    """A notifier whose settings are refused only when it is built (at send time)."""

    @hookimpl
    def fulfil_register_notifiers(self, register):
        def refuse(settings, context):
            raise ConfigError("notifiers.broken_email.settings.host: unreachable by design")

        register(NotifierPlugin(name="broken_email", channel="email", factory=refuse))


def test_a_notifier_that_cannot_be_built_dead_letters_its_rows_not_the_worker(make_engine):
    engine = make_engine(
        {"notifiers": {"maildir": {"enabled": False}, "broken_email": {}}},
        plugins=(BrokenEmail(),),
    )
    place(engine, order_data(1014, kind="digital"))
    engine.record_payment(["ord_1014"], "paid")
    with Worker(engine, backoff=no_wait, max_attempts=2) as worker:
        worker.run(until_idle=True)
    with engine.store.transaction() as tx:
        dead = tx.outbox_rows(statuses=["dead"], kind="notification")
    assert dead and all("unreachable by design" in row.last_error for row in dead)


def test_a_returned_order_can_get_a_return_label_through_the_saga(make_engine):
    engine = make_engine()
    place(engine, order_data(1015))
    engine.record_payment(["ord_1015"], "paid")
    drain(engine)
    outbound = engine.get("ord_1015").shipments[0].label
    engine.mark(["ord_1015"], F.RETURNED, return_labels=True)
    drain(engine)
    order = engine.get("ord_1015")
    assert order.fulfilment_status is F.RETURNED
    assert order.shipments[0].label == outbound  # the outbound label is kept
    with engine.store.transaction() as tx:
        labels = {row.purpose: row for row in tx.labels_for("ord_1015")}
        events = [e.kind for e in tx.events("ord_1015")]
    assert labels["return"].status == "bought" and labels["return"].document_path
    assert "return_label" in events
    ledger = Ledger(engine.data_dir / "sandbox-ledger.sqlite")
    assert sorted(bool(p["is_return"]) for p in ledger.purchases()) == [False, True]


def test_a_merchant_who_drops_parcels_off_ships_without_a_pickup(make_engine):
    engine = make_engine({"carriers": {"sandbox": {"pickups": False}}})
    place(engine, order_data(1016))
    engine.record_payment(["ord_1016"], "paid")
    drain(engine)
    order = engine.get("ord_1016")
    assert order.fulfilment_status is F.SHIPPED and order.shipments[0].pickup_id is None
    assert Ledger(engine.data_dir / "sandbox-ledger.sqlite").pickups() == []


def test_two_workers_book_the_days_pickup_once(make_engine, monkeypatch):
    """Worker processes share one database: while one books the day's pickup, another
    must not book it too (EasyPost would sell two), and joins it once it is booked."""
    from fulfil.core import pickups

    first, second = make_engine(), make_engine()  # one database, one sandbox ledger
    place(first, order_data(1017), order_data(1018))
    first.record_payment(["ord_1017", "ord_1018"], "paid")
    with monkeypatch.context() as patch:  # labels only, no pickup pass yet
        patch.setattr(pickups, "book_due", lambda *args, **kwargs: [])
        drain(first)

    meanwhile: list[list] = []

    def racing(carrier, call):  # the second worker's pass, while the first calls the carrier
        meanwhile.append(pickups.book_due(second, owner="second"))
        return call()

    booked = pickups.book_due(first, racing, owner="first")
    assert meanwhile == [[]] and len(booked) == 1
    assert len(Ledger(first.data_dir / "sandbox-ledger.sqlite").pickups()) == 1
    assert pickups.book_due(second, owner="second") == []  # booked: nothing left to do
    for number in (1017, 1018):
        order = second.get(f"ord_{number}")
        assert order.shipments[0].pickup_id == booked[0].id
        assert order.fulfilment_status is F.SHIPPED
