"""Importing an order file of any size in constant memory.

A list of orders is streamed (ijson) and taken in chunks: each chunk is validated and its
valid orders are stored in one transaction, so memory stays flat whether the file holds a
hundred orders or a hundred thousand. The file's syntax is checked in a first streaming
pass, so a file that is not JSON is refused before anything is written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import attrs
import ijson
from fulfil.core.engine import Engine
from fulfil.core.errors import Problem
from fulfil.core.validation import load_json, validate_orders

__all__ = ["ImportReport", "import_file"]

CHUNK = 500


@attrs.define
class ImportReport:
    read: int = 0
    imported: int = 0
    problems: list[Problem] = attrs.field(factory=list)  # invalid orders, not imported
    skipped: list[str] = attrs.field(factory=list)  # valid but not imported (id exists)


def _top_level(path: Path) -> str:
    """'list', 'object' or 'other', after checking the whole file parses (streaming)."""
    try:
        with path.open("rb") as f:
            events = ijson.parse(f)
            _, first, _ = next(events, ("", "", None))
            for _event in events:  # read to the end: the syntax of the whole file counts
                pass
    except (ijson.JSONError, UnicodeDecodeError, OSError):
        load_json(path)  # raises ValidationFailed naming the line and column
        raise  # pragma: no cover - ijson and json disagree: let the caller see it
    return {"start_array": "list", "start_map": "object"}.get(first, "other")


def _chunks(path: Path, size: int) -> Iterator[list[Any]]:
    with path.open("rb") as f:
        items = ijson.items(f, "item", use_float=True)
        while chunk := list(islice(items, size)):
            yield chunk


def import_file(
    engine: Engine,
    path: Path,
    *,
    chunk_size: int = CHUNK,
    on_chunk: Callable[[ImportReport], None] | None = None,
) -> ImportReport:
    report = ImportReport()
    if _top_level(path) != "list":  # one order (or not orders at all): small, read whole
        orders, problems = validate_orders(load_json(path), path.name)
        report.read, report.problems = 1, problems
        result = engine.place(orders)
        report.imported, report.skipped = len(result.imported), result.skipped
        return report
    first_seen: dict[str, Any] = {}
    for chunk in _chunks(path, chunk_size):
        orders, problems = validate_orders(
            chunk, path.name, start=report.read, first_seen=first_seen
        )
        report.read += len(chunk)
        report.problems += problems
        result = engine.place(orders)
        report.imported += len(result.imported)
        report.skipped += result.skipped
        if on_chunk:
            on_chunk(report)
    return report
