"""hpbandster's config generators and successive-halving iterations, driven in-process.

No Master, Worker, dispatcher or Pyro object is ever built: hpbandster's iteration objects only
need a "job" with ``id``, ``kwargs``, ``result``, ``exception`` and ``timestamps`` (see
:class:`Run`), so the strategy hands them its own.

hpbandster samples with numpy's *global* random state (``np.random.rand``, scipy's
``truncnorm.rvs``), which would make two studies in one process disturb each other and make a
seed meaningless. :meth:`Driver.rng_scope` gives each driver its own stream of numpy's global
state (swapped lazily when another driver takes over), under a process-wide lock.

Two things hpbandster does not do are added here: a configuration is started afresh only once
(:meth:`Driver._sample` redraws one that already ran; only promotions run it again), and a job
can be handed back to its rung unrun (:meth:`Driver.release`, for an interrupted job).
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import warnings
from collections.abc import Iterator
from typing import Any

import attrs
import numpy as np
from hpbandster.optimizers.config_generators.bohb import BOHB as BOHBGenerator
from hpbandster.optimizers.config_generators.random_sampling import RandomSampling
from hpbandster.optimizers.iterations import SuccessiveHalving

from hyperscout.params import config_key
from hyperscout_bohb._plan import Bracket
from hyperscout_bohb._space import SpaceMapping

__all__ = ["Driver", "Run"]

log = logging.getLogger("hyperscout.bohb")

#: guards numpy's global random state while a driver has its own swapped in
_GLOBAL_RNG_LOCK = threading.RLock()
#: the driver whose stream numpy's global state holds right now (swapped lazily, see rng_scope)
_holder: list[Driver | None] = [None]

#: model draws of a new configuration before giving up on the model for it (each is 64 candidates)
_MODEL_DRAWS = 3
#: then uniform draws before accepting a repeat (the space is then all but used up)
_RANDOM_DRAWS = 50


@attrs.define
class Run:
    """What hpbandster's iterations and config generators read from a finished job."""

    id: tuple[int, int, int]
    kwargs: dict[str, Any]
    result: dict[str, Any] | None = None
    exception: str | None = None
    timestamps: dict[str, float] = attrs.field(factory=dict)


@attrs.define
class Slot:
    """A suggested job: which bracket and configuration it runs, at which budget."""

    bracket: Any  # SuccessiveHalving
    config_id: tuple[int, int, int]
    config: dict[str, Any]
    budget: float
    stage: int


class Driver:
    """Config generator + open brackets; the hyperscout strategy translates to and from it."""

    def __init__(
        self,
        mapping: SpaceMapping,
        *,
        model: bool,
        numpy_seed: int,
        generator_options: dict[str, Any],
    ) -> None:
        self.mapping = mapping
        self._np_state = np.random.RandomState(numpy_seed).get_state()
        self.model = model and mapping.searched > 0
        with self.rng_scope():
            if self.model:
                self.generator: Any = BOHBGenerator(mapping.configspace, logger=log, **generator_options)
            else:
                self.generator = RandomSampling(mapping.configspace, logger=log)
        #: open brackets, oldest first
        self.open: list[Any] = []
        #: how many new configurations came from the model and how many were random
        self.picks = {"model": 0, "random": 0}
        #: keys of every configuration started so far (sampled, or restored from the store)
        self.seen: set[str] = set()

    def reseed(self, configspace_seed: int, numpy_seed: int) -> None:
        """Start fresh random streams (a resumed study must not replay the first run's draws)."""
        self.mapping.configspace.seed(configspace_seed)
        with _GLOBAL_RNG_LOCK:
            self._np_state = np.random.RandomState(numpy_seed).get_state()
            if _holder[0] is self:
                _holder[0] = None  # the next scope loads the new stream

    @contextlib.contextmanager
    def rng_scope(self) -> Iterator[None]:
        """Run hpbandster code on this driver's own numpy random stream.

        The swap is lazy: numpy's global state keeps the stream of the driver that used it last,
        and is saved into that driver and replaced only when another driver takes over. One
        study pays nothing per call (a get/set of numpy's state costs ~75 us, about 1% of a
        suggestion each); two studies in one process still never disturb each other. Nothing
        else in the optimizer's process draws from numpy's global state (Optuna and skopt use
        their own generators; trials run in their own processes). Re-entrant.
        """
        if getattr(self, "_scope_owner", None) == threading.get_ident():
            yield
            return
        with _GLOBAL_RNG_LOCK:
            self._scope_owner = threading.get_ident()
            previous = _holder[0]
            if previous is not self:
                if previous is not None:
                    previous._np_state = np.random.get_state()
                np.random.set_state(self._np_state)
                _holder[0] = self
            try:
                with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
                    # hpbandster calls ConfigSpace 0.x names that 1.x deprecates, statsmodels
                    # announces a future default, and a categorical kernel over a single observed
                    # level divides by zero (hpbandster then treats that candidate as unusable):
                    # noise for the user, nothing to act on.
                    warnings.simplefilter("ignore", DeprecationWarning)
                    warnings.simplefilter("ignore", FutureWarning)
                    warnings.simplefilter("ignore", RuntimeWarning)
                    yield
            finally:
                self._scope_owner = None

    def remember(self, config: dict[str, Any]) -> bool:
        """Mark a configuration as started; False if it already was."""
        k = config_key(self.mapping.decode(config))
        if k in self.seen:
            return False
        self.seen.add(k)
        return True

    def _sample(self, budget: float) -> tuple[dict[str, Any], dict[str, Any]]:
        """A new configuration for a rung, never one that already ran (while the space has others).

        On an integer or categorical axis BOHB's density ratio peaks on a good point it has already
        run, and rounding lands on it exactly: the same job again, a wasted run. So a repeat is
        redrawn from the model, then uniformly; only when every draw repeats (a small space used
        up) is the repeat run. Promotions do not come through here: they re-run on purpose.
        """
        for _ in range(_MODEL_DRAWS):
            config, info = self.generator.get_config(budget)
            if self.mapping.searched == 0 or self.remember(config):
                self.picks["model" if info.get("model_based_pick") else "random"] += 1
                return dict(config), dict(info)
        for _ in range(_RANDOM_DRAWS):
            config = dict(self.mapping.configspace.sample_configuration())
            if self.remember(config):
                break
        self.picks["random"] += 1
        return dict(config), {"model_based_pick": False, "redrawn": True}

    def open_bracket(self, plan: Bracket, serial: int) -> Any:
        """Start a successive-halving iteration shaped like ``plan`` (``serial`` numbers its configs)."""
        it = SuccessiveHalving(
            HPB_iter=serial,
            num_configs=list(plan.configs),
            budgets=[float(b) for b in plan.budgets],
            config_sampler=self._sample,
            logger=log,
        )
        self.open.append(it)
        return it

    def next_run(self) -> Slot | None:
        """The next job of the oldest open bracket that has one; None if they all wait (or none is open)."""
        with self.rng_scope():
            for it in list(self.open):
                run = it.get_next_run()
                if it.is_finished:
                    self.open.remove(it)
                if run is not None:
                    config_id, config, budget = run
                    return Slot(it, config_id, dict(config), float(budget), it.stage)
        return None

    def waiting(self) -> bool:
        """True when an open bracket still has jobs running (its rung cannot close yet)."""
        return any(it.num_running > 0 for it in self.open)

    def add_running(self, it: Any, config: dict[str, Any]) -> Slot:
        """Put a configuration into the first rung of ``it`` as already running (a resumed job)."""
        config_id = it.add_configuration(config=config, config_info={"resumed": True})
        datum = it.data[config_id]
        datum.status = "RUNNING"
        it.num_running += 1
        return Slot(it, config_id, config, float(datum.budget), it.stage)

    def release(self, slot: Slot) -> None:
        """Hand a running job back to its rung, unrun: nothing is recorded, and the rung's next
        job is that same configuration at that same budget (an interrupted job, see the strategy)."""
        datum = slot.bracket.data[slot.config_id]
        datum.status = "QUEUED"
        slot.bracket.num_running -= 1

    def finish(self, slot: Slot, loss: float) -> None:
        """Record a job's loss (``inf`` for a failed one) in its bracket and in the model."""
        result = {"loss": loss, "info": {}} if math.isfinite(loss) else None
        run = Run(slot.config_id, {"config": slot.config, "budget": slot.budget}, result)
        slot.bracket.register_result(run)
        self.observe(slot.config, slot.budget, loss, run.id)

    def observe(self, config: dict[str, Any], budget: float, loss: float,
                config_id: tuple[int, int, int] = (-1, 0, 0)) -> None:
        """Feed one (configuration, budget, loss) to the model only (also used on resume)."""
        result = {"loss": loss, "info": {}} if math.isfinite(loss) else None
        run = Run(config_id, {"config": config, "budget": budget}, result)
        try:
            with self.rng_scope():
                self.generator.new_result(run)
        except Exception as exc:  # a model that cannot be fitted must not end the study
            log.warning("hyperscout-bohb: the model ignored a result (%s: %s)", type(exc).__name__, exc)
