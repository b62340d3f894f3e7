"""The ``local`` backend: each trial is a subprocess of the optimizer, in its own process group.

Why it is built this way:

* **Events, not polling.** One I/O thread serves every job of the backend: it waits
  (``selectors``/epoll) on each job's stdout pipe, its report pipe (``HYPERSCOUT_REPORT_FD``,
  written by :func:`hyperscout.report_scalar`) and a pidfd that becomes readable the moment the
  process exits. Metrics are emitted as their line arrives and ``JobExited`` as soon as the
  process is reaped, so the engine refills a freed slot within milliseconds; launching a job
  starts no thread. Where pidfds are missing (old kernels, macOS) a small per-job thread blocks in
  ``waitid(WNOWAIT)`` and wakes the I/O thread through a pipe instead.
* **Nothing survives a job.** The trial is started with ``start_new_session=True``, so it leads a
  process group holding everything it forks. ``abort`` sends SIGTERM to the whole group and the
  I/O thread sends SIGKILL after ``kill_grace`` seconds; when the main process exits (for any
  reason) whatever is left of its group is SIGKILLed before ``JobExited`` is emitted. The group is
  signalled while the main process is still an unreaped zombie, so its id cannot be recycled.
* **Crash recovery.** The job id is in the trial's environment (``HYPERSCOUT_JOB_ID``, or the
  process name for a warm-started trial), so :meth:`LocalBackend.reattach` finds every process a
  crashed optimizer left behind, even one whose pid never reached the store, and never touches an
  unrelated process that happens to have a recycled pid. A local trial's pipes die with the
  optimizer, so it cannot be adopted: it is killed and its configuration runs again.
"""

from __future__ import annotations

import atexit
import logging
import math
import os
import selectors
import signal
import subprocess
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import attrs

from hyperscout.backend import (
    Backend,
    BackendEvent,
    JobExited,
    JobQueued,
    JobSpec,
    JobStarted,
    MetricReported,
    Reattached,
    env_option,
)
from hyperscout.capture import LineParser
from hyperscout.errors import ConfigError, HyperscoutError
from hyperscout.job import MetricPoint
from hyperscout.trial import ENV_JOB_ID, ENV_REPORT_FD, ENV_REPORT_INO, decode_report
from hyperscout_local import _warm
from hyperscout_local._gpus import GpuPool

__all__ = ["DRAIN_TIMEOUT", "LocalBackend"]

log = logging.getLogger(__name__)

#: Seconds to keep reading the pipes after the main process exited and its group was killed.
#: Only a process that left the group (``setsid``) can hold them open that long.
DRAIN_TIMEOUT = 1.0
#: A failure reason (last stderr line) is cut to this many characters.
REASON_MAX = 200
_CHUNK = 1 << 16
_MAX_LINE = 1 << 20  # a "line" without a newline is parsed once it grows this long
_OUT, _REPORT, _EXIT = "stdout", "report", "exit"


@attrs.define(eq=False)
class _Run:
    """State of one running job. The I/O thread owns it; ``lock`` orders ``abort`` against reaping."""

    spec: JobSpec
    proc: subprocess.Popen[bytes]
    stdout_path: str
    stderr_path: str
    stdout_log: IO[bytes]
    report_r: int
    parser: LineParser | None
    lock: threading.Lock = attrs.field(factory=threading.Lock)
    exit_fd: int | None = None
    open_streams: int = 2
    out_buf: bytearray = attrs.field(factory=bytearray)
    rep_buf: bytearray = attrs.field(factory=bytearray)
    reaped: bool = False
    finished: bool = False
    abort_sent: bool = False
    #: ``time.monotonic()`` deadlines, acted on by the I/O thread
    kill_at: float | None = None
    drain_until: float | None = None
    #: GPUs this job holds (``CUDA_VISIBLE_DEVICES``), given back when its process group has exited
    devices: list[str] = attrs.field(factory=list)

    @property
    def pid(self) -> int:
        return self.proc.pid


def _check_grace(value: Any) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0
    if not ok:
        raise ConfigError(f"local backend option kill_grace={value!r} must be a number of seconds >= 0, e.g. 5.0")
    return float(value)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass  # the group is already empty (or only holds what we may not touch)


def _last_line(path: str) -> str | None:
    """The last non-empty line of a file, read from its tail only."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 8192))
            tail = fh.read()
    except OSError:
        return None
    for line in reversed(tail.decode("utf-8", "replace").splitlines()):
        line = line.strip()
        if line:
            return line if len(line) <= REASON_MAX else line[: REASON_MAX - 3] + "..."
    return None


def _reason(exit_code: int | None, stderr_path: str) -> str | None:
    if exit_code == 0:
        return None
    if exit_code is not None and exit_code < 0:
        try:
            return f"killed by {signal.Signals(-exit_code).name}"
        except ValueError:
            return f"killed by signal {-exit_code}"
    return _last_line(stderr_path) or f"exited with code {exit_code}"


def _start_failure(argv: list[str], cwd: str | None, exc: OSError) -> str:
    what = exc.strerror or str(exc)
    if cwd and exc.filename is not None and os.fspath(exc.filename) == cwd:
        return f"could not start {argv[0]!r}: working directory {cwd!r}: {what}"
    return f"could not start {argv[0]!r}: {what}"


def _split_lines(buf: bytearray, data: bytes) -> list[bytes]:
    """Append ``data`` to ``buf``; return the complete lines and keep the partial rest in ``buf``."""
    buf += data
    if b"\n" not in data:
        if len(buf) < _MAX_LINE:
            return []
        line = bytes(buf)
        buf.clear()
        return [line]
    *lines, rest = bytes(buf).split(b"\n")
    buf[:] = rest
    return lines


# -- /proc helpers for reattach ------------------------------------------------------------------
def _stat(pid: int) -> tuple[str, int] | None:
    """``(state, pgid)`` of a process, ``None`` if it does not exist (or /proc is unavailable)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read().decode("ascii", "replace")
    except OSError:
        return None
    fields = data[data.rindex(")") + 2 :].split()  # the command name may hold spaces and parentheses
    return fields[0], int(fields[2])


def _wait_gone(pid: int, timeout: float) -> None:
    """Wait until ``pid`` has exited (a zombie counts as exited), at most ``timeout`` seconds."""
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        fd = None
    if fd is not None:
        try:
            with selectors.DefaultSelector() as sel:
                sel.register(fd, selectors.EVENT_READ)
                sel.select(timeout)
        finally:
            os.close(fd)
        return
    end = time.monotonic() + timeout  # no pidfd: a one-off wait at resume, so a short poll is fine
    while time.monotonic() < end:
        st = _stat(pid)
        if st is None or st[0] == "Z":
            return
        time.sleep(0.02)


def find_marked(job_ids: list[str]) -> dict[str, list[int]]:
    """Live processes carrying one of these jobs' markers, by job id (one scan of ``/proc``)."""
    wanted = {f"{ENV_JOB_ID}={j}".encode(): j for j in job_ids}
    comms = {_warm.comm_marker(j): j for j in job_ids}
    found: dict[str, list[int]] = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return found
    me = os.getpid()
    for name in names:
        if not name.isdigit() or int(name) == me:
            continue
        pid = int(name)
        st = _stat(pid)
        if st is None or st[0] == "Z":
            continue
        job = None
        try:
            with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as fh:
                job = comms.get(fh.read().strip())
        except OSError:
            continue
        if job is None:
            try:
                with open(f"/proc/{pid}/environ", "rb") as fh:
                    entries = fh.read().split(b"\0")
            except OSError:
                continue
            job = next((wanted[e] for e in entries if e in wanted), None)
        if job is not None:
            found.setdefault(job, []).append(pid)
    return found


def kill_marked(job_ids: list[str], timeout: float = 5.0) -> dict[str, list[int]]:
    """SIGKILL the process groups of every marked process of these jobs; wait until they are gone."""
    found = find_marked(job_ids)
    for pids in found.values():
        for pid in pids:
            st = _stat(pid)
            for target in {pid, st[1]} if st is not None else {pid}:
                try:
                    (os.killpg if target == (st[1] if st else None) else os.kill)(target, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
    for pids in found.values():
        for pid in pids:
            _wait_gone(pid, timeout)
    return found


# -- the backend --------------------------------------------------------------------------------
_LIVE: weakref.WeakSet[LocalBackend] = weakref.WeakSet()


class LocalBackend(Backend):
    """Runs every job as a local subprocess in its own process group.

    Options (keyword-only, ``[backend.options]`` in a study file):

    * ``kill_grace``: seconds between SIGTERM and SIGKILL when a job is aborted (default 5.0;
      0 kills at once).
    * ``env``: extra environment variables for every trial (the command's own ``env`` wins).
    * ``prestart``: keep the next Python trial's interpreter started in advance (default true;
      see :mod:`hyperscout_local._warm`).
    * ``gpus``: ``"auto"`` (``CUDA_VISIBLE_DEVICES`` or ``nvidia-smi -L``) or a list of device ids;
      ``gpus_per_job`` (default 1; a queue named ``"2xGPU"`` asks for 2). Each job gets its own
      devices through ``CUDA_VISIBLE_DEVICES`` and waits (queued) while too few are free.
    """

    name = "local"
    polls = False

    def __init__(
        self,
        *,
        kill_grace: float = 5.0,
        env: Mapping[str, str] | None = None,
        prestart: bool = True,
        gpus: str | list[int | str] | None = None,
        gpus_per_job: int | None = None,
    ) -> None:
        super().__init__()
        self.gpus = None if gpus is None and gpus_per_job is None else GpuPool(gpus or "auto", gpus_per_job)
        self._waiting: list[tuple[JobSpec, int]] = []  # jobs queued for GPUs (guarded by _lock)
        if not isinstance(prestart, bool):
            raise ConfigError(f"local backend option prestart={prestart!r} must be true or false")
        self.prestart = prestart
        self._spare: _warm.Spare | None = None
        self.kill_grace = _check_grace(kill_grace)
        self.env = env_option("local", env)
        self._lock = threading.Lock()
        self._ended = threading.Condition(self._lock)  # notified whenever a job's JobExited went out
        self._runs: dict[str, _Run] = {}  # launched and not finished, by job id (guarded by _lock)
        self._todo: list[_Run] = []  # launched, not yet registered by the I/O thread (guarded by _lock)
        self._active: set[_Run] = set()  # registered with the selector (I/O thread only)
        self._sel: selectors.BaseSelector | None = None
        self._io: threading.Thread | None = None
        self._wake_r = self._wake_w = -1
        self._stopping = False
        self._closed = False
        #: learn of exits through pidfds; tests switch this off to exercise the waitid fallback
        self._use_pidfd = hasattr(os, "pidfd_open")
        _LIVE.add(self)

    # -- launching --------------------------------------------------------------------------
    def launch(self, spec: JobSpec) -> None:
        if self._closed:
            raise HyperscoutError("the local backend was closed; create a new LocalBackend to launch jobs")
        with self._lock:
            if spec.job_id in self._runs:
                raise HyperscoutError(f"job {spec.job_id!r} is already running; job ids must be unique")
        if self.gpus is None:
            self._start(spec, [])
            return
        n = self.gpus.need(spec.queue)
        if n > len(self.gpus.devices):
            self._emit(JobExited(spec.job_id, time.time(), None,
                                 f"needs {n} GPUs but the local backend has {len(self.gpus.devices)}"))
            return
        with self._lock:
            devices = self.gpus.take(n) if not self._waiting else None
            if devices is None:
                self._waiting.append((spec, n))
        if devices is None:
            self._emit(JobQueued(spec.job_id, time.time()))  # starts when a job gives its GPUs back
            return
        self._start(spec, devices)

    def _start_waiting(self) -> None:
        """Start the jobs queued for GPUs that fit in the devices now free, in launch order."""
        while True:
            with self._lock:
                if not self._waiting or self._closed or self.gpus is None:
                    return
                spec, n = self._waiting[0]
                devices = self.gpus.take(n)
                if devices is None:
                    return
                self._waiting.pop(0)
            try:
                self._start(spec, devices)
            except Exception as exc:  # never leave a queued job without its JobExited
                with self._lock:
                    self.gpus.give_back(devices)
                self._emit(JobExited(spec.job_id, time.time(), None, f"could not start: {exc}"))

    def _start(self, spec: JobSpec, devices: list[str]) -> None:
        self._start_io()
        workdir = Path(spec.workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        command = spec.command
        params_file = str(workdir / "params.json") if command.params_as == "json" else None
        argv, extra = command.render(spec.params, job_id=spec.job_id, study=spec.study, params_file=params_file)
        # Variables of an enclosing study (the optimizer itself run as a trial) must not leak in.
        env = {k: v for k, v in os.environ.items() if not k.startswith("HYPERSCOUT_")}
        env.update(self.env)
        env.update(extra)
        env["PYTHONUNBUFFERED"] = "1"
        if self.gpus is not None:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(devices)
        stdout_path = str(workdir / "stdout.log")
        stderr_path = str(workdir / "stderr.log")
        cwd = command.cwd or None
        proc: subprocess.Popen[bytes] | None = None
        reason: str | None = None
        report_r = -1
        warm_ok = self.prestart and (cwd is None or os.path.isdir(cwd))
        script = _warm.script_of(argv) if warm_ok else None
        spare = self._take_spare(script[0], env) if script is not None else None
        if spare is not None and script is not None:
            env[ENV_REPORT_FD] = str(spare.report_fd_in_child)
            env[ENV_REPORT_INO] = spare.report_ino
            if spare.hand_over(script[1], env, cwd or os.getcwd(), stderr_path, spec.job_id):
                proc, report_r = spare.proc, spare.report_r
            else:
                spare.discard()
        if proc is None:
            proc, report_r, reason = self._start_cold(argv, env, cwd, stderr_path)
        if script is not None and not self._closed:
            # Start the next job's interpreter now, while this one runs.
            base = {k: v for k, v in env.items() if not k.startswith("HYPERSCOUT_")}
            self._spare = _warm.spawn(script[0], base)
        if proc is None:
            Path(stdout_path).touch()
            if devices and self.gpus is not None:
                with self._lock:
                    self.gpus.give_back(devices)
            self._emit(JobExited(spec.job_id, time.time(), None, reason))
            self._start_waiting()
            return
        try:
            stdout_log = open(stdout_path, "wb")
        except OSError:
            os.close(report_r)
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
            raise
        parser = LineParser(spec.metric_patterns) if spec.metric_patterns else None
        run = _Run(spec, proc, stdout_path, stderr_path, stdout_log, report_r, parser, devices=devices)
        # JobStarted goes out before the I/O thread can see the job, so it precedes every metric.
        self._emit(JobStarted(spec.job_id, time.time(), proc.pid, stdout_path, stderr_path))
        with self._lock:
            self._runs[spec.job_id] = run
            self._todo.append(run)
        self._wake()

    def _start_cold(
        self, argv: list[str], env: dict[str, str], cwd: str | None, stderr_path: str
    ) -> tuple[subprocess.Popen[bytes] | None, int, str | None]:
        """Start the job's process from scratch: ``(proc, report_r, failure reason)``."""
        report_r, report_w = os.pipe()
        env[ENV_REPORT_FD] = str(report_w)
        env[ENV_REPORT_INO] = str(os.fstat(report_w).st_ino)
        proc: subprocess.Popen[bytes] | None = None
        reason: str | None = None
        try:
            with open(stderr_path, "wb") as stderr_fh:
                try:
                    proc = subprocess.Popen(
                        argv,
                        cwd=cwd,
                        env=env,
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.PIPE,
                        stderr=stderr_fh,
                        pass_fds=(report_w,),
                        start_new_session=True,
                    )
                except OSError as exc:
                    reason = _start_failure(argv, cwd, exc)
                    stderr_fh.write((reason + "\n").encode())
        except BaseException:
            os.close(report_r)
            raise
        finally:
            os.close(report_w)  # only the child holds the write end now, so its exit means EOF
        if proc is None:
            os.close(report_r)
            return None, -1, reason
        return proc, report_r, None

    def _drop_spare(self) -> None:
        spare, self._spare = self._spare, None
        if spare is not None:
            spare.discard()

    def _take_spare(self, interpreter: str, env: Mapping[str, str]) -> _warm.Spare | None:
        spare, self._spare = self._spare, None
        if spare is None:
            return None
        if spare.fits(interpreter, env):
            return spare
        spare.discard()
        return None

    def _start_io(self) -> None:
        if self._io is not None:
            return
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._io = threading.Thread(target=self._loop, name="hyperscout-local-io", daemon=True)
        self._io.start()

    def _wake(self) -> None:
        if self._wake_w >= 0:
            try:
                os.write(self._wake_w, b"\0")
            except BlockingIOError:
                pass  # the pipe is full: a wake-up is pending anyway

    def _emit(self, event: BackendEvent) -> None:
        try:
            self.emit(event)
        except Exception:  # a broken sink must not stop the I/O thread before JobExited
            log.exception("hyperscout-local: the event sink raised on %r", event)

    # -- the I/O thread -------------------------------------------------------------------------
    def _loop(self) -> None:
        assert self._sel is not None
        sel = self._sel
        try:
            while True:
                with self._lock:
                    todo, self._todo = self._todo, []
                    stop = self._stopping and not self._runs
                if stop:
                    return
                for run in todo:
                    self._guard(run, self._register, run)
                timeout = self._deadlines()
                for key, _ in sel.select(timeout):
                    if key.data is None:
                        try:
                            while os.read(self._wake_r, 4096):
                                pass
                        except BlockingIOError:
                            pass
                        continue
                    run, kind = key.data
                    if not run.finished:  # an earlier event of this batch may have finished it
                        self._guard(run, self._ready, run, kind)
        except BaseException as exc:  # a bug here must still end every job with a JobExited
            log.exception("hyperscout-local: the I/O thread failed")
            with self._lock:
                runs = list(self._runs.values())
            for run in runs:
                if not run.finished:
                    self._finish(run, f"local backend error: {type(exc).__name__}: {exc}")

    def _guard(self, run: _Run, fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(*args)
        except Exception as exc:
            log.exception("hyperscout-local: handling job %s failed", run.spec.job_id)
            if not run.finished:
                self._finish(run, f"local backend error: {type(exc).__name__}: {exc}")

    def _deadlines(self) -> float | None:
        """Act on due SIGKILLs and drain timeouts; the select timeout until the next one."""
        now = time.monotonic()
        nxt: float | None = None
        for run in list(self._active):
            if run.kill_at is not None:
                if now >= run.kill_at:
                    run.kill_at = None
                    with run.lock:
                        if not run.reaped:  # still unreaped: the group id is still ours
                            _signal_group(run.pid, signal.SIGKILL)
                else:
                    nxt = run.kill_at if nxt is None else min(nxt, run.kill_at)
            if run.drain_until is not None:
                if now >= run.drain_until:
                    self._finish(run)
                else:
                    nxt = run.drain_until if nxt is None else min(nxt, run.drain_until)
        return None if nxt is None else max(0.0, nxt - now)

    def _register(self, run: _Run) -> None:
        assert self._sel is not None and run.proc.stdout is not None
        self._active.add(run)
        run.exit_fd = self._exit_notifier(run)
        self._sel.register(run.proc.stdout.fileno(), selectors.EVENT_READ, (run, _OUT))
        self._sel.register(run.report_r, selectors.EVENT_READ, (run, _REPORT))
        self._sel.register(run.exit_fd, selectors.EVENT_READ, (run, _EXIT))

    def _exit_notifier(self, run: _Run) -> int:
        """A file descriptor that becomes readable when the process exits (and is not reaped yet)."""
        if self._use_pidfd:
            try:
                return os.pidfd_open(run.pid)
            except OSError:
                pass
        r, w = os.pipe()

        def wait() -> None:  # owns ``w``; the I/O thread only ever closes ``r``
            try:
                if hasattr(os, "waitid"):
                    os.waitid(os.P_PID, run.pid, os.WEXITED | os.WNOWAIT)  # leaves the zombie for the group kill
                else:
                    run.proc.wait()
            except ChildProcessError:
                pass
            finally:
                try:
                    os.write(w, b"x")
                except OSError:
                    pass
                os.close(w)

        threading.Thread(target=wait, name=f"hyperscout-local-wait-{run.spec.job_id}", daemon=True).start()
        return r

    def _ready(self, run: _Run, kind: str) -> None:
        assert self._sel is not None and run.proc.stdout is not None
        if kind == _EXIT:
            assert run.exit_fd is not None
            self._sel.unregister(run.exit_fd)
            os.close(run.exit_fd)
            run.exit_fd = None
            self._reap(run)
            run.kill_at = None
            if run.open_streams == 0:
                self._finish(run)
            else:  # read what is left; only a process that left the group can keep a pipe open
                run.drain_until = time.monotonic() + DRAIN_TIMEOUT
            return
        fd = run.proc.stdout.fileno() if kind == _OUT else run.report_r
        data = os.read(fd, _CHUNK)
        if not data:
            self._sel.unregister(fd)
            run.open_streams -= 1
            if run.open_streams == 0 and run.reaped:
                self._finish(run)
        elif kind == _OUT:
            run.stdout_log.write(data)
            run.stdout_log.flush()  # the log is current while the job runs
            if run.parser is not None:
                for line in _split_lines(run.out_buf, data):
                    self._stdout_line(run, line)
        else:
            for line in _split_lines(run.rep_buf, data):
                self._report_line(run, line)

    @staticmethod
    def _reap(run: _Run) -> None:
        """The main process exited: kill the rest of its group, then reap it (in that order)."""
        with run.lock:
            if not run.reaped:
                _signal_group(run.pid, signal.SIGKILL)
                run.proc.wait()
                run.reaped = True

    def _stdout_line(self, run: _Run, line: bytes) -> None:
        assert run.parser is not None
        now = time.time()
        for title, series, iteration, value in run.parser.feed(line.decode("utf-8", "replace")):
            self._emit(MetricReported(run.spec.job_id, MetricPoint(title, series, iteration, value, now)))

    def _report_line(self, run: _Run, line: bytes) -> None:
        if not line.strip():
            return
        decoded = decode_report(line)
        if decoded is None:
            log.warning("hyperscout-local: job %s wrote a malformed report line: %r", run.spec.job_id, line[:200])
            return
        title, series, iteration, value, ts = decoded
        self._emit(MetricReported(run.spec.job_id, MetricPoint(title, series, iteration, value, ts)))

    def _finish(self, run: _Run, error: str | None = None) -> None:
        """Close everything of the job and emit its one JobExited."""
        run.finished = True
        self._active.discard(run)
        assert run.proc.stdout is not None
        out_fd = run.proc.stdout.fileno()
        for fd in (out_fd, run.report_r, run.exit_fd):
            if fd is not None and self._sel is not None:
                try:
                    self._sel.unregister(fd)
                except (KeyError, ValueError):
                    pass
        if error is None:
            if run.parser is not None and run.out_buf:
                self._stdout_line(run, bytes(run.out_buf))
            if run.rep_buf:
                self._report_line(run, bytes(run.rep_buf))
        closers: list[Callable[[], None]] = [run.proc.stdout.close, run.stdout_log.close,
                                             lambda: os.close(run.report_r)]
        if run.exit_fd is not None:
            closers.append(lambda fd=run.exit_fd: os.close(fd))  # type: ignore[misc]
            run.exit_fd = None
        for close in closers:
            try:
                close()
            except OSError:
                pass
        self._reap(run)  # a no-op unless the job ends on an error
        exit_code = run.proc.returncode
        reason = error or _reason(exit_code, run.stderr_path)
        with self._lock:
            if run.devices and self.gpus is not None:
                self.gpus.give_back(run.devices)  # the whole group is dead (reaped above)
        self._emit(JobExited(run.spec.job_id, time.time(), exit_code, reason))
        with self._lock:
            self._runs.pop(run.spec.job_id, None)
            self._ended.notify_all()
        if run.devices:
            self._start_waiting()

    # -- stopping -----------------------------------------------------------------------------
    def abort(self, job_id: str) -> None:
        """SIGTERM to the job's process group now, SIGKILL after ``kill_grace``; never blocks."""
        with self._lock:
            queued = [w for w in self._waiting if w[0].job_id == job_id]
            for w in queued:
                self._waiting.remove(w)
        if queued:
            self._emit(JobExited(job_id, time.time(), None, "aborted while waiting for a GPU"))
            return
        with self._lock:
            run = self._runs.get(job_id)
        if run is None:
            return
        with run.lock:
            if run.reaped or run.abort_sent:
                return
            run.abort_sent = True
            if self.kill_grace <= 0:
                _signal_group(run.pid, signal.SIGKILL)
                return
            _signal_group(run.pid, signal.SIGTERM)
            run.kill_at = time.monotonic() + self.kill_grace
        self._wake()  # so the I/O thread times the SIGKILL

    def reattach(self, spec: JobSpec, handle: str | None) -> Reattached:
        """Kill every process a crashed optimizer left of this job; the engine then re-runs it.

        Processes are found by their marker (``HYPERSCOUT_JOB_ID=<job_id>`` in ``/proc/PID/environ``,
        or the warm-start process name), not by a stored pid: the optimizer may have died between
        starting the trial and recording its pid, and a recorded pid may have been recycled. Their
        whole process groups are SIGKILLed at once (the pipes that carried their reports died with
        the old optimizer, so they could never report again). Without ``/proc`` (not Linux) nothing
        can be verified and nothing is killed.
        """
        for pid in kill_marked([spec.job_id]).get(spec.job_id, []):
            log.info("hyperscout-local: ended pid %d of job %s, left running by a previous run", pid, spec.job_id)
        return Reattached.GONE

    def close(self) -> None:
        """Abort whatever still runs, wait for its ``JobExited``, stop the I/O thread."""
        self._closed = True
        self._drop_spare()
        with self._lock:
            waiting, self._waiting = self._waiting, []
        for spec, _n in waiting:
            self._emit(JobExited(spec.job_id, time.time(), None, "aborted while waiting for a GPU"))
        with self._lock:
            runs = list(self._runs.values())
        for run in runs:
            self.abort(run.spec.job_id)
        io = self._io
        if io is None or io is threading.current_thread():
            return
        end = time.monotonic() + self.kill_grace + DRAIN_TIMEOUT + 5.0
        with self._lock:
            while self._runs and end - time.monotonic() > 0:
                self._ended.wait(end - time.monotonic())
            self._stopping = True
        self._wake()
        io.join(5.0)
        if not io.is_alive() and self._sel is not None:
            self._sel.close()
            self._sel = None
            os.close(self._wake_r)
            os.close(self._wake_w)
            self._wake_r = self._wake_w = -1

    def _kill_all_now(self) -> None:
        """Interpreter exit without ``close()``: leave no trial behind."""
        self._drop_spare()
        with self._lock:
            runs = list(self._runs.values())
        for run in runs:
            if run.lock.acquire(timeout=1.0):
                try:
                    if not run.reaped:
                        _signal_group(run.pid, signal.SIGKILL)
                finally:
                    run.lock.release()


@atexit.register
def _kill_all_at_exit() -> None:
    for backend in list(_LIVE):
        backend._kill_all_now()
