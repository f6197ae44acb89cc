"""Order commands: validate, import, list, show, and the staff actions on orders."""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from pathlib import Path

import click
from fulfil.core.cli.common import State, console, err_console, pass_state
from fulfil.core.errors import InputError, ValidationFailed
from fulfil.core.states import FulfilmentStatus, PaymentStatus
from fulfil.core.validation import load_json, validate_orders
from rich.table import Table

FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
MARKABLE = {
    "out-for-delivery": FulfilmentStatus.OUT_FOR_DELIVERY,
    "ready-for-pickup": FulfilmentStatus.READY_FOR_PICKUP,
    "delivered": FulfilmentStatus.DELIVERED,
    "will-not-deliver": FulfilmentStatus.WILL_NOT_DELIVER,
    "returned": FulfilmentStatus.RETURNED,
}


@click.group("orders")
def orders() -> None:
    """Validate, list and show orders."""


@orders.command("validate")
@click.argument("file", type=FILE)
def validate(file: Path) -> None:
    """Check an order file (one order or a list, JSON) and name every problem."""
    valid, problems = validate_orders(load_json(file), file.name)
    if problems:
        raise ValidationFailed(problems)
    console.print(f"{file.name}: {len(valid)} valid order(s)")


@orders.command("list")
@click.option("--payment", type=click.Choice([s.value for s in PaymentStatus]))
@click.option("--fulfilment", type=click.Choice([s.value for s in FulfilmentStatus]))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_state
def list_orders(state: State, payment: str | None, fulfilment: str | None, as_json: bool) -> None:
    """List orders, optionally filtered by status."""
    with state.engine() as engine, engine.store.transaction() as tx:
        rows = tx.list_orders(payment, fulfilment)
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "id": r.id,
                        "number": r.number,
                        "payment_status": r.payment_status,
                        "fulfilment_status": r.fulfilment_status,
                        "version": r.version,
                    }
                    for r in rows
                ],
                indent=2,
            )
        )
        return
    table = Table("#", "id", "customer", "country", "payment", "fulfilment", "total")
    for r in rows:
        address = r.data.get("shipping_address") or {}
        total = sum(Decimal(i["unit_price"]["amount"]) * i["quantity"] for i in r.data["items"])
        table.add_row(
            str(r.number),
            r.id,
            r.data["customer"]["name"],
            address.get("country", "-"),
            r.payment_status,
            r.fulfilment_status,
            f"{total} {r.data['currency']}",
        )
    console.print(table)
    console.print(f"{len(rows)} order(s)")


@orders.command("show")
@click.argument("order_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@pass_state
def show(state: State, order_id: str, as_json: bool) -> None:
    """Details, shipments, labels, pickups, messages, history and notes of one order."""
    with state.engine() as engine:
        order = engine.get(order_id)
        with engine.store.transaction() as tx:
            events = tx.events(order_id)
            labels = tx.labels_for(order_id)
            messages = tx.outbox_rows(order_id=order_id, kind="notification")
    if as_json:
        click.echo(
            json.dumps(
                {
                    "order": order.to_mapping(),
                    "labels": [
                        {
                            "key": label.key,
                            "carrier": label.carrier,
                            "status": label.status,
                            "tracking_number": label.tracking_number,
                            "error": label.error,
                        }
                        for label in labels
                    ],
                    "messages": [
                        {
                            "id": m.id,
                            "status": m.status,
                            "event": m.payload["message"]["event"],
                            "channel": m.payload["message"]["channel"],
                            "error": m.last_error,
                        }
                        for m in messages
                    ],
                    "history": [e.to_mapping() for e in events],
                },
                indent=2,
                default=str,
            )
        )
        return
    c = order.customer
    console.print(f"[bold]Order #{order.number}[/bold] ({order.id}), version {order.version}")
    console.print(f"  customer: {c.name} <{c.email}>, locale {c.locale or '-'}")
    console.print(
        f"  payment: {order.payment_status}   fulfilment: {order.fulfilment_status}"
        f"   type: {order.shipping.type}"
    )
    console.print(f"  total: {order.total.amount} {order.currency}")
    for item in order.items:
        console.print(f"  - {item.quantity} x {item.name} ({item.sku}, {item.kind})")
    for s in order.shipments:
        console.print(
            f"  shipment {s.id}: {s.carrier or '-'} {s.service or ''} "
            f"tracking {s.tracking_number or '-'} pickup {s.pickup_id or '-'}"
        )
    for label in labels:
        detail = f"{label.tracking_number or ''} {label.error or ''}".strip()
        console.print(f"  label {label.key}: {label.status} {detail}".rstrip())
    for m in messages:
        p = m.payload["message"]
        console.print(
            f"  message {m.id}: {p['event']} ({p['audience']}, {p['channel']}) "
            f"{m.status} {m.last_error or ''}".rstrip()
        )
    for n in order.notes:
        console.print(f"  note {n.at:%Y-%m-%d %H:%M} {n.author}: {n.text}")
    console.print("  history:")
    for e in events:
        detail = ", ".join(f"{k}={v}" for k, v in e.data.items() if k not in ("changes",))
        console.print(
            f"    v{e.version} {e.at:%Y-%m-%d %H:%M:%S} {e.kind} by {e.actor} {detail}",
            highlight=False,
        )


def register(main: click.Group) -> None:
    main.add_command(orders)
    for command in (import_orders, pay, refund, cancel, ship, mark, note):
        main.add_command(command)


@click.command("import")
@click.argument("file", type=FILE)
@pass_state
def import_orders(state: State, file: Path) -> None:
    """Import orders from JSON; invalid ones are reported and skipped, valid ones stored."""
    from fulfil.core.importer import import_file

    with state.engine() as engine:
        report = import_file(engine, file)
    for problem in report.problems:
        err_console.print(f"[yellow]skipped[/yellow]: {problem}", highlight=False)
    for line in report.skipped:
        err_console.print(f"[yellow]skipped[/yellow]: {line}", highlight=False)
    console.print(f"imported {report.imported} order(s), skipped {report.read - report.imported}")
    if report.problems or report.skipped:
        raise SystemExit(1)


@click.command()
@click.argument("order_ids", nargs=-1, required=True)
@click.option(
    "--action",
    type=click.Choice(["paid", "offline", "failed", "declined"]),
    default="paid",
    show_default=True,
    help="What happened to the payment.",
)
@pass_state
def pay(state: State, order_ids: tuple[str, ...], action: str) -> None:
    """Record a payment event for orders (PAID starts fulfilment automatically)."""
    with state.engine() as engine:
        for order in engine.record_payment(order_ids, action):
            console.print(
                f"#{order.number} {order.id}: {order.payment_status} / {order.fulfilment_status}"
            )


@click.command()
@click.argument("order_id")
@click.option("--amount", help="Amount to refund (default: all that is left).")
@pass_state
def refund(state: State, order_id: str, amount: str | None) -> None:
    """Record a partial or full refund."""
    try:
        value = Decimal(amount) if amount is not None else None
    except InvalidOperation:
        raise InputError(f"--amount: {amount!r} is not a number") from None
    with state.engine() as engine:
        order = engine.refund(order_id, value)
    console.print(f"#{order.number} {order.id}: {order.payment_status}")


@click.command()
@click.argument("order_ids", nargs=-1, required=True)
@click.option("--no-notify", is_flag=True, help="Do not tell the customer.")
@pass_state
def cancel(state: State, order_ids: tuple[str, ...], no_notify: bool) -> None:
    """Cancel orders: WILL_NOT_DELIVER, labels voided, unpaid payments cancelled."""
    with state.engine() as engine:
        for order in engine.cancel(order_ids, notify_customer=not no_notify):
            console.print(f"#{order.number} {order.id}: {order.fulfilment_status}")


@click.command()
@click.argument("order_ids", nargs=-1, required=True)
@click.option("--tracking", multiple=True, help="Tracking number, one per order, in order.")
@click.option("--no-notify", is_flag=True, help="Do not tell the customer.")
@pass_state
def ship(
    state: State, order_ids: tuple[str, ...], tracking: tuple[str, ...], no_notify: bool
) -> None:
    """Mark orders SHIPPED (all or none), with tracking numbers: one message each."""
    with state.engine() as engine:
        for order in engine.ship(order_ids, tracking, notify_customer=not no_notify):
            console.print(f"#{order.number} {order.id}: {order.fulfilment_status}")


@click.command()
@click.argument("status", type=click.Choice(sorted(MARKABLE)))
@click.argument("order_ids", nargs=-1, required=True)
@click.option("--no-notify", is_flag=True, help="Do not tell the customer.")
@click.option(
    "--return-label", is_flag=True, help="With 'returned': buy a return label per shipment."
)
@pass_state
def mark(
    state: State, status: str, order_ids: tuple[str, ...], no_notify: bool, return_label: bool
) -> None:
    """Move orders' fulfilment status by hand (e.g. `fulfil mark delivered 1001`)."""
    with state.engine() as engine:
        marked = engine.mark(
            order_ids, MARKABLE[status], notify_customer=not no_notify, return_labels=return_label
        )
        for order in marked:
            console.print(f"#{order.number} {order.id}: {order.fulfilment_status}")


@click.command()
@click.argument("order_id")
@click.argument("text")
@click.option("--author", default="staff", show_default=True)
@pass_state
def note(state: State, order_id: str, text: str, author: str) -> None:
    """Add a private staff note to an order."""
    with state.engine() as engine:
        order = engine.add_note(order_id, text, author=author)
    console.print(f"#{order.number}: {len(order.notes)} note(s)")
