"""The real clearml SDK against the FAKE ClearML server and FAKE agent of this package, end to end.

These tests prove the fake speaks the protocol the way the SDK expects (controller side and trial side); they
cannot prove a real clearml-server behaves the same. They synchronise on server state and agent records,
never on fixed sleeps.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hyperscout_clearml.fake_agent import AgentApiError, FakeAgent
from hyperscout_clearml.fake_server import FakeClearMLServer, metric_key

TRIAL_DIR = Path(__file__).parent


def _loss(lr: float, epochs: int) -> float:
    """The last loss trial_clearml.py reports."""
    return 1.0 / (1.0 + lr * epochs)


def _clone(Task: Any, base_id: str, name: str, **overrides: Any) -> Any:
    base = Task.get_task(task_id=base_id)
    task = Task.clone(source_task=base, name=name, parent=base_id)
    task.update_parameters(overrides)
    return task


def _controller_calls(server: FakeClearMLServer, endpoint: str, agent: FakeAgent) -> int:
    """Requests of ``endpoint`` not sent by the agent or its trials (they carry the agent's worker id)."""
    return sum(1 for c in server.calls_of(endpoint) if c.worker != agent.name)


def _run_sdk(code: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run SDK code in a fresh process (the SDK's session is per process); bounded so a hang fails the test."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )


def test_clone_override_enqueue_run_and_poll_batched(
    server: FakeClearMLServer, Task: Any, base_task: str, start_agent: Callable[..., FakeAgent]
) -> None:
    plan = [(0.5, "adam", 2), (0.2, "sgd", 4), (1.0, "rmsprop", 1)]
    trials = []
    for i, (lr, optimizer, epochs) in enumerate(plan):
        task = _clone(
            Task, base_task, f"trial-{i}", **{"Args/lr": lr, "Args/optimizer": optimizer, "General/epochs": epochs}
        )
        Task.enqueue(task, queue_name="default")
        trials.append(task)
    ids = [t.id for t in trials]
    assert server.queue_entries("default") == ids
    assert server.hyperparams(ids[0]) == {
        "General": {"epochs": "2", "sleep": "0.0", "fail": "False", "marker": ""},  # untouched keys survive
        "Args": {"lr": "0.5", "optimizer": "adam"},
    }
    from clearml.backend_api.session.client import APIClient

    agent = start_agent(workers=2)  # started after enqueueing: it fills both slots at once
    for tid in ids:
        assert server.wait_for_status(tid, "completed", "failed", timeout=90) == "completed", agent.runs[tid]
    assert agent.max_busy == 2

    before = _controller_calls(server, "tasks.get_all", agent)
    rows = Task.query_tasks(
        task_filter={"id": ids}, additional_return_fields=["status", "last_metrics", "last_iteration"]
    )
    assert _controller_calls(server, "tasks.get_all", agent) == before + 1  # one request for all trials
    loss_value = f"last_metrics.{metric_key('validation')}.{metric_key('loss')}.value"  # as ClearML's HPO asks
    raw = APIClient().tasks.get_all(id=ids, only_fields=["status", loss_value])
    assert _controller_calls(server, "tasks.get_all", agent) == before + 2
    assert {t.id: t.last_metrics[metric_key("validation")][metric_key("loss")]["value"] for t in raw} == {
        t.id: pytest.approx(_loss(lr, epochs)) for t, (lr, _, epochs) in zip(trials, plan)
    }
    by_id = {row["id"]: row for row in rows}
    for task, (lr, _, epochs) in zip(trials, plan):
        row = by_id[task.id]
        assert getattr(row["status"], "value", row["status"]) == "completed"  # the SDK gives an enum
        assert row["last_iteration"] == epochs - 1
        last = row["last_metrics"][metric_key("validation")][metric_key("loss")]
        assert last["value"] == pytest.approx(_loss(lr, epochs))

        metrics = task.get_last_scalar_metrics()
        assert metrics["validation"]["loss"]["last"] == pytest.approx(_loss(lr, epochs))
        assert metrics["validation"]["loss"]["max"] == pytest.approx(_loss(lr, 1))
        history = task.get_reported_scalars()
        assert history["validation"]["loss"]["x"] == list(range(epochs))  # General/epochs reached task.connect
        assert history["train"]["lr"]["y"] == [lr] * epochs  # Args/lr reached argparse
        assert task.get_status() == "completed"
        assert server.task(task.id)["status_reason"] == "worker execution done"
        assert server.task(task.id)["parent"] == base_task
    stdout = agent.runs[ids[0]].stdout_path.read_text()  # type: ignore[union-attr]
    assert "done lr=0.5 optimizer=adam epochs=2" in stdout
    logs = server.task_events(ids[0], "log")
    assert any("done lr=0.5" in e["msg"] for e in logs)  # the agent sends the console output


def test_failed_trial_reports_last_stderr_line(
    server: FakeClearMLServer, Task: Any, base_task: str, start_agent: Callable[..., FakeAgent]
) -> None:
    start_agent()
    task = _clone(Task, base_task, "failing", **{"General/fail": True, "General/epochs": 1})
    Task.enqueue(task, queue_name="default")
    assert server.wait_for_status(task.id, "completed", "failed", timeout=60) == "failed"
    assert task.get_status() == "failed"
    stored = server.task(task.id)
    assert stored["status_message"] == "trial failed on purpose: diverged"
    assert stored["status_reason"] == "worker execution exit code 3"
    assert server.scalars(task.id)["validation"]["loss"] == [(0, pytest.approx(_loss(0.1, 1)))]


@pytest.mark.parametrize("how", ["stop_request", "stopped"])
def test_stopping_a_running_trial_kills_it(
    server: FakeClearMLServer,
    Task: Any,
    base_task: str,
    start_agent: Callable[..., FakeAgent],
    tmp_path: Path,
    how: str,
) -> None:
    agent = start_agent()
    marker = tmp_path / "started.txt"
    task = _clone(
        Task, base_task, "long", **{"General/epochs": 100_000, "General/sleep": 0.02, "General/marker": str(marker)}
    )
    Task.enqueue(task, queue_name="default")
    server.wait_for(lambda: marker.exists() and server.scalars(task.id).get("validation"), timeout=60)

    if how == "stop_request":  # tasks.stop: the server asks the worker ("stopping"); the agent confirms
        task.mark_stop_request()
        assert server.task(task.id)["status_message"] == "stopping"
    else:  # tasks.stopped: what ClearML's own HPO job does; the agent only kills
        task.stopped()
    assert server.wait_for_status(task.id, "stopped", timeout=60) == "stopped"
    run = agent.wait_finished(task.id, timeout=60)
    assert run.killed
    assert run.returncode is not None and run.returncode < 0  # ended by a signal (SIGKILL: SDK ignores SIGTERM)
    points = server.scalars(task.id)["validation"]["loss"]
    assert 1 <= len(points) < 100_000
    assert task.get_status() == "stopped"


def test_set_parameters_replaces_update_parameters_merges(server: FakeClearMLServer, Task: Any, base_task: str) -> None:
    task = _clone(Task, base_task, "params")
    assert task.get_parameters()["General/epochs"] == "3"
    task.update_parameters({"Args/lr": 0.01})
    assert server.hyperparams(task.id)["General"]["epochs"] == "3"
    task.set_parameters({"Args/lr": 0.02})  # the whole hyperparams dict is sent: General is gone
    assert server.hyperparams(task.id) == {"Args": {"lr": "0.02"}}
    assert server.hyperparams(base_task)["General"]["epochs"] == "3"  # the base task is untouched
    assert server.task(task.id)["hyperparams"]["Args"]["lr"]["type"] == "float"


def test_agent_runs_scripts_from_a_directory_and_fails_missing_ones(
    server: FakeClearMLServer, Task: Any, start_agent: Callable[..., FakeAgent]
) -> None:
    server.create_queue("default")
    on_disk = server.create_task(
        "on-disk",
        repository=str(TRIAL_DIR),
        working_dir=".",
        entry_point="trial_clearml.py",
        hyperparams={"General": {"epochs": 1}},
    )
    missing = server.create_task("missing", working_dir="/nonexistent-dir", entry_point="train.py")
    agent = start_agent()
    Task.enqueue(on_disk, queue_name="default")
    Task.enqueue(missing, queue_name="default")
    assert server.wait_for_status(on_disk, "completed", "failed", timeout=60) == "completed"
    assert agent.runs[on_disk].cwd == str(TRIAL_DIR.resolve())
    assert server.wait_for_status(missing, "completed", "failed", timeout=60) == "failed"
    assert "script not found" in server.task(missing)["status_message"]


def test_dequeue_and_stop_queued_tasks(server: FakeClearMLServer, Task: Any, base_task: str) -> None:
    server.create_queue("idle")  # nobody pops it
    first = _clone(Task, base_task, "queued-1")
    second = _clone(Task, base_task, "queued-2")
    Task.enqueue(first, queue_name="idle")
    Task.enqueue(second.id, queue_name="idle")
    assert Task.get_num_enqueued_tasks(queue_name="idle") == 2

    Task.dequeue(first)
    assert first.get_status() == "created"
    assert server.task(first.id)["execution"]["queue"] is None
    with pytest.raises(Exception, match="Invalid task id"):  # not queued any more: 400/101 like the server
        Task.dequeue(first)

    second.mark_stop_request()  # a queued task is dequeued and stopped at once
    assert second.get_status() == "stopped"
    assert server.queue_entries("idle") == []

    Task.enqueue(first, queue_name="idle")  # created -> queued again
    assert server.queue_entries("idle") == [first.id]


def test_unknown_queue_and_task_are_clear_errors(server: FakeClearMLServer, Task: Any, base_task: str) -> None:
    task = _clone(Task, base_task, "nowhere")
    with pytest.raises(ValueError, match='Could not find queue named "no-such-queue"'):
        Task.enqueue(task, queue_name="no-such-queue")
    assert task.get_status() == "created"
    with pytest.raises(ValueError, match="could not be found"):
        Task.get_task(task_id="0" * 32)
    with pytest.raises(AgentApiError, match="no-such-queue"):
        FakeAgent(server, "no-such-queue").start()


def test_tags_archive_and_child_queries(server: FakeClearMLServer, Task: Any, base_task: str) -> None:
    kept, archived = _clone(Task, base_task, "kept"), _clone(Task, base_task, "archived")
    for task in (kept, archived):
        task.add_tags(["optimization", "opt: demo"])
    archived.set_archived(True)
    assert "archived" in server.system_tags(archived.id)
    assert set(server.tags(kept.id)) == {"optimization", "opt: demo"}

    children = Task.query_tasks(task_filter={"parent": base_task, "system_tags": ["-archived"]})
    assert children == [kept.id]
    tagged = Task.query_tasks(project_name="hyperscout-tests", tags=["opt: demo"])
    assert set(tagged) == {kept.id, archived.id}
    assert Task.get_task(project_name="hyperscout-tests", task_name="base").id == base_task


def test_injected_failures_and_hangs(server: FakeClearMLServer, Task: Any, base_task: str) -> None:
    task = Task.get_task(task_id=base_task)
    server.fail_next("tasks.get_all", status=500)
    assert task.get_status() in (None, "None")  # the SDK swallows the error (2.1.12 returns the string "None")
    assert task.get_status() == "created"
    assert server.request_count("tasks.get_all") == 2

    server.hang_next("tasks.get_all", seconds=60)
    result: list[Any] = []
    worker = threading.Thread(target=lambda: result.append(task.get_status()), daemon=True)
    worker.start()
    worker.join(timeout=1.0)
    assert worker.is_alive()  # a caller needs its own timeout: the SDK waits (up to 300 s by default)
    server.release_hangs()
    worker.join(timeout=30)
    assert result == ["created"]

    server.fail_next("tasks.get_by_id", times=2, status=500)
    with pytest.raises(ValueError, match="could not be found"):
        Task.get_task(task_id=base_task)
    assert Task.get_task(task_id=base_task).id == base_task


def test_queue_watched_only_with_a_listening_worker(
    server: FakeClearMLServer, Task: Any, base_task: str, start_agent: Callable[..., FakeAgent]
) -> None:
    from clearml.backend_api.session.client import APIClient

    client = APIClient()
    server.create_queue("lonely")
    server.create_queue("watched")
    task = _clone(Task, base_task, "probe")
    lonely = server._queue_ref("lonely")
    assert client.tasks.enqueue(task=task.id, queue=lonely, verify_watched_queue=True).queue_watched is False
    Task.dequeue(task)

    agent = start_agent("watched", name="watcher")
    workers = {w.id: [q.name for q in w.queues] for w in client.workers.get_all()}
    assert workers == {"watcher": ["watched"]}
    server.set_queue_watched("lonely", True)
    assert client.tasks.enqueue(task=task.id, queue=lonely, verify_watched_queue=True).queue_watched is True
    Task.dequeue(task)
    server.set_queue_watched("watched", False)  # as if the agent died without unregistering
    watched = server._queue_ref("watched")
    assert client.tasks.enqueue(task=task.id, queue=watched, verify_watched_queue=True).queue_watched is False
    assert agent.wait_finished(task.id, timeout=60).returncode == 0


def test_request_counts_by_endpoint_and_header(
    server: FakeClearMLServer, Task: Any, base_task: str, start_agent: Callable[..., FakeAgent]
) -> None:
    server.reset_counts()
    agent = start_agent(name="counted-agent")
    task = _clone(Task, base_task, "counted", **{"General/epochs": 1})
    Task.enqueue(task, queue_name="default")
    server.wait_for_status(task.id, "completed", "failed", timeout=60)
    agent.wait_finished(task.id)
    assert server.request_count("tasks.clone") == 1
    assert server.request_count("tasks.enqueue") == 1
    assert server.request_count("tasks.started", worker="counted-agent") >= 1  # the agent and the trial's SDK
    assert server.request_count("queues.get_next_task", client="fake-agent") >= 1
    assert server.request_count("queues.get_next_task", client="clearml-") == 0
    assert server.request_count("events.add_batch", worker="counted-agent") >= 1
    by_endpoint = server.request_counts()
    assert by_endpoint["tasks.clone"] == 1 and sum(by_endpoint.values()) == len(server.calls)
    assert server.request_count("tasks.", client="clearml-") >= 3  # prefix match over a service
    assert set(server.request_counts(by="worker")) >= {"counted-agent"}


def test_unreachable_server_fails_fast(client_env: dict[str, str], tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(client_env, CLEARML_API_HOST=f"http://127.0.0.1:{port}")
    proc = _run_sdk(
        """
        from clearml import Task
        Task.get_task(task_id="x" * 32)
    """,
        env,
        tmp_path,
    )
    assert proc.returncode != 0
    assert "LoginError" in proc.stderr or "Failed getting token" in proc.stderr, proc.stderr[-2000:]


@pytest.mark.parametrize("how", ["wrong_secret", "server_rejects"])
def test_bad_credentials_fail_fast(
    server: FakeClearMLServer, client_env: dict[str, str], tmp_path: Path, base_task: str, how: str
) -> None:
    env = dict(client_env)
    if how == "wrong_secret":
        env["CLEARML_API_SECRET_KEY"] = "not-the-secret"
    else:
        server.reject_credentials()
    proc = _run_sdk(
        f"""
        from clearml import Task
        Task.get_task(task_id={base_task!r})
    """,
        env,
        tmp_path,
    )
    assert proc.returncode != 0
    assert "401" in proc.stderr and "invalid credentials" in proc.stderr.lower(), proc.stderr[-2000:]
    assert server.request_count("auth.login") >= 1  # 2.1.12 tries once, 2.1.0 a few times
    assert server.request_count("tasks.get_by_id") == 0


def test_optimizer_task_reports_scalars_tables_plots(
    server: FakeClearMLServer, client_env: dict[str, str], tmp_path: Path
) -> None:
    proc = _run_sdk(
        """
        from clearml import Task
        task = Task.init(project_name="hpo", task_name="optimizer", task_type=Task.TaskTypes.optimizer,
                         auto_connect_arg_parser=False, auto_resource_monitoring=False, auto_connect_frameworks=False)
        task.connect({"max_jobs": 4, "queue": "default"}, name="Args")
        task.add_tags(["optimization"])
        logger = task.get_logger()
        for i in range(3):
            logger.report_scalar("optimization", "objective", 1.0 / (i + 1), iteration=i)
        logger.report_table("summary", "trials", iteration=0, table_plot=[["id", "loss"], ["a", 0.5], ["b", 0.25]])
        logger.report_scatter2d("objective", "trials", scatter=[[0, 1.0], [1, 0.5]], iteration=0)
        try:
            task.upload_artifact("results", artifact_object={"best": 0.25}, wait_on_upload=True)
        except ValueError as err:
            print("ARTIFACT:", err)
        print("ID:", task.id)
        task.close()
    """,
        client_env,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    task_id = next(line.split()[1] for line in proc.stdout.splitlines() if line.startswith("ID:"))
    assert "ARTIFACT:" in proc.stdout and "not supported" in proc.stdout  # uploads are refused, cleanly
    stored = server.task(task_id)
    assert stored["type"] == "optimizer"
    assert stored["status"] == "completed"
    assert server.tags(task_id) == ["optimization"]
    assert server.hyperparams(task_id)["Args"] == {"max_jobs": "4", "queue": "default"}
    assert [v for _, v in server.scalars(task_id)["optimization"]["objective"]] == [1.0, 0.5, pytest.approx(1 / 3)]
    plots = {e["metric"] for e in server.task_events(task_id, "plot")}
    assert plots == {"summary", "objective"}
    assert "Failed parsing response" not in proc.stdout + proc.stderr
