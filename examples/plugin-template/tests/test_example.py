from __future__ import annotations

from hyperscout import SearchSpace, UniformIntegerParameterRange
from hyperscout.objective import Objective, ObjectiveSet
from hyperscout.plugins import strategies
from hyperscout.strategy import StudySettings
from hyperscout.testing import StrategyTestSuite, drive
from hyperscout_example import CoordinateDescent


class TestConformance(StrategyTestSuite):
    strategy_class = CoordinateDescent

    @classmethod
    def supported_ranges(cls):  # type: ignore[no-untyped-def]
        return [p for p in super().supported_ranges() if p.is_finite]

    def make(self, space, *, seed=0, objectives=None, **settings):  # type: ignore[no-untyped-def]
        from hyperscout import UniformParameterRange

        finite = SearchSpace(tuple(p if p.is_finite else UniformParameterRange(p.name, 0.0, 1.0, step_size=0.1)
                                   for p in space.parameters))
        return super().make(finite, seed=seed, objectives=objectives, **settings)


def test_registered_through_the_entry_point() -> None:
    assert strategies().get("example") is CoordinateDescent


def test_sweeps_each_parameter_once() -> None:
    space = SearchSpace((UniformIntegerParameterRange("a", 1, 3), UniformIntegerParameterRange("b", 1, 3)))
    s = CoordinateDescent(space, ObjectiveSet((Objective("v", "l", "min"),)), StudySettings())
    got = drive(s, 100)
    assert len(got) == 5  # a in 1..3 with b=1, then b in 2..3 around the best a
