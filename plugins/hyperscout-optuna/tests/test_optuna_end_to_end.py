"""Whole studies: HyperParameterOptimizer + the local backend + real trial processes + SQLite store."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from hyperscout import (
    Command,
    HyperParameterOptimizer,
    Job,
    JobStatus,
    UniformParameterRange,
    Verdict,
)
from hyperscout.objective import ObjectiveSet, pareto_front
from hyperscout_optuna import OptimizerOptuna
from hyperscout_optuna.strategy import INTERRUPTED_ATTR, JOB_ID_ATTR, REASON_ATTR

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).with_name("trial_script.py")
XY = [UniformParameterRange("x", 0.0, 1.0), UniformParameterRange("y", 0.0, 1.0)]


def study(tmp_path: Path, name: str, *, steps: int, sleep: float = 0.03, total: int, **kw: Any) -> HyperParameterOptimizer:
    kw.setdefault("objective_metric_title", "val")
    kw.setdefault("objective_metric_series", "loss")
    kw.setdefault("objective_metric_sign", "min")
    kw.setdefault("max_number_of_concurrent_tasks", 2)
    kw.setdefault("optimizer_class", "optuna")
    kw.setdefault("hyper_parameters", XY)
    return HyperParameterOptimizer(
        base_task_id=Command.for_script(SCRIPT, ["--steps", str(steps), "--sleep", str(sleep)]),
        total_max_jobs=total,
        study_name=name,
        storage=tmp_path / "store",
        seed=0,
        show_progress=False,
        **kw,
    )


def run(opt: HyperParameterOptimizer, **start: Any) -> list[Job]:
    opt.start_locally(**start)
    assert opt.wait(timeout=2.0)  # minutes
    jobs = opt.get_all_experiments()
    opt.stop()
    return jobs


def iterations_logged(job: Job) -> list[int]:
    assert job.stdout_path is not None
    return [int(n) for n in re.findall(r"^iteration (\d+)$", Path(job.stdout_path).read_text(), re.M)]


def test_a_study_finishes_with_the_expected_jobs(tmp_path: Path) -> None:
    calls: list[tuple[Any, ...]] = []
    sampler = optuna.samplers.TPESampler(seed=0, n_startup_trials=3)
    opt = study(tmp_path, "finish", steps=3, total=6, optimizer_class=OptimizerOptuna,
                optuna_sampler=sampler, optuna_pruner="none")
    jobs = run(opt, job_complete_callback=lambda *a: calls.append(a))
    assert len(jobs) == 6 and all(j.status is JobStatus.COMPLETED for j in jobs)
    assert len(calls) == 6
    trials = opt.get_optimizer().study.trials  # type: ignore[attr-defined]
    assert all(t.state is TrialState.COMPLETE for t in trials)
    by_job = {t.user_attrs[JOB_ID_ATTR]: t for t in trials}
    assert set(by_job) == {j.id for j in jobs}
    for j in jobs:
        assert by_job[j.id].value == pytest.approx(j.objective_value)
        assert by_job[j.id].params == {"x": j.params["x"], "y": j.params["y"]}
        assert iterations_logged(j) == [1, 2, 3]


@pytest.mark.parametrize(
    ("pruner", "options", "limits"),
    [
        ("median", {"n_startup_trials": 2}, {"min_iteration_per_job": 3, "max_iteration_per_job": 12}),
        ("hyperband", {"reduction_factor": 3}, {"min_iteration_per_job": 1, "max_iteration_per_job": 9}),
    ],
)
def test_the_pruner_prunes_real_processes(tmp_path: Path, pruner: str, options: dict[str, Any],
                                          limits: dict[str, int]) -> None:
    steps = 12
    opt = study(tmp_path, f"prune-{pruner}", steps=steps, total=10, sampler="random", pruner=pruner,
                pruner_options=options, **limits)
    jobs = run(opt)
    pruned = [j for j in jobs if j.status is JobStatus.PRUNED]
    completed = [j for j in jobs if j.status is JobStatus.COMPLETED]
    assert pruned and completed and len(pruned) + len(completed) == 10
    cap = limits["max_iteration_per_job"]
    grace = limits["min_iteration_per_job"]
    states = {t.user_attrs[JOB_ID_ATTR]: t.state for t in opt.get_optimizer().study.trials}  # type: ignore[attr-defined]
    for j in pruned:
        logged = iterations_logged(j)
        assert "pruned by optuna" in (j.reason or "")
        stopped_at = int(re.search(r"iteration (\d+)", j.reason or "").group(1))  # type: ignore[union-attr]
        assert grace <= stopped_at < cap
        assert logged and logged[-1] < steps  # the process was killed: its log ends early
        assert "done" not in Path(j.stdout_path or "").read_text()
        assert states[j.id] is TrialState.PRUNED
    for j in completed:
        assert iterations_logged(j)[-1] >= cap
        assert states[j.id] is TrialState.COMPLETE


def test_several_objectives_rank_the_non_dominated_first(tmp_path: Path) -> None:
    opt = study(tmp_path, "pareto", steps=2, total=8, objective_metric_title=["val", "val"],
                objective_metric_series=["loss", "cost"], objective_metric_sign=["min", "min"],
                sampler_options={"population_size": 4})
    jobs = run(opt)
    assert len(jobs) == 8 and all(j.status is JobStatus.COMPLETED for j in jobs)
    objectives: ObjectiveSet = opt.objectives
    front = {j.id for j in pareto_front(jobs, lambda j: j.objective_values, objectives)}
    top = opt.get_top_experiments(8)
    assert {j.id for j in top[: len(front)]} == front
    optuna_front = {t.user_attrs[JOB_ID_ATTR] for t in opt.get_optimizer().study.best_trials}  # type: ignore[attr-defined]
    assert optuna_front == front


def test_a_resumed_study_keeps_its_jobs_and_optuna_sees_them(tmp_path: Path) -> None:
    first = study(tmp_path, "resume", steps=3, total=4)
    old = run(first)
    assert len(old) == 4 and all(j.status is JobStatus.COMPLETED for j in old)

    second = study(tmp_path, "resume", steps=3, total=7)
    jobs = run(second)
    assert len(jobs) == 7
    by_id = {j.id: j for j in jobs}
    for j in old:  # the old jobs are kept as they were
        assert by_id[j.id].status is JobStatus.COMPLETED
        assert by_id[j.id].objective_values == j.objective_values
    trials = second.get_optimizer().study.trials  # type: ignore[attr-defined]
    assert [t.user_attrs[JOB_ID_ATTR] for t in trials[:4]] == [j.id for j in old]
    assert {t.user_attrs[JOB_ID_ATTR] for t in trials} == set(by_id)
    assert all(t.state is TrialState.COMPLETE for t in trials)


def test_an_interrupted_job_is_forgotten_then_rerun_and_told_to_optuna(tmp_path: Path) -> None:
    reported = threading.Event()

    class Signalling(OptimizerOptuna):
        """Tells the test when the first job has reported, so it stops the study mid-job."""

        def report(self, trial_id: str, iteration: int, value: float) -> Verdict:
            verdict = super().report(trial_id, iteration, value)
            reported.set()
            return verdict

    first = study(tmp_path, "interrupt", steps=400, sleep=0.05, total=4, max_number_of_concurrent_tasks=1,
                  optimizer_class=Signalling)
    first.start_locally()
    assert reported.wait(timeout=60)
    first.stop()
    interrupted = [j for j in first.get_all_experiments() if j.status is JobStatus.ABORTED]
    assert len(interrupted) == 1
    told = first.get_optimizer().optuna_trial(interrupted[0].id)  # type: ignore[attr-defined]
    assert told is not None and told.state is TrialState.FAIL and told.values is None
    assert told.user_attrs[INTERRUPTED_ATTR] is True

    second = study(tmp_path, "interrupt", steps=2, total=2, max_number_of_concurrent_tasks=1)
    jobs = run(second)
    rerun = [j for j in jobs if j.retry_of == interrupted[0].id]
    assert len(rerun) == 1 and rerun[0].status is JobStatus.COMPLETED
    assert rerun[0].params == interrupted[0].params
    resumed = second.get_optimizer()
    assert resumed.optuna_trial(interrupted[0].id) is None  # type: ignore[attr-defined]
    trial = resumed.optuna_trial(rerun[0].id)  # type: ignore[attr-defined]
    assert trial is not None and trial.state is TrialState.COMPLETE
    assert trial.value == pytest.approx(rerun[0].objective_value)


def test_a_job_past_its_time_limit_is_failed_in_optuna(tmp_path: Path) -> None:
    # 0.01 minute = 0.6 s for jobs that would run 20 s: the engine aborts each of them
    opt = study(tmp_path, "slow", steps=400, sleep=0.05, total=2, pruner="none", time_limit_per_job=0.01)
    jobs = run(opt)
    assert len(jobs) == 2 and all(j.status is JobStatus.ABORTED and j.metrics for j in jobs)
    trials = opt.get_optimizer().study.trials  # type: ignore[attr-defined]
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.FAIL]
    assert all(t.values is None and "time_limit_per_job" in t.user_attrs[REASON_ATTR] for t in trials)
