"""Whole studies through ``HyperParameterOptimizer(..., backend="dask")``: results, pruning, crash and resume."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from dask_testing import GUARD, ShellCluster, wait_until

from hyperscout import HyperParameterOptimizer, UniformParameterRange
from hyperscout.job import JobStatus
from hyperscout.strategy import EXHAUSTED, SearchStrategy, Signal, Suggestion, TrialResult, Verdict
from hyperscout.testing.backend_suite import wait_dead

#: reports loss = (x - 0.3)^2 at iterations 1..3, printing a line per iteration
TRIAL = """
    import argparse, time
    from hyperscout import report_scalar
    p = argparse.ArgumentParser()
    p.add_argument("--x", type=float)
    a = p.parse_args()
    for i in range(1, 4):
        print(f"iteration {i}", flush=True)
        report_scalar("val", "loss", (a.x - 0.3) ** 2 + 0.1 / i, i)
"""


def _script(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body).lstrip())
    return path


def test_a_study_on_the_local_cluster(tmp_path: Path) -> None:
    opt = HyperParameterOptimizer(
        str(_script(tmp_path, "trial.py", TRIAL)), [UniformParameterRange("x", 0.0, 1.0)], "val", "loss", "min",
        optimizer_class="random", max_number_of_concurrent_tasks=2, total_max_jobs=6, storage=tmp_path / "store",
        seed=1, show_progress=False, backend="dask",
    )
    opt.start()
    opt.wait()
    jobs = opt.get_all_experiments()
    assert len(jobs) == 6 and all(j.status is JobStatus.COMPLETED for j in jobs), [(j.status, j.reason) for j in jobs]
    for job in jobs:
        assert job.objective_values == [(job.params["x"] - 0.3) ** 2 + 0.1 / 3]
        assert [m.iteration for m in job.metrics] == [1, 2, 3]
        assert Path(job.stdout_path or "").read_text().splitlines() == ["iteration 1", "iteration 2", "iteration 3"]
        assert job.handle == f"hyperscout/{opt.study_name}/{job.id}"
    best = opt.get_top_experiments(1)[0]
    assert best.objective_values == [min(j.objective_values[0] for j in jobs)]  # type: ignore[index]


class PruneAtTwo(SearchStrategy):
    """Two trials; every trial is pruned when it reports iteration 2."""

    name = "prune-at-two"
    learns_from_results = False

    def __init__(self, space: Any, objectives: Any, settings: Any) -> None:
        super().__init__(space, objectives, settings)
        self.asked = 0
        self.told: dict[str, TrialResult] = {}

    def ask(self, trial_id: str) -> Suggestion | Signal:
        if self.asked == 2:
            return EXHAUSTED
        self.asked += 1
        return Suggestion({"x": 0.1 * self.asked})

    def report(self, trial_id: str, iteration: int, value: float) -> Verdict:
        return Verdict.PRUNE if iteration >= 2 else Verdict.CONTINUE

    def tell(self, trial_id: str, result: TrialResult) -> None:
        self.told[trial_id] = result


#: would run 60 iterations (30 s) unless it is stopped; records its pid
LONG = """
    import argparse, os, sys, time
    from hyperscout import report_scalar
    p = argparse.ArgumentParser()
    p.add_argument("--x", type=float)
    p.add_argument("--pids")
    a = p.parse_args()
    with open(a.pids, "a") as fh:
        fh.write(f"{os.getpid()}\\n")
    for i in range(60):
        report_scalar("val", "loss", a.x + 1.0 / (i + 1), i)
        time.sleep(0.5)
"""


def test_pruning_stops_the_job_on_its_worker(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    from hyperscout import Command

    command = Command([sys.executable, "-u", str(_script(tmp_path, "long.py", LONG)), "--pids", str(pids)])
    opt = HyperParameterOptimizer(
        command, [UniformParameterRange("x", 0.0, 1.0)], "val", "loss", "min", optimizer_class=PruneAtTwo,
        max_number_of_concurrent_tasks=2, storage=tmp_path / "store", show_progress=False, backend="dask",
        backend_options={"kill_grace": 1.0},
    )
    opt.start()
    opt.wait()
    jobs = opt.get_all_experiments()
    assert [j.status for j in jobs] == [JobStatus.PRUNED, JobStatus.PRUNED], [(j.status, j.reason) for j in jobs]
    for job in jobs:
        assert job.reason is not None and job.reason.startswith("pruned by prune-at-two at iteration 2"), job.reason
        counted = [m.iteration for m in job.metrics if not m.after_stop]
        assert counted == [0, 1, 2]
        assert max(m.iteration for m in job.metrics) < 59, "the job ran to its end: the prune never reached it"
    strategy = opt.get_optimizer()
    assert isinstance(strategy, PruneAtTwo)
    assert {r.status for r in strategy.told.values()} == {JobStatus.PRUNED}
    assert wait_dead([int(p) for p in pids.read_text().split()], 10.0) == []


# -- crash and resume -------------------------------------------------------------------------------
DRIVER = """
    import json, sys
    from hyperscout import HyperParameterOptimizer, UniformParameterRange
    cfg = json.loads(sys.argv[1])
    opt = HyperParameterOptimizer(
        cfg["trial"], [UniformParameterRange("x", 0.0, 1.0)], "val", "loss", "min", optimizer_class="random",
        max_number_of_concurrent_tasks=2, total_max_jobs=cfg["total"], storage=cfg["storage"],
        study_name="crash", seed=7, show_progress=False, backend="dask", backend_options=cfg["options"])
    opt.start()
    opt.wait()
    print("RESULT", json.dumps([
        {"id": j.id, "status": j.status.value, "x": j.params["x"], "superseded_by": j.superseded_by,
         "iterations": sorted(m.iteration for m in j.metrics), "stdout": j.stdout_path}
        for j in opt.get_all_experiments()]))
"""

#: records each start (x and pid) in a shared file, prints and reports 8 iterations over ~3 s
SLOW = """
    import argparse, os, time
    from hyperscout import report_scalar
    p = argparse.ArgumentParser()
    p.add_argument("--x", type=float)
    a = p.parse_args()
    with open(os.environ["STARTS"], "a") as fh:
        fh.write(f"{a.x!r} {os.getpid()}\\n")
    for i in range(8):
        print(f"line {i}", flush=True)
        report_scalar("val", "loss", (a.x - 0.3) ** 2 + 1.0 / (i + 1), i)
        time.sleep(0.4)
"""


def _rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
            return c.execute(sql).fetchall()
    except sqlite3.OperationalError:
        return []


def _kill_mid_study(tmp_path: Path, options: dict[str, Any], total: int) -> tuple[dict[str, Any], list[str]]:
    """Run the driver, SIGKILL it while two jobs run; returns the config and the running jobs' ids."""
    starts = tmp_path / "starts"
    starts.touch()
    # the trial's environment is its worker's: the backend's env option carries what it needs
    options = {**options, "env": {"STARTS": str(starts)}}
    cfg = {"trial": str(_script(tmp_path, "slow.py", SLOW)), "storage": str(tmp_path / "store"), "total": total,
           "options": options}
    driver = _script(tmp_path, "driver.py", DRIVER)
    db = tmp_path / "store" / "hyperscout.sqlite"
    env = dict(os.environ)
    proc = subprocess.Popen([sys.executable, str(driver), json.dumps(cfg)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def two_running() -> list[str] | None:
        if proc.poll() is not None:
            assert proc.stderr is not None
            raise AssertionError(f"the driver ended before it could be killed: {proc.stderr.read()[-3000:]!r}")
        rows = [r[0] for r in _rows(db, "SELECT id FROM jobs WHERE status='running'")]
        return rows if len(rows) == 2 and len(starts.read_text().splitlines()) >= 2 else None

    try:
        running = wait_until(two_running, "two jobs running on the cluster")
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()
    assert isinstance(running, list) and len(running) == 2
    return {**cfg, "env": env, "driver": str(driver)}, running


def _resume(cfg: dict[str, Any]) -> list[dict[str, Any]]:
    out = subprocess.run([sys.executable, cfg["driver"], json.dumps({k: cfg[k] for k in
                                                                     ("trial", "storage", "total", "options")})],
                         env=cfg["env"], capture_output=True, text=True, timeout=GUARD * 2)
    assert out.returncode == 0, out.stderr[-3000:]
    line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT "))
    return list(json.loads(line[len("RESULT "):]))


def test_a_resumed_study_adopts_the_jobs_still_running_on_the_cluster(shell_cluster: ShellCluster,
                                                                      tmp_path: Path) -> None:
    cfg, running = _kill_mid_study(tmp_path, {"scheduler_file": shell_cluster.scheduler_file}, total=4)
    jobs = _resume(cfg)
    assert len(jobs) == 4 and all(j["status"] == "completed" for j in jobs), jobs
    assert all(j["superseded_by"] is None for j in jobs)
    by_id = {j["id"]: j for j in jobs}
    for job_id in running:  # adopted: same job, full history, logs written once
        assert by_id[job_id]["iterations"] == list(range(8)), by_id[job_id]
        assert Path(by_id[job_id]["stdout"]).read_text().splitlines() == [f"line {i}" for i in range(8)]
    started = [line.split()[0] for line in (tmp_path / "starts").read_text().splitlines()]
    assert sorted(started) == sorted(repr(j["x"]) for j in jobs), "a configuration ran twice (or not at all)"
    adopted = _rows(tmp_path / "store" / "hyperscout.sqlite", "SELECT data FROM events WHERE kind='resumed'")
    assert json.loads(adopted[0][0])["adopted"] == 2


def test_with_the_local_cluster_a_crash_ends_the_jobs_and_the_resume_reruns_them(tmp_path: Path) -> None:
    cfg, running = _kill_mid_study(tmp_path, {}, total=3)
    # the local cluster lived in the killed optimizer: its trials die with it (parent-death signal)
    pids = [int(line.split()[1]) for line in (tmp_path / "starts").read_text().splitlines()]
    assert wait_dead(pids, 10.0) == [], "a trial outlived the optimizer that ran its local cluster"
    jobs = _resume(cfg)
    superseded = {j["id"] for j in jobs if j["superseded_by"] is not None}
    assert superseded == set(running)
    live = [j for j in jobs if j["superseded_by"] is None]
    assert len(live) == 3 and all(j["status"] == "completed" for j in live), jobs
