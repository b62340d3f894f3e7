"""BOHB, Hyperband and successive halving for hyperscout, on hpbandster driven in-process.

``bohb`` (``OptimizerBOHB``), ``hyperband`` (``Hyperband``) and ``sh``
(``SuccessiveHalvingSearch``). hpbandster's Master, workers and Pyro name server are never used:
nothing binds a port, and several studies can run in one process.
"""

from __future__ import annotations

from hyperscout_bohb._plan import Bracket, bracket, cycle, rung_budgets
from hyperscout_bohb._strategy import Hyperband, OptimizerBOHB, SuccessiveHalvingSearch, loss_of

__all__ = [
    "Bracket",
    "Hyperband",
    "OptimizerBOHB",
    "SuccessiveHalvingSearch",
    "bracket",
    "cycle",
    "loss_of",
    "rung_budgets",
]
