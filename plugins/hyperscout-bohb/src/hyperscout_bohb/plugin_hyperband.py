"""Entry point `hyperband`: registers `Hyperband`. The class (and hpbandster) load on registration, not here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hyperscout import hookimpl


@hookimpl
def hyperscout_register_strategies(register: Callable[..., Any]) -> None:
    from hyperscout_bohb import Hyperband

    register(Hyperband)
