"""The built-in renderer: packaged templates in en and fr, overrides, strictness, sandbox."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import jinja2
import pytest
from fulfil.core import hookspecs
from fulfil.core.models import Order
from fulfil.core.notifiers import Channel
from fulfil.core.notify.notices import Notice, Rendered
from fulfil.core.notify.policy import TEMPLATES
from fulfil.core.notify.render import (
    BuiltinRenderer,
    build_context,
    check_templates,
    format_money,
    locale_for,
    pick_locale,
)
from fulfil.core.plugins import Hooks, make_plugin_manager
from fulfil.core.states import StatusChange
from jinja2.sandbox import SecurityError

STORE = {"name": "Maison Dupont", "email": "shop@dupont.example", "locale": "fr"}


def full_order(**extra: Any) -> Order:
    return Order.from_mapping(
        {
            "id": "o1",
            "number": 1001,
            "created_at": "2025-01-15T10:00:00+00:00",
            "customer": {
                "name": "Marie Curie",
                "email": "marie@example.org",
                "phone": "+33612345678",
                "locale": "fr-CA",
            },
            "shipping_address": {
                "name": "Marie Curie",
                "line1": "1 rue Cuvier",
                "city": "Paris",
                "postal_code": "75005",
                "country": "FR",
            },
            "billing_address": None,
            "items": [
                {
                    "sku": "MUG",
                    "name": "Mug",
                    "quantity": 2,
                    "unit_price": {"amount": "12.50", "currency": "EUR"},
                },
                {
                    "sku": "GC",
                    "name": "Gift card",
                    "quantity": 1,
                    "kind": "gift_card",
                    "unit_price": {"amount": "1000", "currency": "EUR"},
                    "gift_card_code": "GC-7777",
                },
                {
                    "sku": "EB",
                    "name": "E-book",
                    "quantity": 1,
                    "kind": "digital",
                    "unit_price": {"amount": "9.99", "currency": "EUR"},
                    "download_url": "https://dl.example/eb",
                },
            ],
            "shipping": {"type": "shipping", "price": {"amount": "4.90", "currency": "EUR"}},
            "payment_status": "PAID",
            "fulfilment_status": "SHIPPED",
            "shipments": [
                {
                    "id": "s1",
                    "parcels": [{"weight_g": 500}],
                    "items": [{"sku": "MUG", "quantity": 1}],
                    "carrier": "sandbox",
                    "tracking_number": "TRK1",
                    "tracking_url": "https://track.example/TRK1",
                },
                {
                    "id": "s2",
                    "parcels": [{"weight_g": 500}],
                    "items": [{"sku": "MUG", "quantity": 1}],
                    "label": {
                        "carrier": "sandbox",
                        "service": "express",
                        "tracking_number": "TRK2",
                        "format": "PDF",
                        "cost": {"amount": "5", "currency": "EUR"},
                        "tracking_url": "https://track.example/TRK2",
                    },
                },
            ],
            "refunded": {"amount": "12.50", "currency": "EUR"},
            **extra,
        }
    )


def bare_order() -> Order:
    return Order.from_mapping(
        {
            "id": "o2",
            "number": 7,
            "created_at": "2025-01-15T10:00:00+00:00",
            "customer": {"name": "Ada", "email": "ada@example.org"},
            "shipping_address": None,
            "billing_address": None,
            "items": [
                {
                    "sku": "EB",
                    "name": "E-book",
                    "quantity": 1,
                    "kind": "digital",
                    "unit_price": {"amount": "9", "currency": "USD"},
                }
            ],
            "currency": "USD",
        }
    )


SHIPPED = StatusChange("o1", "fulfilment", "PROCESSING", "SHIPPED", 3)
FAILED = StatusChange("o1", "order", "", "label_failed", 3, data={"reason": "Postcode unknown"})


def context(order: Order, lang: str, change: StatusChange = SHIPPED) -> dict[str, Any]:
    return build_context(order, change, {**STORE, "locale": lang}, locale=lang)


# --- locale and money ---------------------------------------------------------------------


def test_pick_locale() -> None:
    assert pick_locale("fr-CA", "en") == "fr"
    assert pick_locale("fr_FR", None) == "fr"
    assert pick_locale(None, "fr-BE") == "fr"
    assert pick_locale(None, None) == "en"
    assert pick_locale("EN-gb", "fr") == "en"
    assert pick_locale("de", "fr", available=("en", "fr")) == "fr"
    assert pick_locale("de", "es", available=("en", "fr")) == "en"


def test_merchant_messages_use_the_store_locale() -> None:
    order = full_order()  # customer fr-CA
    assert locale_for(Notice("order_shipped", "customer", "email"), order, {"locale": "en"}) == "fr"
    notice = Notice("merchant_new_order", "merchant", "email")
    assert locale_for(notice, order, {"locale": "en-GB"}) == "en"


@pytest.mark.parametrize(
    ("amount", "currency", "locale", "expected"),
    [
        ("12.5", "EUR", "en", "€12.50"),
        ("12.5", "EUR", "fr", "12,50 €"),
        ("12.5", "EUR", "fr-CA", "12,50 €"),
        ("1234.567", "EUR", "fr", "1 234,57 €"),
        ("1234.5", "USD", "en", "$1,234.50"),
        ("3", "CHF", "en", "CHF 3.00"),
        ("3", "CHF", "fr", "3,00 CHF"),
        ("1500", "JPY", "en", "¥1,500"),
        ("-2", "GBP", "de", "-£2.00"),
    ],
)
def test_format_money(amount: str, currency: str, locale: str, expected: str) -> None:
    assert format_money(Decimal(amount), currency, locale) == expected


# --- the context ------------------------------------------------------------------------


def test_build_context_is_plain_data() -> None:
    ctx = build_context(full_order(), FAILED, STORE)
    json.dumps(ctx)  # nothing but plain data
    assert ctx["store"]["name"] == "Maison Dupont"
    assert ctx["order"]["number"] == 1001
    assert ctx["order"]["customer_name"] == "Marie Curie"
    assert ctx["order"]["total"] == "1 039,89 €"  # the customer's language by default
    assert ctx["order"]["items"][0] == {
        "sku": "MUG",
        "name": "Mug",
        "quantity": 2,
        "price": "12,50 €",
        "total": "25,00 €",
        "kind": "physical",
    }
    assert ctx["order"]["shipping_address"]["lines"][-2:] == ["75005 Paris", "FR"]
    assert [s["tracking_number"] for s in ctx["shipments"]] == ["TRK1", "TRK2"]
    assert ctx["shipments"][1] == {
        "id": "s2",
        "carrier": "sandbox",
        "service": "express",
        "tracking_number": "TRK2",
        "tracking_url": "https://track.example/TRK2",
    }
    assert ctx["digital"] == [
        {
            "name": "Gift card",
            "quantity": 1,
            "kind": "gift_card",
            "download_url": None,
            "gift_card_code": "GC-7777",
        },
        {
            "name": "E-book",
            "quantity": 1,
            "kind": "digital",
            "download_url": "https://dl.example/eb",
            "gift_card_code": None,
        },
    ]
    assert ctx["reason"] == "Postcode unknown"
    assert ctx["status"] == "label_failed"
    assert build_context(full_order(), None, STORE, locale="en")["order"]["total"] == "€1,039.89"


# --- every template, both locales ---------------------------------------------------------


@pytest.mark.parametrize("lang", ["en", "fr"])
@pytest.mark.parametrize("template", TEMPLATES)
def test_every_template_renders(template: str, lang: str) -> None:
    renderer = BuiltinRenderer()
    for order in (full_order(), bare_order()):
        ctx = context(order, lang, FAILED if template == "label_failed" else SHIPPED)
        email = renderer.render(template, ctx, lang, Channel.EMAIL)
        sms = renderer.render(template, ctx, lang, Channel.SMS)
        assert email is not None and sms is not None
        for rendered in (email, sms):
            assert rendered.subject and "\n" not in rendered.subject
            assert rendered.text and "{{" not in rendered.text and "{%" not in rendered.text
            assert f"{order.number}" in rendered.subject + rendered.text
        assert sms.html is None
        assert len(sms.text) < len(email.text)
        word = "commande" if lang == "fr" else "order"
        assert word in email.subject.lower()


@pytest.mark.parametrize("template", TEMPLATES)
def test_french_is_not_english(template: str) -> None:
    renderer = BuiltinRenderer()
    en = renderer.render(template, context(full_order(), "en"), "en")
    fr = renderer.render(template, context(full_order(), "fr"), "fr")
    assert en is not None and fr is not None
    assert en.subject != fr.subject and en.text != fr.text


def test_subjects() -> None:
    renderer = BuiltinRenderer()

    def subject(template: str, lang: str) -> str:
        rendered = renderer.render(template, context(full_order(), lang), lang)
        assert rendered is not None
        return rendered.subject

    assert subject("merchant_new_order", "en") == "[Maison Dupont], new order #1001"
    assert subject("merchant_new_order", "fr") == "[Maison Dupont], nouvelle commande #1001"
    assert subject("order_shipped", "fr") == "Votre commande n° 1001 a été expédiée"
    assert subject("order_shipped", "en") == "Your order #1001 is on its way"
    assert subject("order_delivered", "fr") == "Votre commande n° 1001 a été livrée"
    assert subject("ready_for_pickup", "fr") == "Votre commande n° 1001 est prête à être retirée"


def test_merchant_status_names_the_status() -> None:
    renderer = BuiltinRenderer()
    delivered = StatusChange("o1", "fulfilment", "SHIPPED", "DELIVERED", 4)
    en = renderer.render("merchant_status", context(full_order(), "en", delivered), "en")
    fr = renderer.render("merchant_status", context(full_order(), "fr", delivered), "fr")
    assert en is not None and en.subject == "[Maison Dupont] Order #1001 delivered"
    assert fr is not None and fr.subject == "[Maison Dupont] Commande n° 1001 livrée"


def test_shipped_lists_every_tracking_number_and_link() -> None:
    renderer = BuiltinRenderer()
    for lang in ("en", "fr"):
        rendered = renderer.render("order_shipped", context(full_order(), lang), lang)
        assert rendered is not None and rendered.html is not None
        for part in ("TRK1", "TRK2", "https://track.example/TRK1", "https://track.example/TRK2"):
            assert part in rendered.text and part in rendered.html
        sms = renderer.render("order_shipped", context(full_order(), lang), lang, Channel.SMS)
        assert sms is not None and "https://track.example/TRK1" in sms.text
        assert len(sms.text) <= 160


def test_digital_delivery_and_money_per_locale() -> None:
    renderer = BuiltinRenderer()
    fr = renderer.render("digital_delivery", context(full_order(), "fr"), "fr")
    en = renderer.render("order_placed", context(full_order(), "en"), "en")
    assert fr is not None and en is not None
    assert "GC-7777" in fr.text and "https://dl.example/eb" in fr.text
    assert "Code de la carte cadeau" in fr.text
    assert "1 039,89 €" in renderer.render("order_placed", context(full_order(), "fr"), "fr").text  # type: ignore[union-attr]
    assert "€1,039.89" in en.text


def test_label_failed_carries_the_carriers_reason() -> None:
    rendered = BuiltinRenderer().render("label_failed", context(full_order(), "en", FAILED), "en")
    assert rendered is not None and "Postcode unknown" in rendered.text


def test_html_is_escaped_and_text_is_not() -> None:
    order = full_order(customer={"name": "<b>Bob</b> & co", "email": "bob@example.org"})
    rendered = BuiltinRenderer().render("order_placed", context(order, "en"), "en")
    assert rendered is not None and rendered.html is not None
    assert "&lt;b&gt;Bob&lt;/b&gt; &amp; co" in rendered.html
    assert "<b>Bob</b> & co" in rendered.text


def test_locale_falls_back_to_the_store_then_english() -> None:
    renderer = BuiltinRenderer()
    ctx = context(full_order(), "fr")
    fr = renderer.render("order_shipped", ctx, "de")
    assert fr is not None and fr.subject.startswith("Votre commande")
    ctx["store"]["locale"] = "es"
    en = renderer.render("order_shipped", ctx, "de-AT")
    assert en is not None and en.subject.startswith("Your order")


def test_unknown_template_renders_to_none() -> None:
    assert BuiltinRenderer().render("no_such_template", context(full_order(), "en"), "en") is None


def test_packaged_templates_do_not_depend_on_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert BuiltinRenderer().render("order_placed", context(full_order(), "en"), "en") is not None


# --- overrides, strictness, sandbox -------------------------------------------------------


def write(root: Path, name: str, text: str) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_override_folder_wins(tmp_path: Path) -> None:
    write(tmp_path, "fr/order_shipped.subject.txt", "C'est parti, {{ order.customer_name }} !")
    write(tmp_path, "de/order_shipped.subject.txt", "Bestellung {{ order.number }} versandt")
    write(tmp_path, "de/order_shipped.txt", "Hallo {{ order.customer_name }}")
    renderer = BuiltinRenderer(tmp_path)
    fr = renderer.render("order_shipped", context(full_order(), "fr"), "fr")
    assert fr is not None
    assert fr.subject == "C'est parti, Marie Curie !"
    assert "Numéro de suivi : TRK1" in fr.text  # the parts not overridden are packaged
    de = renderer.render("order_shipped", context(full_order(), "en"), "de-DE")
    assert de == Rendered("Bestellung 1001 versandt", "Hallo Marie Curie", None)
    en = renderer.render("order_shipped", context(full_order(), "en"), "en")
    assert en is not None and en.subject == "Your order #1001 is on its way"
    assert check_templates(tmp_path) == []


def test_undefined_variable_raises_and_is_reported(tmp_path: Path) -> None:
    write(tmp_path, "fr/order_shipped.txt", "Suivi : {{ trackin }}")
    write(tmp_path, "en/order_delivered.txt", "{{ order.numbr }}")
    write(tmp_path, "en/order_returned.txt", "{% if false %}{{ only_in_a_branch }}{% endif %}ok")
    write(tmp_path, "en/order_cancelled.txt", "{% if order.number %}\n\nbroken {{ }")
    renderer = BuiltinRenderer(tmp_path)
    with pytest.raises(jinja2.UndefinedError, match="'trackin' is undefined"):
        renderer.render("order_shipped", context(full_order(), "fr"), "fr")
    problems = check_templates(tmp_path)
    assert f"{tmp_path}/fr/order_shipped.txt: 'trackin' is undefined" in problems
    assert f"{tmp_path}/en/order_returned.txt: 'only_in_a_branch' is undefined" in problems
    assert any(
        p.startswith(f"{tmp_path}/en/order_delivered.txt: ") and "numbr" in p for p in problems
    )
    assert any(p.startswith(f"{tmp_path}/en/order_cancelled.txt: line 3: ") for p in problems)
    assert len(problems) == 4


def test_packaged_templates_pass_the_check() -> None:
    assert check_templates(None) == []


def test_missing_override_folder_is_reported(tmp_path: Path) -> None:
    assert check_templates(tmp_path / "nope") == [
        f"{tmp_path / 'nope'}: templates folder does not exist"
    ]


def test_sandbox_blocks_unsafe_attributes(tmp_path: Path) -> None:
    write(tmp_path, "en/order_delivered.subject.txt", "{{ ''.__class__.__mro__ }}")
    renderer = BuiltinRenderer(tmp_path)
    with pytest.raises(SecurityError):
        renderer.render("order_delivered", context(full_order(), "en"), "en")
    problems = check_templates(tmp_path)
    assert len(problems) == 1
    assert problems[0].startswith(f"{tmp_path}/en/order_delivered.subject.txt: ")
    assert "unsafe" in problems[0]


def test_mapping_keys_win_over_dict_methods(tmp_path: Path) -> None:
    write(tmp_path, "en/order_delivered.txt", "{% for i in order.items %}{{ i.name }};{% endfor %}")
    rendered = BuiltinRenderer(tmp_path).render("order_delivered", context(full_order(), "en"))
    assert rendered is not None and rendered.text == "Mug;Gift card;E-book;"


# --- through the hook --------------------------------------------------------------------


def test_through_the_plugin_manager(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FULFIL_DISABLE_PLUGINS", "*")
    order = full_order()
    hooks = Hooks(make_plugin_manager())
    notice = Notice("merchant_new_order", "merchant", "email")
    rendered = hooks.render_notification(notice, order, "en", context(order, "en"))
    assert rendered is not None and rendered.subject == "[Maison Dupont], new order #1001"
    push = Notice("merchant_new_order", "merchant", "push")
    short = hooks.render_notification(push, order, "fr", context(order, "fr"))
    assert short is not None and short.html is None and "1 039,89 €" in short.text

    class Vip:
        @hookspecs.hookimpl(tryfirst=True)
        def fulfil_render_notification(self, notice: Notice) -> Rendered | None:
            return Rendered("VIP", "text") if notice.template == "order_shipped" else None

    hooks = Hooks(make_plugin_manager([Vip()]))
    shipped = Notice("order_shipped", "customer", "email")
    assert hooks.render_notification(shipped, order, "en", context(order, "en")) == Rendered(
        "VIP", "text"
    )
    assert hooks.render_notification(notice, order, "en", context(order, "en")) == rendered
