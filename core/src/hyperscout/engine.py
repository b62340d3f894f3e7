"""The engine: one loop that asks the strategy, launches jobs, reacts to backend events and
enforces every limit, all in one place and in seconds internally.

It is event-driven: it sleeps on the backend's event queue, so a freed slot is refilled as soon
as the ``JobExited`` event arrives, and it wakes early only for deadlines (per-job time limits,
the study's time limit, the progress tick).

Limits and what they do (all enforced here, nowhere else):

* ``max_concurrency``: jobs handed to the backend and not yet exited (queued ones included).
* ``total_max_jobs``: jobs launched over the study's whole life, resumes included.
* ``time_limit_per_job``: a job running longer is aborted (status ``aborted``).
* ``max_iteration_per_job`` / ``Suggestion.budget``: when the primary objective is reported at an
  iteration >= the cap the job is stopped and recorded ``completed``.
* ``deadline`` (``optimization_time_limit``) and ``compute_time_limit`` (sum of running time of
  all jobs): the study stops; running jobs are aborted and marked *interrupted*, so a resume
  runs them again.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import pluggy

from hyperscout.backend import Backend, BackendEvent, JobExited, JobQueued, JobSpec, JobStarted, MetricReported
from hyperscout.capture import MetricPattern
from hyperscout.command import Command
from hyperscout.errors import HyperscoutError, StudyConflictError
from hyperscout.job import Job, JobStatus, MetricPoint
from hyperscout.objective import ObjectiveSet, rank
from hyperscout.params import SearchSpace
from hyperscout.store import Store
from hyperscout.strategy import EXHAUSTED, WAIT, SearchStrategy, Suggestion, TrialRecord, TrialResult, Verdict

__all__ = ["Engine", "Limits", "StudyView"]

log = logging.getLogger("hyperscout")

#: after asking jobs to stop, how long to wait for their exit before recording them anyway
_STOP_GRACE = 30.0


@attrs.frozen
class Limits:
    """Every limit, in seconds and counts (the optimizer converts ClearML's minutes)."""

    max_concurrency: int = 1
    total_max_jobs: int | None = None
    time_limit_per_job: float | None = None
    compute_time_limit: float | None = None
    min_iteration_per_job: int | None = None
    max_iteration_per_job: int | None = None
    save_top_k: int | None = None
    poll_interval: float = 6.0
    report_period: float = 5.0


class _Wake:
    """A queue item that only wakes the loop (stop requests, deadline changes)."""


class StudyView:
    """What hooks and callers may read about a running (or finished) study."""

    def __init__(self, engine: Engine) -> None:
        self._e = engine

    @property
    def name(self) -> str:
        return self._e.name

    @property
    def objectives(self) -> ObjectiveSet:
        return self._e.objectives

    @property
    def space(self) -> SearchSpace:
        return self._e.space

    @property
    def limits(self) -> Limits:
        return self._e.limits

    @property
    def strategy_name(self) -> str:
        return self._e.strategy.name or type(self._e.strategy).__name__

    @property
    def backend_name(self) -> str:
        return self._e.backend.name or type(self._e.backend).__name__

    @property
    def jobs(self) -> list[Job]:
        return self._e.snapshot()

    def counts(self) -> dict[str, int]:
        out = {s.value: 0 for s in JobStatus}
        for j in self._e.snapshot():
            if j.superseded_by is None:
                out[j.status.value] += 1
        return out

    @property
    def launched(self) -> int:
        return self._e.launched

    @property
    def best(self) -> Job | None:
        """The best job so far (strictly better than every earlier one; Pareto: dominating)."""
        return self._e.jobs.get(self._e.best_id) if self._e.best_id else None

    @property
    def started_at(self) -> float | None:
        return self._e.started_at

    @property
    def elapsed(self) -> float:
        return 0.0 if self._e.started_at is None else time.time() - self._e.started_at

    @property
    def deadline(self) -> float | None:
        return self._e.deadline

    @property
    def end_reason(self) -> str | None:
        return self._e.end_reason


class Engine:
    """Runs one study to its end. Build it, then call :meth:`run` (blocking) from one thread."""

    def __init__(
        self,
        *,
        name: str,
        space: SearchSpace,
        objectives: ObjectiveSet,
        strategy: SearchStrategy,
        backend: Backend,
        command: Command,
        store: Store,
        limits: Limits,
        definition: Mapping[str, Any],
        fingerprint: str,
        metric_patterns: Sequence[MetricPattern] = (),
        queue_name: str | None = None,
        hooks: pluggy.PluginManager | None = None,
        job_complete_callback: Callable[..., Any] | None = None,
        deadline: float | None = None,
    ) -> None:
        self.name = name
        self.space = space
        self.objectives = objectives
        self.strategy = strategy
        self.backend = backend
        self.command = command
        self.store = store
        self.limits = limits
        self.definition = dict(definition)
        self.fingerprint = fingerprint
        self.metric_patterns = tuple(metric_patterns)
        self.queue_name = queue_name
        self.pm = hooks
        self.callback = job_complete_callback
        self.deadline = deadline
        self.view = StudyView(self)

        self.events: queue.Queue[BackendEvent | _Wake] = queue.Queue()
        self.jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._active: dict[str, Job] = {}
        self._stop_intent: dict[str, tuple[JobStatus, str, bool]] = {}
        self._stop_sent_at: dict[str, float] = {}
        self._rerun: list[Job] = []
        self._next_number = 0
        self.launched = 0
        self._asking_done = False
        self._stop_reason: str | None = None
        self.end_reason: str | None = None
        self.started_at: float | None = None
        self.best_id: str | None = None
        self._last_tick = 0.0
        self.resumed = False

    # -- public, thread-safe ------------------------------------------------------------------
    def request_stop(self, reason: str = "stopped") -> None:
        """Ask the loop to stop: running jobs are aborted and recorded as interrupted."""
        if self._stop_reason is None:
            self._stop_reason = reason
        self.events.put(_Wake())

    def set_deadline(self, deadline: float | None) -> None:
        self.deadline = deadline
        self.events.put(_Wake())

    def snapshot(self) -> list[Job]:
        with self._lock:
            return list(self.jobs.values())

    def active_jobs(self) -> list[Job]:
        with self._lock:
            return list(self._active.values())

    def top(self, k: int | None = None, *, include_failed: bool = False) -> list[Job]:
        """Finished jobs best first (Pareto fronts for several objectives)."""
        jobs = [j for j in self.snapshot() if j.status.finished and j.superseded_by is None]
        jobs.sort(key=lambda j: (j.ended or 0.0, j.number))  # on a tie, the job that got there first ranks first
        if not include_failed:
            jobs = [j for j in jobs if j.objective_values is not None]
        ranked = rank(jobs, lambda j: j.objective_values, self.objectives)
        return ranked if k is None else ranked[:k]

    # -- setup / resume -----------------------------------------------------------------------
    def _hook(self, name: str, **kwargs: Any) -> None:
        if self.pm is None:
            return
        try:
            getattr(self.pm.hook, name)(study=self.view, **kwargs)
        except Exception as exc:  # a broken observer must not stop the study
            log.warning("hyperscout: hook %s failed: %s: %s", name, type(exc).__name__, exc)

    def _open_study(self) -> None:
        existing = self.store.get_study(self.name)
        if existing is None:
            self.store.create_study(self.name, self.definition, self.fingerprint)
            return
        if existing["fingerprint"] != self.fingerprint:
            raise StudyConflictError(
                f"study {self.name!r} in {self.store.path} was created with a different search space, objective "
                "or strategy; give this study another name (or point storage elsewhere)"
            )
        self.resumed = True
        self.store.update_definition(self.name, self.definition)
        self.store.set_study_status(self.name, "running")
        jobs = self.store.load_jobs(self.name)
        for job in jobs:
            self.jobs[job.id] = job
            self._next_number = max(self._next_number, job.number + 1)
        records: list[TrialRecord] = []
        for job in jobs:
            if job.superseded_by is not None:
                continue
            crashed = not job.status.finished
            if crashed or job.interrupted:
                if crashed:
                    if self.backend.reap_stale(job.id, job.pid):
                        log.info("hyperscout: ended job %s left running by a previous run", job.id)
                    job.status = JobStatus.ABORTED
                    job.interrupted = True
                    job.ended = job.ended or time.time()
                    job.reason = "interrupted: the optimizer stopped before the job ended"
                rerun = self._new_job(job.params, job.budget, retry_of=job.id)
                job.superseded_by = rerun.id
                job.reason = f"{job.reason}; re-run as job {rerun.id}"
                self.store.save_job(job)
                self.store.save_job(rerun)
                self._rerun.append(rerun)
                records.append(TrialRecord(rerun.id, rerun.params, None, rerun.budget))
            else:
                records.append(TrialRecord(job.id, job.params, self._result(job), job.budget))
        self.launched = sum(1 for j in self.jobs.values() if j.superseded_by is None)
        self.store.add_event(self.name, "resumed", data={"jobs": len(jobs), "rerun": len(self._rerun)})
        self.strategy.restore(records)
        top = self.top(1)
        self.best_id = top[0].id if top else None

    def _new_job(
        self, params: Mapping[str, Any], budget: float | None, retry_of: str | None = None, job_id: str | None = None
    ) -> Job:
        job = Job(
            id=job_id or uuid.uuid4().hex[:12],
            study=self.name,
            number=self._next_number,
            params=dict(params),
            budget=budget,
            retry_of=retry_of,
        )
        self._next_number += 1
        with self._lock:
            self.jobs[job.id] = job
        return job

    # -- the loop -----------------------------------------------------------------------------
    def prepare(self) -> None:
        """Open (or resume) the study in the store; raises on a conflicting definition."""
        self._open_study()
        self._prepared = True

    def run(self) -> str:
        """Run to the end; returns the end reason. Safe to call once."""
        if not getattr(self, "_prepared", False):
            self.prepare()
        self.started_at = time.time()
        self.backend.open(self.events.put, poll_interval=self.limits.poll_interval)
        self.store.add_event(self.name, "study_started", data={"resumed": self.resumed})
        self._hook("hyperscout_study_started", resumed=self.resumed)
        try:
            while True:
                now = time.time()
                with self.store.batch():
                    self._enforce(now)
                    if self._stop_reason is None:
                        self._fill()
                if not self._active and (self._stop_reason is not None or self._asking_done):
                    break
                try:
                    item = self.events.get(timeout=self._timeout(now))
                except queue.Empty:
                    continue
                # One transaction per batch of events: a finished job is on disk within
                # milliseconds, and the store costs one commit per batch, not per write.
                with self.store.batch():
                    self._dispatch(item)
                    while True:  # drain what else arrived, then re-plan once
                        try:
                            self._dispatch(self.events.get_nowait())
                        except queue.Empty:
                            break
        except BaseException:
            # A crash of the loop itself: record what we know, end jobs, re-raise.
            self._stop_reason = self._stop_reason or "error"
            for job in list(self._active.values()):
                self._safe_abort(job.id)
            raise
        finally:
            self.end_reason = self._stop_reason or self._end_reason_natural()
            try:
                self.backend.close()
            finally:
                self.strategy.close()
                self.store.set_study_status(self.name, "ended", self.end_reason)
                self.store.add_event(self.name, "study_ended", data={"reason": self.end_reason})
                self._hook("hyperscout_study_ended", reason=self.end_reason)
        return self.end_reason

    def _end_reason_natural(self) -> str:
        lim = self.limits.total_max_jobs
        return "total_max_jobs" if lim is not None and self.launched >= lim else "exhausted"

    def _timeout(self, now: float) -> float:
        wake = [now + min(1.0, self.limits.report_period)]
        if self.deadline is not None:
            wake.append(self.deadline)
        if self.limits.time_limit_per_job is not None:
            for j in self._active.values():
                if j.started is not None:
                    wake.append(j.started + self.limits.time_limit_per_job)
        if self.limits.compute_time_limit is not None and self._active:
            wake.append(now + 0.25)
        for t in self._stop_sent_at.values():
            wake.append(t + _STOP_GRACE)
        return max(0.0, min(wake) - now)

    def _fill(self) -> None:
        while not self._asking_done and len(self._active) < self.limits.max_concurrency:
            if self._rerun:
                self._launch(self._rerun.pop(0))
                continue
            lim = self.limits.total_max_jobs
            if lim is not None and self.launched >= lim:
                self._asking_done = True
                return
            job_id = uuid.uuid4().hex[:12]  # the strategy knows the trial by this id from now on
            try:
                answer = self.strategy.ask(job_id)
            except HyperscoutError:
                raise
            except Exception as exc:  # a strategy bug ends the study with a readable line, jobs aborted
                raise HyperscoutError(
                    f"strategy {self.view.strategy_name!r} failed in ask(): {type(exc).__name__}: {exc}"
                ) from exc
            if answer is EXHAUSTED:
                self._asking_done = True
                return
            if answer is WAIT:
                if not self._active:
                    log.warning("hyperscout: strategy %s waits with no job running; ending the study",
                                self.view.strategy_name)
                    self._asking_done = True
                return
            if not isinstance(answer, Suggestion):
                raise TypeError(f"strategy {self.view.strategy_name!r} returned {answer!r} from ask()")
            job = self._new_job(answer.params, answer.budget, job_id=job_id)
            self.launched += 1
            self._launch(job)

    def _launch(self, job: Job) -> None:
        workdir = self.store.directory / "jobs" / self.name / job.id
        job.status = JobStatus.PENDING
        with self._lock:
            self._active[job.id] = job
        self.store.save_job(job)
        self._hook("hyperscout_job_launched", job=job)
        spec = JobSpec(
            job_id=job.id,
            study=self.name,
            params=job.params,
            command=self.command,
            workdir=str(workdir),
            metric_patterns=self.metric_patterns,
            queue=self.queue_name,
        )
        try:
            self.backend.launch(spec)
        except Exception as exc:
            # A launch failure is a failed job with its reason, never a silent retry loop.
            self._finish(job, JobExited(job.id, time.time(), None, f"launch failed: {type(exc).__name__}: {exc}"))

    # -- events ---------------------------------------------------------------------------------
    def _dispatch(self, item: BackendEvent | _Wake) -> None:
        if isinstance(item, _Wake):
            return
        job = self._active.get(item.job_id)
        if job is None:
            return  # late event for a job already recorded
        if isinstance(item, JobStarted):
            job.status = JobStatus.RUNNING
            job.started = item.time
            job.pid = item.pid
            job.stdout_path = item.stdout_path or job.stdout_path
            job.stderr_path = item.stderr_path or job.stderr_path
            self.store.save_job(job)
            self._hook("hyperscout_job_started", job=job)
        elif isinstance(item, JobQueued):
            job.status = JobStatus.PENDING
        elif isinstance(item, MetricReported):
            self._metric(job, item.point)
        elif isinstance(item, JobExited):
            self._finish(job, item)

    def _metric(self, job: Job, point: MetricPoint) -> None:
        job.metrics.append(point)
        self.store.add_metric(job.id, point)
        self._hook("hyperscout_metric_reported", job=job, point=point)
        primary = self.objectives.primary
        if point.title != primary.title or point.series != primary.series or job.id in self._stop_intent:
            return
        verdict = self.strategy.report(job.id, point.iteration, point.value)
        cap = job.budget if job.budget is not None else self.limits.max_iteration_per_job
        if verdict is Verdict.PRUNE:
            self._stop(job, JobStatus.PRUNED, f"pruned by {self.view.strategy_name} at iteration {point.iteration}")
        elif verdict is Verdict.STOP:
            self._stop(job, JobStatus.COMPLETED, f"stopped by {self.view.strategy_name} at iteration {point.iteration}")
        elif cap is not None and point.iteration >= cap:
            self._stop(job, JobStatus.COMPLETED, f"reached its budget of {cap:g} iterations")

    def _stop(self, job: Job, status: JobStatus, reason: str, interrupted: bool = False) -> None:
        if job.id in self._stop_intent:
            return
        self._stop_intent[job.id] = (status, reason, interrupted)
        self._stop_sent_at[job.id] = time.time()
        self._safe_abort(job.id)

    def _safe_abort(self, job_id: str) -> None:
        try:
            self.backend.abort(job_id)
        except Exception as exc:
            log.warning("hyperscout: aborting job %s failed: %s", job_id, exc)

    def _enforce(self, now: float) -> None:
        lim = self.limits
        if self._stop_reason is None and self.deadline is not None and now >= self.deadline:
            self._stop_reason = "time_limit"
        if self._stop_reason is None and lim.compute_time_limit is not None:
            used = sum(j.duration or 0.0 for j in self.snapshot() if j.superseded_by is None)
            if used >= lim.compute_time_limit:
                self._stop_reason = "compute_time_limit"
        if self._stop_reason is not None:
            for job in list(self._active.values()):
                self._stop(job, JobStatus.ABORTED, f"interrupted: study stopped ({self._stop_reason})", True)
        if lim.time_limit_per_job is not None:
            for job in list(self._active.values()):
                if job.started is not None and now - job.started >= lim.time_limit_per_job:
                    self._stop(job, JobStatus.ABORTED, f"exceeded time_limit_per_job ({lim.time_limit_per_job:g} s)")
        for job_id, sent in list(self._stop_sent_at.items()):
            if now - sent >= _STOP_GRACE and job_id in self._active:
                self._finish(self._active[job_id], JobExited(job_id, now, None, "did not exit after abort"))
        if now - self._last_tick >= lim.report_period:
            self._last_tick = now
            self._hook("hyperscout_study_tick")

    def _objective_values(self, job: Job) -> tuple[list[float] | None, list[int] | None]:
        values, iterations = [], []
        for o in self.objectives:
            picked = o.pick(job.history(o.title, o.series))
            if picked is None:
                return None, None
            values.append(picked[0])
            iterations.append(picked[1])
        return values, iterations

    def _result(self, job: Job) -> TrialResult:
        p = self.objectives.primary
        return TrialResult(
            status=job.status,
            values=tuple(job.objective_values) if job.objective_values is not None else None,
            iteration=job.objective_iterations[0] if job.objective_iterations else job.last_iteration(p.title, p.series),
            intermediate=tuple(job.history(p.title, p.series)),
            budget=job.budget,
        )

    def _finish(self, job: Job, ev: JobExited) -> None:
        with self._lock:
            self._active.pop(job.id, None)
        self._stop_sent_at.pop(job.id, None)
        intent = self._stop_intent.pop(job.id, None)
        job.ended = ev.time
        job.exit_code = ev.exit_code
        values, iterations = self._objective_values(job)
        job.objective_values, job.objective_iterations = values, iterations
        missing = [o.key for o in self.objectives if not job.history(o.title, o.series)]
        if intent is not None:
            job.status, job.reason, job.interrupted = intent
            if job.status is JobStatus.COMPLETED and values is None:
                job.status = JobStatus.FAILED
                job.reason = f"{job.reason}, but never reported objective {missing[0]!r}"
        elif ev.exit_code == 0 and values is not None:
            job.status, job.reason = JobStatus.COMPLETED, None
        elif ev.exit_code == 0:
            job.status = JobStatus.FAILED
            job.reason = (
                f"exited 0 but never reported objective {missing[0]!r}; call hyperscout.report_scalar"
                f"({self.objectives[0].title!r}, {self.objectives[0].series!r}, value, iteration) or add a metric pattern"
            )
        else:
            job.status = JobStatus.FAILED
            job.reason = ev.reason or f"exit code {ev.exit_code}"
        if job.status is JobStatus.FAILED:
            # A failed job is never ranked, whatever it reported before failing (its history is kept).
            job.objective_values = job.objective_iterations = None
        self.store.save_job(job)
        self.store.add_event(self.name, "job_finished", job.id, {"status": job.status.value, "reason": job.reason})
        try:
            self.strategy.tell(job.id, self._result(job))
        except Exception as exc:
            log.warning("hyperscout: strategy %s failed on tell(%s): %s", self.view.strategy_name, job.id, exc)
        self._hook("hyperscout_job_finished", job=job)
        if job.objective_values is not None:
            self._after_result(job)

    def _beats_best(self, job: Job) -> bool:
        """Strictly better than the best so far (several objectives: dominates it)."""
        best = self.jobs.get(self.best_id) if self.best_id else None
        if best is None or best.objective_values is None or best.superseded_by is not None:
            return True
        mine = self.objectives.normalized(job.objective_values or [])
        theirs = self.objectives.normalized(best.objective_values)
        return all(a >= b for a, b in zip(mine, theirs)) and any(a > b for a, b in zip(mine, theirs))

    def _after_result(self, job: Job) -> None:
        new_best = self._beats_best(job)
        if new_best:
            self.best_id = job.id
            self.store.add_event(self.name, "new_best", job.id, {"values": job.objective_values})
            self._hook("hyperscout_new_best", job=job)
        k = self.limits.save_top_k
        if k is not None and k > 0:
            ranked = self.top()
            keep = {j.id for j in ranked[:k]}
            changed = [j for j in ranked if (j.id not in keep) != j.archived]
            for j in changed:
                j.archived = j.id not in keep
            if changed:
                self.store.set_archived([j.id for j in changed if j.archived], True)
                self.store.set_archived([j.id for j in changed if not j.archived], False)
        if self.callback is not None:
            single = not self.objectives.is_multi
            values = job.objective_values or []
            iterations = job.objective_iterations or []
            try:
                self.callback(
                    job.id,
                    values[0] if single else list(values),
                    iterations[0] if single else list(iterations),
                    dict(job.params),
                    self.best_id,
                )
            except Exception as exc:
                log.warning("hyperscout: job_complete_callback raised %s: %s", type(exc).__name__, exc)


def job_dir(store: Store, study: str, job_id: str) -> Path:
    return store.directory / "jobs" / study / job_id
