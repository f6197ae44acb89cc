"""B5: peak memory of ``fulfil import`` on 100,000 orders and on 10,000: it should be flat.

Each import runs as its own process, exactly as a merchant runs it:
``python -m fulfil.core.cli --config fulfil.toml import orders.json``, on a fresh SQLite
store (the embedded default configuration), and its peak resident set size is read from
``os.wait4``'s resource usage of that one child (``ru_maxrss``), so nothing else this
benchmark started is counted. The order files are the demo's sample orders
(``fulfil.core.demo.sample_order``), written as one JSON list; a tiny import (10 orders)
gives the interpreter-and-libraries baseline.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common import PYTHON, Result, benchmark_main, rounded


def write_orders(path: Path, n: int) -> int:
    """Write n sample orders as one JSON list, streaming; return the file's size."""
    from fulfil.core.demo import sample_order

    rng = random.Random(7)
    start = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    with path.open("w", encoding="utf-8") as out:
        out.write("[")
        for i in range(n):
            if i:
                out.write(",\n")
            out.write(json.dumps(sample_order(i, rng, start)))
        out.write("]\n")
    return path.stat().st_size


def import_once(folder: Path, n: int) -> dict[str, Any]:
    """Import n orders into a fresh store in a child process; its peak RSS and time."""
    from fulfil.core.config import default_config_text

    work = folder / f"import-{n}"
    work.mkdir()
    config = work / "fulfil.toml"
    config.write_text(default_config_text(), encoding="utf-8")
    orders = work / "orders.json"
    size = write_orders(orders, n)
    command = [PYTHON, "-m", "fulfil.core.cli", "--config", str(config), "import", str(orders)]
    env = {**os.environ, "CI": "1"}  # no progress bars or colours
    with (work / "stdout").open("wb") as stdout, (work / "stderr").open("wb") as stderr:
        started = time.perf_counter()
        child = subprocess.Popen(command, stdout=stdout, stderr=stderr, env=env, cwd=work)
        _, status, usage = os.wait4(child.pid, 0)
        elapsed = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    output = (work / "stdout").read_text(errors="replace").strip()
    if child.returncode != 0 or f"imported {n} order(s)" not in output:
        errors = (work / "stderr").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"import of {n} failed ({child.returncode}): {output} {errors}")
    shutil.rmtree(work, ignore_errors=True)
    return {
        "orders": n,
        "file_mb": rounded(size / 2**20, 1),
        "peak_rss_mb": rounded(usage.ru_maxrss / 1024, 1),  # Linux reports KiB
        "seconds": rounded(elapsed, 2),
        "orders_per_s": rounded(n / elapsed, 1),
        "cpu_seconds": rounded(usage.ru_utime + usage.ru_stime, 2),
    }


def run(quick: bool, profile: Path | None = None) -> Result:
    small, big = (300, 1_500) if quick else (10_000, 100_000)
    folder = Path(tempfile.mkdtemp(prefix="fulfil-b5-"))
    try:
        baseline = import_once(folder, 10)
        low = import_once(folder, small)
        high = import_once(folder, big)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    per_1k = (high["peak_rss_mb"] - low["peak_rss_mb"]) / ((big - small) / 1000)
    return {
        "peak_rss_mb": high["peak_rss_mb"],
        "peak_rss_mb_10k": low["peak_rss_mb"],
        "peak_rss_mb_baseline": baseline["peak_rss_mb"],
        "orders_big": big,
        "orders_small": small,
        "mb_per_1000_orders": rounded(per_1k, 2),
        "flat": bool(high["peak_rss_mb"] < 1.25 * low["peak_rss_mb"]),
        "runs": [baseline, low, high],
    }


if __name__ == "__main__":
    benchmark_main(__doc__.splitlines()[0], run)
