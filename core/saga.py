"""The label purchase saga (DESIGN.md section 5), one intent at a time.

1. ``automation.add_label_intent`` committed the intent, keyed ``order:shipment:n``,
   before any carrier call.
2. ``prepare`` (main thread) reads the intent and builds the ``LabelRequest``.
3. ``call`` (a worker thread) asks the carrier: ``find_label`` first when an earlier
   outcome was unknown, else ``buy_label`` with the same key as idempotency key.
4. ``settle`` (main thread) writes the outcome: bought -> label stored and the order
   advanced; unknown -> reconcile later under the same key, never buy under a new one;
   transient -> retried with backoff; permanent -> the fallback route gets a new intent if
   nothing can have been bought, else the label fails and the merchant is alerted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import attrs
from fulfil.core import automation, pickups
from fulfil.core.carriers import CustomsItem, LabelRequest, PurchasedLabel
from fulfil.core.errors import CarrierError
from fulfil.core.models import Label, Order, Shipment
from fulfil.core.routing import Route
from fulfil.core.states import FulfilmentStatus
from fulfil.core.store.repo import Tx
from fulfil.core.work import Work

if TYPE_CHECKING:
    from fulfil.core.engine import Engine

# The EU customs union (plus Monaco): parcels between these need no customs declaration.
CUSTOMS_UNION = frozenset(
    [
        "AT",
        "BE",
        "BG",
        "HR",
        "CY",
        "CZ",
        "DK",
        "EE",
        "FI",
        "FR",
        "DE",
        "GR",
        "HU",
        "IE",
        "IT",
        "LV",
        "LT",
        "LU",
        "MT",
        "NL",
        "PL",
        "PT",
        "RO",
        "SK",
        "SI",
        "ES",
        "SE",
        "MC",
    ]
)

DOCUMENT_SUFFIX = {"PDF": "pdf", "ZPL": "zpl", "PNG": "png"}
# Intent statuses that still need a carrier call; "unknown" once means never fall back.
PENDING = ("intent", "sending", "unknown")


@attrs.frozen
class Job:
    key: str
    carrier: str
    request: LabelRequest
    reconcile: bool  # an earlier outcome was unknown: look it up before buying
    order: Order  # as read when the job was prepared; settling reuses it if still current


def needs_customs(origin: str, destination: str) -> bool:
    return origin != destination and not (origin in CUSTOMS_UNION and destination in CUSTOMS_UNION)


def label_request(
    engine: Engine, order: Order, shipment: Shipment, key: str, service: str | None
) -> LabelRequest:
    origin = engine.config.store.origin
    if origin is None or order.shipping_address is None:
        raise CarrierError(
            shipment.carrier or "?",
            "validation",
            "a sender (store.origin) and a recipient address are required",
            field="store.origin" if origin is None else "shipping_address",
        )
    customs: tuple[CustomsItem, ...] = ()
    if needs_customs(origin.country, order.shipping_address.country):
        by_sku = {item.sku: item for item in order.items}
        customs = tuple(
            CustomsItem(
                description=by_sku[line.sku].name,
                quantity=line.quantity,
                value=by_sku[line.sku].unit_price * line.quantity,
                weight_g=by_sku[line.sku].weight_g * line.quantity,
                origin_country=origin.country,
                sku=line.sku,
            )
            for line in shipment.items
        )
    return LabelRequest(
        idempotency_key=key,
        order_id=order.id,
        order_number=order.number,
        shipment_id=shipment.id,
        sender=origin,
        recipient=order.shipping_address,
        parcels=shipment.parcels,
        service=service,
        customs=customs,
        recipient_email=order.customer.email,
    )


def prepare(engine: Engine, tx: Tx, keys: Sequence[str]) -> dict[str, Job]:
    """The jobs for these intents; an intent with nothing left to do has none.

    An intent is marked ``sending`` before its call leaves: if this worker dies during the
    call, whoever takes the row over knows a label may exist and looks it up first. The
    intents and their orders are read in a few queries for the whole batch.
    """
    intents = [i for i in tx.labels(keys).values() if i.status in PENDING]
    first = [i.key for i in intents if i.status == "intent"]
    tx.update_labels(first, status="sending", updated_at=engine.clock.now().isoformat())
    orders = tx.load_orders(i.order_id for i in intents)
    jobs = {}
    for intent in intents:
        order = orders[intent.order_id]  # an intent is only written with its order
        shipment = next(s for s in order.shipments if s.id == intent.shipment_id)
        tried_before = intent.status != "intent"
        request = attrs.evolve(
            label_request(engine, order, shipment, intent.key, intent.service),
            maybe_sent=tried_before,
            is_return=intent.purpose == "return",
        )
        jobs[intent.key] = Job(intent.key, intent.carrier, request, tried_before, order)
    return jobs


def read_ahead(tx: Tx, keys: Sequence[str]) -> None:
    """Read the intents of a batch of outcomes and their orders' versions in two queries,
    before settling them one by one (the transaction then answers from what it read)."""
    intents = tx.labels(keys)
    tx.order_versions(intent.order_id for intent in intents.values())


def call(carrier: Any, job: Job) -> PurchasedLabel:
    """Runs in a worker thread: only the carrier's HTTP, no database."""
    if job.reconcile:
        found: PurchasedLabel | None = carrier.find_label(job.key)
        if found is not None:
            return found
    label: PurchasedLabel = carrier.buy_label(job.request)
    return label


def save_document(engine: Engine, key: str, label: PurchasedLabel) -> str | None:
    if label.document is None:
        return None
    engine.labels_dir.mkdir(parents=True, exist_ok=True)
    suffix = DOCUMENT_SUFFIX.get(label.format.upper(), "bin")
    path = engine.labels_dir / f"{key.replace(':', '_')}.{suffix}"
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(label.document)
    tmp.replace(path)  # a crash leaves the old file or the new one, never half of one
    return str(path)


def settle_bought(
    engine: Engine,
    tx: Tx,
    key: str,
    bought: PurchasedLabel,
    path: str | None,
    known: Order | None = None,
) -> Work | None:
    """Store the label and advance the order; returns the work done (None if already).

    ``known``: the order as the job read it; used when nobody changed it since (checked by
    its version), which saves reading it again.
    """
    intent = tx.label(key)
    if intent is None or intent.status == "bought":
        return None
    order = known
    if order is None or tx.order_version(intent.order_id) != order.version:
        order = tx.load_order(intent.order_id)
    assert order is not None
    now = engine.clock.now().isoformat()
    tx.update_label(
        key,
        status="bought",
        tracking_number=bought.tracking_number,
        document_path=path,
        error=None,
        updated_at=now,
    )
    label = Label(
        carrier=intent.carrier,
        service=bought.service,
        tracking_number=bought.tracking_number,
        format=bought.format,
        cost=bought.cost,
        carrier_reference=bought.carrier_reference,
        url=bought.url,
        document_path=path,
        tracking_url=bought.tracking_url,
    )
    work = Work(engine, tx, order, f"plugin:{intent.carrier}")
    if intent.purpose == "return":  # the outbound label stays; the return one is recorded
        work.event(
            "return_label",
            key=key,
            carrier=intent.carrier,
            tracking_number=label.tracking_number,
            document_path=path,
        )
        work.commit()
        return work
    # Join today's pickup at once when it is booked already: no second pass over the order.
    joined = pickups.booked_pickup(engine, tx, intent.carrier)
    shipments = tuple(
        attrs.evolve(
            s,
            label=label,
            tracking_number=label.tracking_number,
            tracking_url=label.tracking_url,
            pickup_id=joined,
        )
        if s.id == intent.shipment_id
        else s
        for s in order.shipments
    )
    work.update(
        attrs.evolve(order, shipments=shipments),
        "label",
        key=key,
        carrier=intent.carrier,
        tracking_number=label.tracking_number,
        cost=label.cost.to_mapping(),
        pickup=joined,
    )
    if order.fulfilment_status is FulfilmentStatus.WILL_NOT_DELIVER:
        # Cancelled while the purchase was in flight: give the label back.
        work.enqueue(
            "void", f"void:{key}", {"carrier": intent.carrier, "label": label.to_mapping()}
        )
    automation.maybe_ship(work)
    work.commit()
    shipment = next(s for s in work.order.shipments if s.id == intent.shipment_id)
    work.after_commit.append(lambda: engine.hooks.label_purchased(work.order, shipment, label))
    return work


def mark_unknown(engine: Engine, tx: Tx, key: str, error: CarrierError) -> None:
    tx.update_label(
        key, status="unknown", error=str(error), updated_at=engine.clock.now().isoformat()
    )


def can_fall_back(tx: Tx, key: str) -> bool:
    """A fallback route exists and no answer so far left a purchase in doubt."""
    intent = tx.label(key)
    return intent is not None and bool(intent.fallback) and intent.status in ("intent", "sending")


def settle_failed(
    engine: Engine, tx: Tx, key: str, error: CarrierError
) -> tuple[Work | None, bool]:
    """A permanent failure: try the fallback route if it is safe, else alert the merchant.

    Returns the work done and whether a fallback intent took over."""
    intent = tx.label(key)
    if intent is None or intent.status not in PENDING:
        return None, False
    order = tx.load_order(intent.order_id)
    assert order is not None
    now = engine.clock.now().isoformat()
    work = Work(engine, tx, order, f"plugin:{intent.carrier}")
    shipment = next(s for s in order.shipments if s.id == intent.shipment_id)
    # After an unknown outcome the first carrier may have bought: never buy elsewhere.
    fall_back = can_fall_back(tx, key)
    if fall_back:
        tx.update_label(key, status="superseded", error=str(error), updated_at=now)
        generation = int(key.rsplit(":", 1)[1]) + 1
        automation.add_label_intent(work, shipment, Route(**intent.fallback), None, generation)
        work.event("label_fallback", key=key, reason=str(error))
    else:
        tx.update_label(key, status="failed", error=str(error), updated_at=now)
        work.happen(
            "label_failed",
            reason=error.message,
            carrier=error.carrier,
            code=error.code,
            field=error.field,
            shipment=shipment.id,
        )
    work.commit()
    return work, fall_back
