"""``OptimizerOptuna``: one in-memory Optuna study driven through ``study.ask()`` / ``study.tell()``.

The engine owns processes, limits and the store; this class only translates. Each hyperscout trial
is one Optuna trial (its job id is kept in the trial's user attribute ``hyperscout_job_id``).
Intermediate values of the primary objective go to ``trial.report`` and Optuna's pruner decides;
on resume the store's trials are rebuilt into the study so the sampler sees the whole history.

How each outcome of :class:`~hyperscout.TrialResult` becomes an Optuna state is one rule,
:meth:`OptimizerOptuna._outcome`, used by ``tell`` and ``restore`` alike:

=====================  ===========  ==========================================================
hyperscout             Optuna       values / intermediate values
=====================  ===========  ==========================================================
completed              COMPLETE     the final values; intermediate up to the stop point
pruned                 PRUNED       none told: Optuna takes the last intermediate value up to
                                    the prune point; nothing reported after it reaches Optuna
aborted (time limit)   FAIL         none: running out of time says the job is slow, not bad
aborted (interrupted)  FAIL         none; marked ``hyperscout_interrupted`` and never restored
failed                 FAIL         none
=====================  ===========  ==========================================================

FAIL is the one finished state that no Optuna sampler (TPE, CMA-ES, GP, QMC, NSGA-II/III) and
no median/percentile pruner reads, which is what "forget an interrupted result" needs; it is
also what Optuna's own ``optimize`` records for a trial stopped by Ctrl-C.
"""

from __future__ import annotations

import importlib.util
import inspect
import logging
import math
import random
import warnings
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from hyperscout import (
    EXHAUSTED,
    JobStatus,
    SearchSpace,
    SearchStrategy,
    StudySettings,
    Suggestion,
    TrialRecord,
    TrialResult,
    UnsupportedError,
    Verdict,
)
from hyperscout.objective import ObjectiveSet
from hyperscout.params import config_key
from hyperscout.strategy import Signal
from hyperscout_optuna.space import OptunaSpace

if TYPE_CHECKING:
    import optuna
    from optuna.pruners import BasePruner
    from optuna.samplers import BaseSampler
    from optuna.trial import TrialState

__all__ = ["DUPLICATE_ATTR", "INTERRUPTED_ATTR", "JOB_ID_ATTR", "PRUNERS", "REASON_ATTR", "SAMPLERS", "OptimizerOptuna"]

log = logging.getLogger("hyperscout")

#: sampler names -> Optuna class names
SAMPLERS: dict[str, str] = {
    "tpe": "TPESampler",
    "cmaes": "CmaEsSampler",
    "gp": "GPSampler",
    "qmc": "QMCSampler",
    "random": "RandomSampler",
    "nsga2": "NSGAIISampler",
    "nsga3": "NSGAIIISampler",
}
#: pruner names -> Optuna class names (``none``: never prune)
PRUNERS: dict[str, str] = {
    "median": "MedianPruner",
    "percentile": "PercentilePruner",
    "successive_halving": "SuccessiveHalvingPruner",
    "hyperband": "HyperbandPruner",
    "none": "NopPruner",
}
#: modules Optuna imports lazily for a sampler, and the extra that installs them
_SAMPLER_NEEDS: dict[str, tuple[tuple[str, ...], str]] = {
    "cmaes": (("cmaes",), "cmaes"),
    "gp": (("torch", "scipy"), "gp"),
    "qmc": (("scipy",), "qmc"),
}
#: user attribute of each Optuna trial holding the hyperscout job id
JOB_ID_ATTR = "hyperscout_job_id"
#: user attribute (True) of a trial whose job was interrupted: told FAIL so that nothing learns from it
INTERRUPTED_ATTR = "hyperscout_interrupted"
#: user attribute (True) of a trial drawn again because it repeated a configuration already suggested
DUPLICATE_ATTR = "hyperscout_duplicate"
#: user attribute of a trial that did not complete: the engine's reason (time limit, exit code, ...)
REASON_ATTR = "hyperscout_reason"
#: how many times ``ask`` draws again when the sampler repeats a configuration (NSGA-II copies
#: its elite parents; TPE and GP can converge on a point of a finite space) before running it anyway
_REDRAWS = 10
#: Optuna needs a study name; a fixed one keeps Hyperband's bracket assignment (a hash of the
#: study name and trial number) reproducible under a seed.
_STUDY_NAME = "hyperscout"

_LABEL = "strategy 'optuna'"


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _lookup(kind: str, table: Mapping[str, str], name: str) -> str:
    """Resolve a sampler/pruner name; Optuna's class names (``TPESampler``) are accepted too."""
    key = name.strip().lower()
    if key in table:
        return key
    for short, cls_name in table.items():
        if key == cls_name.lower():
            return short
    if kind == "pruner" and key in ("nop", "nopruner", "null"):
        return "none"
    names = ", ".join(table)
    raise UnsupportedError(
        f"{_LABEL}: {kind}={name!r} is not a known {kind}; use one of {names} or an optuna {kind} object"
    )


def _options(option: str, value: Mapping[str, Any] | None) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise UnsupportedError(f"{_LABEL}: {option}={value!r} must be a table/dict of keyword arguments")
    return dict(value)


def _accepted(cls: type) -> tuple[list[str], bool]:
    """The keyword arguments ``cls(...)`` accepts, and whether it takes ``**kwargs``."""
    params = inspect.signature(cls).parameters.values()
    names = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    return names, any(p.kind is p.VAR_KEYWORD for p in params)


def _check_keys(option: str, cls: type, options: Mapping[str, Any]) -> None:
    names, any_kw = _accepted(cls)
    if any_kw:
        return
    for key in options:
        if key not in names:
            raise UnsupportedError(
                f"{_LABEL}: {option} key {key!r} is not an argument of optuna's {cls.__name__}; "
                f"accepted: {', '.join(names) or 'none'}"
            )


def _build(option: str, cls: type, kwargs: Mapping[str, Any]) -> Any:
    try:
        return cls(**kwargs)
    except Exception as exc:
        shown = ", ".join(f"{k}={v!r}" for k, v in kwargs.items()) or "no arguments"
        raise UnsupportedError(
            f"{_LABEL}: optuna's {cls.__name__} refused {shown} ({option}): {_one_line(exc)}; fix the value"
        ) from None


def _either(name: str, value: Any, clearml_name: str, clearml_value: Any) -> Any:
    if value is not None and clearml_value is not None:
        raise UnsupportedError(
            f"{_LABEL}: both {name} and {clearml_name} (ClearML's spelling) are set; keep one of them"
        )
    return value if value is not None else clearml_value


def _resume_seed(seed: int | None, n_records: int) -> int | None:
    """A resumed study must not replay the first run's random draws: derive a new, fixed seed."""
    if seed is None:
        return None
    return random.Random(f"hyperscout-optuna:{seed}:{n_records}").randrange(2**31)


def _finite(values: Sequence[Any] | None, n: int) -> list[float] | None:
    """``n`` finite floats, or None: NaN and infinite objectives make a job ``failed`` (the outcome rule)."""
    if values is None or len(values) != n:
        return None
    out = []
    for v in values:
        if v is None or isinstance(v, bool):
            return None
        try:
            x = float(v)
        except (TypeError, ValueError):
            return None
        if not math.isfinite(x):
            return None
        out.append(x)
    return out


@attrs.frozen
class _Outcome:
    """What Optuna is told about one hyperscout result; ``tell`` and ``restore`` build the same trial from it."""

    state: TrialState
    #: the values told with COMPLETE (None for every other state: Optuna refuses them)
    values: list[float] | None = None
    #: the primary objective's intermediate values up to and including the stop point, first value per step
    intermediate: dict[int, float] = attrs.field(factory=dict)
    reason: str | None = None


class OptimizerOptuna(SearchStrategy):
    """Optuna's samplers and pruners (ClearML's ``OptimizerOptuna``), through ask/tell.

    Options (keyword-only):

    * ``sampler``: ``"tpe"`` (default for one objective), ``"cmaes"``, ``"gp"``, ``"qmc"``,
      ``"random"``, ``"nsga2"`` (default for several objectives), ``"nsga3"``; or an Optuna sampler
      class or object. ``sampler_options``: keyword arguments of that sampler class.
    * ``pruner``: ``"median"`` (default for one objective, as in ClearML), ``"percentile"``,
      ``"successive_halving"``, ``"hyperband"``, ``"none"``; or an Optuna pruner class or object.
      ``pruner_options``: keyword arguments of that pruner class.
    * ``optuna_sampler`` / ``optuna_pruner``: ClearML's spellings of ``sampler`` / ``pruner``.

    The study's seed seeds the sampler; ``min_iteration_per_job`` is the pruning grace period
    (also the pruners' ``n_warmup_steps`` / ``min_resource``), ``max_iteration_per_job`` the
    Hyperband ``max_resource``. With several objectives nothing is pruned (Optuna reports
    intermediate values for single-objective studies only).
    """

    name = "optuna"
    supports_multi_objective = True

    def __init__(
        self,
        space: SearchSpace,
        objectives: ObjectiveSet,
        settings: StudySettings,
        *,
        sampler: str | BaseSampler | type[BaseSampler] | None = None,
        sampler_options: Mapping[str, Any] | None = None,
        pruner: str | BasePruner | type[BasePruner] | None = None,
        pruner_options: Mapping[str, Any] | None = None,
        optuna_sampler: str | BaseSampler | type[BaseSampler] | None = None,
        optuna_pruner: str | BasePruner | type[BasePruner] | None = None,
    ) -> None:
        super().__init__(space, objectives, settings)
        import optuna

        # Optuna logs every trial at INFO; the engine already reports each job. Lower it only when
        # nobody changed Optuna's default (set_verbosity(INFO) afterwards brings the lines back).
        if optuna.logging.get_verbosity() == optuna.logging.INFO:
            optuna.logging.set_verbosity(optuna.logging.WARNING)

        self.mapping = OptunaSpace(space)
        self._multi = objectives.is_multi
        self._n_objectives = len(objectives)
        self._grace = settings.min_iteration_per_job or 0
        self._sampler_options = _options("sampler_options", sampler_options)
        self._pruner_options = _options("pruner_options", pruner_options)

        self.sampler_name, self._sampler_factory, sampler_obj = self._resolve_sampler(
            _either("sampler", sampler, "optuna_sampler", optuna_sampler)
        )
        self.pruner_name, pruner_obj = self._resolve_pruner(_either("pruner", pruner, "optuna_pruner", optuna_pruner))
        self._prunes = not isinstance(pruner_obj, optuna.pruners.NopPruner)

        #: the Optuna study; ``study.trials``, ``study.best_trial(s)`` work as usual
        self.study: optuna.Study = optuna.create_study(
            study_name=_STUDY_NAME,
            directions=[o.direction for o in objectives],
            sampler=sampler_obj,
            pruner=pruner_obj,
        )
        #: random and QMC draws ignore results; per instance, since the sampler is an option
        self.learns_from_results = not isinstance(  # type: ignore[misc]
            sampler_obj, (optuna.samplers.RandomSampler, optuna.samplers.QMCSampler)
        )
        self._trials: dict[str, optuna.Trial] = {}
        self._reported: dict[str, set[int]] = {}
        #: where this strategy stopped a running trial (its prune point, or its cap) and the verdict it gave:
        #: reports past that step are not part of the result and never reach Optuna
        self._stop_at: dict[str, tuple[int, Verdict]] = {}
        #: each running trial's configuration key, to forget it when the job is interrupted
        self._keys: dict[str, str] = {}
        #: configurations suggested or restored (a count each, so that forgetting one keeps its duplicates)
        self._seen: Counter[str] = Counter()
        self._space_size = space.size()
        # Without total_max_jobs a finite space ends once every configuration was tried;
        # otherwise the engine's job count ends the study and duplicates may run.
        self._size = self._space_size if settings.total_max_jobs is None else None

    # -- option resolution --------------------------------------------------------------------
    def _resolve_sampler(self, choice: Any) -> tuple[str, Callable[..., BaseSampler] | None, BaseSampler]:
        """The sampler's name, a factory ``(seed, **extra) -> sampler`` (None for a built object the
        user handed over, which is used as is) and the sampler for the first run."""
        import optuna

        opts = self._sampler_options
        if isinstance(choice, optuna.samplers.BaseSampler):
            if opts:
                raise UnsupportedError(
                    f"{_LABEL}: sampler_options cannot apply to an already-built {type(choice).__name__}; "
                    "pass the sampler's name or class instead, or build it with those arguments"
                )
            return type(choice).__name__, None, choice
        if isinstance(choice, type) and issubclass(choice, optuna.samplers.BaseSampler):
            cls = choice
        elif choice is None or isinstance(choice, str):
            key = _lookup("sampler", SAMPLERS, choice or ("nsga2" if self.objectives.is_multi else "tpe"))
            cls = getattr(optuna.samplers, SAMPLERS[key])
        else:
            raise UnsupportedError(
                f"{_LABEL}: sampler={choice!r} must be a sampler name ({', '.join(SAMPLERS)}) or an optuna sampler"
            )
        label = next((k for k, v in SAMPLERS.items() if v == cls.__name__), cls.__name__)
        needs, extra = _SAMPLER_NEEDS.get(label, ((), ""))
        missing = [m for m in needs if importlib.util.find_spec(m) is None]
        if missing:
            raise UnsupportedError(
                f"{_LABEL}: sampler {label!r} needs {', '.join(missing)}, which is not installed; "
                f"pip install 'hyperscout-optuna[{extra}]' or pick another sampler"
            )
        if label == "cmaes" and self.objectives.is_multi:
            raise UnsupportedError(
                f"{_LABEL}: sampler 'cmaes' optimizes one objective but {len(self.objectives)} were given; "
                "use 'nsga2', 'nsga3', 'tpe' or 'random'"
            )
        _check_keys("sampler_options", cls, opts)
        takes_seed = "seed" in _accepted(cls)[0]

        def factory(seed: int | None, **extra: Any) -> BaseSampler:
            kwargs: dict[str, Any] = {"seed": seed} if takes_seed else {}
            kwargs.update(extra)
            kwargs.update(opts)  # the user's explicit arguments win
            return _build("sampler_options", cls, kwargs)

        return label, factory, factory(self.settings.seed)  # built now: bad values fail before any job

    def _resolve_pruner(self, choice: Any) -> tuple[str, BasePruner]:
        import optuna

        opts = self._pruner_options
        if isinstance(choice, optuna.pruners.BasePruner):
            if opts:
                raise UnsupportedError(
                    f"{_LABEL}: pruner_options cannot apply to an already-built {type(choice).__name__}; "
                    "pass the pruner's name or class instead"
                )
            obj = choice
        else:
            if isinstance(choice, type) and issubclass(choice, optuna.pruners.BasePruner):
                cls = choice
            elif choice is None or isinstance(choice, str):
                key = _lookup("pruner", PRUNERS, choice or ("none" if self.objectives.is_multi else "median"))
                cls = getattr(optuna.pruners, PRUNERS[key])
            else:
                raise UnsupportedError(
                    f"{_LABEL}: pruner={choice!r} must be a pruner name ({', '.join(PRUNERS)}) or an optuna pruner"
                )
            if cls is optuna.pruners.NopPruner:
                if opts:
                    raise UnsupportedError(f"{_LABEL}: pruner 'none' takes no pruner_options; remove them")
                obj = optuna.pruners.NopPruner()
            else:
                _check_keys("pruner_options", cls, opts)
                if cls is optuna.pruners.PercentilePruner and "percentile" not in opts:
                    raise UnsupportedError(
                        f"{_LABEL}: pruner 'percentile' needs pruner_options.percentile "
                        "(0-100: trials outside that best percentile are pruned), e.g. {percentile = 25.0}"
                    )
                obj = _build("pruner_options", cls, {**self._pruner_defaults(cls), **opts})
        label = next((k for k, v in PRUNERS.items() if v == type(obj).__name__), type(obj).__name__)
        if self.objectives.is_multi and not isinstance(obj, optuna.pruners.NopPruner):
            raise UnsupportedError(
                f"{_LABEL}: pruner {label!r} cannot be used with {len(self.objectives)} objectives "
                "(Optuna prunes single-objective studies only); set pruner = \"none\""
            )
        return label, obj

    def _pruner_defaults(self, cls: type) -> dict[str, Any]:
        """The study limits, as the pruner's own arguments (explicit pruner_options win)."""
        import optuna

        lo, hi = self.settings.min_iteration_per_job, self.settings.max_iteration_per_job
        if cls in (optuna.pruners.MedianPruner, optuna.pruners.PercentilePruner):
            return {"n_warmup_steps": lo or 0}
        if cls is optuna.pruners.SuccessiveHalvingPruner:
            return {"min_resource": lo} if lo else {}
        if cls is optuna.pruners.HyperbandPruner:
            out: dict[str, Any] = {"min_resource": max(1, lo or 1)}
            if hi:
                out["max_resource"] = max(hi, out["min_resource"])
            return out
        return {}

    # -- ask / report / tell --------------------------------------------------------------------
    def ask(self, trial_id: str) -> Suggestion | Signal:
        if self._size is not None and len(self._seen) >= self._size:
            return EXHAUSTED
        for attempt in range(_REDRAWS + 1):
            trial = self.study.ask()
            params = self.mapping.suggest(trial)
            key = config_key(params)
            if key not in self._seen or attempt == _REDRAWS or self._tried_everything():
                break
            self._drop_duplicate(trial)
        trial.set_user_attr(JOB_ID_ATTR, trial_id)
        self._trials[trial_id] = trial
        self._keys[trial_id] = key
        self._seen[key] += 1
        return Suggestion(params)

    def _tried_everything(self) -> bool:
        return self._space_size is not None and len(self._seen) >= self._space_size

    def _drop_duplicate(self, trial: optuna.Trial) -> None:
        """A repeated configuration is not run: its trial is told FAIL, which no sampler learns from."""
        from optuna.trial import TrialState

        trial.set_user_attr(DUPLICATE_ATTR, True)
        self.study.tell(trial, state=TrialState.FAIL)

    def report(self, trial_id: str, iteration: int, value: float) -> Verdict:
        trial = self._trials.get(trial_id)
        if trial is None or self._multi or iteration < 0:
            return Verdict.CONTINUE
        stop = self._stop_at.get(trial_id)
        if stop is not None and iteration > stop[0]:
            return stop[1]  # past the stop point (prune or cap): not part of the result, never reaches Optuna
        steps = self._reported.setdefault(trial_id, set())
        if iteration not in steps:  # Optuna keeps the first value of a step (and warns on repeats)
            steps.add(iteration)
            try:
                trial.report(float(value), int(iteration))
            except (TypeError, ValueError) as exc:
                log.warning("hyperscout: optuna refused %r at iteration %s: %s", value, iteration, exc)
                return Verdict.CONTINUE
        if stop is not None:
            return stop[1]  # a late report from before the stop point: recorded, the verdict stands
        cap = self.settings.max_iteration_per_job
        if cap is not None and iteration >= cap:
            self._stop_at.setdefault(trial_id, (iteration, Verdict.CONTINUE))
            return Verdict.CONTINUE  # the engine ends the job as completed at its cap; never prune it there
        if self._prunes and iteration >= self._grace and trial.should_prune():
            self._stop_at[trial_id] = (iteration, Verdict.PRUNE)
            return Verdict.PRUNE
        return Verdict.CONTINUE

    def _outcome(self, result: TrialResult, stop: int | None = None) -> _Outcome | None:
        """The outcome rule (``TrialResult``'s table) in Optuna's terms; None for an interrupted result,
        which says nothing about its configuration. ``stop``: the step where this strategy stopped the job,
        when it knows it better than the result (values reported after it are dropped)."""
        from optuna.trial import TrialState

        if result.interrupted:
            return None
        values = None
        if result.status is JobStatus.COMPLETED:
            values = _finite(result.values, self._n_objectives)
            state = TrialState.COMPLETE if values is not None else TrialState.FAIL  # never reported / NaN
        elif result.status is JobStatus.PRUNED:
            state = TrialState.PRUNED
        else:  # aborted by time_limit_per_job, failed: never a value, even one the result carries
            state = TrialState.FAIL
        intermediate: dict[int, float] = {}
        if not self._multi:  # Optuna records intermediate values for one objective only
            for it, v in result.intermediate:
                if v is None or it < 0 or (stop is not None and it > stop):
                    continue
                try:
                    intermediate.setdefault(int(it), float(v))
                except (TypeError, ValueError):
                    continue
        return _Outcome(state, values, intermediate, result.reason if state is not TrialState.COMPLETE else None)

    def tell(self, trial_id: str, result: TrialResult) -> None:
        from optuna.trial import TrialState

        trial = self._trials.pop(trial_id, None)
        reported = self._reported.pop(trial_id, set())
        stop = self._stop_at.pop(trial_id, None)
        key = self._keys.pop(trial_id, None)
        if trial is None:
            return
        outcome = self._outcome(result, stop[0] if stop is not None else None)
        try:
            if outcome is None:
                self._forget(trial, key, result)
                return
            if outcome.reason:
                trial.set_user_attr(REASON_ATTR, outcome.reason)
            # what the live reports missed (PRUNED takes the last of them as its value, as in Optuna)
            for it, v in outcome.intermediate.items():
                if it not in reported:
                    trial.report(v, it)
            if outcome.state is TrialState.COMPLETE:
                assert outcome.values is not None
                self.study.tell(trial, outcome.values if self._multi else outcome.values[0])
            else:
                self.study.tell(trial, state=outcome.state)
        except Exception as exc:  # a refused tell must not stop the study
            log.warning("hyperscout: optuna refused the outcome of job %s (%s); recorded as failed", trial_id, exc)
            try:
                self.study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
            except Exception:  # pragma: no cover - the trial is already finished
                pass

    def _forget(self, trial: optuna.Trial, key: str | None, result: TrialResult) -> None:
        """An interrupted job says nothing about its configuration: told FAIL without any value (the
        state every sampler skips) and left out of the configurations tried. On resume it is not
        restored: its re-run is told under the new job id."""
        from optuna.trial import TrialState

        if key is not None:
            self._seen[key] -= 1
            if self._seen[key] <= 0:
                del self._seen[key]
        trial.set_user_attr(INTERRUPTED_ATTR, True)
        if result.reason:
            trial.set_user_attr(REASON_ATTR, result.reason)
        self.study.tell(trial, state=TrialState.FAIL)

    # -- resume ----------------------------------------------------------------------------------
    def _frozen(self, record: TrialRecord) -> optuna.trial.FrozenTrial | None:
        """A finished record as the Optuna trial ``tell`` would have left (the same outcome rule), or
        None when it cannot be mapped or must be forgotten (an interrupted job)."""
        import optuna
        from optuna.trial import TrialState

        assert record.result is not None
        if not record.result.status.finished:
            return None
        outcome = self._outcome(record.result)
        if outcome is None:
            return None
        try:
            params, dists = self.mapping.encode(record.params)
        except (ValueError, TypeError) as exc:
            log.warning("hyperscout: job %s is outside the search space, not restored into optuna: %s",
                        record.trial_id, exc)
            return None
        values = outcome.values
        if outcome.state is TrialState.PRUNED and outcome.intermediate:
            last = outcome.intermediate[max(outcome.intermediate)]  # what study.tell(PRUNED) takes
            values = None if math.isnan(last) else [last]
        user_attrs: dict[str, Any] = {JOB_ID_ATTR: record.trial_id}
        if outcome.reason:
            user_attrs[REASON_ATTR] = outcome.reason
        return optuna.trial.create_trial(
            state=outcome.state,
            values=values,
            params=params,
            distributions=dists,
            intermediate_values=outcome.intermediate,
            user_attrs=user_attrs,
        )

    def restore(self, records: Sequence[TrialRecord]) -> None:
        """Rebuild the study from the store with the same rule as ``tell``: finished trials are added
        with their states, values and intermediate values; an interrupted one is left out; a trial
        about to be re-run is enqueued and asked under its job id."""
        if not records:
            return
        if self._sampler_factory is not None:
            if self.sampler_name != "qmc":
                self.study.sampler = self._sampler_factory(_resume_seed(self.settings.seed, len(records)))
        else:
            log.info("hyperscout: a resumed study keeps the given %s as is (its random state is not advanced)",
                     self.sampler_name)
        frozen = []
        for r in records:
            if r.result is not None and r.result.interrupted:
                continue  # says nothing about its configuration; its re-run comes as a pending record
            self._seen[config_key(r.params)] += 1
            if r.result is not None and (t := self._frozen(r)) is not None:
                frozen.append(t)
        self._mark_generations(frozen)
        for t in frozen:
            try:
                self.study.add_trial(t)
            except Exception as exc:  # pragma: no cover - create_trial already validated it
                log.warning("hyperscout: job %s could not be restored into optuna: %s",
                            t.user_attrs.get(JOB_ID_ATTR), exc)
        self._warm_start(frozen, len(records))
        for r in records:
            if r.result is not None:
                continue
            try:
                params, _ = self.mapping.encode(r.params)
            except (ValueError, TypeError) as exc:
                log.warning("hyperscout: job %s is outside the search space; optuna will not learn from it: %s",
                            r.trial_id, exc)
                continue
            self.study.enqueue_trial(params, user_attrs={JOB_ID_ATTR: r.trial_id})
            trial = self.study.ask()
            self.mapping.suggest(trial)  # takes the enqueued values
            self._trials[r.trial_id] = trial
            self._keys[r.trial_id] = config_key(r.params)

    def _mark_generations(self, frozen: list[optuna.trial.FrozenTrial]) -> None:
        """Genetic samplers (NSGA-II/III) keep each trial's generation in a system attribute that the
        store does not hold: restored complete trials fill generations in their original order."""
        from optuna.samplers import BaseGASampler
        from optuna.trial import TrialState

        sampler = self.study.sampler
        if not isinstance(sampler, BaseGASampler):
            return
        try:
            key = type(sampler)._get_generation_key()
            size = int(sampler._population_size)  # type: ignore[attr-defined]
        except Exception:  # pragma: no cover - a future Optuna without these internals
            return
        k = 0
        for t in frozen:
            if t.state is TrialState.COMPLETE:
                t.system_attrs = {**t.system_attrs, key: k // size}
                k += 1

    def _warm_start(self, frozen: list[optuna.trial.FrozenTrial], n_records: int) -> None:
        """Samplers whose state lives outside the trials: CMA-ES restarts from the best restored
        trial (unless ``x0`` was given); QMC skips the points of the sequence already used."""
        import optuna
        from optuna.distributions import FloatDistribution, IntDistribution
        from optuna.trial import TrialState

        sampler = self.study.sampler
        user = self._sampler_options
        if self.sampler_name == "cmaes" and self._sampler_factory is not None and not {"x0", "source_trials"} & set(user):
            complete = [t for t in frozen if t.state is TrialState.COMPLETE]
            if complete:
                best = self.study.best_trial
                x0 = {k: v for k, v in best.params.items()
                      if isinstance(best.distributions[k], (FloatDistribution, IntDistribution))}
                if x0 and "x0" in _accepted(optuna.samplers.CmaEsSampler)[0]:
                    with warnings.catch_warnings():
                        # x0 is deprecated since Optuna 4.9 (removal planned for 6.0, which this
                        # plugin does not accept yet); without it CMA-ES would restart mid-space.
                        warnings.simplefilter("ignore", FutureWarning)
                        self.study.sampler = self._sampler_factory(
                            _resume_seed(self.settings.seed, n_records), x0=x0
                        )
        elif isinstance(sampler, optuna.samplers.QMCSampler) and frozen:
            try:
                space = sampler.infer_relative_search_space(self.study, frozen[0])
                if space:
                    for _ in range(len(frozen) - 1):  # the first trial came from the independent sampler
                        sampler._find_sample_id(self.study, space)
            except Exception as exc:  # pragma: no cover - a future Optuna without these internals
                log.debug("hyperscout: could not advance the QMC sequence: %s", exc)

    # -- helpers ---------------------------------------------------------------------------------
    def optuna_trial(self, job_id: str) -> optuna.trial.FrozenTrial | None:
        """The Optuna trial that stands for a hyperscout job (by the ``hyperscout_job_id`` attribute)."""
        for t in self.study.get_trials(deepcopy=False):
            if t.user_attrs.get(JOB_ID_ATTR) == job_id:
                return t
        return None
