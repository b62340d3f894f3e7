"""What a job's value means when it is stopped, fails, or reports garbage: one rule, one ranking.

Here with real scripts. The same rules for stop points, interrupted jobs and time limits are also
tested without processes, on the virtual clock: plugins/hyperscout-sim/tests/test_engine_limits.py.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from conftest import read_store, run_cli

from hyperscout import (
    Command,
    DiscreteParameterRange,
    HyperParameterOptimizer,
    JobStatus,
)


def _opt(tmp_path: Path, script: str, params, **kw) -> HyperParameterOptimizer:  # type: ignore[no-untyped-def]
    path = tmp_path / "train.py"
    path.write_text(textwrap.dedent(script))
    env = kw.pop("env", {})
    defaults = dict(objective_metric_title="val", objective_metric_series="loss", objective_metric_sign="min",
                    optimizer_class="grid", max_number_of_concurrent_tasks=2, storage=tmp_path / "store",
                    study_name="s", seed=0, show_progress=False)
    defaults.update(kw)
    return HyperParameterOptimizer(Command.for_script(path, env=env), params, **defaults)


VALUES = """
import argparse
from hyperscout import report_scalar
p = argparse.ArgumentParser()
p.add_argument("--mode")
a = p.parse_args()
for i in range(1, 5):
    v = {"ok": 1.0 / i, "nan": float("nan") if i == 3 else 0.5, "inf": float("-inf") if i == 2 else 0.5}[a.mode]
    report_scalar("val", "loss", v, i)
"""


def test_a_nan_or_infinite_objective_fails_that_job_and_the_study_goes_on(tmp_path: Path) -> None:
    opt = _opt(tmp_path, VALUES, [DiscreteParameterRange("mode", ["nan", "inf", "ok"])], max_number_of_concurrent_tasks=1)
    calls = []
    opt.start(job_complete_callback=lambda *a: calls.append(a))
    opt.wait()
    jobs = {j.params["mode"]: j for j in opt.get_all_experiments()}
    assert jobs["nan"].status is JobStatus.FAILED
    assert jobs["nan"].reason == "objective val/loss was NaN at iteration 3"
    assert jobs["inf"].status is JobStatus.FAILED and "-inf at iteration 2" in jobs["inf"].reason
    assert jobs["ok"].status is JobStatus.COMPLETED and jobs["ok"].objective_values == [0.25]
    assert [t.params["mode"] for t in opt.get_top_experiments(3)] == ["ok"]
    assert [c[3]["mode"] for c in calls] == ["ok"]
    # exports are strict JSON: no NaN / Infinity tokens
    out = run_cli("export", "s", "--storage", str(tmp_path / "store"))
    assert out.returncode == 0, out.stderr

    def refuse(token: str) -> None:
        raise AssertionError(f"non-standard JSON token {token}")

    data = json.loads(out.stdout, parse_constant=refuse)
    nan_job = next(j for j in data["jobs"] if j["params"]["mode"] == "nan")
    assert [m[3] for m in nan_job["metrics"] if m[2] == 3] == [None]
    # and the resume does not crash on it either
    again = _opt(tmp_path, VALUES, [DiscreteParameterRange("mode", ["nan", "inf", "ok"])])
    again.start()
    again.wait()
    assert len(again.get_all_experiments()) == 3


NATURAL = """
import argparse, os, time
from hyperscout import report_scalar
p = argparse.ArgumentParser()
p.add_argument("--x", type=float)
p.add_argument("--hang", type=int)
a = p.parse_args()
for i in range(1, 4):
    report_scalar("val", "loss", a.x / i, i)
while a.hang:                 # a script that does not end at its budget
    time.sleep(0.05)
"""


def test_a_job_at_its_cap_may_exit_by_itself_and_the_export_says_which(tmp_path: Path) -> None:
    params = [DiscreteParameterRange("x", [1.0]), DiscreteParameterRange("hang", [0, 1])]
    opt = _opt(tmp_path, NATURAL, params, max_iteration_per_job=3)
    opt.start()
    opt.wait()
    jobs = {j.params["hang"]: j for j in opt.get_all_experiments()}
    assert jobs[0].status is JobStatus.COMPLETED and jobs[0].exit_code == 0
    assert jobs[0].reason == "reached its budget of 3 iterations; exited by itself"
    assert jobs[1].status is JobStatus.COMPLETED and jobs[1].exit_code is not None and jobs[1].exit_code < 0
    assert "signalled after a 2 s grace" in jobs[1].reason
    assert jobs[0].objective_values == jobs[1].objective_values == [1.0 / 3]
    rows = read_store(tmp_path / "store" / "hyperscout.sqlite", "SELECT reason, exit_code FROM jobs ORDER BY number")
    assert rows[0][1] == 0 and "exited by itself" in rows[0][0]


TYPO = """
from hyperscout import report_scalar
report_scalar("validation", "acc", 0.5, 1)
report_scalar("loss", "train", 0.1, 1)
"""

STUDY_TYPO = """
[study]
name = "typo"
storage = "store"
[task]
script = "train.py"
[objective]
title = "validation"
series = "accuracy"
sign = "max"
[strategy]
name = "random"
[limits]
total_max_jobs = 20
max_number_of_concurrent_tasks = 1
[[parameters]]
name = "x"
type = "UniformParameterRange"
min_value = 0.0
max_value = 1.0
"""


def test_a_study_with_no_ranked_job_exits_non_zero_and_names_what_was_reported(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text(TYPO)
    (tmp_path / "study.toml").write_text(STUDY_TYPO)
    out = run_cli("run", str(tmp_path / "study.toml"))
    assert out.returncode == 1, out.stdout + out.stderr
    err = out.stderr.strip().splitlines()
    assert len(err) == 1 and "5 jobs in a row failed the same way" in err[0]
    assert "it reported loss/train, validation/acc" in err[0] and "'validation/accuracy'" in err[0]
    assert len(read_store(tmp_path / "store" / "hyperscout.sqlite", "SELECT id FROM jobs")) == 5
    # without the early stop, the end of the study says the same
    (tmp_path / "study.toml").write_text(STUDY_TYPO.replace("total_max_jobs = 20", "total_max_jobs = 3")
                                         .replace('name = "typo"', 'name = "typo2"'))
    out = run_cli("run", str(tmp_path / "study.toml"))
    assert out.returncode == 1
    assert "no job finished with a value of validation/accuracy: jobs reported loss/train, validation/acc" in out.stderr
