"""Plugin discovery, the one registry that resolves strategy and backend names, and hook calls.

Plugins are found through the ``hyperscout`` entry-point group of installed distributions,
built-in ``random``, ``grid`` and ``local`` included: the core imports none of them. Every hook is
called through pluggy, so an implementation may take any subset of a hook's arguments and
``tryfirst``/``trylast`` and wrappers are honoured.
"""

from __future__ import annotations

import importlib.metadata as md
import inspect
import logging
import re
import threading
import traceback
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

import attrs
import pluggy

from hyperscout import hookspecs
from hyperscout.backend import Backend
from hyperscout.errors import HyperscoutError, PluginNotFoundError
from hyperscout.strategy import SearchStrategy

__all__ = [
    "ENTRY_POINT_GROUP",
    "KNOWN_PROVIDERS",
    "Entry",
    "Registry",
    "backends",
    "get_plugin_manager",
    "hookimpl",
    "notify",
    "plugin_distribution",
    "plugin_manager",
    "strategies",
]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "hyperscout"
#: Marks a function as a hook implementation: ``@hyperscout.hookimpl``.
hookimpl = pluggy.HookimplMarker(hookspecs.PROJECT)

#: (kind, name) -> the distribution of this repository that provides it, for the "`pip install X`
#: provides it" hint of an unknown name. Only distributions this repository builds belong here.
KNOWN_PROVIDERS: dict[tuple[str, str], str] = {
    ("strategy", "random"): "hyperscout-random",
    ("strategy", "grid"): "hyperscout-grid",
    ("strategy", "optuna"): "hyperscout-optuna",
    ("strategy", "bohb"): "hyperscout-bohb",
    ("strategy", "hyperband"): "hyperscout-bohb",
    ("strategy", "sh"): "hyperscout-bohb",
    ("strategy", "skopt"): "hyperscout-skopt",
    ("backend", "local"): "hyperscout-local",
    ("backend", "clearml"): "hyperscout-clearml",
    ("backend", "dask"): "hyperscout-dask",
    ("backend", "sim"): "hyperscout-sim",
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


def _who(plugin: str, distribution: str | None) -> str:
    return f"{distribution} (entry point {plugin!r})" if distribution else f"plugin {plugin!r}"


class Registry(Generic[T]):
    """Name -> class for one kind of plugin (``strategy`` or ``backend``)."""

    def __init__(self, kind: str, base: type[T]) -> None:
        self.kind = kind
        self.base = base
        self.entries: dict[str, Entry[T]] = {}

    def add(
        self,
        cls: type[T],
        name: str | None = None,
        *,
        plugin: str = "?",
        distribution: str | None = None,
        version: str | None = None,
    ) -> None:
        if not (isinstance(cls, type) and issubclass(cls, self.base)):
            raise HyperscoutError(
                f"{_who(plugin, distribution)} registered {cls!r}, which is not a {self.base.__name__} subclass"
            )
        key = name or getattr(cls, "name", "") or cls.__name__
        if key in self.entries and self.entries[key].cls is not cls:
            other = self.entries[key]
            raise HyperscoutError(
                f"{self.kind} name {key!r} is registered twice, by {_who(other.plugin, other.distribution)} and "
                f"{_who(plugin, distribution)}; uninstall one of them"
            )
        self.entries[key] = Entry(key, cls, plugin, distribution, version)

    def names(self) -> list[str]:
        return sorted(self.entries)

    def get(self, name: str) -> type[T]:
        key = ALIASES.get(name, name)
        if key in self.entries:
            return self.entries[key].cls
        installed = ", ".join(self.names()) or "none"
        plural = "strategies" if self.kind == "strategy" else f"{self.kind}s"
        raise PluginNotFoundError(f"unknown {self.kind} {name!r}: installed {plural} are {installed}{self._hint(key)}")

    def _hint(self, key: str) -> str:
        provider = KNOWN_PROVIDERS.get((self.kind, key))
        if provider is None:
            return ""
        try:
            md.distribution(provider)
        except md.PackageNotFoundError:
            return f"; `pip install {provider}` provides it"
        return f"; {provider} is installed but did not register it (see the warning logged above)"

    def __contains__(self, name: str) -> bool:
        return ALIASES.get(name, name) in self.entries

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(self.entries.values())


# -- loading --------------------------------------------------------------------------------------
#: Which distribution each entry-point plugin came from, per plugin manager (plugin name -> dist).
_DISTS: weakref.WeakKeyDictionary[pluggy.PluginManager, dict[str, md.Distribution]] = weakref.WeakKeyDictionary()


def _dist_name(dist: md.Distribution) -> str | None:
    name = dist.metadata["Name"]
    return str(name) if name else None


def _dist_label(dist: md.Distribution) -> str:
    return f"{_dist_name(dist) or '?'} {dist.version or ''}".strip()


def plugin_distribution(pm: pluggy.PluginManager, plugin: object) -> tuple[str, str | None] | None:
    """``(name, version)`` of the distribution whose entry point registered ``plugin``, or None.

    Knows the plugins loaded by :func:`get_plugin_manager` and those loaded by pluggy's own
    ``pm.load_setuptools_entrypoints``; a plugin registered in code has no distribution.
    """
    name = pm.get_name(plugin)
    dist = _DISTS.get(pm, {}).get(name) if name else None
    if dist is not None and pm.get_plugin(name) is plugin:  # type: ignore[arg-type]
        return _dist_name(dist) or "?", dist.version
    for other, facade in pm.list_plugin_distinfo():
        if other is plugin:
            return facade.project_name, facade.version
    return None


def _describe(pm: pluggy.PluginManager, plugin: object, name: str) -> str:
    dist = plugin_distribution(pm, plugin)
    return f"{name!r} ({dist[0]} {dist[1]})" if dist else repr(name)


def _canonical(dist_name: str) -> str:
    return re.sub(r"[-_.]+", "-", dist_name).lower()


def _entry_points(blocked: set[str]) -> list[tuple[md.EntryPoint, md.Distribution]]:
    """Every ``hyperscout`` entry point with its distribution; a name given by two distributions is an error."""
    found: dict[str, tuple[md.EntryPoint, md.Distribution]] = {}
    seen: set[str] = set()
    for dist in md.distributions():
        name = _dist_name(dist)
        if name is not None:
            if _canonical(name) in seen:  # a second copy further down sys.path is shadowed, as for imports
                continue
            seen.add(_canonical(name))
        for ep in dist.entry_points:
            if ep.group != ENTRY_POINT_GROUP or ep.name in blocked:
                continue
            if ep.name in found:
                other = found[ep.name][1]
                raise HyperscoutError(
                    f"plugin name {ep.name!r} (entry-point group {ENTRY_POINT_GROUP!r}) is provided by two "
                    f"distributions, {_dist_label(other)} and {_dist_label(dist)}; uninstall one of them"
                )
            found[ep.name] = (ep, dist)
    return list(found.values())


def _has_hookimpls(pm: pluggy.PluginManager, obj: object) -> bool:
    return any(pm.parse_hookimpl_opts(obj, attr) is not None for attr in dir(obj))


def _one_line(exc: BaseException) -> str:
    return "; ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or type(exc).__name__


def _load_entry_points(pm: pluggy.PluginManager, blocked: Iterable[str]) -> None:
    """Like ``pm.load_setuptools_entrypoints``, but one broken plugin is logged, not fatal."""
    dists = _DISTS.setdefault(pm, {})
    for ep, dist in _entry_points(set(blocked)):
        if pm.has_plugin(ep.name) or pm.is_blocked(ep.name):
            continue
        where = f"plugin {ep.name!r} from {_dist_label(dist)}"
        try:
            plugin = ep.load()
        except Exception as exc:  # a broken plugin must not take the CLI down
            log.warning("hyperscout: %s failed to load: %s: %s", where, type(exc).__name__, _one_line(exc))
            continue
        if not _has_hookimpls(pm, plugin):
            log.warning(
                "hyperscout: entry point %r of %s points at %r, which has no @hookimpl functions; point it at the "
                "module (or class) that defines the plugin's @hookimpl functions",
                ep.name, _dist_label(dist), ep.value,
            )
            continue
        if inspect.isclass(plugin):  # `module:Class`: the hooks are methods of an instance
            try:
                plugin = plugin()
            except Exception as exc:
                log.warning(
                    "hyperscout: %s failed to load: %s() raised %s: %s (a class entry point is instantiated with "
                    "no arguments)",
                    where, ep.value, type(exc).__name__, _one_line(exc),
                )
                continue
        if pm.is_registered(plugin):
            log.warning("hyperscout: %s points at plugin %r again; it is loaded once", where, pm.get_name(plugin))
            continue
        try:
            pm.register(plugin, name=ep.name)
        except (pluggy.PluginValidationError, ValueError) as exc:
            log.warning("hyperscout: %s failed to load: %s", where, _one_line(exc))
            continue
        dists[ep.name] = dist
        for caller in pm.get_hookcallers(plugin) or []:
            if not caller.has_spec() and any(i.plugin is plugin and not i.optionalhook for i in caller.get_hookimpls()):
                log.warning(
                    "hyperscout: %s implements %s, which is not a hyperscout hook, so it is never called; fix the "
                    "name (see hyperscout.hookspecs) or mark it @hookimpl(optionalhook=True)",
                    where, caller.name,
                )


def get_plugin_manager(*, load_entrypoints: bool = True, blocked: Iterable[str] = ()) -> pluggy.PluginManager:
    """A fresh plugin manager; tests use ``load_entrypoints=False`` and register what they need.

    Raises :class:`HyperscoutError` when two installed distributions declare the same entry-point
    name; a plugin that fails to import or has no hook implementations is logged and skipped.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    if load_entrypoints:
        _load_entry_points(pm, blocked)
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


# -- registration hooks ---------------------------------------------------------------------------
def _call_order(caller: pluggy.HookCaller) -> list[object]:
    """The plugins implementing a hook, in the order pluggy calls them (wrappers, tryfirst, ..., trylast)."""
    order: list[object] = []
    for impl in reversed(caller.get_hookimpls()):
        if not any(p is impl.plugin for p in order):
            order.append(impl.plugin)
    return order


def _registry(pm: pluggy.PluginManager, kind: str, base: type[T], hook_name: str) -> Registry[T]:
    """Call the registration hook through pluggy once per plugin, so that each class is attributed to its plugin."""
    reg: Registry[T] = Registry(kind, base)
    caller: pluggy.HookCaller = getattr(pm.hook, hook_name)
    for plugin in _call_order(caller):
        name = pm.get_name(plugin) or "?"
        dist = plugin_distribution(pm, plugin)
        added: list[tuple[Any, str | None]] = []

        def register(cls: type[T], name: str | None = None, _added: list[tuple[Any, str | None]] = added) -> None:
            _added.append((cls, name))

        only = pm.subset_hook_caller(hook_name, remove_plugins=pm.get_plugins() - {plugin})
        try:
            only(register=register)
        except Exception as exc:  # one broken plugin must not hide the others
            log.warning(
                "hyperscout: plugin %s failed in %s, so none of its %s are available: %s: %s",
                _describe(pm, plugin, name), hook_name, "strategies" if kind == "strategy" else f"{kind}s",
                type(exc).__name__, _one_line(exc),
            )
            continue
        for cls, key in added:
            reg.add(cls, key, plugin=name, distribution=dist[0] if dist else None, version=dist[1] if dist else None)
    return reg


def strategies(pm: pluggy.PluginManager | None = None) -> Registry[SearchStrategy]:
    """Every installed search strategy, by name."""
    return _registry(pm or plugin_manager(), "strategy", SearchStrategy, "hyperscout_register_strategies")


def backends(pm: pluggy.PluginManager | None = None) -> Registry[Backend]:
    """Every installed execution backend, by name."""
    return _registry(pm or plugin_manager(), "backend", Backend, "hyperscout_register_backends")


# -- lifecycle hooks ------------------------------------------------------------------------------
_SPEC_ARGS = {
    name: tuple(inspect.signature(fn).parameters)
    for name, fn in vars(hookspecs).items()
    if name.startswith("hyperscout_") and callable(fn)
}
_warned_mixed: set[tuple[str, str]] = set()


def _call_observer(pm: pluggy.PluginManager, hook_name: str, impl: pluggy.HookImpl, kwargs: dict[str, Any]) -> None:
    try:
        impl.function(*[kwargs[arg] for arg in impl.argnames])  # what pluggy does for a plain implementation
    except Exception:
        log.exception(
            "hyperscout: plugin %s failed in %s; the other plugins were still called",
            _describe(pm, impl.plugin, impl.plugin_name), hook_name,
        )


def _failed_wrapper(exc: BaseException, wrappers: list[pluggy.HookImpl]) -> str:
    """The wrapper an exception came from (the innermost wrapper frame in its traceback)."""
    codes: dict[Any, str] = {}
    for w in wrappers:
        fn = inspect.unwrap(getattr(w.function, "__func__", w.function))
        codes[getattr(fn, "__code__", None)] = w.plugin_name
    hits = [codes[frame.f_code] for frame, _ in traceback.walk_tb(exc.__traceback__) if frame.f_code in codes]
    if hits:
        return repr(hits[-1])
    return " or ".join(repr(w.plugin_name) for w in wrappers) or "?"


def notify(pm: pluggy.PluginManager, hook_name: str, **kwargs: Any) -> None:
    """Call every implementation of a lifecycle hook, isolating each one's failure.

    Plain implementations run in pluggy's order (``tryfirst`` ... ``trylast``), each with the subset
    of ``kwargs`` it asks for, inside every wrapper (``wrapper=True`` or ``hookwrapper=True``),
    which pluggy runs. An exception in an implementation is logged with its traceback and plugin
    name and the next one is still called; a failing wrapper is logged the same way, and every
    plain implementation is still called exactly once. Never raises for a plugin's fault.
    """
    caller = getattr(pm.hook, hook_name, None)
    if not isinstance(caller, pluggy.HookCaller):
        raise HyperscoutError(f"notify: no hook named {hook_name!r}; the hooks are listed in hyperscout.hookspecs")
    missing = [arg for arg in _SPEC_ARGS.get(hook_name, ()) if arg not in kwargs]
    if missing:
        raise HyperscoutError(f"notify({hook_name}): missing argument(s) {', '.join(missing)}")
    impls = caller.get_hookimpls()
    plain = [i for i in impls if not (i.wrapper or i.hookwrapper)]
    wrappers = [i for i in impls if i.wrapper or i.hookwrapper]
    if not wrappers:  # the common case, once per event: pluggy's order without building a subset caller
        for impl in reversed(plain):
            _call_observer(pm, hook_name, impl, kwargs)
        return
    called: set[pluggy.HookImpl] = set()

    def shim(impl: pluggy.HookImpl) -> Callable[[], None]:
        def call() -> None:
            called.add(impl)
            _call_observer(pm, hook_name, impl, kwargs)

        return call

    observers = {i.plugin for i in plain}
    for w in wrappers:
        if w.plugin in observers and (w.plugin_name, hook_name) not in _warned_mixed:
            _warned_mixed.add((w.plugin_name, hook_name))
            log.warning(
                "hyperscout: plugin %r implements %s both as a wrapper and not; its wrapper is skipped, "
                "split it into two plugins", w.plugin_name, hook_name,
            )
    try:
        # pluggy runs the wrappers around the plain implementations, handed over as temporary
        # methods (call_extra calls them in reverse of the order given, as it does registered ones).
        pm.subset_hook_caller(hook_name, remove_plugins=observers).call_extra([shim(i) for i in plain], kwargs)
    except Exception as exc:
        log.exception(
            "hyperscout: hook wrapper %s of %s failed; the other plugins were still called",
            _failed_wrapper(exc, wrappers), hook_name,
        )
    for impl in reversed(plain):  # the ones a failing wrapper kept pluggy from calling
        if impl not in called:
            _call_observer(pm, hook_name, impl, kwargs)
