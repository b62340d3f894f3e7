"""The optimizer as a ClearML task, as ClearML's ``HyperParameterOptimizer`` makes it.

* **Which task.** ``auto_connect_task`` given as a ``Task``: that one (read-only unless draft or running);
  otherwise ``Task.current_task()`` (the seed's ``Task.init(task_type=optimizer)``); with none and
  ``always_create_task``: a new task "Optimizing: <base task>" of type optimizer in the base task's project.
  It is tagged ``optimization``; the trials are its children, tagged ``opt: <its id>``.
* **The study on the task.** With ``auto_connect_task`` the study definition is connected the way ClearML does
  it: the search space as the configuration object ``General`` (``parameter_optimization_space``, ClearML's
  JSON form of the ranges) and every argument under ``General/opt/...`` (strategy settings under
  ``General/opt/optimizer_kwargs/...``). Run by an agent (cloned in the UI, or ``execute_remotely`` to the
  ``services`` queue), ``connect`` returns the values stored on the server, so an edited clone runs the edited
  study. Options that are not plain values (an Optuna sampler object) stay as the code gave them.
* **Reports** (what ClearML's HPO reporter writes, refreshed as jobs finish rather than every few minutes):
  scalars ``<title>/<series>`` (``min``/``max`` = best so far, ``last reported``), ``remaining budget``
  (``jobs %``, ``iterations %``, ``compute_time %``, ``time %``), ``budget used`` (jobs, iterations,
  minutes), ``resources`` (queue workers, running and pending tasks); the ``Optimization Objective`` scatter, the
  ``summary`` table (best first, with links) and ``Parallel Coordinates``; the best job's task id as user
  properties ``best_task_id``/``best_job_id``/``best_objective``; the ``summary`` artifact at the end.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

from hyperscout.params import SearchSpace, parameter_from_dict

__all__ = ["OptimizerTask", "connect"]

log = logging.getLogger("hyperscout.clearml")

#: ClearML's names for hyperscout's strategies (``General/opt/optimizer_class``)
_CLEARML_NAMES = {"random": "RandomSearch", "grid": "GridSearch", "optuna": "OptimizerOptuna", "bohb": "OptimizerBOHB"}
#: hyperscout arguments ClearML keeps under ``opt/optimizer_kwargs`` (its strategies' constructor arguments)
_KWARGS = ("pool_period_min", "time_limit_per_job", "total_max_jobs", "min_iteration_per_job", "max_iteration_per_job")
#: hyperscout's own arguments, next to ClearML's under ``opt/``
_EXTRAS = ("save_top_k_tasks_only", "time_limit_queued", "max_consecutive_failures", "total_max_iterations",
           "study_name", "seed")
_TOP_LEVEL = ("base_task_id", "objective_metric_title", "objective_metric_series", "objective_metric_sign",
              "max_number_of_concurrent_tasks", "execution_queue", "optimization_time_limit", "compute_time_limit")
_BASIC = (str, int, float, bool, list, tuple, dict, type(None))


def connect(backend: Any, arguments: dict[str, Any]) -> dict[str, Any]:
    """Find (or create) the optimizer task; with ``auto_connect_task`` store the study on it and return the
    arguments as the server holds them. The backend keeps the task for parents, tags and reports."""
    task, readonly = _find_task(backend, arguments)
    if task is None:
        return arguments
    opt = OptimizerTask(task, readonly)
    backend.optimizer_task = opt
    if readonly:
        log.warning("hyperscout-clearml: optimizer task %s is %s: it is the trials' parent, nothing is stored or "
                    "reported on it", task.id, task.status)
        return arguments
    try:
        task.add_tags(["optimization"])
    except Exception as exc:
        log.warning("hyperscout-clearml: tagging optimizer task %s failed: %s", task.id, exc)
    if backend.auto_connect_task is not False:
        arguments = opt.connect(arguments)
    if not arguments.get("study_name"):
        arguments["study_name"] = f"clearml-{task.id}"  # a restarted optimizer task resumes its study
    return arguments


def _find_task(backend: Any, arguments: Mapping[str, Any]) -> tuple[Any, bool]:
    from clearml import Task

    given = backend.auto_connect_task
    if not isinstance(given, bool):
        return given, str(given.status) not in ("created", "in_progress")
    task = Task.current_task()
    if task is None and backend.always_create_task:
        base = backend.base_task(arguments["base_task_id"])
        task = Task.init(
            project_name=_project_name(backend, base.project),
            task_name=f"Optimizing: {base.name}",
            task_type=Task.TaskTypes.optimizer,
            reuse_last_task_id=False,
            auto_connect_arg_parser=False,
            auto_connect_frameworks=False,
            auto_resource_monitoring=False,
        )
    return task, False


def _project_name(backend: Any, project_id: str | None) -> str | None:
    if not project_id:
        return None
    try:
        data = backend.api.call(backend.api.services().projects.GetByIdRequest(project=project_id), retry=False)
        return str(data["project"]["name"])
    except Exception:
        return None


def _coerce(value: Any, original: Any) -> Any:
    """A value read back from the server whose code value was None (stored as an empty string)."""
    if original is not None or not isinstance(value, str):
        return value
    text = value.strip()
    if text in ("", "None", "null"):
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def _strategy_name(choice: Any) -> str | None:
    if isinstance(choice, str):
        return choice
    name = getattr(choice, "name", None) if isinstance(choice, type) else None
    return _CLEARML_NAMES.get(name, name) if name else None


class OptimizerTask:
    """The optimizer's own ClearML task: the study definition and the reports live there."""

    def __init__(self, task: Any, readonly: bool) -> None:
        self.task = task
        self.readonly = readonly
        self.id = str(task.id)
        self.project = getattr(getattr(task, "data", None), "project", None) or getattr(task, "project", None)
        self._logger: Any = None
        self._objectives: list[Any] = []
        self._names: list[str] = []
        self._queue_id: str | None = None
        self._web = ""
        self._iteration = 0
        self._reported_best: str | None = None

    # -- the study on the task ------------------------------------------------------------
    def connect(self, arguments: dict[str, Any]) -> dict[str, Any]:
        space = SearchSpace.of(arguments["hyper_parameters"])
        configuration = {"parameter_optimization_space": space.to_dicts()}
        configuration = self.task.connect_configuration(configuration) or configuration
        parameters = [parameter_from_dict(d) for d in configuration["parameter_optimization_space"]]

        options = {**dict(arguments.get("strategy_options") or {}), **dict(arguments.get("optimizer_kwargs") or {})}
        kept = {k: v for k, v in options.items() if not isinstance(v, _BASIC)}  # objects stay in memory
        kwargs = {k: arguments[k] for k in _KWARGS}
        kwargs.update({k: v for k, v in options.items() if k not in kept})
        opt: dict[str, Any] = {k: arguments[k] for k in _TOP_LEVEL}
        opt["base_task_id"] = str(getattr(opt["base_task_id"], "id", opt["base_task_id"]))
        for key in ("objective_metric_title", "objective_metric_series", "objective_metric_sign"):
            if isinstance(opt[key], tuple):
                opt[key] = list(opt[key])
        strategy = _strategy_name(arguments["optimizer_class"])
        if strategy is not None:
            opt["optimizer_class"] = strategy
        else:
            log.warning("hyperscout-clearml: optimizer_class %r is an instance; it is not stored on the optimizer "
                        "task", arguments["optimizer_class"])
        opt["optimizer_kwargs"] = kwargs
        opt.update({k: arguments[k] for k in _EXTRAS})
        sent = json.loads(json.dumps(opt, default=str))
        connected = {"opt": opt}
        self.task.connect(connected)
        got = connected["opt"]

        out = dict(arguments)
        out["hyper_parameters"] = parameters
        for key in (*_TOP_LEVEL, *_EXTRAS):
            out[key] = _coerce(got.get(key), sent.get(key))
        if out["base_task_id"] == sent["base_task_id"]:
            out["base_task_id"] = arguments["base_task_id"]  # keep what the code gave (a task object, say)
        got_kwargs = dict(got.get("optimizer_kwargs") or {})
        for key in _KWARGS:
            out[key] = _coerce(got_kwargs.pop(key, None), sent["optimizer_kwargs"].get(key))
        out["strategy_options"] = {**{k: _coerce(v, sent["optimizer_kwargs"].get(k)) for k, v in got_kwargs.items()},
                                   **kept}
        out["optimizer_kwargs"] = {}
        if strategy is not None and got.get("optimizer_class") != strategy:
            out["optimizer_class"] = got.get("optimizer_class")  # edited on the server: resolved by name
        return out

    # -- reports ----------------------------------------------------------------------------
    def plan(self, plan: Any, backend: Any) -> None:
        self._objectives = list(plan.objectives)
        self._names = list(plan.space.names)
        try:
            self._queue_id = backend._queue_id(plan.queue)
            self._web = backend.api.web_host
        except Exception:
            self._queue_id = None

    @property
    def logger(self) -> Any:
        if self._logger is None:
            self._logger = self.task.get_logger()
        return self._logger

    def started(self, study: Any, resumed: bool) -> None:
        if self.readonly:
            return
        if resumed:
            self._report_jobs(study)

    def job_finished(self, study: Any, job: Any) -> None:
        if self.readonly:
            return
        from hyperscout.results import ranked_jobs

        self._iteration += 1
        if job.ranked:
            top = ranked_jobs(study.jobs, study.objectives, 1)  # the engine names the new best after this hook
            for i, (o, value) in enumerate(zip(self._objectives, job.objective_values or [])):
                key = f"{o.title}/{o.series}"
                self.logger.report_scalar(key, "last reported", value, iteration=self._iteration)
                if top and top[0].objective_values:
                    self.logger.report_scalar(key, "max" if o.maximize else "min", top[0].objective_values[i],
                                              iteration=self._iteration)
        self._report_budget(study)
        self._report_jobs(study)

    def new_best(self, study: Any, job: Any) -> None:
        if self.readonly or job.id == self._reported_best:
            return
        self._reported_best = job.id
        values = job.objective_values or []
        try:
            stored = self.task.set_user_properties(
                best_task_id=job.handle or "", best_job_id=job.id,
                best_objective=", ".join(f"{v:.6g}" for v in values),
            )
        except Exception as exc:
            stored, why = False, str(exc)
        else:
            why = "the server refused the user properties"
        if not stored:
            log.warning("hyperscout-clearml: recording the best job on optimizer task %s failed: %s", self.id, why)

    def tick(self, study: Any, backend: Any) -> None:
        if self.readonly:
            return
        self._iteration += 1
        self._report_budget(study)
        counts = study.counts()
        self.logger.report_scalar("resources", "running tasks", counts.get("running", 0), iteration=self._iteration)
        self.logger.report_scalar("resources", "pending tasks", counts.get("pending", 0), iteration=self._iteration)
        workers = self._queue_workers(backend)
        if workers is not None:
            self.logger.report_scalar("resources", "queue workers", workers, iteration=self._iteration)

    def ended(self, study: Any, reason: str, backend: Any) -> None:
        if self.readonly:
            return
        self._iteration += 1
        self._report_budget(study)
        rows = self._report_jobs(study)
        best = study.best
        self.logger.report_text(
            f"hyperscout study {study.name!r} ended ({reason}): {study.launched} jobs; best: "
            + (f"task {best.handle} (job {best.id}) {best.objective_values}" if best is not None else "none"))
        try:
            self.logger.flush()
        except Exception:
            pass
        try:
            self.task.upload_artifact("summary", artifact_object={"table": rows}, wait_on_upload=True)
        except Exception as exc:  # no files server, or it refuses uploads: the table is in the plots anyway
            log.info("hyperscout-clearml: the summary artifact was not uploaded: %s", exc)

    def _queue_workers(self, backend: Any) -> int | None:
        if self._queue_id is None:
            return None
        try:
            data = backend.api.call(backend.api.services().workers.GetAllRequest(), retry=False)
        except Exception:
            return None
        return sum(1 for w in data.get("workers") or []
                   if any(q.get("id") == self._queue_id for q in (w.get("queues") or [])))

    def _report_budget(self, study: Any) -> None:
        lim = study.limits
        now = study.now()
        it = self._iteration
        used_compute = sum((j.ended or now) - j.started for j in study.jobs
                           if j.started is not None and j.superseded_by is None)
        elapsed = study.elapsed
        self.logger.report_scalar("budget used", "jobs", study.launched, iteration=it)
        self.logger.report_scalar("budget used", "iterations", study.iterations_used, iteration=it)
        self.logger.report_scalar("budget used", "minutes", elapsed / 60.0, iteration=it)
        self.logger.report_scalar("budget used", "compute minutes", used_compute / 60.0, iteration=it)
        remaining: dict[str, float] = {}
        if lim.total_max_jobs:
            remaining["jobs %"] = 100.0 * (1 - study.launched / lim.total_max_jobs)
        iterations = lim.total_max_iterations or (
            lim.total_max_jobs * lim.max_iteration_per_job if lim.total_max_jobs and lim.max_iteration_per_job else None)
        if iterations:
            remaining["iterations %"] = 100.0 * (1 - study.iterations_used / iterations)
        if lim.compute_time_limit:
            remaining["compute_time %"] = 100.0 * (1 - used_compute / lim.compute_time_limit)
        if study.deadline is not None and study.started_at is not None and study.deadline > study.started_at:
            remaining["time %"] = 100.0 * (study.deadline - now) / (study.deadline - study.started_at)
        for series, value in remaining.items():
            self.logger.report_scalar("remaining budget", series, max(0.0, value), iteration=it)

    def _link(self, task_id: str | None) -> str:
        if not task_id:
            return ""
        if not self._web or not self.project:
            return task_id
        return f'<a href="{self._web}/projects/{self.project}/experiments/{task_id}/output/log"> {task_id} </a>'

    def _report_jobs(self, study: Any) -> list[list[Any]]:
        """The summary table, the objective scatter and the parallel coordinates, best first."""
        from hyperscout.results import ranked_jobs

        jobs = [j for j in study.jobs if j.status.finished and j.superseded_by is None]
        ranked = ranked_jobs(jobs, study.objectives)
        others = sorted((j for j in jobs if not j.ranked), key=lambda j: j.number)
        keys = [f"{o.title}/{o.series}" for o in self._objectives] or [o.key for o in study.objectives]
        names = self._names or sorted({k for j in jobs for k in j.params})
        header = ["task id", "job", *keys, "iteration", *names, "status"]
        rows: list[list[Any]] = [header]
        for job in [*ranked, *others]:
            values = list(job.objective_values or [])
            rows.append([self._link(job.handle), job.id, *[(values[i] if i < len(values) else "")
                                                           for i in range(len(keys))],
                         (job.objective_iterations or [""])[0], *[job.params.get(n, "") for n in names],
                         job.status.value])
        self.logger.report_table("summary", "job", iteration=0, table_plot=rows)
        for i, key in enumerate(keys):
            points = [[j.number, j.objective_values[i]] for j in sorted(ranked, key=lambda j: j.number)
                      if j.objective_values and len(j.objective_values) > i]
            if points:
                labels = [" ".join(f"{k}={v}" for k, v in sorted(j.params.items()))
                          for j in sorted(ranked, key=lambda j: j.number)]
                self.logger.report_scatter2d("Optimization Objective", key, scatter=points, iteration=0,
                                             xaxis="job #", yaxis="objective", mode="markers", labels=labels)
        if ranked:
            self.logger.report_plotly("Parallel Coordinates", "", iteration=0,
                                      figure=_parallel_coordinates(ranked, names, keys, self._objectives))
        return rows


def _parallel_coordinates(jobs: Sequence[Any], names: Sequence[str], keys: Sequence[str],
                          objectives: Sequence[Any]) -> dict[str, Any]:
    def dimension(label: str, values: list[Any]) -> dict[str, Any]:
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values):
            return {"label": label, "values": values}
        text = [str(v) for v in values]
        categories = sorted(set(text))
        return {"label": label, "values": [categories.index(t) for t in text],
                "tickvals": list(range(len(categories))), "ticktext": categories}

    dims = [dimension("job", [j.number for j in jobs])]
    dims += [dimension(n, [j.params.get(n, "") for j in jobs]) for n in names]
    dims += [dimension(k, [j.objective_values[i] for j in jobs]) for i, k in enumerate(keys)]
    colour = [j.objective_values[0] for j in jobs]
    maximize = bool(objectives and objectives[0].maximize)
    return {
        "data": [{"type": "parcoords", "dimensions": dims,
                  "line": {"color": colour, "colorscale": "Viridis", "reversescale": maximize, "showscale": True}}],
        "layout": {"title": f"objective: {keys[0] if keys else ''}"},
    }
