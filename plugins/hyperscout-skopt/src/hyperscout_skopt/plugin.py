"""Entry point: registers ``skopt`` (scikit-optimize is imported only when a study builds it)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hyperscout import hookimpl


@hookimpl
def hyperscout_register_strategies(register: Callable[..., Any]) -> None:
    from hyperscout_skopt import OptimizerSkopt

    register(OptimizerSkopt)
