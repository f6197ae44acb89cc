"""What the benchmarks share: the command line of one benchmark, engines, the machine.

Every benchmark module is run by ``run.py`` in a fresh interpreter (``python bench/bN.py
--out FILE [--quick] [--profile DIR]``) so that no benchmark inherits another's heap,
imports or threads; it writes one JSON object to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
PYTHON = sys.executable

Result = dict[str, Any]


def parse_args(description: str, argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="Smaller counts (CI smoke run).")
    parser.add_argument("--out", type=Path, help="Write the result (JSON) here.")
    parser.add_argument("--profile", type=Path, help="Write profiles (pyinstrument) here.")
    return parser.parse_args(argv)


def benchmark_main(
    description: str, run: Callable[[bool, Path | None], Result], argv: list[str] | None = None
) -> None:
    """The ``__main__`` of a benchmark module: run it, print and write its result."""
    args = parse_args(description, argv)
    result = run(args.quick, args.profile)
    text = json.dumps(result, indent=2, default=str)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    else:
        print(text)


PROFILES = ("cpu", "wall")


@contextmanager
def profiled(directory: Path | None, name: str, kind: str = "cpu") -> Iterator[None]:
    """Profile the block when ``directory`` is given; figures measured so are not reported.

    ``kind="cpu"``: ``cpuprofile.ThreadProfiles``, CPU time of the main thread and of the
    threads it starts (cProfile; ``NAME.cpu.txt``, ``NAME.main.prof``, ``NAME.pool.prof``).
    ``kind="wall"``: pyinstrument, the main thread's call tree in wall time
    (``NAME.wall.txt`` and ``NAME.wall.html``).
    """
    if directory is None:
        yield
        return
    directory.mkdir(parents=True, exist_ok=True)
    if kind == "cpu":
        from cpuprofile import ThreadProfiles

        threads = ThreadProfiles().start()
        try:
            yield
        finally:
            threads.stop()
            threads.save(directory, name)
        return
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.001)
    profiler.start()
    try:
        yield
    finally:
        profiler.stop()
        text = profiler.output_text(unicode=False, color=False, show_all=False)
        (directory / f"{name}.wall.txt").write_text(text, encoding="utf-8")
        (directory / f"{name}.wall.html").write_text(profiler.output_html(), encoding="utf-8")


class Stopwatch:
    """Wall-clock seconds, process CPU seconds and this thread's CPU seconds of a block."""

    def __init__(self) -> None:
        self.wall = 0.0
        self.cpu = 0.0
        self.thread_cpu = 0.0

    def __enter__(self) -> Stopwatch:
        self._wall = time.perf_counter()
        self._cpu = time.process_time()
        self._thread_cpu = time.thread_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._wall
        self.cpu = time.process_time() - self._cpu
        self.thread_cpu = time.thread_time() - self._thread_cpu


# --- engines ----------------------------------------------------------------------------


def make_engine(config_path: Path, **kwargs: Any) -> Any:
    """An engine built the way the CLI builds it: entry-point plugins, the config file."""
    from fulfil.core.config import load_config
    from fulfil.core.engine import Engine
    from fulfil.core.plugins import Hooks, make_plugin_manager

    pm = make_plugin_manager()
    config = load_config(config_path, Hooks(pm).registry)
    return Engine(config, pm=pm, **kwargs)


def outbox_left(engine: Any) -> dict[str, int]:
    """Outbox rows not done, by status (a finished run has none)."""
    with engine.store.transaction() as tx:
        counts = tx.count_outbox()
    left: dict[str, int] = {}
    for (kind, status), n in counts.items():
        if status != "done":
            left[f"{kind}:{status}"] = left.get(f"{kind}:{status}", 0) + n
    return left


# --- the machine ------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_mb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_mb = int(line.split()[1]) // 1024
    except OSError:
        pass
    try:
        load = os.getloadavg()
    except OSError:
        load = (0.0, 0.0, 0.0)
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_mb": memory_mb,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "loadavg_at_start": [round(x, 2) for x in load],
    }


def packages(names: Mapping[str, str]) -> dict[str, str | None]:
    """Installed versions of the distributions named (key: label, value: dist name)."""
    from importlib import metadata

    found: dict[str, str | None] = {}
    for label, dist in names.items():
        try:
            found[label] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[label] = None
    return found


def rounded(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)
