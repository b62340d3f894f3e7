"""Hyperband arithmetic: rung budgets and bracket shapes (pure Python, no heavy imports).

The schedule is hpbandster's (Li et al.'s Hyperband), computed here with integer-safe rounding
because hpbandster's own float arithmetic drops configurations (``int(81 * 3**-3) == 2``) and
miscounts the number of rungs when ``log(max/min)/log(eta)`` lands a hair below an integer.
"""

from __future__ import annotations

import math

import attrs

__all__ = ["Bracket", "bracket", "brackets_per_cycle", "cycle", "rung_budgets"]

_EPS = 1e-9


def rung_budgets(eta: float, min_budget: int, max_budget: int) -> tuple[int, ...]:
    """The rung budgets, ascending: ``max_budget * eta**-k`` rounded to whole iterations.

    There are ``s_max + 1`` of them with ``s_max = floor(log_eta(max / min))``; the smallest is
    never below ``min_budget`` and the largest is always ``max_budget``.
    """
    s_max = math.floor(math.log(max_budget / min_budget) / math.log(eta) + _EPS)
    out: list[int] = []
    for k in range(s_max, -1, -1):
        b = max(min_budget, round(max_budget * eta ** (-k)))
        if not out or b > out[-1]:
            out.append(b)
    return tuple(out)


@attrs.frozen
class Bracket:
    """One successive-halving run: ``configs[i]`` configurations at ``budgets[i]``, per rung."""

    index: int
    configs: tuple[int, ...]
    budgets: tuple[int, ...]

    @property
    def jobs(self) -> int:
        """Jobs this bracket launches: every rung run is a job (promoted configs run again)."""
        return sum(self.configs)

    @property
    def iterations(self) -> int:
        """Total iterations of the objective this bracket spends (the sum of its jobs' budgets)."""
        return sum(n * b for n, b in zip(self.configs, self.budgets))


def brackets_per_cycle(eta: float, min_budget: int, max_budget: int) -> int:
    return len(rung_budgets(eta, min_budget, max_budget))


def bracket(eta: float, min_budget: int, max_budget: int, index: int, *, deepest_only: bool = False) -> Bracket:
    """Bracket number ``index`` of the endless Hyperband schedule.

    Brackets cycle from the deepest (most configurations, smallest first budget) to the
    shallowest (few configurations, all at ``max_budget``). ``deepest_only`` repeats the deepest
    bracket forever (plain successive halving).
    """
    budgets = rung_budgets(eta, min_budget, max_budget)
    n_rungs = len(budgets)
    s = n_rungs - 1 if deepest_only else n_rungs - 1 - (index % n_rungs)
    return _shape(eta, budgets, s, index)


def _shape(eta: float, budgets: tuple[int, ...], s: int, index: int) -> Bracket:
    n_rungs = len(budgets)
    n0 = int(math.floor(n_rungs / (s + 1)) * eta**s + _EPS)
    configs = tuple(max(int(n0 * eta ** (-i) + _EPS), 1) for i in range(s + 1))
    return Bracket(index, configs, budgets[n_rungs - s - 1 :])


def bracket_from_budget(eta: float, min_budget: int, max_budget: int, first_budget: int, index: int) -> Bracket:
    """The Hyperband bracket whose first rung runs at ``first_budget`` (a resumed rung)."""
    budgets = rung_budgets(eta, min_budget, max_budget)
    s = len(budgets) - 1 - budgets.index(first_budget)
    return _shape(eta, budgets, s, index)


def cycle(eta: float, min_budget: int, max_budget: int, *, deepest_only: bool = False) -> list[Bracket]:
    """One full cycle of brackets (after it the schedule repeats)."""
    n = 1 if deepest_only else brackets_per_cycle(eta, min_budget, max_budget)
    return [bracket(eta, min_budget, max_budget, i, deepest_only=deepest_only) for i in range(n)]
