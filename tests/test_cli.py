"""The `hyperscout` command, run as a user runs it (a real console script in a subprocess)."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

# the console script installed beside the interpreter running the tests, else the one on PATH
HYPERSCOUT = shutil.which("hyperscout", path=str(Path(sys.executable).parent)) or shutil.which("hyperscout") or "hyperscout"
#: Seconds to wait for a condition before failing: a guard against a hang, never a claim about speed.
GUARD = 60.0

TRAIN = """
import argparse, time
from hyperscout import report_scalar
p = argparse.ArgumentParser()
p.add_argument("--x", type=float)
p.add_argument("--epochs", type=int, default=3)
a = p.parse_args()
for i in range(1, a.epochs + 1):
    report_scalar("validation", "loss", (a.x - 0.3) ** 2 + 1.0 / i, i)
"""

STUDY = """
[study]
name = "cli"
storage = "store"
seed = 0

[task]
script = "train.py"
args = ["--epochs", "2"]

[objective]
title = "validation"
series = "loss"
sign = "min"

[strategy]
name = "grid"

[limits]
total_max_jobs = 4
max_number_of_concurrent_tasks = 2

[[parameters]]
name = "x"
type = "UniformParameterRange"
min_value = 0.0
max_value = 1.0
step_size = 0.25
"""


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HYPERSCOUT, *args], cwd=cwd, capture_output=True, text=True, timeout=180)


def wait_until(condition: Callable[[], object], what: str, timeout: float = GUARD) -> None:
    """Re-check a real condition (a file, a process) until it holds; fail after ``timeout`` s."""
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.01)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "train.py").write_text(TRAIN)
    (tmp_path / "study.toml").write_text(STUDY)
    return tmp_path


def test_plugins_lists_installed_distributions(tmp_path: Path) -> None:
    out = run("plugins", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    rows = {(r["kind"], r["name"]): r for r in json.loads(out.stdout)}
    assert rows[("strategy", "random")]["distribution"] == "hyperscout-random"
    assert rows[("strategy", "grid")]["distribution"] == "hyperscout-grid"
    assert rows[("backend", "local")]["distribution"] == "hyperscout-local"
    assert all(r["version"] for r in rows.values())


def test_run_status_top_export(project: Path) -> None:
    out = run("run", "study.toml", cwd=project)
    assert out.returncode == 0, out.stderr
    assert "starting study 'cli'" in out.stdout and "ended (total_max_jobs)" in out.stdout
    assert "rank" in out.stdout  # the final table

    status = run("status", "--storage", "store", cwd=project)
    assert status.returncode == 0 and "cli" in status.stdout and "total_max_jobs" in status.stdout
    jobs = run("status", "cli", "--storage", "store", cwd=project)
    assert jobs.stdout.count("  completed  ") == 4 and "jobs: 4 = 4 completed" in jobs.stdout

    top = run("top", "cli", "-k", "2", "--storage", "store", cwd=project)
    lines = [ln for ln in top.stdout.splitlines() if ln[:1].isdigit()]
    assert len(lines) == 2 and lines[0].split()[-1] == "0.25"  # x=0.25 is nearest to 0.3 on this grid

    exported = run("export", "cli", "--format", "json", "--storage", "store", cwd=project)
    data = json.loads(exported.stdout)
    assert len(data["jobs"]) == 4 and data["jobs"][0]["metrics"]
    as_csv = run("export", "cli", "--format", "csv", "-o", "jobs.csv", "--storage", "store", cwd=project)
    assert as_csv.returncode == 0
    rows = list(csv.DictReader(io.StringIO((project / "jobs.csv").read_text())))
    assert len(rows) == 4 and {"job", "rank", "status", "validation/loss", "x"} <= set(rows[0])

    plot = run("plot", "cli", "-o", "cli.png", "--storage", "store", cwd=project)
    assert plot.returncode == 0, plot.stderr
    png = (project / "cli.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000

    again = run("run", "study.toml", cwd=project)  # resumes: the budget is spent, nothing new runs
    assert again.returncode == 0 and "resuming study 'cli'" in again.stdout
    assert run("status", "cli", "--storage", "store", cwd=project).stdout.count("  completed  ") == 4


def test_param_search_mirrors_clearml_flags(project: Path) -> None:
    out = run(
        "param-search", "--script", "train.py", "--args", "epochs=2",
        "--params-search", '{"name": "x", "type": "UniformParameterRange", "min_value": 0, "max_value": 1, "step_size": 0.5}',
        "--objective-metric-title", "validation", "--objective-metric-series", "loss", "--objective-metric-sign", "min",
        "--optimizer-class", "GridSearch", "--max-number-of-concurrent-tasks", "2", "--total-max-jobs", "5",
        "--storage", "ps", "--study-name", "ps", "--local",
        cwd=project,
    )
    assert out.returncode == 0, out.stderr
    top = run("top", "ps", "--storage", "ps", cwd=project)
    assert top.stdout.count("completed") == 3


BAD = [
    ("study.toml", "[study\nname=1", "not valid TOML"),
    ("study.toml", STUDY + "\n[extra]\n", "extra: unknown section"),
    ("study.toml", STUDY.replace("total_max_jobs = 4", 'total_max_jobs = "ten"'),
     "limits.total_max_jobs: expected a positive integer, got 'ten'"),
    ("study.toml", STUDY.replace("min_value = 0.0", "min_value = 2.0"),
     "parameters[0]: parameter 'x': min_value=2 must be below max_value=1"),
    ("study.toml", STUDY.replace('name = "grid"', 'name = "optuna-typo"'),
     "strategy.name: unknown strategy 'optuna-typo': installed strategies are"),
    ("study.toml", STUDY.replace('name = "grid"', 'name = "grid"\n[strategy.options]\nshufle = true'),
     "strategy.options: strategy 'grid' has no option 'shufle'; accepted options: shuffle"),
    ("study.toml", STUDY.replace('script = "train.py"', 'script = "nope.py"'), "task.script: "),
    ("study.toml", STUDY.replace('sign = "min"', 'sign = "lowest"'), "objective: objective sign 'lowest'"),
    ("study.toml", STUDY.replace('type = "UniformParameterRange"', 'type = "UniformRange"'),
     "parameters[0]: parameter 'x': unknown type 'UniformRange'"),
    ("study.toml", STUDY.replace("[limits]", "[limits]\nbogus = 1"), "limits.bogus: unknown key"),
    ("study.toml", STUDY.replace('name = "grid"', 'name = "grid"\n[backend]\nname = "dask"'),
     "backend.name: unknown backend 'dask': installed backends are local; `pip install hyperscout-dask`"),
]


@pytest.mark.parametrize(("name", "text", "message"), BAD, ids=[b[2][:30] for b in BAD])
def test_bad_study_files_exit_2_with_one_line(project: Path, name: str, text: str, message: str) -> None:
    (project / name).write_text(text)
    out = run("run", name, cwd=project)
    assert out.returncode == 2
    assert message in out.stderr
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert out.stderr.startswith("hyperscout: error: ")


def test_bad_input_never_loses_the_store(project: Path) -> None:
    assert run("run", "study.toml", cwd=project).returncode == 0
    (project / "study.toml").write_text(STUDY.replace("step_size = 0.25", "step_size = 0.2"))
    out = run("run", "study.toml", cwd=project)  # same study name, different space: refused, store intact
    assert out.returncode == 2 and "different search space" in out.stderr
    assert run("status", "cli", "--storage", "store", cwd=project).stdout.count("  completed  ") == 4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["status", "--storage", "missing"], "no store at"),
        (["top", "nostudy"], "no store at"),
        (["param-search", "--script", "train.py", "--objective-metric-title", "a", "--objective-metric-series", "b",
          "--objective-metric-sign", "min", "--params-search", "{not json"], "--params-search: '{not json' is not valid JSON"),
        (["run"], "the following arguments are required: study"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_bad_command_lines_exit_2_with_one_line(project: Path, args: list[str], message: str) -> None:
    out = run(*args, cwd=project)
    assert out.returncode == 2, out.stdout
    assert message in out.stderr and out.stderr.count("\n") == 1


def test_trial_side_import_stays_light() -> None:
    # What the import pulls in; how long it takes is measured by bench/import/run.py, not here.
    code = textwrap.dedent("""
        import sys
        from hyperscout import report_scalar
        print([m for m in ("numpy", "attrs", "pluggy", "sqlite3", "hyperscout_random", "hyperscout_local")
               if m in sys.modules])
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=GUARD)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_ctrl_c_stops_cleanly_and_the_next_run_resumes(project: Path) -> None:
    import signal

    hold, started = project / "hold", project / "started"
    started.mkdir()
    hold.touch()
    # While `hold` exists, a trial says it runs (a file in started/) and waits there until it is stopped.
    (project / "train.py").write_text(TRAIN.replace("for i in range", textwrap.dedent(f"""
        import os, pathlib
        if pathlib.Path({str(hold)!r}).exists():
            pathlib.Path({str(started)!r}, str(os.getpid())).touch()
            while pathlib.Path({str(hold)!r}).exists():
                time.sleep(0.05)
        """) + "for i in range", 1))
    proc = subprocess.Popen([HYPERSCOUT, "run", "study.toml"], cwd=project, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: proc.poll() is not None or len(list(started.iterdir())) >= 2,
                   "the first two jobs to run")
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=GUARD)
    finally:
        hold.unlink(missing_ok=True)  # on a failure above, lets held trials end instead of lingering
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "stopping" in err and "run the same command again to resume" in out
    assert len(list(started.iterdir())) == 2  # nothing else was started while stopping
    status = run("status", "cli", "--storage", "store", cwd=project).stdout
    assert status.count("interrupted: study stopped (stopped)") == 2
    again = run("run", "study.toml", cwd=project)
    assert again.returncode == 0 and "resuming study 'cli'" in again.stdout
    status = run("status", "cli", "--storage", "store", cwd=project).stdout
    assert status.count("  completed  ") == 4 and "re-run as job" in status and "(2 re-run)" in status


def test_every_example_study_file_is_valid() -> None:
    from hyperscout.config import load_study

    files = sorted((Path(__file__).resolve().parents[1] / "examples").glob("**/study*.toml"))
    assert len(files) >= 4
    for f in files:
        cfg = load_study(f)
        assert cfg.parameters and cfg.objectives


def test_a_task_id_naming_a_file_is_relative_to_the_study_file(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from hyperscout.config import load_study

    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "jobs.py").write_text("def job(params, budget):\n    return []\n")
    (tmp_path / "conf" / "runs.json").write_text("{}")
    body = '[task]\ntask_id = "{}"\n[objective]\ntitle = "v"\nseries = "l"\nsign = "min"\n' \
           '[[parameters]]\nname = "x"\ntype = "UniformParameterRange"\nmin_value = 0\nmax_value = 1\n'
    monkeypatch.chdir(tmp_path)  # elsewhere than the study file
    for given, expected in (("jobs.py:job", f"{tmp_path / 'conf' / 'jobs.py'}:job"),
                            ("runs.json", str(tmp_path / "conf" / "runs.json")),
                            ("0123456789abcdef0123456789abcdef", "0123456789abcdef0123456789abcdef"),
                            ("pkg.mod:job", "pkg.mod:job")):
        study = tmp_path / "conf" / "study.toml"
        study.write_text(body.format(given))
        assert load_study(study).optimizer_kwargs()["base_task_id"] == expected


def test_a_core_command_imports_no_plugin_but_help_lists_plugin_commands(tmp_path: Path) -> None:
    import subprocess
    import sys

    from hyperscout.store import Store

    probe = ("import sys; from hyperscout.cli import main; code = main(['status', '--storage', sys.argv[1]]); "
             "print(sorted(m for m in sys.modules if m.startswith('hyperscout_')), code)")
    Store(tmp_path / "store").close()
    out = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "store")], capture_output=True, text=True)
    assert out.stdout.strip().endswith("[] 0"), out.stdout + out.stderr  # the parser was built without plugins
    helped = subprocess.run([sys.executable, "-c", "from hyperscout.cli import main; main(['--help'])"],
                            capture_output=True, text=True)
    assert "status" in helped.stdout and "plugins" in helped.stdout
