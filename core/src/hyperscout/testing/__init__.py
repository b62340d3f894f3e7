"""Test kits that every plugin (built-in or third-party) runs the same way.

* :class:`StrategyTestSuite`: subclass it with ``strategy_class = YourStrategy``.
* :class:`BackendTestSuite`: subclass it and override the ``backend`` fixture.

Both are plain pytest classes; the ``hyperscout`` pytest plugin (installed with the core)
adds the ``hyperscout_plugin_manager`` fixture.
"""

from __future__ import annotations

from hyperscout.testing.strategy_suite import StrategyTestSuite, drive, synthetic_value

__all__ = ["BackendTestSuite", "StrategyTestSuite", "drive", "synthetic_value"]


def __getattr__(name: str):  # the backend suite imports more; load it on demand
    if name == "BackendTestSuite":
        from hyperscout.testing.backend_suite import BackendTestSuite

        return BackendTestSuite
    raise AttributeError(name)
