"""Coordinate descent over a finite search space: a small, complete strategy to copy."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hyperscout import (
    EXHAUSTED,
    WAIT,
    DiscreteParameterRange,
    LogUniformParameterRange,
    SearchSpace,
    SearchStrategy,
    StudySettings,
    Suggestion,
    TrialRecord,
    TrialResult,
    UniformIntegerParameterRange,
    UniformParameterRange,
)
from hyperscout.errors import UnsupportedError
from hyperscout.objective import ObjectiveSet
from hyperscout.params import config_key
from hyperscout.strategy import Signal

__all__ = ["CoordinateDescent"]


class CoordinateDescent(SearchStrategy):
    """Sweep one parameter at a time around the best configuration so far."""

    name = "example"
    # ParameterSet is left out on purpose: the engine refuses it before any job starts.
    supported_parameters = (UniformParameterRange, LogUniformParameterRange, UniformIntegerParameterRange,
                            DiscreteParameterRange)

    def __init__(self, space: SearchSpace, objectives: ObjectiveSet, settings: StudySettings, *,
                 sweeps: int = 1) -> None:
        super().__init__(space, objectives, settings)
        if sweeps < 1:
            raise UnsupportedError(f"strategy 'example': sweeps={sweeps} must be >= 1")
        for p in space.parameters:
            if not p.is_finite:
                raise UnsupportedError(f"strategy 'example' needs a step_size on {p.name!r}")
        self.sweeps = sweeps
        self.values = {p.name: [d[p.name] for d in p.to_list()] for p in space.parameters}
        self.names = list(self.values)
        self.best: dict[str, Any] = {n: v[0] for n, v in self.values.items()}
        self.best_score: float | None = None
        self.seen: set[str] = set()
        self.queue: list[dict[str, Any]] = []
        self.position = 0  # which parameter is being swept, counted over all sweeps
        self.pending: dict[str, dict[str, Any]] = {}

    def _next_batch(self) -> None:
        while not self.queue and self.position < self.sweeps * len(self.names):
            name = self.names[self.position % len(self.names)]
            self.position += 1
            self.queue = [c for v in self.values[name] if config_key(c := {**self.best, name: v}) not in self.seen]

    def ask(self, trial_id: str) -> Suggestion | Signal:
        if not self.queue:
            if self.pending:
                return WAIT  # the next sweep starts from the best of this one
            self._next_batch()
            if not self.queue:
                return EXHAUSTED
        params = self.queue.pop(0)
        self.seen.add(config_key(params))
        self.pending[trial_id] = params
        return Suggestion(params)

    def tell(self, trial_id: str, result: TrialResult) -> None:
        params = self.pending.pop(trial_id, None)
        if params is not None:
            self._record(result, params)

    def _record(self, result: TrialResult, params: dict[str, Any]) -> None:
        if result.value is None:
            return
        score = self.objectives.primary.normalized(result.value)
        if self.best_score is None or score > self.best_score:
            self.best_score, self.best = score, dict(params)

    def restore(self, records: Sequence[TrialRecord]) -> None:
        for r in records:
            self.seen.add(config_key(r.params))
            if r.result is None:
                self.pending[r.trial_id] = dict(r.params)
            else:
                self._record(r.result, dict(r.params))
