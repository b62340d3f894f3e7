"""What runs on a Dask worker for one job: the trial subprocess, its three streams, its abort.

This module uses only the standard library and ``distributed``, and the backend ships it by
value (cloudpickle) with every task, so the scheduler and the workers need neither hyperscout nor
this plugin installed: only what the trial itself imports.

One call of :func:`run_job` is one *run* of a job (Dask runs a task again on another worker
when the first dies; every run has its own random id). It:

* starts the trial with a parent-death signal (``setpriv --pdeathsig KILL``, else
  ``prctl(PR_SET_PDEATHSIG)``) in a new session, so the trial dies with this worker and leads a
  process group holding everything it forks; a tiny ``sh`` watchdog SIGKILLs that whole group
  when the worker process disappears (its pipe from the worker reaches end-of-file), so no
  copy of a job outlives its worker while Dask re-runs it elsewhere;
* reads stdout, stderr and the ``HYPERSCOUT_REPORT_FD`` pipe in this thread (one ``select``
  loop) and sends the bytes to the job's topic with ``Worker.log_event``: the first message of
  a quiet period at once, then at most one message per ``MIN_INTERVAL`` while output keeps
  coming, so reports reach the optimizer within milliseconds and a flood costs few messages;
* registers itself in its worker process while it runs: :func:`abort_jobs`, which the backend
  runs on the job's worker with ``Client.run`` (on every worker when it does not know where the
  job is), sends SIGTERM to the group and SIGKILL after the grace period, and marks the job
  aborted, so a run of it that starts there later ends at once. Nothing is kept on the scheduler
  and a run that is not aborted costs it no message;
* on exit SIGKILLs what is left of the group (while the main process is an unreaped zombie, so
  its id cannot be reused), sends an ``end`` message and returns ``{"rc", "why", "run"}``.

Messages are msgpack-safe dicts (str, int, bytes, lists): ``j`` job id, ``k`` Dask key, ``r``
run id, ``n`` sequence number in the run, ``o``/``e``/``m`` stdout/stderr/report bytes with
their stream offsets ``oo``/``eo``/``mo`` (so the optimizer can drop what it already has when it
re-reads the backlog after a restart), ``ev`` = ``start`` or ``end``.
"""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from typing import Any

#: seconds between two messages of one run while output keeps coming
MIN_INTERVAL = 0.01
#: a message is sent at once when this many bytes are waiting
MAX_BATCH = 256 * 1024
#: seconds to keep reading the pipes after the main process exited and its group was killed
DRAIN_TIMEOUT = 1.0
#: a worker process remembers this many aborted jobs (a run of one of them that starts later ends at once)
ABORTED_KEEP = 10000
REASON_MAX = 200
#: how much of the end of stderr is kept for the failure reason (its last non-empty line)
TAIL_BYTES = 8192
_CHUNK = 1 << 16
_STREAMS = ("o", "e", "m")

#: What the watchdog runs: wait for "done" on stdin; anything else (end-of-file because the
#: worker died) SIGKILLs the trial's process group.
WATCHDOG = '{ read -r x; } 2>/dev/null; [ "$x" = done ] || kill -9 -"$1" 2>/dev/null'

_PR_SET_PDEATHSIG = 1


def _cache() -> dict[str, Any]:
    """This process's cache (this module travels by value: its globals are not shared by the tasks)."""
    import distributed

    cache: dict[str, Any] = distributed.__dict__.setdefault("_hyperscout_dask_cache", {})
    return cache


class Shipped:
    """A function carried by value that stays cheap to pickle wherever it travels.

    Dask's scheduler unpickles every task it is given and pickles it again for the worker; a
    plain function made by ``cloudpickle`` would be pickled by value again there (milliseconds
    of the scheduler's CPU per task). A ``Shipped`` pickles as ``cloudpickle.loads(<carrier>)``,
    the carrier being bytes made once per process, and loads the function itself once per
    process on the first call: only ``cloudpickle`` is needed where it goes. Its signature names
    the function's parameters, so ``Client.run`` still passes ``dask_worker`` or ``dask_scheduler``
    to a function that asks for it.
    """

    def __init__(self, blob: bytes, digest: str, name: str, params: tuple[str, ...] = ()) -> None:
        self.blob, self.digest, self.__name__, self.params = blob, digest, name, tuple(params)

    @classmethod
    def of(cls, fn: Any) -> Any:
        import hashlib
        import inspect

        import cloudpickle

        blob = cloudpickle.dumps(fn)
        return cls(blob, hashlib.sha1(blob).hexdigest(), fn.__name__, tuple(inspect.signature(fn).parameters))

    @property
    def __signature__(self) -> Any:
        import inspect

        kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
        return inspect.Signature([inspect.Parameter(name, kind) for name in self.params])

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        cache = _cache()
        fn = cache.get("fn:" + self.digest)
        if fn is None:
            import cloudpickle

            fn = cache["fn:" + self.digest] = cloudpickle.loads(self.blob)
        return fn(*args, **kwargs)

    def __reduce__(self) -> tuple[Any, ...]:
        import cloudpickle

        cache = _cache()
        name = "carrier:" + self.digest
        carrier = cache.get(name)
        if carrier is None:
            lock = cache.get("carrier-lock")
            if lock is None:
                lock = cache.setdefault("carrier-lock", threading.RLock())
            with lock:  # another thread waits for the carrier; this one re-enters from the dumps below
                carrier = cache.get(name)
                if carrier is None:
                    building = cache.setdefault("building", set())
                    if self.digest in building:  # inside the dumps below: the class by value, once
                        return (type(self), (self.blob, self.digest, self.__name__, self.params))
                    building.add(self.digest)
                    try:
                        carrier = cache[name] = cloudpickle.dumps(self)
                    finally:
                        building.discard(self.digest)
        return (cloudpickle.loads, (carrier,))


def _registry() -> tuple[threading.Lock, dict[str, Any], dict[str, float]]:
    """This worker process's running jobs (job id -> abort function) and aborted jobs, with their lock."""
    cache = _cache()
    lock = cache.get("lock")
    if lock is None:
        lock = cache.setdefault("lock", threading.Lock())
    with lock:
        return lock, cache.setdefault("runs", {}), cache.setdefault("aborted", {})


def abort_jobs(job_ids: list[str]) -> int:
    """Run on a worker by ``Client.run``: end these jobs' runs in this process; returns how many ran.

    Each job is also marked aborted here, so a run of it that starts later (a task Dask could
    not stop yet) ends before its process is started.
    """
    lock, runs, aborted = _registry()
    hits = []
    with lock:
        now = time.time()
        for job_id in job_ids:
            aborted.pop(job_id, None)
            aborted[job_id] = now
            fn = runs.get(job_id)
            if fn is not None:
                hits.append(fn)
        while len(aborted) > ABORTED_KEEP:
            del aborted[next(iter(aborted))]
    for fn in hits:  # SIGTERM now, SIGKILL after the grace period: not on the worker's event loop
        threading.Thread(target=fn, name="hyperscout-abort", daemon=True).start()
    return len(hits)


def _pdeathsig_prefix() -> list[str] | None:
    """``setpriv --pdeathsig KILL --`` when this host's setpriv has it (util-linux >= 2.33), cached."""
    cache = _cache()
    if "setpriv" not in cache:
        found = shutil.which("setpriv")
        ok = False
        if found is not None:
            try:
                out = subprocess.run([found, "--help"], capture_output=True, timeout=10)
                ok = b"--pdeathsig" in out.stdout + out.stderr
            except (OSError, subprocess.SubprocessError):
                ok = False
        cache["setpriv"] = [found, "--pdeathsig", "KILL", "--"] if ok and found else None
    return cache["setpriv"]


def _prctl_preexec() -> Any:
    """A ``preexec_fn`` setting PR_SET_PDEATHSIG, for Linux hosts without a capable setpriv."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:  # runs in the forked child before exec: keep it to two system calls
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent:  # the worker died before the signal was armed
            os._exit(137)

    return preexec


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _reason(rc: int | None, tail: bytes) -> str | None:
    if rc == 0:
        return None
    if rc is not None and rc < 0:
        try:
            return f"killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"killed by signal {-rc}"
    for line in reversed(tail.decode("utf-8", "replace").splitlines()):
        line = line.strip()
        if line:
            return line if len(line) <= REASON_MAX else line[: REASON_MAX - 3] + "..."
    return f"exited with code {rc}"


def _resolve(program: str, cwd: str | None, path: str | None) -> str | None:
    """The executable ``program`` names for the job (``None``: it cannot be started)."""
    if os.sep in program:
        full = program if os.path.isabs(program) else os.path.join(cwd or os.getcwd(), program)
        return full if os.path.isfile(full) and os.access(full, os.X_OK) else None
    return shutil.which(program, path=path)


def _params_file(job: dict[str, Any], argv: list[str], env: dict[str, str]) -> str | None:
    """Make the job's parameters file exist on this host; returns a temporary directory to remove."""
    spec = job.get("params_file")
    if not spec:
        return None
    path, text = spec
    try:
        with open(path, encoding="utf-8") as fh:
            if fh.read() == text:
                return None  # a shared file system (or this very host): the optimizer's copy is here
    except OSError:
        pass
    tmp = tempfile.mkdtemp(prefix="hyperscout-")
    local = os.path.join(tmp, os.path.basename(path) or "params.json")
    with open(local, "w", encoding="utf-8") as fh:
        fh.write(text)
    argv[:] = [a.replace(path, local) for a in argv]
    for k, v in list(env.items()):
        if v == path:
            env[k] = local
    return tmp


class _Sender:
    """Batches the run's output into ``log_event`` messages on the job's topic."""

    def __init__(self, worker: Any, topic: str, head: dict[str, Any]) -> None:
        self.worker = worker
        self.topic = topic
        self.head = head
        self.seq = 0
        self.bufs = {s: bytearray() for s in _STREAMS}
        self.offsets = dict.fromkeys(_STREAMS, 0)
        self.last = 0.0

    def add(self, stream: str, data: bytes) -> None:
        self.bufs[stream] += data

    @property
    def waiting(self) -> int:
        return sum(len(b) for b in self.bufs.values())

    def due(self, now: float) -> float | None:
        """Seconds until the waiting output should go out (``None``: nothing waits)."""
        n = self.waiting
        if not n:
            return None
        if n >= MAX_BATCH:
            return 0.0
        return max(0.0, self.last + MIN_INTERVAL - now)

    def send(self, **extra: Any) -> None:
        msg: dict[str, Any] = {**self.head, "n": self.seq, **extra}
        for s in _STREAMS:
            buf = self.bufs[s]
            if buf:
                msg[s] = bytes(buf)
                msg[s + "o"] = self.offsets[s]
                self.offsets[s] += len(buf)
                buf.clear()
        self.seq += 1
        self.last = time.monotonic()
        try:
            self.worker.log_event(self.topic, msg)
        except Exception:
            pass


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Run one job's command on this worker; the Dask task function."""
    from distributed import get_worker

    worker = get_worker()
    run = uuid.uuid4().hex[:10]
    sender = _Sender(worker, job["topic"], {"j": job["job_id"], "k": job["key"], "r": run})
    argv = [str(a) for a in job["argv"]]
    cwd: str | None = job.get("cwd") or None
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYPERSCOUT_")}
    env.update(job["env"])
    env["PYTHONUNBUFFERED"] = "1"
    grace = float(job.get("grace", 5.0))

    lock = threading.Lock()
    state: dict[str, Any] = {"proc": None, "reaped": False, "aborted": False}
    finished = threading.Event()

    def abort() -> None:
        with lock:
            state["aborted"] = True
            proc = state["proc"]
            if proc is None or state["reaped"]:
                return
            _signal_group(proc.pid, signal.SIGKILL if grace <= 0 else signal.SIGTERM)
        if grace > 0 and not finished.wait(grace):
            with lock:
                if not state["reaped"]:
                    _signal_group(proc.pid, signal.SIGKILL)

    job_id = job["job_id"]
    reg_lock, runs, aborted = _registry()
    with reg_lock:
        if job_id in aborted:
            state["aborted"] = True
        else:
            runs[job_id] = abort

    def fail(reason: str) -> dict[str, Any]:
        sender.add("e", (reason + "\n").encode())
        sender.send(ev="end", rc=None, why=reason)
        finished.set()
        return {"rc": None, "why": reason, "run": run}

    tmpdir = None
    watchdog: subprocess.Popen[bytes] | None = None
    report_r, report_w = os.pipe()
    try:
        if state["aborted"]:
            return fail("aborted before it started")
        tmpdir = _params_file(job, argv, env)
        if cwd is not None and not os.path.isdir(cwd):
            return fail(f"could not start {argv[0]!r}: working directory {cwd!r}: No such file or directory")
        exe = _resolve(argv[0], cwd, env.get("PATH"))
        if exe is None:
            return fail(f"could not start {argv[0]!r}: No such file or directory")
        env["HYPERSCOUT_REPORT_FD"] = str(report_w)
        env["HYPERSCOUT_REPORT_INO"] = str(os.fstat(report_w).st_ino)
        prefix = _pdeathsig_prefix()
        preexec = None if prefix is not None else _prctl_preexec()
        with lock:
            if state["aborted"]:
                return fail("aborted before it started")
            try:
                proc = subprocess.Popen(
                    [*(prefix or ()), exe, *argv[1:]],
                    cwd=cwd,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    pass_fds=(report_w,),
                    start_new_session=True,
                    preexec_fn=preexec,
                )
            except OSError as exc:
                return fail(f"could not start {argv[0]!r}: {exc.strerror or exc}")
            state["proc"] = proc
        os.close(report_w)
        report_w = -1
        watchdog = _start_watchdog(proc.pid)
        sender.send(ev="start", pid=proc.pid, host=socket.gethostname())
        rc, tail = _pump(proc, report_r, sender, lock, state)
        if watchdog is not None:
            _disarm_watchdog(watchdog)
        why = _reason(rc, tail)
        sender.send(ev="end", rc=rc, why=why)
        return {"rc": rc, "why": why, "run": run}
    finally:
        finished.set()
        with reg_lock:
            if runs.get(job_id) is abort:
                del runs[job_id]
        if watchdog is not None:  # reaped off the task's path: the worker's thread is free at once
            threading.Thread(target=_reap, args=(watchdog,), daemon=True).start()
        for fd in (report_r, report_w):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        if tmpdir is not None:
            shutil.rmtree(tmpdir, ignore_errors=True)


def _reap(watchdog: subprocess.Popen[bytes]) -> None:
    try:
        watchdog.wait(10.0)
    except subprocess.TimeoutExpired:
        watchdog.kill()
        watchdog.wait()


def _start_watchdog(pgid: int) -> subprocess.Popen[bytes] | None:
    try:
        return subprocess.Popen(
            ["/bin/sh", "-c", WATCHDOG, "hyperscout-watchdog", str(pgid)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError:
        return None


def _disarm_watchdog(watchdog: subprocess.Popen[bytes]) -> None:
    """Tell the watchdog the run ended by itself (it exits without killing anything)."""
    try:
        assert watchdog.stdin is not None
        watchdog.stdin.write(b"done\n")
        watchdog.stdin.close()
    except OSError:
        pass


def _exit_fd(proc: subprocess.Popen[bytes]) -> tuple[int, threading.Thread | None]:
    """A file descriptor readable once the process exited (it stays an unreaped zombie)."""
    try:
        return os.pidfd_open(proc.pid), None
    except (AttributeError, OSError):
        pass
    r, w = os.pipe()

    def wait() -> None:
        try:
            os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
        except ChildProcessError:
            pass
        finally:
            os.write(w, b"x")
            os.close(w)

    t = threading.Thread(target=wait, daemon=True)
    t.start()
    return r, t


def _pump(
    proc: subprocess.Popen[bytes], report_r: int, sender: _Sender, lock: threading.Lock, state: dict[str, Any]
) -> tuple[int, bytes]:
    """Forward the streams until the process exited and its pipes closed; returns its status and stderr tail."""
    assert proc.stdout is not None and proc.stderr is not None
    tail = bytearray()
    exit_fd, _ = _exit_fd(proc)
    fds = {proc.stdout.fileno(): "o", proc.stderr.fileno(): "e", report_r: "m"}
    sel = selectors.DefaultSelector()
    try:
        for fd, stream in fds.items():
            sel.register(fd, selectors.EVENT_READ, stream)
        sel.register(exit_fd, selectors.EVENT_READ, "x")
        open_streams = len(fds)
        drain_until: float | None = None
        while True:
            now = time.monotonic()
            timeout = sender.due(now)
            if drain_until is not None:
                left = max(0.0, drain_until - now)
                timeout = left if timeout is None else min(timeout, left)
            for key, _ in sel.select(timeout):
                if key.data == "x":
                    sel.unregister(exit_fd)
                    with lock:  # the group is ours while the main process is an unreaped zombie
                        _signal_group(proc.pid, signal.SIGKILL)
                        proc.wait()
                        state["reaped"] = True
                    drain_until = time.monotonic() + DRAIN_TIMEOUT
                    continue
                data = os.read(key.fd, _CHUNK)
                if not data:
                    sel.unregister(key.fd)
                    open_streams -= 1
                    continue
                sender.add(key.data, data)
                if key.data == "e":
                    tail += data
                    del tail[:-TAIL_BYTES]
            now = time.monotonic()
            if state["reaped"] and (open_streams == 0 or (drain_until is not None and now >= drain_until)):
                break
            due = sender.due(now)
            if due is not None and due <= 0:
                sender.send()
        # what is still waiting goes out with the "end" message: one message fewer per job
    finally:
        sel.close()
        os.close(exit_fd)
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode is not None
    return proc.returncode, bytes(tail)


def truncate_topics(topics: list[str], dask_scheduler: Any = None) -> int:
    """Run on the scheduler: drop the retained events of finished jobs' topics (memory).

    Uses the scheduler's private event broker; when it is missing (another Dask version) nothing
    is dropped and the topics keep their last 1000 events each, as Dask does by default.
    """
    broker = getattr(dask_scheduler, "_broker", None)
    if broker is None or not hasattr(broker, "truncate"):
        return 0
    for topic in topics:
        broker.truncate(topic)
    return len(topics)
