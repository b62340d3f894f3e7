"""Whole studies through the real engine, strategies, store and hooks, on the virtual clock."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from simkit import Listed, Sample, make_optimizer, run, steady

from hyperscout import HyperParameterOptimizer, JobStatus, UniformParameterRange, hookimpl
from hyperscout.config import load_study
from hyperscout.plugins import get_plugin_manager
from hyperscout.store import Store


def noisy(params: dict, budget: float | None, *, rng: Any) -> Any:
    """A curve with noise from the job's rng and a duration that depends on the configuration."""
    for i in range(1, int(budget or 8) + 1):
        yield 0.5 + params["x"], i, {"validation/loss": (params["x"] - 0.3) ** 2 + 1.0 / i + rng.gauss(0, 0.01)}


def test_two_thousand_jobs_run_through_the_engine_and_the_store(tmp_path: Path) -> None:
    opt = run(make_optimizer(tmp_path, steady(step=1.0, iterations=10), total_max_jobs=2000,
                             max_number_of_concurrent_tasks=50))
    assert opt.study.end_reason == "total_max_jobs" and opt.study.launched == 2000
    assert opt.study.counts()["completed"] == 2000
    with sqlite3.connect(Store(tmp_path / "store", readonly=True).path) as db:
        assert db.execute("SELECT COUNT(*), SUM(status='completed') FROM jobs").fetchone() == (2000, 2000)
        assert db.execute("SELECT COUNT(*) FROM metrics").fetchone() == (20_000,)
    best = opt.get_top_experiments(1)[0]
    assert best.objective_values == [best.params["x"] + 0.1]
    assert opt.study.elapsed >= 2000 * 10 / 50


def _outcome(opt: HyperParameterOptimizer) -> tuple[list[Any], list[float]]:
    """What was decided (exactly), and when (virtual seconds from the first launch)."""
    jobs = opt.get_all_experiments()
    t0 = min(j.queued for j in jobs)
    decided = [(j.number, j.params, j.status.value, j.reason, j.objective_values, j.objective_iterations,
                [(m.key, m.iteration, m.value, m.after_stop) for m in j.metrics]) for j in jobs]
    times = [t - t0 for j in jobs for t in (j.queued, j.started if j.started is not None else j.queued, j.ended)]
    return decided, times


def test_a_study_is_deterministic_given_its_seeds(tmp_path: Path) -> None:
    def study(where: str, origin: int) -> tuple[list[Any], list[float]]:
        opt = make_optimizer(tmp_path / where, noisy, total_max_jobs=60, max_number_of_concurrent_tasks=6,
                             max_iteration_per_job=6, time_limit_per_job=0.1, strategy_options={"prune_above": 0.5},
                             backend_options={"workers": 4, "startup": 0.25, "queue_delay": 0.1, "origin": origin})
        return _outcome(run(opt))

    decided, times = study("a", 1_000_000)
    assert {row[2] for row in decided} >= {"completed", "pruned", "aborted"}
    assert study("b", 1_000_000) == (decided, times)
    other = study("c", 1_700_000_000)
    assert other[0] == decided, "where the clock starts changes no decision"
    assert other[1] == pytest.approx(times, abs=1e-5), "only the rounding of absolute times differs"


def test_different_backend_seeds_give_different_noise(tmp_path: Path) -> None:
    a = run(make_optimizer(tmp_path / "a", noisy, total_max_jobs=3, backend_options={"seed": 1}))
    b = run(make_optimizer(tmp_path / "b", noisy, total_max_jobs=3, backend_options={"seed": 2}))
    pa = [j.params for j in a.get_all_experiments()]
    assert pa == [j.params for j in b.get_all_experiments()]
    assert [j.objective_values for j in a.get_all_experiments()] != [j.objective_values for j in b.get_all_experiments()]


def test_a_callable_base_task_picks_the_sim_backend_by_itself(tmp_path: Path) -> None:
    opt = HyperParameterOptimizer(steady(iterations=2), [UniformParameterRange("x", 0, 1)], "validation", "loss",
                                  optimizer_class=Sample, total_max_jobs=3, storage=tmp_path / "st",
                                  show_progress=False)
    run(opt)
    assert opt.study.backend_name == "sim" and opt.study.counts()["completed"] == 3


def test_hooks_see_virtual_times(tmp_path: Path) -> None:
    seen: list[tuple[str, float]] = []

    class Watch:
        @hookimpl
        def hyperscout_job_started(self, study: Any, job: Any) -> None:
            seen.append(("started", study.now()))

        @hookimpl
        def hyperscout_job_finished(self, study: Any, job: Any) -> None:
            seen.append(("finished", job.ended - job.started))

    pm = get_plugin_manager()
    pm.register(Watch())
    opt = make_optimizer(tmp_path, steady(step=2.0, iterations=3), total_max_jobs=4, max_number_of_concurrent_tasks=1)
    opt.pm = pm
    run(opt)
    assert [k for k, _ in seen] == ["started", "finished"] * 4
    assert [round(v, 6) for k, v in seen if k == "finished"] == [6.0] * 4
    starts = [v - seen[0][1] for k, v in seen if k == "started"]
    assert [round(s, 6) for s in starts] == [0.0, 6.0, 12.0, 18.0]


def test_the_budget_reaches_the_job_function_with_or_without_the_launch_hook(tmp_path: Path) -> None:
    got: list[float | None] = []

    def job(params: dict, budget: float | None) -> Any:
        got.append(budget)
        yield from steady(iterations=12)(params, budget)

    opt = make_optimizer(tmp_path, job, strategy_options={"budget": 4}, total_max_jobs=2)
    opt.pm = get_plugin_manager(load_entrypoints=False)  # no entry points: the budget never reaches the backend
    from hyperscout_sim import plugin

    opt.pm.register(plugin)
    run(opt)
    assert got == [4, 4]
    opt2 = make_optimizer(tmp_path, job, name="bare", strategy_options={"budget": 4}, total_max_jobs=2)
    opt2.pm = get_plugin_manager(load_entrypoints=False)
    run(opt2)
    assert got[2:] == [4, 4]  # the budget comes in the job's spec (JobSpec.budget) even without the hook
    assert all(j.objective_iterations == [4] and j.status is JobStatus.COMPLETED for j in opt2.get_all_experiments())


def test_a_study_file_names_the_job_function_as_its_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "jobs.py").write_text(
        "def job(params, budget):\n"
        "    for i in range(1, 4):\n"
        "        yield 1.0, i, {'validation/loss': params['x'] / i}\n"
    )
    study = tmp_path / "study.toml"
    study.write_text(
        '[study]\nname = "from-file"\n[task]\ntask_id = "jobs:job"\n'
        '[objective]\ntitle = "validation"\nseries = "loss"\nsign = "min"\n'
        '[backend]\nname = "sim"\noptions = { workers = 2, startup = 1.5 }\n'
        '[limits]\ntotal_max_jobs = 6\nmax_number_of_concurrent_tasks = 3\n'
        '[[parameters]]\nname = "x"\ntype = "UniformParameterRange"\nmin_value = 0.0\nmax_value = 1.0\n'
    )
    monkeypatch.chdir(tmp_path)  # `hyperscout run` from the study's directory: its modules are importable
    kwargs = load_study(study).optimizer_kwargs()
    kwargs.update(optimizer_class=Sample, show_progress=False)
    opt = run(HyperParameterOptimizer(**kwargs))
    jobs = opt.get_all_experiments()
    assert len(jobs) == 6 and all(j.status is JobStatus.COMPLETED for j in jobs)
    assert all(j.ended - j.started == pytest.approx(4.5) for j in jobs)  # 1.5 s start-up + 3 steps of 1 s
    assert any(j.started - j.queued > 0 for j in jobs), "the third job at a time waited for one of two workers"


def test_the_cli_runs_a_simulated_study(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("hyperscout_random", reason="the study file names the 'random' strategy")
    from hyperscout.cli import main

    study = tmp_path / "study.toml"
    study.write_text(
        '[task]\ntask_id = "hyperscout_sim.examples:curve"\n'
        '[objective]\ntitle = "validation"\nseries = "loss"\n'
        '[backend]\nname = "sim"\n[limits]\ntotal_max_jobs = 20\nmax_number_of_concurrent_tasks = 4\n'
        'max_iteration_per_job = 10\n'
        '[[parameters]]\nname = "x"\ntype = "UniformParameterRange"\nmin_value = 0.0\nmax_value = 1.0\n'
    )
    monkeypatch.chdir(tmp_path)
    assert main(["run", str(study), "--top", "3"]) == 0
    out = capsys.readouterr().out
    assert "backend sim" in out and "rank" in out
    assert main(["status", "study", "--storage", str(tmp_path / ".hyperscout")]) == 0
    assert capsys.readouterr().out.count("  completed  ") == 20


def test_listed_configurations_run_in_order(tmp_path: Path) -> None:
    configs = [{"x": 0.1}, {"x": 0.7}, {"x": 0.4}]
    opt = run(make_optimizer(tmp_path, steady(iterations=2), strategy=Listed, strategy_options={"configs": configs}))
    assert [j.params for j in opt.get_all_experiments()] == configs
    assert opt.study.end_reason == "exhausted"


def test_a_stopped_study_resumes_and_reruns_what_was_interrupted(tmp_path: Path) -> None:
    first = run(make_optimizer(tmp_path, steady(step=5.0, iterations=5), name="again", optimization_time_limit=1.0))
    cut = [j for j in first.get_all_experiments() if j.interrupted]
    assert first.study.end_reason == "time_limit" and len(cut) == 2
    second = run(make_optimizer(tmp_path, steady(step=5.0, iterations=5), name="again", total_max_jobs=8))
    assert second.study.end_reason == "total_max_jobs"
    jobs = second.get_all_experiments()
    reruns = {j.retry_of: j for j in jobs if j.retry_of}
    assert set(reruns) == {j.id for j in cut}, "the simulation adopts nothing: each interrupted job runs again"
    assert all(r.status is JobStatus.COMPLETED and r.params == old.params for old in cut for r in [reruns[old.id]])
    assert sum(1 for j in jobs if j.superseded_by is None) == 8
