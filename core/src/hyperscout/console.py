"""Live progress on the terminal, written as an ordinary hook implementation."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from hyperscout.engine import StudyView
from hyperscout.job import Job, JobStatus
from hyperscout.plugins import hookimpl


def fmt_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h:d}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def fmt_values(values: list[float] | None) -> str:
    if values is None:
        return "-"
    return ", ".join(f"{v:.6g}" for v in values)


def progress_line(study: StudyView) -> str:
    """``done 12 (failed 1, pruned 3) · running 2 · best 0.981 (job ab12) · 01:10 / 10:00``."""
    c = study.counts()
    done = c["completed"] + c["failed"] + c["pruned"] + c["aborted"]
    extra = ", ".join(f"{k} {c[k]}" for k in ("failed", "pruned", "aborted") if c[k])
    total = study.limits.total_max_jobs
    parts = [f"done {done}" + (f"/{total}" if total else "") + (f" ({extra})" if extra else "")]
    parts.append(f"running {c['running'] + c['pending']}")
    best = study.best
    names = ", ".join(o.key for o in study.objectives)
    parts.append(f"best {names} = {fmt_values(best.objective_values)} (job {best.id})" if best else "best -")
    limit = ""
    if study.deadline is not None and study.started_at is not None:
        limit = " / " + fmt_duration(study.deadline - study.started_at)
    parts.append(fmt_duration(study.elapsed) + limit)
    return " · ".join(parts)


class ConsoleProgress:
    """Prints a line per finished job, a mark on each new best, and a status line every report period."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self._last = 0.0

    def _print(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    @hookimpl
    def hyperscout_study_started(self, study: StudyView, resumed: bool) -> None:
        verb = "resuming" if resumed else "starting"
        self._print(
            f"hyperscout: {verb} study {study.name!r} · strategy {study.strategy_name} · backend {study.backend_name}"
            f" · {study.limits.max_concurrency} at a time"
            + (f" · {len(study.jobs)} jobs already in the store" if resumed else "")
        )

    @hookimpl
    def hyperscout_job_finished(self, study: StudyView, job: Job) -> None:
        dur = f"{job.duration:.1f}s" if job.duration is not None else "-"
        line = f"  job {job.id} #{job.number:<3} {job.status.value:<9} {fmt_values(job.objective_values):>12}  {dur:>7}"
        params = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in job.params.items())
        line += f"  {params}"
        if job.status in (JobStatus.FAILED, JobStatus.ABORTED, JobStatus.PRUNED) and job.reason:
            line += f"  [{job.reason}]"
        self._print(line)

    @hookimpl
    def hyperscout_new_best(self, study: StudyView, job: Job) -> None:
        self._print(f"  * new best: job {job.id} {fmt_values(job.objective_values)}")

    @hookimpl
    def hyperscout_study_tick(self, study: StudyView) -> None:
        now = time.time()
        if now - self._last >= 1.0:
            self._last = now
            self._print("  " + progress_line(study))

    @hookimpl
    def hyperscout_study_ended(self, study: StudyView, reason: str) -> None:
        self._print(f"hyperscout: study {study.name!r} ended ({reason}) · " + progress_line(study))
