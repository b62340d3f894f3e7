"""The read model: deltas carry only what changed, rankings come from ranked_jobs, list rows, deletion."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from hyperscout.errors import StoreError
from hyperscout.job import MetricPoint
from hyperscout.objective import ObjectiveSet
from hyperscout.results import ranked_jobs
from hyperscout_ui.actions import Actions
from hyperscout_ui.data import JOB_COLUMNS, Cursor, StudyModel, UIStore, list_rows, objectives_of
from hyperscout_ui.synth import add_job, make_study


def test_snapshot_best_and_top_come_from_ranked_jobs(tmp_path: Path) -> None:
    make_study(tmp_path, "s", 60).close()
    store = UIStore(tmp_path, readonly=True)
    m = StudyModel(store, "s")
    snap = m.snapshot()
    jobs = store.load_jobs("s", with_metrics=False)
    ranked = ranked_jobs(jobs, objectives_of(snap["study"] and m.definition))
    assert snap["summary"]["best"]["id"] == ranked[0].id
    assert snap["summary"]["top"] == [j.number for j in ranked[:10]]
    assert snap["summary"]["ranked"] == len(ranked) < 60  # pruned and failed jobs are never ranked
    assert snap["columns"] == list(JOB_COLUMNS) and len(snap["jobs"]) == 60
    steps = snap["summary"]["steps_n"]
    assert steps[-1][0] == ranked[0].number and all(a[1] > b[1] for a, b in zip(steps, steps[1:]))
    pruned = [r for r in snap["jobs"] if r[2] == "pruned"]
    assert pruned and all(r[3] is None and r[16] is not None for r in pruned)  # no value, but its last iteration


def test_refresh_sends_only_what_changed(tmp_path: Path) -> None:
    writer = make_study(tmp_path, "s", 200, running=True)
    make_study(tmp_path, "other", 5).close()
    store = UIStore(tmp_path, readonly=True)
    m = StudyModel(store, "s")
    old = Cursor.parse(str(m.cursor))
    assert m.refresh() is None
    with writer.batch():
        job = add_job(writer, "s", 200, random.Random(1), time.time(), status="completed")
    d = m.refresh()
    assert [r[0] for r in d["jobs"]] == [200]
    assert {c[0] for c in d["curves"]} == {200} and len(d["curves"]) == 20
    assert [e["kind"] for e in d["events"]] == ["job_finished"]
    writer.add_metric(job.id, MetricPoint("val", "other", 0, 1.0, time.time()))  # another scalar: no delta rows
    d = m.refresh()
    assert d is None or "jobs" not in d
    writer.add_event("other", "new_best", None, {})  # another study's event
    d = m.refresh()
    assert d is None or "events" not in d
    back = m.catch_up(old)  # a client that reconnects with an old cursor gets what it missed
    assert [r[0] for r in back["jobs"]] == [200] and back["cursor"] == str(m.cursor)
    writer.close()


def test_multi_objective_pareto_and_budgets(tmp_path: Path) -> None:
    make_study(tmp_path, "mo", 40, objectives=2, budgets=True).close()
    store = UIStore(tmp_path, readonly=True)
    m = StudyModel(store, "mo")
    jobs = store.load_jobs("mo", with_metrics=False)
    objs = ObjectiveSet.of(list(m.objectives))
    assert m.summary["best"]["id"] == ranked_jobs(jobs, objs)[0].id
    assert m.summary["pareto"] and all(isinstance(n, int) for n in m.summary["pareto"])
    assert all(r[5] in (1.0, 3.0, 9.0, 27.0) for r in m.snapshot()["jobs"])


def test_list_rows_clear_and_delete(tmp_path: Path) -> None:
    make_study(tmp_path, "done", 10).close()
    w = make_study(tmp_path, "live", 3, running=True)
    rows = {r["name"]: r for r in list_rows(tmp_path, {})}
    assert rows["done"]["state"] == "ended" and rows["live"]["state"] == "running"
    assert rows["done"]["best"]["n"] is not None and rows["done"]["total_max_jobs"] == 10
    actions = Actions(tmp_path)
    actions.clear_finished(["done"])
    rows = {r["name"]: r for r in list_rows(tmp_path, {})}
    assert rows["done"]["cleared"] and not rows["live"]["cleared"]
    with pytest.raises(StoreError, match="running"):
        UIStore(tmp_path).delete_study("live")
    assert actions.delete("done") == 10
    assert "done" not in {r["name"] for r in list_rows(tmp_path, {})}
    store = UIStore(tmp_path, readonly=True)
    assert [e["data"]["action"] for e in store.events_since("done", 0)] == ["clear", "delete"]  # the audit stays
    w.close()
