"""Several worker processes on one store, so that the work uses more than one CPU core.

A worker's threads share one interpreter lock: whatever the concurrency, one process
settles outcomes, renders messages and builds labels on one core at most.
``run_workers`` starts ``processes - 1`` more workers in child processes on the same
configuration, works alongside them, and adds up their counts. The outbox claims are
leased, so the processes share the work without talking to each other (as several
``fulfil worker`` commands do).

Child processes are started fresh (``spawn``), not forked from a process holding open
database connections and threads, and build their engine from the configuration the
parent was built from: plugins they load are the installed ones (entry points), so a
plugin registered in code exists in the parent only.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from fulfil.core.config import EMBEDDED_SOURCE, Config, load_config
from fulfil.core.engine import Engine
from fulfil.core.errors import WorkerFailed
from fulfil.core.plugins import Hooks, make_plugin_manager
from fulfil.core.worker import Worker, WorkerStats

__all__ = ["run_workers"]


def run_workers(
    engine: Engine,
    processes: int | None = None,
    *,
    concurrency: int | None = None,
    on_batch: Callable[[WorkerStats], None] | None = None,
) -> WorkerStats:
    """Work until nothing is due, in ``processes`` processes (default: the config's);
    the counts are those of every process, ``on_batch`` sees this process's."""
    processes = processes or engine.config.worker.processes
    if processes <= 1:
        with Worker(engine, concurrency=concurrency) as worker:
            return worker.run(until_idle=True, on_batch=on_batch)
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(processes - 1, mp_context=spawn) as pool:
        config = engine.config
        children = [
            pool.submit(_work, config.source, str(config.base_dir), concurrency)
            for _ in range(processes - 1)
        ]
        with Worker(engine, concurrency=concurrency) as worker:
            stats = worker.run(until_idle=True, on_batch=on_batch)
        failures = []
        for child in children:
            try:
                stats.counts.update(child.result())
            except Exception as error:  # its own engine, config or plugins, or a crash
                failures.append(f"{type(error).__name__}: {error}")
    if failures:
        raise WorkerFailed(
            f"{len(failures)} of {processes} worker processes failed ({'; '.join(failures)}); "
            "what they held is taken over when its lease expires"
        )
    return stats


def _work(source: str, base_dir: str, concurrency: int | None) -> dict[str, int]:
    """A child process: the same configuration, its own engine and worker."""
    pm = make_plugin_manager()
    config = _load(source, Path(base_dir), Hooks(pm))
    with Engine(config, pm=pm) as engine, Worker(engine, concurrency=concurrency) as worker:
        return dict(worker.run(until_idle=True).counts)


def _load(source: str, base_dir: Path, hooks: Hooks) -> Config:
    path = None if source == EMBEDDED_SOURCE else Path(source)
    return load_config(path, hooks.registry, base_dir=base_dir)
