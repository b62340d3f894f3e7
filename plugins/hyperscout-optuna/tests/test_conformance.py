"""The core's strategy conformance suite, for the default sampler and for a few others."""

from __future__ import annotations

from hyperscout.testing import StrategyTestSuite
from hyperscout_optuna import OptimizerOptuna


class TestOptunaTPE(StrategyTestSuite):
    strategy_class = OptimizerOptuna


class TestOptunaRandomHyperband(StrategyTestSuite):
    strategy_class = OptimizerOptuna
    strategy_options = {"sampler": "random", "pruner": "hyperband"}
    settings = {"min_iteration_per_job": 1, "max_iteration_per_job": 9}


class TestOptunaNSGA2(StrategyTestSuite):
    strategy_class = OptimizerOptuna
    strategy_options = {"sampler": "nsga2", "sampler_options": {"population_size": 4}, "pruner": "none"}
