"""Studies through ``HyperParameterOptimizer`` with the ``clearml`` backend, against the FAKE server and agent.

The optimizer runs in the test process (no optimizer task: no ``Task.init`` here, as ClearML without a current
task); each trial is a real process run by the fake agent, reporting through the real SDK. Tests wait on the
optimizer (``wait()``), the store and the fake server's state, never on fixed sleeps.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hyperscout import DiscreteParameterRange, HyperParameterOptimizer, UniformParameterRange
from hyperscout.errors import ConfigError
from hyperscout.store import Store
from hyperscout_clearml.backend import JOB_TAG
from hyperscout_clearml.fake_agent import FakeAgent
from hyperscout_clearml.fake_server import FakeClearMLServer

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"), pytest.mark.usefixtures("random_strategy")]


def _loss(lr: float, epochs: int) -> float:
    return 1.0 / (1.0 + lr * epochs)


def make_optimizer(server: FakeClearMLServer, base: str, tmp_path: Path, **overrides: Any) -> HyperParameterOptimizer:
    kwargs: dict[str, Any] = dict(
        base_task_id=base,
        hyper_parameters=[UniformParameterRange("Args/lr", 0.05, 1.0), DiscreteParameterRange("General/epochs", [2, 3])],
        objective_metric_title="validation",
        objective_metric_series="loss",
        objective_metric_sign="min",
        optimizer_class="random",
        max_number_of_concurrent_tasks=2,
        execution_queue=server.scoped("default"),
        total_max_jobs=4,
        pool_period_min=0.005,
        storage=tmp_path / "store",
        show_progress=False,
        seed=7,
        backend_options={"retry_seconds": 5.0, "request_timeout": 10.0},
    )
    kwargs.update(overrides)
    return HyperParameterOptimizer(**kwargs)


def children(server: FakeClearMLServer, base: str) -> list[dict[str, Any]]:
    return [server.task(t) for t in server.task_ids(parent=base)]


def test_random_study_runs_clones_and_reports_values(
    server: FakeClearMLServer, base_task: str, start_agent: Callable[..., FakeAgent], tmp_path: Path
) -> None:
    start_agent(workers=2)
    calls: list[tuple[Any, ...]] = []
    opt = make_optimizer(server, base_task, tmp_path)
    assert opt._backend_cls.name == "clearml"  # chosen by the task id, nothing named
    opt.start(job_complete_callback=lambda *a: calls.append(a))
    assert opt.wait(timeout=3)
    opt.stop()

    jobs = opt.get_all_experiments()
    assert [j.status.value for j in jobs] == ["completed"] * 4, [(j.status, j.reason) for j in jobs]
    tasks = {t["id"]: t for t in children(server, base_task)}
    assert len(tasks) == 4 and {j.handle for j in jobs} == set(tasks)  # one clone per job, recorded as its handle
    for job in jobs:
        task = tasks[job.handle]
        lr, epochs = job.params["Args/lr"], job.params["General/epochs"]
        assert task["status"] == "completed"
        assert server.hyperparams(job.handle) == {
            "General": {"epochs": str(epochs), "sleep": "0.0", "fail": "False", "marker": ""},
            "Args": {"lr": str(lr), "optimizer": "sgd"},
        }
        assert set(task["tags"]) == {"optimization", "opt", f"{JOB_TAG}{job.id}"}  # no optimizer task: "opt"
        assert task["name"] == f"base: Args/lr={lr} General/epochs={epochs}"
        assert task["comment"] == f"Args/lr={lr}\nGeneral/epochs={epochs}"
        assert task["project"] == server.task(base_task)["project"]
        assert job.objective_values == [pytest.approx(_loss(lr, epochs))]  # the server's last value
        assert job.objective_iterations == [epochs - 1]
    # the callback: once per job, with its final value, ClearML's argument types
    assert sorted(c[0] for c in calls) == sorted(j.id for j in jobs)
    for job_id, value, iteration, params, best in calls:
        job = next(j for j in jobs if j.id == job_id)
        assert value == job.objective_values[0] and iteration == job.objective_iterations[0] and params == job.params
        assert best in {j.id for j in jobs}
    top = opt.get_top_experiments_details(2)
    assert [d["task_id"] for d in top] == [j.handle for j in opt.get_top_experiments(2)]
    # requests: two per launch, and the optimizer never read a full history (RandomSearch needs no history)
    if server.counts_requests:
        assert server.request_count("tasks.clone") == 4 and server.request_count("tasks.enqueue") == 4
        assert server.request_count("events.scalar_metrics_iter_histogram") == 0


def test_optuna_prunes_and_the_reason_is_on_the_server(
    server: FakeClearMLServer, base_task: str, start_agent: Callable[..., FakeAgent], tmp_path: Path,
    eager_trials: dict[str, str],
) -> None:
    pytest.importorskip("hyperscout_optuna")
    start_agent(workers=2, env=eager_trials)
    opt = make_optimizer(server, base_task, tmp_path,
        hyper_parameters=[DiscreteParameterRange("Args/lr", [0.05, 0.1, 2.0, 4.0]),
                          DiscreteParameterRange("General/epochs", [12]), DiscreteParameterRange("General/sleep", [0.2])],
        optimizer_class="OptimizerOptuna", total_max_jobs=8, min_iteration_per_job=2, max_iteration_per_job=12,
        strategy_options={"pruner": "median", "pruner_options": {"n_startup_trials": 2, "n_warmup_steps": 2}},
    )
    opt.start()
    assert opt.wait(timeout=4)
    jobs = opt.get_all_experiments()
    pruned = [j for j in jobs if j.status.value == "pruned"]
    assert pruned, [(j.status, j.params, j.reason) for j in jobs]
    for job in pruned:
        task = server.task(job.handle)
        assert task["status"] == "stopped"
        assert task["status_reason"] == "hyperscout: pruned" and task["status_message"] == job.reason
        seen = [i for i, _ in job.history("validation", "loss")]
        assert seen == sorted(seen) and len(seen) < 12  # intermediate values arrived, the job was cut short
    # full histories are read only for jobs whose metrics moved, at most one request per such poll
    if server.counts_requests:
        histories = server.request_count("events.scalar_metrics_iter_histogram") + server.request_count(
            "events.multi_task_scalar_metrics_iter_histogram")
        assert histories >= 1


def test_bohb_budgets_stop_jobs_at_their_rung(
    server: FakeClearMLServer, base_task: str, start_agent: Callable[..., FakeAgent], tmp_path: Path,
    eager_trials: dict[str, str],
) -> None:
    pytest.importorskip("hyperscout_bohb")
    start_agent(workers=2, env=eager_trials)
    opt = make_optimizer(server, base_task, tmp_path,
        hyper_parameters=[UniformParameterRange("Args/lr", 0.05, 1.0), DiscreteParameterRange("General/epochs", [12]),
                          DiscreteParameterRange("General/sleep", [0.2])],
        optimizer_class="OptimizerBOHB", total_max_jobs=5, min_iteration_per_job=1, max_iteration_per_job=3,
    )
    opt.start()
    assert opt.wait(timeout=4)
    jobs = opt.get_all_experiments()
    capped = [j for j in jobs if j.budget is not None and j.status.value == "completed"]
    assert capped, [(j.status, j.budget, j.reason) for j in jobs]
    for job in capped:
        assert job.objective_iterations == [int(job.budget)]  # the value at the budget, never a later one
        task = server.task(job.handle)
        assert task["status"] == "completed" and "reached its budget" in (job.reason or "")
        if "signalled" in (job.reason or ""):  # stopped after the grace, then marked completed with the reason
            assert task["status_reason"] == "hyperscout: completed" and task["status_message"] == job.reason


def test_save_top_k_archives_the_rest_and_spawn_project_holds_trials(
    server: FakeClearMLServer, base_task: str, start_agent: Callable[..., FakeAgent], tmp_path: Path
) -> None:
    start_agent(workers=2)
    opt = make_optimizer(server, base_task, tmp_path, save_top_k_tasks_only=2, spawn_project=server.scoped("hpo-trials"))
    opt.start()
    assert opt.wait(timeout=3)
    top = {j.handle for j in opt.get_top_experiments(2)}
    kids = children(server, base_task)
    assert len(kids) == 4
    for task in kids:
        assert ("archived" in task["system_tags"]) == (task["id"] not in top)
        assert server.projects[task["project"]]["name"] == server.scoped("hpo-trials")
    (project,) = [p for p in server.projects.values() if p["name"] == server.scoped("hpo-trials")]
    assert project["description"] == "HPO process spawned Tasks"


def test_a_failed_task_gives_its_status_message_as_the_reason(
    server: FakeClearMLServer, base_task: str, start_agent: Callable[..., FakeAgent], tmp_path: Path
) -> None:
    start_agent(workers=1)
    opt = make_optimizer(server, base_task, tmp_path, hyper_parameters=[DiscreteParameterRange("General/fail", [True])],
                         total_max_jobs=1, max_number_of_concurrent_tasks=1)
    opt.start()
    assert opt.wait(timeout=2)
    (job,) = opt.get_all_experiments()
    assert job.status.value == "failed"
    assert job.reason == "trial failed on purpose: diverged (worker execution exit code 3)"
    assert job.exit_code == 3


def test_a_queue_without_worker_aborts_at_the_queued_limit(
    server: FakeClearMLServer, base_task: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lonely = server.create_queue(server.scoped("lonely")) and server.scoped("lonely")
    opt = make_optimizer(server, base_task, tmp_path, execution_queue=lonely, total_max_jobs=1,
                         max_number_of_concurrent_tasks=1, time_limit_queued=0.02, max_consecutive_failures=None)
    with caplog.at_level(logging.WARNING, logger="hyperscout.clearml"):
        opt.start()
        assert opt.wait(timeout=2)
    (job,) = opt.get_all_experiments()
    assert job.status.value == "aborted"
    assert f"waited in queue '{lonely}' longer than time_limit_queued" in (job.reason or "")
    assert any(f"no worker serves queue '{lonely}'" in r.getMessage() for r in caplog.records)
    assert server.task_status(job.handle) == "stopped"  # dequeued, then marked with the reason
    assert server.queue_entries(lonely) == []


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"execution_queue": "nope"}, "queue 'nope' does not exist on ClearML server .*; queues there: .*default"),
        ({"hyper_parameters": [UniformParameterRange("General/lrr", 0, 1)]},
         "parameter 'General/lrr' is not on base task .*close matches: Args/lr"),
        ({"hyper_parameters": [UniformParameterRange("Args/epochs", 0, 1)]},
         "parameter 'Args/epochs' is not on base task .*close matches: General/epochs"),
    ],
    ids=["unknown-queue", "unknown-parameter", "wrong-section"],
)
def test_bad_input_fails_before_any_clone(
    server: FakeClearMLServer, base_task: str, tmp_path: Path, overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        make_optimizer(server, base_task, tmp_path, **overrides)
    if server.counts_requests:
        assert server.request_count("tasks.clone") == 0


def test_a_missing_base_task_is_one_line(server: FakeClearMLServer, tmp_path: Path) -> None:
    server.create_queue(server.scoped("default"))
    with pytest.raises(ConfigError, match=rf"base task .0{{32}}. was not found on ClearML server {re.escape(server.url)}"):
        make_optimizer(server, "0" * 32, tmp_path)


def test_a_bare_name_is_looked_up_on_the_base_task(
    server: FakeClearMLServer, base_task: str, start_agent: Callable[..., FakeAgent], tmp_path: Path
) -> None:
    start_agent(workers=1)
    opt = make_optimizer(server, base_task, tmp_path, hyper_parameters=[DiscreteParameterRange("lr", [0.5]),
                                                                DiscreteParameterRange("epochs", [2])],
                         total_max_jobs=1, max_number_of_concurrent_tasks=1)
    opt.start()
    assert opt.wait(timeout=2)
    (job,) = opt.get_all_experiments()
    assert job.status.value == "completed" and job.objective_values == [pytest.approx(_loss(0.5, 2))]
    assert server.hyperparams(job.handle)["Args"]["lr"] == "0.5"
    assert server.hyperparams(job.handle)["General"]["epochs"] == "2"


@pytest.mark.fake_only
def test_server_errors_are_retried(
    server: FakeClearMLServer, base_task: str, start_agent: Callable[..., FakeAgent], tmp_path: Path
) -> None:
    start_agent(workers=2)
    opt = make_optimizer(server, base_task, tmp_path)
    server.fail_next("tasks.clone", times=2, status=500)
    server.fail_next("tasks.enqueue", times=1, status=502)
    server.fail_next("tasks.get_all", times=2, status=500)
    opt.start()
    assert opt.wait(timeout=3)
    assert [j.status.value for j in opt.get_all_experiments()] == ["completed"] * 4
    assert len(children(server, base_task)) == 4  # a retried clone is still one clone


@pytest.mark.fake_only
def test_timeouts_are_retried_and_a_clone_applied_late_is_not_left_behind(
    server: FakeClearMLServer, base_task: str, start_agent: Callable[..., FakeAgent], tmp_path: Path
) -> None:
    start_agent(workers=2)
    opt = make_optimizer(server, base_task, tmp_path, backend_options={"retry_seconds": 20.0, "request_timeout": 1.0})
    me = opt._backend.api.session.worker
    server.hang_next("tasks.clone", seconds=3, worker=me)  # answered after the optimizer gave up on it
    server.hang_next("tasks.enqueue", seconds=3, worker=me)
    server.hang_next("tasks.get_all", seconds=3, worker=me)
    opt.start()
    tagged = lambda: [t for t in server.tasks.values() if any(x.startswith(JOB_TAG) for x in t["tags"])]  # noqa: E731
    server.wait_for(lambda: len({tuple(t["tags"]) for t in tagged()}) < len(tagged()), timeout=60)  # a duplicate
    assert opt.wait(timeout=3)
    assert [j.status.value for j in opt.get_all_experiments()] == ["completed"] * 4
    assert len(children(server, base_task)) == 4  # the late clone was deleted: one task per job


@pytest.mark.fake_only
def test_a_server_gone_past_the_retry_budget_stops_the_study_and_a_resume_continues(
    server: FakeClearMLServer, base_task: str, start_agent: Callable[..., FakeAgent], tmp_path: Path
) -> None:
    from hyperscout.errors import BackendLostError

    start_agent(workers=2)
    opt = make_optimizer(server, base_task, tmp_path, study_name="outage", total_max_jobs=4,
        hyper_parameters=[UniformParameterRange("Args/lr", 0.05, 1.0), DiscreteParameterRange("General/epochs", [40]),
                          DiscreteParameterRange("General/sleep", [0.05])],
        backend_options={"retry_seconds": 1.0, "request_timeout": 5.0},
    )
    opt.start()
    server.wait_for(lambda: sum(t["status"] == "in_progress" for t in server.tasks.values()) == 2, timeout=60)
    me = opt._backend.api.session.worker  # the optimizer's requests fail; the agent and its trials go on
    server.fail_next("*", times=10_000, status=500, worker=me)
    with pytest.raises(BackendLostError, match=r"did not answer .* run it again .* to resume"):
        opt.wait(timeout=2)
    server.clear_faults()
    store = Store(tmp_path / "store", readonly=True)
    left = [j for j in store.load_jobs("outage") if not j.status.finished]
    store.close()
    assert len(left) == 2 and all(j.handle for j in left)  # in flight, nothing recorded as failed
    again = make_optimizer(server, base_task, tmp_path, study_name="outage", total_max_jobs=4,
        hyper_parameters=[UniformParameterRange("Args/lr", 0.05, 1.0), DiscreteParameterRange("General/epochs", [40]),
                          DiscreteParameterRange("General/sleep", [0.05])],
    )
    again.start()
    assert again.wait(timeout=4)
    jobs = again.get_all_experiments()
    assert [j.status.value for j in jobs] == ["completed"] * 4, [(j.status, j.reason) for j in jobs]
    assert {j.handle for j in left} <= {j.handle for j in jobs}  # adopted, not re-run
    assert len(children(server, base_task)) == 4  # nothing cloned twice
