"""The in-trial API on its own (no optimizer): transport, parameters, safety."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

CODE = """
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
os.dup2(fd, int(os.environ["HYPERSCOUT_REPORT_FD"]))
from hyperscout import report_scalar, get_parameters
report_scalar("val", "loss", 0.5)
report_scalar("val", "loss", 0.25)
print(get_parameters())
"""


def _run(tmp_path: Path, env: dict[str, str]) -> tuple[str, str]:
    target = tmp_path / "fd-target.txt"
    out = subprocess.run([sys.executable, "-c", CODE, str(target)], env={**os.environ, **env},
                         capture_output=True, text=True, check=True)
    return target.read_text(), out.stdout


def test_reports_go_to_the_descriptor_it_was_given(tmp_path: Path) -> None:
    written, _ = _run(tmp_path, {"HYPERSCOUT_REPORT_FD": "57"})
    lines = [json.loads(x) for x in written.splitlines()]
    assert [(d["t"], d["s"], d["i"], d["v"]) for d in lines] == [("val", "loss", 0, 0.5), ("val", "loss", 1, 0.25)]


def test_a_reused_descriptor_number_is_never_written(tmp_path: Path) -> None:
    # A child started with close_fds inherits the variable, not the pipe: the number may now be a file.
    written, _ = _run(tmp_path, {"HYPERSCOUT_REPORT_FD": "57", "HYPERSCOUT_REPORT_INO": "1"})
    assert written == ""


def test_outside_a_study_everything_is_a_harmless_no_op(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYPERSCOUT_")}
    out = subprocess.run([sys.executable, "-c", "from hyperscout import report_scalar, get_parameters, get_job_id;"
                          "report_scalar('a', 'b', 1.0); print(get_parameters(), get_job_id())"],
                         env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "{} None"


def test_parameters_from_the_environment(tmp_path: Path) -> None:
    _, printed = _run(tmp_path, {"HYPERSCOUT_REPORT_FD": "57", "HYPERSCOUT_PARAMS": '{"lr": 0.1}'})
    assert printed.strip() == "{'lr': 0.1}"
