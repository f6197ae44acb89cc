"""The built-in sandbox carrier: registration, settings, labels, faults, ledger, pickups.

Everything runs offline against ``tmp_path``; the httpx client handed to the factory
refuses any request, which proves the sandbox never touches the network.
"""

from __future__ import annotations

import io
import logging
import multiprocessing
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from decimal import Decimal
from importlib import metadata
from pathlib import Path
from typing import Any

import attrs
import httpx
import pluggy
import pypdf
import pytest
from fulfil.core import hookspecs
from fulfil.core.carriers import (
    Capability,
    Carrier,
    CarrierPlugin,
    CustomsItem,
    LabelRequest,
    PickupConfirmation,
    PickupRequest,
    PurchasedLabel,
)
from fulfil.core.context import PluginContext
from fulfil.core.errors import CarrierError, ConfigError
from fulfil.core.models import Address, Money, Parcel
from fulfil.core.plugins import Hooks, make_plugin_manager
from fulfil.plugins.carriers import sandbox
from fulfil.plugins.carriers.sandbox import SETTINGS_SCHEMA, Ledger, SandboxCarrier, make_carrier
from fulfil.plugins.carriers.sandbox.faults import draw
from fulfil.plugins.carriers.sandbox.identifiers import is_tracking_number, tracking_number
from fulfil.plugins.carriers.sandbox.settings import SandboxSettings
from jsonschema import Draft202012Validator

Build = Callable[..., SandboxCarrier]

SENDER = Address(
    name="Atelier Dupont",
    company="Dupont SARL",
    line1="12 rue de la Paix",
    city="Paris",
    postal_code="75002",
    country="FR",
)
RECIPIENT = Address(
    name="Zoe Muller",
    line1="Hauptstrasse 5",
    line2="Hinterhaus",
    city="Berlin",
    postal_code="10115",
    country="DE",
)


def _refuse(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"the sandbox made a network request: {request.url}")


@pytest.fixture
def context(tmp_path: Path) -> Iterator[PluginContext]:
    with httpx.Client(transport=httpx.MockTransport(_refuse)) as client:
        yield PluginContext(client=client, data_dir=tmp_path)


@pytest.fixture
def build(context: PluginContext) -> Iterator[Build]:
    """``build(**settings)``: a carrier on ``tmp_path``, closed after the test."""
    built: list[SandboxCarrier] = []

    def factory(**settings: Any) -> SandboxCarrier:
        built.append(make_carrier(settings, context))
        return built[-1]

    yield factory
    for carrier in built:
        carrier.close()


@pytest.fixture
def carrier(build: Build) -> SandboxCarrier:
    return build()


def label_request(key: str = "o1:s1:1", **changes: Any) -> LabelRequest:
    order_id, shipment_id = key.split(":")[:2]
    request = LabelRequest(
        idempotency_key=key,
        order_id=order_id,
        order_number=1042,
        shipment_id=shipment_id,
        sender=SENDER,
        recipient=RECIPIENT,
        parcels=(Parcel(weight_g=1250),),
        service="standard",
    )
    return attrs.evolve(request, **changes)


def pickup_request(
    labels: list[PurchasedLabel], key: str = "pickup:sandbox:2030-01-07:hq"
) -> PickupRequest:
    return PickupRequest(
        idempotency_key=key,
        day=date(2030, 1, 7),
        window_start="09:00",
        window_end="12:00",
        address=SENDER,
        tracking_numbers=tuple(label.tracking_number for label in labels),
        carrier_references=tuple(label.carrier_reference or "" for label in labels),
        parcel_count=len(labels),
        total_weight_g=1250 * len(labels),
    )


def pdf_text(document: bytes | None) -> tuple[pypdf.PdfReader, str]:
    assert document is not None
    reader = pypdf.PdfReader(io.BytesIO(document))
    return reader, "\n".join(page.extract_text() for page in reader.pages)


# --- registration ---------------------------------------------------------------------


def _plugin_manager() -> pluggy.PluginManager:
    try:
        return make_plugin_manager([sandbox], load_entrypoints=False)
    except ImportError:  # the built-in notification plugins may not be written yet
        pm = pluggy.PluginManager("fulfil")
        pm.add_hookspecs(hookspecs)
        pm.register(sandbox)
        pm.check_pending()
        return pm


def test_registers_through_the_plugin_manager(context: PluginContext) -> None:
    plugin = Hooks(_plugin_manager()).registry.carrier("sandbox")

    assert isinstance(plugin, CarrierPlugin)
    assert plugin.capabilities == frozenset(Capability)
    assert plugin.countries == {"*"} and plugin.ships_from("JP")
    assert plugin.services == ("economy", "standard", "express")
    assert plugin.label_formats == ("PDF",)
    assert plugin.settings_schema is SETTINGS_SCHEMA
    assert plugin.description
    with plugin.factory({}, context) as built:
        assert isinstance(built, SandboxCarrier)
        assert isinstance(built, Carrier)
    assert plugin.describe()["capabilities"] == sorted(c.value for c in Capability)


def test_the_entry_point_names_the_package() -> None:
    (entry_point,) = [e for e in metadata.entry_points(group="fulfil") if e.name == "sandbox"]
    assert entry_point.value == "fulfil.plugins.carriers.sandbox"
    assert entry_point.load() is sandbox


def test_import_defines_things_only() -> None:
    code = (
        "import sys, fulfil.plugins.carriers.sandbox\n"
        "heavy = {'reportlab', 'jsonschema'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --- settings -------------------------------------------------------------------------


def _properties(schema: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for name, sub in schema.get("properties", {}).items():
        yield name, sub
        yield from _properties(sub)


def test_settings_schema_is_valid_2020_12() -> None:
    Draft202012Validator.check_schema(SETTINGS_SCHEMA)
    assert SETTINGS_SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert SETTINGS_SCHEMA["additionalProperties"] is False
    names = set(SETTINGS_SCHEMA["properties"])
    assert names == {
        "ledger",
        "latency_ms",
        "fail_5xx",
        "fail_timeout",
        "fail_429",
        "retry_after_s",
        "seed",
        "currency",
        "costs",
    }
    for name, sub in _properties(SETTINGS_SCHEMA):
        assert sub.get("description"), f"{name} has no description"
    validator = Draft202012Validator(SETTINGS_SCHEMA)
    defaults = {n: s["default"] for n, s in _properties(SETTINGS_SCHEMA) if "default" in s}
    validator.validate(defaults)
    assert SandboxSettings.from_mapping({}) == SandboxSettings.from_mapping(defaults)


def test_settings_accept_a_full_mapping() -> None:
    settings = {
        "ledger": "/tmp/x.sqlite",
        "latency_ms": 12.5,
        "fail_5xx": 0.1,
        "fail_timeout": 0.05,
        "fail_429": 1,
        "retry_after_s": 3,
        "seed": 7,
        "currency": "USD",
        "costs": {"express": "19.90", "economy": 3},
    }
    Draft202012Validator(SETTINGS_SCHEMA).validate(settings)
    parsed = SandboxSettings.from_mapping(settings)
    assert parsed.costs == {"express": Decimal("19.90"), "economy": Decimal("3")}


@pytest.mark.parametrize(
    ("settings", "path"),
    [
        ({"fail_5xx": 1.5}, "fail_5xx"),
        ({"fail_429": -0.1}, "fail_429"),
        ({"fail_timeout": "often"}, "fail_timeout"),
        ({"latency_ms": -1}, "latency_ms"),
        ({"seed": 1.5}, "seed"),
        ({"currency": "eur"}, "currency"),
        ({"costs": {"overnight": 5}}, "costs"),
        ({"costs": {"express": "cheap"}}, "costs.express"),
        ({"costs": {"express": -1}}, "costs.express"),
        ({"ledger": ""}, "ledger"),
        ({"colour": "red"}, "carriers.sandbox:"),
    ],
)
def test_bad_settings_are_rejected(
    settings: dict[str, Any], path: str, context: PluginContext
) -> None:
    assert list(Draft202012Validator(SETTINGS_SCHEMA).iter_errors(settings))
    with pytest.raises(ConfigError) as raised:
        make_carrier(settings, context)
    prefix = "" if path.endswith(":") else "carriers.sandbox."
    assert f"{prefix}{path}" in str(raised.value)


# --- labels ---------------------------------------------------------------------------


def test_buy_label_returns_a_4x6_pdf(carrier: SandboxCarrier, tmp_path: Path) -> None:
    label = carrier.buy_label(label_request())

    assert label.format == "PDF"
    assert is_tracking_number(label.tracking_number)
    assert re.fullmatch(r"SBX\d{13}", label.tracking_number)
    assert label.tracking_url == f"https://sandbox.fulfil.invalid/track/{label.tracking_number}"
    assert label.carrier_reference and re.fullmatch(r"sbx_[0-9a-f]+", label.carrier_reference)
    assert label.service == "standard"
    assert label.cost == Money(Decimal("7.70"), "EUR")  # 6.90 + one started kg above the first
    reader, text = pdf_text(label.document)
    assert len(reader.pages) == 1
    box = reader.pages[0].mediabox
    assert (float(box.width), float(box.height)) == (288, 432)
    for expected in (
        "Atelier Dupont",
        "12 rue de la Paix",
        "75002 Paris",
        "Zoe Muller",
        "Hauptstrasse 5",
        "10115 Berlin",
        "DE",
        "Order #1042",
        "1.250 kg",
        "STANDARD",
        label.tracking_number,
    ):
        assert expected in text
    assert (tmp_path / "sandbox-ledger.sqlite").exists()  # relative path, under data_dir


def test_a_label_has_one_page_per_parcel(carrier: SandboxCarrier) -> None:
    parcels = (Parcel(weight_g=500), Parcel(weight_g=2500))
    label = carrier.buy_label(label_request(parcels=parcels, service="economy"))

    reader, text = pdf_text(label.document)
    assert len(reader.pages) == 2
    assert "Parcel 1/2" in text and "Parcel 2/2" in text
    assert label.cost.amount == Decimal("4.90") + Decimal("4.90") + 2 * Decimal("0.50")


def drawn_bars(page: pypdf.PageObject, height: float) -> tuple[float, list[tuple[float, float]]]:
    """Where the page's bar code starts (its ``cm`` offset) and its bars, as (x, width)."""
    offset, bars = 0.0, []
    for operands, operator in page.get_contents().operations:
        if operator == b"cm":
            offset = float(operands[4])
        elif operator == b"re" and float(operands[3]) == height:
            bars.append((float(operands[0]), float(operands[2])))
    return offset, bars


def test_the_barcode_is_the_tracking_number_in_code128(carrier: SandboxCarrier) -> None:
    from reportlab.graphics.barcode.code128 import Code128

    label = carrier.buy_label(label_request(parcels=(Parcel(weight_g=500), Parcel(weight_g=900))))
    reader, _ = pdf_text(label.document)
    # reportlab's encoding of the number: capitals are bars, lower case spaces, the letter
    # giving the width in modules (A = 1).
    symbol = Code128(label.tracking_number, quiet=False)
    assert symbol.width  # computes the encoding
    expected = [(c.isupper(), ord(c.upper()) - ord("A") + 1) for c in symbol.decomposed]

    for page in reader.pages:
        offset, bars = drawn_bars(page, height=62)
        module = bars[0][1] / expected[0][1]
        drawn: list[tuple[bool, int]] = []
        for (x, width), following in zip(bars, [*bars[1:], None], strict=True):
            drawn.append((True, round(width / module)))
            if following is not None:
                drawn.append((False, round((following[0] - x - width) / module)))
        assert drawn == expected
        end = bars[-1][0] + bars[-1][1]
        assert 1.0 <= module <= 1.6
        # Within the margins (12 pt) and quiet zones (10 pt); coordinates have 6 digits.
        assert offset >= 12 + 10 - 1e-3 and offset + end <= 288 - 12 - 10 + 1e-3


def test_customs_and_unprintable_letters(carrier: SandboxCarrier) -> None:
    recipient = attrs.evolve(RECIPIENT, name="Łukasz Иван", country="CH")
    customs = (CustomsItem("Mug", 2, Money("12", "EUR"), 400, "FR"),)
    label = carrier.buy_label(label_request(recipient=recipient, customs=customs))

    _, text = pdf_text(label.document)
    assert "Lukasz ????" in text
    assert "Customs: 1 lines" in text


def test_the_same_key_buys_one_label(carrier: SandboxCarrier) -> None:
    first = carrier.buy_label(label_request())
    second = carrier.buy_label(label_request())

    assert second == first
    assert second.document == first.document  # regenerated byte for byte, not stored
    assert carrier.find_label("o1:s1:1") == first
    assert carrier.find_label("o1:s1:2") is None
    assert len(carrier.ledger.purchases()) == 1
    assert carrier.ledger.purchases_per_shipment() == {"s1": 1}
    assert carrier.ledger.attempts("o1:s1:1") == 2


def test_a_reused_key_with_another_request_still_buys_nothing_new(
    carrier: SandboxCarrier, caplog: pytest.LogCaptureFixture
) -> None:
    first = carrier.buy_label(label_request())
    with caplog.at_level(logging.WARNING):
        again = carrier.buy_label(label_request(service="express"))

    assert again == first
    assert "reused with a different request" in caplog.text
    assert len(carrier.ledger.purchases()) == 1


def test_tracking_numbers_derive_from_the_key(build: Build, tmp_path: Path) -> None:
    other = build(ledger=str(tmp_path / "other.sqlite"))
    here = build().buy_label(label_request("o1:s1:1"))

    assert other.buy_label(label_request("o1:s1:1")).tracking_number == here.tracking_number
    assert here.tracking_number == tracking_number("o1:s1:1")
    assert other.buy_label(label_request("o1:s1:2")).tracking_number != here.tracking_number
    assert not is_tracking_number(here.tracking_number[:-1] + "x")
    wrong_check_digit = here.tracking_number[:-1] + str((int(here.tracking_number[-1]) + 1) % 10)
    assert not is_tracking_number(wrong_check_digit)


def test_logs_carry_ids_not_customer_data(
    carrier: SandboxCarrier, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        label = carrier.buy_label(label_request())
        carrier.buy_label(label_request())
        carrier.cancel_label(label)

    assert "o1:s1:1" in caplog.text and label.tracking_number in caplog.text
    for private in ("Zoe", "Muller", "Hauptstrasse", "10115", "Berlin", "Dupont"):
        assert private not in caplog.text


# --- faults ---------------------------------------------------------------------------


def test_timeout_records_the_purchase_then_reports_an_unknown_outcome(
    build: Build,
) -> None:
    flaky = build(fail_timeout=1)
    with pytest.raises(CarrierError) as raised:
        flaky.buy_label(label_request())

    error = raised.value
    assert error.kind == "unknown_outcome" and error.unknown_outcome and not error.transient
    found = flaky.find_label("o1:s1:1")
    assert found is not None
    assert [p["tracking_number"] for p in flaky.ledger.purchases()] == [found.tracking_number]

    recovered = build()  # same ledger, the network is back
    retried = recovered.buy_label(label_request())
    assert retried == found
    assert len(recovered.ledger.purchases()) == 1
    assert recovered.ledger.attempts("o1:s1:1") == 2


def test_rate_limits_carry_retry_after(build: Build) -> None:
    limited = build(fail_429=1, retry_after_s=2.5)
    with pytest.raises(CarrierError) as raised:
        limited.buy_label(label_request())

    error = raised.value
    assert (error.kind, error.status_code, error.retry_after) == ("rate_limited", 429, 2.5)
    assert error.transient and error.carrier == "sandbox"
    assert limited.ledger.purchases() == []
    assert limited.ledger.attempts("o1:s1:1") == 1


def _key_failing_first_then_succeeding(settings: SandboxSettings) -> str:
    for n in range(1000):
        key = f"o{n}:s{n}:1"
        if draw(settings, key, 1).unavailable and not draw(settings, key, 2).unavailable:
            return key
    raise AssertionError("no such key")  # pragma: no cover


def test_5xx_then_success_on_retry(build: Build) -> None:
    flaky = build(fail_5xx=0.5, seed=3)
    key = _key_failing_first_then_succeeding(flaky.settings)

    with pytest.raises(CarrierError) as raised:
        flaky.buy_label(label_request(key))
    error = raised.value
    assert (error.kind, error.status_code, error.code) == (
        "unavailable",
        503,
        "sandbox_unavailable",
    )
    assert flaky.ledger.purchases() == []

    label = flaky.buy_label(label_request(key))
    assert label.tracking_number == tracking_number(key)
    assert len(flaky.ledger.purchases()) == 1


def _outcomes(carrier: SandboxCarrier) -> list[str]:
    outcomes = []
    for n in range(15):
        for _attempt in range(3):
            try:
                carrier.buy_label(label_request(f"o{n}:s{n}:1"))
                outcomes.append("ok")
            except CarrierError as error:
                outcomes.append(error.kind)
    return outcomes


def test_fault_draws_are_reproducible_per_seed(build: Build, tmp_path: Path) -> None:
    settings = {"fail_5xx": 0.3, "fail_429": 0.3, "fail_timeout": 0.3}
    one = _outcomes(build(ledger="a.sqlite", seed=1, **settings))
    two = _outcomes(build(ledger="b.sqlite", seed=1, **settings))
    other = _outcomes(build(ledger="c.sqlite", seed=2, **settings))

    assert one == two
    assert one != other
    assert {"ok", "rate_limited", "unavailable", "unknown_outcome"} <= set(one)


def test_latency_is_waited_before_answering(build: Build) -> None:
    slow = build(latency_ms=60)
    started = time.monotonic()
    slow.quote(label_request())
    assert time.monotonic() - started >= 0.06


@pytest.mark.parametrize(
    ("changes", "field", "code"),
    [
        (
            {"recipient": attrs.evolve(RECIPIENT, postal_code="00000")},
            "recipient.postal_code",
            "invalid_postal_code",
        ),
        (
            {"sender": attrs.evolve(SENDER, postal_code="00000")},
            "sender.postal_code",
            "invalid_postal_code",
        ),
        ({"parcels": (Parcel(weight_g=0),)}, "parcels[0].weight_g", "invalid_weight"),
        (
            {"parcels": (Parcel(weight_g=10), Parcel(weight_g=-5))},
            "parcels[1].weight_g",
            "invalid_weight",
        ),
        ({"parcels": (Parcel(weight_g=70_001),)}, "parcels[0].weight_g", "parcel_too_heavy"),
        ({"parcels": ()}, "parcels", "no_parcels"),
        ({"service": "overnight"}, "service", "unknown_service"),
        ({"label_format": "ZPL"}, "label_format", "unsupported_label_format"),
    ],
)
def test_validation_errors_name_the_field(
    carrier: SandboxCarrier, changes: dict[str, Any], field: str, code: str
) -> None:
    for operation in (carrier.buy_label, carrier.quote):
        with pytest.raises(CarrierError) as raised:
            operation(label_request(**changes))
        error = raised.value
        assert (error.kind, error.field, error.code) == ("validation", field, code)
        assert not error.transient
        assert field in str(error) and field.split(".")[0] in error.message
    assert carrier.ledger.purchases() == []


# --- returns, quotes, cancel, track ---------------------------------------------------


def test_return_labels_swap_sender_and_recipient(carrier: SandboxCarrier) -> None:
    carrier.buy_label(label_request("o1:s1:1"))
    label = carrier.buy_label(label_request("o1:s1:return:1", is_return=True))

    _, text = pdf_text(label.document)
    assert "RETURN STANDARD" in text
    assert text.index("FROM") < text.index("Zoe Muller") < text.index("SHIP TO")
    assert text.index("SHIP TO") < text.index("Atelier Dupont")
    assert carrier.ledger.purchases_per_shipment() == {"s1": 1}
    assert carrier.ledger.purchases_per_shipment(include_returns=True) == {"s1": 2}


def test_quotes_come_from_the_table(build: Build) -> None:
    carrier = build(currency="CHF", costs={"express": "20"})
    rates = carrier.quote(label_request(service=None))

    assert [r.service for r in rates] == ["economy", "standard", "express"]
    assert [r.cost for r in rates] == [
        Money(Decimal("5.40"), "CHF"),
        Money(Decimal("7.70"), "CHF"),
        Money(Decimal("21.50"), "CHF"),
    ]
    assert [r.days for r in rates] == [7, 5, 3]  # cross-border FR -> DE adds two days
    (only,) = carrier.quote(label_request(parcels=(Parcel(weight_g=1000),)))
    assert (only.service, only.cost.amount) == ("standard", Decimal("6.90"))
    (heavier,) = carrier.quote(label_request(parcels=(Parcel(weight_g=1001),)))
    assert heavier.cost.amount == Decimal("7.70")
    domestic = attrs.evolve(RECIPIENT, country="FR")
    assert carrier.quote(label_request(recipient=domestic))[0].days == 3
    assert carrier.quote(label_request()) == carrier.quote(label_request())
    assert carrier.ledger.purchases() == []  # quoting buys nothing


def test_cancel_voids_the_label(carrier: SandboxCarrier) -> None:
    label = carrier.buy_label(label_request())
    assert carrier.track(label.tracking_number).status == "pre_transit"

    carrier.cancel_label(label)
    carrier.cancel_label(label)  # a retried cancel succeeds

    (purchase,) = carrier.ledger.purchases()
    assert purchase["voided"] is True and purchase["voided_at"]
    info = carrier.track(label.tracking_number)
    assert info.status == "cancelled"
    assert info.events[-1]["status"] == "cancelled"
    with pytest.raises(CarrierError) as raised:
        carrier.buy_label(label_request())
    assert (raised.value.kind, raised.value.code) == ("rejected", "label_voided")
    assert len(carrier.ledger.purchases()) == 1
    found = carrier.find_label("o1:s1:1")
    assert found is not None and found.tracking_number == label.tracking_number


def test_cancelling_an_unknown_label_is_rejected(carrier: SandboxCarrier) -> None:
    stranger = PurchasedLabel(
        tracking_number="SBX0000000000000", format="PDF", cost=Money(0, "EUR"), service="standard"
    )
    with pytest.raises(CarrierError) as raised:
        carrier.cancel_label(stranger)
    assert (raised.value.kind, raised.value.code) == ("rejected", "label_not_found")


def test_track(carrier: SandboxCarrier) -> None:
    label = carrier.buy_label(label_request())
    info = carrier.track(label.tracking_number)

    assert (info.tracking_number, info.status) == (label.tracking_number, "pre_transit")
    assert info.events[0]["description"] == "label created"
    for unknown in (tracking_number("never:bought:1"), "1Z999", ""):
        with pytest.raises(CarrierError) as raised:
            carrier.track(unknown)
        assert (raised.value.kind, raised.value.field) == ("validation", "tracking_number")


# --- pickups --------------------------------------------------------------------------


def test_pickups_are_idempotent(carrier: SandboxCarrier) -> None:
    labels = [carrier.buy_label(label_request(f"o{n}:s{n}:1")) for n in range(3)]
    request = pickup_request(labels)

    first = carrier.schedule_pickup(request)
    again = carrier.schedule_pickup(request)

    assert again == first
    assert re.fullmatch(r"SBXP-[0-9A-F]{10}", first.confirmation)
    (booked,) = carrier.ledger.pickups()
    assert booked["day"] == "2030-01-07" and booked["cancelled"] is False
    assert booked["tracking_numbers"] == [label.tracking_number for label in labels]
    events = carrier.track(labels[1].tracking_number).events
    assert any(first.confirmation in e["description"] for e in events)
    other_day = attrs.evolve(request, idempotency_key="pickup:sandbox:2030-01-08:hq")
    assert carrier.schedule_pickup(other_day) != first
    assert len(carrier.ledger.pickups()) == 2


def test_cancel_pickup(carrier: SandboxCarrier) -> None:
    label = carrier.buy_label(label_request())
    request = pickup_request([label])
    confirmation = carrier.schedule_pickup(request)

    carrier.cancel_pickup(confirmation)
    carrier.cancel_pickup(confirmation)

    assert carrier.ledger.pickups()[0]["cancelled"] is True
    with pytest.raises(CarrierError) as raised:
        carrier.schedule_pickup(request)
    assert (raised.value.kind, raised.value.code) == ("rejected", "pickup_cancelled")
    with pytest.raises(CarrierError) as raised:
        carrier.cancel_pickup(PickupConfirmation("SBXP-0000000000"))
    assert (raised.value.kind, raised.value.code) == ("rejected", "pickup_not_found")


def test_pickup_validation(carrier: SandboxCarrier) -> None:
    label = carrier.buy_label(label_request())
    stranger = attrs.evolve(label, tracking_number=tracking_number("never:bought:1"))
    cases = [
        (pickup_request([label, stranger]), "tracking_numbers[1]"),
        (attrs.evolve(pickup_request([label]), window_end="08:00"), "window_end"),
        (attrs.evolve(pickup_request([label]), window_start="9am"), "window_start"),
        (pickup_request([]), "tracking_numbers"),
    ]
    for request, field in cases:
        with pytest.raises(CarrierError) as raised:
            carrier.schedule_pickup(request)
        assert (raised.value.kind, raised.value.field) == ("validation", field)
    carrier.cancel_label(label)
    with pytest.raises(CarrierError) as raised:
        carrier.schedule_pickup(pickup_request([label]))
    assert (raised.value.field, raised.value.code) == ("tracking_numbers[0]", "label_voided")
    assert carrier.ledger.pickups() == []


def test_pickup_timeout_is_recorded_and_a_retry_confirms(
    build: Build,
) -> None:
    label = build().buy_label(label_request())
    with pytest.raises(CarrierError) as raised:
        build(fail_timeout=1).schedule_pickup(pickup_request([label]))
    assert raised.value.kind == "unknown_outcome"

    carrier = build()
    confirmation = carrier.schedule_pickup(pickup_request([label]))
    assert [p["confirmation"] for p in carrier.ledger.pickups()] == [confirmation.confirmation]


# --- several processes on one ledger --------------------------------------------------

FLAKY = {"fail_5xx": 0.2, "fail_429": 0.2, "fail_timeout": 0.2, "retry_after_s": 0}


def _buy_all(
    data_dir: str, keys: list[str], settings: dict[str, Any], start_at: float
) -> dict[str, str]:
    """Run in a spawned worker: buy every key, retrying the way the core's saga does."""
    with httpx.Client(transport=httpx.MockTransport(_refuse)) as client:
        context = PluginContext(client=client, data_dir=Path(data_dir))
        with make_carrier(settings, context) as carrier:
            time.sleep(max(0.0, start_at - time.time()))
            return {key: _buy(carrier, key) for key in keys}


def _buy(carrier: SandboxCarrier, key: str) -> str:
    """Buy under ``key`` the way the core's saga does: retry transient failures, reconcile
    an unknown outcome with ``find_label``; return the tracking number."""
    while True:
        try:
            return carrier.buy_label(label_request(key)).tracking_number
        except CarrierError as error:
            if error.unknown_outcome and (found := carrier.find_label(key)):
                return found.tracking_number
            if not (error.transient or error.unknown_outcome):
                raise


def _assert_one_purchase_per_key(ledger: Ledger, keys: list[str]) -> None:
    purchases = ledger.purchases()
    assert sorted(p["idempotency_key"] for p in purchases) == sorted(keys)
    assert set(ledger.purchases_per_shipment().values()) == {1}
    assert all(p["tracking_number"] == tracking_number(p["idempotency_key"]) for p in purchases)


def test_processes_sharing_a_ledger_buy_each_key_once(tmp_path: Path) -> None:
    keys = [f"o{n}:s{n}:1" for n in range(30)]
    orders = [random.Random(i).sample(keys, len(keys)) for i in range(3)]
    start_at = time.time() + 2  # after every worker has started and imported
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        results = pool.starmap(
            _buy_all, [(str(tmp_path), order, FLAKY, start_at) for order in orders]
        )

    assert results[0] == results[1] == results[2]
    with Ledger(tmp_path / "sandbox-ledger.sqlite") as ledger:
        _assert_one_purchase_per_key(ledger, keys)
        assert sum(ledger.attempts(k) for k in keys) > 3 * len(keys)  # faults did happen


def test_threads_sharing_a_carrier_buy_each_key_once(
    build: Build,
) -> None:
    carrier = build(**FLAKY)
    keys = [f"o{n}:s{n}:1" for n in range(40)]
    orders = [random.Random(i).sample(keys, len(keys)) for i in range(8)]

    def buy_all(order: list[str]) -> dict[str, str]:
        return {key: _buy(carrier, key) for key in order}

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(buy_all, orders))

    assert all(result == results[0] for result in results)
    _assert_one_purchase_per_key(carrier.ledger, keys)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_a_killed_worker_leaves_nothing_bought_twice(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    keys = [f"o{n}:s{n}:1" for n in range(200)]
    settings = {**FLAKY, "latency_ms": 5}
    spawn = multiprocessing.get_context("spawn")
    ledger = Ledger(tmp_path / "sandbox-ledger.sqlite")
    request.addfinalizer(ledger.close)
    victim = spawn.Process(target=_buy_all, args=(str(tmp_path), keys, settings, 0.0))
    victim.start()
    deadline = time.monotonic() + 60
    while len(ledger.purchases()) < 20 and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(victim.pid or 0, signal.SIGKILL)
    victim.join()
    assert victim.exitcode == -signal.SIGKILL
    assert 20 <= len(ledger.purchases()) < len(keys)

    with spawn.Pool(1) as pool:
        (bought,) = pool.starmap(_buy_all, [(str(tmp_path), keys, settings, 0.0)])

    assert sorted(bought) == sorted(keys)
    _assert_one_purchase_per_key(ledger, keys)
