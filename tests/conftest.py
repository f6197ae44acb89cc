"""Shared fixtures: a real config file, a real SQLite store, the real plugins."""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from fulfil.core.config import Config, default_config_text, load_config
from fulfil.core.engine import Engine
from fulfil.core.plugins import Hooks, make_plugin_manager


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    """Write the default config merged with overrides into tmp_path/fulfil.toml."""

    def write(overrides: dict[str, Any] | None = None, name: str = "fulfil.toml") -> Path:
        data = deep_merge(tomllib.loads(default_config_text()), overrides or {})
        path = tmp_path / name
        path.write_text(tomli_w.dumps(data), encoding="utf-8")
        return path

    return write


@pytest.fixture
def load(tmp_path: Path) -> Callable[[Path], Config]:
    def load(path: Path) -> Config:
        return load_config(path, Hooks(make_plugin_manager()).registry)

    return load


@pytest.fixture
def make_engine(write_config: Callable[..., Path]) -> Iterator[Callable[..., Engine]]:
    engines: list[Engine] = []

    def make(
        overrides: dict[str, Any] | None = None, plugins: tuple[object, ...] = (), **kwargs: Any
    ) -> Engine:
        pm = make_plugin_manager(plugins)
        config = load_config(write_config(overrides), Hooks(pm).registry)
        engine = Engine(config, pm=pm, **kwargs)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.close()


def order_data(
    number: int = 1001,
    *,
    country: str = "FR",
    locale: str | None = "fr",
    kind: str = "physical",
    fulfilment: str = "shipping",
    postal_code: str = "75004",
    phone: str | None = None,
    quantity: int = 1,
    weight_g: int = 500,
) -> dict[str, Any]:
    """A valid order mapping (as an order file holds it)."""
    line: dict[str, Any] = {
        "sku": f"SKU-{kind}",
        "name": {"physical": "Mug", "digital": "Guide (PDF)", "gift_card": "Gift card"}[kind],
        "quantity": quantity,
        "unit_price": {"amount": "20.00", "currency": "EUR"},
        "weight_g": weight_g if kind == "physical" else 0,
        "kind": kind,
    }
    if kind == "digital":
        line["download_url"] = "https://downloads.example.com/guide.pdf"
    if kind == "gift_card":
        line["gift_card_code"] = "GIFT-1234-ABCD"
    address = {
        "name": "Camille Martin",
        "line1": "12 rue de Rivoli",
        "city": "Paris",
        "postal_code": postal_code,
        "country": country,
    }
    customer: dict[str, Any] = {"name": "Camille Martin", "email": f"c{number}@example.com"}
    if locale:
        customer["locale"] = locale
    if phone:
        customer["phone"] = phone
    data: dict[str, Any] = {
        "id": f"ord_{number}",
        "number": number,
        "created_at": "2026-11-02T09:00:00+00:00",
        "customer": customer,
        "billing_address": address,
        "items": [line],
        "shipping": {"type": fulfilment},
        "currency": "EUR",
    }
    if kind == "physical":
        data["shipping_address"] = address
    return data


def read_maildir(path: Path) -> list[Any]:
    """Every message in a Maildir, parsed as a mail client would."""
    import email
    import email.policy

    files = sorted([*path.glob("new/*"), *path.glob("cur/*")])
    return [email.message_from_bytes(f.read_bytes(), policy=email.policy.default) for f in files]
