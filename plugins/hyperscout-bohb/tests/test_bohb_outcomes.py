"""The outcome rule (TrialResult's table) as BOHB, Hyperband and SH apply it, in tell and in restore.

completed -> its loss (from ``values`` only); pruned, aborted for time and failed -> hpbandster's
"crashed" (``inf``); interrupted -> nothing at all: the job is handed back to its rung, as if it had
never been dispatched, and neither the model nor the promotions ever see it.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from bohb_helpers import MIN, SPACE, Job, completed, key, multi_fidelity, run, settings

from hyperscout.job import JobStatus
from hyperscout.params import (
    DiscreteParameterRange,
    SearchSpace,
    UniformIntegerParameterRange,
)
from hyperscout.strategy import WAIT, Suggestion, TrialRecord, TrialResult
from hyperscout.testing.strategy_suite import synthetic_value
from hyperscout_bohb import Hyperband, OptimizerBOHB, SuccessiveHalvingSearch, loss_of

INTS = SearchSpace((UniformIntegerParameterRange("a", 0, 1000), UniformIntegerParameterRange("b", 0, 1000)))
#: the conformance kit's objective: rugged, so BOHB's good density collapses onto single points
RUGGED = completed(lambda prm, b: synthetic_value(prm))


def _done(value: float, steps: int = 1, history: tuple[tuple[int, float], ...] | None = None) -> TrialResult:
    return TrialResult(JobStatus.COMPLETED, (value,), steps, history or tuple((i, value) for i in range(1, steps + 1)))


def _interrupted(partial: float) -> TrialResult:
    return TrialResult(JobStatus.ABORTED, None, 1, ((1, partial),), interrupted=True, reason="interrupted: study stopped")


# One row per line of TrialResult's table (interrupted is not a loss at all: tested separately below).
OUTCOMES = [
    ("completed", _done(0.3, 3, ((1, 0.5), (2, 0.4), (3, 0.3))), 0.3),
    ("pruned", TrialResult(JobStatus.PRUNED, None, 1, ((1, 0.01),), reason="pruned at iteration 1"), math.inf),
    ("aborted-time-limit", TrialResult(JobStatus.ABORTED, None, 2, ((1, 0.01), (2, 0.01)),
                                       reason="exceeded time_limit_per_job"), math.inf),
    ("failed", TrialResult(JobStatus.FAILED, None, None, (), reason="exit code 1"), math.inf),
]


@pytest.mark.parametrize(("status", "result", "loss"), OUTCOMES, ids=[o[0] for o in OUTCOMES])
def test_each_outcome_has_its_loss(status: str, result: TrialResult, loss: float) -> None:
    assert loss_of(result, maximize=False) == loss
    assert loss_of(result, maximize=True) == (-loss if math.isfinite(loss) else math.inf)


def test_a_completed_loss_is_its_value_never_a_later_intermediate() -> None:
    # the tracker's "ran past its rung budget": the history goes on below the value the engine kept
    past_budget = _done(0.4, 3, ((1, 0.9), (2, 0.6), (3, 0.4), (4, 0.01), (5, 0.001)))
    assert loss_of(past_budget, maximize=False) == 0.4
    assert loss_of(TrialResult(JobStatus.COMPLETED, None, 3, ((3, 0.2),)), maximize=False) == math.inf
    # values stray on a non-completed result (an older engine set them) are not a loss either
    assert loss_of(TrialResult(JobStatus.ABORTED, (0.0,), 2, ((2, 0.0),)), maximize=False) == math.inf


def test_promotion_ranks_by_values_not_by_the_last_intermediate() -> None:
    s = SuccessiveHalvingSearch(SPACE, MIN, settings(seed=0, max_concurrency=9))
    asked = [s.ask(f"t{i}") for i in range(9)]
    assert all(isinstance(a, Suggestion) and a.budget == 1.0 for a in asked)
    for i in range(9):
        value = 1.0 + i  # t0 best ... t8 worst, by the value the engine kept
        tail = -100.0 if i >= 6 else value  # the worst three "got better" after the stop point
        s.tell(f"t{i}", _done(value, 1, ((1, value), (2, tail))))
    promoted = [s.ask(f"p{i}") for i in range(3)]
    assert {key(p.params) for p in promoted} == {key(a.params) for a in asked[:3]}  # type: ignore[union-attr]


@pytest.mark.parametrize("cls", [OptimizerBOHB, Hyperband, SuccessiveHalvingSearch])
def test_every_outcome_told_in_one_rung_keeps_the_bracket_going(cls: type) -> None:
    s = cls(SPACE, MIN, settings(seed=1, max_concurrency=9))
    asked = [s.ask(f"t{i}") for i in range(9)]
    results = [o[1] for o in OUTCOMES] + [_done(0.2), _done(0.25), _done(0.5), _done(0.9), _done(0.35)]
    for i, r in enumerate(results):
        s.tell(f"t{i}", r)
    promoted = [s.ask(f"p{i}") for i in range(3)]
    assert all(isinstance(p, Suggestion) and p.budget == 3.0 for p in promoted)
    crashed = {key(asked[i].params) for i in (1, 2, 3)}  # type: ignore[union-attr]
    assert not crashed & {key(p.params) for p in promoted}  # type: ignore[union-attr]


def test_an_interrupted_job_reaches_neither_the_model_nor_the_rung() -> None:
    s = OptimizerBOHB(SPACE, MIN, settings(seed=2, max_concurrency=9))
    asked = [s.ask(f"t{i}") for i in range(9)]
    for i in range(8):
        s.tell(f"t{i}", _done(multi_fidelity(asked[i].params, 1)))  # type: ignore[union-attr]
    s.tell("t8", _interrupted(-1e9))
    assert len(s.driver.generator.losses[1.0]) == 8 and math.inf not in s.driver.generator.losses[1.0]
    # the rung is not closed without it: its configuration is handed out again, at the same budget
    again = s.ask("t8-again")
    assert isinstance(again, Suggestion) and again.budget == 1.0
    assert key(again.params) == key(asked[8].params)  # type: ignore[union-attr]
    assert s.trial_slot("t8-again") == (0, 0, 1.0)
    assert s.ask("early") is WAIT
    s.tell("t8-again", _done(multi_fidelity(again.params, 1)))
    assert len(s.driver.generator.losses[1.0]) == 9
    assert isinstance(s.ask("next"), Suggestion)


@pytest.mark.parametrize("cls", [OptimizerBOHB, Hyperband, SuccessiveHalvingSearch])
def test_a_search_with_interruptions_is_the_search_without_them(cls: type) -> None:
    """What an interrupted job reported, and that it ran at all, changes nothing that follows."""

    def sequence(interrupt: frozenset[int], partial: float) -> list[tuple[Any, float]]:
        s = cls(SPACE, MIN, settings(seed=3))
        out: list[tuple[Any, float]] = []
        pending = set(interrupt)
        i = 0
        while len(out) < 40:
            answer = s.ask(f"s{i}")
            assert isinstance(answer, Suggestion)
            if len(out) in pending:  # the job that would be the n-th is interrupted once
                pending.discard(len(out))
                s.tell(f"s{i}", _interrupted(partial))
            else:
                out.append((key(answer.params), float(answer.budget)))  # type: ignore[arg-type]
                s.tell(f"s{i}", _done(multi_fidelity(answer.params, answer.budget)))  # type: ignore[arg-type]
            i += 1
        return out

    plain = sequence(frozenset(), 0.0)
    cut = frozenset({0, 5, 9, 12, 21})
    assert sequence(cut, -1e9) == plain
    assert sequence(cut, 1e9) == plain


def _records(jobs: list[Job]) -> list[TrialRecord]:
    return [TrialRecord(j.trial_id, j.params, j.result, j.budget) for j in jobs]


def test_restore_applies_the_same_rule() -> None:
    first = OptimizerBOHB(SPACE, MIN, settings(seed=4))
    jobs = run(first, 9).jobs  # bracket 0, first rung: budget 1
    p = [j.params for j in jobs]
    records = [
        TrialRecord("c", p[0], _done(0.3, 3, ((1, 0.9), (2, 0.3), (3, -50.0))), 1.0),
        TrialRecord("pr", p[1], OUTCOMES[1][1], 1.0),
        TrialRecord("tl", p[2], TrialResult(JobStatus.ABORTED, (0.0,), 1, ((1, 0.0),), reason="time"), 1.0),
        TrialRecord("f", p[3], OUTCOMES[3][1], 1.0),
        TrialRecord("int", p[4], _interrupted(-1e9), 1.0),  # superseded by "rerun" below
        TrialRecord("rerun", p[4], None, 1.0),
    ]
    s = OptimizerBOHB(SPACE, MIN, settings(seed=4))
    s.restore(records)
    assert sorted(s.driver.generator.losses[1.0]) == [0.3, math.inf, math.inf, math.inf]
    assert s.trial_slot("rerun") == (0, 0, 1.0)
    # the re-run, interrupted again in this process, is handed back and records nothing
    s.tell("rerun", _interrupted(1e9))
    assert sorted(s.driver.generator.losses[1.0]) == [0.3, math.inf, math.inf, math.inf]
    back = s.ask("rerun-2")
    assert isinstance(back, Suggestion) and key(back.params) == key(p[4]) and back.budget == 1.0


@pytest.mark.parametrize("seed", [0, 1])
def test_a_configuration_is_started_afresh_only_once(seed: int) -> None:
    # On an integer axis BOHB's density ratio peaks on a good point it has run and rounding lands
    # on it exactly; only promotions (within one bracket) may run a configuration again.
    s = OptimizerBOHB(INTS, MIN, settings(seed=seed))
    jobs = run(s, 60, outcome=RUGGED).jobs
    assert s.driver.picks["model"] > 10
    bracket_of: dict[tuple, int] = {}
    for j in jobs:
        assert j.slot is not None
        assert bracket_of.setdefault(key(j.params), j.slot[0]) == j.slot[0], f"{j.params} started again"


@pytest.mark.parametrize("seed", [0, 3])
def test_a_restored_configuration_is_not_started_afresh(seed: int) -> None:
    first = run(OptimizerBOHB(INTS, MIN, settings(seed=seed)), 30, outcome=RUGGED).jobs
    s = OptimizerBOHB(INTS, MIN, settings(seed=seed))
    s.restore(_records(first))
    again = run(s, 30, outcome=RUGGED).jobs
    assert s.driver.picks["model"] > 5
    assert not {key(j.params) for j in first} & {key(j.params) for j in again}


def test_a_space_run_through_still_gets_suggestions() -> None:
    """Four configurations in all: once each has run, repeating one is the only way on."""
    tiny = SearchSpace((DiscreteParameterRange("opt", ["adam", "sgd"]), UniformIntegerParameterRange("k", 1, 2)))
    for cls in (OptimizerBOHB, Hyperband):
        s = cls(tiny, MIN, settings(seed=0))
        jobs = run(s, 26, outcome=completed(lambda prm, b: float(prm["opt"] == "sgd") + prm["k"] / b)).jobs
        assert len(jobs) == 26
        assert len({key(j.params) for j in jobs}) == 4


@pytest.mark.parametrize(("cls", "steered"), [(OptimizerBOHB, True), (Hyperband, False)])
def test_new_configurations_follow_the_told_values_only_with_the_model(cls: type, steered: bool) -> None:
    """The kit's ``test_results_steer_the_search`` passes for Hyperband through promotions alone;
    for BOHB the configurations it samples afresh must change too (the model is fed)."""

    def fresh(sign: float) -> list[tuple]:
        s = cls(SPACE, MIN, settings(seed=11))
        jobs = run(s, 40, outcome=completed(lambda prm, b: sign * multi_fidelity(prm, b))).jobs
        return [key(j.params) for j in jobs if j.slot is not None and j.slot[1] == 0]

    assert (fresh(1.0) != fresh(-1.0)) is steered
