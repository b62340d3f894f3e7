from __future__ import annotations

import random

import pytest

from hyperscout.errors import ObjectiveError
from hyperscout.objective import Objective, ObjectiveSet, non_dominated_fronts, pareto_front, rank


def test_last_versus_global_value() -> None:
    history = [(0, 0.5), (1, 0.9), (2, 0.7)]
    assert Objective("v", "acc", "max").pick(history) == (0.7, 2)
    assert Objective("v", "acc", "max_global").pick(history) == (0.9, 1)
    assert Objective("v", "loss", "min_global").pick(history) == (0.5, 0)
    assert Objective("v", "loss", "min").pick([]) is None
    assert Objective("v", "loss", "min").pick([(0, float("nan")), (1, 2.0)]) == (2.0, 1)


def test_build_matches_clearml_shapes() -> None:
    one = ObjectiveSet.build("val", "loss", "min")
    assert len(one) == 1 and not one.is_multi
    two = ObjectiveSet.build(["val", "time"], ["acc", "sec"], ["max", "min"])
    assert [o.direction for o in two] == ["maximize", "minimize"]
    with pytest.raises(ObjectiveError, match="differ in length"):
        ObjectiveSet.build(["a", "b"], ["x"], ["min", "min"])
    with pytest.raises(ObjectiveError, match="both be strings or both lists"):
        ObjectiveSet.build("a", ["x"], "min")
    with pytest.raises(ObjectiveError, match="sign 'maximum' is not one of"):
        Objective("a", "b", "maximum")


def test_rank_single_objective_puts_missing_values_last() -> None:
    obj = ObjectiveSet.build("v", "loss", "min")
    items = ["a", "b", "c", "d"]
    values = {"a": [3.0], "b": None, "c": [1.0], "d": [2.0]}
    assert rank(items, values.get, obj) == ["c", "d", "a", "b"]
    assert rank(items, values.get, ObjectiveSet.build("v", "acc", "max")) == ["a", "d", "c", "b"]


def test_true_non_dominated_sort_with_trade_offs() -> None:
    # maximize both; a,b,c trade off (front 1), d is dominated by b only, e by everyone
    obj = ObjectiveSet.build(["x", "y"], ["s", "s"], ["max", "max"])
    pts = {"a": [1.0, 5.0], "b": [3.0, 3.0], "c": [5.0, 1.0], "d": [2.0, 2.0], "e": [0.0, 0.0]}
    ranked = rank(list(pts), pts.get, obj)
    assert set(ranked[:3]) == {"a", "b", "c"} and ranked[3:] == ["d", "e"]
    assert set(pareto_front(list(pts), pts.get, obj)) == {"a", "b", "c"}


def test_fronts_match_a_brute_force_definition() -> None:
    rng = random.Random(3)
    pts = [(rng.random(), rng.random(), rng.random()) for _ in range(60)]
    fronts = non_dominated_fronts(pts)
    assert sorted(i for f in fronts for i in f) == list(range(60))

    def dominates(a, b):  # type: ignore[no-untyped-def]
        return all(x >= y for x, y in zip(a, b)) and a != b

    first = {i for i in range(60) if not any(dominates(pts[j], pts[i]) for j in range(60))}
    assert set(fronts[0]) == first
    for k in range(1, len(fronts)):  # everything in front k is dominated by something in front k-1
        assert all(any(dominates(pts[j], pts[i]) for j in fronts[k - 1]) for i in fronts[k])


def _fronts_pairwise(points: list[tuple[float, ...]]) -> list[list[int]]:
    """The textbook O(n^2) sort (Deb et al.): the reference the fast one must match."""
    from hyperscout.objective import _dominates

    n = len(points)
    beaten: list[list[int]] = [[] for _ in range(n)]
    count = [0] * n
    for i in range(n):
        for j in range(n):
            if i != j and _dominates(points[i], points[j]):
                beaten[i].append(j)
                count[j] += 1
    fronts = [[i for i in range(n) if count[i] == 0]]
    while fronts[-1]:
        nxt = []
        for i in fronts[-1]:
            for j in beaten[i]:
                count[j] -= 1
                if count[j] == 0:
                    nxt.append(j)
        fronts.append(sorted(nxt))
    return [f for f in fronts if f]


def test_non_dominated_fronts_match_the_pairwise_sort_with_ties_and_duplicates() -> None:
    rng = random.Random(5)
    for _ in range(300):
        m = rng.choice([2, 2, 3, 4])
        points = [tuple(float(rng.randint(0, 4)) if rng.random() < 0.6 else rng.random() for _ in range(m))
                  for _ in range(rng.randint(0, 90))]
        assert non_dominated_fronts(points) == _fronts_pairwise(points), points
