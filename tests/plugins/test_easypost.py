"""The EasyPost adapter, through real HTTP on loopback against ``FakeEasyPost``.

Every test talks to the fake over a socket with an ``httpx.Client`` like the core's; the
fake answers with the shapes EasyPost documents, and its ledger (``fake.sold``) proves
what was really bought. The documentation each test follows:

- registration, settings, ``test_basic_auth_*``: authentication is the API key as the
  HTTP Basic user name, https://www.easypost.com/docs/api (Authentication);
  base URL https://api.easypost.com/v2, https://docs.easypost.com/guides/getting-started
- ``test_buy_label_creates_then_buys_the_rate``, ``test_cheapest_rate_*``: POST /shipments
  returns ``rates``; POST /shipments/{id}/buy with ``{"rate": {"id"}}`` returns
  ``postage_label``, ``tracking_code``, ``tracker.public_url``, ``selected_rate``,
  https://docs.easypost.com/docs/shipments; parcel weight in ounces and dimensions in
  inches to one decimal, https://docs.easypost.com/docs/parcels (and the Parcel object in
  https://docs.easypost.com/docs/shipments); the client library's ``buy`` and ``label``,
  https://github.com/EasyPost/easypost-python/blob/master/easypost/services/shipment_service.py
- ``test_one_call_buy_*``: a shipment created with ``service`` and ``carrier_accounts`` is
  bought in the same request, easypost-python tests/conftest.py ``one_call_buy_shipment``
  and tests/test_shipment.py (https://github.com/EasyPost/easypost-python)
- ``test_label_documents_*``: ``options.label_format`` PNG (EasyPost's default), PDF, ZPL;
  ``postage_label.label_url`` / ``label_pdf_url`` / ``label_zpl_url`` and
  ``label_file_type``, https://docs.easypost.com/docs/shipments (PostageLabel);
  GET /shipments/{id}/label?file_format=ZPL, easypost-python ``shipment.label``;
  karrio downloads ``label_url``: https://github.com/karrioapi/karrio
  modules/connectors/easypost/karrio/providers/easypost/shipment/create.py
- ``test_customs_*``: ``customs_info`` with ``customs_items`` (ounces, value,
  origin_country, hs_tariff_number), ``eel_pfc`` "NOEEI 30.37(a)", ``customs_certify``,
  ``customs_signer``, https://docs.easypost.com/docs/shipments (CustomsInfo) and
  https://github.com/EasyPost/examples official/fixtures/client-library-fixtures.json
- ``test_return_label_*``: ``is_return: true`` with the outbound addresses unchanged,
  EasyPost swaps them, https://docs.easypost.com/docs/shipments/returns
- ``test_timeout_*``, ``test_lost_*``, ``test_find_label_*`` (and tests/conformance):
  EasyPost has no idempotency header (none found in its docs or client libraries), so the
  key is the ``reference`` and is looked up before every purchase; a reference "may be used
  in place of id" and is not unique, https://docs.easypost.com/docs/easypost-objects;
  GET /shipments pages most recent first with ``page_size``/``before_id`` and the
  ``purchased`` filter, https://docs.easypost.com/docs/pagination and easypost-python
  ``shipment.all``; a second buy answers SHIPMENT.POSTAGE.EXISTS (code list of EasyPost's
  errors guide, https://www.easypost.com/errors-guide, as quoted by client code)
- ``test_validation_*``, ``test_auth_*``, ``test_errors_*``: error body
  ``{"error": {"code", "message", "errors": [{"field", "message"}]}}``, errors may also be
  strings, https://docs.easypost.com/docs/errors and
  https://docs.easypost.com/guides/errors-guide; 422 SHIPMENT.INVALID_PARAMS and
  PARAMETER.REQUIRED, easypost-python tests/test_error.py
- ``test_rate_limited_*``: 429 Too Many Requests, retry with backoff,
  https://docs.easypost.com/guides/rate-limiting-guide (EasyPost does not document
  Retry-After; the adapter honours it when sent)
- ``test_quote_*``: rates with ``carrier``, ``service``, ``rate``, ``currency``,
  ``delivery_days``, https://docs.easypost.com/docs/shipments (Rate)
- ``test_cancel_*``: POST /shipments/{id}/refund, ``refund_status`` submitted, refunded,
  rejected, not_applicable, https://docs.easypost.com/docs/shipments/shipping-refund
- ``test_pickup_*``: POST /pickups (``min_datetime``, ``max_datetime``, ``address``,
  ``shipment``, ``reference``) returns ``pickup_rates``; POST /pickups/{id}/buy with
  ``carrier`` and ``service``; POST /pickups/{id}/cancel; status scheduled / canceled,
  https://docs.easypost.com/docs/pickups and easypost-python tests/test_pickup.py
- ``test_track_*``: POST /trackers returns the original tracker for a known code;
  statuses and ``tracking_details``, https://docs.easypost.com/docs/trackers
- ``test_engine_*``: the core's saga and worker (DESIGN.md sections 5 and 7).
"""

from __future__ import annotations

import base64
import io
import logging
import subprocess
import sys
import zlib
from collections.abc import Callable, Iterator
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
from conftest import order_data
from fulfil.core import hookspecs
from fulfil.core.carriers import (
    Capability,
    Carrier,
    CarrierPlugin,
    CustomsItem,
    LabelRequest,
    PickupConfirmation,
    PickupRequest,
)
from fulfil.core.context import PluginContext
from fulfil.core.errors import CarrierError, ConfigError
from fulfil.core.models import Address, Label, Money, Order, Parcel
from fulfil.core.plugins import Hooks, make_plugin_manager
from fulfil.core.secrets import Secret
from fulfil.core.states import FulfilmentStatus
from fulfil.core.worker import Worker
from fulfil.plugins.carriers import easypost
from fulfil.plugins.carriers.easypost import SETTINGS_SCHEMA, EasyPostCarrier, make_carrier
from fulfil.plugins.carriers.easypost.errors import from_response
from fulfil.plugins.carriers.easypost.settings import EasyPostSettings
from fulfil.testing.fakes.easypost import CARRIER_ACCOUNTS, FakeEasyPost
from fulfil.testing.server import Response
from jsonschema import Draft202012Validator

API_KEY = "EZTK4f8c0ffee0test0key"
TOKEN = base64.b64encode(f"{API_KEY}:".encode()).decode()
USPS = CARRIER_ACCOUNTS["USPS"]

Build = Callable[..., EasyPostCarrier]

SENDER = Address(
    name="Atelier Dupont",
    company="Dupont LLC",
    line1="350 5th Ave",
    city="New York",
    region="NY",
    postal_code="10118",
    country="US",
    phone="+12125550100",
)
RECIPIENT = Address(
    name="Zoe Muller",
    line1="179 N Harbor Dr",
    line2="Apt 2",
    city="Redondo Beach",
    region="CA",
    postal_code="90277",
    country="US",
)
ABROAD = Address(
    name="Lea Tremblay",
    line1="1 Rue Sainte-Catherine",
    city="Montreal",
    postal_code="H2X 1Z4",
    country="CA",
    region="QC",
)


@pytest.fixture(scope="module")
def server() -> Iterator[FakeEasyPost]:
    with FakeEasyPost(api_key=API_KEY) as service:
        yield service


@pytest.fixture
def fake(server: FakeEasyPost) -> FakeEasyPost:
    """The module's fake, emptied: stopping a server costs half a second, resetting nothing."""
    server.reset()
    return server


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=1.0) as http:
        yield http


@pytest.fixture
def context(client: httpx.Client, tmp_path: Path) -> PluginContext:
    return PluginContext(client=client, data_dir=tmp_path)


@pytest.fixture
def build(fake: FakeEasyPost, context: PluginContext) -> Build:
    """``build(**settings)``: a carrier bound to the fake (settings override the defaults)."""

    def factory(ctx: PluginContext | None = None, **settings: Any) -> EasyPostCarrier:
        base = {"api_key": API_KEY, "base_url": fake.url + "/v2"}
        return make_carrier({**base, **settings}, ctx or context)

    return factory


def label_request(key: str = "o1:s1:1", **changes: Any) -> LabelRequest:
    order_id, shipment_id = key.split(":")[:2]
    request = LabelRequest(
        idempotency_key=key,
        order_id=order_id,
        order_number=1042,
        shipment_id=shipment_id,
        sender=SENDER,
        recipient=RECIPIENT,
        parcels=(Parcel(weight_g=1250, length_mm=300, width_mm=200, height_mm=100),),
        service="USPS:Priority",
        recipient_email="zoe@example.com",
    )
    return attrs.evolve(request, **changes)


def posted(fake: FakeEasyPost, suffix: str = "/v2/shipments") -> list[dict[str, Any]]:
    return [r.json() for r in fake.requests if r.method == "POST" and r.path == suffix]


def raises(call: Callable[[], object]) -> CarrierError:
    with pytest.raises(CarrierError) as raised:
        call()
    return raised.value


# --- registration ---------------------------------------------------------------------


def _plugin_manager() -> pluggy.PluginManager:
    try:
        return make_plugin_manager([easypost], load_entrypoints=False)
    except ImportError:  # other built-in plugins may not be written yet
        pm = pluggy.PluginManager("fulfil")
        pm.add_hookspecs(hookspecs)
        pm.register(easypost)
        pm.check_pending()
        return pm


def test_registers_through_the_plugin_manager(context: PluginContext) -> None:
    plugin = Hooks(_plugin_manager()).registry.carrier("easypost")

    assert isinstance(plugin, CarrierPlugin)
    assert plugin.capabilities == frozenset(Capability)
    assert plugin.countries == {"*"} and plugin.ships_from("US") and plugin.ships_from("FR")
    assert plugin.services == ()  # "Carrier:Service" names are accepted as EasyPost has them
    assert plugin.label_formats == ("PDF", "ZPL", "PNG")
    assert plugin.settings_schema is SETTINGS_SCHEMA
    assert plugin.rate_limit is None and plugin.description
    built = plugin.factory({"api_key": Secret("EASYPOST_API_KEY", API_KEY)}, context)
    assert isinstance(built, EasyPostCarrier) and isinstance(built, Carrier)
    assert API_KEY not in repr(built) and API_KEY not in repr(built.settings)


def test_the_entry_point_names_the_package() -> None:
    (entry_point,) = [e for e in metadata.entry_points(group="fulfil") if e.name == "easypost"]
    assert entry_point.value == "fulfil.plugins.carriers.easypost"
    assert entry_point.load() is easypost


def test_import_defines_things_only() -> None:
    code = (
        "import sys, fulfil.plugins.carriers.easypost\n"
        "heavy = {'jsonschema', 'fulfil.testing'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --- settings -------------------------------------------------------------------------


def test_settings_schema_is_valid_2020_12() -> None:
    Draft202012Validator.check_schema(SETTINGS_SCHEMA)
    assert SETTINGS_SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert SETTINGS_SCHEMA["additionalProperties"] is False
    assert SETTINGS_SCHEMA["required"] == ["api_key"]
    properties = SETTINGS_SCHEMA["properties"]
    assert set(properties) == {
        "api_key",
        "base_url",
        "label_format",
        "label_size",
        "carrier_accounts",
        "carrier",
        "service",
        "pickup_service",
        "customs_signer",
    }
    assert all(sub.get("description") for sub in properties.values())
    defaults = {n: s["default"] for n, s in properties.items() if "default" in s}
    assert defaults == {"base_url": "https://api.easypost.com/v2", "label_format": "PDF"}
    Draft202012Validator(SETTINGS_SCHEMA).validate({"api_key": "env:EASYPOST_API_KEY", **defaults})
    parsed = EasyPostSettings.from_mapping({"api_key": "k"})
    assert (parsed.base_url, parsed.label_format, parsed.carrier_accounts) == (
        "https://api.easypost.com/v2",
        "PDF",
        (),
    )


def test_settings_accept_a_full_mapping() -> None:
    settings = {
        "api_key": "env:EASYPOST_API_KEY",
        "base_url": "http://127.0.0.1:8080/v2",
        "label_format": "ZPL",
        "label_size": "4x6",
        "carrier_accounts": [USPS],
        "carrier": "UPS",
        "service": "USPS:Priority",
        "pickup_service": "NextDay",
        "customs_signer": "Camille Martin",
    }
    Draft202012Validator(SETTINGS_SCHEMA).validate(settings)
    parsed = EasyPostSettings.from_mapping(settings)
    assert (parsed.carrier, parsed.service, parsed.carrier_accounts) == (
        "USPS",
        "Priority",
        (USPS,),
    )


@pytest.mark.parametrize(
    ("settings", "path"),
    [
        ({"label_format": "GIF"}, "label_format"),
        ({"label_format": "pdf"}, "label_format"),
        ({"carrier_accounts": []}, "carrier_accounts"),
        ({"carrier_accounts": ["acct_1"]}, "carrier_accounts.0"),
        ({"carrier_accounts": "ca_1"}, "carrier_accounts"),
        ({"base_url": "ftp://example.com"}, "base_url"),
        ({"base_url": "https://api.easypost.com/v2/"}, "base_url"),
        ({"label_size": "big"}, "label_size"),
        ({"service": ""}, "service"),
        ({"colour": "red"}, "carriers.easypost:"),
        ({"api_key": ""}, "api_key"),
    ],
)
def test_bad_settings_are_rejected(
    settings: dict[str, Any], path: str, context: PluginContext
) -> None:
    data = {"api_key": API_KEY, **settings}
    assert list(Draft202012Validator(SETTINGS_SCHEMA).iter_errors(data))
    with pytest.raises(ConfigError) as raised:
        make_carrier(data, context)
    prefix = "" if path.endswith(":") else "carriers.easypost."
    assert f"{prefix}{path}" in str(raised.value)
    assert API_KEY not in str(raised.value)


def test_a_missing_key_is_named_and_a_bad_setting_never_quotes_the_key() -> None:
    with pytest.raises(ConfigError, match=r"carriers\.easypost\.api_key: required"):
        EasyPostSettings.from_mapping({})
    with pytest.raises(ConfigError) as raised:
        EasyPostSettings.from_mapping({"api_key": API_KEY, "label_format": API_KEY})
    assert "label_format" in str(raised.value)
    assert API_KEY not in str(raised.value).replace(f"'{API_KEY}' is not one of", "")


# --- labels ---------------------------------------------------------------------------


def test_buy_label_creates_then_buys_the_rate(build: Build, fake: FakeEasyPost) -> None:
    label = build().buy_label(label_request())

    assert [(r.method, r.path.split("/")[-1]) for r in fake.requests] == [
        ("GET", "o1%3As1%3A1"),  # the key's reference first: nothing bought under it yet
        ("POST", "shipments"),
        ("POST", "buy"),
        ("GET", label.url.rsplit("/", 1)[-1] if label.url else ""),
    ]
    (sale,) = fake.sold
    assert (sale.reference, sale.carrier, sale.service) == ("o1:s1:1", "USPS", "Priority")
    assert label.tracking_number == sale.tracking_code
    assert label.carrier_reference == sale.shipment_id
    assert label.service == "USPS:Priority"
    assert label.cost == Money(sale.rate, "USD")
    assert label.format == "PDF"
    assert label.tracking_url and label.tracking_url.startswith("https://track.easypost.com/")
    assert label.url == fake.shipments[sale.shipment_id]["postage_label"]["label_url"]
    (body,) = posted(fake)
    shipment = body["shipment"]
    assert shipment["reference"] == "o1:s1:1"
    assert shipment["parcel"] == {"weight": 44.1, "length": 11.8, "width": 7.9, "height": 3.9}
    assert shipment["options"] == {"label_format": "PDF"}
    assert shipment["to_address"] == {
        "name": "Zoe Muller",
        "street1": "179 N Harbor Dr",
        "street2": "Apt 2",
        "city": "Redondo Beach",
        "state": "CA",
        "zip": "90277",
        "country": "US",
        "email": "zoe@example.com",
    }
    assert shipment["from_address"]["company"] == "Dupont LLC"
    assert "carrier_accounts" not in shipment and "service" not in shipment
    buy = posted(fake, f"/v2/shipments/{sale.shipment_id}/buy")
    rates = fake.shipments[sale.shipment_id]["rates"]
    rate_id = next(r["id"] for r in rates if (r["carrier"], r["service"]) == ("USPS", "Priority"))
    assert buy == [{"rate": {"id": rate_id}}]


def test_basic_auth_carries_the_key_to_the_api_only(build: Build, fake: FakeEasyPost) -> None:
    build().buy_label(label_request())

    api = [r for r in fake.requests if r.path.startswith("/v2/")]
    files = [r for r in fake.requests if r.path.startswith("/files/")]
    assert api and all(r.headers["authorization"] == f"Basic {TOKEN}" for r in api)
    assert files and all("authorization" not in r.headers for r in files)


def test_one_call_buy_with_carrier_accounts(build: Build, fake: FakeEasyPost) -> None:
    carrier = build(carrier_accounts=[USPS], service="Express")
    label = carrier.buy_label(label_request(service=None))

    api = [(r.method, r.path) for r in fake.requests if r.path.startswith("/v2/")]
    assert api == [("GET", "/v2/shipments/o1%3As1%3A1"), ("POST", "/v2/shipments")]
    (body,) = posted(fake)
    assert body["shipment"]["carrier_accounts"] == [USPS]
    assert body["shipment"]["service"] == "Express"
    assert label.service == "USPS:Express" and len(fake.sold) == 1


def test_one_call_buy_of_a_service_not_offered(build: Build, fake: FakeEasyPost) -> None:
    error = raises(
        lambda: build(carrier_accounts=[USPS]).buy_label(label_request(service="UPS:Ground"))
    )

    assert (error.kind, error.code, error.field) == (
        "validation",
        "SHIPMENT.RATES.UNAVAILABLE",
        "service",
    )
    assert "No rates found for service Ground" in error.message and not fake.sold


def test_cheapest_rate_without_a_service(build: Build, fake: FakeEasyPost) -> None:
    label = build().buy_label(label_request(service=None))

    assert label.service == "USPS:GroundAdvantage"
    offered = fake.shipments[fake.sold[0].shipment_id]["rates"]
    assert Decimal(fake.sold[0].rate) == min(Decimal(r["rate"]) for r in offered)


def test_a_service_no_rate_matches_is_rejected_with_what_was_offered(
    build: Build, fake: FakeEasyPost
) -> None:
    error = raises(lambda: build().buy_label(label_request(service="USPS:Teleport")))

    assert (error.kind, error.code, error.field) == ("rejected", "rate_unavailable", "service")
    assert "USPS:Teleport" in error.message and "USPS:Priority" in error.message
    assert not fake.sold


@pytest.mark.parametrize(
    ("label_format", "magic"), [("PDF", b"%PDF-"), ("ZPL", b"^XA"), ("PNG", b"\x89PNG\r\n\x1a\n")]
)
def test_label_documents_are_the_bytes_the_server_returned(
    build: Build, fake: FakeEasyPost, label_format: str, magic: bytes
) -> None:
    label = build(label_format=label_format).buy_label(label_request())

    assert label.format == label_format and label.url
    assert label.document == fake.label_document(label.url)
    assert label.document.startswith(magic)
    (body,) = posted(fake)
    assert body["shipment"]["options"]["label_format"] == label_format
    check = {"PDF": _check_pdf, "ZPL": _check_zpl, "PNG": _check_png}[label_format]
    check(label.document, label.tracking_number)


def _check_pdf(document: bytes, tracking: str) -> None:
    reader = pypdf.PdfReader(io.BytesIO(document))
    assert len(reader.pages) == 1 and tracking in reader.pages[0].extract_text()
    assert [float(v) for v in reader.pages[0].mediabox] == [0, 0, 288, 432]  # 4x6 in


def _check_zpl(document: bytes, tracking: str) -> None:
    text = document.decode()
    assert text.rstrip().endswith("^XZ") and f"^FD{tracking}^FS" in text


def _check_png(document: bytes, tracking: str) -> None:
    chunks, at = {}, 8
    while at < len(document):
        length = int.from_bytes(document[at : at + 4], "big")
        kind, data = document[at + 4 : at + 8], document[at + 8 : at + 8 + length]
        crc = int.from_bytes(document[at + 8 + length : at + 12 + length], "big")
        assert zlib.crc32(kind + data) == crc
        chunks[kind] = data
        at += 12 + length
    width, height = (
        int.from_bytes(chunks[b"IHDR"][:4], "big"),
        int.from_bytes(chunks[b"IHDR"][4:8], "big"),
    )
    assert len(zlib.decompress(chunks[b"IDAT"])) == height * (width + 1) and b"IEND" in chunks


def test_a_requested_format_overrides_the_configured_one(build: Build, fake: FakeEasyPost) -> None:
    label = build(label_format="PNG").buy_label(label_request(label_format="ZPL"))

    assert label.format == "ZPL" and label.document and label.document.startswith(b"^XA")


def test_label_conversion_endpoint_of_the_fake(
    fake: FakeEasyPost, build: Build, client: httpx.Client
) -> None:
    label = build(label_format="PNG").buy_label(label_request())
    auth = {"Authorization": f"Basic {TOKEN}"}
    url = f"{fake.url}/v2/shipments/{label.carrier_reference}/label"

    converted = client.get(url, params={"file_format": "ZPL"}, headers=auth).json()

    zpl_url = converted["postage_label"]["label_zpl_url"]
    assert client.get(zpl_url).content.startswith(b"^XA")
    assert converted["postage_label"]["label_url"] == label.url  # the PNG stays


def test_customs_info_is_sent_for_an_international_parcel(build: Build, fake: FakeEasyPost) -> None:
    customs = (
        CustomsItem("Mug", 2, Money("40.00", "USD"), 1000, "US", sku="SKU-1", hs_code="691200"),
    )
    label = build().buy_label(
        label_request(recipient=ABROAD, service="USPS:PriorityMailInternational", customs=customs)
    )

    (body,) = posted(fake)
    info = body["shipment"]["customs_info"]
    assert info["customs_certify"] is True and info["customs_signer"] == "Atelier Dupont"
    assert info["eel_pfc"] == "NOEEI 30.37(a)" and info["contents_type"] == "merchandise"
    assert info["customs_items"] == [
        {
            "description": "Mug",
            "quantity": 2,
            "value": 40.0,
            "currency": "USD",
            "weight": 35.3,
            "origin_country": "US",
            "code": "SKU-1",
            "hs_tariff_number": "691200",
        }
    ]
    assert label.service == "USPS:PriorityMailInternational" and len(fake.sold) == 1


def test_customs_signer_from_settings_and_missing_customs_refused(
    build: Build, fake: FakeEasyPost
) -> None:
    customs = (CustomsItem("Mug", 1, Money("20.00", "USD"), 500, "US"),)
    build(customs_signer="Camille Martin").buy_label(
        label_request(recipient=ABROAD, service=None, customs=customs)
    )
    assert posted(fake)[0]["shipment"]["customs_info"]["customs_signer"] == "Camille Martin"

    error = raises(
        lambda: build().buy_label(label_request("o2:s1:1", recipient=ABROAD, service=None))
    )
    assert (error.kind, error.code, error.field) == (
        "validation",
        "SHIPMENT.CUSTOMS_INFO.REQUIRED",
        "customs_info",
    )
    assert len(fake.sold) == 1


def test_return_label_keeps_the_outbound_addresses(build: Build, fake: FakeEasyPost) -> None:
    label = build().buy_label(label_request(is_return=True))

    (body,) = posted(fake)
    assert body["shipment"]["is_return"] is True
    assert body["shipment"]["to_address"]["name"] == "Zoe Muller"  # EasyPost swaps, not us
    stored = fake.shipments[label.carrier_reference or ""]
    assert stored["is_return"] is True and stored["to_address"]["name"] == "Atelier Dupont"


def test_one_parcel_per_shipment(build: Build, fake: FakeEasyPost) -> None:
    error = raises(lambda: build().buy_label(label_request(parcels=(Parcel(500), Parcel(700)))))

    assert (error.kind, error.field) == ("rejected", "parcels") and not fake.requests


# --- idempotency and reconciliation -----------------------------------------------------


def test_timeout_after_the_purchase_was_received_is_an_unknown_outcome(
    fake: FakeEasyPost, tmp_path: Path
) -> None:
    with httpx.Client(timeout=0.5) as slow:
        context = PluginContext(client=slow, data_dir=tmp_path)
        settings = {"api_key": API_KEY, "base_url": fake.url + "/v2", "carrier_accounts": [USPS]}
        carrier = make_carrier(settings, context)
        # The purchase (the one-call POST; a lookup by reference precedes it) is made, and
        # its answer never comes: hang_next(apply=True) aimed at one endpoint.
        fake.stall_next("/v2/shipments", seconds=2)

        error = raises(lambda: carrier.buy_label(label_request()))
        assert error.kind == "unknown_outcome" and error.unknown_outcome

        found = carrier.find_label("o1:s1:1")
        assert found is not None and len(fake.sold) == 1
        assert found.tracking_number == fake.sold[0].tracking_code
        assert found.document == fake.label_document(found.url or "")
        # The saga's retry under the same key buys nothing new.
        assert carrier.buy_label(label_request()).tracking_number == found.tracking_number
        assert len(fake.sold) == 1


def test_lost_answer_to_the_buy_call_is_reconciled(build: Build, fake: FakeEasyPost) -> None:
    fake.stall_next("/buy", seconds=2)
    carrier = build()

    error = raises(lambda: carrier.buy_label(label_request()))
    assert error.kind == "unknown_outcome"

    # Another process, knowing nothing of the first, buys under the same key: it finds the
    # label by its reference instead of buying a second one.
    label = build().buy_label(label_request())
    assert len(fake.sold) == 1 and label.tracking_number == fake.sold[0].tracking_code
    assert carrier.buy_label(label_request()).tracking_number == label.tracking_number
    assert len(fake.sold) == 1


def test_lost_answer_to_the_create_call_reuses_that_shipment(
    build: Build, fake: FakeEasyPost
) -> None:
    fake.stall_next("/v2/shipments", seconds=2)
    carrier = build()

    error = raises(lambda: carrier.buy_label(label_request()))
    assert error.kind == "unavailable"  # nothing can have been bought yet

    label = carrier.buy_label(label_request())
    created = [s for s in fake.shipments.values() if s["reference"] == "o1:s1:1"]
    assert len(created) == 1 and created[0]["id"] == label.carrier_reference
    assert len(fake.sold) == 1


def test_find_label_sees_past_an_unbought_twin_with_the_same_reference(
    build: Build, fake: FakeEasyPost, client: httpx.Client
) -> None:
    label = build().buy_label(label_request())
    # A later shipment with the same reference, never bought (references are not unique).
    twin = {"shipment": {**posted(fake)[0]["shipment"]}}
    client.post(fake.url + "/v2/shipments", json=twin, headers={"Authorization": f"Basic {TOKEN}"})

    found = build().find_label("o1:s1:1")

    assert found is not None and found.tracking_number == label.tracking_number
    assert any(r.query.get("purchased") == ["true"] for r in fake.requests if r.method == "GET")


def test_find_label_of_an_unknown_key_is_none(build: Build, fake: FakeEasyPost) -> None:
    assert build().find_label("nothing:here:1") is None
    assert fake.requests[-1].path == "/v2/shipments/nothing%3Ahere%3A1"


def test_a_second_buy_of_a_shipment_is_refused_by_easypost(
    build: Build, fake: FakeEasyPost, client: httpx.Client
) -> None:
    label = build().buy_label(label_request())
    rate_id = fake.shipments[label.carrier_reference or ""]["selected_rate"]["id"]

    answer = client.post(
        f"{fake.url}/v2/shipments/{label.carrier_reference}/buy",
        json={"rate": {"id": rate_id}},
        headers={"Authorization": f"Basic {TOKEN}"},
    )

    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == "SHIPMENT.POSTAGE.EXISTS" and len(fake.sold) == 1


@pytest.mark.parametrize("one_call", [True, False])
def test_5xx_then_success_buys_once(build: Build, fake: FakeEasyPost, one_call: bool) -> None:
    body = {"error": {"code": "INTERNAL_SERVER_ERROR", "message": "Something broke."}}
    carrier = build(**({"carrier_accounts": [USPS]} if one_call else {}))
    fake.answer_next("/v2/shipments" if one_call else "/buy", Response.json(503, body))

    error = raises(lambda: carrier.buy_label(label_request()))
    assert (error.kind, error.status_code, error.code) == (
        "unavailable",
        503,
        "INTERNAL_SERVER_ERROR",
    )
    assert error.transient and "Something broke." in error.message

    label = carrier.buy_label(label_request())
    assert len(fake.sold) == 1 and label.tracking_number == fake.sold[0].tracking_code


def test_ambiguous_purchase_codes_are_unknown_outcomes(build: Build, fake: FakeEasyPost) -> None:
    body = {"error": {"code": "SHIPMENT.POSTAGE.NO_RESPONSE", "message": "No carrier answer."}}
    fake.answer_next("/v2/shipments", Response.json(422, body))

    error = raises(lambda: build(carrier_accounts=[USPS]).buy_label(label_request()))

    assert (error.kind, error.code) == ("unknown_outcome", "SHIPMENT.POSTAGE.NO_RESPONSE")


# --- errors ---------------------------------------------------------------------------


def test_validation_error_keeps_easyposts_code_message_and_field(
    build: Build, fake: FakeEasyPost
) -> None:
    recipient = attrs.evolve(RECIPIENT, postal_code="00000")
    error = raises(lambda: build().buy_label(label_request(recipient=recipient)))

    assert (error.kind, error.status_code) == ("validation", 422)
    assert (error.code, error.field) == ("SHIPMENT.INVALID_PARAMS", "to_address.zip")
    assert "Unable to create shipment, one or more parameters were invalid." in error.message
    assert "to_address.zip: invalid zip or postal code '00000'" in error.message
    assert "[SHIPMENT.INVALID_PARAMS] to_address.zip:" in str(error)
    assert not error.transient and not fake.sold


def test_auth_failure(fake: FakeEasyPost, context: PluginContext) -> None:
    carrier = make_carrier({"api_key": "EZAKwrong", "base_url": fake.url + "/v2"}, context)
    error = raises(lambda: carrier.buy_label(label_request()))

    assert (error.kind, error.status_code, error.code) == ("auth", 401, "UNAUTHORIZED")
    assert "EZAKwrong" not in str(error) and not fake.sold


@pytest.mark.parametrize(("value", "seconds"), [("7", 7.0), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0)])
def test_rate_limited_with_retry_after(
    build: Build, fake: FakeEasyPost, value: str, seconds: float
) -> None:
    body = {"error": {"code": "RATE_LIMITED", "message": "Too many requests."}}
    fake.fail_next(Response.json(429, body, {"Retry-After": value}))

    error = raises(lambda: build().buy_label(label_request()))

    assert (error.kind, error.status_code, error.retry_after) == ("rate_limited", 429, seconds)
    assert error.transient and not fake.sold


def test_connection_refused_is_unavailable(context: PluginContext) -> None:
    carrier = make_carrier({"api_key": API_KEY, "base_url": "http://127.0.0.1:9/v2"}, context)
    error = raises(lambda: carrier.buy_label(label_request()))

    assert error.kind == "unavailable" and "ConnectError" in error.message


def test_a_body_that_is_not_json(build: Build, fake: FakeEasyPost) -> None:
    fake.fail_next(Response(502, {"Content-Type": "text/html"}, b"<html>Bad gateway</html>"))
    error = raises(lambda: build().buy_label(label_request()))

    assert (error.kind, error.status_code) == (
        "unavailable",
        502,
    ) and "Bad gateway" in error.message


def _answer(status: int, body: Any) -> httpx.Response:
    return httpx.Response(status, json=body, request=httpx.Request("POST", "http://x/v2/shipments"))


@pytest.mark.parametrize(
    ("status", "error", "expected"),
    [
        (  # the older form of field errors
            422,
            {
                "code": "SHIPMENT.INVALID_PARAMS",
                "message": "Invalid.",
                "errors": [{"to_address": "Required and missing."}],
            },
            ("validation", "to_address", "Invalid. (to_address: Required and missing.)"),
        ),
        (  # errors as strings
            404,
            {
                "code": "NOT_FOUND",
                "message": "The requested resource could not be found.",
                "errors": ["No such shipment."],
            },
            ("rejected", None, "The requested resource could not be found. (No such shipment.)"),
        ),
        (
            402,
            {"code": "PAYMENT_REQUIRED", "message": "Insufficient funds."},
            ("rejected", None, "Insufficient funds."),
        ),
        (403, {"code": "FORBIDDEN", "message": ["Not", "allowed"]}, ("auth", None, "Not, allowed")),
        (
            400,
            {
                "code": "BAD_REQUEST",
                "message": "Bad.",
                "errors": [{"field": "parcel", "message": "bad"}],
            },
            ("validation", "parcel", "Bad. (parcel: bad)"),
        ),
    ],
)
def test_errors_every_documented_shape(
    status: int, error: dict[str, Any], expected: tuple[Any, ...]
) -> None:
    mapped = from_response(_answer(status, {"error": error}), purchase=False)

    assert (mapped.kind, mapped.field, mapped.message) == expected
    assert (mapped.code, mapped.status_code, mapped.carrier) == (error["code"], status, "easypost")


def test_the_api_key_is_never_logged_nor_in_errors(
    build: Build, fake: FakeEasyPost, context: PluginContext, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    carrier = build()
    errors = []
    carrier.buy_label(label_request())
    fake.fail_next(Response.json(429, {"error": {"code": "RATE_LIMITED", "message": "slow"}}))
    errors.append(raises(lambda: carrier.buy_label(label_request("o2:s1:1"))))
    nowhere = attrs.evolve(RECIPIENT, postal_code="0")
    errors.append(raises(lambda: carrier.buy_label(label_request("o3:s1:1", recipient=nowhere))))
    wrong = make_carrier({"api_key": f"{API_KEY}x", "base_url": fake.url + "/v2"}, context)
    errors.append(raises(lambda: wrong.buy_label(label_request("o4:s1:1"))))
    carrier.track(fake.sold[0].tracking_code)

    text = "\n".join(
        [r.getMessage() for r in caplog.records]
        + [repr(r.args) for r in caplog.records]
        + [f"{e} {e.message!r} {e.__cause__!r}" for e in errors]
        + [repr(carrier), repr(carrier.api), repr(carrier.settings)]
    )
    assert any("bought label" in r.getMessage() for r in caplog.records)
    assert API_KEY not in text and TOKEN not in text and TOKEN.rstrip("=") not in text


# --- rates ----------------------------------------------------------------------------


def test_quote_every_service_then_one(build: Build, fake: FakeEasyPost) -> None:
    carrier = build()
    every = carrier.quote(label_request(service=None))
    (one,) = carrier.quote(label_request(service="UPS:Ground"))

    assert [r.service for r in every][:2] == ["USPS:GroundAdvantage", "USPS:Priority"]
    assert {r.service for r in every} >= {"USPS:Express", "UPS:NextDayAir", "FedEx:FEDEX_GROUND"}
    assert all(r.cost.currency == "USD" and r.days for r in every)
    assert [r.cost.amount for r in every] == sorted(r.cost.amount for r in every)
    assert one.service == "UPS:Ground" and one.days == 3
    assert all("reference" not in body["shipment"] for body in posted(fake))
    assert not fake.sold


def test_quote_of_an_international_parcel(build: Build) -> None:
    customs = (CustomsItem("Mug", 1, Money("20.00", "USD"), 500, "US"),)
    rates = build().quote(label_request(recipient=ABROAD, service=None, customs=customs))

    assert "DHLExpress:ExpressWorldwideNonDoc" in {r.service for r in rates}
    assert "USPS:Priority" not in {r.service for r in rates}


# --- cancel ---------------------------------------------------------------------------


def _as_stored(label: Any) -> Label:
    return Label(
        carrier="easypost",
        service=label.service,
        tracking_number=label.tracking_number,
        format=label.format,
        cost=label.cost,
        carrier_reference=label.carrier_reference,
        url=label.url,
    )


def test_cancel_refunds_the_label(build: Build, fake: FakeEasyPost) -> None:
    carrier = build()
    label = carrier.buy_label(label_request())

    carrier.cancel_label(_as_stored(label))
    carrier.cancel_label(_as_stored(label))  # a retried cancel succeeds

    assert fake.refunds == [label.carrier_reference]
    assert fake.shipments[label.carrier_reference or ""]["refund_status"] == "submitted"
    assert [r.body for r in fake.requests if r.path.endswith("/refund")] == [b"", b""]
    # find_label still finds a refunded label: what was bought under the key.
    assert carrier.find_label("o1:s1:1") is not None


def test_cancel_rejected_by_the_carrier(build: Build, fake: FakeEasyPost) -> None:
    carrier = build()
    label = carrier.buy_label(label_request())
    fake.refund_outcome = "rejected"

    error = raises(lambda: carrier.cancel_label(label))

    assert (error.kind, error.code) == ("rejected", "refund_rejected")


def test_cancel_needs_the_shipment_id(build: Build) -> None:
    label = Label("easypost", "USPS:Priority", "9400", "PDF", Money("1", "USD"))
    error = raises(lambda: build().cancel_label(label))

    assert (error.kind, error.field) == ("validation", "carrier_reference")


# --- pickups --------------------------------------------------------------------------


def pickup_request(
    labels: list[Any], key: str = "pickup:easypost:2030-01-07:origin"
) -> PickupRequest:
    return PickupRequest(
        idempotency_key=key,
        day=date(2030, 1, 7),
        window_start="14:00",
        window_end="18:00",
        address=SENDER,
        tracking_numbers=tuple(label.tracking_number for label in labels),
        carrier_references=tuple(label.carrier_reference for label in labels),
        parcel_count=len(labels),
        total_weight_g=1250 * len(labels),
    )


def test_pickup_is_booked_once_per_key_and_cancelled(build: Build, fake: FakeEasyPost) -> None:
    carrier = build()
    labels = [carrier.buy_label(label_request(f"o{n}:s1:1")) for n in (1, 2)]

    confirmation = carrier.schedule_pickup(pickup_request(labels))
    again = carrier.schedule_pickup(pickup_request(labels))

    assert confirmation == again and confirmation.confirmation.startswith("WTC")
    assert fake.pickups_booked == [confirmation.carrier_reference]
    (body,) = posted(fake, "/v2/pickups")
    pickup = body["pickup"]
    assert pickup["reference"] == "pickup:easypost:2030-01-07:origin"
    assert (pickup["min_datetime"], pickup["max_datetime"]) == (
        "2030-01-07T14:00:00",
        "2030-01-07T18:00:00",
    )
    assert pickup["shipment"] == {"id": labels[0].carrier_reference}
    assert pickup["address"]["street1"] == "350 5th Ave" and "2 parcel(s)" in pickup["instructions"]
    assert posted(fake, f"/v2/pickups/{confirmation.carrier_reference}/buy") == [
        {"carrier": "USPS", "service": "NextDay"}
    ]

    carrier.cancel_pickup(confirmation)
    assert fake.pickups[confirmation.carrier_reference or ""]["status"] == "canceled"
    error = raises(lambda: carrier.schedule_pickup(pickup_request(labels)))
    assert (error.kind, error.code) == ("rejected", "pickup_cancelled")


def test_pickup_timeout_then_the_retry_confirms(build: Build, fake: FakeEasyPost) -> None:
    carrier = build()
    labels = [carrier.buy_label(label_request())]
    fake.stall_next("/buy", seconds=2)

    error = raises(lambda: carrier.schedule_pickup(pickup_request(labels)))
    assert error.kind == "unknown_outcome"

    confirmation = carrier.schedule_pickup(pickup_request(labels))
    assert fake.pickups_booked == [confirmation.carrier_reference] and len(fake.pickups) == 1


def test_pickup_needs_a_shipment_and_an_offered_service(build: Build, fake: FakeEasyPost) -> None:
    error = raises(lambda: build().schedule_pickup(pickup_request([])))
    assert (error.kind, error.field) == ("validation", "carrier_references")

    carrier = build(pickup_service="Helicopter")
    labels = [carrier.buy_label(label_request())]
    error = raises(lambda: carrier.schedule_pickup(pickup_request(labels)))
    assert (error.kind, error.field) == ("rejected", "pickup_service")
    assert "USPS:NextDay" in error.message and not fake.pickups_booked


def test_cancel_pickup_needs_its_easypost_id(build: Build) -> None:
    error = raises(lambda: build().cancel_pickup(PickupConfirmation("WTC1")))
    assert (error.kind, error.field) == ("validation", "carrier_reference")


# --- tracking -------------------------------------------------------------------------


def test_track_a_label_as_it_moves(build: Build, fake: FakeEasyPost) -> None:
    carrier = build()
    label = carrier.buy_label(label_request())

    info = carrier.track(label.tracking_number)
    assert (info.tracking_number, info.status) == (label.tracking_number, "pre_transit")
    assert [e["description"] for e in info.events] == ["Shipping Label Created"]

    fake.advance_tracker(label.tracking_number, "in_transit", "Departed USPS facility")
    fake.advance_tracker(label.tracking_number, "delivered", "Delivered, in mailbox")
    info = carrier.track(label.tracking_number)
    assert info.status == "delivered"
    assert [e["status"] for e in info.events] == ["pre_transit", "in_transit", "delivered"]
    assert len(fake.trackers) == 1  # the same tracker, not a new one per call


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("available_for_pickup", "out_for_delivery"),
        ("return_to_sender", "returned"),
        ("error", "failure"),
        ("unknown", "pre_transit"),
    ],
)
def test_track_maps_easyposts_statuses(
    build: Build, fake: FakeEasyPost, status: str, expected: str
) -> None:
    carrier = build()
    label = carrier.buy_label(label_request())
    fake.advance_tracker(label.tracking_number, status, status)

    assert carrier.track(label.tracking_number).status == expected


def test_track_an_unknown_code(build: Build) -> None:
    info = build().track("EZ1000000001")
    assert (info.status, info.events) == ("pre_transit", ())


# --- the engine, end to end -------------------------------------------------------------

US_ORIGIN = {
    "name": "Demo Store",
    "line1": "350 5th Ave",
    "city": "New York",
    "region": "NY",
    "postal_code": "10118",
    "country": "US",
}


def _engine_config(fake: FakeEasyPost, **settings: Any) -> dict[str, Any]:
    return {
        "carriers": {
            "easypost": {
                "settings": {
                    "api_key": "env:EASYPOST_API_KEY",
                    "base_url": fake.url + "/v2",
                    **settings,
                }
            }
        },
        "routing": [{"country": "US", "carrier": "easypost"}],
        "store": {"origin": US_ORIGIN, "timezone": "America/New_York"},
    }


def _run(engine: Any) -> Order:
    order = Order.from_mapping(order_data(country="US", postal_code="10118"))
    engine.place([order])
    engine.record_payment([order.id], "paid")
    with Worker(engine, backoff=lambda *a, **k: 0) as worker:
        worker.run()
    found: Order = engine.get(order.id)
    return found


def test_engine_buys_the_label_through_the_worker(
    fake: FakeEasyPost, make_engine: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EASYPOST_API_KEY", API_KEY)
    engine = make_engine(_engine_config(fake, service="USPS:Priority"))

    order = _run(engine)

    (sale,) = fake.sold
    (shipment,) = order.shipments
    label = shipment.label
    assert label is not None and label.carrier == "easypost"
    assert label.tracking_number == sale.tracking_code == shipment.tracking_number
    assert (label.service, label.carrier_reference) == ("USPS:Priority", sale.shipment_id)
    assert sale.reference == f"{order.id}:{shipment.id}:1"
    assert label.document_path and label.url
    assert Path(label.document_path).read_bytes() == fake.label_document(label.url)
    assert len(fake.pickups_booked) == 1 and shipment.pickup_id
    assert order.fulfilment_status is FulfilmentStatus.SHIPPED


def test_engine_reconciles_an_unknown_outcome_without_buying_twice(
    fake: FakeEasyPost, make_engine: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EASYPOST_API_KEY", API_KEY)
    engine = make_engine(
        _engine_config(fake, carrier_accounts=[USPS], service="USPS:Priority"),
        http=httpx.Client(timeout=0.5),
    )
    fake.stall_next("/v2/shipments", seconds=2)  # the one-call purchase; its answer is lost

    order = _run(engine)

    assert len(fake.sold) == 1
    assert order.shipments[0].tracking_number == fake.sold[0].tracking_code
    with engine.store.transaction() as tx:
        (intent,) = tx.labels_for(order.id)
    assert intent.status == "bought"


def test_a_timeout_of_the_lookup_is_unavailable(fake: FakeEasyPost, tmp_path: Path) -> None:
    with httpx.Client(timeout=0.5) as slow:
        context = PluginContext(client=slow, data_dir=tmp_path)
        carrier = make_carrier({"api_key": API_KEY, "base_url": fake.url + "/v2"}, context)
        fake.hang_next(apply=True, seconds=2)  # the lookup by reference: a GET buys nothing

        error = raises(lambda: carrier.buy_label(label_request()))
        assert error.kind == "unavailable" and not fake.sold

        carrier.buy_label(label_request())
        assert len(fake.sold) == 1


# --- the shared carrier contract ------------------------------------------------------


@pytest.mark.parametrize(("maybe_sent", "lookups"), [(True, 1), (False, 0)])
def test_the_lookup_by_reference_is_skipped_only_on_a_first_attempt(
    build: Build, fake: FakeEasyPost, maybe_sent: bool, lookups: int
) -> None:
    carrier = build()
    carrier.buy_label(label_request(maybe_sent=maybe_sent))
    assert len(fake.requests_to("GET", "/v2/shipments")) == lookups
    assert len(fake.sold) == 1
