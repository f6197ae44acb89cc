"""The plugin manager, the registry of carriers and notifiers, and the typed hook facade.

Nothing happens at import time: ``make_plugin_manager()`` adds the specs, registers the
built-in behaviour (routing, notification policy, template renderer), loads the ``fulfil``
entry points unless ``FULFIL_DISABLE_PLUGINS`` says not to, and calls ``check_pending()``
so a misspelled hook fails at start-up rather than being silently never called.

``FULFIL_DISABLE_PLUGINS``: a comma-separated list of entry-point names to skip, or ``*``
to load no entry points at all (tests register exactly the plugins they need).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Sequence
from functools import cached_property
from importlib import metadata
from typing import Any, NamedTuple

import attrs
import pluggy
from fulfil.core import hookspecs
from fulfil.core.carriers import CarrierPlugin
from fulfil.core.errors import PluginError
from fulfil.core.models import Label, Order, Pickup, Shipment
from fulfil.core.notifiers import NotifierPlugin
from fulfil.core.notify.notices import Notice, Rendered
from fulfil.core.routing import Route
from fulfil.core.states import StatusChange

__all__ = ["Hooks", "Registry", "make_plugin_manager"]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "fulfil"
DISABLE_ENV = "FULFIL_DISABLE_PLUGINS"


def _builtin_plugins() -> list[object]:
    from fulfil.core.notify.policy import BuiltinPolicy
    from fulfil.core.notify.render import BuiltinRenderer
    from fulfil.core.routing import BuiltinRouting

    return [BuiltinRouting(), BuiltinPolicy(), BuiltinRenderer()]


def make_plugin_manager(
    plugins: Iterable[object] = (), *, load_entrypoints: bool = True
) -> pluggy.PluginManager:
    """Build the plugin manager: specs, built-ins, entry points, then ``plugins``."""
    pm = pluggy.PluginManager("fulfil")
    pm.add_hookspecs(hookspecs)
    for builtin in _builtin_plugins():
        pm.register(builtin, name=f"fulfil.builtin.{type(builtin).__name__}")
    disabled = {n.strip() for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()}
    if load_entrypoints and "*" not in disabled:
        for name in disabled:
            pm.set_blocked(name)
        pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    for plugin in plugins:
        pm.register(plugin)
    pm.check_pending()
    return pm


def _dist_version(pm: pluggy.PluginManager, plugin: object) -> str:
    for loaded, dist in pm.list_plugin_distinfo():
        if loaded is plugin:
            return str(dist.version)
    try:
        return metadata.version("fulfil")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare tree
        return "0"


class Registry:
    """Carriers and notifiers the installed plugins registered, by name."""

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.carriers: dict[str, CarrierPlugin] = {}
        self.notifiers: dict[str, NotifierPlugin] = {}
        self.sources: dict[str, str] = {}  # "kind:name" -> entry-point/plugin name
        for impl in pm.hook.fulfil_register_carriers.get_hookimpls():
            impl.function(register=self._adder(self.carriers, "carrier", pm, impl))
        for impl in pm.hook.fulfil_register_notifiers.get_hookimpls():
            impl.function(register=self._adder(self.notifiers, "notifier", pm, impl))

    def _adder(self, table: dict[str, Any], kind: str, pm: pluggy.PluginManager, impl: Any) -> Any:
        expected = CarrierPlugin if kind == "carrier" else NotifierPlugin
        version = _dist_version(pm, impl.plugin)

        def register(item: Any) -> None:
            if not isinstance(item, expected):
                raise PluginError(
                    f"plugin {impl.plugin_name!r} registered {item!r}, not a {expected.__name__}"
                )
            if item.name in table:
                raise PluginError(
                    f"{kind} {item.name!r} registered twice (by "
                    f"{self.sources[f'{kind}:{item.name}']!r} and {impl.plugin_name!r})"
                )
            if item.version == "0":
                item = attrs.evolve(item, version=version)
            table[item.name] = item
            self.sources[f"{kind}:{item.name}"] = impl.plugin_name

        return register

    def carrier(self, name: str) -> CarrierPlugin:
        try:
            return self.carriers[name]
        except KeyError:
            raise PluginError(f"no carrier plugin named {name!r} is installed") from None

    def notifier(self, name: str) -> NotifierPlugin:
        try:
            return self.notifiers[name]
        except KeyError:
            raise PluginError(f"no notifier plugin named {name!r} is installed") from None

    def describe(self, pm: pluggy.PluginManager) -> list[dict[str, Any]]:
        """One entry per installed plugin: carriers, notifiers, then other hook plugins."""
        rows: list[dict[str, Any]] = [c.describe() for c in self.carriers.values()]
        rows += [n.describe() for n in self.notifiers.values()]
        providers = set(self.sources.values())
        for name, plugin in pm.list_name_plugin():
            if name in providers or name.startswith("fulfil.builtin."):
                continue
            rows.append({"name": name, "kind": "other", "version": _dist_version(pm, plugin)})
        return rows


class _Listener(NamedTuple):
    function: Callable[..., object]
    plugin_name: str
    argnames: tuple[str, ...] | None  # None: it takes every argument, in the hook's order


class Hooks:
    """Typed, keyword-only calls into the plugin manager; the only caller of ``pm.hook``."""

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.pm = pm
        # hook name -> (pluggy's implementations when last seen, the listeners made of them)
        self._listeners: dict[str, tuple[list[Any], tuple[_Listener, ...]]] = {}

    @cached_property
    def registry(self) -> Registry:
        return Registry(self.pm)

    def select_carrier(
        self, order: Order, shipment: Shipment, candidates: Sequence[Route]
    ) -> Route | None:
        route: Route | None = self.pm.hook.fulfil_select_carrier(
            order=order, shipment=shipment, candidates=list(candidates)
        )
        return route

    def notifications_for(
        self, order: Order, change: StatusChange, settings: dict[str, Any]
    ) -> list[Notice]:
        seen: dict[Notice, None] = {}
        for notices in self.pm.hook.fulfil_notifications_for(
            order=order, change=change, settings=settings
        ):
            seen.update(dict.fromkeys(notices or ()))
        return list(seen)

    def render_notification(
        self, notice: Notice, order: Order, locale: str, context: dict[str, Any]
    ) -> Rendered | None:
        rendered: Rendered | None = self.pm.hook.fulfil_render_notification(
            notice=notice, order=order, locale=locale, context=context
        )
        return rendered

    # Observers: each implementation runs on its own so that one failure stops nothing.
    def order_placed(self, order: Order) -> list[str]:
        return self._observe("fulfil_order_placed", ("order",), order)

    def status_changed(self, order: Order, change: StatusChange) -> list[str]:
        return self._observe("fulfil_status_changed", ("order", "change"), order, change)

    def label_purchased(self, order: Order, shipment: Shipment, label: Label) -> list[str]:
        return self._observe(
            "fulfil_label_purchased", ("order", "shipment", "label"), order, shipment, label
        )

    def pickup_scheduled(self, pickup: Pickup) -> list[str]:
        return self._observe("fulfil_pickup_scheduled", ("pickup",), pickup)

    def _observe(self, hook_name: str, names: tuple[str, ...], *args: Any) -> list[str]:
        """Call every listener with the ``args`` (named ``names``) it takes; return one line
        per listener that raised."""
        failures = []
        for function, plugin_name, argnames in self._listeners_of(hook_name, names):
            try:
                if argnames is None:
                    function(*args)
                else:
                    given = dict(zip(names, args, strict=True))
                    function(*[given[name] for name in argnames])
            except Exception as exc:  # a listener must not stop the others or the change
                log.exception("listener %s of %s failed", plugin_name, hook_name)
                failures.append(f"{plugin_name}: {type(exc).__name__}: {exc}")
        return failures

    def _listeners_of(self, hook_name: str, names: tuple[str, ...]) -> tuple[_Listener, ...]:
        """The hook's implementations in pluggy's calling order (last registered first).

        Cached because reading each one's name and arguments on every call is most of the
        cost of a status change's dispatch. The cache holds pluggy's list as it was, which
        any ``register`` or ``unregister`` changes: comparing the two (by identity, a few
        elements) is what keeps plugins registered later on from being missed. An entry is
        replaced as one tuple, so a worker thread reads either the old one or the new one.
        """
        impls = getattr(self.pm.hook, hook_name).get_hookimpls()
        cached = self._listeners.get(hook_name)
        if cached is not None and cached[0] == impls:
            return cached[1]
        listeners = tuple(
            _Listener(
                impl.function,
                impl.plugin_name,
                None if tuple(impl.argnames) == names else tuple(impl.argnames),
            )
            for impl in reversed(impls)
        )
        self._listeners[hook_name] = (impls, listeners)
        return listeners
