"""docs/plugin-tutorial.md works as printed.

Its code blocks marked ``file=PATH`` are written into a fresh folder (blocks naming the same
file are joined in order), then: the plugin imports and registers, its conformance test
passes under pytest in a subprocess, and its ``fulfil.toml`` fragment validates and routes
parcels to it.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest
from fulfil.core.config import default_config_text, load_config
from fulfil.core.plugins import Hooks, make_plugin_manager
from fulfil.plugins.carriers import sandbox
from fulfil.plugins.notifiers import jsonl, maildir

TUTORIAL = Path(__file__).parents[1] / "docs" / "plugin-tutorial.md"
FENCE = re.compile(r"^```(?P<lang>[\w-]*)(?P<info>[^\n]*)\n(?P<body>.*?)^```[ \t]*$", re.M | re.S)
FILE = re.compile(r"\bfile=(\S+)")
RUN_LANGUAGES = {"python", "toml"}


def code_blocks() -> list[tuple[str, str | None, str]]:
    """(language, file or None, body) of every fenced block, in order."""
    text = TUTORIAL.read_text(encoding="utf-8")
    found = []
    for match in FENCE.finditer(text):
        named = FILE.search(match["info"])
        found.append((match["lang"], named.group(1) if named else None, match["body"]))
    return found


def write_package(root: Path) -> dict[str, Path]:
    files: dict[str, list[str]] = {}
    for _, name, body in code_blocks():
        if name is not None:
            files.setdefault(name, []).append(body)
    written = {}
    for name, bodies in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n\n".join(b.rstrip("\n") + "\n" for b in bodies), encoding="utf-8")
        written[name] = path
    return written


@pytest.fixture
def package(tmp_path: Path) -> Path:
    root = tmp_path / "fulfil-acme-post"
    write_package(root)
    return root


def import_plugin(package: Path) -> ModuleType:
    # Under its own name, so that nothing is left in sys.modules for other tests.
    path = package / "acme_post" / "__init__.py"
    spec = importlib.util.spec_from_file_location("tutorial_acme_post", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_python_and_toml_block_names_its_file() -> None:
    unnamed = [
        body[:60] for lang, name, body in code_blocks() if lang in RUN_LANGUAGES and not name
    ]
    assert not unnamed, f"code blocks the test cannot run (add file=...): {unnamed}"


def test_the_tutorial_writes_the_whole_package(package: Path) -> None:
    assert {p.relative_to(package).as_posix() for p in package.rglob("*") if p.is_file()} == {
        "pyproject.toml",
        "acme_post/__init__.py",
        "tests/fake_acme_post.py",
        "tests/test_acme_post.py",
        "fulfil.toml",
    }
    project = tomllib.loads((package / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["entry-points"]["fulfil"] == {"acme_post": "acme_post"}
    assert any(
        d.startswith("fulfil[testing]") for d in project["project"]["optional-dependencies"]["test"]
    )


def test_the_plugin_registers_a_carrier(package: Path) -> None:
    registry = Hooks(make_plugin_manager([import_plugin(package)], load_entrypoints=False)).registry
    carrier = registry.carrier("acme_post")
    assert carrier.describe()["capabilities"] == ["labels"]
    assert carrier.services == ("economy", "standard", "express")


def test_the_conformance_suite_passes(package: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rfEs"],
        cwd=package,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    summary = result.stdout.strip().splitlines()[-1]
    passed = int(re.search(r"(\d+) passed", summary).group(1))  # type: ignore[union-attr]
    assert passed >= 15 and "failed" not in summary and "error" not in summary, summary


def test_the_config_fragment_validates_and_routes_to_the_plugin(
    package: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(package)
    fragment = (package / "fulfil.toml").read_text(encoding="utf-8")
    # Before the default config, so its rule comes before the catch-all one, as advised.
    config_path = package / "fulfil.toml"
    config_path.write_text(fragment + "\n" + default_config_text(), encoding="utf-8")
    plugins = [import_plugin(package), sandbox, maildir, jsonl]
    registry = Hooks(make_plugin_manager(plugins, load_entrypoints=False)).registry
    config = load_config(config_path, registry)
    assert config.carriers["acme_post"] == {
        "api_key": "env:ACME_POST_API_KEY",
        "base_url": "https://api.acmepost.example",
        "default_service": "standard",
    }
    first = config.routing[0]
    assert first.route.carrier == "acme_post" and first.fallback is not None
    assert first.matches("BE", 1200, "shipping") and not first.matches("DE", 1200, "shipping")
