"""``hyperscout param-search --task-id`` and a study file with ``[backend] name = "clearml"``, as commands.

Also the faults that only a fresh process shows (the SDK pins its server and token per process): an unreachable
server and refused credentials are one line and exit status 2 within seconds, never a retry loop.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from hyperscout_clearml.backend import JOB_TAG
from hyperscout_clearml.fake_agent import FakeAgent
from hyperscout_clearml.fake_server import FakeClearMLServer

pytestmark = pytest.mark.usefixtures("random_strategy")

PARAM = json.dumps({"name": "Args/lr", "type": "UniformParameterRange", "min_value": 0.1, "max_value": 1.0})
EPOCHS = json.dumps({"name": "General/epochs", "value": 2})


def hyperscout(*argv: str, env: dict[str, str], cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hyperscout.cli", *argv], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


def param_search(base: str, *extra: str, queue: str = "default") -> list[str]:
    return ["param-search", "--task-id", base, "--queue", queue, "--params-search", PARAM,
            "--params-override", EPOCHS, "--objective-metric-title", "validation", "--objective-metric-series", "loss",
            "--objective-metric-sign", "min", "--optimizer-class", "RandomSearch", "--total-max-jobs", "3",
            "--max-number-of-concurrent-tasks", "2", "--pool-period-min", "0.01", "--save-top-k-tasks-only", "2",
            *extra]


def test_param_search_with_a_task_id_runs_on_clearml(
    server: FakeClearMLServer, base_task: str, start_agent: Callable[..., FakeAgent], client_env: dict[str, str],
    tmp_path: Path,
) -> None:
    start_agent(workers=2)
    done = hyperscout(*param_search(base_task, "--storage", str(tmp_path / "store"), "--study-name", "cli",
                                    queue=server.scoped("default")), env=client_env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    # like clearml-param-search, the optimizer is a task of its own, parent of the trials, reporting to it
    (opt,) = [server.task(t) for t in server.task_ids() if server.task(t)["type"] == "optimizer"]
    tasks = [server.task(t) for t in server.task_ids()
             if any(x.startswith(JOB_TAG) for x in server.tags(t))]
    assert len(tasks) == 3 and all(t["status"] == "completed" and t["parent"] == opt["id"] for t in tasks)
    assert "summary" in {e["metric"] for e in server.task_events(opt["id"], "plot")}
    assert all(server.hyperparams(t["id"])["General"]["epochs"] == "2" for t in tasks)  # --params-override
    assert sum("archived" in t["system_tags"] for t in tasks) == 1  # --save-top-k-tasks-only 2


def test_a_study_file_selects_clearml(
    server: FakeClearMLServer, base_task: str, start_agent: Callable[..., FakeAgent], client_env: dict[str, str],
    tmp_path: Path,
) -> None:
    start_agent(workers=2)
    study = tmp_path / "study.toml"
    study.write_text(f"""
[study]
name = "from-file"
storage = "store"
[task]
clearml_task_id = "{base_task}"
[objective]
title = "validation"
series = "loss"
sign = "min"
[backend]
name = "clearml"
queue = "{server.scoped("default")}"
[backend.options]
retry_seconds = 10.0
[limits]
total_max_jobs = 2
max_number_of_concurrent_tasks = 2
pool_period_min = 0.01
[[parameters]]
name = "lr"
type = "DiscreteParameterRange"
values = [0.25, 0.5]
""", encoding="utf-8")
    done = hyperscout("run", str(study), env=client_env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    tasks = [server.task(t) for t in server.task_ids(parent=base_task)]
    assert len(tasks) == 2 and all(any(x.startswith(JOB_TAG) for x in t["tags"]) for t in tasks)
    assert sorted(server.hyperparams(t["id"])["Args"]["lr"] for t in tasks) == ["0.25", "0.5"]  # "lr" is Args/lr


def test_an_unreachable_server_is_one_line(client_env: dict[str, str], tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(client_env, CLEARML_API_HOST=f"http://127.0.0.1:{port}")
    done = hyperscout(*param_search("a" * 32), env=env, cwd=tmp_path, timeout=60)
    assert done.returncode == 2, done.stderr[-2000:]
    (line,) = [x for x in done.stderr.splitlines() if x.startswith("hyperscout: error:")]
    assert f"ClearML server http://127.0.0.1:{port} is unreachable" in line and "CLEARML_API_HOST" in line


@pytest.mark.parametrize("how", ["wrong_secret", pytest.param("server_rejects", marks=pytest.mark.fake_only)])
def test_refused_credentials_are_one_line(
    server: FakeClearMLServer, base_task: str, client_env: dict[str, str], tmp_path: Path, how: str
) -> None:
    env = dict(client_env)
    if how == "wrong_secret":
        env["CLEARML_API_SECRET_KEY"] = "not-the-secret"
    else:
        server.reject_credentials()
    done = hyperscout(*param_search(base_task), env=env, cwd=tmp_path, timeout=60)
    assert done.returncode == 2, done.stderr[-2000:]
    (line,) = [x for x in done.stderr.splitlines() if x.startswith("hyperscout: error:")]
    assert "refused the credentials" in line and "CLEARML_API_ACCESS_KEY" in line
    if server.counts_requests:
        assert server.request_count("tasks.clone") == 0
