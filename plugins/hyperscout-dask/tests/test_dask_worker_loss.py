"""A worker lost mid-job: the job runs again, no copy survives, the engine sees one job.

Each run of the trial records itself (a file named ``<run>-<pid>-<child pid>``) and reports its
worker's pid (the trial's parent: the parent-death signal wrapper execs into the trial), so the
test can SIGKILL exactly the worker that runs it, as a crash or the OOM killer would.
"""

from __future__ import annotations

import os
import signal
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from dask_testing import GUARD, ShellCluster

from hyperscout.backend import JobExited, JobStarted
from hyperscout.testing.backend_suite import Harness, wait_dead
from hyperscout_dask import DaskBackend
from hyperscout_dask.backend import NOTE

#: runs below ``argv[2]`` hang (the test kills their worker); the next one finishes
TRIAL = """
    import os, subprocess, sys, time
    from pathlib import Path
    from hyperscout import report_scalar
    runs = Path(sys.argv[1])
    runs.mkdir(exist_ok=True)
    n = len(list(runs.iterdir()))
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    (runs / f"{n}-{os.getpid()}-{child.pid}").write_text("")
    report_scalar("proc", "main", os.getpid(), n)
    report_scalar("proc", "child", child.pid, n)
    report_scalar("proc", "worker", os.getppid(), n)
    if n < int(sys.argv[2]):
        time.sleep(300)
    child.kill()
    report_scalar("validation", "loss", 0.5, 0)
"""


@pytest.fixture
def harness_for(tmp_path: Path) -> Iterator:  # type: ignore[type-arg]
    made: list[Harness] = []

    def make(**options: object) -> Harness:
        h = Harness(DaskBackend(**options), tmp_path, sys.executable, GUARD)  # type: ignore[arg-type]
        h.backend.open(h.recorder)
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()
        for job_id in h.launched:
            h.check_order(job_id)


def _kill_worker_of_run(h: Harness, job_id: str, run: int) -> tuple[int, int]:
    """SIGKILL the worker process running ``run`` of the job; returns that run's (main, child) pids."""
    h.recorder.wait_for(lambda evs: len(h.recorder.metrics(job_id, "proc", "worker")) > run, GUARD,
                        f"run {run} of job {job_id}")
    point = {m.series: m for m in h.recorder.metrics(job_id, "proc") if m.iteration == run}
    os.kill(int(point["worker"].value), signal.SIGKILL)
    return int(point["main"].value), int(point["child"].value)


def _restore(cluster: ShellCluster) -> None:
    cluster.wait_workers(2)  # the nannies restart killed workers; later tests want both


def test_dask_reruns_the_job_on_another_worker_and_the_first_copy_dies(
    shell_cluster: ShellCluster, harness_for, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    h = harness_for(scheduler_file=shell_cluster.scheduler_file)
    spec = h.spec(h.script("lossy.py", TRIAL), args=[str(tmp_path / "runs"), "1"])
    h.launch(spec)
    try:
        main, child = _kill_worker_of_run(h, spec.job_id, 0)
        exited = h.recorder.wait_exit(spec.job_id, GUARD)
    finally:
        _restore(shell_cluster)
    assert exited.exit_code == 0, exited
    assert wait_dead([main, child], 10.0) == [], "the lost run's trial or its child survived its worker"
    assert sorted(p.name.split("-")[0] for p in (tmp_path / "runs").iterdir()) == ["0", "1"]
    kinds = [type(e).__name__ for e in h.recorder.events(spec.job_id)]
    assert kinds.count("JobStarted") == 1 and kinds.count("JobExited") == 1, kinds
    stderr = Path(spec.workdir, "stderr.log").read_text()
    assert NOTE in stderr and "was lost while running this job" in stderr, stderr


def test_the_backend_resubmits_when_dask_gives_up(fragile_cluster: ShellCluster, harness_for,  # type: ignore[no-untyped-def]
                                                  tmp_path: Path) -> None:
    # allowed-failures = 0 on this scheduler: the first lost worker makes the task fail with KilledWorker
    h = harness_for(scheduler_file=fragile_cluster.scheduler_file, max_retries=2)
    spec = h.spec(h.script("lossy.py", TRIAL), args=[str(tmp_path / "runs"), "1"])
    h.launch(spec)
    try:
        main, child = _kill_worker_of_run(h, spec.job_id, 0)
        exited = h.recorder.wait_exit(spec.job_id, GUARD)
    finally:
        _restore(fragile_cluster)
    assert exited.exit_code == 0, exited
    assert wait_dead([main, child], 10.0) == []
    assert [m.value for m in h.recorder.metrics(spec.job_id, "validation", "loss")] == [0.5]
    assert "submitting the job again (attempt 2)" in Path(spec.workdir, "stderr.log").read_text()


def test_retries_exhausted_end_the_job_as_an_infrastructure_failure(
    fragile_cluster: ShellCluster, harness_for, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    h = harness_for(scheduler_file=fragile_cluster.scheduler_file, max_retries=1)
    spec = h.spec(h.script("lossy.py", TRIAL), args=[str(tmp_path / "runs"), "5"])
    h.launch(spec)
    pids: list[int] = []
    try:
        pids += _kill_worker_of_run(h, spec.job_id, 0)
        fragile_cluster.wait_workers(2)
        pids += _kill_worker_of_run(h, spec.job_id, 1)
        exited = h.recorder.wait_exit(spec.job_id, GUARD)
    finally:
        _restore(fragile_cluster)
    assert exited.exit_code is None, exited
    assert exited.reason is not None and exited.reason.startswith("worker lost 2 times: "), exited
    assert "tcp://127.0.0.1:" in exited.reason
    assert wait_dead(pids, 10.0) == []
    assert len(list((tmp_path / "runs").iterdir())) == 2, "a third run started after the job ended"
    assert [type(e) for e in h.recorder.events(spec.job_id)].count(JobStarted) == 1
    assert isinstance(h.recorder.events(spec.job_id)[-1], JobExited)


#: a study's trial: the first run of the configuration x=0.5 hangs until its worker is killed
STUDY_TRIAL = """
    import argparse, os, time
    from pathlib import Path
    from hyperscout import report_scalar
    p = argparse.ArgumentParser()
    p.add_argument("--x", type=float)
    p.add_argument("--runs")
    a = p.parse_args()
    runs = Path(a.runs)
    mine = sorted(runs.glob(f"{a.x!r}-*"))
    (runs / f"{a.x!r}-{len(mine)}-{os.getppid()}").write_text("")
    if a.x == 0.5 and not mine:
        time.sleep(300)
    report_scalar("val", "loss", a.x, 1)
"""


def test_a_study_finishes_and_counts_the_lost_job_once(shell_cluster: ShellCluster, tmp_path: Path) -> None:
    from dask_testing import Listed, wait_until

    from hyperscout import Command, HyperParameterOptimizer, UniformParameterRange

    runs = tmp_path / "runs"
    runs.mkdir()
    script = tmp_path / "trial.py"
    script.write_text(textwrap.dedent(STUDY_TRIAL))
    opt = HyperParameterOptimizer(
        Command([sys.executable, "-u", str(script), "--runs", str(runs)]),
        [UniformParameterRange("x", 0.0, 1.0)], "val", "loss", "min", optimizer_class=Listed.of([0.25, 0.5, 0.75]),
        max_number_of_concurrent_tasks=2, total_max_jobs=3, storage=tmp_path / "store", show_progress=False,
        backend="dask", backend_options={"scheduler_file": shell_cluster.scheduler_file},
    )
    opt.start()
    try:
        first = wait_until(lambda: sorted(runs.glob("0.5-0-*")), "the first run of x=0.5")
        os.kill(int(first[0].name.split("-")[2]), signal.SIGKILL)  # type: ignore[index]
        opt.wait()
    finally:
        opt.stop()
        _restore(shell_cluster)
    jobs = opt.get_all_experiments()
    assert sorted(j.params["x"] for j in jobs) == [0.25, 0.5, 0.75]
    assert all(j.status.value == "completed" for j in jobs), [(j.status, j.reason) for j in jobs]
    assert len(list(runs.glob("0.5-*"))) == 2  # run again inside the backend, one job for the engine
    lost = next(j for j in jobs if j.params["x"] == 0.5)
    assert "was lost while running this job" in Path(lost.stderr_path or "").read_text()
