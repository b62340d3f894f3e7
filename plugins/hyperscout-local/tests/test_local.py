"""The local backend: the shared conformance suite (twice: pidfd and waitid wake-ups) plus what is
specific to local processes: log files, process-group cleanup, reap_stale, options.

Every wait here is for an event (a JobExited, a metric, a pipe, a process ending) with a generous
guard; no test asserts how fast something happens. How fast is for ``bench/``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from hyperscout import Command, ConfigError, HyperscoutError, JobSpec, MetricPattern, Reattached, UnsupportedError
from hyperscout.backend import JobExited, JobStarted, MetricReported
from hyperscout.plugins import backends
from hyperscout.testing.backend_suite import HANG_SCRIPT, BackendTestSuite, Harness, process_alive, wait_dead
from hyperscout_local import LocalBackend
from hyperscout_local.backend import find_marked

#: Seconds to wait for an event before failing: a guard against a hang, never a claim about speed.
GUARD = 60.0


def wait_until(condition: Callable[[], object], what: str, timeout: float = GUARD) -> None:
    """Re-check a real condition (threads, files) that sends no event until it holds."""
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.01)


def _running_with_job_id(job_id: str) -> list[int]:
    """Live (non-zombie) processes whose environment carries this job id: a /proc scan."""
    marker = f"HYPERSCOUT_JOB_ID={job_id}".encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as fh:
                if marker in fh.read().split(b"\0") and process_alive(int(name)):
                    found.append(int(name))
        except OSError:
            continue
    return found


@contextmanager
def local_harness(tmp_path: Path, **options: object) -> Iterator[Harness]:
    """A harness around a LocalBackend built with particular options."""
    h = Harness(LocalBackend(**options), tmp_path, sys.executable, GUARD)  # type: ignore[arg-type]
    h.backend.open(h.recorder)
    try:
        yield h
    finally:
        h.close()
    for job_id in h.launched:
        h.check_order(job_id)


#: Ignores SIGTERM (its child too) but reports that it got one; reports both pids; hangs.
STUBBORN = """
    import os, signal, subprocess, sys, time
    from hyperscout import report_scalar
    signal.signal(signal.SIGTERM, signal.SIG_IGN)   # the child inherits the ignore
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
    signal.signal(signal.SIGTERM, lambda *_: report_scalar("sig", "term", 1.0, 0))   # noted, not obeyed
    report_scalar("proc", "child", child.pid, 0)
    report_scalar("proc", "main", os.getpid(), 0)
    while True:
        time.sleep(3600)
"""

#: Exits at once; with ``--k 1`` it first starts a child that holds stdout open for an hour.
LEAVES_A_CHILD = """
    import os, subprocess, sys
    from hyperscout import report_scalar
    if sys.argv[-1] == "1":
        child = subprocess.Popen(["sleep", "3600"])
        report_scalar("proc", "child", child.pid, 0)
    os._exit(0)
"""


class TestLocal(BackendTestSuite):
    event_timeout = GUARD
    abort_timeout = GUARD

    @pytest.fixture
    def backend(self) -> LocalBackend:
        return LocalBackend(kill_grace=2.0)

    # -- logs and files -------------------------------------------------------------------------
    def test_logs_are_written_and_current_while_the_job_runs(self, harness: Harness) -> None:
        go = harness.tmp_path / "go"
        script = harness.script("logs.py", f"""
            import os, sys, time
            print("step=1")
            print("a warning", file=sys.stderr, flush=True)
            while not os.path.exists({str(go)!r}):   # step 2 only once the test has read the log
                time.sleep(0.01)
            print("step=2 done")
        """)
        spec = harness.spec(script, {"x": 1}, patterns=[MetricPattern(r"step=(?P<value>\d+)", "s", "step")])
        harness.launch(spec)
        first = harness.recorder.wait_metric(spec.job_id, "s", "step", GUARD)
        assert first.value == 1.0
        workdir = Path(spec.workdir)
        assert (workdir / "stdout.log").read_text() == "step=1\n"  # written before it was parsed
        go.touch()
        exited = harness.recorder.wait_exit(spec.job_id, GUARD)
        assert exited.exit_code == 0 and exited.reason is None
        started = next(e for e in harness.recorder.events(spec.job_id) if isinstance(e, JobStarted))
        assert started.stdout_path == str(workdir / "stdout.log")
        assert started.stderr_path == str(workdir / "stderr.log")
        assert (workdir / "stdout.log").read_text() == "step=1\nstep=2 done\n"
        assert (workdir / "stderr.log").read_text() == "a warning\n"

    def test_json_style_writes_params_json_in_the_workdir(self, harness: Harness) -> None:
        script = harness.script("j.py", """
            import json, os, sys
            from hyperscout import report_scalar
            report_scalar("f", "same", float(sys.argv[1] == os.environ["HYPERSCOUT_PARAMS_FILE"]), 0)
        """)
        spec = harness.spec(script, {"lr": 0.5}, params_as="json", args=["{params_file}"])
        assert harness.run(spec).exit_code == 0
        assert harness.recorder.metrics(spec.job_id, "f", "same")[0].value == 1.0
        assert (Path(spec.workdir) / "params.json").read_text().replace(" ", "").replace("\n", "") == '{"lr":0.5}'

    def test_long_reason_is_trimmed_and_empty_stderr_names_the_code(self, harness: Harness) -> None:
        long = harness.script("long.py", "raise RuntimeError('x' * 1000)\n")
        exited = harness.run(harness.spec(long))
        assert exited.reason is not None and exited.reason.startswith("RuntimeError: xxx")
        assert len(exited.reason) <= 200 and exited.reason.endswith("...")
        silent = harness.script("silent.py", "import os\nos._exit(7)\n")
        exited = harness.run(harness.spec(silent))
        assert (exited.exit_code, exited.reason) == (7, "exited with code 7")

    def test_start_failures_name_the_program_or_the_directory(self, harness: Harness) -> None:
        spec = harness.spec("", argv=["/nonexistent/trainer", "--x"])
        exited = harness.run(spec)
        assert exited.exit_code is None
        assert exited.reason == "could not start '/nonexistent/trainer': No such file or directory"
        assert exited.reason in (Path(spec.workdir) / "stderr.log").read_text()
        assert [type(e) for e in harness.recorder.events(spec.job_id)] == [JobExited]
        bad_cwd = JobSpec("cwd1", "s", {}, Command(argv=[sys.executable, "-c", "pass"], cwd="/nonexistent/dir"),
                          str(harness.tmp_path / "jobs" / "cwd1"))
        exited = harness.run(bad_cwd)
        assert exited.exit_code is None and exited.reason is not None
        assert "working directory '/nonexistent/dir'" in exited.reason

    def test_environment_option_command_env_and_no_leaked_study_variables(
        self, harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("HYPERSCOUT_PARAMS_FILE", "/outer/study/params.json")  # as if nested in a study
        script = harness.script("env.py", """
            import os
            from hyperscout import report_scalar
            e = os.environ
            report_scalar("env", "backend", float(e.get("FROM_BACKEND") == "b"), 0)
            report_scalar("env", "command_wins", float(e.get("SHARED") == "command"), 0)
            report_scalar("env", "unbuffered", float(e.get("PYTHONUNBUFFERED") == "1"), 0)
            report_scalar("env", "no_leak", float("HYPERSCOUT_PARAMS_FILE" not in e), 0)
            report_scalar("env", "inherited", float(e.get("PATH") is not None), 0)
        """)
        with local_harness(tmp_path / "h", env={"FROM_BACKEND": "b", "SHARED": "backend"}) as h:
            spec = h.spec(script, env={"SHARED": "command"})
            assert h.run(spec).exit_code == 0
            assert {m.series: m.value for m in h.recorder.metrics(spec.job_id)} == dict.fromkeys(
                ["backend", "command_wins", "unbuffered", "no_leak", "inherited"], 1.0)

    # -- process groups -------------------------------------------------------------------------
    def test_abort_terminates_the_group_with_sigterm_and_leaves_no_process(self, harness: Harness) -> None:
        spec = harness.spec(harness.script("hang.py", HANG_SCRIPT))
        harness.launch(spec)
        child = int(harness.recorder.wait_metric(spec.job_id, "proc", "child", GUARD).value)
        main = int(harness.recorder.wait_metric(spec.job_id, "proc", "main", GUARD).value)
        harness.backend.abort(spec.job_id)
        exited = harness.recorder.wait_exit(spec.job_id, GUARD)
        # SIGTERM ended it, not the SIGKILL that kill_grace (2 s) would have sent later
        assert (exited.exit_code, exited.reason) == (-signal.SIGTERM, "killed by SIGTERM")
        assert not os.path.exists(f"/proc/{main}"), "the trial was not reaped (zombie left)"
        assert wait_dead([child], GUARD) == []
        assert _running_with_job_id(spec.job_id) == []

    def test_abort_sends_sigterm_and_returns_without_waiting_out_kill_grace(self, tmp_path: Path) -> None:
        # kill_grace far beyond any guard: a correct abort() returns with the trial alive, SIGKILL pending.
        with local_harness(tmp_path, kill_grace=3600.0) as h:
            spec = h.spec(h.script("stubborn.py", STUBBORN))
            h.launch(spec)
            child = int(h.recorder.wait_metric(spec.job_id, "proc", "child", GUARD).value)
            main = int(h.recorder.wait_metric(spec.job_id, "proc", "main", GUARD).value)
            try:
                aborting = threading.Thread(target=h.backend.abort, args=(spec.job_id,))
                aborting.start()
                aborting.join(GUARD)
                assert not aborting.is_alive(), "abort() blocked"
                # the trial notes the SIGTERM and lives on: that note comes, not the job's end
                first = h.recorder.wait_for(lambda evs: next(
                    (e for e in evs if e.job_id == spec.job_id and (isinstance(e, JobExited) or (
                        isinstance(e, MetricReported) and e.point.series == "term"))), None),
                    GUARD, "the trial to note SIGTERM")
                assert isinstance(first, MetricReported), first
                assert process_alive(main) and process_alive(child)
            finally:
                try:
                    os.killpg(main, signal.SIGKILL)  # end it here rather than after the hour of grace
                except ProcessLookupError:
                    pass
            exited = h.recorder.wait_exit(spec.job_id, GUARD)
            assert (exited.exit_code, exited.reason) == (-signal.SIGKILL, "killed by SIGKILL")
            assert wait_dead([child], GUARD) == []

    def test_sigterm_ignored_escalates_to_sigkill_after_kill_grace(self, tmp_path: Path) -> None:
        with local_harness(tmp_path, kill_grace=0.5) as h:
            spec = h.spec(h.script("stubborn.py", STUBBORN))
            h.launch(spec)
            child = int(h.recorder.wait_metric(spec.job_id, "proc", "child", GUARD).value)
            h.recorder.wait_metric(spec.job_id, "proc", "main", GUARD)
            t = time.monotonic()
            h.backend.abort(spec.job_id)
            exited = h.recorder.wait_exit(spec.job_id, GUARD)
            # a lower bound only (the option's meaning: no SIGKILL before the grace); a slow machine
            # can only make it longer
            assert time.monotonic() - t >= h.backend.kill_grace
            assert (exited.exit_code, exited.reason) == (-signal.SIGKILL, "killed by SIGKILL")
            assert wait_dead([child], GUARD) == []

    def test_exit_is_reported_while_a_leftover_child_holds_stdout_and_the_child_is_killed(
        self, harness: Harness
    ) -> None:
        # The leftover child keeps stdout open for an hour: JobExited can only come from the exit
        # wake-up (then the group kill closes the pipe), never from waiting for end of output.
        script = harness.script("fast.py", LEAVES_A_CHILD)
        for k in (0, 1, 0, 1):
            spec = harness.spec(script, {"k": k})
            exited = harness.run(spec)
            assert exited.exit_code == 0
            if k:
                child = int(harness.recorder.metrics(spec.job_id, "proc", "child")[0].value)
                assert wait_dead([child], GUARD) == [], "a child outlived its trial"

    def test_a_process_that_left_the_group_cannot_hang_the_job(self, harness: Harness) -> None:
        script = harness.script("daemon.py", """
            import subprocess
            from hyperscout import report_scalar
            d = subprocess.Popen(["sleep", "3600"], start_new_session=True)   # keeps stdout open
            report_scalar("proc", "daemon", d.pid, 0)
        """)
        spec = harness.spec(script)
        exited = harness.run(spec)
        daemon = int(harness.recorder.metrics(spec.job_id, "proc", "daemon")[0].value)
        try:
            assert exited.exit_code == 0
            # the job ended while the daemon still holds its stdout: no waiting for end of output
            assert process_alive(daemon)
        finally:
            os.kill(daemon, signal.SIGKILL)

    def test_close_joins_its_threads(self, tmp_path: Path) -> None:
        with local_harness(tmp_path, kill_grace=1.0) as h:
            script = h.script("q.py", "print('q')\n")
            specs = [h.spec(script, {"i": i}) for i in range(4)]
            for spec in specs:
                h.launch(spec)
            hang = h.spec(h.script("hang.py", HANG_SCRIPT))
            h.launch(hang)
            h.recorder.wait_metric(hang.job_id, "proc", "main", GUARD)
            assert [h.recorder.wait_exit(s.job_id, GUARD).exit_code for s in specs] == [0] * 4
            h.close()  # aborts the hanging job and waits for its watcher
            assert h.recorder.wait_exit(hang.job_id, 0).reason == "killed by SIGTERM"
        wait_until(lambda: not any(t.name.startswith("hyperscout-local") for t in threading.enumerate()),
                   "the backend's threads to end")
        with pytest.raises(HyperscoutError, match="closed"):
            h.backend.launch(h.spec(script))

    # -- reattach after a crash of the optimizer ---------------------------------------------------
    def test_reattach_kills_a_trial_left_by_a_crashed_optimizer(self, tmp_path: Path) -> None:
        # A real optimizer process launches a hanging trial and dies without any cleanup.
        trial = tmp_path / "hang.py"
        trial.write_text(textwrap.dedent(HANG_SCRIPT))
        optimizer = tmp_path / "optimizer.py"
        optimizer.write_text(textwrap.dedent(f"""
            import os, sys, threading
            from hyperscout import Command, JobSpec
            from hyperscout.backend import MetricReported
            from hyperscout_local import LocalBackend
            got, ready = {{}}, threading.Event()
            def sink(e):
                if isinstance(e, MetricReported):
                    got[e.point.series] = int(e.point.value)
                    if len(got) == 2:
                        ready.set()
            b = LocalBackend()
            b.open(sink)
            b.launch(JobSpec("stale-job", "s", {{}}, Command(argv=[sys.executable, "-u", {str(trial)!r}]),
                             {str(tmp_path / "w")!r}))
            ready.wait(60)
            print(got["main"], got["child"], flush=True)
            os._exit(1)   # a crash: no close(), no atexit
        """))
        out = subprocess.run([sys.executable, str(optimizer)], capture_output=True, text=True, timeout=2 * GUARD)
        main, child = map(int, out.stdout.split())
        try:
            assert process_alive(main) and process_alive(child), "the orphaned trial should still run"
            backend = LocalBackend()

            def spec(job: str) -> JobSpec:
                return JobSpec(job, "s", {}, Command(argv=[sys.executable]), str(tmp_path / "w"))

            assert backend.reattach(spec("other-job"), None) is Reattached.GONE  # another job's marker
            assert process_alive(main) and process_alive(child)
            # found by its marker, with no pid: the optimizer may die before it records one
            assert {main, child} <= set(find_marked(["stale-job"])["stale-job"])
            assert backend.reattach(spec("stale-job"), None) is Reattached.GONE
            assert wait_dead([main, child], GUARD) == []
            assert find_marked(["stale-job"]) == {}  # nothing left to end
        finally:
            for pid in (main, child):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def test_reattach_never_touches_another_process_and_finds_orphaned_group_members(self, tmp_path: Path) -> None:
        # An unrelated process (as if the trial's pid had been recycled): another job's marker.
        other = subprocess.Popen(["sleep", "3600"], start_new_session=True,
                                 env={**os.environ, "HYPERSCOUT_JOB_ID": "someone-else"})
        # A stale trial whose main process died but whose child (same group, same marker) survived.
        stale = subprocess.Popen(
            [sys.executable, "-c", "import subprocess, sys; c = subprocess.Popen(['sleep', '60']); "
             "print(c.pid, flush=True); import time; time.sleep(60)"],
            start_new_session=True, stdout=subprocess.PIPE, text=True,
            env={**os.environ, "HYPERSCOUT_JOB_ID": "job-7"},
        )
        try:
            assert stale.stdout is not None
            child = int(stale.stdout.readline())
            os.kill(stale.pid, signal.SIGKILL)
            stale.wait()
            assert process_alive(child)
            spec = JobSpec("job-7", "s", {}, Command(argv=[sys.executable]), str(tmp_path / "w"))
            assert LocalBackend().reattach(spec, None) is Reattached.GONE
            assert wait_dead([child], GUARD) == []
            assert other.poll() is None
        finally:
            other.kill()
            other.wait()
            if stale.stdout is not None:
                stale.stdout.close()


class TestLocalWaitidFallback(BackendTestSuite):
    """The whole suite again with exits learned from a waitid(WNOWAIT) thread instead of a pidfd."""

    event_timeout = GUARD
    abort_timeout = GUARD

    @pytest.fixture
    def backend(self) -> LocalBackend:
        b = LocalBackend(kill_grace=2.0)
        b._use_pidfd = False
        return b

    def test_exit_is_learned_from_waitid_not_from_end_of_output(self, harness: Harness) -> None:
        # The leftover child holds stdout open for an hour, so only the waitid thread's wake-up can
        # end the job: JobExited arrives and the child was killed with the group.
        spec = harness.spec(harness.script("fast.py", LEAVES_A_CHILD), {"k": 1})
        exited = harness.run(spec)
        assert exited.exit_code == 0
        child = int(harness.recorder.metrics(spec.job_id, "proc", "child")[0].value)
        assert wait_dead([child], GUARD) == [], "a child outlived its trial"


def test_discovery_through_the_real_entry_point() -> None:
    reg = backends()
    assert reg.get("local") is LocalBackend
    assert reg.entries["local"].distribution == "hyperscout-local"


def test_options_are_checked() -> None:
    LocalBackend.check_options({"kill_grace": 1, "env": {"A": "b"}})
    with pytest.raises(UnsupportedError, match="backend 'local' has no option 'grace'; accepted options: kill_grace, env"):
        LocalBackend.check_options({"grace": 1})
    for bad in (-1, "5", float("nan"), True):
        with pytest.raises(ConfigError, match=r"kill_grace=.* must be a number of seconds >= 0"):
            LocalBackend(kill_grace=bad)  # type: ignore[arg-type]
    for env in ({"A": object()}, ["A=b"], {"A=B": "c"}):
        with pytest.raises(ConfigError, match="option env="):
            LocalBackend(env=env)  # type: ignore[arg-type]
    assert LocalBackend(env={"N": 3}).env == {"N": "3"}  # type: ignore[dict-item]
