"""Engine logic that the core tests used to check with real processes and the wall clock.

These tests come from ``tests/`` of the core. There they ran real training scripts through the
`local` backend. They waited seconds on the wall clock for a limit to pass, and they polled or
slept to find out when it had. What they check is the engine's own logic: which limit ends a job
or the study, what the job's status, reason and value are, and what is ranked, called back,
stored and told to the strategy. The simulation runs that logic on a virtual clock, so each
decision comes at a known virtual time and every assertion can be exact. No process, no sleep,
no wall time is involved.

Moved here (old core test -> test below):

* ``tests/test_outcomes.py::test_time_limit_per_job_aborts_without_ranking_the_partial_value``
  -> ``test_time_limit_per_job_aborts_without_ranking_the_partial_value``
* ``tests/test_outcomes.py::test_a_value_after_the_stop_point_never_becomes_the_result``
  -> ``test_a_value_after_the_stop_point_never_becomes_the_result``. The core version needed a
  deliberately slow ``ask`` to let late points pile up; here the late points arrive during the
  stop grace at known virtual times, and they go through the same code path (``after_stop``).
* ``tests/test_outcomes.py::test_interrupted_jobs_are_never_ranked_best_or_called_back``
  -> ``test_interrupted_jobs_are_never_ranked_best_or_called_back``. The core version gated
  scripts on a file and polled the store; here the job function holds the engine's thread at a
  known virtual instant while the test calls ``stop()``.
* ``tests/test_study.py::test_concurrency_is_never_exceeded`` (it polled with ``time.sleep``)
  -> ``test_concurrency_is_never_exceeded_and_a_freed_slot_is_refilled_at_once``
* ``tests/test_study.py::test_same_study_name_resumes_and_total_max_jobs_counts_across``
  -> ``test_same_study_name_resumes_and_total_max_jobs_counts_across``

New here: the logic of ``set_time_limit``, which the core checks only as the wall-clock deadline
of ``tests/test_study.py::test_optimization_time_limit_stops_and_marks_jobs_interrupted``. See
``test_set_time_limit_puts_the_deadline_on_the_virtual_clock`` and
``test_set_time_limit_none_clears_the_limit_of_a_running_study``.

Removed from the core because ``test_limits.py`` already makes the same assertions on the virtual clock:

* ``tests/test_study.py::test_max_iteration_per_job_stops_the_job_as_completed``
  (``test_limits.py::test_max_iteration_per_job_completes_the_job_with_its_value_at_the_cap``)
* ``tests/test_study.py::test_compute_time_limit_counts_running_time_of_all_jobs_in_minutes``
  (``test_limits.py::test_compute_time_limit_sums_the_running_time_of_all_jobs``)

What stays in the core tests deals with real processes. A hung script and its children killed
at ``time_limit_per_job``, a script signalled after the stop grace at its cap, running scripts
ended when the wall-clock deadline of ``set_time_limit`` passes, kill -9 and resume, Ctrl-C, and
a freed slot refilled by the local backend.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from simkit import GUARD_MINUTES, Listed, approx, make_optimizer, run, steady

from hyperscout import (
    DiscreteParameterRange,
    JobStatus,
    StudySettings,
    Suggestion,
    TrialResult,
    UniformParameterRange,
)
from hyperscout.cli import main as cli
from hyperscout.errors import StudyConflictError
from hyperscout.objective import ObjectiveSet
from hyperscout.params import SearchSpace
from hyperscout.store import Store
from hyperscout.strategy import Signal
from hyperscout_sim import SimExit

#: seconds to wait for the engine's thread to reach a point: a guard against a hang, never a claim about speed
GUARD_SECONDS = 60.0 * GUARD_MINUTES


class ListedWithBudget(Listed):
    """The configurations of ``configs`` in order, each with the iteration budget ``budget``; it records what it is told."""

    name = "test-listed-budget"

    def __init__(self, space: SearchSpace, objectives: ObjectiveSet, settings: StudySettings, *,
                 configs: Sequence[Mapping[str, Any]] = (), budget: float | None = None) -> None:
        super().__init__(space, objectives, settings, configs=configs)
        self.budget = budget
        self.told: dict[str, TrialResult] = {}

    def ask(self, trial_id: str) -> Suggestion | Signal:
        answer = super().ask(trial_id)
        return Suggestion(answer.params, budget=self.budget) if isinstance(answer, Suggestion) else answer

    def tell(self, trial_id: str, result: TrialResult) -> None:
        self.told[trial_id] = result


def _loss(job: Any) -> list[tuple[int, float]]:
    return job.history("validation", "loss")


# -- time_limit_per_job ----------------------------------------------------------------------------
def test_time_limit_per_job_aborts_without_ranking_the_partial_value(tmp_path: Path) -> None:
    def job(params: dict, budget: float | None) -> Any:
        yield 1.0, 1, {"validation/loss": -100.0 - params["x"]}  # a spectacular partial value
        yield 1000.0, 2, {"validation/loss": params["x"]}  # never reached: the limit is 30 s

    calls: list[tuple] = []
    opt = run(make_optimizer(tmp_path, job, strategy=ListedWithBudget, strategy_options={"configs": [{"x": 0.5}]},
                             time_limit_per_job=0.5), callback=lambda *a: calls.append(a))
    (j,) = opt.get_all_experiments()
    assert j.status is JobStatus.ABORTED and not j.interrupted
    assert j.reason == "exceeded time_limit_per_job (30 s)"
    assert j.ended - j.started == approx(30.0) and j.exit_code == -15
    assert j.objective_values is None and j.objective_iterations is None and not j.ranked
    assert _loss(j) == [(1, -100.5)], "the partial value is kept as history"
    assert calls == [] and opt.get_top_experiments(1) == [] and opt.study.best is None
    (told,) = opt.get_optimizer().told.values()  # type: ignore[attr-defined]
    assert told.status is JobStatus.ABORTED and told.values is None and told.intermediate == ((1, -100.5),)
    assert opt.study.end_reason == "exhausted"


# -- the stop point (budget / max_iteration_per_job) -----------------------------------------------
def test_a_value_after_the_stop_point_never_becomes_the_result(tmp_path: Path) -> None:
    budgets: list[float | None] = []

    def job(params: dict, budget: float | None) -> Any:
        budgets.append(budget)
        for i in range(1, 400):  # far past any budget, better and better: 9, 8, 7, ...
            yield 0.8, i, {"validation/loss": 10.0 - i}
            if i == 3 and params["mode"] == "exits":
                return
            if i == 3 and params["mode"] == "crashes":
                raise SimExit(3, "crashed after its budget")

    # Budget 2: iteration 2 comes at 1.6 s, the 2 s stop grace ends at 3.6 s. Every job reports
    # iteration 3 at 2.4 s after its stop point; "runs on" also reports iteration 4 at 3.2 s.
    modes = ["runs on", "exits", "crashes"]
    calls: list[tuple] = []
    opt = run(make_optimizer(tmp_path, job, strategy=ListedWithBudget, max_number_of_concurrent_tasks=3,
                             strategy_options={"configs": [{"mode": m} for m in modes], "budget": 2},
                             space=[DiscreteParameterRange("mode", modes)]),
              callback=lambda *a: calls.append(a))
    assert budgets == [2, 2, 2], "each job function is told its budget"
    jobs = {j.params["mode"]: j for j in opt.get_all_experiments()}
    cap = "reached its budget of 2 iterations"
    expected = {  # mode: (reason, exit code, virtual running time, iterations reported after the stop point)
        "runs on": (f"{cap}; signalled after a 2 s grace", -15, 3.6, [3, 4]),
        "exits": (f"{cap}; exited by itself", 0, 2.4, [3]),
        "crashes": (f"{cap}; exited by itself (exit code 3)", 3, 2.4, [3]),
    }
    for mode, (reason, code, took, late) in expected.items():
        j = jobs[mode]
        assert j.status is JobStatus.COMPLETED and j.reason == reason and j.exit_code == code
        assert j.ended - j.started == approx(took)
        assert j.objective_values == [8.0] and j.objective_iterations == [2]
        assert _loss(j) == [(1, 9.0), (2, 8.0)]
        assert [m.iteration for m in j.metrics if m.after_stop] == late
        assert [i for i, _ in j.history("validation", "loss", after_stop=True)] == [1, 2, *late]
    assert sorted((c[1], c[2]) for c in calls) == [(8.0, 2)] * 3, "called back with the value at the stop point"
    assert [j.objective_values for j in opt.get_top_experiments(3)] == [[8.0]] * 3
    told = opt.get_optimizer().told  # type: ignore[attr-defined]
    assert len(told) == 3
    for r in told.values():
        assert r.status is JobStatus.COMPLETED and r.values == (8.0,) and r.iteration == 2 and r.budget == 2
        assert r.intermediate == ((1, 9.0), (2, 8.0))


# -- a stopped study: interrupted jobs ---------------------------------------------------------------
def test_interrupted_jobs_are_never_ranked_best_or_called_back(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    gate = {"open": False, "held": False}
    reached, go = threading.Event(), threading.Event()

    def job(params: dict, budget: float | None) -> Any:
        yield 1.0, 1, {"validation/loss": -100.0 - params["x"]}  # a spectacular partial value
        if not gate["open"] and not gate["held"]:
            # The engine's thread runs this at virtual 1 s, with both partial values reported:
            # it waits here while the test stops the study.
            gate["held"] = True
            reached.set()
            assert go.wait(GUARD_SECONDS), "the test never let the job go on"
        yield (1.0 if gate["open"] else 99.0), 2, {"validation/loss": params["x"]}

    space = [UniformParameterRange("x", 0.0, 1.0, step_size=0.25)]
    store_dir = tmp_path / "store"
    calls: list[tuple] = []
    opt = make_optimizer(tmp_path, job, strategy="grid", space=space, total_max_jobs=4)  # type: ignore[arg-type]
    opt.start(job_complete_callback=lambda *a: calls.append(a))
    assert reached.wait(GUARD_SECONDS), "the first job never reported"
    opt.stop(timeout=0)  # asks the engine to stop; returns at once (its thread waits in the job function)
    go.set()
    assert opt.wait(timeout=GUARD_MINUTES)
    assert opt.study.end_reason == "stopped"
    stopped = opt.get_all_experiments()
    assert len(stopped) == 2, "nothing is launched once the study is asked to stop"
    for j in stopped:
        assert j.status is JobStatus.ABORTED and j.interrupted and j.objective_values is None
        assert j.reason == "interrupted: study stopped (stopped)" and j.exit_code == -15
        assert j.ended - j.started == approx(1.0)
        assert _loss(j) == [(1, -100.0 - j.params["x"])]
    assert calls == [] and opt.get_top_experiments(4) == [] and opt.study.best is None
    assert [e for e in Store(store_dir, readonly=True).events("s") if e["kind"] == "new_best"] == []
    capsys.readouterr()
    assert cli(["top", "s", "--storage", str(store_dir)]) == 0
    assert "no job finished with an objective value" in capsys.readouterr().out

    # Resume: the interrupted configurations run again; only finished jobs are ranked and called back, once each.
    gate["open"] = True
    resumed = run(make_optimizer(tmp_path, job, strategy="grid", space=space, total_max_jobs=4),  # type: ignore[arg-type]
                  callback=lambda *a: calls.append(a))
    jobs = resumed.get_all_experiments()
    ranked = [j for j in jobs if j.ranked]
    assert len(jobs) == 6 and len(ranked) == 4
    assert {j.retry_of for j in ranked if j.retry_of} == {j.id for j in stopped}
    assert sorted(c[0] for c in calls) == sorted(j.id for j in ranked)
    assert all(c[1] == c[3]["x"] and c[2] == 2 for c in calls), "the -100 partial values never became a result"
    assert all(j.objective_values == [j.params["x"]] for j in ranked)
    # top, export and get_top_experiments rank with one function
    top_ids = [t.id for t in resumed.get_top_experiments(4)]
    assert top_ids == [j.id for j in sorted(ranked, key=lambda j: j.params["x"])]
    capsys.readouterr()
    assert cli(["export", "s", "--storage", str(store_dir)]) == 0
    data = json.loads(capsys.readouterr().out)
    by_rank = sorted((j for j in data["jobs"] if j["rank"]), key=lambda j: j["rank"])
    assert [j["id"] for j in by_rank] == top_ids
    assert cli(["top", "s", "-k", "4", "--storage", str(store_dir)]) == 0
    table = capsys.readouterr().out.splitlines()[2:]
    assert [line.split()[1] for line in table] == top_ids


# -- the study's time limit set while it runs --------------------------------------------------------
@pytest.mark.parametrize("when", ["before start", "at the first result"])
def test_set_time_limit_puts_the_deadline_on_the_virtual_clock(tmp_path: Path, when: str) -> None:
    # Jobs of 5 steps of 5 s, two at a time: pairs run 0-25 s, 25-50 s, 50 s on. A deadline at 52 s
    # (between two steps: no tie) lets four jobs complete and cuts the third pair 2 s into its first step.
    opt = make_optimizer(tmp_path, steady(step=5.0, iterations=5), total_max_jobs=20)
    set_at: list[float] = []

    def first_result(job_id: str, *_: Any) -> None:
        if when == "at the first result" and not set_at:
            set_at.append(opt.study.now())
            opt.set_time_limit(in_minutes=27.0 / 60)  # 25 s + 27 s = 52 s

    if when == "before start":
        opt.set_time_limit(in_minutes=52.0 / 60)
    run(opt, callback=first_result)
    t0 = opt.study.started_at
    assert set_at == ([] if when == "before start" else [t0 + 25.0])
    assert opt.study.end_reason == "time_limit"
    # Set on the wall clock and moved onto the virtual one, the deadline comes out short by the wall
    # time in between (README, caveats): never later, and far from the steps at 50 s and 55 s.
    assert 51.0 < opt.study.deadline - t0 <= 52.0 + 1e-6
    jobs = opt.get_all_experiments()
    assert [j.status for j in jobs] == [JobStatus.COMPLETED] * 4 + [JobStatus.ABORTED] * 2
    assert [j.started - t0 for j in jobs] == [approx(0.0)] * 2 + [approx(25.0)] * 2 + [approx(50.0)] * 2
    for j in jobs[4:]:
        assert j.interrupted and j.reason == "interrupted: study stopped (time_limit)" and j.exit_code == -15
        assert j.ended == opt.study.deadline and _loss(j) == []
    assert all(not j.interrupted and j.ended - j.started == approx(25.0) for j in jobs[:4])
    # the seed's elapsed() and reached_time_limit() read the study's clock too, not the wall's
    assert opt.reached_time_limit() is True
    assert opt.elapsed() == approx((opt.study.deadline - t0) / 60.0)


def test_set_time_limit_none_clears_the_limit_of_a_running_study(tmp_path: Path) -> None:
    # A one-minute limit would cut the third pair of 25 s jobs at 60 s; cleared at the first result,
    # all eight run to their end (four pairs: 100 s).
    opt = make_optimizer(tmp_path, steady(step=5.0, iterations=5), total_max_jobs=8, optimization_time_limit=1.0)
    cleared: list[float] = []

    def first_result(job_id: str, *_: Any) -> None:
        if not cleared:
            cleared.append(opt.study.now())
            opt.set_time_limit(None)

    run(opt, callback=first_result)
    assert cleared == [opt.study.started_at + 25.0] and opt.study.deadline is None
    assert opt.study.end_reason == "total_max_jobs"
    jobs = opt.get_all_experiments()
    assert len(jobs) == 8 and all(j.status is JobStatus.COMPLETED and not j.interrupted for j in jobs)
    assert opt.study.elapsed == approx(100.0)


# -- max_number_of_concurrent_tasks --------------------------------------------------------------------
def test_concurrency_is_never_exceeded_and_a_freed_slot_is_refilled_at_once(tmp_path: Path) -> None:
    seen_active: list[int] = []

    def job(params: dict, budget: float | None) -> Any:
        seen_active.append(opt.get_num_active_experiments())  # at the job's start, in the engine's thread
        for i in range(1, 4):
            yield params["sleep"], i, {"validation/loss": (params["x"] - 0.3) ** 2 + 1.0 / i}

    space = [UniformParameterRange("x", 0, 1, step_size=0.1), DiscreteParameterRange("sleep", [0.1, 0.2])]
    opt = make_optimizer(tmp_path, job, strategy="grid", space=space,  # type: ignore[arg-type]
                         total_max_jobs=10, max_number_of_concurrent_tasks=3)
    run(opt)
    jobs = opt.get_all_experiments()
    assert len(jobs) == 10 and all(j.status is JobStatus.COMPLETED for j in jobs)
    assert all(j.ended - j.started == approx(3 * j.params["sleep"]) for j in jobs)
    assert max(seen_active) == 3 and seen_active[:3] == [3, 3, 3]
    # Intervals from the store: at no instant were more than 3 jobs running, and at times exactly 3.
    stored = Store(tmp_path / "store", readonly=True).load_jobs("s", with_metrics=False)
    events = sorted([(j.started, 1) for j in stored] + [(j.ended, -1) for j in stored])
    running, peak = 0, 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
        assert 0 <= running <= 3
    assert peak == 3
    # No gap: the first three start together, every other job at the instant another one exited.
    t0 = min(j.started for j in jobs)
    assert [j.started for j in jobs[:3]] == [t0] * 3
    ends = {j.ended for j in jobs}
    assert all(j.started in ends and j.queued == j.started for j in jobs[3:])


# -- resuming by name: total_max_jobs across runs -----------------------------------------------------
def test_same_study_name_resumes_and_total_max_jobs_counts_across(tmp_path: Path) -> None:
    space = [UniformParameterRange("x", 0, 1, step_size=0.1), DiscreteParameterRange("y", [0, 1])]
    job = steady(step=1.0, iterations=3, value=lambda p, i: (p["x"] - 0.3) ** 2 + p["y"] + 1.0 / i)

    def study(total: int, hyper_parameters: Sequence[Any] = space) -> Any:
        return make_optimizer(tmp_path, job, strategy="random", space=hyper_parameters,  # type: ignore[arg-type]
                              total_max_jobs=total)

    first = run(study(4))
    ids = [j.id for j in first.get_all_experiments()]
    assert len(ids) == 4 and first.study.end_reason == "total_max_jobs"
    again = run(study(4))
    assert [j.id for j in again.get_all_experiments()] == ids, "nothing new: the budget was already used"
    assert again.study.launched == 4 and again.study.end_reason == "total_max_jobs"
    more = run(study(7))
    jobs = more.get_all_experiments()
    assert len(jobs) == 7 and [j.id for j in jobs[:4]] == ids
    assert all(j.status is JobStatus.COMPLETED for j in jobs)
    assert len({json.dumps(j.params, sort_keys=True) for j in jobs}) == 7, "random never repeats across resumes"
    with pytest.raises(StudyConflictError, match="different search space"):
        study(8, [DiscreteParameterRange("x", [0.5])]).start()
