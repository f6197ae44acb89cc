"""The conformance suites every carrier and notifier plugin passes, in-tree or not.

Subclass one in a test module whose class name starts with ``Test``; pytest then runs the
whole contract against your plugin::

    from fulfil.testing.conformance import CarrierConformance, secret_value

    class TestAcmeConformance(CarrierConformance):
        @pytest.fixture
        def plugin(self):
            return fulfil_acme                    # the module with the @hookimpl

        @pytest.fixture
        def fake(self):
            with FakeAcme(api_key=secret_value("ACME_API_KEY")) as fake:
                yield fake                        # a started FakeService, or None

        @pytest.fixture
        def settings(self, fake):
            return {"api_key": "env:ACME_API_KEY", "base_url": fake.url}

        def sample_label_request(self):           # optional: a request your fake accepts
            return LabelRequest(...)

What you provide: the fixtures ``plugin``, ``fake`` and ``settings`` (write secrets as
``env:`` references: the suite sets each to ``secret_value(NAME)``, which the fake should
expect, and looks for it in every log record, output and error text).

Hooks you may override, with their defaults:

- ``carrier_name`` / ``notifier_name``: which one to test when the plugin registers several;
- ``sample_label_request()``, ``invalid_label_request()`` (a 0 g parcel),
  ``sample_pickup_request(labels)``; ``sample_message(channel)``, ``invalid_message(channel)``
  (an unusable recipient); ``claims_idempotency`` (notifiers, True);
- ``sales(fake)`` / ``deliveries(fake)``: what the fake sold or delivered, counted from its
  ``sales()``/``sold`` or ``deliveries()``/``delivered``/``messages``/``sent``; the suite
  proves "once" from there, the service's side;
- ``error_response(fault)``: the provider's own 429 (with ``Retry-After: RETRY_AFTER``) and
  503 bodies; ``purchase_request = (method, path regex)``: the request faults are aimed at
  when an operation makes several; ``provoke(fault, fake, settings)``: how to cause a fault
  when the fake is not a ``FakeService``;
- ``secret(name)`` / ``wrong_secret(name)``: secret values of a particular form.

Every failure says what is wrong in plain words, e.g. "declares 'pickups' but has no
schedule_pickup" or "buying twice with the same idempotency_key sold 2 labels".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, timedelta
from decimal import Decimal
from functools import partial
from typing import Any, ClassVar

import attrs
import pytest
from fulfil.core.carriers import (
    Capability,
    LabelRequest,
    PickupConfirmation,
    PickupRequest,
    PurchasedLabel,
    Rate,
    TrackingInfo,
)
from fulfil.core.errors import CarrierError
from fulfil.core.models import Address, Label, Money, Parcel
from fulfil.testing._contract import (
    FAULTS,
    HANG_SECONDS,
    RETRY_AFTER,
    SHORT_TIMEOUT,
    Builder,
    PluginSuite,
    ResponseRecorder,
    SettingsSchemaChecks,
    counted,
    describe_exception,
    fail,
    generic_message,
    provider_sentences,
    secret_value,
)
from fulfil.testing._notifier_suite import NotifierConformance

__all__ = [
    "FAULTS",
    "HANG_SECONDS",
    "RETRY_AFTER",
    "SHORT_TIMEOUT",
    "CarrierConformance",
    "NotifierConformance",
    "secret_value",
]

OPERATIONS: dict[Capability, tuple[str, ...]] = {
    Capability.LABELS: ("buy_label", "find_label"),
    Capability.RATES: ("quote",),
    Capability.CANCEL: ("cancel_label",),
    Capability.RETURNS: ("buy_label",),
    Capability.PICKUPS: ("schedule_pickup", "cancel_pickup"),
    Capability.TRACKING: ("track",),
}
TRACKING_STATUSES = frozenset(
    {
        "pre_transit",
        "in_transit",
        "out_for_delivery",
        "delivered",
        "returned",
        "failure",
        "cancelled",
    }
)
LABEL_FORMATS = frozenset({"PDF", "ZPL", "PNG"})
_COUNTRY = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _missing(carrier: Any, capability: Capability) -> list[str]:
    return [op for op in OPERATIONS[capability] if not callable(getattr(carrier, op, None))]


def _label(carrier_name: str, bought: PurchasedLabel) -> Label:
    """What the engine stores and later hands back to ``cancel_label``."""
    return Label(
        carrier=carrier_name,
        service=bought.service,
        tracking_number=bought.tracking_number,
        format=bought.format,
        cost=bought.cost,
        carrier_reference=bought.carrier_reference,
        url=bought.url,
        tracking_url=bought.tracking_url,
    )


class CarrierConformance(PluginSuite, SettingsSchemaChecks):
    """The carrier contract (DESIGN.md section 5). Subclass it as ``Test...``."""

    kind: ClassVar[str] = "carrier"
    carrier_name: ClassVar[str | None] = None

    # --- hooks an author may override ---------------------------------------------------

    def sample_label_request(self) -> LabelRequest:
        """A purchase the fake accepts: one 1 kg parcel from Paris to Berlin."""
        return LabelRequest(
            idempotency_key="ord_conformance:shp_1:1",
            order_id="ord_conformance",
            order_number=1001,
            shipment_id="shp_1",
            sender=Address(
                name="Atelier Dupont",
                company="Dupont SARL",
                line1="12 rue de la Paix",
                city="Paris",
                postal_code="75002",
                country="FR",
                phone="+33142685300",
            ),
            recipient=Address(
                name="Zoe Muller",
                line1="Hauptstrasse 5",
                city="Berlin",
                postal_code="10115",
                country="DE",
                phone="+4930123456",
            ),
            parcels=(Parcel(weight_g=1000),),
            service=None,
            recipient_email="zoe@example.org",
        )

    def invalid_label_request(self) -> LabelRequest | None:
        """A purchase the service refuses as invalid (default: a parcel weighing 0 g)."""
        return attrs.evolve(
            self.sample_label_request(),
            idempotency_key="ord_conformance:shp_invalid:1",
            parcels=(Parcel(weight_g=0),),
        )

    def sample_pickup_request(self, labels: Sequence[PurchasedLabel]) -> PickupRequest:
        """A pickup of ``labels`` at the sender's address on the next weekday."""
        day = date.today() + timedelta(days=1)
        while day.weekday() >= 5:
            day += timedelta(days=1)
        request = self.sample_label_request()
        return PickupRequest(
            idempotency_key=f"pickup:conformance:{day.isoformat()}:origin",
            day=day,
            window_start="14:00",
            window_end="18:00",
            address=request.sender,
            tracking_numbers=tuple(label.tracking_number for label in labels),
            carrier_references=tuple(lb.carrier_reference for lb in labels if lb.carrier_reference),
            parcel_count=len(labels),
            total_weight_g=sum(p.weight_g for p in request.parcels) * len(labels),
        )

    def sales(self, fake: Any) -> int | None:
        """How many labels the fake sold (``None``: unknown; tracking numbers decide)."""
        return counted(fake, ("sales", "sold"))

    # --- helpers ------------------------------------------------------------------------

    def _request(self, n: int = 0) -> LabelRequest:
        request = self.sample_label_request()
        if n == 0:
            return request
        return attrs.evolve(
            request,
            idempotency_key=f"{request.order_id}:{request.shipment_id}-{n}:1",
            shipment_id=f"{request.shipment_id}-{n}",
        )

    def _ok(self, what: str, call: Callable[..., Any], *args: Any) -> Any:
        """``call(*args)``, which must succeed."""
        try:
            return call(*args)
        except CarrierError as error:
            fail(f"{what} failed: {error} (kind {error.kind!r})")
        except Exception as error:
            fail(f"{what} raised {describe_exception(error)}")

    def _refused(self, what: str, call: Callable[..., Any], *args: Any) -> CarrierError | Any:
        """``call(*args)``'s ``CarrierError``, or its result if it did not raise."""
        try:
            return call(*args)
        except CarrierError as error:
            return error
        except Exception as error:
            fail(
                f"{what} raised {describe_exception(error)} instead of a CarrierError; map "
                "every failure to fulfil.core.errors.CarrierError with the kind that says "
                "how to react (a timeout: 'unknown_outcome')"
            )

    def _sold(self, fake: Any, before: int | None) -> int | None:
        now = self.sales(fake)
        return None if now is None or before is None else now - before

    def _require(self, declaration: Any, capability: Capability) -> None:
        if capability not in declaration.capabilities:
            pytest.skip(f"{capability.value!r} is not declared, so it is not required")

    def _check_label(self, declaration: Any, label: Any, what: str) -> PurchasedLabel:
        if not isinstance(label, PurchasedLabel):
            fail(f"{what} returned {type(label).__name__}, not a PurchasedLabel")
        problems = []
        if not (isinstance(label.tracking_number, str) and label.tracking_number.strip()):
            problems.append("it has no tracking number")
        formats = {f.upper() for f in declaration.label_formats}
        if label.format.upper() not in formats:
            problems.append(f"its format {label.format!r} is not a declared label format")
        if not isinstance(label.cost, Money) or label.cost.amount < Decimal(0):
            problems.append(f"its cost {label.cost!r} is not a Money of 0 or more")
        if label.document is None and not label.url:
            problems.append("it has neither the document bytes nor a URL to fetch them")
        pdf = label.format.upper() == "PDF"
        if pdf and label.document is not None and not label.document.startswith(b"%PDF"):
            problems.append("its PDF document does not start with %PDF")
        if declaration.services and label.service not in declaration.services:
            problems.append(f"its service {label.service!r} is not a declared service")
        if problems:
            fail(f"{what} returned a label that is not usable: " + "; ".join(problems))
        return label

    # --- registration and declaration ---------------------------------------------------

    def test_registers_a_carrier_with_a_sound_declaration(
        self, conformance_declaration: Any
    ) -> None:
        plugin = conformance_declaration
        problems = []
        if not isinstance(plugin.name, str) or not plugin.name[:1].isalpha():
            problems.append(f"name {plugin.name!r} must start with a letter")
        elif plugin.name != plugin.name.lower() or not plugin.name.replace("_", "").isalnum():
            problems.append(f"name {plugin.name!r} must be lower case letters, digits and _")
        if not plugin.capabilities:
            problems.append("it declares no capabilities (say what it can do, e.g. 'labels')")
        if not plugin.countries:
            problems.append("it declares no origin countries (use '*' for any)")
        for country in sorted(plugin.countries):
            if country != "*" and not (len(country) == 2 and set(country) <= _COUNTRY):
                problems.append(f"origin country {country!r} is not an ISO 3166-1 alpha-2 code")
        unknown = [f for f in plugin.label_formats if f.upper() not in LABEL_FORMATS]
        if not plugin.label_formats or unknown:
            problems.append(f"label formats {list(plugin.label_formats)} must be PDF, ZPL or PNG")
        if len(set(plugin.services)) != len(plugin.services):
            problems.append(f"services {list(plugin.services)} name one service twice")
        if plugin.rate_limit is not None and not plugin.rate_limit > 0:
            problems.append(f"rate_limit {plugin.rate_limit!r} must be above 0 or None")
        if problems:
            fail(f"carrier {plugin.name!r}: " + "; ".join(problems))

    def test_declared_capabilities_are_implemented(
        self, conformance_declaration: Any, conformance_build: Builder, settings: Any
    ) -> None:
        carrier = conformance_build(settings)
        problems = [
            f"declares {capability.value!r} but has no {op}"
            for capability in sorted(conformance_declaration.capabilities)
            for op in _missing(carrier, capability)
        ]
        if problems:
            fail(f"carrier {conformance_declaration.name!r} " + "; ".join(problems))

    @pytest.mark.parametrize("capability", [c.value for c in Capability])
    def test_capability_works(
        self,
        capability: str,
        conformance_declaration: Any,
        conformance_build: Builder,
        settings: Any,
    ) -> None:
        declaration = conformance_declaration
        cap = Capability(capability)
        self._require(declaration, cap)
        carrier = conformance_build(settings)
        missing = _missing(carrier, cap)
        if missing:
            fail(f"carrier {declaration.name!r} declares {cap.value!r} but has no {missing[0]}")
        getattr(self, f"_works_{cap.value}")(declaration, carrier)

    def _works_labels(self, declaration: Any, carrier: Any) -> None:
        request = self._request()
        label = self._check_label(
            declaration, self._ok("buy_label", carrier.buy_label, request), "buy_label"
        )
        found = self._ok("find_label", carrier.find_label, request.idempotency_key)
        if found is None or found.tracking_number != label.tracking_number:
            fail(
                f"find_label({request.idempotency_key!r}) returned {found!r}, not the label "
                f"{label.tracking_number} bought under that key: the engine reconciles an "
                "unknown outcome with it"
            )
        never = "ord_never_bought:shp_none:1"
        if self._ok("find_label of a key never used", carrier.find_label, never) is not None:
            fail(f"find_label({never!r}) returned a label for a key nothing was bought under")

    def _works_returns(self, declaration: Any, carrier: Any) -> None:
        request = attrs.evolve(self._request(2), is_return=True)
        self._check_label(
            declaration, self._ok("buy_label (a return)", carrier.buy_label, request), "buy_label"
        )

    def _works_rates(self, declaration: Any, carrier: Any) -> None:
        rates = self._ok("quote", carrier.quote, attrs.evolve(self._request(), service=None))
        if not isinstance(rates, list) or not rates:
            fail(f"quote returned {rates!r}; it must return a non-empty list of Rate")
        for rate in rates:
            if not isinstance(rate, Rate) or not isinstance(rate.cost, Money):
                fail(f"quote returned {rate!r}, not a Rate with a Money cost")
            if declaration.services and rate.service not in declaration.services:
                fail(f"quote returned a rate for service {rate.service!r}, which is not declared")

    def _works_cancel(self, declaration: Any, carrier: Any) -> None:
        bought = self._ok("buy_label", carrier.buy_label, self._request(3))
        label = _label(declaration.name, bought)
        self._ok("cancel_label", carrier.cancel_label, label)
        self._ok(
            "cancel_label of a label cancelled before (the engine retries a cancel whose "
            "answer was lost)",
            carrier.cancel_label,
            label,
        )

    def _works_pickups(self, declaration: Any, carrier: Any) -> None:
        bought = self._ok("buy_label", carrier.buy_label, self._request(4))
        request = self.sample_pickup_request([bought])
        first = self._ok("schedule_pickup", carrier.schedule_pickup, request)
        if not isinstance(first, PickupConfirmation) or not first.confirmation:
            fail(f"schedule_pickup returned {first!r}, not a PickupConfirmation")
        again = self._ok("schedule_pickup retried", carrier.schedule_pickup, request)
        if again.confirmation != first.confirmation:
            fail(
                "schedule_pickup with the same idempotency_key booked a second pickup "
                f"({first.confirmation}, then {again.confirmation}); a retry must return the "
                "first booking"
            )
        try:
            carrier.cancel_pickup(first)
        except CarrierError as error:  # allowed: some services cannot cancel (say so, plainly)
            if error.kind != "rejected" or not error.message:
                fail(
                    "cancel_pickup may refuse only with CarrierError(kind='rejected') and the "
                    f"service's reason; it raised {error.kind!r}: {error}"
                )

    def _works_tracking(self, declaration: Any, carrier: Any) -> None:
        bought = self._ok("buy_label", carrier.buy_label, self._request(5))
        info = self._ok("track", carrier.track, bought.tracking_number)
        if not isinstance(info, TrackingInfo) or info.tracking_number != bought.tracking_number:
            fail(f"track({bought.tracking_number!r}) returned {info!r}")
        if info.status not in TRACKING_STATUSES:
            fail(
                f"track returned status {info.status!r}; use one of "
                f"{', '.join(sorted(TRACKING_STATUSES))}"
            )

    # --- label purchase is a saga -------------------------------------------------------

    def test_buying_twice_with_the_same_key_sells_once(
        self, conformance_declaration: Any, conformance_build: Builder, settings: Any, fake: Any
    ) -> None:
        self._require(conformance_declaration, Capability.LABELS)
        request = self._request()
        before = self.sales(fake)
        first = self._ok("buy_label", conformance_build(settings).buy_label, request)
        again = self._ok("buy_label retried", conformance_build(settings).buy_label, request)
        sold = self._sold(fake, before)
        if sold is not None and sold != 1:
            fail(
                f"buying twice with the same idempotency_key sold {sold} labels (counted by "
                "the fake): send LabelRequest.idempotency_key as the service's idempotency "
                "key or unique reference, so that a retry returns the first label"
            )
        if again.tracking_number != first.tracking_number:
            fail(
                "buying twice with the same idempotency_key returned two labels "
                f"({first.tracking_number}, then {again.tracking_number}): a retry must "
                "return the label bought the first time, never buy a second one"
            )

    @pytest.mark.parametrize("fault", ["timeout_after_receipt", "timeout_before_receipt"])
    def test_an_unknown_outcome_is_reconciled_by_find_label(
        self,
        fault: str,
        conformance_declaration: Any,
        conformance_build: Builder,
        settings: Any,
        fake: Any,
    ) -> None:
        self._require(conformance_declaration, Capability.LABELS)
        request = self._request()
        before = self.sales(fake)
        faulty = conformance_build(self.provoke(fault, fake, settings), timeout=SHORT_TIMEOUT)
        outcome = self._refused("buy_label", faulty.buy_label, request)
        if isinstance(outcome, CarrierError) and outcome.kind != "unknown_outcome":
            fail(
                f"after {FAULTS[fault]}, buy_label raised kind {outcome.kind!r} ({outcome}); "
                "when the answer never came the label may have been bought, so the kind must "
                "be 'unknown_outcome' (the engine then asks find_label instead of buying "
                "elsewhere)"
            )
        sold = self._sold(fake, before)
        carrier = conformance_build(settings)
        found = self._ok("find_label", carrier.find_label, request.idempotency_key)
        if found is None and (sold is None or sold > 0):
            fail(
                f"after {FAULTS[fault]}, find_label({request.idempotency_key!r}) returned None "
                "although a label was sold under that key: the engine would buy a second one"
            )
        if found is not None and sold == 0:
            fail("find_label returned a label for a key the fake never sold anything under")
        retried = self._ok("buy_label retried", carrier.buy_label, request)
        if found is not None and retried.tracking_number != found.tracking_number:
            fail(
                f"retrying after {FAULTS[fault]} returned {retried.tracking_number}, not the "
                f"label {found.tracking_number} already bought under the key"
            )
        total = self._sold(fake, before)
        if total is not None and total != 1:
            fail(
                f"after {FAULTS[fault]} and a retry under the same key the fake sold {total} "
                "labels; it must sell exactly one"
            )

    def test_a_rate_limit_is_reported_with_retry_after(
        self, conformance_declaration: Any, conformance_build: Builder, settings: Any, fake: Any
    ) -> None:
        self._require(conformance_declaration, Capability.LABELS)
        faulty = conformance_build(self.provoke("rate_limited", fake, settings))
        error = self._refused("buy_label", faulty.buy_label, self._request())
        if not isinstance(error, CarrierError):
            fail(
                f"buy_label answered {FAULTS['rate_limited']} with a label: it must raise "
                "CarrierError(kind='rate_limited') and leave retrying to the engine"
            )
        if error.kind != "rate_limited":
            fail(f"a 429 raised kind {error.kind!r} ({error}); it must be 'rate_limited'")
        if error.retry_after is None or abs(error.retry_after - RETRY_AFTER) > 0.5:
            fail(
                f"a 429 with Retry-After: {RETRY_AFTER} raised retry_after="
                f"{error.retry_after!r}; pass the service's Retry-After on as seconds"
            )

    def test_a_5xx_is_transient_and_a_retry_sells_once(
        self, conformance_declaration: Any, conformance_build: Builder, settings: Any, fake: Any
    ) -> None:
        self._require(conformance_declaration, Capability.LABELS)
        request = self._request()
        before = self.sales(fake)
        faulty = conformance_build(self.provoke("unavailable", fake, settings))
        error = self._refused("buy_label", faulty.buy_label, request)
        if isinstance(error, CarrierError) and error.kind not in ("unavailable", "unknown_outcome"):
            fail(
                f"a 503 raised kind {error.kind!r} ({error}); it must be 'unavailable' (or "
                "'unknown_outcome'), so that the engine retries it"
            )
        self._ok("buy_label retried", conformance_build(settings).buy_label, request)
        sold = self._sold(fake, before)
        if sold is not None and sold != 1:
            fail(f"a 503 and a retry under the same key sold {sold} labels instead of one")

    def test_a_validation_error_names_the_field_and_keeps_the_message(
        self,
        conformance_declaration: Any,
        conformance_build: Builder,
        settings: Any,
        fake: Any,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        self._require(conformance_declaration, Capability.LABELS)
        request = self.invalid_label_request()
        if request is None:
            pytest.skip("invalid_label_request() returned None")
        recorder = ResponseRecorder(fake, monkeypatch)
        error = self._refused("buy_label", conformance_build(settings).buy_label, request)
        if not isinstance(error, CarrierError):
            fail(
                "buy_label bought a label for invalid_label_request(); override that hook "
                "with a request the service refuses"
            )
        if error.kind != "validation":
            fail(
                f"an invalid request raised kind {error.kind!r} ({error}); it must be "
                "'validation' (permanent: the merchant has to fix the order)"
            )
        if not error.field:
            fail(
                f"the validation error does not say which field is wrong ({error}); set "
                "CarrierError.field from the service's answer"
            )
        if generic_message(error.message):
            fail(
                f"the validation error's message {error.message!r} says nothing the "
                "merchant can act on; keep the service's own message"
            )
        answer = recorder.last_error()
        sentences = provider_sentences(answer) if answer is not None else []
        if sentences and not any(s in str(error) for s in sentences):
            fail(
                f"the service answered {sentences[0]!r} but the error says {str(error)!r}; "
                "keep the service's message, the merchant needs its reason"
            )

    def test_wrong_credentials_are_an_auth_error(
        self,
        conformance_declaration: Any,
        conformance_build: Builder,
        conformance_secrets: dict[str, str],
        settings: Any,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        self._require(conformance_declaration, Capability.LABELS)
        if not conformance_secrets:
            pytest.skip("the settings hold no env: secret reference")
        for name in conformance_secrets:
            monkeypatch.setenv(name, self.wrong_secret(name))
        error = self._refused("buy_label", conformance_build(settings).buy_label, self._request())
        if not isinstance(error, CarrierError):
            fail(
                "buy_label succeeded with wrong credentials: the fake must check them and "
                "answer as the service does (401)"
            )
        if error.kind != "auth":
            fail(f"wrong credentials raised kind {error.kind!r} ({error}); it must be 'auth'")

    def test_no_secret_reaches_a_log_or_an_error(
        self,
        conformance_declaration: Any,
        conformance_build: Builder,
        conformance_secrets: dict[str, str],
        settings: Any,
        fake: Any,
        monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        scanner = self.leak_scanner(conformance_secrets, caplog)
        declaration = conformance_declaration
        carrier = conformance_build(settings)
        scanner.add("repr() of the carrier", repr(carrier))
        if Capability.LABELS in declaration.capabilities:
            request = self._request()
            scanner.record("buy_label", lambda: carrier.buy_label(request))
            scanner.record("find_label", lambda: carrier.find_label(request.idempotency_key))
            invalid = self.invalid_label_request()
            if invalid is not None:
                scanner.record("buy_label (invalid)", lambda: carrier.buy_label(invalid))
        if Capability.RATES in declaration.capabilities:
            scanner.record("quote", lambda: carrier.quote(self._request()))
        if Capability.LABELS in declaration.capabilities:
            for fault in ("rate_limited", "unavailable"):
                try:
                    faulty = conformance_build(self.provoke(fault, fake, settings))
                except pytest.skip.Exception:
                    continue
                buy = partial(faulty.buy_label, self._request(9))
                scanner.record(f"buy_label after {fault}", buy)
            for name in conformance_secrets:
                monkeypatch.setenv(name, self.wrong_secret(name))
            wrongly = conformance_build(settings)
            scanner.record(
                "buy_label with wrong credentials", lambda: wrongly.buy_label(self._request(10))
            )
        scanner.finish(caplog, capsys)

    def test_uses_the_injected_http_client(
        self, conformance_declaration: Any, conformance_build: Builder, settings: Any, fake: Any
    ) -> None:
        self._require(conformance_declaration, Capability.LABELS)
        if not isinstance(getattr(fake, "requests", None), list):
            pytest.skip("the fake does not record requests")
        self._ok("buy_label", conformance_build(settings).buy_label, self._request())
        if fake.requests and not conformance_build.requests:
            fail(
                "the fake received requests that the client in PluginContext never sent: "
                "the carrier built its own HTTP client; use context.client (timeouts, "
                "pooling and tracing live there)"
            )
