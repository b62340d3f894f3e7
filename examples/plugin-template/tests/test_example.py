from __future__ import annotations

from typing import Any

import pytest

from hyperscout import (
    JobStatus,
    Objective,
    ObjectiveSet,
    SearchSpace,
    StudySettings,
    Suggestion,
    TrialRecord,
    TrialResult,
    UniformIntegerParameterRange,
    UniformParameterRange,
    UnsupportedError,
)
from hyperscout.testing import StrategyTestSuite, drive, synthetic_value
from hyperscout_example import CoordinateDescent

LOSS = ObjectiveSet((Objective("val", "loss", "min"),))


class TestConformance(StrategyTestSuite):
    """The core's conformance kit: every test of StrategyTestSuite runs against CoordinateDescent."""

    strategy_class = CoordinateDescent
    strategy_options = {"sweeps": 2}

    # Coordinate descent sweeps every value, so it only takes finite ranges: the kit's continuous
    # samples are left out, and its continuous test spaces get a step_size.
    @classmethod
    def supported_ranges(cls):  # type: ignore[no-untyped-def]
        return [p for p in super().supported_ranges() if p.is_finite]

    def make(self, space, *, seed=0, objectives=None, **settings):  # type: ignore[no-untyped-def]
        finite = SearchSpace(tuple(p if p.is_finite else UniformParameterRange(p.name, 0.0, 1.0, step_size=0.1)
                                   for p in space.parameters))
        return super().make(finite, seed=seed, objectives=objectives, **settings)


def make(space: SearchSpace, seed: int | None = 0, **options: Any) -> CoordinateDescent:
    settings = StudySettings(seed=seed)
    CoordinateDescent.check(space, LOSS, settings, options)
    return CoordinateDescent(space, LOSS, settings, **options)


def completed(params: dict[str, Any]) -> TrialResult:
    value = synthetic_value(params)
    return TrialResult(JobStatus.COMPLETED, (value,), 3, ((3, value),))


SPACE = SearchSpace((UniformIntegerParameterRange("a", 1, 4), UniformIntegerParameterRange("b", 1, 4),
                     UniformIntegerParameterRange("c", 1, 4)))


def test_registered_through_the_entry_point(hyperscout_plugin_manager) -> None:  # type: ignore[no-untyped-def]
    # The fixture (from the core's pytest plugin) loads the installed `hyperscout` entry points.
    found: dict[str, type] = {}
    hyperscout_plugin_manager.hook.hyperscout_register_strategies(
        register=lambda cls, name=None: found.setdefault(name or cls.name, cls))
    assert found.get("example") is CoordinateDescent


def test_sweeps_each_parameter_once() -> None:
    space = SearchSpace((UniformIntegerParameterRange("a", 1, 3), UniformIntegerParameterRange("b", 1, 3)))
    got = drive(make(space), 100)
    # every a around a random start, then the two other b values around the best a
    assert len(got) == 5
    assert len({s.params["b"] for s in got[:3]}) == 1 and len({s.params["a"] for s in got[3:]}) == 1


def test_the_start_point_comes_from_the_seed() -> None:
    starts = {tuple(drive(make(SPACE, seed=seed), 1)[0].params.values()) for seed in range(10)}
    assert len(starts) > 1
    assert drive(make(SPACE, seed=4), 20) == drive(make(SPACE, seed=4), 20)


def test_moves_to_the_best_value() -> None:
    space = SearchSpace((UniformIntegerParameterRange("a", 0, 9), UniformIntegerParameterRange("b", 0, 9)))
    s = make(space)
    for i in range(20):
        answer = s.ask(f"t{i}")
        if not isinstance(answer, Suggestion):
            break
        p = answer.params
        s.tell(f"t{i}", TrialResult(JobStatus.COMPLETED, ((p["a"] - 3) ** 2 + (p["b"] - 7) ** 2,), 1))
    assert s.best == {"a": 3, "b": 7}


@pytest.mark.parametrize("result", [
    TrialResult(JobStatus.PRUNED, None, 1, ((1, -100.0),)),
    TrialResult(JobStatus.ABORTED, None, 2, ((2, -100.0),), reason="exceeded time_limit_per_job"),
    TrialResult(JobStatus.ABORTED, None, 2, ((2, -100.0),), interrupted=True, reason="interrupted"),
    TrialResult(JobStatus.FAILED, None, None, (), reason="exit code 1"),
])
def test_only_completed_results_move_the_best(result: TrialResult) -> None:
    s = make(SPACE)
    start = dict(s.best)
    first = s.ask("t0")
    s.tell("t0", result)
    assert s.best == start and s.best_score is None
    assert s.ask("t1") != first  # told, so not pending, and never suggested again


def test_resume_continues_where_it_stopped() -> None:
    """restore() replays the store: the resumed study suggests what the uninterrupted one would."""
    whole = [s.params for s in drive(make(SPACE, seed=9, sweeps=2), 1000)]
    k = len(whole) // 2
    records = [TrialRecord(f"old{i}", p, completed(p)) for i, p in enumerate(whole[:k - 1])]
    records.append(TrialRecord("rerun", whole[k - 1], None))  # interrupted, being run again now
    resumed = make(SPACE, seed=9, sweeps=2)
    resumed.restore(records)
    resumed.tell("rerun", completed(whole[k - 1]))
    rest = [s.params for s in drive(resumed, 1000)]
    assert whole[:k] + rest == whole


def test_resume_with_another_seed_never_repeats() -> None:
    first = [s.params for s in drive(make(SPACE, seed=1), 1000)]
    resumed = make(SPACE, seed=2)
    resumed.restore([TrialRecord(f"old{i}", p, completed(p)) for i, p in enumerate(first)])
    again = [s.params for s in drive(resumed, 1000)]
    assert not [p for p in again if p in first]


def test_records_off_the_replayed_path_are_never_repeated() -> None:
    fresh = make(SPACE, seed=2)
    later = [{**fresh.best, "a": v} for v in (2, 3, 4)]  # say, run by an older version of the plugin
    fresh.restore([TrialRecord(f"old{i}", p, completed(p)) for i, p in enumerate(later)])
    got = [s.params for s in drive(fresh, 1000)]
    assert got and not [p for p in got if p in later]


def test_continuous_ranges_and_bad_options_are_refused_before_any_job() -> None:
    with pytest.raises(UnsupportedError, match="step_size"):
        CoordinateDescent.check(SearchSpace((UniformParameterRange("u", 0.0, 1.0),)), LOSS, StudySettings(), {})
    with pytest.raises(UnsupportedError, match="sweeps"):
        make(SPACE, sweeps=0)
