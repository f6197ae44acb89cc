"""The sandbox's permanent refusals, deterministic so tests can aim at each one.

Each raises ``CarrierError(kind="validation")`` naming the request field, as a real
carrier's 422 body would, so the merchant sees what to fix rather than "internal error".
"""

from __future__ import annotations

import re

from fulfil.core.carriers import LabelRequest, PickupRequest
from fulfil.core.errors import CarrierError
from fulfil.plugins.carriers.sandbox.faults import CARRIER
from fulfil.plugins.carriers.sandbox.settings import SERVICES
from fulfil.plugins.carriers.sandbox.tariff import MAX_PARCEL_WEIGHT_G

__all__ = [
    "DEFAULT_SERVICE",
    "INVALID_POSTAL_CODE",
    "check_label_request",
    "check_pickup_window",
    "invalid",
]

DEFAULT_SERVICE = "standard"
# The one postal code the sandbox "does not know", so tests can provoke a refusal.
INVALID_POSTAL_CODE = "00000"
_HH_MM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def invalid(field: str, code: str, message: str) -> CarrierError:
    """A permanent refusal of one field, with the status a real carrier would send."""
    return CarrierError(CARRIER, "validation", message, code=code, field=field, status_code=422)


def check_label_request(request: LabelRequest) -> str:
    """Refuse what the sandbox cannot ship; return the service to use."""
    for role, address in (("sender", request.sender), ("recipient", request.recipient)):
        if address.postal_code.strip() == INVALID_POSTAL_CODE:
            raise invalid(
                f"{role}.postal_code",
                "invalid_postal_code",
                f"{role}.postal_code {address.postal_code!r} is not a valid postal code "
                f"in {address.country}",
            )
    if not request.parcels:
        raise invalid("parcels", "no_parcels", "parcels is empty; a label needs at least one")
    for index, parcel in enumerate(request.parcels):
        field = f"parcels[{index}].weight_g"
        if parcel.weight_g <= 0:
            raise invalid(
                field, "invalid_weight", f"{field} is {parcel.weight_g}; it must be above 0"
            )
        if parcel.weight_g > MAX_PARCEL_WEIGHT_G:
            raise invalid(
                field,
                "parcel_too_heavy",
                f"{field} is {parcel.weight_g}; the limit is {MAX_PARCEL_WEIGHT_G} g",
            )
    service = request.service or DEFAULT_SERVICE
    if service not in SERVICES:
        raise invalid(
            "service",
            "unknown_service",
            f"service {service!r} is not offered; choose one of {', '.join(SERVICES)}",
        )
    if request.label_format.upper() != "PDF":
        raise invalid(
            "label_format",
            "unsupported_label_format",
            f"label_format {request.label_format!r} is not offered; only PDF is",
        )
    return service


def check_pickup_window(request: PickupRequest) -> None:
    for field in ("window_start", "window_end"):
        if not _HH_MM.match(getattr(request, field)):
            raise invalid(field, "invalid_time", f"{field} must be HH:MM (24 h)")
    if request.window_start >= request.window_end:
        raise invalid(
            "window_end",
            "invalid_window",
            f"window_end {request.window_end} is not after window_start {request.window_start}",
        )
    if not request.tracking_numbers:
        raise invalid(
            "tracking_numbers", "no_labels", "tracking_numbers is empty; a pickup needs a label"
        )
