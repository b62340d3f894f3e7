"""The strategies: BOHB, Hyperband and successive halving as ask/tell state machines.

Each ``ask`` returns the next job of the current rung; ``WAIT`` while the rung waits for its
running jobs (a rung is compared as a whole before anyone is promoted); a new bracket opens as
soon as the previous one is done, forever, so the engine's ``total_max_jobs`` is what ends the
study. hpbandster and ConfigSpace are imported on first construction, not when the plugin is
discovered, so listing strategies stays fast.

Results follow :class:`~hyperscout.strategy.TrialResult`'s outcome rule:

==========================  ===================================================================
outcome                     what BOHB / Hyperband / SH do with it
==========================  ===================================================================
completed                   loss = ``values[0]`` (negated for ``max``), never an intermediate
failed                      hpbandster's crashed run (``loss=None``, taken as ``inf``): never
                            promoted, the worst observation for the model
aborted (time limit)        the same as failed
pruned                      the same as failed (these strategies never answer ``PRUNE``; a
                            rung budget stops a job as *completed*)
aborted, ``interrupted``    nothing: the job is handed back to its rung unrun, so neither the
                            model nor the promotions see it and the rung's next job is that
                            same configuration; on resume it is re-run (see ``restore``)
==========================  ===================================================================
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from hyperscout import SearchSpace, SearchStrategy, StudySettings, Suggestion, TrialRecord, TrialResult
from hyperscout.errors import UnsupportedError
from hyperscout.job import JobStatus
from hyperscout.objective import ObjectiveSet
from hyperscout.params import (
    DiscreteParameterRange,
    LogUniformParameterRange,
    UniformIntegerParameterRange,
    UniformParameterRange,
)
from hyperscout.strategy import WAIT, Signal
from hyperscout_bohb import _plan

__all__ = ["Hyperband", "OptimizerBOHB", "SuccessiveHalvingSearch", "loss_of"]

log = logging.getLogger("hyperscout.bohb")


def loss_of(result: TrialResult | None, maximize: bool) -> float:
    """hpbandster's loss (lower is better) of a finished trial.

    Only a *completed* job with a finite value counts, and only through ``values`` (the engine
    cuts it at the stop point; the history may run on past it); failed, aborted for time and
    pruned jobs get ``inf``, hpbandster's "crashed" marker: never promoted, and the worst
    observation for the model. An ``interrupted`` result has no loss at all: callers drop it
    before asking (:meth:`_BracketSearch.tell`, :meth:`_BracketSearch.restore`).
    """
    if result is None or result.status is not JobStatus.COMPLETED or result.value is None:
        return math.inf
    v = float(result.value)
    if not math.isfinite(v):
        return math.inf
    return -v if maximize else v


def _need(ok: bool, label: str, option: str, value: Any, rule: str) -> None:
    if not ok:
        raise UnsupportedError(f"strategy {label!r}: option {option}={value!r} {rule}")


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _searched(space: SearchSpace) -> int:
    """How many parameters are actually searched (single-valued ranges are fixed values)."""
    n = 0
    for p in space.parameters:
        if isinstance(p, DiscreteParameterRange):
            n += len(p.values) > 1
        elif isinstance(p, UniformIntegerParameterRange):
            n += len(range(p.min_value, p.max_value, p.step_size)) + p.include_max_value > 1
        elif isinstance(p, (UniformParameterRange, LogUniformParameterRange)) and p.step_size is not None:
            n += len(p.points()) > 1
        else:
            n += 1
    return n


class _BracketSearch(SearchStrategy):
    """Shared machinery: Hyperband brackets of hpbandster successive-halving iterations."""

    supported_parameters: ClassVar[tuple[type, ...]] = (
        UniformParameterRange,
        LogUniformParameterRange,
        UniformIntegerParameterRange,
        DiscreteParameterRange,
    )
    supports_multi_objective = False
    requires = ("min_iteration_per_job", "max_iteration_per_job")
    #: sample with BOHB's model (True) or at random (False)
    uses_model: ClassVar[bool] = False
    #: repeat the deepest bracket only (plain successive halving)
    deepest_only: ClassVar[bool] = False

    def __init__(
        self,
        space: SearchSpace,
        objectives: ObjectiveSet,
        settings: StudySettings,
        *,
        eta: float = 3,
        budget_parameter: str | None = None,
        parallel_brackets: bool = False,
    ) -> None:
        super().__init__(space, objectives, settings)
        self._setup(eta=eta, budget_parameter=budget_parameter, parallel_brackets=parallel_brackets)

    def _setup(self, *, eta: float, budget_parameter: str | None, parallel_brackets: bool,
               **generator_options: Any) -> None:
        """Validate the options and build the ConfigSpace space, the generator and the schedule."""
        settings = self.settings
        self._validate(self.space, settings, {"eta": eta, "budget_parameter": budget_parameter,
                                              "parallel_brackets": parallel_brackets, **generator_options})
        from hyperscout_bohb._driver import Driver  # heavy: hpbandster, statsmodels, ConfigSpace
        from hyperscout_bohb._space import SpaceMapping

        self.eta = eta
        self.budget_parameter = budget_parameter
        self.parallel_brackets = parallel_brackets
        self.min_budget = int(settings.min_iteration_per_job)  # type: ignore[arg-type]  # checked above
        self.max_budget = int(settings.max_iteration_per_job)  # type: ignore[arg-type]
        self.budgets = _plan.rung_budgets(eta, self.min_budget, self.max_budget)
        # Both seeds come from the strategy's own seeded RNG: same study seed, same sequence.
        self.mapping = SpaceMapping(self.space.parameters, seed=self.rng.randrange(2**31))
        self.driver = Driver(
            self.mapping,
            model=self.uses_model,
            numpy_seed=self.rng.randrange(2**31),
            generator_options=generator_options,
        )
        self._maximize = self.objectives.primary.maximize
        #: position of the next bracket in the endless Hyperband schedule
        self._schedule_pos = 0
        self._slots: dict[str, Any] = {}
        #: trials announced by restore() that fit no rung (foreign records): ignored on tell
        self._orphans: set[str] = set()
        #: the shapes of the brackets opened so far, in order (resumed ones included)
        self.opened: list[_plan.Bracket] = []

    # -- options -------------------------------------------------------------------------------
    @classmethod
    def check(cls, space: SearchSpace, objectives: ObjectiveSet, settings: StudySettings,
              options: Mapping[str, Any]) -> None:
        super().check(space, objectives, settings, options)
        cls._validate(space, settings, dict(options))

    @classmethod
    def _validate(cls, space: SearchSpace, settings: StudySettings, options: dict[str, Any]) -> None:
        """One-line errors for option values and limits hpbandster cannot work with."""
        label = cls.name
        for field in cls.requires:
            if getattr(settings, field) is None:
                raise UnsupportedError(f"strategy {label!r} needs {field} to be set; add it to the study limits")
        lo, hi = settings.min_iteration_per_job, settings.max_iteration_per_job
        if lo is not None and lo < 1:
            raise UnsupportedError(
                f"strategy {label!r} needs min_iteration_per_job >= 1 (got {lo}): it is the smallest rung budget"
            )
        if lo is not None and hi is not None and hi < lo:
            raise UnsupportedError(
                f"strategy {label!r}: max_iteration_per_job={hi} is below min_iteration_per_job={lo}; swap them"
            )
        eta = options.get("eta", 3)
        _need(_is_number(eta) and eta >= 2, label, "eta", eta, "must be a number >= 2 (3 is usual)")
        bp = options.get("budget_parameter")
        if bp is not None:
            _need(isinstance(bp, str) and bool(bp.strip()), label, "budget_parameter", bp,
                  "must be a parameter name such as 'epochs', or unset to cap iterations")
            _need(bp not in space.names, label, "budget_parameter", bp,
                  "is also a searched parameter; remove it from the parameters, the budget sets it")
        pb = options.get("parallel_brackets", False)
        _need(isinstance(pb, bool), label, "parallel_brackets", pb, "must be true or false")
        if "min_points_in_model" in options and options["min_points_in_model"] is not None:
            v = options["min_points_in_model"]
            dims = _searched(space) + 1
            _need(isinstance(v, int) and not isinstance(v, bool) and v >= dims, label, "min_points_in_model", v,
                  f"must be an integer >= {dims} (number of parameters + 1), or unset for that minimum")
        if "top_n_percent" in options:
            v = options["top_n_percent"]
            _need(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 99, label, "top_n_percent", v,
                  "must be an integer between 1 and 99 (default 15)")
        if "num_samples" in options:
            v = options["num_samples"]
            _need(isinstance(v, int) and not isinstance(v, bool) and v >= 1, label, "num_samples", v,
                  "must be an integer >= 1 (default 64)")
        if "random_fraction" in options:
            v = options["random_fraction"]
            _need(_is_number(v) and 0 <= v <= 1, label, "random_fraction", v, "must be between 0 and 1 (default 1/3)")
        if "bandwidth_factor" in options:
            v = options["bandwidth_factor"]
            _need(_is_number(v) and v > 0, label, "bandwidth_factor", v, "must be a number > 0 (default 3)")
        if "min_bandwidth" in options:
            v = options["min_bandwidth"]
            _need(_is_number(v) and v > 0, label, "min_bandwidth", v, "must be a number > 0 (default 0.001)")

    # -- ask / tell -----------------------------------------------------------------------------
    def _open(self, plan: _plan.Bracket) -> Any:
        self.opened.append(plan)
        return self.driver.open_bracket(plan, serial=len(self.opened) - 1)

    def _open_next(self) -> None:
        self._open(_plan.bracket(self.eta, self.min_budget, self.max_budget, self._schedule_pos,
                                 deepest_only=self.deepest_only))
        self._schedule_pos += 1

    def ask(self, trial_id: str) -> Suggestion | Signal:
        with self.driver.rng_scope():  # one numpy state swap per suggestion, not one per hpbandster call
            return self._ask(trial_id)

    def _ask(self, trial_id: str) -> Suggestion | Signal:
        slot = self.driver.next_run()
        if slot is None:
            if self.driver.waiting() and not self.parallel_brackets:
                return WAIT
            self._open_next()
            slot = self.driver.next_run()
        if slot is None:  # pragma: no cover - a fresh bracket always has a first job
            return WAIT
        self._slots[trial_id] = slot
        return self._suggestion(slot)

    def _suggestion(self, slot: Any) -> Suggestion:
        params = self.mapping.decode(slot.config)
        budget = int(slot.budget) if float(slot.budget).is_integer() else slot.budget
        if self.budget_parameter is not None:
            params[self.budget_parameter] = budget
            return Suggestion(params)
        return Suggestion(params, budget=float(budget))

    def tell(self, trial_id: str, result: TrialResult) -> None:
        with self.driver.rng_scope():
            self._tell(trial_id, result)

    def _tell(self, trial_id: str, result: TrialResult) -> None:
        slot = self._slots.pop(trial_id, None)
        if slot is None:
            self._orphans.discard(trial_id)
            return
        if result.interrupted:
            # The study is stopping: the job says nothing about its configuration. Recording it
            # (even as crashed) would close the rung without it and cost it its promotion, so
            # it goes back to the rung unrun; the engine re-runs it, and tells it, on resume.
            self.driver.release(slot)
            return
        loss = loss_of(result, self._maximize)
        if not math.isfinite(loss):
            log.debug("hyperscout-bohb: trial %s counts as crashed (%s: %s)", trial_id, result.status.value,
                      result.reason or "no value")
        self.driver.finish(slot, loss)

    def pending(self) -> dict[str, tuple[int, int, float]]:
        """Running trials: ``{trial_id: (bracket index, rung, budget)}`` (for displays and tests)."""
        return {t: (s.bracket.HPB_iter, s.stage, s.budget) for t, s in self._slots.items()}

    def trial_slot(self, trial_id: str) -> tuple[int, int, float] | None:
        """``(bracket serial, rung, budget)`` of a running trial, None once told."""
        return self.pending().get(trial_id)

    # -- resume ---------------------------------------------------------------------------------
    def _budget_of(self, params: Mapping[str, Any], budget: float | None) -> int | None:
        if self.budget_parameter is not None:
            budget = params.get(self.budget_parameter)
        try:
            b = float(budget)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return None
        return int(b) if b.is_integer() and int(b) in self.budgets else None

    def restore(self, records: Sequence[TrialRecord]) -> None:
        """Rebuild the model from finished trials; resume interrupted ones in fresh brackets.

        Every finished trial whose budget is one of this schedule's rungs is fed to the config
        generator in store order, by the rule of :meth:`tell` (failed, aborted for time and
        pruned as ``inf``; a result marked ``interrupted`` not at all: it says nothing, and its
        re-run comes as a pending record), so BOHB's densities are those of the first run. Every
        configuration in the store counts as started and is not sampled afresh again. Brackets
        themselves are not resumed: the schedule restarts at its first bracket, and the random
        streams are re-seeded from ``(seed, number of records)``. A pending trial (``result is
        None``, a re-run) joins the first rung of a new bracket that starts at its budget, as a
        running job; the engine tells its result later.
        """
        if records:
            # Fresh, still seeded, random streams: do not replay the draws of the first run.
            salt = random.Random(f"{self.settings.seed}/resume/{len(records)}")
            self.rng.seed(salt.random() if self.settings.seed is not None else None)
            self.driver.reseed(self.rng.randrange(2**31), self.rng.randrange(2**31))
        for r in records:
            if r.result is not None and r.result.interrupted:
                continue
            config = self.mapping.encode(r.params)
            if config is not None:
                self.driver.remember(config)
            if r.result is None:
                continue
            budget = self._budget_of(r.params, r.budget if r.budget is not None else r.result.budget)
            if budget is None or config is None:
                continue
            self.driver.observe(config, float(budget), loss_of(r.result, self._maximize))
        by_budget: dict[int, list[tuple[str, dict[str, Any]]]] = {}
        for r in records:
            if r.result is not None:
                continue
            budget = self._budget_of(r.params, r.budget)
            config = self.mapping.encode(r.params)
            if budget is None or config is None:
                self._orphans.add(r.trial_id)
                continue
            by_budget.setdefault(budget, []).append((r.trial_id, config))
        for budget in sorted(by_budget):
            group = by_budget[budget]
            plan = _plan.bracket_from_budget(self.eta, self.min_budget, self.max_budget, budget, -1)
            if plan.configs[0] < len(group):
                plan = _plan.Bracket(plan.index, (len(group), *plan.configs[1:]), plan.budgets)
            it = self._open(plan)
            for trial_id, config in group:
                self._slots[trial_id] = self.driver.add_running(it, config)


class OptimizerBOHB(_BracketSearch):
    """BOHB (Falkner et al., 2018): Hyperband brackets whose configurations come from hpbandster's
    kernel-density model (ClearML's ``OptimizerBOHB``).

    The model options are hpbandster's, with its defaults. ``budget_parameter`` passes the rung
    budget to the script as that parameter instead of capping the objective's iterations;
    ``parallel_brackets`` opens the next bracket while a rung waits (hpbandster's Master does
    that) instead of answering ``WAIT``.
    """

    name = "bohb"
    uses_model = True

    def __init__(
        self,
        space: SearchSpace,
        objectives: ObjectiveSet,
        settings: StudySettings,
        *,
        eta: float = 3,
        min_points_in_model: int | None = None,
        top_n_percent: int = 15,
        num_samples: int = 64,
        random_fraction: float = 1 / 3,
        bandwidth_factor: float = 3,
        min_bandwidth: float = 1e-3,
        budget_parameter: str | None = None,
        parallel_brackets: bool = False,
    ) -> None:
        SearchStrategy.__init__(self, space, objectives, settings)
        self._setup(
            eta=eta,
            budget_parameter=budget_parameter,
            parallel_brackets=parallel_brackets,
            min_points_in_model=min_points_in_model,
            top_n_percent=top_n_percent,
            num_samples=num_samples,
            random_fraction=random_fraction,
            bandwidth_factor=bandwidth_factor,
            min_bandwidth=min_bandwidth,
        )


class Hyperband(_BracketSearch):
    """Hyperband (Li et al., 2017): the same brackets as BOHB with uniformly random configurations."""

    name = "hyperband"


class SuccessiveHalvingSearch(_BracketSearch):
    """Random configurations under successive halving: the deepest bracket, repeated forever."""

    name = "sh"
    deepest_only = True
