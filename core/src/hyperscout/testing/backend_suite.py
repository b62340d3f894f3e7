"""Conformance suite for execution backends.

Every backend, built in or third-party, runs the same checks through the public contract only
(``open`` / ``launch`` / ``abort`` / ``close`` and the events of :mod:`hyperscout.backend`),
with real trial scripts that the suite writes into pytest's ``tmp_path``. How to use it::

    # tests/test_my_backend.py of your plugin
    import pytest
    from hyperscout.testing import BackendTestSuite
    from my_package import MyBackend

    class TestMyBackend(BackendTestSuite):
        @pytest.fixture
        def backend(self):
            return MyBackend(workers=2)     # a fresh, unopened instance per test

        # optional knobs (class attributes), shown with their defaults:
        event_timeout = 30.0     # seconds to wait for any awaited event
        abort_timeout = 15.0     # abort() to JobExited, at most
        poll_interval = 0.2      # passed to backend.open() (matters for polling backends)
        concurrency = 3          # jobs the concurrency test runs at once
        same_host = True         # trial pids are visible here: check children really died
        python = sys.executable  # the interpreter that runs the trial scripts

        # optional: where a trial script lives. The default writes it into tmp_path and runs
        # `python -u <path>` (a Command); a backend whose workers cannot see tmp_path returns its own
        # base task with the script in it (a task stored on its server), which JobSpec.task carries as is.
        def make_task(self, harness, name, body):
            return harness.script(name, body)

``pytest`` collects the inherited ``test_*`` methods from your subclass. The suite opens the
backend itself (with a recording sink), closes it after each test and checks on every job it
launched that events came in contract order: ``JobQueued*``, at most one ``JobStarted`` before
any ``MetricReported``, and exactly one ``JobExited``, last. Your own backend-specific tests in the
same class can use the ``harness`` fixture (a :class:`Harness`) to write scripts, build
:class:`~hyperscout.backend.JobSpec`\\ s and wait for events without sleeping.

Requirements on the backend's environment: by default the trial runs ``python -u <absolute script
path>``, so the worker must see the test's file system and an interpreter with ``hyperscout``
installed (a local cluster or agent is enough); override :meth:`BackendTestSuite.make_task` when it
cannot. Tests that build a command line (stdout patterns, parameter styles, a missing program) are
about :class:`~hyperscout.Command` tasks; a backend of another kind of task overrides them.
"""

from __future__ import annotations

import itertools
import math
import os
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest

from hyperscout.backend import Backend, BackendEvent, JobExited, JobQueued, JobSpec, JobStarted, MetricReported
from hyperscout.capture import MetricPattern
from hyperscout.command import Command
from hyperscout.job import MetricPoint

__all__ = ["HANG_SCRIPT", "BackendTestSuite", "Harness", "Recorder", "process_alive", "wait_dead"]


def process_alive(pid: int) -> bool:
    """Whether ``pid`` is a running process; a zombie (exited, not yet reaped) counts as dead."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read().decode("ascii", "replace")
        return data[data.rindex(")") + 2 :].split()[0] not in ("Z", "X")
    except (OSError, ValueError, IndexError):
        return True  # no /proc (not Linux): os.kill said it exists


class Recorder:
    """A thread-safe event sink that remembers every event with the time it arrived."""

    def __init__(self) -> None:
        self.items: list[tuple[float, BackendEvent]] = []
        self._cond = threading.Condition()

    def __call__(self, event: BackendEvent) -> None:
        with self._cond:
            self.items.append((time.time(), event))
            self._cond.notify_all()

    def events(self, job_id: str | None = None) -> list[BackendEvent]:
        with self._cond:
            return [e for _, e in self.items if job_id is None or e.job_id == job_id]

    def arrival(self, event: BackendEvent) -> float:
        """When ``event`` reached the sink (``time.time()``)."""
        with self._cond:
            return next(t for t, e in self.items if e is event)

    def metrics(self, job_id: str, title: str | None = None, series: str | None = None) -> list[MetricPoint]:
        return [
            e.point
            for e in self.events(job_id)
            if isinstance(e, MetricReported)
            and (title is None or e.point.title == title)
            and (series is None or e.point.series == series)
        ]

    def wait_for(self, predicate: Callable[[list[BackendEvent]], Any], timeout: float, what: str) -> Any:
        """Block until ``predicate(all events)`` is truthy; return its value. No sleeping."""
        end = time.monotonic() + timeout
        with self._cond:
            while True:
                value = predicate([e for _, e in self.items])
                if value:
                    return value
                left = end - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}; events: {self._dump()}")
                self._cond.wait(left)

    def wait_exit(self, job_id: str, timeout: float) -> JobExited:
        return self.wait_for(
            lambda evs: next((e for e in evs if isinstance(e, JobExited) and e.job_id == job_id), None),
            timeout,
            f"JobExited of job {job_id}",
        )

    def wait_metric(self, job_id: str, title: str, series: str, timeout: float) -> MetricPoint:
        return self.wait_for(
            lambda evs: next(
                (e.point for e in evs if isinstance(e, MetricReported) and e.job_id == job_id
                 and e.point.title == title and e.point.series == series),
                None,
            ),
            timeout,
            f"metric {title}/{series} of job {job_id}",
        )

    def _dump(self) -> str:
        return "; ".join(repr(e) for _, e in self.items[-20:])


class Harness:
    """What a suite test works with: the opened backend, its recorded events and script helpers."""

    _ids = itertools.count()

    def __init__(
        self,
        backend: Backend,
        tmp_path: Path,
        python: str,
        timeout: float,
        make_task: Callable[[Harness, str, str], Any] | None = None,
    ) -> None:
        self.backend = backend
        self.tmp_path = tmp_path
        self.python = python
        self.timeout = timeout
        self.recorder = Recorder()
        self.launched: list[str] = []
        self.closed = False
        self._make_task = make_task

    def task(self, name: str, body: str) -> Any:
        """The base task of a suite test: :meth:`BackendTestSuite.make_task` (a script path by default)."""
        if self._make_task is None:
            return self.script(name, body)
        return self._make_task(self, name, body)

    def script(self, name: str, body: str) -> Path:
        """Write a trial script (dedented) and return its absolute path."""
        path = self.tmp_path / "scripts" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(body).lstrip(), encoding="utf-8")
        return path.resolve()

    def spec(
        self,
        script: Any,
        params: Mapping[str, Any] | None = None,
        *,
        params_as: str = "argparse",
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        env_prefix: str = "",
        patterns: Sequence[MetricPattern] = (),
        job_id: str | None = None,
        argv: Sequence[str] | None = None,
    ) -> JobSpec:
        """A job running ``python -u script *args`` (or ``argv`` as given) in a fresh workdir.

        ``script`` is a path, or a task :meth:`BackendTestSuite.make_task` returned that is not a
        path: that task is the job's as is (the command-line arguments do not apply to it).
        """
        job_id = job_id or f"suite{os.getpid()}x{next(self._ids)}"
        task: Any
        if isinstance(script, (Path, str)) or argv is not None:
            task = Command(
                argv=list(argv) if argv is not None else [self.python, "-u", str(script), *args],
                env=dict(env or {}),
                params_as=params_as,
                env_prefix=env_prefix,
            )
        else:
            task = script
        workdir = self.tmp_path / "jobs" / job_id
        workdir.mkdir(parents=True, exist_ok=True)
        return JobSpec(job_id=job_id, study="suite", params=dict(params or {}), task=task,
                       workdir=str(workdir), metric_patterns=tuple(patterns))

    def launch(self, spec: JobSpec) -> str:
        self.launched.append(spec.job_id)
        self.backend.launch(spec)
        return spec.job_id

    def run(self, spec: JobSpec, timeout: float | None = None) -> JobExited:
        """Launch and wait for the job's ``JobExited``."""
        return self.recorder.wait_exit(self.launch(spec), timeout or self.timeout)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.backend.close()

    def check_order(self, job_id: str) -> None:
        """``JobQueued* -> JobStarted? -> MetricReported* -> JobExited`` with exactly one exit, last."""
        evs = self.recorder.events(job_id)
        kinds = [type(e).__name__ for e in evs]
        exits = [i for i, e in enumerate(evs) if isinstance(e, JobExited)]
        assert len(exits) == 1, f"job {job_id}: expected exactly one JobExited, got {kinds}"
        assert exits[0] == len(evs) - 1, f"job {job_id}: events after JobExited: {kinds}"
        started = [i for i, e in enumerate(evs) if isinstance(e, JobStarted)]
        assert len(started) <= 1, f"job {job_id}: JobStarted twice: {kinds}"
        metrics = [i for i, e in enumerate(evs) if isinstance(e, MetricReported)]
        if started and metrics:
            assert started[0] < metrics[0], f"job {job_id}: a metric came before JobStarted: {kinds}"
        queued = [i for i, e in enumerate(evs) if isinstance(e, JobQueued)]
        if started and queued:
            assert max(queued) < started[0], f"job {job_id}: JobQueued after JobStarted: {kinds}"


def wait_dead(pids: Sequence[int], timeout: float = 60.0) -> list[int]:
    """Pids still alive after up to ``timeout`` s (signals are delivered asynchronously; the timeout
    only guards against a hang)."""
    end = time.monotonic() + timeout
    alive = [p for p in pids if process_alive(p)]
    while alive and time.monotonic() < end:
        time.sleep(0.02)
        alive = [p for p in alive if process_alive(p)]
    return alive


#: A trial that starts a sleeping child, reports both pids (proc/main, proc/child) and hangs.
HANG_SCRIPT = """
    import os, subprocess, sys, time
    from hyperscout import report_scalar
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    print("hanging", flush=True)  # before the last report: once it is read, the trial writes nothing more
    report_scalar("proc", "child", child.pid, 0)
    report_scalar("proc", "main", os.getpid(), 0)
    time.sleep(120)
"""

PARAMS = """
    import json, os, sys
    from hyperscout import get_job_id, get_parameters, report_scalar
    style = os.environ["SUITE_STYLE"]
    args, pairs, i = sys.argv[1:], {}, 0
    while i < len(args):
        if args[i].startswith("--") and i + 1 < len(args):
            pairs[args[i][2:]] = args[i + 1]
            i += 2
        else:
            if "=" in args[i]:
                key, value = args[i].split("=", 1)
                pairs[key] = value
            i += 1
    if style == "env":
        got = {"lr": os.environ["HP_LR"], "layers": os.environ["HP_LAYERS"], "opt": os.environ["HP_OPT"]}
    elif style == "json":
        assert pairs["params"] == os.environ["HYPERSCOUT_PARAMS_FILE"], (pairs, os.environ["HYPERSCOUT_PARAMS_FILE"])
        with open(pairs["params"]) as fh:
            got = json.load(fh)
    else:
        got = pairs
    report_scalar("p", "lr", float(got["lr"]), 0)
    report_scalar("p", "layers", float(got["layers"]), 0)
    report_scalar("p", "opt_adam", 1.0 if got["opt"] == "adam" else 0.0, 0)
    report_scalar("p", "placeholder", 1.0 if pairs.get("tag") == "L3" else 0.0, 0)
    report_scalar("p", "get_parameters", 1.0 if get_parameters() == {"lr": 0.125, "layers": 3, "opt": "adam"} else 0.0, 0)
    report_scalar("p", "job_id", 1.0 if get_job_id() == os.environ["SUITE_JOB"] else 0.0, 0)
"""


class BackendTestSuite:
    """Subclass it and override the ``backend`` fixture; see the module docstring."""

    event_timeout: ClassVar[float] = 30.0
    abort_timeout: ClassVar[float] = 15.0
    poll_interval: ClassVar[float] = 0.2
    concurrency: ClassVar[int] = 3
    same_host: ClassVar[bool] = True
    python: ClassVar[str] = sys.executable

    @pytest.fixture
    def backend(self) -> Backend:
        pytest.fail("override the `backend` fixture in your BackendTestSuite subclass")

    def make_task(self, harness: Harness, name: str, body: str) -> Any:
        """The base task that runs ``body`` (a Python script, dedented) for a suite test.

        The default writes it into the test's ``tmp_path`` and returns its path, so the job is
        ``python -u <path>``. Override it when the backend's workers do not see that directory: return
        what the backend's ``JobSpec.task`` expects, with the script inside (a base task on a server).
        """
        return harness.script(name, body)

    @pytest.fixture
    def harness(self, backend: Backend, tmp_path: Path) -> Iterator[Harness]:
        h = Harness(backend, tmp_path, self.python, self.event_timeout, make_task=self.make_task)
        backend.open(h.recorder, poll_interval=self.poll_interval)
        try:
            yield h
        finally:
            h.close()
        # close() aborts what still runs; every job must still end with exactly one JobExited.
        for job_id in h.launched:
            h.recorder.wait_exit(job_id, self.abort_timeout)
            h.check_order(job_id)

    # -- one job ------------------------------------------------------------------------------
    def test_one_job_runs_to_a_clean_exit_in_order(self, harness: Harness) -> None:
        script = harness.task("ok.py", """
            from hyperscout import report_scalar
            print("hello from the trial")
            report_scalar("validation", "loss", 0.25, 0)
        """)
        spec = harness.spec(script)
        harness.launch(spec)
        exited = harness.recorder.wait_exit(spec.job_id, harness.timeout)
        assert exited.exit_code == 0, exited
        harness.check_order(spec.job_id)
        kinds = [type(e) for e in harness.recorder.events(spec.job_id) if not isinstance(e, JobQueued)]
        assert kinds == [JobStarted, MetricReported, JobExited]

    def test_report_scalar_metrics_arrive_exactly(self, harness: Harness) -> None:
        script = harness.task("metrics.py", """
            from hyperscout import report_scalar
            for i in range(5):
                report_scalar("train", "loss", 1.0 / (i + 1))          # iterations 0..4 implied
            report_scalar("validation", "accuracy", 0.75, iteration=10)
            report_scalar("validation", "accuracy", float("nan"), iteration=11)
            report_scalar("odd/title", "s\u00e9rie \u00fc", -2.5e-8, iteration=3)
        """)
        spec = harness.spec(script)
        assert harness.run(spec).exit_code == 0
        rec = harness.recorder
        assert [(m.iteration, m.value) for m in rec.metrics(spec.job_id, "train", "loss")] == [
            (i, 1.0 / (i + 1)) for i in range(5)
        ]
        acc = rec.metrics(spec.job_id, "validation", "accuracy")
        assert [m.iteration for m in acc] == [10, 11]
        assert acc[0].value == 0.75 and math.isnan(acc[1].value)
        odd = rec.metrics(spec.job_id, "odd/title", "s\u00e9rie \u00fc")
        assert [(m.iteration, m.value) for m in odd] == [(3, -2.5e-8)]
        assert len(rec.metrics(spec.job_id)) == 8

    def test_stdout_patterns_become_metrics(self, harness: Harness) -> None:
        script = harness.task("prints.py", """
            import sys
            for epoch in range(3):
                print(f"epoch {epoch}: val_acc={0.5 + epoch / 10}")
            print("a line without any metric")
            print("loss 0.25 then loss 0.125")
            sys.stdout.write("epoch 7: val_acc=0.9")   # the last line has no newline
        """)
        patterns = (
            MetricPattern(r"epoch (?P<iteration>\d+): val_acc=(?P<value>[\d.]+)", "validation", "accuracy"),
            MetricPattern(r"loss (?P<value>[\d.]+)", "train", "loss"),
        )
        spec = harness.spec(script, patterns=patterns)
        assert harness.run(spec).exit_code == 0
        rec = harness.recorder
        assert [(m.iteration, m.value) for m in rec.metrics(spec.job_id, "validation", "accuracy")] == [
            (0, 0.5), (1, 0.6), (2, 0.7), (7, 0.9)
        ]
        assert [(m.iteration, m.value) for m in rec.metrics(spec.job_id, "train", "loss")] == [(0, 0.25), (1, 0.125)]
        started = [e for e in rec.events(spec.job_id) if isinstance(e, JobStarted)]
        if self.same_host and started and started[0].stdout_path and os.path.exists(started[0].stdout_path):
            assert "a line without any metric" in Path(started[0].stdout_path).read_text()

    def test_launch_returns_while_the_job_runs(self, harness: Harness) -> None:
        spec = harness.spec(harness.task("long.py", """
            import time
            from hyperscout import report_scalar
            report_scalar("t", "up", 1.0, 0)
            time.sleep(3600)
        """))
        harness.launch(spec)  # returned: it did not wait for an hour-long job
        harness.recorder.wait_metric(spec.job_id, "t", "up", harness.timeout)
        assert not [e for e in harness.recorder.events(spec.job_id) if isinstance(e, JobExited)]
        harness.backend.abort(spec.job_id)
        harness.recorder.wait_exit(spec.job_id, self.abort_timeout)

    # -- many jobs ----------------------------------------------------------------------------
    def test_jobs_run_concurrently_and_metrics_go_to_their_job(self, harness: Harness) -> None:
        # Each job reports, then waits for an hour: all of them reporting proves they run at once.
        script = harness.task("sleepy.py", """
            import time
            from hyperscout import get_parameters, report_scalar
            report_scalar("t", "k", float(get_parameters()["k"]), 0)
            time.sleep(3600)
        """)
        specs = [harness.spec(script, {"k": k}) for k in range(self.concurrency)]
        for spec in specs:
            harness.launch(spec)
        rec = harness.recorder
        for k, spec in enumerate(specs):
            assert rec.wait_metric(spec.job_id, "t", "k", harness.timeout).value == float(k)
        assert not [e for e in rec.events() if isinstance(e, JobExited)], "a job ended before the others started"
        for spec in specs:
            harness.backend.abort(spec.job_id)
        for spec in specs:
            rec.wait_exit(spec.job_id, self.abort_timeout)
        for k, spec in enumerate(specs):
            assert [m.value for m in rec.metrics(spec.job_id, "t", "k")] == [float(k)]

    # -- failures -----------------------------------------------------------------------------
    def test_crash_gives_a_nonzero_exit_and_the_exception_line(self, harness: Harness) -> None:
        script = harness.task("crash.py", """
            from hyperscout import report_scalar
            report_scalar("validation", "loss", 1.0, 0)
            print(1 / 0)
        """)
        spec = harness.spec(script)
        exited = harness.run(spec)
        assert exited.exit_code not in (0, None), exited
        assert exited.reason is not None and "ZeroDivisionError: division by zero" in exited.reason, exited
        assert [m.value for m in harness.recorder.metrics(spec.job_id)] == [1.0]

    def test_exit_code_is_passed_through(self, harness: Harness) -> None:
        script = harness.task("exit3.py", """
            import sys
            sys.exit(3)
        """)
        assert harness.run(harness.spec(script)).exit_code == 3

    def test_a_program_that_cannot_start_fails_naming_it(self, harness: Harness) -> None:
        program = str(harness.tmp_path / "no-such-dir" / "hyperscout-suite-missing-program")
        spec = harness.spec("", argv=[program, "--x"])
        try:
            harness.launch(spec)
        except Exception as exc:  # raising from launch() is allowed: the engine records it as failed
            assert "hyperscout-suite-missing-program" in str(exc)
            harness.launched.remove(spec.job_id)
            return
        exited = harness.recorder.wait_exit(spec.job_id, harness.timeout)
        assert exited.exit_code != 0, exited
        assert exited.reason is not None and "hyperscout-suite-missing-program" in exited.reason, exited

    # -- stopping -----------------------------------------------------------------------------
    def test_abort_ends_the_job_and_the_processes_it_started(self, harness: Harness) -> None:
        spec = harness.spec(harness.task("hang.py", HANG_SCRIPT))
        harness.launch(spec)
        child = int(harness.recorder.wait_metric(spec.job_id, "proc", "child", harness.timeout).value)
        main = int(harness.recorder.wait_metric(spec.job_id, "proc", "main", harness.timeout).value)
        harness.backend.abort(spec.job_id)
        exited = harness.recorder.wait_exit(spec.job_id, self.abort_timeout)
        assert exited.exit_code != 0, exited
        if self.same_host:
            assert wait_dead([main, child]) == [], "the trial or its child survived abort()"

    def test_abort_of_unknown_or_finished_jobs_is_a_noop(self, harness: Harness) -> None:
        spec = harness.spec(harness.task("quick.py", "print('done')\n"))
        assert harness.run(spec).exit_code == 0
        n = len(harness.recorder.events())
        harness.backend.abort(spec.job_id)
        harness.backend.abort("never-launched")
        harness.close()
        assert len(harness.recorder.events()) == n

    def test_exactly_one_exit_per_job(self, harness: Harness) -> None:
        ok = harness.spec(harness.task("ok.py", "from hyperscout import report_scalar\nreport_scalar('a', 'b', 1.0)\n"))
        crash = harness.spec(harness.task("crash.py", "raise SystemExit('bad things')\n"))
        hang = harness.spec(harness.task("hang.py", HANG_SCRIPT))
        for spec in (ok, crash, hang):
            harness.launch(spec)
        harness.recorder.wait_metric(hang.job_id, "proc", "main", harness.timeout)
        harness.backend.abort(hang.job_id)
        harness.backend.abort(hang.job_id)  # twice: still one JobExited
        for spec in (ok, crash, hang):
            harness.recorder.wait_exit(spec.job_id, self.abort_timeout)
        harness.backend.abort(ok.job_id)
        harness.close()  # anything late would have been emitted by now
        for spec in (ok, crash, hang):
            harness.check_order(spec.job_id)
        reason = harness.recorder.wait_exit(crash.job_id, 0).reason
        assert reason is not None and "bad things" in reason

    def test_close_ends_running_jobs(self, harness: Harness) -> None:
        spec = harness.spec(harness.task("hang.py", HANG_SCRIPT))
        harness.launch(spec)
        child = int(harness.recorder.wait_metric(spec.job_id, "proc", "child", harness.timeout).value)
        harness.close()
        exited = harness.recorder.wait_exit(spec.job_id, self.abort_timeout)
        assert exited.exit_code != 0
        if self.same_host:
            assert wait_dead([child]) == [], "close() left the trial's child running"

    # -- parameters ---------------------------------------------------------------------------
    @pytest.mark.parametrize("style", ["argparse", "hydra", "env", "json"])
    def test_parameters_reach_the_script(self, harness: Harness, style: str) -> None:
        script = harness.task("params.py", PARAMS)
        args = {
            "argparse": ["--tag", "L{layers}"],
            "hydra": ["tag=L{layers}"],
            "env": ["--tag", "L{layers}"],
            "json": ["--params", "{params_file}", "--tag", "L{layers}"],
        }[style]
        job_id = f"params-{style}-{os.getpid()}"
        spec = harness.spec(
            script, {"lr": 0.125, "layers": 3, "opt": "adam"}, params_as=style, args=args,
            env={"SUITE_STYLE": style, "SUITE_JOB": job_id}, env_prefix="HP_", job_id=job_id,
        )
        exited = harness.run(spec)
        assert exited.exit_code == 0, exited
        got = {m.series: m.value for m in harness.recorder.metrics(spec.job_id, "p")}
        assert got == {"lr": 0.125, "layers": 3.0, "opt_adam": 1.0, "placeholder": 1.0, "get_parameters": 1.0,
                       "job_id": 1.0}
