"""Run fulfil's benchmarks (DESIGN.md section 11), print a table, write the results as JSON.

    python bench/run.py [--quick] [--json FILE] [--only B1,B3] [--profile DIR]

Each benchmark runs in a fresh interpreter, one after the other (``bN_*.py --out FILE``):

- B1 ``b1_pipeline``: orders/s end to end (import to SHIPPED and every message) on the
  sandbox carrier and a SQLite file, and the ratio to a raw-sqlite3 floor (``floor.py``);
- B2 ``b2_bulk_labels``: bulk labels/s through the worker against a 50 ms fake EasyPost,
  as a fraction of concurrency / latency, and under a 20/s carrier rate limit;
- B3 ``b3_transitions``: microseconds per status transition against python-statemachine
  and transitions;
- B4 ``b4_karrio``: labels/s and CPU per label of our EasyPost adapter against karrio's;
- B5 ``b5_import_memory``: peak RSS of ``fulfil import`` on 100,000 and 10,000 orders.

``--quick`` uses small counts (under a minute in all, same keys). ``--profile DIR`` also
runs B1 and B2 once more under the profilers (pyinstrument for the main thread,
``cpuprofile.py`` for the worker threads) and writes their reports to DIR; the figures of
profiled runs are not reported. Goals are reported, never asserted: the exit status is
non-zero only when a benchmark could not run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common import BENCH, PYTHON, machine

MODULES = {
    "B1": "b1_pipeline",
    "B2": "b2_bulk_labels",
    "B3": "b3_transitions",
    "B4": "b4_karrio",
    "B5": "b5_import_memory",
}
PROFILED = ("B1", "B2")

# (benchmark, key, comparison, goal, unit/description)
GOALS: list[tuple[str, str, str, float, str]] = [
    ("B1", "orders_per_s", ">=", 500, "orders/s end to end"),
    ("B1", "floor_ratio", ">=", 0.3, "ours / raw-sqlite3 floor (orders/s)"),
    ("B2", "c32_fraction_of_limit", ">=", 0.9, "labels/s at c=32 / (32 / 50 ms)"),
    ("B2", "rate_fraction", ">=", 0.95, "labels/s / 20/s carrier rate limit"),
    ("B2", "http_429", "<=", 0, "429 answers under the rate limit"),
    ("B3", "speedup_vs_python_statemachine", ">=", 10, "x faster per transition (3 listeners)"),
    ("B3", "speedup_vs_transitions", ">=", 2, "x faster per transition (3 listeners)"),
    ("B4", "throughput_ratio_vs_karrio", ">=", 2, "labels/s ours / karrio"),
    ("B4", "cpu_ratio_vs_karrio", "<=", 0.5, "CPU per label ours / karrio"),
    ("B5", "peak_rss_mb", "<", 300, "MB peak RSS, fulfil import of the big file"),
]
INFO: list[tuple[str, str, str]] = [
    ("B1", "floor_orders_per_s", "floor orders/s"),
    ("B1", "orders_per_s_2_processes", "orders/s, fulfil run --processes 2"),
    ("B2", "c1_fraction_of_limit", "c=1 fraction of limit"),
    ("B2", "c8_fraction_of_limit", "c=8 fraction of limit"),
    ("B2", "c64_fraction_of_limit", "c=64 fraction of limit"),
    ("B2", "c32_fraction_of_limit_2_processes", "c=32 in 2 processes of 16"),
    ("B3", "fulfil_us_0", "fulfil us/transition, 0 listeners"),
    ("B3", "fulfil_us_3", "fulfil us/transition, 3 listeners"),
    ("B3", "python_statemachine_us_3", "python-statemachine us, 3 listeners"),
    ("B3", "transitions_us_3", "transitions us, 3 listeners"),
    ("B5", "peak_rss_mb_10k", "MB peak RSS, the small file"),
]


def run_module(name: str, quick: bool, profile: Path | None, timeout: float) -> dict[str, Any]:
    """Run one benchmark in a fresh interpreter; its result, or an ``error``."""
    with tempfile.TemporaryDirectory(prefix="fulfil-bench-") as folder:
        out = Path(folder) / "result.json"
        command = [PYTHON, str(BENCH / f"{name}.py"), "--out", str(out)]
        if quick:
            command.append("--quick")
        if profile is not None:
            command += ["--profile", str(profile)]
        started = time.perf_counter()
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=timeout, cwd=BENCH
            )
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout:.0f} s"}
        elapsed = time.perf_counter() - started
        if done.returncode != 0 or not out.exists():
            tail = (done.stderr or done.stdout).strip().splitlines()[-15:]
            return {"error": f"exit status {done.returncode}", "stderr": tail}
        result: dict[str, Any] = json.loads(out.read_text())
        result["wall_seconds"] = round(elapsed, 1)
        warnings = done.stderr.strip().splitlines()
        if warnings:  # e.g. the worker's log of carrier errors: kept for diagnosis
            result["stderr_lines"] = len(warnings)
            result["stderr_tail"] = warnings[-10:]
        return result


def met(value: Any, comparison: str, goal: float) -> bool | None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    return {
        ">=": value >= goal,
        "<=": value <= goal,
        "<": value < goal,
    }[comparison]


def table(results: dict[str, Any]) -> str:
    rows = [("", "metric", "value", "goal", "met", "what")]
    for bench, key, comparison, goal, what in GOALS:
        if bench not in results:
            continue
        value = results[bench].get(key)
        ok = met(value, comparison, goal)
        mark = {True: "yes", False: "NO", None: "-"}[ok]
        rows.append((bench, key, _show(value), f"{comparison} {goal:g}", mark, what))
    for bench, key, what in INFO:
        if bench in results and key in results[bench]:
            rows.append((bench, key, _show(results[bench][key]), "", "", what))
    for bench, result in results.items():
        if isinstance(result, dict) and "error" in result:
            rows.append((bench, "error", result["error"], "", "", ""))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Small counts (under a minute).")
    parser.add_argument(
        "--json", type=Path, default=Path("bench-results.json"), help="Write the results here."
    )
    parser.add_argument("--only", help="Comma-separated benchmarks to run (e.g. B1,B3).")
    parser.add_argument("--profile", type=Path, help="Also profile B1 and B2 into this folder.")
    args = parser.parse_args(argv)
    chosen = [b.strip().upper() for b in args.only.split(",")] if args.only else list(MODULES)
    unknown = [b for b in chosen if b not in MODULES]
    if unknown:
        parser.error(f"--only: unknown benchmark(s) {', '.join(unknown)}")
    timeout = 300.0 if args.quick else 3600.0
    report: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "machine": machine(),
    }
    results: dict[str, Any] = {}
    for bench in chosen:
        print(f"{bench} {MODULES[bench]} ...", file=sys.stderr, flush=True)
        results[bench] = run_module(MODULES[bench], args.quick, None, timeout)
    if args.profile is not None:
        for bench in (b for b in PROFILED if b in chosen):
            print(f"{bench} profiled run ...", file=sys.stderr, flush=True)
            profiled = run_module(MODULES[bench], args.quick, args.profile.resolve(), timeout)
            if "error" in profiled:
                results[bench]["profile_error"] = profiled["error"]
    report.update(results)
    report["goals"] = {
        f"{bench}.{key}": {
            "value": results[bench].get(key),
            "goal": f"{comparison} {goal:g}",
            "met": met(results[bench].get(key), comparison, goal),
        }
        for bench, key, comparison, goal, _ in GOALS
        if bench in results
    }
    report["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    report["loadavg_at_end"] = machine()["loadavg_at_start"]
    args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(table(results))
    print(f"\nresults: {args.json}")
    return 1 if any("error" in r for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
