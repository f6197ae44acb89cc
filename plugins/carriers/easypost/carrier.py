"""``EasyPostCarrier``: the operations of ``fulfil.core.carriers.Carrier`` over EasyPost API v2.

A label is bought one of two ways. With ``carrier_accounts`` set and a service known, one
request does it (POST /shipments with ``service`` and ``carrier_accounts``: a one-call
buy). Otherwise the shipment is created, its rates read, and the chosen rate bought
(POST /shipments/{id}/buy). Either way the label document is then fetched from the
``postage_label`` URL EasyPost returns.

EasyPost has no idempotency header. The idempotency key is sent as the shipment's
``reference``, which EasyPost accepts in place of an id (GET /shipments/{reference}), and
``buy_label`` looks it up before buying: after a lost answer or a worker killed mid-call,
the label sold under the key is returned, never bought again. A shipment created under the
key but not bought is bought rather than created twice (EasyPost answers
SHIPMENT.POSTAGE.EXISTS if it was bought meanwhile). References are not unique at
EasyPost, so an unbought twin sends ``find_label`` on to the most recent purchased
shipments. Keys bought in this process are remembered, so asking again costs one GET.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

from fulfil.core.carriers import (
    LabelRequest,
    PickupConfirmation,
    PickupRequest,
    PurchasedLabel,
    Rate,
    TrackingInfo,
)
from fulfil.core.context import PluginContext
from fulfil.core.errors import CarrierError
from fulfil.core.models import Label
from fulfil.core.secrets import reveal
from fulfil.plugins.carriers.easypost import mapping
from fulfil.plugins.carriers.easypost.client import EasyPostApi, quote_id
from fulfil.plugins.carriers.easypost.errors import CARRIER, rejected
from fulfil.plugins.carriers.easypost.settings import LABEL_FORMATS, EasyPostSettings

__all__ = ["EasyPostCarrier", "make_carrier"]

# Purchased shipments scanned when reconciling: an unknown outcome is settled minutes after
# the purchase, so the key's shipment is among the most recent ones.
RECONCILE_PAGE_SIZE = 100
# Keys bought in this process, remembered so that buying one again returns its label.
REMEMBERED = 10_000


def make_carrier(settings: Mapping[str, Any], context: PluginContext) -> EasyPostCarrier:
    """The factory the plugin registers: check ``settings`` once, bind the core's client."""
    parsed = EasyPostSettings.from_mapping(settings)
    api = EasyPostApi(context.client, parsed.base_url, reveal(parsed.api_key))
    return EasyPostCarrier(parsed, api, log=context.log.getChild(CARRIER))


class EasyPostCarrier:
    """Labels, rates, refunds (cancel), returns, pickups and tracking through EasyPost."""

    name = CARRIER

    def __init__(
        self, settings: EasyPostSettings, api: EasyPostApi, *, log: logging.Logger | None = None
    ) -> None:
        self.settings = settings
        self.api = api
        # Ids only (keys, shipment ids, tracking numbers): never names, addresses or the key.
        self.log = log or logging.getLogger(f"fulfil.plugin.{CARRIER}")
        self._pending: dict[str, str] = {}  # key -> shipment created for it, not bought yet
        self._bought: dict[str, str] = {}  # key -> shipment bought for it (the last REMEMBERED)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"EasyPostCarrier({self.settings.base_url!r})"

    # --- labels ---------------------------------------------------------------------------

    def buy_label(self, request: LabelRequest) -> PurchasedLabel:
        """Buy the label for ``request``, or return the one bought under its key before.

        EasyPost has no idempotency key, so the key's reference is looked up first: a
        worker that died after EasyPost sold the label, or an answer that never came,
        must not lead to a second purchase. The engine says when a request was never
        sent before (``maybe_sent=False``); only then is the lookup skipped.
        """
        key = request.idempotency_key
        known = self._bought.get(key)
        if known is not None:
            shipment = self.api.call("GET", f"/shipments/{quote_id(known)}")
            return self._label(shipment, self._format_of(shipment))
        label_format = self._label_format(request)
        mapping.check_parcels(request)
        found = self.find_label(key) if request.maybe_sent else None
        if found is not None:
            return found
        carrier, service = mapping.parse_service(
            request.service or self.settings.service, self.settings.carrier
        )
        if service is not None and self.settings.carrier_accounts and key not in self._pending:
            body = mapping.shipment(
                request, self.settings, label_format, buy_service=(carrier, service)
            )
            bought = self.api.call("POST", "/shipments", json=body, purchase=True)
        else:
            bought = self._create_and_buy(request, label_format, carrier, service)
        label = self._label(bought, label_format)
        self._settled(key, bought["id"])
        self.log.info(
            "bought label %s (key %s, shipment %s, order %s)",
            label.tracking_number,
            key,
            bought["id"],
            request.order_id,
        )
        return label

    def find_label(self, idempotency_key: str) -> PurchasedLabel | None:
        """The label bought under ``idempotency_key`` (refunded or not); ``None`` if none."""
        key = idempotency_key
        shipment = self.api.find(f"/shipments/{quote_id(key)}")
        if shipment is None:
            return None
        if not shipment.get("postage_label"):
            bought = self._recent_purchase(key)
            if bought is None:
                # Buy this one on the next attempt rather than create another.
                self._pending.setdefault(key, shipment["id"])
                return None
            shipment = bought
        label = self._label(shipment, self._format_of(shipment))
        self._settled(key, shipment["id"])
        self.log.info(
            "found label %s bought before (key %s, shipment %s)",
            label.tracking_number,
            key,
            shipment["id"],
        )
        return label

    def quote(self, request: LabelRequest) -> list[Rate]:
        """Rates for ``request.service``, or for every service EasyPost offers when ``None``."""
        carrier, service = mapping.parse_service(request.service, self.settings.carrier)
        body = mapping.shipment(request, self.settings, self._label_format(request))
        # No reference: a quote must never be mistaken for the key's purchase.
        del body["shipment"]["reference"]
        created = self.api.call("POST", "/shipments", json=body)
        return mapping.rates(created, carrier if request.service else None, service)

    def cancel_label(self, label: Label | PurchasedLabel) -> None:
        """Refund (void) a label; asking again for a refund already submitted succeeds."""
        shipment_id = self._shipment_id(label)
        refunded = self.api.call("POST", f"/shipments/{quote_id(shipment_id)}/refund")
        status = refunded.get("refund_status")
        if status in ("rejected", "not_applicable"):
            raise rejected(
                f"EasyPost's carrier refused to refund label {label.tracking_number} "
                f"(refund_status {status})",
                code=f"refund_{status}",
            )
        self.log.info(
            "refund %s for label %s (shipment %s)", status, label.tracking_number, shipment_id
        )

    # --- pickups --------------------------------------------------------------------------

    def schedule_pickup(self, request: PickupRequest) -> PickupConfirmation:
        """Book (or, for a key seen before, return) the pickup; the key is its reference."""
        key = request.idempotency_key
        pickup = self.api.find(f"/pickups/{quote_id(key)}")
        if pickup is None:
            if not request.carrier_references:
                raise CarrierError(
                    CARRIER,
                    "validation",
                    "an EasyPost pickup needs a shipment bought through EasyPost",
                    field="carrier_references",
                )
            pickup = self.api.call("POST", "/pickups", json=self._pickup_body(request))
        status = pickup.get("status")
        if status == "canceled":
            raise rejected(f"pickup {pickup['id']} was cancelled", code="pickup_cancelled")
        if status != "scheduled":
            rate = self._pickup_rate(pickup)
            pickup = self.api.call(
                "POST",
                f"/pickups/{quote_id(pickup['id'])}/buy",
                json={"carrier": rate["carrier"], "service": rate["service"]},
                purchase=True,
            )
        self.log.info("pickup %s scheduled (key %s, %s)", pickup["id"], key, pickup["confirmation"])
        return PickupConfirmation(pickup["confirmation"], carrier_reference=pickup["id"])

    def cancel_pickup(self, confirmation: PickupConfirmation) -> None:
        pickup_id = confirmation.carrier_reference
        if not pickup_id:
            raise CarrierError(
                CARRIER,
                "validation",
                "the pickup's EasyPost id (carrier_reference) is required to cancel it",
                field="carrier_reference",
            )
        self.api.call("POST", f"/pickups/{quote_id(pickup_id)}/cancel")
        self.log.info("cancelled pickup %s", pickup_id)

    # --- tracking -------------------------------------------------------------------------

    def track(self, tracking_number: str) -> TrackingInfo:
        """EasyPost returns the existing tracker for a code it tracks already."""
        tracker = self.api.call(
            "POST", "/trackers", json={"tracker": {"tracking_code": tracking_number}}
        )
        return mapping.tracking(tracker)

    # --- helpers --------------------------------------------------------------------------

    def _label_format(self, request: LabelRequest) -> str:
        # The contract's default is "PDF" and an explicit "PDF" looks the same: only another
        # format in the request overrides the merchant's configured one.
        wanted = request.label_format.upper()
        label_format = self.settings.label_format if wanted == "PDF" else wanted
        if label_format not in LABEL_FORMATS:
            raise CarrierError(
                CARRIER,
                "validation",
                f"label format {label_format} is not one of {', '.join(LABEL_FORMATS)}",
                field="label_format",
            )
        return label_format

    def _format_of(self, shipment: Mapping[str, Any]) -> str:
        label_format = (shipment.get("options") or {}).get("label_format")
        return str(label_format or self.settings.label_format).upper()

    def _settled(self, key: str, shipment_id: str) -> None:
        self._pending.pop(key, None)
        with self._lock:  # worker threads share the carrier
            self._bought[key] = shipment_id
            if len(self._bought) > REMEMBERED:
                del self._bought[next(iter(self._bought))]

    def _create_and_buy(
        self, request: LabelRequest, label_format: str, carrier: str | None, service: str | None
    ) -> dict[str, Any]:
        key = request.idempotency_key
        shipment_id = self._pending.get(key)
        if shipment_id is None:
            body = mapping.shipment(request, self.settings, label_format)
            shipment = self.api.call("POST", "/shipments", json=body)
            shipment_id = shipment["id"]
            self._pending[key] = shipment_id
        else:
            shipment = self.api.call("GET", f"/shipments/{quote_id(shipment_id)}")
            if shipment.get("postage_label"):
                return shipment
        try:
            rate = mapping.choose_rate(shipment, carrier, service)
        except CarrierError:
            self._pending.pop(key, None)
            raise
        try:
            return self.api.call(
                "POST",
                f"/shipments/{quote_id(shipment_id)}/buy",
                json={"rate": {"id": rate["id"]}},
                purchase=True,
            )
        except CarrierError as error:
            if error.code != "SHIPMENT.POSTAGE.EXISTS":
                raise
            # Bought by an earlier attempt whose answer was lost: that is our label.
            return self.api.call("GET", f"/shipments/{quote_id(shipment_id)}")

    def _label(self, shipment: Mapping[str, Any], label_format: str) -> PurchasedLabel:
        url, served = mapping.label_url(shipment["postage_label"], label_format)
        try:
            document = self.api.download(url)
        except CarrierError as error:
            # Bought: buying again would buy twice. The saga reconciles through find_label.
            raise CarrierError(
                CARRIER,
                "unknown_outcome",
                f"label {shipment.get('tracking_code')} was bought (shipment {shipment['id']}) "
                f"but its document could not be downloaded: {error.message}",
                status_code=error.status_code,
            ) from None
        return mapping.label(shipment, document, served, url)

    def _recent_purchase(self, key: str) -> dict[str, Any] | None:
        page = self.api.call(
            "GET", "/shipments", params={"purchased": "true", "page_size": RECONCILE_PAGE_SIZE}
        )
        for shipment in page.get("shipments") or ():
            if shipment.get("reference") == key and shipment.get("postage_label"):
                found: dict[str, Any] = shipment
                return found
        return None

    @staticmethod
    def _shipment_id(label: Label | PurchasedLabel) -> str:
        if not label.carrier_reference:
            raise CarrierError(
                CARRIER,
                "validation",
                f"label {label.tracking_number} has no EasyPost shipment id (carrier_reference)",
                field="carrier_reference",
            )
        return label.carrier_reference

    def _pickup_body(self, request: PickupRequest) -> dict[str, Any]:
        day = request.day.isoformat()
        return {
            "pickup": {
                "reference": request.idempotency_key,
                # Local wall-clock times at the pickup address (the request carries no zone).
                "min_datetime": f"{day}T{request.window_start}:00",
                "max_datetime": f"{day}T{request.window_end}:00",
                "address": mapping.address(request.address),
                "shipment": {"id": request.carrier_references[0]},
                "is_account_address": False,
                "instructions": f"{request.parcel_count} parcel(s), "
                f"{request.total_weight_g / 1000:.1f} kg in all",
            }
        }

    def _pickup_rate(self, pickup: Mapping[str, Any]) -> Mapping[str, Any]:
        wanted = self.settings.pickup_service
        offered = [
            r
            for r in pickup.get("pickup_rates") or ()
            if wanted is None or r.get("service") == wanted
        ]
        if not offered:
            names = ", ".join(
                f"{r.get('carrier')}:{r.get('service')}" for r in pickup.get("pickup_rates") or ()
            )
            raise rejected(
                f"EasyPost offered no pickup rate{' for ' + wanted if wanted else ''} "
                f"(offered: {names or 'none'})",
                code="PICKUP.BUY.NO_MATCHING_RATES",
                field="pickup_service",
            )
        best: Mapping[str, Any] = min(offered, key=lambda r: float(r.get("rate") or 0))
        return best
