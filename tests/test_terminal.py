"""The terminal while and after a study runs: the live view on a TTY, logs, and no --storage to repeat."""

from __future__ import annotations

import os
import pty
import shutil
import textwrap
from pathlib import Path

from conftest import run_cli

TRAIN = """
import argparse
from hyperscout import report_scalar
p = argparse.ArgumentParser()
p.add_argument("--x", type=float)
a = p.parse_args()
for i in range(1, 4):
    print(f"epoch {i} of job x={a.x}", flush=True)
    report_scalar("val", "loss", a.x / i, i)
"""

STUDY = """
[study]
name = "term"
storage = "store"
[task]
script = "train.py"
[objective]
title = "val"
series = "loss"
[strategy]
name = "grid"
[limits]
total_max_jobs = 3
max_number_of_concurrent_tasks = 2
[[parameters]]
name = "x"
type = "DiscreteParameterRange"
values = [0.25, 0.5, 0.75]
"""


def _project(tmp_path: Path) -> Path:
    (tmp_path / "train.py").write_text(textwrap.dedent(TRAIN))
    (tmp_path / "study.toml").write_text(STUDY)
    return tmp_path / "study.toml"


def test_on_a_tty_the_run_draws_a_live_table(tmp_path: Path) -> None:
    study = _project(tmp_path)
    exe = shutil.which("hyperscout") or "hyperscout"
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child becomes the CLI on a terminal
        os.execv(exe, [exe, "run", str(study)])
    out = b""
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:
            break
        if not data:
            break
        out += data
    _, status = os.waitpid(pid, 0)
    text = out.decode("utf-8", "replace")
    assert os.waitstatus_to_exitcode(status) == 0, text[-2000:]
    assert "study term · grid on local" in text  # the live table's title
    assert "budget: jobs" in text and "\x1b[" in text  # budgets, drawn with terminal control codes
    assert "job logs in" in text


def test_piped_output_stays_plain_lines(tmp_path: Path) -> None:
    out = run_cli("run", str(_project(tmp_path)))
    assert out.returncode == 0 and "\x1b[" not in out.stdout
    assert "study 'term' ended (total_max_jobs)" in out.stdout
    assert f"job logs in {tmp_path / 'store' / 'jobs' / 'term'}" in out.stdout


def test_logs_status_and_top_without_repeating_the_storage(tmp_path: Path) -> None:
    study = _project(tmp_path)
    assert run_cli("run", str(study)).returncode == 0
    status = run_cli("status", str(study))
    assert status.returncode == 0 and "study 'term': ended" in status.stdout
    logs = run_cli("logs", str(study), "0")
    assert logs.returncode == 0 and "epoch 3 of job x=0.25" in logs.stdout
    followed = run_cli("logs", str(study), "1", "--follow")  # a finished job: prints all, then returns
    assert "epoch 3 of job x=0.5" in followed.stdout
    env = {**os.environ, "HYPERSCOUT_STORAGE": str(tmp_path / "store")}
    top = run_cli("top", "term", "-k", "1", env=env)
    assert top.returncode == 0 and "0.0833333" in top.stdout
    bad = run_cli("logs", "term", "no-such-job", env=env)
    assert bad.returncode == 2 and "'no-such-job' is not a job of this study" in bad.stderr



def test_run_detach_returns_at_once_and_the_study_finishes_on_its_own(tmp_path: Path) -> None:
    from conftest import read_store, wait_for

    study = _project(tmp_path)
    out = run_cli("run", str(study), "--detach")
    assert out.returncode == 0 and "runs detached as pid" in out.stdout
    db = tmp_path / "store" / "hyperscout.sqlite"
    wait_for(lambda: read_store(db, "SELECT status, owner FROM studies") == [("ended", None)], "the detached run to end")
    assert len(read_store(db, "SELECT id FROM jobs WHERE status='completed'")) == 3
    (log,) = (tmp_path / "store" / "runs").glob("term-*.log")
    assert "study 'term' ended" in log.read_text()
