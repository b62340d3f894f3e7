"""The same libraries driven directly, without hyperscout, for the side-by-side comparison.

* Optuna: ``study.optimize`` with a seeded ``TPESampler`` (quality), and the ask/tell interface
  ``study.ask()`` + ``trial.suggest_*`` + ``study.tell()`` (overhead, the calls the plugin wraps).
  Multi-fidelity: ``study.optimize`` whose objective reports every epoch and raises
  ``TrialPruned`` when ``trial.should_prune()`` says so, with ``HyperbandPruner``.
* scikit-optimize: ``skopt.Optimizer`` ask/tell with its defaults (GP, ``gp_hedge``, 10 initial
  points) or a random forest.
* hpbandster: single-fidelity, its BOHB config generator called directly (``get_config`` /
  ``new_result``, what hpbandster's Master calls); multi-fidelity, the complete hpbandster stack
  (``NameServer`` + ``Worker`` + ``BOHB`` master) on localhost.

Seeds are set so that a library run with seed ``s`` can repeat the plugin's run with study seed
``s`` choice for choice (the plugins seed their library from the study seed); the report says
whether the suggestions were in fact identical.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
from driver import MFRun, SFRun
from tasks import Dim, MultiFidelityTask, Task

__all__ = ["bohb_direct_mf", "bohb_direct_sf", "optuna_direct_mf", "optuna_direct_sf", "skopt_direct_sf"]


# -- Optuna ------------------------------------------------------------------------------------------
def _suggest(trial: Any, d: Dim) -> Any:
    lo, hi = d.value_bounds
    if d.kind == "int":
        return trial.suggest_int(d.name, int(lo), int(hi))
    return trial.suggest_float(d.name, lo, hi, log=d.kind == "log")


def _quiet_optuna() -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def optuna_direct_sf(task: Task, n_evals: int, seed: int) -> SFRun:
    """``study.optimize`` for ``n_evals`` trials; optimizer time = wall time minus evaluations."""
    optuna = _quiet_optuna()
    run = SFRun()
    spent_in_objective = 0.0
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))

    def objective(trial: Any) -> float:
        nonlocal spent_in_objective
        params = {d.name: _suggest(trial, d) for d in task.dims}
        t0 = time.perf_counter()
        value = task.evaluate(params)
        spent_in_objective += time.perf_counter() - t0
        run.values.append(value)
        run.params.append(params)
        return value

    start = time.perf_counter()  # like the plugin's timing: the loop, not building the study
    study.optimize(objective, n_trials=n_evals)
    run.wall_seconds = time.perf_counter() - start
    run.opt_seconds = run.wall_seconds - spent_in_objective
    return run


def optuna_askteller(task: Task, seed: int) -> tuple[Any, Any]:
    """A seeded TPE study and a function ``ask() -> (trial, params)`` (for the overhead loop)."""
    optuna = _quiet_optuna()
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))

    def ask() -> tuple[Any, dict[str, Any]]:
        trial = study.ask()
        return trial, {d.name: _suggest(trial, d) for d in task.dims}

    return study, ask


def optuna_direct_mf(task: MultiFidelityTask, total_iterations: int, seed: int, min_iteration: int,
                     max_iteration: int) -> MFRun:
    """TPE + HyperbandPruner through ``study.optimize``, stopped when the iteration budget is spent.

    The pruner gets the same resources the plugin derives from the study limits
    (``min_resource = min_iteration``, ``max_resource = max_iteration``, reduction factor 3), and
    the study has the plugin's fixed name, because Optuna's Hyperband assigns trials to brackets
    by a hash of the study name and trial number.
    """
    optuna = _quiet_optuna()
    run = MFRun()
    start = time.perf_counter()
    study = optuna.create_study(
        study_name="hyperscout",
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.HyperbandPruner(min_resource=min_iteration, max_resource=max_iteration),
    )

    def objective(trial: Any) -> float:
        params = {d.name: _suggest(trial, d) for d in task.dims}
        last: tuple[int, float] | None = None
        for it in range(1, max_iteration + 1):
            if run.iterations >= total_iterations:
                break  # the study's budget ran out mid-trial: it ends with its last value
            value = task.value(params, it)
            run.iterations += 1
            last = (it, value)
            trial.report(value, it)
            if it < max_iteration and it >= min_iteration and trial.should_prune():
                run.pruned += 1
                run.ends.append((run.iterations, value))
                raise optuna.TrialPruned()
        if last is None:
            raise optuna.TrialPruned()  # budget gone before the first epoch: nothing to tell
        run.ends.append((run.iterations, last[1]))
        run.full_budget_jobs += last[0] >= max_iteration
        return last[1]

    def stop_when_spent(study: Any, _trial: Any) -> None:
        if run.iterations >= total_iterations:
            study.stop()

    study.optimize(objective, callbacks=[stop_when_spent])
    run.jobs = len(study.trials)
    run.wall_seconds = time.perf_counter() - start
    return run


# -- scikit-optimize -----------------------------------------------------------------------------------
def skopt_dimensions(task: Task) -> list[Any]:
    from skopt.space import Integer, Real

    out = []
    for d in task.dims:
        lo, hi = d.value_bounds
        if d.kind == "int":
            out.append(Integer(int(lo), int(hi)))
        elif d.kind == "log":
            out.append(Real(lo, hi, prior="log-uniform", base=10))
        else:
            out.append(Real(lo, hi))
    return out


def skopt_optimizer(task: Task, seed: int, base_estimator: str) -> Any:
    from skopt import Optimizer

    return Optimizer(skopt_dimensions(task), base_estimator=base_estimator, n_initial_points=10,
                     acq_func="gp_hedge", random_state=seed)


def _skopt_params(task: Task, x: list[Any]) -> dict[str, Any]:
    return {d.name: (int(v) if d.kind == "int" else float(v)) for d, v in zip(task.dims, x)}


def skopt_direct_sf(task: Task, n_evals: int, seed: int, base_estimator: str = "GP") -> SFRun:
    run = SFRun()
    opt = skopt_optimizer(task, seed, base_estimator)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The objective has been evaluated at point")
        for _ in range(n_evals):
            t0 = time.perf_counter()
            x = opt.ask()
            run.opt_seconds += time.perf_counter() - t0
            params = _skopt_params(task, x)
            value = task.evaluate(params)
            run.values.append(value)
            run.params.append(params)
            t0 = time.perf_counter()
            opt.tell(x, value)
            run.opt_seconds += time.perf_counter() - t0
    run.wall_seconds = time.perf_counter() - start
    return run


# -- hpbandster -------------------------------------------------------------------------------------------
class _Job:
    """The fields of hpbandster's dispatcher Job that its config generators read."""

    def __init__(self, config: Mapping[str, Any], budget: float, loss: float) -> None:
        self.id = (0, 0, 0)
        self.kwargs = {"config": dict(config), "budget": budget}
        self.result = {"loss": loss, "info": {}}
        self.exception = None
        self.timestamps: dict[str, float] = {}


def configspace(task: Any, seed: int) -> Any:
    import ConfigSpace as CS

    cs = CS.ConfigurationSpace(seed=seed)
    hps = []
    for d in task.dims:
        lo, hi = d.value_bounds
        if d.kind == "int":
            hps.append(CS.UniformIntegerHyperparameter(d.name, lower=int(lo), upper=int(hi)))
        else:
            hps.append(CS.UniformFloatHyperparameter(d.name, lower=lo, upper=hi, log=d.kind == "log"))
    cs.add(hps)
    return cs


def plugin_seeds(seed: int) -> tuple[int, int]:
    """The ConfigSpace and numpy seeds the bohb plugin derives from a study seed (two draws of
    ``random.Random(seed)``), so the generator driven directly starts from the same streams."""
    r = random.Random(seed)
    return r.randrange(2**31), r.randrange(2**31)


def bohb_generator(task: Task, seed: int) -> Any:
    from hpbandster.optimizers.config_generators.bohb import BOHB

    cs_seed, np_seed = plugin_seeds(seed)
    np.random.seed(np_seed)  # hpbandster samples with numpy's global random state
    return BOHB(configspace(task, cs_seed), logger=_quiet_logger())


def _bohb_params(task: Task, config: Mapping[str, Any]) -> dict[str, Any]:
    return {d.name: (int(config[d.name]) if d.kind == "int" else float(config[d.name])) for d in task.dims}


def bohb_direct_sf(task: Task, n_evals: int, seed: int) -> SFRun:
    """hpbandster's BOHB config generator at one budget, as the plugin runs it with ``min = max``."""
    run = SFRun()
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore")  # ConfigSpace 1.x deprecations hpbandster triggers
        cg = bohb_generator(task, seed)
        start = time.perf_counter()
        for _ in range(n_evals):
            t0 = time.perf_counter()
            config, _info = cg.get_config(1.0)
            run.opt_seconds += time.perf_counter() - t0
            params = _bohb_params(task, config)
            value = task.evaluate(params)
            run.values.append(value)
            run.params.append(params)
            t0 = time.perf_counter()
            cg.new_result(_Job(config, 1.0, value))
            run.opt_seconds += time.perf_counter() - t0
    run.wall_seconds = time.perf_counter() - start
    return run


_PYRO_LOCK = threading.Lock()


def _quiet_logger() -> logging.Logger:
    """hpbandster logs every job at DEBUG; the benchmark keeps errors only."""
    log = logging.getLogger("bench.hpbandster")
    log.setLevel(logging.ERROR)
    log.propagate = False
    if not log.handlers:
        log.addHandler(logging.StreamHandler())
    return log


def bohb_direct_mf(task: MultiFidelityTask, n_brackets: int, seed: int, min_iteration: int, max_iteration: int,
                   eta: int = 3) -> MFRun:
    """hpbandster's own BOHB master, name server and one in-process worker on localhost.

    ``n_brackets`` Hyperband iterations (hpbandster's ``n_iterations``); each run trains its
    configuration from scratch for ``budget`` epochs, as the plugin's jobs do. Pyro4 is switched
    to the pickle serializer: with its default (serpent) the numpy values in ConfigSpace 1.x
    configurations never reach the worker and the master waits forever.
    """
    import hpbandster.core.nameserver as hpns
    import Pyro4
    from hpbandster.core.worker import Worker
    from hpbandster.optimizers import BOHB

    Pyro4.config.SERIALIZER = "pickle"
    Pyro4.config.SERIALIZERS_ACCEPTED.add("pickle")
    for name in ("hpbandster", "Pyro4", "Pyro4.core"):
        logging.getLogger(name).setLevel(logging.ERROR)

    class EpochWorker(Worker):  # type: ignore[misc]
        def compute(self, config: Mapping[str, Any], budget: float, **_: Any) -> dict[str, Any]:
            params = _bohb_params(task, config)
            return {"loss": task.value(params, round(budget)), "info": {}}

    run = MFRun()
    start = time.perf_counter()
    run_id = f"bench-{seed}-{time.time_ns()}"
    with _PYRO_LOCK, warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore")
        cs_seed, np_seed = plugin_seeds(seed)
        np.random.seed(np_seed)
        ns = hpns.NameServer(run_id=run_id, host="127.0.0.1", port=0)
        ns_host, ns_port = ns.start()
        # hpbandster's Worker configures the root logger at DEBUG unless it is given a logger
        worker = EpochWorker(run_id=run_id, nameserver=ns_host, nameserver_port=ns_port, logger=_quiet_logger())
        worker.run(background=True)
        master = BOHB(configspace=configspace(task, cs_seed), run_id=run_id, nameserver=ns_host,
                      nameserver_port=ns_port, min_budget=min_iteration, max_budget=max_iteration, eta=eta,
                      logger=_quiet_logger())
        try:
            result = master.run(n_iterations=n_brackets)
        finally:
            master.shutdown(shutdown_workers=True)
            ns.shutdown()
    runs = sorted(result.get_all_runs(), key=lambda r: r.time_stamps["finished"])
    for r in runs:
        run.iterations += round(r.budget)
        run.jobs += 1
        run.full_budget_jobs += r.budget >= max_iteration
        if r.loss is not None:
            run.ends.append((run.iterations, float(r.loss)))
    run.wall_seconds = time.perf_counter() - start
    return run
