"""The Sendcloud adapter against ``SendcloudFake``: real HTTP on loopback, no internet.

Each test follows a shape from Sendcloud's API v3 documentation (the fake answers with
the documented bodies; ``docs/carriers.md (Sendcloud)`` lists them all):

- Create and announce a shipment synchronously, ``POST /shipments/announce``: request
  (``from_address``/``to_address``, ``ship_with.properties.shipping_option_code``,
  ``parcels[].weight {value, unit}``/``dimensions``, ``label_details``, ``order_number``,
  ``external_reference_id``, ``customs_information`` and ``parcel_items`` outside the EU),
  201 answer (``data.id``, ``parcels[].tracking_number``/``tracking_url``/``documents[]``),
  the 400 JSON:API error list with ``source.pointer``, the 201 "announcement failed"
  example, and the 409 for a reused ``external_reference_id`` ("the associated object being
  returned"): https://sendcloud.dev/api/v3/shipments/create-and-announce-a-shipment-synchronously
  and https://sendcloud.dev/.openapi/v3/shipments/openapi.yaml
  -> test_buy_label_*, test_validation_*, test_a_refused_announcement_*, test_timeout_*
- Idempotency through ``external_reference_id``:
  https://support.sendcloud.com/hc/en-gb/articles/7789894544276-Sendcloud-APIs-FAQ
  -> test_timeout_after_the_request_was_received_is_reconciled_by_the_key
- Retrieve shipments by ``external_reference_id`` / ``tracking_number``:
  https://sendcloud.dev/api/v3/shipments/retrieve-shipments -> test_find_label_*
- Cancel a shipment (200 cancelled, 409 already being cancelled):
  https://sendcloud.dev/api/v3/shipments/cancel-a-shipment -> test_cancel_*
- Retrieve a parcel document (``Accept`` picks PDF, ZPL or PNG) and multiple parcel
  documents: https://sendcloud.dev/api/v3/parcel-documents/retrieve-a-parcel-document,
  https://sendcloud.dev/api/v3/parcel-documents/retrieve-multiple-parcel-documents
  -> test_label_bytes_are_exactly_what_sendcloud_served, test_several_parcels_*
- Return a list of available shipping options (``calculate_quotes``,
  ``quotes[].price.total``, ``lead_time``):
  https://sendcloud.dev/api/v3/shipping-options/return-a-list-of-available-shipping-options
  -> test_quotes_*
- Returns: https://sendcloud.dev/api/v3/returns/create-a-return-synchronously,
  https://sendcloud.dev/api/v3/returns/retrieve-a-return,
  https://sendcloud.dev/api/v3/returns/request-cancellation-of-a-return -> test_return_*
- Pickups: https://sendcloud.dev/api/v3/pickups/create-a-pickup,
  https://sendcloud.dev/api/v3/pickups/retrieve-a-list-of-pickups,
  https://sendcloud.dev/api/v3/pickups/retrieve-a-pickup,
  https://sendcloud.dev/api/v3/pickups/cancel-a-pickup -> test_pickups_*
- Parcel tracking: https://sendcloud.dev/api/v3/parcel-tracking/retrieve-tracking-information-for-a-parcel
  -> test_track_*
- Basic authentication (``HTTPBasicAuth`` security scheme, ``authentication_failed``
  error code) -> test_wrong_credentials_*; rate limits (100 unsafe requests a minute,
  429): https://sendcloud.dev/docs/getting-started/rate-limits -> test_registers_*,
  test_429_*
"""

from __future__ import annotations

import base64
import io
import logging
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from datetime import date
from decimal import Decimal
from importlib import metadata
from pathlib import Path
from typing import Any

import attrs
import httpx
import pypdf
import pytest
from conftest import order_data
from fulfil.core.carriers import (
    Capability,
    Carrier,
    CarrierPlugin,
    CustomsItem,
    LabelRequest,
    PickupRequest,
    PurchasedLabel,
)
from fulfil.core.context import PluginContext
from fulfil.core.errors import CarrierError, ConfigError, ValidationFailed
from fulfil.core.models import Address, Label, Money, Order, Parcel
from fulfil.core.plugins import Hooks, make_plugin_manager
from fulfil.core.secrets import Secret
from fulfil.core.states import FulfilmentStatus
from fulfil.core.worker import Worker
from fulfil.plugins.carriers import sendcloud
from fulfil.plugins.carriers.sendcloud import SETTINGS_SCHEMA, SendcloudCarrier, make_carrier
from fulfil.testing.fakes.sendcloud import SendcloudFake
from fulfil.testing.server import Response
from jsonschema import Draft202012Validator

Build = Callable[..., SendcloudCarrier]

SENDER = Address(
    name="Atelier Dupont",
    company="Dupont SARL",
    line1="12 rue de la Paix",
    city="Paris",
    postal_code="75002",
    country="FR",
    phone="+33142685300",
)
RECIPIENT = Address(
    name="Zoe Muller",
    line1="Hauptstrasse 5",
    line2="Hinterhaus",
    city="Berlin",
    postal_code="10115",
    country="DE",
)
NEW_YORK = Address(
    name="John Doe",
    line1="123 West 43rd St",
    city="New York",
    postal_code="10036",
    country="US",
    region="NY",
)
PRIVATE = ("Zoe", "Muller", "Hauptstrasse", "10115", "Berlin", "Dupont", "rue de la Paix")


@pytest.fixture(scope="module")
def service() -> Iterator[SendcloudFake]:
    with SendcloudFake() as running:
        yield running


@pytest.fixture
def fake(service: SendcloudFake) -> SendcloudFake:
    """The module's fake, with nothing sold, asked or scripted yet."""
    service.reset()
    return service


@pytest.fixture
def context(tmp_path: Path) -> Iterator[PluginContext]:
    with httpx.Client(timeout=1.0) as client:
        yield PluginContext(client=client, data_dir=tmp_path)


def settings_for(fake: SendcloudFake, **overrides: Any) -> dict[str, Any]:
    return {
        "public_key": Secret("SC_PUBLIC", fake.PUBLIC_KEY),
        "secret_key": Secret("SC_SECRET", fake.SECRET_KEY),
        "base_url": fake.url + "/api/v3",
        "shipping_option": "postnl:standard",
        **overrides,
    }


@pytest.fixture
def build(fake: SendcloudFake, context: PluginContext) -> Build:
    """``build(**settings)``: the adapter bound to the fake and the test's client."""

    def factory(context: PluginContext = context, **overrides: Any) -> SendcloudCarrier:
        return make_carrier(settings_for(fake, **overrides), context)

    return factory


@pytest.fixture
def carrier(build: Build) -> SendcloudCarrier:
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
        parcels=(Parcel(weight_g=1250, length_mm=305, width_mm=200, height_mm=95),),
        service=None,
        recipient_email="zoe@example.com",
    )
    return attrs.evolve(request, **changes)


def customs(hs_code: str | None = "691200") -> tuple[CustomsItem, ...]:
    return (
        CustomsItem(
            description="Mug",
            quantity=2,
            value=Money(Decimal("40.00"), "EUR"),
            weight_g=1000,
            origin_country="FR",
            sku="SKU-MUG",
            hs_code=hs_code,
        ),
    )


def last_json(fake: SendcloudFake, method: str, path: str) -> Any:
    return fake.requests_to(method, "/api/v3" + path)[-1].json()


def raised(call: Callable[[], Any]) -> CarrierError:
    with pytest.raises(CarrierError) as info:
        call()
    return info.value


# --- registration -----------------------------------------------------------------------


def test_registers_through_the_plugin_manager(fake: SendcloudFake, context: PluginContext) -> None:
    pm = make_plugin_manager([sendcloud], load_entrypoints=False)
    plugin = Hooks(pm).registry.carrier("sendcloud")

    assert isinstance(plugin, CarrierPlugin)
    assert plugin.capabilities == frozenset(Capability)
    assert plugin.countries == {"AT", "BE", "DE", "ES", "FR", "GB", "IT", "NL"}
    assert plugin.ships_from("FR") and not plugin.ships_from("US")
    assert plugin.services == ()  # any shipping option code of the account
    assert plugin.label_formats == ("PDF", "ZPL", "PNG")
    assert plugin.settings_schema is SETTINGS_SCHEMA
    assert plugin.rate_limit == pytest.approx(100 / 60)  # 100 POST a minute
    built = plugin.factory(settings_for(fake), context)
    assert isinstance(built, SendcloudCarrier) and isinstance(built, Carrier)
    assert built.client.http is context.client  # the core's client, never its own


def test_the_entry_point_names_the_package() -> None:
    (entry_point,) = [e for e in metadata.entry_points(group="fulfil") if e.name == "sendcloud"]
    assert entry_point.value == "fulfil.plugins.carriers.sendcloud"
    assert entry_point.load() is sendcloud


def test_import_defines_things_only() -> None:
    code = "import sys, fulfil.plugins.carriers.sendcloud\nassert 'jsonschema' not in sys.modules\n"
    subprocess.run([sys.executable, "-c", code], check=True)


# --- settings ---------------------------------------------------------------------------


def _properties(schema: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for name, sub in schema.get("properties", {}).items():
        yield name, sub
        yield from _properties(sub)


def test_settings_schema_is_valid_2020_12() -> None:
    Draft202012Validator.check_schema(SETTINGS_SCHEMA)
    assert SETTINGS_SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert SETTINGS_SCHEMA["additionalProperties"] is False
    assert SETTINGS_SCHEMA["required"] == ["public_key", "secret_key"]
    for name, sub in _properties(SETTINGS_SCHEMA):
        assert sub.get("description"), f"{name} has no description"
    defaults = {n: s["default"] for n, s in _properties(SETTINGS_SCHEMA) if "default" in s}
    assert defaults["base_url"] == "https://panel.sendcloud.sc/api/v3"
    assert defaults["label_format"] == "PDF"
    full = {"public_key": "env:SC_PUBLIC", "secret_key": "env:SC_SECRET", **defaults}
    Draft202012Validator(SETTINGS_SCHEMA).validate(full)


@pytest.mark.parametrize(
    ("changes", "path"),
    [
        ({"label_format": "GIF"}, "label_format"),
        ({"base_url": "ftp://example.com"}, "base_url"),
        ({"shipping_option": "postnl standard"}, "shipping_option"),
        ({"contract_id": 0}, "contract_id"),
        ({"currency": "eur"}, "currency"),
        ({"default_hs_code": "62A"}, "default_hs_code"),
        ({"timeout_s": 0}, "timeout_s"),
        ({"pickup_timezone": "Mars/Olympus"}, "pickup_timezone"),
        ({"colour": "red"}, "carriers.sendcloud:"),
        ({"secret_key": None}, "secret_key"),
    ],
)
def test_bad_settings_are_rejected(
    fake: SendcloudFake, context: PluginContext, changes: dict[str, Any], path: str
) -> None:
    settings = settings_for(fake, **changes)
    with pytest.raises(ConfigError) as info:
        make_carrier(settings, context)
    prefix = "" if path.endswith(":") else "carriers.sendcloud."
    assert f"{prefix}{path}" in str(info.value)
    assert fake.SECRET_KEY not in str(info.value)


def test_a_literal_key_is_refused_in_a_config_file(
    write_config: Callable[..., Path], load: Callable[[Path], Any]
) -> None:
    keys = {"public_key": "env:SC_PUBLIC", "secret_key": "sk_live_written_in_the_file"}
    path = write_config({"carriers": {"sendcloud": {"settings": keys}}})
    with pytest.raises(ValidationFailed) as info:
        load(path)
    assert "carriers.sendcloud.settings.secret_key" in str(info.value)


def test_resolved_keys_are_accepted_and_never_shown(
    fake: SendcloudFake, context: PluginContext
) -> None:
    carrier = make_carrier(
        settings_for(fake, public_key=fake.PUBLIC_KEY, secret_key=fake.SECRET_KEY), context
    )
    assert carrier.buy_label(label_request()).tracking_number
    for text in (repr(carrier), repr(carrier.settings), repr(carrier.client)):
        assert fake.SECRET_KEY not in text


# --- labels -----------------------------------------------------------------------------


def test_buy_label_announces_a_shipment_and_downloads_its_pdf(
    carrier: SendcloudCarrier, fake: SendcloudFake
) -> None:
    label = carrier.buy_label(label_request())

    (shipment,) = fake.shipments.values()
    (parcel,) = shipment["parcels"]
    assert label.tracking_number == parcel["tracking_number"]
    assert label.tracking_url == parcel["tracking_url"]
    assert label.carrier_reference == shipment["id"]
    assert label.service == "postnl:standard"
    assert label.format == "PDF"
    assert label.url == parcel["documents"][0]["link"]
    assert label.cost == Money(Decimal("0"), "EUR")  # Sendcloud invoices labels later
    assert label.document == fake.served_documents[-1]
    assert len(pypdf.PdfReader(io.BytesIO(label.document)).pages) == 1
    assert fake.sold == ["o1:s1:1"]

    sent = last_json(fake, "POST", "/shipments/announce")
    assert sent["external_reference_id"] == "o1:s1:1"
    assert sent["order_number"] == "1042"
    assert sent["ship_with"] == {
        "type": "shipping_option_code",
        "properties": {"shipping_option_code": "postnl:standard"},
    }
    assert sent["parcels"] == [
        {
            "weight": {"value": "1.250", "unit": "kg"},
            "dimensions": {"length": "30.5", "width": "20.0", "height": "9.5", "unit": "cm"},
        }
    ]
    assert sent["label_details"] == {"mime_type": "application/pdf", "dpi": 72}
    assert sent["to_address"] == {
        "name": "Zoe Muller",
        "address_line_1": "Hauptstrasse 5",
        "address_line_2": "Hinterhaus",
        "postal_code": "10115",
        "city": "Berlin",
        "country_code": "DE",
        "email": "zoe@example.com",
    }
    assert sent["from_address"]["company_name"] == "Dupont SARL"
    assert "customs_information" not in sent  # FR -> DE stays in the EU
    (announce, download) = fake.requests
    expected = base64.b64encode(f"{fake.PUBLIC_KEY}:{fake.SECRET_KEY}".encode()).decode()
    assert announce.headers["authorization"] == download.headers["authorization"]
    assert announce.headers["authorization"] == f"Basic {expected}"
    assert download.headers["accept"] == "application/pdf"


@pytest.mark.parametrize(
    ("label_format", "magic"),
    [("PDF", b"%PDF-"), ("ZPL", b"^XA"), ("PNG", b"\x89PNG\r\n\x1a\n")],
)
def test_label_bytes_are_exactly_what_sendcloud_served(
    build: Build, fake: SendcloudFake, tmp_path: Path, label_format: str, magic: bytes
) -> None:
    carrier = build(label_format=label_format)
    label = carrier.buy_label(label_request())

    assert label.format == label_format
    assert label.document is not None and label.document.startswith(magic)
    saved = tmp_path / f"label.{label_format.lower()}"
    saved.write_bytes(label.document)
    assert saved.read_bytes() == fake.served_documents[-1]
    mime = {"PDF": "application/pdf", "ZPL": "application/zpl", "PNG": "image/png"}[label_format]
    assert last_json(fake, "POST", "/shipments/announce")["label_details"]["mime_type"] == mime


def test_the_core_can_ask_for_another_format(carrier: SendcloudCarrier) -> None:
    label = carrier.buy_label(label_request(label_format="ZPL"))
    assert label.format == "ZPL" and label.document is not None
    assert label.document.startswith(b"^XA")


def test_several_parcels_come_as_one_document(
    carrier: SendcloudCarrier, fake: SendcloudFake
) -> None:
    parcels = (Parcel(weight_g=800), Parcel(weight_g=2300))
    label = carrier.buy_label(label_request(parcels=parcels))

    (shipment,) = fake.shipments.values()
    assert [p["weight"]["value"] for p in shipment["parcels"]] == ["0.800", "2.300"]
    assert label.tracking_number == shipment["parcels"][0]["tracking_number"]
    assert label.document == fake.served_documents[-1]
    assert len(pypdf.PdfReader(io.BytesIO(label.document)).pages) == 2
    (download,) = fake.requests_to("GET", "/api/v3/parcel-documents/label")
    assert download.query["parcels"] == [str(p["id"]) for p in shipment["parcels"]]


def test_routing_service_wins_over_the_default_option(
    carrier: SendcloudCarrier, fake: SendcloudFake
) -> None:
    label = carrier.buy_label(label_request(service="dpd:home"))
    assert label.service == "dpd:home"
    sent = last_json(fake, "POST", "/shipments/announce")
    assert sent["ship_with"]["properties"]["shipping_option_code"] == "dpd:home"


def test_no_shipping_option_at_all_is_a_validation_error(
    fake: SendcloudFake, context: PluginContext
) -> None:
    settings = settings_for(fake)
    del settings["shipping_option"]
    carrier = make_carrier(settings, context)
    error = raised(lambda: carrier.buy_label(label_request()))
    assert (error.kind, error.field) == ("validation", "service")
    assert fake.requests == []


def test_customs_are_declared_outside_the_eu(build: Build, fake: SendcloudFake) -> None:
    carrier = build(shipping_option="dhl_express:worldwide/incoterm=dap", contract_id=4195)
    request = label_request(recipient=NEW_YORK, customs=customs())
    label = carrier.buy_label(request)

    assert label.tracking_number
    sent = last_json(fake, "POST", "/shipments/announce")
    assert sent["customs_information"] == {
        "invoice_number": "1042",
        "export_reason": "commercial_goods",
        "export_type": "commercial_b2c",
    }
    assert sent["ship_with"]["properties"]["contract_id"] == 4195
    assert sent["to_address"]["state_province_code"] == "US-NY"
    (item,) = sent["parcels"][0]["parcel_items"]
    assert item == {
        "description": "Mug",
        "quantity": 2,
        "weight": {"value": 0.5, "unit": "kg"},  # per unit: the core gives line totals
        "price": {"value": "20.00", "currency": "EUR"},
        "origin_country": "FR",
        "hs_code": "691200",
        "sku": "SKU-MUG",
        "item_id": "SKU-MUG",
    }


def test_a_missing_hs_code_is_sendclouds_validation_error_unless_a_default_is_set(
    build: Build, fake: SendcloudFake
) -> None:
    request = label_request(
        recipient=NEW_YORK,
        customs=customs(hs_code=None),
        service="dhl_express:worldwide/incoterm=dap",
    )
    error = raised(lambda: build().buy_label(request))
    assert (error.kind, error.code, error.status_code) == ("validation", "required", 400)
    assert error.field == "parcels[0].parcel_items[0].hs_code"
    assert fake.sold == []

    label = build(default_hs_code="691200").buy_label(request)
    assert label.tracking_number
    item = last_json(fake, "POST", "/shipments/announce")["parcels"][0]["parcel_items"][0]
    assert item["hs_code"] == "691200"


# --- errors -----------------------------------------------------------------------------


def test_validation_errors_carry_sendclouds_field_code_and_message(
    carrier: SendcloudCarrier, fake: SendcloudFake
) -> None:
    bad = attrs.evolve(RECIPIENT, postal_code="00000")
    error = raised(lambda: carrier.buy_label(label_request(recipient=bad)))

    assert error.kind == "validation" and not error.transient
    assert (error.code, error.field, error.status_code) == (
        "invalid",
        "to_address.postal_code",
        400,
    )
    assert error.message == "Postal code 00000 is not valid for DE."
    assert error.carrier == "sendcloud"
    assert "to_address.postal_code" in str(error) and "[invalid]" in str(error)
    assert fake.sold == []


def test_every_problem_sendcloud_lists_reaches_the_message(
    carrier: SendcloudCarrier, fake: SendcloudFake
) -> None:
    bad = attrs.evolve(RECIPIENT, postal_code="00000", city="")
    error = raised(lambda: carrier.buy_label(label_request(recipient=bad, service="nope:none")))
    assert error.field == "to_address.city"
    assert "to_address.postal_code: Postal code 00000" in error.message
    assert "ship_with.properties.shipping_option_code: Shipping option nope:none" in error.message


def test_wrong_credentials_are_an_auth_error_that_shows_no_key(
    fake: SendcloudFake, context: PluginContext
) -> None:
    carrier = make_carrier(
        settings_for(fake, secret_key=Secret("SC_SECRET", "not-the-secret")), context
    )
    error = raised(lambda: carrier.buy_label(label_request()))

    assert (error.kind, error.status_code, error.code) == ("auth", 401, "authentication_failed")
    assert error.message == "Invalid username/password."
    assert "not-the-secret" not in str(error) and "not-the-secret" not in repr(error.args)
    assert fake.sold == []


def test_429_is_rate_limited_with_retry_after(
    carrier: SendcloudCarrier, fake: SendcloudFake
) -> None:
    body = {"errors": [{"status": "429", "code": "throttled", "detail": "Too many requests."}]}
    fake.fail_next(Response.json(429, body, {"Retry-After": "7"}))
    error = raised(lambda: carrier.buy_label(label_request()))

    assert (error.kind, error.status_code, error.retry_after) == ("rate_limited", 429, 7.0)
    assert error.transient and error.message == "Too many requests."
    assert fake.sold == []


def test_5xx_is_unavailable_then_a_retry_succeeds(
    carrier: SendcloudCarrier, fake: SendcloudFake
) -> None:
    fake.fail_next(Response(503, {"Content-Type": "text/html"}, b"<h1>Service Unavailable</h1>"))
    error = raised(lambda: carrier.buy_label(label_request()))
    assert (error.kind, error.status_code) == ("unavailable", 503) and error.transient
    assert "503" in error.message
    assert fake.sold == []

    label = carrier.buy_label(label_request())
    assert fake.sold == ["o1:s1:1"]
    assert (
        label.tracking_number
        == fake.shipments[label.carrier_reference or ""]["parcels"][0]["tracking_number"]
    )


def test_no_connection_is_unavailable(context: PluginContext) -> None:
    with SendcloudFake() as gone:
        settings = settings_for(gone)
    carrier = make_carrier(settings, context)  # nothing listens on that port any more
    error = raised(lambda: carrier.buy_label(label_request()))
    assert error.kind == "unavailable" and "cannot reach Sendcloud" in error.message


def test_timeout_after_the_request_was_received_is_reconciled_by_the_key(
    build: Build, fake: SendcloudFake, tmp_path: Path
) -> None:
    with httpx.Client(timeout=0.5) as impatient:
        flaky = build(context=PluginContext(client=impatient, data_dir=tmp_path))
        fake.hang_next(apply=True, seconds=2)
        error = raised(lambda: flaky.buy_label(label_request()))
        assert error.kind == "unknown_outcome" and error.unknown_outcome
        assert not error.transient
        assert fake.sold == ["o1:s1:1"]  # Sendcloud made it; the caller never heard

        found = flaky.find_label("o1:s1:1")
        assert found is not None
        (shipment,) = fake.shipments.values()
        assert found.tracking_number == shipment["parcels"][0]["tracking_number"]
        assert found.document == fake.served_documents[-1]

        again = flaky.buy_label(label_request())  # the same key: Sendcloud answers 409
        assert again == found
        assert fake.sold == ["o1:s1:1"]  # bought once
        assert len(fake.shipments) == 1


def test_find_label_of_an_unused_key_is_none(carrier: SendcloudCarrier) -> None:
    assert carrier.find_label("o9:s9:1") is None


def test_a_refused_announcement_is_rejected_with_the_carriers_reason(
    carrier: SendcloudCarrier, fake: SendcloudFake
) -> None:
    fake.refuse_announcement("Service error: the carrier is down.")
    error = raised(lambda: carrier.buy_label(label_request()))
    assert (error.kind, error.code) == ("rejected", "parcel_announcement_error")
    assert "the carrier is down" in error.message
    assert fake.sold == []
    assert raised(lambda: carrier.find_label("o1:s1:1")).kind == "rejected"


def test_a_document_that_cannot_be_fetched_is_an_unknown_outcome(
    carrier: SendcloudCarrier, fake: SendcloudFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = fake.handle

    def no_documents(request: Any) -> Response:
        if "/documents/" in request.path:
            body = {"errors": [{"status": "404", "code": "not_found", "detail": "Not found"}]}
            return Response.json(404, body)
        return original(request)

    monkeypatch.setattr(fake, "handle", no_documents)
    error = raised(lambda: carrier.buy_label(label_request()))
    assert error.kind == "unknown_outcome"  # bought: reconcile, never fall back elsewhere
    assert "could not be fetched" in error.message
    monkeypatch.undo()
    assert carrier.find_label("o1:s1:1") is not None
    assert fake.sold == ["o1:s1:1"]


def test_logs_carry_ids_and_no_secret_or_address(
    build: Build, fake: SendcloudFake, caplog: pytest.LogCaptureFixture
) -> None:
    carrier = build()
    token = base64.b64encode(f"{fake.PUBLIC_KEY}:{fake.SECRET_KEY}".encode()).decode()
    with caplog.at_level(logging.DEBUG):
        label = carrier.buy_label(label_request())
        carrier.find_label("o1:s1:1")
        carrier.cancel_label(label)
        fake.fail_next(Response.json(500, {"errors": []}))
        failed = raised(lambda: carrier.buy_label(label_request("o2:s2:1")))
        wrong = build(secret_key=Secret("SC_SECRET", "wrong-secret"))
        denied = raised(lambda: wrong.buy_label(label_request("o3:s3:1")))

    assert "o1:s1:1" in caplog.text and label.tracking_number in caplog.text
    for secret in (fake.SECRET_KEY, token, "wrong-secret"):
        assert secret not in caplog.text
        assert secret not in str(failed) and secret not in str(denied)
    for private in PRIVATE:
        assert private not in caplog.text


# --- rates, cancel, returns -------------------------------------------------------------


def test_quotes_for_every_option_or_one(carrier: SendcloudCarrier, fake: SendcloudFake) -> None:
    rates = carrier.quote(label_request())
    by_code = {r.service: r for r in rates}
    assert by_code["postnl:standard"].cost == Money(Decimal("6.95"), "EUR")
    assert by_code["postnl:standard"].days == 1
    assert by_code["dpd:home"].days == 2
    sent = last_json(fake, "POST", "/shipping-options")
    assert sent["calculate_quotes"] is True
    assert sent["from_address"] == {
        "country_code": "FR",
        "postal_code": "75002",
        "city": "Paris",
        "address_line_1": "12 rue de la Paix",
    }
    assert sent["parcels"][0]["weight"] == {"value": "1.250", "unit": "kg"}

    (one,) = carrier.quote(label_request(service="dpd:home"))
    assert (one.service, one.cost) == ("dpd:home", Money(Decimal("8.20"), "EUR"))
    assert last_json(fake, "POST", "/shipping-options")["shipping_option_code"] == "dpd:home"

    (back,) = carrier.quote(label_request(is_return=True))  # return options only
    assert back.service == "dpd:return/return"
    sent = last_json(fake, "POST", "/shipping-options")
    assert sent["from_address"]["country_code"] == "DE"
    assert sent["functionalities"] == {"returns": True}
    assert fake.sold == []


def test_cancel_voids_the_shipment_and_again_is_fine(
    carrier: SendcloudCarrier, fake: SendcloudFake
) -> None:
    bought = carrier.buy_label(label_request())
    stored = Label(
        carrier="sendcloud",
        service=bought.service,
        tracking_number=bought.tracking_number,
        format=bought.format,
        cost=bought.cost,
        carrier_reference=bought.carrier_reference,
    )
    carrier.cancel_label(stored)  # the worker passes the order's Label
    (shipment,) = fake.shipments.values()
    assert shipment["parcels"][0]["status"]["code"] == "CANCELLED"
    carrier.cancel_label(bought)  # 409 "already being cancelled": done already
    assert carrier.track(bought.tracking_number).status == "cancelled"

    by_tracking = attrs.evolve(stored, carrier_reference=None)
    carrier.cancel_label(by_tracking)  # found by tracking number
    assert carrier.find_label("o1:s1:1") == bought  # cancelled, still the label bought


def test_cancelling_an_unknown_shipment_is_rejected(carrier: SendcloudCarrier) -> None:
    ghost = PurchasedLabel("3SNONE", "PDF", Money(Decimal(0), "EUR"), "x", carrier_reference="nope")
    error = raised(lambda: carrier.cancel_label(ghost))
    assert (error.kind, error.status_code, error.code) == ("rejected", 404, "not_found")


def test_return_label_goes_from_the_customer_to_the_store(
    build: Build, fake: SendcloudFake
) -> None:
    carrier = build(return_shipping_option="dpd:return/return")
    label = carrier.buy_label(label_request("o1:s1:r1", is_return=True))

    (created,) = fake.returns.values()
    assert label.carrier_reference == f"return:{created['id']}"
    assert label.tracking_number == created["tracking_number"]
    assert label.service == "dpd:return/return"
    assert label.cost == Money(Decimal("5.6"), "EUR")
    assert label.document == fake.served_documents[-1]
    sent = last_json(fake, "POST", "/returns/announce-synchronously")
    assert sent["from_address"]["country_code"] == "DE"
    assert sent["to_address"]["country_code"] == "FR"
    assert sent["external_reference"] == "o1:s1:r1"
    assert sent["ship_with"] == {
        "type": "shipping_option_code",
        "shipping_option_code": "dpd:return/return",
    }
    assert sent["weight"] == {"value": 1.25, "unit": "kg"}
    assert fake.sold == ["o1:s1:r1"]

    carrier.cancel_label(label)
    carrier.cancel_label(label)  # cancellation already requested: done
    assert created["status_history"][-1]["parent_status"] == "Cancellation requested"


def test_return_under_a_used_reference_is_refused_not_bought_twice(
    build: Build, fake: SendcloudFake
) -> None:
    carrier = build(return_shipping_option="dpd:return/return")
    carrier.buy_label(label_request("o1:s1:r1", is_return=True))
    error = raised(lambda: carrier.buy_label(label_request("o1:s1:r1", is_return=True)))
    assert error.kind == "validation"
    assert error.message == "External reference has already been used in another return."
    assert fake.sold == ["o1:s1:r1"]


# --- pickups and tracking ---------------------------------------------------------------


def pickup_request(
    labels: list[PurchasedLabel], key: str = "pickup:sendcloud:2030-01-07:origin"
) -> PickupRequest:
    return PickupRequest(
        idempotency_key=key,
        day=date(2030, 1, 7),
        window_start="14:00",
        window_end="18:00",
        address=SENDER,
        tracking_numbers=tuple(label.tracking_number for label in labels),
        carrier_references=tuple(label.carrier_reference or "" for label in labels),
        parcel_count=len(labels),
        total_weight_g=1250 * len(labels),
    )


def test_pickups_are_booked_once_per_key_and_cancelled(build: Build, fake: SendcloudFake) -> None:
    carrier = build(pickup_carrier="dhl_express", pickup_timezone="Europe/Paris")
    labels = [carrier.buy_label(label_request(f"o{n}:s{n}:1")) for n in (1, 2)]

    booked = carrier.schedule_pickup(pickup_request(labels))
    again = carrier.schedule_pickup(pickup_request(labels))  # a retry of the same key
    assert booked == again
    (pickup,) = fake.pickups.values()
    assert booked.confirmation == str(pickup["id"])
    assert pickup["reference"] == "pickup:sendcloud:2030-01-07:origin"
    assert pickup["carrier_code"] == "dhl_express"
    assert pickup["time_slots"] == [
        {"start_at": "2030-01-07T14:00:00+01:00", "end_at": "2030-01-07T18:00:00+01:00"}
    ]
    assert pickup["items"] == [
        {
            "quantity": 2,
            "container_type": "parcel",
            "total_weight": {"value": "2.500", "unit": "kg"},
        }
    ]

    carrier.cancel_pickup(booked)
    carrier.cancel_pickup(booked)  # already cancelled: done
    assert pickup["status"] == "CANCELLED"
    error = raised(lambda: carrier.schedule_pickup(pickup_request(labels)))
    assert (error.kind, error.code) == ("rejected", "pickup_cancelled")


def test_pickups_go_to_the_carrier_of_the_labels(build: Build, fake: SendcloudFake) -> None:
    carrier = build()
    label = carrier.buy_label(label_request(service="dpd:home"))
    carrier.schedule_pickup(pickup_request([label]))
    (pickup,) = fake.pickups.values()
    assert pickup["carrier_code"] == "dpd"  # not the default option's postnl
    assert pickup["time_slots"][0]["start_at"] == "2030-01-07T14:00:00+00:00"
    (lookup,) = fake.requests_to("GET", "/api/v3/shipments")
    assert lookup.query["shipment_uuids"] == [label.carrier_reference]


def test_labels_of_several_carriers_need_a_pickup_carrier(
    carrier: SendcloudCarrier, fake: SendcloudFake
) -> None:
    labels = [
        carrier.buy_label(label_request("o1:s1:1", service="dpd:home")),
        carrier.buy_label(label_request("o2:s2:1")),
    ]
    error = raised(lambda: carrier.schedule_pickup(pickup_request(labels)))
    assert (error.kind, error.field) == ("validation", "pickup_carrier")
    assert "dpd, postnl" in error.message
    assert fake.pickups == {}


def test_pickup_validation_names_the_field(build: Build, fake: SendcloudFake) -> None:
    carrier = build(pickup_carrier="nobody")
    label = carrier.buy_label(label_request())
    error = raised(lambda: carrier.schedule_pickup(pickup_request([label])))
    assert (error.kind, error.field, error.code) == ("validation", "carrier_code", "invalid_choice")
    assert fake.pickups == {}


def test_track_maps_sendcloud_statuses(carrier: SendcloudCarrier, fake: SendcloudFake) -> None:
    label = carrier.buy_label(label_request())
    assert carrier.track(label.tracking_number).status == "pre_transit"

    fake.add_tracking_event(label.tracking_number, "at-sorting-centre")
    assert carrier.track(label.tracking_number).status == "in_transit"
    fake.add_tracking_event(label.tracking_number, "driver_on_route")
    assert carrier.track(label.tracking_number).status == "out_for_delivery"
    fake.add_tracking_event(label.tracking_number, "delivered", "Parcel delivered")
    info = carrier.track(label.tracking_number)
    assert info.status == "delivered"
    assert [e["code"] for e in info.events] == [
        "announced",
        "at-sorting-centre",
        "driver_on_route",
        "delivered",
    ]
    assert info.events[-1]["description"] == "Parcel delivered"


def test_track_an_unknown_number_is_rejected(carrier: SendcloudCarrier) -> None:
    error = raised(lambda: carrier.track("3SNOTHING"))
    assert (error.kind, error.status_code) == ("rejected", 404)
    assert error.message == "Parcel does not exist"


# --- end to end -------------------------------------------------------------------------


def test_a_paid_french_order_gets_one_sendcloud_label_through_the_engine(
    make_engine: Callable[..., Any], fake: SendcloudFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SC_PUBLIC", fake.PUBLIC_KEY)
    monkeypatch.setenv("SC_SECRET", fake.SECRET_KEY)
    engine = make_engine(
        {
            "carriers": {
                "sendcloud": {
                    "settings": {
                        "public_key": "env:SC_PUBLIC",
                        "secret_key": "env:SC_SECRET",
                        "base_url": fake.url + "/api/v3",
                        "pickup_timezone": "Europe/Paris",
                    }
                }
            },
            "routing": [
                {"country": "FR", "carrier": "sendcloud", "service": "postnl:standard"},
                {"country": "*", "carrier": "sandbox", "service": "standard"},
            ],
        }
    )
    engine.place([Order.from_mapping(order_data(1001))])
    engine.record_payment(["ord_1001"], "paid")
    with Worker(engine, backoff=lambda *a, **k: 0) as worker:
        worker.run()

    order = engine.get("ord_1001")
    (shipment,) = order.shipments
    assert shipment.label is not None and shipment.label.carrier == "sendcloud"
    assert fake.sold == [f"ord_1001:{shipment.id}:1"]  # exactly one label, under the key
    (created,) = fake.shipments.values()
    assert shipment.tracking_number == created["parcels"][0]["tracking_number"]
    assert shipment.label.carrier_reference == created["id"]
    assert Path(shipment.label.document_path or "").read_bytes() == fake.served_documents[-1]
    (pickup,) = fake.pickups.values()
    assert pickup["reference"].startswith("pickup:sendcloud:")
    assert order.fulfilment_status is FulfilmentStatus.SHIPPED
