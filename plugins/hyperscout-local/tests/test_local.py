"""The local backend: the shared conformance suite (twice: pidfd and waitid wake-ups) plus what is
specific to local processes: log files, process-group cleanup, reap_stale, latency, options."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from hyperscout import Command, ConfigError, HyperscoutError, JobSpec, MetricPattern, UnsupportedError
from hyperscout.backend import JobExited, JobStarted
from hyperscout.plugins import backends
from hyperscout.testing.backend_suite import HANG_SCRIPT, BackendTestSuite, Harness, process_alive, wait_dead
from hyperscout_local import LocalBackend
from hyperscout_local.backend import DRAIN_TIMEOUT


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
    h = Harness(LocalBackend(**options), tmp_path, sys.executable, 30.0)  # type: ignore[arg-type]
    h.backend.open(h.recorder)
    try:
        yield h
    finally:
        h.close()
    for job_id in h.launched:
        h.check_order(job_id)


class TestLocal(BackendTestSuite):
    abort_timeout = 5.0

    @pytest.fixture
    def backend(self) -> LocalBackend:
        return LocalBackend(kill_grace=2.0)

    # -- logs and files -------------------------------------------------------------------------
    def test_logs_are_written_and_current_while_the_job_runs(self, harness: Harness) -> None:
        script = harness.script("logs.py", """
            import sys, time
            print("step=1")
            print("a warning", file=sys.stderr, flush=True)
            time.sleep(0.3)
            print("step=2 done")
        """)
        spec = harness.spec(script, {"x": 1}, patterns=[MetricPattern(r"step=(?P<value>\d+)", "s", "step")])
        harness.launch(spec)
        first = harness.recorder.wait_metric(spec.job_id, "s", "step", 10)
        assert first.value == 1.0
        workdir = Path(spec.workdir)
        assert (workdir / "stdout.log").read_text() == "step=1\n"  # written before it was parsed
        exited = harness.recorder.wait_exit(spec.job_id, 10)
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
        child = int(harness.recorder.wait_metric(spec.job_id, "proc", "child", 10).value)
        main = int(harness.recorder.wait_metric(spec.job_id, "proc", "main", 10).value)
        t = time.monotonic()
        harness.backend.abort(spec.job_id)
        exited = harness.recorder.wait_exit(spec.job_id, 5)
        assert time.monotonic() - t < 1.0
        assert (exited.exit_code, exited.reason) == (-signal.SIGTERM, "killed by SIGTERM")
        assert not os.path.exists(f"/proc/{main}"), "the trial was not reaped (zombie left)"
        assert wait_dead([child]) == []
        assert _running_with_job_id(spec.job_id) == []

    def test_sigterm_ignored_escalates_to_sigkill_after_kill_grace(self, tmp_path: Path) -> None:
        with local_harness(tmp_path, kill_grace=0.5) as h:
            script = h.script("stubborn.py", """
                import os, signal, subprocess, sys, time
                from hyperscout import report_scalar
                signal.signal(signal.SIGTERM, signal.SIG_IGN)   # the child inherits the ignore
                child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
                report_scalar("proc", "child", child.pid, 0)
                time.sleep(120)
            """)
            spec = h.spec(script)
            h.launch(spec)
            child = int(h.recorder.wait_metric(spec.job_id, "proc", "child", 10).value)
            t = time.monotonic()
            h.backend.abort(spec.job_id)
            assert time.monotonic() - t < 0.05, "abort() blocked"
            exited = h.recorder.wait_exit(spec.job_id, 5)
            took = time.monotonic() - t
            assert 0.45 <= took < 1.5, took
            assert (exited.exit_code, exited.reason) == (-signal.SIGKILL, "killed by SIGKILL")
            assert wait_dead([child]) == []

    def test_exit_to_event_under_100ms_and_leftover_children_are_killed(self, harness: Harness) -> None:
        script = harness.script("fast.py", """
            import os, subprocess, sys, time
            from hyperscout import report_scalar
            if sys.argv[-1] == "1":   # leaves a child behind, holding stdout open
                child = subprocess.Popen(["sleep", "60"])
                report_scalar("proc", "child", child.pid, 0)
            report_scalar("t", "exit", time.time(), 0)
            os._exit(0)
        """)
        for k in (0, 1, 0, 1):
            spec = harness.spec(script, {"k": k})
            exited = harness.run(spec)
            assert exited.exit_code == 0
            t_exit = harness.recorder.metrics(spec.job_id, "t", "exit")[0].value
            latency = harness.recorder.arrival(exited) - t_exit
            assert latency < 0.1, f"JobExited {latency * 1000:.0f} ms after the process exited"
            if k:
                child = int(harness.recorder.metrics(spec.job_id, "proc", "child")[0].value)
                assert wait_dead([child]) == [], "a child outlived its trial"

    def test_a_process_that_left_the_group_cannot_hang_the_job(self, harness: Harness) -> None:
        script = harness.script("daemon.py", """
            import subprocess
            from hyperscout import report_scalar
            d = subprocess.Popen(["sleep", "60"], start_new_session=True)   # keeps stdout open
            report_scalar("proc", "daemon", d.pid, 0)
        """)
        spec = harness.spec(script)
        t = time.monotonic()
        exited = harness.run(spec)
        took = time.monotonic() - t
        daemon = int(harness.recorder.metrics(spec.job_id, "proc", "daemon")[0].value)
        try:
            assert exited.exit_code == 0
            assert took < DRAIN_TIMEOUT + 1.0, took
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
            h.recorder.wait_metric(hang.job_id, "proc", "main", 10)
            assert [h.recorder.wait_exit(s.job_id, 10).exit_code for s in specs] == [0] * 4
            h.close()  # aborts the hanging job and waits for its watcher
            assert h.recorder.wait_exit(hang.job_id, 0).reason == "killed by SIGTERM"
        end = time.monotonic() + 2.0
        while time.monotonic() < end and any(t.name.startswith("hyperscout-local") for t in threading.enumerate()):
            time.sleep(0.01)
        assert [t.name for t in threading.enumerate() if t.name.startswith("hyperscout-local")] == []
        with pytest.raises(HyperscoutError, match="closed"):
            h.backend.launch(h.spec(script))

    # -- reap_stale -----------------------------------------------------------------------------
    def test_reap_stale_kills_a_trial_left_by_a_crashed_optimizer(self, tmp_path: Path) -> None:
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
            ready.wait(20)
            print(got["main"], got["child"], flush=True)
            os._exit(1)   # a crash: no close(), no atexit
        """))
        out = subprocess.run([sys.executable, str(optimizer)], capture_output=True, text=True, timeout=60)
        main, child = map(int, out.stdout.split())
        try:
            assert process_alive(main) and process_alive(child), "the orphaned trial should still run"
            backend = LocalBackend()
            assert backend.reap_stale("other-job", main) is False  # pid matches, job id does not
            assert backend.reap_stale("stale-job", None) is False
            assert process_alive(main) and process_alive(child)
            assert backend.reap_stale("stale-job", main) is True
            assert wait_dead([main, child]) == []
            assert backend.reap_stale("stale-job", main) is False  # nothing left to end
        finally:
            for pid in (main, child):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def test_reap_stale_refuses_a_recycled_pid_and_finds_orphaned_group_members(self, tmp_path: Path) -> None:
        # An unrelated process group leader (as if the trial's pid had been recycled).
        other = subprocess.Popen(["sleep", "60"], start_new_session=True,
                                 env={**os.environ, "HYPERSCOUT_JOB_ID": "someone-else"})
        # A stale trial whose main process died but whose child (same group) survived.
        stale = subprocess.Popen(
            [sys.executable, "-c", "import subprocess, sys; c = subprocess.Popen(['sleep', '60']); "
             "print(c.pid, flush=True); import time; time.sleep(60)"],
            start_new_session=True, stdout=subprocess.PIPE, text=True,
            env={**os.environ, "HYPERSCOUT_JOB_ID": "job-7"},
        )
        try:
            assert stale.stdout is not None
            child = int(stale.stdout.readline())
            backend = LocalBackend()
            assert backend.reap_stale("job-7", other.pid) is False
            assert other.poll() is None
            os.kill(stale.pid, signal.SIGKILL)
            stale.wait()
            assert process_alive(child)
            assert backend.reap_stale("job-7", stale.pid) is True
            assert wait_dead([child]) == []
        finally:
            other.kill()
            other.wait()
            if stale.stdout is not None:
                stale.stdout.close()


class TestLocalWaitidFallback(BackendTestSuite):
    """The whole suite again with exits learned from a waitid(WNOWAIT) thread instead of a pidfd."""

    abort_timeout = 5.0

    @pytest.fixture
    def backend(self) -> LocalBackend:
        b = LocalBackend(kill_grace=2.0)
        b._use_pidfd = False
        return b

    def test_exit_to_event_latency(self, harness: Harness) -> None:
        script = harness.script("fast.py", """
            import os, time
            from hyperscout import report_scalar
            report_scalar("t", "exit", time.time(), 0)
            os._exit(0)
        """)
        spec = harness.spec(script)
        exited = harness.run(spec)
        latency = harness.recorder.arrival(exited) - harness.recorder.metrics(spec.job_id)[0].value
        assert latency < 0.1


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
