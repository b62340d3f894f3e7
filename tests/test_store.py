from __future__ import annotations

import sqlite3

import pytest

from hyperscout.errors import StoreError
from hyperscout.job import Job, JobStatus, MetricPoint
from hyperscout.store import SCHEMA_VERSION, Store


def test_round_trip_of_a_job_with_its_history(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = Store(tmp_path)
    store.create_study("s", {"objectives": []}, "fp")
    job = Job("j1", "s", 0, {"lr": 0.1, "opt": "adam"}, status=JobStatus.COMPLETED, objective_values=[0.5],
              objective_iterations=[3], reason=None)
    store.save_job(job)
    for i in range(3):
        store.add_metric("j1", MetricPoint("val", "loss", i, 1.0 / (i + 1)))
    store.add_metric("j1", MetricPoint("val", "loss", 3, float("nan")))
    again = Store(tmp_path).load_jobs("s")
    assert len(again) == 1 and again[0].params == {"lr": 0.1, "opt": "adam"}
    assert again[0].status is JobStatus.COMPLETED and again[0].objective_values == [0.5]
    assert [m.iteration for m in again[0].metrics] == [0, 1, 2, 3]
    assert again[0].history("val", "loss")[1] == (1, 0.5)
    with sqlite3.connect(tmp_path / "hyperscout.sqlite") as c:
        assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.schema_version == SCHEMA_VERSION


def test_a_store_from_a_newer_hyperscout_is_refused_untouched(tmp_path) -> None:  # type: ignore[no-untyped-def]
    Store(tmp_path).close()
    with sqlite3.connect(tmp_path / "hyperscout.sqlite") as c:
        c.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    with pytest.raises(StoreError, match="schema version 99, newer than this hyperscout"):
        Store(tmp_path)
    with sqlite3.connect(tmp_path / "hyperscout.sqlite") as c:
        assert c.execute("SELECT value FROM meta").fetchone()[0] == "99"


def test_not_a_database_is_a_clear_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "hyperscout.sqlite").write_text("this is not sqlite" * 100)
    with pytest.raises(StoreError, match=r"is damaged .* restore it from a backup"):
        Store(tmp_path)


@pytest.mark.parametrize("maximize", [False, True])
def test_top_in_sql_ranks_exactly_as_ranked_jobs(tmp_path, maximize: bool) -> None:  # type: ignore[no-untyped-def]
    import random

    from hyperscout.objective import Objective, ObjectiveSet
    from hyperscout.results import ranked_jobs

    rng = random.Random(3)
    store = Store(tmp_path)
    store.create_study("s", {"objectives": []}, "fp")
    statuses = [JobStatus.COMPLETED] * 6 + [JobStatus.FAILED, JobStatus.PRUNED, JobStatus.ABORTED]
    for n in range(300):
        status = rng.choice(statuses)
        value = [round(rng.uniform(-5, 5), 1)] if status is JobStatus.COMPLETED else None  # many ties
        job = Job(f"j{n}", "s", n, {"x": n}, status=status, objective_values=value, ended=float(rng.randint(0, 50)),
                  superseded_by="other" if rng.random() < 0.05 else None)
        store.save_job(job)
    objectives = ObjectiveSet.of([Objective("v", "l", "max" if maximize else "min")])
    expected = [j.id for j in ranked_jobs(store.load_jobs("s"), objectives, 25)]
    assert [j.id for j in store.top_single("s", maximize, 25)] == expected
