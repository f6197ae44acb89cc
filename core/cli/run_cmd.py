"""`fulfil run`, `fulfil worker` and `fulfil demo`: the pipeline at work."""

from __future__ import annotations

import shutil
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from fulfil.core.cli.common import State, console, pass_state, quiet
from fulfil.core.config import default_config_text
from fulfil.core.engine import Engine
from fulfil.core.errors import ValidationFailed
from fulfil.core.processes import run_workers
from fulfil.core.states import FulfilmentStatus as F
from fulfil.core.worker import Worker
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table


def _outbox(engine: Engine) -> tuple[int, int]:
    """(rows done, rows pending) in the outbox."""
    with engine.store.transaction() as tx:
        counts = tx.count_outbox()
    done = sum(n for (_, status), n in counts.items() if status in ("done", "dead"))
    pending = sum(n for (_, status), n in counts.items() if status == "pending")
    return done, pending


@contextmanager
def progress_bar(engine: Engine, label: str) -> Iterator[Callable[[Any], None]]:
    """A rich progress bar over the outbox rows, read from the store (so it counts the work
    of every worker process) at most twice a second; silent when not on a terminal."""
    done_before, pending = _outbox(engine)
    progress = Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=quiet() or pending < 50,
    )
    with progress:
        task = progress.add_task(label, total=pending)
        next_read = 0.0

        def update(_stats: Any) -> None:
            nonlocal next_read
            if progress.disable or time.monotonic() < next_read:
                return
            next_read = time.monotonic() + 0.5
            done, pending = _outbox(engine)
            done -= done_before  # rows created meanwhile (messages after labels) count too
            progress.update(task, completed=done, total=done + pending)

        yield update


def run_pipeline(engine: Engine, label: str = "working", processes: int | None = None) -> Any:
    with progress_bar(engine, label) as update:
        return run_workers(engine, processes, on_batch=update)


def summary(engine: Engine) -> Table:
    with engine.store.transaction() as tx:
        payment = tx.count_by("payment_status")
        fulfilment = tx.count_by("fulfilment_status")
        outbox = tx.count_outbox()
        labels = tx.count_labels("bought")
        failed = tx.count_labels("failed")
        pickups = [p for p in tx.pickups() if p.status == "booked"]
    table = Table("what", "count", title="fulfil summary")
    for status, n in sorted(payment.items()):
        table.add_row(f"payment {status}", str(n))
    for status, n in sorted(fulfilment.items()):
        table.add_row(f"fulfilment {status}", str(n))
    table.add_row("labels bought", str(labels))
    if failed:
        table.add_row("labels failed", str(failed))
    table.add_row("pickups booked", str(len(pickups)))
    table.add_row("messages sent", str(outbox.get(("notification", "done"), 0)))
    pending = sum(n for (kind, status), n in outbox.items() if status == "pending")
    dead = sum(n for (kind, status), n in outbox.items() if status == "dead")
    if pending:
        table.add_row("still pending (retry later)", str(pending))
    if dead:
        table.add_row("failed for good (see `fulfil outbox list --failed`)", str(dead))
    return table


PROCESSES = click.option(
    "--processes",
    type=click.IntRange(1, 64),
    help="Worker processes (one CPU core each); default: [worker] processes.",
)


@click.command()
@PROCESSES
@pass_state
def run(state: State, processes: int | None) -> None:
    """Process everything due: labels, pickups, notifications; then print a summary."""
    with state.engine() as engine:
        run_pipeline(engine, processes=processes)
        console.print(summary(engine))


@click.command()
@click.option("--until-idle", is_flag=True, help="Stop when nothing is due.")
@click.option("--concurrency", type=click.IntRange(1, 256), help="Carrier calls at once.")
@click.option("--batch-size", type=click.IntRange(1, 10_000), help="Rows claimed at once.")
@click.option("--poll", default=1.0, show_default=True, help="Seconds between empty polls.")
@pass_state
def worker(
    state: State, until_idle: bool, concurrency: int | None, batch_size: int | None, poll: float
) -> None:
    """Drain the outbox with a lease; run as many as you like against one database."""
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    with (
        state.engine() as engine,
        Worker(engine, concurrency=concurrency, batch_size=batch_size) as w,
    ):
        try:
            stats = w.run(
                until_idle=until_idle, should_stop=lambda: bool(stopping), poll_seconds=poll
            )
        except KeyboardInterrupt:
            stats = w.stats
    console.print(", ".join(f"{k}: {v}" for k, v in sorted(stats.counts.items())) or "idle")


DEMO_FILES = (
    "fulfil.toml",
    "fulfil.db",
    "fulfil.db-wal",
    "fulfil.db-shm",
    "sms.jsonl",
    "push.jsonl",
    "sandbox-ledger.sqlite",
    "sandbox-ledger.sqlite-wal",
    "sandbox-ledger.sqlite-shm",
)
DEMO_DIRS = ("labels", "mail")


@click.command()
@click.option(
    "--out",
    default="fulfil-demo",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder.",
)
@click.option(
    "--orders",
    "count",
    default=24,
    show_default=True,
    type=click.IntRange(6, None),
    help="How many sample orders.",
)
@PROCESSES
@pass_state
def demo(state: State, out: Path, count: int, processes: int | None) -> None:
    """Run the whole pipeline on sample orders with the embedded defaults."""
    from fulfil.core.demo import is_offline, sample_orders
    from fulfil.core.validation import validate_orders

    out.mkdir(parents=True, exist_ok=True)
    for name in DEMO_FILES:  # a fresh store each time, and only our own files are touched
        (out / name).unlink(missing_ok=True)
    for name in DEMO_DIRS:
        shutil.rmtree(out / name, ignore_errors=True)
    (out / "fulfil.toml").write_text(default_config_text(), encoding="utf-8")
    state.explicit_config = out / "fulfil.toml"
    started = time.perf_counter()
    orders, problems = validate_orders([o.to_mapping() for o in sample_orders(count)], "demo")
    if problems:  # the sample data is ours: this is a bug, say so loudly
        raise ValidationFailed(problems)
    with state.engine() as engine:
        engine.place(orders)
        engine.record_payment([o.id for o in orders if is_offline(o)], "offline")
        engine.record_payment([o.id for o in orders if not is_offline(o)], "paid")
        run_pipeline(engine, "labels and messages", processes)
        # Staff steps for the orders that do not ship by carrier.
        local = [o.id for o in orders if o.shipping.type == "local_delivery"]
        counter = [o.id for o in orders if o.shipping.type == "pickup"]
        engine.mark(local, F.OUT_FOR_DELIVERY)
        engine.mark(local, F.DELIVERED)
        engine.mark(counter, F.READY_FOR_PICKUP)
        run_pipeline(engine, "staff messages", processes)
        elapsed = time.perf_counter() - started
        console.print(summary(engine))
    console.print(f"{count} orders in {elapsed:.1f} s ({count / elapsed:.0f} orders/s)")
    console.print(f"labels:   {out / 'labels'}")
    console.print(f"mail:     {out / 'mail'} (a Maildir: open it with mutt -f or any client)")
    console.print(f"SMS/push: {out / 'sms.jsonl'}, {out / 'push.jsonl'}")
    console.print(f"explore:  fulfil --config {out / 'fulfil.toml'} orders list")


def register(main: click.Group) -> None:
    for command in (run, worker, demo):
        main.add_command(command)
