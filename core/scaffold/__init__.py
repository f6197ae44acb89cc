"""``fulfil plugin new``: an installable plugin package, rendered from the templates here.

The templates (``carrier/`` and ``notifier/``, package data) are Jinja2 files ending in
``.jinja``; a ``__module__`` folder becomes the plugin's module. The package is rendered
in memory and written only when every file rendered, so a failure leaves nothing behind.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator, Mapping
from importlib import metadata, resources
from importlib.resources.abc import Traversable
from pathlib import Path

import attrs
from fulfil.core.errors import InputError

__all__ = ["KINDS", "Names", "render", "write"]

KINDS = ("carrier", "notifier")
SUFFIX = ".jinja"
MODULE_DIR = "__module__"
_NAME = re.compile(r"^[a-z][a-z0-9]*(?:[_-][a-z0-9]+)*$")
MAX_NAME = 40


@attrs.frozen
class Names:
    """Every spelling of a plugin's name the templates need."""

    name: str  # what fulfil knows it by: acme_post
    slug: str  # acme-post
    module: str  # fulfil_acme_post
    dist: str  # fulfil-acme-post
    title: str  # Acme Post
    class_name: str  # AcmePost
    env_var: str  # ACME_POST_API_KEY
    tracking_prefix: str  # AC, for the fake's tracking numbers

    @classmethod
    def parse(cls, raw: str) -> Names:
        """Check ``raw`` is a plugin name; raise ``InputError`` saying why not."""
        if not _NAME.match(raw) or len(raw) > MAX_NAME:
            raise InputError(
                f"{raw!r} is not a valid plugin name: use lower-case letters and digits, "
                f"starting with a letter, words joined by single _ or - (e.g. acme or "
                f"acme_post), at most {MAX_NAME} characters"
            )
        words = re.split(r"[_-]", raw)
        name = "_".join(words)
        return cls(
            name=name,
            slug="-".join(words),
            module=f"fulfil_{name}",
            dist=f"fulfil-{'-'.join(words)}",
            title=" ".join(w.capitalize() for w in words),
            class_name="".join(w.capitalize() for w in words),
            env_var=f"{name.upper()}_API_KEY",
            tracking_prefix="".join(words).upper()[:2],
        )


def _templates(folder: Traversable, prefix: str = "") -> Iterator[tuple[str, Traversable]]:
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        relative = f"{prefix}{entry.name}"
        if entry.is_dir():
            yield from _templates(entry, relative + "/")
        elif entry.name.endswith(SUFFIX):
            yield relative[: -len(SUFFIX)], entry


def _requirement(extra: str = "") -> str:
    try:
        version = metadata.version("fulfil")
    except metadata.PackageNotFoundError:  # pragma: no cover - a bare source tree
        version = "0.1"
    release = ".".join(version.split("+")[0].split(".")[:2])
    return f"fulfil{extra}>={release}"


def render(kind: str, names: Names, *, channel: str = "push") -> dict[str, str]:
    """The package's files (relative path -> text) for a plugin of ``kind``."""
    from jinja2 import Environment, StrictUndefined

    if kind not in KINDS:
        raise InputError(f"{kind!r} is not a kind of plugin; choose one of {', '.join(KINDS)}")
    # The files are Python, TOML and Markdown: nothing to escape.
    env = Environment(keep_trailing_newline=True, undefined=StrictUndefined, autoescape=False)
    values: Mapping[str, str] = {
        **attrs.asdict(names),
        "channel": channel,
        "fulfil_requirement": _requirement(),
        "testing_requirement": _requirement("[testing]"),
    }
    files: dict[str, str] = {}
    for relative, template in _templates(resources.files(__name__).joinpath(kind)):
        path = relative.replace(MODULE_DIR, names.module)
        files[path] = env.from_string(template.read_text(encoding="utf-8")).render(values)
    return files


def write(kind: str, raw_name: str, parent: Path, *, channel: str = "push") -> Path:
    """Render a ``kind`` plugin named ``raw_name`` into ``parent/fulfil-NAME``; return it.

    Raises ``InputError`` for a bad name or when the folder exists already (nothing is
    overwritten).
    """
    names = Names.parse(raw_name)
    target = parent / names.dist
    if target.exists():
        raise InputError(f"{target}: exists already; choose another name or move it away")
    files = render(kind, names, channel=channel)
    staging = parent / f".{names.dist}.partial"
    shutil.rmtree(staging, ignore_errors=True)  # left by an earlier run that was killed
    try:
        for relative, text in files.items():
            path = staging / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
