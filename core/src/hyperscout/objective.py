"""Objectives: which reported scalar to optimize, in which direction, and how jobs rank.

``sign`` follows ClearML: ``min``/``max`` use the last reported value of the scalar,
``min_global``/``max_global`` the best value over the whole run. Several objectives rank by a
true non-dominated sort (successive Pareto fronts, crowding distance inside a front), unlike
ClearML's "dominates everyone" loop that gives up on genuine trade-offs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import attrs

from hyperscout.errors import ObjectiveError

__all__ = ["Objective", "ObjectiveSet", "non_dominated_fronts", "rank"]

SIGNS = ("min", "max", "min_global", "max_global")
T = TypeVar("T")


def _nonempty(label: str) -> Callable[[Any, Any, Any], None]:
    def check(_inst: Any, _attr: Any, value: Any) -> None:
        if not isinstance(value, str) or not value:
            raise ObjectiveError(f"objective {label} {value!r} must be a non-empty string")

    return check


def _sign(_inst: Any, _attr: Any, value: Any) -> None:
    if value not in SIGNS:
        raise ObjectiveError(f"objective sign {value!r} is not one of {', '.join(SIGNS)}")


@attrs.frozen
class Objective:
    """One scalar, named like ClearML's ``report_scalar(title, series, ...)``."""

    title: str = attrs.field(validator=_nonempty("title"))
    series: str = attrs.field(validator=_nonempty("series"))
    sign: str = attrs.field(default="min", validator=_sign)

    @property
    def key(self) -> str:
        """``title/series``, the label used in tables and exports."""
        return f"{self.title}/{self.series}"

    @property
    def maximize(self) -> bool:
        return self.sign.startswith("max")

    @property
    def direction(self) -> str:
        """``minimize`` or ``maximize``, as Optuna spells it."""
        return "maximize" if self.maximize else "minimize"

    @property
    def uses_best(self) -> bool:
        """True for ``*_global``: the best value over the run counts, not the last one."""
        return self.sign.endswith("_global")

    def better(self, a: float, b: float) -> bool:
        """Whether value ``a`` is strictly better than ``b``."""
        return a > b if self.maximize else a < b

    def normalized(self, value: float) -> float:
        """Higher is better, whatever the direction."""
        return value if self.maximize else -value

    def pick(self, history: Sequence[tuple[int, float]]) -> tuple[float, int] | None:
        """The objective value and its iteration from ``[(iteration, value), ...]`` in report order."""
        points = [(i, v) for i, v in history if v is not None and not math.isnan(v)]
        if not points:
            return None
        if not self.uses_best:
            i, v = points[-1]
            return v, i
        best_i, best_v = points[0]
        for i, v in points[1:]:
            if self.better(v, best_v):
                best_i, best_v = i, v
        return best_v, best_i


def _same_length(_inst: Any, _attr: Any, value: tuple[Objective, ...]) -> None:
    if not value:
        raise ObjectiveError("declare at least one objective (title, series, sign)")
    keys = [o.key for o in value]
    if len(set(keys)) != len(keys):
        raise ObjectiveError(f"objective {keys[0]!r} is listed twice; each title/series once")


@attrs.frozen
class ObjectiveSet:
    """One or several objectives; most code handles the list form only."""

    objectives: tuple[Objective, ...] = attrs.field(converter=tuple, validator=_same_length)

    @classmethod
    def build(
        cls,
        title: str | Sequence[str],
        series: str | Sequence[str],
        sign: str | Sequence[str] = "min",
    ) -> ObjectiveSet:
        """ClearML's call shape: three strings, or three lists of the same length."""
        if isinstance(title, str) and isinstance(series, str) and isinstance(sign, str):
            return cls((Objective(title, series, sign),))
        if isinstance(title, str) or isinstance(series, str):
            raise ObjectiveError(
                "objective_metric_title and objective_metric_series must both be strings or both lists"
            )
        titles, seriess = list(title), list(series)
        signs = [sign] * len(titles) if isinstance(sign, str) else list(sign)
        if not (len(titles) == len(seriess) == len(signs)):
            raise ObjectiveError(
                f"objective lists differ in length (titles {len(titles)}, series {len(seriess)}, signs {len(signs)}); "
                "give one title, series and sign per objective"
            )
        return cls(tuple(Objective(t, s, g) for t, s, g in zip(titles, seriess, signs)))

    @classmethod
    def of(cls, value: ObjectiveSet | Objective | Sequence[Objective]) -> ObjectiveSet:
        if isinstance(value, ObjectiveSet):
            return value
        if isinstance(value, Objective):
            return cls((value,))
        return cls(tuple(value))

    def __len__(self) -> int:
        return len(self.objectives)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.objectives)

    def __getitem__(self, i: int) -> Objective:
        return self.objectives[i]

    @property
    def primary(self) -> Objective:
        """The objective whose intermediate values feed pruning and iteration budgets."""
        return self.objectives[0]

    @property
    def is_multi(self) -> bool:
        return len(self.objectives) > 1

    def to_dicts(self) -> list[dict[str, str]]:
        return [attrs.asdict(o) for o in self.objectives]

    def normalized(self, values: Sequence[float]) -> tuple[float, ...]:
        return tuple(o.normalized(v) for o, v in zip(self.objectives, values))


def _dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """``a`` dominates ``b`` (both normalized: higher is better)."""
    return all(x >= y for x, y in zip(a, b)) and any(x > y for x, y in zip(a, b))


def non_dominated_fronts(points: Sequence[Sequence[float]]) -> list[list[int]]:
    """Non-dominated sorting of normalized points (higher is better): index lists, best front first,
    each in index order.

    Points are taken in decreasing lexicographic order, so a point's dominators are all placed
    before it, and each goes to the first front none of whose members dominates it (the
    efficient non-dominated sort of Zhang et al.). Two objectives: a front's member with the
    highest second value decides, and fronts are searched by bisection: O(n log n) (10,000 jobs
    in milliseconds instead of a minute for the pairwise sort).
    """
    n = len(points)
    if n == 0:
        return []
    order = sorted(range(n), key=lambda i: tuple(points[i]), reverse=True)
    fronts: list[list[int]] = []
    if len(points[0]) == 2:
        tops: list[tuple[float, float]] = []  # per front: its member with the highest second value
        for i in order:
            x, y = points[i]
            lo, hi = 0, len(fronts)
            while lo < hi:  # the first front that does not dominate (i): fronts before it all do
                mid = (lo + hi) // 2
                tx, ty = tops[mid]
                if ty > y or (ty == y and tx > x):
                    lo = mid + 1
                else:
                    hi = mid
            if lo == len(fronts):
                fronts.append([i])
                tops.append((x, y))
            else:
                fronts[lo].append(i)
                if y > tops[lo][1]:
                    tops[lo] = (x, y)
    else:
        for i in order:
            p = points[i]
            for front in fronts:
                if not any(_dominates(points[q], p) for q in reversed(front)):
                    front.append(i)
                    break
            else:
                fronts.append([i])
    return [sorted(f) for f in fronts]


def _crowding(points: Sequence[Sequence[float]], front: list[int]) -> dict[int, float]:
    dist = dict.fromkeys(front, 0.0)
    if len(front) <= 2:
        return dict.fromkeys(front, math.inf)
    for m in range(len(points[front[0]])):
        ordered = sorted(front, key=lambda i: points[i][m])
        lo, hi = points[ordered[0]][m], points[ordered[-1]][m]
        dist[ordered[0]] = dist[ordered[-1]] = math.inf
        if hi == lo:
            continue
        for k in range(1, len(ordered) - 1):
            dist[ordered[k]] += (points[ordered[k + 1]][m] - points[ordered[k - 1]][m]) / (hi - lo)
    return dist


def rank(items: Sequence[T], values: Callable[[T], Sequence[float] | None], objectives: ObjectiveSet) -> list[T]:
    """Order ``items`` best first. Items without values (failed jobs) come last, in input order.

    One objective: by value. Several: by Pareto front, then by crowding distance (spread first),
    then by input order, so the result is deterministic.
    """
    scored = [(i, values(it)) for i, it in enumerate(items)]
    good = [(i, objectives.normalized(v)) for i, v in scored if v is not None]
    bad = [items[i] for i, v in scored if v is None]
    if not objectives.is_multi:
        good.sort(key=lambda p: (-p[1][0], p[0]))
        return [items[i] for i, _ in good] + bad
    pts = [p for _, p in good]
    out: list[T] = []
    for front in non_dominated_fronts(pts):
        crowd = _crowding(pts, front)
        for k in sorted(front, key=lambda k: (-crowd[k], good[k][0])):
            out.append(items[good[k][0]])
    return out + bad


def pareto_front(items: Sequence[T], values: Callable[[T], Sequence[float] | None], objectives: ObjectiveSet) -> list[T]:
    """The non-dominated items only."""
    good = [(it, objectives.normalized(v)) for it in items if (v := values(it)) is not None]
    if not good:
        return []
    fronts = non_dominated_fronts([p for _, p in good])
    return [good[i][0] for i in fronts[0]]
