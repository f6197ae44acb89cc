"""The ``fulfil`` command line (click). Exit codes: 0 done, 1 bad input, 2 usage error."""

from __future__ import annotations

from fulfil.core.cli import (
    config_cmd,
    orders_cmd,
    outbox_cmd,
    plugin_cmd,
    plugins_cmd,
    run_cmd,
)
from fulfil.core.cli.common import main

for module in (config_cmd, orders_cmd, outbox_cmd, plugin_cmd, plugins_cmd, run_cmd):
    module.register(main)

__all__ = ["main"]
