"""Acceptance: the demo's orders mailed through a real SMTP server (aiosmtpd on 127.0.0.1)
instead of the Maildir — every expected mail once, through an outage, and a permanent
refusal dead-lettered, shown by `fulfil outbox list --failed` and queued again by `retry`.

"Nothing lost, nothing twice" is proven from what the server received, against what
DESIGN.md section 6 says the orders cause, not from the outbox's own bookkeeping.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import email.utils
import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from click.testing import CliRunner
from conftest import order_data
from fulfil.core.cli import main
from fulfil.core.cli.common import console
from fulfil.core.demo import is_offline, sample_orders
from fulfil.core.engine import Engine
from fulfil.core.models import ItemKind, Order
from fulfil.core.states import FulfilmentStatus as F
from fulfil.core.worker import Worker

SHOP = "shop@example.com"


# --- a real SMTP server that keeps what it accepts ------------------------------------------


class Mailbox:
    """aiosmtpd handler: ``script`` answers the next DATA commands instead of accepting
    (e.g. "451 ..."); ``refuse`` answers RCPT for an address."""

    def __init__(self) -> None:
        self.received: list[Any] = []
        self.script: deque[str] = deque()
        self.refuse: dict[str, str] = {}
        self.data_commands = 0

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.data_commands += 1
        await asyncio.sleep(0)
        if self.script:
            return self.script.popleft()
        parsed = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        self.received.append((list(envelope.rcpt_tos), parsed))
        return "250 2.0.0 Ok: queued"

    def messages(self) -> list[Any]:
        return [message for _, message in self.received]


class LoopbackController(Controller):
    """Listens on an ephemeral port (port=0) and learns which."""

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


@contextmanager
def smtp_server(handler: Mailbox, port: int = 0) -> Iterator[LoopbackController]:
    controller = LoopbackController(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield controller
    finally:
        controller.stop()


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, LoopbackController]]:
    handler = Mailbox()
    with smtp_server(handler) as server:
        yield handler, server


class ShiftedClock:
    """The system clock plus an offset a test moves forward (retries come due)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.offset)

    def time(self) -> float:
        return time.time() + self.offset


def smtp_config(port: int) -> dict[str, Any]:
    settings = {"host": "127.0.0.1", "port": port, "security": "none", "from": SHOP}
    return {"notifiers": {"maildir": {"enabled": False}, "smtp": {"settings": settings}}}


# --- the run --------------------------------------------------------------------------------


def no_wait(attempt: int, retry_after: float | None = None) -> float:
    return 0.0


def drain(engine: Engine, backoff: Callable[..., float] = no_wait, **kwargs: Any) -> None:
    with Worker(engine, backoff=backoff, **kwargs) as worker:
        worker.run()


def place_and_pay(engine: Engine, orders: list[Order]) -> None:
    """What `fulfil demo` does before its first pass."""
    engine.place(orders)
    engine.record_payment([o.id for o in orders if is_offline(o)], "offline")
    engine.record_payment([o.id for o in orders if not is_offline(o)], "paid")


def staff_steps(engine: Engine, orders: list[Order]) -> None:
    """What `fulfil demo` does by hand for the orders no carrier takes."""
    local = [o.id for o in orders if o.shipping.type == "local_delivery"]
    counter = [o.id for o in orders if o.shipping.type == "pickup"]
    engine.mark(local, F.OUT_FOR_DELIVERY)
    engine.mark(local, F.DELIVERED)
    engine.mark(counter, F.READY_FOR_PICKUP)


def expected_mails(orders: list[Order], merchant: str) -> Counter[tuple[str, str, str]]:
    """(order, template, recipient) for every email DESIGN.md section 6 asks for, with the
    default [notifications] settings, after `place_and_pay`, a pass and `staff_steps`."""
    wanted: Counter[tuple[str, str, str]] = Counter()
    for order in orders:
        customer = order.customer.email
        wanted[(order.id, "order_placed", customer)] += 1
        wanted[(order.id, "merchant_new_order", merchant)] += 1
        if is_offline(order):
            continue
        if any(item.kind is not ItemKind.PHYSICAL for item in order.items):
            wanted[(order.id, "digital_delivery", customer)] += 1
        physical = any(item.kind is ItemKind.PHYSICAL for item in order.items)
        if physical and order.shipping.type == "shipping":
            wanted[(order.id, "order_shipped", customer)] += 1
        if order.shipping.type == "local_delivery":
            wanted[(order.id, "out_for_delivery", customer)] += 1
            wanted[(order.id, "order_delivered", customer)] += 1
        if order.shipping.type == "pickup":
            wanted[(order.id, "ready_for_pickup", customer)] += 1
    return wanted


def address(header: Any) -> str:
    return email.utils.parseaddr(str(header))[1]


def delivered(handler: Mailbox) -> Counter[tuple[str, str, str]]:
    return Counter(
        (m["X-Fulfil-Order-Id"], m["X-Fulfil-Event"], address(m["To"])) for m in handler.messages()
    )


def email_rows(engine: Engine) -> list[Any]:
    with engine.store.transaction() as tx:
        rows = tx.outbox_rows(kind="notification")
    return [r for r in rows if r.payload["message"]["channel"] == "email"]


def assert_each_once(handler: Mailbox, engine: Engine, orders: list[Order]) -> None:
    keys = Counter(m["X-Fulfil-Dedupe-Key"] for m in handler.messages())
    assert keys and max(keys.values()) == 1, [k for k, n in keys.items() if n > 1]
    assert delivered(handler) == expected_mails(orders, engine.config.store.email)
    rows = email_rows(engine)
    assert {r.dedupe_key for r in rows} == set(keys)  # every email row delivered, once
    assert {r.status for r in rows} == {"done"}
    for rcpt_tos, message in handler.received:  # the envelope goes where the header says
        assert rcpt_tos == [address(message["To"])]
        assert address(message["From"]) == SHOP


# --- a) the demo, mailed --------------------------------------------------------------------


# `mailbox` comes first among the fixtures: set up before the engine, it stops after the
# engine closed its SMTP connections.


def test_demo_orders_are_each_mailed_once(
    mailbox: tuple[Mailbox, LoopbackController], make_engine: Callable[..., Engine]
) -> None:
    handler, server = mailbox
    engine = make_engine(smtp_config(server.port))
    orders = sample_orders(24)
    place_and_pay(engine, orders)
    drain(engine)
    staff_steps(engine, orders)
    drain(engine)

    assert_each_once(handler, engine, orders)
    assert handler.data_commands == len(handler.received)  # no failed attempt on the way
    assert not (engine.data_dir / "mail").exists()  # the Maildir sink was off

    locales = {o.id: o.customer.locale or "" for o in orders}
    customer_mails = [m for m in handler.messages() if address(m["To"]) != SHOP]
    customer_mails = [m for m in customer_mails if address(m["To"]) != engine.config.store.email]
    french = [m for m in customer_mails if locales[m["X-Fulfil-Order-Id"]].startswith("fr")]
    others = [m for m in customer_mails if not locales[m["X-Fulfil-Order-Id"]].startswith("fr")]
    assert len(french) >= 10 and others
    for message in french:
        assert message["Content-Language"] == "fr"
        assert "commande" in message["Subject"].lower(), message["Subject"]
        assert "Bonjour" in message.get_body(("plain",)).get_content()
    for message in others:
        assert "commande" not in message["Subject"].lower(), message["Subject"]


# --- b) the SMTP server is down for part of the run -----------------------------------------


def test_451_for_a_while_then_every_message_once(
    mailbox: tuple[Mailbox, LoopbackController], make_engine: Callable[..., Engine]
) -> None:
    handler, server = mailbox
    refusals = 30
    handler.script.extend(["451 4.3.2 System not accepting network messages"] * refusals)
    engine = make_engine(smtp_config(server.port))
    orders = sample_orders(24)
    place_and_pay(engine, orders)
    drain(engine, max_attempts=10)
    staff_steps(engine, orders)
    drain(engine, max_attempts=10)

    assert_each_once(handler, engine, orders)
    assert handler.data_commands == len(handler.received) + refusals
    rows = email_rows(engine)
    assert sum(r.attempts - 1 for r in rows) == refusals  # each refusal cost one retry


def test_server_stopped_then_back_every_message_once(
    make_engine: Callable[..., Engine],
) -> None:
    handler = Mailbox()
    with smtp_server(handler) as server:
        port = server.port
    clock = ShiftedClock()
    engine = make_engine(smtp_config(port), clock=clock)
    orders = sample_orders(24)
    place_and_pay(engine, orders)
    drain(engine, backoff=lambda *a, **k: 300.0)  # nothing listens: connection refused

    rows = email_rows(engine)
    assert rows and {(r.status, r.attempts) for r in rows} == {("pending", 1)}
    assert all("ConnectionRefusedError" in r.last_error for r in rows)
    assert not handler.received

    with smtp_server(handler, port=port):
        clock.offset += 301  # the retries come due
        drain(engine)
        staff_steps(engine, orders)
        drain(engine)
        engine.notifier("smtp").close()  # before the server stops, not after
    assert_each_once(handler, engine, orders)


# --- c) a permanent refusal: dead-lettered, shown, retried ----------------------------------


def test_550_is_dead_lettered_shown_and_retried(
    mailbox: tuple[Mailbox, LoopbackController],
    make_engine: Callable[..., Engine],
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    handler, server = mailbox
    bounced = "c2001@example.com"
    reason = "Recipient address rejected: User unknown in virtual mailbox table"
    handler.refuse[bounced] = f"550 5.1.1 <{bounced}>: {reason}"
    engine = make_engine(smtp_config(server.port))
    orders = [Order.from_mapping(order_data(n, locale="en")) for n in (2001, 2002)]
    engine.place(orders)
    engine.record_payment(["ord_2001", "ord_2002"], "paid")
    drain(engine)

    dead = [r for r in email_rows(engine) if r.status == "dead"]
    assert sorted(r.payload["message"]["event"] for r in dead) == [
        "order_placed",
        "order_shipped",
    ]
    assert all(r.attempts == 1 and reason in r.last_error and "[550]" in r.last_error for r in dead)
    assert all(bounced not in r.last_error for r in dead)  # the reason, not the address
    assert not any(bounced in r.getMessage() for r in caplog.records if r.name.startswith("fulfil"))
    # The other mails went: the merchant heard of both orders, the other customer of theirs.
    assert sorted(k for k in delivered(handler) if k[0] == "ord_2001") == [
        ("ord_2001", "merchant_new_order", engine.config.store.email)
    ]
    assert len([k for k in delivered(handler) if k[0] == "ord_2002"]) == 3

    config = tmp_path / "fulfil.toml"
    monkeypatch.setattr(console, "_width", 240)  # one table row per line, reason unwrapped
    runner = CliRunner()
    listed = runner.invoke(main, ["--config", str(config), "outbox", "list", "--failed"])
    assert listed.exit_code == 0, listed.output
    lines = {r.id: line for r in dead for line in listed.output.splitlines() if f" {r.id} " in line}
    assert len(lines) == 2
    assert all("dead" in line and reason in line for line in lines.values())
    assert "order_placed (email)" in listed.output

    first = min(r.id for r in dead)
    retried = runner.invoke(main, ["--config", str(config), "outbox", "retry", str(first)])
    assert retried.exit_code == 0 and "1 row(s) queued again" in retried.output
    again = runner.invoke(main, ["--config", str(config), "outbox", "retry", str(first)])
    assert again.exit_code == 1 and "only failed rows retry" in again.output

    del handler.refuse[bounced]  # the customer fixed their mailbox
    drain(engine)
    status = {r.id: r.status for r in email_rows(engine)}
    assert status[first] == "done" and status[max(r.id for r in dead)] == "dead"
    assert delivered(handler)[("ord_2001", "order_placed", bounced)] == 1
