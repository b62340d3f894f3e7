"""The ``clearml`` backend: each job is a clone of a ClearML base task, enqueued for a ClearML agent.

Why it is built this way:

* **Few requests.** A launch is two requests: ``tasks.clone`` (name, parent, project, tags and the overridden
  parameters in one call, so no clone ever exists with the base task's values) and ``tasks.enqueue`` on the
  queue id resolved once. Watching is one ``tasks.get_all`` per poll for *all* live jobs (status, last
  iteration, the objectives' last/min/max); a job's full scalar history is fetched only when its metrics moved
  and the strategy needs intermediate values (pruning, budgets). ClearML's own optimizer spends 35-75 requests
  per job on the same work.
* **Handles before the queue.** The task id is recorded in the store (:meth:`Backend.record_handle`) after the
  clone and before the enqueue, and every clone carries the tag ``hyperscout-job:<job id>``, so a resumed
  optimizer finds every task it started, even one whose id never reached the store: nothing is cloned twice.
* **Bounded waiting.** Requests go through the backend's own session (:mod:`hyperscout_clearml._api`): a wrong
  host, key, id or queue is a one-line error within seconds; a server failing mid-study is retried with backoff
  for ``retry_seconds``, then the study stops with the jobs left in flight for a resume to adopt.
"""

from __future__ import annotations

import difflib
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs

from hyperscout import hookimpl
from hyperscout.backend import (
    Backend,
    BackendLost,
    EventSink,
    JobExited,
    JobQueued,
    JobSpec,
    JobStarted,
    MetricReported,
    Reattached,
)
from hyperscout.errors import ConfigError, HyperscoutError, UnsupportedError
from hyperscout.job import MetricPoint
from hyperscout_clearml._api import Api, ApiError, ServerUnavailable, metric_key, shared_api

__all__ = ["JOB_TAG", "ClearMLBackend", "ClearMLTask", "resolve_parameter"]

log = logging.getLogger("hyperscout.clearml")

#: tag of every task the backend clones, followed by the hyperscout job id (how a resume finds it)
JOB_TAG = "hyperscout-job:"
NO_STDOUT_PATTERNS = (
    "the clearml backend reads a job's metrics from the ClearML server, not from its stdout; remove the [[metrics]] "
    "patterns and report with Logger.report_scalar or hyperscout.report_scalar"
)
#: ClearML's HPO tags its trials (and the optimizer task) with this
OPTIMIZATION_TAG = "optimization"
_FINAL = frozenset({"completed", "published", "failed", "stopped", "closed"})
_ID = re.compile(r"[0-9a-f]{32}")
#: points asked of the server's scalar histogram (it down-samples longer histories)
_HISTORY_SAMPLES = 10_000
_CHUNK = 500  # ids per tasks.get_all (the server pages larger answers)
_MONITOR = ":monitor:"  # the SDK's resource-monitor scalars, never a trial's metric


@attrs.frozen
class ClearMLTask:
    """The base task as the backend read it once (``JobSpec.task`` of this backend)."""

    id: str
    name: str
    project: str | None = None
    tags: tuple[str, ...] = ()
    #: section -> name -> the server's parameter record ({"value", "type", "description", ...})
    hyperparams: Mapping[str, Mapping[str, Mapping[str, Any]]] = attrs.field(factory=dict)
    status: str = "created"
    #: "title/series" of every scalar the base task reported (for "the objective is never reported" warnings)
    reported: tuple[str, ...] = ()

    def __str__(self) -> str:
        return self.id

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> ClearMLTask:
        reported = sorted(
            f"{e.get('metric')}/{e.get('variant')}"
            for variants in (data.get("last_metrics") or {}).values()
            for e in (variants or {}).values()
            if isinstance(e, Mapping) and e.get("metric") is not None
        )
        return cls(
            id=str(data["id"]),
            name=str(data.get("name") or data["id"]),
            project=data.get("project"),
            tags=tuple(data.get("tags") or ()),
            hyperparams={s: dict(v or {}) for s, v in (data.get("hyperparams") or {}).items()},
            status=str(data.get("status") or "created"),
            reported=tuple(reported),
        )


def resolve_parameter(name: str, base: ClearMLTask) -> tuple[str, str]:
    """``(section, key)`` of a searched parameter on the base task, or a one-line :class:`ConfigError`.

    ``Section/key`` must exist on the base task (``Hydra/...`` overrides are free-form once the task has a
    Hydra section); a bare ``key`` is looked up: ``General`` first (where ClearML puts bare names), else the one
    section that has it.
    """
    hp = base.hyperparams
    if "/" in name:
        section, key = name.split("/", 1)
        if key in hp.get(section, {}) or (section == "Hydra" and "Hydra" in hp):
            return section, key
    else:
        hits = [s for s in hp if name in hp[s]]
        if "General" in hits:
            return "General", name
        if len(hits) == 1:
            return hits[0], name
        if hits:
            where = ", ".join(f"{s}/{name}" for s in hits)
            raise ConfigError(f"parameter {name!r} is in several sections of base task {base.id}: {where}; "
                              "name one of them")
    known = sorted(f"{s}/{k}" for s, keys in hp.items() for k in keys)
    key_of = {full: full.split("/", 1)[1] for full in known}
    asked = name.split("/", 1)[1] if "/" in name else name
    near_keys = difflib.get_close_matches(asked, sorted(set(key_of.values())), n=3, cutoff=0.6)
    close = [f for f in known if key_of[f] in (asked, name)]  # the same name in another section first
    close += [f for k in near_keys for f in known if key_of[f] == k]
    close += difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    close = list(dict.fromkeys(close))[:3]
    hint = f"close matches: {', '.join(close)}" if close else (
        f"its parameters: {', '.join(known[:12])}{' ...' if len(known) > 12 else ''}" if known else
        "it has no parameters (run it once so ClearML records them)")
    raise ConfigError(f"parameter {name!r} is not on base task {base.id} ({base.name!r}); {hint}")


def _param_value(value: Any) -> str:
    """How ClearML stores a parameter value (``update_parameters`` stringifies)."""
    if value is None:
        return ""
    return str(value)


def _param_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    return "str"


def _exit_code(status_reason: str) -> int:
    m = re.search(r"exit code (-?\d+)", status_reason or "")
    return int(m.group(1)) if m else 1


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


@attrs.define(eq=False)
class _Job:
    spec: JobSpec
    task_id: str
    status: str = "queued"
    started: bool = False
    exited: bool = False
    #: this backend asked the server to end it (dequeue or stop)
    aborted: bool = False
    #: what the last poll saw of its metrics, to tell whether they moved
    signature: Any = None
    #: points already emitted: (title, series, iteration) -> value
    sent: dict[tuple[str, str, int], float] = attrs.field(factory=dict)


@attrs.frozen
class _Objective:
    title: str
    series: str
    sign: str

    @property
    def field(self) -> str:
        return f"last_metrics.{metric_key(self.title)}.{metric_key(self.series)}"


class ClearMLBackend(Backend):
    """Runs every job as a clone of a ClearML base task on a ClearML queue.

    Options (keyword-only; ``[backend.options]`` in a study file). The first three are ClearML's
    ``HyperParameterOptimizer`` arguments and mean what ClearML documents:

    * ``auto_connect_task`` (default True): store the study definition on the optimizer task (the current
      ``Task`` or the one ``always_create_task`` makes), so values edited there override the code's; a ``Task``
      object uses that task (read-only unless it is draft or running); False keeps the task for reports only.
    * ``always_create_task`` (default False): with no current task, create one ("Optimizing: <base task>",
      type optimizer, in the base task's project).
    * ``spawn_project``: project of the trial tasks (created if missing); default: the optimizer task's project,
      else the base task's.
    * ``retry_seconds`` (default 120): how long a failing server is retried (with backoff) before the study
      stops, its jobs left on the server for a resume.
    * ``request_timeout`` (default 30): seconds to wait for one answer.
    * ``abort_wait`` (default 30): at ``close()``, seconds to wait for aborted tasks to reach a final status.
    * ``default_queue``: the queue of jobs that name none (``execution_queue=None``); unset: the server's
      default queue, as ``Task.enqueue`` without a queue.
    """

    name = "clearml"
    polls = True

    def __init__(
        self,
        *,
        auto_connect_task: Any = True,
        always_create_task: bool = False,
        spawn_project: str | None = None,
        retry_seconds: float = 120.0,
        request_timeout: float = 30.0,
        abort_wait: float = 30.0,
        default_queue: str | None = None,
    ) -> None:
        super().__init__()
        for key, value in (("retry_seconds", retry_seconds), ("request_timeout", request_timeout),
                           ("abort_wait", abort_wait)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ConfigError(f"clearml backend option {key}={value!r} must be a number of seconds >= 0")
        if not isinstance(always_create_task, bool):
            raise ConfigError(f"clearml backend option always_create_task={always_create_task!r} must be true or false")
        if spawn_project is not None and (not isinstance(spawn_project, str) or not spawn_project.strip()):
            raise ConfigError(f"clearml backend option spawn_project={spawn_project!r} must be a project name")
        if not isinstance(auto_connect_task, bool) and not hasattr(auto_connect_task, "id"):
            raise ConfigError(f"clearml backend option auto_connect_task={auto_connect_task!r} must be true, false "
                              "or a clearml.Task")
        if default_queue is not None and (not isinstance(default_queue, str) or not default_queue.strip()):
            raise ConfigError(f"clearml backend option default_queue={default_queue!r} must be a queue name")
        self.default_queue = default_queue
        self.auto_connect_task = auto_connect_task
        self.always_create_task = always_create_task
        self.spawn_project = spawn_project
        self.abort_wait = float(abort_wait)
        self.api = Api(retry_seconds=float(retry_seconds), timeout=float(request_timeout) or 30.0)
        #: the optimizer's own task (see :mod:`hyperscout_clearml.optimizer_task`), None without one
        self.optimizer_task: Any = None
        self.study_name: str | None = None
        self.save_top_k: int | None = None
        #: None: not told (jobs launched without the optimizer): every metric, exact histories
        self._objectives: tuple[_Objective, ...] | None = None
        #: the strategy reads every intermediate value (pruning): histories whenever a job's metrics move
        self._intermediate = True
        #: iteration caps (``max_iteration_per_job``, a job's budget): a history once a job may have crossed one
        self._max_iteration: float | None = None
        self._caps: dict[str, float] = {}
        self._lock = threading.RLock()
        self._jobs: dict[str, _Job] = {}
        self._queues: dict[str | None, str] = {}
        self._names: dict[tuple[str, str], tuple[str, str]] = {}
        self._project: str | None = None
        self._project_known = False
        self._unwatched_warned: set[str] = set()
        self._aborted: dict[str, str] = {}  # job id -> task id, for writing the final reason on the server
        self._ambiguous: dict[str, str] = {}  # job id -> its task, when a clone attempt went unanswered
        self._archived: set[str] = set()
        self._broken: ServerUnavailable | None = None
        #: None: not tried yet; False: the server lacks the multi-task histogram (or its shape differs)
        self._multi_history: bool | None = None
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._poller: threading.Thread | None = None
        self._closed = False

    # -- choosing this backend ----------------------------------------------------------------
    @classmethod
    def claims(cls, base_task_id: Any) -> bool:
        """A 32-hex ClearML task id (or a task this backend already read)."""
        return isinstance(base_task_id, ClearMLTask) or (
            isinstance(base_task_id, str) and bool(_ID.fullmatch(base_task_id.strip())))

    @classmethod
    def base_task(cls, base_task_id: Any) -> ClearMLTask:
        """Read the base task from the server once; a missing task or server is a one-line error."""
        if isinstance(base_task_id, ClearMLTask):
            return base_task_id
        if hasattr(base_task_id, "id") and not isinstance(base_task_id, str):
            base_task_id = base_task_id.id  # a clearml.Task object
        if not isinstance(base_task_id, str) or not base_task_id.strip():
            raise ConfigError(f"base_task_id={base_task_id!r} must be a ClearML task id (32 hex characters)")
        return _fetch_task(shared_api(), base_task_id.strip())

    # -- set-up by the optimizer ----------------------------------------------------------------
    def connect_arguments(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """The optimizer's arguments, after the optimizer task stored them (and, run by an agent, read back the
        values edited on the server). See :mod:`hyperscout_clearml.optimizer_task`."""
        from hyperscout_clearml.optimizer_task import connect

        return connect(self, arguments)

    def plan(self, plan: Any) -> None:
        """Check the study against the server before any clone: parameter names, queue, project.

        ``plan`` carries ``study_name``, ``base_task``, ``space``, ``objectives``, ``queue``, ``limits`` and
        ``intermediate`` (whether the strategy reads intermediate values: then a job's history is fetched each
        time its metrics move; otherwise only once it may have reached its iteration cap).
        """
        if getattr(plan, "metric_patterns", ()):
            raise UnsupportedError(NO_STDOUT_PATTERNS)
        self.study_name = plan.study_name
        self._objectives = tuple(_Objective(o.title, o.series, o.sign) for o in plan.objectives)
        self._intermediate = bool(plan.intermediate)
        self._max_iteration = getattr(plan.limits, "max_iteration_per_job", None)
        self.save_top_k = getattr(plan.limits, "save_top_k", None)
        base = self.base_task(plan.base_task)
        for name in plan.space.names:
            self._resolve(base, name)
        self._queue_id(plan.queue)
        self._trial_project(base)
        missing = [f"{o.title}/{o.series}" for o in self._objectives if f"{o.title}/{o.series}" not in base.reported]
        if missing and base.reported:
            log.warning("hyperscout-clearml: base task %s never reported %s (it reported %s); check the objective's "
                        "title and series", base.id, ", ".join(missing), ", ".join(base.reported[:8]))
        if self.optimizer_task is not None:
            self.optimizer_task.plan(plan, self)

    # -- lifecycle ------------------------------------------------------------------------------
    def open(
        self, sink: EventSink, *, poll_interval: float = 6.0, handle_sink: Callable[[str, str], None] | None = None
    ) -> None:
        super().open(sink, poll_interval=poll_interval, handle_sink=handle_sink)
        self.api.session  # noqa: B018 - log in now: a bad server is an error before the first job
        if self._poller is None:
            self._stopping.clear()
            self._poller = threading.Thread(target=self._poll_loop, name="hyperscout-clearml-poll", daemon=True)
            self._poller.start()

    def launch(self, spec: JobSpec) -> None:
        if self._closed:
            raise HyperscoutError("the clearml backend was closed; create a new one to launch jobs")
        if spec.metric_patterns:
            raise UnsupportedError(NO_STDOUT_PATTERNS)
        if self._broken is not None:
            return  # the engine stops at the event already queued; this job stays pending for the resume
        base = self.base_task(spec.task)
        services = self.api.services()
        hyperparams = {s: {k: dict(v) for k, v in keys.items()} for s, keys in base.hyperparams.items()}
        for name, value in spec.params.items():
            section, key = self._resolve(base, name)
            old = hyperparams.setdefault(section, {}).get(key) or {}
            hyperparams[section][key] = {
                "section": section,
                "name": key,
                "value": _param_value(value),
                "type": old.get("type") or _param_type(value),
                "description": old.get("description") or "",
            }
        pairs = [f"{k}={v}" for k, v in sorted(spec.params.items())]
        opt = self.optimizer_task.id if self.optimizer_task is not None else None
        tags = list(dict.fromkeys([*base.tags, OPTIMIZATION_TAG, f"opt: {opt}" if opt else "opt",
                                   f"{JOB_TAG}{spec.job_id}"]))
        try:
            queue_id = self._queue_id(spec.queue)
            project = self._trial_project(base)
            clone = services.tasks.CloneRequest(
                task=base.id,
                new_task_name=f"{base.name}: {' '.join(pairs)}" if pairs else base.name,
                new_task_comment="\n".join(pairs),
                new_task_tags=tags,
                new_task_parent=opt or base.id,
                new_task_project=project,
                new_task_hyperparams=hyperparams,
            )
            task_id = self._clone(spec.job_id, clone)
        except ServerUnavailable as exc:
            self._lost(exc)
            return
        except ApiError as exc:
            raise HyperscoutError(f"cloning base task {base.id} failed: {exc.msg}") from None
        self.record_handle(spec.job_id, task_id)  # durable before the task can run
        job = _Job(spec, task_id)
        try:
            self._enqueue(job, queue_id, spec.queue)
        except ServerUnavailable as exc:
            self._lost(exc)  # the clone is tagged and recorded: a resume enqueues it
            return

    def _clone(self, job_id: str, request: Any) -> str:
        """``tasks.clone``; when an attempt went unanswered (the server may have cloned anyway), the job's other
        clones are deleted once it ends (:meth:`_sweep`)."""
        unanswered: list[str] = []
        task_id = str(self.api.call(request, on_retry=lambda problem, answered: answered or unanswered.append(
            problem))["id"])
        if unanswered:
            self._ambiguous[job_id] = task_id
        return task_id

    def _sweep(self, job_id: str) -> None:
        """Delete drafts a retried clone left for this job (never enqueued, never run)."""
        keep = self._ambiguous.get(job_id)
        if keep is None:
            return
        tasks = self.api.services().tasks
        try:
            found = self.api.call(tasks.GetAllRequest(tags=[f"{JOB_TAG}{job_id}"], only_fields=["id", "status"],
                                                      search_hidden=True), retry=False).get("tasks") or []
            for t in found:
                if t.get("id") != keep and t.get("status") == "created":
                    self.api.call(tasks.DeleteRequest(task=t["id"], force=True), retry=False)
                    log.info("hyperscout-clearml: deleted task %s, a duplicate clone of job %s", t["id"], job_id)
        except (ApiError, ServerUnavailable) as exc:
            log.warning("hyperscout-clearml: looking for duplicate clones of job %s failed: %s", job_id, exc)

    def _enqueue(self, job: _Job, queue_id: str, queue_name: str | None) -> None:
        services = self.api.services()
        fields: dict[str, Any] = {"task": job.task_id, "queue": queue_id, "status_reason": "hyperscout",
                                  "status_message": f"hyperscout job {job.spec.job_id}"}
        if self.api.supports("2.22"):
            fields["verify_watched_queue"] = True
        try:
            answer = self.api.call(services.tasks.EnqueueRequest(**fields))
        except ApiError as exc:
            row = self._get_tasks([job.task_id], ["status"]).get(job.task_id) or {}
            if row.get("status") not in (None, "created"):  # a retried enqueue whose first attempt went through
                answer = {}
            else:
                self._fail_draft(job.task_id, f"enqueue failed: {exc.msg}")
                raise HyperscoutError(f"enqueueing task {job.task_id} on queue {queue_name or 'default'!r} failed: "
                                      f"{exc.msg}") from None
        if answer.get("queue_watched") is False and queue_id not in self._unwatched_warned:
            self._unwatched_warned.add(queue_id)
            log.warning("hyperscout-clearml: no worker serves queue %r; jobs wait there until an agent listens to it "
                        "(time_limit_queued aborts them)", queue_name or "default")
        with self._lock:
            self.emit(JobQueued(job.spec.job_id, time.time()))
            self._jobs[job.spec.job_id] = job

    def _fail_draft(self, task_id: str, reason: str) -> None:
        try:
            self.api.call(self.api.services().tasks.FailedRequest(
                task=task_id, force=True, status_reason="hyperscout", status_message=_one_line(reason, 500)),
                retry=False)
        except (ApiError, ServerUnavailable):
            pass

    def abort(self, job_id: str) -> None:
        """Dequeue a queued job, stop a running one (its agent kills it); ``JobExited`` follows."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.exited or job.aborted or self._broken is not None:
                return
            job.aborted = True
            self._aborted[job_id] = job.task_id
        tasks = self.api.services().tasks
        try:
            if not job.started:
                try:
                    self.api.call(tasks.DequeueRequest(task=job.task_id, status_reason="hyperscout abort",
                                                       status_message="dequeued by hyperscout"))
                except ApiError:
                    pass  # it left the queue meanwhile: stop it below
                else:
                    self._exit(job, None, "dequeued by hyperscout before it started")
                    return
            try:
                self.api.call(tasks.StoppedRequest(task=job.task_id, force=False, status_reason="hyperscout abort",
                                                   status_message="stopped by hyperscout"))
            except ApiError:
                pass  # already final: the next poll records it
        except ServerUnavailable as exc:
            self._lost(exc)
            return
        self._wake.set()

    def reattach(self, spec: JobSpec, handle: str | None) -> Reattached:
        """Adopt the task of a job an earlier optimizer run left: queued, running or finished meanwhile.

        Found by its handle, or by its ``hyperscout-job:<id>`` tag when the handle never reached the store; a
        clone that was never enqueued is enqueued now. Only a job with no task at all is ``GONE``.
        """
        try:
            task_id = handle or self._find_tagged(spec.job_id)
            if task_id is None:
                return Reattached.GONE
            rows = self._get_tasks([task_id], ["status", "started"])
            if task_id not in rows:
                log.warning("hyperscout-clearml: task %s of job %s is gone from the server; it runs again",
                            task_id, spec.job_id)
                return Reattached.GONE
            if handle is None:
                self.record_handle(spec.job_id, task_id)
            job = _Job(spec, task_id, status=str(rows[task_id].get("status")))
            if job.status == "created":  # cloned, never enqueued: finish the launch
                self._enqueue(job, self._queue_id(spec.queue), spec.queue)
            else:
                with self._lock:
                    self._jobs[spec.job_id] = job
            self._wake.set()
            return Reattached.ADOPTED
        except ServerUnavailable as exc:
            self._lost(exc)
            return Reattached.ADOPTED  # the study stops before it looks again; the job stays for the next run

    def close(self) -> None:
        """Abort what still runs, wait up to ``abort_wait`` for the server to confirm, stop polling."""
        self._closed = True
        with self._lock:
            live = [j for j in self._jobs.values() if not j.exited]
        if self._broken is None:
            for job in live:
                self.abort(job.spec.job_id)
            end = time.monotonic() + self.abort_wait
            while time.monotonic() < end:
                with self._lock:
                    if all(j.exited for j in live):
                        break
                self._wake.set()
                self._stopping.wait(min(0.2, max(self.poll_interval, 0.05)))
        for job in live:
            if self._broken is None:
                self._exit(job, None, f"task {job.task_id} did not reach a final status within {self.abort_wait:g} s "
                                      "of its abort")
        if self._broken is None:
            for job_id in list(self._ambiguous):  # a late duplicate may have appeared since the job ended
                self._sweep(job_id)
        self._stopping.set()
        self._wake.set()
        if self._poller is not None and self._poller is not threading.current_thread():
            self._poller.join(self.api.timeout + 5)
        self._poller = None

    # -- watching -------------------------------------------------------------------------------
    def _poll_loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self.poll_interval)
            self._wake.clear()
            if self._stopping.is_set() or self._broken is not None:
                return
            try:
                self.poll()
            except ServerUnavailable as exc:
                self._lost(exc)
                return
            except Exception:  # a bug must not stop the watching of every other job
                log.exception("hyperscout-clearml: polling failed; trying again at the next poll")

    def poll(self) -> int:
        """One look at every live job (one request per 500 jobs, plus histories when needed); returns requests."""
        with self._lock:
            live = [j for j in self._jobs.values() if not j.exited]
        if not live:
            return 0
        fields = ["status", "status_message", "status_reason", "last_iteration", "last_worker", "started"]
        fields += [o.field for o in self._objectives] if self._objectives is not None else ["last_metrics"]
        before = self.api.sent_by_this_thread()
        for i in range(0, len(live), _CHUNK):
            chunk = live[i: i + _CHUNK]
            rows = self._get_tasks([j.task_id for j in chunk], fields)
            moved = [j for j in chunk if self._wants_history(j, rows.get(j.task_id))]
            histories = self._histories(moved)
            for job in chunk:
                self._observe(job, rows.get(job.task_id), histories.get(job.task_id))
        return self.api.sent_by_this_thread() - before

    def _get_tasks(self, ids: Sequence[str], fields: Sequence[str]) -> dict[str, dict[str, Any]]:
        tasks = self.api.services().tasks
        data = self.api.call(tasks.GetAllRequest(id=list(ids), only_fields=list(fields), search_hidden=True))
        return {str(t["id"]): t for t in data.get("tasks") or [] if isinstance(t, Mapping) and t.get("id")}

    def _signature(self, row: Mapping[str, Any]) -> tuple[Any, list[tuple[_Objective, Any]] | None]:
        """What this poll saw of a job's metrics (the objectives' entries, or all of them when not told)."""
        last_metrics = row.get("last_metrics") or {}
        last_iteration = int(row.get("last_iteration") or 0)
        if self._objectives is None:
            return (last_iteration, repr(sorted(_flat_entries(last_metrics)))), None
        entries = [(o, (last_metrics.get(metric_key(o.title)) or {}).get(metric_key(o.series)))
                   for o in self._objectives]
        return (last_iteration, repr([sorted(e.items()) if isinstance(e, Mapping) else None for _, e in entries])), \
            entries

    def _wants_history(self, job: _Job, row: Mapping[str, Any] | None) -> bool:
        """Whether this poll needs the job's full history: its metrics moved and exact points matter (the
        strategy reads every value, the job may have reached its cap, or the objective is not known)."""
        if row is None or job.exited:
            return False
        signature, entries = self._signature(row)
        if signature == job.signature:
            return False
        if entries is None:
            return bool(row.get("last_metrics"))
        if all(e is None for _, e in entries):
            return False
        cap = self._caps.get(job.spec.job_id, self._max_iteration)
        return self._intermediate or (cap is not None and int(row.get("last_iteration") or 0) >= cap)

    def _histories(self, jobs: Sequence[_Job]) -> dict[str, list[MetricPoint]]:
        """Full histories of several jobs: one ``events.multi_task_scalar_metrics_iter_histogram`` per 100 jobs
        (one per job where the server lacks it or answers in another shape)."""
        if len(jobs) < 2 or self._multi_history is False:
            return {}
        events = self.api.services().events
        out: dict[str, list[MetricPoint]] = {}
        now = time.time()
        for i in range(0, len(jobs), 100):
            chunk = {j.task_id: j for j in jobs[i: i + 100]}
            try:
                data = self.api.call(events.MultiTaskScalarMetricsIterHistogramRequest(
                    tasks=list(chunk), key="iter", samples=_HISTORY_SAMPLES))
            except (ApiError, AttributeError) as exc:
                log.info("hyperscout-clearml: the server has no multi-task histogram (%s); one request per job",
                         getattr(exc, "msg", exc))
                self._multi_history = False
                return out
            wanted = None if self._objectives is None else {(o.title, o.series) for o in self._objectives}
            found = False
            for title, variants in data.items():
                if not isinstance(variants, Mapping) or str(title).startswith(_MONITOR):
                    continue
                for series, by_task in variants.items():
                    if not isinstance(by_task, Mapping) or (wanted is not None and (title, series) not in wanted):
                        continue
                    for task_id, hist in by_task.items():
                        if task_id not in chunk or not isinstance(hist, Mapping):
                            continue
                        found = True
                        points = out.setdefault(task_id, [])
                        for x, y in zip(hist.get("x") or [], hist.get("y") or []):
                            if y is not None:
                                points.append(MetricPoint(str(title), str(series), int(x), float(y), now))
            if data and not found:
                log.info("hyperscout-clearml: the multi-task histogram came in an unexpected shape; one request per job")
                self._multi_history = False
                return {}
            for task_id in chunk:
                out.setdefault(task_id, [])
        return out

    def _observe(self, job: _Job, row: Mapping[str, Any] | None, history: list[MetricPoint] | None = None) -> None:
        if job.exited:
            return
        if row is None:
            self._exit(job, None, f"task {job.task_id} was deleted from the ClearML server")
            return
        status = str(row.get("status") or "")
        job.status = status
        if status in ("queued", "created"):
            if status == "created":
                self._exit(job, None, "dequeued by hyperscout before it started" if job.aborted else
                           f"task {job.task_id} was dequeued on the ClearML server before it started")
            return
        if not job.started and (status == "in_progress" or row.get("started")):
            job.started = True
            self._emit_for(job, JobStarted(job.spec.job_id, time.time(), worker=row.get("last_worker")))
        for point in self._new_points(job, row, history):
            self._emit_for(job, MetricReported(job.spec.job_id, point))
        if status not in _FINAL:
            return
        message, why = str(row.get("status_message") or ""), str(row.get("status_reason") or "")
        if status in ("completed", "published"):
            self._exit(job, 0, None)
        elif status == "failed":
            detail = message or why or "failed on the ClearML server"
            if message and why and why != message:
                detail = f"{message} ({why})"
            self._exit(job, _exit_code(why), _one_line(detail))
        elif job.aborted:
            self._exit(job, None, "aborted by hyperscout")
        else:
            self._exit(job, None, _one_line(f"task {job.task_id} was {status} on the ClearML server"
                                            + (f" ({message or why})" if message or why else "")))

    def _new_points(self, job: _Job, row: Mapping[str, Any], history: list[MetricPoint] | None) -> list[MetricPoint]:
        """The metric points of this poll that were not sent yet: the fetched history when there is one, else
        the objectives' last (and, for ``*_global``, best) values from the poll itself."""
        wants = self._wants_history(job, row)
        signature, entries = self._signature(row)
        if signature == job.signature or (entries is not None and all(e is None for _, e in entries)):
            return []
        job.signature = signature
        if wants:  # exact points: every intermediate value, or where a cap stops the job
            return self._unsent(job, history) if history is not None else self._history(job, self._objectives)
        if entries is None:
            return []
        last_iteration = int(row.get("last_iteration") or 0)
        now = time.time()
        points: list[MetricPoint] = []
        for o, e in entries:
            if not isinstance(e, Mapping):
                continue
            if o.sign.endswith("_global"):
                kind = "min" if o.sign.startswith("min") else "max"
                best, at = e.get(f"{kind}_value"), e.get(f"{kind}_value_iteration")
                if best is not None and at is not None:
                    points.append(MetricPoint(o.title, o.series, int(at), float(best), now))
            if e.get("value") is not None:  # last, so that "the last value" is the last point of this batch
                points.append(MetricPoint(o.title, o.series, last_iteration, float(e["value"]), now))
        return self._unsent(job, points)

    def _history(self, job: _Job, objectives: Sequence[_Objective] | None) -> list[MetricPoint]:
        events = self.api.services().events
        fields: dict[str, Any] = {"task": job.task_id, "key": "iter", "samples": _HISTORY_SAMPLES}
        if objectives is not None:
            by_title: dict[str, list[str]] = {}
            for o in objectives:
                by_title.setdefault(o.title, []).append(o.series)
            fields["metrics"] = [{"metric": t, "variants": s} for t, s in by_title.items()]
        try:
            data = self.api.call(events.ScalarMetricsIterHistogramRequest(**fields))
        except ApiError as exc:
            log.warning("hyperscout-clearml: reading the scalars of task %s failed: %s", job.task_id, exc.msg)
            return []
        now = time.time()
        points = []
        for title, variants in data.items():
            if not isinstance(variants, Mapping) or title.startswith(_MONITOR):
                continue
            for series, hist in variants.items():
                if not isinstance(hist, Mapping):
                    continue
                for x, y in zip(hist.get("x") or [], hist.get("y") or []):
                    if y is not None:
                        points.append(MetricPoint(str(title), str(series), int(x), float(y), now))
        return self._unsent(job, points)

    @staticmethod
    def _unsent(job: _Job, points: Iterable[MetricPoint]) -> list[MetricPoint]:
        out = []
        for p in points:
            key = (p.title, p.series, p.iteration)
            old = job.sent.get(key)
            if old is not None and (old == p.value or (math.isnan(old) and math.isnan(p.value))):
                continue
            job.sent[key] = p.value
            out.append(p)
        return out

    def _emit_for(self, job: _Job, event: Any) -> None:
        with self._lock:
            if not job.exited:
                self.emit(event)

    def _exit(self, job: _Job, exit_code: int | None, reason: str | None) -> None:
        with self._lock:
            if job.exited:
                return
            job.exited = True
            self._jobs.pop(job.spec.job_id, None)
            self.emit(JobExited(job.spec.job_id, time.time(), exit_code, reason))
        if job.spec.job_id in self._ambiguous and self._broken is None:
            self._sweep(job.spec.job_id)

    def _lost(self, error: ServerUnavailable) -> None:
        with self._lock:
            if self._broken is not None:
                return
            self._broken = error
        log.error("hyperscout-clearml: %s; stopping the study (its jobs stay on the server for a resume)", error)
        self.emit(BackendLost(f"{error}; the study stopped with its jobs left on the server: run it again "
                              "(same study_name and storage) to resume and re-attach them"))

    # -- server look-ups (cached per backend) -----------------------------------------------------
    def _resolve(self, base: ClearMLTask, name: str) -> tuple[str, str]:
        key = (base.id, name)
        if key not in self._names:
            self._names[key] = resolve_parameter(name, base)
        return self._names[key]

    def _queue_id(self, name: str | None) -> str:
        if name is None:
            name = self.default_queue
        if name in self._queues:
            return self._queues[name]
        queues = self.api.services().queues
        if name is None:  # ClearML's tasks.enqueue without a queue: the server's default queue
            try:
                qid = str(self.api.call(queues.GetDefaultRequest())["id"])
            except ApiError:
                return self._queue_id("default")
        else:
            found = self.api.call(queues.GetAllRequest(name=f"^{re.escape(name)}$", only_fields=["id", "name"],
                                                       search_hidden=True)).get("queues") or []
            if found:
                qid = str(found[0]["id"])
            else:
                try:  # a queue id works too, as in Task.enqueue
                    qid = str(self.api.call(queues.GetByIdRequest(queue=name))["queue"]["id"])
                except (ApiError, KeyError, TypeError):
                    names = sorted(str(q.get("name")) for q in self.api.call(
                        queues.GetAllRequest(only_fields=["name"])).get("queues") or [])
                    raise ConfigError(f"queue {name!r} does not exist on ClearML server {self.api.host}; queues there: "
                                      f"{', '.join(names) or 'none'}; create it or set execution_queue to one of them"
                                      ) from None
        self._queues[name] = qid
        return qid

    def _trial_project(self, base: ClearMLTask) -> str | None:
        """Where trials go: ``spawn_project``, else the optimizer task's project, else the base task's."""
        if self._project_known:
            return self._project
        project = base.project
        if self.spawn_project:
            project = _project_id(self.api, self.spawn_project, create=True)
        elif self.optimizer_task is not None and self.optimizer_task.project:
            project = self.optimizer_task.project
        self._project, self._project_known = project, True
        return project

    def _find_tagged(self, job_id: str) -> str | None:
        tasks = self.api.services().tasks
        data = self.api.call(tasks.GetAllRequest(tags=[f"{JOB_TAG}{job_id}"], only_fields=["id", "created"],
                                                 order_by=["-created"], search_hidden=True))
        found = [t for t in data.get("tasks") or [] if t.get("id")]
        if len(found) > 1:
            log.warning("hyperscout-clearml: %d tasks carry the tag of job %s; adopting the newest, %s",
                        len(found), job_id, found[0]["id"])
        return str(found[0]["id"]) if found else None

    # -- the optimizer's hooks (registered by the optimizer while the study runs) -----------------------
    def _mine(self, study: Any) -> bool:
        return self.study_name is None or study.name == self.study_name

    @hookimpl
    def hyperscout_study_started(self, study: Any, resumed: bool) -> None:
        if self._mine(study) and self.optimizer_task is not None:
            self.optimizer_task.started(study, resumed)

    @hookimpl
    def hyperscout_job_launched(self, study: Any, job: Any) -> None:
        if self._mine(study) and job.budget is not None:
            self._caps[job.id] = float(job.budget)

    @hookimpl
    def hyperscout_job_finished(self, study: Any, job: Any) -> None:
        self._caps.pop(job.id, None)
        if not self._mine(study) or self._broken is not None:
            return
        task_id = self._aborted.pop(job.id, None)
        if task_id is not None:
            self._record_outcome(task_id, job)
        if self.save_top_k:
            self._archive_outside_top(study)
        if self.optimizer_task is not None:
            self.optimizer_task.job_finished(study, job)

    @hookimpl
    def hyperscout_new_best(self, study: Any, job: Any) -> None:
        if self._mine(study) and self.optimizer_task is not None and self._broken is None:
            self.optimizer_task.new_best(study, job)

    @hookimpl
    def hyperscout_study_tick(self, study: Any) -> None:
        if self._mine(study) and self.optimizer_task is not None and self._broken is None:
            self.optimizer_task.tick(study, self)

    @hookimpl
    def hyperscout_study_ended(self, study: Any, reason: str) -> None:
        # with the server gone, the SDK's own retries (the user's clearml.conf) would hang the final flush
        if self._mine(study) and self.optimizer_task is not None and self._broken is None:
            self.optimizer_task.ended(study, reason, self)

    def _record_outcome(self, task_id: str, job: Any) -> None:
        """Write hyperscout's verdict on a task it aborted: completed at its budget, or stopped with the reason."""
        tasks = self.api.services().tasks
        status = str(getattr(job.status, "value", job.status))
        cls = tasks.CompletedRequest if status == "completed" else tasks.StoppedRequest
        try:
            self.api.call(cls(task=task_id, force=True, status_reason=f"hyperscout: {status}",
                              status_message=_one_line(job.reason or status, 500)), retry=False)
        except (ApiError, ServerUnavailable) as exc:
            log.debug("hyperscout-clearml: recording the outcome of task %s failed: %s", task_id, exc)

    def _archive_outside_top(self, study: Any) -> None:
        """``save_top_k_tasks_only``: archive ranked tasks outside the top k, restore those that came back."""
        from hyperscout.results import ranked_jobs

        ranked = [j for j in ranked_jobs(study.jobs, study.objectives) if j.handle]
        keep = {j.handle for j in ranked[: self.save_top_k]}
        drop = {j.handle for j in ranked[self.save_top_k:]}
        tasks = self.api.services().tasks
        try:
            archive = sorted(drop - self._archived)
            if archive:
                self.api.call(tasks.ArchiveManyRequest(ids=archive, status_reason="hyperscout: outside the top "
                                                       f"{self.save_top_k}"), retry=False)
                self._archived |= set(archive)
            restore = sorted(keep & self._archived)
            if restore:
                self.api.call(tasks.UnarchiveManyRequest(ids=restore), retry=False)
                self._archived -= set(restore)
        except (ApiError, ServerUnavailable) as exc:
            log.warning("hyperscout-clearml: archiving tasks outside the top %d failed: %s", self.save_top_k, exc)


def _flat_entries(last_metrics: Mapping[str, Any]) -> list[tuple[str, str, Any, Any, Any]]:
    out = []
    for variants in last_metrics.values():
        for e in (variants or {}).values():
            if isinstance(e, Mapping):
                out.append((str(e.get("metric")), str(e.get("variant")), e.get("value"), e.get("min_value"),
                            e.get("max_value")))
    return out


def _fetch_task(api: Api, task_id: str) -> ClearMLTask:
    tasks = api.services().tasks
    try:
        data = api.call(tasks.GetByIdRequest(task=task_id), retry=False)
    except ApiError as exc:
        if exc.code == 400:
            raise ConfigError(f"base task {task_id!r} was not found on ClearML server {api.host}; copy the id from "
                              "the task's INFO tab (or `clearml-task` output)") from None
        raise ConfigError(f"reading base task {task_id!r} failed: {exc}") from None
    except ServerUnavailable as exc:
        raise ConfigError(str(exc)) from None
    return ClearMLTask.from_api(data.get("task") or {})


def _project_id(api: Api, name: str, *, create: bool) -> str | None:
    projects = api.services().projects
    found = api.call(projects.GetAllRequest(name=f"^{re.escape(name)}$", only_fields=["id"],
                                            search_hidden=True)).get("projects") or []
    if found:
        return str(found[0]["id"])
    if not create:
        return None
    return str(api.call(projects.CreateRequest(name=name, description="HPO process spawned Tasks"))["id"])
