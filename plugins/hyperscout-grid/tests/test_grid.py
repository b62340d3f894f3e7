from __future__ import annotations

import pytest

from hyperscout import (
    DiscreteParameterRange,
    LogUniformParameterRange,
    ParameterSet,
    SearchSpace,
    UniformIntegerParameterRange,
    UniformParameterRange,
)
from hyperscout.errors import UnsupportedError
from hyperscout.objective import Objective, ObjectiveSet
from hyperscout.plugins import strategies
from hyperscout.strategy import EXHAUSTED, StudySettings, Suggestion, TrialRecord
from hyperscout.testing import StrategyTestSuite
from hyperscout.testing.strategy_suite import SAMPLE_RANGES
from hyperscout_grid import GridSearch

OBJ = ObjectiveSet((Objective("val", "loss", "min"),))


class TestGridConformance(StrategyTestSuite):
    strategy_class = GridSearch

    @classmethod
    def supported_ranges(cls):  # type: ignore[no-untyped-def]
        # a grid needs finite ranges: the continuous samples are covered by the refusal test below
        return [p for kind in SAMPLE_RANGES.values() for p in kind if p.is_finite]

    def make(self, space, *, seed=0, objectives=None, **settings):  # type: ignore[no-untyped-def]
        finite = SearchSpace(tuple(p if p.is_finite else UniformParameterRange(p.name, 0.0, 1.0, step_size=0.1)
                                   for p in space.parameters))
        return super().make(finite, seed=seed, objectives=objectives, **settings)


def _all(space: SearchSpace, **kw: object) -> list[dict]:
    s = GridSearch(space, OBJ, StudySettings(seed=0), **kw)  # type: ignore[arg-type]
    out = []
    while isinstance(a := s.ask("t"), Suggestion):
        out.append(a.params)
    assert a is EXHAUSTED
    return out


def test_discovery_through_the_real_entry_point() -> None:
    assert strategies().get("grid") is GridSearch
    assert strategies().get("GridSearch") is GridSearch


def test_documented_order_last_parameter_fastest() -> None:
    space = SearchSpace((UniformIntegerParameterRange("a", 1, 2), DiscreteParameterRange("b", ["x", "y", "z"])))
    assert _all(space) == [
        {"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 1, "b": "z"},
        {"a": 2, "b": "x"}, {"a": 2, "b": "y"}, {"a": 2, "b": "z"},
    ]


def test_the_seed_example_grid() -> None:
    space = SearchSpace((
        UniformIntegerParameterRange("layer_1", min_value=128, max_value=512, step_size=128),
        UniformIntegerParameterRange("layer_2", min_value=128, max_value=512, step_size=128),
        DiscreteParameterRange("batch_size", values=[96, 128, 160]),
        DiscreteParameterRange("epochs", values=[30]),
    ))
    configs = _all(space)
    assert len(configs) == 4 * 4 * 3 == len({tuple(sorted(c.items())) for c in configs})


def test_include_max_value_and_log_grid() -> None:
    assert [c["a"] for c in _all(SearchSpace((UniformParameterRange("a", 0, 1, step_size=0.25),)))] == [0, 0.25, 0.5, 0.75, 1.0]
    assert [c["a"] for c in _all(SearchSpace((UniformParameterRange("a", 0, 1, step_size=0.25, include_max_value=False),)))] == [0, 0.25, 0.5, 0.75]
    assert [c["lr"] for c in _all(SearchSpace((LogUniformParameterRange("lr", -3, -1, step_size=1),)))] == [0.001, 0.01, 0.1]


def test_parameter_set_enumerates_each_combination() -> None:
    ps = ParameterSet([{"m": "a", "k": UniformIntegerParameterRange("k", 1, 2)}, {"m": "b"}])
    assert _all(SearchSpace((ps,))) == [{"m": "a", "k": 1}, {"m": "a", "k": 2}, {"m": "b"}]


def test_continuous_range_without_step_is_refused() -> None:
    with pytest.raises(UnsupportedError, match=r"continuous parameter 'lr'.*step_size"):
        GridSearch(SearchSpace((UniformParameterRange("lr", 0.0, 1.0),)), OBJ, StudySettings())


def test_shuffle_is_seeded_and_complete() -> None:
    space = SearchSpace((UniformIntegerParameterRange("a", 0, 9),))
    a = _all(space, shuffle=True)
    assert sorted(c["a"] for c in a) == list(range(10)) and a != _all(space)


def test_restore_skips_done_configurations() -> None:
    space = SearchSpace((UniformIntegerParameterRange("a", 0, 4),))
    s = GridSearch(space, OBJ, StudySettings())
    s.restore([TrialRecord("x", {"a": 0}, None), TrialRecord("y", {"a": 3}, None)])
    rest = []
    while isinstance(ans := s.ask("t"), Suggestion):
        rest.append(ans.params["a"])
    assert rest == [1, 2, 4]
