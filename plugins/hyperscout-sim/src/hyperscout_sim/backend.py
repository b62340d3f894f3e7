"""The ``sim`` backend: jobs are job functions (or replays) run on a virtual clock.

Why it exists: the engine, the strategies, every limit, the store and the hooks are the same code
whether a job is a process or a simulation, so a simulation tests them and benchmarks them
without sleeping. The backend is *virtual* (:attr:`Backend.virtual`): the engine never waits on
the wall clock, it calls :meth:`SimBackend.advance` and the clock jumps to the next event.

How a job goes, in virtual time (``t`` is the launch)::

    t                 JobQueued        if queue_delay > 0, or when no worker is free
    t + queue_delay   JobStarted       as soon as a worker is free (``workers``; unlimited by default)
    + startup         first step begins (start-up counts as running time, reports nothing)
    + duration_k      MetricReported for each metric of step k, then step k+1 begins
    end of the steps  JobExited(0)     or (1, "Error: ...") / SimExit's code and reason

``abort`` ends a job at the current virtual time with ``JobExited(-15, "killed by SIGTERM")``
(whether it was queued or running; the event comes with the next :meth:`advance`, which does not
move the clock for it) and frees its worker for the next queued job. Every event of
one virtual instant is emitted by one :meth:`advance` call; events a job schedules at the instant
it is at (zero-length steps) come with the next call, so the engine reacts to each step as it
would to a real process.

Determinism: the event order depends only on the job functions, the options and the order of
launches and aborts. Ties at one instant go in the order they were scheduled. The clock counts
from ``origin`` (a whole number of seconds; by default the wall clock when the backend is built)
and every event time is kept relative to it, so two runs with different origins order events the
same way.
"""

from __future__ import annotations

import collections
import heapq
import json
import math
import random
import time
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import attrs

from hyperscout.backend import Backend, JobExited, JobQueued, JobSpec, JobStarted, MetricReported
from hyperscout.errors import ConfigError
from hyperscout.job import MetricPoint
from hyperscout_sim.replay import Replay
from hyperscout_sim.task import SimExit, SimTask, StepError, load_function, parse_step

__all__ = ["ABORT_REASON", "SimBackend"]

#: what an aborted job's JobExited says, as the local backend's SIGTERM does
ABORT_REASON = "killed by SIGTERM"
ABORT_CODE = -15
#: the longest step the clock takes by itself when the engine asks to wait until "now" (see ``_tick``)
MAX_TICK = 1e-3
#: steps of one job at one virtual instant before it is failed as "no progress" (an endless zero-length loop)
MAX_STEPS_PER_INSTANT = 100_000

# What a scheduled entry does when the clock reaches it.
_NOTICE, _READY, _STEP, _EXIT = range(4)

#: jobs launched without a budget in their spec, waiting for the engine's launch hook to tell it
_AWAITING_BUDGET: weakref.WeakValueDictionary[str, SimBackend] = weakref.WeakValueDictionary()


@attrs.define(eq=False)
class _Run:
    """One job in the simulation, from launch until its JobExited."""

    spec: JobSpec
    task: SimTask
    budget: float | None
    #: "waiting" (queue_delay), "queued" (no worker free), "running", "aborting" (its exit is scheduled)
    state: str = "waiting"
    #: bumped on abort: scheduled entries carrying an older token are dropped
    token: int = 0
    steps: Iterator[Any] | None = None
    #: metrics of the step in progress, reported when it completes
    pending: list[tuple[str, str, float]] = attrs.field(factory=list)
    pending_iteration: int = 0
    worker: int | None = None
    queued_notice: bool = False
    instant: float = -math.inf
    steps_this_instant: int = 0
    exit_code: int = 0
    reason: str | None = None


class SimBackend(Backend):
    """Simulated jobs on a virtual clock. Options (``backend_options``):

    * ``workers``: how many jobs run at once (None: as many as launched). Jobs beyond it wait in a
      FIFO queue (``JobQueued``), which ``time_limit_queued`` applies to.
    * ``startup``: virtual seconds between a job's start and its first step (process start, data
      loading); counted as running time.
    * ``queue_delay``: virtual seconds between launch and the earliest start (a scheduler's dispatch
      latency); the job is queued meanwhile.
    * ``seed``: seeds each job's ``rng`` together with its parameters.
    * ``origin``: the clock's start, whole seconds since the epoch (default: the wall clock, rounded down).
    """

    name: ClassVar[str] = "sim"
    virtual: ClassVar[bool] = True

    def __init__(
        self,
        *,
        workers: int | None = None,
        startup: float = 0.0,
        queue_delay: float = 0.0,
        seed: int = 0,
        origin: int | None = None,
    ) -> None:
        super().__init__()
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
            raise ConfigError(f"sim: workers={workers!r} must be a positive integer (or None for no limit)")
        for key, value in (("startup", startup), ("queue_delay", queue_delay)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ConfigError(f"sim: {key}={value!r} must be a number of virtual seconds >= 0")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ConfigError(f"sim: seed={seed!r} must be an integer")
        if origin is None:
            origin = int(time.time())
        if isinstance(origin, bool) or not isinstance(origin, int) or origin < 0:
            raise ConfigError(f"sim: origin={origin!r} must be a whole number of seconds since the epoch (>= 0)")
        self.workers = workers
        self.startup = float(startup)
        self.queue_delay = float(queue_delay)
        self.seed = seed
        self.origin = float(origin)
        #: virtual seconds since ``origin``
        self._t = 0.0
        self._seq = 0
        self._heap: list[tuple[float, int, int, _Run, int]] = []
        self._runs: dict[str, _Run] = {}
        self._queue: collections.deque[_Run] = collections.deque()
        self._free_workers: list[int] = list(range(workers)) if workers is not None else []
        self._closed = False
        self._creep = 0.0
        #: events emitted so far (benchmarks divide by it)
        self.events_emitted = 0

    # -- the base task ---------------------------------------------------------------------------
    @classmethod
    def base_task(cls, base_task_id: Any) -> SimTask:
        """A callable, ``"module:function"``, ``"file.py:function"``, or an export to replay (``.json``)."""
        if isinstance(base_task_id, SimTask):
            return base_task_id
        if isinstance(base_task_id, Replay):
            return base_task_id.task()
        if isinstance(base_task_id, (str, Path)) and str(base_task_id).endswith(".json"):
            return Replay.load(base_task_id).task()
        if isinstance(base_task_id, str):
            return load_function(base_task_id.strip())
        if callable(base_task_id) and not isinstance(base_task_id, type):
            return SimTask.of(base_task_id)
        raise ConfigError(f"sim: base_task_id={base_task_id!r} is not something the sim backend can run; give a "
                          "callable job(params, budget), 'module:function', or an export .json to replay")

    @classmethod
    def claims(cls, base_task_id: Any) -> bool:
        """A Python callable (or a replay) can only be run by a simulation."""
        if isinstance(base_task_id, (SimTask, Replay)):
            return True
        return callable(base_task_id) and not isinstance(base_task_id, type)

    # -- the clock -------------------------------------------------------------------------------
    def now(self) -> float:
        return self.origin + self._t

    def advance(self, until: float) -> None:
        """Move to the next event or to ``until``, whichever is first; emit the events of that instant."""
        heap = self._heap
        while heap and heap[0][4] != heap[0][3].token:  # entries of aborted jobs
            heapq.heappop(heap)
        # "Due by until" is decided on the engine's (absolute) clock: an event between two
        # representable absolute times must still be reachable by an engine asking for "now".
        if not heap or self.origin + heap[0][0] > until:
            target = until - self.origin
            if target > self._t:
                self._t = target
                self._creep = 0.0
            else:
                self._tick(heap[0][0] if heap else math.inf)
            return
        self._creep = 0.0
        at = heap[0][0]
        if at > self._t:
            self._t = at
        horizon = self._seq  # what this instant schedules for itself waits for the next call
        while heap and heap[0][0] <= at and heap[0][1] < horizon:
            _, _, kind, run, token = heapq.heappop(heap)
            if token != run.token:
                continue
            if kind == _STEP:
                self._report(run)
            elif kind == _READY:
                self._ready(run)
            elif kind == _EXIT:
                self._exit(run, run.exit_code, run.reason)
            elif kind == _NOTICE:
                self._notice(run)

    def _tick(self, before: float) -> None:
        """Asked to wait until "now" with nothing due: let time pass a little, as a real clock would.

        An engine deadline that rounds to just below "now" (``started + limit - started < limit``),
        or one the engine keeps asking for while it waits for something else, must not stop the
        clock forever. The tick starts at one unit in the last place and doubles on each such call
        in a row, up to :data:`MAX_TICK`, never past the next scheduled event.
        """
        now = self.now()
        step = max(self._creep * 2.0, math.nextafter(now, math.inf) - now)
        self._creep = min(step, MAX_TICK)
        self._t = min(self._t + self._creep, before) if before > self._t else self._t

    def _schedule(self, delay: float, kind: int, run: _Run) -> None:
        heapq.heappush(self._heap, (self._t + delay, self._seq, kind, run, run.token))
        self._seq += 1

    # -- the contract ----------------------------------------------------------------------------
    def launch(self, spec: JobSpec) -> None:
        if self._closed:
            raise RuntimeError("sim: launch() after close(); open a new backend")
        if spec.job_id in self._runs:
            raise RuntimeError(f"sim: job {spec.job_id} is already running")
        task = spec.task if isinstance(spec.task, SimTask) else self.base_task(spec.task)
        budget = getattr(spec, "budget", None)
        run = _Run(spec=spec, task=task, budget=budget)
        self._runs[spec.job_id] = run
        if not hasattr(spec, "budget"):
            _AWAITING_BUDGET[spec.job_id] = self  # the engine's launch hook tells it (see plugin.py)
        if self.queue_delay > 0:
            self._schedule(0.0, _NOTICE, run)
        self._schedule(self.queue_delay, _READY, run)

    def abort(self, job_id: str) -> None:
        """End the job at the current virtual time; its JobExited comes with the next :meth:`advance`.

        Not emitted from inside ``abort``: the engine calls it while deciding, and an event already
        queued when it next moves the clock would be stamped with the later time.
        """
        run = self._runs.get(job_id)
        if run is None or run.state == "aborting":
            return  # unknown, already exited, or already being ended
        run.token += 1
        run.state = "aborting"
        if run.steps is not None and hasattr(run.steps, "close"):
            try:
                run.steps.close()  # run the generator's finally blocks, as SIGTERM would
            except Exception:  # a job function failing while it is killed changes nothing
                pass
        if self._closed:
            self._exit(run, ABORT_CODE, ABORT_REASON)
        else:
            self._fail_later(run, 0.0, ABORT_CODE, ABORT_REASON)

    def close(self) -> None:
        """End every job still queued or running, now (each gets its one JobExited)."""
        self._closed = True
        for job_id, run in list(self._runs.items()):
            if run.state == "aborting":
                self._exit(run, ABORT_CODE, ABORT_REASON)
            else:
                self.abort(job_id)
        self._heap.clear()

    def set_budget(self, job_id: str, budget: float | None) -> None:
        """The job's iteration cap, when the spec does not carry it; ignored once the job has started."""
        run = self._runs.get(job_id)
        if run is not None and run.steps is None:
            run.budget = budget

    # -- what happens at each instant ------------------------------------------------------------
    def _emit(self, event: Any) -> None:
        self.events_emitted += 1
        self.emit(event)

    def _notice(self, run: _Run) -> None:
        if run.state != "running" and not run.queued_notice:
            run.queued_notice = True
            self._emit(JobQueued(run.spec.job_id, self.now()))

    def _ready(self, run: _Run) -> None:
        worker = self._take_worker()
        if worker is None:
            run.state = "queued"
            self._notice(run)
            self._queue.append(run)
            return
        self._start(run, worker)

    def _take_worker(self) -> int | None:
        if self.workers is None:
            return 0
        return heapq.heappop(self._free_workers) if self._free_workers else None

    def _start(self, run: _Run, worker: int) -> None:
        run.state = "running"
        run.worker = worker
        _AWAITING_BUDGET.pop(run.spec.job_id, None)
        label = None if self.workers is None else f"sim-{worker}"
        self._emit(JobStarted(run.spec.job_id, self.now(), worker=label))
        try:
            run.steps = run.task.start(run.spec.params, run.budget, self._rng(run) if run.task.wants_rng else None)
        except SimExit as exc:
            self._fail_later(run, self.startup, exc.exit_code, exc.reason)
            return
        except Exception as exc:
            self._fail_later(run, self.startup, 1, f"{type(exc).__name__}: {exc}")
            return
        self._next_step(run, self.startup)

    def _rng(self, run: _Run) -> random.Random:
        return random.Random(f"{self.seed}|{json.dumps(dict(run.spec.params), sort_keys=True, default=str)}")

    def _next_step(self, run: _Run, delay: float) -> None:
        """Ask the job function for its next step; schedule its report, or the job's exit."""
        assert run.steps is not None
        try:
            step = next(run.steps)
        except StopIteration:
            self._fail_later(run, delay, 0, None)
            return
        except SimExit as exc:
            self._fail_later(run, delay, exc.exit_code, exc.reason)
            return
        except Exception as exc:  # the job function crashed: the job fails with its exception line
            self._fail_later(run, delay, 1, f"{type(exc).__name__}: {exc}")
            return
        try:
            duration, iteration, metrics = parse_step(step)
        except StepError as exc:
            self._fail_later(run, delay, 1, f"job function {run.task.label} {exc}")
            return
        when = self._t + delay + duration
        if when == run.instant:
            run.steps_this_instant += 1
            if run.steps_this_instant > MAX_STEPS_PER_INSTANT:
                self._fail_later(run, delay, 1, f"job function {run.task.label} yielded {MAX_STEPS_PER_INSTANT} "
                                 "steps of zero duration in a row; give each step a duration > 0")
                return
        else:
            run.instant, run.steps_this_instant = when, 0
        run.pending, run.pending_iteration = metrics, iteration
        self._schedule(delay + duration, _STEP, run)

    def _fail_later(self, run: _Run, delay: float, code: int, reason: str | None) -> None:
        run.exit_code, run.reason = code, reason
        self._schedule(delay, _EXIT, run)

    def _report(self, run: _Run) -> None:
        now = self.now()
        job_id = run.spec.job_id
        iteration = run.pending_iteration
        token = run.token
        for title, series, value in run.pending:
            self._emit(MetricReported(job_id, MetricPoint(title, series, iteration, value, now)))
        run.pending = []
        if run.token == token:  # a sink that aborts the job as it reports (synchronously) ends it here
            self._next_step(run, 0.0)

    def _exit(self, run: _Run, code: int, reason: str | None) -> None:
        job_id = run.spec.job_id
        if self._runs.pop(job_id, None) is None:
            return
        _AWAITING_BUDGET.pop(job_id, None)
        run.token += 1
        run.steps = None
        self._emit(JobExited(job_id, self.now(), code, reason))
        if run.worker is not None:
            self._release(run.worker)

    def _release(self, worker: int) -> None:
        if self.workers is None or self._closed:
            return
        while self._queue:
            nxt = self._queue.popleft()
            if nxt.spec.job_id in self._runs and nxt.state == "queued":
                self._start(nxt, worker)
                return
        heapq.heappush(self._free_workers, worker)

    # -- introspection (tests, benchmarks) -------------------------------------------------------
    @property
    def in_flight(self) -> int:
        """Jobs launched and not yet exited."""
        return len(self._runs)
