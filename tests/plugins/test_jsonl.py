"""The JSON-lines SMS and push sinks: one line per message, once per dedupe key."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import jsonschema
import pluggy
import pytest
from fulfil.core import hookspecs
from fulfil.core.context import PluginContext
from fulfil.core.errors import NotifierError
from fulfil.core.notifiers import Message, NotifierPlugin
from fulfil.core.plugins import Hooks, make_plugin_manager
from fulfil.plugins.notifiers import jsonl
from fulfil.plugins.notifiers.jsonl import JsonlNotifier


def sms(key: str = "o1:v3:order_shipped:customer:sms", to: str = "+33612345678") -> Message:
    return Message(
        dedupe_key=key,
        channel="sms",
        audience="customer",
        event="order_shipped",
        order_id="o1",
        to=to,
        subject="Votre commande n° 1001 a été expédiée",
        text="Maison Dupont : votre commande n° 1001 a été expédiée.",
    )


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_appends_one_object_per_message(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "sms.jsonl"
    notifier = JsonlNotifier(path, "sms", "sms_log")
    first = notifier.send(sms())
    notifier.send(sms("o2:v1:ready_for_pickup:customer:sms"))
    rows = lines(path)
    assert [r["dedupe_key"] for r in rows] == [
        "o1:v3:order_shipped:customer:sms",
        "o2:v1:ready_for_pickup:customer:sms",
    ]
    assert set(rows[0]) == {
        "dedupe_key", "channel", "to", "subject", "text",
        "order_id", "event", "audience", "sent_at",
    }  # fmt: skip
    assert rows[0]["channel"] == "sms" and rows[0]["audience"] == "customer"
    assert rows[0]["text"] == "Maison Dupont : votre commande n° 1001 a été expédiée."
    assert str(rows[0]["sent_at"]).endswith("+00:00")
    assert "expédiée" in path.read_text(encoding="utf-8")  # readable, not \\u-escaped
    assert first.provider_id == "sms.jsonl:1"


def test_same_key_is_logged_once(tmp_path: Path) -> None:
    path = tmp_path / "sms.jsonl"
    JsonlNotifier(path, "sms").send(sms())
    again = JsonlNotifier(path, "sms").send(sms())  # a fresh process reads the file
    same = JsonlNotifier(path, "sms")
    same.send(sms("other"))
    assert same.send(sms()).detail == "already logged"
    assert again.detail == "already logged" and again.provider_id == "sms.jsonl:1"
    assert len(lines(path)) == 2


def test_reads_only_what_others_appended(tmp_path: Path) -> None:
    path = tmp_path / "push.jsonl"
    a, b = JsonlNotifier(path, "push"), JsonlNotifier(path, "push")
    a.send(sms("k1", to="device-token"))
    b.send(sms("k2", to="device-token"))
    assert a.send(sms("k2", to="device-token")).detail == "already logged"
    assert a._offset == path.stat().st_size  # caught up to the end, line by line
    assert len(lines(path)) == 2


def test_a_torn_last_line_is_closed_and_ignored(tmp_path: Path) -> None:
    path = tmp_path / "sms.jsonl"
    JsonlNotifier(path, "sms").send(sms("k1"))
    with path.open("ab") as file:
        file.write(b'{"dedupe_key": "k2", "chan')  # a writer killed mid-line
    notifier = JsonlNotifier(path, "sms")
    notifier.send(sms("k2"))
    raw = path.read_text(encoding="utf-8").splitlines()
    assert len(raw) == 3 and json.loads(raw[2])["dedupe_key"] == "k2"
    assert notifier.send(sms("k2")).detail == "already logged"


def test_a_replaced_file_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "sms.jsonl"
    notifier = JsonlNotifier(path, "sms")
    notifier.send(sms("k1"))
    path.unlink()  # rotated away
    notifier.send(sms("k1"))
    assert [r["dedupe_key"] for r in lines(path)] == ["k1"]


def test_two_processes_log_each_key_once(tmp_path: Path) -> None:
    path = tmp_path / "sms.jsonl"
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from fulfil.core.notifiers import Message\n"
        "from fulfil.plugins.notifiers.jsonl import JsonlNotifier\n"
        "n = JsonlNotifier(Path(sys.argv[1]), 'sms')\n"
        "for i in range(200):\n"
        "    n.send(Message(f'o{i}:v1:order_shipped:customer:sms', 'sms', 'customer',\n"
        "                   'order_shipped', f'o{i}', '+33612345678', 's', 't'))\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(path)]) for _ in range(2)]
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    keys = [r["dedupe_key"] for r in lines(path)]
    assert len(keys) == 200 and len(set(keys)) == 200


@pytest.mark.parametrize("to", ["", "0612345678", "+33 6 12"])
def test_sms_needs_an_e164_number(tmp_path: Path, to: str) -> None:
    with pytest.raises(NotifierError) as info:
        JsonlNotifier(tmp_path / "sms.jsonl", "sms", "sms_log").send(sms(to=to))
    assert info.value.transient is False and info.value.notifier == "sms_log"


def test_push_needs_a_recipient(tmp_path: Path) -> None:
    with pytest.raises(NotifierError):
        JsonlNotifier(tmp_path / "push.jsonl", "push").send(sms(to=" "))


def test_registration_and_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pm = pluggy.PluginManager("fulfil")
    pm.add_hookspecs(hookspecs)
    pm.register(jsonl)
    pm.check_pending()
    registered: list[NotifierPlugin] = []
    pm.hook.fulfil_register_notifiers(register=registered.append)
    plugins = {p.name: p for p in registered}
    assert {n: p.channel.value for n, p in plugins.items()} == {
        "sms_log": "sms",
        "push_log": "push",
    }
    for plugin in registered:
        jsonschema.Draft202012Validator.check_schema(plugin.settings_schema)
        validator = jsonschema.Draft202012Validator(plugin.settings_schema)
        assert not list(validator.iter_errors({"path": "x.jsonl"}))
        assert list(validator.iter_errors({"file": "x.jsonl"}))
        assert plugin.settings_schema["properties"]["path"]["description"]

    with httpx.Client() as client:
        context = PluginContext(client=client, data_dir=tmp_path)
        plugins["sms_log"].factory({}, context).send(sms())
        plugins["push_log"].factory({}, context).send(sms(to="merchant"))
        plugins["push_log"].factory({"path": "sub/p.jsonl"}, context).send(sms(to="merchant"))
    assert len(lines(tmp_path / "sms.jsonl")) == 1
    assert lines(tmp_path / "push.jsonl")[0]["channel"] == "push"
    assert len(lines(tmp_path / "sub" / "p.jsonl")) == 1

    monkeypatch.setenv("FULFIL_DISABLE_PLUGINS", "*")
    registry = Hooks(make_plugin_manager([jsonl])).registry
    assert set(registry.notifiers) == {"sms_log", "push_log"}
