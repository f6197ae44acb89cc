"""B4: our EasyPost adapter against karrio's EasyPost connector: labels/s and CPU per label.

Both buy the same labels (a 840 g parcel, Boston to New York, USPS Priority, one
reference per label) from the same fake EasyPost (``fake_carrier.py``: its own process, so
its CPU is not counted; 50 ms per API request, label files not delayed). karrio's
connector (``karrio.sdk.Shipment.create(...).from_(gateway).parse()``, with a ``Settings``
subclass whose ``server_url`` points at the fake, DESIGN.md section 11) creates the
shipment (POST /v2/shipments, rates for every carrier account), buys the Priority rate
(POST /v2/shipments/{id}/buy) and downloads the label from the ``label_url`` returned.
Ours (``fulfil.plugins.carriers.easypost``, built by its factory on the engine's own
client, ``fulfil.core.http.make_client``, with the ``LabelRequest`` the engine sends on a
first attempt: ``maybe_sent=False``, so no lookup by reference) runs twice:

- ``ours``, the headline: set up as a merchant sets it up (``carrier_accounts`` and a
  service), so the adapter uses EasyPost's one-call buy (create and buy in one POST),
  then downloads the label: B2's setup;
- ``ours_rates_then_buy``: without ``carrier_accounts``, karrio's path request for request
  (create with rates, buy the rate, download the label).

Each side runs N labels through a ``ThreadPoolExecutor`` of the same size (8, where every
client waits on the carrier, and 32, where the client's CPU counts more: the headline),
after a warm-up of a few labels; the request objects are built before the clock starts.
Measured in the client process: wall time and ``time.process_time()`` (every thread), and
from the fake the requests each label took. karrio's loguru handlers are removed and
jstruct's "unknown arguments" warnings (one per rate in every response) silenced, so that
karrio is not charged for printing logs; our adapter logs at INFO, not shown by default.
Sides alternate (A B C C B A in a full run) so that drift on a busy machine hits all;
each side's figure is the mean of its runs. Every label is checked: a tracking number and
a document, and the fake sold each reference once.
"""

from __future__ import annotations

import logging
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from common import Result, benchmark_main, packages, rounded
from fake_carrier import API_KEY, fake_carrier, stats

LATENCY = 0.05
# At 8 both clients wait on the carrier; at 32 the client's CPU decides (the headline).
CONCURRENCY = (8, 32)
WARMUP = 4

SENDER = {
    "name": "Bench Store",
    "line1": "1 Main St",
    "city": "Boston",
    "region": "MA",
    "postal_code": "02110",
    "country": "US",
    "phone": "+16175550100",
}
RECIPIENT = {
    "name": "Ethan Johnson",
    "line1": "350 Fifth Avenue",
    "city": "New York",
    "region": "NY",
    "postal_code": "10118",
    "country": "US",
    "phone": "+12125550123",
}
WEIGHT_G = 840


# --- ours -------------------------------------------------------------------------------


Side = tuple[Callable[[str], Any], Callable[[Any], str], Any]


def ours(url: str, folder: Path, concurrency: int) -> Side:
    """(make a request for a key, buy it -> tracking number, thing to close)."""
    return _ours(url, folder, concurrency, one_call=True)


def ours_rates_then_buy(url: str, folder: Path, concurrency: int) -> Side:
    return _ours(url, folder, concurrency, one_call=False)


def _ours(url: str, folder: Path, concurrency: int, one_call: bool) -> Side:
    from fulfil.core.carriers import LabelRequest
    from fulfil.core.context import PluginContext
    from fulfil.core.http import make_client
    from fulfil.core.models import Address, Parcel
    from fulfil.plugins.carriers.easypost import make_carrier
    from fulfil.testing.fakes.easypost import CARRIER_ACCOUNTS

    client = make_client(concurrency)

    settings: dict[str, Any] = {
        "api_key": API_KEY,
        "base_url": url + "/v2",
        "service": "USPS:Priority",
    }
    if one_call:
        settings["carrier_accounts"] = [CARRIER_ACCOUNTS["USPS"]]
    carrier = make_carrier(settings, PluginContext(client=client, data_dir=folder))
    sender, recipient = Address.from_mapping(SENDER), Address.from_mapping(RECIPIENT)

    def request(key: str) -> LabelRequest:
        return LabelRequest(
            idempotency_key=key,
            order_id=key.split(":")[0],
            order_number=1,
            shipment_id=key.split(":")[1],
            sender=sender,
            recipient=recipient,
            parcels=(Parcel(weight_g=WEIGHT_G),),
            service="USPS:Priority",
            recipient_email="ethan@example.com",
            maybe_sent=False,  # a first attempt, as the engine knows it
        )

    def buy(req: LabelRequest) -> str:
        label = carrier.buy_label(req)
        assert label.document and label.document.startswith(b"%PDF"), "no label document"
        return str(label.tracking_number)

    return request, buy, client


# --- karrio -----------------------------------------------------------------------------


def karrio(url: str, folder: Path, concurrency: int) -> Side:
    import karrio.sdk as sdk
    from karrio.core.models import ShipmentRequest
    from karrio.mappers.easypost.settings import Settings
    from loguru import logger

    logger.remove()  # karrio's own logs
    logging.getLogger("jstruct").setLevel(logging.ERROR)  # "unknown arguments" per response

    class LoopbackSettings(Settings):  # type: ignore[misc]
        @property
        def server_url(self) -> str:
            return url + "/v2"

    gateway = sdk.gateway["easypost"].create(LoopbackSettings(api_key=API_KEY))

    def address(a: dict[str, str]) -> dict[str, str]:
        return {
            "person_name": a["name"],
            "address_line1": a["line1"],
            "city": a["city"],
            "state_code": a["region"],
            "postal_code": a["postal_code"],
            "country_code": a["country"],
            "phone_number": a["phone"],
        }

    def request(key: str) -> Any:
        return ShipmentRequest(
            service="easypost_usps_priority",
            shipper=address(SENDER),
            recipient={**address(RECIPIENT), "email": "ethan@example.com"},
            parcels=[{"weight": WEIGHT_G / 1000, "weight_unit": "KG"}],
            reference=key,
        )

    def buy(req: Any) -> str:
        shipment, messages = sdk.Shipment.create(req).from_(gateway).parse()
        assert shipment is not None, messages
        assert shipment.docs.label, "no label document"
        return str(shipment.tracking_number)

    return request, buy, None


SIDES = {"ours": ours, "ours_rates_then_buy": ours_rates_then_buy, "karrio": karrio}


def measure(
    side: str, url: str, n: int, concurrency: int, tag: str, folder: Path
) -> dict[str, float]:
    make_request, buy, closer = SIDES[side](url, folder, concurrency)
    before = stats(url)["requests"]
    with ThreadPoolExecutor(concurrency) as pool:
        warm = [make_request(f"warm-{side}-{tag}-{i}:s:1") for i in range(WARMUP)]
        list(pool.map(buy, warm))
        requests = [make_request(f"{side}-{tag}-{i}:s:1") for i in range(n)]
        wall, cpu = time.perf_counter(), time.process_time()
        tracking = list(pool.map(buy, requests))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if closer is not None:
        closer.close()
    if len(set(tracking)) != n:
        raise RuntimeError(f"{side}: {len(set(tracking))} distinct labels for {n} requests")
    after = stats(url)["requests"]
    api_calls = sum(after.get(m, 0) - before.get(m, 0) for m in ("GET", "POST"))
    return {
        "labels_per_s": n / wall,
        "cpu_ms_per_label": cpu / n * 1000,
        "seconds": wall,
        "api_requests_per_label": api_calls / (n + WARMUP),
    }


def compare(url: str, n: int, concurrency: int, order: list[str], folder: Path) -> Result:
    runs: dict[str, list[dict[str, float]]] = {side: [] for side in SIDES}
    for i, side in enumerate(order):
        runs[side].append(measure(side, url, n, concurrency, f"c{concurrency}r{i}", folder))
    mean = {
        side: {k: statistics.fmean(r[k] for r in results) for k in results[0]}
        for side, results in runs.items()
    }
    return {
        "throughput_ratio_vs_karrio": rounded(
            mean["ours"]["labels_per_s"] / mean["karrio"]["labels_per_s"], 3
        ),
        "cpu_ratio_vs_karrio": rounded(
            mean["ours"]["cpu_ms_per_label"] / mean["karrio"]["cpu_ms_per_label"], 3
        ),
        **{side: {k: rounded(v, 3) for k, v in m.items()} for side, m in mean.items()},
        "rates_then_buy_throughput_ratio_vs_karrio": rounded(
            mean["ours_rates_then_buy"]["labels_per_s"] / mean["karrio"]["labels_per_s"], 3
        ),
        "rates_then_buy_cpu_ratio_vs_karrio": rounded(
            mean["ours_rates_then_buy"]["cpu_ms_per_label"] / mean["karrio"]["cpu_ms_per_label"],
            3,
        ),
        "runs": {
            side: [{k: rounded(v, 3) for k, v in r.items()} for r in rs]
            for side, rs in runs.items()
        },
    }


def run(quick: bool, profile: Path | None = None) -> Result:
    n = {8: 48, 32: 96} if quick else {8: 400, 32: 800}
    sides = list(SIDES)
    order = sides if quick else sides + sides[::-1]
    results = {}
    with tempfile.TemporaryDirectory(prefix="fulfil-b4-") as folder, fake_carrier(LATENCY) as url:
        for c in CONCURRENCY:
            results[f"c{c}"] = compare(url, n[c], c, order, Path(folder))
        seen = stats(url)
    expected = len(order) * sum(n[c] + WARMUP for c in CONCURRENCY)
    if seen["sold"] != expected or seen["sold_distinct_references"] != expected:
        raise RuntimeError(f"the fake sold {seen['sold']} labels, expected {expected}")
    headline = results[f"c{CONCURRENCY[-1]}"]
    return {
        "throughput_ratio_vs_karrio": headline["throughput_ratio_vs_karrio"],
        "cpu_ratio_vs_karrio": headline["cpu_ratio_vs_karrio"],
        "headline_concurrency": CONCURRENCY[-1],
        "labels_per_run": n,
        "latency_s": LATENCY,
        "by_concurrency": results,
        "fake_requests": seen["requests"],
        "versions": packages(
            {"karrio": "karrio", "karrio_easypost": "karrio-easypost", "httpx": "httpx"}
        ),
    }


if __name__ == "__main__":
    benchmark_main(__doc__.splitlines()[0], run)
