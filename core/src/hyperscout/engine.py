"""The engine: one loop that asks the strategy, launches jobs, reacts to backend events and
enforces every limit, all in one place and in seconds internally.

It is event-driven: it sleeps on the backend's event queue, so a freed slot is refilled as soon
as the ``JobExited`` event arrives, and it wakes early only for deadlines (per-job time limits,
the study's time limit, the progress tick).

Limits and what they do (all enforced here, nowhere else):

* ``max_concurrency``: jobs handed to the backend and not yet exited (queued ones included).
* ``total_max_jobs``: jobs launched over the study's whole life, resumes included.
* ``time_limit_per_job``: a job running longer is aborted (status ``aborted``).
* ``time_limit_queued``: a job waiting in its backend's queue longer is aborted (``aborted``).
* ``max_iteration_per_job`` / ``Suggestion.budget``: when the primary objective is reported at an
  iteration >= the cap the job is ``completed`` with its value at that point (never a later one);
  it gets ``stop_grace`` seconds to exit by itself before it is signalled.
* ``deadline`` (``optimization_time_limit``) and ``compute_time_limit`` (sum of running time of
  all jobs): the study stops; running jobs are aborted and marked *interrupted*, so a resume
  runs them again.
* ``max_consecutive_failures``: that many jobs in a row failing for the same kind of reason
  stop the study (a typo in the metric name should not burn the whole budget).

What each outcome means (ranked or not, told to the strategy how) is one rule, written in
:class:`hyperscout.TrialResult`. Every time is taken on the optimizer's clock.

One optimizer process owns a study at a time: :meth:`Engine.prepare` takes the study's lease in
the store (:mod:`hyperscout.lease`) and a heartbeat thread keeps it fresh until the study ends.
"""

from __future__ import annotations

import heapq
import logging
import math
import queue
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import attrs
import pluggy

from hyperscout.backend import (
    Backend,
    BackendEvent,
    BackendLost,
    JobExited,
    JobQueued,
    JobSpec,
    JobStarted,
    MetricReported,
    Reattached,
)
from hyperscout.capture import MetricPattern
from hyperscout.errors import BackendLostError, HyperscoutError, StoreError, StudyConflictError
from hyperscout.job import Job, JobStatus, MetricPoint
from hyperscout.lease import Owner
from hyperscout.objective import ObjectiveSet
from hyperscout.params import SearchSpace
from hyperscout.plugins import notify
from hyperscout.results import RankedIndex, ranked_jobs
from hyperscout.store import Store
from hyperscout.strategy import EXHAUSTED, WAIT, SearchStrategy, Suggestion, TrialRecord, TrialResult, Verdict

_T = TypeVar("_T")

__all__ = ["Engine", "Limits", "StudyView"]

log = logging.getLogger("hyperscout")

#: after asking jobs to stop, how long to wait for their exit before recording them anyway
_STOP_GRACE = 30.0
#: seconds between heartbeats of the study's owner, and the age after which another run may take over
HEARTBEAT_INTERVAL = 5.0
LEASE_STALE_AFTER = 60.0


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
    time_limit_queued: float | None = None
    #: seconds a job that reached its budget gets to exit by itself before it is signalled
    stop_grace: float = 2.0
    max_consecutive_failures: int | None = 5
    #: iterations of the primary objective, summed over all jobs; reaching it stops asking
    #: (running jobs finish their current budget), so strategies compare at equal cost
    total_max_iterations: int | None = None


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
        return 0.0 if self._e.started_at is None else self._e.now() - self._e.started_at

    @property
    def deadline(self) -> float | None:
        return self._e.deadline

    @property
    def end_reason(self) -> str | None:
        return self._e.end_reason

    @property
    def iterations_used(self) -> int:
        """Iterations of the primary objective reported so far, summed over jobs (``total_max_iterations``)."""
        return self._e.iterations_used

    def now(self) -> float:
        """The study's clock (virtual with a simulating backend)."""
        return self._e.now()


def _failure_kind(reason: str | None) -> str:
    """What makes two failures "the same kind": the reason with numbers and quoted values blurred."""
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", reason or "")
    return re.sub(r"\d+(\.\d+)?", "N", text)[:120]


class _Heartbeat(threading.Thread):
    """Keeps the study's lease fresh from its own connection, so a long ``ask`` never lets it go stale."""

    def __init__(self, path: Any, name: str, owner: Owner, on_lost: Callable[[], None]) -> None:
        super().__init__(name=f"hyperscout-heartbeat-{name}", daemon=True)
        self.path, self.study, self.owner, self.on_lost = path, name, owner, on_lost
        self.done = threading.Event()

    def run(self) -> None:
        store: Store | None = None
        try:
            store = Store(self.path)
            while not self.done.wait(HEARTBEAT_INTERVAL):
                if not store.heartbeat(self.study, self.owner):
                    if self.done.is_set():
                        return  # the study just ended and let go of its lease
                    log.error("hyperscout: study %r was taken over by another run; stopping this one", self.study)
                    self.on_lost()
                    return
        except StoreError as exc:
            log.warning("hyperscout: heartbeat of study %r failed: %s", self.study, exc)
        finally:
            if store is not None:
                store.close()


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
        task: Any,
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
        self.task = task
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
        #: the backend's clock when it simulates time (``Backend.virtual``), else the wall clock
        self.virtual = bool(getattr(backend, "virtual", False))
        self.now: Callable[[], float] = backend.now if self.virtual else time.time  # type: ignore[attr-defined]
        self.iterations_used = 0
        self._last_iteration: dict[str, int] = {}
        #: running time of finished jobs (``compute_time_limit``), kept as sums: no scan per event
        self._compute_done = 0.0
        self._running: set[str] = set()
        self._running_since = 0.0  # the sum of ``started`` over ``_running``
        #: (due, job id, "run" | "queue"): per-job deadlines, so a loop costs O(log jobs in flight)
        self._deadlines: list[tuple[float, str, str]] = []
        self._stop_broadcast = False

        self.events: queue.Queue[BackendEvent | _Wake] = queue.Queue()
        #: every job of the study; a finished one without its metric history, which stays in the store
        #: (the optimizer's memory does not grow with histories: :meth:`top` reads them back)
        self.jobs: dict[str, Job] = {}
        self.ranking = RankedIndex(objectives)
        self._lock = threading.Lock()
        self._active: dict[str, Job] = {}
        #: job id -> (status, reason, interrupted, grace): what to record when the job exits
        self._stop_intent: dict[str, tuple[JobStatus, str, bool]] = {}
        self._stop_sent_at: dict[str, float] = {}
        #: job id -> when to signal a job that reached its budget and has not exited by itself
        self._abort_due: dict[str, float] = {}
        self._points: dict[str, dict[tuple[str, str, int], int]] = {}
        self._rerun: list[Job] = []
        self._adopt: list[Job] = []
        self._next_number = 0
        self.launched = 0
        self._asking_done = False
        self._stop_reason: str | None = None
        self.end_reason: str | None = None
        self.end_message: str | None = None
        self.started_at: float | None = None
        self.best_id: str | None = None
        self._last_tick = 0.0
        self._failures: tuple[str, int] = ("", 0)
        self.resumed = False
        self.owner = Owner.current()
        self._heartbeat: _Heartbeat | None = None
        self._prepared = False

    # -- public, thread-safe ------------------------------------------------------------------
    def request_stop(self, reason: str = "stopped") -> None:
        """Ask the loop to stop: running jobs are aborted and recorded as interrupted."""
        if self._stop_reason is None:
            self._stop_reason = reason
        self.events.put(_Wake())

    def set_deadline(self, deadline: float | None) -> None:
        """A wall-clock deadline; on a virtual clock it is moved onto the study's clock (under the lock
        that :meth:`run` takes to start that clock, so it is never converted twice)."""
        with self._lock:
            if self.virtual and deadline is not None and self.started_at is not None:
                deadline = self.now() + (deadline - time.time())
            self.deadline = deadline
        self.events.put(_Wake())

    def snapshot(self) -> list[Job]:
        with self._lock:
            return list(self.jobs.values())

    def active_jobs(self) -> list[Job]:
        with self._lock:
            return list(self._active.values())

    def top(self, k: int | None = None, *, histories: bool = False) -> list[Job]:
        """Ranked jobs best first (Pareto fronts for several objectives), in the order of
        :func:`ranked_jobs`; ``histories=True`` returns copies with their metric histories read
        from the store (the engine keeps none for finished jobs)."""
        with self._lock:
            top = self.ranking.top(k)
        if not histories or not top:
            return top
        points = self._read_histories([j.id for j in top])
        return [attrs.evolve(j, metrics=points.get(j.id, [])) for j in top]

    def with_histories(self, jobs: list[Job]) -> list[Job]:
        """Copies of ``jobs`` with their metric histories (read from the store for finished jobs)."""
        need = [j.id for j in jobs if j.status.finished]
        points = self._read_histories(need) if need else {}
        return [attrs.evolve(j, metrics=points[j.id]) if j.id in points else j for j in jobs]

    def _read_histories(self, ids: list[str]) -> dict[str, list[MetricPoint]]:
        return self._from_store(lambda store: store.load_metrics(ids))

    def _from_store(self, read: Callable[[Store], _T]) -> _T:
        """``read`` the study's store, or a read-only connection once the study has closed its own
        (a caller may ask after the end, or while the end closes it)."""
        if not self.store.closed:
            try:
                return read(self.store)
            except StoreError:
                if not self.store.closed:
                    raise
        reader = Store(self.store.path, readonly=True)
        try:
            return read(reader)
        finally:
            reader.close()

    # -- setup / resume -----------------------------------------------------------------------
    def _hook(self, name: str, **kwargs: Any) -> None:
        if self.pm is None:
            return
        notify(self.pm, name, study=self.view, **kwargs)

    def _check_definition(self, row: dict[str, Any] | None) -> None:
        if row is not None and row["fingerprint"] != self.fingerprint:
            raise StudyConflictError(
                f"study {self.name!r} in {self.store.path} was created with a different search space, objective "
                "or strategy; give this study another name (or point storage elsewhere)"
            )

    def _open_study(self) -> None:
        existing = self.store.claim_study(
            self.name, self.owner, stale_after=LEASE_STALE_AFTER, check=self._check_definition,
            create=(self.definition, self.fingerprint),
        )
        if existing is None:
            return
        self.resumed = True
        self.store.update_definition(self.name, self.definition)
        jobs = self.store.load_jobs(self.name)
        primary = self.objectives.primary
        for job in jobs:
            self.jobs[job.id] = job
            self._next_number = max(self._next_number, job.number + 1)
            self._points[job.id] = {(m.title, m.series, m.iteration): i for i, m in enumerate(job.metrics)}
            history = job.history(primary.title, primary.series)
            if history:
                self._last_iteration[job.id] = max(max(i for i, _ in history), 0)
                self.iterations_used += self._last_iteration[job.id]
        for job in jobs:
            if job.superseded_by is not None:
                continue
            if not job.status.finished:
                self._adopt.append(job)  # the backend decides in run(): adopted or gone
            elif job.interrupted:
                self._supersede(job)
        for job in jobs:
            self.ranking.add(job)
        self.launched = sum(1 for j in self.jobs.values() if j.superseded_by is None)
        self._compute_done = sum(j.ended - j.started for j in self.jobs.values()
                                 if j.superseded_by is None and j.started is not None and j.ended is not None)

    def _supersede(self, job: Job) -> Job:
        """Queue a re-run of ``job``'s configuration under a new id; ``job`` stays in the store, unranked."""
        rerun = self._new_job(job.params, job.budget, retry_of=job.id)
        job.superseded_by = rerun.id
        job.reason = f"{job.reason}; re-run as job {rerun.id}"
        self.store.save_job(job)
        self.store.save_job(rerun)
        self._rerun.append(rerun)
        return rerun

    def _reattach(self) -> None:
        """Give every job a dead optimizer left pending or running back to the backend, or re-run it."""
        adopted = 0
        for job in self._adopt:
            try:
                outcome = self.backend.reattach(self._spec(job), job.handle)
            except Exception as exc:
                log.warning("hyperscout: re-attaching job %s failed (%s); it runs again", job.id, exc)
                outcome = Reattached.GONE
            if outcome is Reattached.ADOPTED:
                adopted += 1
                with self._lock:
                    self._active[job.id] = job
                self._mark_running(job)
                self._mark_queued(job)
                continue
            job.status = JobStatus.ABORTED
            job.interrupted = True
            job.ended = job.ended or self.now()
            job.reason = "interrupted: the optimizer stopped before the job ended"
            self._supersede(job)
        self._adopt = []
        records: list[TrialRecord] = []
        for job in sorted(self.jobs.values(), key=lambda j: j.number):
            if job.superseded_by is not None:
                continue
            if job.id in self._active or not job.status.finished:
                records.append(TrialRecord(job.id, job.params, None, job.budget))
            else:
                records.append(TrialRecord(job.id, job.params, self._result(job), job.budget))
        self.store.add_event(self.name, "resumed", data={"jobs": len(self.jobs), "rerun": len(self._rerun),
                                                          "adopted": adopted})
        self.strategy.restore(records)
        for job in list(self.jobs.values()):
            if job.status.finished and job.id not in self._active:
                self._release(job)
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
        self._points[job.id] = {}
        with self._lock:
            self.jobs[job.id] = job
        return job

    # -- the loop -----------------------------------------------------------------------------
    def prepare(self) -> None:
        """Take the study's lease and open (or resume) it; raises on a conflict or a live owner."""
        self._open_study()
        self._prepared = True
        self._heartbeat = _Heartbeat(self.store.path, self.name, self.owner, lambda: self.request_stop("taken_over"))
        self._heartbeat.start()

    def run(self) -> str:
        """Run to the end; returns the end reason. Safe to call once."""
        if not self._prepared:
            self.prepare()
        with self._lock:
            self.started_at = self.now()
            if self.virtual and self.deadline is not None:  # a wall-clock deadline, moved onto the study's clock
                self.deadline = self.started_at + (self.deadline - time.time())
        failed: BaseException | None = None
        try:
            self._open_backend()
            if self.resumed:
                self._reattach()
            self.store.add_event(self.name, "study_started", data={"resumed": self.resumed})
            self._hook("hyperscout_study_started", resumed=self.resumed)
            while True:
                with self.store.batch():
                    self._enforce(self.now())
                if self._stop_reason is None:
                    self._fill()
                if not self._active and (self._stop_reason is not None or self._asking_done):
                    break
                try:
                    if self.virtual:  # simulated time: what is queued first, then move the clock
                        if self.events.empty():
                            self.backend.advance(self.now() + self._timeout(self.now()))  # type: ignore[attr-defined]
                        item = self.events.get_nowait()
                    else:
                        item = self.events.get(timeout=self._timeout(self.now()))
                except queue.Empty:
                    continue
                # One transaction per batch of events: a finished job is on disk within
                # milliseconds, and the store costs one commit per batch, not per write.
                with self.store.batch():
                    self._dispatch(item)
                    self._drain()
        except BackendLostError as exc:
            # The backend's server is gone: leave its jobs where they run; the next run re-attaches them.
            failed = exc
            self._stop_reason = "backend_lost"
            raise
        except BaseException as exc:
            # A crash of the loop itself (or a full disk): end jobs, then re-raise.
            failed = exc
            self._stop_reason = self._stop_reason or "error"
            for job in list(self._active.values()):
                self._safe_abort(job.id)
            raise
        finally:
            self.end_reason = self._stop_reason or self._end_reason_natural()
            self._close(failed)
        return self.end_reason

    def _open_backend(self) -> None:
        """Open the backend with what it accepts (a backend written before an argument existed still works)."""
        import inspect

        offered: dict[str, Any] = {"poll_interval": self.limits.poll_interval, "handle_sink": self._record_handle,
                                   "max_concurrency": self.limits.max_concurrency}
        params = inspect.signature(self.backend.open).parameters
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            offered = {k: v for k, v in offered.items() if k in params}
        self.backend.open(self.events.put, **offered)

    def _close(self, failed: BaseException | None) -> None:
        """Close the backend and record the end; a second failure here never hides the first."""
        try:
            self.backend.close()
        except Exception as exc:
            log.warning("hyperscout: closing backend %s failed: %s", self.view.backend_name, exc)
        try:
            self.strategy.close()
        except Exception as exc:
            log.warning("hyperscout: closing strategy %s failed: %s", self.view.strategy_name, exc)
        if self._heartbeat is not None:
            self._heartbeat.done.set()
            self._heartbeat.join(HEARTBEAT_INTERVAL + 5.0)  # it closes its own connection
        try:
            self.store.add_event(self.name, "study_ended", data={"reason": self.end_reason})
            self.store.release_study(self.name, self.owner, "ended", self.end_reason)
        except StoreError as exc:
            if failed is None:
                raise
            # the store already failed (full disk, damaged file): the first error is the one to show
            log.debug("hyperscout: recording the end of study %r failed too: %s", self.name, exc)
        self._hook("hyperscout_study_ended", reason=self.end_reason)

    def _end_reason_natural(self) -> str:
        lim = self.limits.total_max_jobs
        if lim is not None and self.launched >= lim:
            return "total_max_jobs"
        budget = self.limits.total_max_iterations
        return "total_max_iterations" if budget is not None and self.iterations_used >= budget else "exhausted"

    def _timeout(self, now: float) -> float:
        wake = [now + min(1.0, self.limits.report_period)]
        if self.deadline is not None:
            wake.append(self.deadline)
        while self._deadlines and self._deadline_due(self._deadlines[0]) is None:
            heapq.heappop(self._deadlines)  # stale: the job ended or started
        if self._deadlines:
            wake.append(self._deadlines[0][0])
        if self.limits.compute_time_limit is not None and self._active:
            wake.append(now + 0.25)
        for t in self._stop_sent_at.values():
            wake.append(t + _STOP_GRACE)
        wake.extend(self._abort_due.values())
        return max(0.0, min(wake) - now)

    def _drain(self) -> None:
        """Handle every event already queued (stops are decided before the next ask, never after it)."""
        while True:
            try:
                self._dispatch(self.events.get_nowait())
            except queue.Empty:
                return

    def _fill(self) -> None:
        while not self._asking_done and self._stop_reason is None and len(self._active) < self.limits.max_concurrency:
            with self.store.batch():
                self._drain()
            if self._stop_reason is not None or len(self._active) >= self.limits.max_concurrency:
                return
            if self._rerun:
                self._launch(self._rerun.pop(0))
                continue
            lim = self.limits.total_max_jobs
            if lim is not None and self.launched >= lim:
                self._asking_done = True
                return
            budget = self.limits.total_max_iterations
            if budget is not None and self.iterations_used >= budget:
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

    def _spec(self, job: Job) -> JobSpec:
        return JobSpec(
            job_id=job.id,
            study=self.name,
            params=job.params,
            task=self.task,
            workdir=str(job_dir(self.store, self.name, job.id)),
            metric_patterns=self.metric_patterns,
            queue=self.queue_name,
            budget=job.budget,
        )

    def _launch(self, job: Job) -> None:
        job.status = JobStatus.PENDING
        job.queued = self.now()
        with self._lock:
            self._active[job.id] = job
        self._mark_queued(job)
        # Durable before the process exists: a crash from here on leaves a row a resume can find.
        self.store.save_job(job)
        self.store.commit_now()
        try:
            self.backend.launch(self._spec(job))
        except Exception as exc:
            # A launch failure is a failed job with its reason, never a silent retry loop.
            with self.store.batch():
                self._finish(job, JobExited(job.id, self.now(), None, f"launch failed: {type(exc).__name__}: {exc}"))
            return
        self._hook("hyperscout_job_launched", job=job)

    def _mark_running(self, job: Job) -> None:
        if job.started is None or job.id in self._running:
            return
        self._running.add(job.id)
        self._running_since += job.started
        if self.limits.time_limit_per_job is not None:
            heapq.heappush(self._deadlines, (job.started + self.limits.time_limit_per_job, job.id, "run"))

    def _mark_queued(self, job: Job) -> None:
        if self.limits.time_limit_queued is not None and job.queued is not None and job.started is None:
            heapq.heappush(self._deadlines, (job.queued + self.limits.time_limit_queued, job.id, "queue"))

    def _deadline_due(self, entry: tuple[float, str, str]) -> Job | None:
        """The job an entry still applies to (it may have ended, or started since it was queued)."""
        _due, job_id, kind = entry
        job = self._active.get(job_id)
        if job is None or job.id in self._stop_intent or (kind == "queue") != (job.started is None):
            return None
        return job

    def _record_handle(self, job_id: str, handle: str) -> None:
        job = self.jobs.get(job_id)
        if job is not None:
            job.handle = handle
        self.store.set_handle(job_id, handle)

    # -- events ---------------------------------------------------------------------------------
    def _dispatch(self, item: BackendEvent | _Wake) -> None:
        if isinstance(item, _Wake):
            return
        if isinstance(item, BackendLost):
            self.store.add_event(self.name, "backend_lost", data={"reason": item.reason})
            raise BackendLostError(item.reason)
        job = self._active.get(item.job_id)
        if job is None:
            return  # late event for a job already recorded
        if isinstance(item, JobStarted):
            if job.status is JobStatus.RUNNING and job.started is not None:
                return  # an adopted job announced again
            job.status = JobStatus.RUNNING
            job.started = self.now()
            self._mark_running(job)
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
        key = (point.title, point.series, point.iteration)
        seen = self._points.setdefault(job.id, {})
        stopping = job.id in self._stop_intent
        if stopping:
            point = attrs.evolve(point, after_stop=True)
        at = seen.get(key)
        if at is not None:
            old = job.metrics[at]
            if old.value == point.value or (math.isnan(old.value) and math.isnan(point.value)) or \
                    (point.after_stop and not old.after_stop):
                return  # the same point again (a polling backend), or a late copy of a counted one
            job.metrics[at] = point
        else:
            seen[key] = len(job.metrics)
            job.metrics.append(point)
        self.store.add_metric(job.id, point)
        self._hook("hyperscout_metric_reported", job=job, point=point)
        if stopping:
            return
        objective = next((o for o in self.objectives if (o.title, o.series) == (point.title, point.series)), None)
        if objective is None:
            return
        if not math.isfinite(point.value):
            what = "NaN" if math.isnan(point.value) else f"{point.value:+}"
            self._stop(job, JobStatus.FAILED, f"objective {objective.key} was {what} at iteration {point.iteration}")
            return
        if objective is not self.objectives.primary:
            return
        last = self._last_iteration.get(job.id, 0)
        if point.iteration > last:
            self.iterations_used += point.iteration - last
            self._last_iteration[job.id] = point.iteration
        verdict = self.strategy.report(job.id, point.iteration, point.value)
        cap = job.budget if job.budget is not None else self.limits.max_iteration_per_job
        if verdict is Verdict.PRUNE:
            self._stop(job, JobStatus.PRUNED, f"pruned by {self.view.strategy_name} at iteration {point.iteration}")
        elif verdict is Verdict.STOP:
            self._stop(job, JobStatus.COMPLETED, f"stopped by {self.view.strategy_name} at iteration "
                       f"{point.iteration}", grace=True)
        elif cap is not None and point.iteration >= cap:
            self._stop(job, JobStatus.COMPLETED, f"reached its budget of {cap:g} iterations", grace=True)

    def _stop(self, job: Job, status: JobStatus, reason: str, interrupted: bool = False, grace: bool = False) -> None:
        """Decide how ``job`` ends; later reports are kept but marked after the stop point."""
        if job.id in self._stop_intent:
            if interrupted and job.id in self._abort_due:
                self._abort_now(job.id)  # the study stops: no more grace
            return
        self._stop_intent[job.id] = (status, reason, interrupted)
        if grace and self.limits.stop_grace > 0:
            self._abort_due[job.id] = self.now() + self.limits.stop_grace
        else:
            self._abort_now(job.id)

    def _abort_now(self, job_id: str) -> None:
        self._abort_due.pop(job_id, None)
        self._stop_sent_at[job_id] = self.now()
        self._safe_abort(job_id)

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
            used = self._compute_done + len(self._running) * now - self._running_since
            if used >= lim.compute_time_limit:
                self._stop_reason = "compute_time_limit"
        if self._stop_reason is not None and not self._stop_broadcast:
            self._stop_broadcast = True  # once: no job starts after the study stops
            for job in list(self._active.values()):
                self._stop(job, JobStatus.ABORTED, f"interrupted: study stopped ({self._stop_reason})", True)
        while self._deadlines and self._deadlines[0][0] <= now:
            entry = heapq.heappop(self._deadlines)
            job = self._deadline_due(entry)
            if job is None:
                continue
            if entry[2] == "run":
                self._stop(job, JobStatus.ABORTED, f"exceeded time_limit_per_job ({lim.time_limit_per_job:g} s)")
            else:
                where = f"queue {self.queue_name!r}" if self.queue_name else "the backend's queue"
                self._stop(job, JobStatus.ABORTED, f"waited in {where} longer than time_limit_queued "
                           f"({lim.time_limit_queued:g} s); is a worker serving it?")
        for job_id, due in list(self._abort_due.items()):
            if now >= due:
                status, reason, interrupted = self._stop_intent[job_id]
                self._stop_intent[job_id] = (status, f"{reason}; signalled after a {lim.stop_grace:g} s grace",
                                             interrupted)
                self._abort_now(job_id)
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
        history = job.history(p.title, p.series)
        return TrialResult(
            status=job.status,
            values=tuple(job.objective_values) if job.ranked and job.objective_values is not None else None,
            iteration=job.objective_iterations[0] if job.objective_iterations else (history[-1][0] if history else None),
            intermediate=tuple(history),
            budget=job.budget,
            interrupted=job.interrupted,
            reason=job.reason,
        )

    def _finish(self, job: Job, ev: JobExited) -> None:
        with self._lock:
            self._active.pop(job.id, None)
        self._stop_sent_at.pop(job.id, None)
        self._abort_due.pop(job.id, None)
        intent = self._stop_intent.pop(job.id, None)
        job.ended = self.now()
        job.exit_code = ev.exit_code
        if job.id in self._running:
            self._running.discard(job.id)
            self._running_since -= job.started or 0.0
        if job.started is not None:
            self._compute_done += job.ended - job.started
        values, iterations = self._objective_values(job)
        missing = [o.key for o in self.objectives if not job.history(o.title, o.series)]
        if intent is not None:
            job.status, job.reason, job.interrupted = intent
            if job.status is JobStatus.COMPLETED:
                if values is None:
                    job.status = JobStatus.FAILED
                    job.reason = f"{job.reason}, but never reported objective {missing[0]!r}"
                elif "signalled after" not in job.reason:
                    job.reason = f"{job.reason}; exited by itself" + (f" (exit code {ev.exit_code})"
                                                                      if ev.exit_code not in (0, None) else "")
        elif ev.exit_code == 0 and values is not None:
            job.status, job.reason = JobStatus.COMPLETED, None
        elif ev.exit_code == 0:
            job.status = JobStatus.FAILED
            job.reason = self._missing_reason(job, missing[0])
        else:
            job.status = JobStatus.FAILED
            job.reason = ev.reason or f"exit code {ev.exit_code}"
        # One rule (TrialResult): only a completed job has objective values and is ranked.
        if job.status is JobStatus.COMPLETED:
            job.objective_values, job.objective_iterations = values, iterations
        else:
            job.objective_values = job.objective_iterations = None
        with self._lock:
            self.ranking.add(job)
        self.store.save_job(job)
        self.store.add_event(self.name, "job_finished", job.id, {"status": job.status.value, "reason": job.reason})
        try:
            self.strategy.tell(job.id, self._result(job))
        except Exception as exc:
            log.warning("hyperscout: strategy %s failed on tell(%s): %s", self.view.strategy_name, job.id, exc)
        self._hook("hyperscout_job_finished", job=job)
        if job.ranked:
            self._failures = ("", 0)
            self._after_result(job)
        elif job.status is JobStatus.FAILED:
            self._count_failure(job)
        self._release(job)

    def _release(self, job: Job) -> None:
        """Forget a finished job's metric history (it is in the store): the engine's memory stays flat
        however long the study runs. Whoever was handed the job (hooks, callbacks) keeps its copy."""
        light = attrs.evolve(job, metrics=[])
        with self._lock:
            self.jobs[job.id] = light
            self.ranking.replace(light)
        self._points.pop(job.id, None)
        self._last_iteration.pop(job.id, None)

    def _missing_reason(self, job: Job, key: str) -> str:
        reported = sorted({m.key for m in job.metrics})
        seen = f"; it reported {', '.join(reported)}" if reported else "; it reported no scalar at all"
        o = self.objectives[0]
        return (f"exited 0 but never reported objective {key!r}{seen}; call hyperscout.report_scalar"
                f"({o.title!r}, {o.series!r}, value, iteration) or add a metric pattern")

    def _count_failure(self, job: Job) -> None:
        kind = _failure_kind(job.reason)
        last, n = self._failures
        self._failures = (kind, n + 1 if kind == last else 1)
        lim = self.limits.max_consecutive_failures
        if lim is not None and self._failures[1] >= lim and self._stop_reason is None:
            self.end_message = (f"{lim} jobs in a row failed the same way (last: job {job.id}: {job.reason}); "
                                "fix the cause and run again to resume, or raise max_consecutive_failures")
            self.store.add_event(self.name, "too_many_failures", job.id, {"reason": job.reason, "count": lim})
            self.request_stop("max_consecutive_failures")

    def _beats_best(self, job: Job) -> bool:
        """Better than the best so far, by the same order as :func:`ranked_jobs`."""
        best = self.jobs.get(self.best_id) if self.best_id else None
        if best is None or not best.ranked:
            return True
        if self.objectives.is_multi:
            return ranked_jobs([best, job], self.objectives)[0] is job
        o = self.objectives.primary
        return o.better(job.objective_values[0], best.objective_values[0])  # type: ignore[index]

    def _after_result(self, job: Job) -> None:
        if self._beats_best(job):
            self.best_id = job.id
            self.store.add_event(self.name, "new_best", job.id, {"values": job.objective_values})
            self._hook("hyperscout_new_best", job=job)
        k = self.limits.save_top_k
        if k is not None and k > 0:
            # one objective: only the new job and the one it pushed out of the top k can change
            ranked = self.top() if self.objectives.is_multi else [*self.top(k + 1), job]
            keep = {j.id for j in ranked[:k]}
            changed = list({j.id: j for j in ranked if (j.id not in keep) != j.archived}.values())
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

    def reported_metrics(self) -> list[str]:
        """Every ``title/series`` any job of this study reported (for "the objective never arrived")."""
        return self._from_store(lambda store: store.metric_keys(self.name))


def job_dir(store: Store, study: str, job_id: str) -> Path:
    return store.directory / "jobs" / study / job_id
