"""scikit-optimize (skopt) for hyperscout: Bayesian optimization with a constant liar for parallel jobs.

Select it with ``optimizer_class="skopt"`` (or ClearML-style ``"OptimizerSkopt"``) or import the
class. Importing this package does not import scikit-optimize; building the strategy does.
"""

from __future__ import annotations

from hyperscout_skopt.strategy import OptimizerSkopt

__all__ = ["OptimizerSkopt"]
