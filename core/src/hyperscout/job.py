"""The record of one trial: what ran, with which parameters, what it reported and how it ended."""

from __future__ import annotations

import enum
import time
from collections.abc import Mapping
from typing import Any

import attrs

__all__ = ["Job", "JobStatus", "MetricPoint"]


class JobStatus(str, enum.Enum):
    """Lifecycle of a job. ``pending`` = handed to a backend but not running yet (queued)."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    ABORTED = "aborted"
    PRUNED = "pruned"

    @property
    def finished(self) -> bool:
        return self not in (JobStatus.PENDING, JobStatus.RUNNING)

    def __str__(self) -> str:
        return self.value


@attrs.frozen
class MetricPoint:
    """One reported scalar, as ``Logger.report_scalar(title, series, value, iteration)``."""

    title: str
    series: str
    iteration: int
    value: float
    time: float = attrs.field(factory=time.time)
    #: reported after the engine decided to stop the job: kept in the history, never its result
    after_stop: bool = False

    @property
    def key(self) -> str:
        return f"{self.title}/{self.series}"


@attrs.define(eq=False)
class Job:
    """A trial. Mutable: the engine updates it as events arrive; the store persists each change.

    ``id`` is what ``get_top_experiments()`` hands back (``[t.id for t in top]`` as in the seed).
    """

    id: str
    study: str
    number: int
    params: dict[str, Any]
    status: JobStatus = JobStatus.PENDING
    budget: float | None = None
    created: float = attrs.field(factory=time.time)
    started: float | None = None
    ended: float | None = None
    exit_code: int | None = None
    reason: str | None = None
    stdout_path: str | None = None
    stderr_path: str | None = None
    pid: int | None = None
    retry_of: str | None = None
    superseded_by: str | None = None
    #: aborted because the whole study stopped (stop(), a study limit, a crash): re-run on resume
    interrupted: bool = False
    #: outside save_top_k_tasks_only: hidden from listings, kept in the store
    archived: bool = False
    metrics: list[MetricPoint] = attrs.field(factory=list)
    #: objective values and their iterations, set when the job finishes (None entries: never reported)
    objective_values: list[float] | None = None
    objective_iterations: list[int] | None = None
    #: the backend's name for the job (a pid marker, a ClearML task id, a Dask key), stored before it starts
    handle: str | None = None
    #: when the job was handed to its backend (the optimizer's clock), for the queued-time limit
    queued: float | None = None

    @property
    def duration(self) -> float | None:
        """Seconds spent running (so far, for a running job)."""
        if self.started is None:
            return None
        return (time.time() if self.ended is None else self.ended) - self.started

    def history(self, title: str, series: str, *, after_stop: bool = False) -> list[tuple[int, float]]:
        """``[(iteration, value), ...]`` of one scalar, in report order, up to the job's stop point
        (``after_stop=True`` includes what arrived after it)."""
        return [(m.iteration, m.value) for m in self.metrics
                if m.title == title and m.series == series and (after_stop or not m.after_stop)]

    @property
    def ranked(self) -> bool:
        """Whether the job takes part in rankings: completed with every objective, not re-run."""
        return self.status is JobStatus.COMPLETED and self.objective_values is not None and self.superseded_by is None

    def last_iteration(self, title: str, series: str) -> int | None:
        h = self.history(title, series)
        return h[-1][0] if h else None

    @property
    def objective_value(self) -> float | None:
        """The first objective's value (single-objective convenience)."""
        return self.objective_values[0] if self.objective_values else None

    def summary(self) -> dict[str, Any]:
        """A flat dict for tables and exports."""
        return {
            "id": self.id,
            "number": self.number,
            "status": str(self.status),
            "objective": self.objective_values,
            "iteration": self.objective_iterations,
            "params": dict(self.params),
            "duration": self.duration,
            "exit_code": self.exit_code,
            "reason": self.reason,
        }

    def to_row(self) -> Mapping[str, Any]:
        return self.summary()
