"""A fake EasyPost API v2 on loopback, answering with the bodies EasyPost documents.

    with FakeEasyPost(api_key="EZTK_test", latency=0.05) as fake:
        base_url = fake.url + "/v2"          # what https://api.easypost.com/v2 would be
        ...                                   # any EasyPost client, fulfil's or karrio's
        assert len(fake.sold) == 1            # what was really bought, by shipment + reference

It needs nothing but ``fulfil.testing.server`` (a threaded HTTP server: requests are served
concurrently, each after ``latency`` seconds) and is meant to be reused by benchmarks:
karrio's EasyPost connector works against it unchanged once its ``server_url`` points at
``fake.url + "/v2"``, and downloads the label from the ``postage_label.label_url`` the fake
returns, which this same server serves (a real PDF, ZPL text, EPL2 text or PNG image).

Endpoints (https://docs.easypost.com/docs/shipments and the pages it links):

=============================================== =============================================
POST /v2/shipments                              create; rates from ``rates`` (per carrier
                                                account); with ``service`` and
                                                ``carrier_accounts``: one-call buy (201)
GET  /v2/shipments[?purchased&page_size&before_id]  list, most recent first (pagination)
GET  /v2/shipments/{id or reference}            retrieve; a reference may stand for an id
POST /v2/shipments/{id}/buy  {"rate": {"id"}}   buy; again: 422 SHIPMENT.POSTAGE.EXISTS
GET  /v2/shipments/{id}/label?file_format=ZPL   convert: adds label_zpl_url (or pdf, epl2)
POST /v2/shipments/{id}/refund                  refund_status "submitted" (``refund_outcome``)
POST /v2/pickups, GET /v2/pickups/{id or reference}, POST /v2/pickups/{id}/buy
     {"carrier", "service"}, POST /v2/pickups/{id}/cancel
POST /v2/trackers {"tracker": {"tracking_code"}}, GET /v2/trackers/{id}
GET  /files/postage_label/...                   label documents (no auth, as file storage)
=============================================== =============================================

Every /v2 request needs HTTP Basic auth with ``api_key`` as user name (401 otherwise).
Errors are ``{"error": {"code", "message", "errors": [{"field", "message"}]}}``: 422
SHIPMENT.INVALID_PARAMS names the field (``to_address.zip`` for a zip such as "00000"),
PARAMETER.REQUIRED a missing object, 404 NOT_FOUND an unknown id. A reference shared by
several shipments finds the most recent one (EasyPost does not enforce unique references).

Faults: ``fail_next`` and ``hang_next`` from ``FakeService`` act on the next request;
``answer_next(path_suffix, response)`` answers the next request to a matching path
without doing its work, and ``stall_next(path_suffix)`` does that request's work, then
leaves it unanswered: a lost answer to a purchase that a lookup preceded.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import threading
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import unquote

import attrs
from fulfil.core.saga import CUSTOMS_UNION
from fulfil.testing.documents import pdf_from_objects, png_from_rows
from fulfil.testing.server import FakeService, Request, Response

__all__ = ["CARRIER_ACCOUNTS", "DEFAULT_RATES", "FakeEasyPost", "RateSpec", "Sale"]


@attrs.frozen
class RateSpec:
    """One service the fake rates: its price for 16 oz and what it adds per extra ounce."""

    carrier: str
    service: str
    base: Decimal
    days: int
    scope: str = "domestic"  # domestic | international | any
    per_ounce: Decimal = Decimal("0.04")


DEFAULT_RATES: tuple[RateSpec, ...] = (
    RateSpec("USPS", "GroundAdvantage", Decimal("5.93"), 4),
    RateSpec("USPS", "Priority", Decimal("7.42"), 2),
    RateSpec("USPS", "Express", Decimal("28.75"), 1),
    RateSpec("USPS", "PriorityMailInternational", Decimal("45.50"), 8, "international"),
    RateSpec("UPS", "Ground", Decimal("10.59"), 3),
    RateSpec("UPS", "2ndDayAir", Decimal("19.79"), 2),
    RateSpec("UPS", "NextDayAir", Decimal("30.44"), 1),
    RateSpec("UPS", "Expedited", Decimal("58.20"), 4, "international"),
    RateSpec("FedEx", "FEDEX_GROUND", Decimal("11.02"), 3),
    RateSpec("FedEx", "FEDEX_2_DAY", Decimal("21.36"), 2),
    RateSpec("FedEx", "INTERNATIONAL_ECONOMY", Decimal("61.80"), 5, "international"),
    RateSpec("DHLExpress", "ExpressWorldwideNonDoc", Decimal("62.10"), 3, "international"),
)

CARRIER_ACCOUNTS: dict[str, str] = {
    carrier: "ca_" + hashlib.md5(carrier.encode()).hexdigest()
    for carrier in ("USPS", "UPS", "FedEx", "DHLExpress")
}

PICKUP_RATES: dict[str, tuple[tuple[str, str], ...]] = {
    "USPS": (("NextDay", "0.00"),),
    "UPS": (("Future-day Pickup", "6.50"), ("Same-day Pickup", "9.00")),
    "FedEx": (("FDXG", "4.00"),),
    "DHLExpress": (("Pickup", "0.00"),),
}

LABEL_TYPES = {
    "PDF": ("application/pdf", "pdf"),
    "PNG": ("image/png", "png"),
    "ZPL": ("application/zpl", "zpl"),
    "EPL2": ("application/epl2", "epl2"),
}

INVALID_PARAMS = "Unable to create shipment, one or more parameters were invalid."


@attrs.frozen
class Sale:
    """One label the fake sold: proof, from the carrier's side, of what was bought."""

    shipment_id: str
    reference: str | None
    tracking_code: str
    carrier: str
    service: str
    rate: str
    label_format: str


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def error(status: int, code: str, message: str, *fields: tuple[str, str]) -> Response:
    """An EasyPost error answer."""
    errors = [{"field": f, "message": m, "suggestion": None} for f, m in fields]
    return Response.json(status, {"error": {"code": code, "message": message, "errors": errors}})


class _Refused(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


def _refuse(status: int, code: str, message: str, *fields: tuple[str, str]) -> _Refused:
    return _Refused(error(status, code, message, *fields))


class FakeEasyPost(FakeService):
    """EasyPost as its documentation describes it, with a ledger of what it sold."""

    def __init__(
        self,
        api_key: str = "EZTK_fake_easypost_key",
        *,
        latency: float = 0.0,
        rates: tuple[RateSpec, ...] = DEFAULT_RATES,
    ) -> None:
        super().__init__(latency=latency)
        self.api_key = api_key
        self.rate_specs = rates
        self.carrier_accounts = dict(CARRIER_ACCOUNTS)
        self.refund_outcome = "submitted"  # what a refund request answers
        self.shipments: dict[str, dict[str, Any]] = {}  # by id, in creation order
        self.pickups: dict[str, dict[str, Any]] = {}
        self.trackers: dict[str, dict[str, Any]] = {}  # by tracking code
        self.sold: list[Sale] = []
        self.refunds: list[str] = []  # shipment ids, in request order
        self.pickups_booked: list[str] = []  # pickup ids
        self.files: dict[str, tuple[str, bytes]] = {}  # path -> (content type, bytes)
        self._stalls: list[tuple[str, float, bool]] = []
        self._answers: list[tuple[str, Response]] = []
        self._state = threading.Lock()
        self._serial = itertools.count(1)

    # --- scripting ----------------------------------------------------------------------

    def answer_next(self, path_suffix: str, response: Response) -> None:
        """Answer the next request whose path ends with ``path_suffix`` with ``response``,
        without doing its work (``fail_next`` for one endpoint: a 503 to a purchase only)."""
        with self._state:
            self._answers.append((path_suffix, response))

    def stall_next(self, path_suffix: str, seconds: float = 5.0, *, apply: bool = True) -> None:
        """Leave the next request whose path ends with ``path_suffix`` (e.g. ``"/buy"``)
        unanswered for ``seconds``; with ``apply`` its work is done first (``hang_next``
        for one endpoint): either way the caller cannot know the outcome."""
        with self._state:
            self._stalls.append((path_suffix, seconds, apply))

    def reset(self) -> None:
        """Forget every object, sale, request and scripted fault: a new account on the same
        server (a test suite can share one server instead of paying a start and stop each)."""
        with self._state:
            self.refund_outcome = "submitted"
            for ledger in (self.shipments, self.pickups, self.trackers, self.files):
                ledger.clear()
            for log in (self.sold, self.refunds, self.pickups_booked, self._stalls, self._answers):
                log.clear()
        with self._lock:
            self.requests.clear()
            self._faults.clear()

    def advance_tracker(self, tracking_code: str, status: str, message: str) -> None:
        """Add a carrier scan to a tracker (e.g. ``"delivered"``), as the carrier would."""
        with self._state:
            tracker = self.trackers[tracking_code]
            tracker["status"] = status
            tracker["updated_at"] = _now()
            tracker["tracking_details"].append(self._detail(status, message, tracker["carrier"]))

    def label_document(self, url: str) -> bytes:
        """The bytes served at a ``label_url``."""
        return self.files[url.removeprefix(self.url)][1]

    # --- dispatch -----------------------------------------------------------------------

    def handle(self, request: Request) -> Response | None:  # type: ignore[override]
        # None leaves the request unanswered, exactly as FakeService does for hang_next.
        if request.path.startswith("/files/") and request.method == "GET":
            served = self.files.get(request.path)
            if served is None:
                return error(404, "NOT_FOUND", "The requested resource could not be found.")
            return Response(200, {"Content-Type": served[0]}, served[1])
        if not request.path.startswith("/v2/"):
            return error(404, "NOT_FOUND", "The requested resource could not be found.")
        if not self._authorized(request):
            return error(401, "UNAUTHORIZED", "The API key provided is invalid or inactive.")
        try:
            body = json.loads(request.body) if request.body else {}
        except ValueError:
            return error(400, "BAD_REQUEST", "The request body is not valid JSON.")
        parts = [unquote(p) for p in request.path[len("/v2/") :].strip("/").split("/")]
        with self._state:
            scripted = next((a for a in self._answers if request.path.endswith(a[0])), None)
            if scripted is not None:
                self._answers.remove(scripted)
                return scripted[1]
            stall = next((s for s in self._stalls if request.path.endswith(s[0])), None)
            if stall is not None:
                self._stalls.remove(stall)
            if stall is None or stall[2]:
                try:
                    response = self._route(request.method, parts, body, request.query)
                except _Refused as refused:
                    response = refused.response
        if stall is not None:
            time.sleep(stall[1])
            return None
        return response

    def _authorized(self, request: Request) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user = base64.b64decode(token).decode().partition(":")[0]
        except ValueError:
            return False
        return user == self.api_key

    def _route(
        self, method: str, parts: list[str], body: Any, query: Mapping[str, list[str]]
    ) -> Response:
        resource, rest = parts[0], parts[1:]
        action = rest[1] if len(rest) > 1 else None
        if resource == "shipments":
            if not rest:
                if method == "POST":
                    return self._create_shipment(body)
                if method == "GET":
                    return self._list_shipments(query)
            else:
                shipment = self._find(self.shipments, rest[0])
                if method == "GET" and action is None:
                    return Response.json(200, shipment)
                if method == "POST" and action == "buy":
                    return Response.json(200, self._buy(shipment, body))
                if method == "GET" and action == "label":
                    return self._convert_label(shipment, query)
                if method == "POST" and action == "refund":
                    return Response.json(200, self._refund(shipment))
        elif resource == "pickups":
            if not rest and method == "POST":
                return Response.json(201, self._create_pickup(body))
            if rest:
                pickup = self._find(self.pickups, rest[0])
                if method == "GET" and action is None:
                    return Response.json(200, pickup)
                if method == "POST" and action == "buy":
                    return Response.json(200, self._buy_pickup(pickup, body))
                if method == "POST" and action == "cancel":
                    pickup["status"] = "canceled"
                    return Response.json(200, pickup)
        elif resource == "trackers":
            if not rest and method == "POST":
                return self._create_tracker(body)
            if rest and method == "GET":
                found = next((t for t in self.trackers.values() if t["id"] == rest[0]), None)
                if found is not None:
                    return Response.json(200, found)
        return error(404, "NOT_FOUND", "The requested resource could not be found.")

    @staticmethod
    def _find(objects: Mapping[str, dict[str, Any]], key: str) -> dict[str, Any]:
        if key in objects:
            return objects[key]
        # A reference stands for an id; EasyPost does not promise which of several.
        for obj in reversed(list(objects.values())):
            if obj.get("reference") == key:
                found: dict[str, Any] = obj
                return found
        raise _refuse(404, "NOT_FOUND", "The requested resource could not be found.")

    # --- shipments ----------------------------------------------------------------------

    def _create_shipment(self, body: Any) -> Response:
        data = body.get("shipment") if isinstance(body, dict) else None
        if not isinstance(data, dict):
            raise _refuse(
                422,
                "PARAMETER.REQUIRED",
                "Missing required parameter.",
                ("shipment", "cannot be blank"),
            )
        problems = [
            (side, "Required and missing.")
            for side in ("to_address", "from_address")
            if not isinstance(data.get(side), dict)
        ]
        for side in ("to_address", "from_address"):
            zip_code = str((data.get(side) or {}).get("zip") or "").strip()
            if isinstance(data.get(side), dict) and not zip_code.strip("0 -"):
                problems.append((f"{side}.zip", f"invalid zip or postal code {zip_code!r}"))
        if problems:
            raise _refuse(422, "SHIPMENT.INVALID_PARAMS", INVALID_PARAMS, *problems)
        parcel = data.get("parcel")
        try:
            weight = float((parcel or {}).get("weight") or 0)
        except (TypeError, ValueError):
            weight = 0.0
        if weight <= 0:
            raise _refuse(
                422,
                "PARCEL.PARAMETERS.INVALID",
                "Parcel weight is required and must be positive (ounces).",
                ("parcel.weight", "must be greater than 0"),
            )
        options = dict(data.get("options") or {})
        label_format = str(options.get("label_format", "PNG")).upper()
        if label_format not in LABEL_TYPES:
            raise _refuse(
                422,
                "SHIPMENT.POSTAGE.INVALID_FORMAT",
                f"Invalid label format {label_format}.",
                ("options.label_format", "must be one of PNG, PDF, ZPL, EPL2"),
            )
        options.setdefault("currency", "USD")
        options.setdefault("payment", {"type": "SENDER"})
        accounts = data.get("carrier_accounts") or []
        known = set(self.carrier_accounts.values())
        unknown = [a for a in accounts if (a.get("id") if isinstance(a, dict) else a) not in known]
        if unknown:
            raise _refuse(
                422,
                "SHIPMENT.RATE.CARRIER_ACCOUNT_INVALID",
                "One or more carrier accounts are invalid.",
                ("carrier_accounts", f"unknown carrier account {unknown[0]}"),
            )
        now, shipment_id = _now(), _id("shp")
        to_address, from_address = (
            self._address(data["to_address"]),
            self._address(data["from_address"]),
        )
        is_return = bool(data.get("is_return"))
        if is_return:  # documented: the addresses of the outbound parcel, swapped here
            to_address, from_address = from_address, to_address
        shipment: dict[str, Any] = {
            "id": shipment_id,
            "object": "Shipment",
            "mode": "test",
            "reference": data.get("reference") or None,
            "status": "unknown",
            "is_return": is_return,
            "to_address": to_address,
            "from_address": from_address,
            "return_address": from_address,
            "buyer_address": to_address,
            "parcel": self._parcel(parcel or {}, weight),
            "customs_info": self._customs(data.get("customs_info")),
            "options": options,
            "messages": [],
            "rates": [],
            "selected_rate": None,
            "postage_label": None,
            "tracking_code": None,
            "tracker": None,
            "refund_status": None,
            "insurance": None,
            "scan_form": None,
            "forms": [],
            "fees": [],
            "batch_id": None,
            "batch_status": None,
            "batch_message": None,
            "usps_zone": None,
            "created_at": now,
            "updated_at": now,
        }
        shipment["rates"] = self._rates(
            shipment, [str(a.get("id") if isinstance(a, dict) else a) for a in accounts]
        )
        service = data.get("service")
        if service and accounts:  # one-call buy
            carrier = str(data.get("carrier") or "").lower()
            rate = next(
                (
                    r
                    for r in shipment["rates"]
                    if r["service"] == service and (not carrier or r["carrier"].lower() == carrier)
                ),
                None,
            )
            if rate is None:
                raise _refuse(
                    422,
                    "SHIPMENT.RATES.UNAVAILABLE",
                    f"No rates found for service {service}.",
                    ("service", f"{service} is not offered by the carrier accounts given"),
                )
            self._check_purchasable(shipment)
            self.shipments[shipment_id] = shipment
            self._purchase(shipment, rate)
        else:
            self.shipments[shipment_id] = shipment
        return Response.json(201, shipment)

    def _list_shipments(self, query: Mapping[str, list[str]]) -> Response:
        def first(name: str) -> str | None:
            values = query.get(name)
            return values[0] if values else None

        found = list(reversed(self.shipments.values()))
        purchased = first("purchased")
        if purchased is not None:
            wanted = purchased.lower() == "true"
            found = [s for s in found if (s["postage_label"] is not None) == wanted]
        before = first("before_id")
        if before is not None:
            ids = [s["id"] for s in found]
            found = found[ids.index(before) + 1 :] if before in ids else []
        size = min(max(int(first("page_size") or 20), 1), 100)
        return Response.json(200, {"shipments": found[:size], "has_more": len(found) > size})

    def _buy(self, shipment: dict[str, Any], body: Any) -> dict[str, Any]:
        rate_field = body.get("rate") if isinstance(body, dict) else None
        rate_id = rate_field.get("id") if isinstance(rate_field, dict) else rate_field
        if not rate_id:
            raise _refuse(
                422, "PARAMETER.REQUIRED", "Missing required parameter.", ("rate", "is required")
            )
        if shipment["postage_label"] is not None:
            raise _refuse(
                422, "SHIPMENT.POSTAGE.EXISTS", "Postage already exists for this shipment."
            )
        rate = next((r for r in shipment["rates"] if r["id"] == rate_id), None)
        if rate is None:
            raise _refuse(
                422,
                "SHIPMENT.MISSING_RATE",
                "The rate is not one of this shipment's rates.",
                ("rate.id", f"unknown rate {rate_id}"),
            )
        self._check_purchasable(shipment)
        self._purchase(shipment, rate)
        return shipment

    def _check_purchasable(self, shipment: Mapping[str, Any]) -> None:
        origin, destination = shipment["from_address"]["country"], shipment["to_address"]["country"]
        within_eu = origin in CUSTOMS_UNION and destination in CUSTOMS_UNION
        if origin != destination and not within_eu and not shipment["customs_info"]:
            raise _refuse(
                422,
                "SHIPMENT.CUSTOMS_INFO.REQUIRED",
                "Customs information is required for international shipments.",
                ("customs_info", "is required"),
            )

    def _purchase(self, shipment: dict[str, Any], rate: Mapping[str, Any]) -> None:
        now = _now()
        label_format = str(shipment["options"].get("label_format", "PNG")).upper()
        tracking_code = self._tracking_code(rate["carrier"])
        shipment["selected_rate"] = dict(rate)
        shipment["tracking_code"] = tracking_code
        shipment["postage_label"] = {
            "id": _id("pl"),
            "object": "PostageLabel",
            "created_at": now,
            "updated_at": now,
            "date_advance": 0,
            "integrated_form": "none",
            "label_date": now,
            "label_resolution": 300,
            "label_size": shipment["options"].get("label_size", "4x6"),
            "label_type": "default",
            "label_file_type": LABEL_TYPES[label_format][0],
            "label_url": None,
            "label_pdf_url": None,
            "label_zpl_url": None,
            "label_epl2_url": None,
            "label_file": None,
        }
        url = self._make_document(shipment, label_format)
        shipment["postage_label"]["label_url"] = url
        if label_format != "PNG":
            shipment["postage_label"][f"label_{label_format.lower()}_url"] = url
        shipment["tracker"] = self._tracker(tracking_code, rate["carrier"], shipment["id"])
        shipment["status"] = "pre_transit"
        shipment["fees"] = [
            {
                "object": "Fee",
                "type": "LabelFee",
                "amount": "0.00000",
                "charged": True,
                "refunded": False,
            },
            {
                "object": "Fee",
                "type": "PostageFee",
                "amount": rate["rate"],
                "charged": True,
                "refunded": False,
            },
        ]
        shipment["updated_at"] = now
        self.sold.append(
            Sale(
                shipment["id"],
                shipment["reference"],
                tracking_code,
                rate["carrier"],
                rate["service"],
                rate["rate"],
                label_format,
            )
        )

    def _convert_label(self, shipment: dict[str, Any], query: Mapping[str, list[str]]) -> Response:
        label_format = (query.get("file_format") or ["PDF"])[0].upper()
        if shipment["postage_label"] is None:
            raise _refuse(422, "SHIPMENT.POSTAGE.REQUIRED", "The shipment has no postage yet.")
        if label_format not in LABEL_TYPES or label_format == "PNG":
            raise _refuse(
                422,
                "SHIPMENT.POSTAGE.FORMAT_UNAVAILABLE",
                f"Label format {label_format} is not available for conversion.",
                ("file_format", "must be one of PDF, ZPL, EPL2"),
            )
        key = f"label_{label_format.lower()}_url"
        if not shipment["postage_label"][key]:
            shipment["postage_label"][key] = self._make_document(shipment, label_format)
        return Response.json(200, shipment)

    def _refund(self, shipment: dict[str, Any]) -> dict[str, Any]:
        if shipment["postage_label"] is None:
            raise _refuse(
                422, "SHIPMENT.REFUND.UNAVAILABLE", "Only a purchased shipment can be refunded."
            )
        if shipment["refund_status"] is None:
            shipment["refund_status"] = self.refund_outcome
            shipment["updated_at"] = _now()
            self.refunds.append(shipment["id"])
        return shipment

    def _rates(self, shipment: Mapping[str, Any], accounts: list[str]) -> list[dict[str, Any]]:
        domestic = shipment["to_address"]["country"] == shipment["from_address"]["country"]
        ounces = Decimal(str(shipment["parcel"]["weight"]))
        extra = max(ounces - 16, Decimal(0))
        found = []
        for spec in self.rate_specs:
            account = self.carrier_accounts.get(spec.carrier, "ca_unknown")
            if accounts and account not in accounts:
                continue
            if spec.scope != "any" and (spec.scope == "domestic") != domestic:
                continue
            amount = (spec.base + spec.per_ounce * extra).quantize(Decimal("0.01"))
            found.append(
                {
                    "id": _id("rate"),
                    "object": "Rate",
                    "mode": "test",
                    "service": spec.service,
                    "carrier": spec.carrier,
                    "carrier_account_id": account,
                    "shipment_id": shipment["id"],
                    "rate": str(amount),
                    "currency": "USD",
                    "retail_rate": str(amount),
                    "retail_currency": "USD",
                    "list_rate": str(amount),
                    "list_currency": "USD",
                    "delivery_days": spec.days,
                    "delivery_date": None,
                    "delivery_date_guaranteed": False,
                    "est_delivery_days": spec.days,
                    "created_at": shipment["created_at"],
                    "updated_at": shipment["created_at"],
                }
            )
        return found

    # --- pickups ------------------------------------------------------------------------

    def _create_pickup(self, body: Any) -> dict[str, Any]:
        data = body.get("pickup") if isinstance(body, dict) else None
        if not isinstance(data, dict):
            raise _refuse(
                422,
                "PARAMETER.REQUIRED",
                "Missing required parameter.",
                ("pickup", "cannot be blank"),
            )
        for name, code in (
            ("min_datetime", "PICKUP.MIN_DATETIME.REQUIRED"),
            ("max_datetime", "PICKUP.MAX_DATETIME.REQUIRED"),
            ("address", "PICKUP.ADDRESS.REQUIRED"),
        ):
            if not data.get(name):
                raise _refuse(422, code, f"{name} is required.", (name, "is required"))
        if str(data["max_datetime"]) < str(data["min_datetime"]):
            raise _refuse(
                422,
                "PICKUP.REQUEST.INVALID",
                "The pickup window ends before it starts.",
                ("max_datetime", "must not be before min_datetime"),
            )
        ref = data.get("shipment") or {}
        shipment_id = ref.get("id") if isinstance(ref, dict) else ref
        if not shipment_id:
            raise _refuse(
                422,
                "PICKUP.BATCH.REQUIRED",
                "A pickup needs a shipment or a batch.",
                ("shipment", "is required"),
            )
        shipment = self._find(self.shipments, shipment_id)
        if shipment["selected_rate"] is None:
            raise _refuse(
                422,
                "PICKUP.REQUEST.INVALID",
                "The shipment has no postage.",
                ("shipment", f"{shipment_id} is not purchased"),
            )
        now, pickup_id = _now(), _id("pickup")
        carrier = shipment["selected_rate"]["carrier"]
        pickup = {
            "id": pickup_id,
            "object": "Pickup",
            "mode": "test",
            "status": "unknown",
            "reference": data.get("reference") or None,
            "min_datetime": data["min_datetime"],
            "max_datetime": data["max_datetime"],
            "is_account_address": bool(data.get("is_account_address")),
            "instructions": data.get("instructions"),
            "messages": [],
            "confirmation": None,
            "address": self._address(data["address"]),
            "carrier_accounts": [],
            "pickup_rates": [
                {
                    "id": _id("pickuprate"),
                    "object": "PickupRate",
                    "mode": "test",
                    "service": service,
                    "carrier": carrier,
                    "rate": price,
                    "currency": "USD",
                    "pickup_id": pickup_id,
                    "created_at": now,
                    "updated_at": now,
                }
                for service, price in PICKUP_RATES.get(carrier, ())
            ],
            "created_at": now,
            "updated_at": now,
        }
        self.pickups[pickup_id] = pickup
        return pickup

    def _buy_pickup(self, pickup: dict[str, Any], body: Any) -> dict[str, Any]:
        body = body if isinstance(body, dict) else {}
        for name in ("carrier", "service"):
            if not body.get(name):
                raise _refuse(
                    422,
                    f"PICKUP.{name.upper()}.REQUIRED",
                    f"{name} is required.",
                    (name, "is required"),
                )
        if pickup["status"] != "unknown":
            raise _refuse(
                422, "PICKUP.STATUS.INVALID", f"The pickup is already {pickup['status']}."
            )
        matching = [
            r
            for r in pickup["pickup_rates"]
            if r["carrier"].lower() == str(body["carrier"]).lower()
            and r["service"] == body["service"]
        ]
        if not matching:
            raise _refuse(
                422,
                "PICKUP.BUY.NO_MATCHING_RATES",
                "No pickup rate matches that carrier and service.",
                ("service", f"{body['carrier']} {body['service']} is not offered"),
            )
        pickup["status"] = "scheduled"
        pickup["confirmation"] = f"WTC{next(self._serial):08d}"
        pickup["updated_at"] = _now()
        self.pickups_booked.append(pickup["id"])
        return pickup

    # --- trackers -----------------------------------------------------------------------

    def _create_tracker(self, body: Any) -> Response:
        data = body.get("tracker") if isinstance(body, dict) else None
        data = data if isinstance(data, dict) else {}
        code = data.get("tracking_code")
        if not code:
            raise _refuse(
                422,
                "TRACKER.INVALID_PARAMS",
                "Invalid tracker parameters.",
                ("tracking_code", "is required"),
            )
        if code in self.trackers:  # documented: the same code returns the original tracker
            return Response.json(200, self.trackers[code])
        tracker = self._tracker(code, str(data.get("carrier") or "USPS"), None, scanned=False)
        return Response.json(201, tracker)

    def _tracker(
        self, code: str, carrier: str, shipment_id: str | None, *, scanned: bool = True
    ) -> dict[str, Any]:
        now, tracker_id = _now(), _id("trk")
        tracker = {
            "id": tracker_id,
            "object": "Tracker",
            "mode": "test",
            "tracking_code": code,
            "status": "pre_transit" if scanned else "unknown",
            "status_detail": "label_created" if scanned else "unknown",
            "carrier": carrier,
            "shipment_id": shipment_id,
            "public_url": f"https://track.easypost.com/{base64.urlsafe_b64encode(tracker_id.encode()).decode()}",
            "tracking_details": [self._detail("pre_transit", "Shipping Label Created", carrier)]
            if scanned
            else [],
            "est_delivery_date": None,
            "signed_by": None,
            "weight": None,
            "fees": [],
            "created_at": now,
            "updated_at": now,
        }
        self.trackers[code] = tracker
        return tracker

    @staticmethod
    def _detail(status: str, message: str, carrier: str) -> dict[str, Any]:
        return {
            "object": "TrackingDetail",
            "message": message,
            "description": message,
            "status": status,
            "status_detail": status,
            "datetime": _now(),
            "source": carrier,
            "tracking_location": {
                "object": "TrackingLocation",
                "city": None,
                "state": None,
                "country": None,
                "zip": None,
            },
        }

    # --- objects ------------------------------------------------------------------------

    @staticmethod
    def _address(data: Mapping[str, Any]) -> dict[str, Any]:
        now = _now()
        fields = (
            "name",
            "company",
            "street1",
            "street2",
            "city",
            "state",
            "zip",
            "phone",
            "email",
            "federal_tax_id",
            "state_tax_id",
        )
        return {
            "id": _id("adr"),
            "object": "Address",
            "mode": "test",
            **{name: data.get(name) for name in fields},
            "country": data.get("country") or "US",
            "residential": data.get("residential"),
            "carrier_facility": None,
            "verifications": {},
            "created_at": now,
            "updated_at": now,
        }

    @staticmethod
    def _parcel(data: Mapping[str, Any], weight: float) -> dict[str, Any]:
        now = _now()
        return {
            "id": _id("prcl"),
            "object": "Parcel",
            "mode": "test",
            "length": data.get("length"),
            "width": data.get("width"),
            "height": data.get("height"),
            "weight": weight,
            "predefined_package": data.get("predefined_package"),
            "created_at": now,
            "updated_at": now,
        }

    @staticmethod
    def _customs(data: Any) -> dict[str, Any] | None:
        if not isinstance(data, dict) or not data:
            return None
        now = _now()
        return {
            "id": _id("cstinfo"),
            "object": "CustomsInfo",
            "mode": "test",
            **{k: v for k, v in data.items() if k != "customs_items"},
            "customs_items": [
                {"id": _id("cstitem"), "object": "CustomsItem", "mode": "test", **item}
                for item in data.get("customs_items") or ()
                if isinstance(item, dict)
            ],
            "created_at": now,
            "updated_at": now,
        }

    def _tracking_code(self, carrier: str) -> str:
        n = next(self._serial)
        if carrier == "UPS":
            return f"1ZFAKE{n:012d}"
        if carrier == "FedEx":
            return f"{n:012d}"
        if carrier == "DHLExpress":
            return f"{n:010d}"
        return f"9400100{n:015d}"

    def _make_document(self, shipment: Mapping[str, Any], label_format: str) -> str:
        content_type, ext = LABEL_TYPES[label_format]
        day = datetime.now(UTC).strftime("%Y%m%d")
        path = f"/files/postage_label/{day}/{uuid.uuid4().hex}.{ext}"
        rate = shipment["selected_rate"]
        lines = (
            "EasyPost (fake) postage label",
            f"{rate['carrier']} {rate['service']}",
            f"Tracking {shipment['tracking_code']}",
            f"Shipment {shipment['id']}",
            f"Reference {shipment['reference'] or '-'}",
        )
        render = {"PDF": _pdf, "PNG": _png, "ZPL": _zpl, "EPL2": _epl2}[label_format]
        self.files[path] = (content_type, render(lines, shipment["tracking_code"]))
        return self.url + path


# --- label documents -----------------------------------------------------------------------


def _pdf(lines: tuple[str, ...], tracking_code: str) -> bytes:
    """A one-page 4x6 in (288x432 pt) PDF with the lines as text."""

    def escape(text: str) -> str:
        ascii_text = text.encode("ascii", "replace").decode()
        return ascii_text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    text = " T* ".join(f"({escape(line)}) Tj" for line in lines)
    content = f"BT /F1 12 Tf 18 TL 24 400 Td {text} ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 288 432] "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
    ]
    return pdf_from_objects(objects)


def _png(lines: tuple[str, ...], tracking_code: str) -> bytes:
    """A 200x300 grayscale PNG: a frame and bars drawn from the tracking code."""
    width, height = 200, 300
    bars = [int(c, 36) % 2 for c in tracking_code.lower() if c.isalnum()] or [1]
    rows = []
    for y in range(height):
        row = bytearray(b"\xff" * width)
        for x in range(width):
            frame = x < 4 or x >= width - 4 or y < 4 or y >= height - 4
            barcode = 180 <= y < 260 and 20 <= x < 180 and bars[(x - 20) // 4 % len(bars)]
            if frame or barcode:
                row[x] = 0
        rows.append(b"\x00" + bytes(row))

    return png_from_rows(width, height, b"".join(rows))


def _zpl(lines: tuple[str, ...], tracking_code: str) -> bytes:
    fields = "".join(f"^FO30,{30 + 40 * i}^A0N,30,30^FD{line}^FS\n" for i, line in enumerate(lines))
    return (f"^XA\n^CI28\n{fields}^FO30,300^BY3^BCN,120,Y,N,N^FD{tracking_code}^FS\n^XZ\n").encode()


def _epl2(lines: tuple[str, ...], tracking_code: str) -> bytes:
    text = "".join(f'A30,{30 + 40 * i},0,4,1,1,N,"{line}"\n' for i, line in enumerate(lines))
    return f'N\n{text}B30,300,0,1,3,7,120,B,"{tracking_code}"\nP1\n'.encode()
