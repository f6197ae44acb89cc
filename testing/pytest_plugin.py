"""fulfil's pytest plugin: fixtures for testing fulfil plugins offline.

Installed with ``fulfil[testing]``, it is loaded by pytest through the ``pytest11`` entry
point ``fulfil``; without the entry point, name it in a test module::

    pytest_plugins = ["fulfil.testing.pytest_plugin"]

Fixtures:

``fulfil_plugin_manager``
    a factory: ``fulfil_plugin_manager(my_plugin)`` is a plugin manager holding the
    built-ins and exactly the plugins given (installed entry points are not loaded).
``fulfil_http``
    the ``httpx.Client`` the core would inject, with short timeouts, closed afterwards.
``fulfil_context``
    a ``PluginContext`` with that client and ``tmp_path`` as the plugin's data folder.
``fulfil_store``
    a migrated SQLite ``Store`` in ``tmp_path``, closed afterwards.
``loopback``
    ``loopback(MyFake())`` starts a ``FakeService`` on 127.0.0.1 and stops it afterwards.

The conformance suites are in ``fulfil.testing.conformance``. Importing this module does
no work: fulfil's modules are imported when a fixture is first used, so that every pytest
run in an environment where fulfil is installed starts as fast as before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

if TYPE_CHECKING:
    import httpx
    import pluggy
    from fulfil.core.context import PluginContext
    from fulfil.core.store.db import Store
    from fulfil.testing.server import FakeService

__all__ = [
    "HTTP_TIMEOUT",
    "fulfil_context",
    "fulfil_http",
    "fulfil_plugin_manager",
    "fulfil_store",
    "loopback",
    "make_http_client",
]

# Seconds. A loopback fake answers in milliseconds; a test that waits longer is hung.
HTTP_TIMEOUT = 5.0
HTTP_CONNECT_TIMEOUT = 2.0

F = TypeVar("F", bound="FakeService")


def make_http_client(timeout: float = HTTP_TIMEOUT) -> httpx.Client:
    """A client like the one the engine injects, with test-sized timeouts."""
    import httpx

    return httpx.Client(timeout=httpx.Timeout(timeout, connect=min(timeout, HTTP_CONNECT_TIMEOUT)))


@pytest.fixture
def fulfil_plugin_manager() -> Callable[..., pluggy.PluginManager]:
    """``fulfil_plugin_manager(*plugins)``: the built-ins plus ``plugins``, nothing else."""
    from fulfil.core.plugins import make_plugin_manager

    def make(*plugins: object) -> pluggy.PluginManager:
        return make_plugin_manager(plugins, load_entrypoints=False)

    return make


@pytest.fixture
def fulfil_http() -> Iterator[httpx.Client]:
    """An ``httpx.Client`` with short timeouts, closed after the test."""
    client = make_http_client()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def fulfil_context(fulfil_http: httpx.Client, tmp_path: Path) -> PluginContext:
    """What the core hands a plugin's factory: the client and ``tmp_path`` as data folder."""
    from fulfil.core.context import PluginContext

    return PluginContext(client=fulfil_http, data_dir=tmp_path)


@pytest.fixture
def fulfil_store(tmp_path: Path) -> Iterator[Store]:
    """A migrated SQLite store in ``tmp_path`` (``fulfil.db``), closed after the test."""
    from fulfil.core.store.db import Store

    store = Store.open(f"sqlite:///{tmp_path / 'fulfil.db'}")
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def loopback() -> Iterator[Callable[[Any], Any]]:
    """``loopback(fake)`` starts ``fake`` on 127.0.0.1 and returns it; stopped afterwards."""
    started: list[FakeService] = []

    def start(fake: F) -> F:
        fake.start()
        started.append(fake)
        return fake

    try:
        yield start
    finally:
        for fake in reversed(started):
            fake.stop()
