"""The search-strategy contract: ask / report / tell, for every library and every backend.

A strategy never runs jobs, polls, sleeps or counts budgets: the engine does all of that in one
place and calls the strategy from a single thread, in this order for each trial::

    ask(trial_id)                      -> Suggestion | WAIT | EXHAUSTED
    report(trial_id, iteration, value) -> Verdict      (zero or more times, primary objective)
    tell(trial_id, result)                              (exactly once per Suggestion)

``WAIT`` means "nothing right now, ask again after the next tell" (for example a Hyperband rung
waiting for its jobs); ``EXHAUSTED`` means the strategy will never suggest anything again.
On resume, :meth:`SearchStrategy.restore` receives what the store holds before the first ask.

Subclasses declare what they can handle in class attributes and their options as keyword-only
constructor arguments: the engine checks both before any job starts, so an unsupported
parameter type or an unknown option is a clear error, never a silent drop.
"""

from __future__ import annotations

import abc
import enum
import inspect
import random
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import attrs

from hyperscout.errors import UnsupportedError
from hyperscout.job import JobStatus
from hyperscout.objective import ObjectiveSet
from hyperscout.params import (
    DiscreteParameterRange,
    LogUniformParameterRange,
    Parameter,
    ParameterSet,
    SearchSpace,
    UniformIntegerParameterRange,
    UniformParameterRange,
)

__all__ = [
    "EXHAUSTED",
    "WAIT",
    "SearchStrategy",
    "Signal",
    "StudySettings",
    "Suggestion",
    "TrialRecord",
    "TrialResult",
    "Verdict",
]

ALL_PARAMETER_TYPES: tuple[type[Parameter], ...] = (
    UniformParameterRange,
    LogUniformParameterRange,
    UniformIntegerParameterRange,
    DiscreteParameterRange,
    ParameterSet,
)


@attrs.frozen
class Suggestion:
    """A configuration to run.

    ``budget`` caps the job at that many iterations of the primary objective (the engine stops the
    job, as completed, when it reports that iteration); ``None`` means ``max_iteration_per_job``.
    """

    params: Mapping[str, Any] = attrs.field(converter=dict)
    budget: float | None = None


@attrs.frozen
class Signal:
    """A non-suggestion answer to :meth:`SearchStrategy.ask`."""

    name: str

    def __repr__(self) -> str:
        return self.name


WAIT = Signal("WAIT")
EXHAUSTED = Signal("EXHAUSTED")


class Verdict(str, enum.Enum):
    """The answer to an intermediate report."""

    CONTINUE = "continue"
    #: stop the job now and record it as pruned
    PRUNE = "prune"
    #: stop the job now and record it as completed (its budget is used up)
    STOP = "stop"


@attrs.frozen
class TrialResult:
    """How a trial ended, as told to the strategy. One rule for every strategy and every backend:

    =========  ==============================================  ===========  ==================
    status     cause                                           ``values``   ranked, best,
                                                                            callback
    =========  ==============================================  ===========  ==================
    completed  exited 0 with every objective, or stopped at    final        yes
               its budget / ``max_iteration_per_job`` /
               ``Verdict.STOP`` (value taken up to and
               including that stop point, never after)
    pruned     the strategy answered ``Verdict.PRUNE``         ``None``     no
    aborted    ran past ``time_limit_per_job``                 ``None``     no
    aborted    ``interrupted``: the study stopped (``stop()``,  ``None``     no; re-run on
               Ctrl-C, a study limit, a crash)                              resume
    failed     non-zero exit, crash, objective never           ``None``     no
               reported, objective NaN or infinite
    =========  ==============================================  ===========  ==================

    ``values`` (raw objective values, one per objective) is set **only** for ``completed``;
    ``intermediate`` (the primary objective's history up to and including the stop point)
    and ``iteration`` are set whatever the status, so a strategy may use a pruned job's last
    value the way Optuna does. An ``interrupted`` result says nothing about the configuration:
    strategies must forget it (it is told again, under the re-run's id, on resume).
    """

    status: JobStatus
    values: tuple[float, ...] | None = None
    iteration: int | None = None
    intermediate: tuple[tuple[int, float], ...] = ()
    budget: float | None = None
    #: aborted because the study stopped, not because of this configuration
    interrupted: bool = False
    #: why the job failed or was stopped, for logs
    reason: str | None = None

    @property
    def value(self) -> float | None:
        """The primary objective's final value (``None`` unless ``completed``)."""
        return self.values[0] if self.values else None

    @property
    def last_intermediate(self) -> float | None:
        """The primary objective's last value up to the stop point, whatever the status."""
        return self.intermediate[-1][1] if self.intermediate else None


@attrs.frozen
class TrialRecord:
    """A trial from the store, replayed by :meth:`SearchStrategy.restore` on resume.

    ``result`` is ``None`` for a trial that was interrupted and is about to be run again under
    ``trial_id``: the strategy will get a :meth:`~SearchStrategy.tell` for it as if it had asked.
    """

    trial_id: str
    params: Mapping[str, Any]
    result: TrialResult | None
    budget: float | None = None


@attrs.frozen
class StudySettings:
    """The limits the engine enforces, shown to the strategy so it can plan (Hyperband brackets)."""

    max_concurrency: int = 1
    total_max_jobs: int | None = None
    min_iteration_per_job: int | None = None
    max_iteration_per_job: int | None = None
    time_limit_per_job: float | None = None  # seconds
    seed: int | None = None


class SearchStrategy(abc.ABC):
    """Base class of every search strategy (the seed's name for it).

    Class attributes a subclass sets:

    * ``name``: the registry name (``"random"``); users select the strategy by it.
    * ``supported_parameters``: the range classes it can map faithfully.
    * ``supports_multi_objective``: whether it accepts several objectives.
    * ``requires``: names of :class:`StudySettings` fields that must be set (BOHB needs
      ``max_iteration_per_job``), checked before the study starts.
    * ``learns_from_results``: False for strategies that ignore results (random, grid).

    Options are the keyword-only arguments of ``__init__`` after ``space, objectives, settings``.
    """

    name: ClassVar[str] = ""
    supported_parameters: ClassVar[tuple[type[Parameter], ...]] = ALL_PARAMETER_TYPES
    supports_multi_objective: ClassVar[bool] = False
    requires: ClassVar[tuple[str, ...]] = ()
    #: whether results steer the search (model-based strategies); the conformance kit then
    #: checks that ``tell`` and ``restore`` really change what is suggested next
    learns_from_results: ClassVar[bool] = True

    def __init__(self, space: SearchSpace, objectives: ObjectiveSet, settings: StudySettings) -> None:
        self.space = space
        self.objectives = objectives
        self.settings = settings
        self.rng = random.Random(settings.seed)

    # -- what the engine calls -------------------------------------------------------------
    @abc.abstractmethod
    def ask(self, trial_id: str) -> Suggestion | Signal:
        """Return the next configuration for ``trial_id``, or ``WAIT`` / ``EXHAUSTED``."""

    def report(self, trial_id: str, iteration: int, value: float) -> Verdict:
        """An intermediate value of the primary objective; answer whether the job goes on."""
        return Verdict.CONTINUE

    @abc.abstractmethod
    def tell(self, trial_id: str, result: TrialResult) -> None:
        """The final outcome of a trial this strategy suggested (or that ``restore`` announced)."""

    def restore(self, records: Sequence[TrialRecord]) -> None:
        """Rebuild state from the store before the first ``ask`` of a resumed study.

        The default does nothing, so a resumed study starts the search over; every built-in
        strategy overrides it.
        """

    def close(self) -> None:
        """Release resources (threads, files) when the study ends."""

    # -- declared capabilities -------------------------------------------------------------
    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        """The options this strategy accepts (its keyword-only constructor arguments)."""
        sig = inspect.signature(cls.__init__)
        return tuple(p.name for p in sig.parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY)

    @classmethod
    def accepts_any_option(cls) -> bool:
        sig = inspect.signature(cls.__init__)
        return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())

    @classmethod
    def check(cls, space: SearchSpace, objectives: ObjectiveSet, settings: StudySettings, options: Mapping[str, Any]) -> None:
        """Raise :class:`UnsupportedError` for anything this strategy cannot honour."""
        label = cls.name or cls.__name__
        for p in space.parameters:
            if type(p) not in cls.supported_parameters:
                names = ", ".join(c.__name__ for c in cls.supported_parameters)
                raise UnsupportedError(
                    f"strategy {label!r} cannot search {type(p).__name__} {p.name or p.names!r}; "
                    f"it supports {names}: change the range or pick another strategy"
                )
        if objectives.is_multi and not cls.supports_multi_objective:
            raise UnsupportedError(
                f"strategy {label!r} optimizes one objective but {len(objectives)} were given; "
                "use a multi-objective strategy such as 'optuna' or keep one objective"
            )
        for field in cls.requires:
            if getattr(settings, field) is None:
                raise UnsupportedError(f"strategy {label!r} needs {field} to be set; add it to the study limits")
        if not cls.accepts_any_option():
            allowed = cls.option_names()
            for key in options:
                if key not in allowed:
                    hint = f"accepted options: {', '.join(allowed)}" if allowed else "it takes no options"
                    raise UnsupportedError(f"strategy {label!r} has no option {key!r}; {hint}")
