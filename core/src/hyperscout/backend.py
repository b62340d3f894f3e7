"""The execution-backend contract: launch a job, abort it, deliver what happens as events.

Backends do not decide anything (limits, pruning, retries): they run what they are given and
report. The engine calls them from one thread; they call the ``sink`` from any thread.

Events, in the order a backend emits them for one job::

    JobQueued?   -> JobStarted -> MetricReported* -> JobExited       (exactly one JobExited)

* ``JobQueued``: accepted but not running yet (a remote queue). Optional; a local process starts
  at once. A queued job counts against concurrency but not against compute time.
* ``JobStarted``: the job is running (``pid`` and log paths when known).
* ``MetricReported``: one scalar, from :func:`hyperscout.report_scalar` or a stdout pattern.
* ``JobExited``: the process (or remote task) ended, with its exit code when known and a short
  reason (the last line of stderr, "killed by SIGTERM", "task failed on the server", ...).

Three kinds of backend fit this contract: local processes (emit from reader threads), a remote
queue such as ClearML (``JobQueued`` at enqueue, metrics fetched from the server every
``poll_interval`` seconds) and a cluster such as Dask (events sent back by the worker).

Jobs that outlive the optimizer. The engine writes a job's row to the store before it calls
:meth:`Backend.launch`. As soon as the backend knows its own name for the job (a ClearML task id,
a Dask key, a pid marker), it calls :meth:`Backend.record_handle`, which makes the handle durable
before returning; a backend that can, records it before the job can start (ClearML: after the
clone, before the enqueue). On resume, :meth:`Backend.reattach` gets every job the store holds as
pending or running, with its handle (possibly ``None`` if the optimizer died in between), and says
whether it adopted it (its events follow as for a launched job; metrics already recorded may be
sent again, the engine keeps one row per job, title, series and iteration) or whether it is gone
(the engine then re-runs the configuration). Limits are measured on the optimizer's clock, never
by comparing remote timestamps.
"""

from __future__ import annotations

import abc
import enum
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Union

import attrs

from hyperscout.capture import MetricPattern
from hyperscout.command import Command
from hyperscout.errors import ConfigError, UnsupportedError
from hyperscout.job import MetricPoint

__all__ = [
    "Backend",
    "BackendEvent",
    "BackendLost",
    "EventSink",
    "JobExited",
    "JobQueued",
    "JobSpec",
    "JobStarted",
    "MetricReported",
    "Reattached",
    "env_option",
]


def env_option(backend: str, value: Any) -> dict[str, str]:
    """Validate a backend's ``env`` option (a table of ``NAME = "value"``); one-line error otherwise."""
    if value is None:
        return {}
    ok = isinstance(value, Mapping) and all(
        isinstance(k, str) and k and "=" not in k and isinstance(v, (str, int, float)) and not isinstance(v, bool)
        for k, v in value.items()
    )
    if not ok:
        raise ConfigError(f'{backend} backend option env={value!r} must be a table of NAME = "value" strings')
    return {k: str(v) for k, v in value.items()}


@attrs.frozen
class JobSpec:
    """Everything a backend needs to run one job."""

    job_id: str
    study: str
    params: Mapping[str, Any]
    #: the base task, as the backend understands it (:meth:`Backend.base_task`): a
    #: :class:`~hyperscout.Command` for ``local``, a task reference for a remote backend
    task: Any
    #: a directory reserved for this job's logs and files; the backend creates it if it writes there
    workdir: str
    metric_patterns: Sequence[MetricPattern] = ()
    #: the queue the user named (``execution_queue``); local backends ignore it
    queue: str | None = None
    #: the job's iteration budget from the strategy (Hyperband, BOHB) or None; the engine stops the
    #: job at it whatever the backend does, a backend may pass it on (a simulator runs to it)
    budget: float | None = None

    @property
    def command(self) -> Command:
        """The base task as a command (backends that run processes)."""
        if not isinstance(self.task, Command):
            raise TypeError(f"job {self.job_id}: the base task {self.task!r} is not a command")
        return self.task


class Reattached(str, enum.Enum):
    """What :meth:`Backend.reattach` found of a job left by an earlier run of the optimizer."""

    #: still queued or running, or already finished: the backend delivers its events from now on
    ADOPTED = "adopted"
    #: nothing to adopt (whatever was left of it was ended): the engine runs the configuration again
    GONE = "gone"


@attrs.frozen
class JobQueued:
    job_id: str
    time: float


@attrs.frozen
class JobStarted:
    job_id: str
    time: float
    pid: int | None = None
    stdout_path: str | None = None
    stderr_path: str | None = None
    worker: str | None = None


@attrs.frozen
class MetricReported:
    job_id: str
    point: MetricPoint


@attrs.frozen
class JobExited:
    job_id: str
    time: float
    exit_code: int | None
    reason: str | None = None


@attrs.frozen
class BackendLost:
    """The backend cannot go on (its server stayed unreachable past its retries).

    The study stops at once as *interrupted*, its jobs are left where they run (not aborted, not
    recorded as failed), and the next run of the study re-attaches them. ``reason`` is one line
    naming what was lost and what to do.
    """

    reason: str
    job_id: str = ""


BackendEvent = Union[JobQueued, JobStarted, MetricReported, JobExited, BackendLost]
EventSink = Callable[[BackendEvent], None]


class Backend(abc.ABC):
    """Base class of every execution backend.

    Set ``name`` (the registry name, ``"local"``). Options are the keyword-only arguments of
    ``__init__``; unknown ones are an error before the study starts.
    """

    name: ClassVar[str] = ""
    #: whether the backend needs ``poll_interval`` (remote queues) or pushes events (local)
    polls: ClassVar[bool] = False
    #: a simulating backend keeps its own clock: it defines ``now() -> float`` and
    #: ``advance(until: float) -> None`` (move the clock to the next event or to ``until``, whichever
    #: comes first, emitting the events due by then); the engine then never sleeps
    virtual: ClassVar[bool] = False

    def __init__(self) -> None:
        self.sink: EventSink | None = None
        self.poll_interval: float = 6.0
        self.max_concurrency: int | None = None
        self._handle_sink: Callable[[str, str], None] | None = None

    @classmethod
    def base_task(cls, base_task_id: Any) -> Any:
        """Turn what the user gave as the base task into what :class:`JobSpec.task` carries.

        Raise :class:`~hyperscout.ConfigError` with a one-line fix when it is not something this
        backend can run. The default coerces a script path or :class:`Command`.
        """
        return Command.coerce(base_task_id)

    @classmethod
    def claims(cls, base_task_id: Any) -> bool:
        """Whether a ``base_task_id`` clearly belongs to this backend (a ClearML task id).

        Lets ``HyperParameterOptimizer(base_task_id=<task id>)`` pick the backend by itself.
        """
        return False

    def open(
        self,
        sink: EventSink,
        *,
        poll_interval: float = 6.0,
        handle_sink: Callable[[str, str], None] | None = None,
        max_concurrency: int | None = None,
    ) -> None:
        """Called once before the first launch or reattach: where to send events, how often to poll,
        and how many jobs the engine keeps in flight at most (to size a local cluster)."""
        self.sink = sink
        self.poll_interval = poll_interval
        self._handle_sink = handle_sink
        self.max_concurrency = max_concurrency

    def record_handle(self, job_id: str, handle: str) -> None:
        """Persist the backend's name for a job; durable in the store when this returns."""
        if self._handle_sink is not None:
            self._handle_sink(job_id, handle)

    def emit(self, event: BackendEvent) -> None:
        assert self.sink is not None, "Backend.open() must be called before launching jobs"
        self.sink(event)

    @abc.abstractmethod
    def launch(self, spec: JobSpec) -> None:
        """Start the job and return at once; never block for the job's duration."""

    @abc.abstractmethod
    def abort(self, job_id: str) -> None:
        """End the job and everything it started (TERM, then KILL). ``JobExited`` still follows.

        Aborting a job that already exited is a no-op.
        """

    def reattach(self, spec: JobSpec, handle: str | None) -> Reattached:
        """On resume: a job the store holds as pending or running, left by an optimizer that died.

        Return ``ADOPTED`` if the backend will deliver its events from now on (it still runs, is
        queued, or has finished and its outcome can be fetched), ``GONE`` otherwise, after ending
        whatever is left of it so that it never runs beside its re-run. ``handle`` is ``None``
        when the optimizer died before the backend recorded one: a backend must still be able to
        find what it started (by a marker such as the job id). The default adopts nothing.
        """
        return Reattached.GONE

    def close(self) -> None:
        """Called once after the last job ended (or was aborted)."""

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> None:
        sig = inspect.signature(cls.__init__)
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values()):
            return
        allowed = [p.name for p in sig.parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY]
        for key in options:
            if key not in allowed:
                hint = f"accepted options: {', '.join(allowed)}" if allowed else "it takes no options"
                raise UnsupportedError(f"backend {cls.name or cls.__name__!r} has no option {key!r}; {hint}")
