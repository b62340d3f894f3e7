"""Synthetic studies written straight into a store with the core's ``Store`` API (tests and ``bench/ui``).

Shaped like a real run: jobs numbered in launch order, objective histories per iteration, a mix
of completed, pruned and failed jobs, BOHB-like budgets if asked, and the engine's events.
"""

from __future__ import annotations

import math
import random
import time
import uuid
from pathlib import Path
from typing import Any

from hyperscout.job import Job, JobStatus, MetricPoint
from hyperscout.lease import Owner
from hyperscout.store import Store

__all__ = ["add_job", "make_study"]

PARAMS = [
    {"type": "LogUniformParameterRange", "name": "lr", "min_value": -4, "max_value": -1, "base": 10},
    {"type": "UniformParameterRange", "name": "dropout", "min_value": 0.0, "max_value": 0.5},
    {"type": "UniformIntegerParameterRange", "name": "layers", "min_value": 1, "max_value": 6},
    {"type": "DiscreteParameterRange", "name": "optimizer", "values": ["adam", "sgd", "rmsprop"]},
]


def _sample(rng: random.Random) -> dict[str, Any]:
    return {"lr": 10 ** rng.uniform(-4, -1), "dropout": rng.uniform(0, 0.5), "layers": rng.randint(1, 6),
            "optimizer": rng.choice(["adam", "sgd", "rmsprop"])}


def _loss(p: dict[str, Any], it: int, rng: random.Random) -> float:
    base = (math.log10(p["lr"]) + 2.5) ** 2 * 0.1 + (p["dropout"] - 0.2) ** 2 + 0.02 * abs(p["layers"] - 3)
    base += {"adam": 0.0, "sgd": 0.05, "rmsprop": 0.02}[p["optimizer"]]
    return base + 1.0 / (1 + it) + rng.gauss(0, 0.005)


def make_study(store_dir: str | Path, name: str, n_jobs: int, *, iterations: int = 20, objectives: int = 1,
               budgets: bool = False, running: bool = False, seed: int = 0, t0: float | None = None,
               total_max_jobs: int | None = None) -> Store:
    """Create study ``name`` with ``n_jobs`` finished jobs; ``running=True`` leaves this process as its owner."""
    rng = random.Random(seed)
    store = Store(store_dir)
    objs = [{"title": "val", "series": "loss", "sign": "min"}]
    if objectives > 1:
        objs.append({"title": "val", "series": "latency", "sign": "min"})
    definition = {
        "base_task": {"argv": ["python", "-u", "train.py"], "cwd": None, "env": {}, "params_as": "argparse",
                      "env_prefix": ""},
        "parameters": PARAMS, "objectives": objs, "strategy": "bohb" if budgets else "random",
        "strategy_options": {}, "backend": "local", "seed": seed,
        "limits": {"max_concurrency": 4, "total_max_jobs": total_max_jobs or n_jobs, "time_limit_per_job": None,
                   "compute_time_limit": None, "min_iteration_per_job": None, "max_iteration_per_job": None,
                   "save_top_k": None, "poll_interval": 6.0, "report_period": 5.0, "time_limit_queued": None,
                   "stop_grace": 2.0, "max_consecutive_failures": 5, "total_max_iterations": None},
    }
    owner = Owner.current()
    store.claim_study(name, owner, stale_after=60.0, create=(definition, "synthetic"))
    start = t0 if t0 is not None else time.time() - n_jobs * 2.0
    store.add_event(name, "study_started", data={"resumed": False})
    with store.batch():
        for n in range(n_jobs):
            add_job(store, name, n, rng, start + n * 2.0, iterations=iterations, objectives=objectives, budgets=budgets)
    if not running:
        store.release_study(name, owner, "ended", "total_max_jobs")
        store.add_event(name, "study_ended", data={"reason": "total_max_jobs"})
    return store


def add_job(store: Store, study: str, n: int, rng: random.Random, t: float, *, iterations: int = 20,
            objectives: int = 1, budgets: bool = False, status: str | None = None) -> Job:
    """One job with its metric history; its status is drawn (mostly completed) unless given."""
    p = _sample(rng)
    budget = float(3 ** rng.randint(0, 3)) if budgets else None
    roll = rng.random()
    st = JobStatus(status) if status else (JobStatus.COMPLETED if roll < 0.8 else JobStatus.PRUNED if roll < 0.93
                                           else JobStatus.FAILED)
    its = iterations if st is JobStatus.COMPLETED else max(1, iterations // 3)
    if budget is not None:
        its = max(1, min(its, int(budget * iterations / 27)))
    job = Job(id=uuid.uuid5(uuid.NAMESPACE_URL, f"{study}/{n}/{rng.random()}").hex[:12], study=study, number=n, params=p, status=st, budget=budget,
              created=t, queued=t, started=t + 0.1, ended=None if st is JobStatus.RUNNING else t + 1.5 + 0.01 * its,
              exit_code=None if st is JobStatus.RUNNING else (1 if st is JobStatus.FAILED else 0),
              reason={"pruned": f"pruned at iteration {its - 1}", "failed": "exit code 1"}.get(st.value))
    store.save_job(job)  # the row exists before its metrics, as the engine writes it
    last = None
    for it in range(its if st is not JobStatus.RUNNING else max(1, its // 2)):
        v = _loss(p, it, rng)
        last = (it, v)
        store.add_metric(job.id, MetricPoint("val", "loss", it, v, t + 0.1 + it * 0.01))
        if objectives > 1:
            store.add_metric(job.id, MetricPoint("val", "latency", it, 10 * p["layers"] + 100 * p["dropout"], t))
    if st is JobStatus.COMPLETED and last is not None:
        job.objective_values = [last[1]] + ([10 * p["layers"] + 100 * p["dropout"]] if objectives > 1 else [])
        job.objective_iterations = [last[0]] * objectives
    store.save_job(job)
    if st.finished:
        store.add_event(study, "job_finished", job.id, {"status": st.value, "reason": job.reason})
    return job
