"""The Maildir email sink: real RFC 5322 files, one per dedupe key, readable by mailbox."""

from __future__ import annotations

import email
import email.header
import email.message
import email.policy
import email.utils
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


@pytest.mark.parametrize(
    "to",
    [
        "not an address",
        "",
        "a@example.org\r\nBcc: x@evil.example",
        "Zoé <a@example.org>\r\nBcc: x@evil.example",
    ],
)
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


# --- the message's bytes ------------------------------------------------------------------
#
# _build writes headers through a compat32 policy with a shortcut for headers that need no
# folding. The expected values below come from the inputs: what any reader must find.


def built(msg: Message, sender: str = "Maison Dupont <shop@dupont.example>") -> bytes:
    return maildir._build(msg, sender, "<0123456789abcdef@dupont.example>")


def parse(data: bytes) -> email.message.EmailMessage:
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(parsed, email.message.EmailMessage)
    return parsed


def leaf_parts(parsed: email.message.EmailMessage) -> list[tuple[str, str]]:
    return [
        (part.get_content_type(), part.get_content())  # type: ignore[attr-defined]
        for part in parsed.walk()
        if not part.is_multipart()
    ]


LONG_SUBJECT = "Your order 1001 has shipped: " + " ".join(f"item-{n}" for n in range(20))


@pytest.mark.parametrize(
    ("subject", "to", "sender", "html"),
    [
        ("Your order 1001 has shipped", "marie@example.org", "shop@localhost", None),
        (
            "Votre commande n° 1001 a été expédiée",
            "Marie Curie <marie@example.org>",
            "Maison Dupont <shop@dupont.example>",
            "<p>Bonjour <b>Marie</b></p>",
        ),
        (
            "Ihre Bestellung",
            "Zoé Müller <zoe@example.org>",
            "Bäckerei Müller <shop@mueller.example>",
            "<p>Grüße</p>",
        ),
        (LONG_SUBJECT, "Marie Curie <marie@example.org>", "shop@localhost", "<p>x</p>"),
        (
            "Votre commande " + "très " * 20 + "expédiée",
            "marie@example.org",
            "shop@localhost",
            None,
        ),
        (
            "Looks like =?utf-8?q?an_encoded_word?= but is not",
            "marie@example.org",
            "shop@localhost",
            None,
        ),
    ],
    ids=[
        "ascii",
        "non-ascii-subject",
        "non-ascii-names",
        "long-ascii",
        "long-non-ascii",
        "literal-encoded-word",
    ],
)
def test_the_message_parses_back_to_its_inputs(
    subject: str, to: str, sender: str, html: str | None
) -> None:
    text = "Bonjour Zoé,\n\nNuméro de suivi : TRK1  \nLine with = and =3D and tabs\t\n"
    msg = message(subject=subject, to=to, text=text, html=html, locale="de")
    data = built(msg, sender)
    parsed = parse(data)

    assert parsed["Subject"] == subject
    for header, value in (("To", to), ("From", sender)):
        name, address = email.utils.parseaddr(value)
        (parsed_address,) = parsed[header].addresses
        assert (parsed_address.display_name, parsed_address.addr_spec) == (name, address)
        assert not parsed[header].defects
    assert parsed["Message-ID"] == "<0123456789abcdef@dupont.example>"
    assert parsed["X-Fulfil-Dedupe-Key"] == msg.dedupe_key
    assert parsed["X-Fulfil-Order-Id"] == msg.order_id
    assert parsed["X-Fulfil-Event"] == msg.event
    assert parsed["Content-Language"] == "de"
    assert parsed["Date"].datetime.tzinfo is not None
    expected = [("text/plain", text)] + ([("text/html", html)] if html else [])
    assert leaf_parts(parsed) == expected
    assert parsed.get_content_type() == ("multipart/alternative" if html else "text/plain")
    # RFC 5322: 7-bit, and lines of at most 78 characters, folded where needed.
    assert data.isascii()
    assert max(len(line) for line in data.split(b"\n")) <= 78


def test_a_long_subject_is_folded() -> None:
    data = built(message(subject=LONG_SUBJECT))
    header = data.split(b"\nSubject: ", 1)[1].split(b"\n\n", 1)[0]
    lines = (b"Subject: " + header).split(b"\n")
    assert len(lines) >= 2 and all(line.startswith(b" ") for line in lines[1:])
    assert all(len(line) <= 78 for line in lines)
    assert parse(data)["Subject"] == LONG_SUBJECT


def test_a_non_ascii_display_name_is_encoded_apart_from_the_address() -> None:
    data = built(message(to="Zoé Müller <zoe@example.org>"))
    (to,) = [line for line in data.split(b"\n") if line.startswith(b"To: ")]
    assert to.endswith(b" <zoe@example.org>") and b"=?utf-8?" in to
    assert parse(data)["To"].addresses[0].display_name == "Zoé Müller"


def test_a_body_line_like_a_boundary_does_not_split_the_message() -> None:
    # The boundary starts with "=_", which quoted-printable bodies cannot hold.
    text = "--=_\n--=_0123456789abcdef01234567\n--=_0123456789abcdef01234567--\n"
    parsed = parse(built(message(text=text, html=f"<pre>{text}</pre>")))
    assert leaf_parts(parsed) == [("text/plain", text), ("text/html", f"<pre>{text}</pre>")]


def test_plain_headers_skip_the_header_folding_machinery(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[object] = []
    encode = email.header.Header.encode

    def counting(self: email.header.Header, *args: object, **kwargs: object) -> str:
        calls.append(self)
        return encode(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(email.header.Header, "encode", counting)
    built(message(subject="Your order has shipped", to="marie@example.org", html="<p>x</p>"))
    assert calls == []
    built(message(subject="Votre commande a été expédiée"))
    assert len(calls) == 1  # the non-ASCII Subject only
