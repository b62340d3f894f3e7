"""Grid search: every combination of the ranges' values."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from hyperscout import EXHAUSTED, SearchSpace, SearchStrategy, StudySettings, Suggestion, TrialRecord, TrialResult
from hyperscout.errors import UnsupportedError
from hyperscout.objective import ObjectiveSet
from hyperscout.params import config_key
from hyperscout.strategy import Signal

__all__ = ["GridSearch"]


class GridSearch(SearchStrategy):
    """Every combination, in this order: parameters as declared, the first varying slowest and
    the last fastest (like nested loops), each range's values ascending (discrete: as listed).

    A continuous range without ``step_size`` has no grid: that is an error before the study starts,
    not 101 invented points as in ClearML. ``shuffle=True`` visits the same grid in a seeded random
    order (useful with ``total_max_jobs`` smaller than the grid).
    """

    name = "grid"
    learns_from_results = False
    supports_multi_objective = True

    def __init__(
        self, space: SearchSpace, objectives: ObjectiveSet, settings: StudySettings, *, shuffle: bool = False
    ) -> None:
        super().__init__(space, objectives, settings)
        for p in space.parameters:
            if not p.is_finite:
                raise UnsupportedError(
                    f"strategy 'grid' cannot enumerate continuous parameter {p.name or p.names!r}; "
                    "give it a step_size, or use a DiscreteParameterRange"
                )
        self.shuffle = shuffle
        self._done: set[str] = set()
        self._iter: Iterator[dict] | None = None

    def _configs(self) -> Iterator[dict]:
        if not self.shuffle:
            return self.space.grid()
        grid = list(self.space.grid())
        self.rng.shuffle(grid)
        return iter(grid)

    def ask(self, trial_id: str) -> Suggestion | Signal:
        if self._iter is None:
            self._iter = self._configs()
        for params in self._iter:
            key = config_key(params)
            if key not in self._done:
                self._done.add(key)
                return Suggestion(params)
        return EXHAUSTED

    def tell(self, trial_id: str, result: TrialResult) -> None:
        """Grid search learns nothing from results."""

    def restore(self, records: Sequence[TrialRecord]) -> None:
        for r in records:
            self._done.add(config_key(r.params))
