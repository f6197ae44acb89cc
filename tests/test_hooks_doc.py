"""docs/hooks.md documents every hook in fulfil.core.hookspecs, with its exact signature."""

from __future__ import annotations

import inspect
import re
import types
from pathlib import Path
from typing import Any

import pluggy
import pytest
from fulfil.core import hookspecs

DOC = Path(__file__).parents[1] / "docs" / "hooks.md"
HEADING = re.compile(r"^### `(fulfil_\w+)\((.*?)\) -> (.+)`$", re.MULTILINE)
FIRSTRESULT = re.compile(r"\*\*firstresult:\*\* (yes|no)\b")


def specs(module: types.ModuleType) -> dict[str, Any]:
    """Every hook spec of a module: name -> function."""
    return {
        name: func
        for name, func in inspect.getmembers(module, inspect.isfunction)
        if name.startswith("fulfil_") and hasattr(func, "fulfil_spec")
    }


def heading(func: Any) -> str:
    signature = inspect.signature(func)
    returned = signature.return_annotation
    if not isinstance(returned, str):  # a module without `from __future__ import annotations`
        returned = inspect.formatannotation(returned)
    return f"### `{func.__name__}({', '.join(signature.parameters)}) -> {returned}`"


def sections(text: str) -> dict[str, str]:
    """Hook name -> its section: from its heading to the next ``##`` or ``###`` heading."""
    found = {}
    for match in HEADING.finditer(text):
        rest = text[match.end() :]
        end = re.search(r"^#{2,3} ", rest, re.MULTILINE)
        found[match[1]] = match[0] + (rest[: end.start()] if end else rest)
    return found


def mismatches(module: types.ModuleType, text: str) -> list[str]:
    """Everything in which ``text`` fails to document the hooks of ``module``."""
    hooks = specs(module)
    documented = sections(text)
    errors = []
    for name, func in sorted(hooks.items()):
        expected = heading(func)
        if name not in documented:
            errors.append(f"{name}: not documented")
            continue
        section = documented[name]
        if not section.startswith(expected + "\n"):
            errors.append(f"{name}: heading is not {expected!r}")
        said = FIRSTRESULT.search(section)
        firstresult = func.fulfil_spec["firstresult"]
        if said is None or (said[1] == "yes") != firstresult:
            errors.append(f"{name}: must say '**firstresult:** {'yes' if firstresult else 'no'}'")
        for arg in inspect.signature(func).parameters:
            if f"`{arg}`" not in section:
                errors.append(f"{name}: argument `{arg}` is not described")
    for name in sorted(set(re.findall(r"\bfulfil_\w+", text)) - set(hooks)):
        errors.append(f"{name}: documented but no such hook exists")
    return errors


def test_every_hook_is_documented_with_its_exact_signature() -> None:
    assert specs(hookspecs), "no hook specs found: the test is looking in the wrong place"
    assert mismatches(hookspecs, DOC.read_text(encoding="utf-8")) == []


def test_doc_is_grouped_like_hookspecs() -> None:
    text = DOC.read_text(encoding="utf-8")
    groups = [m for m in re.findall(r"^## (.+)$", text, re.MULTILINE) if m != "Writing a plugin"]
    assert groups == ["Registration", "Routing", "Lifecycle observers", "Notifications"]
    source = inspect.getsource(hookspecs)
    in_source = sorted(specs(hookspecs), key=lambda name: source.index(f"def {name}("))
    assert list(sections(text)) == in_source


# The check itself must catch each kind of drift, or the test above proves nothing.

hookspec = pluggy.HookspecMarker("fulfil")


def drifted(change: str) -> types.ModuleType:
    """A copy of the real specs with one hook added, removed or re-signed."""
    module = types.ModuleType("drifted")
    module.__dict__.update(specs(hookspecs))
    if change == "added":

        @hookspec
        def fulfil_order_archived(order: Any) -> None: ...

        module.__dict__["fulfil_order_archived"] = fulfil_order_archived
    elif change == "removed":
        del module.__dict__["fulfil_pickup_scheduled"]
    elif change == "argument":

        @hookspec
        def fulfil_order_placed(order: Any, source: Any) -> None: ...

        module.__dict__["fulfil_order_placed"] = fulfil_order_placed
    elif change == "return":

        @hookspec(firstresult=True)
        def fulfil_select_carrier(order: Any, shipment: Any, candidates: Any) -> str: ...

        module.__dict__["fulfil_select_carrier"] = fulfil_select_carrier
    elif change == "firstresult":

        @hookspec(firstresult=True)
        def fulfil_order_placed(order: Any) -> None: ...

        module.__dict__["fulfil_order_placed"] = fulfil_order_placed
    return module


@pytest.mark.parametrize("change", ["added", "removed", "argument", "return", "firstresult"])
def test_drift_is_caught(change: str) -> None:
    assert mismatches(drifted(change), DOC.read_text(encoding="utf-8")) != []
