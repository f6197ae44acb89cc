"""What every command shares: the root group, loading config and engine, error reporting."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from fulfil.core import __version__
from fulfil.core.config import Config, load_config
from fulfil.core.errors import FulfilError, ValidationFailed
from fulfil.core.plugins import Hooks, make_plugin_manager
from rich.console import Console

DEFAULT_CONFIG = "fulfil.toml"

console = Console()
err_console = Console(stderr=True)


class FulfilGroup(click.Group):
    """Turns fulfil's own errors into a clear message and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ValidationFailed as error:
            for problem in error.problems:
                err_console.print(
                    f"[red]error[/red]: {problem}", highlight=False, markup=True, soft_wrap=True
                )
            ctx.exit(1)
        except FulfilError as error:
            err_console.print(f"[red]error[/red]: {error}", highlight=False, soft_wrap=True)
            ctx.exit(1)


@click.group(cls=FulfilGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fulfil")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="FULFIL_CONFIG",
    help=f"Config file (default: ./{DEFAULT_CONFIG} if present, else the embedded default).",
)
@click.option("-v", "--verbose", count=True, help="Log more (-vv for debug).")
@click.pass_context
def main(ctx: click.Context, config_path: Path | None, verbose: int) -> None:
    """fulfil: paid orders become labels, pickups and messages, automatically."""
    logging.basicConfig(
        level=[logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)],
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    ctx.obj = State(config_path)


class State:
    """Lazily built, so ``--help`` and ``plugins`` do no work they do not need."""

    def __init__(self, config_path: Path | None) -> None:
        self.explicit_config = config_path
        self._hooks: Hooks | None = None

    @property
    def config_path(self) -> Path | None:
        if self.explicit_config is not None:
            return self.explicit_config
        default = Path(DEFAULT_CONFIG)
        return default if default.exists() else None

    @property
    def hooks(self) -> Hooks:
        if self._hooks is None:
            self._hooks = Hooks(make_plugin_manager())
        return self._hooks

    def config(self, *, base_dir: Path | None = None) -> Config:
        return load_config(self.config_path, self.hooks.registry, base_dir=base_dir)

    @contextmanager
    def engine(self, config: Config | None = None) -> Iterator[Any]:
        from fulfil.core.engine import Engine

        with Engine(config or self.config(), pm=self.hooks.pm) as engine:
            yield engine


pass_state = click.make_pass_decorator(State)


def quiet() -> bool:
    return bool(os.environ.get("CI")) or not console.is_terminal
