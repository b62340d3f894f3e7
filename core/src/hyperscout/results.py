"""The one ranking function: ``top``, ``export``, the final table, ``get_top_experiments``, the best
so far and the completion callback all order jobs with :func:`ranked_jobs`.

Only jobs that completed with every objective take part (:attr:`hyperscout.Job.ranked`): a
pruned, aborted, failed or interrupted job is never ranked, whatever it reported before it
stopped (see :class:`hyperscout.TrialResult` for the rule).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

from hyperscout.job import Job
from hyperscout.objective import ObjectiveSet, rank

__all__ = ["RankedIndex", "ranked_jobs"]


def ranked_jobs(jobs: Iterable[Job], objectives: ObjectiveSet, k: int | None = None) -> list[Job]:
    """Ranked jobs best first; ties keep the job that got there first (earlier end, then number)."""
    done = sorted((j for j in jobs if j.ranked), key=lambda j: (j.ended or 0.0, j.number))
    out = rank(done, lambda j: j.objective_values, objectives)
    return out if k is None else out[:k]


class RankedIndex:
    """The ranked jobs of a running study, kept in the order of :func:`ranked_jobs` as they finish.

    For one objective an insertion costs O(log n) comparisons (plus a memory move) and the top k
    costs O(k), so ``get_top_experiments`` and ``save_top_k_tasks_only`` stay cheap at 100,000
    jobs. For several objectives the order depends on every job (Pareto fronts), so :meth:`top`
    ranks with :func:`ranked_jobs` itself.
    """

    def __init__(self, objectives: ObjectiveSet) -> None:
        self.objectives = objectives
        self._keys: list[tuple[float, float, int, str]] = []
        self._jobs: dict[str, Job] = {}

    def __len__(self) -> int:
        return len(self._jobs)

    def add(self, job: Job) -> int:
        """Record a ranked job (a job that is not :attr:`Job.ranked` is ignored); returns its position."""
        if not job.ranked or job.id in self._jobs:
            return -1
        self._jobs[job.id] = job
        if self.objectives.is_multi:
            return -1
        value = self.objectives.normalized(job.objective_values)[0]  # type: ignore[arg-type]
        key = (-value, job.ended or 0.0, job.number, job.id)
        at = bisect.bisect_left(self._keys, key)
        self._keys.insert(at, key)
        return at

    def replace(self, job: Job) -> None:
        """Point an entry at a new object of the same job (the engine swaps in a copy without history)."""
        if job.id in self._jobs:
            self._jobs[job.id] = job

    def top(self, k: int | None = None) -> list[Job]:
        if self.objectives.is_multi:
            return ranked_jobs(self._jobs.values(), self.objectives, k)
        keys = self._keys if k is None else self._keys[:k]
        return [self._jobs[key[3]] for key in keys]
