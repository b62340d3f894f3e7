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

from hyperscout_clearml.fake_agent import FakeAgent
from hyperscout_clearml.fake_server import FakeClearMLServer

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
def fake_clearml(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeClearMLServer]:
    """The session's fake server, with this process's environment pointed at it (HOME left alone)."""
    server = FakeClearMLServer().start()
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
    server.stop()


@pytest.fixture
def server(fake_clearml: FakeClearMLServer, sdk_warnings: list[str]) -> Iterator[FakeClearMLServer]:
    """The fake, emptied for this test; fails the test if the SDK misunderstood any answer."""
    fake_clearml.reset()
    sdk_warnings.clear()
    yield fake_clearml
    fake_clearml.clear_faults()
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
    server.create_queue("default")
    return server.create_task(
        "base",
        project="hyperscout-tests",
        script_text=TRIAL_SCRIPT.read_text(encoding="utf-8"),
        entry_point="trial_clearml.py",
        hyperparams=TRIAL_DEFAULTS,
    )


@pytest.fixture
def start_agent(server: FakeClearMLServer) -> Iterator[Callable[..., FakeAgent]]:
    """Factory for fake agents on the fake server; all are stopped (their trials killed) at teardown."""
    agents: list[FakeAgent] = []

    def start(queue: str = "default", **kwargs: Any) -> FakeAgent:
        kwargs.setdefault("kill_grace", 0.5)
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
