"""Shared test helpers: a synthetic multi-fidelity objective and a tiny ask/tell loop."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from hyperscout.job import JobStatus
from hyperscout.objective import Objective, ObjectiveSet
from hyperscout.params import SearchSpace, UniformIntegerParameterRange, UniformParameterRange
from hyperscout.strategy import EXHAUSTED, WAIT, SearchStrategy, StudySettings, Suggestion, TrialResult

MIN = ObjectiveSet((Objective("val", "loss", "min"),))
MAX = ObjectiveSet((Objective("val", "acc", "max"),))
SPACE = SearchSpace((UniformParameterRange("x", -2.0, 2.0), UniformIntegerParameterRange("k", 1, 5)))


def settings(lo: int = 1, hi: int = 9, **kw: Any) -> StudySettings:
    return StudySettings(min_iteration_per_job=lo, max_iteration_per_job=hi, **kw)


def quality(params: Mapping[str, Any]) -> float:
    """The configuration's asymptotic loss: best at x = 0.5, k = 2."""
    return (float(params["x"]) - 0.5) ** 2 + 0.1 * abs(int(params["k"]) - 2)


def multi_fidelity(params: Mapping[str, Any], budget: float) -> float:
    """The loss after ``budget`` iterations: it improves with the budget towards ``quality``."""
    return quality(params) + 1.0 / budget


@attrs.define
class Job:
    trial_id: str
    suggestion: Suggestion
    budget: float
    result: TrialResult | None = None
    #: (bracket serial, rung, budget) as the strategy saw it when it suggested the job
    slot: tuple[int, int, float] | None = None

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.suggestion.params)


@attrs.define
class Run:
    jobs: list[Job]
    waits: int
    waits_idle: int


Outcome = Callable[[Job], TrialResult]


def completed(objective: Callable[[Mapping[str, Any], float], float] = multi_fidelity) -> Outcome:
    def outcome(job: Job) -> TrialResult:
        v = objective(job.params, job.budget)
        it = int(job.budget)
        return TrialResult(JobStatus.COMPLETED, (v,), it, tuple((i, v) for i in range(1, it + 1)), job.budget)

    return outcome


def run(
    strategy: SearchStrategy,
    total_max_jobs: int,
    *,
    concurrency: int = 1,
    outcome: Outcome | None = None,
    budget_of: Callable[[Suggestion], float] | None = None,
) -> Run:
    """What the engine does, minus processes: ask until ``total_max_jobs``, at most ``concurrency``
    outstanding, finishing the oldest job whenever the strategy waits or the slots are full."""
    outcome = outcome or completed()
    budget_of = budget_of or (lambda s: float(s.budget))  # type: ignore[arg-type]
    jobs: list[Job] = []
    outstanding: list[Job] = []
    waits = waits_idle = 0
    counter = 0

    def finish() -> None:
        job = outstanding.pop(0)
        job.result = outcome(job)
        strategy.tell(job.trial_id, job.result)

    while len(jobs) < total_max_jobs:
        if len(outstanding) >= concurrency:
            finish()
            continue
        tid = f"t{counter}"
        counter += 1
        answer = strategy.ask(tid)
        if answer is EXHAUSTED:
            break
        if answer is WAIT:
            waits += 1
            if not outstanding:
                waits_idle += 1
                break
            finish()
            continue
        assert isinstance(answer, Suggestion)
        job = Job(tid, answer, budget_of(answer))
        trial_slot = getattr(strategy, "trial_slot", None)
        job.slot = trial_slot(tid) if trial_slot is not None else None
        jobs.append(job)
        outstanding.append(job)
    while outstanding:
        finish()
    return Run(jobs, waits, waits_idle)


def key(params: Mapping[str, Any]) -> tuple:
    return tuple(sorted((k, v if not isinstance(v, float) else round(v, 12)) for k, v in params.items()))


def isclose(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)
