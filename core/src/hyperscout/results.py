"""The one ranking function: ``top``, ``export``, the final table, ``get_top_experiments``, the best
so far and the completion callback all order jobs with :func:`ranked_jobs`.

Only jobs that completed with every objective take part (:attr:`hyperscout.Job.ranked`): a
pruned, aborted, failed or interrupted job is never ranked, whatever it reported before it
stopped (see :class:`hyperscout.TrialResult` for the rule).
"""

from __future__ import annotations

from collections.abc import Iterable

from hyperscout.job import Job
from hyperscout.objective import ObjectiveSet, rank

__all__ = ["ranked_jobs"]


def ranked_jobs(jobs: Iterable[Job], objectives: ObjectiveSet, k: int | None = None) -> list[Job]:
    """Ranked jobs best first; ties keep the job that got there first (earlier end, then number)."""
    done = sorted((j for j in jobs if j.ranked), key=lambda j: (j.ended or 0.0, j.number))
    out = rank(done, lambda j: j.objective_values, objectives)
    return out if k is None else out[:k]
