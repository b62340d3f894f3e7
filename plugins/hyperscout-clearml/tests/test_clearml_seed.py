"""The seed-shaped script (``seed_hpo.py``: ClearML's HPO example with hyperscout imports) as real processes.

The optimizer is a ClearML task here: ``Task.init(task_type=optimizer)`` in the script, the study stored on it,
reports written to it, ``execute_remotely`` to a ``services`` agent, an edited clone re-run by an agent, and an
optimizer killed with jobs in flight, then run again. All against the FAKE server and agents; the tests wait on
the processes and the server's state.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hyperscout.store import Store
from hyperscout_clearml.backend import JOB_TAG
from hyperscout_clearml.fake_agent import FakeAgent
from hyperscout_clearml.fake_server import FakeClearMLServer

pytestmark = pytest.mark.usefixtures("random_strategy")

SEED = Path(__file__).with_name("seed_hpo.py")
#: the seed client's clearml.conf keeps the script's text on its task, as ClearML does for a file outside git, so
#: an agent can run the optimizer task itself
STORE_SCRIPT = "sdk.development.store_uncommitted_code_diff: true\n"


def seed_env(server: FakeClearMLServer, tmp_path: Path, **settings: Any) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLEARML_", "TRAINS_", "HYPERSCOUT_"))}
    env.update(server.env(tmp_path / "seed-home", extra_conf=STORE_SCRIPT))
    settings.setdefault("queue", server.scoped("default"))
    settings.setdefault("base_project", server.scoped("hyperscout-tests"))
    settings.setdefault("project", server.scoped("Hyper-Parameter Optimization"))
    env["SEED_SETTINGS"] = json.dumps(settings)
    return env


def start_seed(server: FakeClearMLServer, tmp_path: Path, **settings: Any) -> subprocess.Popen[str]:
    work = tmp_path / "seed"
    work.mkdir(exist_ok=True)
    shutil.copy(SEED, work / SEED.name)
    return subprocess.Popen([sys.executable, SEED.name], cwd=work, env=seed_env(server, tmp_path, **settings),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_seed(server: FakeClearMLServer, tmp_path: Path, **settings: Any) -> subprocess.CompletedProcess[str]:
    proc = start_seed(server, tmp_path, **settings)
    out, err = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def optimizer_tasks(server: FakeClearMLServer) -> list[dict[str, Any]]:
    return [server.task(t) for t in server.task_ids() if server.task(t)["type"] == "optimizer"]


def trials(server: FakeClearMLServer) -> list[dict[str, Any]]:
    return [server.task(t) for t in server.task_ids() if any(x.startswith(JOB_TAG) for x in server.tags(t))]


def test_the_seed_script_reports_on_its_optimizer_task(
    server: FakeClearMLServer, base_task: str, start_agent: Callable[..., FakeAgent], tmp_path: Path
) -> None:
    start_agent(workers=2)
    done = run_seed(server, tmp_path, jobs=4)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "We are done, good bye" in done.stdout
    completed = [line for line in done.stdout.splitlines() if line.startswith("Job completed!")]
    assert len(completed) == 4  # the callback: once per job
    top = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("TOP "))[4:])
    assert len(top) == 3

    (opt,) = optimizer_tasks(server)
    assert opt["tags"] == ["optimization"] and opt["status"] == "completed"
    params = server.hyperparams(opt["id"])
    general = params["General"]
    assert general["opt/base_task_id"] == base_task and general["opt/optimizer_class"] == "RandomSearch"
    assert general["opt/optimizer_kwargs/total_max_jobs"] == "4" and general["opt/execution_queue"] == server.scoped("default")
    space = opt["configuration"]["General"]["value"]
    assert "parameter_optimization_space" in space and "Args/lr" in space
    kids = trials(server)
    assert len(kids) == 4
    best = params["properties"]["best_task_id"]
    assert best in {k["id"] for k in kids} and params["properties"]["best_job_id"] == top[0]
    for kid in kids:
        assert kid["parent"] == opt["id"] and f"opt: {opt['id']}" in kid["tags"]
        assert kid["project"] == opt["project"]  # trials go to the optimizer task's project
    scalars = server.scalars(opt["id"])
    assert set(scalars["validation/loss"]) == {"min", "last reported"}
    assert [v for _, v in scalars["budget used"]["jobs"]][-1] == 4
    assert [v for _, v in scalars["remaining budget"]["jobs %"]][-1] == 0
    assert {"queue workers", "running tasks", "pending tasks"} <= set(scalars["resources"])
    plots = {e["metric"] for e in server.task_events(opt["id"], "plot")}
    assert plots >= {"summary", "Optimization Objective", "Parallel Coordinates"}
    table = [e for e in server.task_events(opt["id"], "plot") if e["metric"] == "summary"][-1]
    assert best in table["plot_str"]  # the best job's row, with its task link


def test_execute_remotely_runs_the_study_on_a_services_agent_and_an_edited_clone_reruns_it(
    server: FakeClearMLServer, base_task: str, start_agent: Callable[..., FakeAgent], tmp_path: Path, Task: Any
) -> None:
    services = server.scoped("services")
    server.create_queue(services)
    start_agent(workers=2)
    local = run_seed(server, tmp_path, jobs=3, run_as_service=True, services_queue=services)
    assert local.returncode == 0, local.stderr[-3000:]
    (opt,) = optimizer_tasks(server)
    assert opt["status"] == "queued" and server.queue_entries(services) == [opt["id"]]
    assert trials(server) == []  # nothing ran locally

    agent = start_agent("services", name="services-agent", workers=1)
    assert server.wait_for_status(opt["id"], "completed", "failed", timeout=240) == "completed", \
        agent.runs[opt["id"]].stderr_tail()
    kids = trials(server)
    assert len(kids) == 3 and all(k["parent"] == opt["id"] and k["status"] == "completed" for k in kids)
    assert server.hyperparams(opt["id"])["properties"]["best_task_id"] in {k["id"] for k in kids}
    assert "summary" in {e["metric"] for e in server.task_events(opt["id"], "plot")}

    # the UI's way to re-run: clone the optimizer task, edit its arguments, enqueue it on services
    clone = Task.clone(source_task=Task.get_task(task_id=opt["id"]), name="edited")
    clone.set_parameter("General/opt/optimizer_kwargs/total_max_jobs", 2)
    clone.set_parameter("General/opt/objective_metric_sign", "max")
    Task.enqueue(clone, queue_name=services)
    assert server.wait_for_status(clone.id, "completed", "failed", timeout=240) == "completed", \
        agent.runs[clone.id].stderr_tail()
    again = [k for k in trials(server) if k["parent"] == clone.id]
    assert len(again) == 2  # the edited budget, not the code's 3
    assert server.hyperparams(clone.id)["General"]["opt/objective_metric_sign"] == "max"


def test_an_optimizer_killed_with_jobs_in_flight_resumes_without_cloning_twice(
    server: FakeClearMLServer, base_task: str, start_agent: Callable[..., FakeAgent], tmp_path: Path
) -> None:
    start_agent(workers=2)
    settings = dict(jobs=4, epochs=[25], sleep=0.1, study_name="crash", storage=str(tmp_path / "store"))
    proc = start_seed(server, tmp_path, **settings)
    try:
        server.wait_for(lambda: sum(t["status"] == "in_progress" and any(x.startswith(JOB_TAG) for x in t["tags"])
                                    for t in server.tasks.values()) == 2, timeout=120)
    finally:
        proc.send_signal(signal.SIGKILL)  # no goodbye: nothing flushed, nothing aborted
        proc.communicate(timeout=30)
    store = Store(tmp_path / "store", readonly=True)
    left = {j.id: j.handle for j in store.load_jobs("crash") if not j.status.finished}
    store.close()
    assert len(left) == 2 and all(left.values()), left

    done = run_seed(server, tmp_path, **settings)
    assert done.returncode == 0, done.stderr[-3000:]
    store = Store(tmp_path / "store", readonly=True)
    jobs = store.load_jobs("crash")
    store.close()
    assert [j.status.value for j in jobs] == ["completed"] * 4, [(j.status, j.reason) for j in jobs]
    for job_id, handle in left.items():  # re-attached: the same task, never re-run
        assert next(j for j in jobs if j.id == job_id).handle == handle
    tagged = [t for j in jobs for t in trials(server) if f"{JOB_TAG}{j.id}" in t["tags"]]
    assert len(tagged) == len(trials(server)) == 4  # one task per job: nothing cloned twice


def test_always_create_task_makes_an_optimizer_task_and_auto_connect_false_stores_nothing(
    server: FakeClearMLServer, base_task: str, start_agent: Callable[..., FakeAgent], tmp_path: Path
) -> None:
    start_agent(workers=1)
    script = tmp_path / "no_task.py"
    script.write_text(f"""
from clearml import Task
from hyperscout import DiscreteParameterRange, HyperParameterOptimizer
optimizer = HyperParameterOptimizer(
    base_task_id={base_task!r}, hyper_parameters=[DiscreteParameterRange("General/epochs", values=[2])],
    objective_metric_title="validation", objective_metric_series="loss", objective_metric_sign="min",
    execution_queue={server.scoped("default")!r}, max_number_of_concurrent_tasks=1, total_max_jobs=1,
    pool_period_min=0.01, always_create_task=True, auto_connect_task=False, storage={str(tmp_path / "store")!r},
)
optimizer.start()
optimizer.wait()
print("OPTIMIZER", Task.current_task().id)
""", encoding="utf-8")
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=seed_env(server, tmp_path),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    (opt,) = optimizer_tasks(server)
    assert done.stdout.split("OPTIMIZER ")[1].strip() == opt["id"]
    assert opt["name"] == "Optimizing: base" and opt["project"] == server.task(base_task)["project"]
    assert "opt/base_task_id" not in server.hyperparams(opt["id"]).get("General", {})  # nothing connected
    (kid,) = trials(server)
    assert kid["parent"] == opt["id"] and kid["status"] == "completed"
    assert "summary" in {e["metric"] for e in server.task_events(opt["id"], "plot")}  # still reported to
