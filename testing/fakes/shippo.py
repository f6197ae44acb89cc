"""``FakeShippo``: a loopback Shippo answering as its public API documents.

The endpoints the ``shippo`` adapter uses, with their documented bodies and error bodies
(API version 2018-02-08, https://docs.goshippo.com):

=====================================  =================================================
``POST /customs/declarations/``        https://docs.goshippo.com/docs/international_shipping/internationalshipping
``POST /shipments/`` (rates)           https://docs.goshippo.com/docs/shipments/shipments/
``POST /transactions/`` (rate or       https://docs.goshippo.com/api-reference/transactions/create-a-shipping-label
instalabel: shipment +
carrier_account + servicelevel_token)
``GET /transactions/[{id}]``           https://docs.goshippo.com/api-reference/transactions/list-all-shipping-labels
``GET /rates/{id}``                    https://docs.goshippo.com/api-reference/rates/retrieve-a-rate
``POST /refunds/``                     https://docs.goshippo.com/api-reference/refunds/create-a-refund
``POST /pickups/``                     https://docs.goshippo.com/api-reference/pickups/create-a-pickup
``GET /tracks/{carrier}/{number}``     https://docs.goshippo.com/api-reference/tracking-status/get-a-tracking-status
``GET /labels/{file}``                 the label_url (pre-signed storage in production: no token)
=====================================  =================================================

Errors: ``401 {"detail": ...}`` without ``Authorization: ShippoToken <token>``
(https://docs.goshippo.com/docs/guides_general/authentication/); ``400`` with
``{field: [messages]}`` (nested for nested objects, as Shippo's Django REST framework
answers) for invalid input, e.g. ``address_to.zip`` ``"00000"`` (``INVALID_ZIP``);
``404 {"detail": "Not found."}``; a purchase scripted with ``fail_purchase`` ends in
``status: "ERROR"`` with ``messages: [{source, code, text}]``. Faults (429, 5xx, hangs)
come from ``FakeService.fail_next``/``hang_next``.

What it sold is in ``sold`` (one entry per label bought), so a test proves "bought once"
from the service's side. It does not model carrier coverage or real prices: every origin
gets the three services of ``SERVICES``, priced by weight.
"""

from __future__ import annotations

import struct
import threading
import uuid
import zlib
from collections import deque
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import attrs
from fulfil.testing.documents import pdf_from_objects
from fulfil.testing.server import FakeService, Request, Response

__all__ = ["FakeShippo", "ServiceLevel"]


@attrs.frozen
class ServiceLevel:
    token: str
    provider: str
    name: str
    carrier_account: str
    base: Decimal
    per_kg: Decimal
    days: int


ACCOUNTS = {"ca_usps": "usps", "ca_dhl_express": "dhl_express", "ca_royal_mail": "royal_mail"}
SERVICES = (
    ServiceLevel("usps_ground_advantage", "USPS", "Ground Advantage", "ca_usps",
                 Decimal("5.20"), Decimal("1.10"), 4),
    ServiceLevel("usps_priority", "USPS", "Priority Mail", "ca_usps",
                 Decimal("8.70"), Decimal("1.60"), 2),
    ServiceLevel("dhl_express_worldwide", "DHL Express", "Express Worldwide", "ca_dhl_express",
                 Decimal("24.00"), Decimal("4.00"), 3),
)  # fmt: skip
CURRENCY = {"US": "USD", "CA": "CAD", "GB": "GBP", "AU": "AUD"}  # else EUR
LABEL_FILE_TYPES = frozenset(
    {"PDF", "PDF_4x6", "PDF_4x8", "PDF_A4", "PDF_A5", "PDF_A6", "PDF_2.3x7.5", "PNG",
     "PNG_2.3x7.5", "ZPLII"}
)  # fmt: skip
TRACKING_URL = {
    "usps": "https://tools.usps.com/go/TrackConfirmAction_input?origTrackNum={}",
    "dhl_express": "https://www.dhl.com/en/express/tracking.html?AWB={}",
    "royal_mail": "https://www.royalmail.com/track-your-item#/tracking-results/{}",
}
LOCATION_TYPES = frozenset(
    {"Front Door", "Back Door", "Side Door", "Knock on Door/Ring Bell", "Mail Room", "Office",
     "Reception", "In/At Mailbox", "Security Deck", "Shipping Dock", "Other"}
)  # fmt: skip
KILOGRAMS_PER = {"g": Decimal("0.001"), "kg": Decimal(1), "lb": Decimal("0.45359237"),
                 "oz": Decimal("0.028349523")}  # fmt: skip
INVALID_ZIP = "00000"
REQUIRED = "This field is required."
NOT_FOUND = {"detail": "Not found."}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _id() -> str:
    return uuid.uuid4().hex


def _bad(errors: dict[str, Any]) -> Response:
    return Response.json(400, errors)


class FakeShippo(FakeService):
    """A Shippo account on loopback: ``with FakeShippo() as fake: ... fake.url``."""

    TOKEN = "shippo_test_0123456789abcdef0123456789abcdef"

    def __init__(self, token: str = TOKEN, latency: float = 0.0, rate_as_id: bool = False) -> None:
        super().__init__(latency=latency)
        self.token = token
        # The list and retrieve answers embed the rate (CoreRate) as documented; the SDK's
        # Transaction model names it by object_id instead: rate_as_id answers that way.
        self.rate_as_id = rate_as_id
        self.sold: list[dict[str, Any]] = []  # every label bought, in order
        self.transactions: dict[str, dict[str, Any]] = {}  # ERROR ones too
        self.shipments: dict[str, dict[str, Any]] = {}
        self.rates: dict[str, dict[str, Any]] = {}
        self.declarations: dict[str, dict[str, Any]] = {}
        self.refunds: list[dict[str, Any]] = []
        self.pickups: list[dict[str, Any]] = []
        self.labels: dict[str, tuple[str, bytes]] = {}  # file name -> (content type, bytes)
        self._tracking: dict[str, list[dict[str, Any]]] = {}
        self._purchase_errors: deque[dict[str, str]] = deque()
        self._state = threading.Lock()
        self._counter = 0

    # --- scripting ----------------------------------------------------------------------

    def fail_purchase(self, code: str, text: str, source: str = "USPS") -> None:
        """The next purchase ends in ``status: "ERROR"`` with this carrier message."""
        self._purchase_errors.append({"source": source, "code": code, "text": text})

    def set_tracking(
        self, tracking_number: str, status: str, details: str = "", substatus: str | None = None
    ) -> None:
        """Add a tracking event (PRE_TRANSIT, TRANSIT, DELIVERED, RETURNED, FAILURE)."""
        event = {
            "object_id": _id(),
            "status": status,
            "status_details": details,
            "status_date": _now(),
            "substatus": {"code": substatus, "text": details, "action_required": False}
            if substatus
            else None,
            "location": {"city": "London", "state": None, "zip": "NW1", "country": "GB"},
        }
        with self._state:
            self._tracking.setdefault(tracking_number, []).append(event)

    def label_bytes(self, transaction_id: str) -> bytes:
        """The bytes served at a transaction's ``label_url``."""
        url = self.transactions[transaction_id]["label_url"]
        return self.labels[url.rsplit("/", 1)[1]][1]

    # --- dispatch -----------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        parts = [p for p in request.path.split("/") if p]
        if request.method == "GET" and parts[:1] == ["labels"] and len(parts) == 2:
            return self._label_file(parts[1])
        auth = request.headers.get("authorization")
        if auth is None:
            return Response.json(401, {"detail": "Authentication credentials were not provided."})
        if auth != f"ShippoToken {self.token}":
            return Response.json(401, {"detail": "Token does not exist"})
        route = (request.method, *parts)
        with self._state:
            match route:
                case ("POST", "customs", "declarations"):
                    return self._create_declaration(request.json())
                case ("POST", "shipments"):
                    return self._create_shipment(request.json())
                case ("POST", "transactions"):
                    return self._create_transaction(request.json())
                case ("GET", "transactions"):
                    return self._list_transactions(request.query)
                case ("GET", "transactions", object_id):
                    found = self.transactions.get(object_id)
                    return Response.json(200, self._stored(found)) if found else self._missing()
                case ("GET", "rates", object_id):
                    rate = self.rates.get(object_id)
                    return Response.json(200, rate) if rate else self._missing()
                case ("POST", "refunds"):
                    return self._create_refund(request.json())
                case ("POST", "pickups"):
                    return self._create_pickup(request.json())
                case ("GET", "tracks", carrier, number):
                    return self._track(carrier, number)
        return self._missing()

    @staticmethod
    def _missing() -> Response:
        return Response.json(404, NOT_FOUND)

    # --- validation (400 bodies name the field) -----------------------------------------

    @staticmethod
    def _address_errors(address: Any) -> dict[str, list[str]]:
        if not isinstance(address, dict):
            return {"__all__": ["Expected an address object."]}
        errors = {
            f: [REQUIRED]
            for f in ("name", "street1", "city", "zip", "country")
            if not address.get(f)
        }
        if address.get("zip") == INVALID_ZIP:
            errors["zip"] = [
                f"The postal code {INVALID_ZIP} is not valid for {address.get('country')}."
            ]
        return errors

    @staticmethod
    def _parcel_errors(parcels: Any) -> list[dict[str, list[str]]] | list[str]:
        if not isinstance(parcels, list) or not parcels:
            return [REQUIRED]
        found = []
        for parcel in parcels:
            errors = {
                f: [REQUIRED] for f in ("length", "width", "height", "weight") if not parcel.get(f)
            }
            if parcel.get("distance_unit") not in ("cm", "in", "ft", "mm", "m", "yd"):
                errors["distance_unit"] = ['"cm", "in", "ft", "mm", "m" or "yd" is required.']
            if parcel.get("mass_unit") not in ("g", "kg", "lb", "oz"):
                errors["mass_unit"] = ['"g", "kg", "lb" or "oz" is required.']
            if parcel.get("weight") and Decimal(str(parcel["weight"])) <= 0:
                errors["weight"] = ["Ensure this value is greater than 0."]
            found.append(errors)
        return found if any(found) else []

    def _shipment_errors(self, body: Any) -> dict[str, Any]:
        errors: dict[str, Any] = {}
        for field in ("address_from", "address_to"):
            if problems := self._address_errors(body.get(field)):
                errors[field] = problems
        if parcel_problems := self._parcel_errors(body.get("parcels")):
            errors["parcels"] = parcel_problems
        declaration = body.get("customs_declaration")
        if declaration is not None and declaration not in self.declarations:
            errors["customs_declaration"] = [f'Invalid pk "{declaration}" - object does not exist.']
        return errors

    # --- endpoints ----------------------------------------------------------------------

    def _create_declaration(self, body: dict[str, Any]) -> Response:
        required = ("certify", "certify_signer", "contents_type", "items", "non_delivery_option")
        errors: dict[str, Any] = {f: [REQUIRED] for f in required if body.get(f) in (None, "")}
        item_fields = (
            "description",
            "quantity",
            "net_weight",
            "mass_unit",
            "value_amount",
            "value_currency",
            "origin_country",
        )
        items = [
            {f: [REQUIRED] for f in item_fields if item.get(f) in (None, "")}
            for item in body.get("items") or ()
        ]
        if any(items):
            errors["items"] = items
        if errors:
            return _bad(errors)
        declaration = {
            **body,
            "object_id": _id(),
            "object_state": "VALID",
            "test": True,
            "object_created": _now(),
            "object_owner": "fake@shippo.example",
        }
        self.declarations[declaration["object_id"]] = declaration
        return Response.json(201, declaration)

    def _create_shipment(self, body: dict[str, Any]) -> Response:
        if errors := self._shipment_errors(body):
            return _bad(errors)
        shipment = self._shipment(body)
        accounts = body.get("carrier_accounts") or list(ACCOUNTS)
        shipment["rates"] = [
            self._rate(s, shipment) for s in SERVICES if s.carrier_account in accounts
        ]
        return Response.json(201, shipment)

    def _shipment(self, body: dict[str, Any]) -> dict[str, Any]:
        shipment = {
            **body,
            "object_id": _id(),
            "status": "SUCCESS",
            "messages": [],
            "object_created": _now(),
            "test": True,
        }
        self.shipments[shipment["object_id"]] = shipment
        return shipment

    def _rate(self, service: ServiceLevel, shipment: dict[str, Any]) -> dict[str, Any]:
        kilograms = sum(
            (
                Decimal(str(p["weight"])) * KILOGRAMS_PER[p["mass_unit"]]
                for p in shipment["parcels"]
            ),
            Decimal(0),
        )
        amount = (service.base + service.per_kg * kilograms).quantize(Decimal("0.01"))
        currency = CURRENCY.get(shipment["address_from"]["country"], "EUR")
        rate = {
            "object_id": _id(),
            "object_created": _now(),
            "object_owner": "fake@shippo.example",
            "shipment": shipment["object_id"],
            "attributes": [],
            "amount": str(amount),
            "currency": currency,
            "amount_local": str(amount),
            "currency_local": currency,
            "provider": service.provider,
            "carrier_account": service.carrier_account,
            "servicelevel": {"name": service.name, "token": service.token, "terms": ""},
            "estimated_days": service.days,
            "duration_terms": "",
            "messages": [],
            "test": True,
        }
        self.rates[rate["object_id"]] = rate
        return rate

    def _create_transaction(self, body: dict[str, Any]) -> Response:
        file_type = body.get("label_file_type", "PDF_4x6")
        if file_type not in LABEL_FILE_TYPES:
            return _bad({"label_file_type": [f'"{file_type}" is not a valid choice.']})
        if "rate" in body:
            rate = self.rates.get(body["rate"])
            if rate is None:
                return _bad({"rate": [f'Invalid pk "{body["rate"]}" - object does not exist.']})
        else:
            shipment_body = body.get("shipment")
            if not isinstance(shipment_body, dict):
                return _bad({"shipment": [REQUIRED]})
            if errors := self._shipment_errors(shipment_body):
                return _bad({"shipment": errors})
            account, token = body.get("carrier_account"), body.get("servicelevel_token")
            if account not in ACCOUNTS:
                return _bad(
                    {"carrier_account": [f'Invalid pk "{account}" - object does not exist.']}
                )
            service = next(
                (s for s in SERVICES if s.token == token and s.carrier_account == account), None
            )
            if service is None:
                return _bad(
                    {
                        "servicelevel_token": [
                            f'"{token}" is not a service level of carrier account {account}.'
                        ]
                    }
                )
            rate = self._rate(service, self._shipment(shipment_body))
        return Response.json(201, self._buy(rate, file_type, body.get("metadata") or ""))

    def _buy(self, rate: dict[str, Any], file_type: str, metadata: str) -> dict[str, Any]:
        core_rate = {
            k: rate[k]
            for k in (
                "object_id",
                "amount",
                "amount_local",
                "currency",
                "currency_local",
                "provider",
                "carrier_account",
            )
        }
        core_rate |= {
            "servicelevel_name": rate["servicelevel"]["name"],
            "servicelevel_token": rate["servicelevel"]["token"],
        }
        transaction: dict[str, Any] = {
            "object_id": _id(),
            "object_state": "VALID",
            "object_created": _now(),
            "object_updated": _now(),
            "object_owner": "fake@shippo.example",
            "test": True,
            "rate": core_rate,
            "metadata": metadata,
            "label_file_type": file_type,
            "tracking_number": "",
            "tracking_status": "UNKNOWN",
            "tracking_url_provider": "",
            "label_url": "",
            "commercial_invoice_url": None,
            "eta": None,
            "messages": [],
            "qr_code_url": None,
            "parcel": _id(),
        }
        if self._purchase_errors:
            transaction |= {"status": "ERROR", "messages": [self._purchase_errors.popleft()]}
        else:
            self._counter += 1
            carrier = ACCOUNTS[rate["carrier_account"]]
            number = {
                "usps": f"92055901755477{self._counter:08d}",
                "dhl_express": f"{self._counter:010d}",
                "royal_mail": f"RM{self._counter:09d}GB",
            }[carrier]
            name, content_type, document = _document(transaction["object_id"], file_type, number)
            self.labels[name] = (content_type, document)
            transaction |= {
                "status": "SUCCESS",
                "tracking_number": number,
                "tracking_url_provider": TRACKING_URL[carrier].format(number),
                "label_url": f"{self.url}/labels/{name}",
                "carrier": carrier,
            }
            self.sold.append(transaction)
        self.transactions[transaction["object_id"]] = transaction
        return {k: v for k, v in transaction.items() if k != "carrier"}

    def _stored(self, transaction: dict[str, Any]) -> dict[str, Any]:
        shown = {k: v for k, v in transaction.items() if k != "carrier"}
        return shown | {"rate": transaction["rate"]["object_id"]} if self.rate_as_id else shown

    def _list_transactions(self, query: dict[str, list[str]]) -> Response:
        page = int(query.get("page", ["1"])[0])
        size = min(int(query.get("results", ["25"])[0]), 100)
        wanted = query.get("object_status", [None])[0]
        newest_first = [
            self._stored(t)
            for t in reversed(self.transactions.values())
            if wanted is None or t["status"] == wanted
        ]
        chunk = newest_first[(page - 1) * size : page * size]

        def link(number: int) -> str:
            params = {"page": number, "results": size} | (
                {"object_status": wanted} if wanted else {}
            )
            return f"{self.url}/transactions/?{urlencode(params)}"

        more = page * size < len(newest_first)
        return Response.json(
            200,
            {
                "next": link(page + 1) if more else None,
                "previous": link(page - 1) if page > 1 else None,
                "results": chunk,
            },
        )

    def _create_refund(self, body: dict[str, Any]) -> Response:
        transaction = self.transactions.get(body.get("transaction") or "")
        if transaction is None:
            return _bad(
                {
                    "transaction": [
                        f'Invalid pk "{body.get("transaction")}" - object does not exist.'
                    ]
                }
            )
        if transaction["status"] in ("REFUNDED", "REFUNDPENDING"):
            return _bad({"transaction": ["A refund for this transaction was already requested."]})
        if transaction["status"] != "SUCCESS":
            return _bad({"transaction": ["Only successful transactions can be refunded."]})
        transaction["status"] = "REFUNDED"
        refund = {
            "object_id": _id(),
            "object_created": _now(),
            "object_updated": _now(),
            "object_owner": "fake@shippo.example",
            "status": "SUCCESS",
            "transaction": transaction["object_id"],
            "test": True,
        }
        self.refunds.append(refund)
        return Response.json(201, refund)

    def _create_pickup(self, body: dict[str, Any]) -> Response:
        errors: dict[str, Any] = {}
        if ACCOUNTS.get(body.get("carrier_account") or "") not in ("usps", "dhl_express"):
            errors["carrier_account"] = [
                "Pickups are only available for USPS and DHL Express carrier accounts."
            ]
        location = body.get("location") or {}
        location_errors: dict[str, Any] = {}
        if problems := self._address_errors(location.get("address")):
            location_errors["address"] = problems
        kind = location.get("building_location_type")
        if kind not in LOCATION_TYPES:
            location_errors["building_location_type"] = [f'"{kind}" is not a valid choice.']
        if kind == "Other" and not location.get("instructions"):
            location_errors["instructions"] = ['Required when building_location_type is "Other".']
        if location_errors:
            errors["location"] = location_errors
        ids = body.get("transactions") or []
        if not ids or any(self.transactions.get(i, {}).get("status") != "SUCCESS" for i in ids):
            errors["transactions"] = ["Every transaction must be a successful label purchase."]
        try:
            start = datetime.fromisoformat(str(body.get("requested_start_time")))
            end = datetime.fromisoformat(str(body.get("requested_end_time")))
            if end <= start:
                errors["requested_end_time"] = ["Must be later than requested_start_time."]
        except ValueError:
            errors["requested_start_time"] = ["Datetime has wrong format."]
        if errors:
            return _bad(errors)
        pickup = {
            **body,
            "object_id": _id(),
            "object_created": _now(),
            "object_updated": _now(),
            "status": "CONFIRMED",
            "confirmation_code": f"WTC{len(self.pickups) + 1:09d}",
            "confirmed_start_time": body["requested_start_time"],
            "confirmed_end_time": body["requested_end_time"],
            "cancel_by_time": body["requested_start_time"],
            "timezone": "UTC",
            "messages": [],
            "is_test": True,
        }
        self.pickups.append(pickup)
        return Response.json(201, pickup)

    def _track(self, carrier: str, number: str) -> Response:
        sold = next((t for t in self.sold if t["tracking_number"] == number), None)
        body: dict[str, Any] = {
            "carrier": carrier,
            "tracking_number": number,
            "eta": None,
            "metadata": None,
            "messages": [],
            "tracking_history": [],
            "tracking_status": None,
        }
        if sold is None or sold["carrier"] != carrier:
            body["messages"] = ["Tracking information not found for this tracking number."]
            return Response.json(200, body)
        created = {
            "object_id": _id(),
            "status": "PRE_TRANSIT",
            "status_date": sold["object_created"],
            "status_details": "Shipping label created.",
            "substatus": None,
            "location": None,
        }
        history = [created, *self._tracking.get(number, [])]
        body |= {
            "transaction": sold["object_id"],
            "tracking_history": history,
            "tracking_status": history[-1],
        }
        return Response.json(200, body)

    def _label_file(self, name: str) -> Response:
        with self._state:
            found = self.labels.get(name)
        if found is None:
            return Response(404, {"Content-Type": "application/xml"}, b"<Error>NoSuchKey</Error>")
        return Response(200, {"Content-Type": found[0]}, found[1])


# --- label documents: small but valid files of each format ---------------------------------


def _document(object_id: str, file_type: str, number: str) -> tuple[str, str, bytes]:
    if file_type == "ZPLII":
        zpl = f"^XA^CF0,40^FO40,40^FDFAKE SHIPPO^FS^FO40,100^BCN,100^FD{number}^FS^XZ\n"
        return f"{object_id}.zpl", "application/zpl", zpl.encode()
    if file_type.startswith("PNG"):
        return f"{object_id}.png", "image/png", _png(number)
    return f"{object_id}.pdf", "application/pdf", _pdf(f"FAKE SHIPPO {file_type} {number}")


def _pdf(text: str) -> bytes:
    escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    content = f"BT /F1 16 Tf 24 380 Td ({escaped}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 288 432] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    return pdf_from_objects(objects)


def _png(text: str, width: int = 8, height: int = 4) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    rows = b"".join(b"\x00" + bytes([255] * width) for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"tEXt", b"Comment\x00" + text.encode())
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )
