"""Bad input is refused where it is given (construction, the study file), in one line naming the fix."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_cli

from hyperscout import ConfigError, HyperParameterOptimizer, PluginNotFoundError, UniformParameterRange

TRAIN = "from hyperscout import report_scalar\nreport_scalar('val', 'loss', 1.0, 1)\n"


def _make(tmp_path: Path, **kw):  # type: ignore[no-untyped-def]
    script = tmp_path / "train.py"
    script.write_text(TRAIN)
    args = dict(base_task_id=str(script), hyper_parameters=[UniformParameterRange("x", 0.0, 1.0)],
                objective_metric_title="val", objective_metric_series="loss", storage=tmp_path / "store",
                show_progress=False)
    args.update(kw)
    return HyperParameterOptimizer(**args)


@pytest.mark.parametrize(("kw", "needle"), [
    ({"max_number_of_concurrent_tasks": None}, "max_number_of_concurrent_tasks=None must be a positive integer"),
    ({"max_number_of_concurrent_tasks": 0}, "max_number_of_concurrent_tasks=0 must be a positive integer"),
    ({"storage": 42}, "storage=42 must be a directory path"),
    ({"base_task_id": None}, "base_task_id is missing"),
    ({"backend_options": {"kill_grace": -1}}, "kill_grace=-1 must be a number of seconds >= 0"),
    ({"total_max_jobs": 2.5}, "total_max_jobs=2.5 must be a positive integer"),
    ({"time_limit_per_job": float("nan")}, "time_limit_per_job=nan must be a positive number"),
    ({"seed": "x"}, "seed='x' must be an integer"),
    ({"study_name": ""}, "study_name='' must be a non-empty string"),
    ({"execution_queue": 3}, "execution_queue=3 must be a queue name"),
    ({"strategy_options": {"total_max_jobs": 3}}, "'total_max_jobs' is an optimizer argument, not a strategy option"),
    ({"max_consecutive_failures": 0}, "max_consecutive_failures=0 must be a positive integer"),
])
def test_bad_arguments_fail_at_construction(tmp_path: Path, kw: dict, needle: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ConfigError) as info:
        _make(tmp_path, **kw)
    assert needle in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "store").exists()  # nothing was written


def test_a_task_id_no_backend_knows_names_the_distribution(tmp_path: Path) -> None:
    with pytest.raises(PluginNotFoundError, match="pip install hyperscout-clearml"):
        _make(tmp_path, base_task_id="aabbccddeeff00112233445566778899")


def test_a_callback_that_is_not_callable_fails_at_start(tmp_path: Path) -> None:
    opt = _make(tmp_path)
    with pytest.raises(ConfigError, match="job_complete_callback=3 must be a function"):
        opt.start(job_complete_callback=3)  # type: ignore[arg-type]


STUDY = """
[study]
name = "leak"
storage = "store"
[task]
script = "train.py"
[objective]
title = "val"
series = "loss"
[strategy]
name = "random"
[strategy.options]
{option}
[limits]
total_max_jobs = 6
[[parameters]]
name = "x"
type = "UniformParameterRange"
min_value = 0.0
max_value = 1.0
"""


@pytest.mark.parametrize(("option", "home"), [
    ("total_max_jobs = 2", "[limits]"),
    ('storage = "elsewhere"', "[study]"),
    ("max_number_of_concurrent_tasks = 4", "[limits]"),
])
def test_optimizer_arguments_in_strategy_options_are_refused(tmp_path: Path, option: str, home: str) -> None:
    (tmp_path / "train.py").write_text(TRAIN)
    (tmp_path / "study.toml").write_text(STUDY.format(option=option))
    out = run_cli("run", str(tmp_path / "study.toml"))
    assert out.returncode == 2
    key = option.split(" ")[0]
    assert out.stderr.strip() == (f"hyperscout: error: {tmp_path / 'study.toml'}: strategy.options.{key}: "
                                  f"is not a strategy option; it belongs in {home}")
    assert not (tmp_path / "store").exists() and not (tmp_path / "elsewhere").exists()


def test_strategy_options_reach_the_strategy_only(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text(TRAIN)
    (tmp_path / "study.toml").write_text(STUDY.format(option="max_retries = 7"))
    out = run_cli("run", str(tmp_path / "study.toml"))
    assert out.returncode == 0, out.stderr
    from hyperscout.store import Store

    (info,) = Store(tmp_path / "store", readonly=True).list_studies()
    assert info["jobs"] == 6
