"""fulfil's pytest plugin: its fixtures work as documented and importing it costs nothing.

The plugin is loaded the way a plugin author's pytest loads it: by name, with ``-p``
(``-p no:fulfil`` first, so that the ``pytest11`` entry point, once installed, does not
register it a second time).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest_plugins = ["pytester"]

LOAD = ("-p", "no:fulfil", "-p", "fulfil.testing.pytest_plugin", "-p", "no:cacheprovider")

USES_THE_FIXTURES = """
from fulfil.core.plugins import Registry
from fulfil.plugins.carriers import sandbox
from fulfil.testing.server import FakeService, Response

seen = {}


class Hello(FakeService):
    def handle(self, request):
        return Response.json(200, {"path": request.path})


def test_fixtures(fulfil_plugin_manager, fulfil_http, fulfil_context, fulfil_store, loopback,
                  tmp_path):
    registry = Registry(fulfil_plugin_manager(sandbox))
    assert list(registry.carriers) == ["sandbox"]
    assert set(registry.notifiers) == set()  # nothing installed was loaded
    assert fulfil_context.client is fulfil_http and fulfil_context.data_dir == tmp_path
    assert fulfil_http.timeout.read <= 5
    with fulfil_store.transaction() as tx:
        assert tx.next_due() is None
    fake = loopback(Hello())
    assert fulfil_http.get(fake.url + "/ping").json() == {"path": "/ping"}
    assert [r.path for r in fake.requests] == ["/ping"]
    seen.update(client=fulfil_http, fake=fake)


def test_everything_was_closed():
    assert seen["client"].is_closed
    assert seen["fake"]._server is None
"""


def test_the_fixtures_work_and_are_cleaned_up(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_uses=USES_THE_FIXTURES)
    result = pytester.runpytest(*LOAD)
    result.assert_outcomes(passed=2)


def test_importing_the_plugin_loads_nothing_else() -> None:
    code = (
        "import sys, fulfil.testing.pytest_plugin\n"
        "print(sorted(m for m in sys.modules"
        " if m.startswith(('fulfil.core', 'fulfil.plugins', 'httpx', 'sqlalchemy'))))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
