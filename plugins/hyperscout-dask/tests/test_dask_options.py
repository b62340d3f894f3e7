"""Options, the queue-to-resources mapping and the pieces that need no cluster."""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import attrs
import pytest

from hyperscout import ConfigError, HyperParameterOptimizer, UniformParameterRange, UnsupportedError
from hyperscout.plugins import backends
from hyperscout.testing.backend_suite import HANG_SCRIPT, Harness
from hyperscout_dask import DaskBackend, queue_resources
from hyperscout_dask._task import _params_file, _reason


def test_the_backend_is_found_by_name_through_its_entry_point() -> None:
    assert backends().get("dask") is DaskBackend


@pytest.mark.parametrize(("queue", "resources"), [
    (None, {}), ("default", {}), ("", {}), ("GPU", {"GPU": 1.0}), ("2xGPU", {"GPU": 2.0}),
    ("2 x GPU", {"GPU": 2.0}), ("GPU=1,MEM=16e9", {"GPU": 1.0, "MEM": 16e9}), ("gpu-a100", {"gpu-a100": 1.0}),
])
def test_queue_names_map_to_dask_resources(queue: str | None, resources: dict[str, float]) -> None:
    assert queue_resources(queue) == resources


@pytest.mark.parametrize("queue", ["2x", "GPU=none", "GPU=0", "x y", "GPU=-1"])
def test_a_queue_that_is_no_resource_request_is_refused_naming_the_forms(queue: str) -> None:
    with pytest.raises(ConfigError, match=r"execution_queue=.*'GPU' or '2xGPU'"):
        queue_resources(queue)


@pytest.mark.parametrize(("options", "match"), [
    ({"scheduler": "tcp://a:1", "scheduler_file": "f.json"}, "not both"),
    ({"scheduler": 5}, "scheduler=5 must be an address"),
    ({"scheduler": "tcp://a:1", "local_workers": 2}, "local_workers sizes the local cluster"),
    ({"local_workers": 0}, "local_workers=0 must be an integer >= 1"),
    ({"max_retries": -1}, "max_retries=-1 must be an integer >= 0"),
    ({"max_retries": 1.5}, "max_retries=1.5 must be an integer"),
    ({"kill_grace": "soon"}, "kill_grace='soon' must be a number"),
    ({"resources": {"GPU": 0}}, r"resources=\{'GPU': 0\} must be a table"),
    ({"resources": ["GPU"]}, "must be a table"),
    ({"env": {"A": None}}, "env=.* must be a table"),
    ({"connect_timeout": 0}, "connect_timeout=0 must be a number >= 0.1"),
    ({"hold_back": "yes"}, "hold_back='yes' must be true or false"),
])
def test_bad_options_are_one_line_errors_naming_the_option(options: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        DaskBackend(**options)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)


def test_unknown_options_are_refused_before_the_study_starts(tmp_path: Path) -> None:
    script = tmp_path / "t.py"
    script.write_text("")
    with pytest.raises(UnsupportedError, match="backend 'dask' has no option 'workers'; accepted options: scheduler"):
        HyperParameterOptimizer(str(script), [UniformParameterRange("x", 0, 1)], "v", "l", backend="dask",
                                backend_options={"workers": 2}, storage=tmp_path / "s", show_progress=False)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_scheduler_is_a_one_line_error_with_the_fix() -> None:
    address = f"tcp://127.0.0.1:{_closed_port()}"
    backend = DaskBackend(scheduler=address, connect_timeout=1.0)
    with pytest.raises(ConfigError) as info:
        backend.open(lambda event: None)
    text = str(info.value)
    assert text.startswith(f"dask backend: cannot reach scheduler {address}: ")
    assert text.endswith("start one with `dask scheduler` or remove the scheduler option to use a local cluster")
    assert "\n" not in text
    backend.close()


def test_a_missing_scheduler_file_is_reported_the_same_way(tmp_path: Path) -> None:
    backend = DaskBackend(scheduler_file=str(tmp_path / "nope.json"))
    with pytest.raises(ConfigError, match=r"cannot reach scheduler scheduler file .*nope\.json: no such file"):
        backend.open(lambda event: None)


def test_the_study_fails_with_that_line(tmp_path: Path) -> None:
    script = tmp_path / "t.py"
    script.write_text("")
    opt = HyperParameterOptimizer(str(script), [UniformParameterRange("x", 0, 1)], "v", "l", backend="dask",
                                  backend_options={"scheduler": f"tcp://127.0.0.1:{_closed_port()}",
                                                   "connect_timeout": 1.0},
                                  storage=tmp_path / "s", show_progress=False)
    opt.start()
    with pytest.raises(ConfigError, match="cannot reach scheduler"):
        opt.wait()


def test_params_file_is_copied_where_the_worker_cannot_see_the_optimizer_file(tmp_path: Path) -> None:
    text = json.dumps({"lr": 0.1})
    missing = str(tmp_path / "elsewhere" / "params.json")  # as on a host without the store's file system
    argv, env = [sys.executable, "--params", missing], {"HYPERSCOUT_PARAMS_FILE": missing}
    tmp = _params_file({"params_file": [missing, text]}, argv, env)
    assert tmp is not None and argv[2] == env["HYPERSCOUT_PARAMS_FILE"] != missing
    assert Path(argv[2]).read_text() == text
    here = tmp_path / "params.json"
    here.write_text(text)
    argv2, env2 = ["x", str(here)], {"HYPERSCOUT_PARAMS_FILE": str(here)}
    assert _params_file({"params_file": [str(here), text]}, argv2, env2) is None  # a shared file system
    assert argv2[1] == str(here)
    os.remove(argv[2])
    os.rmdir(tmp)


@pytest.mark.parametrize(("rc", "tail", "reason"), [
    (0, b"", None), (-15, b"", "killed by SIGTERM"), (3, b"", "exited with code 3"),
    (1, b"Traceback\nValueError: bad\n\n", "ValueError: bad"),
])
def test_exit_reasons_match_the_local_backend(rc: int, tail: bytes, reason: str | None) -> None:
    assert _reason(rc, tail) == reason


def _listening(pid: int) -> list[str]:
    """Local addresses of the TCP sockets ``pid`` listens on (from /proc)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as fh:
            for row in fh.read().splitlines()[1:]:
                cols = row.split()
                if cols[3] == "0A" and cols[9] in inodes:  # 0A: LISTEN
                    found.append(cols[1])
    return found


def test_the_local_cluster_listens_on_loopback_only_and_grows_to_the_concurrency(tmp_path: Path) -> None:
    h = Harness(DaskBackend(), tmp_path, sys.executable, 60.0)
    h.backend.open(h.recorder)
    try:
        listening = _listening(os.getpid())
        # 0100007F is 127.0.0.1 (little-endian hex) in /proc/net/tcp; nothing on 0.0.0.0 or ::
        assert listening and all(addr.split(":")[0] == "0100007F" for addr in listening), listening
        assert len(h.backend.client.scheduler_info()["workers"]) == 1
        specs = [h.spec(h.script("hang.py", HANG_SCRIPT)) for _ in range(3)]
        for spec in specs:  # the engine hands over as many jobs as its concurrency allows
            h.launch(spec)
        for spec in specs:
            h.recorder.wait_metric(spec.job_id, "proc", "main", 60.0)
        assert len(h.backend.client.scheduler_info()["workers"]) == 3
    finally:
        h.close()
    for spec in specs:
        h.check_order(spec.job_id)


def test_on_the_local_cluster_a_gpu_queue_runs_instead_of_waiting_forever(tmp_path: Path) -> None:
    h = Harness(DaskBackend(), tmp_path, sys.executable, 60.0)
    h.backend.open(h.recorder)
    try:
        spec = attrs.evolve(h.spec(h.script("ok.py", "print('ok')\n")), queue="2xGPU")
        assert h.run(spec).exit_code == 0
        with pytest.raises(ConfigError, match="execution_queue='GPU=lots'"):
            h.backend.launch(attrs.evolve(spec, job_id="bad-queue", queue="GPU=lots"))
    finally:
        h.close()
