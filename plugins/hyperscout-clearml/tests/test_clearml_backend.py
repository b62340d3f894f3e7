"""The backend on its own: re-attaching what a dead optimizer left, without the engine in between."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from hyperscout.backend import JobExited, JobQueued, JobSpec, Reattached
from hyperscout.errors import ConfigError
from hyperscout.testing.backend_suite import Recorder
from hyperscout_clearml.backend import JOB_TAG, ClearMLBackend, ClearMLTask, resolve_parameter
from hyperscout_clearml.fake_agent import FakeAgent
from hyperscout_clearml.fake_server import FakeClearMLServer


def _spec(server: FakeClearMLServer, base: str, job_id: str, **params: Any) -> JobSpec:
    return JobSpec(job_id=job_id, study="s", params=params or {"General/epochs": 1}, task=base, workdir="/unused",
                   queue=server.scoped("default"))


def _open(backend: ClearMLBackend) -> tuple[Recorder, dict[str, str]]:
    recorder, handles = Recorder(), {}
    backend.open(recorder, poll_interval=0.2, handle_sink=lambda job, handle: handles.__setitem__(job, handle))
    return recorder, handles


def test_a_clone_whose_handle_never_reached_the_store_is_found_by_its_tag(
    server: FakeClearMLServer, base_task: str, start_agent: Callable[..., FakeAgent]
) -> None:
    first = ClearMLBackend()
    _open(first)
    first.launch(_spec(server, base_task, "lost-handle"))  # queued on the server; pretend the optimizer died right here
    first._stopping.set()  # the dead optimizer polls no more
    (task_id,) = server.task_ids(parent=base_task)

    start_agent()
    again = ClearMLBackend()
    recorder, handles = _open(again)
    try:
        assert again.reattach(_spec(server, base_task, "lost-handle"), None) is Reattached.ADOPTED
        assert handles == {"lost-handle": task_id}
        assert recorder.wait_exit("lost-handle", 60).exit_code == 0
        assert server.task_ids(parent=base_task) == [task_id]  # adopted, not cloned again
    finally:
        again.close()


def test_a_clone_never_enqueued_is_enqueued_on_resume_and_a_job_with_no_task_is_gone(
    server: FakeClearMLServer, base_task: str, Task: Any, start_agent: Callable[..., FakeAgent]
) -> None:
    draft = Task.clone(source_task=Task.get_task(task_id=base_task), name="draft", parent=base_task)
    draft.add_tags([f"{JOB_TAG}half-launched"])  # cloned and recorded, then the optimizer died before enqueueing
    start_agent()
    backend = ClearMLBackend()
    recorder, _ = _open(backend)
    try:
        assert backend.reattach(_spec(server, base_task, "half-launched"), draft.id) is Reattached.ADOPTED
        assert isinstance(recorder.events("half-launched")[0], JobQueued)
        exited = recorder.wait_exit("half-launched", 60)
        assert exited.exit_code == 0 and server.task_status(draft.id) == "completed"
        assert backend.reattach(_spec(server, base_task, "never-cloned"), None) is Reattached.GONE
    finally:
        backend.close()


@pytest.mark.fake_only
def test_a_task_deleted_on_the_server_ends_its_job(server: FakeClearMLServer, base_task: str) -> None:
    server.create_queue("idle")
    backend = ClearMLBackend()
    recorder, handles = _open(backend)
    try:
        backend.launch(JobSpec(job_id="doomed", study="s", params={}, task=base_task, workdir="/unused", queue="idle"))
        server.tasks.pop(handles["doomed"])
        exited: JobExited = recorder.wait_exit("doomed", 30)
        assert exited.reason == f"task {handles['doomed']} was deleted from the ClearML server"
    finally:
        backend.close()


@pytest.mark.parametrize(
    ("name", "expected"),
    [("lr", ("Args", "lr")), ("epochs", ("General", "epochs")), ("General/epochs", ("General", "epochs")),
     ("Hydra/model.depth", ("Hydra", "model.depth")), ("General/opt/x", ("General", "opt/x"))],
)
def test_names_resolve_like_clearml_but_checked(name: str, expected: tuple[str, str]) -> None:
    base = ClearMLTask("t" * 32, "base", hyperparams={
        "General": {"epochs": {}, "shared": {}, "opt/x": {}}, "Args": {"lr": {}, "shared": {}}, "Hydra": {}})
    assert resolve_parameter(name, base) == expected


def test_a_section_is_the_part_before_the_first_slash() -> None:
    base = ClearMLTask("t" * 32, "base", hyperparams={"General": {"opt/x": {}}})
    with pytest.raises(ConfigError, match=r"parameter .opt/x. is not on base task .*close matches: General/opt/x$"):
        resolve_parameter("opt/x", base)


def test_a_bare_name_in_two_sections_other_than_general_is_ambiguous() -> None:
    base = ClearMLTask("t" * 32, "base", hyperparams={"Args": {"lr": {}}, "Hydra": {"lr": {}}})
    with pytest.raises(ConfigError, match=r"parameter .lr. is in several sections .*: Args/lr, Hydra/lr; name one"):
        resolve_parameter("lr", base)
