"""``SendcloudFake``: Sendcloud API v3 on loopback, answering as its reference documents it.

One module on purpose: the fake is reused as is by the adapter's tests, the benchmarks and
the conformance suite, so everything it needs (routes, validation, documents) is here.

Endpoints (all under ``/api/v3``, HTTP Basic authentication with ``PUBLIC_KEY`` and
``SECRET_KEY`` unless others are given; a wrong pair gets 401 ``authentication_failed``):

================================================  =========================================
``POST /shipments/announce``                      create and announce synchronously (201);
                                                  a reused ``external_reference_id`` gets
                                                  409 with the shipment made the first time
``GET /shipments``                                filters ``external_reference_id``,
                                                  ``tracking_number``, ``order_number``,
                                                  ``shipment_uuids``
``GET /shipments/{id}``                           one shipment
``POST /shipments/{id}/cancel``                   200 cancelled; 409 when already cancelled
``GET /parcels/{id}/documents/label``             the label in the ``Accept`` format (a label
                                                  made as ZPL is always ZPL, as documented)
``GET /parcel-documents/label?parcels=..``        one document for several parcels
``POST /shipping-options``                        options with quotes (``calculate_quotes``)
``GET /parcels/tracking/{tracking_number}``       events; 404 ``{"detail": ...}`` if unknown
``POST /returns/announce-synchronously``          201 ``{return_id, parcel_id, ..}``; a reused
                                                  ``external_reference`` gets 400
``GET /returns/{id}``, ``PATCH /returns/{id}/cancel``
``POST /pickups``, ``GET /pickups``, ``GET /pickups/{id}``, ``POST /pickups/{id}/cancel``
================================================  =========================================

Validation answers 400 with the documented JSON:API error list, one item per problem,
``source.pointer`` naming the field (``/to_address/postal_code``): required address
fields, a postal code of only zeros (refused as invalid), parcels (1 to 15, weight with a
unit), the shipping option code (must be one of ``options``), the label MIME type, and for
parcels leaving the EU ``customs_information`` plus items with ``hs_code``, ``weight``,
``description``, ``price`` and ``origin_country``. The Returns API answers in its own
documented shape ``{"errors": [{"field", "message", "code"}]}``.

Records, to prove "bought once" from the service's side: ``sold`` (the reference of every
label made, in order), ``shipments``, ``returns``, ``pickups``, ``served_documents`` (the
bytes of every document sent) and, from ``FakeService``, ``requests``; ``reset()`` forgets
them all while the server keeps running. Scripting:
``fail_next``/``hang_next`` (from ``FakeService``), ``refuse_announcement(detail)`` (the
next shipment is created but its announcement fails, as the documented example shows) and
``add_tracking_event(tracking_number, status_code)``.
"""

from __future__ import annotations

import base64
import hashlib
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import attrs
from fulfil.testing.documents import pdf_from_objects, png_from_rows
from fulfil.testing.server import FakeService, Request, Response

__all__ = ["DEFAULT_OPTIONS", "FakeOption", "SendcloudFake", "label_document"]

PREFIX = "/api/v3"
EU = frozenset(
    ["AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE"]
    + ["IT", "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE", "MC"]
)
MIME_TYPES = {"application/pdf": "PDF", "application/zpl": "ZPL", "image/png": "PNG"}
CONTENT_TYPES = {name: mime for mime, name in MIME_TYPES.items()}
PICKUP_CARRIERS = frozenset({"brt", "correos", "correos_express", "dhl_de", "dhl_express"})


@attrs.frozen
class FakeOption:
    """A shipping option the fake account has enabled, with its price per parcel."""

    code: str
    name: str
    price: Decimal
    lead_time_hours: int = 24
    max_weight_kg: Decimal = Decimal("23.000")
    returns: bool = False

    @property
    def carrier(self) -> str:
        return self.code.split(":", 1)[0]


# Codes taken from Sendcloud's documentation examples.
DEFAULT_OPTIONS: tuple[FakeOption, ...] = (
    FakeOption("postnl:standard", "PostNL Standard", Decimal("6.95"), 24),
    FakeOption("postnl:standard/signature", "PostNL Standard + Signature", Decimal("7.95"), 24),
    FakeOption("dpd:home", "DPD Home", Decimal("8.20"), 48),
    FakeOption("dhl_express:worldwide/incoterm=dap", "DHL Express Worldwide", Decimal("39.50"), 72),
    FakeOption("sendcloud:letter", "Unstamped letter", Decimal("0.00"), 0, Decimal("2.000")),
    FakeOption("dpd:return/return", "DPD Return", Decimal("5.60"), 48, returns=True),
)


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _errors(status: int, items: Iterable[tuple[str | None, str, str]]) -> Response:
    """The v3 JSON:API error list: (pointer, code, detail) per problem."""
    body = []
    for pointer, code, detail in items:
        item: dict[str, Any] = {"status": str(status), "code": code, "detail": detail}
        if pointer:
            item["source"] = {"pointer": pointer}
        body.append(item)
    return Response.json(status, {"errors": body})


def _not_found(detail: str = "Not found") -> Response:
    return _errors(404, [(None, "not_found", detail)])


# --- documents: tiny but valid PDF, ZPL and PNG -----------------------------------------------


def _pdf(lines_per_page: list[list[str]]) -> bytes:
    objects: list[bytes] = []
    pages = len(lines_per_page)
    font = 3 + 2 * pages
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(pages))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {pages} >>".encode())
    for i, lines in enumerate(lines_per_page):
        text = " ".join(f"({line}) Tj 0 -24 Td" for line in lines)
        stream = f"BT /F1 14 Tf 20 380 Td {text} ET".encode()
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 298 420] /Contents {4 + 2 * i} 0 R "
            f"/Resources << /Font << /F1 {font} 0 R >> >> >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    return pdf_from_objects(objects)


def _png(seed: str, width: int = 48, height: int = 24) -> bytes:
    digest = hashlib.sha256(seed.encode()).digest()
    rows = b"".join(
        b"\x00" + bytes(digest[(x + y) % len(digest)] for x in range(width)) for y in range(height)
    )
    return png_from_rows(width, height, rows)


def _zpl(tracking_number: str) -> bytes:
    return (
        "^XA\n^CF0,40\n^FO40,40^FDSendcloud fake label^FS\n"
        f"^FO40,100^BCN,100,Y,N,N^FD{tracking_number}^FS\n^XZ\n"
    ).encode()


def label_document(label_format: str, tracking_numbers: list[str]) -> bytes:
    """The fake's label for these parcels: one page (or ZPL label) per parcel."""
    if label_format == "PDF":
        return _pdf([["Sendcloud fake label", tn] for tn in tracking_numbers])
    if label_format == "ZPL":
        return b"".join(_zpl(tn) for tn in tracking_numbers)
    return _png("/".join(tracking_numbers))


# --- validation -------------------------------------------------------------------------------

Problem = tuple[str, str, str]  # pointer, code, detail


def _blank(value: Any) -> bool:
    return not isinstance(value, str) or not value.strip()


def _address_problems(value: Any, where: str) -> list[Problem]:
    if not isinstance(value, Mapping):
        return [(f"/{where}", "required", "This field is required.")]
    found = [
        (f"/{where}/{name}", "required", "This field is required.")
        for name in ("name", "address_line_1", "postal_code", "city", "country_code")
        if _blank(value.get(name))
    ]
    country = value.get("country_code")
    if isinstance(country, str) and country and not re.fullmatch(r"[A-Z]{2}", country):
        found.append(
            (f"/{where}/country_code", "invalid_choice", f'"{country}" is not a valid choice.')
        )
    postal = value.get("postal_code")
    if isinstance(postal, str) and postal.strip() and set(postal.replace(" ", "")) == {"0"}:
        found.append(
            (
                f"/{where}/postal_code",
                "invalid",
                f"Postal code {postal} is not valid for {country}.",
            )
        )
    return found


def _positive(value: Any) -> bool:
    try:
        return Decimal(str(value)) > 0
    except InvalidOperation:
        return False


def _weight_problems(value: Any, where: str) -> list[Problem]:
    if not isinstance(value, Mapping):
        return [(where, "required", "This field is required.")]
    found = []
    if not _positive(value.get("value")):
        found.append((f"{where}/value", "min_value", "Ensure this value is greater than 0."))
    if value.get("unit") not in ("kg", "g", "lbs", "oz"):
        found.append((f"{where}/unit", "invalid_choice", "Select one of kg, g, lbs, oz."))
    return found


def _kilograms(value: Mapping[str, Any]) -> Decimal:
    factor = {"kg": Decimal(1), "g": Decimal("0.001"), "lbs": Decimal("0.45359237")}
    return Decimal(str(value["value"])) * factor.get(value["unit"], Decimal("0.028349523"))


def _item_problems(items: Any, where: str) -> list[Problem]:
    if not isinstance(items, list) or not items:
        detail = "This field is required for shipments that require customs documents."
        return [(where, "required", detail)]
    found: list[Problem] = []
    for i, item in enumerate(items):
        at = f"{where}/{i}"
        for name in ("description", "hs_code", "origin_country"):
            if _blank(item.get(name)):
                found.append((f"{at}/{name}", "required", "This field is required."))
        found += _weight_problems(item.get("weight"), f"{at}/weight")
        price = item.get("price")
        if (
            not isinstance(price, Mapping)
            or price.get("value") is None
            or not price.get("currency")
        ):
            found.append((f"{at}/price", "required", "This field is required."))
        if not isinstance(item.get("quantity"), int) or item["quantity"] < 1:
            found.append((f"{at}/quantity", "min_value", "Ensure this value is at least 1."))
    return found


def _international(body: Mapping[str, Any]) -> bool:
    origin = (body.get("from_address") or {}).get("country_code")
    destination = (body.get("to_address") or {}).get("country_code")
    return origin != destination and not {origin, destination} <= EU


class SendcloudFake(FakeService):
    """Sendcloud API v3 on 127.0.0.1, with a ledger of what it sold."""

    PUBLIC_KEY = "fake-sendcloud-public-key"
    SECRET_KEY = "fake-sendcloud-secret-key"

    def __init__(
        self,
        *,
        public_key: str = PUBLIC_KEY,
        secret_key: str = SECRET_KEY,
        options: Iterable[FakeOption] = DEFAULT_OPTIONS,
        latency: float = 0.0,
    ) -> None:
        super().__init__(latency)
        self.credentials = (public_key, secret_key)
        self.options = {option.code: option for option in options}
        self._data_lock = threading.Lock()
        self._forget()
        self._routes: list[tuple[str, re.Pattern[str], Callable[..., Response]]] = [
            ("POST", re.compile(r"/shipments/announce"), self._announce),
            ("GET", re.compile(r"/shipments"), self._list_shipments),
            ("GET", re.compile(r"/shipments/([^/]+)"), self._get_shipment),
            ("POST", re.compile(r"/shipments/([^/]+)/cancel"), self._cancel_shipment),
            ("GET", re.compile(r"/parcels/tracking/([^/]+)"), self._tracking),
            ("GET", re.compile(r"/parcels/(\d+)/documents/([a-z0-9-]+)"), self._document),
            ("GET", re.compile(r"/parcel-documents/([a-z0-9-]+)"), self._documents),
            ("POST", re.compile(r"/shipping-options"), self._shipping_options),
            ("POST", re.compile(r"/returns/announce-synchronously"), self._create_return),
            ("GET", re.compile(r"/returns/(\d+)"), self._get_return),
            ("PATCH", re.compile(r"/returns/(\d+)/cancel"), self._cancel_return),
            ("POST", re.compile(r"/pickups"), self._create_pickup),
            ("GET", re.compile(r"/pickups"), self._list_pickups),
            ("GET", re.compile(r"/pickups/(\d+)"), self._get_pickup),
            ("POST", re.compile(r"/pickups/(\d+)/cancel"), self._cancel_pickup),
        ]

    def _forget(self) -> None:
        self.sold: list[str] = []
        self.shipments: dict[str, dict[str, Any]] = {}
        self.returns: dict[int, dict[str, Any]] = {}
        self.pickups: dict[int, dict[str, Any]] = {}
        self.served_documents: list[bytes] = []
        self.tracking_events: dict[str, list[dict[str, Any]]] = {}
        self._parcels: dict[int, dict[str, Any]] = {}  # id -> {tracking_number, format}
        self._refusals: list[str] = []
        self._counter = 0

    def reset(self) -> None:
        """Forget everything sold, asked and scripted, keeping the server running: one
        fake can then serve many tests or benchmark rounds (stopping a server takes
        ``FakeService`` up to half a second)."""
        with self._lock, self._data_lock:
            self.requests.clear()
            self._faults.clear()
            self._forget()

    # --- scripting ------------------------------------------------------------------------

    def refuse_announcement(
        self, detail: str = "Service error: An error occurred while connecting to the carrier."
    ) -> None:
        """Create the next shipment but fail its announcement (201, ANNOUNCEMENT_FAILED)."""
        self._refusals.append(detail)

    def add_tracking_event(
        self, tracking_number: str, status_code: str, description: str = ""
    ) -> None:
        with self._data_lock:
            self.tracking_events.setdefault(tracking_number, []).append(
                {
                    "event_at": _now(),
                    "event_type": "carrier",
                    "status_code": status_code,
                    "status_description": description or status_code.replace("_", " "),
                    "status_type": "success",
                    "sub_status_code": "none",
                }
            )

    def basic_auth(self) -> str:
        """The Authorization header value the fake accepts."""
        token = base64.b64encode(":".join(self.credentials).encode()).decode()
        return f"Basic {token}"

    # --- dispatch -------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        if not request.path.startswith(PREFIX):
            return _not_found()
        if request.headers.get("authorization") != self.basic_auth():
            response = _errors(401, [(None, "authentication_failed", "Invalid username/password.")])
            return attrs.evolve(
                response, headers={**response.headers, "WWW-Authenticate": 'Basic realm="api"'}
            )
        partner = request.headers.get("sendcloud-partner-id")
        if partner is not None and not _is_uuid(partner):
            return Response.json(
                400,
                {
                    "errors": [
                        {
                            "status": "400",
                            "code": "invalid",
                            "detail": "The partner ID is not a valid UUID.",
                            "source": {"header": "Sendcloud-Partner-Id"},
                        }
                    ]
                },
            )
        route = request.path[len(PREFIX) :].rstrip("/") or "/"
        for method, pattern, handler in self._routes:
            match = pattern.fullmatch(route)
            if match and method == request.method:
                with self._data_lock:
                    return handler(request, *match.groups())
        return _not_found()

    def _next_id(self) -> int:
        self._counter += 1
        return self._counter

    def _body(self, request: Request) -> Any:
        try:
            return request.json()
        except ValueError:
            return None

    # --- shipments ------------------------------------------------------------------------

    def _announce(self, request: Request) -> Response:
        body = self._body(request)
        if not isinstance(body, Mapping):
            return _errors(400, [("/", "invalid", "JSON parse error.")])
        problems = self._shipment_problems(body)
        if problems:
            return _errors(400, problems)
        reference = body.get("external_reference_id")
        if reference:
            for shipment in self.shipments.values():
                if shipment.get("external_reference_id") == reference:
                    return Response.json(409, {"data": shipment})
        label_format = MIME_TYPES[
            (body.get("label_details") or {}).get("mime_type", "application/pdf")
        ]
        option = self.options[body["ship_with"]["properties"]["shipping_option_code"]]
        refusal = self._refusals.pop(0) if self._refusals else None
        shipment_id = str(uuid.UUID(int=self._next_id()))
        parcels = [
            self._new_parcel(p, option, label_format, body, refused=refusal is not None)
            for p in body["parcels"]
        ]
        shipment = {
            "id": shipment_id,
            "label_details": {
                "mime_type": CONTENT_TYPES[label_format],
                "dpi": (body.get("label_details") or {}).get("dpi", 72),
            },
            "order_number": body.get("order_number"),
            "total_order_price": body.get("total_order_price"),
            "external_reference_id": reference,
            "reference": body.get("reference"),
            "parcels": parcels,
            "from_address": body["from_address"],
            "to_address": body["to_address"],
            "ship_with": body["ship_with"],
            "customs_information": body.get("customs_information"),
            "carrier": {"code": option.carrier, "name": option.name.split(" ")[0]},
            "errors": [],
        }
        if refusal is not None:
            shipment["errors"] = [
                {"status": "500", "code": "parcel_announcement_error", "detail": refusal}
            ]
        else:
            self.sold.append(reference or shipment_id)
        self.shipments[shipment_id] = shipment
        answer = dict(shipment)
        if len(parcels) == 1 and refusal is None:
            document = label_document(label_format, [parcels[0]["tracking_number"]])
            answer["parcels"] = [{**parcels[0], "label_file": base64.b64encode(document).decode()}]
        return Response.json(201, {"data": answer})

    def _shipment_problems(self, body: Mapping[str, Any]) -> list[Problem]:
        found = _address_problems(body.get("to_address"), "to_address")
        found += _address_problems(body.get("from_address"), "from_address")
        ship_with = body.get("ship_with")
        properties = ship_with.get("properties") if isinstance(ship_with, Mapping) else None
        if not isinstance(ship_with, Mapping) or ship_with.get("type") != "shipping_option_code":
            found.append(("/ship_with/type", "invalid_choice", 'Select "shipping_option_code".'))
        elif not isinstance(properties, Mapping) or _blank(properties.get("shipping_option_code")):
            found.append(
                (
                    "/ship_with/properties/shipping_option_code",
                    "required",
                    "This field is required.",
                )
            )
        elif properties["shipping_option_code"] not in self.options:
            code = properties["shipping_option_code"]
            detail = f"Shipping option {code} is not available for your account."
            found.append(("/ship_with/properties/shipping_option_code", "invalid", detail))
        mime = (body.get("label_details") or {}).get("mime_type", "application/pdf")
        if mime not in MIME_TYPES:
            found.append(
                ("/label_details/mime_type", "invalid_choice", f'"{mime}" is not a valid choice.')
            )
        parcels = body.get("parcels")
        if not isinstance(parcels, list) or not 1 <= len(parcels) <= 15:
            found.append(("/parcels", "invalid", "Send between 1 and 15 parcels."))
            return found
        for i, parcel in enumerate(parcels):
            found += _weight_problems(parcel.get("weight"), f"/parcels/{i}/weight")
        if not found and _international(body):
            customs = body.get("customs_information")
            if not isinstance(customs, Mapping):
                detail = "This field is required for shipments outside the EU."
                found.append(("/customs_information", "required", detail))
            else:
                for name in ("invoice_number", "export_reason"):
                    if _blank(customs.get(name)):
                        found.append(
                            (f"/customs_information/{name}", "required", "This field is required.")
                        )
            items = [item for p in parcels for item in p.get("parcel_items") or []]
            where = "/parcels/0/parcel_items"
            found += _item_problems(parcels[0].get("parcel_items") if items else None, where)
        return found

    def _new_parcel(
        self,
        body: Mapping[str, Any],
        option: FakeOption,
        label_format: str,
        shipment: Mapping[str, Any],
        *,
        refused: bool,
    ) -> dict[str, Any]:
        parcel_id = 100000 + self._next_id()
        tracking_number = f"3SFAKE{parcel_id:08d}"
        source = shipment["from_address"]["country_code"]
        destination = shipment["to_address"]["country_code"]
        self._parcels[parcel_id] = {"tracking_number": tracking_number, "format": label_format}
        now = _now()
        parcel: dict[str, Any] = {
            "id": parcel_id,
            "status": {"code": "READY_TO_SEND", "message": "Ready to send"},
            "documents": [
                {
                    "type": "label",
                    "document_type": "label",
                    "size": "a6",
                    "link": f"{self.url}{PREFIX}/parcels/{parcel_id}/documents/label",
                }
            ],
            "dimensions": body.get("dimensions"),
            "weight": body["weight"],
            "tracking_number": tracking_number,
            "tracking_url": "https://tracking.eu-central-1-0.sendcloud.sc/forward?"
            f"carrier={option.carrier}&code={tracking_number}&destination={destination}"
            f"&lang=en-us&source={source}&type=parcel",
            "created_at": now,
            "updated_at": now,
            "announced_at": now,
            "parcel_items": body.get("parcel_items") or [],
        }
        if refused:
            parcel.update(
                status={"code": "ANNOUNCEMENT_FAILED", "message": "Announcement Failed"},
                documents=[],
                tracking_url=None,
            )
            return parcel
        self.tracking_events[tracking_number] = [
            {
                "event_at": now,
                "event_type": "internal",
                "status_code": "announced",
                "status_description": "The shipping label has been announced at the carrier.",
                "status_type": "success",
                "sub_status_code": "none",
            }
        ]
        return parcel

    def _list_shipments(self, request: Request) -> Response:
        def wanted(shipment: Mapping[str, Any]) -> bool:
            for name in ("external_reference_id", "order_number"):
                if name in request.query and shipment.get(name) != request.query[name][0]:
                    return False
            uuids = request.query.get("shipment_uuids")
            if uuids and shipment["id"] not in uuids[0].split(","):
                return False
            if "tracking_number" in request.query:
                numbers = {p["tracking_number"] for p in shipment["parcels"]}
                return request.query["tracking_number"][0] in numbers
            return True

        return Response.json(200, {"data": [s for s in self.shipments.values() if wanted(s)]})

    def _get_shipment(self, request: Request, shipment_id: str) -> Response:
        shipment = self.shipments.get(shipment_id)
        return Response.json(200, {"data": shipment}) if shipment else _not_found()

    def _cancel_shipment(self, request: Request, shipment_id: str) -> Response:
        shipment = self.shipments.get(shipment_id)
        if shipment is None:
            return _not_found()
        if any(p["status"]["code"] == "CANCELLED" for p in shipment["parcels"]):
            return _errors(409, [(None, "invalid", "This shipment is already being cancelled.")])
        for parcel in shipment["parcels"]:
            parcel["status"] = {"code": "CANCELLED", "message": "Cancelled"}
            self.tracking_events.setdefault(parcel["tracking_number"], []).append(
                {
                    "event_at": _now(),
                    "event_type": "internal",
                    "status_code": "cancelled",
                    "status_description": "The label was successfully cancelled at the carrier.",
                    "status_type": "success",
                    "sub_status_code": "none",
                }
            )
        return Response.json(
            200, {"data": {"status": "cancelled", "message": "Shipment has been cancelled"}}
        )

    # --- documents ------------------------------------------------------------------------

    def _serve(self, request: Request, parcel_ids: list[int]) -> Response:
        parcels = [self._parcels.get(pid) for pid in parcel_ids]
        if not parcel_ids or any(p is None for p in parcels):
            return _not_found("No Parcel matches the given query.")
        accept = request.headers.get("accept", "application/pdf")
        label_format = MIME_TYPES.get(accept, "PDF")
        if parcels[0]["format"] == "ZPL":  # type: ignore[index]
            label_format = "ZPL"  # native ZPL cannot be converted, as documented
        document = label_document(label_format, [p["tracking_number"] for p in parcels])  # type: ignore[index]
        self.served_documents.append(document)
        return Response(200, {"Content-Type": CONTENT_TYPES[label_format]}, document)

    def _document(self, request: Request, parcel_id: str, kind: str) -> Response:
        if kind != "label":
            return _not_found("Document type requested is not available for the parcel.")
        return self._serve(request, [int(parcel_id)])

    def _documents(self, request: Request, kind: str) -> Response:
        if kind != "label":
            return _errors(400, [(None, "invalid", "Invalid document type.")])
        ids = request.query.get("parcels", [])
        if not ids or not all(i.isdigit() for i in ids):
            return _errors(400, [(None, "required", "The parcels parameter is required.")])
        return self._serve(request, [int(i) for i in ids])

    # --- shipping options -----------------------------------------------------------------

    def _shipping_options(self, request: Request) -> Response:
        body = self._body(request)
        if not isinstance(body, Mapping):
            return _errors(400, [("/", "invalid", "JSON parse error.")])
        parcels = body.get("parcels") or (
            [{"weight": body["weight"]}] if body.get("weight") else []
        )
        problems = [
            p
            for i, parcel in enumerate(parcels)
            for p in _weight_problems(parcel.get("weight"), f"/parcels/{i}/weight")
        ]
        if problems:
            return _errors(400, problems)
        origin = (body.get("from_address") or {}).get("country_code") or body.get(
            "from_country_code"
        )
        destination = (body.get("to_address") or {}).get("country_code") or body.get(
            "to_country_code"
        )
        heaviest = max((_kilograms(p["weight"]) for p in parcels), default=Decimal(0))
        data = []
        for option in self.options.values():
            if body.get("shipping_option_code") not in (None, option.code):
                continue
            wanted = (body.get("functionalities") or {}).get("returns")
            if wanted is not None and wanted != option.returns:
                continue
            if (
                body.get("carrier_code") not in (None, option.carrier)
                or heaviest > option.max_weight_kg
            ):
                continue
            quotes = None
            if body.get("calculate_quotes") and origin and destination:
                total = str((option.price * max(len(parcels), 1)).quantize(Decimal("0.01")))
                quotes = [
                    {
                        "weight": {
                            "min": {"value": "0.001", "unit": "kg"},
                            "max": {"value": str(option.max_weight_kg), "unit": "kg"},
                        },
                        "price": {
                            "breakdown": [
                                {
                                    "type": "price_without_insurance",
                                    "label": "Label",
                                    "price": {"value": total, "currency": "EUR"},
                                }
                            ],
                            "total": {"value": total, "currency": "EUR"},
                        },
                        "lead_time": option.lead_time_hours,
                    }
                ]
            data.append(
                {
                    "code": option.code,
                    "name": option.name,
                    "carrier": {"code": option.carrier, "name": option.name.split(" ")[0]},
                    "product": {"code": option.code.split("/")[0], "name": option.name},
                    "functionalities": {"returns": option.returns, "tracked": True},
                    "contract": None,
                    "weight": {
                        "min": {"value": "0.001", "unit": "kg"},
                        "max": {"value": str(option.max_weight_kg), "unit": "kg"},
                    },
                    "quotes": quotes,
                }
            )
        return Response.json(200, {"data": data})

    # --- tracking -------------------------------------------------------------------------

    def _tracking(self, request: Request, tracking_number: str) -> Response:
        events = self.tracking_events.get(tracking_number)
        if events is None:
            return Response.json(404, {"detail": "Parcel does not exist"})
        shipment = next(
            (
                s
                for s in self.shipments.values()
                if any(p["tracking_number"] == tracking_number for p in s["parcels"])
            ),
            None,
        )
        returned = next(
            (r for r in self.returns.values() if r["tracking_number"] == tracking_number), None
        )
        source = shipment or returned or {}
        carrier = (source.get("carrier") or {}).get("code", "sendcloud")
        return Response.json(
            200,
            {
                "announced_at": events[0]["event_at"],
                "created_at": events[0]["event_at"],
                "updated_at": events[-1]["event_at"],
                "details": {
                    "is_return": returned is not None,
                    "is_mail_box": False,
                    "is_to_service_point": False,
                },
                "events": events,
                "from_address": source.get("from_address"),
                "to_address": source.get("to_address"),
                "source_id": str(source.get("id", "")),
                "tracking_numbers": [{"carrier_code": carrier, "tracking_number": tracking_number}],
            },
        )

    # --- returns --------------------------------------------------------------------------

    def _create_return(self, request: Request) -> Response:
        body = self._body(request)
        if not isinstance(body, Mapping):
            return Response.json(
                400, {"errors": [{"field": "", "message": "JSON parse error.", "code": "invalid"}]}
            )
        problems = _address_problems(body.get("from_address"), "from_address")
        problems += _address_problems(body.get("to_address"), "to_address")
        ship_with = body.get("ship_with") or {}
        code = str(ship_with.get("shipping_option_code") or "")
        if ship_with.get("type") != "shipping_option_code" or code not in self.options:
            problems.append(
                ("/ship_with/shipping_option_code", "invalid", f"Unknown shipping option {code}.")
            )
        problems += _weight_problems(body.get("weight"), "/weight")
        if not problems and _international(body):
            problems += _item_problems(body.get("parcel_items"), "/parcel_items")
        if problems:
            return Response.json(
                400,
                {
                    "errors": [
                        {
                            "field": pointer.strip("/").replace("/", "."),
                            "message": detail,
                            "code": code,
                        }
                        for pointer, code, detail in problems
                    ]
                },
            )
        reference = body.get("external_reference")
        if reference and any(r["external_reference"] == reference for r in self.returns.values()):
            return Response.json(
                400,
                {
                    "error": {
                        "code": "invalid",
                        "request": "api/v3/returns/announce-synchronously",
                        "message": "External reference has already been used in another return.",
                    }
                },
            )
        return_id = self._next_id()
        parcel_id = 100000 + self._next_id()
        tracking_number = f"3SFAKE{parcel_id:08d}"
        self._parcels[parcel_id] = {"tracking_number": tracking_number, "format": "PDF"}
        link = f"{self.url}{PREFIX}/parcels/{parcel_id}/documents/label"
        now = _now()
        option = self.options[code]
        self.returns[return_id] = {
            "id": return_id,
            "parcel_id": parcel_id,
            "external_reference": reference,
            "from_address": body["from_address"],
            "to_address": body["to_address"],
            "shipping_product": {"code": code.split("/")[0]},
            "shipping_option": {"code": code},
            "dimensions": body.get("dimensions"),
            "weight": body["weight"],
            "collo_count": body.get("collo_count", 1),
            "parcel_items": body.get("parcel_items") or [],
            "send_tracking_emails": bool(body.get("send_tracking_emails")),
            "label_url": link,
            "label": {"label_printer": link, "normal_printer": [f"{link}?paper_size=a4"] * 4},
            "label_cost": {"value": float(option.price), "currency": "EUR"},
            "insurance": False,
            "tracking_number": tracking_number,
            "tracking_url": "https://tracking.eu-central-1-0.sendcloud.sc/forward?"
            f"carrier={option.carrier}&code={tracking_number}&type=parcel",
            "is_cancellable": True,
            "status_history": [self._return_status("Announced")],
            "created_at": now,
            "order_number": body.get("order_number", ""),
            "status": "open",
            "errors": [],
        }
        self.tracking_events[tracking_number] = [
            {
                "event_at": now,
                "event_type": "internal",
                "status_code": "announced",
                "status_description": "The shipping label has been announced at the carrier.",
                "status_type": "success",
                "sub_status_code": "none",
            }
        ]
        self.sold.append(reference or f"return:{return_id}")
        return Response.json(
            201, {"return_id": return_id, "parcel_id": parcel_id, "multi_collo_ids": []}
        )

    def _return_status(self, parent_status: str) -> dict[str, Any]:
        return {
            "carrier_update_timestamp": _now(),
            "parcel_status_history_id": str(self._next_id()),
            "parent_status": parent_status,
            "carrier_code": "sendcloud",
            "carrier_message": parent_status,
        }

    def _get_return(self, request: Request, return_id: str) -> Response:
        found = self.returns.get(int(return_id))
        if found is None:
            return Response(404)
        public = {
            k: v for k, v in found.items() if k not in ("id", "parcel_id", "external_reference")
        }
        return Response.json(200, public)

    def _cancel_return(self, request: Request, return_id: str) -> Response:
        found = self.returns.get(int(return_id))
        if found is None:
            return Response(404)
        if not found["is_cancellable"]:
            return Response.json(
                409,
                {
                    "errors": [
                        {"field": "returns", "code": 409, "message": "Return is not cancellable."}
                    ]
                },
            )
        found["is_cancellable"] = False
        found["status_history"].append(self._return_status("Cancellation requested"))
        return Response.json(202, {"message": "Cancellation requested successfully"})

    # --- pickups --------------------------------------------------------------------------

    def _create_pickup(self, request: Request) -> Response:
        body = self._body(request)
        if not isinstance(body, Mapping):
            return _errors(400, [("/", "invalid", "JSON parse error.")])
        problems = _address_problems(body.get("address"), "address")
        slots = body.get("time_slots")
        if not isinstance(slots, list) or not 1 <= len(slots) <= 2:
            problems.append(("/time_slots", "invalid", "Give one or two time slots."))
        else:
            for i, slot in enumerate(slots):
                try:
                    start = datetime.fromisoformat(slot["start_at"])
                    end = datetime.fromisoformat(slot["end_at"])
                    valid = start.tzinfo is not None and end > start
                except (KeyError, TypeError, ValueError):
                    valid = False
                if not valid:
                    problems.append(
                        (
                            f"/time_slots/{i}",
                            "invalid",
                            "Give start_at before end_at, with a time zone.",
                        )
                    )
        items = body.get("items")
        if not isinstance(items, list) or len(items) != 1:
            problems.append(("/items", "invalid", "Give one item."))
        else:
            if not isinstance(items[0].get("quantity"), int) or items[0]["quantity"] < 1:
                problems.append(
                    ("/items/0/quantity", "min_value", "Ensure this value is at least 1.")
                )
            problems += _weight_problems(items[0].get("total_weight"), "/items/0/total_weight")
        carrier = body.get("carrier_code")
        carriers = PICKUP_CARRIERS | {o.carrier for o in self.options.values()}
        if carrier not in carriers:
            problems.append(
                ("/carrier_code", "invalid_choice", f'"{carrier}" is not a valid choice.')
            )
        if problems:
            return _errors(400, problems)
        pickup_id = self._next_id()
        pickup = {
            "id": pickup_id,
            "address": body["address"],
            "time_slots": body["time_slots"],
            "items": body["items"],
            "reference": body.get("reference", ""),
            "special_instructions": body.get("special_instructions", ""),
            "tracking_number": f"PRG{pickup_id:09d}",
            "status": "ANNOUNCING",
            "created_at": _now(),
            "cancelled_at": None,
            "carrier_code": carrier,
            "contract_id": body.get("contract_id"),
        }
        self.pickups[pickup_id] = pickup
        return Response.json(201, {"data": pickup})

    def _list_pickups(self, request: Request) -> Response:
        keep = (
            "id",
            "time_slots",
            "carrier_code",
            "tracking_number",
            "status",
            "created_at",
            "cancelled_at",
            "contract_id",
        )
        listed = [
            {**{k: p[k] for k in keep}, "country": p["address"]["country_code"]}
            for p in self.pickups.values()
        ]
        return Response.json(200, {"data": listed})

    def _get_pickup(self, request: Request, pickup_id: str) -> Response:
        pickup = self.pickups.get(int(pickup_id))
        return Response.json(200, {"data": pickup}) if pickup else _not_found()

    def _cancel_pickup(self, request: Request, pickup_id: str) -> Response:
        pickup = self.pickups.get(int(pickup_id))
        if pickup is None:
            return _not_found()
        if pickup["status"] == "CANCELLED":
            return _errors(409, [(None, "invalid", "This pickup is already cancelled.")])
        pickup.update(status="CANCELLED", cancelled_at=_now())
        return Response.json(200, {"data": pickup})


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
