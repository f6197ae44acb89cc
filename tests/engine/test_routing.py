"""Issue 4 acceptance: per-country routing to three real adapters, each label bought once.

FR goes to Sendcloud, US to EasyPost and GB to Shippo, each pointed at its loopback fake
through ``base_url``; `fulfil run` buys every label through the right adapter exactly once,
proved from the fake servers' own records of what they sold.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from conftest import order_data
from fulfil.core.cli import main
from fulfil.testing.fakes.easypost import FakeEasyPost
from fulfil.testing.fakes.sendcloud import SendcloudFake
from fulfil.testing.fakes.shippo import FakeShippo

EASYPOST_KEY = "EZTK-routing-test-key"


@pytest.fixture
def fakes():
    with (
        SendcloudFake() as sendcloud,
        FakeEasyPost(api_key=EASYPOST_KEY) as easypost,
        FakeShippo() as shippo,
    ):
        yield sendcloud, easypost, shippo


def test_fulfil_run_buys_each_label_once_through_the_routed_adapter(
    fakes, write_config, tmp_path, monkeypatch
):
    sendcloud, easypost, shippo = fakes
    monkeypatch.setenv("SC_PUBLIC", sendcloud.PUBLIC_KEY)
    monkeypatch.setenv("SC_SECRET", sendcloud.SECRET_KEY)
    monkeypatch.setenv("EASYPOST_API_KEY", EASYPOST_KEY)
    monkeypatch.setenv("SHIPPO_API_TOKEN", shippo.token)
    config = write_config(
        {
            "carriers": {
                "sendcloud": {
                    "settings": {
                        "public_key": "env:SC_PUBLIC",
                        "secret_key": "env:SC_SECRET",
                        "base_url": sendcloud.url + "/api/v3",
                        "pickup_timezone": "Europe/Paris",
                    }
                },
                "easypost": {
                    "settings": {
                        "api_key": "env:EASYPOST_API_KEY",
                        "base_url": easypost.url + "/v2",
                    }
                },
                "shippo": {
                    "settings": {
                        "api_token": "env:SHIPPO_API_TOKEN",
                        "base_url": shippo.url,
                        "carrier_account": "ca_dhl_express",
                        "servicelevel": "dhl_express_worldwide",
                        "pickup_timezone": "Europe/Paris",
                    }
                },
            },
            "routing": [
                {"country": "FR", "carrier": "sendcloud", "service": "postnl:standard"},
                {"country": "US", "carrier": "easypost"},
                {"country": "GB", "carrier": "shippo"},
            ],
        }
    )
    destinations = {"FR": "75004", "US": "10118", "GB": "NW1 6XE"}
    orders = [
        order_data(3000 + n, country=country, postal_code=postal, locale="en")
        for n, (country, postal) in enumerate(list(destinations.items()) * 3)
    ]
    (tmp_path / "orders.json").write_text(json.dumps(orders))
    cli = CliRunner()

    def fulfil(*args: str):
        result = cli.invoke(main, ["--config", str(config), *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    assert cli.invoke(main, ["config", "validate", str(config)]).exit_code == 0
    fulfil("import", str(tmp_path / "orders.json"))
    fulfil("pay", *[o["id"] for o in orders])
    fulfil("run")

    expected = {
        country: sorted(
            f"{o['id']}:{o['id']}-1:1"
            for o in orders
            if o["shipping_address"]["country"] == country
        )
        for country in destinations
    }
    assert sorted(sendcloud.sold) == expected["FR"]
    assert sorted(sale.reference for sale in easypost.sold) == expected["US"]
    assert sorted(t["metadata"] for t in shippo.sold) == expected["GB"]
    shown = [json.loads(fulfil("orders", "show", o["id"], "--json")) for o in orders]
    carriers = {
        s["order"]["shipping_address"]["country"]: {
            sh["label"]["carrier"] for sh in s["order"]["shipments"]
        }
        for s in shown
    }
    assert carriers == {"FR": {"sendcloud"}, "US": {"easypost"}, "GB": {"shippo"}}


def test_config_validate_rejects_a_rule_for_a_carrier_that_is_not_enabled(write_config):
    config = write_config({"routing": [{"country": "US", "carrier": "easypost"}]})
    result = CliRunner().invoke(main, ["config", "validate", str(config)])
    assert result.exit_code == 1
    assert "routing[0].carrier" in result.output and "not enabled" in result.output
