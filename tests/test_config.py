"""fulfil.toml: every problem at once, plugin settings checked, defaults from the schemas."""

from __future__ import annotations

import importlib
import tomllib
from pathlib import Path
from typing import Any

import attrs
import pluggy
import pytest
import tomli_w
from fulfil.core import hookimpl, hookspecs
from fulfil.core.carriers import Capability, CarrierPlugin
from fulfil.core.config import (
    EMBEDDED_SOURCE,
    Config,
    StoreSettings,
    WorkerSettings,
    config_problems,
    default_config_text,
    load_config,
)
from fulfil.core.errors import ConfigError, ValidationFailed
from fulfil.core.notifiers import NotifierPlugin
from fulfil.core.plugins import Registry
from fulfil.core.routing import Route
from fulfil.core.validation import load_schema

SANDBOX_SETTINGS = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "latency_ms": {"type": "number", "minimum": 0, "default": 0},
        "seed": {"type": "integer", "default": 0},
    },
}
ACME_SETTINGS = {
    "type": "object",
    "additionalProperties": False,
    "required": ["api_key"],
    "properties": {
        "api_key": {"type": "string", "pattern": "^[a-f0-9]{32}$"},
        "port": {"type": "integer", "default": 443},
        "region": {"enum": ["eu", "us"], "default": "eu"},
        "endpoint": {"type": "object", "default": {}, "properties": {"path": {"default": "/v2"}}},
    },
}


def make(settings: Any, context: Any) -> Any:
    raise NotImplementedError


class FakePlugins:
    """Stand-ins with the names of the built-in plugins, plus two more carriers."""

    @hookimpl
    def fulfil_register_carriers(self, register: Any) -> None:
        labels = {Capability.LABELS}
        register(
            CarrierPlugin(
                "sandbox",
                make,
                labels,
                {"*"},
                ("economy", "standard", "express"),
                settings_schema=SANDBOX_SETTINGS,
            )
        )
        register(CarrierPlugin("acme", make, labels, {"FR", "BE"}, settings_schema=ACME_SETTINGS))
        register(CarrierPlugin("usps", make, labels, {"US"}))

    @hookimpl
    def fulfil_register_notifiers(self, register: Any) -> None:
        for name, channel in (("maildir", "email"), ("sms_log", "sms"), ("push_log", "push")):
            register(NotifierPlugin(name, channel, make, settings_schema={"type": "object"}))


def registry_of(*plugins: object) -> Registry:
    pm = pluggy.PluginManager("fulfil")
    pm.add_hookspecs(hookspecs)
    for plugin in plugins:
        pm.register(plugin)
    return Registry(pm)


@pytest.fixture
def registry() -> Registry:
    return registry_of(FakePlugins())


@pytest.fixture
def real_registry() -> Registry:
    """The in-tree plugins, registered exactly as their entry points would be."""
    names = ["carriers.sandbox", "notifiers.maildir", "notifiers.jsonl"]
    try:
        modules = [importlib.import_module(f"fulfil.plugins.{name}") for name in names]
    except ImportError as exc:  # pragma: no cover - while a plugin is being written
        pytest.skip(f"in-tree plugin not importable: {exc}")
    return registry_of(*modules)


def default_data(**changes: Any) -> dict[str, Any]:
    data = tomllib.loads(default_config_text())
    data.update(changes)
    return data


def write(tmp_path: Path, data: dict[str, Any] | str, name: str = "fulfil.toml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else tomli_w.dumps(data), encoding="utf-8")
    return path


def reported(data: dict[str, Any], registry: Registry) -> list[str]:
    return [str(p) for p in config_problems(data, registry, "fulfil.toml")]


# --- the embedded default -------------------------------------------------------------------


def test_default_config_is_valid_with_the_real_plugins(
    real_registry: Registry, tmp_path: Path
) -> None:
    assert reported(default_data(), real_registry) == []
    config = load_config(None, real_registry, base_dir=tmp_path)
    assert config.source == EMBEDDED_SOURCE
    assert set(config.carriers) == {"sandbox"}
    assert set(config.notifiers) == {"maildir", "sms_log", "push_log"}


def test_default_config_describes_a_demo_store_in_paris(registry: Registry, tmp_path: Path) -> None:
    config = load_config(None, registry, base_dir=tmp_path)
    assert config.base_dir == tmp_path.resolve()
    assert config.store.name == "Demo Store"
    assert config.store.locale == "en"
    assert config.store.origin is not None
    assert (config.store.origin.city, config.store.origin.country) == ("Paris", "FR")
    assert config.database_url == f"sqlite:///{tmp_path.resolve() / 'fulfil.db'}"
    assert [(r.countries, r.route) for r in config.routing] == [
        (frozenset({"*"}), Route("sandbox", "standard"))
    ]
    assert config.worker == WorkerSettings()
    assert "#" in default_config_text()  # written for people: it explains itself


def test_the_embedded_default_is_relative_to_the_current_folder(
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_config(None, registry).base_dir == tmp_path.resolve()


# --- reading a file -------------------------------------------------------------------------


def test_a_file_is_read_and_its_paths_are_relative_to_its_folder(
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "shop"
    folder.mkdir()
    data = default_data(templates={"dir": "my-templates"})
    path = write(folder, data)
    monkeypatch.chdir(tmp_path)

    config = load_config(Path("shop/fulfil.toml"), registry)

    assert isinstance(config, Config)
    assert config.source == "shop/fulfil.toml"
    assert config.base_dir == folder.resolve()
    assert config.database_url == f"sqlite:///{folder.resolve() / 'fulfil.db'}"
    assert config.templates_dir == folder.resolve() / "my-templates"
    assert config.raw == tomllib.loads(path.read_text())


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:////var/lib/fulfil/fulfil.db",
        "sqlite://",
        "sqlite:///:memory:",
        "postgresql+psycopg://fulfil@db/fulfil",
    ],
)
def test_other_database_urls_are_kept(registry: Registry, tmp_path: Path, url: str) -> None:
    path = write(tmp_path, default_data(database={"url": url}))
    assert load_config(path, registry).database_url == url


def test_a_relative_sqlite_url_keeps_its_driver_and_query(
    registry: Registry, tmp_path: Path
) -> None:
    path = write(tmp_path, default_data(database={"url": "sqlite+pysqlite:///db/x.db?timeout=5"}))
    expected = f"sqlite+pysqlite:///{tmp_path.resolve() / 'db' / 'x.db'}?timeout=5"
    assert load_config(path, registry).database_url == expected


def test_a_toml_syntax_error_names_the_file_and_line(registry: Registry, tmp_path: Path) -> None:
    path = write(tmp_path, '[store]\nname = "Shop"\nlocale = en\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path, registry)
    assert str(caught.value).startswith(f"{path}: line 3, column 10: invalid TOML: ")


def test_a_missing_file(registry: Registry, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "nope.toml", registry)


def test_load_config_raises_every_problem_naming_the_file(
    registry: Registry, tmp_path: Path
) -> None:
    data = default_data()
    data["store"]["email"] = "merchant"
    data["worker"]["concurrency"] = 0
    data["carriers"]["ups"] = {"enabled": True}
    path = write(tmp_path, data)
    with pytest.raises(ValidationFailed) as caught:
        load_config(path, registry)
    assert [str(p) for p in caught.value.problems] == [
        f"{path}: carriers.ups: no carrier plugin named 'ups' is installed",
        f"{path}: store.email: 'merchant' is not a valid email address",
        f"{path}: worker.concurrency: 0 is less than the minimum of 1",
    ]


# --- each kind of problem -------------------------------------------------------------------


def test_schema_problems(registry: Registry) -> None:
    data = default_data()
    data["store"]["nmae"] = data["store"].pop("name")
    data["store"]["origin"]["country"] = "XX"
    data["store"]["phone"] = "+33 1 42 68 53 00"
    data["store"]["timezone"] = "Europe/Pariss"
    data["store"]["pickup"]["cutoff"] = "12h"
    data["database"] = {"url": "fulfil.db"}
    data["routing"][0]["country"] = ["FR", "XX"]
    data["worker"]["max_attempts"] = "8"
    data["automation"] = {"enabled": True}
    assert reported(data, registry) == [
        "fulfil.toml: automation: unknown field",
        "fulfil.toml: database.url: 'fulfil.db' is not a valid database URL (like "
        "sqlite:///fulfil.db)",
        "fulfil.toml: routing[0].country[1]: 'XX' is not an ISO 3166-1 alpha-2 country code",
        "fulfil.toml: store.name: required",
        "fulfil.toml: store.nmae: unknown field",
        "fulfil.toml: store.origin.country: 'XX' is not an ISO 3166-1 alpha-2 country code",
        "fulfil.toml: store.phone: '+33 1 42 68 53 00' is not a valid E.164 phone number",
        "fulfil.toml: store.pickup.cutoff: '12h' is not a valid time of day (HH:MM, 24-hour clock)",
        "fulfil.toml: store.timezone: 'Europe/Pariss' is not a valid IANA time zone name",
        "fulfil.toml: worker.max_attempts: expected an integer, got '8'",
    ]


@pytest.mark.parametrize("country", ["*", "FR", ["DE", "AT"]])
def test_routing_countries(registry: Registry, country: Any) -> None:
    data = default_data()
    data["routing"][0]["country"] = country
    assert reported(data, registry) == []


def test_a_store_section_is_required(registry: Registry) -> None:
    assert reported({}, registry) == ["fulfil.toml: store: required"]


def test_plugins_nobody_installed(registry: Registry) -> None:
    data = default_data()
    data["carriers"]["ups"] = {"enabled": False}
    data["notifiers"]["pigeon"] = {}
    assert reported(data, registry) == [
        "fulfil.toml: carriers.ups: no carrier plugin named 'ups' is installed",
        "fulfil.toml: notifiers.pigeon: no notifier plugin named 'pigeon' is installed",
    ]


def test_enabled_plugin_settings_are_checked_against_the_plugin_schema(
    registry: Registry,
) -> None:
    data = default_data()
    data["carriers"]["sandbox"]["settings"] = {"latency_ms": -1, "latencyms": 5}
    data["carriers"]["acme"] = {"settings": {"port": "443"}}
    assert reported(data, registry) == [
        "fulfil.toml: carriers.acme.settings.api_key: required",
        "fulfil.toml: carriers.acme.settings.port: expected an integer, got '443'",
        "fulfil.toml: carriers.sandbox.settings.latency_ms: -1 is less than the minimum of 0",
        "fulfil.toml: carriers.sandbox.settings.latencyms: unknown field",
    ]


def test_disabled_plugin_settings_are_not_checked(registry: Registry) -> None:
    data = default_data()
    data["carriers"]["acme"] = {"enabled": False, "settings": {"port": "443"}}
    assert reported(data, registry) == []


def test_a_secret_reference_is_accepted_where_a_string_is_expected(
    registry: Registry, tmp_path: Path
) -> None:
    data = default_data()
    data["carriers"]["acme"] = {"settings": {"api_key": "env:ACME_API_KEY"}}
    config = load_config(write(tmp_path, data), registry)
    # kept as a reference (resolved when the plugin is built), defaults filled around it
    assert config.carriers["acme"] == {
        "api_key": "env:ACME_API_KEY",
        "port": 443,
        "region": "eu",
        "endpoint": {"path": "/v2"},
    }


def test_a_secret_reference_does_not_make_a_number(registry: Registry) -> None:
    data = default_data()
    data["carriers"]["acme"] = {"settings": {"api_key": "env:ACME KEY", "port": "env:PORT"}}
    assert reported(data, registry) == [
        "fulfil.toml: carriers.acme.settings.api_key: 'env:ACME KEY' is not a secret "
        "reference like env:API_KEY",
        "fulfil.toml: carriers.acme.settings.port: expected an integer, got 'env:PORT'",
    ]


def test_a_literal_secret_still_has_to_fit_the_plugin_schema(registry: Registry) -> None:
    data = default_data()
    data["carriers"]["acme"] = {"settings": {"api_key": "hunter2"}}
    assert reported(data, registry) == [
        "fulfil.toml: carriers.acme.settings.api_key: 'hunter2' does not match the pattern "
        "^[a-f0-9]{32}$"
    ]


def test_routing_names_carriers_that_are_enabled_and_services_they_offer(
    registry: Registry,
) -> None:
    data = default_data()
    data["carriers"]["acme"] = {"settings": {"api_key": "0" * 32}}
    data["carriers"]["usps"] = {"enabled": False}
    data["routing"] = [
        {"country": "FR", "carrier": "acme", "service": "anything"},  # acme lists no services
        {"country": "US", "carrier": "easypost"},
        {"country": "CA", "carrier": "usps"},
        {"carrier": "sandbox", "service": "overnight", "fallback": {"carrier": "ups"}},
        {"carrier": "sandbox", "min_weight_g": 2000, "max_weight_g": 1000},
    ]
    assert reported(data, registry) == [
        "fulfil.toml: routing[1].carrier: carrier 'easypost' is not enabled",
        "fulfil.toml: routing[2].carrier: carrier 'usps' is not enabled",
        "fulfil.toml: routing[3].fallback.carrier: carrier 'ups' is not enabled",
        "fulfil.toml: routing[3].service: carrier 'sandbox' has no service 'overnight' "
        "(it has: economy, standard, express)",
        "fulfil.toml: routing[4].max_weight_g: 1000 is less than min_weight_g (2000)",
    ]


def test_an_origin_is_required_when_a_carrier_is_enabled(registry: Registry) -> None:
    data = default_data()
    del data["store"]["origin"]
    assert reported(data, registry) == [
        "fulfil.toml: store.origin: required when a carrier is enabled (sandbox)"
    ]
    data["carriers"]["sandbox"]["enabled"] = False
    data["routing"] = []
    assert reported(data, registry) == []


def test_a_carrier_must_ship_from_the_origin_country(registry: Registry) -> None:
    data = default_data()
    data["carriers"]["usps"] = {}
    assert reported(data, registry) == [
        "fulfil.toml: carriers.usps: carrier 'usps' does not ship from FR (store.origin); "
        "only from US"
    ]


def test_the_pickup_window_ends_after_it_starts(registry: Registry) -> None:
    data = default_data()
    data["store"]["pickup"] = {"window_start": "18:00", "window_end": "09:00"}
    assert reported(data, registry) == [
        "fulfil.toml: store.pickup.window_end: '09:00' is not later than window_start '18:00'"
    ]


def test_channels_asked_for_need_an_enabled_notifier(registry: Registry) -> None:
    data = default_data()
    data["notifiers"]["sms_log"]["enabled"] = False
    data["notifications"] = {
        "sms": True,
        "merchant_alert_channel": "webhook",
        "channels": {"order_delivered": ["email", "sms"], "order_shiped": ["email"]},
    }
    assert reported(data, registry) == [
        "fulfil.toml: notifications.channels.order_delivered[1]: no enabled notifier sends sms",
        "fulfil.toml: notifications.channels.order_shiped: unknown field; expected one of: "
        "'order_placed', 'merchant_new_order', 'digital_delivery', 'order_shipped', "
        "'ready_for_pickup', 'out_for_delivery', 'order_delivered', 'order_cancelled', "
        "'order_returned', 'order_refunded', 'merchant_status', 'label_failed'",
        "fulfil.toml: notifications.merchant_alert_channel: no enabled notifier sends webhook",
        "fulfil.toml: notifications.sms: no enabled notifier sends sms",
    ]


def test_a_broken_plugin_schema_is_reported_not_raised() -> None:
    class Broken:
        @hookimpl
        def fulfil_register_carriers(self, register: Any) -> None:
            register(CarrierPlugin("sandbox", make, set(), {"*"}, settings_schema={"type": 5}))

    data = default_data()
    data["notifiers"] = {}
    (problem,) = reported(data, registry_of(Broken()))
    assert problem.startswith(
        "fulfil.toml: carriers.sandbox.settings: the plugin declares an invalid settings schema"
    )


# --- what a Config holds --------------------------------------------------------------------


def test_only_enabled_plugins_reach_the_config(registry: Registry, tmp_path: Path) -> None:
    data = default_data()
    data["carriers"]["acme"] = {"enabled": False}
    data["notifiers"]["push_log"]["enabled"] = False
    config = load_config(write(tmp_path, data), registry)
    assert config.carriers == {"sandbox": {"latency_ms": 0, "seed": 0}}
    assert set(config.notifiers) == {"maildir", "sms_log"}


def test_defaults_are_filled_from_the_schema(registry: Registry, tmp_path: Path) -> None:
    data = {
        "store": {"name": "Shop"},
        "carriers": {"sandbox": {}},
        "routing": [{"carrier": "sandbox"}],
    }
    data["store"]["origin"] = default_data()["store"]["origin"]
    config = load_config(write(tmp_path, data), registry)
    assert config.store == StoreSettings(
        name="Shop", origin=config.store.origin, timezone="UTC", locale="en", currency="EUR"
    )
    assert (config.store.pickup_window_start, config.store.pickup_cutoff) == ("14:00", "12:00")
    assert config.store.auto_ship is True and config.store.allow_unpaid_fulfilment is False
    assert config.database_url == f"sqlite:///{tmp_path.resolve() / 'fulfil.db'}"
    assert config.routing[0].countries == frozenset({"*"})
    assert config.notifiers == {}
    assert config.notifications == {
        "merchant_copy": False,
        "merchant_status_copies": False,
        "sms": True,
        "push": True,
        "merchant_alert_channel": "email",
        "channels": {},
    }
    assert config.templates_dir is None
    assert config.worker == WorkerSettings(concurrency=8, lease_seconds=60, max_attempts=8)


def test_python_defaults_match_the_schema_defaults() -> None:
    properties = load_schema("config")["properties"]
    store, worker = properties["store"]["properties"], properties["worker"]["properties"]
    pickup = store["pickup"]["properties"]
    names = {
        "window_start": "pickup_window_start",
        "window_end": "pickup_window_end",
        "cutoff": "pickup_cutoff",
    }
    defaults = {f.name: f.default for f in attrs.fields(StoreSettings)}
    for key, schema in store.items():
        if "default" in schema and key != "pickup":
            assert defaults[key] == schema["default"], key
    for key, field in names.items():
        assert defaults[field] == pickup[key]["default"], key
    for field in attrs.fields(WorkerSettings):
        assert field.default == worker[field.name]["default"], field.name


def test_notifications_section_matches_the_policy_schema() -> None:
    try:
        from fulfil.core.notify.policy import DEFAULT_SETTINGS, NOTIFICATION_SETTINGS_SCHEMA
    except ImportError:  # pragma: no cover - while the policy is being written
        pytest.skip("fulfil.core.notify.policy is not importable")
    ours = load_schema("config")["properties"]["notifications"]["properties"]
    theirs = NOTIFICATION_SETTINGS_SCHEMA["properties"]
    assert set(ours) == set(theirs)
    for key in ours:
        assert ours[key].get("default") == theirs[key].get("default") == DEFAULT_SETTINGS[key]
        assert ours[key].get("enum") == theirs[key].get("enum"), key
    assert ours["channels"]["propertyNames"] == theirs["channels"]["propertyNames"]
    assert (
        ours["channels"]["additionalProperties"]["items"]["enum"]
        == (theirs["channels"]["additionalProperties"]["items"]["enum"])
    )
