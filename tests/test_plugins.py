"""Plugin discovery, the registry, and the hook surface."""

from __future__ import annotations

import importlib.metadata as md
import inspect
import logging
import re
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hyperscout import SearchStrategy, hookimpl, hookspecs
from hyperscout.errors import HyperscoutError, PluginNotFoundError
from hyperscout.plugins import (
    KNOWN_PROVIDERS,
    backends,
    get_plugin_manager,
    notify,
    plugin_distribution,
    strategies,
)
from hyperscout.strategy import EXHAUSTED

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


class _A(SearchStrategy):
    name = "dup"

    def ask(self, trial_id):  # type: ignore[no-untyped-def]
        return EXHAUSTED

    def tell(self, trial_id, result):  # type: ignore[no-untyped-def]
        pass


class _B(_A):
    pass


class _C(_A):
    name = "other"


#: The body of a plugin module written into a fake distribution: one strategy called NAME.
STRATEGY_MODULE = """
from hyperscout import SearchStrategy, hookimpl
from hyperscout.strategy import EXHAUSTED

class Strategy(SearchStrategy):
    name = "NAME"

    def ask(self, trial_id):
        return EXHAUSTED

    def tell(self, trial_id, result):
        pass

@hookimpl
def hyperscout_register_strategies(register):
    register(Strategy)
"""

MakeDist = Callable[..., Path]


@pytest.fixture
def make_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MakeDist]:
    """Install a real (metadata-only) distribution on a temporary ``sys.path`` entry.

    ``make_dist("my-dist", {"ep": "my_mod"}, {"my_mod": source}, where="site2")`` writes
    ``my_dist-1.0.dist-info/{METADATA,entry_points.txt}`` and ``my_mod.py``; the directory made last
    comes first on ``sys.path``.
    """
    modules: list[str] = []

    def make(
        dist: str, entry_points: dict[str, str], sources: dict[str, str] | None = None, *,
        version: str = "1.0", where: str = "site",
    ) -> Path:
        root = tmp_path / where
        root.mkdir(exist_ok=True)
        info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        lines = "".join(f"{name} = {value}\n" for name, value in entry_points.items())
        (info / "entry_points.txt").write_text(f"[hyperscout]\n{lines}")
        for module, source in (sources or {}).items():
            (root / f"{module}.py").write_text(textwrap.dedent(source))
            modules.append(module)
        monkeypatch.syspath_prepend(str(root))
        return root

    yield make
    for module in modules:
        sys.modules.pop(module, None)


def _strategy_module(name: str) -> str:
    return STRATEGY_MODULE.replace("NAME", name)


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


# -- discovery ------------------------------------------------------------------------------------
def test_built_in_plugins_come_from_their_own_distributions() -> None:
    s, b = strategies(), backends()
    assert {"random", "grid"} <= set(s.names()) and "local" in b.names()
    assert s.entries["random"].distribution == "hyperscout-random"
    assert s.entries["random"].version == md.version("hyperscout-random")
    assert b.entries["local"].distribution == "hyperscout-local"
    groups = {ep.name for ep in md.entry_points(group="hyperscout")}
    assert {"random", "grid", "local"} <= groups


def test_dist_info_is_kept_without_touching_pluggys_private_state() -> None:
    pm = get_plugin_manager()
    assert pm.list_plugin_distinfo() == []  # our loader keeps its own map (it used to double-wrap pluggy's)
    assert plugin_distribution(pm, pm.get_plugin("grid")) == ("hyperscout-grid", md.version("hyperscout-grid"))
    # plugins loaded by pluggy's own public loader are attributed too
    pm2 = get_plugin_manager(load_entrypoints=False)
    for name in ("random", "local"):  # only these: another installed plugin's import must not matter here
        assert pm2.load_setuptools_entrypoints("hyperscout", name=name) == 1
    assert strategies(pm2).entries["random"].distribution == "hyperscout-random"
    assert backends(pm2).entries["local"].distribution == "hyperscout-local"


def test_unknown_name_lists_installed_and_the_providing_package() -> None:
    with pytest.raises(PluginNotFoundError) as info:
        strategies().get("bohb-typo")
    assert "unknown strategy 'bohb-typo': installed strategies are" in str(info.value)
    assert "grid" in str(info.value) and "random" in str(info.value)
    assert "pip install" not in str(info.value)
    if "skopt" not in strategies():
        with pytest.raises(PluginNotFoundError, match=r"`pip install hyperscout-skopt` provides it"):
            strategies().get("skopt")
    if "sh" not in strategies():
        with pytest.raises(PluginNotFoundError, match=r"`pip install hyperscout-bohb` provides it"):
            strategies().get("sh")
    if "clearml" not in backends():
        with pytest.raises(PluginNotFoundError, match=r"unknown backend 'clearml'.*`pip install hyperscout-clearml`"):
            backends().get("clearml")
    if "dask" not in backends():
        with pytest.raises(PluginNotFoundError, match=r"`pip install hyperscout-dask` provides it"):
            backends().get("dask")
    with pytest.raises(PluginNotFoundError) as info:  # not built by this repository: no hint
        backends().get("ray")
    assert str(info.value).endswith("installed backends are " + ", ".join(backends().names()))
    with pytest.raises(PluginNotFoundError) as info:  # the hint is for the right kind only
        strategies().get("clearml")
    assert "pip install" not in str(info.value)


def test_an_installed_provider_that_did_not_register_is_not_told_to_pip_install(make_dist, caplog) -> None:  # type: ignore[no-untyped-def]
    # a backend name this environment lacks, whose distribution we then "install" broken
    kind_name = next((kn for kn in KNOWN_PROVIDERS if kn[0] == "backend" and kn[1] not in backends()), None)
    assert kind_name is not None, "this test needs one backend plugin of this repository not installed"
    dist = KNOWN_PROVIDERS[kind_name]
    make_dist(dist, {f"{kind_name[1]}_broken": "no_such_module_for_this_test"}, version="0.0")
    with pytest.raises(PluginNotFoundError) as info:
        backends(get_plugin_manager()).get(kind_name[1])
    assert f"{dist} is installed but did not register it" in str(info.value)
    assert "pip install" not in str(info.value)


def _registers_plugins(pyproject: Path, target: str) -> bool:
    """Whether an entry point's module registers strategies or backends (not only CLI commands)."""
    module = target.split(":")[0].replace(".", "/")
    src = pyproject.parent / "src" / f"{module}.py"
    if not src.exists():
        src = pyproject.parent / "src" / module / "__init__.py"
    text = src.read_text()
    return "hyperscout_register_strategies" in text or "hyperscout_register_backends" in text


def test_known_providers_are_distributions_this_repository_builds() -> None:
    built: dict[str, set[str]] = {}
    for pyproject in ROOT.glob("plugins/*/pyproject.toml"):
        project = tomllib.loads(pyproject.read_text())["project"]
        eps = project.get("entry-points", {}).get("hyperscout", {})
        built[project["name"]] = {name for name, target in eps.items() if _registers_plugins(pyproject, target)}
    assert set(KNOWN_PROVIDERS.values()) <= set(built), "KNOWN_PROVIDERS names a distribution not built here"
    assert KNOWN_PROVIDERS[("backend", "clearml")] == "hyperscout-clearml"
    for dist, entry_points in built.items():  # every plugin built here is in the table
        provided = {name for (_, name), d in KNOWN_PROVIDERS.items() if d == dist}
        assert entry_points <= provided, f"{dist} provides {entry_points - provided}, missing from KNOWN_PROVIDERS"


def test_clearml_class_names_resolve() -> None:
    reg = strategies()
    assert reg.get("RandomSearch") is reg.get("random")
    assert reg.get("GridSearch") is reg.get("grid")


def test_a_broken_plugin_is_logged_and_skipped(make_dist, caplog) -> None:  # type: ignore[no-untyped-def]
    make_dist("broken-dist", {"broken": "no_such_module_xyz"})
    pm = get_plugin_manager()
    assert "random" in strategies(pm) and pm.get_plugin("broken") is None
    assert any(
        "'broken' from broken-dist 1.0 failed to load" in m and "ModuleNotFoundError" in m for m in _warnings(caplog)
    )


def test_two_distributions_with_one_entry_point_name_is_an_error_naming_both(make_dist) -> None:  # type: ignore[no-untyped-def]
    make_dist("dist-one", {"samename": "samename_one"}, {"samename_one": _strategy_module("s_one")}, where="a")
    make_dist("dist-two", {"samename": "samename_two"}, {"samename_two": _strategy_module("s_two")}, where="b")
    with pytest.raises(HyperscoutError) as info:
        get_plugin_manager()
    message = str(info.value)
    assert "plugin name 'samename'" in message and "uninstall one of them" in message
    assert "dist-one 1.0" in message and "dist-two 1.0" in message and "\n" not in message
    # blocking the name is the way around it without uninstalling
    assert "s_one" not in strategies(get_plugin_manager(blocked=["samename"]))


def test_a_second_copy_of_one_distribution_further_down_the_path_is_shadowed(make_dist) -> None:  # type: ignore[no-untyped-def]
    make_dist("twice-dist", {"twice": "twice_old"}, {"twice_old": _strategy_module("twice_old")}, where="old")
    make_dist("twice-dist", {"twice": "twice_new"}, {"twice_new": _strategy_module("twice_new")}, where="new",
              version="2.0")
    reg = strategies(get_plugin_manager())
    assert "twice_new" in reg and "twice_old" not in reg  # first on sys.path wins, as for imports
    assert reg.entries["twice_new"].version == "2.0"


def test_an_entry_point_naming_a_class_with_hooks_is_loaded(make_dist) -> None:  # type: ignore[no-untyped-def]
    source = _strategy_module("classy").replace(
        "@hookimpl\ndef hyperscout_register_strategies(register):\n    register(Strategy)",
        "class Plugin:\n"
        "    def __init__(self):\n"
        "        self.cls = Strategy\n"
        "    @hookimpl\n"
        "    def hyperscout_register_strategies(self, register):\n"
        "        register(self.cls)\n",
    )
    assert "class Plugin" in source
    make_dist("classy-dist", {"classy": "classy_mod:Plugin"}, {"classy_mod": source})
    pm = get_plugin_manager()
    entry = strategies(pm).entries["classy"]
    assert (entry.plugin, entry.distribution, entry.version) == ("classy", "classy-dist", "1.0")
    assert type(pm.get_plugin("classy")).__name__ == "Plugin"  # an instance, so `self` is bound


def test_an_entry_point_without_hook_implementations_is_named_in_a_warning(make_dist, caplog) -> None:  # type: ignore[no-untyped-def]
    # The usual mistake: pointing the entry point at the strategy class instead of the plugin module.
    make_dist("nohooks-dist", {"nohooks": "nohooks_mod:Strategy"}, {"nohooks_mod": _strategy_module("nohooks")})
    pm = get_plugin_manager()
    assert pm.get_plugin("nohooks") is None and "random" in strategies(pm)
    [message] = [m for m in _warnings(caplog) if "nohooks" in m]
    assert "entry point 'nohooks' of nohooks-dist 1.0 points at 'nohooks_mod:Strategy'" in message
    assert "no @hookimpl functions; point it at the module (or class) that defines" in message


def test_a_misspelt_hook_is_named_in_a_warning(make_dist, caplog) -> None:  # type: ignore[no-untyped-def]
    source = _strategy_module("typo") + "\n@hookimpl\ndef hyperscout_job_finishd(job):\n    pass\n"
    make_dist("typo-dist", {"typo": "typo_mod"}, {"typo_mod": source})
    pm = get_plugin_manager()
    assert "typo" in strategies(pm)  # the rest of the plugin works
    assert any("'typo' from typo-dist 1.0 implements hyperscout_job_finishd, which is not a hyperscout hook" in m
               for m in _warnings(caplog))


def test_an_implementation_that_does_not_match_its_spec_is_logged_and_skipped(make_dist, caplog) -> None:  # type: ignore[no-untyped-def]
    source = _strategy_module("badargs") + "\n@hookimpl\ndef hyperscout_job_finished(jobb):\n    pass\n"
    make_dist("badargs-dist", {"badargs": "badargs_mod"}, {"badargs_mod": source})
    pm = get_plugin_manager()
    assert "badargs" not in strategies(pm) and "random" in strategies(pm)
    [message] = [m for m in _warnings(caplog) if "badargs" in m]
    assert "'badargs' from badargs-dist 1.0 failed to load" in message and "jobb" in message


# -- registration hooks ---------------------------------------------------------------------------
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
    with pytest.raises(
        HyperscoutError, match=r"strategy name 'dup' is registered twice, by plugin '(one|two)' and plugin '(one|two)'"
    ):
        strategies(pm)


def test_two_distributions_registering_one_name_is_an_error_naming_both(make_dist) -> None:  # type: ignore[no-untyped-def]
    make_dist("first-dist", {"first": "first_mod"}, {"first_mod": _strategy_module("clash")}, where="a")
    make_dist("second-dist", {"second": "second_mod"}, {"second_mod": _strategy_module("clash")}, where="b")
    with pytest.raises(HyperscoutError) as info:
        strategies(get_plugin_manager())
    assert "strategy name 'clash' is registered twice" in str(info.value)
    assert "first-dist (entry point 'first')" in str(info.value)
    assert "second-dist (entry point 'second')" in str(info.value)


def test_registering_something_that_is_not_a_strategy_is_refused() -> None:
    pm = get_plugin_manager(load_entrypoints=False)

    class Bad:
        @hookimpl
        def hyperscout_register_strategies(self, register):  # type: ignore[no-untyped-def]
            register(dict)

    pm.register(Bad(), name="bad")
    with pytest.raises(HyperscoutError, match="plugin 'bad' registered <class 'dict'>, which is not a SearchStrategy"):
        strategies(pm)


def test_a_registration_hook_may_take_a_subset_of_the_arguments() -> None:
    pm = get_plugin_manager(load_entrypoints=False)
    called: list[str] = []

    class NoArgs:
        @hookimpl
        def hyperscout_register_strategies(self):  # type: ignore[no-untyped-def]
            called.append("no-args")

    @hookimpl
    def hyperscout_register_strategies(register):  # type: ignore[no-untyped-def]
        register(_A)

    class Module:  # a namespace with a plain function, as a module plugin is
        pass

    Module.hyperscout_register_strategies = staticmethod(hyperscout_register_strategies)  # type: ignore[attr-defined]
    pm.register(NoArgs(), name="noargs")
    pm.register(Module, name="module")
    reg = strategies(pm)  # used to raise TypeError: unexpected keyword argument 'register'
    assert called == ["no-args"] and reg.names() == ["dup"] and reg.entries["dup"].plugin == "module"


def test_registration_runs_in_pluggys_order_and_each_class_is_attributed_to_its_plugin() -> None:
    pm = get_plugin_manager(load_entrypoints=False)
    order: list[str] = []

    def plugin(label: str, cls: type[SearchStrategy] | None, **opts: bool) -> object:
        class P:
            @hookimpl(**opts)
            def hyperscout_register_strategies(self, register):  # type: ignore[no-untyped-def]
                order.append(label)
                if cls is not None:
                    register(cls)

        return P()

    pm.register(plugin("last", _A, trylast=True), name="last")
    pm.register(plugin("first", _C, tryfirst=True), name="first")
    pm.register(plugin("middle", None), name="middle")
    reg = strategies(pm)
    assert order == ["first", "middle", "last"]
    assert reg.entries["dup"].plugin == "last" and reg.entries["other"].plugin == "first"


def test_a_registration_wrapper_is_called_and_its_classes_are_attributed_to_it() -> None:
    pm = get_plugin_manager(load_entrypoints=False)
    seen: list[str] = []

    class New:
        @hookimpl(wrapper=True)
        def hyperscout_register_strategies(self, register):  # type: ignore[no-untyped-def]
            seen.append("new-before")
            register(_A)
            result = yield
            seen.append("new-after")
            return result

    class Old:
        @hookimpl(hookwrapper=True)
        def hyperscout_register_strategies(self, register):  # type: ignore[no-untyped-def]
            seen.append("old-before")
            yield
            register(_C)
            seen.append("old-after")

    pm.register(New(), name="new")
    pm.register(Old(), name="old")
    reg = strategies(pm)
    assert reg.entries["dup"].plugin == "new" and reg.entries["other"].plugin == "old"
    assert sorted(seen) == ["new-after", "new-before", "old-after", "old-before"]


def test_a_registration_hook_that_raises_is_logged_and_the_others_still_register(caplog) -> None:  # type: ignore[no-untyped-def]
    pm = get_plugin_manager(load_entrypoints=False)

    class Broken:
        @hookimpl(tryfirst=True)
        def hyperscout_register_strategies(self, register):  # type: ignore[no-untyped-def]
            register(_C)  # half-done registrations of a failing plugin are dropped
            raise ImportError("No module named 'optuna'")

    class Fine:
        @hookimpl
        def hyperscout_register_strategies(self, register):  # type: ignore[no-untyped-def]
            register(_A)

    pm.register(Broken(), name="broken")
    pm.register(Fine(), name="fine")
    assert strategies(pm).names() == ["dup"]
    assert any(
        "plugin 'broken' failed in hyperscout_register_strategies, so none of its strategies are available: "
        "ImportError: No module named 'optuna'" in m
        for m in _warnings(caplog)
    )


# -- lifecycle hooks ------------------------------------------------------------------------------
def _observer(events: list[str], label: str, hook: str = "hyperscout_job_finished", **opts: bool) -> object:
    """A plugin whose ``hook`` implementation takes only ``job`` (a subset of ``study, job``)."""

    def impl(self, job):  # type: ignore[no-untyped-def]
        events.append(f"{label}:{job}")

    impl.__name__ = impl.__qualname__ = hook
    return type(label, (), {hook: hookimpl(**opts)(impl)})()


def test_notify_calls_every_implementation_in_pluggys_order_with_the_arguments_it_asks_for() -> None:
    pm = get_plugin_manager(load_entrypoints=False)
    events: list[str] = []
    pm.register(_observer(events, "last", trylast=True), name="last")
    pm.register(_observer(events, "first", tryfirst=True), name="first")
    pm.register(_observer(events, "middle"), name="middle")

    class Full:
        @hookimpl
        def hyperscout_job_finished(self, study, job):  # type: ignore[no-untyped-def]
            events.append(f"full:{study}:{job}")

    pm.register(Full(), name="full")
    notify(pm, "hyperscout_job_finished", study="S", job="j1")
    assert events == ["first:j1", "full:S:j1", "middle:j1", "last:j1"]
    notify(pm, "hyperscout_study_tick", study="S")  # no implementation: nothing happens


def test_notify_runs_wrappers_around_every_observer() -> None:
    pm = get_plugin_manager(load_entrypoints=False)
    events: list[str] = []

    class New:
        @hookimpl(wrapper=True)
        def hyperscout_job_finished(self, job):  # type: ignore[no-untyped-def]
            events.append("new-before")
            result = yield
            events.append(f"new-after:{result}")
            return result

    class Old:
        @hookimpl(hookwrapper=True, tryfirst=True)
        def hyperscout_job_finished(self):  # type: ignore[no-untyped-def]
            events.append("old-before")
            outcome = yield
            events.append(f"old-after:{outcome.get_result()}")

    pm.register(New(), name="new")
    pm.register(Old(), name="old")
    pm.register(_observer(events, "a"), name="a")
    pm.register(_observer(events, "b", tryfirst=True), name="b")
    notify(pm, "hyperscout_job_finished", study="S", job="j")
    assert events == ["old-before", "new-before", "b:j", "a:j", "new-after:[]", "old-after:[]"]


def test_one_failing_observer_does_not_silence_the_others(caplog) -> None:  # type: ignore[no-untyped-def]
    pm = get_plugin_manager(load_entrypoints=False)
    seen: list[str] = []

    class Failing:
        @hookimpl(tryfirst=True)
        def hyperscout_job_finished(self, job):  # type: ignore[no-untyped-def]
            raise RuntimeError(f"boom on {job}")

    pm.register(Failing(), name="failing-observer")
    pm.register(_observer(seen, "second"), name="second")
    with caplog.at_level(logging.ERROR, logger="hyperscout.plugins"):
        for job in ("j1", "j2", "j3"):
            notify(pm, "hyperscout_job_finished", study="S", job=job)
    assert seen == ["second:j1", "second:j2", "second:j3"]  # 3 of 3 (it used to see 0)
    failures = [r for r in caplog.records if "failing-observer" in r.getMessage()]
    assert len(failures) == 3
    assert "plugin 'failing-observer' failed in hyperscout_job_finished" in failures[0].getMessage()
    assert failures[0].exc_info is not None and "boom on j1" in caplog.text and "Traceback" in caplog.text


def test_a_failing_wrapper_is_logged_and_every_observer_is_still_called_once(caplog) -> None:  # type: ignore[no-untyped-def]
    pm = get_plugin_manager(load_entrypoints=False)
    seen: list[str] = []

    class Bad:
        @hookimpl(wrapper=True)
        def hyperscout_job_finished(self):  # type: ignore[no-untyped-def]
            raise RuntimeError("wrapper broke before yielding")
            yield  # pragma: no cover

    class BadAfter:
        @hookimpl(wrapper=True)
        def hyperscout_job_finished(self):  # type: ignore[no-untyped-def]
            yield
            raise RuntimeError("wrapper broke after")

    pm.register(_observer(seen, "a"), name="a")
    pm.register(_observer(seen, "b"), name="b")
    pm.register(Bad(), name="bad-wrapper")
    notify(pm, "hyperscout_job_finished", study="S", job="j")
    assert seen == ["b:j", "a:j"]
    assert "hook wrapper 'bad-wrapper' of hyperscout_job_finished failed" in caplog.text
    pm.unregister(name="bad-wrapper")
    pm.register(BadAfter(), name="bad-after")
    seen.clear()
    notify(pm, "hyperscout_job_finished", study="S", job="j")
    assert seen == ["b:j", "a:j"]
    assert "hook wrapper 'bad-after' of hyperscout_job_finished failed" in caplog.text


def test_notify_refuses_an_unknown_hook_or_a_missing_argument() -> None:
    pm = get_plugin_manager(load_entrypoints=False)
    with pytest.raises(HyperscoutError, match=r"no hook named 'hyperscout_job_finishd'"):
        notify(pm, "hyperscout_job_finishd", study="S", job="j")
    with pytest.raises(HyperscoutError, match=r"notify\(hyperscout_job_finished\): missing argument\(s\) job"):
        notify(pm, "hyperscout_job_finished", study="S")


def test_the_engine_signature_of_notify() -> None:
    params = inspect.signature(notify).parameters
    assert list(params) == ["pm", "hook_name", "kwargs"]
    assert params["kwargs"].kind is inspect.Parameter.VAR_KEYWORD


# -- documentation and the seed ------------------------------------------------------------------
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
