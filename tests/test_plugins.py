"""The plugin manager: entry points, FULFIL_DISABLE_PLUGINS, fail-fast checks, registry."""

from __future__ import annotations

import logging

import pluggy
import pytest
from fulfil.core.carriers import CarrierPlugin
from fulfil.core.errors import PluginError
from fulfil.core.hookspecs import hookimpl
from fulfil.core.plugins import Hooks, make_plugin_manager
from fulfil.core.states import StatusChange


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


# --------------------------------------------------------------------------- observers

CHANGE = StatusChange("ord-1", "fulfilment", "PROCESSING", "SHIPPED", 4)


class Seen:
    def __init__(self, log: list[str], name: str) -> None:
        self.log, self.name = log, name

    @hookimpl
    def fulfil_status_changed(self, order, change):
        self.log.append(f"{self.name}:{order}:{change.new}")


class OnlyTheChange:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    @hookimpl
    def fulfil_status_changed(self, change):
        self.log.append(f"change-only:{change.new}")


class Reversed:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    @hookimpl
    def fulfil_status_changed(self, change, order):
        self.log.append(f"reversed:{order}:{change.new}")


class Failing:
    @hookimpl
    def fulfil_status_changed(self, order, change):
        raise RuntimeError("listener bug")


def test_listeners_registered_or_unregistered_later_are_seen():
    log: list[str] = []
    pm = make_plugin_manager(load_entrypoints=False)
    hooks = Hooks(pm)
    assert hooks.status_changed("o", CHANGE) == [] and log == []
    a = Seen(log, "a")
    pm.register(a)
    hooks.status_changed("o", CHANGE)
    assert log == ["a:o:SHIPPED"]
    b = Seen(log, "b")
    pm.register(b)
    log.clear()
    hooks.status_changed("o", CHANGE)
    assert log == ["b:o:SHIPPED", "a:o:SHIPPED"]  # pluggy's order: last registered first
    # as many listeners as before, but another one
    pm.unregister(a)
    pm.register(Seen(log, "c"))
    log.clear()
    hooks.status_changed("o", CHANGE)
    assert log == ["c:o:SHIPPED", "b:o:SHIPPED"]
    pm.unregister(b)
    log.clear()
    hooks.status_changed("o", CHANGE)
    assert log == ["c:o:SHIPPED"]


def test_listeners_get_the_arguments_they_name():
    log: list[str] = []
    pm = make_plugin_manager(
        [Seen(log, "all"), OnlyTheChange(log), Reversed(log)], load_entrypoints=False
    )
    assert Hooks(pm).status_changed("o", CHANGE) == []
    assert log == ["reversed:o:SHIPPED", "change-only:SHIPPED", "all:o:SHIPPED"]


def test_a_failing_listener_is_logged_and_stops_no_other(caplog):
    log: list[str] = []
    pm = make_plugin_manager([Seen(log, "a"), Failing(), Seen(log, "b")], load_entrypoints=False)
    hooks = Hooks(pm)
    with caplog.at_level(logging.ERROR, logger="fulfil.core.plugins"):
        failures = hooks.status_changed("o", CHANGE)
        failures += hooks.status_changed("o", CHANGE)  # the same again, from the cache
    assert log == ["b:o:SHIPPED", "a:o:SHIPPED"] * 2
    assert len(failures) == 2
    assert all(f.endswith(": RuntimeError: listener bug") for f in failures)
    assert [r.getMessage() for r in caplog.records] == [
        f"listener {failures[0].split(':')[0]} of fulfil_status_changed failed"
    ] * 2
    assert all(r.exc_info for r in caplog.records)
