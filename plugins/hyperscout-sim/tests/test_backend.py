"""The backend contract, checked on the simulation directly (no engine): the conformance checks of
:class:`hyperscout.testing.BackendTestSuite` that make sense without processes, plus the clock."""

from __future__ import annotations

import math
import random
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from simkit import approx, exited, steady

from hyperscout.backend import JobExited, JobQueued, JobSpec, JobStarted, MetricReported, Reattached
from hyperscout.errors import ConfigError, UnsupportedError
from hyperscout.plugins import backends
from hyperscout.testing.backend_suite import Harness
from hyperscout_sim import SimBackend, SimExit, SimTask


class Sim:
    """An opened backend with a recording sink and a clock to run until every job exited."""

    def __init__(self, backend: SimBackend, tmp_path: Path) -> None:
        self.backend = backend
        self.h = Harness(backend, tmp_path, sys.executable, 5.0)
        backend.open(self.h.recorder)
        self.n = 0

    @property
    def events(self) -> list[Any]:
        return self.h.recorder.events()

    def launch(self, job: Any, params: dict | None = None, job_id: str | None = None) -> str:
        self.n += 1
        spec = JobSpec(job_id=job_id or f"j{self.n}", study="t", params=params or {"x": 0.5},
                       task=SimBackend.base_task(job), workdir="/nonexistent")
        self.h.launched.append(spec.job_id)
        self.backend.launch(spec)
        return spec.job_id

    def run_all(self, limit: int = 100_000) -> None:
        """Advance the way the engine does (never more than a virtual second at a time) until all exited."""
        for _ in range(limit):
            if self.backend.in_flight == 0:
                return
            self.backend.advance(self.backend.now() + 1.0)
        raise AssertionError("jobs still running after the step limit")

    def kinds(self, job_id: str) -> list[type]:
        return [type(e) for e in self.h.recorder.events(job_id)]

    def check(self) -> None:
        for job_id in self.h.launched:
            self.h.check_order(job_id)


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Sim]:
    s = Sim(SimBackend(origin=1_000_000), tmp_path)
    yield s
    s.backend.close()
    s.check()


def make(tmp_path: Path, **options: Any) -> Sim:
    return Sim(SimBackend(origin=1_000_000, **options), tmp_path)


# -- one job ------------------------------------------------------------------------------------
def test_one_job_runs_to_a_clean_exit_in_order(sim: Sim) -> None:
    job_id = sim.launch(steady(step=2.0, iterations=3))
    assert sim.events == [], "launch() only schedules: nothing happens until the clock moves"
    start = sim.backend.now()
    sim.run_all()
    assert sim.kinds(job_id) == [JobStarted, MetricReported, MetricReported, MetricReported, JobExited]
    ex = exited(sim.events, job_id)
    assert ex.exit_code == 0 and ex.reason is None
    assert ex.time - start == approx(6.0)
    assert [e.point.time - start for e in sim.events if isinstance(e, MetricReported)] == [approx(2), approx(4),
                                                                                          approx(6)]


def test_metrics_arrive_exactly(sim: Sim) -> None:
    def job(params: dict, budget: float | None) -> Iterator[Any]:
        for i in range(5):
            yield 0.5, i, {"train/loss": 1.0 / (i + 1)}
        yield 1, 10, {"validation/accuracy": 0.75, ("odd/title", "série ü"): -2.5e-8}
        yield 1, 11, {"validation/accuracy": float("nan")}

    job_id = sim.launch(job)
    sim.run_all()
    points = [e.point for e in sim.events if isinstance(e, MetricReported) and e.job_id == job_id]
    assert [(p.title, p.series, p.iteration) for p in points][:5] == [("train", "loss", i) for i in range(5)]
    assert [p.value for p in points[:5]] == [1.0 / (i + 1) for i in range(5)]
    assert (points[5].key, points[5].iteration, points[5].value) == ("validation/accuracy", 10, 0.75)
    assert (points[6].title, points[6].series, points[6].value) == ("odd/title", "série ü", -2.5e-8)
    assert math.isnan(points[7].value) and points[7].iteration == 11
    assert exited(sim.events, job_id).exit_code == 0


def test_events_carry_the_virtual_time_and_never_go_back(sim: Sim) -> None:
    for k in range(5):
        sim.launch(steady(step=0.3 + k / 7, iterations=7), {"x": k})
    sim.run_all()
    times = [e.point.time if isinstance(e, MetricReported) else e.time for e in sim.events]
    assert times == sorted(times)
    assert times[-1] == sim.backend.now()


# -- many jobs ----------------------------------------------------------------------------------
def test_jobs_run_concurrently_and_metrics_go_to_their_job(sim: Sim) -> None:
    ids = [sim.launch(steady(step=1.0, iterations=3, value=lambda p, i: p["k"]), {"k": k}) for k in range(3)]
    sim.run_all()
    for k, job_id in enumerate(ids):
        assert {e.point.value for e in sim.h.recorder.events(job_id) if isinstance(e, MetricReported)} == {k}
    starts = [next(e.time for e in sim.h.recorder.events(j) if isinstance(e, JobStarted)) for j in ids]
    ends = [exited(sim.events, j).time for j in ids]
    assert max(starts) < min(ends), "the jobs ran one after another, not at the same time"


def test_workers_queue_jobs_in_order_and_start_them_as_workers_free(tmp_path: Path) -> None:
    sim = make(tmp_path, workers=2)
    ids = [sim.launch(steady(step=1.0, iterations=5)) for _ in range(5)]
    sim.run_all()
    sim.check()
    queued = [j for j in ids if JobQueued in sim.kinds(j)]
    assert queued == ids[2:]
    started = {j: next(e for e in sim.h.recorder.events(j) if isinstance(e, JobStarted)) for j in ids}
    order = sorted(ids, key=lambda j: (started[j].time, ids.index(j)))
    assert order == ids, "queued jobs start first in, first out"
    assert {started[j].worker for j in ids} == {"sim-0", "sim-1"}
    t0 = started[ids[0]].time
    assert [started[j].time - t0 for j in ids] == [approx(0), approx(0), approx(5), approx(5), approx(10)]


def test_startup_and_queue_delay(tmp_path: Path) -> None:
    sim = make(tmp_path, startup=3.0, queue_delay=2.0)
    t0 = sim.backend.now()
    job_id = sim.launch(steady(step=1.0, iterations=1))
    sim.run_all()
    sim.check()
    evs = sim.h.recorder.events(job_id)
    assert [type(e) for e in evs] == [JobQueued, JobStarted, MetricReported, JobExited]
    assert evs[0].time - t0 == approx(0) and evs[1].time - t0 == approx(2.0)
    assert evs[2].point.time - t0 == approx(6.0), "start-up delays the first step, after JobStarted"


# -- failures -----------------------------------------------------------------------------------
def test_a_crash_gives_a_nonzero_exit_and_the_exception_line(sim: Sim) -> None:
    def crash(params: dict, budget: float | None) -> Iterator[Any]:
        yield 1.0, 0, {"validation/loss": 1.0}
        print(1 / 0)

    job_id = sim.launch(crash)
    sim.run_all()
    ex = exited(sim.events, job_id)
    assert ex.exit_code == 1 and ex.reason == "ZeroDivisionError: division by zero"
    assert [e.point.value for e in sim.events if isinstance(e, MetricReported)] == [1.0]


def test_sim_exit_passes_the_exit_code_and_reason_through(sim: Sim) -> None:
    def oom(params: dict, budget: float | None) -> Iterator[Any]:
        yield 1.0, 0, {"validation/loss": 1.0}
        raise SimExit(137, "out of memory")

    job_id = sim.launch(oom)
    sim.run_all()
    ex = exited(sim.events, job_id)
    assert (ex.exit_code, ex.reason) == (137, "out of memory")


@pytest.mark.parametrize(("step", "fix"), [
    ((1.0, 0), "yield (duration, iteration"),
    ((-1.0, 0, {"a/b": 1.0}), "finite number of virtual seconds"),
    ((1.0, "one", {"a/b": 1.0}), "must be an integer"),
    ((1.0, 0, {"loss": 1.0}), "'title/series'"),
    ((1.0, 0, {"a/b": "high"}), "not a number"),
])
def test_a_malformed_step_fails_the_job_naming_the_fix(sim: Sim, step: Any, fix: str) -> None:
    def job(params: dict, budget: float | None) -> Iterator[Any]:
        yield step

    job_id = sim.launch(job)
    sim.run_all()
    ex = exited(sim.events, job_id)
    assert ex.exit_code == 1 and ex.reason is not None and fix in ex.reason and "test_backend" in ex.reason


def test_a_function_that_returns_no_iterable_fails_the_job(sim: Sim) -> None:
    job_id = sim.launch(lambda params, budget: 42)
    sim.run_all()
    ex = exited(sim.events, job_id)
    assert ex.exit_code == 1 and "not an iterable" in (ex.reason or "")


def test_an_endless_zero_duration_loop_fails_instead_of_hanging(sim: Sim, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("hyperscout_sim.backend.MAX_STEPS_PER_INSTANT", 50)

    def spin(params: dict, budget: float | None) -> Iterator[Any]:
        while True:
            yield 0.0, 0, {"a/b": 1.0}

    job_id = sim.launch(spin)
    for _ in range(200):
        sim.backend.advance(sim.backend.now())
    ex = exited(sim.events, job_id)
    assert ex.exit_code == 1 and "zero duration" in (ex.reason or "")


# -- stopping -----------------------------------------------------------------------------------
def test_abort_ends_the_job_now_and_runs_its_finally_block(sim: Sim) -> None:
    cleaned: list[bool] = []

    def job(params: dict, budget: float | None) -> Iterator[Any]:
        try:
            for i in range(100):
                yield 1.0, i, {"a/b": float(i)}
        finally:
            cleaned.append(True)

    job_id = sim.launch(job)
    for _ in range(5):
        sim.backend.advance(sim.backend.now() + 1.0)
    at = sim.backend.now()
    sim.backend.abort(job_id)
    assert cleaned == [True]
    assert not any(isinstance(e, JobExited) for e in sim.events), "the exit comes with the next advance"
    sim.backend.advance(at + 1.0)
    ex = exited(sim.events, job_id)
    assert (ex.exit_code, ex.reason) == (-15, "killed by SIGTERM")
    assert ex.time == at == sim.backend.now(), "at the instant of the abort: the clock does not move for it"
    n = len(sim.events)
    sim.backend.advance(sim.backend.now() + 100.0)
    assert len(sim.events) == n, "nothing of an aborted job comes later"


def test_abort_of_a_queued_job_ends_it_and_the_queue_goes_on(tmp_path: Path) -> None:
    sim = make(tmp_path, workers=1)
    a, b, c = (sim.launch(steady(step=1.0, iterations=2)) for _ in range(3))
    sim.backend.advance(sim.backend.now())
    sim.backend.abort(b)
    sim.run_all()
    sim.check()
    assert sim.kinds(b) == [JobQueued, JobExited]
    assert exited(sim.events, b).exit_code == -15
    assert exited(sim.events, a).exit_code == 0 and exited(sim.events, c).exit_code == 0


def test_abort_of_unknown_or_finished_jobs_is_a_noop(sim: Sim) -> None:
    job_id = sim.launch(steady(iterations=1))
    sim.run_all()
    n = len(sim.events)
    sim.backend.abort(job_id)
    sim.backend.abort("never-launched")
    assert len(sim.events) == n


def test_exactly_one_exit_per_job(sim: Sim) -> None:
    ok = sim.launch(steady(iterations=1))
    crash = sim.launch(lambda params, budget: iter([(1.0, 0, {"a/b": 1.0}), None]))
    hang = sim.launch(steady(iterations=None))
    sim.backend.advance(sim.backend.now() + 0.5)
    sim.backend.advance(sim.backend.now() + 1.0)
    sim.backend.abort(hang)
    sim.backend.abort(hang)
    sim.run_all()
    sim.backend.close()
    for job_id in (ok, crash, hang):
        exited(sim.events, job_id)
    sim.check()


def test_close_ends_running_and_queued_jobs(tmp_path: Path) -> None:
    sim = make(tmp_path, workers=1)
    running = sim.launch(steady(iterations=None))
    queued = sim.launch(steady(iterations=None))
    sim.backend.advance(sim.backend.now() + 1.0)
    sim.backend.close()
    sim.check()
    assert exited(sim.events, running).exit_code == -15
    assert sim.kinds(queued) == [JobQueued, JobExited], "a queued job never starts while the backend closes"
    with pytest.raises(RuntimeError, match="after close"):
        sim.launch(steady())


def test_reattach_finds_nothing_to_adopt(sim: Sim) -> None:
    spec = JobSpec(job_id="old", study="t", params={}, task=SimBackend.base_task(steady()), workdir="/x")
    assert sim.backend.reattach(spec, "handle") is Reattached.GONE


# -- the clock ----------------------------------------------------------------------------------
def test_advance_stops_at_the_next_event_or_at_until(sim: Sim) -> None:
    t0 = sim.backend.now()
    sim.launch(steady(step=10.0, iterations=1))
    sim.backend.advance(t0 + 3.0)  # JobStarted at t0
    assert sim.backend.now() == t0 and [type(e) for e in sim.events] == [JobStarted]
    sim.backend.advance(t0 + 3.0)
    assert sim.backend.now() == t0 + 3.0 and len(sim.events) == 1
    sim.backend.advance(t0 + 1000.0)
    assert sim.backend.now() - t0 == approx(10.0) and isinstance(sim.events[-1], MetricReported)
    sim.backend.advance(t0 + 1000.0)
    assert isinstance(sim.events[-1], JobExited) and sim.backend.now() - t0 == approx(10.0)


def test_every_event_of_one_instant_comes_in_one_call(sim: Sim) -> None:
    for _ in range(50):
        sim.launch(steady(step=5.0, iterations=1))
    sim.backend.advance(sim.backend.now())
    assert len(sim.events) == 50 and all(isinstance(e, JobStarted) for e in sim.events)
    sim.backend.advance(sim.backend.now() + 60)
    assert len(sim.events) == 100 and all(isinstance(e, MetricReported) for e in sim.events[50:])


def test_asking_for_now_with_nothing_due_still_moves_the_clock(sim: Sim) -> None:
    t = sim.backend.now()
    sim.backend.advance(t)
    assert sim.backend.now() > t, "an engine deadline that rounds to 'now' must not spin forever"
    assert sim.backend.now() - t < 1e-6


def test_rng_is_seeded_by_the_seed_and_the_parameters(tmp_path: Path) -> None:
    def noisy(params: dict, budget: float | None, *, rng: random.Random) -> Iterator[Any]:
        yield 1.0, 0, {"a/b": rng.random()}

    def values(seed: int, params: list[dict]) -> list[float]:
        sim = make(tmp_path, seed=seed)
        for p in params:
            sim.launch(noisy, p)
        sim.run_all()
        return [e.point.value for e in sim.events if isinstance(e, MetricReported)]

    first = values(1, [{"x": 1}, {"x": 2}, {"x": 1}])
    assert first[0] == first[2] != first[1]
    assert values(1, [{"x": 1}, {"x": 2}, {"x": 1}]) == first
    assert values(2, [{"x": 1}])[0] != first[0]


# -- options, base tasks, registration ----------------------------------------------------------
def test_registered_as_sim_and_virtual() -> None:
    assert backends().get("sim") is SimBackend
    assert SimBackend.virtual is True


def test_unknown_and_bad_options_are_one_line_errors() -> None:
    with pytest.raises(UnsupportedError, match=r"no option 'worker'.*workers"):
        SimBackend.check_options({"worker": 2})
    for bad in ({"workers": 0}, {"startup": -1}, {"queue_delay": float("nan")}, {"seed": "x"}, {"origin": 1.5}):
        with pytest.raises(ConfigError) as info:
            SimBackend(**bad)
        key = next(iter(bad))
        assert str(info.value).startswith(f"sim: {key}=") and "\n" not in str(info.value)


def test_base_task_accepts_callables_import_strings_and_files(tmp_path: Path) -> None:
    task = SimBackend.base_task(steady())
    assert isinstance(task, SimTask) and not task.wants_rng
    assert SimBackend.base_task("hyperscout_sim.examples:curve").wants_rng
    (tmp_path / "mine.py").write_text("def job(params, budget):\n    yield 1.0, 1, {'a/b': 2.0}\n")
    task = SimBackend.base_task(f"{tmp_path / 'mine.py'}:job")
    assert list(task.start({}, None, None)) == [(1.0, 1, {"a/b": 2.0})]
    assert str(task).endswith("mine.py:job")


@pytest.mark.parametrize(("given", "says"), [
    ("no_colon_here", "is not 'module:function'"),
    ("hyperscout_sim_no_such_module:job", "no module named"),
    ("hyperscout_sim.examples:nope", "has no attribute 'nope'"),
    ("/no/such/file.py:job", "no file"),
    ("/no/such/export.json", "cannot be read"),
    (42, "not something the sim backend can run"),
])
def test_a_bad_base_task_is_a_one_line_error_naming_the_fix(given: Any, says: str) -> None:
    with pytest.raises(ConfigError) as info:
        SimBackend.base_task(given)
    assert says in str(info.value) and "\n" not in str(info.value)


def test_a_function_with_the_wrong_signature_is_refused_at_once() -> None:
    with pytest.raises(ConfigError, match=r"must accept \(params, budget\)"):
        SimBackend.base_task(lambda params: [])


def test_claims_python_callables_only() -> None:
    assert SimBackend.claims(steady())
    assert not SimBackend.claims("4f1c2a9be0d14c7a")
    assert not SimBackend.claims(SimBackend)
