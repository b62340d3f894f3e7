"""Sessions that install every package the way a user would (``pip install ./core ./plugins/NAME``).

    nox                      # tests, plugins, lint, demo (the README's test command)
    nox -s plugins           # each plugin's own tests in its own virtualenv
    nox -s plugins -- -k discovery
    nox -s bench             # benchmarks under bench/ (not part of the default run)
"""

from __future__ import annotations

import time
from pathlib import Path

import nox
import tomllib

ROOT = Path(__file__).parent
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["tests", "plugins", "template", "lint", "demo", "demo_strategies"]
nox.options.reuse_existing_virtualenvs = True

PLUGINS = sorted(p.parent.name for p in (ROOT / "plugins").glob("*/pyproject.toml"))
BASICS = ["./core", "./plugins/hyperscout-random", "./plugins/hyperscout-grid", "./plugins/hyperscout-local"]


#: plugins whose end-to-end tests drive other plugins of this repository too
ALSO_NEEDS = {"hyperscout-clearml": ["./plugins/hyperscout-optuna", "./plugins/hyperscout-bohb"],
              "hyperscout-dask": ["./plugins/hyperscout-optuna"]}


def _extras(plugin: str) -> str:
    meta = tomllib.loads((ROOT / "plugins" / plugin / "pyproject.toml").read_text())["project"]
    return "[test]" if "test" in meta.get("optional-dependencies", {}) else ""


@nox.session
def tests(session: nox.Session) -> None:
    """The core's tests, with the built-in plugins installed from their own directories."""
    session.install(*BASICS, "pytest", "scikit-learn", "matplotlib")
    session.run("pytest", "tests", *session.posargs)


@nox.session
@nox.parametrize("plugin", PLUGINS, ids=PLUGINS)
def plugins(session: nox.Session, plugin: str) -> None:
    """One plugin's tests in a fresh environment: core + the built-in plugins + that plugin."""
    packages = [*BASICS, *ALSO_NEEDS.get(plugin, []), f"./plugins/{plugin}{_extras(plugin)}"]
    session.install(*dict.fromkeys(packages), "pytest")
    module = plugin.replace("-", "_")
    session.run("python", "-c", f"import {module}")
    session.run("pytest", f"plugins/{plugin}/tests", "-p", "no:cacheprovider", *session.posargs)


@nox.session
def template(session: nox.Session) -> None:
    """The copyable third-party plugin template, installed and tested as its author would."""
    session.install("./core", "./examples/plugin-template[test]")
    session.run("pytest", "examples/plugin-template/tests", "-p", "no:cacheprovider", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff==0.17.6")  # pinned: a new rule in a new release must not fail an old commit
    session.run("ruff", "check", "core", "plugins", "tests", "examples", "bench", "noxfile.py")


@nox.session
def demo(session: nox.Session) -> None:
    """The README quickstart: tune examples/digits/train.py with two jobs at a time."""
    session.install(*BASICS, "scikit-learn")
    name = f"demo-{time.strftime('%Y%m%d-%H%M%S')}"  # a new study each time (the same name would resume)
    session.run("hyperscout", "run", str(ROOT / "examples/digits/study.toml"), "--study-name", name)
    session.run("hyperscout", "top", name, "-k", "3", "--storage", str(ROOT / "examples/digits/.hyperscout"))
    session.run("hyperscout", "plugins")


@nox.session
def demo_strategies(session: nox.Session) -> None:
    """The model-based plugins installed side by side, each tuning the digits example once."""
    session.install(*BASICS, "./plugins/hyperscout-optuna", "./plugins/hyperscout-bohb", "./plugins/hyperscout-skopt",
                    "scikit-learn")
    session.run("hyperscout", "plugins")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for name in ("optuna", "bohb", "skopt"):
        study = ROOT / "examples" / "digits" / f"study-{name}.toml"
        session.run("hyperscout", "run", str(study), "--study-name", f"demo-{name}-{stamp}", "--top", "3")


@nox.session
def clearml_live(session: nox.Session) -> None:
    """The ClearML plugin's tests against a REAL server (CLEARML_API_HOST and keys); not in the default run."""
    import os

    missing = [k for k in ("CLEARML_API_HOST", "CLEARML_API_ACCESS_KEY", "CLEARML_API_SECRET_KEY") if not os.environ.get(k)]
    if missing:
        session.error(f"set {', '.join(missing)} to run the ClearML tests against a real server")
    session.install(*BASICS, *ALSO_NEEDS["hyperscout-clearml"], "./plugins/hyperscout-clearml[test]", "pytest")
    session.run("pytest", "plugins/hyperscout-clearml/tests", "-p", "no:cacheprovider", *session.posargs,
                env={"HYPERSCOUT_CLEARML_LIVE": "1"})


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks (slow; not in the default run)."""
    session.install(*BASICS, *[f"./plugins/{p}" for p in PLUGINS], "scikit-learn", "matplotlib")
    for script in sorted((ROOT / "bench").glob("*/run.py")):
        session.run("python", str(script), *session.posargs)
