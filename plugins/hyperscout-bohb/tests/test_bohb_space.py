"""Every supported range maps onto ConfigSpace and comes back inside its bounds, also from the model."""

from __future__ import annotations

import math

import pytest
from bohb_helpers import MIN, completed, run, settings
from ConfigSpace import CategoricalHyperparameter, UniformFloatHyperparameter, UniformIntegerHyperparameter

from hyperscout.errors import UnsupportedError
from hyperscout.params import (
    DiscreteParameterRange,
    LogUniformParameterRange,
    ParameterSet,
    SearchSpace,
    UniformIntegerParameterRange,
    UniformParameterRange,
)
from hyperscout_bohb import Hyperband, OptimizerBOHB

RANGES = [
    UniformParameterRange("u", -2.0, 3.0),
    UniformParameterRange("u_open", 0.0, 1.0, include_max_value=False),
    UniformParameterRange("u_step", 0.0, 1.0, step_size=0.25),
    UniformParameterRange("u_step_open", 0.0, 1.0, step_size=0.3, include_max_value=False),
    LogUniformParameterRange("lr", -5, -1),
    LogUniformParameterRange("lr_open", -3, 0, include_max_value=False),
    LogUniformParameterRange("half", 0, 4, base=0.5, include_max_value=False),
    LogUniformParameterRange("pow2", 0, 4, base=2, step_size=1),
    UniformIntegerParameterRange("layers", 1, 6),
    UniformIntegerParameterRange("width", 128, 512, step_size=128),
    UniformIntegerParameterRange("odd", 1, 10, step_size=3, include_max_value=False),
    DiscreteParameterRange("opt", ["adam", "sgd", "rmsprop"]),
    DiscreteParameterRange("mixed", [1, "one", True, 2.5, None]),
    DiscreteParameterRange("only", ["fixed"]),
    UniformParameterRange("single_point", 0.0, 1.0, step_size=2.0, include_max_value=False),
]
SPACE = SearchSpace(tuple(RANGES))
STEPPED = {p.name: p.points() for p in RANGES if getattr(p, "step_size", None) and not isinstance(p, UniformIntegerParameterRange)}


def _loss(params, budget):  # type: ignore[no-untyped-def]
    # something the model can learn from: small u, small lr, "adam"
    return abs(params["u"]) + abs(math.log10(params["lr"]) + 3) + (params["opt"] != "adam") + 1.0 / budget


def test_each_range_has_the_documented_encoding() -> None:
    s = OptimizerBOHB(SPACE, MIN, settings(seed=0))
    cs = s.mapping.configspace
    kinds = {name: type(cs[name]) for name in cs}
    assert kinds["u"] is UniformFloatHyperparameter and not cs["u"].log
    assert kinds["lr"] is UniformFloatHyperparameter and cs["lr"].log
    assert math.isclose(cs["lr"].lower, 1e-5) and math.isclose(cs["lr"].upper, 0.1)
    assert math.isclose(cs["half"].lower, 0.0625) and math.isclose(cs["half"].upper, 1.0)  # base < 1: swapped
    assert kinds["layers"] is UniformIntegerHyperparameter and (cs["layers"].lower, cs["layers"].upper) == (1, 6)
    for name, n in [("u_step", 5), ("u_step_open", 4), ("pow2", 5), ("width", 4), ("odd", 3)]:
        assert kinds[name] is UniformIntegerHyperparameter  # an ordered index into points()
        assert (cs[name].lower, cs[name].upper) == (0, n - 1)
    assert kinds["opt"] is CategoricalHyperparameter and list(cs["opt"].choices) == [0, 1, 2]
    assert list(cs["mixed"].choices) == [0, 1, 2, 3, 4]
    assert "only" not in cs and "single_point" not in cs  # single values are not searched


@pytest.mark.parametrize("cls", [OptimizerBOHB, Hyperband])
def test_samples_stay_in_bounds_including_model_based_ones(cls) -> None:  # type: ignore[no-untyped-def]
    # 13 searched dimensions: BOHB fits a model once a budget holds 2 * 14 results (job 69 here)
    s = cls(SPACE, MIN, settings(seed=3))
    jobs = run(s, 100, outcome=completed(_loss)).jobs
    assert len(jobs) == 100
    for job in jobs:
        params = job.params
        assert set(params) == set(SPACE.names)
        for p in RANGES:
            v = params[p.name]
            assert p.contains(v), f"{p.name}={v!r} is outside {p}"
            if p.name in STEPPED:
                assert v in STEPPED[p.name]  # exactly a grid point, no float noise
        assert params["u_open"] < 1.0 and params["lr_open"] < 1.0 and params["half"] > 0.0625
        assert isinstance(params["layers"], int) and isinstance(params["width"], int)
        assert params["mixed"] in [1, "one", True, 2.5, None]
        assert params["only"] == "fixed" and params["single_point"] == 0.0
    mixed = {repr(j.params["mixed"]) for j in jobs}
    assert {"True", "1"} <= mixed or len(mixed) >= 3  # True and 1 stay distinct values
    if cls is OptimizerBOHB:
        assert s.driver.generator.kde_models, "100 jobs should have given BOHB a model"
        assert s.driver.picks["model"] > 0, "some configurations should come from the model"


def test_discrete_values_keep_their_type() -> None:
    space = SearchSpace((DiscreteParameterRange("v", [1, True, "1", 1.5]), UniformParameterRange("x", 0, 1)))
    seen = set()
    outcome = completed(lambda p, b: p["x"] + 1.0 / b)
    for job in run(Hyperband(space, MIN, settings(seed=1)), 40, outcome=outcome).jobs:
        seen.add((type(job.params["v"]).__name__, job.params["v"]))
    assert seen == {("int", 1), ("bool", True), ("str", "1"), ("float", 1.5)}


def test_parameter_set_is_refused_with_a_one_line_error() -> None:
    space = SearchSpace((ParameterSet([{"model": "a", "alpha": UniformParameterRange("alpha", 0, 1)}, {"model": "b"}]),))
    with pytest.raises(UnsupportedError) as info:
        OptimizerBOHB.check(space, MIN, settings(), {})
    msg = str(info.value)
    assert "ParameterSet" in msg and "bohb" in msg and "\n" not in msg


def test_a_space_of_fixed_values_still_runs() -> None:
    space = SearchSpace((DiscreteParameterRange("only", ["x"]),))
    jobs = run(OptimizerBOHB(space, MIN, settings(seed=0)), 15, outcome=completed(lambda p, b: 1.0 / b)).jobs
    assert [j.params for j in jobs] == [{"only": "x"}] * 15
