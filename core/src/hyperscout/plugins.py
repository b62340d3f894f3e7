"""Plugin discovery and the one registry that resolves strategy and backend names.

Plugins are found through the ``hyperscout`` entry-point group of installed distributions,
built-in ``random``, ``grid`` and ``local`` included: the core imports none of them.
"""

from __future__ import annotations

import importlib.metadata as md
import logging
import threading
from collections.abc import Iterable
from typing import Any, Generic, TypeVar

import attrs
import pluggy

from hyperscout import hookspecs
from hyperscout.backend import Backend
from hyperscout.errors import HyperscoutError, PluginNotFoundError
from hyperscout.strategy import SearchStrategy

__all__ = ["ENTRY_POINT_GROUP", "Registry", "backends", "get_plugin_manager", "hookimpl", "plugin_manager", "strategies"]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "hyperscout"
#: Marks a function as a hook implementation: ``@hyperscout.hookimpl``.
hookimpl = pluggy.HookimplMarker(hookspecs.PROJECT)

#: Which distribution provides a well-known name, for the "not installed" message.
KNOWN_PROVIDERS = {
    "random": "hyperscout-random",
    "grid": "hyperscout-grid",
    "optuna": "hyperscout-optuna",
    "bohb": "hyperscout-bohb",
    "hyperband": "hyperscout-bohb",
    "skopt": "hyperscout-skopt",
    "local": "hyperscout-local",
    "dask": "hyperscout-dask",
    "clearml": "hyperscout-clearml",
}
#: ClearML's class names (``--optimizer-class``) map to registry names.
ALIASES = {
    "RandomSearch": "random",
    "GridSearch": "grid",
    "OptimizerOptuna": "optuna",
    "OptimizerBOHB": "bohb",
    "OptimizerSkopt": "skopt",
}

T = TypeVar("T")


@attrs.frozen
class Entry(Generic[T]):
    name: str
    cls: type[T]
    plugin: str
    distribution: str | None
    version: str | None


class Registry(Generic[T]):
    """Name -> class for one kind of plugin (``strategy`` or ``backend``)."""

    def __init__(self, kind: str, base: type[T]) -> None:
        self.kind = kind
        self.base = base
        self.entries: dict[str, Entry[T]] = {}

    def add(self, cls: type[T], name: str | None = None, *, plugin: str = "?", dist: Any = None) -> None:
        if not (isinstance(cls, type) and issubclass(cls, self.base)):
            raise HyperscoutError(f"plugin {plugin!r} registered {cls!r}, which is not a {self.base.__name__} subclass")
        key = name or getattr(cls, "name", "") or cls.__name__
        dist_name = dist.project_name if dist is not None else None
        version = dist.version if dist is not None else None
        if key in self.entries and self.entries[key].cls is not cls:
            other = self.entries[key]
            raise HyperscoutError(
                f"{self.kind} name {key!r} is registered twice, by {other.distribution or other.plugin} and "
                f"{dist_name or plugin}; uninstall one of them"
            )
        self.entries[key] = Entry(key, cls, plugin, dist_name, version)

    def names(self) -> list[str]:
        return sorted(self.entries)

    def get(self, name: str) -> type[T]:
        key = ALIASES.get(name, name)
        if key in self.entries:
            return self.entries[key].cls
        installed = ", ".join(self.names()) or "none"
        provider = KNOWN_PROVIDERS.get(key)
        hint = f"; `pip install {provider}` provides it" if provider else ""
        plural = "strategies" if self.kind == "strategy" else f"{self.kind}s"
        raise PluginNotFoundError(f"unknown {self.kind} {name!r}: installed {plural} are {installed}{hint}")

    def __contains__(self, name: str) -> bool:
        return ALIASES.get(name, name) in self.entries

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.entries.values())


def _load_entry_points(pm: pluggy.PluginManager, blocked: Iterable[str]) -> None:
    """Like ``pm.load_setuptools_entrypoints`` but one broken plugin is logged, not fatal."""
    blocked = set(blocked)
    seen: set[str] = set()
    for dist in md.distributions():
        for ep in dist.entry_points:
            if ep.group != ENTRY_POINT_GROUP or ep.name in seen or ep.name in blocked:
                continue
            seen.add(ep.name)
            if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
                continue
            try:
                plugin = ep.load()
            except Exception as exc:  # a broken plugin must not take the CLI down
                log.warning("hyperscout: plugin %r from %s failed to load: %s", ep.name, dist.metadata["Name"], exc)
                continue
            pm.register(plugin, name=ep.name)
            pm._plugin_distinfo.append((plugin, pluggy._manager.DistFacade(dist)))


def get_plugin_manager(*, load_entrypoints: bool = True, blocked: Iterable[str] = ()) -> pluggy.PluginManager:
    """A fresh plugin manager; tests use ``load_entrypoints=False`` and register what they need."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    if load_entrypoints:
        _load_entry_points(pm, blocked)
    pm.check_pending()
    return pm


_lock = threading.Lock()
_default: pluggy.PluginManager | None = None


def plugin_manager() -> pluggy.PluginManager:
    """The process-wide manager, built on first use (not at import time)."""
    global _default
    with _lock:
        if _default is None:
            _default = get_plugin_manager()
        return _default


def _registry(pm: pluggy.PluginManager, kind: str, base: type[T], hook: str) -> Registry[T]:
    reg: Registry[T] = Registry(kind, base)
    dists = {id(p): d for p, d in pm.list_plugin_distinfo()}
    for impl in getattr(pm.hook, hook).get_hookimpls():
        dist = dists.get(id(impl.plugin))

        def register(cls: type[T], name: str | None = None, _p: str = impl.plugin_name, _d: Any = dist) -> None:
            reg.add(cls, name, plugin=_p, dist=_d)

        impl.function(register=register)
    return reg


def strategies(pm: pluggy.PluginManager | None = None) -> Registry[SearchStrategy]:
    """Every installed search strategy, by name."""
    return _registry(pm or plugin_manager(), "strategy", SearchStrategy, "hyperscout_register_strategies")


def backends(pm: pluggy.PluginManager | None = None) -> Registry[Backend]:
    """Every installed execution backend, by name."""
    return _registry(pm or plugin_manager(), "backend", Backend, "hyperscout_register_backends")
