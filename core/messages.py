"""Turn an event into outbox messages: which notices (policy hook), rendered (render hook),
addressed, and routed to the enabled notifier for their channel.

Messages are rendered when the event happens, inside its transaction, so what is sent is
what the order looked like then, and a retry sends the very same text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fulfil.core.models import Order
from fulfil.core.notifiers import Audience, Channel, Message
from fulfil.core.notify.notices import Notice
from fulfil.core.notify.policy import customer_phone
from fulfil.core.notify.render import build_context, locale_for
from fulfil.core.states import StatusChange

if TYPE_CHECKING:
    from fulfil.core.engine import Engine


def recipient(engine: Engine, order: Order, notice: Notice) -> str | None:
    """Where a notice goes, or None when nobody can receive it on that channel."""
    store = engine.config.store
    if notice.audience is Audience.MERCHANT:
        return {
            Channel.EMAIL: store.email,
            Channel.SMS: store.phone,
            Channel.PUSH: "merchant",
            Channel.WEBHOOK: "merchant",
        }[notice.channel]
    return {
        Channel.EMAIL: order.customer.email,
        Channel.SMS: customer_phone(order),
        Channel.PUSH: None,  # no customer device registry yet
        Channel.WEBHOOK: "customer",
    }[notice.channel]


def notifications(
    engine: Engine, order: Order, change: StatusChange
) -> list[tuple[str, dict[str, Any]]]:
    """The messages ``change`` causes, as (dedupe key, outbox payload) pairs."""
    notices = engine.hooks.notifications_for(order, change, dict(engine.config.notifications))
    contexts: dict[str, dict[str, Any]] = {}  # one per locale: amounts read as the reader writes
    rows = []
    for notice in notices:
        notifier = engine.notifier_for_channel(notice.channel)
        to = recipient(engine, order, notice)
        if notifier is None or not to:
            continue
        locale = locale_for(notice, order, engine.store_context)
        if locale not in contexts:
            contexts[locale] = build_context(order, change, engine.store_context, locale=locale)
        context = contexts[locale]
        rendered = engine.hooks.render_notification(notice, order, locale, context)
        if rendered is None:
            continue
        key = f"{order.id}:v{change.version}:{notice.template}:{notice.audience}:{notice.channel}"
        message = Message(
            dedupe_key=key,
            channel=notice.channel,
            audience=notice.audience,
            event=notice.template,
            order_id=order.id,
            to=to,
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html if notice.channel is Channel.EMAIL else None,
            locale=locale,
            sender=engine.config.store.email,
        )
        payload = {"notifier": notifier, "version": change.version, "message": message.to_mapping()}
        rows.append((key, payload))
    return rows
