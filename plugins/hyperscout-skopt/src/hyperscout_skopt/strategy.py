"""Bayesian optimization with scikit-optimize's ``Optimizer`` behind hyperscout's ask/tell contract.

How the contract maps onto skopt:

* ``ask`` -> ``Optimizer.ask()``. When other trials are still running, the point comes from a
  throw-away copy of the optimizer that was told every running point with a *constant lie*
  (the minimum, mean or maximum of the real observations: ``constant_liar``), the scheme of
  skopt's own ``ask(n_points, strategy=...)``. Concurrent asks therefore spread out instead of
  returning the same point (skopt's initial points and its model's optimum are both fixed until
  the next ``tell``), and the real model never sees a lie.
* ``tell`` follows hyperscout's outcome rule (:class:`~hyperscout.TrialResult`), decided by the
  *status*, never by whether a value happens to be present:

  - ``completed`` -> ``Optimizer.tell(x, y)`` with ``y`` the final value, negated for ``max``
    objectives (skopt minimizes); a NaN/inf or missing value is not told.
  - ``pruned``, ``aborted`` (time limit) and ``failed`` -> *not told, not repeated*: the surrogate
    never sees them (a made-up penalty, or a partial curve's last value, would bend a GP around a
    stop point instead of the objective), but the configuration stays tried, so it is never
    suggested again.
  - ``interrupted`` (the study stopped) -> ignored entirely: not told and not counted as tried,
    because the engine re-runs it and announces the re-run on resume.

  In every case the point leaves the running (lied-about) set.
* ``restore`` applies the same rule to the stored trials (one batched ``tell`` of the completed
  ones); trials about to be re-run (``result is None``) become running points again and are told
  when their re-run ends.

A configuration is suggested at most once per study (resumes included): a repeat proposed by
skopt (possible in a stepped or discrete space) is replaced by a random unseen configuration, and
a finite space whose every configuration was tried is ``EXHAUSTED``.
"""

from __future__ import annotations

import functools
import logging
import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from hyperscout import (
    EXHAUSTED,
    DiscreteParameterRange,
    JobStatus,
    LogUniformParameterRange,
    SearchSpace,
    SearchStrategy,
    StudySettings,
    Suggestion,
    TrialRecord,
    TrialResult,
    UniformIntegerParameterRange,
    UniformParameterRange,
    UnsupportedError,
)
from hyperscout.objective import ObjectiveSet
from hyperscout.params import Parameter, config_key
from hyperscout.strategy import Signal
from hyperscout_skopt.mapping import Axis, build_axes, to_params, to_point

__all__ = ["OptimizerSkopt"]

log = logging.getLogger(__name__)

LABEL = "strategy 'skopt'"
BASE_ESTIMATORS = ("gp", "rf", "et", "gbrt")
ACQ_FUNCS = ("gp_hedge", "EI", "PI", "LCB")
ACQ_OPTIMIZERS = ("auto", "sampling", "lbfgs")
INITIAL_POINT_GENERATORS = ("random", "sobol", "halton", "hammersly", "lhs", "grid")
CONSTANT_LIARS = ("cl_min", "cl_mean", "cl_max")
ACQ_FUNC_KWARGS = ("xi", "kappa", "eta")
ACQ_OPTIMIZER_KWARGS = ("n_points", "n_restarts_optimizer", "n_jobs")
#: finite spaces up to this size are enumerated to find an unseen configuration
_ENUMERATE_LIMIT = 100_000
_RANDOM_TRIES = 500


def _choice(option: str, value: Any, allowed: Sequence[str], *, fold_case: bool = False) -> str:
    if isinstance(value, str):
        for a in allowed:
            if value == a or (fold_case and value.lower() == a.lower()):
                return a
    shown = ", ".join(repr(a) for a in allowed)
    raise UnsupportedError(f"{LABEL}: {option}={value!r} is not supported; use one of {shown}")


def _number(option: str, key: str, value: Any, *, integer: bool = False, positive: bool = True) -> None:
    ok = not isinstance(value, bool) and isinstance(value, int if integer else (int, float))
    if ok and not integer:
        ok = math.isfinite(value)
    if ok and positive:
        ok = value > 0
    if not ok:
        kind = "a positive integer" if integer else "a positive number" if positive else "a finite number"
        raise UnsupportedError(f"{LABEL}: {option}[{key!r}]={value!r} must be {kind}")


def _kwargs(option: str, value: Any, allowed: Sequence[str]) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise UnsupportedError(f"{LABEL}: {option}={value!r} must be a table/dict with keys among {', '.join(allowed)}")
    out = dict(value)
    for key in out:
        if key not in allowed:
            raise UnsupportedError(f"{LABEL}: {option} has no key {key!r}; accepted keys: {', '.join(allowed)}")
    return out


def validate_options(
    *,
    base_estimator: Any = "gp",
    acq_func: Any = "gp_hedge",
    n_initial_points: Any = 10,
    acq_optimizer: Any = "auto",
    acq_func_kwargs: Any = None,
    acq_optimizer_kwargs: Any = None,
    initial_point_generator: Any = "random",
    constant_liar: Any = "cl_min",
) -> dict[str, Any]:
    """Check every option value; return them normalized (canonical spelling, dicts not None).

    Also catches the combination skopt itself would reject only when the optimizer is built
    (``lbfgs`` with a tree model), with a message that says what to change.
    """
    est = _choice("base_estimator", base_estimator, BASE_ESTIMATORS, fold_case=True)
    if isinstance(acq_func, str) and acq_func.lower() in ("eips", "pips"):
        raise UnsupportedError(
            f"{LABEL}: acq_func={acq_func!r} needs each job's run time as a second objective value, which "
            "hyperscout does not pass to strategies; use 'EI' or 'PI'"
        )
    if isinstance(acq_func, str) and acq_func.upper() in ("MES", "PVRS"):
        raise UnsupportedError(
            f"{LABEL}: acq_func={acq_func!r} is not offered (skopt 0.10.2's MES draws from numpy's global random "
            "state, so a seeded study would not be reproducible, and its PVRS fails numerically); "
            "use 'gp_hedge', 'EI', 'PI' or 'LCB'"
        )
    acq = _choice("acq_func", acq_func, ACQ_FUNCS, fold_case=True)
    if isinstance(n_initial_points, bool) or not isinstance(n_initial_points, int) or n_initial_points < 1:
        raise UnsupportedError(
            f"{LABEL}: n_initial_points={n_initial_points!r} must be an integer >= 1 (random points before the "
            "model takes over)"
        )
    acq_opt = _choice("acq_optimizer", acq_optimizer, ACQ_OPTIMIZERS)
    if acq_opt == "lbfgs" and est != "gp":
        raise UnsupportedError(
            f"{LABEL}: acq_optimizer='lbfgs' needs gradients, which base_estimator={est!r} has not; "
            "use acq_optimizer='sampling' (or 'auto') or base_estimator='gp'"
        )
    fkw = _kwargs("acq_func_kwargs", acq_func_kwargs, ACQ_FUNC_KWARGS)
    for key, v in fkw.items():
        if key == "kappa" and v == "inf":
            continue
        if key == "xi":
            _number("acq_func_kwargs", key, v, positive=False)
        else:
            _number("acq_func_kwargs", key, v)
    okw = _kwargs("acq_optimizer_kwargs", acq_optimizer_kwargs, ACQ_OPTIMIZER_KWARGS)
    for key, v in okw.items():
        _number("acq_optimizer_kwargs", key, v, integer=True)
    gen = _choice("initial_point_generator", initial_point_generator, INITIAL_POINT_GENERATORS, fold_case=True)
    liar = _choice("constant_liar", constant_liar, CONSTANT_LIARS)
    return {
        "base_estimator": est,
        "acq_func": acq,
        "n_initial_points": n_initial_points,
        "acq_optimizer": acq_opt,
        "acq_func_kwargs": fkw,
        "acq_optimizer_kwargs": okw,
        "initial_point_generator": gen,
        "constant_liar": liar,
    }


@functools.cache
def _gbrt_class() -> type:
    """skopt's GBRT quantile model, repaired for the scikit-learn and numpy installed today.

    skopt 0.10.2 declares ``GradientBoostingQuantileRegressor(BaseEstimator, RegressorMixin)``;
    with that base order scikit-learn >= 1.6 reports no estimator type, so skopt's own
    ``is_regressor`` check rejects ``base_estimator="GBRT"``. And its ``predict(return_std=True)``
    calls ``np.in1d``, gone in numpy 2.4. The subclass restores the tag and computes the mean
    (the 0.5 quantile) and the spread (half the 0.16..0.84 quantile range) itself.
    """
    import numpy as np
    from sklearn.utils import RegressorTags
    from skopt.learning import GradientBoostingQuantileRegressor

    class QuantileGBRT(GradientBoostingQuantileRegressor):  # type: ignore[misc,valid-type]
        def __sklearn_tags__(self) -> Any:
            tags = super().__sklearn_tags__()
            tags.estimator_type = "regressor"
            tags.regressor_tags = RegressorTags()
            return tags

        def predict(self, X: Any, return_std: bool = False, return_quantiles: bool = False) -> Any:
            if not return_std or return_quantiles:
                return super().predict(X, return_std=False, return_quantiles=return_quantiles)
            quantiles = list(self.quantiles)
            missing = [q for q in (0.16, 0.5, 0.84) if q not in quantiles]
            if missing:
                raise ValueError(f"return_std needs the quantiles 0.16, 0.5 and 0.84; {missing} are missing")
            low, mean, high = (np.asarray(self.regressors_[quantiles.index(q)].predict(X)) for q in (0.16, 0.5, 0.84))
            return mean, (high - low) / 2.0

    return QuantileGBRT


def _gbrt_estimator(random_state: int | None) -> Any:
    """A GBRT surrogate configured as skopt's own ``base_estimator="GBRT"`` (30 trees, quantile loss)."""
    from sklearn.ensemble import GradientBoostingRegressor

    return _gbrt_class()(
        base_estimator=GradientBoostingRegressor(n_estimators=30, loss="quantile"), random_state=random_state
    )


class OptimizerSkopt(SearchStrategy):
    """Sequential model-based optimization (scikit-optimize), one objective.

    Options (keyword-only; every value is checked before any job starts):

    * ``base_estimator``: surrogate model, ``"gp"`` (default), ``"rf"``, ``"et"`` or ``"gbrt"``.
    * ``acq_func``: ``"gp_hedge"`` (default), ``"EI"``, ``"PI"`` or ``"LCB"``.
    * ``n_initial_points``: random (or ``initial_point_generator``) points before the model is used.
    * ``acq_optimizer``: ``"auto"``, ``"sampling"`` or ``"lbfgs"`` (``"gp"`` only).
    * ``acq_func_kwargs``: ``xi`` (EI/PI), ``kappa`` (LCB), ``eta`` (gp_hedge).
    * ``acq_optimizer_kwargs``: ``n_points``, ``n_restarts_optimizer``, ``n_jobs``.
    * ``initial_point_generator``: ``"random"``, ``"sobol"``, ``"halton"``, ``"hammersly"``,
      ``"lhs"`` or ``"grid"``.
    * ``constant_liar``: the lie told for running trials, ``"cl_min"`` (default), ``"cl_mean"``,
      ``"cl_max"``.
    """

    name: ClassVar[str] = "skopt"
    supported_parameters: ClassVar[tuple[type[Parameter], ...]] = (
        UniformParameterRange,
        LogUniformParameterRange,
        UniformIntegerParameterRange,
        DiscreteParameterRange,
    )
    supports_multi_objective: ClassVar[bool] = False

    def __init__(
        self,
        space: SearchSpace,
        objectives: ObjectiveSet,
        settings: StudySettings,
        *,
        base_estimator: str = "gp",
        acq_func: str = "gp_hedge",
        n_initial_points: int = 10,
        acq_optimizer: str = "auto",
        acq_func_kwargs: Mapping[str, Any] | None = None,
        acq_optimizer_kwargs: Mapping[str, Any] | None = None,
        initial_point_generator: str = "random",
        constant_liar: str = "cl_min",
    ) -> None:
        super().__init__(space, objectives, settings)
        if objectives.is_multi:
            raise UnsupportedError(
                f"{LABEL} optimizes one objective but {len(objectives)} were given; "
                "use a multi-objective strategy such as 'optuna' or keep one objective"
            )
        self.options = validate_options(
            base_estimator=base_estimator,
            acq_func=acq_func,
            n_initial_points=n_initial_points,
            acq_optimizer=acq_optimizer,
            acq_func_kwargs=acq_func_kwargs,
            acq_optimizer_kwargs=acq_optimizer_kwargs,
            initial_point_generator=initial_point_generator,
            constant_liar=constant_liar,
        )
        self.axes: list[Axis] = build_axes(space)
        self._maximize = objectives.primary.maximize
        #: trial id -> skopt point of every trial suggested (or restored) and not told yet
        self._pending: dict[str, list[Any]] = {}
        #: config keys of every configuration suggested or restored: never suggested again
        self._seen: set[str] = set()
        self._size = space.size()
        self.optimizer: Any = self._new_optimizer(settings.seed) if self._searched_axes() else None
        self._threadpools: Any = None

    @property
    def pending_trials(self) -> tuple[str, ...]:
        """Trials suggested (or announced by ``restore``) and not told yet: the constant liar's points."""
        return tuple(self._pending)

    # -- options ------------------------------------------------------------------------------
    @classmethod
    def check(
        cls, space: SearchSpace, objectives: ObjectiveSet, settings: StudySettings, options: Mapping[str, Any]
    ) -> None:
        """The base checks, then every option value and the mapping of every range."""
        super().check(space, objectives, settings, options)
        validate_options(**options)
        build_axes(space)

    # -- skopt plumbing -----------------------------------------------------------------------
    def _searched_axes(self) -> list[Axis]:
        return [a for a in self.axes if not a.is_constant]

    def _new_optimizer(
        self, random_state: Any, dimensions: Sequence[Any] | None = None, estimator: Any = None, *, copy: bool = False
    ) -> Any:
        import numpy as np
        from skopt import Optimizer

        o = self.options
        if estimator is None:
            if o["base_estimator"] == "gbrt":
                seed_rng = np.random.RandomState(random_state if isinstance(random_state, int) else None)
                estimator = _gbrt_estimator(int(seed_rng.randint(0, np.iinfo(np.int32).max)))
            else:
                estimator = o["base_estimator"].upper()
        return Optimizer(
            dimensions if dimensions is not None else [a.dimension() for a in self._searched_axes()],
            base_estimator=estimator,
            n_initial_points=o["n_initial_points"],
            # a copy takes the real optimizer's initial design instead of generating its own
            initial_point_generator="random" if copy else o["initial_point_generator"],
            acq_func=o["acq_func"],
            acq_optimizer=o["acq_optimizer"],
            acq_func_kwargs=dict(o["acq_func_kwargs"]) or None,
            acq_optimizer_kwargs=dict(o["acq_optimizer_kwargs"]) or None,
            random_state=random_state,
        )

    def _one_blas_thread(self) -> Any:
        """A context in which BLAS/LAPACK run on one thread.

        The surrogate's matrices are tiny (one row per trial): threads only add overhead there,
        and on a busy machine (the trials themselves run next to the optimizer) they made model
        fits twice as slow in our measurements. Scoped to the skopt calls; jobs run in their own
        processes and are not affected.
        """
        if self._threadpools is None:
            from threadpoolctl import ThreadpoolController

            self._threadpools = ThreadpoolController()
        return self._threadpools.limit(limits=1, user_api="blas")

    def _lie(self) -> float:
        ys = [float(y) for y in self.optimizer.yi]
        if not ys:
            return 0.0  # as skopt: with no observation yet the value is never used by a model
        liar = self.options["constant_liar"]
        if liar == "cl_min":
            return min(ys)
        if liar == "cl_max":
            return max(ys)
        return sum(ys) / len(ys)

    def _liar_optimizer(self) -> Any:
        """A copy of the optimizer that also holds every running point, told the constant lie.

        Built like skopt's ``Optimizer.copy`` (same dimensions, estimator and initial points, a
        random state drawn from the real optimizer's, so seeded runs stay reproducible), but told
        the real observations and the lies in one batch: one model fit instead of one per point.
        """
        import numpy as np

        main = self.optimizer
        seed = int(main.rng.randint(0, np.iinfo(np.int32).max))
        copy = self._new_optimizer(seed, dimensions=main.space.dimensions, estimator=main.base_estimator_, copy=True)
        # Non-random initial designs (sobol, lhs, ...): continue the real optimizer's sequence.
        copy._initial_samples = main._initial_samples
        if hasattr(main, "gains_"):
            copy.gains_ = np.copy(main.gains_)
        lie = self._lie()
        xs = [list(x) for x in main.Xi] + [list(x) for x in self._pending.values()]
        ys = [float(y) for y in main.yi] + [lie] * len(self._pending)
        copy.tell(xs, ys)
        return copy

    def _propose(self) -> dict[str, Any] | None:
        """skopt's next configuration; ``None`` if the liar's model fit failed numerically."""
        import numpy as np

        with warnings.catch_warnings(), self._one_blas_thread():
            # skopt warns when its model proposes an evaluated point and it draws a random one
            # instead; that is expected and handled (we also de-duplicate in ask()).
            warnings.filterwarnings("ignore", message="The objective has been evaluated at point")
            try:
                source = self._liar_optimizer() if self._pending else self.optimizer
            except (np.linalg.LinAlgError, ValueError) as exc:
                # A degenerate fit must not end a long study: this one trial is drawn at random.
                log.warning("hyperscout-skopt: the surrogate fit with running trials failed (%s); "
                            "suggesting an untried random configuration", exc)
                return None
            return to_params(self.axes, source.ask())

    def _unseen(self) -> dict[str, Any] | None:
        """A configuration never suggested in this study, drawn with the strategy's seeded RNG."""
        if self._size is not None and self._size <= _ENUMERATE_LIMIT:
            fresh = [c for c in self.space.grid() if config_key(c) not in self._seen]
            return self.rng.choice(fresh) if fresh else None
        for _ in range(_RANDOM_TRIES):
            point = to_point(self.axes, self.space.sample(self.rng))
            if point is None:  # pragma: no cover - a range's own samples always map
                continue
            candidate = to_params(self.axes, point)
            if config_key(candidate) not in self._seen:
                return candidate
        return None

    def _objective(self, result: TrialResult) -> float | None:
        """skopt's ``y`` for a result, or ``None`` when the rule says the model must not see it.

        Only a ``completed`` trial has a value that describes its configuration. The status decides,
        not the presence of ``values``: a pruned, time-limited or crashed job may still carry a
        value (its last report, from an older engine or a third-party backend) and it is not told.
        """
        if result.interrupted or result.status is not JobStatus.COMPLETED:
            return None
        value = result.value
        if value is None:
            return None
        try:
            y = float(value)
        except (TypeError, ValueError):
            return None
        if not math.isfinite(y):
            return None
        return -y if self._maximize else y

    def _key(self, point: Sequence[Any]) -> str:
        """The config key of a skopt point, as ``ask`` records it in ``_seen``."""
        return config_key(to_params(self.axes, point))

    # -- the contract -------------------------------------------------------------------------
    def ask(self, trial_id: str) -> Suggestion | Signal:
        if self._size is not None and len(self._seen) >= self._size:
            return EXHAUSTED
        if self.optimizer is None:  # every range has a single value
            params: dict[str, Any] | None = to_params(self.axes, [])
        else:
            params = self._propose()
        if params is None or config_key(params) in self._seen:
            params = self._unseen()
            if params is None:
                return EXHAUSTED
        point = to_point(self.axes, params)
        if point is None:  # pragma: no cover - to_params only builds values of the ranges
            raise RuntimeError(f"skopt proposed {params!r}, which is outside the search space")
        self._seen.add(config_key(params))
        self._pending[trial_id] = point
        return Suggestion(params)

    def tell(self, trial_id: str, result: TrialResult) -> None:
        point = self._pending.pop(trial_id, None)
        if point is None:
            return
        if result.interrupted:
            # says nothing about the configuration: it is re-run (and told) on resume, so it is
            # not tried yet either
            self._seen.discard(self._key(point))
            return
        y = self._objective(result)
        if y is None:
            # pruned, time-limited, failed or valueless: not told, and (still in _seen) not repeated
            log.debug("hyperscout-skopt: trial %s (%s) is not told to skopt: %s", trial_id, result.status.value,
                      result.reason or "no usable value")
            return
        if self.optimizer is not None:  # None: every range is a constant, there is nothing to learn
            with self._one_blas_thread():
                self.optimizer.tell(point, y)

    def restore(self, records: Sequence[TrialRecord]) -> None:
        """Replay the store with the same rule as :meth:`tell`, in one batched ``tell``."""
        xs: list[list[Any]] = []
        ys: list[float] = []
        for r in records:
            if r.result is not None and r.result.interrupted:
                continue  # forgotten: the engine announces its re-run as a record without a result
            point = to_point(self.axes, r.params)
            if point is None:
                log.warning("hyperscout-skopt: trial %s has parameters outside the search space; not replayed", r.trial_id)
                continue
            # the key of the values as ask() would hand them out, so the de-duplication matches
            self._seen.add(self._key(point))
            if r.result is None:
                self._pending[r.trial_id] = point
                continue
            y = self._objective(r.result)
            if y is not None:
                xs.append(point)
                ys.append(y)
        if xs and self.optimizer is not None:
            with self._one_blas_thread():
                self.optimizer.tell(xs, ys)
