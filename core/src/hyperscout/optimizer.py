"""``HyperParameterOptimizer``: ClearML's call shape, run by hyperscout's engine.

Differences from ClearML worth knowing (all deliberate):

* no server: ``base_task_id`` is a path to a Python script or a :class:`hyperscout.Command` for
  the local backend (a task id for a ClearML backend plugin);
* every limit is enforced by the engine, in the units documented (minutes here, as ClearML);
* ``job_complete_callback`` fires exactly once per job that finished with an objective value,
  with ClearML's documented types (floats and ints; lists when there are several objectives);
* strategy options that the strategy does not accept are an error, never silently dropped;
* the study lives in an SQLite store (``storage``): the same ``study_name`` resumes it.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
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
from hyperscout.errors import ConfigError
from hyperscout.job import Job
from hyperscout.objective import ObjectiveSet
from hyperscout.params import Parameter, SearchSpace
from hyperscout.plugins import backends, get_plugin_manager, strategies
from hyperscout.store import Store
from hyperscout.strategy import SearchStrategy, StudySettings

__all__ = ["HyperParameterOptimizer"]

log = logging.getLogger("hyperscout")

_UNSET = object()


def _positive(name: str, value: Any, *, integer: bool = False, allow_zero: bool = False) -> Any:
    if value is None:
        return None
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type or value < 0 or (value == 0 and not allow_zero):
        kind = "integer" if integer else "number"
        raise ConfigError(f"{name}={value!r} must be a positive {kind} (or None for no limit)")
    return value


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
        study_name: str | None = None,
        storage: str | Path = ".hyperscout",
        backend: str | type[Backend] = "local",
        backend_options: Mapping[str, Any] | None = None,
        seed: int | None = None,
        metric_patterns: Sequence[MetricPattern | Mapping[str, Any]] = (),
        show_progress: bool = True,
        plugin_manager: pluggy.PluginManager | None = None,
        auto_connect_task: Any = None,
        always_create_task: Any = None,
        spawn_project: Any = None,
        **optimizer_kwargs: Any,
    ) -> None:
        for name, value in (("auto_connect_task", auto_connect_task), ("always_create_task", always_create_task),
                            ("spawn_project", spawn_project)):
            if value is not None:  # ClearML server settings: said out loud, not silently dropped
                log.warning("hyperscout: %s=%r is a ClearML server setting and has no effect here; "
                            "the study is recorded in its store (storage=...)", name, value)
        self.base_task_id = base_task_id
        self.space = SearchSpace.of(hyper_parameters)
        self.hyper_parameters = list(self.space.parameters)
        self.objectives = ObjectiveSet.build(objective_metric_title, objective_metric_series, objective_metric_sign)
        self.max_number_of_concurrent_tasks = _positive(
            "max_number_of_concurrent_tasks", max_number_of_concurrent_tasks, integer=True
        )
        self.execution_queue = execution_queue
        self.limits = Limits(
            max_concurrency=self.max_number_of_concurrent_tasks,
            total_max_jobs=_positive("total_max_jobs", total_max_jobs, integer=True),
            time_limit_per_job=None if time_limit_per_job is None
            else 60.0 * _positive("time_limit_per_job", time_limit_per_job),
            compute_time_limit=None if compute_time_limit is None
            else 60.0 * _positive("compute_time_limit", compute_time_limit),
            min_iteration_per_job=_positive("min_iteration_per_job", min_iteration_per_job, integer=True, allow_zero=True),
            max_iteration_per_job=_positive("max_iteration_per_job", max_iteration_per_job, integer=True),
            save_top_k=None if save_top_k_tasks_only is None or save_top_k_tasks_only <= 0 else int(save_top_k_tasks_only),
            poll_interval=60.0 * _positive("pool_period_min", pool_period_min),
        )
        if self.limits.min_iteration_per_job is not None and self.limits.max_iteration_per_job is not None \
                and self.limits.min_iteration_per_job > self.limits.max_iteration_per_job:
            raise ConfigError(
                f"min_iteration_per_job={min_iteration_per_job} is above max_iteration_per_job={max_iteration_per_job}; "
                "swap them"
            )
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
        self.pm = plugin_manager or get_plugin_manager()
        if show_progress:
            from hyperscout.console import ConsoleProgress

            self.pm.register(ConsoleProgress(), name=f"console-progress-{id(self)}")
        self.study_name = study_name or f"study-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}"
        self.storage = Path(storage)

        # Resolve and check the plugins now, so that bad input fails here, not in a thread.
        self._strategy_options = dict(optimizer_kwargs)
        self.optimizer = self._build_strategy(optimizer_class)
        self._backend_choice = backend
        self._backend_options = dict(backend_options or {})
        self._backend_cls = self._resolve_backend(backend)

        self._callback: Callable[..., Any] | None = None
        self._engine: Engine | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._deadline: float | None = None
        self._time_limit_minutes = optimization_time_limit
        self.optimization_start_time: float | None = None
        self._report_period = 5.0 * 60
        if optimization_time_limit is not None:
            _positive("optimization_time_limit", optimization_time_limit)

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

    def _resolve_backend(self, choice: str | type[Backend]) -> type[Backend]:
        if isinstance(choice, str):
            cls = backends(self.pm).get(choice)
        elif isinstance(choice, type) and issubclass(choice, Backend):
            cls = choice
        else:
            raise ConfigError(f"backend={choice!r} must be a backend name or a Backend subclass")
        cls.check_options(self._backend_options)
        return cls

    def _definition(self, backend_name: str) -> dict[str, Any]:
        base = self.base_task_id
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
        backend_cls = self._backend_cls
        command = self.base_task_id if isinstance(self.base_task_id, Command) else None
        if backend_cls.name == "local" or command is not None or Path(str(self.base_task_id)).suffix == ".py":
            command = Command.coerce(self.base_task_id)
        else:  # a remote backend takes an id; the command only carries it
            command = Command(argv=(str(self.base_task_id),))
        backend = backend_cls(**self._backend_options)
        store = Store(self.storage)
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
            command=command,
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
        self._engine.prepare()
        self._thread = threading.Thread(target=self._run, name=f"hyperscout-{self.study_name}", daemon=True)
        self._thread.start()
        return True

    def start_locally(self, job_complete_callback: Callable[..., Any] | None = None) -> bool:
        """Run the jobs as local subprocesses (the ``local`` backend), whatever ``backend`` says."""
        self._backend_cls = self._resolve_backend("local")
        return self.start(job_complete_callback=job_complete_callback)

    def _run(self) -> None:
        assert self._engine is not None
        try:
            self._engine.run()
        except BaseException as exc:  # surfaced by wait()/stop()
            self._error = exc

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

    def elapsed(self) -> float:
        """Minutes since ``start()``, or -1.0 before it."""
        return -1.0 if self.optimization_start_time is None else (time.time() - self.optimization_start_time) / 60.0

    def reached_time_limit(self) -> bool:
        """Whether the deadline has passed (False when there is none)."""
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
        """Every job of this study, in launch order."""
        if self._engine is not None:
            return sorted(self._engine.snapshot(), key=lambda j: j.number)
        store = Store(self.storage)
        try:
            return store.load_jobs(self.study_name)
        finally:
            store.close()

    def get_top_experiments(self, top_k: int) -> list[Job]:
        """The best ``top_k`` finished jobs (``[t.id for t in ...]`` as in the seed).

        With several objectives the non-dominated jobs come first.
        """
        if self._engine is None:
            from hyperscout.objective import rank

            jobs = [j for j in self.get_all_experiments() if j.objective_values is not None and j.superseded_by is None]
            return rank(jobs, lambda j: j.objective_values, self.objectives)[:top_k]
        return self._engine.top(top_k)

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
        """``[{"job_id", "task_id", "hyper_parameters", "metrics"}]`` best first.

        ``metrics`` maps ``"title/series"`` to ``{"metric", "variant", "value", "min_value",
        "max_value", "iteration"}`` (the objectives only, unless ``all_metrics``).
        """
        jobs = self._engine.top() if self._engine is not None else self.get_top_experiments(10**9)
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
            out.append({"job_id": job.id, "task_id": job.id, "status": job.status.value,
                        "hyper_parameters": params, "metrics": metrics})
        return out
