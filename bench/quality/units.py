"""Units of work for the process pool: one (task, seed, strategy group) each.

A unit runs a plugin and, when there is one, the same library driven directly with the same
seed, in the same process: the comparison shares the evaluation cache, and the unit reports
whether the two runs suggested the very same configurations.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import direct
import driver
from tasks import MF_TASK, SF_TASKS

#: single-fidelity strategy groups: label -> (registry name, options, direct runner or None)
SF_GROUPS: dict[str, tuple[str, dict[str, Any], str | None]] = {
    "random": ("random", {}, None),
    "optuna": ("optuna", {}, "optuna"),
    "skopt_gp": ("skopt", {}, "skopt_gp"),
    "skopt_rf": ("skopt", {"base_estimator": "rf"}, None),
    "bohb": ("bohb", {}, "bohb"),
}
SF_LABELS = {
    "random": "random",
    "optuna": "optuna (TPE)",
    "skopt_gp": "skopt (GP)",
    "skopt_rf": "skopt (RF)",
    "bohb": "bohb (KDE, one budget)",
}
DIRECT_LABELS = {
    "optuna": "Optuna TPE, `study.optimize`",
    "skopt_gp": "skopt `Optimizer` ask/tell (GP)",
    "bohb": "hpbandster BOHB generator, `get_config`/`new_result`",
}
#: multi-fidelity groups: label -> (registry name, options, direct runner or None)
MF_GROUPS: dict[str, tuple[str, dict[str, Any], str | None]] = {
    "random": ("random", {}, None),
    "hyperband": ("hyperband", {}, None),
    "bohb": ("bohb", {}, "bohb_master"),
    "optuna_hb": ("optuna", {"pruner": "hyperband"}, "optuna_hb"),
}
MF_LABELS = {
    "random": "random (every job 27 epochs)",
    "hyperband": "hyperband",
    "bohb": "bohb",
    "optuna_hb": "optuna (TPE + HyperbandPruner)",
}
MF_DIRECT_LABELS = {
    "bohb_master": "hpbandster BOHB (Master + NameServer + Worker)",
    "optuna_hb": "Optuna TPE + HyperbandPruner, `study.optimize`",
}


def _same(a: Sequence[dict[str, Any]], b: Sequence[dict[str, Any]]) -> int:
    """How many positions hold the same configuration (values equal to 1e-12)."""
    n = 0
    for x, y in zip(a, b):
        if x.keys() == y.keys() and all(math.isclose(float(x[k]), float(y[k]), rel_tol=1e-12, abs_tol=1e-12) for k in x):
            n += 1
    return n


def sf_unit(task_name: str, seed: int, group: str, n_evals: int, with_direct: bool) -> dict[str, Any]:
    task = SF_TASKS[task_name]
    name, options, direct_kind = SF_GROUPS[group]
    run = driver.run_sf(name, options, task, n_evals, seed)
    out: dict[str, Any] = {
        "kind": "sf", "task": task_name, "seed": seed, "group": group,
        "values": run.values, "opt_seconds": run.opt_seconds, "wall_seconds": run.wall_seconds,
    }
    if with_direct and direct_kind is not None:
        if direct_kind == "optuna":
            d = direct.optuna_direct_sf(task, n_evals, seed)
        elif direct_kind == "skopt_gp":
            d = direct.skopt_direct_sf(task, n_evals, seed, "GP")
        else:
            d = direct.bohb_direct_sf(task, n_evals, seed)
        out["direct"] = {
            "values": d.values, "opt_seconds": d.opt_seconds, "wall_seconds": d.wall_seconds,
            "identical": _same(run.params, d.params), "n": max(len(run.params), len(d.params)),
        }
    return out


def _mf_dict(run: driver.MFRun, grid: list[int]) -> dict[str, Any]:
    return {
        "best": run.best, "curve": run.best_at(grid), "iterations": run.iterations, "jobs": run.jobs,
        "pruned": run.pruned, "full_budget_jobs": run.full_budget_jobs, "ends": run.ends,
        "opt_seconds": run.opt_seconds, "wall_seconds": run.wall_seconds,
    }


def hyperband_brackets(budget: int, eta: int, lo: int, hi: int) -> int:
    """How many hpbandster Hyperband iterations (brackets) it takes to spend ``budget`` iterations."""
    s_max = math.floor(math.log(hi / lo) / math.log(eta) + 1e-9)
    spent, n = 0, 0
    while spent < budget:
        s = s_max - (n % (s_max + 1))
        n0 = int(math.floor((s_max + 1) / (s + 1)) * eta**s + 1e-9)
        for i in range(s + 1):
            spent += max(int(n0 * eta ** (-i) + 1e-9), 1) * round(hi * eta ** (i - s))
        n += 1
    return n


def mf_unit(seed: int, group: str, budget: int, lo: int, hi: int, grid: list[int], with_direct: bool,
            metric: str = "error") -> dict[str, Any]:
    name, options, direct_kind = MF_GROUPS[group]
    MF_TASK.metric = metric
    run = driver.run_mf(name, options, MF_TASK, budget, seed, lo, hi)
    out: dict[str, Any] = {"kind": "mf", "seed": seed, "group": group, **_mf_dict(run, grid)}
    if with_direct and direct_kind is not None:
        if direct_kind == "optuna_hb":
            d = direct.optuna_direct_mf(MF_TASK, budget, seed, lo, hi)
        else:
            d = direct.bohb_direct_mf(MF_TASK, hyperband_brackets(budget, 3, lo, hi), seed, lo, hi)
            # hpbandster runs whole brackets: keep what was spent within the budget
            d.ends = [(it, v) for it, v in d.ends if it <= budget]
        dd = _mf_dict(d, grid)
        dd["identical_ends"] = sum(1 for a, b in zip(run.ends, d.ends) if a == b)
        dd["n_ends"] = max(len(run.ends), len(d.ends))
        out["direct"] = {"kind": direct_kind, **dd}
    return out
