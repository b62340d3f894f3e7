"""Hook specifications: every way a plugin can extend or observe hyperscout.

Write a plugin as a module (or object) with functions decorated by :data:`hyperscout.hookimpl`,
named exactly as the specifications below, and point an entry point in the ``hyperscout`` group at
it::

    # pyproject.toml of your distribution
    [project.entry-points.hyperscout]
    my_strategy = "my_package.plugin"

    # my_package/plugin.py
    from hyperscout import hookimpl

    @hookimpl
    def hyperscout_register_strategies(register):
        register(MyStrategy)

A hook implementation may accept any subset of the arguments of its specification (pluggy passes
them by name), so new arguments can be added later without breaking existing plugins.

Two kinds of hooks:

* **registration** (``hyperscout_register_*``): called once when the registry is built, to add
  strategy or backend classes (or CLI subcommands). Built-in ``random``, ``grid`` and ``local``
  use them too.
* **lifecycle** (``hyperscout_study_*``, ``hyperscout_job_*``, ...): called from the engine's
  thread as the study runs. Keep them quick; an exception in one is logged and the study goes on.
  ``study`` is a read-only :class:`hyperscout.engine.StudyView`, ``job`` a
  :class:`hyperscout.job.Job` (do not mutate it). The console progress display is an
  implementation of these hooks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from hyperscout.backend import Backend
    from hyperscout.engine import StudyView
    from hyperscout.job import Job, MetricPoint
    from hyperscout.strategy import SearchStrategy

PROJECT = "hyperscout"
hookspec = pluggy.HookspecMarker(PROJECT)


@hookspec
def hyperscout_register_strategies(register: Callable[..., Any]) -> None:
    """Add search-strategy classes to the registry.

    Call ``register(cls)`` for each :class:`hyperscout.SearchStrategy` subclass; it is selected by
    ``cls.name``. Pass ``register(cls, name="other")`` to register it under another name. Two
    plugins registering the same name is an error that names both distributions.

    :param register: ``register(cls: type[SearchStrategy], name: str | None = None) -> None``
    """


@hookspec
def hyperscout_register_backends(register: Callable[..., Any]) -> None:
    """Add execution-backend classes to the registry.

    Call ``register(cls)`` for each :class:`hyperscout.Backend` subclass; it is selected by
    ``cls.name`` (``backend = "local"`` in a study file, ``backend="local"`` in Python).

    :param register: ``register(cls: type[Backend], name: str | None = None) -> None``
    """


@hookspec
def hyperscout_register_commands(subparsers: Any) -> None:
    """Add subcommands to the ``hyperscout`` command line (``hyperscout ui`` is one).

    Called once when the CLI builds its parser. ``subparsers`` is the ``argparse`` sub-parser
    action: ``p = subparsers.add_parser("ui", help=...)``, add arguments, then
    ``p.set_defaults(func=run)`` where ``run(args) -> int`` is the exit status. Raise
    :class:`hyperscout.HyperscoutError` for user errors: the CLI prints its one line and exits 2.
    Import heavy dependencies inside ``run``, not at module level, so ``hyperscout --help`` stays fast.

    :param subparsers: ``argparse._SubParsersAction`` of the ``hyperscout`` parser
    """


@hookspec
def hyperscout_study_started(study: StudyView, resumed: bool) -> None:
    """The study is about to launch its first job.

    :param study: the running study (name, objectives, limits, jobs so far)
    :param resumed: True when the store already held jobs of this study
    """


@hookspec
def hyperscout_study_ended(study: StudyView, reason: str) -> None:
    """The study ended and no job of it is running.

    :param reason: why: ``"exhausted"`` (nothing left to try), ``"total_max_jobs"``,
        ``"time_limit"``, ``"compute_time_limit"`` or ``"stopped"`` (``stop()`` or Ctrl-C)
    """


@hookspec
def hyperscout_job_launched(study: StudyView, job: Job) -> None:
    """A job was handed to the backend (status ``pending``)."""


@hookspec
def hyperscout_job_started(study: StudyView, job: Job) -> None:
    """A job started running (status ``running``)."""


@hookspec
def hyperscout_metric_reported(study: StudyView, job: Job, point: MetricPoint) -> None:
    """A running job reported a scalar (any title/series, not only the objective)."""


@hookspec
def hyperscout_job_finished(study: StudyView, job: Job) -> None:
    """A job reached a final status (completed, failed, aborted or pruned).

    ``job.objective_values`` holds its objective values (``None`` if never reported) and
    ``job.reason`` why it failed or was stopped.
    """


@hookspec
def hyperscout_study_tick(study: StudyView) -> None:
    """Called every report period (``set_report_period``) while the study runs: refresh displays."""


@hookspec
def hyperscout_new_best(study: StudyView, job: Job) -> None:
    """A finished job became the best so far (the first of the Pareto front for several objectives)."""


if TYPE_CHECKING:  # keep the imports used for the annotations above visible to linters
    _ = (Backend, SearchStrategy)
