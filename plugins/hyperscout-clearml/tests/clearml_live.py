"""The test suite's view of a REAL ClearML server (``nox -s clearml_live``), with the fake server's test API.

``HYPERSCOUT_CLEARML_LIVE=1`` plus ``CLEARML_API_HOST``, ``CLEARML_API_ACCESS_KEY`` and
``CLEARML_API_SECRET_KEY`` (and ``CLEARML_WEB_HOST`` / ``CLEARML_FILES_HOST`` when they are not derived from the
API host) make ``conftest.py`` hand the tests this object instead of the fake. It seeds and reads the server
through its REST API (no SDK, so the test process's SDK session stays the one under test), and gives every
queue and project a name of its own per test (``scoped``), so no real agent picks up the tests' tasks and
nothing collides with the server's other users. Tasks a test leaves queued or running are stopped at its end.

Trials are still run by the FAKE agent (pointed at the real server): the point is the server, not the agent.
Tests that need fault injection or request counts are marked ``fake_only`` and skipped here.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from hyperscout_clearml.fake_agent import AgentApiError, _Api
from hyperscout_clearml.fake_server import client_config

__all__ = ["LiveServer", "live_requested"]

_SCRIPT_BINARY = "python3"


def live_requested() -> bool:
    return os.environ.get("HYPERSCOUT_CLEARML_LIVE") == "1"


def _param(value: Any) -> dict[str, Any]:
    text = json.dumps(value) if isinstance(value, (dict, list)) else ("" if value is None else str(value))
    kind = {bool: "bool", int: "int", float: "float", str: "str"}.get(type(value), "")
    return {"value": text, "type": kind, "description": ""}


class LiveServer:
    """A real ClearML server behind the subset of ``FakeClearMLServer``'s test API the plugin's tests use."""

    counts_requests = False
    unsupported: list[str] = []
    calls: list[Any] = []

    def __init__(self, url: str, access_key: str, secret_key: str, *, web: str | None = None,
                 files: str | None = None) -> None:
        self.url, self.access_key, self.secret_key = url.rstrip("/"), access_key, secret_key
        self.web, self.files = (web or self.url).rstrip("/"), (files or self.url).rstrip("/")
        self.run = uuid.uuid4().hex[:6]
        self.api = _Api(self.url, access_key, secret_key, worker=f"hyperscout-live-tests-{self.run}")
        self._test = 0
        self._projects: dict[str, str] = {}

    @classmethod
    def from_env(cls) -> LiveServer:
        missing = [k for k in ("CLEARML_API_HOST", "CLEARML_API_ACCESS_KEY", "CLEARML_API_SECRET_KEY")
                   if not os.environ.get(k)]
        if missing:
            raise RuntimeError(f"clearml_live needs {', '.join(missing)} in the environment (a real server's keys)")
        server = cls(os.environ["CLEARML_API_HOST"], os.environ["CLEARML_API_ACCESS_KEY"],
                     os.environ["CLEARML_API_SECRET_KEY"], web=os.environ.get("CLEARML_WEB_HOST"),
                     files=os.environ.get("CLEARML_FILES_HOST"))
        server.api.login()  # wrong keys or host: fail the session at once
        return server

    # -- per test ---------------------------------------------------------------------------
    def reset(self) -> None:
        """A new test: new names for its queues and projects."""
        self._test += 1
        self._projects.clear()

    def scoped(self, name: str) -> str:
        """This test's own queue or project name for ``name``."""
        return f"{name}-hs{self.run}{self._test}"

    def clear_faults(self) -> None:
        """Stop what this test left queued or running (the real server keeps everything)."""
        for task in self.tasks.values():
            if task["status"] in ("queued", "in_progress"):
                try:
                    self.api.call("tasks.stopped", {"task": task["id"], "force": True,
                                                    "status_reason": "hyperscout live tests ended"})
                except AgentApiError:
                    pass

    def env(self, tmpdir: str | Path, *, retries: int = 2, extra_conf: str = "") -> dict[str, str]:
        tmp = Path(tmpdir)
        tmp.mkdir(parents=True, exist_ok=True)
        (tmp / "clearml-cache").mkdir(exist_ok=True)
        conf = tmp / "clearml.conf"
        conf.write_text(client_config(self.url, self.access_key, self.secret_key, retries=retries) + extra_conf,
                        encoding="utf-8")
        return {"CLEARML_API_HOST": self.url, "CLEARML_WEB_HOST": self.web, "CLEARML_FILES_HOST": self.files,
                "CLEARML_API_ACCESS_KEY": self.access_key, "CLEARML_API_SECRET_KEY": self.secret_key,
                "CLEARML_CONFIG_FILE": str(conf), "CLEARML_CACHE_DIR": str(tmp / "clearml-cache"), "HOME": str(tmp)}

    # -- seeding ------------------------------------------------------------------------------
    def create_project(self, name: str) -> str:
        found = self.api.call("projects.get_all", {"name": f"^{re.escape(name)}$", "only_fields": ["id"]})
        if found.get("projects"):
            return str(found["projects"][0]["id"])
        return str(self.api.call("projects.create", {"name": name, "description": "hyperscout live tests"})["id"])

    def create_queue(self, name: str, **_: Any) -> str:
        found = self.api.call("queues.get_all", {"name": f"^{re.escape(name)}$", "only_fields": ["id"]})
        if found.get("queues"):
            return str(found["queues"][0]["id"])
        return str(self.api.call("queues.create", {"name": name})["id"])

    def create_task(self, name: str, *, project: str = "hyperscout-tests", task_type: str = "training",
                    script_text: str | None = None, entry_point: str = "train.py", working_dir: str = ".",
                    repository: str = "", hyperparams: Mapping[str, Mapping[str, Any]] | None = None,
                    tags: Iterable[str] = (), **_: Any) -> str:
        pid = self.create_project(project)
        self._projects[pid] = project
        params = {s: {k: {"section": s, "name": k, **_param(v)} for k, v in values.items()}
                  for s, values in (hyperparams or {}).items()}
        return str(self.api.call("tasks.create", {
            "name": name, "project": pid, "type": task_type, "tags": list(tags), "hyperparams": params,
            "script": {"repository": repository, "entry_point": entry_point, "working_dir": working_dir,
                       "binary": _SCRIPT_BINARY, "diff": script_text or ""},
        })["id"])

    # -- reading ------------------------------------------------------------------------------
    @property
    def projects(self) -> dict[str, dict[str, Any]]:
        """This test's projects (those whose names carry its scope)."""
        suffix = self.scoped("")
        found = self.api.call("projects.get_all", {"name": f"{re.escape(suffix)}$",
                                                   "only_fields": ["id", "name", "description"]})
        return {str(p["id"]): p for p in found.get("projects") or []}

    @property
    def tasks(self) -> dict[str, dict[str, Any]]:
        """Every task in this test's projects, by id."""
        projects = list(self.projects)
        if not projects:
            return {}
        found = self.api.call("tasks.get_all", {"project": projects, "order_by": ["created"]})
        return {str(t["id"]): t for t in found.get("tasks") or []}

    def task(self, task_id: str) -> dict[str, Any]:
        return dict(self.api.call("tasks.get_by_id", {"task": task_id})["task"])

    def task_status(self, task_id: str) -> str:
        return str(self.task(task_id)["status"])

    def task_ids(self, *, parent: str | None = None, name: str | None = None) -> list[str]:
        return [t["id"] for t in self.tasks.values()
                if (parent is None or t.get("parent") == parent) and (name is None or t["name"] == name)]

    def hyperparams(self, task_id: str) -> dict[str, dict[str, str]]:
        params = self.task(task_id).get("hyperparams") or {}
        return {s: {n: p.get("value", "") for n, p in v.items()} for s, v in params.items()}

    def tags(self, task_id: str) -> list[str]:
        return list(self.task(task_id).get("tags") or [])

    def system_tags(self, task_id: str) -> list[str]:
        return list(self.task(task_id).get("system_tags") or [])

    def queue_entries(self, queue: str) -> list[str]:
        found = self.api.call("queues.get_all", {"name": f"^{re.escape(queue)}$"}).get("queues") or []
        return [e["task"] for e in (found[0].get("entries") or [])] if found else []

    def scalars(self, task_id: str) -> dict[str, dict[str, list[tuple[int, float]]]]:
        data = self.api.call("events.scalar_metrics_iter_histogram", {"task": task_id, "key": "iter"})
        return {m: {v: list(zip(h.get("x") or [], h.get("y") or [])) for v, h in variants.items()}
                for m, variants in data.items() if isinstance(variants, dict)}

    def task_events(self, task_id: str, event_type: str | None = None) -> list[dict[str, Any]]:
        if event_type == "plot":
            return list(self.api.call("events.get_task_plots", {"task": task_id, "iters": 1}).get("plots") or [])
        body: dict[str, Any] = {"task": task_id, "batch_size": 1000}
        if event_type:
            body["event_type"] = event_type
        return list(self.api.call("events.get_task_events", body).get("events") or [])

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 30.0) -> Any:
        """Poll ``predicate`` (each call reads the server) until it is truthy."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"condition not met within {timeout} s")
            time.sleep(0.5)  # a real server has no change notification; this is the polling interval

    def wait_for_status(self, task_id: str, *statuses: str, timeout: float = 30.0) -> str:
        return str(self.wait_for(lambda: (s := self.task_status(task_id)) in statuses and s, timeout))
