"""Entry point: registers ``optuna`` (ClearML's class name ``OptimizerOptuna`` resolves to it).

Importing this module is cheap: the strategy module imports Optuna only when a study is built.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from hyperscout import hookimpl

log = logging.getLogger("hyperscout")


@hookimpl
def hyperscout_register_strategies(register: Callable[..., Any]) -> None:
    try:
        from hyperscout_optuna import OptimizerOptuna
    except ImportError as exc:  # optuna missing from a broken environment: the other plugins still work
        log.warning("hyperscout: strategy 'optuna' is unavailable: %s", exc)
        return
    register(OptimizerOptuna)
