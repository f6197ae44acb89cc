"""fulfil's core: models, state machines, hooks, store, engine and CLI."""

from importlib import metadata

from fulfil.core.hookspecs import hookimpl, hookspec

try:
    __version__ = metadata.version("fulfil")
except metadata.PackageNotFoundError:  # pragma: no cover - a bare source tree
    __version__ = "0+unknown"

__all__ = ["__version__", "hookimpl", "hookspec"]
