"""The seed's Python API, tuning train.py locally: ``python examples/digits/optimize.py``."""

from __future__ import annotations

import logging
from pathlib import Path

from hyperscout import (
    DiscreteParameterRange,
    HyperParameterOptimizer,
    LogUniformParameterRange,
    UniformIntegerParameterRange,
)

try:
    from hyperscout_optuna import OptimizerOptuna

    aSearchStrategy = OptimizerOptuna
except ImportError:
    try:
        from hyperscout_bohb import OptimizerBOHB

        aSearchStrategy = OptimizerBOHB
    except ImportError:
        from hyperscout_random import RandomSearch

        logging.getLogger().warning("optuna or bohb plugins are not installed, using RandomSearch")
        aSearchStrategy = RandomSearch


def job_complete_callback(job_id, objective_value, objective_iteration, job_parameters, top_performance_job_id):
    print("Job completed!", job_id, objective_value, objective_iteration, job_parameters)
    if job_id == top_performance_job_id:
        print(f"WOOT WOOT we broke the record! Objective reached {objective_value}")


here = Path(__file__).parent
an_optimizer = HyperParameterOptimizer(
    base_task_id=str(here / "train.py"),
    hyper_parameters=[
        UniformIntegerParameterRange("hidden", min_value=16, max_value=128, step_size=16),
        LogUniformParameterRange("learning_rate_init", min_value=-4, max_value=-1),
        DiscreteParameterRange("batch_size", values=[32, 64, 128]),
        DiscreteParameterRange("epochs", values=[12]),
    ],
    objective_metric_title="validation",
    objective_metric_series="accuracy",
    objective_metric_sign="max",
    max_number_of_concurrent_tasks=2,
    optimizer_class=aSearchStrategy,
    time_limit_per_job=2.0,
    total_max_jobs=10,
    min_iteration_per_job=3,
    max_iteration_per_job=12,
    storage=here / ".hyperscout",
    seed=0,
)
an_optimizer.set_report_period(0.1)
an_optimizer.start_locally(job_complete_callback=job_complete_callback)
an_optimizer.set_time_limit(in_minutes=10.0)
an_optimizer.wait()
top_exp = an_optimizer.get_top_experiments(top_k=3)
print([t.id for t in top_exp])
an_optimizer.stop()
print("We are done, good bye")
