"""What keeps a study of 100,000 jobs cheap, checked for the same answers as the simple paths:

* the engine's ranking index orders exactly as :func:`hyperscout.ranked_jobs`;
* the engine forgets a finished job's history (it is in the store) and reads it back on request;
* ``export`` streams from the store (chunk boundaries, ranks, strict JSON, CSV columns);
* ``status STUDY`` counts in SQL and lists the last jobs only;
* a store batch that writes nothing opens no transaction.

(The figures themselves are in ``bench/scale``.)
"""

from __future__ import annotations

import csv
import io
import json
import math
import random
import sqlite3
from pathlib import Path

import pytest
from conftest import run_cli

from hyperscout import HyperParameterOptimizer, JobStatus, UniformParameterRange, hookimpl
from hyperscout.export import export_csv, export_json
from hyperscout.job import Job, MetricPoint
from hyperscout.objective import Objective, ObjectiveSet
from hyperscout.results import RankedIndex, ranked_jobs
from hyperscout.store import Store, json_safe


def _random_jobs(n: int, seed: int, objectives: int = 1) -> list[Job]:
    rng = random.Random(seed)
    statuses = [JobStatus.COMPLETED] * 6 + [JobStatus.FAILED, JobStatus.PRUNED, JobStatus.ABORTED]
    jobs = []
    for i in range(n):
        status = rng.choice(statuses)
        values = [round(rng.uniform(-3, 3), 1) for _ in range(objectives)] if status is JobStatus.COMPLETED else None
        jobs.append(Job(f"j{i:04d}", "s", i, {"x": i}, status=status, objective_values=values,
                        objective_iterations=[3] * objectives if values else None,
                        started=0.0, ended=float(rng.randint(0, 40)),
                        superseded_by="other" if rng.random() < 0.05 else None))
    return jobs


@pytest.mark.parametrize("sign", ["min", "max"])
def test_the_ranking_index_orders_as_ranked_jobs(sign: str) -> None:
    objectives = ObjectiveSet.of([Objective("v", "l", sign)])
    jobs = _random_jobs(400, 7)  # values rounded to 0.1: many ties, broken by end time then number
    index = RankedIndex(objectives)
    for job in random.Random(1).sample(jobs, len(jobs)):  # finishing order differs from numbering
        index.add(job)
    expected = [j.id for j in ranked_jobs(jobs, objectives)]
    assert [j.id for j in index.top()] == expected
    assert [j.id for j in index.top(10)] == expected[:10] and len(index) == len(expected)


def test_the_ranking_index_with_several_objectives_is_ranked_jobs() -> None:
    objectives = ObjectiveSet.of([Objective("a", "x", "min"), Objective("b", "y", "max")])
    jobs = _random_jobs(120, 3, objectives=2)
    index = RankedIndex(objectives)
    for job in jobs:
        index.add(job)
    assert [j.id for j in index.top(15)] == [j.id for j in ranked_jobs(jobs, objectives, 15)]


def _filled_store(tmp_path: Path, objectives: list[dict[str, str]], n: int = 230) -> Store:
    store = Store(tmp_path)
    store.create_study("s", {"objectives": objectives, "parameters": []}, "fp")
    multi = len(objectives) > 1
    with store.batch():
        for job in _random_jobs(n, 11, objectives=len(objectives)):
            if job.number == 5:
                job.params = {"x": 5, "only_here": "a \"quoted\" value"}
                job.reason = 'line one\nline "two"'
            if job.number == 6:
                job.params = {"x": float("nan"), "only_here": math.inf}  # stored as NaN and Infinity tokens
                job.reason = "objective v/l was NaN at iteration 2"
                job.budget = 4.0
            if job.number == 7:
                job.started, job.ended = None, None  # never started
            store.save_job(job)
            for i in range(1, 4):
                value = float("nan") if job.number == 8 and i == 2 else math.inf if job.number == 9 and i == 3 else i / 10
                store.add_metric(job.id, MetricPoint("a" if multi else "v", "x" if multi else "l", i, value,
                                                     float(i), after_stop=(i == 3 and job.number % 2 == 0)))
    return store


def _strict(text: str) -> object:
    def refuse(token: str) -> None:
        raise AssertionError(f"non-strict JSON token {token}")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("objectives", [
    [{"title": "v", "series": "l", "sign": "min"}],
    [{"title": "a", "series": "x", "sign": "min"}, {"title": "b", "series": "y", "sign": "max"}],
], ids=["one objective", "two objectives"])
def test_export_streams_the_same_answers_as_the_jobs_in_memory(tmp_path, objectives, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    store = _filled_store(tmp_path, objectives)
    info = store.get_study("s")
    objset = ObjectiveSet.of([Objective(**o) for o in objectives])
    original = store.export_rows
    monkeypatch.setattr(store, "export_rows", lambda study, **kw: original(study, chunk=7, **kw))  # many chunks
    out = io.StringIO()
    assert export_json(store, info, objset, out) == 230
    doc = _strict(out.getvalue())
    jobs = store.load_jobs("s")
    rank = {j.id: i for i, j in enumerate(ranked_jobs(jobs, objset), 1)}
    assert doc["study"] == "s" and doc["definition"]["objectives"] == objectives
    assert [d["id"] for d in doc["jobs"]] == [j.id for j in jobs]
    for d, job in zip(doc["jobs"], jobs):
        assert d["rank"] == rank.get(job.id)
        assert d["status"] == job.status.value and d["objective"] == job.objective_values
        assert d["params"] == json_safe(job.params) and d["reason"] == job.reason
        assert d["superseded_by"] == job.superseded_by and d["budget"] == job.budget
        assert d["started"] == job.started and d["ended"] == job.ended  # the same doubles, read back
        assert d["duration"] == (None if job.started is None else job.ended - job.started)
        expected = [[m.title, m.series, m.iteration, None if not math.isfinite(m.value) else m.value, m.after_stop]
                    for m in job.metrics]
        assert d["metrics"] == expected
    assert doc["jobs"][8]["metrics"][1][3] is None and doc["jobs"][9]["metrics"][2][3] is None

    out = io.StringIO()
    assert export_csv(store, info, objset, out) == 230
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [r["job"] for r in rows] == [j.id for j in jobs]
    assert [r["rank"] for r in rows] == [str(rank.get(j.id, "")) for j in jobs]
    assert rows[5]["only_here"] == 'a "quoted" value' and rows[4]["only_here"] == ""
    assert rows[5]["reason"] == 'line one\nline "two"'


def test_export_and_status_of_a_large_study_from_the_command_line(tmp_path: Path) -> None:
    _filled_store(tmp_path / "store", [{"title": "v", "series": "l", "sign": "min"}], n=230).close()
    out = tmp_path / "jobs.json"
    done = run_cli("export", "s", "-o", str(out), "--storage", str(tmp_path / "store"))
    assert done.returncode == 0 and "wrote 230 jobs" in done.stdout
    assert len(_strict(out.read_text())["jobs"]) == 230 and not list(tmp_path.glob("*.partial"))

    status = run_cli("status", "s", "--storage", str(tmp_path / "store"))
    assert status.returncode == 0, status.stderr
    with sqlite3.connect(tmp_path / "store" / "hyperscout.sqlite") as c:
        counts = dict(c.execute("SELECT status, COUNT(*) FROM jobs WHERE superseded_by IS NULL GROUP BY status"))
        rerun = c.execute("SELECT COUNT(*) FROM jobs WHERE superseded_by IS NOT NULL").fetchone()[0]
    assert f"{counts['completed']} completed" in status.stdout and f"({rerun} re-run)" in status.stdout
    lines = status.stdout.splitlines()
    table = [ln for ln in lines if ln[:1].isdigit()]
    assert [int(ln.split()[0]) for ln in table] == list(range(210, 230))  # the last 20, in order
    assert "the last 20 of 230 jobs; --all for every one" in lines[-1]
    every = run_cli("status", "s", "--all", "--storage", str(tmp_path / "store"))
    assert len([ln for ln in every.stdout.splitlines() if ln[:1].isdigit()]) == 230
    assert "--all for every one" not in every.stdout


def test_a_batch_that_writes_nothing_opens_no_transaction(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.create_study("s", {"objectives": []}, "fp")
    with store.batch():
        assert not store._db.in_transaction
        store.save_job(Job("j", "s", 0, {}))
        assert store._db.in_transaction
        store.commit_now()  # durable now; the next write opens the next transaction
        assert not store._db.in_transaction
        store.add_metric("j", MetricPoint("v", "l", 1, 0.5))
        with sqlite3.connect(tmp_path / "hyperscout.sqlite") as other:
            assert other.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 1
            assert other.execute("SELECT COUNT(*) FROM metrics").fetchone()[0] == 0  # not yet committed
    assert not store._db.in_transaction
    with sqlite3.connect(tmp_path / "hyperscout.sqlite") as other:
        assert other.execute("SELECT COUNT(*) FROM metrics").fetchone()[0] == 1


REPORTS = """
    import argparse
    from hyperscout import report_scalar
    p = argparse.ArgumentParser()
    p.add_argument("--x", type=float)
    a = p.parse_args()
    for i in range(1, 5):
        report_scalar("val", "loss", (a.x - 0.3) ** 2 + 1.0 / i, i)
        report_scalar("train", "acc", a.x * i, i)
"""


class _KeepsJobs:
    def __init__(self) -> None:
        self.finished: list[Job] = []

    @hookimpl
    def hyperscout_job_finished(self, study, job) -> None:  # type: ignore[no-untyped-def]
        self.finished.append(job)


def test_the_engine_keeps_no_history_of_finished_jobs_but_hands_it_out(script, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = script("train.py", REPORTS)
    observer = _KeepsJobs()
    opt = HyperParameterOptimizer(
        base_task_id=str(path), hyper_parameters=[UniformParameterRange("x", 0, 1)],
        objective_metric_title="val", objective_metric_series="loss", objective_metric_sign="min",
        optimizer_class="random", max_number_of_concurrent_tasks=2, total_max_jobs=5, save_top_k_tasks_only=2,
        storage=tmp_path / "store", study_name="s", seed=1, show_progress=False,
    )
    opt.pm.register(observer, name="keeps-jobs")
    assert opt.start() and opt.wait()
    engine = opt._engine
    assert engine is not None and len(engine.jobs) == 5
    assert all(j.metrics == [] for j in engine.jobs.values())  # in the store, not in the optimizer
    assert all(len(j.metrics) == 8 for j in observer.finished)  # a hook's copy keeps what it was given
    top = opt.get_top_experiments(2)
    assert all(len(j.history("val", "loss")) == 4 and len(j.history("train", "acc")) == 4 for j in top)
    every = opt.get_all_experiments()
    assert len(every) == 5 and all(len(j.metrics) == 8 for j in every)
    details = opt.get_top_experiments_details(1, all_metrics=True)
    assert set(details[0]["metrics"]) == {"val/loss", "train/acc"} and details[0]["metrics"]["val/loss"]["iteration"] == 4
    assert engine.reported_metrics() == ["train/acc", "val/loss"]
    # save_top_k_tasks_only=2 kept the two best unarchived, as a full ranking would
    ranked = ranked_jobs(Store(tmp_path / "store", readonly=True).load_jobs("s"), opt.objectives)
    assert [j.id for j in ranked[:2]] == [j.id for j in top]
    archived = {j.id for j in engine.jobs.values() if j.archived}
    assert archived == {j.id for j in ranked[2:]}


def test_a_large_json_export_to_a_file_is_written_by_two_processes_as_one(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import hyperscout.export as export

    store = _filled_store(tmp_path, [{"title": "v", "series": "l", "sign": "min"}], n=230)
    info = store.get_study("s")
    objset = ObjectiveSet.of([Objective("v", "l", "min")])
    alone = io.StringIO()
    assert export_json(store, info, objset, alone) == 230
    forks: list[int] = []
    original_fork = export.os.fork
    monkeypatch.setattr(export.os, "fork", lambda: forks.append(1) or original_fork())
    monkeypatch.setattr(export, "PARALLEL_FROM", 100)
    monkeypatch.setattr(export.os, "cpu_count", lambda: 2)
    target = tmp_path / "jobs.json"
    with open(target, "w", encoding="utf-8") as out:
        assert export_json(store, info, objset, out, parallel=True) == 230
    assert forks == [1]  # the second half was written by a child process
    assert target.read_text() == alone.getvalue()  # byte for byte what one process writes
    assert not list(tmp_path.glob("jobs.json.*"))  # no half left behind


def test_a_failing_second_process_fails_the_export_with_its_reason(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import hyperscout.export as export
    from hyperscout.errors import StoreError

    store = _filled_store(tmp_path, [{"title": "v", "series": "l", "sign": "min"}], n=230)
    info = store.get_study("s")
    monkeypatch.setattr(export, "PARALLEL_FROM", 100)
    monkeypatch.setattr(export.os, "cpu_count", lambda: 2)

    def refuse(*_a: object, **_k: object) -> Store:
        raise StoreError("the child could not open the store")

    monkeypatch.setattr(export, "Store", refuse)  # only the forked child opens a store of its own
    with open(tmp_path / "jobs.json", "w", encoding="utf-8") as out, \
            pytest.raises(StoreError, match="the child could not open the store"):
        export_json(store, info, ObjectiveSet.of([Objective("v", "l", "min")]), out, parallel=True)
    assert not list(tmp_path.glob("jobs.json.*"))
