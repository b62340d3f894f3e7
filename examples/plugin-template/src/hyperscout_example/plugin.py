"""The module named by the entry point: only hook implementations, no heavy imports."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hyperscout import hookimpl


@hookimpl
def hyperscout_register_strategies(register: Callable[..., Any]) -> None:
    # Imported here, not at module level: `hyperscout plugins` loads this module for every command.
    from hyperscout_example import CoordinateDescent

    register(CoordinateDescent)  # registered under its `name` attribute
