"""GPUs on one machine, with a FAKE ``nvidia-smi`` (no GPU exists here): each job gets its own devices
through ``CUDA_VISIBLE_DEVICES``, and jobs wait while too few are free."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import attrs
import pytest
from test_local import GUARD, local_harness

from hyperscout import ConfigError
from hyperscout.backend import JobExited, JobQueued, JobStarted
from hyperscout_local import LocalBackend
from hyperscout_local._gpus import detect_gpus, gpus_for_queue

FAKE_NVIDIA_SMI = """#!/bin/sh
# A FAKE nvidia-smi for tests: lists {n} GPUs the way `nvidia-smi -L` does.
i=0
while [ $i -lt {n} ]; do echo "GPU $i: Fake GPU (UUID: GPU-fake-$i)"; i=$((i+1)); done
"""

#: reports the devices it was given, then holds them until the test opens its gate file
HOLDER = """
import os, time
from hyperscout import get_parameters, report_scalar
devices = os.environ.get("CUDA_VISIBLE_DEVICES", "")
report_scalar("gpu", "count", len(devices.split(",")) if devices else 0, 0)
for d in devices.split(","):
    report_scalar("gpu", "device", int(d), 0)
gate = get_parameters()["gate"]
while not os.path.exists(gate):
    time.sleep(0.01)
"""


@pytest.fixture
def fake_gpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    smi.write_text(FAKE_NVIDIA_SMI.format(n=3))
    smi.chmod(smi.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def test_auto_detects_from_nvidia_smi_or_cuda_visible_devices(fake_gpus: None, monkeypatch: pytest.MonkeyPatch) -> None:
    assert detect_gpus() == ["0", "1", "2"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,6")
    assert detect_gpus() == ["4", "6"]
    assert gpus_for_queue("2xGPU") == 2 and gpus_for_queue("default") is None


def test_each_job_gets_free_devices_and_waits_while_none_are_free(fake_gpus: None, tmp_path: Path) -> None:
    with local_harness(tmp_path, gpus="auto") as h:
        script = h.script("holder.py", HOLDER)
        gates = [tmp_path / f"gate{i}" for i in range(5)]
        specs = [h.spec(script, {"gate": str(g)}, params_as="json") for g in gates]
        for spec in specs:
            h.launch(spec)
        rec = h.recorder
        first = [rec.wait_metric(s.job_id, "gpu", "device", GUARD).value for s in specs[:3]]
        assert sorted(first) == [0.0, 1.0, 2.0]  # three devices, three jobs, one each
        for spec in specs[3:]:  # the other two wait, queued
            kinds = [type(e) for e in rec.events(spec.job_id)]
            assert kinds == [JobQueued], kinds
        gates[1].touch()  # the second job ends: its device goes to the fourth
        rec.wait_exit(specs[1].job_id, GUARD)
        freed = first[1]
        assert rec.wait_metric(specs[3].job_id, "gpu", "device", GUARD).value == freed
        assert not [e for e in rec.events(specs[4].job_id) if isinstance(e, JobStarted)]
        h.backend.abort(specs[4].job_id)  # aborting a queued job ends it without starting it
        assert rec.wait_exit(specs[4].job_id, GUARD).reason == "aborted while waiting for a GPU"
        for g in gates:
            g.touch()
        for spec in specs[:4]:
            assert rec.wait_exit(spec.job_id, GUARD).exit_code == 0


def test_a_2xgpu_queue_gives_two_devices_per_job(fake_gpus: None, tmp_path: Path) -> None:
    with local_harness(tmp_path, gpus=[0, 1, 2, 3]) as h:
        script = h.script("holder.py", HOLDER)
        gate = tmp_path / "gate"
        gate.touch()
        spec = h.spec(script, {"gate": str(gate)}, params_as="json")
        spec = attrs.evolve(spec, queue="2xGPU")
        h.launch(spec)
        assert h.recorder.wait_exit(spec.job_id, GUARD).exit_code == 0
        assert [m.value for m in h.recorder.metrics(spec.job_id, "gpu", "count")] == [2.0]
        too_many = attrs.evolve(spec, job_id="big", queue="8xGPU")
        h.launch(too_many)
        exited = h.recorder.wait_exit("big", GUARD)
        assert isinstance(exited, JobExited) and exited.reason == "needs 8 GPUs but the local backend has 4"


def test_bad_gpu_options_are_one_line_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi at all
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    with pytest.raises(ConfigError, match="gpus='auto' found no GPU"):
        LocalBackend(gpus="auto")
    with pytest.raises(ConfigError, match="gpus_per_job=0 must be a positive integer"):
        LocalBackend(gpus=[0], gpus_per_job=0)
    with pytest.raises(ConfigError, match="gpus=5 must be 'auto' or a list"):
        LocalBackend(gpus=5)
