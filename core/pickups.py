"""Pickups, booked per carrier, day and location for every label that is ready.

A pickup is keyed ``pickup:<carrier>:<day>:<location>``; its intent row is committed before
the carrier is called and the key is sent as the carrier's idempotency key, so a crash
between the two books nothing twice. Labels bought after the booking join the same pickup
(the carrier collects every parcel on that visit), so there is one pickup per carrier and
day, not one per order.
"""

from __future__ import annotations

import os
import socket
from collections import defaultdict
from collections.abc import Callable
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import attrs
from fulfil.core import automation
from fulfil.core.carriers import PickupRequest
from fulfil.core.errors import CarrierError
from fulfil.core.models import Pickup
from fulfil.core.store.repo import Tx
from fulfil.core.work import Work

if TYPE_CHECKING:
    from fulfil.core.engine import Engine

LOCATION = "origin"  # one pickup location per store for now: its origin address
# Seconds a worker may take to book a pickup before another one may try: longer than a
# carrier call can last (the engine's HTTP timeouts are 30 s).
BOOKING_LEASE = 120.0

# Runs a call to the named carrier; the worker's guard adds its rate limit and breaker.
Guard = Callable[[str, Callable[[], Any]], Any]


def _unguarded(_carrier: str, call: Callable[[], Any]) -> Any:
    return call()


def pickup_day(now: datetime, timezone: str, cutoff: str) -> date:
    """Today if before the cut-off (local time), else the next working day."""
    # The cut-off is given to the minute: every label settled in the same minute has the
    # same day, and asks (once per label) while a batch is settled.
    return _pickup_day(now.replace(second=0, microsecond=0), timezone, cutoff)


@lru_cache(maxsize=16)
def _pickup_day(now: datetime, timezone: str, cutoff: str) -> date:
    local = now.astimezone(ZoneInfo(timezone))
    day = local.date()
    if local.strftime("%H:%M") >= cutoff:
        day += timedelta(days=1)
    while day.weekday() >= 5:  # carriers do not collect at weekends
        day += timedelta(days=1)
    return day


def pickup_id(engine: Engine, carrier: str) -> str:
    """The key of the pickup that collects what ``carrier`` labels now."""
    store = engine.config.store
    day = pickup_day(engine.clock.now(), store.timezone, store.pickup_cutoff)
    return f"pickup:{carrier}:{day.isoformat()}:{LOCATION}"


def booked_pickup(engine: Engine, tx: Tx, carrier: str) -> str | None:
    """The id of today's booked pickup for ``carrier``, if there is one to join."""
    if carrier not in engine.carriers_with_pickups:
        return None
    row = tx.pickup(pickup_id(engine, carrier))
    return row.id if row is not None and row.status == "booked" else None


def book_due(engine: Engine, guard: Guard = _unguarded, owner: str | None = None) -> list[Pickup]:
    """Book (or join) a pickup for every shipment whose label is ready; return new bookings.

    ``guard`` runs the carrier call: a booking counts against the carrier's rate limit like
    a label purchase does. ``owner`` names the worker: one worker at a time books a pickup
    (a lease on its row), the others join it once it is booked."""
    owner = owner or f"{socket.gethostname()}:{os.getpid()}"
    carriers = engine.carriers_with_pickups
    if not carriers:
        return []
    with engine.store.transaction() as tx:
        waiting = tx.shipments_awaiting_pickup(carriers)
    if not waiting:
        return []
    store = engine.config.store
    day = pickup_day(engine.clock.now(), store.timezone, store.pickup_cutoff)
    by_carrier: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for row in waiting:
        by_carrier[row.carrier].append((row.order_id, row.id))
    booked = []
    for carrier, shipments in by_carrier.items():
        pickup, new = _book(engine, carrier, day, shipments, guard, owner)
        if pickup is not None:
            booked += [pickup] if new else []
            _attach(engine, pickup, shipments)
    return booked


def _book(
    engine: Engine,
    carrier: str,
    day: date,
    shipments: list[tuple[str, str]],
    guard: Guard,
    owner: str,
) -> tuple[Pickup | None, bool]:
    """The day's pickup for ``carrier`` (booked now if need be), and whether it is new;
    None while another worker is booking it or the carrier refused for now."""
    store = engine.config.store
    assert store.origin is not None
    key = f"pickup:{carrier}:{day.isoformat()}:{LOCATION}"
    with engine.store.transaction() as tx:
        row = tx.pickup(key)
        if row is not None and row.status == "booked":
            return Pickup.from_mapping(row.data), False
        covered = tx.shipments([sid for _, sid in shipments])
    pickup = Pickup(
        id=key,
        carrier=carrier,
        day=day.isoformat(),
        window_start=store.pickup_window_start,
        window_end=store.pickup_window_end,
        address=store.origin,
        shipment_ids=tuple(s.id for s in covered),
    )
    with engine.store.transaction() as tx:
        tx.add_pickup_intent(
            {
                "id": key,
                "carrier": carrier,
                "day": pickup.day,
                "status": "intent",
                "data": pickup.to_mapping(),
                "created_at": engine.clock.now().isoformat(),
            }
        )
        if not tx.claim_pickup(key, owner, engine.clock.time(), BOOKING_LEASE):
            return None, False
    request = PickupRequest(
        idempotency_key=key,
        day=day,
        window_start=pickup.window_start,
        window_end=pickup.window_end,
        address=store.origin,
        tracking_numbers=tuple(s.tracking_number for s in covered if s.tracking_number),
        carrier_references=tuple(
            s.label.carrier_reference for s in covered if s.label and s.label.carrier_reference
        ),
        parcel_count=sum(len(s.parcels) for s in covered),
        total_weight_g=sum(s.weight_g for s in covered),
    )
    try:
        plugin = engine.carrier(carrier)
        confirmation = guard(carrier, lambda: plugin.schedule_pickup(request))
    except CarrierError as error:
        # The intent stays and the next pass (of any worker) tries again with the same key.
        engine.log_carrier_error("pickup", key, error)
        with engine.store.transaction() as tx:
            tx.update_pickup(key, lease_owner=None, lease_until=None)
        return None, False
    pickup = attrs.evolve(pickup, confirmation=confirmation.confirmation)
    with engine.store.transaction() as tx:
        tx.update_pickup(
            key,
            status="booked",
            confirmation=pickup.confirmation,
            data=pickup.to_mapping(),
            lease_owner=None,
            lease_until=None,
        )
    engine.hooks.pickup_scheduled(pickup)
    return pickup, True


def _attach(engine: Engine, pickup: Pickup, shipments: list[tuple[str, str]]) -> None:
    """Point each waiting shipment at the pickup, and ship orders that are now complete."""
    by_order: dict[str, set[str]] = defaultdict(set)
    for order_id, shipment_id in shipments:
        by_order[order_id].add(shipment_id)
    works = []
    with engine.store.transaction() as tx:
        for order_id, ids in by_order.items():
            order = tx.load_order(order_id)
            if order is None:
                continue
            work = Work(engine, tx, order, f"plugin:{pickup.carrier}")
            work.update(
                attrs.evolve(
                    order,
                    shipments=tuple(
                        attrs.evolve(s, pickup_id=pickup.id) if s.id in ids else s
                        for s in order.shipments
                    ),
                ),
                "pickup",
                pickup=pickup.id,
                day=pickup.day,
            )
            automation.maybe_ship(work, pickup=pickup.id)
            work.commit()
            works.append(work)
    engine.after_commit(works)
