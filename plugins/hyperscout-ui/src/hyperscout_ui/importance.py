"""Parameter importance from a maintained library, whichever is installed (both are optional).

1. optuna: its default evaluator (PED-ANOVA in optuna 5, fANOVA-like and fast: 0.1 s at 10,000 jobs),
   on an in-memory study built from the ranked jobs;
2. scikit-learn: permutation importance of a small random forest fitted to the objective.

Without either, the panel says what to install (``pip install hyperscout-ui[importance]``).
Only ranked jobs (completed, with every objective) count, as everywhere else.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from hyperscout.job import Job
from hyperscout.objective import Objective

__all__ = ["compute_importance"]

MIN_JOBS = 8


def _encode(values: Sequence[Any], scale: str) -> list[float]:
    if scale == "cat":
        labels = sorted({str(v) for v in values})
        return [float(labels.index(str(v))) for v in values]
    out = []
    for v in values:
        x = float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan
        out.append(math.log10(x) if scale == "log" and x > 0 else x)
    return out


def _optuna(jobs: Sequence[Job], axes: Sequence[dict[str, Any]], objective: Objective) -> dict[str, float] | None:
    try:
        import optuna
    except ImportError:
        return None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dists: dict[str, Any] = {}
    for a in axes:
        name, vals = a["name"], [j.params.get(a["name"]) for j in jobs]
        if a["scale"] == "cat" or any(not isinstance(v, (int, float)) or isinstance(v, bool) for v in vals):
            dists[name] = optuna.distributions.CategoricalDistribution(sorted({str(v) for v in vals}))
        else:
            lo, hi = float(min(vals)), float(max(vals))
            if lo == hi:
                continue
            dists[name] = optuna.distributions.FloatDistribution(lo, hi, log=a["scale"] == "log" and lo > 0)
    if not dists:
        return {}
    trials = []
    for j in jobs:
        params = {n: (str(j.params.get(n)) if isinstance(d, optuna.distributions.CategoricalDistribution)
                      else float(j.params.get(n))) for n, d in dists.items()}
        trials.append(optuna.trial.create_trial(params=params, distributions=dists,
                                                value=float(j.objective_values[0])))  # type: ignore[index]
    study = optuna.create_study(direction=objective.direction)
    study.add_trials(trials)
    return dict(optuna.importance.get_param_importances(study))


def _sklearn(jobs: Sequence[Job], axes: Sequence[dict[str, Any]], objective: Objective) -> dict[str, float] | None:
    try:
        import numpy as np
        from sklearn.ensemble import RandomForestRegressor
        from sklearn.inspection import permutation_importance
    except ImportError:
        return None
    names = [a["name"] for a in axes]
    cols = [_encode([j.params.get(a["name"]) for j in jobs], a["scale"]) for a in axes]
    x = np.nan_to_num(np.array(cols, dtype=float).T, nan=-1.0)
    y = np.array([float(j.objective_values[0]) for j in jobs])  # type: ignore[index]
    forest = RandomForestRegressor(n_estimators=32, max_depth=8, random_state=0, n_jobs=1).fit(x, y)
    if len(jobs) > 2000:
        idx = np.random.default_rng(0).choice(len(jobs), 2000, replace=False)
        x, y = x[idx], y[idx]
    result = permutation_importance(forest, x, y, n_repeats=5, random_state=0, n_jobs=1)
    raw = np.clip(result.importances_mean, 0.0, None)
    total = float(raw.sum()) or 1.0
    return dict(sorted(((n, float(v) / total) for n, v in zip(names, raw)), key=lambda kv: -kv[1]))


def compute_importance(jobs: Sequence[Job], axes: Sequence[dict[str, Any]], objective: Objective) -> dict[str, Any]:
    """``{"method": ..., "values": {param: share}}`` or ``{"message": why not}``."""
    usable = [j for j in jobs if j.objective_values and j.objective_values[0] is not None
              and math.isfinite(float(j.objective_values[0]))]
    if len(axes) < 1:
        return {"message": "no parameters"}
    if len(usable) < MIN_JOBS:
        return {"message": f"needs {MIN_JOBS} completed jobs ({len(usable)} so far)", "n": len(usable)}
    for method, fn in (("optuna importance (PED-ANOVA)", _optuna),
                       ("random-forest permutation importance (scikit-learn)", _sklearn)):
        try:
            values = fn(usable, axes, objective)
        except Exception as exc:  # a library failing on odd data must not break the page
            return {"message": f"{method} failed: {type(exc).__name__}: {exc}", "n": len(usable)}
        if values is not None:
            return {"method": method, "values": values, "n": len(usable)}
    return {"message": "install optuna or scikit-learn for parameter importance "
                       "(`pip install hyperscout-ui[importance]`)", "n": len(usable)}
