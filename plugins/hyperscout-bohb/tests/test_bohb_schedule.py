"""The ask/tell state machine over a synthetic multi-fidelity objective: rungs, promotions, job counts."""

from __future__ import annotations

import math
import os
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from bohb_helpers import MAX, MIN, SPACE, Job, completed, key, multi_fidelity, run, settings

from hyperscout.errors import UnsupportedError
from hyperscout.job import JobStatus
from hyperscout.strategy import WAIT, StudySettings, Suggestion, TrialResult
from hyperscout_bohb import Hyperband, OptimizerBOHB, SuccessiveHalvingSearch, cycle, loss_of, rung_budgets

# The README's table for eta=3, min=1, max=9, written out job by job.
BRACKET_0 = [1.0] * 9 + [3.0] * 3 + [9.0]
BRACKET_1 = [3.0] * 3 + [9.0]
BRACKET_2 = [9.0] * 3
HYPERBAND_CYCLE = BRACKET_0 + BRACKET_1 + BRACKET_2


def test_the_documented_bracket_table() -> None:
    assert rung_budgets(3, 1, 9) == (1, 3, 9)
    table = [(b.configs, b.budgets, b.jobs) for b in cycle(3, 1, 9)]
    assert table == [((9, 3, 1), (1, 3, 9), 13), ((3, 1), (3, 9), 4), ((3,), (9,), 3)]
    assert sum(b.jobs for b in cycle(3, 1, 9)) == 20
    assert [b.jobs for b in cycle(3, 1, 9, deepest_only=True)] == [13]
    # integer-safe shapes where hpbandster's float arithmetic loses a configuration
    assert cycle(3, 1, 81)[0].configs == (81, 27, 9, 3, 1)
    assert rung_budgets(3, 1, 10) == (1, 3, 10) and rung_budgets(3, 2, 10) == (3, 10)
    assert [b.jobs for b in cycle(2, 1, 8)] == [15, 7, 6, 4]


@pytest.mark.parametrize(
    ("cls", "expected"),
    [
        (OptimizerBOHB, HYPERBAND_CYCLE * 2 + BRACKET_0[:5]),
        (Hyperband, HYPERBAND_CYCLE * 2 + BRACKET_0[:5]),
        (SuccessiveHalvingSearch, BRACKET_0 * 3 + BRACKET_0[:6]),
    ],
)
def test_sequential_rung_budgets_follow_the_schedule(cls, expected) -> None:  # type: ignore[no-untyped-def]
    s = cls(SPACE, MIN, settings(seed=0))
    result = run(s, len(expected))
    assert [j.budget for j in result.jobs] == expected
    assert all(isinstance(j.suggestion.budget, float) for j in result.jobs)
    assert result.waits == 0  # one job at a time never waits


def _rungs(jobs: list[Job]) -> dict[tuple[int, int], list[Job]]:
    out: dict[tuple[int, int], list[Job]] = {}
    for j in jobs:
        assert j.slot is not None
        out.setdefault(j.slot[:2], []).append(j)
    return out


@pytest.mark.parametrize("objectives", [MIN, MAX], ids=["min", "max"])
def test_the_best_of_each_rung_are_promoted_and_rerun(objectives) -> None:  # type: ignore[no-untyped-def]
    sign = -1.0 if objectives is MAX else 1.0  # "max" reports accuracy = -loss
    outcome = completed(lambda p, b: sign * multi_fidelity(p, b))
    s = OptimizerBOHB(SPACE, objectives, settings(seed=5))
    jobs = run(s, 13, outcome=outcome).jobs
    rungs = _rungs(jobs)
    assert [len(rungs[(0, r)]) for r in range(3)] == [9, 3, 1]
    for stage, keep in [(0, 3), (1, 1)]:
        ranked = sorted(rungs[(0, stage)], key=lambda j: sign * j.result.value)  # type: ignore[union-attr]
        best = {key(j.params) for j in ranked[:keep]}
        assert {key(j.params) for j in rungs[(0, stage + 1)]} == best
    # the promoted configuration ran again, as a new job, and did better with more budget
    final = rungs[(0, 2)][0]
    first = next(j for j in rungs[(0, 0)] if key(j.params) == key(final.params))
    assert final.trial_id != first.trial_id
    assert sign * final.result.value < sign * first.result.value  # type: ignore[union-attr]


def test_total_jobs_and_waits_with_concurrency() -> None:
    s = OptimizerBOHB(SPACE, MIN, settings(seed=1, max_concurrency=3))
    result = run(s, 17, concurrency=3)
    assert len(result.jobs) == 17
    assert Counter(j.budget for j in result.jobs) == Counter(BRACKET_0 + BRACKET_1)
    assert result.waits > 0 and result.waits_idle == 0  # WAIT only while jobs are running
    assert [b.configs for b in s.opened] == [(9, 3, 1), (3, 1)]
    # rungs never overlap without parallel_brackets: every budget-3 job of bracket 0 is asked
    # after every budget-1 job of it was told
    order = [j.slot for j in result.jobs]
    assert order.index((0, 1, 3.0)) > max(i for i, o in enumerate(order) if o == (0, 0, 1.0))


def test_parallel_brackets_fill_the_slots_instead_of_waiting() -> None:
    s = Hyperband(SPACE, MIN, settings(seed=1, max_concurrency=4), parallel_brackets=True)
    result = run(s, 40, concurrency=4)
    assert len(result.jobs) == 40 and result.waits == 0
    rungs = _rungs(result.jobs)
    serials = [j.slot[0] for j in result.jobs]  # type: ignore[index]
    last_of_0 = max(i for i, b in enumerate(serials) if b == 0)
    assert serials.index(1) < last_of_0  # bracket 1 started while bracket 0 was still running
    for (serial, stage), members in rungs.items():
        plan = s.opened[serial]
        assert len(members) <= plan.configs[stage]
        assert {j.budget for j in members} == {float(plan.budgets[stage])}


def test_failed_and_aborted_jobs_get_inf_and_the_bracket_moves_on() -> None:
    failed_keys: set[tuple] = set()

    def outcome(job: Job) -> TrialResult:
        n = int(job.trial_id[1:])
        if n % 3 == 0:
            failed_keys.add(key(job.params))
            return TrialResult(JobStatus.FAILED)
        if n % 3 == 1 and job.budget == 1.0:
            failed_keys.add(key(job.params))  # cut by time_limit_per_job after some reports
            return TrialResult(JobStatus.ABORTED, (0.0,), 1, ((1, 0.0),), job.budget)
        return completed()(job)

    s = OptimizerBOHB(SPACE, MIN, settings(seed=2, max_concurrency=2))
    result = run(s, 45, concurrency=2, outcome=outcome)
    assert len(result.jobs) == 45 and result.waits_idle == 0
    for j in result.jobs:
        if j.budget > 1.0 and j.slot[1] > 0:  # type: ignore[index]
            # a promoted configuration never comes from a failed or aborted run
            earlier = [e for e in result.jobs if e.slot[0] == j.slot[0] and e.slot[1] < j.slot[1]  # type: ignore[index]
                       and key(e.params) == key(j.params)]
            assert all(e.result.status is JobStatus.COMPLETED for e in earlier)  # type: ignore[union-attr]


def test_a_rung_where_every_job_failed_is_refilled_with_new_configurations() -> None:
    def outcome(job: Job) -> TrialResult:
        return TrialResult(JobStatus.FAILED) if job.budget == 1.0 else completed()(job)

    s = Hyperband(SPACE, MIN, settings(seed=4))
    jobs = run(s, 13, outcome=outcome).jobs
    assert [j.budget for j in jobs] == BRACKET_0
    first_rung = {key(j.params) for j in jobs[:9]}
    assert not first_rung & {key(j.params) for j in jobs[9:12]}


def test_loss_conversion() -> None:
    ok = TrialResult(JobStatus.COMPLETED, (0.25,), 3)
    assert loss_of(ok, maximize=False) == 0.25 and loss_of(ok, maximize=True) == -0.25
    assert loss_of(TrialResult(JobStatus.FAILED), False) == math.inf
    assert loss_of(TrialResult(JobStatus.ABORTED, (0.1,), 2), False) == math.inf
    assert loss_of(TrialResult(JobStatus.PRUNED, (0.1,), 2), True) == math.inf
    assert loss_of(TrialResult(JobStatus.COMPLETED, (math.nan,), 2), False) == math.inf
    assert loss_of(None, False) == math.inf


def test_budget_parameter_passes_the_budget_as_an_integer_parameter() -> None:
    s = OptimizerBOHB(SPACE, MIN, settings(seed=0), budget_parameter="epochs")
    result = run(s, 20, budget_of=lambda sug: float(sug.params["epochs"]))
    assert all(j.suggestion.budget is None for j in result.jobs)
    assert [j.params["epochs"] for j in result.jobs] == [int(b) for b in HYPERBAND_CYCLE]
    assert all(type(j.params["epochs"]) is int for j in result.jobs)


def test_min_equal_max_gives_one_job_brackets() -> None:
    s = OptimizerBOHB(SPACE, MIN, settings(9, 9, seed=0))
    result = run(s, 5)
    assert [j.budget for j in result.jobs] == [9.0] * 5
    assert [b.configs for b in s.opened] == [(1,)] * 5


def test_seeded_runs_are_reproducible_and_ignore_numpys_global_state() -> None:
    # Whatever numpy's global state was seeded with before, the strategy's own seed decides.
    # (The global state is handed between drivers lazily, so after a BOHB call it holds BOHB's
    # stream; nothing else in the optimizer's process draws from it.)
    def sequence(seed: int, global_seed: int) -> list[tuple]:
        np.random.seed(global_seed)
        s = OptimizerBOHB(SPACE, MIN, settings(seed=seed, max_concurrency=2))
        return [(key(j.params), j.budget) for j in run(s, 45, concurrency=2).jobs]

    a = sequence(7, 1)
    assert a == sequence(7, 12345)
    assert a != sequence(8, 1)


def _alone(seed: int, n: int) -> list[tuple]:
    return [(key(j.params), j.budget) for j in run(OptimizerBOHB(SPACE, MIN, settings(seed=seed)), n).jobs]


def test_two_strategies_side_by_side_do_not_interfere() -> None:
    n = 45
    a, b = OptimizerBOHB(SPACE, MIN, settings(seed=1)), OptimizerBOHB(SPACE, MIN, settings(seed=2))
    got: dict[str, list[tuple]] = {"a": [], "b": []}
    for i in range(n):  # interleave every ask and tell
        for name, s in (("a", a), ("b", b)):
            sug = s.ask(f"{name}{i}")
            assert isinstance(sug, Suggestion)
            got[name].append((key(sug.params), sug.budget))
        for name, s in (("a", a), ("b", b)):
            params, budget = dict(got[name][-1][0]), got[name][-1][1]
            v = multi_fidelity(params, budget)
            s.tell(f"{name}{i}", TrialResult(JobStatus.COMPLETED, (v,), int(budget)))
    assert got["a"] == _alone(1, n) and got["b"] == _alone(2, n)
    assert a.driver.picks["model"] > 0 and b.driver.picks["model"] > 0  # numpy-driven sampling was exercised


def test_two_strategies_in_two_threads_do_not_interfere() -> None:
    n = 45
    got: dict[int, list[tuple]] = {}

    def work(seed: int) -> None:
        got[seed] = _alone(seed, n)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in (1, 2, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == {seed: _alone(seed, n) for seed in (1, 2, 3)}


@pytest.mark.parametrize(
    ("options", "limits", "needle"),
    [
        ({"eta": 1}, {}, "eta=1"),
        ({"eta": "3"}, {}, "eta='3'"),
        ({"top_n_percent": 0}, {}, "top_n_percent=0"),
        ({"num_samples": 0}, {}, "num_samples=0"),
        ({"random_fraction": 1.5}, {}, "random_fraction=1.5"),
        ({"bandwidth_factor": -1}, {}, "bandwidth_factor=-1"),
        ({"min_bandwidth": 0}, {}, "min_bandwidth=0"),
        ({"min_points_in_model": 2}, {}, "min_points_in_model=2"),
        ({"budget_parameter": "x"}, {}, "budget_parameter='x'"),
        ({"budget_parameter": ""}, {}, "budget_parameter=''"),
        ({"parallel_brackets": "yes"}, {}, "parallel_brackets='yes'"),
        ({"sampler": "tpe"}, {}, "'sampler'"),
        ({}, {"min_iteration_per_job": 0}, "min_iteration_per_job"),
        ({}, {"max_iteration_per_job": None}, "max_iteration_per_job"),
        ({}, {"min_iteration_per_job": None}, "min_iteration_per_job"),
    ],
)
def test_bad_options_are_one_line_errors(options, limits, needle) -> None:  # type: ignore[no-untyped-def]
    st = StudySettings(**{"min_iteration_per_job": 1, "max_iteration_per_job": 9, **limits})
    with pytest.raises(UnsupportedError) as info:
        OptimizerBOHB.check(SPACE, MIN, st, options)
    msg = str(info.value)
    assert needle in msg and "\n" not in msg and "bohb" in msg
    if "sampler" not in options:  # the constructor refuses the same values
        with pytest.raises(UnsupportedError):
            OptimizerBOHB(SPACE, MIN, st, **options)


def test_model_options_belong_to_bohb_only() -> None:
    with pytest.raises(UnsupportedError, match="'top_n_percent'"):
        Hyperband.check(SPACE, MIN, settings(), {"top_n_percent": 10})
    assert set(OptimizerBOHB.option_names()) == {
        "eta", "min_points_in_model", "top_n_percent", "num_samples", "random_fraction",
        "bandwidth_factor", "min_bandwidth", "budget_parameter", "parallel_brackets",
    }
    assert set(Hyperband.option_names()) == set(SuccessiveHalvingSearch.option_names()) == {
        "eta", "budget_parameter", "parallel_brackets",
    }


def test_wait_is_answered_only_while_a_rung_has_running_jobs() -> None:
    s = SuccessiveHalvingSearch(SPACE, MIN, settings(seed=0, max_concurrency=9))
    asked = [s.ask(f"t{i}") for i in range(9)]
    assert all(isinstance(a, Suggestion) for a in asked)
    assert s.ask("t9") is WAIT
    for i, a in enumerate(asked[:-1]):
        s.tell(f"t{i}", TrialResult(JobStatus.COMPLETED, (multi_fidelity(a.params, 1),), 1))  # type: ignore[union-attr]
        assert s.ask(f"w{i}") is WAIT
    s.tell("t8", TrialResult(JobStatus.FAILED))
    nxt = s.ask("t10")
    assert isinstance(nxt, Suggestion) and nxt.budget == 3.0


def _sockets() -> set[str]:
    fds = Path("/proc/self/fd")
    out = set()
    for fd in fds.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:"):
            out.add(target)
    return out


def test_nothing_opens_a_socket() -> None:
    # hpbandster's Master/worker/Pyro machinery is never used: no name server, no port
    before = _sockets()
    s = OptimizerBOHB(SPACE, MIN, settings(seed=0, max_concurrency=2))
    assert len(run(s, 30, concurrency=2).jobs) == 30
    assert _sockets() <= before
