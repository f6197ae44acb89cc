"""CPU profiles of the main thread and of every thread started meanwhile (cProfile).

pyinstrument follows the main thread only, and in wall time, which on a busy machine
mixes in the time other processes hold the CPU. ``ThreadProfiles`` runs a
``cProfile.Profile`` timed with ``time.thread_time`` in the calling thread and, by wrapping
``threading.Thread.run``, in every thread started inside the block (the worker's pool:
carrier calls, notifier sends): CPU seconds of each thread only, so time blocked in a
socket, an fsync or waiting for the GIL is not counted. A thread's profile is closed by the
thread itself when it ends, so stop the block after the threads it started (e.g. after the
worker's ``close()``); threads still running then are left out. The report ranks functions by own
and by cumulative time, as a share of the group's CPU, for the main thread and for the
pool threads merged; ``save`` writes both as pstats files (``python -m pstats FILE``).
"""

from __future__ import annotations

import cProfile
import io
import pstats
import threading
import time
from pathlib import Path


class ThreadProfiles:
    def __init__(self) -> None:
        self.main = cProfile.Profile(time.thread_time)
        self.pool: list[cProfile.Profile] = []
        self._lock = threading.Lock()

    def start(self) -> ThreadProfiles:
        self._run = threading.Thread.run
        profiles, lock, run = self.pool, self._lock, self._run

        def profiled_run(thread: threading.Thread) -> None:
            profile = cProfile.Profile(time.thread_time)
            profile.enable()
            try:
                run(thread)
            finally:
                profile.disable()
                with lock:
                    profiles.append(profile)

        threading.Thread.run = profiled_run  # type: ignore[method-assign]
        self.main.enable()
        return self

    def stop(self) -> None:
        self.main.disable()
        threading.Thread.run = self._run  # type: ignore[method-assign]

    def _stats(self) -> dict[str, pstats.Stats]:
        groups: dict[str, pstats.Stats] = {"main": pstats.Stats(self.main, stream=io.StringIO())}
        with self._lock:
            pool = list(self.pool)
        if pool:
            merged = pstats.Stats(pool[0], stream=io.StringIO())
            for profile in pool[1:]:
                merged.add(profile)
            groups["pool"] = merged
        return groups

    def save(self, directory: Path, name: str) -> None:
        groups = self._stats()
        for group, stats in groups.items():
            stats.dump_stats(directory / f"{name}.{group}.prof")
        (directory / f"{name}.cpu.txt").write_text(self.report(groups), encoding="utf-8")

    def report(self, groups: dict[str, pstats.Stats] | None = None, top: int = 30) -> str:
        out = io.StringIO()
        for group, stats in (groups or self._stats()).items():
            total = stats.total_tt  # type: ignore[attr-defined]
            threads = 1 if group == "main" else len(self.pool)
            out.write(f"== {group}: {threads} thread(s), {total:.3f} CPU seconds\n")
            for key, title in ((2, "own time"), (3, "cumulative")):
                out.write(f"-- top {top} by {title} (% of this group's CPU)\n")
                rows = sorted(
                    stats.stats.items(),  # type: ignore[attr-defined]
                    key=lambda kv: kv[1][key],
                    reverse=True,
                )
                for (filename, line, function), values in rows[:top]:
                    seconds, calls = values[key], values[1]
                    where = "/".join(filename.split("/")[-2:])
                    out.write(
                        f"{100 * seconds / total:6.1f}%  {seconds:8.3f}s  {calls:>8}  "
                        f"{function} ({where}:{line})\n"
                    )
            out.write("\n")
        return out.getvalue()
