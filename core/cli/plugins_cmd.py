"""`fulfil plugins`: what is installed, and what each carrier and notifier declares."""

from __future__ import annotations

import json

import click
from fulfil.core.cli.common import State, console, pass_state
from rich.table import Table


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@pass_state
def plugins(state: State, as_json: bool) -> None:
    """List installed plugins with their capabilities or channel."""
    rows = state.hooks.registry.describe(state.hooks.pm)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table("name", "kind", "version", "capabilities / channel", "countries")
    for row in rows:
        what = ", ".join(row.get("capabilities", [])) or row.get("channel", "")
        table.add_row(
            row["name"], row["kind"], row["version"], what, ", ".join(row.get("countries", []))
        )
    console.print(table)


def register(main: click.Group) -> None:
    main.add_command(plugins)
