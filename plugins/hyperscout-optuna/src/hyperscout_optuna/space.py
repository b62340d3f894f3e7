"""How hyperscout's ranges become Optuna distributions, and how Optuna's values become job values.

The job always receives a value its range can produce (``range.contains(value)`` holds):

* ``UniformParameterRange``: ``FloatDistribution(min, max)``; without ``include_max_value`` the
  upper bound is the float just below ``max_value``. Stepped: ``FloatDistribution(step=...)`` when
  Optuna's grid is exactly the range's :meth:`points`, and Optuna's value is snapped to that
  point (``0.30000000000000004`` becomes ``0.3``); otherwise (an off-grid ``max_value`` that is
  included) a categorical choice over :meth:`points`.
* ``LogUniformParameterRange``: ``FloatDistribution(base**min, base**max, log=True)``; stepped: a
  categorical choice over :meth:`points`.
* ``UniformIntegerParameterRange``: ``IntDistribution(step=...)`` when the points form one step
  grid, else a categorical choice over :meth:`points`.
* ``DiscreteParameterRange``: ``CategoricalDistribution(values)``; values Optuna cannot hold
  (lists, dicts, ``1`` next to ``True``, duplicates) are chosen by index instead.
* ``ParameterSet``: a categorical choice of the combination's index (named ``ParameterSet[k]``),
  then the ranges of the chosen combination, suggested under their own key names: Optuna's
  conditional parameters. A key whose range differs between combinations gets one Optuna name per
  combination (``key@i``) so that Optuna never sees two distributions under one name.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from hyperscout.params import (
    DiscreteParameterRange,
    LogUniformParameterRange,
    Parameter,
    ParameterSet,
    SearchSpace,
    UniformIntegerParameterRange,
    UniformParameterRange,
)

if TYPE_CHECKING:
    import optuna
    from optuna.distributions import BaseDistribution

__all__ = ["Leaf", "OptunaSpace", "SetNode"]

_PRIMITIVE = (type(None), bool, int, float, str)
_TOL = 1e-9


def _canon(value: Any) -> str:
    """A comparison key that keeps ``1``, ``1.0`` and ``True`` apart and equates lists and tuples."""
    return json.dumps(value, sort_keys=True, default=str)


def _close(a: float, b: float, scale: float = 1.0) -> bool:
    return abs(a - b) <= _TOL * max(1.0, abs(a), abs(b), abs(scale))


@attrs.frozen
class Leaf:
    """One Optuna parameter standing for one range.

    ``kind`` is ``float`` (continuous), ``grid`` (stepped float, snapped to ``points``), ``int``,
    ``choice`` (categorical over the values themselves) or ``index`` (categorical over positions
    in ``points``).
    """

    key: str
    name: str
    distribution: BaseDistribution
    kind: str
    points: tuple[Any, ...] = ()

    def suggest(self, trial: optuna.Trial) -> Any:
        d: Any = self.distribution
        if self.kind in ("float", "grid"):
            return self.decode(trial.suggest_float(self.name, d.low, d.high, step=d.step, log=d.log))
        if self.kind == "int":
            return self.decode(trial.suggest_int(self.name, d.low, d.high, step=d.step))
        return self.decode(trial.suggest_categorical(self.name, d.choices))

    def decode(self, value: Any) -> Any:
        """Optuna's value -> the value the job receives."""
        if self.kind == "float":
            return float(value)
        if self.kind == "grid":
            d: Any = self.distribution
            i = round((float(value) - d.low) / d.step)
            return self.points[min(max(i, 0), len(self.points) - 1)]
        if self.kind == "int":
            return int(value)
        if self.kind == "index":
            return self.points[int(value)]
        return value

    def encode(self, value: Any) -> Any:
        """The job's value -> Optuna's value; ValueError when the range cannot produce it."""
        d: Any = self.distribution
        if self.kind == "float":
            x = float(value)
            if not (d.low - _TOL * max(1.0, abs(d.low)) <= x <= d.high + _TOL * max(1.0, abs(d.high))):
                raise ValueError(f"{self.key}={value!r} is outside [{d.low}, {d.high}]")
            return min(max(x, d.low), d.high)
        if self.kind == "grid":
            x = float(value)
            for p in self.points:
                if _close(p, x, d.step):
                    return p
            raise ValueError(f"{self.key}={value!r} is not a grid point")
        if self.kind == "int":
            x = float(value)
            if x != int(x) or int(x) not in range(d.low, d.high + 1, d.step):
                raise ValueError(f"{self.key}={value!r} is not in the integer range")
            return int(x)
        key = _canon(value)
        for i, p in enumerate(self.points):
            if _canon(p) == key:
                return i if self.kind == "index" else p
        raise ValueError(f"{self.key}={value!r} is not one of the values")


@attrs.frozen
class SetNode:
    """A ``ParameterSet``: the combination index ``name``, then the chosen combination's entries.

    ``combos[i]`` lists ``(key, fixed value or Leaf)`` in declaration order.
    """

    name: str
    combos: tuple[tuple[tuple[str, Any], ...], ...]

    @property
    def keys(self) -> frozenset[str]:
        return frozenset(k for combo in self.combos for k, _ in combo)

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        i = trial.suggest_categorical(self.name, tuple(range(len(self.combos))))
        return {k: v.suggest(trial) if isinstance(v, Leaf) else v for k, v in self.combos[int(i)]}  # type: ignore[arg-type]

    def encode(self, params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, BaseDistribution]]:
        from optuna.distributions import CategoricalDistribution

        present = {k for k in self.keys if k in params}
        for i, combo in enumerate(self.combos):
            if present != {k for k, _ in combo}:
                continue
            values: dict[str, Any] = {self.name: i}
            dists: dict[str, BaseDistribution] = {self.name: CategoricalDistribution(tuple(range(len(self.combos))))}
            try:
                for k, v in combo:
                    if isinstance(v, Leaf):
                        values[v.name] = v.encode(params[k])
                        dists[v.name] = v.distribution
                    elif _canon(v) != _canon(params[k]):
                        raise ValueError(k)
            except (ValueError, TypeError):
                continue
            return values, dists
        raise ValueError(f"{sorted(present)} match no combination of the ParameterSet")


def _inward(end: float, toward: float, p: Parameter) -> float:
    """The float nearest ``end`` (moving toward ``toward``) that the range accepts: an excluded
    ``max_value`` becomes the closest value the range can still produce."""
    h = math.nextafter(end, toward)
    for _ in range(10_000):
        if p.contains(h):
            return h
        h = math.nextafter(h, toward)
    raise ValueError(f"parameter {p.name!r}: no float next to {end!r} is inside the range")  # pragma: no cover


def _choice(key: str, name: str, values: Sequence[Any]) -> Leaf:
    from optuna.distributions import CategoricalDistribution

    values = tuple(values)
    safe = (
        all(type(v) in _PRIMITIVE for v in values)
        and not any(isinstance(v, float) and math.isnan(v) for v in values)
        and len(set(values)) == len(values)
    )
    if safe:
        return Leaf(key, name, CategoricalDistribution(values), "choice", values)
    return Leaf(key, name, CategoricalDistribution(tuple(range(len(values)))), "index", values)


def _float_grid(points: Sequence[float], step: float) -> Any:
    """``FloatDistribution(step=...)`` if Optuna's grid is exactly ``points``, else None."""
    from optuna.distributions import FloatDistribution

    if len(points) < 2:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna warns when it moves ``high`` onto its grid
        d = FloatDistribution(points[0], points[-1], step=step)
    n = round((d.high - d.low) / step) + 1
    if n != len(points) or not _close(d.high, points[-1], step):
        return None
    if not all(_close(d.low + i * step, p, step) for i, p in enumerate(points)):
        return None
    return d


def leaf_for(p: Parameter, name: str) -> Leaf:
    """Map one (non-set) range to an Optuna parameter called ``name``."""
    from optuna.distributions import FloatDistribution, IntDistribution

    key = p.name
    assert key is not None
    if isinstance(p, UniformParameterRange):
        if p.step_size is None:
            high = p.max_value if p.include_max_value else _inward(p.max_value, p.min_value, p)
            return Leaf(key, name, FloatDistribution(p.min_value, high), "float")
        pts = p.points()
        grid = _float_grid(pts, p.step_size)
        if grid is not None:
            return Leaf(key, name, grid, "grid", tuple(pts))
        return _choice(key, name, pts)
    if isinstance(p, LogUniformParameterRange):
        if p.step_size is None:
            # base < 1 turns the range around: base**max_value is then the smallest value
            at_min, at_max = p.low, p.high
            if not p.include_max_value:
                at_max = _inward(at_max, at_min, p)
            low, high = min(at_min, at_max), max(at_min, at_max)
            return Leaf(key, name, FloatDistribution(low, high, log=True), "float")
        return _choice(key, name, p.points())
    if isinstance(p, UniformIntegerParameterRange):
        pts = p.points()
        if len(pts) >= 2 and pts == list(range(pts[0], pts[-1] + 1, p.step_size)):
            return Leaf(key, name, IntDistribution(pts[0], pts[-1], step=p.step_size), "int")
        return _choice(key, name, pts)
    if isinstance(p, DiscreteParameterRange):
        return _choice(key, name, p.values)
    raise TypeError(f"parameter {key!r}: {type(p).__name__} has no Optuna mapping")  # pragma: no cover


def _fresh(name: str, taken: set[str]) -> str:
    while name in taken:
        name += "_"
    taken.add(name)
    return name


class OptunaSpace:
    """A whole search space as Optuna parameters, in declaration order (which seeds rely on)."""

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        taken = set(space.names)
        self.nodes: list[Leaf | SetNode] = []
        n_sets = 0
        for p in space.parameters:
            if isinstance(p, ParameterSet):
                self.nodes.append(self._set_node(p, _fresh(f"ParameterSet[{n_sets}]", taken), taken))
                n_sets += 1
            else:
                assert p.name is not None
                self.nodes.append(leaf_for(p, p.name))

    @staticmethod
    def _set_node(p: ParameterSet, name: str, taken: set[str]) -> SetNode:
        # One Optuna name per key when its range is the same in every combination that has it;
        # otherwise one per combination, so that Optuna's per-name distribution stays fixed.
        ranges: dict[str, list[Parameter]] = {}
        for combo in p.parameter_combinations:
            for k, v in combo.items():
                if isinstance(v, Parameter):
                    ranges.setdefault(k, []).append(v)
        shared = {k for k, rs in ranges.items() if all(r == rs[0] for r in rs)}
        for k in shared:
            taken.add(k)
        combos = []
        for i, combo in enumerate(p.parameter_combinations):
            entries: list[tuple[str, Any]] = []
            for k, v in combo.items():
                if isinstance(v, Parameter):
                    opt_name = k if k in shared else _fresh(f"{k}@{i}", taken)
                    entries.append((k, leaf_for(v, opt_name)))
                else:
                    entries.append((k, v))
            combos.append(tuple(entries))
        return SetNode(name, tuple(combos))

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        """Suggest every parameter on ``trial``; returns the job's parameters."""
        params: dict[str, Any] = {}
        for node in self.nodes:
            if isinstance(node, SetNode):
                params.update(node.suggest(trial))
            else:
                params[node.key] = node.suggest(trial)
        return params

    def encode(self, params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, BaseDistribution]]:
        """A job's parameters as Optuna ``(params, distributions)``; ValueError if outside the space."""
        values: dict[str, Any] = {}
        dists: dict[str, BaseDistribution] = {}
        for node in self.nodes:
            if isinstance(node, SetNode):
                v, d = node.encode(params)
                values.update(v)
                dists.update(d)
            else:
                if node.key not in params:
                    raise ValueError(f"parameter {node.key!r} is missing")
                values[node.name] = node.encode(params[node.key])
                dists[node.name] = node.distribution
        return values, dists
