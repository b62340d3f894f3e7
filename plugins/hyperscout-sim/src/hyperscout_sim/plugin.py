"""Entry point: registers the ``sim`` backend, and tells it each job's budget at launch.

The engine's :class:`~hyperscout.backend.JobSpec` does not carry the job's iteration cap
(``Suggestion.budget``), so the launch hook passes it on before the job's first step: the
engine calls it right after ``launch()`` and a simulated job starts only when the clock moves.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from hyperscout import hookimpl


@hookimpl
def hyperscout_register_backends(register: Callable[..., Any]) -> None:
    from hyperscout_sim.backend import SimBackend

    register(SimBackend)


@hookimpl
def hyperscout_job_launched(job: Any) -> None:
    module = sys.modules.get("hyperscout_sim.backend")
    if module is None:  # no simulation in this process: nothing to tell
        return
    backend = module._AWAITING_BUDGET.pop(job.id, None)
    if backend is not None:
        backend.set_budget(job.id, job.budget)
