"""Fixtures that point the real clearml SDK at the FAKE ClearML server of this package.

The SDK pins its API host and token per process on first use, so the whole session shares one fake server
(``reset()`` between tests). Environment variables the SDK reads at import time are removed here, before any
test module can import clearml. Every test also checks, at teardown, that the SDK understood every answer
(each answer validates against the SDK's own response schema; no "Failed parsing response" warning; no
endpoint the fake does not implement).
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from clearml_live import LiveServer, live_requested

from hyperscout_clearml.fake_agent import FakeAgent
from hyperscout_clearml.fake_server import FakeClearMLServer

#: ``nox -s clearml_live``: the same tests against a real server (see clearml_live.py); fake_only ones are skipped
LIVE = live_requested()

for _name in ("CLEARML_TASK_ID", "CLEARML_OFFLINE_MODE", "CLEARML_AUTH_TOKEN", "CLEARML_API_DEFAULT_REQ_METHOD"):
    os.environ.pop(_name, None)

TRIAL_SCRIPT = Path(__file__).with_name("trial_clearml.py")
TRIAL_DEFAULTS: dict[str, dict[str, Any]] = {
    "General": {"epochs": 3, "sleep": 0.0, "fail": False, "marker": ""},
    "Args": {"lr": 0.1, "optimizer": "sgd"},
}


def pytest_configure(config: pytest.Config) -> None:
    """clearml's vendored pyhocon calls pyparsing's deprecated names: noise that says nothing about the fake."""
    config.addinivalue_line("filterwarnings", "ignore::DeprecationWarning:pyparsing")
    config.addinivalue_line("filterwarnings", "ignore::DeprecationWarning:clearml")
    config.addinivalue_line("markers", "fake_only: needs the fake server's fault injection or request counts")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Against a real server, skip what only the fake can do (and the tests of the fake itself)."""
    if not LIVE:
        return
    skip = pytest.mark.skip(reason="needs the FAKE server (fault injection, request counts or the fake itself)")
    for item in items:
        if item.get_closest_marker("fake_only") or item.path.name == "test_fake_server.py":
            item.add_marker(skip)


class _WarningCatcher(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture(scope="session")
def sdk_warnings() -> Iterator[list[str]]:
    """Warnings (and worse) the SDK logged in this process."""
    catcher = _WarningCatcher()
    logging.getLogger("clearml").addHandler(catcher)
    yield catcher.messages
    logging.getLogger("clearml").removeHandler(catcher)


@pytest.fixture(scope="session")
def fake_clearml(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The session's fake server (a real one under ``clearml_live``), with this process's environment pointed at
    it (HOME left alone)."""
    server: Any = LiveServer.from_env() if LIVE else FakeClearMLServer().start()
    env = server.env(tmp_path_factory.mktemp("clearml-controller"))
    env.pop("HOME")  # CLEARML_CONFIG_FILE already keeps ~/clearml.conf out; other suites may share this process
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield server
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    if not LIVE:
        server.stop()


@pytest.fixture
def server(fake_clearml: FakeClearMLServer, sdk_warnings: list[str]) -> Iterator[FakeClearMLServer]:
    """The fake, emptied for this test; fails the test if the SDK misunderstood any answer."""
    fake_clearml.reset()
    sdk_warnings.clear()
    yield fake_clearml
    fake_clearml.clear_faults()
    if LIVE:
        return
    parse_failures = [m for m in sdk_warnings if "Failed parsing response" in m]
    assert not parse_failures, parse_failures
    assert not fake_clearml.unsupported, f"endpoints the fake does not implement: {fake_clearml.unsupported}"
    bad = schema_violations(fake_clearml)
    assert not bad, bad


@pytest.fixture
def client_env(server: FakeClearMLServer, tmp_path: Path) -> dict[str, str]:
    """Full environment for a subprocess that uses the SDK against the fake (as a controller)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLEARML_", "TRAINS_"))}
    env.update(server.env(tmp_path / "client"))
    return env


@pytest.fixture
def Task(server: FakeClearMLServer) -> Any:
    """``clearml.Task``, imported only once the environment points at the fake."""
    from clearml import Task as ClearmlTask

    return ClearmlTask


@pytest.fixture
def base_task(server: FakeClearMLServer) -> str:
    """Queue "default" and a base task whose script is the trial script, stored in the task itself."""
    server.create_queue(server.scoped("default"))
    return server.create_task(
        "base",
        project=server.scoped("hyperscout-tests"),
        script_text=TRIAL_SCRIPT.read_text(encoding="utf-8"),
        entry_point="trial_clearml.py",
        hyperparams=TRIAL_DEFAULTS,
    )


@pytest.fixture
def random_strategy() -> None:
    """The end-to-end tests search with RandomSearch (hyperscout-random, a sibling distribution)."""
    pytest.importorskip("hyperscout_random", reason="install ./plugins/hyperscout-random for the end-to-end tests")


@pytest.fixture
def eager_trials(server: FakeClearMLServer, tmp_path: Path) -> dict[str, str]:
    """Agent ``env`` whose trials send every scalar at once (the SDK waits up to 5 s by default): tests that
    wait for live metrics (pruning, budgets, the conformance kit) get them sooner."""
    conf = server.env(tmp_path / "eager-trials", extra_conf="sdk.development.worker.report_event_flush_threshold: 1\n")
    return {"CLEARML_CONFIG_FILE": conf["CLEARML_CONFIG_FILE"]}


@pytest.fixture
def start_agent(server: FakeClearMLServer) -> Iterator[Callable[..., FakeAgent]]:
    """Factory for fake agents on the fake server; all are stopped (their trials killed) at teardown."""
    agents: list[FakeAgent] = []

    def start(queue: str = "default", **kwargs: Any) -> FakeAgent:
        kwargs.setdefault("kill_grace", 0.5)
        if LIVE:  # a real server: the agent talks to it by URL, under a name of its own
            kwargs.update(access_key=server.access_key, secret_key=server.secret_key)
            kwargs["name"] = server.scoped(kwargs.get("name", "fake-agent"))
            agent = FakeAgent(server.url, server.scoped(queue), **kwargs).start()
        else:
            agent = FakeAgent(server, queue, **kwargs).start()
        agents.append(agent)
        return agent

    yield start
    problems = []
    for agent in agents:  # read before stop(): it removes the agent's directory with the trials' console logs
        for run in agent.runs.values():
            text = run.stdout_path.read_text() if run.stdout_path and run.stdout_path.exists() else ""
            if "Failed parsing response" in text:
                problems.append(text)
    for agent in agents:
        agent.stop()
    assert not problems, problems


@functools.cache
def _response_validators() -> dict[str, Any]:
    """jsonschema validators of the SDK's own response models (API 2.23), by endpoint."""
    import importlib

    import jsonschema

    validators: dict[str, Any] = {}
    for service in ("auth", "events", "models", "projects", "queues", "tasks", "workers"):
        module = importlib.import_module(f"clearml.backend_api.services.v2_23.{service}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__name__.endswith("Response") and getattr(cls, "_action", None) and getattr(cls, "_schema", None):
                validators[f"{cls._service}.{cls._action}"] = jsonschema.Draft7Validator(cls._schema)
    return validators


def schema_violations(server: FakeClearMLServer) -> list[str]:
    """Answers of successful calls that do not validate against the SDK's response schema of that endpoint."""
    validators = _response_validators()
    out = []
    seen: set[str] = set()
    for call in server.calls:
        validator = validators.get(call.endpoint)
        if call.status != 200 or validator is None:
            continue
        key = json.dumps([call.endpoint, call.response], sort_keys=True, default=str)
        if key in seen:
            continue
        seen.add(key)
        for err in validator.iter_errors(call.response):
            out.append(f"{call.endpoint}: {err.message} at {list(err.absolute_path)}")
    return out
