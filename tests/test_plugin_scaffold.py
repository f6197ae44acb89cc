"""`fulfil plugin new` writes plugin packages that install and pass their tests, and the
conformance suite fails deliberately broken plugins with messages that say what is wrong.

The package test builds a fresh virtual environment, installs only the generated package in
it (``--no-deps --no-index --no-build-isolation``: no network) and lets it see the
packages of the environment running the tests, fulfil included, through a ``.pth`` file;
``--system-site-packages`` would not do, since it shows the base interpreter's packages,
not those of the virtual environment tox or a developer runs the tests in.
"""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
from collections.abc import Callable
from importlib import metadata
from importlib.util import find_spec
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from conftest import order_data
from fulfil.core import scaffold
from fulfil.core.cli import main
from fulfil.core.config import default_config_text

pytest_plugins = ["pytester"]

TIMEOUT = 300


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[..., Result]:
    if "plugin" not in main.commands:  # until the command is listed in fulfil.core.cli
        from fulfil.core.cli import plugin_cmd

        monkeypatch.setitem(main.commands, "plugin", plugin_cmd.plugin)
    monkeypatch.delenv("FULFIL_DISABLE_PLUGINS", raising=False)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def run(*args: str) -> Result:
        return runner.invoke(main, list(args), catch_exceptions=False)

    return run


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FULFIL_DISABLE_PLUGINS", "PYTHONPATH")}
    env.update(PIP_NO_INPUT="1", PIP_DISABLE_PIP_VERSION_CHECK="1", **extra)
    return env


def run(
    *args: str | Path, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=env or clean_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


# --- the command --------------------------------------------------------------------------


def test_new_carrier_writes_a_package(cli: Callable[..., Result], tmp_path: Path) -> None:
    result = cli("plugin", "new", "carrier", "acme_post")
    assert result.exit_code == 0, result.output
    root = tmp_path / "fulfil-acme-post"
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) == [
        "README.md",
        "fulfil_acme_post/__init__.py",
        "pyproject.toml",
        "tests/fake_api.py",
        "tests/test_conformance.py",
    ]
    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["name"] == "fulfil-acme-post"
    assert project["project"]["entry-points"]["fulfil"] == {"acme_post": "fulfil_acme_post"}
    assert project["project"]["optional-dependencies"]["test"][0].startswith("fulfil[testing]>=")
    module = (root / "fulfil_acme_post" / "__init__.py").read_text(encoding="utf-8")
    assert 'NAME = "acme_post"' in module and "class AcmePostCarrier" in module
    assert "ACME_POST_API_KEY" in (root / "tests" / "test_conformance.py").read_text()
    assert not list(tmp_path.glob(".*partial"))


@pytest.mark.parametrize(
    ("kind", "channel"),
    [("carrier", "push"), ("notifier", "email"), ("notifier", "sms"), ("notifier", "push"),
     ("notifier", "webhook")],
)  # fmt: skip
def test_every_template_renders_to_python_and_toml(kind: str, channel: str) -> None:
    files = scaffold.render(kind, scaffold.Names.parse("acme"), channel=channel)
    for path, text in files.items():
        if path.endswith(".py"):
            compile(text, path, "exec")
        elif path.endswith(".toml"):
            tomllib.loads(text)
        assert "{{" not in text and "{%" not in text, path


@pytest.mark.parametrize("name", ["Acme", "1acme", "acme!", "acme__post", "acme-", "a" * 41, ""])
def test_a_bad_name_exits_1_and_writes_nothing(
    cli: Callable[..., Result], tmp_path: Path, name: str
) -> None:
    result = cli("plugin", "new", "carrier", name)
    assert result.exit_code == 1
    assert f"{name!r} is not a valid plugin name" in result.output
    assert list(tmp_path.iterdir()) == []


def test_an_existing_folder_is_never_overwritten(
    cli: Callable[..., Result], tmp_path: Path
) -> None:
    mine = tmp_path / "fulfil-acme" / "notes.txt"
    mine.parent.mkdir()
    mine.write_text("my work")
    result = cli("plugin", "new", "notifier", "acme")
    assert result.exit_code == 1 and "exists already" in result.output
    assert [p.name for p in mine.parent.iterdir()] == ["notes.txt"]
    assert mine.read_text() == "my work"


@pytest.mark.parametrize(("kind", "name"), [("carrier", "sandbox"), ("notifier", "sms_log")])
def test_the_name_of_an_installed_plugin_is_refused(
    cli: Callable[..., Result], tmp_path: Path, kind: str, name: str
) -> None:
    result = cli("plugin", "new", kind, name)
    assert result.exit_code == 1 and repr(name) in result.output and "already" in result.output
    assert list(tmp_path.iterdir()) == []


def test_a_generated_notifier_passes_its_tests(cli: Callable[..., Result], tmp_path: Path) -> None:
    assert cli("plugin", "new", "notifier", "acme_sms", "--channel", "sms").exit_code == 0
    root = tmp_path / "fulfil-acme-sms"
    result = run(sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", cwd=root,
                 env=clean_env(PYTHONPATH=str(root)))  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout and "failed" not in result.stdout


# --- the generated carrier, installed in a fresh environment -------------------------------


def wheel_building_problem() -> str | None:
    """Why pip cannot build a wheel offline with what is installed, or None."""
    if find_spec("pip") is None:
        return "pip is not installed"
    if find_spec("setuptools") is None:
        return "setuptools is not installed"
    version = tuple(int(p) for p in metadata.version("setuptools").split(".")[:2] if p.isdigit())
    if version < (70, 1) and find_spec("wheel") is None:
        return f"setuptools {metadata.version('setuptools')} needs the wheel package to build"
    return None


def make_venv(root: Path) -> Path:
    """A virtual environment seeing this one's packages; skips the test if none can be made."""
    try:
        made = run(sys.executable, "-m", "venv", "--without-pip", root, cwd=root.parent)
    except (OSError, subprocess.SubprocessError) as error:
        pytest.skip(f"cannot create a virtual environment here: {error}")
    if made.returncode != 0:
        pytest.skip(f"cannot create a virtual environment here: {made.stderr.strip()}")
    python = root / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    purelib = run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                  cwd=root).stdout.strip()  # fmt: skip
    ours = [p for p in site.getsitepackages() if Path(p).is_dir()]
    if site.ENABLE_USER_SITE and Path(site.getusersitepackages()).is_dir():
        ours.append(site.getusersitepackages())
    # addsitedir also runs the .pth files there (an editable fulfil is found through one).
    lines = [f"import site; site.addsitedir({p!r})" for p in ours]
    (Path(purelib) / "_parent_environment.pth").write_text("\n".join(lines) + "\n")
    return python


def test_a_generated_carrier_installs_lists_routes_and_passes_its_tests(
    cli: Callable[..., Result], tmp_path: Path
) -> None:
    problem = wheel_building_problem()
    if problem:
        pytest.fail(f"cannot install a package offline: {problem}; install fulfil's test extra")
    assert cli("plugin", "new", "carrier", "acme").exit_code == 0
    package = tmp_path / "fulfil-acme"
    python = make_venv(tmp_path / "venv")

    installed = run(python, "-m", "pip", "install", "--no-deps", "--no-index",
                    "--no-build-isolation", "--quiet", package, cwd=tmp_path)  # fmt: skip
    assert installed.returncode == 0, installed.stdout + installed.stderr

    tests = run(python, "-m", "pytest", "-p", "no:cacheprovider", "-q", "fulfil-acme",
                cwd=tmp_path)  # fmt: skip
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert " passed" in tests.stdout and "failed" not in tests.stdout

    listed = run(python, "-m", "fulfil.core.cli", "plugins", "--json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert rows["acme"]["kind"] == "carrier" and rows["acme"]["capabilities"] == ["labels"]
    assert rows["acme"]["version"] == "0.1.0"  # the installed distribution's
    assert "sandbox" in rows

    config = tmp_path / "fulfil.toml"
    config.write_text(routing_config("express") + default_config_text(), encoding="utf-8")
    valid = run(python, "-m", "fulfil.core.cli", "config", "validate", config, cwd=tmp_path)
    assert valid.returncode == 0, valid.stdout + valid.stderr
    assert "valid" in valid.stdout

    chosen = run(python, "-c", SELECT_ROUTE, config, json.dumps(order_data(country="DE")),
                 cwd=tmp_path)  # fmt: skip
    assert chosen.returncode == 0, chosen.stderr
    assert chosen.stdout.split() == ["acme", "express"]

    config.write_text(routing_config("overnight") + default_config_text(), encoding="utf-8")
    invalid = run(python, "-m", "fulfil.core.cli", "config", "validate", config, cwd=tmp_path)
    assert invalid.returncode == 1
    assert "carrier 'acme' has no service 'overnight'" in invalid.stderr


def routing_config(service: str) -> str:
    return f"""\
[carriers.acme]
enabled = true

[carriers.acme.settings]
api_key = "env:ACME_API_KEY"

[[routing]]
country = ["DE", "AT"]
carrier = "acme"
service = "{service}"
fallback = {{ carrier = "sandbox", service = "standard" }}

"""


# Run in the new environment: the route fulfil chooses for a German order.
SELECT_ROUTE = """\
import json, sys
from pathlib import Path
from fulfil.core.config import load_config
from fulfil.core.models import Order, Parcel, Shipment
from fulfil.core.plugins import Hooks, make_plugin_manager
from fulfil.core.routing import candidates_for

hooks = Hooks(make_plugin_manager())
config = load_config(Path(sys.argv[1]), hooks.registry)
order = Order.from_mapping(json.loads(sys.argv[2]))
shipment = Shipment(id="shp_1", parcels=(Parcel(weight_g=1200),), items=())
route = hooks.select_carrier(order, shipment, candidates_for(order, shipment, config.routing))
print(route.carrier, route.service)
"""


# --- broken plugins fail the suite, saying why ----------------------------------------------

BROKEN_BASE = '''\
import attrs
import pytest
from fake_api import FakeAcmeAPI
from fulfil.core import hookimpl
from fulfil.testing.conformance import CarrierConformance, secret_value

import fulfil_acme


def registering(**changes):
    """A plugin registering the generated carrier's declaration with ``changes``."""
    found = []
    fulfil_acme.fulfil_register_carriers(register=found.append)

    class Plugin:
        @hookimpl
        def fulfil_register_carriers(self, register):
            register(attrs.evolve(found[0], **changes))

    return Plugin()


class AcmeConformance(CarrierConformance):
    @pytest.fixture
    def fake(self):
        with FakeAcmeAPI(api_key=secret_value("ACME_API_KEY")) as fake:
            yield fake

    @pytest.fixture
    def settings(self, fake):
        return {"api_key": "env:ACME_API_KEY", "base_url": fake.url}
'''

BROKEN = {
    "test_good": """\
class TestGood(AcmeConformance):
    @pytest.fixture
    def plugin(self):
        return fulfil_acme
""",
    "test_rebuys": '''\
class RebuyingCarrier(fulfil_acme.AcmeCarrier):
    """Drops the idempotency key, so a retried purchase buys again."""

    def _call(self, method, path, **kwargs):
        kwargs.get("headers", {}).pop("Idempotency-Key", None)
        return super()._call(method, path, **kwargs)


class TestRebuys(AcmeConformance):
    @pytest.fixture
    def plugin(self):
        return registering(factory=RebuyingCarrier)
''',
    "test_logs_key": '''\
class ChattyCarrier(fulfil_acme.AcmeCarrier):
    """Logs its API key."""

    def buy_label(self, request):
        self._log.debug("calling the API with key %s", self._api_key.reveal())
        return super().buy_label(request)


class TestLogsKey(AcmeConformance):
    @pytest.fixture
    def plugin(self):
        return registering(factory=ChattyCarrier)
''',
    "test_no_pickups": """\
from fulfil.core.carriers import Capability


class TestNoPickups(AcmeConformance):
    @pytest.fixture
    def plugin(self):
        return registering(capabilities={Capability.LABELS, Capability.PICKUPS})
""",
}

SELECTED = (
    "sells_once or no_secret or declared_capabilities or capability_works "
    "or accepts_the_test_settings"
)


def outcomes(report: Path) -> dict[str, str]:
    """``module::test`` -> "passed", "skipped" or the failure message."""
    found = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        name = f"{case.get('classname', '').split('.')[0]}::{case.get('name')}"
        failure = case.find("failure")
        error = case.find("error")
        if failure is not None:
            found[name] = failure.get("message", "")
        elif error is not None:
            found[name] = "error: " + error.get("message", "")
        else:
            found[name] = "skipped" if case.find("skipped") is not None else "passed"
    return found


def test_broken_plugins_fail_the_suite_saying_what_is_wrong(pytester: pytest.Pytester) -> None:
    scaffold.write("carrier", "acme", pytester.path)
    generated = pytester.path / "fulfil-acme"
    (generated / "fulfil_acme").rename(pytester.path / "fulfil_acme")
    (generated / "tests" / "fake_api.py").rename(pytester.path / "fake_api.py")
    for module, body in BROKEN.items():
        (pytester.path / f"{module}.py").write_text(BROKEN_BASE + "\n\n" + body)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-k", SELECTED, "--junitxml=report.xml", timeout=TIMEOUT
    )
    found = outcomes(pytester.path / "report.xml")
    good = {name: outcome for name, outcome in found.items() if name.startswith("test_good")}
    assert len(good) >= 8 and set(good.values()) <= {"passed", "skipped"}, good
    assert result.ret == pytest.ExitCode.TESTS_FAILED

    rebuys = found["test_rebuys::test_buying_twice_with_the_same_key_sells_once"]
    assert "buying twice with the same idempotency_key sold 2 labels" in rebuys
    assert "send LabelRequest.idempotency_key as the service's idempotency key" in rebuys
    assert found["test_rebuys::test_no_secret_reaches_a_log_or_an_error"] == "passed"

    leak = found["test_logs_key::test_no_secret_reaches_a_log_or_an_error"]
    assert "a secret leaked: the secret ACME_API_KEY appeared in a DEBUG log record" in leak
    assert "logger 'fulfil.plugin.acme'" in leak and "calling the API with key" in leak
    assert found["test_logs_key::test_buying_twice_with_the_same_key_sells_once"] == "passed"

    declared = found["test_no_pickups::test_declared_capabilities_are_implemented"]
    assert "carrier 'acme' declares 'pickups' but has no schedule_pickup" in declared
    works = found["test_no_pickups::test_capability_works[pickups]"]
    assert "declares 'pickups' but has no schedule_pickup" in works
    assert found["test_no_pickups::test_capability_works[labels]"] == "passed"
    assert found["test_no_pickups::test_buying_twice_with_the_same_key_sells_once"] == "passed"

    failing = sorted(
        name for name, outcome in found.items() if outcome not in ("passed", "skipped")
    )
    assert failing == [
        "test_logs_key::test_no_secret_reaches_a_log_or_an_error",
        "test_no_pickups::test_capability_works[pickups]",
        "test_no_pickups::test_declared_capabilities_are_implemented",
        "test_rebuys::test_buying_twice_with_the_same_key_sells_once",
    ]
