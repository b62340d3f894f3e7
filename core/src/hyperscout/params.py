"""Parameter ranges: the search space, with ClearML's class names and arguments.

Each range is a frozen attrs value, validated when built, so a bad range fails before any job
starts with a message naming the parameter. ``to_dict``/``from_dict`` speak the JSON form that
``clearml-param-search --params-search`` accepts, so existing specs carry over.

Differences from ClearML, on purpose:

* a stepped range samples exactly the points its grid enumerates, ``max_value`` included when
  ``include_max_value`` is true (ClearML never samples the max of a stepped float range);
* a continuous range without ``step_size`` has no grid: :meth:`Parameter.to_list` raises instead
  of inventing 101 points;
* a range nested in a :class:`ParameterSet` takes the dict key as its name;
* sampling takes an explicit ``random.Random`` so that each strategy is seeded on its own.
"""

from __future__ import annotations

import abc
import itertools
import json
import math
import random
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

import attrs

from hyperscout.errors import ParameterError

__all__ = [
    "DiscreteParameterRange",
    "LogUniformParameterRange",
    "Parameter",
    "ParameterSet",
    "SearchSpace",
    "UniformIntegerParameterRange",
    "UniformParameterRange",
    "config_key",
]

_EPS = 1e-9
_default_rng = random.Random(1337)


def _clean(x: float) -> float:
    """Round away binary noise (0.1 * 3 -> 0.3) so grid points print and compare cleanly."""
    return float(f"{x:.12g}")


def _number(name: str | None, field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise ParameterError(
                f"parameter {name!r}: {field}={value!r} is not a number; give a numeric {field}"
            ) from None
    if not math.isfinite(value):
        raise ParameterError(f"parameter {name!r}: {field}={value!r} must be finite")
    return float(value)


def _check_name(name: Any) -> None:
    if not isinstance(name, str) or not name.strip():
        raise ParameterError(f"parameter name {name!r} must be a non-empty string")


def _stepped_points(name: str | None, lo: float, hi: float, step: float, include_max: bool) -> list[float]:
    """Grid points ``lo, lo+step, ...`` up to ``hi``; ``hi`` itself iff ``include_max``."""
    n = math.floor((hi - lo) / step + _EPS)
    points = [lo + i * step for i in range(n + 1)]
    on_grid = abs(points[-1] - hi) <= _EPS * max(1.0, abs(hi), abs(step))
    if on_grid:
        points[-1] = hi
        if not include_max:
            points.pop()
    elif include_max:
        points.append(hi)
    if len(points) > 10_000_000:
        raise ParameterError(f"parameter {name!r}: step_size={step} makes {len(points)} points; use a larger step")
    return [_clean(p) for p in points]


class Parameter(abc.ABC):
    """Base of every range. ``name`` is the name the trial sees (``--name value``)."""

    type_name: ClassVar[str] = "Parameter"
    name: str | None

    @property
    def names(self) -> tuple[str, ...]:
        """The trial-side names this range sets (several for a :class:`ParameterSet`)."""
        return (self.name,) if self.name else ()

    @property
    def is_finite(self) -> bool:
        """True when :meth:`to_list` can enumerate every value (a grid exists)."""
        return True

    @abc.abstractmethod
    def get_value(self, rng: random.Random | None = None) -> dict[str, Any]:
        """One random sample as ``{name: value}``."""

    @abc.abstractmethod
    def to_list(self) -> list[dict[str, Any]]:
        """Every value as ``[{name: value}, ...]``, in ascending/declared order."""

    @abc.abstractmethod
    def contains(self, value: Any) -> bool:
        """Whether ``value`` is a value this range can produce (used to check restored trials)."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of ``clearml-param-search --params-search``."""
        d: dict[str, Any] = {"type": self.type_name}
        for f in attrs.fields(type(self)):  # type: ignore[arg-type]
            v = getattr(self, f.name)
            if f.name == "parameter_combinations":
                v = [{k: (x.to_dict() if isinstance(x, Parameter) else x) for k, x in c.items()} for c in v]
            elif isinstance(v, tuple):
                v = list(v)
            d[f.name] = v
        return d

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> Parameter:
        """Build a range from its JSON form; unknown types or keys are errors, never dropped."""
        return parameter_from_dict(data)


class _FloatRange(Parameter):
    """Shared logic of the two float ranges; not a public type (so that a plugin testing
    ``isinstance(p, UniformParameterRange)`` never mistakes a log range for a linear one)."""

    name: str
    min_value: float
    max_value: float
    step_size: float | None
    include_max_value: bool

    def __attrs_post_init__(self) -> None:
        _check_name(self.name)
        lo = _number(self.name, "min_value", self.min_value)
        hi = _number(self.name, "max_value", self.max_value)
        if not lo < hi:
            raise ParameterError(
                f"parameter {self.name!r}: min_value={lo:g} must be below max_value={hi:g}; "
                "swap them, or use DiscreteParameterRange for a fixed value"
            )
        object.__setattr__(self, "min_value", lo)
        object.__setattr__(self, "max_value", hi)
        if self.step_size is not None:
            step = _number(self.name, "step_size", self.step_size)
            if step <= 0:
                raise ParameterError(f"parameter {self.name!r}: step_size={step:g} must be > 0")
            object.__setattr__(self, "step_size", step)
        object.__setattr__(self, "include_max_value", bool(self.include_max_value))

    @property
    def is_finite(self) -> bool:
        return self.step_size is not None

    def points(self) -> list[float]:
        """The grid of a stepped range (raises for a continuous one)."""
        if self.step_size is None:
            raise ParameterError(
                f"parameter {self.name!r} is continuous (no step_size) and has no grid; "
                "give it a step_size or use DiscreteParameterRange"
            )
        return _stepped_points(self.name, self.min_value, self.max_value, self.step_size, self.include_max_value)

    def _sample(self, rng: random.Random) -> float:
        if self.step_size is not None:
            return rng.choice(self.points())
        while True:
            v = rng.uniform(self.min_value, self.max_value)
            if self.include_max_value or v < self.max_value:
                return v

    def get_value(self, rng: random.Random | None = None) -> dict[str, Any]:
        return {self.name: self._sample(rng or _default_rng)}

    def to_list(self) -> list[dict[str, Any]]:
        return [{self.name: v} for v in self.points()]

    def contains(self, value: Any) -> bool:
        try:
            v = float(value)
        except (TypeError, ValueError):
            return False
        top_ok = v <= self.max_value + _EPS if self.include_max_value else v < self.max_value
        return self.min_value - _EPS <= v and top_ok


@attrs.frozen
class UniformParameterRange(_FloatRange):
    """A float in ``[min_value, max_value]``; with ``step_size``, on the grid ``min + k*step``."""

    type_name: ClassVar[str] = "UniformParameterRange"
    name: str
    min_value: float
    max_value: float
    step_size: float | None = None
    include_max_value: bool = True


@attrs.frozen
class LogUniformParameterRange(_FloatRange):
    """``base ** x`` with the exponent ``x`` in ``[min_value, max_value]`` (as in ClearML)."""

    type_name: ClassVar[str] = "LogUniformParameterRange"
    name: str
    min_value: float
    max_value: float
    base: float = 10.0
    step_size: float | None = None
    include_max_value: bool = True

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        base = _number(self.name, "base", self.base)
        if base <= 0 or base == 1:
            raise ParameterError(f"parameter {self.name!r}: base={base:g} must be > 0 and != 1")
        object.__setattr__(self, "base", base)

    @property
    def low(self) -> float:
        """The smallest value, ``base ** min_value``."""
        return _clean(self.base**self.min_value)

    @property
    def high(self) -> float:
        """The largest value, ``base ** max_value``."""
        return _clean(self.base**self.max_value)

    def get_value(self, rng: random.Random | None = None) -> dict[str, Any]:
        x = self._sample(rng or _default_rng)
        return {self.name: x if self.step_size is not None else self.base**x}

    def exponents(self) -> list[float]:
        """The exponent grid of a stepped range."""
        return super().points()

    def points(self) -> list[float]:
        return [_clean(self.base**x) for x in self.exponents()]

    def contains(self, value: Any) -> bool:
        try:
            v = float(value)
        except (TypeError, ValueError):
            return False
        if v <= 0:
            return False
        return super().contains(math.log(v) / math.log(self.base))


@attrs.frozen
class UniformIntegerParameterRange(Parameter):
    """An integer in ``[min_value, max_value]`` on the grid ``min + k*step_size``.

    As in ClearML, ``max_value`` is part of the range when ``include_max_value`` is true even if it
    is off the step grid; unlike ClearML, random sampling draws from exactly that set.
    """

    type_name: ClassVar[str] = "UniformIntegerParameterRange"
    name: str
    min_value: int
    max_value: int
    step_size: int = 1
    include_max_value: bool = True

    def __attrs_post_init__(self) -> None:
        _check_name(self.name)
        for f in ("min_value", "max_value", "step_size"):
            v = _number(self.name, f, getattr(self, f))
            if v != int(v):
                raise ParameterError(f"parameter {self.name!r}: {f}={v:g} must be an integer")
            object.__setattr__(self, f, int(v))
        if not self.min_value < self.max_value:
            raise ParameterError(
                f"parameter {self.name!r}: min_value={self.min_value} must be below max_value={self.max_value}; "
                "swap them, or use DiscreteParameterRange for a fixed value"
            )
        if self.step_size <= 0:
            raise ParameterError(f"parameter {self.name!r}: step_size={self.step_size} must be >= 1")
        object.__setattr__(self, "include_max_value", bool(self.include_max_value))

    def points(self) -> list[int]:
        """Every integer of the range, ascending."""
        pts = list(range(self.min_value, self.max_value, self.step_size))
        if self.include_max_value:
            pts.append(self.max_value)
        return pts

    def get_value(self, rng: random.Random | None = None) -> dict[str, Any]:
        return {self.name: (rng or _default_rng).choice(self.points())}

    def to_list(self) -> list[dict[str, Any]]:
        return [{self.name: v} for v in self.points()]

    def contains(self, value: Any) -> bool:
        try:
            v = float(value)
        except (TypeError, ValueError):
            return False
        return v == int(v) and int(v) in set(self.points())


def _tuple_of_values(value: Any) -> tuple[Any, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ParameterError(f"values={value!r} must be a list")
    return tuple(value)


@attrs.frozen
class DiscreteParameterRange(Parameter):
    """One of a list of values (numbers, strings, booleans), in the given order."""

    type_name: ClassVar[str] = "DiscreteParameterRange"
    name: str
    values: tuple[Any, ...] = attrs.field(default=(), converter=_tuple_of_values)

    def __attrs_post_init__(self) -> None:
        _check_name(self.name)
        if not self.values:
            raise ParameterError(f"parameter {self.name!r}: values is empty; list at least one value")

    def get_value(self, rng: random.Random | None = None) -> dict[str, Any]:
        return {self.name: (rng or _default_rng).choice(self.values)}

    def to_list(self) -> list[dict[str, Any]]:
        return [{self.name: v} for v in self.values]

    def contains(self, value: Any) -> bool:
        return value in self.values


def _combinations(value: Any) -> tuple[Mapping[str, Any], ...]:
    if isinstance(value, Mapping) or not isinstance(value, Sequence):
        raise ParameterError("ParameterSet: parameter_combinations must be a list of dicts")
    out = []
    for i, combo in enumerate(value):
        if not isinstance(combo, Mapping) or not combo:
            raise ParameterError(f"ParameterSet: combination #{i} must be a non-empty dict, got {combo!r}")
        fixed: dict[str, Any] = {}
        for key, v in combo.items():
            _check_name(key)
            if isinstance(v, Mapping) and "type" in v:
                v = parameter_from_dict({**v, "name": key})
            if isinstance(v, Parameter):
                if isinstance(v, ParameterSet):
                    raise ParameterError(f"ParameterSet: {key!r} cannot hold another ParameterSet")
                # The dict key names the value, whatever the nested range was called.
                v = attrs.evolve(v, name=key)  # type: ignore[misc]
            fixed[key] = v
        out.append(fixed)
    return tuple(out)


@attrs.frozen
class ParameterSet(Parameter):
    """Coupled parameters: one of several combinations, each a dict of fixed values or ranges."""

    type_name: ClassVar[str] = "ParameterSet"
    parameter_combinations: tuple[Mapping[str, Any], ...] = attrs.field(default=(), converter=_combinations)
    name: str | None = attrs.field(default=None, init=False)

    def __attrs_post_init__(self) -> None:
        if not self.parameter_combinations:
            raise ParameterError("ParameterSet: parameter_combinations is empty; list at least one combination")

    @property
    def names(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for combo in self.parameter_combinations:
            seen.update(dict.fromkeys(combo))
        return tuple(seen)

    @property
    def is_finite(self) -> bool:
        return all(not isinstance(v, Parameter) or v.is_finite for c in self.parameter_combinations for v in c.values())

    def get_value(self, rng: random.Random | None = None) -> dict[str, Any]:
        rng = rng or _default_rng
        combo = rng.choice(self.parameter_combinations)
        out: dict[str, Any] = {}
        for k, v in combo.items():
            out.update(v.get_value(rng) if isinstance(v, Parameter) else {k: v})
        return out

    def to_list(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for combo in self.parameter_combinations:
            options = [v.to_list() if isinstance(v, Parameter) else [{k: v}] for k, v in combo.items()]
            for parts in itertools.product(*options):
                merged: dict[str, Any] = {}
                for p in parts:
                    merged.update(p)
                out.append(merged)
        return out

    def contains(self, value: Any) -> bool:
        if not isinstance(value, Mapping):
            return False
        for combo in self.parameter_combinations:
            if set(combo) == set(value) and all(
                v.contains(value[k]) if isinstance(v, Parameter) else v == value[k] for k, v in combo.items()
            ):
                return True
        return False

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d.pop("name", None)
        return d


PARAMETER_TYPES: dict[str, type[Parameter]] = {
    cls.type_name: cls
    for cls in (
        UniformParameterRange,
        LogUniformParameterRange,
        UniformIntegerParameterRange,
        DiscreteParameterRange,
        ParameterSet,
    )
}

# ClearML's own to_dict() writes "include_max"; its CLI reads "include_max_value". Accept both.
_KEY_ALIASES = {"include_max": "include_max_value", "values": "values"}


def parameter_from_dict(data: Mapping[str, Any]) -> Parameter:
    """Build a range from its JSON/TOML form (see :meth:`Parameter.to_dict`)."""
    if not isinstance(data, Mapping):
        raise ParameterError(f"a parameter must be a JSON object with a 'type', got {data!r}")
    kind = data.get("type")
    label = data.get("name", "?")
    if kind not in PARAMETER_TYPES:
        raise ParameterError(
            f"parameter {label!r}: unknown type {kind!r}; use one of {', '.join(sorted(PARAMETER_TYPES))}"
        )
    cls = PARAMETER_TYPES[kind]
    kwargs = {_KEY_ALIASES.get(k, k): v for k, v in data.items() if k != "type"}
    if cls is ParameterSet and "values" in kwargs and "parameter_combinations" not in kwargs:
        kwargs["parameter_combinations"] = kwargs.pop("values")
    kwargs.pop("name", None) if cls is ParameterSet else None
    allowed = {f.name for f in attrs.fields(cls) if f.init}  # type: ignore[arg-type]
    unknown = sorted(set(kwargs) - allowed)
    if unknown:
        raise ParameterError(
            f"parameter {label!r}: unknown key {unknown[0]!r} for {kind}; allowed keys: {', '.join(sorted(allowed))}"
        )
    missing = [
        f.name for f in attrs.fields(cls) if f.init and f.default is attrs.NOTHING and f.name not in kwargs  # type: ignore[arg-type]
    ]
    if missing:
        raise ParameterError(f"parameter {label!r}: {kind} needs {missing[0]!r}")
    return cls(**kwargs)


@attrs.frozen
class SearchSpace:
    """An ordered collection of ranges whose trial-side names are unique."""

    parameters: tuple[Parameter, ...] = attrs.field(converter=tuple)

    def __attrs_post_init__(self) -> None:
        if not self.parameters:
            raise ParameterError("the search space is empty; declare at least one parameter")
        seen: set[str] = set()
        for p in self.parameters:
            if not isinstance(p, Parameter):
                raise ParameterError(f"{p!r} is not a parameter range; use the classes in hyperscout.params")
            for n in p.names:
                if n in seen:
                    raise ParameterError(f"parameter {n!r} is declared twice; give each parameter a unique name")
                seen.add(n)

    @classmethod
    def of(cls, parameters: SearchSpace | Sequence[Parameter | Mapping[str, Any]]) -> SearchSpace:
        """Accept a space, a list of ranges, or a list of their JSON dicts."""
        if isinstance(parameters, SearchSpace):
            return parameters
        if isinstance(parameters, (Parameter, Mapping)):
            parameters = [parameters]  # type: ignore[list-item]
        return cls(tuple(p if isinstance(p, Parameter) else parameter_from_dict(p) for p in parameters))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(n for p in self.parameters for n in p.names)

    @property
    def is_finite(self) -> bool:
        return all(p.is_finite for p in self.parameters)

    def size(self) -> int | None:
        """Number of distinct configurations, or None for a continuous space."""
        if not self.is_finite:
            return None
        return math.prod(len(p.to_list()) for p in self.parameters)

    def sample(self, rng: random.Random) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for p in self.parameters:
            out.update(p.get_value(rng))
        return out

    def grid(self) -> Iterator[dict[str, Any]]:
        """Every configuration; the first parameter varies slowest, the last fastest."""
        lists = [p.to_list() for p in self.parameters]
        for parts in itertools.product(*lists):
            merged: dict[str, Any] = {}
            for part in parts:
                merged.update(part)
            yield merged

    def to_dicts(self) -> list[dict[str, Any]]:
        return [p.to_dict() for p in self.parameters]

    def fingerprint(self) -> str:
        return json.dumps(self.to_dicts(), sort_keys=True, default=str)


def config_key(params: Mapping[str, Any]) -> str:
    """A canonical string for a configuration, used for de-duplication."""
    return json.dumps(params, sort_keys=True, default=str)
