"""Drive a registered strategy in-process, the way the engine does, and record what it reaches.

The engine's contract (``hyperscout.strategy``) is reproduced with one job at a time:
``ask`` -> run the configuration -> ``report`` after every training iteration (multi-fidelity
only) -> ``tell`` once. A job ends when ``report`` answers ``PRUNE`` (status pruned), ``STOP``,
or when it reaches its iteration cap ``Suggestion.budget or max_iteration_per_job`` (status
completed), exactly where the engine would stop it. Single-fidelity evaluations are atomic: the
function's one value is the job's result, told with ``tell`` (nothing to report on the way).

Times spent inside ``ask``/``report``/``tell`` are measured separately from the evaluations so
the overhead comparison only looks at the optimizer side.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tasks import OBJECTIVES, MultiFidelityTask, Task

from hyperscout import EXHAUSTED, WAIT, JobStatus, StudySettings, Suggestion, TrialResult, Verdict
from hyperscout.plugins import strategies

__all__ = ["MFRun", "SFRun", "build", "run_mf", "run_sf"]


@dataclass
class SFRun:
    """One single-fidelity run: the value of every evaluation, in order."""

    values: list[float] = field(default_factory=list)
    params: list[dict[str, Any]] = field(default_factory=list)
    #: seconds spent in the optimizer (ask + tell, or the library's equivalent)
    opt_seconds: float = 0.0
    wall_seconds: float = 0.0

    def best_so_far(self) -> list[float]:
        out, best = [], float("inf")
        for v in self.values:
            best = min(best, v)
            out.append(best)
        return out


@dataclass
class MFRun:
    """One multi-fidelity run: ``(iterations spent so far, value)`` at the end of every job."""

    ends: list[tuple[int, float]] = field(default_factory=list)
    iterations: int = 0
    jobs: int = 0
    pruned: int = 0
    full_budget_jobs: int = 0
    opt_seconds: float = 0.0
    wall_seconds: float = 0.0

    def best_at(self, grid: list[int]) -> list[float]:
        """Best job value reached once ``g`` iterations were spent, for each ``g`` of the grid."""
        out = []
        ends = sorted(self.ends)
        k, best = 0, float("inf")
        for g in grid:
            while k < len(ends) and ends[k][0] <= g:
                best = min(best, ends[k][1])
                k += 1
            out.append(best)
        return out

    @property
    def best(self) -> float:
        return min((v for _, v in self.ends), default=float("inf"))


def build(name: str, options: Mapping[str, Any], space: Any, settings: StudySettings) -> Any:
    """Resolve ``name`` in the registry, check it and construct it, as the engine does."""
    cls = strategies().get(name)
    cls.check(space, OBJECTIVES, settings, dict(options))
    return cls(space, OBJECTIVES, settings, **dict(options))


def run_sf(name: str, options: Mapping[str, Any], task: Task, n_evals: int, seed: int) -> SFRun:
    """``n_evals`` evaluations of ``task`` suggested by strategy ``name``."""
    # Strategies that need an iteration range (BOHB) get a single rung, 1..1: every job is a full
    # evaluation, so the comparison is at equal numbers of evaluations for everybody.
    needs_budget = "max_iteration_per_job" in strategies().get(name).requires
    settings = StudySettings(
        max_concurrency=1,
        total_max_jobs=n_evals,
        min_iteration_per_job=1 if needs_budget else None,
        max_iteration_per_job=1 if needs_budget else None,
        seed=seed,
    )
    run = SFRun()
    start = time.perf_counter()
    strategy = build(name, options, task.space, settings)
    try:
        for i in range(n_evals):
            tid = f"t{i}"
            t0 = time.perf_counter()
            answer = strategy.ask(tid)
            t1 = time.perf_counter()
            run.opt_seconds += t1 - t0
            if answer is EXHAUSTED:
                break
            if answer is WAIT:  # one job at a time and none outstanding: the contract forbids it
                raise RuntimeError(f"strategy {name!r} answered WAIT with no trial running")
            assert isinstance(answer, Suggestion)
            value = task.evaluate(answer.params)
            run.values.append(value)
            run.params.append(dict(answer.params))
            t2 = time.perf_counter()
            strategy.tell(tid, TrialResult(JobStatus.COMPLETED, (value,), 1, ((1, value),), answer.budget))
            run.opt_seconds += time.perf_counter() - t2
    finally:
        strategy.close()
    run.wall_seconds = time.perf_counter() - start
    return run


def run_mf(name: str, options: Mapping[str, Any], task: MultiFidelityTask, total_iterations: int, seed: int,
           min_iteration: int, max_iteration: int) -> MFRun:
    """Jobs of strategy ``name`` until ``total_iterations`` training iterations were spent."""
    settings = StudySettings(
        max_concurrency=1,
        total_max_jobs=None,  # the iteration budget ends the run, not a job count
        min_iteration_per_job=min_iteration,
        max_iteration_per_job=max_iteration,
        seed=seed,
    )
    run = MFRun()
    start = time.perf_counter()
    strategy = build(name, options, task.space, settings)
    try:
        i = 0
        while run.iterations < total_iterations:
            tid = f"t{i}"
            i += 1
            t0 = time.perf_counter()
            answer = strategy.ask(tid)
            run.opt_seconds += time.perf_counter() - t0
            if answer is EXHAUSTED:
                break
            if answer is WAIT:
                raise RuntimeError(f"strategy {name!r} answered WAIT with no trial running")
            assert isinstance(answer, Suggestion)
            cap = int(answer.budget) if answer.budget else max_iteration
            history: list[tuple[int, float]] = []
            status = JobStatus.COMPLETED
            for it in range(1, cap + 1):
                if run.iterations >= total_iterations:  # the study's budget ran out mid-job
                    status = JobStatus.ABORTED
                    break
                value = task.value(answer.params, it)
                run.iterations += 1
                history.append((it, value))
                t0 = time.perf_counter()
                verdict = strategy.report(tid, it, value)
                run.opt_seconds += time.perf_counter() - t0
                if verdict is Verdict.PRUNE:
                    status = JobStatus.PRUNED
                    break
                if verdict is Verdict.STOP:
                    break
            run.jobs += 1
            run.pruned += status is JobStatus.PRUNED
            if history:
                last_it, last = history[-1]
                run.ends.append((run.iterations, last))
                run.full_budget_jobs += last_it >= max_iteration
                result = TrialResult(status, (last,), last_it, tuple(history), answer.budget)
            else:
                result = TrialResult(JobStatus.ABORTED, None, None, (), answer.budget)
            t0 = time.perf_counter()
            strategy.tell(tid, result)
            run.opt_seconds += time.perf_counter() - t0
    finally:
        strategy.close()
    run.wall_seconds = time.perf_counter() - start
    return run
