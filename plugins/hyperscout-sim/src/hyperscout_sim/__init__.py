"""Simulated execution backend for hyperscout: job functions (or replays) on a virtual clock.

``HyperParameterOptimizer(base_task_id=job, backend="sim", ...)`` runs a whole study through the
real engine, strategies, limits, store and hooks without a process or a sleep. The job-function
protocol is documented in :mod:`hyperscout_sim.task`; replays in :mod:`hyperscout_sim.replay`.
"""

from __future__ import annotations

from hyperscout_sim.backend import SimBackend
from hyperscout_sim.replay import Recording, Replay
from hyperscout_sim.task import JobFunction, SimExit, SimTask, Step, StepError

__all__ = ["JobFunction", "Recording", "Replay", "SimBackend", "SimExit", "SimTask", "Step", "StepError"]
