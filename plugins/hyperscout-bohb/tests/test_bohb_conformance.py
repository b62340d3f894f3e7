"""The core strategy conformance suite, for each of the three strategies."""

from __future__ import annotations

from hyperscout.plugins import strategies
from hyperscout.testing import StrategyTestSuite
from hyperscout_bohb import Hyperband, OptimizerBOHB, SuccessiveHalvingSearch

LIMITS = {"min_iteration_per_job": 1, "max_iteration_per_job": 9}


class TestBOHBConformance(StrategyTestSuite):
    strategy_class = OptimizerBOHB
    settings = LIMITS
    n_trials = 16  # past the first 13-job bracket, so the model is used


class TestHyperbandConformance(StrategyTestSuite):
    strategy_class = Hyperband
    settings = LIMITS


class TestSuccessiveHalvingConformance(StrategyTestSuite):
    strategy_class = SuccessiveHalvingSearch
    settings = LIMITS


def test_discovery() -> None:
    reg = strategies()
    assert reg.get("bohb") is OptimizerBOHB
    assert reg.get("OptimizerBOHB") is OptimizerBOHB
    assert reg.get("hyperband") is Hyperband
    assert reg.get("sh") is SuccessiveHalvingSearch
    for name in ("bohb", "hyperband", "sh"):
        assert reg.entries[name].distribution == "hyperscout-bohb"
