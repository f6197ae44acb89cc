"""The raw-sqlite3 floor of B1: the same database writes, without the framework.

``WriteCounter`` listens to the engine's SQLAlchemy connection during the B1 run and counts
the rows it inserts and updates, per table, and the transactions it opens. After the run,
``floor_work`` checks the insert counts against the rows the run left in its database (they
must match: no row is ever deleted), and ``run_floor`` writes the same rows again into an
empty copy of the schema with plain ``sqlite3``:

- the same rows (read back from the engine's database, JSON columns turned back into
  Python objects and serialised again inside the timed loop, as any implementation must);
- the same number of single-row updates per table, setting the columns the engine's own
  updates set (the whole order document for ``orders``, lease/status columns for
  ``outbox``...);
- grouped per order, in as many ``BEGIN IMMEDIATE ... COMMIT`` transactions as the engine
  committed, with the engine's pragmas (WAL, ``synchronous=NORMAL``).

What the floor leaves out on purpose: reads, label PDFs, Maildir/JSON-lines files, the
sandbox carrier's own ledger and the rendering of messages. It is the price of the rows.

Run alone: ``python bench/floor.py ENGINE_DB WORK_JSON`` (``WORK_JSON`` as B1 writes it).
"""

from __future__ import annotations

import json
import re
import sqlite3
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

# Columns each engine UPDATE sets (fulfil.core.store.repo), by table; the key comes last.
UPDATED_COLUMNS = {
    "orders": ("payment_status", "fulfilment_status", "version", "updated_at", "data"),
    "shipments": ("order_id", "position", "carrier", "pickup_id", "data"),
    "labels": ("status", "tracking_number", "document_path", "error", "updated_at"),
    "outbox": ("status", "attempts", "lease_owner", "lease_until", "last_error", "updated_at"),
    "pickups": ("status", "confirmation", "data"),
}
KEYS = {
    "orders": "id",
    "events": "id",
    "shipments": "id",
    "labels": "key",
    "outbox": "id",
    "pickups": "id",
    "notes": "id",
}
JSON_COLUMNS = {
    "orders": ("data",),
    "events": ("data",),
    "shipments": ("data",),
    "labels": ("fallback",),
    "outbox": ("payload",),
    "pickups": ("data",),
}
TABLE_ORDER = ("orders", "shipments", "labels", "outbox", "events", "pickups", "notes")
_WRITE = re.compile(r'^\s*(INSERT INTO|UPDATE|DELETE FROM)\s+"?(\w+)', re.IGNORECASE)


class WriteCounter:
    """Counts rows written per (operation, table) and transactions begun on an engine."""

    def __init__(self, engine: Any) -> None:
        import sqlalchemy as sa

        self.rows: Counter[tuple[str, str]] = Counter()
        self.statements: Counter[str] = Counter()
        self.transactions = 0
        self._engine = engine
        sa.event.listen(engine, "after_cursor_execute", self._executed)

    def _executed(self, conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        head = statement.lstrip()[:40].upper()
        if head.startswith("BEGIN"):
            self.transactions += 1
            self.statements["begin"] += 1
            return
        match = _WRITE.match(statement)
        if match is None:
            self.statements["read" if head.startswith(("SELECT", "WITH")) else "other"] += 1
            return
        op = match.group(1).split()[0].lower()
        if op == "insert" and "DO UPDATE" in statement.upper():
            op = "upsert"  # a row inserted or updated: told apart in floor_work
        self.statements[op] += 1
        self.rows[(op, match.group(2).lower())] += max(cursor.rowcount, 0)

    def close(self) -> None:
        import sqlalchemy as sa

        sa.event.remove(self._engine, "after_cursor_execute", self._executed)

    def as_work(self) -> dict[str, Any]:
        inserts: dict[str, int] = defaultdict(int)
        updates: dict[str, int] = defaultdict(int)
        deletes: dict[str, int] = defaultdict(int)
        upserts: dict[str, int] = defaultdict(int)
        ops = {"insert": inserts, "update": updates, "delete": deletes, "upsert": upserts}
        for (op, table), n in self.rows.items():
            ops[op][table] += n
        return {
            "inserts": dict(inserts),
            "updates": dict(updates),
            "deletes": dict(deletes),
            "upserts": dict(upserts),
            "transactions": self.transactions,
            "statements": dict(self.statements),
        }


def table_counts(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        return {
            table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in TABLE_ORDER
        }


def floor_work(counted: dict[str, Any], db: Path) -> dict[str, Any]:
    """The counted work, checked against the rows left in the engine's database.

    No row is ever deleted, so the rows of a table are its inserts: an upsert that did not
    make one of them updated a row."""
    rows = table_counts(db)
    counted = {**counted, "inserts": dict(counted["inserts"]), "updates": dict(counted["updates"])}
    for table, n in counted.pop("upserts", {}).items():
        inserted = rows[table] - counted["inserts"].get(table, 0)
        if not 0 <= inserted <= n:
            raise RuntimeError(f"{table}: {n} upserted rows cannot make {inserted} new ones")
        counted["inserts"][table] = rows[table]
        counted["updates"][table] = counted["updates"].get(table, 0) + n - inserted
    mismatched = {
        table: (counted["inserts"].get(table, 0), n)
        for table, n in rows.items()
        if counted["inserts"].get(table, 0) != n
    }
    if mismatched or counted["deletes"]:
        raise RuntimeError(f"insert counts do not match the database: {mismatched}")
    return {**counted, "rows": rows}


def _read_rows(db: Path) -> dict[str, list[dict[str, Any]]]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    tables: dict[str, list[dict[str, Any]]] = {}
    for table in TABLE_ORDER:
        rows = []
        for row in conn.execute(f"SELECT * FROM {table} ORDER BY rowid"):
            record = dict(row)
            for column in JSON_COLUMNS.get(table, ()):
                if record[column] is not None:
                    record[column] = json.loads(record[column])
            rows.append(record)
        tables[table] = rows
    conn.close()
    return tables


def _schema(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [
            sql
            for (sql,) in conn.execute(
                "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' "
                "ORDER BY type = 'index', name"
            )
        ]


Op = tuple[str, str, dict[str, Any]]  # (insert|update, table, row)


def _operations(tables: dict[str, list[dict[str, Any]]], work: dict[str, Any]) -> list[Op]:
    """Every write, grouped by order (its inserts, then its share of the updates)."""
    per_order: dict[str, list[Op]] = defaultdict(list)
    loose: list[Op] = []
    for table in TABLE_ORDER:
        for row in tables[table]:
            owner = row.get("order_id") if table != "orders" else row["id"]
            (per_order[owner] if owner else loose).append(("insert", table, row))
    for table, n in work["updates"].items():
        rows = tables.get(table) or []
        if not rows:
            continue
        for i in range(n):
            row = rows[i % len(rows)]
            owner = row.get("order_id") if table != "orders" else row["id"]
            (per_order[owner] if owner else loose).append(("update", table, row))
    ops = loose
    for owner_ops in per_order.values():
        ops.extend(owner_ops)
    return ops


def _statement(op: str, table: str, row: dict[str, Any]) -> tuple[str, list[str]]:
    if op == "insert":
        columns = list(row)
        marks = ", ".join("?" for _ in columns)
        return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", columns
    columns = [c for c in UPDATED_COLUMNS[table] if c in row]
    assignments = ", ".join(f"{c} = ?" for c in columns)
    return f"UPDATE {table} SET {assignments} WHERE {KEYS[table]} = ?", [*columns, KEYS[table]]


def run_floor(engine_db: Path, work: dict[str, Any], directory: Path | None = None) -> float:
    """Seconds the floor takes to write ``work``'s rows into a fresh database."""
    tables = _read_rows(engine_db)
    schema = _schema(engine_db)
    ops = _operations(tables, work)
    transactions = max(int(work["transactions"]), 1)
    statements: dict[tuple[str, str], tuple[str, list[str]]] = {}
    json_columns = {t: frozenset(c) for t, c in JSON_COLUMNS.items()}
    with tempfile.TemporaryDirectory(dir=directory) as folder:
        path = Path(folder) / "floor.db"
        conn = sqlite3.connect(path, isolation_level=None)
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
            conn.execute(f"PRAGMA {pragma}")
        for sql in schema:
            conn.execute(sql)
        execute = conn.execute
        dumps = json.dumps
        size = len(ops) / transactions
        started = time.perf_counter()
        done = 0
        for t in range(transactions):
            end = len(ops) if t == transactions - 1 else round((t + 1) * size)
            execute("BEGIN IMMEDIATE")
            for op, table, row in ops[done:end]:
                key = (op, table if op == "update" else f"{table}:{len(row)}")
                if key not in statements:
                    statements[key] = _statement(op, table, row)
                sql, columns = statements[key]
                jsons = json_columns.get(table, frozenset())
                execute(
                    sql,
                    [
                        dumps(row[c]) if c in jsons and row[c] is not None else row[c]
                        for c in columns
                    ],
                )
            execute("COMMIT")
            done = end
        elapsed = time.perf_counter() - started
        conn.close()
    return elapsed


def main(argv: list[str]) -> None:
    engine_db, work_file = Path(argv[0]), Path(argv[1])
    work = json.loads(work_file.read_text())
    seconds = run_floor(engine_db, work)
    print(json.dumps({"seconds": round(seconds, 4), "orders": work["rows"]["orders"]}))


if __name__ == "__main__":
    main(sys.argv[1:])
