"""A seed-shaped ClearML HPO script: the optimizer is a ClearML task, trials are clones of a base task.

It has the shape of ClearML's own example (``Task.init(task_type=optimizer)``, connected arguments, a
``HyperParameterOptimizer`` over ``General/`` and ``Args/`` ranges, ``execute_remotely`` to ``services`` when run
as a service, ``start``/``wait``/``get_top_experiments``/``stop``); the block marked IMPORTS below is the only
thing that differs from its ClearML form, which ``bench/clearml`` runs by swapping that block back.

Knobs for tests and benchmarks come from the environment (``SEED_SETTINGS``, a JSON object): the strategy
(``random`` or ``optuna``), counts and periods, and hyperscout's ``study_name``/``storage`` (ClearML's
strategies ignore keyword arguments they do not know).
"""

import json
import os

from clearml import Task

# IMPORTS (hyperscout) >>>
from hyperscout import DiscreteParameterRange, HyperParameterOptimizer, RandomSearch, UniformParameterRange

try:
    from hyperscout import OptimizerOptuna
except ImportError:
    OptimizerOptuna = None
# <<< IMPORTS

SETTINGS = json.loads(os.environ.get("SEED_SETTINGS") or "{}")


def job_complete_callback(job_id, objective_value, objective_iteration, job_parameters, top_performance_job_id):
    print("Job completed!", job_id, objective_value, objective_iteration, json.dumps(job_parameters), flush=True)
    if job_id == top_performance_job_id:
        print(f"WOOT WOOT we broke the record! Objective reached {objective_value}", flush=True)


task = Task.init(
    project_name=SETTINGS.get("project", "Hyper-Parameter Optimization"),
    task_name="Automatic Hyper-Parameter Optimization",
    task_type=Task.TaskTypes.optimizer,
    reuse_last_task_id=False,
)
args = task.connect({"template_task_id": None, "run_as_service": bool(SETTINGS.get("run_as_service", False))})
if not args["template_task_id"]:
    args["template_task_id"] = Task.get_task(project_name=SETTINGS.get("base_project", "hyperscout-tests"),
                                             task_name="base").id

if SETTINGS.get("strategy") == "optuna":
    if OptimizerOptuna is None:
        raise SystemExit("optuna strategy requested but not installed")
    strategy = OptimizerOptuna
else:
    strategy = RandomSearch

extra = {k: SETTINGS[k] for k in ("study_name", "storage") if k in SETTINGS}  # where hyperscout keeps the study
if "pruner" in SETTINGS:
    extra["optuna_pruner"] = SETTINGS["pruner"]

optimizer = HyperParameterOptimizer(
    base_task_id=args["template_task_id"],
    hyper_parameters=[
        UniformParameterRange("Args/lr", min_value=0.05, max_value=1.0),
        DiscreteParameterRange("General/epochs", values=SETTINGS.get("epochs", [2, 3])),
        DiscreteParameterRange("General/sleep", values=[SETTINGS.get("sleep", 0.0)]),
    ],
    objective_metric_title="validation",
    objective_metric_series="loss",
    objective_metric_sign="min",
    max_number_of_concurrent_tasks=SETTINGS.get("concurrency", 2),
    optimizer_class=strategy,
    execution_queue=SETTINGS.get("queue", "default"),
    time_limit_per_job=10.0,
    pool_period_min=SETTINGS.get("pool_period_min", 0.01),
    total_max_jobs=SETTINGS.get("jobs", 4),
    min_iteration_per_job=SETTINGS.get("min_iteration_per_job"),
    max_iteration_per_job=SETTINGS.get("max_iteration_per_job"),
    **extra,
)

if args["run_as_service"]:
    # executed by an agent, this does nothing; run locally, it enqueues this task and ends the process
    task.execute_remotely(queue_name=SETTINGS.get("services_queue", "services"), exit_process=True)

optimizer.set_report_period(SETTINGS.get("report_period_min", 0.02))
optimizer.start(job_complete_callback=job_complete_callback)
optimizer.set_time_limit(in_minutes=120.0)
optimizer.wait()
top_exp = optimizer.get_top_experiments(top_k=3)
print("TOP", json.dumps([t.id for t in top_exp]), flush=True)
optimizer.stop()
print("We are done, good bye", flush=True)
