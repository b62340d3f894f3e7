"""Replaying an export: recorded curves and running times come back through the engine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from simkit import Listed, approx, make_optimizer, run

from hyperscout import DiscreteParameterRange, JobStatus, LogUniformParameterRange, UniformParameterRange
from hyperscout.cli import main
from hyperscout.errors import ConfigError
from hyperscout_sim import Recording, Replay, SimBackend, SimExit

SPACE = [UniformParameterRange("x", 0.0, 1.0), DiscreteParameterRange("opt", ["adam", "sgd"])]


def recorded(params: dict, budget: float | None) -> Any:
    """What the 'real' study ran: durations and curves that depend on the configuration."""
    if params["x"] == 0.9:
        yield 2.0, 1, {"validation/loss": 0.5}
        raise SimExit(3, "boom")
    for i in range(1, 6):
        yield 1.0 + 3.0 * params["x"], i, {"validation/loss": params["x"] / i, "train/loss": 2 * params["x"] / i}


@pytest.fixture
def export(tmp_path: Path) -> Path:
    configs = [{"x": x, "opt": o} for x, o in ((0.1, "adam"), (0.5, "sgd"), (0.8, "adam"), (0.9, "sgd"))]
    run(make_optimizer(tmp_path, recorded, name="rec", strategy=Listed, strategy_options={"configs": configs},
                       space=SPACE, max_consecutive_failures=None))
    out = tmp_path / "rec.json"
    assert main(["export", "rec", "--format", "json", "-o", str(out), "--storage", str(tmp_path / "store")]) == 0
    return out


def test_a_replay_reproduces_recorded_curves_timing_and_crashes(tmp_path: Path, export: Path) -> None:
    data = json.loads(export.read_text())
    configs = [j["params"] for j in data["jobs"]]
    opt = run(make_optimizer(tmp_path, str(export), name="again", strategy=Listed, space=SPACE,
                             strategy_options={"configs": configs}, max_consecutive_failures=None))
    again = opt.get_all_experiments()
    assert [j.params for j in again] == configs
    for old, new in zip(data["jobs"], again):
        assert new.status.value == old["status"]
        assert [[m.title, m.series, m.iteration, m.value, m.after_stop] for m in new.metrics] == old["metrics"]
        assert new.ended - new.started == approx(old["ended"] - old["started"])
        assert new.objective_values == old["objective"]
    crashed = again[3]
    assert crashed.status is JobStatus.FAILED and crashed.exit_code == 3 and "boom" in (crashed.reason or "")


def test_a_new_configuration_replays_its_nearest_recording(tmp_path: Path, export: Path) -> None:
    opt = run(make_optimizer(tmp_path, str(export), name="near", strategy=Listed, space=SPACE,
                             strategy_options={"configs": [{"x": 0.45, "opt": "sgd"}, {"x": 0.2, "opt": "sgd"}]}))
    near, far = opt.get_all_experiments()
    assert near.objective_values == [0.5 / 5], "x=0.45, sgd is nearest to the recorded x=0.5, sgd"
    # x=0.2 with sgd: 0.1 (adam) is 0.14 away in x plus 1 for the optimizer; 0.5 (sgd) is 0.19 away: sgd wins
    assert far.objective_values == [0.5 / 5]


def test_a_budget_cuts_the_replayed_curve(tmp_path: Path, export: Path) -> None:
    opt = run(make_optimizer(tmp_path, str(export), name="cut", strategy=Listed, space=SPACE,
                             strategy_options={"configs": [{"x": 0.5, "opt": "sgd"}]}, max_iteration_per_job=2))
    (job,) = opt.get_all_experiments()
    assert job.objective_iterations == [2] and job.objective_values == [0.25]


def test_nearest_uses_the_log_scale_of_a_log_uniform_parameter() -> None:
    recs = [Recording(i, {"lr": lr}, 1.0, ((1, "v", "l", lr),), "completed") for i, lr in enumerate((1e-4, 1e-1))]
    linear = Replay(recs)
    logged = Replay(recs, log_params=frozenset({"lr"}))
    assert linear.nearest({"lr": 5e-3}).params == {"lr": 1e-4}
    assert logged.nearest({"lr": 5e-3}).params == {"lr": 1e-1}  # log10(5e-3) = -2.3: 1.7 from -4, 1.3 from -1
    assert logged.nearest({"lr": 2e-3}).params == {"lr": 1e-4}


def test_the_export_definition_marks_log_parameters(tmp_path: Path) -> None:
    def job(params: dict, budget: float | None) -> Any:
        yield 1.0, 1, {"validation/loss": params["lr"]}

    configs = [{"lr": 1e-4}, {"lr": 1e-1}]
    run(make_optimizer(tmp_path, job, name="lr", strategy=Listed, strategy_options={"configs": configs},
                       space=[LogUniformParameterRange("lr", -4, -1)]))
    out = tmp_path / "lr.json"
    assert main(["export", "lr", "--format", "json", "-o", str(out), "--storage", str(tmp_path / "store")]) == 0
    assert Replay.load(out).nearest({"lr": 3.5e-3}).params == {"lr": 1e-1}


def test_interrupted_and_pruned_recordings_are_used_only_when_nothing_else_ran(tmp_path: Path) -> None:
    jobs = [
        {"number": 0, "params": {"x": 0.5}, "status": "pruned", "started": 0, "ended": 2,
         "metrics": [["v", "l", 1, 9.0, False]]},
        {"number": 1, "params": {"x": 0.0}, "status": "completed", "started": 0, "ended": 4,
         "metrics": [["v", "l", 1, 1.0, False], ["v", "l", 2, None, False]]},
    ]
    path = tmp_path / "e.json"
    path.write_text(json.dumps({"jobs": jobs}))
    replay = Replay.load(path)
    assert replay.nearest({"x": 0.5}).number == 1
    steps = list(replay.nearest({"x": 0.5}).steps(None))
    assert [(d, i) for d, i, _ in steps] == [(2.0, 1), (2.0, 2)]
    assert steps[1][2][("v", "l")] != steps[1][2][("v", "l")], "a NaN exported as null comes back as NaN"
    path.write_text(json.dumps({"jobs": jobs[:1]}))
    assert Replay.load(path).nearest({"x": 0.1}).number == 0


@pytest.mark.parametrize(("content", "says"), [
    ("not json", "is not JSON"),
    ('{"study": "s"}', "has no 'jobs' list"),
    ('{"jobs": [{"params": {}, "started": null, "ended": null}]}', "has no job that ran"),
])
def test_a_bad_replay_source_is_a_one_line_error(tmp_path: Path, content: str, says: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ConfigError) as info:
        SimBackend.base_task(str(path))
    assert says in str(info.value) and "\n" not in str(info.value)
