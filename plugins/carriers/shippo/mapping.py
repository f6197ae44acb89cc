"""One job: turn fulfil's typed requests into Shippo's documented bodies, and back.

Units convert here, at the edge: fulfil keeps grams and millimetres; Shippo gets
kilograms and centimetres (``mass_unit`` ``kg``, ``distance_unit`` ``cm``) as decimal
strings, exactly (no float rounding). Shapes followed:

- address, parcel, shipment, extra: https://docs.goshippo.com/docs/shipments/shipments/
- customs declaration and items: https://docs.goshippo.com/docs/international_shipping/internationalshipping
- returns (``extra.is_return``, addresses not swapped): https://docs.goshippo.com/docs/shipments/returns/
- label_file_type tokens: https://docs.goshippo.com/docs/shipments/shippinglabelsizes/
- tracking statuses: https://docs.goshippo.com/docs/tracking/tracking/
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from fulfil.core.carriers import CustomsItem, LabelRequest, PickupRequest, Rate
from fulfil.core.models import Address, Money, Parcel

__all__ = [
    "CARRIER_TOKENS",
    "address",
    "carrier_token",
    "customs_declaration",
    "fulfil_format",
    "label_file_type",
    "metadata_for",
    "parcels",
    "pickup_body",
    "rate_from",
    "shipment_body",
    "tracking_event",
    "tracking_status",
]

# Shippo carrier tokens (the CarriersEnum of the API spec), used for GET /tracks/{carrier}/.
CARRIER_TOKENS: tuple[str, ...] = (
    "airterra", "apc_postal", "apg", "aramex", "asendia_us", "australia_post", "axlehire",
    "better_trucks", "borderguru", "boxberry", "bring", "canada_post", "cdl", "chronopost",
    "collect_plus", "correios_br", "correos_espana", "colissimo", "deutsche_post",
    "dhl_benelux", "dhl_ecommerce", "dhl_express", "dhl_germany_c2c", "dhl_germany", "dpd_de",
    "dpd_uk", "estafeta", "fastway_australia", "fedex", "globegistics", "gls_us", "gophr",
    "gso", "hermes_germany_b2c", "hermes_uk", "hongkong_post", "lasership", "lso",
    "mondial_relay", "new_zealand_post", "nippon_express", "ontrac", "parcelforce",
    "passport", "pcf", "poste_italiane", "posti", "purolator", "royal_mail", "rr_donnelley",
    "russian_post", "sendle", "skypostal", "stuart", "swyft", "uds", "ups", "usps", "veho",
)  # fmt: skip

# Shippo's metadata fields hold at most 100 characters.
METADATA_LIMIT = 100

_TRACKING_STATUS = {
    "PRE_TRANSIT": "pre_transit",
    "TRANSIT": "in_transit",
    "DELIVERED": "delivered",
    "RETURNED": "returned",
    "FAILURE": "failure",
    "UNKNOWN": "pre_transit",  # nothing from the carrier yet
}


def metadata_for(key: str) -> str:
    """The idempotency key as Shippo ``metadata``; a key too long is replaced by its digest."""
    if len(key) <= METADATA_LIMIT:
        return key
    return "fulfil:sha256:" + hashlib.sha256(key.encode()).hexdigest()


def _decimal(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text


def _kg(grams: int) -> str:
    return _decimal(Decimal(grams) / 1000)


def _cm(millimetres: int) -> str:
    return _decimal(Decimal(millimetres) / 10)


def address(value: Address, email: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": value.name,
        "company": value.company,
        "street1": value.line1,
        "street2": value.line2,
        "city": value.city,
        "state": value.region,
        "zip": value.postal_code,
        "country": value.country,
        "phone": value.phone,
        "email": email,
    }
    return {k: v for k, v in body.items() if v is not None}


def parcels(values: Iterable[Parcel]) -> list[dict[str, Any]]:
    return [
        {
            "length": _cm(p.length_mm),
            "width": _cm(p.width_mm),
            "height": _cm(p.height_mm),
            "distance_unit": "cm",
            "weight": _kg(p.weight_g),
            "mass_unit": "kg",
        }
        for p in values
    ]


def customs_declaration(
    items: Iterable[CustomsItem],
    *,
    sender: Address,
    key: str,
    incoterm: str,
    signer: str | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "certify": True,
        "certify_signer": signer or sender.name,
        "contents_type": "MERCHANDISE",
        "non_delivery_option": "RETURN",
        "incoterm": incoterm,
        "metadata": metadata_for(key),
        "items": [_customs_item(item) for item in items],
    }
    if sender.country == "US":
        # Exports from the US under 2,500 USD per HS code need no EEI filing.
        body["eel_pfc"] = "NOEEI_30_37_a"
    return body


def _customs_item(item: CustomsItem) -> dict[str, Any]:
    body: dict[str, Any] = {
        "description": item.description[:100],
        "quantity": item.quantity,
        "net_weight": _kg(item.weight_g),  # Shippo: quantity * weight per item
        "mass_unit": "kg",
        "value_amount": _decimal(item.value.amount),  # quantity * value per item
        "value_currency": item.value.currency,
        "origin_country": item.origin_country,
    }
    if item.sku:
        body["sku_code"] = item.sku
    if item.hs_code:
        body["hs_code"] = item.hs_code
    return body


def shipment_body(
    request: LabelRequest,
    *,
    customs_declaration_id: str | None = None,
    carrier_account: str | None = None,
) -> dict[str, Any]:
    """``POST /shipments/`` body; also the ``shipment`` of a one-call (instalabel) purchase.

    For a return, addresses stay as on the outbound label (store -> customer) and
    ``extra.is_return`` asks Shippo to swap them, as its returns guide says.
    """
    extra: dict[str, Any] = {"reference_1": f"#{request.order_number}"}
    if request.is_return:
        extra["is_return"] = True
    body: dict[str, Any] = {
        "address_from": address(request.sender),
        "address_to": address(request.recipient, request.recipient_email),
        "parcels": parcels(request.parcels),
        "extra": extra,
        "metadata": metadata_for(request.idempotency_key),
        "async": False,
    }
    if customs_declaration_id:
        body["customs_declaration"] = customs_declaration_id
    if carrier_account:
        body["carrier_accounts"] = [carrier_account]
    return body


def label_file_type(requested: str, configured: str) -> str:
    """Shippo's label_file_type for fulfil's format (PDF, ZPL, PNG).

    fulfil asks for PDF unless told otherwise, so PDF means "the merchant's setting"; an
    explicit ZPL or PNG gets that family, in the configured size when it is of that family.
    """
    family = requested.upper()
    if family == "PDF":
        return configured
    if family == "ZPL":
        return "ZPLII"
    if family == "PNG":
        return configured if configured.startswith("PNG") else "PNG"
    return configured


def fulfil_format(shippo_type: str | None, fallback: str) -> str:
    """fulfil's format (PDF, ZPL, PNG) for a Shippo label_file_type."""
    value = (shippo_type or fallback).upper()
    if value.startswith("ZPL"):
        return "ZPL"
    if value.startswith("PNG"):
        return "PNG"
    return "PDF"


def rate_from(data: Mapping[str, Any]) -> tuple[str, Money, int | None]:
    """(servicelevel token, cost, days) from a Rate (nested ``servicelevel``) or a
    transaction's CoreRate (flat ``servicelevel_token``)."""
    servicelevel = data.get("servicelevel")
    token = (
        servicelevel.get("token")
        if isinstance(servicelevel, Mapping)
        else data.get("servicelevel_token")
    )
    cost = Money(Decimal(str(data.get("amount", "0"))), str(data.get("currency") or "USD"))
    days = data.get("estimated_days")
    return str(token or ""), cost, int(days) if isinstance(days, int) else None


def rates_from(shipment: Mapping[str, Any]) -> list[tuple[Rate, Mapping[str, Any]]]:
    """Each rate of a shipment as fulfil's ``Rate``, with the Shippo object it came from."""
    found = []
    for data in shipment.get("rates") or ():
        token, cost, days = rate_from(data)
        found.append((Rate(service=token, cost=cost, days=days), data))
    return found


def carrier_token(servicelevel: str | None) -> str | None:
    """The carrier token a servicelevel token starts with (``dhl_express_worldwide`` ->
    ``dhl_express``), the longest that matches."""
    if not servicelevel:
        return None
    matches = [c for c in CARRIER_TOKENS if servicelevel == c or servicelevel.startswith(c + "_")]
    return max(matches, key=len) if matches else None


def tracking_status(status: str | None, substatus: str | None = None) -> str:
    if status == "TRANSIT" and substatus == "out_for_delivery":
        return "out_for_delivery"
    return _TRACKING_STATUS.get(status or "UNKNOWN", "pre_transit")


def tracking_event(event: Mapping[str, Any]) -> dict[str, Any]:
    """One ``tracking_history`` entry as fulfil's event mapping."""
    location = event.get("location") or {}
    where = ", ".join(str(location[k]) for k in ("city", "country") if location.get(k))
    return {
        "at": event.get("status_date"),
        "status": tracking_status(event.get("status"), (event.get("substatus") or {}).get("code")),
        "description": event.get("status_details") or "",
        "location": where,
    }


def _utc(day: date, hhmm: str, zone: str) -> str:
    local = datetime.combine(day, time.fromisoformat(hhmm), tzinfo=ZoneInfo(zone))
    return local.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%SZ")


def pickup_body(
    request: PickupRequest,
    *,
    carrier_account: str,
    timezone: str,
    location_type: str,
    instructions: str | None,
) -> dict[str, Any]:
    """``POST /pickups/`` body: the window, local at the pickup address, sent in UTC."""
    location: dict[str, Any] = {
        "building_location_type": location_type,
        "address": address(request.address),
    }
    if instructions:
        location["instructions"] = instructions
    return {
        "carrier_account": carrier_account,
        "location": location,
        "transactions": list(request.carrier_references),
        "requested_start_time": _utc(request.day, request.window_start, timezone),
        "requested_end_time": _utc(request.day, request.window_end, timezone),
        "metadata": metadata_for(request.idempotency_key),
    }
