"""Input validation at the boundary: JSON Schema (2020-12), every problem, readable.

The bundled schemas (``order``, ``config``) are read from the ``fulfil.schemas`` package
with ``importlib.resources`` the first time they are needed, then cached. A report lists
*every* problem, sorted by path, each naming where (``[0].items[0].quantity``) and why in
words a merchant understands: a missing property is reported at the missing property's
path as ``required``, a property the schema does not know as ``unknown field``, and a value
outside a long enum (countries, currencies) by the enum's ``title`` instead of the list.

Formats checked: ``email``, ``date-time`` (RFC 3339, readable by ``datetime.fromisoformat``),
``uri``, ``e164`` (a *valid* number per ``phonenumbers``) and ``iana-time-zone``, plus the
ones jsonschema checks itself with what is installed.
"""

from __future__ import annotations

import copy
import json
import re
import zoneinfo
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import attrs
import jsonschema_rs
import phonenumbers
from fulfil.core.errors import Problem, ValidationFailed
from fulfil.core.models import Order
from fulfil.core.secrets import PREFIX as SECRET_PREFIX
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError, best_match

__all__ = [
    "Issue",
    "JsonPath",
    "fill_defaults",
    "format_checker",
    "format_path",
    "load_json",
    "load_schema",
    "problems",
    "schema_issues",
    "to_problems",
    "validate_orders",
]

JsonPath = tuple[str | int, ...]
Issue = tuple[JsonPath, str]  # where (a path inside the document) and why

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$")
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
_URI_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*$")

# What a format is called in a message when the schema gives no ``title``.
_FORMAT_NAMES = {
    "email": "email address",
    "date-time": "RFC 3339 date-time (like 2024-05-01T09:30:00Z)",
    "uri": "URI",
    "e164": "E.164 phone number",
    "iana-time-zone": "IANA time zone name",
}
# Checks a secret reference cannot pass before it is resolved, so they are not applied.
_STRING_CONTENT = frozenset({"pattern", "format", "minLength", "maxLength", "enum", "const"})
_TYPE_NAMES = {"object": "an object", "array": "an array", "integer": "an integer"}


# --- schemas ----------------------------------------------------------------------------


@cache
def load_schema(name: str) -> Mapping[str, Any]:
    """The bundled schema ``schemas/<name>.schema.json``; treat it as read-only."""
    text = resources.files("fulfil.schemas").joinpath(f"{name}.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@cache
def format_checker() -> FormatChecker:
    """jsonschema's checker with fulfil's stricter and additional formats."""
    checker = FormatChecker()
    for name, check in _FORMATS.items():
        checker.checks(name)(check)
    return checker


@cache
def _bundled_validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(load_schema(name), format_checker=format_checker())


def _is_email(instance: object) -> bool:
    return not isinstance(instance, str) or (
        len(instance) <= 254 and _EMAIL.match(instance) is not None
    )


def _is_date_time(instance: object) -> bool:
    if not isinstance(instance, str):
        return True
    if not _DATE_TIME.match(instance):
        return False
    try:  # what Order.from_mapping will do with it
        datetime.fromisoformat(instance)
    except ValueError:
        return False
    return True


def _is_uri(instance: object) -> bool:
    if not isinstance(instance, str):
        return True
    if not instance or any(c.isspace() for c in instance):
        return False
    try:
        parts = urlsplit(instance)
    except ValueError:
        return False
    if not _URI_SCHEME.match(parts.scheme):
        return False
    if parts.scheme.lower() in ("http", "https"):
        return bool(parts.hostname)
    return bool(parts.netloc or parts.path)


def _is_e164(instance: object) -> bool:
    if not isinstance(instance, str):
        return True
    if not _E164.match(instance):
        return False
    try:
        number = phonenumbers.parse(instance, None)
    except phonenumbers.NumberParseException:
        return False
    return bool(phonenumbers.is_valid_number(number))


def _is_time_zone(instance: object) -> bool:
    if not isinstance(instance, str):
        return True
    try:
        zoneinfo.ZoneInfo(instance)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        # Without a time zone database nothing can be checked; do not reject everything.
        return not _have_time_zone_database()
    return True


@cache
def _have_time_zone_database() -> bool:
    return bool(zoneinfo.available_timezones())


# --- reports ----------------------------------------------------------------------------


# The formats fulfil checks itself; both validators below use these same functions.
_FORMATS = {
    "email": _is_email,
    "date-time": _is_date_time,
    "uri": _is_uri,
    "e164": _is_e164,
    "iana-time-zone": _is_time_zone,
}


@cache
def _compiled_validator(name: str) -> jsonschema_rs.Validator:
    """The same schema and formats, compiled (jsonschema-rs): a yes/no answer, ~50x faster.

    Only a "valid" is taken from it; for anything else jsonschema's own verdict and its
    explained errors stand, so the two can only differ in speed, never in what passes.
    """
    return jsonschema_rs.Draft202012Validator(
        dict(load_schema(name)), formats=_FORMATS, validate_formats=True
    )


def _plainly_valid(name: str, instance: Any) -> bool:
    try:
        return bool(_compiled_validator(name).is_valid(instance))
    except Exception:  # a value it cannot convert: let jsonschema judge it
        return False


def problems(
    instance: Any, schema: Mapping[str, Any], source: str, *, at: JsonPath = ()
) -> list[Problem]:
    """Every way ``instance`` breaks ``schema``, sorted by path, as ``Problem``s.

    ``source`` names the input (a file name); ``at`` prefixes every path, for a document
    that sits inside a larger one.
    """
    return to_problems(source, schema_issues(instance, schema, at=at))


def schema_issues(
    instance: Any,
    schema: Mapping[str, Any],
    *,
    at: JsonPath = (),
    allow_secret_refs: bool = False,
) -> list[Issue]:
    """Like ``problems`` but as ``(path, reason)`` pairs, for callers that add their own.

    ``allow_secret_refs``: an ``env:NAME`` string passes wherever a string is expected
    (its pattern, format, length or enum apply to the secret, which is not known yet).
    """
    validator = Draft202012Validator(schema, format_checker=format_checker())
    return _issues(validator, instance, at, allow_secret_refs)


def to_problems(source: str, issues: Iterable[Issue]) -> list[Problem]:
    """Sort issues by path (indexes numerically) and name the source on each."""
    ordered = sorted(set(issues), key=lambda issue: (_path_key(issue[0]), issue[1]))
    return [Problem(source, format_path(path), reason) for path, reason in ordered]


def format_path(path: Iterable[str | int]) -> str:
    """``("items", 0, "quantity")`` -> ``items[0].quantity``; ``()`` -> ``""``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _IDENTIFIER.match(part):
            text += f".{part}" if text else part
        else:
            text += f"[{json.dumps(part)}]"
    return text


def _path_key(path: JsonPath) -> tuple[tuple[bool, str | int], ...]:
    return tuple((isinstance(part, str), part) for part in path)


def _issues(
    validator: Draft202012Validator, instance: Any, at: JsonPath, allow_secret_refs: bool
) -> list[Issue]:
    found: set[Issue] = set()
    for error in validator.iter_errors(instance):
        found.update(_explain(error, at, allow_secret_refs))
    return sorted(found, key=lambda issue: (_path_key(issue[0]), issue[1]))


def _explain(error: ValidationError, at: JsonPath, allow_secret_refs: bool) -> Iterator[Issue]:
    path: JsonPath = at + tuple(error.absolute_path)
    kind, instance = error.validator, error.instance
    value: Any = error.validator_value
    if (
        allow_secret_refs
        and kind in _STRING_CONTENT
        and isinstance(instance, str)
        and instance.startswith(SECRET_PREFIX)
    ):
        return
    if kind == "required" and isinstance(instance, Mapping):
        for name in value:
            if name not in instance:
                yield path + (name,), "required"
    elif kind == "additionalProperties" and value is False and isinstance(instance, Mapping):
        schema = error.schema if isinstance(error.schema, Mapping) else {}
        known = schema.get("properties", {})
        patterns = schema.get("patternProperties", {})
        for name in instance:
            if name not in known and not any(re.search(p, name) for p in patterns):
                yield path + (name,), "unknown field"
    elif "propertyNames" in error.relative_schema_path and isinstance(instance, str):
        expected = f"; expected one of: {_list(value)}" if kind == "enum" else ""
        yield path + (instance,), f"unknown field{expected}"
    elif kind in ("anyOf", "oneOf") and error.context:
        # The branch whose type fits says most: "0 is less than the minimum of 1" rather
        # than "expected a string".
        fitting = [e for e in error.context if e.validator != "type"] or error.context
        yield from _explain(best_match(fitting), at, allow_secret_refs)
    else:
        yield path, _reason(error)


def _reason(error: ValidationError) -> str:
    kind, instance = error.validator, error.instance
    value: Any = error.validator_value
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    title = schema.get("title")
    if kind == "type":
        wanted = [value] if isinstance(value, str) else list(value)
        return f"expected {' or '.join(_a(t) for t in wanted)}, got {_show(instance)}"
    if kind == "enum":
        if title:
            return f"{_show(instance)} is not {_article(title)} {title}"
        return f"{_show(instance)} is not one of: {_list(value)}"
    if kind in ("pattern", "format"):
        name = title or (_FORMAT_NAMES.get(value, value) if kind == "format" else None)
        if name:
            return f"{_show(instance)} is not a valid {name}"
        return f"{_show(instance)} does not match the pattern {value}"
    if kind == "const":
        return f"must be {_show(value)}"
    if kind in ("minLength", "minItems") and value == 1:
        return "must not be empty"
    if kind == "minLength":
        return f"must be at least {value} characters long"
    if kind == "maxLength":
        return f"must be at most {value} characters long"
    if kind == "minItems":
        return f"must have at least {value} items"
    if kind == "maxItems" and value == 0:
        return "must be empty"
    if kind == "maxItems":
        return f"must have at most {value} items"
    if kind == "uniqueItems":
        return "must not contain the same value twice"
    message = str(error.message)
    return message if len(message) <= 200 else message[:197] + "..."


def _show(value: Any) -> str:
    """A value as a message shows it: short, and JSON's words for null and booleans."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "an array"
    text = repr(value)
    return text if len(text) <= 60 else text[:56] + "...'"


def _list(values: Iterable[Any], limit: int = 12) -> str:
    shown = [_show(v) for v in values]
    more = f", ... ({len(shown) - limit} more)" if len(shown) > limit else ""
    return ", ".join(shown[:limit]) + more


def _a(type_name: str) -> str:
    return _TYPE_NAMES.get(type_name, f"{_article(type_name)} {type_name}")


def _article(noun: str) -> str:
    return "an" if noun[:1].lower() in "aeio" else "a"


# --- defaults ---------------------------------------------------------------------------

_MISSING = object()


def fill_defaults(instance: Any, schema: Mapping[str, Any]) -> Any:
    """A deep copy of ``instance`` with the schema's ``default`` values filled in.

    Follows ``properties``, ``additionalProperties``, ``items``, ``allOf`` and local
    ``$ref``s. A missing object with a default (usually ``{}``) is created and filled in
    turn. Meant for input that passed validation; values of the wrong type are left alone.
    """
    return _fill(copy.deepcopy(instance), schema, schema)


def _fill(instance: Any, schema: Mapping[str, Any], root: Mapping[str, Any]) -> Any:
    target = _local_ref(schema, root)
    if target is not None:
        instance = _fill(instance, target, root)
    for part in schema.get("allOf", ()):
        instance = _fill(instance, part, root)
    if isinstance(instance, dict):
        properties: Mapping[str, Any] = schema.get("properties", {})
        for name, sub in properties.items():
            if name not in instance:
                default = _default(sub, root)
                if default is _MISSING:
                    continue
                instance[name] = copy.deepcopy(default)
            instance[name] = _fill(instance[name], sub, root)
        extra = schema.get("additionalProperties")
        if isinstance(extra, Mapping):
            patterns = schema.get("patternProperties", {})
            for name in instance:
                if name not in properties and not any(re.search(p, name) for p in patterns):
                    instance[name] = _fill(instance[name], extra, root)
    elif isinstance(instance, list) and isinstance(schema.get("items"), Mapping):
        instance = [_fill(item, schema["items"], root) for item in instance]
    return instance


def _default(schema: Mapping[str, Any], root: Mapping[str, Any]) -> Any:
    if "default" in schema:
        return schema["default"]
    target = _local_ref(schema, root)
    return _MISSING if target is None else _default(target, root)


def _local_ref(schema: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any] | None:
    ref = schema.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#"):
        return None
    node: Any = root
    for token in ref[1:].split("/")[1:]:
        token = token.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, Mapping) or token not in node:
            return None
        node = node[token]
    return node if isinstance(node, Mapping) else None


# --- orders -----------------------------------------------------------------------------


def load_json(path: Path | str) -> Any:
    """Parse a JSON file; a syntax error raises ``ValidationFailed`` naming line and column."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ValidationFailed([Problem(source, "", "no such file")]) from None
    except UnicodeDecodeError as exc:
        raise ValidationFailed(
            [Problem(source, "", f"not UTF-8 text (byte {exc.start} cannot be decoded)")]
        ) from None
    except OSError as exc:
        raise ValidationFailed([Problem(source, "", f"cannot read: {exc.strerror}")]) from None
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise ValidationFailed([Problem(source, where, f"invalid JSON: {exc.msg}")]) from None
    except _NotJson as exc:
        raise ValidationFailed([Problem(source, _locate(text, exc.token), str(exc))]) from None


class _NotJson(ValueError):
    def __init__(self, token: str) -> None:
        self.token = token
        super().__init__(f"invalid JSON: {token} is not a JSON number")


def _reject_constant(token: str) -> Any:
    # Python's json accepts NaN and Infinity; an amount of NaN would pass "minimum: 0".
    raise _NotJson(token)


def _locate(text: str, token: str) -> str:
    index = text.find(token)
    if index < 0:
        return ""
    line = text.count("\n", 0, index) + 1
    return f"line {line}, column {index - (text.rfind(chr(10), 0, index) + 1) + 1}"


def validate_orders(
    data: Any, source: str, *, start: int = 0, first_seen: dict[str, JsonPath] | None = None
) -> tuple[list[Order], list[Problem]]:
    """Validate one order (an object) or a list of them; build the valid ones.

    Returns the orders that passed and the problems of those that did not, so an import
    can take the good ones and report the rest. Paths of a list start with ``[i]``; a
    single object's paths have no prefix. An order id seen earlier in the same input is a
    problem of the later order (an export listing an order twice imports it once).

    A large file is validated in chunks: ``start`` is the index of the chunk's first order
    and ``first_seen`` carries the ids met in earlier chunks.
    """
    entries: list[tuple[JsonPath, Any]]
    if isinstance(data, Mapping):
        entries = [((), data)]
    elif isinstance(data, list):
        entries = [((start + i,), entry) for i, entry in enumerate(data)]
    else:
        reason = f"expected an order (an object) or a list of orders, got {_show(data)}"
        return [], [Problem(source, "", reason)]
    validator = _bundled_validator("order")
    first_seen = {} if first_seen is None else first_seen
    orders: list[Order] = []
    issues: list[Issue] = []
    for at, entry in entries:
        found = [] if _plainly_valid("order", entry) else _issues(validator, entry, at, False)
        found += _duplicate_id(entry, at, first_seen)
        if not found:
            found += _currency_issues(entry, at)
        if not found:
            try:
                orders.append(Order.from_mapping(entry))
            except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
                found.append((at, f"cannot be read: {exc}"))
        issues += found
    return orders, to_problems(source, issues)


def _duplicate_id(entry: Any, at: JsonPath, first_seen: dict[str, JsonPath]) -> list[Issue]:
    order_id = entry.get("id") if isinstance(entry, Mapping) else None
    if not isinstance(order_id, str):
        return []
    if order_id in first_seen:
        first = format_path(first_seen[order_id])
        return [(at + ("id",), f"duplicate order id {order_id!r} (first at {first})")]
    first_seen[order_id] = at
    return []


def _currency_issues(entry: Mapping[str, Any], at: JsonPath) -> list[Issue]:
    """Every amount must be in the order's currency, or its totals cannot be added up."""
    currency = entry.get("currency", attrs.fields(Order).currency.default)
    amounts: list[tuple[JsonPath, Any]] = [
        (("items", i, "unit_price"), item["unit_price"]) for i, item in enumerate(entry["items"])
    ]
    price = entry.get("shipping", {}).get("price")
    if price is not None:
        amounts.append((("shipping", "price"), price))
    return [
        (
            at + where + ("currency",),
            f"{money['currency']!r} is not the order's currency {currency!r}",
        )
        for where, money in amounts
        if money["currency"] != currency
    ]
