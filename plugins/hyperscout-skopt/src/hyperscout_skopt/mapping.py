"""Translate hyperscout ranges to scikit-optimize dimensions and back.

Every range becomes one *axis*: it builds the skopt dimension, turns a point coordinate coming
out of skopt (often a numpy scalar) into the exact value the trial sees, and turns a stored value
(a resumed study) back into a coordinate. The rules, chosen so that a suggested value is always a
value the range itself can produce (``Parameter.contains``):

* continuous ``UniformParameterRange`` -> ``Real(min, max)``;
* continuous ``LogUniformParameterRange`` -> ``Real(base**min, base**max, prior="log-uniform")``;
* any stepped range (float or integer with a step other than 1) -> ``Integer(0, n-1)`` indexing
  the range's ``points()``: the surrogate keeps the order of the grid, and the value handed out is
  exactly a grid point, ``max_value`` included or not as the range says;
* ``UniformIntegerParameterRange`` with step 1 -> ``Integer(min, max)`` (``max - 1`` without
  ``include_max_value``);
* ``DiscreteParameterRange`` -> ``Categorical`` over the value *positions*, so that mixed types
  (``[1, "a", True]``) never go through a numpy array that would turn them into strings;
* a range with a single possible value is a constant: it is not given to skopt at all.

skopt is imported inside the functions that need it so that loading the plugin (to list the
installed strategies) stays cheap.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from hyperscout import (
    DiscreteParameterRange,
    LogUniformParameterRange,
    Parameter,
    SearchSpace,
    UniformIntegerParameterRange,
    UniformParameterRange,
    UnsupportedError,
)

__all__ = ["Axis", "ChoiceAxis", "ConstantAxis", "IndexAxis", "IntegerAxis", "RealAxis", "build_axes"]

_REL_TOL = 1e-9


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= _REL_TOL * max(1.0, abs(a), abs(b))


def _finite_number(value: Any) -> float | None:
    """A stored value as a finite float, or ``None`` (booleans are not numbers here)."""
    if isinstance(value, bool):
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


class Axis(abc.ABC):
    """One parameter as skopt sees it."""

    name: str

    @property
    def is_constant(self) -> bool:
        return False

    @abc.abstractmethod
    def dimension(self) -> Any:
        """The skopt dimension (``Real``, ``Integer`` or ``Categorical``)."""

    @abc.abstractmethod
    def value(self, coordinate: Any) -> Any:
        """The trial-side value (a plain Python object) of a skopt coordinate."""

    @abc.abstractmethod
    def coordinate(self, value: Any) -> Any | None:
        """The skopt coordinate of a stored value, or ``None`` if the value is not in the range."""


@attrs.frozen
class RealAxis(Axis):
    """A continuous float, linear or log-uniform (then ``low``/``high`` are the values, not exponents)."""

    name: str
    low: float
    high: float
    log_base: float | None = None

    def dimension(self) -> Any:
        from skopt.space import Real

        if self.log_base is None:
            return Real(self.low, self.high, name=self.name)
        return Real(self.low, self.high, prior="log-uniform", base=self.log_base, name=self.name)

    def value(self, coordinate: Any) -> float:
        return min(max(float(coordinate), self.low), self.high)

    def coordinate(self, value: Any) -> float | None:
        v = _finite_number(value)
        if v is None:
            return None
        if v < self.low and not _close(v, self.low):
            return None
        if v > self.high and not _close(v, self.high):
            return None
        return min(max(v, self.low), self.high)


@attrs.frozen
class IntegerAxis(Axis):
    """Every integer from ``low`` to ``high``, both included."""

    name: str
    low: int
    high: int

    def dimension(self) -> Any:
        from skopt.space import Integer

        return Integer(self.low, self.high, name=self.name)

    def value(self, coordinate: Any) -> int:
        return int(coordinate)

    def coordinate(self, value: Any) -> int | None:
        v = _finite_number(value)
        if v is None or v != int(v) or not self.low <= int(v) <= self.high:
            return None
        return int(v)


@attrs.frozen
class IndexAxis(Axis):
    """An ordered grid of numbers, searched by position (``Integer(0, len(points) - 1)``)."""

    name: str
    points: tuple[float, ...]

    def dimension(self) -> Any:
        from skopt.space import Integer

        return Integer(0, len(self.points) - 1, name=self.name)

    def value(self, coordinate: Any) -> float:
        return self.points[int(coordinate)]

    def coordinate(self, value: Any) -> int | None:
        v = _finite_number(value)
        if v is None:
            return None
        for i, p in enumerate(self.points):
            if _close(v, float(p)):
                return i
        return None


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


@attrs.frozen
class ChoiceAxis(Axis):
    """One of several values, in no particular order (``Categorical`` over their positions)."""

    name: str
    values: tuple[Any, ...]

    def dimension(self) -> Any:
        from skopt.space import Categorical

        return Categorical(list(range(len(self.values))), name=self.name)

    def value(self, coordinate: Any) -> Any:
        return self.values[int(coordinate)]

    def coordinate(self, value: Any) -> int | None:
        # Exact type first so that 1 and True stay different choices; then plain equality,
        # for values that went through JSON (a tuple stored as a list, 2.0 stored as 2).
        for i, v in enumerate(self.values):
            if _same(v, value):
                return i
        for i, v in enumerate(self.values):
            if isinstance(v, (list, tuple)) and isinstance(value, (list, tuple)):
                if list(v) == list(value):
                    return i
            elif isinstance(v, bool) or isinstance(value, bool):
                continue
            elif v == value:
                return i
        return None


@attrs.frozen
class ConstantAxis(Axis):
    """A range with one possible value: handed out as is, never searched."""

    name: str
    constant: Any

    @property
    def is_constant(self) -> bool:
        return True

    def dimension(self) -> Any:  # pragma: no cover - constants are never given to skopt
        raise TypeError("a constant parameter has no skopt dimension")

    def value(self, coordinate: Any) -> Any:
        return self.constant

    def coordinate(self, value: Any) -> Any | None:
        return 0 if ChoiceAxis(self.name, (self.constant,)).coordinate(value) is not None else None


def _grid_axis(name: str, points: Sequence[Any]) -> Axis:
    if len(points) == 1:
        return ConstantAxis(name, points[0])
    return IndexAxis(name, tuple(points))


def _log_axis(p: LogUniformParameterRange) -> Axis:
    a, b = p.base**p.min_value, p.base**p.max_value
    if not (0.0 < a < math.inf and 0.0 < b < math.inf):
        raise UnsupportedError(
            f"strategy 'skopt': LogUniformParameterRange {p.name!r} spans {p.base:g}**{p.min_value:g} .. "
            f"{p.base:g}**{p.max_value:g}, which over- or underflows a float; narrow the exponents"
        )
    low, high = min(a, b), max(a, b)
    if not p.include_max_value:
        # base ** max_value is excluded: that is the top end for base > 1, the bottom for base < 1.
        if p.base > 1:
            high = math.nextafter(high, 0.0)
        else:
            low = math.nextafter(low, math.inf)
    # A log-uniform distribution does not depend on the base; skopt wants one above 1.
    return RealAxis(p.name, low, high, p.base if p.base > 1 else 1.0 / p.base)


def axis_for(p: Parameter) -> Axis:
    """The axis of one range; ``UnsupportedError`` for a ``ParameterSet`` (or an unknown type)."""
    if isinstance(p, UniformParameterRange):
        if p.step_size is not None:
            return _grid_axis(p.name, p.points())
        high = p.max_value if p.include_max_value else math.nextafter(p.max_value, -math.inf)
        return RealAxis(p.name, p.min_value, high)
    if isinstance(p, LogUniformParameterRange):
        if p.step_size is not None:
            return _grid_axis(p.name, p.points())
        return _log_axis(p)
    if isinstance(p, UniformIntegerParameterRange):
        if p.step_size == 1:
            high = p.max_value if p.include_max_value else p.max_value - 1
            if high == p.min_value:
                return ConstantAxis(p.name, p.min_value)
            return IntegerAxis(p.name, p.min_value, high)
        return _grid_axis(p.name, p.points())
    if isinstance(p, DiscreteParameterRange):
        if len(p.values) == 1:
            return ConstantAxis(p.name, p.values[0])
        return ChoiceAxis(p.name, tuple(p.values))
    label = p.name or ", ".join(p.names)
    raise UnsupportedError(
        f"strategy 'skopt' cannot search {type(p).__name__} {label!r}: skopt has no conditional spaces; "
        "split the study per combination or use the 'optuna' or 'random' strategy"
    )


def build_axes(space: SearchSpace) -> list[Axis]:
    """One axis per range, in the order of the space."""
    return [axis_for(p) for p in space.parameters]


def to_params(axes: Sequence[Axis], point: Sequence[Any]) -> dict[str, Any]:
    """Trial parameters from a skopt point (which holds coordinates of the searched axes only)."""
    out: dict[str, Any] = {}
    it = iter(point)
    for axis in axes:
        out[axis.name] = axis.value(None if axis.is_constant else next(it))
    return out


def to_point(axes: Sequence[Axis], params: Mapping[str, Any]) -> list[Any] | None:
    """The skopt point of stored parameters, or ``None`` when any value is missing or out of range."""
    point: list[Any] = []
    for axis in axes:
        if axis.name not in params:
            return None
        c = axis.coordinate(params[axis.name])
        if c is None:
            return None
        if not axis.is_constant:
            point.append(c)
    return point
