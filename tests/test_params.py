from __future__ import annotations

import json
import random

import pytest

from hyperscout import (
    DiscreteParameterRange,
    LogUniformParameterRange,
    Parameter,
    ParameterError,
    ParameterSet,
    SearchSpace,
    UniformIntegerParameterRange,
    UniformParameterRange,
)


def test_stepped_float_range_includes_max_in_samples_and_grid() -> None:
    p = UniformParameterRange("a", 0.0, 1.0, step_size=0.25)
    assert [d["a"] for d in p.to_list()] == [0.0, 0.25, 0.5, 0.75, 1.0]
    rng = random.Random(0)
    assert {p.get_value(rng)["a"] for _ in range(200)} == {0.0, 0.25, 0.5, 0.75, 1.0}


def test_include_max_value_false_excludes_max_everywhere() -> None:
    p = UniformParameterRange("a", 0.0, 1.0, step_size=0.25, include_max_value=False)
    assert [d["a"] for d in p.to_list()] == [0.0, 0.25, 0.5, 0.75]
    rng = random.Random(0)
    assert max(p.get_value(rng)["a"] for _ in range(200)) == 0.75
    q = UniformParameterRange("b", 0.0, 1.0, include_max_value=False)
    assert all(q.get_value(rng)["b"] < 1.0 for _ in range(500))


def test_step_larger_than_range_still_gives_both_ends() -> None:
    p = UniformParameterRange("a", 0.0, 1.0, step_size=1.0)
    assert [d["a"] for d in p.to_list()] == [0.0, 1.0]
    assert [d["a"] for d in UniformParameterRange("a", 0.0, 1.0, step_size=5.0).to_list()] == [0.0, 1.0]


def test_float_grid_has_no_binary_noise() -> None:
    assert [d["a"] for d in UniformParameterRange("a", 0.0, 1.0, step_size=0.1).to_list()][3] == 0.3


def test_continuous_range_has_no_grid() -> None:
    with pytest.raises(ParameterError, match="'lr' is continuous"):
        UniformParameterRange("lr", 0.0, 1.0).to_list()


def test_log_range_bounds_are_exponents() -> None:
    p = LogUniformParameterRange("lr", -5, -1)
    rng = random.Random(1)
    values = [p.get_value(rng)["lr"] for _ in range(500)]
    assert all(1e-5 <= v <= 1e-1 for v in values)
    assert sum(v < 1e-3 for v in values) > 150  # log-uniform: half the draws below the middle exponent
    assert [d["lr"] for d in LogUniformParameterRange("lr", -3, -1, step_size=1).to_list()] == [0.001, 0.01, 0.1]
    assert LogUniformParameterRange("x", 0, 3, base=2, step_size=1).points() == [1.0, 2.0, 4.0, 8.0]
    assert not isinstance(p, UniformParameterRange)  # a plugin can never mistake it for a linear range


def test_integer_range_as_in_the_seed() -> None:
    p = UniformIntegerParameterRange("layer_1", min_value=128, max_value=512, step_size=128)
    assert p.points() == [128, 256, 384, 512]
    assert UniformIntegerParameterRange("a", 1, 10, step_size=4).points() == [1, 5, 9, 10]
    assert UniformIntegerParameterRange("a", 1, 10, step_size=4, include_max_value=False).points() == [1, 5, 9]
    rng = random.Random(0)
    assert {p.get_value(rng)["layer_1"] for _ in range(100)} == {128, 256, 384, 512}


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: UniformParameterRange("lr", 1.0, 0.5), "parameter 'lr': min_value=1 must be below max_value=0.5"),
        (lambda: UniformParameterRange("lr", 0.5, 0.5), "must be below"),
        (lambda: UniformParameterRange("lr", 0, 1, step_size=0), "step_size=0 must be > 0"),
        (lambda: UniformParameterRange("lr", 0, 1, step_size=-1), "must be > 0"),
        (lambda: UniformParameterRange("lr", "a", 1), "min_value='a' is not a number"),
        (lambda: UniformParameterRange("lr", 0, float("inf")), "must be finite"),
        (lambda: UniformIntegerParameterRange("n", 1.5, 3), "min_value=1.5 must be an integer"),
        (lambda: UniformIntegerParameterRange("n", 5, 1), "'n': min_value=5 must be below max_value=1"),
        (lambda: UniformIntegerParameterRange("n", 1, 5, step_size=0), "step_size=0 must be >= 1"),
        (lambda: LogUniformParameterRange("lr", -3, -1, base=1), "base=1 must be > 0 and != 1"),
        (lambda: DiscreteParameterRange("opt", []), "'opt': values is empty"),
        (lambda: DiscreteParameterRange("opt", "adam"), "must be a list"),
        (lambda: UniformParameterRange("", 0, 1), "name '' must be a non-empty string"),
        (lambda: ParameterSet([]), "parameter_combinations is empty"),
        (lambda: SearchSpace((DiscreteParameterRange("a", [1]), DiscreteParameterRange("a", [2]))),
         "parameter 'a' is declared twice"),
        (lambda: SearchSpace(()), "search space is empty"),
    ],
)
def test_bad_ranges_fail_when_built_with_a_one_line_message(build, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ParameterError) as info:
        build()
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_parameter_set_uses_the_dict_key_as_name() -> None:
    # ClearML uses the nested range's own name and ignores the key; the key is what users mean.
    ps = ParameterSet([{"opt1": UniformParameterRange("arg1", 0, 1, step_size=0.5)}])
    assert ps.to_list() == [{"opt1": 0.0}, {"opt1": 0.5}, {"opt1": 1.0}]
    assert set(ps.get_value(random.Random(0))) == {"opt1"}
    assert ps.contains({"opt1": 0.5}) and not ps.contains({"opt1": 2})


def test_json_round_trip_of_every_type_in_the_clearml_cli_form() -> None:
    ranges = [
        UniformParameterRange("a", 0, 1, step_size=0.5, include_max_value=False),
        LogUniformParameterRange("b", -4, -1, base=2),
        UniformIntegerParameterRange("c", 1, 9, step_size=2),
        DiscreteParameterRange("d", ["x", 1, True]),
        ParameterSet([{"e": 1, "f": UniformIntegerParameterRange("f", 1, 3)}, {"e": 2}]),
    ]
    for p in ranges:
        text = json.dumps(p.to_dict())
        assert Parameter.from_dict(json.loads(text)) == p
    assert ranges[0].to_dict() == {"type": "UniformParameterRange", "name": "a", "min_value": 0.0, "max_value": 1.0,
                                   "step_size": 0.5, "include_max_value": False}


def test_from_dict_accepts_clearml_spellings_and_rejects_unknown_keys() -> None:
    spec = {"name": "General/lr", "type": "UniformParameterRange", "min_value": 0.1, "max_value": 0.5,
            "include_max": False}
    assert Parameter.from_dict(spec) == UniformParameterRange("General/lr", 0.1, 0.5, include_max_value=False)
    with pytest.raises(ParameterError, match="unknown key 'mn_value'"):
        Parameter.from_dict({"name": "x", "type": "UniformParameterRange", "mn_value": 0, "max_value": 1})
    with pytest.raises(ParameterError, match="unknown type 'Uniform'; use one of"):
        Parameter.from_dict({"name": "x", "type": "Uniform"})
    with pytest.raises(ParameterError, match="values is empty"):
        Parameter.from_dict({"name": "x", "type": "DiscreteParameterRange"})


def test_space_grid_order_and_size() -> None:
    space = SearchSpace.of([UniformIntegerParameterRange("a", 1, 2), {"name": "b", "type": "DiscreteParameterRange",
                                                                        "values": ["x", "y"]}])
    assert list(space.grid()) == [{"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 2, "b": "x"}, {"a": 2, "b": "y"}]
    assert space.size() == 4
    assert SearchSpace.of([UniformParameterRange("u", 0, 1)]).size() is None
