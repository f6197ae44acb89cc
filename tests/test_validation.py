"""Order files and schemas: every problem reported, where and why, in plain words."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fulfil.core.errors import ValidationFailed
from fulfil.core.models import Order
from fulfil.core.states import PaymentStatus
from fulfil.core.validation import (
    fill_defaults,
    format_path,
    load_json,
    load_schema,
    problems,
    validate_orders,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

SCHEMAS = ["order", "config"]


def an_order(n: int = 1, **changes: Any) -> dict[str, Any]:
    address = {
        "name": "Camille Martin",
        "line1": "12 rue de Rivoli",
        "city": "Paris",
        "postal_code": "75004",
        "country": "FR",
    }
    order = {
        "id": f"ord_{n}",
        "number": n,
        "created_at": "2026-11-02T09:00:00Z",
        "customer": {"name": "Camille Martin", "email": "camille@example.com", "locale": "fr"},
        "shipping_address": address,
        "items": [
            {
                "sku": "MUG",
                "name": "Mug",
                "quantity": 2,
                "unit_price": {"amount": "12.50", "currency": "EUR"},
                "weight_g": 400,
            }
        ],
        "shipping": {"type": "shipping", "price": {"amount": 4.9, "currency": "EUR"}},
        "currency": "EUR",
    }
    order.update(changes)
    return order


def write(tmp_path: Path, data: Any, name: str = "orders.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return path


def texts(found: list[Any]) -> list[str]:
    return [str(p) for p in found]


def check(data: Any) -> list[str]:
    return texts(validate_orders(data, "o.json")[1])


# --- the schemas themselves -----------------------------------------------------------------


def walk(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from walk(value, f"{path}/{i}")


@pytest.mark.parametrize("name", SCHEMAS)
def test_schema_is_valid_2020_12(name: str) -> None:
    schema = load_schema(name)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"]


@pytest.mark.parametrize("name", SCHEMAS)
def test_every_property_is_described_and_objects_are_closed(name: str) -> None:
    for path, node in walk(load_schema(name)):
        if isinstance(node, dict) and isinstance(node.get("properties"), dict):
            if "/if" in path:  # conditions only look at values; they declare nothing
                continue
            assert node.get("additionalProperties") is False, path
            for key, sub in node["properties"].items():
                assert sub.get("description"), f"{path}/properties/{key}"


def test_iso_code_lists_are_complete_and_shared() -> None:
    order, config = load_schema("order")["$defs"], load_schema("config")["$defs"]
    countries, currencies = order["country"]["enum"], order["currency"]["enum"]
    assert len(countries) == len(set(countries)) == 249
    assert {"FR", "DE", "US", "GB", "AQ", "SS"} <= set(countries)
    assert "XK" not in countries and "UK" not in countries  # not officially assigned
    assert {"EUR", "USD", "GBP", "JPY", "CHF"} <= set(currencies)
    assert "HRK" not in currencies  # withdrawn in 2023
    for shared in ("country", "currency", "phone", "locale", "email", "address"):
        assert order[shared] == config[shared], shared


def test_payment_status_enum_matches_the_model() -> None:
    enum = load_schema("order")["properties"]["payment_status"]["enum"]
    assert enum == [s.value for s in PaymentStatus]


def test_schema_defaults_match_the_model() -> None:
    properties = load_schema("order")["properties"]
    order = Order.from_mapping(an_order())
    assert properties["currency"]["default"] == "EUR"
    assert properties["store"]["default"] == order.store
    assert properties["notify_customer"]["default"] is order.notify_customer


# --- the acceptance case --------------------------------------------------------------------


def test_three_problems_reported_at_their_paths(tmp_path: Path) -> None:
    order = an_order()
    order["items"][0]["quantity"] = -1
    del order["customer"]["email"]
    order["shipping_address"]["country"] = "XX"
    path = write(tmp_path, [order])

    orders, found = validate_orders(load_json(path), "orders.json")

    assert orders == []
    assert texts(found) == [
        "orders.json: [0].customer.email: required",
        "orders.json: [0].items[0].quantity: -1 is less than the minimum of 1",
        "orders.json: [0].shipping_address.country: 'XX' is not an ISO 3166-1 alpha-2 country code",
    ]
    assert [(p.source, p.path) for p in found] == [
        ("orders.json", "[0].customer.email"),
        ("orders.json", "[0].items[0].quantity"),
        ("orders.json", "[0].shipping_address.country"),
    ]


def test_a_single_order_has_no_index_prefix(tmp_path: Path) -> None:
    order = an_order()
    order["customer"]["emial"] = order["customer"].pop("email")
    orders, found = validate_orders(load_json(write(tmp_path, order)), "order.json")
    assert orders == []
    assert texts(found) == [
        "order.json: customer.email: required",
        "order.json: customer.emial: unknown field",
    ]


def test_valid_orders_are_kept_and_invalid_ones_reported(tmp_path: Path) -> None:
    bad = an_order(2, number=0)
    data = [an_order(1), bad, an_order(3), an_order(4, created_at="yesterday")]
    orders, found = validate_orders(load_json(write(tmp_path, data)), "orders.json")
    assert [o.id for o in orders] == ["ord_1", "ord_3"]
    assert all(isinstance(o, Order) for o in orders)
    assert texts(found) == [
        "orders.json: [1].number: 0 is less than the minimum of 1",
        "orders.json: [3].created_at: 'yesterday' is not a valid RFC 3339 date-time "
        "(like 2024-05-01T09:30:00Z)",
    ]


def test_a_valid_order_is_built_faithfully() -> None:
    (order,), found = validate_orders(an_order(), "o.json")
    assert found == []
    assert order.items[0].quantity == 2
    assert str(order.items[0].unit_price.amount) == "12.50"
    assert order.shipping_address is not None and order.shipping_address.country == "FR"
    assert str(order.total.amount) == "29.90"


def test_every_problem_is_reported_sorted_with_indexes_in_numeric_order() -> None:
    data = [an_order(i + 1) for i in range(12)]
    for i in (10, 2):
        data[i]["items"][0]["quantity"] = 0
        data[i]["customer"]["phone"] = "0612345678"
    found = check(data)
    assert found == [
        "o.json: [2].customer.phone: '0612345678' is not a valid E.164 phone number",
        "o.json: [2].items[0].quantity: 0 is less than the minimum of 1",
        "o.json: [10].customer.phone: '0612345678' is not a valid E.164 phone number",
        "o.json: [10].items[0].quantity: 0 is less than the minimum of 1",
    ]


def test_duplicate_ids_in_one_file_are_a_problem_of_the_later_order() -> None:
    orders, found = validate_orders([an_order(1), an_order(2), an_order(1)], "o.json")
    assert [o.id for o in orders] == ["ord_1", "ord_2"]
    assert texts(found) == ["o.json: [2].id: duplicate order id 'ord_1' (first at [0])"]


@pytest.mark.parametrize("data", ["orders", 42, None, True])
def test_input_that_is_neither_an_order_nor_a_list(data: Any) -> None:
    orders, found = validate_orders(data, "o.json")
    assert orders == []
    assert len(found) == 1
    assert "expected an order (an object) or a list of orders" in str(found[0])


def test_an_empty_list_is_nothing_to_import() -> None:
    assert validate_orders([], "o.json") == ([], [])


# --- JSON files -----------------------------------------------------------------------------


def test_malformed_json_names_the_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "orders.json"
    path.write_text('[\n  {"id": "a",\n   "number": 1,,\n  }\n]\n', encoding="utf-8")
    with pytest.raises(ValidationFailed) as caught:
        load_json(path)
    (problem,) = caught.value.problems
    assert problem.source == str(path)
    assert problem.path == "line 3, column 16"
    assert str(problem).startswith(f"{path}: line 3, column 16: invalid JSON: ")


def test_nan_is_not_json(tmp_path: Path) -> None:
    path = tmp_path / "orders.json"
    path.write_text('{"amount":\n NaN}', encoding="utf-8")
    with pytest.raises(ValidationFailed) as caught:
        load_json(path)
    assert str(caught.value) == f"{path}: line 2, column 2: invalid JSON: NaN is not a JSON number"


def test_a_missing_or_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ValidationFailed, match="no such file"):
        load_json(tmp_path / "nope.json")
    (tmp_path / "latin1.json").write_bytes('{"name": "Cr\xe8me"}'.encode("latin-1"))
    with pytest.raises(ValidationFailed, match="not UTF-8"):
        load_json(tmp_path / "latin1.json")


def test_a_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "orders.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(an_order()).encode())
    assert load_json(path)["id"] == "ord_1"


# --- rules of the order schema --------------------------------------------------------------


def test_phone_numbers_must_be_valid_e164_numbers() -> None:
    assert check(an_order(customer={**an_order()["customer"], "phone": "+33612345678"})) == []
    for bad in ("+33 6 12 34 56 78", "+3300000", "0612345678"):
        customer = {**an_order()["customer"], "phone": bad}
        assert check(an_order(customer=customer)) == [
            f"o.json: customer.phone: {bad!r} is not a valid E.164 phone number"
        ]


def test_digital_and_gift_card_lines_need_their_link_or_code() -> None:
    price = {"amount": "10", "currency": "EUR"}
    items = [
        {"sku": "E", "name": "E-book", "quantity": 1, "unit_price": price, "kind": "digital"},
        {"sku": "G", "name": "Gift", "quantity": 1, "unit_price": price, "kind": "gift_card"},
        {
            "sku": "L",
            "name": "Link",
            "quantity": 1,
            "unit_price": price,
            "kind": "digital",
            "download_url": "not a url",
        },
    ]
    assert check(an_order(items=items)) == [
        "o.json: items[0].download_url: required",
        "o.json: items[1].gift_card_code: required",
        "o.json: items[2].download_url: 'not a url' is not a valid URI",
    ]
    items[0]["download_url"] = "https://downloads.example.com/e-book.pdf"
    items[1]["gift_card_code"] = "GIFT-1234"
    items[2]["download_url"] = "https://downloads.example.com/link"
    assert check(an_order(items=items)) == []


def test_a_shipped_order_needs_a_shipping_address() -> None:
    order = an_order()
    del order["shipping_address"]
    assert check(order) == ["o.json: shipping_address: required"]
    del order["shipping"]  # shipping by carrier is the default
    assert check(order) == ["o.json: shipping_address: required"]
    assert check({**order, "shipping": {"type": "local_delivery"}}) == [
        "o.json: shipping_address: required"
    ]
    assert check({**order, "shipping": {"type": "pickup"}}) == []


def test_a_digital_only_order_needs_no_shipping_address() -> None:
    order = an_order()
    del order["shipping_address"]
    order["items"][0].update(kind="digital", download_url="https://example.com/d", weight_g=0)
    assert check(order) == []


def test_amounts_are_decimal_strings_or_numbers_never_negative() -> None:
    def with_amount(amount: Any) -> dict[str, Any]:
        order = an_order()
        order["items"][0]["unit_price"]["amount"] = amount
        return order

    assert check(with_amount("0")) == []
    assert check(with_amount(3)) == []
    assert check(with_amount(-1)) == [
        "o.json: items[0].unit_price.amount: -1 is less than the minimum of 0"
    ]
    assert check(with_amount("-1.00")) == [
        "o.json: items[0].unit_price.amount: '-1.00' is not a valid non-negative decimal "
        'amount (like "12.50")'
    ]
    assert check(with_amount(None)) == [
        "o.json: items[0].unit_price.amount: expected a string or a number, got null"
    ]


def test_every_amount_is_in_the_order_currency() -> None:
    order = an_order()
    order["items"][0]["unit_price"]["currency"] = "USD"
    assert check(order) == [
        "o.json: items[0].unit_price.currency: 'USD' is not the order's currency 'EUR'"
    ]
    assert check(an_order(currency="EURO")) == [
        "o.json: currency: 'EURO' is not an ISO 4217 currency code"
    ]


@pytest.mark.parametrize(
    "created_at", ["2026-11-02T09:00:00", "2026-11-02", "2026-13-02T09:00:00Z", "soon"]
)
def test_created_at_is_an_rfc3339_date_time_with_offset(created_at: str) -> None:
    (problem,) = check(an_order(created_at=created_at))
    assert problem.startswith("o.json: created_at: ")
    assert "is not a valid RFC 3339 date-time" in problem


def test_wrong_types_say_what_was_expected() -> None:
    order = an_order(number="7", items=[], notify_customer="yes")
    assert check(order) == [
        "o.json: items: must not be empty",
        "o.json: notify_customer: expected a boolean, got 'yes'",
        "o.json: number: expected an integer, got '7'",
    ]


def test_small_enums_list_their_values() -> None:
    order = an_order()
    order["items"][0]["kind"] = "service"
    assert check(order) == [
        "o.json: items[0].kind: 'service' is not one of: 'physical', 'digital', 'gift_card'"
    ]


def test_an_exported_new_order_imports_again() -> None:
    (order,), _ = validate_orders(an_order(), "o.json")
    again, found = validate_orders(order.to_mapping(), "o.json")
    assert found == [] and again == [order]


def test_an_order_that_went_further_is_not_a_new_order() -> None:
    (order,), _ = validate_orders(an_order(), "o.json")
    data = order.to_mapping()
    data.update(version=3, fulfilment_status="SHIPPED", notes=[{"text": "x"}])
    assert check(data) == [
        "o.json: fulfilment_status: must be 'AWAITING_PROCESSING'",
        "o.json: notes: must be empty",
        "o.json: version: must be 0",
    ]


# --- the building blocks --------------------------------------------------------------------


def test_format_path() -> None:
    assert format_path(()) == ""
    assert format_path((0, "items", 0, "quantity")) == "[0].items[0].quantity"
    assert format_path(("carriers", "my-carrier", "settings")) == "carriers.my-carrier.settings"
    assert format_path(("channels", "a.b")) == 'channels["a.b"]'


def test_problems_with_a_prefix_and_a_plugin_schema() -> None:
    schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["api_key"],
        "properties": {"api_key": {"type": "string"}, "latency_ms": {"minimum": 0}},
    }
    found = problems({"latency_ms": -1, "x": 1}, schema, "f.toml", at=("carriers", "acme"))
    assert texts(found) == [
        "f.toml: carriers.acme.api_key: required",
        "f.toml: carriers.acme.latency_ms: -1 is less than the minimum of 0",
        "f.toml: carriers.acme.x: unknown field",
    ]


def test_one_of_reports_the_closest_branch() -> None:
    schema = {"oneOf": [{"type": "integer", "minimum": 1}, {"type": "string", "minLength": 3}]}
    assert texts(problems(0, schema, "s")) == ["s: (top level): 0 is less than the minimum of 1"]


def test_fill_defaults_follows_refs_and_creates_defaulted_objects() -> None:
    schema = {
        "type": "object",
        "properties": {
            "worker": {"$ref": "#/$defs/worker", "default": {}},
            "plugins": {"additionalProperties": {"$ref": "#/$defs/section"}},
            "rules": {"items": {"properties": {"country": {"default": "*"}}}},
        },
        "$defs": {
            "worker": {"properties": {"concurrency": {"default": 8}}},
            "section": {"properties": {"enabled": {"default": True}}},
        },
    }
    data = {"plugins": {"a": {}, "b": {"enabled": False}}, "rules": [{}, {"country": "FR"}]}
    original = copy.deepcopy(data)
    assert fill_defaults(data, schema) == {
        "worker": {"concurrency": 8},
        "plugins": {"a": {"enabled": True}, "b": {"enabled": False}},
        "rules": [{"country": "*"}, {"country": "FR"}],
    }
    assert data == original


def _paths(value: Any, at: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield at
    if isinstance(value, dict | list):
        children = value.items() if isinstance(value, dict) else enumerate(value)
        for key, child in children:
            yield from _paths(child, (*at, key))


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_the_compiled_check_never_passes_what_jsonschema_refuses(data: st.DataObject) -> None:
    """validate_orders takes a "valid" from jsonschema-rs to skip jsonschema: it must never
    pass an order that jsonschema (whose errors are the ones reported) would refuse."""
    from fulfil.core.validation import _bundled_validator, _plainly_valid

    order = an_order(3, billing_address=None, customer={"name": "A", "email": "a@b.example"})
    order = json.loads(json.dumps(order))
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from([p for p in _paths(order) if p]))
        *parents, last = path
        parent = order
        for key in parents:
            parent = parent[key]
        if data.draw(st.booleans()) and isinstance(parent, dict):
            del parent[last]
        else:
            parent[last] = data.draw(_JSON_VALUES)
    if _plainly_valid("order", order):
        assert list(_bundled_validator("order").iter_errors(order)) == []


def test_the_compiled_check_passes_a_valid_order_and_uses_fulfils_formats() -> None:
    from fulfil.core.validation import _plainly_valid

    assert _plainly_valid("order", an_order())
    # "a@b" is an address to jsonschema-rs's own email format, not to fulfil's.
    customer = {"name": "A", "email": "a@b"}
    assert not _plainly_valid("order", an_order(customer=customer))
    assert validate_orders(an_order(customer=customer), "x")[1][0].path == "customer.email"
