"""Warm starts: the next Python trial's interpreter is started while the current jobs run.

A Python trial spends tens of milliseconds starting the interpreter before its first line runs;
at 0.5 s per trial that is 5-10% of the machine. For a command that is "this interpreter runs
this script" the backend keeps one spare interpreter waiting on a pipe. Launching a job hands it
the job (argv, environment, working directory, stderr file) and the script runs at once, through
:func:`runpy.run_path` with ``__name__ == "__main__"``, ``sys.argv`` and ``sys.path[0]`` as a cold
start would set them. Anything else (another interpreter, interpreter flags, a different
``PYTHON*`` environment) starts cold. ``prestart = false`` turns the mechanism off.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from hyperscout.trial import ENV_REPORT_FD, ENV_REPORT_INO

#: Runs in the spare interpreter: wait for one job on stdin, become it, run the script.
BOOTSTRAP = r"""
import json, os, sys
_job = json.loads(sys.stdin.buffer.readline() or b"null")
if _job is None:
    os._exit(0)
_fd = os.open(_job["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.dup2(_fd, 2)
os.close(_fd)
_fd = os.open(os.devnull, os.O_RDONLY)
os.dup2(_fd, 0)
os.close(_fd)
try:
    with open("/proc/self/comm", "w") as _fh:
        _fh.write(_job["comm"])
except OSError:
    pass
os.environ.clear()
os.environ.update(_job["env"])
os.chdir(_job["cwd"])
sys.argv = _job["argv"]
sys.path[0] = os.path.dirname(os.path.abspath(sys.argv[0]))
del _job, _fd
import runpy
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def comm_marker(job_id: str) -> str:
    """What a warm-started trial writes to ``/proc/self/comm`` (15 characters at most)."""
    return ("hs-" + job_id)[:15]


def script_of(argv: Sequence[str]) -> tuple[str, list[str]] | None:
    """``(interpreter, [script, *args])`` if argv is this interpreter running a script file."""
    if len(argv) < 2 or os.path.realpath(argv[0]) != os.path.realpath(sys.executable):
        return None
    rest = list(argv[1:])
    while rest and rest[0] == "-u":
        rest.pop(0)
    if not rest or rest[0].startswith("-") or not rest[0].endswith(".py") or not Path(rest[0]).is_file():
        return None
    return argv[0], rest


def _python_env(env: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """The environment that shapes interpreter start-up: it must match for a warm start."""
    return tuple(sorted((k, v) for k, v in env.items() if k.startswith("PYTHON")))


@attrs.define(eq=False)
class Spare:
    """An interpreter waiting for its job."""

    proc: subprocess.Popen[bytes]
    interpreter: str
    report_r: int
    report_fd_in_child: int
    report_ino: str
    python_env: tuple[tuple[str, str], ...]

    def fits(self, interpreter: str, env: Mapping[str, str]) -> bool:
        return self.proc.poll() is None and interpreter == self.interpreter and _python_env(env) == self.python_env

    def hand_over(self, argv: list[str], env: Mapping[str, str], cwd: str, stderr_path: str, job_id: str) -> bool:
        """Send the job; False if the spare died meanwhile (the caller starts the job cold)."""
        job = {"argv": argv, "env": dict(env), "cwd": cwd, "stderr": stderr_path, "comm": comm_marker(job_id)}
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(job).encode() + b"\n")
            self.proc.stdin.close()
        except OSError:
            return False
        return True

    def discard(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        try:
            os.close(self.report_r)
        except OSError:
            pass


def spawn(interpreter: str, env: Mapping[str, str]) -> Spare | None:
    """Start a spare interpreter in its own session, holding its own report pipe."""
    report_r, report_w = os.pipe()
    ino = str(os.fstat(report_w).st_ino)
    child_env: dict[str, Any] = {**env, ENV_REPORT_FD: str(report_w), ENV_REPORT_INO: ino, "PYTHONUNBUFFERED": "1"}
    try:
        proc = subprocess.Popen(
            [interpreter, "-u", "-c", BOOTSTRAP],
            env=child_env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            pass_fds=(report_w,),
            start_new_session=True,
        )
    except OSError:
        os.close(report_r)
        return None
    finally:
        os.close(report_w)
    return Spare(proc, interpreter, report_r, report_w, ino, _python_env(child_env))
