"""Shared pieces of the tests: tiny in-test strategies (no other plugin needed) and a study runner."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from hyperscout import (
    EXHAUSTED,
    HyperParameterOptimizer,
    SearchSpace,
    SearchStrategy,
    StudySettings,
    Suggestion,
    TrialResult,
    UniformParameterRange,
    Verdict,
)
from hyperscout.backend import BackendEvent, JobExited
from hyperscout.objective import ObjectiveSet
from hyperscout.strategy import Signal

#: minutes to wait for a simulated study: a guard against a hang, never a claim about speed
GUARD_MINUTES = 3.0


class Sample(SearchStrategy):
    """Seeded uniform samples, a fixed budget per job, and an optional pruning rule."""

    name = "test-sample"
    learns_from_results = False

    def __init__(self, space: SearchSpace, objectives: ObjectiveSet, settings: StudySettings, *,
                 budget: float | None = None, prune_above: float | None = None, prune_at: int = 3) -> None:
        super().__init__(space, objectives, settings)
        self.budget = budget
        self.prune_above = prune_above
        self.prune_at = prune_at
        self.told: dict[str, TrialResult] = {}

    def ask(self, trial_id: str) -> Suggestion | Signal:
        return Suggestion(self.space.sample(self.rng), budget=self.budget)

    def report(self, trial_id: str, iteration: int, value: float) -> Verdict:
        if self.prune_above is not None and iteration >= self.prune_at and value > self.prune_above:
            return Verdict.PRUNE
        return Verdict.CONTINUE

    def tell(self, trial_id: str, result: TrialResult) -> None:
        self.told[trial_id] = result


class Listed(SearchStrategy):
    """Suggests the configurations of ``configs`` in order, then is exhausted."""

    name = "test-listed"
    learns_from_results = False

    def __init__(self, space: SearchSpace, objectives: ObjectiveSet, settings: StudySettings, *,
                 configs: Sequence[Mapping[str, Any]] = ()) -> None:
        super().__init__(space, objectives, settings)
        self.configs = [dict(c) for c in configs]

    def ask(self, trial_id: str) -> Suggestion | Signal:
        return Suggestion(self.configs.pop(0)) if self.configs else EXHAUSTED

    def tell(self, trial_id: str, result: TrialResult) -> None:
        pass


def steady(step: float = 1.0, iterations: int | None = 10, value: Callable[[dict, int], float] | None = None
           ) -> Callable[..., Iterator[tuple[float, int, dict[str, float]]]]:
    """A job function: ``iterations`` steps of ``step`` virtual seconds (None: until stopped)."""

    def job(params: dict, budget: float | None) -> Iterator[tuple[float, int, dict[str, float]]]:
        i = 0
        while iterations is None or i < iterations:
            i += 1
            v = value(params, i) if value else params.get("x", 0.0) + 1.0 / i
            yield step, i, {"validation/loss": v}

    return job


def make_optimizer(tmp_path: Path, job: Any, *, name: str = "s", strategy: type[SearchStrategy] = Sample,
                   strategy_options: Mapping[str, Any] | None = None, space: Sequence[Any] | None = None,
                   backend_options: Mapping[str, Any] | None = None, seed: int = 7, **limits: Any
                   ) -> HyperParameterOptimizer:
    limits.setdefault("max_number_of_concurrent_tasks", 2)
    return HyperParameterOptimizer(
        base_task_id=job,
        hyper_parameters=list(space or [UniformParameterRange("x", 0.0, 1.0)]),
        objective_metric_title="validation",
        objective_metric_series="loss",
        objective_metric_sign="min",
        optimizer_class=strategy,
        strategy_options=dict(strategy_options or {}),
        backend="sim",
        backend_options={"origin": 1_000_000, **dict(backend_options or {})},
        storage=tmp_path / "store",
        study_name=name,
        show_progress=False,
        seed=seed,
        **limits,
    )


def run(opt: HyperParameterOptimizer, callback: Callable[..., Any] | None = None) -> HyperParameterOptimizer:
    opt.start(job_complete_callback=callback)
    assert opt.wait(timeout=GUARD_MINUTES), "the simulated study did not end (a hang, not a slow machine)"
    return opt


def exited(events: Sequence[BackendEvent], job_id: str) -> JobExited:
    found = [e for e in events if isinstance(e, JobExited) and e.job_id == job_id]
    assert len(found) == 1, f"job {job_id}: expected one JobExited, got {found}"
    return found[0]


def approx(x: float) -> Any:
    """Virtual durations are sums of the steps' durations: equal up to float rounding."""
    return pytest.approx(x, abs=1e-6)


def finite(v: float) -> bool:
    return math.isfinite(v)
