"""B1: orders per second end to end, and the ratio to a raw-sqlite3 floor doing the same writes.

The run is ``fulfil demo``'s, driven through the same API on N of its sample orders
(``fulfil.core.demo.sample_order``: FR, DE, GB, US, ES parcels, digital goods, a gift card,
local delivery, in-store pickup, one order left awaiting an offline payment), on the
embedded default configuration: a SQLite file (WAL), the sandbox carrier at zero latency
(real PDF labels, its own SQLite ledger), the Maildir and JSON-lines notifiers.

Timed, in one process: ``fulfil import``'s work on a JSON file
(``fulfil.core.importer.import_file``: streamed, validated, placed in chunks), the
payments, ``Worker.run(until_idle=True)`` (labels, pickups, SHIPPED, every message), the
staff steps (local delivery out and delivered, in-store pickup ready) and a second worker
run for their messages; each phase is timed too. Building the engine (plugins, config) is
not timed. The run is checked afterwards: no outbox row left
undone, every carrier-shipped order SHIPPED.

The floor (``floor.py``) then writes the same rows, updates and transactions with plain
``sqlite3``; ``floor_ratio`` = our orders/s over the floor's.
"""

from __future__ import annotations

import json
import random
import shutil
import tempfile
import time
from datetime import UTC, datetime
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
from floor import WriteCounter, floor_work, run_floor


def write_inputs(folder: Path, n: int) -> tuple[Path, Path]:
    from fulfil.core.config import default_config_text
    from fulfil.core.demo import sample_order

    rng = random.Random(7)
    start = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    orders = folder / "orders.json"
    orders.write_text(json.dumps([sample_order(i, rng, start) for i in range(n)]))
    config = folder / "fulfil.toml"
    config.write_text(default_config_text(), encoding="utf-8")
    return config, orders


def plan(orders_file: Path) -> dict[str, list[str]]:
    """Which orders get which staff action (read from the input, before the clock starts)."""
    data = json.loads(orders_file.read_text())
    offline = [o["id"] for o in data if o["number"] == 1004]  # demo.is_offline
    return {
        "offline": offline,
        "paid": [o["id"] for o in data if o["id"] not in offline],
        "local": [o["id"] for o in data if o["shipping"]["type"] == "local_delivery"],
        "counter": [o["id"] for o in data if o["shipping"]["type"] == "pickup"],
    }


def expected_shipped(orders_file: Path) -> int:
    data = json.loads(orders_file.read_text())
    return sum(
        1
        for o in data
        if o["shipping"]["type"] == "shipping"
        and any(i["kind"] == "physical" for i in o["items"])
        and o["number"] != 1004
    )


def pipeline(
    engine: Any,
    orders_file: Path,
    ids: dict[str, list[str]],
    phases: dict[str, float],
    processes: int = 1,
) -> dict[str, Any]:
    """What ``fulfil import`` then ``fulfil demo`` do, minus the console."""
    from fulfil.core.importer import import_file
    from fulfil.core.processes import run_workers
    from fulfil.core.states import FulfilmentStatus as F

    lap = Lap(phases)
    report = import_file(engine, orders_file)
    assert report.imported == len(ids["offline"]) + len(ids["paid"]), report.problems[:3]
    lap("import")
    engine.record_payment(ids["offline"], "offline")
    engine.record_payment(ids["paid"], "paid")
    lap("payments")
    first = dict(run_workers(engine, processes).counts)
    lap("worker: labels, pickups, messages")
    engine.mark(ids["local"], F.OUT_FOR_DELIVERY)
    engine.mark(ids["local"], F.DELIVERED)
    engine.mark(ids["counter"], F.READY_FOR_PICKUP)
    lap("staff steps")
    second = dict(run_workers(engine, processes).counts)
    lap("worker: staff messages")
    return {k: first.get(k, 0) + second.get(k, 0) for k in {*first, *second}}


class Lap:
    """Seconds since the previous lap, recorded by name."""

    def __init__(self, into: dict[str, float]) -> None:
        self.into = into
        self.last = time.perf_counter()

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        self.into[name] = round(now - self.last, 3)
        self.last = now


def run(quick: bool, profile: Path | None = None) -> Result:
    n = 300 if quick else 2000
    if profile is None:
        result = measure(n)
        two = measure(n, processes=2)
        return {
            **result,
            "orders_per_s_2_processes": two["orders_per_s"],
            "two_processes": two,
        }
    for kind in PROFILES:  # one run per profiler; their figures are not the benchmark's
        result = measure(n, profile, kind)
    return {**result, "profiled": True}


def measure(n: int, profile: Path | None = None, kind: str = "cpu", processes: int = 1) -> Result:
    """One timed run; with several processes (``fulfil run --processes``) the other
    processes' writes are not counted, so there is no floor to compare with."""
    folder = Path(tempfile.mkdtemp(prefix="fulfil-b1-"))
    try:
        config, orders_file = write_inputs(folder, n)
        ids = plan(orders_file)
        engine = make_engine(config)
        counter = WriteCounter(engine.store.engine)
        phases: dict[str, float] = {}
        with Stopwatch() as ours, profiled(profile, "b1_pipeline", kind):
            stats = pipeline(engine, orders_file, ids, phases, processes)
        counter.close()
        with engine.store.transaction() as tx:
            fulfilment = tx.count_by("fulfilment_status")
        left = outbox_left(engine)
        db = Path(engine.store.engine.url.database)
        engine.close()
        shipped = fulfilment.get("SHIPPED", 0)
        if left or shipped != expected_shipped(orders_file):
            raise RuntimeError(f"incomplete run: left {left}, SHIPPED {shipped}")
        if processes > 1:
            return {"orders": n, "processes": processes, "orders_per_s": rounded(n / ours.wall, 1)}
        work = floor_work(counter.as_work(), db)
        floor_seconds = run_floor(db, work, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    ours_rate = n / ours.wall
    floor_rate = n / floor_seconds
    return {
        "orders": n,
        "orders_per_s": rounded(ours_rate, 1),
        "seconds": rounded(ours.wall),
        "cpu_seconds": rounded(ours.cpu),
        "main_thread_cpu_seconds": rounded(ours.thread_cpu),
        "floor_orders_per_s": rounded(floor_rate, 1),
        "floor_seconds": rounded(floor_seconds, 4),
        "floor_ratio": rounded(ours_rate / floor_rate, 4),
        "phases_seconds": phases,
        "worker": stats,
        "fulfilment": fulfilment,
        "work": work,
    }


if __name__ == "__main__":
    benchmark_main(__doc__.splitlines()[0], run)
