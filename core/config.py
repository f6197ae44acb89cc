"""The merchant's configuration: ``fulfil.toml`` read, checked as a whole, made typed.

``load_config`` parses the TOML, reports every problem at once (``config_problems``: the
JSON Schema ``schemas/config.schema.json``, plugin names nobody installed, each enabled
plugin's settings against the schema that plugin declares, routing rules naming a carrier
that is not enabled or a service it does not offer, an origin address when a carrier
needs one) and only then builds a ``Config``. Defaults declared by the schemas (``default``
keywords, in fulfil's schema and in each plugin's) are filled in, so there is one place a
default is written. ``env:NAME`` secret references stay strings here: they are resolved
(``fulfil.core.secrets``) when a plugin is built, not when the file is read.

``default_config_text()`` is both the embedded default (what ``fulfil demo`` runs on) and
what ``fulfil init`` writes.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
from fulfil.core.errors import ConfigError, Problem, ValidationFailed
from fulfil.core.models import Address
from fulfil.core.routing import Rule
from fulfil.core.secrets import PREFIX as SECRET_PREFIX
from fulfil.core.validation import (
    Issue,
    JsonPath,
    fill_defaults,
    load_schema,
    schema_issues,
    to_problems,
)
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

if TYPE_CHECKING:
    from fulfil.core.carriers import CarrierPlugin
    from fulfil.core.notifiers import NotifierPlugin
    from fulfil.core.plugins import Registry

__all__ = [
    "EMBEDDED_SOURCE",
    "Config",
    "StoreSettings",
    "WorkerSettings",
    "config_problems",
    "default_config_text",
    "load_config",
]

EMBEDDED_SOURCE = "<embedded default>"

_TOML_POSITION = re.compile(
    r"^(?P<msg>.*?)\s*\(at (?P<where>line \d+, column \d+|end of document)\)$"
)
_SQLITE_URL = re.compile(r"^(?P<scheme>sqlite(\+\w+)?):///(?P<rest>.*)$", re.DOTALL)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TIME = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")


@attrs.frozen
class StoreSettings:
    name: str
    locale: str = "en"
    currency: str = "EUR"
    email: str | None = None  # the merchant's
    phone: str | None = None  # E.164
    timezone: str = "UTC"  # IANA; pickup windows and cut-off are local times there
    origin: Address | None = None
    pickup_window_start: str = "14:00"
    pickup_window_end: str = "18:00"
    pickup_cutoff: str = "12:00"
    allow_unpaid_fulfilment: bool = False
    auto_ship: bool = True  # SHIPPED once every parcel has a label and a booked (or no) pickup

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> StoreSettings:
        """From a validated ``[store]`` table; keys left out keep their defaults."""
        plain = ("locale", "currency", "email", "phone", "timezone")
        flags = ("allow_unpaid_fulfilment", "auto_ship")
        kwargs: dict[str, Any] = {key: data[key] for key in plain + flags if key in data}
        pickup = data.get("pickup", {})
        for key, field in (
            ("window_start", "pickup_window_start"),
            ("window_end", "pickup_window_end"),
            ("cutoff", "pickup_cutoff"),
        ):
            if key in pickup:
                kwargs[field] = pickup[key]
        origin = data.get("origin")
        return cls(
            name=data["name"],
            origin=Address.from_mapping(origin) if origin else None,
            **kwargs,
        )


@attrs.frozen
class WorkerSettings:
    concurrency: int = 8
    processes: int = 1
    lease_seconds: int = 60
    max_attempts: int = 8
    batch_size: int = 100

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> WorkerSettings:
        names = [field.name for field in attrs.fields(cls)]
        return cls(**{name: int(data[name]) for name in names if name in data})


@attrs.frozen
class Config:
    """A validated configuration. Mappings hold plain data; treat them as read-only."""

    source: str  # the file read, or EMBEDDED_SOURCE
    base_dir: Path  # relative paths in the config are relative to it
    store: StoreSettings
    database_url: str  # a relative SQLite path already made absolute against base_dir
    carriers: Mapping[str, Mapping[str, Any]]  # enabled only: name -> settings (defaults in)
    rate_limits: Mapping[str, float]  # carrier -> requests a second, where the config sets one
    dropoff: frozenset[str]  # carriers whose pickups the merchant turned off (drops off)
    routing: tuple[Rule, ...]
    notifiers: Mapping[str, Mapping[str, Any]]  # enabled only: name -> settings
    notifications: Mapping[str, Any]  # the [notifications] table, defaults in
    templates_dir: Path | None
    worker: WorkerSettings
    raw: Mapping[str, Any]  # the file as parsed, before defaults


def load_config(path: Path | None, registry: Registry, *, base_dir: Path | None = None) -> Config:
    """Read, check and build the configuration.

    ``path=None`` loads the embedded default, relative to ``base_dir`` (or the current
    folder). Otherwise relative paths in the file are relative to ``base_dir`` or, by
    default, the file's folder.

    Raises ``ConfigError`` when the file cannot be read or is not TOML (naming the line),
    and ``ValidationFailed`` with every problem when it breaks a rule.
    """
    if path is None:
        source, text = EMBEDDED_SOURCE, default_config_text()
        folder = base_dir or Path.cwd()
    else:
        path = Path(path)
        source, text = str(path), _read(path)
        folder = base_dir or path.parent
    data = _parse(text, source)
    found = config_problems(data, registry, source)
    if found:
        raise ValidationFailed(found)
    return _build(data, registry, source, folder.resolve())


def config_problems(data: Any, registry: Registry, source: str) -> list[Problem]:
    """Every problem of a parsed configuration, sorted by path; empty when it is sound."""
    schema = load_schema("config")
    issues = schema_issues(data, schema)
    if isinstance(data, Mapping):
        filled = fill_defaults(data, schema)
        carriers = _enabled(filled.get("carriers"), registry.carriers)
        notifiers = _enabled(filled.get("notifiers"), registry.notifiers)
        issues += _plugin_issues("carrier", filled.get("carriers"), registry.carriers)
        issues += _plugin_issues("notifier", filled.get("notifiers"), registry.notifiers)
        issues += _routing_issues(filled.get("routing"), carriers)
        issues += _store_issues(_table(filled.get("store")), carriers)
        issues += _notification_issues(_table(data.get("notifications")), notifiers)
    return to_problems(source, issues)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None


def _parse(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = _TOML_POSITION.match(str(exc))
        if match is None:
            raise ConfigError(f"{source}: invalid TOML: {exc}") from None
        message = f"{source}: {match['where']}: invalid TOML: {match['msg']}"
        raise ConfigError(message) from None


def _build(data: Mapping[str, Any], registry: Registry, source: str, base_dir: Path) -> Config:
    filled = fill_defaults(data, load_schema("config"))

    def settings(section: str, plugins: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
        return {
            name: fill_defaults(table["settings"], plugins[name].settings_schema)
            for name, table in filled[section].items()
            if table["enabled"]
        }

    templates = filled["templates"].get("dir")
    return Config(
        source=source,
        base_dir=base_dir,
        store=StoreSettings.from_mapping(filled["store"]),
        database_url=_absolute_sqlite_url(filled["database"]["url"], base_dir),
        carriers=settings("carriers", registry.carriers),
        dropoff=frozenset(
            name
            for name, table in filled["carriers"].items()
            if table["enabled"] and not table.get("pickups", True)
        ),
        rate_limits={
            name: float(table["rate_limit"])
            for name, table in filled["carriers"].items()
            if table["enabled"] and "rate_limit" in table
        },
        routing=tuple(Rule.from_mapping(rule) for rule in filled["routing"]),
        notifiers=settings("notifiers", registry.notifiers),
        notifications=filled["notifications"],
        templates_dir=_under(base_dir, templates) if templates else None,
        worker=WorkerSettings.from_mapping(filled["worker"]),
        raw=data,
    )


def _under(base_dir: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base_dir / path


def _absolute_sqlite_url(url: str, base_dir: Path) -> str:
    """``sqlite:///fulfil.db`` -> ``sqlite:////<base_dir>/fulfil.db``; other URLs as they are."""
    match = _SQLITE_URL.match(url)
    if match is None:
        return url
    path, sep, query = match["rest"].partition("?")
    if not path or path == ":memory:" or path.startswith("file:"):
        return url
    return f"{match['scheme']}:///{_under(base_dir, path)}{sep}{query}"


# --- checks beyond the schema -------------------------------------------------------------
# They run on input that may have broken the schema, so every access checks the type.


def _table(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _enabled(sections: Any, installed: Mapping[str, Any]) -> dict[str, Any]:
    """The installed plugins a config section enables, by name."""
    return {
        name: installed[name]
        for name, table in _table(sections).items()
        if name in installed and isinstance(table, Mapping) and table.get("enabled", True) is True
    }


def _plugin_issues(kind: str, sections: Any, installed: Mapping[str, Any]) -> Iterator[Issue]:
    for name, table in _table(sections).items():
        at: JsonPath = (f"{kind}s", name)
        plugin = installed.get(name)
        if plugin is None:
            yield at, f"no {kind} plugin named {name!r} is installed"
            continue
        if not isinstance(table, Mapping):
            continue  # the schema reported it
        settings = table.get("settings", {})
        if table.get("enabled", True) is True and isinstance(settings, Mapping):
            yield from _settings_issues(plugin.settings_schema, settings, at + ("settings",))


def _settings_issues(
    schema: Mapping[str, Any], settings: Mapping[str, Any], at: JsonPath
) -> Iterator[Issue]:
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:  # the plugin's bug, but the merchant must see it somewhere
        yield at, f"the plugin declares an invalid settings schema: {exc.message}"
        return
    yield from schema_issues(settings, schema, at=at, allow_secret_refs=True)
    yield from _secret_reference_issues(settings, at)


def _secret_reference_issues(value: Any, at: JsonPath) -> Iterator[Issue]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _secret_reference_issues(item, at + (key,))
    elif (
        isinstance(value, str)
        and value.startswith(SECRET_PREFIX)
        and not _ENV_NAME.match(value[len(SECRET_PREFIX) :])
    ):
        yield at, f"{value!r} is not a secret reference like env:API_KEY"


def _routing_issues(rules: Any, carriers: Mapping[str, CarrierPlugin]) -> Iterator[Issue]:
    for i, rule in enumerate(rules if isinstance(rules, list) else []):
        if not isinstance(rule, Mapping):
            continue
        at: JsonPath = ("routing", i)
        yield from _route_issues(rule, at, carriers)
        fallback = rule.get("fallback")
        if isinstance(fallback, Mapping):
            yield from _route_issues(fallback, at + ("fallback",), carriers)
        low, high = rule.get("min_weight_g"), rule.get("max_weight_g")
        if type(low) is int and type(high) is int and low > high:
            yield at + ("max_weight_g",), f"{high} is less than min_weight_g ({low})"


def _route_issues(
    route: Mapping[str, Any], at: JsonPath, carriers: Mapping[str, CarrierPlugin]
) -> Iterator[Issue]:
    carrier, service = route.get("carrier"), route.get("service")
    if not isinstance(carrier, str):
        return
    plugin = carriers.get(carrier)
    if plugin is None:
        yield at + ("carrier",), f"carrier {carrier!r} is not enabled"
    elif isinstance(service, str) and plugin.services and service not in plugin.services:
        offered = ", ".join(plugin.services)
        yield (
            at + ("service",),
            f"carrier {carrier!r} has no service {service!r} (it has: {offered})",
        )


def _store_issues(
    store: Mapping[str, Any], carriers: Mapping[str, CarrierPlugin]
) -> Iterator[Issue]:
    origin = store.get("origin")
    if carriers and origin is None:
        names = ", ".join(sorted(carriers))
        yield ("store", "origin"), f"required when a carrier is enabled ({names})"
    country = _table(origin).get("country")
    if isinstance(country, str):
        for name, plugin in carriers.items():
            if plugin.countries and not plugin.ships_from(country):
                where = ", ".join(sorted(plugin.countries))
                yield (
                    ("carriers", name),
                    f"carrier {name!r} does not ship from {country} (store.origin); "
                    f"only from {where}",
                )
    pickup = _table(store.get("pickup"))
    start: Any = pickup.get("window_start")
    end: Any = pickup.get("window_end")
    valid = all(isinstance(t, str) and _TIME.match(t) for t in (start, end))
    if valid and end <= start:  # zero-padded HH:MM compares as text
        yield ("store", "pickup", "window_end"), f"{end!r} is not later than window_start {start!r}"


def _notification_issues(
    notifications: Mapping[str, Any], notifiers: Mapping[str, NotifierPlugin]
) -> Iterator[Issue]:
    """A channel the merchant asked for explicitly needs an enabled notifier sending on it."""
    at: JsonPath = ("notifications",)
    asked: list[tuple[JsonPath, Any]] = [
        (at + (key,), key) for key in ("sms", "push") if notifications.get(key) is True
    ]
    asked.append((at + ("merchant_alert_channel",), notifications.get("merchant_alert_channel")))
    for template, channels in _table(notifications.get("channels")).items():
        if isinstance(channels, list):
            asked += [(at + ("channels", template, j), c) for j, c in enumerate(channels)]
    senders = {str(plugin.channel) for plugin in notifiers.values()}
    known = ("email", "sms", "push", "webhook")
    for path, channel in asked:
        if channel in known and channel not in senders:
            yield path, f"no enabled notifier sends {channel}"


# --- the embedded default -----------------------------------------------------------------


def default_config_text() -> str:
    """The commented ``fulfil.toml`` that ``fulfil init`` writes and ``fulfil demo`` runs."""
    return _DEFAULT_CONFIG


_DEFAULT_CONFIG = """\
# fulfil.toml: the configuration of one store.
#
# Check it with `fulfil config validate`; an error names the line or the setting and why.
# Relative paths are relative to this file's folder. Never write a password or API key
# here: write a reference such as "env:SENDCLOUD_SECRET" and set that environment variable.

[store]
name = "Demo Store"
locale = "en"                         # language of messages when the customer's is unknown
currency = "EUR"
email = "merchant@demo-store.example" # new-order emails and alerts go here
phone = "+33142685300"
timezone = "Europe/Paris"             # pickup windows and cut-off are local times here
allow_unpaid_fulfilment = false       # true: process orders before payment (cash on delivery)
auto_ship = true                      # SHIPPED once every parcel has a label and pickup

# Where parcels leave from: the sender on every label, and where carriers collect them.
[store.origin]
name = "Demo Store"
line1 = "12 rue de Rivoli"
city = "Paris"
postal_code = "75004"
country = "FR"
phone = "+33142685300"

# When carriers collect parcels; labels ready by the cut-off leave the same day.
[store.pickup]
window_start = "14:00"
window_end = "18:00"
cutoff = "12:00"

[database]
# SQLite next to this file. When several machines share the work, use PostgreSQL:
# url = "postgresql+psycopg://fulfil@db.internal/fulfil"
url = "sqlite:///fulfil.db"

# Carriers. `fulfil plugins` lists the installed ones; a [carriers.<name>] section
# enables one, and its settings are checked against what that plugin declares.
# The sandbox carrier works offline and makes real PDF labels.
[carriers.sandbox]
enabled = true

[carriers.sandbox.settings]
# latency_ms = 200     # answer every request after this many milliseconds
# fail_5xx = 0.05      # inject faults, to watch retries and reconciliation at work

# A real carrier, for instance:
# [carriers.sendcloud]
# enabled = true
# [carriers.sendcloud.settings]
# public_key = "env:SENDCLOUD_PUBLIC_KEY"
# secret_key = "env:SENDCLOUD_SECRET_KEY"

# Routing: rules are tried in order and the first that matches a shipment decides its
# carrier and service. A rule may match the destination country (a code, a list of codes
# or "*" for any), min_weight_g / max_weight_g and fulfilment_type, and name a fallback
# used when its carrier fails. Put specific rules before the catch-all, for instance:
# [[routing]]
# country = ["DE", "AT"]
# max_weight_g = 2000
# carrier = "sendcloud"
# service = "dhl_parcel"
# fallback = { carrier = "sandbox", service = "standard" }

[[routing]]
country = "*"
carrier = "sandbox"
service = "standard"

# Notifiers: where messages go. These three write files you can open: a Maildir of the
# emails, and JSON-lines logs of the SMS and push messages.
[notifiers.maildir]
enabled = true

[notifiers.sms_log]
enabled = true

[notifiers.push_log]
enabled = true

# Which messages are sent (these are the defaults):
# [notifications]
# merchant_copy = false            # copy the merchant on customers' order confirmations
# merchant_status_copies = false   # tell the merchant about deliveries, returns, refunds
# sms = true                       # send SMS at all
# push = true                      # send push messages at all
# merchant_alert_channel = "email" # where "label purchase failed" alerts go
# [notifications.channels]         # a template's channels, replacing its defaults
# order_delivered = ["email", "sms"]

# Your own message templates, overriding the built-in ones:
# [templates]
# dir = "templates"

# Background processing (`fulfil worker`, `fulfil run`).
[worker]
concurrency = 8        # jobs (labels, messages) at once, per process
processes = 1          # processes `fulfil run` and `fulfil demo` work in (one core each)
lease_seconds = 60     # a killed worker's jobs are taken up again after this
max_attempts = 8       # attempts of a failing job before it is dead-lettered
batch_size = 100       # jobs claimed at a time
"""
