"""Map hyperscout ranges onto a ConfigSpace space and back, so values stay exactly in range.

hpbandster's BOHB refuses ordinal hyperparameters, and a categorical one forgets that grid points
are ordered, so every *stepped* range (and every integer range that is not "step 1, max
included") becomes an integer *index* into the range's ``points()``: the KDE still sees an ordered
axis and the decoded value is always one of the range's own points.

==============================  ===============================================================
hyperscout range                ConfigSpace hyperparameter
==============================  ===============================================================
Uniform (continuous)            ``UniformFloat(min, max)``
Uniform (stepped)               ``UniformInteger(0, len(points) - 1)``, decoded to ``points()[i]``
LogUniform (continuous)         ``UniformFloat(base**min, base**max, log=True)``
LogUniform (stepped)            index over ``points()`` as above
UniformInteger (step 1, max in) ``UniformInteger(min, max)``
UniformInteger (other)          index over ``points()``
Discrete                        ``Categorical`` over the value *indices* (mixed types are fine)
a range with a single value     not searched: a fixed value
==============================  ===============================================================

This module imports ConfigSpace at import time; the strategies import it lazily.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
from ConfigSpace import (
    CategoricalHyperparameter,
    ConfigurationSpace,
    UniformFloatHyperparameter,
    UniformIntegerHyperparameter,
)

from hyperscout.errors import UnsupportedError
from hyperscout.params import (
    DiscreteParameterRange,
    LogUniformParameterRange,
    Parameter,
    UniformIntegerParameterRange,
    UniformParameterRange,
)

__all__ = ["Dimension", "SpaceMapping"]

#: how a dimension is encoded in ConfigSpace
FLOAT, INT, INDEX, CATEGORY, FIXED = "float", "int", "index", "category", "fixed"


@attrs.frozen
class Dimension:
    """One hyperscout parameter and its ConfigSpace encoding."""

    name: str
    kind: str
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    #: a bound the range excludes (``include_max_value=False``): "low", "high" or None
    excluded: str | None = None
    #: grid points (INDEX) or values (CATEGORY); the single value for FIXED
    choices: tuple[Any, ...] = ()

    def hyperparameter(self) -> Any:
        """The ConfigSpace hyperparameter of this dimension (None for a fixed one)."""
        if self.kind == FLOAT:
            return UniformFloatHyperparameter(self.name, lower=self.low, upper=self.high, log=self.log)
        if self.kind == INT:
            return UniformIntegerHyperparameter(self.name, lower=int(self.low), upper=int(self.high))
        if self.kind == INDEX:
            return UniformIntegerHyperparameter(self.name, lower=0, upper=len(self.choices) - 1)
        if self.kind == CATEGORY:
            return CategoricalHyperparameter(self.name, choices=list(range(len(self.choices))))
        return None

    def decode(self, raw: Any) -> Any:
        """A ConfigSpace value -> the trial's value, always inside the hyperscout range."""
        if self.kind == FIXED:
            return self.choices[0]
        if self.kind == FLOAT:
            v = min(max(float(raw), self.low), self.high)
            nudge = 1e-9 * (self.high - self.low)
            if self.excluded == "high" and v >= self.high - nudge:
                v = min(math.nextafter(self.high, -math.inf), self.high - nudge)
            elif self.excluded == "low" and v <= self.low + nudge:
                v = max(math.nextafter(self.low, math.inf), self.low + nudge)
            return v
        if self.kind == INT:
            return int(min(max(round(float(raw)), self.low), self.high))
        i = int(min(max(round(float(raw)), 0), len(self.choices) - 1))
        return self.choices[i]

    def encode(self, value: Any) -> Any:
        """A trial's value -> the ConfigSpace value (for replaying stored trials); None if foreign."""
        if self.kind == CATEGORY:
            for i, c in enumerate(self.choices):
                if c == value and type(c) is type(value):
                    return i
            for i, c in enumerate(self.choices):
                if c == value:
                    return i
            return None
        try:
            v = float(value)
        except (TypeError, ValueError):
            return None
        if not math.isfinite(v):
            return None
        if self.kind == FLOAT:
            return min(max(v, self.low), self.high)
        if self.kind == INT:
            return int(min(max(round(v), self.low), self.high))
        if self.kind == INDEX:
            return min(range(len(self.choices)), key=lambda i: abs(float(self.choices[i]) - v))
        return 0


def _dimension(p: Parameter) -> Dimension:
    if isinstance(p, UniformParameterRange):
        if p.step_size is not None:
            return _indexed(p.name, p.points())
        excluded = None if p.include_max_value else "high"
        return Dimension(p.name, FLOAT, p.min_value, p.max_value, excluded=excluded)
    if isinstance(p, LogUniformParameterRange):
        if p.step_size is not None:
            return _indexed(p.name, p.points())
        # base < 1 turns the exponent range upside down: base**max_value is then the low end.
        at_min, at_max = p.base**p.min_value, p.base**p.max_value
        low, high = min(at_min, at_max), max(at_min, at_max)
        excluded = None if p.include_max_value else ("high" if at_max >= at_min else "low")
        return Dimension(p.name, FLOAT, low, high, log=True, excluded=excluded)
    if isinstance(p, UniformIntegerParameterRange):
        if p.step_size == 1 and p.include_max_value:
            return Dimension(p.name, INT, p.min_value, p.max_value)
        return _indexed(p.name, p.points())
    if isinstance(p, DiscreteParameterRange):
        if len(p.values) == 1:
            return Dimension(p.name, FIXED, choices=p.values)
        return Dimension(p.name, CATEGORY, choices=p.values)
    raise UnsupportedError(
        f"strategies 'bohb', 'hyperband' and 'sh' cannot search {type(p).__name__} {p.name or p.names!r}; "
        "use Uniform, LogUniform, UniformInteger or Discrete ranges"
    )


def _indexed(name: str, points: Sequence[Any]) -> Dimension:
    if len(points) == 1:
        return Dimension(name, FIXED, choices=tuple(points))
    return Dimension(name, INDEX, choices=tuple(points))


class SpaceMapping:
    """The ConfigSpace space of a hyperscout space, seeded, with decode/encode of whole configs."""

    def __init__(self, parameters: Sequence[Parameter], seed: int) -> None:
        self.dimensions = tuple(_dimension(p) for p in parameters)
        self.configspace = ConfigurationSpace(seed=seed)
        hps = [d.hyperparameter() for d in self.dimensions if d.kind != FIXED]
        if hps:
            self.configspace.add(hps)

    @property
    def searched(self) -> int:
        """How many dimensions are searched (the others are fixed)."""
        return sum(1 for d in self.dimensions if d.kind != FIXED)

    def decode(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """A ConfigSpace configuration dict -> the trial's parameters."""
        return {d.name: d.decode(config.get(d.name)) for d in self.dimensions}

    def encode(self, params: Mapping[str, Any]) -> dict[str, Any] | None:
        """Stored trial parameters -> a ConfigSpace configuration dict; None if they do not fit."""
        out: dict[str, Any] = {}
        for d in self.dimensions:
            if d.kind == FIXED:
                continue
            if d.name not in params:
                return None
            v = d.encode(params[d.name])
            if v is None:
                return None
            out[d.name] = v
        return out
