"""The README's dask-jobqueue recipes, read from the README itself so the two cannot drift apart.

* ``SLURMCluster(...)`` and ``PBSCluster(...)`` are built with the README's arguments (only
  ``scheduler_options`` is replaced: the loopback instead of ``ib0``) and never scaled, so nothing
  is submitted; their ``job_script()`` is checked.
* The Slurm recipe's worker options run for real on ``dask_jobqueue.local.LocalCluster``: the same
  job machinery as ``SLURMCluster``, but the job script's worker command is started as a local
  process instead of being given to ``sbatch``. A whole study runs on it, as the README passes it.

Everything listens on 127.0.0.1 (scheduler, workers, nannies and their HTTP servers).
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import sys
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dask.utils import parse_timedelta
from dask_testing import GUARD

from hyperscout import HyperParameterOptimizer, UniformParameterRange
from hyperscout.job import JobStatus
from hyperscout.testing.backend_suite import wait_dead

README = Path(__file__).resolve().parents[1] / "README.md"
#: replaces the recipes' ``scheduler_options={"interface": "ib0"}``: no ib0 here, and nothing on other interfaces
LOOPBACK_SCHEDULER = {"host": "127.0.0.1", "dashboard": False, "dashboard_address": "127.0.0.1:0"}
#: what a single machine adds to ``dask worker`` (see the shell recipe)
LOOPBACK_WORKER = ["--no-dashboard", "--dashboard-address", "127.0.0.1:0"]


# -- the recipes as written in the README -----------------------------------------------------------
def _recipe_blocks() -> list[ast.Module]:
    text = README.read_text()
    recipes = text[text.index("## Recipes"):]
    recipes = recipes[:recipes.index("\n## ", 1)]
    return [ast.parse(block) for block in re.findall(r"```python\n(.*?)```", recipes, re.S)]


def _recipe_call(name: str) -> ast.Call:
    """The one call of ``name(...)`` in the README's Recipes section."""
    calls = [node for tree in _recipe_blocks() for node in ast.walk(tree)
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == name]
    assert len(calls) == 1, f"expected one {name}(...) in the README's recipes, found {len(calls)}"
    return calls[0]


def _recipe_kwargs(name: str) -> dict[str, Any]:
    call = _recipe_call(name)
    assert not call.args and all(k.arg for k in call.keywords), f"{name}(...) in the README: keywords only"
    return {k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg}


def _optimizer_calls_pass_the_cluster() -> list[ast.Call]:
    calls = [node for tree in _recipe_blocks() for node in ast.walk(tree)
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
             and node.func.id == "HyperParameterOptimizer"]
    for call in calls:
        kw = {k.arg: k.value for k in call.keywords}
        assert ast.literal_eval(kw["backend"]) == "dask" and ast.literal_eval(kw["execution_queue"]) == "GPU"
        options = kw["backend_options"]
        assert isinstance(options, ast.Dict) and len(options.keys) == 1
        key, value = options.keys[0], options.values[0]
        assert isinstance(key, ast.Constant) and key.value == "scheduler"
        assert isinstance(value, ast.Name) and value.id == "cluster"
    return calls


def _worker_argv(script: str) -> list[str]:
    """The ``dask worker`` command line: the job script's last line."""
    return shlex.split(script.strip().splitlines()[-1])


def _last(argv: list[str], flag: str) -> str:
    """The value ``dask worker`` takes for ``flag`` (click keeps the last of repeated options)."""
    values = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == flag]
    assert values, f"{flag} not on the worker's command line {argv}"
    return values[-1]


def _jobqueue_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [f"{w.category.__name__}: {w.message}" for w in caught
            if issubclass(w.category, (FutureWarning, DeprecationWarning)) and "dask_jobqueue" in w.filename]


def _check_worker_command(argv: list[str], scheduler_address: str, walltime: str) -> None:
    assert argv[:4] == [sys.executable, "-m", "distributed.cli.dask_worker", scheduler_address], argv
    assert _last(argv, "--nthreads") == "1"
    assert _last(argv, "--resources") == "GPU=1"
    assert "--nanny" in argv
    # the worker must retire before the batch system kills it: lifetime + stagger < walltime
    lifetime = parse_timedelta(_last(argv, "--lifetime"))
    stagger = parse_timedelta(_last(argv, "--lifetime-stagger"))
    h, m, s = (int(part) for part in walltime.split(":"))
    assert 0 < lifetime + stagger < h * 3600 + m * 60 + s, (lifetime, stagger, walltime)


# -- Slurm and PBS: the job scripts -----------------------------------------------------------------
def _build(cls: type, name: str) -> Iterator[tuple[Any, dict[str, Any], list[str]]]:
    kwargs = _recipe_kwargs(name)
    assert "interface" in kwargs["scheduler_options"], "the recipe names the interface the compute nodes reach"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cluster = cls(**{**kwargs, "scheduler_options": LOOPBACK_SCHEDULER})
    try:
        yield cluster, kwargs, _jobqueue_warnings(caught)
    finally:
        cluster.close()


@pytest.fixture
def slurm_recipe() -> Iterator[tuple[Any, dict[str, Any], list[str]]]:
    from dask_jobqueue import SLURMCluster

    yield from _build(SLURMCluster, "SLURMCluster")


@pytest.fixture
def pbs_recipe() -> Iterator[tuple[Any, dict[str, Any], list[str]]]:
    from dask_jobqueue import PBSCluster

    yield from _build(PBSCluster, "PBSCluster")


def test_the_slurm_recipe_writes_the_job_script_it_promises(slurm_recipe: tuple[Any, dict[str, Any], list[str]]) -> None:
    cluster, kwargs, warned = slurm_recipe
    assert warned == [], "a keyword of the README's SLURMCluster(...) is deprecated in dask-jobqueue"
    assert _optimizer_calls_pass_the_cluster()
    script = cluster.job_script()
    directives = [line for line in script.splitlines() if line.startswith("#SBATCH")]
    for expected in ("#SBATCH -p gpu", "#SBATCH -A proj", "#SBATCH -t 04:00:00", "#SBATCH --gres=gpu:1",
                     "#SBATCH --cpus-per-task=4", "#SBATCH -n 1"):
        assert expected in directives, (expected, script)
    assert any(d.startswith("#SBATCH --mem=") for d in directives), script
    lines = script.strip().splitlines()
    assert lines.index("source /shared/venv/bin/activate") < len(lines) - 1, "the prologue runs before the worker"
    assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
    _check_worker_command(_worker_argv(script), cluster.scheduler_address, kwargs["walltime"])
    assert len(cluster.workers) == 0, "nothing is submitted before scale()"


def test_the_pbs_recipe_writes_the_job_script_it_promises(pbs_recipe: tuple[Any, dict[str, Any], list[str]]) -> None:
    cluster, kwargs, warned = pbs_recipe
    assert warned == [], "a keyword of the README's PBSCluster(...) is deprecated in dask-jobqueue"
    script = cluster.job_script()
    directives = [line for line in script.splitlines() if line.startswith("#PBS")]
    for expected in ("#PBS -q gpu", "#PBS -A proj", "#PBS -l select=1:ncpus=4:ngpus=1:mem=16gb",
                     "#PBS -l walltime=04:00:00"):
        assert expected in directives, (expected, script)
    assert not any("gres" in line for line in script.splitlines()), "a Slurm directive in a PBS script"
    lines = script.strip().splitlines()
    assert lines.index("source /shared/venv/bin/activate") < len(lines) - 1
    _check_worker_command(_worker_argv(script), cluster.scheduler_address, kwargs["walltime"])
    assert len(cluster.workers) == 0


# -- the Slurm recipe's workers, run by dask-jobqueue's LocalCluster -------------------------------------
@pytest.fixture
def jobqueue_cluster() -> Iterator[tuple[Any, dict[str, int]]]:
    """dask-jobqueue's LocalCluster with the Slurm recipe's worker options, 2 jobs; yields it and its
    worker processes (address -> pid). Closed at the end, its processes checked gone."""
    from dask_jobqueue.local import LocalCluster
    from distributed import Client

    slurm = _recipe_kwargs("SLURMCluster")
    worker_options = {k: slurm[k] for k in ("cores", "processes", "memory", "worker_extra_args")}
    worker_options["worker_extra_args"] = [*worker_options["worker_extra_args"], *LOOPBACK_WORKER]
    cluster = LocalCluster(**worker_options, interface="lo", scheduler_options=LOOPBACK_SCHEDULER)
    nannies: list[Any] = []  # the jobs' processes (subprocess.Popen): not the jobs, which close() must drop
    workers: dict[str, int] = {}
    try:
        cluster.scale(jobs=2)
        with Client(cluster, set_as_default=False) as client:
            client.wait_for_workers(2, timeout=GUARD)
            workers = client.run(os.getpid)
        nannies = [job.process.proc for job in cluster.workers.values()]
        yield cluster, workers
    finally:
        cluster.close()
        for nanny in nannies:  # LocalJob SIGKILLs its nanny at close; reap it
            nanny.wait(GUARD)
        assert wait_dead(list(workers.values()), GUARD) == [], "a worker outlived its jobqueue cluster"


#: reports loss at iterations 1..2 and the pid of the process that started it (its Dask worker)
TRIAL = """
    import argparse, os
    from hyperscout import report_scalar
    p = argparse.ArgumentParser()
    p.add_argument("--x", type=float)
    a = p.parse_args()
    report_scalar("where", "worker_pid", float(os.getppid()), 0)
    for i in (1, 2):
        report_scalar("val", "loss", (a.x - 0.3) ** 2 + 0.1 / i, i)
"""


def test_a_study_runs_on_the_slurm_recipes_workers_started_by_dask_jobqueue(
        jobqueue_cluster: tuple[Any, dict[str, int]], tmp_path: Path) -> None:
    from distributed import Client

    cluster, workers = jobqueue_cluster
    with Client(cluster, set_as_default=False) as client:
        info = client.scheduler_info(n_workers=-1)["workers"]
    assert set(info) == set(workers)
    for address, worker in info.items():
        assert address.startswith("tcp://127.0.0.1:")
        assert worker["resources"] == {"GPU": 1.0} and worker["nthreads"] == 1, worker
    trial = tmp_path / "trial.py"
    trial.write_text(textwrap.dedent(TRIAL).lstrip())
    opt = HyperParameterOptimizer(
        str(trial), [UniformParameterRange("x", 0.0, 1.0)], "val", "loss", "min", optimizer_class="random",
        max_number_of_concurrent_tasks=2, total_max_jobs=4, execution_queue="GPU", storage=tmp_path / "store",
        seed=5, show_progress=False, backend="dask", backend_options={"scheduler": cluster},
    )
    opt.start()
    try:
        assert opt.wait(GUARD / 60), "the study did not end"
    finally:
        opt.stop()
    jobs = opt.get_all_experiments()
    assert len(jobs) == 4 and all(j.status is JobStatus.COMPLETED for j in jobs), [(j.status, j.reason) for j in jobs]
    for job in jobs:
        assert [(m.iteration, m.value) for m in job.metrics if m.title == "val"] == \
            [(i, (job.params["x"] - 0.3) ** 2 + 0.1 / i) for i in (1, 2)]
        assert job.objective_values == [(job.params["x"] - 0.3) ** 2 + 0.1 / 2]
        ran_on = [int(m.value) for m in job.metrics if m.title == "where"]
        assert len(ran_on) == 1 and ran_on[0] in workers.values(), (ran_on, workers)
    # the backend used the cluster's scheduler and left the cluster (the user's) running
    assert cluster.status.name == "running"
    with Client(cluster, set_as_default=False) as client:
        assert set(client.scheduler_info(n_workers=-1)["workers"]) == set(workers)
