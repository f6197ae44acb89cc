"""Credentials are references in the config (``env:SENDCLOUD_SECRET``), never values.

``resolve_secrets`` swaps each reference for a ``Secret`` whose ``repr``/``str`` hide the
value, so a settings mapping can be logged, shown in an error or stored without leaking.
A plugin calls ``.reveal()`` only at the moment it builds a request.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from fulfil.core.errors import ConfigError

__all__ = ["Secret", "resolve_secrets"]

PREFIX = "env:"


class Secret:
    __slots__ = ("_value", "name")

    def __init__(self, name: str, value: str) -> None:
        self.name = name
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self.name!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self.name)


def resolve_secrets(settings: Mapping[str, Any], where: str = "") -> dict[str, Any]:
    """Return ``settings`` with every ``env:NAME`` string replaced by a ``Secret``."""
    resolved: dict[str, Any] = {}
    for key, value in settings.items():
        path = f"{where}.{key}" if where else key
        if isinstance(value, Mapping):
            resolved[key] = resolve_secrets(value, path)
        elif isinstance(value, str) and value.startswith(PREFIX):
            name = value[len(PREFIX) :]
            if name not in os.environ:
                raise ConfigError(f"{path}: environment variable {name} is not set")
            resolved[key] = Secret(name, os.environ[name])
        else:
            resolved[key] = value
    return resolved


def reveal(value: Secret | str) -> str:
    """A secret's value, or a plain string as is (tests may pass literals)."""
    return value.reveal() if isinstance(value, Secret) else value
