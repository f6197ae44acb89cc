"""fulfil's requests as EasyPost bodies, and EasyPost objects as fulfil's results.

Units change here and nowhere else: grams become ounces and millimetres inches, to one
decimal as EasyPost's Parcel documents. A service is named ``"Carrier:Service"`` (EasyPost
rates are per carrier: ``"USPS:Priority"``, ``"UPS:Ground"``) or by the service alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from fulfil.core.carriers import CustomsItem, LabelRequest, PurchasedLabel, Rate, TrackingInfo
from fulfil.core.models import Address, Money, Parcel
from fulfil.plugins.carriers.easypost.errors import rejected
from fulfil.plugins.carriers.easypost.settings import EasyPostSettings

__all__ = [
    "address",
    "check_parcels",
    "choose_rate",
    "grams_to_ounces",
    "label",
    "mm_to_inches",
    "parse_service",
    "rates",
    "shipment",
    "tracking",
]

GRAMS_PER_OUNCE = 28.349523125
MM_PER_INCH = 25.4

# EasyPost's label_file_type (a media type) to fulfil's format names.
FILE_TYPES = {"application/pdf": "PDF", "image/png": "PNG", "application/zpl": "ZPL"}

# EasyPost tracker statuses to fulfil's TrackingInfo.status values.
TRACKING_STATUS = {
    "unknown": "pre_transit",
    "pre_transit": "pre_transit",
    "in_transit": "in_transit",
    "out_for_delivery": "out_for_delivery",
    "available_for_pickup": "out_for_delivery",
    "delivered": "delivered",
    "return_to_sender": "returned",
    "failure": "failure",
    "error": "failure",
    "cancelled": "cancelled",
}


def grams_to_ounces(grams: int) -> float:
    # A few grams still weigh something; 0 stays 0, for EasyPost to refuse.
    return max(round(grams / GRAMS_PER_OUNCE, 1), 0.1) if grams > 0 else 0.0


def mm_to_inches(mm: int) -> float:
    return max(round(mm / MM_PER_INCH, 1), 0.1) if mm > 0 else 0.0


def parse_service(value: str | None, default_carrier: str | None) -> tuple[str | None, str | None]:
    """``"USPS:Priority"`` -> ``("USPS", "Priority")``; ``"Priority"`` -> default carrier."""
    if value is None:
        return default_carrier, None
    carrier, sep, service = value.partition(":")
    return (carrier, service) if sep else (default_carrier, value)


def address(value: Address, email: str | None = None) -> dict[str, Any]:
    body = {
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


def parcel(value: Parcel) -> dict[str, Any]:
    return {
        "weight": grams_to_ounces(value.weight_g),
        "length": mm_to_inches(value.length_mm),
        "width": mm_to_inches(value.width_mm),
        "height": mm_to_inches(value.height_mm),
    }


def customs_info(
    items: Iterable[CustomsItem], sender: Address, settings: EasyPostSettings
) -> dict[str, Any]:
    info: dict[str, Any] = {
        "contents_type": "merchandise",
        "customs_certify": True,
        "customs_signer": settings.customs_signer or sender.name,
        "non_delivery_option": "return",
        "restriction_type": "none",
        "customs_items": [
            {
                "description": item.description,
                "quantity": item.quantity,
                "value": float(item.value.amount),
                "currency": item.value.currency,
                "weight": grams_to_ounces(item.weight_g),
                "origin_country": item.origin_country,
                **({"code": item.sku} if item.sku else {}),
                **({"hs_tariff_number": item.hs_code} if item.hs_code else {}),
            }
            for item in items
        ],
    }
    if sender.country == "US":
        # US exports under $2,500 need no EEI filing; EasyPost's own examples send this.
        info["eel_pfc"] = "NOEEI 30.37(a)"
    return info


def check_parcels(request: LabelRequest) -> None:
    """An EasyPost shipment has one parcel (multi-parcel Orders serve a few carriers only)."""
    if len(request.parcels) != 1:
        raise rejected(
            f"an EasyPost shipment carries one parcel, this one has {len(request.parcels)}; "
            "split the shipment",
            code="multi_parcel_unsupported",
            field="parcels",
        )


def shipment(
    request: LabelRequest,
    settings: EasyPostSettings,
    label_format: str,
    *,
    buy_service: tuple[str | None, str] | None = None,
    with_accounts: bool = True,
) -> dict[str, Any]:
    """The ``{"shipment": ...}`` body of POST /shipments.

    ``buy_service`` (carrier, service) turns it into a one-call buy: EasyPost creates the
    shipment and buys that service with ``carrier_accounts`` in the same request.
    For a return, the addresses stay those of the outbound parcel: EasyPost swaps them.
    """
    check_parcels(request)
    options: dict[str, Any] = {"label_format": label_format}
    if settings.label_size:
        options["label_size"] = settings.label_size
    body: dict[str, Any] = {
        "reference": request.idempotency_key,
        "to_address": address(request.recipient, request.recipient_email),
        "from_address": address(request.sender),
        "parcel": parcel(request.parcels[0]),
        "options": options,
    }
    if request.is_return:
        body["is_return"] = True
    if request.customs:
        body["customs_info"] = customs_info(request.customs, request.sender, settings)
    if with_accounts and settings.carrier_accounts:
        body["carrier_accounts"] = list(settings.carrier_accounts)
    if buy_service is not None:
        carrier, service = buy_service
        body["service"] = service
        if carrier:
            body["carrier"] = carrier
    return {"shipment": body}


def rate_name(rate: Mapping[str, Any]) -> str:
    return f"{rate['carrier']}:{rate['service']}"


def choose_rate(
    shipment: Mapping[str, Any], carrier: str | None, service: str | None
) -> dict[str, Any]:
    """The cheapest rate of ``shipment`` for that carrier and service (any when ``None``)."""
    offered = shipment.get("rates") or []
    matching = [
        r
        for r in offered
        if (service is None or r.get("service") == service)
        and (carrier is None or str(r.get("carrier", "")).lower() == carrier.lower())
    ]
    if not matching:
        wanted = f"{carrier}:{service}" if carrier else (service or "any service")
        names = ", ".join(sorted(rate_name(r) for r in offered)) or "none"
        problems = "; ".join(
            f"{m.get('carrier')}: {m.get('message')}" for m in shipment.get("messages") or ()
        )
        detail = f"; carrier messages: {problems}" if problems else ""
        raise rejected(
            f"EasyPost offered no rate for {wanted} (offered: {names}){detail}",
            code="rate_unavailable",
            field="service",
        )
    best: dict[str, Any] = min(matching, key=lambda r: Decimal(str(r["rate"])))
    return best


def rates(shipment: Mapping[str, Any], carrier: str | None, service: str | None) -> list[Rate]:
    found = [
        Rate(
            service=rate_name(r),
            cost=Money(Decimal(str(r["rate"])), r["currency"]),
            days=r.get("delivery_days") or r.get("est_delivery_days"),
        )
        for r in shipment.get("rates") or ()
        if (service is None or r.get("service") == service)
        and (carrier is None or str(r.get("carrier", "")).lower() == carrier.lower())
    ]
    return sorted(found, key=lambda rate: rate.cost.amount)


def label_url(postage_label: Mapping[str, Any], label_format: str) -> tuple[str, str]:
    """The URL of the document in ``label_format`` if EasyPost made one, else ``label_url``;
    with the format that URL really serves."""
    specific = postage_label.get(f"label_{label_format.lower()}_url")
    if specific:
        return specific, label_format
    file_type = str(postage_label.get("label_file_type") or "").lower()
    return postage_label["label_url"], FILE_TYPES.get(file_type, label_format)


def label(
    shipment: Mapping[str, Any], document: bytes | None, label_format: str, url: str
) -> PurchasedLabel:
    rate = shipment["selected_rate"]
    tracker = shipment.get("tracker") or {}
    return PurchasedLabel(
        tracking_number=shipment["tracking_code"],
        format=label_format,
        cost=Money(Decimal(str(rate["rate"])), rate["currency"]),
        service=rate_name(rate),
        document=document,
        url=url,
        tracking_url=tracker.get("public_url"),
        carrier_reference=shipment["id"],
    )


def tracking(tracker: Mapping[str, Any]) -> TrackingInfo:
    events = tuple(
        {
            "at": detail.get("datetime"),
            "status": TRACKING_STATUS.get(str(detail.get("status")), "in_transit"),
            "description": detail.get("message") or "",
        }
        for detail in tracker.get("tracking_details") or ()
    )
    return TrackingInfo(
        tracking_number=tracker["tracking_code"],
        status=TRACKING_STATUS.get(str(tracker.get("status")), "in_transit"),
        events=events,
    )
