"""Optuna as a hyperscout search strategy (``optimizer_class="optuna"`` or ``OptimizerOptuna``).

``from hyperscout_optuna import OptimizerOptuna`` raises ImportError when Optuna is not installed,
so ClearML's fallback idiom (``try: ... except ImportError: RandomSearch``) keeps working. Optuna
itself is imported only when a strategy is built, which keeps plugin discovery fast.
"""

from __future__ import annotations

import importlib.util

if importlib.util.find_spec("optuna") is None:  # pragma: no cover - optuna is a dependency
    raise ImportError("hyperscout-optuna needs the optuna package: pip install 'optuna>=4'")

from hyperscout_optuna.space import OptunaSpace
from hyperscout_optuna.strategy import PRUNERS, SAMPLERS, OptimizerOptuna

__all__ = ["PRUNERS", "SAMPLERS", "OptimizerOptuna", "OptunaSpace"]
