"""Conformance suite for search strategies.

A strategy's tests subclass :class:`StrategyTestSuite` and name the class under test::

    from hyperscout.testing import StrategyTestSuite

    class TestMyStrategy(StrategyTestSuite):
        strategy_class = MyStrategy
        strategy_options = {"n_startup": 3}          # optional
        settings = {"max_iteration_per_job": 9}     # optional StudySettings fields

Every test drives the strategy through the public ask / report / tell / restore contract only,
with a deterministic synthetic objective, so a third-party plugin runs exactly the same checks
as the built-in ones (``pytest`` picks the tests up from the subclass).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any, ClassVar

import pytest

from hyperscout.errors import UnsupportedError
from hyperscout.job import JobStatus
from hyperscout.objective import Objective, ObjectiveSet
from hyperscout.params import (
    DiscreteParameterRange,
    LogUniformParameterRange,
    Parameter,
    ParameterSet,
    SearchSpace,
    UniformIntegerParameterRange,
    UniformParameterRange,
    config_key,
)
from hyperscout.strategy import (
    EXHAUSTED,
    WAIT,
    SearchStrategy,
    StudySettings,
    Suggestion,
    TrialRecord,
    TrialResult,
)

__all__ = ["SAMPLE_RANGES", "StrategyTestSuite", "drive", "synthetic_value"]

#: One example of every range type, keyed by type (several shapes of the float ranges).
SAMPLE_RANGES: dict[type[Parameter], list[Parameter]] = {
    UniformParameterRange: [
        UniformParameterRange("u", -2.0, 3.0),
        UniformParameterRange("us", 0.0, 1.0, step_size=0.25),
        UniformParameterRange("ux", 0.0, 1.0, step_size=0.3, include_max_value=False),
    ],
    LogUniformParameterRange: [
        LogUniformParameterRange("lr", -5, -1),
        LogUniformParameterRange("l2", 0, 4, base=2, step_size=1),
    ],
    UniformIntegerParameterRange: [
        UniformIntegerParameterRange("layers", 1, 6),
        UniformIntegerParameterRange("width", 128, 512, step_size=128),
        UniformIntegerParameterRange("odd", 1, 10, step_size=3, include_max_value=False),
    ],
    DiscreteParameterRange: [
        DiscreteParameterRange("opt", ["adam", "sgd", "rmsprop"]),
        DiscreteParameterRange("batch", [16, 32, 64]),
    ],
    ParameterSet: [
        ParameterSet([{"model": "linear", "alpha": UniformParameterRange("alpha", 0.0, 1.0)}, {"model": "tree", "depth": 3}]),
    ],
}


def synthetic_value(params: Mapping[str, Any]) -> float:
    """A deterministic pseudo-objective of any configuration (same params, same value)."""
    numeric = sum(float(v) for v in params.values() if isinstance(v, (int, float)) and not isinstance(v, bool))
    return random.Random(config_key(params)).random() + 0.01 * abs(numeric)


def drive(strategy: SearchStrategy, n: int, *, fail_every: int = 0, concurrency: int = 1) -> list[Suggestion]:
    """Run ``n`` trials through ask/report/tell with up to ``concurrency`` outstanding at once."""
    suggestions: list[Suggestion] = []
    outstanding: list[tuple[str, Suggestion]] = []
    counter = 0
    stalls = 0

    def finish_one() -> None:
        tid, s = outstanding.pop(0)
        k = len(suggestions) - len(outstanding)
        if fail_every and k % fail_every == 0:
            strategy.tell(tid, TrialResult(JobStatus.FAILED))
            return
        value = synthetic_value(s.params)
        steps = int(s.budget) if s.budget else 3
        for it in range(1, steps + 1):
            strategy.report(tid, it, value + 1.0 / it)
        strategy.tell(tid, TrialResult(JobStatus.COMPLETED, (value,), steps, tuple((i, value + 1.0 / i) for i in range(1, steps + 1)), s.budget))

    while len(suggestions) < n:
        if len(outstanding) >= concurrency:
            finish_one()
            continue
        tid = f"t{counter}"
        counter += 1
        answer = strategy.ask(tid)
        if answer is EXHAUSTED:
            break
        if answer is WAIT:
            if not outstanding:
                stalls += 1
                assert stalls < 3, "strategy answered WAIT with no trial outstanding"
                continue
            finish_one()
            continue
        assert isinstance(answer, Suggestion), f"ask() returned {answer!r}"
        suggestions.append(answer)
        outstanding.append((tid, answer))
    while outstanding:
        finish_one()
    return suggestions


class StrategyTestSuite:
    """Subclass me; set ``strategy_class`` (and optionally ``strategy_options``, ``settings``)."""

    strategy_class: ClassVar[type[SearchStrategy]]
    strategy_options: ClassVar[dict[str, Any]] = {}
    settings: ClassVar[dict[str, Any]] = {}
    #: how many trials the generic tests run (keep it small for slow model-based strategies)
    n_trials: ClassVar[int] = 12

    # -- helpers ----------------------------------------------------------------------------
    def make(self, space: SearchSpace, *, seed: int | None = 0, objectives: ObjectiveSet | None = None,
             **settings: Any) -> SearchStrategy:
        objectives = objectives or ObjectiveSet((Objective("val", "loss", "min"),))
        merged = {"max_concurrency": 1, **self.settings, **settings, "seed": seed}
        st = StudySettings(**merged)
        self.strategy_class.check(space, objectives, st, self.strategy_options)
        return self.strategy_class(space, objectives, st, **self.strategy_options)

    @classmethod
    def supported_ranges(cls) -> list[Parameter]:
        out: list[Parameter] = []
        for kind in cls.strategy_class.supported_parameters:
            out += SAMPLE_RANGES.get(kind, [])
        return out

    def _space_for(self, p: Parameter) -> SearchSpace:
        return SearchSpace((p, UniformIntegerParameterRange("pad", 0, 3)))

    # -- the contract -----------------------------------------------------------------------
    def test_has_a_name(self) -> None:
        assert self.strategy_class.name, "set `name` on the strategy class: users select it by that name"

    def test_samples_inside_bounds_for_each_supported_type(self) -> None:
        ranges = self.supported_ranges()
        assert ranges, "the strategy declares no supported parameter types"
        for p in ranges:
            space = self._space_for(p)
            strategy = self.make(space)
            for s in drive(strategy, min(self.n_trials, 8)):
                if isinstance(p, ParameterSet):
                    subset = {k: v for k, v in s.params.items() if k in p.names}
                    assert p.contains(subset), f"{subset} is outside {p}"
                else:
                    assert p.contains(s.params[p.name]), f"{p.name}={s.params[p.name]!r} is outside {p}"
                assert set(s.params) >= {"pad"}

    def test_unsupported_types_are_refused_before_any_job(self) -> None:
        all_kinds = set(SAMPLE_RANGES)
        for kind in all_kinds - set(self.strategy_class.supported_parameters):
            space = self._space_for(SAMPLE_RANGES[kind][0])
            objectives = ObjectiveSet((Objective("val", "loss", "min"),))
            with pytest.raises(UnsupportedError) as info:
                self.strategy_class.check(space, objectives, StudySettings(**self.settings), self.strategy_options)
            assert "\n" not in str(info.value)

    def test_seeded_runs_are_reproducible(self) -> None:
        space = SearchSpace(tuple(self.supported_ranges()[:3]) or (UniformParameterRange("u", 0, 1),))
        a = [s.params for s in drive(self.make(space, seed=7), self.n_trials)]
        b = [s.params for s in drive(self.make(space, seed=7), self.n_trials)]
        assert a == b

    def test_survives_failed_trials(self) -> None:
        space = SearchSpace((UniformParameterRange("u", 0.0, 1.0), UniformIntegerParameterRange("pad", 0, 3)))
        got = drive(self.make(space), self.n_trials, fail_every=2)
        assert len(got) >= min(self.n_trials, 4)

    def test_concurrent_asks(self) -> None:
        space = SearchSpace((UniformParameterRange("u", 0.0, 1.0), UniformIntegerParameterRange("pad", 0, 3)))
        got = drive(self.make(space, max_concurrency=3), self.n_trials, concurrency=3)
        assert len(got) >= min(self.n_trials, 4)

    def test_unknown_option_is_a_one_line_error(self) -> None:
        if self.strategy_class.accepts_any_option():
            pytest.fail("strategies must declare their options as keyword-only arguments, not **kwargs")
        space = SearchSpace((UniformParameterRange("u", 0.0, 1.0),))
        objectives = ObjectiveSet((Objective("val", "loss", "min"),))
        with pytest.raises(UnsupportedError) as info:
            self.strategy_class.check(space, objectives, StudySettings(**self.settings),
                                      {**self.strategy_options, "no_such_option_xyz": 1})
        assert "no_such_option_xyz" in str(info.value) and "\n" not in str(info.value)

    def test_restore_accepts_history_and_pending_trials(self) -> None:
        space = SearchSpace((UniformParameterRange("u", 0.0, 1.0), UniformIntegerParameterRange("pad", 0, 3)))
        first = self.make(space)
        done = drive(first, 4)
        records = [
            TrialRecord(f"old{i}", s.params, TrialResult(JobStatus.COMPLETED, (synthetic_value(s.params),), 3), s.budget)
            for i, s in enumerate(done)
        ]
        records.append(TrialRecord("old-failed", done[0].params, TrialResult(JobStatus.FAILED), None))
        records.append(TrialRecord("rerun", done[-1].params, None, done[-1].budget))
        second = self.make(space)
        second.restore(records)
        second.tell("rerun", TrialResult(JobStatus.COMPLETED, (0.5,), 3))
        more = drive(second, 3)
        for s in more:
            assert 0.0 <= s.params["u"] <= 1.0

    # -- the outcome rule (TrialResult's table) and real state ------------------------------------
    def _int_space(self) -> SearchSpace:
        # finite (so grid-like strategies take it) but far too large to repeat by chance
        return SearchSpace((UniformIntegerParameterRange("a", 0, 1000), UniformIntegerParameterRange("b", 0, 1000)))

    def test_accepts_every_outcome_of_the_rule(self) -> None:
        """Each row of TrialResult's table is told the way the engine tells it: values only when completed."""
        space = SearchSpace((UniformParameterRange("u", 0.0, 1.0), UniformIntegerParameterRange("pad", 0, 3)))
        strategy = self.make(space, max_concurrency=6)
        outcomes = [
            TrialResult(JobStatus.COMPLETED, (0.3,), 3, ((1, 0.5), (2, 0.4), (3, 0.3))),
            TrialResult(JobStatus.PRUNED, None, 1, ((1, 0.9),), reason="pruned at iteration 1"),
            TrialResult(JobStatus.ABORTED, None, 2, ((1, 0.8), (2, 0.7)), reason="exceeded time_limit_per_job"),
            TrialResult(JobStatus.ABORTED, None, 2, ((1, -1e9), (2, -1e9)), interrupted=True,
                        reason="interrupted: study stopped"),
            TrialResult(JobStatus.FAILED, None, None, (), reason="exit code 1"),
        ]
        asked = []
        for i in range(len(outcomes)):
            answer = strategy.ask(f"o{i}")
            if not isinstance(answer, Suggestion):
                break
            asked.append(f"o{i}")
        for tid, result in zip(asked, outcomes):
            strategy.tell(tid, result)
        for s in drive(strategy, 3):
            assert 0.0 <= s.params["u"] <= 1.0

    def test_resume_does_not_repeat_configurations(self) -> None:
        """``restore`` must really rebuild state: a resumed study never re-suggests what the store holds."""
        space = self._int_space()
        first = drive(self.make(space, seed=3), self.n_trials)
        records = [
            TrialRecord(f"old{i}", s.params, TrialResult(JobStatus.COMPLETED, (synthetic_value(s.params),), 3), s.budget)
            for i, s in enumerate(first)
        ]
        second = self.make(space, seed=3)
        second.restore(records)
        again = drive(second, self.n_trials)
        done = {config_key(s.params) for s in first}
        repeated = [s.params for s in again if config_key(s.params) in done]
        assert not repeated, (
            f"after restore() of {len(first)} trials the strategy suggested {repeated[0]} again: "
            "restore() must record the trials it is given"
        )

    def test_results_steer_the_search(self) -> None:
        """For a strategy that declares ``learns_from_results``, ``tell`` must change later suggestions."""
        space = SearchSpace((UniformParameterRange("x", 0.0, 1.0), UniformParameterRange("y", 0.0, 1.0)))
        if not self.make(space, seed=11).learns_from_results:  # an instance may say so (a random sampler)
            return

        def run(sign: float) -> list[dict[str, Any]]:
            strategy = self.make(space, seed=11)
            out = []
            for i in range(3 * self.n_trials):
                answer = strategy.ask(f"s{i}")
                if answer is EXHAUSTED:
                    break
                if answer is WAIT:
                    continue
                assert isinstance(answer, Suggestion)
                value = sign * (answer.params["x"] - 0.2) ** 2 + sign * (answer.params["y"] - 0.7) ** 2
                steps = int(answer.budget) if answer.budget else 3
                for it in range(1, steps + 1):
                    strategy.report(f"s{i}", it, value)
                strategy.tell(f"s{i}", TrialResult(JobStatus.COMPLETED, (value,), steps,
                                                   tuple((it, value) for it in range(1, steps + 1)), answer.budget))
                out.append(dict(answer.params))
            return out

        a, b = run(1.0), run(-1.0)
        assert a != b, (
            "the strategy suggested exactly the same configurations whether it was told good or bad "
            "values: tell() must feed the model (or set learns_from_results = False)"
        )

    def test_interrupted_results_are_forgotten(self) -> None:
        """An interrupted job says nothing about its configuration, whatever it reported before the stop."""
        space = SearchSpace((UniformParameterRange("x", 0.0, 1.0), UniformParameterRange("y", 0.0, 1.0)))

        def run(partial: float) -> list[dict[str, Any]]:
            strategy = self.make(space, seed=5, max_concurrency=2)
            out = []
            for i in range(2 * self.n_trials):
                answer = strategy.ask(f"s{i}")
                if not isinstance(answer, Suggestion):
                    break
                out.append(dict(answer.params))
                if i % 3 == 1:
                    strategy.tell(f"s{i}", TrialResult(JobStatus.ABORTED, None, 2, ((1, partial), (2, partial)),
                                                       answer.budget, interrupted=True, reason="interrupted"))
                    continue
                value = (answer.params["x"] - 0.3) ** 2
                steps = int(answer.budget) if answer.budget else 3
                strategy.tell(f"s{i}", TrialResult(JobStatus.COMPLETED, (value,), steps,
                                                   tuple((it, value) for it in range(1, steps + 1)), answer.budget))
            return out

        assert run(-1e6) == run(1e6), (
            "what an interrupted job reported changed later suggestions: an interrupted result "
            "(TrialResult.interrupted) must be ignored, it is re-run and told again on resume"
        )
