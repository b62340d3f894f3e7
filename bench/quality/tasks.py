"""The benchmark tasks: three standard test functions, one scikit-learn model, one multi-fidelity model.

Each task declares its search space once, as a list of :class:`Dim`, and derives from it the
hyperscout space (for the plugins) and the native spaces of Optuna, scikit-optimize and
ConfigSpace (for the libraries driven directly), so that both sides search exactly the same
ranges. Every task is minimized.

* ``branin``: Branin-Hoo on x1 in [-5, 10], x2 in [0, 15] (global minimum 0.397887).
* ``hartmann6``: Hartmann 6-D on [0, 1]^6 (global minimum -3.32237).
* ``rosenbrock4``: Rosenbrock 4-D on [-5, 10]^4, its usual domain (global minimum 0 at (1, 1, 1, 1)).
* ``hgb_cancer``: scikit-learn's HistGradientBoostingClassifier (50 boosting iterations) on the
  bundled breast-cancer data, 3-fold stratified cross-validated log-loss, 5 hyperparameters.
* ``mlp_digits`` (multi-fidelity): an MLPClassifier on the bundled digits data trained one epoch
  (one ``partial_fit`` pass) at a time; the value after each epoch is the validation error on a
  held-out third of the data (599 digits), or, as a diagnostic, the validation cross-entropy.

All evaluations are deterministic functions of the configuration (models use ``random_state=0``,
the folds and the split are fixed), so the seeds of a run only change the search, never the
landscape. That is also what makes the per-configuration caches below honest: a cache hit
returns exactly what a fresh evaluation would.
"""

from __future__ import annotations

import math
import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hyperscout import (
    LogUniformParameterRange,
    Objective,
    ObjectiveSet,
    Parameter,
    SearchSpace,
    UniformIntegerParameterRange,
    UniformParameterRange,
)

__all__ = ["MF_TASK", "SF_TASKS", "Dim", "MultiFidelityTask", "Task", "OBJECTIVES"]

#: every task is one objective, minimized
OBJECTIVES = ObjectiveSet((Objective("bench", "value", "min"),))


@dataclass(frozen=True)
class Dim:
    """One searched parameter: ``kind`` is ``float``, ``log`` (log10 scale) or ``int``; bounds are values."""

    name: str
    kind: str
    low: float
    high: float

    def hyperscout(self) -> Parameter:
        if self.kind == "float":
            return UniformParameterRange(self.name, self.low, self.high)
        if self.kind == "log":
            return LogUniformParameterRange(self.name, math.log10(self.low), math.log10(self.high))
        return UniformIntegerParameterRange(self.name, int(self.low), int(self.high))

    # The bounds the plugins derive from the hyperscout range (10 ** exponent), so that a library
    # driven directly gets bit-identical bounds and a seeded run can repeat the plugin's choices.
    @property
    def value_bounds(self) -> tuple[float, float]:
        if self.kind == "log":
            p = self.hyperscout()
            assert isinstance(p, LogUniformParameterRange)
            return p.base**p.min_value, p.base**p.max_value
        return self.low, self.high


@dataclass
class Task:
    """A single-fidelity task: ``evaluate(params) -> value`` (lower is better)."""

    name: str
    label: str
    dims: tuple[Dim, ...]
    evaluate: Callable[[Mapping[str, Any]], float]
    optimum: float | None = None

    @property
    def space(self) -> SearchSpace:
        return SearchSpace(tuple(d.hyperscout() for d in self.dims))


# -- standard test functions ------------------------------------------------------------------------
def branin(p: Mapping[str, Any]) -> float:
    x1, x2 = float(p["x1"]), float(p["x2"])
    b = 5.1 / (4.0 * math.pi**2)
    c = 5.0 / math.pi
    t = 1.0 / (8.0 * math.pi)
    return (x2 - b * x1 * x1 + c * x1 - 6.0) ** 2 + 10.0 * (1.0 - t) * math.cos(x1) + 10.0


_H6_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
_H6_A = np.array(
    [
        [10.0, 3.0, 17.0, 3.5, 1.7, 8.0],
        [0.05, 10.0, 17.0, 0.1, 8.0, 14.0],
        [3.0, 3.5, 1.7, 10.0, 17.0, 8.0],
        [17.0, 8.0, 0.05, 10.0, 0.1, 14.0],
    ]
)
_H6_P = 1e-4 * np.array(
    [
        [1312, 1696, 5569, 124, 8283, 5886],
        [2329, 4135, 8307, 3736, 1004, 9991],
        [2348, 1451, 3522, 2883, 3047, 6650],
        [4047, 8828, 8732, 5743, 1091, 381],
    ]
)


def hartmann6(p: Mapping[str, Any]) -> float:
    x = np.array([float(p[f"x{i}"]) for i in range(1, 7)])
    inner = np.sum(_H6_A * (x[None, :] - _H6_P) ** 2, axis=1)
    return float(-np.sum(_H6_ALPHA * np.exp(-inner)))


def rosenbrock4(p: Mapping[str, Any]) -> float:
    x = [float(p[f"x{i}"]) for i in range(1, 5)]
    return float(sum(100.0 * (x[i + 1] - x[i] ** 2) ** 2 + (x[i] - 1.0) ** 2 for i in range(3)))


# -- scikit-learn: gradient boosting on breast cancer --------------------------------------------------
class _Cached:
    """A bounded memo of a deterministic evaluation (the plugin and the library driven directly
    with the same seed usually ask for the very same configurations)."""

    def __init__(self, fn: Callable[[Mapping[str, Any]], float], size: int = 4096) -> None:
        self.fn = fn
        self.size = size
        self.memo: OrderedDict[tuple[Any, ...], float] = OrderedDict()
        self.misses = 0

    def __call__(self, params: Mapping[str, Any]) -> float:
        key = tuple(sorted((k, float(v)) for k, v in params.items()))
        if key in self.memo:
            self.memo.move_to_end(key)
            return self.memo[key]
        self.misses += 1
        value = self.fn(params)
        self.memo[key] = value
        if len(self.memo) > self.size:
            self.memo.popitem(last=False)
        return value


_CANCER: dict[str, Any] = {}


def _cancer() -> dict[str, Any]:
    if not _CANCER:
        from sklearn.datasets import load_breast_cancer
        from sklearn.model_selection import StratifiedKFold

        X, y = load_breast_cancer(return_X_y=True)
        _CANCER.update(X=X, y=y, folds=list(StratifiedKFold(3, shuffle=True, random_state=0).split(X, y)))
    return _CANCER


def hgb_cancer(p: Mapping[str, Any]) -> float:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import log_loss

    d = _cancer()
    losses = []
    for train, valid in d["folds"]:
        model = HistGradientBoostingClassifier(
            max_iter=50,
            early_stopping=False,
            random_state=0,
            learning_rate=float(p["learning_rate"]),
            max_leaf_nodes=int(p["max_leaf_nodes"]),
            min_samples_leaf=int(p["min_samples_leaf"]),
            l2_regularization=float(p["l2_regularization"]),
            max_features=float(p["max_features"]),
        )
        model.fit(d["X"][train], d["y"][train])
        losses.append(log_loss(d["y"][valid], model.predict_proba(d["X"][valid]), labels=[0, 1]))
    return float(np.mean(losses))


SF_TASKS: dict[str, Task] = {
    "branin": Task("branin", "Branin (2-D)", (Dim("x1", "float", -5.0, 10.0), Dim("x2", "float", 0.0, 15.0)),
                   branin, 0.397887),
    "hartmann6": Task("hartmann6", "Hartmann-6 (6-D)", tuple(Dim(f"x{i}", "float", 0.0, 1.0) for i in range(1, 7)),
                      hartmann6, -3.32237),
    "rosenbrock4": Task("rosenbrock4", "Rosenbrock (4-D)", tuple(Dim(f"x{i}", "float", -5.0, 10.0) for i in range(1, 5)),
                        rosenbrock4, 0.0),
    "hgb_cancer": Task(
        "hgb_cancer",
        "HistGradientBoosting, breast cancer, 3-fold CV log-loss (5-D)",
        (
            Dim("learning_rate", "log", 1e-3, 1.0),
            Dim("max_leaf_nodes", "int", 2, 64),
            Dim("min_samples_leaf", "int", 1, 60),
            Dim("l2_regularization", "log", 1e-6, 10.0),
            Dim("max_features", "float", 0.1, 1.0),
        ),
        _Cached(hgb_cancer),
    ),
}


# -- multi-fidelity: an MLP trained epoch by epoch on digits -------------------------------------------
_DIGITS: dict[str, Any] = {}


def _digits() -> dict[str, Any]:
    if not _DIGITS:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        X, y = load_digits(return_X_y=True)
        Xtr, Xva, ytr, yva = train_test_split(X / 16.0, y, test_size=1 / 3, random_state=0, stratify=y)
        _DIGITS.update(Xtr=Xtr, Xva=Xva, ytr=ytr, yva=yva, classes=np.unique(y))
    return _DIGITS


@dataclass
class _Curve:
    model: Any
    errors: list[float] = field(default_factory=list)
    loglosses: list[float] = field(default_factory=list)


class MultiFidelityTask:
    """Validation error of an MLP after each training epoch.

    ``value(params, epoch)`` trains (or continues training) the configuration's model up to that
    epoch. Training is deterministic per configuration, so the model of a configuration is kept
    and continued when a later call asks for more epochs: a configuration that BOHB or Hyperband
    re-runs from scratch at a larger budget gets the same numbers a real re-run would produce.
    The benchmark still *charges* every epoch of every run to the strategy (the cache only saves
    wall time), which is what "equal total number of training iterations" compares.
    """

    name = "mlp_digits"
    label = "MLP on digits, validation error per epoch (4-D)"
    dims = (
        Dim("learning_rate_init", "log", 1e-4, 0.3),
        Dim("alpha", "log", 1e-6, 1e-1),
        Dim("hidden", "int", 8, 128),
        Dim("batch_size", "int", 16, 256),
    )
    optimum = None
    #: what ``value`` returns: ``error`` (validation error, the default) or ``logloss`` (validation
    #: cross-entropy, a continuous diagnostic: the error moves in steps of 1/599)
    METRICS = ("error", "logloss")

    def __init__(self, cache_size: int = 2048, metric: str = "error") -> None:
        self.cache: OrderedDict[tuple[Any, ...], _Curve] = OrderedDict()
        self.cache_size = cache_size
        self.epochs_trained = 0
        self.metric = metric

    @property
    def space(self) -> SearchSpace:
        return SearchSpace(tuple(d.hyperscout() for d in self.dims))

    def reset(self) -> None:
        self.cache.clear()

    def value(self, params: Mapping[str, Any], epoch: int) -> float:
        from sklearn.neural_network import MLPClassifier

        key = tuple(sorted((k, float(v)) for k, v in params.items()))
        curve = self.cache.get(key)
        if curve is None:
            model = MLPClassifier(
                hidden_layer_sizes=(int(params["hidden"]),),
                learning_rate_init=float(params["learning_rate_init"]),
                alpha=float(params["alpha"]),
                batch_size=int(params["batch_size"]),
                random_state=0,
            )
            curve = self.cache[key] = _Curve(model)
            if len(self.cache) > self.cache_size:
                self.cache.popitem(last=False)
        self.cache.move_to_end(key)
        d = _digits()
        while len(curve.errors) < epoch:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")  # convergence notes, overflow of diverging learning rates
                curve.model.partial_fit(d["Xtr"], d["ytr"], classes=d["classes"])
                proba = curve.model.predict_proba(d["Xva"])
            err = float(np.mean(d["classes"][np.argmax(proba, axis=1)] != d["yva"]))
            curve.errors.append(err if math.isfinite(err) else 1.0)
            curve.loglosses.append(_logloss(d["yva"], proba))
            self.epochs_trained += 1
        return (curve.errors if self.metric == "error" else curve.loglosses)[epoch - 1]


def _logloss(y: Any, proba: Any) -> float:
    """Mean cross-entropy with probabilities clipped at 1e-15; 10 for a diverged model (NaN output)."""
    if not np.all(np.isfinite(proba)):
        return 10.0
    p = np.clip(proba[np.arange(len(y)), y], 1e-15, 1.0)
    return float(-np.mean(np.log(p)))


MF_TASK = MultiFidelityTask()


def describe_dims(dims: Sequence[Dim]) -> str:
    """``name in [lo, hi] (log)`` for the report."""
    out = []
    for d in dims:
        lo, hi = (int(d.low), int(d.high)) if d.kind == "int" else (d.low, d.high)
        out.append(f"{d.name}∈[{lo:g}, {hi:g}]" + (" log" if d.kind == "log" else " int" if d.kind == "int" else ""))
    return ", ".join(out)
