"""A FAKE clearml-agent for tests: pops a queue of a ClearML API server and runs each task's script locally.

It is NOT clearml-agent (no virtualenv/docker/git, no package installation); it follows the agent's protocol
closely enough that the real ``clearml`` SDK in the trial process behaves as under a real agent:

* ``auth.login`` then ``workers.register`` for the queue; ``queues.get_next_task`` (FIFO pop) while a slot is
  free; ``tasks.get_by_id`` for the script; ``tasks.started`` ("pulled by agent");
* the task runs as a subprocess in a process group of its own, with ``CLEARML_TASK_ID``, ``CLEARML_WORKER_ID``,
  ``CLEARML_LOG_TASK_TO_BACKEND=0`` and the API environment of a private directory (HOME, clearml.conf,
  cache) - never the test's temp directory;
* the script comes from the task's ``script`` fields: ``script.diff`` of a task without a repository is written
  to ``entry_point`` in a private directory (how ClearML stores a standalone script), otherwise
  ``working_dir/entry_point`` relative to ``script.repository`` (a local directory) or to ``root``;
* one batched ``tasks.get_all(id=[...running], only_fields=[status, status_message])`` per stop-poll: a task
  that is ``stopped``/``failed``/``closed``/``published``/``queued``/``created``, or ``in_progress`` with
  "stopping" in its status message, is killed - SIGTERM to its process group, SIGKILL after ``kill_grace``
  (clearml 2.1.x ignores SIGTERM once ``Task.init`` ran) - and marked ``stopped`` ("user abort") if it was
  still running;
* at exit: code 0 -> ``tasks.completed`` ("worker execution done"), otherwise ``tasks.failed`` with
  ``status_reason`` "worker execution exit code N" and the last stderr line as ``status_message``; the
  console output is sent as ``log`` events (the real agent streams it; this one sends it once at the end).

Usage::

    with FakeClearMLServer() as server, FakeAgent(server, "default", workers=2):
        ...  # enqueue tasks with the SDK; server.wait_for_status(task_id, "completed")
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hyperscout_clearml.fake_server import API_VERSION, FakeClearMLServer, client_config

__all__ = ["AgentApiError", "AgentRun", "FakeAgent"]

_ABORT_STATUSES = frozenset({"stopped", "failed", "closed", "published", "publishing", "queued", "created"})
_PYTHON_NAMES = ("python", "python3")


class AgentApiError(RuntimeError):
    """An error envelope (or no answer) from the server."""

    def __init__(self, endpoint: str, code: int, subcode: int, msg: str) -> None:
        super().__init__(f"{endpoint}: {code}/{subcode} {msg}")
        self.endpoint, self.code, self.subcode, self.msg = endpoint, code, subcode, msg


@dataclass
class AgentRun:
    """One task the agent ran (or tried to)."""

    task_id: str
    argv: list[str]
    cwd: str
    started: float
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    stdout_path: Path | None = None
    stderr_path: Path | None = None
    returncode: int | None = None
    killed: bool = False  # the agent killed it because a stop was requested
    reported: str | None = None  # status the agent set at the end ("completed", "failed", "stopped") or None
    kill_deadline: float | None = None
    error: str | None = None  # why it could not be started, if so
    done: bool = False  # exited (or failed to start) and reported

    def stderr_tail(self, lines: int = 20) -> list[str]:
        if self.stderr_path is None or not self.stderr_path.exists():
            return []
        text = self.stderr_path.read_text(encoding="utf-8", errors="replace")
        return [line for line in text.splitlines() if line.strip()][-lines:]


class _Api:
    """A minimal ClearML REST client (GET with a JSON body, Bearer token), independent of the SDK's session."""

    def __init__(self, url: str, access_key: str, secret_key: str, worker: str, timeout: float = 10.0) -> None:
        self.url, self.worker, self.timeout = url.rstrip("/"), worker, timeout
        self._basic = base64.b64encode(f"{access_key}:{secret_key}".encode()).decode()
        self._token: str | None = None

    def _send(self, path: str, body: Any, auth: str, endpoint: str, content_type: str = "application/json") -> Any:
        data = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
        req = urllib.request.Request(self.url + path, data=data, method="GET")
        req.add_header("Content-Type", content_type)
        req.add_header("Authorization", auth)
        req.add_header("X-ClearML-Worker", self.worker)
        req.add_header("X-ClearML-Client", "hyperscout-fake-agent-0.1")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                payload = json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as err:
            try:
                meta = json.loads(err.read() or b"{}").get("meta", {})
            except ValueError:
                meta = {}
            raise AgentApiError(endpoint, err.code, meta.get("result_subcode", 0), meta.get("result_msg", "")) from None
        except (OSError, ValueError) as err:
            raise AgentApiError(endpoint, 0, 0, f"no answer: {err}") from None
        return payload.get("data") or {}

    def login(self) -> None:
        self._token = self._send("/auth.login", {}, f"Basic {self._basic}", "auth.login")["token"]

    def call(self, endpoint: str, body: Any, *, json_lines: bool = False) -> Any:
        if self._token is None:
            self.login()
        path = f"/v{API_VERSION}/{endpoint}"
        if json_lines:
            payload: Any = "\n".join(json.dumps(item) for item in body).encode("utf-8")
            content_type = "application/json-lines"
        else:
            payload, content_type = body, "application/json"
        try:
            return self._send(path, payload, f"Bearer {self._token}", endpoint, content_type)
        except AgentApiError as err:
            if err.code != 401:
                raise
            self.login()  # token refused: log in once more, as the SDK does
            return self._send(path, payload, f"Bearer {self._token}", endpoint, content_type)


class FakeAgent:
    """FAKE clearml-agent: runs tasks popped from ``queue`` as local subprocesses, ``workers`` at a time."""

    def __init__(
        self,
        server: FakeClearMLServer | str,
        queue: str = "default",
        *,
        workers: int = 1,
        name: str = "fake-agent",
        access_key: str | None = None,
        secret_key: str | None = None,
        env: Mapping[str, str] | None = None,
        root: str | Path | None = None,
        python: str = sys.executable,
        kill_grace: float = 3.0,
        poll_interval: float = 0.1,
        stop_poll_interval: float = 0.25,
        keep_workdir: bool = False,
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be >= 1")
        if isinstance(server, FakeClearMLServer):
            self.url = server.url
            access_key, secret_key = access_key or server.access_key, secret_key or server.secret_key
            self._config_text = server.config_text()
        else:
            if not (access_key and secret_key):
                raise ValueError("access_key and secret_key are required with a server URL")
            self.url = server
            self._config_text = client_config(server, access_key, secret_key)
        self.queue, self.workers, self.name = queue, workers, name
        self.extra_env = dict(env or {})
        self.root = Path(root) if root is not None else Path.cwd()
        self.python, self.kill_grace = python, kill_grace
        self.poll_interval, self.stop_poll_interval = poll_interval, stop_poll_interval
        self.keep_workdir = keep_workdir
        self.api = _Api(self.url, str(access_key), str(secret_key), worker=name)
        self._keys = (str(access_key), str(secret_key))
        self.runs: dict[str, AgentRun] = {}
        self.errors: list[str] = []  # exceptions the loop survived (server down, ...), for test diagnostics
        self.max_busy = 0  # most tasks ever running at once (tests check the slot limit with it)
        self._running: dict[str, AgentRun] = {}
        self._lock = threading.Condition()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._queue_id: str | None = None
        self._last_stop_poll = 0.0
        self.workdir: Path | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeAgent:
        """Log in, resolve the queue, register as a worker and start polling in a daemon thread."""
        if self._thread is not None:
            return self
        self.api.login()
        self._queue_id = self._resolve_queue(self.queue)
        self.api.call("workers.register", {"worker": self.name, "queues": [self._queue_id], "timeout": 600})
        self.workdir = Path(tempfile.mkdtemp(prefix="fake-clearml-agent-"))
        self._stopping.clear()
        self._thread = threading.Thread(target=self._loop, name=f"fake-agent-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop polling, kill running tasks (marked stopped), unregister, remove the private directory."""
        if self._thread is None:
            return
        self._stopping.set()
        self._thread.join(timeout)
        self._thread = None
        for run in list(self._running.values()):
            self._kill(run, force=True)
            self._safe_call(
                "tasks.stopped",
                {
                    "task": run.task_id,
                    "force": True,
                    "status_reason": "agent stopped",
                    "status_message": "fake agent stopped",
                },
            )
            run.reported = "stopped"
            run.returncode = run.process.returncode if run.process else None
        with self._lock:
            for run in self._running.values():
                run.done = True
            self._running.clear()
            self._lock.notify_all()
        self._safe_call("workers.unregister", {"worker": self.name})
        if self.workdir is not None and not self.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> FakeAgent:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def busy(self) -> int:
        """Number of tasks running now."""
        with self._lock:
            return len(self._running)

    # ------------------------------------------------------------------ the loop

    def _resolve_queue(self, queue: str) -> str:
        try:
            return str(self.api.call("queues.get_by_id", {"queue": queue})["queue"]["id"])
        except AgentApiError:
            pass
        found = self.api.call("queues.get_all", {"name": f"^{re.escape(queue)}$", "only_fields": ["id"]}).get("queues")
        if not found:
            raise AgentApiError("queues.get_all", 400, 701, f"no queue named {queue!r}")
        return str(found[0]["id"])

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                launched = self._step()
            except Exception as err:  # keep the agent alive through server faults, like the real one
                self.errors.append(repr(err))
                launched = False
            if not launched:
                self._stopping.wait(self.poll_interval)

    def _step(self) -> bool:
        self._reap()
        now = time.monotonic()
        if self._running and now - self._last_stop_poll >= self.stop_poll_interval:
            self._last_stop_poll = now
            self._check_stops()
        for run in list(self._running.values()):
            if (
                run.kill_deadline is not None
                and now >= run.kill_deadline
                and run.process
                and run.process.poll() is None
            ):
                self._signal(run, signal.SIGKILL)
        if len(self._running) >= self.workers:
            return False
        entry = self.api.call("queues.get_next_task", {"queue": self._queue_id, "get_task_info": True}).get("entry")
        if not entry or not entry.get("task"):
            return False
        self._launch(str(entry["task"]))
        return True

    def _check_stops(self) -> None:
        ids = [tid for tid, run in self._running.items() if not run.killed]
        if not ids:
            return
        found = self.api.call("tasks.get_all", {"id": ids, "only_fields": ["status", "status_message"]})
        for task in found.get("tasks") or []:
            status, message = task.get("status"), (task.get("status_message") or "")
            if status in _ABORT_STATUSES or (status == "in_progress" and "stopping" in message.lower()):
                run = self._running.get(task["id"])
                if run is not None:
                    run.killed = True
                    self._kill(run)

    def _launch(self, task_id: str) -> None:
        run = AgentRun(task_id, [], "", time.monotonic())
        self.runs[task_id] = run
        assert self.workdir is not None
        try:
            task = self.api.call("tasks.get_by_id", {"task": task_id})["task"]
            run.argv, cwd = self._command(task)
            run.cwd = str(cwd)
            self.api.call(
                "tasks.started",
                {"task": task_id, "force": True, "status_reason": "", "status_message": "pulled by agent"},
            )
            logs = self.workdir / "logs"
            logs.mkdir(exist_ok=True)
            run.stdout_path, run.stderr_path = logs / f"{task_id}.out", logs / f"{task_id}.err"
            with open(run.stdout_path, "wb") as out, open(run.stderr_path, "wb") as err:
                run.process = subprocess.Popen(
                    run.argv,
                    cwd=cwd,
                    env=self._env(task_id),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    start_new_session=True,
                )
        except (AgentApiError, OSError, ValueError) as err:  # a popped task is never lost: it ends failed
            run.error = str(err)
            self._safe_call(
                "tasks.failed",
                {"task": task_id, "force": True, "status_reason": "fake agent error", "status_message": str(err)[:500]},
            )
            run.reported = "failed"
            with self._lock:
                run.done = True
                self._lock.notify_all()
            return
        with self._lock:
            self._running[task_id] = run
            self.max_busy = max(self.max_busy, len(self._running))

    def _command(self, task: Mapping[str, Any]) -> tuple[list[str], Path]:
        """argv and working directory from the task's ``script`` fields."""
        script = task.get("script") or {}
        entry = (script.get("entry_point") or "").strip()
        if not entry:
            raise ValueError("task has no script.entry_point")
        working_dir = script.get("working_dir") or "."
        repository = (script.get("repository") or "").strip()
        diff = script.get("diff") or ""
        assert self.workdir is not None
        if diff and not repository:  # a standalone script: ClearML keeps its text in script.diff
            cwd = (self.workdir / "tasks" / task["id"] / working_dir).resolve()
            cwd.mkdir(parents=True, exist_ok=True)
            (cwd / entry).parent.mkdir(parents=True, exist_ok=True)
            (cwd / entry).write_text(diff, encoding="utf-8")
        else:
            local = repository.removeprefix("file://")
            root = Path(local) if local and Path(local).is_dir() else self.root
            cwd = Path(working_dir) if Path(working_dir).is_absolute() else (root / working_dir)
            cwd = cwd.resolve()
            if not (cwd / entry).is_file():
                raise ValueError(f"script not found: {cwd / entry}")
        binary = (script.get("binary") or "python").strip()
        if Path(binary).name.startswith(_PYTHON_NAMES):
            argv = [self.python, "-u", entry]
        else:
            argv = [binary, entry]
        return argv, cwd

    def _env(self, task_id: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CLEARML_", "TRAINS_"))}
        assert self.workdir is not None
        home = self.workdir / "home"
        home.mkdir(exist_ok=True)
        (home / "clearml-cache").mkdir(exist_ok=True)
        conf = home / "clearml.conf"
        if not conf.exists():
            conf.write_text(self._config_text, encoding="utf-8")
        env.update(
            {
                "CLEARML_API_HOST": self.url,
                "CLEARML_WEB_HOST": self.url,
                "CLEARML_FILES_HOST": self.url,
                "CLEARML_API_ACCESS_KEY": self._keys[0],
                "CLEARML_API_SECRET_KEY": self._keys[1],
                "CLEARML_CONFIG_FILE": str(conf),
                "CLEARML_CACHE_DIR": str(home / "clearml-cache"),
                "HOME": str(home),
            }
        )
        env.update(self.extra_env)
        env.update(
            {
                "CLEARML_TASK_ID": task_id,
                "CLEARML_WORKER_ID": self.name,
                "CLEARML_LOG_TASK_TO_BACKEND": "0",
                "PYTHONUNBUFFERED": "1",
            }
        )
        return env

    def _reap(self) -> None:
        for task_id, run in list(self._running.items()):
            if run.process is None or run.process.poll() is None:
                continue
            run.returncode = run.process.returncode
            with self._lock:
                del self._running[task_id]
            self._send_console(run)
            self._report_exit(run)
            with self._lock:
                run.done = True
                self._lock.notify_all()

    def wait_finished(self, task_id: str, timeout: float = 60.0) -> AgentRun:
        """Block until the agent has run ``task_id`` to its end and reported it; return its record."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                run = self.runs.get(task_id)
                if run is not None and run.done:
                    return run
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"fake agent did not finish task {task_id} within {timeout} s")
                self._lock.wait(min(left, 0.5))

    def _report_exit(self, run: AgentRun) -> None:
        status = self._status(run.task_id)
        if run.killed:
            if status == "in_progress":  # "stopping": the agent confirms the abort
                self._safe_call("tasks.stopped", {"task": run.task_id, "force": True, "status_reason": "user abort"})
                run.reported = "stopped"
            return
        if status != "in_progress":
            return  # someone else decided (the trial marked itself, or it was stopped/reset meanwhile)
        if run.returncode == 0:
            self._safe_call(
                "tasks.completed", {"task": run.task_id, "force": True, "status_reason": "worker execution done"}
            )
            run.reported = "completed"
        else:
            tail = run.stderr_tail(1)
            self._safe_call(
                "tasks.failed",
                {
                    "task": run.task_id,
                    "force": True,
                    "status_reason": f"worker execution exit code {run.returncode}",
                    "status_message": (tail[-1] if tail else f"exit code {run.returncode}")[:500],
                },
            )
            run.reported = "failed"

    def _status(self, task_id: str) -> str | None:
        try:
            found = self.api.call("tasks.get_all", {"id": [task_id], "only_fields": ["status", "status_message"]})
        except AgentApiError as err:
            self.errors.append(str(err))
            return None
        tasks = found.get("tasks") or []
        return tasks[0].get("status") if tasks else None

    def _send_console(self, run: AgentRun) -> None:
        events = []
        now = int(time.time() * 1000)
        for path, level in ((run.stdout_path, "info"), (run.stderr_path, "error")):
            if path is None or not path.exists():
                continue
            text = path.read_text(encoding="utf-8", errors="replace")
            if text:
                events.append(
                    {
                        "type": "log",
                        "task": run.task_id,
                        "timestamp": now,
                        "level": level,
                        "worker": self.name,
                        "msg": text[-100_000:],
                    }
                )
        if events:
            self._safe_call("events.add_batch", events, json_lines=True)

    def _kill(self, run: AgentRun, *, force: bool = False) -> None:
        """SIGTERM the process group now; the loop sends SIGKILL after ``kill_grace`` (at once when ``force``)."""
        if run.process is None or run.process.poll() is not None:
            return
        self._signal(run, signal.SIGKILL if force or self.kill_grace <= 0 else signal.SIGTERM)
        run.kill_deadline = time.monotonic() + self.kill_grace
        if force:
            try:
                run.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass

    @staticmethod
    def _signal(run: AgentRun, sig: int) -> None:
        assert run.process is not None
        try:
            os.killpg(run.process.pid, sig)
        except ProcessLookupError:
            pass

    def _safe_call(self, endpoint: str, body: Any, *, json_lines: bool = False) -> Any:
        try:
            return self.api.call(endpoint, body, json_lines=json_lines)
        except AgentApiError as err:
            self.errors.append(str(err))
            return None
