"""What the carrier and notifier conformance suites share.

``PluginSuite`` turns the author's fixtures (``plugin``, ``settings``, ``fake``) into the
registered declaration and a ``build(settings)`` that makes the plugin the way the engine
does (schema defaults filled in, ``env:`` references resolved, a fresh ``httpx.Client`` and
a shared data folder). ``SettingsSchemaChecks`` holds the tests of the settings schema.
The rest are small checks whose failure messages say what is wrong in plain words.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sized
from pathlib import Path
from typing import Any, ClassVar, NoReturn

import httpx
import pytest
from fulfil.core.context import PluginContext
from fulfil.core.plugins import Registry, make_plugin_manager
from fulfil.core.secrets import PREFIX as SECRET_PREFIX
from fulfil.core.secrets import resolve_secrets
from fulfil.core.validation import fill_defaults, format_path, schema_issues
from fulfil.testing.pytest_plugin import HTTP_CONNECT_TIMEOUT, HTTP_TIMEOUT
from fulfil.testing.server import Response
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

__all__ = [
    "FAULTS",
    "PluginSuite",
    "SettingsSchemaChecks",
    "describe_exception",
    "fail",
    "generic_message",
    "secret_value",
]

DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
# A client timeout far below the fake's stall, so "no answer" happens in a fraction of a second.
SHORT_TIMEOUT = 0.5
HANG_SECONDS = 3.0
RETRY_AFTER = 3  # seconds, sent with the suite's 429

# What each fault the suite provokes means, for messages.
FAULTS = {
    "rate_limited": "a 429 with Retry-After",
    "unavailable": "a 503",
    "timeout_after_receipt": "a timeout after the service received and carried out the request",
    "timeout_before_receipt": "a timeout before the service did anything",
}

_GENERIC = {
    "",
    "error",
    "an error occurred",
    "bad request",
    "failed",
    "http error",
    "internal error",
    "internal server error",
    "invalid",
    "invalid request",
    "request failed",
    "unknown error",
    "unprocessable entity",
    "validation error",
    "validation failed",
}
_HTTPX_STATUS_TEXT = re.compile(r"^(client|server) error '\d{3}", re.IGNORECASE)
_STATUS_ONLY = re.compile(r"^(http\s*)?\d{3}(\s+[a-z ]+)?$", re.IGNORECASE)
_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")


def fail(message: str) -> NoReturn:
    """Fail the test with ``message`` alone: it says what is wrong, a traceback would not
    (nor would the exception being handled, which the message already quotes)."""
    __tracebackhide__ = True
    raise pytest.fail.Exception(message, pytrace=False) from None


def secret_value(name: str) -> str:
    """The distinctive value the suite gives the ``env:NAME`` secret reference.

    A fake that checks credentials expects this value, for example::

        FakeAcme(api_key=secret_value("ACME_API_KEY"))
    """
    return f"conformance-{name.lower().replace('_', '-')}-7c1d5e93b2"


def wrong_secret_value(name: str) -> str:
    return f"revoked-{name.lower().replace('_', '-')}-0f00ba44"


def env_references(settings: Any) -> list[str]:
    """The environment variable names that ``env:`` references in ``settings`` point at."""
    found: list[str] = []
    if isinstance(settings, Mapping):
        for value in settings.values():
            found += env_references(value)
    elif isinstance(settings, str) and settings.startswith(SECRET_PREFIX):
        found.append(settings[len(SECRET_PREFIX) :])
    return found


def describe_exception(error: BaseException) -> str:
    return f"{type(error).__module__}.{type(error).__qualname__}: {error}"


def generic_message(message: str) -> bool:
    """A message that tells the merchant nothing the HTTP status did not."""
    text = message.strip().rstrip(".").casefold()
    return (
        text in _GENERIC
        or _STATUS_ONLY.match(text) is not None
        or _HTTPX_STATUS_TEXT.match(text) is not None
    )


def counted(fake: Any, names: Iterable[str]) -> int | None:
    """How many things ``fake`` records under the first of ``names`` it has, if any."""
    if fake is None:
        return None
    for name in names:
        value = getattr(fake, name, None)
        if value is None:
            continue
        if callable(value):
            value = value()
        if isinstance(value, bool):
            continue
        if isinstance(value, int):
            return value
        if isinstance(value, Sized) and not isinstance(value, str | bytes):
            return len(value)
    return None


def provider_sentences(response: Response) -> list[str]:
    """The human sentences in an error body (JSON string leaves with a space, or text)."""
    try:
        data = json.loads(response.body or b"null")
    except ValueError:
        text = response.body.decode("utf-8", "replace").strip()
        return [text] if " " in text and len(text) < 300 else []
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, Mapping):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, str) and " " in value.strip() and len(value) >= 8:
            found.append(value.strip())

    walk(data)
    return found


class ResponseRecorder:
    """Keeps what a ``FakeService`` answered, to compare error texts with the provider's."""

    def __init__(self, fake: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        self.responses: list[Response] = []
        handle = getattr(fake, "handle", None)
        if handle is None or not hasattr(fake, "fail_next"):
            return

        def recording(request: Any) -> Any:
            response = handle(request)
            if isinstance(response, Response):
                self.responses.append(response)
            return response

        monkeypatch.setattr(fake, "handle", recording)

    def last_error(self) -> Response | None:
        errors = [r for r in self.responses if r.status >= 400]
        return errors[-1] if errors else None


class LeakScanner:
    """Collects every text a run produced and finds the secrets in them."""

    def __init__(self, secrets: Mapping[str, str]) -> None:
        self.secrets = {value: name for name, value in secrets.items() if value}
        self.texts: list[tuple[str, str]] = []

    def add(self, where: str, text: object) -> None:
        self.texts.append((where, str(text)))

    def record(self, what: str, run: Callable[[], object]) -> None:
        """Run ``run`` and scan what it returned, or the exception it raised."""
        try:
            result = run()
        except Exception as error:
            self.add_exception(f"the exception {what} raised", error)
        else:
            self.add(f"what {what} returned", repr(result))

    def add_exception(self, where: str, error: BaseException) -> None:
        seen: set[int] = set()
        current: BaseException | None = error
        while current is not None and id(current) not in seen:
            seen.add(id(current))
            self.add(where, f"{current!s} {current!r} {current.args!r}")
            current = current.__cause__ or current.__context__

    def add_records(self, records: Iterable[logging.LogRecord]) -> None:
        formatter = logging.Formatter()
        for record in records:
            where = f"a {record.levelname} log record of logger {record.name!r}"
            try:
                message = record.getMessage()
            except Exception as exc:  # a malformed record still must not hide a secret
                message = f"{record.msg!r} {record.args!r} ({exc})"
            parts = [message, *(str(v) for v in vars(record).values())]
            if record.exc_info:
                parts.append(formatter.formatException(record.exc_info))
            self.add(where, " ".join(parts))

    def finish(self, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> None:
        """Add the log records and the output of the test, then fail on any leak."""
        self.add_records(caplog.records)
        captured = capsys.readouterr()
        self.add("standard output", captured.out)
        self.add("standard error", captured.err)
        leaks = self.leaks()
        if leaks:
            fail("a secret leaked: " + "; ".join(leaks))

    def watch(self, caplog: pytest.LogCaptureFixture) -> None:
        """Capture every logger at DEBUG, the HTTP libraries' included."""
        caplog.set_level("DEBUG")
        for name in ("httpx", "httpcore", "urllib3", "fulfil"):
            caplog.set_level("DEBUG", logger=name)

    def leaks(self) -> list[str]:
        found: dict[str, None] = {}
        for value, name in self.secrets.items():
            for where, text in self.texts:
                if value in text:
                    at = text.index(value)
                    excerpt = text[max(0, at - 60) : at + len(value) + 20].replace("\n", " ")
                    found[f"the secret {name} appeared in {where}: ...{excerpt}..."] = None
        return list(found)


class PluginSuite:
    """Fixtures both suites share. ``kind`` is "carrier" or "notifier"."""

    kind: ClassVar[str]
    # (method, regular expression searched in the path) of the request that buys or sends,
    # when an operation makes several: faults are then aimed at it.
    purchase_request: ClassVar[tuple[str, str] | None] = None

    # --- hooks an author may override ---------------------------------------------------

    def secret(self, name: str) -> str:
        """The value the suite sets for ``env:NAME``; override if a format is required."""
        return secret_value(name)

    def wrong_secret(self, name: str) -> str:
        """A wrong value of the same form, for the wrong-credentials tests."""
        return wrong_secret_value(name)

    def leak_scanner(
        self, secrets: Mapping[str, str], caplog: pytest.LogCaptureFixture
    ) -> LeakScanner:
        """A scanner for the secrets and for the wrong values the suite sets in their place,
        watching the logs; skips when the settings reference no secret."""
        if not secrets:
            pytest.skip("the settings hold no env: secret reference, so there is none to leak")
        wrong = {f"{name} (a wrong value)": self.wrong_secret(name) for name in secrets}
        scanner = LeakScanner({**secrets, **wrong})
        scanner.watch(caplog)
        return scanner

    def error_response(self, fault: str) -> Response:
        """What the fake answers to provoke ``fault``; override to use the provider's body."""
        if fault == "rate_limited":
            return Response.json(
                429,
                {"error": {"code": "rate_limited", "message": "Too many requests, slow down"}},
                {"Retry-After": str(RETRY_AFTER)},
            )
        return Response.json(
            503, {"error": {"code": "unavailable", "message": "Service temporarily unavailable"}}
        )

    def provoke(self, fault: str, fake: Any, settings: Mapping[str, Any]) -> Mapping[str, Any]:
        """Arrange for the next operation to meet ``fault``; return the settings to build the
        failing plugin from (by default ``settings``, after scripting a ``FakeService``).

        ``fault`` is one of ``FAULTS``. The fault hits the fake's next request, or with
        ``purchase_request`` set, the next request that matches it. Override this when the
        fake is not a ``FakeService`` (the sandbox turns on its own fault settings).
        """
        if not (hasattr(fake, "fail_next") and hasattr(fake, "hang_next")):
            pytest.skip(
                f"cannot provoke {FAULTS[fault]}: the `fake` fixture is not a FakeService; "
                "override provoke() to test this"
            )
        if self.purchase_request is not None:
            self._aim(fake, fault, *self.purchase_request)
        elif fault == "timeout_after_receipt":
            fake.hang_next(apply=True, seconds=HANG_SECONDS)
        elif fault == "timeout_before_receipt":
            fake.hang_next(apply=False, seconds=HANG_SECONDS)
        else:
            fake.fail_next(self.error_response(fault))
        return settings

    def _aim(self, fake: Any, fault: str, method: str, pattern: str) -> None:
        """Script ``fault`` on the next request to ``method`` whose path matches ``pattern``."""
        original = fake.handle
        armed = [True]

        def handle(request: Any) -> Any:
            hit = armed[0] and request.method == method and re.search(pattern, request.path)
            if not hit:
                return original(request)
            armed[0] = False
            if fault == "timeout_after_receipt":
                original(request)
            if fault.startswith("timeout"):
                time.sleep(HANG_SECONDS)  # the client gives up first; None: no answer at all
                return None
            return self.error_response(fault)

        fake.handle = handle
        self._undo.append(lambda: setattr(fake, "handle", original))

    # --- fixtures -----------------------------------------------------------------------

    @pytest.fixture(autouse=True)
    def conformance_undo(self) -> Iterator[None]:
        """Takes back what ``provoke`` changed on a fake, which may outlive the test."""
        self._undo: list[Callable[[], None]] = []
        yield
        for undo in reversed(self._undo):
            undo()

    @pytest.fixture
    def conformance_secrets(
        self, settings: Mapping[str, Any], monkeypatch: pytest.MonkeyPatch
    ) -> dict[str, str]:
        """Sets every ``env:`` reference of ``settings`` to its distinctive value."""
        secrets = {name: self.secret(name) for name in env_references(settings)}
        for name, value in secrets.items():
            monkeypatch.setenv(name, value)
        return secrets

    @pytest.fixture
    def conformance_declaration(self, plugin: object) -> Any:
        """The ``CarrierPlugin`` / ``NotifierPlugin`` the plugin registers."""
        hook = f"fulfil_register_{self.kind}s"
        try:
            pm = make_plugin_manager([plugin], load_entrypoints=False)
            registry = Registry(pm)
        except Exception as error:
            fail(f"registering the plugin failed: {describe_exception(error)}")
        table: Mapping[str, Any] = getattr(registry, f"{self.kind}s")
        wanted: str | None = getattr(self, f"{self.kind}_name", None)
        if not table:
            fail(
                f"the plugin registered no {self.kind}: it needs a {hook} hookimpl that "
                f"calls register(...) (is `plugin` the module with the @hookimpl?)"
            )
        if wanted is None:
            if len(table) > 1:
                fail(
                    f"the plugin registers several {self.kind}s ({', '.join(sorted(table))}); "
                    f"set {self.kind}_name on the test class to say which one to test"
                )
            return next(iter(table.values()))
        if wanted not in table:
            fail(
                f"the plugin registers no {self.kind} named {wanted!r} "
                f"(it registers: {', '.join(sorted(table))})"
            )
        return table[wanted]

    @pytest.fixture
    def conformance_build(
        self,
        conformance_declaration: Any,
        conformance_secrets: dict[str, str],
        tmp_path: Path,
    ) -> Iterator[Builder]:
        """``build(settings, timeout=...)``: the plugin as the engine makes it."""
        builder = Builder(self.kind, conformance_declaration, tmp_path / "plugin-data")
        try:
            yield builder
        finally:
            builder.close()


class Builder:
    """Makes the plugin as the engine does: defaults filled in, secrets resolved, and a
    fresh client per instance. Every instance shares one data folder, as the processes of
    one merchant do, and every request the injected clients send is kept in ``requests``."""

    def __init__(self, kind: str, declaration: Any, data_dir: Path) -> None:
        self.kind = kind
        self.declaration = declaration
        self.data_dir = data_dir
        self.requests: list[httpx.Request] = []
        self._built: list[Any] = []
        self._clients: list[httpx.Client] = []

    def __call__(self, settings: Mapping[str, Any], *, timeout: float = HTTP_TIMEOUT) -> Any:
        declaration = self.declaration
        filled = fill_defaults(dict(settings), declaration.settings_schema)
        where = f"{self.kind}s.{declaration.name}.settings"
        client = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=min(timeout, HTTP_CONNECT_TIMEOUT)),
            event_hooks={"request": [self.requests.append]},
        )
        self._clients.append(client)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        context = PluginContext(client=client, data_dir=self.data_dir)
        try:
            instance = declaration.factory(resolve_secrets(filled, where), context)
        except Exception as error:
            fail(
                f"the {self.kind}'s factory refused the test's settings "
                f"({describe_exception(error)}); the `settings` fixture must hold settings "
                "the plugin accepts"
            )
        self._built.append(instance)
        return instance

    def close(self) -> None:
        for instance in self._built:
            close = getattr(instance, "close", None)
            if callable(close):
                close()
        for client in self._clients:
            client.close()


class SettingsSchemaChecks:
    """The settings schema is valid JSON Schema 2020-12, accepts the sample, rejects typos."""

    def test_settings_schema_is_valid_json_schema_2020_12(
        self, conformance_declaration: Any
    ) -> None:
        schema = conformance_declaration.settings_schema
        name = conformance_declaration.name
        if not isinstance(schema, Mapping):
            fail(f"{name}: settings_schema is a {type(schema).__name__}, not a JSON object")
        declared = schema.get("$schema", DRAFT_2020_12)
        if declared != DRAFT_2020_12:
            fail(f"{name}: settings_schema declares $schema {declared!r}; use {DRAFT_2020_12!r}")
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as error:
            where = format_path(error.absolute_path) or "(top level)"
            fail(
                f"{name}: settings_schema is not valid JSON Schema 2020-12 at {where}: "
                f"{error.message}"
            )
        if schema.get("type") != "object":
            fail(f'{name}: settings_schema must have "type": "object" (settings are a table)')
        for key, sub in schema.get("properties", {}).items():
            if isinstance(sub, Mapping) and "default" in sub:
                issues = schema_issues(sub["default"], sub)
                if issues:
                    fail(
                        f"{name}: the default of setting {key!r} breaks its own schema: "
                        f"{issues[0][1]}"
                    )

    def test_settings_schema_accepts_the_test_settings(
        self, conformance_declaration: Any, settings: Mapping[str, Any]
    ) -> None:
        issues = schema_issues(
            dict(settings), conformance_declaration.settings_schema, allow_secret_refs=True
        )
        if issues:
            found = "; ".join(f"{format_path(p) or '(top level)'}: {why}" for p, why in issues)
            fail(f"the `settings` fixture breaks the plugin's own settings schema: {found}")

    def test_settings_schema_rejects_an_unknown_key(
        self, conformance_declaration: Any, settings: Mapping[str, Any]
    ) -> None:
        typo = "setting_with_a_typo"
        schema = conformance_declaration.settings_schema
        if not schema_issues({**settings, typo: "x"}, schema, allow_secret_refs=True):
            fail(
                f"the settings schema accepts an unknown key {typo!r}, so a merchant's typo "
                'would be ignored silently; set "additionalProperties": false'
            )

    def test_settings_schema_rejects_wrong_types(
        self, conformance_declaration: Any, settings: Mapping[str, Any]
    ) -> None:
        schema = conformance_declaration.settings_schema
        properties = schema.get("properties", {})
        if not properties:
            pytest.skip("the settings schema declares no properties")
        loose = []
        for key, sub in properties.items():
            wrong = _wrong_value(sub)
            if wrong is _ANY:
                loose.append(f"setting {key!r} accepts a value of any type; declare its type")
                continue
            bad = {**settings, key: wrong}
            if not schema_issues(bad, schema, allow_secret_refs=True):
                loose.append(f"setting {key!r} accepts {json.dumps(wrong)}; declare its type")
        if loose:
            fail("the settings schema lets wrong values through: " + "; ".join(loose))


_ANY = object()
_CANDIDATES: tuple[Any, ...] = ([], {"unexpected": 1}, True, "not-a-valid-value", 1.5, None)


def _wrong_value(schema: Any) -> Any:
    """A value of a JSON type ``schema`` does not allow, or ``_ANY`` if it allows every type."""
    if not isinstance(schema, Mapping):
        return _ANY
    validator = Draft202012Validator(schema)
    for candidate in _CANDIDATES:
        if not validator.is_valid(candidate):
            return candidate
    return _ANY
