"""The Shippo adapter, through real HTTP on loopback against ``FakeShippo``.

Each test follows a documented Shippo shape; the documentation it follows:

- registration, rate limit (500 POST a minute per endpoint, live):
  https://docs.goshippo.com/docs/api_concepts/ratelimits/
  -> test_registers_with_its_capabilities_countries_and_rate_limit
- origins (carrier capabilities, e.g. Colissimo from France):
  https://docs.goshippo.com/docs/carriers/carriercapabilities/ and
  https://docs.goshippo.com/docs/carriers/integration_guides/colissimo/create_shipment
  -> test_registers_with_its_capabilities_countries_and_rate_limit
- settings (label_file_type tokens https://docs.goshippo.com/docs/shipments/shippinglabelsizes/,
  SHIPPO-API-VERSION https://docs.goshippo.com/docs/api_concepts/apiversioning/)
  -> test_settings_schema_*, test_api_version_header_is_sent_only_when_set
- authentication ``Authorization: ShippoToken <token>``, 401 ``{"detail": ...}``:
  https://docs.goshippo.com/docs/guides_general/authentication/
  -> test_auth_failure_*, test_token_appears_in_no_log_record_nor_error
- two-call label (POST /shipments/ then POST /transactions/ {rate, label_file_type,
  async: false, metadata}): https://docs.goshippo.com/docs/guides_general/generate_shipping_label/
  and https://docs.goshippo.com/api-reference/transactions/create-a-shipping-label
  -> test_two_call_label_*, test_saved_bytes_are_exactly_what_the_server_returned
- one-call (instalabel) label (shipment + carrier_account + servicelevel_token):
  https://docs.goshippo.com/api-reference/transactions/create-a-shipping-label
  -> test_one_call_label_*
- async false: https://docs.goshippo.com/docs/api_concepts/asynchronusapicall/
  -> test_two_call_label_*
- shipment, parcel units (kg, cm), extra: https://docs.goshippo.com/docs/shipments/shipments/
  -> test_two_call_label_*, test_units_convert_at_the_edge
- customs declarations (POST /customs/declarations/, items):
  https://docs.goshippo.com/docs/international_shipping/internationalshipping
  -> test_customs_declaration_is_created_and_referenced
- returns (extra.is_return, addresses not swapped): https://docs.goshippo.com/docs/shipments/returns/
  -> test_return_label_sets_is_return_and_keeps_the_addresses
- rates: https://docs.goshippo.com/docs/shipments/shipments/ -> test_quote_*
- refunds (POST /refunds/ {transaction}): https://docs.goshippo.com/api-reference/refunds/create-a-refund
  and https://docs.goshippo.com/docs/billing_and_invoices/refundinglabels/
  -> test_cancel_label_*
- pickups (POST /pickups/, no cancel through the API):
  https://docs.goshippo.com/api-reference/pickups/create-a-pickup and
  https://docs.goshippo.com/docs/manifests_and_pickups/pickups -> test_pickup_*
- tracking (GET /tracks/{carrier}/{tracking_number}, statuses):
  https://docs.goshippo.com/api-reference/tracking-status/get-a-tracking-status and
  https://docs.goshippo.com/docs/tracking/tracking/ -> test_track_*
- HTTP status codes (400, 401, 404, 429, 5xx):
  https://docs.goshippo.com/docs/api_concepts/apihttpstatuscodes
  -> test_validation_error_*, test_rate_limited_*, test_5xx_*, test_connection_refused_*
- 400 bodies ``{field: [messages]}`` (observed, e.g.
  https://github.com/goshippo/shippo-ruby-client/issues/28): -> test_validation_error_*
- transaction ``status: "ERROR"`` with ``messages: [{source, code, text}]``:
  https://docs.goshippo.com/api-reference/transactions/create-a-shipping-label
  -> test_transaction_error_*
- no idempotency key is documented for POST /transactions/ (the beta Automations API has
  one: https://docs.goshippo.com/automations/automations): the adapter's ledger and the
  metadata stand in -> test_a_key_bought_before_*, test_a_purchase_left_in_doubt_*
- listing transactions (reconciliation by metadata; no metadata filter is documented):
  https://docs.goshippo.com/api-reference/transactions/list-all-shipping-labels
  -> test_timeout_after_the_request_was_received_*, test_find_label_*
- retrieving a rate named by id: https://docs.goshippo.com/api-reference/rates/retrieve-a-rate
  -> test_find_label_looks_up_a_rate_named_by_id
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator
from datetime import date
from decimal import Decimal
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
    CustomsItem,
    LabelRequest,
    PickupConfirmation,
    PickupRequest,
)
from fulfil.core.context import PluginContext
from fulfil.core.errors import CarrierError, ConfigError, ValidationFailed
from fulfil.core.models import Address, Label, Money, Order, Parcel
from fulfil.core.plugins import Hooks, make_plugin_manager
from fulfil.core.secrets import Secret
from fulfil.core.states import FulfilmentStatus
from fulfil.core.worker import Worker
from fulfil.plugins.carriers.shippo import (
    RATE_LIMIT,
    SETTINGS_SCHEMA,
    ShippoCarrier,
    ShippoSettings,
    make_carrier,
)
from fulfil.testing.fakes.shippo import INVALID_ZIP, FakeShippo
from fulfil.testing.server import Response
from jsonschema import Draft202012Validator

Build = Callable[..., ShippoCarrier]

US_SENDER = Address(
    name="Hippo Goods",
    company="Hippo Goods LLC",
    line1="215 Clayton St.",
    city="San Francisco",
    region="CA",
    postal_code="94117",
    country="US",
    phone="+14155550100",
)
US_RECIPIENT = Address(
    name="Sam Lee",
    line1="965 Mission St",
    line2="Apt 201",
    city="San Francisco",
    region="CA",
    postal_code="94103",
    country="US",
)
FR_SENDER = Address(
    name="Atelier Dupont",
    line1="12 rue de la Paix",
    city="Paris",
    postal_code="75002",
    country="FR",
    phone="+33142685300",
)
GB_RECIPIENT = Address(
    name="Zoe Miller",
    line1="221B Baker Street",
    city="London",
    postal_code="NW1 6XE",
    country="GB",
    phone="+442079460000",
)


@pytest.fixture
def fake() -> Iterator[FakeShippo]:
    with FakeShippo() as service:
        yield service


@pytest.fixture
def context(tmp_path: Path) -> Iterator[PluginContext]:
    with httpx.Client(timeout=1.0) as client:
        yield PluginContext(client=client, data_dir=tmp_path)


@pytest.fixture
def build(fake: FakeShippo, context: PluginContext) -> Build:
    """``build(**settings)``: a carrier on the fake, the token passed as core resolves it."""

    def factory(context: PluginContext = context, **settings: Any) -> ShippoCarrier:
        settings.setdefault("api_token", Secret("SHIPPO_API_TOKEN", fake.token))
        settings.setdefault("base_url", fake.url)
        return make_carrier(settings, context)

    return factory


@pytest.fixture
def elsewhere(context: PluginContext, tmp_path: Path) -> PluginContext:
    """Another host: same Shippo account, its own data folder (so its own ledger)."""
    return PluginContext(client=context.client, data_dir=tmp_path / "other-host")


def request(key: str = "o1:s1:1", **changes: Any) -> LabelRequest:
    order_id, shipment_id = key.split(":")[:2]
    base = LabelRequest(
        idempotency_key=key,
        order_id=order_id,
        order_number=1042,
        shipment_id=shipment_id,
        sender=US_SENDER,
        recipient=US_RECIPIENT,
        parcels=(Parcel(weight_g=1250),),
        service=None,
        recipient_email="sam@example.com",
    )
    return attrs.evolve(base, **changes)


def posted(fake: FakeShippo, path: str) -> list[Any]:
    return [r.json() for r in fake.requests_to("POST", path)]


def one_call(build: Build, **settings: Any) -> ShippoCarrier:
    return build(carrier_account="ca_usps", servicelevel="usps_priority", **settings)


# --- registration and settings -------------------------------------------------------------


def test_registers_with_its_capabilities_countries_and_rate_limit() -> None:
    plugin = Hooks(make_plugin_manager()).registry.carriers["shippo"]
    assert plugin.capabilities == set(Capability)
    assert plugin.ships_from("FR") and plugin.ships_from("US") and plugin.ships_from("GB")
    assert not plugin.ships_from("BR")
    assert plugin.label_formats == ("PDF", "ZPL", "PNG")
    assert plugin.services == ()  # any servicelevel token
    assert plugin.rate_limit == RATE_LIMIT == pytest.approx(500 / 60)
    assert plugin.settings_schema is SETTINGS_SCHEMA


def test_carrier_implements_the_contract(build: Build) -> None:
    carrier = build()
    assert isinstance(carrier, Carrier)
    for operation in ("quote", "cancel_label", "schedule_pickup", "cancel_pickup", "track"):
        assert callable(getattr(carrier, operation))
    assert "shippo_test" not in repr(carrier)


def test_settings_schema_is_valid_2020_12_and_accepts_a_reference() -> None:
    Draft202012Validator.check_schema(SETTINGS_SCHEMA)
    validator = Draft202012Validator(SETTINGS_SCHEMA)
    assert validator.is_valid({"api_token": "env:SHIPPO_API_TOKEN"})
    assert validator.is_valid(
        {
            "api_token": "env:SHIPPO_API_TOKEN",
            "base_url": "https://api.goshippo.com",
            "api_version": "2018-02-08",
            "label_file_type": "ZPLII",
            "carrier_account": "b741b99f95e841639b54272834bc478c",
            "servicelevel": "usps_priority",
            "pickup_location_type": "Other",
            "pickup_instructions": "Ring twice",
        }
    )
    for key, value in SETTINGS_SCHEMA["properties"].items():
        assert value.get("description"), key


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"api_token": "shippo_live_0123456789"},  # a pasted token, not a reference
        {"api_token": "env:SHIPPO_API_TOKEN", "label_file_type": "GIF"},
        {"api_token": "env:SHIPPO_API_TOKEN", "api_version": "latest"},
        {"api_token": "env:SHIPPO_API_TOKEN", "reconcile_pages": 0},
        {"api_token": "env:SHIPPO_API_TOKEN", "pickup_location_type": "Other"},
        {"api_token": "env:SHIPPO_API_TOKEN", "carrier_acount": "typo"},
    ],
)
def test_settings_schema_rejects_bad_settings(settings: dict[str, Any]) -> None:
    assert not Draft202012Validator(SETTINGS_SCHEMA).is_valid(settings)


def test_settings_factory_refuses_a_literal_token_without_echoing_it(
    context: PluginContext,
) -> None:
    with pytest.raises(ConfigError) as raised:
        make_carrier({"api_token": "shippo_live_0123456789"}, context)
    assert "carriers.shippo.settings.api_token" in str(raised.value)
    assert "shippo_live_0123456789" not in str(raised.value)
    with pytest.raises(ConfigError, match="pickup_timezone"):
        ShippoSettings.from_mapping(
            {"api_token": Secret("T", "x"), "pickup_timezone": "Mars/Olympus"}
        )


def test_settings_schema_rejects_a_literal_token_in_the_config_file(
    write_config: Callable[..., Path], load: Callable[[Path], Any]
) -> None:
    path = write_config({"carriers": {"shippo": {"settings": {"api_token": "shippo_live_x"}}}})
    with pytest.raises(ValidationFailed, match=r"carriers\.shippo\.settings\.api_token"):
        load(path)


def test_api_version_header_is_sent_only_when_set(build: Build, fake: FakeShippo) -> None:
    build().quote(request())
    build(api_version="2018-02-08").quote(request(key="o1:s1:2"))
    first, second = fake.requests_to("POST", "/shipments")
    assert "shippo-api-version" not in first.headers
    assert second.headers["shippo-api-version"] == "2018-02-08"
    assert first.headers["authorization"] == f"ShippoToken {fake.token}"


# --- labels ---------------------------------------------------------------------------------


def test_two_call_label_posts_the_shipment_then_buys_the_cheapest_rate(
    build: Build, fake: FakeShippo
) -> None:
    label = build().buy_label(request())

    (shipment,) = posted(fake, "/shipments")
    assert shipment["async"] is False and shipment["metadata"] == "o1:s1:1"
    assert shipment["address_from"]["street1"] == "215 Clayton St."
    assert shipment["address_to"]["email"] == "sam@example.com"
    assert shipment["extra"] == {"reference_1": "#1042"}
    (transaction,) = posted(fake, "/transactions")
    cheapest = min(fake.rates.values(), key=lambda r: Decimal(r["amount"]))
    assert transaction == {
        "rate": cheapest["object_id"],
        "label_file_type": "PDF_4x6",
        "metadata": "o1:s1:1",
        "async": False,
    }
    (sold,) = fake.sold
    assert label.tracking_number == sold["tracking_number"]
    assert label.carrier_reference == sold["object_id"]
    assert label.service == "usps_ground_advantage"
    assert label.cost == Money(Decimal(cheapest["amount"]), "USD")
    assert label.format == "PDF"
    assert label.tracking_url == sold["tracking_url_provider"]
    assert label.url == sold["label_url"]


def test_two_call_label_buys_the_rate_of_the_requested_service(
    build: Build, fake: FakeShippo
) -> None:
    label = build().buy_label(request(service="usps_priority"))
    assert label.service == "usps_priority"
    rate = fake.rates[posted(fake, "/transactions")[0]["rate"]]
    assert rate["servicelevel"]["token"] == "usps_priority"


def test_two_call_label_refuses_a_service_shippo_does_not_offer(
    build: Build, fake: FakeShippo
) -> None:
    with pytest.raises(CarrierError) as raised:
        build().buy_label(request(service="ups_ground"))
    assert raised.value.kind == "validation" and raised.value.field == "service"
    assert "usps_priority" in raised.value.message  # what is offered instead
    assert not fake.sold and not fake.requests_to("POST", "/transactions")


def test_one_call_label_buys_with_carrier_account_and_servicelevel(
    build: Build, fake: FakeShippo
) -> None:
    label = one_call(build).buy_label(request())
    assert not fake.requests_to("POST", "/shipments")
    (body,) = posted(fake, "/transactions")
    assert body["carrier_account"] == "ca_usps"
    assert body["servicelevel_token"] == "usps_priority"
    assert body["metadata"] == "o1:s1:1" and body["async"] is False
    assert body["shipment"]["address_to"]["zip"] == "94103"
    assert len(fake.sold) == 1 and label.service == "usps_priority"


def test_units_convert_at_the_edge(build: Build, fake: FakeShippo) -> None:
    parcel = Parcel(weight_g=1250, length_mm=305, width_mm=200, height_mm=95)
    build().buy_label(request(parcels=(parcel, Parcel(weight_g=80))))
    first, second = posted(fake, "/shipments")[0]["parcels"]
    assert first == {
        "length": "30.5",
        "width": "20",
        "height": "9.5",
        "distance_unit": "cm",
        "weight": "1.25",
        "mass_unit": "kg",
    }
    assert second["weight"] == "0.08"


def test_saved_bytes_are_exactly_what_the_server_returned(build: Build, fake: FakeShippo) -> None:
    label = build().buy_label(request())
    assert label.document == fake.label_bytes(label.carrier_reference)
    reader = pypdf.PdfReader(io.BytesIO(label.document))
    assert label.tracking_number in reader.pages[0].extract_text()
    (download,) = fake.requests_to("GET", "/labels/")
    assert "authorization" not in download.headers  # the token never leaves for label hosts


@pytest.mark.parametrize(
    ("asked", "setting", "sent", "starts"),
    [
        ("PDF", "PDF_4x6", "PDF_4x6", b"%PDF"),
        ("PDF", "PDF_A4", "PDF_A4", b"%PDF"),
        ("PDF", "ZPLII", "ZPLII", b"^XA"),  # PDF is fulfil's default: the setting decides
        ("ZPL", "PDF_4x6", "ZPLII", b"^XA"),
        ("PNG", "PDF_4x6", "PNG", b"\x89PNG\r\n\x1a\n"),
    ],
)
def test_label_formats_map_to_shippo_label_file_types(
    build: Build, fake: FakeShippo, asked: str, setting: str, sent: str, starts: bytes
) -> None:
    label = build(label_file_type=setting).buy_label(request(label_format=asked))
    assert posted(fake, "/transactions")[0]["label_file_type"] == sent
    assert label.document is not None and label.document.startswith(starts)
    assert label.format == ("ZPL" if sent == "ZPLII" else sent[:3])


def test_customs_declaration_is_created_and_referenced(build: Build, fake: FakeShippo) -> None:
    customs = (
        CustomsItem("Mug", 2, Money("40.00", "EUR"), 1000, "FR", sku="MUG-1", hs_code="691200"),
    )
    build().buy_label(request(sender=FR_SENDER, recipient=GB_RECIPIENT, customs=customs))
    (declaration,) = posted(fake, "/customs/declarations")
    assert declaration["certify"] is True and declaration["certify_signer"] == "Atelier Dupont"
    assert declaration["contents_type"] == "MERCHANDISE"
    assert declaration["non_delivery_option"] == "RETURN"
    assert declaration["incoterm"] == "DDU" and "eel_pfc" not in declaration
    assert declaration["items"] == [
        {
            "description": "Mug",
            "quantity": 2,
            "net_weight": "1",
            "mass_unit": "kg",
            "value_amount": "40",
            "value_currency": "EUR",
            "origin_country": "FR",
            "sku_code": "MUG-1",
            "hs_code": "691200",
        }
    ]
    (declared_id,) = fake.declarations
    assert posted(fake, "/shipments")[0]["customs_declaration"] == declared_id
    assert len(fake.sold) == 1


def test_return_label_sets_is_return_and_keeps_the_addresses(
    build: Build, fake: FakeShippo
) -> None:
    build().buy_label(request(is_return=True))
    (shipment,) = posted(fake, "/shipments")
    assert shipment["extra"]["is_return"] is True
    assert shipment["address_from"]["name"] == US_SENDER.name  # Shippo swaps them itself
    assert shipment["address_to"]["name"] == US_RECIPIENT.name


def test_a_key_bought_before_is_not_bought_again_by_any_worker_of_the_data_folder(
    build: Build, fake: FakeShippo, context: PluginContext
) -> None:
    first = build().buy_label(request())
    again = build().buy_label(request())  # another worker process, same data folder
    assert again == first  # same label, same bytes, from the ledger
    assert len(fake.sold) == 1
    assert len(fake.requests_to("POST", "/transactions")) == 1
    ledger_file = (context.data_dir / "shippo-ledger.sqlite").read_bytes()
    assert fake.token.encode() not in ledger_file


def test_a_purchase_left_in_doubt_is_looked_up_by_the_next_worker(
    fake: FakeShippo, build: Build, tmp_path: Path, context: PluginContext
) -> None:
    with httpx.Client(timeout=0.5) as impatient:
        worker = one_call(build, context=PluginContext(client=impatient, data_dir=tmp_path))
        fake.hang_next(apply=True, seconds=2)
        with pytest.raises(CarrierError, match="unknown_outcome"):
            worker.buy_label(request())
    # The engine would call find_label; a worker that was killed would simply buy again.
    label = one_call(build).buy_label(request())
    (sold,) = fake.sold
    assert label.tracking_number == sold["tracking_number"]
    calls = [(r.method, r.path) for r in fake.requests if r.path.startswith("/transactions")]
    assert calls == [("POST", "/transactions/"), ("GET", "/transactions/")]


# --- reconciliation -------------------------------------------------------------------------


def test_timeout_after_the_request_was_received_is_unknown_then_found_once(
    fake: FakeShippo, build: Build, tmp_path: Path
) -> None:
    with httpx.Client(timeout=0.5) as impatient:
        carrier = one_call(build, context=PluginContext(client=impatient, data_dir=tmp_path))
        fake.hang_next(apply=True, seconds=2)
        with pytest.raises(CarrierError) as raised:
            carrier.buy_label(request())
        assert raised.value.kind == "unknown_outcome"
        assert len(fake.sold) == 1  # Shippo did buy it

        found = carrier.find_label("o1:s1:1")
    assert found is not None
    (sold,) = fake.sold
    assert found.tracking_number == sold["tracking_number"]
    assert found.carrier_reference == sold["object_id"]
    assert found.service == "usps_priority" and found.cost.amount > 0
    assert found.document == fake.label_bytes(sold["object_id"])
    assert fake.requests_to("GET", "/transactions")  # found by listing, matched on metadata
    assert len(fake.sold) == 1


def test_find_label_on_another_host_matches_metadata(
    build: Build, fake: FakeShippo, elsewhere: PluginContext
) -> None:
    bought = build().buy_label(request())
    build().buy_label(request(key="o2:s1:1"))
    found = build(context=elsewhere).find_label("o1:s1:1")  # no ledger there: Shippo is asked
    assert found == bought  # same tracking number, cost, service, reference and bytes
    assert build(context=elsewhere).find_label("o9:s9:1") is None
    assert len(fake.requests_to("GET", "/transactions")) == 2
    assert len(fake.sold) == 2


def test_find_label_looks_up_a_rate_named_by_id(
    build: Build, fake: FakeShippo, elsewhere: PluginContext
) -> None:
    bought = build().buy_label(request())
    fake.rate_as_id = True
    found = build(context=elsewhere).find_label("o1:s1:1")
    assert found == bought
    (lookup,) = fake.requests_to("GET", "/rates/")
    assert lookup.path == f"/rates/{fake.sold[0]['rate']['object_id']}"


def test_find_label_pages_through_recent_transactions(
    build: Build, fake: FakeShippo, elsewhere: PluginContext
) -> None:
    carrier = build()
    for n in range(3):
        carrier.buy_label(request(key=f"o{n}:s1:1"))
    oldest = build(context=elsewhere, reconcile_pages=5).find_label("o0:s1:1")
    assert oldest is not None
    fake_pages = [r.query for r in fake.requests_to("GET", "/transactions")]
    assert fake_pages[0] == {"results": ["100"], "page": ["1"]}


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "field"),
    [({}, "address_to.zip"), ({"carrier_account": "ca_usps"}, "address_to.zip")],
)
def test_validation_error_names_the_field_and_keeps_shippos_message(
    build: Build, fake: FakeShippo, settings: dict[str, Any], field: str
) -> None:
    bad = attrs.evolve(US_RECIPIENT, postal_code=INVALID_ZIP)
    carrier = build(**settings)
    with pytest.raises(CarrierError) as raised:
        carrier.buy_label(request(recipient=bad, service="usps_priority"))
    error = raised.value
    assert error.kind == "validation" and error.status_code == 400
    expected = field if "carrier_account" not in settings else f"shipment.{field}"
    assert error.field == expected
    assert error.message == "The postal code 00000 is not valid for US."
    assert not fake.sold


def test_transaction_error_keeps_the_carriers_code_and_text(build: Build, fake: FakeShippo) -> None:
    fake.fail_purchase("invalid_address", "Address not found by the carrier.", source="USPS")
    with pytest.raises(CarrierError) as raised:
        build().buy_label(request())
    assert raised.value.kind == "validation"
    assert raised.value.code == "invalid_address"
    assert raised.value.message == "USPS: Address not found by the carrier."
    assert not fake.sold
    assert build().find_label("o1:s1:1") is None  # a failed purchase bought nothing


def test_auth_failure_is_auth_and_shows_shippos_detail(fake: FakeShippo, build: Build) -> None:
    wrong = Secret("SHIPPO_API_TOKEN", "shippo_test_wrong_token_123")
    with pytest.raises(CarrierError) as raised:
        build(api_token=wrong).buy_label(request())
    assert raised.value.kind == "auth" and raised.value.status_code == 401
    assert raised.value.message == "Token does not exist"
    assert "shippo_test_wrong_token_123" not in str(raised.value)


def test_rate_limited_keeps_retry_after(build: Build, fake: FakeShippo) -> None:
    throttled = {"detail": "Request was throttled. Expected available in 7 seconds."}
    fake.fail_next(Response.json(429, throttled, {"Retry-After": "7"}))
    with pytest.raises(CarrierError) as raised:
        build().buy_label(request())
    assert raised.value.kind == "rate_limited" and raised.value.transient
    assert raised.value.retry_after == 7.0
    assert "throttled" in raised.value.message
    assert not fake.sold


def test_5xx_is_unavailable_then_the_retry_succeeds(build: Build, fake: FakeShippo) -> None:
    carrier = build()
    fake.fail_next(Response.json(503, {"detail": "Service temporarily unavailable."}))
    with pytest.raises(CarrierError) as raised:
        carrier.buy_label(request())
    assert raised.value.kind == "unavailable" and raised.value.status_code == 503
    assert carrier.buy_label(request()).tracking_number == fake.sold[0]["tracking_number"]
    assert len(fake.sold) == 1


def test_5xx_on_the_purchase_is_looked_up_before_buying_again(
    build: Build, fake: FakeShippo
) -> None:
    fake.fail_next(Response.json(502, {"detail": "Bad gateway."}))
    with pytest.raises(CarrierError) as raised:
        one_call(build).buy_label(request())
    assert raised.value.kind == "unavailable"
    one_call(build).buy_label(request())  # the engine's retry, maybe from another worker
    methods = [(r.method, r.path) for r in fake.requests if r.path.startswith("/transactions")]
    assert methods == [
        ("POST", "/transactions/"),
        ("GET", "/transactions/"),  # reconciled first
        ("POST", "/transactions/"),
    ]
    assert len(fake.sold) == 1


def test_connection_refused_is_unavailable(context: PluginContext) -> None:
    carrier = make_carrier(
        {"api_token": Secret("T", "shippo_test_x"), "base_url": "http://127.0.0.1:9"}, context
    )
    with pytest.raises(CarrierError) as raised:
        carrier.buy_label(request())
    assert raised.value.kind == "unavailable"


def test_token_appears_in_no_log_record_nor_error(
    build: Build, fake: FakeShippo, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    carrier = one_call(build)
    errors: list[CarrierError] = []
    label = carrier.buy_label(request())
    carrier.track(label.tracking_number)
    carrier.cancel_label(label)
    fake.fail_next(Response.json(429, {"detail": f"echo ShippoToken {fake.token}"}))
    fake.fail_purchase("x", "y")
    for key in ("o2:s1:1", "o3:s1:1"):
        try:
            carrier.buy_label(request(key=key))
        except CarrierError as error:
            errors.append(error)
    try:
        build(api_token=Secret("T", "shippo_test_other")).quote(request())
    except CarrierError as error:
        errors.append(error)
    assert len(errors) == 3
    assert caplog.records  # the carrier does log, ids only
    for record in caplog.records:
        assert fake.token not in record.getMessage()
        assert "shippo_test_other" not in record.getMessage()
    for error in errors:
        assert fake.token not in str(error) and "shippo_test_other" not in str(error)
        assert fake.token not in repr(error.args)


# --- rates, refunds, pickups, tracking ------------------------------------------------------


def test_quote_lists_every_rate_or_the_requested_one(build: Build, fake: FakeShippo) -> None:
    rates = build().quote(request())
    assert {r.service for r in rates} == {
        "usps_ground_advantage",
        "usps_priority",
        "dhl_express_worldwide",
    }
    assert all(r.cost.currency == "USD" and r.days for r in rates)
    (one,) = build().quote(request(service="dhl_express_worldwide"))
    assert one.service == "dhl_express_worldwide" and one.days == 3
    assert not fake.sold and not fake.requests_to("POST", "/transactions")


def test_quote_of_an_unknown_service_is_a_validation_error(build: Build) -> None:
    with pytest.raises(CarrierError) as raised:
        build().quote(request(service="fedex_ground"))
    assert raised.value.field == "service"


def test_cancel_label_requests_one_refund_even_when_retried(build: Build, fake: FakeShippo) -> None:
    bought = build().buy_label(request())
    label = Label(
        carrier="shippo",
        service=bought.service,
        tracking_number=bought.tracking_number,
        format=bought.format,
        cost=bought.cost,
        carrier_reference=bought.carrier_reference,
    )
    carrier = build()
    carrier.cancel_label(label)
    carrier.cancel_label(label)  # the worker retries: no second refund request
    assert posted(fake, "/refunds") == [{"transaction": bought.carrier_reference, "async": False}]
    assert fake.transactions[bought.carrier_reference]["status"] == "REFUNDED"
    assert build().find_label("o1:s1:1") is not None  # refunded, still the key's label


def test_cancel_label_without_a_transaction_is_rejected(build: Build) -> None:
    label = Label("shippo", "usps_priority", "9400", "PDF", Money("5", "USD"))
    with pytest.raises(CarrierError) as raised:
        build().cancel_label(label)
    assert raised.value.kind == "rejected"


def pickup(labels: list[Any], key: str = "pickup:shippo:2030-01-07:origin") -> PickupRequest:
    return PickupRequest(
        idempotency_key=key,
        day=date(2030, 1, 7),
        window_start="14:00",
        window_end="18:00",
        address=US_SENDER,
        tracking_numbers=tuple(label.tracking_number for label in labels),
        carrier_references=tuple(label.carrier_reference for label in labels),
        parcel_count=len(labels),
        total_weight_g=1250 * len(labels),
    )


def test_pickup_is_booked_once_with_the_window_in_utc(build: Build, fake: FakeShippo) -> None:
    carrier = one_call(build, pickup_timezone="America/Los_Angeles")
    labels = [carrier.buy_label(request(key=f"o{n}:s1:1")) for n in range(2)]
    confirmation = carrier.schedule_pickup(pickup(labels))
    again = carrier.schedule_pickup(pickup(labels))
    assert confirmation == again
    (body,) = posted(fake, "/pickups")
    assert body["carrier_account"] == "ca_usps"
    assert body["transactions"] == [label.carrier_reference for label in labels]
    assert body["requested_start_time"] == "2030-01-07T22:00:00Z"  # 14:00 PST
    assert body["requested_end_time"] == "2030-01-08T02:00:00Z"
    assert body["location"]["building_location_type"] == "Front Door"
    assert body["location"]["address"]["zip"] == "94117"
    assert body["metadata"] == "pickup:shippo:2030-01-07:origin"
    assert confirmation.confirmation == fake.pickups[0]["confirmation_code"]
    assert confirmation.carrier_reference == fake.pickups[0]["object_id"]


def test_pickup_needs_a_carrier_account(build: Build, fake: FakeShippo) -> None:
    label = build().buy_label(request())
    with pytest.raises(CarrierError) as raised:
        build().schedule_pickup(pickup([label]))
    assert raised.value.kind == "validation" and raised.value.field == "carrier_account"
    assert not fake.pickups


def test_pickup_refused_by_shippo_names_the_field(build: Build, fake: FakeShippo) -> None:
    label = attrs.evolve(one_call(build).buy_label(request()), carrier_reference="nope")
    with pytest.raises(CarrierError) as raised:
        one_call(build).schedule_pickup(pickup([label]))
    assert raised.value.kind == "validation" and raised.value.field == "transactions"


def test_pickup_window_that_is_not_hh_mm_is_a_validation_error(build: Build) -> None:
    carrier = one_call(build)
    label = carrier.buy_label(request())
    with pytest.raises(CarrierError) as raised:
        carrier.schedule_pickup(attrs.evolve(pickup([label]), window_start="2pm"))
    assert raised.value.kind == "validation" and raised.value.field == "window_start"


def test_pickup_cannot_be_cancelled_through_shippo(build: Build) -> None:
    with pytest.raises(CarrierError) as raised:
        build().cancel_pickup(PickupConfirmation("WTC000000001", "abc"))
    assert raised.value.kind == "rejected"
    assert raised.value.code == "pickup_cancel_unsupported"
    assert "WTC000000001" in raised.value.message


def test_track_maps_shippo_statuses(build: Build, fake: FakeShippo) -> None:
    carrier = one_call(build)
    label = carrier.buy_label(request())
    assert carrier.track(label.tracking_number).status == "pre_transit"
    fake.set_tracking(label.tracking_number, "TRANSIT", "Departed USPS facility")
    assert carrier.track(label.tracking_number).status == "in_transit"
    fake.set_tracking(label.tracking_number, "TRANSIT", "Out for delivery", "out_for_delivery")
    assert carrier.track(label.tracking_number).status == "out_for_delivery"
    fake.set_tracking(label.tracking_number, "DELIVERED", "Delivered, in mailbox")
    info = carrier.track(label.tracking_number)
    assert info.status == "delivered"
    assert [e["status"] for e in info.events] == [
        "pre_transit",
        "in_transit",
        "out_for_delivery",
        "delivered",
    ]
    assert info.events[-1]["description"] == "Delivered, in mailbox"
    assert info.events[-1]["location"] == "London, GB"
    assert fake.requests_to("GET", f"/tracks/usps/{label.tracking_number}")


def test_track_knows_the_carrier_of_labels_bought_from_the_data_folder(
    build: Build, fake: FakeShippo, elsewhere: PluginContext
) -> None:
    label = build().buy_label(request(service="dhl_express_worldwide"))
    assert build().track(label.tracking_number).status == "pre_transit"  # from the ledger
    with pytest.raises(CarrierError) as raised:
        build(context=elsewhere).track(label.tracking_number)
    assert raised.value.field == "tracking_carrier"
    told = build(context=elsewhere, tracking_carrier="dhl_express")
    assert told.track(label.tracking_number).status == "pre_transit"
    derived = build(context=elsewhere, servicelevel="dhl_express_worldwide")
    assert derived.track(label.tracking_number).status == "pre_transit"
    assert fake.requests_to("GET", f"/tracks/dhl_express/{label.tracking_number}")


# --- the engine, end to end -------------------------------------------------------------------


def test_engine_buys_one_gb_label_through_shippo(
    make_engine: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, fake: FakeShippo
) -> None:
    monkeypatch.setenv("SHIPPO_API_TOKEN", fake.token)
    engine = make_engine(
        {
            "carriers": {
                "shippo": {
                    "settings": {
                        "api_token": "env:SHIPPO_API_TOKEN",
                        "base_url": fake.url,
                        "carrier_account": "ca_dhl_express",
                        "servicelevel": "dhl_express_worldwide",
                        "pickup_timezone": "Europe/Paris",
                    }
                }
            },
            "routing": [{"country": "GB", "carrier": "shippo"}],
        }
    )
    engine.place([Order.from_mapping(order_data(2001, country="GB", postal_code="NW1 6XE"))])
    engine.record_payment(["ord_2001"], "paid")
    with Worker(engine, backoff=lambda *a, **k: 0) as worker:
        worker.run()

    (sold,) = fake.sold
    order = engine.get("ord_2001")
    (shipment,) = order.shipments
    assert shipment.label is not None and shipment.carrier == "shippo"
    assert shipment.label.tracking_number == sold["tracking_number"]
    assert shipment.label.carrier_reference == sold["object_id"]
    assert shipment.label.service == "dhl_express_worldwide"
    assert Path(shipment.label.document_path).read_bytes() == fake.label_bytes(sold["object_id"])
    (declaration,) = fake.declarations.values()  # FR -> GB leaves the customs union
    assert declaration["items"][0]["origin_country"] == "FR"
    assert len(fake.pickups) == 1 and shipment.pickup_id is not None
    assert order.fulfilment_status is FulfilmentStatus.SHIPPED
