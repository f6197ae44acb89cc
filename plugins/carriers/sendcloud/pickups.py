"""Pickups through Sendcloud's v3 Pickups API, made idempotent on the pickup key.

A Sendcloud pickup is booked with one carrier (``carrier_code``): the ``pickup_carrier``
setting, or else the carrier of the shipments being collected.

Sendcloud has no idempotency key for ``POST /pickups``; the key travels as the pickup's
``reference`` instead, and before booking the adapter looks for a pickup of the same
carrier and day carrying it (``GET /pickups``, then ``GET /pickups/{id}`` for list items,
which the documentation shows without ``reference``). Retrying the same key after an
unknown outcome therefore returns the pickup booked the first time.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fulfil.core.carriers import PickupConfirmation, PickupRequest
from fulfil.core.errors import CarrierError
from fulfil.plugins.carriers.sendcloud import mapping
from fulfil.plugins.carriers.sendcloud.client import CARRIER, SendcloudClient, error_for
from fulfil.plugins.carriers.sendcloud.settings import SendcloudSettings

__all__ = ["cancel_pickup", "schedule_pickup"]

_GONE = ("CANCELLED", "CANCELLATION_REQUESTED", "CANCELLING")


def _status(pickup: Mapping[str, Any]) -> str:
    return str(pickup.get("status") or "").upper()


def _carrier_code(
    client: SendcloudClient, settings: SendcloudSettings, request: PickupRequest
) -> str:
    """The carrier that collects: the setting, else the carrier of the labels' shipments
    (``GET /shipments?shipment_uuids=``, 100 at a time), else shipping_option's."""
    if settings.pickup_carrier:
        return settings.pickup_carrier
    ids = [r for r in request.carrier_references if r and ":" not in r]
    codes: set[str] = set()
    for start in range(0, len(ids), 100):
        found = client.get(
            "/shipments", params={"shipment_uuids": ",".join(ids[start : start + 100])}
        )
        for shipment in found.get("data") or []:
            carrier = (shipment.get("carrier") or {}).get("code")
            option = ((shipment.get("ship_with") or {}).get("properties") or {}).get(
                "shipping_option_code"
            )
            code = carrier or (option.split(":", 1)[0] if option else None)
            if code:
                codes.add(code)
    if len(codes) == 1:
        return codes.pop()
    if not codes and settings.shipping_option:
        return settings.shipping_option.split(":", 1)[0]
    reason = (
        f"the labels are with several carriers ({', '.join(sorted(codes))}) and Sendcloud "
        "books a pickup per carrier"
        if codes
        else "no label says which carrier collects the parcels"
    )
    raise CarrierError(
        CARRIER, "validation", f"{reason}: set pickup_carrier", field="pickup_carrier"
    )


def _same_day(pickup: Mapping[str, Any], day: str) -> bool:
    slots = pickup.get("time_slots") or []
    return any(str(slot.get("start_at", "")).startswith(day) for slot in slots)


def _find(client: SendcloudClient, key: str, carrier_code: str, day: str) -> Any:
    """The pickup booked under ``key``, if any (one GET per candidate of that carrier/day)."""
    listed = client.get("/pickups", params={"page_size": 100})
    for item in listed.get("data") or []:
        if item.get("carrier_code") not in (None, carrier_code) or not _same_day(item, day):
            continue
        pickup = item if "reference" in item else client.get(f"/pickups/{item['id']}")["data"]
        if pickup.get("reference") == key:
            return pickup
    return None


def schedule_pickup(
    client: SendcloudClient,
    settings: SendcloudSettings,
    request: PickupRequest,
    log: logging.Logger,
) -> PickupConfirmation:
    key = request.idempotency_key
    carrier_code = _carrier_code(client, settings, request)
    pickup = _find(client, key, carrier_code, request.day.isoformat())
    if pickup is None:
        body = mapping.pickup_body(
            request,
            carrier_code=carrier_code,
            timezone=settings.pickup_timezone,
            contract_id=settings.contract_id,
        )
        pickup = client.post("/pickups", body, purchase=True).json()["data"]
        log.info("booked pickup %s with %s (key %s)", pickup["id"], carrier_code, key)
    else:
        log.info("pickup %s was booked before (key %s)", pickup["id"], key)
    if _status(pickup) in _GONE or _status(pickup) == "FAILED":
        raise CarrierError(
            CARRIER,
            "rejected",
            f"pickup {pickup['id']} booked under key {key} is {_status(pickup).lower()}",
            code="pickup_" + _status(pickup).lower(),
        )
    return PickupConfirmation(
        str(pickup["id"]), carrier_reference=pickup.get("tracking_number") or None
    )


def cancel_pickup(
    client: SendcloudClient, confirmation: PickupConfirmation, log: logging.Logger
) -> None:
    """``POST /pickups/{id}/cancel``: 200 cancelled, 202 cancellation requested; a 409 for
    a pickup that is already cancelled counts as done (a retried cancel must succeed)."""
    pickup_id = confirmation.confirmation
    response = client.post(f"/pickups/{pickup_id}/cancel", allow=(409,))
    if response.status_code == 409:
        current = client.get(f"/pickups/{pickup_id}")["data"]
        if _status(current) not in _GONE:
            raise error_for(response, f"POST /pickups/{pickup_id}/cancel")
    log.info("cancelled pickup %s", pickup_id)
