"""Pruning with Optuna through the Dask backend: the pruner's verdict reaches the job on its worker.

Optuna's ``ThresholdPruner`` makes the outcome depend on the job alone (a loss above 0.5 is
pruned at its first report), so which jobs are pruned is known in advance from their parameters.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import optuna

from hyperscout import HyperParameterOptimizer, UniformParameterRange
from hyperscout.job import JobStatus

#: a hopeless job (x > 0.5) would report 200 times; a good one stops after 3 reports
TRIAL = """
    import argparse, time
    from hyperscout import report_scalar
    p = argparse.ArgumentParser()
    p.add_argument("--x", type=float)
    a = p.parse_args()
    for i in range(1, 201 if a.x > 0.5 else 4):
        report_scalar("val", "loss", a.x, i)
        time.sleep(0.05)
"""


def test_optuna_prunes_hopeless_jobs_on_their_dask_workers(tmp_path: Path) -> None:
    script = tmp_path / "trial.py"
    script.write_text(textwrap.dedent(TRIAL).lstrip())
    opt = HyperParameterOptimizer(
        str(script), [UniformParameterRange("x", 0.0, 1.0)], "val", "loss", "min",
        optimizer_class="optuna", max_number_of_concurrent_tasks=2, total_max_jobs=8, storage=tmp_path / "store",
        seed=5, show_progress=False, backend="dask",
        strategy_options={"sampler": "random", "pruner": optuna.pruners.ThresholdPruner,
                          "pruner_options": {"upper": 0.5}},
    )
    opt.start()
    opt.wait()
    jobs = opt.get_all_experiments()
    assert len(jobs) == 8
    pruned = [j for j in jobs if j.params["x"] > 0.5]
    kept = [j for j in jobs if j.params["x"] <= 0.5]
    assert pruned and kept, [j.params for j in jobs]  # seed 5 draws both kinds
    for job in pruned:
        assert job.status is JobStatus.PRUNED and job.objective_values is None, (job.status, job.reason)
        assert job.reason is not None and job.reason.startswith("pruned by optuna at iteration 1"), job.reason
        assert max(m.iteration for m in job.metrics) < 200, "the job ran to its end: the prune never reached it"
    for job in kept:
        assert job.status is JobStatus.COMPLETED and job.objective_values == [job.params["x"]], (job.status, job.reason)
    assert opt.get_top_experiments(1)[0].params["x"] == min(j.params["x"] for j in kept)
    study = opt.get_optimizer().study  # Optuna's own record agrees
    states = sorted(t.state.name for t in study.trials)
    assert states == sorted(["PRUNED"] * len(pruned) + ["COMPLETE"] * len(kept))
