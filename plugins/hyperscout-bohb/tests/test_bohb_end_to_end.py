"""Real studies: HyperParameterOptimizer + the local backend + a subprocess trial script."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import pytest

from hyperscout import DiscreteParameterRange, HyperParameterOptimizer, JobStatus, UniformParameterRange

TRIAL = Path(__file__).with_name("bohb_trial.py")


def _stdout_lines(job) -> list[str]:  # type: ignore[no-untyped-def]
    return Path(job.stdout_path).read_text().strip().splitlines()


def _optimizer(tmp_path: Path, name: str, params, **kw):  # type: ignore[no-untyped-def]
    return HyperParameterOptimizer(
        base_task_id=str(TRIAL),
        hyper_parameters=params,
        objective_metric_title="val",
        objective_metric_series="loss",
        objective_metric_sign="min",
        storage=tmp_path / "store",
        study_name=name,
        seed=0,
        show_progress=False,
        **kw,
    )


def test_jobs_stop_at_their_rung_budget(tmp_path: Path) -> None:
    # eta=3 over 1..3: bracket 0 is 3 jobs @ 1 + 1 job @ 3, bracket 1 is 2 jobs @ 3 -> 6 jobs
    opt = _optimizer(
        tmp_path, "bohb-iterations", [UniformParameterRange("x", 0.0, 1.0)],
        optimizer_class="OptimizerBOHB", max_number_of_concurrent_tasks=2, total_max_jobs=6,
        min_iteration_per_job=1, max_iteration_per_job=3,
    )
    opt.start_locally()
    assert opt.wait(timeout=120)
    opt.stop()
    jobs = opt.get_all_experiments()
    assert len(jobs) == 6  # total_max_jobs counts every rung run
    assert Counter(j.budget for j in jobs) == Counter({1.0: 3, 3.0: 3})
    for job in jobs:
        assert job.status is JobStatus.COMPLETED, (job.status, job.reason)
        assert "reached its budget" in (job.reason or "")
        assert job.objective_iterations == [int(job.budget)]
        # The job may run on for the engine's stop grace (its later, better losses are kept, marked
        # after the stop point) but its value, the one the promotions use, is the budget iteration's.
        assert job.objective_values == [pytest.approx((job.params["x"] - 0.25) ** 2 + 1.0 / job.budget, rel=1e-9)]
        assert "done" not in _stdout_lines(job)  # stopped, not run to the script's end
    # the budget-3 job of bracket 0 re-runs the best budget-1 configuration
    first_rung = sorted(jobs[:3], key=lambda j: j.objective_values[0])
    assert jobs[3].params == first_rung[0].params and jobs[3].id != first_rung[0].id


def test_budget_parameter_goes_on_the_command_line(tmp_path: Path) -> None:
    opt = _optimizer(
        tmp_path, "bohb-epochs", [UniformParameterRange("x", 0.0, 1.0)],
        optimizer_class="bohb", budget_parameter="epochs", max_number_of_concurrent_tasks=2,
        total_max_jobs=4, min_iteration_per_job=1, max_iteration_per_job=3,
    )
    opt.start_locally()
    assert opt.wait(timeout=120)
    opt.stop()
    jobs = opt.get_all_experiments()
    assert len(jobs) == 4
    assert sorted(j.params["epochs"] for j in jobs) == [1, 1, 1, 3]
    for job in jobs:
        assert job.budget is None and job.status is JobStatus.COMPLETED
        lines = _stdout_lines(job)
        assert f"--epochs {job.params['epochs']}" in lines[0]
        assert [ln for ln in lines if ln.startswith("iteration")][-1] == f"iteration {job.params['epochs']}"
        if job.params["epochs"] < 3:  # ended by itself (at 3, max_iteration_per_job stops it right there)
            assert lines[-1] == "done"


def test_a_job_aborted_for_time_counts_as_failed_and_the_bracket_moves_on(tmp_path: Path) -> None:
    opt = _optimizer(
        tmp_path, "sh-timeout", [DiscreteParameterRange("hang", [0, 1]), UniformParameterRange("x", 0.0, 1.0)],
        optimizer_class="sh", max_number_of_concurrent_tasks=3, total_max_jobs=4,
        min_iteration_per_job=1, max_iteration_per_job=3, time_limit_per_job=1.5 / 60,
    )
    opt.start_locally()
    assert opt.wait(timeout=120)
    opt.stop()
    jobs = opt.get_all_experiments()
    assert len(jobs) == 4
    first, promoted = jobs[:3], jobs[3]
    for job in first:
        if job.params["hang"]:
            assert job.status is JobStatus.ABORTED and "time_limit_per_job" in (job.reason or "")
            assert job.history("val", "loss") == [(0, -100.0)]  # it did report, before the limit
            assert job.objective_values is None  # ... but an aborted job has no value
        else:
            assert job.status is JobStatus.COMPLETED
    survivors = [j for j in first if j.status is JobStatus.COMPLETED]
    assert promoted.budget == 3.0
    if survivors:  # an aborted job is never promoted, whatever it reported before the limit
        best = min(survivors, key=lambda j: j.objective_values[0])
        assert promoted.params == best.params
    else:  # nobody survived: hpbandster fills the rung with a new configuration
        assert all(promoted.params != j.params for j in first)



def test_a_stopped_study_resumes_with_its_model_and_its_interrupted_jobs(tmp_path: Path) -> None:
    import time

    params = [UniformParameterRange("x", 0.0, 1.0)]
    limits = {"optimizer_class": "bohb", "max_number_of_concurrent_tasks": 2,
              "min_iteration_per_job": 1, "max_iteration_per_job": 3}
    first = _optimizer(tmp_path, "bohb-resume", params, total_max_jobs=6, **limits)
    first.start_locally()
    # stop while a budget-3 job runs: it needs two more half-second iterations, time enough
    deadline = time.time() + 60
    while time.time() < deadline and not any(
        j.budget == 3.0 and j.status is JobStatus.RUNNING for j in first.get_active_experiments()
    ):
        time.sleep(0.02)
    first.stop()  # the running jobs are aborted and marked interrupted
    before = first.get_all_experiments()
    interrupted = [j for j in before if j.interrupted]
    assert 3.0 in {j.budget for j in interrupted}
    assert len([j for j in before if j.status is JobStatus.COMPLETED]) >= 3  # the budget-1 rung

    second = _optimizer(tmp_path, "bohb-resume", params, total_max_jobs=6, **limits)
    strategy = second.get_optimizer()
    restored: list[int] = []
    real_restore = strategy.restore
    restore_done = threading.Event()

    def restore_and_count(records):  # type: ignore[no-untyped-def]
        real_restore(records)
        restored.append(sum(len(v) for v in strategy.driver.generator.losses.values()))
        restore_done.set()

    strategy.restore = restore_and_count  # type: ignore[method-assign]
    second.start_locally()
    assert restore_done.wait(timeout=60)  # the engine restores on the study's thread, before its first ask
    # restore() ran before the first ask: the model holds the finished jobs, the interrupted ones
    # sit in a fresh bracket that starts at their budget
    assert restored == [len([j for j in before if j.status is JobStatus.COMPLETED])]
    assert strategy.opened[0].budgets[0] == min(j.budget for j in interrupted)
    assert second.wait(timeout=120)
    second.stop()
    jobs = [j for j in second.get_all_experiments() if j.superseded_by is None]
    assert len(jobs) == 6  # total_max_jobs counts across the resume
    assert all(j.status is JobStatus.COMPLETED for j in jobs), [(j.status, j.reason) for j in jobs]
    reruns = [j for j in jobs if j.retry_of is not None]
    assert sorted(j.retry_of for j in reruns) == sorted(j.id for j in interrupted)
    for j in reruns:  # an interrupted job re-runs at its own budget, now as part of a fresh bracket
        original = next(o for o in interrupted if o.id == j.retry_of)
        assert j.params == original.params and j.budget == original.budget
        assert j.objective_iterations == [int(j.budget)]
