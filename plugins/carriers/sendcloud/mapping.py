"""Translation between fulfil's typed requests and Sendcloud API v3 bodies (pure functions).

Units change here: grams become kilograms and millimetres centimetres, exactly (Decimal),
as strings the way Sendcloud's own examples write them (``{"value": "1.320", "unit":
"kg"}``). Shapes follow the v3 Shipments, Returns, Shipping options, Pickups and Parcel
tracking references (URLs in ``docs/carriers.md (Sendcloud)``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from fulfil.core.carriers import CustomsItem, LabelRequest, PickupRequest, Rate, TrackingInfo
from fulfil.core.models import Address, Money, Parcel

__all__ = [
    "MIME_TYPES",
    "address",
    "dimensions",
    "pickup_body",
    "rates",
    "rates_body",
    "return_body",
    "shipment_body",
    "tracking",
    "weight",
]

MIME_TYPES = {"PDF": "application/pdf", "ZPL": "application/zpl", "PNG": "image/png"}
FORMATS = {mime: name for name, mime in MIME_TYPES.items()}
# The resolutions Sendcloud documents as valid per format (ZPL ignores it).
DPI = {"PDF": 72, "PNG": 300, "ZPL": 203}

_KG = Decimal("0.001")
_CM = Decimal("0.1")
_CENT = Decimal("0.01")


def kilograms(grams: int) -> Decimal:
    return (Decimal(grams) / 1000).quantize(_KG)


def weight(grams: int) -> dict[str, str]:
    return {"value": str(kilograms(grams)), "unit": "kg"}


def dimensions(parcel: Parcel) -> dict[str, str]:
    def cm(mm: int) -> str:
        return str((Decimal(mm) / 10).quantize(_CM))

    return {
        "length": cm(parcel.length_mm),
        "width": cm(parcel.width_mm),
        "height": cm(parcel.height_mm),
        "unit": "cm",
    }


def address(value: Address, email: str | None = None) -> dict[str, Any]:
    """A Sendcloud Address object; the house number stays in ``address_line_1``."""
    body: dict[str, Any] = {
        "name": value.name,
        "address_line_1": value.line1,
        "postal_code": value.postal_code,
        "city": value.city,
        "country_code": value.country,
    }
    if value.company:
        body["company_name"] = value.company
    if value.line2:
        body["address_line_2"] = value.line2
    if value.region:
        # ISO 3166-2, e.g. "US-NY": prefix a bare subdivision code with the country.
        region = value.region
        body["state_province_code"] = region if "-" in region else f"{value.country}-{region}"
    if value.phone:
        body["phone_number"] = value.phone
    if email:
        body["email"] = email
    return body


def _per_unit(item: CustomsItem) -> tuple[Decimal, Decimal]:
    """(price, kilograms) of one unit: fulfil's customs lines carry line totals."""
    quantity = max(item.quantity, 1)
    price = (item.value.amount / quantity).quantize(_CENT)
    grams = Decimal(item.weight_g) / quantity
    return price, max((grams / 1000).quantize(_KG), _KG)


def parcel_items(
    customs: Sequence[CustomsItem], default_hs_code: str | None
) -> list[dict[str, Any]]:
    items = []
    for item in customs:
        price, kg = _per_unit(item)
        line: dict[str, Any] = {
            "description": item.description[:255],
            "quantity": item.quantity,
            "weight": {"value": float(kg), "unit": "kg"},
            "price": {"value": str(price), "currency": item.value.currency},
            "origin_country": item.origin_country,
        }
        hs_code = item.hs_code or default_hs_code
        if hs_code:  # else Sendcloud names the missing field, which the merchant must see
            line["hs_code"] = hs_code
        if item.sku:
            line["sku"] = item.sku
            line["item_id"] = item.sku
        items.append(line)
    return items


def customs_information(request: LabelRequest) -> dict[str, Any]:
    return {
        "invoice_number": str(request.order_number)[:40],
        "export_reason": "commercial_goods",
        "export_type": "commercial_b2c",
    }


def shipment_body(
    request: LabelRequest,
    *,
    service: str,
    label_format: str,
    contract_id: int | None,
    default_hs_code: str | None,
) -> dict[str, Any]:
    """The body of ``POST /shipments/announce`` (create and announce synchronously).

    The idempotency key is the ``external_reference_id``, which Sendcloud keeps unique per
    account (a second use answers 409 with the shipment made the first time).
    """
    properties: dict[str, Any] = {"shipping_option_code": service}
    if contract_id is not None:
        properties["contract_id"] = contract_id
    parcels: list[dict[str, Any]] = [
        {"weight": weight(p.weight_g), "dimensions": dimensions(p)} for p in request.parcels
    ]
    body: dict[str, Any] = {
        "label_details": {"mime_type": MIME_TYPES[label_format], "dpi": DPI[label_format]},
        "from_address": address(request.sender),
        "to_address": address(request.recipient, request.recipient_email),
        "ship_with": {"type": "shipping_option_code", "properties": properties},
        "order_number": str(request.order_number),
        "external_reference_id": request.idempotency_key,
        "reference": f"{request.order_id}:{request.shipment_id}",
        "parcels": parcels,
    }
    if request.customs:  # the core sets it when the parcel leaves the EU customs union
        # One declaration for the shipment; the items ride on its first parcel.
        body["customs_information"] = customs_information(request)
        parcels[0]["parcel_items"] = parcel_items(request.customs, default_hs_code)
    return body


def return_body(
    request: LabelRequest, *, service: str, contract_id: int | None, default_hs_code: str | None
) -> dict[str, Any]:
    """The body of ``POST /returns/announce-synchronously``: the customer sends to the store.

    The Returns API takes one weight and one collo size for the whole return.
    """
    ship_with: dict[str, Any] = {"type": "shipping_option_code", "shipping_option_code": service}
    if contract_id is not None:
        ship_with["contract"] = contract_id
    biggest = max(request.parcels, key=lambda p: p.length_mm * p.width_mm * p.height_mm)
    body: dict[str, Any] = {
        "from_address": address(request.recipient, request.recipient_email),
        "to_address": address(request.sender),
        "ship_with": ship_with,
        "weight": {
            "value": float(kilograms(sum(p.weight_g for p in request.parcels))),
            "unit": "kg",
        },
        "dimensions": {k: float(v) if k != "unit" else v for k, v in dimensions(biggest).items()},
        "collo_count": len(request.parcels),
        "order_number": str(request.order_number),
        "external_reference": request.idempotency_key,
        "send_tracking_emails": False,
    }
    if request.customs:
        body["parcel_items"] = parcel_items(request.customs, default_hs_code)
        body["customs_invoice_nr"] = str(request.order_number)
    return body


def rates_body(request: LabelRequest, service: str | None) -> dict[str, Any]:
    """The body of ``POST /shipping-options`` asking for quotes."""
    sender, recipient = request.sender, request.recipient
    if request.is_return:
        sender, recipient = recipient, sender
    body: dict[str, Any] = {
        "from_address": _rating_address(sender),
        "to_address": _rating_address(recipient),
        "parcels": [
            {"weight": weight(p.weight_g), "dimensions": dimensions(p)} for p in request.parcels
        ],
        "calculate_quotes": True,
    }
    if service:
        body["shipping_option_code"] = service
    elif request.is_return:
        body["functionalities"] = {"returns": True}
    return body


def _rating_address(value: Address) -> dict[str, Any]:
    full = address(value)
    keep = ("country_code", "postal_code", "city", "address_line_1", "state_province_code")
    return {k: full[k] for k in keep if k in full}


def rates(body: Any, service: str | None) -> list[Rate]:
    """Rates from a ``POST /shipping-options`` answer; options without a quote are left out.

    ``lead_time`` is in hours; a rate's ``days`` rounds it up.
    """
    found = []
    for option in body.get("data") or [] if isinstance(body, Mapping) else []:
        code = option.get("code")
        if not code or (service and code != service):
            continue
        for quote in option.get("quotes") or []:
            total = (quote.get("price") or {}).get("total") or {}
            if total.get("value") is None or not total.get("currency"):
                continue
            lead = quote.get("lead_time")
            days = math.ceil(lead / 24) if isinstance(lead, int | float) and lead > 0 else None
            found.append(Rate(code, Money(Decimal(str(total["value"])), total["currency"]), days))
            break  # the first quote is the one for the parcels asked about
    return found


def pickup_body(
    request: PickupRequest, *, carrier_code: str, timezone: str, contract_id: int | None
) -> dict[str, Any]:
    """The body of ``POST /pickups``; the key rides as ``reference`` to find it again."""
    zone = ZoneInfo(timezone)

    def at(day: date, hhmm: str) -> str:
        return datetime.combine(day, time.fromisoformat(hhmm), zone).isoformat()

    body: dict[str, Any] = {
        "address": address(request.address),
        "time_slots": [
            {
                "start_at": at(request.day, request.window_start),
                "end_at": at(request.day, request.window_end),
            }
        ],
        "items": [
            {
                "quantity": max(request.parcel_count, 1),
                "container_type": "parcel",
                "total_weight": weight(max(request.total_weight_g, 1)),
            }
        ],
        "carrier_code": carrier_code,
        "reference": request.idempotency_key,
    }
    if contract_id is not None:
        body["contract_id"] = contract_id
    return body


_DELIVERED = {"delivered", "collected_by_customer", "delivery_forced"}
_OUT_FOR_DELIVERY = {"out_for_delivery", "driver_on_route"}
_RETURNED = {"returned_to_sender", "returned"}
_CANCELLED = {"cancelled", "cancelled_upstream", "cancelling", "cancelling_upstream"}
_FAILURE = {
    "announcement_failed",
    "delivery_failed",
    "undeliverable",
    "refused_by_recipient",
    "exception",
    "address_invalid",
    "collect_error",
}
_PRE_TRANSIT = {
    "ready_to_send",
    "announced",
    "announcing",
    "being_announced",
    "announced_uncollected",
    "announced_not_collected",
    "no_label",
    "info_received",
}


def tracking_status(code: str | None) -> str:
    """A Sendcloud status code as one of fulfil's tracking statuses."""
    slug = (code or "").strip().lower().replace("-", "_").replace(" ", "_").replace(":", "")
    for statuses, status in (
        (_DELIVERED, "delivered"),
        (_OUT_FOR_DELIVERY, "out_for_delivery"),
        (_RETURNED, "returned"),
        (_CANCELLED, "cancelled"),
        (_FAILURE, "failure"),
        (_PRE_TRANSIT, "pre_transit"),
    ):
        if slug in statuses:
            return status
    return "pre_transit" if not slug else "in_transit"


def tracking(tracking_number: str, body: Mapping[str, Any]) -> TrackingInfo:
    """A ``GET /parcels/tracking/{tracking_number}`` answer: the newest event decides."""
    events = sorted(
        (e for e in body.get("events") or [] if isinstance(e, Mapping)),
        key=lambda e: str(e.get("event_at") or ""),
    )
    statuses = [tracking_status(e.get("status_code")) for e in events]
    mapped = tuple(
        {
            "at": e.get("event_at"),
            "status": status,
            "code": e.get("status_code"),
            "description": e.get("status_description") or "",
        }
        for e, status in zip(events, statuses, strict=True)
    )
    status = statuses[-1] if statuses else "pre_transit"
    return TrackingInfo(tracking_number, status, mapped)


def label_format(mime_type: Any) -> str | None:
    return FORMATS.get(mime_type) if isinstance(mime_type, str) else None
