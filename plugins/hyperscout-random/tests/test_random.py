from __future__ import annotations

import random

from hyperscout import DiscreteParameterRange, SearchSpace, UniformIntegerParameterRange, UniformParameterRange
from hyperscout.objective import Objective, ObjectiveSet
from hyperscout.plugins import strategies
from hyperscout.strategy import EXHAUSTED, StudySettings, Suggestion, TrialRecord
from hyperscout.testing import StrategyTestSuite, drive
from hyperscout_random import RandomSearch

OBJ = ObjectiveSet((Objective("val", "loss", "min"),))


class TestRandomConformance(StrategyTestSuite):
    strategy_class = RandomSearch


def test_discovery_through_the_real_entry_point() -> None:
    reg = strategies()
    assert reg.get("random") is RandomSearch
    assert reg.get("RandomSearch") is RandomSearch
    entry = reg.entries["random"]
    assert entry.distribution == "hyperscout-random"


def test_finite_space_is_covered_exactly_then_exhausted() -> None:
    space = SearchSpace((UniformIntegerParameterRange("a", 1, 3), DiscreteParameterRange("b", ["x", "y"])))
    s = RandomSearch(space, OBJ, StudySettings(seed=1))
    got = [s.ask(f"t{i}") for i in range(7)]
    configs = [tuple(sorted(g.params.items())) for g in got[:6]]
    assert len(set(configs)) == 6 == space.size()
    assert got[6] is EXHAUSTED


def test_stepped_float_range_samples_its_max() -> None:
    # ClearML never samples max_value of a stepped float range; we do.
    space = SearchSpace((UniformParameterRange("a", 0.0, 1.0, step_size=0.5),))
    s = RandomSearch(space, OBJ, StudySettings(seed=3))
    values = sorted(s.ask(str(i)).params["a"] for i in range(3))  # type: ignore[union-attr]
    assert values == [0.0, 0.5, 1.0]


def test_seed_changes_the_sequence() -> None:
    space = SearchSpace((UniformParameterRange("a", 0.0, 1.0),))
    a = [x.params for x in drive(RandomSearch(space, OBJ, StudySettings(seed=1)), 5)]
    b = [x.params for x in drive(RandomSearch(space, OBJ, StudySettings(seed=2)), 5)]
    assert a != b


def test_restore_never_repeats_a_configuration() -> None:
    space = SearchSpace((UniformIntegerParameterRange("a", 0, 9),))
    first = RandomSearch(space, OBJ, StudySettings(seed=0))
    done = [first.ask(str(i)) for i in range(6)]
    second = RandomSearch(space, OBJ, StudySettings(seed=0))
    second.restore([TrialRecord(str(i), d.params, None) for i, d in enumerate(done) if isinstance(d, Suggestion)])
    rest = []
    while isinstance(answer := second.ask("x"), Suggestion):
        rest.append(answer.params["a"])
    assert sorted(rest + [d.params["a"] for d in done]) == list(range(10))  # type: ignore[union-attr]


def test_continuous_space_draws_are_uniform() -> None:
    space = SearchSpace((UniformParameterRange("a", 0.0, 1.0),))
    s = RandomSearch(space, OBJ, StudySettings(seed=random.randrange(1000)))
    values = [s.ask(str(i)).params["a"] for i in range(2000)]  # type: ignore[union-attr]
    assert 0.45 < sum(values) / len(values) < 0.55
    assert min(values) >= 0.0 and max(values) <= 1.0
