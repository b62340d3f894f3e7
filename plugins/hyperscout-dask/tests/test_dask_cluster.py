"""Placement on a shell-started cluster: resources from the queue, and what the cluster must have installed."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
from dask_testing import GUARD, ShellCluster, start_cluster, stop_cluster

from hyperscout.backend import JobStarted
from hyperscout.testing.backend_suite import Harness
from hyperscout_dask import DaskBackend

TIMED = """
    import time
    from hyperscout import report_scalar
    report_scalar("t", "start", time.time(), 0)
    time.sleep(0.5)
    report_scalar("t", "end", time.time(), 0)
"""


def _harness(tmp_path: Path, **options: object) -> Harness:
    h = Harness(DaskBackend(**options), tmp_path, sys.executable, GUARD)  # type: ignore[arg-type]
    h.backend.open(h.recorder)
    return h


def _started_on(h: Harness, job_id: str) -> str | None:
    return next(e.worker for e in h.recorder.events(job_id) if isinstance(e, JobStarted))


def test_a_gpu_queue_runs_only_on_the_gpu_worker_one_job_at_a_time(shell_cluster: ShellCluster,
                                                                   tmp_path: Path) -> None:
    gpu = next(a for a, w in shell_cluster.workers().items() if w["name"] == "w-gpu")
    h = _harness(tmp_path, scheduler_file=shell_cluster.scheduler_file)
    try:
        script = h.script("timed.py", TIMED)
        specs = [attrs.evolve(h.spec(script), queue="GPU") for _ in range(3)]
        for spec in specs:
            h.launch(spec)
        for spec in specs:
            assert h.recorder.wait_exit(spec.job_id, GUARD).exit_code == 0
        assert {_started_on(h, s.job_id) for s in specs} == {gpu}
        spans = sorted((h.recorder.metrics(s.job_id, "t", "start")[0].value,
                        h.recorder.metrics(s.job_id, "t", "end")[0].value) for s in specs)
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), f"GPU=1 jobs overlapped: {spans}"
    finally:
        h.close()


@pytest.fixture
def cluster_without_the_plugin(tmp_path: Path) -> Iterator[ShellCluster]:
    """A scheduler and workers on which ``import hyperscout_dask`` fails (only hyperscout is there)."""
    shadow = tmp_path / "shadow" / "hyperscout_dask"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('hyperscout_dask is not installed on this cluster')\n")
    cluster = start_cluster(tmp_path / "bare", env={"PYTHONPATH": str(shadow.parent)})
    try:
        yield cluster
    finally:
        stop_cluster(cluster)


def test_the_cluster_needs_no_hyperscout_dask_installed(cluster_without_the_plugin: ShellCluster,
                                                        tmp_path: Path) -> None:
    h = _harness(tmp_path, scheduler_file=cluster_without_the_plugin.scheduler_file)
    try:
        spec = h.spec(h.script("ok.py", """
            import importlib.util
            from hyperscout import report_scalar
            try:
                import hyperscout_dask
                report_scalar("plugin", "importable", 1.0, 0)
            except ImportError:
                report_scalar("plugin", "importable", 0.0, 0)
        """))
        assert h.run(spec).exit_code == 0
        assert [m.value for m in h.recorder.metrics(spec.job_id, "plugin", "importable")] == [0.0]
    finally:
        h.close()
