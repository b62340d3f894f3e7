"""End-to-end studies with real subprocesses through the local backend and a real SQLite store."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hyperscout import (
    Command,
    DiscreteParameterRange,
    HyperParameterOptimizer,
    JobStatus,
    UniformParameterRange,
)

QUADRATIC = """
    import argparse, time
    from hyperscout import report_scalar
    p = argparse.ArgumentParser()
    p.add_argument("--x", type=float)
    p.add_argument("--y", type=int, default=0)
    p.add_argument("--sleep", type=float, default=0.05)
    a = p.parse_args()
    for i in range(1, 4):
        time.sleep(a.sleep)
        report_scalar("val", "loss", (a.x - 0.3) ** 2 + a.y + 1.0 / i, i)
"""


def _opt(script_path: Path, tmp_path: Path, **kw):  # type: ignore[no-untyped-def]
    defaults = dict(
        hyper_parameters=[UniformParameterRange("x", 0, 1, step_size=0.1), DiscreteParameterRange("y", [0, 1])],
        objective_metric_title="val",
        objective_metric_series="loss",
        objective_metric_sign="min",
        optimizer_class="random",
        max_number_of_concurrent_tasks=2,
        total_max_jobs=6,
        storage=tmp_path / "store",
        study_name="s",
        seed=0,
        show_progress=False,
    )
    defaults.update(kw)
    return HyperParameterOptimizer(base_task_id=str(script_path), **defaults)


def test_seed_call_shape_end_to_end(script, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = script("train.py", QUADRATIC)
    calls = []
    opt = _opt(path, tmp_path)
    opt.set_report_period(0.01)
    assert opt.is_active() and not opt.is_running() and opt.elapsed() == -1.0
    assert opt.start(job_complete_callback=lambda *a: calls.append(a)) is True
    opt.set_time_limit(in_minutes=5.0)
    assert opt.wait() is True
    top = opt.get_top_experiments(top_k=3)
    opt.stop()
    jobs = opt.get_all_experiments()
    assert len(jobs) == 6 and all(j.status is JobStatus.COMPLETED for j in jobs)
    assert [t.id for t in top] == [j.id for j in sorted(jobs, key=lambda j: j.objective_values[0])[:3]]
    # exactly once per finished job, with the documented types
    assert sorted(c[0] for c in calls) == sorted(j.id for j in jobs)
    for job_id, value, iteration, params, best_id in calls:
        assert isinstance(job_id, str) and isinstance(value, float) and isinstance(iteration, int)
        assert isinstance(params, dict) and set(params) == {"x", "y"} and isinstance(best_id, str)
    assert calls[-1][4] == top[0].id
    assert not opt.is_active() and not opt.reached_time_limit() and opt.elapsed() > 0
    details = opt.get_top_experiments_details(2)
    assert details[0]["job_id"] == top[0].id and "val/loss" in details[0]["metrics"]
    all_metrics = opt.get_top_experiments_details(1, all_metrics=True, all_hyper_parameters=True)
    assert all_metrics[0]["metrics"]["val/loss"]["min_value"] <= all_metrics[0]["metrics"]["val/loss"]["max_value"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purpose
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_time_limit_per_job_ends_a_hanging_script_and_its_children(script, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = script("hang.py", """
        import subprocess, sys, time, pathlib
        from hyperscout import report_scalar
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        pathlib.Path(sys.argv[-1] if False else "child.pid").write_text(str(child.pid))
        report_scalar("val", "loss", 1.0, 0)
        time.sleep(600)
    """)
    cmd = Command(argv=[sys.executable, str(path)], cwd=str(tmp_path))
    opt = HyperParameterOptimizer(cmd, [DiscreteParameterRange("x", [1])], "val", "loss", "min",
                                  time_limit_per_job=1.5 / 60, total_max_jobs=1, storage=tmp_path / "st",
                                  study_name="hang", show_progress=False)
    t0 = time.time()
    opt.start()
    opt.wait()
    took = time.time() - t0
    job = opt.get_all_experiments()[0]
    assert job.status is JobStatus.ABORTED and "time_limit_per_job" in job.reason
    assert took < 12
    child = int((tmp_path / "child.pid").read_text())
    deadline = time.time() + 5
    while _alive(child) and time.time() < deadline:
        time.sleep(0.05)
    assert not _alive(child), "the hanging script's child survived the time limit"
    assert not _alive(job.pid)


def test_crashing_and_silent_scripts_fail_with_reasons_and_the_study_goes_on(script, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = script("flaky.py", """
        import argparse
        from hyperscout import report_scalar
        p = argparse.ArgumentParser(); p.add_argument("--mode"); a = p.parse_args()
        if a.mode == "crash":
            raise ZeroDivisionError("division by zero in epoch 3")
        if a.mode == "late":
            report_scalar("val", "loss", 0.1, 1)
            raise MemoryError("out of memory in epoch 2")
        if a.mode == "silent":
            print("training done, forgot to report")
        else:
            report_scalar("val", "loss", 0.5, 1)
    """)
    opt = _opt(path, tmp_path, hyper_parameters=[DiscreteParameterRange("mode", ["crash", "silent", "late", "ok"])],
               optimizer_class="grid", total_max_jobs=None)
    opt.start()
    opt.wait()
    by_mode = {j.params["mode"]: j for j in opt.get_all_experiments()}
    assert by_mode["crash"].status is JobStatus.FAILED and by_mode["crash"].exit_code == 1
    assert "ZeroDivisionError: division by zero in epoch 3" in by_mode["crash"].reason
    assert by_mode["silent"].status is JobStatus.FAILED and "never reported objective 'val/loss'" in by_mode["silent"].reason
    assert by_mode["ok"].status is JobStatus.COMPLETED
    late = by_mode["late"]  # reported a better value, then crashed: failed, never ranked, history kept
    assert late.status is JobStatus.FAILED and "MemoryError" in late.reason and late.objective_values is None
    assert late.history("val", "loss") == [(1, 0.1)]
    assert [j.id for j in opt.get_top_experiments(5)] == [by_mode["ok"].id]
    assert opt.study.end_reason == "exhausted"


def test_stdout_pattern_metrics_without_touching_the_script(script, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = script("printer.py", """
        import argparse
        p = argparse.ArgumentParser(); p.add_argument("--lr", type=float); a = p.parse_args()
        for epoch in range(1, 4):
            print(f"epoch {epoch} val_acc={0.5 + a.lr * epoch:.4f}", flush=True)
    """)
    opt = _opt(path, tmp_path, hyper_parameters=[DiscreteParameterRange("lr", [0.1, 0.2])], optimizer_class="grid",
               objective_metric_title="validation", objective_metric_series="accuracy", objective_metric_sign="max",
               metric_patterns=[{"regex": r"epoch (?P<iteration>\d+) val_acc=(?P<value>[\d.]+)",
                                 "title": "validation", "series": "accuracy"}])
    opt.start()
    opt.wait()
    best = opt.get_top_experiments(1)[0]
    assert best.params == {"lr": 0.2} and best.objective_values == [pytest.approx(1.1)]
    assert best.objective_iterations == [3]
    assert Path(best.stdout_path).read_text().count("val_acc=") == 3


def test_parameters_reach_the_script_in_every_style(script, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = script("styles.py", """
        import json, os, sys
        from hyperscout import get_parameters, report_scalar
        seen = {"argv": sys.argv[1:], "env": os.environ.get("HP_LR"), "file": None, "api": get_parameters()}
        if os.environ.get("HYPERSCOUT_PARAMS_FILE"):
            seen["file"] = json.load(open(os.environ["HYPERSCOUT_PARAMS_FILE"]))
        print(json.dumps(seen))
        report_scalar("val", "loss", 1.0, 0)
    """)
    results = {}
    for style in ("argparse", "hydra", "env", "json"):
        cmd = Command(argv=[sys.executable, str(path)], params_as=style, env_prefix="HP_")
        opt = HyperParameterOptimizer(cmd, [DiscreteParameterRange("lr", [0.25])], "val", "loss", "min",
                                      optimizer_class="grid", storage=tmp_path / "st", study_name=style,
                                      show_progress=False)
        opt.start()
        opt.wait()
        job = opt.get_all_experiments()[0]
        results[style] = json.loads(Path(job.stdout_path).read_text().strip().splitlines()[-1])
    assert results["argparse"]["argv"] == ["--lr", "0.25"]
    assert results["hydra"]["argv"] == ["lr=0.25"]
    assert results["env"]["env"] == "0.25" and results["env"]["argv"] == []
    assert results["json"]["file"] == {"lr": 0.25}
    assert all(r["api"] == {"lr": 0.25} for r in results.values())


def test_optimization_time_limit_stops_and_marks_jobs_interrupted(script, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # The process-level test of the limits that stop a study (the time limit on the wall clock;
    # compute_time_limit ends jobs the same way): the running scripts are ended, not left behind.
    # Their logic (what ends when, statuses, reasons, values) is tested on the virtual clock in
    # plugins/hyperscout-sim/tests (test_limits.py, test_engine_limits.py).
    path = script("slow.py", QUADRATIC)
    opt = _opt(path, tmp_path, hyper_parameters=[DiscreteParameterRange("sleep", [5.0]), UniformParameterRange("x", 0, 1)],
               total_max_jobs=None)
    opt.start()
    opt.set_time_limit(in_minutes=1.0 / 60)
    t0 = time.time()
    opt.wait()
    assert time.time() - t0 < 10
    assert opt.study.end_reason == "time_limit"
    jobs = opt.get_all_experiments()
    assert jobs and all(j.status is JobStatus.ABORTED and j.interrupted for j in jobs)
    assert not [j.pid for j in jobs if _alive(j.pid)], "a script outlived the study's time limit"


KILLABLE_DRIVER = """
import sys
from hyperscout import HyperParameterOptimizer, UniformParameterRange
opt = HyperParameterOptimizer(sys.argv[1], [UniformParameterRange("x", 0, 1, step_size=0.05)], "val", "loss", "min",
                              optimizer_class="random", max_number_of_concurrent_tasks=2, total_max_jobs=int(sys.argv[3]),
                              storage=sys.argv[2], study_name="crashy", seed=1, show_progress=False)
opt.start()
opt.wait()
print("DONE", len(opt.get_all_experiments()))
"""

SLOWISH = """
import argparse, time
from hyperscout import report_scalar
p = argparse.ArgumentParser(); p.add_argument("--x", type=float); a = p.parse_args()
for i in range(1, 3):
    time.sleep(0.4)
    report_scalar("val", "loss", (a.x - 0.3) ** 2 + 1.0 / i, i)
"""


def test_kill_9_then_resume_loses_no_finished_job(script, tmp_path) -> None:  # type: ignore[no-untyped-def]
    driver = script("driver.py", KILLABLE_DRIVER)
    trial = script("trial.py", SLOWISH)
    store = tmp_path / "store"
    proc = subprocess.Popen([sys.executable, str(driver), str(trial), str(store), "8"])
    db = store / "hyperscout.sqlite"
    deadline = time.time() + 60
    finished: list = []
    while time.time() < deadline:  # wait until some jobs finished and others are running
        try:  # the driver may be creating the file or its schema right now
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
                finished = c.execute("SELECT id FROM jobs WHERE status='completed'").fetchall()
                running = c.execute("SELECT id FROM jobs WHERE status IN ('running','pending')").fetchall()
        except sqlite3.OperationalError:
            finished, running = [], []
        if len(finished) >= 3 and running:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with sqlite3.connect(db) as c:
        before = {r[0] for r in c.execute("SELECT id FROM jobs WHERE status='completed'")}
        interrupted = {r[0] for r in c.execute("SELECT id FROM jobs WHERE status IN ('running','pending')")}
    assert len(before) >= 3 and interrupted
    out = subprocess.run([sys.executable, str(driver), str(trial), str(store), "8"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    with sqlite3.connect(db) as c:
        rows = c.execute("SELECT id, status, superseded_by, retry_of, reason FROM jobs").fetchall()
    status = {r[0]: r[1] for r in rows}
    assert before <= {i for i, s in status.items() if s == "completed"}  # every finished job kept
    for job_id in interrupted:  # recorded as interrupted, and re-run under a new id
        row = next(r for r in rows if r[0] == job_id)
        assert row[1] == "aborted" and row[2] is not None and "interrupted" in row[4]
        assert status[row[2]] == "completed"
    counted = [r for r in rows if r[2] is None]
    assert len(counted) == 8  # total_max_jobs counts across the resume
    assert "DONE" in out.stdout


def test_lifecycle_hooks_fire_in_order(script, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from hyperscout import hookimpl
    from hyperscout.plugins import get_plugin_manager

    seen: list[tuple[str, str | None]] = []

    class Recorder:
        @hookimpl
        def hyperscout_study_started(self, study, resumed):  # type: ignore[no-untyped-def]
            seen.append(("started", str(resumed)))

        @hookimpl
        def hyperscout_job_launched(self, job):  # type: ignore[no-untyped-def]
            seen.append(("launched", job.id))

        @hookimpl
        def hyperscout_job_started(self, job):  # type: ignore[no-untyped-def]
            seen.append(("running", job.id))

        @hookimpl
        def hyperscout_metric_reported(self, job, point):  # type: ignore[no-untyped-def]
            seen.append(("metric", job.id))

        @hookimpl
        def hyperscout_job_finished(self, job):  # type: ignore[no-untyped-def]
            seen.append(("finished", job.id))

        @hookimpl
        def hyperscout_new_best(self, job):  # type: ignore[no-untyped-def]
            seen.append(("best", job.id))

        @hookimpl
        def hyperscout_study_ended(self, study, reason):  # type: ignore[no-untyped-def]
            seen.append(("ended", reason))

    pm = get_plugin_manager()
    pm.register(Recorder())
    path = script("train.py", QUADRATIC)
    opt = _opt(path, tmp_path, total_max_jobs=2, max_number_of_concurrent_tasks=1, plugin_manager=pm)
    opt.start()
    opt.wait()
    kinds = [k for k, _ in seen]
    assert kinds[0] == "started" and kinds[-1] == "ended" and seen[-1][1] == "total_max_jobs"
    first = opt.get_all_experiments()[0].id
    per_job = [k for k, j in seen if j == first]
    assert per_job[:2] == ["launched", "running"] and per_job.count("metric") == 3
    assert per_job[-2:] == ["finished", "best"]


def test_save_top_k_marks_the_rest_archived_and_keeps_them(script, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = script("train.py", QUADRATIC)
    opt = _opt(path, tmp_path, total_max_jobs=6, save_top_k_tasks_only=2, optimizer_class="grid")
    opt.start()
    opt.wait()
    jobs = opt.get_all_experiments()
    top = {j.id for j in opt.get_top_experiments(2)}
    assert len(jobs) == 6
    assert {j.id for j in jobs if not j.archived} == top
    stored = {row[0]: row[1] for row in sqlite3.connect(tmp_path / "store" / "hyperscout.sqlite").execute(
        "SELECT id, archived FROM jobs")}
    assert {k for k, v in stored.items() if not v} == top and len(stored) == 6


def test_clearml_server_settings_are_reported_not_dropped(script, tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    path = script("train.py", QUADRATIC)
    _opt(path, tmp_path, auto_connect_task=False, spawn_project="elsewhere")
    assert any("auto_connect_task=False is a ClearML server setting" in r.message for r in caplog.records)
    assert any("spawn_project='elsewhere'" in r.message for r in caplog.records)


def test_a_freed_slot_is_refilled_within_milliseconds(script, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = script("quick.py", QUADRATIC)
    opt = _opt(path, tmp_path, max_number_of_concurrent_tasks=1, total_max_jobs=6, optimizer_class="grid",
               hyper_parameters=[UniformParameterRange("x", 0, 1, step_size=0.2), DiscreteParameterRange("sleep", [0.0])])
    opt.start()
    opt.wait()
    jobs = sorted(opt.get_all_experiments(), key=lambda j: j.number)
    gaps = sorted(b.started - a.ended for a, b in zip(jobs, jobs[1:]))
    assert gaps[len(gaps) // 2] < 0.1, gaps  # no polling sleep between one job's exit and the next launch
    assert gaps[0] >= 0, gaps  # one at a time: never two processes running at once
