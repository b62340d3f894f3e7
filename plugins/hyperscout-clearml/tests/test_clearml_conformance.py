"""The backend conformance kit, run against the ClearML backend, the FAKE ClearML server and a FAKE agent.

Each suite script becomes a base task on the fake server (its text in ``script.diff``, as ClearML keeps a
standalone script); the agent runs it with ``CLEARML_TASK_ID`` set, so ``hyperscout.report_scalar`` goes
through the ClearML trial reporter to the server, and the backend reads it back by polling. Tests about command
lines (stdout patterns, argv parameter styles, a missing program) are replaced by their ClearML equivalents.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from typing import Any

import pytest

from hyperscout.backend import JobStarted
from hyperscout.testing import BackendTestSuite
from hyperscout.testing.backend_suite import Harness
from hyperscout_clearml.backend import JOB_TAG, ClearMLBackend, ClearMLTask
from hyperscout_clearml.fake_agent import FakeAgent
from hyperscout_clearml.fake_server import FakeClearMLServer

#: ``hyperscout.get_parameters()`` reads HYPERSCOUT_PARAMS, which a ClearML agent does not set: a suite script
#: that asks for its parameters gets them from its task first (the task's General section, cast by type)
PARAMS_PREAMBLE = """\
import json as _json, os as _os
from clearml import Task as _Task
_os.environ["HYPERSCOUT_PARAMS"] = _json.dumps(
    _Task.init().get_parameters_as_dict(cast=True).get("General", {}))
"""


class TestClearMLBackend(BackendTestSuite):
    event_timeout = 90.0
    abort_timeout = 45.0
    poll_interval = 0.2
    concurrency = 2
    same_host = True

    @pytest.fixture(autouse=True)
    def _fake(self, server: FakeClearMLServer, start_agent: Callable[..., FakeAgent], eager_trials: dict[str, str]
              ) -> None:
        server.create_queue(server.scoped("default"))
        start_agent(workers=self.concurrency, env=eager_trials)  # the suite waits for live metrics
        self.server = server

    @pytest.fixture
    def backend(self) -> ClearMLBackend:
        return ClearMLBackend(retry_seconds=10.0, request_timeout=15.0, abort_wait=30.0,
                              default_queue=self.server.scoped("default"))

    def make_task(self, harness: Harness, name: str, body: str) -> ClearMLTask:
        text = textwrap.dedent(body).lstrip()
        if "get_parameters" in text:
            text = PARAMS_PREAMBLE + text
        task_id = self.server.create_task(name, script_text=text, entry_point=name,
                                          project=self.server.scoped("hyperscout-tests"),
                                          hyperparams={"General": {"k": 0}})
        return ClearMLBackend.base_task(task_id)

    def test_stdout_patterns_become_metrics(self, harness: Harness) -> None:
        """A ClearML job's metrics come from the server: stdout patterns are refused in one line, up front."""
        from hyperscout import MetricPattern, UnsupportedError

        spec = harness.spec(self.make_task(harness, "printer.py", "print('loss=0.5')\n"),
                            patterns=[MetricPattern(r"loss=(?P<value>[\d.]+)", "train", "loss")])
        with pytest.raises(UnsupportedError) as info:
            harness.backend.launch(spec)
        assert "not from its stdout" in str(info.value) and "\n" not in str(info.value)

    def test_a_program_that_cannot_start_fails_naming_it(self, harness: Harness) -> None:
        task_id = self.server.create_task("missing", working_dir="/nonexistent-hyperscout-dir",
                                          project=self.server.scoped("hyperscout-tests"),
                                          entry_point="hyperscout-suite-missing-program")
        spec = harness.spec(ClearMLBackend.base_task(task_id))
        exited = harness.run(spec)
        assert exited.exit_code != 0, exited
        assert exited.reason is not None and "hyperscout-suite-missing-program" in exited.reason, exited

    @pytest.mark.parametrize("style", ["clearml"])
    def test_parameters_reach_the_script(self, harness: Harness, style: str) -> None:
        """Searched parameters land in the clone's sections: argparse reads ``Args/``, ``task.connect`` ``General/``."""
        script = """
            import argparse
            from clearml import Task
            from hyperscout import report_scalar
            parser = argparse.ArgumentParser()
            parser.add_argument("--opt", default="sgd")
            task = Task.init()
            args = parser.parse_args()
            config = task.connect({"lr": 0.1, "layers": 1})
            report_scalar("p", "lr", float(config["lr"]), 0)
            report_scalar("p", "layers", float(config["layers"]), 0)
            report_scalar("p", "opt_adam", 1.0 if args.opt == "adam" else 0.0, 0)
        """
        base_id = self.server.create_task("params", script_text=textwrap.dedent(script), entry_point="params.py",
                                          project=self.server.scoped("hyperscout-tests"), hyperparams={"General": {"lr": 0.1, "layers": 1}, "Args": {"opt": "sgd"}})
        spec = harness.spec(ClearMLBackend.base_task(base_id), {"lr": 0.125, "layers": 3, "Args/opt": "adam"})
        exited = harness.run(spec)
        assert exited.exit_code == 0, exited
        got = {m.series: m.value for m in harness.recorder.metrics(spec.job_id, "p")}
        assert got == {"lr": 0.125, "layers": 3.0, "opt_adam": 1.0}
        (task_id,) = [t for t in self.server.task_ids(parent=base_id)]
        assert self.server.hyperparams(task_id) == {"General": {"lr": "0.125", "layers": "3"}, "Args": {"opt": "adam"}}
        assert self.server.task(task_id)["hyperparams"]["General"]["lr"]["type"] == "float"  # the base's type kept
        assert set(self.server.tags(task_id)) == {"optimization", "opt", f"{JOB_TAG}{spec.job_id}"}
        assert self.server.task(task_id)["name"] == "params: Args/opt=adam layers=3 lr=0.125"

    def test_started_names_the_worker(self, harness: Harness) -> None:
        spec = harness.spec(harness.task("ok.py", "print('hi')\n"))
        assert harness.run(spec).exit_code == 0
        started = [e for e in harness.recorder.events(spec.job_id) if isinstance(e, JobStarted)]
        assert [e.worker for e in started] == [self.server.scoped("fake-agent")]

    def test_one_request_per_poll_for_every_live_job(self, harness: Harness) -> None:
        """Watching costs one tasks.get_all per poll whatever the number of jobs (no objective told: the
        histories of jobs whose metrics moved come on top)."""
        script = harness.task("sleepy.py", "import time\ntime.sleep(3600)\n")
        specs = [harness.spec(script) for _ in range(self.concurrency + 3)]
        for spec in specs:
            harness.launch(spec)
        backend: Any = harness.backend
        assert backend.poll() == 1
        for spec in specs:
            backend.abort(spec.job_id)
