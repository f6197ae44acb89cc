"""``SendcloudCarrier``: fulfil's carrier operations on Sendcloud API v3.

A label is one synchronous call, ``POST /shipments/announce``, sent with the idempotency
key as ``external_reference_id`` (Sendcloud's documented way to keep shipment creation
idempotent: a reused reference answers 409 with the shipment made the first time). The
label document is then downloaded from the link Sendcloud returns, through the same
client. After an unknown outcome ``find_label`` looks the key up with
``GET /shipments?external_reference_id=...``; nothing is ever bought under a new key.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Protocol

import httpx
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
from fulfil.core.models import Money
from fulfil.plugins.carriers.sendcloud import mapping, pickups
from fulfil.plugins.carriers.sendcloud.client import CARRIER, SendcloudClient, error_for
from fulfil.plugins.carriers.sendcloud.settings import SendcloudSettings

__all__ = ["SendcloudCarrier", "make_carrier"]

RETURN_PREFIX = "return:"  # carrier_reference of a return label: "return:<return id>"


class _Voidable(Protocol):
    """A ``Label`` or a ``PurchasedLabel``: what ``cancel_label`` needs of either."""

    @property
    def tracking_number(self) -> str: ...

    @property
    def carrier_reference(self) -> str | None: ...


def make_carrier(settings: Mapping[str, Any], context: PluginContext) -> SendcloudCarrier:
    """The factory the plugin registers: validate ``settings``, bind the core's client."""
    parsed = SendcloudSettings.from_mapping(settings)
    log = context.log.getChild(CARRIER)
    client = SendcloudClient(
        context.client,
        parsed.base_url,
        parsed.public_key,
        parsed.secret_key,
        partner_id=parsed.partner_id,
        timeout=parsed.timeout_s,
        log=log,
    )
    return SendcloudCarrier(parsed, client, log=log)


def _rejected(message: str, code: str, status_code: int | None = None) -> CarrierError:
    return CarrierError(CARRIER, "rejected", message, code=code, status_code=status_code)


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _status_code(parcel: Mapping[str, Any]) -> str:
    return str((parcel.get("status") or {}).get("code") or "").upper()


def _cancelled(parcel: Mapping[str, Any]) -> bool:
    return "CANCEL" in _status_code(parcel)


class SendcloudCarrier:
    """Labels, returns, rates, cancellation, pickups and tracking on Sendcloud."""

    name = CARRIER

    def __init__(
        self,
        settings: SendcloudSettings,
        client: SendcloudClient,
        *,
        log: logging.Logger | None = None,
    ) -> None:
        self.settings = settings
        self.client = client
        # Ids only (keys, order and shipment ids, tracking numbers): never names or addresses.
        self.log = log or logging.getLogger(f"fulfil.plugin.{CARRIER}")

    def __repr__(self) -> str:
        return f"SendcloudCarrier(base_url={self.settings.base_url!r})"

    # --- labels ---------------------------------------------------------------------------

    def buy_label(self, request: LabelRequest) -> PurchasedLabel:
        """Create and announce a shipment (or return) and download its label."""
        if request.is_return:
            return self._buy_return(request)
        key = request.idempotency_key
        label_format = self._format(request)
        body = mapping.shipment_body(
            request,
            service=self._service(request, self.settings.shipping_option),
            label_format=label_format,
            contract_id=self.settings.contract_id,
            default_hs_code=self.settings.default_hs_code,
        )
        response = self.client.post("/shipments/announce", body, purchase=True, allow=(409,))
        shipment = _json(response).get("data")
        if response.status_code == 409:
            # The key was used before: Sendcloud answers with that shipment (or we ask).
            if not (isinstance(shipment, Mapping) and shipment.get("parcels")):
                shipment = self._shipment_by_reference(key)
            if shipment is None:
                raise error_for(response, "POST /shipments/announce")
            self.log.info("key %s was used before: shipment %s", key, shipment.get("id"))
        elif not isinstance(shipment, Mapping):
            raise CarrierError(
                CARRIER,
                "unknown_outcome",
                f"Sendcloud answered {response.status_code} without the shipment for key {key}",
                status_code=response.status_code,
            )
        else:
            self.log.info(
                "created shipment %s (key %s, order %s, shipment %s)",
                shipment.get("id"),
                key,
                request.order_id,
                request.shipment_id,
            )
        return self._after_purchase(shipment, label_format, key)

    def find_label(self, idempotency_key: str) -> PurchasedLabel | None:
        """The label of the shipment created under ``idempotency_key``, cancelled or not."""
        shipment = self._shipment_by_reference(idempotency_key)
        if shipment is None:
            return None
        details = shipment.get("label_details") or {}
        label_format = mapping.label_format(details.get("mime_type")) or self.settings.label_format
        self.log.info("found shipment %s for key %s", shipment.get("id"), idempotency_key)
        self._check_announced(shipment)
        return self._label(shipment, label_format)

    def quote(self, request: LabelRequest) -> list[Rate]:
        """Quotes for ``request.service``, or for every option the account offers."""
        body = mapping.rates_body(request, request.service)
        return mapping.rates(self.client.post("/shipping-options", body).json(), request.service)

    def cancel_label(self, label: _Voidable) -> None:
        """Cancel a shipment (``POST /shipments/{id}/cancel``) or a return; cancelling
        again succeeds (a retried cancel must not fail)."""
        reference = label.carrier_reference
        if reference and reference.startswith(RETURN_PREFIX):
            return self._cancel_return(reference.removeprefix(RETURN_PREFIX))
        shipment_id = reference or self._shipment_id_by_tracking(label.tracking_number)
        response = self.client.post(f"/shipments/{shipment_id}/cancel", allow=(409,))
        if response.status_code == 409:
            current = self.client.get(f"/shipments/{shipment_id}")["data"]
            if not all(_cancelled(p) for p in current.get("parcels") or [{}]):
                raise error_for(response, f"POST /shipments/{shipment_id}/cancel")
        outcome = (_json(response).get("data") or {}).get("status", "cancelled")
        self.log.info(
            "cancelled label %s (shipment %s, %s)", label.tracking_number, shipment_id, outcome
        )

    # --- pickups and tracking ---------------------------------------------------------------

    def schedule_pickup(self, request: PickupRequest) -> PickupConfirmation:
        return pickups.schedule_pickup(self.client, self.settings, request, self.log)

    def cancel_pickup(self, confirmation: PickupConfirmation) -> None:
        pickups.cancel_pickup(self.client, confirmation, self.log)

    def track(self, tracking_number: str) -> TrackingInfo:
        body = self.client.get(f"/parcels/tracking/{tracking_number}")
        return mapping.tracking(tracking_number, body)

    # --- returns ----------------------------------------------------------------------------

    def _buy_return(self, request: LabelRequest) -> PurchasedLabel:
        """``POST /returns/announce-synchronously``, then the return and its label.

        Returns cannot be looked up by their reference (the Returns API has no such
        filter), so ``find_label`` does not see them; Sendcloud refuses a reused
        ``external_reference`` instead, so a retry never buys a second return label.
        """
        key = request.idempotency_key
        service = self._service(
            request, self.settings.return_shipping_option or self.settings.shipping_option
        )
        body = mapping.return_body(
            request,
            service=service,
            contract_id=self.settings.contract_id,
            default_hs_code=self.settings.default_hs_code,
        )
        label_format = self._format(request)
        response = self.client.post("/returns/announce-synchronously", body, purchase=True)
        created = _json(response)
        return_id, parcel_id = created.get("return_id"), created.get("parcel_id")
        if return_id is None or parcel_id is None:
            raise CarrierError(
                CARRIER,
                "unknown_outcome",
                f"Sendcloud answered {response.status_code} without the return for key {key}",
                status_code=response.status_code,
            )
        self.log.info("created return %s (key %s, order %s)", return_id, key, request.order_id)
        try:
            found = self.client.get(f"/returns/{return_id}")
            details = found.get("data", found)
            if not details.get("tracking_number"):
                raise CarrierError(CARRIER, "unavailable", "it is not announced yet")
            link = (details.get("label") or {}).get("label_printer") or details.get("label_url")
            document, url = self._document([parcel_id], label_format, link)
        except CarrierError as error:
            raise self._bought_but(f"return {return_id}", key, error) from None
        cost = details.get("label_cost") or {}
        return PurchasedLabel(
            tracking_number=details["tracking_number"],
            format=label_format,
            cost=self._money(cost.get("value"), cost.get("currency")),
            service=(details.get("shipping_option") or {}).get("code") or service,
            document=document,
            url=url,
            tracking_url=details.get("tracking_url"),
            carrier_reference=f"{RETURN_PREFIX}{return_id}",
        )

    def _cancel_return(self, return_id: str) -> None:
        response = self.client.request("PATCH", f"/returns/{return_id}/cancel", allow=(409,))
        if response.status_code == 409:
            current = self.client.get(f"/returns/{return_id}")
            history = current.get("data", current).get("status_history") or [{}]
            if "cancel" not in str(history[-1].get("parent_status", "")).lower():
                raise error_for(response, f"PATCH /returns/{return_id}/cancel")
        self.log.info("cancelled return %s", return_id)

    # --- helpers ----------------------------------------------------------------------------

    def _service(self, request: LabelRequest, default: str | None) -> str:
        service = request.service or default
        if not service:
            raise CarrierError(
                CARRIER,
                "validation",
                "no shipping option: name one as the routing rule's service or set "
                "shipping_option in the sendcloud settings",
                field="service",
            )
        return service

    def _format(self, request: LabelRequest) -> str:
        # The core asks for PDF unless told otherwise; the merchant's setting decides then.
        wanted = request.label_format.upper()
        chosen = wanted if wanted != "PDF" else self.settings.label_format
        if chosen not in mapping.MIME_TYPES:
            raise CarrierError(
                CARRIER, "validation", f"Sendcloud has no {chosen} labels", field="label_format"
            )
        return chosen

    def _money(self, value: Any, currency: Any) -> Money:
        if value is None:
            # Sendcloud invoices labels afterwards: the purchase answer carries no price.
            return Money(Decimal("0"), self.settings.currency)
        return Money(Decimal(str(value)), str(currency or self.settings.currency))

    def _shipment_by_reference(self, key: str) -> Mapping[str, Any] | None:
        response = self.client.request(
            "GET", "/shipments", params={"external_reference_id": key}, allow=(404,)
        )
        if response.status_code == 404:
            return None
        found = [s for s in _json(response).get("data") or [] if s.get("parcels")]
        return found[0] if found else None

    def _shipment_id_by_tracking(self, tracking_number: str) -> str:
        found = self.client.get("/shipments", params={"tracking_number": tracking_number})
        shipments = found.get("data") or []
        if not shipments:
            raise _rejected(
                f"no Sendcloud shipment has tracking number {tracking_number}", "not_found", 404
            )
        return str(shipments[0]["id"])

    def _bought_but(self, what: str, key: str, error: CarrierError) -> CarrierError:
        # Sendcloud made the label: whatever failed next, the saga must reconcile by the
        # key (never fall back to another carrier, never buy under a new key).
        return CarrierError(
            CARRIER,
            "unknown_outcome",
            f"{what} was created under key {key} but its label could not be fetched: "
            f"{error.message}",
            code=error.code,
            status_code=error.status_code,
        )

    def _after_purchase(self, shipment: Any, label_format: str, key: str) -> PurchasedLabel:
        self._check_announced(shipment)
        try:
            return self._label(shipment, label_format)
        except CarrierError as error:
            raise self._bought_but(f"shipment {shipment.get('id')}", key, error) from None

    def _check_announced(self, shipment: Mapping[str, Any]) -> None:
        """Raise ``rejected`` when the carrier refused the announcement: no label exists."""
        parcels = shipment.get("parcels") or []
        failed = [p for p in parcels if _status_code(p) == "ANNOUNCEMENT_FAILED"]
        errors = shipment.get("errors") or []
        if failed or (errors and not any(p.get("tracking_number") for p in parcels)):
            first = errors[0] if errors else {}
            reason = first.get("detail") or (failed[0].get("status") or {}).get("message")
            raise CarrierError(
                CARRIER,
                "rejected",
                f"the carrier refused shipment {shipment.get('id')}: "
                f"{reason or 'announcement failed'}",
                code=first.get("code") or "announcement_failed",
            )

    def _label(self, shipment: Mapping[str, Any], label_format: str) -> PurchasedLabel:
        parcels = shipment.get("parcels") or []
        if not parcels or not all(p.get("tracking_number") for p in parcels):
            raise CarrierError(
                CARRIER, "unavailable", f"shipment {shipment.get('id')} is still being announced"
            )
        first_parcel = parcels[0]
        links = [
            d.get("link")
            for d in first_parcel.get("documents") or []
            if "label" in (d.get("document_type"), d.get("type"))
        ]
        document, url = self._document(
            [p["id"] for p in parcels], label_format, links[0] if links else None
        )
        ship_with = (shipment.get("ship_with") or {}).get("properties") or {}
        return PurchasedLabel(
            tracking_number=first_parcel["tracking_number"],
            format=label_format,
            cost=self._money(None, None),
            service=ship_with.get("shipping_option_code") or "",
            document=document,
            url=url,
            tracking_url=first_parcel.get("tracking_url"),
            carrier_reference=str(shipment.get("id")),
        )

    def _document(
        self, parcel_ids: list[Any], label_format: str, link: str | None
    ) -> tuple[bytes, str]:
        """The label bytes in ``label_format``: the parcel's own document link when there is
        one parcel, the bulk endpoint (one document for all) when there are several."""
        mime = mapping.MIME_TYPES[label_format]
        params: list[tuple[str, Any]] = [("dpi", mapping.DPI[label_format])]
        if len(parcel_ids) > 1:
            url = self.client.url("/parcel-documents/label")
            params = [("parcels", pid) for pid in parcel_ids]
        elif link and self.client.owns(link):
            url = link
        else:  # never send the credentials to a host that is not Sendcloud's
            url = self.client.url(f"/parcels/{parcel_ids[0]}/documents/label")
        response = self.client.request("GET", url, params=params, accept=mime)
        if not response.content or "json" in response.headers.get("Content-Type", ""):
            raise _rejected(f"Sendcloud sent no {label_format} document", "no_document")
        return response.content, url
