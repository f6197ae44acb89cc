"""`fulfil init` and `fulfil config validate`."""

from __future__ import annotations

from pathlib import Path

import click
from fulfil.core.cli.common import DEFAULT_CONFIG, State, console, pass_state
from fulfil.core.config import default_config_text
from fulfil.core.errors import InputError


@click.group("config")
def config() -> None:
    """Check the configuration."""


@config.command("validate")
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@pass_state
def validate(state: State, file: Path | None) -> None:
    """Validate FILE (default: the active config) against the schema and plugin settings."""
    if file is not None:
        if not file.exists():
            raise InputError(f"{file}: no such file")
        state.explicit_config = file
    cfg = state.config()
    from fulfil.core.notify.render import check_templates

    problems = check_templates(cfg.templates_dir)
    if problems:
        from fulfil.core.errors import Problem, ValidationFailed

        raise ValidationFailed([Problem(cfg.source, "templates", p) for p in problems])
    console.print(
        f"{cfg.source}: valid ({len(cfg.carriers)} carrier(s), "
        f"{len(cfg.notifiers)} notifier(s), {len(cfg.routing)} routing rule(s))"
    )


@click.command()
@click.argument("file", default=DEFAULT_CONFIG, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def init(file: Path, force: bool) -> None:
    """Write a commented starter config (it validates as written)."""
    if file.exists() and not force:
        raise InputError(f"{file}: exists already (use --force to overwrite)")
    file.write_text(default_config_text(), encoding="utf-8")
    console.print(f"wrote {file}; edit it, then run `fulfil config validate {file}`")


def register(main: click.Group) -> None:
    main.add_command(config)
    main.add_command(init)
