"""`fulfil plugin new carrier|notifier NAME`: start a plugin package that passes its tests."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import click
from fulfil.core.cli.common import State, console, pass_state
from fulfil.core.errors import FulfilError, InputError
from fulfil.core.notifiers import Channel


@click.group("plugin")
def plugin() -> None:
    """Write your own carrier or notifier plugin."""


@plugin.group("new")
def new() -> None:
    """Start a plugin package: code, a fake API, the conformance test, a README."""


_OUTPUT = click.option(
    "-o",
    "--output",
    "parent",
    type=click.Path(exists=True, file_okay=False, writable=True, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Folder to write fulfil-NAME/ into.",
)


@new.command("carrier")
@click.argument("name")
@_OUTPUT
@pass_state
def new_carrier(state: State, name: str, parent: Path) -> None:
    """A carrier plugin NAME (e.g. acme_post) that buys labels from an example API."""
    _create(state, "carrier", name, parent, "push")


@new.command("notifier")
@click.argument("name")
@click.option(
    "--channel",
    type=click.Choice([c.value for c in Channel]),
    default=Channel.PUSH.value,
    show_default=True,
    help="What the notifier sends.",
)
@_OUTPUT
@pass_state
def new_notifier(state: State, name: str, channel: str, parent: Path) -> None:
    """A notifier plugin NAME (e.g. acme_push) that sends through an example API."""
    _create(state, "notifier", name, parent, channel)


def _create(state: State, kind: str, raw_name: str, parent: Path, channel: str) -> None:
    from fulfil.core import scaffold

    names = scaffold.Names.parse(raw_name)
    _check_unused(state, kind, names.name)
    target = scaffold.write(kind, raw_name, parent, channel=channel)
    console.print(f"wrote {target}/ ({kind} {names.name!r}, module {names.module})")
    console.print(
        f'next: cd {target} && pip install -e ".[test]" && pytest', highlight=False, markup=False
    )


def _check_unused(state: State, kind: str, name: str) -> None:
    """A second plugin of the same name would be refused when both are installed."""
    entry_points = {ep.name for ep in metadata.entry_points(group="fulfil")}
    if name in entry_points:
        raise InputError(
            f"an installed plugin's entry point is named {name!r} already; choose another name"
        )
    try:
        registry = state.hooks.registry
    except FulfilError:  # a broken installed plugin: the entry-point check has to do
        return
    table = registry.carriers if kind == "carrier" else registry.notifiers
    if name in table:
        raise InputError(f"a {kind} named {name!r} is installed already; choose another name")


def register(main: click.Group) -> None:
    main.add_command(plugin)
