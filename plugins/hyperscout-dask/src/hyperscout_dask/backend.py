"""The ``dask`` backend: each job is a subprocess on a Dask worker; what it reports comes back as events.

Why it is built this way (every figure is from ``shared/reference/dask-backend.md``):

* **One Dask task per job run**, :func:`hyperscout_dask._task.run_job`. It starts the trial as
  a subprocess with a parent-death signal and its own process group, forwards stdout, stderr and
  the report pipe with ``Worker.log_event`` to a per-job topic, and registers itself in its
  worker process: an abort is :func:`hyperscout_dask._task.abort_jobs` run there with
  ``Client.run`` (on every worker while the job's worker is not known), which kills the group.
  ``Future.cancel()`` cannot stop a running task, so it is never the abort path. A job that is
  not aborted costs the scheduler no message for it.
* **Events, not polling.** The client subscribes to each job's topic; the handler runs on the
  client's I/O thread, so it only puts the message on a queue. One backend thread owns all state:
  it writes the logs into the job's directory (workers need not share a file system), parses
  metrics and emits ``JobStarted`` / ``MetricReported`` / ``JobExited``. Metrics arrive within
  milliseconds, so pruning and budgets work as with local processes.
* **Worker loss is the backend's business.** Dask re-runs a task whose worker died (up to the
  scheduler's ``allowed-failures``); the backend hears it from the ``remove-worker`` event (or
  from a new run id), writes a note in the job's logs and emits nothing else. After
  ``max_retries`` losses it ends the job with ``JobExited(exit_code=None, "worker lost N times:
  ...")``; when Dask gives up first (``KilledWorker``) it submits the job again under a new key.
* **Own queue.** Dask assigns tasks to workers as soon as they are submitted, so a short job can
  wait behind a long one while another worker is idle. With ``hold_back`` (the default) a job is
  handed to Dask only when a worker slot that fits it is free.
* **Re-attach.** Each job's future is published as a dataset named after the job (the handle in
  the store). A new optimizer gets it back with ``get_dataset``, re-subscribes and replays the
  topic's backlog (``get_events``) after a marker proved the subscription live.
* **Few scheduler messages per job, none before the next submit.** The task function travels as a
  :class:`hyperscout_dask._task.Shipped` (the scheduler does not pickle it by value again for
  every task); what a finished job leaves on the scheduler (its future, dataset, subscription,
  topic) is dropped in batches, so the client's batched stream is idle when the next job is
  submitted.
"""

from __future__ import annotations

import json
import logging
import math
import os
import queue
import re
import signal
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import IO, Any

import attrs
import cloudpickle

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
from hyperscout.errors import ConfigError
from hyperscout.job import MetricPoint
from hyperscout.trial import ENV_JOB_ID, decode_report
from hyperscout_dask import _task

__all__ = ["DaskBackend", "queue_resources"]

log = logging.getLogger(__name__)

#: a line the backend writes into a job's logs, so a reader sees what happened around the job
NOTE = "[hyperscout-dask]"
#: where the backend remembers which run a job's log files hold (for re-attach)
SIDECAR = ".hyperscout-dask.json"
#: what finished jobs leave on the scheduler (futures, datasets, subscriptions, topics' events) is
#: dropped in batches of this many jobs (or when the backend is idle)
RELEASE_BATCH = 16
#: seconds between two looks at the cluster's free slots while jobs are held back (worker events
#: trigger a look at once; this is the safety net)
HOLD_RECHECK = 2.0
_STOP = object()


cloudpickle.register_pickle_by_value(_task)
#: the task functions travel by value (see :class:`hyperscout_dask._task.Shipped`): the scheduler
#: and the workers need not import this plugin
RUN_JOB = _task.Shipped.of(_task.run_job)
TRUNCATE = _task.Shipped.of(_task.truncate_topics)
ABORT = _task.Shipped.of(_task.abort_jobs)


# -- names -----------------------------------------------------------------------------------------
def dataset_name(study: str, job_id: str) -> str:
    """The published dataset holding a job's current future: the job's handle in the store."""
    return f"hyperscout/{study}/{job_id}"


def _topic(job_id: str) -> str:
    return f"hyperscout/{job_id}"


def _key(job_id: str, attempt: int) -> str:
    return f"hyperscout-{job_id}-{attempt}"


# -- options ---------------------------------------------------------------------------------------
_QUEUE_ITEM = re.compile(r"^(?:(?P<n>\d+(?:\.\d+)?)\s*x\s*)?(?P<name>[A-Za-z_][\w.\-]*)$")


def queue_resources(queue_name: str | None) -> dict[str, float]:
    """The Dask resources a queue name asks for: ``"default"`` none, ``"GPU"`` one GPU, ``"2xGPU"``
    two, ``"GPU=1,MEM=16e9"`` each as given."""
    if queue_name is None or queue_name.strip() in ("", "default"):
        return {}
    out: dict[str, float] = {}
    for part in queue_name.split(","):
        part = part.strip()
        name, amount = None, None
        if "=" in part:
            name, _, text = part.partition("=")
            name = name.strip()
            try:
                amount = float(text)
            except ValueError:
                amount = None
        else:
            m = _QUEUE_ITEM.match(part)
            if m:
                name, amount = m.group("name"), float(m.group("n") or 1)
        if not name or amount is None or not math.isfinite(amount) or amount <= 0:
            raise ConfigError(
                f"dask backend: execution_queue={queue_name!r} is not a resource request; use 'default' (no "
                "resources), a worker resource name such as 'GPU' or '2xGPU', or 'GPU=1,MEM=16e9'"
            )
        out[name] = amount
    return out


def _check_resources(value: Any) -> dict[str, float]:
    if value is None:
        return {}
    ok = isinstance(value, Mapping) and all(
        isinstance(k, str) and k and isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0
        and math.isfinite(v) for k, v in value.items()
    )
    if not ok:
        raise ConfigError(f"dask backend option resources={value!r} must be a table of NAME = amount > 0, "
                          "e.g. {GPU = 1}")
    return {k: float(v) for k, v in value.items()}


def _number(name: str, value: Any, *, minimum: float, integer: bool = False, example: str) -> Any:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= minimum
    if integer:
        ok = ok and isinstance(value, int)
    if not ok:
        what = "an integer" if integer else "a number"
        raise ConfigError(f"dask backend option {name}={value!r} must be {what} >= {minimum:g}, e.g. {example}")
    return int(value) if integer else float(value)


def _kill_marked(job_id: str) -> list[int]:
    """SIGKILL this host's processes (and their groups) carrying ``HYPERSCOUT_JOB_ID=<job_id>``."""
    marker = f"{ENV_JOB_ID}={job_id}".encode()
    killed = []
    try:
        names = os.listdir("/proc")
    except OSError:
        return killed
    for name in names:
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as fh:
                if marker not in fh.read().split(b"\0"):
                    continue
        except OSError:
            continue
        pid = int(name)
        try:
            if os.getpgid(pid) == pid:
                os.killpg(pid, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        except (ProcessLookupError, PermissionError):
            pass
    return killed


# -- per-job state ---------------------------------------------------------------------------------
@attrs.define(eq=False)
class _Job:
    """Everything the backend thread knows about one job (it alone touches it after creation)."""

    spec: JobSpec
    dataset: str
    payload: dict[str, Any]
    resources: dict[str, float]
    stdout_path: str
    stderr_path: str
    out: IO[bytes]
    err: IO[bytes]
    attempt: int = 0
    key: str | None = None
    future: Any = None
    #: the current run (one execution of the task) and where it runs
    run: str | None = None
    worker: str | None = None
    #: False once the current run's worker was removed (until the next run starts)
    run_alive: bool = False
    old_runs: set[str] = attrs.field(factory=set)
    last_seq: dict[str, int] = attrs.field(factory=dict)
    #: bytes of the current run already handled, per stream (o, e, m), and partial lines
    written: dict[str, int] = attrs.field(factory=lambda: dict.fromkeys("oem", 0))
    partial: dict[str, bytearray] = attrs.field(factory=lambda: {"o": bytearray(), "m": bytearray()})
    parser: LineParser | None = None
    #: worker losses: before the current key, and for it (remove-worker events, runs, KilledWorker)
    base_losses: int = 0
    key_removed: list[str] = attrs.field(factory=list)
    key_runs: int = 0
    key_killed: int = 0
    lost_where: list[str] = attrs.field(factory=list)
    started: bool = False
    exited: bool = False
    abort_sent: bool = False
    #: re-attach: live messages wait here until the backlog is in
    syncing: bool = False
    early: list[tuple[float, dict[str, Any]]] = attrs.field(factory=list)
    sidecar: dict[str, Any] | None = None

    @property
    def job_id(self) -> str:
        return self.spec.job_id

    @property
    def topic(self) -> str:
        return _topic(self.spec.job_id)

    @property
    def losses(self) -> int:
        return self.base_losses + max(len(self.key_removed), self.key_runs - 1, self.key_killed, 0)


class DaskBackend(Backend):
    """Runs each job as a subprocess on a Dask worker. See the README for every option."""

    name = "dask"

    def __init__(
        self,
        *,
        scheduler: Any = None,
        scheduler_file: str | None = None,
        local_workers: int | None = None,
        resources: Mapping[str, float] | None = None,
        max_retries: int = 2,
        kill_grace: float = 5.0,
        env: Mapping[str, str] | None = None,
        connect_timeout: float = 10.0,
        hold_back: bool = True,
    ) -> None:
        super().__init__()
        if scheduler is not None and scheduler_file is not None:
            raise ConfigError("dask backend: give scheduler or scheduler_file, not both")
        if scheduler is not None and not (isinstance(scheduler, str) and scheduler.strip()) and not \
                hasattr(scheduler, "scheduler_address") and not hasattr(scheduler, "submit"):
            raise ConfigError(f"dask backend option scheduler={scheduler!r} must be an address such as "
                              "'tcp://10.0.0.5:8786' (or, from Python, a dask Cluster or Client)")
        if scheduler_file is not None and not (isinstance(scheduler_file, (str, os.PathLike)) and str(scheduler_file)):
            raise ConfigError(f"dask backend option scheduler_file={scheduler_file!r} must be the path written by "
                              "`dask scheduler --scheduler-file PATH`")
        remote = scheduler is not None or scheduler_file is not None
        if local_workers is not None:
            if remote:
                raise ConfigError("dask backend option local_workers sizes the local cluster, which is not used "
                                  "when scheduler or scheduler_file is given; remove one of them")
            local_workers = _number("local_workers", local_workers, minimum=1, integer=True, example="4")
        if not isinstance(hold_back, bool):
            raise ConfigError(f"dask backend option hold_back={hold_back!r} must be true or false")
        self.scheduler = scheduler.strip() if isinstance(scheduler, str) else scheduler
        self.scheduler_file = os.fspath(scheduler_file) if scheduler_file is not None else None
        self.local_workers: int | None = local_workers
        self.resources = _check_resources(resources)
        self.max_retries: int = _number("max_retries", max_retries, minimum=0, integer=True, example="2")
        self.kill_grace: float = _number("kill_grace", kill_grace, minimum=0, example="5.0")
        self.env = env_option("dask", env)
        self.connect_timeout: float = _number("connect_timeout", connect_timeout, minimum=0.1, example="10")
        self.hold_back = hold_back

        self.client: Any = None
        self.cluster: Any = None
        self._owns_client = False
        self._q: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        #: bookkeeping calls to the scheduler (publish, unpublish, emptying topics), in order, off
        #: the backend thread: a burst of job ends must not queue submits behind round trips
        self._admin: ThreadPoolExecutor | None = None
        self._markers: dict[str, threading.Event] = {}
        # -- owned by the backend thread --
        self._jobs: dict[str, _Job] = {}
        self._by_key: dict[str, _Job] = {}
        self._pending: deque[_Job] = deque()
        self._in_flight = 0
        self._capacity: int | None = None
        self._capacity_dirty = True
        self._scaled_to = 0
        self._warned_no_worker = False
        #: workers whose job just ended (their thread is free): the next job goes to one of them
        self._free: deque[str] = deque(maxlen=1024)
        #: finished jobs whose futures, datasets, subscriptions and topics wait to be dropped
        self._retired: list[_Job] = []
        self._closing = False

    # -- connecting ------------------------------------------------------------------------------
    @property
    def address(self) -> str:
        """Where the scheduler is, for messages."""
        if self.scheduler_file is not None:
            return f"scheduler file {self.scheduler_file}"
        if isinstance(self.scheduler, str):
            return self.scheduler
        if self.scheduler is not None:
            return str(getattr(self.scheduler, "scheduler_address", None) or getattr(self.scheduler, "scheduler", ""))
        return "the local cluster"

    def open(
        self, sink: Any, *, poll_interval: float = 6.0, handle_sink: Callable[[str, str], None] | None = None,
        max_concurrency: int | None = None,
    ) -> None:
        """Connect (or start the local cluster), subscribe to worker events, start the backend thread.

        ``max_concurrency`` sizes the local cluster at once when the engine passes it; without it
        the cluster grows to the number of jobs the engine keeps running (its concurrency).
        """
        super().open(sink, poll_interval=poll_interval, handle_sink=handle_sink)
        self._connect(max_concurrency)
        self._admin = ThreadPoolExecutor(1, thread_name_prefix="hyperscout-dask-admin")
        self.client.subscribe_topic("all", self._on_cluster_event)
        self._wait_subscribed("all")  # a worker that joins from now on is seen (capacity, losses)
        self._thread = threading.Thread(target=self._loop, name="hyperscout-dask", daemon=True)
        self._thread.start()

    def _connect(self, max_concurrency: int | None) -> None:
        from distributed import Client

        if self.scheduler is None and self.scheduler_file is None:
            from distributed import LocalCluster

            n = self.local_workers or max(1, int(max_concurrency or 1))
            # Threads in this process, not worker processes: a job is a subprocess anyway, so worker
            # processes would only add start-up time, memory and the spawn re-import of __main__
            # (which breaks scripts without an `if __name__ == "__main__":` guard). Scheduler and
            # workers talk in-process; their HTTP endpoints (health, metrics: Dask always starts
            # them) listen on 127.0.0.1 at a free port, and there is no dashboard.
            self.cluster = LocalCluster(
                n_workers=n, threads_per_worker=1, processes=False, dashboard_address="127.0.0.1:0",
                worker_dashboard_address="127.0.0.1:0", scheduler_kwargs={"dashboard": False},
                silence_logs=logging.WARNING,
            )
            self._scaled_to = n
            self.client = Client(self.cluster, set_as_default=False)
            self._owns_client = True
            return
        if self.scheduler is not None and hasattr(self.scheduler, "submit"):  # a ready Client
            self.client = self.scheduler
            return
        target = self.scheduler
        if target is not None and not isinstance(target, str):
            target = target.scheduler_address
        try:
            if self.scheduler_file is not None:
                if not os.path.exists(self.scheduler_file):
                    raise OSError(f"no such file {self.scheduler_file}")
                self.client = Client(scheduler_file=self.scheduler_file, timeout=self.connect_timeout,
                                     set_as_default=False)
            else:
                self.client = Client(target, timeout=self.connect_timeout, set_as_default=False)
        except Exception as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ConfigError(
                f"dask backend: cannot reach scheduler {self.address}: {reason}; start one with `dask scheduler` "
                "or remove the scheduler option to use a local cluster"
            ) from None
        self._owns_client = True

    # -- the engine's calls (engine thread) ---------------------------------------------------------
    def launch(self, spec: JobSpec) -> None:
        """Prepare the job, record its handle, queue it for the backend thread; returns at once."""
        if self._thread is None:
            raise RuntimeError("DaskBackend.open() must be called before launch()")
        if not self._thread.is_alive():
            raise RuntimeError("the dask backend's thread stopped (see the log above); the study cannot go on")
        job = self._new_job(spec, fresh=True)
        self.record_handle(spec.job_id, job.dataset)  # durable before the job can start
        self.emit(JobQueued(spec.job_id, time.time()))
        self._q.put(("launch", job))

    def _new_job(self, spec: JobSpec, *, fresh: bool) -> _Job:
        command = spec.command
        resources = {**queue_resources(spec.queue), **self.resources}  # checked even where unused
        if self.cluster is not None:
            resources = {}  # one machine: the engine's concurrency is the only limit (see the README)
        workdir = Path(spec.workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        params_file = str(workdir / "params.json") if command.params_as == "json" else None
        argv, extra = command.render(spec.params, job_id=spec.job_id, study=spec.study, params_file=params_file)
        payload: dict[str, Any] = {
            "job_id": spec.job_id,
            "topic": _topic(spec.job_id),
            "argv": argv,
            "env": {**self.env, **extra},
            "cwd": command.cwd,
            "grace": self.kill_grace,
            "params_file": None,
        }
        if params_file is not None:
            payload["params_file"] = [params_file, Path(params_file).read_text(encoding="utf-8")]
        stdout_path, stderr_path = str(workdir / "stdout.log"), str(workdir / "stderr.log")
        mode = "wb" if fresh else "ab"
        out = open(stdout_path, mode)
        try:
            err = open(stderr_path, mode)
        except BaseException:
            out.close()
            raise
        parser = LineParser(spec.metric_patterns) if spec.metric_patterns else None
        return _Job(spec, dataset_name(spec.study, spec.job_id), payload, resources, stdout_path, stderr_path,
                    out, err, parser=parser)

    def abort(self, job_id: str) -> None:
        """Ask the backend thread to end the job (SIGTERM on its worker, SIGKILL after kill_grace); never blocks."""
        if self._thread is not None:
            self._q.put(("abort", job_id))

    def reattach(self, spec: JobSpec, handle: str | None) -> Reattached:
        """Adopt a job a dead optimizer left on the cluster (its published future), or say it is gone.

        With the local cluster there is nothing to adopt (it lived in the dead optimizer's
        process, and its jobs died with it through their parent-death signal); any process of
        the job still found on this host is killed to be sure.
        """
        if self.cluster is not None:
            for pid in _kill_marked(spec.job_id):
                log.info("hyperscout-dask: killed pid %d of job %s, left by a previous run", pid, spec.job_id)
            return Reattached.GONE
        name = handle or dataset_name(spec.study, spec.job_id)
        future = self.client.get_dataset(name, default=None)
        status = getattr(future, "status", None)
        if future is None or status in ("cancelled", "lost"):
            self._end_orphans(spec.job_id, name, future is not None)
            return Reattached.GONE
        job = self._new_job(spec, fresh=False)
        job.dataset = name
        job.key = str(future.key)
        job.future = future
        job.attempt = _attempt_of(job.key)
        job.syncing = True
        job.sidecar = _read_sidecar(spec.workdir)
        if job.sidecar is not None:
            job.base_losses = int(job.sidecar.get("losses", 0))
        self._q.put(("adopt", job))  # first, so live messages wait in job.early for the backlog
        try:
            self.client.subscribe_topic(job.topic, self._on_job_event)
            self._wait_subscribed(job.topic)
            backlog = self.client.get_events(job.topic)
        except BaseException:
            self._q.put(("forget", job.job_id))
            self._end_orphans(spec.job_id, name, True)  # the engine re-runs it: nothing may go on
            raise
        self._q.put(("backlog", job.job_id, list(backlog)))
        future.add_done_callback(partial(self._on_done, spec.job_id, job.key))
        return Reattached.ADOPTED

    def _end_orphans(self, job_id: str, dataset: str, published: bool) -> None:
        """Nothing to adopt: make sure no run of the job goes on (on any worker, now or when it starts)."""
        try:
            self.client.run(ABORT, [job_id], on_error="ignore")
            if published:
                self.client.unpublish_dataset(dataset)
        except Exception as exc:
            log.warning("hyperscout-dask: could not end what is left of job %s: %s", job_id, exc)

    def _wait_subscribed(self, topic: str) -> None:
        """Block until a marker sent to ``topic`` comes back through our subscription.

        ``subscribe_topic`` travels on the batched stream while ``log_event`` and ``get_events``
        are direct calls that can overtake it; once one of our markers is delivered, the backlog
        misses nothing. Markers are sent again at growing intervals (5 ms, 10 ms, ... 0.25 s): a
        marker that overtook the subscription is lost, and waiting long for it would only delay
        the start of the study.
        """
        seen = threading.Event()
        tokens: list[str] = []
        wait, deadline = 0.005, time.monotonic() + 10.0
        try:
            while time.monotonic() < deadline:
                token = uuid.uuid4().hex
                self._markers[token] = seen  # any of them proves the subscription live
                tokens.append(token)
                self.client.log_event(topic, {"hs-marker": token})
                if seen.wait(wait):
                    return
                wait = min(2 * wait, 0.25)
        finally:
            for token in tokens:
                self._markers.pop(token, None)
        log.warning("hyperscout-dask: the subscription to %s was not confirmed; some events may be missed", topic)

    def close(self) -> None:
        """Abort what still runs, wait for its ``JobExited``, then disconnect (and stop the local cluster)."""
        thread = self._thread
        if thread is None:
            self._disconnect()
            return
        self._q.put(("close",))
        thread.join(self.kill_grace + 60.0)
        if thread.is_alive():
            log.warning("hyperscout-dask: the backend thread did not stop")
        self._thread = None
        self._disconnect()

    def _disconnect(self) -> None:
        if self._admin is not None:
            self._admin.shutdown(wait=True)
            self._admin = None
        client, cluster = self.client, self.cluster
        self.client = self.cluster = None
        if client is not None:
            try:
                client.unsubscribe_topic("all")
            except Exception:
                pass
            if self._owns_client:
                try:
                    client.close(timeout=10)
                except Exception as exc:
                    log.debug("hyperscout-dask: closing the client failed: %s", exc)
        if cluster is not None:
            try:
                cluster.close(timeout=20)
            except Exception as exc:
                log.debug("hyperscout-dask: closing the local cluster failed: %s", exc)

    # -- handlers (client I/O thread, callback thread): only queue ------------------------------------
    def _marker(self, msg: dict[str, Any]) -> bool:
        token = msg.get("hs-marker")
        if token is None:
            return False
        seen = self._markers.pop(token, None)
        if seen is not None:
            seen.set()
        return True

    def _on_job_event(self, event: tuple[float, Any]) -> None:
        ts, msg = event
        if isinstance(msg, dict) and not self._marker(msg):
            self._q.put(("msg", ts, msg))

    def _on_cluster_event(self, event: tuple[float, Any]) -> None:
        msg = event[1]
        if isinstance(msg, dict) and not self._marker(msg) and msg.get("action") in ("add-worker", "remove-worker"):
            self._q.put(("cluster", msg))

    def _on_done(self, job_id: str, key: str, _future: Any) -> None:
        self._q.put(("done", job_id, key))

    # -- the backend thread ------------------------------------------------------------------------
    def _emit(self, event: BackendEvent) -> None:
        try:
            self.emit(event)
        except Exception:  # a broken sink must not stop the thread before JobExited
            log.exception("hyperscout-dask: the event sink raised on %r", event)

    def _loop(self) -> None:
        close_by: float | None = None
        try:
            while True:
                timeout = None
                if close_by is not None:
                    timeout = max(0.0, close_by - time.monotonic())
                elif self._retired or self._pending:
                    timeout = HOLD_RECHECK  # also: jobs held back re-check the cluster's slots
                try:
                    item = self._q.get(timeout=timeout)
                except queue.Empty:
                    item = None
                if item is not None:
                    if item[0] == "close":
                        self._closing = True
                        close_by = time.monotonic() + self.kill_grace + 15.0
                        for job in list(self._jobs.values()) + list(self._pending):
                            self._guard(job, self._abort, job.job_id)
                    else:
                        self._handle(item)
                if self._closing:
                    if not self._pending and all(job.exited for job in self._jobs.values()):
                        break
                    if close_by is not None and time.monotonic() >= close_by:
                        for job in list(self._jobs.values()):
                            if not job.exited:
                                self._finish(job, None, "did not end after abort (dask backend closing)")
                            self._release(job)
                        break
                else:
                    if item is None and self._pending:
                        self._capacity_dirty = True  # a worker may have joined unseen
                    self._dispatch()
                if self._retired and (len(self._retired) >= RELEASE_BATCH or item is None):
                    self._flush_retired()
        except BaseException as exc:  # a bug here must still end every job with a JobExited
            log.exception("hyperscout-dask: the backend thread failed")
            for job in list(self._jobs.values()) + list(self._pending):
                if not job.exited:
                    self._finish(job, None, f"dask backend error: {type(exc).__name__}: {exc}")
        finally:
            for job in list(self._jobs.values()):
                self._release(job)
            self._flush_retired()

    def _handle(self, item: tuple[Any, ...]) -> None:
        kind = item[0]
        if kind == "msg":
            ts, msg = item[1], item[2]
            job = self._jobs.get(msg.get("j"))
            if job is None:
                return
            if job.syncing:
                job.early.append((ts, msg))
                return
            self._guard(job, self._apply, job, msg)
        elif kind == "done":
            job = self._jobs.get(item[1])
            if job is not None and job.key == item[2]:
                self._guard(job, self._done, job)
        elif kind == "cluster":
            self._cluster_event(item[1])
        elif kind == "launch":
            job = item[1]
            self._jobs[job.job_id] = job
            if self._closing:
                self._finish(job, None, "aborted before it was submitted (backend closing)")
                self._release(job)
            else:
                self._pending.append(job)
        elif kind == "abort":
            job = self._jobs.get(item[1])
            if job is not None:
                self._guard(job, self._abort, item[1])
        elif kind == "adopt":
            job = item[1]
            self._jobs[job.job_id] = job
            self._by_key[str(job.key)] = job
            self._in_flight += 1
        elif kind == "forget":  # re-attach failed half-way: the engine counts the job as gone
            job = self._jobs.get(item[1])
            if job is not None:
                job.exited = True
                self._in_flight -= 1
                for fh in (job.out, job.err):
                    fh.close()
                self._release(job)
        elif kind == "backlog":
            job = self._jobs.get(item[1])
            if job is not None:
                self._guard(job, self._replay, job, item[2])

    def _guard(self, job: _Job, fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(*args)
        except Exception as exc:
            log.exception("hyperscout-dask: handling job %s failed", job.job_id)
            if not job.exited:
                self._finish(job, None, f"dask backend error: {type(exc).__name__}: {exc}")
                self._drop_remote(job)

    # -- dispatch ------------------------------------------------------------------------------------
    def _dispatch(self) -> None:
        if not self._pending:
            return
        if self.cluster is not None and self.local_workers is None:
            want = self._in_flight + len(self._pending)
            if want > self._scaled_to:  # the engine keeps at most its concurrency in flight
                self._scaled_to = want
                self.cluster.scale(want)
        while self._pending:
            if self.hold_back:
                capacity = self._slots()
                if capacity > 0 and self._in_flight >= capacity:
                    return
            job = self._pending.popleft()
            self._guard(job, self._submit, job)

    def _slots(self) -> int:
        """Job slots of the cluster for this study's resource request (threads of fitting workers)."""
        if self._capacity is None or self._capacity_dirty:
            self._capacity_dirty = False
            try:
                info = self.client.scheduler_info(n_workers=-1)
            except Exception as exc:
                log.debug("hyperscout-dask: scheduler_info failed: %s", exc)
                self._capacity = 0
                return 0
            request = self._pending[0].resources if self._pending else self.resources
            workers = list(info.get("workers", {}).values())
            self._capacity = sum(_fits(w, request) for w in workers)
            if workers and self._capacity == 0 and not self._warned_no_worker:
                self._warned_no_worker = True
                log.warning(
                    "hyperscout-dask: no worker of %s offers the resources %s; jobs wait until one joins "
                    "(start workers with `dask worker --resources %s`, or set time_limit_queued)",
                    self.address, request, ",".join(f"{k}={v:g}" for k, v in request.items()),
                )
        return self._capacity

    def _submit(self, job: _Job) -> None:
        if job.exited:
            return
        key = _key(job.job_id, job.attempt)
        if job.attempt == 0:
            self.client.subscribe_topic(job.topic, self._on_job_event)  # before the task can log anything
        # Dask lets each worker take one task more than it has threads, and may pick a busy worker
        # while the one whose job just ended is idle: so the job asks for that one (loosely: any
        # worker if it is gone). Not with resources: a loose fallback ignores them.
        where: dict[str, Any] = {}
        if self._free and not job.resources:
            where = {"workers": [self._free.popleft()], "allow_other_workers": True}
        future = self.client.submit(RUN_JOB, {**job.payload, "key": key}, key=key,
                                    resources=job.resources or None, pure=False, **where)
        if job.key is None:
            self._in_flight += 1
        job.key, job.future = key, future
        job.key_removed, job.key_runs, job.key_killed = [], 0, 0
        self._by_key[key] = job
        if self.cluster is None:  # the local cluster dies with this process: nothing could re-attach
            self._later(self.client.publish_dataset, future, name=job.dataset, override=True,
                        failed=f"could not publish job {job.job_id} as {job.dataset}; it cannot be re-attached")
        future.add_done_callback(partial(self._on_done, job.job_id, key))

    # -- messages from a run ---------------------------------------------------------------------------
    def _replay(self, job: _Job, backlog: list[tuple[float, Any]]) -> None:
        """Re-attach: the topic's backlog and the live messages that came meanwhile, in order, once each."""
        merged: dict[tuple[str, int], tuple[float, dict[str, Any]]] = {}
        for ts, msg in [*backlog, *job.early]:
            if isinstance(msg, dict) and msg.get("j") == job.job_id and "r" in msg:
                merged.setdefault((msg["r"], int(msg["n"])), (ts, msg))
        job.syncing, job.early = False, []
        for _, msg in sorted(merged.values(), key=lambda item: (item[0], int(item[1]["n"]))):
            if job.exited:
                break
            self._apply(job, msg)

    def _apply(self, job: _Job, msg: dict[str, Any]) -> None:
        run, seq = msg.get("r"), int(msg.get("n", 0))
        if job.exited:
            if msg.get("ev") == "start":  # Dask ran it again after the job ended (its worker died late)
                self._send_abort(job, msg.get("worker"))
            return
        if msg.get("k") != job.key or run in job.old_runs:
            return  # a superseded key or run
        if seq <= job.last_seq.get(run, -1):
            return
        job.last_seq[run] = seq
        if run != job.run:
            self._begin_run(job, str(run), msg.get("worker"))
            if job.abort_sent:  # a new run of an aborted job (its worker was lost meanwhile): end it too
                self._send_abort(job, msg.get("worker"))
        if not job.started and msg.get("ev") != "end":
            job.started = True
            self._emit(JobStarted(job.job_id, time.time(), msg.get("pid"), job.stdout_path, job.stderr_path,
                                  msg.get("worker")))
        for stream in ("o", "e", "m"):
            data = msg.get(stream)
            if data:
                self._stream(job, stream, int(msg.get(stream + "o", 0)), bytes(data))
        if msg.get("ev") == "end":
            rc = msg.get("rc")
            if msg.get("worker"):
                self._free.append(str(msg["worker"]))
            self._finish(job, None if rc is None else int(rc), msg.get("why"))

    def _begin_run(self, job: _Job, run: str, worker: str | None) -> None:
        previous = job.run
        if previous is not None:
            job.old_runs.add(previous)
            job.key_runs += 1
            if len(job.key_removed) < job.key_runs - 1 and job.worker:
                job.lost_where.append(job.worker)  # lost without a remove-worker event reaching us
        else:
            job.key_runs = max(job.key_runs, 1)
        job.run, job.worker, job.run_alive = run, worker, True
        job.written = dict.fromkeys("oem", 0)
        job.partial = {"o": bytearray(), "m": bytearray()}
        job.parser = LineParser(job.spec.metric_patterns) if job.spec.metric_patterns else None
        side = job.sidecar
        job.sidecar = None
        if previous is None and side is not None and side.get("run") == run:
            self._resume_run(job, side)  # re-attach: the files already hold the start of this run
            return
        if previous is not None or side is not None:
            where = f" on {worker}" if worker else ""
            self._note(job, f"the job starts again from the beginning{where} (run {run})")
        self._write_sidecar(job)
        if previous is not None:
            self._check_losses(job)

    def _resume_run(self, job: _Job, side: dict[str, Any]) -> None:
        """The optimizer restarted during this run: continue the logs where they stop, re-read metrics."""
        job.out.flush()
        job.err.flush()
        base_o, base_e = int(side.get("o", 0)), int(side.get("e", 0))
        size_o, size_e = os.path.getsize(job.stdout_path), os.path.getsize(job.stderr_path)
        job.written["o"] = max(0, size_o - base_o)
        job.written["e"] = max(0, size_e - base_e)
        if job.parser is not None and size_o > base_o:
            with open(job.stdout_path, "rb") as fh:
                fh.seek(base_o)
                self._out_lines(job, fh.read())  # metrics already recorded are de-duplicated by the engine

    def _stream(self, job: _Job, stream: str, offset: int, data: bytes) -> None:
        have = job.written[stream]
        end = offset + len(data)
        if end <= have:
            return  # already handled (the backlog repeats what came live)
        if offset > have and stream != "m":
            self._note(job, f"{offset - have} bytes of {'stdout' if stream == 'o' else 'stderr'} were lost "
                            "while the optimizer was away")
        data = data[max(0, have - offset):]
        job.written[stream] = end
        if stream == "e":
            job.err.write(data)
            job.err.flush()
        elif stream == "o":
            job.out.write(data)
            job.out.flush()
            if job.parser is not None:
                self._out_lines(job, data)
        else:
            for line in _lines(job.partial["m"], data):
                self._report_line(job, line)

    def _out_lines(self, job: _Job, data: bytes) -> None:
        for line in _lines(job.partial["o"], data):
            self._stdout_line(job, line)

    def _stdout_line(self, job: _Job, line: bytes) -> None:
        assert job.parser is not None
        now = time.time()
        for title, series, iteration, value in job.parser.feed(line.decode("utf-8", "replace")):
            self._emit(MetricReported(job.job_id, MetricPoint(title, series, iteration, value, now)))

    def _report_line(self, job: _Job, line: bytes) -> None:
        if not line.strip():
            return
        decoded = decode_report(line)
        if decoded is None:
            log.warning("hyperscout-dask: job %s wrote a malformed report line: %r", job.job_id, line[:200])
            return
        title, series, iteration, value, ts = decoded
        self._emit(MetricReported(job.job_id, MetricPoint(title, series, iteration, value, ts)))

    # -- the end of a job -----------------------------------------------------------------------------
    def _done(self, job: _Job) -> None:
        """The job's current task finished, failed or was cancelled."""
        future = job.future
        if job.exited:
            self._release(job)
            return
        status = future.status
        if status == "finished":
            try:
                result = future.result(timeout=30)
                rc, why = result.get("rc"), result.get("why")
            except Exception as exc:
                rc, why = None, f"could not fetch the job's result from Dask: {type(exc).__name__}: {exc}"
            self._finish(job, rc, why)
            self._release(job)
            return
        if status == "error":
            exc = _exception(future)
            from distributed.scheduler import KilledWorker

            if isinstance(exc, KilledWorker):
                job.key_killed = max(job.key_killed, int(getattr(exc, "allowed_failures", 0) or 0) + 1)
                last = getattr(exc, "last_worker", None)
                address = getattr(last, "address", None) or (str(last) if last else None)
                while len(job.lost_where) < job.losses and address:
                    job.lost_where.append(address)
                if self._check_losses(job):
                    return
                self._resubmit(job)
                return
            self._finish(job, None, f"dask task failed: {type(exc).__name__}: {exc}")
            self._release(job)
            return
        reason = _cancel_reason(future)
        self._finish(job, None, f"the Dask task was cancelled ({reason}); was the scheduler restarted?")
        self._release(job)

    def _resubmit(self, job: _Job) -> None:
        """Dask gave up on this key (``KilledWorker``) while retries remain: submit it again, new key."""
        job.base_losses = job.losses
        self._by_key.pop(str(job.key), None)
        if job.run is not None:
            job.old_runs.add(job.run)
        job.run, job.run_alive = None, False
        job.attempt += 1
        self._note(job, f"Dask gave up after losing {job.lost_where[-1] if job.lost_where else 'a worker'}; "
                        f"submitting the job again (attempt {job.attempt + 1})")
        self._write_sidecar(job)
        self._submit(job)

    def _check_losses(self, job: _Job) -> bool:
        """End the job if it lost more workers than ``max_retries`` allows; True if it did."""
        n = job.losses
        if n <= self.max_retries or job.exited:
            return False
        where = ", ".join(job.lost_where[-5:]) if job.lost_where else "worker processes died"
        self._set_abort(job)
        self._drop_remote(job)
        self._finish(job, None, f"worker lost {n} times: {where} (max_retries={self.max_retries})")
        return True

    def _cluster_event(self, msg: dict[str, Any]) -> None:
        self._capacity_dirty = True
        if msg.get("action") != "remove-worker":
            return
        address = str(msg.get("worker", "?"))
        if address in self._free:
            self._free = deque((w for w in self._free if w != address), maxlen=self._free.maxlen)
        for key in msg.get("processing-tasks") or ():
            job = self._by_key.get(key)
            if job is None or job.exited or job.key != key or address in job.key_removed:
                continue
            job.key_removed.append(address)
            job.lost_where.append(address)
            job.run_alive = False
            how = "left" if msg.get("expected") else "was lost"
            self._note(job, f"worker {address} {how} while running this job (loss {job.losses}, "
                            f"max_retries={self.max_retries})")
            self._write_sidecar(job)
            self._check_losses(job)

    def _abort(self, job_id: str) -> None:
        job = self._jobs.get(job_id)
        if job is None or job.exited:
            return
        if job in self._pending:
            self._pending.remove(job)
            self._finish(job, None, "aborted before it was submitted to Dask")
            self._release(job)
            return
        self._set_abort(job)
        if not job.started or not job.run_alive:  # queued, starting, or waiting for a re-run: end it here
            self._drop_remote(job)
            self._finish(job, None, "aborted before it started" if not job.started else
                         "aborted while waiting to run again after its worker was lost")

    def _set_abort(self, job: _Job) -> None:
        if job.abort_sent:
            return
        job.abort_sent = True
        self._send_abort(job, job.worker if job.started and job.run_alive else None)

    def _send_abort(self, job: _Job, worker: str | None) -> None:
        """Run :func:`_task.abort_jobs` for the job on its worker (every worker if not known), off this thread."""
        if self.client is None:
            return
        self._later(self.client.run, ABORT, [job.job_id], workers=[worker] if worker else None, on_error="ignore",
                    failed=f"could not abort job {job.job_id}")

    def _drop_remote(self, job: _Job) -> None:
        """Forget the job's task on the scheduler (a running one is ended by its abort)."""
        future = job.future
        if future is None:
            return
        try:  # its dataset is dropped with the job's other leftovers (see _flush_retired)
            self.client.cancel([future], force=True)
        except Exception as exc:
            log.debug("hyperscout-dask: cancelling %s failed: %s", future.key, exc)

    def _finish(self, job: _Job, rc: int | None, why: str | None) -> None:
        """Emit the job's one ``JobExited`` (parsing what is left of its partial lines first)."""
        if job.exited:
            return
        job.exited = True
        if job in self._pending:
            self._pending.remove(job)
        elif job.key is not None:
            self._in_flight -= 1
        if job.partial["o"] and job.parser is not None:
            self._stdout_line(job, bytes(job.partial["o"]))
        if job.partial["m"]:
            self._report_line(job, bytes(job.partial["m"]))
        for fh in (job.out, job.err):
            try:
                fh.close()
            except OSError:
                pass
        self._emit(JobExited(job.job_id, time.time(), rc, why))

    def _release(self, job: _Job) -> None:
        """The job is over and its task too: drop everything the scheduler keeps for it."""
        self._jobs.pop(job.job_id, None)
        for key in [k for k, j in self._by_key.items() if j is job]:
            del self._by_key[key]
        if job.future is not None and job not in self._retired:
            self._retired.append(job)  # dropped with others: the next submit must not queue behind it

    def _flush_retired(self) -> None:
        """Drop what a batch of finished jobs left on the scheduler: about one message per job, in one write."""
        jobs, self._retired = self._retired, []
        client = self.client
        if not jobs or client is None:
            return
        for job in jobs:
            try:
                client.unsubscribe_topic(job.topic)
            except Exception:
                pass
            job.future = None  # releases the key
        if self.cluster is None:
            self._later(client.unpublish_dataset, [job.dataset for job in jobs])
        self._later(client.run_on_scheduler, TRUNCATE, [job.topic for job in jobs])  # the events stay if it fails

    def _later(self, fn: Callable[..., Any], *args: Any, failed: str | None = None, **kwargs: Any) -> None:
        """Run a bookkeeping call on the admin thread; a failure is logged (as a warning if ``failed``)."""

        def call() -> None:
            try:
                fn(*args, **kwargs)
            except Exception as exc:
                if failed:
                    log.warning("hyperscout-dask: %s (%s)", failed, exc)
                else:
                    log.debug("hyperscout-dask: %s failed: %s", getattr(fn, "__name__", fn), exc)

        admin = self._admin
        if admin is None:
            call()
        else:
            admin.submit(call)

    # -- logs --------------------------------------------------------------------------------------
    def _note(self, job: _Job, text: str) -> None:
        line = f"{NOTE} {time.strftime('%Y-%m-%d %H:%M:%S')} {text}\n".encode()
        for fh in (job.out, job.err):
            if not fh.closed:
                fh.write(line)
                fh.flush()

    def _write_sidecar(self, job: _Job) -> None:
        job.out.flush()
        job.err.flush()
        data = {"run": job.run, "key": job.key, "losses": job.losses,
                "o": os.path.getsize(job.stdout_path), "e": os.path.getsize(job.stderr_path)}
        path = Path(job.spec.workdir) / SIDECAR
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, path)


def _fits(worker: Mapping[str, Any], request: Mapping[str, float]) -> int:
    slots = int(worker.get("nthreads", 1) or 1)
    have = worker.get("resources") or {}
    for name, amount in request.items():
        slots = min(slots, int(float(have.get(name, 0)) // amount))
    return max(0, slots)


def _lines(buf: bytearray, data: bytes) -> list[bytes]:
    """Append ``data`` to ``buf``; return the complete lines, keep the partial rest in ``buf``."""
    buf += data
    if b"\n" not in data:
        return []
    *lines, rest = bytes(buf).split(b"\n")
    buf[:] = rest
    return lines


def _attempt_of(key: str) -> int:
    try:
        return int(key.rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return 0


def _read_sidecar(workdir: str) -> dict[str, Any] | None:
    try:
        data = json.loads((Path(workdir) / SIDECAR).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _exception(future: Any) -> BaseException:
    try:
        exc = future.exception(timeout=10)
    except Exception as err:
        return err
    return exc if isinstance(exc, BaseException) else RuntimeError(str(exc))


def _cancel_reason(future: Any) -> str:
    try:
        future.result(timeout=0)
    except Exception as exc:
        text = str(exc).strip()
        return text.splitlines()[0] if text else type(exc).__name__
    return "no reason given"
