"""Coordinate descent over a finite search space: a small, complete strategy to copy.

Start from a random grid point (drawn with ``self.rng``, so a seeded study repeats itself). Then,
one parameter at a time, try every value of that parameter with the others held at the best
configuration so far, and move to the best one before sweeping the next parameter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

# Only top-level names: everything a strategy needs is exported by the `hyperscout` package.
from hyperscout import (
    EXHAUSTED,
    WAIT,
    DiscreteParameterRange,
    JobStatus,
    LogUniformParameterRange,
    ObjectiveSet,
    SearchSpace,
    SearchStrategy,
    Signal,
    StudySettings,
    Suggestion,
    TrialRecord,
    TrialResult,
    UniformIntegerParameterRange,
    UniformParameterRange,
    UnsupportedError,
    config_key,
)

__all__ = ["CoordinateDescent"]

Config = dict[str, Any]


class CoordinateDescent(SearchStrategy):
    """Sweep one parameter at a time around the best configuration so far.

    Options (keyword-only arguments; ``[strategy.options]`` in a study file):

    * ``sweeps``: how many passes over all the parameters (default 1).

    Only the primary objective is used (``supports_multi_objective`` keeps its default, False).
    """

    #: the name users select (`[strategy] name = ...`, `optimizer_class=...`); unique among installed strategies
    name = "example"
    # ParameterSet is left out on purpose: the engine refuses it before any job starts.
    supported_parameters = (UniformParameterRange, LogUniformParameterRange, UniformIntegerParameterRange,
                            DiscreteParameterRange)

    @classmethod
    def check(cls, space: SearchSpace, objectives: ObjectiveSet, settings: StudySettings,
              options: Mapping[str, Any]) -> None:
        """Refuse continuous ranges too: a sweep needs every value (the engine calls this first)."""
        super().check(space, objectives, settings, options)
        for p in space.parameters:
            if not p.is_finite:
                raise UnsupportedError(
                    f"strategy {cls.name!r} sweeps every value, so {p.name!r} needs a step_size; "
                    "add one, or pick another strategy"
                )

    def __init__(self, space: SearchSpace, objectives: ObjectiveSet, settings: StudySettings, *,
                 sweeps: int = 1) -> None:
        super().__init__(space, objectives, settings)  # sets self.space, .objectives, .settings, .rng
        if not isinstance(sweeps, int) or sweeps < 1:
            raise UnsupportedError(f"strategy {self.name!r}: option sweeps={sweeps!r} must be an integer >= 1")
        self.sweeps = sweeps
        self.values = {p.name: [d[p.name] for d in p.to_list()] for p in space.parameters}
        self.names = list(self.values)
        # self.rng is a random.Random seeded from settings.seed: the only randomness to use.
        self.best: Config = {n: self.rng.choice(v) for n, v in self.values.items()}
        self.best_score: float | None = None
        self.seen: set[str] = set()  # config_key of every configuration suggested or restored
        self.queue: list[Config] = []  # the rest of the current sweep
        self.position = 0  # parameters swept so far, counted over all passes
        self.pending: dict[str, Config] = {}  # trial_id -> params: suggested, result not told yet

    # -- the contract ---------------------------------------------------------------------------
    def ask(self, trial_id: str) -> Suggestion | Signal:
        params = self._peek()
        if isinstance(params, Signal):  # WAIT or EXHAUSTED
            return params
        self.queue.pop(0)
        self.seen.add(config_key(params))
        self.pending[trial_id] = params
        return Suggestion(params)

    def tell(self, trial_id: str, result: TrialResult) -> None:
        params = self.pending.pop(trial_id, None)
        if params is not None:
            self._learn(params, result)

    def restore(self, records: Sequence[TrialRecord]) -> None:
        """Replay the store: walk the sweeps as the first run did, answering from the records.

        With the same seed, a resumed study then suggests exactly what the uninterrupted one
        would have. A record with ``result is None`` is being re-run under ``record.trial_id``:
        it stays pending, and its result arrives through :meth:`tell`.
        """
        stored: dict[str, list[TrialRecord]] = {}
        for r in records:
            stored.setdefault(config_key(r.params), []).append(r)
        while not isinstance(params := self._peek(), Signal) and config_key(params) in stored:
            self.queue.pop(0)
            self.seen.add(config_key(params))
            for r in stored.pop(config_key(params)):
                self._settle(r, params)
        # Records off that path (another seed, other options): learn from them, never repeat them.
        for rs in stored.values():
            for r in rs:
                self.seen.add(config_key(r.params))
                self._settle(r, dict(r.params))
        self.queue = [c for c in self.queue if config_key(c) not in self.seen]

    # -- the search -----------------------------------------------------------------------------
    def _peek(self) -> Config | Signal:
        """The next configuration of the current sweep (not taken yet), or ``WAIT`` / ``EXHAUSTED``."""
        if not self.queue:
            if self.pending:
                return WAIT  # the next sweep starts from the best of this one: wait for its results
            while not self.queue and self.position < self.sweeps * len(self.names):
                name = self.names[self.position % len(self.names)]
                self.position += 1
                self.queue = [c for v in self.values[name] if config_key(c := {**self.best, name: v}) not in self.seen]
            if not self.queue:
                return EXHAUSTED
        return self.queue[0]

    def _settle(self, record: TrialRecord, params: Config) -> None:
        """One stored trial: a finished one is learned from, a re-run one is pending again."""
        if record.result is None:
            self.pending[record.trial_id] = params
        else:
            self._learn(params, record.result)

    def _learn(self, params: Config, result: TrialResult) -> None:
        # The outcome rule (TrialResult): only a completed trial has a final value. Pruned,
        # aborted, failed and interrupted trials teach nothing here; an interrupted one is re-run
        # on resume and told again then.
        if result.status is not JobStatus.COMPLETED or result.values is None:
            return
        score = self.objectives.primary.normalized(result.values[0])  # higher is better
        if self.best_score is None or score > self.best_score:
            self.best_score, self.best = score, dict(params)
