"""What happens by itself after a status move (DESIGN.md sections 3 and 5).

- PAID, every line digital or a gift card: the order is DELIVERED (the policy mails the
  links and codes on PAID).
- PAID with physical lines: the order moves to PROCESSING; shipping orders are split into
  shipments, routed, and get a label purchase intent each (the saga of ``saga.py`` buys
  them); local-delivery and in-store-pickup orders wait for staff.
- CANCELLED payment, or WILL_NOT_DELIVER: bought labels are voided through the outbox and
  pending purchases are dropped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs
from fulfil.core.models import FulfilmentType, Order, Parcel, Shipment, ShipmentItem
from fulfil.core.routing import Route, candidates_for
from fulfil.core.states import FulfilmentStatus as F
from fulfil.core.states import PaymentStatus as P
from fulfil.core.states import StatusChange, is_final

if TYPE_CHECKING:
    from fulfil.core.work import Work

MAX_SHIPMENT_WEIGHT_G = 20_000  # most carriers' parcel limit; heavier orders are split
UNWEIGHED_PARCEL_G = 100  # an order with no weights still ships as a small parcel


def after_move(work: Work, change: StatusChange) -> None:
    order = work.order
    if change.machine == "payment" and change.new == P.PAID:
        if order.fulfilment_status is F.AWAITING_PROCESSING:
            if order.is_digital_only:
                work.move("fulfilment", F.DELIVERED)
            else:
                start_fulfilment(work)
    elif change.machine == "payment" and change.new == P.CANCELLED:
        if not is_final(order.fulfilment_status):
            work.move("fulfilment", F.WILL_NOT_DELIVER)
    elif change.machine == "fulfilment" and change.new == F.WILL_NOT_DELIVER:
        void_labels(work)


def start_fulfilment(work: Work) -> None:
    """PROCESSING, then (shipping orders) shipments and their label purchase intents."""
    work.move("fulfilment", F.PROCESSING)
    order = work.order
    if order.shipping.type is not FulfilmentType.SHIPPING or order.external_fulfilment:
        return  # staff (or an external fulfiller) takes it from here
    if not order.shipments:
        work.update(attrs.evolve(order, shipments=plan_shipments(order)), "shipments_planned")
    for shipment in work.order.shipments:
        if not shipment.is_trackable:
            request_label(work, shipment)


def plan_shipments(order: Order) -> tuple[Shipment, ...]:
    """Pack physical units into shipments of at most MAX_SHIPMENT_WEIGHT_G each."""
    groups: list[dict[str, int]] = [{}]
    weights = [0]
    for item in order.physical_items:
        for _ in range(item.quantity):
            if weights[-1] and weights[-1] + item.weight_g > MAX_SHIPMENT_WEIGHT_G:
                groups.append({})
                weights.append(0)
            groups[-1][item.sku] = groups[-1].get(item.sku, 0) + 1
            weights[-1] += item.weight_g
    return tuple(
        Shipment(
            id=f"{order.id}-{n}",
            parcels=(Parcel(weight_g=weight or UNWEIGHED_PARCEL_G),),
            items=tuple(ShipmentItem(sku, qty) for sku, qty in group.items()),
        )
        for n, (group, weight) in enumerate(zip(groups, weights, strict=True), start=1)
    )


def routes_for(work: Work, shipment: Shipment) -> list[Route]:
    engine = work.engine
    order = work.order
    candidates = candidates_for(order, shipment, engine.config.routing)
    chosen = order.shipping.carrier
    if chosen and chosen in engine.config.carriers:  # the customer picked it at checkout
        candidates.insert(0, Route(chosen, order.shipping.service))
    first = engine.hooks.select_carrier(order, shipment, candidates)
    if first is None:
        return []
    return [first] + [r for r in candidates if r.carrier != first.carrier][:1]


def request_label(work: Work, shipment: Shipment, generation: int = 1) -> None:
    """Commit a purchase intent (and its outbox row) before any carrier is called."""
    routes = routes_for(work, shipment)
    if not routes:
        work.happen(
            "label_failed", reason="no routing rule matches this shipment", shipment=shipment.id
        )
        return
    route, fallback = routes[0], (routes[1] if len(routes) > 1 else None)
    add_label_intent(work, shipment, route, fallback, generation)


def add_label_intent(
    work: Work,
    shipment: Shipment,
    route: Route,
    fallback: Route | None,
    generation: int,
    *,
    purpose: str = "outbound",
) -> None:
    order = work.order
    if purpose == "outbound":
        shipments = tuple(
            attrs.evolve(s, carrier=route.carrier, service=route.service)
            if s.id == shipment.id
            else s
            for s in order.shipments
        )
        order = attrs.evolve(order, shipments=shipments)
    work.update(
        order,
        "label_requested",
        shipment=shipment.id,
        carrier=route.carrier,
        service=route.service,
        purpose=purpose,
    )
    key = f"{order.id}:{shipment.id}:{'r' if purpose == 'return' else ''}{generation}"
    now = work.engine.clock.now().isoformat()
    work.tx.add_label_intent(
        {
            "key": key,
            "order_id": order.id,
            "shipment_id": shipment.id,
            "carrier": route.carrier,
            "service": route.service,
            "fallback": attrs.asdict(fallback) if fallback else None,
            "purpose": purpose,
            "status": "intent",
            "created_at": now,
            "updated_at": now,
        }
    )
    work.enqueue("label", key, {"key": key})


def request_returns(work: Work, returns_carriers: set[str]) -> int:
    """A return label for every shipment whose carrier offers them; how many were asked."""
    asked = 0
    for shipment in work.order.shipments:
        if shipment.label is not None and shipment.carrier in returns_carriers:
            route = Route(shipment.carrier, shipment.service)
            add_label_intent(work, shipment, route, None, 1, purpose="return")
            asked += 1
    return asked


def void_labels(work: Work) -> None:
    """Drop purchases not yet made; void bought labels through the outbox."""
    labels = {s.id: s.label for s in work.order.shipments if s.label}
    for row in work.tx.labels_for(work.order.id):
        if row.purpose == "return":
            continue
        if row.status == "intent":  # not sent yet; "sending" ones are voided once bought
            work.tx.update_label(row.key, status="cancelled")
        elif row.status == "bought" and row.shipment_id in labels:
            label = labels[row.shipment_id]
            work.enqueue(
                "void", f"void:{row.key}", {"carrier": row.carrier, "label": label.to_mapping()}
            )


def ready_to_ship(order: Order, carriers_with_pickups: set[str]) -> bool:
    """Every shipment has its label, and its pickup when its carrier collects."""
    return bool(order.shipments) and all(
        s.is_trackable and (s.pickup_id is not None or s.carrier not in carriers_with_pickups)
        for s in order.shipments
    )


def maybe_ship(work: Work, **data: Any) -> None:
    order = work.order
    if (
        work.engine.config.store.auto_ship
        and order.fulfilment_status is F.PROCESSING
        and ready_to_ship(order, work.engine.carriers_with_pickups)
    ):
        work.move("fulfilment", F.SHIPPED, **data)
