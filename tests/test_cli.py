"""The command line as a user meets it: exit codes, messages, and an untouched store."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import order_data, read_maildir
from fulfil.core.cli import main


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(main, list(args), catch_exceptions=False)

    return run


def dump(db: Path) -> list[str]:
    """Every row of the store, to prove a failed command changed nothing."""
    with sqlite3.connect(db) as conn:
        lines = list(conn.iterdump())
    conn.close()
    return lines


def test_help_and_version(cli):
    assert cli("--help").exit_code == 0
    result = cli("--version")
    assert result.exit_code == 0 and "fulfil" in result.output


def test_usage_error_exits_2(cli):
    assert cli("orders", "show").exit_code == 2


def test_plugins_json_lists_the_builtins(cli):
    result = cli("plugins", "--json")
    assert result.exit_code == 0
    rows = {row["name"]: row for row in json.loads(result.output)}
    assert rows["sandbox"]["kind"] == "carrier"
    assert "labels" in rows["sandbox"]["capabilities"] and rows["sandbox"]["countries"]
    assert rows["maildir"]["channel"] == "email"
    assert rows["sms_log"]["channel"] == "sms" and rows["push_log"]["channel"] == "push"
    assert all(row["version"] for row in rows.values())


def test_orders_validate_names_every_problem(cli, tmp_path):
    bad = order_data(1)
    bad["items"][0]["quantity"] = -1
    del bad["customer"]["email"]
    bad["shipping_address"]["country"] = "XX"
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    result = cli("orders", "validate", "bad.json")
    assert result.exit_code == 1
    assert "items[0].quantity" in result.output and "minimum of 1" in result.output
    assert "customer.email" in result.output and "required" in result.output
    assert "shipping_address.country" in result.output and "'XX'" in result.output


def test_init_writes_a_config_that_validates(cli):
    assert cli("init").exit_code == 0
    assert cli("config", "validate", "fulfil.toml").exit_code == 0
    assert cli("init").exit_code == 1  # never overwrites without --force


def test_corrupt_config_is_a_clear_error(cli, tmp_path):
    (tmp_path / "fulfil.toml").write_text("[store\nname = 'x'")
    result = cli("orders", "list")
    assert result.exit_code == 1 and "fulfil.toml" in result.output


def test_import_skips_invalid_orders_and_keeps_valid_ones(cli, tmp_path):
    cli("init")
    bad = order_data(2)
    bad["items"][0]["quantity"] = 0
    (tmp_path / "orders.json").write_text(json.dumps([order_data(1), bad, order_data(3)]))
    result = cli("import", "orders.json")
    assert result.exit_code == 1  # something was skipped: say so in the exit status too
    assert "[1].items[0].quantity" in result.output
    listed = json.loads(cli("orders", "list", "--json").output)
    assert [o["id"] for o in listed] == ["ord_1", "ord_3"]


def test_failed_commands_leave_the_store_unchanged(cli, tmp_path):
    cli("init")
    (tmp_path / "orders.json").write_text(json.dumps([order_data(1)]))
    assert cli("import", "orders.json").exit_code == 0
    before = dump(tmp_path / "fulfil.db")

    unknown = cli("pay", "ord_404")
    assert unknown.exit_code == 1 and "ord_404" in unknown.output
    illegal = cli("mark", "delivered", "ord_1")
    assert illegal.exit_code == 1
    assert "AWAITING_PROCESSING" in illegal.output and "DELIVERED" in illegal.output
    bulk = cli("ship", "ord_1", "ord_404")
    assert bulk.exit_code == 1
    (tmp_path / "more.json").write_text("{not json")
    broken = cli("import", "more.json")
    assert broken.exit_code == 1 and "more.json" in broken.output

    assert dump(tmp_path / "fulfil.db") == before


def test_pay_run_show(cli, tmp_path):
    cli("init")
    (tmp_path / "orders.json").write_text(json.dumps([order_data(1, locale="en")]))
    cli("import", "orders.json")
    assert cli("pay", "ord_1").exit_code == 0
    result = cli("run")
    assert result.exit_code == 0 and "labels bought" in result.output
    shown = json.loads(cli("orders", "show", "ord_1", "--json").output)
    assert shown["order"]["fulfilment_status"] == "SHIPPED"
    assert [label["status"] for label in shown["labels"]] == ["bought"]
    assert {m["status"] for m in shown["messages"]} == {"done"}
    assert cli("note", "ord_1", "gift wrap please").exit_code == 0
    assert "gift wrap please" in cli("orders", "show", "ord_1").output


def test_demo_runs_the_whole_pipeline(cli, tmp_path):
    result = cli("demo", "--out", "demo", "--orders", "12")
    assert result.exit_code == 0, result.output
    out = tmp_path / "demo"
    config = str(out / "fulfil.toml")
    orders = json.loads(cli("--config", config, "orders", "list", "--json").output)
    shipped = [o for o in orders if o["fulfilment_status"] == "SHIPPED"]
    details = [
        json.loads(cli("--config", config, "orders", "show", o["id"], "--json").output)
        for o in shipped
    ]
    parcels = [s for d in details for s in d["order"]["shipments"]]
    labels = sorted((out / "labels").glob("*.pdf"))
    assert len(labels) == len(parcels) > 0
    assert all(p.read_bytes().startswith(b"%PDF") for p in labels)
    assert len({s["pickup_id"] for s in parcels}) == 1  # one carrier, one day: one pickup

    mails = read_maildir(out / "mail")
    subjects = [m["Subject"] for m in mails]
    for o in orders:
        assert f"[Demo Store], new order #{o['number']}" in subjects
    by_order = {}
    for m in mails:
        by_order.setdefault(m["X-Fulfil-Order-Id"], []).append(m)
    for d in details:
        customer = d["order"]["customer"]
        events = {
            m["X-Fulfil-Event"] for m in by_order[d["order"]["id"]] if m["To"] == customer["email"]
        }
        assert {"order_placed", "order_shipped"} <= events
        if customer.get("locale", "").startswith("fr"):
            texts = [
                m.get_body(("plain",)).get_content()
                for m in by_order[d["order"]["id"]]
                if m["To"] == customer["email"]
            ]
            assert all("commande" in t for t in texts)
    statuses = {o["id"]: o["fulfilment_status"] for o in orders}
    assert statuses["ord_1000"] == statuses["ord_1001"] == "DELIVERED"  # digital, gift card
    bodies = " ".join(
        m.get_body(("plain",)).get_content() for m in by_order["ord_1000"] + by_order["ord_1001"]
    )
    assert "https://downloads.example.com/brewing-guide.pdf" in bodies and "GIFT-" in bodies


def test_config_validate_reports_a_template_with_an_unknown_variable(cli, tmp_path):
    cli("init")
    folder = tmp_path / "templates" / "fr"
    folder.mkdir(parents=True)
    (folder / "order_shipped.txt").write_text("Suivi : {{ trackin_number }}\n")
    with (tmp_path / "fulfil.toml").open("a") as config:
        config.write('\n[templates]\ndir = "templates"\n')
    result = cli("config", "validate", "fulfil.toml")
    assert result.exit_code == 1
    assert "order_shipped.txt" in result.output and "trackin_number" in result.output
