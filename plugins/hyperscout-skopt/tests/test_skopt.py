"""The skopt strategy driven through ask / tell / restore directly (no engine, no subprocess)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from hyperscout import (
    EXHAUSTED,
    DiscreteParameterRange,
    LogUniformParameterRange,
    ParameterSet,
    SearchSpace,
    StudySettings,
    Suggestion,
    TrialRecord,
    TrialResult,
    UniformIntegerParameterRange,
    UniformParameterRange,
    UnsupportedError,
)
from hyperscout.job import JobStatus
from hyperscout.objective import Objective, ObjectiveSet
from hyperscout.params import config_key
from hyperscout.plugins import strategies
from hyperscout.testing import StrategyTestSuite, drive, synthetic_value
from hyperscout_skopt import OptimizerSkopt

MIN = ObjectiveSet((Objective("val", "loss", "min"),))
MAX = ObjectiveSet((Objective("val", "accuracy", "max"),))
#: a cheap acquisition optimization (random candidates, no L-BFGS) keeps each GP fit short;
#: the direction test uses L-BFGS, the default for "gp"
FAST: dict[str, Any] = {"n_initial_points": 4, "acq_optimizer": "sampling", "acq_optimizer_kwargs": {"n_points": 300}}
LBFGS: dict[str, Any] = {"acq_optimizer": "lbfgs", "acq_optimizer_kwargs": {"n_points": 300, "n_restarts_optimizer": 2}}


def make(space: SearchSpace, objectives: ObjectiveSet = MIN, seed: int | None = 0, **options: Any) -> OptimizerSkopt:
    merged = {**FAST, **options}
    settings = StudySettings(seed=seed, max_concurrency=3)
    OptimizerSkopt.check(space, objectives, settings, merged)
    return OptimizerSkopt(space, objectives, settings, **merged)


def ok(value: float) -> TrialResult:
    return TrialResult(JobStatus.COMPLETED, (value,), 1)


def ask(s: OptimizerSkopt, tid: str) -> dict[str, Any]:
    answer = s.ask(tid)
    assert isinstance(answer, Suggestion), answer
    return dict(answer.params)


class TestSkoptConformance(StrategyTestSuite):
    strategy_class = OptimizerSkopt
    strategy_options = FAST
    n_trials = 10


def test_discovery() -> None:
    reg = strategies()
    assert reg.get("skopt") is OptimizerSkopt
    assert reg.get("OptimizerSkopt") is OptimizerSkopt  # ClearML-style class name
    assert reg.entries["skopt"].distribution == "hyperscout-skopt"


# -- mapping ----------------------------------------------------------------------------------


def _samples(p: Any, n: int = 40, **options: Any) -> list[Any]:
    """``n`` draws of one range: each trial fails at once, so every draw is a fresh initial point."""
    s = make(SearchSpace((p,)), n_initial_points=1000, **options)
    out = []
    for i in range(n):
        answer = s.ask(f"t{i}")
        if answer is EXHAUSTED:
            break
        out.append(answer.params[p.name])
        s.tell(f"t{i}", TrialResult(JobStatus.FAILED))
    return out


def test_uniform_maps_to_a_real_interval() -> None:
    p = UniformParameterRange("u", -2.0, 3.0)
    s = make(SearchSpace((p,)))
    (dim,) = s.optimizer.space.dimensions
    assert type(dim).__name__ == "Real" and dim.bounds == (-2.0, 3.0)
    values = _samples(p)
    assert all(type(v) is float and -2.0 <= v <= 3.0 for v in values)
    assert len(set(values)) == len(values)


def test_uniform_without_max_never_reaches_it() -> None:
    p = UniformParameterRange("u", 0.0, 1.0, include_max_value=False)
    (dim,) = make(SearchSpace((p,))).optimizer.space.dimensions
    assert dim.high < 1.0
    assert all(p.contains(v) for v in _samples(p))


@pytest.mark.parametrize(
    "p",
    [
        UniformParameterRange("us", 0.0, 1.0, step_size=0.25),
        UniformParameterRange("ux", 0.0, 1.0, step_size=0.3, include_max_value=False),
        LogUniformParameterRange("l2", 0, 4, base=2, step_size=1),
        UniformIntegerParameterRange("width", 128, 512, step_size=128),
        UniformIntegerParameterRange("odd", 1, 10, step_size=3, include_max_value=False),
    ],
    ids=lambda p: p.name,
)
def test_stepped_ranges_hand_out_exactly_their_points(p: Any) -> None:
    s = make(SearchSpace((p,)))
    (dim,) = s.optimizer.space.dimensions
    assert type(dim).__name__ == "Integer" and dim.bounds == (0, len(p.points()) - 1)
    values = _samples(p)
    # a finite space is covered without repeats, then the strategy is exhausted
    assert sorted(values) == sorted(p.points())
    assert all(type(v) is type(p.points()[0]) for v in values)


def test_log_uniform_maps_to_a_log_uniform_real() -> None:
    p = LogUniformParameterRange("lr", -5, -1)
    s = make(SearchSpace((p,)))
    (dim,) = s.optimizer.space.dimensions
    assert type(dim).__name__ == "Real" and dim.prior == "log-uniform" and dim.base == 10
    assert dim.low == pytest.approx(1e-5) and dim.high == pytest.approx(1e-1)
    values = _samples(p, 300)
    assert all(type(v) is float and p.contains(v) for v in values)
    # uniform in the exponent: about half the draws lie below 10**-3 (a linear prior gives ~2 %)
    below = sum(v < 1e-3 for v in values) / len(values)
    assert 0.4 < below < 0.6


def test_log_uniform_with_a_base_below_one() -> None:
    p = LogUniformParameterRange("shrink", 1, 3, base=0.5, include_max_value=False)
    values = _samples(p)
    assert values and all(p.contains(v) for v in values)
    assert all(0.125 < v <= 0.5 for v in values)


def test_integer_step_one_maps_to_integer() -> None:
    p = UniformIntegerParameterRange("layers", 1, 6)
    s = make(SearchSpace((p,)))
    (dim,) = s.optimizer.space.dimensions
    assert type(dim).__name__ == "Integer" and dim.bounds == (1, 6)
    values = _samples(p)
    assert sorted(values) == [1, 2, 3, 4, 5, 6] and all(type(v) is int for v in values)
    q = UniformIntegerParameterRange("layers", 1, 6, include_max_value=False)
    assert sorted(_samples(q)) == [1, 2, 3, 4, 5]


def test_discrete_maps_to_categorical_and_keeps_value_types() -> None:
    p = DiscreteParameterRange("mixed", [1, "a", True, 2.5, None])
    s = make(SearchSpace((p,)))
    (dim,) = s.optimizer.space.dimensions
    assert type(dim).__name__ == "Categorical"
    values = _samples(p)
    assert len(values) == 5
    for expected in p.values:
        assert any(type(v) is type(expected) and v == expected for v in values), expected


def test_single_valued_ranges_are_constants() -> None:
    space = SearchSpace((DiscreteParameterRange("opt", ["adam"]), UniformIntegerParameterRange("n", 3, 4, include_max_value=False)))
    s = make(space)
    assert s.optimizer is None
    assert ask(s, "a") == {"opt": "adam", "n": 3}
    assert s.ask("b") is EXHAUSTED
    # mixed with a searched range, the constant rides along
    s = make(SearchSpace((DiscreteParameterRange("opt", ["adam"]), UniformParameterRange("u", 0.0, 1.0))))
    assert len(s.optimizer.space.dimensions) == 1
    assert ask(s, "a")["opt"] == "adam"


def test_parameter_set_is_refused_with_one_line() -> None:
    space = SearchSpace((ParameterSet([{"model": "linear"}, {"model": "tree", "depth": 3}]),))
    with pytest.raises(UnsupportedError) as info:
        OptimizerSkopt.check(space, MIN, StudySettings(), {})
    assert "ParameterSet" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(UnsupportedError) as info:
        OptimizerSkopt(space, MIN, StudySettings())
    assert "ParameterSet" in str(info.value) and "\n" not in str(info.value)


def test_params_are_plain_python_types() -> None:
    space = SearchSpace(
        (
            UniformParameterRange("u", 0.0, 1.0),
            LogUniformParameterRange("lr", -4, -1),
            UniformIntegerParameterRange("n", 1, 9),
            UniformParameterRange("s", 0.0, 1.0, step_size=0.5),
            DiscreteParameterRange("batch", [16, 32, 64]),
        )
    )
    s = make(space)
    for s_ in drive(s, 8, concurrency=2):  # initial points and model points
        for v in s_.params.values():
            assert type(v).__module__ == "builtins", (v, type(v))


# -- objective handling -----------------------------------------------------------------------


@pytest.mark.parametrize("objectives", [MIN, MAX], ids=["min", "max"])
def test_direction_is_honoured(objectives: ObjectiveSet) -> None:
    # a bowl (min) or a hill (max) centred on 0.7: the model must walk towards 0.7
    # the defaults (gp_hedge, L-BFGS on the acquisition) with fewer candidates
    s = make(SearchSpace((UniformParameterRange("u", 0.0, 1.0),)), objectives, **LBFGS)
    sign = 1.0 if objectives.primary.sign == "min" else -1.0
    for i in range(14):
        u = ask(s, f"t{i}")["u"]
        s.tell(f"t{i}", ok(sign * (u - 0.7) ** 2))
    assert s.optimizer.yi == pytest.approx([(x[0] - 0.7) ** 2 for x in s.optimizer.Xi])  # skopt minimizes
    best = min(s.optimizer.Xi, key=lambda x: abs(x[0] - 0.7))[0]
    assert abs(best - 0.7) < 0.05


def test_failed_and_valueless_trials_are_not_told() -> None:
    s = make(SearchSpace((UniformParameterRange("u", 0.0, 1.0),)))
    for tid in ("a", "b", "c", "d", "f", "e"):
        ask(s, tid)
    s.tell("a", ok(0.5))
    s.tell("b", TrialResult(JobStatus.FAILED))
    s.tell("c", TrialResult(JobStatus.ABORTED))
    s.tell("d", ok(math.nan))
    s.tell("f", TrialResult(JobStatus.FAILED, (0.1,), 1))  # reported, then crashed
    assert len(s.optimizer.Xi) == 1 and s.optimizer.yi == [0.5]
    assert s.pending_trials == ("e",)  # the lies of b, c, d, f are forgotten
    s.tell("e", TrialResult(JobStatus.ABORTED, (0.25,), 2))  # a time-limited job is not told, value or not
    assert s.optimizer.yi == [0.5] and s.pending_trials == ()


# -- the outcome rule (TrialResult's table) -----------------------------------------------------

#: a finite space of 4 configurations, so "never suggested again" and "tried again" are observable
TINY = SearchSpace((DiscreteParameterRange("opt", ["adam", "sgd"]), UniformIntegerParameterRange("n", 0, 1)))
CURVE = ((1, 0.8), (2, 0.7))

#: results the model must not see, each as the rule sends it (``values=None``) and as an older
#: engine or a third-party backend may still send it (the last value in ``values``)
NOT_TOLD = {
    "pruned": TrialResult(JobStatus.PRUNED, None, 1, CURVE[:1], reason="pruned at iteration 1"),
    "pruned-with-value": TrialResult(JobStatus.PRUNED, (0.8,), 1, CURVE[:1]),
    "time-limit": TrialResult(JobStatus.ABORTED, None, 2, CURVE, reason="exceeded time_limit_per_job"),
    "time-limit-with-value": TrialResult(JobStatus.ABORTED, (0.7,), 2, CURVE),
    "failed": TrialResult(JobStatus.FAILED, None, None, (), reason="exit code 1"),
    "failed-after-reports": TrialResult(JobStatus.FAILED, (0.7,), 2, CURVE, reason="exit code 1"),
}


def _interrupted(partial: float) -> TrialResult:
    return TrialResult(JobStatus.ABORTED, (partial,), 2, ((1, partial), (2, partial)), interrupted=True,
                       reason="interrupted: study stopped")


def _drain(s: OptimizerSkopt, prefix: str) -> list[str]:
    """Ask (completing each at once) until exhausted; the config keys handed out."""
    got = []
    for i in range(10):
        answer = s.ask(f"{prefix}{i}")
        if answer is EXHAUSTED:
            return got
        got.append(config_key(answer.params))
        s.tell(f"{prefix}{i}", ok(float(i)))
    raise AssertionError(f"a space of {TINY.size()} configurations was not exhausted: {got}")


@pytest.mark.parametrize("case", list(NOT_TOLD))
def test_only_completed_results_are_told_and_the_rest_never_repeat(case: str) -> None:
    s = make(TINY)
    done = config_key(ask(s, "done"))
    stopped = config_key(ask(s, "stopped"))
    s.tell("done", TrialResult(JobStatus.COMPLETED, (0.3,), 2, ((1, 0.5), (2, 0.3))))
    s.tell("stopped", NOT_TOLD[case])
    # neither the value nor the last intermediate value of the stopped job reaches the model
    assert s.optimizer.yi == [0.3] and len(s.optimizer.Xi) == 1
    assert s.pending_trials == ()
    # ... but its configuration counts as tried: the other two, then exhausted
    rest = _drain(s, "r")
    assert len(rest) == 2 and not {done, stopped} & set(rest)


def test_a_time_limited_job_is_not_ranked_by_its_last_report_for_max() -> None:
    # for a max objective the old behaviour told -0.7: the model believed the job did well
    s = make(TINY, MAX)
    ask(s, "t")
    s.tell("t", NOT_TOLD["time-limit-with-value"])
    assert s.optimizer.yi == [] and s.optimizer.Xi == []


def test_an_interrupted_result_changes_nothing() -> None:
    def run(partial: float) -> tuple[list[Any], list[float], list[str]]:
        s = make(TINY)
        lost = config_key(ask(s, "lost"))
        ask(s, "other")
        s.tell("other", ok(0.5))
        s.tell("lost", _interrupted(partial))
        assert s.pending_trials == ()  # no lie is kept for it either
        rest = _drain(s, "r")
        # not tried: the study may hand the configuration out again (the engine re-runs it anyway)
        assert lost in rest and len(rest) == 3
        return s.optimizer.Xi[:1], s.optimizer.yi[:1], rest

    low, high = run(-1e9), run(1e9)
    assert low[1] == high[1] == [0.5]  # the model saw only the completed trial
    assert low == high  # and what the interrupted job reported changed no later suggestion


def test_an_interrupted_result_in_a_constant_space_is_forgotten() -> None:
    s = make(SearchSpace((DiscreteParameterRange("opt", ["adam"]),)))
    assert s.optimizer is None
    ask(s, "a")
    s.tell("a", _interrupted(1.0))
    assert ask(s, "b") == {"opt": "adam"}  # the only configuration was never tried


def test_restore_applies_the_same_rule() -> None:
    adam0, adam1, sgd0, sgd1 = ({"opt": o, "n": n} for o in ("adam", "sgd") for n in (0, 1))
    records = [
        TrialRecord("done", adam0, TrialResult(JobStatus.COMPLETED, (0.3,), 2, ((1, 0.5), (2, 0.3)))),
        TrialRecord("cut", adam1, NOT_TOLD["time-limit-with-value"]),
        TrialRecord("pruned", sgd0, NOT_TOLD["pruned-with-value"]),
        TrialRecord("gone", sgd1, _interrupted(-1e9)),  # interrupted and not re-run: forgotten
    ]
    s = make(TINY, MAX)
    s.restore(records)
    assert s.optimizer.Xi == [[0, 0]]  # ("adam" is choice 0, n=0)
    assert s.optimizer.yi == [-0.3]  # only the completed value, negated for max
    assert s.pending_trials == ()
    assert _drain(s, "r") == [config_key(sgd1)]  # the interrupted one is the only untried configuration


def test_restore_forgets_an_interrupted_record_and_waits_for_its_rerun() -> None:
    params = {"opt": "sgd", "n": 1}
    s = make(TINY)
    s.restore([TrialRecord("old", params, _interrupted(5.0)), TrialRecord("rerun", params, None)])
    assert s.optimizer.yi == [] and s.pending_trials == ("rerun",)
    s.tell("rerun", ok(0.2))
    assert s.optimizer.yi == [0.2]
    assert config_key(params) not in _drain(s, "r")


def test_single_objective_only() -> None:
    two = ObjectiveSet((Objective("val", "loss", "min"), Objective("val", "time", "min")))
    space = SearchSpace((UniformParameterRange("u", 0.0, 1.0),))
    for build in (lambda: OptimizerSkopt.check(space, two, StudySettings(), {}), lambda: OptimizerSkopt(space, two, StudySettings())):
        with pytest.raises(UnsupportedError) as info:
            build()
        assert "\n" not in str(info.value)


# -- concurrency: the constant liar -----------------------------------------------------------

SPACE2 = SearchSpace((UniformParameterRange("u", 0.0, 1.0), UniformIntegerParameterRange("n", 0, 20)))


@pytest.mark.parametrize("liar", ["cl_min", "cl_mean", "cl_max"])
def test_three_outstanding_asks_are_distinct(liar: str) -> None:
    s = make(SPACE2, constant_liar=liar)
    # initial phase: skopt alone would hand out its next initial point until told something
    first = [ask(s, f"a{i}") for i in range(3)]
    assert len({config_key(p) for p in first}) == 3
    for i, p in enumerate(first):
        s.tell(f"a{i}", ok(p["u"] + p["n"] / 20))
    for i in range(3):
        ask(s, f"b{i}")
        s.tell(f"b{i}", ok(float(i)))
    assert s.optimizer.models  # the model is in charge now
    # model phase: skopt alone would return the same optimum of the acquisition three times
    second = [ask(s, f"c{i}") for i in range(3)]
    assert len({config_key(p) for p in second}) == 3
    assert set(s.pending_trials) == {"c0", "c1", "c2"}


@pytest.mark.parametrize(("liar", "expected"), [("cl_min", min), ("cl_max", max), ("cl_mean", lambda ys: sum(ys) / len(ys))])
def test_the_lie_is_the_configured_statistic(liar: str, expected: Any) -> None:
    s = make(SPACE2, constant_liar=liar)
    for i, y in enumerate([3.0, 1.0, 2.0, 6.0]):
        ask(s, f"t{i}")
        s.tell(f"t{i}", ok(y))
    ask(s, "x")
    ask(s, "y")
    copy = s._liar_optimizer()
    assert copy.yi[:4] == [3.0, 1.0, 2.0, 6.0]
    assert copy.yi[4:] == [expected([3.0, 1.0, 2.0, 6.0])] * 2
    assert s.optimizer.yi == [3.0, 1.0, 2.0, 6.0]  # the real model never sees a lie


def test_small_discrete_space_is_covered_then_exhausted() -> None:
    space = SearchSpace((DiscreteParameterRange("opt", ["adam", "sgd", "rmsprop"]), UniformIntegerParameterRange("n", 0, 1)))
    s = make(space, n_initial_points=2)
    got: list[str] = []
    outstanding: list[str] = []
    i = 0
    while True:
        answer = s.ask(f"t{i}")
        if answer is EXHAUSTED:
            break
        got.append(config_key(answer.params))
        outstanding.append(f"t{i}")
        if len(outstanding) == 3:
            tid = outstanding.pop(0)
            s.tell(tid, TrialResult(JobStatus.FAILED) if i % 4 == 0 else ok(float(i)))
        i += 1
    assert len(got) == len(set(got)) == 6


@pytest.mark.parametrize("estimator", ["gp", "rf", "et", "gbrt"])
def test_every_base_estimator_runs_concurrently(estimator: str) -> None:
    space = SearchSpace((UniformParameterRange("u", 0.0, 1.0), DiscreteParameterRange("opt", ["a", "b", "c"])))
    s = make(space, base_estimator=estimator, n_initial_points=3)
    got = drive(s, 8, concurrency=3)
    assert len({config_key(g.params) for g in got}) == 8
    assert s.optimizer.models


@pytest.mark.parametrize("generator", ["random", "sobol", "halton", "hammersly", "lhs", "grid"])
def test_initial_point_generators_with_outstanding_trials(generator: str) -> None:
    s = make(SPACE2, initial_point_generator=generator, n_initial_points=8)
    got = drive(s, 6, concurrency=3)
    assert len({config_key(g.params) for g in got}) == 6


@pytest.mark.parametrize("acq", ["gp_hedge", "EI", "PI", "LCB"])
def test_acquisition_functions(acq: str) -> None:
    kwargs = {"gp_hedge": {"eta": 0.5}, "EI": {"xi": 0.02}, "PI": {"xi": 0.0}, "LCB": {"kappa": 3}}[acq]
    s = make(SPACE2, acq_func=acq, acq_func_kwargs=kwargs, n_initial_points=3)
    got = drive(s, 6, concurrency=2)
    assert len({config_key(g.params) for g in got}) == 6 and s.optimizer.models


# -- reproducibility --------------------------------------------------------------------------


def test_seeded_runs_are_reproducible_with_concurrency_and_failures() -> None:
    def run(seed: int) -> list[dict[str, Any]]:
        return [g.params for g in drive(make(SPACE2, seed=seed, n_initial_points=3), 7, concurrency=3, fail_every=4)]

    first = run(5)
    assert run(5) == first
    assert run(6) != first


# -- restore ----------------------------------------------------------------------------------


def _history(s: OptimizerSkopt, n: int) -> list[TrialRecord]:
    records = []
    for g in drive(s, n, concurrency=2):
        records.append(TrialRecord(f"old{len(records)}", g.params, ok(synthetic_value(g.params))))
    return records


def test_restore_replays_every_finished_value() -> None:
    first = make(SPACE2, MAX)
    records = _history(first, 7)
    records.append(TrialRecord("boom", {"u": 0.5, "n": 3}, TrialResult(JobStatus.FAILED)))
    second = make(SPACE2, MAX)
    second.restore(records)
    # the same observations, negated for max, in one batch: the model is in charge at once
    assert sorted(map(tuple, second.optimizer.Xi)) == sorted(map(tuple, first.optimizer.Xi))
    assert sorted(second.optimizer.yi) == sorted(first.optimizer.yi)
    assert all(y <= 0 for y in second.optimizer.yi)
    assert second.optimizer.models
    tried = {config_key(r.params) for r in records}
    for i in range(4):  # never suggests a configuration of the first run, failed ones included
        params = ask(second, f"new{i}")
        assert config_key(params) not in tried
        second.tell(f"new{i}", ok(0.1))
    # a seeded restore is reproducible
    a, b = make(SPACE2, MAX, seed=3), make(SPACE2, MAX, seed=3)
    a.restore(records)
    b.restore(records)
    assert [ask(a, f"x{i}") for i in range(3)] == [ask(b, f"x{i}") for i in range(3)]


def test_restore_keeps_interrupted_trials_pending() -> None:
    records = _history(make(SPACE2), 5)
    rerun = TrialRecord("rerun", {"u": 0.25, "n": 7}, None)
    s = make(SPACE2)
    s.restore([*records, rerun])
    assert s.pending_trials == ("rerun",) and len(s.optimizer.Xi) == 5
    params = ask(s, "next")  # asked while the re-run is running: the liar covers its point
    assert params != {"u": 0.25, "n": 7}
    s.tell("rerun", ok(0.01))
    assert s.optimizer.Xi[-1] == [0.25, 7] and s.optimizer.yi[-1] == 0.01
    assert s.pending_trials == ("next",)


def test_restore_skips_records_outside_the_space() -> None:
    s = make(SPACE2)
    s.restore([TrialRecord("odd", {"u": 5.0, "n": 1}, ok(1.0)), TrialRecord("gone", {"v": 1}, None)])
    assert s.optimizer.Xi == [] and s.pending_trials == ()
    ask(s, "t0")


# -- options ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"base_estimator": "xgboost"}, "base_estimator"),
        ({"base_estimator": 3}, "base_estimator"),
        ({"acq_func": "UCB"}, "acq_func"),
        ({"acq_func": "EIps"}, "EIps"),
        ({"acq_func": "MES"}, "MES"),
        ({"n_initial_points": 0}, "n_initial_points"),
        ({"n_initial_points": 2.5}, "n_initial_points"),
        ({"n_initial_points": True}, "n_initial_points"),
        ({"acq_optimizer": "adam"}, "acq_optimizer"),
        ({"acq_optimizer": "lbfgs", "base_estimator": "rf"}, "lbfgs"),
        ({"acq_func_kwargs": {"zeta": 1}}, "zeta"),
        ({"acq_func_kwargs": "xi=0.1"}, "acq_func_kwargs"),
        ({"acq_func_kwargs": {"kappa": -1}}, "kappa"),
        ({"acq_optimizer_kwargs": {"n_points": 0}}, "n_points"),
        ({"acq_optimizer_kwargs": {"points": 10}}, "points"),
        ({"initial_point_generator": "latin"}, "initial_point_generator"),
        ({"constant_liar": "cl_median"}, "constant_liar"),
        ({"constant_liar": None}, "constant_liar"),
        ({"sampler": "tpe"}, "sampler"),
    ],
)
def test_bad_options_are_one_line_errors(options: dict[str, Any], needle: str) -> None:
    with pytest.raises(UnsupportedError) as info:
        OptimizerSkopt.check(SPACE2, MIN, StudySettings(), options)
    message = str(info.value)
    assert needle in message and "\n" not in message and "skopt" in message
    if "sampler" not in options:  # an unknown keyword is a TypeError for the constructor itself
        with pytest.raises(UnsupportedError):
            OptimizerSkopt(SPACE2, MIN, StudySettings(), **options)


def test_option_spellings_are_normalized() -> None:
    s = make(SPACE2, base_estimator="GP", acq_func="ei", initial_point_generator="LHS")
    assert (s.options["base_estimator"], s.options["acq_func"], s.options["initial_point_generator"]) == ("gp", "EI", "lhs")
