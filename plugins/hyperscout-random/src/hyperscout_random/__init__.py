"""Random search: uniform samples of the search space, seeded and de-duplicated."""

from __future__ import annotations

from collections.abc import Sequence

from hyperscout import EXHAUSTED, SearchSpace, SearchStrategy, StudySettings, Suggestion, TrialRecord, TrialResult
from hyperscout.objective import ObjectiveSet
from hyperscout.params import config_key
from hyperscout.strategy import Signal

__all__ = ["RandomSearch"]


class RandomSearch(SearchStrategy):
    """Uniform random sampling (ClearML's ``RandomSearch``).

    A finite space (every range stepped or discrete) is covered without repeats and the strategy
    reports ``EXHAUSTED`` once every configuration was suggested, instead of ClearML's
    "42 duplicates in a row" guess. A continuous space never repeats in practice and never ends;
    ``total_max_jobs`` or a time limit ends the study.
    """

    name = "random"
    supports_multi_objective = True
    learns_from_results = False

    def __init__(
        self, space: SearchSpace, objectives: ObjectiveSet, settings: StudySettings, *, max_retries: int = 1000
    ) -> None:
        super().__init__(space, objectives, settings)
        self.max_retries = max_retries
        self._seen: set[str] = set()
        self._size = space.size()
        self._remaining: list[dict] | None = None

    def _draw_finite(self) -> dict | None:
        # For a small finite space, shuffle the whole grid once: exact coverage, no rejection loop.
        if self._remaining is None:
            grid = [c for c in self.space.grid() if config_key(c) not in self._seen]
            self.rng.shuffle(grid)
            self._remaining = grid
        while self._remaining:
            c = self._remaining.pop()
            if config_key(c) not in self._seen:
                return c
        return None

    def ask(self, trial_id: str) -> Suggestion | Signal:
        if self._size is not None and self._size <= 100_000:
            params = self._draw_finite()
        else:
            params = None
            for _ in range(self.max_retries):
                candidate = self.space.sample(self.rng)
                if config_key(candidate) not in self._seen:
                    params = candidate
                    break
        if params is None:
            return EXHAUSTED
        self._seen.add(config_key(params))
        return Suggestion(params)

    def tell(self, trial_id: str, result: TrialResult) -> None:
        """Random search learns nothing from results."""

    def restore(self, records: Sequence[TrialRecord]) -> None:
        # Every configuration already tried (or about to be re-run) is taken off the table, and
        # the RNG is advanced past them, so a resumed study does not repeat itself.
        for r in records:
            self._seen.add(config_key(r.params))
        self._remaining = None
        for _ in records:
            self.rng.random()
