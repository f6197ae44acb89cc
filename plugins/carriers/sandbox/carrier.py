"""``SandboxCarrier``: an offline carrier that behaves like a real one, faults included.

Every operation first waits ``latency_ms``. Purchases and pickups are counted per
idempotency key in the ledger, then may fail as drawn in ``faults`` (429 and 503 before
anything happens; a timeout *after* the purchase was recorded, as on a real network), and
are idempotent: a key bought before returns the label bought then, never a second one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
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
from fulfil.core.models import Money
from fulfil.plugins.carriers.sandbox import identifiers
from fulfil.plugins.carriers.sandbox.faults import CARRIER, draw
from fulfil.plugins.carriers.sandbox.label_pdf import LabelContent, render_label
from fulfil.plugins.carriers.sandbox.ledger import Ledger
from fulfil.plugins.carriers.sandbox.settings import SERVICES, SandboxSettings
from fulfil.plugins.carriers.sandbox.tariff import Tariff
from fulfil.plugins.carriers.sandbox.validation import (
    check_label_request,
    check_pickup_window,
    invalid,
)

__all__ = ["SandboxCarrier", "make_carrier"]


def make_carrier(settings: Mapping[str, Any], context: PluginContext) -> SandboxCarrier:
    """The factory the plugin registers: validate ``settings``, open the ledger."""
    parsed = SandboxSettings.from_mapping(settings)
    ledger = Ledger(context.path(parsed.ledger))
    return SandboxCarrier(parsed, ledger, log=context.log.getChild(CARRIER))


def _rejected(code: str, message: str, status_code: int = 409) -> CarrierError:
    return CarrierError(CARRIER, "rejected", message, code=code, status_code=status_code)


def _fingerprint(request: LabelRequest, content: Mapping[str, Any]) -> str:
    # The purchase date is left out: the same request retried tomorrow is still the same.
    relevant = {k: v for k, v in content.items() if k != "created_on"}
    relevant.update(order_id=request.order_id, shipment_id=request.shipment_id)
    text = json.dumps(relevant, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class SandboxCarrier:
    """Implements every operation of ``fulfil.core.carriers.Carrier``."""

    name = CARRIER

    def __init__(
        self, settings: SandboxSettings, ledger: Ledger, *, log: logging.Logger | None = None
    ) -> None:
        self.settings = settings
        self.ledger = ledger
        self.tariff = Tariff.with_overrides(settings.costs)
        # Ids only (keys, order and shipment ids, tracking numbers): never names or addresses.
        self.log = log or logging.getLogger(f"fulfil.plugin.{CARRIER}")

    def __repr__(self) -> str:
        return f"SandboxCarrier(ledger={str(self.ledger.path)!r})"

    def close(self) -> None:
        """Release the ledger's pooled connections (they are reopened if used again)."""
        self.ledger.close()

    def __enter__(self) -> SandboxCarrier:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- labels ---------------------------------------------------------------------------

    def buy_label(self, request: LabelRequest) -> PurchasedLabel:
        """Buy (or, for a key seen before, return again) the label for ``request``."""
        key = request.idempotency_key
        self._wait()
        attempt = self.ledger.record_attempt(key)
        faults = draw(self.settings, key, attempt)
        faults.raise_before_processing(self.settings)
        service = check_label_request(request)
        content = self._content(request, service).to_mapping()
        stored, created = self.ledger.record_purchase(
            {
                "idempotency_key": key,
                "order_id": request.order_id,
                "shipment_id": request.shipment_id,
                "tracking_number": content["tracking_number"],
                "service": service,
                "cost": str(self._cost(request, service)),
                "currency": self.settings.currency,
                "is_return": request.is_return,
                "fingerprint": _fingerprint(request, content),
                "label": content,
            }
        )
        if created:
            self.log.info(
                "bought label %s (key %s, order %s, shipment %s, attempt %d)",
                stored["tracking_number"],
                key,
                request.order_id,
                request.shipment_id,
                attempt,
            )
        else:
            self._check_replay(stored, request, content, attempt)
        faults.raise_after_processing()
        return self._label(stored)

    def find_label(self, idempotency_key: str) -> PurchasedLabel | None:
        """The label bought under ``idempotency_key``, voided or not; ``None`` if none."""
        self._wait()
        stored = self.ledger.purchase(idempotency_key)
        return self._label(stored) if stored else None

    def quote(self, request: LabelRequest) -> list[Rate]:
        """Rates for ``request.service``, or for every service when it is ``None``."""
        self._wait()
        service = check_label_request(request)
        services = (service,) if request.service else SERVICES
        origin, destination = request.sender.country, request.recipient.country
        return [
            Rate(
                service=s,
                cost=Money(self._cost(request, s), self.settings.currency),
                days=self.tariff.days(s, origin, destination),
            )
            for s in services
        ]

    def cancel_label(self, label: PurchasedLabel) -> None:
        """Void ``label``; voiding it again is a no-op (a retried cancel must succeed)."""
        self._wait()
        stored = self.ledger.void(label.tracking_number)
        if stored is None:
            raise _rejected(
                "label_not_found", f"no label {label.tracking_number} was sold", status_code=404
            )
        self.log.info("voided label %s (key %s)", label.tracking_number, stored["idempotency_key"])

    # --- pickups --------------------------------------------------------------------------

    def schedule_pickup(self, request: PickupRequest) -> PickupConfirmation:
        """Book a pickup for the labels in ``request``; a key seen before returns its booking."""
        key = request.idempotency_key
        self._wait()
        attempt = self.ledger.record_attempt(key)
        faults = draw(self.settings, key, attempt)
        faults.raise_before_processing(self.settings)
        # A replay is answered from the booking, not re-validated: a label voided since
        # must not turn the retry of a pickup that exists into a refusal.
        if self.ledger.pickup(key) is None:
            self._check_pickup(request)
        stored, created = self.ledger.record_pickup(
            key,
            identifiers.pickup_confirmation(key),
            request.day.isoformat(),
            list(request.tracking_numbers),
        )
        if stored["cancelled"]:
            raise _rejected("pickup_cancelled", f"pickup {stored['confirmation']} was cancelled")
        if created:
            self.log.info(
                "booked pickup %s for %s (%d labels, key %s)",
                stored["confirmation"],
                stored["day"],
                len(request.tracking_numbers),
                key,
            )
        faults.raise_after_processing()
        return PickupConfirmation(
            stored["confirmation"], carrier_reference=identifiers.carrier_reference(key)
        )

    def cancel_pickup(self, confirmation: PickupConfirmation) -> None:
        """Cancel a booked pickup; cancelling it again is a no-op."""
        self._wait()
        if self.ledger.cancel_pickup(confirmation.confirmation) is None:
            raise _rejected(
                "pickup_not_found",
                f"no pickup {confirmation.confirmation} was booked",
                status_code=404,
            )
        self.log.info("cancelled pickup %s", confirmation.confirmation)

    # --- tracking -------------------------------------------------------------------------

    def track(self, tracking_number: str) -> TrackingInfo:
        """``pre_transit`` until the parcel moves (the sandbox's never do), or ``cancelled``."""
        self._wait()
        stored = None
        if identifiers.is_tracking_number(tracking_number):
            stored = self.ledger.purchase_by_tracking(tracking_number)
        if stored is None:
            raise invalid(
                "tracking_number",
                "unknown_tracking_number",
                f"{tracking_number!r} is not a tracking number the sandbox issued",
            )
        events: list[Mapping[str, Any]] = [
            {"at": stored["created_at"], "status": "pre_transit", "description": "label created"}
        ]
        for pickup in self.ledger.pickups_for(tracking_number):
            if not pickup["cancelled"]:
                events.append(
                    {
                        "at": pickup["created_at"],
                        "status": "pre_transit",
                        "description": f"pickup {pickup['confirmation']} booked for "
                        f"{pickup['day']}",
                    }
                )
        status = "cancelled" if stored["voided"] else "pre_transit"
        if stored["voided"]:
            events.append(
                {"at": stored["voided_at"], "status": "cancelled", "description": "label voided"}
            )
        return TrackingInfo(tracking_number, status, tuple(events))

    # --- helpers --------------------------------------------------------------------------

    def _wait(self) -> None:
        if self.settings.latency_ms > 0:
            time.sleep(self.settings.latency_ms / 1000)

    def _cost(self, request: LabelRequest, service: str) -> Decimal:
        return self.tariff.cost(service, (p.weight_g for p in request.parcels))

    def _content(self, request: LabelRequest, service: str) -> LabelContent:
        sender, recipient = request.sender, request.recipient
        if request.is_return:
            sender, recipient = recipient, sender
        return LabelContent(
            tracking_number=identifiers.tracking_number(request.idempotency_key),
            service=service,
            order_number=request.order_number,
            sender=sender,
            recipient=recipient,
            weights_g=tuple(p.weight_g for p in request.parcels),
            created_on=datetime.now(UTC).date().isoformat(),
            is_return=request.is_return,
            customs_lines=len(request.customs),
        )

    def _check_replay(
        self,
        stored: Mapping[str, Any],
        request: LabelRequest,
        content: Mapping[str, Any],
        attempt: int,
    ) -> None:
        key = request.idempotency_key
        if stored["voided"]:
            raise _rejected(
                "label_voided",
                f"the label bought under key {key} ({stored['tracking_number']}) was voided; "
                "buy a new one under a new key",
            )
        if stored["fingerprint"] != _fingerprint(request, content):
            # Stripe would refuse a key reused with other parameters; the sandbox answers
            # with what it sold under that key (still never a second label) and makes the
            # caller's bug visible in the log.
            self.log.warning(
                "key %s was reused with a different request; returning the label %s "
                "bought under it",
                key,
                stored["tracking_number"],
            )
        self.log.info(
            "returned label %s bought before (key %s, attempt %d)",
            stored["tracking_number"],
            key,
            attempt,
        )

    def _check_pickup(self, request: PickupRequest) -> None:
        check_pickup_window(request)
        for index, tracking_number in enumerate(request.tracking_numbers):
            field = f"tracking_numbers[{index}]"
            stored = self.ledger.purchase_by_tracking(tracking_number)
            if stored is None:
                raise invalid(
                    field, "unknown_tracking_number", f"{field} {tracking_number} was never sold"
                )
            if stored["voided"]:
                raise invalid(field, "label_voided", f"{field} {tracking_number} was voided")

    def _label(self, stored: Mapping[str, Any]) -> PurchasedLabel:
        # Regenerated from the stored content: same content, same bytes (see label_pdf).
        content = LabelContent.from_mapping(stored["label"])
        return PurchasedLabel(
            tracking_number=stored["tracking_number"],
            format="PDF",
            cost=Money(Decimal(stored["cost"]), stored["currency"]),
            service=stored["service"],
            document=render_label(content),
            tracking_url=identifiers.TRACKING_URL.format(stored["tracking_number"]),
            carrier_reference=identifiers.carrier_reference(stored["idempotency_key"]),
        )
