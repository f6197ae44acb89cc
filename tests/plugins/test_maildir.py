"""The Maildir email sink: real RFC 5322 files, one per dedupe key, readable by mailbox."""

from __future__ import annotations

import email
import email.policy
import mailbox
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
from fulfil.plugins.notifiers import maildir
from fulfil.plugins.notifiers.maildir import MaildirNotifier


def message(key: str = "o1:v1:order_shipped:customer:email", **extra: object) -> Message:
    fields: dict[str, object] = {
        "dedupe_key": key,
        "channel": "email",
        "audience": "customer",
        "event": "order_shipped",
        "order_id": "o1",
        "to": "Marie Curie <marie@example.org>",
        "subject": "Votre commande n° 1001 a été expédiée",
        "text": "Bonjour Marie,\n\nNuméro de suivi : TRK1\n",
        "locale": "fr",
        **extra,
    }
    return Message.from_mapping(fields)


def files(root: Path) -> list[Path]:
    return sorted(p for sub in ("new", "cur") for p in (root / sub).iterdir())


def test_writes_a_parseable_message(tmp_path: Path) -> None:
    root = tmp_path / "mail"
    html = "<p>Bonjour <b>Marie</b></p>"
    receipt = MaildirNotifier(root, "Maison Dupont <shop@dupont.example>").send(message(html=html))
    assert {p.name for p in root.iterdir()} == {"tmp", "new", "cur"}
    assert not list((root / "tmp").iterdir())
    (path,) = files(root)
    assert receipt.detail == str(path)

    data = path.read_bytes()
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    assert parsed["From"] == "Maison Dupont <shop@dupont.example>"
    assert parsed["To"] == "Marie Curie <marie@example.org>"
    assert parsed["Subject"] == "Votre commande n° 1001 a été expédiée"
    assert parsed["Date"].datetime.tzinfo is not None
    assert parsed["Message-ID"] == receipt.provider_id
    assert parsed["Message-ID"].endswith("@dupont.example>")
    assert parsed["X-Fulfil-Dedupe-Key"] == "o1:v1:order_shipped:customer:email"
    assert parsed.get_content_type() == "multipart/alternative"
    text = parsed.get_body(("plain",))
    body = parsed.get_body(("html",))
    assert text is not None and body is not None
    assert "Numéro de suivi : TRK1" in text.get_content()  # type: ignore[attr-defined]
    assert html in body.get_content()  # type: ignore[attr-defined]

    box = mailbox.Maildir(root, create=False)
    (stored,) = list(box)
    assert stored["X-Fulfil-Dedupe-Key"] == "o1:v1:order_shipped:customer:email"


def test_text_only_message(tmp_path: Path) -> None:
    MaildirNotifier(tmp_path).send(message(sender="shop@other.example"))
    (path,) = files(tmp_path)
    parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert parsed.get_content_type() == "text/plain"
    assert parsed["From"] == "shop@other.example"


def test_message_id_is_deterministic(tmp_path: Path) -> None:
    first = MaildirNotifier(tmp_path / "a").send(message())
    second = MaildirNotifier(tmp_path / "b").send(message())
    other = MaildirNotifier(tmp_path / "c").send(message("o1:v2:order_shipped:customer:email"))
    assert first.provider_id == second.provider_id != other.provider_id
    assert [p.name for p in files(tmp_path / "a")] == [p.name for p in files(tmp_path / "b")]


def test_same_key_twice_is_written_once(tmp_path: Path) -> None:
    notifier = MaildirNotifier(tmp_path)
    first = notifier.send(message())
    again = MaildirNotifier(tmp_path).send(message(subject="changed"))  # a retry, new process
    assert len(files(tmp_path)) == 1
    assert again.provider_id == first.provider_id and again.detail == "already delivered"
    notifier.send(message("o1:v1:order_shipped:merchant:email"))
    assert len(files(tmp_path)) == 2


def test_a_message_already_read_counts_as_delivered(tmp_path: Path) -> None:
    notifier = MaildirNotifier(tmp_path)
    notifier.send(message())
    box = mailbox.Maildir(tmp_path, create=False)
    for key in list(box.iterkeys()):  # what a mail reader does once the message was seen
        msg = box[key]
        msg.set_subdir("cur")
        msg.add_flag("S")
        box[key] = msg
    (seen,) = files(tmp_path)
    assert seen.parent.name == "cur" and ":2,S" in seen.name
    assert notifier.send(message()).detail == "already delivered"
    assert files(tmp_path) == [seen]


def test_two_processes_racing_write_one_file(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from fulfil.core.notifiers import Message\n"
        "from fulfil.plugins.notifiers.maildir import MaildirNotifier\n"
        "n = MaildirNotifier(Path(sys.argv[1]))\n"
        "for i in range(60):\n"
        "    n.send(Message(f'o{i}:v1:order_placed:customer:email', 'email', 'customer',\n"
        "                   'order_placed', f'o{i}', 'a@example.org', 's', 't'))\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path)]) for _ in range(3)]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0]
    assert len(files(tmp_path)) == 60
    assert not list((tmp_path / "tmp").iterdir())


@pytest.mark.parametrize("to", ["not an address", "", "a@example.org\r\nBcc: x@evil.example"])
def test_bad_recipient_is_a_permanent_error(tmp_path: Path, to: str) -> None:
    with pytest.raises(NotifierError) as info:
        MaildirNotifier(tmp_path).send(message(to=to))
    assert info.value.transient is False and info.value.notifier == "maildir"
    assert not list((tmp_path / "new").iterdir())


def test_a_header_with_a_line_break_is_a_permanent_error(tmp_path: Path) -> None:
    with pytest.raises(NotifierError) as info:
        MaildirNotifier(tmp_path).send(message(subject="Hello\nBcc: x@evil.example"))
    assert info.value.transient is False


def test_a_folder_that_cannot_be_written_is_a_transient_error(tmp_path: Path) -> None:
    (tmp_path / "mail").write_text("a file where the Maildir should be")
    with pytest.raises(NotifierError) as info:
        MaildirNotifier(tmp_path / "mail").send(message())
    assert info.value.transient is True and "mail" in str(info.value)


def test_registration_and_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pm = pluggy.PluginManager("fulfil")
    pm.add_hookspecs(hookspecs)
    pm.register(maildir)
    pm.check_pending()
    registered: list[NotifierPlugin] = []
    pm.hook.fulfil_register_notifiers(register=registered.append)
    (plugin,) = registered
    assert (plugin.name, plugin.channel.value) == ("maildir", "email") and plugin.description

    schema = plugin.settings_schema
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    assert not list(validator.iter_errors({"path": "out/mail", "from": "shop@x.example"}))
    assert list(validator.iter_errors({"folder": "mail"}))
    assert all(p["description"] for p in schema["properties"].values())

    with httpx.Client() as client:
        context = PluginContext(client=client, data_dir=tmp_path)
        plugin.factory({}, context).send(message())
        plugin.factory({"path": str(tmp_path / "abs"), "from": "a@b.example"}, context).send(
            message()
        )
    assert len(files(tmp_path / "mail")) == 1 and len(files(tmp_path / "abs")) == 1
    parsed = email.message_from_bytes(files(tmp_path / "mail")[0].read_bytes())
    assert parsed["From"] == "shop@localhost"

    monkeypatch.setenv("FULFIL_DISABLE_PLUGINS", "*")
    registry = Hooks(make_plugin_manager([maildir])).registry
    assert registry.notifier("maildir").channel.value == "email"
