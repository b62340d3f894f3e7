"""``HyperParameterOptimizer``: ClearML's call shape, run by hyperscout's engine.

Differences from ClearML worth knowing (all deliberate):

* no server: ``base_task_id`` is a path to a Python script or a :class:`hyperscout.Command` for
  the local backend (a task id for a ClearML backend plugin);
* every limit is enforced by the engine, in the units documented (minutes here, as ClearML);
* ``job_complete_callback`` fires exactly once per job that finished with an objective value,
  with ClearML's documented types (floats and ints; lists when there are several objectives);
* strategy options that the strategy does not accept are an error, never silently dropped;
* the study lives in an SQLite store (``storage``): the same ``study_name`` resumes it.

What a backend may take from the optimizer (all optional, so a backend that has none of it works):

* ClearML's server settings ``auto_connect_task``, ``always_create_task`` and ``spawn_project`` reach the
  backend as options when its class declares them as keyword-only options; otherwise they are warned about;
* ``connect_arguments(arguments: dict) -> dict``: called before anything is validated, with every argument as
  given (``optimizer_kwargs`` as one dict); what it returns is used instead. A remote backend stores the study
  definition on its server there and reads back values edited on the server (a re-run from its UI);
* ``plan(plan: StudyPlan)``: called at the end of ``__init__`` with the validated study, so that what the
  backend can only check on its server (parameter names, queues) fails here, before any job exists;
* a backend instance with ``@hookimpl`` lifecycle methods is registered with the plugin manager while its study
  runs (reports on a server, server-side archiving).
"""

from __future__ import annotations

import datetime as _dt
import inspect
import json
import logging
import math
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import pluggy

from hyperscout.backend import Backend
from hyperscout.capture import MetricPattern
from hyperscout.command import Command
from hyperscout.engine import Engine, Limits, StudyView
from hyperscout.errors import ConfigError, PluginNotFoundError
from hyperscout.job import Job
from hyperscout.objective import ObjectiveSet
from hyperscout.params import Parameter, SearchSpace
from hyperscout.plugins import backends, get_plugin_manager, strategies
from hyperscout.results import ranked_jobs
from hyperscout.store import Store
from hyperscout.strategy import SearchStrategy, StudySettings

__all__ = ["HyperParameterOptimizer", "StudyPlan"]

log = logging.getLogger("hyperscout")

_UNSET = object()


#: the optimizer's own arguments: a strategy option of one of these names is a mistake
OPTIMIZER_ARGUMENTS = frozenset({
    "base_task_id", "hyper_parameters", "objective_metric_title", "objective_metric_series", "objective_metric_sign",
    "optimizer_class", "max_number_of_concurrent_tasks", "execution_queue", "optimization_time_limit",
    "compute_time_limit", "save_top_k_tasks_only", "pool_period_min", "time_limit_per_job", "time_limit_queued",
    "total_max_jobs", "min_iteration_per_job", "max_iteration_per_job", "max_consecutive_failures", "study_name",
    "total_max_iterations",
    "storage", "backend", "backend_options", "strategy_options", "seed", "metric_patterns", "show_progress",
    "plugin_manager", "auto_connect_task", "always_create_task", "spawn_project",
})


#: arguments of ClearML's optimizer that belong to a remote backend: forwarded when it declares them
BACKEND_SETTINGS = ("auto_connect_task", "always_create_task", "spawn_project")


@attrs.frozen
class StudyPlan:
    """The validated study, as a backend's ``plan()`` sees it before any job exists."""

    study_name: str
    base_task: Any
    space: SearchSpace
    objectives: ObjectiveSet
    queue: str | None
    limits: Limits
    #: whether the strategy reads every intermediate value (it prunes or stops jobs early): a polling
    #: backend then fetches metric histories, not only the last values. Caps (``limits``
    #: ``max_iteration_per_job``, a job's ``budget``) need the exact point only once a job reaches them
    intermediate: bool
    definition: Mapping[str, Any]
    #: stdout patterns (``[[metrics]]``) the jobs' output is to be parsed with
    metric_patterns: tuple[MetricPattern, ...] = ()


def _positive(name: str, value: Any, *, integer: bool = False, allow_zero: bool = False, allow_none: bool = True) -> Any:
    if value is None and allow_none:
        return None
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type or not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        kind = ("a non-negative" if allow_zero else "a positive") + (" integer" if integer else " number")
        tail = " (or None for no limit)" if allow_none else ""
        raise ConfigError(f"{name}={value!r} must be {kind}{tail}")
    return value


#: what ``_build`` unpacks, in order (the constructor's arguments minus those that pick the backend)
_BUILD_ARGUMENTS = (
    "base_task_id", "hyper_parameters", "objective_metric_title", "objective_metric_series", "objective_metric_sign",
    "optimizer_class", "max_number_of_concurrent_tasks", "execution_queue", "optimization_time_limit",
    "compute_time_limit", "save_top_k_tasks_only", "pool_period_min", "time_limit_per_job", "total_max_jobs",
    "min_iteration_per_job", "max_iteration_per_job", "time_limit_queued", "max_consecutive_failures",
    "total_max_iterations", "study_name", "storage", "seed", "metric_patterns", "show_progress",
    "strategy_options", "optimizer_kwargs",
)
_ARGUMENT_NAMES = frozenset(_BUILD_ARGUMENTS) | {"backend", "backend_options", "plugin_manager", *BACKEND_SETTINGS}


def _keyword_options(cls: type) -> set[str]:
    """The keyword-only options a class's constructor declares."""
    params = inspect.signature(cls.__init__).parameters.values()  # type: ignore[misc]
    return {p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}


class HyperParameterOptimizer:
    """Search ``hyper_parameters`` of ``base_task_id`` for the best objective.

    ``start()`` returns at once; the study runs in a background thread until the strategy is
    exhausted, ``total_max_jobs`` jobs ran, a time limit passed, or ``stop()``.
    """

    def __init__(
        self,
        base_task_id: str | Path | Command,
        hyper_parameters: Sequence[Parameter | Mapping[str, Any]],
        objective_metric_title: str | Sequence[str],
        objective_metric_series: str | Sequence[str],
        objective_metric_sign: str | Sequence[str] = "min",
        optimizer_class: str | type[SearchStrategy] | SearchStrategy = "random",
        max_number_of_concurrent_tasks: int = 10,
        execution_queue: str | None = "default",
        optimization_time_limit: float | None = None,
        compute_time_limit: float | None = None,
        save_top_k_tasks_only: int | None = None,
        *,
        pool_period_min: float = 0.1,
        time_limit_per_job: float | None = None,
        total_max_jobs: int | None = None,
        min_iteration_per_job: int | None = None,
        max_iteration_per_job: int | None = None,
        time_limit_queued: float | None = None,
        max_consecutive_failures: int | None = 5,
        total_max_iterations: int | None = None,
        study_name: str | None = None,
        storage: str | Path = ".hyperscout",
        backend: str | type[Backend] | None = None,
        backend_options: Mapping[str, Any] | None = None,
        strategy_options: Mapping[str, Any] | None = None,
        seed: int | None = None,
        metric_patterns: Sequence[MetricPattern | Mapping[str, Any]] = (),
        show_progress: bool = True,
        plugin_manager: pluggy.PluginManager | None = None,
        auto_connect_task: Any = None,
        always_create_task: Any = None,
        spawn_project: Any = None,
        **optimizer_kwargs: Any,
    ) -> None:
        arguments = {k: v for k, v in locals().items() if k in _ARGUMENT_NAMES}
        arguments["optimizer_kwargs"] = dict(optimizer_kwargs)
        self.pm = plugin_manager or get_plugin_manager()
        self._backend_cls, self._backend = self._prepare_backend(arguments)
        connect = getattr(self._backend, "connect_arguments", None)
        if callable(connect):  # a remote backend's server may hold edited values (a re-run from its UI)
            arguments = dict(connect(dict(arguments)))
        self._build(arguments)
        plan = getattr(self._backend, "plan", None)
        if callable(plan):
            plan(StudyPlan(
                study_name=self.study_name, base_task=self._task, space=self.space, objectives=self.objectives,
                queue=self.execution_queue, limits=self.limits, intermediate=self._uses_intermediate(),
                definition=self._definition(self._backend_cls.name), metric_patterns=self.metric_patterns,
            ))

    def _prepare_backend(self, arguments: Mapping[str, Any]) -> tuple[type[Backend], Backend]:
        """Pick the backend class (named, or the one that claims ``base_task_id``) and build it with its options."""
        base_task_id = arguments["base_task_id"]
        if base_task_id is None or (isinstance(base_task_id, str) and not base_task_id.strip()):
            raise ConfigError("base_task_id is missing: give the training script's path, a hyperscout.Command "
                              "or a task id of an installed remote backend")
        self.base_task_id = base_task_id
        backend_options = arguments["backend_options"]
        if backend_options is not None and not isinstance(backend_options, Mapping):
            raise ConfigError(f"backend_options={backend_options!r} must be a dict of option names to values")
        self._backend_options = dict(backend_options or {})
        cls = self._resolve_backend(arguments["backend"])
        accepted = _keyword_options(cls)
        for name in BACKEND_SETTINGS:
            value = arguments[name]
            if value is None:
                continue
            if name in accepted:
                self._backend_options.setdefault(name, value)
            else:  # a remote server's setting: said out loud, not silently dropped
                log.warning("hyperscout: %s=%r is a ClearML server setting and has no effect with backend %r; "
                            "the study is recorded in its store (storage=...)", name, value, cls.name)
        return cls, cls(**self._backend_options)  # bad option values fail here

    def _uses_intermediate(self) -> bool:
        return type(self.optimizer).report is not SearchStrategy.report

    def _build(self, a: Mapping[str, Any]) -> None:
        """Validate every argument and build the space, objectives, limits and strategy."""
        (base_task_id, hyper_parameters, objective_metric_title, objective_metric_series, objective_metric_sign,
         optimizer_class, max_number_of_concurrent_tasks, execution_queue, optimization_time_limit,
         compute_time_limit, save_top_k_tasks_only, pool_period_min, time_limit_per_job, total_max_jobs,
         min_iteration_per_job, max_iteration_per_job, time_limit_queued, max_consecutive_failures,
         total_max_iterations, study_name, storage, seed, metric_patterns, show_progress, strategy_options,
         optimizer_kwargs) = (a[k] for k in _BUILD_ARGUMENTS)
        self.base_task_id = base_task_id
        self.space = SearchSpace.of(hyper_parameters)
        self.hyper_parameters = list(self.space.parameters)
        self.objectives = ObjectiveSet.build(objective_metric_title, objective_metric_series, objective_metric_sign)
        self.max_number_of_concurrent_tasks = _positive(
            "max_number_of_concurrent_tasks", max_number_of_concurrent_tasks, integer=True, allow_none=False
        )
        if execution_queue is not None and not isinstance(execution_queue, str):
            raise ConfigError(f"execution_queue={execution_queue!r} must be a queue name (a string) or None")
        self.execution_queue = execution_queue
        if save_top_k_tasks_only is not None and (isinstance(save_top_k_tasks_only, bool)
                                                  or not isinstance(save_top_k_tasks_only, int)):
            raise ConfigError(f"save_top_k_tasks_only={save_top_k_tasks_only!r} must be an integer (-1 keeps all)")

        def minutes(name: str, value: Any) -> float | None:
            return None if value is None else 60.0 * _positive(name, value)

        self.limits = Limits(
            max_concurrency=self.max_number_of_concurrent_tasks,
            total_max_jobs=_positive("total_max_jobs", total_max_jobs, integer=True),
            time_limit_per_job=minutes("time_limit_per_job", time_limit_per_job),
            time_limit_queued=minutes("time_limit_queued", time_limit_queued),
            compute_time_limit=minutes("compute_time_limit", compute_time_limit),
            min_iteration_per_job=_positive("min_iteration_per_job", min_iteration_per_job, integer=True, allow_zero=True),
            max_iteration_per_job=_positive("max_iteration_per_job", max_iteration_per_job, integer=True),
            max_consecutive_failures=_positive("max_consecutive_failures", max_consecutive_failures, integer=True),
            total_max_iterations=_positive("total_max_iterations", total_max_iterations, integer=True),
            save_top_k=None if save_top_k_tasks_only is None or save_top_k_tasks_only <= 0 else int(save_top_k_tasks_only),
            poll_interval=60.0 * _positive("pool_period_min", pool_period_min, allow_none=False),
        )
        if self.limits.min_iteration_per_job is not None and self.limits.max_iteration_per_job is not None \
                and self.limits.min_iteration_per_job > self.limits.max_iteration_per_job:
            raise ConfigError(
                f"min_iteration_per_job={min_iteration_per_job} is above max_iteration_per_job={max_iteration_per_job}; "
                "swap them"
            )
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ConfigError(f"seed={seed!r} must be an integer or None")
        self.seed = seed
        self.settings = StudySettings(
            max_concurrency=self.limits.max_concurrency,
            total_max_jobs=self.limits.total_max_jobs,
            min_iteration_per_job=self.limits.min_iteration_per_job,
            max_iteration_per_job=self.limits.max_iteration_per_job,
            time_limit_per_job=self.limits.time_limit_per_job,
            seed=seed,
        )
        self.metric_patterns = tuple(MetricPattern.of(p) for p in metric_patterns)
        if study_name is not None and (not isinstance(study_name, str) or not study_name.strip()):
            raise ConfigError(f"study_name={study_name!r} must be a non-empty string (or None for a new name)")
        if not isinstance(storage, (str, os.PathLike)) or not str(storage):
            raise ConfigError(f"storage={storage!r} must be a directory path (a str or Path), e.g. '.hyperscout'")
        if not isinstance(show_progress, bool):
            raise ConfigError(f"show_progress={show_progress!r} must be True or False")
        self._show_progress = show_progress
        self.study_name = study_name or f"study-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}"
        self.storage = Path(storage)

        # Resolve and check the plugins now, so that bad input fails here, not in a thread.
        if strategy_options is not None and not isinstance(strategy_options, Mapping):
            raise ConfigError(f"strategy_options={strategy_options!r} must be a dict of option names to values")
        self._strategy_options = {**dict(strategy_options or {}), **optimizer_kwargs}
        for key in self._strategy_options:
            if key in OPTIMIZER_ARGUMENTS:
                raise ConfigError(f"{key!r} is an optimizer argument, not a strategy option; pass it to "
                                  "HyperParameterOptimizer itself ([limits] or [study] in a study file)")
        self.optimizer = self._build_strategy(optimizer_class)
        self._task = self._backend_cls.base_task(base_task_id)

        self._callback: Callable[..., Any] | None = None
        self._engine: Engine | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._deadline: float | None = None
        self._time_limit_minutes = _positive("optimization_time_limit", optimization_time_limit)
        self.optimization_start_time: float | None = None
        self._report_period = 5.0 * 60
        self._backend_hooks: str | None = None

    # -- plugin resolution ------------------------------------------------------------------
    def _build_strategy(self, choice: str | type[SearchStrategy] | SearchStrategy) -> SearchStrategy:
        if isinstance(choice, SearchStrategy):
            if self._strategy_options:
                raise ConfigError(
                    f"optimizer_class is an already-built strategy, so options {sorted(self._strategy_options)} "
                    "cannot apply; pass the class or its name instead"
                )
            return choice
        if isinstance(choice, str):
            cls = strategies(self.pm).get(choice)
        elif isinstance(choice, type) and issubclass(choice, SearchStrategy):
            cls = choice
        else:
            raise ConfigError(f"optimizer_class={choice!r} must be a strategy name, a SearchStrategy subclass or instance")
        cls.check(self.space, self.objectives, self.settings, self._strategy_options)
        return cls(self.space, self.objectives, self.settings, **self._strategy_options)

    def _resolve_backend(self, choice: str | type[Backend] | None) -> type[Backend]:
        if choice is None:
            return self._backend_for(self.base_task_id)
        if isinstance(choice, str):
            cls = backends(self.pm).get(choice)
        elif isinstance(choice, type) and issubclass(choice, Backend):
            cls = choice
        else:
            raise ConfigError(f"backend={choice!r} must be a backend name or a Backend subclass")
        cls.check_options(self._backend_options)
        return cls

    def _backend_for(self, base: Any) -> type[Backend]:
        """No backend named: a script or Command runs locally; a task id goes to the backend that claims it."""
        registry = backends(self.pm)
        if isinstance(base, Command) or Path(str(base)).suffix == ".py" or Path(str(base)).exists():
            cls = registry.get("local")
        else:
            claimed = [e.cls for e in registry if e.cls.claims(base)]
            if not claimed:
                installed = ", ".join(registry.names()) or "none"
                raise PluginNotFoundError(
                    f"base_task_id={base!r} is not a script, and no installed backend knows it as a task id "
                    f"(installed backends: {installed}); for a ClearML task id `pip install hyperscout-clearml`, "
                    "for a local script give its path"
                )
            cls = claimed[0]
        cls.check_options(self._backend_options)
        return cls

    def _definition(self, backend_name: str) -> dict[str, Any]:
        base = self._task
        return {
            "base_task": base.to_dict() if isinstance(base, Command) else str(base),
            "parameters": self.space.to_dicts(),
            "objectives": self.objectives.to_dicts(),
            "strategy": self.optimizer.name or type(self.optimizer).__name__,
            "strategy_options": {k: repr(v) for k, v in self._strategy_options.items()},
            "backend": backend_name,
            "seed": self.seed,
        }

    def _fingerprint(self) -> str:
        return json.dumps(
            {
                "parameters": self.space.to_dicts(),
                "objectives": self.objectives.to_dicts(),
                "strategy": self.optimizer.name or type(self.optimizer).__name__,
            },
            sort_keys=True,
            default=str,
        )

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self, job_complete_callback: Callable[..., Any] | None = None) -> bool:
        """Start the study in the background and return at once (True if it is running).

        ``job_complete_callback(job_id, objective_value, objective_iteration, job_parameters,
        top_performance_job_id)`` is called once per job that finished with an objective value.
        """
        if self._thread is not None:
            return True
        if job_complete_callback is not None and not callable(job_complete_callback):
            raise ConfigError(f"job_complete_callback={job_complete_callback!r} must be a function or None")
        backend_cls = self._backend_cls
        backend = self._backend if type(self._backend) is backend_cls else backend_cls(**self._backend_options)
        store = Store(self.storage)
        if self._show_progress:
            from hyperscout.console import make_progress

            name = f"console-progress-{id(self)}"
            if self.pm.get_plugin(name) is None:
                self.pm.register(make_progress(), name=name)
        self._callback = job_complete_callback
        self.optimization_start_time = time.time()
        if self._time_limit_minutes is not None and self._deadline is None:
            self._deadline = self.optimization_start_time + 60.0 * self._time_limit_minutes
        limits = attrs.evolve(self.limits, report_period=self._report_period)
        definition = self._definition(backend_cls.name)
        definition["limits"] = attrs.asdict(limits)
        self._engine = Engine(
            name=self.study_name,
            space=self.space,
            objectives=self.objectives,
            strategy=self.optimizer,
            backend=backend,
            task=self._task,
            store=store,
            limits=limits,
            definition=definition,
            fingerprint=self._fingerprint(),
            metric_patterns=self.metric_patterns,
            queue_name=self.execution_queue,
            hooks=self.pm,
            job_complete_callback=job_complete_callback,
            deadline=self._deadline,
        )
        try:
            self._engine.prepare()
        except BaseException:
            store.close()
            self._engine = None
            raise
        self._observe_with(backend)
        self._thread = threading.Thread(target=self._run, name=f"hyperscout-{self.study_name}", daemon=True)
        self._thread.start()
        return True

    def start_locally(self, job_complete_callback: Callable[..., Any] | None = None) -> bool:
        """Run the jobs as local subprocesses (the ``local`` backend), whatever ``backend`` says."""
        self._backend_cls = self._resolve_backend("local")
        self._task = self._backend_cls.base_task(self.base_task_id)
        return self.start(job_complete_callback=job_complete_callback)

    def _observe_with(self, backend: Backend) -> None:
        """A backend with lifecycle hooks (reports on its server) observes the study while it runs."""
        if any(self.pm.parse_hookimpl_opts(backend, attr) is not None for attr in dir(backend)):
            name = f"backend-{self.study_name}-{id(backend)}"
            if self.pm.get_plugin(name) is None:
                self.pm.register(backend, name=name)
            self._backend_hooks = name

    def _run(self) -> None:
        assert self._engine is not None
        try:
            self._engine.run()
        except BaseException as exc:  # surfaced by wait()/stop()
            self._error = exc
        finally:
            # the last connection closes: SQLite folds its write-ahead log into the file, so a reader
            # that may only open it read-only (immutable) sees everything
            self._engine.store.close()
            name, self._backend_hooks = self._backend_hooks, None
            if name is not None and self.pm.get_plugin(name) is not None:
                self.pm.unregister(name=name)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the study ends (True) or ``timeout`` minutes pass (False)."""
        if self._thread is None:
            return True
        self._thread.join(None if timeout is None else 60.0 * timeout)
        self._raise_error()
        return not self._thread.is_alive()

    def stop(self, timeout: float | None = None, wait_for_reporter: bool | None = True) -> None:
        """Stop the study: running jobs are aborted (and re-run if the study is resumed)."""
        if self._engine is None or self._thread is None:
            return
        if self._thread.is_alive():
            self._engine.request_stop("stopped")
            self._thread.join(None if timeout is None else 60.0 * timeout)
        self._raise_error()

    def _raise_error(self) -> None:
        if self._error is not None:
            err, self._error = self._error, None
            raise err

    # -- limits and timing --------------------------------------------------------------------
    def set_time_limit(self, in_minutes: float | None = None, specific_time: _dt.datetime | None = None) -> None:
        """Set the study's deadline: ``in_minutes`` from now, or at ``specific_time``; None clears it."""
        if specific_time is not None:
            self._deadline = specific_time.timestamp()
        elif in_minutes is not None:
            self._deadline = time.time() + 60.0 * _positive("in_minutes", in_minutes)
        else:
            self._deadline = None
        self._time_limit_minutes = None
        if self._engine is not None:
            self._engine.set_deadline(self._deadline)

    def get_time_limit(self) -> _dt.datetime | None:
        return None if self._deadline is None else _dt.datetime.fromtimestamp(self._deadline)

    def set_report_period(self, report_period_minutes: float) -> None:
        """How often the progress line refreshes (minutes)."""
        self._report_period = 60.0 * _positive("report_period_minutes", report_period_minutes)

    def _virtual(self) -> Engine | None:
        """The engine when its backend simulates time (``sim``) and its clock has started."""
        e = self._engine
        return e if e is not None and e.virtual and e.started_at is not None else None

    def elapsed(self) -> float:
        """Minutes since ``start()`` (on the study's clock), or -1.0 before it."""
        if self.optimization_start_time is None:
            return -1.0
        if (e := self._virtual()) is not None:
            return e.view.elapsed / 60.0
        return (time.time() - self.optimization_start_time) / 60.0

    def reached_time_limit(self) -> bool:
        """Whether the deadline has passed (False when there is none), on the study's clock."""
        if (e := self._virtual()) is not None:
            return e.deadline is not None and e.now() >= e.deadline
        return self._deadline is not None and self.optimization_start_time is not None and time.time() > self._deadline

    def is_active(self) -> bool:
        """True until the study ended (also before ``start()``, as in ClearML)."""
        return self._thread is None or self._thread.is_alive()

    def is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- results ------------------------------------------------------------------------------
    @property
    def study(self) -> StudyView | None:
        return None if self._engine is None else self._engine.view

    @property
    def objective_metric(self) -> ObjectiveSet:
        return self.objectives

    def get_optimizer(self) -> SearchStrategy:
        return self.optimizer

    def get_num_active_experiments(self) -> int:
        return 0 if self._engine is None else len(self._engine.active_jobs())

    def get_active_experiments(self) -> list[Job]:
        return [] if self._engine is None else self._engine.active_jobs()

    def get_all_experiments(self) -> list[Job]:
        """Every job of this study, in launch order, with its metric history (read from the store)."""
        if self._engine is not None:
            return self._engine.with_histories(sorted(self._engine.snapshot(), key=lambda j: j.number))
        try:
            store = Store(self.storage, readonly=True)
        except Exception:
            return []
        try:
            return store.load_jobs(self.study_name)
        finally:
            store.close()

    def get_top_experiments(self, top_k: int) -> list[Job]:
        """The best ``top_k`` finished jobs (``[t.id for t in ...]`` as in the seed).

        With several objectives the non-dominated jobs come first.
        """
        if self._engine is None:
            # a large study: rank without histories, then read the histories of the top k only
            try:
                store = Store(self.storage, readonly=True)
            except Exception:
                return []
            try:
                if not self.objectives.is_multi:  # ranked in SQL, the same order as ranked_jobs
                    return store.top_single(self.study_name, self.objectives.primary.maximize, top_k)
                top = ranked_jobs(store.load_jobs(self.study_name, with_metrics=False), self.objectives, top_k)
                histories = store.load_metrics([j.id for j in top])
            finally:
                store.close()
            for job in top:
                job.metrics = histories[job.id]
            return top
        return self._engine.top(top_k, histories=True)

    def get_top_experiments_id_metrics_pair(
        self, top_k: int, all_metrics: bool = False, only_completed: bool = False
    ) -> list[tuple[str, dict[str, dict[str, Any]]]]:
        return [(d["job_id"], d["metrics"]) for d in self.get_top_experiments_details(top_k, all_metrics, True, only_completed)]

    def get_top_experiments_details(
        self,
        top_k: int,
        all_metrics: bool = False,
        all_hyper_parameters: bool = False,
        only_completed: bool = False,
    ) -> list[dict[str, Any]]:
        """``[{"job_id", "task_id", "hyper_parameters", "metrics"}]`` best first (``task_id``: the backend's
        name for the job, a ClearML task id; the job id where the backend has none).

        ``metrics`` maps ``"title/series"`` to ``{"metric", "variant", "value", "min_value",
        "max_value", "iteration"}`` (the objectives only, unless ``all_metrics``).
        """
        jobs = self.get_top_experiments(top_k)
        if only_completed:
            jobs = [j for j in jobs if j.status.value == "completed"]
        out = []
        names = set(self.space.names)
        for job in jobs[:top_k]:
            keys = {(m.title, m.series) for m in job.metrics} if all_metrics else {(o.title, o.series) for o in self.objectives}
            metrics = {}
            for title, series in sorted(keys):
                hist = job.history(title, series)
                if not hist:
                    continue
                vals = [v for _, v in hist]
                metrics[f"{title}/{series}"] = {
                    "metric": title, "variant": series, "value": vals[-1], "min_value": min(vals),
                    "max_value": max(vals), "iteration": hist[-1][0],
                }
            params = dict(job.params) if all_hyper_parameters else {k: v for k, v in job.params.items() if k in names}
            out.append({"job_id": job.id, "task_id": job.handle or job.id, "status": job.status.value,
                        "hyper_parameters": params, "metrics": metrics})
        return out
