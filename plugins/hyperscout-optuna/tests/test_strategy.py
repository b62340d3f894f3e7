"""OptimizerOptuna driven directly through ask / report / tell / restore, with real Optuna studies."""

from __future__ import annotations

import importlib.util
import random
import subprocess
import sys
from typing import Any

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from hyperscout import (
    DiscreteParameterRange,
    JobStatus,
    LogUniformParameterRange,
    ParameterSet,
    SearchSpace,
    Suggestion,
    TrialRecord,
    TrialResult,
    UniformIntegerParameterRange,
    UniformParameterRange,
    UnsupportedError,
    Verdict,
)
from hyperscout.objective import Objective, ObjectiveSet, pareto_front
from hyperscout.plugins import strategies
from hyperscout.strategy import EXHAUSTED, StudySettings
from hyperscout_optuna import OptimizerOptuna
from hyperscout_optuna.strategy import DUPLICATE_ATTR, INTERRUPTED_ATTR, JOB_ID_ATTR, REASON_ATTR, SAMPLERS

LOSS = ObjectiveSet((Objective("val", "loss", "min"),))
TWO = ObjectiveSet((Objective("val", "loss", "min"), Objective("val", "accuracy", "max")))
PAD = UniformIntegerParameterRange("pad", 0, 3)


LIMITS = ("total_max_jobs", "min_iteration_per_job", "max_iteration_per_job", "max_concurrency")


def make(params: Any, *, seed: int | None = 0, objectives: ObjectiveSet = LOSS, **kw: Any) -> OptimizerOptuna:
    """Build the strategy as the engine does: ``check`` then the constructor; limits go to settings."""
    settings = {k: kw.pop(k) for k in LIMITS if k in kw}
    space = SearchSpace.of(params)
    st = StudySettings(seed=seed, **settings)
    OptimizerOptuna.check(space, objectives, st, kw)
    return OptimizerOptuna(space, objectives, st, **kw)


def done(value: float | tuple[float, ...], steps: int = 1) -> TrialResult:
    values = value if isinstance(value, tuple) else (value,)
    return TrialResult(JobStatus.COMPLETED, values, steps, tuple((i, values[0]) for i in range(1, steps + 1)))


def run(strategy: OptimizerOptuna, n: int, objective: Any = None, prefix: str = "t") -> list[Suggestion]:
    """Ask/tell ``n`` trials; the objective defaults to seeded random values."""
    rng = random.Random(12345)
    out = []
    for i in range(n):
        s = strategy.ask(f"{prefix}{i}")
        assert isinstance(s, Suggestion), s
        out.append(s)
        strategy.tell(f"{prefix}{i}", done(objective(s.params) if objective else rng.random()))
    return out


# -- mapping -------------------------------------------------------------------------------------
RANGES = [
    (UniformParameterRange("u", -2.0, 3.0), "float", FloatDistribution),
    (UniformParameterRange("ux", 0.0, 1.0, include_max_value=False), "float", FloatDistribution),
    (UniformParameterRange("us", 0.0, 1.0, step_size=0.1), "grid", FloatDistribution),
    (UniformParameterRange("ue", 0.0, 1.0, step_size=0.3, include_max_value=False), "grid", FloatDistribution),
    (UniformParameterRange("uo", 0.0, 1.0, step_size=0.3), "choice", CategoricalDistribution),
    (LogUniformParameterRange("lr", -5, -1), "float", FloatDistribution),
    (LogUniformParameterRange("lrx", -5, -1, include_max_value=False), "float", FloatDistribution),
    (LogUniformParameterRange("l2", 0, 4, base=2, step_size=1), "choice", CategoricalDistribution),
    (LogUniformParameterRange("half", 1, 4, base=0.5, include_max_value=False), "float", FloatDistribution),
    (UniformIntegerParameterRange("layers", 1, 6), "int", IntDistribution),
    (UniformIntegerParameterRange("width", 128, 512, step_size=128), "int", IntDistribution),
    (UniformIntegerParameterRange("odd", 1, 10, step_size=3, include_max_value=False), "int", IntDistribution),
    (UniformIntegerParameterRange("off", 1, 9, step_size=3), "choice", CategoricalDistribution),
    (DiscreteParameterRange("opt", ["adam", "sgd", "rmsprop"]), "choice", CategoricalDistribution),
    (DiscreteParameterRange("mixed", [1, True, "a", None, [1, 2]]), "index", CategoricalDistribution),
]


def finite_values(p: Any) -> list[Any] | None:
    if isinstance(p, DiscreteParameterRange):
        return list(p.values)
    if isinstance(p, UniformIntegerParameterRange) or getattr(p, "step_size", None) is not None:
        return p.points()
    return None


@pytest.mark.parametrize(("p", "kind", "dist"), RANGES, ids=[r[0].name for r in RANGES])
def test_each_range_maps_and_samples_inside_bounds(p: Any, kind: str, dist: type) -> None:
    strategy = make([p, PAD], sampler="random", total_max_jobs=60)
    leaf = strategy.mapping.nodes[0]
    assert leaf.kind == kind and isinstance(leaf.distribution, dist)
    got = [s.params[p.name] for s in run(strategy, 60)]
    assert all(p.contains(v) for v in got), [v for v in got if not p.contains(v)]
    grid = finite_values(p)
    if grid is not None:
        # exactly the range's own points, every one of them (the max too when it is included)
        assert all(any(v == g and type(v) is type(g) for g in grid) for v in got)
        assert {repr(v) for v in got} == {repr(g) for g in grid}
    else:
        ends = (p.low, p.high) if isinstance(p, LogUniformParameterRange) else (p.min_value, p.max_value)
        assert min(ends) <= min(got) and max(got) <= max(ends)
        if not p.include_max_value:
            excluded = ends[1]  # base**max_value: the smallest value when base < 1
            assert excluded not in got


@pytest.mark.parametrize("sampler", ["tpe", "random", "qmc", "cmaes", "nsga2", "nsga3"])
def test_every_sampler_stays_inside_every_range(sampler: str) -> None:
    ranges = [r[0] for r in RANGES]
    combos = ParameterSet([
        {"model": "linear", "alpha": UniformParameterRange("alpha", 0.0, 1.0)},
        {"model": "tree", "depth": UniformIntegerParameterRange("depth", 2, 8, step_size=2)},
        {"model": "mlp", "alpha": LogUniformParameterRange("alpha", -3, 0), "depth": 3},
    ])
    options: dict[str, Any] = {"sampler": sampler}
    if sampler in ("nsga2", "nsga3"):
        options["sampler_options"] = {"population_size": 6}
    if sampler in ("qmc", "cmaes"):
        options["sampler_options"] = {"warn_independent_sampling": False}
    strategy = make([*ranges, combos], **options)
    for s in run(strategy, 24):
        for p in ranges:
            assert p.contains(s.params[p.name]), (p.name, s.params[p.name])
        sub = {k: v for k, v in s.params.items() if k in combos.names}
        assert combos.contains(sub), sub


def test_parameter_set_is_a_conditional_choice() -> None:
    combos = ParameterSet([
        {"model": "linear", "alpha": UniformParameterRange("alpha", 0.0, 1.0)},
        {"model": "tree", "depth": UniformIntegerParameterRange("depth", 2, 8, step_size=2)},
        {"model": "mlp", "alpha": LogUniformParameterRange("alpha", -3, 0), "depth": 3},
    ])
    strategy = make([combos, PAD], sampler="random")
    got = run(strategy, 40)
    assert {s.params["model"] for s in got} == {"linear", "tree", "mlp"}
    for s in got:
        assert set(s.params) - {"pad"} in ({"model", "alpha"}, {"model", "depth"}, {"model", "alpha", "depth"})
    for t in strategy.study.trials:
        idx = t.params["ParameterSet[0]"]
        # only the chosen combination's ranges are Optuna parameters; alpha differs between
        # combinations 0 and 2, so each gets its own name; depth is a range in combination 1 only
        expected = {0: {"alpha@0"}, 1: {"depth"}, 2: {"alpha@2"}}[idx]
        assert set(t.params) == {"ParameterSet[0]", "pad"} | expected


def test_stepped_float_values_are_the_grid_points_not_optuna_float_noise() -> None:
    p = UniformParameterRange("lr", 0.0, 1.0, step_size=0.1)
    strategy = make([p], sampler="random", total_max_jobs=80)
    got = {s.params["lr"] for s in run(strategy, 80)}
    assert got == set(p.points())  # 0.3, never 0.30000000000000004


# -- seeds ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("sampler", ["tpe", "cmaes", "qmc", "nsga2"])
def test_seeded_runs_are_reproducible(sampler: str) -> None:
    space = [UniformParameterRange("x", 0.0, 1.0), LogUniformParameterRange("lr", -4, -1),
             UniformIntegerParameterRange("n", 1, 8), DiscreteParameterRange("opt", ["a", "b"])]
    opts: dict[str, Any] = {"sampler": sampler}
    if sampler != "tpe":
        opts["sampler_options"] = {"warn_independent_sampling": False} if sampler != "nsga2" else {"population_size": 4}

    def objective(params: dict[str, Any]) -> float:
        return (params["x"] - 0.3) ** 2 + params["n"] * 0.01

    a = [s.params for s in run(make(space, seed=7, **opts), 16, objective)]
    b = [s.params for s in run(make(space, seed=7, **opts), 16, objective)]
    c = [s.params for s in run(make(space, seed=8, **opts), 16, objective)]
    assert a == b
    assert a != c


def test_default_sampler_and_pruner() -> None:
    single = make([UniformParameterRange("x", 0, 1)], min_iteration_per_job=3)
    assert isinstance(single.study.sampler, optuna.samplers.TPESampler)
    assert isinstance(single.study.pruner, optuna.pruners.MedianPruner)
    assert single.study.pruner._n_warmup_steps == 3  # the grace period, as Optuna's own argument
    multi = make([UniformParameterRange("x", 0, 1)], objectives=TWO)
    assert isinstance(multi.study.sampler, optuna.samplers.NSGAIISampler)
    assert isinstance(multi.study.pruner, optuna.pruners.NopPruner)
    assert [d.name for d in multi.study.directions] == ["MINIMIZE", "MAXIMIZE"]


def test_limits_become_pruner_arguments_and_explicit_options_win() -> None:
    x = [UniformParameterRange("x", 0, 1)]
    hb = make(x, pruner="hyperband", min_iteration_per_job=2, max_iteration_per_job=27)
    assert (hb.study.pruner._min_resource, hb.study.pruner._max_resource) == (2, 27)
    hb2 = make(x, pruner="hyperband", pruner_options={"max_resource": 9, "reduction_factor": 3},
               max_iteration_per_job=27)
    assert hb2.study.pruner._max_resource == 9
    sh = make(x, pruner="successive_halving", min_iteration_per_job=4)
    assert sh.study.pruner._min_resource == 4
    pc = make(x, pruner="percentile", pruner_options={"percentile": 25.0})
    assert isinstance(pc.study.pruner, optuna.pruners.PercentilePruner)


def test_clearml_spellings_take_names_classes_and_built_objects() -> None:
    x = [UniformParameterRange("x", 0, 1)]
    sampler = optuna.samplers.RandomSampler(seed=3)
    pruner = optuna.pruners.HyperbandPruner(min_resource=1, max_resource=9)
    s = make(x, optuna_sampler=sampler, optuna_pruner=pruner)
    assert s.study.sampler is sampler and s.study.pruner is pruner
    s2 = make(x, optuna_sampler="qmc", optuna_pruner="none")
    assert isinstance(s2.study.sampler, optuna.samplers.QMCSampler)
    s3 = make(x, sampler=optuna.samplers.TPESampler, sampler_options={"n_startup_trials": 3},
              pruner=optuna.pruners.SuccessiveHalvingPruner)
    assert s3.study.sampler._n_startup_trials == 3
    assert isinstance(s3.study.pruner, optuna.pruners.SuccessiveHalvingPruner)
    s4 = make(x, sampler="TPESampler", pruner="MedianPruner")  # Optuna's class names work as names
    assert isinstance(s4.study.sampler, optuna.samplers.TPESampler)


# -- option errors -------------------------------------------------------------------------------
BAD_OPTIONS = [
    ({"samplr": "tpe"}, "samplr"),
    ({"sampler": "bayes"}, "bayes"),
    ({"sampler": 3}, "sampler=3"),
    ({"sampler": "tpe", "sampler_options": {"n_startup": 3}}, "n_startup"),
    ({"sampler": "nsga2", "sampler_options": {"population_size": 1}}, "population_size"),
    ({"sampler_options": ["seed"]}, "sampler_options"),
    ({"pruner": "asha"}, "asha"),
    ({"pruner": "median", "pruner_options": {"warmup": 2}}, "warmup"),
    ({"pruner": "percentile"}, "percentile"),
    ({"pruner": "none", "pruner_options": {"n_startup_trials": 1}}, "none"),
    ({"sampler": "tpe", "optuna_sampler": "random"}, "optuna_sampler"),
    ({"pruner": "median", "optuna_pruner": "hyperband"}, "optuna_pruner"),
    ({"optuna_sampler": optuna.samplers.RandomSampler(), "sampler_options": {"seed": 1}}, "sampler_options"),
    ({"optuna_pruner": optuna.pruners.MedianPruner(), "pruner_options": {"n_startup_trials": 1}}, "pruner_options"),
    ({"continue_previous_study": True}, "continue_previous_study"),
]


@pytest.mark.parametrize(("options", "named"), BAD_OPTIONS, ids=[str(i) for i in range(len(BAD_OPTIONS))])
def test_option_errors_are_one_line_unsupported_errors(options: dict[str, Any], named: str) -> None:
    with pytest.raises(UnsupportedError) as info:
        make([UniformParameterRange("x", 0, 1)], **options)
    message = str(info.value)
    assert named in message and "\n" not in message, message


def test_multi_objective_refuses_a_pruner_and_cmaes() -> None:
    x = [UniformParameterRange("x", 0, 1)]
    for options, named in (({"pruner": "median"}, "median"), ({"sampler": "cmaes"}, "cmaes")):
        with pytest.raises(UnsupportedError) as info:
            make(x, objectives=TWO, **options)
        assert named in str(info.value) and "\n" not in str(info.value)


def test_gp_sampler_needs_torch() -> None:
    x = [UniformParameterRange("x", 0, 1)]
    if importlib.util.find_spec("torch") is None:
        with pytest.raises(UnsupportedError) as info:
            make(x, sampler="gp")
        assert "torch" in str(info.value) and "hyperscout-optuna[gp]" in str(info.value)
    else:
        assert isinstance(make(x, sampler="gp").study.sampler, optuna.samplers.GPSampler)


# -- report / prune ------------------------------------------------------------------------------
def test_median_pruner_prunes_after_the_grace_period_only() -> None:
    strategy = make([UniformParameterRange("x", 0, 1)], min_iteration_per_job=3,
                    pruner_options={"n_startup_trials": 2})
    for i in range(3):
        strategy.ask(f"good{i}")
        for it in range(1, 6):
            assert strategy.report(f"good{i}", it, 1.0 / it) is Verdict.CONTINUE
        strategy.tell(f"good{i}", done(0.2, 5))
    strategy.ask("bad")
    verdicts = [strategy.report("bad", it, 10.0) for it in range(1, 6)]
    assert verdicts[:2] == [Verdict.CONTINUE, Verdict.CONTINUE]
    assert verdicts[2] is Verdict.PRUNE
    strategy.tell("bad", TrialResult(JobStatus.PRUNED, None, 3, ((1, 10.0), (2, 10.0), (3, 10.0))))
    bad = strategy.optuna_trial("bad")
    assert bad is not None and bad.state is TrialState.PRUNED and bad.value == 10.0


def test_a_job_at_its_iteration_cap_is_left_to_complete() -> None:
    # The engine ends a job as completed at max_iteration_per_job; pruning it there would only
    # relabel a finished job, so the strategy never does.
    strategy = make([UniformParameterRange("x", 0, 1)], min_iteration_per_job=4, max_iteration_per_job=4,
                    pruner_options={"n_startup_trials": 1})
    strategy.ask("good")
    for it in range(1, 5):
        strategy.report("good", it, 0.1)
    strategy.tell("good", done(0.1, 4))
    strategy.ask("bad")
    assert [strategy.report("bad", it, 9.0) for it in range(1, 5)] == [Verdict.CONTINUE] * 4


def test_several_objectives_never_prune() -> None:
    strategy = make([UniformParameterRange("x", 0, 1)], objectives=TWO, min_iteration_per_job=1)
    for i in range(8):
        strategy.ask(f"t{i}")
        assert all(strategy.report(f"t{i}", it, 100.0 * i) is Verdict.CONTINUE for it in range(1, 5))
        strategy.tell(f"t{i}", done((float(i), float(i)), 4))
    assert all(t.state is TrialState.COMPLETE for t in strategy.study.trials)


def test_pruner_none_never_prunes() -> None:
    strategy = make([UniformParameterRange("x", 0, 1)], pruner="none")
    for i in range(8):
        strategy.ask(f"t{i}")
        assert all(strategy.report(f"t{i}", it, float(i)) is Verdict.CONTINUE for it in range(1, 5))
        strategy.tell(f"t{i}", done(float(i), 4))


# -- tell: the outcome rule (TrialResult's table) -----------------------------------------------
TIME_LIMIT = "exceeded time_limit_per_job (60 s)"
CURVE = ((1, 3.0), (2, 2.5))


@pytest.mark.parametrize(
    ("result", "state", "value"),
    [
        (TrialResult(JobStatus.COMPLETED, (0.5,), 3), TrialState.COMPLETE, 0.5),
        (TrialResult(JobStatus.COMPLETED, None, None), TrialState.FAIL, None),  # ClearML #1401: no metric
        (TrialResult(JobStatus.COMPLETED, (float("nan"),), 3), TrialState.FAIL, None),
        (TrialResult(JobStatus.COMPLETED, (float("inf"),), 3), TrialState.FAIL, None),
        (TrialResult(JobStatus.COMPLETED, (0.1, 0.2), 3), TrialState.FAIL, None),  # wrong count
        (TrialResult(JobStatus.FAILED, None, None, reason="exit code 1"), TrialState.FAIL, None),
        (TrialResult(JobStatus.FAILED, (0.4,), 2), TrialState.FAIL, None),
        (TrialResult(JobStatus.ABORTED, None, 2, CURVE, reason=TIME_LIMIT), TrialState.FAIL, None),
        # an aborted job is never complete, even with the value the engine used to send
        (TrialResult(JobStatus.ABORTED, (0.7,), 2, CURVE, reason=TIME_LIMIT), TrialState.FAIL, None),
        (TrialResult(JobStatus.ABORTED, None, 2, CURVE, interrupted=True), TrialState.FAIL, None),
        (TrialResult(JobStatus.ABORTED, (0.7,), 2, CURVE, interrupted=True), TrialState.FAIL, None),
        # a pruned job's value is its last intermediate value (Optuna's convention), never a told one
        (TrialResult(JobStatus.PRUNED, None, 2, CURVE), TrialState.PRUNED, 2.5),
        (TrialResult(JobStatus.PRUNED, (9.0,), 2, CURVE), TrialState.PRUNED, 2.5),
        (TrialResult(JobStatus.PRUNED, None, None), TrialState.PRUNED, None),
    ],
)
def test_tell_maps_every_outcome(result: TrialResult, state: TrialState, value: float | None) -> None:
    strategy = make([UniformParameterRange("x", 0, 1)])
    strategy.ask("j")
    strategy.tell("j", result)
    t = strategy.optuna_trial("j")
    assert t is not None and t.state is state and t.value == value
    assert t.user_attrs.get(INTERRUPTED_ATTR, False) is result.interrupted
    assert t.user_attrs.get(REASON_ATTR) == (result.reason if state is not TrialState.COMPLETE else None)
    strategy.tell("j", result)  # a second tell, or one for an unknown job, is ignored
    strategy.tell("unknown", result)
    assert isinstance(strategy.ask("next"), Suggestion)


def test_a_job_aborted_by_its_time_limit_is_never_complete() -> None:
    """The tracker's defect: an aborted job with a value was told COMPLETE, and became the best trial."""
    strategy = make([UniformParameterRange("x", 0, 1)], pruner="none")
    strategy.ask("slow")
    for it, v in CURVE:
        strategy.report("slow", it, v)
    strategy.tell("slow", TrialResult(JobStatus.ABORTED, (2.5,), 2, CURVE, reason=TIME_LIMIT))
    slow = strategy.optuna_trial("slow")
    assert slow is not None and slow.state is TrialState.FAIL and slow.values is None
    assert slow.user_attrs[REASON_ATTR] == TIME_LIMIT
    assert not strategy.study.get_trials(states=(TrialState.COMPLETE,))
    with pytest.raises(ValueError):
        strategy.study.best_trial  # noqa: B018 - raises: no completed trial

    resumed = make([UniformParameterRange("x", 0, 1)], pruner="none")
    resumed.restore([TrialRecord("slow", {"x": 0.5}, TrialResult(JobStatus.ABORTED, (2.5,), 2, CURVE))])
    assert [t.state for t in resumed.study.trials] == [TrialState.FAIL]


def _pruned_bad_job(strategy: OptimizerOptuna) -> int:
    """Three good jobs, then a bad one that the median pruner stops; returns the prune point."""
    for i in range(3):
        strategy.ask(f"good{i}")
        for it in range(1, 6):
            strategy.report(f"good{i}", it, 1.0 / it)
        strategy.tell(f"good{i}", done(0.2, 5))
    strategy.ask("bad")
    for it in range(1, 6):
        if strategy.report("bad", it, 10.0) is Verdict.PRUNE:
            return it
    raise AssertionError("the median pruner did not prune the bad job")


def test_nothing_reported_after_the_prune_point_reaches_optuna() -> None:
    strategy = make([UniformParameterRange("x", 0, 1)], pruner_options={"n_startup_trials": 2})
    at = _pruned_bad_job(strategy)
    # a late report (the process wrote it before it was killed) keeps the verdict and is dropped
    assert strategy.report("bad", at + 1, -5.0) is Verdict.PRUNE
    late = tuple((it, -5.0) for it in range(at + 1, at + 3))
    strategy.tell("bad", TrialResult(JobStatus.PRUNED, None, at,
                                     tuple((it, 10.0) for it in range(1, at + 1)) + late))
    bad = strategy.optuna_trial("bad")
    assert bad is not None and bad.state is TrialState.PRUNED
    assert bad.intermediate_values == {it: 10.0 for it in range(1, at + 1)}
    assert bad.value == 10.0  # the value at the prune point, not the -5.0 reported after it


def test_a_pruned_job_gets_its_curve_up_to_the_prune_point_even_if_reports_were_missed() -> None:
    strategy = make([UniformParameterRange("x", 0, 1)], pruner_options={"n_startup_trials": 2})
    at = _pruned_bad_job(strategy)
    # the result holds a step the strategy never saw live (iteration 0): it is recorded, up to the prune point
    curve = ((0, 12.0), *((it, 10.0) for it in range(1, at + 1)))
    strategy.tell("bad", TrialResult(JobStatus.PRUNED, None, at, curve))
    bad = strategy.optuna_trial("bad")
    assert bad is not None and bad.intermediate_values == dict(curve) and bad.value == 10.0


def test_nothing_reported_after_the_cap_reaches_optuna() -> None:
    strategy = make([UniformParameterRange("x", 0, 1)], pruner="none", max_iteration_per_job=4)
    strategy.ask("j")
    assert [strategy.report("j", it, 1.0 / it) for it in range(1, 7)] == [Verdict.CONTINUE] * 6
    curve = tuple((it, 1.0 / it) for it in range(1, 7))
    strategy.tell("j", TrialResult(JobStatus.COMPLETED, (0.25,), 4, curve))
    t = strategy.optuna_trial("j")
    assert t is not None and t.state is TrialState.COMPLETE and t.value == 0.25
    assert sorted(t.intermediate_values) == [1, 2, 3, 4]


# Every row of TrialResult's table, as the engine tells it (values only when completed).
RULE = {
    "completed": TrialResult(JobStatus.COMPLETED, (0.3,), 3, ((1, 0.5), (2, 0.4), (3, 0.3))),
    "pruned": TrialResult(JobStatus.PRUNED, None, 2, ((1, 0.9), (2, 0.8)), reason="pruned by optuna at iteration 2"),
    "time limit": TrialResult(JobStatus.ABORTED, None, 2, ((1, 0.8), (2, 0.7)), reason=TIME_LIMIT),
    "interrupted": TrialResult(JobStatus.ABORTED, None, 2, ((1, 0.1), (2, 0.05)), interrupted=True,
                               reason="interrupted: study stopped (time_limit)"),
    "failed": TrialResult(JobStatus.FAILED, None, 1, ((1, 0.6),), reason="exit code 1"),
}


def test_restore_applies_the_rule_tell_applies() -> None:
    """A resumed study holds each outcome exactly as the first run's tell left it; an interrupted job
    is not restored at all (its re-run is)."""
    space = [UniformParameterRange("x", 0, 1)]
    told = make(space, pruner="none")
    for name, result in RULE.items():
        told.ask(name)
        for it, v in result.intermediate:  # live, as the engine reports them
            told.report(name, it, v)
        told.tell(name, result)
    resumed = make(space, pruner="none")
    resumed.restore([TrialRecord(name, {"x": 0.5}, result) for name, result in RULE.items()])

    def shown(t: optuna.trial.FrozenTrial) -> tuple[Any, ...]:
        return t.state, t.values, t.intermediate_values, t.user_attrs.get(REASON_ATTR)

    for name in RULE:
        before, after = told.optuna_trial(name), resumed.optuna_trial(name)
        assert before is not None
        if name == "interrupted":
            assert before.state is TrialState.FAIL and before.user_attrs[INTERRUPTED_ATTR] is True
            assert after is None
        else:
            assert after is not None and shown(after) == shown(before), name
    assert [told.optuna_trial(n).state for n in RULE] == [  # type: ignore[union-attr]
        TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.FAIL, TrialState.FAIL]
    assert told.optuna_trial("pruned").value == 0.8  # type: ignore[union-attr]


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_interrupted_results_are_forgotten_by_every_sampler(sampler: str) -> None:
    """What an interrupted job reported, live or in its result, changes neither the suggestions nor the
    pruner's verdicts nor the trials any sampler reads; its trial is FAIL and marked interrupted."""
    space = [UniformParameterRange("x", 0.0, 1.0), UniformParameterRange("y", 0.0, 1.0)]
    options: dict[str, Any] = {"sampler": sampler, "pruner_options": {"n_startup_trials": 2}}
    if sampler == "gp" and importlib.util.find_spec("torch") is None:
        # without torch the gp sampler is refused before any job, in one line naming the extra
        with pytest.raises(UnsupportedError, match=r"sampler 'gp' needs torch.*hyperscout-optuna\[gp\]") as info:
            make(space, seed=5, **options)
        assert "\n" not in str(info.value)
        return
    if sampler in ("nsga2", "nsga3"):
        options["sampler_options"] = {"population_size": 4}
    elif sampler in ("tpe", "gp"):
        options["sampler_options"] = {"n_startup_trials": 4}

    def run_with(partial: float) -> tuple[list[Any], list[Any], list[Any]]:
        strategy = make(space, seed=5, max_concurrency=2, **options)
        asked, verdicts = [], []
        for i in range(24):
            s = strategy.ask(f"s{i}")
            assert isinstance(s, Suggestion)
            asked.append(dict(s.params))
            if i % 3 == 1:
                for it in (1, 2):
                    strategy.report(f"s{i}", it, partial)
                values = (partial,) if i % 2 else None  # with or without the value the engine used to send
                strategy.tell(f"s{i}", TrialResult(JobStatus.ABORTED, values, 2, ((1, partial), (2, partial)),
                                                   interrupted=True, reason="interrupted"))
                t = strategy.optuna_trial(f"s{i}")
                assert t is not None and t.state is TrialState.FAIL and t.values is None
                assert t.user_attrs[INTERRUPTED_ATTR] is True
                continue
            value = (s.params["x"] - 0.3) ** 2
            verdicts.append([strategy.report(f"s{i}", it, value + 1.0 / it) for it in (1, 2, 3)])
            strategy.tell(f"s{i}", done(value, 3))
        read = [(t.number, t.state, t.params, t.values, t.intermediate_values)
                for t in strategy.study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
        return asked, verdicts, read

    assert run_with(-1e6) == run_with(1e6)


def test_an_interrupted_configuration_is_forgotten_in_a_finite_space() -> None:
    strategy = make([DiscreteParameterRange("opt", ["a", "b"])], sampler="random")
    first = strategy.ask("t0")
    assert isinstance(first, Suggestion)
    strategy.tell("t0", TrialResult(JobStatus.ABORTED, None, None, interrupted=True))
    got = run(strategy, 2, prefix="again")
    assert {s.params["opt"] for s in got} == {"a", "b"}  # both still to try: the interrupted one never ran
    assert strategy.ask("more") is EXHAUSTED


def test_learns_from_results_follows_the_sampler() -> None:
    x = [UniformParameterRange("x", 0, 1)]
    assert make(x).learns_from_results is True
    assert make(x, sampler="cmaes").learns_from_results is True
    assert make(x, sampler="random").learns_from_results is False
    assert make(x, sampler="qmc").learns_from_results is False
    assert make(x, optuna_sampler=optuna.samplers.RandomSampler(seed=1)).learns_from_results is False


def test_multi_objective_tell_gives_the_pareto_front() -> None:
    strategy = make([UniformParameterRange("x", 0, 1), UniformParameterRange("y", 0, 1)], objectives=TWO)
    values: dict[str, tuple[float, float]] = {}
    for i in range(30):
        s = strategy.ask(f"t{i}")
        assert isinstance(s, Suggestion)
        x, y = s.params["x"], s.params["y"]
        values[f"t{i}"] = (x + 0.5 * y, 1.0 - (1.0 - x) ** 2 - 0.5 * y)  # loss (min), accuracy (max)
        strategy.tell(f"t{i}", done(values[f"t{i}"]))
    front = set(pareto_front(list(values), lambda k: values[k], TWO))
    got = {t.user_attrs[JOB_ID_ATTR] for t in strategy.study.best_trials}
    assert got == front and 0 < len(front) < 30


# -- finite spaces and duplicates ----------------------------------------------------------------
def test_finite_space_keeps_suggesting_duplicates_under_total_max_jobs() -> None:
    strategy = make([DiscreteParameterRange("opt", ["a", "b"])], total_max_jobs=10)
    got = run(strategy, 10)
    assert len(got) == 10 and {s.params["opt"] for s in got} == {"a", "b"}


def test_finite_space_without_total_max_jobs_ends_once_everything_was_tried() -> None:
    strategy = make([DiscreteParameterRange("opt", ["a", "b"]), UniformIntegerParameterRange("n", 1, 2)])
    seen = set()
    for i in range(200):
        answer = strategy.ask(f"t{i}")
        if answer is EXHAUSTED:
            break
        assert isinstance(answer, Suggestion)
        seen.add((answer.params["opt"], answer.params["n"]))
        strategy.tell(f"t{i}", done(random.Random(i).random()))
    assert answer is EXHAUSTED and len(seen) == 4


def test_continuous_space_is_never_exhausted() -> None:
    strategy = make([UniformParameterRange("x", 0, 1)])
    assert len(run(strategy, 30)) == 30


# -- restore -------------------------------------------------------------------------------------
SPACE = [
    UniformParameterRange("x", 0.0, 1.0),
    UniformParameterRange("s", 0.0, 1.0, step_size=0.1),
    LogUniformParameterRange("lr", -4, -1, step_size=1),
    UniformIntegerParameterRange("n", 1, 9, step_size=3),
    DiscreteParameterRange("opt", ["adam", "sgd"]),
    ParameterSet([{"model": "linear", "alpha": UniformParameterRange("alpha", 0.0, 1.0)}, {"model": "tree", "depth": 3}]),
]


def history(n: int, seed: int = 0) -> list[Suggestion]:
    return run(make(SPACE, seed=seed, sampler="random"), n)


def test_restore_rebuilds_finished_and_pending_trials() -> None:
    old = history(9)
    curve = ((1, 0.9), (2, 0.6))
    results = [
        TrialResult(JobStatus.COMPLETED, (0.3,), 2, curve),
        TrialResult(JobStatus.COMPLETED, (0.1,), 2, curve),
        TrialResult(JobStatus.PRUNED, None, 2, ((1, 0.9), (2, 0.7))),
        TrialResult(JobStatus.FAILED, None, None),
        TrialResult(JobStatus.ABORTED, (0.5,), 2, curve, reason=TIME_LIMIT),  # a value from an older store
        TrialResult(JobStatus.ABORTED, None, None),
        TrialResult(JobStatus.COMPLETED, None, None),
        TrialResult(JobStatus.ABORTED, (0.01,), 2, curve, interrupted=True),  # forgotten: not restored
    ]
    records = [TrialRecord(f"old{i}", s.params, r) for i, (s, r) in enumerate(zip(old, results))]
    records.append(TrialRecord("rerun", old[8].params, None))
    resumed = make(SPACE, seed=0)
    resumed.restore(records)

    trials = resumed.study.trials
    kept = [r for r in records if r.trial_id != "old7"]
    assert [t.user_attrs[JOB_ID_ATTR] for t in trials] == [r.trial_id for r in kept]
    assert [t.state for t in trials] == [
        TrialState.COMPLETE, TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL,
        TrialState.FAIL, TrialState.FAIL, TrialState.FAIL, TrialState.RUNNING,
    ]
    assert [t.value for t in trials[:3]] == [0.3, 0.1, 0.7]
    assert trials[4].values is None and trials[4].user_attrs[REASON_ATTR] == TIME_LIMIT
    assert trials[0].intermediate_values == {1: 0.9, 2: 0.6}
    for t, r in zip(trials, kept):
        assert resumed.mapping.encode(r.params)[0] == t.params  # the same Optuna parameters
    assert resumed.study.best_trial.user_attrs[JOB_ID_ATTR] == "old1"

    # the re-run job is told as if it had been asked
    assert resumed.report("rerun", 1, 0.05) is Verdict.CONTINUE
    resumed.tell("rerun", done(0.05))
    assert resumed.study.best_trial.user_attrs[JOB_ID_ATTR] == "rerun"
    more = run(resumed, 4, prefix="new")
    assert len(resumed.study.trials) == 12 and all(s.params for s in more)


def test_a_configuration_already_tried_is_drawn_again() -> None:
    """NSGA-II copies its elite parents: a resumed study must still not re-run what the store holds.
    Each repeat is drawn again; its trial is FAIL (no sampler reads it) and marked as a duplicate."""
    space = [UniformIntegerParameterRange("a", 0, 1000), UniformIntegerParameterRange("b", 0, 1000)]
    opts: dict[str, Any] = {"sampler": "nsga2", "sampler_options": {"population_size": 4}, "pruner": "none"}
    first = run(make(space, seed=3, **opts), 12)
    resumed = make(space, seed=3, **opts)
    resumed.restore([TrialRecord(f"old{i}", s.params, done(float(i))) for i, s in enumerate(first)])
    again = run(resumed, 12, prefix="new")
    old = {(s.params["a"], s.params["b"]) for s in first}
    new = [(s.params["a"], s.params["b"]) for s in again]
    assert not old & set(new) and len(set(new)) == len(new)
    dropped = [t for t in resumed.study.trials if t.user_attrs.get(DUPLICATE_ATTR)]
    assert dropped, "NSGA-II with 4 elite parents repeats some of them; the test expects redraws"
    assert all(t.state is TrialState.FAIL and JOB_ID_ATTR not in t.user_attrs for t in dropped)
    assert all((t.params["a"], t.params["b"]) in old | set(new) for t in dropped)


def test_a_resumed_tpe_learns_from_the_restored_trials() -> None:
    space = [UniformParameterRange("x", 0.0, 1.0)]

    def loss(params: dict[str, Any]) -> float:
        return (params["x"] - 0.8) ** 2

    old = run(make(space, seed=1, sampler="random"), 30, loss)
    resumed = make(space, seed=2)
    resumed.restore([TrialRecord(f"old{i}", s.params, done(loss(s.params))) for i, s in enumerate(old)])
    fresh = make(space, seed=2)
    err_resumed = sum(abs(s.params["x"] - 0.8) for s in run(resumed, 10, loss)) / 10
    err_fresh = sum(abs(s.params["x"] - 0.8) for s in run(fresh, 10, loss)) / 10  # TPE's random start-up
    assert err_resumed < 0.1 < err_fresh


@pytest.mark.parametrize("sampler", ["random", "tpe", "qmc"])
def test_a_resumed_study_does_not_replay_the_first_runs_draws(sampler: str) -> None:
    space = [UniformParameterRange("x", 0.0, 1.0), UniformParameterRange("y", 0.0, 1.0)]
    first = run(make(space, seed=0, sampler=sampler), 6)
    resumed = make(space, seed=0, sampler=sampler)
    resumed.restore([TrialRecord(f"old{i}", s.params, done(0.5)) for i, s in enumerate(first)])
    again = run(resumed, 6, prefix="new")
    old = {(s.params["x"], s.params["y"]) for s in first}
    assert not old & {(s.params["x"], s.params["y"]) for s in again}
    # and resuming is itself reproducible
    resumed2 = make(space, seed=0, sampler=sampler)
    resumed2.restore([TrialRecord(f"old{i}", s.params, done(0.5)) for i, s in enumerate(first)])
    assert [s.params for s in run(resumed2, 6, prefix="new")] == [s.params for s in again]


def test_restored_trials_fill_nsga2_generations() -> None:
    space = [UniformParameterRange("x", 0.0, 1.0)]
    records = [TrialRecord(f"old{i}", {"x": i / 10}, done((i / 10, 1 - i / 10))) for i in range(8)]
    resumed = make(space, objectives=TWO, sampler_options={"population_size": 4})
    resumed.restore(records)
    key = optuna.samplers.NSGAIISampler._get_generation_key()
    assert [t.system_attrs[key] for t in resumed.study.trials] == [0, 0, 0, 0, 1, 1, 1, 1]
    resumed.ask("new")
    assert resumed.optuna_trial("new").system_attrs[key] == 2  # type: ignore[union-attr]


def test_cmaes_resumes_from_the_best_restored_trial() -> None:
    space = [UniformParameterRange("x", 0.0, 1.0), UniformParameterRange("y", 0.0, 1.0)]
    records = [TrialRecord(f"old{i}", {"x": i / 10, "y": 0.5}, done(abs(i / 10 - 0.7))) for i in range(10)]
    resumed = make(space, sampler="cmaes")
    resumed.restore(records)
    assert resumed.study.sampler._x0 == {"x": 0.7, "y": 0.5}
    for s in run(resumed, 8):
        assert 0 <= s.params["x"] <= 1 and 0 <= s.params["y"] <= 1


def test_restore_skips_records_outside_the_space() -> None:
    resumed = make([UniformParameterRange("x", 0.0, 1.0)])
    resumed.restore([
        TrialRecord("in", {"x": 0.5}, done(0.2)),
        TrialRecord("out", {"x": 7.0}, done(0.1)),
        TrialRecord("missing", {}, None),
    ])
    assert [t.user_attrs[JOB_ID_ATTR] for t in resumed.study.trials] == ["in"]
    resumed.tell("missing", done(0.3))  # no crash for a job Optuna could not take
    assert isinstance(resumed.ask("next"), Suggestion)


# -- discovery and imports -----------------------------------------------------------------------
def test_discovery() -> None:
    reg = strategies()
    assert reg.get("optuna") is OptimizerOptuna
    assert reg.get("OptimizerOptuna") is OptimizerOptuna
    assert reg.entries["optuna"].distribution == "hyperscout-optuna"


def test_clearml_import_fallback_without_optuna() -> None:
    code = (
        "import sys\n"
        "sys.modules['optuna'] = None\n"
        "try:\n"
        "    from hyperscout_optuna import OptimizerOptuna\n"
        "except ImportError:\n"
        "    OptimizerOptuna = 'fallback'\n"
        "from hyperscout.plugins import backends, strategies\n"
        "print(OptimizerOptuna, 'optuna' in strategies(), 'local' in backends())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    # the import fails cleanly, the registry skips 'optuna' with a warning, other plugins still load
    assert out.stdout.split() == ["fallback", "False", "True"]
    assert "needs the optuna package" in out.stderr
    from hyperscout_optuna import OptimizerOptuna as direct

    assert direct is OptimizerOptuna
