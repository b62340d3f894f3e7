"""restore(): finished trials rebuild the model; interrupted ones run on in fresh brackets."""

from __future__ import annotations

import math

import numpy as np
from bohb_helpers import MIN, SPACE, completed, key, multi_fidelity, run, settings

from hyperscout.job import JobStatus
from hyperscout.strategy import WAIT, Suggestion, TrialRecord, TrialResult
from hyperscout_bohb import OptimizerBOHB


def _records(jobs, budget_parameter=None):  # type: ignore[no-untyped-def]
    return [TrialRecord(j.trial_id, j.params, j.result, None if budget_parameter else j.budget) for j in jobs]


def test_finished_trials_rebuild_the_same_model() -> None:
    first = OptimizerBOHB(SPACE, MIN, settings(seed=0))
    jobs = run(first, 40).jobs
    assert first.driver.generator.kde_models
    second = OptimizerBOHB(SPACE, MIN, settings(seed=0))
    second.restore(_records(jobs))
    a, b = first.driver.generator, second.driver.generator
    assert a.kde_models.keys() == b.kde_models.keys()
    for budget in a.kde_models:
        for part in ("good", "bad"):
            assert np.allclose(a.kde_models[budget][part].data, b.kde_models[budget][part].data)
    assert {k: len(v) for k, v in a.losses.items()} == {k: len(v) for k, v in b.losses.items()}
    # the schedule restarts at bracket 0 and the resumed run is itself reproducible
    third = OptimizerBOHB(SPACE, MIN, settings(seed=0))
    third.restore(_records(jobs))
    more_2 = run(second, 13).jobs
    more_3 = run(third, 13).jobs
    assert [j.budget for j in more_2] == [1.0] * 9 + [3.0] * 3 + [9.0]
    assert [key(j.params) for j in more_2] == [key(j.params) for j in more_3]
    # ... without replaying the first run's draws
    assert not {key(j.params) for j in more_2[:9]} & {key(j.params) for j in jobs}


def test_failed_records_count_as_inf() -> None:
    first = OptimizerBOHB(SPACE, MIN, settings(seed=1))
    jobs = run(first, 13).jobs
    records = [*_records(jobs), TrialRecord("boom", jobs[0].params, TrialResult(JobStatus.FAILED), 1.0)]
    s = OptimizerBOHB(SPACE, MIN, settings(seed=1))
    s.restore(records)
    assert math.inf in s.driver.generator.losses[1.0]


def test_interrupted_trials_join_a_fresh_bracket_at_their_budget() -> None:
    first = OptimizerBOHB(SPACE, MIN, settings(seed=2))
    jobs = run(first, 13).jobs
    done, cut = jobs[:10], [jobs[10], jobs[11]]  # two budget-3 jobs were running when the study stopped
    assert {j.budget for j in cut} == {3.0}
    records = _records(done) + [TrialRecord(f"rerun-{j.trial_id}", j.params, None, j.budget) for j in cut]
    s = OptimizerBOHB(SPACE, MIN, settings(seed=2))
    s.restore(records)
    assert [(b.configs, b.budgets) for b in s.opened] == [((3, 1), (3, 9))]
    assert s.trial_slot("rerun-" + cut[0].trial_id) == (0, 0, 3.0)
    # the bracket's third budget-3 slot is a new configuration, then the rung waits for the re-runs
    extra = s.ask("new")
    assert isinstance(extra, Suggestion) and extra.budget == 3.0
    assert s.ask("again") is WAIT
    for j in cut:
        s.tell(f"rerun-{j.trial_id}", TrialResult(JobStatus.COMPLETED, (multi_fidelity(j.params, 3),), 3))
    s.tell("new", TrialResult(JobStatus.COMPLETED, (multi_fidelity(extra.params, 3),), 3))
    top = s.ask("top")
    assert isinstance(top, Suggestion) and top.budget == 9.0
    best = min([*(j.params for j in cut), extra.params], key=lambda p: multi_fidelity(p, 3))
    assert key(top.params) == key(best)
    s.tell("top", TrialResult(JobStatus.COMPLETED, (0.1,), 9))
    # then the regular schedule, from bracket 0
    assert [j.budget for j in run(s, 9).jobs] == [1.0] * 9


def test_budget_parameter_records_carry_the_budget_in_their_params() -> None:
    first = OptimizerBOHB(SPACE, MIN, settings(seed=3), budget_parameter="epochs")
    jobs = run(first, 12, budget_of=lambda sug: float(sug.params["epochs"])).jobs
    records = _records(jobs[:11], budget_parameter="epochs")
    records.append(TrialRecord("rerun", jobs[11].params, None, None))
    s = OptimizerBOHB(SPACE, MIN, settings(seed=3), budget_parameter="epochs")
    s.restore(records)
    assert len(s.driver.generator.losses[1.0]) == 9 and len(s.driver.generator.losses[3.0]) == 2
    assert s.trial_slot("rerun") == (0, 0, 3.0)
    s.tell("rerun", TrialResult(JobStatus.COMPLETED, (0.5,), 3))
    assert s.trial_slot("rerun") is None


def test_foreign_records_are_ignored_without_crashing() -> None:
    s = OptimizerBOHB(SPACE, MIN, settings(seed=4))
    s.restore([
        TrialRecord("odd-budget", {"x": 0.1, "k": 2}, TrialResult(JobStatus.COMPLETED, (0.3,), 5), 5.0),
        TrialRecord("no-budget", {"x": 0.1, "k": 2}, TrialResult(JobStatus.COMPLETED, (0.3,), 5), None),
        TrialRecord("bad-params", {"x": "a", "k": 2}, TrialResult(JobStatus.COMPLETED, (0.3,), 1), 1.0),
        TrialRecord("pending-odd", {"x": 0.1, "k": 2}, None, 4.0),
    ])
    assert not s.driver.generator.losses and not s.opened
    s.tell("pending-odd", TrialResult(JobStatus.COMPLETED, (0.3,), 4))  # accepted and ignored
    assert [j.budget for j in run(s, 13, outcome=completed()).jobs][:9] == [1.0] * 9
