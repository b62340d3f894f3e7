"""kill -9 of the optimizer mid-study, then the same study again: it continues the same search."""

from __future__ import annotations

from pathlib import Path

from hyperscout.testing.resume import crash_and_resume


def test_kill_9_then_resume_continues_the_same_study(tmp_path: Path) -> None:
    out = crash_and_resume(tmp_path, "skopt", total_max_jobs=8, options={"n_initial_points": 4},
                           known="len(strategy.optimizer.yi)")
    assert len(out.finished_before) >= 2 and out.interrupted_before
    assert out.kept_all_finished and out.reran_interrupted
    assert out.jobs_counted == 8
    assert out.known_after_resume == 8  # skopt's model was told every job, old and new
