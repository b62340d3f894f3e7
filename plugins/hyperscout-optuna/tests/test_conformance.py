"""The core's strategy conformance suite, for the default sampler and for a few others."""

from __future__ import annotations

from hyperscout import SearchSpace, UniformParameterRange
from hyperscout.testing import StrategyTestSuite
from hyperscout_optuna import OptimizerOptuna


class _Declared(StrategyTestSuite):
    """OptimizerOptuna declares ``learns_from_results`` per instance, since it depends on the sampler
    option; the kit reads the class attribute, so each combination's class must say the same."""

    def test_the_class_declares_what_its_instances_do(self) -> None:
        strategy = self.make(SearchSpace((UniformParameterRange("x", 0.0, 1.0),)))
        assert strategy.learns_from_results is self.strategy_class.learns_from_results


class _RandomDraws(OptimizerOptuna):
    """Optuna's random sampler ignores results: what OptimizerOptuna(sampler="random") declares."""

    learns_from_results = False


class TestOptunaTPE(_Declared):
    strategy_class = OptimizerOptuna


class TestOptunaRandomHyperband(_Declared):
    strategy_class = _RandomDraws
    strategy_options = {"sampler": "random", "pruner": "hyperband"}
    settings = {"min_iteration_per_job": 1, "max_iteration_per_job": 9}


class TestOptunaNSGA2(_Declared):
    strategy_class = OptimizerOptuna
    strategy_options = {"sampler": "nsga2", "sampler_options": {"population_size": 4}, "pruner": "none"}
