"""`fulfil outbox list|retry`: see what is waiting or failed, and send a dead row again."""

from __future__ import annotations

import click
from fulfil.core.cli.common import State, console, pass_state
from fulfil.core.errors import InputError
from rich.table import Table


@click.group("outbox")
def outbox() -> None:
    """Inspect and retry queued work (label purchases, messages, voids)."""


@outbox.command("list")
@click.option("--failed", is_flag=True, help="Only rows that failed for good.")
@click.option("--pending", is_flag=True, help="Only rows still waiting.")
@pass_state
def list_rows(state: State, failed: bool, pending: bool) -> None:
    statuses = (["dead"] if failed else []) + (["pending"] if pending else [])
    with state.engine() as engine, engine.store.transaction() as tx:
        rows = tx.outbox_rows(statuses=statuses or None)
    table = Table("id", "kind", "order", "what", "status", "attempts", "last error")
    for row in rows:
        message = row.payload.get("message")
        what = f"{message['event']} ({message['channel']})" if message else row.dedupe_key
        table.add_row(
            str(row.id),
            row.kind,
            row.order_id or "-",
            what,
            row.status,
            str(row.attempts),
            row.last_error or "",
        )
    console.print(table)


@outbox.command("retry")
@click.argument("row_ids", nargs=-1, type=int, required=True)
@pass_state
def retry(state: State, row_ids: tuple[int, ...]) -> None:
    """Put failed rows back in the queue; the next `fulfil run` or worker sends them."""
    with state.engine() as engine, engine.store.transaction() as tx:
        for row_id in row_ids:
            row = tx.outbox_row(row_id)
            if row is None:
                raise InputError(f"outbox row {row_id}: no such row")
            if row.status != "dead":
                raise InputError(f"outbox row {row_id}: is {row.status}, only failed rows retry")
            tx.reset_outbox_row(row_id, engine.clock.time(), engine.clock.now().isoformat())
    console.print(f"{len(row_ids)} row(s) queued again")


def register(main: click.Group) -> None:
    main.add_command(outbox)
