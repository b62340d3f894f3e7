"""hyperscout: hyperparameter optimization from plugins, ClearML's HPO API without a server.

``from hyperscout import report_scalar`` is what a trial script does, so importing this package
loads only :mod:`hyperscout.trial` (standard library); everything else is imported on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from hyperscout.trial import get_job_id, get_parameters, report_scalar

__version__ = "0.1.0"

_LAZY = {
    # parameter ranges (ClearML's names)
    "UniformParameterRange": "hyperscout.params",
    "UniformIntegerParameterRange": "hyperscout.params",
    "LogUniformParameterRange": "hyperscout.params",
    "DiscreteParameterRange": "hyperscout.params",
    "ParameterSet": "hyperscout.params",
    "Parameter": "hyperscout.params",
    "SearchSpace": "hyperscout.params",
    "config_key": "hyperscout.params",
    # objectives
    "Objective": "hyperscout.objective",
    "ObjectiveSet": "hyperscout.objective",
    # jobs
    "Job": "hyperscout.job",
    "JobStatus": "hyperscout.job",
    "MetricPoint": "hyperscout.job",
    # strategies
    "SearchStrategy": "hyperscout.strategy",
    "Suggestion": "hyperscout.strategy",
    "WAIT": "hyperscout.strategy",
    "EXHAUSTED": "hyperscout.strategy",
    "Verdict": "hyperscout.strategy",
    "TrialResult": "hyperscout.strategy",
    "TrialRecord": "hyperscout.strategy",
    "StudySettings": "hyperscout.strategy",
    "Signal": "hyperscout.strategy",
    "Reattached": "hyperscout.backend",
    # backends
    "Backend": "hyperscout.backend",
    "JobSpec": "hyperscout.backend",
    "JobQueued": "hyperscout.backend",
    "JobStarted": "hyperscout.backend",
    "MetricReported": "hyperscout.backend",
    "JobExited": "hyperscout.backend",
    "BackendLost": "hyperscout.backend",
    "Command": "hyperscout.command",
    "MetricPattern": "hyperscout.capture",
    # plugins
    "hookimpl": "hyperscout.plugins",
    # the optimizer
    "HyperParameterOptimizer": "hyperscout.optimizer",
    # errors
    "HyperscoutError": "hyperscout.errors",
    "ConfigError": "hyperscout.errors",
    "ParameterError": "hyperscout.errors",
    "PluginNotFoundError": "hyperscout.errors",
    "UnsupportedError": "hyperscout.errors",
    "StoreError": "hyperscout.errors",
    "StudyLockedError": "hyperscout.errors",
    "ObjectiveError": "hyperscout.errors",
    "StudyConflictError": "hyperscout.errors",
    # results
    "ranked_jobs": "hyperscout.results",
}

__all__ = ["__version__", "get_job_id", "get_parameters", "report_scalar", *_LAZY]


#: ClearML's strategy class names, resolved through the plugin registry (never a direct import),
#: so ``from hyperscout import OptimizerOptuna`` raises ImportError when the plugin is not
#: installed, and the seed's try/except fallback works unchanged.
_STRATEGY_NAMES = ("RandomSearch", "GridSearch", "OptimizerOptuna", "OptimizerBOHB", "OptimizerSkopt")


def __getattr__(name: str) -> Any:
    if name in _STRATEGY_NAMES:
        from hyperscout.errors import PluginNotFoundError
        from hyperscout.plugins import strategies

        try:
            return strategies().get(name)
        except PluginNotFoundError as exc:
            # ImportError (not AttributeError) so that `from hyperscout import X` keeps the hint.
            raise ImportError(f"cannot import {name} from hyperscout: {exc}", name="hyperscout") from None
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'hyperscout' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # pragma: no cover
    from hyperscout.backend import (
        Backend,
        BackendLost,
        JobExited,
        JobQueued,
        JobSpec,
        JobStarted,
        MetricReported,
        Reattached,
    )
    from hyperscout.capture import MetricPattern
    from hyperscout.command import Command
    from hyperscout.errors import (
        ConfigError,
        HyperscoutError,
        ObjectiveError,
        ParameterError,
        PluginNotFoundError,
        StoreError,
        StudyConflictError,
        StudyLockedError,
        UnsupportedError,
    )
    from hyperscout.job import Job, JobStatus, MetricPoint
    from hyperscout.objective import Objective, ObjectiveSet
    from hyperscout.optimizer import HyperParameterOptimizer
    from hyperscout.params import (
        DiscreteParameterRange,
        LogUniformParameterRange,
        Parameter,
        ParameterSet,
        SearchSpace,
        UniformIntegerParameterRange,
        UniformParameterRange,
        config_key,
    )
    from hyperscout.plugins import hookimpl
    from hyperscout.results import ranked_jobs
    from hyperscout.strategy import (
        EXHAUSTED,
        WAIT,
        SearchStrategy,
        Signal,
        StudySettings,
        Suggestion,
        TrialRecord,
        TrialResult,
        Verdict,
    )
