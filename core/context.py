"""What the core hands a plugin's factory besides its settings."""

from __future__ import annotations

import logging
from pathlib import Path

import attrs
import httpx

__all__ = ["PluginContext"]


@attrs.frozen
class PluginContext:
    """Injected into every carrier and notifier factory.

    ``client`` is the one ``httpx.Client`` the core built (timeouts, pooling); a plugin
    never builds its own. ``data_dir`` is where the plugin may keep files (labels, sinks,
    ledgers): relative paths in its settings are resolved against it.
    """

    client: httpx.Client
    data_dir: Path
    log: logging.Logger = attrs.field(factory=lambda: logging.getLogger("fulfil.plugin"))

    def path(self, value: str | Path) -> Path:
        """Resolve a path from the plugin's settings against ``data_dir``."""
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.data_dir / path
