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
"""

from __future__ import annotations

import abc
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Union

import attrs

from hyperscout.capture import MetricPattern
from hyperscout.command import Command
from hyperscout.errors import UnsupportedError
from hyperscout.job import MetricPoint

__all__ = [
    "Backend",
    "BackendEvent",
    "EventSink",
    "JobExited",
    "JobQueued",
    "JobSpec",
    "JobStarted",
    "MetricReported",
]


@attrs.frozen
class JobSpec:
    """Everything a backend needs to run one job."""

    job_id: str
    study: str
    params: Mapping[str, Any]
    command: Command
    #: a directory reserved for this job's logs and files; the backend creates it if it writes there
    workdir: str
    metric_patterns: Sequence[MetricPattern] = ()
    #: the queue the user named (``execution_queue``); local backends ignore it
    queue: str | None = None


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


BackendEvent = Union[JobQueued, JobStarted, MetricReported, JobExited]
EventSink = Callable[[BackendEvent], None]


class Backend(abc.ABC):
    """Base class of every execution backend.

    Set ``name`` (the registry name, ``"local"``). Options are the keyword-only arguments of
    ``__init__``; unknown ones are an error before the study starts.
    """

    name: ClassVar[str] = ""
    #: whether the backend needs ``poll_interval`` (remote queues) or pushes events (local)
    polls: ClassVar[bool] = False

    def __init__(self) -> None:
        self.sink: EventSink | None = None
        self.poll_interval: float = 6.0

    def open(self, sink: EventSink, *, poll_interval: float = 6.0) -> None:
        """Called once before the first launch: where to send events, how often to poll."""
        self.sink = sink
        self.poll_interval = poll_interval

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

    def reap_stale(self, job_id: str, pid: int | None) -> bool:
        """On resume: end a job left running by an optimizer that crashed. True if one was ended."""
        return False

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
