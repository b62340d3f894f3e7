"""Plugin discovery, the registry, and the hook surface."""

from __future__ import annotations

import importlib.metadata as md
import inspect
import re
from pathlib import Path

import pytest

from hyperscout import SearchStrategy, hookimpl, hookspecs
from hyperscout.errors import HyperscoutError, PluginNotFoundError
from hyperscout.plugins import backends, get_plugin_manager, strategies
from hyperscout.strategy import EXHAUSTED

ROOT = Path(__file__).resolve().parents[1]


class _A(SearchStrategy):
    name = "dup"

    def ask(self, trial_id):  # type: ignore[no-untyped-def]
        return EXHAUSTED

    def tell(self, trial_id, result):  # type: ignore[no-untyped-def]
        pass


class _B(_A):
    pass


def test_built_in_plugins_come_from_their_own_distributions() -> None:
    s, b = strategies(), backends()
    assert {"random", "grid"} <= set(s.names()) and "local" in b.names()
    assert s.entries["random"].distribution == "hyperscout-random"
    assert b.entries["local"].distribution == "hyperscout-local"
    groups = {ep.name for ep in md.entry_points(group="hyperscout")}
    assert {"random", "grid", "local"} <= groups


def test_unknown_name_lists_installed_and_the_providing_package() -> None:
    with pytest.raises(PluginNotFoundError) as info:
        strategies().get("bohb-typo")
    assert "unknown strategy 'bohb-typo': installed strategies are" in str(info.value)
    assert "grid" in str(info.value) and "random" in str(info.value)
    if "skopt" not in strategies():
        with pytest.raises(PluginNotFoundError, match=r"`pip install hyperscout-skopt` provides it"):
            strategies().get("skopt")
    with pytest.raises(PluginNotFoundError, match=r"`pip install hyperscout-dask` provides it"):
        backends().get("dask")


def test_clearml_class_names_resolve() -> None:
    reg = strategies()
    assert reg.get("RandomSearch") is reg.get("random")
    assert reg.get("GridSearch") is reg.get("grid")


def test_two_plugins_claiming_one_name_is_an_error_naming_both() -> None:
    pm = get_plugin_manager(load_entrypoints=False)

    class One:
        @hookimpl
        def hyperscout_register_strategies(self, register):  # type: ignore[no-untyped-def]
            register(_A)

    class Two:
        @hookimpl
        def hyperscout_register_strategies(self, register):  # type: ignore[no-untyped-def]
            register(_B)

    pm.register(One(), name="one")
    pm.register(Two(), name="two")
    with pytest.raises(HyperscoutError, match=r"strategy name 'dup' is registered twice, by (one|two) and (one|two)"):
        strategies(pm)


def test_registering_something_that_is_not_a_strategy_is_refused() -> None:
    pm = get_plugin_manager(load_entrypoints=False)

    class Bad:
        @hookimpl
        def hyperscout_register_strategies(self, register):  # type: ignore[no-untyped-def]
            register(dict)

    pm.register(Bad(), name="bad")
    with pytest.raises(HyperscoutError, match="not a SearchStrategy subclass"):
        strategies(pm)


def test_a_broken_plugin_is_logged_and_skipped(monkeypatch, caplog) -> None:  # type: ignore[no-untyped-def]
    class FakeDist:
        metadata = {"Name": "broken-dist"}
        version = "0"
        project_name = "broken-dist"
        entry_points = [md.EntryPoint("broken", "no_such_module_xyz", "hyperscout")]

    real = md.distributions
    monkeypatch.setattr(md, "distributions", lambda: [FakeDist(), *real()])
    pm = get_plugin_manager()
    assert "random" in strategies(pm)
    assert any("broken" in r.message and "failed to load" in r.message for r in caplog.records)


def test_every_hook_is_documented_in_the_spec_and_the_docs() -> None:
    docs = (ROOT / "docs" / "plugin_hooks.md").read_text()
    names = [n for n, f in vars(hookspecs).items() if n.startswith("hyperscout_") and callable(f)]
    assert len(names) >= 10
    for name in names:
        fn = getattr(hookspecs, name)
        assert fn.__doc__ and len(fn.__doc__.strip()) > 30, f"{name} needs a docstring a plugin author can use"
        args = ", ".join(inspect.signature(fn).parameters)
        assert re.search(rf"^### {name}\({re.escape(args)}\)$", docs, re.M), f"docs/plugin_hooks.md lacks {name}({args})"


def test_seed_class_names_import_from_the_package_and_fall_back() -> None:
    from hyperscout import GridSearch, RandomSearch

    assert RandomSearch is strategies().get("random") and GridSearch is strategies().get("grid")
    # The seed's pattern: try a model-based strategy, fall back on ImportError.
    try:
        from hyperscout import OptimizerOptuna as chosen
    except ImportError as exc:
        assert "optuna" not in strategies()
        assert "pip install hyperscout-optuna" in str(exc)
        chosen = RandomSearch
    else:
        assert "optuna" in strategies()
    assert chosen.name in ("optuna", "random")
