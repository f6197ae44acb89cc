"""The notifier contract (DESIGN.md section 6); import it from ``fulfil.testing.conformance``."""

from __future__ import annotations

from functools import partial
from typing import Any, ClassVar

import pytest
from fulfil.core.errors import NotifierError
from fulfil.core.notifiers import Channel, Message, NotifierPlugin, Receipt
from fulfil.testing._contract import (
    FAULTS,
    SHORT_TIMEOUT,
    Builder,
    PluginSuite,
    SettingsSchemaChecks,
    counted,
    describe_exception,
    fail,
    generic_message,
)

__all__ = ["NotifierConformance"]

RECIPIENTS = {
    Channel.EMAIL: "Camille Martin <camille@example.org>",
    Channel.SMS: "+33612345678",
    Channel.PUSH: "fcm-device-token-4f9a1c",
    Channel.WEBHOOK: "https://hooks.example.org/fulfil",
}
INVALID_RECIPIENTS = {
    Channel.EMAIL: "not an address",
    Channel.SMS: "12345",
    Channel.PUSH: "",
    Channel.WEBHOOK: "not a url",
}


class NotifierConformance(PluginSuite, SettingsSchemaChecks):
    """The notifier contract. Subclass it as ``Test...``.

    ``claims_idempotency``: the plugin delivers a message once per ``dedupe_key`` however
    often it is sent (True by default; set False, visibly, for a provider with no way to
    recognise a repeat).
    """

    kind: ClassVar[str] = "notifier"
    notifier_name: ClassVar[str | None] = None
    claims_idempotency: ClassVar[bool] = True

    # --- hooks an author may override ---------------------------------------------------

    def sample_message(self, channel: Channel) -> Message:
        """A customer's "order shipped" message on ``channel`` that the fake accepts."""
        return Message(
            dedupe_key=f"ord_conformance:v3:order_shipped:customer:{channel.value}",
            channel=channel,
            audience="customer",
            event="order_shipped",
            order_id="ord_conformance",
            to=RECIPIENTS[channel],
            subject="Your order #1001 has shipped",
            text="Hello Camille, your order #1001 is on its way. Tracking number: SBX1234.",
            html="<p>Hello Camille, your order #1001 is on its way.</p>"
            if channel is Channel.EMAIL
            else None,
        )

    def invalid_message(self, channel: Channel) -> Message | None:
        """A message the provider refuses for good (default: an unusable recipient)."""
        sample = self.sample_message(channel)
        return Message.from_mapping(
            {
                **sample.to_mapping(),
                "to": INVALID_RECIPIENTS[channel],
                "dedupe_key": sample.dedupe_key + ":invalid",
            }
        )

    def deliveries(self, fake: Any) -> int | None:
        """How many messages the fake delivered (``None``: the suite cannot count)."""
        return counted(fake, ("deliveries", "delivered", "messages", "sent"))

    # --- helpers ------------------------------------------------------------------------

    def _message(self, declaration: NotifierPlugin, n: int = 0) -> Message:
        sample = self.sample_message(declaration.channel)
        if n == 0:
            return sample
        return Message.from_mapping(
            {**sample.to_mapping(), "dedupe_key": f"{sample.dedupe_key}:{n}"}
        )

    def _send(self, what: str, notifier: Any, message: Message) -> Receipt:
        try:
            receipt = notifier.send(message)
        except NotifierError as error:
            fail(f"{what} failed: {error} (transient={error.transient})")
        except Exception as error:
            fail(f"{what} raised {describe_exception(error)}")
        if not isinstance(receipt, Receipt):
            fail(f"{what} returned {receipt!r}; send must return a fulfil.core.notifiers.Receipt")
        return receipt

    def _refused(self, what: str, notifier: Any, message: Message) -> NotifierError | Receipt:
        try:
            receipt: Receipt = notifier.send(message)
        except NotifierError as error:
            return error
        except Exception as error:
            fail(
                f"{what} raised {describe_exception(error)} instead of a NotifierError; "
                "raise NotifierError(transient=True) for what a retry may fix, "
                "transient=False for what it cannot"
            )
        return receipt

    def _delivered(self, fake: Any, before: int | None) -> int | None:
        now = self.deliveries(fake)
        return None if now is None or before is None else now - before

    # --- the tests ----------------------------------------------------------------------

    def test_registers_a_notifier_on_a_channel(self, conformance_declaration: Any) -> None:
        plugin = conformance_declaration
        if not isinstance(plugin, NotifierPlugin):
            fail(f"the plugin registered {plugin!r}, not a NotifierPlugin")
        name = plugin.name
        if not (isinstance(name, str) and name[:1].isalpha() and name == name.lower()):
            fail(f"notifier name {name!r} must be lower case and start with a letter")
        if not isinstance(plugin.channel, Channel):
            fail(
                f"notifier {name!r} declares channel {plugin.channel!r}, not one of "
                f"{', '.join(c.value for c in Channel)}"
            )
        if not callable(plugin.factory):
            fail(f"notifier {name!r}: factory {plugin.factory!r} is not callable")

    def test_send_returns_a_receipt(
        self, conformance_declaration: Any, conformance_build: Builder, settings: Any, fake: Any
    ) -> None:
        before = self.deliveries(fake)
        self._send("send", conformance_build(settings), self._message(conformance_declaration))
        delivered = self._delivered(fake, before)
        if delivered is not None and delivered != 1:
            fail(f"send returned a Receipt but the fake recorded {delivered} deliveries, not 1")

    def test_the_same_dedupe_key_is_delivered_once(
        self, conformance_declaration: Any, conformance_build: Builder, settings: Any, fake: Any
    ) -> None:
        if not self.claims_idempotency:
            pytest.skip("the plugin does not claim idempotency (claims_idempotency = False)")
        before = self.deliveries(fake)
        if before is None:
            fail(
                "the plugin claims idempotency but the suite cannot count deliveries: give "
                "the fake a deliveries() method or override deliveries(fake)"
            )
        message = self._message(conformance_declaration)
        notifier = conformance_build(settings)
        self._send("send", notifier, message)
        self._send("send again with the same dedupe_key", notifier, message)
        self._send(
            "send by a new instance (a retry after a crash)", conformance_build(settings), message
        )
        delivered = self._delivered(fake, before)
        if delivered != 1:
            fail(
                f"the same message (one dedupe_key) sent three times was delivered {delivered} "
                "times; use Message.dedupe_key (as an idempotency key, file name or "
                "Message-ID) so a retry is recognised, or set claims_idempotency = False"
            )
        self._send("send of another message", notifier, self._message(conformance_declaration, 1))
        if self._delivered(fake, before) != 2:
            fail("a message with a new dedupe_key was not delivered after an earlier one")

    def test_a_permanent_failure_is_not_transient(
        self, conformance_declaration: Any, conformance_build: Builder, settings: Any
    ) -> None:
        message = self.invalid_message(conformance_declaration.channel)
        if message is None:
            pytest.skip("invalid_message() returned None")
        error = self._refused("send", conformance_build(settings), message)
        if not isinstance(error, NotifierError):
            fail(
                f"send delivered a message to {message.to!r}; override invalid_message() with "
                "one the provider refuses"
            )
        if error.transient:
            fail(
                f"a refused recipient raised a transient NotifierError ({error}); a retry "
                "cannot fix it, so set transient=False"
            )
        if generic_message(error.message):
            fail(f"the error message {error.message!r} does not say why; keep the provider's")

    @pytest.mark.parametrize("fault", ["rate_limited", "unavailable", "timeout_after_receipt"])
    def test_a_transient_failure_is_marked_transient(
        self,
        fault: str,
        conformance_declaration: Any,
        conformance_build: Builder,
        settings: Any,
        fake: Any,
    ) -> None:
        message = self._message(conformance_declaration)
        before = self.deliveries(fake)
        faulty = conformance_build(self.provoke(fault, fake, settings), timeout=SHORT_TIMEOUT)
        error = self._refused("send", faulty, message)
        if isinstance(error, NotifierError) and not error.transient:
            fail(
                f"after {FAULTS[fault]}, send raised a permanent NotifierError ({error}); "
                "a retry may succeed, so set transient=True"
            )
        self._send("send retried", conformance_build(settings), message)
        delivered = self._delivered(fake, before)
        if self.claims_idempotency and delivered is not None and delivered != 1:
            fail(
                f"after {FAULTS[fault]} and a retry the message was delivered {delivered} "
                "times; the retry carries the same dedupe_key and must not deliver again"
            )

    def test_wrong_credentials_are_reported(
        self,
        conformance_build: Builder,
        conformance_declaration: Any,
        conformance_secrets: dict[str, str],
        settings: Any,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        if not conformance_secrets:
            pytest.skip("the settings hold no env: secret reference")
        for name in conformance_secrets:
            monkeypatch.setenv(name, self.wrong_secret(name))
        error = self._refused(
            "send", conformance_build(settings), self._message(conformance_declaration)
        )
        if not isinstance(error, NotifierError):
            fail(
                "send succeeded with wrong credentials: the fake must check them and "
                "answer as the provider does"
            )

    def test_no_secret_reaches_a_log_or_an_error(
        self,
        conformance_declaration: Any,
        conformance_build: Builder,
        conformance_secrets: dict[str, str],
        settings: Any,
        fake: Any,
        monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        scanner = self.leak_scanner(conformance_secrets, caplog)
        channel = conformance_declaration.channel
        notifier = conformance_build(settings)
        scanner.add("repr() of the notifier", repr(notifier))
        scanner.record("send", lambda: notifier.send(self._message(conformance_declaration)))
        invalid = self.invalid_message(channel)
        if invalid is not None:
            scanner.record("send (invalid)", lambda: notifier.send(invalid))
        for fault in ("rate_limited", "unavailable"):
            try:
                faulty = conformance_build(self.provoke(fault, fake, settings))
            except pytest.skip.Exception:
                continue
            message = self._message(conformance_declaration, 3)
            scanner.record(f"send after {fault}", partial(faulty.send, message))
        for name in conformance_secrets:
            monkeypatch.setenv(name, self.wrong_secret(name))
        wrongly = conformance_build(settings)
        message = self._message(conformance_declaration, 2)
        scanner.record("send with wrong credentials", lambda: wrongly.send(message))
        scanner.finish(caplog, capsys)

    def test_uses_the_injected_http_client(
        self, conformance_declaration: Any, conformance_build: Builder, settings: Any, fake: Any
    ) -> None:
        if not isinstance(getattr(fake, "requests", None), list):
            pytest.skip("the fake does not record requests")
        self._send("send", conformance_build(settings), self._message(conformance_declaration))
        if fake.requests and not conformance_build.requests:
            fail(
                "the fake received requests that the client in PluginContext never sent: "
                "the notifier built its own HTTP client; use context.client"
            )
