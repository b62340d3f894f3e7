"""A FAKE ClearML API server for tests. It is NOT ClearML and must never be used as a real server.

``FakeClearMLServer`` speaks enough of the ClearML REST protocol (the one the real, unpatched ``clearml`` SDK
2.1.x sends) for the SDK to clone, edit, enqueue, dequeue, stop and poll tasks, and for a trial process to
``Task.init`` in remote mode and report scalars. It exists because a real clearml-server needs MongoDB,
Elasticsearch and Redis; this fake lets the backend's tests drive the real SDK code paths instead of mocks.

What it is:

* stdlib ``ThreadingHTTPServer`` on ``127.0.0.1:<ephemeral port>``; all state in memory, guarded by one lock;
* ClearML envelopes (``meta`` + ``data``), HTTP status = ``result_code``, the server's error subcodes
  (400/101 invalid task id, 400/110 invalid task status, 400/701 invalid queue id, 401/22 bad credentials...);
* GET requests with a JSON body (the SDK's default), ``events.add_batch`` as json-lines;
* a JWT login token the SDK decodes (``api_version`` 2.23, ``feature_set`` basic);
* the task state machine of clearml-server, ``tasks.stop`` asking a worker to stop ("stopping"),
  queues with entries, workers that watch queues, scalar events with ``last_metrics`` (md5 keys);
* request counts per endpoint, worker header and client header, for benchmarks comparing request counts;
* fault injection: the next N calls of an endpoint fail with a status code or hang, credentials rejected,
  queues that no worker listens to.

What it is not: a conformance oracle. It models *our reading* of clearml-server (pagination, permissions,
down-sampling, model/artifact storage and many endpoints are absent or simplified); an unknown endpoint
answers 400 "fake server: unsupported endpoint" so a gap fails loudly instead of hanging the SDK. File
uploads to the files host are refused with 501 (not supported).

Usage::

    with FakeClearMLServer() as server:
        env = server.env(tmp_path)            # put into os.environ (before importing clearml) or a subprocess
        server.create_queue("default")
        base = server.create_task("base", project="demo", script_text=..., hyperparams={"Args": {"lr": 0.1}})
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import re
import secrets
import socket
import sys
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

__all__ = ["ApiError", "Call", "FakeClearMLServer", "client_config", "metric_key"]

API_VERSION = "2.23"
SERVER_VERSION = "2.3.0"
COMPANY = "fake-company"
USER = "fake-user"

# clearml-server's task state machine (apiserver/bll/task/utils.py, newer releases add queued -> stopped)
_TRANSITIONS: dict[str, set[str]] = {
    "created": {"queued", "in_progress"},
    "queued": {"created", "in_progress", "stopped"},
    "in_progress": {"stopped", "failed", "created", "completed"},
    "stopped": {"closed", "created", "failed", "queued", "in_progress", "published", "publishing", "completed"},
    "closed": {"created", "failed", "published", "publishing", "stopped"},
    "failed": {"created", "stopped", "published", "queued"},
    "publishing": {"published"},
    "published": set(),
    "completed": {"published", "in_progress", "created"},
}
_EDITABLE_TASK_FIELDS = (
    "name",
    "comment",
    "tags",
    "system_tags",
    "type",
    "parent",
    "project",
    "script",
    "execution",
    "hyperparams",
    "configuration",
    "container",
    "models",
    "runtime",
)
_SCALAR = "training_stats_scalar"
# services of the ClearML API; any other path is taken for the files host
_SERVICES = frozenset(
    {
        "auth",
        "debug",
        "events",
        "login",
        "models",
        "organization",
        "pipelines",
        "projects",
        "queues",
        "reports",
        "server",
        "tasks",
        "users",
        "workers",
    }
)


def _now() -> str:
    """ISO-8601 UTC timestamp, the format the server returns for date-time fields."""
    return datetime.now(timezone.utc).isoformat()


def _new_id() -> str:
    return uuid.uuid4().hex


def metric_key(name: str) -> str:
    """The md5 hex key clearml-server uses for a metric or variant name inside ``last_metrics``."""
    return hashlib.md5(name.encode("utf-8")).hexdigest()


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


class ApiError(Exception):
    """An error answer: ``code`` is the HTTP status and ``result_code``, ``subcode`` the server's subcode."""

    def __init__(self, code: int, subcode: int, msg: str, data: Mapping[str, Any] | None = None) -> None:
        super().__init__(msg)
        self.code, self.subcode, self.msg, self.data = code, subcode, msg, dict(data or {})


def _invalid_task(task_id: Any) -> ApiError:
    return ApiError(400, 101, f"Invalid task id: id={task_id}")


def _invalid_status(task: Mapping[str, Any], new_status: str, reason: str = "Invalid status change") -> ApiError:
    return ApiError(400, 110, f"{reason}: current_status={task['status']}, new_status={new_status}")


@dataclass(frozen=True)
class Call:
    """One request as the fake saw it (for request counting and assertions)."""

    endpoint: str  # "tasks.get_all", or "files.upload" / "files.download" for the files host
    version: str | None
    worker: str | None  # X-ClearML-Worker / X-Trains-Worker header
    client: str | None  # X-ClearML-Client / X-Trains-Client header
    status: int
    body: Any = field(repr=False, compare=False)
    response: Any = field(default=None, repr=False, compare=False)  # the ``data`` part of the answer
    at: float = field(default_factory=time.monotonic, compare=False)


@dataclass
class _Fault:
    times: int
    status: int = 500
    subcode: int = 0
    message: str = "fake server: injected failure"
    hang: float = 0.0
    worker: str | None = None  # only requests whose worker header contains this


class _Context:
    """What an endpoint handler may need to know about the request beyond its body."""

    def __init__(self, worker: str | None, client: str | None, auth: str | None) -> None:
        self.worker, self.client, self.auth = worker, client, auth


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], fake: FakeClearMLServer) -> None:
        self.fake = fake
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away mid-request (a killed process) is not an error of the fake."""
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)

    def close_open_connections(self) -> None:
        """Break idle keep-alive connections so their handler threads end with the server."""
        with self.sockets_lock:
            sockets = list(self.open_sockets)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's requests session expects from a real server
    server_version = "FakeClearML/0.1"
    timeout = 120  # an idle keep-alive connection is dropped after this

    def log_message(self, format: str, *args: Any) -> None:
        """Silence per-request logging; the fake's ``calls`` list is the log."""

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        fake: FakeClearMLServer = self.server.fake  # type: ignore[attr-defined]
        raw = self._read_body()
        status, payload, content_type = fake._dispatch(self.command, self.path, dict(self.headers.items()), raw)
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except OSError:
            self.close_connection = True  # the client gave up (e.g. after an injected hang)

    do_GET = do_POST = do_PUT = do_DELETE = _handle


class FakeClearMLServer:
    """In-memory FAKE of the ClearML API server (and a refusing files host), for tests only.

    One instance per test process is the normal use: the SDK pins host and token per process on first use,
    so call :meth:`reset` between tests instead of starting a new fake.
    """

    def __init__(
        self,
        *,
        access_key: str = "fake-access-key",
        secret_key: str = "fake-secret-key",
        host: str = "127.0.0.1",
        port: int = 0,
        api_version: str = API_VERSION,
        worker_timeout: float = 600.0,
    ) -> None:
        self.access_key, self.secret_key = access_key, secret_key
        self.api_version = api_version
        self.worker_timeout = worker_timeout  # a worker counts as watching its queues this long after it was seen
        self._host, self._port = host, port
        self._signing_key = secrets.token_bytes(32)
        self._cond = threading.Condition(threading.RLock())
        self._release = threading.Event()  # set on stop: ends injected hangs at once
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._rejecting_credentials = False
        self._clear()

    # ------------------------------------------------------------------ lifecycle

    def _clear(self) -> None:
        self.projects: dict[str, dict[str, Any]] = {}
        self.tasks: dict[str, dict[str, Any]] = {}
        self.queues: dict[str, dict[str, Any]] = {}
        self.workers: dict[str, dict[str, Any]] = {}
        self.events: dict[str, list[dict[str, Any]]] = {}
        self.calls: list[Call] = []
        self.unsupported: list[str] = []  # endpoints the SDK asked for that the fake does not implement
        self._faults: dict[str, list[_Fault]] = {}
        self._unwatched_queues: set[str] = set()
        self._always_watched_queues: set[str] = set()
        self._scrolls: dict[str, int] = {}

    def start(self) -> FakeClearMLServer:
        """Bind to an ephemeral loopback port and serve from a daemon thread."""
        if self._httpd is not None:
            return self
        self._release.clear()
        self._httpd = _HTTPServer((self._host, self._port), self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-clearml-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, end hangs, break keep-alive connections (clients then see a connection error)."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._release.set()
        httpd.shutdown()
        httpd.close_open_connections()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._cond:
            self._cond.notify_all()

    def __enter__(self) -> FakeClearMLServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget all state, calls and faults (tokens already issued stay valid)."""
        with self._cond:
            self._rejecting_credentials = False
            self._clear()
            self._cond.notify_all()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("FakeClearMLServer is not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """Base URL, used as API, web and files host alike."""
        return f"http://{self._host}:{self.port}"

    #: tests may assert on request counts (a live server adapter has none)
    counts_requests = True

    def scoped(self, name: str) -> str:
        """The queue or project name a test uses for ``name``: itself here; an adapter for a real server makes it
        unique per test, so the same tests run there (``clearml_live``)."""
        return name

    def env(self, tmpdir: str | Path, *, retries: int = 2, extra_conf: str = "") -> dict[str, str]:
        """Environment a client process needs to talk to this fake; writes ``<tmpdir>/clearml.conf``.

        The config keeps retries small (an unreachable server fails in about a second, not hours) and turns off
        the SDK's reporting subprocess (about 11 s saved per ``Task.init`` process exit). HOME is pointed at
        ``tmpdir`` so a developer's ``~/clearml.conf`` stays out. Callers should also *remove*
        ``CLEARML_TASK_ID``, ``CLEARML_OFFLINE_MODE`` and ``CLEARML_AUTH_TOKEN`` from a controller's environment.
        """
        tmp = Path(tmpdir)
        tmp.mkdir(parents=True, exist_ok=True)
        cache = tmp / "clearml-cache"
        cache.mkdir(exist_ok=True)
        conf = tmp / "clearml.conf"
        conf.write_text(self.config_text(retries=retries) + extra_conf, encoding="utf-8")
        return {
            "CLEARML_API_HOST": self.url,
            "CLEARML_WEB_HOST": self.url,
            "CLEARML_FILES_HOST": self.url,
            "CLEARML_API_ACCESS_KEY": self.access_key,
            "CLEARML_API_SECRET_KEY": self.secret_key,
            "CLEARML_CONFIG_FILE": str(conf),
            "CLEARML_CACHE_DIR": str(cache),
            "HOME": str(tmp),
        }

    def config_text(self, *, retries: int = 2) -> str:
        """A clearml.conf for this fake (hosts and keys are also in :meth:`env`)."""
        return client_config(self.url, self.access_key, self.secret_key, retries=retries)

    # ------------------------------------------------------------------ seeding helpers (tests call these)

    def create_project(self, name: str) -> str:
        """Create a project (or return the id of the one with that name)."""
        with self._cond:
            return self._project_by_name(name, create=True)

    def create_queue(self, name: str, *, watched: bool | None = None, default: bool = False) -> str:
        """Create a queue; ``watched=True/False`` forces what ``tasks.enqueue`` answers for ``queue_watched``."""
        with self._cond:
            qid = next((q["id"] for q in self.queues.values() if q["name"] == name), None) or self._new_queue(name)
            if default and "default" not in self.queues[qid]["system_tags"]:
                self.queues[qid]["system_tags"].append("default")
            if watched is not None:
                self.set_queue_watched(name, watched)
            return qid

    def create_task(
        self,
        name: str,
        *,
        project: str = "hyperscout-tests",
        task_type: str = "training",
        script_text: str | None = None,
        entry_point: str = "train.py",
        working_dir: str = ".",
        repository: str = "",
        binary: str = "python3",
        hyperparams: Mapping[str, Mapping[str, Any]] | None = None,
        configuration: Mapping[str, str] | None = None,
        tags: Iterable[str] = (),
        system_tags: Iterable[str] = (),
        status: str = "created",
        parent: str | None = None,
    ) -> str:
        """Seed a task, e.g. a base (template) task, without going through ``Task.init``.

        ``hyperparams`` is ``{section: {name: value}}`` (values stored as strings, like the SDK stores them).
        ``script_text`` is stored in ``script.diff`` with no repository, which is how ClearML keeps a standalone
        script; the fake agent writes it to ``entry_point`` in a directory of its own. Without ``script_text``
        the agent runs ``working_dir/entry_point`` (relative to ``repository`` when that is a local directory).
        """
        params: dict[str, dict[str, dict[str, Any]]] = {}
        for section, values in (hyperparams or {}).items():
            params[section] = {
                key: {
                    "section": section,
                    "name": key,
                    "value": _param_str(value),
                    "type": _param_type(value),
                    "description": "",
                }
                for key, value in values.items()
            }
        with self._cond:
            pid = self._project_ref(project)
            task = self._blank_task(name, pid, task_type)
            task.update(
                status=status,
                tags=list(tags),
                system_tags=list(system_tags),
                parent=parent,
                hyperparams=params,
                configuration={
                    k: {"name": k, "value": v, "type": "", "description": ""} for k, v in (configuration or {}).items()
                },
            )
            task["script"].update(
                repository=repository,
                entry_point=entry_point,
                working_dir=working_dir,
                binary=binary,
                diff=script_text or "",
            )
            self.tasks[task["id"]] = task
            self._cond.notify_all()
            return str(task["id"])

    def register_worker(self, worker: str, queues: Iterable[str]) -> None:
        """Pretend an agent ``worker`` listens to ``queues`` (names or ids) without running one."""
        with self._cond:
            self._register_worker(worker, list(queues), timeout=None)

    def set_queue_watched(self, queue: str, watched: bool | None) -> None:
        """Force a queue to look (un)watched regardless of workers (``None`` = derive from workers again)."""
        with self._cond:
            qid = self._queue_ref(queue)
            self._unwatched_queues.discard(qid)
            self._always_watched_queues.discard(qid)
            if watched is True:
                self._always_watched_queues.add(qid)
            elif watched is False:
                self._unwatched_queues.add(qid)

    # ------------------------------------------------------------------ fault injection

    def fail_next(
        self,
        endpoint: str,
        times: int = 1,
        *,
        status: int = 500,
        subcode: int = 0,
        message: str | None = None,
        worker: str | None = None,
    ) -> None:
        """The next ``times`` calls of ``endpoint`` ("*" = any) answer ``status`` with an error envelope.

        ``worker``: only calls whose worker header contains it (fail one client, leave the agent alone).
        Beware: the SDK retries any status above 500 (and 502/503/429 through urllib3) forever or for a long
        time, and a 401 makes it log in again; 500 and 4xx come back to the caller.
        """
        with self._cond:
            msg = message or f"fake server: injected failure of {endpoint}"
            self._faults.setdefault(endpoint, []).append(_Fault(times, status, subcode, msg, worker=worker))

    def hang_next(self, endpoint: str, times: int = 1, *, seconds: float = 30.0, worker: str | None = None) -> None:
        """The next ``times`` calls of ``endpoint`` ("*" = any) wait ``seconds`` before being answered normally.

        Use it to test a caller's own timeout; :meth:`release_hangs` or :meth:`stop` ends the waits early.
        """
        with self._cond:
            self._faults.setdefault(endpoint, []).append(_Fault(times, hang=seconds, worker=worker))

    def release_hangs(self) -> None:
        """End every injected hang now (later hangs wait again)."""
        self._release.set()
        self._release = threading.Event()

    def clear_faults(self) -> None:
        with self._cond:
            self._faults.clear()
            self._rejecting_credentials = False

    def reject_credentials(self, reject: bool = True) -> None:
        """Make ``auth.login`` answer 401/22 (invalid credentials).

        Tokens already issued stay valid: a process whose SDK session already logged in would otherwise retry
        forever (the SDK swallows the ``LoginError`` of its token refresh and loops), so test bad credentials
        with a fresh process.
        """
        with self._cond:
            self._rejecting_credentials = reject

    # ------------------------------------------------------------------ reading state (tests call these)

    def task(self, task_id: str) -> dict[str, Any]:
        """A deep copy of the stored task as the API shows it (raises KeyError when unknown)."""
        with self._cond:
            return self._public_task(self.tasks[task_id])

    def task_status(self, task_id: str) -> str:
        with self._cond:
            return str(self.tasks[task_id]["status"])

    def task_ids(self, *, parent: str | None = None, name: str | None = None) -> list[str]:
        """Ids of stored tasks in creation order, optionally filtered by parent id or exact name."""
        with self._cond:
            return [
                t["id"]
                for t in self.tasks.values()
                if (parent is None or t.get("parent") == parent) and (name is None or t["name"] == name)
            ]

    def hyperparams(self, task_id: str) -> dict[str, dict[str, str]]:
        """``{section: {name: value}}`` of a task, values as stored (strings)."""
        with self._cond:
            params = self.tasks[task_id].get("hyperparams") or {}
            return {s: {n: p.get("value", "") for n, p in v.items()} for s, v in params.items()}

    def tags(self, task_id: str) -> list[str]:
        with self._cond:
            return list(self.tasks[task_id].get("tags") or [])

    def system_tags(self, task_id: str) -> list[str]:
        with self._cond:
            return list(self.tasks[task_id].get("system_tags") or [])

    def queue_entries(self, queue: str) -> list[str]:
        """Task ids waiting in a queue (name or id), head first."""
        with self._cond:
            return [e["task"] for e in self.queues[self._queue_ref(queue)]["entries"]]

    def scalars(self, task_id: str) -> dict[str, dict[str, list[tuple[int, float]]]]:
        """``{metric: {variant: [(iteration, value), ...]}}`` in arrival order."""
        out: dict[str, dict[str, list[tuple[int, float]]]] = {}
        with self._cond:
            for ev in self.events.get(task_id, []):
                if ev.get("type") == _SCALAR:
                    out.setdefault(ev["metric"], {}).setdefault(ev["variant"], []).append((ev["iter"], ev["value"]))
        return out

    def task_events(self, task_id: str, event_type: str | None = None) -> list[dict[str, Any]]:
        with self._cond:
            return [copy.deepcopy(e) for e in self.events.get(task_id, []) if event_type in (None, e.get("type"))]

    def request_count(
        self, endpoint: str | None = None, *, worker: str | None = None, client: str | None = None
    ) -> int:
        """How many requests matched: ``endpoint`` exact (or a prefix ending in '.', e.g. "tasks."),
        ``worker``/``client`` header substrings."""
        with self._cond:
            return sum(1 for c in self.calls if _call_matches(c, endpoint, worker, client))

    def request_counts(self, by: str = "endpoint", *, worker: str | None = None, client: str | None = None) -> Counter:
        """Counter of requests keyed by ``endpoint``, ``worker`` or ``client`` (optionally filtered)."""
        with self._cond:
            return Counter(getattr(c, by) for c in self.calls if _call_matches(c, None, worker, client))

    def calls_of(self, endpoint: str) -> list[Call]:
        with self._cond:
            return [c for c in self.calls if c.endpoint == endpoint]

    def reset_counts(self) -> None:
        with self._cond:
            self.calls.clear()

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 30.0) -> Any:
        """Block until ``predicate()`` is truthy (re-checked on every state change); return it or raise TimeoutError.

        The predicate runs under the fake's lock, so it may read ``self.tasks`` etc. directly.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = predicate()
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"condition not met within {timeout} s")
                self._cond.wait(min(left, 0.5))

    def wait_for_status(self, task_id: str, *statuses: str, timeout: float = 30.0) -> str:
        """Block until the task's status is one of ``statuses``; return it."""
        try:
            return str(
                self.wait_for(
                    lambda: self.tasks[task_id]["status"] in statuses and self.tasks[task_id]["status"], timeout
                )
            )
        except TimeoutError:
            t = self.tasks.get(task_id, {})
            raise TimeoutError(
                f"task {task_id} still {t.get('status')!r} ({t.get('status_message')!r}) after {timeout} s,"
                f" wanted {statuses}"
            ) from None

    # ------------------------------------------------------------------ HTTP dispatch

    def _dispatch(self, method: str, path: str, headers: Mapping[str, str], raw: bytes) -> tuple[int, bytes, str]:
        lower = {k.lower(): v for k, v in headers.items()}
        worker = lower.get("x-clearml-worker") or lower.get("x-trains-worker")
        client = lower.get("x-clearml-client") or lower.get("x-trains-client")
        route = path.split("?", 1)[0]
        m = re.fullmatch(r"/(?:api/)?(?:v(\d+\.\d+)/)?([a-z_]+)\.([a-z_0-9]+)", route)
        if not m or m.group(2) not in _SERVICES:
            endpoint = "files.download" if method in ("GET", "HEAD") else "files.upload"
            self._record(Call(endpoint, None, worker, client, 501, None))
            return 501, b"fake server: the files host is not supported (no uploads or downloads)", "text/plain"
        version, service, action = m.group(1), m.group(2), m.group(3)
        endpoint = f"{service}.{action}"
        body: Any = {}
        status, data, subcode, msg = 200, {}, 0, "OK"
        try:
            body = self._parse_body(endpoint, raw, lower.get("content-type", ""))
            fault = self._take_fault(endpoint, worker)
            if fault is not None and fault.hang:
                self._release.wait(fault.hang)
            elif fault is not None:
                raise ApiError(fault.status, fault.subcode, fault.message)
            ctx = _Context(worker, client, lower.get("authorization"))
            data = self._call(endpoint, body, ctx, path)
        except ApiError as err:
            status, subcode, msg, data = err.code, err.subcode, err.msg, err.data
        except Exception as err:  # a bug in the fake: answer 500 (not >500, which the SDK retries forever)
            status, subcode, msg, data = 500, 1, f"fake server internal error: {err!r}", {}
            traceback.print_exc()
        self._record(Call(endpoint, version, worker, client, status, body, data))
        envelope = {
            "meta": {
                "id": _new_id(),
                "trx": _new_id(),
                "endpoint": {
                    "name": endpoint,
                    "requested_version": version or "1.0",
                    "actual_version": version or "1.0",
                },
                "result_code": status,
                "result_subcode": subcode,
                "result_msg": msg,
                "error_stack": None,
            },
            "data": data,
        }
        return status, json.dumps(envelope).encode("utf-8"), "application/json"

    @staticmethod
    def _parse_body(endpoint: str, raw: bytes, content_type: str) -> Any:
        text = raw.decode("utf-8") if raw else ""
        if not text.strip():
            return {}
        if endpoint == "events.add_batch" or "json-lines" in content_type:
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        try:
            return json.loads(text)
        except ValueError as err:
            raise ApiError(400, 12, f"validation error: malformed JSON body ({err})") from None

    def _take_fault(self, endpoint: str, worker: str | None = None) -> _Fault | None:
        with self._cond:
            for key in (endpoint, "*"):
                for i, fault in enumerate(self._faults.get(key) or []):
                    if fault.worker is not None and fault.worker not in (worker or ""):
                        continue
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults[key].pop(i)
                    return fault
        return None

    def _record(self, call: Call) -> None:
        with self._cond:
            self.calls.append(call)
            self._cond.notify_all()

    def _call(self, endpoint: str, body: Any, ctx: _Context, path: str) -> Any:
        if endpoint == "auth.login":
            return self._login(ctx, path)
        self._check_token(ctx.auth)
        handler = getattr(self, "_api_" + endpoint.replace(".", "__"), None)
        if handler is None:
            with self._cond:
                self.unsupported.append(endpoint)
            raise ApiError(400, 1, f"fake server: unsupported endpoint {endpoint}")
        if not isinstance(body, (dict, list)):
            raise ApiError(400, 12, "validation error: body must be a JSON object")
        with self._cond:
            result = handler(body, ctx)
            self._cond.notify_all()
            return result

    # ------------------------------------------------------------------ auth

    def _login(self, ctx: _Context, path: str) -> dict[str, Any]:
        auth = ctx.auth or ""
        if not auth:
            raise ApiError(401, 20, "Unauthorized (missing credentials)")
        if auth.startswith("Bearer "):
            self._check_token(auth)  # token refresh with a still-valid token
        elif auth.startswith("Basic "):
            try:
                key, _, secret = base64.b64decode(auth[6:]).decode("utf-8").partition(":")
            except ValueError:
                raise ApiError(401, 21, "Unauthorized (malformed credentials)") from None
            with self._cond:
                rejecting = self._rejecting_credentials
            if rejecting or key != self.access_key or not hmac.compare_digest(secret, self.secret_key):
                raise ApiError(401, 22, "Unauthorized (invalid credentials)")
        else:
            raise ApiError(401, 10, "Unauthorized (bad authentication header type)")
        expiration = 30 * 24 * 3600
        qs = path.partition("?")[2]
        for part in qs.split("&"):
            name, _, value = part.partition("=")
            if name == "expiration_sec" and value.isdigit():
                expiration = int(value)
        return {"token": self._make_token(expiration)}

    def _make_token(self, expiration: int) -> str:
        now = int(time.time())
        payload = {
            "identity": {
                "company": COMPANY,
                "company_name": "fake",
                "user": USER,
                "user_name": "Fake User",
                "role": "user",
            },
            "api_version": self.api_version,
            "server_version": SERVER_VERSION,
            "server_build": "fake",
            "feature_set": "basic",
            "iat": now,
            "exp": now + expiration,
        }
        head = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        body = _b64url(json.dumps(payload).encode())
        sig = hmac.new(self._signing_key, f"{head}.{body}".encode(), hashlib.sha256).digest()
        return f"{head}.{body}.{_b64url(sig)}"

    def _check_token(self, auth: str | None) -> None:
        if not auth:
            raise ApiError(401, 20, "Unauthorized (missing credentials)")
        if not auth.startswith("Bearer "):
            raise ApiError(401, 10, "Unauthorized (bad authentication header type)")
        parts = auth[7:].strip().split(".")
        if len(parts) != 3:
            raise ApiError(401, 30, "Invalid token")
        expected = _b64url(hmac.new(self._signing_key, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(expected, parts[2]):
            raise ApiError(401, 30, "Invalid token")

    # ------------------------------------------------------------------ internal helpers (lock held)

    def _project_by_name(self, name: str, *, create: bool) -> str:
        for p in self.projects.values():
            if p["name"] == name:
                return str(p["id"])
        if not create:
            raise ApiError(400, 403, f"Project not found: name={name}")
        pid = _new_id()
        now = _now()
        self.projects[pid] = {
            "id": pid,
            "name": name,
            "basename": name.rsplit("/", 1)[-1],
            "description": "",
            "user": USER,
            "company": COMPANY,
            "created": now,
            "last_update": now,
            "tags": [],
            "system_tags": [],
            "default_output_destination": None,
        }
        return pid

    def _project_ref(self, project: str | None) -> str | None:
        """A project given by id or name (created when named and missing)."""
        if not project:
            return None
        if project in self.projects:
            return project
        return self._project_by_name(project, create=True)

    def _new_queue(self, name: str, tags: Iterable[str] = (), system_tags: Iterable[str] = ()) -> str:
        qid = _new_id()
        now = _now()
        self.queues[qid] = {
            "id": qid,
            "name": name,
            "user": USER,
            "company": COMPANY,
            "created": now,
            "last_update": now,
            "tags": list(tags),
            "system_tags": list(system_tags),
            "entries": [],
            "metadata": {},
        }
        return qid

    def _queue_ref(self, queue: str) -> str:
        """A queue given by id or name (KeyError when neither)."""
        if queue in self.queues:
            return queue
        for q in self.queues.values():
            if q["name"] == queue:
                return str(q["id"])
        raise KeyError(f"no queue {queue!r} in the fake server")

    def _queue(self, qid: Any) -> dict[str, Any]:
        queue = self.queues.get(qid) if isinstance(qid, str) else None
        if queue is None:
            raise ApiError(400, 701, f"Invalid queue id: id={qid}")
        return queue

    def _blank_task(self, name: str, project: str | None, task_type: str) -> dict[str, Any]:
        now = _now()
        return {
            "id": _new_id(),
            "name": name,
            "type": task_type,
            "status": "created",
            "status_message": "",
            "status_reason": "",
            "status_changed": now,
            "comment": "",
            "project": project,
            "user": USER,
            "company": COMPANY,
            "created": now,
            "started": None,
            "completed": None,
            "last_update": now,
            "last_change": now,
            "parent": None,
            "tags": [],
            "system_tags": [],
            "script": {
                "repository": "",
                "branch": "",
                "version_num": "",
                "tag": "",
                "entry_point": "",
                "working_dir": ".",
                "binary": "python3",
                "requirements": {},
                "diff": "",
            },
            "execution": {
                "queue": None,
                "parameters": {},
                "artifacts": [],
                "docker_cmd": None,
                "model_labels": {},
                "framework": None,
            },
            "hyperparams": {},
            "configuration": {},
            "runtime": {},
            "models": {"input": [], "output": []},
            "container": {},
            "output": {"destination": None},
            "last_metrics": {},
            "last_iteration": 0,
            "last_worker": None,
            "last_worker_report": None,
            "active_duration": None,
        }

    def _task(self, task_id: Any) -> dict[str, Any]:
        task = self.tasks.get(task_id) if isinstance(task_id, str) else None
        if task is None:
            raise _invalid_task(task_id)
        return task

    def _change_status(
        self,
        task: dict[str, Any],
        new_status: str,
        body: Mapping[str, Any],
        *,
        force: bool = False,
        allow_same: bool = True,
        message: str | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """clearml-server's ChangeStatusRequest: validate the transition, set status fields, report them."""
        current = task["status"]
        if not force:
            if new_status != current and new_status not in _TRANSITIONS.get(current, set()):
                raise _invalid_status(task, new_status)
            if new_status == current and not allow_same:
                raise _invalid_status(task, new_status, "Task already in requested status")
        now = _now()
        fields = {
            "status": new_status,
            "status_reason": body.get("status_reason") or "",
            "status_message": message if message is not None else (body.get("status_message") or ""),
            "status_changed": now,
            "last_update": now,
        }
        task.update(fields)
        for key, value in extra.items():
            task[key] = value
        if new_status == "queued" and "development" in task["system_tags"]:
            task["system_tags"].remove("development")
        return {"updated": 1, "fields": fields}

    def _remove_from_queues(self, task_id: str) -> bool:
        removed = False
        for queue in self.queues.values():
            before = len(queue["entries"])
            queue["entries"] = [e for e in queue["entries"] if e["task"] != task_id]
            removed |= len(queue["entries"]) != before
        return removed

    def _dequeue(self, task: dict[str, Any], body: Mapping[str, Any]) -> dict[str, Any]:
        if task["status"] != "queued":
            raise ApiError(400, 101, f"Invalid task id: status={task['status']}, expected=queued, id={task['id']}")
        self._remove_from_queues(task["id"])
        previous = task.pop("_enqueue_status", None)
        new_status = previous if previous in ("created", "stopped", "failed") else "created"
        res = self._change_status(task, new_status, body, force=True)
        task["execution"]["queue"] = None
        res["fields"]["execution.queue"] = None
        return res

    def _register_worker(self, worker: str, queues: list[Any], timeout: float | None) -> None:
        qids = []
        for q in queues:
            try:
                qids.append(self._queue_ref(q))
            except KeyError:
                raise ApiError(400, 701, f"Invalid queue id: id={q}") from None
        now = _now()
        entry = self.workers.setdefault(worker, {"id": worker, "register_time": now, "queues": []})
        entry.update(queues=qids, last_activity_time=now, _seen=time.monotonic(), _timeout=timeout)

    def _watched(self, qid: str) -> bool:
        if qid in self._unwatched_queues:
            return False
        if qid in self._always_watched_queues:
            return True
        now = time.monotonic()
        for w in self.workers.values():
            timeout = w.get("_timeout") or self.worker_timeout
            if qid in w["queues"] and now - w["_seen"] < timeout:
                return True
        return False

    def _touch_worker(self, worker: str | None, queue: str | None = None) -> None:
        """A worker that polls a queue watches it, like an agent that never registered explicitly."""
        if not worker:
            return
        entry = self.workers.get(worker)
        if entry is None and queue is None:
            return
        if entry is None:
            self._register_worker(worker, [queue], timeout=None)
            return
        entry["_seen"] = time.monotonic()
        entry["last_activity_time"] = _now()
        if queue is not None and queue not in entry["queues"]:
            entry["queues"].append(queue)

    def _public_task(self, task: Mapping[str, Any]) -> dict[str, Any]:
        return {k: copy.deepcopy(v) for k, v in task.items() if not k.startswith("_")}

    def _public_queue(self, queue: Mapping[str, Any]) -> dict[str, Any]:
        out = {k: copy.deepcopy(v) for k, v in queue.items() if not k.startswith("_")}
        return out

    # ------------------------------------------------------------------ events

    def _add_event(self, event: Mapping[str, Any], ctx: _Context) -> str | None:
        """Store one event; return an error text when it is rejected."""
        task_id = event.get("task")
        task = self.tasks.get(task_id) if isinstance(task_id, str) else None
        if task is None:
            return f"invalid task id {task_id}"
        ev = dict(event)
        ev.setdefault("timestamp", int(time.time() * 1000))
        ev.setdefault("type", _SCALAR)
        ev.setdefault("iter", 0)
        ev["iter"] = int(ev.get("iter") or 0)
        if ev["type"] == _SCALAR:
            try:
                ev["value"] = float(ev["value"])
            except (KeyError, TypeError, ValueError):
                return "scalar event without a numeric value"
            ev["metric"] = str(ev.get("metric") or "")
            ev["variant"] = str(ev.get("variant") or "")
            self._update_last_metrics(task, ev)
        self.events.setdefault(task_id, []).append(ev)
        task["last_iteration"] = max(int(task.get("last_iteration") or 0), ev["iter"])
        task["last_update"] = _now()
        if ctx.worker and task["status"] == "in_progress":
            task["last_worker"] = ctx.worker
        return None

    @staticmethod
    def _update_last_metrics(task: dict[str, Any], ev: Mapping[str, Any]) -> None:
        variants = task["last_metrics"].setdefault(metric_key(ev["metric"]), {})
        entry = variants.get(metric_key(ev["variant"]))
        value, it = ev["value"], ev["iter"]
        last_iters = task.setdefault("_last_metric_iter", {})
        if entry is None:
            variants[metric_key(ev["variant"])] = {
                "metric": ev["metric"],
                "variant": ev["variant"],
                "value": value,
                "min_value": value,
                "min_value_iteration": it,
                "max_value": value,
                "max_value_iteration": it,
                "first_value": value,
                "first_value_iteration": it,
                "count": 1,
                "mean_value": value,
                "x_axis_label": None,
            }
            last_iters[(ev["metric"], ev["variant"])] = it
            return
        count = entry["count"] + 1
        entry["mean_value"] = entry["mean_value"] + (value - entry["mean_value"]) / count
        entry["count"] = count
        if value < entry["min_value"]:
            entry["min_value"], entry["min_value_iteration"] = value, it
        if value > entry["max_value"]:
            entry["max_value"], entry["max_value_iteration"] = value, it
        if it >= last_iters.get((ev["metric"], ev["variant"]), it):  # the value at the latest iteration is "last"
            entry["value"] = value
            last_iters[(ev["metric"], ev["variant"])] = it

    # ------------------------------------------------------------------ endpoints: projects

    def _api_projects__create(self, body: dict, ctx: _Context) -> dict:
        name = body.get("name")
        if not name:
            raise ApiError(400, 11, "Missing required fields: name")
        if any(p["name"] == name for p in self.projects.values()):
            raise ApiError(400, 801, f"Value combination already exists (unique field): name={name}")
        pid = self._project_by_name(name, create=True)
        project = self.projects[pid]
        project.update(
            description=body.get("description") or "",
            tags=list(body.get("tags") or []),
            system_tags=list(body.get("system_tags") or []),
            default_output_destination=body.get("default_output_destination"),
        )
        return {"id": pid}

    def _api_projects__get_by_id(self, body: dict, ctx: _Context) -> dict:
        project = self.projects.get(body.get("project"))
        if project is None:
            raise ApiError(400, 401, f"Invalid project id: id={body.get('project')}")
        return {"project": copy.deepcopy(project)}

    def _api_projects__get_all(self, body: dict, ctx: _Context) -> dict:
        items = [p for p in self.projects.values() if _matches_common(p, body)]
        if body.get("shallow_search") and not body.get("name") and not body.get("id"):
            items = [p for p in items if "/" not in p["name"]]
        return {"projects": _page(_project(items, body.get("only_fields")), body)}

    # ------------------------------------------------------------------ endpoints: queues

    def _api_queues__create(self, body: dict, ctx: _Context) -> dict:
        name = body.get("name")
        if not name:
            raise ApiError(400, 11, "Missing required fields: name")
        if any(q["name"] == name for q in self.queues.values()):
            raise ApiError(400, 801, f"Value combination already exists (unique field): name={name}")
        return {"id": self._new_queue(name, body.get("tags") or [], body.get("system_tags") or [])}

    def _api_queues__get_by_id(self, body: dict, ctx: _Context) -> dict:
        queue = self._queue(body.get("queue"))
        return {"queue": self._public_queue(queue)}

    def _api_queues__get_all(self, body: dict, ctx: _Context) -> dict:
        items = [self._public_queue(q) for q in self.queues.values() if _matches_common(q, body)]
        return {"queues": _page(_project(items, body.get("only_fields")), body)}

    def _api_queues__get_default(self, body: dict, ctx: _Context) -> dict:
        defaults = [q for q in self.queues.values() if "default" in q["system_tags"]]
        if not defaults:
            raise ApiError(400, 707, "No queue is tagged as the default queue for this company")
        if len(defaults) > 1:
            raise ApiError(400, 708, "More than one queue is tagged as the default queue for this company")
        return {"id": defaults[0]["id"], "name": defaults[0]["name"]}

    def _api_queues__get_num_entries(self, body: dict, ctx: _Context) -> dict:
        return {"num": len(self._queue(body.get("queue"))["entries"])}

    def _api_queues__get_next_task(self, body: dict, ctx: _Context) -> dict:
        queue = self._queue(body.get("queue"))
        self._touch_worker(ctx.worker, queue["id"])
        while queue["entries"]:
            entry = queue["entries"].pop(0)
            task = self.tasks.get(entry["task"])
            if task is None or task["status"] != "queued":
                continue  # a stale entry, as the server skips tasks no longer queued
            out: dict[str, Any] = {"entry": dict(entry)}
            if body.get("get_task_info"):
                out["task_info"] = {"company": task["company"], "user": task["user"]}
            return out
        return {}

    def _api_queues__peek_task(self, body: dict, ctx: _Context) -> dict:
        entries = self._queue(body.get("queue"))["entries"]
        return {"task": entries[0]["task"] if entries else None}

    def _api_queues__add_task(self, body: dict, ctx: _Context) -> dict:
        queue = self._queue(body.get("queue"))
        task = self._task(body.get("task"))
        if any(e["task"] == task["id"] for e in queue["entries"]):
            raise ApiError(400, 706, "Failed adding task to queue since task is already queued")
        queue["entries"].append({"task": task["id"], "added": _now()})
        return {"added": 1}

    def _api_queues__remove_task(self, body: dict, ctx: _Context) -> dict:
        queue = self._queue(body.get("queue"))
        before = len(queue["entries"])
        queue["entries"] = [e for e in queue["entries"] if e["task"] != body.get("task")]
        if len(queue["entries"]) == before:
            raise ApiError(400, 703, "Invalid queue id or task not in queue")
        return {"removed": 1}

    def _api_queues__delete(self, body: dict, ctx: _Context) -> dict:
        queue = self._queue(body.get("queue"))
        if queue["entries"] and not body.get("force"):
            raise ApiError(400, 702, "Queue is not empty")
        del self.queues[queue["id"]]
        return {"deleted": 1}

    # ------------------------------------------------------------------ endpoints: workers

    def _api_workers__register(self, body: dict, ctx: _Context) -> dict:
        worker = body.get("worker")
        if not worker:
            raise ApiError(400, 11, "Missing required fields: worker")
        self._register_worker(worker, list(body.get("queues") or []), body.get("timeout"))
        return {}

    def _api_workers__unregister(self, body: dict, ctx: _Context) -> dict:
        self.workers.pop(body.get("worker"), None)
        return {}

    def _api_workers__status_report(self, body: dict, ctx: _Context) -> dict:
        worker = body.get("worker")
        if worker not in self.workers:
            raise ApiError(400, 1004, f"Worker is not registered: worker={worker}")
        self._touch_worker(worker)
        self.workers[worker]["task"] = body.get("task")
        return {}

    def _api_workers__get_all(self, body: dict, ctx: _Context) -> dict:
        now = time.monotonic()
        out = []
        for w in self.workers.values():
            if now - w["_seen"] >= (w.get("_timeout") or self.worker_timeout):
                continue
            queues = [
                {"id": q, "name": self.queues[q]["name"], "num_tasks": len(self.queues[q]["entries"])}
                for q in w["queues"]
                if q in self.queues
            ]
            task = self.tasks.get(w.get("task") or "")
            out.append(
                {
                    "id": w["id"],
                    "register_time": w["register_time"],
                    "last_activity_time": w["last_activity_time"],
                    "queues": queues,
                    "task": {"id": task["id"], "name": task["name"]} if task else None,
                    "user": {"id": USER, "name": "Fake User"},
                    "company": {"id": COMPANY, "name": "fake"},
                }
            )
        return {"workers": out}

    # ------------------------------------------------------------------ endpoints: tasks (reading)

    def _api_tasks__get_by_id(self, body: dict, ctx: _Context) -> dict:
        return {"task": self._public_task(self._task(body.get("task")))}

    def _api_tasks__get_all(self, body: dict, ctx: _Context) -> dict:
        items = [t for t in self.tasks.values() if _matches_task(t, body)]
        items = _order(items, body.get("order_by"))
        projected = _project([self._public_task(t) for t in items], body.get("only_fields"))
        if body.get("scroll_id") or body.get("size"):
            return self._scroll(projected, body, "tasks")
        return {"tasks": _page(projected, body)}

    def _scroll(self, items: list[dict], body: dict, key: str) -> dict:
        scroll_id = body.get("scroll_id")
        start = 0 if body.get("refresh_scroll") or not scroll_id else self._scrolls.get(scroll_id, 0)
        size = int(body.get("size") or 500)
        new_id = _new_id()
        self._scrolls[new_id] = start + size
        return {key: items[start : start + size], "scroll_id": new_id}

    def _api_tasks__get_hyper_params(self, body: dict, ctx: _Context) -> dict:
        out = []
        for tid in body.get("tasks") or []:
            task = self._task(tid)
            flat = [dict(p) for section in (task.get("hyperparams") or {}).values() for p in section.values()]
            out.append({"task": tid, "hyperparams": flat})
        return {"params": out}

    def _api_tasks__get_configurations(self, body: dict, ctx: _Context) -> dict:
        out = []
        names = body.get("names")
        for tid in body.get("tasks") or []:
            conf = self._task(tid).get("configuration") or {}
            out.append({"task": tid, "configuration": [dict(v) for k, v in conf.items() if not names or k in names]})
        return {"configurations": out}

    # ------------------------------------------------------------------ endpoints: tasks (writing)

    def _api_tasks__create(self, body: dict, ctx: _Context) -> dict:
        if not body.get("name"):
            raise ApiError(400, 11, "Missing required fields: name")
        project = body.get("project")
        if project and project not in self.projects:
            raise ApiError(400, 401, f"Invalid project id: id={project}")
        task = self._blank_task(body["name"], project, body.get("type") or "training")
        self._apply_edit(task, body)
        if body.get("output_dest"):
            task["output"]["destination"] = body["output_dest"]
        self.tasks[task["id"]] = task
        return {"id": task["id"]}

    def _apply_edit(self, task: dict[str, Any], body: Mapping[str, Any]) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        for key in _EDITABLE_TASK_FIELDS:
            if key in body and key != "task":
                value = copy.deepcopy(body[key])
                if key == "project" and value and value not in self.projects:
                    raise ApiError(400, 401, f"Invalid project id: id={value}")
                if key in ("script", "execution", "models") and isinstance(value, dict):
                    merged = copy.deepcopy(task.get(key) or {})  # embedded documents are merged, as the server does
                    merged.update(value)
                    value = merged
                task[key] = value
                fields[key] = value
        if "input" in body:
            task["input"] = copy.deepcopy(body["input"])
        if "output_dest" in body:
            task["output"]["destination"] = body["output_dest"]
        now = _now()
        task["last_update"] = task["last_change"] = now
        fields["last_update"] = now
        return fields

    def _check_editable(self, task: Mapping[str, Any], force: bool) -> None:
        allowed = ("created", "in_progress") if force else ("created",)
        if task["status"] not in allowed:
            raise ApiError(400, 110, f"Invalid task status: expected=created, status={task['status']}")

    def _api_tasks__edit(self, body: dict, ctx: _Context) -> dict:
        task = self._task(body.get("task"))
        if not body.get("force") and task["status"] != "created":  # with force any status may be edited
            raise ApiError(400, 110, f"Invalid task status: expected=created, status={task['status']}")
        return {"updated": 1, "fields": self._apply_edit(task, body)}

    def _api_tasks__update(self, body: dict, ctx: _Context) -> dict:
        task = self._task(body.get("task"))
        fields = {}
        for key in ("name", "comment", "tags", "system_tags", "project"):
            if key in body:
                task[key] = copy.deepcopy(body[key])
                fields[key] = body[key]
        task["last_update"] = _now()
        return {"updated": 1, "fields": fields}

    def _api_tasks__edit_hyper_params(self, body: dict, ctx: _Context) -> dict:
        task = self._task(body.get("task"))
        items = body.get("hyperparams") or []
        if not items or any(p.get("section") != "properties" for p in items):
            self._check_editable(task, bool(body.get("force")))  # user properties are editable in any status
        params = task.setdefault("hyperparams", {})
        replace = body.get("replace_hyperparams") or "none"
        if replace == "all":
            params.clear()
        if replace == "section":
            for section in {p.get("section") for p in items}:
                params.pop(section, None)
        for p in items:
            section = p.get("section") or "General"
            params.setdefault(section, {})[p["name"]] = {
                "section": section,
                "name": p["name"],
                "value": str(p.get("value", "")),
                "type": p.get("type"),
                "description": p.get("description"),
            }
        task["last_update"] = _now()
        return {"updated": 1}

    def _api_tasks__delete_hyper_params(self, body: dict, ctx: _Context) -> dict:
        task = self._task(body.get("task"))
        self._check_editable(task, bool(body.get("force")))
        deleted = 0
        for p in body.get("hyperparams") or []:
            section = task["hyperparams"].get(p.get("section"), {})
            if p.get("name") is None:
                deleted += len(task["hyperparams"].pop(p.get("section"), {}))
            elif section.pop(p["name"], None) is not None:
                deleted += 1
        return {"deleted": deleted}

    def _api_tasks__edit_configuration(self, body: dict, ctx: _Context) -> dict:
        task = self._task(body.get("task"))
        self._check_editable(task, bool(body.get("force")))
        conf = task.setdefault("configuration", {})
        if body.get("replace_configuration"):
            conf.clear()
        for item in body.get("configuration") or []:
            conf[item["name"]] = {
                "name": item["name"],
                "value": item.get("value"),
                "type": item.get("type"),
                "description": item.get("description"),
            }
        return {"updated": 1}

    def _api_tasks__set_requirements(self, body: dict, ctx: _Context) -> dict:
        task = self._task(body.get("task"))
        task["script"]["requirements"] = copy.deepcopy(body.get("requirements") or {})
        return {"updated": 1, "fields": {"script.requirements": task["script"]["requirements"]}}

    def _api_tasks__add_or_update_artifacts(self, body: dict, ctx: _Context) -> dict:
        task = self._task(body.get("task"))
        artifacts = task["execution"].setdefault("artifacts", [])
        for art in body.get("artifacts") or []:
            key = (art.get("key"), art.get("mode") or "output")
            artifacts[:] = [a for a in artifacts if (a.get("key"), a.get("mode") or "output") != key]
            artifacts.append(copy.deepcopy(art))
        return {"updated": len(body.get("artifacts") or [])}

    def _api_tasks__add_or_update_model(self, body: dict, ctx: _Context) -> dict:
        task = self._task(body.get("task"))
        kind = body.get("type") or "output"
        models = task["models"].setdefault(kind, [])
        models[:] = [m for m in models if m.get("name") != body.get("name")]
        models.append({"name": body.get("name"), "model": body.get("model")})
        return {"updated": 1}

    def _api_tasks__clone(self, body: dict, ctx: _Context) -> dict:
        src = self._task(body.get("task"))
        project = src["project"]
        out: dict[str, Any] = {}
        if body.get("new_project_name"):
            project = self._project_by_name(body["new_project_name"], create=True)
            out["new_project"] = {"id": project, "name": body["new_project_name"]}
        elif body.get("new_task_project"):
            project = body["new_task_project"]
            if project not in self.projects:
                raise ApiError(400, 401, f"Invalid project id: id={project}")
        task = self._blank_task(body.get("new_task_name") or src["name"], project, src["type"])
        for key in ("comment", "tags", "script", "hyperparams", "configuration", "container", "runtime"):
            task[key] = copy.deepcopy(src.get(key))
        task["runtime"] = {}
        task["system_tags"] = [t for t in src.get("system_tags") or [] if t not in ("archived", "development")]
        task["execution"] = copy.deepcopy(src["execution"])
        task["execution"]["queue"] = None
        task["execution"]["artifacts"] = [
            a for a in src["execution"].get("artifacts") or [] if a.get("mode") == "input"
        ]
        task["models"] = {"input": copy.deepcopy(src["models"].get("input") or []), "output": []}
        task["output"] = {"destination": src["output"].get("destination")}
        task["parent"] = body.get("new_task_parent") or src.get("parent")
        for key, target in (
            ("new_task_comment", "comment"),
            ("new_task_tags", "tags"),
            ("new_task_system_tags", "system_tags"),
            ("new_task_hyperparams", "hyperparams"),
            ("new_task_configuration", "configuration"),
            ("new_task_container", "container"),
        ):
            if body.get(key) is not None:
                task[target] = copy.deepcopy(body[key])
        if body.get("new_task_input_models") is not None:
            task["models"]["input"] = copy.deepcopy(body["new_task_input_models"])
        if body.get("execution_overrides"):
            _deep_update(task["execution"], body["execution_overrides"])
        self.tasks[task["id"]] = task
        out["id"] = task["id"]
        return out

    def _api_tasks__enqueue(self, body: dict, ctx: _Context) -> dict:
        if body.get("queue") and body.get("queue_name"):
            raise ApiError(400, 12, "Validation error: either queue id or queue name should be provided")
        if body.get("queue_name"):
            name = body["queue_name"]
            qid = next((q["id"] for q in self.queues.values() if q["name"] == name), None) or self._new_queue(name)
        elif body.get("queue"):
            qid = self._queue(body["queue"])["id"]
        else:
            qid = self._api_queues__get_default({}, ctx)["id"]
        task = self._task(body.get("task"))
        previous = task["status"]
        res = self._change_status(task, "queued", body, allow_same=False, force=bool(body.get("force")))
        task["_enqueue_status"] = previous
        self._remove_from_queues(task["id"])
        self.queues[qid]["entries"].append({"task": task["id"], "added": _now()})
        task["execution"]["queue"] = qid
        res["fields"]["execution.queue"] = qid
        res["queued"] = 1
        if body.get("verify_watched_queue"):
            res["queue_watched"] = self._watched(qid)
        return res

    def _api_tasks__dequeue(self, body: dict, ctx: _Context) -> dict:
        task = self._task(body.get("task"))
        res = self._dequeue(task, body)
        res["dequeued"] = 1
        return res

    def _api_tasks__started(self, body: dict, ctx: _Context) -> dict:
        task = self._task(body.get("task"))
        force = bool(body.get("force"))
        was_queued = task["status"] == "queued"
        res = self._change_status(task, "in_progress", body, force=force, started=task.get("started") or _now())
        if was_queued:
            self._remove_from_queues(task["id"])
        task.pop("_enqueue_status", None)
        if ctx.worker:
            task["last_worker"] = ctx.worker
        res["started"] = 1
        return res

    def _api_tasks__ping(self, body: dict, ctx: _Context) -> dict:
        task = self._task(body.get("task"))
        task["last_update"] = _now()
        if ctx.worker and task["status"] == "in_progress":
            task["last_worker"] = ctx.worker
        return {}

    def _api_tasks__stop(self, body: dict, ctx: _Context) -> dict:
        task = self._task(body.get("task"))
        force = bool(body.get("force"))
        if task["status"] == "queued":
            self._remove_from_queues(task["id"])
            task["execution"]["queue"] = None
            return self._change_status(task, "stopped", body, force=True, message="Stopped by Fake User")
        run_by_worker = bool(task.get("last_worker")) and "development" not in task["system_tags"]
        if task["status"] == "in_progress" and run_by_worker:
            return self._change_status(task, "in_progress", body, force=force, message="stopping")
        return self._change_status(task, "stopped", body, force=force, message="Stopped by Fake User")

    def _api_tasks__stopped(self, body: dict, ctx: _Context) -> dict:
        task = self._task(body.get("task"))
        if task["status"] == "queued":
            self._remove_from_queues(task["id"])
            task["execution"]["queue"] = None
        return self._change_status(task, "stopped", body, force=bool(body.get("force")))

    def _api_tasks__completed(self, body: dict, ctx: _Context) -> dict:
        task = self._task(body.get("task"))
        res = self._change_status(task, "completed", body, force=bool(body.get("force")), completed=_now())
        if body.get("publish"):
            res = self._change_status(task, "published", body, force=True)
        return res

    def _api_tasks__failed(self, body: dict, ctx: _Context) -> dict:
        task = self._task(body.get("task"))
        if task["status"] == "queued":
            self._remove_from_queues(task["id"])
        return self._change_status(task, "failed", body, force=bool(body.get("force")))

    def _api_tasks__close(self, body: dict, ctx: _Context) -> dict:
        task = self._task(body.get("task"))
        return self._change_status(task, "closed", body, force=bool(body.get("force")))

    def _api_tasks__publish(self, body: dict, ctx: _Context) -> dict:
        task = self._task(body.get("task"))
        return self._change_status(task, "published", body, force=bool(body.get("force")))

    def _api_tasks__reset(self, body: dict, ctx: _Context) -> dict:
        task = self._task(body.get("task"))
        if task["status"] == "published" and not body.get("force"):
            raise _invalid_status(task, "created")
        dequeued = {}
        if self._remove_from_queues(task["id"]):
            dequeued = {"removed": 1}
        self.events.pop(task["id"], None)
        task.update(
            last_iteration=0,
            last_metrics={},
            runtime={},
            last_worker=None,
            last_worker_report=None,
            started=None,
            completed=None,
            active_duration=None,
        )
        task["models"]["output"] = []
        task["execution"]["queue"] = None
        task.pop("_enqueue_status", None)
        task.pop("_last_metric_iter", None)
        if body.get("clear_all"):
            task["execution"] = self._blank_task("", None, "training")["execution"]
            task["script"] = self._blank_task("", None, "training")["script"]
        else:
            task["execution"]["artifacts"] = [
                a for a in task["execution"].get("artifacts") or [] if a.get("mode") == "input"
            ]
        res = self._change_status(
            task, "created", {"status_reason": "reset", "status_message": "reset"}, force=bool(body.get("force"))
        )
        res["dequeued"] = dequeued
        res["deleted_models"] = 0
        res["urls"] = None
        return res

    def _api_tasks__delete(self, body: dict, ctx: _Context) -> dict:
        task = self._task(body.get("task"))
        if task["status"] != "created" and "archived" not in task["system_tags"] and not body.get("force"):
            raise ApiError(400, 123, f"Task cannot be deleted: due to status, use force=True, status={task['status']}")
        self._remove_from_queues(task["id"])
        self.events.pop(task["id"], None)
        del self.tasks[task["id"]]
        return {"deleted": True, "updated_children": 0, "updated_models": 0, "events": {}, "urls": None}

    def _archive(self, task: dict[str, Any], body: Mapping[str, Any]) -> None:
        if task["status"] == "queued":
            self._dequeue(task, body)
        if "archived" not in task["system_tags"]:
            task["system_tags"].append("archived")
        task["last_change"] = _now()

    def _api_tasks__archive(self, body: dict, ctx: _Context) -> dict:
        tasks = [self._task(t) for t in body.get("tasks") or []]
        for task in tasks:
            self._archive(task, body)
        return {"archived": len(tasks)}

    def _api_tasks__archive_many(self, body: dict, ctx: _Context) -> dict:
        succeeded, failed = [], []
        for tid in body.get("ids") or []:
            task = self.tasks.get(tid)
            if task is None:
                failed.append({"id": tid, "error": {"codes": [400, 101], "msg": "Invalid task id"}})
                continue
            self._archive(task, body)
            succeeded.append({"id": tid, "archived": True})
        return {"succeeded": succeeded, "failed": failed}

    def _api_tasks__unarchive_many(self, body: dict, ctx: _Context) -> dict:
        succeeded = []
        for tid in body.get("ids") or []:
            task = self._task(tid)
            if "archived" in task["system_tags"]:
                task["system_tags"].remove("archived")
            succeeded.append({"id": tid, "unarchived": True})
        return {"succeeded": succeeded, "failed": []}

    # ------------------------------------------------------------------ endpoints: events

    def _api_events__add_batch(self, body: Any, ctx: _Context) -> dict:
        events = body if isinstance(body, list) else [body]
        added, errors = 0, 0
        errors_info: dict[str, int] = {}
        for ev in events:
            error = self._add_event(ev, ctx) if isinstance(ev, dict) else "event is not an object"
            if error is None:
                added += 1
            else:
                errors += 1
                errors_info[error] = errors_info.get(error, 0) + 1
        return {"added": added, "errors": errors, "errors_info": errors_info}

    def _api_events__add(self, body: dict, ctx: _Context) -> dict:
        error = self._add_event(body, ctx)
        if error:
            raise ApiError(400, 131, f"Events not added: {error}")
        return {}

    def _api_events__scalar_metrics_iter_histogram(self, body: dict, ctx: _Context) -> dict:
        task = self._task(body.get("task"))
        key = body.get("key") or "iter"
        wanted = {m.get("metric"): set(m.get("variants") or []) for m in body.get("metrics") or []}
        series: dict[str, dict[str, list[tuple[Any, float]]]] = {}
        for ev in self.events.get(task["id"], []):
            if ev.get("type") != _SCALAR:
                continue
            if wanted and (
                ev["metric"] not in wanted or (wanted[ev["metric"]] and ev["variant"] not in wanted[ev["metric"]])
            ):
                continue
            if key == "iter":
                x: Any = ev["iter"]
            elif key == "iso_time":
                x = datetime.fromtimestamp(ev["timestamp"] / 1000, timezone.utc).isoformat()
            else:
                x = ev["timestamp"]
            series.setdefault(ev["metric"], {}).setdefault(ev["variant"], []).append((x, ev["value"]))
        samples = int(body.get("samples") or 0)
        out: dict[str, Any] = {}
        for metric, variants in series.items():
            out[metric] = {}
            for variant, points in variants.items():
                points = _last_per_x(points)
                if samples and len(points) > samples:
                    step = len(points) / samples
                    points = [points[int(i * step)] for i in range(samples - 1)] + [points[-1]]
                out[metric][variant] = {"name": variant, "x": [p[0] for p in points], "y": [p[1] for p in points]}
        return out

    def _api_events__multi_task_scalar_metrics_iter_histogram(self, body: dict, ctx: _Context) -> dict:
        """``{metric: {variant: {task_id: {"name": task name, "x": [...], "y": [...]}}}}``, up to 100 tasks
        (our reading of clearml-server's ``compare_scalar_metrics_average_per_iter``)."""
        ids = _as_list(body.get("tasks"))
        if not ids:
            raise ApiError(400, 11, "Missing required fields: tasks")
        if len(ids) > 100:
            raise ApiError(400, 12, "Validation error: maximum amount of tasks is 100")
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for tid in ids:
            task = self._task(tid)
            one = self._api_events__scalar_metrics_iter_histogram(
                {"task": tid, "key": body.get("key") or "iter", "samples": body.get("samples")}, ctx)
            for metric, variants in one.items():
                for variant, hist in variants.items():
                    out.setdefault(metric, {}).setdefault(variant, {})[tid] = {
                        "name": task["name"], "x": hist["x"], "y": hist["y"]}
        return out

    def _api_events__get_task_events(self, body: dict, ctx: _Context) -> dict:
        task = self._task(body.get("task"))
        etype = body.get("event_type")
        items = [e for e in self.events.get(task["id"], []) if not etype or e.get("type") == etype]
        if (body.get("order") or "asc") == "desc":
            items = items[::-1]
        scroll_id = body.get("scroll_id")
        start = self._scrolls.get(scroll_id, 0) if scroll_id else 0
        size = int(body.get("batch_size") or 500)
        page = [copy.deepcopy(e) for e in items[start : start + size]]
        new_id = _new_id()
        self._scrolls[new_id] = start + len(page)
        return {"events": page, "returned": len(page), "total": len(items), "scroll_id": new_id}

    def _api_events__get_scalar_metrics_and_variants(self, body: dict, ctx: _Context) -> dict:
        task = self._task(body.get("task"))
        metrics: dict[str, dict[str, dict]] = {}
        for ev in self.events.get(task["id"], []):
            if ev.get("type") == _SCALAR:
                metrics.setdefault(ev["metric"], {})[ev["variant"]] = {"name": ev["variant"]}
        return {"metrics": metrics}

    def _api_events__get_task_plots(self, body: dict, ctx: _Context) -> dict:
        task = self._task(body.get("task"))
        plots = [copy.deepcopy(e) for e in self.events.get(task["id"], []) if e.get("type") == "plot"]
        return {"plots": plots, "returned": len(plots), "total": len(plots), "scroll_id": _new_id()}

    def _api_events__debug_images(self, body: dict, ctx: _Context) -> dict:
        return {"metrics": [], "scroll_id": _new_id()}

    def _api_events__delete_for_task(self, body: dict, ctx: _Context) -> dict:
        task = self._task(body.get("task"))
        return {"deleted": len(self.events.pop(task["id"], []))}

    # ------------------------------------------------------------------ endpoints: models (none stored)

    def _api_models__get_all(self, body: dict, ctx: _Context) -> dict:
        return {"models": []}


# ---------------------------------------------------------------------- query helpers (pure functions)


def client_config(url: str, access_key: str, secret_key: str, *, retries: int = 2) -> str:
    """A clearml.conf for tests: few, short retries (an unreachable server fails in about a second, not hours),
    no waiting on "maintenance" 503s, no reporting subprocess (about 11 s saved per process exit), and no
    uncommitted-diff capture by a development-mode ``Task.init``."""
    return f"""# written by hyperscout_clearml (for a FAKE ClearML server in tests)
api {{
  api_server: "{url}"
  web_server: "{url}"
  files_server: "{url}"
  credentials {{ access_key: "{access_key}", secret_key: "{secret_key}" }}
  http {{
    retries {{ total: {retries}, connect: {retries}, read: {retries}, redirect: {retries}, status: {retries},
              backoff_factor: 0.1, backoff_max: 1.0 }}
    wait_on_maintenance_forever: false
  }}
}}
sdk {{
  development {{
    report_use_subprocess: false
    store_uncommitted_code_diff: false
  }}
}}
"""


def _call_matches(call: Call, endpoint: str | None, worker: str | None, client: str | None) -> bool:
    if endpoint is not None:
        if endpoint.endswith("."):
            if not call.endpoint.startswith(endpoint):
                return False
        elif call.endpoint != endpoint:
            return False
    if worker is not None and worker not in (call.worker or ""):
        return False
    return not (client is not None and client not in (call.client or ""))


def _param_str(value: Any) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value)
    return "" if value is None else str(value)


def _param_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    return "str" if isinstance(value, str) else ""


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple, set)) else [value]


def _regex(pattern: str, value: Any) -> bool:
    try:
        return re.search(pattern, str(value or "")) is not None
    except re.error:
        raise ApiError(400, 21, f"Malformed regular expression: {pattern}") from None


def _tags_match(have: Iterable[str], wanted: Any) -> bool:
    """clearml-server tag filters: plain = must have one of them, "-tag" = must not have, "__$all"/"__$or" ops."""
    have = set(have or [])
    include: list[str] = []
    mode_all = False
    for tag in _as_list(wanted):
        if tag in ("__$all", "__$and"):
            mode_all = True
        elif tag in ("__$or", "__$any"):
            mode_all = False
        elif tag.startswith("__$not") or tag.startswith("-"):
            name = tag[6:] if tag.startswith("__$not") else tag[1:]
            if name in have:
                return False
        else:
            include.append(tag)
    if not include:
        return True
    return all(t in have for t in include) if mode_all else any(t in have for t in include)


def _matches_common(item: Mapping[str, Any], body: Mapping[str, Any]) -> bool:
    ids = _as_list(body.get("id"))
    if ids and item["id"] not in ids:
        return False
    if body.get("name") and not _regex(body["name"], item.get("name")):
        return False
    if body.get("tags") and not _tags_match(item.get("tags") or [], body["tags"]):
        return False
    if body.get("system_tags") and not _tags_match(item.get("system_tags") or [], body["system_tags"]):
        return False
    if not body.get("search_hidden") and "hidden" in (item.get("system_tags") or []):
        return False
    text = body.get("search_text")
    return not (text and text.lower() not in (str(item.get("name", "")) + str(item.get("comment", ""))).lower())


def _matches_task(task: Mapping[str, Any], body: Mapping[str, Any]) -> bool:
    if not _matches_common(task, body):
        return False
    for key in ("project", "status", "type", "user", "parent"):
        wanted = _as_list(body.get(key))
        if wanted and task.get(key) not in wanted:
            return False
    for key in ("_any_", "_all_"):
        spec = body.get(key)
        if spec and spec.get("pattern") is not None:
            hits = [_regex(spec["pattern"], _get_path(task, f)) for f in spec.get("fields") or []]
            if hits and not (any(hits) if key == "_any_" else all(hits)):
                return False
    return True


def _get_path(item: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(item, Mapping):
            return None
        item = item.get(part)
    return item


def _project(items: list[dict[str, Any]], only_fields: Any) -> list[dict[str, Any]]:
    """Keep only the requested (possibly dotted) fields, plus ``id`` as the server does."""
    fields = _as_list(only_fields)
    if not fields:
        return items
    out = []
    for item in items:
        projected: dict[str, Any] = {"id": item.get("id")}
        for path in fields:
            parts = path.split(".")
            src: Any = item
            for part in parts:
                src = src.get(part) if isinstance(src, Mapping) else None
                if src is None:
                    break
            if src is None:
                continue
            dst = projected
            for part in parts[:-1]:
                dst = dst.setdefault(part, {})
            dst[parts[-1]] = copy.deepcopy(src)
        out.append(projected)
    return out


def _order(items: list[dict[str, Any]], order_by: Any) -> list[dict[str, Any]]:
    for key in reversed(_as_list(order_by)):
        desc = key.startswith("-")
        name = key.lstrip("-+")
        items = sorted(items, key=lambda t, n=name: (_get_path(t, n) is None, str(_get_path(t, n) or "")), reverse=desc)
    return items


def _page(items: list[dict[str, Any]], body: Mapping[str, Any]) -> list[dict[str, Any]]:
    size = body.get("page_size")
    if size is None:
        return items
    page = int(body.get("page") or 0)
    return items[page * int(size) : (page + 1) * int(size)]


def _last_per_x(points: list[tuple[Any, float]]) -> list[tuple[Any, float]]:
    """One point per x (the last reported wins), sorted by x - as a histogram of a metric shows it."""
    by_x: dict[Any, float] = {}
    for x, y in points:
        by_x[x] = y
    return sorted(by_x.items(), key=lambda p: p[0])


def _deep_update(dst: dict[str, Any], src: Mapping[str, Any]) -> None:
    for key, value in src.items():
        if isinstance(value, Mapping) and isinstance(dst.get(key), dict):
            _deep_update(dst[key], value)
        else:
            dst[key] = copy.deepcopy(value)
