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
        if job.budget is not None:
            line += f"  budget {job.budget:g}"  # a 1-epoch result is never mistaken for a full one
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


def _eta(done: float, total: float, elapsed: float) -> str:
    if done <= 0 or total <= done:
        return "-"
    return fmt_duration(elapsed * (total - done) / done)


class _Board:
    """What the live view draws, computed from the study at each refresh (rich calls ``__rich__``)."""

    def __init__(self, study: StudyView) -> None:
        self.study = study

    def __rich__(self) -> object:
        from rich.console import Group
        from rich.table import Table

        study = self.study
        primary = study.objectives.primary
        table = Table(title=f"study {study.name} · {study.strategy_name} on {study.backend_name}", expand=False)
        for col in ("job", "#", "status", "parameters", "iteration", primary.key, "budget", "elapsed"):
            table.add_column(col, overflow="fold" if col == "parameters" else "ellipsis")
        now = study.now()
        for job in sorted((j for j in study.jobs if not j.status.finished), key=lambda j: j.number):
            hist = job.history(primary.title, primary.series)
            params = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in job.params.items())
            table.add_row(
                job.id, str(job.number), job.status.value, params, str(hist[-1][0]) if hist else "-",
                f"{hist[-1][1]:.6g}" if hist else "-", "-" if job.budget is None else f"{job.budget:g}",
                fmt_duration(now - job.started) if job.started else "-",
            )
        lines = [table, progress_line(study)]
        lim = study.limits
        c = study.counts()
        done = c["completed"] + c["failed"] + c["pruned"] + c["aborted"]
        budgets = []
        if lim.total_max_jobs:
            budgets.append(f"jobs {study.launched}/{lim.total_max_jobs} (ETA {_eta(done, lim.total_max_jobs, study.elapsed)})")
        if lim.total_max_iterations:
            used = study.iterations_used
            budgets.append(f"iterations {used}/{lim.total_max_iterations} "
                           f"(ETA {_eta(used, lim.total_max_iterations, study.elapsed)})")
        if study.deadline is not None and study.started_at is not None:
            budgets.append(f"time {fmt_duration(study.elapsed)}/{fmt_duration(study.deadline - study.started_at)}")
        if budgets:
            lines.append("budget: " + " · ".join(budgets))
        return Group(*lines)


class LiveProgress(ConsoleProgress):
    """On a terminal: a live table of the running jobs, the best so far and each budget with an ETA.

    Finished jobs and new bests still print as lines above it, so the scrollback tells the story.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream)
        self._live: object | None = None

    def _print(self, text: str) -> None:
        live = self._live
        if live is not None:
            live.console.print(text, markup=False, highlight=False)  # type: ignore[attr-defined]
        else:
            super()._print(text)

    @hookimpl
    def hyperscout_study_started(self, study: StudyView, resumed: bool) -> None:
        from rich.console import Console
        from rich.live import Live

        super().hyperscout_study_started(study, resumed)
        live = Live(_Board(study), console=Console(file=self.stream), refresh_per_second=2, transient=True)
        live.start()
        self._live = live

    @hookimpl
    def hyperscout_study_tick(self, study: StudyView) -> None:
        """The live table refreshes itself; no status line needed."""

    @hookimpl
    def hyperscout_study_ended(self, study: StudyView, reason: str) -> None:
        live, self._live = self._live, None
        if live is not None:
            live.stop()  # type: ignore[attr-defined]
        super().hyperscout_study_ended(study, reason)


def make_progress(stream: TextIO | None = None) -> ConsoleProgress:
    """The live view on a terminal (when rich is installed), plain lines when piped or in CI."""
    out = stream or sys.stdout
    if out.isatty():
        try:
            import rich  # noqa: F401
        except ImportError:
            return ConsoleProgress(out)
        return LiveProgress(out)
    return ConsoleProgress(out)
