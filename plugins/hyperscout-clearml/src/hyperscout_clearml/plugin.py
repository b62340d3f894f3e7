"""Entry point: registers the ``clearml`` backend (imported only when a registry is built)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hyperscout import hookimpl


@hookimpl
def hyperscout_register_backends(register: Callable[..., Any]) -> None:
    from hyperscout_clearml.backend import ClearMLBackend

    register(ClearMLBackend)
