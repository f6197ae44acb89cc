"""``ShippoCarrier``: fulfil's carrier operations on the Shippo API.

Buying a label (https://docs.goshippo.com/docs/guides_general/generate_shipping_label/):

- with ``carrier_account`` and a service level known, one call: ``POST /transactions/``
  with the shipment, ``carrier_account`` and ``servicelevel_token`` (instalabel);
- otherwise two: ``POST /shipments/`` returns the rates, the rate of the requested service
  (or the cheapest) is bought with ``POST /transactions/`` ``{rate, label_file_type,
  async: false, metadata}``.

A parcel leaving the customs union first gets ``POST /customs/declarations/``; its
``object_id`` goes in the shipment. Only the transaction POST spends money, so only a
timeout or reset *after it was sent* is an unknown outcome.

Idempotency: Shippo documents no idempotency key on these endpoints, so the key travels
as the transaction's ``metadata`` (the shipment and customs declaration carry it too), and
``find_label(key)`` reconciles by listing recent transactions (``GET /transactions/``) and
matching it. The ledger in the plugin's data folder (see ``ledger``) remembers what each
key bought, for every worker sharing the folder, and which keys were sent without an
answer (timeout, reset, 5xx, killed worker): those are looked up before being bought.
"""

from __future__ import annotations

import logging
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
from fulfil.plugins.carriers.shippo import mapping
from fulfil.plugins.carriers.shippo.api import CARRIER, ShippoAPI, transaction_failed
from fulfil.plugins.carriers.shippo.ledger import Ledger
from fulfil.plugins.carriers.shippo.settings import ShippoSettings

__all__ = ["ShippoCarrier", "make_carrier"]

_BOUGHT = frozenset({"SUCCESS", "REFUNDED", "REFUNDPENDING", "REFUNDREJECTED"})
_PENDING = frozenset({"QUEUED", "WAITING"})
_REFUNDED = frozenset({"REFUNDED", "REFUNDPENDING"})


def make_carrier(settings: Mapping[str, Any], context: PluginContext) -> ShippoCarrier:
    """The factory the plugin registers: validate ``settings``, bind the injected client."""
    parsed = ShippoSettings.from_mapping(settings)
    api = ShippoAPI(context.client, parsed.api_token, parsed.base_url, parsed.api_version)
    ledger = Ledger(context.path(parsed.ledger))
    return ShippoCarrier(parsed, api, ledger, log=context.log.getChild(CARRIER))


def _invalid(field: str, code: str, message: str) -> CarrierError:
    return CarrierError(CARRIER, "validation", message, code=code, field=field)


def _messages(data: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [m for m in data.get("messages") or () if isinstance(m, Mapping)]


class ShippoCarrier:
    """Implements every operation of ``fulfil.core.carriers.Carrier`` against Shippo."""

    name = CARRIER

    def __init__(
        self,
        settings: ShippoSettings,
        api: ShippoAPI,
        ledger: Ledger,
        *,
        log: logging.Logger | None = None,
    ) -> None:
        self.settings = settings
        self.api = api
        self.ledger = ledger
        # Ids only (keys, Shippo object ids, tracking numbers): never addresses or the token.
        self.log = log or logging.getLogger(f"fulfil.plugin.{CARRIER}")

    def __repr__(self) -> str:
        return f"ShippoCarrier(base_url={self.api.base_url!r})"

    # --- labels ---------------------------------------------------------------------------

    def buy_label(self, request: LabelRequest) -> PurchasedLabel:
        """Buy the label for ``request``; a key bought before returns that label."""
        key = request.idempotency_key
        known = self.ledger.purchase(key)
        if known is not None:
            return known
        if self.ledger.is_sending(key):
            found = self.find_label(key)  # sent before, answer never came: ask first
            if found is not None:
                return found
        if not request.parcels:
            raise _invalid("parcels", "no_parcels", "parcels is empty; a label needs one")
        customs_id = self._customs(request) if request.customs else None
        chosen: Mapping[str, Any] | None = None
        service = request.service or self.settings.servicelevel
        file_type = mapping.label_file_type(request.label_format, self.settings.label_file_type)
        if self.settings.carrier_account and service:
            body: dict[str, Any] = {
                "shipment": mapping.shipment_body(request, customs_declaration_id=customs_id),
                "carrier_account": self.settings.carrier_account,
                "servicelevel_token": service,
            }
        else:
            shipment = self.api.post(
                "/shipments/",
                mapping.shipment_body(
                    request,
                    customs_declaration_id=customs_id,
                    carrier_account=self.settings.carrier_account,
                ),
            )
            chosen = self._choose_rate(shipment, service)
            body = {"rate": chosen["object_id"]}
        body["label_file_type"] = file_type
        body["metadata"] = mapping.metadata_for(key)
        body["async"] = False
        transaction = self._purchase(key, body)
        try:
            label = self._label(transaction, fallback_format=file_type, rate=chosen)
        except CarrierError as error:
            raise CarrierError(
                CARRIER,
                "unknown_outcome",
                f"transaction {transaction.get('object_id')} bought the label but it could "
                f"not be read back: {error.message}",
                code=error.code,
            ) from None
        self.ledger.record_purchase(key, label)
        self.log.info(
            "bought label %s (transaction %s, key %s, order %s, shipment %s)",
            label.tracking_number,
            transaction.get("object_id"),
            key,
            request.order_id,
            request.shipment_id,
        )
        return label

    def find_label(self, idempotency_key: str) -> PurchasedLabel | None:
        """The label bought under ``idempotency_key`` (refunded or not), or ``None``.

        Raises ``CarrierError`` (unknown_outcome) while Shippo still processes it."""
        known = self.ledger.purchase(idempotency_key)
        if known is not None:
            return known
        wanted = mapping.metadata_for(idempotency_key)
        matches = [t for t in self._recent_transactions() if t.get("metadata") == wanted]
        bought = [t for t in matches if t.get("status") in _BOUGHT]
        if bought:
            label = self._label(bought[0], fallback_format=self.settings.label_file_type)
            self.ledger.record_purchase(idempotency_key, label)
            self.log.info(
                "found label %s bought under key %s (transaction %s)",
                label.tracking_number,
                idempotency_key,
                bought[0].get("object_id"),
            )
            return label
        if any(t.get("status") in _PENDING for t in matches):
            raise CarrierError(
                CARRIER,
                "unknown_outcome",
                f"the purchase under key {idempotency_key} is still being processed",
                code="QUEUED",
            )
        self.ledger.clear_sending(idempotency_key)  # nothing was bought: buying is safe
        return None

    def quote(self, request: LabelRequest) -> list[Rate]:
        """Rates for ``request.service`` (or the default service level), else every rate."""
        shipment = self.api.post(
            "/shipments/",
            mapping.shipment_body(request, carrier_account=self.settings.carrier_account),
        )
        rates = [rate for rate, _ in mapping.rates_from(shipment)]
        service = request.service or self.settings.servicelevel
        if service is None:
            return rates
        chosen = [r for r in rates if r.service == service]
        if not chosen:
            raise self._no_rate(shipment, service)
        return chosen

    def cancel_label(self, label: Label | PurchasedLabel) -> None:
        """Refund (void) a label: ``POST /refunds/``. A label refunded already is left alone,
        so a retried cancel succeeds without a second refund request."""
        transaction_id = label.carrier_reference
        if not transaction_id:
            raise CarrierError(
                CARRIER,
                "rejected",
                f"label {label.tracking_number} has no Shippo transaction id to refund",
                code="no_transaction",
            )
        transaction = self.api.get(f"/transactions/{transaction_id}")
        if transaction.get("status") in _REFUNDED:
            self.log.info("label %s was refunded already", label.tracking_number)
            return
        refund = self.api.post("/refunds/", {"transaction": transaction_id, "async": False})
        if refund.get("status") == "ERROR":
            raise CarrierError(
                CARRIER,
                "rejected",
                f"Shippo refused the refund of label {label.tracking_number}",
                code="refund_error",
            )
        self.log.info(
            "refund %s requested for label %s (transaction %s, status %s)",
            refund.get("object_id"),
            label.tracking_number,
            transaction_id,
            refund.get("status"),
        )

    # --- pickups --------------------------------------------------------------------------

    def schedule_pickup(self, request: PickupRequest) -> PickupConfirmation:
        """Book a pickup for the labels in ``request`` (``POST /pickups/``)."""
        key = request.idempotency_key
        known = self.ledger.pickup(key)
        if known is not None:
            return known
        if not self.settings.carrier_account:
            raise _invalid(
                "carrier_account",
                "carrier_account_required",
                "Shippo books pickups for one carrier account: set carrier_account (a USPS "
                "or DHL Express account)",
            )
        if not request.carrier_references:
            raise _invalid(
                "carrier_references",
                "no_transactions",
                "a Shippo pickup needs the transactions of the labels it collects",
            )
        try:
            body = mapping.pickup_body(
                request,
                carrier_account=self.settings.carrier_account,
                timezone=self.settings.pickup_timezone,
                location_type=self.settings.pickup_location_type,
                instructions=self.settings.pickup_instructions,
            )
        except ValueError:
            raise _invalid(
                "window_start",
                "invalid_time",
                f"pickup window {request.window_start}-{request.window_end} is not HH:MM",
            ) from None
        pickup = self.api.post("/pickups/", body, purchase=True)
        if pickup.get("status") == "ERROR":
            text = "; ".join(str(m) for m in pickup.get("messages") or ()) or "pickup refused"
            raise _invalid("pickup", "pickup_error", text)
        confirmation = PickupConfirmation(
            confirmation=str(pickup.get("confirmation_code") or pickup.get("object_id")),
            carrier_reference=pickup.get("object_id"),
        )
        self.ledger.record_pickup(key, confirmation)
        self.log.info(
            "booked pickup %s (%s, key %s, %d labels)",
            confirmation.confirmation,
            pickup.get("object_id"),
            key,
            len(request.carrier_references),
        )
        return confirmation

    def cancel_pickup(self, confirmation: PickupConfirmation) -> None:
        """Shippo cannot cancel a pickup through its API: the carrier must be called."""
        raise CarrierError(
            CARRIER,
            "rejected",
            f"Shippo cannot cancel pickups through its API; ask the carrier (USPS or DHL "
            f"Express) to cancel confirmation {confirmation.confirmation}",
            code="pickup_cancel_unsupported",
        )

    # --- tracking -------------------------------------------------------------------------

    def track(self, tracking_number: str) -> TrackingInfo:
        """``GET /tracks/{carrier}/{tracking_number}``, statuses in fulfil's words."""
        carrier = (
            self.ledger.carrier_of(tracking_number)
            or self.settings.tracking_carrier
            or mapping.carrier_token(self.settings.servicelevel)
        )
        if carrier is None:
            raise _invalid(
                "tracking_carrier",
                "carrier_unknown",
                f"the carrier of {tracking_number} is not known: set tracking_carrier",
            )
        data = self.api.get(f"/tracks/{carrier}/{tracking_number}")
        current = data.get("tracking_status") or {}
        events = tuple(mapping.tracking_event(e) for e in data.get("tracking_history") or ())
        status = mapping.tracking_status(
            current.get("status"), (current.get("substatus") or {}).get("code")
        )
        return TrackingInfo(tracking_number, status, events)

    # --- helpers --------------------------------------------------------------------------

    def _customs(self, request: LabelRequest) -> str:
        declaration = self.api.post(
            "/customs/declarations/",
            mapping.customs_declaration(
                request.customs,
                sender=request.sender,
                key=request.idempotency_key,
                incoterm=self.settings.incoterm,
                signer=self.settings.customs_signer,
            ),
        )
        return str(declaration["object_id"])

    def _choose_rate(self, shipment: Mapping[str, Any], service: str | None) -> Mapping[str, Any]:
        rates = mapping.rates_from(shipment)
        if service is not None:
            rates = [(rate, data) for rate, data in rates if rate.service == service]
        if not rates:
            raise self._no_rate(shipment, service)
        return min(rates, key=lambda pair: pair[0].cost.amount)[1]

    def _no_rate(self, shipment: Mapping[str, Any], service: str | None) -> CarrierError:
        offered = sorted({rate.service for rate, _ in mapping.rates_from(shipment)})
        notes = "; ".join(
            f"{m.get('source', 'Shippo')}: {m.get('text')}" for m in _messages(shipment)
        )
        if service is None:
            message = "Shippo returned no rate for this shipment"
        else:
            message = f"no rate for service {service!r}; offered: {', '.join(offered) or 'none'}"
        return _invalid("service", "no_rate", f"{message}{'; ' + notes if notes else ''}")

    def _purchase(self, key: str, body: Mapping[str, Any]) -> Mapping[str, Any]:
        """POST the transaction; the key stays marked "sending" unless the answer proves that
        nothing was bought (a 5xx from a gateway may hide a purchase that happened)."""
        self.ledger.mark_sending(key)
        try:
            transaction: Mapping[str, Any] = self.api.post("/transactions/", body, purchase=True)
        except CarrierError as error:
            in_doubt = error.kind == "unknown_outcome" or (
                error.kind == "unavailable" and error.status_code is not None
            )
            if not in_doubt:
                self.ledger.clear_sending(key)
            raise
        status = transaction.get("status")
        if status == "SUCCESS":
            return transaction
        if status in _PENDING:
            raise CarrierError(
                CARRIER,
                "unknown_outcome",
                f"transaction {transaction.get('object_id')} is still {status}",
                code=str(status),
            )
        self.ledger.clear_sending(key)  # ERROR: the carrier refused, nothing was bought
        raise transaction_failed(transaction)

    def _label(
        self,
        transaction: Mapping[str, Any],
        *,
        fallback_format: str,
        rate: Mapping[str, Any] | None = None,
    ) -> PurchasedLabel:
        """The label a successful transaction bought; its rate is the transaction's (an
        object or an id to look up) or the one chosen before buying."""
        found = transaction.get("rate")
        if isinstance(found, Mapping):
            rate = found
        elif rate is None:
            rate = self.api.get(f"/rates/{found}") if found else {}
        service, cost, _ = mapping.rate_from(rate)
        tracking_number = str(transaction.get("tracking_number") or "")
        label_url = transaction.get("label_url")
        document = None
        if label_url:
            try:
                document = self.api.download(str(label_url))
            except CarrierError as error:
                # Bought all the same: keep the URL, never turn this into a second purchase.
                self.log.warning(
                    "label %s bought but its file could not be fetched: %s",
                    tracking_number,
                    error.message,
                )
        carrier = mapping.carrier_token(service)
        if carrier and tracking_number:
            self.ledger.record_carrier(tracking_number, carrier)
        return PurchasedLabel(
            tracking_number=tracking_number,
            format=mapping.fulfil_format(transaction.get("label_file_type"), fallback_format),
            cost=cost,
            service=service or self.settings.servicelevel or "",
            document=document,
            url=str(label_url) if label_url else None,
            tracking_url=transaction.get("tracking_url_provider") or None,
            carrier_reference=transaction.get("object_id"),
        )

    def _recent_transactions(self) -> list[Mapping[str, Any]]:
        found: list[Mapping[str, Any]] = []
        for page in range(1, self.settings.reconcile_pages + 1):
            data = self.api.get("/transactions/", params={"results": 100, "page": page})
            found.extend(t for t in data.get("results") or () if isinstance(t, Mapping))
            if not data.get("next"):
                break
        return found
