"""Every limit the engine enforces, on the virtual clock: no sleep, whatever the limit's length."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from simkit import Sample, approx, make_optimizer, run, steady

from hyperscout import JobStatus


def jobs_of(opt: Any) -> list[Any]:
    return opt.get_all_experiments()


def test_time_limit_per_job_aborts_at_the_limit_in_virtual_time(tmp_path: Path) -> None:
    # 100 virtual seconds of work against a 30 s limit (0.5 minute): aborted at 30 s, each of three.
    opt = run(make_optimizer(tmp_path, steady(step=10.0, iterations=10), time_limit_per_job=0.5,
                             total_max_jobs=3, max_number_of_concurrent_tasks=1))
    jobs = jobs_of(opt)
    assert [j.status for j in jobs] == [JobStatus.ABORTED] * 3
    for j in jobs:
        assert "time_limit_per_job (30 s)" in (j.reason or "") and not j.interrupted
        assert j.ended - j.started == approx(30.0)
        assert j.objective_values is None, "an aborted job is never ranked"
        assert [i for i, _ in j.history("validation", "loss")][:2] == [1, 2]
    assert opt.study.elapsed >= 90.0
    assert opt.get_top_experiments(3) == []


def test_optimization_time_limit_stops_the_study_and_interrupts_running_jobs(tmp_path: Path) -> None:
    # Jobs of 25 s, two at a time, one virtual minute: 4 complete (at 25 s and 50 s), 2 are cut.
    called: list[str] = []
    opt = run(make_optimizer(tmp_path, steady(step=5.0, iterations=5), optimization_time_limit=1.0),
              callback=lambda job_id, value, iteration, params, best: called.append(job_id))
    assert opt.study.end_reason == "time_limit"
    jobs = jobs_of(opt)
    done = [j for j in jobs if j.status is JobStatus.COMPLETED]
    cut = [j for j in jobs if j.status is JobStatus.ABORTED]
    assert len(done) == 4 and len(cut) == 2 and len(jobs) == 6
    assert all(j.interrupted and "study stopped (time_limit)" in (j.reason or "") for j in cut)
    assert called == [j.id for j in done], "the callback fires once per completed job, never for an interrupted one"
    assert {j.id for j in opt.get_top_experiments(10)} == {j.id for j in done}
    assert 55.0 < opt.study.elapsed < 61.0  # the deadline is set on the wall clock and moved onto the virtual one


def test_compute_time_limit_sums_the_running_time_of_all_jobs(tmp_path: Path) -> None:
    # Jobs of 20 s, two at a time, 60 s of compute: two complete at 20 s (40 s used), two are
    # interrupted when the pair after them has run 10 s each (60 s used), at about 30 s.
    opt = run(make_optimizer(tmp_path, steady(step=5.0, iterations=4), compute_time_limit=1.0))
    assert opt.study.end_reason == "compute_time_limit"
    jobs = jobs_of(opt)
    assert [j.status for j in jobs] == [JobStatus.COMPLETED] * 2 + [JobStatus.ABORTED] * 2
    assert all(j.interrupted for j in jobs[2:])
    used = sum(j.ended - j.started for j in jobs)
    assert 60.0 <= used < 61.0


def test_time_limit_queued_aborts_jobs_that_wait_for_a_worker(tmp_path: Path) -> None:
    # One worker, three jobs at a time, 30 s allowed in the queue: the first runs its 100 s, the
    # others wait, are aborted at 30 s, and so are the two launched in their place.
    opt = run(make_optimizer(tmp_path, steady(step=10.0, iterations=10), backend_options={"workers": 1},
                             time_limit_queued=0.5, total_max_jobs=5, max_number_of_concurrent_tasks=3))
    jobs = jobs_of(opt)
    assert jobs[0].status is JobStatus.COMPLETED
    for j in jobs[1:]:
        assert j.status is JobStatus.ABORTED and j.started is None and not j.interrupted
        assert "time_limit_queued (30 s)" in (j.reason or "") and "is a worker serving it?" in (j.reason or "")
        assert j.ended - j.queued == approx(30.0)
    assert opt.study.end_reason == "total_max_jobs"


def test_total_max_iterations_stops_asking_and_running_jobs_finish_their_budget(tmp_path: Path) -> None:
    seen: list[float | None] = []

    def job(params: dict, budget: float | None) -> Any:
        seen.append(budget)
        for i in range(1, int(budget or 50) + 1):  # a well-behaved script stops at its budget
            yield 1.0, i, {"validation/loss": params["x"] + 1.0 / i}

    # Budget 10 per job, 25 iterations in all, two at a time: the first pair uses 20, the second
    # pair crosses 25 while it runs and still finishes its 10 each; no fifth job starts.
    opt = run(make_optimizer(tmp_path, job, strategy_options={"budget": 10}, total_max_iterations=25))
    jobs = jobs_of(opt)
    assert len(jobs) == 4 and seen == [10, 10, 10, 10], "the job function is told its budget"
    assert all(j.status is JobStatus.COMPLETED and j.objective_iterations == [10] for j in jobs)
    assert all("exited by itself" in (j.reason or "") for j in jobs)
    assert opt.study.iterations_used == 40 and opt.study.end_reason == "total_max_iterations"


def test_max_iteration_per_job_completes_the_job_with_its_value_at_the_cap(tmp_path: Path) -> None:
    # The job never stops by itself and keeps improving: the result is the value at iteration 5,
    # the later (better) points are kept as after-stop history only.
    opt = run(make_optimizer(tmp_path, steady(step=1.0, iterations=None, value=lambda p, i: 1.0 / i),
                             max_iteration_per_job=5, total_max_jobs=2))
    for j in jobs_of(opt):
        assert j.status is JobStatus.COMPLETED and j.objective_iterations == [5]
        assert j.objective_values == [1.0 / 5]
        assert "reached its budget of 5 iterations" in (j.reason or "") and "signalled after" in (j.reason or "")
        later = [i for i, _ in j.history("validation", "loss", after_stop=True) if i > 5]
        assert later, "the job ran on through its stop grace"
        assert [i for i, _ in j.history("validation", "loss")] == [1, 2, 3, 4, 5]
        assert j.exit_code == -15
    assert opt.get_top_experiments(1)[0].objective_values == [0.2]


def test_total_max_jobs_and_concurrency_are_never_exceeded(tmp_path: Path) -> None:
    peak = {"now": 0, "max": 0}

    def job(params: dict, budget: float | None) -> Any:
        peak["now"] += 1
        peak["max"] = max(peak["max"], peak["now"])
        try:
            for i in range(1, 4):
                yield 1.0 + params["x"], i, {"validation/loss": params["x"]}
        finally:
            peak["now"] -= 1

    opt = run(make_optimizer(tmp_path, job, total_max_jobs=37, max_number_of_concurrent_tasks=5))
    assert len(jobs_of(opt)) == 37 and opt.study.end_reason == "total_max_jobs"
    assert peak["max"] == 5


def test_pruning_by_a_strategy_verdict(tmp_path: Path) -> None:
    # loss = x + 1/i: the strategy prunes at iteration 3 every job whose loss is still above 0.9.
    opt = run(make_optimizer(tmp_path, steady(step=1.0, iterations=10), strategy=Sample,
                             strategy_options={"prune_above": 0.9, "prune_at": 3}, total_max_jobs=40,
                             max_number_of_concurrent_tasks=4))
    jobs = jobs_of(opt)
    pruned = [j for j in jobs if j.status is JobStatus.PRUNED]
    done = [j for j in jobs if j.status is JobStatus.COMPLETED]
    assert pruned and done and len(pruned) + len(done) == 40
    for j in pruned:
        assert j.params["x"] + 1 / 3 > 0.9 and j.reason == "pruned by test-sample at iteration 3"
        assert [i for i, _ in j.history("validation", "loss")] == [1, 2, 3]
        assert j.exit_code == -15 and j.objective_values is None
    assert all(j.params["x"] + 1 / 3 <= 0.9 and j.objective_iterations == [10] for j in done)
    strategy = opt.get_optimizer()
    assert sorted(r.status.value for r in strategy.told.values()) == sorted(j.status.value for j in jobs)
