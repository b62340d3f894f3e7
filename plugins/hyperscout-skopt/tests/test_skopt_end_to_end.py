"""The skopt strategy inside real studies: the engine, the local backend, SQLite and trial subprocesses."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from hyperscout import (
    Command,
    DiscreteParameterRange,
    HyperParameterOptimizer,
    JobStatus,
    LogUniformParameterRange,
    UniformIntegerParameterRange,
    UniformParameterRange,
)

TRIAL = '''
import argparse, math
from hyperscout import report_scalar

ap = argparse.ArgumentParser()
ap.add_argument("--x", type=float)
ap.add_argument("--lr", type=float)
ap.add_argument("--layers", type=int)
ap.add_argument("--opt")
a = ap.parse_args()
score = -((a.x - 0.3) ** 2) - 0.1 * abs(math.log10(a.lr) + 2) - 0.05 * a.layers - (0.2 if a.opt == "sgd" else 0.0)
for it in range(1, 3):
    report_scalar("validation", "score", score - 0.1 / it, it)
'''

PARAMS = [
    UniformParameterRange("x", 0.0, 1.0),
    LogUniformParameterRange("lr", -4, -1),
    UniformIntegerParameterRange("layers", 1, 4),
    DiscreteParameterRange("opt", ["adam", "sgd"]),
]
#: the options a study file's [strategy.options] would carry; cheap acquisition for a fast test
OPTIONS: dict[str, Any] = {"n_initial_points": 3, "acq_optimizer": "sampling", "acq_optimizer_kwargs": {"n_points": 300}}


def _optimizer(tmp_path: Path, total: int, name: str = "skopt-e2e") -> HyperParameterOptimizer:
    script = tmp_path / "trial.py"
    script.write_text(TRIAL)
    return HyperParameterOptimizer(
        base_task_id=Command(argv=[sys.executable, str(script)], params_as="argparse"),
        hyper_parameters=PARAMS,
        objective_metric_title="validation",
        objective_metric_series="score",
        objective_metric_sign="max",
        optimizer_class="skopt",
        max_number_of_concurrent_tasks=2,
        total_max_jobs=total,
        study_name=name,
        storage=tmp_path / "store",
        seed=0,
        show_progress=False,
        pool_period_min=0.002,
        **OPTIONS,
    )


def _run(opt: HyperParameterOptimizer) -> list[Any]:
    opt.start_locally()
    assert opt.wait(timeout=120), "the study did not end in time"
    jobs = opt.get_all_experiments()
    opt.stop()
    return jobs


def test_a_study_runs_total_max_jobs_jobs(tmp_path: Path) -> None:
    jobs = _run(_optimizer(tmp_path, total=6))
    assert len(jobs) == 6
    assert all(j.status is JobStatus.COMPLETED for j in jobs), [(j.status, j.reason) for j in jobs]
    assert len({tuple(sorted(j.params.items())) for j in jobs}) == 6
    for j in jobs:
        assert all(p.contains(j.params[p.name]) for p in PARAMS)
        assert j.objective_values is not None and len(j.objective_values) == 1


def test_a_study_resumes_where_it_stopped(tmp_path: Path) -> None:
    first = _run(_optimizer(tmp_path, total=4))
    assert len(first) == 4 and all(j.status is JobStatus.COMPLETED for j in first)
    before = {j.id: (dict(j.params), j.objective_values) for j in first}

    second = _optimizer(tmp_path, total=6)  # same study_name and storage: a resume
    jobs = _run(second)
    assert len(jobs) == 6
    kept = {j.id: (dict(j.params), j.objective_values) for j in jobs if j.id in before}
    assert kept == before  # the old jobs are kept as they were
    new = [j for j in jobs if j.id not in before]
    assert len(new) == 2 and all(j.status is JobStatus.COMPLETED for j in new)
    # the strategy replayed the history: it told skopt the 4 old values and the 2 new ones
    strategy = second.get_optimizer()
    assert len(strategy.optimizer.Xi) == 6
    old_configs = {tuple(sorted(p.items())) for p, _ in before.values()}
    assert all(tuple(sorted(j.params.items())) not in old_configs for j in new)


README_TRAIN = '''
import argparse, math
from hyperscout import report_scalar

ap = argparse.ArgumentParser()
ap.add_argument("--learning_rate", type=float)
ap.add_argument("--layers", type=int)
ap.add_argument("--dropout", type=float)
ap.add_argument("--optimizer")
a = ap.parse_args()
acc = 0.9 - 0.05 * abs(math.log10(a.learning_rate) + 2.5) - 0.02 * abs(a.layers - 2) - 0.1 * abs(a.dropout - 0.2)
acc -= 0.05 if a.optimizer == "sgd" else 0.0
report_scalar("validation", "accuracy", acc, 1)
'''


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    code = "import sys; from hyperscout.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True, timeout=180)


def test_the_readme_study_file_runs_with_the_cli(tmp_path: Path) -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    study = re.search(r"```toml\n(.*?)```", readme, re.S)
    assert study is not None, "the README lost its study file"
    (tmp_path / "study.toml").write_text(study.group(1), encoding="utf-8")
    (tmp_path / "train.py").write_text(README_TRAIN, encoding="utf-8")
    run = _cli("run", "study.toml", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    export = _cli("export", "digits-skopt", "--storage", ".hyperscout", cwd=tmp_path)
    assert export.returncode == 0, export.stderr
    payload = json.loads(export.stdout)
    assert payload["definition"]["strategy"] == "skopt"
    jobs = payload["jobs"]
    assert len(jobs) == 8 and all(j["status"] == "completed" for j in jobs), [(j["status"], j["reason"]) for j in jobs]
    assert len({json.dumps(j["params"], sort_keys=True) for j in jobs}) == 8
    for j in jobs:
        p = j["params"]
        assert 1e-4 <= p["learning_rate"] <= 1e-1 and p["layers"] in (1, 2, 3, 4)
        assert p["dropout"] in (0.0, 0.1, 0.2, 0.3, 0.4, 0.5) and p["optimizer"] in ("adam", "sgd")
