"""A crash-and-resume check any strategy plugin runs the same way: ``kill -9`` mid-study, rerun.

The study runs in a child process (a real optimizer with the local backend and a real SQLite
store); it is killed with SIGKILL while some jobs are finished and others running, then the same
study is run again to completion. The caller gets what a user would look at afterwards::

    from hyperscout.testing.resume import crash_and_resume

    def test_kill_9_then_resume(tmp_path):
        out = crash_and_resume(tmp_path, "optuna", total_max_jobs=8,
                               known="len(strategy.study.trials)")
        assert out.kept_all_finished and out.reran_interrupted and out.jobs_counted == 8
        assert out.known_after_resume == 8   # the library saw every job, old and new
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

__all__ = ["ResumeOutcome", "crash_and_resume"]

TRIAL = """
import argparse, time
from hyperscout import report_scalar
p = argparse.ArgumentParser()
p.add_argument("--x", type=float)
p.add_argument("--y", type=float, default=0.0)
a = p.parse_args()
for i in range(1, 4):
    time.sleep(0.25)
    report_scalar("val", "loss", (a.x - 0.3) ** 2 + (a.y - 0.6) ** 2 + 0.1 / i, i)
"""

DRIVER = """
import json, sys
from hyperscout import HyperParameterOptimizer, UniformParameterRange
cfg = json.loads(sys.argv[1])
opt = HyperParameterOptimizer(
    cfg["trial"], [UniformParameterRange("x", 0.0, 1.0), UniformParameterRange("y", 0.0, 1.0)],
    "val", "loss", "min", optimizer_class=cfg["strategy"], max_number_of_concurrent_tasks=2,
    total_max_jobs=cfg["total"], storage=cfg["storage"], study_name="crash", seed=3, show_progress=False,
    **cfg["limits"], **cfg["options"])
opt.start()
opt.wait()
strategy = opt.get_optimizer()
print("RESULT", json.dumps({"jobs": len(opt.get_all_experiments()), "known": eval(cfg["known"])}))
"""


@attrs.frozen
class ResumeOutcome:
    finished_before: frozenset[str]
    interrupted_before: frozenset[str]
    kept_all_finished: bool
    reran_interrupted: bool
    jobs_counted: int
    known_after_resume: Any
    rows: tuple[tuple[Any, ...], ...]


def _read(db: Path, sql: str) -> list[tuple[Any, ...]]:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
            return c.execute(sql).fetchall()
    except sqlite3.OperationalError:
        return []


def crash_and_resume(
    tmp_path: Path,
    strategy: str,
    *,
    total_max_jobs: int = 8,
    options: Mapping[str, Any] | None = None,
    limits: Mapping[str, Any] | None = None,
    known: str = "None",
    timeout: float = 120.0,
) -> ResumeOutcome:
    """Run, SIGKILL the optimizer mid-study, run again; see :class:`ResumeOutcome`.

    ``known`` is an expression evaluated in the resumed optimizer's process with ``strategy``
    bound to the strategy instance, e.g. how many trials the library holds.
    """
    trial = tmp_path / "trial.py"
    trial.write_text(textwrap.dedent(TRIAL))
    driver = tmp_path / "driver.py"
    driver.write_text(textwrap.dedent(DRIVER))
    store = tmp_path / "store"
    cfg = json.dumps({"trial": str(trial), "strategy": strategy, "total": total_max_jobs, "storage": str(store),
                      "options": dict(options or {}), "limits": dict(limits or {}), "known": known})
    db = store / "hyperscout.sqlite"
    proc = subprocess.Popen([sys.executable, str(driver), cfg], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        done = _read(db, "SELECT id FROM jobs WHERE status='completed'")
        running = _read(db, "SELECT id FROM jobs WHERE status IN ('running','pending')")
        if len(done) >= 2 and running:
            break
        time.sleep(0.02)
    if proc.poll() is not None:
        raise AssertionError(f"the study ended before it could be killed: {proc.stderr.read().decode()[-2000:]}")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = frozenset(r[0] for r in _read(db, "SELECT id FROM jobs WHERE status='completed'"))
    interrupted = frozenset(r[0] for r in _read(db, "SELECT id FROM jobs WHERE status IN ('running','pending')"))
    out = subprocess.run([sys.executable, str(driver), cfg], capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise AssertionError(f"the resumed study failed: {out.stderr[-2000:]}")
    result = json.loads(out.stdout.split("RESULT", 1)[1])
    rows = tuple(_read(db, "SELECT id, status, superseded_by, retry_of FROM jobs"))
    status = {r[0]: r[1] for r in rows}
    superseded = {r[0]: r[2] for r in rows}
    return ResumeOutcome(
        finished_before=finished,
        interrupted_before=interrupted,
        kept_all_finished=all(status.get(j) == "completed" for j in finished),
        reran_interrupted=bool(interrupted) and all(
            status.get(j) == "aborted" and superseded.get(j) and status.get(superseded[j]) in
            ("completed", "pruned", "failed", "aborted") for j in interrupted),
        jobs_counted=sum(1 for r in rows if r[2] is None),
        known_after_resume=result["known"],
        rows=rows,
    )
