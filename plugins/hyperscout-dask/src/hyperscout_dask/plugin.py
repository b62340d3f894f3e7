"""Entry point: registers the ``dask`` backend."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hyperscout import hookimpl


@hookimpl
def hyperscout_register_backends(register: Callable[..., Any]) -> None:
    from hyperscout_dask.backend import DaskBackend

    register(DaskBackend)
