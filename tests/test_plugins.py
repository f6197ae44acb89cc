"""The plugin manager: entry points, FULFIL_DISABLE_PLUGINS, fail-fast checks, registry."""

from __future__ import annotations

import pluggy
import pytest
from fulfil.core.carriers import CarrierPlugin
from fulfil.core.errors import PluginError
from fulfil.core.hookspecs import hookimpl
from fulfil.core.plugins import Hooks, make_plugin_manager


def names(pm) -> set[str]:
    registry = Hooks(pm).registry
    return set(registry.carriers) | set(registry.notifiers)


def test_in_tree_plugins_come_from_the_fulfil_entry_points():
    pm = make_plugin_manager()
    assert {"sandbox", "maildir", "sms_log", "push_log"} <= names(pm)
    dists = {plugin.__name__: dist.project_name for plugin, dist in pm.list_plugin_distinfo()}
    assert dists["fulfil.plugins.carriers.sandbox"] == "fulfil"


def test_disable_plugins_by_name_or_all(monkeypatch):
    monkeypatch.setenv("FULFIL_DISABLE_PLUGINS", "sandbox")
    assert "sandbox" not in names(make_plugin_manager())
    monkeypatch.setenv("FULFIL_DISABLE_PLUGINS", "*")
    assert names(make_plugin_manager()) == set()


class Misspelled:
    @hookimpl
    def fulfil_status_chagned(self, order):  # the typo must not pass silently
        pass


def test_a_misspelled_hook_fails_at_start_up():
    with pytest.raises(pluggy.PluginValidationError):
        make_plugin_manager([Misspelled()], load_entrypoints=False)


class Twice:
    @hookimpl
    def fulfil_register_carriers(self, register):
        register(
            CarrierPlugin(name="sandbox", factory=dict, capabilities={"labels"}, countries={"*"})
        )


def test_a_second_carrier_with_the_same_name_is_refused():
    pm = make_plugin_manager([Twice()])
    with pytest.raises(PluginError, match="registered twice"):
        Hooks(pm).registry  # noqa: B018 - building it is the test


class NotACarrier:
    @hookimpl
    def fulfil_register_carriers(self, register):
        register({"name": "dict"})


def test_registering_something_else_is_refused():
    with pytest.raises(PluginError, match="not a CarrierPlugin"):
        Hooks(make_plugin_manager([NotACarrier()], load_entrypoints=False)).registry  # noqa: B018
