"""The built-in renderer: Jinja2 templates per locale, sandboxed, merchant overrides first.

Templates live in ``<locale>/<template>.<part>``: the merchant's override folder is
searched first, then the templates packaged with fulfil (read through the package loader,
never by a path relative to the repository). Parts:

- ``<template>.subject.txt`` — the subject (or SMS/push title), folded onto one line;
- ``<template>.txt`` — the plain-text body;
- ``<template>.html`` — optional HTML alternative for email (autoescaped);
- ``<template>.short.txt`` — optional short body for SMS and push (else ``.txt`` is used).

Templates see plain data only (``build_context``), run in a ``SandboxedEnvironment`` and use
``StrictUndefined``: a misspelt variable is an error, which ``check_templates`` reports
before any customer sees a broken message.

The engine, per notice::

    locale = locale_for(notice, order, store)
    context = build_context(order, change, store, locale=locale)
    rendered = hooks.render_notification(notice, order, locale, context)
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from decimal import ROUND_HALF_UP, Decimal
from functools import cached_property
from pathlib import Path
from typing import Any

import jinja2
from fulfil.core.hookspecs import hookimpl
from fulfil.core.models import ItemKind, Money, Order
from fulfil.core.notifiers import Audience, Channel
from fulfil.core.notify.notices import Notice, Rendered
from fulfil.core.states import StatusChange
from jinja2 import meta
from jinja2.sandbox import SandboxedEnvironment

__all__ = [
    "PACKAGED_LOCALES",
    "BuiltinRenderer",
    "build_context",
    "check_templates",
    "format_money",
    "language",
    "locale_for",
    "pick_locale",
]

PACKAGED_LOCALES = ("en", "fr")
_SHORT_CHANNELS = frozenset({Channel.SMS, Channel.PUSH})
_SYMBOLS = {"EUR": "€", "USD": "$", "GBP": "£", "JPY": "¥"}
_NO_MINOR_UNIT = frozenset({"JPY", "KRW", "ISK", "CLP", "VND"})


def language(locale: str | None) -> str | None:
    """The language part of a locale: ``"fr-CA"`` and ``"fr_CA"`` give ``"fr"``."""
    if not locale:
        return None
    return re.split(r"[-_.@]", locale.strip(), maxsplit=1)[0].lower() or None


def pick_locale(
    customer_locale: str | None,
    store_locale: str | None,
    available: Collection[str] | None = None,
) -> str:
    """The customer's language, else the store's, else ``"en"``.

    With ``available``, a language without templates there is skipped.
    """
    for candidate in (language(customer_locale), language(store_locale)):
        if candidate and (available is None or candidate in available):
            return candidate
    return "en"


def locale_for(notice: Notice, order: Order, store: Mapping[str, Any]) -> str:
    """The locale to render ``notice`` in: merchant messages use the store's locale."""
    customer = order.customer.locale if notice.audience is Audience.CUSTOMER else None
    return pick_locale(customer, store.get("locale"))


def format_money(amount: Decimal, currency: str, locale: str | None = "en") -> str:
    """``€12.50`` in English (and any other language), ``12,50 €`` in French."""
    places = 0 if currency in _NO_MINOR_UNIT else 2
    value = amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    sign = "-" if value < 0 else ""
    digits = f"{abs(value):,.{places}f}"
    symbol = _SYMBOLS.get(currency)
    if language(locale) == "fr":
        digits = digits.replace(",", " ").replace(".", ",")
        return f"{sign}{digits} {symbol or currency}"
    return f"{sign}{symbol}{digits}" if symbol else f"{sign}{currency} {digits}"


# --- the variables templates see --------------------------------------------------------


def _store_context(store: Mapping[str, Any]) -> dict[str, Any]:
    return {
        **store,
        "name": store.get("name") or "",
        "email": store.get("email") or store.get("merchant_email") or "",
        "phone": store.get("phone") or store.get("merchant_phone"),
        "locale": store.get("locale") or "en",
        "url": store.get("url"),
    }


def build_context(
    order: Order,
    change: StatusChange | None = None,
    store: Mapping[str, Any] | None = None,
    *,
    locale: str | None = None,
) -> dict[str, Any]:
    """Plain data for templates: ``store``, ``order``, ``shipments``, ``digital``,
    ``pickup_instructions``, ``reason``, ``status`` and ``data`` (the change's data).

    Amounts are formatted for ``locale`` (default: the customer's language, else the
    store's). ``store`` is the config's store section (name, email, phone, locale, url).
    """
    store_data = _store_context(store or {})
    lang = language(locale) or pick_locale(order.customer.locale, store_data["locale"])

    def money(value: Money | None) -> str | None:
        return None if value is None else format_money(value.amount, value.currency, lang)

    subtotal = Money.zero(order.currency)
    for item in order.items:
        subtotal = subtotal + item.total
    address = order.shipping_address
    change_data = dict(change.data) if change is not None else {}
    reason = change_data.get("reason")
    return {
        "store": store_data,
        "order": {
            "id": order.id,
            "number": order.number,
            "created_at": order.created_at.date().isoformat(),
            "customer_name": order.customer.name,
            "customer_email": order.customer.email,
            "customer_phone": order.customer.phone,
            "customer_comment": order.customer_comment,
            "items": [
                {
                    "sku": item.sku,
                    "name": item.name,
                    "quantity": item.quantity,
                    "price": money(item.unit_price),
                    "total": money(item.total),
                    "kind": item.kind.value,
                }
                for item in order.items
            ],
            "subtotal": money(subtotal),
            "shipping_price": money(order.shipping.price),
            "total": money(order.total),
            "refunded": money(order.refunded),
            "currency": order.currency,
            "fulfilment_type": order.shipping.type.value,
            "payment_status": order.payment_status.value,
            "fulfilment_status": order.fulfilment_status.value,
            "has_physical_items": bool(order.physical_items),
            "shipping_address": None
            if address is None
            else {
                **address.to_mapping(),
                "lines": [
                    line
                    for line in (
                        address.name,
                        address.company,
                        address.line1,
                        address.line2,
                        f"{address.postal_code} {address.city}",
                        address.region,
                        address.country,
                    )
                    if line
                ],
            },
        },
        "shipments": [
            {
                "id": s.id,
                "carrier": s.carrier or (s.label.carrier if s.label else None),
                "service": s.service or (s.label.service if s.label else None),
                "tracking_number": s.tracking_number
                or (s.label.tracking_number if s.label else None),
                "tracking_url": s.tracking_url or (s.label.tracking_url if s.label else None),
            }
            for s in order.shipments
        ],
        "digital": [
            {
                "name": item.name,
                "quantity": item.quantity,
                "kind": item.kind.value,
                "download_url": item.download_url,
                "gift_card_code": item.gift_card_code,
            }
            for item in order.items
            if item.kind is not ItemKind.PHYSICAL
        ],
        "pickup_instructions": order.shipping.pickup_instructions,
        "reason": None if reason is None else str(reason),
        "status": str(change.new) if change is not None else order.fulfilment_status.value,
        "data": change_data,
    }


# --- rendering ------------------------------------------------------------------------


class _Environment(SandboxedEnvironment):
    """The sandbox, with a mapping's keys found before its methods.

    Without this ``{{ order.items }}`` would be ``dict.items``, not the order's lines.
    """

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, Mapping) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)


def _environment(override_dir: Path | None) -> SandboxedEnvironment:
    loaders: list[jinja2.BaseLoader] = []
    if override_dir is not None:
        loaders.append(jinja2.FileSystemLoader(override_dir))
    loaders.append(jinja2.PackageLoader("fulfil.core.notify", "templates"))
    return _Environment(
        loader=jinja2.ChoiceLoader(loaders),
        undefined=jinja2.StrictUndefined,
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default=False),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,  # an included part ends its last line
        # Templates do not change under a running worker: without this every
        # get_template() stats the file (os.path.getmtime) to see if it must reload.
        auto_reload=False,
    )


def _tidy(text: str) -> str:
    return re.sub(r"\n{3,}", "\n\n", "\n".join(line.rstrip() for line in text.splitlines())).strip()


class BuiltinRenderer:
    """Renders notices from Jinja2 templates; runs last, so any plugin may render first."""

    def __init__(self, override_dir: Path | None = None) -> None:
        self.override_dir = override_dir
        self._known: dict[str, bool] = {}

    @cached_property
    def env(self) -> SandboxedEnvironment:
        return _environment(self.override_dir)

    def render(
        self,
        template: str,
        context: Mapping[str, Any],
        locale: str | None = None,
        channel: Channel = Channel.EMAIL,
    ) -> Rendered | None:
        """Render ``template`` in ``locale``, else the store's language, else English.

        :return: ``None`` when no locale has that template.
        :raises jinja2.TemplateError: a template is broken (undefined variable, syntax,
            unsafe access) — ``check_templates`` finds these ahead of time.
        """
        store = context.get("store")
        store_locale = store.get("locale") if isinstance(store, Mapping) else None
        for lang in dict.fromkeys((language(locale), language(store_locale), "en")):
            if lang and self._has(f"{lang}/{template}.txt"):
                return self._render_in(lang, template, context, Channel(channel))
        return None

    def _has(self, name: str) -> bool:
        # Jinja caches templates it found, not the ones it did not: remember the misses
        # (a template without .html or .short.txt variant is looked up on every message).
        if name not in self._known:
            try:
                self.env.get_template(name)
                self._known[name] = True
            except jinja2.TemplateNotFound:
                self._known[name] = False
        return self._known[name]

    def _render_in(
        self, lang: str, template: str, context: Mapping[str, Any], channel: Channel
    ) -> Rendered:
        base = f"{lang}/{template}"
        subject = " ".join(self.env.get_template(f"{base}.subject.txt").render(context).split())
        if channel in _SHORT_CHANNELS:
            body = f"{base}.short.txt" if self._has(f"{base}.short.txt") else f"{base}.txt"
            return Rendered(subject, _tidy(self.env.get_template(body).render(context)))
        text = _tidy(self.env.get_template(f"{base}.txt").render(context))
        html = None
        if channel is Channel.EMAIL and self._has(f"{base}.html"):
            html = self.env.get_template(f"{base}.html").render(context).strip()
        return Rendered(subject, text, html)

    @hookimpl(trylast=True)
    def fulfil_render_notification(
        self, notice: Notice, order: Order, locale: str, context: dict[str, Any]
    ) -> Rendered | None:
        return self.render(notice.template, context, locale, notice.channel)


# --- checking the templates ahead of time -------------------------------------------------

# fmt: off
_EUR = "EUR"
_SAMPLE_ORDER: Mapping[str, Any] = {
    "id": "sample-1001", "number": 1001, "created_at": "2025-01-15T10:30:00+01:00",
    "customer": {"name": "Marie Curie", "email": "marie@example.org", "phone": "+33612345678",
                 "locale": "fr-FR"},
    "shipping_address": {"name": "Marie Curie", "line1": "11 rue Pierre et Marie Curie",
                         "line2": "Bâtiment B", "city": "Paris", "postal_code": "75005",
                         "country": "FR"},
    "billing_address": None,
    "items": [
        {"sku": "MUG", "name": "Mug", "quantity": 2,
         "unit_price": {"amount": "12.50", "currency": _EUR}},
        {"sku": "EBOOK", "name": "E-book", "quantity": 1, "kind": "digital",
         "unit_price": {"amount": "9.99", "currency": _EUR},
         "download_url": "https://example.org/dl/ebook"},
        {"sku": "GIFT", "name": "Gift card", "quantity": 1, "kind": "gift_card",
         "unit_price": {"amount": "50", "currency": _EUR}, "gift_card_code": "GIFT-1234"},
    ],
    "shipping": {"type": "shipping", "price": {"amount": "4.90", "currency": _EUR},
                 "pickup_instructions": "Counter at the back of the shop, 10:00-18:00."},
    "payment_status": "PAID", "fulfilment_status": "SHIPPED",
    "shipments": [
        {"id": "s1", "parcels": [{"weight_g": 800}], "items": [{"sku": "MUG", "quantity": 2}],
         "carrier": "sandbox", "service": "standard", "tracking_number": "SB123456789FR",
         "tracking_url": "https://track.example.org/SB123456789FR"},
    ],
    "customer_comment": "Please ring twice.",
    "refunded": {"amount": "12.50", "currency": _EUR},
}
# fmt: on


def _samples(lang: str) -> list[dict[str, Any]]:
    """A full order, and a bare one (digital only, nothing optional) to catch missing guards."""
    full = Order.from_mapping(_SAMPLE_ORDER)
    bare = Order.from_mapping(
        {
            "id": "sample-1002",
            "number": 1002,
            "created_at": "2025-01-15T10:30:00+01:00",
            "customer": {"name": "Ada", "email": "ada@example.org"},
            "shipping_address": None,
            "billing_address": None,
            "items": [_SAMPLE_ORDER["items"][1]],
        }
    )
    change = StatusChange(
        full.id,
        "fulfilment",
        "PROCESSING",
        "SHIPPED",
        3,
        data={"reason": "Address not found", "carrier": "sandbox"},
    )
    bare_change = StatusChange(bare.id, "payment", "AWAITING_PAYMENT", "PAID", 1)
    store = {"name": "Maison Dupont", "email": "shop@example.org", "locale": lang}
    return [
        build_context(full, change, store, locale=lang),
        build_context(bare, bare_change, {"name": "Shop", "locale": lang}, locale=lang),
    ]


def _template_names(env: jinja2.Environment) -> Iterable[str]:
    assert env.loader is not None
    for name in env.loader.list_templates():
        folder, _, file = name.partition("/")
        if (
            folder
            and "/" not in file
            and not file.startswith(".")
            and file.endswith((".txt", ".html"))
        ):
            yield name


def check_templates(override_dir: Path | None = None) -> list[str]:
    """Render every template (packaged and overridden) against sample orders.

    :return: one problem per broken template, e.g.
        ``"templates/fr/order_shipped.txt: 'trackin' is undefined"``; empty when all render.
    """
    if override_dir is not None and not override_dir.is_dir():
        return [f"{override_dir}: templates folder does not exist"]
    env = _environment(override_dir)
    samples = {lang: _samples(lang) for lang in PACKAGED_LOCALES}
    known = set(samples["en"][0]) | set(env.globals)
    problems = []
    for name in sorted(_template_names(env)):
        if override_dir is not None and (override_dir / name).is_file():
            where = str(override_dir / name)
        else:
            where = f"templates/{name}"
        problem = _check_one(env, name, samples.get(name.split("/")[0], samples["en"]), known)
        if problem:
            problems.append(f"{where}: {problem}")
    return problems


def _check_one(
    env: jinja2.Environment, name: str, contexts: list[dict[str, Any]], known: set[str]
) -> str | None:
    try:
        assert env.loader is not None
        source = env.loader.get_source(env, name)[0]
        unknown = sorted(meta.find_undeclared_variables(env.parse(source)) - known)
        if unknown:
            return f"'{unknown[0]}' is undefined"
        template = env.get_template(name)
        for context in contexts:
            template.render(context)
    except jinja2.TemplateSyntaxError as exc:
        return f"line {exc.lineno}: {exc.message}"
    except jinja2.TemplateError as exc:
        return exc.message or type(exc).__name__
    return None
