"""B2: bulk label purchase through the engine's worker, against the limit the carrier allows.

The carrier is the EasyPost adapter (``fulfil.plugins.carriers.easypost``) talking to the
fake EasyPost of ``fake_carrier.py`` in its own process, 50 ms per API request. The
adapter is configured for EasyPost's one-call buy (``carrier_accounts`` and a service):
one POST per label, then the label document from file storage (not delayed), so one label
costs one 50 ms round trip and the limit at concurrency c is c / 0.05 labels a second.

The workload is label-only: N paid US-domestic orders (one parcel each) are imported and
paid before the clock starts, with no notifier enabled, so the outbox holds N label rows;
then ``Worker(engine, concurrency=c).run(until_idle=True)`` — the code path of
``fulfil run`` and ``fulfil worker`` — buys them (and books the day's pickup, as it does in
production). Timed: that run. Reported: labels/s over the limit, at c = 1, 8, 32, 64.

Rate-limited run: the fake refuses (429, Retry-After: 1) a POST beyond 20 in any second,
and the config says ``[carriers.easypost] rate_limit = 20``; reported: labels/s over 20
and the number of 429 answers the fake sent. Every run is checked from the fake's side:
as many labels sold as orders, no reference sold twice.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from common import (
    PROFILES,
    Result,
    Stopwatch,
    benchmark_main,
    make_engine,
    outbox_left,
    profiled,
    rounded,
)
from fake_carrier import API_KEY, fake_carrier, stats

LATENCY = 0.05
RATE_LIMIT = 20
CONCURRENCY = (1, 8, 32, 64)
KEY_ENV = "BENCH_EASYPOST_API_KEY"

CONFIG = """\
[store]
name = "Bench Store"
currency = "USD"
email = "merchant@bench-store.example"
timezone = "America/New_York"

[store.origin]
name = "Bench Store"
line1 = "1 Main St"
city = "Boston"
region = "MA"
postal_code = "02110"
country = "US"
phone = "+16175550100"

[database]
url = "sqlite:///fulfil.db"

[carriers.easypost]
enabled = true
{rate_limit}
[carriers.easypost.settings]
api_key = "env:{key_env}"
base_url = "{base_url}"
carrier_accounts = ["{account}"]
service = "USPS:Priority"

[[routing]]
country = "*"
carrier = "easypost"
service = "USPS:Priority"

[worker]
concurrency = {concurrency}
"""


def order(n: int) -> dict[str, Any]:
    """A paid, US-domestic order with one physical line (one parcel, no customs)."""
    address = {
        "name": f"Customer {n}",
        "line1": "350 Fifth Avenue",
        "city": "New York",
        "region": "NY",
        "postal_code": "10118",
        "country": "US",
    }
    return {
        "id": f"ord_{100000 + n}",
        "number": 100000 + n,
        "store": "bench",
        "created_at": "2026-11-02T09:00:00+00:00",
        "customer": {"name": address["name"], "email": f"c{n}@example.com", "locale": "en"},
        "billing_address": address,
        "shipping_address": address,
        "items": [
            {
                "sku": "MUG-01",
                "name": "Stoneware mug",
                "quantity": 2,
                "unit_price": {"amount": "14.50", "currency": "USD"},
                "weight_g": 420,
                "kind": "physical",
            }
        ],
        "shipping": {"type": "shipping", "price": {"amount": "6.90", "currency": "USD"}},
        "currency": "USD",
    }


def prepared_engine(folder: Path, url: str, concurrency: int, rate_limit: int | None) -> Any:
    from fulfil.testing.fakes.easypost import CARRIER_ACCOUNTS

    os.environ[KEY_ENV] = API_KEY
    config = folder / "fulfil.toml"
    config.write_text(
        CONFIG.format(
            rate_limit=f"rate_limit = {rate_limit}" if rate_limit else "",
            key_env=KEY_ENV,
            base_url=url + "/v2",
            account=CARRIER_ACCOUNTS["USPS"],
            concurrency=concurrency,
        ),
        encoding="utf-8",
    )
    return make_engine(config)


def buy_labels(
    n: int,
    concurrency: int,
    rate_limit: int | None = None,
    profile: Path | None = None,
    kind: str = "cpu",
    processes: int = 1,
) -> dict[str, Any]:
    """One timed worker run buying n labels; the fake's own account of it. With several
    processes (``fulfil run --processes``) each runs ``concurrency / processes`` calls."""
    from fulfil.core.models import Order
    from fulfil.core.processes import run_workers
    from fulfil.core.worker import Worker

    folder = Path(tempfile.mkdtemp(prefix="fulfil-b2-"))
    try:
        with fake_carrier(LATENCY, rate_limit) as url:
            engine = prepared_engine(folder, url, concurrency // processes, rate_limit)
            orders = [Order.from_mapping(order(i)) for i in range(n)]
            engine.place(orders)
            engine.record_payment([o.id for o in orders], "paid")
            if processes > 1:
                with Stopwatch() as clock:
                    counts = dict(run_workers(engine, processes).counts)
            else:
                with (
                    profiled(profile, f"b2_c{concurrency}", kind),  # after the pool's threads
                    Worker(engine, concurrency=concurrency) as worker,
                    Stopwatch() as clock,
                ):
                    counts = dict(worker.run(until_idle=True).counts)
            left = outbox_left(engine)
            engine.close()
            seen = stats(url)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if left or counts.get("labels") != n or seen["sold_distinct_references"] != n:
        raise RuntimeError(f"incomplete run: worker {counts}, left {left}, fake {seen}")
    if seen["sold"] != n:
        raise RuntimeError(f"the fake sold {seen['sold']} labels for {n} orders")
    return {
        "labels": n,
        "seconds": rounded(clock.wall),
        "labels_per_s": rounded(n / clock.wall, 1),
        "cpu_ms_per_label": rounded(clock.cpu / n * 1000, 2),
        "http_429": seen["http_429"],
        "retries": counts.get("retries", 0),
        "fake_requests": seen["requests"],
    }


def run(quick: bool, profile: Path | None = None) -> Result:
    labels = {1: 10, 8: 40, 32: 128, 64: 128} if quick else {1: 40, 8: 320, 32: 1000, 64: 1000}
    if profile is not None:  # profile the c=32 run, once per profiler; no figures
        for kind in PROFILES:
            buy_labels(labels[32], 32, None, profile, kind)
        return {"profiled": True}
    by_concurrency: dict[str, Any] = {}
    for c in CONCURRENCY:
        result = buy_labels(labels[c], c)
        limit = c / LATENCY
        result["limit_per_s"] = limit
        result["fraction_of_limit"] = rounded(result["labels_per_s"] / limit, 3)
        by_concurrency[f"c{c}"] = result
    limited_n, limited_c = (80, 8) if quick else (200, 8)
    limited = buy_labels(limited_n, limited_c, RATE_LIMIT)
    limited.update(concurrency=limited_c, rate_limit_per_s=RATE_LIMIT)
    two = buy_labels(labels[32], 32, processes=2)
    two["fraction_of_limit"] = rounded(two["labels_per_s"] / (32 / LATENCY), 3)
    return {
        "c1_fraction_of_limit": by_concurrency["c1"]["fraction_of_limit"],
        "c8_fraction_of_limit": by_concurrency["c8"]["fraction_of_limit"],
        "c32_fraction_of_limit": by_concurrency["c32"]["fraction_of_limit"],
        "c64_fraction_of_limit": by_concurrency["c64"]["fraction_of_limit"],
        "c32_fraction_of_limit_2_processes": two["fraction_of_limit"],
        "rate_fraction": rounded(limited["labels_per_s"] / RATE_LIMIT, 3),
        "http_429": limited["http_429"],
        "latency_s": LATENCY,
        "by_concurrency": by_concurrency,
        "rate_limited": limited,
        "c32_in_2_processes": two,
    }


if __name__ == "__main__":
    benchmark_main(__doc__.splitlines()[0], run)
